//! The Boss API's workflows against real parts: a real HTTP service the steps call and the monitor checks,
//! real child processes for `command` steps, the real heal engine, and the database file as the source of
//! truth for runs, attempts and approvals. Restarts of the real binary are in `workflows_restart.rs`.

// A test crate: an unwrap is an assertion.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix_web::{web, App, HttpResponse, HttpServer};
use chrono::{TimeZone, Utc};
use hale::auth::Role;
use hale::clock::ManualClock;
use hale::config::workflows::WorkflowsConfig;
use hale::config::Config;
use hale::kind::ServiceKind::BossApi;
use hale::workflows::Environment;
use serde_json::{json, Value};

use common::app::{spawn_app_with, spawn_app_with_clock, TestApp};
use common::config::{target, TestConfig};
use common::db::{count_rows, select_texts};
use common::eventually;
use common::process::process_alive;

/// A service the steps act on: `/health` is up, `POST /drain` counts drains, `/flaky` answers 503 to its
/// first `flaky_failures` requests and 200 after.
struct Service {
    addr: SocketAddr,
    drains: Arc<AtomicUsize>,
    flaky: Arc<AtomicUsize>,
    _server: actix_web::dev::ServerHandle,
}

impl Service {
    async fn start(flaky_failures: usize) -> Self {
        let drains = Arc::new(AtomicUsize::new(0));
        let flaky = Arc::new(AtomicUsize::new(0));
        let (d, f) = (drains.clone(), flaky.clone());
        let server = HttpServer::new(move || {
            let (d, f) = (d.clone(), f.clone());
            App::new()
                .route(
                    "/health",
                    web::get().to(|| async { HttpResponse::Ok().json(json!({"status": "ok"})) }),
                )
                .route(
                    "/drain",
                    web::post().to(move |body: web::Json<Value>| {
                        let d = d.clone();
                        async move {
                            let n = d.fetch_add(1, Ordering::SeqCst) + 1;
                            HttpResponse::Ok()
                                .json(json!({"drained": n, "echo": body.into_inner()}))
                        }
                    }),
                )
                .route(
                    "/flaky",
                    web::get().to(move || {
                        let f = f.clone();
                        async move {
                            let n = f.fetch_add(1, Ordering::SeqCst);
                            if n < flaky_failures {
                                HttpResponse::ServiceUnavailable().body("not yet")
                            } else {
                                HttpResponse::Ok().json(json!({"ok": true, "after": n}))
                            }
                        }
                    }),
                )
        })
        .workers(1)
        .disable_signals()
        .bind("127.0.0.1:0")
        .unwrap();
        let addr = server.addrs()[0];
        let server = server.run();
        let handle = server.handle();
        tokio::spawn(server);
        Self {
            addr,
            drains,
            flaky,
            _server: handle,
        }
    }

    fn url(&self) -> String {
        format!("http://{}/health", self.addr)
    }
}

const OPS_ENV: &str = "HALE_TEST_WORKFLOWS_OPERATE";
const OPS_TOKEN: &str = "wf-operate-7Hq2xLp9Vm4Rz8Kd";

/// Every change of the Boss API needs the operate role.
fn base() -> TestConfig {
    TestConfig::new().token(Role::Operate, OPS_ENV, OPS_TOKEN)
}

/// A shell script in `dir` (a command step runs `sh FILE`: argv, never `sh -c`).
fn script(dir: &std::path::Path, name: &str, body: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, body).unwrap();
    path.display().to_string()
}

/// `config` with the `workflows` section `section`, read as hale reads its config file.
fn with_workflows(config: TestConfig, section: Value) -> Config {
    let mut config = config.build();
    config.workflows = WorkflowsConfig::from_value(section, &Environment::of(&config))
        .unwrap_or_else(|e| panic!("invalid workflows: {}: {}", e.path, e.reason));
    config
}

async fn start(
    app: &TestApp,
    workflow: &str,
    body: Value,
    key: Option<&str>,
) -> (u16, Value, Option<String>) {
    let mut request = app
        .request(
            reqwest::Method::POST,
            BossApi,
            &format!("/workflow/{workflow}/start"),
        )
        .bearer_auth(OPS_TOKEN)
        .json(&body);
    if let Some(key) = key {
        request = request.header("Idempotency-Key", key);
    }
    let res = request.send().await.unwrap();
    let status = res.status().as_u16();
    let location = res
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_owned());
    let body: Value = res.json().await.unwrap();
    (status, body, location)
}

