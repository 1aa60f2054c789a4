//! Backups and restores of the database file. A backup is a consistent copy of the database made by SQLite
//! itself (`VACUUM INTO`: one read transaction, which never blocks hale's writer in WAL mode), checked on
//! the copy (`PRAGMA integrity_check` and hale's schema), gzip-compressed and put in place atomically (a
//! temp file beside it, fsync, rename). A restore checks a backup the same way before anything is touched,
//! then moves the current database aside and puts the backup in its place, holding the database's lock
//! file throughout so that no hale runs on it meanwhile.

// Unsafe code here: libc calls: statvfs for the free space, kill(pid, 0) to see whether a lock holder lives; each block says why it is sound.
#![allow(unsafe_code)]

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDateTime, Utc};
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode};
use sqlx::{Connection, SqliteConnection};

use crate::store::lock::{self, DbLock, LockError};
use crate::store::{from_ms, Store, BUSY_TIMEOUT, MIGRATOR};

/// The folder of backups, beside the database, when no other is configured.
pub const DEFAULT_BACKUP_FOLDER: &str = "backups";
/// Every backup file name ends so: `hale-20261125T120937Z.db.gz`.
pub const BACKUP_SUFFIX: &str = ".db.gz";
/// gzip level: a database of health checks shrinks 3.1x at level 1 and 3.8x at level 6, but level 6 takes ten
/// times as long (docs/benchmarks.md).
const GZIP_LEVEL: u32 = 1;
const CHUNK: usize = 1 << 20;
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";
/// The tables of hale's first migration: every hale database has them, whatever its version.
const CORE_TABLES: [&str; 7] = [
    "alert_deliveries",
    "alerts",
    "breaker_transitions",
    "breakers",
    "heal_events",
    "health_check_hourly",
    "health_checks",
];
const TIME_FORMAT: &str = "%Y%m%dT%H%M%SZ";
/// A gzip backup may unpack to this many times its own size. hale's backups shrink 3 to 5 times (gzip level 1;
/// docs/operations.md has the figures), so 20 leaves room; a gzip bomb shrinks a thousand times.
pub const MAX_UNPACK_RATIO: u64 = 20;
/// ... but a backup may always unpack to this much: a nearly empty database is mostly zeros and shrinks far
/// more than a full one.
pub const MIN_UNPACK_CAP: u64 = 64 * 1024 * 1024;
/// Space left free on the database's file system when a restore unpacks there.
pub const FREE_SPACE_MARGIN: u64 = 64 * 1024 * 1024;

/// What a long backup or restore reports as it goes; the command line draws it as a progress bar.
pub trait Progress: Send + Sync {
    /// A step starts (`copying`, `verifying`, `compressing`, `unpacking`); `total` bytes when known.
    fn step(&self, name: &'static str, total: Option<u64>);
    /// Bytes of the current step done so far.
    fn done(&self, bytes: u64);
    /// The current step is over.
    fn finish(&self);
}

/// Reports nothing: for the API and for small files.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn step(&self, _: &'static str, _: Option<u64>) {}
    fn done(&self, _: u64) {}
    fn finish(&self) {}
}

/// Where a backup goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// Exactly this file, replaced if it exists; nothing is pruned.
    File(PathBuf),
    /// A new `<database name>-<UTC time>.db.gz` in `dir` (None: a `backups` folder beside the database),
    /// then the oldest backups of that database beyond the newest `keep` are deleted.
    Folder { dir: Option<PathBuf>, keep: u32 },
}

/// Rows in one table of a verified copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableRows {
    pub table: String,
    pub rows: i64,
}

/// What the checks of a copy found: it passed `PRAGMA integrity_check` and is a hale database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The newest schema migration applied.
    pub schema_version: i64,
    /// Every table but SQLite's and sqlx's own, by name.
    pub tables: Vec<TableRows>,
    /// The highest health check id, in a database older than migration 9; `None` since, when checks have no
    /// global id (`newest_check_at` says up to when the copy goes).
    pub max_check_id: Option<i64>,
    pub newest_check_at: Option<DateTime<Utc>>,
}

impl Verified {
    pub fn rows(&self, table: &str) -> Option<i64> {
        self.tables
            .iter()
            .find(|t| t.table == table)
            .map(|t| t.rows)
    }
}

/// A backup made.
#[derive(Debug, Clone)]
pub struct BackupReport {
    pub path: PathBuf,
    /// The size of the compressed file.
    pub bytes: u64,
    /// The size of the database copied (its pages in use).
    pub database_bytes: u64,
    pub duration: Duration,
    pub verified: Verified,
    /// Older backups deleted to keep the folder to `keep`.
    pub pruned: Vec<PathBuf>,
}

/// A restore done.
#[derive(Debug, Clone)]
pub struct RestoreReport {
    pub db: PathBuf,
    pub backup: PathBuf,
    /// The size of the restored database file.
    pub bytes: u64,
    pub duration: Duration,
    pub verified: Verified,
    /// Where the files of the database it replaced went (the database first, then its -wal and -shm).
    pub moved_aside: Vec<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("there is no database at {0}")]
    NoDatabase(PathBuf),
    #[error("cannot read database {path}: {reason}")]
    Source { path: PathBuf, reason: String },
    #[error("cannot read {path}: {source}")]
    Unreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a hale backup: {reason}")]
    NotABackup { path: PathBuf, reason: String },
    #[error("{path} fails PRAGMA integrity_check: {problems}")]
    Corrupt { path: PathBuf, problems: String },
    #[error("{path} is not a hale database: {reason}")]
    NotHale { path: PathBuf, reason: String },
    #[error("{path} was written by a newer hale (migration {version} is unknown to this version); restore it with that version")]
    Newer { path: PathBuf, version: i64 },
    #[error("{path} unpacks to more than {cap} bytes ({}), the cap: {why}; nothing was restored", human_bytes(*cap))]
    TooLarge {
        path: PathBuf,
        cap: u64,
        why: String,
    },
    #[error(
        "database {db} is in use by another hale ({holder}); stop it first or choose another --db"
    )]
    Held { db: PathBuf, holder: String },
    #[error("hale ({holder}) is running on {db}; stop it before restoring")]
    InUse { db: PathBuf, holder: String },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

