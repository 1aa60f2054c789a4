//! What a refresh of every target's SLO costs: one full `evaluate` over the 7-day window (what the SLO
//! refresher did every pass), the SLO ledger's first pass (built by `evaluate`, rollups read once), and its
//! incremental passes one minute apart (what the refresher does every `slo.refresh_interval_s`), on a
//! history written by `hale history generate`'s own code. The last pass is checked against `evaluate`. The
//! incremental passes are also made, in turn, by a ledger that does not read its trailing edges ahead (one
//! seek per edge and pass), and both figures printed.
//!
//! Run: `cargo bench --bench slo_ledger` (env: HALE_BENCH_SERVICES, default 1000; HALE_BENCH_DAYS, default
//! 7; HALE_BENCH_INTERVAL_S, default 60; HALE_BENCH_PASSES, default 20; HALE_BENCH_DIR, a folder to keep
//! `history.db` in and reuse on the next run, the same day).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use hale::config::Config;
use hale::history::{self, HistorySpec, Silent};
use hale::slo::{evaluate, SloLedger, SloWindow};
use hale::store::Store;

fn env_number(name: &str, default: u32) -> u32 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() {
    let services = env_number("HALE_BENCH_SERVICES", 1000);
    let days = env_number("HALE_BENCH_DAYS", 7);
    let interval = env_number("HALE_BENCH_INTERVAL_S", 60);
    let passes = env_number("HALE_BENCH_PASSES", 20).max(1);
    let temp = tempfile::tempdir().expect("temp dir");
    let dir =
        std::env::var_os("HALE_BENCH_DIR").map_or_else(|| temp.path().to_owned(), PathBuf::from);
    std::fs::create_dir_all(&dir).expect("bench dir");
    let db = dir.join(format!("history-{services}x{days}d-{interval}s.db"));

    let now = Utc::now();
    let spec = HistorySpec::parse(services, days, interval, 42, None, now).expect("bench spec");
    if db.exists() {
        println!("reusing {}", db.display());
    } else {
        let summary = history::generate(&db, &spec, false, Arc::new(Silent))
            .await
            .expect("generate history");
        println!(
            "generated {} checks ({services} services x {days} days every {interval} s) in {:.1} s",
            summary.checks,
            summary.elapsed.as_secs_f64()
        );
    }
    let store = Store::open_read_only(&db).await.expect("open read-only");
    let names: Vec<serde_json::Value> = (0..services)
        .map(|i| {
            serde_json::json!({ "name": spec.service_name(i), "url": "http://127.0.0.1:9/health" })
        })
        .collect();
    let config = Config::from_json(
        &serde_json::json!({ "services": names, "slo": { "window_days": 7 } }).to_string(),
        "bench",
    )
    .expect("bench config");

    // An hour before the history ends, 17 s into a minute: every edge cuts an hour.
    let mut t = spec.end - chrono::Duration::hours(1) + chrono::Duration::seconds(17);
    let started = Instant::now();
    let full = evaluate(&store, &config, &SloWindow::last_days(7, t), None, false)
        .await
        .expect("evaluate");
    let full_time = started.elapsed();
    assert_eq!(full.len(), services as usize);

    let mut ledger = SloLedger::new(&config);
    let started = Instant::now();
    let (first, stats) = ledger
        .advance(&store, &config, t)
        .await
        .expect("first pass");
    let first_time = started.elapsed();
    assert_eq!(first, full, "the first pass is evaluate's answer");
    assert_eq!(stats.rebuilt, services as usize);

    // The same ledger without read-ahead (each trailing edge one seek a pass), its passes taken in turn with
    // the other's so both see the same machine.
    let mut plain = SloLedger::with_read_ahead(&config, 0);
    plain.advance(&store, &config, t).await.expect("first pass");

    let mut times = Vec::with_capacity(passes as usize);
    let mut plain_times = Vec::with_capacity(passes as usize);
    let mut checks_read = 0;
    let mut last = Vec::new();
    for _ in 0..passes {
        t += chrono::Duration::seconds(60);
        let started = Instant::now();
        let (results, stats) = ledger.advance(&store, &config, t).await.expect("pass");
        times.push(started.elapsed());
        assert_eq!(stats.rebuilt, 0, "{stats:?}");
        checks_read += stats.checks_read;
        let started = Instant::now();
        let (plain_results, _) = plain.advance(&store, &config, t).await.expect("pass");
        plain_times.push(started.elapsed());
        assert_eq!(plain_results, results, "read ahead or not, the same answer");
        last = results;
    }
    let want = evaluate(&store, &config, &SloWindow::last_days(7, t), None, false)
        .await
        .expect("evaluate");
    assert_eq!(last, want, "the ledger's last pass equals evaluate");
    plain_times.sort();
    let plain_mean = plain_times.iter().sum::<Duration>() / passes;
    println!(
        "without read-ahead: incremental pass median {:.1} ms, mean {:.1} ms ({:.3}% of a core at one a minute)",
        ms(plain_times[plain_times.len() / 2]),
        ms(plain_mean),
        plain_mean.as_secs_f64() / 60.0 * 100.0,
    );
    times.sort();
    let median = times[times.len() / 2];
    let mean = times.iter().sum::<Duration>() / passes;
    println!(
        "{services} targets, {days} days every {interval} s: full evaluate {:.0} ms; ledger first pass {:.0} ms; incremental pass (1 min step) median {:.1} ms, mean {:.1} ms, max {:.1} ms over {passes}, {:.0} raw checks read per pass; at one pass a minute: {:.3}% of a core (was {:.1}%)",
        ms(full_time),
        ms(first_time),
        ms(median),
        ms(mean),
        ms(times[times.len() - 1]),
        checks_read as f64 / f64::from(passes),
        mean.as_secs_f64() / 60.0 * 100.0,
        full_time.as_secs_f64() / 60.0 * 100.0,
    );
    store.close().await;
}
