//! Workflow runs on the Boss API, against the real binary: `hale serve` (the build next to this benchmark,
//! release when run through `cargo bench`) as a child process with a temp database, an operate token and two
//! one-step workflows, `concurrency.limit` 1,000 (no group waits for another) and `workflows.max_running`
//! 16 (HALE_BENCH_MAX_RUNNING):
//!
//! - `one-command`: a `command` step running `["true"]` (a fork and exec, no network);
//! - `one-get`: an `http` GET of a local target server (the cheapest step with an effect: no child process).
//!
//! For each workflow:
//!
//! 1. 10 concurrent runs (10 clients, one start each), HALE_BENCH_ROUNDS_10 rounds: the start latency
//!    (POST start until its 202) p50/p95/p99 over every start, and per round the time until all 10 ended
//!    `succeeded` (from the database: the last `finished_ms` less the first `created_ms`), median and worst;
//! 2. 1,000 runs (HALE_BENCH_RUNS) started as fast as 32 clients (HALE_BENCH_CLIENTS) can, all queued at
//!    once: the start latency p50/p95/p99, the runs finished per second from the first start to the last
//!    finish (`min(created_ms)`, `max(finished_ms)` in the database), hale's CPU per run (utime+stime of hale
//!    and its waited-for children, from /proc), and, counted in the database file, never in hale's answers:
//!    1,000 runs, all `succeeded`, exactly one succeeded attempt per run;
//! 3. the database rows and bytes per run of that batch: rows in workflow_runs, workflow_attempts and
//!    workflow_approvals per run, the file's growth per run (`page_count * page_size`, after a
//!    `wal_checkpoint(TRUNCATE)` before and after), and the average length of the stored definition, inputs
//!    and output texts.
//!
//! The aims: p95 start under 50 ms, 200 runs/s of a one-step workflow on 2 cores, no lost or doubled run.
//!
//! Run: `cargo bench --bench workflows`.
//! Env: HALE_BENCH_WORKERS (2, hale's HTTP workers), HALE_BENCH_MAX_RUNNING (16), HALE_BENCH_ROUNDS_10 (50),
//! HALE_BENCH_RUNS (1,000), HALE_BENCH_CLIENTS (32), HALE_BENCH_WORKFLOWS (`one-command,one-get`),
//! HALE_BENCH_HALE (the binary, instead of the one cargo built for this benchmark).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpResponse, HttpServer};
use serde_json::{json, Value};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};
use tokio::io::AsyncBufReadExt;

