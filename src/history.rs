//! `hale history generate`: writes realistic synthetic history of scheduled checks into a database, through
//! the store's own batching writer (so hourly rollups are merged exactly as in production), with outages,
//! slow spells, restarts, heal events, alerts and a maintenance window. The same seed gives the same rows.
//!
//! Every service gets a profile from its position, so a generated database always holds targets that meet
//! their SLOs and targets that breach each one (details such as when and how long are drawn from the seed):
//! - `svc-001`, and every 4th from `svc-005`: steady (a few one-check blips, short slow spells, one restart
//!   a week at most), meets every SLO;
//! - `svc-002`, `svc-006`, ...: a long outage (2-4 h a week, down then timeouts with the breaker open),
//!   two heals and a critical alert: breaches availability;
//! - `svc-003`, ...: long slow spells (about 10% of the time above 500 ms) and a warning alert: breaches p95;
//! - `svc-004`, ...: crashes (5-8 a week, each a few minutes down, then the child restarted): breaches
//!   restarts.
//!
//! `svc-001` never has an incident at all: a clean baseline. It is stopped once for a planned upgrade (30
//! minutes down, from 02:10 UTC on a day in the middle of the history) inside a declared maintenance window
//! (02:00-02:45), which the SLO leaves out: it still meets every objective at 100%.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};

use crate::breaker::BreakerState;
use crate::kind::ServiceKind;
use crate::metrics::{ServiceMetrics, WriterMetrics};
use crate::records::{
    AlertEventKind, AlertLevel, CheckRecord, CheckSource, ChildStartCause, HealAction, HealOutcome,
    HealRecord, HealTrigger, Outcome,
};
use crate::store::backup::{human_bytes, BackupError, StagedDb};
use crate::store::writer::{self, WriterSettings};
use crate::store::{Store, StoreError};

/// The most services one run writes: their names (`svc-00001` ...) have five digits from 1,000 up.
pub const MAX_SERVICES: u32 = 99_999;

/// Rows per transaction: the most `storage.batch_size` allows. Big transactions are what makes bulk
/// inserts fast in SQLite; the writer's other settings are production's.
const BATCH_SIZE: usize = 50_000;
/// The latency of a check that timed out: the default `timeout_ms`.
const TIMEOUT_MS: u64 = 5_000;
/// Consecutive failures after which a generated breaker opens (the default `breaker.failure_threshold`).
const BREAKER_AFTER: u64 = 5;
/// Runs estimated to write more checks than this are refused without --force: about 4.5 GiB of database and
/// 6 minutes at the writer's measured rate.
pub const MAX_ROWS_WITHOUT_FORCE: u64 = 50_000_000;
/// What one generated check takes in the database file, its index entries and share of the rollups included
/// (measured: docs/operations.md).
pub const BYTES_PER_ROW: u64 = 28;

/// What to generate; only built by `HistorySpec::parse`, so every value is in range.
#[derive(Debug, Clone)]
pub struct HistorySpec {
    pub services: u32,
    pub days: u32,
    pub interval_s: u32,
    pub seed: u64,
    pub end: DateTime<Utc>,
}

