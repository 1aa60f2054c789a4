//! Maintenance windows: planned downtime whose scheduled checks are not valid for an SLO. Windows come from
//! the config (`slo.maintenance`, read at start, never copied into the database) and from `POST
//! /maintenance` (stored in `maintenance_windows`); both are listed and applied alike.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::config::SloConfig;

/// Where a maintenance window was declared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(example = "api")]
pub enum MaintenanceSource {
    /// `slo.maintenance` in the config file.
    Config,
    /// `POST /maintenance`.
    Api,
}

impl MaintenanceSource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Config => "config",
            Self::Api => "api",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [Self::Config, Self::Api]
            .into_iter()
            .find(|s| s.as_str() == raw)
    }
}

/// A maintenance window: `[starts_at, ends_at)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[schema(example = json!({
    "id": 3, "target": "db", "starts_at": "2026-11-28T02:00:00Z", "ends_at": "2026-11-28T03:00:00Z",
    "reason": "database minor version upgrade", "source": "api", "created_at": "2026-11-26T12:00:03Z"
}))]
pub struct MaintenanceWindow {
    /// The stored row's id; null for a window from the config file.
    pub id: Option<i64>,
    /// The target it covers; null: every target.
    pub target: Option<String>,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub reason: String,
    pub source: MaintenanceSource,
    /// When it was posted; null for a window from the config file.
    pub created_at: Option<DateTime<Utc>>,
}

impl MaintenanceWindow {
    pub fn covers_target(&self, target: &str) -> bool {
        self.target.as_deref().is_none_or(|t| t == target)
    }

    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        self.starts_at <= now && now < self.ends_at
    }
}

/// The config file's windows.
pub fn config_windows(config: &SloConfig) -> Vec<MaintenanceWindow> {
    config
        .maintenance
        .iter()
        .map(|m| MaintenanceWindow {
            id: None,
            target: m.target.clone(),
            starts_at: m.starts_at,
            ends_at: m.ends_at,
            reason: m.reason.clone(),
            source: MaintenanceSource::Config,
            created_at: None,
        })
        .collect()
}

/// How a span of time meets the maintenance windows of one target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overlap {
    None,
    Partial,
    Full,
}

/// One target's maintenance windows, merged into disjoint sorted `[start, end)` spans of epoch milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Exclusions {
    spans: Vec<(i64, i64)>,
}

impl Exclusions {
    pub fn for_target(windows: &[MaintenanceWindow], target: &str) -> Self {
        let mut spans: Vec<(i64, i64)> = windows
            .iter()
            .filter(|w| w.covers_target(target))
            .map(|w| (w.starts_at.timestamp_millis(), w.ends_at.timestamp_millis()))
            .filter(|(s, e)| s < e)
            .collect();
        spans.sort_unstable();
        let mut merged: Vec<(i64, i64)> = Vec::with_capacity(spans.len());
        for (start, end) in spans {
            match merged.last_mut() {
                Some(last) if start <= last.1 => last.1 = last.1.max(end),
                _ => merged.push((start, end)),
            }
        }
        Self { spans: merged }
    }

    /// True when the instant `ms` is inside a window.
    pub fn covers(&self, ms: i64) -> bool {
        let i = self.spans.partition_point(|(start, _)| *start <= ms);
        i > 0 && ms < self.spans[i - 1].1
    }

    /// How `[from, until)` meets the windows.
    pub fn overlap(&self, from: i64, until: i64) -> Overlap {
        for &(start, end) in &self.spans {
            if end <= from || start >= until {
                continue;
            }
            return if start <= from && end >= until {
                Overlap::Full
            } else {
                Overlap::Partial
            };
        }
        Overlap::None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(target: Option<&str>, start: i64, end: i64) -> MaintenanceWindow {
        MaintenanceWindow {
            id: None,
            target: target.map(str::to_owned),
            starts_at: DateTime::from_timestamp_millis(start).unwrap(),
            ends_at: DateTime::from_timestamp_millis(end).unwrap(),
            reason: "test".to_owned(),
            source: MaintenanceSource::Api,
            created_at: None,
        }
    }

    #[test]
    fn windows_of_the_target_and_of_all_are_merged_and_others_ignored() {
        let windows = [
            window(Some("api"), 100, 200),
            window(None, 150, 300),
            window(Some("db"), 0, 1_000),
        ];
        let excl = Exclusions::for_target(&windows, "api");
        assert!(!excl.covers(99));
        assert!(excl.covers(100));
        assert!(excl.covers(299));
        assert!(!excl.covers(300), "the end is not in the window");
        assert_eq!(excl.overlap(120, 280), Overlap::Full);
        assert_eq!(excl.overlap(0, 150), Overlap::Partial);
        assert_eq!(excl.overlap(300, 400), Overlap::None);
    }
}
