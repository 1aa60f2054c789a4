//! SLO answers: every target's objectives over the configured window, one target's over any window, and
//! maintenance windows (planned downtime that does not count against them), listed and declared.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use crate::answers::{params, AnswerError};
use crate::auth::Role;
use crate::config::{check_maintenance, Config};
use crate::slo::maintenance::{check_posted, config_windows, MaintenanceCalendar};
use crate::slo::{
    self, MaintenanceSource, MaintenanceWindow, SloBoard, SloError, SloSnapshot, SloWindow,
    TargetSlo,
};
use crate::store::maintenance::{InsertMaintenanceError, NewWindow};
use crate::store::Store;

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

fn slo_error(e: SloError) -> AnswerError {
    match e {
        SloError::UnknownTarget(_) => AnswerError::NotFound(e.to_string()),
        SloError::Store(e) => AnswerError::internal(e),
    }
}

/// A snapshot older than this (on hale's clock) asks the refresher for a pass when it is read.
pub const SNAPSHOT_MAX_AGE: chrono::Duration = chrono::Duration::seconds(5);

/// Every target's SLOs over the configured window, in config order: the refresher's last pass (`board`),
/// or, before its first one is done, evaluated from the database. An answer older than
/// `SNAPSHOT_MAX_AGE` asks for a pass, so the next one is fresher.
pub async fn slo_all(
    store: &Store,
    config: &Config,
    board: &SloBoard,
    now: DateTime<Utc>,
) -> Result<Arc<SloSnapshot>, AnswerError> {
    if let Some(snapshot) = board.latest() {
        board.nudge_if_older(now, SNAPSHOT_MAX_AGE);
        return Ok(snapshot);
    }
    let window = SloWindow::last_days(config.slo.window_days, now);
    let slos = slo::evaluate(store, config, &window, None, false)
        .await
        .map_err(slo_error)?;
    Ok(Arc::new(SloSnapshot {
        generation: 0,
        as_of: now,
        computed_at: now,
        slos,
    }))
}

/// `/slo`'s entries per page by default: a fleet of up to this many targets gets them all at once.
pub const SLO_DEFAULT_LIMIT: u32 = 100;
/// The most entries one page of `/slo` holds.
pub const SLO_MAX_LIMIT: u32 = 1_000;
/// The furthest `/slo`'s `offset` reaches.
pub const SLO_MAX_OFFSET: u32 = 1_000_000;

/// `/slo`'s paging.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SloListParams {
    /// At most this many targets, 1 to 1000 (default 100).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000, default = 100)]
    pub limit: Option<String>,
    /// Skip this many first, in config order (default 0): the next page starts at `offset + limit`, and
    /// the `Link` header's `rel="next"` says so.
    #[param(value_type = Option<u32>, minimum = 0, maximum = 1000000, default = 0)]
    pub offset: Option<String>,
}

/// `(limit, offset)` as `params` ask for them.
pub fn slo_paging(params: &SloListParams) -> Result<(u32, u32), AnswerError> {
    let limit = params::limit(params.limit.as_deref(), SLO_DEFAULT_LIMIT, SLO_MAX_LIMIT)
        .map_err(AnswerError::BadInput)?;
    let offset = params::offset("offset", params.offset.as_deref(), SLO_MAX_OFFSET)
        .map_err(AnswerError::BadInput)?;
    Ok((limit, offset))
}

/// One target's SLOs over the window `params` ask for (default: the configured one). The configured window
/// without `exact` is the refresher's last pass (`board`); any other is evaluated from the database.
pub async fn slo_target(
    store: &Store,
    config: &Config,
    board: &SloBoard,
    now: DateTime<Utc>,
    service: &str,
    params: &SloParams,
) -> Result<TargetSlo, AnswerError> {
    let exact = params::flag("exact", params.exact.as_deref()).map_err(AnswerError::BadInput)?;
    let configured = SloWindow::last_days(config.slo.window_days, now);
    let window = match params.window.as_deref() {
        None => configured.clone(),
        Some(raw) => SloWindow::parse(raw, now, config.storage.rollup_retention_days)
            .map_err(|e| AnswerError::BadInput(format!("window: {e}")))?,
    };
    if !exact && window.label == configured.label {
        if let Some(snapshot) = board.latest() {
            board.nudge_if_older(now, SNAPSHOT_MAX_AGE);
            if let Some(found) = snapshot.slos.iter().find(|t| t.target == service) {
                return Ok(found.clone());
            }
        }
    }
    let mut results = slo::evaluate(store, config, &window, Some(service), exact)
        .await
        .map_err(slo_error)?;
    results
        .pop()
        .ok_or_else(|| AnswerError::NotFound(format!("no target named {service:?}")))
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

/// A field of a posted window, parsed: the refusal names it.
fn posted_time(field: &str, raw: &str) -> Result<DateTime<Utc>, AnswerError> {
    DateTime::parse_from_rfc3339(raw)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            let shown: String = raw.chars().take(64).collect();
            AnswerError::Refused(format!("{field}: {shown:?} is not an RFC 3339 time ({e})"))
        })
}

