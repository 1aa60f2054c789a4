//! The MCP WebBridge against a direct MCP client, side by side in one run, with the in-repo rmcp server
//! (`examples/mcp_fixture.rs`) serving streamable HTTP on loopback and hale's bridge started in-process on
//! port 0 (as `hale serve` builds it: `hale::app::Application`, a temp database, hale's JSON request logs
//! written to /dev/null) with the fixture as its one server (`call_role: read`, rate limits off):
//!
//! 1. added latency: `echo` called by an rmcp client straight at the fixture, against the same call as
//!    `POST /tools/echo` through hale (one keep-alive reqwest client), sequentially, the two interleaved in
//!    blocks; p50, p99 and mean of each, and the differences;
//! 2. calls/s: `POST /tools/echo` under `wrk` with 64 connections, against 64 concurrent tasks calling
//!    `echo` on one direct rmcp session (the fixture's own ceiling on this machine), with the CPU time hale
//!    and the fixture spent per call (from /proc: hale's process is this one, idle but for the bridge while
//!    wrk runs);
//! 3. `GET /tools` against `GET /health` on the same bridge under `wrk`: requests/s and their ratio.
//!
//! Loads are interleaved in rounds (the order rotates each round), so a noisy neighbour slows all of them
//! alike. The aims: added p99 under 1 ms, 5,000 calls/s or more on 2 cores, `GET /tools` at 0.7x or more
//! of `GET /health`.
//!
//! Run: `cargo bench --bench mcp_bridge` (needs `wrk`: `apt-get install -y wrk`; builds the fixture with
//! `cargo build --release --example mcp_fixture` if it is not built yet).
//! Env: HALE_BENCH_WORKERS (2, hale's HTTP workers), HALE_BENCH_CALLS (2,000 sequential calls per client),
//! HALE_BENCH_CONCURRENCY (64), HALE_BENCH_CONNECTIONS (32, for `GET /tools` and `GET /health`),
//! HALE_BENCH_SECONDS (5 per load measurement), HALE_BENCH_ROUNDS (3), HALE_BENCH_WRK_THREADS (1),
//! HALE_BENCH_FIXTURE (the fixture's binary, instead of target/release/examples/mcp_fixture).

