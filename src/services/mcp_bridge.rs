//! MCP WebBridge (:3003): exposes the tools of Model Context Protocol servers over HTTP. The engine is
//! `crate::mcp`; these handlers translate HTTP into its calls and back.

use std::sync::Arc;
use std::time::Duration;

use actix_web::{get, post, web, HttpRequest, HttpResponse};
use futures_util::future::BoxFuture;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::answers::tool_calls::{self as calls_answer, ToolCallView, ToolCallsParams};
use crate::answers::HealthResponse;
use crate::auth::Role;
use crate::config::CallRole;
use crate::http::{ApiError, Caller, ErrorBody, HttpContext, RequestId};
use crate::mcp::server::{HealthParts, McpCaller, McpEndpoint, ToolParts, MAX_MCP_BODY};
use crate::mcp::{
    CallContext, CallError, Connections, McpRegistry, PingError, ServerView, ToolView,
};
use crate::metrics::McpMetrics;
use crate::probe::{McpCheckFailure, McpServers};
use crate::records::Outcome;
use crate::services::{common, Assembled, Core, ServiceState, Shared};
use crate::supervise::env::EnvPolicy;
use crate::worker::Worker;

/// What the bridge's handlers use besides the core: the registry of MCP servers and their tools, and
/// hale's own MCP server (`/mcp`).
#[derive(Debug)]
pub struct McpBridgeState {
    pub registry: Arc<McpRegistry>,
    pub endpoint: McpEndpoint,
}

/// Builds the bridge's registry and the worker that keeps its servers connected.
pub fn assemble(shared: &Shared) -> Assembled {
    let config = &shared.core.config;
    let registry = Arc::new(McpRegistry::new(
        &config.mcp_servers,
        config.breaker.settings(),
        shared.core.clock.clone(),
        (!config.mcp_servers.is_empty()).then(|| McpMetrics::register(shared.metrics.registry())),
        Some(shared.core.writer.clone()),
    ));
    let mark = std::fs::canonicalize(shared.core.store.path())
        .unwrap_or_else(|_| shared.core.store.path().to_owned())
        .display()
        .to_string();
    // No server, no worker.
    let workers: Vec<Arc<dyn Worker>> = if config.mcp_servers.is_empty() {
        Vec::new()
    } else {
        vec![Arc::new(Connections::new(
            registry.clone(),
            EnvPolicy::from_config(config),
            mark,
        ))]
    };
    // The Health Proxy's monitor checks and heals the servers' targets (`mcp:<name>`) through the registry.
    shared
        .mcp
        .connect(Arc::new(WatchedServers(registry.clone())));
    let parts = ToolParts {
        store: shared.core.store.clone(),
        config: shared.core.config.clone(),
        clock: shared.core.clock.clone(),
        health: shared.health_proxy.as_ref().map(|state| HealthParts {
            monitor: state.monitor.clone(),
            healer: state.healer.clone(),
            slo: state.slo.clone(),
        }),
    };
    let endpoint = McpEndpoint::new(Arc::new(parts), config.listen.mcp_bridge.ip().is_loopback());
    Assembled {
        state: ServiceState::McpBridge(web::Data::new(McpBridgeState { registry, endpoint })),
        workers,
    }
}

/// The registry as the monitor and auto-heal see it: a check is a ping, a heal is a reconnect.
struct WatchedServers(Arc<McpRegistry>);

impl McpServers for WatchedServers {
    fn check<'a>(
        &'a self,
        server: &'a str,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<(), McpCheckFailure>> {
        Box::pin(async move {
            self.0.ping(server, timeout).await.map_err(|e| {
                let outcome = match e {
                    PingError::Timeout { .. } => Outcome::Timeout,
                    PingError::NotReady { .. } => Outcome::Down,
                    PingError::Unknown(_) | PingError::Failed { .. } => Outcome::Error,
                };
                McpCheckFailure {
                    outcome,
                    error: e.to_string(),
                }
            })
        })
    }

    fn reconnect<'a>(&'a self, server: &'a str) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move { self.0.reconnect(server).map(|_| ()) })
    }
}

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(health)
        .service(common::metrics)
        .service(servers)
        .service(tools)
        // Before `/tools/{name}`, so `calls` is this route, not a tool's name.
        .service(tool_calls)
        .service(call_tool)
        .service(mcp_post);
}

