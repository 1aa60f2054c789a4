//! The step executors against real parts: an HTTP server on a random port, a real event bus, real child
//! processes.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::config::HttpMethod;
use crate::events::{CheckFinished, Event, EventBus};
use crate::metrics::EventMetrics;
use crate::records::{CheckSource, Outcome};
use crate::supervise::child::Spawner;
use crate::workflows::steps::command::{self, CommandSpec};
use crate::workflows::steps::http::{self, HttpRequest, MAX_BODY_BYTES};
use crate::workflows::steps::{wait_healthy, HttpTarget};
use crate::workflows::FailureClass;

// ---- http ----

/// A real HTTP server on a random port, and how many requests reached `/count`.
struct Server {
    addr: SocketAddr,
    counted: Arc<AtomicUsize>,
}

async fn server() -> Server {
    use axum::extract::Path;
    use axum::http::{header, Method, StatusCode, Uri};
    use axum::routing::{any, get};

    let counted = Arc::new(AtomicUsize::new(0));
    let hits = counted.clone();
    let router = axum::Router::new()
        .route(
            "/json",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "application/json")],
                    r#"{"ok":true}"#,
                )
            }),
        )
        .route("/text", get(|| async { "plain words" }))
        .route(
            "/status/{code}",
            any(|Path(code): Path<u16>| async move {
                (
                    StatusCode::from_u16(code).unwrap_or(StatusCode::IM_A_TEAPOT),
                    format!("answered {code}"),
                )
            }),
        )
        .route(
            "/echo",
            any(|method: Method, uri: Uri, body: String| async move {
                json!({"method": method.as_str(), "query": uri.query(), "body": body}).to_string()
            }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(30)).await;
                "late"
            }),
        )
        .route("/big", get(|| async { "x".repeat(100 * 1024) }))
        .route(
            "/count",
            get(move || {
                hits.fetch_add(1, Ordering::SeqCst);
                async { "counted" }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Server { addr, counted }
}

fn target(addr: SocketAddr) -> HttpTarget {
    HttpTarget {
        base: url::Url::parse(&format!("http://{addr}/")).unwrap(),
        breaker_open: false,
    }
}

fn get(path: &str) -> HttpRequest {
    HttpRequest {
        method: HttpMethod::Get,
        path: path.to_owned(),
        body: None,
        expect_status: Vec::new(),
    }
}

const HTTP_TIMEOUT: Duration = Duration::from_secs(5);

#[tokio::test]
async fn a_2xx_answer_gives_its_status_body_as_json_and_latency() {
    let server = server().await;
    let client = reqwest::Client::new();
    let out = http::run(&client, &target(server.addr), &get("/json"), HTTP_TIMEOUT)
        .await
        .unwrap();
    assert_eq!(out["status"], 200);
    assert_eq!(out["body"], json!({"ok": true}));
    assert!(out["latency_ms"].is_u64(), "{out}");
    assert!(out.get("body_truncated").is_none());

    let out = http::run(&client, &target(server.addr), &get("/text"), HTTP_TIMEOUT)
        .await
        .unwrap();
    assert_eq!(out["body"], "plain words", "a body that is no JSON is text");
}

#[tokio::test]
async fn the_method_the_json_body_and_the_query_are_sent() {
    let server = server().await;
    let request = HttpRequest {
        method: HttpMethod::Post,
        path: "/echo?drain=true&n=2".to_owned(),
        body: Some(json!({"reason": "deploy"})),
        expect_status: Vec::new(),
    };
    let out = http::run(
        &reqwest::Client::new(),
        &target(server.addr),
        &request,
        HTTP_TIMEOUT,
    )
    .await
    .unwrap();
    assert_eq!(out["body"]["method"], "POST");
    assert_eq!(out["body"]["query"], "drain=true&n=2");
    let sent: Value = serde_json::from_str(out["body"]["body"].as_str().unwrap()).unwrap();
    assert_eq!(sent, json!({"reason": "deploy"}));
}

#[tokio::test]
async fn a_listed_status_is_accepted_and_an_unlisted_one_fails_for_good() {
    let server = server().await;
    let client = reqwest::Client::new();
    let mut request = get("/status/404");
    request.expect_status = vec![404];
    let out = http::run(&client, &target(server.addr), &request, HTTP_TIMEOUT)
        .await
        .unwrap();
    assert_eq!(out["status"], 404);
    assert_eq!(out["body"], "answered 404");

    let failure = http::run(
        &client,
        &target(server.addr),
        &get("/status/404"),
        HTTP_TIMEOUT,
    )
    .await
    .unwrap_err();
    assert_eq!(failure.class, None, "{failure:?}");
    assert!(failure.message.contains("404"), "{}", failure.message);
    assert!(failure.message.contains("any 2xx"), "{}", failure.message);

    let mut request = get("/status/200");
    request.expect_status = vec![201, 204];
    let failure = http::run(&client, &target(server.addr), &request, HTTP_TIMEOUT)
        .await
        .unwrap_err();
    assert_eq!(failure.class, None, "a 2xx outside the list fails too");
    assert!(failure.message.contains("201, 204"), "{}", failure.message);
}

#[tokio::test]
async fn a_5xx_is_retryable_unless_it_is_expected() {
    let server = server().await;
    let client = reqwest::Client::new();
    let failure = http::run(
        &client,
        &target(server.addr),
        &get("/status/503"),
        HTTP_TIMEOUT,
    )
    .await
    .unwrap_err();
    assert_eq!(failure.class, Some(FailureClass::ServerError));
    assert!(failure.message.contains("503"), "{}", failure.message);

    let mut request = get("/status/503");
    request.expect_status = vec![503];
    let out = http::run(&client, &target(server.addr), &request, HTTP_TIMEOUT)
        .await
        .unwrap();
    assert_eq!(out["status"], 503);
}

#[tokio::test]
async fn a_refused_connection_is_a_connect_failure() {
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let failure = http::run(
        &reqwest::Client::new(),
        &target(closed),
        &get("/"),
        HTTP_TIMEOUT,
    )
    .await
    .unwrap_err();
    assert_eq!(failure.class, Some(FailureClass::Connect), "{failure:?}");
}

#[tokio::test]
async fn no_answer_within_the_timeout_is_a_timeout_failure() {
    let server = server().await;
    let failure = http::run(
        &reqwest::Client::new(),
        &target(server.addr),
        &get("/slow"),
        Duration::from_millis(200),
    )
    .await
    .unwrap_err();
    assert_eq!(failure.class, Some(FailureClass::Timeout), "{failure:?}");
    assert!(failure.message.contains("0.2 s"), "{}", failure.message);
}

#[tokio::test]
async fn an_open_breaker_fails_at_once_and_sends_nothing() {
    let server = server().await;
    let client = reqwest::Client::new();
    let mut open = target(server.addr);
    open.breaker_open = true;
    let failure = http::run(&client, &open, &get("/count"), HTTP_TIMEOUT)
        .await
        .unwrap_err();
    assert_eq!(failure.class, Some(FailureClass::BreakerOpen));
    assert_eq!(server.counted.load(Ordering::SeqCst), 0);

    // The same request with the breaker closed does reach the server.
    http::run(&client, &target(server.addr), &get("/count"), HTTP_TIMEOUT)
        .await
        .unwrap();
    assert_eq!(server.counted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_path_that_leaves_the_targets_origin_is_refused() {
    let server = server().await;
    let client = reqwest::Client::new();
    let other_port = format!("http://{}:1/", server.addr.ip());
    for path in [
        "//evil.example/steal",
        "http://evil.example/",
        "https://127.0.0.1/",
        "\\\\evil.example\\x",
        other_port.as_str(),
    ] {
        let failure = http::run(&client, &target(server.addr), &get(path), HTTP_TIMEOUT)
            .await
            .unwrap_err();
        assert_eq!(failure.class, None, "{path}: {failure:?}");
        assert!(
            failure.message.contains(&format!("{path:?}")),
            "{}",
            failure.message
        );
        assert!(
            failure.message.contains("origin"),
            "{path}: {}",
            failure.message
        );
    }
    assert_eq!(
        http::join(&target(server.addr).base, "/../../count?x=1")
            .unwrap()
            .as_str(),
        format!("http://{}/count?x=1", server.addr),
        "dot segments stay on the target"
    );
}

#[tokio::test]
async fn a_long_body_is_cut_at_64_kib_and_says_so() {
    let server = server().await;
    let out = http::run(
        &reqwest::Client::new(),
        &target(server.addr),
        &get("/big"),
        HTTP_TIMEOUT,
    )
    .await
    .unwrap();
    assert_eq!(out["body_truncated"], true);
    assert_eq!(out["body"].as_str().unwrap().len(), MAX_BODY_BYTES);
}

// ---- wait_healthy ----

fn bus() -> EventBus {
    EventBus::new(EventMetrics::register(&crate::metrics::Registry::new()))
}

fn check(target: &str, outcome: Outcome, latency_ms: u64) -> Event {
    Event::CheckFinished(CheckFinished {
        target: Arc::from(target),
        outcome,
        http_status: Some(200),
        latency: Some(Duration::from_millis(latency_ms)),
        source: CheckSource::Monitor,
        at: DateTime::<Utc>::UNIX_EPOCH,
    })
}

#[tokio::test]
async fn wait_healthy_counts_up_checks_in_a_row_and_starts_over_after_another_outcome() {
    let bus = bus();
    let checks = bus.subscribe("workflow");
    for event in [
        check("api", Outcome::Up, 1),
        check("api", Outcome::Up, 2),
        check("api", Outcome::Down, 3),
        check("other", Outcome::Up, 4),
        check("api", Outcome::Up, 5),
        check("other", Outcome::Down, 6),
        check("api", Outcome::Up, 7),
        check("api", Outcome::Up, 8),
        check("api", Outcome::Up, 9),
    ] {
        bus.publish(event);
    }
    let out = wait_healthy::run(checks, "api", 3, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(out, json!({"consecutive": 3, "last_latency_ms": 8}));
}

#[tokio::test]
async fn wait_healthy_times_out_saying_how_far_it_got() {
    let bus = bus();
    let checks = bus.subscribe("workflow");
    for event in [
        check("api", Outcome::Up, 1),
        check("api", Outcome::Up, 1),
        check("api", Outcome::Timeout, 1),
        check("api", Outcome::Up, 1),
        check("other", Outcome::Up, 1),
        check("other", Outcome::Up, 1),
    ] {
        bus.publish(event);
    }
    let failure = wait_healthy::run(checks, "api", 3, Duration::from_millis(200))
        .await
        .unwrap_err();
    assert_eq!(failure.class, Some(FailureClass::Timeout));
    assert!(
        failure
            .message
            .contains("passed 1 of 3 checks in a row within 0.2 s"),
        "{}",
        failure.message
    );
    drop(bus);
}

#[tokio::test]
async fn wait_healthy_fails_for_good_when_the_bus_closes() {
    let bus = bus();
    let checks = bus.subscribe("workflow");
    bus.publish(check("api", Outcome::Up, 1));
    drop(bus);
    let failure = wait_healthy::run(checks, "api", 3, Duration::from_secs(30))
        .await
        .unwrap_err();
    assert_eq!(failure.class, None);
    assert!(failure.message.contains("1 so far"), "{}", failure.message);
}

// ---- command ----

fn sh(script: &str) -> CommandSpec {
    CommandSpec {
        argv: vec!["sh".into(), "-c".into(), script.into()],
        cwd: None,
        env: vec![("PATH".into(), "/usr/bin:/bin".into())],
        output_cap_bytes: 64 * 1024,
        timeout: Duration::from_secs(10),
        kill_grace: Duration::from_secs(5),
    }
}

/// Whether process `pid` is gone (or a zombie nobody reaped yet: dead all the same), within a while.
async fn gone(pid: u32) -> bool {
    for _ in 0..200 {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => return true,
            Ok(stat) => {
                let state = stat.rsplit_once(')').map(|(_, rest)| rest.trim_start());
                if state.is_some_and(|s| s.starts_with('Z') || s.starts_with('X')) {
                    return true;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

/// Waits for `path` to hold a line (a pid the script wrote), within a while.
async fn read_pid(path: &std::path::Path) -> u32 {
    for _ in 0..500 {
        if let Ok(text) = std::fs::read_to_string(path) {
            if let Ok(pid) = text.trim().parse() {
                return pid;
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{} never held a pid", path.display());
}

#[tokio::test]
async fn a_command_that_succeeds_gives_its_output_and_runs_in_its_cwd_with_its_env() {
    let spawner = Spawner::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut spec = sh("echo out; echo err >&2; pwd; echo \"$GREETING\"; echo \"home=$HOME\"");
    spec.cwd = Some(dir.path().to_owned());
    spec.env.push(("GREETING".into(), "hello".into()));
    let out = command::run(&spawner, &spec, &CancellationToken::new())
        .await
        .unwrap();
    let cwd = dir.path().canonicalize().unwrap();
    assert_eq!(
        out["stdout"],
        format!("out\n{}\nhello\nhome=\n", cwd.display())
    );
    assert_eq!(out["stderr"], "err\n");
    assert_eq!(out["exit_code"], 0);
    assert_eq!(out["truncated"], false);
    assert!(out["pid"].as_u64().is_some_and(|p| p > 1));
}

#[tokio::test]
async fn output_past_the_cap_is_dropped_and_the_command_still_finishes() {
    let spawner = Spawner::start().unwrap();
    let mut spec = sh("head -c 1048576 /dev/zero | tr '\\0' a; echo problem >&2");
    spec.output_cap_bytes = 1024;
    let out = command::run(&spawner, &spec, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(out["truncated"], true);
    let stdout = out["stdout"].as_str().unwrap();
    let stderr = out["stderr"].as_str().unwrap();
    assert_eq!(stderr, "problem\n", "stderr keeps its share");
    assert_eq!(stdout.len() + stderr.len(), 1024);
    assert!(stdout.bytes().all(|b| b == b'a'));
}

#[tokio::test]
async fn a_nonzero_exit_is_its_own_class_and_quotes_stderr() {
    let spawner = Spawner::start().unwrap();
    let failure = command::run(
        &spawner,
        &sh("echo 'disk full' >&2; exit 3"),
        &CancellationToken::new(),
    )
    .await
    .unwrap_err();
    assert_eq!(failure.class, Some(FailureClass::NonzeroExit));
    assert_eq!(failure.message, "sh exited with 3: disk full");
}

#[tokio::test]
async fn a_command_killed_by_a_signal_fails_for_good_naming_it() {
    let spawner = Spawner::start().unwrap();
    let failure = command::run(&spawner, &sh("kill -USR1 $$"), &CancellationToken::new())
        .await
        .unwrap_err();
    assert_eq!(failure.class, None);
    assert!(failure.message.contains("SIGUSR1"), "{}", failure.message);
}

#[tokio::test]
async fn a_program_that_cannot_start_fails_for_good_naming_it() {
    let spawner = Spawner::start().unwrap();
    let mut spec = sh("");
    spec.argv = vec!["/nonexistent/hale-no-such-program".into()];
    let failure = command::run(&spawner, &spec, &CancellationToken::new())
        .await
        .unwrap_err();
    assert_eq!(failure.class, None);
    assert!(
        failure
            .message
            .contains("/nonexistent/hale-no-such-program")
            && failure.message.contains("No such file"),
        "{}",
        failure.message
    );
}

#[tokio::test]
async fn at_its_timeout_a_command_is_killed_with_its_whole_process_group() {
    let spawner = Spawner::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("grandchild");
    let mut spec = sh(&format!(
        "sleep 1000 & echo $! > {}; wait",
        pidfile.display()
    ));
    spec.timeout = Duration::from_millis(300);
    spec.kill_grace = Duration::from_millis(300);
    let failure = command::run(&spawner, &spec, &CancellationToken::new())
        .await
        .unwrap_err();
    assert_eq!(failure.class, Some(FailureClass::Timeout), "{failure:?}");
    assert!(
        failure.message.contains("killed with its process group"),
        "{}",
        failure.message
    );
    let grandchild = read_pid(&pidfile).await;
    assert!(
        gone(grandchild).await,
        "the grandchild {grandchild} lives on"
    );
}

#[tokio::test]
async fn what_is_left_of_the_group_dies_when_the_leader_exits() {
    let spawner = Spawner::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("grandchild");
    // The grandchild keeps stdout open: the step still ends, and the grandchild with it.
    let spec = sh(&format!("sleep 1000 & echo $! > {}", pidfile.display()));
    let out = command::run(&spawner, &spec, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(out["exit_code"], 0);
    let grandchild = read_pid(&pidfile).await;
    assert!(
        gone(grandchild).await,
        "the grandchild {grandchild} lives on"
    );
}

#[tokio::test]
async fn a_command_that_ignores_sigterm_is_killed_after_the_grace() {
    let spawner = Spawner::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ready = dir.path().join("ready");
    let mut spec = sh(&format!(
        "trap '' TERM; echo $$ > {}; while :; do sleep 0.05; done",
        ready.display()
    ));
    spec.timeout = Duration::from_secs(30);
    spec.kill_grace = Duration::from_millis(200);
    let cancel = CancellationToken::new();
    let step = tokio::spawn({
        let cancel = cancel.clone();
        async move { command::run(&spawner, &spec, &cancel).await }
    });
    // Once the trap is set, the command is stopped; SIGTERM does nothing to it.
    let leader = read_pid(&ready).await;
    cancel.cancel();
    let failure = step.await.unwrap().unwrap_err();
    assert_eq!(failure.class, None);
    assert!(
        failure.message.contains("SIGKILL after a grace of 0.2 s"),
        "{}",
        failure.message
    );
    assert!(gone(leader).await);
}

#[tokio::test]
async fn at_its_timeout_a_command_ignoring_sigterm_is_killed() {
    let spawner = Spawner::start().unwrap();
    let mut spec = sh("trap '' TERM; while :; do sleep 0.05; done");
    spec.timeout = Duration::from_millis(300);
    spec.kill_grace = Duration::from_millis(100);
    let failure = command::run(&spawner, &spec, &CancellationToken::new())
        .await
        .unwrap_err();
    assert_eq!(failure.class, Some(FailureClass::Timeout), "{failure:?}");
}

#[tokio::test]
async fn a_cancelled_command_is_stopped_and_fails_for_good() {
    let spawner = Spawner::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ready = dir.path().join("ready");
    let mut spec = sh(&format!("echo $$ > {}; sleep 1000", ready.display()));
    spec.timeout = Duration::from_secs(30);
    let cancel = CancellationToken::new();
    let step = tokio::spawn({
        let cancel = cancel.clone();
        async move { command::run(&spawner, &spec, &cancel).await }
    });
    let leader = read_pid(&ready).await;
    cancel.cancel();
    let failure = step.await.unwrap().unwrap_err();
    assert_eq!(failure.class, None);
    assert!(
        failure.message.starts_with("cancelled"),
        "{}",
        failure.message
    );
    assert!(
        failure.message.contains("stopped by SIGTERM"),
        "{}",
        failure.message
    );
    assert!(gone(leader).await);
}

#[test]
fn stdout_and_stderr_share_the_cap() {
    use super::command::share;
    assert_eq!(share(1024, 10, 20), (10, 20), "all of both when they fit");
    assert_eq!(
        share(1024, 5000, 8),
        (1016, 8),
        "a quiet stream leaves room"
    );
    assert_eq!(share(1024, 8, 5000), (8, 1016));
    assert_eq!(share(1024, 5000, 5000), (512, 512), "half each");
    assert_eq!(share(1024, 600, 600), (512, 512));
    assert_eq!(share(0, 5, 5), (0, 0));
}
