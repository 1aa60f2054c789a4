//! Auto-heal: acts on a target that is down (restart its supervised child, run its heal command, or connect
//! again to the MCP server of an `mcp:<name>` target), then
//! verifies that it answers again. Every attempt passes the same protections, in this order, and each one
//! that refuses is recorded as the attempt's outcome:
//! the target has an action; no workflow run holds it; its child did not exit with a "configuration error"
//! code; most targets are not failing at once (then hale's own host or network is the likelier cause); its
//! cooldown has passed; its hourly budget is not spent; no other heal is running.
//! The rules are pure, in `policy.rs` (`HealPolicy::decide`); this file gathers their facts and acts.
//! Cooldown and budget are read from the database, so restarting hale cannot reset them.
//! `worker.rs` runs the automatic triggers: a target's Nth failed scheduled check in a row, and a slower sweep.
//! While a maintenance window covers a target, nothing heals it automatically (no attempt is made, so none
//! is stored; the log says so once per window): its failed checks inside the window are not counted, and
//! after the window its run of failures starts again. A manual heal (`POST /heal/{target}`) still runs.

mod action;
pub mod policy;
mod worker;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::clock::Clock;
use crate::config::{Config, HealConfig, ServiceName};
use crate::events::{Event, EventBus, Subscription};
use crate::heal::policy::{Attempt, Decision, HealPolicy};
use crate::metrics::{HealMetrics, RestartCause};
use crate::probe::streaks::Streaks;
use crate::probe::Monitor;
use crate::records::{CheckSource, HealAction, HealOutcome, HealRecord, HealTrigger};
use crate::slo::maintenance::MaintenanceCalendar;
use crate::store::Store;
use crate::supervise::Supervisor;

pub use worker::HealLoop;

#[derive(Debug, thiserror::Error)]
pub enum HealError {
    #[error("no target named {0:?}")]
    UnknownTarget(String),
    /// An automatic heal of a target in maintenance: not attempted, not stored.
    #[error("{target} is in maintenance until {}: automatic heals hold off", until.to_rfc3339())]
    InMaintenance {
        target: String,
        until: DateTime<Utc>,
    },
}

/// How one target can be healed, from its config.
#[derive(Debug, Clone)]
struct TargetPlan {
    action: HealAction,
    command: Option<Vec<String>>,
    /// The command's whole environment (`supervise::env`), built once at start.
    command_env: Arc<Vec<(String, String)>>,
    command_timeout: Duration,
    automatic: bool,
}

/// The heal engine, shared by the heal loop, `POST /heal/{target}` and (later) workflows.
#[derive(Debug)]
pub struct Healer {
    settings: HealConfig,
    policy: HealPolicy,
    plans: HashMap<Arc<str>, TargetPlan>,
    monitor: Arc<Monitor>,
    supervisor: Arc<Supervisor>,
    store: Store,
    events: EventBus,
    clock: Arc<dyn Clock>,
    metrics: HealMetrics,
    /// One heal at a time: the action and its verification hold this.
    running: tokio::sync::Mutex<()>,
    /// Targets held by workflow runs, with how many runs hold each.
    holds: Arc<Mutex<HashMap<Arc<str>, usize>>>,
    /// The scheduled checks' streaks, for the mass-failure protection; kept by the heal loop.
    streaks: Arc<Mutex<Streaks>>,
    /// Which targets are in maintenance (automatic heals hold off), shared with the alert manager.
    maintenance: Arc<MaintenanceCalendar>,
    /// The windows already said in the log to hold off automatic heals of a target.
    announced: Mutex<HashSet<Announced>>,
}

/// A target and one of its maintenance windows (start, end), said once in the log.
type Announced = (Arc<str>, DateTime<Utc>, DateTime<Utc>);

/// While alive, the target is not healed by anyone but its holder (`HealTrigger::Workflow`).
#[derive(Debug)]
pub struct HoldGuard {
    target: Arc<str>,
    holds: Arc<Mutex<HashMap<Arc<str>, usize>>>,
}

impl Drop for HoldGuard {
    fn drop(&mut self) {
        let mut holds = self.holds.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = holds.get_mut(&self.target) {
            *n -= 1;
            if *n == 0 {
                holds.remove(&self.target);
            }
        }
    }
}

