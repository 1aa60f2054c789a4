//! What the status page (`GET /`) shows, gathered: the monitor's latest results (nothing is checked for
//! the page), the uptime bars from the rollups, each target's SLO (the numbers `/slo` gives, from the SLO
//! refresher's last pass, its p95 included), restarts this week and the alerts firing. The
//! database reads are kept (`PageReads`) and made again only after the refresher's next pass or once
//! `READS_MAX_AGE` old, never per request. The page's markup is the service's.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};

use crate::config::Config;
use crate::probe::Monitor;
use crate::records::Outcome;
use crate::slo::{SloBoard, TargetSlo};
use crate::store::alerts::StoredAlert;
use crate::store::{Store, StoreError};

/// Days of uptime bars per target.
pub const UPTIME_DAYS: i64 = 90;
/// Hourly bars shown instead of daily ones while there is less than `HOURLY_UNTIL_DAYS` of history.
pub const UPTIME_HOURS: i64 = 48;
/// History (from the first day with checks) under which the bars are hourly.
pub const HOURLY_UNTIL_DAYS: i64 = 7;
/// The page's database reads are made again once this old (on hale's clock), or after an SLO pass.
pub const READS_MAX_AGE: chrono::Duration = chrono::Duration::seconds(10);

/// Fleets of up to this many targets get the whole page: every target's section with its bars. Larger
/// ones get a summary, the targets that need attention and the targets one page of `PAGE_SIZE` at a time.
pub const FULL_PAGE_UP_TO: usize = 50;
/// Targets per page, above `FULL_PAGE_UP_TO`.
pub const PAGE_SIZE: usize = 50;
/// Targets listed under "needs attention" (then "and N more").
pub const ATTENTION_SHOWN: usize = 25;
/// Firing alerts listed on a paged page (then "and N more").
pub const ALERTS_SHOWN: usize = 25;

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

/// The status page's database reads (uptime bars, p95, restarts, alerts), kept between requests.
#[derive(Debug, Default)]
pub struct PageReads {
    cached: tokio::sync::Mutex<Option<CachedReads>>,
}

#[derive(Debug)]
struct CachedReads {
    read_at: DateTime<Utc>,
    /// The SLO snapshot's generation they were read with.
    generation: u64,
    stored: Arc<Stored>,
}

impl PageReads {
    pub fn new() -> Self {
        Self::default()
    }

