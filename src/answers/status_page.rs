//! What the status page (`GET /`) shows, gathered: the monitor's latest results (nothing is checked for
//! the page), the uptime bars from the rollups, each target's SLO (the numbers `/slo` gives, from the SLO
//! refresher's last pass, its p95 included), restarts this week, the alerts firing and, when workflows are
//! configured, the workflow runs in progress (running or waiting). The
//! database reads are kept (`PageReads`) and made again once `READS_MAX_AGE` old, never per request: the
//! bars then only for the hours since the last read. Their whole reads are made in the background by the
//! `PageReader` worker (at start, then hourly), so no request waits for one; before the first is done the
//! page shows the current states and says the history is loading. The page's markup is the service's.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use futures_util::future::BoxFuture;
use tokio_util::sync::CancellationToken;

use crate::answers::workflows::RunView;
use crate::clock::Clock;
use crate::config::Config;
use crate::probe::Monitor;
use crate::records::{Outcome, RunState, WaitReason};
use crate::slo::{SloBoard, TargetSlo};
use crate::store::alerts::StoredAlert;
use crate::store::workflows::{RunFilter, RunId, RunStore};
use crate::store::{Store, StoreError};
use crate::worker::Worker;

/// Days of uptime bars per target.
pub const UPTIME_DAYS: i64 = 90;
/// Hourly bars shown instead of daily ones while there is less than `HOURLY_UNTIL_DAYS` of history.
pub const UPTIME_HOURS: i64 = 48;
/// History (from the first day with checks) under which the bars are hourly.
pub const HOURLY_UNTIL_DAYS: i64 = 7;
/// The page's database reads are made again once this old (on hale's clock), or after an SLO pass.
pub const READS_MAX_AGE: chrono::Duration = chrono::Duration::seconds(10);
/// The uptime bars are read whole again this often (in between, only the hours since the last read).
pub const BARS_REREAD_WHOLE: chrono::Duration = chrono::Duration::hours(1);

/// The page's note while the first whole read since start runs (`PageData::Loading`).
pub const HISTORY_LOADING_NOTE: &str = "The uptime history, restarts and alerts are still being read from the \
    database (hale has just started): this page shows each target's current state and refreshes in a few \
    seconds.";
/// The page's note before the SLO refresher's first pass.
pub const SLO_LOADING_NOTE: &str =
    "The SLOs are still being computed (hale has just started): they show once the first pass is done.";
/// How often the page refreshes itself while its history is loading (`HISTORY_LOADING_NOTE`), in seconds;
/// 30 s once loaded.
pub const LOADING_REFRESH_S: u32 = 5;

/// Fleets of up to this many targets get the whole page: every target's section with its bars. Larger
/// ones get a summary, the targets that need attention and the targets one page of `PAGE_SIZE` at a time.
pub const FULL_PAGE_UP_TO: usize = 50;
/// Targets per page, above `FULL_PAGE_UP_TO`.
pub const PAGE_SIZE: usize = 50;
/// Targets listed under "needs attention" (then "and N more").
pub const ATTENTION_SHOWN: usize = 25;
/// Firing alerts listed on a paged page (then "and N more").
pub const ALERTS_SHOWN: usize = 25;
/// Workflow runs in progress listed, newest first (then "and more").
pub const RUNS_SHOWN: usize = 20;

/// How many pages the status page has for `targets` targets: 1 up to `FULL_PAGE_UP_TO`, then one per
/// `PAGE_SIZE`.
pub fn page_count(targets: usize) -> u32 {
    if targets <= FULL_PAGE_UP_TO {
        1
    } else {
        u32::try_from(targets.div_ceil(PAGE_SIZE)).unwrap_or(u32::MAX)
    }
}

/// The status page's query.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Which page of targets, 1 to the number of pages (default 1). Fleets of more than 50 targets are
    /// shown 50 at a time; smaller ones have only page 1.
    #[param(value_type = Option<u32>, minimum = 1, default = 1)]
    pub page: Option<String>,
}

/// The page number `params` ask for, among `page_count(targets)`.
pub fn page_number(
    params: &PageParams,
    targets: usize,
) -> Result<u32, crate::answers::AnswerError> {
    crate::answers::params::page("page", params.page.as_deref(), page_count(targets))
        .map_err(crate::answers::AnswerError::BadInput)
}

/// The status page's database reads (uptime bars, restarts, alerts), kept between requests.
///
/// A state machine in three states: *loading* (nothing read yet: the first whole read, started with hale,
/// is running), *ready* (the kept reads, brought up to date by a request once `READS_MAX_AGE` old, from the
/// hour before the last read on: a few rows per target) and *re-reading* (ready, while a whole read runs in
/// the background: once `BARS_REREAD_WHOLE` old, or after the clock stepped back). Whole reads (90 days of
/// daily totals for every target: seconds at 10,000 targets) are made only by `read_whole`, which the
/// `PageReader` worker calls; a request never waits for one, and gets the kept reads meanwhile (or
/// `PageData::Loading` before the first).
#[derive(Debug)]
pub struct PageReads {
    cached: tokio::sync::Mutex<Option<CachedReads>>,
    /// True while a whole read is asked for or running: requests that find one due ask only once.
    whole_wanted: AtomicBool,
    /// Wakes the `PageReader` when a request asks for a whole read.
    ask: tokio::sync::Notify,
    /// Why the last whole read failed, while none has succeeded since.
    failed: std::sync::Mutex<Option<String>>,
}

impl Default for PageReads {
    fn default() -> Self {
        Self {
            cached: tokio::sync::Mutex::new(None),
            // The first whole read is wanted from the start: the `PageReader` makes it when hale starts.
            whole_wanted: AtomicBool::new(true),
            ask: tokio::sync::Notify::new(),
            failed: std::sync::Mutex::new(None),
        }
    }
}

