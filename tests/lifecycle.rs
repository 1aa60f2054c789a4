//! hale's life from start to stop: signals, JSON logs, a port in use, a corrupt database, the writer's drain,
//! `--only`, and the command line's own exits. Most tests run the real binary as a child process.

// A test crate: an unwrap is an assertion, and tests/common sets a child's rlimit in `pre_exec`.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hale::app::{Application, StartError};
use hale::breaker::BreakerState;
use hale::kind::ServiceKind;
use hale::records::{CheckRecord, CheckSource, Outcome};
use hale::store::{Store, StoreError};
use serde_json::{json, Value};

use common::app::{client, spawn_app, spawn_app_only};
use common::config::{test_config, test_config_json};
use common::db::count_rows;
use common::process::{exit_code, process_alive, run_hale, HaleProcess};
use common::prom::sample_value;
use common::{eventually, DEADLINE};

/// A port that is bound (and accepts TCP connections) for as long as the returned listener lives.
fn hold_port() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    let addr = listener.local_addr().expect("bound address");
    (listener, addr)
}

/// The `store_rows_written_total` of the Health Proxy at `addr`.
async fn rows_written(client: &reqwest::Client, addr: SocketAddr) -> f64 {
    let text = client
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("read /metrics");
    sample_value(&text, "store_rows_written_total", &[]).expect("store_rows_written_total")
}

