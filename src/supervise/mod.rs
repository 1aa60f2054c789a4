//! Supervised children: hale starts the targets that have a `run` block, restarts them when they exit and
//! stops them on shutdown.
//!
//! One task per target (`keeper.rs`) owns its child: it starts it, waits for it to exit, waits out the
//! backoff (`crate::backoff`) on the `Clock` and starts it again. `restart()` and the cancellation reach it
//! through that task, so a child is only ever started or stopped by one owner. Processes themselves are
//! handled in `child.rs`, their environment in `env.rs`; processes that a killed hale left behind are found
//! in `leftovers.rs`. hale is a child subreaper while it supervises children: a grandchild whose parent
//! dies is reparented to hale, which reaps it, and kills it at shutdown.

pub mod child;
pub mod env;
mod keeper;
pub mod leftovers;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::config::{Config, RunConfig};
use crate::events::EventBus;
use crate::metrics::{HealMetrics, RestartCause};
use crate::store::Store;
use crate::worker::Worker;

pub use child::{
    parse_start_ticks, proc_start_ticks, read_capped_line, signal_group, LogBudget, Spawner,
    MAX_LINE_BYTES,
};

/// How often adopted orphans are reaped when no SIGCHLD says so.
const REAP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum SuperviseError {
    #[error("target {0} has no supervised child")]
    NoChild(String),
    #[error("cannot start the child of {target}: {reason}")]
    Spawn { target: String, reason: String },
    #[error("the supervisor of {0} is not running (hale is starting or shutting down)")]
    NotRunning(String),
}

/// What one supervised child is doing, for the API and the logs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[schema(example = json!({
    "target": "api", "pid": 48213, "running": true, "started_at": "2026-11-26T11:58:41Z", "restarts": 2,
    "last_exit_code": 1, "last_exit_signal": null, "next_restart_at": null, "config_error": false,
    "spawn_error": null
}))]
pub struct ChildView {
    pub target: String,
    /// The child's pid (also its process group) while it runs.
    pub pid: Option<u32>,
    pub running: bool,
    /// When the running child (or the last one) was started.
    pub started_at: Option<DateTime<Utc>>,
    /// Restarts in this run of hale, after an exit or by a heal.
    pub restarts: u64,
    /// How the last child ended: its exit code...
    pub last_exit_code: Option<i32>,
    /// ...or the signal that ended it.
    pub last_exit_signal: Option<i32>,
    /// When hale starts it again, while it waits out its backoff.
    pub next_restart_at: Option<DateTime<Utc>>,
    /// It exited with a code that means its configuration is wrong: it is not restarted until a heal or a
    /// restart of hale.
    pub config_error: bool,
    /// Why the last start failed, until a start succeeds.
    pub spawn_error: Option<String>,
}

/// A restart asked by `Supervisor::restart`, answered once the new child runs (or failed to start).
type RestartRequest = oneshot::Sender<Result<(), SuperviseError>>;

/// What one target's keeper shares with the supervisor.
#[derive(Debug)]
struct Slot {
    target: Arc<str>,
    run: Arc<RunConfig>,
    /// The child's whole environment (`env.rs`), built once at start.
    env: Arc<Vec<(String, String)>>,
    state: Mutex<SlotState>,
    restarts: mpsc::Sender<RestartRequest>,
    /// Taken by the keeper when the supervisor runs.
    inbox: Mutex<Option<mpsc::Receiver<RestartRequest>>>,
}

#[derive(Debug, Default, Clone)]
struct SlotState {
    pid: Option<u32>,
    started_at: Option<DateTime<Utc>>,
    restarts: u64,
    last_exit_code: Option<i32>,
    last_exit_signal: Option<i32>,
    /// The code of the last exit by itself, while the child has not run since.
    exited_by_itself: Option<i32>,
    next_restart_at: Option<DateTime<Utc>>,
    config_error: bool,
    spawn_error: Option<String>,
}

impl Slot {
    fn state(&self) -> MutexGuard<'_, SlotState> {
        // The state is plain data updated in one step at a time; a panic elsewhere cannot leave it torn.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn view(&self) -> ChildView {
        let state = self.state();
        ChildView {
            target: self.target.to_string(),
            pid: state.pid,
            running: state.pid.is_some(),
            started_at: state.started_at,
            restarts: state.restarts,
            last_exit_code: state.last_exit_code,
            last_exit_signal: state.last_exit_signal,
            next_restart_at: state.next_restart_at,
            config_error: state.config_error,
            spawn_error: state.spawn_error.clone(),
        }
    }
}

#[derive(Debug)]
pub struct Supervisor {
    slots: BTreeMap<String, Arc<Slot>>,
    config_error_exit_codes: Vec<i32>,
    /// The thread that forks the children; None when no target has a `run` block (or the thread could not
    /// be started, which every start then reports).
    spawner: Option<child::Spawner>,
    store: Store,
    events: EventBus,
    clock: Arc<dyn Clock>,
    metrics: HealMetrics,
    /// The run of hale before this one ended uncleanly: its children died with it, so this run's first start
    /// of each child is a restart (`restarts_total{cause="hale_restart"}`).
    after_unclean_end: AtomicBool,
    /// This database's mark (`env::SUPERVISED_BY`): its canonical path.
    mark: String,
}