async fn post(app: &TestApp, path: &str, body: Value) -> (u16, Value) {
    let res = app
        .request(reqwest::Method::POST, BossApi, path)
        .bearer_auth(OPS_TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap())
}

/// The run's detail once its state is one of `states`.
async fn run_in(app: &TestApp, run: i64, states: &[&str]) -> Value {
    eventually(&format!("run {run} in {states:?}"), || async {
        let (_, detail) = app.get_json(BossApi, &format!("/runs/{run}")).await;
        let state = detail["run"]["state"].as_str().unwrap_or("").to_owned();
        states.contains(&state.as_str()).then_some(detail)
    })
    .await
}

fn run_id(body: &Value) -> i64 {
    body["id"]
        .as_i64()
        .unwrap_or_else(|| panic!("no run id in {body}"))
}

#[tokio::test]
async fn a_three_step_runbook_drains_runs_a_command_and_waits_until_healthy_and_its_attempts_are_in_the_database(
) {
    let service = Service::start(0).await;
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("restarted");
    let config = with_workflows(
        base().target(target("api", &service.url()).every_second()),
        json!({"definitions": [{
            "id": "restart-api",
            "inputs": {"target": {"type": "string"}, "ticket": {"type": "string", "required": false}},
            "concurrency": {"limit": 1, "key": "target"},
            "steps": [
                {"id": "drain", "kind": "http", "target": "{{inputs.target}}", "method": "POST", "path": "/drain",
                 "body": {"ticket": "{{inputs.ticket}}"}},
                {"id": "restart", "kind": "command",
                 "argv": ["touch", marker.to_str().unwrap()]},
                {"id": "verify", "kind": "wait_healthy", "target": "{{inputs.target}}", "consecutive": 2, "timeout_s": 30}
            ]
        }]}),
    );
    let app = spawn_app_with(config).await;
    let (status, body, location) = start(
        &app,
        "restart-api",
        json!({"inputs": {"target": "api", "ticket": "T-1"}, "reason": "deploy 4.2"}),
        None,
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let run = run_id(&body);
    assert_eq!(location.as_deref(), Some(format!("/runs/{run}").as_str()));
    let detail = run_in(&app, run, &["succeeded", "failed"]).await;
    assert_eq!(detail["run"]["state"], "succeeded", "{detail:#}");
    assert_eq!(service.drains.load(Ordering::SeqCst), 1);
    assert!(marker.exists(), "the command ran");
    let steps = detail["steps"].as_array().unwrap();
    assert_eq!(steps[0]["attempts"][0]["output"]["status"], 200);
    assert_eq!(
        steps[0]["attempts"][0]["output"]["body"]["echo"]["ticket"],
        "T-1"
    );
    assert_eq!(steps[1]["attempts"][0]["output"]["exit_code"], 0);
    assert_eq!(steps[2]["attempts"][0]["output"]["consecutive"], 2);
    // The database file holds the run and one succeeded attempt per step, and the automatic approval.
    assert_eq!(
        count_rows(
            &app.db_path,
            "workflow_runs",
            &format!("id = {run} AND state = 'succeeded'")
        )
        .await,
        1
    );
    assert_eq!(
        select_texts(
            &app.db_path,
            "workflow_attempts",
            "step_id",
            &format!("run_id = {run} AND state = 'succeeded'")
        )
        .await,
        vec!["drain", "restart", "verify"]
    );
    assert_eq!(
        count_rows(
            &app.db_path,
            "workflow_approvals",
            &format!("run_id = {run} AND decision = 'automatic'")
        )
        .await,
        1
    );
    // The status of the workflow and the queue say the same.
    let (_, status) = app.get_json(BossApi, "/workflow/restart-api/status").await;
    assert_eq!(status["latest_run"]["id"], run);
    assert_eq!(status["counts"]["succeeded"], 1);
    let (_, boss) = app.get_json(BossApi, "/status").await;
    assert_eq!(boss["state"], "accepting");
    assert_eq!(boss["workflows"][0]["last_result"], "succeeded");
    let metrics = app.metrics(BossApi).await;
    assert!(
        metrics.contains("workflow_runs_finished_total{service=\"boss-api\",status=\"succeeded\",workflow=\"restart-api\"} 1")
            || metrics.contains("workflow_runs_finished_total{status=\"succeeded\",workflow=\"restart-api\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_flaky_target_is_retried_with_backoff_until_it_answers() {
    let service = Service::start(2).await;
    let config = with_workflows(
        base()
            .on_demand_only()
            .target(target("api", &service.url())),
        json!({"definitions": [{
            "id": "poke",
            "steps": [{"id": "flaky", "kind": "http", "target": "api", "path": "/flaky",
                       "retry": {"attempts": 4, "initial_backoff_ms": 50, "factor": 2.0, "cap_s": 1}}]
        }]}),
    );
    let app = spawn_app_with(config).await;
    let (_, body, _) = start(&app, "poke", json!({}), None).await;
    let run = run_id(&body);
    let detail = run_in(&app, run, &["succeeded", "failed"]).await;
    assert_eq!(detail["run"]["state"], "succeeded", "{detail:#}");
    let attempts = detail["steps"][0]["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 3, "two 503s, then 200: {attempts:#?}");
    assert_eq!(attempts[0]["state"], "failed");
    assert!(attempts[0]["error"].as_str().unwrap().contains("503"));
    assert_eq!(attempts[2]["state"], "succeeded");
    // The backoff doubled: the third attempt started at least 50 + 100 ms after the first.
    let at = |i: usize| {
        chrono::DateTime::parse_from_rfc3339(attempts[i]["started_at"].as_str().unwrap()).unwrap()
    };
    assert!((at(2) - at(0)).num_milliseconds() >= 150);
    assert_eq!(service.flaky.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_step_timeout_kills_the_whole_process_group_and_a_cancel_stops_a_command_midway() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("grandchild.pid");
    let hang = script(
        dir.path(),
        "hang.sh",
        &format!("sleep 600 & echo $! > {}; wait\n", pid_file.display()),
    );
    let config = with_workflows(
        base(),
        json!({"definitions": [
            {"id": "hang", "steps": [{"id": "forever", "kind": "command", "timeout_s": 1, "kill_grace_s": 1,
                                      "argv": ["sh", hang]}]},
            {"id": "long", "steps": [{"id": "wait", "kind": "command", "argv": ["sleep", "600"]}]}
        ]}),
    );
    let app = spawn_app_with(config).await;
    let (_, body, _) = start(&app, "hang", json!({}), None).await;
    let run = run_id(&body);
    let detail = run_in(&app, run, &["failed", "succeeded"]).await;
    assert_eq!(detail["run"]["state"], "failed");
    let error = detail["steps"][0]["attempts"][0]["error"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(error.contains("killed"), "{error}");
    let grandchild: u32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    eventually("the grandchild is gone with its group", || async {
        (!process_alive(grandchild)).then_some(())
    })
    .await;

    let (_, body, _) = start(&app, "long", json!({}), None).await;
    let run = run_id(&body);
    run_in(&app, run, &["running"]).await;
    eventually("the command runs", || async {
        let (_, d) = app.get_json(BossApi, &format!("/runs/{run}")).await;
        (d["steps"][0]["attempts"].as_array().map_or(0, Vec::len) == 1).then_some(())
    })
    .await;
    let (status, cancelled) = post(
        &app,
        &format!("/runs/{run}/cancel"),
        json!({"reason": "wrong host"}),
    )
    .await;
    assert_eq!(status, 200, "{cancelled}");
    assert_eq!(cancelled["state"], "cancelled");
    assert!(cancelled["error"].as_str().unwrap().contains("wrong host"));
    // Again: the same answer.
    let (status, again) = post(&app, &format!("/runs/{run}/cancel"), json!({})).await;
    assert_eq!((status, again["state"].as_str()), (200, Some("cancelled")));
    let detail = run_in(&app, run, &["cancelled"]).await;
    assert_eq!(detail["steps"][0]["attempts"][0]["state"], "interrupted");
    assert_eq!(
        count_rows(
            &app.db_path,
            "workflow_attempts",
            &format!("run_id = {run} AND state = 'running'")
        )
        .await,
        0
    );
    // A finished run cannot be cancelled.
    let (status, _) = post(&app, &format!("/runs/{}/cancel", run - 1), json!({})).await;
    assert_eq!(status, 409);
}

#[tokio::test]
async fn a_risky_step_waits_for_approval_which_is_approved_rejected_or_expires() {
    let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 12, 5, 12, 0, 0).unwrap());
    let dir = tempfile::tempdir().unwrap();
    let side = dir.path().join("side");
    let mark = script(
        dir.path(),
        "mark.sh",
        &format!("echo x >> {}\n", side.display()),
    );
    let config = with_workflows(
        base(),
        json!({"definitions": [{
            "id": "wipe",
            "deadline_s": 86400,
            "concurrency": {"limit": 5},
            "steps": [
                {"id": "note", "kind": "command", "argv": ["true"]},
                {"id": "wipe", "kind": "command", "argv": ["sudo", "-n", "true"], "on_failure": "continue"},
                {"id": "mark", "kind": "command", "argv": ["sh", mark]}
            ]
        }]}),
    );
    let app = spawn_app_with_clock(config, Arc::new(clock.clone())).await;
    let mut runs = Vec::new();
    for _ in 0..3 {
        let (status, body, _) = start(&app, "wipe", json!({"reason": "cleanup"}), None).await;
        assert_eq!(status, 202);
        runs.push(run_id(&body));
    }
    for run in &runs {
        let detail = run_in(&app, *run, &["waiting"]).await;
        assert_eq!(detail["run"]["wait_reason"], "approval");
        // The first step ran; the run waits before the risky one.
        assert_eq!(detail["run"]["step"], "wipe");
        assert_eq!(detail["steps"][0]["attempts"][0]["state"], "succeeded");
        assert_eq!(detail["approvals"][0]["risk"], "high");
    }
    // Approved: goes on at once.
    let (status, approval) = post(
        &app,
        &format!("/runs/{}/approve", runs[0]),
        json!({"reason": "ticket 7"}),
    )
    .await;
    assert_eq!(status, 200, "{approval}");
    assert_eq!(approval["decision"], "approved");
    let done = run_in(&app, runs[0], &["succeeded"]).await;
    assert_eq!(done["approvals"][0]["reason"], "ticket 7");
    // Rejected: cancelled, the risky step never ran.
    let (status, _) = post(
        &app,
        &format!("/runs/{}/reject", runs[1]),
        json!({"reason": "no"}),
    )
    .await;
    assert_eq!(status, 200);
    let rejected = run_in(&app, runs[1], &["cancelled"]).await;
    assert!(rejected["steps"][1]["attempts"]
        .as_array()
        .unwrap()
        .is_empty());
    // Expired: high-risk approvals stay open 8 h.
    clock.advance(Duration::from_secs(8 * 3600 + 1));
    let expired = run_in(&app, runs[2], &["failed"]).await;
    assert_eq!(expired["approvals"][0]["decision"], "expired");
    assert!(expired["run"]["error"]
        .as_str()
        .unwrap()
        .contains("expired"));
    // Only the approved run reached its last step.
    assert_eq!(std::fs::read_to_string(&side).unwrap().lines().count(), 1);
    for (run, decision) in runs.iter().zip(["approved", "rejected", "expired"]) {
        assert_eq!(
            select_texts(
                &app.db_path,
                "workflow_approvals",
                "decision",
                &format!("run_id = {run}")
            )
            .await,
            vec![decision]
        );
    }
    // A run that waits for nothing cannot be approved.
    let (status, _) = post(&app, &format!("/runs/{}/approve", runs[0]), json!({})).await;
    assert_eq!(status, 409);
}

#[tokio::test]
async fn an_idempotency_key_finds_its_run_and_refuses_another_body() {
    let config = with_workflows(
        base(),
        json!({"definitions": [{"id": "noop", "concurrency": {"limit": 10},
                                 "inputs": {"n": {"type": "integer"}},
                                 "steps": [{"id": "one", "kind": "command", "argv": ["true"]}]}]}),
    );
    let app = spawn_app_with(config).await;
    let body = json!({"inputs": {"n": 1}, "reason": "r"});
    let (status, first, _) = start(&app, "noop", body.clone(), Some("key-1")).await;
    assert_eq!(status, 202);
    let (status, again, location) = start(&app, "noop", body, Some("key-1")).await;
    assert_eq!(status, 200);
    assert_eq!(again["id"], first["id"]);
    assert_eq!(location, Some(format!("/runs/{}", first["id"])));
    let (status, conflict, _) = start(
        &app,
        "noop",
        json!({"inputs": {"n": 2}, "reason": "r"}),
        Some("key-1"),
    )
    .await;
    assert_eq!(status, 422, "{conflict}");
    assert!(conflict["error"]["message"]
        .as_str()
        .unwrap()
        .contains("key-1"));
    assert_eq!(count_rows(&app.db_path, "workflow_runs", "1").await, 1);
    // Bad starts are named.
    let (status, bad, _) = start(&app, "noop", json!({"inputs": {"n": "one"}}), None).await;
    assert_eq!(status, 422);
    assert!(
        bad["error"]["message"]
            .as_str()
            .unwrap()
            .contains("inputs.n"),
        "{bad}"
    );
    let (status, _, _) = start(&app, "nope", json!({}), None).await;
    assert_eq!(status, 404);
    // Bad reads are named too.
    for (path, names) in [
        ("/workflow/noop/runs?status=done", "status"),
        ("/workflow/noop/runs?limit=0", "limit"),
        ("/workflow/noop/runs?cursor=x", "cursor"),
    ] {
        let (status, body) = app.get_json(BossApi, path).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with(names),
            "{path}: {body}"
        );
    }
    let (status, _) = app.get_json(BossApi, "/runs/not-a-run").await;
    assert_eq!(status, 404);
    let (status, _, _) = start(&app, "noop", json!({"inputs": {"n": 1}, "extra": 1}), None).await;
    assert_eq!(status, 400);
    assert_eq!(count_rows(&app.db_path, "workflow_runs", "1").await, 1);
}

#[tokio::test]
async fn a_full_group_queues_or_rejects_and_runs_for_other_keys_go_on() {
    let config = with_workflows(
        base(),
        json!({"definitions": [
            {"id": "queued", "inputs": {"target": {"type": "string"}},
             "concurrency": {"limit": 1, "key": "target", "on_conflict": "queue"},
             "steps": [{"id": "work", "kind": "command", "argv": ["sleep", "0.3"]}]},
            {"id": "rejected", "concurrency": {"limit": 1, "on_conflict": "reject"},
             "steps": [{"id": "work", "kind": "command", "argv": ["sleep", "600"]}]}
        ]}),
    );
    let app = spawn_app_with(config).await;
    let a1 = run_id(
        &start(&app, "queued", json!({"inputs": {"target": "a"}}), None)
            .await
            .1,
    );
    let a2 = run_id(
        &start(&app, "queued", json!({"inputs": {"target": "a"}}), None)
            .await
            .1,
    );
    let b1 = run_id(
        &start(&app, "queued", json!({"inputs": {"target": "b"}}), None)
            .await
            .1,
    );
    for run in [a1, a2, b1] {
        run_in(&app, run, &["succeeded"]).await;
    }
    // The second run of group "a" started after the first ended; "b" did not wait for "a".
    let time = |d: &Value, f: &str| {
        chrono::DateTime::parse_from_rfc3339(d["run"][f].as_str().unwrap()).unwrap()
    };
    let (d1, d2, db) = (
        run_in(&app, a1, &["succeeded"]).await,
        run_in(&app, a2, &["succeeded"]).await,
        run_in(&app, b1, &["succeeded"]).await,
    );
    assert!(time(&d2, "started_at") >= time(&d1, "finished_at"));
    assert!(time(&db, "started_at") < time(&d1, "finished_at"));

    let (status, first, _) = start(&app, "rejected", json!({}), None).await;
    assert_eq!(status, 202);
    let (status, refused, _) = start(&app, "rejected", json!({}), None).await;
    assert_eq!(status, 409, "{refused}");
    assert_eq!(
        count_rows(&app.db_path, "workflow_runs", "workflow = 'rejected'").await,
        1
    );
    post(&app, &format!("/runs/{}/cancel", first["id"]), json!({})).await;
}

#[tokio::test]
async fn auto_heal_leaves_a_target_alone_while_a_run_holds_it_and_the_runs_heal_goes_through() {
    let service = Service::start(0).await;
    let down = common::dead_port();
    let config = with_workflows(
        base()
            .heal_verify(1, 200)
            .heal(|heal| heal.cooldown_s = 0)
            .target(
                target("api", &format!("tcp://127.0.0.1:{down}"))
                    .every_second()
                    .heal_command(&["true"]),
            )
            .target(target("other", &service.url()).every_second()),
        json!({"definitions": [{
            "id": "fix-api",
            "steps": [
                {"id": "hold", "kind": "command", "argv": ["sleep", "4"]},
                {"id": "heal", "kind": "heal", "target": "api", "on_failure": "continue"}
            ]
        }]}),
    );
    let app = spawn_app_with(config).await;
    let run = run_id(&start(&app, "fix-api", json!({}), None).await.1);
    let detail = run_in(&app, run, &["succeeded", "failed"]).await;
    assert_eq!(detail["run"]["state"], "succeeded", "{detail:#}");
    // While the run held the target, every automatic heal was skipped as held; the run's own heal ran.
    let automatic_acted = count_rows(
        &app.db_path,
        "heal_events",
        &format!(
            "trigger = 'automatic' AND outcome IN ('healed', 'failed')
             AND started_at_ms <= (SELECT finished_ms FROM workflow_runs WHERE id = {run})"
        ),
    )
    .await;
    let held = count_rows(&app.db_path, "heal_events", "outcome = 'skipped_held'").await;
    let by_workflow = count_rows(&app.db_path, "heal_events", "trigger = 'workflow'").await;
    assert_eq!(
        automatic_acted, 0,
        "no automatic heal acted while the run held api"
    );
    assert!(held >= 1, "auto-heal tried and was held off");
    assert_eq!(by_workflow, 1);
    assert_eq!(detail["steps"][1]["attempts"][0]["state"], "failed");
}

#[tokio::test]
async fn a_step_that_cannot_be_done_here_fails_at_once_and_says_why() {
    let service = Service::start(0).await;
    let section = json!({"definitions": [
        {"id": "watch", "inputs": {"t": {"type": "string"}},
         "steps": [{"id": "wait", "kind": "wait_healthy", "target": "{{inputs.t}}", "timeout_s": 600}]},
        {"id": "poke", "steps": [{"id": "get", "kind": "http", "target": "api", "path": "/health"}]}
    ]});
    let app = spawn_app_with(with_workflows(
        base().target(target("api", &service.url()).every_second()),
        section.clone(),
    ))
    .await;
    let run = run_id(
        &start(&app, "watch", json!({"inputs": {"t": "ghost"}}), None)
            .await
            .1,
    );
    let failed = run_in(&app, run, &["failed"]).await;
    assert!(
        failed["run"]["error"]
            .as_str()
            .unwrap()
            .contains("no target named \"ghost\""),
        "{failed:#}"
    );
    // Without the Health Proxy in this process, a step on a target fails at once and names why.
    let only = common::app::spawn_app_only(
        with_workflows(base().target(target("api", &service.url())), section),
        Some(BossApi),
    )
    .await;
    let run = run_id(&start(&only, "poke", json!({}), None).await.1);
    let failed = run_in(&only, run, &["failed"]).await;
    assert!(
        failed["run"]["error"]
            .as_str()
            .unwrap()
            .contains("Health Proxy does not run"),
        "{failed:#}"
    );
}

#[tokio::test]
async fn a_runbook_calls_an_mcp_tool_and_says_so_through_the_alert_channels() {
    use common::receivers::HttpReceiver;
    use hale::config::{ChannelsConfig, McpServerConfig, Secret, WebhookChannel};

    let receiver = HttpReceiver::start(vec![(200, "{}")]).await;
    let server: McpServerConfig = serde_json::from_value(json!({
        "name": "fixture",
        "command": [common::mcp_fixture::fixture().display().to_string(), "stdio"],
        "timeout_s": 5,
    }))
    .unwrap();
    let webhook = receiver.url("/hook");
    let config = with_workflows(
        base().with(move |c| {
            c.mcp_servers = vec![server];
            c.alerts.channels = ChannelsConfig {
                webhook: Some(WebhookChannel {
                    url: Secret::new(webhook),
                    bearer_token: None,
                }),
                ..ChannelsConfig::default()
            };
        }),
        json!({"definitions": [{
            "id": "ask",
            "inputs": {"word": {"type": "string"}},
            "steps": [
                {"id": "echo", "kind": "mcp_tool", "tool": "echo", "arguments": {"message": "{{inputs.word}}"},
                 "retry": {"attempts": 5, "initial_backoff_ms": 200}},
                {"id": "tell", "kind": "notify", "message": "the tool said {{steps.echo.output.structuredContent.echo}}"}
            ]
        }]}),
    );
    let app = spawn_app_with(config).await;
    let run = run_id(
        &start(&app, "ask", json!({"inputs": {"word": "hello"}}), None)
            .await
            .1,
    );
    let done = run_in(&app, run, &["succeeded", "failed"]).await;
    assert_eq!(done["run"]["state"], "succeeded", "{done:#}");
    let got = eventually("the webhook hears the notice", || async {
        receiver
            .requests()
            .into_iter()
            .find(|r| r.body.contains("the tool said hello"))
    })
    .await;
    assert!(
        got.json()["class"] == "workflow" || got.body.contains("workflow"),
        "{}",
        got.body
    );
    // The call is one row of the bridge's call log (written by the batching writer), the notice one alert
    // in the history, never firing.
    eventually("the call is stored", || async {
        (count_rows(
            &app.db_path,
            "tool_calls",
            "outcome = 'ok' AND tool = 'echo'",
        )
        .await
            == 1)
            .then_some(())
    })
    .await;
    assert_eq!(
        count_rows(
            &app.db_path,
            "alerts",
            "rule = 'workflow_notify' AND state = 'resolved'"
        )
        .await,
        1
    );
}

#[tokio::test]
async fn the_status_page_lists_a_waiting_run_until_it_ends() {
    let config = with_workflows(
        base(),
        json!({"definitions": [{"id": "nap", "steps": [{"id": "doze", "kind": "sleep", "duration_s": 600}]}]}),
    );
    let app = spawn_app_with(config).await;
    let hp = hale::kind::ServiceKind::HealthProxy;
    let page = app.get(hp, "/").await.text().await.unwrap();
    assert!(
        page.contains("No workflow run is running or waiting."),
        "{page}"
    );
    let (_, body, _) = start(&app, "nap", json!({"reason": "page"}), None).await;
    let run = run_id(&body);
    run_in(&app, run, &["waiting"]).await;
    // The page is kept for a second: it shows the run once rendered again.
    let row = eventually("the waiting run on the status page", || async {
        let page = app.get(hp, "/").await.text().await.unwrap();
        let row = page
            .lines()
            .find(|l| l.starts_with(&format!("<tr><td>{run}</td>")))?
            .to_owned();
        Some(row)
    })
    .await;
    assert!(row.contains("<td>nap</td>"), "{row}");
    assert!(row.contains("<td>waiting for sleep until "), "{row}");
    assert!(row.contains("<td>doze</td>"), "{row}");
    let (status, _) = post(&app, &format!("/runs/{run}/cancel"), json!({})).await;
    assert_eq!(status, 200);
    run_in(&app, run, &["cancelled"]).await;
    eventually("the ended run leaves the page", || async {
        let page = app.get(hp, "/").await.text().await.unwrap();
        page.contains("No workflow run is running or waiting.")
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn cancel_running_cancels_the_groups_run_and_starts_the_new_one() {
    let config = with_workflows(
        base(),
        json!({"definitions": [
            {"id": "deploy", "inputs": {"target": {"type": "string"}},
             "concurrency": {"limit": 1, "key": "target", "on_conflict": "cancel_running"},
             "steps": [{"id": "work", "kind": "command", "argv": ["sleep", "600"]}]}
        ]}),
    );
    let app = spawn_app_with(config).await;
    let first = run_id(
        &start(&app, "deploy", json!({"inputs": {"target": "a"}}), None)
            .await
            .1,
    );
    run_in(&app, first, &["running"]).await;
    let other = run_id(
        &start(&app, "deploy", json!({"inputs": {"target": "b"}}), None)
            .await
            .1,
    );
    let (status, body, _) = start(&app, "deploy", json!({"inputs": {"target": "a"}}), None).await;
    assert_eq!(status, 202, "{body}");
    let second = run_id(&body);
    let cancelled = run_in(&app, first, &["cancelled"]).await;
    assert!(
        cancelled["run"]["error"]
            .as_str()
            .unwrap()
            .contains("cancel_running"),
        "{cancelled:#}"
    );
    run_in(&app, second, &["running"]).await;
    // Another key's run is left alone.
    let (_, b) = app.get_json(BossApi, &format!("/runs/{other}")).await;
    assert_eq!(b["run"]["state"], "running");
    for run in [second, other] {
        post(&app, &format!("/runs/{run}/cancel"), json!({})).await;
    }
}
