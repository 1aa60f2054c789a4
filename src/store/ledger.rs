//! What the SLO ledger reads as its window slides: the raw scheduled checks of many (target, time range)
//! pairs, each an index seek, all through one prepared statement run again per range.

use std::ffi::c_int;

use crate::records::{CheckSource, Outcome};
use crate::store::codes::{decode, outcome_sql, source_sql, Code};
use crate::store::raw::Statement;
use crate::store::slo::ScheduledCheck;
use crate::store::{Store, StoreError};

/// One target's checks over `[from_ms, until_ms)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckRange<'a> {
    pub target: &'a str,
    pub from_ms: i64,
    pub until_ms: i64,
}

/// Ranges read under one hold of a connection: the read runs on the caller's thread, so it gives the
/// runtime a turn between chunks.
const RANGES_PER_HOLD: usize = 2_000;

/// A range of one target's key in `checks`; the source is filtered after the seek (scheduled checks are
/// almost all of them).
fn select_range() -> String {
    format!(
        "SELECT checked_at_ms, {}, latency_us FROM checks
         WHERE target_id = (SELECT id FROM targets WHERE name = ?1)
           AND checked_at_ms >= ?2 AND checked_at_ms < ?3 AND {} = {}
         ORDER BY checked_at_ms",
        outcome_sql("state"),
        source_sql("state"),
        CheckSource::Monitor.code()
    )
}

impl Store {
    /// The raw scheduled (`monitor`) checks of each range, oldest first, in the order of `ranges`. An empty
    /// range (`from_ms >= until_ms`) reads nothing.
    pub async fn scheduled_checks_in_ranges(
        &self,
        ranges: &[CheckRange<'_>],
    ) -> Result<Vec<Vec<ScheduledCheck>>, StoreError> {
        let mut out = Vec::with_capacity(ranges.len());
        for chunk in ranges.chunks(RANGES_PER_HOLD) {
            // Stepped on the connection's own handle: through sqlx, each query costs a round trip to the
            // connection's thread, more than the seek itself.
            let mut conn = self.pool().acquire().await?;
            let mut handle = conn.lock_handle().await?;
            read_chunk(&mut handle, chunk, &mut out)?;
            drop(handle);
            drop(conn);
            tokio::task::yield_now().await;
        }
        Ok(out)
    }
}

/// Reads each range of `chunk` with one statement, appending to `out`.
fn read_chunk(
    handle: &mut sqlx::sqlite::LockedSqliteHandle<'_>,
    chunk: &[CheckRange<'_>],
    out: &mut Vec<Vec<ScheduledCheck>>,
) -> Result<(), StoreError> {
    let mut rows = Statement::prepare(handle, &select_range())?;
    for range in chunk {
        let mut checks = Vec::new();
        if range.from_ms < range.until_ms {
            rows.bind_text(1, range.target)?;
            rows.bind_i64(2, range.from_ms)?;
            rows.bind_i64(3, range.until_ms)?;
            let read = read_range(&mut rows, &mut checks);
            rows.reset();
            read?;
        }
        out.push(checks);
    }
    Ok(())
}

fn read_range(rows: &mut Statement<'_>, into: &mut Vec<ScheduledCheck>) -> Result<(), StoreError> {
    const AT: c_int = 0;
    const OUTCOME: c_int = 1;
    const LATENCY: c_int = 2;
    while rows.step()? {
        let Some(outcome) = decode::<Outcome>(rows.column_i64(OUTCOME)) else {
            continue;
        };
        let latency_us = if rows.column_is_null(LATENCY) {
            None
        } else {
            u64::try_from(rows.column_i64(LATENCY)).ok()
        };
        into.push(ScheduledCheck {
            at_ms: rows.column_i64(AT),
            outcome,
            latency_us,
        });
    }
    Ok(())
}
