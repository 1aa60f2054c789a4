//! Raw health-check rows: the compact `checks` table (`migrations/0009_compact_checks.sql`), keyed by target id
//! and time, with outcome, breaker state and source as small integers (`codes.rs`) and error texts interned.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use sqlx::{Connection, QueryBuilder, Sqlite, SqliteConnection};

use crate::breaker::BreakerState;
use crate::records::{CheckRecord, CheckSource, Outcome};
use crate::store::codes::{pack, unpack};
use crate::store::{from_ms, to_ms, Store, StoreError};

/// Rows per INSERT statement: 6 bound values each keeps a statement far below SQLite's variable limit.
const ROWS_PER_STATEMENT: usize = 1_000;
/// Error texts the writer keeps ids for; past it the map starts over (texts are few in practice).
const CACHED_ERRORS: usize = 4_096;
/// An error text's `last_used_ms` is moved forward at most once per this span of check time, so a target that
/// fails the same way for hours costs one small UPDATE an hour, not one per check.
pub(crate) const ERROR_STAMP_EVERY_MS: i64 = 3_600_000;

/// The writer's map of target names and error texts to their ids. The writer is the only one that adds
/// either, so once an id is known it stays right until a transaction fails (`invalidate`).
#[derive(Debug, Default)]
pub(crate) struct IdCache {
    targets: HashMap<Arc<str>, i64>,
    /// Error text -> (id, the `last_used_ms` stored for it).
    errors: HashMap<String, (i64, i64)>,
}

impl IdCache {
    /// Forgets everything, after a failed transaction may have rolled back ids it handed out.
    pub(crate) fn invalidate(&mut self) {
        self.targets.clear();
        self.errors.clear();
    }

    /// The id of a name `resolve` has seen in this transaction.
    pub(crate) fn target(&self, name: &str) -> Option<i64> {
        self.targets.get(name).copied()
    }

    /// Gives every target and error text of `records` an id, inside the caller's transaction: new names and
    /// texts are inserted; known ones cost a hash lookup.
    pub(crate) async fn resolve(
        &mut self,
        conn: &mut SqliteConnection,
        records: &[&CheckRecord],
    ) -> Result<(), sqlx::Error> {
        for r in records {
            if !self.targets.contains_key(&r.service) {
                let id = target_id(conn, &r.service).await?;
                self.targets.insert(r.service.clone(), id);
            }
            if let Some(message) = &r.error {
                let ms = to_ms(r.checked_at);
                let stale = self
                    .errors
                    .get(message)
                    .is_none_or(|(_, stamp)| ms > stamp + ERROR_STAMP_EVERY_MS);
                if stale {
                    let id: i64 = sqlx::query_scalar(
                        "INSERT INTO check_errors (message, last_used_ms) VALUES (?1, ?2)
                         ON CONFLICT (message) DO UPDATE SET last_used_ms = max(last_used_ms, excluded.last_used_ms)
                         RETURNING id",
                    )
                    .bind(message)
                    .bind(ms)
                    .fetch_one(&mut *conn)
                    .await?;
                    if self.errors.len() >= CACHED_ERRORS {
                        self.errors.clear();
                    }
                    let stamp = self.errors.get(message).map_or(ms, |(_, s)| ms.max(*s));
                    self.errors.insert(message.clone(), (id, stamp));
                }
            }
        }
        Ok(())
    }

    fn error(&self, message: Option<&str>) -> Option<i64> {
        message.and_then(|m| self.errors.get(m)).map(|(id, _)| *id)
    }
}

/// The id of a target name, given one when it has none.
pub(crate) async fn target_id(conn: &mut SqliteConnection, name: &str) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO targets (name) VALUES (?1) ON CONFLICT (name) DO UPDATE SET name = excluded.name RETURNING id",
    )
    .bind(name)
    .fetch_one(conn)
    .await
}

