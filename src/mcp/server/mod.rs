//! hale as an MCP server: its tools (`tools.rs`) answered in process from the parts the Health Proxy's
//! routes use (`HaleServer`), served over streamable HTTP at `/mcp` (`McpEndpoint`, stateless, JSON answers);
//! and `hale mcp`, which serves the same tools on stdio by relaying each request to a running hale's `/mcp`
//! (`relay_stdio`), so stdio and HTTP give the live process's answers.

mod tools;

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::Full;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, Implementation, ListToolsResult,
    PaginatedRequestParams, ServerCapabilities, ServerConfig,
};
use rmcp::service::{Peer, RequestContext};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::{
    StreamableHttpClientTransport, StreamableHttpServerConfig, StreamableHttpService,
};
use rmcp::{ErrorData as McpError, RoleClient, RoleServer, ServerHandler, ServiceExt};
use serde_json::{Map, Value};

use crate::answers::alerts::active_alerts;
use crate::answers::checks::{health_all, history, HistoryParams};
use crate::answers::heal::{heal, heal_events, HealEventsParams};
use crate::answers::slo::{slo_all, slo_paging, slo_target, SloListParams, SloParams};
use crate::answers::AnswerError;
use crate::auth::Role;
use crate::clock::Clock;
use crate::config::Config;
use crate::heal::Healer;
use crate::probe::Monitor;
use crate::records::HealOutcome;
use crate::slo::report::{build, parse_window, render, ReportFormat};
use crate::slo::SloBoard;
use crate::store::Store;

pub use tools::HaleTool;

/// What the tools read: the core every service has, and the Health Proxy's live parts when it runs in
/// this process.
#[derive(Debug, Clone)]
pub struct ToolParts {
    pub store: Store,
    pub config: Arc<Config>,
    pub clock: Arc<dyn Clock>,
    pub health: Option<HealthParts>,
}

/// The Health Proxy's parts the tools call: the monitor (health), the healer and the SLO board.
#[derive(Debug, Clone)]
pub struct HealthParts {
    pub monitor: Arc<Monitor>,
    pub healer: Arc<Healer>,
    pub slo: Arc<SloBoard>,
}

/// Who sent an HTTP request to `/mcp`: the role the guard found its token grants (none for an open read
/// from loopback). Put in the request's extensions by the route.
#[derive(Debug, Clone, Copy)]
pub struct McpCaller {
    pub role: Option<Role>,
}

/// hale's tools as an MCP server.
#[derive(Debug, Clone)]
pub struct HaleServer {
    parts: Arc<ToolParts>,
}

impl HaleServer {
    pub fn new(parts: Arc<ToolParts>) -> Self {
        Self { parts }
    }

    fn health(&self, tool: HaleTool) -> Result<&HealthParts, McpError> {
        self.parts.health.as_ref().ok_or_else(|| {
            McpError::internal_error(
                format!(
                    "{}: the Health Proxy does not run in this hale process, so its answers are not here",
                    tool.name()
                ),
                None,
            )
        })
    }

