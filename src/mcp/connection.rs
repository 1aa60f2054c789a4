//! One connection per configured MCP server, kept up by one task each under the `Connections` worker:
//! start the server (a stdio child) or open the session (streamable HTTP), the handshake and the tool
//! listing (each within the server's `timeout_s`), then serve until the connection ends, relisting tools
//! when the server says they changed. A failed or ended connection is retried with capped backoff that
//! starts over only after a connection that lasted (`STABLE_AFTER`), so a server that crashes at once is not
//! restarted in a loop. One server's trouble never touches another's task. A reconnect asked for (the heal
//! of the server's target, `McpRegistry::reconnect`) ends the connection, or the wait of a backoff, and
//! connects again at once.
//!
//! A stdio server is forked by the supervisor's `Spawner` thread: its own process group, killed by the
//! kernel if hale dies (`PR_SET_PDEATHSIG`), a minimal environment (`PATH`, `HOME`, `LANG`, `TZ` and the
//! server's `env`; never a role token) carrying `MCP_SERVER_OF`, by which the next start kills what a
//! `kill -9` of hale left. Its stderr is kept (the last lines, for `/servers`) and logged at debug.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use rmcp::model::{ClientCapabilities, Implementation, InitializeRequestParams, Tool};
use rmcp::service::{NotificationContext, RunningService};
use rmcp::transport::async_rw::AsyncRwTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::{ClientHandler, RoleClient, ServiceExt};
use tokio::io::BufReader;
use tokio::process::Child;
use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;
use crate::config::{McpCommand, McpHttp, McpTransport, RunConfig, TokenSource};
use crate::mcp::registry::{Handshake, McpRegistry, Slot};
use crate::supervise::env::{self as child_env, EnvPolicy, MCP_SERVER_OF};
use crate::supervise::{self, Spawner};
use crate::worker::Worker;

/// The first retry after a failure; doubled per failure up to `RETRY_MAX`.
const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(300);
/// A connection that lasted this long starts the retry schedule over.
const STABLE_AFTER: Duration = Duration::from_secs(60);
/// `tools/list_changed` notifications closer together than this cause one relisting.
const RELIST_DEBOUNCE: Duration = Duration::from_millis(500);
/// How long a stopped stdio server has after SIGTERM before its group is killed.
const STOP_GRACE: Duration = Duration::from_secs(2);
/// JSON escaping can double a result's bytes on the wire; past this a stdio line is dropped unread.
const LINE_OVERHEAD: usize = 64 * 1024;

/// The worker that keeps every server's connection.
pub struct Connections {
    registry: Arc<McpRegistry>,
    spawner: Option<Spawner>,
    policy: EnvPolicy,
    /// This database's mark (`MCP_SERVER_OF`): its canonical path.
    mark: String,
}

impl Connections {
    pub fn new(registry: Arc<McpRegistry>, policy: EnvPolicy, mark: String) -> Self {
        let needs_spawner = registry
            .slots()
            .iter()
            .any(|slot| matches!(slot.config.transport, McpTransport::Command(_)));
        let spawner = if needs_spawner {
            match Spawner::start() {
                Ok(spawner) => Some(spawner),
                Err(e) => {
                    tracing::error!(error = %e, "cannot start the thread that starts stdio MCP servers; none will run");
                    None
                }
            }
        } else {
            None
        };
        Self {
            registry,
            spawner,
            policy,
            mark,
        }
    }
}

impl Worker for Connections {
    fn name(&self) -> &'static str {
        "mcp-connections"
    }

    fn run(self: Arc<Self>, cancel: CancellationToken) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            if self.spawner.is_some() {
                let mark = self.mark.clone();
                let _ = tokio::task::spawn_blocking(move || {
                    supervise::leftovers::kill_marked_processes(MCP_SERVER_OF, &mark, "start")
                })
                .await;
            }
            let keepers: Vec<_> = self
                .registry
                .slots()
                .iter()
                .map(|slot| tokio::spawn(keep(self.clone(), slot.clone(), cancel.clone())))
                .collect();
            for keeper in futures_util::future::join_all(keepers).await {
                if let Err(e) = keeper {
                    tracing::error!(error = %e, "an MCP server's connection task failed");
                }
            }
        })
    }
}

