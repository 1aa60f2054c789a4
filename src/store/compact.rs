//! The one-off copy of a database's raw checks from the old `health_checks` table (one row per check with TEXT
//! columns and two indexes) into the compact `checks` table of migration 9. The migration renames the old
//! table `health_checks_legacy`; this copy runs right after the migrations, in chunks of rowids, one
//! transaction each, logging its progress. Where it got to is kept in `hale_meta`, so a copy that was
//! stopped resumes; once every row is copied, the old table is dropped.

use std::time::{Duration, Instant};

use sqlx::{Connection, SqlitePool};

use crate::store::codes::pack_names_sql;

const LEGACY: &str = "health_checks_legacy";
/// The `hale_meta` key holding the highest rowid of the old table already copied.
const COPIED_KEY: &str = "compact_checks_copied_rowid";
/// Old rows per transaction.
const CHUNK: i64 = 100_000;
/// How often the copy logs its progress.
const PROGRESS_EVERY: Duration = Duration::from_secs(3);

/// Copies every row of the old table into `checks`, then drops it. Returns the rows copied (0 when there was
/// no old table). `path` is only for the log lines.
pub(crate) async fn copy_legacy_checks(
    pool: &SqlitePool,
    path: &std::path::Path,
) -> Result<u64, sqlx::Error> {
    let exists: i64 =
        sqlx::query_scalar("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1")
            .bind(LEGACY)
            .fetch_one(pool)
            .await?;
    if exists == 0 {
        return Ok(0);
    }
    let done_upto: Option<String> =
        sqlx::query_scalar("SELECT value FROM hale_meta WHERE key = ?1")
            .bind(COPIED_KEY)
            .fetch_optional(pool)
            .await?;
    let done_upto: i64 = done_upto.and_then(|v| v.parse().ok()).unwrap_or(0);
    let (total, last): (i64, Option<i64>) = sqlx::query_as(&format!(
        "SELECT count(*), max(rowid) FROM {LEGACY} WHERE rowid > ?1"
    ))
    .bind(done_upto)
    .fetch_one(pool)
    .await?;
    let started = Instant::now();
    if total > 0 {
        tracing::info!(
            path = %path.display(), rows = total,
            "copying raw health checks into the compact table (once, after upgrading)"
        );
    }
    let copy = format!(
        "INSERT INTO checks (target_id, checked_at_ms, seq, state, http_status, latency_us, error_id)
         SELECT t.id, l.checked_at_ms, 0, {}, l.http_status, l.latency_us, e.id
         FROM {LEGACY} AS l JOIN targets AS t ON t.name = l.service
         LEFT JOIN check_errors AS e ON e.message = l.error
         WHERE l.rowid > ?1 AND l.rowid <= ?2
         ON CONFLICT DO NOTHING",
        pack_names_sql("l.outcome", "l.breaker_state", "l.source"),
    );
    let mut copied = 0u64;
    let mut from = done_upto;
    let last = last.unwrap_or(done_upto);
    let mut logged = Instant::now();
    while from < last {
        let until = from.saturating_add(CHUNK).min(last);
        copied += copy_chunk(pool, &copy, from, until).await?;
        from = until;
        if logged.elapsed() >= PROGRESS_EVERY {
            logged = Instant::now();
            tracing::info!(
                done = copied,
                total,
                elapsed_s = started.elapsed().as_secs(),
                "copying raw health checks into the compact table"
            );
        }
    }
    let mut conn = pool.acquire().await?;
    let mut tx = conn.begin().await?;
    sqlx::query(&format!("DROP TABLE {LEGACY}"))
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM hale_meta WHERE key = ?1")
        .bind(COPIED_KEY)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    crate::store::txn::confirm_committed(&mut conn).await?;
    if total > 0 {
        tracing::info!(
            done = copied, total,
            elapsed_s = started.elapsed().as_secs_f64(),
            "raw health checks copied into the compact table; the old table was dropped (run VACUUM to give its space back to the file system)"
        );
    }
    Ok(copied)
}

/// Copies the old rows with rowid in `(from, until]` in one transaction. Rows of one target at the same
/// millisecond (the old table allowed them) are found by the count and copied one by one with their `seq`.
async fn copy_chunk(
    pool: &SqlitePool,
    copy: &str,
    from: i64,
    until: i64,
) -> Result<u64, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    let mut tx = conn.begin().await?;
    sqlx::query(&format!(
        "INSERT INTO check_errors (message, last_used_ms)
         SELECT error, max(checked_at_ms) FROM {LEGACY}
         WHERE rowid > ?1 AND rowid <= ?2 AND error IS NOT NULL GROUP BY error
         ON CONFLICT (message) DO UPDATE SET last_used_ms = max(last_used_ms, excluded.last_used_ms)"
    ))
    .bind(from)
    .bind(until)
    .execute(&mut *tx)
    .await?;
    let expected: i64 = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM {LEGACY} WHERE rowid > ?1 AND rowid <= ?2"
    ))
    .bind(from)
    .bind(until)
    .fetch_one(&mut *tx)
    .await?;
    let mut savepoint = (*tx).begin().await?;
    let inserted = sqlx::query(copy)
        .bind(from)
        .bind(until)
        .execute(&mut *savepoint)
        .await?
        .rows_affected();
    if inserted == u64::try_from(expected).unwrap_or(0) {
        savepoint.commit().await?;
    } else {
        savepoint.rollback().await?;
        copy_one_by_one(&mut tx, from, until).await?;
    }
    sqlx::query("INSERT OR REPLACE INTO hale_meta (key, value) VALUES (?1, ?2)")
        .bind(COPIED_KEY)
        .bind(until.to_string())
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    crate::store::txn::confirm_committed(&mut conn).await?;
    Ok(u64::try_from(expected).unwrap_or(0))
}

/// The slow path of `copy_chunk`: each row in rowid order, taking the next free `seq` of its millisecond.
async fn copy_one_by_one(
    conn: &mut sqlx::SqliteConnection,
    from: i64,
    until: i64,
) -> Result<(), sqlx::Error> {
    let rowids: Vec<i64> = sqlx::query_scalar(&format!(
        "SELECT rowid FROM {LEGACY} WHERE rowid > ?1 AND rowid <= ?2 ORDER BY rowid"
    ))
    .bind(from)
    .bind(until)
    .fetch_all(&mut *conn)
    .await?;
    let one = format!(
        "INSERT INTO checks (target_id, checked_at_ms, seq, state, http_status, latency_us, error_id)
         SELECT t.id, l.checked_at_ms,
                (SELECT coalesce(max(seq) + 1, 0) FROM checks WHERE target_id = t.id AND checked_at_ms = l.checked_at_ms),
                {}, l.http_status, l.latency_us, e.id
         FROM {LEGACY} AS l JOIN targets AS t ON t.name = l.service
         LEFT JOIN check_errors AS e ON e.message = l.error
         WHERE l.rowid = ?1",
        pack_names_sql("l.outcome", "l.breaker_state", "l.source"),
    );
    for rowid in rowids {
        sqlx::query(&one).bind(rowid).execute(&mut *conn).await?;
    }
    Ok(())
}
