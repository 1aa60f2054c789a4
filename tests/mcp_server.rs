//! hale as an MCP server: every tool answers what its route answers (and the SLO report what `hale slo
//! report` prints), over `/mcp` and over `hale mcp` (stdio), with rmcp's client and with the MCP
//! Inspector's CLI; `heal` needs the operate role on each call; a bad argument is an error that names it.

// The shared helpers in `common` unwrap outside `#[test]` functions.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;

use hale::auth::Role;
use hale::kind::ServiceKind::{HealthProxy, McpBridge};
use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::RunningService;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::{RoleClient, ServiceExt};
use serde_json::{json, Value};

use common::app::{spawn_app_with, TestApp};
use common::config::{target, TestConfig};
use common::process::{exit_code, hale_bin, run_hale};
use common::DEADLINE;

const READ: &str = "mcp-server-read-token-0123456789";
const OPERATE: &str = "mcp-server-operate-token-0123456789";

type Client = RunningService<RoleClient, ()>;

/// hale with one TCP target (`api`, up: the test holds its listener open, checked every 60 s so the
/// answers stay still between a route and its tool), healable by `true`, and read and operate tokens.
struct Setup {
    app: TestApp,
    config_path: PathBuf,
    _listener: std::net::TcpListener,
}

async fn start() -> Setup {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the target");
    let addr = listener.local_addr().expect("the target's address");
    let api = target("api", &format!("tcp://{addr}"))
        .interval_s(60)
        .heal_command(&["true"]);
    let config = TestConfig::new()
        .target(api)
        .heal_verify(5, 100)
        .flush_every_ms(10)
        .token(Role::Read, "MCP_SERVER_TEST_READ", READ)
        .token(Role::Operate, "MCP_SERVER_TEST_OPERATE", OPERATE);
    let app = spawn_app_with(config.clone().build()).await;
    let config_path = config.write(app.dir.path());
    // One check now (stored: the first on-demand check of an interval is), before any comparison.
    let (status, _) = app.get_json(HealthProxy, "/health/all").await;
    assert_eq!(status, 200, "api is up");
    common::eventually("the first stored check of api", || async {
        let (_, page) = app
            .get_json(HealthProxy, "/health/history?service=api")
            .await;
        (page["items"]
            .as_array()
            .is_some_and(|items| !items.is_empty()))
        .then_some(())
    })
    .await;
    Setup {
        app,
        config_path,
        _listener: listener,
    }
}

async fn http_client(app: &TestApp, token: Option<&str>) -> Client {
    let mut config = StreamableHttpClientTransportConfig::with_uri(app.url(McpBridge, "/mcp"));
    if let Some(token) = token {
        config = config.auth_header(token.to_owned());
    }
    ().serve(StreamableHttpClientTransport::from_config(config))
        .await
        .expect("connect to /mcp")
}

/// `hale mcp --url <this hale's /mcp>` as a child, with `token` in `HALE_TOKEN`, and a client on its stdio.
async fn stdio_client(app: &TestApp, token: Option<&str>) -> (Client, tokio::process::Child) {
    let mut command = tokio::process::Command::new(hale_bin());
    command
        .args(["mcp", "--url", &app.url(McpBridge, "/mcp")])
        .current_dir(app.dir.path())
        .env_remove("HALE_CONFIG")
        .env_remove("HALE_TOKEN")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    if let Some(token) = token {
        command.env("HALE_TOKEN", token);
    }
    let mut child = command.spawn().expect("start hale mcp");
    let stdout = child.stdout.take().expect("hale mcp's stdout");
    let stdin = child.stdin.take().expect("hale mcp's stdin");
    let client = ().serve((stdout, stdin)).await.expect("initialize over hale mcp's stdio");
    (client, child)
}

async fn call(client: &Client, tool: &str, args: Value) -> Result<CallToolResult, String> {
    let Value::Object(args) = args else {
        panic!("arguments are an object")
    };
    client
        .peer()
        .call_tool(CallToolRequestParams::new(tool.to_owned()).with_arguments(args))
        .await
        .map_err(|e| e.to_string())
}

/// A tool's structured content, after checking it has a text item too.
async fn structured(client: &Client, tool: &str, args: Value) -> Value {
    let result = call(client, tool, args.clone())
        .await
        .unwrap_or_else(|e| panic!("{tool} {args}: {e}"));
    assert!(
        !result.content.is_empty(),
        "{tool}: a result carries a text item"
    );
    result
        .structured_content
        .unwrap_or_else(|| panic!("{tool}: no structured content"))
}

