//! Bounded fan-out: `/health/all` aimed at hale itself, many concurrent callers sharing one probe, a burst
//! against an open breaker, and thousands of targets under a low open-file limit. Stored rows are counted
//! with `SELECT count(*)` on the database file.

use std::sync::Arc;
use std::time::Duration;

use hale::clock::ManualClock;
use hale::kind::ServiceKind::HealthProxy;
use serde_json::{json, Value};

use super::relay::Relay;
use super::target_server::{Mode, TargetServer};
use super::{health_all, proxy_config, report, start_time, target};
use crate::common;
use crate::common::app::TestApp;
use crate::common::db::count_check_rows;
use crate::common::process::HaleProcess;
use crate::common::prom::{parse_samples, sample_value};

/// `n` concurrent `GET /health/all`, each on its own connection; returns every answer's status and body.
async fn concurrent_health_all(app: &TestApp, n: usize) -> Vec<(u16, Value)> {
    let url = app.url(HealthProxy, "/health/all");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .pool_max_idle_per_host(0)
        .build()
        .expect("build the HTTP client");
    let calls: Vec<_> = (0..n)
        .map(|_| {
            let (client, url) = (client.clone(), url.clone());
            tokio::spawn(async move {
                let res = client.get(url).send().await.expect("GET /health/all");
                let status = res.status().as_u16();
                (status, res.json::<Value>().await.expect("a JSON answer"))
            })
        })
        .collect();
    let mut answers = Vec::with_capacity(n);
    for call in calls {
        answers.push(call.await.expect("request task"));
    }
    answers
}

/// The `/health/all` requests hale has answered, whatever their status.
fn health_all_requests(metrics: &str) -> f64 {
    parse_samples(metrics)
        .iter()
        .filter(|s| s.name == "http_requests_total" && s.labels["route"] == "/health/all")
        .map(|s| s.value)
        .sum()
}