#[derive(Debug)]
struct CachedReads {
    read_at: DateTime<Utc>,
    /// When the bars were last read whole (`BARS_REREAD_WHOLE`).
    bars_read_whole_at: DateTime<Utc>,
    stored: Arc<Stored>,
}

/// What a request gets of the page's reads.
#[derive(Debug, Clone)]
pub enum PageData {
    /// No whole read has finished since hale started (the last one failed with the error, if any).
    Loading { failed: Option<String> },
    /// The reads, made at `read_at`.
    Read {
        read_at: DateTime<Utc>,
        stored: Arc<Stored>,
    },
}

impl PageReads {
    pub fn new() -> Self {
        Self::default()
    }

    /// The kept reads for a request at `now`: as kept while younger than `READS_MAX_AGE`, else brought up to
    /// date (the rollups from the hour before the last read on, the restarts and alerts whole). Never a whole
    /// read: when one is due (`BARS_REREAD_WHOLE`, a clock stepped back, nothing read yet) it is asked of
    /// the `PageReader` and this request gets what is kept. One caller brings the reads up to date at a
    /// time; the others wait for its answer.
    pub async fn get(&self, store: &Store, now: DateTime<Utc>) -> Result<PageData, StoreError> {
        let mut cached = self.cached.lock().await;
        let Some(c) = cached.as_mut() else {
            self.ask_whole();
            let failed = locked(&self.failed).clone();
            return Ok(PageData::Loading { failed });
        };
        let age = now - c.read_at;
        let stepped_back = age < TimeDelta::zero();
        if stepped_back || now - c.bars_read_whole_at >= BARS_REREAD_WHOLE {
            self.ask_whole();
        }
        if age < READS_MAX_AGE {
            // Fresh, or read after `now` (the clock stepped back): the whole read asked for replaces it.
            return Ok(PageData::Read {
                read_at: c.read_at,
                stored: c.stored.clone(),
            });
        }
        match stored_since(store, now, c.read_at, take_stored(&mut c.stored)).await {
            Ok(updated) => {
                c.stored = Arc::new(updated);
                c.read_at = now;
            }
            Err(e) => {
                // What was kept went into the failed read: loading again, until a whole read succeeds.
                *cached = None;
                *locked(&self.failed) = Some(e.to_string());
                self.ask_whole();
                return Err(e);
            }
        }
        Ok(PageData::Read {
            read_at: now,
            stored: c.stored.clone(),
        })
    }

    /// Asks the `PageReader` for a whole read, unless one is asked for or running already.
    fn ask_whole(&self) {
        if !self.whole_wanted.swap(true, Ordering::AcqRel) {
            self.ask.notify_one();
        }
    }

    /// Whether a whole read is asked for or running.
    pub fn whole_wanted(&self) -> bool {
        self.whole_wanted.load(Ordering::Acquire)
    }

    /// Reads everything whole as of the clock's `now`, without holding the kept reads (requests keep getting
    /// them meanwhile), then brings the result up to date with what was written during the read and keeps
    /// it. The caller marks the whole read done (`whole_read_done`).
    pub async fn read_whole(&self, store: &Store, clock: &dyn Clock) -> Result<(), StoreError> {
        let started = clock.now();
        let whole = stored(store, started).await;
        let whole = match whole {
            Ok(whole) => whole,
            Err(e) => {
                *locked(&self.failed) = Some(e.to_string());
                return Err(e);
            }
        };
        let mut cached = self.cached.lock().await;
        let now = clock.now();
        let (read_at, stored) = if now - started >= READS_MAX_AGE {
            (now, stored_since(store, now, started, whole).await?)
        } else {
            (started, whole)
        };
        *cached = Some(CachedReads {
            read_at,
            bars_read_whole_at: started,
            stored: Arc::new(stored),
        });
        *locked(&self.failed) = None;
        Ok(())
    }

    /// The whole read asked for is done (or given up): a request that finds the next one due asks again.
    pub fn whole_read_done(&self) {
        self.whole_wanted.store(false, Ordering::Release);
    }

    /// Waits until a request asks for a whole read.
    pub async fn whole_asked(&self) {
        self.ask.notified().await;
    }
}

fn locked<T>(slot: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    slot.lock().unwrap_or_else(|p| p.into_inner())
}

/// The kept reads to update, without a copy unless a request still holds them.
fn take_stored(kept: &mut Arc<Stored>) -> Stored {
    let kept = std::mem::take(kept);
    Arc::try_unwrap(kept).unwrap_or_else(|shared| (*shared).clone())
}

/// Makes the status page's whole reads in the background: the first when hale starts (so the first request
/// does not wait seconds for 90 days of rollups), then each one a request asks for (`PageReads::get`).
#[derive(Debug)]
pub struct PageReader {
    reads: Arc<PageReads>,
    store: Store,
    clock: Arc<dyn Clock>,
}

impl PageReader {
    pub fn new(reads: Arc<PageReads>, store: Store, clock: Arc<dyn Clock>) -> Self {
        Self {
            reads,
            store,
            clock,
        }
    }

    /// One whole read, logged; after a failure, waits `READS_MAX_AGE` before a request may ask again.
    async fn read_once(&self) {
        let started = std::time::Instant::now();
        match self
            .reads
            .read_whole(&self.store, self.clock.as_ref())
            .await
        {
            Ok(()) => {
                let read_ms = started.elapsed().as_millis() as u64;
                // The rows read (tens of MB at 10,000 targets) are freed by now, but glibc keeps them in the
                // arena of the thread that read them; given back, RSS stays at what the page keeps.
                let released = crate::process::release_free_memory();
                tracing::info!(elapsed_ms = read_ms, released, "status page history read");
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the status page's history; the page shows what it kept");
                self.clock
                    .sleep(READS_MAX_AGE.to_std().unwrap_or_default())
                    .await;
            }
        }
        self.reads.whole_read_done();
    }
}

