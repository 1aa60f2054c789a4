//! The three HTTP services: their routes, their OpenAPI documents and the state their handlers share.

mod boss_api;
mod common;
pub mod health_proxy;
mod mcp_bridge;

use std::sync::Arc;
use std::time::Instant;

use actix_web::{web, App};
use utoipa::openapi::OpenApi;
use utoipa_actix_web::service_config::ServiceConfig;
use utoipa_actix_web::AppExt;

use crate::clock::Clock;
use crate::config::Config;
use crate::kind::ServiceKind;
use crate::store::writer::CheckWriter;
use crate::store::Store;

pub use boss_api::{backup_now, BackupView};
pub use common::{HealthDetails, HealthResponse};
pub use health_proxy::HealthProxyState;

/// What the handlers of every service share, built once in `app.rs`. A service's own state (the Health
/// Proxy's monitor, later the MCP registry or the workflow queue) is registered next to it, by that service.
#[derive(Debug, Clone)]
pub struct Core {
    pub config: Arc<Config>,
    pub store: Store,
    pub writer: CheckWriter,
    pub clock: Arc<dyn Clock>,
    pub started_at: Instant,
}

/// One service's own state, registered as app data beside the `Core`.
#[derive(Debug, Clone)]
pub enum ServiceState {
    HealthProxy(web::Data<HealthProxyState>),
    McpBridge,
    BossApi,
}

impl ServiceState {
    pub fn kind(&self) -> ServiceKind {
        match self {
            Self::HealthProxy(_) => ServiceKind::HealthProxy,
            Self::McpBridge => ServiceKind::McpBridge,
            Self::BossApi => ServiceKind::BossApi,
        }
    }

    /// Registers this service's state and its documented routes.
    pub fn configure(&self, cfg: &mut ServiceConfig) {
        if let Self::HealthProxy(state) = self {
            cfg.app_data(state.clone());
        }
        routes(self.kind())(cfg);
    }
}

/// Registers the documented routes of one service.
fn routes(kind: ServiceKind) -> fn(&mut ServiceConfig) {
    match kind {
        ServiceKind::HealthProxy => health_proxy::configure,
        ServiceKind::McpBridge => mcp_bridge::configure,
        ServiceKind::BossApi => boss_api::configure,
    }
}

/// The OpenAPI document of one service, collected from its handlers.
pub fn openapi(kind: ServiceKind) -> OpenApi {
    let (_, doc) = App::new()
        .into_utoipa_app()
        .openapi(base_document(kind))
        .configure(routes(kind))
        .split_for_parts();
    doc
}

fn base_document(kind: ServiceKind) -> OpenApi {
    use utoipa::openapi::{ComponentsBuilder, InfoBuilder, LicenseBuilder, OpenApiBuilder};
    use utoipa::{PartialSchema, ToSchema};

    let description = match kind {
        ServiceKind::HealthProxy => {
            "Probes every configured service with timeouts, circuit breakers and a short cache, keeps their \
             history and answers how healthy everything is."
        }
        ServiceKind::McpBridge => {
            "Connects to Model Context Protocol servers and exposes their tools over HTTP."
        }
        ServiceKind::BossApi => "Starts and tracks workflows on a persistent task queue.",
    };
    let mut components = ComponentsBuilder::new();
    let mut schemas = Vec::new();
    crate::http::ErrorBody::schemas(&mut schemas);
    components = components.schema(
        crate::http::ErrorBody::name(),
        crate::http::ErrorBody::schema(),
    );
    for (name, schema) in schemas {
        components = components.schema(name, schema);
    }
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title(kind.title())
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(description))
                .license(Some(
                    LicenseBuilder::new().name("MIT OR Apache-2.0").build(),
                )),
        )
        .components(Some(components.build()))
        .build()
}
