//! Backup and restore of a realistic database on this machine. 1,000,000 health checks (50 services over 7
//! days, hourly rollups included) are written through the store's own batching writer; then, timed:
//! - `hale backup`'s path on the closed file (VACUUM INTO, integrity_check, gzip, fsync, rename);
//! - `POST /backup`'s path on the live store while the writer keeps inserting 2,000 rows/s;
//! - `hale restore`'s path into a fresh folder (unpack, integrity_check, fsync, rename), then `Store::open` on
//!   the result as hale's start does;
//! - the gzip level: the same uncompressed copy compressed at levels 1 and 6.
//!
//! Run: `cargo bench --bench backup` (env: HALE_BENCH_ROWS, default 1000000; HALE_BENCH_DIR, an empty folder
//! to work in and leave the files in, for timing `hale backup` and `hale restore` by hand on them).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use hale::breaker::BreakerState;
use hale::config::StorageConfig;
use hale::metrics::WriterMetrics;
use hale::records::{CheckRecord, CheckSource, Outcome};
use hale::store::backup::{self, Destination, NoProgress, Progress};
use hale::store::writer::{self, CheckWriter, WriterSettings};
use hale::store::Store;

const SERVICES: u64 = 50;
const SPAN: Duration = Duration::from_secs(7 * 24 * 3600);

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

#[tokio::main]
async fn main() {
    let rows = env_number("HALE_BENCH_ROWS", 1_000_000);
    let temp = tempfile::tempdir().expect("temp dir");
    let dir =
        std::env::var_os("HALE_BENCH_DIR").map_or_else(|| temp.path().to_owned(), PathBuf::from);
    let db = dir.join("data").join("hale.db");

    let started = Instant::now();
    let store = Store::open(&db).await.expect("open store");
    let (check_writer, handle) = spawn_writer(&store);
    let services: Vec<Arc<str>> = (0..SERVICES)
        .map(|i| Arc::from(format!("service-{i}")))
        .collect();
    for i in 0..rows {
        check_writer
            .submit(record(&services, i, rows))
            .await
            .expect("writer running");
    }
    handle.shutdown().await;
    store.close().await;
    let file_bytes = std::fs::metadata(&db).expect("stat").len();
    println!(
        "database: {rows} health checks for {SERVICES} services written in {:.1} s; file {:.1} MiB",
        started.elapsed().as_secs_f64(),
        mib(file_bytes)
    );

    // hale backup --out, hale not running.
    let out = dir.join("offline.db.gz");
    let steps = Arc::new(Steps::default());
    let report = backup::backup_database(&db, &Destination::File(out), steps.clone())
        .await
        .expect("backup");
    println!(
        "backup (file, hale stopped): {:.2} s ({}); database {:.1} MiB -> backup {:.1} MiB ({:.1}x); {} checks verified",
        report.duration.as_secs_f64(),
        steps.summary(),
        mib(report.database_bytes),
        mib(report.bytes),
        report.database_bytes as f64 / report.bytes as f64,
        report.verified.rows("health_checks").unwrap_or(0)
    );

    // POST /backup's path, while the writer inserts 2,000 rows/s.
    let store = Store::open(&db).await.expect("reopen store");
    let (check_writer, handle) = spawn_writer(&store);
    let stop = Arc::new(AtomicBool::new(false));
    let producer = tokio::spawn(steady_inserts(
        check_writer.clone(),
        services.clone(),
        stop.clone(),
    ));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = store.count_checks(None).await.expect("count");
    let live = store
        .backup(
            &Destination::Folder { dir: None, keep: 7 },
            Arc::new(NoProgress),
        )
        .await
        .expect("live backup");
    let after = store.count_checks(None).await.expect("count");
    stop.store(true, Ordering::SeqCst);
    producer.await.expect("producer");
    handle.shutdown().await;
    store.close().await;
    println!(
        "backup (live store, writer inserting 2,000 rows/s): {:.2} s; backup {:.1} MiB; the writer stored {} rows during it",
        live.duration.as_secs_f64(),
        mib(live.bytes),
        after - before
    );

    // hale restore into a fresh folder.
    let fresh = dir.join("fresh").join("hale.db");
    let steps = Arc::new(Steps::default());
    let restored = backup::restore(&live.path, &fresh, None, steps.clone())
        .await
        .expect("restore");
    println!(
        "restore: {:.2} s ({}); backup {:.1} MiB -> database {:.1} MiB; {} checks verified",
        restored.duration.as_secs_f64(),
        steps.summary(),
        mib(live.bytes),
        mib(restored.bytes),
        restored.verified.rows("health_checks").unwrap_or(0)
    );

    // What hale's start adds on the restored file: the lock, quick_check, the write probe, migrations.
    let opening = Instant::now();
    let reopened = Store::open(&fresh)
        .await
        .expect("open the restored database");
    let open_s = opening.elapsed().as_secs_f64();
    reopened.close().await;
    println!("opening the restored database (as hale's start does): {open_s:.2} s");

    // The gzip level, side by side on the same copy.
    for level in [1, 6] {
        let (seconds, bytes) = gzip(&fresh, level);
        println!(
            "gzip level {level}: {:.2} s, {:.1} MiB ({:.1}x)",
            seconds,
            mib(bytes),
            restored.bytes as f64 / bytes as f64
        );
    }
}

