//! MCP WebBridge (:3003): exposes the tools of Model Context Protocol servers over HTTP.

use utoipa_actix_web::service_config::ServiceConfig;

use crate::services::common;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(common::health).service(common::metrics);
}