#[path = "common/wrk.rs"]
mod wrk;
use std::path::PathBuf;
use std::process::{ExitCode, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hale::app::Application;
use hale::config::{Config, McpServerConfig};
use hale::kind::ServiceKind;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::ServiceExt;
use serde_json::{json, Value};
use tokio::io::AsyncBufReadExt;
use wrk::{env_number, ms, wrk, Run};

#[tokio::main]
async fn main() -> ExitCode {
    if !wrk::installed("mcp_bridge") {
        return ExitCode::FAILURE;
    }
    let workers = env_number("HALE_BENCH_WORKERS", 2) as usize;
    let calls = env_number("HALE_BENCH_CALLS", 2_000) as usize;
    let concurrency = env_number("HALE_BENCH_CONCURRENCY", 64);
    let connections = env_number("HALE_BENCH_CONNECTIONS", 32);
    let seconds = env_number("HALE_BENCH_SECONDS", 5);
    let rounds = env_number("HALE_BENCH_ROUNDS", 3) as usize;
    let wrk_threads = env_number("HALE_BENCH_WRK_THREADS", 1);
    install_json_logs();

    // The fixture, over streamable HTTP on loopback.
    let mut fixture = tokio::process::Command::new(fixture_path())
        .arg("http")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start the fixture");
    let fixture_pid = fixture.id().expect("the fixture's pid");
    let stdout = fixture.stdout.take().expect("piped stdout");
    let addr = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::io::BufReader::new(stdout).lines().next_line(),
    )
    .await
    .expect("the fixture prints its address")
    .expect("read the fixture's stdout")
    .expect("an address line");
    let mcp_url = format!("http://{addr}/mcp");

    // hale's bridge, in-process, with the fixture as its one server.
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = Config::default();
    config.listen.mcp_bridge = "127.0.0.1:0".parse().expect("address");
    config.http.workers = workers;
    config.services = Vec::new();
    config.rate_limits.enabled = false;
    let server: McpServerConfig = serde_json::from_value(json!({
        "name": "fixture", "url": mcp_url, "timeout_s": 30, "call_role": "read",
    }))
    .expect("a valid MCP server");
    config.mcp_servers = vec![server];
    let app = Application::start(
        config,
        &dir.path().join("hale.db"),
        Some(ServiceKind::McpBridge),
    )
    .await
    .expect("start hale");
    let bridge = format!(
        "http://{}",
        app.addr(ServiceKind::McpBridge).expect("the MCP WebBridge")
    );
    let http = reqwest::Client::new();
    wait_ready(&http, &bridge).await;

    // The direct client: one rmcp session straight at the fixture.
    let direct =
        ().serve(StreamableHttpClientTransport::from_uri(mcp_url.clone()))
            .await
            .expect("connect to the fixture");
    let peer = direct.peer().clone();
    let call_url = format!("{bridge}/tools/echo");

    println!(
        "mcp_bridge: hale in-process ({workers} HTTP workers), fixture {mcp_url}, {calls} sequential calls \
         per client, {concurrency} concurrent for calls/s, wrk -t{wrk_threads} -d{seconds}s, {rounds} rounds"
    );

    // 1. Added latency, sequential.
    let mut direct_times = Vec::with_capacity(calls);
    let mut bridge_times = Vec::with_capacity(calls);
    for _ in 0..200 {
        direct_call(&peer).await;
        bridge_call(&http, &call_url).await;
    }
    let block = 100.min(calls.max(1));
    while direct_times.len() < calls {
        let n = block.min(calls - direct_times.len());
        for _ in 0..n {
            let started = Instant::now();
            direct_call(&peer).await;
            direct_times.push(started.elapsed());
        }
        for _ in 0..n {
            let started = Instant::now();
            bridge_call(&http, &call_url).await;
            bridge_times.push(started.elapsed());
        }
    }
    let direct_stats = Stats::of(&mut direct_times);
    let bridge_stats = Stats::of(&mut bridge_times);
    println!("\n1. added latency, {calls} sequential `echo` calls each, interleaved in blocks of {block}:");
    println!(
        "| {:<34} | {:>8} | {:>8} | {:>8} |",
        "client", "p50 ms", "p99 ms", "mean ms"
    );
    for (name, s) in [
        ("direct rmcp client", &direct_stats),
        ("POST /tools/echo through hale", &bridge_stats),
    ] {
        println!(
            "| {:<34} | {:>8.3} | {:>8.3} | {:>8.3} |",
            name, s.p50, s.p99, s.mean
        );
    }
    let added_p50 = bridge_stats.p50 - direct_stats.p50;
    let added_p99 = bridge_stats.p99 - direct_stats.p99;
    println!(
        "| {:<34} | {:>8.3} | {:>8.3} | {:>8.3} |",
        "added by hale",
        added_p50,
        added_p99,
        bridge_stats.mean - direct_stats.mean
    );

    // 2. Calls/s with 64 concurrent clients, and 3. GET /tools against GET /health.
    let script = dir.path().join("post_echo.lua");
    std::fs::write(
        &script,
        "wrk.method = \"POST\"\nwrk.body = '{\"message\":\"hi\"}'\n\
         wrk.headers[\"Content-Type\"] = \"application/json\"\n",
    )
    .expect("write the wrk script");
    for (url, c, lua) in [
        (&call_url, concurrency, Some(&script)),
        (&format!("{bridge}/tools"), connections, None),
        (&format!("{bridge}/health"), connections, None),
    ] {
        wrk(url, wrk_threads, c, 1, lua.map(|p| p.as_path())).await;
    }
    direct_load(&peer, concurrency, 1).await;

    let tools_url = format!("{bridge}/tools");
    let health_url = format!("{bridge}/health");
    let names = [
        "POST /tools/echo (wrk)",
        "direct rmcp, one session",
        "GET /tools",
        "GET /health",
    ];
    let mut rps: Vec<Vec<f64>> = vec![Vec::new(); names.len()];
    let mut cpu_hale = Vec::new();
    let mut cpu_fixture = Vec::new();
    let mut cpu_fixture_direct = Vec::new();
    for round in 0..rounds {
        for i in 0..names.len() {
            let index = (i + round) % names.len();
            let (line, value) = match index {
                0 => {
                    let hale_before = cpu_ticks("self");
                    let fixture_before = cpu_ticks(&fixture_pid.to_string());
                    let run =
                        wrk(&call_url, wrk_threads, concurrency, seconds, Some(&script)).await;
                    let served = run.requests_per_s * seconds as f64;
                    cpu_hale.push(ticks_us(cpu_ticks("self") - hale_before) / served);
                    cpu_fixture.push(
                        ticks_us(cpu_ticks(&fixture_pid.to_string()) - fixture_before) / served,
                    );
                    (run_line(&run), run.requests_per_s)
                }
                1 => {
                    let fixture_before = cpu_ticks(&fixture_pid.to_string());
                    let (per_s, errors) = direct_load(&peer, concurrency, seconds).await;
                    cpu_fixture_direct.push(
                        ticks_us(cpu_ticks(&fixture_pid.to_string()) - fixture_before)
                            / (per_s * seconds as f64),
                    );
                    (format!("{per_s:>9.0} calls/s  errors {errors}"), per_s)
                }
                2 | 3 => {
                    let url = if index == 2 { &tools_url } else { &health_url };
                    let run = wrk(url, wrk_threads, connections, seconds, None).await;
                    (run_line(&run), run.requests_per_s)
                }
                _ => unreachable!("four loads"),
            };
            println!("round {}: {:<26} {line}", round + 1, names[index]);
            rps[index].push(value);
        }
    }
    let per_s: Vec<f64> = rps.into_iter().map(median).collect();
    println!("\n2. calls/s, {concurrency} concurrent clients, median of {rounds} rounds:");
    println!("| {:<34} | {:>9} |", "client", "calls/s");
    println!(
        "| {:<34} | {:>9.0} |",
        "POST /tools/echo through hale", per_s[0]
    );
    println!("| {:<34} | {:>9.0} |", "direct rmcp, one session", per_s[1]);
    let hale_us = median(cpu_hale);
    let fixture_us = median(cpu_fixture);
    println!(
        "CPU per call through hale: hale {hale_us:.0} µs, the fixture {fixture_us:.0} µs \
         (the fixture per direct call: {:.0} µs); hale alone on 2 cores: {:.0} calls/s",
        median(cpu_fixture_direct),
        2e6 / hale_us
    );
    println!(
        "\n3. GET /tools against GET /health, wrk -c{connections}, median of {rounds} rounds:"
    );
    println!("| {:<34} | {:>9} |", "route", "req/s");
    println!("| {:<34} | {:>9.0} |", "GET /tools", per_s[2]);
    println!("| {:<34} | {:>9.0} |", "GET /health", per_s[3]);
    let ratio = per_s[2] / per_s[3];
    println!(
        "bodies: GET /tools {} bytes ({} tools), GET /health {} bytes",
        body_len(&http, &tools_url).await,
        tool_count(&http, &tools_url).await,
        body_len(&http, &health_url).await
    );

    let verdict = |ok: bool| if ok { "met" } else { "NOT met" };
    println!(
        "\naims: added p99 under 1 ms: {added_p99:.3} ms, {}; 5,000 calls/s or more: {:.0}, {}; \
         GET /tools at 0.7x or more of GET /health: {ratio:.2}x, {}",
        verdict(added_p99 < 1.0),
        per_s[0],
        verdict(per_s[0] >= 5000.0),
        verdict(ratio >= 0.7)
    );

    let _ = direct.cancel().await;
    app.shutdown().await;
    let _ = fixture.kill().await;
    ExitCode::SUCCESS
}

