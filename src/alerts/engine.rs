//! The alert manager's I/O shell around the pure rules of `policy.rs`: it reads the maintenance calendar,
//! hands every event to `AlertPolicy` with `now` from the `Clock`, and carries out the actions it returns:
//! stores alerts and their events, counts them, and sends notices to the dispatcher. At start it reads the
//! firing alerts and the recent checks back from the store, so a restart of hale neither repeats a notice
//! too soon nor forgets an alert.
//!
//! What the rules decide (when an alert fires, repeats, escalates, is held back or resolves, and how
//! maintenance silences a target) is described in `policy.rs`.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use tokio_util::sync::CancellationToken;

use crate::alerts::policy::{
    Action, AlertMemory, AlertPolicy, FiringAlert, Held, RestoredAlert, Trigger,
};
use crate::alerts::{labels, AlertClass, Dispatcher, Notice};
use crate::clock::Clock;
use crate::config::{AlertRule, Config, SloConfig};
use crate::events::{Event, EventBus, Subscription};
use crate::metrics::{AlertMetrics, AlertResult, NO_CHANNEL};
use crate::records::{AlertEventKind, AlertLevel, CheckSource, ChildStartCause};
use crate::slo::maintenance::{MaintenanceCalendar, MaintenanceWindow};
use crate::store::Store;
use crate::worker::Worker;

pub use crate::alerts::policy::ALL_TARGETS;

