//! The MCP WebBridge against third-party MCP servers, pinned and installed by `scripts/test`:
//! `@modelcontextprotocol/server-everything` (npm, in `tests/node/`) over stdio and streamable HTTP, and
//! `mcp-server-time` (PyPI) over stdio. hale lists their tools, calls deterministic ones and gets their exact
//! answers, and watches each server as its target `mcp:<name>`. A peer that is not installed fails the test.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::PathBuf;
use std::process::Stdio;

use hale::config::{Config, McpServerConfig};
use hale::kind::ServiceKind::{HealthProxy, McpBridge};
use serde_json::{json, Value};
use tokio::io::AsyncBufReadExt;

use common::app::{client, spawn_app_with, TestApp};
use common::config::TestConfig;
use common::db::count_rows;
use common::{eventually, repo, DEADLINE};

/// server-everything's entry point, as `npm ci` in `tests/node/` installs it.
fn everything() -> PathBuf {
    let path = repo()
        .join("tests/node/node_modules/@modelcontextprotocol/server-everything/dist/index.js");
    assert!(
        path.is_file(),
        "{} is missing: install the test peers with scripts/test (npm ci in tests/node)",
        path.display()
    );
    path
}

/// The Python interpreter that has `mcp-server-time` (its real path: a stdio server gets a minimal
/// environment, in which a version manager's shim may not find its interpreter).
fn python_with_time_server() -> String {
    let out = std::process::Command::new("python3")
        .args(["-c", "import sys, mcp_server_time; print(sys.executable)"])
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "mcp-server-time is not installed for python3 (scripts/test installs it): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// server-everything serving streamable HTTP on a free loopback port, killed when dropped.
struct EverythingHttp {
    child: tokio::process::Child,
    url: String,
}

impl EverythingHttp {
    async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = tokio::process::Command::new("node")
            .arg(everything())
            .arg("streamableHttp")
            .env("PORT", port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start server-everything with node");
        let stderr = child.stderr.take().unwrap();
        let mut lines = tokio::io::BufReader::new(stderr).lines();
        tokio::time::timeout(DEADLINE, async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if line.contains("listening on port") {
                    return;
                }
            }
            panic!("server-everything exited before it listened");
        })
        .await
        .expect("server-everything listens");
        // Keep reading its stderr, so it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Self {
            child,
            url: format!("http://127.0.0.1:{port}/mcp"),
        }
    }
}

impl Drop for EverythingHttp {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

fn server(config: Value) -> McpServerConfig {
    serde_json::from_value(config).expect("a valid MCP server")
}

async fn servers(app: &TestApp) -> Vec<Value> {
    let (status, body) = app.get_json(McpBridge, "/servers").await;
    assert_eq!(status, 200, "{body}");
    body.as_array().cloned().expect("an array")
}

async fn call(app: &TestApp, tool: &str, args: Value) -> Value {
    let response = client()
        .post(app.url(McpBridge, &format!("/tools/{tool}")))
        .json(&args)
        .send()
        .await
        .expect("POST /tools");
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    assert_eq!(status, 200, "{tool}: {body}");
    assert_eq!(body["is_error"], false, "{tool}: {body}");
    body
}

/// The tools server-everything registers for every client (the rest need client capabilities hale's
/// bridge does not offer: roots, sampling, elicitation).
const EVERYTHING_TOOLS: [&str; 12] = [
    "echo",
    "get-annotated-message",
    "get-env",
    "get-resource-links",
    "get-resource-reference",
    "get-structured-content",
    "get-sum",
    "get-tiny-image",
    "gzip-file-as-resource",
    "toggle-simulated-logging",
    "toggle-subscriber-updates",
    "trigger-long-running-operation",
];

#[tokio::test]
async fn server_everything_and_mcp_server_time_are_bridged_and_watched() {
    let http = EverythingHttp::start().await;
    let servers_config = vec![
        server(json!({
            "name": "everything",
            "command": ["node", everything().display().to_string(), "stdio"],
            "timeout_s": 20, "interval_s": 1, "call_role": "read",
        })),
        server(json!({
            "name": "everything-http",
            "url": http.url,
            "timeout_s": 20, "interval_s": 1, "call_role": "read",
        })),
        server(json!({
            "name": "time",
            "command": [python_with_time_server(), "-m", "mcp_server_time", "--local-timezone", "UTC"],
            "timeout_s": 20, "interval_s": 1, "call_role": "read",
        })),
    ];
    let config = TestConfig::new()
        .with(move |c: &mut Config| c.mcp_servers = servers_config)
        .flush_every_ms(50);
    let mut app = spawn_app_with(config.build()).await;
    for name in ["everything", "everything-http", "time"] {
        let ready = eventually(&format!("MCP server {name} ready"), || async {
            servers(&app)
                .await
                .into_iter()
                .find(|s| s["name"] == name && s["state"] == "ready")
        })
        .await;
        assert!(
            ready["protocol_version"]
                .as_str()
                .is_some_and(|v| !v.is_empty()),
            "{ready}"
        );
    }

    // Every tool of each server is listed (the bridge follows tools/list cursors). The two everything servers
    // share every name, so theirs carry the server's name; time's are bare.
    let (status, tools) = app.get_json(McpBridge, "/tools").await;
    assert_eq!(status, 200, "{tools}");
    let names: Vec<String> = tools
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["name"].as_str().map(str::to_owned))
        .collect();
    for server in ["everything", "everything-http"] {
        for tool in EVERYTHING_TOOLS {
            let name = format!("{server}__{tool}");
            assert!(names.contains(&name), "{name} missing from {names:?}");
        }
    }
    assert!(
        names.contains(&"convert_time".to_owned())
            && names.contains(&"get_current_time".to_owned()),
        "{names:?}"
    );
    for view in servers(&app).await {
        let listed = names
            .iter()
            .filter(|n| {
                n.starts_with(&format!("{}__", view["name"].as_str().unwrap()))
                    || (view["name"] == "time" && !n.contains("__"))
            })
            .count();
        assert_eq!(view["tool_count"].as_u64(), Some(listed as u64), "{view}");
    }

