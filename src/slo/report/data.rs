//! The report's data: each target's SLOs (`TargetSlo`, however they were computed) and what explains them,
//! read from the store: daily availability and the worst hours from the rollups, restarts with their reasons,
//! heal attempts and alerts. The renderers (Markdown, JSON, HTML) only format this.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use serde::Serialize;

use crate::config::Config;
use crate::records::histogram::LatencyHistogram;
use crate::records::ChildStartCause;
use crate::slo::evaluate::hour_outside_maintenance;
use crate::slo::maintenance::{Exclusions, Overlap};
use crate::slo::{MaintenanceWindow, SloError, SloMethod, SloStatus, SloWindow, TargetSlo};
use crate::store::rollups::HourlyRollup;
use crate::store::{Store, StoreError};

/// The version of the JSON shape; bumped only when a field is renamed or removed.
pub const REPORT_VERSION: u32 = 1;
/// Worst hours listed per target.
pub const WORST_HOURS: usize = 5;

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("unknown service {name:?}: it is neither in the config nor in the database's window ({known})")]
    UnknownService { name: String, known: String },
    #[error("bad window {raw:?}: {reason}")]
    BadWindow { raw: String, reason: String },
    #[error("{db} is not a hale database (it has no hale schema): give --db the file `hale serve` writes")]
    NotHale { db: String },
    #[error("{db} has schema {applied} and this hale reads schema {known}: start `hale serve` on it once to migrate it, then report")]
    OldSchema {
        db: String,
        applied: i64,
        known: i64,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Opens the database read-only for a report. Read-only, a report cannot bring an older schema up to date:
/// a file without hale's schema, or with an older one, is refused here rather than failing on a missing
/// table later.
pub async fn open_database(db: &Path) -> Result<Store, ReportError> {
    let store = Store::open_read_only(db).await?;
    let refused = match store.schema().await {
        Ok(schema) if schema.applied == 0 => Some(ReportError::NotHale {
            db: db.display().to_string(),
        }),
        Ok(schema) if schema.applied < schema.known => Some(ReportError::OldSchema {
            db: db.display().to_string(),
            applied: schema.applied,
            known: schema.known,
        }),
        Ok(_) => None,
        Err(e) => Some(ReportError::Store(e)),
    };
    match refused {
        Some(e) => {
            store.close().await;
            Err(e)
        }
        None => Ok(store),
    }
}

/// What the report, or one target in it, comes to. The exit status of `hale slo report` follows the
/// report's: 0 pass, 1 fail, 3 no data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// No objective breached, and valid checks to judge by.
    Pass,
    /// An objective breached (or, with `--require-data`, a target without valid checks).
    Fail,
    /// No objective breached, but a target has no valid check in the window: nothing was shown to pass.
    NoData,
}

impl Verdict {
    /// The word the report shows.
    pub fn word(self) -> &'static str {
        match self {
            Self::Pass => "PASS",
            Self::Fail => "FAIL",
            Self::NoData => "NO DATA",
        }
    }

    /// The class of its badge in HTML.
    pub fn class(self) -> &'static str {
        match self {
            Self::Pass => "pass",
            Self::Fail => "fail",
            Self::NoData => "nodata",
        }
    }
}

/// One target's verdict: FAIL when an objective is breached, else NO DATA without a valid check, else PASS.
pub fn target_verdict(slo: &TargetSlo) -> Verdict {
    if !passes(slo) {
        Verdict::Fail
    } else if slo.status == SloStatus::NoData || slo.availability.valid == 0 {
        Verdict::NoData
    } else {
        Verdict::Pass
    }
}

/// The report's verdict from its targets': FAIL when one fails; else NO DATA when one has no data (FAIL
/// with `require_data`) or there is no target at all; else PASS.
pub fn report_verdict(targets: &[TargetReport], require_data: bool) -> Verdict {
    let no_data = targets.is_empty() || targets.iter().any(|t| t.result == Verdict::NoData);
    if targets.iter().any(|t| t.result == Verdict::Fail) || (no_data && require_data) {
        Verdict::Fail
    } else if no_data {
        Verdict::NoData
    } else {
        Verdict::Pass
    }
}

