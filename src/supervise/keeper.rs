//! One target's child, kept running: start, wait for the exit, wait out the backoff, start again; a
//! restart asked by heal and the shutdown both go through here.

use std::io;
use std::process::ExitStatus;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;
use crate::clock::add_saturating;
use crate::config::RunConfig;
use crate::events::{ChildExited, ChildStarted, Event};
use crate::metrics::RestartCause;
use crate::records::ChildStartCause;
use crate::supervise::child::Running;
use crate::supervise::{RestartRequest, Slot, SuperviseError, Supervisor};

/// A child that runs, with its row in `child_runs`.
struct Started {
    running: Running,
    row: Option<i64>,
    at: DateTime<Utc>,
}

/// What ended a wait between two starts.
enum Wake {
    /// The backoff is over.
    Timer,
    /// Heal asks for a restart now.
    Restart(RestartRequest),
    /// hale shuts down.
    Cancel,
}

pub(super) struct Keeper {
    sup: Arc<Supervisor>,
    slot: Arc<Slot>,
    inbox: mpsc::Receiver<RestartRequest>,
    backoff: Backoff,
}

impl Keeper {
    pub(super) fn new(
        sup: Arc<Supervisor>,
        slot: Arc<Slot>,
        inbox: mpsc::Receiver<RestartRequest>,
    ) -> Self {
        let backoff = restart_backoff(&slot.run);
        Self {
            sup,
            slot,
            inbox,
            backoff,
        }
    }

    fn target(&self) -> &str {
        &self.slot.target
    }

    pub(super) async fn run(mut self, cancel: CancellationToken) {
        let mut cause = ChildStartCause::Start;
        let mut asked: Option<RestartRequest> = None;
        loop {
            if cancel.is_cancelled() {
                return;
            }
            let wake = match self.start(cause).await {
                Ok(mut started) => {
                    if let Some(reply) = asked.take() {
                        let _ = reply.send(Ok(()));
                    }
                    tokio::select! {
                        biased;
                        _ = cancel.cancelled() => {
                            self.stop(&mut started, "hale is shutting down").await;
                            return;
                        }
                        Some(reply) = self.inbox.recv() => {
                            self.stop(&mut started, "a heal restarts it").await;
                            Wake::Restart(reply)
                        }
                        status = started.running.wait() => {
                            let delay = self.exited(&mut started, status).await;
                            self.pause(delay, &cancel).await
                        }
                    }
                }
                Err(reason) => {
                    let delay = self.backoff.after_run(Duration::ZERO);
                    tracing::error!(
                        target = self.target(),
                        reason = %reason,
                        retry_in_ms = delay.as_millis() as u64,
                        "cannot start the child; retrying after the backoff"
                    );
                    self.slot.state().spawn_error = Some(reason.clone());
                    if let Some(reply) = asked.take() {
                        let _ = reply.send(Err(SuperviseError::Spawn {
                            target: self.target().to_owned(),
                            reason,
                        }));
                    }
                    self.pause(Some(delay), &cancel).await
                }
            };
            match wake {
                Wake::Cancel => return,
                Wake::Timer => {
                    // A child that never started is still waiting for its first start.
                    if cause != ChildStartCause::Start || self.slot.state().started_at.is_some() {
                        cause = ChildStartCause::Exited;
                    }
                }
                Wake::Restart(reply) => {
                    self.backoff.reset();
                    cause = ChildStartCause::Heal;
                    asked = Some(reply);
                }
            }
        }
    }

    /// Starts the child and records it: row, state, metric, event, log.
    async fn start(&mut self, cause: ChildStartCause) -> Result<Started, String> {
        let program = self.slot.run.argv.first().cloned().unwrap_or_default();
        let spawner = self
            .sup
            .spawner
            .as_ref()
            .ok_or_else(|| "the thread that starts children is not running".to_owned())?;
        let child = spawner
            .spawn(self.slot.run.clone(), self.slot.env.clone())
            .await
            .map_err(|e| format!("{program}: {e}"))?;
        let running = Running::new(child, &self.slot.target, &self.slot.run)
            .map_err(|e| format!("{program}: {e}"))?;
        let at = self.sup.clock.now();
        let pid = running.pid;
        let row = match self
            .sup
            .store
            .child_started(self.target(), pid, running.start_ticks, at, cause)
            .await
        {
            Ok(id) => Some(id),
            Err(e) => {
                tracing::warn!(target = self.target(), pid, error = %e, "cannot record the start of a child; a killed hale could not clean it up");
                None
            }
        };
        {
            let mut state = self.slot.state();
            state.pid = Some(pid);
            state.started_at = Some(at);
            state.exited_by_itself = None;
            state.config_error = false;
            state.spawn_error = None;
            state.next_restart_at = None;
            if cause != ChildStartCause::Start {
                state.restarts += 1;
            }
        }
        match cause {
            ChildStartCause::Start => {
                if self.sup.after_unclean_end.load(Ordering::Relaxed) {
                    self.sup
                        .metrics
                        .restarted(self.target(), RestartCause::HaleRestart);
                }
            }
            ChildStartCause::Exited => self
                .sup
                .metrics
                .restarted(self.target(), RestartCause::Exited),
            ChildStartCause::Heal => self
                .sup
                .metrics
                .restarted(self.target(), RestartCause::Heal),
        }
        self.sup.metrics.child_running(self.target(), true);
        self.sup.events.publish(Event::ChildStarted(ChildStarted {
            target: self.slot.target.clone(),
            pid,
            cause,
            at,
        }));
        tracing::info!(target = self.target(), pid, program = %program, cause = cause.as_str(), "child started");
        Ok(Started { running, row, at })
    }