impl BackupError {
    /// True when the operator has to fix the input (a path, a file, a running hale); false when the
    /// machine failed (a write, a rename).
    pub fn is_bad_input(&self) -> bool {
        !matches!(self, Self::Io { .. })
    }
}

/// `12.3 MiB`, `4.5 GiB`: for messages that also give the exact bytes.
pub fn human_bytes(bytes: u64) -> String {
    let mib = bytes as f64 / (1024.0 * 1024.0);
    if mib < 1024.0 {
        format!("{mib:.1} MiB")
    } else if mib < 1024.0 * 1024.0 {
        format!("{:.1} GiB", mib / 1024.0)
    } else {
        format!("{:.1} TiB", mib / (1024.0 * 1024.0))
    }
}

/// The bytes an unprivileged process may still write on the file system of `dir`; None when unknown.
pub fn free_space(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs only writes into the zeroed struct we own, and reads the NUL-terminated path.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is a valid NUL-terminated string and `stat` a live, writable statvfs owned here.
    let rc = unsafe { libc::statvfs(path.as_ptr(), &mut stat) };
    // The field types differ by platform (u64 on Linux, u32 or c_ulong elsewhere).
    #[allow(clippy::useless_conversion)]
    let (blocks, size) = (u64::from(stat.f_bavail), u64::from(stat.f_frsize));
    (rc == 0).then(|| blocks.saturating_mul(size))
}

/// The most a gzip backup of `compressed` bytes may unpack to, and why: `max` when the operator gave one,
/// else `MAX_UNPACK_RATIO` times its size (at least `MIN_UNPACK_CAP`); never more than the free space
/// (`free`) less `FREE_SPACE_MARGIN`.
pub fn unpack_cap(compressed: u64, max: Option<u64>, free: Option<u64>) -> (u64, String) {
    let (cap, why) = match max {
        Some(max) => (max, "set by --max-size".to_owned()),
        None => {
            let by_ratio = compressed.saturating_mul(MAX_UNPACK_RATIO);
            let why = if by_ratio >= MIN_UNPACK_CAP {
                format!("{MAX_UNPACK_RATIO} times the backup's {compressed} bytes")
            } else {
                format!(
                    "the floor of {}, more than {MAX_UNPACK_RATIO} times the backup's {compressed} bytes",
                    human_bytes(MIN_UNPACK_CAP)
                )
            };
            (
                by_ratio.max(MIN_UNPACK_CAP),
                format!("{why}; pass --max-size to allow more"),
            )
        }
    };
    match free.map(|f| f.saturating_sub(FREE_SPACE_MARGIN)) {
        Some(room) if room < cap => (
            room,
            format!(
                "the free space on the database's file system less {}",
                human_bytes(FREE_SPACE_MARGIN)
            ),
        ),
        _ => (cap, why),
    }
}

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> BackupError {
    let what = what.into();
    move |source| BackupError::Io { what, source }
}

impl Store {
    /// Backs up the live database through the pool, one backup at a time; writes go on meanwhile. The pool's
    /// connection is given back as soon as the copy is made.
    pub async fn backup(
        &self,
        to: &Destination,
        progress: Arc<dyn Progress>,
    ) -> Result<BackupReport, BackupError> {
        let _one_at_a_time = self.backups.lock().await;
        let started = Instant::now();
        let plan = Plan::new(&self.path, to)?;
        let database_bytes = {
            let mut conn = self
                .pool
                .acquire()
                .await
                .map_err(|e| source_error(&self.path, e))?;
            copy_into(&mut conn, &self.path, &plan, progress.as_ref()).await?
        };
        plan.finish(&self.path, database_bytes, started, progress)
            .await
    }
}

/// Backs up the database file at `db`, whether a hale runs on it or not, through a connection of its own
/// that neither creates the file nor changes its contents.
pub async fn backup_database(
    db: &Path,
    to: &Destination,
    progress: Arc<dyn Progress>,
) -> Result<BackupReport, BackupError> {
    if !db.is_file() {
        return Err(BackupError::NoDatabase(db.to_owned()));
    }
    let started = Instant::now();
    let plan = Plan::new(db, to)?;
    let options = SqliteConnectOptions::new()
        .filename(db)
        .create_if_missing(false)
        .busy_timeout(BUSY_TIMEOUT);
    let mut conn = SqliteConnection::connect_with(&options)
        .await
        .map_err(|e| source_error(db, e))?;
    let copied = copy_into(&mut conn, db, &plan, progress.as_ref()).await;
    let _ = conn.close().await;
    plan.finish(db, copied?, started, progress).await
}

fn source_error(db: &Path, err: sqlx::Error) -> BackupError {
    BackupError::Source {
        path: db.to_owned(),
        reason: err.to_string(),
    }
}

