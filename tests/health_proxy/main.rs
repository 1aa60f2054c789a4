//! The Health Proxy against real target servers: breakers, restarts, hanging targets, the cache, the
//! score, history, the rule that every background probe is one stored row, and bounded fan-out (`fanout`).

// A test crate: an unwrap is an assertion, and tests/common sets a child's rlimit in `pre_exec`.
#![allow(clippy::unwrap_used)]

#[path = "../common/mod.rs"]
mod common;
mod fanout;
mod relay;
mod target_server;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use hale::breaker::BreakerState;
use hale::clock::{Clock, ManualClock};
use hale::config::{BodyCondition, Config, ServiceName, TargetConfig};
use hale::kind::ServiceKind::HealthProxy;
use hale::store::Store;
use serde_json::Value;

use common::app::TestApp;
use common::config::TestConfig;
use common::prom::sample_value;
use target_server::{Mode, TargetServer};

/// A target with the config's defaults, for the tests to adjust.
fn target(name: &str, url: &str) -> TargetConfig {
    common::config::target(name, url).build()
}

/// On-demand checks only (no background prober), no cache, short timeouts.
fn proxy_config(targets: Vec<TargetConfig>) -> Config {
    TestConfig::new().on_demand_only().targets(targets).build()
}

fn start_time() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 2, 10, 0, 0).unwrap()
}

async fn health_all(app: &TestApp) -> (u16, Value) {
    app.get_json(HealthProxy, "/health/all").await
}

fn report<'a>(all: &'a Value, name: &str) -> &'a Value {
    all["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["service"] == name)
        .unwrap_or_else(|| panic!("{name} missing from {all}"))
}

async fn stored_rows(app: &mut TestApp) -> i64 {
    app.shutdown().await;
    let store = Store::open(&app.db_path).await.unwrap();
    let rows = store.count_checks(None).await.unwrap();
    store.close().await;
    rows
}

#[tokio::test]
async fn breaker_opens_after_five_failures_fails_fast_half_opens_and_closes_after_two_successes() {
    let server = TargetServer::start(Mode::Failing).await;
    let clock = ManualClock::new(start_time());
    let mut app = common::app::spawn_app_with_clock(
        proxy_config(vec![target("api", &server.url())]),
        Arc::new(clock.clone()),
    )
    .await;

    for attempt in 1..=4 {
        let (_, all) = health_all(&app).await;
        assert_eq!(report(&all, "api")["outcome"], "down", "attempt {attempt}");
        assert_eq!(
            report(&all, "api")["breaker"],
            "closed",
            "attempt {attempt}: not open before the 5th failure"
        );
    }
    let (status, all) = health_all(&app).await;
    assert_eq!(status, 503);
    assert_eq!(report(&all, "api")["outcome"], "down");
    assert_eq!(
        report(&all, "api")["breaker"],
        "open",
        "the 5th consecutive failure opens it"
    );
    assert_eq!(server.hits(), 5);

    // Open: fails at once without touching the network.
    let (_, all) = health_all(&app).await;
    let api = report(&all, "api");
    assert_eq!(api["outcome"], "circuit_open");
    assert!(api["latency_ms"].is_null());
    assert!(
        api["error"]
            .as_str()
            .unwrap()
            .contains("next trial at 2026-11-02T10:01:00"),
        "{api}"
    );
    assert_eq!(server.hits(), 5, "no request while open");

    // Still open just before the timeout.
    clock.advance(Duration::from_secs(59));
    assert_eq!(
        report(&health_all(&app).await.1, "api")["outcome"],
        "circuit_open"
    );
    assert_eq!(server.hits(), 5);

    // After the timeout one trial goes through; two successes close it.
    clock.advance(Duration::from_secs(1));
    server.set(Mode::Healthy);
    let (_, all) = health_all(&app).await;
    assert_eq!(report(&all, "api")["outcome"], "up");
    assert_eq!(
        report(&all, "api")["breaker"],
        "half_open",
        "one success is not enough"
    );
    let (status, all) = health_all(&app).await;
    assert_eq!(status, 200);
    assert_eq!(report(&all, "api")["breaker"], "closed");
    assert_eq!(server.hits(), 7);

    // A failure in half-open reopens it at once.
    server.set(Mode::Failing);
    for _ in 0..5 {
        health_all(&app).await;
    }
    assert_eq!(
        report(&health_all(&app).await.1, "api")["outcome"],
        "circuit_open"
    );
    clock.advance(Duration::from_secs(60));
    let (_, all) = health_all(&app).await;
    assert_eq!(report(&all, "api")["outcome"], "down");
    assert_eq!(
        report(&all, "api")["breaker"],
        "open",
        "a half-open failure reopens"
    );
    assert_eq!(
        report(&health_all(&app).await.1, "api")["outcome"],
        "circuit_open"
    );

    let metrics = app.metrics(HealthProxy).await;
    assert_eq!(
        sample_value(&metrics, "circuit_breaker_state", &[("target", "api")]),
        Some(2.0)
    );
    assert_eq!(
        sample_value(
            &metrics,
            "circuit_breaker_transitions_total",
            &[("target", "api"), ("to", "open")]
        ),
        Some(3.0)
    );
    assert_eq!(
        // On-demand checks are counted for all targets together; api is the only one.
        sample_value(
            &metrics,
            "health_check_on_demand_total",
            &[("outcome", "circuit_open")]
        ),
        Some(4.0)
    );

    app.shutdown().await;
    let store = Store::open(&app.db_path).await.unwrap();
    let transitions: Vec<(BreakerState, BreakerState)> = store
        .breaker_transitions("target:api")
        .await
        .unwrap()
        .into_iter()
        .map(|(from, to, _)| (from, to))
        .collect();
    use BreakerState::*;
    assert_eq!(
        transitions,
        vec![
            (Closed, Open),
            (Open, HalfOpen),
            (HalfOpen, Closed),
            (Closed, Open),
            (Open, HalfOpen),
            (HalfOpen, Open),
        ]
    );
}

