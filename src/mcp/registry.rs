//! What the bridge knows of its servers and how a call goes through: each server's state (what `/servers`
//! shows), the catalog of tools (served from memory), and `call`: the tool looked up, its arguments checked
//! against its input schema, its breaker asked, the call sent with the server's timeout (on timeout rmcp
//! sends `notifications/cancelled` upstream) and the result measured against `max_result_bytes`.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rmcp::model::{CallToolRequestParams, Tool};
use rmcp::service::{Peer, PeerRequestOptions, ServiceError};
use rmcp::RoleClient;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::Notify;

use crate::breaker::{BreakerSettings, SharedBreaker};
use crate::clock::Clock;
use crate::config::{CallRole, McpServerConfig};
use crate::mcp::catalog::{Catalog, CatalogTool, CheckError, SchemaViolation, ServerTools};
use crate::metrics::McpMetrics;
use crate::records::{ToolCallOutcome, ToolCallRecord};
use crate::store::writer::CheckWriter;

/// How many of a stdio server's last stderr lines `/servers` shows.
pub const STDERR_LINES_KEPT: usize = 20;
/// The longest stderr line kept; the rest of the line is dropped.
const STDERR_LINE_MAX: usize = 1024;

/// Where a server's connection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(example = "ready")]
pub enum ServerState {
    /// Starting the process or opening the session, then the handshake and the first tool listing.
    Connecting,
    /// Connected, tools listed: its tools are in the catalog.
    Ready,
    /// The last attempt failed or the connection ended; a retry is waited for (`retry_at`).
    BackingOff,
}

impl ServerState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connecting => "connecting",
            Self::Ready => "ready",
            Self::BackingOff => "backing_off",
        }
    }
}

/// One configured MCP server and its connection, as `GET /servers` shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(example = json!({
    "name": "everything", "transport": "stdio", "state": "ready", "protocol_version": "2025-06-18",
    "server_name": "example-servers/everything", "server_version": "1.0.0", "tool_count": 11,
    "last_error": null, "stderr_tail": ["Starting default (STDIO) server..."],
    "connected_since": "2026-12-05T12:00:01Z", "reconnects": 0, "retry_at": null
}))]
pub struct ServerView {
    pub name: String,
    /// `stdio` or `streamable_http`.
    pub transport: &'static str,
    pub state: ServerState,
    /// The protocol version the handshake settled on.
    pub protocol_version: Option<String>,
    /// The server's own name and version, as it gave them.
    pub server_name: Option<String>,
    pub server_version: Option<String>,
    /// Tools of the server the bridge exposes.
    pub tool_count: usize,
    pub last_error: Option<String>,
    /// The server's last lines on stderr (stdio servers), oldest first.
    pub stderr_tail: Vec<String>,
    pub connected_since: Option<DateTime<Utc>>,
    /// Connections made after the first.
    pub reconnects: u64,
    /// When the next attempt is due, while backing off.
    pub retry_at: Option<DateTime<Utc>>,
}

/// One tool the bridge exposes, as `GET /tools` shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(example = json!({
    "name": "echo", "server": "everything", "tool": "echo", "description": "Echoes back the input",
    "input_schema": {"type": "object", "properties": {"message": {"type": "string"}}, "required": ["message"]},
    "schema_error": null
}))]
pub struct ToolView {
    /// The name to call it by: the tool's own name, or `server__tool` when two servers have one like it.
    pub name: String,
    pub server: String,
    /// The server's own name for it.
    pub tool: String,
    pub description: Option<String>,
    /// The JSON Schema its arguments are checked against.
    #[schema(value_type = Object)]
    pub input_schema: Value,
    /// Set when the input schema cannot be used (for example a `$ref` to another document, which hale never
    /// fetches): the tool's calls are refused.
    pub schema_error: Option<String>,
}

/// Who asked for a call, for its stored record.
#[derive(Debug, Clone, Default)]
pub struct CallContext {
    pub request_id: String,
    /// The role the caller's token granted; none on loopback without a token.
    pub role: Option<&'static str>,
}

/// A call that was answered by its server.
#[derive(Debug, Clone)]
pub struct CallOutcome {
    pub server: Arc<str>,
    pub tool: Arc<str>,
    /// The tool's result as the server sent it (`content`, `structuredContent`, `isError`).
    pub result: Value,
    /// The tool said its call failed (`isError: true`): an answer, not a failure of the bridge.
    pub is_error: bool,
    pub latency: Duration,
}

