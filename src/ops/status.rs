//! `hale status`: one screen for a person at a terminal, or the same data as JSON. It reads the database
//! directly (so it works while hale is stopped) and asks each of hale's services for `/health`: services
//! (up, address, uptime, version), each target (state, breaker, last check, availability and p95 over the SLO
//! window against their targets, restarts), active alerts, the writer's queue, the database size and the last
//! backup.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::IsTerminal;
use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;

use crate::answers::HealthResponse;
use crate::breaker::BreakerState;
use crate::config::Config;
use crate::kind::ServiceKind;
use crate::ops::verify::{bytes, duration};
use crate::ops::{base_url, listen_addr, target_of_breaker, HaleClient, ReadToken};
use crate::records::Outcome;
use crate::slo::window::whole_hours;
use crate::store::health_checks::HistoryQuery;
use crate::store::{DatabaseFiles, Store, StoreError};

/// How long `status` waits for one service's `/health`.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(3);

/// Everything `hale status` shows. The JSON shape is stable: fields are added, never renamed or removed.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub generated_at: DateTime<Utc>,
    pub hale_version: String,
    pub config: String,
    pub services: Vec<ServiceStatus>,
    pub slo: SloTargets,
    pub targets: Vec<TargetStatus>,
    pub alerts: Alerts,
    pub writer: WriterStatus,
    pub database: DatabaseStatus,
    pub backup: Backup,
    /// Anything that limited what could be shown (a read token that could not be loaded, a database error).
    pub notes: Vec<String>,
}

/// One of hale's own services.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceStatus {
    pub name: String,
    /// The address from the config.
    pub address: String,
    /// True when `/health` answered 200 with `ok: true`.
    pub up: bool,
    /// `up`, `unhealthy` (answers, but cannot store checks) or `down` (no answer).
    pub state: String,
    pub uptime_s: Option<u64>,
    pub version: Option<String>,
    /// Why it is not up.
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SloTargets {
    pub window_days: u32,
    pub availability_target_percent: f64,
    pub p95_latency_target_ms: u64,
    pub max_restarts_per_week: u32,
}

/// One monitored target.
#[derive(Debug, Clone, Serialize)]
pub struct TargetStatus {
    pub name: String,
    /// The URL as hale shows it (query values redacted).
    pub url: String,
    /// The outcome of the last stored check (`up`, `down`, `timeout`, `circuit_open`, `error`), or
    /// `unknown` when none is stored.
    pub state: String,
    /// The breaker state saved in the database (`closed` when it never moved).
    pub breaker: BreakerState,
    pub last_check: Option<LastCheck>,
    pub availability: Availability,
    pub p95: LatencyObjective,
    pub restarts: Restarts,
}

#[derive(Debug, Clone, Serialize)]
pub struct LastCheck {
    pub at: DateTime<Utc>,
    pub outcome: Outcome,
    pub http_status: Option<u16>,
    pub latency_ms: Option<f64>,
    pub error: Option<String>,
}

/// The share of `up` checks over the SLO window, from the hourly rollups.
#[derive(Debug, Clone, Serialize)]
pub struct Availability {
    /// None when the window has no checks.
    pub percent: Option<f64>,
    pub target_percent: f64,
    pub met: Option<bool>,
    pub checks: u64,
    pub good: u64,
}

/// The 95th percentile of check latency over the SLO window (within 1%, from the rollups' histograms).
#[derive(Debug, Clone, Serialize)]
pub struct LatencyObjective {
    pub ms: Option<f64>,
    pub target_ms: u64,
    pub met: Option<bool>,
}

/// Restarts of the target in the last 7 days (its child restarted, or a heal command ran). `count` is null
/// when the database cannot be read.
#[derive(Debug, Clone, Serialize)]
pub struct Restarts {
    pub tracked: bool,
    pub count: Option<u32>,
    pub max_per_week: u32,
}

