//! What the SLO engine reads besides the rollups: raw scheduled checks over a span, and restarts.

use chrono::{DateTime, Utc};

use crate::records::{CheckSource, Outcome};
use crate::store::codes::{decode, outcome_sql, source_sql, Code};
use crate::store::{to_ms, Store, StoreError};

/// One raw scheduled check, as the SLO engine needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScheduledCheck {
    pub at_ms: i64,
    pub outcome: Outcome,
    pub latency_us: Option<u64>,
}

impl Store {
    /// The raw scheduled (`monitor`) checks of one service in `[from, until)`, oldest first.
    pub async fn scheduled_checks(
        &self,
        service: &str,
        from: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<ScheduledCheck>, StoreError> {
        let rows: Vec<(i64, i64, Option<i64>)> = sqlx::query_as(&format!(
            "SELECT checked_at_ms, {}, latency_us FROM checks
                 WHERE target_id = (SELECT id FROM targets WHERE name = ?1)
                   AND checked_at_ms >= ?2 AND checked_at_ms < ?3 AND {} = ?4
                 ORDER BY checked_at_ms",
            outcome_sql("state"),
            source_sql("state")
        ))
        .bind(service)
        .bind(to_ms(from))
        .bind(to_ms(until))
        .bind(CheckSource::Monitor.code())
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(at_ms, outcome, latency_us)| {
                Some(ScheduledCheck {
                    at_ms,
                    outcome: decode::<Outcome>(outcome)?,
                    latency_us: latency_us.and_then(|l| u64::try_from(l).ok()),
                })
            })
            .collect())
    }
}
