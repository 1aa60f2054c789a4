//! Hourly rollups of scheduled health checks, merged in the transaction that settles checks into `checks`
//! (`settle.rs`), so a rollup always counts exactly the settled checks of its hour. The SLO
//! engine reads rollups: they outlive raw checks. On-demand checks stay in `health_checks` only: an SLO
//! counts what the monitor saw at its steady pace, not how often someone asked. Stored in `checks_hourly`,
//! keyed by target id (the view `health_check_hourly` shows names).

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;
use sqlx::{QueryBuilder, Sqlite, SqliteConnection};

use crate::records::histogram::LatencyHistogram;
use crate::records::{CheckSource, Outcome};
use crate::store::codes::unpack;
use crate::store::raw::Statement;
use crate::store::{from_ms, to_ms, Store, StoreError};

const HOUR_MS: i64 = 3_600_000;

/// One service's checks during one hour.
#[derive(Debug, Clone, PartialEq)]
pub struct HourlyRollup {
    pub service: String,
    pub hour: DateTime<Utc>,
    pub total: u64,
    pub good: u64,
    pub latency_sum_us: u64,
    pub latency_max_us: u64,
    pub latency: LatencyHistogram,
}

#[derive(Debug, Clone, Default)]
struct Aggregate {
    total: u64,
    good: u64,
    latency_sum_us: u64,
    latency_max_us: u64,
    latency: LatencyHistogram,
}

impl Aggregate {
    /// Counts one check. `circuit_open` checks were not made: they have no latency.
    fn record(&mut self, outcome: Outcome, latency_us: Option<u64>) {
        self.total += 1;
        self.good += u64::from(outcome.is_up());
        if let Some(us) = latency_us.filter(|_| outcome != Outcome::CircuitOpen) {
            self.latency_sum_us = self.latency_sum_us.saturating_add(us);
            self.latency_max_us = self.latency_max_us.max(us);
            self.latency.record(us);
        }
    }

    fn merge(&mut self, other: &Aggregate) {
        self.total += other.total;
        self.good += other.good;
        self.latency_sum_us = self.latency_sum_us.saturating_add(other.latency_sum_us);
        self.latency_max_us = self.latency_max_us.max(other.latency_max_us);
        self.latency.merge(&other.latency);
    }
}

/// Rollup rows per INSERT statement (7 bound values each), and per piece a settle merges at a time.
const ROWS_PER_STATEMENT: usize = 1_000;

/// Scheduled checks added up by hour and target, to be added to their stored rows (`add_to_stored`).
/// On-demand checks are skipped. Keyed by hour, then target: the table's key order.
#[derive(Debug, Default)]
pub(crate) struct HourlyDeltas {
    deltas: BTreeMap<(i64, i64), Aggregate>,
}

impl HourlyDeltas {
    /// Counts one raw check: target id, time (epoch ms), packed state (`codes.rs`), latency in µs.
    pub(crate) fn add(&mut self, target: i64, ms: i64, state: i64, latency_us: Option<i64>) {
        let Some((outcome, _, source)) = unpack(state) else {
            return;
        };
        if source != CheckSource::Monitor {
            return;
        }
        let hour = ms - ms.rem_euclid(HOUR_MS);
        let latency_us = latency_us.and_then(|l| u64::try_from(l).ok());
        self.deltas
            .entry((hour, target))
            .or_default()
            .record(outcome, latency_us);
    }
}

/// A `checks_hourly` row: target, hour, total, good, latency sum and max, encoded histogram.
#[cfg(test)]
pub(crate) type StoredRow = (i64, i64, i64, i64, i64, i64, Vec<u8>);

#[cfg(test)]
impl HourlyDeltas {
    /// Each (target, hour) as its row would be stored: target, hour, total, good, latency sum and max, and
    /// the encoded histogram, in key order (hour, then target).
    pub(crate) fn stored_rows(&self) -> Vec<StoredRow> {
        self.deltas
            .iter()
            .map(|(&(hour, target), a)| {
                (
                    target,
                    hour,
                    saturating_i64(a.total),
                    saturating_i64(a.good),
                    saturating_i64(a.latency_sum_us),
                    saturating_i64(a.latency_max_us),
                    a.latency.encode(),
                )
            })
            .collect()
    }
}