/// Without the fields that change from one moment to the next.
fn still(mut value: Value, volatile: &[&str]) -> Value {
    fn strip(value: &mut Value, volatile: &[&str]) {
        match value {
            Value::Object(map) => {
                for key in volatile {
                    map.remove(*key);
                }
                map.values_mut().for_each(|v| strip(v, volatile));
            }
            Value::Array(items) => items.iter_mut().for_each(|v| strip(v, volatile)),
            _ => {}
        }
    }
    strip(&mut value, volatile);
    value
}

/// Every number as a float: a client in JavaScript (the Inspector) writes `0.0` as `0`.
fn numbers_as_floats(value: Value) -> Value {
    match value {
        Value::Number(n) => json!(n.as_f64()),
        Value::Array(items) => Value::Array(items.into_iter().map(numbers_as_floats).collect()),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k, numbers_as_floats(v)))
                .collect(),
        ),
        other => other,
    }
}

/// Asks the route and the tool until they agree (a background check may land between the two), and fails
/// with both answers when they never do.
async fn agree<R, T>(what: &str, mut route: R, mut tool: T)
where
    R: AsyncFnMut() -> Value,
    T: AsyncFnMut() -> Value,
{
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let from_route = numbers_as_floats(route().await);
        let from_tool = numbers_as_floats(tool().await);
        if from_route == from_tool {
            return;
        }
        if tokio::time::Instant::now() > deadline {
            assert_eq!(
                from_tool, from_route,
                "{what}: the tool and its route disagree"
            );
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// `hale slo report --format json` on this hale's database and config.
async fn cli_report(setup: &Setup) -> Value {
    let db = setup.app.db_path.display().to_string();
    let config = setup.config_path.display().to_string();
    let output = run_hale(
        setup.app.dir.path(),
        &[
            "slo", "report", "--format", "json", "--db", &db, "--config", &config,
        ],
    )
    .await;
    let code = exit_code(output.status);
    assert!(
        [0, 1, 3].contains(&code),
        "hale slo report failed ({code}): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("the report is JSON")
}

/// Every read tool against its route on the same hale, then the report against the command line's.
async fn every_tool_answers_as_its_route(setup: &Setup, client: &Client) {
    let app = &setup.app;
    let tools = client.peer().list_all_tools().await.expect("tools/list");
    let mut names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "active_alerts",
            "heal",
            "heal_events",
            "health_all",
            "health_history",
            "slo",
            "slo_report",
            "slo_target"
        ]
    );
    for tool in &tools {
        assert!(
            tool.output_schema.is_some(),
            "{}: no output schema",
            tool.name
        );
        assert_eq!(tool.input_schema["type"], "object", "{}", tool.name);
    }

    agree(
        "health_history",
        async || {
            app.get_json(HealthProxy, "/health/history?service=api&limit=5")
                .await
                .1
        },
        async || {
            structured(
                client,
                "health_history",
                json!({"service": "api", "limit": 5}),
            )
            .await
        },
    )
    .await;
    agree(
        "slo",
        async || {
            let (_, targets) = app.get_json(HealthProxy, "/slo").await;
            let total = targets.as_array().map_or(0, Vec::len);
            json!({"targets": targets, "total": total})
        },
        async || structured(client, "slo", json!({})).await,
    )
    .await;
    agree(
        "slo_target",
        async || app.get_json(HealthProxy, "/slo/api").await.1,
        async || structured(client, "slo_target", json!({"service": "api"})).await,
    )
    .await;
    agree(
        "heal_events",
        async || json!({"events": app.get_json(HealthProxy, "/heal/events").await.1}),
        async || structured(client, "heal_events", json!({})).await,
    )
    .await;
    agree(
        "active_alerts",
        async || json!({"alerts": app.get_json(HealthProxy, "/alerts/active").await.1}),
        async || structured(client, "active_alerts", json!({})).await,
    )
    .await;
    // Each asks for a check now: the moment, the latency and whether it was reused differ.
    let volatile = ["timestamp", "checked_at", "latency_ms", "cached", "shared"];
    agree(
        "health_all",
        async || still(app.get_json(HealthProxy, "/health/all").await.1, &volatile),
        async || still(structured(client, "health_all", json!({})).await, &volatile),
    )
    .await;
    agree(
        "slo_report",
        async || still(cli_report(setup).await, &["generated_at"]),
        async || {
            let report = structured(client, "slo_report", json!({"format": "json"})).await;
            still(report, &["generated_at"])
        },
    )
    .await;
    let markdown = call(client, "slo_report", json!({}))
        .await
        .expect("the report");
    let text = serde_json::to_value(&markdown.content).expect("content")[0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        text.contains("api") && !text.trim_start().starts_with('{'),
        "the default report is Markdown: {text}"
    );
}

/// Bad arguments are MCP errors that name the argument.
async fn bad_arguments_are_named(client: &Client) {
    let cases = [
        ("health_history", json!({"limit": 0}), "limit: "),
        ("health_history", json!({"limt": 5}), "limt: "),
        ("health_history", json!({"since": "yesterday"}), "since: "),
        ("slo_target", json!({}), "service: missing"),
        (
            "slo_target",
            json!({"service": "nope"}),
            "no target named \"nope\"",
        ),
        ("slo_report", json!({"format": "pdf"}), "format: "),
        ("heal_events", json!({"limit": [1]}), "limit: must be"),
        ("no_such_tool", json!({}), "no tool named \"no_such_tool\""),
    ];
    for (tool, args, expected) in cases {
        let error = call(client, tool, args.clone())
            .await
            .expect_err(&format!("{tool} {args} is refused"));
        assert!(
            error.contains(expected),
            "{tool} {args}: {error:?} should say {expected:?}"
        );
    }
}

async fn heal_answer(client: &Client) -> Result<Value, String> {
    call(client, "heal", json!({"target": "api"}))
        .await
        .map(|r| r.structured_content.unwrap_or(Value::Null))
}

/// Refused without a token and with a read one; done with an operate one, and stored as the route's are.
async fn heal_needs_operate(app: &TestApp, open: &Client, read: &Client, operate: &Client) {
    let refused = heal_answer(open).await.expect_err("heal without a token");
    assert!(refused.contains("needs the operate role"), "{refused}");
    let refused = heal_answer(read).await.expect_err("heal with a read token");
    assert!(
        refused.contains("needs the operate role") && refused.contains("grants read"),
        "{refused}"
    );
    let healed = heal_answer(operate)
        .await
        .expect("heal with an operate token");
    assert_eq!(healed["outcome"], "healed", "{healed}");
    assert_eq!(healed["target"], "api");
    // Stored as `POST /heal/{target}` stores its heals (times kept to the millisecond).
    let (_, events) = app.get_json(HealthProxy, "/heal/events?target=api").await;
    let same = |e: &&Value| {
        ["id", "target", "trigger", "action", "outcome"]
            .iter()
            .all(|k| e[*k] == healed[*k])
    };
    assert!(
        events
            .as_array()
            .is_some_and(|e| e.iter().any(|e| same(&e))),
        "the tool's heal is a stored one: {healed} not in {events}"
    );
    assert_eq!(healed["trigger"], "manual");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_http_each_tool_answers_as_its_route_and_heal_needs_operate() {
    let setup = start().await;
    let app = &setup.app;
    let client = http_client(app, Some(READ)).await;
    every_tool_answers_as_its_route(&setup, &client).await;
    bad_arguments_are_named(&client).await;
    let open = http_client(app, None).await;
    let operate = http_client(app, Some(OPERATE)).await;
    heal_needs_operate(app, &open, &client, &operate).await;
    // No stream of its own: a GET is 405.
    let get = app.get(McpBridge, "/mcp").await;
    assert_eq!(get.status().as_u16(), 405);
    // On loopback, a Host that is not a loopback name is refused (DNS rebinding).
    let rebound = app
        .request(reqwest::Method::POST, McpBridge, "/mcp")
        .header("host", "evil.example")
        .header("accept", "application/json, text/event-stream")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
        .send()
        .await
        .expect("POST /mcp");
    assert_eq!(rebound.status().as_u16(), 403);
    // A token that is not one is refused before any MCP message.
    let mut config = StreamableHttpClientTransportConfig::with_uri(app.url(McpBridge, "/mcp"));
    config = config.auth_header("not-a-token-of-this-hale".to_owned());
    let refused = ().serve(StreamableHttpClientTransport::from_config(config)).await;
    assert!(refused.is_err(), "an unknown token is refused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_stdio_each_tool_answers_as_its_route_and_heal_needs_operate() {
    let setup = start().await;
    let app = &setup.app;
    let (client, _child) = stdio_client(app, Some(READ)).await;
    every_tool_answers_as_its_route(&setup, &client).await;
    bad_arguments_are_named(&client).await;
    let (open, _open_child) = stdio_client(app, None).await;
    let (operate, _operate_child) = stdio_client(app, Some(OPERATE)).await;
    heal_needs_operate(app, &open, &client, &operate).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_health_proxy_its_tools_say_so_and_the_stored_answers_still_come() {
    let app = common::app::spawn_app_only(TestConfig::new().build(), Some(McpBridge)).await;
    let client = http_client(&app, None).await;
    let error = call(&client, "health_all", json!({}))
        .await
        .expect_err("no monitor in this process");
    assert!(
        error.contains("the Health Proxy does not run in this hale process"),
        "{error}"
    );
    let events = structured(&client, "heal_events", json!({})).await;
    assert_eq!(events, json!({"events": []}));
}

#[tokio::test]
async fn hale_mcp_says_on_stderr_when_hale_cannot_be_reached() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("http://127.0.0.1:{}/mcp", common::dead_port());
    let output = run_hale(dir.path(), &["mcp", "--url", &url]).await;
    assert_eq!(exit_code(output.status), 1);
    assert!(output.stdout.is_empty(), "stdout is the protocol's alone");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cannot reach hale's MCP server at") && stderr.contains(&url),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hale_mcp_with_a_token_hale_does_not_accept_says_so() {
    let setup = start().await;
    let url = setup.app.url(McpBridge, "/mcp");
    let mut command = common::process::hale_command(setup.app.dir.path());
    command
        .args(["mcp", "--url", &url])
        .env("HALE_TOKEN", "not-a-token-of-this-hale-0123456789")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let output = tokio::time::timeout(DEADLINE, command.output())
        .await
        .expect("hale mcp exits")
        .expect("run hale mcp");
    assert_eq!(exit_code(output.status), 1);
    assert!(output.stdout.is_empty(), "stdout is the protocol's alone");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cannot reach hale's MCP server at") && stderr.contains("HALE_TOKEN"),
        "{stderr}"
    );
}

/// The MCP Inspector's CLI, installed by scripts/test into tests/node (fails, never skips, without it).
fn inspector() -> PathBuf {
    let path = common::repo().join("tests/node/node_modules/.bin/mcp-inspector");
    assert!(
        path.exists(),
        "{} is missing: run scripts/test (or `npm ci --prefix tests/node`) to install the MCP Inspector",
        path.display()
    );
    path
}

/// `mcp-inspector --cli ARGS`, its stdout as JSON.
async fn run_inspector(dir: &Path, args: &[&str]) -> Value {
    let mut command = tokio::process::Command::new(inspector());
    command
        .arg("--cli")
        .args(args)
        .current_dir(dir)
        .env("MCP_CATALOG_PATH", dir.join("inspector-catalog.json"))
        .env("HOME", dir)
        .env_remove("HALE_TOKEN")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let output = tokio::time::timeout(DEADLINE * 2, command.output())
        .await
        .unwrap_or_else(|_| panic!("mcp-inspector {args:?} did not finish"))
        .expect("run mcp-inspector");
    assert!(
        output.status.success(),
        "mcp-inspector {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "mcp-inspector {args:?} printed no JSON ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

fn tool_names(listed: &Value) -> Vec<String> {
    let mut names: Vec<String> = listed["tools"]
        .as_array()
        .map(|tools| {
            tools
                .iter()
                .filter_map(|t| t["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    names.sort_unstable();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_inspector_lists_and_calls_hales_tools_over_http_and_stdio() {
    let setup = start().await;
    let app = &setup.app;
    let dir = app.dir.path();
    let url = app.url(McpBridge, "/mcp");
    let bearer = format!("Authorization: Bearer {READ}");
    let over_http = [
        "--transport",
        "http",
        "--server-url",
        &url,
        "--header",
        &bearer,
    ];
    let hale = hale_bin();
    let over_stdio = [hale, "mcp", "--url", &url];

    let listed = run_inspector(dir, &[&over_http[..], &["--method", "tools/list"]].concat()).await;
    assert_eq!(tool_names(&listed).len(), 8, "{listed}");
    assert!(tool_names(&listed).contains(&"slo_report".to_owned()));
    let listed_stdio = run_inspector(
        dir,
        &[&over_stdio[..], &["--method", "tools/list"]].concat(),
    )
    .await;
    assert_eq!(tool_names(&listed_stdio), tool_names(&listed));

    let history = [
        "--method",
        "tools/call",
        "--tool-name",
        "health_history",
        "--tool-arg",
        "service=api",
        "limit=5",
    ];
    for transport in [&over_http[..], &over_stdio[..]] {
        agree(
            "health_history through the inspector",
            async || {
                app.get_json(HealthProxy, "/health/history?service=api&limit=5")
                    .await
                    .1
            },
            async || {
                run_inspector(dir, &[transport, &history[..]].concat()).await["structuredContent"]
                    .clone()
            },
        )
        .await;
        agree(
            "slo_target through the inspector",
            async || app.get_json(HealthProxy, "/slo/api").await.1,
            async || {
                let args = [
                    "--method",
                    "tools/call",
                    "--tool-name",
                    "slo_target",
                    "--tool-arg",
                    "service=api",
                ];
                run_inspector(dir, &[transport, &args[..]].concat()).await["structuredContent"]
                    .clone()
            },
        )
        .await;
    }
}
