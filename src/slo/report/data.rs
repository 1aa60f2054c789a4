//! The report's data: each target's SLOs (`TargetSlo`, however they were computed) and what explains them,
//! read from the store: daily availability and the worst hours from the rollups, restarts with their reasons,
//! heal attempts and alerts. The renderers (Markdown, JSON, HTML) only format this.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use serde::Serialize;

use crate::config::Config;
use crate::slo::histogram::LatencyHistogram;
use crate::slo::{SloError, SloMethod, SloStatus, SloWindow, TargetSlo};
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
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ReportError {
    pub fn is_bad_input(&self) -> bool {
        match self {
            Self::UnknownService { .. } | Self::BadWindow { .. } => true,
            Self::Store(e) => matches!(
                e,
                StoreError::NotFound { .. } | StoreError::Corrupt { .. } | StoreError::Open { .. }
            ),
        }
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
    /// True when no objective of any target is breached (what the exit status says).
    pub passed: bool,
    pub targets: Vec<TargetReport>,
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
    /// No objective breached.
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
}

#[derive(Debug, Clone, Serialize)]
pub struct DayRow {
    pub day: NaiveDate,
    pub checks: u64,
    pub good: u64,
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
    /// `exited` (the child exited by itself and was restarted) or `heal` (auto-heal restarted it).
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
        restarts.entry(r.target).or_default().push(RestartRow {
            at: r.started_at,
            cause: r.cause.as_str().to_owned(),
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
    let mut targets = Vec::with_capacity(slos.len());
    for slo in slos {
        let hours: Vec<&HourlyRollup> = rollups
            .get(&slo.target)
            .map(|rows| {
                rows.iter()
                    .filter(|h| h.hour >= window.from && h.hour < window.until)
                    .collect()
            })
            .unwrap_or_default();
        let mut days: BTreeMap<NaiveDate, (u64, u64, LatencyHistogram)> = BTreeMap::new();
        let mut day = window.from.date_naive();
        while day <= (window.until - TimeDelta::milliseconds(1)).date_naive() {
            days.insert(day, (0, 0, LatencyHistogram::new()));
            day += TimeDelta::days(1);
        }
        let mut worst_hours = Vec::new();
        for h in &hours {
            let entry = days
                .entry(h.hour.date_naive())
                .or_insert_with(|| (0, 0, LatencyHistogram::new()));
            entry.0 += h.total;
            entry.1 += h.good;
            entry.2.merge(&h.latency);
            if h.good < h.total {
                worst_hours.push(HourRow {
                    hour: h.hour,
                    checks: h.total,
                    good: h.good,
                    availability_percent: percent(h.good, h.total).unwrap_or(0.0),
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
            .map(|(day, (checks, good, latency))| DayRow {
                day,
                checks,
                good,
                availability_percent: percent(good, checks),
                p95_ms: latency.quantile_us(0.95).map(|us| round(us / 1000.0, 3)),
            })
            .collect();
        let name = slo.target.clone();
        targets.push(TargetReport {
            passed: passes(&slo),
            daily,
            worst_hours,
            restarts: restarts.remove(&name).unwrap_or_default(),
            heals: heals.remove(&name).unwrap_or_default(),
            alerts: alerts.remove(&name).unwrap_or_default(),
            slo,
            name,
        });
    }
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
        passed: targets.iter().all(|t| t.passed),
        targets,
    })
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
