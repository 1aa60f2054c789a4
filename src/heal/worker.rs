//! The heal loop as a background `Worker`: heals a target at once when its scheduled checks fail
//! `heal.after_failures` times in a row, and sweeps every `heal.sweep_interval_s` for targets still down.
//! Neither touches a target while a maintenance window covers it.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::clock::Ticker;
use crate::events::{Event, Subscription};
use crate::heal::Healer;
use crate::records::HealTrigger;
use crate::worker::Worker;

/// At shutdown, how long heals in flight may take to finish before they are abandoned.
const FINISH_GRACE: Duration = Duration::from_secs(10);

/// How often the sweep looks for targets due (at most): a target is due `heal.sweep_interval_s` after its
/// previous attempt started, so with the default cooldown equal to the sweep interval no cycle is lost to a
/// few milliseconds of scheduling.
const SWEEP_RESOLUTION: Duration = Duration::from_secs(5);

#[derive(Debug)]
pub struct HealLoop {
    healer: Arc<Healer>,
    /// Taken at construction, so no event published before the loop first runs is missed.
    events: Mutex<Option<Subscription>>,
}

impl HealLoop {
    pub fn new(healer: Arc<Healer>) -> Self {
        let events = healer.subscribe();
        Self {
            healer,
            events: Mutex::new(Some(events)),
        }
    }
}

impl Worker for HealLoop {
    fn name(&self) -> &'static str {
        "heal"
    }

    fn run(self: Arc<Self>, cancel: CancellationToken) -> BoxFuture<'static, ()> {
        let started = self.healer.clock.now();
        let events = self.events.lock().unwrap_or_else(|p| p.into_inner()).take();
        Box::pin(async move {
            let Some(mut events) = events else {
                return;
            };
            let healer = self.healer.clone();
            let sweep_every = Duration::from_secs(healer.settings.sweep_interval_s);
            let resolution = sweep_every.min(SWEEP_RESOLUTION);
            let mut sweep = Ticker::from(healer.clock.clone(), started, resolution, resolution);
            let mut heals: JoinSet<(Arc<str>, Option<DateTime<Utc>>)> = JoinSet::new();
            // Targets with a heal queued or running, and when each one's latest automatic attempt started.
            let mut busy: HashSet<Arc<str>> = HashSet::new();
            let mut last_attempt: HashMap<Arc<str>, DateTime<Utc>> = HashMap::new();
            let start = |target: Arc<str>,
                         heals: &mut JoinSet<(Arc<str>, Option<DateTime<Utc>>)>,
                         busy: &mut HashSet<Arc<str>>| {
                if !healer.automatic(&target) || !busy.insert(target.clone()) {
                    return;
                }
                let healer = healer.clone();
                heals.spawn(async move {
                    // Automatic heals queue for their turn rather than skip as busy.
                    let started = healer
                        .heal(&target, HealTrigger::Automatic, true)
                        .await
                        .ok()
                        .map(|record| record.started_at);
                    (target, started)
                });
            };
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    Some(done) = heals.join_next(), if !heals.is_empty() => {
                        match done {
                            Ok((target, started)) => {
                                busy.remove(&target);
                                if let Some(started) = started {
                                    last_attempt.insert(target, started);
                                }
                            }
                            Err(e) => tracing::error!(error = %e, "a heal task failed"),
                        }
                    }
                    event = events.recv() => {
                        let Some(event) = event else { break };
                        if let Event::CheckFinished(check) = event.as_ref() {
                            if healer.observe(check).await {
                                start(check.target.clone(), &mut heals, &mut busy);
                            }
                        }
                    }
                    _ = sweep.tick() => {
                        let now = healer.clock.now();
                        for target in healer.down_targets(now).await {
                            // Due a sweep interval after its latest attempt (or after the loop started).
                            if healer.policy.sweep_due(last_attempt.get(&target).copied(), started, now) {
                                start(target, &mut heals, &mut busy);
                            }
                        }
                    }
                }
            }
            if !heals.is_empty() {
                tracing::info!(
                    running = heals.len(),
                    "waiting for heals in flight to finish"
                );
                let finished = tokio::time::timeout(FINISH_GRACE, async {
                    while heals.join_next().await.is_some() {}
                })
                .await;
                if finished.is_err() {
                    tracing::warn!("heals still in flight at shutdown were abandoned");
                    heals.abort_all();
                }
            }
        })
    }
}
