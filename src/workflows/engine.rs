//! The run loop (`Engine`, a `Worker`): at start it settles what the last run of hale left half done, then
//! takes queued runs while there is room, wakes waiting runs at their stored time, and drives each run step
//! by step (`drive`). Every state change goes straight to the run store in its own short transaction, so a
//! restart finds each run where it was; nothing about a run's progress lives only in memory.
//!
//! The requests of the Boss API (start, cancel, retry, approve, reject) come in through the same `Engine`.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use serde_json::{json, Map, Value};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::clock::{add_saturating as after, Clock};
use crate::events::EventBus;
use crate::metrics::WorkflowMetrics;
use crate::records::{ApprovalDecision, AttemptState, RiskLevel, RunState, WaitReason};
use crate::store::workflows::{
    AttemptEnd, Created, Decision, Idempotency, NewApproval, NewRun, RunId, RunStore,
    RunStoreError, StoredApproval, StoredAttempt, StoredRun,
};
use crate::store::Store;
use crate::supervise::child::Spawner;
use crate::supervise::env::{self as child_env, EnvPolicy};
use crate::worker::Worker;
use crate::workflows::steps::{
    self, command::CommandSpec, http::HttpRequest, Effects, Failure, StepContext, StepResult,
};
use crate::workflows::{body_hash, Action, Definitions, Environment, OnConflict, Values, Workflow};

/// How many times a run goes on after a restart interrupted an idempotent step; past that it ends
/// `interrupted`.
pub const MAX_RESUMES: u32 = 3;

/// The longest the loop sleeps without looking at the store (a safety net: starts, decisions and finished
/// runs wake it at once, and the next stored wake time bounds the sleep).
const IDLE_LOOK: Duration = Duration::from_secs(30);

/// How often the queue gauges are read from the store, at most.
const GAUGES_EVERY: Duration = Duration::from_secs(1);

/// Everything the engine is built from.
pub struct EngineParts {
    pub store: Store,
    pub definitions: Definitions,
    /// The config's targets and token variables, which a run's copy of its definition is read against.
    pub environment: Environment,
    pub clock: Arc<dyn Clock>,
    pub events: EventBus,
    pub effects: Arc<dyn Effects>,
    pub env_policy: EnvPolicy,
    pub metrics: WorkflowMetrics,
    /// After shutdown begins, how long running steps may go on before they are left to the restart rules.
    pub shutdown_grace: Duration,
}

/// A start as the Boss API received it.
#[derive(Debug, Clone, PartialEq)]
pub struct StartRequest {
    pub workflow: String,
    pub inputs: Map<String, Value>,
    pub reason: String,
    pub idempotency_key: Option<String>,
}

/// What a start did.
#[derive(Debug, Clone, PartialEq)]
pub enum Started {
    /// A new run, queued.
    New(StoredRun),
    /// The run the same idempotency key and body started before.
    Existing(StoredRun),
}

/// Why a start, a cancel, a retry or a decision was refused.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("no workflow named {0:?}; GET /workflows lists them")]
    UnknownWorkflow(String),
    #[error("no workflow run {0}")]
    UnknownRun(RunId),
    #[error("{0}")]
    BadInput(String),
    #[error("hale is shutting down and takes no new runs")]
    Draining,
    /// `on_conflict: reject` and the group is full (409).
    #[error("{workflow} already has {} run(s) in progress for this group (runs {runs:?}); its concurrency rule rejects another", runs.len())]
    Busy { workflow: String, runs: Vec<RunId> },
    /// The idempotency key started another run with another body (422).
    #[error("the Idempotency-Key {key:?} already started run {run} with another body")]
    KeyReused { key: String, run: RunId },
    /// The action does not apply to the run as it is (409).
    #[error("{0}")]
    Conflict(String),
    #[error("the workflow store failed: {0}")]
    Store(String),
}

impl From<RunStoreError> for EngineError {
    fn from(e: RunStoreError) -> Self {
        match e {
            RunStoreError::NoRun(id) => Self::UnknownRun(id),
            RunStoreError::IdempotencyConflict { key, run, .. } => Self::KeyReused { key, run },
            RunStoreError::GroupFull { workflow, runs } => Self::Busy { workflow, runs },
            RunStoreError::WrongState { .. }
            | RunStoreError::AttemptFinished(_)
            | RunStoreError::NoOpenApproval { .. }
            | RunStoreError::NoAttempt(_) => Self::Conflict(e.to_string()),
            RunStoreError::Store(e) => Self::Store(e.to_string()),
        }
    }
}

/// How a drive of a run begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entry {
    /// Taken from the queue.
    Claimed,
    /// Woken from a wait.
    Woken(WaitReason),
    /// Found `running` at start: hale stopped while it ran.
    Resumed,
}

/// Runs in progress in this process: a token per run, fired by a cancel.
type Live = Mutex<HashMap<RunId, CancellationToken>>;

pub struct Engine {
    store: Store,
    definitions: Definitions,
    environment: Environment,
    clock: Arc<dyn Clock>,
    events: EventBus,
    effects: Arc<dyn Effects>,
    env_policy: EnvPolicy,
    metrics: WorkflowMetrics,
    shutdown_grace: Duration,
    spawner: Spawner,
    http: reqwest::Client,
    /// False once shutdown began: starts are refused (503) and the queue is not served.
    accepting: AtomicBool,
    /// Rung by a start, a decision, a cancel or a run that ended: the loop looks again at once.
    nudge: Notify,
    live: Live,
    /// Fired when the shutdown grace is over: steps still running are abandoned where they are (their
    /// attempts stay `running`, and the next start applies the restart rules).
    abandon: CancellationToken,
    drives: TaskTracker,
    /// Runs ended `interrupted` by the last start's recovery.
    interrupted_at_start: Mutex<Vec<RunId>>,
    /// When the queue gauges were last read.
    gauges_at: Mutex<Option<std::time::Instant>>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("workflows", &self.definitions.iter().count())
            .field("accepting", &self.accepting())
            .finish_non_exhaustive()
    }
}

