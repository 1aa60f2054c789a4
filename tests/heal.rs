//! Auto-heal and the alert manager against real targets on the test clock: the hourly budget survives a
//! restart of hale, a mass failure gives one alert and no heal, and an alert fires once, suppresses its
//! repeats and resolves after two successes; a target in maintenance is neither healed automatically nor
//! alerted on, and is after the usual failures once the window ends. Counts come from the database file.

// A test crate: an unwrap is an assertion, and tests/common sets a child's rlimit in `pre_exec`.
#![allow(clippy::unwrap_used)]

mod common;
#[path = "health_proxy/target_server.rs"]
#[allow(dead_code)]
mod target_server;

use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use hale::auth::Role;
use hale::clock::{Clock, ManualClock};
use hale::config::MaintenanceConfig;
use hale::kind::ServiceKind;
use serde_json::Value;

use common::app::{spawn_app_with, spawn_app_with_clock, TestApp};
use common::clock::Pacer;
use common::config::{target, TestConfig};
use common::db::count_rows;
use common::dead_port;
use target_server::{Mode, TargetServer};

/// Heals verify for 2 s, one probe a second; the other protections keep their defaults (cooldown 300 s,
/// 3 heals an hour, sweep every 300 s, mass failure above half of at least 3 targets). The checks' rows land
/// within milliseconds: the clock moves far faster than real time here.
fn heal_config() -> TestConfig {
    TestConfig::new().heal_verify(2, 1_000).flush_every_ms(10)
}

/// A pacer that moves the clock a second at a time, each second waiting until every one of `targets` has
/// finished its scheduled check of the new instant (and its row is written), as it would have in real time.
/// Without this, a loaded machine lets the clock run ahead of the probes, and one target can reach its third
/// failure before the others were checked at all.
fn pacer(app: &TestApp, clock: &ManualClock, targets: &[&str]) -> Pacer {
    Pacer::for_app(app, clock).checks_of(targets)
}

fn start_clock() -> ManualClock {
    ManualClock::new(Utc.with_ymd_and_hms(2026, 11, 26, 12, 0, 0).unwrap())
}

async fn heal_rows(app: &TestApp, condition: &str) -> i64 {
    count_rows(&app.db_path, "heal_events", condition).await
}

const ACTED: &str = "outcome IN ('healed', 'failed')";

