//! The alert rules as a pure state machine: `AlertPolicy` decides, from one event and the `AlertMemory`
//! kept since start, which alerts open, repeat, escalate, are held back or resolve, and returns them as
//! `Action`s. No I/O and no clock: the engine (`engine.rs`) passes `now` and whether a maintenance window
//! covers the target, then stores, counts and sends what the actions say.
//!
//! Rules, per alert (rule, target):
//! - it **opens** when its condition holds: told as `fired`, or stored as `inhibited` and told nothing
//!   while a louder alert holds it back (a critical alert of the same target, or a firing mass failure);
//! - while it still fires, a repeat inside the rule's cooldown, or while inhibited, is **held** (counted,
//!   stored once per run of holds); an alert never told is told (`fired`) once nothing holds it back; one
//!   after the cooldown is told again (`repeated`);
//! - it **resolves** after `resolve_after` successful scheduled checks in a row of its target (a failure
//!   window or a burn rate still over its threshold keeps it firing); one never told ends quietly;
//! - a mass failure (target `*`) fires first on each check, so it holds back that very check's alerts, and
//!   resolves after `resolve_after` checks in a row without a mass failure;
//! - maintenance silences a target's failures: they fire, repeat and count nothing, though a success still
//!   counts towards resolving; restarts and exhausted heal budgets in maintenance fire nothing;
//! - `slo_burn` fires once both windows burn faster than the rule allows for `for_s` (the short window must
//!   be covered by checks) and resolves once the short window burns under it again;
//! - at start, the stored firing alerts come back with their cooldowns (`restore`); those whose rule is
//!   gone end quietly, those whose rule is now louder are escalated.
//!
//! What is kept per target is bounded by the rules, not by time or check rate: a streak, and counts in rings
//! of time buckets (`windows.rs`) for the failure windows and the burn-rate windows. Each check costs the
//! same whatever the number of targets: the failing targets and the firing alerts of each level are running
//! counts, and the mass failure's list of failing targets is only built for a notice that is sent.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::alerts::windows::{WindowCounts, Windows};
use crate::config::{burn, AlertRule, Condition, Config};
use crate::events::{CheckFinished, ChildExited, ChildStarted};
use crate::probe::streaks::Streaks;
use crate::records::{
    AlertEventKind, AlertLevel, CheckSource, ChildStartCause, HealAction, HealOutcome, HealRecord,
};

/// The target of an alert about all targets at once.
pub const ALL_TARGETS: &str = "*";

/// One alert firing now, as stored in `alerts`.
#[derive(Debug, Clone, PartialEq)]
pub struct FiringAlert {
    /// `alerts.id`; 0 until the engine stored it (or when it could not).
    pub id: i64,
    pub level: AlertLevel,
    pub fired_at: DateTime<Utc>,
    /// None while it was never told (held back by a louder alert).
    pub last_notified_at: Option<DateTime<Utc>>,
    /// Repeats held back since the last notice.
    pub suppressed: u64,
    pub summary: String,
}

/// A firing alert read back at start.
#[derive(Debug, Clone, PartialEq)]
pub struct RestoredAlert {
    pub rule: String,
    pub target: String,
    pub alert: FiringAlert,
}

/// What an alert's notice says: one line, and more.
#[derive(Debug, Clone, PartialEq)]
pub struct Trigger {
    pub summary: String,
    pub description: String,
}

/// Why a repeat was held back, for the notice counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Held {
    /// A louder alert fires.
    Inhibited,
    /// Within the rule's cooldown.
    Suppressed,
}

/// What the engine must do after a decision, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// A new alert: store it with `kind` (`Fired`, then tell it, or `Inhibited`, then only count and log
    /// it). `alert` is what the state holds, with id 0: the engine gives the stored id back
    /// (`AlertMemory::set_alert_id`).
    Open {
        rule: AlertRule,
        target: String,
        kind: AlertEventKind,
        alert: FiringAlert,
        trigger: Trigger,
    },
    /// A firing alert told again (`Fired` after being held back, `Repeated`, `Escalated`): store the event
    /// and send the notice. `alert` is as it was before this notice (its held-back count goes into it).
    Notify {
        rule: AlertRule,
        target: String,
        kind: AlertEventKind,
        alert: FiringAlert,
        trigger: Trigger,
    },
    /// A repeat held back: count it and store it as suppressed (an event only for the first of a run).
    Hold {
        rule: AlertRule,
        alert_id: i64,
        why: Held,
        summary: String,
        first: bool,
    },
    /// An alert that ends: store it as resolved, and tell it if it was ever told.
    Resolve {
        rule: AlertRule,
        target: String,
        alert: FiringAlert,
        trigger: Trigger,
    },
    /// At start: a stored alert whose rule is no longer in the config ends quietly.
    Forget { alert_id: i64, level: AlertLevel },
    /// At start: a firing alert told before hale restarted, handed back to the channels (Alertmanager
    /// keeps being told it fires).
    Restore {
        rule: AlertRule,
        target: String,
        alert: FiringAlert,
    },
}

type Key = (String, String);

/// What the rules remember between events.
#[derive(Debug)]
pub struct AlertMemory {
    streaks: Streaks,
    /// Failed scheduled checks per target, counted over each `failures_within` window (allocated at a
    /// target's first failure).
    failures: HashMap<Arc<str>, WindowCounts<1>>,
    firing: HashMap<Key, FiringAlert>,
    /// How many alerts fire at each level (by `AlertLevel::rank`), kept as `firing` changes.
    active: [usize; 3],
    /// Scheduled checks and bad ones per target, counted over each `slo_burn` window: what burn rates are
    /// computed from, without a query per check.
    recent: HashMap<Arc<str>, WindowCounts<2>>,
    /// Checks in a row without a mass failure while its alert fires.
    mass_clear: u32,
    /// The latest exit of each supervised child, to say why it was restarted.
    last_exit: HashMap<Arc<str>, String>,
    /// `slo_burn` alerts whose windows both burn too fast, since when (they fire once that lasted `for`).
    burning_since: HashMap<Key, DateTime<Utc>>,
}

impl AlertMemory {
    /// Nothing firing, nothing counted, for these targets.
    pub fn new(targets: &[Arc<str>]) -> Self {
        Self {
            streaks: Streaks::new(targets.iter().cloned()),
            failures: targets
                .iter()
                .map(|t| (t.clone(), WindowCounts::default()))
                .collect(),
            recent: targets
                .iter()
                .map(|t| (t.clone(), WindowCounts::default()))
                .collect(),
            firing: HashMap::new(),
            active: [0; 3],
            mass_clear: 0,
            last_exit: HashMap::new(),
            burning_since: HashMap::new(),
        }
    }