/// Keeps one server connected until `cancel`.
async fn keep(connections: Arc<Connections>, slot: Arc<Slot>, cancel: CancellationToken) {
    let registry = &connections.registry;
    let mut backoff = Backoff::new(RETRY_FIRST, RETRY_MAX).with_stable_after(STABLE_AFTER);
    loop {
        // A reconnect that was asked for is this attempt: a wake-up left over must not end the connection it
        // makes.
        if slot.reconnect_asked.swap(false, Ordering::AcqRel) {
            let _ = slot.reconnect.notified().now_or_never();
        }
        slot.connecting();
        registry.publish_states();
        let started = tokio::time::Instant::now();
        let attempt = tokio::select! {
            attempt = connect(&connections, &slot) => attempt,
            () = cancel.cancelled() => return,
        };
        let error = match attempt {
            Ok(mut live) => {
                // A reconnect asked for while this attempt ran is this connection.
                if slot.reconnect_asked.swap(false, Ordering::AcqRel) {
                    let _ = slot.reconnect.notified().now_or_never();
                }
                tracing::info!(server = %slot.name, tools = live.tool_count, "connected to MCP server");
                registry.rebuild_catalog();
                registry.publish_states();
                let ended = live.serve(&slot, registry, &cancel).await;
                slot.gone();
                registry.rebuild_catalog();
                live.close().await;
                match ended {
                    None => return,
                    Some(why) if slot.reconnect_asked.load(Ordering::Acquire) => {
                        tracing::info!(server = %slot.name, ended = %why, "reconnecting to MCP server as asked");
                        continue;
                    }
                    Some(why) => why,
                }
            }
            Err(why) => why,
        };
        let delay = backoff.after_run(started.elapsed());
        let retry_at = crate::clock::add_saturating(registry.clock().now(), delay);
        tracing::warn!(server = %slot.name, error = %error, retry_in_ms = delay.as_millis() as u64, "MCP server is not connected; retrying");
        slot.down(error, retry_at);
        registry.publish_states();
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            // A reconnect asked for (a heal) does not wait out the backoff.
            () = slot.reconnect.notified() => {}
            () = cancel.cancelled() => return,
        }
    }
}

/// What hale's client side does with what a server sends unasked: a changed tool list is relisted.
#[derive(Clone)]
struct BridgeClient {
    slot: Arc<Slot>,
}

impl ClientHandler for BridgeClient {
    fn get_info(&self) -> InitializeRequestParams {
        InitializeRequestParams::new(
            ClientCapabilities::default(),
            Implementation::new("hale", env!("CARGO_PKG_VERSION")),
        )
    }

    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.slot.tools_changed.notify_one();
    }
}

/// A connected server.
struct Live {
    service: RunningService<RoleClient, BridgeClient>,
    child: Option<Child>,
    tool_count: usize,
}

