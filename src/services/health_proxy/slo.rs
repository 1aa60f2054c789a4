//! SLO routes: every target's objectives over the configured window, or one target's over any window, and
//! maintenance windows (planned downtime that does not count against them).

use actix_web::{get, post, web, HttpMessage, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use crate::auth::Role;
use crate::config::check_maintenance;
use crate::http::{ApiError, Caller, ErrorBody, RequestId};
use crate::services::health_proxy::HealthProxyState;
use crate::services::params;
use crate::services::Core;
use crate::slo::maintenance::{check_posted, config_windows};
use crate::slo::{self, MaintenanceSource, MaintenanceWindow, SloError, SloWindow, TargetSlo};
use crate::store::maintenance::{InsertMaintenanceError, NewWindow};

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SloParams {
    /// `1h` to the rollup retention, in hours (`h`) or days (`d`); default `slo.window_days`.
    #[param(value_type = Option<String>, example = "7d")]
    pub window: Option<String>,
    /// `true`: from every raw check (exact p95, only as far back as raw checks are kept) instead of the
    /// hourly rollups.
    #[param(value_type = Option<bool>)]
    pub exact: Option<String>,
}

fn slo_error(e: SloError) -> ApiError {
    match e {
        SloError::UnknownTarget(_) => ApiError::NotFound(e.to_string()),
        SloError::Store(e) => ApiError::internal(e),
    }
}

/// Every target's SLOs over the configured window.
///
/// Availability (good / valid scheduled checks, maintenance excluded), p95 latency, restarts, the error
/// budget and its burn rates, from the hourly rollups. See docs/slo.md.
#[utoipa::path(
    tag = "slo",
    responses((status = 200, description = "One entry per target, in config order", body = Vec<TargetSlo>))
)]
#[get("/slo")]
pub async fn slo_all(core: web::Data<Core>) -> Result<HttpResponse, ApiError> {
    let window = SloWindow::last_days(core.config.slo.window_days, core.clock.now());
    let results = slo::evaluate(&core.store, &core.config, &window, None, false)
        .await
        .map_err(slo_error)?;
    Ok(HttpResponse::Ok().json(results))
}

/// One target's SLOs over a window.
#[utoipa::path(
    tag = "slo",
    params(
        ("service" = String, Path, description = "A configured target's name", min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9._-]+$"),
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
    service: web::Path<String>,
    query: web::Query<SloParams>,
) -> Result<HttpResponse, ApiError> {
    let now = core.clock.now();
    let window = match query.window.as_deref() {
        None => SloWindow::last_days(core.config.slo.window_days, now),
        Some(raw) => SloWindow::parse(raw, now, core.config.storage.rollup_retention_days)
            .map_err(|e| ApiError::BadRequest(format!("window: {e}")))?,
    };
    let exact = params::flag("exact", query.exact.as_deref()).map_err(ApiError::BadRequest)?;
    let mut results = slo::evaluate(&core.store, &core.config, &window, Some(&service), exact)
        .await
        .map_err(slo_error)?;
    match results.pop() {
        Some(result) => Ok(HttpResponse::Ok().json(result)),
        None => Err(ApiError::NotFound(format!(
            "no target named {:?}",
            *service
        ))),
    }
}

/// A maintenance window to declare.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "target": "db", "starts_at": "2026-11-28T02:00:00Z", "ends_at": "2026-11-28T03:00:00Z",
    "reason": "database minor version upgrade"
}))]
pub struct NewMaintenance {
    /// The target it covers; absent: every target.
    pub target: Option<String>,
    /// RFC 3339, in the years 2000 to 2100; at most `slo.maintenance_grace_minutes` (15) in the past unless
    /// `retroactive`.
    #[schema(value_type = String, format = DateTime)]
    pub starts_at: String,
    /// RFC 3339; in the future, after `starts_at`, at most 30 days later.
    #[schema(value_type = String, format = DateTime)]
    pub ends_at: String,
    /// Why, up to 500 characters, without NUL bytes.
    pub reason: String,
    /// `true`: the window may start further in the past than the grace, removing checks already made from
    /// the SLO. Needs the admin role; shown as retroactive in `/slo`, the report and the status page.
    #[serde(default)]
    pub retroactive: bool,
}

