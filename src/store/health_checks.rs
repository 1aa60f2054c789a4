//! Raw health-check rows.

use sqlx::{QueryBuilder, Sqlite, SqliteConnection};

use crate::probe::CheckRecord;
use crate::store::{to_ms, Store, StoreError};

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
