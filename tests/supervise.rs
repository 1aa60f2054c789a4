//! Supervised children, with real processes: a crashing child is restarted after its backoff (which runs on
//! hale's clock), a heal restarts it at once, a config-error exit is not restarted, shutdown stops whole
//! process groups, a hale killed with SIGKILL takes its children with it, and the children a killed hale
//! left behind are killed at the next start.

// A test crate: an unwrap is an assertion, and tests/common sets a child's rlimit in `pre_exec`.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use hale::clock::{Clock, ManualClock, SystemClock};

use hale::events::{ChildStarted, Event, Subscription};
use hale::kind::ServiceKind;
use hale::records::ChildStartCause;
use hale::store::Store;
use hale::supervise::{ChildView, SuperviseError, Supervisor};
use serde_json::json;

use common::app::{spawn_app_with, spawn_app_with_clock, TestApp};
use common::clock::Pacer;
use common::config::{supervised, test_config, test_config_json, TestConfig};
use common::db::count_rows;
use common::process::{process_alive, run_hale, HaleProcess};
use common::prom::sample_value;
use common::{eventually, DEADLINE};

fn supervisor(app: &TestApp) -> &Arc<Supervisor> {
    app.app().supervisor().expect("the Health Proxy runs")
}

fn view(app: &TestApp, target: &str) -> ChildView {
    supervisor(app)
        .child(target)
        .unwrap_or_else(|| panic!("{target} is not supervised"))
}

fn t0() -> DateTime<Utc> {
    // A valid timestamp, so this always returns Some.
    DateTime::from_timestamp(1_700_000_000, 0).unwrap()
}

/// `restarts_total{target, cause}` on the Health Proxy's `/metrics` (0 when the series does not exist yet).
async fn restarts(app: &TestApp, target: &str, cause: &str) -> f64 {
    let text = app.metrics(ServiceKind::HealthProxy).await;
    sample_value(
        &text,
        "restarts_total",
        &[("target", target), ("cause", cause)],
    )
    .unwrap_or(0.0)
}

/// The next child event (checks and breaker moves skipped).
async fn next_child_event(events: &mut Subscription) -> Arc<Event> {
    loop {
        let event = tokio::time::timeout(DEADLINE, events.recv())
            .await
            .expect("a child event in time")
            .expect("the event bus is open");
        if matches!(&*event, Event::ChildStarted(_) | Event::ChildExited(_)) {
            return event;
        }
    }
}

/// The next start of a child (other events skipped).
async fn next_start(events: &mut Subscription) -> ChildStarted {
    loop {
        if let Event::ChildStarted(started) = &*next_child_event(events).await {
            return started.clone();
        }
    }
}

fn distinct_pids(file: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    let mut pids: Vec<String> = text.lines().map(str::to_owned).collect();
    pids.dedup();
    pids
}

