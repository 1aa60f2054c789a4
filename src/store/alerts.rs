//! Alerts and everything that happened to them. One row per (rule, target) incident in `alerts`, one row per
//! event in `alert_events`; the alert's row carries what must survive a restart of hale: whether it fires,
//! when it was last notified (its cooldown) and how many repeats were suppressed since.

use chrono::{DateTime, Utc};
use sqlx::Connection;

use crate::records::{AlertEventKind, AlertLevel, AlertState};
use crate::store::codes;
use crate::store::{from_ms, known, to_ms, txn, Store, StoreError};

const TABLE: &str = "alerts";

/// An alert as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredAlert {
    pub id: i64,
    pub rule: String,
    pub target: String,
    pub level: AlertLevel,
    pub state: AlertState,
    pub summary: String,
    pub fired_at: DateTime<Utc>,
    /// None while it was never notified (held back by inhibition).
    pub last_notified_at: Option<DateTime<Utc>>,
    pub resolved_at: Option<DateTime<Utc>>,
    /// Repeats suppressed since the last notice.
    pub suppressed: u64,
}

#[derive(sqlx::FromRow)]
struct AlertRow {
    id: i64,
    rule: String,
    target: String,
    level: String,
    state: String,
    summary: String,
    fired_at_ms: i64,
    last_notified_at_ms: Option<i64>,
    resolved_at_ms: Option<i64>,
    suppressed: i64,
}

impl AlertRow {
    fn parse(self) -> Option<StoredAlert> {
        let level = known(TABLE, "level", &self.level, AlertLevel::parse(&self.level))?;
        let state = known(TABLE, "state", &self.state, AlertState::parse(&self.state))?;
        Some(StoredAlert {
            id: self.id,
            rule: self.rule,
            target: self.target,
            level,
            state,
            summary: self.summary,
            fired_at: from_ms(self.fired_at_ms),
            last_notified_at: self.last_notified_at_ms.map(from_ms),
            resolved_at: self.resolved_at_ms.map(from_ms),
            suppressed: u64::try_from(self.suppressed).unwrap_or(0),
        })
    }
}

const COLUMNS: &str = "id, rule, target, level, state, summary, fired_at_ms, last_notified_at_ms, resolved_at_ms, suppressed";

/// Which alerts to list.
#[derive(Debug, Clone, Default)]
pub struct AlertFilter {
    pub state: Option<AlertState>,
    pub level: Option<AlertLevel>,
    /// Alerts fired at or after this, or still firing.
    pub since: Option<DateTime<Utc>>,
    pub limit: u32,
}

impl Store {
    /// A new alert and its first event (`fired`, or `inhibited` when it is held back). Returns the alert's id
    /// and the event's.
    pub async fn open_alert(
        &self,
        rule: &str,
        target: &str,
        level: AlertLevel,
        summary: &str,
        at: DateTime<Utc>,
        kind: AlertEventKind,
    ) -> Result<(i64, i64), StoreError> {
        let mut conn = self.pool().acquire().await?;
        let mut tx = conn.begin().await?;
        let notified = kind.notifies().then(|| to_ms(at));
        let alert_id = sqlx::query(
            "INSERT INTO alerts (rule, target, level, state, summary, fired_at_ms, last_notified_at_ms)
             VALUES (?1, ?2, ?3, 'firing', ?4, ?5, ?6)",
        )
        .bind(rule)
        .bind(target)
        .bind(level.as_str())
        .bind(summary)
        .bind(to_ms(at))
        .bind(notified)
        .execute(&mut *tx)
        .await?
        .last_insert_rowid();
        let event_id = insert_event(&mut tx, alert_id, kind, level, summary, at).await?;
        tx.commit().await?;
        txn::confirm_committed(&mut conn).await?;
        Ok((alert_id, event_id))
    }

    /// Records an event of a firing alert and what it changes: a notice (`repeated`, `escalated`, or `fired`
    /// after inhibition) restarts the cooldown and the count of suppressed repeats; a `suppressed` repeat adds
    /// one to that count (its event row only when `with_event`, so a long outage is not a row per check);
    /// `resolved` ends the alert. Returns the event's id, when one was written.
    pub async fn alert_event(
        &self,
        alert_id: i64,
        kind: AlertEventKind,
        level: AlertLevel,
        summary: &str,
        at: DateTime<Utc>,
        with_event: bool,
    ) -> Result<Option<i64>, StoreError> {
        let mut conn = self.pool().acquire().await?;
        let mut tx = conn.begin().await?;
        let at_ms = to_ms(at);
        let update = match kind {
            AlertEventKind::Fired | AlertEventKind::Repeated | AlertEventKind::Escalated => {
                sqlx::query(
                    "UPDATE alerts SET last_notified_at_ms = ?2, suppressed = 0, level = ?3, summary = ?4
                     WHERE id = ?1",
                )
                .bind(alert_id)
                .bind(at_ms)
                .bind(level.as_str())
                .bind(summary)
            }
            AlertEventKind::Suppressed => {
                sqlx::query("UPDATE alerts SET suppressed = suppressed + 1, summary = ?2 WHERE id = ?1")
                    .bind(alert_id)
                    .bind(summary)
            }
            AlertEventKind::Inhibited => sqlx::query("UPDATE alerts SET summary = ?2 WHERE id = ?1")
                .bind(alert_id)
                .bind(summary),
            AlertEventKind::Resolved => sqlx::query(
                "UPDATE alerts SET state = 'resolved', resolved_at_ms = ?2 WHERE id = ?1",
            )
            .bind(alert_id)
            .bind(at_ms),
        };
        update.execute(&mut *tx).await?;
        let event_id = if with_event {
            Some(insert_event(&mut tx, alert_id, kind, level, summary, at).await?)
        } else {
            None
        };
        tx.commit().await?;
        txn::confirm_committed(&mut conn).await?;
        Ok(event_id)
    }

