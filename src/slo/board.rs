//! The SLO board: the refresher's last pass over every target, kept for whoever asks (`GET /slo`, the
//! status page), so no request evaluates anything. A request that finds it old may ask for a pass sooner
//! (`nudge`); a posted maintenance window does too.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

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

#[derive(Debug, Default)]
pub struct SloBoard {
    latest: RwLock<Option<Arc<SloSnapshot>>>,
    published: AtomicU64,
    wake: Notify,
    /// The `computed_at` (epoch ms) of the last snapshot a nudge was sent for, so a request rate does not
    /// turn into a pass rate.
    nudged_for: AtomicU64,
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

    /// Publishes one pass's numbers.
    pub fn publish(&self, as_of: DateTime<Utc>, computed_at: DateTime<Utc>, slos: Vec<TargetSlo>) {
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

    /// Asks for a pass when the last one was computed more than `max_age` before `now` (once per snapshot).
    pub fn nudge_if_older(&self, now: DateTime<Utc>, max_age: Duration) {
        let Some(latest) = self.latest() else {
            return;
        };
        if now - latest.computed_at <= max_age {
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