/// Where one backup goes, and its temp files beside it (removed when the plan is dropped).
struct Plan {
    path: PathBuf,
    folder: PathBuf,
    /// The folder to prune and how many to keep.
    prune: Option<(PathBuf, u32)>,
    /// The uncompressed copy `VACUUM INTO` writes.
    copy: PathBuf,
    /// The compressed file before its rename to `path`.
    part: PathBuf,
    _temps: TempFiles,
}

impl Plan {
    fn new(db: &Path, to: &Destination) -> Result<Self, BackupError> {
        let (path, prune) = match to {
            Destination::File(path) => (path.clone(), None),
            Destination::Folder { dir, keep } => {
                let dir = dir.clone().unwrap_or_else(|| default_dir(db));
                create_dir(&dir)?;
                (next_name(&dir, &stem(db)), Some((dir, *keep)))
            }
        };
        let folder = parent_of(&path).to_owned();
        create_dir(&folder)?;
        let name = path
            .file_name()
            .ok_or_else(|| BackupError::Io {
                what: format!("cannot write a backup to {}", path.display()),
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "it is not a file name",
                ),
            })?
            .to_string_lossy()
            .into_owned();
        remove_stale_temps(&folder);
        let pid = std::process::id();
        let copy = folder.join(format!(".{name}.{pid}.copy"));
        let part = folder.join(format!(".{name}.{pid}.part"));
        let temps = TempFiles::new([&copy, &part]);
        Ok(Self {
            path,
            folder,
            prune,
            copy,
            part,
            _temps: temps,
        })
    }

    /// Verify the copy, compress it, rename it into place, prune.
    async fn finish(
        self,
        db: &Path,
        database_bytes: u64,
        started: Instant,
        progress: Arc<dyn Progress>,
    ) -> Result<BackupReport, BackupError> {
        progress.step("verifying", None);
        let verified = verify(&self.copy, db, Check::Backup).await;
        progress.finish();
        let verified = verified?;

        let bytes = {
            let (copy, part) = (self.copy.clone(), self.part.clone());
            tokio::task::spawn_blocking(move || compress(&copy, &part, progress.as_ref()))
                .await
                .map_err(|e| BackupError::Io {
                    what: "the compression task failed".to_owned(),
                    source: std::io::Error::other(e),
                })??
        };
        std::fs::rename(&self.part, &self.path).map_err(io_err(format!(
            "cannot move the backup into place at {}",
            self.path.display()
        )))?;
        sync_dir(&self.folder)?;

        let pruned = match &self.prune {
            Some((dir, keep)) => prune_folder(dir, &stem(db), *keep),
            None => Vec::new(),
        };
        Ok(BackupReport {
            path: self.path.clone(),
            bytes,
            database_bytes,
            duration: started.elapsed(),
            verified,
            pruned,
        })
    }
}

/// `VACUUM INTO` the plan's copy: one read transaction, a consistent snapshot. Returns the size of the
/// database copied.
async fn copy_into(
    conn: &mut SqliteConnection,
    db: &Path,
    plan: &Plan,
    progress: &dyn Progress,
) -> Result<u64, BackupError> {
    let copy = plan.copy.to_str().ok_or_else(|| BackupError::Io {
        what: format!("cannot write a backup to {}", plan.path.display()),
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "the path is not UTF-8"),
    })?;
    let (pages, page_size, free): (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT page_count FROM pragma_page_count()), (SELECT page_size FROM pragma_page_size()), \
         (SELECT freelist_count FROM pragma_freelist_count())",
    )
    .fetch_one(&mut *conn)
    .await
    .map_err(|e| source_error(db, e))?;
    let database_bytes = u64::try_from((pages - free).max(0) * page_size).unwrap_or(0);

    progress.step("copying", Some(database_bytes));
    let copied = {
        let vacuum = sqlx::query("VACUUM INTO ?").bind(copy).execute(&mut *conn);
        tokio::pin!(vacuum);
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        // The statement is silent until done: the copy's growing size is the progress.
        loop {
            tokio::select! {
                result = &mut vacuum => break result,
                _ = tick.tick() => {
                    if let Ok(meta) = tokio::fs::metadata(&plan.copy).await {
                        progress.done(meta.len());
                    }
                }
            }
        }
    };
    progress.finish();
    copied.map_err(|e| match primary_code(&e) {
        // Writing the copy failed, not reading the database: a full disk, an I/O error, a folder gone.
        Some(10 | 13 | 14) => BackupError::Io {
            what: format!("cannot write the copy {}", plan.copy.display()),
            source: std::io::Error::other(e.to_string()),
        },
        _ => source_error(db, e),
    })?;
    Ok(database_bytes)
}

/// gzip `from` into `to`, fsynced; returns the compressed size.
fn compress(from: &Path, to: &Path, progress: &dyn Progress) -> Result<u64, BackupError> {
    let shown = to.display().to_string();
    let mut input = File::open(from).map_err(io_err("cannot read the copy"))?;
    let total = input.metadata().map(|m| m.len()).ok();
    progress.step("compressing", total);
    let output = File::create(to).map_err(io_err(format!("cannot write {shown}")))?;
    let mut encoder = GzEncoder::new(
        BufWriter::with_capacity(CHUNK, output),
        Compression::new(GZIP_LEVEL),
    );
    let mut buf = vec![0u8; CHUNK];
    let mut done = 0u64;
    loop {
        let n = input
            .read(&mut buf)
            .map_err(io_err("cannot read the copy"))?;
        if n == 0 {
            break;
        }
        encoder
            .write_all(&buf[..n])
            .map_err(io_err(format!("cannot write {shown}")))?;
        done += n as u64;
        progress.done(done);
    }
    let file = encoder
        .finish()
        .and_then(|w| w.into_inner().map_err(|e| e.into_error()))
        .map_err(io_err(format!("cannot write {shown}")))?;
    file.sync_all()
        .map_err(io_err(format!("cannot write {shown}")))?;
    progress.finish();
    file.metadata()
        .map(|m| m.len())
        .map_err(io_err(format!("cannot write {shown}")))
}

