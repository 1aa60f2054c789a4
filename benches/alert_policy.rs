//! The alert rules' cost per scheduled check, and the memory they keep, at many targets: the shipped rules
//! (`target_down`, `target_flapping` over 24 h, `mass_failure`, the 1 h/5 min and 6 h/30 min burn rates)
//! fed one check per target every 10 s, as the monitor does. First the memory is filled by live checks for
//! the longest burn window (6 h of checks per target), and the process's RSS growth over that fill is
//! reported; then `AlertPolicy::on_check` is timed, in batches of rounds (every target checked once per
//! round), and the median batch is reported as time per check. One target in a hundred fails one check in
//! seven (so its flapping and burn-rate alerts fire and repeat); the others are always up.
//!
//! Run: `cargo bench --bench alert_policy` (env: HALE_BENCH_TARGETS, a comma-separated list, default
//! `10000,1000`; HALE_BENCH_FILL_S, seconds of checks kept before timing, default 21600; HALE_BENCH_BATCHES,
//! default 5, of HALE_BENCH_ROUNDS rounds each, default 6). The RSS growth is only meaningful for the first
//! count of targets: later runs reuse the memory the earlier ones freed.

// A benchmark: an unwrap is an assertion.
#![allow(clippy::unwrap_used)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use hale::alerts::policy::{AlertMemory, AlertPolicy};
use hale::config::Config;
use hale::events::CheckFinished;
use hale::records::{CheckSource, Outcome};

const INTERVAL_S: i64 = 10;

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The process's resident set, in bytes, from `/proc/self/status` (0 where there is none).
fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

struct Run {
    policy: AlertPolicy,
    state: AlertMemory,
    targets: Vec<Arc<str>>,
    start: DateTime<Utc>,
    round: i64,
}

impl Run {
    /// One round: every target checked once, spread over the 10 s (target i at i ms into it, wrapping).
    fn round(&mut self) -> usize {
        let base = self.start + chrono::Duration::seconds(self.round * INTERVAL_S);
        let mut actions = 0;
        for (i, target) in self.targets.iter().enumerate() {
            let failing = i % 100 == 0 && self.round % 7 == 0;
            let at = base + chrono::Duration::milliseconds((i % 10_000) as i64);
            let check = CheckFinished {
                target: target.clone(),
                outcome: if failing { Outcome::Down } else { Outcome::Up },
                http_status: Some(if failing { 503 } else { 200 }),
                latency: Some(Duration::from_millis(3)),
                source: CheckSource::Monitor,
                at,
            };
            actions += black_box(self.policy.on_check(&mut self.state, &check, false, at)).len();
        }
        self.round += 1;
        actions
    }
}

fn main() {
    let counts: Vec<usize> = std::env::var("HALE_BENCH_TARGETS")
        .ok()
        .unwrap_or_else(|| "10000,1000".to_owned())
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect();
    let fill_s = env_number("HALE_BENCH_FILL_S", 21_600) as i64;
    let batches = env_number("HALE_BENCH_BATCHES", 5).max(1) as usize;
    let rounds = env_number("HALE_BENCH_ROUNDS", 6).max(1) as usize;
    let config = Config::default();
    for (run_index, n) in counts.into_iter().enumerate() {
        let targets: Vec<Arc<str>> = (0..n).map(|i| Arc::from(format!("t{i:05}"))).collect();
        let mut run = Run {
            policy: AlertPolicy::new(&config),
            state: AlertMemory::new(&targets),
            targets,
            start: DateTime::from_timestamp(1_764_000_000, 0).unwrap(),
            round: 0,
        };
        let rss_before = rss_bytes();
        let fill_started = Instant::now();
        let fill_rounds = fill_s / INTERVAL_S;
        for _ in 0..fill_rounds {
            run.round();
        }
        let fill = fill_started.elapsed();
        let grown = rss_bytes().saturating_sub(rss_before);
        let mut per_check = Vec::with_capacity(batches);
        let mut actions = 0;
        for _ in 0..batches {
            let started = Instant::now();
            for _ in 0..rounds {
                actions += run.round();
            }
            per_check.push(started.elapsed().as_nanos() as f64 / (rounds * n) as f64);
        }
        per_check.sort_by(f64::total_cmp);
        let median = per_check[per_check.len() / 2];
        let rss = if run_index == 0 {
            format!(
                "RSS grew {:.1} MB over the fill ({:.0} bytes per target)",
                grown as f64 / 1e6,
                grown as f64 / n as f64
            )
        } else {
            "RSS growth not meaningful (memory of the previous run reused)".to_owned()
        };
        println!(
            "alert_policy: {n} targets, filled with {fill_s} s of checks ({} checks) in {:.1} s; {rss}",
            fill_rounds as usize * n,
            fill.as_secs_f64()
        );
        println!(
            "alert_policy: {n} targets: on_check {median:.0} ns per check (median of {batches} batches of {} checks; min {:.0}, max {:.0}); {actions} actions",
            rounds * n,
            per_check[0],
            per_check[per_check.len() - 1]
        );
        drop(run);
    }
}