    /// Gives a just-opened alert its stored id.
    pub fn set_alert_id(&mut self, rule: &str, target: &str, id: i64) {
        if let Some(alert) = self.firing.get_mut(&(rule.to_owned(), target.to_owned())) {
            alert.id = id;
        }
    }

    /// How many alerts fire at `level`. O(1).
    pub fn active(&self, level: AlertLevel) -> usize {
        self.active[usize::from(level.rank())]
    }

    /// Starts (or replaces) a firing alert, keeping the counts per level.
    fn insert_firing(&mut self, key: Key, alert: FiringAlert) {
        self.active[usize::from(alert.level.rank())] += 1;
        if let Some(old) = self.firing.insert(key, alert) {
            self.active[usize::from(old.level.rank())] -= 1;
        }
    }

    /// Ends a firing alert, keeping the counts per level.
    fn remove_firing(&mut self, key: &Key) -> Option<FiringAlert> {
        let alert = self.firing.remove(key)?;
        self.active[usize::from(alert.level.rank())] -= 1;
        Some(alert)
    }

    /// The alert of `rule` on `target`, while it fires.
    pub fn firing(&self, rule: &str, target: &str) -> Option<&FiringAlert> {
        self.firing.get(&(rule.to_owned(), target.to_owned()))
    }

    /// The targets whose checks are kept for burn rates.
    pub fn burn_targets(&self) -> Vec<Arc<str>> {
        self.recent.keys().cloned().collect()
    }
}

/// The settings every rule shares.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    /// `alerts.resolve_after_successes`.
    pub resolve_after: u32,
    /// `heal.mass_failure_share` and `heal.mass_failure_min_targets`.
    pub mass_share: f64,
    pub mass_min_targets: usize,
    /// The availability objective, as a ratio.
    pub slo_target_ratio: f64,
    /// `slo.window_days`.
    pub slo_window_days: u32,
}

/// The configured rules and thresholds.
#[derive(Debug, Clone)]
pub struct AlertPolicy {
    rules: Vec<AlertRule>,
    resolve_after: u32,
    mass_share: f64,
    mass_min_targets: usize,
    /// The `failures_within` windows, each counted in a ring per target.
    failure_windows: Windows,
    /// The `slo_burn` windows (long and short), each counted in a ring per target.
    burn_windows: Windows,
    /// The availability objective, as a ratio: what a burn rate is relative to.
    slo_target_ratio: f64,
    /// `slo.window_days`: what the burn-rate table's thresholds are scaled to.
    slo_window_days: u32,
}

impl AlertPolicy {
    pub fn new(config: &Config) -> Self {
        Self::with_rules(
            config.alerts.active_rules().cloned().collect(),
            Thresholds {
                resolve_after: config.alerts.resolve_after_successes,
                mass_share: config.heal.mass_failure_share,
                mass_min_targets: config.heal.mass_failure_min_targets,
                slo_target_ratio: config.slo.availability_target_ratio(),
                slo_window_days: config.slo.window_days,
            },
        )
    }

    /// The rules (already filtered to the active ones) and their shared thresholds.
    pub fn with_rules(rules: Vec<AlertRule>, thresholds: Thresholds) -> Self {
        let failure_windows = Windows::new(rules.iter().filter_map(|r| match r.when {
            Condition::FailuresWithin { window_s, .. } => Some(window_s),
            _ => None,
        }));
        let burn_windows = Windows::new(rules.iter().flat_map(|r| match r.when {
            Condition::SloBurn {
                long_window_s,
                short_window_s,
                ..
            } => vec![long_window_s, short_window_s],
            _ => Vec::new(),
        }));
        Self {
            rules,
            resolve_after: thresholds.resolve_after,
            mass_share: thresholds.mass_share,
            mass_min_targets: thresholds.mass_min_targets,
            failure_windows,
            burn_windows,
            slo_target_ratio: thresholds.slo_target_ratio,
            slo_window_days: thresholds.slo_window_days,
        }
    }

    /// A fresh state for the configured targets.
    pub fn new_state(config: &Config) -> AlertMemory {
        let targets: Vec<Arc<str>> = config.services.iter().map(|t| t.name.shared()).collect();
        AlertMemory::new(&targets)
    }

    pub fn rule(&self, name: &str) -> Option<&AlertRule> {
        self.rules.iter().find(|r| r.name == name)
    }

    /// How far back the stored failed checks matter at start (0: no `failures_within` rule).
    pub fn failure_lookback_s(&self) -> u64 {
        self.failure_windows.longest_s()
    }

    /// How far back the stored scheduled checks matter at start (0: no `slo_burn` rule).
    pub fn burn_lookback_s(&self) -> u64 {
        self.burn_windows.longest_s()
    }

    /// The bytes of window counts one target takes at most with these rules: the burn windows' rings
    /// (allocated at its first check) and the failure windows' (at its first failure).
    pub fn window_bytes_per_target(&self) -> usize {
        let burn = if self.burn_windows.is_empty() {
            0
        } else {
            self.burn_windows.bytes_per_target::<2>()
        };
        let failures = if self.failure_windows.is_empty() {
            0
        } else {
            self.failure_windows.bytes_per_target::<1>()
        };
        burn + failures
    }

    /// Takes back the firing alerts stored before a restart: their cooldowns go on; those whose rule is
    /// gone end quietly, those whose rule is now louder are escalated.
    pub fn restore(
        &self,
        state: &mut AlertMemory,
        alerts: Vec<RestoredAlert>,
        now: DateTime<Utc>,
    ) -> Vec<Action> {
        let mut actions = Vec::new();
        for RestoredAlert {
            rule,
            target,
            mut alert,
        } in alerts
        {
            let Some(rule) = self.rule(&rule).cloned() else {
                actions.push(Action::Forget {
                    alert_id: alert.id,
                    level: alert.level,
                });
                continue;
            };
            if alert.last_notified_at.is_some() {
                actions.push(Action::Restore {
                    rule: rule.clone(),
                    target: target.clone(),
                    alert: alert.clone(),
                });
            }
            if rule.level.rank() > alert.level.rank() {
                alert.level = rule.level;
                let trigger = Trigger {
                    summary: alert.summary.clone(),
                    description: format!("the rule {} is now {}", rule.name, rule.level.as_str()),
                };
                actions.push(notify(
                    &rule,
                    &target,
                    &mut alert,
                    AlertEventKind::Escalated,
                    trigger,
                    now,
                ));
            }
            state.insert_firing((rule.name.clone(), target), alert);
        }
        actions
    }

    /// Takes back the failed scheduled checks made within the longest `failures_within` window before a
    /// restart (those made in maintenance already left out).
    pub fn restore_failures(
        &self,
        state: &mut AlertMemory,
        failed: impl IntoIterator<Item = (String, DateTime<Utc>)>,
    ) {
        for (target, at) in failed {
            if let Some(counts) = state.failures.get_mut(target.as_str()) {
                counts.add(&self.failure_windows, at, [1]);
            }
        }
    }

