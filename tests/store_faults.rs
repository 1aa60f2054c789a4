//! The store under faults, on real SQLite files and the real binary: the disk fills up, the database file is
//! deleted or made read-only while hale runs, another process holds the write lock, and a read-only or locked
//! database at start. Every count of stored checks is read from the database file with `SELECT count(*)`,
//! never taken from hale's own counters; every check made is counted by the target that was probed.

// A test crate: an unwrap is an assertion, and tests/common sets a child's rlimit in `pre_exec`.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use hale::breaker::BreakerState;
use hale::kind::ServiceKind;
use hale::records::{CheckRecord, CheckSource, Outcome, ToolCallOutcome, ToolCallRecord};
use hale::store::Store;
use serde_json::{json, Value};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Connection, SqliteConnection};

use common::app::client;
use common::config::{tcp_targets_config, test_config_json};
use common::db::{count_check_rows, count_rows};
use common::eventually;
use common::process::{exit_code, run_hale, HaleProcess, Tmpfs};
use common::prom::sample_value;
use common::receivers::CountingTarget;

async fn health(client: &reqwest::Client, addr: SocketAddr) -> (u16, Value) {
    let res = client
        .get(format!("http://{addr}/health"))
        .send()
        .await
        .expect("GET /health");
    let status = res.status().as_u16();
    (status, res.json().await.expect("/health answers JSON"))
}

/// Waits until `/health` answers `status` with `details.database == database`, and returns the body.
async fn health_becomes(
    client: &reqwest::Client,
    addr: SocketAddr,
    status: u16,
    database: &str,
) -> Value {
    eventually(
        &format!("/health {status} with database {database:?}"),
        || async {
            let (got, body) = health(client, addr).await;
            (got == status && body["details"]["database"] == database).then_some(body)
        },
    )
    .await
}

async fn metrics(client: &reqwest::Client, addr: SocketAddr) -> String {
    client
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("read /metrics")
}

#[allow(unsafe_code)]
fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn run(cmd: &str, args: &[&str]) -> Result<(), String> {
    let out = std::process::Command::new(cmd)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run {cmd}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd} {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Makes a file read-only for hale until dropped: immutable (`chattr +i`) as root, whom file modes do not
/// stop, else mode 0444.
struct ReadOnly(PathBuf);

impl ReadOnly {
    fn set(path: &Path) -> Self {
        let shown = path.to_str().expect("utf-8 path");
        if is_root() {
            run("chattr", &["+i", shown]).expect("chattr +i (the filesystem must support it)");
        } else {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o444))
                .expect("chmod 0444");
        }
        Self(path.to_owned())
    }
}

impl Drop for ReadOnly {
    fn drop(&mut self) {
        let shown = self.0.to_str().unwrap_or_default();
        if is_root() {
            let _ = run("chattr", &["-i", shown]);
        } else {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&self.0, std::fs::Permissions::from_mode(0o644));
        }
    }
}

/// Fills the filesystem holding `path` with one file, until it refuses another byte.
fn fill_disk(path: &Path) {
    use std::io::Write;
    let mut file = std::fs::File::create(path).expect("create the filler file");
    let chunk = vec![0u8; 16 * 1024];
    loop {
        match file.write(&chunk) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
            Err(e) => panic!("fill the disk: {e}"),
        }
    }
    // Smaller writes take the last partial chunk.
    while file.write(&[0u8; 512]).is_ok_and(|n| n > 0) {}
    let _ = file.sync_all();
}