impl Engine {
    pub fn new(parts: EngineParts) -> std::io::Result<Self> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(std::io::Error::other)?;
        Ok(Self {
            store: parts.store,
            definitions: parts.definitions,
            environment: parts.environment,
            clock: parts.clock,
            events: parts.events,
            effects: parts.effects,
            env_policy: parts.env_policy,
            metrics: parts.metrics,
            shutdown_grace: parts.shutdown_grace,
            spawner: Spawner::start()?,
            http,
            accepting: AtomicBool::new(true),
            nudge: Notify::new(),
            live: Mutex::new(HashMap::new()),
            abandon: CancellationToken::new(),
            drives: TaskTracker::new(),
            interrupted_at_start: Mutex::new(Vec::new()),
            gauges_at: Mutex::new(None),
        })
    }

    pub fn definitions(&self) -> &Definitions {
        &self.definitions
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// True until shutdown begins.
    pub fn accepting(&self) -> bool {
        self.accepting.load(Ordering::SeqCst)
    }

    /// Shutdown began: no new runs (503), the queue is no longer served.
    pub fn drain(&self) {
        if self.accepting.swap(false, Ordering::SeqCst) {
            tracing::info!("workflow engine draining: no new runs; running steps may finish");
        }
        self.nudge.notify_one();
    }

    /// The runs the last start ended `interrupted`.
    pub fn interrupted_at_start(&self) -> Vec<RunId> {
        lock(&self.interrupted_at_start).clone()
    }

    /// Queues a run of a workflow (or finds the one its idempotency key started).
    pub async fn start(&self, request: StartRequest) -> Result<Started, EngineError> {
        let workflow = self
            .definitions
            .get(&request.workflow)
            .ok_or_else(|| EngineError::UnknownWorkflow(request.workflow.clone()))?;
        if !self.accepting() {
            return Err(EngineError::Draining);
        }
        workflow
            .check_inputs(&request.inputs)
            .map_err(|e| EngineError::BadInput(e.to_string()))?;
        let now = self.clock.now();
        let key = workflow.concurrency_key(&request.inputs);
        let idempotency = request.idempotency_key.as_ref().map(|k| Idempotency {
            key: k.clone(),
            body_hash: body_hash(&json!({"inputs": request.inputs, "reason": request.reason})),
        });
        let new = NewRun {
            workflow: workflow.id.clone(),
            definition: workflow.source.clone(),
            inputs: Value::Object(request.inputs.clone()),
            reason: request.reason.clone(),
            concurrency_key: key.clone(),
            concurrency_limit: workflow.concurrency.limit,
            idempotency,
            deadline: after(now, workflow.deadline),
            retry_of: None,
            start_step: 0,
        };
        let created = match workflow.concurrency.on_conflict {
            OnConflict::Queue => self.store.create_or_get(&new, now).await?,
            OnConflict::Reject => self.store.create_unless_full(&new, now).await?,
            OnConflict::CancelRunning => {
                // A repeat of a start must not cancel the run it started.
                match self.store.create_unless_full(&new, now).await {
                    Err(RunStoreError::GroupFull { runs, .. }) => {
                        for id in runs {
                            let why = "cancelled: a newer run of the same group started (on_conflict: cancel_running)";
                            self.end_by_request(id, RunState::Cancelled, why).await?;
                        }
                        self.store.create_or_get(&new, now).await?
                    }
                    other => other?,
                }
            }
        };
        Ok(match created {
            Created::New(run) => {
                tracing::info!(run_id = run.id, workflow = %run.workflow, reason = %run.reason, state = "queued", "workflow run accepted");
                self.metrics.run_started(&run.workflow);
                self.nudge.notify_one();
                Started::New(run)
            }
            Created::Existing(run) => Started::Existing(run),
        })
    }

    /// Cancels a run that has not ended; cancelling a cancelled run again changes nothing.
    pub async fn cancel(
        &self,
        id: RunId,
        role: Option<&str>,
        reason: Option<&str>,
    ) -> Result<StoredRun, EngineError> {
        let run = self
            .store
            .run(id)
            .await?
            .ok_or(EngineError::UnknownRun(id))?;
        if run.state == RunState::Cancelled {
            return Ok(run);
        }
        if run.state.is_final() {
            return Err(EngineError::Conflict(format!(
                "run {id} already ended {}",
                run.state.as_str()
            )));
        }
        let why = match reason {
            Some(r) if !r.trim().is_empty() => format!("cancelled by {}: {r}", who(role)),
            _ => format!("cancelled by {}", who(role)),
        };
        self.end_by_request(id, RunState::Cancelled, &why).await?;
        self.store.run(id).await?.ok_or(EngineError::UnknownRun(id))
    }

    /// Ends a run from outside its drive (a cancel), and stops its running step.
    async fn end_by_request(
        &self,
        id: RunId,
        state: RunState,
        why: &str,
    ) -> Result<(), EngineError> {
        let ended = self
            .store
            .finish_run(id, state, Some(why), self.clock.now())
            .await?;
        if ended {
            if let Some(run) = self.store.run(id).await? {
                self.ended(&run, state, Some(why));
            }
        }
        if let Some(token) = lock(&self.live).get(&id) {
            token.cancel();
        }
        self.nudge.notify_one();
        Ok(())
    }

    /// A new run that starts where an ended run stopped (or at `from_step`), with its inputs and its copy
    /// of the definition; the steps before it keep the outputs the ended run gave them.
    pub async fn retry(
        &self,
        id: RunId,
        from_step: Option<&str>,
        reason: Option<&str>,
    ) -> Result<StoredRun, EngineError> {
        if !self.accepting() {
            return Err(EngineError::Draining);
        }
        let old = self
            .store
            .run(id)
            .await?
            .ok_or(EngineError::UnknownRun(id))?;
        if !old.state.is_final() {
            return Err(EngineError::Conflict(format!(
                "run {id} is {}; only an ended run can be retried",
                old.state.as_str()
            )));
        }
        let workflow = self.read_copy(&old)?;
        let start = match from_step {
            Some(step) => workflow
                .steps
                .iter()
                .position(|s| s.id == step)
                .ok_or_else(|| {
                    EngineError::BadInput(format!(
                        "from_step: {} has no step {step:?}",
                        workflow.id
                    ))
                })?,
            None => (old.step_index as usize).min(workflow.steps.len().saturating_sub(1)),
        };
        let now = self.clock.now();
        let new = NewRun {
            workflow: old.workflow.clone(),
            definition: old.definition.clone(),
            inputs: old.inputs.clone(),
            reason: reason
                .filter(|r| !r.trim().is_empty())
                .map_or_else(|| format!("retry of run {id}"), str::to_owned),
            concurrency_key: old.concurrency_key.clone(),
            concurrency_limit: old.concurrency_limit,
            idempotency: None,
            deadline: after(now, workflow.deadline),
            retry_of: Some(id),
            start_step: u32::try_from(start).unwrap_or(u32::MAX),
        };
        match self.store.create_or_get(&new, now).await? {
            Created::New(run) | Created::Existing(run) => {
                tracing::info!(run_id = run.id, retry_of = id, workflow = %run.workflow, from_step = %workflow.steps[start].id, "workflow run retried");
                self.metrics.run_started(&run.workflow);
                self.nudge.notify_one();
                Ok(run)
            }
        }
    }

    /// Approves or rejects the approval a run waits for.
    pub async fn decide(
        self: &Arc<Self>,
        id: RunId,
        approve: bool,
        role: Option<&'static str>,
        reason: Option<&str>,
    ) -> Result<StoredApproval, EngineError> {
        let run = self
            .store
            .run(id)
            .await?
            .ok_or(EngineError::UnknownRun(id))?;
        if run.state != RunState::Waiting || run.wait_reason != Some(WaitReason::Approval) {
            return Err(EngineError::Conflict(format!(
                "run {id} is {}, not waiting for an approval",
                run.state.as_str()
            )));
        }
        let decision = if approve {
            ApprovalDecision::Approved
        } else {
            ApprovalDecision::Rejected
        };
        let approval = self
            .store
            .decide_approval(
                id,
                run.step_index,
                Decision {
                    decision,
                    role,
                    reason: reason.filter(|r| !r.trim().is_empty()),
                },
                self.clock.now(),
            )
            .await?;
        tracing::info!(run_id = id, step = %approval.step_id, decision = decision.as_str(), role = role.unwrap_or("none"), "workflow approval decided");
        self.wake_and_drive(id, WaitReason::Approval).await;
        Ok(approval)
    }

    /// Moves a waiting run to running and drives it; nothing when another caller woke it first.
    async fn wake_and_drive(self: &Arc<Self>, id: RunId, reason: WaitReason) {
        match self.store.wake(id).await {
            Ok(()) => match self.store.run(id).await {
                Ok(Some(run)) => self.spawn_drive(run, Entry::Woken(reason)),
                Ok(None) => {}
                Err(e) => {
                    tracing::error!(run_id = id, error = %e, "cannot read a woken workflow run")
                }
            },
            Err(RunStoreError::WrongState { .. }) => {}
            Err(e) => tracing::error!(run_id = id, error = %e, "cannot wake a workflow run"),
        }
    }

    fn spawn_drive(self: &Arc<Self>, run: StoredRun, entry: Entry) {
        let token = self.abandon.child_token();
        lock(&self.live).insert(run.id, token.clone());
        let engine = self.clone();
        let span = tracing::info_span!("workflow_run", run_id = run.id, workflow = %run.workflow);
        self.drives.spawn(
            async move {
                let id = run.id;
                engine.drive(run, entry, &token).await;
                lock(&engine.live).remove(&id);
                engine.nudge.notify_one();
            }
            .instrument(span),
        );
    }

    /// The copy of its definition a run keeps, read against today's targets.
    pub fn read_copy(&self, run: &StoredRun) -> Result<Workflow, EngineError> {
        Workflow::from_copy(&run.definition, &self.environment, self.definitions.risk()).map_err(
            |e| {
                EngineError::Conflict(format!(
                    "the definition run {} keeps no longer reads: {}: {}",
                    run.id, e.path, e.reason
                ))
            },
        )
    }

    /// Logs and counts a run that ended.
    fn ended(&self, run: &StoredRun, state: RunState, error: Option<&str>) {
        let took = (self.clock.now() - run.created)
            .to_std()
            .unwrap_or_default();
        self.metrics.run_finished(&run.workflow, state, took);
        match state {
            RunState::Succeeded => {
                tracing::info!(run_id = run.id, workflow = %run.workflow, state = state.as_str(), took_ms = took.as_millis() as u64, "workflow run ended")
            }
            _ => {
                tracing::warn!(run_id = run.id, workflow = %run.workflow, state = state.as_str(), error = error.unwrap_or(""), took_ms = took.as_millis() as u64, "workflow run ended")
            }
        }
    }

    /// Ends a run from its drive; false when it had ended already (a cancel came first).
    async fn finish(&self, run: &StoredRun, state: RunState, error: Option<&str>) -> bool {
        match self
            .store
            .finish_run(run.id, state, error, self.clock.now())
            .await
        {
            Ok(true) => {
                self.ended(run, state, error);
                true
            }
            Ok(false) => false,
            Err(e) => {
                tracing::error!(run_id = run.id, error = %e, "cannot record the end of a workflow run; the next start settles it");
                false
            }
        }
    }

    /// Settles what the last run of hale left: interrupted attempts, runs past their deadline; the runs
    /// left `running` are driven again (resumed or ended `interrupted` by `drive`).
    async fn recover(self: &Arc<Self>) {
        let recovery = match self.store.recover_at_start(self.clock.now()).await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "cannot recover the workflow runs of the last start; they wait for the next one");
                return;
            }
        };
        for id in &recovery.timed_out {
            if let Ok(Some(run)) = self.store.run(*id).await {
                self.ended(&run, RunState::TimedOut, run.error.as_deref());
            }
        }
        for attempt in &recovery.interrupted {
            tracing::warn!(run_id = attempt.run_id, step = %attempt.step_id, attempt = attempt.attempt, "workflow step interrupted: hale stopped while it ran");
        }
        if !recovery.running.is_empty() || !recovery.waiting.is_empty() {
            tracing::info!(
                running = recovery.running.len(),
                waiting = recovery.waiting.len(),
                "workflow runs found in progress at start"
            );
        }
        for run in recovery.running {
            self.spawn_drive(run, Entry::Resumed);
        }
    }

    /// Takes queued runs while there is room, and wakes the waits that are due.
    async fn serve_queue(self: &Arc<Self>) {
        let now = self.clock.now();
        if self.accepting() {
            loop {
                match self
                    .store
                    .claim_next(self.definitions.max_running(), now)
                    .await
                {
                    Ok(Some(run)) => {
                        tracing::info!(run_id = run.id, workflow = %run.workflow, state = "running", "workflow run started");
                        self.spawn_drive(run, Entry::Claimed);
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot take a queued workflow run");
                        break;
                    }
                }
            }
            match self.store.due_waits(now).await {
                Ok(due) => {
                    for run in due {
                        if let Some(reason) = run.wait_reason {
                            self.wake_and_drive(run.id, reason).await;
                        }
                    }
                }
                Err(e) => tracing::error!(error = %e, "cannot read the workflow runs due to wake"),
            }
        }
        // The gauges are read from the store at most once a second, not on every pass of a busy loop.
        let due = {
            let mut last = lock(&self.gauges_at);
            let due = last.is_none_or(|at| at.elapsed() >= GAUGES_EVERY);
            if due {
                *last = Some(std::time::Instant::now());
            }
            due
        };
        if due {
            match self.store.summary(now).await {
                Ok(s) => self
                    .metrics
                    .queue(s.running + s.waiting, s.queued, s.approvals_waiting),
                Err(e) => tracing::debug!(error = %e, "cannot count the workflow queue"),
            }
        }
    }

    /// How long the loop may sleep: until the next stored wake time, at most `IDLE_LOOK`.
    async fn idle_for(&self) -> Duration {
        match self.store.next_wake().await {
            Ok(Some(at)) => (at - self.clock.now())
                .to_std()
                .unwrap_or(Duration::ZERO)
                .min(IDLE_LOOK),
            _ => IDLE_LOOK,
        }
    }

    async fn run_loop(self: Arc<Self>, cancel: CancellationToken) {
        self.recover().await;
        loop {
            self.serve_queue().await;
            let idle = self.idle_for().await;
            tokio::select! {
                () = cancel.cancelled() => break,
                () = self.nudge.notified() => {}
                () = self.clock.sleep(idle) => {}
            }
        }
        self.drain();
        self.drives.close();
        if !self.drives.is_empty() {
            tracing::info!(
                runs = lock(&self.live).len(),
                grace_s = self.shutdown_grace.as_secs(),
                "waiting for running workflow steps to finish"
            );
        }
        if tokio::time::timeout(self.shutdown_grace, self.drives.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                runs = lock(&self.live).len(),
                "workflow steps still running at the end of the shutdown grace; the next start applies the restart rules"
            );
            self.abandon.cancel();
            let _ = tokio::time::timeout(Duration::from_secs(5), self.drives.wait()).await;
        }
    }

    /// Drives a run from where it is until it ends, waits or hale stops. What to do next is read from the
    /// stored attempts and approvals, so a drive after a wait or a restart goes on exactly where the last
    /// one stopped.
    async fn drive(self: &Arc<Self>, run: StoredRun, entry: Entry, token: &CancellationToken) {
        let workflow = match self.read_copy(&run) {
            Ok(w) => w,
            Err(e) => {
                self.finish(&run, RunState::Failed, Some(&e.to_string()))
                    .await;
                return;
            }
        };
        let inputs = run.inputs.as_object().cloned().unwrap_or_default();
        let mut attempts = match entry {
            Entry::Claimed if run.retry_of.is_none() => Vec::new(),
            _ => match self.store.attempts(run.id).await {
                Ok(a) => a,
                Err(e) => {
                    tracing::error!(run_id = run.id, error = %e, "cannot read a workflow run's attempts; it waits for the next start");
                    return;
                }
            },
        };
        let mut outputs = self.outputs_of(&run, &attempts).await;
        let mut approvals = if entry == Entry::Claimed && run.retry_of.is_none() {
            Vec::new()
        } else {
            self.store.approvals(run.id).await.unwrap_or_default()
        };
        let first = run.step_index as usize;
        let gate = approval_gate(&workflow, first, self.definitions.risk());
        let _holds = self.hold_targets(&workflow, &inputs);
        if entry == Entry::Claimed && gate.is_none() && approvals.is_empty() {
            self.approve_automatically(&run, &workflow, first).await;
        }
        let mut index = first;
        let mut resumes = run.resumes;
        let mut after_backoff = entry == Entry::Woken(WaitReason::Backoff);
        loop {
            if token.is_cancelled() || !self.accepting() {
                // A cancel ended the run already; at shutdown the run stays where it is.
                return;
            }
            let now = self.clock.now();
            if now >= run.deadline {
                self.finish(&run, RunState::TimedOut, Some("the run's deadline passed"))
                    .await;
                return;
            }
            let Some(step) = workflow.steps.get(index) else {
                self.finish(&run, RunState::Succeeded, None).await;
                return;
            };
            let step_no = u32::try_from(index).unwrap_or(u32::MAX);
            if Some(index) == gate.map(|(i, _)| i)
                || step.kind() == crate::workflows::StepKind::Approval
            {
                let level = gate
                    .filter(|(i, _)| *i == index)
                    .map_or(step.risk.level, |(_, level)| level.max(step.risk.level));
                match self.gate(&run, step_no, &step.id, level, &approvals).await {
                    Gate::Wait | Gate::Ended => return,
                    Gate::Pass(approval) => {
                        if step.kind() == crate::workflows::StepKind::Approval {
                            let output = json!({
                                "decision": approval.decision.map(|d| d.as_str()),
                                "role": approval.decided_by_role,
                                "reason": approval.reason,
                            });
                            if !self.record_instant(&run, step_no, &step.id, &output).await {
                                return;
                            }
                            outputs.insert(step.id.clone(), output);
                            index += 1;
                            continue;
                        }
                    }
                }
                approvals = Vec::new();
            }
            let last = attempts.iter().rev().find(|a| a.step_index == step_no);
            match last.map(|a| a.state) {
                Some(AttemptState::Succeeded) => {
                    index += 1;
                    continue;
                }
                Some(AttemptState::Failed) if !after_backoff => {
                    // hale stopped between the failure and its backoff: the failure stands.
                    match self
                        .after_failure(&run, step, index, "hale stopped before its retry")
                        .await
                    {
                        Some(next) => {
                            index = next;
                            continue;
                        }
                        None => return,
                    }
                }
                Some(AttemptState::Interrupted | AttemptState::Running) => {
                    let attempt = last.map_or(0, |a| a.attempt);
                    if !step.idempotent || resumes >= MAX_RESUMES {
                        let why = if step.idempotent {
                            format!("hale stopped during step {} (attempt {attempt}); the run was already resumed {MAX_RESUMES} times", step.id)
                        } else {
                            format!("hale stopped during step {} (attempt {attempt}), which is not idempotent: it is not run again", step.id)
                        };
                        if self.finish(&run, RunState::Interrupted, Some(&why)).await {
                            lock(&self.interrupted_at_start).push(run.id);
                            self.alert_interrupted(&run, &why).await;
                        }
                        return;
                    }
                    resumes = match self.store.mark_resumed(run.id).await {
                        Ok(n) => n,
                        Err(e) => {
                            tracing::error!(run_id = run.id, error = %e, "cannot record a resume");
                            return;
                        }
                    };
                    tracing::info!(run_id = run.id, step = %step.id, resumes, "workflow run resumed at an idempotent step after a restart");
                }
                _ => {}
            }
            after_backoff = false;
            if let Action::Sleep { duration } = &step.action {
                self.sleep_step(&run, step_no, &step.id, *duration).await;
                return;
            }
            let attempt = match self
                .store
                .start_attempt(run.id, step_no, &step.id, self.clock.now())
                .await
            {
                Ok(a) => a,
                Err(e) => {
                    // A cancel moved the run first, or the store failed: either way, not this drive's.
                    tracing::info!(run_id = run.id, error = %e, "workflow step not started");
                    return;
                }
            };
            tracing::info!(run_id = run.id, step = %step.id, kind = step.kind().as_str(), attempt = attempt.attempt, "workflow step started");
            let span = tracing::info_span!("workflow_attempt", run_id = run.id, step = %step.id, attempt = attempt.attempt);
            let result = self
                .execute(&run, &workflow, index, &inputs, &outputs, token)
                .instrument(span)
                .await;
            if self.abandon.is_cancelled() {
                // Shutdown grace over: the attempt stays running; the next start decides.
                return;
            }
            let kind = step.kind().as_str();
            let now = self.clock.now();
            let mut stored = attempt.clone();
            match result {
                Ok(output) => {
                    let end = AttemptEnd {
                        state: AttemptState::Succeeded,
                        output: Some(&output),
                        error: None,
                    };
                    if let Err(e) = self.store.finish_attempt(attempt.id, end, now).await {
                        tracing::info!(run_id = run.id, error = %e, "workflow step finished after its run ended");
                        return;
                    }
                    self.metrics.attempt(kind, AttemptState::Succeeded);
                    tracing::info!(run_id = run.id, step = %step.id, attempt = attempt.attempt, "workflow step succeeded");
                    stored.state = AttemptState::Succeeded;
                    attempts.push(stored);
                    outputs.insert(step.id.clone(), output);
                    index += 1;
                }
                Err(failure) => {
                    let end = AttemptEnd {
                        state: AttemptState::Failed,
                        output: None,
                        error: Some(&failure.message),
                    };
                    if let Err(e) = self.store.finish_attempt(attempt.id, end, now).await {
                        tracing::info!(run_id = run.id, error = %e, "workflow step ended after its run ended");
                        self.metrics.attempt(kind, AttemptState::Interrupted);
                        return;
                    }
                    self.metrics.attempt(kind, AttemptState::Failed);
                    tracing::warn!(run_id = run.id, step = %step.id, attempt = attempt.attempt, class = failure.class.map(|c| c.as_str()), error = %failure.message, "workflow step failed");
                    stored.state = AttemptState::Failed;
                    attempts.push(stored);
                    let retryable = failure.class.is_some_and(|c| step.retries(c));
                    if retryable && attempt.attempt < step.retry.attempts {
                        let delay = step.retry.delay(attempt.attempt - 1);
                        let wake = after(now, delay).min(run.deadline);
                        match self
                            .store
                            .wait(run.id, WaitReason::Backoff, wake, step_no)
                            .await
                        {
                            Ok(()) => {
                                tracing::info!(run_id = run.id, step = %step.id, wake_at = %wake.to_rfc3339(), "workflow step retries after a backoff")
                            }
                            Err(e) => {
                                tracing::info!(run_id = run.id, error = %e, "workflow backoff not stored")
                            }
                        }
                        self.nudge.notify_one();
                        return;
                    }
                    match self
                        .after_failure(&run, step, index, &failure.message)
                        .await
                    {
                        Some(next) => index = next,
                        None => return,
                    }
                }
            }
        }
    }

    /// A step failed for good: the next step when it may (`on_failure: continue`), else the run fails.
    async fn after_failure(
        &self,
        run: &StoredRun,
        step: &crate::workflows::Step,
        index: usize,
        error: &str,
    ) -> Option<usize> {
        if step.on_failure == crate::workflows::OnFailure::Continue {
            tracing::info!(run_id = run.id, step = %step.id, "workflow step failed; the run goes on (on_failure: continue)");
            return Some(index + 1);
        }
        let why = format!("step {} failed: {error}", step.id);
        self.finish(run, RunState::Failed, Some(&why)).await;
        None
    }

    /// The outputs of the steps that succeeded: this run's, and for a retry the earlier run's before the
    /// step it starts from.
    async fn outputs_of(
        &self,
        run: &StoredRun,
        attempts: &[StoredAttempt],
    ) -> BTreeMap<String, Value> {
        let mut outputs = BTreeMap::new();
        if let Some(old) = run.retry_of {
            if let Ok(earlier) = self.store.attempts(old).await {
                collect_outputs(
                    earlier.iter().filter(|a| a.step_index < run.step_index),
                    &mut outputs,
                );
            }
        }
        collect_outputs(attempts.iter(), &mut outputs);
        outputs
    }

    /// Holds every target the run's steps name through its inputs alone, while this drive lasts.
    fn hold_targets(
        &self,
        workflow: &Workflow,
        inputs: &Map<String, Value>,
    ) -> Vec<Box<dyn std::any::Any + Send + Sync>> {
        let none = BTreeMap::new();
        let values = Values {
            inputs,
            outputs: &none,
        };
        let mut names: Vec<String> = workflow
            .steps
            .iter()
            .filter_map(|s| match &s.action {
                Action::Http { target, .. }
                | Action::WaitHealthy { target, .. }
                | Action::Heal { target } => target.render(values).ok(),
                _ => None,
            })
            .collect();
        names.sort();
        names.dedup();
        names
            .iter()
            .filter_map(|name| self.effects.hold(name))
            .collect()
    }

    /// A run below the approval threshold is approved by hale, and that is recorded.
    async fn approve_automatically(&self, run: &StoredRun, workflow: &Workflow, first: usize) {
        let Some(step) = workflow.steps.get(first) else {
            return;
        };
        let level = workflow.steps[first..]
            .iter()
            .map(|s| s.risk.level)
            .max()
            .unwrap_or(RiskLevel::Low);
        let now = self.clock.now();
        let step_no = u32::try_from(first).unwrap_or(u32::MAX);
        let request = NewApproval {
            run_id: run.id,
            step_index: step_no,
            step_id: step.id.clone(),
            risk: level,
            requested: now,
            expires: now,
        };
        let recorded = match self.store.request_approval(&request).await {
            Ok(_) => self
                .store
                .decide_approval(
                    run.id,
                    step_no,
                    Decision {
                        decision: ApprovalDecision::Automatic,
                        role: None,
                        reason: Some("below the approval threshold"),
                    },
                    now,
                )
                .await
                .map(|_| ()),
            Err(e) => Err(e),
        };
        if let Err(e) = recorded {
            tracing::warn!(run_id = run.id, error = %e, "cannot record the automatic approval of a workflow run");
        }
    }

    /// The approval at a gate: asked for (the run waits), still open, or decided.
    async fn gate(
        &self,
        run: &StoredRun,
        step_no: u32,
        step_id: &str,
        level: RiskLevel,
        known: &[StoredApproval],
    ) -> Gate {
        let approval = match known.iter().find(|a| a.step_index == step_no) {
            Some(a) => Some(a.clone()),
            None => match self.store.approvals(run.id).await {
                Ok(all) => all.into_iter().find(|a| a.step_index == step_no),
                Err(e) => {
                    tracing::error!(run_id = run.id, error = %e, "cannot read a workflow run's approvals");
                    return Gate::Ended;
                }
            },
        };
        let now = self.clock.now();
        match approval {
            None => {
                let expires = after(now, self.definitions.risk().expiry(level));
                let request = NewApproval {
                    run_id: run.id,
                    step_index: step_no,
                    step_id: step_id.to_owned(),
                    risk: level,
                    requested: now,
                    expires,
                };
                if let Err(e) = self.store.request_approval(&request).await {
                    tracing::error!(run_id = run.id, error = %e, "cannot ask for a workflow approval");
                    return Gate::Ended;
                }
                self.wait_for_approval(run, step_no, step_id, level, expires)
                    .await;
                Gate::Wait
            }
            Some(a) => match a.decision {
                None if now >= a.expires => {
                    let decided = self
                        .store
                        .decide_approval(
                            run.id,
                            step_no,
                            Decision {
                                decision: ApprovalDecision::Expired,
                                role: None,
                                reason: None,
                            },
                            now,
                        )
                        .await;
                    if decided.is_ok() {
                        let why = format!(
                            "the approval of step {step_id} expired at {} without a decision",
                            a.expires.to_rfc3339()
                        );
                        self.finish(run, RunState::Failed, Some(&why)).await;
                    }
                    Gate::Ended
                }
                None => {
                    self.wait_for_approval(run, step_no, step_id, level, a.expires)
                        .await;
                    Gate::Wait
                }
                Some(ApprovalDecision::Approved | ApprovalDecision::Automatic) => Gate::Pass(a),
                Some(ApprovalDecision::Rejected) => {
                    let why = match &a.reason {
                        Some(r) => format!(
                            "step {step_id} was rejected by {}: {r}",
                            who(a.decided_by_role)
                        ),
                        None => {
                            format!("step {step_id} was rejected by {}", who(a.decided_by_role))
                        }
                    };
                    self.finish(run, RunState::Cancelled, Some(&why)).await;
                    Gate::Ended
                }
                Some(ApprovalDecision::Expired) => {
                    let why = format!("the approval of step {step_id} expired");
                    self.finish(run, RunState::Failed, Some(&why)).await;
                    Gate::Ended
                }
            },
        }
    }

    async fn wait_for_approval(
        &self,
        run: &StoredRun,
        step_no: u32,
        step_id: &str,
        level: RiskLevel,
        expires: DateTime<Utc>,
    ) {
        let wake = expires.min(run.deadline);
        match self
            .store
            .wait(run.id, WaitReason::Approval, wake, step_no)
            .await
        {
            Ok(()) => {
                tracing::info!(run_id = run.id, step = %step_id, risk = level.as_str(), expires_at = %expires.to_rfc3339(), "workflow run waits for an approval");
                self.nudge.notify_one();
            }
            Err(e) => {
                tracing::info!(run_id = run.id, error = %e, "workflow approval wait not stored")
            }
        }
    }

    /// A step that does its work at once (an approval passed): one attempt, succeeded.
    async fn record_instant(
        &self,
        run: &StoredRun,
        step_no: u32,
        step_id: &str,
        output: &Value,
    ) -> bool {
        let now = self.clock.now();
        let attempt = match self
            .store
            .start_attempt(run.id, step_no, step_id, now)
            .await
        {
            Ok(a) => a,
            Err(_) => return false,
        };
        let end = AttemptEnd {
            state: AttemptState::Succeeded,
            output: Some(output),
            error: None,
        };
        let ok = self
            .store
            .finish_attempt(attempt.id, end, now)
            .await
            .is_ok();
        if ok {
            self.metrics.attempt("approval", AttemptState::Succeeded);
        }
        ok
    }

    /// A `sleep` step: its wake time is stored with the run, which then waits at the next step; a restart
    /// does not start the sleep over.
    async fn sleep_step(&self, run: &StoredRun, step_no: u32, step_id: &str, duration: Duration) {
        let now = self.clock.now();
        let Ok(attempt) = self
            .store
            .start_attempt(run.id, step_no, step_id, now)
            .await
        else {
            return;
        };
        let wake = after(now, duration).min(run.deadline);
        // The wait first: should hale stop between the two writes, the run still wakes at its time.
        if let Err(e) = self
            .store
            .wait(run.id, WaitReason::Sleep, wake, step_no + 1)
            .await
        {
            tracing::info!(run_id = run.id, error = %e, "workflow sleep not stored");
            return;
        }
        let output = json!({"wake_at": wake.to_rfc3339()});
        let end = AttemptEnd {
            state: AttemptState::Succeeded,
            output: Some(&output),
            error: None,
        };
        if self
            .store
            .finish_attempt(attempt.id, end, now)
            .await
            .is_ok()
        {
            self.metrics.attempt("sleep", AttemptState::Succeeded);
        }
        tracing::info!(run_id = run.id, step = %step_id, wake_at = %wake.to_rfc3339(), "workflow run sleeps");
        self.nudge.notify_one();
    }

    /// One attempt of step `index`: its templates filled in, its executor called within its timeout (and
    /// the run's deadline).
    async fn execute(
        &self,
        run: &StoredRun,
        workflow: &Workflow,
        index: usize,
        inputs: &Map<String, Value>,
        outputs: &BTreeMap<String, Value>,
        token: &CancellationToken,
    ) -> StepResult {
        let step = &workflow.steps[index];
        let values = Values { inputs, outputs };
        let left = (run.deadline - self.clock.now())
            .to_std()
            .unwrap_or_default();
        let timeout = step.timeout.min(left);
        let context = StepContext {
            workflow: workflow.id.clone(),
            run_id: run.id,
            step_id: step.id.clone(),
        };
        let render = |t: &crate::workflows::Template| {
            t.render(values).map_err(|e| Failure::fatal(e.to_string()))
        };
        match &step.action {
            Action::Http {
                target,
                method,
                path,
                body,
                expect_status,
            } => {
                let target = self.effects.http_target(&render(target)?)?;
                let body = match body {
                    Some(b) => Some(
                        b.render(values)
                            .map_err(|e| Failure::fatal(e.to_string()))?,
                    ),
                    None => None,
                };
                let request = HttpRequest {
                    method: *method,
                    path: render(path)?,
                    body,
                    expect_status: expect_status.clone(),
                };
                cancellable(
                    token,
                    steps::http::run(&self.http, &target, &request, timeout),
                )
                .await
            }
            Action::WaitHealthy {
                target,
                consecutive,
            } => {
                let target = render(target)?;
                self.effects.watches(&target)?;
                let checks = self.events.subscribe("workflow wait_healthy");
                cancellable(
                    token,
                    steps::wait_healthy::run(checks, &target, *consecutive, timeout),
                )
                .await
            }
            Action::Command {
                argv,
                run: config,
                output_cap_bytes,
                kill_grace,
            } => {
                let argv = argv.iter().map(render).collect::<Result<Vec<_>, _>>()?;
                let env = self.env_policy.build(
                    &format!("workflow {}", workflow.id),
                    &config.inherit_env,
                    &config.env,
                    child_env::from_hale,
                );
                let spec = CommandSpec {
                    argv,
                    cwd: config.cwd.clone(),
                    env,
                    output_cap_bytes: *output_cap_bytes,
                    timeout,
                    kill_grace: *kill_grace,
                };
                steps::command::run(&self.spawner, &spec, token).await
            }
            Action::Heal { target } => {
                let target = render(target)?;
                within(timeout, token, self.effects.heal(&target, &context)).await
            }
            Action::McpTool { tool, arguments } => {
                let arguments = match arguments.render(values) {
                    Ok(Value::Object(map)) => map,
                    Ok(_) => return Err(Failure::fatal("the tool's arguments are not an object")),
                    Err(e) => return Err(Failure::fatal(e.to_string())),
                };
                within(
                    timeout,
                    token,
                    self.effects.call_tool(tool, arguments, &context),
                )
                .await
            }
            Action::Notify { message } => {
                let message = render(message)?;
                within(timeout, token, self.effects.notify(&message, &context)).await
            }
            Action::Sleep { .. } | Action::Approval { .. } => Err(Failure::fatal(
                "sleep and approval steps are waits of the engine, not attempts",
            )),
        }
    }

    /// An interrupted run raises an alert through the alert channels.
    async fn alert_interrupted(&self, run: &StoredRun, why: &str) {
        let context = StepContext {
            workflow: run.workflow.clone(),
            run_id: run.id,
            step_id: String::new(),
        };
        let message = format!(
            "workflow run {} of {} ended interrupted: {why}",
            run.id, run.workflow
        );
        if let Err(e) = self.effects.alert_interrupted(&message, &context).await {
            tracing::error!(run_id = run.id, error = %e.message, "cannot raise the alert of an interrupted workflow run");
        }
    }
}

