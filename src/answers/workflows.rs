//! The Boss API's answers about workflows and their runs: the definitions, a workflow's status and runs, one
//! run with its steps, attempts and approvals, and the queue as a whole (`/status`). The routes and
//! `hale workflow` give these; hale's MCP tools can too.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use crate::answers::AnswerError;
use crate::records::{ApprovalDecision, AttemptState, RiskLevel, RunState, WaitReason};
use crate::store::workflows::{
    RunFilter, RunId, RunStore, StoredApproval, StoredAttempt, StoredRun,
};
use crate::workflows::engine::{Engine, EngineError};
use crate::workflows::Workflow;

const DEFAULT_LIMIT: u32 = 50;
const MAX_LIMIT: u32 = 500;

impl From<EngineError> for AnswerError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::UnknownWorkflow(_) | EngineError::UnknownRun(_) => {
                Self::NotFound(e.to_string())
            }
            EngineError::BadInput(_) | EngineError::KeyReused { .. } => {
                Self::Refused(e.to_string())
            }
            EngineError::Draining | EngineError::Store(_) => Self::Unavailable(e.to_string()),
            EngineError::Busy { .. } | EngineError::Conflict(_) => Self::Conflict(e.to_string()),
        }
    }
}

/// A workflow as configured.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "restart-api", "description": "Drain, restart and verify the API",
    "inputs": {"reason_code": {"type": "string", "required": false}},
    "deadline_s": 900, "concurrency": {"limit": 1, "on_conflict": "queue"}, "risk": "medium",
    "approval_required": false,
    "steps": [{"id": "drain", "kind": "http", "risk": "low", "risk_why": "a POST", "idempotent": false, "timeout_s": 10}]
}))]
pub struct WorkflowView {
    pub id: String,
    pub description: Option<String>,
    /// Declared inputs: `type` (string, integer, number, boolean) and `required`.
    #[schema(value_type = Object)]
    pub inputs: Value,
    /// A run that has not ended by then ends `timed_out`.
    pub deadline_s: u64,
    /// How many runs may be in progress at once (`limit`, per value of `key` when given) and what a start
    /// does when they are (`on_conflict`: queue, reject, cancel_running).
    #[schema(value_type = Object)]
    pub concurrency: Value,
    /// The run's risk: its riskiest step's.
    pub risk: RiskLevel,
    /// Whether a run waits for a person's approval before its first step at the approval threshold.
    pub approval_required: bool,
    pub steps: Vec<StepSummaryView>,
}

/// A step of a workflow as configured.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"id": "restart", "kind": "command", "risk": "high", "risk_why": "runs sudo", "idempotent": false, "timeout_s": 120}))]
pub struct StepSummaryView {
    pub id: String,
    /// http, wait_healthy, command, sleep, heal, mcp_tool, notify or approval.
    pub kind: String,
    pub risk: RiskLevel,
    /// Why the step has that risk.
    pub risk_why: String,
    /// Whether it may run again after hale stopped during it.
    pub idempotent: bool,
    pub timeout_s: u64,
}

