//! The only module that speaks SQL: the SQLite pool, the embedded migrations, one file per record kind and
//! the batching writer for high-rate records.

pub mod alerts;
pub mod audit;
pub mod backup;
pub mod breakers;
pub mod children;
mod codes;
mod compact;
pub mod deliveries;
pub mod heal;
pub mod health_checks;
pub mod ledger;
pub mod lock;
pub mod maintenance;
mod raw;
pub mod reports;
pub mod retention;
pub mod rollups;
pub mod runs;
pub mod settle;
pub mod slo;
pub mod status;
pub mod tool_calls;
mod txn;
pub mod workflows;
pub mod writer;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection, SqlitePool};
use tokio_util::sync::CancellationToken;

use crate::store::lock::{DbLock, LockError};
use crate::store::status::{FileIdentity, StoreCondition, StoreStatus};

/// The schema, embedded at compile time from `migrations/`.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// How long a statement waits for another connection's write lock before it fails as "locked".
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Connections in the read-write pool: the batching writer keeps one for itself, the others serve reads
/// and the occasional other write.
pub const POOL_CONNECTIONS: u32 = 8;

/// Prepared statements each pooled connection keeps (least recently used dropped first).
pub const STATEMENT_CACHE: usize = 24;

/// How the read-write store is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreSettings {
    /// SQLite's page cache for the whole pool, in MiB (`storage.cache_mb`). Each connection gets an even
    /// share, never less than 1 MiB. A connection fills its share only as it reads pages; in WAL mode its
    /// cache is dropped whenever another connection committed since its last read, so only the writer's
    /// connection keeps a warm cache from one batch to the next.
    pub cache_mb: u32,
}

impl Default for StoreSettings {
    fn default() -> Self {
        Self { cache_mb: 32 }
    }
}

impl StoreSettings {
    /// The page cache of one pooled connection, in KiB (what `PRAGMA cache_size` takes, negated).
    pub fn cache_kib_per_connection(&self) -> u64 {
        (u64::from(self.cache_mb) * 1024 / u64::from(POOL_CONNECTIONS)).max(1024)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create the folder {path} for the database: {source}")]
    CreateDir {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open database {path}: {reason}")]
    Open { path: String, reason: String },
    #[error("database {path} is not a SQLite database or is corrupt ({reason}); it was left untouched: restore a backup or move it aside")]
    Corrupt { path: String, reason: String },
    #[error("database {path} is not a hale database: it has {tables} table(s) and no hale schema (_sqlx_migrations); it was left untouched: give hale another --db")]
    NotHale { path: String, tables: i64 },
    #[error("database {path} is locked by another process ({reason})")]
    Locked { path: String, reason: String },
    #[error("database {path} is in use by another hale ({holder}); two hale processes cannot share one database: stop the other one or give this one another --db")]
    InUse { path: String, holder: String },
    #[error("database {path} is read-only ({reason})")]
    ReadOnly { path: String, reason: String },
    #[error("cannot apply the schema migrations to {path}: {reason}")]
    Migrate { path: String, reason: String },
    #[error("no database at {path}")]
    NotFound { path: String },
    #[error("database query failed: {0}")]
    Query(#[from] sqlx::Error),
    #[error("database query failed: {reason} (SQLite code {code})")]
    Raw { code: i32, reason: String },
}

impl StoreError {
    /// Sorts an error met while opening a database file into the cases an operator can act on.
    fn classify(path: &Path, err: sqlx::Error) -> Self {
        let path = path.display().to_string();
        let reason = err.to_string();
        match primary_code(&err) {
            Some(11 | 26) => Self::Corrupt { path, reason },
            Some(5 | 6) => Self::Locked { path, reason },
            Some(8) => Self::ReadOnly { path, reason },
            // SQLite cannot open (or create the -wal and -shm files beside) a file it may not write.
            Some(14) if read_only_file_or_folder(Path::new(&path)) => {
                Self::ReadOnly { path, reason }
            }
            _ => Self::Open { path, reason },
        }
    }

    /// A lock file that cannot be taken: held by another hale, or not creatable beside the database.
    fn from_lock(path: &Path, err: LockError) -> Self {
        let path = path.display().to_string();
        match err {
            LockError::Held { pid, .. } => Self::InUse {
                path,
                holder: lock::holder(pid),
            },
            LockError::Io { ref source, .. }
                if matches!(
                    source.raw_os_error(),
                    Some(libc::EACCES | libc::EPERM | libc::EROFS)
                ) =>
            {
                Self::ReadOnly {
                    path,
                    reason: err.to_string(),
                }
            }
            LockError::Io { .. } => Self::Open {
                path,
                reason: err.to_string(),
            },
        }
    }
}

/// A handle on the database; cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    pool: SqlitePool,
    path: PathBuf,
    /// The file as opened, to notice when it is deleted or replaced under hale.
    identity: FileIdentity,
    status: Arc<StoreStatus>,
    /// Opened by `open_read_only`: nothing is written, not even a checkpoint on close.
    read_only: bool,
    /// The lock file held while this store is open (`lock.rs`); released by `close`.
    lock: Arc<Mutex<Option<DbLock>>>,
    /// One backup at a time (`backup.rs`).
    backups: Arc<tokio::sync::Mutex<()>>,
    /// One workflow change at a time (`workflows.rs`): its transactions wait their turn here, in order,
    /// instead of in SQLite's busy handler, which polls with sleeps of up to 100 ms.
    workflow_writes: Arc<tokio::sync::Mutex<()>>,
}

/// Which schema migrations a database has, compared with the ones this binary knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaState {
    /// The newest migration applied to the file (0: none).
    pub applied: i64,
    /// The newest migration this binary knows.
    pub known: i64,
    /// A migration that started but did not finish.
    pub failed: Option<i64>,
}

impl SchemaState {
    pub fn is_current(&self) -> bool {
        self.applied == self.known && self.failed.is_none()
    }
}

/// The database file and its write-ahead log on disk, in bytes (none when absent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DatabaseFiles {
    pub db_bytes: Option<u64>,
    pub wal_bytes: Option<u64>,
    pub shm_bytes: Option<u64>,
}

