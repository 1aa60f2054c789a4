//! Test fixtures: a report whose every string from the config or the database is hostile
//! (`<script>`, quotes, `&`, Markdown link syntax), so a renderer that forgets to escape one place fails.

use chrono::{DateTime, NaiveDate, TimeDelta, TimeZone, Utc};

use crate::slo::report::data::{
    AlertRow, DayRow, HaleRestartRow, HaleRuns, HealRow, HourRow, Objectives, Report, RestartRow,
    TargetReport, Verdict,
};
use crate::slo::{
    AvailabilitySlo, BurnRates, ErrorBudget, LatencySlo, MaintenanceSource, MaintenanceWindow,
    RestartsSlo, RetroactiveMaintenance, SloMethod, SloStatus, SloWindow, TargetSlo,
};

/// A string no page may show as it is: a script, both quotes, an ampersand and a Markdown link.
pub fn hostile(what: &str) -> String {
    format!("{what}<script>alert(\"x\")</script>'&amp;[x](http://evil)")
}

pub fn at(hour: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 26, hour, 0, 0)
        .single()
        .unwrap_or_default()
}

fn window() -> SloWindow {
    SloWindow {
        label: hostile("window"),
        from: at(0) - TimeDelta::days(2),
        until: at(12),
    }
}

fn retroactive() -> RetroactiveMaintenance {
    RetroactiveMaintenance {
        id: Some(4),
        target: Some(hostile("covered")),
        starts_at: at(1),
        ends_at: at(2),
        reason: hostile("retro-reason"),
        created_at: Some(at(3)),
        removed_checks: 12,
    }
}

/// One target's SLOs, breached, with a retroactive window.
pub fn target_slo(name: &str) -> TargetSlo {
    TargetSlo {
        target: name.to_owned(),
        window: window(),
        status: SloStatus::Breached,
        availability: AvailabilitySlo {
            good: 90,
            valid: 100,
            excluded: 12,
            ratio: Some(0.9),
            target_ratio: 0.995,
            status: SloStatus::Breached,
        },
        latency: LatencySlo {
            p95_ms: Some(48.7),
            target_ms: 200,
            under_target_ratio: Some(0.99),
            measured: 100,
            status: SloStatus::Met,
        },
        restarts: RestartsSlo {
            count: 1,
            max_per_week: 3,
            status: SloStatus::Met,
        },
        error_budget: ErrorBudget {
            allowed_bad: 0.5,
            consumed_bad: 10,
            remaining_ratio: Some(-19.0),
            burn_rates: BurnRates {
                h1: Some(1.0),
                h6: None,
                d1: Some(2.0),
                window: Some(20.0),
            },
        },
        method: SloMethod::Rollups,
        retroactive_maintenance: vec![retroactive()],
    }
}

/// A report with one hostile target and every section filled.
pub fn report() -> Report {
    let name = hostile("target");
    let day = |d: u32, availability: Option<f64>| DayRow {
        day: NaiveDate::from_ymd_opt(2026, 11, d).unwrap_or_default(),
        checks: 50,
        good: 45,
        excluded: 6,
        availability_percent: availability,
        p95_ms: availability.map(|_| 48.7),
    };
    Report {
        version: 1,
        generated_at: at(12),
        window: window(),
        method: SloMethod::Rollups,
        objectives: Objectives {
            availability_target_percent: 99.5,
            p95_latency_target_ms: 200,
            max_restarts_per_week: 3,
        },
        result: Verdict::Fail,
        passed: false,
        require_data: false,
        targets: vec![TargetReport {
            name: name.clone(),
            result: Verdict::Fail,
            passed: false,
            slo: target_slo(&name),
            daily: vec![day(24, Some(100.0)), day(25, None), day(26, Some(90.0))],
            worst_hours: vec![HourRow {
                hour: at(5),
                checks: 60,
                good: 50,
                availability_percent: 83.333,
            }],
            restarts: vec![RestartRow {
                at: at(6),
                cause: hostile("cause"),
                exit_code: Some(3),
                exit_signal: None,
            }],
            heals: vec![HealRow {
                started_at: at(7),
                trigger: hostile("trigger"),
                action: hostile("action"),
                outcome: hostile("outcome"),
                error: Some(hostile("heal-error")),
            }],
            alerts: vec![AlertRow {
                rule: hostile("rule"),
                level: hostile("level"),
                summary: hostile("summary"),
                fired_at: at(8),
                resolved_at: None,
            }],
            maintenance: vec![
                MaintenanceWindow {
                    id: None,
                    target: None,
                    starts_at: at(1),
                    ends_at: at(2),
                    reason: hostile("config-reason"),
                    source: MaintenanceSource::Config,
                    created_at: None,
                    retroactive: false,
                },
                MaintenanceWindow {
                    id: Some(4),
                    target: Some(hostile("covered")),
                    starts_at: at(1),
                    ends_at: at(2),
                    reason: hostile("api-reason"),
                    source: MaintenanceSource::Api,
                    created_at: Some(at(3)),
                    retroactive: true,
                },
            ],
        }],
        hale: HaleRuns {
            starts: 2,
            restarts_after_unclean_end: 1,
            unclean_restarts: vec![HaleRestartRow {
                at: at(4),
                version: hostile("version"),
            }],
        },
    }
}
