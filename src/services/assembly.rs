//! How a service is put together: from what every service shares (`Shared`), each service's `assemble`
//! builds its own state (what its handlers use) and its background workers. `app.rs` only binds, starts
//! and stops what these return, so a service with new state is one new `assemble`.

use std::sync::Arc;

use actix_web::web;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::events::EventBus;
use crate::kind::ServiceKind;
use crate::metrics::{ServiceMetrics, StartLabels};
use crate::probe::{McpLink, MonitorError};
use crate::services::boss_api::{self, BossApiState};
use crate::services::health_proxy::{self, HealthProxyState};
use crate::services::mcp_bridge::{self, McpBridgeState};
use crate::services::{routes, Core};
use crate::worker::Worker;

/// What a service is assembled from: the core its handlers share, the check events, the label values the
/// config makes known at start, and the service's own metrics (its registry).
#[derive(Debug, Clone)]
pub struct Shared {
    pub core: Core,
    pub events: EventBus,
    pub start_labels: StartLabels,
    /// This service's metrics; its own collectors are registered in their registry.
    pub metrics: ServiceMetrics,
    /// One for all services: the MCP WebBridge's assembly fills it, the Health Proxy's monitor checks and
    /// heals the MCP servers' targets (`mcp:<name>`) through it.
    pub mcp: McpLink,
    /// The Health Proxy's state, once it is assembled in this process: hale's MCP tools answer from it.
    pub health_proxy: Option<web::Data<HealthProxyState>>,
    /// The MCP WebBridge's state, once it is assembled in this process: workflows call its tools.
    pub mcp_bridge: Option<web::Data<McpBridgeState>>,
}

/// One service, assembled: its handlers' state and its background workers.
pub struct Assembled {
    pub state: ServiceState,
    /// In the order they stop: producers first, so nothing is sent to a worker that stopped.
    pub workers: Vec<Arc<dyn Worker>>,
}

impl std::fmt::Debug for Assembled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let workers: Vec<&str> = self.workers.iter().map(|w| w.name()).collect();
        f.debug_struct("Assembled")
            .field("state", &self.state)
            .field("workers", &workers)
            .finish()
    }
}

impl Assembled {
    pub fn kind(&self) -> ServiceKind {
        self.state.kind()
    }

    /// Told when shutdown begins, before the servers stop: the Boss API takes no new runs (503).
    pub fn drain(&self) {
        if let ServiceState::BossApi(state) = &self.state {
            state.engine.drain();
        }
    }

    /// Told before the servers start when the previous run of hale was killed or crashed.
    pub fn follows_unclean_end(&self) {
        if let ServiceState::HealthProxy(state) = &self.state {
            state.supervisor.follows_unclean_end();
        }
    }
}

/// Why a service could not be assembled.
#[derive(Debug, thiserror::Error)]
pub enum AssembleError {
    #[error(transparent)]
    Monitor(#[from] MonitorError),
    #[error("cannot start the workflow engine: {0}")]
    Workflows(#[from] std::io::Error),
}

/// Assembles the service `kind`.
pub async fn assemble(kind: ServiceKind, shared: &Shared) -> Result<Assembled, AssembleError> {
    match kind {
        ServiceKind::HealthProxy => health_proxy::assemble(shared).await,
        ServiceKind::McpBridge => Ok(mcp_bridge::assemble(shared)),
        ServiceKind::BossApi => Ok(boss_api::assemble(shared)?),
    }
}

/// One service's own state, registered as app data beside the `Core`.
#[derive(Debug, Clone)]
pub enum ServiceState {
    HealthProxy(web::Data<HealthProxyState>),
    McpBridge(web::Data<McpBridgeState>),
    BossApi(web::Data<BossApiState>),
}

impl ServiceState {
    pub fn kind(&self) -> ServiceKind {
        match self {
            Self::HealthProxy(_) => ServiceKind::HealthProxy,
            Self::McpBridge(_) => ServiceKind::McpBridge,
            Self::BossApi(_) => ServiceKind::BossApi,
        }
    }

    /// Registers this service's state and its documented routes.
    pub fn configure(&self, cfg: &mut ServiceConfig) {
        match self {
            Self::HealthProxy(state) => cfg.app_data(state.clone()),
            Self::McpBridge(state) => cfg.app_data(state.clone()),
            Self::BossApi(state) => cfg.app_data(state.clone()),
        };
        routes(self.kind())(cfg);
    }
}
