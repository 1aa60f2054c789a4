//! `hale slo report` on a large history: 100 targets x 7 days at one check every 10 s (6,048,000 checks,
//! with their hourly rollups, restarts, heals and alerts), written by `hale history generate`'s own code.
//! Timed: the generator (rows per second), then the 7-day report of every target from the rollups and with
//! `--exact` (every raw check), side by side, the median of several runs each (data gathered and rendered
//! as JSON, as the command does).
//!
//! Run: `cargo bench --bench slo_report` (env: HALE_BENCH_SERVICES, default 100; HALE_BENCH_DAYS, default 7;
//! HALE_BENCH_INTERVAL_S, default 10; HALE_BENCH_EXACT_RUNS, default 3, 0 to time the rollups only; HALE_BENCH_DIR, a folder to keep `history.db` in and reuse on the next
//! run, the same day, to time the reports alone).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use hale::config::Config;
use hale::history::{self, HistorySpec, Silent};
use hale::slo::report::{self, ReportFormat};
use hale::store::Store;

fn env_number(name: &str, default: u32) -> u32 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median(mut runs: Vec<Duration>) -> Duration {
    runs.sort();
    runs[runs.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() {
    let services = env_number("HALE_BENCH_SERVICES", 100);
    let days = env_number("HALE_BENCH_DAYS", 7);
    let interval = env_number("HALE_BENCH_INTERVAL_S", 10);
    let temp = tempfile::tempdir().expect("temp dir");
    let dir =
        std::env::var_os("HALE_BENCH_DIR").map_or_else(|| temp.path().to_owned(), PathBuf::from);
    std::fs::create_dir_all(&dir).expect("bench dir");
    let db = dir.join("history.db");

    let now = Utc::now();
    let spec = HistorySpec::parse(services, days, interval, 42, None, now).expect("bench spec");
    if db.exists() {
        println!(
            "generator: reusing {} (remove it to time the generator)",
            db.display()
        );
    } else {
        let summary = history::generate(&db, &spec, false, Arc::new(Silent))
            .await
            .expect("generate history");
        let bytes = std::fs::metadata(&db).map(|m| m.len()).unwrap_or(0);
        println!(
            "generator: {} checks ({services} services x {days} days every {interval} s) in {:.1} s = {:.0} rows/s; {} hourly rollups; file {:.0} MiB",
            summary.checks,
            summary.elapsed.as_secs_f64(),
            summary.rows_per_second(),
            summary.rollup_rows,
            bytes as f64 / (1024.0 * 1024.0)
        );
    }

    let store = Store::open_read_only(&db).await.expect("open read-only");
    // The generated services only (the default config would add its three, without data).
    let config = Config {
        services: Vec::new(),
        ..Config::default()
    };
    let window = report::parse_window("7d", now, 90).expect("window");
    let time = |exact: bool, runs: usize| {
        let (store, config, window) = (store.clone(), config.clone(), window.clone());
        async move {
            let mut times = Vec::with_capacity(runs);
            let mut size = 0;
            for _ in 0..runs {
                let started = Instant::now();
                let built = report::build(&store, &config, &window, None, exact, now, false)
                    .await
                    .expect("report");
                size = report::render(&built, ReportFormat::Json).len();
                times.push(started.elapsed());
                assert_eq!(built.targets.len(), services as usize);
            }
            (median(times), size)
        }
    };
    let (rollups, size) = time(false, 7).await;
    let exact_runs = env_number("HALE_BENCH_EXACT_RUNS", 3) as usize;
    if exact_runs == 0 {
        println!(
            "7-day report of {services} targets: rollups {:.1} ms (median of 7); JSON {} KiB",
            ms(rollups),
            size / 1024
        );
        store.close().await;
        return;
    }
    let (exact, _) = time(true, exact_runs).await;
    println!(
        "7-day report of {services} targets: rollups {:.1} ms (median of 7), exact {:.0} ms (median of {exact_runs}): {:.0}x faster; JSON {} KiB",
        ms(rollups),
        ms(exact),
        exact.as_secs_f64() / rollups.as_secs_f64(),
        size / 1024
    );
    store.close().await;
}
