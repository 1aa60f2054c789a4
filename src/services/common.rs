//! The face every service shows: `/health` and `/metrics`.

use actix_web::{get, web, HttpResponse};

use crate::answers::{self, HealthResponse};
use crate::http::{ApiError, ErrorBody, HttpContext};
use crate::services::Core;

/// `/health` (and the Boss API's `/healthz`): 200 with the service's health when it can do its job, else
/// 503; `service_up` follows the answer.
pub(crate) fn health_response(core: &Core, ctx: &HttpContext) -> HttpResponse {
    health_answer(own_health(core, ctx), ctx)
}

/// The service's own health, before a service adds what it alone knows (the bridge's MCP servers).
pub(crate) fn own_health(core: &Core, ctx: &HttpContext) -> HealthResponse {
    answers::own_health(
        ctx.kind,
        &core.store,
        &core.writer,
        core.started_at,
        core.clock.now(),
    )
}

/// 200 with `body` when it says ok, else 503; `service_up` follows it.
pub(crate) fn health_answer(body: HealthResponse, ctx: &HttpContext) -> HttpResponse {
    ctx.metrics.set_up(body.ok);
    if body.ok {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

/// Is this service able to do its job?
///
/// 200 with `ok: true` when it is; 503 with `ok: false` and the failing part in `details` when not.
#[utoipa::path(
    tag = "operations",
    responses(
        (status = 200, description = "The service can do its job", body = HealthResponse),
        (status = 503, description = "The service cannot do its job: health checks cannot be stored (disk full, read-only, locked, file deleted) or the writer stopped; `details.database` and `details.database_error` say why", body = HealthResponse,
            example = json!({
            "ok": false,
            "details": {"service": "health-proxy", "version": "0.1.0", "uptime_s": 86400, "database": "full",
                        "database_error": "cannot store health checks (database or disk is full); 240 held in memory, retrying every 5 s at most",
                        "last_write_at": "2026-11-26T11:58:02Z", "writer": "running", "writer_queue": 240},
            "timestamp": "2026-11-26T12:00:03Z"
        })),
    )
)]
#[get("/health")]
pub async fn health(core: web::Data<Core>, ctx: web::Data<HttpContext>) -> HttpResponse {
    health_response(&core, &ctx)
}

/// Prometheus metrics of this service.
///
/// The text exposition format, version 0.0.4. Each service has a registry of its own.
#[utoipa::path(
    tag = "operations",
    responses(
        (status = 200, description = "Metrics in the Prometheus text format", body = String, content_type = "text/plain; version=0.0.4",
            example = "# HELP service_up 1 while the service can do its job, else 0.
# TYPE service_up gauge
service_up{service=\"health-proxy\"} 1
# HELP http_requests_total HTTP requests answered, by method, matched route and status.
# TYPE http_requests_total counter
http_requests_total{method=\"GET\",route=\"/health\",service=\"health-proxy\",status=\"200\"} 1432
http_requests_total{method=\"GET\",route=\"/metrics\",service=\"health-proxy\",status=\"200\"} 2880
"),
        (status = 500, description = "The metrics could not be encoded", body = ErrorBody),
    )
)]
#[get("/metrics")]
pub async fn metrics(ctx: web::Data<HttpContext>) -> Result<HttpResponse, ApiError> {
    let text = ctx.metrics.render().map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok()
        .content_type(crate::metrics::CONTENT_TYPE)
        .body(text))
}
