//! The status page's markup: a function from the gathered `StatusPage` to HTML, built with `maud`, which
//! escapes every interpolated string (target names, errors, alert summaries, labels, workflow and step
//! ids), so nothing from the
//! config, the monitor or the database can become markup. No script; the one inline `<style>` is what
//! `STATUS_PAGE_CSP` allows.

use maud::{html, Markup, DOCTYPE};

use crate::answers::status_page::{
    page_count, RunsInProgress, StatusPage, TargetLine, ALERTS_SHOWN, ATTENTION_SHOWN,
    FULL_PAGE_UP_TO, HOURLY_UNTIL_DAYS, LOADING_REFRESH_S, PAGE_SIZE, UPTIME_DAYS, UPTIME_HOURS,
};
use crate::records::Outcome;
use crate::slo::report::data::{retroactive_line, show_ms, show_percent, show_time};
use crate::slo::report::html::{badge_span, style, STYLE};
use crate::slo::report::svg::{self, Point};
use crate::slo::SloStatus;

/// The page's own rules, after the shared style sheet.
const PAGE_STYLE: &str =
    "\n.strip { margin: .2rem 0 .1rem; } .score { font-size: 2.4rem; font-weight: 700; }\n\
     .pager { display: flex; gap: 1rem; align-items: baseline; } svg.compact { display: block; max-width: 100%; height: auto; }\n\
     table.targets .badge { white-space: nowrap; } table.targets td:last-child { min-width: 12rem; }\n\
     table.targets .muted { font-size: .8rem; }";

fn state_word(outcome: Option<Outcome>) -> (&'static str, &'static str) {
    match outcome {
        Some(Outcome::Up) => ("up", "pass"),
        Some(Outcome::CircuitOpen) => ("circuit open", "fail"),
        Some(Outcome::Down) => ("down", "fail"),
        Some(Outcome::Timeout) => ("timeout", "fail"),
        Some(Outcome::Error) => ("error", "fail"),
        None => ("not checked yet", "nodata"),
    }
}

/// The SLO status as a word and a badge class.
fn slo_word(status: Option<SloStatus>) -> (&'static str, &'static str) {
    match status {
        Some(SloStatus::Met) => ("met", "pass"),
        Some(SloStatus::AtRisk) => ("at risk", "risk"),
        Some(SloStatus::Breached) => ("breached", "fail"),
        Some(SloStatus::NoData) => ("no data", "nodata"),
        None => ("unknown", "nodata"),
    }
}

/// Page `number` of the status page as HTML: the whole page (`render`) for a fleet of up to
/// `FULL_PAGE_UP_TO` targets, else `render_paged`.
pub fn render_view(page: &StatusPage, number: u32) -> String {
    if page.targets.len() <= FULL_PAGE_UP_TO {
        render(page)
    } else {
        render_paged(page, number)
    }
}

/// How often the page refreshes itself: every 30 s, every `LOADING_REFRESH_S` while its history loads.
fn refresh_s(page: &StatusPage) -> u32 {
    if page.read_at.is_some() {
        30
    } else {
        LOADING_REFRESH_S
    }
}

/// The page's `head`: the same for every page (but for the refresh while the history loads).
fn head(page: &StatusPage) -> Markup {
    html! {
        head {
            "\n"
            meta charset="utf-8"; "\n"
            meta name="viewport" content="width=device-width, initial-scale=1"; "\n"
            meta http-equiv="refresh" content=(refresh_s(page)); "\n"
            title { "hale status" } "\n"
            (style(&[STYLE, PAGE_STYLE])) "\n"
        }
    }
}

/// The title with the fleet's badge, and the health score with the count of targets up.
fn headline(page: &StatusPage) -> Markup {
    let all_up = page.up == page.targets.len();
    html! {
        h1 {
            "hale status "
            @if all_up { (badge_span("pass", "ALL UP")) } @else { (badge_span("fail", "DEGRADED")) }
        }
        p.meta {
            "Health score " span.score #score { (format!("{:.1}", page.score)) } " / 100; "
            (thousands(page.up)) " of " (thousands(page.targets.len())) " targets up. Updated "
            (show_time(page.generated_at)) "; this page refreshes every " (refresh_s(page)) " s."
        }
    }
}

