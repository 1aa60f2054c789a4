//! SLO routes: every target's objectives over the configured window, or one target's over any window, and
//! maintenance windows (planned downtime that does not count against them).

use actix_web::{get, post, web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use crate::config::check_maintenance;
use crate::http::{ApiError, ErrorBody};
use crate::services::health_proxy::HealthProxyState;
use crate::services::params;
use crate::services::Core;
use crate::slo::{self, MaintenanceWindow, SloError, SloWindow, TargetSlo};

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
    /// RFC 3339.
    pub starts_at: DateTime<Utc>,
    /// RFC 3339; after `starts_at`, at most 30 days later.
    pub ends_at: DateTime<Utc>,
    /// Why, up to 500 characters.
    pub reason: String,
}

/// Declare a maintenance window.
///
/// Scheduled checks of the target (or of every target) inside the window are not valid for its SLOs, and
/// while the window lasts hale neither heals the target automatically nor raises its alerts (docs/slo.md).
#[utoipa::path(
    tag = "slo",
    request_body = NewMaintenance,
    responses(
        (status = 201, description = "The stored window", body = MaintenanceWindow),
        (status = 400, description = "The body is invalid; the message names the field", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "The token's role is weaker than operate", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
#[post("/maintenance")]
pub async fn create_maintenance(
    core: web::Data<Core>,
    state: web::Data<HealthProxyState>,
    body: web::Json<NewMaintenance>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    check_maintenance(
        body.target.as_deref(),
        body.starts_at,
        body.ends_at,
        &body.reason,
        &core.config.services,
    )
    .map_err(|(field, reason)| ApiError::BadRequest(format!("{field}: {reason}")))?;
    let window = core
        .store
        .insert_maintenance(
            body.target.as_deref(),
            body.starts_at,
            body.ends_at,
            &body.reason,
            core.clock.now(),
        )
        .await
        .map_err(ApiError::internal)?;
    // Auto-heal and the alert manager read the windows again at their next check.
    state.maintenance.nudge();
    Ok(HttpResponse::Created().json(window))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MaintenanceParams {
    /// `true`: only the windows in force now.
    #[param(value_type = Option<bool>)]
    pub active: Option<String>,
    /// Only windows that end after this time (RFC 3339); default: those that have not ended yet.
    #[param(value_type = Option<String>, format = DateTime)]
    pub since: Option<String>,
}

/// Maintenance windows, from the config file (`source: config`) and the API (`source: api`).
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
    let mut windows =
        slo::maintenance_windows(&core.store, &core.config, since, DateTime::<Utc>::MAX_UTC)
            .await
            .map_err(ApiError::internal)?;
    if active {
        windows.retain(|w| w.is_active(now));
    }
    Ok(HttpResponse::Ok().json(windows))
}