#[tokio::test]
async fn an_open_breaker_stays_open_across_a_restart_for_the_time_left_and_is_half_open_when_past_due(
) {
    let server = TargetServer::start(Mode::Failing).await;
    let config = proxy_config(vec![target("api", &server.url())]);
    let clock = ManualClock::new(start_time());
    let mut app = common::app::spawn_app_with_clock(config.clone(), Arc::new(clock.clone())).await;
    for _ in 0..5 {
        health_all(&app).await;
    }
    assert_eq!(
        report(&health_all(&app).await.1, "api")["outcome"],
        "circuit_open"
    );

    // Restarted 30 s later: still open, with the same absolute retry time (not reset, not extended).
    clock.advance(Duration::from_secs(30));
    app.restart(config.clone(), Arc::new(clock.clone())).await;
    let (_, services) = app.get_json(HealthProxy, "/services").await;
    assert_eq!(services[0]["breaker"]["state"], "open");
    assert_eq!(services[0]["breaker"]["retry_at"], "2026-11-02T10:01:00Z");
    server.set(Mode::Healthy);
    assert_eq!(
        report(&health_all(&app).await.1, "api")["outcome"],
        "circuit_open"
    );
    assert_eq!(server.hits(), 5, "no request while open after the restart");

    // Restarted after the retry time: half-open, and a trial goes through.
    clock.advance(Duration::from_secs(31));
    app.restart(config, Arc::new(clock.clone())).await;
    let (_, services) = app.get_json(HealthProxy, "/services").await;
    assert_eq!(services[0]["breaker"]["state"], "half_open");
    let (_, all) = health_all(&app).await;
    assert_eq!(report(&all, "api")["outcome"], "up");
    assert_eq!(server.hits(), 6);
}

#[tokio::test]
async fn health_all_answers_within_the_largest_timeout_when_a_target_hangs() {
    let healthy = TargetServer::start(Mode::Healthy).await;
    let hanging = TargetServer::start(Mode::Hanging).await;
    let mut hung = target("hung", &hanging.url());
    hung.timeout_ms = 500;
    let mut app =
        common::app::spawn_app_with(proxy_config(vec![target("ok", &healthy.url()), hung])).await;

    let started = Instant::now();
    let (status, all) = health_all(&app).await;
    let took = started.elapsed();
    assert!(
        took < Duration::from_millis(1500),
        "took {took:?} with a 500 ms timeout"
    );
    assert_eq!(status, 503);
    assert_eq!(report(&all, "ok")["outcome"], "up");
    let hung = report(&all, "hung");
    assert_eq!(hung["outcome"], "timeout");
    assert_eq!(hung["error"], "no answer within 500 ms");
    assert!(hung["latency_ms"].as_f64().unwrap() >= 500.0);
    assert_eq!(all["counts"]["up"], 1);
    assert_eq!(all["counts"]["timeout"], 1);
    assert_eq!(stored_rows(&mut app).await, 2);
}

#[tokio::test]
async fn the_cache_serves_recent_successes_and_never_failures() {
    let good = TargetServer::start(Mode::Healthy).await;
    let bad = TargetServer::start(Mode::Failing).await;
    let mut config = proxy_config(vec![target("good", &good.url()), target("bad", &bad.url())]);
    config.monitor.cache_ttl_s = 120;
    let clock = ManualClock::new(start_time());
    let mut app = common::app::spawn_app_with_clock(config, Arc::new(clock.clone())).await;

    let (_, first) = health_all(&app).await;
    assert_eq!(report(&first, "good")["cached"], false);
    clock.advance(Duration::from_secs(119));
    let (_, second) = health_all(&app).await;
    assert_eq!(report(&second, "good")["cached"], true);
    assert_eq!(
        report(&second, "good")["checked_at"],
        report(&first, "good")["checked_at"]
    );
    assert_eq!(
        report(&second, "bad")["cached"],
        false,
        "failures are checked again"
    );
    assert_eq!(good.hits(), 1);
    assert_eq!(bad.hits(), 2);

    // Past the TTL the success is checked again.
    clock.advance(Duration::from_secs(1));
    assert_eq!(report(&health_all(&app).await.1, "good")["cached"], false);
    assert_eq!(good.hits(), 2);
    assert_eq!(bad.hits(), 3);
    // Cached answers are not new checks, and on-demand rows are kept to one per target per interval (30 s):
    // good at 0 s and 120 s, bad at 0 s and 119 s; bad's check at 120 s is answered but not stored.
    assert_eq!(stored_rows(&mut app).await, 4);
}

