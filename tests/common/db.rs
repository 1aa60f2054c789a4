//! Reading a database file the way an operator would: row counts and column values through a read-only
//! connection of the test's own (sqlx directly, not hale's store), while hale runs or after it stopped.

use std::path::Path;

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Connection, SqliteConnection};

/// A read-only connection to the database file: a test reads what hale wrote and never writes itself.
pub async fn open_read_only(db_path: &Path) -> SqliteConnection {
    let options = SqliteConnectOptions::new()
        .filename(db_path)
        .read_only(true);
    SqliteConnection::connect_with(&options)
        .await
        .unwrap_or_else(|e| panic!("open {}: {e}", db_path.display()))
}

/// `SELECT count(*) FROM health_checks WHERE <condition>` on a database file.
pub async fn count_check_rows(db_path: &Path, condition: &str) -> i64 {
    count_rows(db_path, "health_checks", condition).await
}

/// `SELECT count(*) FROM table WHERE condition` on the database file.
pub async fn count_rows(db_path: &Path, table: &str, condition: &str) -> i64 {
    let mut conn = open_read_only(db_path).await;
    let count: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {table} WHERE {condition}"))
        .fetch_one(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("count rows of {table} where {condition}: {e}"));
    let _ = conn.close().await;
    count
}

/// `SELECT <column> FROM table WHERE condition` on the database file, each value as text (null as empty), in
/// the order rows were written: by id, or for health checks (which have none) by time.
pub async fn select_texts(
    db_path: &Path,
    table: &str,
    column: &str,
    condition: &str,
) -> Vec<String> {
    let order = if table == "health_checks" {
        "checked_at_ms, target_id, seq"
    } else {
        "id"
    };
    let mut conn = open_read_only(db_path).await;
    let values: Vec<Option<String>> = sqlx::query_scalar(&format!(
        "SELECT CAST({column} AS TEXT) FROM {table} WHERE {condition} ORDER BY {order}"
    ))
    .fetch_all(&mut conn)
    .await
    .unwrap_or_else(|e| panic!("select {column} of {table} where {condition}: {e}"));
    let _ = conn.close().await;
    values.into_iter().map(Option::unwrap_or_default).collect()
}
