//! The series every target adds to the Health Proxy's `/metrics` (the cardinality budget of
//! docs/metrics.md): scheduled checks by outcome, scheduled checks within the latency objective, the latest
//! result and the breaker state. They live in one table of atomics, a row per target, and are written
//! straight to the text format: a check costs one map lookup and a few atomic adds, and a scrape writes the
//! rows without building a message per series (the prometheus crate's `gather` allocates the label pairs of
//! every series, then sorts them, at each scrape).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{PoisonError, RwLock};
use std::time::Duration;

use crate::metrics::catalog::{self, MetricDef};
use crate::records::Outcome;

/// `target_up` and `circuit_breaker_state` before their first value: no series.
const UNSET: u8 = 0;

/// One target's series.
#[derive(Debug)]
struct Row {
    /// `target="<name>"`, escaped for the text format.
    label: String,
    /// Scheduled checks, by `Outcome::ALL` index.
    checks: [AtomicU64; Outcome::ALL.len()],
    /// Scheduled checks that took at most the latency objective.
    fast: AtomicU64,
    /// `UNSET`, else 1 + the gauge value.
    up: AtomicU8,
    /// `UNSET`, else 1 + the gauge value.
    breaker: AtomicU8,
}

impl Row {
    fn new(target: &str) -> Self {
        let mut label = String::with_capacity(target.len() + 10);
        label.push_str("target=\"");
        push_escaped(&mut label, target);
        label.push('"');
        Self {
            label,
            checks: Default::default(),
            fast: AtomicU64::new(0),
            up: AtomicU8::new(UNSET),
            breaker: AtomicU8::new(UNSET),
        }
    }
}

#[derive(Debug, Default)]
struct Rows {
    index: HashMap<Box<str>, usize>,
    rows: Vec<Row>,
}

/// The per-target series of every target, in the order the targets were configured.
#[derive(Debug)]
pub(crate) struct TargetTable {
    /// The latency objective: a scheduled check that took at most this long is fast.
    objective: Duration,
    /// `,threshold="<objective in seconds>"`.
    threshold_label: String,
    rows: RwLock<Rows>,
}

/// What one finished check changes in its target's row.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CheckCount {
    /// The outcome of a scheduled check; `None` for an on-demand one (not counted per target).
    pub scheduled: Option<Outcome>,
    pub elapsed: Option<Duration>,
    pub up: bool,
}

impl TargetTable {
    /// A row at 0 for every target known at start, so each target's first failure is an increase.
    pub(crate) fn new(known: &catalog::StartLabels) -> Self {
        let mut rows = Rows::default();
        for target in &known.targets {
            rows.add(target);
        }
        Self {
            objective: Duration::from_millis(known.latency_target_ms),
            threshold_label: format!(
                ",threshold=\"{}\"",
                catalog::latency_threshold(known.latency_target_ms)
            ),
            rows: RwLock::new(rows),
        }
    }

    /// Applies `f` to the target's row, adding one for a target not known at start.
    fn with_row(&self, target: &str, f: impl FnOnce(&Row)) {
        {
            let rows = self.rows.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(&at) = rows.index.get(target) {
                f(&rows.rows[at]);
                return;
            }
        }
        let mut rows = self.rows.write().unwrap_or_else(PoisonError::into_inner);
        let at = rows.add(target);
        f(&rows.rows[at]);
    }

    pub(crate) fn check_finished(&self, target: &str, count: CheckCount) {
        let fast = count.elapsed.is_some_and(|e| e <= self.objective);
        self.with_row(target, |row| {
            if let Some(outcome) = count.scheduled {
                row.checks[outcome_index(outcome)].fetch_add(1, Ordering::Relaxed);
                if fast {
                    row.fast.fetch_add(1, Ordering::Relaxed);
                }
            }
            row.up.store(1 + u8::from(count.up), Ordering::Relaxed);
        });
    }

    /// `state` is a breaker state's gauge value (0, 1 or 2).
    pub(crate) fn set_breaker(&self, target: &str, state: i64) {
        let stored = u8::try_from(state.clamp(0, 100)).unwrap_or(0) + 1;
        self.with_row(target, |row| row.breaker.store(stored, Ordering::Relaxed));
    }

    /// Appends the table's families in the text format (version 0.0.4); a family without a series yet is
    /// left out, as the prometheus crate does.
    pub(crate) fn render(&self, out: &mut String) {
        let rows = self.rows.read().unwrap_or_else(PoisonError::into_inner);
        let rows = &rows.rows;
        if rows.is_empty() {
            return;
        }
        family_header(out, &catalog::HEALTH_CHECK_TOTAL_DEF);
        for (i, outcome) in Outcome::ALL.iter().enumerate() {
            let prefix = format!(
                "{}{{outcome=\"{}\",",
                catalog::HEALTH_CHECK_TOTAL_DEF.name,
                outcome.as_str()
            );
            for row in rows {
                let value = row.checks[i].load(Ordering::Relaxed);
                sample(out, &prefix, &row.label, "", value);
            }
        }
        family_header(out, &catalog::HEALTH_CHECK_FAST_TOTAL_DEF);
        let prefix = format!("{}{{", catalog::HEALTH_CHECK_FAST_TOTAL_DEF.name);
        for row in rows {
            let value = row.fast.load(Ordering::Relaxed);
            sample(out, &prefix, &row.label, &self.threshold_label, value);
        }
        for (def, gauge) in [
            (
                &catalog::TARGET_UP_DEF,
                (|row: &Row| &row.up) as fn(&Row) -> &AtomicU8,
            ),
            (&catalog::CIRCUIT_BREAKER_STATE_DEF, |row: &Row| {
                &row.breaker
            }),
        ] {
            let set = || {
                rows.iter()
                    .map(move |row| (row, gauge(row).load(Ordering::Relaxed)))
                    .filter(|(_, v)| *v != UNSET)
            };
            if set().next().is_none() {
                continue;
            }
            family_header(out, def);
            let prefix = format!("{}{{", def.name);
            for (row, value) in set() {
                sample(out, &prefix, &row.label, "", u64::from(value - 1));
            }
        }
    }