/// Why a call was not answered.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CallError {
    #[error("no tool named {0:?}; GET /tools lists them")]
    UnknownTool(String),
    #[error("the arguments do not fit the tool's input schema at {:?}: {}", .0.field, .0.message)]
    Invalid(SchemaViolation),
    #[error("{0}")]
    UnusableSchema(String),
    #[error("MCP server {server:?} is not connected ({state})")]
    NotReady { server: String, state: String },
    #[error("the circuit breaker of tool {tool:?} is open: its recent calls failed")]
    BreakerOpen {
        tool: String,
        retry_after: Option<Duration>,
    },
    #[error("MCP server {server:?} did not answer within {timeout_s} s; the call was cancelled")]
    Timeout { server: String, timeout_s: u64 },
    #[error("the result is {bytes} bytes, over the server's max_result_bytes ({limit})")]
    TooLarge { bytes: usize, limit: usize },
    #[error("MCP server {server:?} failed the call: {message}")]
    Upstream { server: String, message: String },
}

/// A server's slot: its config, its state, its live peer and tools.
pub(crate) struct Slot {
    pub config: McpServerConfig,
    pub name: Arc<str>,
    status: Mutex<Status>,
    peer: RwLock<Option<Peer<RoleClient>>>,
    stderr: Mutex<VecDeque<String>>,
    /// Rung by a `tools/list_changed` notification.
    pub tools_changed: Notify,
}

#[derive(Debug, Clone)]
struct Status {
    state: ServerState,
    protocol_version: Option<String>,
    server_name: Option<String>,
    server_version: Option<String>,
    tools: Vec<Tool>,
    last_error: Option<String>,
    connected_since: Option<DateTime<Utc>>,
    connections: u64,
    retry_at: Option<DateTime<Utc>>,
}

/// What a handshake learned of a server.
pub(crate) struct Handshake {
    pub protocol_version: String,
    pub server_name: Option<String>,
    pub server_version: Option<String>,
}

impl Slot {
    fn new(config: McpServerConfig) -> Self {
        Self {
            name: Arc::from(config.name.as_str()),
            config,
            status: Mutex::new(Status {
                state: ServerState::Connecting,
                protocol_version: None,
                server_name: None,
                server_version: None,
                tools: Vec::new(),
                last_error: None,
                connected_since: None,
                connections: 0,
                retry_at: None,
            }),
            peer: RwLock::new(None),
            stderr: Mutex::new(VecDeque::with_capacity(STDERR_LINES_KEPT)),
            tools_changed: Notify::new(),
        }
    }

    fn status(&self) -> MutexGuard<'_, Status> {
        self.status.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn connecting(&self) {
        let mut status = self.status();
        status.state = ServerState::Connecting;
        status.retry_at = None;
    }

    /// Connected: the peer takes calls, and its (filtered) tools go into the catalog.
    pub fn ready(
        &self,
        peer: Peer<RoleClient>,
        handshake: Handshake,
        tools: Vec<Tool>,
        now: DateTime<Utc>,
    ) {
        {
            let mut status = self.status();
            status.state = ServerState::Ready;
            status.protocol_version = Some(handshake.protocol_version);
            status.server_name = handshake.server_name;
            status.server_version = handshake.server_version;
            status.tools = self.exposed(tools);
            status.last_error = None;
            status.connected_since = Some(now);
            status.connections += 1;
            status.retry_at = None;
        }
        *self.peer.write().unwrap_or_else(|p| p.into_inner()) = Some(peer);
    }

    /// A fresh listing after `tools/list_changed`.
    pub fn relisted(&self, tools: Vec<Tool>) {
        let tools = self.exposed(tools);
        self.status().tools = tools;
    }

    /// The connection ended or never came up: no peer, no tools, a retry at `retry_at`.
    pub fn down(&self, error: String, retry_at: DateTime<Utc>) {
        *self.peer.write().unwrap_or_else(|p| p.into_inner()) = None;
        let mut status = self.status();
        status.state = ServerState::BackingOff;
        status.tools.clear();
        status.last_error = Some(error);
        status.connected_since = None;
        status.retry_at = Some(retry_at);
    }

    /// No peer and no tools (at shutdown).
    pub fn gone(&self) {
        *self.peer.write().unwrap_or_else(|p| p.into_inner()) = None;
        self.status().tools.clear();
    }

    pub fn push_stderr(&self, line: &str) {
        let mut kept: String = line.chars().take(STDERR_LINE_MAX).collect();
        if kept.len() < line.len() {
            kept.push('…');
        }
        let mut tail = self.stderr.lock().unwrap_or_else(|p| p.into_inner());
        if tail.len() == STDERR_LINES_KEPT {
            tail.pop_front();
        }
        tail.push_back(kept);
    }

