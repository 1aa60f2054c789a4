//! Builds hale from its configuration: opens the store, starts the writer and background loops, binds
//! every service's listener (port 0 picks a free port) and runs until told to shut down.

use std::collections::HashMap;
use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::{from_fn, Condition};
use actix_web::{web, App, HttpRequest, HttpServer};
use tokio::task::JoinHandle;
use utoipa_actix_web::AppExt;
use utoipa_swagger_ui::SwaggerUi;

use crate::alerts::Dispatcher;
use crate::auth::{Role, TokenError, Tokens};
use crate::clock::{Clock, SystemClock};
use crate::config::{Config, ConfigError};
use crate::events::EventBus;
use crate::heal::Healer;
use crate::http::{self, AccessLog, ApiError, Guard, HttpContext, RateLimits};
use crate::kind::ServiceKind;
use crate::limits;
use crate::metrics::{EventMetrics, ServiceMetrics, StartLabels, StartRule, WriterMetrics};
use crate::probe::{McpLink, Monitor, MonitorError};
use crate::selfwatch::SelfWatch;
use crate::services::{
    self, AssembleError, Assembled, Core, HealthProxyState, ServiceState, Shared,
};
use crate::store::retention::Retention;
use crate::store::status::FileWatch;
use crate::store::writer::{self, WriterHandle, WriterReport, WriterSettings};
use crate::store::{Store, StoreError, StoreSettings};
use crate::supervise::Supervisor;
use crate::worker::{Worker, Workers};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Monitor(#[from] MonitorError),
    #[error("cannot start the workflow engine: {0}")]
    Workflows(std::io::Error),
    #[error(transparent)]
    Tokens(#[from] TokenError),
    #[error("{path} is {addr}, which is not a loopback address, and no read token is set: anyone who can reach it could read and change hale. Set auth.tokens.read (and operate and admin for changes; docs/operations.md#tokens-and-roles), or listen on 127.0.0.1")]
    Exposed {
        path: &'static str,
        addr: SocketAddr,
    },
    #[error("cannot listen on {addr} for {service}: {source}")]
    Bind {
        service: ServiceKind,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("the open-file limit is {limit}, below the {min} hale needs for its database, listeners and server threads: raise it (ulimit -n, or LimitNOFILE= in a systemd unit)", min = limits::MIN_OPEN_FILES)]
    OpenFileLimit { limit: u64 },
    /// The server's accept thread or workers could not start (for example, no file descriptor left).
    #[error("cannot start the {service} server on {addr}: {source} (its threads need file descriptors: check the open-file limit, ulimit -n, and the log)")]
    Serve {
        service: ServiceKind,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// A running hale: its services, background workers and store.
pub struct Application {
    core: Core,
    events: EventBus,
    /// One per service that runs, in `ServiceKind::ALL` order: its assembly and its server.
    servers: Vec<RunningServer>,
    workers: Workers,
    writer: WriterHandle,
    /// This run's row in `hale_runs`, closed at a graceful stop.
    run: Option<i64>,
}

struct RunningServer {
    assembly: Assembled,
    addr: SocketAddr,
    handle: ServerHandle,
    task: JoinHandle<std::io::Result<()>>,
}

impl RunningServer {
    fn kind(&self) -> ServiceKind {
        self.assembly.kind()
    }
}

/// The parts built from the config before any server starts.
struct Built {
    core: Core,
    /// The audit rows and 429 lines of every service; flushed by its worker, last at shutdown.
    access: Arc<AccessLog>,
    writer: WriterHandle,
    events: EventBus,
    /// Every service that runs here with the listener bound for it, in `ServiceKind::ALL` order.
    services: Vec<(TcpListener, Assembled)>,
    /// Every service's metrics, one registry each, so a Prometheus scraping all three never counts a series
    /// twice.
    metrics: HashMap<ServiceKind, ServiceMetrics>,
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

    /// Binds, builds the core and the services, starts the servers, then the background workers.
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
        // A config built in code (not read by `Config::load`) gets its MCP servers' targets here. They are
        // checked through the bridge's connections: a process without the bridge cannot reach the servers,
        // and does not watch them rather than record failures that are not theirs.
        let config = if kinds.contains(&ServiceKind::McpBridge) {
            config.with_mcp_targets()
        } else {
            config.without_mcp_targets()
        };
        let tokens = Arc::new(Tokens::load(&config.auth)?);
        refuse_exposure(&config, &kinds, &tokens)?;
        // Before anything opens files: the soft limit goes up to the hard one, and the budget of probes
        // (Monitor::new) is sized from the result.
        if let Some(limit) = limits::raise_open_file_limit() {
            if limit < limits::MIN_OPEN_FILES {
                return Err(StartError::OpenFileLimit { limit });
            }
        }
        let listeners = bind(&config, &kinds)?;
        let built = build(config, db_path, clock, tokens, listeners).await?;
        // Recorded before the servers start: once hale says it is listening, this run is on record, and a
        // kill from then on is seen as unclean by the next start.
        let (run, after_unclean_end) = record_start(&built.core).await;
        if after_unclean_end {
            for (_, assembly) in &built.services {
                assembly.follows_unclean_end();
            }
        }
        let Built {
            core,
            access,
            writer,
            events,
            services,
            metrics,
        } = built;
        let servers = match start_servers(services, &core, &access, &metrics).await {
            Ok(servers) => servers,
            Err(e) => {
                // Nothing was probed or written yet: this run ends cleanly, so the next start does not
                // report it as killed.
                if let Some(run) = run {
                    let _ = core.store.end_run(run, core.clock.now(), 0).await;
                }
                return Err(e);
            }
        };
        // Workers start last, once nothing can fail any more: each service's own, in the order they stop,
        // then the ones every service shares. The Boss API's workflow engine stops first: its running steps
        // may finish within the shutdown grace while the monitor, auto-heal and the alert channels they
        // use still run.
        let mut workers: Vec<Arc<dyn Worker>> = servers
            .iter()
            .filter(|s| s.kind() == ServiceKind::BossApi)
            .chain(servers.iter().filter(|s| s.kind() != ServiceKind::BossApi))
            .flat_map(|s| s.assembly.workers.iter().cloned())
            .collect();
        workers.push(Arc::new(Retention {
            store: core.store.clone(),
            clock: core.clock.clone(),
            raw_days: core.config.storage.retention_days,
            rollup_days: core.config.storage.rollup_retention_days,
        }));
        workers.push(Arc::new(FileWatch {
            store: core.store.clone(),
        }));
        // The servers stop before any worker: this one then writes every refused attempt they counted.
        workers.push(access);
        if let Some(watch) = limits::OpenFileWatch::new() {
            workers.push(Arc::new(watch));
        }
        if let Some(watch) = SelfWatch::new(
            core.config.monitor.self_watch_interval_s,
            core.writer.clone(),
        ) {
            workers.push(Arc::new(watch));
        }
        Ok(Self {
            core,
            events,
            servers,
            workers: Workers::spawn(workers),
            writer,
            run,
        })
    }

    /// The bound address of a service, if it runs.
    pub fn addr(&self, kind: ServiceKind) -> Option<SocketAddr> {
        self.servers
            .iter()
            .find(|s| s.kind() == kind)
            .map(|s| s.addr)
    }

    /// What every service shares: config, store, writer, clock.
    pub fn core(&self) -> &Core {
        &self.core
    }

    /// The Health Proxy's own state (monitor, auto-heal, supervisor, alert delivery), when it runs.
    fn health_proxy(&self) -> Option<&HealthProxyState> {
        self.servers.iter().find_map(|s| match &s.assembly.state {
            ServiceState::HealthProxy(state) => Some(&***state),
            _ => None,
        })
    }

    /// The Health Proxy's monitor, when the Health Proxy runs.
    pub fn monitor(&self) -> Option<&Arc<Monitor>> {
        self.health_proxy().map(|s| &s.monitor)
    }

    /// The supervisor of the targets' children, when the Health Proxy runs.
    pub fn supervisor(&self) -> Option<&Arc<Supervisor>> {
        self.health_proxy().map(|s| &s.supervisor)
    }

    /// Auto-heal, when the Health Proxy runs.
    pub fn healer(&self) -> Option<&Arc<Healer>> {
        self.health_proxy().map(|s| &s.healer)
    }

    /// The alert notices' delivery, when the Health Proxy runs.
    pub fn dispatcher(&self) -> Option<&Arc<Dispatcher>> {
        self.health_proxy().map(|s| &s.dispatcher)
    }

    /// The check events the monitor publishes.
    pub fn events(&self) -> &EventBus {
        &self.events
    }

    /// The background workers, in the order they stop.
    pub fn worker_names(&self) -> Vec<&'static str> {
        self.workers.names()
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
                let service = self.servers[index].kind().as_str();
                tracing::error!(service, outcome = ?result, "an HTTP service stopped by itself; shutting down");
                false
            }
        };
        let writer = self.shutdown().await;
        Stopped { asked, writer }
    }

    /// Stops accepting, lets in-flight requests finish, stops the background workers in order, drains the
    /// writer and closes the database, logging each step. Returns what the writer did.
    pub async fn shutdown(self) -> WriterReport {
        tracing::info!(
            timeout_s = self.core.config.http.shutdown_timeout_s,
            "stopping HTTP services; in-flight requests may finish"
        );
        for server in &self.servers {
            server.assembly.drain();
        }
        futures_util::future::join_all(self.servers.iter().map(|s| s.handle.stop(true))).await;
        for server in self.servers {
            if !server.task.is_finished() {
                let _ = server.task.await;
            }
        }
        tracing::info!("stopping background loops");
        self.workers.stop().await;
        tracing::info!("draining the check writer");
        let report = self.writer.shutdown().await;
        if let Some(run) = self.run {
            let now = self.core.clock.now();
            if let Err(e) = self.core.store.end_run(run, now, report.lost()).await {
                tracing::warn!(error = %e, "cannot record the end of this run; the next start will call it unclean");
            }
        }
        tracing::info!("closing the database");
        self.core.store.close().await;
        tracing::info!("shutdown complete");
        report
    }
}

