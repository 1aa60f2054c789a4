//! `hale workflow ...`: the real binary against a real `hale serve` with workflows (command steps run real
//! scripts): list, start with typed inputs, status --follow until the run ends, approve and reject of a
//! risky run, cancel, and a hale that is not running.

// A test crate: an unwrap is an assertion.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Output, Stdio};

use hale::kind::ServiceKind;
use serde_json::{json, Value};

use common::config::test_config_json;
use common::eventually;
use common::process::{exit_code, hale_command, HaleProcess};
use common::DEADLINE;

const OPS_ENV: &str = "HALE_TEST_WORKFLOW_CLI_OPERATE";
const OPS_TOKEN: &str = "wf-cli-operate-5Rt9Gm2Xk7Lq4Zp";

/// A shell script in `dir` (a command step runs `sh FILE`: argv, never `sh -c`).
fn script(dir: &Path, name: &str, body: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, body).unwrap();
    path.display().to_string()
}

/// hale with the operate token and these workflow definitions; the Boss API's URL.
async fn serve(definitions: Value) -> (HaleProcess, String) {
    let mut config = test_config_json();
    config["auth"] = json!({"tokens": {"operate": {"env": OPS_ENV}}});
    config["workflows"] = json!({ "definitions": definitions });
    let mut hale = HaleProcess::serve_db(&config, None, &[], &[(OPS_ENV, OPS_TOKEN)]).await;
    let addrs = hale.wait_listening(&[ServiceKind::BossApi]).await;
    let boss: SocketAddr = addrs[&ServiceKind::BossApi];
    (hale, format!("http://{boss}"))
}

