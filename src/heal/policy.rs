//! When auto-heal may act, as pure rules: `HealPolicy::decide` takes what is known of one attempt (the
//! target's action, who asks, its holds, its child's last exit, how many targets fail, its recent heals)
//! and `now`, and says whether to act or why not. No I/O and no clock: `Healer` (`mod.rs`) gathers the
//! facts from the supervisor, the streaks and the store, then acts and stores the attempt.
//!
//! The protections, in this order (the first that refuses is the attempt's outcome):
//! 1. the target has an action (a run block or a heal command): else `skipped_no_action`;
//! 2. no workflow run holds it, unless the workflow asks: else `skipped_held`;
//! 3. a supervised child did not last exit with a "configuration error" code: else `skipped_config_error`;
//! 4. most targets are not failing at once: else `skipped_mass_failure`;
//! 5. its latest action is at least `cooldown_s` old: else `skipped_cooldown`;
//! 6. fewer than `max_per_hour` actions in the last hour: else `skipped_budget`.
//!
//! When the store could not say when it last acted or how often, the attempt is refused (acting blind
//! could storm). The automatic triggers are pure too: a target's `after_failures`-th failure in a row
//! heals at once (`heals_on_check`), and the sweep heals a target still down a sweep interval after its
//! previous attempt (`sweep_due`).

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::config::HealConfig;
use crate::probe::streaks::is_mass_failure;
use crate::records::{HealAction, HealOutcome, HealTrigger};

/// What is known of one attempt before its history is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// What healing the target means (from its config).
    pub action: HealAction,
    pub trigger: HealTrigger,
    /// A workflow run holds the target.
    pub held: bool,
    /// The exit code of the target's supervised child, when it last exited by itself.
    pub last_exit_code: Option<i32>,
    /// Targets whose latest scheduled check failed, of `total`.
    pub failing: usize,
    pub total: usize,
}

/// The target's recent heal actions, as the store answered (an error: the store could not say).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecentHeals {
    /// When hale last acted on the target.
    pub last_action: Result<Option<DateTime<Utc>>, String>,
    /// How many times it acted in the hour before `now`.
    pub actions_last_hour: Result<u32, String>,
}

/// What to do about one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Act: restart the child or run the heal command.
    Act(HealAction),
    /// Do not act: the attempt is stored with this outcome and reason.
    Refuse {
        outcome: HealOutcome,
        reason: String,
    },
}

/// The heal settings the rules read.
#[derive(Debug, Clone)]
pub struct HealPolicy {
    settings: HealConfig,
}

impl HealPolicy {
    pub fn new(settings: &HealConfig) -> Self {
        Self {
            settings: settings.clone(),
        }
    }

    /// Every protection, in order: act, or the first refusal.
    pub fn decide(&self, attempt: &Attempt, recent: &RecentHeals, now: DateTime<Utc>) -> Decision {
        match self.admit(attempt) {
            Decision::Act(_) => self.within_limits(attempt.action, recent, now),
            refused => refused,
        }
    }

    /// The protections that need no history (1 to 4): when one refuses, the history need not be read.
    pub fn admit(&self, attempt: &Attempt) -> Decision {
        if attempt.action == HealAction::None {
            return refuse(
                HealOutcome::SkippedNoAction,
                "the target has neither a run block nor a heal command".to_owned(),
            );
        }
        if attempt.trigger != HealTrigger::Workflow && attempt.held {
            return refuse(
                HealOutcome::SkippedHeld,
                "a workflow run holds the target".to_owned(),
            );
        }
        if attempt.action == HealAction::RestartChild {
            if let Some(code) = attempt.last_exit_code {
                if self.settings.config_error_exit_codes.contains(&code) {
                    return refuse(
                        HealOutcome::SkippedConfigError,
                        format!("the child last exited with {code}, a configuration error: a restart cannot help"),
                    );
                }
            }
        }
        if self.mass_failure(attempt.failing, attempt.total) {
            return refuse(
                HealOutcome::SkippedMassFailure,
                format!(
                    "{} of {} targets fail at once: hale's own host or network is the likelier cause",
                    attempt.failing, attempt.total
                ),
            );
        }
        Decision::Act(attempt.action)
    }