/// Adds the deltas to their hourly rows inside the caller's transaction, `ROWS_PER_STATEMENT` rows at a time
/// in key order: each piece's stored rows are read (one range of the key when the piece is large, else each
/// by its key), added into the deltas in place and written back, before the next piece is taken. The table
/// is keyed by hour first, so the rows a settle touches (most targets' current hour) are a few neighbouring
/// pages. What is held beside the deltas is one piece, whatever the number of targets. Returns the rows
/// written.
pub(crate) async fn add_to_stored(
    conn: &mut SqliteConnection,
    deltas: HourlyDeltas,
) -> Result<usize, sqlx::Error> {
    let mut written = 0;
    // Consumed as it goes: the map's nodes are freed as their rows are written.
    let mut deltas = deltas.deltas.into_iter().peekable();
    let mut piece: Vec<(i64, i64, Aggregate)> = Vec::new();
    while let Some(&((hour, _), _)) = deltas.peek() {
        piece.clear();
        while piece.len() < ROWS_PER_STATEMENT {
            match deltas.next_if(|((h, _), _)| *h == hour) {
                Some(((_, target), delta)) => piece.push((target, hour, delta)),
                None => break,
            }
        }
        add_stored(conn, hour, &mut piece).await?;
        write_rows(conn, &piece).await?;
        written += piece.len();
    }
    Ok(written)
}

/// Adds the stored rows of `piece` (one hour's rows, in target order) into it.
async fn add_stored(
    conn: &mut SqliteConnection,
    hour: i64,
    piece: &mut [(i64, i64, Aggregate)],
) -> Result<(), sqlx::Error> {
    let (Some(&(first, ..)), Some(&(last, ..))) = (piece.first(), piece.last()) else {
        return Ok(());
    };
    if piece.len() <= BULK_LOAD_ROWS {
        for (target, _, delta) in piece.iter_mut() {
            delta.merge(&load(conn, *target, hour).await?);
        }
        return Ok(());
    }
    // One range of the key, streamed in target order beside the piece: a merge join, one stored row held
    // at a time.
    let mut stored = sqlx::query_as::<_, (i64, i64, i64, i64, i64, Vec<u8>)>(
        "SELECT target_id, total, good, latency_sum_us, latency_max_us, latency_buckets
         FROM checks_hourly WHERE hour_ms = ?1 AND target_id BETWEEN ?2 AND ?3 ORDER BY target_id",
    )
    .bind(hour)
    .bind(first)
    .bind(last)
    .fetch(&mut *conn);
    let mut at = 0;
    while let Some((target, total, good, sum, max, buckets)) = stored.try_next().await? {
        while at < piece.len() && piece[at].0 < target {
            at += 1;
        }
        let Some((_, _, delta)) = piece.get_mut(at).filter(|(t, ..)| *t == target) else {
            continue; // a target this settle has no checks of
        };
        delta.merge(&Aggregate {
            total: non_negative(total),
            good: non_negative(good),
            latency_sum_us: non_negative(sum),
            latency_max_us: non_negative(max),
            latency: decode_target_latency(target, hour, &buckets),
        });
    }
    Ok(())
}

/// Writes hourly rows: new ones inserted, stored ones updated in place (a replace would also delete and insert
/// the row's entry in the index by target).
async fn write_rows(
    conn: &mut SqliteConnection,
    rows: &[(i64, i64, Aggregate)],
) -> Result<(), sqlx::Error> {
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let mut upsert: QueryBuilder<Sqlite> = QueryBuilder::new(
            "INSERT INTO checks_hourly
             (target_id, hour_ms, total, good, latency_sum_us, latency_max_us, latency_buckets) ",
        );
        upsert.push_values(chunk, |mut row, (target, hour, agg)| {
            row.push_bind(*target)
                .push_bind(*hour)
                .push_bind(saturating_i64(agg.total))
                .push_bind(saturating_i64(agg.good))
                .push_bind(saturating_i64(agg.latency_sum_us))
                .push_bind(saturating_i64(agg.latency_max_us))
                .push_bind(agg.latency.encode());
        });
        upsert.push(
            " ON CONFLICT (hour_ms, target_id) DO UPDATE SET total = excluded.total, good = excluded.good,
              latency_sum_us = excluded.latency_sum_us, latency_max_us = excluded.latency_max_us,
              latency_buckets = excluded.latency_buckets",
        );
        // Prepared each time, not kept in the connection's statement cache: a statement of 1,000 rows of 7
        // values is a large program, and pieces of other sizes (across an hour's end) would each add one.
        upsert.build().persistent(false).execute(&mut *conn).await?;
    }
    Ok(())
}

