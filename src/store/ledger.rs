//! What the SLO ledger reads as its window slides: the raw scheduled checks of many (target, time range)
//! pairs, each an index seek, all through one prepared statement run again per range.
//!
//! A range that moves forward pass after pass over rows that no longer change (a trailing edge of the
//! ledger, at least an hour behind what it counts) can be read ahead: one seek takes up to
//! `ReadAhead::rows` rows past the range, kept in a small buffer per slot, and the next passes take their
//! rows from it, seeking again only once it runs out.

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

/// Read-ahead buffers, one per slot (the caller gives each range that moves forward its own slot, and keeps
/// a slot for one target). A slot holds at most `rows` checks of 8 bytes, and its bookkeeping (40 bytes).
#[derive(Debug, Clone)]
pub struct ReadAhead {
    rows: usize,
    slots: Vec<Slot>,
}

/// What one slot knows: every scheduled check of its target in `[from_ms, until_ms)` is in `rows[next..]`,
/// oldest first. Its times are offsets from `base_ms`: a slot knows at most `u32::MAX` ms (49 days) past
/// it.
#[derive(Debug, Clone, Default)]
struct Slot {
    base_ms: i64,
    from_after_base: u32,
    until_after_base: u32,
    /// Exactly the rows read ahead: a buffer of `rows` checks at most.
    rows: Box<[Ahead]>,
    next: u32,
}

impl Slot {
    /// A slot that knows `[from_ms, until_ms)` (`until_ms` cut to what an offset from `base_ms` holds).
    fn new(base_ms: i64, from_ms: i64, until_ms: i64, rows: Box<[Ahead]>) -> Self {
        let offset = |ms: i64| u32::try_from(ms.saturating_sub(base_ms).max(0)).unwrap_or(u32::MAX);
        Self {
            base_ms,
            from_after_base: offset(from_ms),
            until_after_base: offset(until_ms),
            rows,
            next: 0,
        }
    }

    fn known_from_ms(&self) -> i64 {
        self.base_ms + i64::from(self.from_after_base)
    }

    fn known_until_ms(&self) -> i64 {
        self.base_ms + i64::from(self.until_after_base)
    }
}

/// One check read ahead, packed: 8 bytes against `ScheduledCheck`'s 32.
#[derive(Debug, Clone, Copy)]
struct Ahead {
    after_base_ms: u32,
    /// The outcome (its place in `Outcome::ALL`) in the top `OUTCOME_BITS`, the latency in µs below it
    /// (`NO_LATENCY` for none).
    outcome_latency: u32,
}

/// Bits of `Ahead::outcome_latency` that hold the outcome: room for 8, `Outcome::ALL` has 5.
const OUTCOME_BITS: u32 = 3;
const LATENCY_BITS: u32 = u32::BITS - OUTCOME_BITS;
/// No latency; also the mask of the latency bits. A check's latency is at most the probe's timeout (60 s
/// at most, 26 bits); anything from here on (537 s) does not pack.
const NO_LATENCY: u32 = (1 << LATENCY_BITS) - 1;

impl Ahead {
    /// None when the check does not fit (more than 49 days after `base_ms`, a latency of 537 s or more):
    /// the read-ahead stops before it.
    fn pack(base_ms: i64, check: &ScheduledCheck) -> Option<Self> {
        let latency_us = match check.latency_us {
            None => NO_LATENCY,
            Some(us) => u32::try_from(us).ok().filter(|us| *us < NO_LATENCY)?,
        };
        let outcome = Outcome::ALL.iter().position(|o| *o == check.outcome)?;
        Some(Self {
            after_base_ms: u32::try_from(check.at_ms.checked_sub(base_ms)?).ok()?,
            outcome_latency: (u32::try_from(outcome).ok()? << LATENCY_BITS) | latency_us,
        })
    }

    fn unpack(self, base_ms: i64) -> ScheduledCheck {
        let latency_us = self.outcome_latency & NO_LATENCY;
        let outcome = (self.outcome_latency >> LATENCY_BITS) as usize;
        ScheduledCheck {
            at_ms: base_ms + i64::from(self.after_base_ms),
            // `pack` stored a place in `Outcome::ALL`, so the index holds; `Error` is never reached.
            outcome: Outcome::ALL.get(outcome).copied().unwrap_or(Outcome::Error),
            latency_us: (latency_us != NO_LATENCY).then_some(u64::from(latency_us)),
        }
    }
}

impl ReadAhead {
    /// Buffers of at most `rows` checks each; with 0, a range given a slot is read as if it had none.
    pub fn new(rows: usize) -> Self {
        Self {
            // A slot counts its rows in a u32.
            rows: rows.min(u32::MAX as usize),
            slots: Vec::new(),
        }
    }

