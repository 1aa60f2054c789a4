//! The labels hale's alerts share with the exported Prometheus rules, so that one Alertmanager groups and
//! inhibits both alike: `target`, `severity`, `class` (what kind of trouble), `slo` (which objective a
//! burn-rate alert is about), and `source="hale"` on what hale's own channel sends. The exported
//! Alertmanager config (`hale export alertmanager`) matches on exactly these; see docs/alerts.md.

use serde::Serialize;

use crate::config::Condition;
use crate::records::AlertLevel;

/// The label naming what kind of trouble an alert is about.
pub const CLASS: &str = "class";
/// The label naming the SLO of a burn-rate alert (`sloth_slo`'s value).
pub const SLO: &str = "slo";
/// The label on every alert hale's own Alertmanager channel sends (`hale`); exported rules have none.
pub const SOURCE: &str = "source";
/// The value of `source` on hale's own alerts.
pub const SOURCE_HALE: &str = "hale";

/// The availability SLO, as `slo` and `sloth_slo` name it. hale's own `slo_burn` rules are about it.
pub const SLO_AVAILABILITY: &str = "target-availability";
/// The latency SLO, as `slo` and `sloth_slo` name it.
pub const SLO_LATENCY: &str = "target-latency";

/// What kind of trouble an alert is about: the value of the `class` label. hale's own rules get theirs from
/// their condition, the exported Prometheus alerts from their name (`export::alertmanager::class_of`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertClass {
    /// The target does not answer: hale's `consecutive_failures` rules, Prometheus's `HaleTargetDown`.
    TargetDown,
    /// hale's `failures_within` rules.
    Flapping,
    /// Checks slower than the p95 target: `HaleTargetLatencyHigh`.
    Latency,
    /// `HaleCircuitBreakerOpen`.
    BreakerOpen,
    /// Error budget burning: hale's `slo_burn` rules and the exported burn-rate alerts (with `slo`).
    SloBurn,
    /// hale's `restarted` rules: one restart.
    Restarted,
    /// `HaleTargetRestartingTooOften`.
    RestartsTooOften,
    /// hale's `heal_budget_exhausted` rules.
    HealBudget,
    /// hale's `mass_failure` rule (target `*`).
    MassFailure,
    /// `HaleHealthScoreLow`.
    HealthScore,
    /// An alert about hale itself (5xx answers, slow answers, dropped rows, a service or scrape down, an
    /// MCP server the bridge cannot reach).
    Hale,
    /// A workflow's announcement (`alerts::announce`): a `notify` step's message, a run interrupted by a
    /// restart; its target is the workflow's id. The exported workflow alerts (`HaleWorkflowRunInterrupted`,
    /// with the workflow as `target`, `HaleWorkflowApprovalWaiting`, `HaleWorkflowQueueStuck`) have it too.
    /// No hale rule has it, and no other class holds it back.
    Workflow,
}

impl AlertClass {
    pub const ALL: [AlertClass; 12] = [
        Self::TargetDown,
        Self::Flapping,
        Self::Latency,
        Self::BreakerOpen,
        Self::SloBurn,
        Self::Restarted,
        Self::RestartsTooOften,
        Self::HealBudget,
        Self::MassFailure,
        Self::HealthScore,
        Self::Hale,
        Self::Workflow,
    ];

    /// What a target-down page holds back for the same target: symptoms of the same outage.
    pub const HELD_BACK_BY_TARGET_DOWN: [AlertClass; 4] = [
        Self::SloBurn,
        Self::BreakerOpen,
        Self::Latency,
        Self::Flapping,
    ];

