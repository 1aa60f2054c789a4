//! The monitor: every target with its breaker and latest result; background probing at each target's
//! interval (jittered) and on-demand checks for `/health/all`. One check per target at a time (callers
//! that arrive meanwhile share its result), every probe under one global bound, and every check persisted
//! through the batching writer, except on-demand checks beyond one row per target per interval.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;
use serde::Serialize;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use utoipa::ToSchema;

use crate::breaker::{BreakerSnapshot, BreakerState, SharedBreaker, Transition};
use crate::clock::Clock;
use crate::config::{Config, TargetConfig, TargetUrl};
use crate::limits::{self, ProbeBudget};
use crate::metrics::HealthMetrics;
use crate::probe::check::{self, CheckResult};
use crate::probe::score::{self, ScoreInput};
use crate::records::{CheckRecord, CheckSource, Outcome};
use crate::store::writer::CheckWriter;
use crate::store::{Store, StoreError};

/// How often the health-score gauge is recomputed from the latest results.
const SCORE_REFRESH: Duration = Duration::from_secs(1);
/// How often old rows are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// One target's latest result, as `/health/all` and `/services` report it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CheckReport {
    /// The target's name.
    pub service: String,
    /// True when the outcome is `up`.
    pub ok: bool,
    pub outcome: Outcome,
    /// The HTTP status, for HTTP targets that answered.
    pub status: Option<u16>,
    /// How long the check took, in milliseconds (microsecond resolution); none when not attempted.
    pub latency_ms: Option<f64>,
    pub checked_at: DateTime<Utc>,
    /// True when this result was reused rather than checked for this request: a success younger than
    /// `monitor.cache_ttl_s`, or any latest result when the request came from a hale probe (`X-Hale-Probe`).
    pub cached: bool,
    /// True when a check of this target was already in flight (started by another request or by the
    /// background monitor) and this is its result, shared instead of probing the target a second time.
    pub shared: bool,
    /// The target's circuit breaker state after the check.
    pub breaker: BreakerState,
    pub error: Option<String>,
}

impl CheckReport {
    fn score_input(&self, target: &TargetConfig) -> ScoreInput {
        ScoreInput {
            weight: target.weight,
            critical: target.critical,
            outcome: self.outcome,
            latency: self
                .latency_ms
                .map(|ms| Duration::from_secs_f64(ms.max(0.0) / 1000.0)),
        }
    }
}

/// A monitored target: its config, breaker and latest result.
#[derive(Debug)]
pub struct Target {
    pub config: TargetConfig,
    name: Arc<str>,
    breaker: SharedBreaker,
    latest: Mutex<Option<CheckReport>>,
    /// Held while a check of this target runs; a caller that has to wait for it shares its result.
    turn: tokio::sync::Mutex<()>,
    /// Checks of this target finished so far. Each one sets `latest` before it is counted.
    finished: AtomicU64,
    rows: Mutex<OnDemandRows>,
}

/// What keeps on-demand checks of a target to one stored row per interval.
#[derive(Debug, Default)]
struct OnDemandRows {
    /// When the latest on-demand row of this target was submitted.
    last_stored: Option<DateTime<Utc>>,
    /// The latest on-demand check that was answered but not stored. A background check that shares its
    /// result stores it, so background rows are never lost to the limit.
    unstored: Option<CheckRecord>,
}

impl Target {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn breaker_state(&self) -> BreakerState {
        self.breaker.state()
    }

    /// When an open breaker will next let a trial through.
    pub fn breaker_retry_at(&self) -> Option<DateTime<Utc>> {
        self.breaker.snapshot().retry_at
    }

