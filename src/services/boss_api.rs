//! Boss API (:4000): starts and tracks workflows on a persistent task queue.

use actix_web::{get, web, HttpResponse};
use utoipa_actix_web::service_config::ServiceConfig;

use crate::http::{ApiError, ErrorBody, HttpContext};
use crate::services::audit::{self, AuditEntry, AuditParams};
use crate::services::common::{self, HealthResponse};
use crate::services::Core;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(common::health)
        .service(healthz)
        .service(common::metrics)
        .service(audit_log);
}

/// The audit log: every request that tried to change something, newest first.
///
/// Each row says who (the token's role, the client address), what (service, method, route, target) and how
/// it ended (status and outcome, refusals included). Needs the `admin` role. Rows are kept for
/// `storage.retention_days`.
#[utoipa::path(
    tag = "operations",
    params(AuditParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Audit rows, newest first", body = Vec<AuditEntry>),
        (status = 400, description = "A parameter is invalid; the message names it", body = ErrorBody),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "The token's role is not admin, or no admin token is configured", body = ErrorBody),
    )
)]
#[get("/audit")]
pub async fn audit_log(
    core: web::Data<Core>,
    params: web::Query<AuditParams>,
) -> Result<HttpResponse, ApiError> {
    let (since, limit) = params.parse().map_err(ApiError::BadRequest)?;
    let entries = audit::audit_entries(&core.store, since, limit)
        .await
        .map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok().json(entries))
}

/// Liveness in the Kubernetes style; the same answer as `/health`.
#[utoipa::path(
    tag = "operations",
    responses(
        (status = 200, description = "The service can do its job", body = HealthResponse),
        (status = 503, description = "The service cannot do its job", body = HealthResponse),
    )
)]
#[get("/healthz")]
pub async fn healthz(core: web::Data<Core>, ctx: web::Data<HttpContext>) -> HttpResponse {
    common::health_response(&core, &ctx)
}
