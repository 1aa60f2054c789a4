//! Workflow runs, their step attempts and their approvals, behind one interface (`RunStore`) so that another
//! database can hold them later. The SQLite implementation writes every state change at once, in its own
//! short `BEGIN IMMEDIATE` transaction, never through the batching writer: a restart finds every run where
//! it was, and `recover_at_start` settles what hale left half done.

use std::collections::BTreeMap;
use std::future::Future;

use chrono::{DateTime, Utc};
use sqlx::{Connection, SqliteConnection};

use crate::records::{ApprovalDecision, AttemptState, RiskLevel, RunState, WaitReason};
use crate::store::{from_ms, known, role_name, to_ms, txn, Store, StoreError};

pub type RunId = i64;
pub type AttemptId = i64;

/// A step's output is kept up to this many bytes of JSON text; the rest is cut (`output_truncated`).
pub const OUTPUT_CAP_BYTES: usize = 64 * 1024;

/// The error a `RunStore` gives: the database failed, or the change does not apply to the run as it is.
#[derive(Debug, thiserror::Error)]
pub enum RunStoreError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "the idempotency key {key:?} already started run {run} of {workflow} with another body"
    )]
    IdempotencyConflict {
        workflow: String,
        key: String,
        run: RunId,
    },
    #[error("no workflow run {0}")]
    NoRun(RunId),
    #[error("no attempt {0} of a workflow step")]
    NoAttempt(AttemptId),
    #[error("run {run} is {state}, not {expected}")]
    WrongState {
        run: RunId,
        state: &'static str,
        expected: &'static str,
    },
    #[error("attempt {0} has already finished")]
    AttemptFinished(AttemptId),
    #[error("run {run} has no open approval for step {step_index}")]
    NoOpenApproval { run: RunId, step_index: u32 },
    #[error("{workflow} already has its limit of runs in progress for this group (runs {runs:?})")]
    GroupFull { workflow: String, runs: Vec<RunId> },
}

impl From<sqlx::Error> for RunStoreError {
    fn from(e: sqlx::Error) -> Self {
        Self::Store(StoreError::Query(e))
    }
}

/// A run to create.
#[derive(Debug, Clone, PartialEq)]
pub struct NewRun {
    pub workflow: String,
    /// The definition as written, kept with the run.
    pub definition: serde_json::Value,
    pub inputs: serde_json::Value,
    pub reason: String,
    /// The value of the workflow's concurrency key input, when it has one.
    pub concurrency_key: Option<String>,
    /// How many runs of the (workflow, key) group may be in progress at once.
    pub concurrency_limit: u32,
    pub idempotency: Option<Idempotency>,
    pub deadline: DateTime<Utc>,
    /// The run this one retries, and the step it starts from.
    pub retry_of: Option<RunId>,
    pub start_step: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Idempotency {
    pub key: String,
    pub body_hash: String,
}

/// What `create_or_get` did.
#[derive(Debug, Clone, PartialEq)]
pub enum Created {
    /// A new run, queued.
    New(StoredRun),
    /// The run the same key and body started before.
    Existing(StoredRun),
}

#[derive(Debug, Clone, PartialEq)]
pub struct StoredRun {
    pub id: RunId,
    pub workflow: String,
    pub definition: serde_json::Value,
    pub inputs: serde_json::Value,
    pub reason: String,
    pub state: RunState,
    pub wait_reason: Option<WaitReason>,
    pub wake_at: Option<DateTime<Utc>>,
    /// The step the run is at (or starts from, while queued).
    pub step_index: u32,
    pub concurrency_key: Option<String>,
    pub concurrency_limit: u32,
    pub idempotency_key: Option<String>,
    pub deadline: DateTime<Utc>,
    /// How many times the run went on after a restart.
    pub resumes: u32,
    pub retry_of: Option<RunId>,
    pub error: Option<String>,
    pub created: DateTime<Utc>,
    pub started: Option<DateTime<Utc>>,
    pub finished: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StoredAttempt {
    pub id: AttemptId,
    pub run_id: RunId,
    pub step_index: u32,
    pub step_id: String,
    /// 1 for the first attempt of the step in this run.
    pub attempt: u32,
    pub state: AttemptState,
    pub started: DateTime<Utc>,
    pub finished: Option<DateTime<Utc>>,
    /// The output as JSON text, cut at `OUTPUT_CAP_BYTES` when `output_truncated`.
    pub output: Option<String>,
    pub output_truncated: bool,
    pub error: Option<String>,
}

/// How an attempt ended.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AttemptEnd<'a> {
    /// `Succeeded` or `Failed`.
    pub state: AttemptState,
    pub output: Option<&'a serde_json::Value>,
    pub error: Option<&'a str>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewApproval {
    pub run_id: RunId,
    pub step_index: u32,
    pub step_id: String,
    pub risk: RiskLevel,
    pub requested: DateTime<Utc>,
    pub expires: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredApproval {
    pub id: i64,
    pub run_id: RunId,
    pub step_index: u32,
    pub step_id: String,
    pub risk: RiskLevel,
    pub requested: DateTime<Utc>,
    pub expires: DateTime<Utc>,
    pub decided: Option<DateTime<Utc>>,
    pub decision: Option<ApprovalDecision>,
    /// The role of who decided (none for hale's own decisions: expired, automatic).
    pub decided_by_role: Option<&'static str>,
    pub reason: Option<String>,
}

/// A decision on an open approval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision<'a> {
    pub decision: ApprovalDecision,
    pub role: Option<&'static str>,
    pub reason: Option<&'a str>,
}

/// What `recover_at_start` did, so the engine can resume or end each run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Recovery {
    /// Attempts that were running when hale stopped, now `interrupted` (their runs' deadlines had not passed).
    pub interrupted: Vec<StoredAttempt>,
    /// Runs whose deadline passed while hale was down, now `timed_out` (their running attempts interrupted).
    pub timed_out: Vec<RunId>,
    /// Runs still `running`: the engine resumes each at its step (idempotent, resumed fewer than 3 times)
    /// or ends it `interrupted`.
    pub running: Vec<StoredRun>,
    /// Runs `waiting`: they go on from their stored wake time.
    pub waiting: Vec<StoredRun>,
}

