//! The restart delay of one supervised child: capped exponential, starting over once the child proved
//! stable. Pure: the caller says how long the child ran.

use std::time::Duration;

use crate::config::RunConfig;

/// How long hale waits before the next start of a child that exited (or could not be started).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    stable_after: Duration,
    /// The delay the next quick exit gets.
    next: Duration,
}

impl Backoff {
    /// `initial` for the first restart, doubling per quick exit up to `max`; a child that ran at least
    /// `stable_after` starts over at `initial`.
    pub fn new(initial: Duration, max: Duration, stable_after: Duration) -> Self {
        let max = max.max(initial);
        Self {
            initial,
            max,
            stable_after,
            next: initial,
        }
    }

    pub fn from_config(run: &RunConfig) -> Self {
        Self::new(
            Duration::from_millis(run.backoff_initial_ms),
            Duration::from_secs(run.backoff_max_s),
            Duration::from_secs(run.stable_after_s),
        )
    }

    /// The delay before restarting a child that exited after running `ran_for` (zero when it could not be
    /// started at all); moves the backoff on.
    pub fn after_exit(&mut self, ran_for: Duration) -> Duration {
        if ran_for >= self.stable_after {
            self.next = self.initial;
        }
        let delay = self.next;
        self.next = self.next.saturating_mul(2).min(self.max);
        delay
    }

    /// Starts over: the next quick exit waits `initial` again (a restart asked by heal does this).
    pub fn reset(&mut self) {
        self.next = self.initial;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const QUICK: Duration = Duration::from_millis(100);

    fn backoff() -> Backoff {
        Backoff::new(
            Duration::from_millis(500),
            Duration::from_secs(4),
            Duration::from_secs(60),
        )
    }

    #[test]
    fn quick_exits_double_the_delay_up_to_the_cap() {
        let mut b = backoff();
        let delays: Vec<u64> = (0..7)
            .map(|_| b.after_exit(QUICK).as_millis() as u64)
            .collect();
        assert_eq!(delays, [500, 1_000, 2_000, 4_000, 4_000, 4_000, 4_000]);
    }

    #[test]
    fn a_stable_run_starts_the_backoff_over() {
        let mut b = backoff();
        for _ in 0..4 {
            b.after_exit(QUICK);
        }
        assert_eq!(
            b.after_exit(Duration::from_secs(59)),
            Duration::from_secs(4)
        );
        assert_eq!(
            b.after_exit(Duration::from_secs(60)),
            Duration::from_millis(500),
            "ran exactly stable_after: stable"
        );
        assert_eq!(b.after_exit(QUICK), Duration::from_millis(1_000));
    }

    #[test]
    fn reset_starts_over() {
        let mut b = backoff();
        b.after_exit(QUICK);
        b.after_exit(QUICK);
        b.reset();
        assert_eq!(b.after_exit(QUICK), Duration::from_millis(500));
        assert_eq!(b.after_exit(QUICK), Duration::from_millis(1_000));
    }

    #[test]
    fn a_failed_start_counts_as_a_quick_exit() {
        let mut b = backoff();
        assert_eq!(b.after_exit(Duration::ZERO), Duration::from_millis(500));
        assert_eq!(b.after_exit(Duration::ZERO), Duration::from_millis(1_000));
    }

    #[test]
    fn the_cap_never_falls_below_the_first_delay_and_doubling_never_overflows() {
        let mut b = Backoff::new(
            Duration::from_secs(10),
            Duration::from_secs(1),
            Duration::MAX,
        );
        assert_eq!(b.after_exit(QUICK), Duration::from_secs(10));
        assert_eq!(b.after_exit(QUICK), Duration::from_secs(10));
        let mut huge = Backoff::new(
            Duration::MAX / 2 + Duration::from_secs(1),
            Duration::MAX,
            Duration::MAX,
        );
        huge.after_exit(QUICK);
        assert_eq!(huge.after_exit(QUICK), Duration::MAX);
    }
}