    /// The reads, made again when older than `READS_MAX_AGE` or read before the SLO pass `generation`.
    /// One caller reads at a time; the others wait for its answer.
    async fn get(
        &self,
        store: &Store,
        now: DateTime<Utc>,
        generation: u64,
    ) -> Result<(DateTime<Utc>, Arc<Stored>), StoreError> {
        let mut cached = self.cached.lock().await;
        if let Some(c) = cached.as_ref() {
            let age = now - c.read_at;
            if c.generation == generation && age < READS_MAX_AGE && age >= chrono::Duration::zero()
            {
                return Ok((c.read_at, c.stored.clone()));
            }
        }
        let stored = Arc::new(stored(store, now).await?);
        *cached = Some(CachedReads {
            read_at: now,
            generation,
            stored: stored.clone(),
        });
        Ok((now, stored))
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

/// Everything the page shows.
#[derive(Debug, Clone)]
pub struct StatusPage {
    pub generated_at: DateTime<Utc>,
    /// The SLOs count the scheduled checks made before this time (the refresher's last pass); None when
    /// they could not be computed.
    pub slo_as_of: Option<DateTime<Utc>>,
    /// When the uptime bars, p95, restarts and alerts were read from the database.
    pub read_at: DateTime<Utc>,
    pub score: f64,
    pub up: usize,
    pub targets: Vec<TargetLine>,
    pub alerts: Vec<StoredAlert>,
    pub availability_target_percent: f64,
    pub p95_target_ms: u64,
    pub window_days: u32,
    /// Hourly bars (less than a week of history) instead of daily ones.
    pub hourly: bool,
    /// What could not be read (the database), shown on the page.
    pub notes: Vec<String>,
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
    let snapshot = crate::answers::slo::slo_all(store, config, board, now).await;
    let generation = snapshot.as_ref().map_or(0, |s| s.generation);
    let (read_at, stored) = reads.get(store, now, generation).await.unwrap_or_else(|e| {
        notes.push(format!("the database cannot be read: {e}"));
        (now, Arc::new(Stored::default()))
    });
    let first_day = (now - TimeDelta::days(UPTIME_DAYS - 1)).date_naive();
    // Less than a week since the first day with checks (or none at all): hourly bars say more.
    let hourly = stored
        .daily
        .values()
        .flat_map(|days| days.iter().filter(|(_, (t, _))| *t > 0).map(|(d, _)| *d))
        .min()
        .is_none_or(|first| first > (now - TimeDelta::days(HOURLY_UNTIL_DAYS)).date_naive());
    let mut slo_as_of = None;
    let mut slos: HashMap<&str, &TargetSlo> = HashMap::new();
    match &snapshot {
        Ok(snapshot) => {
            slo_as_of = Some(snapshot.as_of);
            slos.extend(snapshot.slos.iter().map(|t| (t.target.as_str(), t)));
        }
        Err(e) => notes.push(format!("the slo cannot be computed: {e}")),
    }
    let slos_p95: HashMap<&str, Option<f64>> = slos
        .iter()
        .map(|(name, slo)| (*name, slo.latency.p95_ms))
        .collect();
    let hour_ms = 3_600_000;
    let current_hour = now.timestamp_millis() - now.timestamp_millis().rem_euclid(hour_ms);
    let targets = monitor
        .targets()
        .iter()
        .map(|target| {
            let name = target.name().to_owned();
            let latest = target.latest();
            let per_day = stored.daily.get(&name);
            let mut total = (0u64, 0u64);
            let days = (0..UPTIME_DAYS)
                .map(|i| {
                    let day = first_day + TimeDelta::days(i);
                    let counts = per_day.and_then(|d| d.get(&day)).copied();
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
            let per_hour = stored.hourly.get(&name);
            let hours = (0..UPTIME_HOURS)
                .map(|i| {
                    let hour = current_hour - (UPTIME_HOURS - 1 - i) * hour_ms;
                    let at = DateTime::<Utc>::from_timestamp_millis(hour).unwrap_or(now);
                    let value = per_hour
                        .and_then(|h| h.get(&hour))
                        .filter(|(t, _)| *t > 0)
                        .map(|(t, g)| *g as f64 * 100.0 / *t as f64);
                    (at.format("%Y-%m-%d %H:00 UTC").to_string(), value)
                })
                .collect();
            TargetLine {
                hours,
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
                days,
                uptime_percent: (total.0 > 0).then(|| total.1 as f64 * 100.0 / total.0 as f64),
                restarts_week: stored.restarts.get(&name).copied().unwrap_or(0),
                name,
            }
        })
        .collect();
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
        notes,
    }
}

#[derive(Debug, Default)]
struct Stored {
    /// Per target and day: (checks, good).
    daily: HashMap<String, HashMap<NaiveDate, (u64, u64)>>,
    /// Per target and hour (epoch ms) of the last `UPTIME_HOURS`: (checks, good).
    hourly: HashMap<String, HashMap<i64, (u64, u64)>>,
    restarts: HashMap<String, u32>,
    alerts: Vec<StoredAlert>,
}

async fn stored(store: &Store, now: DateTime<Utc>) -> Result<Stored, StoreError> {
    let since = (now - TimeDelta::days(UPTIME_DAYS - 1))
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .map_or(now, |t| t.and_utc());
    let mut daily: HashMap<String, HashMap<NaiveDate, (u64, u64)>> = HashMap::new();
    for d in store.daily_totals(since, now + TimeDelta::hours(1)).await? {
        daily
            .entry(d.service)
            .or_default()
            .insert(d.day, (d.total, d.good));
    }
    let mut hourly: HashMap<String, HashMap<i64, (u64, u64)>> = HashMap::new();
    for (name, rows) in store
        .rollups_between(
            now - TimeDelta::hours(UPTIME_HOURS),
            now + TimeDelta::hours(1),
        )
        .await?
    {
        let hours = hourly.entry(name).or_default();
        for row in rows {
            hours.insert(
                row.hour.timestamp_millis(),
                (row.total, row.good.min(row.total)),
            );
        }
    }
    Ok(Stored {
        daily,
        hourly,
        restarts: store.restarts_since(now - TimeDelta::days(7)).await?,
        alerts: store.firing_alerts().await?,
    })
}