/// Records this start in `hale_runs`, and says so when the run before it was killed or crashed. Not fatal:
/// the database took a write moments ago (`Store::open`'s probe), and hale serves either way. Returns the
/// run's id, and whether the run before it ended uncleanly.
async fn record_start(core: &Core) -> (Option<i64>, bool) {
    let now = core.clock.now();
    match core
        .store
        .start_run(now, std::process::id(), env!("CARGO_PKG_VERSION"))
        .await
    {
        Ok((id, previous)) => {
            let unclean = previous.filter(crate::store::runs::Run::ended_uncleanly);
            if let Some(previous) = &unclean {
                tracing::warn!(
                    previous_pid = previous.pid,
                    previous_started_at = %previous.started_at.to_rfc3339(),
                    previous_version = %previous.version,
                    "the previous run of hale did not end cleanly (killed or crashed); checks it had not written yet are lost"
                );
            }
            (Some(id), unclean.is_some())
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot record this start of hale");
            (None, false)
        }
    }
}

/// A service that anyone on the network can reach needs a read token: without one, it would answer them all.
fn refuse_exposure(
    config: &Config,
    kinds: &[ServiceKind],
    tokens: &Tokens,
) -> Result<(), StartError> {
    if tokens.has(Role::Read) {
        return Ok(());
    }
    // `listen.all()` lists the services in `ServiceKind::ALL` order.
    for (kind, (path, addr)) in ServiceKind::ALL.into_iter().zip(config.listen.all()) {
        if kinds.contains(&kind) && !addr.ip().is_loopback() {
            return Err(StartError::Exposed { path, addr });
        }
    }
    Ok(())
}