/// Which checks a copy must pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    /// A copy of a database: sound and hale's.
    Backup,
    /// A file to restore: also no migration this version does not know, and none left unfinished.
    Restore,
}

/// Opens the copy at `copy` (a temp file of ours) and checks it; errors name `shown`, the file the operator
/// knows (the database backed up, or the backup being restored).
async fn verify(copy: &Path, shown: &Path, check: Check) -> Result<Verified, BackupError> {
    // The copy becomes a plain rollback-journal file: self-contained, and hale turns WAL on when it opens it.
    let options = SqliteConnectOptions::new()
        .filename(copy)
        .create_if_missing(false)
        .journal_mode(SqliteJournalMode::Delete);
    let refused = |e: sqlx::Error| classify_copy_error(shown, e);
    let mut conn = SqliteConnection::connect_with(&options)
        .await
        .map_err(refused)?;
    let result = verify_with(&mut conn, shown, check).await;
    let _ = conn.close().await;
    result
}

/// SQLite's primary result code of a failed statement.
fn primary_code(err: &sqlx::Error) -> Option<i32> {
    err.as_database_error()
        .and_then(|e| e.code())
        .and_then(|c| c.parse::<i32>().ok())
        .map(|c| c & 0xff)
}

fn classify_copy_error(shown: &Path, err: sqlx::Error) -> BackupError {
    match primary_code(&err) {
        Some(26) => BackupError::NotABackup {
            path: shown.to_owned(),
            reason: "it is not a SQLite database".to_owned(),
        },
        Some(11) => BackupError::Corrupt {
            path: shown.to_owned(),
            problems: err.to_string(),
        },
        _ => BackupError::Source {
            path: shown.to_owned(),
            reason: err.to_string(),
        },
    }
}

async fn verify_with(
    conn: &mut SqliteConnection,
    shown: &Path,
    check: Check,
) -> Result<Verified, BackupError> {
    let refused = |e: sqlx::Error| classify_copy_error(shown, e);
    let problems: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check(20)")
        .fetch_all(&mut *conn)
        .await
        .map_err(refused)?;
    if problems != ["ok"] {
        let mut text = problems.join("; ");
        if text.len() > 600 {
            let cut = (0..=600)
                .rev()
                .find(|&i| text.is_char_boundary(i))
                .unwrap_or(0);
            text.truncate(cut);
            text.push_str(" ...");
        }
        return Err(BackupError::Corrupt {
            path: shown.to_owned(),
            problems: text,
        });
    }

    let not_hale = |reason: String| BackupError::NotHale {
        path: shown.to_owned(),
        reason,
    };
    // Views too: since migration 9, `health_checks` and `health_check_hourly` are views over the compact tables.
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(refused)?;
    if !names.iter().any(|n| n == "_sqlx_migrations") {
        return Err(not_hale("it has no table _sqlx_migrations".to_owned()));
    }
    let missing: Vec<&str> = CORE_TABLES
        .into_iter()
        .filter(|t| !names.iter().any(|n| n == t))
        .collect();
    if !missing.is_empty() {
        return Err(not_hale(format!("it has no table {}", missing.join(", "))));
    }

    let applied: Vec<(i64, bool, Vec<u8>)> =
        sqlx::query_as("SELECT version, success, checksum FROM _sqlx_migrations ORDER BY version")
            .fetch_all(&mut *conn)
            .await
            .map_err(refused)?;
    let Some(schema_version) = applied.iter().map(|(v, _, _)| *v).max() else {
        return Err(not_hale("no schema migration was ever applied".to_owned()));
    };
    if check == Check::Restore {
        for (version, success, checksum) in &applied {
            let known = MIGRATOR
                .iter()
                .find(|m| m.version == *version && m.migration_type.is_up_migration());
            match known {
                None => {
                    return Err(BackupError::Newer {
                        path: shown.to_owned(),
                        version: *version,
                    })
                }
                Some(_) if !success => {
                    return Err(not_hale(format!("migration {version} did not finish")))
                }
                Some(m) if m.checksum.as_ref() != checksum.as_slice() => {
                    return Err(not_hale(format!(
                        "migration {version} differs from this version's"
                    )))
                }
                Some(_) => {}
            }
        }
    }

    let compact = names.iter().any(|n| n == "checks");
    let staged = names.iter().any(|n| n == "checks_recent");
    let mut tables = Vec::new();
    for table in names.into_iter().filter(|n| n != "_sqlx_migrations") {
        // The name comes from the file; quoted as an identifier, never spliced bare.
        let rows: i64 = sqlx::query_scalar(&format!(
            "SELECT count(*) FROM \"{}\"",
            table.replace('"', "\"\"")
        ))
        .fetch_one(&mut *conn)
        .await
        .map_err(refused)?;
        tables.push(TableRows { table, rows });
    }
    let (max_check_id, newest): (Option<i64>, Option<i64>) = if compact {
        // The compact table has no global id; its newest check is the newest of each target's key range, or
        // a check not settled yet.
        let settled: Option<i64> = sqlx::query_scalar(
            "SELECT max((SELECT max(checked_at_ms) FROM checks WHERE target_id = t.id)) FROM targets AS t",
        )
        .fetch_one(&mut *conn)
        .await
        .map_err(refused)?;
        let recent: Option<i64> = if staged {
            sqlx::query_scalar("SELECT max(checked_at_ms) FROM checks_recent")
                .fetch_one(&mut *conn)
                .await
                .map_err(refused)?
        } else {
            None
        };
        (None, settled.max(recent))
    } else {
        sqlx::query_as("SELECT max(id), max(checked_at_ms) FROM health_checks")
            .fetch_one(&mut *conn)
            .await
            .map_err(refused)?
    };
    Ok(Verified {
        schema_version,
        tables,
        max_check_id,
        newest_check_at: newest.map(from_ms),
    })
}