#[tokio::test]
async fn a_crash_looping_child_is_healed_three_times_an_hour_then_skipped_with_one_critical_alert_even_across_a_restart(
) {
    // The child crashes at once, every time: it never listens on its port.
    let down = dead_port();
    let api = target("api", &format!("tcp://127.0.0.1:{down}"))
        .every_second()
        .with(|api| {
            api.run = Some(
                serde_json::from_value(serde_json::json!({
                    "argv": ["sh", "-c", "exit 1"],
                    "backoff_initial_ms": 1000,
                    "backoff_max_s": 60
                }))
                .unwrap(),
            );
        });
    let config = heal_config().target(api).build();
    let clock = start_clock();
    let mut app = spawn_app_with_clock(config.clone(), Arc::new(clock.clone())).await;

    // The 3rd failed check heals at once; the sweep heals again 300 s and 600 s later (the cooldown is
    // over each time), and 900 s later finds the budget spent.
    pacer(&app, &clock, &["api"]).advance_s(1_250).await;
    common::eventually("a heal skipped for its budget", || async {
        (heal_rows(&app, "outcome = 'skipped_budget'").await >= 1).then_some(())
    })
    .await;
    assert_eq!(heal_rows(&app, ACTED).await, 3);
    assert_eq!(
        heal_rows(
            &app,
            "outcome = 'failed' AND action = 'restart_child' AND trigger = 'automatic'"
        )
        .await,
        3,
        "the child never came up, so every heal failed its verification"
    );
    assert_eq!(
        count_rows(&app.db_path, "child_runs", "cause = 'heal'").await,
        3,
        "each heal restarted the child once"
    );
    assert!(
        count_rows(&app.db_path, "child_runs", "cause = 'exited'").await >= 5,
        "the supervisor restarted it meanwhile, with its backoff"
    );
    let budget_alert = "rule = 'heal_budget_exhausted' AND target = 'api' AND level = 'critical'";
    common::eventually("the heal budget alert", || async {
        (count_rows(
            &app.db_path,
            "alerts",
            &format!("{budget_alert} AND state = 'firing'"),
        )
        .await
            == 1)
            .then_some(())
    })
    .await;
    let (status, children) = app.get_json(ServiceKind::HealthProxy, "/children").await;
    assert_eq!(status, 200);
    assert_eq!(children[0]["target"], "api", "{children}");
    assert!(children[0]["restarts"].as_u64().unwrap() >= 8, "{children}");
    assert_eq!(children[0]["last_exit_code"], 1, "{children}");
    let metrics = app.metrics(ServiceKind::HealthProxy).await;
    assert_eq!(
        common::prom::sample_value(
            &metrics,
            "heal_attempts_total",
            &[("target", "api"), ("outcome", "failed")]
        ),
        Some(3.0)
    );
    assert_eq!(
        common::prom::sample_value(
            &metrics,
            "restarts_total",
            &[("target", "api"), ("cause", "heal")]
        ),
        Some(3.0)
    );

    // hale restarts on the same database: cooldown and budget come from it, so no 4th heal within the hour,
    // and the firing alert is not notified again.
    app.restart(config, Arc::new(clock.clone())).await;
    pacer(&app, &clock, &["api"]).advance_s(700).await;
    common::eventually(
        "a heal skipped for its budget after the restart",
        || async { (heal_rows(&app, "outcome = 'skipped_budget'").await >= 2).then_some(()) },
    )
    .await;
    assert_eq!(
        heal_rows(&app, ACTED).await,
        3,
        "no 4th heal within the hour"
    );
    let fired = count_rows(
        &app.db_path,
        "alert_events",
        "kind = 'fired' AND alert_id IN (SELECT id FROM alerts WHERE rule = 'heal_budget_exhausted')",
    )
    .await;
    assert_eq!(fired, 1, "the budget alert was notified once");
    assert_eq!(
        count_rows(&app.db_path, "alerts", budget_alert).await,
        1,
        "one alert, still the same one"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn when_most_targets_fail_at_once_there_is_one_alert_and_no_heal() {
    let targets = (0..3).map(|i| {
        target(
            &format!("t{i}"),
            &format!("tcp://127.0.0.1:{}", dead_port()),
        )
        .every_second()
        .heal_command(&["true"])
    });
    let clock = start_clock();
    let mut app = spawn_app_with_clock(
        heal_config().targets(targets).build(),
        Arc::new(clock.clone()),
    )
    .await;
    pacer(&app, &clock, &["t0", "t1", "t2"]).advance_s(20).await;
    common::eventually("heals refused for the mass failure", || async {
        (heal_rows(&app, "outcome = 'skipped_mass_failure'").await >= 3).then_some(())
    })
    .await;
    assert_eq!(
        heal_rows(&app, ACTED).await,
        0,
        "no heal during a mass failure"
    );
    common::eventually("the mass failure alert", || async {
        (count_rows(
            &app.db_path,
            "alerts",
            "rule = 'mass_failure' AND target = '*' AND state = 'firing'",
        )
        .await
            == 1)
            .then_some(())
    })
    .await;
    common::eventually("every target's own alert, held back", || async {
        (count_rows(&app.db_path, "alerts", "rule = 'target_down'").await == 3).then_some(())
    })
    .await;
    let (status, active) = app
        .get_json(ServiceKind::HealthProxy, "/alerts/active")
        .await;
    assert_eq!(status, 200);
    let rules: Vec<&str> = active
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["rule"].as_str().unwrap())
        .collect();
    assert_eq!(rules[0], "mass_failure", "critical first: {active}");
    // Counted once hale has stopped, so every alert it raised is stored with its events.
    app.shutdown().await;
    assert_eq!(
        count_rows(&app.db_path, "alerts", "last_notified_at_ms IS NOT NULL").await,
        1,
        "only the mass failure was notified"
    );
    // Each target's own alerts (down, and flapping after 5 failures) were held back.
    assert_eq!(
        count_rows(&app.db_path, "alert_events", "kind = 'inhibited'").await,
        count_rows(&app.db_path, "alerts", "target != '*'").await,
    );
}

#[tokio::test]
async fn an_alert_fires_once_suppresses_its_repeats_and_resolves_after_two_successes() {
    let server = TargetServer::start(Mode::Healthy).await;
    let url = format!("http://{}/health", server.addr);
    let clock = start_clock();
    let mut app = spawn_app_with_clock(
        heal_config()
            .target(target("api", &url).every_second())
            .build(),
        Arc::new(clock.clone()),
    )
    .await;
    let mut pace = pacer(&app, &clock, &["api"]);
    pace.advance_s(5).await;
    server.set(Mode::Failing);
    pace.advance_s(30).await;
    let down = "rule = 'target_down' AND target = 'api'";
    common::eventually("the target_down alert", || async {
        (count_rows(
            &app.db_path,
            "alerts",
            &format!("{down} AND state = 'firing' AND suppressed > 0"),
        )
        .await
            == 1)
            .then_some(())
    })
    .await;
    let events_of = |kind: &'static str| {
        let db = app.db_path.clone();
        async move {
            count_rows(
                &db,
                "alert_events",
                &format!("kind = '{kind}' AND alert_id IN (SELECT id FROM alerts WHERE {down})"),
            )
            .await
        }
    };
    assert_eq!(events_of("fired").await, 1);
    assert_eq!(events_of("repeated").await, 0, "inside the cooldown of 1 h");
    assert_eq!(
        events_of("suppressed").await,
        1,
        "one row for the run of repeats"
    );

    // Once the breaker lets a trial through, one success is not enough (hysteresis); two are.
    server.set(Mode::Healthy);
    pace.advance_s(150).await;
    common::eventually("the alert resolved", || async {
        (count_rows(
            &app.db_path,
            "alerts",
            &format!("{down} AND state = 'resolved'"),
        )
        .await
            == 1)
            .then_some(())
    })
    .await;
    assert_eq!(events_of("resolved").await, 1);
    let (_, resolved) = app
        .get_json(
            ServiceKind::HealthProxy,
            "/alerts?state=resolved&level=critical",
        )
        .await;
    assert_eq!(resolved[0]["rule"], "target_down", "{resolved}");
    assert!(resolved[0]["resolved_at"].is_string());
    let (status, err) = app
        .get_json(ServiceKind::HealthProxy, "/alerts?level=loud")
        .await;
    assert_eq!(status, 400);
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("level"),
        "{err}"
    );
    app.shutdown().await;
}

