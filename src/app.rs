//! Builds hale from its configuration: opens the store, starts the writer and background loops, binds
//! every service's listener (port 0 picks a free port) and runs until told to shut down.

use std::collections::HashMap;
use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::{from_fn, Condition};
use actix_web::{web, App, HttpRequest, HttpServer};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use utoipa_actix_web::AppExt;
use utoipa_swagger_ui::SwaggerUi;

use crate::clock::{Clock, SystemClock};
use crate::config::{Config, ConfigError};
use crate::http::{self, ApiError, HttpContext};
use crate::kind::ServiceKind;
use crate::limits;
use crate::metrics::{HealthMetrics, ServiceMetrics};
use crate::probe::{Monitor, MonitorError};
use crate::services::{self, AppState};
use crate::store::writer::{self, WriterHandle, WriterReport, WriterSettings};
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Monitor(#[from] MonitorError),
    #[error("cannot listen on {addr} for {service}: {source}")]
    Bind {
        service: ServiceKind,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// A running hale: its services, background loops and store.
pub struct Application {
    state: AppState,
    servers: Vec<RunningServer>,
    background: TaskTracker,
    cancel: CancellationToken,
    writer: WriterHandle,
}

struct RunningServer {
    kind: ServiceKind,
    addr: SocketAddr,
    handle: ServerHandle,
    task: JoinHandle<std::io::Result<()>>,
}

impl Application {
    /// Starts every service (or only `only`) on the current tokio runtime.
    pub async fn start(
        config: Config,
        db_path: &Path,
        only: Option<ServiceKind>,
    ) -> Result<Self, StartError> {
        Self::start_with_clock(config, db_path, only, Arc::new(SystemClock)).await
    }

    pub async fn start_with_clock(
        config: Config,
        db_path: &Path,
        only: Option<ServiceKind>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StartError> {
        let kinds: Vec<ServiceKind> = ServiceKind::ALL
            .into_iter()
            .filter(|k| only.is_none_or(|o| o == *k))
            .collect();
        // Before anything opens files: the soft limit goes up to the hard one, and the budget of probes
        // (Monitor::new) is sized from the result.
        limits::raise_open_file_limit();
        // Bind first: a port in use is reported before anything else starts.
        let mut listeners = Vec::new();
        for kind in &kinds {
            let addr = listen_addr(&config, *kind);
            let listener = TcpListener::bind(addr).map_err(|source| StartError::Bind {
                service: *kind,
                addr,
                source,
            })?;
            listeners.push((*kind, listener));
        }

        let store = Store::open(db_path).await?;
        let (check_writer, writer) = writer::spawn(
            store.clone(),
            WriterSettings {
                flush_interval: std::time::Duration::from_millis(config.storage.flush_interval_ms),
                batch_size: config.storage.batch_size,
            },
        );
        // Every service gets its own registry, so a Prometheus scraping all three never counts a series twice.
        let metrics: HashMap<ServiceKind, ServiceMetrics> = ServiceKind::ALL
            .into_iter()
            .map(|k| (k, ServiceMetrics::new(k)))
            .collect();
        let health_proxy_registry = metrics[&ServiceKind::HealthProxy].registry().clone();
        let health_metrics = HealthMetrics::register(&health_proxy_registry);
        let monitor = Monitor::new(
            &config,
            store.clone(),
            check_writer.clone(),
            health_metrics.clone(),
            clock.clone(),
        )
        .await?;
        let state = AppState {
            config: Arc::new(config),
            store,
            writer: check_writer,
            health_metrics,
            monitor: Arc::new(monitor),
            clock,
            started_at: Instant::now(),
        };
        let mut servers = Vec::new();
        for (kind, listener) in listeners {
            let service_metrics = metrics[&kind].clone();
            let addr = listener.local_addr().map_err(|source| StartError::Bind {
                service: kind,
                addr: listen_addr(&state.config, kind),
                source,
            })?;
            let server =
                build_server(kind, listener, state.clone(), service_metrics).map_err(|source| {
                    StartError::Bind {
                        service: kind,
                        addr,
                        source,
                    }
                })?;
            let handle = server.handle();
            tracing::info!(service = kind.as_str(), %addr, "listening");
            if !addr.ip().is_loopback() {
                tracing::warn!(
                    service = kind.as_str(),
                    %addr,
                    "listening on a non-loopback address: anyone who can reach it can call every endpoint, until access tokens exist"
                );
            }
            servers.push(RunningServer {
                kind,
                addr,
                handle,
                task: tokio::spawn(server),
            });
        }

        // Background loops start last, once nothing can fail any more.
        let background = TaskTracker::new();
        let cancel = CancellationToken::new();
        background.spawn(state.store.clone().watch_file(cancel.clone()));
        state.monitor.spawn_retention(&background, &cancel);
        limits::spawn_open_file_watch(&background, &cancel);
        if kinds.contains(&ServiceKind::HealthProxy) {
            let probe_in_background = state.config.monitor.background_checks;
            state
                .monitor
                .spawn(&background, &cancel, probe_in_background);
        }

        Ok(Self {
            state,
            servers,
            background,
            cancel,
            writer,
        })
    }

    /// The bound address of a service, if it runs.
    pub fn addr(&self, kind: ServiceKind) -> Option<SocketAddr> {
        self.servers.iter().find(|s| s.kind == kind).map(|s| s.addr)
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Runs until `shutdown` completes or a server stops by itself, then shuts down gracefully and says how
    /// it went.
    pub async fn run_until(mut self, shutdown: impl Future<Output = ()>) -> Stopped {
        let servers_done =
            futures_util::future::select_all(self.servers.iter_mut().map(|s| &mut s.task));
        let asked = tokio::select! {
            _ = shutdown => {
                tracing::info!("shutdown signal received");
                true
            }
            (result, index, _) = servers_done => {
                let service = self.servers[index].kind.as_str();
                tracing::error!(service, outcome = ?result, "an HTTP service stopped by itself; shutting down");
                false
            }
        };
        let writer = self.shutdown().await;
        Stopped { asked, writer }
    }

    /// Stops accepting, lets in-flight requests finish, stops the background loops, drains the writer and
    /// closes the database, logging each step. Returns what the writer did.
    pub async fn shutdown(self) -> WriterReport {
        tracing::info!(
            timeout_s = self.state.config.http.shutdown_timeout_s,
            "stopping HTTP services; in-flight requests may finish"
        );
        futures_util::future::join_all(self.servers.iter().map(|s| s.handle.stop(true))).await;
        for server in self.servers {
            if !server.task.is_finished() {
                let _ = server.task.await;
            }
        }
        tracing::info!("stopping background loops");
        self.cancel.cancel();
        self.background.close();
        self.background.wait().await;
        tracing::info!("draining the check writer");
        let report = self.writer.shutdown().await;
        tracing::info!("closing the database");
        self.state.store.close().await;
        tracing::info!("shutdown complete");
        report
    }
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stopped {
    /// The stop was asked for (false: an HTTP server stopped by itself).
    pub asked: bool,
    pub writer: WriterReport,
}

fn listen_addr(config: &Config, kind: ServiceKind) -> SocketAddr {
    match kind {
        ServiceKind::HealthProxy => config.listen.health_proxy,
        ServiceKind::McpBridge => config.listen.mcp_bridge,
        ServiceKind::BossApi => config.listen.boss_api,
    }
}

fn build_server(
    kind: ServiceKind,
    listener: TcpListener,
    state: AppState,
    metrics: ServiceMetrics,
) -> std::io::Result<Server> {
    let http_config = state.config.http.clone();
    let limit = http_config.body_limit_bytes;
    let openapi = services::openapi(kind);
    let state = web::Data::new(state);
    let context = web::Data::new(HttpContext {
        kind,
        metrics,
        body_limit: limit,
    });
    let origins = http_config.cors_origins.clone();
    let server = HttpServer::new(move || {
        let (app, _) = App::new()
            .into_utoipa_app()
            .app_data(state.clone())
            .app_data(context.clone())
            .app_data(http::json_config(limit))
            .app_data(http::query_config())
            .app_data(http::path_config())
            .app_data(http::payload_config(limit))
            .configure(services::configure(kind))
            .split_for_parts();
        // The validator badge would fetch from an outside host: switched off, nothing leaves the machine.
        let swagger_config = utoipa_swagger_ui::Config::from("/openapi.json")
            .validator_url("none")
            .display_request_duration(true);
        app.service(
            SwaggerUi::new("/docs/{_:.*}")
                .url("/openapi.json", openapi.clone())
                .config(swagger_config),
        )
        .service(web::redirect("/docs", "/docs/"))
        .default_service(web::to(no_route))
        .wrap(Condition::new(!origins.is_empty(), http::cors(&origins)))
        .wrap(from_fn(http::observe))
    })
    .workers(http_config.workers)
    .shutdown_timeout(http_config.shutdown_timeout_s)
    .disable_signals()
    .listen(listener)?
    .run();
    Ok(server)
}

async fn no_route(req: HttpRequest) -> Result<actix_web::HttpResponse, ApiError> {
    // A path that exists under another method is a 405, not a 404.
    if req.resource_map().has_resource(req.path()) {
        return Err(ApiError::MethodNotAllowed);
    }
    let path: String = req.path().chars().take(200).collect();
    Err(ApiError::NotFound(format!(
        "no route for {} {path}",
        req.method()
    )))
}
