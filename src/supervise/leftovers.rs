//! Children left behind by a hale that was killed (or crashed) before it could stop them: their rows in
//! `child_runs` are still open. At start, each one whose pid still runs with the same kernel start time is
//! killed with its process group; every such row is closed.

use crate::clock::Clock;
use crate::store::children::ChildRun;
use crate::store::Store;

/// Kills the leftovers of earlier runs and closes their rows. Runs before any child of this run starts.
pub(super) async fn clean_up(store: &Store, clock: &dyn Clock) {
    let rows = match store.open_child_runs().await {
        Ok(rows) => rows,
        Err(e) => {
            tracing::warn!(error = %e, "cannot look for children left behind by a previous run of hale");
            return;
        }
    };
    for row in rows {
        let signal = if kill_if_still_ours(&row) {
            tracing::warn!(
                target = %row.target,
                pid = row.pid,
                "a child left behind by a previous run of hale (killed or crashed) was still running; killed its process group"
            );
            Some(libc::SIGKILL)
        } else {
            None
        };
        if let Err(e) = store.child_exited(row.id, clock.now(), None, signal).await {
            tracing::warn!(target = %row.target, pid = row.pid, error = %e, "cannot close the row of a child left behind");
        }
    }
}

/// SIGKILLs the process group of a leftover child when its pid still names the same process (same start
/// ticks): a pid reused by an unrelated process is left alone.
#[cfg(target_os = "linux")]
fn kill_if_still_ours(row: &ChildRun) -> bool {
    let Some(recorded) = row.proc_start_ticks else {
        return false;
    };
    if row.pid <= 1 || super::child::proc_start_ticks(row.pid) != Some(recorded) {
        return false;
    }
    // The child led its own group; the pid itself too, in case it moved to another group.
    super::child::signal_group(row.pid, libc::SIGKILL);
    if let Ok(pid) = libc::pid_t::try_from(row.pid) {
        // SAFETY: kill has no memory-safety preconditions.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
        }
    }
    true
}

/// Without `/proc`, a pid cannot be told from a reused one: nothing is killed, the rows are only closed.
#[cfg(not(target_os = "linux"))]
fn kill_if_still_ours(_row: &ChildRun) -> bool {
    false
}
