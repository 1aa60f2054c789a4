//! Auto-heal's routes: the stored attempts, and a manual heal under the same protections.

use std::time::Duration;

use actix_web::{get, post, web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::heal::HealError;
use crate::http::{ApiError, ErrorBody};
use crate::records::{HealAction, HealOutcome, HealRecord, HealTrigger};
use crate::services::health_proxy::HealthProxyState;
use crate::services::params;
use crate::services::Core;
use crate::store::heal::StoredHeal;
use crate::supervise::ChildView;

const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 1_000;

/// One heal attempt.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": 42, "target": "api", "trigger": "automatic", "action": "restart_child",
    "started_at": "2026-11-26T12:00:03Z", "finished_at": "2026-11-26T12:00:05Z", "outcome": "healed",
    "verify_latency_ms": 1830.5, "error": null
}))]
pub struct HealView {
    /// The stored row's id (null only when the attempt could not be stored, which hale logs).
    pub id: Option<i64>,
    pub target: String,
    pub trigger: HealTrigger,
    pub action: HealAction,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub outcome: HealOutcome,
    /// From the end of the action until the target answered up, for a healed attempt.
    pub verify_latency_ms: Option<f64>,
    /// Why it failed or was skipped.
    pub error: Option<String>,
}

impl HealView {
    fn new(id: Option<i64>, record: HealRecord) -> Self {
        Self {
            id,
            target: record.target.to_string(),
            trigger: record.trigger,
            action: record.action,
            started_at: record.started_at,
            finished_at: record.finished_at,
            outcome: record.outcome,
            verify_latency_ms: record.verify_latency.map(millis),
            error: record.error,
        }
    }
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

impl From<StoredHeal> for HealView {
    fn from(stored: StoredHeal) -> Self {
        Self::new(Some(stored.id), stored.record)
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HealEventsParams {
    /// Only this target.
    #[param(value_type = Option<String>, min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9._-]+$")]
    pub target: Option<String>,
    /// Attempts started at or after this time (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    pub since: Option<String>,
    /// At most this many, 1 to 1000 (default 100).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000, default = 100)]
    pub limit: Option<String>,
}

/// Heal attempts, newest first.
///
/// Every attempt is one row, including the ones a protection skipped (`skipped_cooldown`,
/// `skipped_budget`, `skipped_mass_failure`, ...).
#[utoipa::path(
    tag = "heal",
    params(HealEventsParams),
    responses(
        (status = 200, description = "Heal attempts, newest first", body = Vec<HealView>),
        (status = 400, description = "A parameter is invalid; the message names it", body = ErrorBody),
    )
)]
#[get("/heal/events")]
pub async fn heal_events(
    core: web::Data<Core>,
    query: web::Query<HealEventsParams>,
) -> Result<HttpResponse, ApiError> {
    let target = params::target("target", query.target.as_deref()).map_err(ApiError::BadRequest)?;
    let since = params::time("since", query.since.as_deref()).map_err(ApiError::BadRequest)?;
    let limit = params::limit(query.limit.as_deref(), DEFAULT_LIMIT, MAX_LIMIT)
        .map_err(ApiError::BadRequest)?;
    let rows = core
        .store
        .heal_events(target.as_deref(), since, limit)
        .await
        .map_err(ApiError::internal)?;
    let views: Vec<HealView> = rows.into_iter().map(HealView::from).collect();
    Ok(HttpResponse::Ok().json(views))
}

/// Heal a target now.
///
/// Restarts the target's supervised child or runs its heal command, then polls it until it answers up or
/// `heal.verify_timeout_s` passes. The same protections as automatic heals apply (cooldown, hourly budget,
/// mass failure, one heal at a time, workflow holds, configuration-error exit codes); a refused attempt is
/// stored too. Answers 200 when the target was healed, 502 when the action ran but the target did not come
/// back, 409 when a protection refused it; the body is the attempt in every case.
#[utoipa::path(
    tag = "heal",
    params(("target" = String, Path, description = "A configured target's name", min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9._-]+$")),
    responses(
        (status = 200, description = "Healed", body = HealView, example = json!({
            "id": 43, "target": "api", "trigger": "manual", "action": "restart_child",
            "started_at": "2026-11-26T12:00:03Z", "finished_at": "2026-11-26T12:00:05Z", "outcome": "healed",
            "verify_latency_ms": 1830.5, "error": null
        })),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "The token's role is weaker than operate", body = ErrorBody),
        (status = 404, description = "No such target", body = ErrorBody),
        (status = 409, description = "A protection refused the heal; `outcome` says which", body = HealView, example = json!({
            "id": 43, "target": "api", "trigger": "manual", "action": "restart_child",
            "started_at": "2026-11-26T12:00:03Z", "finished_at": "2026-11-26T12:00:03Z",
            "outcome": "skipped_cooldown", "verify_latency_ms": null,
            "error": "healed at 2026-11-26T11:58:41+00:00, less than the cooldown of 300 s ago"
        })),
        (status = 502, description = "The action ran, but the target did not answer up in time", body = HealView, example = json!({
            "id": 43, "target": "api", "trigger": "manual", "action": "restart_child",
            "started_at": "2026-11-26T12:00:03Z", "finished_at": "2026-11-26T12:00:33Z", "outcome": "failed",
            "verify_latency_ms": null,
            "error": "still not up 30 s after the action: status 503, expected 200"
        })),
    ),
    security(("bearer" = []))
)]
#[post("/heal/{target}")]
pub async fn heal_target(
    state: web::Data<HealthProxyState>,
    target: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (id, record) = state
        .healer
        .heal_stored(&target, HealTrigger::Manual, false)
        .await
        .map_err(|e| match e {
            HealError::UnknownTarget(_) => ApiError::NotFound(e.to_string()),
            // Only automatic heals hold off for maintenance; a manual one never gets here.
            HealError::InMaintenance { .. } => ApiError::internal(e),
        })?;
    let outcome = record.outcome;
    let view = HealView::new(id, record);
    Ok(match outcome {
        HealOutcome::Healed => HttpResponse::Ok().json(view),
        HealOutcome::Failed => HttpResponse::BadGateway().json(view),
        _ => HttpResponse::Conflict().json(view),
    })
}

/// The supervised children: the targets with a `run` block.
///
/// Each with its pid while it runs, restarts in this run of hale, how its last child ended and, while it
/// waits out its backoff, when it starts again.
#[utoipa::path(
    tag = "heal",
    responses((status = 200, description = "Every supervised child, by target name", body = Vec<ChildView>))
)]
#[get("/children")]
pub async fn children(state: web::Data<HealthProxyState>) -> HttpResponse {
    HttpResponse::Ok().json(state.supervisor.children())
}