/// Binds every listener first, so a port in use is reported before the database is touched.
fn bind(
    config: &Config,
    kinds: &[ServiceKind],
) -> Result<Vec<(ServiceKind, TcpListener)>, StartError> {
    kinds
        .iter()
        .map(|&kind| {
            let addr = listen_addr(config, kind);
            TcpListener::bind(addr)
                .map(|listener| (kind, listener))
                .map_err(|source| StartError::Bind {
                    service: kind,
                    addr,
                    source,
                })
        })
        .collect()
}

/// The label values the config makes known at start, from which the metrics create their series at 0
/// (the catalog's `at_start`): the targets, those hale can heal (a `run` block or a heal command, as the
/// healer decides), each alert rule in force with the channels its notices reach, the latency objective, and
/// the workflows.
fn start_labels(config: &Config) -> StartLabels {
    use crate::config::ChannelKind;
    let channels = &config.alerts.channels;
    let configured = |kind: ChannelKind| match kind {
        ChannelKind::Log => true,
        ChannelKind::Discord => channels.discord.is_some(),
        ChannelKind::Email => channels.email.is_some(),
        ChannelKind::Webhook => channels.webhook.is_some(),
        ChannelKind::Alertmanager => channels.alertmanager.is_some(),
    };
    StartLabels {
        targets: config
            .services
            .iter()
            .map(|t| t.name.as_str().to_owned())
            .collect(),
        healable: config
            .services
            .iter()
            .filter(|t| t.run.is_some() || t.heal_settings().command.is_some())
            .map(|t| t.name.as_str().to_owned())
            .collect(),
        rules: config
            .alerts
            .active_rules()
            .map(|rule| {
                let mut reached: Vec<&'static str> = Vec::new();
                // Alertmanager hears of every notice when configured, whichever channels the rule names.
                for kind in rule
                    .channels
                    .iter()
                    .copied()
                    .chain([ChannelKind::Alertmanager])
                {
                    if configured(kind) && !reached.contains(&kind.as_str()) {
                        reached.push(kind.as_str());
                    }
                }
                StartRule {
                    name: rule.name.clone(),
                    level: rule.level.as_str(),
                    channels: reached,
                }
            })
            .collect(),
        latency_target_ms: config.slo.p95_latency_target_ms,
        workflows: config
            .workflows
            .definitions()
            .iter()
            .map(|w| w.id.as_str().to_owned())
            .collect(),
    }
}