/// Which runs `list_runs` reads: newest (highest id) first, at most `limit` (capped at `MAX_RUNS_PAGE`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunFilter {
    /// One workflow's runs, or every workflow's.
    pub workflow: Option<String>,
    /// Runs in one of these states; empty for every state.
    pub states: Vec<RunState>,
    /// The cursor: only runs with an id below it. The next page's cursor is the last id of a full page.
    pub before: Option<RunId>,
    pub limit: u32,
}

/// The most runs one `list_runs` reads, whatever limit it is given.
pub const MAX_RUNS_PAGE: u32 = 1000;

/// Runs of every workflow at a glance, for `GET /status` and the gauges.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunSummary {
    pub running: u64,
    pub waiting: u64,
    pub queued: u64,
    /// When the oldest queued run was created.
    pub oldest_queued: Option<DateTime<Utc>>,
    /// Approvals nobody has decided yet.
    pub approvals_waiting: u64,
    /// Each workflow that has runs in the store, by name.
    pub workflows: Vec<WorkflowSummary>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkflowSummary {
    pub workflow: String,
    /// The run that finished last (by finish time): its id, final state and finish time.
    pub last_finished: Option<(RunId, RunState, DateTime<Utc>)>,
    /// Runs that ended failed, timed_out or interrupted with a finish time in (now - 24 h, now].
    pub failed_24h: u64,
    /// Runs running or waiting (queued ones are counted in `RunSummary::queued`).
    pub in_progress: u64,
}

/// The final states `WorkflowSummary::failed_24h` counts.
const FAILED_STATES: &str = "'failed', 'timed_out', 'interrupted'";
/// The states of a run in progress, which holds its concurrency group's slot and is never pruned.
const IN_PROGRESS_STATES: &str = "'running', 'waiting'";
/// The states a run has not left yet.
const UNFINISHED_STATES: &str = "'queued', 'running', 'waiting'";

/// Finished runs deleted per transaction by `delete_finished_runs` (with their attempts and approvals).
const PRUNE_RUNS_CHUNK: i64 = 500;

