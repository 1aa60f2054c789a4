//! A sparse log-linear latency histogram: bucket `i` holds latencies in `[1.02^i, 1.02^(i+1))` µs, so any
//! quantile read back from it is within 1% of the exact value. Hourly rollups store it as a compact blob
//! and merge it across hours for SLO windows.

/// Each bucket is 2% wider than the one before; reporting its geometric middle bounds the error to 1%.
const GROWTH: f64 = 1.02;
/// Bytes per bucket in the first encoding (still read): index (u16) then count (u64), little-endian.
const ENTRY_LEN: usize = 10;
/// The first two bytes of the compact encoding: bucket 0xFFFF cannot occur (the widest latency, `u64::MAX` µs,
/// falls in bucket 2237), so no blob of the first encoding starts with them.
const COMPACT_MAGIC: [u8; 2] = [0xff, 0xff];

/// Non-empty buckets, sorted by bucket: a blob decodes into it with one copy, and two histograms merge in
/// one linear pass (an SLO window merges hundreds of hourly histograms per target). Each bucket is 8 bytes,
/// its index and count packed (`Bucket`), and the vector is sized to what it holds: the SLO ledger keeps one
/// per target for as long as hale runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LatencyHistogram {
    counts: Vec<Bucket>,
    /// The sum of the counts.
    total: u64,
}

/// One non-empty bucket: its index in the top 16 bits, its count in the low `COUNT_BITS`. Ordering the
/// packed values orders the buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Bucket(u64);

const COUNT_BITS: u32 = 48;
/// The most latencies one bucket counts: 2^48 - 1, nine years of a million checks a second in a single
/// bucket. Past it a bucket stays full, and `total` counts only what the buckets hold.
pub const MAX_BUCKET_COUNT: u64 = (1 << COUNT_BITS) - 1;

impl Bucket {
    fn new(index: u16, count: u64) -> Self {
        Self((u64::from(index) << COUNT_BITS) | count.min(MAX_BUCKET_COUNT))
    }

    fn index(self) -> u16 {
        // The top 16 bits of a u64: the shift leaves nothing above them.
        (self.0 >> COUNT_BITS) as u16
    }

    fn count(self) -> u64 {
        self.0 & MAX_BUCKET_COUNT
    }

    /// Adds `count`, up to `MAX_BUCKET_COUNT`; returns what was added.
    fn add(&mut self, count: u64) -> u64 {
        let before = self.count();
        let after = before.saturating_add(count).min(MAX_BUCKET_COUNT);
        self.0 += after - before;
        after - before
    }

    /// Takes out `count`, at most what the bucket holds (the caller checks).
    fn take(&mut self, count: u64) {
        self.0 -= count.min(self.count());
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("latency histogram blob of {len} bytes is unreadable: {reason}")]
pub struct DecodeError {
    len: usize,
    reason: &'static str,
}

impl LatencyHistogram {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn record(&mut self, latency_us: u64) {
        self.add(bucket_of(latency_us), 1);
    }

    fn find(&self, bucket: u16) -> Result<usize, usize> {
        self.counts.binary_search_by_key(&bucket, |b| b.index())
    }

    fn add(&mut self, bucket: u16, count: u64) {
        if count == 0 {
            return;
        }
        match self.find(bucket) {
            Ok(i) => self.total += self.counts[i].add(count),
            Err(i) => {
                if self.counts.len() == self.counts.capacity() {
                    // One bucket more, not doubled: a window's histogram (one per target in the SLO ledger)
                    // lives as long as hale, and once warm it gains a bucket only now and then.
                    self.counts.reserve_exact(1);
                }
                let entry = Bucket::new(bucket, count);
                self.total += entry.count();
                self.counts.insert(i, entry);
            }
        }
    }

