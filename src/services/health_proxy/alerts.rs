//! The alert manager's routes: alerts by state, level and time, the ones firing now, and the notices that
//! could not be delivered.

use actix_web::{get, web, HttpResponse};

use crate::answers::alerts::{self as answer, AlertView, AlertsParams};
use crate::answers::audit::AuditParams;
use crate::answers::dead_letters::{self, DeadLetterView};
use crate::http::{ApiError, ErrorBody};
use crate::services::Core;

/// Alerts, newest first.
#[utoipa::path(
    tag = "alerts",
    params(AlertsParams),
    responses(
        (status = 200, description = "Alerts, newest first", body = Vec<AlertView>),
        (status = 400, description = "A parameter is invalid; the message names it", body = ErrorBody),
    )
)]
#[get("/alerts")]
pub async fn alerts(
    core: web::Data<Core>,
    query: web::Query<AlertsParams>,
) -> Result<HttpResponse, ApiError> {
    let views = answer::alerts(&core.store, &query).await?;
    Ok(HttpResponse::Ok().json(views))
}

/// Alerts firing now: loudest first; within a level, an alert about all targets (a mass failure, which
/// holds back the targets' own) first, then newest first.
#[utoipa::path(
    tag = "alerts",
    responses((status = 200, description = "Alerts firing now, critical first", body = Vec<AlertView>))
)]
#[get("/alerts/active")]
pub async fn active_alerts(core: web::Data<Core>) -> Result<HttpResponse, ApiError> {
    let views = answer::active_alerts(&core.store).await?;
    Ok(HttpResponse::Ok().json(views))
}

/// Alert notices that could not be delivered, newest first.
///
/// A notice becomes a dead letter once `alerts.channels.delivery.max_attempts` attempts failed (or at once
/// when the receiver refused it for good, such as a 404). Each keeps the payload it would have sent and the
/// last error. Needs the `operate` role: an error is what a receiver answered, and some receivers quote
/// what they were sent.
#[utoipa::path(
    tag = "alerts",
    params(AuditParams),
    responses(
        (status = 200, description = "Dead letters, newest first", body = Vec<DeadLetterView>),
        (status = 400, description = "A parameter is invalid; the message names it", body = ErrorBody),
    )
)]
#[get("/alerts/dead-letters")]
pub async fn alert_dead_letters(
    core: web::Data<Core>,
    params: web::Query<AuditParams>,
) -> Result<HttpResponse, ApiError> {
    let letters = dead_letters::dead_letters(&core.store, &params).await?;
    Ok(HttpResponse::Ok().json(letters))
}