/// Checks the backup at `backup` and puts it in place of the database at `db`: refused while a hale runs
/// on `db` (its lock file is held), and before anything is moved when the backup is not a sound hale
/// database. The database it replaces, with its -wal and -shm, is kept beside it as
/// `<name>.before-restore-<UTC time>`.
///
/// A gzip backup is unpacked only when its first 16 bytes are SQLite's header, and only up to a cap (see
/// `unpack_cap`; `max_size` sets it): past it the restore stops and removes what it unpacked.
pub async fn restore(
    backup: &Path,
    db: &Path,
    max_size: Option<u64>,
    progress: Arc<dyn Progress>,
) -> Result<RestoreReport, BackupError> {
    let started = Instant::now();
    let folder = parent_of(db).to_owned();
    create_dir(&folder)?;
    let _lock = DbLock::acquire(db).map_err(|e| match e {
        LockError::Held { pid, .. } => BackupError::InUse {
            db: db.to_owned(),
            holder: lock::holder(pid),
        },
        LockError::Io { path, source } => BackupError::Io {
            what: format!("cannot take the lock {}", path.display()),
            source,
        },
    })?;
    let name = db.file_name().unwrap_or_default().to_string_lossy();
    let temp = folder.join(format!(".{name}.restore-{}.tmp", std::process::id()));
    let mut temps = TempFiles::new([&temp]);

    {
        let (backup, temp, progress) = (backup.to_owned(), temp.clone(), progress.clone());
        let free = free_space(&folder);
        tokio::task::spawn_blocking(move || {
            unpack(&backup, &temp, max_size, free, progress.as_ref())
        })
        .await
        .map_err(|e| BackupError::Io {
            what: "the unpacking task failed".to_owned(),
            source: std::io::Error::other(e),
        })??;
    }
    progress.step("verifying", None);
    let verified = verify(&temp, backup, Check::Restore).await;
    progress.finish();
    let verified = verified?;
    let bytes = File::open(&temp)
        .and_then(|f| {
            f.sync_all()?;
            f.metadata()
        })
        .map(|m| m.len())
        .map_err(io_err(format!("cannot write {}", temp.display())))?;

    let moved = move_aside(db)?;
    if let Err(e) = std::fs::rename(&temp, db) {
        put_back(&moved);
        return Err(BackupError::Io {
            what: format!("cannot put the restored database at {}", db.display()),
            source: e,
        });
    }
    temps.keep(&temp);
    sync_dir(&folder)?;
    Ok(RestoreReport {
        db: db.to_owned(),
        backup: backup.to_owned(),
        bytes,
        duration: started.elapsed(),
        verified,
        moved_aside: moved.into_iter().map(|(_, to)| to).collect(),
    })
}

/// A database written under a temp name beside `target` and put in its place at the end (`commit`), for
/// `hale history generate`: a run that fails or is stopped leaves nothing at `target` (and, unless killed
/// outright, no temp file either: dropping it removes the temp file). The target's lock is held throughout,
/// so no hale starts on the target meanwhile.
pub struct StagedDb {
    target: PathBuf,
    temp: PathBuf,
    folder: PathBuf,
    temps: TempFiles,
    _lock: DbLock,
}

/// The prefix and suffix of a staged database's temp file: `.<name>.generate-<pid>.tmp`.
const STAGED_INFIX: &str = ".generate-";
const STAGED_SUFFIX: &str = ".tmp";

