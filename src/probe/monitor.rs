//! The monitor: every target with its breaker and latest result; background probing at each target's
//! interval (jittered) and on-demand checks for `/health/all`. One check per target at a time (callers
//! that arrive meanwhile share its result), every probe under one global bound, and every check persisted
//! through the batching writer, except on-demand checks beyond one row per target per interval.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::breaker::{BreakerSnapshot, BreakerState, SharedBreaker, Transition};
use crate::clock::Clock;
use crate::config::{Config, TargetConfig, TargetUrl};
use crate::events::{BreakerMoved, CheckFinished, Event, EventBus};
use crate::limits::{self, ProbeBudget};
use crate::metrics::HealthMetrics;
use crate::probe::check::{self, CheckResult};
use crate::probe::score::{self, ScoreInput};
use crate::probe::{HealthSweep, LatestCheck, McpLink, OutcomeCounts, Target};
use crate::records::{CheckRecord, CheckSource, Outcome};
use crate::store::writer::CheckWriter;
use crate::store::{Store, StoreError};

#[derive(Debug)]
pub struct Monitor {
    pub(crate) targets: Vec<Arc<Target>>,
    client: reqwest::Client,
    store: Store,
    writer: CheckWriter,
    pub(crate) metrics: HealthMetrics,
    events: EventBus,
    pub(crate) clock: Arc<dyn Clock>,
    cache_ttl: Duration,
    slow_threshold: Duration,
    /// One permit per probe in flight, background and on-demand alike.
    probes: Semaphore,
    /// Probe every target at its interval (`monitor.background_checks`); else only on request.
    pub(crate) background: bool,
    /// Where the MCP servers' targets (`mcp:<name>`) are checked and healed.
    mcp: McpLink,
}

#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot build the HTTP client for probes: {0}")]
    Client(#[from] reqwest::Error),
}

/// Breakers of targets are saved under this prefix and the target's name.
pub const TARGET_BREAKER_PREFIX: &str = "target:";

/// The persisted name of a target's breaker.
pub fn breaker_name(target: &str) -> String {
    format!("{TARGET_BREAKER_PREFIX}{target}")
}

/// The target a saved breaker belongs to, if it is a target's.
pub fn target_of_breaker(saved_name: &str) -> Option<&str> {
    saved_name.strip_prefix(TARGET_BREAKER_PREFIX)
}

/// How many distinct (scheme, host, port) the HTTP targets use: the probe client pools connections per host.
fn distinct_http_hosts(targets: &[Arc<TargetConfig>]) -> usize {
    targets
        .iter()
        .filter_map(|t| match &t.url {
            TargetUrl::Http(url) => Some((
                url.scheme().to_owned(),
                url.host_str().map(str::to_owned),
                url.port_or_known_default(),
            )),
            TargetUrl::Tcp { .. } | TargetUrl::Mcp { .. } => None,
        })
        .collect::<HashSet<_>>()
        .len()
}

