//! Capped exponential backoff, the one retry delay in hale: a supervised child's restarts, an alert
//! notice's delivery retries and the health-check writer's retries after a failed write all wait
//! `first`, then twice that per further retry, at most `max`. No jitter (none of them ever had any).
//! Pure: it imports only `clock`, so every layer may use it, and the caller says how long a child ran
//! or which retry it is; `retry_at` puts a delay on a `Clock`'s instant.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::clock::add_saturating;

/// A retry schedule and how far along it the caller is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    first: Duration,
    max: Duration,
    /// A run at least this long starts the schedule over (`after_run`); None: only `reset` does.
    stable_after: Option<Duration>,
    /// Retries made since the schedule last started over: the next delay is `delay(retries)`.
    retries: u32,
}

impl Backoff {
    /// `first` for the first retry, doubling per retry up to `max` (raised to `first` when below it).
    pub const fn new(first: Duration, max: Duration) -> Self {
        let max = if max.as_nanos() < first.as_nanos() {
            first
        } else {
            max
        };
        Self {
            first,
            max,
            stable_after: None,
            retries: 0,
        }
    }

    /// The same schedule, started over by any run of at least `stable_after` (see `after_run`).
    pub const fn with_stable_after(mut self, stable_after: Duration) -> Self {
        self.stable_after = Some(stable_after);
        self
    }

    /// The delay before retry number `retry` (0: the first retry): `first` doubled `retry` times, at
    /// most `max`. Never overflows.
    pub fn delay(&self, retry: u32) -> Duration {
        let mut delay = self.first;
        for _ in 0..retry {
            // Zero stays zero and the cap stays the cap: stop early rather than loop `retry` times.
            if delay.is_zero() || delay >= self.max {
                break;
            }
            delay = delay.saturating_mul(2);
        }
        delay.min(self.max)
    }

    /// The instant on a `Clock` when retry number `retry` is due, if the attempt before it failed at `now`.
    pub fn retry_at(&self, now: DateTime<Utc>, retry: u32) -> DateTime<Utc> {
        add_saturating(now, self.delay(retry))
    }

    /// The delay before the next retry; moves the schedule on.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.delay(self.retries);
        self.retries = self.retries.saturating_add(1);
        delay
    }

    /// The delay before restarting something that ran for `ran_for` before it failed (zero when it never
    /// started): a run of at least `stable_after` starts the schedule over first. Moves the schedule on.
    pub fn after_run(&mut self, ran_for: Duration) -> Duration {
        if self.stable_after.is_some_and(|stable| ran_for >= stable) {
            self.reset();
        }
        self.next_delay()
    }

    /// Starts over: the next retry waits `first` again.
    pub fn reset(&mut self) {
        self.retries = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const QUICK: Duration = Duration::from_millis(100);

    fn restarts() -> Backoff {
        Backoff::new(Duration::from_millis(500), Duration::from_secs(4))
            .with_stable_after(Duration::from_secs(60))
    }

    fn ms(d: Duration) -> u64 {
        d.as_millis() as u64
    }

    #[test]
    fn quick_exits_double_the_delay_up_to_the_cap() {
        let mut b = restarts();
        let delays: Vec<u64> = (0..7).map(|_| ms(b.after_run(QUICK))).collect();
        assert_eq!(delays, [500, 1_000, 2_000, 4_000, 4_000, 4_000, 4_000]);
    }

    #[test]
    fn a_stable_run_starts_the_backoff_over() {
        let mut b = restarts();
        for _ in 0..4 {
            b.after_run(QUICK);
        }
        assert_eq!(b.after_run(Duration::from_secs(59)), Duration::from_secs(4));
        assert_eq!(
            b.after_run(Duration::from_secs(60)),
            Duration::from_millis(500),
            "ran exactly stable_after: stable"
        );
        assert_eq!(b.after_run(QUICK), Duration::from_millis(1_000));
    }

    #[test]
    fn without_stable_after_a_long_run_does_not_start_over() {
        let mut b = Backoff::new(Duration::from_millis(500), Duration::from_secs(4));
        b.after_run(QUICK);
        assert_eq!(b.after_run(Duration::MAX), Duration::from_millis(1_000));
    }

    #[test]
    fn reset_starts_over() {
        let mut b = restarts();
        b.after_run(QUICK);
        b.after_run(QUICK);
        b.reset();
        assert_eq!(b.after_run(QUICK), Duration::from_millis(500));
        assert_eq!(b.next_delay(), Duration::from_millis(1_000));
    }

    #[test]
    fn a_failed_start_counts_as_a_quick_exit() {
        let mut b = restarts();
        assert_eq!(b.after_run(Duration::ZERO), Duration::from_millis(500));
        assert_eq!(b.after_run(Duration::ZERO), Duration::from_millis(1_000));
    }

    #[test]
    fn the_cap_never_falls_below_the_first_delay_and_doubling_never_overflows() {
        let mut b = Backoff::new(Duration::from_secs(10), Duration::from_secs(1));
        assert_eq!(b.next_delay(), Duration::from_secs(10));
        assert_eq!(b.next_delay(), Duration::from_secs(10));
        let mut huge = Backoff::new(Duration::MAX / 2 + Duration::from_secs(1), Duration::MAX);
        huge.next_delay();
        assert_eq!(huge.next_delay(), Duration::MAX);
        assert_eq!(huge.delay(u32::MAX), Duration::MAX);
    }

    #[test]
    fn a_zero_first_delay_stays_zero_without_looping_per_retry() {
        let b = Backoff::new(Duration::ZERO, Duration::from_secs(1));
        assert_eq!(b.delay(u32::MAX), Duration::ZERO);
    }

    #[test]
    fn delivery_retries_keep_their_schedule() {
        // alerts.channels.delivery: initial_backoff_ms 500, max_backoff_s 3.
        let b = Backoff::new(Duration::from_millis(500), Duration::from_secs(3));
        let delays: Vec<u64> = [0, 1, 2, 3, 38].map(|n| ms(b.delay(n))).to_vec();
        assert_eq!(delays, [500, 1_000, 2_000, 3_000, 3_000]);
    }

    #[test]
    fn writer_retries_keep_their_schedule() {
        // store::writer: 250 ms, doubling, at most 5 s.
        let b = Backoff::new(Duration::from_millis(250), Duration::from_secs(5));
        let delays: Vec<u64> = (0..8).map(|n| ms(b.delay(n))).collect();
        assert_eq!(delays, [250, 500, 1_000, 2_000, 4_000, 5_000, 5_000, 5_000]);
    }

    #[test]
    fn retry_at_is_the_delay_after_now_and_saturates() {
        let b = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        let now = DateTime::<Utc>::UNIX_EPOCH;
        assert_eq!(b.retry_at(now, 2), now + chrono::Duration::seconds(4));
        let huge = Backoff::new(Duration::MAX, Duration::MAX);
        assert_eq!(huge.retry_at(now, 0), DateTime::<Utc>::MAX_UTC);
    }
}