impl StagedDb {
    /// Takes `target`'s lock and starts the temp file beside it: a copy of `target` (by SQLite, so a WAL
    /// left beside it is included) when `copy_target`, else nothing yet. Temp files of earlier runs whose
    /// process is gone are removed first.
    pub async fn new(target: &Path, copy_target: bool) -> Result<Self, BackupError> {
        let folder = parent_of(target).to_owned();
        create_dir(&folder)?;
        let lock = DbLock::acquire(target).map_err(|e| match e {
            LockError::Held { pid, .. } => BackupError::Held {
                db: target.to_owned(),
                holder: lock::holder(pid),
            },
            LockError::Io { path, source } => BackupError::Io {
                what: format!("cannot take the lock {}", path.display()),
                source,
            },
        })?;
        let name = target.file_name().unwrap_or_default().to_string_lossy();
        remove_stale_staged(&folder, &name);
        let temp = folder.join(format!(
            ".{name}{STAGED_INFIX}{}{STAGED_SUFFIX}",
            std::process::id()
        ));
        let mut temps = TempFiles::new([&temp]);
        // The store's own lock file for the temp database.
        temps.also(lock::lock_path(&temp));
        if copy_target {
            let copy = temp.to_str().ok_or_else(|| BackupError::Io {
                what: format!("cannot write a copy of {}", target.display()),
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "the path is not UTF-8",
                ),
            })?;
            let options = SqliteConnectOptions::new()
                .filename(target)
                .create_if_missing(false)
                .busy_timeout(BUSY_TIMEOUT);
            let mut conn = SqliteConnection::connect_with(&options)
                .await
                .map_err(|e| classify_copy_error(target, e))?;
            let copied = sqlx::query("VACUUM INTO ?")
                .bind(copy)
                .execute(&mut conn)
                .await;
            let _ = conn.close().await;
            copied.map_err(|e| match primary_code(&e) {
                Some(10 | 13 | 14) => BackupError::Io {
                    what: format!("cannot write the copy {}", temp.display()),
                    source: std::io::Error::other(e.to_string()),
                },
                _ => classify_copy_error(target, e),
            })?;
        }
        Ok(Self {
            target: target.to_owned(),
            temp,
            folder,
            temps,
            _lock: lock,
        })
    }

    /// The temp file to write the database into.
    pub fn path(&self) -> &Path {
        &self.temp
    }

    /// Puts the temp file in place of the target (whose -wal and -shm, stale once it is replaced, are
    /// removed). The store on the temp file must be closed first, so its WAL is checkpointed into it.
    pub fn commit(mut self) -> Result<(), BackupError> {
        File::open(&self.temp)
            .and_then(|f| f.sync_all())
            .map_err(io_err(format!("cannot write {}", self.temp.display())))?;
        std::fs::rename(&self.temp, &self.target).map_err(io_err(format!(
            "cannot put the generated database at {}",
            self.target.display()
        )))?;
        // Still under the lock: nothing opened the new file with the old one's WAL beside it. That WAL was
        // in the copy (SQLite read it for `VACUUM INTO`).
        for suffix in ["-wal", "-shm"] {
            let _ = std::fs::remove_file(with_suffix(&self.target, suffix));
        }
        self.temps.keep(&self.temp.clone());
        sync_dir(&self.folder)
    }
}

/// Removes the staged temp files of `name` (with their journals and lock files) whose process is gone.
fn remove_stale_staged(folder: &Path, name: &str) {
    let Ok(entries) = std::fs::read_dir(folder) else {
        return;
    };
    let prefix = format!(".{name}{STAGED_INFIX}");
    for entry in entries.flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = file.strip_prefix(&prefix) else {
            continue;
        };
        let Some(pid) = rest
            .split_once(STAGED_SUFFIX)
            .and_then(|(pid, _)| pid.parse::<i32>().ok())
        else {
            continue;
        };
        if !process_alive(pid) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Writes the database inside `backup` (gzip, or a plain SQLite file) to `to`. A gzip backup must unpack
/// to SQLite's header (checked before `to` is created) and to no more than its cap (checked as it goes).
fn unpack(
    backup: &Path,
    to: &Path,
    max_size: Option<u64>,
    free: Option<u64>,
    progress: &dyn Progress,
) -> Result<(), BackupError> {
    let unreadable = |source| BackupError::Unreadable {
        path: backup.to_owned(),
        source,
    };
    let not_a_backup = |reason: String| BackupError::NotABackup {
        path: backup.to_owned(),
        reason,
    };
    let mut file = File::open(backup).map_err(unreadable)?;
    let total = file.metadata().map_err(unreadable)?.len();
    let mut head = [0u8; 16];
    let got = read_up_to(&mut file, &mut head).map_err(unreadable)?;
    let gzip = got >= 2 && head[..2] == GZIP_MAGIC;
    if !gzip && (got < 16 || &head != SQLITE_MAGIC) {
        return Err(not_a_backup(
            "it is neither a gzip file nor a SQLite database".to_owned(),
        ));
    }
    let file = File::open(backup).map_err(unreadable)?;
    let counted = CountingReader {
        inner: file,
        read: 0,
        progress,
    };
    let gzip_error =
        |e: std::io::Error| not_a_backup(format!("it is not a complete gzip file ({e})"));
    let (mut input, cap): (Box<dyn Read + '_>, Option<(u64, String)>) = if gzip {
        (
            Box::new(GzDecoder::new(counted)),
            Some(unpack_cap(total, max_size, free)),
        )
    } else {
        (Box::new(counted), None)
    };
    progress.step("unpacking", Some(total));
    let mut buf = vec![0u8; CHUNK];
    if gzip {
        // What the gzip holds must start as a SQLite database does, before anything is written.
        let mut got = 0;
        while got < SQLITE_MAGIC.len() {
            match input.read(&mut buf[got..SQLITE_MAGIC.len()]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(gzip_error(e)),
            }
        }
        if &buf[..got] != SQLITE_MAGIC.as_slice() {
            return Err(not_a_backup(
                "it is not a SQLite database (the first 16 bytes it unpacks to are not SQLite's header)"
                    .to_owned(),
            ));
        }
    }
    let shown = to.display().to_string();
    let mut output = BufWriter::with_capacity(
        CHUNK,
        File::create(to).map_err(io_err(format!("cannot write {shown}")))?,
    );
    let mut written = 0u64;
    let mut pending = if gzip { SQLITE_MAGIC.len() } else { 0 };
    loop {
        let n = if pending > 0 {
            std::mem::take(&mut pending)
        } else {
            match input.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) if gzip => return Err(gzip_error(e)),
                Err(e) => return Err(unreadable(e)),
            }
        };
        written += n as u64;
        if let Some((cap, why)) = &cap {
            if written > *cap {
                return Err(BackupError::TooLarge {
                    path: backup.to_owned(),
                    cap: *cap,
                    why: why.clone(),
                });
            }
        }
        output
            .write_all(&buf[..n])
            .map_err(io_err(format!("cannot write {shown}")))?;
    }
    output
        .flush()
        .map_err(io_err(format!("cannot write {shown}")))?;
    progress.finish();
    Ok(())
}