/// Who declares a maintenance window: the role their token proved (none for an open read, which cannot
/// get here) and the request's id, for the log of a retroactive window.
#[derive(Debug, Clone, Copy)]
pub struct Declarer<'a> {
    pub role: Option<Role>,
    pub request_id: &'a str,
}

/// Stores a maintenance window, tells auto-heal and the alert manager (`calendar`) to read the windows
/// again at their next check, and asks the SLO refresher (`board`) for a pass. A retroactive window needs
/// the admin role.
pub async fn declare_maintenance(
    store: &Store,
    config: &Config,
    calendar: &MaintenanceCalendar,
    board: &SloBoard,
    now: DateTime<Utc>,
    body: &NewMaintenance,
    by: Declarer<'_>,
) -> Result<MaintenanceWindow, AnswerError> {
    let slo_config = &config.slo;
    if body.retroactive && by.role != Some(Role::Admin) {
        return Err(AnswerError::Forbidden(format!(
            "retroactive: a retroactive maintenance window needs the admin role; this token grants {}",
            by.role.map_or("no role", Role::as_str)
        )));
    }
    let starts_at = posted_time("starts_at", &body.starts_at)?;
    let ends_at = posted_time("ends_at", &body.ends_at)?;
    check_maintenance(
        body.target.as_deref(),
        starts_at,
        ends_at,
        &body.reason,
        &config.services,
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
    .map_err(|(field, reason)| AnswerError::Refused(format!("{field}: {reason}")))?;
    let window = store
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
            InsertMaintenanceError::TooManyOpen { open } => AnswerError::Refused(format!(
                "maintenance: {open} windows have not ended yet, the limit slo.max_open_maintenance is {}: wait for one to end or raise the limit",
                slo_config.max_open_maintenance
            )),
            InsertMaintenanceError::Store(e) => AnswerError::internal(e),
        })?;
    if window.retroactive {
        tracing::warn!(
            id = window.id,
            target = window.target.as_deref().unwrap_or("*"),
            starts_at = %window.starts_at.to_rfc3339(),
            ends_at = %window.ends_at.to_rfc3339(),
            request_id = %by.request_id,
            "retroactive maintenance window declared: checks already made are removed from the slo"
        );
    }
    // Auto-heal and the alert manager read the windows again at their next check.
    calendar.nudge();
    // The SLOs it changes are counted afresh at the next pass.
    board.nudge();
    Ok(window)
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

/// The maintenance windows `params` ask for, from the config and the API, by start time (then end, config
/// before API, id): `limit` windows after the first `offset`.
pub async fn maintenance(
    store: &Store,
    config: &Config,
    now: DateTime<Utc>,
    params: &MaintenanceParams,
) -> Result<Vec<MaintenanceWindow>, AnswerError> {
    let active = params::flag("active", params.active.as_deref()).map_err(AnswerError::BadInput)?;
    let since = params::time("since", params.since.as_deref())
        .map_err(AnswerError::BadInput)?
        .unwrap_or(now);
    let limit = params::limit(params.limit.as_deref(), DEFAULT_LIMIT, MAX_LIMIT)
        .map_err(AnswerError::BadInput)?;
    let offset = match params.offset.as_deref() {
        None => 0,
        Some(raw) => match raw.parse::<u32>() {
            Ok(n) if n <= MAX_OFFSET => n,
            _ => {
                return Err(AnswerError::BadInput(format!(
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
    let mut windows: Vec<MaintenanceWindow> = config_windows(&config.slo)
        .into_iter()
        .filter(|w| w.ends_at > since && w.starts_at < until)
        .collect();
    windows.extend(store.maintenance_windows_first(since, until, first).await?);
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
    Ok(page)
}
