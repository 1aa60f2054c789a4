//! The alert manager's answers: alerts by state, level and time, and the ones firing now.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::alerts::engine::ALL_TARGETS;
use crate::answers::{params, AnswerError};
use crate::records::{AlertLevel, AlertState};
use crate::store::alerts::{AlertFilter, StoredAlert};
use crate::store::Store;

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

/// The alerts `params` ask for, newest first.
pub async fn alerts(store: &Store, params: &AlertsParams) -> Result<Vec<AlertView>, AnswerError> {
    let state = params::one_of(
        "state",
        params.state.as_deref(),
        AlertState::ALL,
        AlertState::as_str,
    )
    .map_err(AnswerError::BadInput)?;
    let level = params::one_of(
        "level",
        params.level.as_deref(),
        AlertLevel::ALL,
        AlertLevel::as_str,
    )
    .map_err(AnswerError::BadInput)?;
    let since = params::time("since", params.since.as_deref()).map_err(AnswerError::BadInput)?;
    let limit = params::limit(params.limit.as_deref(), DEFAULT_LIMIT, MAX_LIMIT)
        .map_err(AnswerError::BadInput)?;
    let filter = AlertFilter {
        state,
        level,
        since,
        limit,
    };
    let rows = store.alerts(&filter).await?;
    Ok(rows.into_iter().map(AlertView::from).collect())
}

/// The alerts firing now: loudest first; within a level, an alert about all targets (a mass failure, which
/// holds back the targets' own) first, then newest first.
pub async fn active_alerts(store: &Store) -> Result<Vec<AlertView>, AnswerError> {
    let mut rows = store.firing_alerts().await?;
    rows.sort_by(|a, b| {
        b.level
            .rank()
            .cmp(&a.level.rank())
            .then((b.target == ALL_TARGETS).cmp(&(a.target == ALL_TARGETS)))
            .then(b.fired_at.cmp(&a.fired_at))
    });
    Ok(rows.into_iter().map(AlertView::from).collect())
}
