//! The MCP WebBridge against real MCP servers: the in-repo fixture (`examples/mcp_fixture.rs`, built with
//! rmcp) as a stdio child and over streamable HTTP, with hale in-process or as a real `hale serve`.

#![allow(clippy::unwrap_used)]

mod common;

use std::process::Stdio;
use std::time::Duration;

use hale::auth::Role;
use hale::config::{Config, McpServerConfig};
use hale::kind::ServiceKind::McpBridge;
use serde_json::{json, Value};
use tokio::io::AsyncBufReadExt;

use common::app::{client, spawn_app_only, spawn_app_with, TestApp};
use common::config::{test_config_json, TestConfig};
use common::db::count_rows;
use common::mcp_fixture::fixture;
use common::process::HaleProcess;
use common::{eventually, DEADLINE};

fn stdio_server(name: &str, mode: &str, extra: Value) -> McpServerConfig {
    let mut server = json!({
        "name": name,
        "command": [fixture().display().to_string(), mode],
        "timeout_s": 5,
    });
    merge(&mut server, extra);
    serde_json::from_value(server).expect("a valid MCP server")
}

fn http_server(name: &str, url: &str, extra: Value) -> McpServerConfig {
    let mut server = json!({"name": name, "url": url, "timeout_s": 5});
    merge(&mut server, extra);
    serde_json::from_value(server).expect("a valid MCP server")
}

fn merge(into: &mut Value, extra: Value) {
    if let (Value::Object(into), Value::Object(extra)) = (into, extra) {
        into.extend(extra);
    }
}

fn bridge_config(servers: Vec<McpServerConfig>) -> TestConfig {
    TestConfig::new().with(move |c: &mut Config| c.mcp_servers = servers)
}

/// The fixture serving streamable HTTP, killed when dropped.
struct HttpFixture {
    child: tokio::process::Child,
    url: String,
}

impl HttpFixture {
    async fn start() -> Self {
        let mut child = tokio::process::Command::new(fixture())
            .arg("http")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start the HTTP fixture");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let addr = tokio::time::timeout(DEADLINE, lines.next_line())
            .await
            .expect("the fixture prints its address")
            .expect("read the fixture's stdout")
            .expect("an address line");
        Self {
            child,
            url: format!("http://{addr}/mcp"),
        }
    }
}

impl Drop for HttpFixture {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

async fn servers(app: &TestApp) -> Vec<Value> {
    let (status, body) = app.get_json(McpBridge, "/servers").await;
    assert_eq!(status, 200, "{body}");
    body.as_array().cloned().expect("an array")
}

async fn wait_state(app: &TestApp, server: &str, state: &str) -> Value {
    eventually(&format!("MCP server {server} {state}"), || async {
        servers(app)
            .await
            .into_iter()
            .find(|s| s["name"] == server && s["state"] == state)
    })
    .await
}

async fn call(
    app: &TestApp,
    tool: &str,
    args: Value,
    token: Option<&str>,
) -> (u16, Value, Option<String>) {
    let mut request = client()
        .post(app.url(McpBridge, &format!("/tools/{tool}")))
        .json(&args);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("POST /tools");
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body, retry_after)
}

/// The `key` string of every object of the array `items`, in order.
fn strings<'a>(items: &'a Value, key: &str) -> Vec<&'a str> {
    items
        .as_array()
        .expect("an array")
        .iter()
        .filter_map(|item| item[key].as_str())
        .collect()
}

const OPERATE: &str = "mcp-operate-token-7f3a9c2e1b";
const READ: &str = "mcp-read-token-4d8e2a6c9f";

fn with_tokens(config: TestConfig, prefix: &str) -> TestConfig {
    config
        .token(Role::Read, &format!("{prefix}_READ"), READ)
        .token(Role::Operate, &format!("{prefix}_OPERATE"), OPERATE)
}

