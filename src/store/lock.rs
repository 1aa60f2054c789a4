//! Who owns a database file. `Store::open` takes two exclusive `flock`s for as long as hale runs, so a
//! second `hale serve` on the same file, under any name, and a `hale restore` under a running hale are
//! refused:
//! - one on the lock file named after the database's *canonical* path (`hale.db.lock` beside the file the
//!   path resolves to, symlinks followed). It exists before the database does, so two starts on a new file
//!   cannot both create it, and it stays with the name when `restore` puts another file in its place. The
//!   holder writes its pid into it;
//! - one on the database file itself, its device and inode: a hard link (another name, another folder) is
//!   the same file, and so the same lock. `flock` locks are independent of SQLite's POSIX (`fcntl`) locks.
//!   The holder's pid is read from `/proc/locks`.
//!
//! The descriptor on the database file is released only after the pool is closed: closing a descriptor of
//! a file drops every POSIX lock this process holds on it, SQLite's included.

// Unsafe code here: libc flock on the lock files; each block says why it is sound.
#![allow(unsafe_code)]

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The lock file of the database at `db`: the name of the file it resolves to, with `.lock` appended, in
/// that file's folder. A symlink and its target share one lock file.
pub fn lock_path(db: &Path) -> PathBuf {
    let db = canonical(db);
    let mut name = db.file_name().unwrap_or_default().to_owned();
    name.push(".lock");
    db.with_file_name(name)
}

/// `db` with every symlink resolved: the file itself when it exists, else its folder resolved and its
/// name kept (a dangling symlink is followed to where it points). Unchanged when nothing resolves.
fn canonical(db: &Path) -> PathBuf {
    if let Ok(path) = std::fs::canonicalize(db) {
        return path;
    }
    // A symlink to a file not created yet: the lock goes with where it points.
    if let Ok(target) = std::fs::read_link(db) {
        let target = match db.parent() {
            Some(parent) if target.is_relative() => parent.join(target),
            _ => target,
        };
        if target != db {
            return canonical(&target);
        }
    }
    let parent = db.parent().filter(|p| !p.as_os_str().is_empty());
    let parent = parent.unwrap_or(Path::new("."));
    match (std::fs::canonicalize(parent), db.file_name()) {
        (Ok(parent), Some(name)) => parent.join(name),
        _ => db.to_owned(),
    }
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum LockError {
    /// Another process (a running hale, a restore) holds the lock.
    #[error("the lock {path} is held by {}", holder(*pid))]
    Held { path: PathBuf, pid: Option<u32> },
    #[error("cannot take the lock {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// "pid 1234", or "another process" when the holder has not written its pid (yet).
pub(crate) fn holder(pid: Option<u32>) -> String {
    pid.map_or_else(|| "another process".to_owned(), |pid| format!("pid {pid}"))
}

/// The held locks; dropping them releases them, and so does the process's exit.
#[derive(Debug)]
pub(crate) struct DbLock {
    /// The lock file named after the canonical path.
    name: File,
    /// The database file itself, once it exists.
    file: Option<File>,
}

impl Drop for DbLock {
    fn drop(&mut self) {
        // Unlock explicitly rather than rely on closing the descriptor: a child forked by this process an
        // instant earlier shares the open file (until its exec closes it), and would keep the lock held.
        for file in std::iter::once(&self.name).chain(self.file.as_ref()) {
            // SAFETY: the descriptor is open until `self` drops after this; flock only reads its arguments.
            unsafe {
                libc::flock(file.as_raw_fd(), libc::LOCK_UN);
            }
        }
    }
}

/// Takes an exclusive flock without waiting: Ok(true) when taken, Ok(false) when another holds it.
fn try_flock(file: &File) -> std::io::Result<bool> {
    loop {
        // SAFETY: the descriptor is open for the duration of the call; flock only reads its arguments.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc == 0 {
            return Ok(true);
        }
        let err = std::io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EWOULDBLOCK) => return Ok(false),
            _ => return Err(err),
        }
    }
}

impl DbLock {
    /// Takes the lock without waiting, creating the lock file when missing, and writes this process's pid
    /// into it so a refused caller can say who holds it. When the database file exists, its own lock is
    /// taken too (`hold_file`).
    pub(crate) fn acquire(db: &Path) -> Result<Self, LockError> {
        let path = lock_path(db);
        let io = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        // Opened close-on-exec (std's default), so a child process never inherits the lock.
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .open(&path)
            .map_err(io)?;
        if !try_flock(&file).map_err(io)? {
            return Err(LockError::Held {
                pid: read_pid(&mut file),
                path,
            });
        }
        file.set_len(0).map_err(io)?;
        file.write_all(format!("{}\n", std::process::id()).as_bytes())
            .map_err(io)?;
        let mut lock = Self {
            name: file,
            file: None,
        };
        if db.exists() {
            lock.hold_file(db)?;
        }
        Ok(lock)
    }