/// Starts or opens the server, shakes hands and lists its tools, each within its timeout.
async fn connect(connections: &Connections, slot: &Arc<Slot>) -> Result<Live, String> {
    let timeout = Duration::from_secs(slot.config.timeout_s);
    let client = BridgeClient { slot: slot.clone() };
    let (service, child) = match &slot.config.transport {
        McpTransport::Command(command) => {
            let mut child = spawn(connections, slot, command).await?;
            let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
                return Err("the server's stdin or stdout is not a pipe".to_owned());
            };
            if let Some(stderr) = child.stderr.take() {
                tokio::spawn(keep_stderr(slot.clone(), stderr));
            }
            let transport = AsyncRwTransport::new_client(stdout, stdin).with_max_line_length(
                slot.config.max_result_bytes.saturating_mul(2) + LINE_OVERHEAD,
            );
            match tokio::time::timeout(timeout, client.serve(transport)).await {
                Ok(Ok(service)) => (service, Some(child)),
                Ok(Err(e)) => {
                    stop_child(&mut child).await;
                    return Err(format!("the handshake failed: {e}"));
                }
                Err(_) => {
                    stop_child(&mut child).await;
                    return Err(format!(
                        "no answer to initialize within {} s",
                        slot.config.timeout_s
                    ));
                }
            }
        }
        McpTransport::Http(http) => {
            let config = http_config(http, slot.config.max_result_bytes)?;
            let transport = StreamableHttpClientTransport::from_config(config);
            match tokio::time::timeout(timeout, client.serve(transport)).await {
                Ok(Ok(service)) => (service, None),
                Ok(Err(e)) => return Err(format!("the handshake failed: {e}")),
                Err(_) => {
                    return Err(format!(
                        "no answer to initialize within {} s",
                        slot.config.timeout_s
                    ))
                }
            }
        }
    };
    let mut live = Live {
        service,
        child,
        tool_count: 0,
    };
    let tools = match list_tools(&live, timeout).await {
        Ok(tools) => tools,
        Err(e) => {
            live.close().await;
            return Err(e);
        }
    };
    let info = live.service.peer().peer_info();
    let handshake = Handshake {
        protocol_version: info
            .as_ref()
            .map(|i| i.protocol_version.to_string())
            .unwrap_or_default(),
        server_name: info
            .as_ref()
            .and_then(|i| i.server_info.as_ref())
            .map(|s| s.name.clone()),
        server_version: info
            .as_ref()
            .and_then(|i| i.server_info.as_ref())
            .map(|s| s.version.clone()),
    };
    let now = connections.registry.clock().now();
    slot.ready(live.service.peer().clone(), handshake, tools, now);
    live.tool_count = connections
        .registry
        .servers()
        .iter()
        .find(|s| s.name == *slot.name)
        .map_or(0, |s| s.tool_count);
    Ok(live)
}

/// Every tool of the server, following pagination, within `timeout`.
async fn list_tools(live: &Live, timeout: Duration) -> Result<Vec<Tool>, String> {
    match tokio::time::timeout(timeout, live.service.peer().list_all_tools()).await {
        Ok(Ok(tools)) => Ok(tools),
        Ok(Err(e)) => Err(format!("listing its tools failed: {e}")),
        Err(_) => Err(format!(
            "no answer to tools/list within {} s",
            timeout.as_secs()
        )),
    }
}

impl Live {
    /// Serves until the connection ends (`Some(why)`) or `cancel` (`None`), relisting tools on change.
    async fn serve(
        &mut self,
        slot: &Arc<Slot>,
        registry: &McpRegistry,
        cancel: &CancellationToken,
    ) -> Option<String> {
        let timeout = Duration::from_secs(slot.config.timeout_s);
        let closed = self.service.cancellation_token();
        loop {
            tokio::select! {
                () = cancel.cancelled() => return None,
                status = wait_child(&mut self.child) => {
                    return Some(format!("the server exited ({status})"));
                }
                () = transport_closed(&self.service) => {
                    let _ = &closed;
                    return Some("the connection closed".to_owned());
                }
                () = slot.reconnect.notified() => {
                    return Some("a reconnect was asked for".to_owned());
                }
                () = slot.tools_changed.notified() => {
                    tokio::time::sleep(RELIST_DEBOUNCE).await;
                    match list_tools(self, timeout).await {
                        Ok(tools) => {
                            slot.relisted(tools);
                            registry.rebuild_catalog();
                            tracing::info!(server = %slot.name, "relisted the MCP server's tools after it said they changed");
                        }
                        Err(e) => return Some(e),
                    }
                }
            }
        }
    }

    /// Ends the session, and stops a stdio server: its stdin closed, then SIGTERM to its group, then SIGKILL.
    async fn close(&mut self) {
        let _ = self
            .service
            .close_with_timeout(Duration::from_millis(500))
            .await;
        if let Some(child) = self.child.as_mut() {
            stop_child(child).await;
        }
    }
}