#[tokio::test]
async fn a_stdio_server_is_listed_whole_and_its_tools_answer_over_http() {
    let cancel_log = tempfile::NamedTempFile::new().unwrap();
    let server = stdio_server(
        "fixture",
        "stdio",
        json!({"env": {"FIXTURE_CANCEL_LOG": cancel_log.path().display().to_string()}, "timeout_s": 2}),
    );
    let mut app = spawn_app_with(with_tokens(bridge_config(vec![server]), "MCP_A").build()).await;
    let ready = wait_state(&app, "fixture", "ready").await;
    assert_eq!(ready["transport"], "stdio");
    assert_eq!(ready["server_name"], "hale-fixture");
    assert_eq!(ready["server_version"], "1.0.0");
    assert!(
        ready["protocol_version"]
            .as_str()
            .is_some_and(|v| !v.is_empty()),
        "{ready}"
    );
    // 18 tools in pages of 4: the catalog followed every cursor.
    assert_eq!(ready["tool_count"], 18, "{ready}");
    assert!(
        ready["stderr_tail"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l == "fixture: serving on stdio"),
        "{ready}"
    );

    let (status, tools) = app.get_json(McpBridge, "/tools").await;
    assert_eq!(status, 200);
    let names = strings(&tools, "name");
    assert_eq!(names.len(), 18, "{names:?}");
    assert!(
        names.contains(&"echo") && names.contains(&"filler_9"),
        "{names:?}"
    );
    let add = tools
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "add")
        .unwrap();
    assert_eq!(add["input_schema"]["required"], json!(["a", "b"]));

    // A call comes back whole: content and structured content.
    let (status, answer, _) = call(&app, "echo", json!({"message": "hi"}), Some(OPERATE)).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["is_error"], false);
    assert_eq!(answer["server"], "fixture");
    assert_eq!(answer["result"]["content"][0]["text"], "Echo: hi");
    assert_eq!(answer["result"]["structuredContent"]["echo"], "hi");

    // Checked against the schema before anything is sent: the failing field is named.
    let (status, body, _) = call(&app, "add", json!({"a": "one", "b": 2}), Some(OPERATE)).await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("\"/a\""),
        "{body}"
    );
    let (status, body, _) = call(&app, "add", json!([1, 2]), Some(OPERATE)).await;
    assert_eq!(status, 422, "{body}");
    let (status, body, _) = call(&app, "no_such_tool", json!({}), Some(OPERATE)).await;
    assert_eq!(status, 404, "{body}");

    // A tool that reports a failure is an answer.
    let (status, body, _) = call(&app, "fail", json!({}), Some(OPERATE)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["is_error"], true);

    // Over max_result_bytes (1 MiB by default): a clear 502.
    let (status, body, _) = call(&app, "big", json!({"bytes": 1_200_000}), Some(OPERATE)).await;
    assert_eq!(status, 502, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("max_result_bytes"),
        "{body}"
    );

    // Past the server's 2 s timeout: 504, and the server saw the cancellation.
    let (status, body, _) = call(&app, "slow", json!({"seconds": 30}), Some(OPERATE)).await;
    assert_eq!(status, 504, "{body}");
    eventually("the fixture logs the cancelled call", || async {
        std::fs::read_to_string(cancel_log.path())
            .ok()
            .filter(|log| log.contains("cancelled slow 30"))
    })
    .await;

    // Every call of a listed tool is counted by outcome; a name no server listed adds no series.
    let text = app.metrics(McpBridge).await;
    let calls = |tool: &str, outcome: &str| {
        common::prom::sample_sum(
            &text,
            "mcp_tool_calls_total",
            &[("server", "fixture"), ("tool", tool), ("outcome", outcome)],
        )
    };
    assert_eq!(calls("echo", "ok"), Some(1.0));
    // The array body was refused by the route, before the bridge: one invalid call.
    assert_eq!(calls("add", "invalid"), Some(1.0));
    assert_eq!(calls("fail", "tool_error"), Some(1.0));
    assert_eq!(calls("big", "too_large"), Some(1.0));
    assert_eq!(calls("slow", "timeout"), Some(1.0));
    assert_eq!(
        common::prom::sample_sum(&text, "mcp_tool_calls_total", &[("tool", "no_such_tool")]),
        None
    );
    // Sent calls are timed; a refused one (invalid arguments) never reached the server.
    assert_eq!(
        common::prom::sample_sum(
            &text,
            "mcp_tool_duration_seconds_count",
            &[("server", "fixture"), ("tool", "slow")]
        ),
        Some(1.0)
    );
    assert_eq!(
        common::prom::sample_sum(&text, "mcp_tool_duration_seconds_count", &[("tool", "add")]),
        None
    );
    assert_eq!(
        common::prom::sample_sum(&text, "mcp_servers", &[("state", "ready")]),
        Some(1.0)
    );
    assert_eq!(
        common::prom::sample_sum(&text, "mcp_servers", &[("state", "backing_off")]),
        Some(0.0)
    );

    // A server that dies is started again, and /servers says so.
    let (status, _, _) = call(&app, "crash", json!({}), Some(OPERATE)).await;
    assert!(status == 502 || status == 503, "{status}");
    let again = eventually("the fixture reconnected", || async {
        servers(&app)
            .await
            .into_iter()
            .find(|s| s["state"] == "ready" && s["reconnects"].as_u64() >= Some(1))
    })
    .await;
    assert_eq!(again["tool_count"], 18);
    let (status, _, _) = call(&app, "echo", json!({"message": "back"}), Some(OPERATE)).await;
    assert_eq!(status, 200);
    app.shutdown().await;
}