    /// Takes the lock on the database file itself (its device and inode), once it exists: refused while
    /// another process holds it through any name, a hard link included.
    pub(crate) fn hold_file(&mut self, db: &Path) -> Result<(), LockError> {
        if self.file.is_some() {
            return Ok(());
        }
        let io = |source| LockError::Io {
            path: db.to_owned(),
            source,
        };
        let file = OpenOptions::new().read(true).open(db).map_err(io)?;
        if !try_flock(&file).map_err(io)? {
            let meta = file.metadata().map_err(io)?;
            return Err(LockError::Held {
                pid: flock_holder(meta.dev(), meta.ino()),
                path: db.to_owned(),
            });
        }
        self.file = Some(file);
        Ok(())
    }
}

/// The pid the holder wrote; None while it has not written it yet (or wrote something else).
fn read_pid(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

/// The process holding an exclusive flock on the file with this device and inode, from `/proc/locks`.
fn flock_holder(dev: u64, ino: u64) -> Option<u32> {
    let text = std::fs::read_to_string("/proc/locks").ok()?;
    parse_flock_holder(&text, dev, ino)
}

/// `/proc/locks` lines look like `3: FLOCK  ADVISORY  WRITE 4242 fd:01:1234 0 EOF`; the device is
/// `major:minor` in hex. Lines of waiters (`3: -> FLOCK ...`) are skipped.
fn parse_flock_holder(text: &str, dev: u64, ino: u64) -> Option<u32> {
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    text.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [_, kind, _, mode, pid, id, ..] = fields.as_slice() else {
            return None;
        };
        if *kind != "FLOCK" || *mode != "WRITE" {
            return None;
        }
        let mut parts = id.split(':');
        let (Some(ma), Some(mi), Some(i)) = (parts.next(), parts.next(), parts.next()) else {
            return None;
        };
        let same = u64::from_str_radix(ma, 16).ok()? == major
            && u64::from_str_radix(mi, 16).ok()? == minor
            && i.parse::<u64>().ok()? == ino;
        same.then(|| pid.parse().ok()).flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lock_is_exclusive_names_its_holder_and_is_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("hale.db");
        let folder = std::fs::canonicalize(dir.path()).unwrap();
        assert_eq!(lock_path(&db), folder.join("hale.db.lock"));
        let held = DbLock::acquire(&db).unwrap();
        // A second open file description conflicts, even in the same process.
        match DbLock::acquire(&db) {
            Err(LockError::Held { pid, .. }) => assert_eq!(pid, Some(std::process::id())),
            other => panic!("expected Held, got {other:?}"),
        }
        drop(held);
        let again = DbLock::acquire(&db).unwrap();
        drop(again);
        assert!(db.with_file_name("hale.db.lock").exists());
        assert!(!db.exists(), "the database itself is never created");
    }

    #[test]
    fn a_symlink_and_a_hard_link_take_the_same_lock() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("hale.db");
        std::fs::write(&db, b"").unwrap();
        let link = dir.path().join("link.db");
        std::os::unix::fs::symlink(&db, &link).unwrap();
        let other = tempfile::tempdir_in(dir.path()).unwrap();
        let hard = other.path().join("hard.db");
        std::fs::hard_link(&db, &hard).unwrap();
        assert_eq!(lock_path(&link), lock_path(&db));
        let held = DbLock::acquire(&db).unwrap();
        for name in [&link, &hard] {
            match DbLock::acquire(name) {
                Err(LockError::Held { pid, .. }) => assert_eq!(pid, Some(std::process::id())),
                other => panic!("expected Held through {}, got {other:?}", name.display()),
            }
        }
        drop(held);
        drop(DbLock::acquire(&hard).unwrap());
    }

    #[test]
    fn a_dangling_symlink_locks_where_it_points() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("link.db");
        std::os::unix::fs::symlink("real.db", &link).unwrap();
        let folder = std::fs::canonicalize(dir.path()).unwrap();
        assert_eq!(lock_path(&link), folder.join("real.db.lock"));
    }

    #[test]
    fn proc_locks_name_the_holder_of_a_file() {
        let text = "1: POSIX  ADVISORY  WRITE 99 fd:01:77 0 EOF\n\
                    2: FLOCK  ADVISORY  WRITE 4242 fd:01:1234 0 EOF\n\
                    2: -> FLOCK  ADVISORY  WRITE 5151 fd:01:1234 0 EOF\n";
        let dev = (0xfd << 8) | 0x01;
        assert_eq!(parse_flock_holder(text, dev, 1234), Some(4242));
        assert_eq!(parse_flock_holder(text, dev, 77), None, "not a flock");
        assert_eq!(parse_flock_holder(text, dev + 1, 1234), None);
    }
}