const TOKEN_ENV: &str = "HALE_BENCH_OPERATE_TOKEN";
const TOKEN: &str = "wf-bench-operate-5Jd8Qm2Xr7Lp";

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() -> ExitCode {
    let workers = env_number("HALE_BENCH_WORKERS", 2);
    let max_running = env_number("HALE_BENCH_MAX_RUNNING", 16);
    let rounds = env_number("HALE_BENCH_ROUNDS_10", 50) as usize;
    let runs = env_number("HALE_BENCH_RUNS", 1_000) as usize;
    let clients = env_number("HALE_BENCH_CLIENTS", 32) as usize;
    let workflows: Vec<String> = std::env::var("HALE_BENCH_WORKFLOWS")
        .unwrap_or_else(|_| "one-command,one-get".to_owned())
        .split(',')
        .map(str::to_owned)
        .collect();

    let target = start_target_server();
    let dir = tempfile::tempdir().expect("temp dir");
    let db_path = dir.path().join("hale.db");
    let config = json!({
        "listen": {"health_proxy": "127.0.0.1:0", "mcp_bridge": "127.0.0.1:0", "boss_api": "127.0.0.1:0"},
        "http": {"workers": workers},
        "rate_limits": {"enabled": false},
        "auth": {"tokens": {"operate": {"env": TOKEN_ENV}}},
        "services": [{"name": "local", "url": format!("http://{target}/health"), "interval_s": 60}],
        "workflows": {
            "max_running": max_running,
            "definitions": [
                {"id": "one-command", "concurrency": {"limit": 1000},
                 "steps": [{"id": "true", "kind": "command", "argv": ["true"]}]},
                {"id": "one-get", "concurrency": {"limit": 1000},
                 "steps": [{"id": "get", "kind": "http", "target": "local", "path": "/ok"}]}
            ]
        }
    });
    let config_path = dir.path().join("config.json");
    std::fs::write(
        &config_path,
        serde_json::to_vec_pretty(&config).expect("encode"),
    )
    .expect("write the config");

    let binary = hale_path();
    let mut child = tokio::process::Command::new(&binary)
        .arg("serve")
        .arg("--config")
        .arg(&config_path)
        .arg("--db")
        .arg(&db_path)
        .current_dir(dir.path())
        .env_remove("HALE_CONFIG")
        .env_remove("HALE_DB")
        .env_remove("HALE_LOG")
        .env("HALE_LOG_FORMAT", "json")
        .env(TOKEN_ENV, TOKEN)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start hale serve");
    let pid = child.id().expect("hale's pid");
    let boss = boss_addr(child.stdout.take().expect("piped stdout")).await;
    let base = format!("http://{boss}");
    let db = open_db(&db_path).await;

    println!(
        "workflows: {} serve (pid {pid}), {workers} HTTP workers, max_running {max_running}, \
         {rounds} rounds of 10 concurrent runs, {runs} queued runs from {clients} clients; load average {}",
        binary.display(),
        load_average()
    );

    // Warm-up: connections, the database, the step's first spawn or request.
    let http = reqwest::Client::new();
    for workflow in &workflows {
        let mut ids = Vec::new();
        for _ in 0..20 {
            ids.push(start(&http, &base, workflow).await.0);
        }
        wait_ended(&db, &ids).await;
    }

    let mut ok = true;
    for workflow in &workflows {
        println!("\n== {workflow}");
        // 1. 10 concurrent runs.
        let mut starts = Vec::new();
        let mut took = Vec::new();
        let mut wall = Vec::new();
        for _ in 0..rounds {
            let began = Instant::now();
            let (ids, mut times) = start_many(&base, workflow, 10, 10).await;
            wait_ended(&db, &ids).await;
            wall.push(ms(began.elapsed()));
            starts.append(&mut times);
            let (lo, hi) = (
                *ids.iter().min().expect("runs"),
                *ids.iter().max().expect("runs"),
            );
            let (first, last, succeeded) = span(&db, lo, hi).await;
            ok &= succeeded == 10;
            took.push((last - first) as f64);
        }
        let s = Quantiles::of(&mut starts);
        println!(
            "1. 10 concurrent runs, {rounds} rounds: start p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms; \
             all 10 ended succeeded after (database) median {:.0} ms, worst {:.0} ms; \
             (seen by the client) median {:.0} ms",
            s.p50,
            s.p95,
            s.p99,
            median(took.clone()),
            took.iter().copied().fold(0.0, f64::max),
            median(wall)
        );

        // 2. 1,000 queued runs, and 3. rows and bytes per run.
        let bytes_before = checkpointed_bytes(&db).await;
        let cpu_before = cpu_ticks(pid);
        let began = Instant::now();
        let (ids, mut times) = start_many(&base, workflow, runs, clients).await;
        let started_in = began.elapsed();
        wait_ended(&db, &ids).await;
        let ended_in = began.elapsed();
        let cpu = ticks_s(cpu_ticks(pid) - cpu_before);
        let (lo, hi) = (
            *ids.iter().min().expect("runs"),
            *ids.iter().max().expect("runs"),
        );
        let s = Quantiles::of(&mut times);
        let (first, last, succeeded) = span(&db, lo, hi).await;
        let per_s = runs as f64 * 1000.0 / (last - first).max(1) as f64;
        let audit = Audit::read(&db, lo, hi).await;
        let bytes_after = checkpointed_bytes(&db).await;
        let whole = audit.runs == runs as i64
            && succeeded == runs as i64
            && audit.one_success == runs as i64
            && audit.distinct_ids == runs;
        ok &= whole;
        println!(
            "2. {runs} runs from {clients} clients: started in {:.2} s, all ended in {:.2} s (client); \
             start p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms; {per_s:.0} runs/s (database: first created \
             to last finished {} ms); hale CPU {:.2} s, {:.2} ms per run ({:.0} runs/s per core)",
            ms(started_in) / 1000.0,
            ms(ended_in) / 1000.0,
            s.p50,
            s.p95,
            s.p99,
            last - first,
            cpu,
            cpu * 1000.0 / runs as f64,
            runs as f64 / cpu.max(1e-9),
        );
        println!(
            "   database: {} runs for {} started (distinct ids {}), {succeeded} succeeded, {} with exactly one \
             succeeded attempt, {} attempts, {} approvals: {}",
            audit.runs,
            runs,
            audit.distinct_ids,
            audit.one_success,
            audit.attempts,
            audit.approvals,
            if whole {
                "no lost or doubled runs"
            } else {
                "RUNS LOST OR DOUBLED"
            }
        );
        let n = runs as f64;
        println!(
            "3. per run: {:.2} workflow_runs rows, {:.2} workflow_attempts rows, {:.2} workflow_approvals rows; \
             {:.0} bytes of file ({} -> {} bytes after a checkpoint); average text: definition {:.0}, \
             inputs {:.0}, reason {:.0}, output {:.0} bytes",
            audit.runs as f64 / n,
            audit.attempts as f64 / n,
            audit.approvals as f64 / n,
            (bytes_after - bytes_before) as f64 / n,
            bytes_before,
            bytes_after,
            audit.definition,
            audit.inputs,
            audit.reason,
            audit.output
        );
        let verdict = |met: bool| if met { "met" } else { "NOT met" };
        println!(
            "aims: p95 start under 50 ms: {:.2} ms, {}; 200 runs/s: {per_s:.0}, {}; no lost or doubled runs: {}",
            s.p95,
            verdict(s.p95 < 50.0),
            verdict(per_s >= 200.0),
            verdict(whole)
        );
    }
    println!("\nload average at the end: {}", load_average());

    let _ = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status();
    let _ = tokio::time::timeout(Duration::from_secs(20), child.wait()).await;
    db.close().await;
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// The hale binary: HALE_BENCH_HALE, or the one cargo built with this benchmark.
fn hale_path() -> PathBuf {
    std::env::var("HALE_BENCH_HALE")
        .map_or_else(|_| PathBuf::from(env!("CARGO_BIN_EXE_hale")), PathBuf::from)
}

/// Reads hale's JSON log lines until the Boss API says where it listens; the rest are read and dropped (as a
/// production hale's go to a log file), so hale never blocks on a full pipe.
async fn boss_addr(stdout: tokio::process::ChildStdout) -> SocketAddr {
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let mut tx = Some(tx);
        while let Ok(Some(line)) = lines.next_line().await {
            if tx.is_none() {
                continue;
            }
            let Ok(log) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            if log["message"] == "listening" && log["service"] == "boss-api" {
                if let Some(addr) = log["addr"].as_str().and_then(|a| a.parse().ok()) {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(addr);
                    }
                }
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(60), rx)
        .await
        .expect("hale's Boss API listens within 60 s")
        .expect("hale logged where its Boss API listens")
}

/// The bench's own connection to hale's database file.
async fn open_db(path: &Path) -> SqlitePool {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .busy_timeout(Duration::from_secs(30));
    SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .expect("open hale's database")
}

/// One start: the run's id and how long the 202 took.
async fn start(http: &reqwest::Client, base: &str, workflow: &str) -> (i64, Duration) {
    let began = Instant::now();
    let response = http
        .post(format!("{base}/workflow/{workflow}/start"))
        .bearer_auth(TOKEN)
        .json(&json!({"reason": "benchmark"}))
        .send()
        .await
        .expect("POST start");
    let status = response.status();
    let body: Value = response.json().await.expect("the start's JSON answer");
    let took = began.elapsed();
    assert_eq!(status.as_u16(), 202, "POST start: {status} {body}");
    let id = body["id"]
        .as_i64()
        .unwrap_or_else(|| panic!("no run id in {body}"));
    (id, took)
}

/// `n` starts from `clients` concurrent clients (one keep-alive connection each), as fast as they go.
async fn start_many(
    base: &str,
    workflow: &str,
    n: usize,
    clients: usize,
) -> (Vec<i64>, Vec<Duration>) {
    let next = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let (next, base, workflow) = (next.clone(), base.to_owned(), workflow.to_owned());
            tokio::spawn(async move {
                let http = reqwest::Client::new();
                let mut got = Vec::new();
                while next.fetch_add(1, Ordering::Relaxed) < n {
                    got.push(start(&http, &base, &workflow).await);
                }
                got
            })
        })
        .collect();
    let mut ids = Vec::with_capacity(n);
    let mut times = Vec::with_capacity(n);
    for task in tasks {
        for (id, took) in task.await.expect("a client") {
            ids.push(id);
            times.push(took);
        }
    }
    (ids, times)
}