    /// The protections that read the history (5 and 6): cooldown, then hourly budget.
    pub fn within_limits(
        &self,
        action: HealAction,
        recent: &RecentHeals,
        now: DateTime<Utc>,
    ) -> Decision {
        match self.cooldown(action, &recent.last_action, now) {
            Decision::Act(_) => self.budget(action, &recent.actions_last_hour),
            refused => refused,
        }
    }

    /// Protection 5: the latest action (`last_action`, as the store answered) is at least `cooldown_s` old.
    pub fn cooldown(
        &self,
        action: HealAction,
        last_action: &Result<Option<DateTime<Utc>>, String>,
        now: DateTime<Utc>,
    ) -> Decision {
        let cooldown = chrono::Duration::seconds(self.settings.cooldown_s as i64);
        match last_action {
            Ok(Some(last)) if now - *last < cooldown => refuse(
                HealOutcome::SkippedCooldown,
                format!(
                    "healed at {}, less than the cooldown of {} s ago",
                    last.to_rfc3339(),
                    self.settings.cooldown_s
                ),
            ),
            Ok(_) => Decision::Act(action),
            Err(e) => refuse(
                HealOutcome::SkippedCooldown,
                format!("cannot read the previous heals, so the cooldown cannot be checked: {e}"),
            ),
        }
    }

    /// Protection 6: fewer than `max_per_hour` actions in the last hour (`actions`, as the store answered).
    pub fn budget(&self, action: HealAction, actions: &Result<u32, String>) -> Decision {
        match actions {
            Ok(n) if *n >= self.settings.max_per_hour => refuse(
                HealOutcome::SkippedBudget,
                format!(
                    "healed {n} times in the last hour; the budget is {} (heal.max_per_hour)",
                    self.settings.max_per_hour
                ),
            ),
            Ok(_) => Decision::Act(action),
            Err(e) => refuse(
                HealOutcome::SkippedBudget,
                format!("cannot read the previous heals, so the budget cannot be checked: {e}"),
            ),
        }
    }

    /// More than `mass_failure_share` of at least `mass_failure_min_targets` targets fail at once.
    pub fn mass_failure(&self, failing: usize, total: usize) -> bool {
        is_mass_failure(
            failing,
            total,
            self.settings.mass_failure_share,
            self.settings.mass_failure_min_targets,
        )
    }

    /// A scheduled check left the target `consecutive_failures` failures in a row: heal it now exactly at
    /// the `after_failures`-th (the sweep takes over after that).
    pub fn heals_on_check(&self, consecutive_failures: u32) -> bool {
        consecutive_failures == self.settings.after_failures
    }

    /// The target has failed long enough for the sweep to heal it.
    pub fn down_long_enough(&self, consecutive_failures: u32) -> bool {
        consecutive_failures >= self.settings.after_failures
    }