impl Worker for PageReader {
    fn name(&self) -> &'static str {
        "status-page-reads"
    }

    fn run(self: Arc<Self>, cancel: CancellationToken) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = self.read_once() => {}
                }
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = self.reads.whole_asked() => {}
                }
            }
        })
    }
}

/// One target's line on the page.
#[derive(Debug, Clone)]
pub struct TargetLine {
    pub name: String,
    /// The latest outcome; none when not checked since hale started.
    pub outcome: Option<Outcome>,
    pub checked_at: Option<DateTime<Utc>>,
    pub latency_ms: Option<f64>,
    pub error: Option<String>,
    /// Oldest first, one per day of the last `UPTIME_DAYS`: availability in percent, none without checks.
    pub days: Vec<(NaiveDate, Option<f64>)>,
    /// Oldest first, one per hour of the last `UPTIME_HOURS` (the current one last), labelled.
    pub hours: Vec<(String, Option<f64>)>,
    pub uptime_percent: Option<f64>,
    /// The SLO over the window (`/slo`'s numbers); none when it could not be computed.
    pub slo: Option<TargetSlo>,
    pub p95_ms: Option<f64>,
    pub restarts_week: u32,
}

/// A workflow run in progress, on the page.
#[derive(Debug, Clone)]
pub struct RunLine {
    pub id: RunId,
    pub workflow: String,
    /// Running or waiting.
    pub state: RunState,
    /// Why a waiting run waits: backoff, sleep or approval.
    pub wait_reason: Option<WaitReason>,
    /// When a waiting run goes on (for an approval: when it expires).
    pub wake_at: Option<DateTime<Utc>>,
    /// The step the run is at.
    pub step: Option<String>,
    pub started_at: Option<DateTime<Utc>>,
}

/// The workflow runs in progress: the newest `RUNS_SHOWN`.
#[derive(Debug, Clone, Default)]
pub struct RunsInProgress {
    pub runs: Vec<RunLine>,
    /// More runs are in progress than are listed.
    pub more: bool,
}

/// Everything the page shows.
#[derive(Debug, Clone)]
pub struct StatusPage {
    pub generated_at: DateTime<Utc>,
    /// The SLOs count the scheduled checks made before this time (the refresher's last pass); None when
    /// they could not be computed.
    pub slo_as_of: Option<DateTime<Utc>>,
    /// When the uptime bars, restarts and alerts were read from the database; None while the first read
    /// since start runs (or when the database could not be read): the page then shows the current states,
    /// and the SLOs if the refresher has made its first pass.
    pub read_at: Option<DateTime<Utc>>,
    pub score: f64,
    pub up: usize,
    pub targets: Vec<TargetLine>,
    pub alerts: Vec<StoredAlert>,
    pub availability_target_percent: f64,
    pub p95_target_ms: u64,
    pub window_days: u32,
    /// Hourly bars (less than a week of history) instead of daily ones.
    pub hourly: bool,
    /// The workflow runs running or waiting; None when the config has no workflows.
    pub runs: Option<RunsInProgress>,
    /// What could not be read (the database), shown on the page.
    pub notes: Vec<String>,
    /// Where each target's uptime bars come from when a page shows it (`with_bars`).
    pub bars: Bars,
}

/// The kept reads the uptime bars are made from, for the targets a page shows only: at 10,000 targets,
/// 90 days and 48 hours of bars for each would cost more than everything else on the page. None: the
/// lines carry their bars already.
#[derive(Debug, Clone, Default)]
pub struct Bars(Option<Arc<Stored>>);

impl StatusPage {
    /// The line with its uptime bars (90 days, 48 hours) and 90-day uptime, as of `generated_at`.
    pub fn with_bars<'a>(&self, line: &'a TargetLine) -> std::borrow::Cow<'a, TargetLine> {
        let Some(stored) = &self.bars.0 else {
            return std::borrow::Cow::Borrowed(line);
        };
        let now = self.generated_at;
        let first_day = (now - TimeDelta::days(UPTIME_DAYS - 1)).date_naive();
        let kept = stored.counts.get(&line.name);
        let per_day = kept.map(|c| &c.daily);
        let mut total = (0u64, 0u64);
        let days = (0..UPTIME_DAYS)
            .map(|i| {
                let day = first_day + TimeDelta::days(i);
                let counts = per_day.and_then(|d| d.get(&day));
                if let Some((t, g)) = counts {
                    total.0 += t;
                    total.1 += g;
                }
                (
                    day,
                    counts
                        .filter(|(t, _)| *t > 0)
                        .map(|(t, g)| g as f64 * 100.0 / t as f64),
                )
            })
            .collect();
        let hour_ms = 3_600_000;
        let current_hour = now.timestamp_millis() - now.timestamp_millis().rem_euclid(hour_ms);
        let per_hour = kept.map(|c| &c.hourly);
        let hours = (0..UPTIME_HOURS)
            .map(|i| {
                let hour = current_hour - (UPTIME_HOURS - 1 - i) * hour_ms;
                let at = DateTime::<Utc>::from_timestamp_millis(hour).unwrap_or(now);
                let value = per_hour
                    .and_then(|h| h.get(&hour))
                    .filter(|(t, _)| *t > 0)
                    .map(|(t, g)| g.min(t) as f64 * 100.0 / t as f64);
                (at.format("%Y-%m-%d %H:00 UTC").to_string(), value)
            })
            .collect();
        std::borrow::Cow::Owned(TargetLine {
            days,
            hours,
            uptime_percent: (total.0 > 0).then(|| total.1 as f64 * 100.0 / total.0 as f64),
            ..line.clone()
        })
    }
}