/// The `hale_meta` key set once the rollups count scheduled checks only.
const SCHEDULED_ONLY_KEY: &str = "rollups_scheduled_only";
/// Hours rebuilt per transaction: a day of one service.
const REBUILD_HOURS: i64 = 24;

/// Older versions rolled on-demand checks up too. Once per database (until `hale_meta` says it was done),
/// every hour that still has raw checks is rebuilt from its raw scheduled checks, one service and one day
/// per transaction. Hours whose raw checks were already pruned keep their rows: nothing is left to rebuild
/// them from. Returns the rows rebuilt (0 when already done).
pub(crate) async fn rebuild_scheduled_only(pool: &sqlx::SqlitePool) -> Result<u64, sqlx::Error> {
    let done: Option<String> = sqlx::query_scalar("SELECT value FROM hale_meta WHERE key = ?1")
        .bind(SCHEDULED_ONLY_KEY)
        .fetch_optional(pool)
        .await?;
    if done.is_some() {
        return Ok(0);
    }
    let spans: Vec<(i64, Option<i64>, Option<i64>)> = sqlx::query_as(
        "SELECT id, (SELECT min(checked_at_ms) FROM checks WHERE target_id = id),
                (SELECT max(checked_at_ms) FROM checks WHERE target_id = id)
         FROM targets",
    )
    .fetch_all(pool)
    .await?;
    let mut rebuilt = 0u64;
    for (target, first_ms, last_ms) in spans {
        let (Some(first_ms), Some(last_ms)) = (first_ms, last_ms) else {
            continue; // a target with rollups only: nothing to rebuild from
        };
        let mut from = first_ms - first_ms.rem_euclid(HOUR_MS);
        while from <= last_ms {
            let until = from + REBUILD_HOURS * HOUR_MS;
            rebuilt += rebuild_range(pool, target, from, until).await?;
            from = until;
        }
    }
    sqlx::query("INSERT OR REPLACE INTO hale_meta (key, value) VALUES (?1, 'true')")
        .bind(SCHEDULED_ONLY_KEY)
        .execute(pool)
        .await?;
    Ok(rebuilt)
}

/// Rebuilds one target's hours in `[from, until)` that have raw checks, in one transaction.
async fn rebuild_range(
    pool: &sqlx::SqlitePool,
    target: i64,
    from: i64,
    until: i64,
) -> Result<u64, sqlx::Error> {
    use sqlx::Connection;
    let mut conn = pool.acquire().await?;
    let mut tx = conn.begin().await?;
    let raw: Vec<(i64, i64, Option<i64>)> = sqlx::query_as(
        "SELECT checked_at_ms, state, latency_us FROM checks
         WHERE target_id = ?1 AND checked_at_ms >= ?2 AND checked_at_ms < ?3",
    )
    .bind(target)
    .bind(from)
    .bind(until)
    .fetch_all(&mut *tx)
    .await?;
    let mut hours: HashMap<i64, Aggregate> = HashMap::new();
    for (at, state, latency_us) in raw {
        let hour = at - at.rem_euclid(HOUR_MS);
        let agg = hours.entry(hour).or_default();
        let Some((outcome, _, source)) = unpack(state) else {
            continue;
        };
        if source != CheckSource::Monitor {
            continue;
        }
        agg.record(outcome, latency_us.and_then(|l| u64::try_from(l).ok()));
    }
    for (hour, agg) in &hours {
        if agg.total == 0 {
            sqlx::query("DELETE FROM checks_hourly WHERE target_id = ?1 AND hour_ms = ?2")
                .bind(target)
                .bind(hour)
                .execute(&mut *tx)
                .await?;
        }
    }
    let rebuilt = hours.len() as u64;
    let rows: Vec<(i64, i64, Aggregate)> = hours
        .into_iter()
        .filter(|(_, agg)| agg.total > 0)
        .map(|(hour, agg)| (target, hour, agg))
        .collect();
    write_rows(&mut tx, &rows).await?;
    tx.commit().await?;
    crate::store::txn::confirm_committed(&mut conn).await?;
    Ok(rebuilt)
}