/// Waits until every run in `ids` has ended (whatever its state).
async fn wait_ended(db: &SqlitePool, ids: &[i64]) {
    let (lo, hi) = (
        *ids.iter().min().expect("runs"),
        *ids.iter().max().expect("runs"),
    );
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let open: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM workflow_runs WHERE id BETWEEN ?1 AND ?2
               AND state IN ('queued', 'running', 'waiting')",
        )
        .bind(lo)
        .bind(hi)
        .fetch_one(db)
        .await
        .expect("count the open runs");
        if open == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{open} runs still open after 600 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The first `created_ms`, the last `finished_ms` and the succeeded runs of the ids `lo..=hi`.
async fn span(db: &SqlitePool, lo: i64, hi: i64) -> (i64, i64, i64) {
    sqlx::query_as(
        "SELECT MIN(created_ms), MAX(finished_ms), SUM(state = 'succeeded')
         FROM workflow_runs WHERE id BETWEEN ?1 AND ?2",
    )
    .bind(lo)
    .bind(hi)
    .fetch_one(db)
    .await
    .expect("read the runs' times")
}

/// What the database file holds about a batch of runs.
struct Audit {
    runs: i64,
    distinct_ids: usize,
    attempts: i64,
    approvals: i64,
    one_success: i64,
    definition: f64,
    inputs: f64,
    reason: f64,
    output: f64,
}

