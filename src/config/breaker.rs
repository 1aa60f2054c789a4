//! `breaker`: circuit breaker settings shared by every target unless it overrides them.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::breaker::BreakerSettings;
use crate::config::Invalid;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BreakerConfig {
    pub failure_threshold: u32,
    pub success_threshold: u32,
    pub open_timeout_s: u64,
}

/// The breaker's own defaults, written once in `BreakerSettings`.
impl Default for BreakerConfig {
    fn default() -> Self {
        let settings = BreakerSettings::default();
        Self {
            failure_threshold: settings.failure_threshold,
            success_threshold: settings.success_threshold,
            open_timeout_s: settings.open_timeout.as_secs(),
        }
    }
}

/// A target's own breaker settings; unset fields take the `breaker` section's.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BreakerOverride {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_threshold: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_threshold: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_timeout_s: Option<u64>,
}

impl BreakerConfig {
    /// This section with a target's override on top.
    pub fn overridden_by(&self, o: Option<&BreakerOverride>) -> Self {
        let o = o.cloned().unwrap_or_default();
        Self {
            failure_threshold: o.failure_threshold.unwrap_or(self.failure_threshold),
            success_threshold: o.success_threshold.unwrap_or(self.success_threshold),
            open_timeout_s: o.open_timeout_s.unwrap_or(self.open_timeout_s),
        }
    }

    /// The settings a breaker is built with.
    pub fn settings(&self) -> BreakerSettings {
        BreakerSettings {
            failure_threshold: self.failure_threshold,
            success_threshold: self.success_threshold,
            open_timeout: Duration::from_secs(self.open_timeout_s),
        }
    }

    /// `path` is where these settings are in the file, such as `breaker` or `services[2].breaker`.
    pub(crate) fn validate(&self, path: &str) -> Result<(), Invalid> {
        let at = |field: &str| format!("{path}.{field}");
        if !(1..=1000).contains(&self.failure_threshold) {
            return Err(Invalid::at(
                at("failure_threshold"),
                format!("{} is out of range 1..=1000", self.failure_threshold),
            ));
        }
        if !(1..=1000).contains(&self.success_threshold) {
            return Err(Invalid::at(
                at("success_threshold"),
                format!("{} is out of range 1..=1000", self.success_threshold),
            ));
        }
        if !(1..=86_400).contains(&self.open_timeout_s) {
            return Err(Invalid::at(
                at("open_timeout_s"),
                format!("{} is out of range 1..=86400", self.open_timeout_s),
            ));
        }
        Ok(())
    }
}