#[derive(sqlx::FromRow)]
struct RollupRow {
    service: String,
    hour_ms: i64,
    total: i64,
    good: i64,
    latency_sum_us: i64,
    latency_max_us: i64,
    latency_buckets: Vec<u8>,
}

const SELECT_ROLLUP: &str =
    "SELECT t.name AS service, hour_ms, total, good, latency_sum_us, latency_max_us, latency_buckets
     FROM checks_hourly JOIN targets AS t ON t.id = target_id";

impl RollupRow {
    fn aggregate(&self) -> Aggregate {
        let latency = decode_latency(&self.service, self.hour_ms, &self.latency_buckets);
        Aggregate {
            total: non_negative(self.total),
            good: non_negative(self.good),
            latency_sum_us: non_negative(self.latency_sum_us),
            latency_max_us: non_negative(self.latency_max_us),
            latency,
        }
    }
}

/// A stored histogram; an unreadable one is logged and read as empty, so its hour still counts its checks.
fn decode_latency(service: &str, hour_ms: i64, blob: &[u8]) -> LatencyHistogram {
    LatencyHistogram::decode(blob).unwrap_or_else(|e| {
        tracing::warn!(service, hour_ms, error = %e, "ignoring an unreadable latency histogram");
        LatencyHistogram::new()
    })
}

/// `decode_latency` for a row read by target id, without its name.
fn decode_target_latency(target_id: i64, hour_ms: i64, blob: &[u8]) -> LatencyHistogram {
    LatencyHistogram::decode(blob).unwrap_or_else(|e| {
        tracing::warn!(target_id, hour_ms, error = %e, "ignoring an unreadable latency histogram");
        LatencyHistogram::new()
    })
}

/// The stored row of one target and hour, or an empty one.
async fn load(
    conn: &mut SqliteConnection,
    target: i64,
    hour: i64,
) -> Result<Aggregate, sqlx::Error> {
    let row: Option<RollupRow> = sqlx::query_as(&format!(
        "{SELECT_ROLLUP} WHERE hour_ms = ?1 AND target_id = ?2"
    ))
    .bind(hour)
    .bind(target)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.map(|r| r.aggregate()).unwrap_or_default())
}

/// Past this many rows in a piece of one hour, a settle reads the piece's stored rows in one range of the key.
const BULK_LOAD_ROWS: usize = 64;

fn non_negative(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn saturating_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl Store {
    /// The hourly rollups of one service whose hour starts in `[since, until)`, oldest first.
    pub async fn hourly_rollups(
        &self,
        service: &str,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<HourlyRollup>, StoreError> {
        let rows: Vec<RollupRow> = sqlx::query_as(&format!(
            "{SELECT_ROLLUP} WHERE target_id = (SELECT id FROM targets WHERE name = ?1)
               AND hour_ms >= ?2 AND hour_ms < ?3 ORDER BY hour_ms"
        ))
        .bind(service)
        .bind(to_ms(since))
        .bind(to_ms(until))
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|row| {
                let agg = row.aggregate();
                HourlyRollup {
                    hour: from_ms(row.hour_ms),
                    total: agg.total,
                    good: agg.good,
                    latency_sum_us: agg.latency_sum_us,
                    latency_max_us: agg.latency_max_us,
                    latency: agg.latency,
                    service: row.service,
                }
            })
            .collect())
    }
}

