//! The health of one of hale's own services (`/health`, and `/healthz` on the Boss API): answered from
//! memory (the writer's last commit and failure, the periodic file check), with no SQL per request.

use std::time::Instant;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::kind::ServiceKind;
use crate::store::writer::CheckWriter;
use crate::store::Store;

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "ok": true,
    "details": {"service": "health-proxy", "version": "0.1.0", "uptime_s": 86400, "database": "ok",
                "last_write_at": "2026-11-26T12:00:02Z", "writer": "running", "writer_queue": 0},
    "timestamp": "2026-11-26T12:00:03Z"
}))]
pub struct HealthResponse {
    /// True when the service can do its job.
    pub ok: bool,
    pub details: HealthDetails,
    /// When this answer was made (RFC 3339).
    pub timestamp: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "service": "health-proxy", "version": "0.1.0", "uptime_s": 86400, "database": "ok",
    "last_write_at": "2026-11-26T12:00:02Z", "writer": "running", "writer_queue": 0
}))]
pub struct HealthDetails {
    /// `health-proxy`, `mcp-bridge` or `boss-api`.
    pub service: String,
    pub version: String,
    pub uptime_s: u64,
    /// `ok` while health checks can be stored. Otherwise why not: `full` (disk full), `read_only`, `locked`
    /// (another process holds the write lock), `file_gone` (the file was deleted or replaced), `io_error`,
    /// `other`, or `unreachable` (the database is closed).
    #[schema(example = "ok")]
    pub database: String,
    /// What is wrong with the database and what hale does about it; absent while `database` is `ok`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_error: Option<String>,
    /// When a batch of health checks was last committed to the database.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_write_at: Option<DateTime<Utc>>,
    /// `running` or `stopped`: the batching writer of health checks.
    pub writer: String,
    /// Health checks waiting to be written (queued, or held while the database fails).
    pub writer_queue: usize,
    /// The MCP WebBridge only: the configured MCP servers that are not ready (empty when all are).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcp_servers_not_ready: Option<Vec<String>>,
}

/// The health of the service `kind`: `ok` when health checks can be stored and the writer runs.
pub fn own_health(
    kind: ServiceKind,
    store: &Store,
    writer: &CheckWriter,
    started_at: Instant,
    now: DateTime<Utc>,
) -> HealthResponse {
    let condition = store.condition();
    let writer_ok = writer.is_running();
    let ok = condition.is_ok() && writer_ok;
    let database = match (&condition.problem, condition.closed) {
        (_, true) => "unreachable",
        (Some(problem), false) => problem.kind.as_str(),
        (None, false) => "ok",
    };
    let database_error = match (&condition.problem, condition.closed) {
        (_, true) => Some("the database is closed".to_owned()),
        (problem, false) => problem.as_ref().map(|p| p.message.clone()),
    };
    HealthResponse {
        ok,
        details: HealthDetails {
            service: kind.as_str().to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            uptime_s: started_at.elapsed().as_secs(),
            database: database.to_owned(),
            database_error,
            last_write_at: condition.last_write_at,
            writer: if writer_ok { "running" } else { "stopped" }.to_owned(),
            writer_queue: writer.queued(),
            mcp_servers_not_ready: None,
        },
        timestamp: now,
    }
}
