//! Calls on a connection's own SQLite handle (sqlx's `lock_handle`): whether the connection is inside a
//! transaction (`autocommit`), which sqlx does not tell; giving back its page cache; and a prepared statement stepped in place, for the
//! reads where sqlx's hand-off of every row from its worker thread costs more than SQLite's scan: a whole
//! report's hourly rollups, about 17,000 rows with their histograms, and the SLO ledger's raw checks over
//! many short ranges, one statement run again per range. Only what those reads need: integer and text
//! parameters, and integer, text and blob columns read in place.

// Unsafe code here: SQLite's C API on the connection's own handle; each block says why it is sound.
#![allow(unsafe_code)]

use std::ffi::{c_int, CStr};
use std::marker::PhantomData;
use std::ptr::{self, NonNull};

use libsqlite3_sys as ffi;
use sqlx::sqlite::LockedSqliteHandle;

use crate::store::StoreError;

/// True when the connection is in autocommit mode: no transaction is open on it. False after a `BEGIN` (or an
/// outermost `SAVEPOINT`) that no `COMMIT`, `RELEASE` or `ROLLBACK` has ended yet, whatever sqlx believes.
pub(crate) fn autocommit(handle: &mut LockedSqliteHandle<'_>) -> bool {
    let db = handle.as_raw_handle();
    // SAFETY: `db` is an open connection, held locked (and so used by no other thread) while `handle` lives;
    // sqlite3_get_autocommit only reads the connection's flag.
    unsafe { ffi::sqlite3_get_autocommit(db.as_ptr()) != 0 }
}

/// Gives back the connection's page cache (`sqlite3_db_release_memory`): every page not in use by a running
/// statement is freed to the allocator. The pages are read again from the file (the OS's cache) when needed.
pub(crate) fn release_page_cache(handle: &mut LockedSqliteHandle<'_>) -> bool {
    let db = handle.as_raw_handle();
    // SAFETY: `db` is an open connection, held locked (and so used by no other thread) while `handle` lives;
    // sqlite3_db_release_memory only frees the connection's unused cache pages, under its own mutexes.
    unsafe { ffi::sqlite3_db_release_memory(db.as_ptr()) == ffi::SQLITE_OK }
}

/// The bytes of heap SQLite holds now in the whole process, and the most it held since the last call
/// (`SQLITE_STATUS_MEMORY_USED`, whose high-water mark each call resets): what a transaction cost SQLite
/// itself (page caches, sorters, prepared statements), apart from what hale's own code allocated.
pub(crate) fn sqlite_heap_bytes() -> (i64, i64) {
    let (mut current, mut highwater): (i64, i64) = (0, 0);
    // SAFETY: sqlite3_status64 reads SQLite's global counters under its own mutex and writes only the two
    // integers it is given, which live on this stack frame.
    unsafe {
        ffi::sqlite3_status64(
            ffi::SQLITE_STATUS_MEMORY_USED,
            &mut current,
            &mut highwater,
            1,
        );
    }
    (current, highwater)
}

/// The bytes of heap the connection's page caches hold now (`SQLITE_DBSTATUS_CACHE_USED`).
#[cfg(test)]
pub(crate) fn page_cache_bytes(handle: &mut LockedSqliteHandle<'_>) -> i64 {
    let db = handle.as_raw_handle();
    let (mut current, mut highwater): (c_int, c_int) = (0, 0);
    // SAFETY: `db` is an open connection held locked while `handle` lives; sqlite3_db_status writes only the
    // two integers it is given, which live on this stack frame.
    unsafe {
        ffi::sqlite3_db_status(
            db.as_ptr(),
            ffi::SQLITE_DBSTATUS_CACHE_USED,
            &mut current,
            &mut highwater,
            0,
        );
    }
    i64::from(current)
}

/// A statement prepared on a locked connection; finalized when dropped. It borrows the lock, so the
/// connection cannot be used by sqlx (or unlocked) while the statement lives.
pub(crate) struct Statement<'h> {
    db: NonNull<ffi::sqlite3>,
    stmt: NonNull<ffi::sqlite3_stmt>,
    _lock: PhantomData<&'h mut ()>,
}

impl<'h> Statement<'h> {
    pub(crate) fn prepare(
        handle: &'h mut LockedSqliteHandle<'_>,
        sql: &str,
    ) -> Result<Self, StoreError> {
        let db = handle.as_raw_handle();
        let len = c_int::try_from(sql.len()).map_err(|_| StoreError::Raw {
            code: ffi::SQLITE_TOOBIG,
            reason: "statement too long".to_owned(),
        })?;
        let mut stmt = ptr::null_mut();
        // SAFETY: `db` is an open connection, held locked (and so used by no other thread) for 'h; `sql`
        // is valid for `len` bytes; `stmt` is a valid place for the result.
        let rc = unsafe {
            ffi::sqlite3_prepare_v2(
                db.as_ptr(),
                sql.as_ptr().cast(),
                len,
                &mut stmt,
                ptr::null_mut(),
            )
        };
        if rc != ffi::SQLITE_OK {
            return Err(error(db, rc));
        }
        let stmt = NonNull::new(stmt).ok_or_else(|| StoreError::Raw {
            code: ffi::SQLITE_MISUSE,
            reason: "the statement is empty".to_owned(),
        })?;
        Ok(Self {
            db,
            stmt,
            _lock: PhantomData,
        })
    }