#[tokio::test]
async fn a_child_that_crashes_is_restarted_with_a_new_pid_and_each_start_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let pids = dir.path().join("pids");
    let mut app = spawn_app_with(
        TestConfig::new()
            .targets([supervised(
                "crashy",
                json!({
                    "argv": ["sh", "-c", "echo $$ >> pids; echo started; sleep 0.2; exit 3"],
                    "cwd": dir.path(),
                    "backoff_initial_ms": 20,
                    "backoff_max_s": 1,
                }),
            )])
            .build(),
    )
    .await;
    let mut events = app.app().events().subscribe("test");
    assert!(supervisor(&app).supervises("crashy"));
    assert!(!supervisor(&app).supervises("other"));

    // An exit by itself is published, then the restart.
    let exited = loop {
        if let Event::ChildExited(exited) = &*next_child_event(&mut events).await {
            break exited.clone();
        }
    };
    assert_eq!(
        (exited.code, exited.signal, exited.stopped),
        (Some(3), None, false)
    );
    match &*next_child_event(&mut events).await {
        Event::ChildStarted(started) => {
            assert_eq!(started.cause, ChildStartCause::Exited);
            assert_ne!(started.pid, exited.pid, "a new process");
        }
        other => panic!("expected the restart, got {other:?}"),
    }

    let seen = eventually("three different pids", || async {
        let seen = distinct_pids(&pids);
        (seen.len() >= 3).then_some(seen)
    })
    .await;
    assert_eq!(
        seen.len(),
        seen.iter().collect::<std::collections::BTreeSet<_>>().len()
    );
    let counted = eventually("restarts_total{cause=exited} >= 2", || async {
        let n = restarts(&app, "crashy", "exited").await;
        (n >= 2.0).then_some(n)
    })
    .await;
    assert_eq!(restarts(&app, "crashy", "heal").await, 0.0);
    assert!(view(&app, "crashy").restarts >= counted as u64);
    assert_eq!(view(&app, "crashy").last_exit_code.unwrap_or(3), 3);

    app.shutdown().await;
    let db = &app.db_path;
    assert_eq!(count_rows(db, "child_runs", "cause = 'start'").await, 1);
    assert!(count_rows(db, "child_runs", "cause = 'exited' AND target = 'crashy'").await >= 2);
    assert_eq!(
        count_rows(db, "child_runs", "exited_at_ms IS NULL").await,
        0,
        "every row is closed at shutdown"
    );
    assert!(count_rows(db, "child_runs", "exit_code = 3 AND exit_signal IS NULL").await >= 2);
    assert!(
        count_rows(db, "child_runs", "proc_start_ticks IS NOT NULL").await >= 3,
        "the start time of each process is recorded"
    );
}

#[tokio::test]
async fn the_backoff_waits_on_hales_clock_and_doubles_per_quick_exit() {
    let clock = ManualClock::new(t0());
    let app = spawn_app_with_clock(
        TestConfig::new().targets([supervised(
            "flaky",
            json!({"argv": ["sh", "-c", "exit 4"], "backoff_initial_ms": 5000, "backoff_max_s": 60}),
        )]).build(),
        Arc::new(clock.clone()),
    )
    .await;
    let first = eventually("the first exit, waiting 5 s", || async {
        let child = view(&app, "flaky");
        child.next_restart_at.map(|at| (at, child))
    })
    .await;
    assert_eq!(first.0 - clock.now(), chrono::TimeDelta::seconds(5));
    assert_eq!(first.1.last_exit_code, Some(4));
    assert_eq!(supervisor(&app).last_exit_code("flaky"), Some(4));
    assert!(!first.1.running);

    // The supervisor set next_restart_at and started its sleep on the clock in one step (the test and
    // hale share this runtime's one thread), so the clock may move at once. A supervisor woken by a step
    // clears next_restart_at before anything else (the restart itself waits on real I/O): between steps
    // the pacer lets it run, so a wake-up before the backoff ends shows here, without sleeping.
    let mut events = app.events("test");
    let mut pace = Pacer::new(&clock).step(Duration::from_millis(100));
    pace.advance(Duration::from_millis(4_900)).await;
    let waiting = view(&app, "flaky");
    assert_eq!(
        (waiting.next_restart_at, waiting.restarts),
        (Some(first.0), 0),
        "not before the backoff is over"
    );

    pace.advance(Duration::from_millis(100)).await;
    let restarted = next_start(&mut events).await;
    assert_eq!(restarted.cause, ChildStartCause::Exited);
    assert!(
        restarted.at >= first.0,
        "restarted at {} on hale's clock, before the backoff ended at {}",
        restarted.at,
        first.0
    );
    let second = eventually("the restart and its exit, waiting 10 s", || async {
        let child = view(&app, "flaky");
        (child.restarts == 1)
            .then_some(child.next_restart_at)
            .flatten()
    })
    .await;
    assert_eq!(
        second - clock.now(),
        chrono::TimeDelta::seconds(10),
        "doubled"
    );
}