impl HistorySpec {
    pub fn parse(
        services: u32,
        days: u32,
        interval_s: u32,
        seed: u64,
        end: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Self, String> {
        if !(1..=MAX_SERVICES).contains(&services) {
            return Err(format!(
                "--services {services} is out of range 1..={MAX_SERVICES}"
            ));
        }
        if !(1..=400).contains(&days) {
            return Err(format!("--days {days} is out of range 1..=400"));
        }
        if !(1..=86_400).contains(&interval_s) {
            return Err(format!(
                "--interval-s {interval_s} is out of range 1..=86400"
            ));
        }
        let end = match end {
            Some(raw) => DateTime::parse_from_rfc3339(raw)
                .map_err(|e| format!("--end {raw:?} is not an RFC 3339 time: {e}"))?
                .with_timezone(&Utc),
            None => now,
        };
        // Whole seconds, so two runs with the same --end write the same rows.
        let end = DateTime::from_timestamp(end.timestamp(), 0).unwrap_or(end);
        Ok(Self {
            services,
            days,
            interval_s,
            seed,
            end,
        })
    }

    /// Checks per service.
    pub fn ticks(&self) -> u64 {
        u64::from(self.days) * 86_400 / u64::from(self.interval_s)
    }

    /// Every check the run writes.
    pub fn rows(&self) -> u64 {
        self.ticks() * u64::from(self.services)
    }

    /// About how many bytes the run adds to the database file.
    pub fn estimated_bytes(&self) -> u64 {
        self.rows().saturating_mul(BYTES_PER_ROW)
    }

    /// Why the run is refused without --force: more checks than `MAX_ROWS_WITHOUT_FORCE`, or more bytes than
    /// `free` (the free space where the database goes, when known; `existing` bytes are copied there too).
    pub fn over_cap(&self, existing: u64, free: Option<u64>) -> Option<String> {
        let (rows, bytes) = (self.rows(), self.estimated_bytes());
        if rows > MAX_ROWS_WITHOUT_FORCE {
            return Some(format!(
                "the estimate of {rows} health checks (about {}) is over the cap of {MAX_ROWS_WITHOUT_FORCE} checks; \
                 pass --force to generate it anyway, or ask for fewer --services or --days or a longer --interval-s",
                human_bytes(bytes)
            ));
        }
        let needed = bytes.saturating_add(existing);
        match free {
            Some(free) if needed > free => Some(format!(
                "the estimate of {rows} health checks needs about {needed} bytes ({}), more than the {free} bytes \
                 ({}) free there; pass --force to try anyway, or free some space",
                human_bytes(needed),
                human_bytes(free)
            )),
            _ => None,
        }
    }

    pub fn start(&self) -> DateTime<Utc> {
        self.end - TimeDelta::days(i64::from(self.days))
    }

    pub fn service_name(&self, index: u32) -> String {
        let width = if self.services >= 1000 { 5 } else { 3 };
        format!("svc-{:0width$}", index + 1)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("{path} exists; pass --append to add generated history to it, or choose another --db")]
    Exists { path: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the database did not take {lost} generated health checks (see the log)")]
    Lost { lost: u64 },
    #[error("the check writer stopped before every row was handed to it")]
    WriterClosed,
    #[error(transparent)]
    Place(#[from] BackupError),
}

impl HistoryError {
    pub fn is_bad_input(&self) -> bool {
        match self {
            Self::Exists { .. } => true,
            Self::Store(e) => matches!(
                e,
                StoreError::InUse { .. }
                    | StoreError::NotHale { .. }
                    | StoreError::Corrupt { .. }
                    | StoreError::ReadOnly { .. }
                    | StoreError::Migrate { .. }
                    | StoreError::CreateDir { .. }
            ),
            Self::Place(e) => e.is_bad_input(),
            _ => false,
        }
    }
}

/// What a run wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct HistorySummary {
    pub checks: u64,
    pub elapsed: Duration,
    /// Rows in the tables after the run (the whole file, with --append).
    pub rollup_rows: u64,
    pub child_runs: u64,
    pub heal_events: u64,
    pub alerts: u64,
    pub maintenance_windows: u64,
}

impl HistorySummary {
    pub fn rows_per_second(&self) -> f64 {
        self.checks as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Told how many checks were handed to the writer so far.
pub trait GenerateProgress: Send + Sync {
    fn advanced(&self, _rows: u64) {}
    fn finished(&self) {}
}

/// Reports nothing.
pub struct Silent;
impl GenerateProgress for Silent {}

/// Writes the history of `spec` into `db`: the checks through the batching writer, then the events. The
/// database is written under a temp name beside `db` (a copy of it, with `append`) and renamed to `db` once
/// complete; on an error, or when the future is dropped, the temp file is removed and `db` is untouched.
pub async fn generate(
    db: &Path,
    spec: &HistorySpec,
    append: bool,
    progress: Arc<dyn GenerateProgress>,
) -> Result<HistorySummary, HistoryError> {
    let exists = db.exists();
    if exists && !append {
        return Err(HistoryError::Exists {
            path: db.display().to_string(),
        });
    }
    let started = Instant::now();
    let staged = StagedDb::new(db, exists).await?;
    let store = Store::open(staged.path()).await?;
    let result = write_all(&store, spec, progress.as_ref()).await;
    progress.finished();
    let summary = match result {
        Ok(checks) => summarize(&store, checks, started).await,
        Err(e) => Err(e),
    };
    store.close().await;
    drop(store);
    let summary = summary?;
    staged.commit()?;
    Ok(summary)
}

async fn summarize(
    store: &Store,
    checks: u64,
    started: Instant,
) -> Result<HistorySummary, HistoryError> {
    Ok(HistorySummary {
        checks,
        elapsed: started.elapsed(),
        rollup_rows: store.table_rows("health_check_hourly").await?,
        child_runs: store.table_rows("child_runs").await?,
        heal_events: store.table_rows("heal_events").await?,
        alerts: store.table_rows("alerts").await?,
        maintenance_windows: store.table_rows("maintenance_windows").await?,
    })
}

async fn write_all(
    store: &Store,
    spec: &HistorySpec,
    progress: &dyn GenerateProgress,
) -> Result<u64, HistoryError> {
    let plans: Vec<ServicePlan> = (0..spec.services)
        .map(|i| ServicePlan::draw(spec, i))
        .collect();
    let metrics = ServiceMetrics::new(ServiceKind::HealthProxy);
    let (check_writer, handle) = writer::spawn(
        store.clone(),
        WriterSettings {
            flush_interval: Duration::from_millis(250),
            batch_size: BATCH_SIZE,
            settle_interval: Duration::from_secs(3_600),
        },
        WriterMetrics::register(metrics.registry()),
    );
    let mut states: Vec<CheckState> = plans.iter().map(|_| CheckState::default()).collect();
    let start_ms = spec.start().timestamp_millis();
    let step_ms = i64::from(spec.interval_s) * 1000;
    let mut rng = Rng::new(spec.seed ^ 0x5eed_c4ec);
    let mut handed = 0u64;
    let mut closed = false;
    'ticks: for tick in 0..spec.ticks() {
        let at_ms = start_ms + tick as i64 * step_ms;
        for (plan, state) in plans.iter().zip(states.iter_mut()) {
            // Services are not checked in lockstep: each is offset within the interval.
            let at = DateTime::from_timestamp_millis(at_ms + plan.offset_ms).unwrap_or(spec.end);
            let record = plan.check(tick, at, state, &mut rng);
            if check_writer.submit(record).await.is_err() {
                closed = true;
                break 'ticks;
            }
            handed += 1;
        }
        if tick % 256 == 0 {
            progress.advanced(handed);
        }
    }
    progress.advanced(handed);
    drop(check_writer);
    let report = handle.shutdown().await;
    if report.lost() > 0 {
        return Err(HistoryError::Lost {
            lost: report.lost(),
        });
    }
    if closed {
        return Err(HistoryError::WriterClosed);
    }
    for plan in &plans {
        plan.write_events(store, spec).await?;
    }
    Ok(handed)
}

/// SplitMix64: small, fast and stable across versions, so a seed means the same history forever.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [lo, hi].
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Profile {
    Steady,
    Outage,
    Slow,
    Crashes,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SpanKind {
    /// Failing: down (503) then timeouts.
    Outage,
    /// Stopped on purpose inside a maintenance window: connection refused.
    Planned,
    /// Answering, slowly (the latency in ms).
    Slow(u64),
}

#[derive(Debug, Clone, Copy)]
struct Span {
    from_tick: u64,
    /// Exclusive.
    to_tick: u64,
    kind: SpanKind,
}

/// One service's history, drawn once from the seed.
#[derive(Debug, Clone)]
struct ServicePlan {
    name: Arc<str>,
    profile: Profile,
    offset_ms: i64,
    base_latency_ms: f64,
    /// Sorted by start, not overlapping.
    spans: Vec<Span>,
    /// Ticks where one check fails alone (a blip).
    blips: Vec<u64>,
    /// Crashes: the tick the child exits, how (code, signal).
    crashes: Vec<(u64, Option<i32>, Option<i32>)>,
    interval_s: u64,
    /// The declared maintenance window `[from, until)` (the baseline only).
    maintenance: Option<(DateTime<Utc>, DateTime<Utc>)>,
}

#[derive(Debug, Default)]
struct CheckState {
    span: usize,
    blip: usize,
    /// Consecutive failed checks, for the breaker.
    failures: u64,
}

impl ServicePlan {
    fn draw(spec: &HistorySpec, index: u32) -> Self {
        let mut rng = Rng::new(spec.seed.wrapping_mul(0x1000_0000_01b3) ^ u64::from(index));
        let ticks = spec.ticks().max(1);
        let interval_s = u64::from(spec.interval_s);
        let per_day = (86_400 / interval_s).max(1);
        let of_minutes = |m: u64| (m * 60 / interval_s).max(1);
        let profile = match (index, index % 4) {
            (0, _) => Profile::Steady,
            (_, 1) => Profile::Outage,
            (_, 2) => Profile::Slow,
            (_, 3) => Profile::Crashes,
            _ => Profile::Steady,
        };
        let weeks = u64::from(spec.days).div_ceil(7);
        let mut spans = Vec::new();
        let add = |spans: &mut Vec<Span>, from: u64, len: u64, kind: SpanKind| {
            let to = (from + len).min(ticks);
            if from < to
                && !spans
                    .iter()
                    .any(|s: &Span| from < s.to_tick + 2 && s.from_tick < to + 2)
            {
                spans.push(Span {
                    from_tick: from,
                    to_tick: to,
                    kind,
                });
            }
        };
        let mut crashes = Vec::new();
        let mut blips = Vec::new();
        match profile {
            Profile::Outage => {
                for _ in 0..weeks {
                    let len = of_minutes(rng.range(120, 240));
                    let from = rng.range(0, ticks.saturating_sub(len + 1));
                    add(&mut spans, from, len, SpanKind::Outage);
                }
            }
            Profile::Slow => {
                for _ in 0..u64::from(spec.days) * 3 {
                    let len = of_minutes(rng.range(30, 60));
                    let from = rng.range(0, ticks.saturating_sub(len + 1));
                    add(&mut spans, from, len, SpanKind::Slow(rng.range(550, 900)));
                }
            }
            Profile::Crashes => {
                for _ in 0..weeks * rng.range(5, 8) {
                    let len = of_minutes(rng.range(1, 3));
                    let from = rng.range(0, ticks.saturating_sub(len + 1));
                    let before = spans.len();
                    add(&mut spans, from, len, SpanKind::Outage);
                    if spans.len() > before {
                        let (code, signal) = if rng.unit() < 0.5 {
                            (None, Some(9))
                        } else {
                            (Some(1), None)
                        };
                        crashes.push((from, code, signal));
                    }
                }
            }
            Profile::Steady => {}
        }
        if index != 0 {
            // Everyone but the baseline: short slow spells now and then, and one-check blips.
            for _ in 0..u64::from(spec.days).div_ceil(2) {
                let len = of_minutes(rng.range(10, 30));
                let from = rng.range(0, ticks.saturating_sub(len + 1));
                add(&mut spans, from, len, SpanKind::Slow(rng.range(210, 400)));
            }
            for _ in 0..u64::from(spec.days) * 2 {
                blips.push(rng.range(0, ticks - 1));
            }
            if profile == Profile::Steady && weeks > 0 && per_day > 0 {
                // One crash a week at most keeps it under the restarts objective.
                let len = 1;
                let from = rng.range(0, ticks.saturating_sub(len + 1));
                let before = spans.len();
                add(&mut spans, from, len, SpanKind::Outage);
                if spans.len() > before {
                    crashes.push((from, Some(1), None));
                }
            }
        }
        let offset_ms = i64::try_from(rng.range(0, interval_s * 1000 - 1)).unwrap_or(0);
        let maintenance = (index == 0).then(|| maintenance_window(spec));
        if let Some((from, _)) = maintenance {
            // The first and the last tick checked at or after a time.
            let tick_at = |t: DateTime<Utc>| {
                let since = (t - spec.start()).num_milliseconds() - offset_ms;
                u64::try_from(since.max(0))
                    .unwrap_or(0)
                    .div_ceil(interval_s * 1000)
            };
            let (stop, start_again) = (
                tick_at(from + TimeDelta::minutes(10)),
                tick_at(from + TimeDelta::minutes(40)),
            );
            // Longer intervals than 30 minutes have no check to spare for it.
            if stop < start_again {
                add(&mut spans, stop, start_again - stop, SpanKind::Planned);
            }
        }
        spans.sort_by_key(|s| s.from_tick);
        blips.sort_unstable();
        blips.dedup();
        crashes.sort_by_key(|c| c.0);
        Self {
            name: Arc::from(spec.service_name(index)),
            profile,
            offset_ms,
            base_latency_ms: 8.0 + rng.unit() * 70.0,
            spans,
            blips,
            crashes,
            interval_s,
            maintenance,
        }
    }

    fn check(
        &self,
        tick: u64,
        at: DateTime<Utc>,
        state: &mut CheckState,
        rng: &mut Rng,
    ) -> CheckRecord {
        while state.span < self.spans.len() && self.spans[state.span].to_tick <= tick {
            state.span += 1;
        }
        while state.blip < self.blips.len() && self.blips[state.blip] < tick {
            state.blip += 1;
        }
        let span = self
            .spans
            .get(state.span)
            .filter(|s| s.from_tick <= tick)
            .map(|s| (s.kind, tick - s.from_tick));
        let blip = self.blips.get(state.blip) == Some(&tick);
        let record =
            |outcome, http_status, latency_ms: Option<f64>, error: Option<&str>, breaker| {
                CheckRecord {
                    checked_at: at,
                    service: self.name.clone(),
                    outcome,
                    http_status,
                    latency: latency_ms.map(|ms| Duration::from_micros((ms * 1000.0) as u64)),
                    error: error.map(str::to_owned),
                    breaker_state: breaker,
                    source: CheckSource::Monitor,
                }
            };
        match span {
            Some((SpanKind::Planned, _)) => {
                state.failures += 1;
                if state.failures > BREAKER_AFTER {
                    return record(
                        Outcome::CircuitOpen,
                        None,
                        None,
                        Some("circuit open"),
                        BreakerState::Open,
                    );
                }
                record(
                    Outcome::Down,
                    None,
                    Some(0.2 + rng.unit() * 0.3),
                    Some("connection refused"),
                    BreakerState::Closed,
                )
            }
            Some((SpanKind::Outage, into)) => {
                state.failures += 1;
                let timeouts_from = 3 * BREAKER_AFTER;
                if state.failures > BREAKER_AFTER && self.profile == Profile::Outage {
                    // The breaker is open; a trial every 30 s or so goes through (half-open) and fails.
                    let every = (30 / self.interval_s).max(2);
                    if into % every == 0 {
                        return record(
                            Outcome::Timeout,
                            None,
                            Some(TIMEOUT_MS as f64),
                            Some("no answer within 5000 ms"),
                            BreakerState::HalfOpen,
                        );
                    }
                    return record(
                        Outcome::CircuitOpen,
                        None,
                        None,
                        Some("circuit open"),
                        BreakerState::Open,
                    );
                }
                if into >= timeouts_from {
                    record(
                        Outcome::Timeout,
                        None,
                        Some(TIMEOUT_MS as f64),
                        Some("no answer within 5000 ms"),
                        BreakerState::Closed,
                    )
                } else {
                    record(
                        Outcome::Down,
                        Some(503),
                        Some(2.0 + rng.unit() * 6.0),
                        Some("expected status 2xx, got 503"),
                        BreakerState::Closed,
                    )
                }
            }
            _ if blip => {
                state.failures += 1;
                record(
                    Outcome::Down,
                    Some(502),
                    Some(1.0 + rng.unit() * 4.0),
                    Some("expected status 2xx, got 502"),
                    BreakerState::Closed,
                )
            }
            Some((SpanKind::Slow(ms), _)) => {
                state.failures = 0;
                let latency = ms as f64 * (0.8 + rng.unit() * 0.4);
                record(
                    Outcome::Up,
                    Some(200),
                    Some(latency),
                    None,
                    BreakerState::Closed,
                )
            }
            None => {
                state.failures = 0;
                // Mostly near the base, with a tail: 1 check in 100 takes 2-4 times as long.
                let mut latency = self.base_latency_ms * (0.7 + rng.unit() * 0.6);
                if rng.unit() < 0.01 {
                    latency *= 2.0 + rng.unit() * 2.0;
                }
                record(
                    Outcome::Up,
                    Some(200),
                    Some(latency),
                    None,
                    BreakerState::Closed,
                )
            }
        }
    }

    /// The child runs, heal events and alerts that go with the spans.
    async fn write_events(&self, store: &Store, spec: &HistorySpec) -> Result<(), StoreError> {
        let at = |tick: u64| {
            spec.start()
                + TimeDelta::milliseconds(self.offset_ms)
                + TimeDelta::seconds((tick * self.interval_s) as i64)
        };
        let name_hash = self.name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
        let mut rng = Rng::new(spec.seed ^ name_hash);
        if let Some((from, until)) = self.maintenance {
            store
                .insert_maintenance(
                    Some(&self.name),
                    from,
                    until,
                    "planned upgrade",
                    from - TimeDelta::days(1),
                )
                .await?;
        }
        let supervised = self.profile != Profile::Slow;
        let mut run = if supervised {
            let pid = rng.range(2_000, 60_000) as u32;
            Some(
                store
                    .child_started(&self.name, pid, None, spec.start(), ChildStartCause::Start)
                    .await?,
            )
        } else {
            None
        };
        for &(tick, code, signal) in &self.crashes {
            run = Some(
                restart(
                    store,
                    &self.name,
                    run,
                    at(tick),
                    (code, signal),
                    ChildStartCause::Exited,
                    &mut rng,
                )
                .await?,
            );
        }
        for span in &self.spans {
            let (from, until) = (at(span.from_tick), at(span.to_tick));
            match span.kind {
                SpanKind::Outage if self.profile == Profile::Outage => {
                    let (alert, _) = store
                        .open_alert(
                            "target_down",
                            &self.name,
                            AlertLevel::Critical,
                            &format!("{} is down: expected status 2xx, got 503", self.name),
                            from + TimeDelta::minutes(1),
                            AlertEventKind::Fired,
                        )
                        .await?;
                    // A first heal that does not help, then one that does, as the outage ends.
                    let first = from + TimeDelta::minutes(2);
                    let last = until - TimeDelta::seconds(20);
                    for (started_at, finished_at, healed) in [
                        (first, first + TimeDelta::seconds(30), false),
                        (last, until, true),
                    ] {
                        run = Some(
                            restart(
                                store,
                                &self.name,
                                run,
                                started_at,
                                (None, Some(15)),
                                ChildStartCause::Heal,
                                &mut rng,
                            )
                            .await?,
                        );
                        let (outcome, verify_latency, error) = if healed {
                            let verify = Duration::from_millis(rng.range(800, 4_000));
                            (HealOutcome::Healed, Some(verify), None)
                        } else {
                            let error = "still down at the verify deadline (30 s)".to_owned();
                            (HealOutcome::Failed, None, Some(error))
                        };
                        store
                            .insert_heal(&HealRecord {
                                target: self.name.clone(),
                                trigger: HealTrigger::Automatic,
                                action: HealAction::RestartChild,
                                started_at,
                                finished_at,
                                outcome,
                                verify_latency,
                                error,
                            })
                            .await?;
                    }
                    if until < spec.end {
                        store
                            .alert_event(
                                alert,
                                AlertEventKind::Resolved,
                                AlertLevel::Critical,
                                &format!("{} is up again", self.name),
                                until,
                                true,
                            )
                            .await?;
                    }
                }
                SpanKind::Slow(ms) if self.profile == Profile::Slow && ms > 500 => {
                    let (alert, _) = store
                        .open_alert(
                            "slow",
                            &self.name,
                            AlertLevel::Warning,
                            &format!("{} answers in about {ms} ms", self.name),
                            from + TimeDelta::minutes(5),
                            AlertEventKind::Fired,
                        )
                        .await?;
                    if until < spec.end {
                        store
                            .alert_event(
                                alert,
                                AlertEventKind::Resolved,
                                AlertLevel::Warning,
                                &format!("{} is fast again", self.name),
                                until,
                                true,
                            )
                            .await?;
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// The baseline's maintenance window: 02:00-02:45 UTC, on the first such hour at or after half a day before
/// the middle of the history (inside it from 2 days of history on; a 1-day history may end within it).
fn maintenance_window(spec: &HistorySpec) -> (DateTime<Utc>, DateTime<Utc>) {
    let earliest = spec.start() + TimeDelta::hours(12 * i64::from(spec.days) - 12);
    let midnight = earliest
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .map_or(earliest, |t| t.and_utc());
    let mut from = midnight + TimeDelta::hours(2);
    if from < earliest {
        from += TimeDelta::days(1);
    }
    (from, from + TimeDelta::minutes(45))
}

/// Closes the child's current run (it exited at `when` with this code or signal) and starts the next.
async fn restart(
    store: &Store,
    name: &str,
    run: Option<i64>,
    when: DateTime<Utc>,
    (code, signal): (Option<i32>, Option<i32>),
    cause: ChildStartCause,
    rng: &mut Rng,
) -> Result<i64, StoreError> {
    if let Some(id) = run {
        store.child_exited(id, when, code, signal).await?;
    }
    let pid = rng.range(2_000, 60_000) as u32;
    store
        .child_started(name, pid, None, when + TimeDelta::seconds(2), cause)
        .await
}