impl Supervisor {
    pub fn new(
        config: &Config,
        store: Store,
        events: EventBus,
        clock: Arc<dyn Clock>,
        metrics: HealMetrics,
    ) -> Self {
        let mark = std::fs::canonicalize(store.path())
            .unwrap_or_else(|_| store.path().to_owned())
            .display()
            .to_string();
        let policy = env::EnvPolicy::from_config(config);
        let slots: BTreeMap<String, Arc<Slot>> = config
            .services
            .iter()
            .filter_map(|target| {
                let run = target.run.as_deref().cloned()?;
                let name = target.name.as_str().to_owned();
                let mut child_env = policy.build(&name, &run.inherit_env, &run.env, env::from_hale);
                child_env.retain(|(k, _)| k != env::SUPERVISED_BY);
                child_env.push((env::SUPERVISED_BY.to_owned(), mark.clone()));
                let (restarts, inbox) = mpsc::channel(8);
                metrics.child_running(&name, false);
                metrics.restarts_known(
                    &name,
                    &[
                        RestartCause::Exited,
                        RestartCause::Heal,
                        RestartCause::HaleRestart,
                    ],
                );
                Some((
                    name.clone(),
                    Arc::new(Slot {
                        target: Arc::from(name),
                        run: Arc::new(run),
                        env: Arc::new(child_env),
                        state: Mutex::new(SlotState::default()),
                        restarts,
                        inbox: Mutex::new(Some(inbox)),
                    }),
                ))
            })
            .collect();
        let spawner = if slots.is_empty() {
            None
        } else {
            match child::Spawner::start() {
                Ok(spawner) => Some(spawner),
                Err(e) => {
                    tracing::error!(error = %e, "cannot start the thread that starts supervised children; none will run");
                    None
                }
            }
        };
        Self {
            slots,
            config_error_exit_codes: config.heal.config_error_exit_codes.clone(),
            spawner,
            store,
            events,
            clock,
            metrics,
            after_unclean_end: AtomicBool::new(false),
            mark,
        }
    }

    /// Says that the run of hale before this one ended uncleanly; call before the worker runs.
    pub fn follows_unclean_end(&self) {
        self.after_unclean_end.store(true, Ordering::Relaxed);
    }

    /// True when `target` has a `run` block.
    pub fn supervises(&self, target: &str) -> bool {
        self.slots.contains_key(target)
    }

    /// Stops the child of `target` (stop signal, wait, then kill its process group) and starts it again at
    /// once, with cause `heal`; its backoff starts over. Returns once the new child runs (a child waiting
    /// out its backoff, or held after a config-error exit, is started at once). Asked before the worker runs,
    /// it waits for it; once the worker has stopped, it fails with `NotRunning`.
    pub async fn restart(&self, target: &str) -> Result<(), SuperviseError> {
        let slot = self
            .slots
            .get(target)
            .ok_or_else(|| SuperviseError::NoChild(target.to_owned()))?;
        let (reply, answer) = oneshot::channel();
        let not_running = || SuperviseError::NotRunning(target.to_owned());
        slot.restarts.send(reply).await.map_err(|_| not_running())?;
        answer.await.map_err(|_| not_running())?
    }

    /// The exit code of the child's last exit by itself, if it exited with one and has not run since.
    pub fn last_exit_code(&self, target: &str) -> Option<i32> {
        self.slots.get(target)?.state().exited_by_itself
    }

    /// Every supervised child, by target name.
    pub fn children(&self) -> Vec<ChildView> {
        self.slots.values().map(|slot| slot.view()).collect()
    }

    /// One supervised child.
    pub fn child(&self, target: &str) -> Option<ChildView> {
        self.slots.get(target).map(|slot| slot.view())
    }
}

impl Worker for Supervisor {
    fn name(&self) -> &'static str {
        "supervisor"
    }

    /// Kills what a killed hale left behind, starts every child, and on cancellation stops them all at once,
    /// returning when they are gone.
    fn run(self: Arc<Self>, cancel: CancellationToken) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            if !self.slots.is_empty() {
                if let Err(e) = crate::process::become_subreaper() {
                    tracing::warn!(error = %e, "cannot become a child subreaper; a grandchild whose parent dies is not stopped with hale");
                }
            }
            leftovers::clean_up(&self.store, self.clock.as_ref(), &self.mark).await;
            let reaper = (!self.slots.is_empty()).then(|| tokio::spawn(reap(cancel.clone())));
            let keepers: Vec<_> = self
                .slots
                .values()
                .filter_map(|slot| {
                    let inbox = slot
                        .inbox
                        .lock()
                        .unwrap_or_else(|poisoned| poisoned.into_inner())
                        .take()?;
                    let keeper = keeper::Keeper::new(self.clone(), slot.clone(), inbox);
                    Some(tokio::spawn(keeper.run(cancel.clone())))
                })
                .collect();
            for result in futures_util::future::join_all(keepers).await {
                if let Err(e) = result {
                    tracing::error!(error = %e, "a supervised child's keeper failed");
                }
            }
            cancel.cancelled().await;
            if !self.slots.is_empty() {
                leftovers::sweep_at_stop(&self.mark).await;
            }
            if let Some(reaper) = reaper {
                let _ = reaper.await;
            }
        })
    }
}

/// Reaps the orphans reparented to hale (it is their subreaper) when they exit: at every SIGCHLD, and every
/// few seconds in case one was missed, until `cancel`.
async fn reap(cancel: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut sigchld = match signal(SignalKind::child()) {
        Ok(stream) => Some(stream),
        Err(e) => {
            tracing::debug!(error = %e, "cannot watch SIGCHLD; orphans are reaped every few seconds");
            None
        }
    };
    let mut ticker = tokio::time::interval(REAP_EVERY);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = ticker.tick() => {}
            Some(()) = async {
                match sigchld.as_mut() {
                    Some(stream) => stream.recv().await,
                    None => std::future::pending().await,
                }
            } => {}
        }
        let _ = tokio::task::spawn_blocking(crate::process::reap_adopted).await;
    }
    let _ = tokio::task::spawn_blocking(crate::process::reap_adopted).await;
}