    /// Takes back a target's scheduled checks (when, and whether bad) within the longest `slo_burn` window
    /// before a restart (those made in maintenance already left out), oldest first.
    pub fn restore_recent(
        &self,
        state: &mut AlertMemory,
        target: &str,
        checks: impl IntoIterator<Item = (DateTime<Utc>, bool)>,
    ) {
        if let Some(counts) = state.recent.get_mut(target) {
            for (at, bad) in checks {
                counts.add(&self.burn_windows, at, [1, u16::from(bad)]);
            }
        }
    }

    /// Remembers how a supervised child ended, to say why it was restarted.
    pub fn on_child_exited(&self, state: &mut AlertMemory, exit: &ChildExited) {
        let how = match (exit.code, exit.signal) {
            (Some(code), _) => format!("its process exited with {code}"),
            (None, Some(signal)) => format!("its process was killed by signal {signal}"),
            _ => "its process ended".to_owned(),
        };
        state.last_exit.insert(exit.target.clone(), how);
    }

    /// A supervised child started again: fires `restarted` rules, unless it is its first start or a
    /// maintenance window covers its target.
    pub fn on_child_started(
        &self,
        state: &mut AlertMemory,
        started: &ChildStarted,
        maintenance: bool,
        now: DateTime<Utc>,
    ) -> Vec<Action> {
        let mut actions = Vec::new();
        if started.cause == ChildStartCause::Start || maintenance {
            return actions;
        }
        let why = match started.cause {
            ChildStartCause::Heal => "by auto-heal".to_owned(),
            _ => format!(
                "after {}",
                state
                    .last_exit
                    .get(&started.target)
                    .map_or("it exited", String::as_str)
            ),
        };
        let trigger = Trigger {
            summary: format!("{} was restarted", started.target),
            description: format!("hale restarted the child of {} {why}", started.target),
        };
        self.on_condition(state, &started.target, &trigger, now, &mut actions, |c| {
            matches!(c, Condition::Restarted)
        });
        actions
    }

    /// A heal finished: a heal command that acted fires `restarted` rules, an exhausted budget fires
    /// `heal_budget_exhausted` rules; nothing while a maintenance window covers the target (a person asked
    /// for that heal).
    pub fn on_heal(
        &self,
        state: &mut AlertMemory,
        heal: &HealRecord,
        maintenance: bool,
        now: DateTime<Utc>,
    ) -> Vec<Action> {
        let mut actions = Vec::new();
        if maintenance {
            return actions;
        }
        if heal.action == HealAction::Command && heal.outcome.acted() {
            let trigger = Trigger {
                summary: format!("{} was restarted", heal.target),
                description: format!(
                    "auto-heal ran the heal command of {} ({})",
                    heal.target,
                    heal.outcome.as_str()
                ),
            };
            self.on_condition(state, &heal.target, &trigger, now, &mut actions, |c| {
                matches!(c, Condition::Restarted)
            });
        }
        if heal.outcome == HealOutcome::SkippedBudget {
            let trigger = Trigger {
                summary: format!(
                    "{}: heal budget exhausted, hale stopped healing it",
                    heal.target
                ),
                description: heal.error.clone().unwrap_or_default(),
            };
            self.on_condition(state, &heal.target, &trigger, now, &mut actions, |c| {
                matches!(c, Condition::HealBudgetExhausted)
            });
        }
        actions
    }

    /// Fires (or repeats) every rule of `target` whose condition matches.
    fn on_condition(
        &self,
        state: &mut AlertMemory,
        target: &str,
        trigger: &Trigger,
        now: DateTime<Utc>,
        actions: &mut Vec<Action>,
        matches: impl Fn(&Condition) -> bool,
    ) {
        for rule in self.rules.iter().filter(|r| matches(&r.when)) {
            actions.push(self.fire_or_repeat(state, rule, target, trigger, now));
        }
    }