/// A run of a workflow.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": 17, "workflow": "restart-api", "state": "waiting", "wait_reason": "approval",
    "wake_at": "2026-12-05T18:00:00Z", "step_index": 1, "step": "restart", "inputs": {"target": "api"},
    "reason": "deploy 4.2", "concurrency_key": "api", "idempotency_key": "deploy-4.2",
    "deadline": "2026-12-05T11:00:00Z", "resumes": 0, "retry_of": null, "error": null,
    "created_at": "2026-12-05T10:00:00Z", "started_at": "2026-12-05T10:00:00.020Z", "finished_at": null
}))]
pub struct RunView {
    pub id: i64,
    pub workflow: String,
    pub state: RunState,
    /// Why a waiting run waits: backoff, sleep or approval.
    pub wait_reason: Option<WaitReason>,
    /// When a waiting run goes on (for an approval: when it expires).
    pub wake_at: Option<DateTime<Utc>>,
    /// The step the run is at (or starts from, while queued).
    pub step_index: u32,
    /// That step's id.
    pub step: Option<String>,
    #[schema(value_type = Object)]
    pub inputs: Value,
    pub reason: String,
    pub concurrency_key: Option<String>,
    pub idempotency_key: Option<String>,
    pub deadline: DateTime<Utc>,
    /// How many times the run went on after a restart.
    pub resumes: u32,
    /// The run this one retries.
    pub retry_of: Option<i64>,
    /// Why it failed, was cancelled, timed out or was interrupted.
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl RunView {
    pub fn of(run: &StoredRun) -> Self {
        let step = run
            .definition
            .get("steps")
            .and_then(|s| s.get(run.step_index as usize))
            .and_then(|s| s.get("id"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        Self {
            id: run.id,
            workflow: run.workflow.clone(),
            state: run.state,
            wait_reason: run.wait_reason,
            wake_at: run.wake_at,
            step_index: run.step_index,
            step,
            inputs: run.inputs.clone(),
            reason: run.reason.clone(),
            concurrency_key: run.concurrency_key.clone(),
            idempotency_key: run.idempotency_key.clone(),
            deadline: run.deadline,
            resumes: run.resumes,
            retry_of: run.retry_of,
            error: run.error.clone(),
            created_at: run.created,
            started_at: run.started,
            finished_at: run.finished,
        }
    }
}

/// One attempt of a step.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "attempt": 1, "state": "succeeded", "started_at": "2026-12-05T10:00:00.020Z",
    "finished_at": "2026-12-05T10:00:00.031Z", "output": {"status": 200, "body": {"drained": true}, "latency_ms": 11},
    "output_truncated": false, "error": null
}))]
pub struct AttemptView {
    /// 1 for the step's first attempt in this run.
    pub attempt: u32,
    pub state: AttemptState,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// What the step gave (JSON); its text cut at 64 KiB when `output_truncated`, then given as a string.
    #[schema(value_type = Object, nullable)]
    pub output: Option<Value>,
    pub output_truncated: bool,
    pub error: Option<String>,
}

impl AttemptView {
    fn of(a: &StoredAttempt) -> Self {
        let output = a.output.as_deref().map(|text| {
            serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
        });
        Self {
            attempt: a.attempt,
            state: a.state,
            started_at: a.started,
            finished_at: a.finished,
            output,
            output_truncated: a.output_truncated,
            error: a.error.clone(),
        }
    }
}

/// A step of a run: what it is and its attempts.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "index": 0, "id": "drain", "kind": "http", "risk": "medium", "idempotent": false,
    "attempts": [{"attempt": 1, "state": "failed", "started_at": "2026-12-05T10:00:00.020Z",
                  "finished_at": "2026-12-05T10:00:00.031Z", "output": null, "output_truncated": false,
                  "error": "503 from /admin/drain"}]
}))]
pub struct RunStepView {
    pub index: u32,
    pub id: String,
    pub kind: String,
    pub risk: Option<RiskLevel>,
    pub idempotent: Option<bool>,
    pub attempts: Vec<AttemptView>,
}

/// An approval a run asked for, or was given automatically.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "step_index": 1, "step": "restart", "risk": "high", "requested_at": "2026-12-05T10:00:01Z",
    "expires_at": "2026-12-05T18:00:01Z", "decided_at": "2026-12-05T10:04:12Z", "decision": "approved",
    "decided_by_role": "operate", "reason": "ticket 7"
}))]
pub struct ApprovalView {
    pub step_index: u32,
    pub step: String,
    pub risk: RiskLevel,
    pub requested_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub decided_at: Option<DateTime<Utc>>,
    /// approved, rejected, expired or automatic; null while open.
    pub decision: Option<ApprovalDecision>,
    /// The role of who decided; null for hale's own decisions.
    pub decided_by_role: Option<String>,
    pub reason: Option<String>,
}

impl ApprovalView {
    pub fn of(a: &StoredApproval) -> Self {
        Self {
            step_index: a.step_index,
            step: a.step_id.clone(),
            risk: a.risk,
            requested_at: a.requested,
            expires_at: a.expires,
            decided_at: a.decided,
            decision: a.decision,
            decided_by_role: a.decided_by_role.map(str::to_owned),
            reason: a.reason.clone(),
        }
    }
}

