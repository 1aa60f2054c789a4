//! Transactions that end for real. A write that fails inside a transaction (disk full, an I/O error) can leave
//! SQLite inside that transaction while sqlx counts it as ended: its `ROLLBACK TO` a savepoint keeps the
//! transaction open. The next `begin` on that connection is then a savepoint inside a transaction that never
//! commits, and every row "committed" there vanishes when the connection closes. Two checks keep that from
//! happening, both on SQLite's own flag (`sqlite3_get_autocommit`), never on sqlx's count:
//! - every connection handed back to the pool is tested (`release_check`, the pool's `after_release` hook)
//!   and closed when it is still inside a transaction, so no writer can pass one to another;
//! - a commit counts only when its connection is back in autocommit mode afterwards (`confirm_committed`).

use futures_util::future::BoxFuture;
use sqlx::pool::{PoolConnection, PoolConnectionMetadata};
use sqlx::{Sqlite, SqliteConnection};

use crate::store::raw;

/// True when no transaction is open on the connection.
pub(crate) async fn in_autocommit(conn: &mut SqliteConnection) -> Result<bool, sqlx::Error> {
    let mut handle = conn.lock_handle().await?;
    Ok(raw::autocommit(&mut handle))
}

/// The pool's `after_release` hook: a connection still inside a transaction is closed, not reused. (sqlx runs
/// a rollback a dropped transaction left queued before this test, so only a transaction that could not be
/// ended is caught here.)
pub(crate) fn release_check(
    conn: &mut SqliteConnection,
    _meta: PoolConnectionMetadata,
) -> BoxFuture<'_, Result<bool, sqlx::Error>> {
    Box::pin(async move {
        let clean = in_autocommit(conn).await?;
        if !clean {
            tracing::warn!(
                "a database connection came back inside an unfinished transaction (after a failed write); it is closed, not reused"
            );
        }
        Ok(clean)
    })
}

/// Called right after a successful `commit` on `conn`: the commit counts only if the connection left the
/// transaction. If it did not (the commit released a savepoint inside an older, unfinished transaction),
/// nothing reached the file: the connection is closed when dropped and the caller gets an error.
pub(crate) async fn confirm_committed(
    conn: &mut PoolConnection<Sqlite>,
) -> Result<(), sqlx::Error> {
    if in_autocommit(conn).await? {
        return Ok(());
    }
    conn.close_on_drop();
    Err(sqlx::Error::Protocol(
        "the commit did not end the transaction: the connection was inside an earlier unfinished one, so nothing was stored".to_owned(),
    ))
}

#[cfg(test)]
mod tests {
    use sqlx::Connection;

    use super::*;
    use crate::store::Store;

    async fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("hale.db")).await.unwrap();
        (dir, store)
    }

    async fn meta_rows(store: &Store, key: &str) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM hale_meta WHERE key = ?1")
            .bind(key)
            .fetch_one(store.pool())
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_connection_handed_back_inside_a_transaction_is_closed_and_its_rows_never_appear() {
        let (_dir, store) = store().await;
        let mut stuck = store.pool().acquire().await.unwrap();
        // What a failed write can leave behind: SQLite inside a transaction that sqlx does not know about.
        sqlx::query("SAVEPOINT left_open")
            .execute(&mut *stuck)
            .await
            .unwrap();
        sqlx::query("INSERT INTO hale_meta (key, value) VALUES ('stuck', 'x')")
            .execute(&mut *stuck)
            .await
            .unwrap();
        assert!(!in_autocommit(&mut stuck).await.unwrap());
        drop(stuck);

        // Every connection the pool can give out (8) is outside any transaction: the stuck one was closed.
        let mut all = Vec::new();
        for _ in 0..8 {
            let mut conn = store.pool().acquire().await.unwrap();
            assert!(in_autocommit(&mut conn).await.unwrap());
            all.push(conn);
        }
        drop(all);
        assert_eq!(meta_rows(&store, "stuck").await, 0);
        // A later write through the pool lands in the file.
        sqlx::query("INSERT INTO hale_meta (key, value) VALUES ('later', 'y')")
            .execute(store.pool())
            .await
            .unwrap();
        let mut reader = sqlx::SqliteConnection::connect_with(
            &sqlx::sqlite::SqliteConnectOptions::new()
                .filename(&store.path)
                .read_only(true),
        )
        .await
        .unwrap();
        let seen: i64 = sqlx::query_scalar("SELECT count(*) FROM hale_meta WHERE key = 'later'")
            .fetch_one(&mut reader)
            .await
            .unwrap();
        assert_eq!(seen, 1, "another connection sees the later write");
        store.close().await;
    }

    #[tokio::test]
    async fn a_commit_that_leaves_the_connection_inside_a_transaction_is_an_error() {
        let (_dir, store) = store().await;
        let mut conn = store.pool().acquire().await.unwrap();
        let mut outer = conn.begin().await.unwrap();
        // sqlx's view is one level deep here; committing the inner level only releases a savepoint.
        let inner = outer.begin().await.unwrap();
        inner.commit().await.unwrap();
        assert!(!in_autocommit(&mut outer).await.unwrap());
        outer.commit().await.unwrap();
        confirm_committed(&mut conn).await.unwrap();

        sqlx::query("SAVEPOINT left_open")
            .execute(&mut *conn)
            .await
            .unwrap();
        let err = confirm_committed(&mut conn).await.unwrap_err();
        assert!(
            err.to_string().contains("did not end the transaction"),
            "{err}"
        );
        drop(conn);
        store.close().await;
    }
}