impl Audit {
    async fn read(db: &SqlitePool, lo: i64, hi: i64) -> Self {
        let scalar = |sql: &'static str| async move {
            sqlx::query_scalar::<_, i64>(sql)
                .bind(lo)
                .bind(hi)
                .fetch_one(db)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"))
        };
        let runs = scalar("SELECT COUNT(*) FROM workflow_runs WHERE id BETWEEN ?1 AND ?2").await;
        let distinct: Vec<i64> =
            sqlx::query_scalar("SELECT DISTINCT id FROM workflow_runs WHERE id BETWEEN ?1 AND ?2")
                .bind(lo)
                .bind(hi)
                .fetch_all(db)
                .await
                .expect("the run ids");
        let attempts =
            scalar("SELECT COUNT(*) FROM workflow_attempts WHERE run_id BETWEEN ?1 AND ?2").await;
        let approvals =
            scalar("SELECT COUNT(*) FROM workflow_approvals WHERE run_id BETWEEN ?1 AND ?2").await;
        let one_success = scalar(
            "SELECT COUNT(*) FROM workflow_runs r WHERE r.id BETWEEN ?1 AND ?2
               AND (SELECT COUNT(*) FROM workflow_attempts a
                    WHERE a.run_id = r.id AND a.state = 'succeeded') = 1",
        )
        .await;
        let (definition, inputs, reason): (f64, f64, f64) = sqlx::query_as(
            "SELECT AVG(LENGTH(CAST(definition AS BLOB))), AVG(LENGTH(CAST(inputs AS BLOB))),
                    AVG(LENGTH(CAST(reason AS BLOB)))
             FROM workflow_runs WHERE id BETWEEN ?1 AND ?2",
        )
        .bind(lo)
        .bind(hi)
        .fetch_one(db)
        .await
        .expect("the text lengths");
        let output: Option<f64> = sqlx::query_scalar(
            "SELECT AVG(LENGTH(CAST(output AS BLOB))) FROM workflow_attempts WHERE run_id BETWEEN ?1 AND ?2",
        )
        .bind(lo)
        .bind(hi)
        .fetch_one(db)
        .await
        .expect("the output length");
        Self {
            runs,
            distinct_ids: distinct.len(),
            attempts,
            approvals,
            one_success,
            definition,
            inputs,
            reason,
            output: output.unwrap_or(0.0),
        }
    }
}

/// The database's size after its WAL is checkpointed into it: `page_count * page_size`.
async fn checkpointed_bytes(db: &SqlitePool) -> i64 {
    let _ = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(db)
        .await;
    let pages: i64 = sqlx::query_scalar("PRAGMA page_count")
        .fetch_one(db)
        .await
        .expect("page_count");
    let size: i64 = sqlx::query_scalar("PRAGMA page_size")
        .fetch_one(db)
        .await
        .expect("page_size");
    pages * size
}

/// A minimal local HTTP server on its own thread and runtime, answering 200 to everything.
fn start_target_server() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            HttpServer::new(|| {
                App::new().default_service(web::to(|| async {
                    HttpResponse::Ok().json(json!({"ok": true}))
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

/// p50, p95, p99 in ms.
struct Quantiles {
    p50: f64,
    p95: f64,
    p99: f64,
}

impl Quantiles {
    fn of(times: &mut [Duration]) -> Self {
        times.sort();
        let at = |q: f64| ms(times[((times.len() as f64 * q) as usize).min(times.len() - 1)]);
        Self {
            p50: at(0.50),
            p95: at(0.95),
            p99: at(0.99),
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// utime + stime of a process and of its children it waited for, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // After the command name (in parentheses, which may hold spaces) the state is field 3; utime, stime,
    // cutime and cstime are fields 14 to 17.
    let rest = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    (14..=17)
        .map(|n| {
            fields
                .get(n - 3)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        })
        .sum()
}

/// Clock ticks in seconds (`getconf CLK_TCK`, 100 on Linux).
fn ticks_s(ticks: u64) -> f64 {
    let per_s = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0);
    ticks as f64 / per_s
}