#[tokio::test]
async fn calls_need_operate_unless_the_server_only_reads() {
    let writer = stdio_server("writer", "stdio", json!({}));
    let reader = http_server(
        "reader",
        &HttpFixture::start().await.url,
        json!({"call_role": "read"}),
    );
    // The HTTP fixture must outlive the app: keep it.
    let http = HttpFixture::start().await;
    let reader = McpServerConfig {
        transport: http_server("reader", &http.url, json!({})).transport,
        ..reader
    };
    let mut app =
        spawn_app_with(with_tokens(bridge_config(vec![writer, reader]), "MCP_B").build()).await;
    wait_state(&app, "writer", "ready").await;
    wait_state(&app, "reader", "ready").await;
    // Every name is shared by the two servers: each is exposed with its server's name.
    let (_, tools) = app.get_json(McpBridge, "/tools").await;
    let names = strings(&tools, "name");
    assert_eq!(names.len(), 36, "{names:?}");
    assert!(
        names.contains(&"writer__echo") && names.contains(&"reader__echo"),
        "{names:?}"
    );
    assert!(!names.contains(&"echo"));

    let args = json!({"message": "x"});
    assert_eq!(call(&app, "writer__echo", args.clone(), None).await.0, 401);
    assert_eq!(
        call(&app, "writer__echo", args.clone(), Some(READ)).await.0,
        403
    );
    assert_eq!(
        call(
            &app,
            "writer__echo",
            args.clone(),
            Some("not-a-token-at-all")
        )
        .await
        .0,
        401
    );
    assert_eq!(
        call(&app, "writer__echo", args.clone(), Some(OPERATE))
            .await
            .0,
        200
    );
    // `call_role: read`: a read token (or an open loopback read) may call it.
    let (status, body, _) = call(&app, "reader__echo", args.clone(), Some(READ)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["server"], "reader");
    assert_eq!(body["result"]["structuredContent"]["echo"], "x");
    app.shutdown().await;
}

