//! What reports, the status page and the history generator read and write besides the writer's rows: daily
//! totals from the rollups (one query for every target), exact window totals from raw checks (`--exact`),
//! the restarts of a window with their reasons, and maintenance windows when the schema has them.

use chrono::{DateTime, NaiveDate, Utc};

use crate::records::ChildStartCause;
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

/// One target's checks over a window, counted from every raw row.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExactTotals {
    pub total: u64,
    pub good: u64,
    /// Checks with a measured latency that were made (not `circuit_open`).
    pub measured: u64,
    /// The nearest-rank 95th percentile of those latencies, in µs.
    pub p95_us: Option<u64>,
    /// Those at or under the latency target.
    pub under_target: u64,
}

/// A restart of a supervised child, or a heal command that ran.
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
            "SELECT service, hour_ms / ?3 AS day, sum(total), sum(good) FROM health_check_hourly
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

    /// One target's scheduled checks in `[since, until)` counted from the raw rows, with the exact p95.
    pub async fn exact_totals(
        &self,
        service: &str,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
        latency_target_us: u64,
    ) -> Result<ExactTotals, StoreError> {
        let (total, good, measured, under): (i64, Option<i64>, Option<i64>, Option<i64>) =
            sqlx::query_as(
                "SELECT count(*), sum(outcome = 'up'),
                        sum(latency_us IS NOT NULL AND outcome != 'circuit_open'),
                        sum(latency_us IS NOT NULL AND outcome != 'circuit_open' AND latency_us <= ?4)
                 FROM health_checks
                 WHERE service = ?1 AND checked_at_ms >= ?2 AND checked_at_ms < ?3 AND source = 'monitor'",
            )
            .bind(service)
            .bind(to_ms(since))
            .bind(to_ms(until))
            .bind(i64::try_from(latency_target_us).unwrap_or(i64::MAX))
            .fetch_one(self.pool())
            .await?;
        let measured = count(measured.unwrap_or(0));
        let p95_us = if measured == 0 {
            None
        } else {
            // Nearest rank, as LatencyHistogram::quantile_us.
            let rank = ((0.95 * measured as f64).ceil() as i64).max(1);
            let p95: Option<i64> = sqlx::query_scalar(
                "SELECT latency_us FROM health_checks
                 WHERE service = ?1 AND checked_at_ms >= ?2 AND checked_at_ms < ?3 AND source = 'monitor'
                   AND latency_us IS NOT NULL AND outcome != 'circuit_open'
                 ORDER BY latency_us LIMIT 1 OFFSET ?4",
            )
            .bind(service)
            .bind(to_ms(since))
            .bind(to_ms(until))
            .bind(rank - 1)
            .fetch_optional(self.pool())
            .await?;
            p95.map(count)
        };
        Ok(ExactTotals {
            total: count(total),
            good: count(good.unwrap_or(0)),
            measured,
            p95_us,
            under_target: count(under.unwrap_or(0)),
        })
    }

    /// Restarts of supervised children (after an exit, or by a heal) that started in `[since, until)`, oldest
    /// first, each with how the run before it ended.
    pub async fn child_restarts(
        &self,
        target: Option<&str>,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<ChildRestart>, StoreError> {
        let rows: Vec<RestartRow> = sqlx::query_as(
            "SELECT r.target, r.started_at_ms, r.cause,
                    (SELECT p.exit_code FROM child_runs p WHERE p.target = r.target AND p.id < r.id
                     ORDER BY p.id DESC LIMIT 1),
                    (SELECT p.exit_signal FROM child_runs p WHERE p.target = r.target AND p.id < r.id
                     ORDER BY p.id DESC LIMIT 1)
             FROM child_runs r
             WHERE r.cause IN ('exited', 'heal') AND r.started_at_ms >= ?1 AND r.started_at_ms < ?2
               AND (?3 IS NULL OR r.target = ?3)
             ORDER BY r.started_at_ms, r.id",
        )
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
                // The CHECK constraint and the WHERE clause keep the cause to these two.
                cause: ChildStartCause::parse(&cause).unwrap_or(ChildStartCause::Exited),
                previous_exit_code: code.and_then(|c| i32::try_from(c).ok()),
                previous_exit_signal: signal.and_then(|s| i32::try_from(s).ok()),
            })
            .collect())
    }

    /// True when the schema has this table (`maintenance_windows` arrives with migration 0005).
    pub async fn has_table(&self, name: &str) -> Result<bool, StoreError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
        )
        .bind(name)
        .fetch_one(self.pool())
        .await?;
        Ok(n > 0)
    }

    /// Writes a maintenance window of `target` into `maintenance_windows`, matching its columns by name
    /// (target or service; starts/from; ends/until; reason). None when the table is missing or has a
    /// required column this cannot fill: the caller says so.
    pub async fn insert_maintenance_window(
        &self,
        target: &str,
        from: DateTime<Utc>,
        until: DateTime<Utc>,
        reason: &str,
    ) -> Result<Option<i64>, StoreError> {
        if !self.has_table("maintenance_windows").await? {
            return Ok(None);
        }
        // (name, type, notnull, default, pk)
        let columns: Vec<(String, String, i64, Option<String>, i64)> = sqlx::query_as(
            "SELECT name, type, \"notnull\", dflt_value, pk FROM pragma_table_info('maintenance_windows')",
        )
        .fetch_all(self.pool())
        .await?;
        enum Value<'a> {
            Text(&'a str),
            Ms(i64),
        }
        let mut names = Vec::new();
        let mut values = Vec::new();
        for (name, _, notnull, default, pk) in &columns {
            let lower = name.to_ascii_lowercase();
            let value = if lower.contains("target") || lower.contains("service") {
                Some(Value::Text(target))
            } else if lower.starts_with("start") || lower.starts_with("from") {
                Some(Value::Ms(to_ms(from)))
            } else if lower.starts_with("end") || lower.starts_with("until") {
                Some(Value::Ms(to_ms(until)))
            } else if lower.contains("reason")
                || lower.contains("note")
                || lower.contains("summary")
            {
                Some(Value::Text(reason))
            } else if lower.starts_with("created") {
                Some(Value::Ms(to_ms(from)))
            } else {
                None
            };
            match value {
                Some(v) => {
                    names.push(format!("\"{name}\""));
                    values.push(v);
                }
                None if *notnull != 0 && default.is_none() && *pk == 0 => return Ok(None),
                None => {}
            }
        }
        if names.is_empty() {
            return Ok(None);
        }
        let marks: Vec<String> = (1..=names.len()).map(|i| format!("?{i}")).collect();
        let sql = format!(
            "INSERT INTO maintenance_windows ({}) VALUES ({})",
            names.join(", "),
            marks.join(", ")
        );
        let mut query = sqlx::query(&sql);
        for v in values {
            query = match v {
                Value::Text(t) => query.bind(t),
                Value::Ms(ms) => query.bind(ms),
            };
        }
        Ok(Some(query.execute(self.pool()).await?.last_insert_rowid()))
    }

    /// Row counts of the tables the history generator writes, for its summary.
    pub async fn table_rows(&self, table: &str) -> Result<u64, StoreError> {
        if !self.has_table(table).await? {
            return Ok(0);
        }
        // The name is checked against sqlite_master above, so it is a real table name.
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
            "SELECT DISTINCT service FROM health_check_hourly WHERE hour_ms >= ?1 AND hour_ms < ?2
             ORDER BY service",
        )
        .bind(super::to_ms(from))
        .bind(super::to_ms(until))
        .fetch_all(self.pool())
        .await?)
    }
}