    /// Binds `value` to the parameter `?index` (from 1).
    pub(crate) fn bind_i64(&mut self, index: c_int, value: i64) -> Result<(), StoreError> {
        // SAFETY: `stmt` is a live prepared statement of this connection.
        let rc = unsafe { ffi::sqlite3_bind_int64(self.stmt.as_ptr(), index, value) };
        if rc == ffi::SQLITE_OK {
            Ok(())
        } else {
            Err(error(self.db, rc))
        }
    }

    /// Binds `value` to the parameter `?index` (from 1) as text; SQLite copies it.
    pub(crate) fn bind_text(&mut self, index: c_int, value: &str) -> Result<(), StoreError> {
        let len = c_int::try_from(value.len()).map_err(|_| StoreError::Raw {
            code: ffi::SQLITE_TOOBIG,
            reason: "parameter too long".to_owned(),
        })?;
        // SAFETY: `stmt` is a live prepared statement of this connection; `value` is valid for `len` bytes and
        // SQLITE_TRANSIENT makes SQLite copy it before the call returns.
        let rc = unsafe {
            ffi::sqlite3_bind_text(
                self.stmt.as_ptr(),
                index,
                value.as_ptr().cast(),
                len,
                ffi::SQLITE_TRANSIENT(),
            )
        };
        if rc == ffi::SQLITE_OK {
            Ok(())
        } else {
            Err(error(self.db, rc))
        }
    }

    /// Resets the statement after its last row, keeping its bindings, so it can run again with new ones.
    pub(crate) fn reset(&mut self) {
        // SAFETY: as in `bind_i64`. The return code repeats the last step's error, already reported.
        unsafe {
            ffi::sqlite3_reset(self.stmt.as_ptr());
        }
    }

    /// True when column `index` of the current row is NULL.
    pub(crate) fn column_is_null(&self, index: c_int) -> bool {
        // SAFETY: as in `column_i64`.
        unsafe { ffi::sqlite3_column_type(self.stmt.as_ptr(), index) == ffi::SQLITE_NULL }
    }

    /// Moves to the next row: true when there is one, false once the statement is done.
    pub(crate) fn step(&mut self) -> Result<bool, StoreError> {
        // SAFETY: as in `bind_i64`. A busy database is waited out by the connection's busy timeout.
        match unsafe { ffi::sqlite3_step(self.stmt.as_ptr()) } {
            ffi::SQLITE_ROW => Ok(true),
            ffi::SQLITE_DONE => Ok(false),
            rc => Err(error(self.db, rc)),
        }
    }

    /// Column `index` (from 0) of the current row as an integer (0 for NULL).
    pub(crate) fn column_i64(&self, index: c_int) -> i64 {
        // SAFETY: called only after `step` returned a row; an index out of range reads as NULL.
        unsafe { ffi::sqlite3_column_int64(self.stmt.as_ptr(), index) }
    }

    /// Column `index` of the current row as bytes (empty for NULL), valid until the next `step`.
    pub(crate) fn column_bytes(&self, index: c_int) -> &[u8] {
        // SAFETY: as in `column_i64`. `sqlite3_column_blob` first, then `sqlite3_column_bytes`, as SQLite
        // documents; the pointer stays valid until the statement steps again or is finalized, which both
        // need `&mut self`, so the slice cannot outlive it.
        unsafe {
            let data = ffi::sqlite3_column_blob(self.stmt.as_ptr(), index);
            let len = ffi::sqlite3_column_bytes(self.stmt.as_ptr(), index);
            match (data.is_null(), usize::try_from(len)) {
                (false, Ok(len)) => std::slice::from_raw_parts(data.cast::<u8>(), len),
                _ => &[],
            }
        }
    }
}

impl Drop for Statement<'_> {
    fn drop(&mut self) {
        // SAFETY: `stmt` was prepared by `prepare` and is finalized once, here.
        unsafe {
            ffi::sqlite3_finalize(self.stmt.as_ptr());
        }
    }
}

/// The connection's message for the failed call.
fn error(db: NonNull<ffi::sqlite3>, code: c_int) -> StoreError {
    // SAFETY: `db` is an open connection; SQLite returns a NUL-terminated message it owns, copied at once.
    let reason = unsafe {
        let message = ffi::sqlite3_errmsg(db.as_ptr());
        if message.is_null() {
            String::new()
        } else {
            CStr::from_ptr(message).to_string_lossy().into_owned()
        }
    };
    StoreError::Raw { code, reason }
}