fn latency_us(r: &CheckRecord) -> Option<i64> {
    r.latency
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// Stages checks in `checks_recent` inside the caller's transaction, for the next settle (`settle.rs`) to move
/// into `checks`; `ids.resolve` must have seen `records`. A check whose target already has a recent one at
/// the same millisecond gets the next `seq`: each chunk is tried as one statement that skips such rows, and
/// only when one was skipped is the chunk redone row by row.
pub(crate) async fn stage_batch(
    conn: &mut SqliteConnection,
    ids: &IdCache,
    records: &[&CheckRecord],
) -> Result<(), sqlx::Error> {
    let mut rows = Vec::with_capacity(records.len().min(ROWS_PER_STATEMENT));
    for chunk in records.chunks(ROWS_PER_STATEMENT) {
        rows.clear();
        for r in chunk {
            let Some(target) = ids.target(&r.service) else {
                return Err(sqlx::Error::Protocol(format!(
                    "no target id for {:?}: the batch was not resolved",
                    r.service
                )));
            };
            rows.push((target, r));
        }
        let mut savepoint = conn.begin().await?;
        let mut insert: QueryBuilder<Sqlite> = QueryBuilder::new(
            "INSERT INTO checks_recent (target_id, checked_at_ms, state, http_status, latency_us, error_id) ",
        );
        insert.push_values(&rows, |mut row, (target, r)| {
            row.push_bind(*target)
                .push_bind(to_ms(r.checked_at))
                .push_bind(pack(r.outcome, r.breaker_state, r.source))
                .push_bind(r.http_status.map(i64::from))
                .push_bind(latency_us(r))
                .push_bind(ids.error(r.error.as_deref()));
        });
        insert.push(" ON CONFLICT DO NOTHING");
        let inserted = insert
            .build()
            .execute(&mut *savepoint)
            .await?
            .rows_affected();
        if inserted == rows.len() as u64 {
            savepoint.commit().await?;
            continue;
        }
        savepoint.rollback().await?;
        for (target, r) in &rows {
            sqlx::query(
                "INSERT INTO checks_recent (target_id, checked_at_ms, seq, state, http_status, latency_us, error_id)
                 VALUES (?1, ?2, (SELECT coalesce(max(seq) + 1, 0) FROM checks_recent WHERE checked_at_ms = ?2 AND target_id = ?1),
                         ?3, ?4, ?5, ?6)",
            )
            .bind(*target)
            .bind(to_ms(r.checked_at))
            .bind(pack(r.outcome, r.breaker_state, r.source))
            .bind(r.http_status.map(i64::from))
            .bind(latency_us(r))
            .bind(ids.error(r.error.as_deref()))
            .execute(&mut *conn)
            .await?;
        }
    }
    Ok(())
}

impl Store {
    /// Whether the file stages checks in `checks_recent` (migration 10). A store opened for writing is always
    /// migrated; one opened read-only may be older (a new `hale status` beside an old `hale serve`).
    async fn stages_checks(&self) -> Result<bool, StoreError> {
        if !self.read_only {
            return Ok(true);
        }
        let tables: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'checks_recent'",
        )
        .fetch_one(self.pool())
        .await?;
        Ok(tables > 0)
    }

    /// Number of stored checks, settled or not, for one service or all of them.
    pub async fn count_checks(&self, service: Option<&str>) -> Result<i64, StoreError> {
        let settled = self.count_checks_in("checks", service).await?;
        if !self.stages_checks().await? {
            return Ok(settled);
        }
        Ok(settled + self.count_checks_in("checks_recent", service).await?)
    }

    /// Checks in `table` (`checks` or `checks_recent`), for one service or all of them.
    async fn count_checks_in(&self, table: &str, service: Option<&str>) -> Result<i64, StoreError> {
        let sql = match service {
            None => format!("SELECT count(*) FROM {table}"),
            Some(_) => format!(
                "SELECT count(*) FROM {table} WHERE target_id = (SELECT id FROM targets WHERE name = ?1)"
            ),
        };
        let count = sqlx::query_scalar(&sql)
            .bind(service)
            .fetch_one(self.pool())
            .await?;
        Ok(count)
    }
}

/// A stored health check as read back.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredCheck {
    /// Tells the check apart from others at the same `checked_at`: its target's id times 256 plus its `seq`.
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

/// `StoredCheck::id` from the key: unique among the checks of one millisecond.
const ID_SQL: &str = "(c.target_id * 256 + min(c.seq, 255))";
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