fn log_count(hale: &HaleProcess, message: &str) -> usize {
    hale.json_logs()
        .iter()
        .filter(|l| l["message"] == message)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_turns_health_503_counts_nothing_unstored_and_every_check_is_stored_once_space_is_back(
) {
    let disk = Tmpfs::mount("4m");
    let target = CountingTarget::start().await;
    let db = disk.path.join("hale.db");
    let mut hale =
        HaleProcess::serve_db(&tcp_targets_config(target.addr, 40), Some(&db), &[], &[]).await;
    let addrs = hale.wait_listening(&ServiceKind::ALL).await;
    let proxy = addrs[&ServiceKind::HealthProxy];
    let client = client();
    eventually("checks in the database", || async {
        (count_check_rows(&db, "1 = 1").await > 0).then_some(())
    })
    .await;

    let filler = disk.path.join("filler");
    fill_disk(&filler);
    // Every service says why checks cannot be stored.
    let body = health_becomes(&client, proxy, 503, "full").await;
    assert_eq!(body["ok"], json!(false));
    let reason = body["details"]["database_error"]
        .as_str()
        .unwrap_or_default();
    assert!(reason.contains("full"), "{body}");
    for kind in [ServiceKind::McpBridge, ServiceKind::BossApi] {
        let (status, body) = health(&client, addrs[&kind]).await;
        assert_eq!(status, 503, "{kind}: {body}");
        assert_eq!(body["details"]["database"], json!("full"), "{kind}");
    }
    // Stay full while two more rounds of checks come (the target counts them) and are held, none counted as
    // written, and while the writer's failed attempts are counted.
    let full_since = target.accepted();
    let text = eventually(
        "two rounds of checks made while the disk is full",
        || async {
            let text = metrics(&client, proxy).await;
            let failed = sample_value(&text, "store_write_errors_total", &[("kind", "full")]);
            (target.accepted() >= full_since + 80 && failed.is_some_and(|n| n >= 1.0))
                .then_some(text)
        },
    )
    .await;
    let claimed = sample_value(&text, "store_rows_written_total", &[]).expect("rows written");
    let failures = sample_value(&text, "store_write_errors_total", &[("kind", "full")])
        .expect("write errors by kind");
    assert!(failures >= 1.0, "the failed writes are counted: {failures}");
    let queued = sample_value(&text, "store_queue_depth", &[]).expect("queue depth");
    assert!(queued > 0.0, "checks are held while the disk is full");

    std::fs::remove_file(&filler).expect("free the space");
    health_becomes(&client, proxy, 200, "ok").await;
    let stored = count_check_rows(&db, "1 = 1").await;
    assert!(
        claimed as i64 <= stored,
        "hale claimed {claimed} rows written while the file held {stored}"
    );
    eventually("new checks stored after the space came back", || async {
        (count_check_rows(&db, "1 = 1").await > stored + 40).then_some(())
    })
    .await;

    hale.signal("TERM");
    let status = hale.wait_exit(Duration::from_secs(10)).await;
    assert_eq!(
        exit_code(status),
        0,
        "nothing was lost; stderr: {:?}",
        hale.stderr_lines()
    );
    let made = target.accepted();
    assert_eq!(
        count_check_rows(&db, "1 = 1").await,
        made as i64,
        "every check made is in the file once"
    );
    assert_eq!(
        log_count(
            &hale,
            "cannot store health checks; holding them in memory and retrying"
        ),
        1,
        "one ERROR for the whole episode"
    );
    assert_eq!(
        log_count(
            &hale,
            "database writes recovered; held health checks are being written"
        ),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_file_deleted_while_running_turns_health_503_and_the_exit_status_says_checks_were_lost(
) {
    let target = CountingTarget::start().await;
    let mut hale = HaleProcess::serve(&tcp_targets_config(target.addr, 5), &[]).await;
    let addrs = hale.wait_listening(&ServiceKind::ALL).await;
    let proxy = addrs[&ServiceKind::HealthProxy];
    let client = client();
    let db = hale.db_path.clone();
    eventually("checks in the database", || async {
        (count_check_rows(&db, "1 = 1").await > 0).then_some(())
    })
    .await;

    std::fs::remove_file(&db).expect("delete the database file");
    let body = health_becomes(&client, proxy, 503, "file_gone").await;
    let reason = body["details"]["database_error"]
        .as_str()
        .unwrap_or_default();
    assert!(reason.contains("deleted"), "{body}");
    // Checks made from now on cannot be stored anywhere a person could find them.
    let made = target.accepted();
    eventually("more checks made", || async {
        (target.accepted() > made + 5).then_some(())
    })
    .await;

    hale.signal("TERM");
    let status = hale.wait_exit(Duration::from_secs(10)).await;
    assert_eq!(exit_code(status), 3, "stderr: {:?}", hale.stderr_lines());
    let stderr = hale.stderr_lines().join("\n");
    assert!(stderr.contains("were not stored"), "{stderr}");
    let drained = hale
        .json_logs()
        .into_iter()
        .find(|l| l["message"] == "check writer drained")
        .expect("the drain is logged");
    assert!(
        drained["unwritten"].as_u64().unwrap_or_default() >= 5,
        "{drained}"
    );
    assert!(!db.exists(), "no database file was written at the old path");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_file_made_read_only_while_running_turns_health_503_until_it_is_writable_again()
{
    let target = CountingTarget::start().await;
    let mut hale = HaleProcess::serve(&tcp_targets_config(target.addr, 5), &[]).await;
    let addrs = hale.wait_listening(&ServiceKind::ALL).await;
    let proxy = addrs[&ServiceKind::HealthProxy];
    let client = client();
    let db = hale.db_path.clone();
    eventually("checks in the database", || async {
        (count_check_rows(&db, "1 = 1").await > 0).then_some(())
    })
    .await;

    let read_only = ReadOnly::set(&db);
    let body = health_becomes(&client, proxy, 503, "read_only").await;
    let reason = body["details"]["database_error"]
        .as_str()
        .unwrap_or_default();
    assert!(reason.contains("no longer writable"), "{body}");
    drop(read_only);
    health_becomes(&client, proxy, 200, "ok").await;

    hale.signal("TERM");
    let status = hale.wait_exit(Duration::from_secs(10)).await;
    assert_eq!(exit_code(status), 0, "stderr: {:?}", hale.stderr_lines());
    assert_eq!(
        count_check_rows(&db, "1 = 1").await,
        target.accepted() as i64
    );
}

/// A database created (schema applied) and closed, in its own temp folder.
async fn fresh_database() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("create a temp dir");
    let db = dir.path().join("hale.db");
    let store = Store::open(&db).await.expect("create the database");
    store.close().await;
    (dir, db)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_database_at_start_exits_2_and_is_left_alone() {
    let (dir, db) = fresh_database().await;
    let before = std::fs::read(&db).expect("read the database");
    let read_only = ReadOnly::set(&db);
    let out = serve_until_it_exits(dir.path(), &db).await;
    drop(read_only);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(exit_code(out.status), 2, "{stderr}");
    assert!(stderr.contains("is read-only"), "{stderr}");
    assert!(stderr.contains(db.to_str().expect("utf-8")), "{stderr}");
    assert_eq!(std::fs::read(&db).expect("read the database"), before);
}

/// Runs `hale serve` with the test config on `db` in `dir`, expecting it to exit on its own (a refusal).
async fn serve_until_it_exits(dir: &Path, db: &Path) -> std::process::Output {
    let config = dir.join("config.json");
    std::fs::write(&config, test_config_json().to_string()).expect("write the config");
    run_hale(
        dir,
        &[
            "serve",
            "--config",
            config.to_str().expect("utf-8"),
            "--db",
            db.to_str().expect("utf-8"),
        ],
    )
    .await
}

/// Holds SQLite's write lock on `db` until dropped, as a `sqlite3` shell inside `BEGIN IMMEDIATE` would.
async fn hold_write_lock(db: &Path) -> SqliteConnection {
    let options = SqliteConnectOptions::from_str("sqlite:")
        .expect("sqlite options")
        .filename(db);
    let mut conn = SqliteConnection::connect_with(&options)
        .await
        .expect("open the database");
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut conn)
        .await
        .expect("take the write lock");
    conn
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_locked_database_at_start_exits_2_naming_the_lock() {
    let (dir, db) = fresh_database().await;
    let lock = hold_write_lock(&db).await;
    let out = serve_until_it_exits(dir.path(), &db).await;
    drop(lock);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(exit_code(out.status), 2, "{stderr}");
    assert!(stderr.contains("is locked by another process"), "{stderr}");
}

fn record(service: &Arc<str>) -> CheckRecord {
    CheckRecord {
        checked_at: chrono::Utc::now(),
        service: service.clone(),
        outcome: Outcome::Up,
        http_status: Some(200),
        latency: Some(Duration::from_millis(3)),
        error: None,
        breaker_state: BreakerState::Closed,
        source: CheckSource::Monitor,
    }
}

/// The record of one MCP tool call, as the bridge hands it to the same writer as the checks.
fn tool_call(i: usize) -> ToolCallRecord {
    ToolCallRecord {
        at: chrono::Utc::now(),
        server: Arc::from("tools"),
        tool: "echo".to_owned(),
        outcome: ToolCallOutcome::Ok,
        latency: Some(Duration::from_micros(1_500)),
        request_id: format!("call-{i}"),
        role: Some("operate"),
        argument_bytes: 17,
        error: None,
        arguments: None,
        result: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_lock_held_by_another_process_is_waited_out_and_nothing_is_lost() {
    let mut app = common::app::spawn_app().await;
    let writer = app.core().writer.clone();
    let service: Arc<str> = Arc::from("locked");
    for i in 0..100 {
        writer.submit(record(&service)).await.expect("submit");
        if i % 2 == 0 {
            writer.submit_tool_call(tool_call(i)).await.expect("submit");
        }
    }
    let db = app.db_path.clone();
    eventually("the first rows stored", || async {
        (count_check_rows(&db, "1 = 1").await == 100
            && count_rows(&db, "tool_calls", "1 = 1").await == 50)
            .then_some(())
    })
    .await;

    let mut lock = hold_write_lock(&db).await;
    for i in 100..200 {
        writer.submit(record(&service)).await.expect("submit");
        if i % 2 == 0 {
            writer.submit_tool_call(tool_call(i)).await.expect("submit");
        }
    }
    // The writer gives up on the lock after the busy timeout (5 s) and says why.
    let proxy = app.addr(ServiceKind::HealthProxy);
    let body = health_becomes(&app.client, proxy, 503, "locked").await;
    assert!(body["details"]["writer_queue"].as_u64().unwrap_or_default() >= 100);
    assert_eq!(
        count_check_rows(&db, "1 = 1").await,
        100,
        "nothing written under the lock"
    );
    sqlx::query("ROLLBACK")
        .execute(&mut lock)
        .await
        .expect("release the lock");
    health_becomes(&app.client, proxy, 200, "ok").await;
    assert_eq!(count_check_rows(&db, "1 = 1").await, 200);
    assert_eq!(count_rows(&db, "tool_calls", "1 = 1").await, 100);
    assert_eq!(
        count_rows(&db, "tool_calls", "request_id = 'call-198'").await,
        1,
        "each call once"
    );
    let report = app.shutdown_with_report().await;
    assert_eq!(report.written, 300, "checks and tool calls");
    assert_eq!(report.lost(), 0);
    let _ = lock.close().await;
}

/// An HTTP target that answers every request with the status it is set to, one request per connection.
struct SwitchTarget {
    addr: SocketAddr,
    status: Arc<std::sync::atomic::AtomicU16>,
    task: tokio::task::JoinHandle<()>,
}

impl SwitchTarget {
    async fn start() -> Self {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the target");
        let addr = listener.local_addr().expect("target address");
        let status = Arc::new(std::sync::atomic::AtomicU16::new(200));
        let answer = status.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let answer = answer.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 1024];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match socket.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let status = answer.load(std::sync::atomic::Ordering::SeqCst);
                    let response = format!(
                        "HTTP/1.1 {status} Answer\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                    );
                    let _ = socket.write_all(response.as_bytes()).await;
                    let _ = socket.shutdown().await;
                });
            }
        });
        Self { addr, status, task }
    }

    fn set(&self, status: u16) {
        self.status
            .store(status, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Drop for SwitchTarget {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The `written` field of the writer's closing log line.
fn drained_written(hale: &HaleProcess) -> i64 {
    hale.json_logs()
        .iter()
        .find(|l| l["message"] == "check writer drained")
        .and_then(|l| l["written"].as_i64())
        .unwrap_or_else(|| panic!("no `check writer drained` line: {:?}", hale.stderr_lines()))
}

/// The disk fills up while every kind of write is in flight: checks, breaker states and transitions, alerts,
/// their events and deliveries, heal events and the child runs of a crash-looping supervised child. A write
/// that fails inside a transaction must never leave its connection in the pool still inside that transaction,
/// where the check writer would later "commit" rows into a transaction that never ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_during_every_kind_of_write_loses_no_row_counted_and_writing_resumes_when_space_returns(
) {
    let disk = Tmpfs::mount("16m");
    let target = SwitchTarget::start().await;
    let db = disk.path.join("hale.db");
    let mut config = test_config_json();
    let mut services: Vec<Value> = (0..60)
        .map(|i| {
            json!({
                "name": format!("t{i}"),
                "url": format!("http://{}/health", target.addr),
                "interval_s": 1,
                "timeout_ms": 500,
                "breaker": { "failure_threshold": 2, "success_threshold": 1, "open_timeout_s": 1 },
                "heal": { "command": ["true"], "command_timeout_s": 5 }
            })
        })
        .collect();
    // A crash-looping child: a `child_runs` row at every restart.
    services.push(json!({
        "name": "crashing",
        "url": format!("http://{}/health", target.addr),
        "interval_s": 1,
        "timeout_ms": 500,
        "run": { "argv": ["sh", "-c", "sleep 0.2; exit 3"] }
    }));
    config["services"] = json!(services);
    config["heal"] = json!({ "after_failures": 1, "cooldown_s": 1 });
    config["auth"] = json!({ "tokens": { "operate": { "env": "HALE_FULL_DISK_OPERATE" } } });
    let mut hale = HaleProcess::serve_db(
        &config,
        Some(&db),
        &[],
        &[("HALE_FULL_DISK_OPERATE", OPERATE_TOKEN)],
    )
    .await;
    let addrs = hale.wait_listening(&ServiceKind::ALL).await;
    let proxy = addrs[&ServiceKind::HealthProxy];
    let client = client();
    eventually("checks in the database", || async {
        (count_check_rows(&db, "1 = 1").await > 100).then_some(())
    })
    .await;

    // Every target starts failing as the disk fills: breakers open, alerts fire, heals run, all writing.
    target.set(500);
    let filler = disk.path.join("filler");
    fill_disk(&filler);
    health_becomes(&client, proxy, 503, "full").await;
    // While the disk stays full, writes keep failing: /health must say so all along, never "recovered".
    for _ in 0..15 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let (status, body) = health(&client, proxy).await;
        assert_eq!(status, 503, "the disk is still full: {body}");
    }
    // A change asked for while the disk is full fails and says so; none is claimed as stored.
    let (status, body) = post_maintenance(&client, proxy, "while full").await;
    assert!(
        status >= 500,
        "a maintenance window cannot be stored now: {status} {body}"
    );

    std::fs::remove_file(&filler).expect("free the space");
    target.set(200);
    health_becomes(&client, proxy, 200, "ok").await;
    let stored = count_check_rows(&db, "1 = 1").await;
    // Written for real: the file grows, and the breakers' recovery lands too.
    eventually(
        "checks keep landing in the file after the space came back",
        || async { (count_check_rows(&db, "1 = 1").await > stored + 200).then_some(()) },
    )
    .await;
    let (status, body) = post_maintenance(&client, proxy, "after the disk").await;
    assert_eq!(status, 201, "{body}");
    let transitions = common::db::count_rows(&db, "breaker_transitions", "1 = 1").await;
    assert!(transitions > 0, "breaker transitions are stored");

    hale.signal("TERM");
    let status = hale.wait_exit(Duration::from_secs(20)).await;
    assert_eq!(
        exit_code(status),
        0,
        "nothing was lost; stderr: {:?}",
        hale.stderr_lines()
    );
    let written = drained_written(&hale);
    assert_eq!(
        count_check_rows(&db, "1 = 1").await,
        written,
        "every row the writer counted as written is in the file"
    );
    let unfinished: Vec<Value> = hale
        .json_logs()
        .into_iter()
        .filter(|l| {
            l["message"].as_str().is_some_and(|m| {
                m.contains("could not be fully checkpointed") || m.contains("cannot checkpoint")
            })
        })
        .collect();
    assert!(
        unfinished.is_empty(),
        "the close checkpoint finished: {unfinished:?}"
    );
    for table in [
        "heal_events",
        "child_runs",
        "alerts",
        "alert_events",
        "alert_deliveries",
        "audit_log",
        "hale_runs",
    ] {
        assert!(
            common::db::count_rows(&db, table, "1 = 1").await > 0,
            "{table} rows are stored"
        );
    }
    assert_eq!(
        common::db::count_rows(&db, "maintenance_windows", "1 = 1").await,
        1,
        "only the window asked for after the disk had room is stored"
    );
}

const OPERATE_TOKEN: &str = "r8Vq2LmP9xTt4WzY7nB3cK6fG1hJ5sQe";

/// `POST /maintenance` for every target, starting in an hour, with the operate token.
async fn post_maintenance(
    client: &reqwest::Client,
    addr: SocketAddr,
    reason: &str,
) -> (u16, Value) {
    let starts = chrono::Utc::now() + chrono::Duration::hours(1);
    let res = client
        .post(format!("http://{addr}/maintenance"))
        .bearer_auth(OPERATE_TOKEN)
        .json(&json!({
            "starts_at": starts.to_rfc3339(),
            "ends_at": (starts + chrono::Duration::hours(1)).to_rfc3339(),
            "reason": reason
        }))
        .send()
        .await
        .expect("POST /maintenance");
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}