/// Gathers what the page shows: the monitor's latest results, the SLO refresher's last pass (`board`) and
/// the database reads kept in `reads` (read again when due: one query per kind of data).
pub async fn gather(
    store: &Store,
    config: &Config,
    monitor: &Monitor,
    board: &SloBoard,
    reads: &PageReads,
    now: DateTime<Utc>,
) -> StatusPage {
    let sweep = monitor.latest_all();
    let slo = &config.slo;
    let mut notes = Vec::new();
    // The refresher's last pass only: before its first one the page says so rather than evaluating the
    // window for the request (seconds at thousands of targets).
    let snapshot = board.latest();
    if snapshot.is_some() {
        board.nudge_if_older(now, crate::answers::slo::SNAPSHOT_MAX_AGE);
    } else {
        notes.push(SLO_LOADING_NOTE.to_owned());
    }
    let (read_at, stored) = match reads.get(store, now).await {
        Ok(PageData::Read { read_at, stored }) => (Some(read_at), stored),
        Ok(PageData::Loading { failed }) => {
            notes.push(HISTORY_LOADING_NOTE.to_owned());
            if let Some(e) = failed {
                notes.push(format!("the database cannot be read: {e}"));
            }
            (None, Arc::new(Stored::default()))
        }
        Err(e) => {
            notes.push(format!("the database cannot be read: {e}"));
            (None, Arc::new(Stored::default()))
        }
    };
    // Less than a week since the first day with checks (or none at all): hourly bars say more.
    let hourly = stored
        .first_day()
        .is_none_or(|first| first > (now - TimeDelta::days(HOURLY_UNTIL_DAYS)).date_naive());
    let mut slo_as_of = None;
    let mut slos: HashMap<&str, &TargetSlo> = HashMap::new();
    if let Some(snapshot) = &snapshot {
        slo_as_of = Some(snapshot.as_of);
        slos.extend(snapshot.slos.iter().map(|t| (t.target.as_str(), t)));
    }
    let slos_p95: HashMap<&str, Option<f64>> = slos
        .iter()
        .map(|(name, slo)| (*name, slo.latency.p95_ms))
        .collect();
    let targets = monitor
        .targets()
        .iter()
        .map(|target| {
            let name = target.name().to_owned();
            let latest = target.latest();
            TargetLine {
                // Filled for the targets a page shows (`StatusPage::with_bars`).
                days: Vec::new(),
                hours: Vec::new(),
                uptime_percent: None,
                slo: slos.remove(name.as_str()).cloned(),
                // The SLO's own p95, over the same window: no second read of the window's rollups.
                p95_ms: slos_p95.get(name.as_str()).copied().flatten(),
                outcome: latest.as_ref().map(|l| l.outcome),
                checked_at: latest.as_ref().map(|l| l.checked_at),
                latency_ms: latest
                    .as_ref()
                    .and_then(|l| l.latency)
                    .map(|d| d.as_secs_f64() * 1000.0),
                error: latest.and_then(|l| l.error),
                restarts_week: stored.restarts.get(&name).copied().unwrap_or(0),
                name,
            }
        })
        .collect();
    let runs = if config.workflows.definitions().iter().next().is_some() {
        Some(runs_in_progress(store).await.unwrap_or_else(|e| {
            notes.push(format!("the workflow runs cannot be read: {e}"));
            RunsInProgress::default()
        }))
    } else {
        None
    };
    StatusPage {
        generated_at: now,
        slo_as_of,
        read_at,
        score: sweep.score,
        up: sweep.counts.up,
        targets,
        alerts: stored.alerts.clone(),
        availability_target_percent: slo.availability_target_percent,
        p95_target_ms: slo.p95_latency_target_ms,
        window_days: slo.window_days,
        hourly,
        runs,
        notes,
        bars: Bars(Some(stored)),
    }
}

/// The newest `RUNS_SHOWN` runs running or waiting: one indexed read, made with the rest of what the page
/// gathers (at most once per `PAGE_MAX_AGE`, never per request).
async fn runs_in_progress(
    store: &Store,
) -> Result<RunsInProgress, crate::store::workflows::RunStoreError> {
    let shown = u32::try_from(RUNS_SHOWN).unwrap_or(u32::MAX);
    let runs = store
        .list_runs(&RunFilter {
            workflow: None,
            states: vec![RunState::Running, RunState::Waiting],
            before: None,
            limit: shown.saturating_add(1),
        })
        .await?;
    let more = runs.len() > RUNS_SHOWN;
    let runs = runs
        .iter()
        .take(RUNS_SHOWN)
        .map(|run| {
            let view = RunView::of(run);
            // A sleeping run is stored at the step after its sleep: the page shows the sleep.
            let step = match (view.wait_reason, view.step_index.checked_sub(1)) {
                (Some(WaitReason::Sleep), Some(sleep)) => run
                    .definition
                    .get("steps")
                    .and_then(|s| s.get(sleep as usize))
                    .and_then(|s| s.get("id"))
                    .and_then(serde_json::Value::as_str)
                    .map(str::to_owned),
                _ => view.step,
            };
            RunLine {
                id: view.id,
                workflow: view.workflow,
                state: view.state,
                wait_reason: view.wait_reason,
                wake_at: view.wake_at,
                step,
                started_at: view.started_at,
            }
        })
        .collect();
    Ok(RunsInProgress { runs, more })
}

/// (checks, good) by day or hour: 8 bytes a day or hour, kept densely from a target's first one to its
/// last (a day or hour without checks is (0, 0), which reads as none). The page's reads are kept for every
/// target from start, and both ends are bounded by the bars shown (`UPTIME_DAYS` days, `UPTIME_HOURS` hours
/// and the one ahead): at most 91 days and 50 hours, 1.1 KB per target. A key that has no place in the
/// dense run (an hour not on the hour, which the rollups never write) is kept aside, sparsely.
#[derive(Debug, Clone)]
struct Counts<K> {
    /// The index (`Slot::index`) of `counts[0]`.
    first: i64,
    counts: Vec<[u32; 2]>,
    /// Boxed: 8 bytes where a bare vector takes 24, for what is almost always nothing.
    #[allow(clippy::box_collection)]
    aside: Option<Box<Vec<(K, u32, u32)>>>,
}