impl Monitor {
    /// Builds every target, restoring each breaker from the store as it was saved.
    pub async fn new(
        config: &Config,
        store: Store,
        writer: CheckWriter,
        metrics: HealthMetrics,
        events: EventBus,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, MonitorError> {
        let saved: HashMap<String, _> = store.load_breakers().await?.into_iter().collect();
        let mut targets = Vec::with_capacity(config.services.len());
        let mut restored = Vec::new();
        for target in &config.services {
            let settings = target.breaker_settings(&config.breaker).settings();
            let name = breaker_name(target.name.as_str());
            let (breaker, transition_at_restore) = match saved.get(&name) {
                Some(snapshot) => {
                    SharedBreaker::from_snapshot(name, settings, snapshot, clock.clone())
                }
                None => (SharedBreaker::new(name, settings, clock.clone()), None),
            };
            metrics.breaker_state(target.name.as_str(), breaker.state());
            let target = Arc::new(Target::new(target.clone(), breaker));
            if let Some(transition) = transition_at_restore {
                restored.push((target.clone(), transition));
            }
            targets.push(target);
        }
        let budget = Self::probe_budget(config);
        metrics.set_probe_concurrency_limit(budget.concurrency);
        let monitor = Self {
            targets,
            client: check::http_client(budget.idle_per_host)?,
            store,
            writer,
            metrics,
            events,
            clock,
            cache_ttl: Duration::from_secs(config.monitor.cache_ttl_s),
            slow_threshold: Duration::from_millis(config.monitor.slow_threshold_ms),
            probes: Semaphore::new(budget.concurrency),
            background: config.monitor.background_checks,
            mcp: McpLink::default(),
        };
        for (target, transition) in restored {
            monitor.breaker_moved(&target, &transition).await;
        }
        Ok(monitor)
    }

    /// Sizes probe concurrency and idle connections from `monitor.max_in_flight` and the open-file limit,
    /// and logs when the limit lowers them.
    fn probe_budget(config: &Config) -> ProbeBudget {
        let hosts = distinct_http_hosts(&config.services);
        let budget = ProbeBudget::new(
            config.monitor.max_in_flight,
            config.http.workers,
            hosts,
            limits::current_open_file_limit(),
            limits::delivery_descriptors(
                config.alerts.channels.delivery.max_concurrent,
                config.alerts.channels.delivery.max_concurrent_per_channel,
            ),
        );
        if budget.concurrency < config.monitor.max_in_flight {
            tracing::warn!(
                configured = config.monitor.max_in_flight,
                effective = budget.concurrency,
                open_file_limit = budget.open_files,
                reserved = budget.reserve,
                "probe concurrency lowered to fit the open-file limit"
            );
        }
        if budget.idle_per_host == 0 && hosts > 0 {
            tracing::info!(
                hosts,
                open_file_limit = budget.open_files,
                "too many distinct hosts to keep an idle connection to each within the open-file limit; probe connections are not reused"
            );
        }
        budget
    }

    /// The monitor, checking the MCP servers' targets through `link` (filled by the MCP WebBridge's assembly).
    pub fn with_mcp(mut self, link: McpLink) -> Self {
        self.mcp = link;
        self
    }

    /// Where the MCP servers' targets are checked and healed.
    pub fn mcp(&self) -> &McpLink {
        &self.mcp
    }

    /// One probe of a target: an HTTP or TCP check, or an MCP server's ping.
    async fn probe(&self, target: &TargetConfig) -> CheckResult {
        match &target.url {
            TargetUrl::Mcp { server } => self.mcp.check(server.as_str(), target.timeout()).await,
            TargetUrl::Http(_) | TargetUrl::Tcp { .. } => {
                check::run_check(&self.client, target).await
            }
        }
    }

    pub fn targets(&self) -> &[Arc<Target>] {
        &self.targets
    }

    /// The target of that name.
    pub fn target(&self, name: &str) -> Option<&Arc<Target>> {
        self.targets.iter().find(|t| t.name() == name)
    }

    /// Probes a target now, outside its breaker, storing and publishing nothing: how auto-heal verifies that
    /// a restarted target answers again while its breaker may still be open. Waits for a probe slot like any
    /// other probe.
    pub async fn probe_directly(&self, target: &Target) -> CheckResult {
        // The semaphore is never closed.
        let _slot = self
            .probes
            .acquire()
            .await
            .expect("the probe semaphore stays open");
        let _running = self.metrics.probe_started();
        self.probe(&target.config).await
    }

    /// Checks one target: through its breaker (an on-demand check of an open breaker is answered
    /// `circuit_open`; a scheduled check always probes, as the breaker's trial), bounded by its timeout and by
    /// the global probe bound, persisted and counted. When a check of the target is already running, waits
    /// for it and returns its result (`shared: true`) instead of probing again.
    pub async fn check(&self, target: &Target, source: CheckSource) -> LatestCheck {
        // Without a token nothing can cancel the wait, so there is always a report.
        self.check_until(target, source, None)
            .await
            .expect("a check without a cancellation token always finishes")
    }

    /// `check`, but gives up waiting (for a running check of the same target, or for a probe slot) when
    /// `cancel` fires; a probe that has started always finishes and is stored.
    pub(crate) async fn check_until(
        &self,
        target: &Target,
        source: CheckSource,
        cancel: Option<&CancellationToken>,
    ) -> Option<LatestCheck> {
        let seen = target.finished.load(Ordering::Acquire);
        let _turn = wait_unless_cancelled(cancel, target.turn.lock()).await?;
        if target.finished.load(Ordering::Acquire) != seen {
            // A check that was running when this caller arrived has finished: its result is the answer. A
            // scheduled check does not take a `circuit_open` answer given to an on-demand one: it probes.
            if let Some(mut report) = target
                .latest()
                .filter(|r| source != CheckSource::Monitor || r.outcome != Outcome::CircuitOpen)
            {
                self.metrics.check_shared(target.name());
                if source == CheckSource::Monitor {
                    self.store_unstored_as_background(target).await;
                }
                report.shared = true;
                return Some(report);
            }
        }
        let report = self.check_now(target, source, cancel).await?;
        target.finished.fetch_add(1, Ordering::Release);
        Some(report)
    }

    async fn check_now(
        &self,
        target: &Target,
        source: CheckSource,
        cancel: Option<&CancellationToken>,
    ) -> Option<LatestCheck> {
        // A scheduled check is never refused: while the breaker is not closed it is the trial, so a recovered
        // target is seen at its next scheduled check. Only on-demand checks are kept off an open breaker.
        let acquired = match source {
            CheckSource::Monitor => Ok((target.breaker.acquire_scheduled(), None)),
            CheckSource::OnDemand => target.breaker.try_acquire(),
        };
        let result = match acquired {
            Err(rejected) => {
                let error = match (rejected.retry_at, rejected.state) {
                    (Some(at), _) => {
                        format!("circuit breaker open; next trial at {}", at.to_rfc3339())
                    }
                    (None, BreakerState::HalfOpen) => {
                        "circuit breaker half-open; a trial check is in flight".to_owned()
                    }
                    (None, _) => "circuit breaker open; a trial check is in flight".to_owned(),
                };
                self.metrics
                    .check_finished(target.name(), source, Outcome::CircuitOpen, None);
                let report = self
                    .record(
                        target,
                        source,
                        Outcome::CircuitOpen,
                        None,
                        None,
                        Some(error),
                    )
                    .await;
                return Some(report);
            }
            Ok((permit, transition)) => {
                if let Some(transition) = transition {
                    self.breaker_moved(target, &transition).await;
                }
                let before = target.breaker.snapshot();
                // Dropping the breaker permit on cancellation abandons the trial without counting it.
                let slot = wait_unless_cancelled(cancel, self.probes.acquire()).await?;
                // The semaphore is never closed.
                let _slot = slot.expect("the probe semaphore stays open");
                let _running = self.metrics.probe_started();
                let result: CheckResult = self.probe(&target.config).await;
                let transition = if result.outcome.is_up() {
                    permit.success()
                } else {
                    permit.failure()
                };
                match transition {
                    Some(transition) => self.breaker_moved(target, &transition).await,
                    // A failure streak (or its end), or the later retry_at a failed scheduled trial of an
                    // open breaker sets, is saved too, so a restart does not forget it.
                    None => self.save_if_changed(&target.breaker, &before).await,
                }
                result
            }
        };
        self.metrics
            .check_finished(target.name(), source, result.outcome, Some(result.latency));
        let report = self
            .record(
                target,
                source,
                result.outcome,
                result.http_status,
                Some(result.latency),
                result.error,
            )
            .await;
        Some(report)
    }

    /// A background check that shared an on-demand check whose row was not stored stores it, as its own.
    async fn store_unstored_as_background(&self, target: &Target) {
        let record = target.rows().unstored.take();
        if let Some(record) = record {
            let mut record = *record;
            record.source = CheckSource::Monitor;
            if let Err(e) = self.writer.submit(record).await {
                tracing::warn!(target = target.name(), error = %e, "check result not stored");
            }
        }
    }

    async fn record(
        &self,
        target: &Target,
        source: CheckSource,
        outcome: Outcome,
        http_status: Option<u16>,
        latency: Option<Duration>,
        error: Option<String>,
    ) -> LatestCheck {
        let breaker = target.breaker.state();
        let checked_at = self.clock.now();
        let record = CheckRecord {
            checked_at,
            service: target.name.clone(),
            outcome,
            http_status,
            latency,
            error: error.clone(),
            breaker_state: breaker,
            source,
        };
        // Background rows are what the SLOs are computed from; on-demand rows are kept to one per target per
        // interval, so no request rate can fill the disk.
        let store = match source {
            CheckSource::Monitor => {
                // Newer than any on-demand check left unstored: that one no longer needs a row.
                target.rows().unstored = None;
                true
            }
            CheckSource::OnDemand => target.claim_on_demand_row(checked_at),
        };
        if store {
            if let Err(e) = self.writer.submit(record).await {
                tracing::warn!(target = target.name(), error = %e, "check result not stored");
            }
        } else {
            self.metrics.check_not_stored(target.name());
            target.rows().unstored = Some(Box::new(record));
        }
        self.events.publish(Event::CheckFinished(CheckFinished {
            target: target.name.clone(),
            outcome,
            http_status,
            latency,
            source,
            at: checked_at,
        }));
        let check = LatestCheck {
            target: target.name.clone(),
            outcome,
            http_status,
            latency,
            checked_at,
            cached: false,
            shared: false,
            breaker,
            error,
        };
        target.set_latest(check.clone());
        check
    }

    /// Logs, counts, publishes and persists a breaker transition.
    async fn breaker_moved(&self, target: &Target, transition: &Transition) {
        let name = target.name();
        if transition.to == BreakerState::Open {
            tracing::warn!(target = name, from = %transition.from, to = %transition.to, reason = transition.reason.as_str(), retry_at = %transition.retry_at.map(|t| t.to_rfc3339()).unwrap_or_default(), "circuit breaker opened");
        } else {
            tracing::info!(target = name, from = %transition.from, to = %transition.to, reason = transition.reason.as_str(), "circuit breaker moved");
        }
        self.metrics.breaker_transition(name, transition.to);
        self.events.publish(Event::BreakerMoved(BreakerMoved {
            target: target.name.clone(),
            from: transition.from,
            to: transition.to,
            reason: transition.reason,
            at: transition.at,
            retry_at: transition.retry_at,
        }));
        let breaker = &target.breaker;
        if let Err(e) = self
            .store
            .save_breaker(breaker.name(), &breaker.snapshot(), Some(transition))
            .await
        {
            tracing::error!(target = name, error = %e, "cannot persist circuit breaker state");
        }
    }

    async fn save_if_changed(&self, breaker: &SharedBreaker, before: &BreakerSnapshot) {
        let now = breaker.snapshot();
        if now.consecutive_failures == before.consecutive_failures
            && now.consecutive_successes == before.consecutive_successes
            && now.retry_at == before.retry_at
        {
            return;
        }
        if let Err(e) = self.store.save_breaker(breaker.name(), &now, None).await {
            tracing::error!(breaker = breaker.name(), error = %e, "cannot persist circuit breaker state");
        }
    }

    /// Checks every target now, in parallel, reusing successes younger than the cache TTL and sharing
    /// checks already in flight; the probes themselves wait for the global bound.
    pub async fn check_all(&self) -> HealthSweep {
        let now = self.clock.now();
        let reports =
            futures_util::future::join_all(self.targets.iter().map(|target| async move {
                match target.latest() {
                    Some(mut cached) if cached.ok() && self.is_fresh(cached.checked_at, now) => {
                        cached.cached = true;
                        cached
                    }
                    _ => self.check(target, CheckSource::OnDemand).await,
                }
            }))
            .await;
        let all = self.summarize(reports);
        self.metrics.set_score(all.score);
        all
    }

    /// Every target's latest result, without checking anything: what `/health/all` answers to a hale
    /// probe, so that hale instances that monitor each other's `/health/all` cannot recurse. A target not
    /// checked yet is reported as an `error` saying so.
    pub fn latest_all(&self) -> HealthSweep {
        let now = self.clock.now();
        let reports = self
            .targets
            .iter()
            .map(|target| match target.latest() {
                Some(mut latest) => {
                    latest.cached = true;
                    latest.shared = false;
                    latest
                }
                None => LatestCheck {
                    target: target.name.clone(),
                    outcome: Outcome::Error,
                    http_status: None,
                    latency: None,
                    checked_at: now,
                    cached: true,
                    shared: false,
                    breaker: target.breaker_state(),
                    error: Some(
                        "not checked yet; a request from a hale probe is answered from the latest results only"
                            .to_owned(),
                    ),
                },
            })
            .collect();
        self.summarize(reports)
    }

    fn summarize(&self, reports: Vec<LatestCheck>) -> HealthSweep {
        let mut counts = OutcomeCounts::default();
        let mut inputs = Vec::with_capacity(reports.len());
        for (report, target) in reports.iter().zip(&self.targets) {
            counts.add(report.outcome);
            inputs.push(report.score_input(&target.config));
        }
        let score = score::health_score(&inputs, self.slow_threshold);
        HealthSweep {
            ok: reports.iter().all(LatestCheck::ok),
            score,
            counts,
            checks: reports,
            at: self.clock.now(),
        }
    }

    fn is_fresh(&self, checked_at: DateTime<Utc>, now: DateTime<Utc>) -> bool {
        (now - checked_at)
            .to_std()
            .map(|age| age < self.cache_ttl)
            .unwrap_or(true) // checked "in the future" (clock moved back): still fresh
    }

    /// The score from the latest result of every target checked so far.
    pub fn current_score(&self) -> f64 {
        let inputs: Vec<ScoreInput> = self
            .targets
            .iter()
            .filter_map(|t| t.latest().map(|r| r.score_input(&t.config)))
            .collect();
        score::health_score(&inputs, self.slow_threshold)
    }
}

/// Awaits `wait`, or gives up with `None` when `cancel` fires first.
async fn wait_unless_cancelled<F: std::future::Future>(
    cancel: Option<&CancellationToken>,
    wait: F,
) -> Option<F::Output> {
    match cancel {
        Some(cancel) => cancel.run_until_cancelled(wait).await,
        None => Some(wait.await),
    }
}