    /// The checks a slot holds at most.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The bytes one slot takes at most: its bookkeeping and a full buffer.
    pub fn bytes_per_slot(&self) -> usize {
        std::mem::size_of::<Slot>() + self.rows * std::mem::size_of::<Ahead>()
    }

    /// Makes room for `slots` slots, exactly: the table lives as long as its reader (a slot grown into
    /// later doubles it).
    pub fn reserve_slots(&mut self, slots: usize) {
        if self.slots.len() < slots {
            self.slots.reserve_exact(slots - self.slots.len());
            self.slots.resize_with(slots, Slot::default);
        }
    }

    /// The slots the table has room for.
    pub fn slot_capacity(&self) -> usize {
        self.slots.capacity()
    }

    fn slot(&mut self, index: usize) -> &mut Slot {
        if self.slots.len() <= index {
            self.slots.resize_with(index + 1, Slot::default);
        }
        &mut self.slots[index]
    }
}

/// The SQL: a range of one target's key in `checks`, at most `?4` rows (all for a negative `?4`); the
/// source is filtered after the seek (scheduled checks are almost all of them).
fn select_range() -> String {
    format!(
        "SELECT checked_at_ms, {}, latency_us FROM checks
         WHERE target_id = (SELECT id FROM targets WHERE name = ?1)
           AND checked_at_ms >= ?2 AND checked_at_ms < ?3 AND {} = {}
         ORDER BY checked_at_ms LIMIT ?4",
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
        let slots = vec![None; ranges.len()];
        self.scheduled_checks_ahead(ranges, &slots, &mut ReadAhead::new(0), i64::MIN)
            .await
    }

    /// As `scheduled_checks_in_ranges`, with the ranges that have a slot in `slots` (same length as
    /// `ranges`) read through `ahead`'s buffer of that slot. `horizon_ms`: every check before it is stored
    /// and none will be added, changed or removed while the slots are used (a buffer never reads past it);
    /// a slot's range must end at or before it, else it is read as if it had no slot. A slot's range that
    /// does not start where its last one ended drops what the slot held.
    pub async fn scheduled_checks_ahead(
        &self,
        ranges: &[CheckRange<'_>],
        slots: &[Option<usize>],
        ahead: &mut ReadAhead,
        horizon_ms: i64,
    ) -> Result<Vec<Vec<ScheduledCheck>>, StoreError> {
        let mut out = Vec::with_capacity(ranges.len());
        for (chunk, chunk_slots) in ranges
            .chunks(RANGES_PER_HOLD)
            .zip(slots.chunks(RANGES_PER_HOLD))
        {
            // Stepped on the connection's own handle: through sqlx, each query costs a round trip to the
            // connection's thread, more than the seek itself.
            let mut conn = self.pool().acquire().await?;
            let mut handle = conn.lock_handle().await?;
            read_chunk(&mut handle, chunk, chunk_slots, ahead, horizon_ms, &mut out)?;
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
    slots: &[Option<usize>],
    ahead: &mut ReadAhead,
    horizon_ms: i64,
    out: &mut Vec<Vec<ScheduledCheck>>,
) -> Result<(), StoreError> {
    let mut rows = Statement::prepare(handle, &select_range())?;
    for (range, slot) in chunk.iter().zip(slots) {
        let mut checks = Vec::new();
        match slot {
            Some(slot) if range.until_ms <= horizon_ms && ahead.rows > 0 => {
                let limit = ahead.rows;
                read_ahead(
                    &mut rows,
                    range,
                    limit,
                    ahead.slot(*slot),
                    horizon_ms,
                    &mut checks,
                )?;
            }
            _ => {
                read(&mut rows, range, -1, &mut checks)?;
            }
        }
        out.push(checks);
    }
    Ok(())
}

/// The checks of `range` into `out`, from `slot` and, as it runs out, from reads of up to `limit` rows
/// ahead (never at or past `horizon_ms`).
fn read_ahead(
    rows: &mut Statement<'_>,
    range: &CheckRange<'_>,
    limit: usize,
    slot: &mut Slot,
    horizon_ms: i64,
    out: &mut Vec<ScheduledCheck>,
) -> Result<(), StoreError> {
    if slot.known_from_ms() != range.from_ms {
        // Not where the slot's last range ended: what it holds is of no use.
        *slot = Slot::new(range.from_ms, range.from_ms, range.from_ms, Box::default());
    }
    if range.from_ms >= range.until_ms {
        return Ok(());
    }
    loop {
        while let Some(check) = slot
            .rows
            .get(slot.next as usize)
            .map(|a| a.unpack(slot.base_ms))
        {
            if check.at_ms >= range.until_ms {
                break;
            }
            out.push(check);
            slot.next += 1;
        }
        if slot.known_until_ms() >= range.until_ms {
            // Within what the slot knows, so the offset holds.
            slot.from_after_base = u32::try_from(range.until_ms - slot.base_ms).unwrap_or(u32::MAX);
            return Ok(());
        }
        // Everything held is taken: read on from where the slot's knowledge ends.
        let start = slot.known_until_ms();
        let mut fresh = Vec::new();
        let read_ahead = CheckRange {
            target: range.target,
            from_ms: start,
            until_ms: horizon_ms,
        };
        let limit_i64 = i64::try_from(limit).unwrap_or(i64::MAX);
        let (stepped, last_ms) = read(rows, &read_ahead, limit_i64, &mut fresh)?;
        // Known up to the horizon when the read ended before the limit; else up to the last row's time, the
        // rows at that very time left out (more may share it past the limit).
        let mut known_until = if stepped < limit { horizon_ms } else { last_ms };
        // What an offset from `start` holds: the slot knows no further (read again from there).
        known_until = known_until.min(start.saturating_add(i64::from(u32::MAX)));
        let mut packed = Vec::with_capacity(fresh.len());
        for check in &fresh {
            if check.at_ms >= known_until {
                break;
            }
            match Ahead::pack(start, check) {
                Some(a) => packed.push(a),
                None => {
                    known_until = check.at_ms;
                    break;
                }
            }
        }
        if known_until <= start {
            // No progress (more than `limit` checks at one instant, or one that does not pack): this
            // range is read whole, and the slot starts again after it.
            let whole = CheckRange {
                from_ms: start,
                ..*range
            };
            read(rows, &whole, -1, out)?;
            *slot = Slot::new(
                range.until_ms,
                range.until_ms,
                range.until_ms,
                Box::default(),
            );
            return Ok(());
        }
        *slot = Slot::new(start, start, known_until, packed.into_boxed_slice());
    }
}

/// Runs `rows` over `range`, at most `limit` rows (all when negative), appending the checks to `into`.
/// Returns how many rows it stepped through and the time of the last (0 when none).
fn read(
    rows: &mut Statement<'_>,
    range: &CheckRange<'_>,
    limit: i64,
    into: &mut Vec<ScheduledCheck>,
) -> Result<(usize, i64), StoreError> {
    if range.from_ms >= range.until_ms {
        return Ok((0, 0));
    }
    rows.bind_text(1, range.target)?;
    rows.bind_i64(2, range.from_ms)?;
    rows.bind_i64(3, range.until_ms)?;
    rows.bind_i64(4, limit)?;
    let read = read_rows(rows, into);
    rows.reset();
    read
}

fn read_rows(
    rows: &mut Statement<'_>,
    into: &mut Vec<ScheduledCheck>,
) -> Result<(usize, i64), StoreError> {
    const AT: c_int = 0;
    const OUTCOME: c_int = 1;
    const LATENCY: c_int = 2;
    let (mut stepped, mut last_ms) = (0, 0);
    while rows.step()? {
        stepped += 1;
        last_ms = rows.column_i64(AT);
        let Some(outcome) = decode::<Outcome>(rows.column_i64(OUTCOME)) else {
            continue;
        };
        let latency_us = if rows.column_is_null(LATENCY) {
            None
        } else {
            u64::try_from(rows.column_i64(LATENCY)).ok()
        };
        into.push(ScheduledCheck {
            at_ms: last_ms,
            outcome,
            latency_us,
        });
    }
    Ok((stepped, last_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_check_read_ahead_comes_back_as_it_was_or_does_not_pack() {
        assert_eq!(std::mem::size_of::<Ahead>(), 8);
        let base = 1_700_000_000_000;
        for outcome in Outcome::ALL {
            for latency_us in [
                None,
                Some(0),
                Some(1),
                Some(60_000_000),
                Some(u64::from(NO_LATENCY) - 1),
            ] {
                let check = ScheduledCheck {
                    at_ms: base + 10_000,
                    outcome,
                    latency_us,
                };
                let packed = Ahead::pack(base, &check).unwrap();
                assert_eq!(packed.unpack(base), check);
            }
        }
        let too_slow = ScheduledCheck {
            at_ms: base,
            outcome: Outcome::Timeout,
            latency_us: Some(u64::from(NO_LATENCY)),
        };
        assert!(Ahead::pack(base, &too_slow).is_none());
        let too_late = ScheduledCheck {
            at_ms: base + i64::from(u32::MAX) + 1,
            outcome: Outcome::Up,
            latency_us: None,
        };
        assert!(Ahead::pack(base, &too_late).is_none());
        let before = ScheduledCheck {
            at_ms: base - 1,
            ..too_late
        };
        assert!(Ahead::pack(base, &before).is_none());
    }
}
