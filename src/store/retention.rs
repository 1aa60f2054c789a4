//! Retention: old rows are deleted in small chunks, so a prune never holds the write lock for long. The
//! `Retention` worker prunes every hour, whichever services this process runs.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use tokio_util::sync::CancellationToken;

use crate::clock::{Clock, Ticker};
use crate::store::health_checks::ERROR_STAMP_EVERY_MS;
use crate::store::{to_ms, Store, StoreError};
use crate::worker::Worker;

/// How often old rows are pruned.
pub const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Rows deleted per statement.
const CHUNK: i64 = 10_000;

/// How many rows a prune deleted, per table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    pub checks: u64,
    pub rollups: u64,
    pub transitions: u64,
    pub audit: u64,
    /// Heal attempts and starts of supervised children.
    pub heals: u64,
    /// Resolved alerts (with their events) and alert deliveries.
    pub alerts: u64,
    /// Calls of MCP tools through the bridge.
    pub tool_calls: u64,
    /// Finished workflow runs, with their step attempts and approvals.
    pub workflow_runs: u64,
}

impl Pruned {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

impl Store {
    /// Deletes raw checks, audit rows, tool calls and finished workflow runs older than `checks_before`, and hourly rollups, breaker
    /// transitions, heal attempts, child starts, resolved alerts and deliveries older than `rollups_before`
    /// (the SLO reports count restarts and alerts over the rollups' horizon).
    pub async fn prune(
        &self,
        checks_before: DateTime<Utc>,
        rollups_before: DateTime<Utc>,
    ) -> Result<Pruned, StoreError> {
        Ok(Pruned {
            checks: self.delete_old_checks(checks_before).await?,
            rollups: self
                .delete_older(
                    "checks_hourly",
                    "hour_ms, target_id",
                    "hour_ms",
                    rollups_before,
                )
                .await?,
            transitions: self
                .delete_older("breaker_transitions", "rowid", "at_ms", rollups_before)
                .await?,
            // The audit log is kept as long as the raw checks.
            audit: self
                .delete_older("audit_log", "rowid", "at_ms", checks_before)
                .await?,
            heals: self
                .delete_older("heal_events", "rowid", "started_at_ms", rollups_before)
                .await?
                + self
                    .delete_older("child_runs", "rowid", "exited_at_ms", rollups_before)
                    .await?,
            // A firing alert has no `resolved_at_ms`, so it is never pruned; its events go with it.
            alerts: self
                .delete_older("alerts", "rowid", "resolved_at_ms", rollups_before)
                .await?
                + self
                    .delete_older("alert_deliveries", "rowid", "created_at_ms", rollups_before)
                    .await?,
            // Tool calls are kept as long as the raw checks, like the audit log.
            tool_calls: self
                .delete_older("tool_calls", "rowid", "at_ms", checks_before)
                .await?,
            // Finished workflow runs are kept as long as the raw checks and the audit log that records who
            // started them; a run in progress is never pruned.
            workflow_runs: self.delete_finished_runs(checks_before).await?,
        })
    }