    /// The sweep heals a target still down once `sweep_interval_s` has passed since its latest automatic
    /// attempt started (or since the loop `started`, whichever is later).
    pub fn sweep_due(
        &self,
        last_attempt: Option<DateTime<Utc>>,
        started: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> bool {
        let since = last_attempt.unwrap_or(started).max(started);
        (now - since).to_std().unwrap_or_default()
            >= Duration::from_secs(self.settings.sweep_interval_s)
    }
}

fn refuse(outcome: HealOutcome, reason: String) -> Decision {
    Decision::Refuse { outcome, reason }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> DateTime<Utc> {
        // A valid timestamp, so this always returns Some.
        DateTime::from_timestamp(1_700_000_000, 0).unwrap()
    }

    fn secs(n: i64) -> chrono::Duration {
        chrono::Duration::seconds(n)
    }

    fn policy() -> HealPolicy {
        HealPolicy::new(&HealConfig {
            after_failures: 3,
            sweep_interval_s: 60,
            cooldown_s: 60,
            max_per_hour: 3,
            mass_failure_share: 0.5,
            mass_failure_min_targets: 3,
            config_error_exit_codes: vec![78],
            ..HealConfig::default()
        })
    }

    fn attempt() -> Attempt {
        Attempt {
            action: HealAction::RestartChild,
            trigger: HealTrigger::Automatic,
            held: false,
            last_exit_code: None,
            failing: 1,
            total: 4,
        }
    }

    fn never_healed() -> RecentHeals {
        RecentHeals {
            last_action: Ok(None),
            actions_last_hour: Ok(0),
        }
    }

    fn outcome(decision: &Decision) -> Option<HealOutcome> {
        match decision {
            Decision::Act(_) => None,
            Decision::Refuse { outcome, .. } => Some(*outcome),
        }
    }

    fn reason(decision: Decision) -> String {
        match decision {
            Decision::Act(action) => format!("act {}", action.as_str()),
            Decision::Refuse { reason, .. } => reason,
        }
    }

    #[test]
    fn a_target_never_healed_is_healed_with_its_action() {
        let p = policy();
        assert_eq!(
            p.decide(&attempt(), &never_healed(), t0()),
            Decision::Act(HealAction::RestartChild)
        );
        let command = Attempt {
            action: HealAction::Command,
            ..attempt()
        };
        assert_eq!(
            p.decide(&command, &never_healed(), t0()),
            Decision::Act(HealAction::Command)
        );
    }

    #[test]
    fn a_target_without_an_action_is_not_healable_whatever_else_holds() {
        let none = Attempt {
            action: HealAction::None,
            held: true,
            failing: 4,
            ..attempt()
        };
        let d = policy().decide(&none, &never_healed(), t0());
        assert_eq!(outcome(&d), Some(HealOutcome::SkippedNoAction));
        assert_eq!(
            reason(d),
            "the target has neither a run block nor a heal command"
        );
    }

    #[test]
    fn a_held_target_is_only_healed_by_the_workflow() {
        let p = policy();
        for trigger in [HealTrigger::Automatic, HealTrigger::Manual] {
            let held = Attempt {
                held: true,
                trigger,
                ..attempt()
            };
            assert_eq!(
                outcome(&p.decide(&held, &never_healed(), t0())),
                Some(HealOutcome::SkippedHeld)
            );
        }
        let workflow = Attempt {
            held: true,
            trigger: HealTrigger::Workflow,
            ..attempt()
        };
        assert_eq!(outcome(&p.decide(&workflow, &never_healed(), t0())), None);
    }

    #[test]
    fn a_child_that_exited_with_a_config_error_code_is_not_restarted() {
        let p = policy();
        let config_error = Attempt {
            last_exit_code: Some(78),
            ..attempt()
        };
        let d = p.decide(&config_error, &never_healed(), t0());
        assert_eq!(outcome(&d), Some(HealOutcome::SkippedConfigError));
        assert_eq!(
            reason(d),
            "the child last exited with 78, a configuration error: a restart cannot help"
        );
        let other_code = Attempt {
            last_exit_code: Some(1),
            ..attempt()
        };
        assert_eq!(outcome(&p.decide(&other_code, &never_healed(), t0())), None);
        // A heal command may fix what the config error was about.
        let command = Attempt {
            action: HealAction::Command,
            last_exit_code: Some(78),
            ..attempt()
        };
        assert_eq!(outcome(&p.decide(&command, &never_healed(), t0())), None);
    }

    #[test]
    fn a_mass_failure_holds_off_from_more_than_half_of_at_least_three() {
        let p = policy();
        let failing = |failing, total| Attempt {
            failing,
            total,
            ..attempt()
        };
        let d = p.decide(&failing(3, 4), &never_healed(), t0());
        assert_eq!(outcome(&d), Some(HealOutcome::SkippedMassFailure));
        assert_eq!(
            reason(d),
            "3 of 4 targets fail at once: hale's own host or network is the likelier cause"
        );
        assert_eq!(
            outcome(&p.decide(&failing(2, 4), &never_healed(), t0())),
            None,
            "exactly half is not more than half"
        );
        assert_eq!(
            outcome(&p.decide(&failing(2, 2), &never_healed(), t0())),
            None,
            "fewer targets than mass_failure_min_targets"
        );
    }

    #[test]
    fn the_cooldown_holds_until_exactly_cooldown_s_after_the_last_action() {
        let p = policy();
        let last = |at| RecentHeals {
            last_action: Ok(Some(at)),
            actions_last_hour: Ok(1),
        };
        let d = p.decide(&attempt(), &last(t0()), t0() + secs(59));
        assert_eq!(outcome(&d), Some(HealOutcome::SkippedCooldown));
        assert_eq!(
            reason(d),
            "healed at 2023-11-14T22:13:20+00:00, less than the cooldown of 60 s ago"
        );
        assert_eq!(
            outcome(&p.decide(&attempt(), &last(t0()), t0() + secs(60))),
            None
        );
    }

    #[test]
    fn the_budget_is_spent_at_max_per_hour_actions() {
        let p = policy();
        let healed = |n| RecentHeals {
            last_action: Ok(Some(t0())),
            actions_last_hour: Ok(n),
        };
        let later = t0() + secs(600);
        assert_eq!(outcome(&p.decide(&attempt(), &healed(2), later)), None);
        let d = p.decide(&attempt(), &healed(3), later);
        assert_eq!(outcome(&d), Some(HealOutcome::SkippedBudget));
        assert_eq!(
            reason(d),
            "healed 3 times in the last hour; the budget is 3 (heal.max_per_hour)"
        );
    }

    #[test]
    fn the_cooldown_is_checked_before_the_budget() {
        let both = RecentHeals {
            last_action: Ok(Some(t0())),
            actions_last_hour: Ok(99),
        };
        assert_eq!(
            outcome(&policy().decide(&attempt(), &both, t0() + secs(1))),
            Some(HealOutcome::SkippedCooldown)
        );
    }

    #[test]
    fn an_unreadable_history_refuses_rather_than_acts_blind() {
        let p = policy();
        let no_last = RecentHeals {
            last_action: Err("database is locked".to_owned()),
            actions_last_hour: Ok(0),
        };
        let d = p.decide(&attempt(), &no_last, t0());
        assert_eq!(outcome(&d), Some(HealOutcome::SkippedCooldown));
        assert_eq!(
            reason(d),
            "cannot read the previous heals, so the cooldown cannot be checked: database is locked"
        );
        let no_count = RecentHeals {
            last_action: Ok(None),
            actions_last_hour: Err("disk i/o error".to_owned()),
        };
        let d = p.decide(&attempt(), &no_count, t0());
        assert_eq!(outcome(&d), Some(HealOutcome::SkippedBudget));
        assert_eq!(
            reason(d),
            "cannot read the previous heals, so the budget cannot be checked: disk i/o error"
        );
    }

    #[test]
    fn admit_refuses_before_any_history_is_needed() {
        let p = policy();
        let held = Attempt {
            held: true,
            ..attempt()
        };
        assert_eq!(outcome(&p.admit(&held)), Some(HealOutcome::SkippedHeld));
        assert_eq!(p.admit(&attempt()), Decision::Act(HealAction::RestartChild));
    }

    #[test]
    fn a_check_heals_at_exactly_the_nth_failure_and_the_sweep_after() {
        let p = policy();
        assert!(!p.heals_on_check(2));
        assert!(p.heals_on_check(3));
        assert!(!p.heals_on_check(4), "later failures are the sweep's");
        assert!(!p.down_long_enough(2));
        assert!(p.down_long_enough(3));
        assert!(p.down_long_enough(40));
    }

    #[test]
    fn the_sweep_is_due_a_sweep_interval_after_the_latest_attempt_or_the_start() {
        let p = policy();
        let started = t0();
        assert!(!p.sweep_due(None, started, started + secs(59)));
        assert!(p.sweep_due(None, started, started + secs(60)));
        let attempt = started + secs(100);
        assert!(!p.sweep_due(Some(attempt), started, attempt + secs(59)));
        assert!(p.sweep_due(Some(attempt), started, attempt + secs(60)));
        // An attempt before the loop started (a stale entry) counts from the start.
        assert!(p.sweep_due(Some(started - secs(3_600)), started, started + secs(60)));
        // A clock stepped backwards is not due.
        assert!(!p.sweep_due(None, started, started - secs(10)));
    }
}
