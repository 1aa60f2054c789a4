//! Counts of a target's scheduled checks over sliding time windows, kept as rings of time buckets rather than
//! as the checks themselves: what the `failures_within` and `slo_burn` rules read, in memory that depends on
//! the rules only, not on how often or how long a target is checked.
//!
//! Each distinct window length W gets a ring of `BUCKETS` (60) buckets, each W/60 wide (in milliseconds,
//! rounded down), aligned on the Unix epoch. A check adds to the bucket that holds its time; the ring moves
//! forward with the newest time it has seen, emptying the buckets it passes. A window read at `at` sums the
//! 60 buckets that end with the one holding `at`: the checks of the last W in whole buckets, so the oldest
//! bucket, which straddles the window's start, is left out. A window therefore reaches back between 59/60 of
//! W and W (a 5 min window: 295 to 300 s; 24 h: 23 h 36 min to 24 h), never further than W. Each ring keeps
//! running sums, so a read is O(1) (O(buckets skipped) when read ahead of the newest check).
//!
//! A check a little older than the newest one (a clock step back, checks finishing out of order) still
//! counts, in its own bucket, while that bucket is in the ring; one older than the ring counts for nothing.
//! Since when the record runs without a gap (no check for longer than the longest window empties it) is
//! kept to the millisecond: it says whether a window is covered.
//!
//! A bucket holds each count in one byte while every count of the record fits one (255), and the whole
//! record moves to two bytes a count the first time one would not: the counts are the same either way (a
//! two-byte count stops at `u16::MAX`). A target checked every `I` seconds puts at most
//! `floor(width / I) + 1` scheduled checks in a bucket `width` seconds wide (a few more after a clock step
//! back or checks finishing out of order), so the byte holds for every ring whose buckets are narrower than
//! 254 intervals: with the default rules (widest bucket 6 h / 60 = 360 s) every target checked every 2 s
//! or slower. A target checked every second on a 6 h window takes two bytes a count.

use chrono::{DateTime, Utc};

/// Buckets per window: a window's precision is 1/60 of its length.
pub const BUCKETS: usize = 60;

/// The window lengths the rings of every target cover, built once from the rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Windows {
    /// Per ring: the window in seconds and the width of its buckets in milliseconds.
    rings: Vec<(u64, i64)>,
    /// The longest window, in milliseconds (0 without any).
    longest_ms: i64,
}

impl Windows {
    /// One ring per distinct window length; zero-length windows are left out.
    pub fn new(windows_s: impl IntoIterator<Item = u64>) -> Self {
        let mut rings: Vec<(u64, i64)> = Vec::new();
        for window_s in windows_s {
            if window_s == 0 || rings.iter().any(|(w, _)| *w == window_s) {
                continue;
            }
            let window_ms = i64::try_from(window_s.saturating_mul(1_000)).unwrap_or(i64::MAX);
            // At least 1 ms wide, whatever the window.
            let width = (window_ms / BUCKETS as i64).max(1);
            rings.push((window_s, width));
        }
        let longest_ms = rings
            .iter()
            .map(|(_, width)| width * BUCKETS as i64)
            .max()
            .unwrap_or(0);
        Self { rings, longest_ms }
    }

    pub fn is_empty(&self) -> bool {
        self.rings.is_empty()
    }

    /// The longest window, in seconds (0 without any).
    pub fn longest_s(&self) -> u64 {
        self.rings.iter().map(|(w, _)| *w).max().unwrap_or(0)
    }

    /// The ring of a window length, when one was asked for.
    pub fn ring(&self, window_s: u64) -> Option<usize> {
        self.rings.iter().position(|(w, _)| *w == window_s)
    }

    /// The width of a ring's buckets, in milliseconds.
    pub fn bucket_ms(&self, ring: usize) -> Option<i64> {
        self.rings.get(ring).map(|(_, width)| *width)
    }

