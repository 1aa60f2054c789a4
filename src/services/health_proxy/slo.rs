//! SLO routes: every target's objectives over the configured window, or one target's over any window, and
//! maintenance windows (planned downtime that does not count against them).

use actix_web::http::header;
use actix_web::{get, post, web, HttpRequest, HttpResponse};

use crate::answers::slo::{
    self as answer, Declarer, MaintenanceParams, NewMaintenance, SloListParams, SloParams,
};
use crate::http::{ApiError, Caller, ErrorBody, RequestId};
use crate::services::health_proxy::HealthProxyState;
use crate::services::Core;
use crate::slo::{MaintenanceWindow, TargetSlo};

/// Every target's SLOs over the configured window, a page at a time.
///
/// Availability (good / valid scheduled checks, maintenance excluded), p95 latency, restarts, the error
/// budget and its burn rates, as of the SLO refresher's last pass (each entry's `window.until`). See
/// docs/slo.md.
///
/// In config order, `limit` targets (default 100) after the first `offset`: a fleet of up to 100 targets
/// gets them all. `X-Total-Count` says how many targets there are, and while more follow, a `Link` header
/// (RFC 8288) names the next page with `rel="next"`. Each page is serialized and compressed once per SLO
/// pass: a request that accepts gzip gets the compressed copy, and a matching `If-None-Match` gets `304`.
#[utoipa::path(
    tag = "slo",
    params(SloListParams),
    responses(
        (status = 200, description = "One entry per target, in config order: `limit` after the first `offset`", body = Vec<TargetSlo>,
            headers(
                ("X-Total-Count" = u64, description = "How many targets there are, on every page"),
                ("Link" = String, description = "While more targets follow: `</slo?limit=L&offset=O>; rel=\"next\"` (RFC 8288)"),
                ("ETag" = String, description = "This page of this SLO pass; send it back in `If-None-Match`"),
            )),
        (status = 304, description = "The page the request's `If-None-Match` names is still current"),
        (status = 400, description = "`limit` or `offset` is invalid; the message names it", body = ErrorBody),
    )
)]
#[get("/slo")]
pub async fn slo_all(
    req: HttpRequest,
    core: web::Data<Core>,
    state: web::Data<HealthProxyState>,
    query: web::Query<SloListParams>,
) -> Result<HttpResponse, ApiError> {
    let (limit, offset) = answer::slo_paging(&query)?;
    let snapshot = answer::slo_all(&core.store, &core.config, &state.slo, core.clock.now()).await?;
    let total = snapshot.slos.len();
    let from = (offset as usize).min(total);
    let to = from.saturating_add(limit as usize).min(total);
    let kept = state
        .answers
        .slo_page(snapshot.generation, (limit, offset), || {
            serde_json::to_vec(&snapshot.slos[from..to])
        })
        .map_err(|e| ApiError::from(crate::answers::AnswerError::internal(e)))?;
    let mut response = HttpResponse::Ok();
    response.content_type("application/json").insert_header((
        header::HeaderName::from_static("x-total-count"),
        header::HeaderValue::from(total),
    ));
    if to < total {
        response.insert_header((
            header::LINK,
            format!("</slo?limit={limit}&offset={to}>; rel=\"next\""),
        ));
    }
    Ok(kept.send(&req, response))
}

/// One target's SLOs over a window.
#[utoipa::path(
    tag = "slo",
    params(
        ("service" = String, Path, description = "A configured target's name", min_length = 1, max_length = 68, pattern = "^(mcp:)?[A-Za-z0-9._-]+$"),
        SloParams,
    ),
    responses(
        (status = 200, description = "The target's SLOs", body = TargetSlo),
        (status = 400, description = "A parameter is invalid; the message names it", body = ErrorBody),
        (status = 404, description = "No such target", body = ErrorBody),
    )
)]
#[get("/slo/{service}")]
pub async fn slo_target(
    core: web::Data<Core>,
    state: web::Data<HealthProxyState>,
    service: web::Path<String>,
    query: web::Query<SloParams>,
) -> Result<HttpResponse, ApiError> {
    let result = answer::slo_target(
        &core.store,
        &core.config,
        &state.slo,
        core.clock.now(),
        &service,
        &query,
    )
    .await?;
    Ok(HttpResponse::Ok().json(result))
}

/// Declare a maintenance window.
///
/// Scheduled checks of the target (or of every target) inside the window are not valid for its SLOs, and
/// while the window lasts hale neither heals the target automatically nor raises its alerts (docs/slo.md).
/// A window must end in the future and start at most `slo.maintenance_grace_minutes` in the past, unless it
/// is declared `retroactive` (admin role). At most `slo.max_open_maintenance` stored windows may be open
/// (not ended) at once.
#[utoipa::path(
    tag = "slo",
    request_body = NewMaintenance,
    responses(
        (status = 201, description = "The stored window", body = MaintenanceWindow),
        (status = 400, description = "The body is not JSON of this shape", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "The token's role is weaker than operate, or the window is retroactive and the role is weaker than admin", body = ErrorBody),
        (status = 422, description = "A field is refused (the message names it), or too many windows are open", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
#[post("/maintenance")]
pub async fn create_maintenance(
    req: HttpRequest,
    core: web::Data<Core>,
    state: web::Data<HealthProxyState>,
    body: web::Json<NewMaintenance>,
) -> Result<HttpResponse, ApiError> {
    let role = Caller::role_of(&req);
    let request_id = RequestId::of(&req);
    let window = answer::declare_maintenance(
        &core.store,
        &core.config,
        &state.maintenance,
        &state.slo,
        core.clock.now(),
        &body,
        Declarer {
            role,
            request_id: &request_id,
        },
    )
    .await?;
    Ok(HttpResponse::Created().json(window))
}

/// Maintenance windows, from the config file (`source: config`) and the API (`source: api`).
///
/// By start time (then end, config before API, id), one page at a time: `limit` windows after the first
/// `offset`. A page shorter than `limit` is the last.
#[utoipa::path(
    tag = "slo",
    params(MaintenanceParams),
    responses(
        (status = 200, description = "Maintenance windows, by start time", body = Vec<MaintenanceWindow>),
        (status = 400, description = "A parameter is invalid; the message names it", body = ErrorBody),
    )
)]
#[get("/maintenance")]
pub async fn list_maintenance(
    core: web::Data<Core>,
    query: web::Query<MaintenanceParams>,
) -> Result<HttpResponse, ApiError> {
    let page = answer::maintenance(&core.store, &core.config, core.clock.now(), &query).await?;
    Ok(HttpResponse::Ok().json(page))
}