#[tokio::test]
async fn a_heal_restart_stops_the_child_and_starts_a_new_one_at_once() {
    let mut app = spawn_app_with(
        TestConfig::new()
            .targets([supervised(
                "api",
                json!({"argv": ["sleep", "300"], "stop_timeout_s": 5}),
            )])
            .build(),
    )
    .await;
    let first = eventually("the child running", || async { view(&app, "api").pid }).await;
    let mut events = app.app().events().subscribe("test");

    supervisor(&app).restart("api").await.expect("restart");
    let second = view(&app, "api").pid.expect("running again");
    assert_ne!(first, second);
    assert!(!process_alive(first), "the old child is gone");
    assert!(process_alive(second));
    match &*next_child_event(&mut events).await {
        Event::ChildExited(exited) => {
            assert_eq!(exited.pid, first);
            assert!(exited.stopped);
            assert_eq!(exited.signal, Some(libc::SIGTERM));
        }
        other => panic!("expected the stop, got {other:?}"),
    }
    match &*next_child_event(&mut events).await {
        Event::ChildStarted(started) => assert_eq!(started.cause, ChildStartCause::Heal),
        other => panic!("expected the start, got {other:?}"),
    }
    assert_eq!(restarts(&app, "api", "heal").await, 1.0);
    assert_eq!(restarts(&app, "api", "exited").await, 0.0);
    assert_eq!(view(&app, "api").restarts, 1);
    assert_eq!(
        supervisor(&app).last_exit_code("api"),
        None,
        "stopped, not exited"
    );
    let text = app.metrics(ServiceKind::HealthProxy).await;
    assert_eq!(
        sample_value(&text, "child_running", &[("target", "api")]),
        Some(1.0)
    );

    match supervisor(&app).restart("nope").await {
        Err(SuperviseError::NoChild(target)) => assert_eq!(target, "nope"),
        other => panic!("expected NoChild, got {other:?}"),
    }

    app.shutdown().await;
    assert!(!process_alive(second));
    assert_eq!(
        count_rows(&app.db_path, "child_runs", "cause = 'heal'").await,
        1
    );
    assert_eq!(
        count_rows(
            &app.db_path,
            "child_runs",
            "exit_signal = 15 AND exited_at_ms IS NOT NULL"
        )
        .await,
        2
    );
}

#[tokio::test]
async fn a_config_error_exit_is_not_restarted_but_a_heal_still_restarts_it() {
    let clock = ManualClock::new(t0());
    let mut app = spawn_app_with_clock(
        TestConfig::new()
            .targets([supervised(
                "misconfigured",
                json!({"argv": ["sh", "-c", "exit 78"], "backoff_initial_ms": 10}),
            )])
            .build(),
        Arc::new(clock.clone()),
    )
    .await;
    eventually("the config-error exit", || async {
        (supervisor(&app).last_exit_code("misconfigured") == Some(78)).then_some(())
    })
    .await;
    // Any backoff would be over many times: the child stays down (the first start after this is the heal's).
    let mut events = app.events("test");
    Pacer::new(&clock)
        .step(Duration::from_secs(60))
        .advance(Duration::from_secs(3_600))
        .await;
    let child = view(&app, "misconfigured");
    assert!(child.config_error);
    assert!(!child.running);
    assert_eq!(child.next_restart_at, None);
    assert_eq!(child.restarts, 0);
    assert_eq!(restarts(&app, "misconfigured", "exited").await, 0.0);
    assert_eq!(supervisor(&app).last_exit_code("misconfigured"), Some(78));

    supervisor(&app)
        .restart("misconfigured")
        .await
        .expect("a heal restarts it");
    assert_eq!(
        next_start(&mut events).await.cause,
        ChildStartCause::Heal,
        "the first start after the config-error exit is the heal's"
    );
    eventually("the healed child's exit", || async {
        let child = view(&app, "misconfigured");
        (child.restarts == 1 && !child.running && child.config_error).then_some(())
    })
    .await;
    assert_eq!(supervisor(&app).last_exit_code("misconfigured"), Some(78));
    assert_eq!(restarts(&app, "misconfigured", "heal").await, 1.0);

    app.shutdown().await;
    assert_eq!(
        count_rows(&app.db_path, "child_runs", "exit_code = 78").await,
        2
    );
}

