//! Upgrading a database written before the compact store (schema 8: one `health_checks` row per check with
//! TEXT columns) in place: two million old rows, opened with the current store, come out all there, in the
//! compact table, with the same per-target totals, and the old table is gone.

// A test crate: an unwrap is an assertion.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::str::FromStr;

use hale::store::Store;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use sqlx::SqlitePool;

const SERVICES: i64 = 200;
const ROWS: i64 = 2_000_000;
/// Rows that repeat another row's service and millisecond (the old table allowed it).
const TWINS: i64 = 25;

/// A database at schema 8, as the version before the compact store left it.
async fn old_database(path: &Path) -> SqlitePool {
    let folder = tempfile::tempdir().unwrap();
    for entry in
        std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations")).unwrap()
    {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        let version: i64 = name[..4].parse().unwrap();
        if version <= 8 {
            std::fs::copy(entry.path(), folder.path().join(&name)).unwrap();
        }
    }
    let options = SqliteConnectOptions::from_str("sqlite:")
        .unwrap()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal);
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .unwrap();
    sqlx::migrate::Migrator::new(folder.path())
        .await
        .unwrap()
        .run(&pool)
        .await
        .unwrap();
    pool
}

/// Per service: checks, good checks, the latency sum, errors, on-demand checks, breaker-open checks, and
/// the sum of times; and the whole count.
async fn totals(pool: &SqlitePool) -> (i64, Vec<(String, i64, i64, i64, i64, i64, i64, i64)>) {
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM health_checks")
        .fetch_one(pool)
        .await
        .unwrap();
    let per_service = sqlx::query_as(
        "SELECT service, count(*), sum(outcome = 'up'), sum(latency_us), count(error),
                sum(source = 'on_demand'), sum(breaker_state = 'open'), sum(checked_at_ms % 1000003)
         FROM health_checks GROUP BY service ORDER BY service",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    (count, per_service)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_million_old_checks_are_copied_into_the_compact_table_without_losing_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hale.db");
    let pool = old_database(&path).await;
    // Bulk-loaded without the old indexes, which are then built as migration 1 defines them: faster than
    // keeping them up to date row by row, and the same file in the end.
    sqlx::query("DROP INDEX health_checks_by_service_time; DROP INDEX health_checks_by_time")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query(&format!(
        "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {ROWS} - 1)
         INSERT INTO health_checks (checked_at_ms, service, outcome, http_status, latency_us, error, breaker_state, source)
         SELECT 1790000000000 + (i / {SERVICES}) * 60000 + (i % {SERVICES}) * 17,
                printf('svc-%03d', i % {SERVICES}),
                CASE WHEN i % 97 = 0 THEN 'down' WHEN i % 331 = 0 THEN 'timeout' WHEN i % 1009 = 0 THEN 'circuit_open'
                     ELSE 'up' END,
                CASE WHEN i % 97 = 0 THEN 503 WHEN i % 331 = 0 OR i % 1009 = 0 THEN NULL ELSE 200 END,
                CASE WHEN i % 1009 = 0 THEN NULL ELSE 5000 + (i * 7919) % 90000 END,
                CASE WHEN i % 97 = 0 THEN 'status 503' WHEN i % 331 = 0 THEN 'no answer within 2000 ms'
                     WHEN i % 1009 = 0 THEN 'circuit open' END,
                CASE WHEN i % 1009 = 0 THEN 'open' ELSE 'closed' END,
                CASE WHEN i % 50 = 0 THEN 'on_demand' ELSE 'monitor' END
         FROM n"
    ))
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(
        "CREATE INDEX health_checks_by_service_time ON health_checks (service, checked_at_ms);
         CREATE INDEX health_checks_by_time ON health_checks (checked_at_ms)",
    )
    .execute(&pool)
    .await
    .unwrap();
    // Twins: the same service and millisecond as an existing row, spread over the table.
    sqlx::query(&format!(
        "INSERT INTO health_checks (checked_at_ms, service, outcome, http_status, latency_us, error, breaker_state, source)
         SELECT checked_at_ms, service, 'down', 500, 7, 'twin', 'closed', 'on_demand' FROM health_checks
         WHERE id % ({ROWS} / {TWINS}) = 1 LIMIT {TWINS}"
    ))
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO health_check_hourly VALUES ('svc-000', 1790000000000, 60, 59, 600000, 90000, x''),
                                                ('gone', 1780000000000, 3, 3, 30, 10, x'')",
    )
    .execute(&pool)
    .await
    .unwrap();
    // The previous version had already rebuilt its rollups from scheduled checks once.
    sqlx::query("INSERT INTO hale_meta (key, value) VALUES ('rollups_scheduled_only', 'true')")
        .execute(&pool)
        .await
        .unwrap();
    let before = totals(&pool).await;
    assert_eq!(before.0, ROWS + TWINS);
    pool.close().await;

    let store = Store::open(&path).await.unwrap();
    assert_eq!(store.count_checks(None).await.unwrap(), ROWS + TWINS);
    store.close().await;
    let pool = SqlitePool::connect_with(SqliteConnectOptions::new().filename(&path))
        .await
        .unwrap();
    let after = totals(&pool).await;
    assert_eq!(after.0, before.0, "every old row was copied");
    assert_eq!(
        after.1, before.1,
        "per service, every column adds up the same"
    );
    let legacy: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM sqlite_master WHERE name = 'health_checks_legacy'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(legacy, 0, "the old table is dropped once copied");
    let twins: i64 = sqlx::query_scalar("SELECT count(*) FROM checks WHERE seq = 1")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(
        twins, TWINS,
        "each twin got the next seq of its millisecond"
    );
    let hourly: Vec<(String, i64, i64)> =
        sqlx::query_as("SELECT service, total, good FROM health_check_hourly ORDER BY service")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(
        hourly,
        [("gone".to_owned(), 3, 3), ("svc-000".to_owned(), 60, 59)],
        "hourly rollups kept, a target with rollups only included"
    );
    pool.close().await;
}