    /// The bytes one target's counts take with `N` counters per bucket, headers and sums included (not the
    /// map entry that holds them, nor the allocator's own overhead), while every count fits a byte (see the
    /// module doc): the usual case.
    pub fn bytes_per_target<const N: usize>(&self) -> usize {
        std::mem::size_of::<WindowCounts<N>>()
            + self.rings.len()
                * (std::mem::size_of::<[u32; N]>() + BUCKETS * std::mem::size_of::<[u8; N]>())
    }

    /// `bytes_per_target` once a count has outgrown a byte: the most one target's counts take.
    pub fn bytes_per_target_wide<const N: usize>(&self) -> usize {
        std::mem::size_of::<WindowCounts<N>>()
            + self.rings.len()
                * (std::mem::size_of::<[u32; N]>() + BUCKETS * std::mem::size_of::<[u16; N]>())
    }
}

/// One target's counts over every window of a `Windows`, `N` counters per bucket (the failure windows
/// count failures; the burn windows count checks and bad checks). Empty, and allocating nothing, until the
/// first check is added.
#[derive(Debug, Clone, Default)]
pub struct WindowCounts<const N: usize> {
    /// The newest check's time (ms): every ring's newest bucket holds it. None while empty.
    newest_ms: Option<i64>,
    /// The oldest check of the record since it last was empty (ms).
    since_ms: i64,
    /// Per ring, the sum of its buckets.
    sums: Box<[[u32; N]]>,
    /// Per ring, `BUCKETS` buckets; bucket number b (time / width) sits at b mod `BUCKETS`.
    buckets: Buckets<N>,
}

/// The buckets of every ring of a record: a byte a count until one count outgrows it, then two bytes.
#[derive(Debug, Clone)]
enum Buckets<const N: usize> {
    Narrow(Box<[[u8; N]]>),
    Wide(Box<[[u16; N]]>),
}

impl<const N: usize> Default for Buckets<N> {
    fn default() -> Self {
        Self::Narrow(Box::default())
    }
}

impl<const N: usize> Buckets<N> {
    fn len(&self) -> usize {
        match self {
            Self::Narrow(b) => b.len(),
            Self::Wide(b) => b.len(),
        }
    }

    /// `len` empty buckets, a byte a count.
    fn empty(len: usize) -> Self {
        Self::Narrow(vec![[0; N]; len].into_boxed_slice())
    }

    fn clear(&mut self) {
        match self {
            Self::Narrow(b) => b.fill([0; N]),
            Self::Wide(b) => b.fill([0; N]),
        }
    }

    fn get(&self, slot: usize) -> [u16; N] {
        match self {
            Self::Narrow(b) => b[slot].map(u16::from),
            Self::Wide(b) => b[slot],
        }
    }

    /// Empties a bucket and returns what it held.
    fn take(&mut self, slot: usize) -> [u16; N] {
        match self {
            Self::Narrow(b) => std::mem::replace(&mut b[slot], [0; N]).map(u16::from),
            Self::Wide(b) => std::mem::replace(&mut b[slot], [0; N]),
        }
    }

    /// Adds `counts` to a bucket, each count stopping at `u16::MAX`, and returns what the bucket took.
    fn add(&mut self, slot: usize, counts: [u16; N]) -> [u16; N] {
        let before = self.get(slot);
        let mut after = before;
        for (held, count) in after.iter_mut().zip(counts) {
            *held = held.saturating_add(count);
        }
        if let Self::Narrow(narrow) = self {
            match after.map(u8::try_from) {
                bytes if bytes.iter().all(Result::is_ok) => {
                    narrow[slot] = bytes.map(|b| b.unwrap_or(u8::MAX));
                }
                _ => {
                    // A count outgrew its byte: every bucket moves to two bytes, with the same counts.
                    let wide: Box<[[u16; N]]> =
                        narrow.iter().map(|bucket| bucket.map(u16::from)).collect();
                    *self = Self::Wide(wide);
                }
            }
        }
        if let Self::Wide(wide) = self {
            wide[slot] = after;
        }
        let mut took = after;
        for (t, b) in took.iter_mut().zip(before) {
            *t -= b;
        }
        took
    }

    #[cfg(test)]
    fn is_wide(&self) -> bool {
        matches!(self, Self::Wide(_))
    }
}