    pub fn latest(&self) -> Option<CheckReport> {
        self.latest
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    fn set_latest(&self, report: CheckReport) {
        *self
            .latest
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(report);
    }

    fn rows(&self) -> std::sync::MutexGuard<'_, OnDemandRows> {
        self.rows
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether an on-demand check made at `now` may be stored: true at most once per `interval_s`.
    fn claim_on_demand_row(&self, now: DateTime<Utc>) -> bool {
        let mut rows = self.rows();
        let within_interval = rows.last_stored.is_some_and(|last| {
            // A clock that moved back (now < last) ends the wait rather than stretching it.
            (now - last)
                .to_std()
                .is_ok_and(|since| since < self.config.interval())
        });
        if within_interval {
            return false;
        }
        rows.last_stored = Some(now);
        rows.unstored = None;
        true
    }
}

/// The answer of `/health/all`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AllHealth {
    /// True when every target is up.
    pub ok: bool,
    /// Weighted health, 0 to 100 (see docs/health-score.md).
    pub score: f64,
    /// How many targets have each outcome.
    pub counts: OutcomeCounts,
    pub targets: Vec<CheckReport>,
    pub timestamp: DateTime<Utc>,
}

#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct OutcomeCounts {
    pub up: usize,
    pub down: usize,
    pub timeout: usize,
    pub circuit_open: usize,
    pub error: usize,
}

impl OutcomeCounts {
    fn add(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Up => self.up += 1,
            Outcome::Down => self.down += 1,
            Outcome::Timeout => self.timeout += 1,
            Outcome::CircuitOpen => self.circuit_open += 1,
            Outcome::Error => self.error += 1,
        }
    }
}

#[derive(Debug)]
pub struct Monitor {
    targets: Vec<Arc<Target>>,
    client: reqwest::Client,
    store: Store,
    writer: CheckWriter,
    metrics: HealthMetrics,
    clock: Arc<dyn Clock>,
    cache_ttl: Duration,
    slow_threshold: Duration,
    /// One permit per probe in flight, background and on-demand alike.
    probes: Semaphore,
    retention: (u32, u32),
}

#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot build the HTTP client for probes: {0}")]
    Client(#[from] reqwest::Error),
}

/// The persisted name of a target's breaker.
fn breaker_name(target: &str) -> String {
    format!("target:{target}")
}

