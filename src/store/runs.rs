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
        let same_program = matches!((process::comm(self.pid), process::comm(me)), (Some(it), Some(us)) if it == us);
        still_running(
            process::started_at_ms(self.pid),
            same_program,
            to_ms(self.started_at),
        )
    }
}

/// Whether the process that recorded a run may still be running it: it exists (`started_ms`, when it
/// started), runs the same program as this hale, and started before the run did (a hale records its run
/// after it starts; a second of slack covers the rounding to clock ticks).
fn still_running(started_ms: Option<i64>, same_program: bool, run_started_ms: i64) -> bool {
    started_ms.is_some_and(|started| started <= run_started_ms.saturating_add(1_000))
        && same_program
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

#[cfg(test)]
mod tests {
    use super::*;

    fn open_run(pid: u32, started_at: DateTime<Utc>) -> Run {
        Run {
            id: 1,
            started_at,
            pid,
            version: "0".into(),
            ended_at: None,
            lost_checks: None,
        }
    }

    #[test]
    fn a_run_is_unclean_only_when_its_hale_cannot_still_be_running_it() {
        // The rule: the pid exists, is the same program, and started no later than the run.
        assert!(still_running(Some(1_000), true, 1_500));
        assert!(still_running(Some(2_000), true, 1_500), "within the slack");
        assert!(!still_running(Some(9_000), true, 1_500), "a reused pid");
        assert!(!still_running(Some(1_000), false, 1_500), "another program");
        assert!(!still_running(None, true, 1_500), "gone");

        let now = Utc::now();
        // This very process is starting a new run: its own earlier run is over.
        assert!(open_run(std::process::id(), now).ended_uncleanly());
        // A live process that is not a hale (another program).
        let mut other = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        assert!(open_run(other.id(), now).ended_uncleanly());
        other.kill().unwrap();
        other.wait().unwrap();
        // A pid that is gone.
        assert!(open_run(other.id(), now).ended_uncleanly());
        let mut closed = open_run(other.id(), now);
        closed.ended_at = Some(now);
        assert!(!closed.ended_uncleanly(), "closed by a graceful stop");
    }
}