/// One page (and one row more) of raw checks `from` one table, newest first: `from` names it `c` and
/// `targets` `t`.
fn history_page_sql<'q>(
    from: &str,
    query: &'q HistoryQuery,
    since: i64,
    upper: i64,
) -> QueryBuilder<'q, Sqlite> {
    let mut sql: QueryBuilder<Sqlite> = QueryBuilder::new(format!(
        "SELECT {ID_SQL} AS id, c.checked_at_ms, t.name AS service, c.state, c.http_status, c.latency_us,
                e.message AS error
         {from}
         LEFT JOIN check_errors AS e ON e.id = c.error_id
         WHERE c.checked_at_ms < "
    ));
    sql.push_bind(upper);
    if let Some(service) = &query.service {
        sql.push(" AND t.name = ").push_bind(service.as_str());
    }
    if since > i64::MIN {
        sql.push(" AND c.checked_at_ms >= ").push_bind(since);
    }
    if let Some(cursor) = query.cursor {
        sql.push(format!(" AND (c.checked_at_ms, {ID_SQL}) < ("))
            .push_bind(cursor.checked_at_ms)
            .push(", ")
            .push_bind(cursor.id)
            .push(")");
    }
    // One row more than asked tells whether another page exists. For one target, `seq` orders as the id
    // does, and the key's own order serves: nothing is sorted.
    sql.push(if query.service.is_some() {
        " ORDER BY c.checked_at_ms DESC, c.seq DESC LIMIT "
    } else {
        " ORDER BY c.checked_at_ms DESC, id DESC LIMIT "
    })
    .push_bind(i64::from(query.limit) + 1);
    sql
}

#[derive(sqlx::FromRow)]
struct CheckRow {
    id: i64,
    checked_at_ms: i64,
    service: String,
    state: i64,
    http_status: Option<i64>,
    latency_us: Option<i64>,
    error: Option<String>,
}

impl Store {
    /// One page of raw checks, newest first, and the cursor of the next page when there is one. With a
    /// service, a range scan of its key; across services, a scan of the span asked for.
    pub async fn check_history(
        &self,
        query: &HistoryQuery,
    ) -> Result<(Vec<StoredCheck>, Option<HistoryCursor>), StoreError> {
        // Newer than every row of the page to come: `until`, or the cursor's time (inclusive: ties follow).
        let upper = match (query.until.map(to_ms), query.cursor) {
            (Some(until), Some(c)) => until.min(c.checked_at_ms.saturating_add(1)),
            (Some(until), None) => until,
            (None, Some(c)) => c.checked_at_ms.saturating_add(1),
            (None, None) => i64::MAX,
        };
        let mut since = query.since.map_or(i64::MIN, to_ms);
        if query.service.is_none() {
            // Across targets, with no time index: the page lies at or after the newest of the targets' own
            // (limit + 1)-th newest check (that target alone has that many at or after it). One short seek
            // per target finds that floor; then each target is read from it, a range of its key. Checks not
            // settled yet only add rows at the top, so a floor from the settled ones alone is never too high.
            let floor: Option<i64> = sqlx::query_scalar(
                "SELECT max((SELECT checked_at_ms FROM checks WHERE target_id = t.id
                             AND checked_at_ms >= ?1 AND checked_at_ms < ?2
                             ORDER BY checked_at_ms DESC LIMIT 1 OFFSET ?3))
                 FROM targets AS t",
            )
            .bind(since)
            .bind(upper)
            .bind(i64::from(query.limit))
            .fetch_one(self.pool())
            .await?;
            since = since.max(floor.unwrap_or(i64::MIN));
        }
        // Settled checks, targets first (CROSS JOIN keeps that order): each one's checks are a range of the key.
        let settled = "FROM targets AS t CROSS JOIN checks AS c ON c.target_id = t.id";
        // Checks not settled yet: the newest rows of a table keyed by time, read newest first.
        let recent = "FROM checks_recent AS c CROSS JOIN targets AS t ON t.id = c.target_id";
        let mut rows = Vec::new();
        let tables = if self.stages_checks().await? {
            &[settled, recent][..]
        } else {
            &[settled][..]
        };
        for &from in tables {
            let mut sql = history_page_sql(from, query, since, upper);
            rows.extend(
                sql.build_query_as::<CheckRow>()
                    .fetch_all(self.pool())
                    .await?,
            );
        }
        // Newest first across both, ties by id as each query ordered them.
        rows.sort_by_key(|row| std::cmp::Reverse((row.checked_at_ms, row.id)));
        let more = rows.len() > query.limit as usize;
        rows.truncate(query.limit as usize);
        let next = rows.last().filter(|_| more).map(|last| HistoryCursor {
            checked_at_ms: last.checked_at_ms,
            id: last.id,
        });
        let checks = rows
            .into_iter()
            .filter_map(|row| {
                let (outcome, breaker_state, source) = unpack(row.state)?;
                Some(StoredCheck {
                    id: row.id,
                    checked_at: from_ms(row.checked_at_ms),
                    outcome,
                    http_status: row.http_status.and_then(|s| u16::try_from(s).ok()),
                    latency_us: row.latency_us.and_then(|l| u64::try_from(l).ok()),
                    error: row.error,
                    breaker_state,
                    source,
                    service: row.service,
                })
            })
            .collect();
        Ok((checks, next))
    }
}
