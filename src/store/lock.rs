//! The lock file beside the database (`hale.db.lock`): whoever holds an exclusive `flock` on it owns the
//! database. `Store::open` takes it for as long as hale runs, so a second `hale serve` on the same file and a
//! `hale restore` under a running hale are refused. It is a file of its own, never the database: closing a
//! second descriptor of the database file would drop SQLite's POSIX locks on it.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The lock file of the database at `db`: its name with `.lock` appended.
pub fn lock_path(db: &Path) -> PathBuf {
    let mut name = db.file_name().unwrap_or_default().to_owned();
    name.push(".lock");
    db.with_file_name(name)
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

/// The held lock; dropping it releases it, and so does the process's exit.
#[derive(Debug)]
pub(crate) struct DbLock {
    file: File,
}

impl Drop for DbLock {
    fn drop(&mut self) {
        // Unlock explicitly rather than rely on closing the descriptor: a child forked by this process an
        // instant earlier shares the open file (until its exec closes it), and would keep the lock held.
        // SAFETY: the descriptor is open until `file` drops after this; flock only reads its arguments.
        unsafe {
            libc::flock(self.file.as_raw_fd(), libc::LOCK_UN);
        }
    }
}

impl DbLock {
    /// Takes the lock without waiting, creating the lock file when missing, and writes this process's pid
    /// into it so a refused caller can say who holds it.
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
        loop {
            // SAFETY: the descriptor is open for the duration of the call; flock only reads its arguments.
            let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
            if rc == 0 {
                break;
            }
            let err = std::io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EWOULDBLOCK) => {
                    return Err(LockError::Held {
                        pid: read_pid(&mut file),
                        path,
                    })
                }
                _ => return Err(io(err)),
            }
        }
        file.set_len(0).map_err(io)?;
        file.write_all(format!("{}\n", std::process::id()).as_bytes())
            .map_err(io)?;
        Ok(Self { file })
    }
}

/// The pid the holder wrote; None while it has not written it yet (or wrote something else).
fn read_pid(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lock_is_exclusive_names_its_holder_and_is_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("hale.db");
        assert_eq!(lock_path(&db), dir.path().join("hale.db.lock"));
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
        assert!(!db.exists(), "the database itself is never opened");
    }
}
