//! A small MCP server with exact, deterministic tools, for hale's tests and benchmarks of the MCP WebBridge.
//!
//! ```text
//! mcp_fixture stdio            serve on stdin/stdout
//! mcp_fixture garbage          print lines that are not JSON-RPC on stdout, then serve on stdio
//! mcp_fixture mute             read stdin and never answer (not even `initialize`)
//! mcp_fixture http [ADDR]      serve streamable HTTP at http://ADDR/mcp (default 127.0.0.1:0); prints the
//!                              bound address as the first line on stdout
//! ```
//!
//! Tools: `echo`, `add`, `slow` (waits; a cancelled call is appended to `$FIXTURE_CANCEL_LOG`), `big` (a
//! result of N bytes), `env` (its own environment), `fail` (`isError: true`), `crash` (exits at once), `grow`
//! (adds a tool and sends `notifications/tools/list_changed`) and `filler_0`..`filler_9`. `tools/list` answers in pages of `$FIXTURE_PAGE_SIZE` (default 4). The server's
//! name is `$FIXTURE_NAME` (default `hale-fixture`). With `$FIXTURE_NO_PING` set it answers `ping` with
//! "method not found", and with `$FIXTURE_LIST_LOG` set it appends a line per `tools/list` request to that file.
//! With `$FIXTURE_HANG_AFTER_PINGS=N` it answers N pings, then never answers another (a hung server).

use std::sync::Arc;
use std::time::Duration;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock as Content,
    ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler, ServiceExt};
use serde_json::{json, Value};

#[derive(Clone)]
struct Fixture {
    tools: Arc<std::sync::Mutex<Vec<Tool>>>,
    page_size: usize,
    name: String,
    no_ping: bool,
    /// Pings answered before the server hangs, when set.
    hang_after_pings: Option<u64>,
    pings: Arc<std::sync::atomic::AtomicU64>,
}

fn tool(name: &str, description: &str, schema: Value) -> Tool {
    let Value::Object(schema) = schema else {
        unreachable!("every schema below is an object")
    };
    Tool::new(name.to_owned(), description.to_owned(), Arc::new(schema))
}

