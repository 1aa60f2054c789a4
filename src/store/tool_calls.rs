//! The MCP bridge's tool calls: written in batches by the writer (`writer.rs`), read back newest first by
//! `GET /tools/calls`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::{QueryBuilder, Sqlite, SqliteConnection};

use crate::records::{ToolCallOutcome, ToolCallRecord};
use crate::store::{from_ms, known, role_name, to_ms, Store, StoreError};

const TABLE: &str = "tool_calls";
/// Rows per INSERT statement: 12 columns each, under SQLite's 32,766 bound variables.
const ROWS_PER_STATEMENT: usize = 1_000;

/// A stored call, with its id.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredToolCall {
    pub id: i64,
    pub record: ToolCallRecord,
}

/// Which calls to read: each filter is optional; newest first, at most `limit`, older than `before_id`
/// when given (the next page).
#[derive(Debug, Clone, Default)]
pub struct ToolCallQuery {
    pub tool: Option<String>,
    pub server: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub before_id: Option<i64>,
    pub limit: u32,
}

#[derive(sqlx::FromRow)]
struct ToolCallRow {
    id: i64,
    at_ms: i64,
    server: String,
    tool: String,
    outcome: String,
    latency_us: Option<i64>,
    request_id: String,
    role: Option<String>,
    argument_bytes: i64,
    error: Option<String>,
    arguments: Option<String>,
    result: Option<String>,
}

/// Inserts `calls` inside the writer's transaction.
pub(crate) async fn insert_batch(
    conn: &mut SqliteConnection,
    calls: &[&ToolCallRecord],
) -> Result<(), sqlx::Error> {
    for chunk in calls.chunks(ROWS_PER_STATEMENT) {
        let mut insert: QueryBuilder<Sqlite> = QueryBuilder::new(
            "INSERT INTO tool_calls (at_ms, server, tool, outcome, latency_us, request_id, role, argument_bytes, error, arguments, result) ",
        );
        insert.push_values(chunk, |mut row, call| {
            row.push_bind(to_ms(call.at))
                .push_bind(&*call.server)
                .push_bind(&call.tool)
                .push_bind(call.outcome.as_str())
                .push_bind(
                    call.latency
                        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX)),
                )
                .push_bind(&call.request_id)
                .push_bind(call.role)
                .push_bind(i64::try_from(call.argument_bytes).unwrap_or(i64::MAX))
                .push_bind(call.error.as_deref())
                .push_bind(call.arguments.as_deref())
                .push_bind(call.result.as_deref());
        });
        insert.build().execute(&mut *conn).await?;
    }
    Ok(())
}

impl Store {
    /// Stored calls matching `query`, newest first.
    pub async fn tool_calls(
        &self,
        query: &ToolCallQuery,
    ) -> Result<Vec<StoredToolCall>, StoreError> {
        let mut select: QueryBuilder<Sqlite> = QueryBuilder::new(
            "SELECT id, at_ms, server, tool, outcome, latency_us, request_id, role, argument_bytes, error, arguments, result
             FROM tool_calls WHERE at_ms >= ",
        );
        select.push_bind(query.since.map_or(i64::MIN, to_ms));
        if let Some(tool) = &query.tool {
            select.push(" AND tool = ").push_bind(tool);
        }
        if let Some(server) = &query.server {
            select.push(" AND server = ").push_bind(server);
        }
        if let Some(before) = query.before_id {
            select.push(" AND id < ").push_bind(before);
        }
        select
            .push(" ORDER BY id DESC LIMIT ")
            .push_bind(i64::from(query.limit));
        let rows: Vec<ToolCallRow> = select.build_query_as().fetch_all(self.pool()).await?;
        Ok(rows
            .into_iter()
            .filter_map(|row| {
                let outcome = known(
                    TABLE,
                    "outcome",
                    &row.outcome,
                    ToolCallOutcome::parse(&row.outcome),
                )?;
                let role = match row.role.as_deref() {
                    None => None,
                    Some(raw) => Some(known(TABLE, "role", raw, role_name(raw))?),
                };
                Some(StoredToolCall {
                    id: row.id,
                    record: ToolCallRecord {
                        at: from_ms(row.at_ms),
                        server: row.server.into(),
                        tool: row.tool,
                        outcome,
                        latency: row
                            .latency_us
                            .and_then(|us| u64::try_from(us).ok())
                            .map(Duration::from_micros),
                        request_id: row.request_id,
                        role,
                        argument_bytes: u64::try_from(row.argument_bytes).unwrap_or(0),
                        error: row.error,
                        arguments: row.arguments,
                        result: row.result,
                    },
                })
            })
            .collect())
    }
}
