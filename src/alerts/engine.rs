//! The rules, evaluated on events. An alert is identified by (rule, target). It fires when its rule's
//! condition holds; while it still fires unchanged, repeats inside the rule's cooldown are counted
//! (`suppressed`) and one after it is notified again (`repeated`); a change of state (fired, escalated,
//! resolved) is always notified. It resolves after `alerts.resolve_after_successes` successful checks of
//! its target in a row. While a target's critical alert fires, its warnings and infos are held back
//! (`inhibited`); while a mass failure fires, every target's own alerts are. Everything is stored, and
//! the firing alerts (with their cooldowns) are read back at start, so a restart of hale neither repeats a
//! notice too soon nor forgets an alert.
//!
//! Maintenance works like a silence on the target's own rules: a failed check inside a maintenance window of
//! its target fires, repeats and escalates nothing, and is not counted (consecutive failures start again
//! after the window, `failures_within` and burn rates leave it out); a success inside the window still
//! counts towards resolving an alert that fired before it. A restart or an exhausted heal budget of a target
//! in maintenance fires nothing, and a target failing in maintenance is not counted in a mass failure.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use tokio_util::sync::CancellationToken;

use crate::alerts::{labels, AlertClass, Dispatcher, Notice};
use crate::clock::Clock;
use crate::config::{burn, AlertRule, Condition, Config};
use crate::events::{CheckFinished, Event, EventBus, Subscription};
use crate::metrics::{AlertMetrics, AlertResult, NO_CHANNEL};
use crate::probe::streaks::Streaks;
use crate::records::{
    AlertEventKind, AlertLevel, CheckSource, ChildStartCause, HealAction, HealOutcome, HealRecord,
};
use crate::slo::maintenance::{MaintenanceCalendar, MaintenanceWindow};
use crate::store::Store;
use crate::worker::Worker;

/// The most scheduled checks kept per target for burn rates (a week at one check every 6 s).
const MAX_BURN_CHECKS: usize = 100_000;

/// The target of an alert about all targets at once.
pub const ALL_TARGETS: &str = "*";

/// One alert firing now.
#[derive(Debug, Clone)]
struct Firing {
    id: i64,
    level: AlertLevel,
    fired_at: DateTime<Utc>,
    last_notified_at: Option<DateTime<Utc>>,
    suppressed: u64,
    summary: String,
}

type Key = (String, String);

#[derive(Debug)]
struct State {
    streaks: Streaks,
    /// Failed scheduled checks per target, within the longest `failures_within` window.
    failures: HashMap<Arc<str>, VecDeque<DateTime<Utc>>>,
    firing: HashMap<Key, Firing>,
    /// Recent scheduled checks per target (when, and whether bad), within the longest `slo_burn` window and
    /// at most `MAX_BURN_CHECKS` per target: what burn rates are computed from, without a query per check.
    recent: HashMap<Arc<str>, VecDeque<(DateTime<Utc>, bool)>>,
    /// Checks in a row without a mass failure while its alert fires.
    mass_clear: u32,
    /// The latest exit of each supervised child, to say why it was restarted.
    last_exit: HashMap<Arc<str>, String>,
    /// `slo_burn` alerts whose windows both burn too fast, since when (they fire once that lasted `for`).
    burning_since: HashMap<Key, DateTime<Utc>>,
}

/// What makes an alert fire or repeat.
struct Trigger {
    summary: String,
    description: String,
}

#[derive(Debug)]
pub struct AlertEngine {
    rules: Vec<AlertRule>,
    resolve_after: u32,
    mass_share: f64,
    mass_min_targets: usize,
    /// The longest `failures_within` window, in seconds (0: no such rule).
    longest_window_s: u64,
    /// The longest `slo_burn` long window, in seconds (0: no such rule).
    longest_burn_s: u64,
    /// The config, for the maintenance windows it declares (read once at start, for the stored checks).
    config: Config,
    /// Which targets are in maintenance now, shared with auto-heal: read at start and again every 30 s.
    maintenance: Arc<MaintenanceCalendar>,
    /// The availability objective, as a ratio: what a burn rate is relative to.
    slo_target_ratio: f64,
    /// `slo.window_days`: what the burn-rate table's thresholds are scaled to.
    slo_window_days: u32,
    generator_base: String,
    store: Store,
    clock: Arc<dyn Clock>,
    dispatcher: Arc<Dispatcher>,
    metrics: AlertMetrics,
    state: tokio::sync::Mutex<State>,
    events: Mutex<Option<Subscription>>,
}

