//! Boss API (:4000): starts and tracks workflows on a persistent task queue, and takes backups of the
//! database (`POST /backup`).

use std::collections::BTreeMap;
use std::sync::Arc;

use actix_web::{get, post, web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::http::{ApiError, ErrorBody, HttpContext};
use crate::services::audit::{self, AuditEntry, AuditParams};
use crate::services::common::{self, HealthResponse};
use crate::services::Core;
use crate::store::backup::{BackupError, BackupReport, Destination, NoProgress};

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(common::health)
        .service(healthz)
        .service(common::metrics)
        .service(audit_log)
        .service(backup);
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

/// A backup written and verified.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "path": "/var/lib/hale/backups/hale-20261125T120937Z.db.gz", "bytes": 18234567,
    "database_bytes": 73400320, "duration_ms": 2140, "integrity": "ok", "schema_version": 5,
    "tables": {
        "alert_deliveries": 57, "alert_events": 311, "alerts": 42, "audit_log": 1204,
        "breaker_transitions": 96, "breakers": 3, "child_runs": 14, "hale_meta": 1, "hale_runs": 9,
        "heal_events": 23, "health_check_hourly": 2160, "health_checks": 918273, "maintenance_windows": 3
    },
    "max_check_id": 918273, "newest_check_at": "2026-11-25T12:09:36Z",
    "pruned": ["/var/lib/hale/backups/hale-20261118T120902Z.db.gz"]
}))]
pub struct BackupView {
    /// The backup file (gzip), an absolute path on hale's machine. Restore it with `hale restore PATH`.
    #[schema(example = "/var/lib/hale/backups/hale-20261125T120937Z.db.gz")]
    pub path: String,
    /// The size of the backup file.
    pub bytes: u64,
    /// The size of the database copied (its pages in use, uncompressed).
    pub database_bytes: u64,
    /// How long the copy, its checks, the compression and the pruning took.
    pub duration_ms: u64,
    /// `ok`: the copy passed `PRAGMA integrity_check` (a copy that does not is never written).
    #[schema(example = "ok")]
    pub integrity: String,
    /// The newest schema migration in the copy.
    pub schema_version: i64,
    /// Rows in each table of the copy.
    pub tables: BTreeMap<String, i64>,
    /// Every health check stored before the backup has an id up to this one.
    pub max_check_id: Option<i64>,
    /// The newest health check in the copy.
    pub newest_check_at: Option<DateTime<Utc>>,
    /// Older backups deleted so the folder keeps the newest `backup.keep`.
    pub pruned: Vec<String>,
}

impl From<BackupReport> for BackupView {
    fn from(report: BackupReport) -> Self {
        let shown = |path: &std::path::Path| {
            std::path::absolute(path)
                .unwrap_or_else(|_| path.to_owned())
                .display()
                .to_string()
        };
        Self {
            path: shown(&report.path),
            bytes: report.bytes,
            database_bytes: report.database_bytes,
            duration_ms: u64::try_from(report.duration.as_millis()).unwrap_or(u64::MAX),
            integrity: "ok".to_owned(),
            schema_version: report.verified.schema_version,
            tables: report
                .verified
                .tables
                .iter()
                .map(|t| (t.table.clone(), t.rows))
                .collect(),
            max_check_id: report.verified.max_check_id,
            newest_check_at: report.verified.newest_check_at,
            pruned: report.pruned.iter().map(|p| shown(p)).collect(),
        }
    }
}

/// Backs up the database into the configured folder (`backup.dir`, `backup.keep`): what `POST /backup`
/// answers, and what any other face of the same operation should call.
pub async fn backup_now(core: &Core) -> Result<BackupView, BackupError> {
    let to = Destination::Folder {
        dir: core.config.backup.dir.clone(),
        keep: core.config.backup.keep,
    };
    let report = core.store.backup(&to, Arc::new(NoProgress)).await?;
    let view = BackupView::from(report);
    tracing::info!(
        path = %view.path,
        bytes = view.bytes,
        duration_ms = view.duration_ms,
        pruned = view.pruned.len(),
        "backup written"
    );
    Ok(view)
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
    let view = backup_now(&core)
        .await
        .map_err(|e| ApiError::Unavailable(format!("backup failed: {e}")))?;
    Ok(HttpResponse::Ok().json(view))
}