fn spawn_writer(store: &Store) -> (CheckWriter, writer::WriterHandle) {
    writer::spawn(
        store.clone(),
        WriterSettings {
            flush_interval: Duration::from_millis(StorageConfig::default().flush_interval_ms),
            batch_size: StorageConfig::default().batch_size,
            settle_interval: Duration::ZERO,
        },
        WriterMetrics::register(&prometheus::Registry::new()),
    )
}

/// Check `i` of `rows`, spread evenly over the last 7 days: mostly up with varied latencies, 2% down with an
/// error, 0.5% timeouts.
fn record(services: &[Arc<str>], i: u64, rows: u64) -> CheckRecord {
    let ago = SPAN.mul_f64(1.0 - i as f64 / rows as f64);
    let (outcome, status, error) = match i % 200 {
        0..=3 => (
            Outcome::Down,
            None,
            Some("connection refused (os error 111)".to_owned()),
        ),
        4 => (
            Outcome::Timeout,
            None,
            Some("no answer within 5000 ms".to_owned()),
        ),
        _ => (Outcome::Up, Some(200), None),
    };
    CheckRecord {
        checked_at: Utc::now() - ago,
        service: services[(i % services.len() as u64) as usize].clone(),
        outcome,
        http_status: status,
        latency: Some(Duration::from_micros(800 + (i * 7919) % 40_000)),
        error,
        breaker_state: BreakerState::Closed,
        source: CheckSource::Monitor,
    }
}

async fn steady_inserts(writer: CheckWriter, services: Vec<Arc<str>>, stop: Arc<AtomicBool>) {
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let mut i = 0u64;
    while !stop.load(Ordering::SeqCst) {
        tick.tick().await;
        for _ in 0..20 {
            let mut rec = record(&services, i, u64::MAX);
            rec.checked_at = Utc::now();
            writer.submit(rec).await.expect("writer running");
            i += 1;
        }
    }
}

/// Compresses the file at `path` at `level` in memory (the file read first, not timed); seconds taken and
/// compressed size.
fn gzip(path: &Path, level: u32) -> (f64, u64) {
    let data = std::fs::read(path).expect("read the copy");
    let started = Instant::now();
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(data.len() / 4),
        flate2::Compression::new(level),
    );
    encoder.write_all(&data).expect("compress");
    let out = encoder.finish().expect("compress");
    (started.elapsed().as_secs_f64(), out.len() as u64)
}

/// Times each step of a backup or restore.
#[derive(Default)]
struct Steps {
    times: Mutex<Vec<(&'static str, Instant, Option<Duration>)>>,
}

impl Steps {
    fn summary(&self) -> String {
        let times = self.times.lock().expect("steps");
        times
            .iter()
            .filter_map(|(name, _, took)| took.map(|t| format!("{name} {:.2} s", t.as_secs_f64())))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl Progress for Steps {
    fn step(&self, name: &'static str, _: Option<u64>) {
        self.times
            .lock()
            .expect("steps")
            .push((name, Instant::now(), None));
    }

    fn done(&self, _: u64) {}

    fn finish(&self) {
        if let Some(last) = self.times.lock().expect("steps").last_mut() {
            if last.2.is_none() {
                last.2 = Some(last.1.elapsed());
            }
        }
    }
}