fn read_up_to(file: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match file.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Counts the bytes read from the backup file for the progress bar.
struct CountingReader<'a, R> {
    inner: R,
    read: u64,
    progress: &'a dyn Progress,
}

impl<R: Read> Read for CountingReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        self.progress.done(self.read);
        Ok(n)
    }
}

/// Moves the database and its -wal and -shm aside, as `<name>.before-restore-<time>` (and `-wal`, `-shm`,
/// so SQLite can still open the pair); returns what moved where. On a failure, puts back what had moved.
fn move_aside(db: &Path) -> Result<Vec<(PathBuf, PathBuf)>, BackupError> {
    let stamp = Utc::now().format(TIME_FORMAT).to_string();
    let mut aside = with_suffix(db, &format!(".before-restore-{stamp}"));
    let mut n = 2;
    while exists(&aside) || exists(&with_suffix(&aside, "-wal")) {
        aside = with_suffix(db, &format!(".before-restore-{stamp}-{n}"));
        n += 1;
    }
    let mut moved = Vec::new();
    for suffix in ["", "-wal", "-shm"] {
        let from = with_suffix(db, suffix);
        if !exists(&from) {
            continue;
        }
        let to = with_suffix(&aside, suffix);
        if let Err(e) = std::fs::rename(&from, &to) {
            put_back(&moved);
            return Err(BackupError::Io {
                what: format!("cannot move {} aside to {}", from.display(), to.display()),
                source: e,
            });
        }
        moved.push((from, to));
    }
    Ok(moved)
}

fn put_back(moved: &[(PathBuf, PathBuf)]) {
    for (from, to) in moved.iter().rev() {
        if let Err(e) = std::fs::rename(to, from) {
            tracing::error!(from = %to.display(), to = %from.display(), error = %e, "cannot put a moved database file back");
        }
    }
}

/// Temp files removed when dropped (with any journal SQLite left beside them), unless kept.
struct TempFiles(Vec<PathBuf>);

impl TempFiles {
    fn new<'a>(paths: impl IntoIterator<Item = &'a PathBuf>) -> Self {
        let mut all = Vec::new();
        for path in paths {
            for suffix in ["", "-journal", "-wal", "-shm"] {
                let p = with_suffix(path, suffix);
                let _ = std::fs::remove_file(&p);
                all.push(p);
            }
        }
        Self(all)
    }

    fn keep(&mut self, path: &Path) {
        self.0.retain(|p| p != path);
    }

    fn also(&mut self, path: PathBuf) {
        let _ = std::fs::remove_file(&path);
        self.0.push(path);
    }
}

