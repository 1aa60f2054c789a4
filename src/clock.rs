//! Time source for the pure policies (breaker, heal, alerts, SLO): tests drive a ManualClock instead of sleeping.

use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, TimeDelta, Utc};

/// Where the pure policies read "now" from.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The current instant.
    fn now(&self) -> DateTime<Utc>;
}

/// The wall clock: `Utc::now()`.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that only moves when told to. Clones share the same instant, so a test can keep one
/// handle and give another (as `Arc<dyn Clock>`) to the code under test.
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<Mutex<DateTime<Utc>>>,
}

impl ManualClock {
    /// A clock stopped at `start`.
    pub fn new(start: DateTime<Utc>) -> Self {
        Self {
            now: Arc::new(Mutex::new(start)),
        }
    }

    /// Moves the clock forward by `by`, saturating at the latest representable instant.
    pub fn advance(&self, by: std::time::Duration) {
        let mut now = self.lock();
        *now = add_saturating(*now, by);
    }

    /// Puts the clock at `to` (which may be earlier than the current instant).
    pub fn set(&self, to: DateTime<Utc>) {
        *self.lock() = to;
    }

    fn lock(&self) -> MutexGuard<'_, DateTime<Utc>> {
        // A poisoned lock still holds a valid instant: a plain value cannot be left half-written.
        self.now
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.lock()
    }
}

/// `at + by`, saturating at `DateTime::<Utc>::MAX_UTC` instead of overflowing.
pub(crate) fn add_saturating(at: DateTime<Utc>, by: std::time::Duration) -> DateTime<Utc> {
    TimeDelta::from_std(by)
        .ok()
        .and_then(|delta| at.checked_add_signed(delta))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn t0() -> DateTime<Utc> {
        // 2023-11-14T22:13:20Z is a valid timestamp, so this always returns Some.
        DateTime::from_timestamp(1_700_000_000, 0).unwrap()
    }

    #[test]
    fn manual_clock_stays_put_until_advanced() {
        let clock = ManualClock::new(t0());
        assert_eq!(clock.now(), t0());
        clock.advance(Duration::from_secs(90));
        assert_eq!(clock.now(), t0() + TimeDelta::seconds(90));
    }

    #[test]
    fn manual_clock_clones_share_the_instant() {
        let clock = ManualClock::new(t0());
        let shared: Arc<dyn Clock> = Arc::new(clock.clone());
        clock.advance(Duration::from_millis(1500));
        assert_eq!(shared.now(), t0() + TimeDelta::milliseconds(1500));
        clock.set(t0());
        assert_eq!(shared.now(), t0());
    }

    #[test]
    fn advance_saturates_instead_of_panicking() {
        let clock = ManualClock::new(t0());
        clock.advance(Duration::MAX);
        assert_eq!(clock.now(), DateTime::<Utc>::MAX_UTC);
    }

    #[test]
    fn system_clock_reads_the_wall_clock() {
        let before = Utc::now();
        let read = SystemClock.now();
        assert!(read >= before);
    }
}
