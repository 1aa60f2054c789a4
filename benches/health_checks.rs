//! Health Proxy throughput on this machine: how many checks per second are made and persisted with 1,000
//! targets against local HTTP servers, and how many rows per second the batching writer stores.
//!
//! Run: `cargo bench --bench health_checks` (env: HALE_BENCH_TARGETS, HALE_BENCH_SECONDS, HALE_BENCH_ROWS).

// A benchmark: an unwrap is an assertion.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpResponse, HttpServer};
use chrono::Utc;
use hale::app::Application;
use hale::breaker::BreakerState;
use hale::config::{Config, ServiceName, StorageConfig, TargetConfig, TargetUrl};
use hale::metrics::WriterMetrics;
use hale::records::{CheckRecord, CheckSource, Outcome};
use hale::store::writer::{self, WriterSettings};
use hale::store::Store;

/// Requests answered by the local target servers.
static SERVED: AtomicU64 = AtomicU64::new(0);

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() {
    let targets = env_number("HALE_BENCH_TARGETS", 1000) as usize;
    let seconds = env_number("HALE_BENCH_SECONDS", 10);
    let rows = env_number("HALE_BENCH_ROWS", 1_000_000);
    let dir = tempfile::tempdir().expect("temp dir");

    // The shipped batch size beside a smaller one, in the same run, so their ratio means something.
    let default_batch = StorageConfig::default().batch_size;
    let mut measured = Vec::new();
    for batch_size in [default_batch, 2_000] {
        let path = dir.path().join(format!("writer-{batch_size}.db"));
        let (rows_per_s, batches) = writer_throughput(&path, rows, batch_size).await;
        println!("writer: batch_size {batch_size}: {rows} rows in {batches} batches, {rows_per_s:.0} rows/s");
        measured.push(rows_per_s);
    }
    println!(
        "writer: batch_size {default_batch} (default) writes {:.2}x the rows/s of batch_size 2000",
        measured[0] / measured[1]
    );

    let (checks, elapsed, stored, targets_up) = persisted_checks(
        &dir.path().join("checks.db"),
        targets,
        Duration::from_secs(seconds),
    )
    .await;
    let requests = SERVED.load(Ordering::Relaxed);
    println!(
        "checks: {targets} targets, {checks} checks ({requests} requests served) and {stored} rows stored in {:.2} s including the final drain: {:.0} persisted checks/s; {targets_up} targets up in the last round",
        elapsed.as_secs_f64(),
        stored as f64 / elapsed.as_secs_f64(),
    );
    assert_eq!(checks, stored, "every check made must be one stored row");
    assert_eq!(
        checks, requests,
        "every check made must reach a target server"
    );
}

/// Submits `rows` records for 1,000 services from four producers through the writer and waits for the drain.
async fn writer_throughput(path: &std::path::Path, rows: u64, batch_size: usize) -> (f64, u64) {
    let store = Store::open(path).await.expect("open store");
    let (writer, handle) = writer::spawn(
        store.clone(),
        WriterSettings {
            flush_interval: Duration::from_millis(StorageConfig::default().flush_interval_ms),
            batch_size,
            settle_interval: Duration::from_secs(StorageConfig::default().settle_interval_s),
        },
        WriterMetrics::register(&prometheus::Registry::new()),
    );
    let services: Vec<Arc<str>> = (0..1000).map(|i| Arc::from(format!("svc-{i}"))).collect();
    let started = Instant::now();
    let producers: Vec<_> = (0..4u64)
        .map(|p| {
            let writer = writer.clone();
            let services = services.clone();
            tokio::spawn(async move {
                let now = Utc::now();
                for i in (p..rows).step_by(4) {
                    let record = CheckRecord {
                        checked_at: now,
                        service: services[(i % 1000) as usize].clone(),
                        outcome: if i % 50 == 0 {
                            Outcome::Down
                        } else {
                            Outcome::Up
                        },
                        http_status: Some(200),
                        latency: Some(Duration::from_micros(500 + i % 20_000)),
                        error: None,
                        breaker_state: BreakerState::Closed,
                        source: CheckSource::Monitor,
                    };
                    writer.submit(record).await.expect("writer running");
                }
            })
        })
        .collect();
    for producer in producers {
        producer.await.expect("producer");
    }
    let batches_stat = writer
        .stats()
        .batches
        .load(std::sync::atomic::Ordering::Relaxed);
    handle.shutdown().await;
    let elapsed = started.elapsed();
    let stored = store.count_checks(None).await.expect("count") as u64;
    assert_eq!(stored, rows, "every submitted row is stored");
    store.close().await;
    (rows as f64 / elapsed.as_secs_f64(), batches_stat)
}

/// Checks every target over and over for `duration` through the Health Proxy's own path
/// (single flight, probe bound, breaker, HTTP probe, writer, rollups), then drains and counts the stored rows.
async fn persisted_checks(
    path: &std::path::Path,
    targets: usize,
    duration: Duration,
) -> (u64, Duration, u64, usize) {
    let servers = [start_target_server(), start_target_server()];
    let mut config = Config::default();
    config.listen.health_proxy = "127.0.0.1:0".parse().unwrap();
    config.listen.mcp_bridge = "127.0.0.1:0".parse().unwrap();
    config.listen.boss_api = "127.0.0.1:0".parse().unwrap();
    config.http.workers = 1;
    config.monitor.background_checks = false;
    config.monitor.cache_ttl_s = 0;
    config.services = (0..targets)
        .map(|i| {
            let addr = servers[i % servers.len()];
            std::sync::Arc::new(TargetConfig::new(
                ServiceName::parse(&format!("target-{i}")).unwrap(),
                TargetUrl::parse(&format!("http://{addr}/health/{i}")).unwrap(),
            ))
        })
        .collect();
    let app = Application::start(config, path, None)
        .await
        .expect("start hale");
    let monitor = app.monitor().expect("the Health Proxy runs").clone();
    let started = Instant::now();
    let mut checks = 0u64;
    let mut up = 0;
    while started.elapsed() < duration {
        // Every target at once, as `/health/all` does, but as background checks: those are all stored,
        // while on-demand rows are kept to one per target per interval.
        let reports = futures_util::future::join_all(
            monitor
                .targets()
                .iter()
                .map(|target| monitor.check(target, CheckSource::Monitor)),
        )
        .await;
        checks += reports.len() as u64;
        up = reports.iter().filter(|r| r.ok()).count();
    }
    app.shutdown().await; // drains the writer: the time counted includes writing every row
    let elapsed = started.elapsed();
    let store = Store::open(path).await.expect("reopen");
    let stored = store.count_checks(None).await.expect("count") as u64;
    (checks, elapsed, stored, up)
}

/// A minimal local HTTP server on its own thread and runtime, answering 200 to everything.
fn start_target_server() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            HttpServer::new(|| {
                App::new().default_service(web::to(|| async {
                    SERVED.fetch_add(1, Ordering::Relaxed);
                    HttpResponse::Ok().body("ok")
                }))
            })
            .workers(1)
            .disable_signals()
            .listen(listener)
            .expect("listen")
            .run()
            .await
        })
    });
    addr
}
