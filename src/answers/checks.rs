//! The health of the targets: every target checked now (`/health/all`), the monitored services with their
//! breakers (`/services`) and the stored checks, one page at a time (`/health/history`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::answers::{params, AnswerError};
use crate::breaker::BreakerState;
use crate::probe::{HealthSweep, LatestCheck, Monitor, OutcomeCounts as Counts};
use crate::records::{CheckSource, Outcome};
use crate::store::health_checks::{HistoryCursor, HistoryQuery, StoredCheck};
use crate::store::Store;

/// The most rows one history page returns, and the default.
pub const MAX_HISTORY_LIMIT: u32 = 1000;
pub const DEFAULT_HISTORY_LIMIT: u32 = 100;

/// One target's latest result, as `/health/all` and `/services` report it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "service": "api", "ok": true, "outcome": "up", "status": 200, "latency_ms": 12.483,
    "checked_at": "2026-11-26T12:00:03Z", "cached": false, "shared": false, "breaker": "closed", "error": null
}))]
pub struct CheckReport {
    /// The target's name.
    pub service: String,
    /// True when the outcome is `up`.
    pub ok: bool,
    pub outcome: Outcome,
    /// The HTTP status, for HTTP targets that answered.
    pub status: Option<u16>,
    /// How long the check took, in milliseconds (microsecond resolution); none when not attempted.
    pub latency_ms: Option<f64>,
    pub checked_at: DateTime<Utc>,
    /// True when this result was reused rather than checked for this request: a success younger than
    /// `monitor.cache_ttl_s`, or any latest result when the request came from a hale probe (`X-Hale-Probe`).
    pub cached: bool,
    /// True when a check of this target was already in flight (started by another request or by the
    /// background monitor) and this is its result, shared instead of probing the target a second time.
    pub shared: bool,
    /// The target's circuit breaker state after the check.
    pub breaker: BreakerState,
    pub error: Option<String>,
}

impl From<LatestCheck> for CheckReport {
    fn from(c: LatestCheck) -> Self {
        Self {
            service: c.target.to_string(),
            ok: c.ok(),
            outcome: c.outcome,
            status: c.http_status,
            latency_ms: c.latency.map(|d| d.as_micros() as f64 / 1000.0),
            checked_at: c.checked_at,
            cached: c.cached,
            shared: c.shared,
            breaker: c.breaker,
            error: c.error,
        }
    }
}

/// The answer of `/health/all`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "ok": true, "score": 100.0,
    "counts": {"up": 2, "down": 0, "timeout": 0, "circuit_open": 0, "error": 0},
    "targets": [
        {"service": "api", "ok": true, "outcome": "up", "status": 200, "latency_ms": 12.483,
         "checked_at": "2026-11-26T12:00:03Z", "cached": false, "shared": false, "breaker": "closed", "error": null},
        {"service": "db", "ok": true, "outcome": "up", "status": null, "latency_ms": 0.871,
         "checked_at": "2026-11-26T12:00:03Z", "cached": true, "shared": false, "breaker": "closed", "error": null}
    ],
    "timestamp": "2026-11-26T12:00:03Z"
}))]
pub struct AllHealth {
    /// True when every target is up.
    pub ok: bool,
    /// Weighted health, 0 to 100 (see docs/health-score.md).
    pub score: f64,
    /// How many targets have each outcome.
    pub counts: OutcomeCounts,
    pub targets: Vec<CheckReport>,
    pub timestamp: DateTime<Utc>,
}

#[derive(Debug, Clone, Default, Serialize, ToSchema)]
#[schema(example = json!({"up": 2, "down": 0, "timeout": 1, "circuit_open": 0, "error": 0}))]
pub struct OutcomeCounts {
    pub up: usize,
    pub down: usize,
    pub timeout: usize,
    pub circuit_open: usize,
    pub error: usize,
}

impl From<Counts> for OutcomeCounts {
    fn from(c: Counts) -> Self {
        Self {
            up: c.up,
            down: c.down,
            timeout: c.timeout,
            circuit_open: c.circuit_open,
            error: c.error,
        }
    }
}

impl From<HealthSweep> for AllHealth {
    fn from(sweep: HealthSweep) -> Self {
        Self {
            ok: sweep.ok,
            score: sweep.score,
            counts: sweep.counts.into(),
            targets: sweep.checks.into_iter().map(CheckReport::from).collect(),
            timestamp: sweep.at,
        }
    }
}

