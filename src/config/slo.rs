//! `slo`: the service-level objectives every target is held to, over a rolling window.

use serde::{Deserialize, Serialize};

use crate::config::{Invalid, StorageConfig};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SloConfig {
    pub availability_target_percent: f64,
    pub p95_latency_target_ms: u64,
    pub max_restarts_per_week: u32,
    pub window_days: u32,
}

impl Default for SloConfig {
    fn default() -> Self {
        Self {
            availability_target_percent: 99.5,
            p95_latency_target_ms: 200,
            max_restarts_per_week: 3,
            window_days: 7,
        }
    }
}

impl SloConfig {
    pub(crate) fn validate(&self, storage: &StorageConfig) -> Result<(), Invalid> {
        if !(self.availability_target_percent > 0.0 && self.availability_target_percent < 100.0) {
            return Err(Invalid::at(
                "slo.availability_target_percent",
                format!(
                    "{} must be above 0 and below 100",
                    self.availability_target_percent
                ),
            ));
        }
        if self.p95_latency_target_ms == 0 {
            return Err(Invalid::at(
                "slo.p95_latency_target_ms",
                "must be at least 1",
            ));
        }
        if !(1..=90).contains(&self.window_days) {
            return Err(Invalid::at(
                "slo.window_days",
                format!("{} is out of range 1..=90", self.window_days),
            ));
        }
        if self.window_days > storage.rollup_retention_days {
            return Err(Invalid::at(
                "slo.window_days",
                "is longer than storage.rollup_retention_days",
            ));
        }
        Ok(())
    }
}