    /// Stops a running child (stop signal to its group, then SIGKILL after the timeout) and records it.
    async fn stop(&mut self, started: &mut Started, why: &str) {
        let run = &self.slot.run;
        tracing::info!(
            target = self.target(),
            pid = started.running.pid,
            why,
            "stopping child"
        );
        let status = started
            .running
            .stop(
                self.target(),
                run.stop_signal,
                Duration::from_secs(run.stop_timeout_s),
            )
            .await;
        let (code, signal) = self.record_exit(started, status, true).await;
        tracing::info!(
            target = self.target(),
            pid = started.running.pid,
            code,
            signal,
            "child stopped"
        );
    }

    /// A child exited by itself: records it and returns the delay before the next start (None: not
    /// restarted, its exit code says its configuration is wrong).
    async fn exited(
        &mut self,
        started: &mut Started,
        status: io::Result<ExitStatus>,
    ) -> Option<Duration> {
        started.running.finish().await;
        let (code, signal) = self.record_exit(started, status, false).await;
        let pid = started.running.pid;
        if let Some(code) = code.filter(|c| self.sup.config_error_exit_codes.contains(c)) {
            self.slot.state().config_error = true;
            tracing::error!(
                target = self.target(),
                pid,
                code,
                "child exited with a code that says its configuration is wrong; hale does not restart it: fix the child's configuration, then restart hale (or heal the target)"
            );
            return None;
        }
        let ran_for = (self.sup.clock.now() - started.at)
            .to_std()
            .unwrap_or_default();
        let delay = self.backoff.after_run(ran_for);
        tracing::warn!(
            target = self.target(),
            pid,
            code,
            signal,
            ran_ms = ran_for.as_millis() as u64,
            restart_in_ms = delay.as_millis() as u64,
            "child exited; restarting it after the backoff"
        );
        Some(delay)
    }

    /// Closes the child's row, updates its state and metric and publishes the exit.
    async fn record_exit(
        &self,
        started: &Started,
        status: io::Result<ExitStatus>,
        stopped: bool,
    ) -> (Option<i32>, Option<i32>) {
        let (code, signal) = match status {
            Ok(status) => exit_parts(status),
            Err(e) => {
                tracing::warn!(target = self.target(), pid = started.running.pid, error = %e, "cannot read how the child ended");
                (None, None)
            }
        };
        let at = self.sup.clock.now();
        if let Some(row) = started.row {
            if let Err(e) = self.sup.store.child_exited(row, at, code, signal).await {
                tracing::warn!(target = self.target(), pid = started.running.pid, error = %e, "cannot record the exit of a child");
            }
        }
        {
            let mut state = self.slot.state();
            state.pid = None;
            state.last_exit_code = code;
            state.last_exit_signal = signal;
            state.exited_by_itself = if stopped { None } else { code };
        }
        self.sup.metrics.child_running(self.target(), false);
        self.sup.events.publish(Event::ChildExited(ChildExited {
            target: self.slot.target.clone(),
            pid: started.running.pid,
            code,
            signal,
            stopped,
            at,
        }));
        (code, signal)
    }

    /// Waits for the next start: after `delay` (never when None), or at once when heal asks, or not at all
    /// when hale shuts down.
    async fn pause(&mut self, delay: Option<Duration>, cancel: &CancellationToken) -> Wake {
        self.slot.state().next_restart_at = delay.map(|d| add_saturating(self.sup.clock.now(), d));
        let timer = async {
            match delay {
                Some(delay) => self.sup.clock.sleep(delay).await,
                None => std::future::pending().await,
            }
        };
        let wake = tokio::select! {
            biased;
            _ = cancel.cancelled() => Wake::Cancel,
            Some(reply) = self.inbox.recv() => Wake::Restart(reply),
            _ = timer => Wake::Timer,
        };
        self.slot.state().next_restart_at = None;
        wake
    }
}

#[cfg(unix)]
fn exit_parts(status: ExitStatus) -> (Option<i32>, Option<i32>) {
    use std::os::unix::process::ExitStatusExt;
    (status.code(), status.signal())
}

#[cfg(not(unix))]
fn exit_parts(status: ExitStatus) -> (Option<i32>, Option<i32>) {
    (status.code(), None)
}

/// A child's restart delays: `backoff_initial_ms`, doubling per quick exit up to `backoff_max_s`; a child
/// that ran at least `stable_after_s` starts over.
fn restart_backoff(run: &RunConfig) -> Backoff {
    Backoff::new(
        Duration::from_millis(run.backoff_initial_ms),
        Duration::from_secs(run.backoff_max_s),
    )
    .with_stable_after(Duration::from_secs(run.stable_after_s))
}