#[tokio::test]
async fn the_score_weighs_mixed_states_and_a_down_critical_target_caps_it() {
    let fast = TargetServer::start(Mode::Healthy).await;
    let slow = TargetServer::start(Mode::Slow(Duration::from_millis(150))).await;
    let down = TargetServer::start(Mode::Failing).await;
    let mut heavy = target("fast", &fast.url());
    heavy.weight = 2.0;
    let mut config = proxy_config(vec![
        heavy,
        target("slow", &slow.url()),
        target("down", &down.url()),
    ]);
    config.monitor.slow_threshold_ms = 100;
    let mut app = common::app::spawn_app_with(config.clone()).await;
    let (_, all) = health_all(&app).await;
    // (2 × 1 + 1 × 0.5 + 1 × 0) / 4
    assert_eq!(all["score"], 62.5);
    assert_eq!(all["ok"], false);
    let metrics = app.metrics(HealthProxy).await;
    assert_eq!(sample_value(&metrics, "health_score", &[]), Some(62.5));
    assert_eq!(
        sample_value(&metrics, "target_up", &[("target", "down")]),
        Some(0.0)
    );
    assert_eq!(
        sample_value(&metrics, "target_up", &[("target", "fast")]),
        Some(1.0)
    );
    app.shutdown().await;

    Arc::make_mut(&mut config.services[2]).critical = true;
    let app = common::app::spawn_app_with(config).await;
    assert_eq!(
        health_all(&app).await.1["score"],
        50.0,
        "a down critical target caps the score at 50"
    );
}

#[tokio::test]
async fn tcp_checks_tell_an_open_port_from_a_closed_one() {
    let open = TargetServer::start(Mode::Healthy).await;
    let closed_port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    }; // dropped: nothing listens there now
    let app = common::app::spawn_app_with(proxy_config(vec![
        target("open", &format!("tcp://{}", open.addr)),
        target("closed", &format!("tcp://127.0.0.1:{closed_port}")),
    ]))
    .await;
    let (_, all) = health_all(&app).await;
    assert_eq!(report(&all, "open")["outcome"], "up");
    assert!(report(&all, "open")["status"].is_null());
    assert_eq!(report(&all, "closed")["outcome"], "down");
    assert_eq!(report(&all, "closed")["error"], "connection refused");
}

#[tokio::test]
async fn each_targets_config_is_held_once_by_the_config_and_its_probe_target() {
    let server = TargetServer::start(Mode::Healthy).await;
    let app = common::app::spawn_app_with(proxy_config(vec![
        target("a", &server.url()),
        target("b", &server.url()),
    ]))
    .await;
    let config = &app.core().config;
    let targets = app.monitor().targets();
    assert_eq!(targets.len(), 2);
    for (target, loaded) in targets.iter().zip(&config.services) {
        assert_eq!(target.name(), loaded.name.as_str());
        assert!(
            Arc::ptr_eq(&target.config, loaded),
            "{} holds its own copy of its config",
            target.name()
        );
        assert!(
            std::ptr::eq(target.name().as_ptr(), loaded.name.as_str().as_ptr()),
            "{} holds its own copy of its name",
            target.name()
        );
    }
}

#[tokio::test]
async fn status_and_body_conditions_decide_up_or_down() {
    let server = TargetServer::start(Mode::Degraded).await;
    let mut pointer = target("pointer", &server.url());
    pointer.body = Some(Box::new(BodyCondition {
        contains: None,
        json_pointer: Some("/status".into()),
        equals: Some(serde_json::json!("ok")),
    }));
    let mut expects_503 = target("expects-503", &server.url());
    expects_503.expected_status = Some(hale::config::ExpectedStatus::One(503));
    let app = common::app::spawn_app_with(proxy_config(vec![pointer, expects_503])).await;
    let (_, all) = health_all(&app).await;
    assert_eq!(report(&all, "pointer")["outcome"], "down");
    assert_eq!(
        report(&all, "pointer")["error"],
        "/status is \"degraded\", expected \"ok\""
    );
    assert_eq!(
        report(&all, "expects-503")["error"],
        "status 200, expected [503]"
    );
    server.set(Mode::Healthy);
    let (_, all) = health_all(&app).await;
    assert_eq!(report(&all, "pointer")["outcome"], "up");
}