/// Alerts firing now, from the database. `tracked` is false when it cannot be read.
#[derive(Debug, Clone, Serialize)]
pub struct Alerts {
    pub tracked: bool,
    pub active: Vec<ActiveAlert>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ActiveAlert {
    pub target: String,
    pub rule: String,
    pub level: String,
    pub since: DateTime<Utc>,
    pub summary: String,
}

/// The check writer, as the running hale reports it; all null when hale does not answer.
#[derive(Debug, Clone, Serialize)]
pub struct WriterStatus {
    /// `running` or `stopped`.
    pub state: Option<String>,
    pub queue: Option<usize>,
    /// `ok`, or why the database takes no writes (`full`, `read_only`, ...).
    pub database: Option<String>,
    pub last_write_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DatabaseStatus {
    pub path: String,
    pub exists: bool,
    /// The database file and its write-ahead log together.
    pub size_bytes: Option<u64>,
    pub file_bytes: Option<u64>,
    pub wal_bytes: Option<u64>,
    /// The newest schema migration applied.
    pub schema: Option<i64>,
    /// Why it could not be read.
    pub error: Option<String>,
}

/// The newest backup in the backup folder (`backup.dir`, or `backups` beside the database).
#[derive(Debug, Clone, Serialize)]
pub struct Backup {
    pub tracked: bool,
    pub last_at: Option<DateTime<Utc>>,
    pub path: Option<String>,
}

/// Collects the status. Never fails: what cannot be read is shown as such.
pub async fn gather(config: &Config, config_path: &Path, db: &Path) -> Status {
    let now = Utc::now();
    let mut notes = Vec::new();
    let client = match HaleClient::new(config, HEALTH_TIMEOUT) {
        Ok(client) => Some(client),
        Err(e) => {
            notes.push(e);
            None
        }
    };
    if let Some(ReadToken::Failed(e)) = client.as_ref().map(|c| &c.token) {
        notes.push(format!("{e}; hale was asked without a token"));
    }
    let answers = futures_util::future::join_all(
        ServiceKind::ALL
            .into_iter()
            .map(|kind| service_status(client.as_ref(), config, kind)),
    )
    .await;
    let mut services = Vec::new();
    let mut health: HashMap<ServiceKind, HealthResponse> = HashMap::new();
    for (kind, (status, answer)) in ServiceKind::ALL.into_iter().zip(answers) {
        services.push(status);
        if let Some(answer) = answer {
            health.insert(kind, answer);
        }
    }
    let writer_view = health
        .get(&ServiceKind::HealthProxy)
        .or_else(|| ServiceKind::ALL.iter().find_map(|k| health.get(k)));
    let writer = WriterStatus {
        state: writer_view.map(|h| h.details.writer.clone()),
        queue: writer_view.map(|h| h.details.writer_queue),
        database: writer_view.map(|h| h.details.database.clone()),
        last_write_at: writer_view.and_then(|h| h.details.last_write_at),
    };

    let files = DatabaseFiles::of(db);
    let mut database = DatabaseStatus {
        path: db.display().to_string(),
        exists: files.db_bytes.is_some(),
        size_bytes: files.total_bytes(),
        file_bytes: files.db_bytes,
        wal_bytes: files.wal_bytes,
        schema: None,
        error: None,
    };
    let stored = match Store::open_read_only(db).await {
        Ok(store) => {
            let read = read_store(&store, config, now).await;
            store.close().await;
            match read {
                Ok(read) => {
                    database.schema = Some(read.schema);
                    Some(read)
                }
                Err(e) => {
                    database.error = Some(e.to_string());
                    None
                }
            }
        }
        Err(e) => {
            database.error = Some(e.to_string());
            None
        }
    };
    if let Some(error) = &database.error {
        notes.push(format!("targets are shown without history: {error}"));
    }

    let slo = &config.slo;
    let targets = config
        .services
        .iter()
        .map(|target| {
            let name = target.name.as_str();
            let last_check = stored.as_ref().and_then(|s| s.last.get(name).cloned());
            let window = stored.as_ref().and_then(|s| s.windows.get(name));
            let (checks, good) = window.map_or((0, 0), |w| (w.total, w.good));
            // Rounded to what the numbers can say: 4 decimals of a percent, microseconds (the histogram is
            // within 1% anyway).
            let percent = (checks > 0).then(|| round(good as f64 * 100.0 / checks as f64, 4));
            let p95_ms = window
                .and_then(|w| w.latency.quantile_us(0.95))
                .map(|us| round(us / 1000.0, 3));
            TargetStatus {
                name: name.to_owned(),
                url: target.url.redacted(),
                state: last_check
                    .as_ref()
                    .map_or("unknown", |c| c.outcome.as_str())
                    .to_owned(),
                breaker: stored
                    .as_ref()
                    .and_then(|s| s.breakers.get(name).copied())
                    .unwrap_or(BreakerState::Closed),
                last_check,
                availability: Availability {
                    percent,
                    target_percent: slo.availability_target_percent,
                    met: percent.map(|p| p >= slo.availability_target_percent),
                    checks,
                    good,
                },
                p95: LatencyObjective {
                    ms: p95_ms,
                    target_ms: slo.p95_latency_target_ms,
                    met: p95_ms.map(|ms| ms <= slo.p95_latency_target_ms as f64),
                },
                restarts: Restarts {
                    tracked: stored.is_some(),
                    count: stored
                        .as_ref()
                        .map(|s| s.restarts.get(name).copied().unwrap_or(0)),
                    max_per_week: slo.max_restarts_per_week,
                },
            }
        })
        .collect();

    Status {
        generated_at: now,
        hale_version: env!("CARGO_PKG_VERSION").to_owned(),
        config: config_path.display().to_string(),
        services,
        slo: SloTargets {
            window_days: slo.window_days,
            availability_target_percent: slo.availability_target_percent,
            p95_latency_target_ms: slo.p95_latency_target_ms,
            max_restarts_per_week: slo.max_restarts_per_week,
        },
        targets,
        alerts: Alerts {
            tracked: stored.is_some(),
            active: stored.as_ref().map_or_else(Vec::new, |s| {
                let mut active: Vec<ActiveAlert> = s
                    .alerts
                    .iter()
                    .map(|a| ActiveAlert {
                        target: a.target.clone(),
                        rule: a.rule.clone(),
                        level: a.level.as_str().to_owned(),
                        since: a.fired_at,
                        summary: a.summary.clone(),
                    })
                    .collect();
                active.sort_by_key(|a| std::cmp::Reverse(a.since));
                active
            }),
        },
        writer,
        database,
        backup: {
            let dir = config
                .backup
                .dir
                .clone()
                .unwrap_or_else(|| crate::store::backup::default_dir(db));
            let latest = crate::store::backup::latest_backup(&dir, db);
            Backup {
                tracked: true,
                last_at: latest.as_ref().map(|(at, _)| *at),
                path: latest.map(|(_, path)| path.display().to_string()),
            }
        },
        notes,
    }
}

async fn service_status(
    client: Option<&HaleClient>,
    config: &Config,
    kind: ServiceKind,
) -> (ServiceStatus, Option<HealthResponse>) {
    let addr = listen_addr(config, kind);
    let mut status = ServiceStatus {
        name: kind.as_str().to_owned(),
        address: addr.to_string(),
        up: false,
        state: "down".to_owned(),
        uptime_s: None,
        version: None,
        error: None,
    };
    let base = match (base_url(addr), client) {
        (Ok(base), Some(_)) => base,
        (Err(e), _) => {
            status.error = Some(e);
            return (status, None);
        }
        (_, None) => {
            status.error = Some("no HTTP client".to_owned());
            return (status, None);
        }
    };
    let Some(client) = client else {
        return (status, None);
    };
    let answer = match client.get(&format!("{base}/health"), None).await {
        Ok(answer) => answer,
        Err(e) => {
            status.error = Some(e);
            return (status, None);
        }
    };
    let parsed: HealthResponse = match serde_json::from_str(&answer.body) {
        Ok(parsed) => parsed,
        Err(_) => {
            status.error = Some(format!(
                "{base}/health answered {} with something that is not hale's answer",
                answer.status
            ));
            return (status, None);
        }
    };
    status.uptime_s = Some(parsed.details.uptime_s);
    status.version = Some(parsed.details.version.clone());
    if parsed.details.service != kind.as_str() {
        status.error = Some(format!(
            "{base} is hale's {}, not its {kind}",
            parsed.details.service
        ));
        status.state = "unhealthy".to_owned();
    } else if parsed.ok && answer.status == 200 {
        status.up = true;
        status.state = "up".to_owned();
    } else {
        status.state = "unhealthy".to_owned();
        status.error = Some(match &parsed.details.database_error {
            Some(error) => format!("database {}: {error}", parsed.details.database),
            None => format!(
                "database {}, writer {}",
                parsed.details.database, parsed.details.writer
            ),
        });
    }
    (status, Some(parsed))
}

/// What `status` reads from the database.
struct Stored {
    schema: i64,
    last: HashMap<String, LastCheck>,
    breakers: HashMap<String, BreakerState>,
    windows: HashMap<String, crate::store::rollups::WindowTotals>,
    restarts: HashMap<String, u32>,
    alerts: Vec<crate::store::alerts::StoredAlert>,
}

async fn read_store(
    store: &Store,
    config: &Config,
    now: DateTime<Utc>,
) -> Result<Stored, StoreError> {
    let schema = store.schema().await?.applied;
    let mut last = HashMap::new();
    for target in &config.services {
        let query = HistoryQuery {
            service: Some(target.name.to_string()),
            limit: 1,
            ..HistoryQuery::default()
        };
        let (checks, _) = store.check_history(&query).await?;
        if let Some(check) = checks.into_iter().next() {
            last.insert(
                check.service.clone(),
                LastCheck {
                    at: check.checked_at,
                    outcome: check.outcome,
                    http_status: check.http_status,
                    latency_ms: check.latency_us.map(|us| us as f64 / 1000.0),
                    error: check.error,
                },
            );
        }
    }
    let breakers = store
        .load_breakers()
        .await?
        .into_iter()
        .filter_map(|(name, snapshot)| Some((target_of_breaker(&name)?.to_owned(), snapshot.state)))
        .collect();
    let (since, until) = whole_hours(now, config.slo.window_days);
    let windows = store.window_totals(since, until).await?;
    let restarts = store.restarts_since(now - TimeDelta::days(7)).await?;
    let alerts = store.firing_alerts().await?;
    Ok(Stored {
        schema,
        last,
        breakers,
        windows,
        restarts,
        alerts,
    })
}

/// Colours only for a person at a terminal: stdout is a terminal, `NO_COLOR` is unset or empty and `TERM`
/// is not `dumb`.
pub fn colour_wanted() -> bool {
    std::io::stdout().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        && std::env::var("TERM").map_or(true, |t| t != "dumb")
}

#[derive(Clone, Copy)]
enum Tone {
    Good,
    Bad,
    Warn,
    Dim,
    Bold,
}

struct Painter {
    colour: bool,
}

impl Painter {
    /// `text` padded to `width` columns, then coloured (so colour codes never break the alignment).
    fn paint(&self, tone: Tone, text: &str, width: usize) -> String {
        let padded = format!("{text:<width$}");
        if !self.colour {
            return padded;
        }
        let code = match tone {
            Tone::Good => "32",
            Tone::Bad => "31",
            Tone::Warn => "33",
            Tone::Dim => "2",
            Tone::Bold => "1",
        };
        format!("\x1b[{code}m{padded}\x1b[0m")
    }
}

fn ago(now: DateTime<Utc>, at: DateTime<Utc>) -> String {
    let seconds = (now - at).num_seconds();
    if seconds < 0 {
        "just now".to_owned()
    } else {
        format!("{} ago", duration(seconds as u64))
    }
}

fn outcome_tone(state: &str) -> Tone {
    match state {
        "up" | "closed" => Tone::Good,
        "unknown" => Tone::Dim,
        "half_open" | "unhealthy" => Tone::Warn,
        _ => Tone::Bad,
    }
}

/// The screen. `colour`: ANSI colours (see `colour_wanted`).
pub fn render(status: &Status, colour: bool) -> String {
    let p = Painter { colour };
    let now = status.generated_at;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} {}  hale {}  config {}\n",
        p.paint(Tone::Bold, "hale status", 0),
        now.format("%Y-%m-%d %H:%M:%S UTC"),
        status.hale_version,
        status.config
    );

