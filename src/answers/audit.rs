//! The audit log of requests that tried to change something (`GET /audit`, admin): the answer's shape and
//! the parsing of its parameters, so `hale audit` prints the very same rows.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::answers::params;
use crate::records::AuditOutcome;
use crate::store::audit::StoredAudit;
use crate::store::{Store, StoreError};

pub const MAX_AUDIT_LIMIT: u32 = 1000;
pub const DEFAULT_AUDIT_LIMIT: u32 = 100;

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// Rows at or after this time (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    pub since: Option<String>,
    /// Rows to return, newest first, 1 to 1000 (default 100).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000, default = 100)]
    pub limit: Option<String>,
}

impl AuditParams {
    /// `since` and `limit`; the error names the bad parameter.
    pub fn parse(&self) -> Result<(Option<DateTime<Utc>>, u32), String> {
        let since = params::time("since", self.since.as_deref())?;
        let limit = params::limit(self.limit.as_deref(), DEFAULT_AUDIT_LIMIT, MAX_AUDIT_LIMIT)?;
        Ok((since, limit))
    }
}

/// One request that tried to change something, or for refused and rate-limited attempts, all of one client's
/// attempts on one route with one outcome in one minute (`count` says how many; `at` and `request_id` are the
/// first one's).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "id": 1204, "at": "2026-11-26T12:00:03Z", "service": "health-proxy", "role": "operate",
    "client": "10.0.4.17", "method": "POST", "route": "/heal/{target}", "target": "api", "status": 200,
    "outcome": "done", "request_id": "6f1c2a9e-4b7d-4e0a-9c3f-2d8e5b71a046", "count": 1
}))]
pub struct AuditEntry {
    pub id: i64,
    pub at: DateTime<Utc>,
    /// The service that answered: `health-proxy`, `mcp-bridge` or `boss-api`.
    pub service: String,
    /// The role the caller's token granted; null without a valid token.
    pub role: Option<String>,
    /// The client's address.
    pub client: String,
    pub method: String,
    /// The route pattern, such as `/backup`.
    pub route: String,
    /// The route's `{target}`, when it has one.
    pub target: Option<String>,
    pub status: u16,
    pub outcome: AuditOutcome,
    pub request_id: String,
    /// How many attempts the row stands for: 1 for an allowed request; for a refused (401, 403, 405) or
    /// rate-limited (429) one, every attempt of that client on that route with that outcome in that minute.
    /// The row keeps the route's `target` only when every attempt named the same one.
    pub count: u64,
}

impl From<StoredAudit> for AuditEntry {
    fn from(row: StoredAudit) -> Self {
        let r = row.record;
        Self {
            id: row.id,
            at: r.at,
            service: r.service.as_str().to_owned(),
            role: r.role.map(str::to_owned),
            client: r.client,
            method: r.method,
            route: r.route,
            target: r.target,
            status: r.status,
            outcome: r.outcome,
            request_id: r.request_id,
            count: r.count,
        }
    }
}

/// The audit rows asked for, newest first.
pub async fn audit_entries(
    store: &Store,
    since: Option<DateTime<Utc>>,
    limit: u32,
) -> Result<Vec<AuditEntry>, StoreError> {
    Ok(store
        .audit_log(since, limit)
        .await?
        .into_iter()
        .map(AuditEntry::from)
        .collect())
}