const OPERATE: &str = "heal-operate-token-bbbbbbbbbbbb";
const READ: &str = "heal-read-token-aaaaaaaaaaaaaaaa";

#[tokio::test]
async fn a_manual_heal_needs_the_operate_token_runs_the_command_and_verifies_then_respects_the_cooldown(
) {
    let port = dead_port();
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("server.pid");
    // The heal command starts the service (a real HTTP server) in the background and returns.
    let start_server = format!(
        "python3 -m http.server {port} --bind 127.0.0.1 >/dev/null 2>&1 & echo $! > {}",
        pid_file.display()
    );
    let api = target("api", &format!("http://127.0.0.1:{port}/"))
        .every_second()
        .heal_command(&["sh", "-c", &start_server])
        .interval_s(60);
    let config = heal_config()
        .target(api)
        .heal(|heal| heal.enabled = false)
        .heal_verify(15, 100)
        .token(Role::Operate, "HEAL_TEST_OPERATE", OPERATE)
        .token(Role::Read, "HEAL_TEST_READ", READ)
        .build();
    let mut app = spawn_app_with(config).await;
    let post = |token: Option<&'static str>, path: &'static str| {
        let mut request = app.request(reqwest::Method::POST, ServiceKind::HealthProxy, path);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (
                status,
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    assert_eq!(post(None, "/heal/api").await.0, 401);
    assert_eq!(post(Some(READ), "/heal/api").await.0, 403);
    assert_eq!(post(Some(OPERATE), "/heal/nope").await.0, 404);
    let heal_restarts = || async {
        common::prom::sample_value(
            &app.metrics(ServiceKind::HealthProxy).await,
            "restarts_total",
            &[("target", "api"), ("cause", "heal")],
        )
    };
    assert_eq!(heal_restarts().await, Some(0.0), "the series exists from 0");

    let (status, healed) = post(Some(OPERATE), "/heal/api").await;
    let pid = std::fs::read_to_string(&pid_file).unwrap_or_default();
    let _server = KillOnDrop(pid.trim().parse().unwrap_or(0));
    assert_eq!(status, 200, "{healed}");
    assert_eq!(healed["outcome"], "healed");
    assert_eq!(healed["trigger"], "manual");
    assert_eq!(healed["action"], "command");
    assert!(healed["verify_latency_ms"].as_f64().unwrap() >= 0.0);
    assert_eq!(heal_restarts().await, Some(1.0));

    let (status, again) = post(Some(OPERATE), "/heal/api").await;
    assert_eq!(status, 409, "{again}");
    assert_eq!(again["outcome"], "skipped_cooldown");
    // Each answer carries the id of the row it stored, read back from the database file.
    for (answer, outcome) in [(&healed, "healed"), (&again, "skipped_cooldown")] {
        let stored = common::db::select_texts(
            &app.db_path,
            "heal_events",
            "id",
            &format!("target = 'api' AND trigger = 'manual' AND outcome = '{outcome}'"),
        )
        .await;
        assert_eq!(stored, [answer["id"].to_string()], "{answer}");
    }

    let (status, events) = app
        .get_json(ServiceKind::HealthProxy, "/heal/events?target=api&limit=10")
        .await;
    assert_eq!(status, 200);
    let outcomes: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["skipped_cooldown", "healed"]);
    let (status, _) = app
        .get_json(ServiceKind::HealthProxy, "/heal/events?since=yesterday")
        .await;
    assert_eq!(status, 400);
    app.shutdown().await;
    assert_eq!(
        heal_rows(&app, "outcome = 'healed' AND trigger = 'manual'").await,
        1
    );
}

/// Kills a process started by a test when the test ends, however it ends.
struct KillOnDrop(i32);

impl Drop for KillOnDrop {
    #[allow(unsafe_code)]
    fn drop(&mut self) {
        if self.0 > 0 {
            // SAFETY: kill takes plain integers; a pid that is gone only makes it return ESRCH.
            unsafe {
                libc::kill(self.0, libc::SIGKILL);
            }
        }
    }
}

#[tokio::test]
async fn retention_prunes_old_heals_and_resolved_alerts_but_never_a_firing_alert() {
    use hale::records::{
        AlertEventKind, AlertLevel, HealAction, HealOutcome, HealRecord, HealTrigger,
    };
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hale.db");
    let store = hale::store::Store::open(&db).await.unwrap();
    let now = Utc.with_ymd_and_hms(2026, 11, 26, 12, 0, 0).unwrap();
    let days_ago = |d: i64| now - chrono::Duration::days(d);
    for d in [100, 10] {
        store
            .insert_heal(&HealRecord {
                target: Arc::from("api"),
                trigger: HealTrigger::Automatic,
                action: HealAction::Command,
                started_at: days_ago(d),
                finished_at: days_ago(d),
                outcome: HealOutcome::Failed,
                verify_latency: None,
                error: Some("still down".into()),
            })
            .await
            .unwrap();
    }
    // An old alert that resolved, and an old one that still fires.
    let (old, _) = store
        .open_alert(
            "target_down",
            "api",
            AlertLevel::Critical,
            "api is down",
            days_ago(120),
            AlertEventKind::Fired,
        )
        .await
        .unwrap();
    store
        .alert_event(
            old,
            AlertEventKind::Resolved,
            AlertLevel::Critical,
            "api is up again",
            days_ago(119),
            true,
        )
        .await
        .unwrap();
    store
        .open_alert(
            "target_down",
            "db",
            AlertLevel::Critical,
            "db is down",
            days_ago(120),
            AlertEventKind::Fired,
        )
        .await
        .unwrap();
    let pruned = store.prune(days_ago(30), days_ago(90)).await.unwrap();
    assert_eq!((pruned.heals, pruned.alerts), (1, 1));
    store.close().await;
    assert_eq!(count_rows(&db, "heal_events", "1 = 1").await, 1);
    assert_eq!(
        count_rows(&db, "alerts", "state = 'firing' AND target = 'db'").await,
        1
    );
    assert_eq!(count_rows(&db, "alerts", "1 = 1").await, 1);
    assert_eq!(
        count_rows(&db, "alert_events", "1 = 1").await,
        1,
        "the resolved alert's events went with it"
    );
}

#[tokio::test]
async fn a_held_target_and_a_child_with_a_configuration_error_are_not_healed() {
    use hale::records::{HealOutcome, HealTrigger};
    let held = target("held", &format!("tcp://127.0.0.1:{}", dead_port()))
        .every_second()
        .heal_command(&["true"])
        .interval_s(60);
    // A child that says its configuration is wrong (EX_CONFIG) and is therefore not restarted.
    let broken = target("broken", &format!("tcp://127.0.0.1:{}", dead_port()))
        .every_second()
        .interval_s(60)
        .with(|broken| {
            broken.run = Some(
                serde_json::from_value(serde_json::json!({"argv": ["sh", "-c", "exit 78"]}))
                    .unwrap(),
            );
        });
    let config = heal_config()
        .targets([held, broken])
        .heal(|heal| heal.enabled = false)
        .build();
    let mut app = spawn_app_with(config).await;
    let healer = app
        .app()
        .healer()
        .expect("auto-heal runs with the Health Proxy")
        .clone();
    let supervisor = app.app().supervisor().unwrap().clone();

    let hold = healer.hold("held").unwrap();
    let attempt = healer
        .heal("held", HealTrigger::Manual, false)
        .await
        .unwrap();
    assert_eq!(attempt.outcome, HealOutcome::SkippedHeld);
    drop(hold);
    let attempt = healer
        .heal("held", HealTrigger::Manual, false)
        .await
        .unwrap();
    assert_ne!(
        attempt.outcome,
        HealOutcome::SkippedHeld,
        "the hold is gone"
    );

    common::eventually("the child's configuration error", || async {
        (supervisor.last_exit_code("broken") == Some(78)).then_some(())
    })
    .await;
    let attempt = healer
        .heal("broken", HealTrigger::Manual, false)
        .await
        .unwrap();
    assert_eq!(
        attempt.outcome,
        HealOutcome::SkippedConfigError,
        "{attempt:?}"
    );
    assert!(attempt.error.unwrap().contains("78"));
    assert!(healer
        .heal("nope", HealTrigger::Manual, false)
        .await
        .is_err());
    app.shutdown().await;
    assert_eq!(heal_rows(&app, "outcome = 'skipped_held'").await, 1);
    assert_eq!(heal_rows(&app, "outcome = 'skipped_config_error'").await, 1);
}

/// Lines in a file a heal command appends to (0 when it was never written): how many times it really ran.
fn lines_in(path: &std::path::Path) -> usize {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .count()
}

const MS: i64 = 1_000;

#[tokio::test]
async fn a_target_failing_through_its_maintenance_window_is_neither_healed_nor_alerted_until_n_failures_after_it(
) {
    use hale::heal::HealError;
    use hale::records::HealTrigger;
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("heals");
    let api = target("api", &format!("tcp://127.0.0.1:{}", dead_port()))
        .every_second()
        .heal_command(&["sh", "-c", &format!("echo heal >> {}", marker.display())]);
    let mut config = heal_config().target(api).build();
    let clock = start_clock();
    let starts = clock.now();
    let ends = starts + chrono::Duration::seconds(300);
    config.slo.maintenance = vec![MaintenanceConfig {
        target: Some("api".into()),
        starts_at: starts,
        ends_at: ends,
        reason: "database upgrade".into(),
    }];
    let end_ms = ends.timestamp_millis();
    let mut app = spawn_app_with_clock(config, Arc::new(clock.clone())).await;
    let mut pace = pacer(&app, &clock, &["api"]);

    // Down from the first check, all through the window.
    pace.advance_s(200).await;
    pace.advance_until(
        "failed checks in the window",
        Duration::from_secs(90),
        || async {
            common::db::count_check_rows(&app.db_path, "service = 'api' AND outcome != 'up'").await
                >= 30
        },
    )
    .await;
    assert!(clock.now() < ends);
    // Asked directly, an automatic heal holds off (and stores nothing); a person's does not.
    let healer = app.app().healer().unwrap().clone();
    match healer.heal("api", HealTrigger::Automatic, true).await {
        Err(HealError::InMaintenance { target, until }) => {
            assert_eq!((target.as_str(), until), ("api", ends));
        }
        other => panic!("an automatic heal in maintenance went on: {other:?}"),
    }
    assert_eq!(heal_rows(&app, "1 = 1").await, 0, "no attempt, no row");
    assert_eq!(lines_in(&marker), 0, "the heal command never ran");
    assert_eq!(count_rows(&app.db_path, "alerts", "1 = 1").await, 0);

    // The window ends with the target still down: the run of failures starts again at its end, so the 3rd
    // failed check after it (not the first) heals and pages.
    let left = (ends - clock.now()).num_seconds() as u64;
    pace.advance_s(left).await;
    pace.advance_until(
        "the heal and the alert after the window",
        Duration::from_secs(120),
        || async {
            let healed = heal_rows(&app, ACTED).await >= 1;
            let down = count_rows(
                &app.db_path,
                "alerts",
                "rule = 'target_down' AND target = 'api' AND state = 'firing'",
            )
            .await
                == 1;
            healed && down
        },
    )
    .await;
    app.shutdown().await;
    assert_eq!(
        heal_rows(&app, &format!("started_at_ms < {end_ms}")).await,
        0,
        "nothing healed, tried or stored inside the window"
    );
    assert_eq!(
        heal_rows(&app, &format!("{ACTED} AND trigger = 'automatic'")).await,
        1,
        "one heal after the window; the cooldown holds the next"
    );
    assert_eq!(
        heal_rows(&app, &format!("started_at_ms >= {}", end_ms + 2 * MS)).await,
        1,
        "healed at the 3rd failed check after the window, not at its end"
    );
    assert_eq!(lines_in(&marker), 1, "the heal command ran once");
    assert_eq!(
        count_rows(&app.db_path, "alerts", &format!("fired_at_ms < {end_ms}")).await,
        0,
        "no alert inside the window"
    );
    assert_eq!(
        count_rows(&app.db_path, "alert_events", &format!("at_ms < {end_ms}")).await,
        0
    );
    assert_eq!(
        count_rows(
            &app.db_path,
            "alerts",
            &format!(
                "rule = 'target_down' AND target = 'api' AND fired_at_ms >= {}",
                end_ms + 2 * MS
            )
        )
        .await,
        1,
        "paged at the 3rd failed check after the window"
    );
    assert_eq!(
        count_rows(
            &app.db_path,
            "alert_events",
            "kind = 'fired' AND alert_id IN (SELECT id FROM alerts WHERE rule = 'target_down')"
        )
        .await,
        1
    );
}

#[tokio::test]
async fn a_window_posted_to_the_api_silences_a_firing_alert_lets_it_resolve_and_a_manual_heal_still_runs(
) {
    let server = TargetServer::start(Mode::Healthy).await;
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("heals");
    let api = target("api", &server.url()).every_second().heal_command(&[
        "sh",
        "-c",
        &format!("echo heal >> {}", marker.display()),
    ]);
    let config = heal_config()
        .target(api)
        .heal(|heal| heal.enabled = false)
        .token(Role::Operate, "HEAL_TEST_OPERATE", OPERATE)
        // No cooldown: outside maintenance, every failed check after the 3rd is one `repeated` event.
        .alert_rules(serde_json::json!([
            {"name": "api_down", "when": {"consecutive_failures": {"count": 3}}, "level": "critical",
             "cooldown_s": 0, "channels": ["log"]},
            {"name": "api_restarted", "when": "restarted", "level": "info", "cooldown_s": 0,
             "channels": ["log"]}
        ]))
        .build();
    let clock = start_clock();
    let mut app = spawn_app_with_clock(config, Arc::new(clock.clone())).await;
    let mut pace = pacer(&app, &clock, &["api"]);
    let db_path = app.db_path.clone();
    let down_events = |condition: String| {
        let db = db_path.clone();
        async move {
            count_rows(
                &db,
                "alert_events",
                &format!(
                    "alert_id IN (SELECT id FROM alerts WHERE rule = 'api_down') AND {condition}"
                ),
            )
            .await
        }
    };

    pace.advance_s(3).await;
    server.set(Mode::Failing);
    pace.advance_until(
        "the alert fired and repeated",
        Duration::from_secs(60),
        || async { down_events("kind = 'repeated'".into()).await >= 3 },
    )
    .await;
    // Everything before the window is handled while the clock stands still (the alert engine stamps its rows
    // with the clock when it handles a check: the check of this instant must be handled before the clock
    // moves into the window); then the window starts now.
    let now_ms = clock.now().timestamp_millis();
    common::eventually("the repeat for the check of this instant", || async {
        (down_events(format!("kind = 'repeated' AND at_ms >= {now_ms}")).await >= 1).then_some(())
    })
    .await;
    let starts = clock.now();
    let ends = starts + chrono::Duration::seconds(300);
    let (start_ms, end_ms) = (starts.timestamp_millis(), ends.timestamp_millis());
    let response = app
        .request(
            reqwest::Method::POST,
            ServiceKind::HealthProxy,
            "/maintenance",
        )
        .bearer_auth(OPERATE)
        .json(&serde_json::json!({
            "target": "api",
            "starts_at": starts.to_rfc3339(),
            "ends_at": ends.to_rfc3339(),
            "reason": "upgrade"
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 201);

    // A person heals inside the window: the command runs and is verified (the target stays down: 502).
    let heal = app
        .request(reqwest::Method::POST, ServiceKind::HealthProxy, "/heal/api")
        .bearer_auth(OPERATE)
        .send();
    let heal = tokio::spawn(async move {
        let response = heal.await.unwrap();
        let status = response.status().as_u16();
        (status, response.json::<Value>().await.unwrap())
    });
    for _ in 0..30 {
        if heal.is_finished() {
            break;
        }
        pace.advance_s(1).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, healed) = heal.await.unwrap();
    assert_eq!(status, 502, "{healed}");
    assert_eq!(
        (healed["trigger"].as_str(), healed["outcome"].as_str()),
        (Some("manual"), Some("failed")),
        "{healed}"
    );
    assert_eq!(lines_in(&marker), 1, "the heal command ran");

    // Still failing inside the window: no repeat; then two successes resolve the alert fired before it.
    pace.advance_s(20).await;
    server.set(Mode::Healthy);
    pace.advance_until("the alert resolved", Duration::from_secs(240), || async {
        down_events("kind = 'resolved'".into()).await == 1
    })
    .await;
    assert!(clock.now() < ends, "resolved inside the window");
    // Down again until past the window's end: nothing fires before the 3rd failure after it.
    server.set(Mode::Failing);
    let left = (ends - clock.now()).num_seconds() as u64;
    pace.advance_s(left).await;
    pace.advance_until(
        "the alert fired again after the window",
        Duration::from_secs(120),
        || async {
            count_rows(
                &app.db_path,
                "alerts",
                "rule = 'api_down' AND state = 'firing'",
            )
            .await
                == 1
        },
    )
    .await;
    app.shutdown().await;
    assert_eq!(
        down_events(format!(
            "at_ms > {start_ms} AND at_ms < {end_ms} AND kind != 'resolved'"
        ))
        .await,
        0,
        "nothing fired or repeated inside the window"
    );
    assert_eq!(
        count_rows(
            &app.db_path,
            "alerts",
            &format!(
                "rule = 'api_down' AND state = 'firing' AND fired_at_ms >= {}",
                end_ms + 2 * MS
            )
        )
        .await,
        1,
        "fired anew at the 3rd failed check after the window"
    );
    assert_eq!(
        count_rows(&app.db_path, "alerts", "rule = 'api_restarted'").await,
        0,
        "a restart inside the window pages nobody"
    );
    assert_eq!(
        heal_rows(&app, "1 = 1").await,
        1,
        "only the manual heal: automatic heals are off here"
    );
    assert_eq!(
        heal_rows(
            &app,
            &format!(
                "trigger = 'manual' AND started_at_ms >= {start_ms} AND started_at_ms < {end_ms}"
            )
        )
        .await,
        1
    );
}

/// hale (this test process) with one target `api` healed by `command` (timeout `timeout_s`), and a manual
/// heal of it posted with the operate token: the status, the answer and how long it took.
async fn manual_heal(url: &str, command: &str, timeout_s: u64) -> (TestApp, u16, Value, Duration) {
    let api = target("api", url)
        .every_second()
        .heal_command(&["sh", "-c", command])
        .interval_s(60)
        .with(|api| {
            if let Some(heal) = api.heal.as_mut() {
                heal.command_timeout_s = timeout_s;
            }
        });
    let config = heal_config()
        .target(api)
        .heal(|heal| heal.enabled = false)
        .heal_verify(15, 100)
        .token(Role::Operate, "HEAL_TEST_OPERATE", OPERATE)
        .build();
    let app = spawn_app_with(config).await;
    let started = std::time::Instant::now();
    let response = app
        .request(reqwest::Method::POST, ServiceKind::HealthProxy, "/heal/api")
        .bearer_auth(OPERATE)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body = response.json::<Value>().await.unwrap_or(Value::Null);
    (app, status, body, started.elapsed())
}

fn read_pid(file: &std::path::Path) -> u32 {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("a pid in {}", file.display()))
}

/// `sh -c "server &"`: the command exits 0 at once while the server it started keeps the command's stderr
/// open. The heal is done when the command exits (not when its output ends), and the server, the healed
/// service, is in a session and process group of its own and outlives hale.
#[tokio::test]
async fn a_heal_command_that_starts_a_daemon_succeeds_when_it_exits_and_the_daemon_outlives_hale_outside_its_group(
) {
    let port = dead_port();
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("server.pid");
    // The server's output is not redirected: it holds the command's stderr for as long as it runs.
    let command = format!(
        "python3 -m http.server {port} --bind 127.0.0.1 & echo $! > {}; exit 0",
        pid_file.display()
    );
    let (mut app, status, healed, took) =
        manual_heal(&format!("http://127.0.0.1:{port}/"), &command, 5).await;
    let server = read_pid(&pid_file);
    let _server = KillOnDrop(server as i32);
    assert_eq!(status, 200, "{healed}");
    assert_eq!(healed["outcome"], "healed", "{healed}");
    assert!(
        took < Duration::from_secs(5),
        "the heal waited {took:?}, up to the command's timeout"
    );
    let stat = hale::process::stat(server).expect("the server runs");
    // SAFETY: getpgrp and getsid(0) only read this process's ids.
    #[allow(unsafe_code)]
    let (own_group, own_session) = unsafe { (libc::getpgrp(), libc::getsid(0)) };
    assert_ne!(
        stat.pgid as i32, own_group,
        "the daemon is not in hale's process group"
    );
    assert_ne!(stat.sid as i32, own_session, "nor in hale's session");

    app.shutdown().await;
    assert!(
        common::process::process_alive(server),
        "the healed service outlives hale"
    );
    assert_eq!(
        heal_rows(&app, "outcome = 'healed' AND action = 'command'").await,
        1
    );
}

/// A command still running at its timeout is killed with its whole process group: the grandchild it
/// started goes too. The command ran from the minimal environment: the operate token's variable is not in
/// it.
#[tokio::test]
async fn a_heal_command_past_its_timeout_is_killed_with_its_whole_process_group() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("sleeper.pid");
    let env_file = dir.path().join("env.txt");
    let command = format!(
        "env > {}; sleep 300 >/dev/null 2>&1 & echo $! > {}; wait",
        env_file.display(),
        pid_file.display()
    );
    let (mut app, status, failed, _) =
        manual_heal(&format!("http://127.0.0.1:{}/", dead_port()), &command, 1).await;
    let sleeper = read_pid(&pid_file);
    let _sleeper = KillOnDrop(sleeper as i32);
    assert_eq!(failed["outcome"], "failed", "{status}: {failed}");
    let error = failed["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("did not finish within") && error.contains("killed with its process group"),
        "{error}"
    );
    common::eventually("the command's grandchild killed", || async {
        (!common::process::process_alive(sleeper)).then_some(())
    })
    .await;
    app.shutdown().await;
    let env = std::fs::read_to_string(&env_file).expect("the command wrote its environment");
    assert!(env.lines().any(|l| l.starts_with("PATH=")), "{env}");
    assert!(
        !env.contains("HEAL_TEST_OPERATE") && !env.contains(OPERATE),
        "the operate token reached the heal command: {env}"
    );
}