/// A field of a posted window, parsed: a 422 names it.
fn posted_time(field: &str, raw: &str) -> Result<DateTime<Utc>, ApiError> {
    DateTime::parse_from_rfc3339(raw)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            let shown: String = raw.chars().take(64).collect();
            ApiError::Unprocessable(format!("{field}: {shown:?} is not an RFC 3339 time ({e})"))
        })
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
    let body = body.into_inner();
    let now = core.clock.now();
    let slo_config = &core.config.slo;
    if body.retroactive {
        let role = req.extensions().get::<Caller>().and_then(|c| c.role);
        if role != Some(Role::Admin) {
            return Err(ApiError::Forbidden(format!(
                "retroactive: a retroactive maintenance window needs the admin role; this token grants {}",
                role.map_or("no role", Role::as_str)
            )));
        }
    }
    let starts_at = posted_time("starts_at", &body.starts_at)?;
    let ends_at = posted_time("ends_at", &body.ends_at)?;
    check_maintenance(
        body.target.as_deref(),
        starts_at,
        ends_at,
        &body.reason,
        &core.config.services,
    )
    .and_then(|()| {
        check_posted(
            starts_at,
            ends_at,
            now,
            chrono::Duration::minutes(i64::from(slo_config.maintenance_grace_minutes)),
            body.retroactive,
        )
    })
    .map_err(|(field, reason)| ApiError::Unprocessable(format!("{field}: {reason}")))?;
    let window = core
        .store
        .insert_maintenance_capped(
            NewWindow {
                target: body.target.as_deref(),
                starts_at,
                ends_at,
                reason: &body.reason,
                retroactive: body.retroactive,
                created_at: now,
            },
            slo_config.max_open_maintenance,
        )
        .await
        .map_err(|e| match e {
            InsertMaintenanceError::TooManyOpen { open } => ApiError::Unprocessable(format!(
                "maintenance: {open} windows have not ended yet, the limit slo.max_open_maintenance is {}: wait for one to end or raise the limit",
                slo_config.max_open_maintenance
            )),
            InsertMaintenanceError::Store(e) => ApiError::internal(e),
        })?;
    if window.retroactive {
        let request_id = req
            .extensions()
            .get::<RequestId>()
            .map(|id| id.0.clone())
            .unwrap_or_default();
        tracing::warn!(
            id = window.id,
            target = window.target.as_deref().unwrap_or("*"),
            starts_at = %window.starts_at.to_rfc3339(),
            ends_at = %window.ends_at.to_rfc3339(),
            request_id = %request_id,
            "retroactive maintenance window declared: checks already made are removed from the slo"
        );
    }
    // Auto-heal and the alert manager read the windows again at their next check.
    state.maintenance.nudge();
    Ok(HttpResponse::Created().json(window))
}

const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 1_000;
/// The furthest `offset` reaches: paging further means narrowing `since`.
const MAX_OFFSET: u32 = 100_000;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MaintenanceParams {
    /// `true`: only the windows in force now.
    #[param(value_type = Option<bool>)]
    pub active: Option<String>,
    /// Only windows that end after this time (RFC 3339); default: those that have not ended yet.
    #[param(value_type = Option<String>, format = DateTime)]
    pub since: Option<String>,
    /// At most this many, 1 to 1000 (default 100).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000, default = 100)]
    pub limit: Option<String>,
    /// Skip this many first (default 0, at most 100000): the next page starts at `offset + limit`.
    #[param(value_type = Option<u32>, minimum = 0, maximum = 100000, default = 0)]
    pub offset: Option<String>,
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
    let now = core.clock.now();
    let active = params::flag("active", query.active.as_deref()).map_err(ApiError::BadRequest)?;
    let since = params::time("since", query.since.as_deref())
        .map_err(ApiError::BadRequest)?
        .unwrap_or(now);
    let limit = params::limit(query.limit.as_deref(), DEFAULT_LIMIT, MAX_LIMIT)
        .map_err(ApiError::BadRequest)?;
    let offset = match query.offset.as_deref() {
        None => 0,
        Some(raw) => match raw.parse::<u32>() {
            Ok(n) if n <= MAX_OFFSET => n,
            _ => {
                return Err(ApiError::BadRequest(format!(
                    "offset: {raw:?} is not a number from 0 to {MAX_OFFSET}"
                )))
            }
        },
    };
    // In force now: ended after now (since) and started by now.
    let (since, until) = if active {
        (now, now + chrono::Duration::milliseconds(1))
    } else {
        (since, DateTime::<Utc>::MAX_UTC)
    };
    let first = offset + limit;
    let mut windows: Vec<MaintenanceWindow> = config_windows(&core.config.slo)
        .into_iter()
        .filter(|w| w.ends_at > since && w.starts_at < until)
        .collect();
    windows.extend(
        core.store
            .maintenance_windows_first(since, until, first)
            .await
            .map_err(ApiError::internal)?,
    );
    windows.sort_by_key(|w| {
        (
            w.starts_at,
            w.ends_at,
            w.source == MaintenanceSource::Api,
            w.id,
        )
    });
    let page: Vec<MaintenanceWindow> = windows
        .into_iter()
        .skip(offset as usize)
        .take(limit as usize)
        .collect();
    Ok(HttpResponse::Ok().json(page))
}
