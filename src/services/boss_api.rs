//! Boss API (:4000): starts and tracks workflows on a persistent task queue.

use actix_web::{get, web, HttpResponse};
use utoipa_actix_web::service_config::ServiceConfig;

use crate::http::HttpContext;
use crate::services::common::{self, HealthResponse};
use crate::services::Core;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(common::health)
        .service(healthz)
        .service(common::metrics);
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