    let _ = writeln!(out, "{}", p.paint(Tone::Bold, "SERVICES", 0));
    let name_width = status
        .services
        .iter()
        .map(|s| s.name.len())
        .max()
        .unwrap_or(0);
    let addr_width = status
        .services
        .iter()
        .map(|s| s.address.len())
        .max()
        .unwrap_or(0);
    for service in &status.services {
        let detail = match (&service.error, service.uptime_s, &service.version) {
            (Some(error), _, _) => error.clone(),
            (None, Some(uptime), Some(version)) => {
                format!("uptime {}  hale {version}", duration(uptime))
            }
            _ => String::new(),
        };
        let line = format!(
            "  {}  {}  {}  {detail}",
            p.paint(Tone::Bold, &service.name, name_width),
            p.paint(outcome_tone(&service.state), &service.state, 9),
            format_args!("{:<addr_width$}", service.address),
        );
        let _ = writeln!(out, "{}", line.trim_end());
    }

    let slo = &status.slo;
    let _ = writeln!(
        out,
        "\n{}  SLO over {} days: availability >= {}%, p95 <= {} ms, fewer than {} restarts a week",
        p.paint(Tone::Bold, "TARGETS", 0),
        slo.window_days,
        slo.availability_target_percent,
        slo.p95_latency_target_ms,
        slo.max_restarts_per_week
    );
    if status.targets.is_empty() {
        let _ = writeln!(out, "  {}", p.paint(Tone::Dim, "none configured", 0));
    } else {
        let width = status
            .targets
            .iter()
            .map(|t| t.name.len())
            .max()
            .unwrap_or(0)
            .max(4);
        let _ = writeln!(
            out,
            "  {}",
            p.paint(
                Tone::Dim,
                &format!(
                    "{:<width$}  {:<12}  {:<9}  {:<14}  {:<17}  {:<14}  restarts",
                    "name", "state", "breaker", "last check", "availability", "p95"
                ),
                0
            )
        );
        for target in &status.targets {
            let last = target
                .last_check
                .as_ref()
                .map_or("never".to_owned(), |c| ago(now, c.at));
            let (availability, availability_tone) =
                match (target.availability.percent, target.availability.met) {
                    (Some(percent), Some(true)) => (format!("{percent:.3}% ok"), Tone::Good),
                    (Some(percent), _) => (format!("{percent:.3}% LOW"), Tone::Bad),
                    (None, _) => ("no checks".to_owned(), Tone::Dim),
                };
            let (p95, p95_tone) = match (target.p95.ms, target.p95.met) {
                (Some(ms), Some(true)) => (format!("{} ok", latency(ms)), Tone::Good),
                (Some(ms), _) => (format!("{} SLOW", latency(ms)), Tone::Bad),
                (None, _) => ("n/a".to_owned(), Tone::Dim),
            };
            let restarts = match target.restarts.count {
                Some(count) => count.to_string(),
                None => "n/a".to_owned(),
            };
            let line = format!(
                "  {:<width$}  {}  {}  {:<14}  {}  {}  {}",
                target.name,
                p.paint(outcome_tone(&target.state), &target.state, 12),
                p.paint(
                    outcome_tone(target.breaker.as_str()),
                    target.breaker.as_str(),
                    9
                ),
                last,
                p.paint(availability_tone, &availability, 17),
                p.paint(p95_tone, &p95, 14),
                p.paint(
                    match target.restarts.count {
                        None => Tone::Dim,
                        Some(n) if n >= target.restarts.max_per_week => Tone::Bad,
                        Some(_) => Tone::Good,
                    },
                    &restarts,
                    0
                ),
            );
            let _ = writeln!(out, "{}", line.trim_end());
        }
    }
    out.push('\n');