impl Store {
    /// Every service's hourly rollups whose hour starts in `[since, until)`, by service, oldest first: one
    /// range scan for a whole report.
    pub async fn rollups_between(
        &self,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<HashMap<String, Vec<HourlyRollup>>, StoreError> {
        // Stepped on the connection's own handle: through sqlx, each row is copied on the connection's
        // thread and handed over one by one, which costs three times SQLite's scan. The read runs on this
        // thread, about 20 ms for 7 days of 100 services (a report, not a request handler).
        let mut conn = self.pool().acquire().await?;
        let mut handle = conn.lock_handle().await?;
        // In hour order, as the time index gives them: each service's rows come out oldest first, and SQLite
        // sorts nothing (ordering by service too would sort every row, blob included, in a temporary tree).
        let mut rows = Statement::prepare(
            &mut handle,
            &format!("{SELECT_ROLLUP} WHERE hour_ms >= ?1 AND hour_ms < ?2 ORDER BY hour_ms"),
        )?;
        rows.bind_i64(1, to_ms(since))?;
        rows.bind_i64(2, to_ms(until))?;
        let mut by_service: HashMap<String, Vec<HourlyRollup>> = HashMap::new();
        while rows.step()? {
            let service = String::from_utf8_lossy(rows.column_bytes(0));
            let hour_ms = rows.column_i64(1);
            let latency = decode_latency(&service, hour_ms, rows.column_bytes(6));
            let rollup = HourlyRollup {
                hour: from_ms(hour_ms),
                total: non_negative(rows.column_i64(2)),
                good: non_negative(rows.column_i64(3)),
                latency_sum_us: non_negative(rows.column_i64(4)),
                latency_max_us: non_negative(rows.column_i64(5)),
                latency,
                service: service.clone().into_owned(),
            };
            match by_service.get_mut(service.as_ref()) {
                Some(hours) => hours.push(rollup),
                None => {
                    by_service.insert(service.into_owned(), vec![rollup]);
                }
            }
        }
        Ok(by_service)
    }

    /// The hourly rollups of each of `services` whose hour starts in `[since, until)`, by service, oldest
    /// first; a service without rows is left out. One seek of the `(target, hour)` key per service, through
    /// one prepared statement, so a caller that evaluates many targets can read them a bounded number at
    /// a time (what `rollups_between` reads grows with every target's history at once).
    pub async fn rollups_of(
        &self,
        services: &[&str],
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<HashMap<String, Vec<HourlyRollup>>, StoreError> {
        let mut by_service: HashMap<String, Vec<HourlyRollup>> =
            HashMap::with_capacity(services.len());
        if services.is_empty() {
            return Ok(by_service);
        }
        // Stepped on the connection's own handle, as `rollups_between`.
        let mut conn = self.pool().acquire().await?;
        let mut handle = conn.lock_handle().await?;
        let mut rows = Statement::prepare(
            &mut handle,
            &format!(
                "{SELECT_ROLLUP} WHERE target_id = (SELECT id FROM targets WHERE name = ?1)
                   AND hour_ms >= ?2 AND hour_ms < ?3 ORDER BY hour_ms"
            ),
        )?;
        for &service in services {
            rows.bind_text(1, service)?;
            rows.bind_i64(2, to_ms(since))?;
            rows.bind_i64(3, to_ms(until))?;
            let mut hours = Vec::new();
            let read = read_rollups(&mut rows, service, &mut hours);
            rows.reset();
            read?;
            if !hours.is_empty() {
                // Sized to what was read: the caller holds every service's rows until it is done.
                hours.shrink_to_fit();
                by_service.insert(service.to_owned(), hours);
            }
        }
        Ok(by_service)
    }
}

/// The rows of one service's rollup query (`SELECT_ROLLUP`'s columns), appended to `into`.
fn read_rollups(
    rows: &mut Statement<'_>,
    service: &str,
    into: &mut Vec<HourlyRollup>,
) -> Result<(), StoreError> {
    while rows.step()? {
        let hour_ms = rows.column_i64(1);
        into.push(HourlyRollup {
            hour: from_ms(hour_ms),
            total: non_negative(rows.column_i64(2)),
            good: non_negative(rows.column_i64(3)),
            latency_sum_us: non_negative(rows.column_i64(4)),
            latency_max_us: non_negative(rows.column_i64(5)),
            latency: decode_latency(service, hour_ms, rows.column_bytes(6)),
            service: service.to_owned(),
        });
    }
    Ok(())
}

/// One service's hourly rollups over a window, merged: what an SLO over that window is computed from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WindowTotals {
    /// Hours with at least one check.
    pub hours: u32,
    pub total: u64,
    pub good: u64,
    pub latency_max_us: u64,
    pub latency: LatencyHistogram,
}

impl Store {
    /// The rollups of every service whose hour starts in `[since, until)`, merged per service (by name). One
    /// indexed range scan over the hourly table, whatever the number of raw checks.
    pub async fn window_totals(
        &self,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<HashMap<String, WindowTotals>, StoreError> {
        let rows: Vec<RollupRow> = sqlx::query_as(&format!(
            "{SELECT_ROLLUP} WHERE hour_ms >= ?1 AND hour_ms < ?2"
        ))
        .bind(to_ms(since))
        .bind(to_ms(until))
        .fetch_all(self.pool())
        .await?;
        let mut totals: HashMap<String, WindowTotals> = HashMap::new();
        for row in rows {
            let agg = row.aggregate();
            let window = totals.entry(row.service).or_default();
            window.hours += 1;
            window.total += agg.total;
            window.good += agg.good;
            window.latency_max_us = window.latency_max_us.max(agg.latency_max_us);
            window.latency.merge(&agg.latency);
        }
        Ok(totals)
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn hour(h: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap() + chrono::Duration::hours(h)
    }

    async fn insert(store: &Store, service: &str, h: i64, total: i64, good: i64, blob: &[u8]) {
        sqlx::query(
            "INSERT INTO health_check_hourly
             (service, hour_ms, total, good, latency_sum_us, latency_max_us, latency_buckets)
             VALUES (?1, ?2, ?3, ?4, 0, 0, ?5)",
        )
        .bind(service)
        .bind(to_ms(hour(h)))
        .bind(total)
        .bind(good)
        .bind(blob)
        .execute(store.pool())
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn a_span_of_rollups_is_read_by_service_oldest_first_and_a_bad_histogram_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("hale.db")).await.unwrap();
        let mut latency = LatencyHistogram::new();
        for us in [1_000, 2_000, 150_000] {
            latency.record(us);
        }
        let blob = latency.encode();
        // Inserted out of order, one hour outside the span, one service with an unreadable histogram.
        insert(&store, "api", 3, 10, 9, &blob).await;
        insert(&store, "api", 1, 5, 5, &blob).await;
        insert(&store, "db", 2, 7, 0, b"not a histogram").await;
        insert(&store, "api", 9, 1, 1, &blob).await;

        let by_service = store.rollups_between(hour(0), hour(9)).await.unwrap();
        let api = &by_service["api"];
        assert_eq!(api.len(), 2, "hour 9 is outside [0, 9)");
        assert_eq!(
            api.iter()
                .map(|r| (r.hour, r.total, r.good))
                .collect::<Vec<_>>(),
            [(hour(1), 5, 5), (hour(3), 10, 9)]
        );
        assert_eq!(api[0].latency, latency);
        assert_eq!(api[0].service, "api");
        let db = &by_service["db"];
        assert_eq!((db.len(), db[0].total, db[0].good), (1, 7, 0));
        assert_eq!(
            db[0].latency,
            LatencyHistogram::new(),
            "counts kept, latency left out"
        );

        assert!(store
            .rollups_between(hour(100), hour(200))
            .await
            .unwrap()
            .is_empty());

        // The same rows, read service by service: only those asked for, unknown names left out.
        let some = store
            .rollups_of(&["db", "nobody", "api"], hour(0), hour(9))
            .await
            .unwrap();
        assert_eq!(some.len(), 2, "{some:?}");
        for (name, rows) in &some {
            assert_eq!(rows, &by_service[name], "{name}");
        }
        assert!(store
            .rollups_of(&["api"], hour(100), hour(200))
            .await
            .unwrap()
            .is_empty());
        assert!(store
            .rollups_of(&[], hour(0), hour(9))
            .await
            .unwrap()
            .is_empty());
    }

    #[tokio::test]
    async fn a_failed_read_names_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("hale.db")).await.unwrap();
        sqlx::query("DROP TABLE checks_hourly")
            .execute(store.pool())
            .await
            .unwrap();
        let err = store
            .rollups_between(hour(0), hour(1))
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("no such table: checks_hourly"), "{err}");
    }
}