/// Resolves when the session's transport has closed (checked a few times a second: rmcp says so only
/// through `is_closed`).
async fn transport_closed(service: &RunningService<RoleClient, BridgeClient>) {
    loop {
        if service.is_closed() || service.peer().is_transport_closed() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Resolves when the stdio child exits (never for an HTTP server).
async fn wait_child(child: &mut Option<Child>) -> String {
    match child {
        Some(child) => match child.wait().await {
            Ok(status) => status.to_string(),
            Err(e) => e.to_string(),
        },
        None => std::future::pending().await,
    }
}

/// Stops a stdio server's whole process group: SIGTERM, a grace period, then SIGKILL.
async fn stop_child(child: &mut Child) {
    let Some(pgid) = child.id() else {
        return; // already reaped
    };
    supervise::signal_group(pgid, libc::SIGTERM);
    if tokio::time::timeout(STOP_GRACE, child.wait())
        .await
        .is_err()
    {
        supervise::signal_group(pgid, libc::SIGKILL);
        let _ = child.wait().await;
    }
}

/// Starts a stdio server from its minimal environment.
async fn spawn(
    connections: &Connections,
    slot: &Slot,
    command: &McpCommand,
) -> Result<Child, String> {
    let spawner = connections
        .spawner
        .as_ref()
        .ok_or("the thread that starts stdio MCP servers is not running")?;
    let mut env = connections
        .policy
        .build(&slot.name, &[], &command.env, child_env::from_hale);
    env.retain(|(k, _)| k != MCP_SERVER_OF && k != child_env::SUPERVISED_BY);
    env.push((MCP_SERVER_OF.to_owned(), connections.mark.clone()));
    let run = RunConfig::process(
        command.argv.clone(),
        command.cwd.clone(),
        command.env.clone(),
    );
    spawner
        .spawn_with_stdin(Arc::new(run), Arc::new(env))
        .await
        .map_err(|e| format!("cannot start {:?}: {e}", command.argv[0]))
}

/// Keeps the last lines of a stdio server's stderr.
async fn keep_stderr(slot: Arc<Slot>, stderr: tokio::process::ChildStderr) {
    let mut reader = BufReader::new(stderr);
    let mut line = Vec::new();
    while let Ok(Some(_cut)) =
        supervise::read_capped_line(&mut reader, &mut line, supervise::MAX_LINE_BYTES).await
    {
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\n', '\r']);
        tracing::debug!(server = %slot.name, line = %text, "MCP server stderr");
        slot.push_stderr(text);
    }
}

/// The streamable HTTP transport's settings: headers, the bearer token read now, response size caps.
fn http_config(
    http: &McpHttp,
    max_result_bytes: usize,
) -> Result<StreamableHttpClientTransportConfig, String> {
    let mut headers = std::collections::HashMap::new();
    for (name, value) in &http.headers {
        let name = reqwest::header::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("header {name:?} is not a header name"))?;
        let value = reqwest::header::HeaderValue::from_str(value)
            .map_err(|_| format!("header {name}: the value is not a valid header value"))?;
        headers.insert(name, value);
    }
    let mut config = StreamableHttpClientTransportConfig::with_uri(http.url.as_str())
        .custom_headers(headers)
        .max_json_response_size(max_result_bytes.saturating_mul(2) + LINE_OVERHEAD)
        .max_sse_event_size(max_result_bytes.saturating_mul(2) + LINE_OVERHEAD);
    if let Some(source) = &http.bearer_token {
        config = config.auth_header(read_token(source)?);
    }
    Ok(config)
}

/// A bearer token from its environment variable or file (a file's trailing newline is not part of it).
fn read_token(source: &TokenSource) -> Result<String, String> {
    let raw = match source {
        TokenSource::Env(name) => std::env::var(name)
            .map_err(|_| format!("the bearer token's {} is not set", source.describe()))?,
        TokenSource::File(path) => std::fs::read_to_string(path).map_err(|e| {
            format!(
                "the bearer token's {} cannot be read: {}",
                source.describe(),
                e.kind()
            )
        })?,
    };
    let token = raw.trim_end_matches(['\n', '\r']);
    if token.is_empty() {
        return Err(format!("the bearer token's {} is empty", source.describe()));
    }
    Ok(token.to_owned())
}
