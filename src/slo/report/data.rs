//! The report's data: each target's SLOs (`TargetSlo`, however they were computed) and what explains them,
//! read from the store: daily availability and the worst hours from the rollups, restarts with their reasons,
//! heal attempts and alerts. The renderers (Markdown, JSON, HTML) only format this.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, NaiveDate, TimeDelta, Timelike, Utc};
use serde::Serialize;

use crate::config::Config;
use crate::slo::histogram::LatencyHistogram;
use crate::slo::{
    AvailabilitySlo, BurnRates, ErrorBudget, LatencySlo, RestartsSlo, SloMethod, SloStatus,
    SloWindow, TargetSlo,
};
use crate::store::rollups::WindowTotals;
use crate::store::{Store, StoreError};

/// The version of the JSON shape; bumped only when a field is renamed or removed.
pub const REPORT_VERSION: u32 = 1;
/// Worst hours listed per target.
pub const WORST_HOURS: usize = 5;
/// Below this share of the error budget left, a met objective is `at_risk`.
const AT_RISK_BUDGET_SHARE: f64 = 0.25;

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

/// `7d`, `24h`: a window ending at the end of the current hour, at most `max_days` long.
// replaced by crate::slo::SloWindow::parse at merge
pub fn parse_window(
    raw: &str,
    now: DateTime<Utc>,
    max_days: u32,
) -> Result<SloWindow, ReportError> {
    let bad = |reason: String| ReportError::BadWindow {
        raw: raw.to_owned(),
        reason,
    };
    let (number, unit) = raw.split_at(raw.len().saturating_sub(1));
    let n: i64 = number
        .parse()
        .map_err(|_| bad("expected a number of days or hours, such as 7d or 24h".to_owned()))?;
    let length = match unit {
        "d" => TimeDelta::days(n),
        "h" => TimeDelta::hours(n),
        _ => return Err(bad("the unit must be d (days) or h (hours)".to_owned())),
    };
    if n < 1 || length > TimeDelta::days(i64::from(max_days)) {
        return Err(bad(format!("must be from 1h to {max_days}d")));
    }
    let hour = now
        .with_nanosecond(0)
        .and_then(|t| t.with_second(0))
        .and_then(|t| t.with_minute(0))
        .unwrap_or(now);
    let until = hour + TimeDelta::hours(1);
    Ok(SloWindow {
        label: raw.to_owned(),
        from: until - length,
        until,
    })
}

