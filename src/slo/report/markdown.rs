//! The report as Markdown: one section per target with its PASS/FAIL table, then the details.

use std::fmt::Write as _;

use crate::markdown::cell;
use crate::slo::report::data::{
    budget_line, exit_reason, hale_line, objective_lines, restart_cause, retroactive_line,
    show_percent, show_time, verdict, Verdict,
};
use crate::slo::report::{Report, TargetReport};
use crate::slo::SloMethod;

pub fn render(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# SLO report: {}", cell(&report.window.label));
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "Window {} to {}; computed from {}; generated {}.",
        show_time(report.window.from),
        show_time(report.window.until),
        match report.method {
            SloMethod::Rollups => "the hourly rollups",
            SloMethod::Exact => "every raw check (--exact)",
        },
        show_time(report.generated_at)
    );
    let _ = writeln!(out);
    let passing = report.targets.iter().filter(|t| t.passed).count();
    let no_data = report
        .targets
        .iter()
        .filter(|t| t.result == Verdict::NoData)
        .count();
    let _ = writeln!(
        out,
        "**{}**: {} of {} targets meet every objective{}.",
        report.result.word(),
        passing,
        report.targets.len(),
        match (no_data, report.require_data) {
            (0, _) => String::new(),
            (n, false) => format!("; {n} without a valid check in the window (NO DATA)"),
            (n, true) =>
                format!("; {n} without a valid check in the window, a failure with --require-data"),
        }
    );
    let _ = writeln!(out);
    let _ = writeln!(out, "| target | availability | p95 | restarts | result |");
    let _ = writeln!(out, "|---|---|---|---|---|");
    for t in &report.targets {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            cell(&t.name),
            show_percent(t.slo.availability.ratio.map(|r| r * 100.0)),
            crate::slo::report::data::show_ms(t.slo.latency.p95_ms),
            t.slo.restarts.count,
            t.result.word()
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "{}", hale_line(&report.hale));
    for t in &report.targets {
        target(&mut out, t);
    }
    out
}

/// When and how a window was declared: in the config, ahead of time, or after the fact.
fn declared(m: &crate::slo::MaintenanceWindow) -> String {
    match (m.created_at, m.retroactive) {
        (None, _) => "config file".to_owned(),
        (Some(at), false) => show_time(at),
        (Some(at), true) => format!("{} (RETROACTIVE)", show_time(at)),
    }
}

fn target(out: &mut String, t: &TargetReport) {
    let _ = writeln!(out);
    let _ = writeln!(out, "## {}: {}", cell(&t.name), t.result.word());
    let _ = writeln!(out);
    let _ = writeln!(out, "| objective | target | measured | result |");
    let _ = writeln!(out, "|---|---|---|---|");
    for (name, goal, measured, status) in objective_lines(&t.slo) {
        let _ = writeln!(
            out,
            "| {name} | {goal} | {measured} | {} |",
            verdict(status)
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "Error budget: {}.", budget_line(&t.slo));
    let _ = writeln!(out);
    let _ = writeln!(out, "### Daily availability");
    let _ = writeln!(out);
    let _ = writeln!(out, "| day (UTC) | checks | availability | p95 |");
    let _ = writeln!(out, "|---|---|---|---|");
    for d in &t.daily {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            d.day,
            d.checks,
            show_percent(d.availability_percent),
            crate::slo::report::data::show_ms(d.p95_ms)
        );
    }
    let excluded: u64 = t.daily.iter().map(|d| d.excluded).sum();
    if excluded > 0 {
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "{excluded} checks inside maintenance windows are not counted."
        );
    }
    if !t.maintenance.is_empty() {
        let _ = writeln!(out);
        let _ = writeln!(out, "### Maintenance windows");
        let _ = writeln!(out);
        let _ = writeln!(out, "| from | until | covers | declared | reason |");
        let _ = writeln!(out, "|---|---|---|---|---|");
        for m in &t.maintenance {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} |",
                show_time(m.starts_at),
                show_time(m.ends_at),
                m.target
                    .as_deref()
                    .map_or_else(|| "every target".to_owned(), cell),
                declared(m),
                cell(&m.reason)
            );
        }
    }
    for r in &t.slo.retroactive_maintenance {
        let _ = writeln!(out);
        let _ = writeln!(out, "**RETROACTIVE**: {}.", cell(&retroactive_line(r)));
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "### Worst hours");
    let _ = writeln!(out);
    if t.worst_hours.is_empty() {
        let _ = writeln!(out, "Every check was up.");
    } else {
        let _ = writeln!(out, "| hour (UTC) | checks | failed | availability |");
        let _ = writeln!(out, "|---|---|---|---|");
        for h in &t.worst_hours {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {:.3}% |",
                show_time(h.hour),
                h.checks,
                h.checks - h.good,
                h.availability_percent
            );
        }
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "### Restarts");
    let _ = writeln!(out);
    if t.restarts.is_empty() && t.heals.is_empty() {
        let _ = writeln!(out, "No restarts and no heal attempts.");
    }
    for r in &t.restarts {
        let _ = writeln!(
            out,
            "- {}: restarted ({}) after {}",
            show_time(r.at),
            restart_cause(&r.cause),
            exit_reason(r.exit_code, r.exit_signal)
        );
    }
    for h in &t.heals {
        let _ = writeln!(
            out,
            "- {}: heal {} ({}, {}){}",
            show_time(h.started_at),
            cell(&h.outcome),
            cell(&h.trigger),
            cell(&h.action),
            h.error
                .as_deref()
                .map(|e| format!(": {}", cell(e)))
                .unwrap_or_default()
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "### Alerts");
    let _ = writeln!(out);
    if t.alerts.is_empty() {
        let _ = writeln!(out, "No alerts fired.");
    } else {
        let _ = writeln!(out, "| rule | level | fired | resolved | summary |");
        let _ = writeln!(out, "|---|---|---|---|---|");
        for a in &t.alerts {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} |",
                cell(&a.rule),
                cell(&a.level),
                show_time(a.fired_at),
                a.resolved_at.map_or_else(|| "firing".to_owned(), show_time),
                cell(&a.summary)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::slo::report::sample::{hostile, report};

    #[test]
    fn hostile_names_and_reasons_cannot_link_break_a_table_or_carry_html() {
        let md = render(&report());
        assert!(!md.contains("<script"), "{md}");
        assert!(!md.contains("[x](http://evil)"), "{md}");
        let shown = crate::markdown::cell(&hostile("summary"));
        assert!(shown.contains("\\[x\\](http://evil)"), "{shown}");
        assert!(md.contains(&format!("| {shown} |")), "{md}");
        for field in [
            "target",
            "rule",
            "level",
            "api-reason",
            "trigger",
            "heal-error",
        ] {
            assert!(
                md.contains(&crate::markdown::cell(&hostile(field))),
                "{field}: {md}"
            );
        }
    }
}
