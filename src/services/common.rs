//! The face every service shows: `/health` and `/metrics`.

use std::time::Duration;

use actix_web::{get, web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::http::{ApiError, ErrorBody, HttpContext};
use crate::kind::ServiceKind;
use crate::services::AppState;

/// How long `/health` waits for the database before calling it unreachable.
const DATABASE_PING_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HealthResponse {
    /// True when the service can do its job.
    pub ok: bool,
    pub details: HealthDetails,
    /// When this answer was made (RFC 3339).
    pub timestamp: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HealthDetails {
    /// `health-proxy`, `mcp-bridge` or `boss-api`.
    pub service: String,
    pub version: String,
    pub uptime_s: u64,
    /// `ok` or `unreachable`.
    pub database: String,
    /// `running` or `stopped`: the batching writer of health checks.
    pub writer: String,
    /// Health checks waiting to be written.
    pub writer_queue: usize,
}

/// The health of one of hale's own services; also what the Boss API answers on `/healthz`.
pub(crate) async fn own_health(state: &AppState, kind: ServiceKind) -> (bool, HealthResponse) {
    let database_ok = matches!(
        tokio::time::timeout(DATABASE_PING_TIMEOUT, state.store.ping()).await,
        Ok(Ok(()))
    );
    let writer_ok = state.writer.is_running();
    let ok = database_ok && writer_ok;
    let response = HealthResponse {
        ok,
        details: HealthDetails {
            service: kind.as_str().to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            uptime_s: state.started_at.elapsed().as_secs(),
            database: if database_ok { "ok" } else { "unreachable" }.to_owned(),
            writer: if writer_ok { "running" } else { "stopped" }.to_owned(),
            writer_queue: state.writer.queued(),
        },
        timestamp: state.clock.now(),
    };
    (ok, response)
}

pub(crate) async fn health_response(state: &AppState, ctx: &HttpContext) -> HttpResponse {
    let (ok, body) = own_health(state, ctx.kind).await;
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
        (status = 503, description = "The service cannot do its job, for example its database is unreachable", body = HealthResponse),
    )
)]
#[get("/health")]
pub async fn health(state: web::Data<AppState>, ctx: web::Data<HttpContext>) -> HttpResponse {
    health_response(&state, &ctx).await
}

/// Prometheus metrics of this service.
///
/// The text exposition format, version 0.0.4. Each service has a registry of its own.
#[utoipa::path(
    tag = "operations",
    responses(
        (status = 200, description = "Metrics in the Prometheus text format", body = String, content_type = "text/plain; version=0.0.4"),
        (status = 500, description = "The metrics could not be encoded", body = ErrorBody),
    )
)]
#[get("/metrics")]
pub async fn metrics(
    state: web::Data<AppState>,
    ctx: web::Data<HttpContext>,
) -> Result<HttpResponse, ApiError> {
    if ctx.kind == ServiceKind::HealthProxy {
        let stats = state.writer.stats();
        state.health_metrics.writer_observed(
            stats.written.load(std::sync::atomic::Ordering::Relaxed),
            stats.dropped.load(std::sync::atomic::Ordering::Relaxed),
            state.writer.queued(),
        );
    }
    let text = ctx.metrics.render().map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok()
        .content_type(crate::metrics::CONTENT_TYPE)
        .body(text))
}
