//! hale's own runs: one row per start, closed by a graceful stop. A run that was never closed was killed or
//! crashed; the next start says so.

use chrono::{DateTime, Utc};

use crate::process;
use crate::store::{from_ms, to_ms, Store, StoreError};

/// A run of hale on this database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    pub id: i64,
    pub started_at: DateTime<Utc>,
    pub pid: u32,
    pub version: String,
    /// None while running, or when it was killed or crashed.
    pub ended_at: Option<DateTime<Utc>>,
    pub lost_checks: Option<u64>,
}

impl Run {
    /// True when this run was never closed and nothing can close it any more: its pid is gone, is this
    /// process (which is starting a new run), is another program, or started after the run began (a reused
    /// pid). A run whose hale still runs (one that kept running on a database moved or replaced under it) is
    /// not unclean: its own graceful stop will close it.
    pub fn ended_uncleanly(&self) -> bool {
        self.ended_at.is_none() && !self.still_running()
    }

    fn still_running(&self) -> bool {
        let me = std::process::id();
        if self.pid == 0 || self.pid == me {
            return false;
        }
        let Some(process_started_ms) = process::started_at_ms(self.pid) else {
            return false;
        };
        // A hale records its run after it starts; a second of slack covers the clock-tick rounding.
        if process_started_ms > to_ms(self.started_at).saturating_add(1_000) {
            return false;
        }
        matches!((process::comm(self.pid), process::comm(me)), (Some(it), Some(us)) if it == us)
    }
}

#[derive(sqlx::FromRow)]
struct RunRow {
    id: i64,
    started_at_ms: i64,
    pid: i64,
    version: String,
    ended_at_ms: Option<i64>,
    lost_checks: Option<i64>,
}

impl From<RunRow> for Run {
    fn from(row: RunRow) -> Self {
        Self {
            id: row.id,
            started_at: from_ms(row.started_at_ms),
            pid: u32::try_from(row.pid).unwrap_or(0),
            version: row.version,
            ended_at: row.ended_at_ms.map(from_ms),
            lost_checks: row.lost_checks.and_then(|n| u64::try_from(n).ok()),
        }
    }
}

/// A start of hale, and whether the run before it ended cleanly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HaleStart {
    pub run: Run,
    /// The run before it was never closed: it was killed or crashed, so this start is a restart of hale.
    pub after_unclean_end: bool,
}

/// SQL: child run `c` is a start (not a restart by the supervisor or a heal) of a target that ran before, made
/// by a start of hale that followed an unclean end. That child died with the killed hale (its parent-death
/// signal, or the next start's clean-up), so this start is a restart of the target too.
pub(crate) const CHILD_STARTED_AFTER_UNCLEAN_END: &str = "c.cause = 'start'
    AND EXISTS (SELECT 1 FROM child_runs p WHERE p.target = c.target AND p.id < c.id)
    AND EXISTS (SELECT 1 FROM hale_runs prev WHERE prev.ended_at_ms IS NULL AND prev.id = (
        SELECT max(b.id) FROM hale_runs b WHERE b.id < (
            SELECT h.id FROM hale_runs h WHERE h.started_at_ms <= c.started_at_ms
            ORDER BY h.started_at_ms DESC, h.id DESC LIMIT 1)))";

impl Store {
    /// Records this start. Returns its id and the run before it, if any.
    pub async fn start_run(
        &self,
        at: DateTime<Utc>,
        pid: u32,
        version: &str,
    ) -> Result<(i64, Option<Run>), StoreError> {
        let previous: Option<RunRow> = sqlx::query_as(
            "SELECT id, started_at_ms, pid, version, ended_at_ms, lost_checks FROM hale_runs
             ORDER BY id DESC LIMIT 1",
        )
        .fetch_optional(self.pool())
        .await?;
        let id =
            sqlx::query("INSERT INTO hale_runs (started_at_ms, pid, version) VALUES (?1, ?2, ?3)")
                .bind(to_ms(at))
                .bind(i64::from(pid))
                .bind(version)
                .execute(self.pool())
                .await?
                .last_insert_rowid();
        Ok((id, previous.map(Run::from)))
    }

    /// Closes a run at a graceful stop.
    pub async fn end_run(
        &self,
        id: i64,
        at: DateTime<Utc>,
        lost_checks: u64,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE hale_runs SET ended_at_ms = ?1, lost_checks = ?2 WHERE id = ?3")
            .bind(to_ms(at))
            .bind(i64::try_from(lost_checks).unwrap_or(i64::MAX))
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Starts of hale in `[from, until)`, oldest first, each with how the run before it ended.
    pub async fn hale_starts_between(
        &self,
        from: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<HaleStart>, StoreError> {
        #[derive(sqlx::FromRow)]
        struct StartRow {
            #[sqlx(flatten)]
            run: RunRow,
            /// Null for the first start: no run before it.
            previous_unclean: Option<bool>,
        }
        let rows: Vec<StartRow> = sqlx::query_as(
            "SELECT r.id, r.started_at_ms, r.pid, r.version, r.ended_at_ms, r.lost_checks,
                    (SELECT p.ended_at_ms IS NULL FROM hale_runs p WHERE p.id < r.id
                     ORDER BY p.id DESC LIMIT 1) AS previous_unclean
             FROM hale_runs r WHERE r.started_at_ms >= ?1 AND r.started_at_ms < ?2 ORDER BY r.id",
        )
        .bind(to_ms(from))
        .bind(to_ms(until))
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|row| HaleStart {
                run: Run::from(row.run),
                after_unclean_end: row.previous_unclean.unwrap_or(false),
            })
            .collect())
    }
}