    let label = |text: &str| p.paint(Tone::Bold, text, 9);
    let alerts = if !status.alerts.tracked {
        p.paint(Tone::Dim, "n/a (the database cannot be read)", 0)
    } else if status.alerts.active.is_empty() {
        p.paint(Tone::Good, "none active", 0)
    } else {
        let list: Vec<String> = status
            .alerts
            .active
            .iter()
            .map(|a| {
                format!(
                    "{} {} on {} since {}",
                    a.level,
                    a.rule,
                    a.target,
                    ago(now, a.since)
                )
            })
            .collect();
        p.paint(Tone::Bad, &list.join("; "), 0)
    };
    let _ = writeln!(out, "{} {alerts}", label("ALERTS"));

    let writer = match (&status.writer.state, status.writer.queue) {
        (Some(state), Some(queue)) => {
            let last = status
                .writer
                .last_write_at
                .map_or("no write since start".to_owned(), |t| {
                    format!("last write {}", ago(now, t))
                });
            let database = status.writer.database.as_deref().unwrap_or("ok");
            let tone = if state == "running" && database == "ok" {
                Tone::Good
            } else {
                Tone::Bad
            };
            let database_note = if database == "ok" {
                String::new()
            } else {
                format!(", database {database}")
            };
            format!(
                "{}, {queue} queued, {last}{database_note}",
                p.paint(tone, state, 0)
            )
        }
        _ => p.paint(Tone::Dim, "n/a (hale does not answer)", 0),
    };
    let _ = writeln!(out, "{} {writer}", label("WRITER"));

