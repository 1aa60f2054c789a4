//! SLO routes: every target's objectives over the configured window, or one target's over any window, and
//! maintenance windows (planned downtime that does not count against them).

use actix_web::{get, post, web, HttpMessage, HttpRequest, HttpResponse};

use crate::answers::slo::{self as answer, Declarer, MaintenanceParams, NewMaintenance, SloParams};
use crate::http::{ApiError, Caller, ErrorBody, RequestId};
use crate::services::health_proxy::HealthProxyState;
use crate::services::Core;
use crate::slo::{MaintenanceWindow, TargetSlo};

/// Every target's SLOs over the configured window.
///
/// Availability (good / valid scheduled checks, maintenance excluded), p95 latency, restarts, the error
/// budget and its burn rates, as of the SLO refresher's last pass (each entry's `window.until`). See
/// docs/slo.md.
#[utoipa::path(
    tag = "slo",
    responses((status = 200, description = "One entry per target, in config order", body = Vec<TargetSlo>))
)]
#[get("/slo")]
pub async fn slo_all(
    core: web::Data<Core>,
    state: web::Data<HealthProxyState>,
) -> Result<HttpResponse, ApiError> {
    let snapshot = answer::slo_all(&core.store, &core.config, &state.slo, core.clock.now()).await?;
    let body = state
        .answers
        .slo_all(snapshot.generation, || serde_json::to_vec(&snapshot.slos))
        .map_err(|e| ApiError::from(crate::answers::AnswerError::internal(e)))?;
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .body(body))
}

/// One target's SLOs over a window.
#[utoipa::path(
    tag = "slo",
    params(
        ("service" = String, Path, description = "A configured target's name", min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9._-]+$"),
        SloParams,
    ),
    responses(
        (status = 200, description = "The target's SLOs", body = TargetSlo),
        (status = 400, description = "A parameter is invalid; the message names it", body = ErrorBody),
        (status = 404, description = "No such target", body = ErrorBody),
    )
)]
#[get("/slo/{service}")]
pub async fn slo_target(
    core: web::Data<Core>,
    state: web::Data<HealthProxyState>,
    service: web::Path<String>,
    query: web::Query<SloParams>,
) -> Result<HttpResponse, ApiError> {
    let result = answer::slo_target(
        &core.store,
        &core.config,
        &state.slo,
        core.clock.now(),
        &service,
        &query,
    )
    .await?;
    Ok(HttpResponse::Ok().json(result))
}

/// Declare a maintenance window.
///
/// Scheduled checks of the target (or of every target) inside the window are not valid for its SLOs, and
/// while the window lasts hale neither heals the target automatically nor raises its alerts (docs/slo.md).
/// A window must end in the future and start at most `slo.maintenance_grace_minutes` in the past, unless it
/// is declared `retroactive` (admin role). At most `slo.max_open_maintenance` stored windows may be open
/// (not ended) at once.
#[utoipa::path(
    tag = "slo",
    request_body = NewMaintenance,
    responses(
        (status = 201, description = "The stored window", body = MaintenanceWindow),
        (status = 400, description = "The body is not JSON of this shape", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "The token's role is weaker than operate, or the window is retroactive and the role is weaker than admin", body = ErrorBody),
        (status = 422, description = "A field is refused (the message names it), or too many windows are open", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
#[post("/maintenance")]
pub async fn create_maintenance(
    req: HttpRequest,
    core: web::Data<Core>,
    state: web::Data<HealthProxyState>,
    body: web::Json<NewMaintenance>,
) -> Result<HttpResponse, ApiError> {
    let role = req.extensions().get::<Caller>().and_then(|c| c.role);
    let request_id = req
        .extensions()
        .get::<RequestId>()
        .map(|id| id.0.clone())
        .unwrap_or_default();
    let window = answer::declare_maintenance(
        &core.store,
        &core.config,
        &state.maintenance,
        &state.slo,
        core.clock.now(),
        &body,
        Declarer {
            role,
            request_id: &request_id,
        },
    )
    .await?;
    Ok(HttpResponse::Created().json(window))
}

/// Maintenance windows, from the config file (`source: config`) and the API (`source: api`).
///
/// By start time (then end, config before API, id), one page at a time: `limit` windows after the first
/// `offset`. A page shorter than `limit` is the last.
#[utoipa::path(
    tag = "slo",
    params(MaintenanceParams),
    responses(
        (status = 200, description = "Maintenance windows, by start time", body = Vec<MaintenanceWindow>),
        (status = 400, description = "A parameter is invalid; the message names it", body = ErrorBody),
    )
)]
#[get("/maintenance")]
pub async fn list_maintenance(
    core: web::Data<Core>,
    query: web::Query<MaintenanceParams>,
) -> Result<HttpResponse, ApiError> {
    let page = answer::maintenance(&core.store, &core.config, core.clock.now(), &query).await?;
    Ok(HttpResponse::Ok().json(page))
}