/// The fixture's binary: HALE_BENCH_FIXTURE, or the release build next to this benchmark (built if missing).
fn fixture_path() -> PathBuf {
    if let Ok(path) = std::env::var("HALE_BENCH_FIXTURE") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("the benchmark's path");
    // target/release/deps/mcp_bridge-HASH -> target/release/examples/mcp_fixture
    let path = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("the benchmark is in target/<profile>/deps")
        .join("examples")
        .join("mcp_fixture");
    if !path.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let status = std::process::Command::new(cargo)
            .args(["build", "--release", "--example", "mcp_fixture"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("run cargo build --release --example mcp_fixture");
        assert!(status.success(), "cargo build --example mcp_fixture failed");
    }
    path
}

/// Waits until the bridge lists the fixture's tools.
async fn wait_ready(http: &reqwest::Client, bridge: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(response) = http.get(format!("{bridge}/tools")).send().await {
            if let Ok(Value::Array(tools)) = response.json::<Value>().await {
                if tools.iter().any(|t| t["name"] == "echo") {
                    return;
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "the bridge did not list the fixture's tools within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn body_len(http: &reqwest::Client, url: &str) -> usize {
    match http.get(url).send().await {
        Ok(response) => response.bytes().await.map_or(0, |b| b.len()),
        Err(_) => 0,
    }
}

async fn tool_count(http: &reqwest::Client, url: &str) -> usize {
    match http.get(url).send().await {
        Ok(response) => response
            .json::<Value>()
            .await
            .ok()
            .and_then(|v| v.as_array().map(Vec::len))
            .unwrap_or(0),
        Err(_) => 0,
    }
}

fn echo_params() -> CallToolRequestParams {
    let mut params = CallToolRequestParams::new("echo");
    params.arguments = json!({"message": "hi"}).as_object().cloned();
    params
}

async fn direct_call(peer: &rmcp::Peer<rmcp::RoleClient>) {
    let result = peer.call_tool(echo_params()).await.expect("a direct call");
    assert_ne!(result.is_error, Some(true), "echo failed: {result:?}");
}

async fn bridge_call(http: &reqwest::Client, url: &str) {
    let response = http
        .post(url)
        .json(&json!({"message": "hi"}))
        .send()
        .await
        .expect("POST /tools/echo");
    let status = response.status();
    let body = response.bytes().await.expect("the answer's body");
    assert!(
        status.is_success(),
        "POST /tools/echo: {status} {}",
        String::from_utf8_lossy(&body)
    );
}

/// `concurrency` tasks calling `echo` on one session for `seconds`: calls/s and failed calls.
async fn direct_load(
    peer: &rmcp::Peer<rmcp::RoleClient>,
    concurrency: u64,
    seconds: u64,
) -> (f64, u64) {
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let until = started + Duration::from_secs(seconds);
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let peer = peer.clone();
            let done = done.clone();
            let failed = failed.clone();
            tokio::spawn(async move {
                while Instant::now() < until {
                    match peer.call_tool(echo_params()).await {
                        Ok(_) => done.fetch_add(1, Ordering::Relaxed),
                        Err(_) => failed.fetch_add(1, Ordering::Relaxed),
                    };
                }
            })
        })
        .collect();
    for task in tasks {
        let _ = task.await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    (
        done.load(Ordering::Relaxed) as f64 / elapsed,
        failed.load(Ordering::Relaxed),
    )
}

/// p50, p99 and mean in ms.
struct Stats {
    p50: f64,
    p99: f64,
    mean: f64,
}

impl Stats {
    fn of(times: &mut [Duration]) -> Self {
        times.sort();
        let at = |q: f64| ms(times[((times.len() as f64 * q) as usize).min(times.len() - 1)]);
        Self {
            p50: at(0.50),
            p99: at(0.99),
            mean: times.iter().map(|d| ms(*d)).sum::<f64>() / times.len() as f64,
        }
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

fn run_line(run: &Run) -> String {
    format!(
        "{:>9.0} req/s  p99 {:>8.3} ms  non-2xx {}  socket errors {}",
        run.requests_per_s,
        ms(run.p99),
        run.non_2xx,
        run.socket_errors
    )
}

/// utime + stime of a process (`self` or a pid), in clock ticks.
fn cpu_ticks(pid: &str) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which is in parentheses and may hold spaces): state is field 3,
    // utime 14 and stime 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| {
        fields
            .get(n - 3)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    field(14) + field(15)
}

fn ticks_us(ticks: u64) -> f64 {
    ticks as f64 * 1e6 / clock_ticks_per_s()
}

/// `getconf CLK_TCK` (100 on Linux), read once.
fn clock_ticks_per_s() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// What `hale serve` installs for JSON logs (`hale::telemetry`), writing to /dev/null: each request line is
/// formatted and written as in production without flooding the report.
fn install_json_logs() {
    use tracing_subscriber::fmt::writer::BoxMakeWriter;
    use tracing_subscriber::EnvFilter;
    let dev_null = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/null")
        .expect("open /dev/null");
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::new("info,sqlx=warn"))
        .with_writer(BoxMakeWriter::new(Arc::new(dev_null)))
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
        .init();
}