/// Starts the binary with one monitored target (a port the test holds open, checked every second), waits
/// until checks reach the database, sends `signal` and checks the graceful path end to end.
async fn stops_gracefully_on(signal: &str) {
    let (_target, target_addr) = hold_port();
    let mut config = test_config_json();
    config["services"] = json!([{
        "name": "local-port",
        "url": format!("tcp://{target_addr}"),
        "interval_s": 1,
        "timeout_ms": 500
    }]);
    let mut hale = HaleProcess::serve(&config, &[]).await;
    let addrs = hale.wait_listening(&ServiceKind::ALL).await;
    let client = client();
    let health_proxy = addrs[&ServiceKind::HealthProxy];

    let written = eventually("a health check written to the database", || async {
        let written = rows_written(&client, health_proxy).await;
        (written >= 1.0).then_some(written)
    })
    .await;
    // Keep-alive connections from this client stay open while hale stops.
    for (kind, addr) in &addrs {
        let res = client
            .get(format!("http://{addr}/health"))
            .send()
            .await
            .expect("GET /health");
        assert_eq!(res.status().as_u16(), 200, "{kind}");
    }

    let sent = Instant::now();
    hale.signal(signal);
    let status = hale.wait_exit(Duration::from_secs(5)).await;
    let took = sent.elapsed();
    assert_eq!(
        exit_code(status),
        0,
        "exit after SIG{signal}; stderr: {:?}",
        hale.stderr_lines()
    );
    assert!(took < Duration::from_secs(5), "SIG{signal} took {took:?}");
    assert!(
        hale.stderr_lines().is_empty(),
        "a clean stop prints nothing on stderr: {:?}",
        hale.stderr_lines()
    );

    let logs = hale.json_logs();
    let messages: Vec<&str> = logs.iter().filter_map(|l| l["message"].as_str()).collect();
    for step in [
        "shutdown signal received",
        "stopping background loops",
        "check writer drained",
        "closing the database",
        "shutdown complete",
    ] {
        assert!(
            messages.contains(&step),
            "missing log {step:?} in {messages:?}"
        );
    }
    // The workflow engine first (its running steps may finish while what they use still runs), then
    // producers before what they feed: the status page's background reads (which feed nothing) and the
    // monitor, then what follows its events (heals, alerts, the SLO gauges, alert delivery), the children,
    // and last the store's own workers.
    let stopped: Vec<&str> = logs
        .iter()
        .filter(|l| l["message"] == "stopping background worker")
        .filter_map(|l| l["worker"].as_str())
        .collect();
    assert_eq!(
        stopped[..10],
        [
            "workflows",
            "status-page-reads",
            "monitor",
            "heal",
            "alerts",
            "slo",
            "alert-delivery",
            "supervisor",
            "retention",
            "database file watch"
        ],
        "{stopped:?}"
    );
    let drained = logs
        .iter()
        .find(|l| l["message"] == "check writer drained")
        .expect("drain log");
    assert_eq!(drained["dropped"], json!(0));
    let drained_written = drained["written"].as_i64().expect("written count");
    assert!(drained_written as f64 >= written);

    // The database is whole, and holds exactly what the writer says it wrote.
    let wal = hale.db_path.with_extension("db-wal");
    assert!(
        std::fs::metadata(&wal).map_or(true, |m| m.len() == 0),
        "the write-ahead log was checkpointed on close"
    );
    let store = Store::open(&hale.db_path)
        .await
        .unwrap_or_else(|e| panic!("the database reopens after SIG{signal}: {e}"));
    assert_eq!(
        store.count_checks(None).await.expect("count"),
        drained_written
    );
    assert_eq!(
        store.count_checks(Some("local-port")).await.expect("count"),
        drained_written
    );
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_exits_0_within_5_s_and_leaves_a_consistent_database() {
    stops_gracefully_on("TERM").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_behaves_like_sigterm() {
    stops_gracefully_on("INT").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_carry_the_request_fields() {
    let mut hale =
        HaleProcess::serve_with_env(&test_config_json(), &[], &[("HALE_LOG_FORMAT", "json")]).await;
    let addrs = hale.wait_listening(&ServiceKind::ALL).await;
    let boss_api = addrs[&ServiceKind::BossApi];
    for (path, id) in [("/openapi.json", "test-123"), ("/health", "probe-1")] {
        let res = client()
            .get(format!("http://{boss_api}{path}"))
            .header("x-request-id", id)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        assert_eq!(res.status().as_u16(), 200, "{path}");
    }
    hale.signal("TERM");
    assert_eq!(exit_code(hale.wait_exit(Duration::from_secs(5)).await), 0);

    let lines = hale.stdout_lines();
    for line in &lines {
        let parsed: Result<Value, _> = serde_json::from_str(line);
        assert!(
            parsed.is_ok_and(|v| v.is_object()),
            "every stdout line is a JSON object: {line:?}"
        );
    }
    let request = hale
        .json_logs()
        .into_iter()
        .find(|l| l["request_id"] == "test-123" && l["message"] == "request finished")
        .unwrap_or_else(|| panic!("no request log for test-123 in {lines:#?}"));
    assert_eq!(request["level"], json!("INFO"));
    assert_eq!(request["service"], json!("boss-api"));
    assert_eq!(request["method"], json!("GET"));
    assert_eq!(request["route"], json!("/openapi.json"));
    assert_eq!(request["status"], json!(200));
    // A successful health probe is logged at debug only: monitors poll it every few seconds.
    assert!(
        !hale
            .json_logs()
            .iter()
            .any(|l| l["request_id"] == "probe-1" && l["message"] == "request finished"),
        "no info line for a successful /health"
    );
    let latency = request["latency_ms"]
        .as_f64()
        .expect("latency_ms is a number");
    assert!((0.0..10_000.0).contains(&latency), "latency_ms {latency}");
    assert!(request["timestamp"].is_string());
}

/// Sends `request` on a new connection and returns the status line of the answer.
async fn refused_status(addr: SocketAddr, request: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request).await.expect("send");
    let mut answer = Vec::new();
    tokio::time::timeout(common::DEADLINE, stream.read_to_end(&mut answer))
        .await
        .expect("hale answers and closes")
        .expect("read");
    let answer = String::from_utf8_lossy(&answer);
    answer.lines().next().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn malformed_requests_are_logged_as_counted_warnings_not_one_error_each() {
    let mut hale = HaleProcess::serve(&test_config_json(), &[]).await;
    let addrs = hale.wait_listening(&ServiceKind::ALL).await;
    let started = Instant::now();
    let (malformed, too_large) = (300, 100);
    let many_headers: String = (0..100).map(|i| format!("X-H{i}: 1\r\n")).collect();
    for i in 0..malformed {
        let addr = addrs[&ServiceKind::ALL[i % 3]];
        let status = refused_status(addr, b"NOT HTTP AT ALL\r\n\r\n").await;
        assert_eq!(status, "HTTP/1.1 400 Bad Request");
    }
    for i in 0..too_large {
        let addr = addrs[&ServiceKind::ALL[i % 3]];
        let request = format!("GET /health HTTP/1.1\r\nHost: x\r\n{many_headers}\r\n");
        let status = refused_status(addr, request.as_bytes()).await;
        assert_eq!(status, "HTTP/1.1 431 Request Header Fields Too Large");
    }
    let took = started.elapsed();
    hale.signal("TERM");
    assert_eq!(exit_code(hale.wait_exit(common::DEADLINE).await), 0);

    let logs = hale.json_logs();
    let errors: Vec<&Value> = logs.iter().filter(|l| l["level"] == "ERROR").collect();
    assert!(
        errors.is_empty(),
        "refused requests are no ERROR: {errors:?}"
    );
    assert!(
        !hale
            .stdout_lines()
            .iter()
            .any(|l| l.contains("stream error")),
        "actix-http's own line is not written"
    );
    let refusals: Vec<&Value> = logs
        .iter()
        .filter(|l| l["message"] == "requests refused before routing")
        .collect();
    // The first line comes at once, then at most one per 10 s, and one last line at shutdown.
    let most_lines = 2 + took.as_secs() / hale::http::REPORT_EVERY.as_secs();
    for (kind, sent, error) in [
        ("malformed", malformed, "invalid"),
        ("too_large", too_large, "message head is too large"),
    ] {
        let lines: Vec<&&Value> = refusals.iter().filter(|l| l["kind"] == kind).collect();
        assert!(
            !lines.is_empty() && lines.len() as u64 <= most_lines,
            "{kind}: {} lines for {sent} requests in {took:?}: {lines:?}",
            lines.len()
        );
        for line in &lines {
            assert_eq!(line["level"], "WARN", "{line}");
            assert!(
                line["last_error"]
                    .as_str()
                    .is_some_and(|e| e.contains(error)),
                "{line}"
            );
        }
        let counted: u64 = lines.iter().filter_map(|l| l["count"].as_u64()).sum();
        assert_eq!(
            counted, sent as u64,
            "{kind}: every refusal is counted once"
        );
    }
}

/// Under any open-file limit hale either serves all three services or exits at start with one line naming
/// the limit: never half-started (a server whose worker threads could not start used to stop hale after it
/// had said `listening`), never a stack trace, and a failed start leaves its run closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_any_open_file_limit_hale_serves_everything_or_exits_at_start_naming_the_limit() {
    let mut config = test_config_json();
    // 8 worker threads per server: each needs descriptors for its runtime, so some limits that fit the
    // database and listeners do not fit the servers.
    config["http"]["workers"] = json!(8);
    let mut server_failures = 0;
    for limit in [16, 40, 64, 80, 100, 400] {
        let mut hale = HaleProcess::serve_with_open_file_limit(&config, limit).await;
        let outcome = hale.wait_listening_or_exit(&ServiceKind::ALL).await;
        let stderr = hale.stderr_lines().join("\n");
        assert!(
            !stderr.contains("panicked at") && !stderr.contains("stack backtrace"),
            "limit {limit}: {stderr}"
        );
        match outcome {
            Ok(addrs) => {
                for kind in ServiceKind::ALL {
                    let res = client()
                        .get(format!("http://{}/metrics", addrs[&kind]))
                        .send()
                        .await
                        .unwrap_or_else(|e| panic!("limit {limit}: {kind}: {e}"));
                    assert!(res.status().is_success(), "limit {limit}: {kind}");
                }
                hale.signal("TERM");
                assert_eq!(
                    exit_code(hale.wait_exit(DEADLINE).await),
                    0,
                    "limit {limit}"
                );
            }
            Err(status) if limit < hale::limits::MIN_OPEN_FILES => {
                assert_eq!(exit_code(status), 2, "limit {limit}: {stderr}");
                assert!(
                    stderr.contains(&format!("the open-file limit is {limit}"))
                        && stderr.contains("ulimit -n"),
                    "limit {limit}: {stderr}"
                );
            }
            Err(status) => {
                server_failures += 1;
                assert_eq!(exit_code(status), 1, "limit {limit}: {stderr}");
                assert!(
                    stderr.contains("cannot start the") && stderr.contains("ulimit -n"),
                    "limit {limit}: {stderr}"
                );
                assert!(
                    hale.json_logs().iter().all(|l| l["message"] != "listening"),
                    "limit {limit}: no service said it listens"
                );
                assert_eq!(
                    common::db::count_rows(&hale.db_path, "hale_runs", "ended_at_ms IS NULL").await,
                    0,
                    "limit {limit}: the failed start closed its run"
                );
            }
        }
    }
    assert!(
        server_failures > 0,
        "some limit above the floor must be too low for 24 worker threads, or this test checks nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_in_use_exits_2_naming_the_address() {
    let (_held, addr) = hold_port();
    let mut config = test_config_json();
    config["listen"]["boss_api"] = json!(addr.to_string());
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("config.json"), config.to_string()).expect("write config");
    let output = run_hale(
        dir.path(),
        &["serve", "--config", "config.json", "--db", "data/hale.db"],
    )
    .await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(exit_code(output.status), 2, "{stderr}");
    assert!(
        stderr.starts_with(&format!("hale: cannot listen on {addr} for boss-api: ")),
        "{stderr}"
    );
    assert!(stderr.contains("in use"), "{stderr}");
    assert!(
        !dir.path().join("data").exists(),
        "ports are bound before the database is opened"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_in_use_fails_start_before_the_database_is_touched() {
    let (_held, addr) = hold_port();
    let mut config = test_config();
    config.listen.mcp_bridge = addr;
    let dir = tempfile::tempdir().expect("temp dir");
    let db_path = dir.path().join("hale.db");
    let err = match Application::start(config, &db_path, None).await {
        Ok(_) => panic!("hale started on a port in use"),
        Err(e) => e,
    };
    assert!(
        matches!(err, StartError::Bind { service: ServiceKind::McpBridge, addr: a, .. } if a == addr),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .starts_with(&format!("cannot listen on {addr} for mcp-bridge: ")),
        "{err}"
    );
    assert!(!db_path.exists());
}

/// Asserts `Store::open` refuses `path` as corrupt, naming it, and leaves it byte for byte as it was.
async fn assert_refused_as_corrupt(path: &Path) {
    let before = std::fs::read(path).expect("read the file");
    let err = match Store::open(path).await {
        Ok(_) => panic!("{} opened as a database", path.display()),
        Err(e) => e,
    };
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.starts_with(&format!(
            "database {} is not a SQLite database or is corrupt (",
            path.display()
        )),
        "{message}"
    );
    assert!(message.contains("it was left untouched"), "{message}");
    assert_eq!(
        std::fs::read(path).expect("read the file"),
        before,
        "{} was modified",
        path.display()
    );
    // Nothing was written beside it either (SQLite may leave an empty log while its last connection closes).
    let wal = format!("{}-wal", path.display());
    assert!(
        std::fs::metadata(&wal).map_or(true, |m| m.len() == 0),
        "{wal} holds data"
    );
    let journal = format!("{}-journal", path.display());
    assert!(!Path::new(&journal).exists(), "{journal} was created");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_text_file_as_the_database_is_refused_as_corrupt() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("notes.db");
    std::fs::write(&path, "this is a text file, not a database\n".repeat(50)).expect("write");
    assert_refused_as_corrupt(&path).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_database_is_refused_as_corrupt() {
    let dir = tempfile::tempdir().expect("temp dir");
    let healthy = dir.path().join("healthy.db");
    let store = Store::open(&healthy).await.expect("create the database");
    store.close().await;
    // Once closed, the file alone holds the schema: keep its header page, overwrite every other page.
    let mut bytes = std::fs::read(&healthy).expect("read");
    let page_size = usize::from(u16::from_be_bytes([bytes[16], bytes[17]]));
    assert!(
        bytes.len() > 2 * page_size,
        "the closed database holds the schema: {} bytes with {page_size}-byte pages",
        bytes.len()
    );
    bytes[page_size..].fill(0xff);
    let damaged = dir.path().join("damaged.db");
    std::fs::write(&damaged, &bytes).expect("write");
    assert_refused_as_corrupt(&damaged).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_exits_2_on_a_corrupt_database_and_leaves_it_alone() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("config.json"),
        test_config_json().to_string(),
    )
    .expect("write config");
    let text = "name,value\nnot,sqlite\n".repeat(20);
    std::fs::write(dir.path().join("hale.db"), &text).expect("write db");
    let output = run_hale(
        dir.path(),
        &["serve", "--config", "config.json", "--db", "hale.db"],
    )
    .await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(exit_code(output.status), 2, "{stderr}");
    assert!(
        stderr.starts_with("hale: database hale.db is not a SQLite database or is corrupt ("),
        "{stderr}"
    );
    assert!(
        stderr.contains("restore a backup or move it aside"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("hale.db")).expect("read db"),
        text
    );
}

/// Another application's SQLite file given as `--db` is refused: not migrated, not switched to WAL, every
/// byte as it was; and `hale slo report` on it says it is not hale's rather than advising a migration.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_and_report_refuse_another_applications_database_and_leave_it_alone() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("config.json"),
        test_config_json().to_string(),
    )
    .expect("write config");
    let db = dir.path().join("app.db");
    {
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&db)
            .create_if_missing(true);
        let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect_with(&options)
            .await
            .expect("create the other application's database");
        for sql in [
            "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)",
            "INSERT INTO customers (name) VALUES ('ada'), ('grace')",
        ] {
            sqlx::query(sql).execute(&mut conn).await.expect(sql);
        }
        sqlx::Connection::close(conn).await.expect("close");
    }
    let before = std::fs::read(&db).expect("read db");

    let output = run_hale(
        dir.path(),
        &["serve", "--config", "config.json", "--db", "app.db"],
    )
    .await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(exit_code(output.status), 2, "{stderr}");
    assert!(
        stderr.starts_with(
            "hale: database app.db is not a hale database: it has 1 table(s) and no hale schema"
        ),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read(&db).expect("read db"),
        before,
        "the file is unchanged"
    );
    for suffix in ["-wal", "-shm"] {
        assert!(
            !dir.path().join(format!("app.db{suffix}")).exists(),
            "no {suffix} file was left beside it"
        );
    }

    let output = run_hale(
        dir.path(),
        &["slo", "report", "--db", "app.db", "--config", "config.json"],
    )
    .await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(exit_code(output.status), 2, "{stderr}");
    assert!(stderr.contains("app.db is not a hale database"), "{stderr}");
    assert!(!stderr.contains("migrate"), "{stderr}");
    assert_eq!(
        std::fs::read(&db).expect("read db"),
        before,
        "the file is unchanged"
    );
    for suffix in ["-wal", "-shm", "-journal"] {
        assert!(
            !dir.path().join(format!("app.db{suffix}")).exists(),
            "the report left no {suffix} file beside it"
        );
    }
}