    async fn answer(
        &self,
        tool: HaleTool,
        args: &Map<String, Value>,
        caller: Option<Role>,
    ) -> Result<CallToolResult, McpError> {
        let parts = &self.parts;
        let failed = |e: AnswerError| tools::answer_error(tool, e);
        match tool {
            HaleTool::HealthAll => {
                tools::query::<tools::NoParams>(tool, args)?;
                let all = health_all(&self.health(tool)?.monitor, false).await;
                tools::json_result(&all, false)
            }
            HaleTool::HealthHistory => {
                let params: HistoryParams = tools::query(tool, args)?;
                let page = history(&parts.store, &params).await.map_err(failed)?;
                tools::json_result(&page, false)
            }
            HaleTool::Slo => {
                let params: SloListParams = tools::query(tool, args)?;
                let (limit, offset) = slo_paging(&params).map_err(failed)?;
                let health = self.health(tool)?;
                let snapshot = slo_all(&parts.store, &parts.config, &health.slo, parts.clock.now())
                    .await
                    .map_err(failed)?;
                let total = snapshot.slos.len();
                let from = (offset as usize).min(total);
                let to = from.saturating_add(limit as usize).min(total);
                let body = serde_json::json!({"targets": &snapshot.slos[from..to], "total": total});
                tools::json_result(&body, false)
            }
            HaleTool::SloTarget => {
                let service = tools::required_name(args, "service")?.to_owned();
                let mut rest = args.clone();
                rest.remove("service");
                let params: SloParams = tools::query(tool, &rest)?;
                let health = self.health(tool)?;
                let slo = slo_target(
                    &parts.store,
                    &parts.config,
                    &health.slo,
                    parts.clock.now(),
                    &service,
                    &params,
                )
                .await
                .map_err(failed)?;
                tools::json_result(&slo, false)
            }
            HaleTool::SloReport => self.report(args).await,
            HaleTool::HealEvents => {
                let params: HealEventsParams = tools::query(tool, args)?;
                let events = heal_events(&parts.store, &params).await.map_err(failed)?;
                tools::json_result(&serde_json::json!({ "events": events }), false)
            }
            HaleTool::ActiveAlerts => {
                tools::query::<tools::NoParams>(tool, args)?;
                let alerts = active_alerts(&parts.store).await.map_err(failed)?;
                tools::json_result(&serde_json::json!({ "alerts": alerts }), false)
            }
            HaleTool::Heal => {
                let target = tools::required_name(args, "target")?.to_owned();
                let mut rest = args.clone();
                rest.remove("target");
                tools::query::<tools::NoParams>(tool, &rest)?;
                if caller.is_none_or(|r| r < tool.role()) {
                    return Err(McpError::invalid_request(
                        format!(
                            "heal needs the {} role; {}",
                            tool.role(),
                            match caller {
                                None => "send Authorization: Bearer <token> with an operate token"
                                    .to_owned(),
                                Some(role) => format!("this token grants {role}"),
                            }
                        ),
                        None,
                    ));
                }
                let view = heal(&self.health(tool)?.healer, &target)
                    .await
                    .map_err(failed)?;
                let healed = view.outcome == HealOutcome::Healed;
                tools::json_result(&view, !healed)
            }
        }
    }

    /// The SLO report, made by the functions `hale slo report` calls, on the live database.
    async fn report(&self, args: &Map<String, Value>) -> Result<CallToolResult, McpError> {
        let tool = HaleTool::SloReport;
        let parts = &self.parts;
        tools::query::<ReportArgs>(tool, args)?;
        let text_arg = |name: &str| -> Result<Option<String>, McpError> {
            match args.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(McpError::invalid_params(
                    format!("{name}: must be a string"),
                    None,
                )),
            }
        };
        let format = match text_arg("format")?.as_deref() {
            None | Some("markdown") => ReportFormat::Markdown,
            Some("json") => ReportFormat::Json,
            Some(other) => {
                return Err(McpError::invalid_params(
                    format!("format: {other:?} is not one of markdown, json"),
                    None,
                ))
            }
        };
        let exact = match args.get("exact") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                return Err(McpError::invalid_params(
                    "exact: must be true or false",
                    None,
                ))
            }
        };
        let service = text_arg("service")?;
        let now = chrono::Utc::now();
        let raw =
            text_arg("window")?.unwrap_or_else(|| format!("{}d", parts.config.slo.window_days));
        let window = parse_window(&raw, now, parts.config.storage.rollup_retention_days)
            .map_err(|e| McpError::invalid_params(format!("window: {e}"), None))?;
        let report = build(
            &parts.store,
            &parts.config,
            &window,
            service.as_deref(),
            exact,
            now,
            false,
        )
        .await
        .map_err(|e| match e {
            crate::slo::report::ReportError::Store(cause) => {
                tools::answer_error(tool, AnswerError::internal(cause))
            }
            other => McpError::invalid_params(other.to_string(), None),
        })?;
        let json = render(&report, ReportFormat::Json);
        let value: Value = serde_json::from_str(&json).map_err(|e| {
            McpError::internal_error(format!("cannot read the JSON report back: {e}"), None)
        })?;
        let text = match format {
            ReportFormat::Json => json,
            _ => render(&report, format),
        };
        Ok(tools::result(value, text, false))
    }
}

/// The report's arguments, for the check of their names.
#[derive(Debug, serde::Deserialize)]
struct ReportArgs {}

fn server_config() -> ServerConfig {
    let mut config = ServerConfig::new(ServerCapabilities::builder().enable_tools().build());
    config.server_info = Implementation::new("hale", env!("CARGO_PKG_VERSION"));
    config.instructions = Some(
        "hale watches HTTP services and MCP servers: ask it for their health, history, SLOs, heals and alerts"
            .to_owned(),
    );
    config
}

