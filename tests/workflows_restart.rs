//! Workflow runs across a kill -9 of the real binary, restarted on the same database: an idempotent step
//! is run again, a non-idempotent one never is (its side effect is counted in a file) and its run ends
//! `interrupted` with an alert, a sleep wakes at its stored time, and SIGTERM drains the Boss API.

// A test crate: an unwrap is an assertion.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use hale::kind::ServiceKind;
use serde_json::{json, Value};

use common::config::test_config_json;
use common::db::{count_rows, select_texts};
use common::eventually;
use common::process::HaleProcess;

const OPS_ENV: &str = "HALE_TEST_RESTART_OPERATE";
const OPS_TOKEN: &str = "wf-restart-3Nb8Qz5Tc1Wy6Pk";

fn config(steps: Value) -> Value {
    let mut config = test_config_json();
    config["auth"] = json!({"tokens": {"operate": {"env": OPS_ENV}}});
    config["workflows"] = json!({"definitions": [{"id": "job", "steps": steps}]});
    config
}

/// A shell script in `dir` (a command step runs `sh FILE`: argv, never `sh -c`).
fn script(dir: &Path, name: &str, body: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, body).unwrap();
    path.display().to_string()
}

async fn serve(config: &Value, db: &Path) -> (HaleProcess, SocketAddr) {
    let mut hale = HaleProcess::serve_db(config, Some(db), &[], &[(OPS_ENV, OPS_TOKEN)]).await;
    let addrs: HashMap<ServiceKind, SocketAddr> =
        hale.wait_listening(&[ServiceKind::BossApi]).await;
    (hale, addrs[&ServiceKind::BossApi])
}