#[tokio::test]
async fn a_target_that_is_hales_own_health_all_is_answered_from_latest_results_without_recursion() {
    // The relay is the target; once hale runs, it forwards to hale's own Health Proxy port (with port 0 the
    // config check cannot know that port, so only the probe marker header stands between hale and a loop).
    let relay = Relay::start().await;
    let mut app = common::app::spawn_app_with(proxy_config(vec![target(
        "myself",
        &format!("http://{}/health/all", relay.addr),
    )]))
    .await;
    relay.forward_to(app.addr(HealthProxy));

    for round in 1..=3 {
        let (status, all) = health_all(&app).await;
        assert_eq!(status, 503, "round {round}: {all}");
        let me = report(&all, "myself");
        // The inner /health/all carried X-Hale-Probe: it checked nothing and answered at once from the latest
        // results ("myself" is not up there), so the outer check sees a prompt 503, not a timeout.
        assert_eq!(me["outcome"], "down", "round {round}: {me}");
        assert_eq!(me["status"], 503, "round {round}: {me}");
    }
    let metrics = app.metrics(HealthProxy).await;
    assert_eq!(
        health_all_requests(&metrics),
        6.0,
        "3 from the test and 1 per hale probe, none deeper"
    );
    assert_eq!(
        sample_value(
            &metrics,
            "health_check_on_demand_total",
            &[("outcome", "down")]
        ),
        Some(3.0),
        "one probe per outer request"
    );
    assert!(relay.connections() >= 1);
    app.shutdown().await;
    assert_eq!(
        count_check_rows(&app.db_path, "service = 'myself'").await,
        1,
        "three on-demand checks within one 30 s interval are one stored row"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_health_all_calls_share_one_probe_of_a_hanging_target() {
    let hanging = TargetServer::start(Mode::Hanging).await;
    let mut hung = target("hung", &hanging.url());
    // Long enough for all the calls to arrive while the one probe is still waiting.
    hung.timeout_ms = 5_000;
    let mut app = common::app::spawn_app_with(proxy_config(vec![hung])).await;

    let answers = concurrent_health_all(&app, 1000).await;
    assert_eq!(answers.len(), 1000);
    let mut shared = 0;
    for (status, all) in &answers {
        assert_eq!(*status, 503);
        let hung = report(all, "hung");
        assert_eq!(hung["outcome"], "timeout", "{hung}");
        assert_eq!(hung["error"], "no answer within 5000 ms");
        if hung["shared"] == true {
            shared += 1;
        }
    }
    assert_eq!(hanging.hits(), 1, "one probe reached the target");
    assert_eq!(hanging.most_in_flight(), 1);
    assert_eq!(shared, 999, "every other caller shared that probe's result");
    let metrics = app.metrics(HealthProxy).await;
    assert_eq!(
        sample_value(&metrics, "health_check_shared_total", &[]),
        Some(999.0)
    );
    assert_eq!(sample_value(&metrics, "probes_in_flight", &[]), Some(0.0));
    app.shutdown().await;
    assert_eq!(count_check_rows(&app.db_path, "1 = 1").await, 1);
}

#[tokio::test]
async fn a_burst_of_health_all_against_an_open_breaker_stores_one_row_per_interval() {
    let failing = TargetServer::start(Mode::Failing).await;
    let mut config = proxy_config(vec![target("api", &failing.url())]);
    config.breaker.failure_threshold = 1;
    // interval_s 30 (default), open_timeout_s 60 (default): the breaker stays open over two intervals.
    let clock = ManualClock::new(start_time());
    let mut app = common::app::spawn_app_with_clock(config, Arc::new(clock.clone())).await;

    for burst in 0..2 {
        for _ in 0..4 {
            let answers = concurrent_health_all(&app, 100).await;
            for (status, all) in &answers {
                // Every request is still answered, whether or not its check is stored.
                assert_eq!(*status, 503);
                assert_eq!(report(all, "api")["breaker"], "open", "burst {burst}");
            }
        }
        clock.advance(Duration::from_secs(30));
    }
    assert_eq!(failing.hits(), 1, "only the check that opened the breaker");
    let metrics = app.metrics(HealthProxy).await;
    // On-demand checks are counted for all targets together; api is the only one.
    let answered_open = sample_value(
        &metrics,
        "health_check_on_demand_total",
        &[("outcome", "circuit_open")],
    )
    .unwrap_or(0.0);
    let not_stored = sample_value(&metrics, "health_check_not_stored_total", &[]).unwrap_or(0.0);
    assert!(answered_open >= 1.0, "{answered_open}");
    app.shutdown().await;

    assert_eq!(
        count_check_rows(&app.db_path, "service = 'api'").await,
        2,
        "800 requests over two intervals: one row per interval"
    );
    assert_eq!(count_check_rows(&app.db_path, "outcome = 'down'").await, 1);
    assert_eq!(
        count_check_rows(&app.db_path, "outcome = 'circuit_open'").await,
        1
    );
    assert_eq!(
        not_stored,
        answered_open + 1.0 - 2.0,
        "every other check made was answered but not stored"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_targets_under_a_256_open_file_limit_are_all_up() {
    // Few server sockets: 2,000 targets on 4 ports, told apart by their paths.
    let mut servers = Vec::new();
    for _ in 0..4 {
        servers.push(TargetServer::start(Mode::Healthy).await);
    }
    let services: Vec<Value> = (0..2000)
        .map(|i| {
            json!({
                "name": format!("t{i}"),
                "url": format!("http://{}/t{i}", servers[i % servers.len()].addr),
            })
        })
        .collect();
    let mut config = common::config::test_config_json();
    config["services"] = Value::Array(services);
    config["monitor"] = json!({"background_checks": false, "cache_ttl_s": 0});
    let mut hale = HaleProcess::serve_with_open_file_limit(&config, 256).await;
    let addrs = hale.wait_listening(&[HealthProxy]).await;
    let base = format!("http://{}", addrs[&HealthProxy]);

    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .expect("build the HTTP client");
    let all = client.get(format!("{base}/health/all")).send();
    // hale's own /health is answered while the 2,000 probes run.
    let own = client.get(format!("{base}/health")).send();
    let (all, own) = tokio::join!(all, own);
    assert_eq!(own.expect("GET /health").status().as_u16(), 200);
    let all = all.expect("GET /health/all");
    assert_eq!(all.status().as_u16(), 200);
    let all: Value = all.json().await.expect("a JSON answer");
    assert_eq!(all["counts"]["up"], 2000, "{}", all["counts"]);
    assert_eq!(all["counts"]["error"], 0);

    let logs = hale.json_logs();
    let limit = logs
        .iter()
        .find(|l| l["message"] == "open-file limit")
        .expect("the open-file limit is logged at start");
    assert_eq!(limit["limit"], 256);
    let lowered = logs
        .iter()
        .find(|l| l["message"] == "probe concurrency lowered to fit the open-file limit")
        .expect("the lowered probe concurrency is logged");
    assert_eq!(lowered["configured"], 256);
    assert_eq!(
        lowered["effective"], 47,
        "(256 - 128 - 6 × 3 workers - 15 for alert deliveries) / 2"
    );

    hale.signal("TERM");
    let status = hale.wait_exit(common::DEADLINE).await;
    assert_eq!(
        common::process::exit_code(status),
        0,
        "{:?}",
        hale.stderr_lines()
    );
    assert_eq!(count_check_rows(&hale.db_path, "1 = 1").await, 2000);
    assert_eq!(
        count_check_rows(&hale.db_path, "outcome = 'up'").await,
        2000
    );
}

#[tokio::test]
async fn running_short_of_open_files_is_logged_once_and_so_is_the_recovery() {
    let mut hale =
        HaleProcess::serve_with_open_file_limit(&common::config::test_config_json(), 256).await;
    let addrs = hale.wait_listening(&[HealthProxy]).await;
    // 200 idle client connections on top of hale's own ~40 descriptors: past 90% of 256.
    let mut held = Vec::new();
    for _ in 0..200 {
        match tokio::net::TcpStream::connect(addrs[&HealthProxy]).await {
            Ok(stream) => held.push(stream),
            Err(e) => panic!("connect to hale: {e}"),
        }
    }
    let near = |hale: &HaleProcess| {
        hale.json_logs()
            .into_iter()
            .filter(|l| {
                l["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("open files near the limit"))
            })
            .collect::<Vec<_>>()
    };
    let warned = common::eventually("the open-files warning", || async {
        let found = near(&hale);
        (!found.is_empty()).then_some(found)
    })
    .await;
    assert_eq!(warned[0]["level"], "WARN");
    assert_eq!(warned[0]["limit"], 256);
    assert!(
        warned[0]["open_files"].as_u64().unwrap() >= 231,
        "{}",
        warned[0]
    );
    drop(held);
    let recovered = common::eventually("the recovery line", || async {
        hale.json_logs()
            .into_iter()
            .find(|l| l["message"] == "open files back below 80% of the limit")
    })
    .await;
    assert_eq!(recovered["level"], "INFO");
    assert_eq!(
        near(&hale).len(),
        1,
        "one warning per episode, not one per second"
    );
    hale.signal("TERM");
    assert_eq!(
        common::process::exit_code(hale.wait_exit(common::DEADLINE).await),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepts_failing_for_lack_of_descriptors_are_counted_not_logged_every_500_ms() {
    let mut hale =
        HaleProcess::serve_with_open_file_limit(&common::config::test_config_json(), 100).await;
    let addrs = hale.wait_listening(&[HealthProxy]).await;
    // More idle connections than descriptors left: hale accepts what it can, the rest wait in the
    // kernel's queue while actix-server's accept fails with "Too many open files" every 500 ms.
    let mut held = Vec::new();
    for i in 0..120 {
        match tokio::net::TcpStream::connect(addrs[&HealthProxy]).await {
            Ok(stream) => held.push(stream),
            Err(e) => panic!(
                "connection {i}: the kernel did not complete it ({e}); hale's stdout: {:?}; stderr: {:?}",
                hale.stdout_lines().iter().rev().take(20).collect::<Vec<_>>(),
                hale.stderr_lines()
            ),
        }
    }
    let counted = common::eventually("the counted accept line", || async {
        hale.json_logs().into_iter().find(|l| l["kind"] == "accept")
    })
    .await;
    assert_eq!(counted["level"], "WARN");
    assert!(
        counted["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("Too many open files")),
        "{counted}"
    );
    // Let actix retry a few times: none of its retries is a line of its own. A sleep, not a wait: hale keeps
    // no running count of failed accepts (only the count since its last line, reset when written), and a
    // metric of it would have to be read over a connection hale accepted earlier, as it accepts none now.
    tokio::time::sleep(std::time::Duration::from_millis(1600)).await;
    drop(held);
    let res = common::eventually("hale answers again", || async {
        common::app::client()
            .get(format!("http://{}/health", addrs[&HealthProxy]))
            .send()
            .await
            .ok()
    })
    .await;
    assert_eq!(res.status().as_u16(), 200);
    hale.signal("TERM");
    assert_eq!(
        common::process::exit_code(hale.wait_exit(common::DEADLINE).await),
        0
    );
    let logs = hale.json_logs();
    let raw = logs
        .iter()
        .filter(|l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("Error accepting connection"))
        })
        .count();
    assert_eq!(raw, 0, "actix's own accept errors are counted, not written");
    let accept_lines: Vec<&serde_json::Value> =
        logs.iter().filter(|l| l["kind"] == "accept").collect();
    let total: u64 = accept_lines
        .iter()
        .map(|l| l["count"].as_u64().unwrap_or(0))
        .sum();
    assert!(
        total >= 2,
        "several failed accepts, counted: {accept_lines:?}"
    );
    assert!(
        accept_lines.len() <= 3,
        "a line per 10 s period (and the rest at shutdown), not one per retry: {accept_lines:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_checks_keep_their_rows_under_on_demand_load() {
    let slow = TargetServer::start(Mode::Slow(Duration::from_millis(400))).await;
    let mut api = target("api", &slow.url());
    api.interval_s = 1;
    api.timeout_ms = 900;
    let mut config = proxy_config(vec![api]);
    config.monitor.background_checks = true;
    let clock = ManualClock::new(start_time());
    let mut app = common::app::spawn_app_with_clock(config, Arc::new(clock.clone())).await;
    // Each second on the clock is one background tick, met by /health/all calls: a check of api is nearly
    // always in flight, so most ticks share an on-demand check instead of probing, and must still store
    // their row.
    for _ in 0..4 {
        clock.advance(Duration::from_secs(1));
        for _ in 0..2 {
            let answers = concurrent_health_all(&app, 4).await;
            assert!(answers
                .iter()
                .all(|(_, all)| report(all, "api")["outcome"] == "up"));
        }
    }
    app.shutdown().await;
    let monitor_rows = count_check_rows(&app.db_path, "source = 'monitor'").await;
    assert!(
        monitor_rows >= 2,
        "a background tick every second for 4 s, each one stored: {monitor_rows}"
    );
    let on_demand_rows = count_check_rows(&app.db_path, "source = 'on_demand'").await;
    let closer_than_the_interval = count_check_rows(
        &app.db_path,
        "source = 'on_demand' AND EXISTS (SELECT 1 FROM health_checks AS b WHERE b.source = 'on_demand' \
         AND NOT (b.target_id = health_checks.target_id AND b.seq = health_checks.seq \
         AND b.checked_at_ms = health_checks.checked_at_ms) \
         AND b.checked_at_ms BETWEEN health_checks.checked_at_ms - 999 AND health_checks.checked_at_ms)",
    )
    .await;
    assert_eq!(
        closer_than_the_interval, 0,
        "on-demand rows are at least 1 s apart"
    );
    assert!(
        on_demand_rows <= 5,
        "at most one on-demand row per 1 s interval over 4 s: {on_demand_rows}"
    );
    assert!(slow.hits() >= 4);
}