    pub fn merge(&mut self, other: &LatencyHistogram) {
        if other.counts.is_empty() {
            return;
        }
        if self.counts.is_empty() {
            self.counts.clone_from(&other.counts);
            self.counts.shrink_to_fit();
            self.total = other.total;
            return;
        }
        if self.add_in_place(other) {
            return;
        }
        // Sized to the buckets of both: the result is kept as it is.
        let mut merged = Vec::with_capacity(self.union_len(other));
        let (mut a, mut b) = (
            self.counts.iter().copied().peekable(),
            other.counts.iter().copied().peekable(),
        );
        let mut total = 0;
        loop {
            let next = match (a.peek().copied(), b.peek().copied()) {
                (Some(x), Some(y)) if x.index() == y.index() => {
                    a.next();
                    b.next();
                    let mut sum = x;
                    sum.add(y.count());
                    sum
                }
                (Some(x), Some(y)) if x.index() < y.index() => {
                    a.next();
                    x
                }
                (_, Some(y)) => {
                    b.next();
                    y
                }
                (Some(x), None) => {
                    a.next();
                    x
                }
                (None, None) => break,
            };
            total += next.count();
            merged.push(next);
        }
        self.counts = merged;
        self.total = total;
    }

    /// How many buckets `self` and `other` have between them.
    fn union_len(&self, other: &LatencyHistogram) -> usize {
        let (mut i, mut j, mut n) = (0, 0, 0);
        while i < self.counts.len() && j < other.counts.len() {
            let (x, y) = (self.counts[i].index(), other.counts[j].index());
            i += usize::from(x <= y);
            j += usize::from(y <= x);
            n += 1;
        }
        n + (self.counts.len() - i) + (other.counts.len() - j)
    }

    /// Adds `other` without allocating when each of its buckets is already here (the usual case once a few
    /// hours of one target are merged); false, with nothing changed, otherwise.
    fn add_in_place(&mut self, other: &LatencyHistogram) -> bool {
        let mut at = 0;
        for bucket in &other.counts {
            match self.counts[at..].binary_search_by_key(&bucket.index(), |b| b.index()) {
                Ok(i) => at += i,
                Err(_) => return false,
            }
        }
        let mut at = 0;
        for bucket in &other.counts {
            while self.counts[at].index() != bucket.index() {
                at += 1;
            }
            self.total += self.counts[at].add(bucket.count());
        }
        true
    }

    /// Takes out one latency recorded before (`record`), for a window that slides: its oldest checks leave.
    /// False, with nothing changed, when no latency of that bucket is here (nothing to take out).
    pub fn unrecord(&mut self, latency_us: u64) -> bool {
        match self.find(bucket_of(latency_us)) {
            Ok(i) => {
                self.counts[i].take(1);
                if self.counts[i].count() == 0 {
                    self.counts.remove(i);
                }
                self.total -= 1;
                true
            }
            Err(_) => false,
        }
    }

    /// Takes out every latency of `other`, a part of this histogram (say an hour merged in before). Buckets
    /// left empty are dropped, so the result equals the histogram of what is left. False, with nothing
    /// changed, when `other` is not a part of this one.
    pub fn subtract(&mut self, other: &LatencyHistogram) -> bool {
        let mut at = 0;
        for bucket in &other.counts {
            match self.counts[at..].binary_search_by_key(&bucket.index(), |b| b.index()) {
                Ok(i) if self.counts[at + i].count() >= bucket.count() => at += i,
                _ => return false,
            }
        }
        let mut at = 0;
        for bucket in &other.counts {
            while self.counts[at].index() != bucket.index() {
                at += 1;
            }
            self.counts[at].take(bucket.count());
        }
        self.counts.retain(|b| b.count() > 0);
        self.total -= other.total;
        true
    }

    pub fn total(&self) -> u64 {
        self.total
    }

