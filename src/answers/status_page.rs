//! What the status page (`GET /`) shows, gathered: the monitor's latest results (nothing is checked for
//! the page), the uptime bars from the rollups, each target's SLO (the numbers `/slo` gives, from the SLO
//! refresher's last pass, its p95 included), restarts this week and the alerts firing. The
//! database reads are kept (`PageReads`) and made again once `READS_MAX_AGE` old, never per request: the
//! bars then only for the hours since the last read. The page's markup is the service's.

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
/// The uptime bars are read whole again this often (in between, only the hours since the last read).
pub const BARS_REREAD_WHOLE: chrono::Duration = chrono::Duration::hours(1);

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

/// The status page's database reads (uptime bars, restarts, alerts), kept between requests.
#[derive(Debug, Default)]
pub struct PageReads {
    cached: tokio::sync::Mutex<Option<CachedReads>>,
}

#[derive(Debug)]
struct CachedReads {
    read_at: DateTime<Utc>,
    /// When the bars were last read whole (`BARS_REREAD_WHOLE`).
    bars_read_whole_at: DateTime<Utc>,
    stored: Arc<Stored>,
}

impl PageReads {
    pub fn new() -> Self {
        Self::default()
    }

    /// The reads, made again when older than `READS_MAX_AGE`: the restarts and alerts whole, the uptime
    /// bars only from the hour before the last read on (rollups of older hours do not change), and whole
    /// again every `BARS_REREAD_WHOLE` or after the clock stepped back. One caller reads at a time; the
    /// others wait for its answer.
    async fn get(
        &self,
        store: &Store,
        now: DateTime<Utc>,
    ) -> Result<(DateTime<Utc>, Arc<Stored>), StoreError> {
        let mut cached = self.cached.lock().await;
        let previous = match cached.as_ref() {
            Some(c) => {
                let age = now - c.read_at;
                if age < READS_MAX_AGE && age >= TimeDelta::zero() {
                    return Ok((c.read_at, c.stored.clone()));
                }
                let whole_age = now - c.bars_read_whole_at;
                (whole_age < BARS_REREAD_WHOLE && age >= TimeDelta::zero())
                    .then_some((c.read_at, c.bars_read_whole_at))
            }
            None => None,
        };
        let (stored, bars_read_whole_at) = match (previous, cached.take()) {
            (Some((read_at, whole_at)), Some(c)) => {
                // Without a copy unless a request still holds the last reads.
                let previous = Arc::try_unwrap(c.stored).unwrap_or_else(|kept| (*kept).clone());
                (stored_since(store, now, read_at, previous).await?, whole_at)
            }
            _ => (stored(store, now).await?, now),
        };
        let stored = Arc::new(stored);
        *cached = Some(CachedReads {
            read_at: now,
            bars_read_whole_at,
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
        let per_day = stored.daily.get(&line.name);
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
        let hour_ms = 3_600_000;
        let current_hour = now.timestamp_millis() - now.timestamp_millis().rem_euclid(hour_ms);
        let per_hour = stored.hourly.get(&line.name);
        let hours = (0..UPTIME_HOURS)
            .map(|i| {
                let hour = current_hour - (UPTIME_HOURS - 1 - i) * hour_ms;
                let at = DateTime::<Utc>::from_timestamp_millis(hour).unwrap_or(now);
                let value = per_hour
                    .and_then(|h| h.get(&hour))
                    .filter(|(t, _)| *t > 0)
                    .map(|(t, g)| (*g).min(*t) as f64 * 100.0 / *t as f64);
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
    let snapshot = crate::answers::slo::slo_all(store, config, board, now).await;
    let (read_at, stored) = reads.get(store, now).await.unwrap_or_else(|e| {
        notes.push(format!("the database cannot be read: {e}"));
        (now, Arc::new(Stored::default()))
    });
    // Less than a week since the first day with checks (or none at all): hourly bars say more.
    let hourly = stored
        .first_day()
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
        bars: Bars(Some(stored)),
    }
}

#[derive(Debug, Default, Clone)]
pub struct Stored {
    /// Per target and day: (checks, good).
    daily: HashMap<String, HashMap<NaiveDate, (u64, u64)>>,
    /// Per target and hour (epoch ms) of the last `UPTIME_HOURS`: (checks, good as stored; the bar shows
    /// at most all of them good).
    hourly: HashMap<String, HashMap<i64, (u64, u64)>>,
    restarts: HashMap<String, u32>,
    alerts: Vec<StoredAlert>,
}

impl Stored {
    /// The first day with checks of any target.
    fn first_day(&self) -> Option<NaiveDate> {
        self.daily
            .values()
            .flat_map(|days| days.iter().filter(|(_, (t, _))| *t > 0).map(|(d, _)| *d))
            .min()
    }
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
    for row in store
        .hourly_totals(
            now - TimeDelta::hours(UPTIME_HOURS),
            now + TimeDelta::hours(1),
        )
        .await?
    {
        hourly
            .entry(row.service)
            .or_default()
            .insert(row.hour_ms, (row.total, row.good));
    }
    Ok(Stored {
        daily,
        hourly,
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
    const HOUR_MS: i64 = 3_600_000;
    let from_ms = read_at.timestamp_millis().div_euclid(HOUR_MS) * HOUR_MS - HOUR_MS;
    let from = DateTime::<Utc>::from_timestamp_millis(from_ms).unwrap_or(read_at);
    let Stored {
        mut daily,
        mut hourly,
        ..
    } = previous;
    for row in store.hourly_totals(from, now + TimeDelta::hours(1)).await? {
        let (total, good) = (row.total, row.good);
        let (old_total, old_good) = hourly
            .entry(row.service.clone())
            .or_default()
            .insert(row.hour_ms, (total, good))
            .unwrap_or((0, 0));
        let Some(hour) = DateTime::<Utc>::from_timestamp_millis(row.hour_ms) else {
            continue;
        };
        let day = daily
            .entry(row.service)
            .or_default()
            .entry(hour.date_naive())
            .or_insert((0, 0));
        day.0 = (day.0 + total).saturating_sub(old_total);
        day.1 = (day.1 + good).saturating_sub(old_good);
    }
    // As a whole read keeps them: the hours from `now - UPTIME_HOURS` on.
    let first_hour = (now - TimeDelta::hours(UPTIME_HOURS)).timestamp_millis();
    let first_day = (now - TimeDelta::days(UPTIME_DAYS - 1)).date_naive();
    for hours in hourly.values_mut() {
        hours.retain(|hour, _| *hour >= first_hour);
    }
    for days in daily.values_mut() {
        days.retain(|day, _| *day >= first_day);
    }
    Ok(Stored {
        daily,
        hourly,
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
        let (_, first) = reads.get(&store, now).await.unwrap();
        assert_eq!(first.daily, stored(&store, now).await.unwrap().daily);

        // Within READS_MAX_AGE the kept reads are answered, whatever was written since.
        write(&store, &[("a", now + TimeDelta::minutes(1), false)]).await;
        let (read_at, kept) = reads
            .get(&store, now + TimeDelta::seconds(5))
            .await
            .unwrap();
        assert_eq!((read_at, &kept.daily), (now, &first.daily));

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
        let (read_at, since) = reads.get(&store, later).await.unwrap();
        let whole = stored(&store, later).await.unwrap();
        assert_eq!(read_at, later);
        assert_eq!(since.daily, whole.daily);
        assert_eq!(since.hourly, whole.hourly);
        assert_ne!(since.daily, first.daily, "the new checks are counted");

        // Across midnight, hours and days older than the page shows leave.
        let next_day = Utc.with_ymd_and_hms(2026, 12, 2, 0, 20, 0).unwrap();
        write(&store, &[("a", next_day - TimeDelta::minutes(5), true)]).await;
        let (_, since) = reads.get(&store, next_day).await.unwrap();
        let whole = stored(&store, next_day).await.unwrap();
        assert_eq!(since.daily, whole.daily);
        assert_eq!(since.hourly, whole.hourly);
    }
}