/// Opens the store, starts the writer and assembles each service that has a listener here.
async fn build(
    config: Config,
    db_path: &Path,
    clock: Arc<dyn Clock>,
    tokens: Arc<Tokens>,
    listeners: Vec<(ServiceKind, TcpListener)>,
) -> Result<Built, StartError> {
    let store = Store::open_with(
        db_path,
        StoreSettings {
            cache_mb: config.storage.cache_mb,
        },
    )
    .await?;
    let metrics: HashMap<ServiceKind, ServiceMetrics> = ServiceKind::ALL
        .into_iter()
        .map(|k| (k, ServiceMetrics::new(k)))
        .collect();
    // Health checks, their writer and their events belong to the Health Proxy's registry.
    let health_registry = metrics[&ServiceKind::HealthProxy].registry();
    let (check_writer, writer) = writer::spawn(
        store.clone(),
        WriterSettings {
            flush_interval: Duration::from_millis(config.storage.flush_interval_ms),
            batch_size: config.storage.batch_size,
            settle_interval: Duration::from_secs(config.storage.settle_interval_s),
        },
        WriterMetrics::register(health_registry),
    );
    let events = EventBus::new(EventMetrics::register(health_registry));
    let start_labels = start_labels(&config);
    let core = Core {
        config: Arc::new(config),
        store,
        writer: check_writer,
        clock,
        started_at: Instant::now(),
        tokens,
    };
    let mut services = Vec::with_capacity(listeners.len());
    let mcp = McpLink::default();
    // The Health Proxy is assembled first (`ServiceKind::ALL` order): the MCP bridge's tools answer from it.
    let mut health_proxy = None;
    let mut mcp_bridge = None;
    for (kind, listener) in listeners {
        let shared = Shared {
            core: core.clone(),
            events: events.clone(),
            start_labels: start_labels.clone(),
            metrics: metrics[&kind].clone(),
            mcp: mcp.clone(),
            health_proxy: health_proxy.clone(),
            mcp_bridge: mcp_bridge.clone(),
        };
        let assembly = services::assemble(kind, &shared)
            .await
            .map_err(|e| match e {
                AssembleError::Monitor(e) => StartError::Monitor(e),
                AssembleError::Workflows(e) => StartError::Workflows(e),
            })?;
        match &assembly.state {
            ServiceState::HealthProxy(state) => health_proxy = Some(state.clone()),
            ServiceState::McpBridge(state) => mcp_bridge = Some(state.clone()),
            ServiceState::BossApi(_) => {}
        }
        services.push((listener, assembly));
    }
    let access = Arc::new(AccessLog::new(core.store.clone()));
    Ok(Built {
        core,
        access,
        writer,
        events,
        services,
        metrics,
    })
}