impl<const N: usize> WindowCounts<N> {
    /// Counts one check made at `at`: `counts` is added to the bucket of `at` in every ring. A bucket
    /// stops at `u16::MAX` (at one check a second, the widest bucket, 12 h, holds 43,200); it takes a byte a
    /// count until one count passes 255 (see the module doc).
    pub fn add(&mut self, windows: &Windows, at: DateTime<Utc>, counts: [u16; N]) {
        let at_ms = at.timestamp_millis();
        let rings = windows.rings.len();
        if rings == 0 {
            return;
        }
        if self.buckets.len() != rings * BUCKETS {
            // The first check (or rules that changed): start empty.
            self.sums = vec![[0; N]; rings].into_boxed_slice();
            self.buckets = Buckets::empty(rings * BUCKETS);
            self.newest_ms = None;
        }
        let newest = match self.newest_ms {
            None => {
                self.since_ms = at_ms;
                at_ms
            }
            Some(newest) if at_ms > newest => {
                if at_ms - newest > windows.longest_ms {
                    // Every check left every window: the record starts again.
                    self.sums.fill([0; N]);
                    self.buckets.clear();
                    self.since_ms = at_ms;
                } else {
                    for (ring, (_, width)) in windows.rings.iter().enumerate() {
                        self.advance(ring, *width, newest, at_ms);
                    }
                }
                at_ms
            }
            Some(newest) => {
                if at_ms < self.since_ms && newest - at_ms <= windows.longest_ms {
                    self.since_ms = at_ms;
                }
                newest
            }
        };
        self.newest_ms = Some(newest);
        for (ring, (_, width)) in windows.rings.iter().enumerate() {
            let bucket = at_ms.div_euclid(*width);
            if bucket <= newest.div_euclid(*width) - BUCKETS as i64 {
                // Older than this ring reaches back.
                continue;
            }
            let took = self.buckets.add(ring * BUCKETS + slot_of(bucket), counts);
            for (sum, took) in self.sums[ring].iter_mut().zip(took) {
                // The sum grows by what the bucket took, so it stays the sum of the buckets.
                *sum += u32::from(took);
            }
        }
    }

    /// Moves a ring's newest bucket from the one of `from_ms` to the one of `to_ms`, emptying the buckets
    /// it passes (at most the whole ring).
    fn advance(&mut self, ring: usize, width: i64, from_ms: i64, to_ms: i64) {
        let head = from_ms.div_euclid(width);
        let steps = (to_ms.div_euclid(width) - head).min(BUCKETS as i64);
        for step in 1..=steps {
            let emptied = self.buckets.take(ring * BUCKETS + slot_of(head + step));
            for (sum, count) in self.sums[ring].iter_mut().zip(emptied) {
                *sum = sum.saturating_sub(u32::from(count));
            }
        }
    }

    /// The counts of the ring `ring` over its window ending at `at` (whole buckets, see the module doc);
    /// zeros for an unknown ring or an empty record.
    pub fn sum(&self, windows: &Windows, ring: usize, at: DateTime<Utc>) -> [u32; N] {
        let (Some(newest), Some(width)) = (self.newest_ms, windows.bucket_ms(ring)) else {
            return [0; N];
        };
        if self.buckets.len() != windows.rings.len() * BUCKETS {
            return [0; N];
        }
        let head = newest.div_euclid(width);
        let skip = at.timestamp_millis().div_euclid(width) - head;
        if skip <= 0 {
            // `at` in the newest bucket, or behind it: every bucket of the ring is in the window.
            return self.sums[ring];
        }
        if skip >= BUCKETS as i64 {
            return [0; N];
        }
        // Read ahead of the newest check: the ring's oldest `skip` buckets are already out of the window.
        let mut sum = self.sums[ring];
        for bucket in head - BUCKETS as i64 + 1..=head - BUCKETS as i64 + skip {
            let slot = self.buckets.get(ring * BUCKETS + slot_of(bucket));
            for (total, count) in sum.iter_mut().zip(slot) {
                *total = total.saturating_sub(u32::from(count));
            }
        }
        sum
    }

