//! Alert deliveries: one row per notice and channel, pending until delivered, kept as a dead letter, or
//! superseded by a later notice of the same alert to the same channel. The payload is what the channel is
//! sent (never a secret: URLs, tokens and passwords stay in the config).

use chrono::{DateTime, Utc};

use crate::records::AlertLevel;
use crate::store::{from_ms, to_ms, Store, StoreError};

/// A row still `pending`: a delivery a previous run did not finish, to be resumed.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingDelivery {
    pub id: i64,
    pub alert_event_id: Option<i64>,
    /// The alert of that event, when still stored.
    pub alert_id: Option<i64>,
    /// That alert's target, when still stored.
    pub target: Option<String>,
    pub channel: String,
    pub attempts: u32,
    pub payload: String,
    /// The rule and level of the alert, when its event is still stored (for the metrics' labels).
    pub rule: Option<String>,
    pub level: Option<AlertLevel>,
}

/// A notice that every attempt failed to deliver.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    pub id: i64,
    pub alert_event_id: Option<i64>,
    pub channel: String,
    pub attempts: u32,
    pub created_at: DateTime<Utc>,
    pub last_attempt_at: Option<DateTime<Utc>>,
    pub error: Option<String>,
    pub payload: String,
}

#[derive(sqlx::FromRow)]
struct PendingRow {
    id: i64,
    alert_event_id: Option<i64>,
    alert_id: Option<i64>,
    target: Option<String>,
    channel: String,
    attempts: i64,
    payload: String,
    rule: Option<String>,
    level: Option<String>,
}

#[derive(sqlx::FromRow)]
struct DeadRow {
    id: i64,
    alert_event_id: Option<i64>,
    channel: String,
    attempts: i64,
    created_at_ms: i64,
    last_attempt_at_ms: Option<i64>,
    error: Option<String>,
    payload: String,
}

fn attempts(raw: i64) -> u32 {
    u32::try_from(raw).unwrap_or(0)
}

impl Store {
    /// A new `pending` delivery; its id. The event is linked when it is stored (a notice made without one,
    /// such as a test's, keeps a null `alert_event_id`).
    pub async fn insert_delivery(
        &self,
        alert_event_id: i64,
        channel: &str,
        payload: &str,
        created_at: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO alert_deliveries (alert_event_id, channel, state, attempts, created_at_ms, payload)
             VALUES ((SELECT id FROM alert_events WHERE id = ?1), ?2, 'pending', 0, ?3, ?4)
             RETURNING id",
        )
        .bind(alert_event_id)
        .bind(channel)
        .bind(to_ms(created_at))
        .bind(payload)
        .fetch_one(self.pool())
        .await?;
        Ok(id)
    }

    /// A failed attempt of a delivery that will be retried: it stays `pending`.
    pub async fn delivery_attempt_failed(
        &self,
        id: i64,
        attempts: u32,
        at: DateTime<Utc>,
        error: &str,
    ) -> Result<(), StoreError> {
        self.finish_delivery(id, "pending", attempts, at, Some(error))
            .await
    }

    /// The delivery succeeded at attempt `attempts`.
    pub async fn delivery_delivered(
        &self,
        id: i64,
        attempts: u32,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.finish_delivery(id, "delivered", attempts, at, None)
            .await
    }

    /// Every attempt failed: the row becomes a dead letter with the last error.
    pub async fn delivery_dead(
        &self,
        id: i64,
        attempts: u32,
        at: DateTime<Utc>,
        error: &str,
    ) -> Result<(), StoreError> {
        self.finish_delivery(id, "dead", attempts, at, Some(error))
            .await
    }

    /// Pending rows that will not be sent because a later notice of the same alert to the same channel
    /// replaces them: `superseded`, with `reason`.
    pub async fn deliveries_superseded(&self, ids: &[i64], reason: &str) -> Result<(), StoreError> {
        self.set_deliveries(ids, "superseded", reason).await
    }

    /// Pending rows given up unsent (past the queue bound): dead letters with `reason`.
    pub async fn deliveries_dropped(&self, ids: &[i64], reason: &str) -> Result<(), StoreError> {
        self.set_deliveries(ids, "dead", reason).await
    }

    /// Moves pending rows to `state` with `error`, a few hundred per statement; attempts and the time of
    /// the last attempt stay as they are (these rows were not tried again).
    async fn set_deliveries(
        &self,
        ids: &[i64],
        state: &str,
        error: &str,
    ) -> Result<(), StoreError> {
        for chunk in ids.chunks(500) {
            // Numbered like the others: sqlx counts bare `?` apart from `?N`.
            let marks: Vec<String> = (3..3 + chunk.len()).map(|n| format!("?{n}")).collect();
            let marks = marks.join(", ");
            let sql = format!(
                "UPDATE alert_deliveries SET state = ?1, error = ?2
                 WHERE state = 'pending' AND id IN ({marks})"
            );
            let mut query = sqlx::query(&sql).bind(state).bind(error);
            for id in chunk {
                query = query.bind(*id);
            }
            query.execute(self.pool()).await?;
        }
        Ok(())
    }

    async fn finish_delivery(
        &self,
        id: i64,
        state: &str,
        attempts: u32,
        at: DateTime<Utc>,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE alert_deliveries SET state = ?2, attempts = ?3, last_attempt_at_ms = ?4, error = ?5
             WHERE id = ?1",
        )
        .bind(id)
        .bind(state)
        .bind(i64::from(attempts))
        .bind(to_ms(at))
        .bind(error)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The deliveries still `pending`, oldest first, with their alert's rule and level when known.
    pub async fn pending_deliveries(&self) -> Result<Vec<PendingDelivery>, StoreError> {
        let rows: Vec<PendingRow> = sqlx::query_as(
            "SELECT d.id, d.alert_event_id, e.alert_id, a.target, d.channel, d.attempts, d.payload, a.rule, e.level
             FROM alert_deliveries d
             LEFT JOIN alert_events e ON e.id = d.alert_event_id
             LEFT JOIN alerts a ON a.id = e.alert_id
             WHERE d.state = 'pending' ORDER BY d.created_at_ms, d.id",
        )
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|row| PendingDelivery {
                id: row.id,
                alert_event_id: row.alert_event_id,
                alert_id: row.alert_id,
                target: row.target,
                channel: row.channel,
                attempts: attempts(row.attempts),
                payload: row.payload,
                rule: row.rule,
                level: row.level.as_deref().and_then(AlertLevel::parse),
            })
            .collect())
    }

    /// Dead letters created at or after `since` (all when none), newest first, at most `limit`.
    pub async fn dead_letters(
        &self,
        since: Option<DateTime<Utc>>,
        limit: u32,
    ) -> Result<Vec<DeadLetter>, StoreError> {
        let rows: Vec<DeadRow> = sqlx::query_as(
            "SELECT id, alert_event_id, channel, attempts, created_at_ms, last_attempt_at_ms, error, payload
             FROM alert_deliveries WHERE state = 'dead' AND created_at_ms >= ?1
             ORDER BY created_at_ms DESC, id DESC LIMIT ?2",
        )
        .bind(since.map_or(i64::MIN, to_ms))
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|row| DeadLetter {
                id: row.id,
                alert_event_id: row.alert_event_id,
                channel: row.channel,
                attempts: attempts(row.attempts),
                created_at: from_ms(row.created_at_ms),
                last_attempt_at: row.last_attempt_at_ms.map(from_ms),
                error: row.error,
                payload: row.payload,
            })
            .collect())
    }
}