    /// The nearest-rank quantile (`q` in 0..=1) in microseconds, or `None` when empty.
    pub fn quantile_us(&self, q: f64) -> Option<f64> {
        if self.total == 0 {
            return None;
        }
        let q = q.clamp(0.0, 1.0);
        let rank = ((q * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for bucket in &self.counts {
            seen += bucket.count();
            if seen >= rank {
                return Some(representative(bucket.index()));
            }
        }
        self.counts.last().map(|b| representative(b.index()))
    }

    /// Latencies whose bucket's representative (the value `quantile_us` reports for it) is at most
    /// `limit_us`. A whole bucket is on one side of the limit, so for any `q`, `quantile_us(q) <= limit_us`
    /// exactly when this count reaches the quantile's rank: the p95 and the share under a target agree.
    pub fn count_at_or_under(&self, limit_us: f64) -> u64 {
        self.counts
            .iter()
            .take_while(|bucket| representative(bucket.index()) <= limit_us)
            .map(|bucket| bucket.count())
            .sum()
    }

    /// The compact encoding: `COMPACT_MAGIC`, then per non-empty bucket the gap from the previous bucket and
    /// the count, each a LEB128 varint (an hour of checks takes 2 to 3 bytes per bucket instead of 10).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(2 + self.counts.len() * 3);
        out.extend_from_slice(&COMPACT_MAGIC);
        let mut previous = 0u16;
        for bucket in &self.counts {
            put_varint(&mut out, u64::from(bucket.index() - previous));
            put_varint(&mut out, bucket.count());
            previous = bucket.index();
        }
        out
    }

    /// Reads either encoding: the compact one, or the fixed 10-byte entries older versions wrote.
    pub fn decode(blob: &[u8]) -> Result<Self, DecodeError> {
        match blob.strip_prefix(&COMPACT_MAGIC) {
            Some(rest) => Self::decode_compact(rest).map_err(|reason| DecodeError {
                len: blob.len(),
                reason,
            }),
            None => Self::decode_fixed(blob),
        }
    }

    fn decode_compact(mut rest: &[u8]) -> Result<Self, &'static str> {
        let mut histogram = Self {
            counts: Vec::with_capacity(rest.len() / 2),
            total: 0,
        };
        let mut bucket = 0u64;
        let mut first = true;
        while !rest.is_empty() {
            let gap = take_varint(&mut rest)?;
            let count = take_varint(&mut rest)?;
            if !first && gap == 0 {
                return Err("a bucket appears twice");
            }
            first = false;
            bucket = bucket.checked_add(gap).ok_or("a bucket index overflows")?;
            let index = u16::try_from(bucket).map_err(|_| "a bucket index overflows")?;
            if count == 0 {
                continue;
            }
            let entry = Bucket::new(index, count);
            histogram.counts.push(entry);
            histogram.total += entry.count();
        }
        Ok(histogram)
    }