impl Fixture {
    fn new() -> Self {
        let mut tools = vec![
            tool(
                "echo",
                "Echoes its message back",
                json!({"type": "object", "properties": {"message": {"type": "string"}}, "required": ["message"]}),
            ),
            tool(
                "add",
                "Adds two numbers",
                json!({"type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "number"}}, "required": ["a", "b"]}),
            ),
            tool(
                "slow",
                "Answers after `seconds`",
                json!({"type": "object", "properties": {"seconds": {"type": "number", "minimum": 0}}, "required": ["seconds"]}),
            ),
            tool(
                "big",
                "Returns a text of `bytes` bytes",
                json!({"type": "object", "properties": {"bytes": {"type": "integer", "minimum": 0}}, "required": ["bytes"]}),
            ),
            tool(
                "env",
                "Returns its own environment",
                json!({"type": "object"}),
            ),
            tool(
                "fail",
                "Always reports a failure",
                json!({"type": "object"}),
            ),
            tool(
                "crash",
                "Exits the server at once",
                json!({"type": "object"}),
            ),
            tool(
                "grow",
                "Adds a tool `grown_N` and says the tool list changed",
                json!({"type": "object"}),
            ),
        ];
        for i in 0..10 {
            tools.push(tool(
                &format!("filler_{i}"),
                "Does nothing",
                json!({"type": "object"}),
            ));
        }
        Self {
            tools: Arc::new(std::sync::Mutex::new(tools)),
            page_size: std::env::var("FIXTURE_PAGE_SIZE")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(4),
            name: std::env::var("FIXTURE_NAME").unwrap_or_else(|_| "hale-fixture".to_owned()),
            no_ping: std::env::var_os("FIXTURE_NO_PING").is_some(),
            hang_after_pings: std::env::var("FIXTURE_HANG_AFTER_PINGS")
                .ok()
                .and_then(|v| v.parse().ok()),
            pings: Arc::new(std::sync::atomic::AtomicU64::new(0)),
        }
    }
}

fn text_result(text: String, structured: Value) -> CallToolResult {
    let mut result = CallToolResult::success(vec![Content::text(text)]);
    result.structured_content = Some(structured);
    result
}

impl ServerHandler for Fixture {
    fn get_info(&self) -> ServerConfig {
        let mut config = ServerConfig::new(ServerCapabilities::builder().enable_tools().build());
        config.server_info = rmcp::model::Implementation::new(self.name.clone(), "1.0.0");
        config
    }

    async fn ping(&self, _context: RequestContext<RoleServer>) -> Result<(), McpError> {
        let answered = self.pings.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if self.hang_after_pings.is_some_and(|n| answered >= n) {
            std::future::pending::<()>().await;
        }
        if self.no_ping {
            return Err(McpError::new(
                rmcp::model::ErrorCode::METHOD_NOT_FOUND,
                "ping",
                None,
            ));
        }
        Ok(())
    }

    async fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        if let Ok(path) = std::env::var("FIXTURE_LIST_LOG") {
            use std::io::Write;
            let cursor = request.as_ref().and_then(|r| r.cursor.clone());
            if let Ok(mut log) = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
            {
                let _ = writeln!(log, "list {}", cursor.as_deref().unwrap_or("first"));
            }
        }
        let start: usize = request
            .and_then(|r| r.cursor)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let tools = self
            .tools
            .lock()
            .map_err(|_| McpError::internal_error("lock", None))?;
        let end = (start + self.page_size).min(tools.len());
        let mut page = ListToolsResult::with_all_items(tools[start.min(end)..end].to_vec());
        page.next_cursor = (end < tools.len()).then(|| end.to_string());
        Ok(page)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let args = Value::Object(request.arguments.unwrap_or_default());
        let result = match request.name.as_ref() {
            "echo" => {
                let message = args["message"].as_str().unwrap_or_default().to_owned();
                text_result(format!("Echo: {message}"), json!({"echo": message}))
            }
            "add" => {
                let sum = args["a"].as_f64().unwrap_or(0.0) + args["b"].as_f64().unwrap_or(0.0);
                text_result(sum.to_string(), json!({"sum": sum}))
            }
            "slow" => {
                let seconds = args["seconds"].as_f64().unwrap_or(0.0).max(0.0);
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs_f64(seconds)) => {
                        text_result(format!("waited {seconds} s"), json!({"waited_s": seconds}))
                    }
                    () = context.ct.cancelled() => {
                        if let Ok(path) = std::env::var("FIXTURE_CANCEL_LOG") {
                            use std::io::Write;
                            if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
                                let _ = writeln!(f, "cancelled slow {seconds}");
                            }
                        }
                        return Err(McpError::internal_error("cancelled", None));
                    }
                }
            }
            "big" => {
                let bytes = args["bytes"].as_u64().unwrap_or(0) as usize;
                CallToolResult::success(vec![Content::text("x".repeat(bytes))])
            }
            "env" => {
                let env: serde_json::Map<String, Value> = std::env::vars()
                    .map(|(k, v)| (k, Value::String(v)))
                    .collect();
                text_result(
                    serde_json::to_string(&env).unwrap_or_default(),
                    Value::Object(env),
                )
            }
            "fail" => {
                CallToolResult::error(vec![Content::text("the fixture always fails this one")])
            }
            "crash" => std::process::exit(3),
            "grow" => {
                let name = {
                    let mut tools = self
                        .tools
                        .lock()
                        .map_err(|_| McpError::internal_error("lock", None))?;
                    let name = format!("grown_{}", tools.len());
                    tools.push(tool(&name, "Added by grow", json!({"type": "object"})));
                    name
                };
                let _ = context.peer.notify_tool_list_changed().await;
                text_result(format!("added {name}"), json!({"added": name}))
            }
            name if name.starts_with("filler_") || name.starts_with("grown_") => {
                CallToolResult::success(vec![Content::text("ok")])
            }
            other => {
                return Err(McpError::invalid_params(format!("no tool {other}"), None));
            }
        };
        Ok(result.into())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let mode = args.get(1).map(String::as_str).unwrap_or("stdio");
    match mode {
        "stdio" | "garbage" => {
            if mode == "garbage" {
                use std::io::Write;
                let mut out = std::io::stdout();
                writeln!(out, "this is not JSON-RPC")?;
                writeln!(out, "{{\"neither\": \"is this\"}}")?;
                out.flush()?;
            }
            eprintln!("fixture: serving on stdio");
            let service = Fixture::new()
                .serve((tokio::io::stdin(), tokio::io::stdout()))
                .await?;
            service.waiting().await?;
        }
        "mute" => {
            eprintln!("fixture: never answering");
            let mut sink = tokio::io::sink();
            tokio::io::copy(&mut tokio::io::stdin(), &mut sink).await?;
        }
        "http" => {
            use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
            use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
            let addr = args.get(2).map(String::as_str).unwrap_or("127.0.0.1:0");
            let service = StreamableHttpService::new(
                || Ok(Fixture::new()),
                Arc::new(LocalSessionManager::default()),
                StreamableHttpServerConfig::default(),
            );
            let router = axum::Router::new().nest_service("/mcp", service);
            let listener = tokio::net::TcpListener::bind(addr).await?;
            println!("{}", listener.local_addr()?);
            eprintln!("fixture: serving streamable HTTP");
            axum::serve(listener, router).await?;
        }
        other => return Err(format!("unknown mode {other:?}").into()),
    }
    Ok(())
}
