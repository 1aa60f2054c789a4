//! `slo`: the service-level objectives every target is held to, over a rolling window, and the maintenance
//! windows known in advance (their checks do not count).

use std::sync::Arc;

use chrono::{DateTime, Datelike, Utc};
use serde::{Deserialize, Serialize};

use crate::config::{Invalid, StorageConfig, TargetConfig};

/// The longest maintenance window, from the config or the API.
pub const MAX_MAINTENANCE_DAYS: i64 = 30;
/// The longest reason of a maintenance window, in characters.
pub const MAX_MAINTENANCE_REASON: usize = 500;
/// The years a maintenance window may start and end in.
pub const MAINTENANCE_YEARS: std::ops::RangeInclusive<i32> = 2000..=2100;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SloConfig {
    pub availability_target_percent: f64,
    pub p95_latency_target_ms: u64,
    /// Fewer than this many restarts a week (scaled to the window's length).
    pub max_restarts_per_week: u32,
    pub window_days: u32,
    /// The availability objective is `at_risk` once less than this share of its error budget is left.
    pub at_risk_budget_share: f64,
    /// Planned downtime: scheduled checks inside are not valid for the SLO.
    pub maintenance: Vec<MaintenanceConfig>,
    /// How often the `slo_*` gauges are recomputed in the background.
    pub refresh_interval_s: u64,
    /// `POST /maintenance` refuses a window starting more than this many minutes in the past unless it is
    /// declared `retroactive` (admin only).
    pub maintenance_grace_minutes: u32,
    /// `POST /maintenance` refuses a new window while this many stored windows have not ended yet.
    pub max_open_maintenance: u32,
}

/// A maintenance window written in the config file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceConfig {
    /// The target it covers; absent: every target.
    #[serde(default)]
    pub target: Option<String>,
    /// RFC 3339.
    pub starts_at: DateTime<Utc>,
    /// RFC 3339; after `starts_at`, at most 30 days later.
    pub ends_at: DateTime<Utc>,
    pub reason: String,
}

impl Default for SloConfig {
    fn default() -> Self {
        Self {
            availability_target_percent: 99.5,
            p95_latency_target_ms: 200,
            max_restarts_per_week: 3,
            window_days: 7,
            at_risk_budget_share: 0.25,
            maintenance: Vec::new(),
            refresh_interval_s: 60,
            maintenance_grace_minutes: 15,
            max_open_maintenance: 100,
        }
    }
}

/// Why a maintenance window is refused, shared by the config and `POST /maintenance`.
pub fn check_maintenance(
    target: Option<&str>,
    starts_at: DateTime<Utc>,
    ends_at: DateTime<Utc>,
    reason: &str,
    targets: &[Arc<TargetConfig>],
) -> Result<(), (&'static str, String)> {
    if let Some(target) = target {
        if target.contains('\0') {
            return Err(("target", "contains a NUL byte".to_owned()));
        }
        if !targets.iter().any(|t| t.name.as_str() == target) {
            return Err(("target", format!("{target:?} is not a configured target")));
        }
    }
    for (field, at) in [("starts_at", starts_at), ("ends_at", ends_at)] {
        if !MAINTENANCE_YEARS.contains(&at.year()) {
            return Err((
                field,
                format!(
                    "year {} is outside {}..={}",
                    at.year(),
                    MAINTENANCE_YEARS.start(),
                    MAINTENANCE_YEARS.end()
                ),
            ));
        }
    }
    if ends_at <= starts_at {
        return Err((
            "ends_at",
            format!(
                "{} is not after starts_at {}",
                ends_at.to_rfc3339(),
                starts_at.to_rfc3339()
            ),
        ));
    }
    if ends_at - starts_at > chrono::Duration::days(MAX_MAINTENANCE_DAYS) {
        return Err((
            "ends_at",
            format!("the window is longer than {MAX_MAINTENANCE_DAYS} days"),
        ));
    }
    if reason.contains('\0') {
        return Err(("reason", "contains a NUL byte".to_owned()));
    }
    if reason.trim().is_empty() {
        return Err(("reason", "must not be empty".to_owned()));
    }
    let chars = reason.chars().count();
    if chars > MAX_MAINTENANCE_REASON {
        return Err((
            "reason",
            format!("{chars} characters is longer than {MAX_MAINTENANCE_REASON}"),
        ));
    }
    Ok(())
}

impl SloConfig {
    /// The availability objective as a ratio (99.5 % is 0.995).
    pub fn availability_target_ratio(&self) -> f64 {
        self.availability_target_percent / 100.0
    }

    pub(crate) fn validate(
        &self,
        storage: &StorageConfig,
        targets: &[Arc<TargetConfig>],
    ) -> Result<(), Invalid> {
        if !(1..=3_600).contains(&self.refresh_interval_s) {
            return Err(Invalid::at(
                "slo.refresh_interval_s",
                format!("{} is out of range 1..=3600", self.refresh_interval_s),
            ));
        }
        if self.maintenance_grace_minutes > 24 * 60 {
            return Err(Invalid::at(
                "slo.maintenance_grace_minutes",
                format!(
                    "{} is out of range 0..=1440",
                    self.maintenance_grace_minutes
                ),
            ));
        }
        if !(1..=10_000).contains(&self.max_open_maintenance) {
            return Err(Invalid::at(
                "slo.max_open_maintenance",
                format!("{} is out of range 1..=10000", self.max_open_maintenance),
            ));
        }
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
        if !(self.at_risk_budget_share >= 0.0 && self.at_risk_budget_share <= 1.0) {
            return Err(Invalid::at(
                "slo.at_risk_budget_share",
                format!("{} is out of range 0..=1", self.at_risk_budget_share),
            ));
        }
        for (i, window) in self.maintenance.iter().enumerate() {
            check_maintenance(
                window.target.as_deref(),
                window.starts_at,
                window.ends_at,
                &window.reason,
                targets,
            )
            .map_err(|(field, reason)| {
                Invalid::at(format!("slo.maintenance[{i}].{field}"), reason)
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn a_maintenance_window_that_ends_before_it_starts_is_refused_with_its_path() {
        let mut config = Config::default();
        let start = DateTime::parse_from_rfc3339("2026-03-01T02:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        config.slo.maintenance = vec![MaintenanceConfig {
            target: None,
            starts_at: start,
            ends_at: start,
            reason: "upgrade".to_owned(),
        }];
        let err = config.validate().unwrap_err();
        assert_eq!(err.path, "$.slo.maintenance[0].ends_at");
        assert_eq!(
            err.reason,
            "2026-03-01T02:00:00+00:00 is not after starts_at 2026-03-01T02:00:00+00:00"
        );
    }
}