    /// Since when the record runs without a gap as long as the longest window, as seen at `at`: None when
    /// empty, or when its newest check is older than the longest window before `at`.
    pub fn since(&self, windows: &Windows, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let newest = self.newest_ms?;
        if at.timestamp_millis() - newest > windows.longest_ms {
            return None;
        }
        DateTime::from_timestamp_millis(self.since_ms)
    }
}

/// Where bucket number `bucket` sits in its ring.
fn slot_of(bucket: i64) -> usize {
    // rem_euclid by a positive number is in 0..BUCKETS.
    bucket.rem_euclid(BUCKETS as i64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> DateTime<Utc> {
        // A valid timestamp, a multiple of every bucket width below.
        DateTime::from_timestamp(1_700_000_400, 0).unwrap()
    }

    fn at_ms(ms: i64) -> DateTime<Utc> {
        t0() + chrono::Duration::milliseconds(ms)
    }

    fn at(s: i64) -> DateTime<Utc> {
        at_ms(s * 1_000)
    }

    /// A 600 s window (10 s buckets) and a 60 s one (1 s buckets).
    fn windows() -> Windows {
        Windows::new([600, 60, 600, 0])
    }

    #[test]
    fn windows_are_distinct_and_buckets_are_a_sixtieth_of_each() {
        let w = windows();
        assert_eq!(w.ring(600), Some(0));
        assert_eq!(w.ring(60), Some(1));
        assert_eq!(w.ring(0), None);
        assert_eq!(w.bucket_ms(0), Some(10_000));
        assert_eq!(w.bucket_ms(1), Some(1_000));
        assert_eq!(w.longest_s(), 600);
        assert!(Windows::new([]).is_empty());
        // Not a multiple of 60 ms: rounded down, so the ring never reaches past the window.
        assert_eq!(Windows::new([7]).bucket_ms(0), Some(116));
    }

    #[test]
    fn a_window_sums_the_checks_of_its_last_buckets_across_rollover() {
        let w = windows();
        let mut c = WindowCounts::<2>::default();
        // One check every 10 s for 30 min, one in three bad: the ring wraps three times.
        for i in 0..180 {
            c.add(&w, at(10 * i), [1, u16::from(i % 3 == 0)]);
        }
        // At 1790 s, 600 s reads the buckets 1200..1790 (60 checks, 20 bad), 60 s reads 1740..1790.
        assert_eq!(c.sum(&w, 0, at(1_790)), [60, 20]);
        assert_eq!(c.sum(&w, 1, at(1_790)), [6, 2]);
        // A check exactly a window ago is left out (its bucket starts the window's oldest, partial bucket).
        let mut edge = WindowCounts::<1>::default();
        edge.add(&w, at(0), [1]);
        edge.add(&w, at(599), [1]);
        assert_eq!(edge.sum(&w, 0, at(599)), [2]);
        edge.add(&w, at(600), [1]);
        assert_eq!(
            edge.sum(&w, 0, at(600)),
            [2],
            "the check at 0 left the window"
        );
        // A check 5 s into the oldest bucket is left out too: the window reads between 590 and 600 s.
        let mut straddle = WindowCounts::<1>::default();
        straddle.add(&w, at(5), [1]);
        straddle.add(&w, at(604), [1]);
        assert_eq!(straddle.sum(&w, 0, at(604)), [1]);
    }

    #[test]
    fn a_read_ahead_of_the_newest_check_drops_the_buckets_that_left_the_window() {
        let w = windows();
        let mut c = WindowCounts::<1>::default();
        for i in 0..60 {
            c.add(&w, at(10 * i), [1]);
        }
        assert_eq!(c.sum(&w, 0, at(590)), [60]);
        // 100 s later nothing new: the 10 oldest buckets are out.
        assert_eq!(c.sum(&w, 0, at(690)), [50]);
        assert_eq!(c.sum(&w, 1, at(610)), [4], "560 to 590 s");
        assert_eq!(c.sum(&w, 0, at(1_190)), [0], "all of it out");
        assert_eq!(c.sum(&w, 0, at(5_000)), [0]);
        // A read does not change the record.
        assert_eq!(c.sum(&w, 0, at(590)), [60]);
    }

    #[test]
    fn a_long_gap_empties_every_ring_and_starts_the_record_again() {
        let w = windows();
        let mut c = WindowCounts::<2>::default();
        for i in 0..10 {
            c.add(&w, at(10 * i), [1, 1]);
        }
        assert_eq!(c.since(&w, at(90)), Some(at(0)));
        // A gap shorter than the longest window keeps the record going.
        c.add(&w, at(500), [1, 0]);
        assert_eq!(c.since(&w, at(500)), Some(at(0)));
        assert_eq!(c.sum(&w, 0, at(500)), [11, 10]);
        assert_eq!(c.sum(&w, 1, at(500)), [1, 0]);
        // A gap longer than it: nothing is left, and the record starts with the new check.
        c.add(&w, at(1_101), [1, 0]);
        assert_eq!(c.sum(&w, 0, at(1_101)), [1, 0]);
        assert_eq!(c.since(&w, at(1_101)), Some(at(1_101)));
        // Seen from far later without a check, the record is empty.
        assert_eq!(c.since(&w, at(1_702)), None);
        // A gap of several times the ring, one bucket at a time or not, leaves exact counts.
        let mut d = WindowCounts::<1>::default();
        d.add(&w, at(0), [1]);
        d.add(&w, at(590), [1]);
        d.add(&w, at(1_180), [1]);
        assert_eq!(d.sum(&w, 0, at(1_180)), [2]);
        assert_eq!(d.sum(&w, 1, at(1_180)), [1]);
        assert_eq!(d.since(&w, at(1_180)), Some(at(0)));
    }

    #[test]
    fn a_check_a_little_back_in_time_counts_and_one_older_than_the_ring_does_not() {
        let w = windows();
        let mut c = WindowCounts::<1>::default();
        c.add(&w, at(300), [1]);
        // 30 s back: in both rings.
        c.add(&w, at(270), [1]);
        assert_eq!(c.sum(&w, 0, at(300)), [2]);
        assert_eq!(c.sum(&w, 1, at(300)), [2]);
        assert_eq!(c.since(&w, at(300)), Some(at(270)));
        // 100 s back: too old for the 60 s ring, still in the 600 s one.
        c.add(&w, at(200), [1]);
        assert_eq!(c.sum(&w, 0, at(300)), [3]);
        assert_eq!(c.sum(&w, 1, at(300)), [2]);
        // Older than every ring: counts for nothing, and does not move the record's start.
        c.add(&w, at(-400), [1]);
        assert_eq!(c.sum(&w, 0, at(300)), [3]);
        assert_eq!(c.since(&w, at(300)), Some(at(200)));
        // A read behind the newest check sees the whole ring.
        assert_eq!(c.sum(&w, 0, at(250)), [3]);
        // Time going on after the step back: the buckets move on from the newest check, not the latest added.
        c.add(&w, at(310), [1]);
        assert_eq!(
            c.sum(&w, 1, at(310)),
            [3],
            "270, 300 and 310 in the last 60 s"
        );
    }

    #[test]
    fn a_bucket_stops_at_its_limit_and_the_sums_stay_exact() {
        let w = Windows::new([60]);
        let mut c = WindowCounts::<1>::default();
        for _ in 0..3 {
            c.add(&w, at_ms(0), [u16::MAX / 2]);
        }
        assert_eq!(c.sum(&w, 0, at_ms(0)), [u32::from(u16::MAX)]);
        // Once the bucket leaves the ring, the sum is back to what the ring holds.
        c.add(&w, at(60), [1]);
        assert_eq!(c.sum(&w, 0, at(60)), [1]);
    }

    #[test]
    fn the_record_is_small_and_allocated_on_the_first_check() {
        let w = Windows::new([300, 1_800, 3_600, 21_600]);
        let empty = WindowCounts::<2>::default();
        assert_eq!(empty.sum(&w, 0, at(0)), [0, 0]);
        assert_eq!(empty.since(&w, at(0)), None);
        // 4 rings of 60 buckets of 2 x u8, their sums, and the header; 2 x u16 once a count outgrows a byte.
        assert_eq!(
            w.bytes_per_target::<2>(),
            std::mem::size_of::<WindowCounts<2>>() + 4 * (8 + 60 * 2)
        );
        assert_eq!(
            w.bytes_per_target_wide::<2>(),
            std::mem::size_of::<WindowCounts<2>>() + 4 * (8 + 60 * 4)
        );
        assert!(w.bytes_per_target::<2>() < 600);
        assert!(w.bytes_per_target_wide::<2>() < 1_100);
    }

    #[test]
    fn a_bucket_at_a_bytes_maximum_stays_a_byte_and_one_more_widens_every_bucket_exactly() {
        let w = Windows::new([60, 600]);
        let mut c = WindowCounts::<2>::default();
        c.add(&w, at(0), [7, 3]);
        // 255 in one bucket of the 60 s ring (1 s wide): still a byte a count.
        for _ in 0..255 {
            c.add(&w, at(10), [1, 0]);
        }
        assert!(!c.buckets.is_wide());
        assert_eq!(c.sum(&w, 0, at(10)), [262, 3]);
        // The 256th: the whole record moves to two bytes, every count kept.
        c.add(&w, at(10), [1, 1]);
        assert!(c.buckets.is_wide());
        assert_eq!(c.sum(&w, 0, at(10)), [263, 4]);
        assert_eq!(c.sum(&w, 1, at(10)), [263, 4]);
        // The buckets leave the window with exactly what they held: at 60 s the check at 0 is out of the
        // 60 s ring, at 70 s the 256 at 10 s are too.
        assert_eq!(c.sum(&w, 0, at(60)), [256, 1]);
        c.add(&w, at(70), [1, 0]);
        assert_eq!(c.sum(&w, 0, at(70)), [1, 0]);
        assert_eq!(c.sum(&w, 1, at(70)), [264, 4]);
        // Emptied by a long gap, the record stays wide (no count is lost either way).
        c.add(&w, at(2_000), [1, 0]);
        assert_eq!(c.sum(&w, 1, at(2_000)), [1, 0]);
    }

    #[test]
    fn a_byte_holds_every_count_of_a_target_checked_every_two_seconds_on_a_six_hour_window() {
        // The default rules' widest bucket: 6 h / 60 = 360 s, 181 checks at one every 2 s.
        let w = Windows::new([300, 1_800, 3_600, 21_600]);
        let mut every_2s = WindowCounts::<2>::default();
        for i in 0..(21_600 / 2) {
            every_2s.add(&w, at(2 * i), [1, u16::from(i % 2 == 0)]);
        }
        assert!(!every_2s.buckets.is_wide());
        // Whole buckets: the 6 h ring reads the checks of its last 60 buckets (the oldest, partial one left out).
        let bucket = |s: i64| at(s).timestamp_millis().div_euclid(360_000);
        let in_ring = |s: i64, newest: i64| bucket(s) > bucket(newest) - 60;
        let checks = (0..21_600 / 2).filter(|i| in_ring(2 * i, 21_598)).count() as u32;
        let bad = (0..21_600 / 2)
            .filter(|i| i % 2 == 0 && in_ring(2 * i, 21_598))
            .count() as u32;
        assert!(checks > 10_600);
        assert_eq!(every_2s.sum(&w, 3, at(21_598)), [checks, bad]);
        assert_eq!(every_2s.sum(&w, 0, at(21_598)), [150, 75]);
        // Every second: 360 checks in a 360 s bucket, two bytes a count, the same sums.
        let mut every_1s = WindowCounts::<2>::default();
        for i in 0..21_600 {
            every_1s.add(&w, at(i), [1, 0]);
        }
        assert!(every_1s.buckets.is_wide());
        let checks = (0..21_600).filter(|s| in_ring(*s, 21_599)).count() as u32;
        assert!(checks > 21_200);
        assert_eq!(every_1s.sum(&w, 3, at(21_599)), [checks, 0]);
        assert_eq!(every_1s.sum(&w, 0, at(21_599)), [300, 0]);
    }
}
