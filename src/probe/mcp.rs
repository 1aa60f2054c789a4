//! The seam between the monitor and the MCP servers it watches as targets (`mcp:<name>`, `TargetUrl::Mcp`):
//! the `McpServers` trait, which the MCP WebBridge's registry implements (in `services/mcp_bridge.rs`), and
//! `McpLink`, the slot the monitor holds and the bridge's assembly fills. The probe never knows how a server is
//! reached, and `mcp` never knows the probe: a check is a ping's round trip, a heal is a reconnect.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;

use crate::probe::check::CheckResult;
use crate::records::Outcome;

/// Why a check of an MCP server did not find it up: the outcome it is stored as, and the error text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct McpCheckFailure {
    pub outcome: Outcome,
    pub error: String,
}

/// The MCP servers hale is connected to, as the monitor and auto-heal see them.
pub trait McpServers: Send + Sync {
    /// One check of `server`: an MCP `ping` (a `tools/list` when the server does not know `ping`), answered
    /// within `timeout`. A server that is not connected fails, saying its state and last error.
    fn check<'a>(
        &'a self,
        server: &'a str,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<(), McpCheckFailure>>;

    /// Drops the connection to `server` and connects again at once (a stdio server's process group is
    /// stopped and the server started again). Returns once the new attempt is under way.
    fn reconnect<'a>(&'a self, server: &'a str) -> BoxFuture<'a, Result<(), String>>;
}

/// Where the monitor finds the MCP servers: empty until the MCP WebBridge is assembled in this process.
#[derive(Clone, Default)]
pub struct McpLink(Arc<OnceLock<Arc<dyn McpServers>>>);

impl std::fmt::Debug for McpLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpLink")
            .field("connected", &self.0.get().is_some())
            .finish()
    }
}

/// The error of a check or heal of an MCP target while the bridge does not run in this process.
const NO_BRIDGE: &str =
    "the MCP WebBridge does not run in this hale process, so its MCP servers cannot be reached from here";

impl McpLink {
    /// Fills the link; a second call changes nothing and returns false.
    pub fn connect(&self, servers: Arc<dyn McpServers>) -> bool {
        self.0.set(servers).is_ok()
    }

    /// Checks `server` once within `timeout`; the latency is the check's round trip.
    pub async fn check(&self, server: &str, timeout: Duration) -> CheckResult {
        let started = Instant::now();
        let answer = match self.0.get() {
            None => Err(McpCheckFailure {
                outcome: Outcome::Error,
                error: NO_BRIDGE.to_owned(),
            }),
            // The registry bounds its own requests; this also bounds a server that is slow to be looked up.
            Some(servers) => {
                match tokio::time::timeout(
                    timeout + Duration::from_millis(100),
                    servers.check(server, timeout),
                )
                .await
                {
                    Ok(answer) => answer,
                    Err(_) => Err(McpCheckFailure {
                        outcome: Outcome::Timeout,
                        error: format!(
                            "MCP server {server:?} did not answer ping within {} ms",
                            timeout.as_millis()
                        ),
                    }),
                }
            }
        };
        let latency = started.elapsed();
        match answer {
            Ok(()) => CheckResult {
                outcome: Outcome::Up,
                http_status: None,
                latency,
                error: None,
            },
            Err(failure) => CheckResult {
                outcome: failure.outcome,
                http_status: None,
                latency,
                error: Some(failure.error),
            },
        }
    }

    /// Asks for a new connection to `server` (the heal of its target).
    pub async fn reconnect(&self, server: &str) -> Result<(), String> {
        match self.0.get() {
            None => Err(NO_BRIDGE.to_owned()),
            Some(servers) => servers.reconnect(server).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_empty_link_fails_every_check_and_heal_saying_the_bridge_is_not_here() {
        let link = McpLink::default();
        let result = link.check("fs", Duration::from_secs(1)).await;
        assert_eq!(result.outcome, Outcome::Error);
        assert_eq!(result.error.as_deref(), Some(NO_BRIDGE));
        assert_eq!(link.reconnect("fs").await, Err(NO_BRIDGE.to_owned()));
    }
}
