//! What the store knows about its own health, kept in memory so `/health` answers without SQL: the last
//! successful commit, the current write failure and its kind, and what the file watch last saw.

// Unsafe code here: libc access(W_OK) on the database folder; each block says why it is sound.
#![allow(unsafe_code)]

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use tokio_util::sync::CancellationToken;

use crate::store::Store;
use crate::worker::Worker;

/// How often the database file is compared with the one hale opened.
pub const FILE_CHECK_INTERVAL: Duration = Duration::from_secs(2);

/// Why the database cannot take writes; also the `kind` label of `store_write_errors_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WriteErrorKind {
    /// The disk (or the filesystem's quota) is full: `SQLITE_FULL`.
    Full,
    /// The file, its folder or the filesystem cannot be written.
    ReadOnly,
    /// Another process holds the write lock longer than the busy timeout.
    Locked,
    /// The file hale opened was deleted or replaced; writes would go to a file nobody can see.
    FileGone,
    /// The operating system refused a read or write (`SQLITE_IOERR`).
    Io,
    /// Anything else (a closed pool, a constraint, a bug).
    Other,
}

impl WriteErrorKind {
    pub const ALL: [WriteErrorKind; 6] = [
        Self::Full,
        Self::ReadOnly,
        Self::Locked,
        Self::FileGone,
        Self::Io,
        Self::Other,
    ];

    /// The label value, and the `database` field of `/health` while failing.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::ReadOnly => "read_only",
            Self::Locked => "locked",
            Self::FileGone => "file_gone",
            Self::Io => "io_error",
            Self::Other => "other",
        }
    }

    /// Sorts a failed statement by SQLite's primary result code.
    pub fn classify(err: &sqlx::Error) -> Self {
        match crate::store::primary_code(err) {
            Some(13) => Self::Full,
            Some(8) => Self::ReadOnly,
            Some(5 | 6) => Self::Locked,
            Some(10) => Self::Io,
            // SQLITE_CANTOPEN while running: the file or its folder went away.
            Some(14) => Self::FileGone,
            _ if matches!(err, sqlx::Error::PoolTimedOut) => Self::Locked,
            _ => Self::Other,
        }
    }
}

impl std::fmt::Display for WriteErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A problem with the store as `/health` reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreProblem {
    pub kind: WriteErrorKind,
    /// For a person: what failed and what hale does about it. Never contains row data.
    pub message: String,
    pub since: DateTime<Utc>,
}

/// The store's health at one instant.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreCondition {
    /// None while checks can be stored.
    pub problem: Option<StoreProblem>,
    /// When the writer last committed a batch.
    pub last_write_at: Option<DateTime<Utc>>,
    /// The pool was closed (hale is stopping).
    pub closed: bool,
}

impl StoreCondition {
    pub fn is_ok(&self) -> bool {
        self.problem.is_none() && !self.closed
    }
}

#[derive(Debug, Default)]
struct Inner {
    write_failure: Option<StoreProblem>,
    file_problem: Option<StoreProblem>,
    last_write_at: Option<DateTime<Utc>>,
}

/// Shared between the writer (which reports commits and failures), the file watch and `/health`.
#[derive(Debug, Default)]
pub struct StoreStatus {
    inner: Mutex<Inner>,
}

impl StoreStatus {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Plain values, each written whole: a poisoned lock still holds a consistent state.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn committed(&self, at: DateTime<Utc>) {
        let mut inner = self.lock();
        inner.last_write_at = Some(at);
        inner.write_failure = None;
    }

    pub(crate) fn write_failed(&self, problem: StoreProblem) {
        let mut inner = self.lock();
        // Keep the start of an episode of one kind; a new kind starts a new episode.
        match &mut inner.write_failure {
            Some(current) if current.kind == problem.kind => current.message = problem.message,
            slot => *slot = Some(problem),
        }
    }

    pub(crate) fn set_file_problem(&self, problem: Option<StoreProblem>) {
        let mut inner = self.lock();
        match (&mut inner.file_problem, problem) {
            (Some(current), Some(new)) if current.kind == new.kind => current.message = new.message,
            (slot, new) => *slot = new,
        }
    }