impl ServerHandler for HaleServer {
    fn get_info(&self) -> ServerConfig {
        server_config()
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        Ok(ListToolsResult::with_all_items(
            HaleTool::ALL.iter().map(|t| t.tool()).collect(),
        ))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let Some(tool) = HaleTool::by_name(&request.name) else {
            let names: Vec<&str> = HaleTool::ALL.iter().map(|t| t.name()).collect();
            return Err(McpError::invalid_params(
                format!(
                    "name: no tool named {:?} (hale's tools: {})",
                    request.name,
                    names.join(", ")
                ),
                None,
            ));
        };
        let caller = context
            .extensions
            .get::<http::request::Parts>()
            .and_then(|p| p.extensions.get::<McpCaller>())
            .and_then(|c| c.role);
        let args = request.arguments.unwrap_or_default();
        self.answer(tool, &args, caller).await.map(Into::into)
    }
}

/// The largest request body `/mcp` takes.
pub const MAX_MCP_BODY: usize = 1 << 20;

/// `/mcp`: rmcp's streamable HTTP service over hale's tools, stateless (no session to keep), each answer
/// JSON in the POST's response (so a GET, which would open a stream, is 405).
#[derive(Clone)]
pub struct McpEndpoint {
    service: StreamableHttpService<HaleServer, NeverSessionManager>,
}

impl std::fmt::Debug for McpEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpEndpoint").finish_non_exhaustive()
    }
}

impl McpEndpoint {
    /// `loopback_only`: the bridge listens on loopback, so only loopback `Host` names are accepted (a DNS
    /// rebinding page cannot reach the open loopback reads); elsewhere a token is needed anyway.
    pub fn new(parts: Arc<ToolParts>, loopback_only: bool) -> Self {
        let server = HaleServer::new(parts);
        let mut config = StreamableHttpServerConfig::default()
            .with_legacy_session_mode(false)
            .with_json_response(true)
            .with_sse_keep_alive(None)
            .with_max_request_body_bytes(MAX_MCP_BODY);
        if !loopback_only {
            config = config.disable_allowed_hosts();
        }
        Self {
            service: StreamableHttpService::new(
                move || Ok(server.clone()),
                Arc::new(NeverSessionManager::default()),
                config,
            ),
        }
    }

    /// One HTTP request to `/mcp`, answered.
    pub async fn handle(
        &self,
        request: http::Request<Full<Bytes>>,
    ) -> http::Response<BoxBody<Bytes, Infallible>> {
        self.service.handle(request).await
    }
}

/// Why `hale mcp` stopped.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("cannot reach hale's MCP server at {url}: {reason} (is `hale serve` running with the MCP WebBridge, and does it accept the token in HALE_TOKEN?)")]
    Connect { url: String, reason: String },
    #[error("the stdio session failed: {0}")]
    Stdio(String),
}

/// Serves hale's tools on stdin/stdout, each request relayed to the running hale at `url` (its `/mcp`),
/// with `token` as the bearer token when given.
pub async fn relay_stdio(url: &str, token: Option<&str>) -> Result<(), RelayError> {
    let mut config = StreamableHttpClientTransportConfig::with_uri(url.to_owned());
    if let Some(token) = token {
        config = config.auth_header(token.to_owned());
    }
    let transport = StreamableHttpClientTransport::from_config(config);
    let upstream = ().serve(transport).await.map_err(|e| RelayError::Connect {
        url: url.to_owned(),
        reason: e.to_string(),
    })?;
    let relay = Relay {
        upstream: upstream.peer().clone(),
    };
    let served = relay
        .serve(rmcp::transport::io::stdio())
        .await
        .map_err(|e| RelayError::Stdio(e.to_string()))?;
    let ended = served.waiting().await;
    let _ = upstream.cancel().await;
    ended
        .map(|_| ())
        .map_err(|e| RelayError::Stdio(e.to_string()))
}

/// Forwards `tools/list` and `tools/call` to hale's `/mcp`.
#[derive(Debug, Clone)]
struct Relay {
    upstream: Peer<RoleClient>,
}

fn relayed(e: rmcp::ServiceError) -> McpError {
    match e {
        rmcp::ServiceError::McpError(e) => e,
        other => McpError::internal_error(format!("hale's /mcp did not answer: {other}"), None),
    }
}

impl ServerHandler for Relay {
    fn get_info(&self) -> ServerConfig {
        server_config()
    }

    async fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        self.upstream.list_tools(request).await.map_err(relayed)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        self.upstream
            .call_tool(request)
            .await
            .map(Into::into)
            .map_err(relayed)
    }
}