impl AlertEngine {
    pub fn new(
        config: &Config,
        store: Store,
        events: &EventBus,
        clock: Arc<dyn Clock>,
        dispatcher: Arc<Dispatcher>,
        metrics: AlertMetrics,
        maintenance: Arc<MaintenanceCalendar>,
    ) -> Self {
        let rules: Vec<AlertRule> = config.alerts.active_rules().cloned().collect();
        let longest_window_s = rules
            .iter()
            .filter_map(|r| match r.when {
                Condition::FailuresWithin { window_s, .. } => Some(window_s),
                _ => None,
            })
            .max()
            .unwrap_or(0);
        let longest_burn_s = rules
            .iter()
            .filter_map(|r| match r.when {
                Condition::SloBurn { long_window_s, .. } => Some(long_window_s),
                _ => None,
            })
            .max()
            .unwrap_or(0);
        let targets: Vec<Arc<str>> = config
            .services
            .iter()
            .map(|t| Arc::from(t.name.as_str()))
            .collect();
        Self {
            rules,
            resolve_after: config.alerts.resolve_after_successes,
            mass_share: config.heal.mass_failure_share,
            mass_min_targets: config.heal.mass_failure_min_targets,
            longest_window_s,
            longest_burn_s,
            config: config.clone(),
            maintenance,
            slo_target_ratio: config.slo.availability_target_ratio(),
            slo_window_days: config.slo.window_days,
            generator_base: format!("http://{}", config.listen.health_proxy),
            store,
            clock,
            dispatcher,
            metrics,
            state: tokio::sync::Mutex::new(State {
                streaks: Streaks::new(targets.iter().cloned()),
                failures: targets
                    .iter()
                    .map(|t| (t.clone(), VecDeque::new()))
                    .collect(),
                recent: targets
                    .iter()
                    .map(|t| (t.clone(), VecDeque::new()))
                    .collect(),
                firing: HashMap::new(),
                mass_clear: 0,
                last_exit: HashMap::new(),
                burning_since: HashMap::new(),
            }),
            events: Mutex::new(Some(events.subscribe("alerts"))),
        }
    }

    fn rule(&self, name: &str) -> Option<&AlertRule> {
        self.rules.iter().find(|r| r.name == name)
    }