#[tokio::test]
async fn a_child_that_cannot_be_started_is_retried_after_its_backoff() {
    let clock = ManualClock::new(t0());
    let app = spawn_app_with_clock(
        TestConfig::new().targets([
            supervised(
                "missing-program",
                json!({"argv": ["/nonexistent/hale-test-program"], "backoff_initial_ms": 1000}),
            ),
            supervised(
                "missing-cwd",
                json!({"argv": ["sleep", "300"], "cwd": "/nonexistent/hale-test-dir", "backoff_initial_ms": 1000}),
            ),
        ]).build(),
        Arc::new(clock.clone()),
    )
    .await;
    for target in ["missing-program", "missing-cwd"] {
        let child = eventually("the failed start", || async {
            let child = view(&app, target);
            child.next_restart_at.is_some().then_some(child)
        })
        .await;
        let error = child.spawn_error.expect("the reason is kept");
        assert!(
            error.contains("No such file or directory"),
            "{target}: {error}"
        );
        assert_eq!(
            child.next_restart_at.unwrap() - clock.now(),
            chrono::TimeDelta::seconds(1)
        );
    }
    let error = view(&app, "missing-program").spawn_error.unwrap();
    assert!(
        error.starts_with("/nonexistent/hale-test-program: "),
        "{error}"
    );

    clock.advance(Duration::from_secs(1));
    eventually("the retry, failing again and waiting 2 s", || async {
        let next = view(&app, "missing-program").next_restart_at?;
        (next - clock.now() == chrono::TimeDelta::seconds(2)).then_some(())
    })
    .await;
    match supervisor(&app).restart("missing-cwd").await {
        Err(SuperviseError::Spawn { target, reason }) => {
            assert_eq!(target, "missing-cwd");
            assert!(reason.contains("No such file or directory"), "{reason}");
        }
        other => panic!("expected a spawn error, got {other:?}"),
    }
}

#[tokio::test]
async fn shutdown_stops_every_process_group_even_one_that_ignores_the_stop_signal() {
    let dir = tempfile::tempdir().unwrap();
    let mut app = spawn_app_with(TestConfig::new().targets([
        supervised(
            "stubborn",
            json!({
                "argv": ["sh", "-c", "trap '' TERM; sleep 300 & echo $! > grandchild; wait"],
                "cwd": dir.path(),
                "stop_timeout_s": 1,
            }),
        ),
        supervised("plain", json!({"argv": ["sleep", "300"]})),
    ]).build())
    .await;
    let grandchild_file = dir.path().join("grandchild");
    let grandchild: u32 = eventually("the grandchild's pid", || async {
        std::fs::read_to_string(&grandchild_file)
            .ok()?
            .trim()
            .parse()
            .ok()
    })
    .await;
    // The child can write the file before the supervisor has recorded its pid.
    let leader = eventually("the stubborn child running", || async {
        view(&app, "stubborn").pid
    })
    .await;
    let plain = eventually("the plain child running", || async {
        view(&app, "plain").pid
    })
    .await;
    assert!(process_alive(grandchild) && process_alive(leader) && process_alive(plain));

    app.shutdown().await;
    for (what, pid) in [
        ("leader", leader),
        ("grandchild", grandchild),
        ("plain", plain),
    ] {
        eventually(&format!("the {what} gone"), || async {
            (!process_alive(pid)).then_some(())
        })
        .await;
    }
    let db = &app.db_path;
    assert_eq!(
        count_rows(db, "child_runs", "exited_at_ms IS NULL").await,
        0
    );
    assert_eq!(
        count_rows(db, "child_runs", "target = 'stubborn' AND exit_signal = 9").await,
        1,
        "killed after the stop timeout"
    );
    assert_eq!(
        count_rows(db, "child_runs", "target = 'plain' AND exit_signal = 15").await,
        1
    );
}