/// One run in full: its steps with their attempts, outputs and errors, and its approvals.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "run": {"id": 17, "workflow": "restart-api", "state": "succeeded", "wait_reason": null, "wake_at": null,
            "step_index": 0, "step": "drain", "inputs": {"target": "api"}, "reason": "deploy 4.2",
            "concurrency_key": "api", "idempotency_key": null, "deadline": "2026-12-05T11:00:00Z", "resumes": 0,
            "retry_of": null, "error": null, "created_at": "2026-12-05T10:00:00Z",
            "started_at": "2026-12-05T10:00:00.010Z", "finished_at": "2026-12-05T10:00:00.040Z"},
    "steps": [{"index": 0, "id": "drain", "kind": "http", "risk": "medium", "idempotent": false,
               "attempts": [{"attempt": 1, "state": "succeeded", "started_at": "2026-12-05T10:00:00.020Z",
                             "finished_at": "2026-12-05T10:00:00.031Z", "output": {"status": 200},
                             "output_truncated": false, "error": null}]}],
    "approvals": [{"step_index": 0, "step": "drain", "risk": "medium", "requested_at": "2026-12-05T10:00:00.010Z",
                   "expires_at": "2026-12-05T10:00:00.010Z", "decided_at": "2026-12-05T10:00:00.010Z",
                   "decision": "automatic", "decided_by_role": null, "reason": "below the approval threshold"}]
}))]
pub struct RunDetail {
    pub run: RunView,
    pub steps: Vec<RunStepView>,
    pub approvals: Vec<ApprovalView>,
}

/// A workflow's definition, its latest run and how many runs it has in each state.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "workflow": {"id": "poke", "description": null, "inputs": {}, "deadline_s": 3600,
                 "concurrency": {"limit": 1, "on_conflict": "queue"}, "risk": "low", "approval_required": false,
                 "steps": [{"id": "get", "kind": "http", "risk": "low", "risk_why": "a GET", "idempotent": true, "timeout_s": 60}]},
    "definition": {"id": "poke", "steps": [{"id": "get", "kind": "http", "target": "api"}]},
    "latest_run": null,
    "counts": {"queued": 0, "running": 0, "waiting": 0, "succeeded": 3, "failed": 1, "timed_out": 0, "cancelled": 0, "interrupted": 0}
}))]
pub struct WorkflowStatus {
    pub workflow: WorkflowView,
    /// The definition as configured.
    #[schema(value_type = Object)]
    pub definition: Value,
    pub latest_run: Option<RunView>,
    /// Runs kept, by state.
    pub counts: BTreeMap<String, u64>,
}

/// A page of runs, newest first.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"runs": [], "next_cursor": null}))]
pub struct RunsPage {
    pub runs: Vec<RunView>,
    /// Pass as `cursor` for the next (older) page; null on the last page.
    pub next_cursor: Option<i64>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RunsParams {
    /// Only runs in these states, comma-separated (queued, running, waiting, succeeded, failed, timed_out,
    /// cancelled, interrupted).
    pub status: Option<String>,
    /// Runs older than this id: the `next_cursor` of the page before.
    #[param(value_type = Option<i64>, minimum = 1)]
    pub cursor: Option<String>,
    /// At most this many runs (1 to 500, default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 500)]
    pub limit: Option<String>,
}

/// The Boss API and its queue at a glance.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "state": "accepting", "running": 1, "max_running": 4, "waiting": 1, "queued": 0,
    "oldest_queued_age_s": null, "approvals_waiting": 1,
    "workflows": [{"id": "restart-api", "in_progress": 2, "last_run": 16, "last_result": "succeeded",
                   "last_finished_at": "2026-12-05T09:10:00Z", "failed_24h": 0}],
    "interrupted_at_start": [], "open_breakers": [], "version": "0.1.0"
}))]
pub struct BossStatus {
    /// `accepting` new runs, or `draining` (shutting down: starts get 503).
    pub state: String,
    /// Runs running now, against `max_running`.
    pub running: u64,
    pub max_running: u32,
    /// Runs waiting (a backoff, a sleep, an approval).
    pub waiting: u64,
    /// Runs queued for a free slot, and how long the oldest has waited.
    pub queued: u64,
    pub oldest_queued_age_s: Option<f64>,
    pub approvals_waiting: u64,
    pub workflows: Vec<WorkflowLine>,
    /// Runs the last start of hale ended `interrupted`.
    pub interrupted_at_start: Vec<i64>,
    /// Targets whose circuit breaker is open now.
    pub open_breakers: Vec<String>,
    pub version: String,
}