/// What a gate said.
enum Gate {
    /// Approved (by a person or automatically): the step runs.
    Pass(StoredApproval),
    /// The run waits for a decision.
    Wait,
    /// The run ended (rejected, expired) or the store failed.
    Ended,
}

/// The step where a run waits for its approval, and the level asked: the first step from `first` on at or
/// above the threshold, when the run's highest step reaches it.
fn approval_gate(
    workflow: &Workflow,
    first: usize,
    risk: &crate::workflows::RiskConfig,
) -> Option<(usize, RiskLevel)> {
    let rest = workflow.steps.get(first..)?;
    let highest = rest.iter().map(|s| s.risk.level).max()?;
    if !risk.needs_approval(highest) {
        return None;
    }
    let at = rest
        .iter()
        .position(|s| risk.needs_approval(s.risk.level))?;
    Some((first + at, highest))
}

fn collect_outputs<'a>(
    attempts: impl Iterator<Item = &'a StoredAttempt>,
    outputs: &mut BTreeMap<String, Value>,
) {
    for attempt in attempts {
        if attempt.state != AttemptState::Succeeded {
            continue;
        }
        if let Some(value) = attempt
            .output
            .as_deref()
            .filter(|_| !attempt.output_truncated)
            .and_then(|text| serde_json::from_str::<Value>(text).ok())
        {
            outputs.insert(attempt.step_id.clone(), value);
        }
    }
}

/// A step's executor, stopped by a cancel of its run.
async fn cancellable(
    token: &CancellationToken,
    work: impl std::future::Future<Output = StepResult>,
) -> StepResult {
    tokio::select! {
        result = work => result,
        () = token.cancelled() => Err(Failure::fatal("cancelled while the step ran")),
    }
}

/// A step's effect within its timeout, stopped by a cancel of its run.
async fn within(
    timeout: Duration,
    token: &CancellationToken,
    work: BoxFuture<'_, StepResult>,
) -> StepResult {
    match tokio::time::timeout(timeout, cancellable(token, work)).await {
        Ok(result) => result,
        Err(_) => Err(Failure::of(
            crate::workflows::FailureClass::Timeout,
            format!(
                "no answer within the step's timeout ({} s)",
                timeout.as_secs()
            ),
        )),
    }
}

fn who(role: Option<&str>) -> String {
    match role {
        Some(role) => format!("a caller with the {role} role"),
        None => "a loopback caller without a token".to_owned(),
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

impl Worker for Engine {
    fn name(&self) -> &'static str {
        "workflows"
    }

    fn run(self: Arc<Self>, cancel: CancellationToken) -> BoxFuture<'static, ()> {
        Box::pin(self.run_loop(cancel))
    }
}