    /// What a mass failure (hale's, about every target at once) holds back, whatever the target.
    pub const HELD_BACK_BY_MASS_FAILURE: [AlertClass; 6] = [
        Self::TargetDown,
        Self::SloBurn,
        Self::BreakerOpen,
        Self::Latency,
        Self::Flapping,
        Self::HealthScore,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TargetDown => "target_down",
            Self::Flapping => "flapping",
            Self::Latency => "latency",
            Self::BreakerOpen => "breaker_open",
            Self::SloBurn => "slo_burn",
            Self::Restarted => "restarted",
            Self::RestartsTooOften => "restarts_too_often",
            Self::HealBudget => "heal_budget",
            Self::MassFailure => "mass_failure",
            Self::HealthScore => "health_score",
            Self::Hale => "hale",
            Self::Workflow => "workflow",
        }
    }

    /// The class of one of hale's own rules.
    pub fn of(condition: &Condition) -> Self {
        match condition {
            Condition::ConsecutiveFailures { .. } => Self::TargetDown,
            Condition::FailuresWithin { .. } => Self::Flapping,
            Condition::Restarted => Self::Restarted,
            Condition::HealBudgetExhausted => Self::HealBudget,
            Condition::MassFailure => Self::MassFailure,
            Condition::SloBurn { .. } => Self::SloBurn,
        }
    }

    /// The `slo` label of an alert of hale's own of this class: its burn-rate rules count the availability
    /// budget.
    pub fn slo(self) -> Option<&'static str> {
        (self == Self::SloBurn).then_some(SLO_AVAILABILITY)
    }

    /// The section of docs/runbooks.md for an alert of hale's own of this class and level: the section of
    /// the exported alert that means the same, or one of its own.
    pub fn runbook_anchor(self, level: AlertLevel) -> &'static str {
        match self {
            Self::TargetDown => "haletargetdown",
            Self::SloBurn if level == AlertLevel::Critical => "haleavailabilitybudgetburnpage",
            Self::SloBurn => "haleavailabilitybudgetburnticket",
            Self::Flapping => "target_flapping",
            Self::Restarted => "target_restarted",
            Self::HealBudget => "heal_budget_exhausted",
            Self::MassFailure => "mass_failure",
            Self::Latency => "haletargetlatencyhigh",
            Self::BreakerOpen => "halecircuitbreakeropen",
            Self::RestartsTooOften => "haletargetrestartingtoooften",
            Self::HealthScore => "halehealthscorelow",
            Self::Hale => "haleservicedown",
            // Each announcement links its own section (`AnnouncementRule::runbook_anchor`); this is the
            // first of them.
            Self::Workflow => "workflow-notify",
        }
    }
}

/// A `|`-separated regex alternative of classes, for a label matcher.
pub fn alternatives(classes: &[AlertClass]) -> String {
    classes
        .iter()
        .map(|c| c.as_str())
        .collect::<Vec<_>>()
        .join("|")
}

/// The runbook link of a section: `base#anchor`.
pub fn runbook_url(base: &str, anchor: &str) -> String {
    format!("{base}#{anchor}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_condition_has_a_class_and_only_burns_have_an_slo() {
        let cases = [
            (Condition::ConsecutiveFailures { count: 3 }, "target_down"),
            (
                Condition::FailuresWithin {
                    count: 5,
                    window_s: 60,
                },
                "flapping",
            ),
            (Condition::Restarted, "restarted"),
            (Condition::HealBudgetExhausted, "heal_budget"),
            (Condition::MassFailure, "mass_failure"),
        ];
        for (condition, class) in cases {
            assert_eq!(AlertClass::of(&condition).as_str(), class);
            assert_eq!(AlertClass::of(&condition).slo(), None);
        }
        assert_eq!(AlertClass::SloBurn.slo(), Some(SLO_AVAILABILITY));
        assert_eq!(
            alternatives(&AlertClass::HELD_BACK_BY_TARGET_DOWN),
            "slo_burn|breaker_open|latency|flapping"
        );
    }

    #[test]
    fn class_values_are_distinct_label_values() {
        let mut seen = std::collections::HashSet::new();
        for class in AlertClass::ALL {
            let value = class.as_str();
            assert!(seen.insert(value), "{value} twice");
            assert!(value.chars().all(|c| c.is_ascii_lowercase() || c == '_'));
            assert_eq!(
                serde_json::to_value(class).unwrap(),
                serde_json::json!(value)
            );
        }
    }
}