/// One workflow's line in `/status`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"id": "restart-api", "in_progress": 1, "last_run": 16, "last_result": "succeeded",
                          "last_finished_at": "2026-12-05T09:10:00Z", "failed_24h": 0}))]
pub struct WorkflowLine {
    pub id: String,
    pub in_progress: u64,
    pub last_run: Option<i64>,
    pub last_result: Option<RunState>,
    pub last_finished_at: Option<DateTime<Utc>>,
    /// Runs that ended failed, timed_out or interrupted in the last 24 hours.
    pub failed_24h: u64,
}

pub fn workflow_view(workflow: &Workflow, engine: &Engine) -> WorkflowView {
    let risk = engine.definitions().risk();
    let level = workflow.risk().map_or(RiskLevel::Low, |r| r.level);
    WorkflowView {
        id: workflow.id.clone(),
        description: workflow.description.clone(),
        inputs: serde_json::to_value(&workflow.inputs).unwrap_or(Value::Null),
        deadline_s: workflow.deadline.as_secs(),
        concurrency: serde_json::to_value(&workflow.concurrency).unwrap_or(Value::Null),
        risk: level,
        approval_required: risk.needs_approval(level),
        steps: workflow
            .steps
            .iter()
            .map(|s| StepSummaryView {
                id: s.id.clone(),
                kind: s.kind().as_str().to_owned(),
                risk: s.risk.level,
                risk_why: s.risk.why.clone(),
                idempotent: s.idempotent,
                timeout_s: s.timeout.as_secs(),
            })
            .collect(),
    }
}

/// Every configured workflow.
pub fn workflows(engine: &Engine) -> Vec<WorkflowView> {
    engine
        .definitions()
        .iter()
        .map(|w| workflow_view(w, engine))
        .collect()
}

fn store_error(e: impl std::fmt::Display) -> AnswerError {
    AnswerError::Unavailable(format!("the workflow store failed: {e}"))
}

fn workflow_of<'e>(engine: &'e Engine, id: &str) -> Result<&'e Workflow, AnswerError> {
    engine.definitions().get(id).ok_or_else(|| {
        AnswerError::NotFound(format!(
            "no workflow named {id:?}; GET /workflows lists them"
        ))
    })
}

/// A workflow's definition, latest run and counts.
pub async fn workflow_status(engine: &Engine, id: &str) -> Result<WorkflowStatus, AnswerError> {
    let workflow = workflow_of(engine, id)?;
    let store = engine.store();
    let latest = store.latest_run(id).await.map_err(store_error)?;
    let counts = store
        .state_counts(id)
        .await
        .map_err(store_error)?
        .into_iter()
        .map(|(state, n)| (state.as_str().to_owned(), n))
        .collect();
    Ok(WorkflowStatus {
        workflow: workflow_view(workflow, engine),
        definition: workflow.source.clone(),
        latest_run: latest.as_ref().map(RunView::of),
        counts,
    })
}