impl Healer {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        config: &Config,
        monitor: Arc<Monitor>,
        supervisor: Arc<Supervisor>,
        store: Store,
        events: EventBus,
        clock: Arc<dyn Clock>,
        metrics: HealMetrics,
        maintenance: Arc<MaintenanceCalendar>,
    ) -> Self {
        let policy = crate::supervise::env::EnvPolicy::from_config(config);
        let plans = config
            .services
            .iter()
            .map(|target| {
                let heal = target.heal_settings();
                let action = if target.url.is_mcp() {
                    HealAction::Reconnect
                } else if heal.command.is_some() {
                    HealAction::Command
                } else if target.run.is_some() {
                    HealAction::RestartChild
                } else {
                    HealAction::None
                };
                if action == HealAction::Command {
                    // A supervised target's series are created by the supervisor.
                    metrics.restarts_known(target.name.as_str(), &[RestartCause::Heal]);
                }
                let plan = TargetPlan {
                    action,
                    command_env: Arc::new(if heal.command.is_some() {
                        policy.build(
                            target.name.as_str(),
                            &heal.inherit_env,
                            &std::collections::BTreeMap::new(),
                            crate::supervise::env::from_hale,
                        )
                    } else {
                        Vec::new()
                    }),
                    command: heal.command.clone(),
                    command_timeout: Duration::from_secs(heal.command_timeout_s),
                    automatic: config.heal.enabled && heal.enabled,
                };
                (target.name.shared(), plan)
            })
            .collect();
        let streaks = Streaks::new(config.services.iter().map(|t| t.name.shared()));
        Self {
            settings: config.heal.clone(),
            policy: HealPolicy::new(&config.heal),
            plans,
            monitor,
            supervisor,
            store,
            events,
            clock,
            metrics,
            running: tokio::sync::Mutex::new(()),
            holds: Arc::new(Mutex::new(HashMap::new())),
            streaks: Arc::new(Mutex::new(streaks)),
            maintenance,
            announced: Mutex::new(HashSet::new()),
        }
    }

    /// Holds `target` for a workflow run: nothing else heals it until the guard is dropped.
    pub fn hold(&self, target: &str) -> Result<HoldGuard, HealError> {
        let (name, _) = self
            .plans
            .get_key_value(target)
            .ok_or_else(|| HealError::UnknownTarget(target.to_owned()))?;
        let mut holds = self.holds.lock().unwrap_or_else(|p| p.into_inner());
        *holds.entry(name.clone()).or_default() += 1;
        Ok(HoldGuard {
            target: name.clone(),
            holds: self.holds.clone(),
        })
    }

    fn held(&self, target: &str) -> bool {
        let holds = self.holds.lock().unwrap_or_else(|p| p.into_inner());
        holds.get(target).is_some_and(|n| *n > 0)
    }

    /// True when the target may be healed without being asked.
    fn automatic(&self, target: &str) -> bool {
        self.plans
            .get(target)
            .is_some_and(|p| p.automatic && p.action != HealAction::None)
    }

    /// When a maintenance window covers `target` at `at` (automatic heals leave it alone), the window's end.
    /// The log says so once per window and target. Answers from the calendar as last read (call
    /// `refresh_if_due` first).
    fn in_maintenance(&self, target: &Arc<str>, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let window = self.maintenance.covering(target, at)?;
        let mut announced = self.announced.lock().unwrap_or_else(|p| p.into_inner());
        // Windows that are over are forgotten, so the set stays as small as the windows in force.
        announced.retain(|(_, _, ends_at)| *ends_at > at);
        if announced.insert((target.clone(), window.starts_at, window.ends_at)) {
            tracing::info!(
                target = %target,
                until = %window.ends_at.to_rfc3339(),
                reason = %window.reason,
                "target in maintenance: automatic heals hold off until the window ends"
            );
        }
        Some(window.ends_at)
    }

    /// An automatic heal of a target in maintenance holds off; any other heal goes on.
    async fn maintenance_hold(
        &self,
        name: &Arc<str>,
        trigger: HealTrigger,
        now: DateTime<Utc>,
    ) -> Result<(), HealError> {
        if trigger != HealTrigger::Automatic {
            return Ok(());
        }
        self.maintenance.refresh_if_due().await;
        match self.in_maintenance(name, now) {
            Some(until) => Err(HealError::InMaintenance {
                target: name.to_string(),
                until,
            }),
            None => Ok(()),
        }
    }

    /// One heal attempt of `target`: the protections, then the action and its verification. Waits for a
    /// heal already running when `wait_turn`, else skips as busy. The attempt is stored, counted and published
    /// whatever its outcome. An automatic heal of a target in maintenance is not attempted
    /// (`HealError::InMaintenance`), before or after waiting for its turn.
    pub async fn heal(
        &self,
        target: &str,
        trigger: HealTrigger,
        wait_turn: bool,
    ) -> Result<HealRecord, HealError> {
        self.heal_stored(target, trigger, wait_turn)
            .await
            .map(|(_, record)| record)
    }

    /// `heal`, with the id of the stored row (None when it could not be stored, which is logged).
    pub async fn heal_stored(
        &self,
        target: &str,
        trigger: HealTrigger,
        wait_turn: bool,
    ) -> Result<(Option<i64>, HealRecord), HealError> {
        let (name, plan) = self
            .plans
            .get_key_value(target)
            .ok_or_else(|| HealError::UnknownTarget(target.to_owned()))?;
        let started_at = self.clock.now();
        self.maintenance_hold(name, trigger, started_at).await?;
        let skip = |outcome: HealOutcome, why: String| HealRecord {
            target: name.clone(),
            trigger,
            action: plan.action,
            started_at,
            finished_at: started_at,
            outcome,
            verify_latency: None,
            error: Some(why),
        };
        let record = match self.refusal(name, plan, trigger, started_at).await {
            Some((outcome, why)) => skip(outcome, why),
            None => {
                let turn = if wait_turn {
                    Some(self.running.lock().await)
                } else {
                    self.running.try_lock().ok()
                };
                match turn {
                    None => skip(
                        HealOutcome::SkippedBusy,
                        "another heal is running".to_owned(),
                    ),
                    Some(_turn) => {
                        // Waiting for the turn took time: what was true before may not be now.
                        let now = self.clock.now();
                        self.maintenance_hold(name, trigger, now).await?;
                        match self.refusal(name, plan, trigger, now).await {
                            Some((outcome, why)) => skip(outcome, why),
                            None => self.act_and_verify(name, plan, trigger).await,
                        }
                    }
                }
            }
        };
        let id = self.finish(&record).await;
        Ok((id, record))
    }

    /// Why this attempt must not act, if it must not: the facts gathered, `HealPolicy` decides (the same
    /// rules, in the same order, as `HealPolicy::decide`).
    async fn refusal(
        &self,
        name: &str,
        plan: &TargetPlan,
        trigger: HealTrigger,
        now: DateTime<Utc>,
    ) -> Option<(HealOutcome, String)> {
        let last_exit_code = if plan.action == HealAction::RestartChild {
            self.supervisor.last_exit_code(name)
        } else {
            None
        };
        let (failing, total) = {
            let streaks = self.streaks.lock().unwrap_or_else(|p| p.into_inner());
            (streaks.failing(), streaks.total())
        };
        let attempt = Attempt {
            action: plan.action,
            trigger,
            held: self.held(name),
            last_exit_code,
            failing,
            total,
        };
        if let Decision::Refuse { outcome, reason } = self.policy.admit(&attempt) {
            return Some((outcome, reason));
        }
        // The database is the memory of cooldown and budget; if it cannot answer, the policy refuses.
        // Each is read only when the protections before it let the attempt through.
        let last_action = self
            .store
            .last_heal_action(name)
            .await
            .map_err(|e| e.to_string());
        if let Decision::Refuse { outcome, reason } =
            self.policy.cooldown(plan.action, &last_action, now)
        {
            return Some((outcome, reason));
        }
        let actions_last_hour = self
            .store
            .heal_actions_since(name, now - chrono::Duration::hours(1))
            .await
            .map_err(|e| e.to_string());
        match self.policy.budget(plan.action, &actions_last_hour) {
            Decision::Act(_) => None,
            Decision::Refuse { outcome, reason } => Some((outcome, reason)),
        }
    }

    async fn act_and_verify(
        &self,
        name: &Arc<str>,
        plan: &TargetPlan,
        trigger: HealTrigger,
    ) -> HealRecord {
        let started_at = self.clock.now();
        tracing::warn!(target = %name, trigger = trigger.as_str(), action = plan.action.as_str(), "healing a target that is down");
        let acted = match plan.action {
            HealAction::RestartChild => self
                .supervisor
                .restart(name)
                .await
                .map_err(|e| e.to_string()),
            HealAction::Command => {
                let argv = plan.command.as_deref().unwrap_or_default();
                let done = action::run_command(argv, &plan.command_env, plan.command_timeout).await;
                if done.is_ok() {
                    // The supervisor counts its own restarts; a command's restart is counted here.
                    self.metrics.restarted(name, RestartCause::Heal);
                }
                done
            }
            HealAction::Reconnect => match name.strip_prefix(ServiceName::MCP_PREFIX) {
                Some(server) => self.monitor.mcp().reconnect(server).await,
                None => Err(format!("{name} is not an MCP server's target")),
            },
            HealAction::None => Err("nothing to do".to_owned()),
        };
        let (outcome, verify_latency, error) = match acted {
            Err(e) => (HealOutcome::Failed, None, Some(e)),
            Ok(()) => match self.verify(name).await {
                Ok(latency) => (HealOutcome::Healed, Some(latency), None),
                Err(e) => (HealOutcome::Failed, None, Some(e)),
            },
        };
        HealRecord {
            target: name.clone(),
            trigger,
            action: plan.action,
            started_at,
            finished_at: self.clock.now(),
            outcome,
            verify_latency,
            error,
        }
    }

    /// Probes the target until it answers up (how long that took) or the verify deadline passes.
    async fn verify(&self, name: &str) -> Result<Duration, String> {
        let Some(target) = self.monitor.target(name) else {
            return Err("the target is not monitored".to_owned());
        };
        let from = self.clock.now();
        let timeout = Duration::from_secs(self.settings.verify_timeout_s);
        let interval = Duration::from_millis(self.settings.verify_interval_ms);
        loop {
            let result = self.monitor.probe_directly(target).await;
            let elapsed = (self.clock.now() - from).to_std().unwrap_or_default();
            if result.outcome.is_up() {
                return Ok(elapsed);
            }
            if elapsed + interval > timeout {
                let last = result
                    .error
                    .unwrap_or_else(|| result.outcome.as_str().to_owned());
                return Err(format!(
                    "still not up {} s after the action: {last}",
                    self.settings.verify_timeout_s
                ));
            }
            self.clock.sleep(interval).await;
        }
    }

    /// Stores, counts, logs and publishes an attempt; returns the stored row's id.
    async fn finish(&self, record: &HealRecord) -> Option<i64> {
        let id = match self.store.insert_heal(record).await {
            Ok(id) => Some(id),
            Err(e) => {
                tracing::error!(target = %record.target, error = %e, "cannot store a heal attempt");
                None
            }
        };
        self.metrics.heal_attempt(&record.target, record.outcome);
        let error = record.error.as_deref().unwrap_or("");
        match record.outcome {
            HealOutcome::Healed => tracing::info!(
                target = %record.target,
                trigger = record.trigger.as_str(),
                action = record.action.as_str(),
                verify_ms = record.verify_latency.map_or(0, |d| d.as_millis() as u64),
                "target healed"
            ),
            HealOutcome::Failed => tracing::error!(
                target = %record.target,
                trigger = record.trigger.as_str(),
                action = record.action.as_str(),
                error,
                "heal failed"
            ),
            outcome => tracing::warn!(
                target = %record.target,
                trigger = record.trigger.as_str(),
                outcome = outcome.as_str(),
                reason = error,
                "heal skipped"
            ),
        }
        self.events.publish(Event::Healed(record.clone()));
        id
    }

    /// Follows the scheduled checks (the heal loop calls this for each one) and says when the target just
    /// reached its Nth failure in a row. A failure inside a maintenance window of the target is not counted
    /// and ends the run, so the Nth failure is the Nth after the window.
    async fn observe(&self, check: &crate::events::CheckFinished) -> bool {
        if check.source != CheckSource::Monitor {
            return false;
        }
        self.maintenance.refresh_if_due().await;
        let in_maintenance = self.in_maintenance(&check.target, check.at).is_some();
        let mut streaks = self.streaks.lock().unwrap_or_else(|p| p.into_inner());
        if in_maintenance {
            streaks.observe_in_maintenance(check);
            return false;
        }
        streaks
            .observe(check)
            .is_some_and(|s| self.policy.heals_on_check(s.consecutive_failures))
    }

    /// Targets down long enough to heal and not in maintenance at `now`, for the sweep.
    async fn down_targets(&self, now: DateTime<Utc>) -> Vec<Arc<str>> {
        self.maintenance.refresh_if_due().await;
        let down: Vec<Arc<str>> = {
            let streaks = self.streaks.lock().unwrap_or_else(|p| p.into_inner());
            streaks
                .failing_targets()
                .into_iter()
                .filter(|t| {
                    self.policy
                        .down_long_enough(streaks.get(t).consecutive_failures)
                })
                .collect()
        };
        down.into_iter()
            .filter(|t| self.in_maintenance(t, now).is_none())
            .collect()
    }

    /// A subscription to the events, for the heal loop.
    fn subscribe(&self) -> Subscription {
        self.events.subscribe("heal")
    }
}
