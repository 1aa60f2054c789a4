//! The alert manager's routes: alerts by state, level and time, and the ones firing now.

use actix_web::{get, web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::alerts::engine::ALL_TARGETS;
use crate::http::{ApiError, ErrorBody};
use crate::records::{AlertLevel, AlertState};
use crate::services::params;
use crate::services::Core;
use crate::store::alerts::{AlertFilter, StoredAlert};

const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 1_000;

/// One alert: a (rule, target) incident from the time it fired until it resolved.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": 7, "rule": "target_down", "target": "api", "level": "critical", "state": "firing",
    "summary": "api is down", "fired_at": "2026-11-26T12:00:03Z", "last_notified_at": "2026-11-26T12:00:03Z",
    "resolved_at": null, "suppressed": 12
}))]
pub struct AlertView {
    pub id: i64,
    pub rule: String,
    /// The target, or `*` for an alert about all targets at once.
    pub target: String,
    pub level: AlertLevel,
    pub state: AlertState,
    pub summary: String,
    pub fired_at: DateTime<Utc>,
    /// When it was last notified; null while it was held back by a louder alert.
    pub last_notified_at: Option<DateTime<Utc>>,
    pub resolved_at: Option<DateTime<Utc>>,
    /// Repeats within the cooldown since the last notice, counted instead of notified.
    pub suppressed: u64,
}

impl From<StoredAlert> for AlertView {
    fn from(a: StoredAlert) -> Self {
        Self {
            id: a.id,
            rule: a.rule,
            target: a.target,
            level: a.level,
            state: a.state,
            summary: a.summary,
            fired_at: a.fired_at,
            last_notified_at: a.last_notified_at,
            resolved_at: a.resolved_at,
            suppressed: a.suppressed,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AlertsParams {
    /// `firing` or `resolved`.
    #[param(value_type = Option<AlertState>)]
    pub state: Option<String>,
    /// `info`, `warning` or `critical`.
    #[param(value_type = Option<AlertLevel>)]
    pub level: Option<String>,
    /// Alerts fired at or after this time (RFC 3339); firing ones are always listed.
    #[param(value_type = Option<String>, format = DateTime)]
    pub since: Option<String>,
    /// At most this many, 1 to 1000 (default 100).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000, default = 100)]
    pub limit: Option<String>,
}

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
    let state = params::one_of(
        "state",
        query.state.as_deref(),
        AlertState::ALL,
        AlertState::as_str,
    )
    .map_err(ApiError::BadRequest)?;
    let level = params::one_of(
        "level",
        query.level.as_deref(),
        AlertLevel::ALL,
        AlertLevel::as_str,
    )
    .map_err(ApiError::BadRequest)?;
    let since = params::time("since", query.since.as_deref()).map_err(ApiError::BadRequest)?;
    let limit = params::limit(query.limit.as_deref(), DEFAULT_LIMIT, MAX_LIMIT)
        .map_err(ApiError::BadRequest)?;
    let filter = AlertFilter {
        state,
        level,
        since,
        limit,
    };
    let rows = core
        .store
        .alerts(&filter)
        .await
        .map_err(ApiError::internal)?;
    let views: Vec<AlertView> = rows.into_iter().map(AlertView::from).collect();
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
    let mut rows = core
        .store
        .firing_alerts()
        .await
        .map_err(ApiError::internal)?;
    rows.sort_by(|a, b| {
        b.level
            .rank()
            .cmp(&a.level.rank())
            .then((b.target == ALL_TARGETS).cmp(&(a.target == ALL_TARGETS)))
            .then(b.fired_at.cmp(&a.fired_at))
    });
    let views: Vec<AlertView> = rows.into_iter().map(AlertView::from).collect();
    Ok(HttpResponse::Ok().json(views))
}