fn record(service: &Arc<str>, i: usize) -> CheckRecord {
    CheckRecord {
        checked_at: chrono::Utc::now(),
        service: service.clone(),
        outcome: if i.is_multiple_of(7) {
            Outcome::Down
        } else {
            Outcome::Up
        },
        http_status: Some(if i.is_multiple_of(7) { 500 } else { 200 }),
        latency: Some(Duration::from_micros(1_000 + i as u64)),
        error: i.is_multiple_of(7).then(|| "status 500".to_owned()),
        breaker_state: BreakerState::Closed,
        source: CheckSource::Monitor,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_writer_persists_every_record_and_drains_on_shutdown() {
    const PRODUCERS: usize = 4;
    const PER_PRODUCER: usize = 2_500;
    let mut app = spawn_app().await;
    let writer = app.core().writer.clone();
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let writer = writer.clone();
            tokio::spawn(async move {
                let service: Arc<str> = Arc::from(format!("svc-{p}"));
                for i in 0..PER_PRODUCER {
                    writer
                        .submit(record(&service, i))
                        .await
                        .expect("the writer accepts records while running");
                }
            })
        })
        .collect();
    for producer in producers {
        producer.await.expect("producer");
    }
    app.shutdown().await;

    let total = (PRODUCERS * PER_PRODUCER) as u64;
    let stats = writer.stats();
    assert_eq!(
        stats.written.load(std::sync::atomic::Ordering::Relaxed),
        total
    );
    assert_eq!(stats.dropped.load(std::sync::atomic::Ordering::Relaxed), 0);
    assert!(!writer.is_running());
    assert!(
        writer.submit(record(&Arc::from("late"), 0)).await.is_err(),
        "a stopped writer refuses new records"
    );

    let store = Store::open(&app.db_path)
        .await
        .expect("reopen the database");
    assert_eq!(store.count_checks(None).await.expect("count"), total as i64);
    for p in 0..PRODUCERS {
        assert_eq!(
            store
                .count_checks(Some(&format!("svc-{p}")))
                .await
                .expect("count"),
            PER_PRODUCER as i64
        );
    }
    assert_eq!(store.count_checks(Some("late")).await.expect("count"), 0);
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_writer_flushes_a_partial_batch_on_shutdown() {
    // A batch far larger than what is submitted: nothing fills it, so only the drain writes these.
    let mut config = test_config();
    config.storage.batch_size = 50_000;
    config.storage.flush_interval_ms = 250;
    let mut app = common::app::spawn_app_with(config).await;
    let writer = app.core().writer.clone();
    let service: Arc<str> = Arc::from("partial");
    for i in 0..17 {
        writer.submit(record(&service, i)).await.expect("submit");
    }
    app.shutdown().await;
    let store = Store::open(&app.db_path)
        .await
        .expect("reopen the database");
    assert_eq!(
        store.count_checks(Some("partial")).await.expect("count"),
        17
    );
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_boss_api_starts_only_the_boss_api_in_process() {
    // The other services' addresses are taken: binding either would fail the start.
    let (_hp, hp_addr) = hold_port();
    let (_mb, mb_addr) = hold_port();
    let mut config = test_config();
    config.listen.health_proxy = hp_addr;
    config.listen.mcp_bridge = mb_addr;
    let app = spawn_app_only(config, Some(ServiceKind::BossApi)).await;
    assert_eq!(app.app().addr(ServiceKind::HealthProxy), None);
    assert_eq!(app.app().addr(ServiceKind::McpBridge), None);
    assert!(
        app.app().monitor().is_none(),
        "no Health Proxy machinery without the Health Proxy"
    );
    assert!(!app.app().worker_names().contains(&"monitor"));
    assert!(app.app().worker_names().contains(&"retention"));
    let (status, body) = app.get_json(ServiceKind::BossApi, "/healthz").await;
    assert_eq!(status, 200);
    assert_eq!(body["details"]["service"], json!("boss-api"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_only_boss_api_serves_only_the_boss_api() {
    let (_hp, hp_addr) = hold_port();
    let (_mb, mb_addr) = hold_port();
    let mut config = test_config_json();
    config["listen"]["health_proxy"] = json!(hp_addr.to_string());
    config["listen"]["mcp_bridge"] = json!(mb_addr.to_string());
    let mut hale = HaleProcess::serve(&config, &["--only", "boss-api"]).await;
    let addrs = hale.wait_listening(&[ServiceKind::BossApi]).await;
    let res = client()
        .get(format!("http://{}/healthz", addrs[&ServiceKind::BossApi]))
        .send()
        .await
        .expect("GET /healthz");
    let status = res.status().as_u16();
    let body: Value = res.json().await.expect("JSON");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["details"]["service"], json!("boss-api"));
    hale.signal("TERM");
    assert_eq!(exit_code(hale.wait_exit(Duration::from_secs(5)).await), 0);
    // Every service logs `listening` as it binds; only the Boss API did.
    let listening: Vec<Value> = hale
        .json_logs()
        .into_iter()
        .filter(|l| l["message"] == "listening")
        .collect();
    assert_eq!(listening.len(), 1, "{listening:?}");
    assert_eq!(listening[0]["service"], json!("boss-api"));
}

#[tokio::test]
async fn version_and_help_exit_0() {
    let dir = tempfile::tempdir().expect("temp dir");
    let output = run_hale(dir.path(), &["--version"]).await;
    assert_eq!(exit_code(output.status), 0);
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        format!("hale {}\n", env!("CARGO_PKG_VERSION"))
    );
    let output = run_hale(dir.path(), &["--help"]).await;
    assert_eq!(exit_code(output.status), 0);
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(help.contains("Usage: hale <COMMAND>"), "{help}");
    for command in ["serve", "check-config", "export"] {
        assert!(help.contains(command), "--help lists {command}: {help}");
    }
    let output = run_hale(dir.path(), &["serve", "--help"]).await;
    assert_eq!(exit_code(output.status), 0);
    let help = String::from_utf8_lossy(&output.stdout);
    for flag in ["--config", "--db", "--only"] {
        assert!(help.contains(flag), "serve --help lists {flag}: {help}");
    }
}

#[tokio::test]
async fn bad_command_lines_exit_2() {
    let dir = tempfile::tempdir().expect("temp dir");
    let output = run_hale(dir.path(), &["serve", "--bogus"]).await;
    assert_eq!(exit_code(output.status), 2);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("unexpected argument '--bogus'"), "{stderr}");

    let output = run_hale(dir.path(), &["serve", "--only", "everything"]).await;
    assert_eq!(exit_code(output.status), 2);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("invalid value 'everything'"), "{stderr}");

    let output = run_hale(dir.path(), &[]).await;
    assert_eq!(exit_code(output.status), 2);
    assert!(!dir.path().join("data").exists(), "nothing was started");
}

#[tokio::test]
async fn a_bad_log_format_exits_2_naming_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut cmd = common::process::hale_command(dir.path());
    cmd.env("HALE_LOG_FORMAT", "xml")
        .args(["serve", "--config", "missing.json"]);
    let output = tokio::time::timeout(common::DEADLINE, cmd.output())
        .await
        .expect("hale exits")
        .expect("run hale");
    assert_eq!(exit_code(output.status), 2);
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        "hale: HALE_LOG_FORMAT=\"xml\" is not json or pretty\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_in_process_app_shuts_down_and_its_database_reopens() {
    // A port below the kernel's ephemeral range (32768 and up): the other tests bind port 0, so none of them
    // can take this one over between the shutdown and the check.
    let port = (20_000..30_000u16)
        .find(|p| TcpListener::bind(("127.0.0.1", *p)).is_ok())
        .expect("a free port below the ephemeral range");
    let mut config = test_config();
    config.listen.health_proxy = SocketAddr::from(([127, 0, 0, 1], port));
    let mut app = common::app::spawn_app_with(config).await;
    let (status, _) = app.get_json(ServiceKind::HealthProxy, "/health").await;
    assert_eq!(status, 200);
    let addr = app.addr(ServiceKind::HealthProxy);
    app.shutdown().await;
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "the port is released after shutdown"
    );
    let store = Store::open(&app.db_path).await.expect("reopen");
    assert_eq!(store.count_checks(None).await.expect("count"), 0);
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_run_is_recorded_and_a_killed_one_is_called_unclean_at_the_next_start() {
    // A graceful run: its row is closed, with nothing lost.
    let mut first = HaleProcess::serve(&test_config_json(), &[]).await;
    first.wait_listening(&ServiceKind::ALL).await;
    first.signal("TERM");
    assert_eq!(exit_code(first.wait_exit(Duration::from_secs(10)).await), 0);
    let db = first.db_path.clone();
    assert_eq!(
        common::db::count_rows(
            &db,
            "hale_runs",
            "ended_at_ms IS NOT NULL AND lost_checks = 0"
        )
        .await,
        1
    );

    // A run killed with SIGKILL never closes its row...
    let mut killed = HaleProcess::serve_db(&test_config_json(), Some(&db), &[], &[]).await;
    killed.wait_listening(&ServiceKind::ALL).await;
    let killed_pid = killed.pid;
    killed.signal("KILL");
    killed.wait_exit(Duration::from_secs(10)).await;
    assert!(
        killed.json_logs().iter().all(|l| l["message"]
            != "the previous run of hale did not end cleanly (killed or crashed); checks it had not written yet are lost"),
        "the run before it ended cleanly"
    );

    // ...and the next start says so, naming it.
    let mut next = HaleProcess::serve_db(&test_config_json(), Some(&db), &[], &[]).await;
    next.wait_listening(&ServiceKind::ALL).await;
    // The start is recorded before the listeners are up, so this is logged by now or very soon.
    let warning = common::eventually("the unclean previous run reported", || async {
        next.json_logs().into_iter().find(|l| {
            l["message"]
                == "the previous run of hale did not end cleanly (killed or crashed); checks it had not written yet are lost"
        })
    })
    .await;
    assert_eq!(warning["level"], "WARN");
    assert_eq!(warning["previous_pid"], json!(killed_pid));
    next.signal("TERM");
    assert_eq!(exit_code(next.wait_exit(Duration::from_secs(10)).await), 0);
    assert_eq!(common::db::count_rows(&db, "hale_runs", "1 = 1").await, 3);
    assert_eq!(
        common::db::count_rows(&db, "hale_runs", "ended_at_ms IS NULL").await,
        1,
        "only the killed run is open"
    );
    assert_eq!(
        common::db::count_rows(
            &db,
            "hale_runs",
            &format!("pid = {killed_pid} AND ended_at_ms IS NULL")
        )
        .await,
        1
    );
}