impl DatabaseFiles {
    /// `stat`s the file and its `-wal` and `-shm` companions; opens nothing.
    pub fn of(path: &Path) -> Self {
        let size = |suffix: &str| {
            let mut name = path.as_os_str().to_owned();
            name.push(suffix);
            std::fs::metadata(PathBuf::from(name)).ok().map(|m| m.len())
        };
        Self {
            db_bytes: size(""),
            wal_bytes: size("-wal"),
            shm_bytes: size("-shm"),
        }
    }

    /// The database and its write-ahead log together: what the data takes on disk.
    pub fn total_bytes(&self) -> Option<u64> {
        self.db_bytes.map(|db| db + self.wal_bytes.unwrap_or(0))
    }
}

impl Store {
    /// Takes the database's lock file, opens (creating if needed) the database file, checks it is sound and
    /// applies pending migrations, with the default page-cache budget.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_with(path, StoreSettings::default()).await
    }

    /// `open`, with the page-cache budget (`storage.cache_mb`) shared out over the pool's connections.
    pub async fn open_with(path: &Path, settings: StoreSettings) -> Result<Self, StoreError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|source| StoreError::CreateDir {
                path: parent.display().to_string(),
                source,
            })?;
        }
        // Before SQLite touches anything: a second hale (or a restore in progress) is refused here.
        let mut lock = DbLock::acquire(path).map_err(|e| StoreError::from_lock(path, e))?;
        // The file is created here, once: the pool's connections never create it, so a connection opened
        // after the file was deleted under hale fails instead of starting an empty database at the path.
        if !path.exists() {
            let create = SqliteConnectOptions::from_str("sqlite:")
                .map_err(|e| StoreError::classify(path, e))?
                .filename(path)
                .create_if_missing(true);
            let conn = sqlx::SqliteConnection::connect_with(&create)
                .await
                .map_err(|e| StoreError::classify(path, e))?;
            let _ = conn.close().await;
        }
        // The file itself (its device and inode): a hard link under another name is refused here.
        lock.hold_file(path)
            .map_err(|e| StoreError::from_lock(path, e))?;
        // Another application's database is left as it was: not migrated, not switched to WAL.
        refuse_foreign_database(path).await?;
        let options = SqliteConnectOptions::from_str("sqlite:")
            .map_err(|e| StoreError::classify(path, e))?
            .filename(path)
            .create_if_missing(false)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT)
            // The budget shared out: the pool never holds more page cache than `storage.cache_mb` in all.
            .pragma(
                "cache_size",
                format!("-{}", settings.cache_kib_per_connection()),
            )
            // sqlx keeps 100 prepared statements per connection by default; hale's views make them about
            // 21 KB each, and every connection ends up holding most queries hale ever ran (13.5 MB over the
            // pool at 10,000 targets). The hot ones (the writer's, the refresher's) stay in the LRU.
            .statement_cache_capacity(STATEMENT_CACHE);
        let pool = SqlitePoolOptions::new()
            .max_connections(POOL_CONNECTIONS)
            .min_connections(1)
            .acquire_timeout(BUSY_TIMEOUT + Duration::from_secs(1))
            // No connection goes back to the pool inside a transaction a failed write left open (`txn.rs`).
            .after_release(txn::release_check)
            .connect_with(options)
            .await
            .map_err(|e| StoreError::classify(path, e))?;

        // A damaged file can open fine and fail later; find out now, before anything is written.
        let verdict: String = sqlx::query_scalar("PRAGMA quick_check(1)")
            .fetch_one(&pool)
            .await
            .map_err(|e| StoreError::classify(path, e))?;
        if verdict != "ok" {
            pool.close().await;
            return Err(StoreError::Corrupt {
                path: path.display().to_string(),
                reason: verdict,
            });
        }

        // Reading works on a read-only or write-locked file; only a real write tells. Within the busy timeout.
        if let Err(e) = write_probe(&pool).await {
            pool.close().await;
            return Err(StoreError::classify(path, e));
        }

        settle::announce_rollup_rewrite(&pool, path).await;
        MIGRATOR.run(&pool).await.map_err(|e| {
            let reason = match &e {
                sqlx::migrate::MigrateError::VersionMissing(v) => format!(
                    "it was written by a newer hale (migration {v} is unknown to this version)"
                ),
                other => other.to_string(),
            };
            StoreError::Migrate {
                path: path.display().to_string(),
                reason,
            }
        })?;
        // Once per database older than migration 9: its raw checks are copied into the compact table.
        if let Err(e) = compact::copy_legacy_checks(&pool, path).await {
            pool.close().await;
            return Err(StoreError::Migrate {
                path: path.display().to_string(),
                reason: format!("cannot copy the raw checks into the compact table: {e}"),
            });
        }
        // Once per database: rollups written by versions that also counted on-demand checks are rebuilt.
        match rollups::rebuild_scheduled_only(&pool).await {
            Ok(0) => {}
            Ok(rows) => tracing::info!(
                path = %path.display(), hours = rows,
                "hourly rollups rebuilt from raw scheduled checks (on-demand checks no longer count)"
            ),
            Err(e) => {
                pool.close().await;
                return Err(StoreError::Migrate {
                    path: path.display().to_string(),
                    reason: format!("cannot rebuild the hourly rollups from raw checks: {e}"),
                });
            }
        }
        // Checks an earlier run staged and never settled (it was killed, or the disk failed) join the rest now,
        // before anything reads `checks`. Failing that, the writer settles them once the disk takes writes.
        match settle::settle_leftovers(&pool).await {
            Ok(settled) if settled.checks > 0 => tracing::info!(
                path = %path.display(), checks = settled.checks,
                "settled the health checks the last run left unsettled"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!(
                path = %path.display(), error = %e,
                "cannot settle the health checks the last run left unsettled; the writer will retry"
            ),
        }
        Self::assemble(pool, path, false, Some(lock))
    }

    /// Opens an existing database for reading only, beside a running hale or without one (`hale status`,
    /// `hale verify`, `hale audit`): no folder or file is created, nothing is migrated or written. The schema may be older
    /// or newer than this binary's (see `schema`), and the file is not checked (see `quick_check`).
    pub async fn open_read_only(path: &Path) -> Result<Self, StoreError> {
        if !path.exists() {
            return Err(StoreError::NotFound {
                path: path.display().to_string(),
            });
        }
        let options = SqliteConnectOptions::from_str("sqlite:")
            .map_err(|e| StoreError::classify(path, e))?
            .filename(path)
            .read_only(true)
            .create_if_missing(false)
            .busy_timeout(BUSY_TIMEOUT);
        let pool = SqlitePoolOptions::new()
            .max_connections(2)
            .acquire_timeout(BUSY_TIMEOUT + Duration::from_secs(1))
            .connect_with(options)
            .await
            .map_err(|e| StoreError::classify(path, e))?;
        Self::assemble(pool, path, true, None)
    }

    /// `PRAGMA quick_check`: the file is a sound SQLite database. It reads every page, so it takes about a
    /// second per few hundred MB.
    pub async fn quick_check(&self) -> Result<(), StoreError> {
        let verdict: String = sqlx::query_scalar("PRAGMA quick_check(1)")
            .fetch_one(self.pool())
            .await
            .map_err(|e| StoreError::classify(&self.path, e))?;
        if verdict == "ok" {
            Ok(())
        } else {
            Err(StoreError::Corrupt {
                path: self.path.display().to_string(),
                reason: verdict,
            })
        }
    }

    /// The migrations applied to the file against the ones this binary knows.
    pub async fn schema(&self) -> Result<SchemaState, StoreError> {
        let known = MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0);
        let has_table: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
        )
        .fetch_one(self.pool())
        .await?;
        if has_table == 0 {
            return Ok(SchemaState {
                applied: 0,
                known,
                failed: None,
            });
        }
        let (applied, failed): (Option<i64>, Option<i64>) = sqlx::query_as(
            "SELECT max(CASE WHEN success THEN version END), min(CASE WHEN NOT success THEN version END)
             FROM _sqlx_migrations",
        )
        .fetch_one(self.pool())
        .await?;
        Ok(SchemaState {
            applied: applied.unwrap_or(0),
            known,
            failed,
        })
    }

    /// The handle on an opened pool: the file's identity as opened, and the lock held (none read-only).
    fn assemble(
        pool: SqlitePool,
        path: &Path,
        read_only: bool,
        lock: Option<DbLock>,
    ) -> Result<Self, StoreError> {
        let identity = FileIdentity::of(path).map_err(|e| StoreError::Open {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Ok(Self {
            pool,
            path: path.to_owned(),
            identity,
            status: Arc::default(),
            read_only,
            lock: Arc::new(Mutex::new(lock)),
            backups: Arc::default(),
            workflow_writes: Arc::default(),
        })
    }

    /// What `/health` reports about the database: from memory, no SQL.
    pub fn condition(&self) -> StoreCondition {
        self.status.condition(self.pool.is_closed())
    }

    pub(crate) fn status(&self) -> &Arc<StoreStatus> {
        &self.status
    }

    /// Watches that the database file is still the one opened, and writable, until `cancel`.
    pub(crate) async fn watch_file(self, cancel: CancellationToken) {
        status::watch_file(
            self.path.clone(),
            self.identity,
            self.status.clone(),
            cancel,
        )
        .await
    }

    /// The database file's path, as given.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The turn every workflow change takes before its transaction (`workflows.rs`).
    pub(crate) fn workflow_writes(&self) -> &tokio::sync::Mutex<()> {
        &self.workflow_writes
    }

    pub(crate) fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Copies the write-ahead log into the database file and empties it, closes every connection and releases
    /// the lock file: once this returns the database file alone holds every committed row. (The pool may finish closing a
    /// connection in the background after `close` returns; the checkpoint must not wait for that.)
    pub async fn close(&self) {
        if !self.pool.is_closed() && !self.read_only {
            let checkpoint: Result<(i64, i64, i64), sqlx::Error> =
                sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)")
                    .fetch_one(&self.pool)
                    .await;
            match checkpoint {
                Ok((0, _, _)) => {}
                Ok((_, log, done)) => tracing::warn!(
                    path = %self.path.display(), log_frames = log, checkpointed = done,
                    "the write-ahead log could not be fully checkpointed on close; it is replayed on next open"
                ),
                Err(e) => tracing::warn!(
                    path = %self.path.display(), error = %e,
                    "cannot checkpoint the write-ahead log on close; it is replayed on next open"
                ),
            }
        }
        self.pool.close().await;
        // Plain value: a poisoned lock still holds it whole.
        drop(
            self.lock
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .take(),
        );
    }
}