#[tokio::test]
async fn every_background_probe_is_one_stored_row_and_rolls_up_hourly() {
    let a = TargetServer::start(Mode::Healthy).await;
    let b = TargetServer::start(Mode::Failing).await;
    let mut config = proxy_config(vec![target("a", &a.url()), target("b", &b.url())]);
    config.monitor.background_checks = true;
    // Keep the failing target's breaker closed so every probe reaches it (open-breaker rows have no request).
    config.breaker.failure_threshold = 1000;
    for t in &mut config.services {
        let t = Arc::make_mut(t);
        t.interval_s = 1;
        t.timeout_ms = 500;
    }
    let mut app = common::app::spawn_app_with(config).await;
    // Wait until both have been probed at least three times.
    let deadline = Instant::now() + common::DEADLINE;
    while a.hits() < 3 || b.hits() < 3 {
        assert!(Instant::now() < deadline, "targets were not probed in time");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    app.shutdown().await;
    let probes = (a.hits() + b.hits()) as i64;
    let store = Store::open(&app.db_path).await.unwrap();
    assert_eq!(
        store.count_checks(None).await.unwrap(),
        probes,
        "one row per probe, none lost at shutdown"
    );
    assert_eq!(
        store.count_checks(Some("a")).await.unwrap(),
        a.hits() as i64
    );
    let now = Utc::now();
    let rollups = store
        .hourly_rollups(
            "b",
            now - chrono::Duration::hours(2),
            now + chrono::Duration::hours(1),
        )
        .await
        .unwrap();
    let total: u64 = rollups.iter().map(|r| r.total).sum();
    let good: u64 = rollups.iter().map(|r| r.good).sum();
    assert_eq!(total, b.hits() as u64);
    assert_eq!(good, 0, "a failing target has no good checks");
    assert!(rollups.iter().all(|r| r.latency.total() == r.total));
}

#[tokio::test]
async fn history_pages_newest_first_and_rejects_bad_parameters() {
    let server = TargetServer::start(Mode::Healthy).await;
    let clock = ManualClock::new(start_time());
    let mut config = proxy_config(vec![
        target("api", &server.url()),
        target("web", &server.url()),
    ]);
    // One on-demand row per target per interval: checks 10 s apart are all stored.
    for t in &mut config.services {
        let t = Arc::make_mut(t);
        t.interval_s = 10;
    }
    let mut app = common::app::spawn_app_with_clock(config, Arc::new(clock.clone())).await;
    for _ in 0..3 {
        health_all(&app).await;
        clock.advance(Duration::from_secs(10));
    }
    // Let the writer flush (it does at least every 250 ms).
    let deadline = Instant::now() + common::DEADLINE;
    while app.core().store.count_checks(None).await.unwrap() < 6 {
        assert!(Instant::now() < deadline, "checks were not written in time");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let mut seen = Vec::new();
    let mut path = "/health/history?service=api&limit=2".to_owned();
    loop {
        let (status, page) = app.get_json(HealthProxy, &path).await;
        assert_eq!(status, 200, "{page}");
        for item in page["items"].as_array().unwrap() {
            assert_eq!(item["service"], "api");
            assert_eq!(item["source"], "on_demand");
            seen.push(item["checked_at"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/health/history?service=api&limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 3);
    let (_, exact) = app
        .get_json(HealthProxy, "/health/history?service=api&limit=3")
        .await;
    assert_eq!(exact["items"].as_array().unwrap().len(), 3);
    assert!(
        exact["next_cursor"].is_null(),
        "a page that holds the rest has no cursor"
    );
    assert!(
        seen.windows(2).all(|w| w[0] > w[1]),
        "newest first: {seen:?}"
    );

    let (_, window) = app
        .get_json(
            HealthProxy,
            "/health/history?since=2026-11-02T10:00:05Z&until=2026-11-02T10:00:15Z",
        )
        .await;
    assert_eq!(
        window["items"].as_array().unwrap().len(),
        2,
        "api and web at 10:00:10"
    );

    for (query, message) in [
        ("limit=0", "limit: \"0\" is not a number from 1 to 1000"),
        (
            "limit=5000",
            "limit: \"5000\" is not a number from 1 to 1000",
        ),
        ("limit=ten", "limit: \"ten\" is not a number from 1 to 1000"),
        (
            "since=yesterday",
            "since: \"yesterday\" is not an RFC 3339 time",
        ),
        (
            "since=2026-11-02T11:00:00Z&until=2026-11-02T10:00:00Z",
            "since must be before until",
        ),
        (
            "cursor=abc",
            "cursor: \"abc\" is not a cursor from a previous page",
        ),
        ("service=a%20b", "service: name \"a b\" contains ' '"),
    ] {
        let (status, body) = app
            .get_json(HealthProxy, &format!("/health/history?{query}"))
            .await;
        assert_eq!(status, 400, "{query}");
        assert_eq!(body["error"]["code"], "bad_request");
        let got = body["error"]["message"].as_str().unwrap();
        assert!(got.starts_with(message), "{query}: {got}");
    }
    app.shutdown().await;
}

#[tokio::test]
async fn services_lists_each_target_with_config_breaker_and_latest_result() {
    let server = TargetServer::start(Mode::Healthy).await;
    let mut api = target("api", &format!("{}?token=s3cret", server.url()));
    api.tags = vec!["prod".into()];
    api.critical = true;
    let app = common::app::spawn_app_with(proxy_config(vec![api])).await;
    let (_, before) = app.get_json(HealthProxy, "/services").await;
    assert_eq!(before[0]["name"], "api");
    assert_eq!(
        before[0]["url"],
        format!("{}?token=redacted", server.url()),
        "a token in the query is not shown"
    );
    assert_eq!(before[0]["critical"], true);
    assert_eq!(before[0]["tags"], serde_json::json!(["prod"]));
    assert_eq!(before[0]["breaker"]["state"], "closed");
    assert!(before[0]["latest"].is_null());
    health_all(&app).await;
    let (_, after) = app.get_json(HealthProxy, "/services").await;
    assert_eq!(after[0]["latest"]["outcome"], "up");
    assert_eq!(after[0]["latest"]["status"], 200);
}

#[test]
fn the_openapi_document_gives_history_parameters_their_real_types() {
    let doc: Value =
        serde_json::from_str(&hale::cli::openapi_text(HealthProxy).expect("document")).unwrap();
    let params = doc["paths"]["/health/history"]["get"]["parameters"]
        .as_array()
        .expect("parameters");
    let schema = |name: &str| {
        params
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("no parameter {name}"))["schema"]
            .clone()
    };
    assert_eq!(
        schema("limit"),
        serde_json::json!({"type": "integer", "format": "int32", "minimum": 1, "maximum": 1000, "default": 100})
    );
    for time in ["since", "until"] {
        assert_eq!(
            schema(time),
            serde_json::json!({"type": "string", "format": "date-time"})
        );
    }
    assert_eq!(
        schema("service"),
        // A written target's name, or an MCP server's target (`mcp:<name>`).
        serde_json::json!({"type": "string", "minLength": 1, "maxLength": ServiceName::MAX_LEN + ServiceName::MCP_PREFIX.len(), "pattern": "^(mcp:)?[A-Za-z0-9._-]+$"})
    );
    assert_eq!(schema("cursor"), serde_json::json!({"type": "string"}));
}

#[tokio::test]
async fn services_shows_no_path_parameter_fragment_or_query_value() {
    let server = TargetServer::start(Mode::Healthy).await;
    let url = format!(
        "{};jsessionid=S3SSION?token=T0KEN&v=2#access_token=FR4GMENT",
        server.url()
    );
    let app = common::app::spawn_app_with(proxy_config(vec![target("api", &url)])).await;
    let (status, services) = app.get_json(HealthProxy, "/services").await;
    assert_eq!(status, 200);
    assert_eq!(
        services[0]["url"],
        format!(
            "{};jsessionid=redacted?token=redacted&v=redacted#redacted",
            server.url()
        )
    );
    let text = services.to_string();
    for secret in ["S3SSION", "T0KEN", "FR4GMENT"] {
        assert!(!text.contains(secret), "{secret} is shown: {text}");
    }
}

#[tokio::test]
async fn retention_prunes_old_raw_checks_and_keeps_their_rollups() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("hale.db")).await.unwrap();
    let (writer, handle) = hale::store::writer::spawn(
        store.clone(),
        hale::store::writer::WriterSettings {
            flush_interval: Duration::from_millis(50),
            batch_size: 100,
            settle_interval: std::time::Duration::ZERO,
        },
        hale::metrics::WriterMetrics::register(&prometheus::Registry::new()),
    );
    let now = start_time();
    let service: Arc<str> = Arc::from("api");
    for days_ago in [45, 31, 29, 1] {
        writer
            .submit(hale::records::CheckRecord {
                checked_at: now - chrono::Duration::days(days_ago),
                service: service.clone(),
                outcome: hale::records::Outcome::Up,
                http_status: Some(200),
                latency: Some(Duration::from_millis(20)),
                error: None,
                breaker_state: BreakerState::Closed,
                source: hale::records::CheckSource::Monitor,
            })
            .await
            .unwrap();
    }
    handle.shutdown().await;
    assert_eq!(store.count_checks(Some("api")).await.unwrap(), 4);

    let pruned = store
        .prune(
            now - chrono::Duration::days(30),
            now - chrono::Duration::days(400),
        )
        .await
        .unwrap();
    assert_eq!(
        (pruned.checks, pruned.rollups),
        (2, 0),
        "the checks 45 and 31 days old go, no rollup is old enough"
    );
    assert_eq!(store.count_checks(Some("api")).await.unwrap(), 2);
    let rollups = store
        .hourly_rollups("api", now - chrono::Duration::days(60), now)
        .await
        .unwrap();
    assert_eq!(rollups.len(), 4, "rollups outlive raw checks");

    let pruned = store
        .prune(
            now - chrono::Duration::days(30),
            now - chrono::Duration::days(30),
        )
        .await
        .unwrap();
    assert_eq!((pruned.checks, pruned.rollups), (0, 2));
    assert_eq!(
        store
            .hourly_rollups("api", now - chrono::Duration::days(60), now)
            .await
            .unwrap()
            .len(),
        2
    );
}

#[tokio::test]
async fn a_refused_connection_is_down_and_a_failed_tls_handshake_is_an_error() {
    let plain_http = TargetServer::start(Mode::Healthy).await;
    let closed_port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let app = common::app::spawn_app_with(proxy_config(vec![
        target("refused", &format!("http://127.0.0.1:{closed_port}/health")),
        target("not-tls", &format!("https://{}/health", plain_http.addr)),
    ]))
    .await;
    let (_, all) = health_all(&app).await;
    let refused = report(&all, "refused");
    assert_eq!(refused["outcome"], "down");
    assert!(
        refused["error"]
            .as_str()
            .unwrap()
            .starts_with("cannot connect"),
        "{refused}"
    );
    assert_eq!(report(&all, "not-tls")["outcome"], "error");
}

#[tokio::test]
async fn a_failure_streak_short_of_opening_survives_a_restart() {
    let server = TargetServer::start(Mode::Failing).await;
    let config = proxy_config(vec![target("api", &server.url())]);
    let clock = ManualClock::new(start_time());
    let mut app = common::app::spawn_app_with_clock(config.clone(), Arc::new(clock.clone())).await;
    for _ in 0..4 {
        health_all(&app).await;
    }
    app.restart(config, Arc::new(clock.clone())).await;
    // The fifth consecutive failure, counted across the restart, opens the breaker.
    let (_, all) = health_all(&app).await;
    assert_eq!(report(&all, "api")["breaker"], "open");
    assert_eq!(server.hits(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_probes_stay_within_max_in_flight() {
    let slow = TargetServer::start(Mode::Slow(Duration::from_millis(300))).await;
    let mut config = proxy_config(
        (0..12)
            .map(|i| {
                let mut t = target(&format!("t{i}"), &format!("http://{}/t{i}", slow.addr));
                t.interval_s = 1;
                t.timeout_ms = 1000;
                t
            })
            .collect(),
    );
    config.monitor.background_checks = true;
    config.monitor.max_in_flight = 3;
    let clock = ManualClock::new(start_time());
    let mut app = common::app::spawn_app_with_clock(config, Arc::new(clock.clone())).await;
    // The loops tick on the manual clock: each second advanced is one round of 12 probes, and 12 × 300 ms
    // is more work than 3 slots can do at once, so the bound is what limits.
    for round in 1..=2 {
        clock.advance(Duration::from_secs(1));
        common::eventually(&format!("round {round} of probes"), || async {
            (slow.hits() >= 12 * round).then_some(())
        })
        .await;
    }
    app.shutdown().await;
    assert_eq!(slow.hits(), 24, "one probe per target and tick, no more");
    assert_eq!(
        slow.most_in_flight(),
        3,
        "never more than max_in_flight probes at once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_background_probes_are_spread_over_the_interval() {
    let server = TargetServer::start(Mode::Healthy).await;
    let mut config = proxy_config(
        (0..40)
            .map(|i| {
                let mut t = target(&format!("t{i}"), &format!("http://{}/t{i}", server.addr));
                t.interval_s = 2;
                t
            })
            .collect(),
    );
    config.monitor.background_checks = true;
    let clock = ManualClock::new(start_time());
    let mut app = common::app::spawn_app_with_clock(config, Arc::new(clock.clone())).await;
    let mut events = app.app().events().subscribe("test");
    // One interval, 100 ms at a time: every target's first probe comes at its own point of it. After each
    // step the probes it started (real HTTP) are let finish, so each is stamped with its own step's time.
    let mut first: std::collections::HashMap<String, chrono::DateTime<Utc>> = Default::default();
    for _ in 0..20 {
        clock.advance(Duration::from_millis(100));
        while let Ok(event) = tokio::time::timeout(Duration::from_millis(60), events.recv()).await {
            if let Some(hale::events::Event::CheckFinished(check)) = event.as_deref() {
                first.entry(check.target.to_string()).or_insert(check.at);
            }
        }
    }
    assert_eq!(
        first.len(),
        40,
        "every target is probed within its first interval"
    );
    app.shutdown().await;
    let earliest = *first.values().min().unwrap();
    let latest = *first.values().max().unwrap();
    assert!(earliest >= start_time());
    assert!(latest <= start_time() + chrono::Duration::seconds(2));
    // Uniform over 2 s, 40 first probes within 500 ms of each other would be a one-in-10^20 event.
    assert!(
        latest - earliest > chrono::Duration::milliseconds(500),
        "first probes spread over only {:?}",
        latest - earliest
    );
    let distinct: std::collections::BTreeSet<_> = first.values().collect();
    assert!(distinct.len() >= 5, "first probes at {distinct:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_sees_every_check_and_breaker_move_of_a_run() {
    let server = TargetServer::start(Mode::Failing).await;
    let mut api = target("api", &server.url());
    api.interval_s = 10;
    api.breaker = Some(hale::config::BreakerOverride {
        failure_threshold: Some(2),
        ..Default::default()
    });
    let mut config = proxy_config(vec![api]);
    config.monitor.background_checks = true;
    let clock = ManualClock::new(start_time());
    let mut app = common::app::spawn_app_with_clock(config, Arc::new(clock.clone())).await;
    let mut events = app.app().events().subscribe("test");
    // Three background ticks (the breaker opens at the second failure; the third is still made, as the open
    // breaker's trial) and one on-demand check from /health/all, which the open breaker answers.
    for tick in 1..=3 {
        clock.advance(Duration::from_secs(10));
        common::eventually(&format!("tick {tick}"), || async {
            let made = common::db::count_check_rows(&app.db_path, "1 = 1").await;
            (made >= tick).then_some(())
        })
        .await;
    }
    let (status, _) = health_all(&app).await;
    assert_eq!(status, 503);
    app.shutdown().await;

    let mut seen = Vec::new();
    while let Ok(Some(event)) =
        tokio::time::timeout(Duration::from_millis(200), events.recv()).await
    {
        seen.push(match &*event {
            hale::events::Event::CheckFinished(c) => {
                format!(
                    "check {} {} {}",
                    c.target,
                    c.outcome.as_str(),
                    c.source.as_str()
                )
            }
            hale::events::Event::BreakerMoved(m) => {
                format!("breaker {} {} -> {}", m.target, m.from, m.to)
            }
            // Heal and child events: none without heal or supervised children configured.
            _ => continue,
        });
    }
    assert_eq!(
        seen,
        [
            "check api down monitor",
            "breaker api closed -> open",
            "check api down monitor",
            "check api down monitor",
            "check api circuit_open on_demand",
        ]
    );
    assert_eq!(server.hits(), 3);
}

/// Advances the clock one interval and waits for that tick's scheduled row; returns it as
/// `(checked_at_ms, outcome, breaker_state)`.
async fn next_scheduled_row(
    app: &TestApp,
    clock: &ManualClock,
    interval: Duration,
    tick: i64,
) -> (i64, String, String) {
    clock.advance(interval);
    common::eventually(&format!("scheduled check {tick}"), || async {
        let made = common::db::count_check_rows(&app.db_path, "source = 'monitor'").await;
        (made >= tick).then_some(())
    })
    .await;
    let rows = common::db::select_texts(
        &app.db_path,
        "health_checks",
        "checked_at_ms || ' ' || outcome || ' ' || breaker_state",
        "source = 'monitor'",
    )
    .await;
    let last = rows.last().expect("a scheduled row");
    let mut fields = last.split(' ');
    let mut next = || fields.next().unwrap_or_default().to_owned();
    let at = next().parse().unwrap_or_else(|e| panic!("{last}: {e}"));
    (at, next(), next())
}

async fn alerts_in_state(app: &TestApp, state: &str) -> i64 {
    common::db::count_rows(
        &app.db_path,
        "alerts",
        &format!("rule = 'target_down' AND target = 'api' AND state = '{state}'"),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recovered_target_is_up_at_its_next_scheduled_check_and_its_alert_resolves() {
    let server = TargetServer::start(Mode::Failing).await;
    let mut api = target("api", &server.url());
    api.interval_s = 10;
    // Opens at the third failure, when target_down (3 failures in a row) fires; open_timeout_s stays 60, six
    // intervals, so before this change the open breaker answered the next scheduled checks itself.
    api.breaker = Some(hale::config::BreakerOverride {
        failure_threshold: Some(3),
        ..Default::default()
    });
    let mut config = proxy_config(vec![api]);
    config.monitor.background_checks = true;
    config.storage.flush_interval_ms = 10;
    let interval = Duration::from_secs(10);
    let clock = ManualClock::new(start_time());
    let mut app = common::app::spawn_app_with_clock(config, Arc::new(clock.clone())).await;

    for tick in 1..=3 {
        let (_, outcome, _) = next_scheduled_row(&app, &clock, interval, tick).await;
        assert_eq!(outcome, "down", "tick {tick}");
    }
    let (_, services) = app.get_json(HealthProxy, "/services").await;
    assert_eq!(services[0]["breaker"]["state"], "open");
    common::eventually("the target_down alert", || async {
        (alerts_in_state(&app, "firing").await == 1).then_some(())
    })
    .await;

    // Still down: the scheduled check is made (a failed trial), the breaker stays open and the on-demand
    // fan-out keeps getting circuit_open without a request to the target.
    let (failed_at, outcome, breaker) = next_scheduled_row(&app, &clock, interval, 4).await;
    assert_eq!(
        (outcome.as_str(), breaker.as_str()),
        ("down", "open"),
        "a scheduled check of an open breaker is a trial, not circuit_open"
    );
    assert_eq!(server.hits(), 4);
    let (status, all) = health_all(&app).await;
    assert_eq!(status, 503);
    let on_demand = report(&all, "api");
    assert_eq!(on_demand["outcome"], "circuit_open", "{on_demand}");
    let next_trial = chrono::DateTime::from_timestamp_millis(failed_at + 60_000)
        .unwrap()
        .to_rfc3339();
    assert!(
        on_demand["error"].as_str().unwrap().contains(&next_trial),
        "the failed scheduled trial moved retry_at to {next_trial}: {on_demand}"
    );
    assert_eq!(server.hits(), 4, "no on-demand request while open");

    // The target recovers: the very next scheduled check sees it, one interval at most after recovery.
    server.set(Mode::Healthy);
    let recovered_at = clock.now().timestamp_millis();
    let (seen_at, outcome, breaker) = next_scheduled_row(&app, &clock, interval, 5).await;
    assert_eq!(
        (outcome.as_str(), breaker.as_str()),
        ("up", "half_open"),
        "the first scheduled check after recovery"
    );
    assert!(
        seen_at - recovered_at <= 10_000,
        "seen {} ms after recovery",
        seen_at - recovered_at
    );
    assert_eq!(
        alerts_in_state(&app, "firing").await,
        1,
        "one success is not enough to resolve (resolve_after_successes 2)"
    );
    let (_, outcome, breaker) = next_scheduled_row(&app, &clock, interval, 6).await;
    assert_eq!((outcome.as_str(), breaker.as_str()), ("up", "closed"));
    common::eventually("the target_down alert resolved", || async {
        (alerts_in_state(&app, "resolved").await == 1).then_some(())
    })
    .await;
    assert_eq!(alerts_in_state(&app, "firing").await, 0);
    let (status, all) = health_all(&app).await;
    assert_eq!(status, 200);
    assert_eq!(report(&all, "api")["breaker"], "closed");
    app.shutdown().await;

    assert_eq!(
        common::db::count_check_rows(
            &app.db_path,
            "source = 'monitor' AND outcome = 'circuit_open'"
        )
        .await,
        0,
        "no scheduled check is ever circuit_open"
    );
    assert_eq!(
        common::db::count_check_rows(&app.db_path, "source = 'monitor' AND outcome = 'up'").await,
        2
    );
    assert_eq!(
        common::db::count_check_rows(&app.db_path, "source = 'monitor' AND outcome = 'down'").await,
        4
    );
    let resolved_at: i64 = common::db::select_texts(
        &app.db_path,
        "alerts",
        "resolved_at_ms",
        "rule = 'target_down' AND target = 'api'",
    )
    .await[0]
        .parse()
        .unwrap();
    assert!(
        resolved_at - recovered_at <= 20_000,
        "resolved {} ms after recovery: two intervals for two successes",
        resolved_at - recovered_at
    );
    let store = Store::open(&app.db_path).await.unwrap();
    let transitions = store.breaker_transitions("target:api").await.unwrap();
    store.close().await;
    use BreakerState::*;
    assert_eq!(
        transitions,
        vec![
            (Closed, Open, "failure_threshold".to_owned()),
            (Open, HalfOpen, "scheduled_check_succeeded".to_owned()),
            (HalfOpen, Closed, "trial_succeeded".to_owned()),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_scheduled_trial_moves_retry_at_and_a_restart_keeps_the_later_one() {
    let server = TargetServer::start(Mode::Failing).await;
    let mut api = target("api", &server.url());
    api.interval_s = 10;
    api.breaker = Some(hale::config::BreakerOverride {
        failure_threshold: Some(1),
        ..Default::default()
    });
    let mut config = proxy_config(vec![api]);
    config.monitor.background_checks = true;
    config.storage.flush_interval_ms = 10;
    let interval = Duration::from_secs(10);
    let clock = ManualClock::new(start_time());
    let mut app = common::app::spawn_app_with_clock(config.clone(), Arc::new(clock.clone())).await;

    let (opened_at, outcome, breaker) = next_scheduled_row(&app, &clock, interval, 1).await;
    assert_eq!((outcome.as_str(), breaker.as_str()), ("down", "open"));
    let (failed_at, outcome, breaker) = next_scheduled_row(&app, &clock, interval, 2).await;
    assert_eq!((outcome.as_str(), breaker.as_str()), ("down", "open"));
    assert_eq!(failed_at - opened_at, 10_000);
    let rfc3339 = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .unwrap()
            .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
    };
    let (_, services) = app.get_json(HealthProxy, "/services").await;
    assert_eq!(services[0]["breaker"]["state"], "open");
    assert_eq!(
        services[0]["breaker"]["retry_at"],
        rfc3339(failed_at + 60_000).as_str(),
        "open_timeout_s after the failed scheduled trial, not after the opening"
    );

    // Stopped, then started again (without scheduled checks, so none moves retry_at again) past the first
    // retry_at but before the moved one: still open, until the moved one.
    app.shutdown().await;
    clock.advance(Duration::from_secs(55));
    config.monitor.background_checks = false;
    app.restart(config, Arc::new(clock.clone())).await;
    let (_, services) = app.get_json(HealthProxy, "/services").await;
    assert_eq!(services[0]["breaker"]["state"], "open");
    assert_eq!(
        services[0]["breaker"]["retry_at"],
        rfc3339(failed_at + 60_000).as_str()
    );
    app.shutdown().await;
}

/// After a forward jump of the clock (a resume from suspend, an NTP step), the targets are not all probed at
/// once: only the ones due when the scheduler woke; the others each once at its phase over the next interval,
/// none probed twice and none skipped for more than an interval.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_forward_clock_jump_the_targets_stay_spread_over_their_interval() {
    let server = TargetServer::start(Mode::Healthy).await;
    let names: Vec<String> = (0..10).map(|i| format!("t{i}")).collect();
    let targets = names
        .iter()
        .map(|name| {
            let mut t = target(name, &server.url());
            t.interval_s = 10;
            t
        })
        .collect();
    let mut config = proxy_config(targets);
    config.monitor.background_checks = true;
    let clock = ManualClock::new(start_time());
    let app = common::app::spawn_app_with_clock(config, Arc::new(clock.clone())).await;
    // Waits until no probe has reached the server for a moment and every row is written: what a step of the
    // clock started has finished.
    let quiet = || async {
        let deadline = Instant::now() + common::DEADLINE;
        loop {
            let hits = server.hits();
            tokio::time::sleep(Duration::from_millis(200)).await;
            if server.hits() == hits && app.core().writer.queued() == 0 {
                return hits;
            }
            assert!(Instant::now() < deadline, "the probes never settled");
        }
    };
    // One interval, a second at a time: each target is checked once, at its phase.
    for _ in 0..10 {
        clock.advance(Duration::from_secs(1));
        quiet().await;
    }
    let before = quiet().await;
    assert_eq!(before, 10);

    // An hour at once.
    clock.advance(Duration::from_secs(3_600));
    let jumped = clock.now();
    let at_jump = quiet().await - before;
    assert!(
        at_jump <= 3,
        "{at_jump} of 10 targets probed at once after the jump"
    );
    // The next interval, a second at a time: every target once more, at its phase.
    for _ in 0..10 {
        clock.advance(Duration::from_secs(1));
        quiet().await;
    }
    let rows = common::db::select_texts(
        &app.db_path,
        "health_checks",
        "service",
        &format!(
            "source = 'monitor' AND checked_at_ms >= {}",
            jumped.timestamp_millis()
        ),
    )
    .await;
    for name in &names {
        let checks = rows.iter().filter(|r| *r == name).count();
        assert!(
            (1..=2).contains(&checks),
            "{name}: {checks} checks in the interval after the jump: {rows:?}"
        );
    }
    // Only the targets probed at the jump are probed again within the interval.
    assert_eq!(rows.len(), 10 + at_jump, "{rows:?}");
}
