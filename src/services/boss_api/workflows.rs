//! The Boss API's workflow routes: start a run (idempotently), read workflows and runs, cancel, retry,
//! approve and reject. Every change needs the operate role (the guard's table, from `answers::catalog`).

use actix_web::http::header;
use actix_web::{get, post, web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::answers::workflows::{
    self as answer, ApprovalView, BossStatus, RunDetail, RunView, RunsPage, RunsParams,
    WorkflowStatus, WorkflowView,
};
use crate::answers::AnswerError;
use crate::breaker::BreakerState;
use crate::http::{ApiError, Caller, ErrorBody};
use crate::services::BossApiState;
use crate::store::workflows::RunId;
use crate::workflows::engine::{StartRequest, Started};

/// The longest `Idempotency-Key` taken.
const MAX_KEY_LEN: usize = 200;
/// The longest `reason` taken.
const MAX_REASON_LEN: usize = 1_000;

/// A start of a run.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"inputs": {"target": "api"}, "reason": "deploy 4.2"}))]
pub struct StartBody {
    /// The workflow's declared inputs.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub inputs: Map<String, Value>,
    /// Why the run is started: kept with it and shown with it.
    #[serde(default)]
    pub reason: String,
}

/// A reason for an action on a run.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"reason": "ticket 7"}))]
pub struct ReasonBody {
    pub reason: Option<String>,
}

/// A retry of a run.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"from_step": "restart", "reason": "the restart failed on a full disk, now freed"}))]
pub struct RetryBody {
    /// The step the new run starts from; the step where the run stopped when absent.
    pub from_step: Option<String>,
    pub reason: Option<String>,
}

fn idempotency_key(req: &HttpRequest) -> Result<Option<String>, ApiError> {
    let Some(value) = req.headers().get("idempotency-key") else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|k| {
            !k.is_empty() && k.len() <= MAX_KEY_LEN && k.chars().all(|c| c.is_ascii_graphic())
        })
        .ok_or_else(|| {
            ApiError::BadRequest(format!(
                "Idempotency-Key: expected 1 to {MAX_KEY_LEN} visible ASCII characters"
            ))
        })?;
    Ok(Some(key.to_owned()))
}

fn reason(text: Option<&str>) -> Result<Option<&str>, ApiError> {
    match text {
        Some(r) if r.chars().count() > MAX_REASON_LEN => Err(ApiError::Unprocessable(format!(
            "reason: longer than {MAX_REASON_LEN} characters"
        ))),
        other => Ok(other),
    }
}

fn run_id(raw: &str) -> Result<RunId, ApiError> {
    raw.parse::<RunId>()
        .ok()
        .filter(|id| *id >= 1)
        .ok_or_else(|| ApiError::NotFound(format!("no workflow run {raw:?}")))
}

/// Start a run of a workflow.
///
/// The run is queued and starts as soon as the global cap (`workflows.max_running`) and its concurrency
/// group allow; the answer does not wait for it. With an `Idempotency-Key`, a repeat of the same start (same
/// key, same body) answers 200 with the run it started rather than starting another; the same key with
/// another body is refused (422). A workflow whose concurrency rule is `reject` answers 409 while its group
/// is full; `cancel_running` cancels the group's runs first. Needs the operate role.
#[utoipa::path(
    tag = "workflows",
    params(
        ("id" = String, Path, description = "The workflow's id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes a repeated start find its run rather than start another"),
    ),
    request_body = StartBody,
    responses(
        (status = 202, description = "A new run, queued; `Location` is its URL", body = RunView),
        (status = 200, description = "The run this Idempotency-Key and body started before", body = RunView),
        (status = 400, description = "The body is not JSON of this shape, or the Idempotency-Key is malformed", body = ErrorBody),
        (status = 404, description = "No workflow of that id", body = ErrorBody),
        (status = 409, description = "The workflow's group is full and its concurrency rule rejects another run", body = ErrorBody),
        (status = 422, description = "An input is missing or of the wrong type (the message names it), or the Idempotency-Key started a run with another body", body = ErrorBody),
        (status = 503, description = "hale is shutting down and takes no new runs", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
#[post("/workflow/{id}/start")]
pub async fn start_workflow(
    req: HttpRequest,
    state: web::Data<BossApiState>,
    path: web::Path<String>,
    body: web::Json<StartBody>,
) -> Result<HttpResponse, ApiError> {
    let key = idempotency_key(&req)?;
    let body = body.into_inner();
    reason(Some(&body.reason))?;
    let started = state
        .engine
        .start(StartRequest {
            workflow: path.into_inner(),
            inputs: body.inputs,
            reason: body.reason,
            idempotency_key: key,
        })
        .await
        .map_err(AnswerError::from)?;
    Ok(match started {
        Started::New(run) => HttpResponse::Accepted()
            .insert_header((header::LOCATION, format!("/runs/{}", run.id)))
            .json(RunView::of(&run)),
        Started::Existing(run) => HttpResponse::Ok()
            .insert_header((header::LOCATION, format!("/runs/{}", run.id)))
            .json(RunView::of(&run)),
    })
}

/// A workflow: its definition, its latest run and how many runs it has in each state.
#[utoipa::path(
    tag = "workflows",
    params(("id" = String, Path, description = "The workflow's id")),
    responses(
        (status = 200, description = "The workflow", body = WorkflowStatus),
        (status = 404, description = "No workflow of that id", body = ErrorBody),
    )
)]
#[get("/workflow/{id}/status")]
pub async fn workflow_status(
    state: web::Data<BossApiState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let status = answer::workflow_status(&state.engine, &path).await?;
    Ok(HttpResponse::Ok().json(status))
}