/// Starts one HTTP server per bound listener, then says each one listens. actix-server starts its accept
/// thread and workers at the server's first poll, which happens here: a server that cannot start (no
/// descriptor left for a worker's runtime) fails hale's start, the servers already started are stopped, and
/// `listening` is only said of servers that accept.
async fn start_servers(
    services: Vec<(TcpListener, Assembled)>,
    core: &Core,
    access: &Arc<AccessLog>,
    metrics: &HashMap<ServiceKind, ServiceMetrics>,
) -> Result<Vec<RunningServer>, StartError> {
    let mut servers: Vec<RunningServer> = Vec::new();
    for (listener, assembly) in services {
        let kind = assembly.kind();
        let configured = listen_addr(&core.config, kind);
        let bind_error = |source| StartError::Bind {
            service: kind,
            addr: configured,
            source,
        };
        let addr = listener.local_addr().map_err(bind_error)?;
        let mut server = build_server(
            listener,
            core.clone(),
            access.clone(),
            assembly.state.clone(),
            metrics[&kind].clone(),
        )
        .map_err(bind_error)?;
        if let Poll::Ready(ended) = futures_util::poll!(&mut server) {
            futures_util::future::join_all(servers.iter().map(|s| s.handle.stop(false))).await;
            let source = ended
                .err()
                .unwrap_or_else(|| std::io::Error::other("it stopped as soon as it started"));
            return Err(StartError::Serve {
                service: kind,
                addr,
                source,
            });
        }
        servers.push(RunningServer {
            assembly,
            addr,
            handle: server.handle(),
            task: tokio::spawn(server),
        });
    }
    for server in &servers {
        let (service, addr) = (server.kind().as_str(), server.addr);
        tracing::info!(service, %addr, "listening");
        if !addr.ip().is_loopback() {
            // `refuse_exposure` made sure a read token exists.
            tracing::info!(
                service,
                %addr,
                "listening on a non-loopback address: requests from other hosts need a bearer token"
            );
        }
    }
    Ok(servers)
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
    listener: TcpListener,
    core: Core,
    access: Arc<AccessLog>,
    state: ServiceState,
    metrics: ServiceMetrics,
) -> std::io::Result<Server> {
    let kind = state.kind();
    let http_config = core.config.http.clone();
    let limit = http_config.body_limit_bytes;
    let openapi = services::openapi(kind);
    let core = web::Data::new(core);
    let guard = Guard {
        kind,
        tokens: core.tokens.clone(),
        open_reads_on_loopback: core.config.auth.open_reads_on_loopback,
        limits: RateLimits::new(&core.config.rate_limits),
        access: Some(access),
        roles: services::route_roles(kind),
    };
    let context = web::Data::new(HttpContext {
        kind,
        metrics,
        body_limit: limit,
        guard: Some(Arc::new(guard)),
    });
    let origins = http_config.cors_origins.clone();
    let server = HttpServer::new(move || {
        let (app, _) = App::new()
            .into_utoipa_app()
            .app_data(core.clone())
            .app_data(context.clone())
            .app_data(http::json_config(limit))
            .app_data(http::query_config())
            .app_data(http::path_config())
            .app_data(http::payload_config(limit))
            .configure(|cfg| state.configure(cfg))
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
        .wrap(from_fn(http::guard))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        let mut config = Config::default();
        let any_port: SocketAddr = "127.0.0.1:0".parse().expect("a literal address");
        config.listen.health_proxy = any_port;
        config.listen.mcp_bridge = any_port;
        config.listen.boss_api = any_port;
        config.services = Vec::new();
        config.http.workers = 1;
        config
    }

    /// Each service's workers first (producers before what they feed), then the shared ones, ending with
    /// the watches that exist only on some machines and configs.
    async fn worker_names(only: Option<ServiceKind>) -> Vec<&'static str> {
        let dir = tempfile::tempdir().expect("a temp dir");
        let app = Application::start(config(), &dir.path().join("hale.db"), only)
            .await
            .expect("hale starts");
        let names = app.worker_names();
        app.shutdown().await;
        names
    }

    fn assert_order(names: &[&'static str], head: &[&str]) {
        assert_eq!(&names[..head.len()], head, "{names:?}");
        let tail: Vec<&str> = ["open-file watch", "self-watch"]
            .into_iter()
            .filter(|n| names.contains(n))
            .collect();
        assert_eq!(&names[head.len()..], tail.as_slice(), "{names:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_health_proxys_workers_stop_first_in_their_order() {
        let names = worker_names(None).await;
        assert_order(
            &names,
            &[
                "workflows",
                "status-page-reads",
                "monitor",
                "heal",
                "alerts",
                "slo",
                "alert-delivery",
                "supervisor",
                "retention",
                "database file watch",
                "access-log",
            ],
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_boss_api_alone_runs_its_workflow_engine_and_the_shared_workers() {
        let names = worker_names(Some(ServiceKind::BossApi)).await;
        assert_order(
            &names,
            &[
                "workflows",
                "retention",
                "database file watch",
                "access-log",
            ],
        );
    }
}
