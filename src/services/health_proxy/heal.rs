//! Auto-heal's routes: the stored attempts, a manual heal under the same protections, the children.

use actix_web::{get, post, web, HttpResponse};

use crate::answers::heal::{self as answer, HealEventsParams, HealView};
use crate::http::{ApiError, ErrorBody};
use crate::records::HealOutcome;
use crate::services::health_proxy::HealthProxyState;
use crate::services::Core;
use crate::supervise::ChildView;

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
    let views = answer::heal_events(&core.store, &query).await?;
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
    params(("target" = String, Path, description = "A configured target's name", min_length = 1, max_length = 68, pattern = "^(mcp:)?[A-Za-z0-9._-]+$")),
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
    let view = answer::heal(&state.healer, &target).await?;
    let outcome = view.outcome;
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
    HttpResponse::Ok().json(answer::children(&state.supervisor))
}
