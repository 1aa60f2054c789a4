//! The report as one self-contained HTML file: inline CSS and inline SVG charts, no script, no external
//! asset, readable on screen and on paper. Every string from the database or the config is escaped.

use std::fmt::Write as _;

use crate::slo::report::data::{
    budget_line, exit_reason, hale_line, objective_lines, restart_cause, retroactive_line, show_ms,
    show_percent, show_time, verdict, Verdict,
};
use crate::slo::report::svg::{self, Point};
use crate::slo::report::{Report, TargetReport};
use crate::slo::{SloMethod, SloStatus};

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The style sheet the report and the status page share: the system font stack, high contrast, badges that
/// say PASS/FAIL in words as well as colour, and a print layout.
pub const STYLE: &str = r#"
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       color: #1f2328; background: #fff; margin: 0 auto; max-width: 60rem; padding: 1.5rem; line-height: 1.45; }
h1 { font-size: 1.6rem; margin: 0 0 .25rem; }
h2 { font-size: 1.25rem; margin: 2rem 0 .5rem; padding-top: 1rem; border-top: 1px solid #d0d7de; }
h3 { font-size: 1rem; margin: 1.25rem 0 .4rem; }
p.meta { color: #424a53; margin: .2rem 0 1rem; }
table { border-collapse: collapse; width: 100%; margin: .4rem 0 1rem; font-size: .92rem; }
th, td { text-align: left; padding: .3rem .55rem; border-bottom: 1px solid #d0d7de; vertical-align: top; }
th { background: #f6f8fa; font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.badge { display: inline-block; padding: .1rem .55rem; border-radius: 1rem; font-weight: 700; font-size: .85rem;
         color: #fff; letter-spacing: .02em; }
.pass { background: #1a7f37; } .fail { background: #cf222e; } .risk { background: #9a6700; } .nodata { background: #57606a; }
.muted { color: #57606a; }
figure { margin: .5rem 0 1rem; } figcaption { font-size: .85rem; color: #424a53; }
a { color: #0550ae; }
section.target { break-inside: avoid-page; }
@media print { body { max-width: none; padding: 0; } h2 { break-before: page; } a { color: inherit; } }
"#;

/// A badge for an objective's status.
pub fn badge(status: SloStatus) -> String {
    let class = match status {
        SloStatus::Met => "pass",
        SloStatus::AtRisk => "risk",
        SloStatus::Breached => "fail",
        SloStatus::NoData => "nodata",
    };
    format!(r#"<span class="badge {class}">{}</span>"#, verdict(status))
}

fn pass_badge(result: Verdict) -> String {
    format!(
        r#"<span class="badge {}">{}</span>"#,
        result.class(),
        result.word()
    )
}

pub fn render(report: &Report) -> String {
    let mut out = String::new();
    let title = format!("SLO report: {}", report.window.label);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n",
        escape(&title)
    );
    let _ = writeln!(
        out,
        "<header><h1>{} {}</h1><p class=\"meta\">Window {} to {}; computed from {}; generated {}.</p></header>",
        escape(&title),
        pass_badge(report.result),
        escape(&show_time(report.window.from)),
        escape(&show_time(report.window.until)),
        match report.method {
            SloMethod::Rollups => "the hourly rollups",
            SloMethod::Exact => "every raw check (--exact)",
        },
        escape(&show_time(report.generated_at)),
    );
    out.push_str("<main>\n<table><thead><tr><th>target</th><th class=\"num\">availability</th><th class=\"num\">p95</th><th class=\"num\">restarts</th><th>result</th></tr></thead><tbody>\n");
    for t in &report.targets {
        let _ = writeln!(
            out,
            "<tr><td><a href=\"#t-{}\">{}</a></td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
            escape(&anchor(&t.name)),
            escape(&t.name),
            escape(&show_percent(t.slo.availability.ratio.map(|r| r * 100.0))),
            escape(&show_ms(t.slo.latency.p95_ms)),
            t.slo.restarts.count,
            pass_badge(t.result)
        );
    }
    out.push_str("</tbody></table>\n");
    let _ = writeln!(out, "<p>{}</p>", escape(&hale_line(&report.hale)));
    for t in &report.targets {
        target(&mut out, t, report);
    }
    out.push_str("</main>\n</body>\n</html>\n");
    out
}

/// An id made of safe characters only.
fn anchor(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn target(out: &mut String, t: &TargetReport, report: &Report) {
    let _ = writeln!(
        out,
        "<section class=\"target\" id=\"t-{}\"><h2>{} {}</h2>",
        escape(&anchor(&t.name)),
        escape(&t.name),
        pass_badge(t.result)
    );
    out.push_str("<table><thead><tr><th>objective</th><th>target</th><th class=\"num\">measured</th><th>result</th></tr></thead><tbody>\n");
    for (name, goal, measured, status) in objective_lines(&t.slo) {
        let _ = writeln!(
            out,
            "<tr><td>{name}</td><td>{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
            escape(&goal),
            escape(&measured),
            badge(status)
        );
    }
    out.push_str("</tbody></table>\n");
    let _ = writeln!(
        out,
        "<p>Error budget: {}.</p>",
        escape(&budget_line(&t.slo))
    );

    let labels: Vec<String> = t.daily.iter().map(|d| d.day.to_string()).collect();
    let availability: Vec<Point<'_>> = t
        .daily
        .iter()
        .zip(&labels)
        .map(|(d, label)| Point {
            label,
            value: d.availability_percent,
        })
        .collect();
    let latency: Vec<Point<'_>> = t
        .daily
        .iter()
        .zip(&labels)
        .map(|(d, label)| Point {
            label,
            value: d.p95_ms,
        })
        .collect();
    let _ = writeln!(
        out,
        "<h3>Daily availability</h3><figure>{}<figcaption>Bars: availability per UTC day (red below the target); dashed line: the {:.3}% target.</figcaption></figure>",
        svg::availability_chart(&availability, report.objectives.availability_target_percent),
        report.objectives.availability_target_percent
    );
    let _ = writeln!(
        out,
        "<figure>{}<figcaption>Bars: p95 latency per UTC day (red above the target); dashed line: the {} ms target.</figcaption></figure>",
        svg::latency_chart(&latency, report.objectives.p95_latency_target_ms as f64),
        report.objectives.p95_latency_target_ms
    );
    out.push_str("<table><thead><tr><th>day (UTC)</th><th class=\"num\">checks</th><th class=\"num\">availability</th><th class=\"num\">p95</th></tr></thead><tbody>\n");
    for d in &t.daily {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            d.day,
            d.checks,
            escape(&show_percent(d.availability_percent)),
            escape(&show_ms(d.p95_ms))
        );
    }
    out.push_str("</tbody></table>\n");
    let excluded: u64 = t.daily.iter().map(|d| d.excluded).sum();
    if excluded > 0 {
        let _ = writeln!(
            out,
            "<p>{excluded} checks inside maintenance windows are not counted.</p>"
        );
    }
    if !t.maintenance.is_empty() {
        out.push_str("<h3>Maintenance windows</h3>\n<table><thead><tr><th>from</th><th>until</th><th>covers</th><th>declared</th><th>reason</th></tr></thead><tbody>\n");
        for m in &t.maintenance {
            let declared = match (m.created_at, m.retroactive) {
                (None, _) => "config file".to_owned(),
                (Some(at), false) => escape(&show_time(at)),
                (Some(at), true) => format!(
                    "{} <span class=\"badge risk\">RETROACTIVE</span>",
                    escape(&show_time(at))
                ),
            };
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{declared}</td><td>{}</td></tr>",
                escape(&show_time(m.starts_at)),
                escape(&show_time(m.ends_at)),
                escape(m.target.as_deref().unwrap_or("every target")),
                escape(&m.reason)
            );
        }
        out.push_str("</tbody></table>\n");
    }
    for r in &t.slo.retroactive_maintenance {
        let _ = writeln!(
            out,
            "<p class=\"retroactive\"><span class=\"badge risk\">RETROACTIVE</span> {}.</p>",
            escape(&retroactive_line(r))
        );
    }
    out.push_str("<h3>Worst hours</h3>\n");
    if t.worst_hours.is_empty() {
        out.push_str("<p class=\"muted\">Every check was up.</p>\n");
    } else {
        out.push_str("<table><thead><tr><th>hour (UTC)</th><th class=\"num\">checks</th><th class=\"num\">failed</th><th class=\"num\">availability</th></tr></thead><tbody>\n");
        for h in &t.worst_hours {
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{:.3}%</td></tr>",
                escape(&show_time(h.hour)),
                h.checks,
                h.checks - h.good,
                h.availability_percent
            );
        }
        out.push_str("</tbody></table>\n");
    }
    out.push_str("<h3>Restarts and heals</h3>\n");
    if t.restarts.is_empty() && t.heals.is_empty() {
        out.push_str("<p class=\"muted\">No restarts and no heal attempts.</p>\n");
    } else {
        out.push_str("<table><thead><tr><th>when</th><th>what</th><th>why / outcome</th></tr></thead><tbody>\n");
        for r in &t.restarts {
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td>restart ({})</td><td>after {}</td></tr>",
                escape(&show_time(r.at)),
                restart_cause(&r.cause),
                escape(&exit_reason(r.exit_code, r.exit_signal))
            );
        }
        for h in &t.heals {
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td>heal: {} ({})</td><td>{}{}</td></tr>",
                escape(&show_time(h.started_at)),
                escape(&h.action),
                escape(&h.trigger),
                escape(&h.outcome),
                h.error
                    .as_deref()
                    .map(|e| format!(": {}", escape(e)))
                    .unwrap_or_default()
            );
        }
        out.push_str("</tbody></table>\n");
    }
    out.push_str("<h3>Alerts</h3>\n");
    if t.alerts.is_empty() {
        out.push_str("<p class=\"muted\">No alerts fired.</p>\n");
    } else {
        out.push_str("<table><thead><tr><th>rule</th><th>level</th><th>fired</th><th>resolved</th><th>summary</th></tr></thead><tbody>\n");
        for a in &t.alerts {
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&a.rule),
                escape(&a.level),
                escape(&show_time(a.fired_at)),
                escape(&a.resolved_at.map_or_else(|| "firing".to_owned(), show_time)),
                escape(&a.summary)
            );
        }
        out.push_str("</tbody></table>\n");
    }
    out.push_str("</section>\n");
}