async fn start(boss: SocketAddr) -> i64 {
    let res = reqwest::Client::new()
        .post(format!("http://{boss}/workflow/job/start"))
        .bearer_auth(OPS_TOKEN)
        .json(&json!({"reason": "test"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 202);
    res.json::<Value>().await.unwrap()["id"].as_i64().unwrap()
}

async fn detail(boss: SocketAddr, run: i64) -> Value {
    reqwest::get(format!("http://{boss}/runs/{run}"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn run_in(boss: SocketAddr, run: i64, states: &[&str]) -> Value {
    eventually(&format!("run {run} in {states:?}"), || async {
        let d = detail(boss, run).await;
        states
            .contains(&d["run"]["state"].as_str().unwrap_or(""))
            .then_some(d)
    })
    .await
}

fn kill_9(hale: &HaleProcess) {
    hale.signal("KILL");
}

fn lines(path: &Path) -> usize {
    std::fs::read_to_string(path).map_or(0, |t| t.lines().count())
}

#[tokio::test]
async fn an_idempotent_step_interrupted_by_kill_9_runs_again_after_the_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (db, marker, side) = (
        dir.path().join("hale.db"),
        dir.path().join("marker"),
        dir.path().join("side"),
    );
    // The first attempt leaves a marker and hangs; the one after the restart finds it and succeeds.
    let work = script(
        dir.path(),
        "work.sh",
        &format!(
            "echo x >> {side}\nif [ -f {marker} ]; then exit 0; fi\ntouch {marker}\nsleep 600\n",
            side = side.display(),
            marker = marker.display()
        ),
    );
    let config = config(json!([{"id": "work", "kind": "command", "idempotent": true,
                                "argv": ["sh", work]}]));
    let (mut hale, boss) = serve(&config, &db).await;
    let run = start(boss).await;
    eventually("the first attempt ran", || async {
        marker.exists().then_some(())
    })
    .await;
    kill_9(&hale);
    hale.wait_exit(Duration::from_secs(10)).await;

    let (mut hale, boss) = serve(&config, &db).await;
    let done = run_in(boss, run, &["succeeded", "interrupted", "failed"]).await;
    assert_eq!(done["run"]["state"], "succeeded", "{done:#}");
    assert_eq!(done["run"]["resumes"], 1);
    let attempts = done["steps"][0]["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0]["state"], "interrupted");
    assert_eq!(attempts[1]["state"], "succeeded");
    assert_eq!(
        lines(&side),
        2,
        "the idempotent step ran once before and once after"
    );
    hale.signal("TERM");
    hale.wait_exit(Duration::from_secs(20)).await;
    assert_eq!(
        select_texts(
            &db,
            "workflow_attempts",
            "state",
            &format!("run_id = {run}")
        )
        .await,
        vec!["interrupted", "succeeded"]
    );
}

#[tokio::test]
async fn a_non_idempotent_step_interrupted_by_kill_9_never_runs_twice_and_its_run_ends_interrupted()
{
    let dir = tempfile::tempdir().unwrap();
    let (db, side) = (dir.path().join("hale.db"), dir.path().join("side"));
    let charge = script(
        dir.path(),
        "charge.sh",
        &format!("echo x >> {}\nsleep 600\n", side.display()),
    );
    let config = config(json!([
        {"id": "charge", "kind": "command", "argv": ["sh", charge]},
        {"id": "after", "kind": "command", "argv": ["true"]}
    ]));
    let (mut hale, boss) = serve(&config, &db).await;
    let run = start(boss).await;
    eventually("the step ran", || async {
        (lines(&side) == 1).then_some(())
    })
    .await;
    kill_9(&hale);
    hale.wait_exit(Duration::from_secs(10)).await;

    let (mut hale, boss) = serve(&config, &db).await;
    let ended = run_in(boss, run, &["interrupted", "succeeded", "failed"]).await;
    assert_eq!(ended["run"]["state"], "interrupted", "{ended:#}");
    assert!(ended["run"]["error"]
        .as_str()
        .unwrap()
        .contains("not idempotent"));
    let status: Value = reqwest::get(format!("http://{boss}/status"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["interrupted_at_start"], json!([run]));
    // Give a wrongly resumed step every chance to write again.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(lines(&side), 1, "the non-idempotent step ran exactly once");
    hale.signal("TERM");
    hale.wait_exit(Duration::from_secs(20)).await;
    assert_eq!(
        count_rows(&db, "workflow_attempts", &format!("run_id = {run}")).await,
        1
    );
    // The alert is in the history, never firing.
    assert_eq!(
        count_rows(
            &db,
            "alerts",
            "rule = 'workflow_run_interrupted' AND resolved_at_ms IS NOT NULL"
        )
        .await,
        1
    );
}

#[tokio::test]
async fn a_sleep_that_spans_a_restart_wakes_at_its_stored_time() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hale.db");
    let config = config(json!([
        {"id": "pause", "kind": "sleep", "duration_s": 4},
        {"id": "after", "kind": "command", "argv": ["true"]}
    ]));
    let (mut hale, boss) = serve(&config, &db).await;
    let run = start(boss).await;
    let waiting = run_in(boss, run, &["waiting"]).await;
    let wake_at =
        chrono::DateTime::parse_from_rfc3339(waiting["run"]["wake_at"].as_str().unwrap()).unwrap();
    kill_9(&hale);
    hale.wait_exit(Duration::from_secs(10)).await;

    let (mut hale, boss) = serve(&config, &db).await;
    let still = detail(boss, run).await;
    assert_eq!(
        still["run"]["wake_at"], waiting["run"]["wake_at"],
        "the restart kept the wake time"
    );
    let done = run_in(boss, run, &["succeeded"]).await;
    let after = chrono::DateTime::parse_from_rfc3339(
        done["steps"][1]["attempts"][0]["started_at"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert!(after >= wake_at, "woke at {after}, not before {wake_at}");
    assert!(
        (after - wake_at).num_milliseconds() < 3_000,
        "woke at {after}, {} ms after its stored time: the sleep did not start over",
        (after - wake_at).num_milliseconds()
    );
    hale.signal("TERM");
    hale.wait_exit(Duration::from_secs(20)).await;
}

#[tokio::test]
async fn sigterm_refuses_new_runs_and_leaves_the_running_step_to_the_restart_rules() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hale.db");
    let mut config = config(
        json!([{"id": "long", "kind": "command", "idempotent": true, "argv": ["sleep", "600"]}]),
    );
    config["http"]["shutdown_timeout_s"] = json!(1);
    let (mut hale, boss) = serve(&config, &db).await;
    let run = start(boss).await;
    run_in(boss, run, &["running"]).await;
    hale.signal("TERM");
    hale.wait_exit(Duration::from_secs(20)).await;
    // The run is still in progress in the file, its attempt left for the next start to settle.
    assert_eq!(
        count_rows(
            &db,
            "workflow_runs",
            &format!("id = {run} AND state = 'running'")
        )
        .await,
        1
    );
    let logs: Vec<String> = hale
        .json_logs()
        .iter()
        .filter_map(|l| l["message"].as_str().map(str::to_owned))
        .collect();
    assert!(
        logs.iter().any(|m| m.contains("workflow engine draining")),
        "{logs:?}"
    );
}
