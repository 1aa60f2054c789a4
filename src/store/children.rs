//! Supervised children's runs: one row per start, closed when the child exits (by itself or stopped by hale).
//! A row still open at the next start of hale names a child that a killed hale may have left behind.

use chrono::{DateTime, Utc};

use crate::records::ChildStartCause;
use crate::store::{from_ms, to_ms, Store, StoreError};

/// One start of a supervised child.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildRun {
    pub id: i64,
    pub target: String,
    pub pid: u32,
    /// The process's start time in clock ticks since boot (`/proc/<pid>/stat` field 22), when known: with
    /// the pid, it tells the child from an unrelated process that reused the pid.
    pub proc_start_ticks: Option<u64>,
    pub started_at: DateTime<Utc>,
    pub cause: ChildStartCause,
    /// None while it runs (or when a killed hale could not record its end).
    pub exited_at: Option<DateTime<Utc>>,
    pub exit_code: Option<i32>,
    pub exit_signal: Option<i32>,
}

#[derive(sqlx::FromRow)]
struct ChildRunRow {
    id: i64,
    target: String,
    pid: i64,
    proc_start_ticks: Option<i64>,
    started_at_ms: i64,
    cause: String,
    exited_at_ms: Option<i64>,
    exit_code: Option<i64>,
    exit_signal: Option<i64>,
}

impl From<ChildRunRow> for ChildRun {
    fn from(row: ChildRunRow) -> Self {
        Self {
            id: row.id,
            target: row.target,
            pid: u32::try_from(row.pid).unwrap_or(0),
            proc_start_ticks: row.proc_start_ticks.and_then(|t| u64::try_from(t).ok()),
            started_at: from_ms(row.started_at_ms),
            // The CHECK constraint keeps the column to the three causes; an unknown one reads as a start.
            cause: ChildStartCause::parse(&row.cause).unwrap_or(ChildStartCause::Start),
            exited_at: row.exited_at_ms.map(from_ms),
            exit_code: row.exit_code.and_then(|c| i32::try_from(c).ok()),
            exit_signal: row.exit_signal.and_then(|s| i32::try_from(s).ok()),
        }
    }
}

const COLUMNS: &str =
    "id, target, pid, proc_start_ticks, started_at_ms, cause, exited_at_ms, exit_code, exit_signal";

impl Store {
    /// Records a start of `target`'s child; returns the row's id.
    pub async fn child_started(
        &self,
        target: &str,
        pid: u32,
        proc_start_ticks: Option<u64>,
        at: DateTime<Utc>,
        cause: ChildStartCause,
    ) -> Result<i64, StoreError> {
        let id = sqlx::query(
            "INSERT INTO child_runs (target, pid, proc_start_ticks, started_at_ms, cause)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .bind(target)
        .bind(i64::from(pid))
        .bind(proc_start_ticks.and_then(|t| i64::try_from(t).ok()))
        .bind(to_ms(at))
        .bind(cause.as_str())
        .execute(self.pool())
        .await?
        .last_insert_rowid();
        Ok(id)
    }

    /// Closes a child's row: it exited at `at` with this code or signal (both None: unknown).
    pub async fn child_exited(
        &self,
        id: i64,
        at: DateTime<Utc>,
        code: Option<i32>,
        signal: Option<i32>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE child_runs SET exited_at_ms = ?1, exit_code = ?2, exit_signal = ?3
             WHERE id = ?4 AND exited_at_ms IS NULL",
        )
        .bind(to_ms(at))
        .bind(code)
        .bind(signal)
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The rows still open, oldest first: children running now, or left behind by a hale that was killed.
    pub async fn open_child_runs(&self) -> Result<Vec<ChildRun>, StoreError> {
        let rows: Vec<ChildRunRow> = sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM child_runs WHERE exited_at_ms IS NULL ORDER BY id"
        ))
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().map(ChildRun::from).collect())
    }

    /// The latest `limit` runs of `target`'s child, newest first.
    pub async fn child_runs(&self, target: &str, limit: u32) -> Result<Vec<ChildRun>, StoreError> {
        let rows: Vec<ChildRunRow> = sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM child_runs WHERE target = ?1 ORDER BY id DESC LIMIT ?2"
        ))
        .bind(target)
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().map(ChildRun::from).collect())
    }
}