/// The whole page as HTML: every target's section with its bars.
pub fn render(page: &StatusPage) -> String {
    // The newlines keep the output's line layout as it was before maud, for diffs and for people.
    html! {
        (DOCTYPE) "\n"
        html lang="en" {
            "\n"
            (head(page))
            "\n"
            body {
                "\n"
                header {
                    (headline(page))
                    p.meta {
                        @if let Some(as_of) = page.slo_as_of {
                            "SLOs count the checks made before " (show_time(as_of)) "; "
                        }
                        @if let Some(read_at) = page.read_at {
                            "uptime, p95, restarts and alerts read " (show_time(read_at)) "."
                        } @else {
                            "uptime history, restarts and alerts loading."
                        }
                    }
                    p.meta {
                        a href="/docs/" { "API documentation" } " · " a href="/metrics" { "Prometheus metrics" }
                    }
                }
                "\n"
                main {
                    "\n"
                    @for note in &page.notes {
                        p.muted { (note) } "\n"
                    }
                    h2 { "Targets" } "\n"
                    @if page.targets.is_empty() {
                        p.muted { "No targets are configured." } "\n"
                    }
                    @for t in &page.targets {
                        (target(page, t)) "\n"
                    }
                    h2 { "Active alerts" } "\n"
                    @if page.read_at.is_none() {
                        (alerts_loading()) "\n"
                    } @else if page.alerts.is_empty() {
                        p.muted { "No alert is firing." } "\n"
                    } @else {
                        table {
                            thead { tr {
                                th { "target" } th { "rule" } th { "level" } th { "since" } th { "summary" }
                            } }
                            tbody {
                                "\n"
                                @for a in &page.alerts {
                                    tr {
                                        td { (a.target) }
                                        td { (a.rule) }
                                        td { (a.level.as_str()) }
                                        td { (show_time(a.fired_at)) }
                                        td { (a.summary) }
                                    }
                                    "\n"
                                }
                            }
                        }
                        "\n"
                    }
                    @if let Some(runs) = &page.runs {
                        (runs_section(runs)) "\n"
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

/// "Workflow runs in progress": the runs running or waiting, newest first.
fn runs_section(runs: &RunsInProgress) -> Markup {
    html! {
        h2 #runs { "Workflow runs in progress" } "\n"
        @if runs.runs.is_empty() {
            p.muted { "No workflow run is running or waiting." }
        } @else {
            table.runs {
                thead { tr {
                    th { "run" } th { "workflow" } th { "state" } th { "step" } th { "started" }
                } }
                tbody {
                    "\n"
                    @for r in &runs.runs {
                        tr {
                            td { (r.id) }
                            td { (r.workflow) }
                            td {
                                (r.state.as_str())
                                @if let Some(reason) = r.wait_reason {
                                    " for " (reason.as_str())
                                    @if let Some(wake) = r.wake_at {
                                        @if reason.as_str() == "approval" { ", expires " } @else { " until " }
                                        (show_time(wake))
                                    }
                                }
                            }
                            td { (r.step.as_deref().unwrap_or("-")) }
                            td { (r.started_at.map_or_else(|| "not yet".to_owned(), show_time)) }
                        }
                        "\n"
                    }
                }
            }
            @if runs.more {
                "\n"
                p.more { "and more: the Boss API's " code { "GET /status" } " counts them." }
            }
        }
    }
}

/// `n` with thousands separators: 1,000.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Whether a target is listed under "needs attention": not up (checked and failing), or its SLO at risk
/// or breached.
fn needs_attention(t: &TargetLine) -> bool {
    let failing = t.outcome.is_some_and(|o| o != Outcome::Up);
    let slo = t
        .slo
        .as_ref()
        .is_some_and(|s| matches!(s.status, SloStatus::AtRisk | SloStatus::Breached));
    failing || slo
}

/// Page `number` of a large fleet: the summary (score, targets by state, SLOs by status), the targets
/// that need attention (the first `ATTENTION_SHOWN`), the page's `PAGE_SIZE` targets as table rows with
/// a compact strip, links to the pages before and after, and the firing alerts (the first
/// `ALERTS_SHOWN`). A page number out of range shows the last page.
pub fn render_paged(page: &StatusPage, number: u32) -> String {
    let total = page.targets.len();
    let pages = page_count(total);
    let number = number.clamp(1, pages);
    let first = (number as usize - 1) * PAGE_SIZE;
    let shown = &page.targets[first.min(total)..(first + PAGE_SIZE).min(total)];
    let mut states: Vec<(&str, &str, usize)> = Vec::new();
    for t in &page.targets {
        let (word, class) = state_word(t.outcome);
        match states.iter_mut().find(|(w, _, _)| *w == word) {
            Some(entry) => entry.2 += 1,
            None => states.push((word, class, 1)),
        }
    }
    states.sort_by_key(|(word, _, _)| *word != "up");
    let mut slo_counts = [0usize; 4];
    for t in &page.targets {
        match t.slo.as_ref().map(|s| s.status) {
            Some(SloStatus::Met) => slo_counts[0] += 1,
            Some(SloStatus::AtRisk) => slo_counts[1] += 1,
            Some(SloStatus::Breached) => slo_counts[2] += 1,
            Some(SloStatus::NoData) | None => slo_counts[3] += 1,
        }
    }
    let attention: Vec<&TargetLine> = page.targets.iter().filter(|t| needs_attention(t)).collect();
    let pager = html! {
        nav.pager {
            @if number > 1 {
                a href={ "/?page=" (number - 1) } rel="prev" { "← previous" }
            } @else { span.muted { "← previous" } }
            span { "targets " (thousands(first + 1)) "-" (thousands(first + shown.len())) " of " (thousands(total))
                " (page " (number) " of " (pages) ")" }
            @if number < pages {
                a href={ "/?page=" (number + 1) } rel="next" { "next →" }
            } @else { span.muted { "next →" } }
        }
    };
    html! {
        (DOCTYPE) "\n"
        html lang="en" {
            "\n"
            (head(page))
            "\n"
            body {
                "\n"
                header {
                    (headline(page))
                    p.meta #states {
                        "Targets: "
                        @for (i, (word, class, n)) in states.iter().enumerate() {
                            @if i > 0 { " · " }
                            (badge_span(class, word)) " " (thousands(*n))
                        }
                    }
                    p.meta #slos {
                        "SLOs over " (page.window_days) " days: "
                        (badge_span("pass", "met")) " " (thousands(slo_counts[0])) " · "
                        (badge_span("risk", "at risk")) " " (thousands(slo_counts[1])) " · "
                        (badge_span("fail", "breached")) " " (thousands(slo_counts[2])) " · "
                        (badge_span("nodata", "no data")) " " (thousands(slo_counts[3]))
                    }
                    p.meta {
                        @if let Some(as_of) = page.slo_as_of {
                            "SLOs count the checks made before " (show_time(as_of)) "; "
                        }
                        @if let Some(read_at) = page.read_at {
                            "uptime, p95, restarts and alerts read " (show_time(read_at)) "."
                        } @else {
                            "uptime history, restarts and alerts loading."
                        }
                    }
                    p.meta {
                        a href="/docs/" { "API documentation" } " · " a href="/metrics" { "Prometheus metrics" }
                        " · " a href="/health/all" { "every target's state (JSON)" }
                        " · " a href="/slo" { "SLOs (JSON)" }
                    }
                }
                "\n"
                main {
                    "\n"
                    @for note in &page.notes {
                        p.muted { (note) } "\n"
                    }
                    h2 #attention { "Needs attention (" (thousands(attention.len())) ")" } "\n"
                    @if attention.is_empty() {
                        p.muted { "Every target is up and no SLO is at risk or breached." } "\n"
                    } @else {
                        (rows(page, attention.iter().take(ATTENTION_SHOWN).copied())) "\n"
                        @if attention.len() > ATTENTION_SHOWN {
                            p.more {
                                "and " (thousands(attention.len() - ATTENTION_SHOWN)) " more: every target's state is at "
                                a href="/health/all" { "/health/all" } " and its SLO at " a href="/slo" { "/slo" }
                                "; the pages below list them all."
                            } "\n"
                        }
                    }
                    h2 #targets { "Targets " (thousands(first + 1)) "-" (thousands(first + shown.len())) " of " (thousands(total)) } "\n"
                    (pager) "\n"
                    (rows(page, shown.iter())) "\n"
                    (pager) "\n"
                    h2 { "Active alerts" } "\n"
                    @if page.read_at.is_none() {
                        (alerts_loading()) "\n"
                    } @else if page.alerts.is_empty() {
                        p.muted { "No alert is firing." } "\n"
                    } @else {
                        (alerts_table(page.alerts.iter().take(ALERTS_SHOWN))) "\n"
                        @if page.alerts.len() > ALERTS_SHOWN {
                            p.more {
                                "and " (thousands(page.alerts.len() - ALERTS_SHOWN)) " more at "
                                a href="/alerts/active" { "/alerts/active" } "."
                            } "\n"
                        }
                    }
                    @if let Some(runs) = &page.runs {
                        (runs_section(runs)) "\n"
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

/// Targets as table rows: state, SLO, availability, error budget left, p95, uptime and a compact strip.
fn rows<'a>(page: &StatusPage, targets: impl Iterator<Item = &'a TargetLine>) -> Markup {
    let span = if page.hourly {
        format!("{UPTIME_HOURS} h")
    } else {
        format!("{UPTIME_DAYS} d")
    };
    html! {
        table.targets {
            thead { tr {
                th { "target" } th { "state" } th { "SLO" } th { "availability" } th { "budget left" }
                th { "p95" } th { "uptime " (span) } th { "bars" }
            } }
            tbody {
                "\n"
                @for t in targets {
                    (row(page, t)) "\n"
                }
            }
        }
    }
}

/// A target's SLO as the page shows it: the status badge, availability and budget left.
struct SloCells {
    word: &'static str,
    class: &'static str,
    availability: String,
    budget: String,
}

fn slo_cells(t: &TargetLine) -> SloCells {
    let (word, class) = slo_word(t.slo.as_ref().map(|s| s.status));
    SloCells {
        word,
        class,
        availability: show_percent(
            t.slo
                .as_ref()
                .and_then(|s| s.availability.ratio)
                .map(|r| r * 100.0),
        ),
        budget: t
            .slo
            .as_ref()
            .and_then(|s| s.error_budget.remaining_ratio)
            .map_or_else(|| "-".to_owned(), |r| format!("{:.1}%", r * 100.0)),
    }
}

fn row(page: &StatusPage, t: &TargetLine) -> Markup {
    let t = &*page.with_bars(t);
    let (word, class) = state_word(t.outcome);
    let SloCells {
        word: slo_word,
        class: slo_class,
        availability,
        budget,
    } = slo_cells(t);
    let (values, uptime, summary): (Vec<Option<f64>>, Option<f64>, String) = if page.hourly {
        let values: Vec<Option<f64>> = t.hours.iter().map(|(_, v)| *v).collect();
        let known: Vec<f64> = values.iter().flatten().copied().collect();
        let uptime = (!known.is_empty()).then(|| known.iter().sum::<f64>() / known.len() as f64);
        (
            values,
            uptime,
            format!("hourly uptime, the last {UPTIME_HOURS} hours"),
        )
    } else {
        let values: Vec<Option<f64>> = t.days.iter().map(|(_, v)| *v).collect();
        (
            values,
            t.uptime_percent,
            format!("daily uptime, the last {UPTIME_DAYS} days"),
        )
    };
    let below = values
        .iter()
        .flatten()
        .filter(|v| **v < page.availability_target_percent)
        .count();
    let summary = format!("{summary}: {below} below the target");
    let error = t
        .error
        .as_deref()
        .filter(|_| t.outcome != Some(Outcome::Up));
    html! {
        tr {
            td { span.name { (t.name) }
                @if let Some(e) = error { br; span.muted { (e) } }
                @for r in t.slo.iter().flat_map(|s| &s.retroactive_maintenance) {
                    br; (badge_span("risk", "RETROACTIVE MAINTENANCE")) " " (retroactive_line(r))
                }
            }
            td { (badge_span(class, word)) }
            td { (badge_span(slo_class, slo_word)) }
            td { (availability) }
            td.budget { (budget) }
            td { (show_ms(t.p95_ms)) }
            td { (show_percent(uptime)) }
            td {
                @if page.read_at.is_some() {
                    (svg::uptime_strip_compact(&values, page.availability_target_percent, &summary))
                } @else {
                    span.muted { "loading" }
                }
            }
        }
    }
}

/// In place of the alerts while the page's reads load.
fn alerts_loading() -> Markup {
    html! {
        p.muted { "The firing alerts are still being read; " a href="/alerts/active" { "/alerts/active" } " lists them." }
    }
}

fn alerts_table<'a>(alerts: impl Iterator<Item = &'a crate::store::alerts::StoredAlert>) -> Markup {
    html! {
        table {
            thead { tr {
                th { "target" } th { "rule" } th { "level" } th { "since" } th { "summary" }
            } }
            tbody {
                "\n"
                @for a in alerts {
                    tr {
                        td { (a.target) }
                        td { (a.rule) }
                        td { (a.level.as_str()) }
                        td { (show_time(a.fired_at)) }
                        td { (a.summary) }
                    }
                    "\n"
                }
            }
        }
    }
}

/// One target's section.
fn target(page: &StatusPage, t: &TargetLine) -> Markup {
    let t = &*page.with_bars(t);
    let (word, class) = state_word(t.outcome);
    let labels: Vec<String> = if page.hourly {
        t.hours.iter().map(|(label, _)| label.clone()).collect()
    } else {
        t.days.iter().map(|(d, _)| d.to_string()).collect()
    };
    let values: Vec<Option<f64>> = if page.hourly {
        t.hours.iter().map(|(_, v)| *v).collect()
    } else {
        t.days.iter().map(|(_, v)| *v).collect()
    };
    let points: Vec<Point<'_>> = values
        .iter()
        .zip(&labels)
        .map(|(v, label)| Point { label, value: *v })
        .collect();
    let SloCells {
        word: slo_word,
        class: slo_class,
        availability,
        budget,
    } = slo_cells(t);
    let error = t
        .error
        .as_deref()
        .filter(|_| t.outcome != Some(Outcome::Up));
    html! {
        section.target {
            h3 {
                span.name { (t.name) } " " (badge_span(class, word)) " "
                (badge_span(slo_class, &format!("SLO {slo_word}")))
            }
            p.meta {
                "SLO over " (page.window_days) " days: " span.slo-status { (slo_word) }
                "; availability " (availability) " (target "
                (format!("{:.3}", page.availability_target_percent)) "%); error budget left "
                span.budget { (budget) } "."
            }
            @for r in t.slo.iter().flat_map(|s| &s.retroactive_maintenance) {
                p.retroactive { (badge_span("risk", "RETROACTIVE MAINTENANCE")) " " (retroactive_line(r)) "." }
            }
            p.meta {
                "Last check "
                @match t.checked_at { Some(at) => (show_time(at)), None => "none yet" }
                @if let Some(ms) = t.latency_ms { (format!(" in {ms:.1} ms")) }
                @if let Some(e) = error { ": " (e) }
                ". " (UPTIME_DAYS) "-day uptime " (show_percent(t.uptime_percent)) "; p95 over "
                (page.window_days) " days " (show_ms(t.p95_ms)) " (target " (page.p95_target_ms)
                " ms); restarts this week: "
                @if page.read_at.is_some() { (t.restarts_week) } @else { "-" }
                "."
            }
            @if page.read_at.is_none() {
                p.muted { "uptime history loading" }
            } @else if page.hourly {
                div.strip {
                    (svg::uptime_strip_labelled(&points, page.availability_target_percent, "hourly uptime"))
                }
                p.muted {
                    "hourly: " (UPTIME_HOURS) " hours ago · this hour (less than " (HOURLY_UNTIL_DAYS)
                    " days of history)"
                }
            } @else {
                div.strip { (svg::uptime_strip(&points, page.availability_target_percent)) }
                p.muted { (UPTIME_DAYS) " days ago · today" }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;

    use super::*;
    use crate::records::{AlertLevel, AlertState};
    use crate::services::health_proxy::status_page::STATUS_PAGE_CSP;
    use crate::slo::report::sample::{at, hostile, target_slo};
    use crate::store::alerts::StoredAlert;

    /// A status page: one hostile target down (daily bars), a second never checked, a note and an alert.
    fn status_page(hourly: bool) -> StatusPage {
        let name = hostile("target");
        let days = (0..3)
            .map(|i| {
                (
                    NaiveDate::from_ymd_opt(2026, 11, 24 + i).unwrap_or_default(),
                    (i != 1).then_some(99.0 + f64::from(i) / 2.0),
                )
            })
            .collect::<Vec<_>>();
        let hours = vec![
            (hostile("hour-label"), Some(100.0)),
            ("2026-11-26 11:00 UTC".to_owned(), None),
            ("2026-11-26 12:00 UTC".to_owned(), Some(50.0)),
        ];
        StatusPage {
            generated_at: at(12),
            slo_as_of: Some(at(11)),
            read_at: Some(at(12)),
            score: 50.0,
            up: 0,
            targets: vec![
                TargetLine {
                    name: name.clone(),
                    outcome: Some(Outcome::Down),
                    checked_at: Some(at(12)),
                    latency_ms: Some(12.5),
                    error: Some(hostile("probe-error")),
                    days: days.clone(),
                    hours: hours.clone(),
                    uptime_percent: Some(99.25),
                    slo: Some(target_slo(&name)),
                    p95_ms: Some(48.7),
                    restarts_week: 1,
                },
                TargetLine {
                    name: "quiet".to_owned(),
                    outcome: None,
                    checked_at: None,
                    latency_ms: None,
                    error: None,
                    days,
                    hours,
                    uptime_percent: None,
                    slo: None,
                    p95_ms: None,
                    restarts_week: 0,
                },
            ],
            alerts: vec![StoredAlert {
                id: 1,
                rule: hostile("rule"),
                target: name,
                level: AlertLevel::Critical,
                state: AlertState::Firing,
                summary: hostile("summary"),
                fired_at: at(11),
                last_notified_at: Some(at(11)),
                resolved_at: None,
                suppressed: 0,
            }],
            availability_target_percent: 99.5,
            p95_target_ms: 200,
            window_days: 7,
            hourly,
            runs: None,
            notes: vec![hostile("note")],
            bars: crate::answers::status_page::Bars::default(),
        }
    }

    /// What an escaping renderer must write for `text`, worked out independently of maud. maud leaves `'`
    /// as it is, which is safe: it always quotes attribute values with `"`.
    fn escaped(text: &str) -> String {
        text.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    }

    #[test]
    fn every_string_from_the_config_the_monitor_or_the_database_comes_out_escaped() {
        for hourly in [false, true] {
            let html = render(&status_page(hourly));
            assert!(!html.contains("<script"), "{html}");
            assert!(!html.contains("alert(\"x\")"), "{html}");
            // The target in its heading and in the alerts table; the rest once each.
            for (field, times) in [
                ("target", 2),
                ("note", 1),
                ("probe-error", 1),
                ("covered", 1),
                ("retro-reason", 1),
                ("rule", 1),
                ("summary", 1),
            ] {
                let shown = escaped(&hostile(field));
                assert_eq!(html.matches(&shown).count(), times, "{field}: {html}");
            }
            // The hourly bars' labels are in each target's strip, as SVG titles.
            let label = format!(
                "<title>{}: 100.000%</title>",
                escaped(&hostile("hour-label"))
            );
            assert_eq!(
                html.matches(&label).count(),
                if hourly { 2 } else { 0 },
                "{html}"
            );
        }
    }

    #[test]
    fn workflow_runs_in_progress_show_only_with_workflows_escaped_on_both_layouts() {
        use crate::answers::status_page::{RunLine, RunsInProgress};
        use crate::records::{RunState, WaitReason};
        let mut page = status_page(false);
        assert!(!render(&page).contains("Workflow runs in progress"));
        page.runs = Some(RunsInProgress::default());
        assert!(render(&page).contains("No workflow run is running or waiting."));
        page.runs = Some(RunsInProgress {
            runs: vec![
                RunLine {
                    id: 17,
                    workflow: hostile("workflow"),
                    state: RunState::Waiting,
                    wait_reason: Some(WaitReason::Approval),
                    wake_at: Some(at(18)),
                    step: Some(hostile("step")),
                    started_at: Some(at(11)),
                },
                RunLine {
                    id: 16,
                    workflow: "nap".to_owned(),
                    state: RunState::Running,
                    wait_reason: None,
                    wake_at: None,
                    step: None,
                    started_at: None,
                },
            ],
            more: true,
        });
        for html in [render(&page), render_paged(&page, 1)] {
            assert!(html.contains("Workflow runs in progress"), "{html}");
            assert!(
                html.contains(&format!(
                    "<td>waiting for approval, expires {}</td>",
                    show_time(at(18))
                )),
                "{html}"
            );
            assert!(
                html.contains("<td>running</td><td>-</td><td>not yet</td>"),
                "{html}"
            );
            assert!(html.contains("and more"), "{html}");
            for field in ["workflow", "step"] {
                assert_eq!(html.matches(&escaped(&hostile(field))).count(), 1, "{html}");
            }
            assert!(!html.contains("<script"), "{html}");
        }
    }

    #[test]
    fn the_page_has_no_script_and_only_the_inline_style_the_policy_allows() {
        let html = render(&status_page(false));
        assert!(STATUS_PAGE_CSP.contains("style-src 'unsafe-inline'"));
        assert!(!STATUS_PAGE_CSP.contains("script-src"));
        assert_eq!(html.matches("<style>").count(), 1, "{html}");
        assert!(
            html.contains(&format!("<style>{STYLE}{PAGE_STYLE}</style>")),
            "{html}"
        );
        assert!(!html.contains(" style="), "{html}");
    }

    #[test]
    fn a_large_fleet_is_paged_escaped_and_counted() {
        for hourly in [false, true] {
            let mut page = status_page(hourly);
            let first = page.targets[0].clone();
            page.targets = (0..120).map(|_| first.clone()).collect();
            page.targets[119].name = "last".to_owned();
            page.targets[119].outcome = Some(Outcome::Up);
            page.targets[119].slo = None;
            let html = render_view(&page, 3);
            assert!(!html.contains("<script"), "{html}");
            assert!(!html.contains(" style="), "{html}");
            assert!(html.contains("Targets 101-120 of 120"), "{html}");
            assert!(html.contains(r#"<a href="/?page=2" rel="prev">"#), "{html}");
            assert!(!html.contains(r#"rel="next""#), "{html}");
            assert!(html.contains("Needs attention (119)"), "{html}");
            assert!(html.contains("and 94 more"), "{html}");
            assert!(
                html.contains(r#"<span class="badge fail">down</span> 119"#),
                "{html}"
            );
            assert!(
                html.contains(r#"<span class="badge fail">breached</span> 119"#),
                "{html}"
            );
            // 25 needing attention and the page's 20, each with its name escaped.
            let name = escaped(&hostile("target"));
            assert_eq!(
                html.matches(&format!(r#"<span class="name">{name}</span>"#))
                    .count(),
                25 + 19,
                "{html}"
            );
            assert!(html.contains(r#"<span class="name">last</span>"#));
            assert_eq!(html.matches("<svg").count(), 45, "{html}");
            assert!(html.contains(&escaped(&hostile("probe-error"))));
            assert!(html.contains(&escaped(&hostile("summary"))));
            // A fleet this size with page 1 asked for: the first 50.
            assert!(render_view(&page, 1).contains("Targets 1-50 of 120"));
        }
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(thousands(999), "999");
    }

    #[test]
    fn the_state_and_slo_badges_say_what_they_show() {
        let html = render(&status_page(false));
        assert!(
            html.contains(r#"<span class="badge fail">DEGRADED</span>"#),
            "{html}"
        );
        assert!(html.contains(
            r#"<span class="badge fail">down</span> <span class="badge fail">SLO breached</span>"#
        ));
        assert!(html.contains(r#"<span class="badge nodata">not checked yet</span> <span class="badge nodata">SLO unknown</span>"#));
        assert!(
            html.contains("Last check none yet. 90-day uptime -;"),
            "{html}"
        );
    }

    #[test]
    fn while_the_history_loads_the_page_shows_the_current_states_and_says_so() {
        for targets in [2, 120] {
            let mut page = status_page(false);
            let first = page.targets[0].clone();
            page.targets = (0..targets).map(|_| first.clone()).collect();
            page.read_at = None;
            page.alerts.clear();
            page.notes = vec![crate::answers::status_page::HISTORY_LOADING_NOTE.to_owned()];
            let html = render_view(&page, 1);
            assert!(
                html.contains(r#"<meta http-equiv="refresh" content="5">"#),
                "{html}"
            );
            assert!(html.contains("this page refreshes every 5 s."), "{html}");
            assert!(
                html.contains("still being read from the database"),
                "{html}"
            );
            assert!(html.contains("uptime history, restarts and alerts loading."));
            // The current state is there; no bars, no "no alert", no restart count made up.
            assert!(
                html.contains(r#"<span class="badge fail">down</span>"#),
                "{html}"
            );
            assert!(!html.contains("<svg"), "{html}");
            assert!(!html.contains("No alert is firing."), "{html}");
            assert!(
                html.contains("The firing alerts are still being read"),
                "{html}"
            );
            if targets == 2 {
                assert!(html.contains("restarts this week: -."), "{html}");
                assert!(html.contains("uptime history loading"), "{html}");
            }
            // Once read, the usual page.
            page.read_at = Some(at(12));
            let html = render_view(&page, 1);
            assert!(
                html.contains(r#"content="30""#) && html.contains("<svg"),
                "{html}"
            );
        }
    }
}
