//! `/health` against a bare actix-web handler, side by side in one run: requests per second and p99 latency
//! under `wrk`, for
//!
//! - a bare actix-web server with one trivial JSON handler (the baseline),
//! - the same bare handler wrapped in hale's `observe` middleware (what the middleware alone costs),
//! - hale's Health Proxy `GET /health`, started in-process on port 0 with a temp database,
//! - hale's Health Proxy `GET /nope`: a 404 through the middleware and the fallback handler,
//!
//! every server with the same worker count, loaded one at a time, interleaved in rounds (the order rotates
//! each round), so a noisy neighbour slows all of them alike. The aim (issue 6): `/health` reaches at least
//! 70% of the bare requests/s, with p99 at most twice the bare one.
//!
//! Run: `cargo bench --bench health_endpoint` (needs `wrk`: `apt-get install -y wrk`).
//! Env: HALE_BENCH_WORKERS (2), HALE_BENCH_CONNECTIONS (32), HALE_BENCH_SECONDS (5 per measurement),
//! HALE_BENCH_ROUNDS (3), HALE_BENCH_WRK_THREADS (1), HALE_BENCH_LOGS (`json`, the default: hale's JSON
//! request lines at `info` written to /dev/null, as a production hale writes them; `sink`: formatted, not
//! written; `off`: no subscriber).

#[path = "common/wrk.rs"]
mod wrk;
use std::net::{SocketAddr, TcpListener};
use std::process::ExitCode;

use actix_web::dev::ServerHandle;
use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpResponse, HttpServer};
use hale::app::Application;
use hale::config::Config;
use hale::http::HttpContext;
use hale::kind::ServiceKind;
use hale::metrics::ServiceMetrics;
use wrk::{env_number, ms, wrk, Run};

struct Target {
    name: &'static str,
    url: String,
    runs: Vec<Run>,
}

#[tokio::main]
async fn main() -> ExitCode {
    if !wrk::installed("health_endpoint") {
        return ExitCode::FAILURE;
    }
    let workers = env_number("HALE_BENCH_WORKERS", 2) as usize;
    let connections = env_number("HALE_BENCH_CONNECTIONS", 32);
    let seconds = env_number("HALE_BENCH_SECONDS", 5);
    let rounds = env_number("HALE_BENCH_ROUNDS", 3);
    let wrk_threads = env_number("HALE_BENCH_WRK_THREADS", 1);
    let logs = std::env::var("HALE_BENCH_LOGS").unwrap_or_else(|_| "json".to_owned());
    match logs.as_str() {
        "json" => install_json_logs(false),
        "sink" => install_json_logs(true),
        _ => {}
    }

    in_process_cost(env_number("HALE_BENCH_IN_PROCESS", 200_000) as u32).await;

    let (bare_addr, bare) = start_bare(workers, false);
    let (observed_addr, observed) = start_bare(workers, true);
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = Config::default();
    config.listen.health_proxy = "127.0.0.1:0".parse().expect("address");
    config.http.workers = workers;
    config.services = Vec::new();
    // The access layer runs in full (route lookup, token check, rate-limit buckets) but never refuses:
    // wrk's one client would otherwise meet the `ops` limit at once and measure 429s.
    let unlimited = hale::config::RateLimit {
        per_second: 100_000,
        burst: 100_000,
    };
    config.rate_limits.ops = unlimited;
    config.rate_limits.read = unlimited;
    let app = Application::start(
        config,
        &dir.path().join("hale.db"),
        Some(ServiceKind::HealthProxy),
    )
    .await
    .expect("start hale");
    let hale_addr = app.addr(ServiceKind::HealthProxy).expect("health proxy");

    let mut targets = vec![
        Target {
            name: "bare actix-web handler",
            url: format!("http://{bare_addr}/health"),
            runs: Vec::new(),
        },
        Target {
            name: "bare handler + hale middleware",
            url: format!("http://{observed_addr}/health"),
            runs: Vec::new(),
        },
        Target {
            name: "hale GET /health",
            url: format!("http://{hale_addr}/health"),
            runs: Vec::new(),
        },
        Target {
            name: "hale GET /nope (404)",
            url: format!("http://{hale_addr}/nope"),
            runs: Vec::new(),
        },
    ];
    println!(
        "health_endpoint: {workers} workers per server, wrk -t{wrk_threads} -c{connections} -d{seconds}s --latency, \
         {rounds} rounds, logs: {logs}"
    );
    // Warm-up: connections, caches, the database pool.
    for target in &targets {
        wrk(&target.url, wrk_threads, connections, 1, None).await;
    }
    for round in 0..rounds as usize {
        for i in 0..targets.len() {
            let index = (i + round) % targets.len();
            let target = &mut targets[index];
            let run = wrk(&target.url, wrk_threads, connections, seconds, None).await;
            println!(
                "round {}: {:<32} {:>9.0} req/s  p99 {:>8.3} ms  non-2xx {}  socket errors {}",
                round + 1,
                target.name,
                run.requests_per_s,
                ms(run.p99),
                run.non_2xx,
                run.socket_errors
            );
            target.runs.push(run);
        }
    }

    println!("\nmedian of {rounds} rounds:");
    println!(
        "| {:<32} | {:>9} | {:>10} | {:>12} | {:>12} |",
        "server", "req/s", "p99 ms", "req/s vs bare", "p99 vs bare"
    );
    let (bare_rps, bare_p99) = medians(&targets[0].runs);
    let mut health = (0.0, 0.0);
    for target in &targets {
        let (rps, p99) = medians(&target.runs);
        println!(
            "| {:<32} | {:>9.0} | {:>10.3} | {:>12.1}% | {:>11.2}x |",
            target.name,
            rps,
            p99,
            100.0 * rps / bare_rps,
            p99 / bare_p99
        );
        if target.name == "hale GET /health" {
            health = (rps / bare_rps, p99 / bare_p99);
        }
    }
    let verdict = |ok: bool| if ok { "met" } else { "NOT met" };
    println!(
        "aim: /health at least 70% of the bare req/s: {:.1}%, {}; p99 at most 2x the bare p99: {:.2}x, {}",
        100.0 * health.0,
        verdict(health.0 >= 0.7),
        health.1,
        verdict(health.1 <= 2.0)
    );

    app.shutdown().await;
    bare.stop(true).await;
    observed.stop(true).await;
    ExitCode::SUCCESS
}

