//! Transactions that end for real. A write that fails inside a transaction (disk full, an I/O error) can leave
//! SQLite inside that transaction while sqlx counts it as ended: its `ROLLBACK TO` a savepoint keeps the
//! transaction open. The next `begin` on that connection is then a savepoint inside a transaction that never
//! commits, and every row "committed" there vanishes when the connection closes. Two checks keep that from
//! happening, both on SQLite's own flag (`sqlite3_get_autocommit`), never on sqlx's count:
//! - every connection handed back to the pool is tested (`release_check`, the pool's `after_release` hook)
//!   and closed when it is still inside a transaction, so no writer can pass one to another;
//! - a commit counts only when its connection is back in autocommit mode afterwards (`confirm_committed`).
//!
//! The same hook empties a clean connection's page cache as it goes back to the pool (`release_check`).

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
///
/// A clean connection also gives its page cache back before it waits in the pool. Only readers come back
/// (the batching writer keeps its connection for its life), and a reader's cache would not outlive its next
/// read anyway: in WAL mode SQLite drops it when another connection committed since, which the writer does
/// every `storage.flush_interval_ms`. Kept, it is memory held for nothing between reads. The SQLite hale
/// bundles (built with `SQLITE_ENABLE_MEMORY_MANAGEMENT`) keeps one page cache for all the connections of
/// the process, with one least-recently-used list, so this frees every page no statement is using at that
/// moment, the writer's too: the writer reads them again from the file (the OS's cache). At 10,000 targets
/// that cost 12 % more read calls and no measurable CPU, and held 28 MB less.
pub(crate) fn release_check(
    conn: &mut SqliteConnection,
    _meta: PoolConnectionMetadata,
) -> BoxFuture<'_, Result<bool, sqlx::Error>> {
    Box::pin(async move {
        let mut handle = conn.lock_handle().await?;
        let clean = raw::autocommit(&mut handle);
        if clean {
            raw::release_page_cache(&mut handle);
        } else {
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

    async fn cache_bytes(conn: &mut SqliteConnection) -> i64 {
        let mut handle = conn.lock_handle().await.unwrap();
        raw::page_cache_bytes(&mut handle)
    }

    #[tokio::test]
    async fn a_connection_handed_back_to_the_pool_keeps_no_page_cache() {
        let (_dir, store) = store().await;
        // About 4 MB of pages: more than one connection's share of the default budget (4 MiB).
        sqlx::query("CREATE TABLE filler (id INTEGER PRIMARY KEY, body BLOB)")
            .execute(store.pool())
            .await
            .unwrap();
        sqlx::query(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 4000) \
             INSERT INTO filler (id, body) SELECT i, randomblob(1000) FROM n",
        )
        .execute(store.pool())
        .await
        .unwrap();
        // Every connection of the pool (8) reads the whole table, and with it pages into its cache...
        // (How much each holds is not asserted: SQLite's page caches are one group per process in this
        // build, so another test's connection going back to its pool may empty them at any moment.)
        let mut all = Vec::new();
        for _ in 0..8 {
            let mut conn = store.pool().acquire().await.unwrap();
            let total: i64 = sqlx::query_scalar("SELECT sum(length(body)) FROM filler")
                .fetch_one(&mut *conn)
                .await
                .unwrap();
            assert_eq!(total, 4_000_000);
            all.push(conn);
        }
        drop(all);
        // ...and none of them keeps it once back in the pool.
        let mut again = Vec::new();
        for _ in 0..8 {
            let mut conn = store.pool().acquire().await.unwrap();
            let held = cache_bytes(&mut conn).await;
            assert!(
                held < 200_000,
                "a connection back from the pool holds {held} bytes of cache"
            );
            again.push(conn);
        }
        drop(again);
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
