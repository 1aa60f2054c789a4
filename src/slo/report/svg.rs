//! Inline SVG charts, drawn with `maud` (every label escaped) with no script and no external asset: daily
//! availability bars against the target line, p95 latency per day against its target, and the status
//! page's uptime strip. Numbers are formatted here, so the attributes hold only digits and fixed words.

use maud::{html, Markup};

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

/// `{v:.1}`: the coordinates' one format.
fn at(v: f64) -> String {
    format!("{v:.1}")
}

fn y_axis(lo: f64, hi: f64, unit: &str, digits: usize) -> Markup {
    let plot = HEIGHT - BOTTOM - TOP;
    html! {
        @for i in 0..=2 {
            @let v = lo + (hi - lo) * f64::from(i) / 2.0;
            @let y = TOP + plot * (1.0 - f64::from(i) / 2.0);
            line x1=(LEFT.to_string()) x2=(WIDTH.to_string()) y1=(at(y)) y2=(at(y)) stroke="#eaeef2" {}
            text x=(at(LEFT - 4.0)) y=(at(y + 3.0)) font-size="10" text-anchor="end" fill="#57606a" {
                (format!("{v:.digits$}")) (unit)
            }
        }
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
) -> Markup {
    let plot = HEIGHT - BOTTOM - TOP;
    let scale = |v: f64| TOP + plot * (1.0 - ((v - lo) / (hi - lo)).clamp(0.0, 1.0));
    let n = points.len().max(1) as f64;
    let slot = (WIDTH - LEFT) / n;
    let bar = (slot * 0.8).max(1.0);
    let label_every = (points.len() / 10).max(1);
    let ty = scale(target);
    html! {
        svg viewBox=(format!("0 0 {WIDTH} {HEIGHT}")) width="100%" role="img" aria-label=(title) {
            title { (title) }
            (y_axis(lo, hi, unit, digits))
            @for (i, p) in points.iter().enumerate() {
                @let x = LEFT + slot * i as f64 + (slot - bar) / 2.0;
                @let (y, colour, text) = match p.value {
                    Some(v) => (
                        scale(v),
                        if good(v) { GOOD } else { BAD },
                        format!("{}: {v:.digits$}{unit}", p.label),
                    ),
                    None => (TOP + plot - 2.0, EMPTY, format!("{}: no data", p.label)),
                };
                rect x=(at(x)) y=(at(y)) width=(at(bar)) height=(at((TOP + plot - y).max(2.0))) fill=(colour) {
                    title { (text) }
                }
                @if i % label_every == 0 {
                    text x=(at(x + bar / 2.0)) y=(at(HEIGHT - 8.0)) font-size="10" text-anchor="middle" fill="#57606a" {
                        (p.label.get(5..).unwrap_or(p.label))
                    }
                }
            }
            line x1=(LEFT.to_string()) x2=(WIDTH.to_string()) y1=(at(ty)) y2=(at(ty)) stroke="#24292f"
                stroke-width="1.5" stroke-dasharray="6 4" {}
            text x=(WIDTH.to_string()) y=(at(ty - 4.0)) font-size="10" text-anchor="end" fill="#24292f" {
                "target " (format!("{target:.digits$}")) (unit)
            }
        }
    }
}

/// Daily availability bars, the axis starting low enough to show the lowest day and the target.
pub fn availability_chart(points: &[Point<'_>], target_percent: f64) -> Markup {
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
pub fn latency_chart(points: &[Point<'_>], target_ms: f64) -> Markup {
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
pub fn uptime_strip(points: &[Point<'_>], target_percent: f64) -> Markup {
    uptime_strip_labelled(points, target_percent, "daily uptime")
}

/// `uptime_strip` with its own accessible label (`hourly uptime`).
pub fn uptime_strip_labelled(points: &[Point<'_>], target_percent: f64, label: &str) -> Markup {
    let n = points.len().max(1);
    let (w, h, gap) = (6.0_f64, 28.0_f64, 2.0_f64);
    let width = n as f64 * (w + gap);
    html! {
        svg viewBox=(format!("0 0 {width} {h}")) width="100%" height=(h.to_string())
            preserveAspectRatio="none" role="img" aria-label=(label) {
            @for (i, p) in points.iter().enumerate() {
                @let (colour, text) = match p.value {
                    Some(v) if v >= target_percent => (GOOD, format!("{}: {v:.3}%", p.label)),
                    Some(v) if v >= 99.0 => (WARN, format!("{}: {v:.3}%", p.label)),
                    Some(v) => (BAD, format!("{}: {v:.3}%", p.label)),
                    None => (EMPTY, format!("{}: no data", p.label)),
                };
                rect x=(at(i as f64 * (w + gap))) y="0" width=(w.to_string()) height=(h.to_string()) rx="1"
                    fill=(colour) {
                    title { (text) }
                }
            }
        }
    }
}

/// A small uptime strip for a table row: one `<path>` per colour instead of a `<rect>` and a `<title>` per
/// bar, and one `<title>` (`summary`) for the strip, so a row costs about 15 bytes per bar.
pub fn uptime_strip_compact(values: &[Option<f64>], target_percent: f64, summary: &str) -> Markup {
    let (w, h, gap) = (3_usize, 14_usize, 1_usize);
    let width = values.len().max(1) * (w + gap);
    let mut paths: [(&str, String); 4] = [
        (GOOD, String::new()),
        (WARN, String::new()),
        (BAD, String::new()),
        (EMPTY, String::new()),
    ];
    for (i, v) in values.iter().enumerate() {
        let slot = match v {
            Some(v) if *v >= target_percent => 0,
            Some(v) if *v >= 99.0 => 1,
            Some(_) => 2,
            None => 3,
        };
        paths[slot]
            .1
            .push_str(&format!("M{} 0h{w}v{h}h-{w}z", i * (w + gap)));
    }
    html! {
        svg.compact viewBox=(format!("0 0 {width} {h}")) width=(width.to_string()) height=(h.to_string())
            role="img" aria-label=(summary) {
            title { (summary) }
            @for (colour, d) in &paths {
                @if !d.is_empty() { path fill=(colour) d=(d) {} }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOSTILE: &str = "2026-<script>\"x\"'&amp;</script>";
    const SHOWN: &str = "2026-&lt;script&gt;&quot;x&quot;'&amp;amp;&lt;/script&gt;";

    fn points() -> [Point<'static>; 2] {
        [
            Point {
                label: HOSTILE,
                value: Some(99.0),
            },
            Point {
                label: HOSTILE,
                value: None,
            },
        ]
    }

    #[test]
    fn chart_labels_and_titles_are_escaped() {
        for chart in [
            availability_chart(&points(), 99.5).into_string(),
            latency_chart(&points(), 200.0).into_string(),
        ] {
            assert!(!chart.contains("<script"), "{chart}");
            // Each bar's <title> holds the whole label; the axis text its part after `YYYY-`.
            assert_eq!(
                chart.matches(&format!("<title>{SHOWN}: ")).count(),
                2,
                "{chart}"
            );
            assert_eq!(
                chart.matches(&format!(">{}</text>", &SHOWN[5..])).count(),
                2,
                "{chart}"
            );
        }
    }

    #[test]
    fn the_strip_escapes_its_label_attribute_and_bar_titles() {
        let strip = uptime_strip_labelled(&points(), 99.5, HOSTILE).into_string();
        assert!(!strip.contains("<script"), "{strip}");
        assert!(
            strip.contains(&format!(r#"aria-label="{SHOWN}">"#)),
            "{strip}"
        );
        assert!(
            strip.contains(&format!("<title>{SHOWN}: 99.000%</title>")),
            "{strip}"
        );
        assert!(
            strip.contains(&format!("<title>{SHOWN}: no data</title>")),
            "{strip}"
        );
    }

    #[test]
    fn elements_close_so_svg_labels_are_not_swallowed() {
        // In HTML, `<line ...>` inside an SVG is not void: without its end tag the next <text> would be its
        // child and never drawn.
        let chart = latency_chart(&points(), 200.0).into_string();
        assert_eq!(
            chart.matches("<line ").count(),
            chart.matches("</line>").count(),
            "{chart}"
        );
        assert_eq!(chart.matches("<line ").count(), 4, "{chart}");
    }
}