/// Checks staged between settles survive a SIGKILL: the next start settles them into `checks` and the rollups
/// before anything reads, and a graceful stop settles the rest, so the file alone tells the whole story.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checks_staged_when_hale_is_killed_are_settled_at_the_next_start() {
    let target = common::receivers::CountingTarget::start().await;
    let mut config = common::config::tcp_targets_config(target.addr, 5);
    config["storage"] = json!({ "settle_interval_s": 3600 });
    let mut killed = HaleProcess::serve(&config, &[]).await;
    killed.wait_listening(&ServiceKind::ALL).await;
    let db = killed.db_path.clone();
    eventually("15 checks staged", || async {
        (count_rows(&db, "checks_recent", "1 = 1").await >= 15).then_some(())
    })
    .await;
    killed.signal("KILL");
    killed.wait_exit(Duration::from_secs(10)).await;
    // Staged, none settled: an hour-long settle interval and a kill.
    let staged = count_rows(&db, "checks_recent", "1 = 1").await;
    assert!(staged >= 15, "{staged} checks staged");
    assert_eq!(count_rows(&db, "checks", "1 = 1").await, 0);
    assert_eq!(count_rows(&db, "health_checks", "1 = 1").await, staged);

    let mut next = HaleProcess::serve_db(&config, Some(&db), &[], &[]).await;
    next.wait_listening(&ServiceKind::ALL).await;
    let settled = common::eventually("the leftovers settled at start", || async {
        next.json_logs()
            .into_iter()
            .find(|l| l["message"] == "settled the health checks the last run left unsettled")
    })
    .await;
    assert_eq!(settled["checks"], json!(staged));
    next.signal("TERM");
    assert_eq!(exit_code(next.wait_exit(Duration::from_secs(10)).await), 0);

    // After the graceful stop: everything settled, the killed run's checks among them, and each hour's
    // rollup counts exactly its checks.
    assert_eq!(count_rows(&db, "checks_recent", "1 = 1").await, 0);
    let all = count_rows(&db, "checks", "1 = 1").await;
    assert!(
        all >= staged,
        "{all} checks in all, {staged} from the killed run"
    );
    assert_eq!(count_rows(&db, "health_checks", "1 = 1").await, all);
    let mut conn = common::db::open_read_only(&db).await;
    let mismatched: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM checks_hourly AS h
         WHERE h.total != (SELECT count(*) FROM checks AS c WHERE c.target_id = h.target_id
                           AND c.checked_at_ms >= h.hour_ms AND c.checked_at_ms < h.hour_ms + 3600000
                           AND (c.state >> 5) = 0)",
    )
    .fetch_one(&mut conn)
    .await
    .expect("compare rollups");
    let rolled: i64 = sqlx::query_scalar("SELECT coalesce(sum(total), 0) FROM checks_hourly")
        .fetch_one(&mut conn)
        .await
        .expect("sum rollups");
    drop(conn);
    assert_eq!(mismatched, 0);
    assert_eq!(rolled, all, "every check here is a scheduled one");
}

