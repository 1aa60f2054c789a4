//! The report as one self-contained HTML file: inline CSS and inline SVG charts, no script, no external
//! asset, readable on screen and on paper. Built with `maud`, which escapes every interpolated string, so
//! text from the database or the config cannot become markup.

use maud::{html, Markup, PreEscaped, DOCTYPE};

use crate::slo::report::data::{
    budget_line, exit_reason, hale_line, objective_lines, restart_cause, retroactive_line, show_ms,
    show_percent, show_time, verdict, Verdict,
};
use crate::slo::report::svg::{self, Point};
use crate::slo::report::{Report, TargetReport};
use crate::slo::{SloMethod, SloStatus};

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

/// One `<style>` element holding `sheets`, one after the other. `<style>` is a raw-text element: entities
/// are not decoded there, so escaped text would break the quoted font names; `PreEscaped` is safe because
/// only this crate's fixed style sheets (`'static` constants, never data) come here.
pub fn style(sheets: &[&'static str]) -> Markup {
    html! { style { @for sheet in sheets { (PreEscaped(sheet)) } } }
}

/// A coloured badge with a word: `class` is one of the style sheet's badge classes.
pub fn badge_span(class: &str, word: &str) -> Markup {
    html! { span class={ "badge " (class) } { (word) } }
}

/// A badge for an objective's status.
pub fn badge(status: SloStatus) -> Markup {
    let class = match status {
        SloStatus::Met => "pass",
        SloStatus::AtRisk => "risk",
        SloStatus::Breached => "fail",
        SloStatus::NoData => "nodata",
    };
    badge_span(class, verdict(status))
}

fn pass_badge(result: Verdict) -> Markup {
    badge_span(result.class(), result.word())
}

/// The whole report as one HTML document.
pub fn render(report: &Report) -> String {
    let title = format!("SLO report: {}", report.window.label);
    let method = match report.method {
        SloMethod::Rollups => "the hourly rollups",
        SloMethod::Exact => "every raw check (--exact)",
    };
    // The newlines keep the output's line layout as it was before maud, for diffs and for people.
    html! {
        (DOCTYPE) "\n"
        html lang="en" {
            "\n"
            head {
                "\n"
                meta charset="utf-8"; "\n"
                meta name="viewport" content="width=device-width, initial-scale=1"; "\n"
                title { (title) } "\n"
                (style(&[STYLE])) "\n"
            }
            "\n"
            body {
                "\n"
                header {
                    h1 { (title) " " (pass_badge(report.result)) }
                    p class="meta" {
                        "Window " (show_time(report.window.from)) " to " (show_time(report.window.until))
                        "; computed from " (method) "; generated " (show_time(report.generated_at)) "."
                    }
                }
                "\n"
                main {
                    "\n"
                    table {
                        thead { tr {
                            th { "target" } th.num { "availability" } th.num { "p95" } th.num { "restarts" }
                            th { "result" }
                        } }
                        tbody {
                            "\n"
                            @for t in &report.targets {
                                tr {
                                    td { a href={ "#t-" (anchor(&t.name)) } { (t.name) } }
                                    td.num { (show_percent(t.slo.availability.ratio.map(|r| r * 100.0))) }
                                    td.num { (show_ms(t.slo.latency.p95_ms)) }
                                    td.num { (t.slo.restarts.count) }
                                    td { (pass_badge(t.result)) }
                                }
                                "\n"
                            }
                        }
                    }
                    "\n"
                    p { (hale_line(&report.hale)) } "\n"
                    @for t in &report.targets {
                        (target(t, report))
                    }
                }
                "\n"
            }
            "\n"
        }
        "\n"
    }
    .into_string()
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

fn target(t: &TargetReport, report: &Report) -> Markup {
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
    let objectives = &report.objectives;
    let excluded: u64 = t.daily.iter().map(|d| d.excluded).sum();
    html! {
        section.target id={ "t-" (anchor(&t.name)) } {
            h2 { (t.name) " " (pass_badge(t.result)) }
            "\n"
            table {
                thead { tr {
                    th { "objective" } th { "target" } th.num { "measured" } th { "result" }
                } }
                tbody {
                    "\n"
                    @for (name, goal, measured, status) in objective_lines(&t.slo) {
                        tr { td { (name) } td { (goal) } td.num { (measured) } td { (badge(status)) } }
                        "\n"
                    }
                }
            }
            "\n"
            p { "Error budget: " (budget_line(&t.slo)) "." } "\n"
            h3 { "Daily availability" }
            figure {
                (svg::availability_chart(&availability, objectives.availability_target_percent))
                figcaption {
                    "Bars: availability per UTC day (red below the target); dashed line: the "
                    (format!("{:.3}", objectives.availability_target_percent)) "% target."
                }
            }
            "\n"
            figure {
                (svg::latency_chart(&latency, objectives.p95_latency_target_ms as f64))
                figcaption {
                    "Bars: p95 latency per UTC day (red above the target); dashed line: the "
                    (objectives.p95_latency_target_ms) " ms target."
                }
            }
            "\n"
            table {
                thead { tr {
                    th { "day (UTC)" } th.num { "checks" } th.num { "availability" } th.num { "p95" }
                } }
                tbody {
                    "\n"
                    @for d in &t.daily {
                        tr {
                            td { (d.day.to_string()) }
                            td.num { (d.checks) }
                            td.num { (show_percent(d.availability_percent)) }
                            td.num { (show_ms(d.p95_ms)) }
                        }
                        "\n"
                    }
                }
            }
            "\n"
            @if excluded > 0 {
                p { (excluded) " checks inside maintenance windows are not counted." } "\n"
            }
            @if !t.maintenance.is_empty() {
                h3 { "Maintenance windows" } "\n"
                table {
                    thead { tr {
                        th { "from" } th { "until" } th { "covers" } th { "declared" } th { "reason" }
                    } }
                    tbody {
                        "\n"
                        @for m in &t.maintenance {
                            tr {
                                td { (show_time(m.starts_at)) }
                                td { (show_time(m.ends_at)) }
                                td { (m.target.as_deref().unwrap_or("every target")) }
                                td {
                                    @match (m.created_at, m.retroactive) {
                                        (None, _) => "config file",
                                        (Some(at), false) => (show_time(at)),
                                        (Some(at), true) => {
                                            (show_time(at)) " " (badge_span("risk", "RETROACTIVE"))
                                        }
                                    }
                                }
                                td { (m.reason) }
                            }
                            "\n"
                        }
                    }
                }
                "\n"
            }
            @for r in &t.slo.retroactive_maintenance {
                p.retroactive { (badge_span("risk", "RETROACTIVE")) " " (retroactive_line(r)) "." } "\n"
            }
            h3 { "Worst hours" } "\n"
            @if t.worst_hours.is_empty() {
                p.muted { "Every check was up." } "\n"
            } @else {
                table {
                    thead { tr {
                        th { "hour (UTC)" } th.num { "checks" } th.num { "failed" } th.num { "availability" }
                    } }
                    tbody {
                        "\n"
                        @for h in &t.worst_hours {
                            tr {
                                td { (show_time(h.hour)) }
                                td.num { (h.checks) }
                                td.num { (h.checks - h.good) }
                                td.num { (format!("{:.3}%", h.availability_percent)) }
                            }
                            "\n"
                        }
                    }
                }
                "\n"
            }
            h3 { "Restarts and heals" } "\n"
            @if t.restarts.is_empty() && t.heals.is_empty() {
                p.muted { "No restarts and no heal attempts." } "\n"
            } @else {
                table {
                    thead { tr { th { "when" } th { "what" } th { "why / outcome" } } }
                    tbody {
                        "\n"
                        @for r in &t.restarts {
                            tr {
                                td { (show_time(r.at)) }
                                td { "restart (" (restart_cause(&r.cause)) ")" }
                                td { "after " (exit_reason(r.exit_code, r.exit_signal)) }
                            }
                            "\n"
                        }
                        @for h in &t.heals {
                            tr {
                                td { (show_time(h.started_at)) }
                                td { "heal: " (h.action) " (" (h.trigger) ")" }
                                td {
                                    (h.outcome)
                                    @if let Some(e) = &h.error { ": " (e) }
                                }
                            }
                            "\n"
                        }
                    }
                }
                "\n"
            }
            h3 { "Alerts" } "\n"
            @if t.alerts.is_empty() {
                p.muted { "No alerts fired." } "\n"
            } @else {
                table {
                    thead { tr {
                        th { "rule" } th { "level" } th { "fired" } th { "resolved" } th { "summary" }
                    } }
                    tbody {
                        "\n"
                        @for a in &t.alerts {
                            tr {
                                td { (a.rule) }
                                td { (a.level) }
                                td { (show_time(a.fired_at)) }
                                td { (a.resolved_at.map_or_else(|| "firing".to_owned(), show_time)) }
                                td { (a.summary) }
                            }
                            "\n"
                        }
                    }
                }
                "\n"
            }
        }
        "\n"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::slo::report::sample::{hostile, report};

    /// What an escaping renderer must write for `text`, worked out independently of maud. maud leaves `'`
    /// as it is, which is safe: it always quotes attribute values with `"`.
    fn escaped(text: &str) -> String {
        text.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    }

    #[test]
    fn every_string_from_the_database_or_the_config_comes_out_escaped() {
        let html = render(&report());
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("alert(\"x\")"), "{html}");
        // Each field, everywhere it is shown: the title and heading (window label), the summary table and
        // the section (target name), maintenance, heals, alerts, the retroactive note.
        for (field, times) in [
            ("window", 2),
            ("target", 2),
            ("config-reason", 1),
            ("api-reason", 1),
            ("covered", 2),
            ("retro-reason", 1),
            ("trigger", 1),
            ("action", 1),
            ("outcome", 1),
            ("heal-error", 1),
            ("rule", 1),
            ("level", 1),
            ("summary", 1),
        ] {
            let shown = escaped(&hostile(field));
            assert_eq!(html.matches(&shown).count(), times, "{field}: {html}");
        }
        // The anchor and its link hold safe characters only.
        assert!(
            html.contains(r##"href="#t-target_script_alert__x____script___amp__x__http___evil_""##)
        );
        assert!(html.contains(r#"id="t-target_script_alert__x____script___amp__x__http___evil_""#));
    }

    #[test]
    fn the_style_sheet_is_written_as_it_is() {
        let html = render(&report());
        assert!(html.contains(&format!("<style>{STYLE}</style>")), "{html}");
        assert!(html.contains(r#""Segoe UI""#));
    }
}