    fn exposed(&self, tools: Vec<Tool>) -> Vec<Tool> {
        tools
            .into_iter()
            .filter(|tool| self.config.exposes(&tool.name))
            .collect()
    }

    fn peer(&self) -> Option<Peer<RoleClient>> {
        self.peer.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn view(&self) -> ServerView {
        let status = self.status().clone();
        ServerView {
            name: self.name.to_string(),
            transport: self.config.transport_name(),
            state: status.state,
            protocol_version: status.protocol_version,
            server_name: status.server_name,
            server_version: status.server_version,
            tool_count: status.tools.len(),
            last_error: status.last_error,
            stderr_tail: self
                .stderr
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .cloned()
                .collect(),
            connected_since: status.connected_since,
            reconnects: status.connections.saturating_sub(1),
            retry_at: status.retry_at,
        }
    }
}

fn tool_views(catalog: &Catalog) -> Vec<ToolView> {
    catalog
        .tools()
        .map(|tool| ToolView {
            name: tool.name.clone(),
            server: tool.server.to_string(),
            tool: tool.tool.to_string(),
            description: tool.description.clone(),
            input_schema: (*tool.input_schema).clone(),
            schema_error: tool.validator.as_ref().err().cloned(),
        })
        .collect()
}

/// A tool's breaker is keyed by its server and the server's own name for it.
type ToolKey = (Arc<str>, Arc<str>);

/// Every configured server, the catalog of their tools and a breaker per tool.
pub struct McpRegistry {
    slots: Vec<Arc<Slot>>,
    catalog: RwLock<Arc<Catalog>>,
    /// `tools()` as JSON, made when the catalog is rebuilt: `GET /tools` sends it as it is.
    tools_json: RwLock<Arc<str>>,
    breakers: Mutex<HashMap<ToolKey, SharedBreaker>>,
    breaker_settings: BreakerSettings,
    clock: Arc<dyn Clock>,
    metrics: Option<McpMetrics>,
    /// Where every call's record goes; none in tests that build a registry alone.
    writer: Option<CheckWriter>,
}

impl std::fmt::Debug for McpRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpRegistry")
            .field("servers", &self.slots.len())
            .field("tools", &self.catalog().len())
            .finish()
    }
}

impl McpRegistry {
    /// `metrics`: the bridge's collectors, and `writer`: where calls are stored (none in tests that build a
    /// registry alone).
    pub fn new(
        servers: &[McpServerConfig],
        breaker_settings: BreakerSettings,
        clock: Arc<dyn Clock>,
        metrics: Option<McpMetrics>,
        writer: Option<CheckWriter>,
    ) -> Self {
        let registry = Self {
            slots: servers
                .iter()
                .cloned()
                .map(|c| Arc::new(Slot::new(c)))
                .collect(),
            catalog: RwLock::new(Arc::new(Catalog::default())),
            tools_json: RwLock::new(Arc::from("[]")),
            breakers: Mutex::new(HashMap::new()),
            breaker_settings,
            clock,
            metrics,
            writer,
        };
        registry.publish_states();
        registry
    }

    pub(crate) fn slots(&self) -> &[Arc<Slot>] {
        &self.slots
    }

