//! Maintenance windows as hale stores and shows them: below both the SLO code that applies them and the store
//! that keeps them (`slo::maintenance` merges the config's windows with the stored ones).

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

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
    "reason": "database minor version upgrade", "source": "api", "created_at": "2026-11-26T12:00:03Z",
    "retroactive": false
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
    /// Declared after the fact (`retroactive: true`, admin only): it started more than
    /// `slo.maintenance_grace_minutes` before it was posted, so it removed checks already made.
    pub retroactive: bool,
}

impl MaintenanceWindow {
    pub fn covers_target(&self, target: &str) -> bool {
        self.target.as_deref().is_none_or(|t| t == target)
    }

    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        self.starts_at <= now && now < self.ends_at
    }
}