/// A workflow's runs, newest first, a page at a time.
pub async fn workflow_runs(
    engine: &Engine,
    id: &str,
    params: &RunsParams,
) -> Result<RunsPage, AnswerError> {
    workflow_of(engine, id)?;
    let states = match params.status.as_deref().map(str::trim) {
        None | Some("") => Vec::new(),
        Some(list) => list
            .split(',')
            .map(|s| {
                RunState::parse(s.trim()).ok_or_else(|| {
                    AnswerError::BadInput(format!(
                        "status: {s:?} is not a run state (queued, running, waiting, succeeded, failed, timed_out, cancelled, interrupted)"
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?,
    };
    let before = match params.cursor.as_deref() {
        None => None,
        Some(text) => Some(
            text.trim()
                .parse::<RunId>()
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| {
                    AnswerError::BadInput(format!("cursor: {text:?} is not a run id"))
                })?,
        ),
    };
    let limit = crate::answers::params::limit(params.limit.as_deref(), DEFAULT_LIMIT, MAX_LIMIT)
        .map_err(AnswerError::BadInput)?;
    let runs = engine
        .store()
        .list_runs(&RunFilter {
            workflow: Some(id.to_owned()),
            states,
            before,
            limit: limit + 1,
        })
        .await
        .map_err(store_error)?;
    let more = runs.len() > limit as usize;
    let runs: Vec<RunView> = runs.iter().take(limit as usize).map(RunView::of).collect();
    let next_cursor = if more {
        runs.last().map(|r| r.id)
    } else {
        None
    };
    Ok(RunsPage { runs, next_cursor })
}

/// One run in full.
pub async fn run_detail(engine: &Engine, id: RunId) -> Result<RunDetail, AnswerError> {
    let store = engine.store();
    let run = store
        .run(id)
        .await
        .map_err(store_error)?
        .ok_or_else(|| AnswerError::NotFound(format!("no workflow run {id}")))?;
    let attempts = store.attempts(id).await.map_err(store_error)?;
    let approvals = store.approvals(id).await.map_err(store_error)?;
    let definition = engine.read_copy(&run).ok();
    let raw_steps: Vec<Value> = run
        .definition
        .get("steps")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let steps = raw_steps
        .iter()
        .enumerate()
        .map(|(i, raw)| {
            let index = u32::try_from(i).unwrap_or(u32::MAX);
            let step = definition.as_ref().and_then(|d| d.steps.get(i));
            RunStepView {
                index,
                id: raw
                    .get("id")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned(),
                kind: raw
                    .get("kind")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned(),
                risk: step.map(|s| s.risk.level),
                idempotent: step.map(|s| s.idempotent),
                attempts: attempts
                    .iter()
                    .filter(|a| a.step_index == index)
                    .map(AttemptView::of)
                    .collect(),
            }
        })
        .collect();
    Ok(RunDetail {
        run: RunView::of(&run),
        steps,
        approvals: approvals.iter().map(ApprovalView::of).collect(),
    })
}

/// The Boss API's `/status`.
pub async fn boss_status(
    engine: &Engine,
    open_breakers: Vec<String>,
) -> Result<BossStatus, AnswerError> {
    let now = engine.now();
    let summary = engine.store().summary(now).await.map_err(store_error)?;
    let workflows = engine
        .definitions()
        .iter()
        .map(|w| {
            let line = summary.workflows.iter().find(|s| s.workflow == w.id);
            WorkflowLine {
                id: w.id.clone(),
                in_progress: line.map_or(0, |l| l.in_progress),
                last_run: line.and_then(|l| l.last_finished.map(|(id, _, _)| id)),
                last_result: line.and_then(|l| l.last_finished.map(|(_, state, _)| state)),
                last_finished_at: line.and_then(|l| l.last_finished.map(|(_, _, at)| at)),
                failed_24h: line.map_or(0, |l| l.failed_24h),
            }
        })
        .collect();
    Ok(BossStatus {
        state: if engine.accepting() {
            "accepting"
        } else {
            "draining"
        }
        .to_owned(),
        running: summary.running,
        max_running: engine.definitions().max_running(),
        waiting: summary.waiting,
        queued: summary.queued,
        oldest_queued_age_s: summary
            .oldest_queued
            .map(|at| (now - at).num_milliseconds().max(0) as f64 / 1000.0),
        approvals_waiting: summary.approvals_waiting,
        workflows,
        interrupted_at_start: engine.interrupted_at_start(),
        open_breakers,
        version: env!("CARGO_PKG_VERSION").to_owned(),
    })
}