/// A workflow's runs, newest first, a page at a time.
#[utoipa::path(
    tag = "workflows",
    params(("id" = String, Path, description = "The workflow's id"), RunsParams),
    responses(
        (status = 200, description = "A page of runs; `next_cursor` asks for the next", body = RunsPage),
        (status = 400, description = "A parameter is invalid; the message names it", body = ErrorBody),
        (status = 404, description = "No workflow of that id", body = ErrorBody),
    )
)]
#[get("/workflow/{id}/runs")]
pub async fn workflow_runs(
    state: web::Data<BossApiState>,
    path: web::Path<String>,
    params: web::Query<RunsParams>,
) -> Result<HttpResponse, ApiError> {
    let page = answer::workflow_runs(&state.engine, &path, &params).await?;
    Ok(HttpResponse::Ok().json(page))
}

/// Every configured workflow: inputs, deadline, concurrency, steps with their risk.
#[utoipa::path(
    tag = "workflows",
    responses((status = 200, description = "The workflows", body = Vec<WorkflowView>))
)]
#[get("/workflows")]
pub async fn workflows(state: web::Data<BossApiState>) -> HttpResponse {
    HttpResponse::Ok().json(answer::workflows(&state.engine))
}

/// One run: its steps with every attempt, output and error, and its approvals.
#[utoipa::path(
    tag = "workflows",
    params(("run_id" = i64, Path, description = "The run's id")),
    responses(
        (status = 200, description = "The run", body = RunDetail),
        (status = 404, description = "No run of that id", body = ErrorBody),
    )
)]
#[get("/runs/{run_id}")]
pub async fn run_detail(
    state: web::Data<BossApiState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let detail = answer::run_detail(&state.engine, run_id(&path)?).await?;
    Ok(HttpResponse::Ok().json(detail))
}

