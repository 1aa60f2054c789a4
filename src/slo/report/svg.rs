//! Inline SVG charts, drawn as text with no script and no external asset: daily availability bars against
//! the target line, p95 latency per day against its target, and the status page's uptime strip.

use std::fmt::Write as _;

use crate::slo::report::html::escape;

pub const GOOD: &str = "#1a7f37";
pub const BAD: &str = "#cf222e";
pub const WARN: &str = "#bf8700";
pub const EMPTY: &str = "#d0d7de";

/// One bar: its label (a day) and value (none: no data).
pub struct Point<'a> {
    pub label: &'a str,
    pub value: Option<f64>,
}

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 180.0;
const LEFT: f64 = 56.0;
const BOTTOM: f64 = 24.0;
const TOP: f64 = 10.0;

fn frame(out: &mut String, title: &str) {
    let _ = write!(
        out,
        r#"<svg viewBox="0 0 {WIDTH} {HEIGHT}" width="100%" role="img" aria-label="{}"><title>{}</title>"#,
        escape(title),
        escape(title)
    );
}

fn y_axis(out: &mut String, lo: f64, hi: f64, unit: &str, digits: usize) {
    let plot = HEIGHT - BOTTOM - TOP;
    for i in 0..=2 {
        let v = lo + (hi - lo) * f64::from(i) / 2.0;
        let y = TOP + plot * (1.0 - f64::from(i) / 2.0);
        let _ = write!(
            out,
            r##"<line x1="{LEFT}" x2="{WIDTH}" y1="{y:.1}" y2="{y:.1}" stroke="#eaeef2"/><text x="{:.1}" y="{:.1}" font-size="10" text-anchor="end" fill="#57606a">{v:.digits$}{}</text>"##,
            LEFT - 4.0,
            y + 3.0,
            escape(unit)
        );
    }
}

/// Bars of `points` on a `lo..hi` scale with a dashed `target` line; `good(v)` picks each bar's colour.
fn bars(
    title: &str,
    points: &[Point<'_>],
    (lo, hi): (f64, f64),
    target: f64,
    unit: &str,
    digits: usize,
    good: impl Fn(f64) -> bool,
) -> String {
    let mut out = String::new();
    frame(&mut out, title);
    y_axis(&mut out, lo, hi, unit, digits);
    let plot = HEIGHT - BOTTOM - TOP;
    let scale = |v: f64| TOP + plot * (1.0 - ((v - lo) / (hi - lo)).clamp(0.0, 1.0));
    let n = points.len().max(1) as f64;
    let slot = (WIDTH - LEFT) / n;
    let bar = (slot * 0.8).max(1.0);
    let label_every = (points.len() / 10).max(1);
    for (i, p) in points.iter().enumerate() {
        let x = LEFT + slot * i as f64 + (slot - bar) / 2.0;
        let (y, colour, text) = match p.value {
            Some(v) => (
                scale(v),
                if good(v) { GOOD } else { BAD },
                format!("{}: {v:.digits$}{unit}", p.label),
            ),
            None => (TOP + plot - 2.0, EMPTY, format!("{}: no data", p.label)),
        };
        let _ = write!(
            out,
            r#"<rect x="{x:.1}" y="{y:.1}" width="{bar:.1}" height="{:.1}" fill="{colour}"><title>{}</title></rect>"#,
            (TOP + plot - y).max(2.0),
            escape(&text)
        );
        if i % label_every == 0 {
            let _ = write!(
                out,
                r##"<text x="{:.1}" y="{:.1}" font-size="10" text-anchor="middle" fill="#57606a">{}</text>"##,
                x + bar / 2.0,
                HEIGHT - 8.0,
                escape(p.label.get(5..).unwrap_or(p.label))
            );
        }
    }
    let ty = scale(target);
    let _ = write!(
        out,
        r##"<line x1="{LEFT}" x2="{WIDTH}" y1="{ty:.1}" y2="{ty:.1}" stroke="#24292f" stroke-width="1.5" stroke-dasharray="6 4"/><text x="{WIDTH}" y="{:.1}" font-size="10" text-anchor="end" fill="#24292f">target {target:.digits$}{}</text></svg>"##,
        ty - 4.0,
        escape(unit)
    );
    out
}

/// Daily availability bars, the axis starting low enough to show the lowest day and the target.
pub fn availability_chart(points: &[Point<'_>], target_percent: f64) -> String {
    let lowest = points
        .iter()
        .filter_map(|p| p.value)
        .fold(target_percent, f64::min);
    let lo = (lowest - (100.0 - lowest) * 0.2).clamp(0.0, 99.0).floor();
    bars(
        "Daily availability against the target",
        points,
        (lo, 100.0),
        target_percent,
        "%",
        if lo >= 99.0 { 2 } else { 1 },
        |v| v >= target_percent,
    )
}

/// p95 latency per day against its target.
pub fn latency_chart(points: &[Point<'_>], target_ms: f64) -> String {
    let highest = points
        .iter()
        .filter_map(|p| p.value)
        .fold(target_ms, f64::max);
    bars(
        "Daily p95 latency against the target",
        points,
        (0.0, (highest * 1.15).ceil()),
        target_ms,
        " ms",
        0,
        |v| v <= target_ms,
    )
}

/// A strip of small bars, one per day (oldest first), coloured by availability against the target.
pub fn uptime_strip(points: &[Point<'_>], target_percent: f64) -> String {
    uptime_strip_labelled(points, target_percent, "daily uptime")
}

/// `uptime_strip` with its own accessible label (`hourly uptime`).
pub fn uptime_strip_labelled(points: &[Point<'_>], target_percent: f64, label: &str) -> String {
    let n = points.len().max(1);
    let (w, h, gap) = (6.0, 28.0, 2.0);
    let width = n as f64 * (w + gap);
    let mut out = format!(
        r#"<svg viewBox="0 0 {width} {h}" width="100%" height="{h}" preserveAspectRatio="none" role="img" aria-label="{}">"#,
        escape(label)
    );
    for (i, p) in points.iter().enumerate() {
        let (colour, text) = match p.value {
            Some(v) if v >= target_percent => (GOOD, format!("{}: {v:.3}%", p.label)),
            Some(v) if v >= 99.0 => (WARN, format!("{}: {v:.3}%", p.label)),
            Some(v) => (BAD, format!("{}: {v:.3}%", p.label)),
            None => (EMPTY, format!("{}: no data", p.label)),
        };
        let _ = write!(
            out,
            r#"<rect x="{:.1}" y="0" width="{w}" height="{h}" rx="1" fill="{colour}"><title>{}</title></rect>"#,
            i as f64 * (w + gap),
            escape(&text)
        );
    }
    out.push_str("</svg>");
    out
}
