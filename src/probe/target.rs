//! A monitored target: its config, circuit breaker, latest check, the turn that lets one check of it run at
//! a time, and the bookkeeping that keeps on-demand checks to one stored row per interval.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};

use crate::breaker::{BreakerState, SharedBreaker};
use crate::config::TargetConfig;
use crate::probe::LatestCheck;
use crate::records::CheckRecord;

#[derive(Debug)]
pub struct Target {
    /// The target's config, shared with the loaded `Config`'s `services` (held once).
    pub config: Arc<TargetConfig>,
    pub(crate) name: Arc<str>,
    pub(crate) breaker: SharedBreaker,
    latest: Mutex<Option<LatestCheck>>,
    /// Held while a check of this target runs; a caller that has to wait for it shares its result.
    pub(crate) turn: tokio::sync::Mutex<()>,
    /// Checks of this target finished so far. Each one sets `latest` before it is counted.
    pub(crate) finished: AtomicU64,
    rows: Mutex<OnDemandRows>,
}

/// What keeps on-demand checks of a target to one stored row per interval.
#[derive(Debug, Default)]
pub(crate) struct OnDemandRows {
    /// When the latest on-demand row of this target was submitted.
    last_stored: Option<DateTime<Utc>>,
    /// The latest on-demand check that was answered but not stored. A background check that shares its
    /// result stores it, so background rows are never lost to the limit. Boxed: most targets never hold
    /// one, and the box keeps them 8 bytes rather than a whole record.
    pub(crate) unstored: Option<Box<CheckRecord>>,
}

impl Target {
    pub(crate) fn new(config: Arc<TargetConfig>, breaker: SharedBreaker) -> Self {
        Self {
            name: config.name.shared(),
            config,
            breaker,
            latest: Mutex::new(None),
            turn: tokio::sync::Mutex::new(()),
            finished: AtomicU64::new(0),
            rows: Mutex::new(OnDemandRows::default()),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn breaker_state(&self) -> BreakerState {
        self.breaker.state()
    }

    /// When an open breaker will next let a trial through.
    pub fn breaker_retry_at(&self) -> Option<DateTime<Utc>> {
        self.breaker.snapshot().retry_at
    }

    pub fn latest(&self) -> Option<LatestCheck> {
        lock(&self.latest).clone()
    }

    pub(crate) fn set_latest(&self, check: LatestCheck) {
        *lock(&self.latest) = Some(check);
    }

    pub(crate) fn rows(&self) -> MutexGuard<'_, OnDemandRows> {
        lock(&self.rows)
    }

    /// Whether an on-demand check made at `now` may be stored: true at most once per `interval_s`.
    pub(crate) fn claim_on_demand_row(&self, now: DateTime<Utc>) -> bool {
        let mut rows = self.rows();
        let within_interval = rows.last_stored.is_some_and(|last| {
            // A clock that moved back (now < last) ends the wait rather than stretching it.
            (now - last)
                .to_std()
                .is_ok_and(|since| since < self.config.interval())
        });
        if within_interval {
            return false;
        }
        rows.last_stored = Some(now);
        rows.unstored = None;
        true
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Each value is written whole under the lock, so a poisoned one still holds a consistent value.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_target_shares_its_config_and_stays_small() {
        // One per target for hale's life: the config is shared with the loaded `Config` (8 bytes here),
        // and an on-demand row held back is boxed.
        assert!(
            std::mem::size_of::<Target>() <= 256,
            "{} bytes",
            std::mem::size_of::<Target>()
        );
        assert_eq!(
            std::mem::size_of::<Option<Box<CheckRecord>>>(),
            std::mem::size_of::<usize>()
        );
    }
}
