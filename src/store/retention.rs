//! Retention: old rows are deleted in small chunks, so a prune never holds the write lock for long.

use chrono::{DateTime, Utc};

use crate::store::{to_ms, Store, StoreError};

/// Rows deleted per statement.
const CHUNK: i64 = 10_000;

/// How many rows a prune deleted, per table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    pub checks: u64,
    pub rollups: u64,
    pub transitions: u64,
}

impl Pruned {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

impl Store {
    /// Deletes raw checks older than `checks_before`, and hourly rollups and breaker transitions older than
    /// `rollups_before`.
    pub async fn prune(
        &self,
        checks_before: DateTime<Utc>,
        rollups_before: DateTime<Utc>,
    ) -> Result<Pruned, StoreError> {
        Ok(Pruned {
            checks: self
                .delete_older("health_checks", "rowid", "checked_at_ms", checks_before)
                .await?,
            rollups: self
                .delete_older(
                    "health_check_hourly",
                    "service, hour_ms",
                    "hour_ms",
                    rollups_before,
                )
                .await?,
            transitions: self
                .delete_older("breaker_transitions", "rowid", "at_ms", rollups_before)
                .await?,
        })
    }

    /// `table`, `key` and `time` are constants of this module, never input.
    async fn delete_older(
        &self,
        table: &str,
        key: &str,
        time: &str,
        before: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let sql = format!(
            "DELETE FROM {table} WHERE ({key}) IN (SELECT {key} FROM {table} WHERE {time} < ?1 LIMIT ?2)"
        );
        let mut total = 0;
        loop {
            let deleted = sqlx::query(&sql)
                .bind(to_ms(before))
                .bind(CHUNK)
                .execute(self.pool())
                .await?
                .rows_affected();
            total += deleted;
            if deleted < CHUNK as u64 {
                return Ok(total);
            }
            tokio::task::yield_now().await;
        }
    }
}