    /// One finished check: every rule of its target, and the mass failure, decided. On-demand checks and
    /// unknown targets change nothing. `maintenance`: a maintenance window covers the target at `check.at`.
    pub fn on_check(
        &self,
        state: &mut AlertMemory,
        check: &CheckFinished,
        maintenance: bool,
        now: DateTime<Utc>,
    ) -> Vec<Action> {
        let mut actions = Vec::new();
        if check.source != CheckSource::Monitor {
            return actions;
        }
        let counted = if maintenance {
            state.streaks.observe_in_maintenance(check)
        } else {
            state.streaks.observe(check)
        };
        let Some(streak) = counted else {
            return actions;
        };
        let failed = !check.outcome.is_up();
        // A failure inside a maintenance window fires, repeats and counts nothing for its target.
        let silenced = failed && maintenance;
        if failed && !maintenance && !self.failure_windows.is_empty() {
            if let Some(counts) = state.failures.get_mut(&check.target) {
                counts.add(&self.failure_windows, check.at, [1]);
            }
        }
        // A check inside a maintenance window is not valid for the SLO, so it burns no budget.
        if !maintenance && !self.burn_windows.is_empty() {
            if let Some(counts) = state.recent.get_mut(&check.target) {
                counts.add(&self.burn_windows, check.at, [1, u16::from(failed)]);
            }
        }
        // Mass failure first, so that it holds back the targets' own alerts of this very check.
        if let Some(rule) = self.rules.iter().find(|r| r.when == Condition::MassFailure) {
            let key = (rule.name.clone(), ALL_TARGETS.to_owned());
            if state
                .streaks
                .mass_failure(self.mass_share, self.mass_min_targets)
            {
                state.mass_clear = 0;
                if failed && !maintenance {
                    let summary = format!(
                        "{} of {} targets fail at once",
                        state.streaks.failing(),
                        state.streaks.total()
                    );
                    // The list of failing targets is O(targets): built only for a notice that is sent.
                    let describe = |state: &AlertMemory| {
                        format!(
                            "failing: {}. hale's own host or network is the likelier cause; auto-heal holds off",
                            state
                                .streaks
                                .failing_targets()
                                .iter()
                                .map(|t| t.as_ref())
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    };
                    actions.push(self.fire_or_repeat_with(
                        state,
                        rule,
                        ALL_TARGETS,
                        summary,
                        describe,
                        now,
                    ));
                }
            } else if state.firing.contains_key(&key) {
                state.mass_clear += 1;
                if state.mass_clear >= self.resolve_after {
                    let trigger = Trigger {
                        summary: "most targets answer again".to_owned(),
                        description: format!(
                            "no mass failure for {} checks in a row",
                            state.mass_clear
                        ),
                    };
                    actions.extend(resolve(state, rule, ALL_TARGETS, trigger));
                }
            }
        }
        if silenced {
            return actions;
        }
        let target = check.target.as_ref();
        let failures_in = |state: &AlertMemory, window_s: u64| {
            let (Some(counts), Some(ring)) = (
                state.failures.get(target),
                self.failure_windows.ring(window_s),
            ) else {
                return 0;
            };
            let [failed] = counts.sum(&self.failure_windows, ring, check.at);
            failed as usize
        };
        for rule in &self.rules {
            let key = (rule.name.clone(), target.to_owned());
            match rule.when {
                Condition::ConsecutiveFailures { count }
                    if failed && streak.consecutive_failures >= count =>
                {
                    let trigger = Trigger {
                        summary: format!("{target} is down"),
                        description: format!(
                            "{} failed scheduled checks in a row; the latest: {}",
                            streak.consecutive_failures,
                            describe(check)
                        ),
                    };
                    actions.push(self.fire_or_repeat(state, rule, target, &trigger, now));
                }
                Condition::FailuresWithin { count, window_s } if failed => {
                    let n = failures_in(state, window_s);
                    if n >= count as usize {
                        let trigger = Trigger {
                            summary: format!("{target} is flapping"),
                            description: format!(
                                "{n} failed scheduled checks in the last {}; the latest: {}",
                                human_window(window_s),
                                describe(check)
                            ),
                        };
                        actions.push(self.fire_or_repeat(state, rule, target, &trigger, now));
                    }
                }
                Condition::SloBurn {
                    long_window_s,
                    short_window_s,
                    burn_rate,
                    for_s,
                } if failed || !state.firing.contains_key(&key) => {
                    let (burn_rate, for_s) = burn::resolve(
                        long_window_s,
                        short_window_s,
                        burn_rate,
                        for_s,
                        self.slo_window_days,
                    );
                    let long = self.burn_rate(state, target, check.at, long_window_s, false);
                    let short = self.burn_rate(state, target, check.at, short_window_s, true);
                    let over = matches!((long, short), (Some(l), Some(s)) if l > burn_rate && s > burn_rate);
                    if !over {
                        // Like Prometheus's `for`: the delay starts again once a check finds it not burning.
                        state.burning_since.remove(&key);
                    }
                    if let (Some(long), Some(short), true) = (long, short, over) {
                        let since = *state.burning_since.entry(key.clone()).or_insert(check.at);
                        let lasted = (check.at - since).num_seconds() >= for_s as i64;
                        if failed && lasted {
                            let trigger = Trigger {
                                summary: format!(
                                    "{target} burns its error budget {short:.1}x too fast"
                                ),
                                description: format!(
                                    "burn rate {long:.1} over the last {} and {short:.1} over the last {} (alert above {burn_rate}); the latest: {}",
                                    human_window(long_window_s),
                                    human_window(short_window_s),
                                    describe(check)
                                ),
                            };
                            actions.push(self.fire_or_repeat(state, rule, target, &trigger, now));
                        }
                    }
                }
                Condition::MassFailure => {}
                _ if !failed && state.firing.contains_key(&key) => {
                    let still_over = match rule.when {
                        Condition::FailuresWithin { count, window_s } => {
                            failures_in(state, window_s) >= count as usize
                        }
                        Condition::SloBurn {
                            long_window_s,
                            short_window_s,
                            burn_rate,
                            for_s,
                        } => {
                            let (burn_rate, _) = burn::resolve(
                                long_window_s,
                                short_window_s,
                                burn_rate,
                                for_s,
                                self.slo_window_days,
                            );
                            self.burn_rate(state, target, check.at, short_window_s, false)
                                .is_some_and(|short| short > burn_rate)
                        }
                        _ => false,
                    };
                    if streak.consecutive_successes >= self.resolve_after && !still_over {
                        let trigger = Trigger {
                            summary: format!("{target} is up again"),
                            description: format!(
                                "{} successful checks in a row",
                                streak.consecutive_successes
                            ),
                        };
                        actions.extend(resolve(state, rule, target, trigger));
                    }
                }
                _ => {}
            }
        }
        actions
    }

    /// The burn rate of `target` over the `window_s` before `at` (read from its ring, see `windows.rs`):
    /// its bad ratio over the ratio the SLO allows. With `covered`, None until the record reaches back that
    /// far without a gap as long as the longest burn window: a fresh start is not judged on a few checks
    /// (the short window must be covered; the long one takes what there is).
    fn burn_rate(
        &self,
        state: &AlertMemory,
        target: &str,
        at: DateTime<Utc>,
        window_s: u64,
        covered: bool,
    ) -> Option<f64> {
        let counts = state.recent.get(target)?;
        let ring = self.burn_windows.ring(window_s)?;
        if covered {
            let from = at - chrono::Duration::seconds(window_s as i64);
            if counts
                .since(&self.burn_windows, at)
                .is_none_or(|since| since > from)
            {
                return None;
            }
        }
        let [total, bad] = counts.sum(&self.burn_windows, ring, at);
        crate::slo::arithmetic::burn_rate(u64::from(bad), u64::from(total), self.slo_target_ratio)
    }

    /// True when a louder alert holds this one back: a critical alert of the same target, or a mass
    /// failure. O(rules): one lookup per rule, whatever the number of firing alerts.
    fn inhibited(&self, state: &AlertMemory, rule: &AlertRule, target: &str) -> bool {
        if rule.when == Condition::MassFailure {
            return false;
        }
        let louder_possible = rule.level.rank() < AlertLevel::Critical.rank();
        self.rules.iter().any(|other| {
            if other.when == Condition::MassFailure {
                return state
                    .firing
                    .contains_key(&(other.name.clone(), ALL_TARGETS.to_owned()));
            }
            louder_possible
                && other.name != rule.name
                && state
                    .firing
                    .get(&(other.name.clone(), target.to_owned()))
                    .is_some_and(|firing| firing.level == AlertLevel::Critical)
        })
    }

    fn fire_or_repeat(
        &self,
        state: &mut AlertMemory,
        rule: &AlertRule,
        target: &str,
        trigger: &Trigger,
        now: DateTime<Utc>,
    ) -> Action {
        self.fire_or_repeat_with(
            state,
            rule,
            target,
            trigger.summary.clone(),
            |_| trigger.description.clone(),
            now,
        )
    }

    /// Opens, tells again or holds back the alert of `rule` on `target`. `describe` makes the notice's
    /// description, only when one is opened or told.
    fn fire_or_repeat_with(
        &self,
        state: &mut AlertMemory,
        rule: &AlertRule,
        target: &str,
        summary: String,
        describe: impl FnOnce(&AlertMemory) -> String,
        now: DateTime<Utc>,
    ) -> Action {
        let key = (rule.name.clone(), target.to_owned());
        let inhibited = self.inhibited(state, rule, target);
        let held = state.firing.get(&key).map(|firing| {
            let cooled = firing.last_notified_at.is_none_or(|at| {
                (now - at).to_std().unwrap_or_default().as_secs() >= rule.cooldown_s
            });
            let never_told = firing.last_notified_at.is_none();
            (inhibited || !(never_told || cooled), never_told)
        });
        if let (Some((true, _)), Some(firing)) = (held, state.firing.get_mut(&key)) {
            // Held back by a louder alert, or a repeat within the cooldown: counted, not sent.
            firing.suppressed += 1;
            return Action::Hold {
                rule: rule.clone(),
                alert_id: firing.id,
                why: if inhibited {
                    Held::Inhibited
                } else {
                    Held::Suppressed
                },
                summary,
                first: firing.suppressed == 1,
            };
        }
        let trigger = Trigger {
            description: describe(&*state),
            summary,
        };
        if let (Some((_, never_told)), Some(firing)) = (held, state.firing.get_mut(&key)) {
            // Held back so far (now it can be told), or due again after its cooldown.
            let kind = if never_told {
                AlertEventKind::Fired
            } else {
                AlertEventKind::Repeated
            };
            return notify(rule, target, firing, kind, trigger, now);
        }
        let alert = FiringAlert {
            id: 0,
            level: rule.level,
            fired_at: now,
            last_notified_at: (!inhibited).then_some(now),
            suppressed: 0,
            summary: trigger.summary.clone(),
        };
        state.insert_firing(key, alert.clone());
        Action::Open {
            rule: rule.clone(),
            target: target.to_owned(),
            kind: if inhibited {
                AlertEventKind::Inhibited
            } else {
                AlertEventKind::Fired
            },
            alert,
            trigger,
        }
    }
}

/// Tells a firing alert again and restarts its cooldown; the action carries the alert as it was.
fn notify(
    rule: &AlertRule,
    target: &str,
    firing: &mut FiringAlert,
    kind: AlertEventKind,
    trigger: Trigger,
    now: DateTime<Utc>,
) -> Action {
    let before = firing.clone();
    firing.last_notified_at = Some(now);
    firing.suppressed = 0;
    firing.summary = trigger.summary.clone();
    Action::Notify {
        rule: rule.clone(),
        target: target.to_owned(),
        kind,
        alert: before,
        trigger,
    }
}

fn resolve(
    state: &mut AlertMemory,
    rule: &AlertRule,
    target: &str,
    trigger: Trigger,
) -> Option<Action> {
    let alert = state.remove_firing(&(rule.name.clone(), target.to_owned()))?;
    Some(Action::Resolve {
        rule: rule.clone(),
        target: target.to_owned(),
        alert,
        trigger,
    })
}

/// "down, HTTP 503" or "timeout".
fn describe(check: &CheckFinished) -> String {
    match check.http_status {
        Some(status) => format!("{}, HTTP {status}", check.outcome.as_str()),
        None => check.outcome.as_str().to_owned(),
    }
}

fn human_window(seconds: u64) -> String {
    match seconds {
        s if s % 3_600 == 0 => format!("{} h", s / 3_600),
        s if s % 60 == 0 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::ChannelKind;
    use crate::records::Outcome;

    fn t0() -> DateTime<Utc> {
        // A valid timestamp, so this always returns Some.
        DateTime::from_timestamp(1_700_000_000, 0).unwrap()
    }

    fn at(seconds: i64) -> DateTime<Utc> {
        t0() + chrono::Duration::seconds(seconds)
    }

    fn rule(name: &str, when: Condition, level: AlertLevel, cooldown_s: u64) -> AlertRule {
        AlertRule {
            name: name.to_owned(),
            when,
            level,
            cooldown_s,
            channels: vec![ChannelKind::Log],
            enabled: true,
        }
    }

    fn down_after(count: u32) -> AlertRule {
        rule(
            "down",
            Condition::ConsecutiveFailures { count },
            AlertLevel::Critical,
            300,
        )
    }

    fn policy(rules: Vec<AlertRule>) -> AlertPolicy {
        AlertPolicy::with_rules(
            rules,
            Thresholds {
                resolve_after: 2,
                mass_share: 0.5,
                mass_min_targets: 3,
                slo_target_ratio: 0.99,
                slo_window_days: 30,
            },
        )
    }

    fn state() -> AlertMemory {
        AlertMemory::new(&["a", "b", "c", "d"].map(Arc::from))
    }

    fn check(target: &str, outcome: Outcome, when: DateTime<Utc>) -> CheckFinished {
        CheckFinished {
            target: Arc::from(target),
            outcome,
            http_status: (outcome == Outcome::Down).then_some(503),
            latency: Some(Duration::from_millis(5)),
            source: CheckSource::Monitor,
            at: when,
        }
    }

    /// Each action in one line, to compare a decision at a glance.
    fn said(actions: &[Action]) -> Vec<String> {
        actions
            .iter()
            .map(|a| match a {
                Action::Open {
                    rule, target, kind, ..
                } => format!("open {} {} {target}", kind.as_str(), rule.name),
                Action::Notify {
                    rule, target, kind, ..
                } => format!("notify {} {} {target}", kind.as_str(), rule.name),
                Action::Hold {
                    rule, why, first, ..
                } => format!("hold {why:?} {} first={first}", rule.name),
                Action::Resolve { rule, target, .. } => format!("resolve {} {target}", rule.name),
                Action::Forget { alert_id, .. } => format!("forget {alert_id}"),
                Action::Restore { rule, target, .. } => format!("restore {} {target}", rule.name),
            })
            .collect()
    }

    /// Feeds `outcomes` for `target`, one check a minute from `from` (seconds after t0), `now` = the check's
    /// time; returns what the last check said.
    fn feed(
        p: &AlertPolicy,
        s: &mut AlertMemory,
        target: &str,
        outcomes: &[Outcome],
        from: i64,
    ) -> Vec<Action> {
        let mut last = Vec::new();
        for (i, outcome) in outcomes.iter().enumerate() {
            let when = at(from + 60 * i as i64);
            last = p.on_check(s, &check(target, *outcome, when), false, when);
        }
        last
    }

    use Outcome::{Down, Up};

    #[test]
    fn failures_below_the_threshold_fire_nothing_and_the_nth_fires() {
        let p = policy(vec![down_after(3)]);
        let mut s = state();
        assert!(feed(&p, &mut s, "a", &[Down, Down], 0).is_empty());
        let fired = feed(&p, &mut s, "a", &[Down], 120);
        assert_eq!(said(&fired), ["open fired down a"]);
        let Action::Open { alert, trigger, .. } = &fired[0] else {
            unreachable!("checked above")
        };
        assert_eq!(trigger.summary, "a is down");
        assert_eq!(
            trigger.description,
            "3 failed scheduled checks in a row; the latest: down, HTTP 503"
        );
        assert_eq!(alert.last_notified_at, Some(at(120)));
        assert_eq!(alert.level, AlertLevel::Critical);
        assert_eq!(s.active(AlertLevel::Critical), 1);
    }

    #[test]
    fn a_success_in_between_starts_the_count_again() {
        let p = policy(vec![down_after(3)]);
        let mut s = state();
        assert!(feed(&p, &mut s, "a", &[Down, Down, Up, Down, Down], 0).is_empty());
        assert_eq!(
            said(&feed(&p, &mut s, "a", &[Down], 300)),
            ["open fired down a"]
        );
    }

    #[test]
    fn repeats_within_the_cooldown_are_held_and_one_after_it_is_told_again() {
        let p = policy(vec![down_after(1)]);
        let mut s = state();
        feed(&p, &mut s, "a", &[Down], 0);
        s.set_alert_id("down", "a", 7);
        let first = feed(&p, &mut s, "a", &[Down], 60);
        assert_eq!(said(&first), ["hold Suppressed down first=true"]);
        assert!(matches!(first[0], Action::Hold { alert_id: 7, .. }));
        assert_eq!(
            said(&feed(&p, &mut s, "a", &[Down], 120)),
            ["hold Suppressed down first=false"],
            "only the first of a run of holds is stored as an event"
        );
        // The cooldown is 300 s: 299 s after the notice is still inside it, 300 s is not.
        let inside = at(299);
        assert_eq!(
            said(&p.on_check(&mut s, &check("a", Down, inside), false, inside)),
            ["hold Suppressed down first=false"]
        );
        let due = at(300);
        let repeated = p.on_check(&mut s, &check("a", Down, due), false, due);
        assert_eq!(said(&repeated), ["notify repeated down a"]);
        let Action::Notify { alert, .. } = &repeated[0] else {
            unreachable!("checked above")
        };
        assert_eq!(alert.suppressed, 3, "the notice says how many were held");
        assert_eq!(alert.id, 7);
        let now = s.firing("down", "a").cloned();
        assert_eq!(now.as_ref().map(|f| f.suppressed), Some(0));
        assert_eq!(now.and_then(|f| f.last_notified_at), Some(due));
    }

    #[test]
    fn an_alert_resolves_after_resolve_after_successes_in_a_row() {
        let p = policy(vec![down_after(1)]);
        let mut s = state();
        feed(&p, &mut s, "a", &[Down], 0);
        assert!(feed(&p, &mut s, "a", &[Up], 60).is_empty(), "one success");
        assert!(feed(&p, &mut s, "a", &[Down, Up], 120).len() <= 1);
        let resolved = feed(&p, &mut s, "a", &[Up], 240);
        assert_eq!(said(&resolved), ["resolve down a"]);
        let Action::Resolve { trigger, alert, .. } = &resolved[0] else {
            unreachable!("checked above")
        };
        assert_eq!(trigger.summary, "a is up again");
        assert_eq!(trigger.description, "2 successful checks in a row");
        assert!(alert.last_notified_at.is_some(), "told, so the end is told");
        assert_eq!(s.active(AlertLevel::Critical), 0);
        assert!(
            feed(&p, &mut s, "a", &[Up], 300).is_empty(),
            "resolved once"
        );
    }

    #[test]
    fn on_demand_checks_and_unknown_targets_change_nothing() {
        let p = policy(vec![down_after(1)]);
        let mut s = state();
        let mut on_demand = check("a", Down, t0());
        on_demand.source = CheckSource::OnDemand;
        assert!(p.on_check(&mut s, &on_demand, false, t0()).is_empty());
        assert!(p
            .on_check(&mut s, &check("zzz", Down, t0()), false, t0())
            .is_empty());
        assert_eq!(s.active(AlertLevel::Critical), 0);
    }

    #[test]
    fn flapping_fires_on_failures_within_the_window_and_stays_while_they_last() {
        let flapping = rule(
            "flapping",
            Condition::FailuresWithin {
                count: 3,
                window_s: 600,
            },
            AlertLevel::Warning,
            0,
        );
        let p = policy(vec![flapping]);
        let mut s = state();
        // Three failures, but the first leaves the 10 min window before the third.
        assert!(feed(&p, &mut s, "a", &[Down], 0).is_empty());
        assert!(feed(&p, &mut s, "a", &[Down], 300).is_empty());
        assert!(feed(&p, &mut s, "a", &[Down], 601).is_empty());
        let fired = feed(&p, &mut s, "a", &[Up, Down], 660);
        assert_eq!(said(&fired), ["open fired flapping a"]);
        let Action::Open { trigger, .. } = &fired[0] else {
            unreachable!("checked above")
        };
        assert_eq!(trigger.summary, "a is flapping");
        assert_eq!(
            trigger.description,
            "3 failed scheduled checks in the last 10 min; the latest: down, HTTP 503"
        );
        // Successes in a row do not resolve it while 3 failures are still within the window.
        assert!(feed(&p, &mut s, "a", &[Up, Up], 780).is_empty());
        // Once the window has let go of them, the next success resolves it.
        assert_eq!(
            said(&feed(&p, &mut s, "a", &[Up], 1_500)),
            ["resolve flapping a"]
        );
    }

    #[test]
    fn a_critical_alert_holds_back_the_warnings_of_its_target() {
        let warn = rule(
            "slow",
            Condition::ConsecutiveFailures { count: 2 },
            AlertLevel::Warning,
            0,
        );
        let p = policy(vec![down_after(3), warn]);
        let mut s = state();
        assert_eq!(
            said(&feed(&p, &mut s, "a", &[Down, Down], 0)),
            ["open fired slow a"]
        );
        // The critical alert opens first on this check, and holds the warning's repeat back.
        assert_eq!(
            said(&feed(&p, &mut s, "a", &[Down], 120)),
            ["open fired down a", "hold Inhibited slow first=true"]
        );
        assert_eq!(
            said(&feed(&p, &mut s, "a", &[Down], 180)),
            [
                "hold Suppressed down first=true",
                "hold Inhibited slow first=false"
            ]
        );
        // Another target's warning is not held back by a's critical alert.
        assert_eq!(
            said(&feed(&p, &mut s, "b", &[Down, Down], 0)),
            ["open fired slow b"]
        );
    }

    #[test]
    fn an_alert_held_back_is_told_once_nothing_louder_fires() {
        let warn = rule(
            "slow",
            Condition::ConsecutiveFailures { count: 1 },
            AlertLevel::Warning,
            600,
        );
        let p = policy(vec![down_after(1), warn]);
        let mut s = state();
        let first = feed(&p, &mut s, "a", &[Down], 0);
        assert_eq!(said(&first), ["open fired down a", "open inhibited slow a"]);
        // The critical alert ends while the warning still fires, never told.
        let mut s2 = state();
        let only_warn = policy(vec![rule(
            "slow",
            Condition::ConsecutiveFailures { count: 1 },
            AlertLevel::Warning,
            600,
        )]);
        let restored = only_warn.restore(
            &mut s2,
            vec![RestoredAlert {
                rule: "slow".to_owned(),
                target: "a".to_owned(),
                alert: FiringAlert {
                    id: 3,
                    level: AlertLevel::Warning,
                    fired_at: t0(),
                    last_notified_at: None,
                    suppressed: 4,
                    summary: "a is down".to_owned(),
                },
            }],
            at(10),
        );
        assert!(restored.is_empty(), "never told: nothing to hand back");
        let told = feed(&only_warn, &mut s2, "a", &[Down], 60);
        assert_eq!(
            said(&told),
            ["notify fired slow a"],
            "told at once, whatever the cooldown"
        );
        // An alert never told ends quietly: its resolve says so.
        let ended = feed(&p, &mut s, "a", &[Up, Up], 60);
        assert_eq!(said(&ended), ["resolve down a", "resolve slow a"]);
        let Action::Resolve { alert, .. } = &ended[1] else {
            unreachable!("checked above")
        };
        assert_eq!(alert.last_notified_at, None);
    }

    #[test]
    fn a_mass_failure_fires_first_and_holds_back_the_targets_own_alerts() {
        let mass = rule("mass", Condition::MassFailure, AlertLevel::Critical, 0);
        let p = policy(vec![down_after(1), mass]);
        let mut s = state();
        assert_eq!(
            said(&feed(&p, &mut s, "a", &[Down], 0)),
            ["open fired down a"]
        );
        assert_eq!(
            said(&feed(&p, &mut s, "b", &[Down], 0)),
            ["open fired down b"]
        );
        // The third of four failing is more than half: the mass failure fires before c's own alert.
        let third = feed(&p, &mut s, "c", &[Down], 0);
        assert_eq!(said(&third), ["open fired mass *", "open inhibited down c"]);
        let Action::Open { trigger, .. } = &third[0] else {
            unreachable!("checked above")
        };
        assert_eq!(trigger.summary, "3 of 4 targets fail at once");
        assert!(trigger.description.starts_with("failing: a, b, c. "));
        // Two checks in a row without a mass failure resolve it.
        assert!(feed(&p, &mut s, "a", &[Up], 60).is_empty());
        let cleared = feed(&p, &mut s, "b", &[Up], 60);
        assert_eq!(said(&cleared), ["resolve mass *"]);
    }

    #[test]
    fn a_failure_in_maintenance_fires_and_counts_nothing_but_a_success_resolves() {
        let p = policy(vec![down_after(2)]);
        let mut s = state();
        feed(&p, &mut s, "a", &[Down], 0);
        for i in 1..5 {
            let when = at(60 * i);
            assert!(p
                .on_check(&mut s, &check("a", Down, when), true, when)
                .is_empty());
        }
        assert!(
            feed(&p, &mut s, "a", &[Down], 300).is_empty(),
            "the run starts again after the window"
        );
        assert_eq!(
            said(&feed(&p, &mut s, "a", &[Down], 360)),
            ["open fired down a"]
        );
        // Successes inside a window still count towards the end of an alert fired before it.
        let w1 = at(420);
        assert!(p.on_check(&mut s, &check("a", Up, w1), true, w1).is_empty());
        let w2 = at(480);
        assert_eq!(
            said(&p.on_check(&mut s, &check("a", Up, w2), true, w2)),
            ["resolve down a"]
        );
    }

    fn burn(for_s: u64) -> AlertRule {
        rule(
            "burn",
            Condition::SloBurn {
                long_window_s: 3_600,
                short_window_s: 300,
                burn_rate: Some(10.0),
                for_s: Some(for_s),
            },
            AlertLevel::Critical,
            0,
        )
    }

    #[test]
    fn a_burn_rate_fires_only_once_the_short_window_is_covered_and_for_has_passed() {
        // 99 % objective: a burn rate above 10 is more than 10 % bad.
        let p = policy(vec![burn(120)]);
        let mut s = state();
        // Every check fails, but until the record reaches back 5 min the short window is not judged.
        for i in 0..5 {
            assert!(feed(&p, &mut s, "a", &[Down], 60 * i).is_empty());
        }
        // Covered from 300 s: burning since then; `for` is 120 s.
        assert!(feed(&p, &mut s, "a", &[Down], 300).is_empty());
        assert!(feed(&p, &mut s, "a", &[Down], 360).is_empty());
        let fired = feed(&p, &mut s, "a", &[Down], 420);
        assert_eq!(said(&fired), ["open fired burn a"]);
        let Action::Open { trigger, .. } = &fired[0] else {
            unreachable!("checked above")
        };
        assert_eq!(trigger.summary, "a burns its error budget 100.0x too fast");
        assert!(trigger
            .description
            .starts_with("burn rate 100.0 over the last 1 h and 100.0 over the last 5 min"));
    }

    #[test]
    fn a_burn_rate_that_dips_starts_its_for_again() {
        let p = policy(vec![burn(120)]);
        let mut s = state();
        // Good for 5 min, then failing: the short window crosses 10 % bad at once.
        feed(&p, &mut s, "a", &[Up, Up, Up, Up, Up, Up], 0);
        assert!(feed(&p, &mut s, "a", &[Down, Down], 360).is_empty());
        // A check that finds it not burning (the rule's short window all good again) resets `for`.
        let mut clean = state();
        feed(&p, &mut clean, "a", &[Up; 6], 0);
        assert!(feed(&p, &mut clean, "a", &[Down], 360).is_empty());
        assert!(feed(&p, &mut clean, "a", &[Up, Up, Up, Up, Up, Up], 420).is_empty());
        assert!(feed(&p, &mut clean, "a", &[Down], 780).is_empty());
        assert!(
            feed(&p, &mut clean, "a", &[Down], 840).is_empty(),
            "60 s of burning since the dip is less than for"
        );
        assert_eq!(
            said(&feed(&p, &mut clean, "a", &[Down], 900)),
            ["open fired burn a"]
        );
    }

    #[test]
    fn a_burn_rate_alert_resolves_once_the_short_window_burns_slower() {
        let p = policy(vec![burn(0)]);
        let mut s = state();
        feed(&p, &mut s, "a", &[Up; 5], 0);
        assert_eq!(
            said(&feed(&p, &mut s, "a", &[Down], 300)),
            ["open fired burn a"]
        );
        // Two successes in a row, but the short window (5 min) still holds the failure: still over.
        assert!(feed(&p, &mut s, "a", &[Up, Up], 360).is_empty());
        // Once the failure left the short window, the next success resolves it.
        assert_eq!(said(&feed(&p, &mut s, "a", &[Up], 660)), ["resolve burn a"]);
    }

    #[test]
    fn checks_in_maintenance_burn_no_budget() {
        let p = policy(vec![burn(0)]);
        let mut s = state();
        feed(&p, &mut s, "a", &[Up; 5], 0);
        let w = at(300);
        assert!(p.on_check(&mut s, &check("a", Down, w), true, w).is_empty());
        let ring = p.burn_windows.ring(3_600).unwrap();
        let recent = s.recent.get("a").map(|r| r.sum(&p.burn_windows, ring, w));
        assert_eq!(
            recent,
            Some([5, 0]),
            "the check in maintenance is not counted"
        );
    }

    #[test]
    fn restore_goes_on_escalates_a_louder_rule_and_forgets_a_removed_one() {
        let p = policy(vec![down_after(1)]);
        let mut s = state();
        let stored = |rule: &str, level, told: bool| RestoredAlert {
            rule: rule.to_owned(),
            target: "a".to_owned(),
            alert: FiringAlert {
                id: 9,
                level,
                fired_at: t0(),
                last_notified_at: told.then(t0),
                suppressed: 2,
                summary: "a is down".to_owned(),
            },
        };
        let actions = p.restore(
            &mut s,
            vec![
                stored("down", AlertLevel::Warning, true),
                stored("gone", AlertLevel::Info, true),
            ],
            at(30),
        );
        assert_eq!(
            said(&actions),
            ["restore down a", "notify escalated down a", "forget 9"]
        );
        let Action::Notify { alert, trigger, .. } = &actions[1] else {
            unreachable!("checked above")
        };
        assert_eq!(alert.level, AlertLevel::Critical);
        assert_eq!(trigger.description, "the rule down is now critical");
        // Its cooldown goes on from the escalation: a failure within it is held.
        assert_eq!(
            said(&feed(&p, &mut s, "a", &[Down], 60)),
            ["hold Suppressed down first=true"]
        );
        assert_eq!(s.active(AlertLevel::Critical), 1);
        assert_eq!(s.active(AlertLevel::Info), 0);
    }

    #[test]
    fn restored_failures_count_towards_a_window_after_a_restart() {
        let flapping = rule(
            "flapping",
            Condition::FailuresWithin {
                count: 3,
                window_s: 600,
            },
            AlertLevel::Warning,
            0,
        );
        let p = policy(vec![flapping]);
        let mut s = state();
        p.restore_failures(
            &mut s,
            [
                ("a".to_owned(), at(0)),
                ("a".to_owned(), at(60)),
                ("zzz".to_owned(), at(60)),
            ],
        );
        assert_eq!(
            said(&feed(&p, &mut s, "a", &[Down], 120)),
            ["open fired flapping a"]
        );
    }

    #[test]
    fn restored_checks_cover_the_short_burn_window_at_once() {
        let p = policy(vec![burn(0)]);
        let mut s = state();
        p.restore_recent(&mut s, "a", (0..5).map(|i| (at(60 * i), false)));
        assert_eq!(
            said(&feed(&p, &mut s, "a", &[Down], 300)),
            ["open fired burn a"]
        );
    }

    fn restarted() -> AlertRule {
        rule("restarted", Condition::Restarted, AlertLevel::Info, 0)
    }

    fn started(cause: ChildStartCause) -> ChildStarted {
        ChildStarted {
            target: Arc::from("a"),
            pid: 42,
            cause,
            at: t0(),
        }
    }

    #[test]
    fn a_child_restart_fires_restarted_but_not_its_first_start_or_in_maintenance() {
        let p = policy(vec![restarted()]);
        let mut s = state();
        assert!(p
            .on_child_started(&mut s, &started(ChildStartCause::Start), false, t0())
            .is_empty());
        assert!(p
            .on_child_started(&mut s, &started(ChildStartCause::Exited), true, t0())
            .is_empty());
        p.on_child_exited(
            &mut s,
            &ChildExited {
                target: Arc::from("a"),
                pid: 42,
                code: Some(3),
                signal: None,
                stopped: false,
                at: t0(),
            },
        );
        let fired = p.on_child_started(&mut s, &started(ChildStartCause::Exited), false, t0());
        assert_eq!(said(&fired), ["open fired restarted a"]);
        let Action::Open { trigger, .. } = &fired[0] else {
            unreachable!("checked above")
        };
        assert_eq!(trigger.summary, "a was restarted");
        assert_eq!(
            trigger.description,
            "hale restarted the child of a after its process exited with 3"
        );
        let healed = p.on_child_started(&mut s, &started(ChildStartCause::Heal), false, at(1));
        assert_eq!(
            said(&healed),
            ["notify repeated restarted a"],
            "a firing alert is told again, not opened twice"
        );
    }

    fn heal(action: HealAction, outcome: HealOutcome) -> HealRecord {
        HealRecord {
            target: Arc::from("a"),
            trigger: crate::records::HealTrigger::Automatic,
            action,
            started_at: t0(),
            finished_at: t0(),
            outcome,
            verify_latency: None,
            error: Some("healed 3 times in the last hour".to_owned()),
        }
    }

    #[test]
    fn heals_fire_restarted_for_a_command_that_ran_and_budget_exhausted_when_skipped() {
        let budget = rule(
            "budget",
            Condition::HealBudgetExhausted,
            AlertLevel::Warning,
            0,
        );
        let p = policy(vec![restarted(), budget]);
        let mut s = state();
        let ran = p.on_heal(
            &mut s,
            &heal(HealAction::Command, HealOutcome::Failed),
            false,
            t0(),
        );
        assert_eq!(said(&ran), ["open fired restarted a"]);
        assert!(
            p.on_heal(
                &mut s,
                &heal(HealAction::RestartChild, HealOutcome::Healed),
                false,
                t0()
            )
            .is_empty(),
            "a child restart is told by the child's own start"
        );
        let spent = p.on_heal(
            &mut s,
            &heal(HealAction::Command, HealOutcome::SkippedBudget),
            false,
            t0(),
        );
        assert_eq!(said(&spent), ["open fired budget a"]);
        let Action::Open { trigger, .. } = &spent[0] else {
            unreachable!("checked above")
        };
        assert_eq!(
            trigger.summary,
            "a: heal budget exhausted, hale stopped healing it"
        );
        assert_eq!(trigger.description, "healed 3 times in the last hour");
        let mut quiet = state();
        assert!(p
            .on_heal(
                &mut quiet,
                &heal(HealAction::Command, HealOutcome::SkippedBudget),
                true,
                t0()
            )
            .is_empty());
    }

    #[test]
    fn window_names_read_as_hours_minutes_or_seconds() {
        assert_eq!(human_window(7_200), "2 h");
        assert_eq!(human_window(300), "5 min");
        assert_eq!(human_window(90), "90 s");
    }
}
