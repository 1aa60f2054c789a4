//! A configured MCP server watched as a target (`mcp:<name>`): `McpRegistry::ping` asks the live connection
//! for an MCP `ping` (or a first page of `tools/list` when the server answers that it has no `ping`), and
//! `McpRegistry::reconnect` drops the connection so its task connects again at once, stopping and starting a
//! stdio server's process group. The connection's task (`connection.rs`) does the reconnecting.

use std::sync::atomic::Ordering;
use std::time::Duration;

use rmcp::model::{ClientRequest, ErrorCode, ListToolsRequest, PingRequest};
use rmcp::service::{PeerRequestOptions, ServiceError};

use crate::mcp::registry::{McpRegistry, ServerState};

/// Why a ping did not find the server up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PingError {
    #[error("no MCP server named {0:?}")]
    Unknown(String),
    #[error("MCP server {server:?} is not connected ({state}){}", last_error.as_ref().map(|e| format!(": {e}")).unwrap_or_default())]
    NotReady {
        server: String,
        state: &'static str,
        last_error: Option<String>,
    },
    #[error("MCP server {server:?} did not answer {method} within {timeout_ms} ms")]
    Timeout {
        server: String,
        method: &'static str,
        timeout_ms: u128,
    },
    #[error("MCP server {server:?} failed {method}: {message}")]
    Failed {
        server: String,
        method: &'static str,
        message: String,
    },
}

impl McpRegistry {
    /// One `ping` of `server` over its live connection, within `timeout`; a server that has no `ping`
    /// ("method not found") is asked for the first page of `tools/list` instead.
    pub async fn ping(&self, server: &str, timeout: Duration) -> Result<(), PingError> {
        let slot = self
            .slot(server)
            .ok_or_else(|| PingError::Unknown(server.to_owned()))?;
        let view = slot.view();
        let peer = match (view.state, slot.peer()) {
            (ServerState::Ready, Some(peer)) => peer,
            (state, _) => {
                let state = if state == ServerState::Ready {
                    ServerState::Connecting
                } else {
                    state
                };
                return Err(PingError::NotReady {
                    server: server.to_owned(),
                    state: state.as_str(),
                    last_error: view.last_error,
                });
            }
        };
        let ask = |request: ClientRequest| {
            let peer = peer.clone();
            async move {
                match peer
                    .send_request_with_option(request, PeerRequestOptions::with_timeout(timeout))
                    .await
                {
                    Ok(handle) => handle.await_response().await.map(|_| ()),
                    Err(e) => Err(e),
                }
            }
        };
        let failed = |method: &'static str, error: ServiceError| match error {
            ServiceError::Timeout { .. } => PingError::Timeout {
                server: server.to_owned(),
                method,
                timeout_ms: timeout.as_millis(),
            },
            other => PingError::Failed {
                server: server.to_owned(),
                method,
                message: other.to_string(),
            },
        };
        let ping = ClientRequest::PingRequest(PingRequest {
            method: Default::default(),
            extensions: Default::default(),
        });
        match ask(ping).await {
            Ok(()) => Ok(()),
            Err(ServiceError::McpError(e)) if e.code == ErrorCode::METHOD_NOT_FOUND => {
                // Sent as a request of its own: the peer's `list_tools` may answer from its cache.
                let list = ClientRequest::ListToolsRequest(ListToolsRequest {
                    method: Default::default(),
                    params: None,
                    extensions: Default::default(),
                });
                ask(list).await.map_err(|e| failed("tools/list", e))
            }
            Err(e) => Err(failed("ping", e)),
        }
    }

    /// Drops the connection to `server` so that its task connects again at once (no backoff): a stdio
    /// server's process group is stopped and the server started again. While an attempt is under way, it
    /// is the reconnect; if it fails, the next one starts without waiting out the backoff. Returns the
    /// state the server was in.
    pub fn reconnect(&self, server: &str) -> Result<ServerState, String> {
        let slot = self
            .slot(server)
            .ok_or_else(|| format!("no MCP server named {server:?}"))?;
        let state = slot.view().state;
        slot.reconnect_asked.store(true, Ordering::Release);
        slot.reconnect.notify_one();
        tracing::info!(server = %server, from = state.as_str(), "reconnecting to MCP server");
        Ok(state)
    }
}
