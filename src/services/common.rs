//! The face every service shows: `/health` and `/metrics`.

use actix_web::{get, web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::http::{ApiError, ErrorBody, HttpContext};
use crate::kind::ServiceKind;
use crate::services::Core;

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "ok": true,
    "details": {"service": "health-proxy", "version": "0.1.0", "uptime_s": 86400, "database": "ok",
                "last_write_at": "2026-11-26T12:00:02Z", "writer": "running", "writer_queue": 0},
    "timestamp": "2026-11-26T12:00:03Z"
}))]
pub struct HealthResponse {
    /// True when the service can do its job.
    pub ok: bool,
    pub details: HealthDetails,
    /// When this answer was made (RFC 3339).
    pub timestamp: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "service": "health-proxy", "version": "0.1.0", "uptime_s": 86400, "database": "ok",
    "last_write_at": "2026-11-26T12:00:02Z", "writer": "running", "writer_queue": 0
}))]
pub struct HealthDetails {
    /// `health-proxy`, `mcp-bridge` or `boss-api`.
    pub service: String,
    pub version: String,
    pub uptime_s: u64,
    /// `ok` while health checks can be stored. Otherwise why not: `full` (disk full), `read_only`, `locked`
    /// (another process holds the write lock), `file_gone` (the file was deleted or replaced), `io_error`,
    /// `other`, or `unreachable` (the database is closed).
    #[schema(example = "ok")]
    pub database: String,
    /// What is wrong with the database and what hale does about it; absent while `database` is `ok`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_error: Option<String>,
    /// When a batch of health checks was last committed to the database.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_write_at: Option<DateTime<Utc>>,
    /// `running` or `stopped`: the batching writer of health checks.
    pub writer: String,
    /// Health checks waiting to be written (queued, or held while the database fails).
    pub writer_queue: usize,
}

/// The health of one of hale's own services; also what the Boss API answers on `/healthz`. Answered from
/// memory (the writer's last commit and failure, the periodic file check): no SQL per request.
pub(crate) fn own_health(core: &Core, kind: ServiceKind) -> (bool, HealthResponse) {
    let store = core.store.condition();
    let writer_ok = core.writer.is_running();
    let ok = store.is_ok() && writer_ok;
    let database = match (&store.problem, store.closed) {
        (_, true) => "unreachable",
        (Some(problem), false) => problem.kind.as_str(),
        (None, false) => "ok",
    };
    let database_error = match (&store.problem, store.closed) {
        (_, true) => Some("the database is closed".to_owned()),
        (problem, false) => problem.as_ref().map(|p| p.message.clone()),
    };
    let response = HealthResponse {
        ok,
        details: HealthDetails {
            service: kind.as_str().to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            uptime_s: core.started_at.elapsed().as_secs(),
            database: database.to_owned(),
            database_error,
            last_write_at: store.last_write_at,
            writer: if writer_ok { "running" } else { "stopped" }.to_owned(),
            writer_queue: core.writer.queued(),
        },
        timestamp: core.clock.now(),
    };
    (ok, response)
}

pub(crate) fn health_response(core: &Core, ctx: &HttpContext) -> HttpResponse {
    let (ok, body) = own_health(core, ctx.kind);
    ctx.metrics.set_up(ok);
    if ok {
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
