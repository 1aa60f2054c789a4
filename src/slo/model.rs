//! What an SLO evaluation says about one target over one window: the three objectives (availability, p95
//! latency, restarts), the error budget and its burn rates. The API, `hale slo report`, the status page and
//! the `slo_*` metrics all show these same numbers.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

/// Where an objective stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(example = "met")]
pub enum SloStatus {
    /// Within its target, with budget to spare.
    Met,
    /// Within its target, but less than `slo.at_risk_budget_share` of the error budget is left.
    AtRisk,
    /// Past its target.
    Breached,
    /// No valid checks in the window.
    NoData,
}

/// How the numbers were computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(example = "rollups")]
pub enum SloMethod {
    /// From the hourly rollups (fast at any history size; p95 within 1%).
    Rollups,
    /// From every raw check (`--exact`).
    Exact,
}

/// The window an SLO is computed over: `[from, until)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[schema(example = json!({"label": "7d", "from": "2026-11-19T12:00:03Z", "until": "2026-11-26T12:00:03Z"}))]
pub struct SloWindow {
    /// As asked, such as `7d` or `1h`.
    pub label: String,
    pub from: DateTime<Utc>,
    pub until: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[schema(example = json!({
    "good": 20012, "valid": 20040, "excluded": 120, "ratio": 0.9986027944111776, "target_ratio": 0.995,
    "status": "met"
}))]
pub struct AvailabilitySlo {
    /// Valid scheduled checks that were up.
    pub good: u64,
    /// Scheduled checks in the window, minus those in a maintenance window.
    pub valid: u64,
    /// Scheduled checks left out because they fell in a maintenance window.
    pub excluded: u64,
    /// good / valid; null without valid checks.
    pub ratio: Option<f64>,
    /// The objective, as a ratio (0.995).
    pub target_ratio: f64,
    pub status: SloStatus,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[schema(example = json!({
    "p95_ms": 48.7, "target_ms": 200, "under_target_ratio": 0.9931, "measured": 20031, "status": "met"
}))]
pub struct LatencySlo {
    /// The 95th percentile of the latency of valid checks that were made (not `circuit_open`), in ms.
    pub p95_ms: Option<f64>,
    pub target_ms: u64,
    /// The share of those checks at or under `target_ms`: the form Prometheus-based SLO tools use. At least
    /// 0.95 exactly when the p95 is within target.
    pub under_target_ratio: Option<f64>,
    /// Checks with a measured latency.
    pub measured: u64,
    pub status: SloStatus,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[schema(example = json!({"count": 1, "max_per_week": 3, "status": "met"}))]
pub struct RestartsSlo {
    /// Restarts in the window: child restarts (after an exit or by a heal) and heal commands that ran.
    pub count: u32,
    /// The objective: fewer than this many a week.
    pub max_per_week: u32,
    pub status: SloStatus,
}

/// Burn rate: how fast the error budget is spent, 1.0 being exactly the pace that spends it all by the end
/// of the window. Null when the span has no valid checks.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[schema(example = json!({"h1": 0.0, "h6": 0.0, "d1": 0.1388888888888889, "window": 0.27944111776447106}))]
pub struct BurnRates {
    pub h1: Option<f64>,
    pub h6: Option<f64>,
    pub d1: Option<f64>,
    pub window: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[schema(example = json!({
    "allowed_bad": 100.2, "consumed_bad": 28, "remaining_ratio": 0.7205588822355289,
    "burn_rates": {"h1": 0.0, "h6": 0.0, "d1": 0.1388888888888889, "window": 0.27944111776447106}
}))]
pub struct ErrorBudget {
    /// Bad checks the objective allows over the window: (1 - target) × valid.
    pub allowed_bad: f64,
    /// Bad checks so far: valid - good.
    pub consumed_bad: u64,
    /// 1 - consumed / allowed; negative once overspent; null without valid checks.
    pub remaining_ratio: Option<f64>,
    pub burn_rates: BurnRates,
}

/// A maintenance window declared after the fact (`retroactive: true`) that covers the target, with the
/// scheduled checks it removed from this evaluation's window.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[schema(example = json!({
    "id": 4, "target": null, "starts_at": "2026-11-26T11:00:00Z", "ends_at": "2026-11-26T12:05:00Z",
    "reason": "network outage, not the service's fault", "created_at": "2026-11-26T12:00:03Z",
    "removed_checks": 120
}))]
pub struct RetroactiveMaintenance {
    pub id: Option<i64>,
    /// The target it covers; null: every target.
    pub target: Option<String>,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub reason: String,
    /// When it was posted.
    pub created_at: Option<DateTime<Utc>>,
    /// Scheduled checks of this target inside both this window and the evaluation's window: not counted
    /// (part of `availability.excluded`; a check inside several windows counts once there, but here for each).
    pub removed_checks: u64,
}

/// One target's SLOs over one window.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[schema(example = json!({
    "target": "api",
    "window": {"label": "7d", "from": "2026-11-19T12:00:03Z", "until": "2026-11-26T12:00:03Z"},
    "status": "met",
    "availability": {"good": 20012, "valid": 20040, "excluded": 120, "ratio": 0.9986027944111776,
                     "target_ratio": 0.995, "status": "met"},
    "latency": {"p95_ms": 48.7, "target_ms": 200, "under_target_ratio": 0.9931, "measured": 20031,
                "status": "met"},
    "restarts": {"count": 1, "max_per_week": 3, "status": "met"},
    "error_budget": {"allowed_bad": 100.2, "consumed_bad": 28, "remaining_ratio": 0.7205588822355289,
                     "burn_rates": {"h1": 0.0, "h6": 0.0, "d1": 0.1388888888888889,
                                    "window": 0.27944111776447106}},
    "method": "rollups",
    "retroactive_maintenance": []
}))]
pub struct TargetSlo {
    pub target: String,
    pub window: SloWindow,
    /// The worst of the three objectives.
    pub status: SloStatus,
    pub availability: AvailabilitySlo,
    pub latency: LatencySlo,
    pub restarts: RestartsSlo,
    pub error_budget: ErrorBudget,
    pub method: SloMethod,
    /// Maintenance windows declared after the fact that removed checks of this target from the window, by
    /// start time: an SLO met thanks to one is worth a second look.
    pub retroactive_maintenance: Vec<RetroactiveMaintenance>,
}