#[tokio::test]
async fn a_child_left_behind_by_a_killed_hale_is_killed_at_the_next_start() {
    let mut app = spawn_app_with(test_config()).await;
    app.shutdown().await;

    // Two processes in their own groups, as hale's children are: one recorded with its true start time
    // (a leftover), one with another (its pid was reused by an unrelated process).
    let spawn_sleep = || {
        use std::os::unix::process::CommandExt;
        std::process::Command::new("sleep")
            .arg("300")
            .process_group(0)
            .spawn()
            .expect("start sleep")
    };
    let mut leftover = spawn_sleep();
    let mut stranger = spawn_sleep();
    let ticks = |pid: u32| {
        hale::supervise::proc_start_ticks(pid).expect("the start time of a running process")
    };
    let store = Store::open(&app.db_path).await.expect("open the database");
    store
        .child_started(
            "old-api",
            leftover.id(),
            Some(ticks(leftover.id())),
            t0(),
            ChildStartCause::Start,
        )
        .await
        .unwrap();
    store
        .child_started(
            "old-db",
            stranger.id(),
            Some(ticks(stranger.id()) + 1),
            t0(),
            ChildStartCause::Exited,
        )
        .await
        .unwrap();
    store.close().await;

    app.restart(test_config(), Arc::new(SystemClock)).await;
    let deadline = std::time::Instant::now() + DEADLINE;
    let status = loop {
        if let Some(status) = leftover.try_wait().unwrap() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the leftover still runs after {DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGKILL)
    );
    eventually("both rows closed", || async {
        (count_rows(&app.db_path, "child_runs", "exited_at_ms IS NULL").await == 0).then_some(())
    })
    .await;
    assert!(
        stranger.try_wait().unwrap().is_none(),
        "a process whose start time differs is not hale's: left alone"
    );
    stranger.kill().unwrap();
    stranger.wait().unwrap();

    app.shutdown().await;
    assert_eq!(
        count_rows(
            &app.db_path,
            "child_runs",
            "target = 'old-api' AND exit_signal = 9"
        )
        .await,
        1
    );
    assert_eq!(
        count_rows(
            &app.db_path,
            "child_runs",
            "target = 'old-db' AND exit_signal IS NULL"
        )
        .await,
        1
    );
}

#[tokio::test]
async fn a_hale_killed_with_sigkill_takes_its_child_with_it_and_the_childs_output_is_logged() {
    let mut config = test_config_json();
    config["services"] = json!([{
        "name": "worker",
        "url": "tcp://127.0.0.1:1",
        "interval_s": 3600,
        "timeout_ms": 200,
        "run": {
            "argv": ["sh", "-c", "echo hello from the child; echo trouble >&2; exec sleep 300"],
            "env": {"HALE_TEST_SECRET": "do-not-log-me"}
        }
    }]);
    let mut hale = HaleProcess::serve(&config, &[]).await;
    hale.wait_listening(&[ServiceKind::HealthProxy]).await;
    // Each JSON log line names the child in its one `target` key (the formatter's module path is left out).
    let find = |hale: &HaleProcess, message: &str| {
        hale.json_logs()
            .into_iter()
            .find(|line| line["message"] == message && line["target"] == "worker")
    };
    let started = eventually("the child started", || async {
        find(&hale, "child started")
    })
    .await;
    let pid = u32::try_from(started["pid"].as_u64().expect("a pid")).unwrap();
    let stdout = eventually("the child's stdout logged", || async {
        find(&hale, "hello from the child")
    })
    .await;
    assert_eq!(stdout["stream"], "stdout");
    assert_eq!(stdout["level"], "INFO");
    let stderr = eventually("the child's stderr logged", || async {
        find(&hale, "trouble")
    })
    .await;
    assert_eq!(stderr["stream"], "stderr");
    assert_eq!(stderr["level"], "WARN");
    assert!(process_alive(pid));

    hale.signal("KILL");
    hale.wait_exit(DEADLINE).await;
    eventually("the child gone after hale was killed", || async {
        (!process_alive(pid)).then_some(())
    })
    .await;
    let all = hale.stdout_lines().join("\n") + &hale.stderr_lines().join("\n");
    assert!(
        !all.contains("do-not-log-me"),
        "an env value reached the log"
    );

    // hale started again on the same database: the child it starts is a restart of `worker` (it died with
    // the killed hale), and the start is a restart of hale after an unclean end. A clean stop and start is not.
    // `restarts_total` says the same, from 0.
    let db = hale.db_path.clone();
    for expected_hale_restarts in [1.0, 0.0] {
        let mut again = HaleProcess::serve_db(&config, Some(&db), &[], &[]).await;
        let listening = again.wait_listening(&[ServiceKind::HealthProxy]).await;
        eventually("the child started again", || async {
            find(&again, "child started")
        })
        .await;
        let metrics = common::app::client()
            .get(format!(
                "http://{}/metrics",
                listening[&ServiceKind::HealthProxy]
            ))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let restarts = |cause: &str| {
            common::prom::sample_value(
                &metrics,
                "restarts_total",
                &[("target", "worker"), ("cause", cause)],
            )
        };
        assert_eq!(restarts("hale_restart"), Some(expected_hale_restarts));
        assert_eq!(restarts("exited"), Some(0.0));
        assert_eq!(restarts("heal"), Some(0.0));
        again.signal("TERM");
        again.wait_exit(DEADLINE).await;
    }
    assert_eq!(count_rows(&db, "hale_runs", "1").await, 3);
    assert_eq!(count_rows(&db, "child_runs", "target = 'worker'").await, 3);

    let config_file = hale.dir.path().join("config.json");
    let out = run_hale(
        hale.dir.path(),
        &[
            "slo",
            "report",
            "--db",
            db.to_str().unwrap(),
            "--config",
            config_file.to_str().unwrap(),
            "--format",
            "json",
            "--service",
            "worker",
        ],
    )
    .await;
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(report["hale"]["starts"], 3, "{report}");
    assert_eq!(report["hale"]["restarts_after_unclean_end"], 1, "{report}");
    let worker = &report["targets"][0];
    assert_eq!(worker["slo"]["restarts"]["count"], 1, "{worker}");
    let restarts = worker["restarts"].as_array().unwrap();
    assert_eq!(restarts.len(), 1, "{worker}");
    assert_eq!(restarts[0]["cause"], "hale_restart");
}