    /// The number of rows: the targets with series.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.rows
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .rows
            .len()
    }
}

impl Rows {
    fn add(&mut self, target: &str) -> usize {
        if let Some(&at) = self.index.get(target) {
            return at;
        }
        self.rows.push(Row::new(target));
        let at = self.rows.len() - 1;
        self.index.insert(target.into(), at);
        at
    }
}

fn outcome_index(outcome: Outcome) -> usize {
    Outcome::ALL
        .iter()
        .position(|o| *o == outcome)
        .unwrap_or_default()
}

/// `# HELP` and `# TYPE` of a family, from its catalog definition.
fn family_header(out: &mut String, def: &MetricDef) {
    out.push_str("# HELP ");
    out.push_str(def.name);
    out.push(' ');
    for c in def.help.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push_str("\n# TYPE ");
    out.push_str(def.name);
    out.push(' ');
    out.push_str(def.kind.as_str());
    out.push('\n');
}

/// One sample line: `<prefix><label><suffix>} <value>`: the prefix holds the name, `{` and the labels before
/// the target's, the suffix those after it (label names in order, as the prometheus crate writes them).
fn sample(out: &mut String, prefix: &str, label: &str, suffix: &str, value: u64) {
    out.push_str(prefix);
    out.push_str(label);
    out.push_str(suffix);
    out.push_str("} ");
    // Writing to a String cannot fail.
    let _ = write!(out, "{value}");
    out.push('\n');
}

/// A label value escaped for the text format: backslash, double quote and line feed.
fn push_escaped(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(targets: &[&str]) -> TargetTable {
        TargetTable::new(&catalog::StartLabels {
            targets: targets.iter().map(|t| (*t).to_owned()).collect(),
            latency_target_ms: 200,
            ..catalog::StartLabels::default()
        })
    }

    #[test]
    fn every_known_target_starts_at_zero_and_counts_scheduled_checks_only() {
        let table = table(&["api", "web"]);
        let scheduled = |outcome, ms| CheckCount {
            scheduled: Some(outcome),
            elapsed: Some(Duration::from_millis(ms)),
            up: outcome == Outcome::Up,
        };
        table.check_finished("api", scheduled(Outcome::Up, 200));
        table.check_finished("api", scheduled(Outcome::Up, 201));
        table.check_finished("api", scheduled(Outcome::Timeout, 5_000));
        table.check_finished(
            "web",
            CheckCount {
                scheduled: None,
                elapsed: Some(Duration::from_millis(1)),
                up: true,
            },
        );
        table.set_breaker("api", 2);
        let mut text = String::new();
        table.render(&mut text);
        for line in [
            "health_check_total{outcome=\"up\",target=\"api\"} 2",
            "health_check_total{outcome=\"timeout\",target=\"api\"} 1",
            "health_check_total{outcome=\"up\",target=\"web\"} 0",
            "health_check_total{outcome=\"circuit_open\",target=\"web\"} 0",
            // 200 ms is within the objective (le is inclusive), 201 ms is not.
            "health_check_fast_total{target=\"api\",threshold=\"0.2\"} 1",
            "health_check_fast_total{target=\"web\",threshold=\"0.2\"} 0",
            "target_up{target=\"api\"} 0",
            "target_up{target=\"web\"} 1",
            "circuit_breaker_state{target=\"api\"} 2",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
        }
        // web's breaker was never set: no series for it.
        assert!(
            !text.contains("circuit_breaker_state{target=\"web\"}"),
            "{text}"
        );
        assert_eq!(text.matches("# TYPE ").count(), 4, "{text}");
    }

    /// The budget in bytes behind the 5 MB goal at 10,000 targets: named as `hale history generate` names
    /// them (`svc-00001`), each after a week of checks every 10 s (60,480, all up and within the objective),
    /// the table writes under 450 bytes per target.
    #[test]
    fn a_week_of_checks_costs_under_450_bytes_per_target() {
        let names: Vec<String> = (1..=10_000).map(|i| format!("svc-{i:05}")).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let table = table(&names);
        for row in &table.rows.read().unwrap().rows {
            row.checks[0].store(60_480, Ordering::Relaxed);
            row.fast.store(60_480, Ordering::Relaxed);
            row.up.store(2, Ordering::Relaxed);
            row.breaker.store(1, Ordering::Relaxed);
        }
        let mut text = String::new();
        table.render(&mut text);
        assert_eq!(
            text.lines().filter(|l| !l.starts_with('#')).count(),
            10_000 * catalog::SERIES_PER_TARGET
        );
        let per_target = text.len() / 10_000;
        assert!(per_target < 450, "{per_target} bytes per target");
    }

    #[test]
    fn a_target_not_known_at_start_gets_a_row_and_names_are_escaped() {
        let table = table(&[]);
        let mut text = String::new();
        table.render(&mut text);
        assert!(text.is_empty(), "no target, no family: {text}");
        table.set_breaker("a\"b\\c", 0);
        table.set_breaker("a\"b\\c", 1);
        assert_eq!(table.len(), 1);
        table.render(&mut text);
        assert!(
            text.contains("circuit_breaker_state{target=\"a\\\"b\\\\c\"} 1\n"),
            "{text}"
        );
        assert!(!text.contains("# TYPE target_up"), "{text}");
    }
}