/// hale's own MCP server (streamable HTTP, stateless): a JSON-RPC message in, its answer as JSON.
///
/// The tools are hale's answers (`health_all`, `health_history`, `slo`, `slo_target`, `slo_report`,
/// `heal_events`, `active_alerts`, `heal`), each built by the function its route calls. Reads need the read
/// role (or loopback); the `heal` tool needs the operate role, checked on each call. The client must
/// accept `application/json` and `text/event-stream`. There is no `GET /mcp` (405): the server opens no
/// stream of its own, every answer comes back in its POST's response.
#[utoipa::path(
    tag = "mcp",
    request_body(content = Object, description = "A JSON-RPC message of the Model Context Protocol", content_type = "application/json",
        example = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})),
    responses(
        (status = 200, description = "The JSON-RPC answer (an error answer names the bad argument)", content_type = "application/json", body = Object,
            example = json!({"jsonrpc": "2.0", "id": 1, "result": {"tools": [{"name": "health_all", "description": "Checks every target now", "inputSchema": {"type": "object", "properties": {}}}]}})),
        (status = 202, description = "A notification or a response was accepted"),
        (status = 400, description = "The body is not a JSON-RPC message"),
        (status = 403, description = "The `Host` or `Origin` header is not allowed (DNS rebinding protection)"),
        (status = 406, description = "The `Accept` header does not name both `application/json` and `text/event-stream`"),
        (status = 413, description = "The body is over 1 MiB"),
        (status = 415, description = "The body is not `application/json`"),
        (status = 422, description = "The message is not one the server takes"),
    )
)]
#[post("/mcp")]
pub async fn mcp_post(
    req: HttpRequest,
    state: web::Data<McpBridgeState>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    mcp(req, state, body).await
}

/// The actix request as an `http` request for rmcp's service (with the caller's role in its extensions),
/// and its answer back.
async fn mcp(
    req: HttpRequest,
    state: web::Data<McpBridgeState>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    use http_body_util::BodyExt;

    if body.len() > MAX_MCP_BODY {
        return Err(ApiError::PayloadTooLarge {
            limit: MAX_MCP_BODY,
        });
    }
    let bad = |what: &str| ApiError::BadRequest(format!("the request's {what} cannot be read"));
    let mut builder = http::Request::builder()
        .method(
            http::Method::from_bytes(req.method().as_str().as_bytes())
                .map_err(|_| bad("method"))?,
        )
        .uri(req.uri().to_string());
    for (name, value) in req.headers() {
        builder = builder.header(name.as_str(), value.as_bytes());
    }
    builder = builder.extension(McpCaller {
        role: Caller::role_of(&req),
    });
    let request = builder
        .body(http_body_util::Full::new(body))
        .map_err(|_| bad("headers"))?;
    let answer = state.endpoint.handle(request).await;
    let (parts, body) = answer.into_parts();
    let status = actix_web::http::StatusCode::from_u16(parts.status.as_u16())
        .unwrap_or(actix_web::http::StatusCode::BAD_GATEWAY);
    let mut response = HttpResponse::build(status);
    for (name, value) in &parts.headers {
        response.append_header((name.as_str(), value.as_bytes()));
    }
    // Stateless and JSON: the body ends with the answer, so it is read whole.
    let bytes = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(never) => match never {},
    };
    Ok(response.body(bytes))
}

/// Is the bridge able to do its job?
///
/// 200 with `ok: true` while health checks can be stored and at least one configured MCP server is ready
/// (or none is configured); 503 when every configured server is down. `details.mcp_servers_not_ready`
/// always names the servers that are not ready.
#[utoipa::path(
    tag = "operations",
    responses(
        (status = 200, description = "The bridge can do its job", body = HealthResponse),
        (status = 503, description = "Every configured MCP server is down, or health checks cannot be stored", body = HealthResponse),
    )
)]
#[get("/health")]
pub async fn health(
    core: web::Data<Core>,
    ctx: web::Data<HttpContext>,
    state: web::Data<McpBridgeState>,
) -> HttpResponse {
    let mut body = common::own_health(&core, &ctx);
    let not_ready: Vec<String> = state
        .registry
        .servers()
        .into_iter()
        .filter(|s| s.state != crate::mcp::ServerState::Ready)
        .map(|s| s.name)
        .collect();
    body.ok &= state.registry.any_ready();
    body.details.mcp_servers_not_ready = Some(not_ready);
    common::health_answer(body, &ctx)
}

/// The configured MCP servers and the state of each connection.
#[utoipa::path(
    tag = "mcp",
    responses((status = 200, description = "Every configured server, in config order", body = Vec<ServerView>))
)]
#[get("/servers")]
pub async fn servers(state: web::Data<McpBridgeState>) -> HttpResponse {
    HttpResponse::Ok().json(state.registry.servers())
}

/// Every tool of every ready MCP server, by name (served from memory).
#[utoipa::path(
    tag = "mcp",
    responses((status = 200, description = "The tools, by name", body = Vec<ToolView>))
)]
#[get("/tools")]
pub async fn tools(state: web::Data<McpBridgeState>) -> HttpResponse {
    // `ToolView`s, written once per change of the catalog, not per request.
    HttpResponse::Ok()
        .content_type(actix_web::http::header::ContentType::json())
        .body(state.registry.tools_json().to_string())
}