    pub(crate) fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The catalog as it stands (a snapshot: rebuilt, never changed in place).
    pub fn catalog(&self) -> Arc<Catalog> {
        self.catalog
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Rebuilds the catalog from every ready server's tools (after a server came, went or relisted).
    pub(crate) fn rebuild_catalog(&self) {
        let servers: Vec<ServerTools> = self
            .slots
            .iter()
            .filter_map(|slot| {
                let status = slot.status();
                (status.state == ServerState::Ready).then(|| ServerTools {
                    server: slot.name.clone(),
                    tools: status.tools.clone(),
                })
            })
            .collect();
        let catalog = Arc::new(Catalog::build(&servers));
        let json = serde_json::to_string(&tool_views(&catalog)).unwrap_or_else(|e| {
            tracing::error!(error = %e, "cannot write the MCP tool catalog as JSON");
            "[]".to_owned()
        });
        // The JSON first: a reader that sees the new catalog never gets the old list.
        *self.tools_json.write().unwrap_or_else(|p| p.into_inner()) = Arc::from(json);
        *self.catalog.write().unwrap_or_else(|p| p.into_inner()) = catalog;
    }

    /// `tools()` as JSON, as made at the last rebuild of the catalog.
    pub fn tools_json(&self) -> Arc<str> {
        self.tools_json
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Every server, in config order.
    pub fn servers(&self) -> Vec<ServerView> {
        self.slots.iter().map(|slot| slot.view()).collect()
    }

    /// Every exposed tool, by name.
    pub fn tools(&self) -> Vec<ToolView> {
        tool_views(&self.catalog())
    }

    /// The role a call of tool `name` needs, when the tool exists.
    pub fn call_role(&self, name: &str) -> Option<CallRole> {
        let catalog = self.catalog();
        let tool = catalog.get(name)?;
        self.slot(&tool.server).map(|slot| slot.config.call_role)
    }

    fn slot(&self, server: &str) -> Option<&Arc<Slot>> {
        self.slots.iter().find(|slot| &*slot.name == server)
    }

    fn breaker(&self, server: &Arc<str>, tool: &Arc<str>) -> SharedBreaker {
        let mut breakers = self.breakers.lock().unwrap_or_else(|p| p.into_inner());
        breakers
            .entry((server.clone(), tool.clone()))
            .or_insert_with(|| {
                SharedBreaker::new(
                    format!("{server}/{tool}"),
                    self.breaker_settings,
                    self.clock.clone(),
                )
            })
            .clone()
    }

    /// Calls tool `name` with `arguments` (a JSON object), and stores the call's record.
    pub async fn call(
        &self,
        name: &str,
        arguments: serde_json::Map<String, Value>,
        context: CallContext,
    ) -> Result<CallOutcome, CallError> {
        let catalog = self.catalog();
        // An unknown name is neither counted nor stored: the metrics' labels are tools a server listed,
        // never client input.
        let tool = catalog
            .get(name)
            .ok_or_else(|| CallError::UnknownTool(name.to_owned()))?;
        let log_arguments = self
            .slot(&tool.server)
            .is_some_and(|slot| slot.config.log_arguments);
        let arguments_text = log_arguments.then(|| Value::Object(arguments.clone()).to_string());
        let argument_bytes = json_len(&arguments);
        let at = self.clock.now();
        let (result, sent_for) = self.call_listed(name, tool, arguments).await;
        let outcome = match &result {
            Ok(outcome) if outcome.is_error => ToolCallOutcome::ToolError,
            Ok(_) => ToolCallOutcome::Ok,
            Err(CallError::Invalid(_)) => ToolCallOutcome::Invalid,
            Err(CallError::NotReady { .. }) => ToolCallOutcome::NotReady,
            Err(CallError::BreakerOpen { .. }) => ToolCallOutcome::BreakerOpen,
            Err(CallError::Timeout { .. }) => ToolCallOutcome::Timeout,
            Err(CallError::TooLarge { .. }) => ToolCallOutcome::TooLarge,
            Err(
                CallError::UnknownTool(_)
                | CallError::UnusableSchema(_)
                | CallError::Upstream { .. },
            ) => ToolCallOutcome::UpstreamError,
        };
        if let Some(metrics) = &self.metrics {
            metrics.call(
                &tool.server,
                &tool.tool,
                outcome,
                sent_for.map(|d| d.as_secs_f64()),
            );
        }
        if let Some(writer) = &self.writer {
            let record = ToolCallRecord {
                at,
                server: tool.server.clone(),
                tool: name.to_owned(),
                outcome,
                latency: sent_for,
                request_id: context.request_id,
                role: context.role,
                argument_bytes,
                error: result.as_ref().err().map(CallError::to_string),
                arguments: arguments_text.map(ToolCallRecord::logged),
                result: match &result {
                    Ok(answered) if log_arguments => {
                        Some(ToolCallRecord::logged(answered.result.to_string()))
                    }
                    _ => None,
                },
            };
            if writer.submit_tool_call(record).await.is_err() {
                tracing::warn!(
                    tool = name,
                    "hale is stopping: the tool call was not stored"
                );
            }
        }
        result
    }

    /// The call of a tool the catalog lists, and how long it waited for its server when it was sent.
    async fn call_listed(
        &self,
        name: &str,
        tool: &CatalogTool,
        arguments: serde_json::Map<String, Value>,
    ) -> (Result<CallOutcome, CallError>, Option<Duration>) {
        let arguments_value = Value::Object(arguments);
        if let Err(e) = tool.check(&arguments_value) {
            let error = match e {
                CheckError::Violation(v) => CallError::Invalid(v),
                CheckError::UnusableSchema(reason) => CallError::UnusableSchema(reason),
            };
            return (Err(error), None);
        }
        let Value::Object(arguments) = arguments_value else {
            unreachable!("built as an object above")
        };
        let Some(slot) = self.slot(&tool.server) else {
            return (Err(CallError::UnknownTool(name.to_owned())), None);
        };
        let Some(peer) = slot.peer() else {
            let state = format!("{:?}", slot.status().state).to_lowercase();
            return (
                Err(CallError::NotReady {
                    server: slot.name.to_string(),
                    state,
                }),
                None,
            );
        };
        let breaker = self.breaker(&tool.server, &tool.tool);
        let permit = match breaker.try_acquire() {
            Ok((permit, _)) => permit,
            Err(rejected) => {
                let retry_after = rejected
                    .retry_at
                    .and_then(|at| (at - self.clock.now()).to_std().ok());
                return (
                    Err(CallError::BreakerOpen {
                        tool: name.to_owned(),
                        retry_after,
                    }),
                    None,
                );
            }
        };
        let timeout = Duration::from_secs(slot.config.timeout_s);
        let mut params = CallToolRequestParams::new(tool.tool.to_string());
        params.arguments = Some(arguments);
        let started = Instant::now();
        let answer = peer
            .send_request_with_option(
                rmcp::model::ClientRequest::CallToolRequest(rmcp::model::CallToolRequest::new(
                    params,
                )),
                PeerRequestOptions::with_timeout(timeout),
            )
            .await;
        let result = match answer {
            Ok(handle) => handle.await_response().await,
            Err(e) => Err(e),
        };
        let latency = started.elapsed();
        let upstream = |message: String| CallError::Upstream {
            server: slot.name.to_string(),
            message,
        };
        let result = match result {
            Ok(rmcp::model::ServerResult::CallToolResult(result)) => result,
            Ok(_) => {
                permit.failure();
                let message = "the server answered with something other than a tool result";
                return (Err(upstream(message.to_owned())), Some(latency));
            }
            Err(ServiceError::Timeout { .. }) => {
                permit.failure();
                let error = CallError::Timeout {
                    server: slot.name.to_string(),
                    timeout_s: slot.config.timeout_s,
                };
                return (Err(error), Some(latency));
            }
            Err(ServiceError::McpError(error)) => {
                // The server refused the call (bad arguments by its own rules, unknown tool): it is up.
                permit.success();
                return (Err(upstream(error.message.to_string())), Some(latency));
            }
            Err(e) => {
                permit.failure();
                return (Err(upstream(e.to_string())), Some(latency));
            }
        };
        permit.success();
        let result = match serde_json::to_value(&result) {
            Ok(result) => result,
            Err(e) => {
                let message = format!("the result cannot be read: {e}");
                return (Err(upstream(message)), Some(latency));
            }
        };
        let bytes = usize::try_from(json_len(&result)).unwrap_or(usize::MAX);
        if bytes > slot.config.max_result_bytes {
            let error = CallError::TooLarge {
                bytes,
                limit: slot.config.max_result_bytes,
            };
            return (Err(error), Some(latency));
        }
        let is_error = result
            .get("isError")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let outcome = CallOutcome {
            server: tool.server.clone(),
            tool: tool.tool.clone(),
            result,
            is_error,
            latency,
        };
        (Ok(outcome), Some(latency))
    }

    /// Sets `mcp_servers{state}` from every server's state.
    pub(crate) fn publish_states(&self) {
        let Some(metrics) = &self.metrics else {
            return;
        };
        let mut counts = [
            (ServerState::Connecting, 0usize),
            (ServerState::Ready, 0),
            (ServerState::BackingOff, 0),
        ];
        for slot in &self.slots {
            let state = slot.status().state;
            if let Some((_, n)) = counts.iter_mut().find(|(s, _)| *s == state) {
                *n += 1;
            }
            metrics.server_ready(&slot.name, state == ServerState::Ready);
        }
        let named: Vec<(&str, usize)> = counts.iter().map(|(s, n)| (s.as_str(), *n)).collect();
        metrics.servers_in(&named);
    }

    /// Whether any configured server is ready; true when none is configured.
    pub fn any_ready(&self) -> bool {
        self.slots.is_empty()
            || self
                .slots
                .iter()
                .any(|slot| slot.status().state == ServerState::Ready)
    }
}

/// The size of `value` as compact JSON, counted without building the text.
fn json_len(value: &impl Serialize) -> u64 {
    struct Counter(u64);
    impl std::io::Write for Counter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len() as u64;
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter(0);
    // Writing JSON values into a sink that never fails cannot fail.
    let _ = serde_json::to_writer(&mut counter, value);
    counter.0
}