fn read_only_file_or_folder(path: &Path) -> bool {
    let folder = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    (path.exists() && !status::writable(path)) || !status::writable(folder)
}

/// Refuses a database that has tables but not hale's migration table: another application's file, which
/// migrating would change (14 tables added, the journal switched to WAL). An empty file (or one that has only
/// hale's schema) passes. Opened without any journal setting, so the check itself changes nothing.
async fn refuse_foreign_database(path: &Path) -> Result<(), StoreError> {
    let options = SqliteConnectOptions::from_str("sqlite:")
        .map_err(|e| StoreError::classify(path, e))?
        .filename(path)
        .create_if_missing(false)
        .busy_timeout(BUSY_TIMEOUT);
    let mut conn = sqlx::SqliteConnection::connect_with(&options)
        .await
        .map_err(|e| StoreError::classify(path, e))?;
    let tables: Result<(i64, i64), sqlx::Error> = sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE name = '_sqlx_migrations')
         FROM sqlite_master WHERE type = 'table'",
    )
    .fetch_one(&mut conn)
    .await;
    let _ = conn.close().await;
    match tables.map_err(|e| StoreError::classify(path, e))? {
        (tables, 0) if tables > 0 => Err(StoreError::NotHale {
            path: path.display().to_string(),
            tables,
        }),
        _ => Ok(()),
    }
}