impl Drop for TempFiles {
    fn drop(&mut self) {
        for path in &self.0 {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Removes the temp files of backups whose process is gone (killed during a backup) from `folder`.
fn remove_stale_temps(folder: &Path) {
    let Ok(entries) = std::fs::read_dir(folder) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name
            .strip_prefix('.')
            .and_then(|n| n.strip_suffix(".copy").or_else(|| n.strip_suffix(".part")))
        else {
            continue;
        };
        let Some(pid) = rest
            .rsplit_once('.')
            .and_then(|(backup, pid)| backup.ends_with(BACKUP_SUFFIX).then_some(pid))
            .and_then(|pid| pid.parse::<i32>().ok())
        else {
            continue;
        };
        if !process_alive(pid) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

fn process_alive(pid: i32) -> bool {
    // SAFETY: kill with signal 0 sends nothing; it only asks whether the process exists.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// `<stem>-<UTC time>.db.gz` in `dir`, with `-2`, `-3`, ... when a backup of that second exists.
fn next_name(dir: &Path, stem: &str) -> PathBuf {
    let stamp = Utc::now().format(TIME_FORMAT);
    let mut path = dir.join(format!("{stem}-{stamp}{BACKUP_SUFFIX}"));
    let mut n = 2;
    while exists(&path) {
        path = dir.join(format!("{stem}-{stamp}-{n}{BACKUP_SUFFIX}"));
        n += 1;
    }
    path
}

/// The time and sequence number of a backup file of the database `stem`; None for any other file.
fn parse_name(name: &str, stem: &str) -> Option<(NaiveDateTime, u32)> {
    let rest = name.strip_prefix(stem)?.strip_prefix('-')?;
    let rest = rest.strip_suffix(BACKUP_SUFFIX)?;
    let (stamp, n) = match rest.split_once('-') {
        Some((stamp, n)) => (stamp, n.parse().ok()?),
        None => (rest, 1),
    };
    let time = NaiveDateTime::parse_from_str(stamp.strip_suffix('Z')?, "%Y%m%dT%H%M%S").ok()?;
    Some((time, n))
}

/// Deletes the backups of `stem` in `dir` beyond the newest `keep`; returns those deleted. A failure to
/// delete is logged and does not fail the backup just made.
fn prune_folder(dir: &Path, stem: &str, keep: u32) -> Vec<PathBuf> {
    let mut backups: Vec<((NaiveDateTime, u32), PathBuf)> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .filter_map(|e| {
                let key = parse_name(&e.file_name().to_string_lossy(), stem)?;
                Some((key, e.path()))
            })
            .collect(),
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot list the backup folder to prune it");
            return Vec::new();
        }
    };
    backups.sort();
    let excess = backups.len().saturating_sub(keep as usize);
    let mut pruned = Vec::new();
    for (_, path) in backups.into_iter().take(excess) {
        match std::fs::remove_file(&path) {
            Ok(()) => pruned.push(path),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot delete an old backup")
            }
        }
    }
    pruned
}

/// The newest backup of `db` in `dir` (by the time in its name) and that time; none when there is none.
pub fn latest_backup(dir: &Path, db: &Path) -> Option<(DateTime<Utc>, PathBuf)> {
    let stem = stem(db);
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|e| {
            let key = parse_name(&e.file_name().to_string_lossy(), &stem)?;
            Some((key, e.path()))
        })
        .max()
        .map(|((time, _), path)| (time.and_utc(), path))
}

/// `backups` beside the database.
pub fn default_dir(db: &Path) -> PathBuf {
    parent_of(db).join(DEFAULT_BACKUP_FOLDER)
}

fn parent_of(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

fn stem(db: &Path) -> String {
    db.file_stem()
        .map_or_else(|| "hale".to_owned(), |s| s.to_string_lossy().into_owned())
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(suffix);
    path.with_file_name(name)
}

fn exists(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

fn create_dir(dir: &Path) -> Result<(), BackupError> {
    std::fs::create_dir_all(dir).map_err(io_err(format!(
        "cannot create the folder {}",
        dir.display()
    )))
}

/// fsync a folder, so a rename in it survives a power cut.
fn sync_dir(dir: &Path) -> Result<(), BackupError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(format!("cannot sync the folder {}", dir.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backup_names_sort_by_time_then_sequence_and_other_files_are_ignored() {
        let t = |s| NaiveDateTime::parse_from_str(s, "%Y%m%dT%H%M%S").unwrap();
        assert_eq!(
            parse_name("hale-20261125T120937Z.db.gz", "hale"),
            Some((t("20261125T120937"), 1))
        );
        assert_eq!(
            parse_name("hale-20261125T120937Z-2.db.gz", "hale"),
            Some((t("20261125T120937"), 2))
        );
        for other in [
            "hale-20261125T120937Z.db",
            "other-20261125T120937Z.db.gz",
            "hale-2-20261125T120937Z.db.gz",
            ".hale-20261125T120937Z.db.gz.12.part",
            "hale-notatime.db.gz",
        ] {
            assert_eq!(parse_name(other, "hale"), None, "{other}");
        }
    }

    #[test]
    fn pruning_keeps_the_newest_and_touches_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let names = [
            "hale-20261125T120937Z-2.db.gz",
            "hale-20261124T000000Z.db.gz",
            "hale-20261125T120937Z.db.gz",
            "hale-20261126T000000Z.db.gz",
            "other-20261101T000000Z.db.gz",
            "notes.txt",
        ];
        for name in names {
            std::fs::write(dir.path().join(name), b"x").unwrap();
        }
        let pruned = prune_folder(dir.path(), "hale", 2);
        let pruned: Vec<String> = pruned
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            pruned,
            ["hale-20261124T000000Z.db.gz", "hale-20261125T120937Z.db.gz"]
        );
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                "hale-20261125T120937Z-2.db.gz",
                "hale-20261126T000000Z.db.gz",
                "notes.txt",
                "other-20261101T000000Z.db.gz"
            ]
        );
    }

    #[test]
    fn the_unpack_cap_is_20_times_the_backup_at_least_64_mib_and_at_most_the_free_space() {
        const MIB: u64 = 1 << 20;
        let (cap, why) = unpack_cap(MIB, None, None);
        assert_eq!(cap, 64 * MIB);
        assert!(why.starts_with("the floor of 64.0 MiB"), "{why}");
        let (cap, why) = unpack_cap(10 * MIB, None, Some(10_000 * MIB));
        assert_eq!(cap, 200 * MIB);
        assert!(
            why.starts_with("20 times the backup's 10485760 bytes"),
            "{why}"
        );
        let (cap, why) = unpack_cap(10 * MIB, Some(1 << 30), Some(100 * MIB));
        assert_eq!(cap, 36 * MIB);
        assert!(why.starts_with("the free space"), "{why}");
        assert_eq!(unpack_cap(10 * MIB, Some(MIB), Some(100 * MIB)).0, MIB);
        assert_eq!(human_bytes(5 << 30), "5.0 GiB");
        assert_eq!(human_bytes(3 << 40), "3.0 TiB");
    }

    #[test]
    fn stale_temp_files_of_dead_processes_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        // pid_max is at most 2^22: this pid cannot be running.
        let dead = dir
            .path()
            .join(".hale-20261125T120937Z.db.gz.99999999.part");
        let alive = dir.path().join(format!(
            ".hale-20261125T120937Z.db.gz.{}.copy",
            std::process::id()
        ));
        let other = dir.path().join(".keep.99999999.part");
        for p in [&dead, &alive, &other] {
            std::fs::write(p, b"x").unwrap();
        }
        remove_stale_temps(dir.path());
        assert!(!dead.exists());
        assert!(alive.exists());
        assert!(other.exists());
    }
}
