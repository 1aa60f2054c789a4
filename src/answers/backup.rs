//! A backup of the database taken now (`POST /backup`, admin), written and verified, and its report.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::answers::AnswerError;
use crate::config::BackupConfig;
use crate::store::backup::{BackupReport, Destination, NoProgress};
use crate::store::Store;

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
/// answers. Nothing written: unavailable, with the reason.
pub async fn backup(store: &Store, config: &BackupConfig) -> Result<BackupView, AnswerError> {
    let to = Destination::Folder {
        dir: config.dir.clone(),
        keep: config.keep,
    };
    let report = store
        .backup(&to, Arc::new(NoProgress))
        .await
        .map_err(|e| AnswerError::Unavailable(format!("backup failed: {e}")))?;
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