/// Takes the write lock and writes into a transaction that is rolled back: fails as read-only or locked
/// (after the busy timeout) exactly when a real write would, and leaves nothing behind.
async fn write_probe(pool: &SqlitePool) -> Result<(), sqlx::Error> {
    let mut conn = pool.acquire().await?;
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
    sqlx::query("CREATE TABLE hale_write_probe (x INTEGER)")
        .execute(&mut *tx)
        .await?;
    tx.rollback().await
}

/// SQLite's primary result code of a failed statement (`SQLITE_FULL` is 13, `SQLITE_BUSY` 5, ...), without
/// its extended bits.
pub(crate) fn primary_code(err: &sqlx::Error) -> Option<i32> {
    err.as_database_error()
        .and_then(|e| e.code())
        .and_then(|c| c.parse::<i32>().ok())
        .map(|c| c & 0xff)
}

/// A value stored as text, read back. An unknown one (written by a newer hale, or edited by hand) is an error
/// for the operator, logged with where it was found; the caller skips the row rather than guess.
/// A role's name as stored (`audit_log.role`, `tool_calls.role`), as the `&'static str` the records hold.
pub(crate) fn role_name(raw: &str) -> Option<&'static str> {
    ["read", "operate", "admin"].into_iter().find(|r| *r == raw)
}