#[tokio::test]
async fn a_stdio_server_gets_a_minimal_environment_without_hales_tokens() {
    std::env::set_var("HALE_MCP_TEST_UNRELATED", "must-not-leak");
    let server = stdio_server(
        "fixture",
        "stdio",
        json!({"env": {"GIVEN": "yes"}, "call_role": "read"}),
    );
    let mut app = spawn_app_with(with_tokens(bridge_config(vec![server]), "MCP_C").build()).await;
    wait_state(&app, "fixture", "ready").await;
    let (status, body, _) = call(&app, "env", json!({}), Some(READ)).await;
    assert_eq!(status, 200, "{body}");
    let env = body["result"]["structuredContent"]
        .as_object()
        .unwrap()
        .clone();
    let names: Vec<&String> = env.keys().collect();
    assert_eq!(env["GIVEN"], "yes");
    assert!(env.contains_key("PATH"), "{names:?}");
    assert!(env.contains_key("HALE_MCP_SERVER_OF"), "{names:?}");
    for (name, value) in &env {
        assert!(
            !name.starts_with("MCP_C_")
                && value != READ
                && value != OPERATE
                && value != "must-not-leak",
            "{name} reached the server: {names:?}"
        );
    }
    let allowed = ["PATH", "HOME", "LANG", "TZ", "GIVEN", "HALE_MCP_SERVER_OF"];
    assert!(
        names.iter().all(|n| allowed.contains(&n.as_str())),
        "{names:?}"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn a_broken_server_never_holds_up_the_others_and_health_names_it() {
    let good = stdio_server("good", "garbage", json!({}));
    let mute = stdio_server("mute", "mute", json!({"timeout_s": 1}));
    let missing = stdio_server("missing", "stdio", json!({}));
    let missing = McpServerConfig {
        transport: serde_json::from_value::<McpServerConfig>(
            json!({"name": "x", "command": ["/nonexistent/mcp-server"]}),
        )
        .unwrap()
        .transport,
        ..missing
    };
    let mut app = spawn_app_with(bridge_config(vec![good, mute, missing]).build()).await;
    // Lines that are not JSON-RPC on stdout are skipped: the server still connects.
    wait_state(&app, "good", "ready").await;
    let mute = wait_state(&app, "mute", "backing_off").await;
    assert!(
        mute["last_error"]
            .as_str()
            .unwrap()
            .contains("no answer to initialize within 1 s"),
        "{mute}"
    );
    assert_eq!(mute["stderr_tail"][0], "fixture: never answering");
    let missing = wait_state(&app, "missing", "backing_off").await;
    assert!(
        missing["last_error"]
            .as_str()
            .unwrap()
            .contains("cannot start"),
        "{missing}"
    );
    let (status, health) = app.get_json(McpBridge, "/health").await;
    assert_eq!(status, 200, "{health}");
    let not_ready = health["details"]["mcp_servers_not_ready"]
        .as_array()
        .unwrap()
        .clone();
    assert!(
        not_ready.contains(&json!("mute")) && not_ready.contains(&json!("missing")),
        "{health}"
    );
    assert!(!not_ready.contains(&json!("good")));
    app.shutdown().await;

    // Every configured server down: 503.
    let dead = stdio_server("dead", "mute", json!({"timeout_s": 1}));
    let mut app = spawn_app_with(bridge_config(vec![dead]).build()).await;
    wait_state(&app, "dead", "backing_off").await;
    let (status, health) = app.get_json(McpBridge, "/health").await;
    assert_eq!(status, 503, "{health}");
    assert_eq!(health["details"]["mcp_servers_not_ready"], json!(["dead"]));
    app.shutdown().await;
}

#[tokio::test]
async fn a_tool_whose_calls_keep_failing_has_its_breaker_opened() {
    let server = stdio_server(
        "fixture",
        "stdio",
        json!({"timeout_s": 1, "call_role": "read"}),
    );
    let config = bridge_config(vec![server]).with(|c: &mut Config| {
        c.breaker.failure_threshold = 2;
        c.breaker.open_timeout_s = 60;
    });
    let mut app = spawn_app_with(config.build()).await;
    wait_state(&app, "fixture", "ready").await;
    for _ in 0..2 {
        let (status, body, _) = call(&app, "slow", json!({"seconds": 10}), None).await;
        assert_eq!(status, 504, "{body}");
    }
    let (status, body, retry_after) = call(&app, "slow", json!({"seconds": 0}), None).await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("circuit breaker"),
        "{body}"
    );
    let retry_after: u64 = retry_after.expect("Retry-After").parse().unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    // Another tool of the same server has its own breaker.
    assert_eq!(
        call(&app, "echo", json!({"message": "x"}), None).await.0,
        200
    );
    app.shutdown().await;
}

#[tokio::test]
async fn kill_9_of_hale_leaves_no_mcp_server_running() {
    let marker = format!("hale-fixture-{}", std::process::id());
    let mut config = test_config_json();
    config["mcp_servers"] = json!([{
        "name": "fixture",
        "command": [fixture().display().to_string(), "stdio"],
        "env": {"FIXTURE_NAME": marker},
    }]);
    let mut hale = HaleProcess::serve(&config, &[]).await;
    let listening = hale.wait_listening(&[McpBridge]).await;
    let url = format!("http://{}/servers", listening[&McpBridge]);
    eventually("the fixture is ready", || async {
        let body: Value = client().get(&url).send().await.ok()?.json().await.ok()?;
        (body[0]["state"] == "ready" && body[0]["server_name"] == marker.as_str()).then_some(())
    })
    .await;
    let with_marker = || common::process::pids_with_env("FIXTURE_NAME", &marker);
    assert_eq!(with_marker().len(), 1, "one fixture runs");
    hale.signal("KILL");
    hale.wait_exit(DEADLINE).await;
    eventually("the fixture died with hale", || async {
        with_marker().is_empty().then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(with_marker().is_empty());
}

#[tokio::test]
async fn tool_calls_are_rate_limited_per_client_and_tool() {
    let server = stdio_server("fixture", "stdio", json!({"call_role": "read"}));
    let config = bridge_config(vec![server]).with(|c: &mut Config| {
        c.rate_limits.enabled = true;
        c.rate_limits.tool_call = hale::config::RateLimit {
            per_second: 1,
            burst: 2,
        };
    });
    let mut app = spawn_app_with(config.build()).await;
    wait_state(&app, "fixture", "ready").await;
    let args = json!({"message": "x"});
    assert_eq!(call(&app, "echo", args.clone(), None).await.0, 200);
    assert_eq!(call(&app, "echo", args.clone(), None).await.0, 200);
    let (status, body, retry_after) = call(&app, "echo", args.clone(), None).await;
    assert_eq!(status, 429, "{body}");
    let retry_after: u64 = retry_after.expect("Retry-After").parse().unwrap();
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    // Another tool has its own bucket, and so do the reads.
    assert_eq!(
        call(&app, "add", json!({"a": 1, "b": 2}), None).await.0,
        200
    );
    assert_eq!(app.get_json(McpBridge, "/tools").await.0, 200);
    app.shutdown().await;
}

#[tokio::test]
async fn a_changed_tool_list_is_listed_again() {
    let server = stdio_server("fixture", "stdio", json!({"call_role": "read"}));
    let mut app = spawn_app_with(bridge_config(vec![server]).build()).await;
    wait_state(&app, "fixture", "ready").await;
    let (status, body, _) = call(&app, "grow", json!({}), None).await;
    assert_eq!(status, 200, "{body}");
    let added = body["result"]["structuredContent"]["added"]
        .as_str()
        .unwrap()
        .to_owned();
    // The server said its list changed: the catalog has the new tool without a reconnect.
    eventually("the new tool in /tools", || async {
        let (_, tools) = app.get_json(McpBridge, "/tools").await;
        tools
            .as_array()?
            .iter()
            .any(|t| t["name"] == added.as_str())
            .then_some(())
    })
    .await;
    assert_eq!(call(&app, &added, json!({}), None).await.0, 200);
    let fixture = servers(&app).await.into_iter().next().unwrap();
    assert_eq!(fixture["tool_count"], 19);
    assert_eq!(fixture["reconnects"], 0);
    app.shutdown().await;
}

/// `GET /tools/calls` with a token, as JSON.
async fn stored_calls(app: &TestApp, query: &str, token: Option<&str>) -> (u16, Value) {
    let mut request = client().get(app.url(McpBridge, &format!("/tools/calls{query}")));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("GET /tools/calls");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn every_call_is_stored_without_its_arguments_unless_the_server_logs_them() {
    let plain = stdio_server("plain", "stdio", json!({"timeout_s": 1}));
    let logged = stdio_server("logged", "stdio", json!({"log_arguments": true}));
    let mut app =
        spawn_app_with(with_tokens(bridge_config(vec![plain, logged]), "MCP_C").build()).await;
    wait_state(&app, "plain", "ready").await;
    wait_state(&app, "logged", "ready").await;

    let secret = "the-argument-nobody-should-keep";
    let response = client()
        .post(app.url(McpBridge, "/tools/plain__echo"))
        .bearer_auth(OPERATE)
        .json(&json!({"message": secret}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let request_id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let outcomes = [
        ("plain__add", json!({"a": "one", "b": 2}), 422),
        ("plain__fail", json!({}), 200),
        ("plain__slow", json!({"seconds": 3}), 504),
        ("logged__echo", json!({"message": "kept on purpose"}), 200),
    ];
    for (tool, args, status) in &outcomes {
        let (got, body, _) = call(&app, tool, args.clone(), Some(OPERATE)).await;
        assert_eq!(got, *status, "{tool}: {body}");
    }
    // An unknown tool is no call: nothing is stored for it.
    assert_eq!(call(&app, "nope", json!({}), Some(OPERATE)).await.0, 404);

    let (status, calls) = eventually("five stored calls", || async {
        let (status, calls) = stored_calls(&app, "", Some(OPERATE)).await;
        (calls.as_array().map_or(0, Vec::len) == 5).then_some((status, calls))
    })
    .await;
    assert_eq!(status, 200, "{calls}");
    // Newest first.
    assert_eq!(
        strings(&calls, "tool"),
        [
            "logged__echo",
            "plain__slow",
            "plain__fail",
            "plain__add",
            "plain__echo"
        ]
    );
    let by_tool = |tool: &str| {
        calls
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["tool"] == tool)
            .unwrap()
    };
    let echo = by_tool("plain__echo");
    assert_eq!(echo["outcome"], "ok");
    assert_eq!(echo["server"], "plain");
    assert_eq!(echo["request_id"], request_id.as_str());
    assert_eq!(echo["role"], "operate");
    assert_eq!(
        echo["argument_bytes"],
        json!({"message": secret}).to_string().len()
    );
    assert!(echo["latency_ms"].as_f64().unwrap() > 0.0, "{echo}");
    assert_eq!(echo["arguments"], Value::Null);
    assert_eq!(by_tool("plain__add")["outcome"], "invalid");
    assert_eq!(
        by_tool("plain__add")["latency_ms"],
        Value::Null,
        "nothing was sent"
    );
    assert_eq!(by_tool("plain__fail")["outcome"], "tool_error");
    let slow = by_tool("plain__slow");
    assert_eq!(slow["outcome"], "timeout");
    assert!(
        slow["error"]
            .as_str()
            .unwrap()
            .contains("did not answer within 1 s"),
        "{slow}"
    );
    // `log_arguments`: the arguments and result are kept, and shown to operate only.
    let kept = by_tool("logged__echo");
    assert_eq!(kept["arguments"], r#"{"message":"kept on purpose"}"#);
    assert!(
        kept["result"]
            .as_str()
            .unwrap()
            .contains("Echo: kept on purpose"),
        "{kept}"
    );
    let (_, read_view) = stored_calls(&app, "?tool=logged__echo", Some(READ)).await;
    assert_eq!(read_view[0]["tool"], "logged__echo");
    assert_eq!(read_view[0]["arguments"], Value::Null, "{read_view}");
    assert_eq!(read_view[0]["result"], Value::Null, "{read_view}");

    // Filters and paging.
    let (_, plain) = stored_calls(&app, "?server=plain&limit=2", None).await;
    assert_eq!(strings(&plain, "tool"), ["plain__slow", "plain__fail"]);
    let last = plain[1]["id"].as_i64().unwrap();
    let (_, next) = stored_calls(&app, &format!("?server=plain&before={last}"), None).await;
    assert_eq!(strings(&next, "tool"), ["plain__add", "plain__echo"]);
    let (_, none) = stored_calls(&app, "?since=2999-01-01T00:00:00Z", None).await;
    assert_eq!(none, json!([]));
    for bad in ["?limit=0", "?before=x", "?since=yesterday", "?tool="] {
        let (status, body) = stored_calls(&app, bad, None).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }

    app.shutdown().await;
    // Counted on the file: every call once, and the argument that was not to be kept is nowhere.
    assert_eq!(count_rows(&app.db_path, "tool_calls", "1").await, 5);
    assert_eq!(
        count_rows(
            &app.db_path,
            "tool_calls",
            &format!("arguments LIKE '%{secret}%' OR result LIKE '%{secret}%' OR error LIKE '%{secret}%'")
        )
        .await,
        0
    );
    // The audit log counts the allowed calls per minute instead of a row each.
    let audited: i64 = count_rows(
        &app.db_path,
        "audit_log",
        "route = '/tools/{name}' AND outcome IN ('done', 'failed')",
    )
    .await;
    assert!((1..=4).contains(&audited), "{audited} audit rows");
}

/// Rows of `target` in `health_checks`, read with SQL from the database file while hale runs: (outcome,
/// error) per row, oldest first.
async fn stored_checks(app: &TestApp, target: &str) -> Vec<(String, Option<String>)> {
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&app.db_path)
        .read_only(true);
    let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
    let rows: Vec<(String, Option<String>)> = sqlx::query_as(
        "SELECT outcome, error FROM health_checks WHERE service = ? ORDER BY checked_at_ms, seq",
    )
    .bind(target)
    .fetch_all(&pool)
    .await
    .unwrap();
    pool.close().await;
    rows
}

#[tokio::test]
async fn an_mcp_server_is_a_target_whose_checks_are_stored_and_whose_heal_reconnects_it() {
    use hale::kind::ServiceKind::HealthProxy;

    let dir = tempfile::tempdir().unwrap();
    // While this file exists, the server started is one that never answers `initialize`.
    let down_flag = dir.path().join("down");
    let marker = format!("hale-target-fixture-{}", std::process::id());
    let script = format!(
        "if [ -e '{flag}' ]; then exec '{fixture}' mute; else exec '{fixture}' stdio; fi",
        flag = down_flag.display(),
        fixture = fixture().display()
    );
    let server: McpServerConfig = serde_json::from_value(json!({
        "name": "fixture",
        "command": ["sh", "-c", script],
        "env": {"FIXTURE_NAME": marker},
        "timeout_s": 1,
        "interval_s": 1,
    }))
    .unwrap();
    let mute = stdio_server("mute", "mute", json!({"timeout_s": 1, "interval_s": 1}));
    let config = with_tokens(bridge_config(vec![server, mute]), "MCP_T")
        .heal(|heal| {
            // Only the manual heal below acts.
            heal.enabled = false;
            heal.verify_timeout_s = 20;
            heal.verify_interval_ms = 100;
        })
        .flush_every_ms(50);
    let mut app = spawn_app_with(config.build()).await;
    wait_state(&app, "fixture", "ready").await;

    // Checked by ping on its interval: rows in health_checks, up.
    eventually("two stored checks of mcp:fixture that are up", || async {
        let rows = stored_checks(&app, "mcp:fixture").await;
        (rows.iter().filter(|(outcome, _)| outcome == "up").count() >= 2).then_some(rows)
    })
    .await;
    // A server that never connected fails its checks, saying why.
    let failed = eventually("a stored failed check of mcp:mute", || async {
        stored_checks(&app, "mcp:mute")
            .await
            .into_iter()
            .find(|(outcome, _)| outcome != "up")
    })
    .await;
    assert_eq!(failed.0, "down", "{failed:?}");
    let error = failed.1.unwrap_or_default();
    assert!(
        error.contains("MCP server \"mute\" is not connected"),
        "{error}"
    );

    // The targets are in /health/all, /services and /slo like any other.
    let (status, all) = app.get_json(HealthProxy, "/health/all").await;
    assert!(status == 200 || status == 503, "{all}");
    let target = all["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["service"] == "mcp:fixture")
        .unwrap_or_else(|| panic!("mcp:fixture missing from {all}"))
        .clone();
    assert_eq!(target["outcome"], "up", "{target}");
    let (status, services) = app.get_json(HealthProxy, "/services").await;
    assert_eq!(status, 200, "{services}");
    assert!(services.to_string().contains("mcp://fixture"), "{services}");
    let (status, slo) = app.get_json(HealthProxy, "/slo/mcp:fixture").await;
    assert_eq!(status, 200, "{slo}");
    assert_eq!(slo["target"], "mcp:fixture", "{slo}");
    let (status, all_slo) = app.get_json(HealthProxy, "/slo").await;
    assert_eq!(status, 200, "{all_slo}");
    assert!(
        all_slo
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["target"] == "mcp:fixture"),
        "{all_slo}"
    );

    // kill -9 of the server: it comes back as one that never answers, and its checks fail.
    std::fs::write(&down_flag, "").unwrap();
    let pids = common::process::pids_with_env("FIXTURE_NAME", &marker);
    assert_eq!(pids.len(), 1, "{pids:?}");
    let killed = std::process::Command::new("kill")
        .args(["-9", &pids[0].to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let before = stored_checks(&app, "mcp:fixture").await.len();
    let failed = eventually("a failed check of mcp:fixture after the kill", || async {
        stored_checks(&app, "mcp:fixture")
            .await
            .into_iter()
            .skip(before)
            .find(|(outcome, _)| outcome != "up")
    })
    .await;
    assert!(
        failed
            .1
            .as_deref()
            .is_some_and(|e| e.contains("MCP server \"fixture\" is not connected")),
        "{failed:?}"
    );

    // The heal is a reconnect: the server is started again (a working one now) and answers.
    std::fs::remove_file(&down_flag).unwrap();
    let response = app
        .request(reqwest::Method::POST, HealthProxy, "/heal/mcp:fixture")
        .bearer_auth(OPERATE)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let healed: Value = response.json().await.unwrap();
    assert_eq!(status, 200, "{healed}");
    assert_eq!(healed["target"], "mcp:fixture");
    assert_eq!(healed["action"], "reconnect");
    assert_eq!(healed["outcome"], "healed");
    let fixture = wait_state(&app, "fixture", "ready").await;
    assert!(fixture["reconnects"].as_u64() >= Some(1), "{fixture}");
    let new_pids = common::process::pids_with_env("FIXTURE_NAME", &marker);
    assert_eq!(new_pids.len(), 1, "{new_pids:?}");
    assert_ne!(new_pids, pids);

    // The heal is on record, as every heal is.
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&app.db_path)
        .read_only(true);
    let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
    let heals: Vec<(String, String, String)> =
        sqlx::query_as("SELECT target, action, outcome FROM heal_events ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap();
    pool.close().await;
    assert_eq!(
        heals,
        [(
            "mcp:fixture".to_owned(),
            "reconnect".to_owned(),
            "healed".to_owned()
        )]
    );
    app.shutdown().await;
}

#[test]
fn a_written_target_cannot_take_an_mcp_servers_name_and_the_made_ones_are_not_written_back() {
    let refused = Config::from_json(
        r#"{"services": [{"name": "mcp:x", "url": "http://127.0.0.1:9/"}]}"#,
        "c.json",
    )
    .unwrap_err()
    .to_string();
    assert!(
        refused.contains("$.services[0].name")
            && refused.contains("belongs to the target hale makes of an MCP server"),
        "{refused}"
    );
    let refused = Config::from_json(
        r#"{"services": [{"name": "x", "url": "mcp://x"}]}"#,
        "c.json",
    )
    .unwrap_err()
    .to_string();
    assert!(refused.contains("listing it in mcp_servers"), "{refused}");
    let refused = Config::from_json(
        r#"{"mcp_servers": [{"name": "mcp:x", "command": ["x"]}]}"#,
        "c.json",
    )
    .unwrap_err()
    .to_string();
    assert!(refused.contains("leave out the \"mcp:\""), "{refused}");

    let config = Config::from_json(
        r#"{"services": [], "mcp_servers": [{"name": "x", "command": ["x"], "timeout_s": 5, "interval_s": 10}]}"#,
        "c.json",
    )
    .unwrap();
    let names: Vec<&str> = config.services.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["mcp:x"]);
    assert_eq!(config.services[0].url.to_string(), "mcp://x");
    assert_eq!(config.services[0].interval_s, 10);
    assert_eq!(config.services[0].timeout_ms, 5_000);
    // Written back, the config has no target of its own, and reads back to the same config.
    let text = serde_json::to_string(&config).unwrap();
    assert!(!text.contains("mcp://"), "{text}");
    assert_eq!(Config::from_json(&text, "again.json").unwrap(), config);
    assert_eq!(config.clone().with_mcp_targets(), config);
}

#[tokio::test]
async fn a_server_without_ping_is_checked_by_listing_its_tools() {
    let log = tempfile::NamedTempFile::new().unwrap();
    let server = stdio_server(
        "noping",
        "stdio",
        json!({
            "env": {"FIXTURE_NO_PING": "1", "FIXTURE_LIST_LOG": log.path().display().to_string()},
            "interval_s": 1,
        }),
    );
    let config = bridge_config(vec![server]).flush_every_ms(50);
    let mut app = spawn_app_with(config.build()).await;
    wait_state(&app, "noping", "ready").await;
    // The connection listed every page once (5 pages of 4); each check after that asks for a first page.
    eventually("two checks of mcp:noping, up, by tools/list", || async {
        let rows = stored_checks(&app, "mcp:noping").await;
        let firsts = std::fs::read_to_string(log.path())
            .unwrap()
            .lines()
            .filter(|l| *l == "list first")
            .count();
        (rows.iter().filter(|(outcome, _)| outcome == "up").count() >= 2 && firsts >= 3)
            .then_some(())
    })
    .await;
    let rows = stored_checks(&app, "mcp:noping").await;
    assert!(rows.iter().all(|(outcome, _)| outcome == "up"), "{rows:?}");
    app.shutdown().await;
}

#[tokio::test]
async fn a_hale_without_the_bridge_does_not_watch_the_mcp_servers() {
    let server = stdio_server("fixture", "stdio", json!({}));
    let mut config = bridge_config(vec![server]).build();
    config.services = serde_json::from_value(json!([
        {"name": "web", "url": format!("tcp://127.0.0.1:{}", common::dead_port()), "interval_s": 1}
    ]))
    .unwrap();
    let mut app = spawn_app_only(config, Some(hale::kind::ServiceKind::HealthProxy)).await;
    let (status, services) = app
        .get_json(hale::kind::ServiceKind::HealthProxy, "/services")
        .await;
    assert_eq!(status, 200, "{services}");
    assert_eq!(strings(&services, "name"), ["web"], "{services}");
    app.shutdown().await;
    assert_eq!(
        count_rows(&app.db_path, "health_checks", "service LIKE 'mcp:%'").await,
        0
    );
}

#[tokio::test]
async fn a_hung_mcp_server_is_healed_automatically_by_a_reconnect() {
    // Each start of the server answers 3 pings, then hangs: its checks time out until auto-heal reconnects,
    // which starts it again.
    let server = stdio_server(
        "hangs",
        "stdio",
        json!({"env": {"FIXTURE_HANG_AFTER_PINGS": "3"}, "timeout_s": 1, "interval_s": 1}),
    );
    let config = bridge_config(vec![server])
        .heal(|heal| {
            heal.enabled = true;
            heal.after_failures = 2;
            heal.cooldown_s = 1;
            heal.verify_timeout_s = 20;
            heal.verify_interval_ms = 100;
        })
        .flush_every_ms(50);
    let mut app = spawn_app_with(config.build()).await;
    wait_state(&app, "hangs", "ready").await;
    let healed = "target = 'mcp:hangs' AND action = 'reconnect' AND trigger = 'automatic' AND outcome = 'healed'";
    eventually("an automatic reconnect that healed mcp:hangs", || async {
        (count_rows(&app.db_path, "heal_events", healed).await >= 1).then_some(())
    })
    .await;
    let checks = stored_checks(&app, "mcp:hangs").await;
    let timeouts = checks.iter().filter(|(o, _)| o == "timeout").count();
    assert!(
        timeouts >= 2,
        "the hung server's pings timed out: {checks:?}"
    );
    let reconnected = wait_state(&app, "hangs", "ready").await;
    assert!(
        reconnected["reconnects"].as_u64().unwrap() >= 1,
        "{reconnected}"
    );
    app.shutdown().await;
}
