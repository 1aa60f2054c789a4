//! Time for policies and loops alike: `now()` for what a policy decides (breaker timeouts, cooldowns, budgets),
//! `sleep()` for when a loop wakes. Production runs on `SystemClock`; tests drive a `ManualClock`, and every
//! policy and every loop built on it moves when the test advances it, without sleeping. Real I/O (probe
//! timeouts, the writer's flush) stays on tokio's time: it is about the network and the disk, not the schedule.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use tokio::sync::watch;

/// A future that resolves once a clock has moved far enough.
pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Where policies read "now" from and loops wait on.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The current instant.
    fn now(&self) -> DateTime<Utc>;

    /// Resolves once `by` has passed on this clock.
    fn sleep(&self, by: Duration) -> Sleep;
}

/// The wall clock: `Utc::now()`, and tokio's monotonic timer for sleeping.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    fn sleep(&self, by: Duration) -> Sleep {
        Box::pin(tokio::time::sleep(by))
    }
}

/// A clock that only moves when told to. Clones share the same instant, so a test keeps one handle and gives
/// another (as `Arc<dyn Clock>`) to the code under test. Sleepers wake as soon as an `advance` or `set`
/// reaches their deadline.
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<watch::Sender<DateTime<Utc>>>,
}

impl ManualClock {
    /// A clock stopped at `start`.
    pub fn new(start: DateTime<Utc>) -> Self {
        Self {
            now: Arc::new(watch::Sender::new(start)),
        }
    }

    /// Moves the clock forward by `by`, saturating at the latest representable instant, and wakes every
    /// sleeper whose deadline has come.
    pub fn advance(&self, by: Duration) {
        self.now.send_modify(|now| *now = add_saturating(*now, by));
    }

    /// Puts the clock at `to` (which may be earlier than the current instant).
    pub fn set(&self, to: DateTime<Utc>) {
        self.now.send_replace(to);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.borrow()
    }

    fn sleep(&self, by: Duration) -> Sleep {
        let deadline = add_saturating(self.now(), by);
        let mut moved = self.now.subscribe();
        Box::pin(async move {
            loop {
                if *moved.borrow_and_update() >= deadline {
                    return;
                }
                if moved.changed().await.is_err() {
                    // Every handle on the clock is gone: it can never reach the deadline.
                    std::future::pending::<()>().await;
                }
            }
        })
    }
}

/// A periodic tick on a `Clock`. A late tick delays the ones after it rather than bursting to catch up
/// (like tokio's `MissedTickBehavior::Delay`), and no wait is ever longer than the first delay or the
/// period, so a wall clock stepped backwards cannot stall a loop.
#[derive(Debug)]
pub struct Ticker {
    clock: Arc<dyn Clock>,
    period: Duration,
    longest_wait: Duration,
    next: DateTime<Utc>,
}

impl Ticker {
    /// First tick after `first`, then every `period`.
    pub fn new(clock: Arc<dyn Clock>, first: Duration, period: Duration) -> Self {
        let from = clock.now();
        Self::from(clock, from, first, period)
    }

    /// First tick `first` after `from`, then every `period`. A loop spawned at `from` that starts running a
    /// little later (or after a test already moved the clock) keeps the schedule it was given.
    pub fn from(
        clock: Arc<dyn Clock>,
        from: DateTime<Utc>,
        first: Duration,
        period: Duration,
    ) -> Self {
        Self {
            clock,
            period,
            longest_wait: first.max(period),
            next: add_saturating(from, first),
        }
    }

    /// First tick at once, then every `period`.
    pub fn immediate(clock: Arc<dyn Clock>, period: Duration) -> Self {
        Self::new(clock, Duration::ZERO, period)
    }

    /// When the next tick is due.
    pub fn next(&self) -> DateTime<Utc> {
        self.next
    }

    /// Waits for the next tick.
    pub async fn tick(&mut self) {
        let now = self.clock.now();
        if let Ok(wait) = (self.next - now).to_std() {
            if !wait.is_zero() {
                self.clock.sleep(wait.min(self.longest_wait)).await;
            }
        }
        let now = self.clock.now();
        self.next = add_saturating(self.next, self.period);
        if self.next <= now {
            self.next = add_saturating(now, self.period);
        }
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
    use std::sync::atomic::{AtomicU32, Ordering};

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

    #[tokio::test]
    async fn a_manual_sleep_wakes_exactly_when_the_clock_reaches_its_deadline() {
        let clock = ManualClock::new(t0());
        let mut sleep = clock.sleep(Duration::from_secs(60));
        let woke = |sleep: &mut Sleep| {
            let waker = futures_util::task::noop_waker();
            let mut cx = std::task::Context::from_waker(&waker);
            sleep.as_mut().poll(&mut cx).is_ready()
        };
        assert!(!woke(&mut sleep));
        clock.advance(Duration::from_secs(59));
        assert!(!woke(&mut sleep), "one second early");
        clock.advance(Duration::from_secs(1));
        assert!(woke(&mut sleep));
    }

    #[tokio::test]
    async fn a_ticker_on_a_manual_clock_ticks_once_per_period_and_never_bursts() {
        let clock = ManualClock::new(t0());
        let ticks = Arc::new(AtomicU32::new(0));
        let counted = ticks.clone();
        let mut ticker = Ticker::new(
            Arc::new(clock.clone()),
            Duration::from_secs(5),
            Duration::from_secs(10),
        );
        let task = tokio::spawn(async move {
            loop {
                ticker.tick().await;
                counted.fetch_add(1, Ordering::SeqCst);
            }
        });
        let settle = || async {
            for _ in 0..20 {
                tokio::task::yield_now().await;
            }
        };
        settle().await;
        assert_eq!(
            ticks.load(Ordering::SeqCst),
            0,
            "nothing before the first delay"
        );
        clock.advance(Duration::from_secs(5));
        settle().await;
        assert_eq!(ticks.load(Ordering::SeqCst), 1);
        clock.advance(Duration::from_secs(9));
        settle().await;
        assert_eq!(ticks.load(Ordering::SeqCst), 1, "a period is 10 s");
        clock.advance(Duration::from_secs(1));
        settle().await;
        assert_eq!(ticks.load(Ordering::SeqCst), 2);
        // An hour at once is one late tick, not 360 of them.
        clock.advance(Duration::from_secs(3600));
        settle().await;
        assert_eq!(ticks.load(Ordering::SeqCst), 3);
        clock.advance(Duration::from_secs(10));
        settle().await;
        assert_eq!(ticks.load(Ordering::SeqCst), 4);
        task.abort();
    }
}