/// How many distinct (scheme, host, port) the HTTP targets use: the probe client pools connections per host.
fn distinct_http_hosts(targets: &[TargetConfig]) -> usize {
    targets
        .iter()
        .filter_map(|t| match &t.url {
            TargetUrl::Http(url) => Some((
                url.scheme().to_owned(),
                url.host_str().map(str::to_owned),
                url.port_or_known_default(),
            )),
            TargetUrl::Tcp { .. } => None,
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
        clock: Arc<dyn Clock>,
    ) -> Result<Self, MonitorError> {
        let saved: HashMap<String, _> = store.load_breakers().await?.into_iter().collect();
        let mut targets = Vec::with_capacity(config.services.len());
        let mut restored = Vec::new();
        for target in &config.services {
            let settings = target.breaker_settings(&config.breaker).settings();
            let name = breaker_name(target.name.as_str());
            let breaker = match saved.get(&name) {
                Some(snapshot) => {
                    let (breaker, transition) =
                        SharedBreaker::from_snapshot(name, settings, snapshot, clock.clone());
                    if let Some(transition) = transition {
                        restored.push((breaker.clone(), transition));
                    }
                    breaker
                }
                None => SharedBreaker::new(name, settings, clock.clone()),
            };
            metrics.breaker_state(breaker.name(), breaker.state());
            targets.push(Arc::new(Target {
                config: target.clone(),
                name: Arc::from(target.name.as_str()),
                breaker,
                latest: Mutex::new(None),
                turn: tokio::sync::Mutex::new(()),
                finished: AtomicU64::new(0),
                rows: Mutex::new(OnDemandRows::default()),
            }));
        }
        let budget = Self::probe_budget(config);
        metrics.set_probe_concurrency_limit(budget.concurrency);
        let monitor = Self {
            targets,
            client: check::http_client(budget.idle_per_host)?,
            store,
            writer,
            metrics,
            clock,
            cache_ttl: Duration::from_secs(config.monitor.cache_ttl_s),
            slow_threshold: Duration::from_millis(config.monitor.slow_threshold_ms),
            probes: Semaphore::new(budget.concurrency),
            retention: (
                config.storage.retention_days,
                config.storage.rollup_retention_days,
            ),
        };
        for (breaker, transition) in restored {
            monitor.breaker_moved(&breaker, &transition).await;
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

    pub fn targets(&self) -> &[Arc<Target>] {
        &self.targets
    }

    pub fn target(&self, name: &str) -> Option<&Arc<Target>> {
        self.targets.iter().find(|t| t.name() == name)
    }

    /// Checks one target: through its breaker, bounded by its timeout and by the global probe bound,
    /// persisted and counted. When a check of the target is already running, waits for it and returns its
    /// result (`shared: true`) instead of probing again.
    pub async fn check(&self, target: &Target, source: CheckSource) -> CheckReport {
        // Without a token nothing can cancel the wait, so there is always a report.
        self.check_until(target, source, None)
            .await
            .expect("a check without a cancellation token always finishes")
    }

    /// `check`, but gives up waiting (for a running check of the same target, or for a probe slot) when
    /// `cancel` fires; a probe that has started always finishes and is stored.
    async fn check_until(
        &self,
        target: &Target,
        source: CheckSource,
        cancel: Option<&CancellationToken>,
    ) -> Option<CheckReport> {
        let seen = target.finished.load(Ordering::Acquire);
        let _turn = wait_unless_cancelled(cancel, target.turn.lock()).await?;
        if target.finished.load(Ordering::Acquire) != seen {
            // A check that was running when this caller arrived has finished: its result is the answer.
            if let Some(mut report) = target.latest() {
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
    ) -> Option<CheckReport> {
        let result = match target.breaker.try_acquire() {
            Err(rejected) => {
                let error = match rejected.retry_at {
                    Some(at) => format!("circuit breaker open; next trial at {}", at.to_rfc3339()),
                    None => "circuit breaker half-open; a trial check is in flight".to_owned(),
                };
                self.metrics
                    .check_finished(target.name(), Outcome::CircuitOpen, None);
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
                    self.breaker_moved(&target.breaker, &transition).await;
                }
                let before = target.breaker.snapshot();
                // Dropping the breaker permit on cancellation abandons the trial without counting it.
                let slot = wait_unless_cancelled(cancel, self.probes.acquire()).await?;
                // The semaphore is never closed.
                let _slot = slot.expect("the probe semaphore stays open");
                let _running = self.metrics.probe_started();
                let result: CheckResult = check::run_check(&self.client, &target.config).await;
                let transition = if result.outcome.is_up() {
                    permit.success()
                } else {
                    permit.failure()
                };
                match transition {
                    Some(transition) => self.breaker_moved(&target.breaker, &transition).await,
                    // A failure streak (or its end) is saved too, so a restart does not forget it.
                    None => self.save_if_counts_changed(&target.breaker, &before).await,
                }
                result
            }
        };
        self.metrics
            .check_finished(target.name(), result.outcome, Some(result.latency));
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
        if let Some(mut record) = record {
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
    ) -> CheckReport {
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
            target.rows().unstored = Some(record);
        }
        let report = CheckReport {
            service: target.name().to_owned(),
            ok: outcome.is_up(),
            outcome,
            status: http_status,
            latency_ms: latency.map(|d| d.as_micros() as f64 / 1000.0),
            checked_at,
            cached: false,
            shared: false,
            breaker,
            error,
        };
        target.set_latest(report.clone());
        report
    }

    /// Logs, counts and persists a breaker transition.
    async fn breaker_moved(&self, breaker: &SharedBreaker, transition: &Transition) {
        let name = breaker.name();
        if transition.to == BreakerState::Open {
            tracing::warn!(breaker = name, from = %transition.from, to = %transition.to, reason = transition.reason.as_str(), retry_at = %transition.retry_at.map(|t| t.to_rfc3339()).unwrap_or_default(), "circuit breaker opened");
        } else {
            tracing::info!(breaker = name, from = %transition.from, to = %transition.to, reason = transition.reason.as_str(), "circuit breaker moved");
        }
        self.metrics.breaker_transition(name, transition.to);
        if let Err(e) = self
            .store
            .save_breaker(name, &breaker.snapshot(), Some(transition))
            .await
        {
            tracing::error!(breaker = name, error = %e, "cannot persist circuit breaker state");
        }
    }

    async fn save_if_counts_changed(&self, breaker: &SharedBreaker, before: &BreakerSnapshot) {
        let now = breaker.snapshot();
        if now.consecutive_failures == before.consecutive_failures
            && now.consecutive_successes == before.consecutive_successes
        {
            return;
        }
        if let Err(e) = self.store.save_breaker(breaker.name(), &now, None).await {
            tracing::error!(breaker = breaker.name(), error = %e, "cannot persist circuit breaker state");
        }
    }

    /// Checks every target now, in parallel, reusing successes younger than the cache TTL and sharing
    /// checks already in flight; the probes themselves wait for the global bound.
    pub async fn check_all(&self) -> AllHealth {
        let now = self.clock.now();
        let reports =
            futures_util::future::join_all(self.targets.iter().map(|target| async move {
                match target.latest() {
                    Some(mut cached) if cached.ok && self.is_fresh(cached.checked_at, now) => {
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
    pub fn latest_all(&self) -> AllHealth {
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
                None => CheckReport {
                    service: target.name().to_owned(),
                    ok: false,
                    outcome: Outcome::Error,
                    status: None,
                    latency_ms: None,
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

    fn summarize(&self, reports: Vec<CheckReport>) -> AllHealth {
        let mut counts = OutcomeCounts::default();
        let mut inputs = Vec::with_capacity(reports.len());
        for (report, target) in reports.iter().zip(&self.targets) {
            counts.add(report.outcome);
            inputs.push(report.score_input(&target.config));
        }
        let score = score::health_score(&inputs, self.slow_threshold);
        AllHealth {
            ok: reports.iter().all(|r| r.ok),
            score,
            counts,
            targets: reports,
            timestamp: self.clock.now(),
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

    /// Starts the Health Proxy's loops: the score gauge and, when `probe`, one prober per target.
    pub fn spawn(self: &Arc<Self>, tracker: &TaskTracker, cancel: &CancellationToken, probe: bool) {
        for target in self.targets.iter().filter(|_| probe) {
            tracker.spawn(self.clone().probe_loop(target.clone(), cancel.clone()));
        }
        tracker.spawn(self.clone().score_loop(cancel.clone()));
    }

    /// Starts the hourly pruning of old rows; it runs whichever services this process serves.
    pub fn spawn_retention(self: &Arc<Self>, tracker: &TaskTracker, cancel: &CancellationToken) {
        tracker.spawn(self.clone().retention_loop(cancel.clone()));
    }

    async fn probe_loop(self: Arc<Self>, target: Arc<Target>, cancel: CancellationToken) {
        let interval = target.config.interval();
        // A random first delay spreads targets over their interval instead of firing all at once.
        let jitter = interval.mul_f64(rand::rng().random_range(0.0..1.0));
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + jitter, interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = ticker.tick() => {}
            }
            // Waiting for a probe slot ends with cancellation; a probe that has started finishes (within
            // its timeout) and is stored.
            if self
                .check_until(&target, CheckSource::Monitor, Some(&cancel))
                .await
                .is_none()
            {
                break;
            }
        }
    }

    async fn score_loop(self: Arc<Self>, cancel: CancellationToken) {
        let mut ticker = tokio::time::interval(SCORE_REFRESH);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = ticker.tick() => self.metrics.set_score(self.current_score()),
            }
        }
    }

    async fn retention_loop(self: Arc<Self>, cancel: CancellationToken) {
        let mut ticker = tokio::time::interval(PRUNE_EVERY);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = ticker.tick() => {}
            }
            let now = self.clock.now();
            let (raw_days, rollup_days) = self.retention;
            let checks_before = now - chrono::Duration::days(i64::from(raw_days));
            let rollups_before = now - chrono::Duration::days(i64::from(rollup_days));
            match self.store.prune(checks_before, rollups_before).await {
                Ok(pruned) if pruned.is_empty() => {}
                Ok(pruned) => tracing::info!(
                    checks = pruned.checks,
                    rollups = pruned.rollups,
                    transitions = pruned.transitions,
                    "pruned old rows"
                ),
                Err(e) => tracing::warn!(error = %e, "pruning old rows failed"),
            }
        }
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