    /// Reads the firing alerts back from the database (their cooldowns go on), escalates those whose rule
    /// is now louder, and rebuilds the failure windows from the stored checks (leaving out those made in
    /// maintenance).
    async fn load(&self) {
        let now = self.clock.now();
        self.maintenance.refresh_if_due().await;
        let lookback_s = self.longest_window_s.max(self.longest_burn_s);
        let past = if lookback_s > 0 {
            self.maintenance_windows(now - chrono::Duration::seconds(lookback_s as i64), now)
                .await
        } else {
            Vec::new()
        };
        let mut state = self.state.lock().await;
        match self.store.firing_alerts().await {
            Ok(alerts) => {
                for alert in alerts {
                    let key = (alert.rule.clone(), alert.target.clone());
                    let mut firing = Firing {
                        id: alert.id,
                        level: alert.level,
                        fired_at: alert.fired_at,
                        last_notified_at: alert.last_notified_at,
                        suppressed: alert.suppressed,
                        summary: alert.summary.clone(),
                    };
                    let Some(rule) = self.rule(&alert.rule).cloned() else {
                        // Its rule is gone from the config: the alert ends quietly.
                        let _ = self
                            .store
                            .alert_event(
                                alert.id,
                                AlertEventKind::Resolved,
                                alert.level,
                                "its rule is no longer in the config",
                                now,
                                true,
                            )
                            .await;
                        continue;
                    };
                    if firing.last_notified_at.is_some() {
                        self.dispatcher.restore_firing(&Notice {
                            alert_id: alert.id,
                            event_id: 0,
                            kind: AlertEventKind::Fired,
                            rule: rule.name.clone(),
                            target: alert.target.clone(),
                            level: alert.level,
                            summary: alert.summary.clone(),
                            description: String::new(),
                            fired_at: alert.fired_at,
                            resolved_at: None,
                            suppressed: alert.suppressed,
                            at: now,
                            generator_url: self.generator_url(false),
                            class: AlertClass::of(&rule.when),
                            runbook_url: self.runbook_url(&rule, alert.level),
                        });
                    }
                    if rule.level.rank() > alert.level.rank() {
                        firing.level = rule.level;
                        let trigger = Trigger {
                            summary: alert.summary.clone(),
                            description: format!(
                                "the rule {} is now {}",
                                rule.name,
                                rule.level.as_str()
                            ),
                        };
                        self.notify(
                            &rule,
                            &alert.target,
                            &mut firing,
                            AlertEventKind::Escalated,
                            &trigger,
                            now,
                        )
                        .await;
                    }
                    state.firing.insert(key, firing);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot read the firing alerts; alerts start from nothing");
            }
        }
        if self.longest_window_s > 0 {
            let since = now - chrono::Duration::seconds(self.longest_window_s as i64);
            match self.store.failed_checks_since(since).await {
                Ok(failed) => {
                    for (target, at) in failed {
                        if in_maintenance(&past, &target, at) {
                            continue;
                        }
                        if let Some(times) = state.failures.get_mut(target.as_str()) {
                            times.push_back(at);
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the recent failed checks; failure windows start empty")
                }
            }
        }
        if self.longest_burn_s > 0 {
            let since = now - chrono::Duration::seconds(self.longest_burn_s as i64);
            let targets: Vec<Arc<str>> = state.recent.keys().cloned().collect();
            for target in targets {
                match self.store.scheduled_checks(&target, since, now).await {
                    Ok(checks) => {
                        let valid: Vec<(DateTime<Utc>, bool)> = checks
                            .iter()
                            .map(|c| (crate::store::from_ms(c.at_ms), !c.outcome.is_up()))
                            .filter(|(at, _)| !in_maintenance(&past, &target, *at))
                            .collect();
                        if let Some(recent) = state.recent.get_mut(&target) {
                            recent.extend(valid);
                            while recent.len() > MAX_BURN_CHECKS {
                                recent.pop_front();
                            }
                        }
                    }
                    Err(e) => {
                        tracing::warn!(target = %target, error = %e, "cannot read the recent checks; burn rates start empty")
                    }
                }
            }
        }
        self.set_active(&state);
    }

    /// The burn rate of `target` over the `window_s` before `at`: its bad ratio over the ratio the SLO
    /// allows. With `covered`, None until the record reaches back that far: a fresh start is not judged on
    /// a few checks (the short window must be covered; the long one takes what there is).
    fn burn_rate(
        &self,
        state: &State,
        target: &str,
        at: DateTime<Utc>,
        window_s: u64,
        covered: bool,
    ) -> Option<f64> {
        let recent = state.recent.get(target)?;
        let from = at - chrono::Duration::seconds(window_s as i64);
        if covered && recent.front().is_none_or(|(first, _)| *first > from) {
            return None;
        }
        let (mut total, mut bad) = (0u64, 0u64);
        for (_, failed) in recent.iter().rev().take_while(|(t, _)| *t >= from) {
            total += 1;
            bad += u64::from(*failed);
        }
        (total > 0).then(|| (bad as f64 / total as f64) / (1.0 - self.slo_target_ratio))
    }

    async fn handle(&self, event: &Event) {
        let mut state = self.state.lock().await;
        match event {
            Event::CheckFinished(check) => self.on_check(&mut state, check).await,
            Event::ChildExited(exit) => {
                let how = match (exit.code, exit.signal) {
                    (Some(code), _) => format!("its process exited with {code}"),
                    (None, Some(signal)) => format!("its process was killed by signal {signal}"),
                    _ => "its process ended".to_owned(),
                };
                state.last_exit.insert(exit.target.clone(), how);
            }
            Event::ChildStarted(started)
                if started.cause != ChildStartCause::Start
                    && !self.in_maintenance(&started.target, started.at).await =>
            {
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
                self.on_condition(&mut state, &started.target, &trigger, |c| {
                    matches!(c, Condition::Restarted)
                })
                .await;
            }
            Event::Healed(heal) => self.on_heal(&mut state, heal).await,
            _ => {}
        }
        self.set_active(&state);
    }

    async fn on_heal(&self, state: &mut State, heal: &HealRecord) {
        // A heal of a target in maintenance (a person asked for it) restarts and spends budget quietly.
        if self.in_maintenance(&heal.target, heal.started_at).await {
            return;
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
            self.on_condition(state, &heal.target, &trigger, |c| {
                matches!(c, Condition::Restarted)
            })
            .await;
        }
        if heal.outcome == HealOutcome::SkippedBudget {
            let trigger = Trigger {
                summary: format!(
                    "{}: heal budget exhausted, hale stopped healing it",
                    heal.target
                ),
                description: heal.error.clone().unwrap_or_default(),
            };
            self.on_condition(state, &heal.target, &trigger, |c| {
                matches!(c, Condition::HealBudgetExhausted)
            })
            .await;
        }
    }

    /// Fires (or repeats) every rule of `target` whose condition matches.
    async fn on_condition(
        &self,
        state: &mut State,
        target: &str,
        trigger: &Trigger,
        matches: impl Fn(&Condition) -> bool,
    ) {
        for rule in self.rules.iter().filter(|r| matches(&r.when)) {
            self.fire_or_repeat(state, rule, target, trigger).await;
        }
    }

    /// True when a maintenance window covers `target` at `at` (the calendar read again when due).
    async fn in_maintenance(&self, target: &str, at: DateTime<Utc>) -> bool {
        self.maintenance.refresh_if_due().await;
        self.maintenance.covers(target, at)
    }

    async fn on_check(&self, state: &mut State, check: &CheckFinished) {
        if check.source != CheckSource::Monitor {
            return;
        }
        let maintenance = self.in_maintenance(&check.target, check.at).await;
        let counted = if maintenance {
            state.streaks.observe_in_maintenance(check)
        } else {
            state.streaks.observe(check)
        };
        let Some(streak) = counted else {
            return;
        };
        let failed = !check.outcome.is_up();
        // A failure inside a maintenance window fires, repeats and counts nothing for its target.
        let silenced = failed && maintenance;
        let window_start = check.at - chrono::Duration::seconds(self.longest_window_s as i64);
        if let Some(times) = state.failures.get_mut(&check.target) {
            if failed && !maintenance && self.longest_window_s > 0 {
                times.push_back(check.at);
            }
            while times.front().is_some_and(|t| *t < window_start) {
                times.pop_front();
            }
        }
        // A check inside a maintenance window is not valid for the SLO, so it burns no budget.
        if self.longest_burn_s > 0 && !maintenance {
            let from = check.at - chrono::Duration::seconds(self.longest_burn_s as i64);
            if let Some(recent) = state.recent.get_mut(&check.target) {
                recent.push_back((check.at, failed));
                while recent.front().is_some_and(|(t, _)| *t < from)
                    || recent.len() > MAX_BURN_CHECKS
                {
                    recent.pop_front();
                }
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
                    let failing = state.streaks.failing_targets();
                    let trigger = Trigger {
                        summary: format!(
                            "{} of {} targets fail at once",
                            failing.len(),
                            state.streaks.total()
                        ),
                        description: format!(
                            "failing: {}. hale's own host or network is the likelier cause; auto-heal holds off",
                            failing.iter().map(|t| t.as_ref()).collect::<Vec<_>>().join(", ")
                        ),
                    };
                    self.fire_or_repeat(state, rule, ALL_TARGETS, &trigger)
                        .await;
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
                    self.resolve(state, rule, ALL_TARGETS, &trigger).await;
                }
            }
        }
        if silenced {
            return;
        }
        let target = check.target.as_ref();
        let failures_in = |state: &State, window_s: u64| {
            let from = check.at - chrono::Duration::seconds(window_s as i64);
            state
                .failures
                .get(target)
                .map_or(0, |times| times.iter().filter(|t| **t >= from).count())
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
                    self.fire_or_repeat(state, rule, target, &trigger).await;
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
                        self.fire_or_repeat(state, rule, target, &trigger).await;
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
                            self.fire_or_repeat(state, rule, target, &trigger).await;
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
                        self.resolve(state, rule, target, &trigger).await;
                    }
                }
                _ => {}
            }
        }
    }

    /// True when a louder alert holds this one back: a critical alert of the same target, or a mass failure.
    fn inhibited(&self, state: &State, rule: &AlertRule, target: &str) -> bool {
        if rule.when == Condition::MassFailure {
            return false;
        }
        state
            .firing
            .iter()
            .any(|((other_rule, other_target), firing)| {
                let other = self.rule(other_rule);
                let mass = other.is_some_and(|r| r.when == Condition::MassFailure);
                mass || (other_target == target
                    && *other_rule != rule.name
                    && firing.level == AlertLevel::Critical
                    && rule.level.rank() < AlertLevel::Critical.rank())
            })
    }

    async fn fire_or_repeat(
        &self,
        state: &mut State,
        rule: &AlertRule,
        target: &str,
        trigger: &Trigger,
    ) {
        let now = self.clock.now();
        let key = (rule.name.clone(), target.to_owned());
        let inhibited = self.inhibited(state, rule, target);
        if let Some(mut firing) = state.firing.remove(&key) {
            let cooled = firing.last_notified_at.is_none_or(|at| {
                (now - at).to_std().unwrap_or_default().as_secs() >= rule.cooldown_s
            });
            let never_told = firing.last_notified_at.is_none();
            if inhibited || !(never_told || cooled) {
                // Held back by a louder alert, or a repeat within the cooldown: counted, not sent.
                let result = if inhibited {
                    AlertResult::Inhibited
                } else {
                    AlertResult::Suppressed
                };
                self.metrics
                    .notice(rule.level, &rule.name, NO_CHANNEL, result);
                firing.suppressed += 1;
                self.persist(
                    firing.id,
                    AlertEventKind::Suppressed,
                    rule.level,
                    &trigger.summary,
                    now,
                    firing.suppressed == 1,
                )
                .await;
            } else {
                // Held back so far (now it can be told), or due again after its cooldown.
                let kind = if never_told {
                    AlertEventKind::Fired
                } else {
                    AlertEventKind::Repeated
                };
                self.notify(rule, target, &mut firing, kind, trigger, now)
                    .await;
            }
            state.firing.insert(key, firing);
            return;
        }
        let kind = if inhibited {
            AlertEventKind::Inhibited
        } else {
            AlertEventKind::Fired
        };
        let (id, event_id) = match self
            .store
            .open_alert(&rule.name, target, rule.level, &trigger.summary, now, kind)
            .await
        {
            Ok(ids) => ids,
            Err(e) => {
                // Not stored, but still said: a disk problem must not silence an outage.
                tracing::error!(rule = %rule.name, target, error = %e, "cannot store an alert");
                (0, 0)
            }
        };
        let mut firing = Firing {
            id,
            level: rule.level,
            fired_at: now,
            last_notified_at: None,
            suppressed: 0,
            summary: trigger.summary.clone(),
        };
        if inhibited {
            self.metrics
                .notice(rule.level, &rule.name, NO_CHANNEL, AlertResult::Inhibited);
            tracing::info!(rule = %rule.name, target, summary = %trigger.summary, "alert held back by a louder alert");
        } else {
            firing.last_notified_at = Some(now);
            self.send(
                rule,
                target,
                &firing,
                AlertEventKind::Fired,
                event_id,
                trigger,
                now,
                None,
            );
        }
        state.firing.insert(key, firing);
    }

    async fn resolve(&self, state: &mut State, rule: &AlertRule, target: &str, trigger: &Trigger) {
        let key = (rule.name.clone(), target.to_owned());
        let Some(firing) = state.firing.remove(&key) else {
            return;
        };
        let now = self.clock.now();
        let event_id = self
            .persist(
                firing.id,
                AlertEventKind::Resolved,
                firing.level,
                &firing.summary,
                now,
                true,
            )
            .await;
        // An alert nobody was told of ends quietly.
        if firing.last_notified_at.is_some() {
            self.send(
                rule,
                target,
                &firing,
                AlertEventKind::Resolved,
                event_id.unwrap_or(0),
                trigger,
                now,
                Some(now),
            );
        }
    }

    /// Notifies a firing alert again (fired after inhibition, repeated, escalated) and restarts its cooldown.
    async fn notify(
        &self,
        rule: &AlertRule,
        target: &str,
        firing: &mut Firing,
        kind: AlertEventKind,
        trigger: &Trigger,
        now: DateTime<Utc>,
    ) {
        let event_id = self
            .persist(firing.id, kind, firing.level, &trigger.summary, now, true)
            .await;
        self.send(
            rule,
            target,
            firing,
            kind,
            event_id.unwrap_or(0),
            trigger,
            now,
            None,
        );
        firing.last_notified_at = Some(now);
        firing.suppressed = 0;
        firing.summary = trigger.summary.clone();
    }

    async fn persist(
        &self,
        alert_id: i64,
        kind: AlertEventKind,
        level: AlertLevel,
        summary: &str,
        at: DateTime<Utc>,
        with_event: bool,
    ) -> Option<i64> {
        match self
            .store
            .alert_event(alert_id, kind, level, summary, at, with_event)
            .await
        {
            Ok(id) => id,
            Err(e) => {
                tracing::error!(alert_id, kind = kind.as_str(), error = %e, "cannot store an alert event");
                None
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn send(
        &self,
        rule: &AlertRule,
        target: &str,
        firing: &Firing,
        kind: AlertEventKind,
        event_id: i64,
        trigger: &Trigger,
        at: DateTime<Utc>,
        resolved_at: Option<DateTime<Utc>>,
    ) {
        let notice = Notice {
            alert_id: firing.id,
            event_id,
            kind,
            rule: rule.name.clone(),
            target: target.to_owned(),
            level: firing.level,
            summary: trigger.summary.clone(),
            description: trigger.description.clone(),
            fired_at: firing.fired_at,
            resolved_at,
            suppressed: firing.suppressed,
            at,
            generator_url: format!(
                "{}/alerts?state={}",
                self.generator_base,
                if resolved_at.is_some() {
                    "resolved"
                } else {
                    "firing"
                }
            ),
            class: AlertClass::of(&rule.when),
            runbook_url: self.runbook_url(rule, firing.level),
        };
        self.dispatcher.send(notice, &rule.channels);
    }

    /// The maintenance windows over `[from, until)`, for the stored checks read at start. On a read error,
    /// none (those checks then all count, as before any window).
    async fn maintenance_windows(
        &self,
        from: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Vec<MaintenanceWindow> {
        crate::slo::maintenance_windows(&self.store, &self.config, from, until)
            .await
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "cannot read the maintenance windows; the stored checks all count");
                Vec::new()
            })
    }

    /// The absolute link to the runbook section of a rule's alerts at `level`.
    fn runbook_url(&self, rule: &AlertRule, level: AlertLevel) -> String {
        labels::runbook_url(
            &self.config.alerts.runbook_base_url,
            AlertClass::of(&rule.when).runbook_anchor(level),
        )
    }

    /// A link back to hale's list of such alerts (Alertmanager's `generatorURL`).
    fn generator_url(&self, resolved: bool) -> String {
        let state = if resolved { "resolved" } else { "firing" };
        format!("{}/alerts?state={state}", self.generator_base)
    }

    fn set_active(&self, state: &State) {
        for level in AlertLevel::ALL {
            let n = state.firing.values().filter(|f| f.level == *level).count();
            self.metrics.set_active(*level, n);
        }
    }
}

/// True when a maintenance window covers `target` at `at`.
fn in_maintenance(windows: &[MaintenanceWindow], target: &str, at: DateTime<Utc>) -> bool {
    windows
        .iter()
        .any(|w| w.covers_target(target) && w.is_active(at))
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

impl Worker for AlertEngine {
    fn name(&self) -> &'static str {
        "alerts"
    }

    fn run(self: Arc<Self>, cancel: CancellationToken) -> BoxFuture<'static, ()> {
        let events = self.events.lock().unwrap_or_else(|p| p.into_inner()).take();
        Box::pin(async move {
            let Some(mut events) = events else {
                return;
            };
            self.load().await;
            // The maintenance calendar is read again by the checks themselves when it is 30 s old (or a
            // window was posted), so no tick is needed here.
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    event = events.recv() => match event {
                        Some(event) => self.handle(&event).await,
                        None => break,
                    },
                }
            }
        })
    }
}