/// The JSON log line of `hale` that says `message` about `target`, when there is one.
fn log_line(hale: &HaleProcess, message: &str, target: &str) -> Option<serde_json::Value> {
    hale.json_logs()
        .into_iter()
        .find(|line| line["message"] == message && line["target"] == target)
}

/// The pid logged with the latest `child started` of `target`, once it is logged after `after` lines.
async fn child_started(hale: &HaleProcess, target: &str) -> u32 {
    let line = eventually("the child started", || async {
        log_line(hale, "child started", target)
    })
    .await;
    u32::try_from(line["pid"].as_u64().expect("a pid")).expect("a pid fits")
}

/// The usual wrapper-script shape: `sh -c "python3 -m http.server PORT; echo exited"`. hale is killed with
/// SIGKILL: the leader dies with it (PDEATHSIG) and is reaped, but the server, its child, is orphaned and
/// keeps the port. The next start of hale kills it before it starts the new child, which then serves: no
/// "Address already in use" crash loop, and the orphan is gone.
#[tokio::test]
async fn a_grandchild_that_survives_a_killed_hale_is_killed_at_the_next_start() {
    // The orphaned leader is reparented to this test process, which reaps it below: the case where the
    // leader's pid is gone, not a zombie.
    hale::process::become_subreaper().expect("become a subreaper");
    let port = common::dead_port();
    let mut config = test_config_json();
    config["services"] = json!([{
        "name": "web",
        "url": format!("http://127.0.0.1:{port}/"),
        "interval_s": 3600,
        "timeout_ms": 500,
        "run": {
            "argv": ["sh", "-c", format!("python3 -m http.server {port} --bind 127.0.0.1; echo exited")],
            "backoff_initial_ms": 200
        }
    }]);
    let mut first = HaleProcess::serve(&config, &[]).await;
    first.wait_listening(&[ServiceKind::HealthProxy]).await;
    let leader = child_started(&first, "web").await;
    let serves = || async {
        common::app::client()
            .get(format!("http://127.0.0.1:{port}/"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
    };
    let server_of = |leader: u32| {
        hale::process::all()
            .into_iter()
            .find(|p| p.ppid == leader && p.state != 'Z')
            .map(|p| p.pid)
    };
    let orphan = eventually("the server running and answering", || async {
        let pid = server_of(leader)?;
        serves().await.then_some(pid)
    })
    .await;

    first.signal("KILL");
    first.wait_exit(DEADLINE).await;
    // The leader dies of its parent-death signal; reparented here, it is reaped here.
    eventually("the leader reaped", || async {
        if let Ok(pid) = libc::pid_t::try_from(leader) {
            let mut status = 0;
            // SAFETY: waitpid writes into the local; WNOHANG never blocks.
            #[allow(unsafe_code)]
            unsafe {
                libc::waitpid(pid, &mut status, libc::WNOHANG)
            };
        }
        (!Path::new(&format!("/proc/{leader}")).exists()).then_some(())
    })
    .await;
    // (It may no longer answer: its log writes now fail on the pipe hale read.)
    let port_held = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_ok();
    assert!(
        process_alive(orphan) && port_held,
        "the orphaned server outlived the killed hale and still holds the port"
    );

    let mut again = HaleProcess::serve_db(&config, Some(&first.db_path), &[], &[]).await;
    again.wait_listening(&[ServiceKind::HealthProxy]).await;
    let new_leader = child_started(&again, "web").await;
    assert!(
        !process_alive(orphan),
        "the orphan is gone before the new child starts"
    );
    let server = eventually("the new child's server answering", || async {
        let pid = server_of(new_leader)?;
        serves().await.then_some(pid)
    })
    .await;
    assert_ne!(server, orphan);
    assert!(
        again.json_logs().iter().any(|l| l["message"]
            == "killed a process started for a supervised child of this database that outlived it"
            && l["pid"] == orphan),
        "the kill is logged"
    );
    assert!(
        !again
            .stdout_lines()
            .join("\n")
            .contains("Address already in use"),
        "no crash loop on the port"
    );
    again.signal("TERM");
    again.wait_exit(DEADLINE).await;
    assert!(!process_alive(server), "stopped with hale");
    let db = &again.db_path;
    assert_eq!(
        count_rows(db, "child_runs", "target = 'web'").await,
        2,
        "one start per run of hale, no restarts"
    );
    assert_eq!(
        count_rows(db, "child_runs", "exited_at_ms IS NULL").await,
        0
    );
}

/// A child starts from a minimal environment: hale's variables do not reach it, the role token's least of
/// all, unless listed in `inherit_env`; `run.env` is set. Listing the token's variable is refused at start.
#[tokio::test]
async fn a_child_sees_only_the_minimal_environment_and_never_a_token() {
    let token = "Kq3vX9pL2mN8rT5wY7zB4cD6fG1hJ0sA";
    let mut config = test_config_json();
    config["auth"] = json!({"tokens": {"operate": {"env": "HALE_TEST_OPERATE_TOKEN"}}});
    config["services"] = json!([{
        "name": "printer",
        "url": "tcp://127.0.0.1:1",
        "interval_s": 3600,
        "timeout_ms": 200,
        "run": {
            "argv": ["sh", "-c", "env | sort; exec sleep 300"],
            "env": {"SET_BY_CONFIG": "yes"}
        }
    }]);
    let hale_env = [
        ("HALE_TEST_OPERATE_TOKEN", token),
        ("HALE_TEST_UNLISTED", "hale-only"),
        ("LANG", "C.UTF-8"),
    ];
    let mut hale = HaleProcess::serve_with_env(&config, &[], &hale_env).await;
    hale.wait_listening(&[ServiceKind::HealthProxy]).await;
    child_started(&hale, "printer").await;
    let seen = |hale: &HaleProcess| -> Vec<String> {
        hale.json_logs()
            .into_iter()
            .filter(|l| l["target"] == "printer" && l["stream"] == "stdout")
            .filter_map(|l| l["message"].as_str().map(str::to_owned))
            .collect()
    };
    let env = eventually("the child's environment printed", || async {
        let env = seen(&hale);
        env.iter()
            .any(|l| l.starts_with("SET_BY_CONFIG="))
            .then_some(env)
    })
    .await;
    let names: Vec<&str> = env
        .iter()
        .filter_map(|l| l.split_once('=').map(|(k, _)| k))
        .collect();
    assert!(
        !env.iter().any(|l| l.contains(token)),
        "the token reached the child: {env:?}"
    );
    assert!(!names.contains(&"HALE_TEST_OPERATE_TOKEN"), "{names:?}");
    assert!(!names.contains(&"HALE_TEST_UNLISTED"), "{names:?}");
    assert!(env.contains(&"SET_BY_CONFIG=yes".to_owned()), "{env:?}");
    assert!(env.contains(&"LANG=C.UTF-8".to_owned()), "{env:?}");
    assert!(names.contains(&"PATH"), "{names:?}");
    hale.signal("TERM");
    hale.wait_exit(DEADLINE).await;

    // Listing the token's variable in inherit_env is refused, naming where.
    config["services"][0]["run"]["inherit_env"] =
        json!(["HALE_TEST_UNLISTED", "HALE_TEST_OPERATE_TOKEN"]);
    let mut refused = HaleProcess::serve_with_env(&config, &[], &hale_env).await;
    let status = refused.wait_exit(DEADLINE).await;
    let stderr = refused.stderr_lines().join("\n");
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("$.services[0].run.inherit_env[1]")
            && stderr.contains("HALE_TEST_OPERATE_TOKEN holds the operate token"),
        "{stderr}"
    );
    assert!(!stderr.contains(token));
}

/// A child that floods its stdout does not flood hale's log: past its budget (100 lines/s after a burst
/// of 200, the defaults) lines are counted, and each `suppressed N lines` line says how many.
#[tokio::test]
async fn a_child_that_floods_its_output_is_held_to_its_log_budget_and_the_rest_is_counted() {
    const LINES: u64 = 200_000;
    let mut config = test_config_json();
    config["services"] = json!([{
        "name": "flood",
        "url": "tcp://127.0.0.1:1",
        "interval_s": 3600,
        "timeout_ms": 200,
        "run": {"argv": ["sh", "-c", format!("seq 1 {LINES}; exec sleep 300")]}
    }]);
    let started = std::time::Instant::now();
    let mut hale = HaleProcess::serve(&config, &[]).await;
    hale.wait_listening(&[ServiceKind::HealthProxy]).await;
    let (logged, summaries) = eventually("every line logged or counted", || async {
        let logs = hale.json_logs();
        let logged = logs
            .iter()
            .filter(|l| l["target"] == "flood" && l["stream"] == "stdout")
            .count() as u64;
        let summaries: Vec<serde_json::Value> = logs
            .into_iter()
            .filter(|l| l["target"] == "flood" && l["suppressed"].is_u64())
            .collect();
        let counted: u64 = summaries
            .iter()
            .map(|l| l["suppressed"].as_u64().unwrap_or(0))
            .sum();
        (logged + counted == LINES).then_some((logged, summaries))
    })
    .await;
    let elapsed = started.elapsed().as_secs_f64();
    let budget = 200.0 + 100.0 * elapsed;
    assert!(
        (logged as f64) <= budget,
        "{logged} lines logged in {elapsed:.1} s, over the budget of {budget:.0}"
    );
    assert!(!summaries.is_empty());
    assert!(
        summaries.len() as f64 <= elapsed + 2.0,
        "at most one summary a second: {} in {elapsed:.1} s",
        summaries.len()
    );
    for summary in &summaries {
        let n = summary["suppressed"].as_u64().unwrap();
        let message = summary["message"].as_str().unwrap_or_default();
        assert!(
            message.starts_with(&format!("suppressed {n} lines")),
            "{message}"
        );
        assert_eq!(summary["level"], "WARN");
    }
    let total_lines = hale.stdout_lines().len() as f64;
    assert!(
        total_lines < budget + 200.0,
        "hale wrote {total_lines} log lines in all"
    );
    hale.signal("TERM");
    hale.wait_exit(DEADLINE).await;
}