/// A day or an hour, numbered so that the next one is the next number.
trait Slot: Copy + Ord {
    /// Its number; None when it has none (an hour not on the hour).
    fn index(self) -> Option<i64>;
    fn at(index: i64) -> Option<Self>;
}

impl Slot for NaiveDate {
    fn index(self) -> Option<i64> {
        Some(i64::from(chrono::Datelike::num_days_from_ce(&self)))
    }

    fn at(index: i64) -> Option<Self> {
        NaiveDate::from_num_days_from_ce_opt(i32::try_from(index).ok()?)
    }
}

const HOUR_MS: i64 = 3_600_000;

/// An hour as the rollups key it: its start in epoch ms.
impl Slot for i64 {
    fn index(self) -> Option<i64> {
        (self.rem_euclid(HOUR_MS) == 0).then(|| self.div_euclid(HOUR_MS))
    }

    fn at(index: i64) -> Option<Self> {
        index.checked_mul(HOUR_MS)
    }
}

impl<K> Default for Counts<K> {
    fn default() -> Self {
        Self {
            first: 0,
            counts: Vec::new(),
            aside: None,
        }
    }
}

/// Equal when they hold the same non-zero counts, however laid out.
impl<K: Slot> PartialEq for Counts<K> {
    fn eq(&self, other: &Self) -> bool {
        let sorted = |c: &Self| {
            let mut all: Vec<(K, u64, u64)> = c.iter().collect();
            all.sort_unstable();
            all
        };
        sorted(self) == sorted(other)
    }
}

impl<K: Slot> Eq for Counts<K> {}

impl<K: Slot> Counts<K> {
    fn get(&self, key: &K) -> Option<(u64, u64)> {
        let found = match key.index() {
            Some(index) => {
                let at = usize::try_from(index.checked_sub(self.first)?).ok()?;
                self.counts.get(at).map(|&[t, g]| (t, g))
            }
            None => self
                .aside
                .as_deref()?
                .iter()
                .find(|(k, _, _)| k == key)
                .map(|&(_, t, g)| (t, g)),
        };
        found.map(|(t, g)| (u64::from(t), u64::from(g)))
    }

    /// Sets the counts of `key`, returning the ones it had.
    fn insert(&mut self, key: K, (total, good): (u64, u64)) -> Option<(u64, u64)> {
        let counts = [saturating_u32(total), saturating_u32(good)];
        let old = self.get(&key);
        let Some(index) = key.index() else {
            let aside = self.aside.get_or_insert_with(Box::default);
            aside.retain(|(k, _, _)| *k != key);
            aside.push((key, counts[0], counts[1]));
            return old;
        };
        if counts == [0, 0] && old.is_none() {
            // Nothing to keep: none reads as (0, 0).
            return old;
        }
        if self.counts.is_empty() {
            self.first = index;
        }
        if index < self.first {
            // Before the first: the run grows at its front, to exactly what it holds.
            let gap = usize::try_from(self.first - index).unwrap_or(usize::MAX);
            let mut grown = Vec::with_capacity(gap.saturating_add(self.counts.len()));
            grown.resize(gap, [0, 0]);
            grown.extend_from_slice(&self.counts);
            self.counts = grown;
            self.first = index;
        }
        let at = usize::try_from(index - self.first).unwrap_or(usize::MAX);
        if at >= self.counts.len() {
            // Kept for hours to days: no room left over from growing.
            self.counts.reserve_exact(at + 1 - self.counts.len());
            self.counts.resize(at + 1, [0, 0]);
        }
        self.counts[at] = counts;
        old
    }

    /// Keeps the keys from `first` on (none before it).
    fn keep_from(&mut self, first: K) {
        let keep = self
            .counts
            .iter()
            .enumerate()
            .position(|(i, _)| {
                let index = self.first + i64::try_from(i).unwrap_or(i64::MAX);
                K::at(index).is_none_or(|k| k >= first)
            })
            .unwrap_or(self.counts.len());
        self.counts.drain(..keep);
        self.first += i64::try_from(keep).unwrap_or(0);
        if let Some(aside) = self.aside.as_deref_mut() {
            aside.retain(|(k, _, _)| *k >= first);
        }
        if self.aside.as_deref().is_some_and(Vec::is_empty) {
            self.aside = None;
        }
        self.shrink();
    }

    /// Drops the (0, 0) ends and the room left over.
    fn shrink(&mut self) {
        let zeros = self.counts.iter().position(|c| *c != [0, 0]);
        let leading = zeros.unwrap_or(self.counts.len());
        self.counts.drain(..leading);
        self.first += i64::try_from(leading).unwrap_or(0);
        let last = self.counts.iter().rposition(|c| *c != [0, 0]);
        self.counts.truncate(last.map_or(0, |at| at + 1));
        self.counts.shrink_to_fit();
    }

    /// The non-zero counts.
    fn iter(&self) -> impl Iterator<Item = (K, u64, u64)> + '_ {
        let first = self.first;
        self.counts
            .iter()
            .enumerate()
            .filter(|(_, c)| **c != [0, 0])
            .filter_map(move |(i, &[t, g])| {
                let key = K::at(first + i64::try_from(i).ok()?)?;
                Some((key, u64::from(t), u64::from(g)))
            })
            .chain(
                self.aside
                    .as_deref()
                    .into_iter()
                    .flatten()
                    .map(|&(k, t, g)| (k, u64::from(t), u64::from(g))),
            )
    }
}