    /// A one-off announcement (a workflow's notice, not a rule's condition): an alert stored already
    /// resolved, opened and ended at `at`, with its `fired` event (the one its deliveries point to) and its
    /// `resolved` event. It is in the history (`alerts`) but never firing, so nothing restores it at start.
    /// Returns the alert's id and the `fired` event's.
    pub async fn record_announcement(
        &self,
        rule: &str,
        target: &str,
        level: AlertLevel,
        summary: &str,
        at: DateTime<Utc>,
    ) -> Result<(i64, i64), StoreError> {
        let mut conn = self.pool().acquire().await?;
        let mut tx = conn.begin().await?;
        let alert_id = sqlx::query(
            "INSERT INTO alerts (rule, target, level, state, summary, fired_at_ms, last_notified_at_ms,
                                 resolved_at_ms)
             VALUES (?1, ?2, ?3, 'resolved', ?4, ?5, ?5, ?5)",
        )
        .bind(rule)
        .bind(target)
        .bind(level.as_str())
        .bind(summary)
        .bind(to_ms(at))
        .execute(&mut *tx)
        .await?
        .last_insert_rowid();
        let event_id =
            insert_event(&mut tx, alert_id, AlertEventKind::Fired, level, summary, at).await?;
        insert_event(
            &mut tx,
            alert_id,
            AlertEventKind::Resolved,
            level,
            summary,
            at,
        )
        .await?;
        tx.commit().await?;
        txn::confirm_committed(&mut conn).await?;
        Ok((alert_id, event_id))
    }

    /// Every alert firing now.
    pub async fn firing_alerts(&self) -> Result<Vec<StoredAlert>, StoreError> {
        self.alerts(&AlertFilter {
            state: Some(AlertState::Firing),
            limit: u32::MAX,
            ..AlertFilter::default()
        })
        .await
    }

    /// Alerts, newest first.
    pub async fn alerts(&self, filter: &AlertFilter) -> Result<Vec<StoredAlert>, StoreError> {
        let rows: Vec<AlertRow> = sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM alerts
             WHERE (?1 IS NULL OR state = ?1) AND (?2 IS NULL OR level = ?2)
               AND (fired_at_ms >= ?3 OR state = 'firing')
             ORDER BY fired_at_ms DESC, id DESC LIMIT ?4"
        ))
        .bind(filter.state.map(|s| s.as_str()))
        .bind(filter.level.map(|l| l.as_str()))
        .bind(filter.since.map_or(i64::MIN, to_ms))
        .bind(i64::from(filter.limit))
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().filter_map(AlertRow::parse).collect())
    }

    /// Failed scheduled checks at or after `since`, oldest first: how the alert manager rebuilds its
    /// "failures within a window" counts after a restart.
    pub async fn failed_checks_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<(String, DateTime<Utc>)>, StoreError> {
        // Per target (CROSS JOIN keeps targets first), a range scan of its key: the table has no time index.
        let rows: Vec<(String, i64)> = sqlx::query_as(&format!(
            "SELECT t.name, c.checked_at_ms FROM targets AS t
             CROSS JOIN checks AS c ON c.target_id = t.id AND c.checked_at_ms >= ?1
             WHERE {} = ?2 AND {} != ?3
             ORDER BY c.checked_at_ms",
            codes::source_sql("c.state"),
            codes::outcome_sql("c.state")
        ))
        .bind(to_ms(since))
        .bind(codes::Code::code(crate::records::CheckSource::Monitor))
        .bind(codes::Code::code(crate::records::Outcome::Up))
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().map(|(t, at)| (t, from_ms(at))).collect())
    }
}

async fn insert_event(
    tx: &mut sqlx::SqliteConnection,
    alert_id: i64,
    kind: AlertEventKind,
    level: AlertLevel,
    summary: &str,
    at: DateTime<Utc>,
) -> Result<i64, StoreError> {
    Ok(sqlx::query(
        "INSERT INTO alert_events (alert_id, at_ms, kind, level, summary) VALUES (?1, ?2, ?3, ?4, ?5)",
    )
    .bind(alert_id)
    .bind(to_ms(at))
    .bind(kind.as_str())
    .bind(level.as_str())
    .bind(summary)
    .execute(tx)
    .await?
    .last_insert_rowid())
}