/// `hale workflow ARGS --url URL` with the operate token in HALE_TOKEN (or none), to completion.
async fn workflow(dir: &Path, url: &str, token: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = hale_command(dir);
    cmd.arg("workflow")
        .args(args)
        .arg("--url")
        .arg(url)
        .env_remove("HALE_TOKEN")
        .env_remove("HALE_BOSS_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(token) = token {
        cmd.env("HALE_TOKEN", token);
    }
    let child = cmd.spawn().unwrap();
    // `--follow` runs as long as the run: a generous bound, only so a hang fails rather than blocks.
    match tokio::time::timeout(DEADLINE * 4, child.wait_with_output()).await {
        Ok(output) => output.unwrap(),
        Err(_) => panic!("hale workflow {args:?} did not exit"),
    }
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `hale workflow` never shows the token, whatever it prints.
fn no_token(out: &Output) {
    assert!(!stdout(out).contains(OPS_TOKEN) && !stderr(out).contains(OPS_TOKEN));
}

/// The run id in `run N of WORKFLOW: STATE`.
fn started_run(out: &Output) -> i64 {
    let text = stdout(out);
    let line = text
        .lines()
        .find(|l| l.starts_with("run "))
        .unwrap_or_else(|| panic!("no run line in {text:?}; stderr {:?}", stderr(out)));
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

async fn detail(url: &str, run: i64) -> Value {
    reqwest::get(format!("{url}/runs/{run}"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn run_in(url: &str, run: i64, states: &[&str]) -> Value {
    eventually(&format!("run {run} in {states:?}"), || async {
        let d = detail(url, run).await;
        states
            .contains(&d["run"]["state"].as_str().unwrap_or(""))
            .then_some(d)
    })
    .await
}

#[tokio::test]
async fn list_and_start_with_typed_inputs_then_follow_the_run_until_it_ends() {
    let dir = tempfile::tempdir().unwrap();
    let echo = script(
        dir.path(),
        "echo.sh",
        "echo \"args: $*\"\necho second line\n",
    );
    let broken = script(dir.path(), "broken.sh", "echo no >&2\nexit 3\n");
    let (_hale, url) = serve(json!([
        {"id": "echo", "description": "says its inputs",
         "inputs": {"count": {"type": "integer"}, "ratio": {"type": "number"},
                    "loud": {"type": "boolean", "required": false}, "name": {"type": "string"}},
         "steps": [
            {"id": "say", "kind": "command",
             "argv": ["sh", echo, "{{inputs.count}}", "{{inputs.ratio}}", "{{inputs.name}}"]},
            {"id": "settle", "kind": "sleep", "duration_s": 1}
         ]},
        {"id": "broken", "steps": [{"id": "fail", "kind": "command", "argv": ["sh", broken]}]},
        {"id": "root", "steps": [{"id": "sudo", "kind": "command", "argv": ["sudo", "-n", "true"]}]}
    ]))
    .await;
    let d = dir.path();

    // list: a table, and the route's JSON.
    let out = workflow(d, &url, None, &["list"]).await;
    assert_eq!(exit_code(out.status), 0, "{}", stderr(&out));
    let table = stdout(&out);
    assert!(table.starts_with("WORKFLOW"), "{table}");
    let line = |id: &str| {
        table
            .lines()
            .find(|l| l.starts_with(&format!("{id} ")))
            .unwrap_or_else(|| panic!("no {id} in {table}"))
            .to_owned()
    };
    assert!(line("echo").contains("count:integer"), "{table}");
    assert!(
        line("echo").contains("say(command) settle(sleep)"),
        "{table}"
    );
    assert!(
        line("root").contains("high") && line("root").contains("yes"),
        "{table}"
    );
    let out = workflow(d, &url, None, &["list", "--json"]).await;
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 3);
    assert_eq!(list[2]["approval_required"], true);

    // A value that is not of its declared type is named, and nothing starts.
    let out = workflow(
        d,
        &url,
        Some(OPS_TOKEN),
        &[
            "start",
            "echo",
            "--input",
            "count=three",
            "--input",
            "ratio=1",
            "--input",
            "name=x",
        ],
    )
    .await;
    assert_eq!(exit_code(out.status), 2, "{}", stdout(&out));
    let error = stderr(&out);
    assert!(
        error.contains("--input count") && error.contains("integer"),
        "{error}"
    );
    let out = workflow(d, &url, Some(OPS_TOKEN), &["start", "nope"]).await;
    assert_eq!(exit_code(out.status), 1);
    assert!(
        stderr(&out).contains("no workflow named \"nope\""),
        "{}",
        stderr(&out)
    );
    // A missing required input: the Boss API's own message, as bad input.
    let out = workflow(
        d,
        &url,
        Some(OPS_TOKEN),
        &["start", "echo", "--input", "count=1", "--input", "ratio=2"],
    )
    .await;
    assert_eq!(exit_code(out.status), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains("inputs.name"), "{}", stderr(&out));
    // Without the token: the Boss API's refusal, and still no token anywhere.
    let out = workflow(
        d,
        &url,
        None,
        &[
            "start",
            "echo",
            "--inputs-json",
            r#"{"count": 1, "ratio": 1, "name": "x"}"#,
        ],
    )
    .await;
    assert_eq!(exit_code(out.status), 1);
    assert!(!stderr(&out).trim().is_empty());

    // Typed inputs, then followed to the end: the steps as they go, exit 0.
    let out = workflow(
        d,
        &url,
        Some(OPS_TOKEN),
        &[
            "start",
            "echo",
            "--input",
            "count=7",
            "--input",
            "ratio=0.25",
            "--input",
            "loud=yes",
            "--input",
            "name=blue sky",
            "--reason",
            "from the cli",
            "--key",
            "cli-1",
            "--follow",
        ],
    )
    .await;
    no_token(&out);
    let text = stdout(&out);
    assert_eq!(exit_code(out.status), 0, "{text} {}", stderr(&out));
    let run = started_run(&out);
    assert!(
        text.contains(&format!("run {run} of echo: succeeded")),
        "{text}"
    );
    assert!(text.contains("args: 7 0.25 blue sky…"), "{text}");
    assert!(text.contains("reason: from the cli"), "{text}");
    let done = detail(&url, run).await;
    assert_eq!(
        done["run"]["inputs"],
        json!({"count": 7, "ratio": 0.25, "loud": true, "name": "blue sky"})
    );
    // The same key again gives the same run; status --follow of an ended run prints once and exits 0.
    let out = workflow(
        d,
        &url,
        Some(OPS_TOKEN),
        &[
            "start",
            "echo",
            "--inputs-json",
            r#"{"count": 7, "ratio": 0.25, "loud": true, "name": "blue sky"}"#,
            "--reason",
            "from the cli",
            "--key",
            "cli-1",
        ],
    )
    .await;
    assert_eq!(exit_code(out.status), 0, "{}", stderr(&out));
    assert_eq!(started_run(&out), run);
    assert!(stdout(&out).contains("existing run"), "{}", stdout(&out));
    let out = workflow(d, &url, None, &["status", &run.to_string(), "--follow"]).await;
    assert_eq!(exit_code(out.status), 0);
    assert_eq!(stdout(&out).matches("run ").count(), 1, "{}", stdout(&out));
    let out = workflow(d, &url, None, &["status", &run.to_string(), "--json"]).await;
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["steps"][1]["attempts"][0]["state"], "succeeded");
    let out = workflow(d, &url, None, &["status", "--workflow", "echo"]).await;
    assert!(stdout(&out).contains("succeeded 1"), "{}", stdout(&out));

    // A run that fails: --follow exits 1 and shows the error.
    let out = workflow(d, &url, Some(OPS_TOKEN), &["start", "broken", "--follow"]).await;
    assert_eq!(exit_code(out.status), 1, "{}", stderr(&out));
    assert!(stdout(&out).contains("broken: failed"), "{}", stdout(&out));
    assert!(stdout(&out).contains("error: "), "{}", stdout(&out));
    // An unknown run: the Boss API's message.
    let out = workflow(d, &url, None, &["status", "999"]).await;
    assert_eq!(exit_code(out.status), 1);
    assert!(
        stderr(&out).contains("no workflow run 999"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test]
async fn a_risky_run_waits_for_approval_then_is_approved_rejected_or_cancelled() {
    let dir = tempfile::tempdir().unwrap();
    let (_hale, url) = serve(json!([
        {"id": "root", "concurrency": {"limit": 5},
         "steps": [{"id": "sudo", "kind": "command", "argv": ["sudo", "-n", "true"]}]},
        {"id": "nap", "steps": [{"id": "nap", "kind": "sleep", "duration_s": 600}]}
    ]))
    .await;
    let d = dir.path();
    let start = |id: &'static str| {
        let url = url.clone();
        async move {
            let out = workflow(d, &url, Some(OPS_TOKEN), &["start", id]).await;
            assert_eq!(exit_code(out.status), 0, "{}", stderr(&out));
            started_run(&out)
        }
    };

    // Approved: the run waits for approval, the status says so, then it goes on.
    let run = start("root").await;
    run_in(&url, run, &["waiting"]).await;
    let out = workflow(d, &url, None, &["status", &run.to_string()]).await;
    let screen = stdout(&out);
    assert!(
        screen.contains(&format!(
            "run {run} of root: waiting for approval (expires "
        )),
        "{screen}"
    );
    assert!(
        screen.contains("step sudo (high risk): open, expires"),
        "{screen}"
    );
    let out = workflow(
        d,
        &url,
        Some(OPS_TOKEN),
        &["approve", &run.to_string(), "--reason", "ok"],
    )
    .await;
    no_token(&out);
    assert_eq!(exit_code(out.status), 0, "{}", stderr(&out));
    assert_eq!(
        stdout(&out).trim(),
        format!("run {run}: step sudo approved")
    );
    let done = run_in(&url, run, &["succeeded", "failed"]).await;
    assert_eq!(done["approvals"][0]["decision"], "approved");
    assert_eq!(done["approvals"][0]["reason"], "ok");
    // Approving again: the Boss API's refusal.
    let out = workflow(d, &url, Some(OPS_TOKEN), &["approve", &run.to_string()]).await;
    assert_eq!(exit_code(out.status), 1);
    assert!(!stderr(&out).trim().is_empty());

    // Rejected: the run ends without running the step; --follow exits 1.
    let run = start("root").await;
    run_in(&url, run, &["waiting"]).await;
    let out = workflow(d, &url, Some(OPS_TOKEN), &["reject", &run.to_string()]).await;
    assert_eq!(exit_code(out.status), 0, "{}", stderr(&out));
    let ended = run_in(&url, run, &["cancelled", "failed"]).await;
    assert!(ended["steps"][0]["attempts"].as_array().unwrap().is_empty());
    let out = workflow(d, &url, None, &["status", &run.to_string(), "--follow"]).await;
    assert_eq!(exit_code(out.status), 1);

    // Cancelled in its sleep, which the status shows as the step it waits at.
    let run = start("nap").await;
    run_in(&url, run, &["waiting"]).await;
    let out = workflow(d, &url, None, &["status", &run.to_string()]).await;
    let screen = stdout(&out);
    assert!(screen.contains(": waiting for sleep (wakes "), "{screen}");
    assert!(
        screen
            .lines()
            .any(|l| l.starts_with("nap ") && l.contains(" waiting ")),
        "{screen}"
    );
    let out = workflow(
        d,
        &url,
        Some(OPS_TOKEN),
        &["cancel", &run.to_string(), "--reason", "not today"],
    )
    .await;
    assert_eq!(exit_code(out.status), 0, "{}", stderr(&out));
    let ended = run_in(&url, run, &["cancelled"]).await;
    assert_eq!(ended["run"]["state"], "cancelled");
    // Without the token a change is refused.
    let run = start("nap").await;
    let out = workflow(d, &url, None, &["cancel", &run.to_string()]).await;
    assert_eq!(exit_code(out.status), 1);
    assert_ne!(detail(&url, run).await["run"]["state"], "cancelled");
}

#[tokio::test]
async fn a_hale_that_is_not_running_is_one_line_naming_its_url() {
    let dir = tempfile::tempdir().unwrap();
    // A port nobody listens on: bound, then closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    for args in [
        &["list"][..],
        &["status", "1"],
        &["start", "x"],
        &["cancel", "1"],
    ] {
        let out = workflow(dir.path(), &url, Some(OPS_TOKEN), args).await;
        assert_eq!(exit_code(out.status), 1, "{args:?}");
        assert!(stdout(&out).is_empty());
        let error = stderr(&out);
        let lines: Vec<&str> = error.lines().filter(|l| !l.starts_with('{')).collect();
        assert_eq!(lines.len(), 1, "{error}");
        assert!(
            lines[0].contains(&url) && lines[0].contains("not answering"),
            "{error}"
        );
        no_token(&out);
    }
    // The address from the config when no --url is given.
    let config = dir.path().join("config.json");
    let mut json = test_config_json();
    json["listen"]["boss_api"] = json!(format!("127.0.0.1:{port}"));
    std::fs::write(&config, json.to_string()).unwrap();
    let mut cmd = hale_command(dir.path());
    let out = cmd
        .args(["workflow", "list", "--config"])
        .arg(&config)
        .env_remove("HALE_BOSS_URL")
        .output()
        .await
        .unwrap();
    assert_eq!(exit_code(out.status), 1);
    assert!(stderr(&out).contains(&url), "{}", stderr(&out));
}