    let db = &status.database;
    let database = match (db.exists, &db.error) {
        (false, _) => p.paint(Tone::Bad, &format!("{}: not found", db.path), 0),
        (true, error) => {
            let mut text = format!(
                "{}  {} (file {} + write-ahead log {})",
                db.path,
                bytes(db.size_bytes.unwrap_or(0)),
                bytes(db.file_bytes.unwrap_or(0)),
                bytes(db.wal_bytes.unwrap_or(0))
            );
            if let Some(schema) = db.schema {
                let _ = write!(text, ", schema {schema}");
            }
            if let Some(error) = error {
                let _ = write!(text, "; {}", p.paint(Tone::Bad, error, 0));
            }
            text
        }
    };
    let _ = writeln!(out, "{} {database}", label("DATABASE"));

    let backup = match (status.backup.tracked, status.backup.last_at) {
        (false, _) => p.paint(Tone::Dim, "n/a (backups are not built yet)", 0),
        (true, None) => p.paint(Tone::Bad, "none yet (hale backup)", 0),
        (true, Some(at)) => format!(
            "{}{}",
            ago(now, at),
            status
                .backup
                .path
                .as_deref()
                .map(|p| format!(" ({p})"))
                .unwrap_or_default()
        ),
    };
    let _ = writeln!(out, "{} {backup}", label("BACKUP"));
    for note in &status.notes {
        let _ = writeln!(out, "{} {note}", p.paint(Tone::Warn, "note:", 0));
    }
    out
}