/// Each target's SLOs over the window: the configured targets and every service with checks in the window,
/// or only `target`.
// replaced by crate::slo::evaluate at merge
pub async fn slo_rows(
    store: &Store,
    config: &Config,
    window: &SloWindow,
    target: Option<&str>,
    exact: bool,
) -> Result<Vec<TargetSlo>, ReportError> {
    let totals = store.window_totals(window.from, window.until).await?;
    let mut names: BTreeSet<String> = config.services.iter().map(|s| s.name.to_string()).collect();
    names.extend(totals.keys().cloned());
    if let Some(wanted) = target {
        if !names.contains(wanted) {
            return Err(ReportError::UnknownService {
                name: wanted.to_owned(),
                known: names.iter().cloned().collect::<Vec<_>>().join(", "),
            });
        }
        names.retain(|n| n == wanted);
    }
    let restarts = store.restarts_since(window.from).await?;
    let recent = |hours: i64| window.until - TimeDelta::hours(hours);
    let h1 = store.window_totals(recent(1), window.until).await?;
    let h6 = store.window_totals(recent(6), window.until).await?;
    let d1 = store.window_totals(recent(24), window.until).await?;
    let target_ratio = config.slo.availability_target_percent / 100.0;
    let target_us = config.slo.p95_latency_target_ms * 1000;
    let weeks = ((window.until - window.from).num_hours() as f64 / (24.0 * 7.0)).max(1.0);
    let mut rows = Vec::with_capacity(names.len());
    for name in names {
        let empty = WindowTotals::default();
        let rollup = totals.get(&name).unwrap_or(&empty);
        let (total, good, p95_us, measured, under) = if exact {
            let e = store
                .exact_totals(&name, window.from, window.until, target_us)
                .await?;
            (
                e.total,
                e.good,
                e.p95_us.map(|us| us as f64),
                e.measured,
                Some(e.under_target),
            )
        } else {
            let measured = rollup.latency.total();
            (
                rollup.total,
                rollup.good,
                rollup.latency.quantile_us(0.95),
                measured,
                under_target(&rollup.latency, target_us as f64),
            )
        };
        let ratio = (total > 0).then(|| good as f64 / total as f64);
        let allowed_bad = (1.0 - target_ratio) * total as f64;
        let consumed_bad = total - good;
        let remaining =
            (total > 0).then(|| 1.0 - consumed_bad as f64 / allowed_bad.max(f64::MIN_POSITIVE));
        let availability_status = match (ratio, remaining) {
            (None, _) => SloStatus::NoData,
            (Some(r), _) if r < target_ratio => SloStatus::Breached,
            (Some(_), Some(left)) if left < AT_RISK_BUDGET_SHARE => SloStatus::AtRisk,
            _ => SloStatus::Met,
        };
        let latency_status = match p95_us {
            None => SloStatus::NoData,
            Some(us) if us > target_us as f64 => SloStatus::Breached,
            Some(_) => SloStatus::Met,
        };
        let count = restarts.get(&name).copied().unwrap_or(0);
        let restarts_status =
            if f64::from(count) >= f64::from(config.slo.max_restarts_per_week) * weeks {
                SloStatus::Breached
            } else {
                SloStatus::Met
            };
        let burn = |w: &std::collections::HashMap<String, WindowTotals>| {
            w.get(&name)
                .filter(|t| t.total > 0)
                .map(|t| ((t.total - t.good) as f64 / t.total as f64) / (1.0 - target_ratio))
        };
        let status = worst([availability_status, latency_status, restarts_status]);
        rows.push(TargetSlo {
            window: window.clone(),
            status,
            availability: AvailabilitySlo {
                good,
                valid: total,
                excluded: 0,
                ratio,
                target_ratio,
                status: availability_status,
            },
            latency: LatencySlo {
                p95_ms: p95_us.map(|us| us / 1000.0),
                target_ms: config.slo.p95_latency_target_ms,
                under_target_ratio: under
                    .filter(|_| measured > 0)
                    .map(|u| u as f64 / measured as f64),
                measured,
                status: latency_status,
            },
            restarts: RestartsSlo {
                count,
                max_per_week: config.slo.max_restarts_per_week,
                status: restarts_status,
            },
            error_budget: ErrorBudget {
                allowed_bad,
                consumed_bad,
                remaining_ratio: remaining,
                burn_rates: BurnRates {
                    h1: burn(&h1),
                    h6: burn(&h6),
                    d1: burn(&d1),
                    window: ratio.map(|r| (1.0 - r) / (1.0 - target_ratio)),
                },
            },
            method: if exact {
                SloMethod::Exact
            } else {
                SloMethod::Rollups
            },
            target: name,
        });
    }
    Ok(rows)
}

/// Checks at or under `target_us`, read off the histogram by bisecting on the quantile (within its 1%).
fn under_target(histogram: &LatencyHistogram, target_us: f64) -> Option<u64> {
    let total = histogram.total();
    if total == 0 {
        return None;
    }
    let (mut lo, mut hi) = (0u64, total);
    // The largest rank whose latency is within target.
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        let q = mid as f64 / total as f64;
        match histogram.quantile_us(q) {
            Some(us) if us <= target_us => lo = mid,
            _ => hi = mid - 1,
        }
    }
    Some(lo)
}

fn rank(status: SloStatus) -> u8 {
    match status {
        SloStatus::Met => 0,
        SloStatus::NoData => 1,
        SloStatus::AtRisk => 2,
        SloStatus::Breached => 3,
    }
}

fn worst(statuses: [SloStatus; 3]) -> SloStatus {
    statuses
        .into_iter()
        .max_by_key(|s| rank(*s))
        .unwrap_or(SloStatus::NoData)
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
    let slos = slo_rows(store, config, window, target, exact).await?;
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
        let hours = store
            .hourly_rollups(&slo.target, window.from, window.until)
            .await?;
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