fn saturating_u32(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[derive(Debug, Default, Clone)]
pub struct Stored {
    /// Per target, its days and hours (one entry, one name, for both).
    counts: HashMap<String, TargetCounts>,
    restarts: HashMap<String, u32>,
    alerts: Vec<StoredAlert>,
}

/// One target's kept counts.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct TargetCounts {
    /// Per day: (checks, good).
    daily: Counts<NaiveDate>,
    /// Per hour (epoch ms) of the last `UPTIME_HOURS`: (checks, good as stored; the bar shows at most all
    /// of them good).
    hourly: Counts<i64>,
}

impl Stored {
    /// The first day with checks of any target.
    fn first_day(&self) -> Option<NaiveDate> {
        self.counts
            .values()
            .flat_map(|c| c.daily.iter().filter(|(_, t, _)| *t > 0).map(|(d, _, _)| d))
            .min()
    }
}

async fn stored(store: &Store, now: DateTime<Utc>) -> Result<Stored, StoreError> {
    let since = (now - TimeDelta::days(UPTIME_DAYS - 1))
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .map_or(now, |t| t.and_utc());
    let mut counts: HashMap<String, TargetCounts> = HashMap::new();
    for d in store.daily_totals(since, now + TimeDelta::hours(1)).await? {
        counts
            .entry(d.service)
            .or_default()
            .daily
            .insert(d.day, (d.total, d.good));
    }
    for row in store
        .hourly_totals(
            now - TimeDelta::hours(UPTIME_HOURS),
            now + TimeDelta::hours(1),
        )
        .await?
    {
        counts
            .entry(row.service)
            .or_default()
            .hourly
            .insert(row.hour_ms, (row.total, row.good));
    }
    for c in counts.values_mut() {
        c.daily.shrink();
        c.hourly.shrink();
    }
    Ok(Stored {
        counts,
        restarts: store.restarts_since(now - TimeDelta::days(7)).await?,
        alerts: store.firing_alerts().await?,
    })
}

