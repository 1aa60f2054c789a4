//! Raw health-check rows.

use chrono::{DateTime, Utc};
use sqlx::{QueryBuilder, Sqlite, SqliteConnection};

use crate::breaker::BreakerState;
use crate::records::{CheckRecord, CheckSource, Outcome};
use crate::store::{from_ms, known, to_ms, Store, StoreError};

const TABLE: &str = "health_checks";

/// Rows per INSERT statement: 9 bound values each keeps a statement far below SQLite's variable limit.
const ROWS_PER_STATEMENT: usize = 1_000;

/// Inserts checks inside the caller's transaction.
pub(crate) async fn insert_batch(
    conn: &mut SqliteConnection,
    records: &[CheckRecord],
) -> Result<(), sqlx::Error> {
    for chunk in records.chunks(ROWS_PER_STATEMENT) {
        let mut insert: QueryBuilder<Sqlite> = QueryBuilder::new(
            "INSERT INTO health_checks (checked_at_ms, service, outcome, http_status, latency_us, error, breaker_state, source) ",
        );
        insert.push_values(chunk, |mut row, r| {
            row.push_bind(to_ms(r.checked_at))
                .push_bind(r.service.as_ref())
                .push_bind(r.outcome.as_str())
                .push_bind(r.http_status.map(i64::from))
                .push_bind(
                    r.latency
                        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX)),
                )
                .push_bind(r.error.as_deref())
                .push_bind(r.breaker_state.as_str())
                .push_bind(r.source.as_str());
        });
        insert.build().execute(&mut *conn).await?;
    }
    Ok(())
}

impl Store {
    /// Number of stored checks, for one service or all of them.
    pub async fn count_checks(&self, service: Option<&str>) -> Result<i64, StoreError> {
        let count = sqlx::query_scalar(
            "SELECT COUNT(*) FROM health_checks WHERE ?1 IS NULL OR service = ?1",
        )
        .bind(service)
        .fetch_one(self.pool())
        .await?;
        Ok(count)
    }
}

/// A stored health check as read back.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredCheck {
    pub id: i64,
    pub checked_at: DateTime<Utc>,
    pub service: String,
    pub outcome: Outcome,
    pub http_status: Option<u16>,
    pub latency_us: Option<u64>,
    pub error: Option<String>,
    pub breaker_state: BreakerState,
    pub source: CheckSource,
}

/// Where a history page starts: just after the last row of the previous page (newest first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryCursor {
    pub checked_at_ms: i64,
    pub id: i64,
}

impl HistoryCursor {
    pub fn encode(&self) -> String {
        format!("{}.{}", self.checked_at_ms, self.id)
    }

    pub fn parse(raw: &str) -> Option<Self> {
        let (ms, id) = raw.split_once('.')?;
        Some(Self {
            checked_at_ms: ms.parse().ok()?,
            id: id.parse().ok()?,
        })
    }
}

/// A page request over raw checks.
#[derive(Debug, Clone, Default)]
pub struct HistoryQuery {
    pub service: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub limit: u32,
    pub cursor: Option<HistoryCursor>,
}

#[derive(sqlx::FromRow)]
struct CheckRow {
    id: i64,
    checked_at_ms: i64,
    service: String,
    outcome: String,
    http_status: Option<i64>,
    latency_us: Option<i64>,
    error: Option<String>,
    breaker_state: String,
    source: String,
}

impl Store {
    /// One page of raw checks, newest first, and the cursor of the next page when there is one.
    pub async fn check_history(
        &self,
        query: &HistoryQuery,
    ) -> Result<(Vec<StoredCheck>, Option<HistoryCursor>), StoreError> {
        let mut sql: QueryBuilder<Sqlite> = QueryBuilder::new(
            "SELECT id, checked_at_ms, service, outcome, http_status, latency_us, error, breaker_state, source
             FROM health_checks WHERE 1 = 1",
        );
        if let Some(service) = &query.service {
            sql.push(" AND service = ").push_bind(service.clone());
        }
        if let Some(since) = query.since {
            sql.push(" AND checked_at_ms >= ").push_bind(to_ms(since));
        }
        if let Some(until) = query.until {
            sql.push(" AND checked_at_ms < ").push_bind(to_ms(until));
        }
        if let Some(cursor) = query.cursor {
            sql.push(" AND (checked_at_ms, id) < (")
                .push_bind(cursor.checked_at_ms)
                .push(", ")
                .push_bind(cursor.id)
                .push(")");
        }
        // One row more than asked tells whether another page exists.
        sql.push(" ORDER BY checked_at_ms DESC, id DESC LIMIT ")
            .push_bind(i64::from(query.limit) + 1);
        let mut rows: Vec<CheckRow> = sql.build_query_as().fetch_all(self.pool()).await?;
        let more = rows.len() > query.limit as usize;
        rows.truncate(query.limit as usize);
        let next = rows.last().filter(|_| more).map(|last| HistoryCursor {
            checked_at_ms: last.checked_at_ms,
            id: last.id,
        });
        let checks = rows
            .into_iter()
            .filter_map(|row| {
                let column = |name: &str, raw: &str, parsed| known(TABLE, name, raw, parsed);
                Some(StoredCheck {
                    id: row.id,
                    checked_at: from_ms(row.checked_at_ms),
                    outcome: column("outcome", &row.outcome, Outcome::parse(&row.outcome))?,
                    http_status: row.http_status.and_then(|s| u16::try_from(s).ok()),
                    latency_us: row.latency_us.and_then(|l| u64::try_from(l).ok()),
                    error: row.error,
                    breaker_state: known(
                        TABLE,
                        "breaker_state",
                        &row.breaker_state,
                        BreakerState::parse(&row.breaker_state),
                    )?,
                    source: known(
                        TABLE,
                        "source",
                        &row.source,
                        CheckSource::parse(&row.source),
                    )?,
                    service: row.service,
                })
            })
            .collect();
        Ok((checks, next))
    }
}