/// What the middleware costs per request in CPU time, without sockets or a load generator: requests go
/// straight through the actix service on this thread (`actix_web::test::call_service`), with and without
/// `observe`, interleaved in rounds. The difference is the middleware's own cost.
async fn in_process_cost(requests: u32) {
    use actix_web::test;
    let context = web::Data::new(HttpContext {
        kind: ServiceKind::HealthProxy,
        metrics: ServiceMetrics::new(ServiceKind::HealthProxy),
        body_limit: 1024 * 1024,
        guard: None,
    });
    let bare = test::init_service(App::new().route("/health", web::get().to(bare_health))).await;
    let observed = test::init_service(
        App::new()
            .app_data(context)
            .route("/health", web::get().to(bare_health))
            .wrap(from_fn(hale::http::observe)),
    )
    .await;
    let mut best = [f64::INFINITY; 3];
    for _round in 0..3 {
        for (i, path) in ["/health", "/health", "/nope"].into_iter().enumerate() {
            let started = std::time::Instant::now();
            for _ in 0..requests {
                let req = test::TestRequest::get().uri(path).to_request();
                let res = if i == 0 {
                    test::call_service(&bare, req).await.map_into_boxed_body()
                } else {
                    test::call_service(&observed, req).await
                };
                std::hint::black_box(res);
            }
            let ns = started.elapsed().as_nanos() as f64 / f64::from(requests);
            best[i] = best[i].min(ns);
        }
    }
    println!("in-process, one thread, best of 3 rounds of {requests} requests:");
    println!(
        "  bare handler                    {:>7.0} ns/request",
        best[0]
    );
    println!(
        "  bare handler + hale middleware  {:>7.0} ns/request (middleware: {:.0} ns)",
        best[1],
        best[1] - best[0]
    );
    println!(
        "  404 through hale middleware     {:>7.0} ns/request",
        best[2]
    );
}

/// The medians of requests/s and p99 (in ms) over the rounds.
fn medians(runs: &[Run]) -> (f64, f64) {
    let median = |mut values: Vec<f64>| {
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    (
        median(runs.iter().map(|r| r.requests_per_s).collect()),
        median(runs.iter().map(|r| ms(r.p99)).collect()),
    )
}

#[derive(serde::Serialize)]
struct BareHealth {
    ok: bool,
}

async fn bare_health() -> HttpResponse {
    HttpResponse::Ok().json(BareHealth { ok: true })
}

/// A bare actix-web server with one JSON handler at `/health`, optionally wrapped in hale's middleware.
fn start_bare(workers: usize, with_middleware: bool) -> (SocketAddr, ServerHandle) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("address");
    let server = if with_middleware {
        let context = web::Data::new(HttpContext {
            kind: ServiceKind::HealthProxy,
            metrics: ServiceMetrics::new(ServiceKind::HealthProxy),
            body_limit: 1024 * 1024,
            guard: None,
        });
        HttpServer::new(move || {
            App::new()
                .app_data(context.clone())
                .route("/health", web::get().to(bare_health))
                .wrap(from_fn(hale::http::observe))
        })
        .workers(workers)
        .disable_signals()
        .listen(listener)
        .expect("listen")
        .run()
    } else {
        HttpServer::new(|| App::new().route("/health", web::get().to(bare_health)))
            .workers(workers)
            .disable_signals()
            .listen(listener)
            .expect("listen")
            .run()
    };
    let handle = server.handle();
    tokio::spawn(server);
    (addr, handle)
}

/// Installs what `hale serve` installs for JSON logs (`hale::telemetry`), writing to /dev/null instead of
/// stdout, so the request lines are formatted and written as in production without flooding the report.
/// `sink`: formatted but not written (no `write` call), to tell formatting from writing.
fn install_json_logs(sink: bool) {
    use tracing_subscriber::fmt::writer::BoxMakeWriter;
    use tracing_subscriber::EnvFilter;
    let writer = if sink {
        BoxMakeWriter::new(std::io::sink)
    } else {
        let dev_null = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/null")
            .expect("open /dev/null");
        BoxMakeWriter::new(std::sync::Arc::new(dev_null))
    };
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::new("info,sqlx=warn"))
        .with_writer(writer)
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
        .init();
}
