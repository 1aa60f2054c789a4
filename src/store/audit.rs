//! The audit log: one row per request that tried to change something.

use chrono::{DateTime, Utc};

use crate::kind::ServiceKind;
use crate::records::{AuditOutcome, AuditRecord};
use crate::store::{from_ms, known, to_ms, Store, StoreError};

const TABLE: &str = "audit_log";

/// An audit row as read back, with its id.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredAudit {
    pub id: i64,
    pub record: AuditRecord,
}

#[derive(sqlx::FromRow)]
struct AuditRow {
    id: i64,
    at_ms: i64,
    service: String,
    role: Option<String>,
    client: String,
    method: String,
    route: String,
    target: Option<String>,
    status: i64,
    outcome: String,
    request_id: String,
}

fn role_str(raw: &str) -> Option<&'static str> {
    ["read", "operate", "admin"].into_iter().find(|r| *r == raw)
}

impl Store {
    pub async fn insert_audit(&self, record: &AuditRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO audit_log (at_ms, service, role, client, method, route, target, status, outcome, request_id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )
        .bind(to_ms(record.at))
        .bind(record.service.as_str())
        .bind(record.role)
        .bind(&record.client)
        .bind(&record.method)
        .bind(&record.route)
        .bind(record.target.as_deref())
        .bind(i64::from(record.status))
        .bind(record.outcome.as_str())
        .bind(&record.request_id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Audit rows at or after `since` (all when none), newest first, at most `limit`.
    pub async fn audit_log(
        &self,
        since: Option<DateTime<Utc>>,
        limit: u32,
    ) -> Result<Vec<StoredAudit>, StoreError> {
        let rows: Vec<AuditRow> = sqlx::query_as(
            "SELECT id, at_ms, service, role, client, method, route, target, status, outcome, request_id
             FROM audit_log WHERE at_ms >= ?1 ORDER BY at_ms DESC, id DESC LIMIT ?2",
        )
        .bind(since.map_or(i64::MIN, to_ms))
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .filter_map(|row| {
                let service = known(
                    TABLE,
                    "service",
                    &row.service,
                    ServiceKind::parse(&row.service),
                )?;
                let outcome = known(
                    TABLE,
                    "outcome",
                    &row.outcome,
                    AuditOutcome::parse(&row.outcome),
                )?;
                let role = match row.role.as_deref() {
                    None => None,
                    Some(raw) => Some(known(TABLE, "role", raw, role_str(raw))?),
                };
                Some(StoredAudit {
                    id: row.id,
                    record: AuditRecord {
                        at: from_ms(row.at_ms),
                        service,
                        role,
                        client: row.client,
                        method: row.method,
                        route: row.route,
                        target: row.target,
                        status: u16::try_from(row.status).unwrap_or(0),
                        outcome,
                        request_id: row.request_id,
                    },
                })
            })
            .collect())
    }
}