    // Deterministic tools answer exactly, over stdio and streamable HTTP.
    for server in ["everything", "everything-http"] {
        let echoed = call(
            &app,
            &format!("{server}__echo"),
            json!({"message": "hale says hi"}),
        )
        .await;
        assert_eq!(echoed["server"], server);
        assert_eq!(
            echoed["result"]["content"],
            json!([{"type": "text", "text": "Echo: hale says hi"}])
        );
        let sum = call(
            &app,
            &format!("{server}__get-sum"),
            json!({"a": 2, "b": 40}),
        )
        .await;
        assert_eq!(
            sum["result"]["content"][0]["text"],
            "The sum of 2 and 40 is 42."
        );
    }
    // UTC to Asia/Kolkata (no daylight saving time): 09:00 is 14:30, five and a half hours later.
    let converted = call(
        &app,
        "convert_time",
        json!({"source_timezone": "UTC", "time": "09:00", "target_timezone": "Asia/Kolkata"}),
    )
    .await;
    let result = &converted["result"]["structuredContent"];
    assert_eq!(result["source"]["timezone"], "UTC", "{converted}");
    assert_eq!(result["target"]["timezone"], "Asia/Kolkata", "{converted}");
    assert_eq!(result["time_difference"], "+5.5h", "{converted}");
    assert_eq!(result["target"]["is_dst"], false, "{converted}");
    assert!(
        result["source"]["datetime"]
            .as_str()
            .unwrap()
            .ends_with("T09:00:00+00:00"),
        "{converted}"
    );
    assert!(
        result["target"]["datetime"]
            .as_str()
            .unwrap()
            .ends_with("T14:30:00+05:30"),
        "{converted}"
    );

    // Each real peer is a target that is up: checked by ping, stored, and in /health/all.
    for target in ["mcp:everything", "mcp:everything-http", "mcp:time"] {
        eventually(&format!("{target} up in /health/all"), || async {
            let (_, all) = app.get_json(HealthProxy, "/health/all").await;
            all["targets"]
                .as_array()?
                .iter()
                .find(|t| t["service"] == target && t["outcome"] == "up")
                .cloned()
        })
        .await;
        let stored = eventually(
            &format!("a stored check of {target} that is up"),
            || async {
                let condition = format!("service = '{target}' AND outcome = 'up'");
                let up = count_rows(&app.db_path, "health_checks", &condition).await;
                (up > 0).then_some(up)
            },
        )
        .await;
        assert!(stored > 0);
    }
    app.shutdown().await;
}