    /// The first encoding: fixed 10-byte entries, in any order.
    fn decode_fixed(blob: &[u8]) -> Result<Self, DecodeError> {
        if !blob.len().is_multiple_of(ENTRY_LEN) {
            return Err(DecodeError {
                len: blob.len(),
                reason: "not a whole number of 10-byte entries",
            });
        }
        let mut histogram = Self {
            counts: Vec::with_capacity(blob.len() / ENTRY_LEN),
            total: 0,
        };
        let mut sorted = true;
        for entry in blob.chunks_exact(ENTRY_LEN) {
            let bucket = u16::from_le_bytes([entry[0], entry[1]]);
            let mut count = [0u8; 8];
            count.copy_from_slice(&entry[2..]);
            let count = u64::from_le_bytes(count);
            if count == 0 {
                continue;
            }
            sorted &= histogram
                .counts
                .last()
                .is_none_or(|last| last.index() < bucket);
            let entry = Bucket::new(bucket, count);
            histogram.counts.push(entry);
            histogram.total += entry.count();
        }
        if !sorted {
            // `encode` writes buckets in order; anything else is put in order rather than misread.
            let entries = std::mem::take(&mut histogram.counts);
            histogram.total = 0;
            for entry in entries {
                histogram.add(entry.index(), entry.count());
            }
        }
        Ok(histogram)
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn take_varint(rest: &mut &[u8]) -> Result<u64, &'static str> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let Some((&byte, tail)) = rest.split_first() else {
            return Err("it ends inside a number");
        };
        *rest = tail;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err("a number is longer than 64 bits")
}

fn bucket_of(latency_us: u64) -> u16 {
    if latency_us <= 1 {
        return 0;
    }
    let index = (latency_us as f64).ln() / GROWTH.ln();
    index.floor().min(f64::from(u16::MAX)) as u16
}

/// The geometric middle of a bucket (bucket 0 also holds 0 and 1 µs).
fn representative(bucket: u16) -> f64 {
    GROWTH.powf(f64::from(bucket) + 0.5)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taking_out_what_was_recorded_leaves_the_histogram_of_the_rest() {
        let latencies: Vec<u64> = (0..500).map(|i| 1 + i * 997 % 250_000).collect();
        let (old, new) = latencies.split_at(200);
        let mut all = LatencyHistogram::new();
        latencies.iter().for_each(|&us| all.record(us));
        let mut rest = LatencyHistogram::new();
        new.iter().for_each(|&us| rest.record(us));
        let mut part = LatencyHistogram::new();
        old.iter().for_each(|&us| part.record(us));

        let mut one_by_one = all.clone();
        assert!(old.iter().all(|&us| one_by_one.unrecord(us)));
        assert_eq!(one_by_one, rest);
        let mut at_once = all.clone();
        assert!(at_once.subtract(&part));
        assert_eq!(at_once, rest);
        // What was never recorded cannot be taken out, and nothing changes.
        let mut empty = LatencyHistogram::new();
        assert!(!empty.unrecord(5));
        assert!(!rest.clone().subtract(&all));
        let kept = rest.clone();
        assert!(!rest.subtract(&all));
        assert_eq!(rest, kept);
    }

    fn exact_quantile(sorted: &[u64], q: f64) -> f64 {
        let rank = ((q * sorted.len() as f64).ceil() as usize).max(1);
        sorted[rank - 1] as f64
    }

    #[test]
    fn p95_is_within_one_percent_of_the_exact_value() {
        // A deterministic spread from 300 µs to about 2 s, skewed like real latencies.
        let mut samples: Vec<u64> = (0..10_000u64)
            .map(|i| 300 + (i * i * 7919) % 2_000_000 / (1 + i % 7))
            .collect();
        let mut histogram = LatencyHistogram::new();
        for &s in &samples {
            histogram.record(s);
        }
        samples.sort_unstable();
        for q in [0.5, 0.9, 0.95, 0.99] {
            let exact = exact_quantile(&samples, q);
            let approx = histogram.quantile_us(q).unwrap();
            let error = (approx - exact).abs() / exact;
            assert!(
                error <= 0.01,
                "q={q}: exact {exact}, approx {approx}, error {error}"
            );
        }
    }

    #[test]
    fn merge_equals_recording_everything_in_one() {
        let mut a = LatencyHistogram::new();
        let mut b = LatencyHistogram::new();
        let mut all = LatencyHistogram::new();
        for i in 0..1000u64 {
            let latency = 1000 + i * 37;
            if i % 3 == 0 {
                a.record(latency)
            } else {
                b.record(latency)
            }
            all.record(latency);
        }
        a.merge(&b);
        assert_eq!(a, all);
        assert_eq!(a.total(), 1000);
    }

    #[test]
    fn merging_buckets_already_present_adds_in_place_and_equals_recording_everything() {
        let (mut wide, mut all) = (LatencyHistogram::new(), LatencyHistogram::new());
        // Steps narrower than the narrowest bucket (2% of 1,000 µs): every bucket in the range is present.
        for latency in (1_000..200_000u64).step_by(7) {
            wide.record(latency);
            all.record(latency);
        }
        let mut subset = LatencyHistogram::new();
        for latency in (5_000..150_000u64).step_by(4_999) {
            subset.record(latency);
            all.record(latency);
        }
        let buckets = wide.counts.len();
        let mut in_place = wide.clone();
        assert!(in_place.add_in_place(&subset));
        assert_eq!(in_place.counts.len(), buckets);
        assert_eq!(in_place, all);
        wide.merge(&subset);
        assert_eq!(wide, all);

        // A bucket not there yet: nothing is added in place, and merge takes the allocating path.
        let mut outlier = LatencyHistogram::new();
        outlier.record(9_000_000);
        all.record(9_000_000);
        let before = wide.clone();
        assert!(!wide.add_in_place(&outlier));
        assert_eq!(wide, before);
        wide.merge(&outlier);
        assert_eq!(wide, all);
    }

    #[test]
    fn encoding_round_trips_and_rejects_a_torn_blob() {
        let mut histogram = LatencyHistogram::new();
        for latency in [0, 1, 2, 150_000, 150_001, 60_000_000, u64::MAX] {
            histogram.record(latency);
        }
        let blob = histogram.encode();
        assert_eq!(LatencyHistogram::decode(&blob), Ok(histogram.clone()));
        assert_eq!(
            LatencyHistogram::decode(&blob[..blob.len() - 1])
                .unwrap_err()
                .to_string(),
            format!(
                "latency histogram blob of {} bytes is unreadable: it ends inside a number",
                blob.len() - 1
            )
        );
        // What older versions wrote still reads, and a torn one is refused.
        let fixed = histogram.encode_fixed();
        assert_eq!(LatencyHistogram::decode(&fixed), Ok(histogram));
        assert_eq!(
            LatencyHistogram::decode(&fixed[..fixed.len() - 1])
                .unwrap_err()
                .to_string(),
            format!(
                "latency histogram blob of {} bytes is unreadable: not a whole number of 10-byte entries",
                fixed.len() - 1
            )
        );
    }

    #[test]
    fn an_hour_of_checks_takes_a_few_bytes_per_bucket() {
        let mut histogram = LatencyHistogram::new();
        for i in 0..3_600u64 {
            histogram.record(8_000 + (i * 7_919) % 70_000);
        }
        let buckets = histogram.counts.len();
        let blob = histogram.encode();
        assert!(
            blob.len() <= 2 + 3 * buckets,
            "{} bytes for {buckets} buckets",
            blob.len()
        );
        assert!(blob.len() * 3 < histogram.encode_fixed().len());
        assert_eq!(LatencyHistogram::decode(&blob), Ok(histogram));
    }

    impl LatencyHistogram {
        /// The first encoding, as older versions wrote it.
        fn encode_fixed(&self) -> Vec<u8> {
            let mut out = Vec::new();
            for bucket in &self.counts {
                out.extend_from_slice(&bucket.index().to_le_bytes());
                out.extend_from_slice(&bucket.count().to_le_bytes());
            }
            out
        }
    }

    #[test]
    fn a_bucket_takes_8_bytes_and_the_buckets_are_sized_to_what_they_hold() {
        assert_eq!(std::mem::size_of::<Bucket>(), 8);
        let mut recorded = LatencyHistogram::new();
        for latency in (1_000..400_000u64).step_by(1_013) {
            recorded.record(latency);
        }
        assert_eq!(recorded.counts.capacity(), recorded.counts.len());
        // A merge that adds buckets allocates the union, no more.
        let mut wide = LatencyHistogram::new();
        for latency in (300_000..3_000_000u64).step_by(9_973) {
            wide.record(latency);
        }
        let mut merged = recorded.clone();
        merged.merge(&wide);
        assert_eq!(merged.counts.capacity(), merged.counts.len());
        assert!(merged.counts.len() < recorded.counts.len() + wide.counts.len());
        let mut empty = LatencyHistogram::new();
        empty.merge(&wide);
        assert_eq!(empty.counts.capacity(), empty.counts.len());
        assert_eq!(empty, wide);
    }

    #[test]
    fn counts_past_u16_and_u32_are_kept_exactly() {
        let (past_u16, past_u32) = (u64::from(u16::MAX) + 2, u64::from(u32::MAX) + 3);
        let mut histogram = LatencyHistogram::new();
        histogram.add(bucket_of(5_000), past_u16);
        histogram.add(bucket_of(90_000), past_u32);
        histogram.record(5_000);
        assert_eq!(histogram.total(), past_u16 + past_u32 + 1);
        assert_eq!(histogram.count_at_or_under(10_000.0), past_u16 + 1);
        let blob = histogram.encode();
        assert_eq!(LatencyHistogram::decode(&blob), Ok(histogram.clone()));
        // Merged and taken out again, across the u32 boundary of one bucket.
        let mut twice = histogram.clone();
        twice.merge(&histogram);
        assert_eq!(twice.total(), 2 * histogram.total());
        assert_eq!(twice.count_at_or_under(10_000.0), 2 * (past_u16 + 1));
        assert!(twice.subtract(&histogram));
        assert_eq!(twice, histogram);
        assert!(histogram.unrecord(5_000));
        assert_eq!(histogram.count_at_or_under(10_000.0), past_u16);
    }

    #[test]
    fn the_largest_latency_bucket_packs_and_a_full_bucket_stays_full() {
        // The widest latency there is, and the largest index a blob can name.
        let mut histogram = LatencyHistogram::new();
        histogram.record(u64::MAX);
        histogram.add(u16::MAX, 3);
        histogram.record(1);
        assert_eq!(histogram.counts[1].index(), bucket_of(u64::MAX));
        assert_eq!(histogram.counts[2].index(), u16::MAX);
        assert_eq!(histogram.counts[2].count(), 3);
        assert_eq!(histogram.quantile_us(1.0), Some(representative(u16::MAX)));
        assert_eq!(
            LatencyHistogram::decode(&histogram.encode()),
            Ok(histogram.clone())
        );
        assert!(histogram.unrecord(u64::MAX));
        assert_eq!(histogram.total(), 4);

        // Past `MAX_BUCKET_COUNT` a bucket stays full, and the total counts what the buckets hold.
        let mut full = LatencyHistogram::new();
        full.add(u16::MAX, MAX_BUCKET_COUNT - 1);
        full.add(u16::MAX, 5);
        full.record(1);
        assert_eq!(full.counts[1].index(), u16::MAX);
        assert_eq!(full.counts[1].count(), MAX_BUCKET_COUNT);
        assert_eq!(full.total(), MAX_BUCKET_COUNT + 1);
        let mut merged = full.clone();
        merged.merge(&full);
        assert_eq!(merged.total(), MAX_BUCKET_COUNT + 2);
        assert_eq!(LatencyHistogram::decode(&full.encode()), Ok(full));
    }

    #[test]
    fn an_empty_histogram_has_no_quantile() {
        assert_eq!(LatencyHistogram::new().quantile_us(0.95), None);
    }

    #[test]
    fn merging_adds_bucket_by_bucket_and_decoding_tolerates_any_order() {
        let mut a = LatencyHistogram::new();
        let mut b = LatencyHistogram::new();
        for us in [100, 5_000, 5_000, 200_000] {
            a.record(us);
        }
        for us in [5_000, 1_000_000, 50] {
            b.record(us);
        }
        let mut all = LatencyHistogram::new();
        for us in [100, 5_000, 5_000, 200_000, 5_000, 1_000_000, 50] {
            all.record(us);
        }
        let mut merged = a.clone();
        merged.merge(&b);
        assert_eq!(merged, all);
        assert_eq!(merged.total(), 7);
        // Entries written out of order (not by `encode`) still decode to the same histogram.
        let blob = all.encode_fixed();
        let mut entries: Vec<&[u8]> = blob.chunks_exact(ENTRY_LEN).collect();
        entries.reverse();
        let reversed: Vec<u8> = entries.concat();
        assert_eq!(LatencyHistogram::decode(&reversed).unwrap(), all);
        assert_eq!(LatencyHistogram::decode(&blob).unwrap(), all);
    }
}
