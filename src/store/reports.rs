//! What reports, the status page and the history generator read besides the writer's rows: daily totals
//! from the rollups (one query for every target), the restarts of a window with their reasons, the services
//! with history in a window, and table sizes.

use chrono::{DateTime, NaiveDate, Utc};

use crate::records::ChildStartCause;
use crate::store::runs::CHILD_STARTED_AFTER_UNCLEAN_END;
use crate::store::{from_ms, to_ms, Store, StoreError};

const DAY_MS: i64 = 86_400_000;

/// One target's scheduled checks during one UTC day, from the hourly rollups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DailyTotal {
    pub service: String,
    pub day: NaiveDate,
    pub total: u64,
    pub good: u64,
}

/// One target's scheduled checks in one hour: counts only, without the latency histogram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HourlyTotal {
    pub service: String,
    pub hour_ms: i64,
    pub total: u64,
    pub good: u64,
}

/// A restart of a supervised child: after it exited (`Exited`), by a heal (`Heal`), or at a start of hale
/// after hale was killed or crashed with it (`Start`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildRestart {
    pub target: String,
    pub started_at: DateTime<Utc>,
    pub cause: ChildStartCause,
    /// How the run before it ended: its exit code or signal, when known.
    pub previous_exit_code: Option<i32>,
    pub previous_exit_signal: Option<i32>,
}

/// target, started_at_ms, cause, and the previous run's exit code and signal.
type RestartRow = (String, i64, String, Option<i64>, Option<i64>);

fn count(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

impl Store {
    /// Daily totals of every target whose rollup hours start in `[since, until)`, by UTC day, oldest first:
    /// one range scan of the hourly table.
    pub async fn daily_totals(
        &self,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<DailyTotal>, StoreError> {
        let rows: Vec<(String, i64, i64, i64)> = sqlx::query_as(
            "SELECT t.name AS service, hour_ms / ?3 AS day, sum(total), sum(good)
             FROM checks_hourly JOIN targets AS t ON t.id = target_id
             WHERE hour_ms >= ?1 AND hour_ms < ?2 GROUP BY service, day ORDER BY service, day",
        )
        .bind(to_ms(since))
        .bind(to_ms(until))
        .bind(DAY_MS)
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(service, day, total, good)| DailyTotal {
                service,
                day: from_ms(day * DAY_MS).date_naive(),
                total: count(total),
                good: count(good),
            })
            .collect())
    }

    /// Every target's counts per hour in `[since, until)`, without decoding any latency histogram (what the
    /// status page's hourly bars need).
    pub async fn hourly_totals(
        &self,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<HourlyTotal>, StoreError> {
        let rows: Vec<(String, i64, i64, i64)> = sqlx::query_as(
            "SELECT t.name AS service, hour_ms, total, good
             FROM checks_hourly JOIN targets AS t ON t.id = target_id
             WHERE hour_ms >= ?1 AND hour_ms < ?2",
        )
        .bind(to_ms(since))
        .bind(to_ms(until))
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(service, hour_ms, total, good)| HourlyTotal {
                service,
                hour_ms,
                total: count(total),
                good: count(good),
            })
            .collect())
    }

    /// Restarts of supervised children (after an exit, by a heal, or at a start of hale that followed an
    /// unclean end) that started in `[since, until)`, oldest first, each with how the run before it ended.
    pub async fn child_restarts(
        &self,
        target: Option<&str>,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<ChildRestart>, StoreError> {
        let rows: Vec<RestartRow> = sqlx::query_as(&format!(
            "SELECT c.target, c.started_at_ms, c.cause,
                    (SELECT p.exit_code FROM child_runs p WHERE p.target = c.target AND p.id < c.id
                     ORDER BY p.id DESC LIMIT 1),
                    (SELECT p.exit_signal FROM child_runs p WHERE p.target = c.target AND p.id < c.id
                     ORDER BY p.id DESC LIMIT 1)
             FROM child_runs c
             WHERE c.started_at_ms >= ?1 AND c.started_at_ms < ?2 AND (?3 IS NULL OR c.target = ?3)
               AND (c.cause IN ('exited', 'heal') OR ({CHILD_STARTED_AFTER_UNCLEAN_END}))
             ORDER BY c.started_at_ms, c.id"
        ))
        .bind(to_ms(since))
        .bind(to_ms(until))
        .bind(target)
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(target, at, cause, code, signal)| ChildRestart {
                target,
                started_at: from_ms(at),
                // The CHECK constraint keeps the cause to the three names.
                cause: ChildStartCause::parse(&cause).unwrap_or(ChildStartCause::Exited),
                previous_exit_code: code.and_then(|c| i32::try_from(c).ok()),
                previous_exit_signal: signal.and_then(|s| i32::try_from(s).ok()),
            })
            .collect())
    }

    /// Row counts of the tables (or views) the history generator writes, for its summary; 0 for a table that
    /// does not exist.
    pub async fn table_rows(&self, table: &str) -> Result<u64, StoreError> {
        let exists: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM sqlite_master WHERE type IN ('table', 'view') AND name = ?1",
        )
        .bind(table)
        .fetch_one(self.pool())
        .await?;
        if exists == 0 {
            return Ok(0);
        }
        // The name is checked against sqlite_master above, so it is a real table or view name.
        let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM \"{table}\""))
            .fetch_one(self.pool())
            .await?;
        Ok(count(n))
    }
}

impl Store {
    /// The services with rollups in `[from, until)`, by name: one index range read, no histogram decoded.
    pub async fn services_between(
        &self,
        from: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT name FROM targets WHERE id IN
             (SELECT target_id FROM checks_hourly WHERE hour_ms >= ?1 AND hour_ms < ?2)
             ORDER BY name",
        )
        .bind(super::to_ms(from))
        .bind(super::to_ms(until))
        .fetch_all(self.pool())
        .await?)
    }
}