#[derive(Debug)]
pub struct AlertEngine {
    policy: AlertPolicy,
    /// The config's `slo` section, for the maintenance windows it declares (read once at start, for the
    /// stored checks).
    slo: SloConfig,
    runbook_base_url: String,
    /// Which targets are in maintenance now, shared with auto-heal: read at start and again every 30 s.
    maintenance: Arc<MaintenanceCalendar>,
    generator_base: String,
    store: Store,
    clock: Arc<dyn Clock>,
    dispatcher: Arc<Dispatcher>,
    metrics: AlertMetrics,
    state: tokio::sync::Mutex<AlertMemory>,
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
        Self {
            policy: AlertPolicy::new(config),
            slo: config.slo.clone(),
            runbook_base_url: config.alerts.runbook_base_url.clone(),
            maintenance,
            generator_base: format!("http://{}", config.listen.health_proxy),
            store,
            clock,
            dispatcher,
            metrics,
            state: tokio::sync::Mutex::new(AlertPolicy::new_state(config)),
            events: Mutex::new(Some(events.subscribe("alerts"))),
        }
    }

    /// Reads the firing alerts back from the database (their cooldowns go on), escalates those whose rule
    /// is now louder, and rebuilds the failure windows from the stored checks (leaving out those made in
    /// maintenance).
    async fn load(&self) {
        let now = self.clock.now();
        self.maintenance.refresh_if_due().await;
        let failure_lookback_s = self.policy.failure_lookback_s();
        let burn_lookback_s = self.policy.burn_lookback_s();
        let lookback_s = failure_lookback_s.max(burn_lookback_s);
        let past = if lookback_s > 0 {
            self.maintenance_windows(now - chrono::Duration::seconds(lookback_s as i64), now)
                .await
        } else {
            Vec::new()
        };
        let mut state = self.state.lock().await;
        match self.store.firing_alerts().await {
            Ok(alerts) => {
                let restored = alerts
                    .into_iter()
                    .map(|alert| RestoredAlert {
                        rule: alert.rule,
                        target: alert.target,
                        alert: FiringAlert {
                            id: alert.id,
                            level: alert.level,
                            fired_at: alert.fired_at,
                            last_notified_at: alert.last_notified_at,
                            suppressed: alert.suppressed,
                            summary: alert.summary,
                        },
                    })
                    .collect();
                let actions = self.policy.restore(&mut state, restored, now);
                self.apply(&mut state, actions, now).await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot read the firing alerts; alerts start from nothing");
            }
        }
        if failure_lookback_s > 0 {
            let since = now - chrono::Duration::seconds(failure_lookback_s as i64);
            match self.store.failed_checks_since(since).await {
                Ok(failed) => {
                    let valid = failed
                        .into_iter()
                        .filter(|(target, at)| !in_maintenance(&past, target, *at));
                    self.policy.restore_failures(&mut state, valid);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the recent failed checks; failure windows start empty")
                }
            }
        }
        if burn_lookback_s > 0 {
            let since = now - chrono::Duration::seconds(burn_lookback_s as i64);
            for target in state.burn_targets() {
                match self.store.scheduled_checks(&target, since, now).await {
                    Ok(checks) => {
                        let valid: Vec<(DateTime<Utc>, bool)> = checks
                            .iter()
                            .map(|c| (crate::store::from_ms(c.at_ms), !c.outcome.is_up()))
                            .filter(|(at, _)| !in_maintenance(&past, &target, *at))
                            .collect();
                        self.policy.restore_recent(&mut state, &target, valid);
                    }
                    Err(e) => {
                        tracing::warn!(target = %target, error = %e, "cannot read the recent checks; burn rates start empty")
                    }
                }
            }
        }
        self.set_active(&state);
    }

    async fn handle(&self, event: &Event) {
        let mut state = self.state.lock().await;
        match event {
            Event::CheckFinished(check) if check.source == CheckSource::Monitor => {
                let maintenance = self.in_maintenance(&check.target, check.at).await;
                let now = self.clock.now();
                let actions = self.policy.on_check(&mut state, check, maintenance, now);
                self.apply(&mut state, actions, now).await;
            }
            Event::ChildExited(exit) => self.policy.on_child_exited(&mut state, exit),
            // The calendar is only read for restarts (a first start fires nothing).
            Event::ChildStarted(started) if started.cause != ChildStartCause::Start => {
                let maintenance = self.in_maintenance(&started.target, started.at).await;
                let now = self.clock.now();
                let actions = self
                    .policy
                    .on_child_started(&mut state, started, maintenance, now);
                self.apply(&mut state, actions, now).await;
            }
            Event::Healed(heal) => {
                let maintenance = self.in_maintenance(&heal.target, heal.started_at).await;
                let now = self.clock.now();
                let actions = self.policy.on_heal(&mut state, heal, maintenance, now);
                self.apply(&mut state, actions, now).await;
            }
            _ => {}
        }
        self.set_active(&state);
    }

    /// True when a maintenance window covers `target` at `at` (the calendar read again when due).
    async fn in_maintenance(&self, target: &str, at: DateTime<Utc>) -> bool {
        self.maintenance.refresh_if_due().await;
        self.maintenance.covers(target, at)
    }

    /// Carries out the policy's actions, in order: stores, counts and sends.
    async fn apply(&self, state: &mut AlertMemory, actions: Vec<Action>, now: DateTime<Utc>) {
        for action in actions {
            match action {
                Action::Open {
                    rule,
                    target,
                    kind,
                    alert,
                    trigger,
                } => {
                    self.open(state, &rule, &target, kind, alert, &trigger, now)
                        .await
                }
                Action::Notify {
                    rule,
                    target,
                    kind,
                    alert,
                    trigger,
                } => {
                    let event_id = self
                        .persist(alert.id, kind, alert.level, &trigger.summary, now, true)
                        .await;
                    self.send(
                        &rule,
                        &target,
                        &alert,
                        kind,
                        event_id.unwrap_or(0),
                        &trigger,
                        now,
                        None,
                    );
                }
                Action::Hold {
                    rule,
                    alert_id,
                    why,
                    summary,
                    first,
                } => {
                    let result = match why {
                        Held::Inhibited => AlertResult::Inhibited,
                        Held::Suppressed => AlertResult::Suppressed,
                    };
                    self.metrics
                        .notice(rule.level, &rule.name, NO_CHANNEL, result);
                    self.persist(
                        alert_id,
                        AlertEventKind::Suppressed,
                        rule.level,
                        &summary,
                        now,
                        first,
                    )
                    .await;
                }
                Action::Resolve {
                    rule,
                    target,
                    alert,
                    trigger,
                } => {
                    let event_id = self
                        .persist(
                            alert.id,
                            AlertEventKind::Resolved,
                            alert.level,
                            &alert.summary,
                            now,
                            true,
                        )
                        .await;
                    // An alert nobody was told of ends quietly.
                    if alert.last_notified_at.is_some() {
                        self.send(
                            &rule,
                            &target,
                            &alert,
                            AlertEventKind::Resolved,
                            event_id.unwrap_or(0),
                            &trigger,
                            now,
                            Some(now),
                        );
                    }
                }
                Action::Forget { alert_id, level } => {
                    let _ = self
                        .store
                        .alert_event(
                            alert_id,
                            AlertEventKind::Resolved,
                            level,
                            "its rule is no longer in the config",
                            now,
                            true,
                        )
                        .await;
                }
                Action::Restore {
                    rule,
                    target,
                    alert,
                } => {
                    self.dispatcher.restore_firing(&Notice {
                        alert_id: alert.id,
                        event_id: 0,
                        kind: AlertEventKind::Fired,
                        rule: rule.name.clone(),
                        target,
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
                        one_off: false,
                    });
                }
            }
        }
    }

    /// Stores a new alert, gives its id back to the state, and tells it unless it is held back.
    #[allow(clippy::too_many_arguments)]
    async fn open(
        &self,
        state: &mut AlertMemory,
        rule: &AlertRule,
        target: &str,
        kind: AlertEventKind,
        mut alert: FiringAlert,
        trigger: &Trigger,
        now: DateTime<Utc>,
    ) {
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
        alert.id = id;
        state.set_alert_id(&rule.name, target, id);
        if kind == AlertEventKind::Inhibited {
            self.metrics
                .notice(rule.level, &rule.name, NO_CHANNEL, AlertResult::Inhibited);
            tracing::info!(rule = %rule.name, target, summary = %trigger.summary, "alert held back by a louder alert");
        } else {
            self.send(
                rule,
                target,
                &alert,
                AlertEventKind::Fired,
                event_id,
                trigger,
                now,
                None,
            );
        }
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
        firing: &FiringAlert,
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
            generator_url: self.generator_url(resolved_at.is_some()),
            class: AlertClass::of(&rule.when),
            runbook_url: self.runbook_url(rule, firing.level),
            one_off: false,
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
        crate::slo::maintenance_windows_of(&self.store, &self.slo, from, until)
            .await
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "cannot read the maintenance windows; the stored checks all count");
                Vec::new()
            })
    }

    /// The absolute link to the runbook section of a rule's alerts at `level`.
    fn runbook_url(&self, rule: &AlertRule, level: AlertLevel) -> String {
        labels::runbook_url(
            &self.runbook_base_url,
            AlertClass::of(&rule.when).runbook_anchor(level),
        )
    }

    /// A link back to hale's list of such alerts (Alertmanager's `generatorURL`).
    fn generator_url(&self, resolved: bool) -> String {
        let state = if resolved { "resolved" } else { "firing" };
        format!("{}/alerts?state={state}", self.generator_base)
    }

    fn set_active(&self, state: &AlertMemory) {
        for level in AlertLevel::ALL {
            self.metrics.set_active(*level, state.active(*level));
        }
    }
}

/// True when a maintenance window covers `target` at `at`.
fn in_maintenance(windows: &[MaintenanceWindow], target: &str, at: DateTime<Utc>) -> bool {
    windows
        .iter()
        .any(|w| w.covers_target(target) && w.is_active(at))
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
