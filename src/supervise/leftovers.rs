//! Processes left behind by a hale that was killed (or crashed) before it could stop them. At start, before
//! any child of this run starts, and again at shutdown, after every child was stopped:
//! - each `child_runs` row still open names a process group: when its leader still runs with the recorded
//!   start time, the group is certainly the one hale made (a group id cannot be reused while its leader
//!   lives), and every process in it is killed;
//! - every process whose environment carries this database's mark (`HALE_SUPERVISED_BY`, see `env.rs`) is
//!   killed, wherever it is: the grandchild of a wrapper script whose leader died with hale, a daemon that
//!   left the child's group. A process only carries the mark if a supervised child of this database passed
//!   it on, so a reused pid or group id is never killed.
//!
//! Each process is signalled through a pidfd after its start time was checked again, so a pid reused in
//! between is never hit. A process of a recorded group whose leader is gone and that has dropped the mark
//! from its environment cannot be told from a reuse of the group id: it is left running, with a warning.

use std::collections::BTreeSet;

use crate::clock::Clock;
use crate::process::{self, ProcStat};
use crate::store::children::ChildRun;
use crate::store::Store;
use crate::supervise::env::SUPERVISED_BY;

/// What the sweep did about one open row.
#[derive(Debug, Default)]
struct RowOutcome {
    /// The recorded leader was still running and was killed.
    leader_killed: bool,
    /// Processes of its group killed (the leader included).
    killed: usize,
}

/// Kills the leftovers of earlier runs and closes their rows. Runs before any child of this run starts.
pub(super) async fn clean_up(store: &Store, clock: &dyn Clock, mark: &str) {
    let rows = match store.open_child_runs().await {
        Ok(rows) => rows,
        Err(e) => {
            tracing::warn!(error = %e, "cannot look for children left behind by a previous run of hale");
            Vec::new()
        }
    };
    let mark = mark.to_owned();
    let scan_rows = rows.clone();
    let outcomes =
        match tokio::task::spawn_blocking(move || sweep(&scan_rows, &mark, "start")).await {
            Ok(outcomes) => outcomes,
            Err(e) => {
                tracing::warn!(error = %e, "the search for processes left behind failed");
                Vec::new()
            }
        };
    for (i, row) in rows.iter().enumerate() {
        let outcome = outcomes.get(i);
        if let Some(outcome) = outcome.filter(|o| o.killed > 0) {
            tracing::warn!(
                target = %row.target,
                pid = row.pid,
                killed = outcome.killed,
                "a child left behind by a previous run of hale (killed or crashed) was still running; killed its process group"
            );
        }
        let signal = outcome
            .is_some_and(|o| o.leader_killed)
            .then_some(libc::SIGKILL);
        if let Err(e) = store.child_exited(row.id, clock.now(), None, signal).await {
            tracing::warn!(target = %row.target, pid = row.pid, error = %e, "cannot close the row of a child left behind");
        }
    }
}

/// At shutdown, once every child was stopped: kills what still carries this database's mark (a process
/// that left its child's group), so nothing started for a target outlives hale.
pub(super) async fn sweep_at_stop(mark: &str) {
    let mark = mark.to_owned();
    let _ = tokio::task::spawn_blocking(move || {
        sweep(&[], &mark, "stop");
        process::reap_adopted();
    })
    .await;
}

/// The sweep itself, on a snapshot of `/proc`: the recorded groups, then the marked processes.
#[cfg(target_os = "linux")]
fn sweep(rows: &[ChildRun], mark: &str, when: &str) -> Vec<RowOutcome> {
    let me = std::process::id();
    let procs: Vec<ProcStat> = process::all()
        .into_iter()
        .filter(|p| p.pid != me && p.pid > 1 && p.state != 'Z')
        .collect();
    let mut killed: BTreeSet<u32> = BTreeSet::new();
    let mut outcomes = Vec::with_capacity(rows.len());
    for row in rows {
        let mut outcome = RowOutcome::default();
        let (group, Some(recorded)) = (row.pid, row.proc_start_ticks) else {
            outcomes.push(outcome);
            continue;
        };
        if group <= 1 {
            outcomes.push(outcome);
            continue;
        }
        match procs.iter().find(|p| p.pid == group) {
            Some(leader) if leader.start_ticks == recorded => {
                // The leader itself (even if it moved to another group), then its group.
                for p in procs.iter().filter(|p| p.pid == group || p.pgid == group) {
                    if process::signal_if_same(p.pid, p.start_ticks, libc::SIGKILL) {
                        killed.insert(p.pid);
                        outcome.killed += 1;
                        outcome.leader_killed |= p.pid == group;
                    }
                }
            }
            // The pid was reused: group `group` is now someone else's (the marked sweep below still finds
            // what was ours).
            Some(_) => {}
            None => {
                for p in procs
                    .iter()
                    .filter(|p| p.pgid == group && p.start_ticks >= recorded)
                {
                    if process::environ_has(p.pid, SUPERVISED_BY, mark) {
                        continue; // killed below, with the other marked processes
                    }
                    tracing::warn!(
                        target = %row.target,
                        pid = p.pid,
                        pgid = group,
                        "a process in the group of a child left behind by a previous run of hale was left running: its leader is gone and it no longer carries hale's mark, so it cannot be told from an unrelated process"
                    );
                }
            }
        }
        outcomes.push(outcome);
    }
    kill_marked(&procs, &killed, SUPERVISED_BY, mark, when);
    outcomes
}

/// Kills every process (but those in `spared`) whose environment has `variable` set to `mark`; returns how
/// many.
#[cfg(target_os = "linux")]
fn kill_marked(
    procs: &[ProcStat],
    spared: &BTreeSet<u32>,
    variable: &str,
    mark: &str,
    when: &str,
) -> usize {
    let mut killed = 0;
    for p in procs {
        if !spared.contains(&p.pid)
            && process::environ_has(p.pid, variable, mark)
            && process::signal_if_same(p.pid, p.start_ticks, libc::SIGKILL)
        {
            killed += 1;
            if variable == SUPERVISED_BY {
                tracing::warn!(
                    pid = p.pid,
                    pgid = p.pgid,
                    when,
                    "killed a process started for a supervised child of this database that outlived it"
                );
            } else {
                tracing::warn!(
                    pid = p.pid,
                    pgid = p.pgid,
                    variable,
                    when,
                    "killed a process hale started for this database that outlived its run"
                );
            }
        }
    }
    killed
}

/// Kills every process whose environment has `variable` set to `mark`, other than hale itself: what a
/// killed hale left of the processes it marks so (its MCP servers). Returns how many were killed.
#[cfg(target_os = "linux")]
pub fn kill_marked_processes(variable: &str, mark: &str, when: &str) -> usize {
    let me = std::process::id();
    let procs: Vec<ProcStat> = process::all()
        .into_iter()
        .filter(|p| p.pid != me && p.pid > 1 && p.state != 'Z')
        .collect();
    kill_marked(&procs, &BTreeSet::new(), variable, mark, when)
}

/// Without `/proc`, nothing can be told apart: nothing is killed.
#[cfg(not(target_os = "linux"))]
pub fn kill_marked_processes(_variable: &str, _mark: &str, _when: &str) -> usize {
    0
}

/// Without `/proc`, a pid cannot be told from a reused one: nothing is killed, the rows are only closed.
#[cfg(not(target_os = "linux"))]
fn sweep(rows: &[ChildRun], _mark: &str, _when: &str) -> Vec<RowOutcome> {
    rows.iter().map(|_| RowOutcome::default()).collect()
}
