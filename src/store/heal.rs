//! Heal attempts: one row each, including the ones a protection skipped. Cooldown and the hourly budget
//! are read from here, so a restart of hale cannot reset them.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::records::{HealAction, HealOutcome, HealRecord, HealTrigger};
use crate::store::runs::CHILD_STARTED_AFTER_UNCLEAN_END;
use crate::store::{from_ms, known, to_ms, Store, StoreError};

const TABLE: &str = "heal_events";

/// The outcomes where an action ran: the ones cooldown and budget count.
const ACTED: &str = "('healed', 'failed')";

/// A heal attempt as read back, with its id.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredHeal {
    pub id: i64,
    pub record: HealRecord,
}

#[derive(sqlx::FromRow)]
struct HealRow {
    id: i64,
    target: String,
    trigger: String,
    action: String,
    started_at_ms: i64,
    finished_at_ms: i64,
    outcome: String,
    verify_latency_us: Option<i64>,
    error: Option<String>,
}

impl HealRow {
    fn parse(self) -> Option<StoredHeal> {
        let trigger = known(
            TABLE,
            "trigger",
            &self.trigger,
            HealTrigger::parse(&self.trigger),
        )?;
        let action = known(
            TABLE,
            "action",
            &self.action,
            HealAction::parse(&self.action),
        )?;
        let outcome = known(
            TABLE,
            "outcome",
            &self.outcome,
            HealOutcome::parse(&self.outcome),
        )?;
        Some(StoredHeal {
            id: self.id,
            record: HealRecord {
                target: Arc::from(self.target),
                trigger,
                action,
                started_at: from_ms(self.started_at_ms),
                finished_at: from_ms(self.finished_at_ms),
                outcome,
                verify_latency: self
                    .verify_latency_us
                    .and_then(|us| u64::try_from(us).ok())
                    .map(Duration::from_micros),
                error: self.error,
            },
        })
    }
}

impl Store {
    pub async fn insert_heal(&self, record: &HealRecord) -> Result<i64, StoreError> {
        let id = sqlx::query(
            "INSERT INTO heal_events (target, trigger, action, started_at_ms, finished_at_ms, outcome,
                                      verify_latency_us, error)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )
        .bind(record.target.as_ref())
        .bind(record.trigger.as_str())
        .bind(record.action.as_str())
        .bind(to_ms(record.started_at))
        .bind(to_ms(record.finished_at))
        .bind(record.outcome.as_str())
        .bind(
            record
                .verify_latency
                .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX)),
        )
        .bind(record.error.as_deref())
        .execute(self.pool())
        .await?
        .last_insert_rowid();
        Ok(id)
    }

    /// When the latest heal of `target` that ran its action started.
    pub async fn last_heal_action(
        &self,
        target: &str,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let at: Option<i64> = sqlx::query_scalar(&format!(
            "SELECT max(started_at_ms) FROM heal_events WHERE target = ?1 AND outcome IN {ACTED}"
        ))
        .bind(target)
        .fetch_one(self.pool())
        .await?;
        Ok(at.map(from_ms))
    }

    /// Heals of `target` that ran their action and started at or after `since`.
    pub async fn heal_actions_since(
        &self,
        target: &str,
        since: DateTime<Utc>,
    ) -> Result<u32, StoreError> {
        let n: i64 = sqlx::query_scalar(&format!(
            "SELECT count(*) FROM heal_events
             WHERE target = ?1 AND started_at_ms >= ?2 AND outcome IN {ACTED}"
        ))
        .bind(target)
        .bind(to_ms(since))
        .fetch_one(self.pool())
        .await?;
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    /// Heal attempts, newest first: of one target or all, at or after `since`, at most `limit`.
    pub async fn heal_events(
        &self,
        target: Option<&str>,
        since: Option<DateTime<Utc>>,
        limit: u32,
    ) -> Result<Vec<StoredHeal>, StoreError> {
        let rows: Vec<HealRow> = sqlx::query_as(
            "SELECT id, target, trigger, action, started_at_ms, finished_at_ms, outcome, verify_latency_us, error
             FROM heal_events
             WHERE (?1 IS NULL OR target = ?1) AND started_at_ms >= ?2
             ORDER BY started_at_ms DESC, id DESC LIMIT ?3",
        )
        .bind(target)
        .bind(since.map_or(i64::MIN, to_ms))
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().filter_map(HealRow::parse).collect())
    }
}

impl Store {
    /// Restarts of each target in `[from, until)`: its supervised child started again (after exiting, by a
    /// heal, or by a start of hale after hale was killed or crashed with the child) and heal commands that ran. One definition for `hale status`, the status page, the SLO and the
    /// reports.
    pub async fn restarts_between(
        &self,
        from: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<std::collections::HashMap<String, u32>, StoreError> {
        let rows: Vec<(String, i64)> = sqlx::query_as(&format!(
            "SELECT target, count(*) FROM (
                 SELECT target FROM child_runs
                 WHERE cause IN ('exited', 'heal') AND started_at_ms >= ?1 AND started_at_ms < ?2
                 UNION ALL
                 SELECT target FROM heal_events
                 WHERE action = 'command' AND outcome IN {ACTED} AND started_at_ms >= ?1 AND started_at_ms < ?2
                 UNION ALL
                 SELECT target FROM child_runs c
                 WHERE c.started_at_ms >= ?1 AND c.started_at_ms < ?2 AND {CHILD_STARTED_AFTER_UNCLEAN_END}
             ) GROUP BY target"
        ))
        .bind(to_ms(from))
        .bind(to_ms(until))
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(target, n)| (target, u32::try_from(n).unwrap_or(u32::MAX)))
            .collect())
    }

    /// `restarts_between(since, the end of time)`.
    pub async fn restarts_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<std::collections::HashMap<String, u32>, StoreError> {
        self.restarts_between(since, DateTime::<Utc>::MAX_UTC).await
    }
}