/// The whole report. Its JSON form is documented in docs/reports.md (`version` 1).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub version: u32,
    pub generated_at: DateTime<Utc>,
    pub window: SloWindow,
    pub method: SloMethod,
    pub objectives: Objectives,
    /// `pass`, `fail` or `no_data`: what the exit status says (0, 1, 3).
    pub result: Verdict,
    /// True only when `result` is `pass`: no objective breached and every target has valid checks.
    pub passed: bool,
    /// `--require-data`: a target without valid checks fails the report instead of making it `no_data`.
    pub require_data: bool,
    pub targets: Vec<TargetReport>,
    /// hale's own starts in the window.
    pub hale: HaleRuns,
}

/// hale's own starts in the window. A start after an unclean end (hale was killed or crashed) is a restart
/// of hale; its supervised children died with it, and their starts count as restarts of their targets.
#[derive(Debug, Clone, Serialize)]
pub struct HaleRuns {
    pub starts: u32,
    pub restarts_after_unclean_end: u32,
    /// The starts after an unclean end, oldest first.
    pub unclean_restarts: Vec<HaleRestartRow>,
}

#[derive(Debug, Clone, Serialize)]
pub struct HaleRestartRow {
    pub at: DateTime<Utc>,
    pub version: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Objectives {
    pub availability_target_percent: f64,
    pub p95_latency_target_ms: u64,
    pub max_restarts_per_week: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct TargetReport {
    pub name: String,
    /// `pass`, `fail` (an objective breached) or `no_data` (no valid check in the window).
    pub result: Verdict,
    /// True only when `result` is `pass`.
    pub passed: bool,
    pub slo: TargetSlo,
    /// One per UTC day of the window, oldest first, from the rollups (days without checks included).
    pub daily: Vec<DayRow>,
    /// The hours with the most failed checks (lowest availability first), at most 5; none when every
    /// check was up.
    pub worst_hours: Vec<HourRow>,
    /// Child restarts in the window, oldest first.
    pub restarts: Vec<RestartRow>,
    /// Heal attempts in the window (including skipped ones), oldest first.
    pub heals: Vec<HealRow>,
    /// Alerts fired in the window, oldest first.
    pub alerts: Vec<AlertRow>,
    /// The maintenance windows that cover this target and overlap the report's window, oldest first: their
    /// checks are not valid (counted in `slo.availability.excluded`, left out of `daily` and `worst_hours`).
    pub maintenance: Vec<MaintenanceWindow>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DayRow {
    pub day: NaiveDate,
    /// Valid checks: scheduled checks outside maintenance windows.
    pub checks: u64,
    pub good: u64,
    /// Scheduled checks inside maintenance windows, not counted.
    pub excluded: u64,
    /// Null without checks.
    pub availability_percent: Option<f64>,
    pub p95_ms: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct HourRow {
    pub hour: DateTime<Utc>,
    pub checks: u64,
    pub good: u64,
    pub availability_percent: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct RestartRow {
    pub at: DateTime<Utc>,
    /// `exited` (the child exited by itself and was restarted), `heal` (auto-heal restarted it) or
    /// `hale_restart` (it died with a killed or crashed hale and was started again by the next start).
    pub cause: String,
    /// How the run before it ended.
    pub exit_code: Option<i32>,
    pub exit_signal: Option<i32>,
}

#[derive(Debug, Clone, Serialize)]
pub struct HealRow {
    pub started_at: DateTime<Utc>,
    pub trigger: String,
    pub action: String,
    pub outcome: String,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AlertRow {
    pub rule: String,
    pub level: String,
    pub summary: String,
    pub fired_at: DateTime<Utc>,
    /// Null while it still fires.
    pub resolved_at: Option<DateTime<Utc>>,
}

/// `7d`, `24h`: a window as `SloWindow::parse` reads it (the same forms and limits as
/// `/slo/{service}?window=`), moved to end at the end of the current hour, so that it is made of whole hourly
/// rollups: the daily rows and the worst hours then count exactly the checks the SLO table counts.
pub fn parse_window(
    raw: &str,
    now: DateTime<Utc>,
    max_days: u32,
) -> Result<SloWindow, ReportError> {
    let parsed = SloWindow::parse(raw, now, max_days).map_err(|reason| ReportError::BadWindow {
        raw: raw.to_owned(),
        reason,
    })?;
    let length = parsed.until - parsed.from;
    let hour_ms = 3_600_000;
    let ms = now.timestamp_millis();
    let until = DateTime::<Utc>::from_timestamp_millis(ms - ms.rem_euclid(hour_ms) + hour_ms)
        .unwrap_or(now);
    Ok(SloWindow {
        label: parsed.label,
        from: until - length,
        until,
    })
}

/// Each target's SLOs over the window, from the SLO engine: the configured targets and every service with
/// checks in the window, or only `target`.
pub async fn slo_rows(
    store: &Store,
    config: &Config,
    window: &SloWindow,
    target: Option<&str>,
    exact: bool,
    rollups: &HashMap<String, Vec<HourlyRollup>>,
) -> Result<Vec<TargetSlo>, ReportError> {
    let mut names: Vec<String> = config.services.iter().map(|s| s.name.to_string()).collect();
    let known: BTreeSet<String> = names.iter().cloned().collect();
    for service in store.services_between(window.from, window.until).await? {
        if !known.contains(&service) {
            names.push(service);
        }
    }
    if let Some(wanted) = target {
        if !names.iter().any(|n| n == wanted) {
            return Err(ReportError::UnknownService {
                name: wanted.to_owned(),
                known: names.join(", "),
            });
        }
        names.retain(|n| n == wanted);
    }
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    crate::slo::evaluate_preloaded(store, config, window, &names, exact, Some(rollups))
        .await
        .map_err(|e| match e {
            SloError::Store(e) => ReportError::Store(e),
            SloError::UnknownTarget(name) => ReportError::UnknownService {
                name,
                known: String::new(),
            },
        })
}

/// Builds the report from the store: `slo_rows` for the SLO table, then the details of each target.
pub async fn build(
    store: &Store,
    config: &Config,
    window: &SloWindow,
    target: Option<&str>,
    exact: bool,
    now: DateTime<Utc>,
    require_data: bool,
) -> Result<Report, ReportError> {
    // Every rollup the report needs, read (and decoded) once: the SLO table and the details share them.
    let (span_from, span_until) = crate::slo::rollup_span(window);
    let rollups = store.rollups_between(span_from, span_until).await?;
    let slos = slo_rows(store, config, window, target, exact, &rollups).await?;
    let mut restarts: BTreeMap<String, Vec<RestartRow>> = BTreeMap::new();
    for r in store
        .child_restarts(target, window.from, window.until)
        .await?
    {
        let cause = match r.cause {
            ChildStartCause::Start => "hale_restart",
            other => other.as_str(),
        };
        restarts.entry(r.target).or_default().push(RestartRow {
            at: r.started_at,
            cause: cause.to_owned(),
            exit_code: r.previous_exit_code,
            exit_signal: r.previous_exit_signal,
        });
    }
    let mut heals: BTreeMap<String, Vec<HealRow>> = BTreeMap::new();
    for h in store
        .heal_events(target, Some(window.from), u32::MAX)
        .await?
        .into_iter()
        .rev()
        .filter(|h| h.record.started_at < window.until)
    {
        let r = h.record;
        heals
            .entry(r.target.to_string())
            .or_default()
            .push(HealRow {
                started_at: r.started_at,
                trigger: r.trigger.as_str().to_owned(),
                action: r.action.as_str().to_owned(),
                outcome: r.outcome.as_str().to_owned(),
                error: r.error,
            });
    }
    let mut alerts: BTreeMap<String, Vec<AlertRow>> = BTreeMap::new();
    let filter = crate::store::alerts::AlertFilter {
        since: Some(window.from),
        limit: u32::MAX,
        ..Default::default()
    };
    for a in store.alerts(&filter).await?.into_iter().rev() {
        if a.fired_at < window.from || a.fired_at >= window.until {
            continue;
        }
        alerts.entry(a.target).or_default().push(AlertRow {
            rule: a.rule,
            level: a.level.as_str().to_owned(),
            summary: a.summary,
            fired_at: a.fired_at,
            resolved_at: a.resolved_at,
        });
    }
    let windows = crate::slo::maintenance_windows(store, config, window.from, window.until).await?;
    let mut targets = Vec::with_capacity(slos.len());
    for slo in slos {
        let hours = rollups.get(&slo.target).map_or(&[][..], Vec::as_slice);
        let exclusions = Exclusions::for_target(&windows, &slo.target);
        let (daily, worst_hours) =
            daily_and_worst_hours(store, &slo.target, window, hours, &exclusions).await?;
        let name = slo.target.clone();
        let result = target_verdict(&slo);
        targets.push(TargetReport {
            result,
            passed: result == Verdict::Pass,
            daily,
            worst_hours,
            restarts: restarts.remove(&name).unwrap_or_default(),
            heals: heals.remove(&name).unwrap_or_default(),
            alerts: alerts.remove(&name).unwrap_or_default(),
            maintenance: windows
                .iter()
                .filter(|w| w.covers_target(&name))
                .cloned()
                .collect(),
            slo,
            name,
        });
    }
    let starts = store.hale_starts_between(window.from, window.until).await?;
    let unclean_restarts: Vec<HaleRestartRow> = starts
        .iter()
        .filter(|s| s.after_unclean_end)
        .map(|s| HaleRestartRow {
            at: s.run.started_at,
            version: s.run.version.clone(),
        })
        .collect();
    let hale = HaleRuns {
        starts: u32::try_from(starts.len()).unwrap_or(u32::MAX),
        restarts_after_unclean_end: u32::try_from(unclean_restarts.len()).unwrap_or(u32::MAX),
        unclean_restarts,
    };
    Ok(Report {
        version: REPORT_VERSION,
        generated_at: now,
        window: window.clone(),
        method: if exact {
            SloMethod::Exact
        } else {
            SloMethod::Rollups
        },
        objectives: Objectives {
            availability_target_percent: config.slo.availability_target_percent,
            p95_latency_target_ms: config.slo.p95_latency_target_ms,
            max_restarts_per_week: config.slo.max_restarts_per_week,
        },
        result: report_verdict(&targets, require_data),
        passed: report_verdict(&targets, require_data) == Verdict::Pass,
        require_data,
        targets,
        hale,
    })
}

/// One row per UTC day of the window and the worst hours of one target, from its rollups with maintenance
/// taken out the way the SLO takes it out (so the days add up to the SLO's valid checks).
async fn daily_and_worst_hours(
    store: &Store,
    target: &str,
    window: &SloWindow,
    rollups: &[HourlyRollup],
    exclusions: &Exclusions,
) -> Result<(Vec<DayRow>, Vec<HourRow>), StoreError> {
    #[derive(Default)]
    struct Day {
        checks: u64,
        good: u64,
        excluded: u64,
        latency: LatencyHistogram,
    }
    let mut days: BTreeMap<NaiveDate, Day> = BTreeMap::new();
    let mut day = window.from.date_naive();
    while day <= (window.until - TimeDelta::milliseconds(1)).date_naive() {
        days.insert(day, Day::default());
        day += TimeDelta::days(1);
    }
    let mut worst_hours = Vec::new();
    for row in rollups
        .iter()
        .filter(|h| h.hour >= window.from && h.hour < window.until)
    {
        let entry = days.entry(row.hour.date_naive()).or_default();
        let hour_ms = row.hour.timestamp_millis();
        let (valid, good) = match exclusions.overlap(hour_ms, hour_ms + 3_600_000) {
            Overlap::None => {
                entry.latency.merge(&row.latency);
                (row.total, row.good.min(row.total))
            }
            _ => {
                let counts = hour_outside_maintenance(store, target, exclusions, row).await?;
                entry.latency.merge(&counts.latency);
                entry.excluded += counts.excluded;
                (counts.valid, counts.good)
            }
        };
        entry.checks += valid;
        entry.good += good;
        if good < valid {
            worst_hours.push(HourRow {
                hour: row.hour,
                checks: valid,
                good,
                availability_percent: percent(good, valid).unwrap_or(0.0),
            });
        }
    }
    worst_hours.sort_by(|a, b| {
        a.availability_percent
            .total_cmp(&b.availability_percent)
            .then(a.hour.cmp(&b.hour))
    });
    worst_hours.truncate(WORST_HOURS);
    let daily = days
        .into_iter()
        .map(|(day, d)| DayRow {
            day,
            checks: d.checks,
            good: d.good,
            excluded: d.excluded,
            availability_percent: percent(d.good, d.checks),
            p95_ms: d.latency.quantile_us(0.95).map(|us| round(us / 1000.0, 3)),
        })
        .collect();
    Ok((daily, worst_hours))
}

/// No objective breached (met, at risk, or without data).
pub fn passes(slo: &TargetSlo) -> bool {
    [
        slo.availability.status,
        slo.latency.status,
        slo.restarts.status,
    ]
    .iter()
    .all(|s| *s != SloStatus::Breached)
}

/// The word a report shows for an objective.
pub fn verdict(status: SloStatus) -> &'static str {
    match status {
        SloStatus::Met => "PASS",
        SloStatus::AtRisk => "PASS (at risk)",
        SloStatus::Breached => "FAIL",
        SloStatus::NoData => "NO DATA",
    }
}

pub fn percent(good: u64, total: u64) -> Option<f64> {
    (total > 0).then(|| round(good as f64 * 100.0 / total as f64, 4))
}

pub fn round(v: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (v * f).round() / f
}

/// `99.9876%`, or `-` without a value.
pub fn show_percent(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), |p| format!("{p:.3}%"))
}

pub fn show_ms(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), |ms| format!("{ms:.1} ms"))
}

pub fn show_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// The objective lines every format shows: name, target, measured, status.
pub fn objective_lines(slo: &TargetSlo) -> [(&'static str, String, String, SloStatus); 3] {
    [
        (
            "availability",
            format!("≥ {:.3}%", slo.availability.target_ratio * 100.0),
            show_percent(slo.availability.ratio.map(|r| r * 100.0)),
            slo.availability.status,
        ),
        (
            "p95 latency",
            format!("≤ {} ms", slo.latency.target_ms),
            show_ms(slo.latency.p95_ms),
            slo.latency.status,
        ),
        (
            "restarts",
            format!("< {} a week", slo.restarts.max_per_week),
            slo.restarts.count.to_string(),
            slo.restarts.status,
        ),
    ]
}

/// What a retroactive maintenance window did to a target, as words.
pub fn retroactive_line(r: &crate::slo::RetroactiveMaintenance) -> String {
    format!(
        "retroactive maintenance {} to {} (declared {}, covers {}) removed {} check{} of this target: {}",
        show_time(r.starts_at),
        show_time(r.ends_at),
        r.created_at.map_or_else(|| "-".to_owned(), show_time),
        r.target.as_deref().unwrap_or("every target"),
        r.removed_checks,
        if r.removed_checks == 1 { "" } else { "s" },
        r.reason
    )
}

/// What is left of the error budget, as words.
pub fn budget_line(slo: &TargetSlo) -> String {
    match slo.error_budget.remaining_ratio {
        None => "no checks in the window".to_owned(),
        Some(left) => format!(
            "{:.1}% of the error budget left ({} of {:.0} allowed failed checks used)",
            left * 100.0,
            slo.error_budget.consumed_bad,
            slo.error_budget.allowed_bad
        ),
    }
}

/// An exit code or signal, as words.
pub fn exit_reason(code: Option<i32>, signal: Option<i32>) -> String {
    match (code, signal) {
        (Some(c), _) => format!("exit code {c}"),
        (None, Some(s)) => format!("signal {s}"),
        (None, None) => "unknown exit".to_owned(),
    }
}

/// What a restart row says about its cause.
pub fn restart_cause(cause: &str) -> &'static str {
    match cause {
        "heal" => "by auto-heal",
        "hale_restart" => "when hale started again after it was killed or crashed",
        _ => "it exited",
    }
}

/// hale's own starts, as a sentence: how many, and when it started again after it was killed or crashed.
pub fn hale_line(hale: &HaleRuns) -> String {
    let when = if hale.unclean_restarts.is_empty() {
        String::new()
    } else {
        let times: Vec<String> = hale
            .unclean_restarts
            .iter()
            .map(|r| show_time(r.at))
            .collect();
        format!(" ({})", times.join(", "))
    };
    format!(
        "hale itself: {} start{} in the window, {} after it was killed or crashed{when}.",
        hale.starts,
        if hale.starts == 1 { "" } else { "s" },
        hale.restarts_after_unclean_end,
    )
}
