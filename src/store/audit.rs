//! The audit log: one row per allowed request that tried to change something, and one row per minute (with a
//! count) for the refused and rate-limited attempts of one client on one route.

use chrono::{DateTime, Utc};

use crate::kind::ServiceKind;
use crate::records::{AuditOutcome, AuditRecord};
use crate::store::{from_ms, known, role_name, to_ms, Store, StoreError};

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
    count: i64,
}

impl Store {
    /// Writes one row; its id.
    pub async fn insert_audit(&self, record: &AuditRecord) -> Result<i64, StoreError> {
        let id = insert(self.pool(), record).await?;
        Ok(id)
    }

    /// Writes aggregated rows in one transaction: a row with an id gets `record.count` more attempts (and
    /// `record.target`), one without is inserted. Returns the ids, in order.
    pub async fn write_audit_counts(
        &self,
        rows: &[(Option<i64>, AuditRecord)],
    ) -> Result<Vec<i64>, StoreError> {
        let mut tx = self.pool().begin().await?;
        let mut ids = Vec::with_capacity(rows.len());
        for (id, record) in rows {
            let id = match id {
                Some(id) => {
                    sqlx::query(
                        "UPDATE audit_log SET count = count + ?1, target = ?2 WHERE id = ?3",
                    )
                    .bind(count(record))
                    .bind(record.target.as_deref())
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                    *id
                }
                None => insert(&mut *tx, record).await?,
            };
            ids.push(id);
        }
        tx.commit().await?;
        Ok(ids)
    }

    /// Audit rows at or after `since` (all when none), newest first, at most `limit`.
    pub async fn audit_log(
        &self,
        since: Option<DateTime<Utc>>,
        limit: u32,
    ) -> Result<Vec<StoredAudit>, StoreError> {
        // `hale audit` reads the file as it is: a database no hale since migration 0007 has opened has one row
        // per attempt and no `count` column.
        let counted: bool = sqlx::query_scalar(
            "SELECT count(*) > 0 FROM pragma_table_info('audit_log') WHERE name = 'count'",
        )
        .fetch_one(self.pool())
        .await?;
        let count = if counted { "count" } else { "1 AS count" };
        let rows: Vec<AuditRow> = sqlx::query_as(&format!(
            "SELECT id, at_ms, service, role, client, method, route, target, status, outcome, request_id, {count}
             FROM audit_log WHERE at_ms >= ?1 ORDER BY at_ms DESC, id DESC LIMIT ?2"
        ))
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
                    Some(raw) => Some(known(TABLE, "role", raw, role_name(raw))?),
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
                        count: u64::try_from(row.count).unwrap_or(1),
                    },
                })
            })
            .collect())
    }
}

fn count(record: &AuditRecord) -> i64 {
    i64::try_from(record.count.max(1)).unwrap_or(i64::MAX)
}

async fn insert<'e>(
    executor: impl sqlx::SqliteExecutor<'e>,
    record: &AuditRecord,
) -> Result<i64, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO audit_log (at_ms, service, role, client, method, route, target, status, outcome, request_id, count)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
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
    .bind(count(record))
    .execute(executor)
    .await?;
    Ok(done.last_insert_rowid())
}
