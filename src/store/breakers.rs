//! Circuit-breaker state and transitions, so a restart neither resets nor extends an open breaker.

use sqlx::Connection;

use crate::breaker::{BreakerSnapshot, BreakerState, Transition};
use crate::store::{from_ms, known, to_ms, txn, Store, StoreError};

#[derive(sqlx::FromRow)]
struct BreakerRow {
    name: String,
    state: String,
    consecutive_failures: i64,
    consecutive_successes: i64,
    retry_at_ms: Option<i64>,
    updated_at_ms: i64,
}

impl Store {
    /// Every saved breaker. A row whose state is unknown to this version is skipped with a warning.
    pub async fn load_breakers(&self) -> Result<Vec<(String, BreakerSnapshot)>, StoreError> {
        let rows: Vec<BreakerRow> = sqlx::query_as(
            "SELECT name, state, consecutive_failures, consecutive_successes, retry_at_ms, updated_at_ms FROM breakers",
        )
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .filter_map(|row| {
                let state = known(
                    "breakers",
                    "state",
                    &row.state,
                    BreakerState::parse(&row.state),
                )?;
                let snapshot = BreakerSnapshot {
                    state,
                    consecutive_failures: u32::try_from(row.consecutive_failures).unwrap_or(0),
                    consecutive_successes: u32::try_from(row.consecutive_successes).unwrap_or(0),
                    retry_at: row.retry_at_ms.map(from_ms),
                    updated_at: from_ms(row.updated_at_ms),
                };
                Some((row.name, snapshot))
            })
            .collect())
    }

    /// Saves a breaker's state and, when it changed, the transition, in one transaction.
    pub async fn save_breaker(
        &self,
        name: &str,
        snapshot: &BreakerSnapshot,
        transition: Option<&Transition>,
    ) -> Result<(), StoreError> {
        let mut conn = self.pool().acquire().await?;
        let mut tx = conn.begin().await?;
        sqlx::query(
            "INSERT INTO breakers (name, state, consecutive_failures, consecutive_successes, retry_at_ms, updated_at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (name) DO UPDATE SET state = excluded.state,
                 consecutive_failures = excluded.consecutive_failures,
                 consecutive_successes = excluded.consecutive_successes,
                 retry_at_ms = excluded.retry_at_ms, updated_at_ms = excluded.updated_at_ms",
        )
        .bind(name)
        .bind(snapshot.state.as_str())
        .bind(i64::from(snapshot.consecutive_failures))
        .bind(i64::from(snapshot.consecutive_successes))
        .bind(snapshot.retry_at.map(to_ms))
        .bind(to_ms(snapshot.updated_at))
        .execute(&mut *tx)
        .await?;
        if let Some(t) = transition {
            sqlx::query(
                "INSERT INTO breaker_transitions (name, from_state, to_state, reason, at_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .bind(name)
            .bind(t.from.as_str())
            .bind(t.to.as_str())
            .bind(t.reason.as_str())
            .bind(to_ms(t.at))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        txn::confirm_committed(&mut conn).await?;
        Ok(())
    }

    /// Transitions of one breaker, oldest first.
    pub async fn breaker_transitions(
        &self,
        name: &str,
    ) -> Result<Vec<(BreakerState, BreakerState, String)>, StoreError> {
        let rows: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT from_state, to_state, reason FROM breaker_transitions WHERE name = ?1 ORDER BY at_ms, id",
        )
        .bind(name)
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(from, to, reason)| {
                let state = |column: &str, raw: &str| {
                    known("breaker_transitions", column, raw, BreakerState::parse(raw))
                };
                Some((state("from_state", &from)?, state("to_state", &to)?, reason))
            })
            .collect())
    }
}