/// The database lock is the file's, not the name's: a second hale on a symlink or a hard link to a live
/// hale's database exits 2 naming the live one, and leaves its run and its supervised child alone.
#[tokio::test]
async fn a_second_hale_through_a_symlink_or_a_hard_link_is_refused_and_changes_nothing() {
    let mut config = test_config_json();
    config["services"] = json!([{
        "name": "worker",
        "url": "tcp://127.0.0.1:1",
        "interval_s": 3600,
        "timeout_ms": 200,
        "run": {"argv": ["sleep", "300"]}
    }]);
    let mut first = HaleProcess::serve(&config, &[]).await;
    first.wait_listening(&[ServiceKind::HealthProxy]).await;
    let started = eventually("the child started", || async {
        first
            .json_logs()
            .into_iter()
            .find(|line| line["message"] == "child started" && line["target"] == "worker")
    })
    .await;
    let child = u32::try_from(started["pid"].as_u64().expect("a pid")).unwrap();
    let db = first.db_path.clone();
    // Both on the database's own filesystem (a hard link cannot cross one), in another folder.
    let links = tempfile::tempdir_in(first.dir.path()).unwrap();
    let symlink = links.path().join("link.db");
    std::os::unix::fs::symlink(&db, &symlink).unwrap();
    let hard = links.path().join("hard.db");
    std::fs::hard_link(&db, &hard).unwrap();

    for path in [&symlink, &hard] {
        let mut second = HaleProcess::serve_db(&config, Some(path), &[], &[]).await;
        let status = second.wait_exit(DEADLINE).await;
        let stderr = second.stderr_lines().join("\n");
        assert_eq!(exit_code(status), 2, "{}: {stderr}", path.display());
        assert!(
            stderr.contains(&format!("in use by another hale (pid {})", first.pid)),
            "{}: {stderr}",
            path.display()
        );
    }
    assert!(process_alive(child), "the first hale's child still runs");
    assert_eq!(
        count_rows(&db, "hale_runs", "1").await,
        1,
        "no run recorded by the refused starts"
    );
    assert_eq!(count_rows(&db, "hale_runs", "ended_at_ms IS NULL").await, 1);
    assert_eq!(
        count_rows(
            &db,
            "child_runs",
            "exited_at_ms IS NULL AND exit_signal IS NULL"
        )
        .await,
        1,
        "the child's row is not closed as left behind"
    );

    first.signal("TERM");
    assert_eq!(exit_code(first.wait_exit(DEADLINE).await), 0);
    assert!(!process_alive(child));
    assert_eq!(
        count_rows(&db, "hale_runs", "ended_at_ms IS NOT NULL").await,
        1
    );
    assert_eq!(count_rows(&db, "child_runs", "exit_signal = 15").await, 1);
}
