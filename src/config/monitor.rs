//! `monitor`: the Health Proxy's background probing.

use serde::{Deserialize, Serialize};

use crate::config::Invalid;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MonitorConfig {
    /// Probe every target at its interval in the background; when false, targets are checked only on
    /// request (`/health/all`).
    pub background_checks: bool,
    /// A successful result younger than this is reused by `/health/all`; failures are always re-checked.
    pub cache_ttl_s: u64,
    /// Most probes in flight at once, background and on-demand together; lowered at start when the
    /// open-file limit has no room for that many.
    pub max_in_flight: usize,
    /// An up target slower than this counts only partly in the health score.
    pub slow_threshold_ms: u64,
    /// How often hale logs its own resident memory, open files and writer queue (`self-watch`); 0: never.
    pub self_watch_interval_s: u64,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        Self {
            background_checks: true,
            cache_ttl_s: 120,
            // 256 fits beside hale's reserve even under a 1,024 open-file limit that cannot be raised
            // ((1024 - 164) / 2 = 430 with 2 workers), and lets `/health/all` over 5,000 targets finish in 20
            // rounds of probes rather than 79 at 64.
            max_in_flight: 256,
            slow_threshold_ms: 1_000,
            // Often enough to see a leak grow over an hour, rare enough to stay out of the way in the log.
            self_watch_interval_s: 300,
        }
    }
}

impl MonitorConfig {
    pub(crate) fn validate(&self) -> Result<(), Invalid> {
        if self.max_in_flight == 0 || self.max_in_flight > 10_000 {
            return Err(Invalid::at(
                "monitor.max_in_flight",
                format!("{} is out of range 1..=10000", self.max_in_flight),
            ));
        }
        if self.slow_threshold_ms == 0 {
            return Err(Invalid::at(
                "monitor.slow_threshold_ms",
                "must be at least 1",
            ));
        }
        if self.self_watch_interval_s != 0 && !(10..=86_400).contains(&self.self_watch_interval_s) {
            return Err(Invalid::at(
                "monitor.self_watch_interval_s",
                format!(
                    "{} is out of range: 0 (off) or 10..=86400",
                    self.self_watch_interval_s
                ),
            ));
        }
        Ok(())
    }
}