/// Checks every target now (or, for a request from a hale probe, reports the latest results only).
pub async fn health_all(monitor: &Monitor, from_hale_probe: bool) -> AllHealth {
    let sweep = if from_hale_probe {
        monitor.latest_all()
    } else {
        monitor.check_all().await
    };
    sweep.into()
}

/// A monitored service with its configuration, breaker and latest result.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "name": "api", "url": "https://api.internal:8443/health?token=redacted", "method": "GET",
    "timeout_ms": 2000, "interval_s": 30, "weight": 1.0, "critical": true, "tags": ["prod", "edge"],
    "breaker": {"state": "closed", "retry_at": null},
    "latest": {"service": "api", "ok": true, "outcome": "up", "status": 200, "latency_ms": 12.483,
               "checked_at": "2026-11-26T12:00:03Z", "cached": false, "shared": false, "breaker": "closed",
               "error": null}
}))]
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
#[schema(example = json!({"state": "open", "retry_at": "2026-11-26T12:00:33Z"}))]
pub struct BreakerView {
    pub state: BreakerState,
    /// When an open breaker lets the next trial check through.
    pub retry_at: Option<DateTime<Utc>>,
}

/// Every monitored service with its configuration, breaker and latest result.
pub fn services(monitor: &Monitor) -> Vec<ServiceView> {
    monitor
        .targets()
        .iter()
        .map(|t| {
            let state = t.breaker_state();
            ServiceView {
                name: t.name().to_owned(),
                url: t.config.url.redacted(),
                method: t
                    .config
                    .url
                    .is_http()
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
                latest: t.latest().map(CheckReport::from),
            }
        })
        .collect()
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
// The fields stay raw strings so `parse` can answer each bad value with a 400 that names it; the
// annotations give the OpenAPI document the real types and bounds.
pub struct HistoryParams {
    /// Only this service.
    #[param(value_type = Option<String>, min_length = 1, max_length = 68, pattern = "^(mcp:)?[A-Za-z0-9._-]+$")]
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
#[schema(example = json!({
    "id": 918273, "checked_at": "2026-11-26T12:00:03Z", "service": "db", "outcome": "timeout",
    "status": null, "latency_ms": 2001.342, "error": "no answer within 2000 ms", "breaker": "closed",
    "source": "monitor"
}))]
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
#[schema(example = json!({
    "items": [
        {"id": 918273, "checked_at": "2026-11-26T12:00:03Z", "service": "db", "outcome": "timeout",
         "status": null, "latency_ms": 2001.342, "error": "no answer within 2000 ms", "breaker": "closed",
         "source": "monitor"},
        {"id": 918241, "checked_at": "2026-11-26T11:59:33Z", "service": "db", "outcome": "up",
         "status": null, "latency_ms": 0.914, "error": null, "breaker": "closed", "source": "monitor"}
    ],
    "next_cursor": "1795694373000.918241"
}))]
pub struct HistoryPage {
    /// Newest first.
    pub items: Vec<HistoryItem>,
    /// Pass as `cursor` to get the next page; null on the last page.
    pub next_cursor: Option<String>,
}

impl HistoryParams {
    /// The store's query for these parameters; the error names the bad parameter and why.
    pub fn parse(&self) -> Result<HistoryQuery, String> {
        let service = params::target("service", self.service.as_deref())?;
        let since = params::time("since", self.since.as_deref())?;
        let until = params::time("until", self.until.as_deref())?;
        if let (Some(since), Some(until)) = (since, until) {
            if since >= until {
                return Err("since must be before until".to_owned());
            }
        }
        let limit = params::limit(
            self.limit.as_deref(),
            DEFAULT_HISTORY_LIMIT,
            MAX_HISTORY_LIMIT,
        )?;
        let cursor = self
            .cursor
            .as_deref()
            .map(|raw| {
                HistoryCursor::parse(raw)
                    .ok_or_else(|| format!("cursor: {raw:?} is not a cursor from a previous page"))
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

/// One page of stored checks, newest first.
pub async fn history(store: &Store, params: &HistoryParams) -> Result<HistoryPage, AnswerError> {
    let query = params.parse().map_err(AnswerError::BadInput)?;
    let (checks, next) = store.check_history(&query).await?;
    Ok(HistoryPage {
        items: checks.into_iter().map(HistoryItem::from).collect(),
        next_cursor: next.map(|c| c.encode()),
    })
}