fn round(value: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (value * scale).round() / scale
}

/// `0.84 ms`, `12.3 ms`, `1.25 s`.
fn latency(ms: f64) -> String {
    if ms >= 1000.0 {
        format!("{:.2} s", ms / 1000.0)
    } else if ms >= 10.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{ms:.2} ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_is_whole_hours_up_to_the_current_one() {
        let now = DateTime::parse_from_rfc3339("2026-05-08T12:34:56.789Z")
            .unwrap()
            .with_timezone(&Utc);
        let (since, until) = whole_hours(now, 7);
        assert_eq!(since.to_rfc3339(), "2026-05-01T13:00:00+00:00");
        assert_eq!(until.to_rfc3339(), "2026-05-08T13:00:00+00:00");
    }

    #[test]
    fn colours_pad_first_so_columns_stay_aligned() {
        let plain = Painter { colour: false };
        let colour = Painter { colour: true };
        assert_eq!(plain.paint(Tone::Good, "up", 5), "up   ");
        assert_eq!(colour.paint(Tone::Bad, "down", 6), "\x1b[31mdown  \x1b[0m");
        assert_eq!(latency(0.844), "0.84 ms");
        assert_eq!(latency(123.45), "123.5 ms");
        assert_eq!(latency(1250.0), "1.25 s");
    }
}
