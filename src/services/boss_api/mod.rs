//! Boss API (:4000): runs the runbook workflows of the config on a persistent queue (`workflows.rs`, the
//! engine is `crate::workflows`), and takes backups of the database (`POST /backup`).

mod effects;
mod workflows;

use std::sync::Arc;
use std::time::Duration;

use actix_web::{get, post, web, HttpResponse};
use utoipa_actix_web::service_config::ServiceConfig;

pub use effects::LiveEffects;

use crate::alerts::Announcer;
use crate::answers::audit::{self, AuditEntry, AuditParams};
use crate::answers::backup::{self as backups, BackupView};
use crate::answers::HealthResponse;
use crate::http::{ApiError, ErrorBody, HttpContext};
use crate::metrics::WorkflowMetrics;
use crate::probe::Monitor;
use crate::services::{common, Assembled, Core, ServiceState, Shared};
use crate::supervise::env::EnvPolicy;
use crate::worker::Worker;
use crate::workflows::engine::{Engine, EngineParts};
use crate::workflows::Environment;

/// What the Boss API's handlers use besides the core: the workflow engine, and the monitor (for the open
/// breakers `/status` shows) when the Health Proxy runs in this process.
#[derive(Debug)]
pub struct BossApiState {
    pub engine: Arc<Engine>,
    pub monitor: Option<Arc<Monitor>>,
}

/// Builds the workflow engine (a worker) from the config's definitions and the parts of this process its
/// steps act through.
pub fn assemble(shared: &Shared) -> std::io::Result<Assembled> {
    let config = &shared.core.config;
    let definitions = config.workflows.definitions().clone();
    let ids: Vec<&str> = definitions.iter().map(|w| w.id.as_str()).collect();
    let metrics = WorkflowMetrics::register(shared.metrics.registry(), &ids);
    let health = shared.health_proxy.as_ref();
    let effects = LiveEffects {
        monitor: health.map(|h| h.monitor.clone()),
        healer: health.map(|h| h.healer.clone()),
        tools: shared.mcp_bridge.as_ref().map(|b| b.registry.clone()),
        announcer: health.map(|h| {
            Announcer::new(
                config,
                shared.core.store.clone(),
                shared.core.clock.clone(),
                h.dispatcher.clone(),
            )
        }),
    };
    let engine = Arc::new(Engine::new(EngineParts {
        store: shared.core.store.clone(),
        definitions,
        environment: Environment::of(config),
        clock: shared.core.clock.clone(),
        events: shared.events.clone(),
        effects: Arc::new(effects),
        env_policy: EnvPolicy::from_config(config),
        metrics,
        shutdown_grace: Duration::from_secs(config.http.shutdown_timeout_s),
    })?);
    let workers: Vec<Arc<dyn Worker>> = vec![engine.clone()];
    Ok(Assembled {
        state: ServiceState::BossApi(web::Data::new(BossApiState {
            engine,
            monitor: health.map(|h| h.monitor.clone()),
        })),
        workers,
    })
}

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(common::health)
        .service(healthz)
        .service(common::metrics)
        .service(audit_log)
        .service(backup)
        .service(workflows::boss_status)
        .service(workflows::workflows)
        .service(workflows::start_workflow)
        .service(workflows::workflow_status)
        .service(workflows::workflow_runs)
        .service(workflows::run_detail)
        .service(workflows::cancel_run)
        .service(workflows::retry_run)
        .service(workflows::approve_run)
        .service(workflows::reject_run);
}

/// The audit log: every request that tried to change something, newest first.
///
/// Each row says who (the token's role, the client address), what (service, method, route, target) and how
/// it ended (status and outcome, refusals included). Refused and rate-limited attempts are one row per client,
/// route and outcome per minute, with a `count`. Needs the `admin` role. Rows are kept for
/// `storage.retention_days`.
#[utoipa::path(
    tag = "operations",
    params(AuditParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Audit rows, newest first", body = Vec<AuditEntry>),
        (status = 400, description = "A parameter is invalid; the message names it", body = ErrorBody),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "The token's role is not admin, or no admin token is configured", body = ErrorBody),
    )
)]
#[get("/audit")]
pub async fn audit_log(
    core: web::Data<Core>,
    context: web::Data<HttpContext>,
    params: web::Query<AuditParams>,
) -> Result<HttpResponse, ApiError> {
    let (since, limit) = params.parse().map_err(ApiError::BadRequest)?;
    // Refused attempts counted since the last write are shown too.
    if let Some(access) = context.guard.as_ref().and_then(|g| g.access.as_ref()) {
        access.flush(false).await;
    }
    let entries = audit::audit_entries(&core.store, since, limit)
        .await
        .map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok().json(entries))
}

/// Liveness in the Kubernetes style; the same answer as `/health`.
#[utoipa::path(
    tag = "operations",
    responses(
        (status = 200, description = "The service can do its job", body = HealthResponse),
        (status = 503, description = "The service cannot do its job", body = HealthResponse,
            example = json!({
            "ok": false,
            "details": {"service": "boss-api", "version": "0.1.0", "uptime_s": 86400, "database": "full",
                        "database_error": "cannot store health checks (database or disk is full); 240 held in memory, retrying every 5 s at most",
                        "last_write_at": "2026-11-26T11:58:02Z", "writer": "running", "writer_queue": 240},
            "timestamp": "2026-11-26T12:00:03Z"
        })),
    )
)]
#[get("/healthz")]
pub async fn healthz(core: web::Data<Core>, ctx: web::Data<HttpContext>) -> HttpResponse {
    common::health_response(&core, &ctx)
}

/// Back up the database now.
///
/// A consistent copy of the live database (SQLite's `VACUUM INTO`; health checks keep being written
/// meanwhile), checked with `PRAGMA integrity_check` and for hale's schema, gzip-compressed and written
/// atomically into `backup.dir` as `hale-<UTC time>.db.gz`; then the folder's oldest backups beyond
/// `backup.keep` are deleted. One backup runs at a time: a second request waits for the first. The answer
/// comes when the file is on disk (a few seconds per 100 MB of database). Restore with `hale restore FILE`.
/// An `admin` action.
#[utoipa::path(
    tag = "operations",
    responses(
        (status = 200, description = "The backup was written and verified", body = BackupView),
        (status = 503, description = "No backup was written: the database could not be copied or failed its checks, or the folder could not be written; the message says which", body = ErrorBody),
    )
)]
#[post("/backup")]
pub async fn backup(core: web::Data<Core>) -> Result<HttpResponse, ApiError> {
    let view = backups::backup(&core.store, &core.config.backup).await?;
    Ok(HttpResponse::Ok().json(view))
}
