//! The SLO board: the refresher's last pass over every target, kept for whoever asks (`GET /slo`, the
//! status page), so no request evaluates anything. A request that finds it old may ask for a pass sooner
//! (`nudge_if_older`), within a budget: reads never spend more than 1/`READ_PASS_BUDGET` of a core on
//! extra passes, however many of them come. A posted maintenance window asks at once (`nudge`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use tokio::sync::Notify;

use crate::slo::model::TargetSlo;

/// Every target's SLO from one pass of the refresher.
#[derive(Debug, Clone)]
pub struct SloSnapshot {
    /// Counts one each pass, so a cache built from a snapshot knows when it is outdated.
    pub generation: u64,
    /// The end of the window: the numbers count the scheduled checks made before it.
    pub as_of: DateTime<Utc>,
    /// When the pass ran, on hale's clock.
    pub computed_at: DateTime<Utc>,
    /// In config order.
    pub slos: Vec<TargetSlo>,
}

/// A read asks for a pass only once the last one is this many times its own duration old: extra passes for
/// readers then take at most 1/50 of a core (2 %), at any fleet size.
pub const READ_PASS_BUDGET: u32 = 50;

#[derive(Debug, Default)]
pub struct SloBoard {
    latest: RwLock<Option<Arc<SloSnapshot>>>,
    published: AtomicU64,
    wake: Notify,
    /// The `computed_at` (epoch ms) of the last snapshot a nudge was sent for, so a request rate does not
    /// turn into a pass rate.
    nudged_for: AtomicU64,
    /// How long the last pass took, in microseconds.
    pass_us: AtomicU64,
}

impl SloBoard {
    pub fn new() -> Self {
        Self::default()
    }

    /// The last pass's numbers; None before the first pass is done.
    pub fn latest(&self) -> Option<Arc<SloSnapshot>> {
        self.latest
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Publishes one pass's numbers; the pass took `took`.
    pub fn publish(
        &self,
        as_of: DateTime<Utc>,
        computed_at: DateTime<Utc>,
        took: StdDuration,
        slos: Vec<TargetSlo>,
    ) {
        self.pass_us.store(
            u64::try_from(took.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        let generation = self.published.fetch_add(1, Ordering::Relaxed) + 1;
        let snapshot = Arc::new(SloSnapshot {
            generation,
            as_of,
            computed_at,
            slos,
        });
        *self.latest.write().unwrap_or_else(|p| p.into_inner()) = Some(snapshot);
    }

    /// Asks the refresher for a pass now (a maintenance window was posted).
    pub fn nudge(&self) {
        self.wake.notify_one();
    }

    /// Asks for a pass when the last one was computed more than `max_age` before `now`, and more than
    /// `READ_PASS_BUDGET` times its own duration (once per snapshot).
    pub fn nudge_if_older(&self, now: DateTime<Utc>, max_age: Duration) {
        let Some(latest) = self.latest() else {
            return;
        };
        let pass = StdDuration::from_micros(self.pass_us.load(Ordering::Relaxed));
        let budget =
            Duration::from_std(pass.saturating_mul(READ_PASS_BUDGET)).unwrap_or(Duration::MAX);
        if now - latest.computed_at <= max_age.max(budget) {
            return;
        }
        let stamp = u64::try_from(latest.computed_at.timestamp_millis()).unwrap_or(0);
        if self.nudged_for.swap(stamp, Ordering::Relaxed) != stamp {
            self.nudge();
        }
    }

    /// Waits for a nudge.
    pub async fn nudged(&self) {
        self.wake.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use futures_util::FutureExt;

    use super::*;

    fn nudged(board: &SloBoard) -> bool {
        board.nudged().now_or_never().is_some()
    }

    #[test]
    fn a_read_asks_for_a_pass_only_past_the_budget_of_the_last_pass() {
        let t0 = Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).unwrap();
        let board = SloBoard::new();
        board.publish(t0, t0, StdDuration::from_millis(10), Vec::new());
        // A 10 ms pass: the 5 s freshness rules (50 x 10 ms is less).
        board.nudge_if_older(t0 + Duration::seconds(4), Duration::seconds(5));
        assert!(!nudged(&board));
        board.nudge_if_older(t0 + Duration::seconds(6), Duration::seconds(5));
        assert!(nudged(&board));
        board.nudge_if_older(t0 + Duration::seconds(7), Duration::seconds(5));
        assert!(!nudged(&board), "once per snapshot");

        // A 1 s pass: no read asks for another within 50 s of it.
        let t1 = t0 + Duration::seconds(60);
        board.publish(t1, t1, StdDuration::from_secs(1), Vec::new());
        board.nudge_if_older(t1 + Duration::seconds(30), Duration::seconds(5));
        assert!(!nudged(&board));
        board.nudge_if_older(t1 + Duration::seconds(51), Duration::seconds(5));
        assert!(nudged(&board));
    }
}