/// The reads made again after `previous` (read at `read_at`): the rollups of the hours from the one before
/// `read_at` on (the writer may still have added to it) replace theirs in the hourly bars and in their
/// day's totals, bars older than shown are dropped; restarts and alerts are read whole.
async fn stored_since(
    store: &Store,
    now: DateTime<Utc>,
    read_at: DateTime<Utc>,
    previous: Stored,
) -> Result<Stored, StoreError> {
    let from_ms = read_at.timestamp_millis().div_euclid(HOUR_MS) * HOUR_MS - HOUR_MS;
    let from = DateTime::<Utc>::from_timestamp_millis(from_ms).unwrap_or(read_at);
    // As a whole read keeps them: the hours from `now - UPTIME_HOURS` on, the days from `UPTIME_DAYS - 1`
    // days back. What falls before is not kept (after a step of the clock, a run from the last read on
    // would be long), only read for what it had.
    let first_hour = (now - TimeDelta::hours(UPTIME_HOURS)).timestamp_millis();
    let first_day = (now - TimeDelta::days(UPTIME_DAYS - 1)).date_naive();
    let Stored { mut counts, .. } = previous;
    for row in store.hourly_totals(from, now + TimeDelta::hours(1)).await? {
        let (total, good) = (row.total, row.good);
        let target = counts.entry(row.service).or_default();
        let hours = &mut target.hourly;
        let (old_total, old_good) = if row.hour_ms >= first_hour {
            hours.insert(row.hour_ms, (total, good))
        } else {
            hours.get(&row.hour_ms)
        }
        .unwrap_or((0, 0));
        let Some(hour) = DateTime::<Utc>::from_timestamp_millis(row.hour_ms) else {
            continue;
        };
        let days = &mut target.daily;
        let day = hour.date_naive();
        if day < first_day {
            continue;
        }
        let (day_total, day_good) = days.get(&day).unwrap_or((0, 0));
        days.insert(
            day,
            (
                (day_total + total).saturating_sub(old_total),
                (day_good + good).saturating_sub(old_good),
            ),
        );
    }
    for c in counts.values_mut() {
        c.hourly.keep_from(first_hour);
        c.daily.keep_from(first_day);
    }
    Ok(Stored {
        counts,
        restarts: store.restarts_since(now - TimeDelta::days(7)).await?,
        alerts: store.firing_alerts().await?,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use chrono::TimeZone;

    use super::*;
    use crate::breaker::BreakerState;
    use crate::clock::ManualClock;
    use crate::kind::ServiceKind;
    use crate::metrics::{ServiceMetrics, WriterMetrics};
    use crate::records::{CheckRecord, CheckSource};
    use crate::store::writer::{self, WriterSettings};

    /// Writes `checks` (target, time, up) through the production writer, and waits until they are stored.
    async fn write(store: &Store, checks: &[(&str, DateTime<Utc>, bool)]) {
        let metrics = ServiceMetrics::new(ServiceKind::HealthProxy);
        let (writer, handle) = writer::spawn(
            store.clone(),
            WriterSettings {
                flush_interval: Duration::from_millis(20),
                batch_size: 5_000,
                settle_interval: Duration::ZERO,
            },
            WriterMetrics::register(metrics.registry()),
        );
        for (target, at, up) in checks {
            writer
                .submit(CheckRecord {
                    checked_at: *at,
                    service: Arc::from(*target),
                    outcome: if *up { Outcome::Up } else { Outcome::Down },
                    http_status: None,
                    latency: Some(Duration::from_millis(5)),
                    error: None,
                    breaker_state: BreakerState::Closed,
                    source: CheckSource::Monitor,
                })
                .await
                .unwrap();
        }
        handle.shutdown().await;
    }

    #[tokio::test]
    async fn bars_read_since_the_last_read_equal_a_whole_read() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("hale.db")).await.unwrap();
        let now = Utc.with_ymd_and_hms(2026, 12, 1, 12, 30, 0).unwrap();
        // Three days of two targets every 20 minutes, one check of b in four failed.
        let history: Vec<(&str, DateTime<Utc>, bool)> = (0..216)
            .flat_map(|i| {
                let at = now - TimeDelta::minutes(20 * i + 1);
                [("a", at, true), ("b", at, i % 4 != 0)]
            })
            .collect();
        write(&store, &history).await;
        let reads = PageReads::new();
        reads
            .read_whole(&store, &ManualClock::new(now))
            .await
            .unwrap();
        let (_, first) = read(reads.get(&store, now).await.unwrap());
        assert_eq!(first.counts, stored(&store, now).await.unwrap().counts);

        // Within READS_MAX_AGE the kept reads are answered, whatever was written since.
        write(&store, &[("a", now + TimeDelta::minutes(1), false)]).await;
        let (read_at, kept) = read(
            reads
                .get(&store, now + TimeDelta::seconds(5))
                .await
                .unwrap(),
        );
        assert_eq!((read_at, &kept.counts), (now, &first.counts));

        // Later: more checks in the hour of the last read (some before it) and the next, a new target, and
        // a new day.
        write(
            &store,
            &[
                ("b", now - TimeDelta::minutes(10), false),
                ("b", now + TimeDelta::minutes(40), true),
                ("c", now + TimeDelta::minutes(45), true),
            ],
        )
        .await;
        let later = now + TimeDelta::minutes(50);
        let (read_at, since) = read(reads.get(&store, later).await.unwrap());
        let whole = stored(&store, later).await.unwrap();
        assert_eq!(read_at, later);
        assert_eq!(since.counts, whole.counts);
        assert_ne!(since.counts, first.counts, "the new checks are counted");

        // Across midnight, hours and days older than the page shows leave.
        let next_day = Utc.with_ymd_and_hms(2026, 12, 2, 0, 20, 0).unwrap();
        write(&store, &[("a", next_day - TimeDelta::minutes(5), true)]).await;
        let (_, since) = read(reads.get(&store, next_day).await.unwrap());
        let whole = stored(&store, next_day).await.unwrap();
        assert_eq!(since.counts, whole.counts);
    }

    /// The dense counts give back what was put in, at both ends of the days and hours the page keeps,
    /// whatever order the keys come in, with counts past u16, and take 8 bytes a day or hour.
    #[test]
    fn kept_counts_give_back_every_day_and_hour_at_the_ends_of_the_window() {
        let now = Utc.with_ymd_and_hms(2026, 12, 1, 23, 30, 0).unwrap();
        let first_day = (now - TimeDelta::days(UPTIME_DAYS - 1)).date_naive();
        // The day ahead: `now + 1 h` is past midnight.
        let last_day = (now + TimeDelta::hours(1)).date_naive();
        let past_u16 = u64::from(u16::MAX) + 5;
        let mut days: Counts<NaiveDate> = Counts::default();
        assert_eq!(days.insert(now.date_naive(), (10, 9)), None);
        assert_eq!(days.insert(last_day, (past_u16, past_u16 - 1)), None);
        assert_eq!(days.insert(first_day, (3, 0)), None);
        assert_eq!(days.insert(first_day - TimeDelta::days(1), (7, 7)), None);
        assert_eq!(days.get(&first_day), Some((3, 0)));
        assert_eq!(days.get(&last_day), Some((past_u16, past_u16 - 1)));
        assert_eq!(days.insert(first_day, (4, 1)), Some((3, 0)));
        // A day between without checks reads as none would: (0, 0).
        assert_eq!(
            days.get(&(first_day + TimeDelta::days(1)))
                .unwrap_or((0, 0)),
            (0, 0)
        );
        assert_eq!(days.get(&(last_day + TimeDelta::days(1))), None);
        days.keep_from(first_day);
        assert_eq!(days.get(&(first_day - TimeDelta::days(1))), None);
        let kept: Vec<(NaiveDate, u64, u64)> = days.iter().collect();
        assert_eq!(
            kept,
            [
                (first_day, 4, 1),
                (now.date_naive(), 10, 9),
                (last_day, past_u16, past_u16 - 1)
            ]
        );
        // 91 days from the first kept to the day ahead, 8 bytes each, and no room left over.
        assert_eq!(days.counts.len(), 91);
        assert_eq!(
            days.counts.capacity() * std::mem::size_of::<[u32; 2]>(),
            728
        );
        // Counts past u32 saturate, as they always did.
        days.insert(first_day, (u64::MAX, 1));
        assert_eq!(days.get(&first_day), Some((u64::from(u32::MAX), 1)));

        // Hours: the first kept (`now - UPTIME_HOURS`, rounded up) to the one ahead, inserted newest first.
        let hour = |h: i64| (now.timestamp_millis() / HOUR_MS + h) * HOUR_MS;
        let first_hour = (now - TimeDelta::hours(UPTIME_HOURS)).timestamp_millis();
        let mut hours: Counts<i64> = Counts::default();
        for h in (-UPTIME_HOURS..=1).rev() {
            hours.insert(hour(h), (360 + h.unsigned_abs(), 300));
        }
        // An hour not on the hour (never written by the rollups) is kept aside, and found again.
        assert_eq!(hours.insert(hour(0) + 1, (2, 1)), None);
        assert_eq!(hours.insert(hour(0) + 1, (3, 1)), Some((2, 1)));
        hours.keep_from(first_hour);
        assert_eq!(hours.get(&hour(-UPTIME_HOURS)), None);
        assert_eq!(hours.get(&hour(1 - UPTIME_HOURS)), Some((407, 300)));
        assert_eq!(hours.get(&hour(1)), Some((361, 300)));
        assert_eq!(hours.get(&(hour(0) + 1)), Some((3, 1)));
        assert_eq!(hours.counts.len(), 49);
        assert_eq!(hours.counts.capacity(), 49);
        assert_eq!(hours.iter().count(), 50);
        // Laid out differently, the same counts are equal.
        let mut again: Counts<i64> = Counts::default();
        again.insert(hour(0) + 1, (3, 1));
        for h in 1 - UPTIME_HOURS..=1 {
            again.insert(hour(h), (360 + h.unsigned_abs(), 300));
        }
        again.insert(hour(5), (0, 0));
        assert_eq!(again, hours);
    }

    /// The kept reads of a request, which must not be loading.
    fn read(data: PageData) -> (DateTime<Utc>, Arc<Stored>) {
        match data {
            PageData::Read { read_at, stored } => (read_at, stored),
            PageData::Loading { failed } => panic!("still loading ({failed:?})"),
        }
    }

    fn checks_of(stored: &Stored, target: &str) -> u64 {
        stored
            .counts
            .get(target)
            .map_or(0, |c| c.daily.iter().map(|(_, t, _)| t).sum())
    }

    /// Loading until the first whole read, then ready; a whole read due is asked for, never made by a
    /// request, which keeps getting the kept page (brought up to date) until the background read replaces
    /// it.
    #[tokio::test]
    async fn requests_get_loading_then_the_kept_reads_and_never_make_a_whole_read() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("hale.db")).await.unwrap();
        let now = Utc.with_ymd_and_hms(2026, 12, 1, 12, 30, 0).unwrap();
        let clock = ManualClock::new(now);
        write(&store, &[("a", now - TimeDelta::minutes(5), true)]).await;
        let reads = PageReads::new();

        // Loading: nothing read yet, and the whole read is wanted from the start.
        assert!(matches!(
            reads.get(&store, now).await.unwrap(),
            PageData::Loading { failed: None }
        ));
        assert!(reads.whole_wanted());

        // Ready once the whole read is done.
        reads.read_whole(&store, &clock).await.unwrap();
        reads.whole_read_done();
        assert!(!reads.whole_wanted());
        let (read_at, first) = read(reads.get(&store, now).await.unwrap());
        assert_eq!((read_at, checks_of(&first, "a")), (now, 1));

        // A check two days back, behind the page's back: only a whole read sees it. Within the hour, a
        // request brings the kept reads up to date (the recent hours) and asks for nothing.
        write(&store, &[("a", now - TimeDelta::days(2), true)]).await;
        let half_hour = now + TimeDelta::minutes(30);
        let (read_at, kept) = read(reads.get(&store, half_hour).await.unwrap());
        assert_eq!((read_at, checks_of(&kept, "a")), (half_hour, 1));
        assert!(!reads.whole_wanted());

        // Re-reading: an hour after the whole read, a request asks for the next one and gets the kept page
        // meanwhile, brought up to date, still without the old check.
        let hour_on = now + TimeDelta::minutes(61);
        clock.set(hour_on);
        let (read_at, kept) = read(reads.get(&store, hour_on).await.unwrap());
        assert_eq!((read_at, checks_of(&kept, "a")), (hour_on, 1));
        assert!(reads.whole_wanted(), "the whole read is asked for");
        let (_, again) = read(
            reads
                .get(&store, hour_on + TimeDelta::seconds(1))
                .await
                .unwrap(),
        );
        assert_eq!(checks_of(&again, "a"), 1);

        // The background read replaces it.
        reads.read_whole(&store, &clock).await.unwrap();
        reads.whole_read_done();
        let (read_at, whole) = read(
            reads
                .get(&store, hour_on + TimeDelta::seconds(1))
                .await
                .unwrap(),
        );
        assert_eq!((read_at, checks_of(&whole, "a")), (hour_on, 2));
        assert!(!reads.whole_wanted());

        // A clock stepped back: the kept reads are answered as they are, and a whole read is asked for.
        let (read_at, kept) = read(reads.get(&store, now).await.unwrap());
        assert_eq!((read_at, checks_of(&kept, "a")), (hour_on, 2));
        assert!(reads.whole_wanted());
    }

    /// The worker makes the first whole read at start, without a request, and the one a request asks for.
    #[tokio::test]
    async fn the_page_reader_reads_at_start_and_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("hale.db")).await.unwrap();
        let now = Utc.with_ymd_and_hms(2026, 12, 1, 12, 30, 0).unwrap();
        let clock = ManualClock::new(now);
        write(&store, &[("a", now - TimeDelta::minutes(5), true)]).await;
        let reads = Arc::new(PageReads::new());
        let reader = Arc::new(PageReader::new(
            reads.clone(),
            store.clone(),
            Arc::new(clock.clone()),
        ));
        let cancel = CancellationToken::new();
        let task = tokio::spawn(reader.run(cancel.clone()));
        // No request: the read at start is done once the worker says so.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while reads.whole_wanted() {
            assert!(std::time::Instant::now() < deadline, "no read at start");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let (_, first) = read(reads.get(&store, now).await.unwrap());
        assert_eq!(checks_of(&first, "a"), 1);

        // A request an hour on asks; the worker reads whole, and the old check shows.
        write(&store, &[("a", now - TimeDelta::days(2), true)]).await;
        clock.advance(Duration::from_secs(3_660));
        let (_, kept) = read(reads.get(&store, clock.now()).await.unwrap());
        assert_eq!(checks_of(&kept, "a"), 1);
        loop {
            let (_, page) = read(reads.get(&store, clock.now()).await.unwrap());
            if checks_of(&page, "a") == 2 {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "no read when asked");
            tokio::time::sleep(Duration::from_millis(5)).await;
            clock.advance(Duration::from_secs(10));
        }
        cancel.cancel();
        task.await.unwrap();
    }
}