    /// Raw checks older than `before`, target by target: the `checks` table has no time index, so each delete
    /// is a range of its key (target_id, checked_at_ms), at most about `CHUNK` rows per statement. Then the
    /// error texts no kept check can use: `last_used_ms` lags the newest use by up to
    /// `ERROR_STAMP_EVERY_MS`, so only texts last used that much before `before` go.
    async fn delete_old_checks(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let targets: Vec<i64> = sqlx::query_scalar("SELECT id FROM targets ORDER BY id")
            .fetch_all(self.pool())
            .await?;
        let before_ms = to_ms(before);
        let mut total = 0;
        for target in targets {
            loop {
                // Up to the CHUNK-th oldest old row (ties included, so each pass deletes at least one), or
                // every old row when there are fewer.
                let deleted = sqlx::query(
                    "DELETE FROM checks WHERE target_id = ?1 AND checked_at_ms < ?2 AND checked_at_ms <= coalesce(
                         (SELECT checked_at_ms FROM checks WHERE target_id = ?1 AND checked_at_ms < ?2
                          ORDER BY checked_at_ms LIMIT 1 OFFSET ?3), ?2)",
                )
                .bind(target)
                .bind(before_ms)
                .bind(CHUNK - 1)
                .execute(self.pool())
                .await?
                .rows_affected();
                total += deleted;
                if deleted < CHUNK as u64 {
                    break;
                }
                tokio::task::yield_now().await;
            }
        }
        sqlx::query("DELETE FROM check_errors WHERE last_used_ms < ?1")
            .bind(before_ms - ERROR_STAMP_EVERY_MS)
            .execute(self.pool())
            .await?;
        Ok(total)
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

/// Prunes raw checks older than `raw_days` and rollups and breaker transitions older than `rollup_days`, at
/// start and then every `PRUNE_EVERY`.
#[derive(Debug)]
pub struct Retention {
    pub store: Store,
    pub clock: Arc<dyn Clock>,
    pub raw_days: u32,
    pub rollup_days: u32,
}

impl Retention {
    async fn prune_once(&self) {
        let now = self.clock.now();
        let checks_before = now - chrono::Duration::days(i64::from(self.raw_days));
        let rollups_before = now - chrono::Duration::days(i64::from(self.rollup_days));
        match self.store.prune(checks_before, rollups_before).await {
            Ok(pruned) if pruned.is_empty() => {}
            Ok(pruned) => tracing::info!(
                checks = pruned.checks,
                rollups = pruned.rollups,
                transitions = pruned.transitions,
                audit = pruned.audit,
                heals = pruned.heals,
                alerts = pruned.alerts,
                tool_calls = pruned.tool_calls,
                workflow_runs = pruned.workflow_runs,
                "pruned old rows"
            ),
            Err(e) => tracing::warn!(error = %e, "pruning old rows failed"),
        }
    }
}

impl Worker for Retention {
    fn name(&self) -> &'static str {
        "retention"
    }

    fn run(self: Arc<Self>, cancel: CancellationToken) -> BoxFuture<'static, ()> {
        let started = self.clock.now();
        Box::pin(async move {
            let mut ticker = Ticker::from(self.clock.clone(), started, Duration::ZERO, PRUNE_EVERY);
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = ticker.tick() => {}
                }
                // Not raced with cancellation: a prune is a few short statements.
                self.prune_once().await;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    /// `n` checks of `service`, one a second from `from_s` (epoch seconds), every 7th down with `error`.
    async fn checks(store: &Store, service: &str, from_s: i64, n: i64, error: &str) {
        sqlx::query(
            "WITH RECURSIVE i(k) AS (SELECT 0 UNION ALL SELECT k + 1 FROM i WHERE k < ?3 - 1)
             INSERT INTO health_checks (checked_at_ms, service, outcome, http_status, latency_us, error, breaker_state, source)
             SELECT (?2 + k) * 1000, ?1, CASE WHEN k % 7 = 0 THEN 'down' ELSE 'up' END, 200, 1000,
                    CASE WHEN k % 7 = 0 THEN ?4 END, 'closed', 'monitor'
             FROM i",
        )
        .bind(service)
        .bind(from_s)
        .bind(n)
        .bind(error)
        .execute(store.pool())
        .await
        .unwrap();
    }

    async fn count(store: &Store, sql: &str) -> i64 {
        sqlx::query_scalar(sql)
            .fetch_one(store.pool())
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn old_checks_go_target_by_target_in_chunks_and_unused_error_texts_with_them() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("hale.db")).await.unwrap();
        let day = 86_400;
        let t0 = 1_790_000_000;
        // api: 25,000 old checks (more than two chunks) and 100 new; db: 50 old only, with its own error text.
        checks(&store, "api", t0, 25_000, "refused").await;
        checks(&store, "api", t0 + 10 * day, 100, "refused").await;
        checks(&store, "db", t0, 50, "db only").await;
        let cutoff = Utc.timestamp_opt(t0 + 5 * day, 0).unwrap();
        let pruned = store.prune(cutoff, cutoff).await.unwrap();
        assert_eq!(pruned.checks, 25_050);
        assert_eq!(count(&store, "SELECT count(*) FROM checks").await, 100);
        assert_eq!(
            count(
                &store,
                "SELECT count(*) FROM health_checks WHERE error = 'refused'"
            )
            .await,
            15,
            "kept checks keep their error text"
        );
        assert_eq!(
            count(
                &store,
                "SELECT count(*) FROM check_errors WHERE message = 'db only'"
            )
            .await,
            0,
            "a text no kept check uses is deleted"
        );
        // Nothing left to prune: a second pass deletes nothing.
        assert_eq!(store.prune(cutoff, cutoff).await.unwrap().checks, 0);
    }
}
