//! MCP WebBridge (:3003): exposes the tools of Model Context Protocol servers over HTTP.

use actix_web::web;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::services::{common, Assembled, ServiceState, Shared};

/// What the bridge's handlers use besides the core: nothing yet; the registry of MCP clients goes here.
#[derive(Debug, Default)]
pub struct McpBridgeState {}

/// Builds the bridge's state and its workers (none yet).
pub fn assemble(_shared: &Shared) -> Assembled {
    Assembled {
        state: ServiceState::McpBridge(web::Data::new(McpBridgeState::default())),
        workers: Vec::new(),
    }
}

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(common::health).service(common::metrics);
}