pub(crate) fn known<T>(table: &str, column: &str, raw: &str, parsed: Option<T>) -> Option<T> {
    if parsed.is_none() {
        tracing::error!(
            table,
            column,
            value = raw,
            "unknown value read back from the database; the row is skipped"
        );
    }
    parsed
}

/// Milliseconds since the Unix epoch, the time format of every table.
pub(crate) fn to_ms(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

pub(crate) fn from_ms(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms)
        .single()
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_cache_budget_is_shared_out_evenly_and_never_below_1_mib_a_connection() {
        let per = |cache_mb| StoreSettings { cache_mb }.cache_kib_per_connection();
        assert_eq!(per(32), 4 * 1024);
        assert_eq!(per(8), 1024);
        assert_eq!(per(1), 1024);
        assert_eq!(per(4096), 512 * 1024);
        assert_eq!(StoreSettings::default().cache_mb, 32);
    }

    #[tokio::test]
    async fn every_pooled_connection_gets_its_share_and_the_pool_stops_at_its_bound() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_with(&dir.path().join("hale.db"), StoreSettings { cache_mb: 16 })
            .await
            .unwrap();
        let mut held = Vec::new();
        for _ in 0..POOL_CONNECTIONS {
            held.push(store.pool().acquire().await.unwrap());
        }
        for conn in &mut held {
            let size: i64 = sqlx::query_scalar("PRAGMA cache_size")
                .fetch_one(&mut **conn)
                .await
                .unwrap();
            assert_eq!(size, -2048, "16 MiB over 8 connections, in KiB");
        }
        assert!(
            store.pool().try_acquire().is_none(),
            "no connection beyond the {POOL_CONNECTIONS} the budget is shared over"
        );
        drop(held);
        store.close().await;
    }

    #[tokio::test]
    async fn a_pooled_connection_keeps_at_most_its_share_of_prepared_statements() {
        use sqlx::Connection;
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("hale.db")).await.unwrap();
        let mut conn = store.pool().acquire().await.unwrap();
        for i in 0..STATEMENT_CACHE + 10 {
            let n: i64 = sqlx::query_scalar(&format!("SELECT {i} + ?1"))
                .bind(1_i64)
                .fetch_one(&mut *conn)
                .await
                .unwrap();
            assert_eq!(n, i as i64 + 1);
        }
        assert_eq!(conn.cached_statements_size(), STATEMENT_CACHE);
        drop(conn);
        store.close().await;
    }
}