/// Cancel a run.
///
/// A running step is stopped (a command gets SIGTERM, then SIGKILL after its grace); a queued or waiting
/// run ends at once. Cancelling a cancelled run again answers 200 with it. Needs the operate role.
#[utoipa::path(
    tag = "workflows",
    params(("run_id" = i64, Path, description = "The run's id")),
    request_body(content = Option<ReasonBody>, description = "Why, kept with the run", example = json!({"reason": "wrong host"})),
    responses(
        (status = 200, description = "The run, cancelled", body = RunView),
        (status = 404, description = "No run of that id", body = ErrorBody),
        (status = 409, description = "The run already ended otherwise", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
#[post("/runs/{run_id}/cancel")]
pub async fn cancel_run(
    req: HttpRequest,
    state: web::Data<BossApiState>,
    path: web::Path<String>,
    body: Option<web::Json<ReasonBody>>,
) -> Result<HttpResponse, ApiError> {
    let body = body.map(web::Json::into_inner).unwrap_or_default();
    let why = reason(body.reason.as_deref())?;
    let role = Caller::role_of(&req).map(|r| r.as_str());
    let run = state
        .engine
        .cancel(run_id(&path)?, role, why)
        .await
        .map_err(AnswerError::from)?;
    Ok(HttpResponse::Ok().json(RunView::of(&run)))
}

/// Retry a run that ended: a new run, linked to it (`retry_of`), from `from_step` or from where it stopped.
///
/// The new run keeps the ended run's inputs and copy of the definition; the steps before `from_step` keep
/// the outputs they gave. Needs the operate role.
#[utoipa::path(
    tag = "workflows",
    params(("run_id" = i64, Path, description = "The run to retry")),
    request_body(content = Option<RetryBody>, description = "Where to start and why", example = json!({"from_step": "restart", "reason": "the disk is freed"})),
    responses(
        (status = 202, description = "The new run, queued; `Location` is its URL", body = RunView),
        (status = 404, description = "No run of that id", body = ErrorBody),
        (status = 409, description = "The run has not ended", body = ErrorBody),
        (status = 422, description = "No step of that id", body = ErrorBody),
        (status = 503, description = "hale is shutting down and takes no new runs", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
#[post("/runs/{run_id}/retry")]
pub async fn retry_run(
    state: web::Data<BossApiState>,
    path: web::Path<String>,
    body: Option<web::Json<RetryBody>>,
) -> Result<HttpResponse, ApiError> {
    let body = body.map(web::Json::into_inner).unwrap_or_default();
    let why = reason(body.reason.as_deref())?;
    let run = state
        .engine
        .retry(run_id(&path)?, body.from_step.as_deref(), why)
        .await
        .map_err(AnswerError::from)?;
    Ok(HttpResponse::Accepted()
        .insert_header((header::LOCATION, format!("/runs/{}", run.id)))
        .json(RunView::of(&run)))
}

async fn decide(
    req: &HttpRequest,
    state: &BossApiState,
    path: &str,
    body: Option<web::Json<ReasonBody>>,
    approve: bool,
) -> Result<HttpResponse, ApiError> {
    let body = body.map(web::Json::into_inner).unwrap_or_default();
    let why = reason(body.reason.as_deref())?;
    let role = Caller::role_of(req).map(|r| r.as_str());
    let approval = state
        .engine
        .decide(run_id(path)?, approve, role, why)
        .await
        .map_err(AnswerError::from)?;
    Ok(HttpResponse::Ok().json(ApprovalView::of(&approval)))
}

/// Approve the step a run waits on; the run goes on at once. The approver's role and reason are kept.
/// Needs the operate role.
#[utoipa::path(
    tag = "workflows",
    params(("run_id" = i64, Path, description = "The run's id")),
    request_body(content = Option<ReasonBody>, description = "Why, kept with the approval", example = json!({"reason": "ticket 7"})),
    responses(
        (status = 200, description = "The approval, decided", body = ApprovalView),
        (status = 404, description = "No run of that id", body = ErrorBody),
        (status = 409, description = "The run is not waiting for an approval", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
#[post("/runs/{run_id}/approve")]
pub async fn approve_run(
    req: HttpRequest,
    state: web::Data<BossApiState>,
    path: web::Path<String>,
    body: Option<web::Json<ReasonBody>>,
) -> Result<HttpResponse, ApiError> {
    decide(&req, &state, &path, body, true).await
}

/// Reject the step a run waits on; the run ends `cancelled`. Needs the operate role.
#[utoipa::path(
    tag = "workflows",
    params(("run_id" = i64, Path, description = "The run's id")),
    request_body(content = Option<ReasonBody>, description = "Why, kept with the approval", example = json!({"reason": "ticket 7"})),
    responses(
        (status = 200, description = "The approval, rejected", body = ApprovalView),
        (status = 404, description = "No run of that id", body = ErrorBody),
        (status = 409, description = "The run is not waiting for an approval", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
#[post("/runs/{run_id}/reject")]
pub async fn reject_run(
    req: HttpRequest,
    state: web::Data<BossApiState>,
    path: web::Path<String>,
    body: Option<web::Json<ReasonBody>>,
) -> Result<HttpResponse, ApiError> {
    decide(&req, &state, &path, body, false).await
}

/// The Boss API at a glance: accepting or draining, runs against the cap, the queue and its oldest run,
/// each workflow's last result and failures in 24 h, runs interrupted at the last start, open breakers.
#[utoipa::path(
    tag = "workflows",
    responses((status = 200, description = "The queue and its workflows", body = BossStatus))
)]
#[get("/status")]
pub async fn boss_status(state: web::Data<BossApiState>) -> Result<HttpResponse, ApiError> {
    let open_breakers = state
        .monitor
        .as_ref()
        .map(|m| {
            m.targets()
                .iter()
                .filter(|t| t.breaker.state() == BreakerState::Open)
                .map(|t| t.name().to_owned())
                .collect()
        })
        .unwrap_or_default();
    let status = answer::boss_status(&state.engine, open_breakers).await?;
    Ok(HttpResponse::Ok().json(status))
}
