//! Health Proxy (:3002): probes every configured service and answers how healthy everything is.

use actix_web::{get, web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;

use crate::breaker::BreakerState;
use crate::config::ServiceName;
use crate::http::{ApiError, ErrorBody};
use crate::probe::check::PROBE_MARKER_HEADER;
use crate::probe::{AllHealth, CheckReport};
use crate::records::{CheckSource, Outcome};
use crate::services::{common, AppState};
use crate::store::health_checks::{HistoryCursor, HistoryQuery, StoredCheck};

/// The most rows one history page returns, and the default.
const MAX_HISTORY_LIMIT: u32 = 1000;
const DEFAULT_HISTORY_LIMIT: u32 = 100;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(common::health)
        .service(common::metrics)
        .service(health_all)
        .service(health_history)
        .service(services);
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
        (status = 503, description = "At least one target is not up", body = AllHealth),
    )
)]
#[get("/health/all")]
pub async fn health_all(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let all = if req.headers().contains_key(PROBE_MARKER_HEADER) {
        state.monitor.latest_all()
    } else {
        state.monitor.check_all().await
    };
    if all.ok {
        HttpResponse::Ok().json(all)
    } else {
        HttpResponse::ServiceUnavailable().json(all)
    }
}

/// A monitored service with its configuration, breaker and latest result.
#[derive(Debug, Serialize, ToSchema)]
pub struct ServiceView {
    pub name: String,
    /// The probed URL. Query values, path parameter values (`;jsessionid=...`) and the fragment are shown as
    /// `redacted`, since they often carry tokens.
    pub url: String,
    /// The probe's HTTP method; absent for `tcp://` targets.
    pub method: Option<String>,
    pub timeout_ms: u64,
    pub interval_s: u64,
    pub weight: f64,
    pub critical: bool,
    pub tags: Vec<String>,
    pub breaker: BreakerView,
    /// The latest check, if one was made since hale started.
    pub latest: Option<CheckReport>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BreakerView {
    pub state: BreakerState,
    /// When an open breaker lets the next trial check through.
    pub retry_at: Option<DateTime<Utc>>,
}

/// List the monitored services.
///
/// Each with its configuration, circuit breaker state and latest result.
#[utoipa::path(
    tag = "health",
    responses((status = 200, description = "The monitored services", body = Vec<ServiceView>))
)]
#[get("/services")]
pub async fn services(state: web::Data<AppState>) -> HttpResponse {
    let views: Vec<ServiceView> = state
        .monitor
        .targets()
        .iter()
        .map(|t| {
            let state = t.breaker_state();
            ServiceView {
                name: t.name().to_owned(),
                url: t.config.url.redacted(),
                method: (!t.config.url.is_tcp())
                    .then(|| t.config.http_method().as_str().to_owned()),
                timeout_ms: t.config.timeout_ms,
                interval_s: t.config.interval_s,
                weight: t.config.weight,
                critical: t.config.critical,
                tags: t.config.tags.clone(),
                breaker: BreakerView {
                    state,
                    retry_at: (state == BreakerState::Open)
                        .then(|| t.breaker_retry_at())
                        .flatten(),
                },
                latest: t.latest(),
            }
        })
        .collect();
    HttpResponse::Ok().json(views)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
// The fields stay raw strings so `parse` can answer each bad value with a 400 that names it; the
// annotations give the OpenAPI document the real types and bounds.
pub struct HistoryParams {
    /// Only this service.
    #[param(value_type = Option<String>, min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9._-]+$")]
    pub service: Option<String>,
    /// Checks at or after this time (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    pub since: Option<String>,
    /// Checks before this time (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    pub until: Option<String>,
    /// Rows per page, 1 to 1000 (default 100).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000, default = 100)]
    pub limit: Option<String>,
    /// `next_cursor` of the previous page.
    #[param(value_type = Option<String>)]
    pub cursor: Option<String>,
}

/// One stored health check.
#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryItem {
    pub id: i64,
    pub checked_at: DateTime<Utc>,
    pub service: String,
    pub outcome: Outcome,
    pub status: Option<u16>,
    pub latency_ms: Option<f64>,
    pub error: Option<String>,
    pub breaker: BreakerState,
    pub source: CheckSource,
}

impl From<StoredCheck> for HistoryItem {
    fn from(c: StoredCheck) -> Self {
        Self {
            id: c.id,
            checked_at: c.checked_at,
            service: c.service,
            outcome: c.outcome,
            status: c.http_status,
            latency_ms: c.latency_us.map(|us| us as f64 / 1000.0),
            error: c.error,
            breaker: c.breaker_state,
            source: c.source,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryPage {
    /// Newest first.
    pub items: Vec<HistoryItem>,
    /// Pass as `cursor` to get the next page; null on the last page.
    pub next_cursor: Option<String>,
}

impl HistoryParams {
    fn parse(&self) -> Result<HistoryQuery, ApiError> {
        let bad = |m: String| ApiError::BadRequest(m);
        let service = self
            .service
            .as_deref()
            .map(|s| ServiceName::parse(s).map_err(|e| bad(format!("service: {e}"))))
            .transpose()?
            .map(String::from);
        let time = |name: &str, raw: &Option<String>| {
            raw.as_deref()
                .map(|s| {
                    DateTime::parse_from_rfc3339(s)
                        .map(|t| t.with_timezone(&Utc))
                        .map_err(|e| bad(format!("{name}: {s:?} is not an RFC 3339 time ({e})")))
                })
                .transpose()
        };
        let since = time("since", &self.since)?;
        let until = time("until", &self.until)?;
        if let (Some(since), Some(until)) = (since, until) {
            if since >= until {
                return Err(bad("since must be before until".to_owned()));
            }
        }
        let limit = match self.limit.as_deref() {
            None => DEFAULT_HISTORY_LIMIT,
            Some(raw) => match raw.parse::<u32>() {
                Ok(n) if (1..=MAX_HISTORY_LIMIT).contains(&n) => n,
                _ => {
                    return Err(bad(format!(
                        "limit: {raw:?} is not a number from 1 to {MAX_HISTORY_LIMIT}"
                    )))
                }
            },
        };
        let cursor = self
            .cursor
            .as_deref()
            .map(|raw| {
                HistoryCursor::parse(raw).ok_or_else(|| {
                    bad(format!(
                        "cursor: {raw:?} is not a cursor from a previous page"
                    ))
                })
            })
            .transpose()?;
        Ok(HistoryQuery {
            service,
            since,
            until,
            limit,
            cursor,
        })
    }
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
    state: web::Data<AppState>,
    params: web::Query<HistoryParams>,
) -> Result<HttpResponse, ApiError> {
    let query = params.parse()?;
    let (checks, next) = state
        .store
        .check_history(&query)
        .await
        .map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok().json(HistoryPage {
        items: checks.into_iter().map(HistoryItem::from).collect(),
        next_cursor: next.map(|c| c.encode()),
    }))
}
