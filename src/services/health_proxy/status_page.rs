//! `GET /`: a server-rendered status page with no script and no external asset: the health score, each
//! target's current state (the monitor's latest results; nothing is checked for the page), its SLO status
//! and error budget left over the SLO window (the numbers `/slo` gives), any retroactive maintenance
//! window, uptime bars from the rollups (90 daily bars, or 48 hourly ones while the database holds less
//! than a week of history), the p95 over the SLO window, restarts this week and the alerts firing.
//! It refreshes itself every 30 s and carries a Content-Security-Policy that allows inline styles and
//! nothing else.

use std::collections::HashMap;

use actix_web::http::header;
use actix_web::{get, web, HttpResponse};
use chrono::{DateTime, NaiveDate, TimeDelta, Utc};

use crate::records::Outcome;
use crate::services::health_proxy::HealthProxyState;
use crate::services::Core;
use crate::slo::{SloWindow, TargetSlo};
use crate::store::alerts::StoredAlert;
use crate::store::StoreError;

/// The page as HTML, from what `gather` read (the markup lives in `status_html`).
pub use crate::services::health_proxy::status_html::render;

/// Days of uptime bars per target.
pub const UPTIME_DAYS: i64 = 90;
/// Hourly bars shown instead of daily ones while there is less than `HOURLY_UNTIL_DAYS` of history.
pub const UPTIME_HOURS: i64 = 48;
/// History (from the first day with checks) under which the bars are hourly.
pub const HOURLY_UNTIL_DAYS: i64 = 7;
/// Allows the page's inline styles and inline SVG (`data:` images), nothing else: no script at all.
pub const STATUS_PAGE_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

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

/// Status page.
///
/// An HTML page for people: the health score, each target's state, its SLO status (met, at risk, breached,
/// no data) and error budget left, any retroactive maintenance window, 90 days of daily uptime (48 hourly
/// bars while there is less than a week of history), the p95 over the SLO window, restarts this week and
/// the alerts firing. No script and no external asset; it refreshes
/// every 30 s. Nothing is checked for it: it shows the monitor's latest results.
#[utoipa::path(
    tag = "health",
    responses((status = 200, description = "The status page", content_type = "text/html", body = String, example = r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="refresh" content="30">
<title>hale status</title>
</head>
<body>
<header><h1>hale status <span class="badge pass">ALL UP</span></h1><p class="meta">Health score <span class="score" id="score">100.0</span> / 100; 2 of 2 targets up. Updated 2026-11-26 12:00 UTC; this page refreshes every 30 s.</p></header>
<main>
<h2>Targets</h2>
<section class="target"><h3><span class="name">api</span> <span class="badge pass">up</span></h3><p class="meta">Last check 2026-11-26 12:00 UTC in 12.5 ms. 90-day uptime 99.933%; p95 over 7 days 48.7 ms (target 200 ms); restarts this week: 1.</p></section>
<section class="target"><h3><span class="name">db</span> <span class="badge pass">up</span></h3><p class="meta">Last check 2026-11-26 12:00 UTC in 0.9 ms. 90-day uptime 100.000%; p95 over 7 days 1.2 ms (target 200 ms); restarts this week: 0.</p></section>
<h2>Active alerts</h2>
<p class="muted">No alert is firing.</p>
</main>
</body>
</html>
"#))
)]
#[get("/")]
pub async fn status_page(
    core: web::Data<Core>,
    state: web::Data<HealthProxyState>,
) -> HttpResponse {
    let page = gather(&core, &state).await;
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CONTENT_SECURITY_POLICY, STATUS_PAGE_CSP))
        .body(render(&page))
}

/// Reads what the page shows: the monitor's latest results, then the store (one query per kind of data).
pub async fn gather(core: &Core, state: &HealthProxyState) -> StatusPage {
    let now = core.clock.now();
    let sweep = state.monitor.latest_all();
    let slo = &core.config.slo;
    let mut notes = Vec::new();
    let stored = stored(core, now).await.unwrap_or_else(|e| {
        notes.push(format!("the database cannot be read: {e}"));
        Stored::default()
    });
    let first_day = (now - TimeDelta::days(UPTIME_DAYS - 1)).date_naive();
    // Less than a week since the first day with checks (or none at all): hourly bars say more.
    let hourly = stored
        .daily
        .values()
        .flat_map(|days| days.iter().filter(|(_, (t, _))| *t > 0).map(|(d, _)| *d))
        .min()
        .is_none_or(|first| first > (now - TimeDelta::days(HOURLY_UNTIL_DAYS)).date_naive());
    let window = SloWindow::last_days(slo.window_days, now);
    let mut slos: HashMap<String, TargetSlo> =
        match crate::slo::evaluate(&core.store, &core.config, &window, None, false).await {
            Ok(all) => all.into_iter().map(|t| (t.target.clone(), t)).collect(),
            Err(e) => {
                notes.push(format!("the slo cannot be computed: {e}"));
                HashMap::new()
            }
        };
    let hour_ms = 3_600_000;
    let current_hour = now.timestamp_millis() - now.timestamp_millis().rem_euclid(hour_ms);
    let targets = state
        .monitor
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
                slo: slos.remove(&name),
                outcome: latest.as_ref().map(|l| l.outcome),
                checked_at: latest.as_ref().map(|l| l.checked_at),
                latency_ms: latest
                    .as_ref()
                    .and_then(|l| l.latency)
                    .map(|d| d.as_secs_f64() * 1000.0),
                error: latest.and_then(|l| l.error),
                days,
                uptime_percent: (total.0 > 0).then(|| total.1 as f64 * 100.0 / total.0 as f64),
                p95_ms: stored.p95_ms.get(&name).copied(),
                restarts_week: stored.restarts.get(&name).copied().unwrap_or(0),
                name,
            }
        })
        .collect();
    StatusPage {
        generated_at: now,
        score: sweep.score,
        up: sweep.counts.up,
        targets,
        alerts: stored.alerts,
        availability_target_percent: slo.availability_target_percent,
        p95_target_ms: slo.p95_latency_target_ms,
        window_days: slo.window_days,
        hourly,
        notes,
    }
}

#[derive(Default)]
struct Stored {
    /// Per target and day: (checks, good).
    daily: HashMap<String, HashMap<NaiveDate, (u64, u64)>>,
    /// Per target and hour (epoch ms) of the last `UPTIME_HOURS`: (checks, good).
    hourly: HashMap<String, HashMap<i64, (u64, u64)>>,
    p95_ms: HashMap<String, f64>,
    restarts: HashMap<String, u32>,
    alerts: Vec<StoredAlert>,
}

async fn stored(core: &Core, now: DateTime<Utc>) -> Result<Stored, StoreError> {
    let store = &core.store;
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
    let (from, until) = crate::slo::window::whole_hours(now, core.config.slo.window_days);
    let p95_ms = store
        .window_totals(from, until)
        .await?
        .into_iter()
        .filter_map(|(name, w)| w.latency.quantile_us(0.95).map(|us| (name, us / 1000.0)))
        .collect();
    Ok(Stored {
        daily,
        hourly,
        p95_ms,
        restarts: store.restarts_since(now - TimeDelta::days(7)).await?,
        alerts: store.firing_alerts().await?,
    })
}