/// Past calls of tools, newest first.
///
/// Every call through `POST /tools/{name}` is stored (time, tool, server, outcome, latency, request id,
/// the caller's role and the size of the arguments), never its arguments or result unless the server has
/// `log_arguments: true`; those are shown only to the operate and admin roles.
#[utoipa::path(
    tag = "mcp",
    params(ToolCallsParams),
    responses(
        (status = 200, description = "Calls, newest first", body = Vec<ToolCallView>),
        (status = 400, description = "A parameter is invalid; the message names it", body = ErrorBody),
    )
)]
#[get("/tools/calls")]
pub async fn tool_calls(
    req: HttpRequest,
    core: web::Data<Core>,
    query: web::Query<ToolCallsParams>,
) -> Result<HttpResponse, ApiError> {
    let show_payloads = Caller::role_of(&req).is_some_and(|r| r >= Role::Operate);
    let views = calls_answer::tool_calls(&core.store, &query, show_payloads).await?;
    Ok(HttpResponse::Ok().json(views))
}

/// What a call returns.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "tool": "echo", "server": "everything", "is_error": false, "latency_ms": 2.4,
    "result": {"content": [{"type": "text", "text": "Echo: hi"}]}
}))]
pub struct CallAnswer {
    /// The name it was called by.
    pub tool: String,
    pub server: String,
    /// The tool reported a failure (`isError: true`): its content says what went wrong.
    pub is_error: bool,
    pub latency_ms: f64,
    /// The tool's result as its server sent it: every content item, and `structuredContent`.
    #[schema(value_type = Object)]
    pub result: Value,
}

/// Call a tool with a JSON object of arguments.
///
/// The arguments are checked against the tool's input schema before anything is sent. Needs the operate
/// role, unless the tool's server has `call_role: read`. The call has the server's `timeout_s`; past it the
/// call is cancelled upstream (`notifications/cancelled`). Each tool has a circuit breaker: while it is open,
/// calls are refused at once.
#[utoipa::path(
    tag = "mcp",
    params(("name" = String, Path, description = "The tool's name, as `GET /tools` lists it")),
    request_body(content = Object, description = "The tool's arguments (an empty body is `{}`)", content_type = "application/json",
        example = json!({"message": "hi"})),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The tool answered (`is_error` says whether it reports a failure)", body = CallAnswer),
        (status = 400, description = "The body is not JSON", body = ErrorBody),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "The token's role is too weak for this server's tools", body = ErrorBody),
        (status = 404, description = "No tool by that name", body = ErrorBody),
        (status = 422, description = "The arguments are not an object, or do not fit the input schema; the message names the field", body = ErrorBody),
        (status = 502, description = "The server failed the call, its answer is unusable, or the result is over `max_result_bytes`", body = ErrorBody),
        (status = 503, description = "The server is not connected, or the tool's circuit breaker is open (with `Retry-After`)", body = ErrorBody),
        (status = 504, description = "The server did not answer within its `timeout_s`; the call was cancelled upstream", body = ErrorBody),
    )
)]
#[post("/tools/{name}")]
pub async fn call_tool(
    req: HttpRequest,
    state: web::Data<McpBridgeState>,
    name: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let name = name.into_inner();
    let role = Caller::role_of(&req);
    let required = state
        .registry
        .call_role(&name)
        .ok_or_else(|| ApiError::NotFound(CallError::UnknownTool(name.clone()).to_string()))?;
    if required == CallRole::Operate && role.is_none_or(|r| r < Role::Operate) {
        let message = format!("POST /tools/{name} needs the operate role");
        return Err(match role {
            None => {
                ApiError::Unauthorized(format!("{message}: send Authorization: Bearer <token>"))
            }
            Some(role) => ApiError::Forbidden(format!("{message}; this token grants {role}")),
        });
    }
    let arguments = if body.iter().all(u8::is_ascii_whitespace) {
        serde_json::Map::new()
    } else {
        match serde_json::from_slice::<Value>(&body) {
            Ok(Value::Object(map)) => map,
            Ok(other) => {
                return Err(ApiError::Unprocessable(format!(
                    "the body must be a JSON object of the tool's arguments, not {}",
                    json_kind(&other)
                )))
            }
            Err(e) => return Err(ApiError::BadRequest(format!("the body is not JSON: {e}"))),
        }
    };
    let context = CallContext {
        request_id: RequestId::of(&req),
        role: role.map(Role::as_str),
    };
    let outcome = state
        .registry
        .call(&name, arguments, context)
        .await
        .map_err(call_error)?;
    Ok(HttpResponse::Ok().json(CallAnswer {
        tool: name,
        server: outcome.server.to_string(),
        is_error: outcome.is_error,
        latency_ms: outcome.latency.as_secs_f64() * 1000.0,
        result: outcome.result,
    }))
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn call_error(e: CallError) -> ApiError {
    let message = e.to_string();
    match e {
        CallError::UnknownTool(_) => ApiError::NotFound(message),
        CallError::Invalid(_) => ApiError::Unprocessable(message),
        CallError::UnusableSchema(_) | CallError::TooLarge { .. } | CallError::Upstream { .. } => {
            ApiError::BadGateway(message)
        }
        CallError::NotReady { .. } => ApiError::Unavailable(message),
        CallError::BreakerOpen { retry_after, .. } => ApiError::UnavailableFor {
            message,
            retry_after_s: retry_after.map_or(1, |d| d.as_secs().max(1)),
        },
        CallError::Timeout { .. } => ApiError::GatewayTimeout(message),
    }
}