    /// The file problem the watch reported last, if any (the writer does not write past it).
    pub(crate) fn file_problem(&self) -> Option<StoreProblem> {
        self.lock().file_problem.clone()
    }

    pub fn condition(&self, closed: bool) -> StoreCondition {
        let inner = self.lock();
        StoreCondition {
            // A file problem explains a write failure better than the write's own error.
            problem: inner
                .file_problem
                .clone()
                .or_else(|| inner.write_failure.clone()),
            last_write_at: inner.last_write_at,
            closed,
        }
    }
}

/// The identity of the database file as hale opened it: a deleted or replaced file has another (or none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileIdentity {
    dev: u64,
    ino: u64,
}

impl FileIdentity {
    pub(crate) fn of(path: &Path) -> std::io::Result<Self> {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(path)?;
        Ok(Self {
            dev: meta.dev(),
            ino: meta.ino(),
        })
    }
}

/// Compares the file at `path` with the one opened; the problem, if any.
pub(crate) fn check_file(path: &Path, opened: FileIdentity) -> Option<(WriteErrorKind, String)> {
    let shown = path.display();
    match FileIdentity::of(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some((
            WriteErrorKind::FileGone,
            format!("database file {shown} was deleted while hale runs; checks are held in memory and not stored; restart hale to create a new database"),
        )),
        Err(e) => Some((
            WriteErrorKind::Io,
            format!("cannot inspect database file {shown}: {e}"),
        )),
        Ok(now) if now != opened => Some((
            WriteErrorKind::FileGone,
            format!("database file {shown} was replaced by another file while hale runs; checks are held in memory and not stored; restart hale to use the new file"),
        )),
        Ok(_) if !writable(path) => Some((
            WriteErrorKind::ReadOnly,
            format!("database file {shown} is no longer writable; new checks may stay in the write-ahead log or fail, and hale will not start on it again until it is writable"),
        )),
        Ok(_) => None,
    }
}

/// `access(W_OK)`: the kernel's answer for this process (a read-only mount, an immutable file, permissions).
/// Never `open`: closing a second descriptor of the database file would drop SQLite's POSIX locks on it.
pub(crate) fn writable(path: &Path) -> bool {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let Ok(c_path) = CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: `c_path` is a valid NUL-terminated string that outlives the call; access() only reads it.
    unsafe { libc::access(c_path.as_ptr(), libc::W_OK) == 0 }
}

/// Watches that the database file is still the one opened, and writable. It checks the real file on the real
/// disk, so it ticks on tokio's time, not on the policy clock.
#[derive(Debug)]
pub struct FileWatch {
    pub store: Store,
}

impl Worker for FileWatch {
    fn name(&self) -> &'static str {
        "database file watch"
    }

    fn run(self: std::sync::Arc<Self>, cancel: CancellationToken) -> BoxFuture<'static, ()> {
        Box::pin(self.store.clone().watch_file(cancel))
    }
}

/// Watches the database file until `cancel`: every `FILE_CHECK_INTERVAL` a `stat` and an `access`, no SQL.
/// A change of state is logged once: an ERROR when a problem starts, an INFO when it ends.
pub(crate) async fn watch_file(
    path: PathBuf,
    opened: FileIdentity,
    status: std::sync::Arc<StoreStatus>,
    cancel: CancellationToken,
) {
    let mut ticker = tokio::time::interval(FILE_CHECK_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut current: Option<WriteErrorKind> = None;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let check_path = path.clone();
        let found = tokio::task::spawn_blocking(move || check_file(&check_path, opened))
            .await
            .unwrap_or(None);
        let kind = found.as_ref().map(|(kind, _)| *kind);
        if kind != current {
            match &found {
                Some((kind, message)) => {
                    tracing::error!(kind = kind.as_str(), error = %message, "the database file has a problem")
                }
                None => tracing::info!(path = %path.display(), "the database file is usable again"),
            }
            current = kind;
        }
        status.set_file_problem(found.map(|(kind, message)| StoreProblem {
            kind,
            message,
            since: Utc::now(),
        }));
    }
}
