//! Auto-heal's answers: the stored attempts, a manual heal under the same protections as automatic ones,
//! and the supervised children.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::answers::{params, AnswerError};
use crate::heal::{HealError, Healer};
use crate::records::{HealAction, HealOutcome, HealRecord, HealTrigger};
use crate::store::heal::StoredHeal;
use crate::store::Store;
use crate::supervise::{ChildView, Supervisor};

const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 1_000;

/// One heal attempt.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": 42, "target": "api", "trigger": "automatic", "action": "restart_child",
    "started_at": "2026-11-26T12:00:03Z", "finished_at": "2026-11-26T12:00:05Z", "outcome": "healed",
    "verify_latency_ms": 1830.5, "error": null
}))]
pub struct HealView {
    /// The stored row's id (null only when the attempt could not be stored, which hale logs).
    pub id: Option<i64>,
    pub target: String,
    pub trigger: HealTrigger,
    pub action: HealAction,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub outcome: HealOutcome,
    /// From the end of the action until the target answered up, for a healed attempt.
    pub verify_latency_ms: Option<f64>,
    /// Why it failed or was skipped.
    pub error: Option<String>,
}

impl HealView {
    fn new(id: Option<i64>, record: HealRecord) -> Self {
        Self {
            id,
            target: record.target.to_string(),
            trigger: record.trigger,
            action: record.action,
            started_at: record.started_at,
            finished_at: record.finished_at,
            outcome: record.outcome,
            verify_latency_ms: record.verify_latency.map(millis),
            error: record.error,
        }
    }
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

impl From<StoredHeal> for HealView {
    fn from(stored: StoredHeal) -> Self {
        Self::new(Some(stored.id), stored.record)
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HealEventsParams {
    /// Only this target.
    #[param(value_type = Option<String>, min_length = 1, max_length = 68, pattern = "^(mcp:)?[A-Za-z0-9._-]+$")]
    pub target: Option<String>,
    /// Attempts started at or after this time (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    pub since: Option<String>,
    /// At most this many, 1 to 1000 (default 100).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000, default = 100)]
    pub limit: Option<String>,
}

/// The heal attempts `params` ask for, newest first.
pub async fn heal_events(
    store: &Store,
    params: &HealEventsParams,
) -> Result<Vec<HealView>, AnswerError> {
    let target =
        params::target("target", params.target.as_deref()).map_err(AnswerError::BadInput)?;
    let since = params::time("since", params.since.as_deref()).map_err(AnswerError::BadInput)?;
    let limit = params::limit(params.limit.as_deref(), DEFAULT_LIMIT, MAX_LIMIT)
        .map_err(AnswerError::BadInput)?;
    let rows = store.heal_events(target.as_deref(), since, limit).await?;
    Ok(rows.into_iter().map(HealView::from).collect())
}

/// Heals `target` now, as a manual heal: the attempt, whatever its outcome (healed, failed, or refused by a
/// protection).
pub async fn heal(healer: &Healer, target: &str) -> Result<HealView, AnswerError> {
    let (id, record) = healer
        .heal_stored(target, HealTrigger::Manual, false)
        .await
        .map_err(|e| match e {
            HealError::UnknownTarget(_) => AnswerError::NotFound(e.to_string()),
            // Only automatic heals hold off for maintenance; a manual one never gets here.
            HealError::InMaintenance { .. } => AnswerError::internal(e),
        })?;
    Ok(HealView::new(id, record))
}

/// Every supervised child, by target name.
pub fn children(supervisor: &Supervisor) -> Vec<ChildView> {
    supervisor.children()
}