/// Where workflow runs live. Every method is one short transaction; a method that changes a state checks
/// the state it changes from, so two callers never both move a run.
pub trait RunStore: Send + Sync {
    /// Queues a run; with an idempotency key that already started a run of the workflow, returns that run
    /// when the body hash is the same and `IdempotencyConflict` when it is not.
    fn create_or_get(
        &self,
        run: &NewRun,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Created, RunStoreError>> + Send;

    /// `create_or_get`, but a new run is refused (`GroupFull`) while its (workflow, key) group already has
    /// its limit of runs queued, running or waiting: `on_conflict: reject`, decided in the same transaction.
    fn create_unless_full(
        &self,
        run: &NewRun,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Created, RunStoreError>> + Send;

    /// Moves the oldest queued run that has room to `running`: fewer than `global_cap` runs running, and
    /// fewer than its limit of its (workflow, key) group running or waiting. None when no run may start.
    fn claim_next(
        &self,
        global_cap: u32,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Option<StoredRun>, RunStoreError>> + Send;

    /// Records the start of the next attempt of a step of a running run, and puts the run at that step.
    fn start_attempt(
        &self,
        run: RunId,
        step_index: u32,
        step_id: &str,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<StoredAttempt, RunStoreError>> + Send;

    /// Records how a running attempt ended; its output is cut at `OUTPUT_CAP_BYTES`.
    fn finish_attempt(
        &self,
        attempt: AttemptId,
        end: AttemptEnd<'_>,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), RunStoreError>> + Send;

    /// A running run waits (a backoff, a sleep, an approval) until `wake_at`, then goes on at `step_index`.
    fn wait(
        &self,
        run: RunId,
        reason: WaitReason,
        wake_at: DateTime<Utc>,
        step_index: u32,
    ) -> impl Future<Output = Result<(), RunStoreError>> + Send;

    /// A waiting run runs again.
    fn wake(&self, run: RunId) -> impl Future<Output = Result<(), RunStoreError>> + Send;

    /// Ends a run that has not ended (`state` is final); false when it had already ended (a second cancel).
    fn finish_run(
        &self,
        run: RunId,
        state: RunState,
        error: Option<&str>,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<bool, RunStoreError>> + Send;

    /// Counts one more resume of a run after a restart; returns the new count.
    fn mark_resumed(&self, run: RunId) -> impl Future<Output = Result<u32, RunStoreError>> + Send;

    /// Records an approval a run asks for.
    fn request_approval(
        &self,
        approval: &NewApproval,
    ) -> impl Future<Output = Result<StoredApproval, RunStoreError>> + Send;

    /// Decides the open approval of a step: approved, rejected, expired (by hale) or automatic.
    fn decide_approval(
        &self,
        run: RunId,
        step_index: u32,
        decision: Decision<'_>,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<StoredApproval, RunStoreError>> + Send;

    /// At start, before taking work: every attempt left running becomes interrupted; every run whose
    /// deadline passed ends `timed_out`; returns what it did and the runs left to resume.
    fn recover_at_start(
        &self,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Recovery, RunStoreError>> + Send;

    fn run(
        &self,
        run: RunId,
    ) -> impl Future<Output = Result<Option<StoredRun>, RunStoreError>> + Send;

    /// The attempts of a run, in the order they started.
    fn attempts(
        &self,
        run: RunId,
    ) -> impl Future<Output = Result<Vec<StoredAttempt>, RunStoreError>> + Send;

    fn approvals(
        &self,
        run: RunId,
    ) -> impl Future<Output = Result<Vec<StoredApproval>, RunStoreError>> + Send;
    /// Runs matching `filter`, newest (highest id) first.
    fn list_runs(
        &self,
        filter: &RunFilter,
    ) -> impl Future<Output = Result<Vec<StoredRun>, RunStoreError>> + Send;

    /// The workflow's newest run (highest id).
    fn latest_run(
        &self,
        workflow: &str,
    ) -> impl Future<Output = Result<Option<StoredRun>, RunStoreError>> + Send;

    /// How many runs of the workflow are in each state; every state is in the map, with 0 when none is.
    fn state_counts(
        &self,
        workflow: &str,
    ) -> impl Future<Output = Result<BTreeMap<RunState, u64>, RunStoreError>> + Send;

    /// Runs of every workflow at a glance, read in one snapshot.
    fn summary(
        &self,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<RunSummary, RunStoreError>> + Send;

    /// Waiting runs whose wake time is at or before `now`, the earliest wake first.
    fn due_waits(
        &self,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Vec<StoredRun>, RunStoreError>> + Send;

    /// The earliest wake time of any waiting run.
    fn next_wake(
        &self,
    ) -> impl Future<Output = Result<Option<DateTime<Utc>>, RunStoreError>> + Send;

    /// Approvals nobody has decided yet, the oldest request first.
    fn open_approvals(
        &self,
    ) -> impl Future<Output = Result<Vec<StoredApproval>, RunStoreError>> + Send;

    /// The running or waiting runs of a (workflow, concurrency key) group, oldest first; `key` None is the
    /// group of the workflow's runs without a key.
    fn in_progress(
        &self,
        workflow: &str,
        key: Option<&str>,
    ) -> impl Future<Output = Result<Vec<StoredRun>, RunStoreError>> + Send;

    /// How many runs of the group `in_progress` reads there are.
    fn group_in_progress(
        &self,
        workflow: &str,
        key: Option<&str>,
    ) -> impl Future<Output = Result<u64, RunStoreError>> + Send;
}

const RUN_COLUMNS: &str = "id, workflow, definition, inputs, reason, state, wait_reason, wake_at_ms, step_index, \
     concurrency_key, concurrency_limit, idempotency_key, body_hash, deadline_ms, resumes, retry_of, error, \
     created_ms, started_ms, finished_ms";
const ATTEMPT_COLUMNS: &str =
    "id, run_id, step_index, step_id, attempt, state, started_ms, finished_ms, output, output_truncated, error";
const APPROVAL_COLUMNS: &str =
    "id, run_id, step_index, step_id, risk, requested_ms, expires_ms, decided_ms, \
     decision, decided_by_role, reason";

#[derive(sqlx::FromRow)]
struct RunRow {
    id: i64,
    workflow: String,
    definition: String,
    inputs: String,
    reason: String,
    state: String,
    wait_reason: Option<String>,
    wake_at_ms: Option<i64>,
    step_index: i64,
    concurrency_key: Option<String>,
    concurrency_limit: i64,
    idempotency_key: Option<String>,
    body_hash: Option<String>,
    deadline_ms: i64,
    resumes: i64,
    retry_of: Option<i64>,
    error: Option<String>,
    created_ms: i64,
    started_ms: Option<i64>,
    finished_ms: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct AttemptRow {
    id: i64,
    run_id: i64,
    step_index: i64,
    step_id: String,
    attempt: i64,
    state: String,
    started_ms: i64,
    finished_ms: Option<i64>,
    output: Option<String>,
    output_truncated: bool,
    error: Option<String>,
}

#[derive(sqlx::FromRow)]
struct ApprovalRow {
    id: i64,
    run_id: i64,
    step_index: i64,
    step_id: String,
    risk: String,
    requested_ms: i64,
    expires_ms: i64,
    decided_ms: Option<i64>,
    decision: Option<String>,
    decided_by_role: Option<String>,
    reason: Option<String>,
}

const RUNS: &str = "workflow_runs";

fn count(n: i64) -> u32 {
    u32::try_from(n).unwrap_or(0)
}

/// A `count(*)` as a u64.
fn tally(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// A JSON column read back; text that is not JSON (edited by hand) is kept as a string rather than lost.
fn json(table: &str, column: &str, text: String) -> serde_json::Value {
    serde_json::from_str(&text).unwrap_or_else(|e| {
        tracing::error!(table, column, error = %e, "a JSON column holds no JSON; it is read as a string");
        serde_json::Value::String(text)
    })
}

impl RunRow {
    fn parse(self) -> Option<StoredRun> {
        let state = known(RUNS, "state", &self.state, RunState::parse(&self.state))?;
        let wait_reason = match self.wait_reason.as_deref() {
            None => None,
            Some(raw) => Some(known(RUNS, "wait_reason", raw, WaitReason::parse(raw))?),
        };
        let _ = self.body_hash;
        Some(StoredRun {
            id: self.id,
            workflow: self.workflow,
            definition: json(RUNS, "definition", self.definition),
            inputs: json(RUNS, "inputs", self.inputs),
            reason: self.reason,
            state,
            wait_reason,
            wake_at: self.wake_at_ms.map(from_ms),
            step_index: count(self.step_index),
            concurrency_key: self.concurrency_key,
            concurrency_limit: count(self.concurrency_limit),
            idempotency_key: self.idempotency_key,
            deadline: from_ms(self.deadline_ms),
            resumes: count(self.resumes),
            retry_of: self.retry_of,
            error: self.error,
            created: from_ms(self.created_ms),
            started: self.started_ms.map(from_ms),
            finished: self.finished_ms.map(from_ms),
        })
    }
}

impl AttemptRow {
    fn parse(self) -> Option<StoredAttempt> {
        let state = known(
            "workflow_attempts",
            "state",
            &self.state,
            AttemptState::parse(&self.state),
        )?;
        Some(StoredAttempt {
            id: self.id,
            run_id: self.run_id,
            step_index: count(self.step_index),
            step_id: self.step_id,
            attempt: count(self.attempt),
            state,
            started: from_ms(self.started_ms),
            finished: self.finished_ms.map(from_ms),
            output: self.output,
            output_truncated: self.output_truncated,
            error: self.error,
        })
    }
}

impl ApprovalRow {
    fn parse(self) -> Option<StoredApproval> {
        const TABLE: &str = "workflow_approvals";
        let risk = known(TABLE, "risk", &self.risk, RiskLevel::parse(&self.risk))?;
        let decision = match self.decision.as_deref() {
            None => None,
            Some(raw) => Some(known(TABLE, "decision", raw, ApprovalDecision::parse(raw))?),
        };
        let decided_by_role = match self.decided_by_role.as_deref() {
            None => None,
            Some(raw) => Some(known(TABLE, "decided_by_role", raw, role_name(raw))?),
        };
        Some(StoredApproval {
            id: self.id,
            run_id: self.run_id,
            step_index: count(self.step_index),
            step_id: self.step_id,
            risk,
            requested: from_ms(self.requested_ms),
            expires: from_ms(self.expires_ms),
            decided: self.decided_ms.map(from_ms),
            decision,
            decided_by_role,
            reason: self.reason,
        })
    }
}

/// `text` cut at `OUTPUT_CAP_BYTES` on a character boundary, and whether it was cut.
fn capped(text: String) -> (String, bool) {
    if text.len() <= OUTPUT_CAP_BYTES {
        return (text, false);
    }
    let mut end = OUTPUT_CAP_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    (text[..end].to_owned(), true)
}

async fn run_in(conn: &mut SqliteConnection, id: RunId) -> Result<Option<StoredRun>, sqlx::Error> {
    let row: Option<RunRow> = sqlx::query_as(&format!(
        "SELECT {RUN_COLUMNS} FROM workflow_runs WHERE id = ?1"
    ))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.and_then(RunRow::parse))
}

/// The run's state, or `NoRun`.
async fn state_of(conn: &mut SqliteConnection, id: RunId) -> Result<RunState, RunStoreError> {
    let raw: Option<String> = sqlx::query_scalar("SELECT state FROM workflow_runs WHERE id = ?1")
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    let raw = raw.ok_or(RunStoreError::NoRun(id))?;
    known(RUNS, "state", &raw, RunState::parse(&raw)).ok_or(RunStoreError::NoRun(id))
}

fn expect(run: RunId, state: RunState, expected: RunState) -> Result<(), RunStoreError> {
    if state == expected {
        Ok(())
    } else {
        Err(RunStoreError::WrongState {
            run,
            state: state.as_str(),
            expected: expected.as_str(),
        })
    }
}

impl Store {
    /// Runs `body` in one `BEGIN IMMEDIATE` transaction (the write lock taken first, so a read inside it is
    /// never stale) and commits it for real.
    async fn change<T, F>(&self, body: F) -> Result<T, RunStoreError>
    where
        F: for<'c> FnOnce(
                &'c mut SqliteConnection,
            )
                -> futures_util::future::BoxFuture<'c, Result<T, RunStoreError>>
            + Send,
        T: Send,
    {
        // Two of these at once would both ask SQLite for the write lock, and the one refused would sleep in
        // the busy handler (1, 2, 5, 10 ... 100 ms between tries) long after the lock is free: the 80 to
        // 100 ms tail of the starts and runs measured by `benches/workflows.rs`.
        let _turn = self.workflow_writes().lock().await;
        let mut conn = self.pool().acquire().await?;
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
        let value = body(&mut tx).await?;
        tx.commit().await?;
        txn::confirm_committed(&mut conn).await?;
        Ok(value)
    }
}

impl Store {
    /// `create_in`, in its own transaction.
    async fn create(
        &self,
        run: &NewRun,
        now: DateTime<Utc>,
        refuse_when_full: bool,
    ) -> Result<Created, RunStoreError> {
        let run = run.clone();
        self.change(move |conn| {
            Box::pin(async move { create_in(conn, &run, now, refuse_when_full).await })
        })
        .await
    }
}

impl RunStore for Store {
    async fn create_or_get(
        &self,
        run: &NewRun,
        now: DateTime<Utc>,
    ) -> Result<Created, RunStoreError> {
        self.create(run, now, false).await
    }

    async fn create_unless_full(
        &self,
        run: &NewRun,
        now: DateTime<Utc>,
    ) -> Result<Created, RunStoreError> {
        self.create(run, now, true).await
    }

    async fn claim_next(
        &self,
        global_cap: u32,
        now: DateTime<Utc>,
    ) -> Result<Option<StoredRun>, RunStoreError> {
        self.change(move |conn| {
            Box::pin(async move {
                let running: i64 =
                    sqlx::query_scalar("SELECT COUNT(*) FROM workflow_runs WHERE state = 'running'")
                        .fetch_one(&mut *conn)
                        .await?;
                if running >= i64::from(global_cap) {
                    return Ok(None);
                }
                let next: Option<i64> = sqlx::query_scalar(
                    "SELECT q.id FROM workflow_runs q
                     WHERE q.state = 'queued'
                       AND (SELECT COUNT(*) FROM workflow_runs o
                            WHERE o.workflow = q.workflow AND o.concurrency_key IS q.concurrency_key
                              AND o.state IN ('running', 'waiting')) < q.concurrency_limit
                     ORDER BY q.id LIMIT 1",
                )
                .fetch_optional(&mut *conn)
                .await?;
                let Some(id) = next else {
                    return Ok(None);
                };
                sqlx::query(
                    "UPDATE workflow_runs SET state = 'running', started_ms = COALESCE(started_ms, ?2)
                     WHERE id = ?1",
                )
                .bind(id)
                .bind(to_ms(now))
                .execute(&mut *conn)
                .await?;
                run_in(conn, id).await.map_err(Into::into)
            })
        })
        .await
    }

    async fn start_attempt(
        &self,
        run: RunId,
        step_index: u32,
        step_id: &str,
        now: DateTime<Utc>,
    ) -> Result<StoredAttempt, RunStoreError> {
        let step_id = step_id.to_owned();
        self.change(move |conn| {
            Box::pin(async move {
                expect(run, state_of(conn, run).await?, RunState::Running)?;
                let row: AttemptRow = sqlx::query_as(&format!(
                    "INSERT INTO workflow_attempts (run_id, step_index, step_id, attempt, state, started_ms)
                     VALUES (?1, ?2, ?3,
                             (SELECT COALESCE(MAX(attempt), 0) + 1 FROM workflow_attempts
                              WHERE run_id = ?1 AND step_index = ?2),
                             'running', ?4)
                     RETURNING {ATTEMPT_COLUMNS}"
                ))
                .bind(run)
                .bind(i64::from(step_index))
                .bind(&step_id)
                .bind(to_ms(now))
                .fetch_one(&mut *conn)
                .await?;
                sqlx::query("UPDATE workflow_runs SET step_index = ?2 WHERE id = ?1")
                    .bind(run)
                    .bind(i64::from(step_index))
                    .execute(&mut *conn)
                    .await?;
                let id = row.id;
                row.parse().ok_or(RunStoreError::NoAttempt(id))
            })
        })
        .await
    }

    async fn finish_attempt(
        &self,
        attempt: AttemptId,
        end: AttemptEnd<'_>,
        now: DateTime<Utc>,
    ) -> Result<(), RunStoreError> {
        let (output, truncated) = match end.output {
            Some(value) => {
                let (text, cut) = capped(value.to_string());
                (Some(text), cut)
            }
            None => (None, false),
        };
        let state = end.state;
        let error = end.error.map(str::to_owned);
        self.change(move |conn| {
            Box::pin(async move {
                let changed = sqlx::query(
                    "UPDATE workflow_attempts SET state = ?2, finished_ms = ?3, output = ?4, output_truncated = ?5,
                         error = ?6
                     WHERE id = ?1 AND state = 'running'",
                )
                .bind(attempt)
                .bind(state.as_str())
                .bind(to_ms(now))
                .bind(output)
                .bind(truncated)
                .bind(error)
                .execute(&mut *conn)
                .await?
                .rows_affected();
                if changed == 1 {
                    return Ok(());
                }
                let exists: Option<i64> =
                    sqlx::query_scalar("SELECT id FROM workflow_attempts WHERE id = ?1")
                        .bind(attempt)
                        .fetch_optional(&mut *conn)
                        .await?;
                Err(match exists {
                    Some(_) => RunStoreError::AttemptFinished(attempt),
                    None => RunStoreError::NoAttempt(attempt),
                })
            })
        })
        .await
    }

    async fn wait(
        &self,
        run: RunId,
        reason: WaitReason,
        wake_at: DateTime<Utc>,
        step_index: u32,
    ) -> Result<(), RunStoreError> {
        self.change(move |conn| {
            Box::pin(async move {
                expect(run, state_of(conn, run).await?, RunState::Running)?;
                sqlx::query(
                    "UPDATE workflow_runs SET state = 'waiting', wait_reason = ?2, wake_at_ms = ?3, step_index = ?4
                     WHERE id = ?1",
                )
                .bind(run)
                .bind(reason.as_str())
                .bind(to_ms(wake_at))
                .bind(i64::from(step_index))
                .execute(&mut *conn)
                .await?;
                Ok(())
            })
        })
        .await
    }

    async fn wake(&self, run: RunId) -> Result<(), RunStoreError> {
        self.change(move |conn| {
            Box::pin(async move {
                expect(run, state_of(conn, run).await?, RunState::Waiting)?;
                sqlx::query(
                    "UPDATE workflow_runs SET state = 'running', wait_reason = NULL, wake_at_ms = NULL WHERE id = ?1",
                )
                .bind(run)
                .execute(&mut *conn)
                .await?;
                Ok(())
            })
        })
        .await
    }

    async fn finish_run(
        &self,
        run: RunId,
        state: RunState,
        error: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<bool, RunStoreError> {
        if !state.is_final() {
            return Err(RunStoreError::WrongState {
                run,
                state: state.as_str(),
                expected: "a final state",
            });
        }
        let error = error.map(str::to_owned);
        self.change(move |conn| {
            Box::pin(async move {
                if state_of(conn, run).await?.is_final() {
                    return Ok(false);
                }
                end_run(conn, run, state, error.as_deref(), now).await?;
                Ok(true)
            })
        })
        .await
    }

    async fn mark_resumed(&self, run: RunId) -> Result<u32, RunStoreError> {
        self.change(move |conn| {
            Box::pin(async move {
                let n: Option<i64> = sqlx::query_scalar(
                    "UPDATE workflow_runs SET resumes = resumes + 1 WHERE id = ?1 RETURNING resumes",
                )
                .bind(run)
                .fetch_optional(&mut *conn)
                .await?;
                n.map(count).ok_or(RunStoreError::NoRun(run))
            })
        })
        .await
    }

    async fn request_approval(
        &self,
        approval: &NewApproval,
    ) -> Result<StoredApproval, RunStoreError> {
        let a = approval.clone();
        self.change(move |conn| {
            Box::pin(async move {
                state_of(conn, a.run_id).await?;
                let row: ApprovalRow = sqlx::query_as(&format!(
                    "INSERT INTO workflow_approvals (run_id, step_index, step_id, risk, requested_ms, expires_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING {APPROVAL_COLUMNS}"
                ))
                .bind(a.run_id)
                .bind(i64::from(a.step_index))
                .bind(&a.step_id)
                .bind(a.risk.as_str())
                .bind(to_ms(a.requested))
                .bind(to_ms(a.expires))
                .fetch_one(&mut *conn)
                .await?;
                row.parse().ok_or(RunStoreError::NoOpenApproval {
                    run: a.run_id,
                    step_index: a.step_index,
                })
            })
        })
        .await
    }

    async fn decide_approval(
        &self,
        run: RunId,
        step_index: u32,
        decision: Decision<'_>,
        now: DateTime<Utc>,
    ) -> Result<StoredApproval, RunStoreError> {
        let reason = decision.reason.map(str::to_owned);
        let (choice, role) = (decision.decision, decision.role);
        self.change(move |conn| {
            Box::pin(async move {
                let row: Option<ApprovalRow> = sqlx::query_as(&format!(
                    "UPDATE workflow_approvals SET decided_ms = ?3, decision = ?4, decided_by_role = ?5, reason = ?6
                     WHERE run_id = ?1 AND step_index = ?2 AND decision IS NULL
                     RETURNING {APPROVAL_COLUMNS}"
                ))
                .bind(run)
                .bind(i64::from(step_index))
                .bind(to_ms(now))
                .bind(choice.as_str())
                .bind(role)
                .bind(reason)
                .fetch_optional(&mut *conn)
                .await?;
                row.and_then(ApprovalRow::parse)
                    .ok_or(RunStoreError::NoOpenApproval { run, step_index })
            })
        })
        .await
    }

    async fn recover_at_start(&self, now: DateTime<Utc>) -> Result<Recovery, RunStoreError> {
        self.change(move |conn| {
            Box::pin(async move {
                let now_ms = to_ms(now);
                let timed_out: Vec<i64> = sqlx::query_scalar(
                    "SELECT id FROM workflow_runs
                     WHERE state IN ('queued', 'running', 'waiting') AND deadline_ms <= ?1 ORDER BY id",
                )
                .bind(now_ms)
                .fetch_all(&mut *conn)
                .await?;
                for id in &timed_out {
                    end_run(
                        conn,
                        *id,
                        RunState::TimedOut,
                        Some("the run's deadline passed while hale was stopped"),
                        now,
                    )
                    .await?;
                }
                let rows: Vec<AttemptRow> = sqlx::query_as(&format!(
                    "UPDATE workflow_attempts SET state = 'interrupted', finished_ms = ?1,
                         error = 'hale stopped during this attempt'
                     WHERE state = 'running' RETURNING {ATTEMPT_COLUMNS}"
                ))
                .bind(now_ms)
                .fetch_all(&mut *conn)
                .await?;
                let mut interrupted: Vec<StoredAttempt> = rows
                    .into_iter()
                    .filter_map(AttemptRow::parse)
                    .filter(|a| !timed_out.contains(&a.run_id))
                    .collect();
                interrupted.sort_by_key(|a| a.id);
                let running: Vec<RunRow> = sqlx::query_as(&format!(
                    "SELECT {RUN_COLUMNS} FROM workflow_runs WHERE state = 'running' ORDER BY id"
                ))
                .fetch_all(&mut *conn)
                .await?;
                let waiting: Vec<RunRow> = sqlx::query_as(&format!(
                    "SELECT {RUN_COLUMNS} FROM workflow_runs WHERE state = 'waiting' ORDER BY id"
                ))
                .fetch_all(&mut *conn)
                .await?;
                Ok(Recovery {
                    interrupted,
                    timed_out,
                    running: running.into_iter().filter_map(RunRow::parse).collect(),
                    waiting: waiting.into_iter().filter_map(RunRow::parse).collect(),
                })
            })
        })
        .await
    }

    async fn run(&self, run: RunId) -> Result<Option<StoredRun>, RunStoreError> {
        let mut conn = self.pool().acquire().await?;
        Ok(run_in(&mut conn, run).await?)
    }

    async fn attempts(&self, run: RunId) -> Result<Vec<StoredAttempt>, RunStoreError> {
        let rows: Vec<AttemptRow> = sqlx::query_as(&format!(
            "SELECT {ATTEMPT_COLUMNS} FROM workflow_attempts WHERE run_id = ?1 ORDER BY id"
        ))
        .bind(run)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().filter_map(AttemptRow::parse).collect())
    }

    async fn approvals(&self, run: RunId) -> Result<Vec<StoredApproval>, RunStoreError> {
        let rows: Vec<ApprovalRow> = sqlx::query_as(&format!(
            "SELECT {APPROVAL_COLUMNS} FROM workflow_approvals WHERE run_id = ?1 ORDER BY id"
        ))
        .bind(run)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().filter_map(ApprovalRow::parse).collect())
    }
    async fn list_runs(&self, filter: &RunFilter) -> Result<Vec<StoredRun>, RunStoreError> {
        let limit = filter.limit.min(MAX_RUNS_PAGE);
        if limit == 0 {
            return Ok(Vec::new());
        }
        // Only the clauses the filter uses, so the planner sees each one (`?1 IS NULL OR ...` hides the
        // index): a workflow's runs come from its (workflow, id) index, every workflow's from the table in
        // id order; both stop after `limit` matches.
        let mut query = sqlx::QueryBuilder::<sqlx::Sqlite>::new(format!(
            "SELECT {RUN_COLUMNS} FROM workflow_runs WHERE 1 = 1"
        ));
        if let Some(workflow) = &filter.workflow {
            query.push(" AND workflow = ").push_bind(workflow.clone());
        }
        if !filter.states.is_empty() {
            query.push(" AND state IN (");
            let mut states = query.separated(", ");
            for state in &filter.states {
                states.push_bind(state.as_str());
            }
            query.push(")");
        }
        if let Some(before) = filter.before {
            query.push(" AND id < ").push_bind(before);
        }
        query
            .push(" ORDER BY id DESC LIMIT ")
            .push_bind(i64::from(limit));
        let rows: Vec<RunRow> = query.build_query_as().fetch_all(self.pool()).await?;
        Ok(rows.into_iter().filter_map(RunRow::parse).collect())
    }

    async fn latest_run(&self, workflow: &str) -> Result<Option<StoredRun>, RunStoreError> {
        let row: Option<RunRow> = sqlx::query_as(&format!(
            "SELECT {RUN_COLUMNS} FROM workflow_runs WHERE workflow = ?1 ORDER BY id DESC LIMIT 1"
        ))
        .bind(workflow)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.and_then(RunRow::parse))
    }

    async fn state_counts(&self, workflow: &str) -> Result<BTreeMap<RunState, u64>, RunStoreError> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT state, count(*) FROM workflow_runs WHERE workflow = ?1 GROUP BY state",
        )
        .bind(workflow)
        .fetch_all(self.pool())
        .await?;
        let mut counts: BTreeMap<RunState, u64> =
            RunState::ALL.iter().map(|state| (*state, 0)).collect();
        for (raw, n) in rows {
            if let Some(state) = known(RUNS, "state", &raw, RunState::parse(&raw)) {
                counts.insert(state, tally(n));
            }
        }
        Ok(counts)
    }

    async fn summary(&self, now: DateTime<Utc>) -> Result<RunSummary, RunStoreError> {
        let mut conn = self.pool().acquire().await?;
        // One read transaction: every count comes from the same snapshot. It only reads, so it is rolled
        // back when dropped.
        let mut tx = conn.begin().await?;
        let mut summary = RunSummary::default();
        let states: Vec<(String, i64)> = sqlx::query_as(&format!(
            "SELECT state, count(*) FROM workflow_runs WHERE state IN ({UNFINISHED_STATES}) GROUP BY state"
        ))
        .fetch_all(&mut *tx)
        .await?;
        for (state, n) in states {
            match RunState::parse(&state) {
                Some(RunState::Queued) => summary.queued = tally(n),
                Some(RunState::Running) => summary.running = tally(n),
                Some(RunState::Waiting) => summary.waiting = tally(n),
                _ => {}
            }
        }
        summary.oldest_queued = sqlx::query_scalar::<_, Option<i64>>(
            "SELECT min(created_ms) FROM workflow_runs WHERE state = 'queued'",
        )
        .fetch_one(&mut *tx)
        .await?
        .map(from_ms);
        summary.approvals_waiting = tally(
            sqlx::query_scalar("SELECT count(*) FROM workflow_approvals WHERE decision IS NULL")
                .fetch_one(&mut *tx)
                .await?,
        );
        let in_progress: BTreeMap<String, i64> = sqlx::query_as::<_, (String, i64)>(&format!(
            "SELECT workflow, count(*) FROM workflow_runs WHERE state IN ({IN_PROGRESS_STATES})
             GROUP BY workflow"
        ))
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .collect();
        let now_ms = to_ms(now);
        let day_ago_ms = to_ms(now - chrono::TimeDelta::hours(24));
        // The workflows that have runs, one index seek each (a DISTINCT would read every run's entry).
        let mut next: Option<String> =
            sqlx::query_scalar("SELECT workflow FROM workflow_runs ORDER BY workflow LIMIT 1")
                .fetch_optional(&mut *tx)
                .await?;
        while let Some(workflow) = next {
            let last: Option<(i64, String, i64)> = sqlx::query_as(
                "SELECT id, state, finished_ms FROM workflow_runs
                 WHERE workflow = ?1 AND finished_ms IS NOT NULL
                 ORDER BY finished_ms DESC, id DESC LIMIT 1",
            )
            .bind(&workflow)
            .fetch_optional(&mut *tx)
            .await?;
            let last_finished = last.and_then(|(id, raw, finished_ms)| {
                let state = known(RUNS, "state", &raw, RunState::parse(&raw))?;
                Some((id, state, from_ms(finished_ms)))
            });
            let failed: i64 = sqlx::query_scalar(&format!(
                "SELECT count(*) FROM workflow_runs
                 WHERE workflow = ?1 AND finished_ms > ?2 AND finished_ms <= ?3 AND state IN ({FAILED_STATES})"
            ))
            .bind(&workflow)
            .bind(day_ago_ms)
            .bind(now_ms)
            .fetch_one(&mut *tx)
            .await?;
            next = sqlx::query_scalar(
                "SELECT workflow FROM workflow_runs WHERE workflow > ?1 ORDER BY workflow LIMIT 1",
            )
            .bind(&workflow)
            .fetch_optional(&mut *tx)
            .await?;
            summary.workflows.push(WorkflowSummary {
                in_progress: tally(in_progress.get(&workflow).copied().unwrap_or(0)),
                workflow,
                last_finished,
                failed_24h: tally(failed),
            });
        }
        Ok(summary)
    }

    async fn due_waits(&self, now: DateTime<Utc>) -> Result<Vec<StoredRun>, RunStoreError> {
        let rows: Vec<RunRow> = sqlx::query_as(&format!(
            "SELECT {RUN_COLUMNS} FROM workflow_runs WHERE state = 'waiting' AND wake_at_ms <= ?1
             ORDER BY wake_at_ms, id"
        ))
        .bind(to_ms(now))
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().filter_map(RunRow::parse).collect())
    }

    async fn next_wake(&self) -> Result<Option<DateTime<Utc>>, RunStoreError> {
        let ms: Option<i64> =
            sqlx::query_scalar("SELECT min(wake_at_ms) FROM workflow_runs WHERE state = 'waiting'")
                .fetch_one(self.pool())
                .await?;
        Ok(ms.map(from_ms))
    }

    async fn open_approvals(&self) -> Result<Vec<StoredApproval>, RunStoreError> {
        let rows: Vec<ApprovalRow> = sqlx::query_as(&format!(
            "SELECT {APPROVAL_COLUMNS} FROM workflow_approvals WHERE decision IS NULL
             ORDER BY requested_ms, id"
        ))
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().filter_map(ApprovalRow::parse).collect())
    }

    async fn in_progress(
        &self,
        workflow: &str,
        key: Option<&str>,
    ) -> Result<Vec<StoredRun>, RunStoreError> {
        let rows: Vec<RunRow> = sqlx::query_as(&format!(
            "SELECT {RUN_COLUMNS} FROM workflow_runs
             WHERE workflow = ?1 AND concurrency_key IS ?2 AND state IN ({IN_PROGRESS_STATES})"
        ))
        .bind(workflow)
        .bind(key)
        .fetch_all(self.pool())
        .await?;
        // Sorted here, not by an ORDER BY id: that would make SQLite walk every run of the workflow in its
        // (workflow, id) index rather than seek the group's few in its (workflow, key, state) index.
        let mut runs: Vec<StoredRun> = rows.into_iter().filter_map(RunRow::parse).collect();
        runs.sort_by_key(|r| r.id);
        Ok(runs)
    }

    async fn group_in_progress(
        &self,
        workflow: &str,
        key: Option<&str>,
    ) -> Result<u64, RunStoreError> {
        let n: i64 = sqlx::query_scalar(&format!(
            "SELECT count(*) FROM workflow_runs
             WHERE workflow = ?1 AND concurrency_key IS ?2 AND state IN ({IN_PROGRESS_STATES})"
        ))
        .bind(workflow)
        .bind(key)
        .fetch_one(self.pool())
        .await?;
        Ok(tally(n))
    }
}

impl Store {
    /// Deletes the finished runs (final state) whose finish time is before `before`, with their attempts
    /// and approvals, `PRUNE_RUNS_CHUNK` runs per short transaction; returns how many runs went. A run in
    /// progress is never deleted, however old. A newer run that retried a deleted one keeps running or
    /// stays in the history: its `retry_of` link is cleared first (set NULL) rather than the old run kept,
    /// so a chain of retries never holds old runs back.
    pub(crate) async fn delete_finished_runs(
        &self,
        before: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        // The same chunk in every statement of one transaction: nothing else writes in between, and none of
        // the statements before the last changes a run's state or finish time.
        let chunk = format!(
            "SELECT id FROM workflow_runs
             WHERE finished_ms < ?1 AND state NOT IN ({UNFINISHED_STATES})
             ORDER BY finished_ms, id LIMIT ?2"
        );
        let statements = [
            format!("UPDATE workflow_runs SET retry_of = NULL WHERE retry_of IN ({chunk})"),
            format!("DELETE FROM workflow_attempts WHERE run_id IN ({chunk})"),
            format!("DELETE FROM workflow_approvals WHERE run_id IN ({chunk})"),
            format!("DELETE FROM workflow_runs WHERE id IN ({chunk})"),
        ];
        let before_ms = to_ms(before);
        let mut total = 0;
        loop {
            let mut conn = self.pool().acquire().await?;
            let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
            let mut deleted = 0;
            for sql in &statements {
                deleted = sqlx::query(sql)
                    .bind(before_ms)
                    .bind(PRUNE_RUNS_CHUNK)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
            }
            tx.commit().await?;
            txn::confirm_committed(&mut conn).await?;
            drop(conn);
            total += deleted;
            if deleted < PRUNE_RUNS_CHUNK as u64 {
                return Ok(total);
            }
            tokio::task::yield_now().await;
        }
    }
}

/// Queues a run, or finds the one its idempotency key started; with `refuse_when_full`, refuses a new run
/// while its (workflow, key) group already has its limit of runs queued, running or waiting.
async fn create_in(
    conn: &mut SqliteConnection,
    run: &NewRun,
    now: DateTime<Utc>,
    refuse_when_full: bool,
) -> Result<Created, RunStoreError> {
    if let Some(idem) = &run.idempotency {
        let found: Option<(i64, Option<String>)> = sqlx::query_as(
            "SELECT id, body_hash FROM workflow_runs WHERE workflow = ?1 AND idempotency_key = ?2",
        )
        .bind(&run.workflow)
        .bind(&idem.key)
        .fetch_optional(&mut *conn)
        .await?;
        if let Some((id, hash)) = found {
            if hash.as_deref() != Some(idem.body_hash.as_str()) {
                return Err(RunStoreError::IdempotencyConflict {
                    workflow: run.workflow.clone(),
                    key: idem.key.clone(),
                    run: id,
                });
            }
            let existing = run_in(conn, id).await?.ok_or(RunStoreError::NoRun(id))?;
            return Ok(Created::Existing(existing));
        }
    }
    if refuse_when_full {
        let in_group: Vec<i64> = sqlx::query_scalar(
            "SELECT id FROM workflow_runs
             WHERE workflow = ?1 AND concurrency_key IS ?2 AND state IN ('queued', 'running', 'waiting')
             ORDER BY id",
        )
        .bind(&run.workflow)
        .bind(&run.concurrency_key)
        .fetch_all(&mut *conn)
        .await?;
        if in_group.len() >= run.concurrency_limit.max(1) as usize {
            return Err(RunStoreError::GroupFull {
                workflow: run.workflow.clone(),
                runs: in_group,
            });
        }
    }
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO workflow_runs (workflow, definition, inputs, reason, state, step_index,
             concurrency_key, concurrency_limit, idempotency_key, body_hash, deadline_ms, retry_of,
             created_ms)
         VALUES (?1, ?2, ?3, ?4, 'queued', ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) RETURNING id",
    )
    .bind(&run.workflow)
    .bind(run.definition.to_string())
    .bind(run.inputs.to_string())
    .bind(&run.reason)
    .bind(i64::from(run.start_step))
    .bind(&run.concurrency_key)
    .bind(i64::from(run.concurrency_limit.max(1)))
    .bind(run.idempotency.as_ref().map(|i| i.key.as_str()))
    .bind(run.idempotency.as_ref().map(|i| i.body_hash.as_str()))
    .bind(to_ms(run.deadline))
    .bind(run.retry_of)
    .bind(to_ms(now))
    .fetch_one(&mut *conn)
    .await?;
    let created = run_in(conn, id).await?.ok_or(RunStoreError::NoRun(id))?;
    Ok(Created::New(created))
}

/// Ends a run: its final state, its error, the time; a running attempt of it is interrupted.
async fn end_run(
    conn: &mut SqliteConnection,
    run: RunId,
    state: RunState,
    error: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE workflow_runs SET state = ?2, error = ?3, finished_ms = ?4, wait_reason = NULL, wake_at_ms = NULL
         WHERE id = ?1",
    )
    .bind(run)
    .bind(state.as_str())
    .bind(error)
    .bind(to_ms(now))
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "UPDATE workflow_attempts SET state = 'interrupted', finished_ms = ?2,
             error = COALESCE(error, 'the run ended during this attempt')
         WHERE run_id = ?1 AND state = 'running'",
    )
    .bind(run)
    .bind(to_ms(now))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests;
