//! Health Proxy (:3002): probes every configured service and answers how healthy everything is.

mod alerts;
mod assembly;
mod heal;
mod kept;
mod slo;
mod status_html;
pub mod status_page;

use std::sync::Arc;

use actix_web::{get, web, HttpRequest, HttpResponse};
use utoipa_actix_web::service_config::ServiceConfig;

use crate::alerts::Dispatcher;
use crate::answers::checks::{self as answer, AllHealth, HistoryPage, HistoryParams, ServiceView};
use crate::heal::Healer;
use crate::http::{ApiError, ErrorBody};
use crate::probe::check::PROBE_MARKER_HEADER;
use crate::probe::Monitor;
use crate::services::{common, Core};
use crate::slo::maintenance::MaintenanceCalendar;
use crate::slo::SloBoard;
use crate::supervise::Supervisor;

pub use assembly::assemble;
pub use status_page::Rendered;

/// What the Health Proxy's handlers use besides the core: the monitor, auto-heal, the supervisor, the
/// maintenance calendar, the SLO board and the answers kept from it; and the alert notices' delivery,
/// which the application shows its tests.
#[derive(Debug, Clone)]
pub struct HealthProxyState {
    pub monitor: Arc<Monitor>,
    pub healer: Arc<Healer>,
    pub supervisor: Arc<Supervisor>,
    /// The maintenance windows auto-heal and the alert manager hold off for; nudged when one is posted.
    pub maintenance: Arc<MaintenanceCalendar>,
    pub dispatcher: Arc<Dispatcher>,
    /// Every target's SLO from the refresher's last pass: what `/slo` and the status page show.
    pub slo: Arc<SloBoard>,
    /// `/slo` and the status page as sent, kept between requests.
    pub answers: Arc<Rendered>,
}

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(status_page::status_page)
        .service(common::health)
        .service(common::metrics)
        .service(health_all)
        .service(health_history)
        .service(services)
        .service(heal::heal_events)
        .service(heal::heal_target)
        .service(heal::children)
        .service(alerts::alerts)
        .service(alerts::active_alerts)
        .service(alerts::alert_dead_letters)
        .service(slo::slo_all)
        .service(slo::slo_target)
        .service(slo::create_maintenance)
        .service(slo::list_maintenance);
}

/// Check every monitored service now.
///
/// Every target is checked in parallel, each within its own timeout, and every probe waits for one of the
/// `monitor.max_in_flight` slots that all probes share. A success younger than the cache TTL is reused
/// (`cached: true`); failures are checked again. A target whose check is already in flight (for another
/// request or the background monitor) is not probed twice: this request waits for that check and reports
/// its result (`shared: true`). On-demand checks are stored at most once per target per `interval_s`.
///
/// A request that carries `X-Hale-Probe` (every hale probe does) starts no checks at all: it is answered
/// from the latest known results (`cached: true`; a target not checked yet is an `error`), so hale
/// instances that monitor each other's `/health/all` cannot recurse. 200 when every target is up, 503
/// otherwise.
#[utoipa::path(
    tag = "health",
    params(
        ("X-Hale-Probe" = Option<String>, Header, description = "Set by hale's own probes (any value): answer from the latest results, check nothing"),
    ),
    responses(
        (status = 200, description = "Every target is up", body = AllHealth),
        (status = 503, description = "At least one target is not up", body = AllHealth, example = json!({
            "ok": false, "score": 50.0,
            "counts": {"up": 1, "down": 0, "timeout": 1, "circuit_open": 0, "error": 0},
            "targets": [
                {"service": "api", "ok": true, "outcome": "up", "status": 200, "latency_ms": 12.483,
                 "checked_at": "2026-11-26T12:00:03Z", "cached": false, "shared": false, "breaker": "closed",
                 "error": null},
                {"service": "db", "ok": false, "outcome": "timeout", "status": null, "latency_ms": 2001.342,
                 "checked_at": "2026-11-26T12:00:03Z", "cached": false, "shared": false, "breaker": "closed",
                 "error": "no answer within 2000 ms"}
            ],
            "timestamp": "2026-11-26T12:00:03Z"
        })),
    )
)]
#[get("/health/all")]
pub async fn health_all(req: HttpRequest, state: web::Data<HealthProxyState>) -> HttpResponse {
    let from_hale_probe = req.headers().contains_key(PROBE_MARKER_HEADER);
    let all = answer::health_all(&state.monitor, from_hale_probe).await;
    if all.ok {
        HttpResponse::Ok().json(all)
    } else {
        HttpResponse::ServiceUnavailable().json(all)
    }
}

/// List the monitored services.
///
/// Each with its configuration, circuit breaker state and latest result.
#[utoipa::path(
    tag = "health",
    responses((status = 200, description = "The monitored services", body = Vec<ServiceView>))
)]
#[get("/services")]
pub async fn services(state: web::Data<HealthProxyState>) -> HttpResponse {
    HttpResponse::Ok().json(answer::services(&state.monitor))
}

/// Stored health checks, newest first.
///
/// Raw checks are kept for `storage.retention_days`; page with `cursor`.
#[utoipa::path(
    tag = "health",
    params(HistoryParams),
    responses(
        (status = 200, description = "One page of checks", body = HistoryPage),
        (status = 400, description = "A parameter is invalid; the message names it", body = ErrorBody),
    )
)]
#[get("/health/history")]
pub async fn health_history(
    core: web::Data<Core>,
    params: web::Query<HistoryParams>,
) -> Result<HttpResponse, ApiError> {
    let page = answer::history(&core.store, &params).await?;
    Ok(HttpResponse::Ok().json(page))
}
