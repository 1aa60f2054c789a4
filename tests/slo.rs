//! The SLO engine on constructed histories with known answers (written through the real writer into a real
//! SQLite file), rollups against raw checks, the rollup rebuild of older databases, the SLO and maintenance
//! routes over real HTTP, the `slo_*` gauges, and the burn-rate alert on the test clock.

// A test crate: an unwrap is an assertion, and tests/common sets a child's rlimit in `pre_exec`.
#![allow(clippy::unwrap_used)]

mod common;
#[path = "health_proxy/target_server.rs"]
#[allow(dead_code)]
mod target_server;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use hale::auth::Role;
use hale::breaker::BreakerState;
use hale::clock::ManualClock;
use hale::config::{Config, MaintenanceConfig};
use hale::kind::ServiceKind;
use hale::records::{CheckRecord, CheckSource, Outcome};
use hale::slo::{evaluate, SloLedger, SloMethod, SloStatus, SloWindow, TargetSlo};
use hale::store::writer::{CheckWriter, WriterHandle};
use hale::store::Store;
use reqwest::Method;
use serde_json::{json, Value};

use common::app::{spawn_app_with, spawn_app_with_clock};
use common::clock::Pacer;
use common::config::{target, TestConfig};
use common::db::count_rows;
use target_server::{Mode, TargetServer};

/// `names` as targets that are always down (checked every second on a port where nothing listens).
fn config_with(names: &[&str]) -> Config {
    TestConfig::new().down_targets(names).build()
}

fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
}

/// A store with a writer, to lay down a history of checks.
struct History {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    store: Store,
    writer: CheckWriter,
    handle: Option<WriterHandle>,
}

impl History {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hale.db");
        let store = Store::open(&path).await.unwrap();
        let (writer, handle) = hale::store::writer::spawn(
            store.clone(),
            hale::store::writer::WriterSettings {
                flush_interval: Duration::from_millis(20),
                batch_size: 5_000,
                settle_interval: std::time::Duration::ZERO,
            },
            hale::metrics::WriterMetrics::register(&prometheus::Registry::new()),
        );
        Self {
            _dir: dir,
            path,
            store,
            writer,
            handle: Some(handle),
        }
    }

    async fn check(
        &self,
        service: &str,
        at: DateTime<Utc>,
        outcome: Outcome,
        latency_ms: Option<u64>,
        source: CheckSource,
    ) {
        self.writer
            .submit(CheckRecord {
                checked_at: at,
                service: Arc::from(service),
                outcome,
                http_status: None,
                latency: latency_ms.map(Duration::from_millis),
                error: None,
                breaker_state: BreakerState::Closed,
                source,
            })
            .await
            .unwrap();
    }

    async fn scheduled(&self, service: &str, at: DateTime<Utc>, up: bool, latency_ms: u64) {
        let outcome = if up { Outcome::Up } else { Outcome::Down };
        self.check(service, at, outcome, Some(latency_ms), CheckSource::Monitor)
            .await;
    }

    /// Waits until everything submitted is written.
    async fn flush(&mut self) {
        if let Some(handle) = self.handle.take() {
            handle.shutdown().await;
        }
    }

    async fn sql(&self, statement: &str) {
        let options = sqlx::sqlite::SqliteConnectOptions::new().filename(&self.path);
        let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
        sqlx::query(statement).execute(&pool).await.unwrap();
        pool.close().await;
    }
}

/// Every target's SLOs over the configured window ending at `t`, counted afresh from the database: what the
/// ledger must equal.
async fn evaluate_at(store: &Store, config: &Config, t: DateTime<Utc>) -> Vec<TargetSlo> {
    evaluate(
        store,
        config,
        &SloWindow::last_days(config.slo.window_days, t),
        None,
        false,
    )
    .await
    .unwrap()
}

async fn one(
    store: &Store,
    config: &Config,
    window: &SloWindow,
    name: &str,
    exact: bool,
) -> TargetSlo {
    let mut results = evaluate(store, config, window, Some(name), exact)
        .await
        .unwrap();
    assert_eq!(results.len(), 1);
    results.pop().unwrap()
}

fn close(a: f64, b: f64, tolerance: f64) -> bool {
    (a - b).abs() <= tolerance * b.abs().max(1e-12)
}

#[tokio::test]
async fn availability_latency_budget_and_burn_rates_have_known_answers() {
    let now = at(2026, 3, 2, 0, 0, 0);
    let mut history = History::new().await;
    // 1000 checks, one a minute, ending one minute before now. api: the last 5 are down, the last 60 (6%)
    // take 300 ms. db: 10 down spread out, 40 (4%) take 300 ms.
    for i in 0..1000u32 {
        let t = now - chrono::Duration::minutes(1000 - i64::from(i));
        history
            .scheduled("api", t, i < 995, if i >= 940 { 300 } else { 100 })
            .await;
        history
            .scheduled("db", t, i % 100 != 7, if i % 25 == 3 { 300 } else { 100 })
            .await;
    }
    // On-demand checks count nowhere.
    for i in 0..50 {
        history
            .check(
                "api",
                now - chrono::Duration::minutes(i),
                Outcome::Down,
                Some(900),
                CheckSource::OnDemand,
            )
            .await;
    }
    history.flush().await;
    let config = config_with(&["api", "db"]);
    let window = SloWindow::parse("1d", now, 90).unwrap();

    for exact in [false, true] {
        let api = one(&history.store, &config, &window, "api", exact).await;
        assert_eq!(
            api.method,
            if exact {
                SloMethod::Exact
            } else {
                SloMethod::Rollups
            }
        );
        assert_eq!((api.availability.good, api.availability.valid), (995, 1000));
        assert_eq!(api.availability.ratio, Some(0.995));
        assert_eq!(api.availability.excluded, 0);
        // Exactly on target: not breached, but no budget is left.
        assert_eq!(api.availability.status, SloStatus::AtRisk);
        assert!(close(api.error_budget.allowed_bad, 5.0, 1e-9));
        assert_eq!(api.error_budget.consumed_bad, 5);
        assert!(api.error_budget.remaining_ratio.unwrap().abs() < 1e-9);
        let burn = &api.error_budget.burn_rates;
        assert!(
            close(burn.h1.unwrap(), 5.0 / 60.0 / 0.005, 1e-9),
            "{burn:?}"
        );
        assert!(
            close(burn.h6.unwrap(), 5.0 / 360.0 / 0.005, 1e-9),
            "{burn:?}"
        );
        assert!(close(burn.d1.unwrap(), 1.0, 1e-9), "{burn:?}");
        assert!(close(burn.window.unwrap(), 1.0, 1e-9), "{burn:?}");
        // The 950th of 1000 latencies is one of the 300 ms ones.
        assert!(
            close(api.latency.p95_ms.unwrap(), 300.0, 0.01),
            "{:?}",
            api.latency
        );
        assert_eq!(api.latency.under_target_ratio, Some(0.94));
        assert_eq!(api.latency.measured, 1000);
        assert_eq!(api.latency.status, SloStatus::Breached);
        assert_eq!(api.status, SloStatus::Breached);

        let db = one(&history.store, &config, &window, "db", exact).await;
        assert_eq!((db.availability.good, db.availability.valid), (990, 1000));
        assert_eq!(db.availability.status, SloStatus::Breached);
        assert!(close(db.error_budget.remaining_ratio.unwrap(), -1.0, 1e-9));
        assert!(
            close(db.latency.p95_ms.unwrap(), 100.0, 0.01),
            "{:?}",
            db.latency
        );
        assert_eq!(db.latency.under_target_ratio, Some(0.96));
        assert_eq!(db.latency.status, SloStatus::Met);
        assert_eq!(db.restarts.status, SloStatus::Met);
    }
    let all = evaluate(&history.store, &config, &window, None, false)
        .await
        .unwrap();
    let names: Vec<&str> = all.iter().map(|s| s.target.as_str()).collect();
    assert_eq!(names, ["api", "db"]);
    assert_eq!(
        evaluate(&history.store, &config, &window, Some("nope"), false)
            .await
            .unwrap_err()
            .to_string(),
        r#"no target named "nope""#
    );
}

#[tokio::test]
async fn maintenance_drops_whole_hours_and_cuts_partial_ones() {
    let now = at(2026, 3, 2, 0, 0, 0);
    let mut history = History::new().await;
    let api_maint = (
        now - chrono::Duration::hours(4),
        now - chrono::Duration::minutes(150),
    );
    let all_maint = (
        now - chrono::Duration::minutes(310),
        now - chrono::Duration::hours(5),
    );
    let inside = |t: DateTime<Utc>, (s, e): (DateTime<Utc>, DateTime<Utc>)| s <= t && t < e;
    // A check a minute for 6 hours: down exactly inside the maintenance windows.
    for i in 0..360 {
        let t = now - chrono::Duration::hours(6) + chrono::Duration::minutes(i);
        let down = inside(t, api_maint) || inside(t, all_maint);
        history.scheduled("api", t, !down, 50).await;
        history.scheduled("db", t, !down, 50).await;
    }
    history.flush().await;
    let mut config = config_with(&["api", "db"]);
    config.slo.maintenance = vec![MaintenanceConfig {
        target: Some("api".to_owned()),
        starts_at: api_maint.0,
        ends_at: api_maint.1,
        reason: "database upgrade".to_owned(),
    }];
    history
        .store
        .insert_maintenance(None, all_maint.0, all_maint.1, "network work", now)
        .await
        .unwrap();
    let window = SloWindow::parse("6h", now, 90).unwrap();
    for exact in [false, true] {
        let api = one(&history.store, &config, &window, "api", exact).await;
        assert_eq!(api.availability.excluded, 100, "exact={exact}");
        assert_eq!(api.availability.valid, 260);
        assert_eq!(api.availability.good, 260);
        assert_eq!(api.availability.status, SloStatus::Met);
        // db only has the window for every target.
        let db = one(&history.store, &config, &window, "db", exact).await;
        assert_eq!(db.availability.excluded, 10);
        assert_eq!((db.availability.good, db.availability.valid), (260, 350));
    }
}

#[tokio::test]
async fn window_edges_on_demand_checks_and_restarts() {
    let now = at(2026, 3, 2, 12, 30, 0);
    let mut history = History::new().await;
    let from = now - chrono::Duration::hours(1);
    history.scheduled("api", from, false, 10).await; // at `from`: counts
    history
        .scheduled("api", from - chrono::Duration::milliseconds(1), false, 10)
        .await; // before: not
    history
        .scheduled("api", from + chrono::Duration::minutes(15), true, 10)
        .await;
    history.scheduled("api", now, false, 10).await; // at `until`: not
    history
        .check(
            "api",
            from + chrono::Duration::minutes(30),
            Outcome::Timeout,
            None,
            CheckSource::OnDemand,
        )
        .await;
    history.flush().await;
    // The rollup of 11:00 holds the three scheduled checks of that hour, not the on-demand one.
    let rollups = history
        .store
        .hourly_rollups("api", at(2026, 3, 2, 11, 0, 0), at(2026, 3, 2, 12, 0, 0))
        .await
        .unwrap();
    assert_eq!((rollups[0].total, rollups[0].good), (3, 1));

    // Restarts: 3 this week (child restarts and a heal command), one older and one of a start.
    for (cause, days_ago) in [("exited", 1), ("heal", 2), ("exited", 9), ("start", 1)] {
        history
            .sql(&format!(
                "INSERT INTO child_runs (target, pid, started_at_ms, cause) VALUES ('api', 1, {}, '{cause}')",
                (now - chrono::Duration::days(days_ago)).timestamp_millis()
            ))
            .await;
    }
    history
        .sql(&format!(
            "INSERT INTO heal_events (target, trigger, action, started_at_ms, finished_at_ms, outcome)
             VALUES ('api', 'automatic', 'command', {0}, {0}, 'healed')",
            (now - chrono::Duration::days(3)).timestamp_millis()
        ))
        .await;
    let config = config_with(&["api"]);
    let window = SloWindow::parse("1h", now, 90).unwrap();
    for exact in [false, true] {
        let api = one(&history.store, &config, &window, "api", exact).await;
        assert_eq!(
            (api.availability.good, api.availability.valid),
            (1, 2),
            "exact={exact}"
        );
        assert_eq!(api.latency.measured, 2);
        assert_eq!(api.restarts.count, 0, "no restart in the last hour");
    }
    let week = one(
        &history.store,
        &config,
        &SloWindow::last_days(7, now),
        "api",
        false,
    )
    .await;
    assert_eq!(week.restarts.count, 3);
    assert_eq!(week.restarts.max_per_week, 3);
    assert_eq!(
        week.restarts.status,
        SloStatus::Breached,
        "fewer than 3 is the objective"
    );
}

/// A small deterministic generator (no seeded RNG crate needed).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
}

#[tokio::test]
async fn rollups_and_raw_checks_agree_on_a_generated_history() {
    // Not on an hour: both edges of the window cut an hour, so both methods meet raw checks there.
    let now = at(2026, 3, 2, 17, 23, 45);
    let mut history = History::new().await;
    let mut rng = Lcg(42);
    let names = ["api", "db", "web"];
    for (n, name) in names.iter().enumerate() {
        let mut t = now - chrono::Duration::days(2) - chrono::Duration::minutes(7);
        while t < now {
            let roll = rng.next() % 1000;
            let outcome = match roll {
                0..=9 => Outcome::Down,
                10..=12 => Outcome::Timeout,
                13 => Outcome::CircuitOpen,
                _ => Outcome::Up,
            };
            let latency = (outcome != Outcome::CircuitOpen).then(|| {
                20 + rng.next() % (150 + 100 * n as u64)
                    + u64::from(rng.next().is_multiple_of(20)) * 400
            });
            history
                .check(name, t, outcome, latency, CheckSource::Monitor)
                .await;
            t += chrono::Duration::seconds(10);
        }
    }
    history.flush().await;
    let mut config = config_with(&names);
    config.slo.maintenance = vec![MaintenanceConfig {
        target: Some("db".to_owned()),
        starts_at: now - chrono::Duration::minutes(1_000),
        ends_at: now - chrono::Duration::minutes(777),
        reason: "move".to_owned(),
    }];
    let window = SloWindow::parse("2d", now, 90).unwrap();
    for name in names {
        let rolled = one(&history.store, &config, &window, name, false).await;
        let exact = one(&history.store, &config, &window, name, true).await;
        assert_eq!(rolled.availability, exact.availability, "{name}");
        assert!(rolled.availability.valid > 15_000, "{name}");
        assert_eq!(
            rolled.error_budget.burn_rates,
            exact.error_budget.burn_rates
        );
        assert_eq!(rolled.latency.measured, exact.latency.measured);
        let (p_r, p_e) = (
            rolled.latency.p95_ms.unwrap(),
            exact.latency.p95_ms.unwrap(),
        );
        assert!(
            close(p_r, p_e, 0.01),
            "{name}: rollups {p_r} ms, exact {p_e} ms"
        );
        // The share under target and the p95 agree within each method.
        for slo in [&rolled, &exact] {
            assert_eq!(
                slo.latency.p95_ms.unwrap() <= slo.latency.target_ms as f64,
                slo.latency.under_target_ratio.unwrap() >= 0.95,
                "{name}: {:?}",
                slo.latency
            );
        }
    }
    let db = one(&history.store, &config, &window, "db", false).await;
    assert!(db.availability.excluded > 1_300, "{:?}", db.availability);
}

#[tokio::test]
async fn an_older_database_gets_on_demand_checks_out_of_its_rollups_on_open() {
    let now = at(2026, 3, 2, 12, 0, 0);
    let mut history = History::new().await;
    for i in 0..30 {
        let t = now + chrono::Duration::minutes(i * 4);
        history.scheduled("api", t, true, 10).await;
        history
            .check("api", t, Outcome::Down, Some(10), CheckSource::OnDemand)
            .await;
    }
    history.flush().await;
    history.store.close().await;
    // What an older hale wrote: on-demand checks rolled up too, and an old hour whose raw checks are gone.
    history
        .sql("UPDATE health_check_hourly SET total = total * 2")
        .await;
    let old_hour = (now - chrono::Duration::days(60)).timestamp_millis();
    history
        .sql(&format!(
            "INSERT INTO health_check_hourly VALUES ('api', {old_hour}, 7, 6, 70, 10, x'')"
        ))
        .await;
    history.sql("DELETE FROM hale_meta").await;
    let store = Store::open(&history.path).await.unwrap();
    let rollups = store
        .hourly_rollups(
            "api",
            now - chrono::Duration::days(90),
            now + chrono::Duration::days(1),
        )
        .await
        .unwrap();
    let counts: Vec<(u64, u64)> = rollups.iter().map(|r| (r.total, r.good)).collect();
    assert_eq!(counts, [(7, 6), (15, 15), (15, 15)]);
    assert_eq!(
        count_rows(&history.path, "hale_meta", "key = 'rollups_scheduled_only'").await,
        1
    );
    store.close().await;
}

const READ: &str = "slo-read-token-aaaaaaaaaaaaaaaa";
const OPERATE: &str = "slo-operate-token-bbbbbbbbbbbbbbbb";
const ADMIN: &str = "slo-admin-token-cccccccccccccccccccc";

/// POSTs a maintenance window with `token`: (status, body).
async fn post_maintenance(app: &common::app::TestApp, token: &str, body: &Value) -> (u16, Value) {
    let res = app
        .request(Method::POST, ServiceKind::HealthProxy, "/maintenance")
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json::<Value>().await.unwrap_or(Value::Null))
}

/// A config with read, operate and admin tokens (from env vars named after `prefix`) and `names` targets.
fn config_with_tokens(prefix: &str, names: &[&str]) -> Config {
    TestConfig::new()
        .down_targets(names)
        .tokens(prefix, READ, OPERATE, ADMIN)
        .build()
}

/// Issue 16: a window posted now may not rewrite history. It must end in the future and start within the
/// grace, unless retroactive (admin only); years out of 2000..=2100 and NUL bytes are refused, naming the
/// field; open windows are capped, even against concurrent posts; the list pages.
#[tokio::test]
async fn a_posted_maintenance_window_cannot_rewrite_history_unless_an_admin_says_so() {
    let mut config = config_with_tokens("SLO_HISTORY", &["api"]);
    config.slo.max_open_maintenance = 5;
    let app = spawn_app_with(config).await;
    let now = Utc::now();
    let window = |start_min: i64, end_min: i64| {
        json!({
            "starts_at": (now + chrono::Duration::minutes(start_min)).to_rfc3339(),
            "ends_at": (now + chrono::Duration::minutes(end_min)).to_rfc3339(),
            "reason": "nothing to see"
        })
    };
    let refused = |body: Value, field: &'static str, fragment: &'static str| {
        let app = &app;
        async move {
            let (status, answer) = post_maintenance(app, OPERATE, &body).await;
            assert_eq!(status, 422, "{body}: {answer}");
            let message = answer["error"]["message"].as_str().unwrap().to_owned();
            assert!(
                message.starts_with(&format!("{field}: ")) && message.contains(fragment),
                "{body}: {message}"
            );
        }
    };
    // The issue's backdated window: an hour ago to a minute from now, every target.
    refused(
        window(-60, 1),
        "starts_at",
        "is more than 15 minutes in the past: declare \"retroactive\": true (admin role)",
    )
    .await;
    refused(window(-120, -60), "ends_at", "is not in the future").await;
    refused(window(-10, 0), "ends_at", "is not in the future").await;
    for (field, raw, fragment) in [
        (
            "starts_at",
            "1900-01-01T00:00:00Z",
            "year 1900 is outside 2000..=2100",
        ),
        (
            "ends_at",
            "9999-01-01T00:00:00Z",
            "year 9999 is outside 2000..=2100",
        ),
        (
            "starts_at",
            "-9999-01-01T00:00:00Z",
            "is not an RFC 3339 time",
        ),
    ] {
        let mut body = window(1, 60);
        body[field] = json!(raw);
        refused(body, field, fragment).await;
    }
    let mut body = window(1, 60);
    body["reason"] = json!("nothing\u{0}to see");
    refused(body, "reason", "contains a NUL byte").await;
    let mut body = window(1, 60);
    body["target"] = json!("api\u{0}");
    refused(body, "target", "contains a NUL byte").await;

    // Retroactive: operate is refused with a clear 403, admin may.
    let mut retro = window(-60, 1);
    retro["retroactive"] = json!(true);
    let (status, answer) = post_maintenance(&app, OPERATE, &retro).await;
    assert_eq!(status, 403, "{answer}");
    assert_eq!(
        answer["error"]["message"],
        "retroactive: a retroactive maintenance window needs the admin role; this token grants operate"
    );
    let (status, created) = post_maintenance(&app, ADMIN, &retro).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["retroactive"], true, "{created}");
    // Within the grace needs nothing more than operate.
    let (status, created) = post_maintenance(&app, OPERATE, &window(-14, 30)).await;
    assert_eq!(
        (status, created["retroactive"].clone()),
        (201, json!(false))
    );
    assert_eq!(
        count_rows(&app.db_path, "maintenance_windows", "1").await,
        2
    );
    // Refused and done posts are all in the audit log, with the role that asked.
    common::eventually("the audit rows", || async {
        let rows = count_rows(&app.db_path, "audit_log", "route = '/maintenance'").await;
        (rows == 11).then_some(())
    })
    .await;
    assert_eq!(
        count_rows(
            &app.db_path,
            "audit_log",
            "route = '/maintenance' AND role = 'admin' AND status = 201"
        )
        .await,
        1
    );
    assert_eq!(
        count_rows(
            &app.db_path,
            "audit_log",
            "route = '/maintenance' AND role = 'operate' AND status = 403"
        )
        .await,
        1
    );

    // The cap: 5 open windows, 2 stored; 20 concurrent posts add exactly 3.
    let posts = (0..20).map(|i| {
        let body = window(10 + i, 100 + i);
        let app = &app;
        async move { post_maintenance(app, OPERATE, &body).await }
    });
    let answers = futures_util::future::join_all(posts).await;
    let created = answers.iter().filter(|(s, _)| *s == 201).count();
    assert_eq!(created, 3, "{answers:?}");
    for (status, answer) in answers.iter().filter(|(s, _)| *s != 201) {
        assert_eq!(*status, 422, "{answer}");
        assert_eq!(
            answer["error"]["message"],
            "maintenance: 5 windows have not ended yet, the limit slo.max_open_maintenance is 5: wait for one to end or raise the limit"
        );
    }
    assert_eq!(
        count_rows(&app.db_path, "maintenance_windows", "1").await,
        5
    );

    // The list pages by start time: 2 + 2 + 1.
    let mut seen = Vec::new();
    for offset in [0, 2, 4] {
        let (status, page) = app
            .get_json(
                ServiceKind::HealthProxy,
                &format!("/maintenance?limit=2&offset={offset}"),
            )
            .await;
        assert_eq!(status, 200, "{page}");
        seen.extend(
            page.as_array()
                .unwrap()
                .iter()
                .map(|w| w["id"].as_i64().unwrap()),
        );
    }
    assert_eq!(seen.len(), 5, "{seen:?}");
    let mut unique = seen.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), 5, "no window twice: {seen:?}");
    let (_, first) = app
        .get_json(ServiceKind::HealthProxy, "/maintenance?limit=1")
        .await;
    assert_eq!(first[0]["retroactive"], true, "{first}");
    let (status, body) = app
        .get_json(ServiceKind::HealthProxy, "/maintenance?limit=0")
        .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = app
        .get_json(ServiceKind::HealthProxy, "/maintenance?offset=-1")
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["error"]["message"],
        r#"offset: "-1" is not a number from 0 to 100000"#
    );
}

#[tokio::test]
async fn slo_pages_with_limit_and_offset_and_sends_each_page_gzipped_and_tagged() {
    let config = TestConfig::new()
        .down_targets(&["a", "b", "c", "d"])
        .build();
    let app = spawn_app_with(config).await;
    let hp = ServiceKind::HealthProxy;
    let get = |path: &'static str| {
        let res = app.get(hp, path);
        async move {
            let res = res.await;
            let status = res.status().as_u16();
            let total = res
                .headers()
                .get("x-total-count")
                .map(|v| v.to_str().unwrap().to_owned());
            let link = res
                .headers()
                .get("link")
                .map(|v| v.to_str().unwrap().to_owned());
            (
                status,
                total,
                link,
                res.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    let names = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|t| t["target"].as_str().unwrap().to_owned())
            .collect()
    };
    // Under the default limit: every target, no next page.
    let (status, total, link, all) = get("/slo").await;
    assert_eq!(
        (status, total.as_deref(), link),
        (200, Some("4"), None),
        "{all}"
    );
    assert_eq!(names(&all), ["a", "b", "c", "d"]);
    let (status, total, link, page) = get("/slo?limit=2&offset=1").await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(names(&page), ["b", "c"]);
    assert_eq!(total.as_deref(), Some("4"));
    assert_eq!(
        link.as_deref(),
        Some(r#"</slo?limit=2&offset=3>; rel="next""#)
    );
    let (_, _, link, last) = get("/slo?limit=2&offset=3").await;
    assert_eq!((names(&last), link), (vec!["d".to_owned()], None));
    let (status, total, _, past) = get("/slo?offset=9").await;
    assert_eq!(
        (status, total.as_deref(), past),
        (200, Some("4"), json!([]))
    );
    for (query, message) in [
        ("limit=0", r#"limit: "0" is not a number from 1 to 1000"#),
        (
            "limit=1001",
            r#"limit: "1001" is not a number from 1 to 1000"#,
        ),
        (
            "offset=-1",
            r#"offset: "-1" is not a number from 0 to 1000000"#,
        ),
        (
            "offset=x",
            r#"offset: "x" is not a number from 0 to 1000000"#,
        ),
    ] {
        let (status, body) = app.get_json(hp, &format!("/slo?{query}")).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["error"]["message"], message, "{body}");
    }
    // Once the refresher's pass is kept: gzip when accepted, 304 for the current tag.
    let body = app.check_kept_body(hp, "/slo?limit=2&offset=1").await;
    let page: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(names(&page), ["b", "c"]);
    app.check_kept_body(hp, "/slo").await;
}

#[tokio::test]
async fn slo_and_maintenance_routes_answer_over_http() {
    let mut config = TestConfig::new()
        .down_targets(&["api"])
        .token(Role::Read, "SLO_TEST_READ", READ)
        .token(Role::Operate, "SLO_TEST_OPERATE", OPERATE)
        .build();
    let starts = Utc::now() - chrono::Duration::hours(1);
    config.slo.maintenance = vec![MaintenanceConfig {
        target: None,
        starts_at: starts,
        ends_at: starts + chrono::Duration::hours(3),
        reason: "planned".to_owned(),
    }];
    let app = spawn_app_with(config).await;
    let hp = ServiceKind::HealthProxy;

    let (status, all) = app.get_json(hp, "/slo").await;
    assert_eq!(status, 200, "{all}");
    assert_eq!(all[0]["target"], "api");
    assert_eq!(all[0]["window"]["label"], "7d");
    let (status, one) = app.get_json(hp, "/slo/api?window=1h").await;
    assert_eq!(status, 200, "{one}");
    assert_eq!(one["window"]["label"], "1h");
    assert_eq!(one["method"], "rollups");
    let (status, one) = app.get_json(hp, "/slo/api?window=2d&exact=true").await;
    assert_eq!((status, one["method"].clone()), (200, json!("exact")));
    for (query, message) in [
        (
            "window=8x",
            r#"window: "8x" is not a duration like 1h or 7d"#,
        ),
        (
            "window=401d",
            r#"window: "401d" is longer than the rollup retention of 400 days"#,
        ),
        ("exact=yes", r#"exact: "yes" is not true or false"#),
    ] {
        let (status, body) = app.get_json(hp, &format!("/slo/api?{query}")).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["error"]["message"], message, "{body}");
    }
    let (status, body) = app.get_json(hp, "/slo/nope").await;
    assert_eq!(status, 404, "{body}");

    let post = |token: Option<&'static str>, body: Value| {
        let mut req = app.request(Method::POST, hp, "/maintenance").json(&body);
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        async move {
            let res = req.send().await.unwrap();
            let status = res.status().as_u16();
            (status, res.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let t0 = Utc::now() + chrono::Duration::hours(1);
    let good = json!({
        "target": "api",
        "starts_at": t0.to_rfc3339(),
        "ends_at": (t0 + chrono::Duration::hours(2)).to_rfc3339(),
        "reason": "kernel update"
    });
    assert_eq!(post(None, good.clone()).await.0, 401);
    assert_eq!(post(Some(READ), good.clone()).await.0, 403);
    let (status, created) = post(Some(OPERATE), good.clone()).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["source"], "api");
    assert_eq!(created["target"], "api");
    assert!(created["id"].as_i64().is_some(), "{created}");
    let bad = |change: Value| {
        let mut body = good.clone();
        for (k, v) in change.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    for (body, message) in [
        (
            bad(json!({"ends_at": (t0 - chrono::Duration::minutes(1)).to_rfc3339()})),
            "ends_at: ",
        ),
        (
            bad(json!({"target": "nope"})),
            r#"target: "nope" is not a configured target"#,
        ),
        (
            bad(json!({"ends_at": (t0 + chrono::Duration::days(31)).to_rfc3339()})),
            "ends_at: the window is longer than 30 days",
        ),
        (
            bad(json!({"reason": "x".repeat(501)})),
            "reason: 501 characters is longer than 500",
        ),
        (
            bad(json!({"starts_at": "tomorrow"})),
            r#"starts_at: "tomorrow" is not an RFC 3339 time"#,
        ),
    ] {
        let (status, answer) = post(Some(OPERATE), body).await;
        assert_eq!(status, 422, "{answer}");
        assert_eq!(answer["error"]["code"], "unprocessable", "{answer}");
        let got = answer["error"]["message"].as_str().unwrap();
        assert!(got.starts_with(message), "{got}");
    }

    let (status, listed) = app.get_json(hp, "/maintenance").await;
    assert_eq!(status, 200, "{listed}");
    let sources: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["source"].as_str().unwrap())
        .collect();
    assert_eq!(sources, ["config", "api"], "{listed}");
    let (_, active) = app.get_json(hp, "/maintenance?active=true").await;
    assert_eq!(active.as_array().unwrap().len(), 1, "{active}");
    assert_eq!(active[0]["source"], "config");

    // The refresher ran at start: maintenance covers api (and only api) now.
    common::eventually("the maintenance gauge", || async {
        let text = app.metrics(hp).await;
        (common::prom::sample_value(&text, "maintenance_active_targets", &[]) == Some(1.0))
            .then_some(())
    })
    .await;
}

/// `api` checked every second on `server`, auto-heal off: the burn-rate tests' target. The pacer waits for
/// each check's row, so rows are flushed every 10 ms: the clock moves far faster than real time here.
fn burn_config(server: &TargetServer) -> TestConfig {
    TestConfig::new()
        .target(target("api", &server.url()).every_second())
        .heal(|heal| heal.enabled = false)
        .flush_every_ms(10)
}

/// Moves the clock a second at a time, each second waiting for api's scheduled check and its row.
fn pacer(app: &common::app::TestApp, clock: &ManualClock) -> Pacer {
    Pacer::for_app(app, clock).checks_of(&["api"])
}

#[tokio::test]
async fn the_gauges_follow_the_checks_and_the_fast_burn_alert_fires_and_resolves() {
    let server = TargetServer::start(Mode::Healthy).await;
    let config = burn_config(&server).build();
    let clock = ManualClock::new(at(2026, 11, 26, 12, 0, 0));
    let app = spawn_app_with_clock(config, Arc::new(clock.clone())).await;
    let mut pace = pacer(&app, &clock);
    let hp = ServiceKind::HealthProxy;
    let fast = "rule = 'slo_fast_burn' AND target = 'api' AND level = 'critical'";

    pace.advance_s(60).await;
    server.set(Mode::Failing);
    pace.advance_s(200).await;
    assert_eq!(
        count_rows(&app.db_path, "alerts", fast).await,
        0,
        "the short window is not covered yet"
    );
    // Covered from 300 s on; both windows then burn too fast, and the alert fires once that lasted the
    // burn-rate table's 2 minutes.
    pace.advance_s(150).await;
    assert_eq!(
        count_rows(&app.db_path, "alerts", fast).await,
        0,
        "burning for less than 2 minutes"
    );
    pace.advance_s(120).await;
    common::eventually("the fast burn alert", || async {
        (count_rows(
            &app.db_path,
            "alerts",
            &format!("{fast} AND state = 'firing'"),
        )
        .await
            == 1)
            .then_some(())
    })
    .await;
    // The refresher (every 60 s on the clock) saw the failures.
    let text = app.metrics(hp).await;
    assert_eq!(
        common::prom::sample_value(&text, "slo_budget_exhausted_targets", &[]),
        Some(1.0),
        "api's availability budget is spent"
    );

    server.set(Mode::Healthy);
    pace.advance_s(60).await;
    assert_eq!(
        count_rows(
            &app.db_path,
            "alerts",
            &format!("{fast} AND state = 'firing'")
        )
        .await,
        1,
        "the last 5 minutes still burn too fast"
    );
    pace.advance_s(300).await;
    common::eventually("the fast burn alert resolved", || async {
        (count_rows(
            &app.db_path,
            "alerts",
            &format!("{fast} AND state = 'resolved'"),
        )
        .await
            == 1)
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn failures_inside_a_maintenance_window_burn_no_budget_and_page_nobody() {
    let server = TargetServer::start(Mode::Healthy).await;
    let config = burn_config(&server)
        .slo(|slo| {
            slo.maintenance = vec![MaintenanceConfig {
                target: Some("api".into()),
                starts_at: at(2026, 11, 26, 12, 0, 30),
                ends_at: at(2026, 11, 26, 13, 0, 0),
                reason: "database upgrade".into(),
            }];
        })
        .build();
    let clock = ManualClock::new(at(2026, 11, 26, 12, 0, 0));
    let app = spawn_app_with_clock(config, Arc::new(clock.clone())).await;
    let mut pace = pacer(&app, &clock);
    // The same outage as in the test above, which pages after 410 s: here it is planned.
    pace.advance_s(60).await;
    server.set(Mode::Failing);
    pace.advance_s(600).await;
    common::eventually("the outage seen", || async {
        // A failed check made 10 minutes in: where the same outage unplanned has paged twice over.
        let late = at(2026, 11, 26, 12, 10, 0).timestamp_millis();
        (common::db::count_check_rows(
            &app.db_path,
            &format!("service = 'api' AND outcome != 'up' AND checked_at_ms >= {late}"),
        )
        .await
            >= 1)
            .then_some(())
    })
    .await;
    assert_eq!(
        count_rows(&app.db_path, "alerts", "rule LIKE 'slo_%_burn'").await,
        0,
        "checks in a maintenance window burn no error budget"
    );
    assert_eq!(
        count_rows(&app.db_path, "alerts", "target = 'api'").await,
        0,
        "nor do they fire the target's own rules"
    );
}

/// A target failing one scheduled check in 20 (5 %) burns a 99.5 % budget 10 times too fast: above the
/// burn-rate table's 3.36 for the 1h/5m pair at the default 7-day window, so hale's own `slo_fast_burn`
/// pages, as the exported Prometheus rule does (`tests/rules/hale-slo-rules.test.yml`). With the 30-day
/// 14.4 it never did.
#[tokio::test]
async fn a_five_percent_error_rate_pages_from_hales_own_fast_burn_alert() {
    let server = TargetServer::start(Mode::Healthy).await;
    let config = burn_config(&server).build();
    let clock = ManualClock::new(at(2026, 11, 26, 12, 0, 0));
    let app = spawn_app_with_clock(config, Arc::new(clock.clone())).await;
    let mut pace = pacer(&app, &clock);
    let fast = "rule = 'slo_fast_burn' AND target = 'api' AND level = 'critical'";
    for second in 0..600u64 {
        server.set(if second % 20 == 10 {
            Mode::Failing
        } else {
            Mode::Healthy
        });
        pace.advance_s(1).await;
    }
    server.set(Mode::Healthy);
    let bad =
        common::db::count_check_rows(&app.db_path, "service = 'api' AND outcome != 'up'").await;
    let all = common::db::count_check_rows(&app.db_path, "service = 'api'").await;
    assert!(
        (0.03..0.08).contains(&(bad as f64 / all as f64)),
        "{bad} of {all} checks failed"
    );
    common::eventually("the fast burn alert", || async {
        (count_rows(
            &app.db_path,
            "alerts",
            &format!("{fast} AND state = 'firing'"),
        )
        .await
            == 1)
            .then_some(())
    })
    .await;
}

/// Lays down 3.5 days of checks every 2 minutes for three targets: failures, varied latencies, checks an
/// open breaker skipped (no latency), a config maintenance window cutting hours of `a`, one for every
/// target, and a stored retroactive window of `c`. Returns the config (2-day window) and the history.
async fn ledger_history(start: DateTime<Utc>) -> (Config, History) {
    let mut history = History::new().await;
    for i in 0..2_520i64 {
        let t = start + chrono::Duration::seconds(i * 120 + (i % 5) * 7);
        history
            .scheduled("a", t, i % 13 != 0, 20 + (i * 37 % 400) as u64)
            .await;
        history
            .scheduled("b", t, i % 50 >= 5, 5 + (i * 91 % 900) as u64)
            .await;
        if i % 17 == 0 {
            history
                .check("c", t, Outcome::CircuitOpen, None, CheckSource::Monitor)
                .await;
        } else {
            history.scheduled("c", t, i % 3 != 0, 150).await;
        }
        // On-demand checks count nowhere.
        if i % 11 == 0 {
            history
                .check("b", t, Outcome::Down, Some(5_000), CheckSource::OnDemand)
                .await;
        }
    }
    history.flush().await;
    let mut config = config_with(&["a", "b", "c"]);
    config.slo.window_days = 2;
    let day = chrono::Duration::days(1);
    config.slo.maintenance = vec![
        MaintenanceConfig {
            target: Some("a".to_owned()),
            starts_at: start + day * 2 + chrono::Duration::minutes(620),
            ends_at: start + day * 2 + chrono::Duration::minutes(820),
            reason: "cuts hours of a".to_owned(),
        },
        MaintenanceConfig {
            target: None,
            starts_at: start + chrono::Duration::minutes(1_450),
            ends_at: start + chrono::Duration::minutes(1_570),
            reason: "every target, at the window's start".to_owned(),
        },
    ];
    history
        .store
        .insert_maintenance_capped(
            hale::store::maintenance::NewWindow {
                target: Some("c"),
                starts_at: start + chrono::Duration::minutes(1_300),
                ends_at: start + chrono::Duration::minutes(1_333),
                reason: "written off",
                retroactive: true,
                created_at: start + day * 3,
            },
            100,
        )
        .await
        .unwrap();
    (config, history)
}

#[tokio::test]
async fn the_ledger_equals_evaluate_at_every_step_across_hours_and_maintenance() {
    let start = at(2026, 3, 1, 0, 0, 0);
    let (config, history) = ledger_history(start).await;
    let store = &history.store;
    let mut ledger = SloLedger::new(&config);
    // From 2 days in (the window's start at the history's) to 3.4 days, in uneven steps: some within an
    // hour, some across one, one longer than an hour (evaluated afresh), and one step back.
    let mut t = start + chrono::Duration::days(2) + chrono::Duration::seconds(17);
    let steps_s = [
        1, 59, 120, 600, 3_599, 3_601, 7_200, 900, 45, 1_799, 61, 2_400, 3_000,
    ];
    let mut compared = 0;
    let mut rebuilt_after_first = 0;
    for round in 0..12 {
        for (k, step) in steps_s.iter().enumerate() {
            let step = if round == 1 && k == 7 { -300 } else { *step };
            if t > start + chrono::Duration::hours(80) {
                break;
            }
            t += chrono::Duration::seconds(step);
            let (got, stats) = ledger.advance(store, &config, t).await.unwrap();
            let want = evaluate_at(store, &config, t).await;
            assert_eq!(got, want, "at {t} (round {round}, step {step} s)");
            if compared > 0 && step > 0 && step <= 3_600 {
                rebuilt_after_first += stats.rebuilt;
                assert_eq!(stats.advanced, 3, "at {t}: {stats:?}");
            }
            compared += 1;
        }
    }
    assert!(compared > 40, "{compared}");
    assert_eq!(rebuilt_after_first, 0, "short steps never evaluate afresh");
    // The history is not trivial: each case shows up.
    let last = ledger.advance(store, &config, t).await.unwrap().0;
    assert!(
        last.iter().all(|s| s.availability.valid > 1_000),
        "{last:?}"
    );
    assert!(last[1].availability.good < last[1].availability.valid);
    assert!(last[0].error_budget.burn_rates.h1.is_some());
}

/// The ledger reads its trailing edges ahead, a few dozen checks at a time: over dense checks (an hour's
/// step takes many reads ahead), bursts of more checks at one instant than one read takes, and a check whose
/// latency does not fit the buffer's packing, it still equals `evaluate` at every step.
#[tokio::test]
async fn the_ledger_equals_evaluate_over_dense_checks_and_bursts_at_one_instant() {
    let start = at(2026, 5, 1, 0, 0, 0);
    let mut history = History::new().await;
    for i in 0..15_000i64 {
        let t = start + chrono::Duration::seconds(i * 15);
        history
            .scheduled("a", t, i % 7 != 0, 10 + (i * 13 % 300) as u64)
            .await;
        history.scheduled("b", t, i % 29 >= 3, 40).await;
        if i % 9 == 0 {
            history
                .check("a", t, Outcome::Down, Some(9), CheckSource::OnDemand)
                .await;
        }
        // Every 47 minutes, 40 checks of `a` at one instant (more than one read ahead takes), and 33 of `b`
        // after a check of 72 minutes' latency.
        if i % 188 == 0 {
            let burst = t + chrono::Duration::milliseconds(7_001);
            for k in 0..40u64 {
                history.scheduled("a", burst, k % 3 != 0, 100 + k).await;
            }
            history
                .scheduled(
                    "b",
                    burst - chrono::Duration::milliseconds(1),
                    false,
                    4_320_000,
                )
                .await;
            for k in 0..33u64 {
                history.scheduled("b", burst, k % 4 != 0, 5 + k).await;
            }
        }
    }
    history.flush().await;
    let mut config = config_with(&["a", "b"]);
    config.slo.window_days = 2;
    let store = &history.store;
    let mut ledger = SloLedger::new(&config);
    let mut t = start + chrono::Duration::days(2) + chrono::Duration::seconds(17);
    let steps_s = [1, 60, 600, 3_599, 1_800, 45, 3_600, 59, 2_999];
    let mut compared = 0;
    while t < start + chrono::Duration::hours(61) {
        for step in steps_s {
            t += chrono::Duration::seconds(step);
            let (got, stats) = ledger.advance(store, &config, t).await.unwrap();
            let want = evaluate_at(store, &config, t).await;
            assert_eq!(got, want, "at {t} (step {step} s): {stats:?}");
            if compared > 0 {
                assert_eq!(stats.rebuilt, 0, "at {t}: {stats:?}");
            }
            compared += 1;
        }
    }
    assert!(compared > 30, "{compared}");
    // The read-ahead's slot table is sized to the targets' trailing edges, no more.
    assert_eq!(
        ledger.read_ahead_slots(),
        config.services.len() * hale::slo::ledger::TRAILING_EDGES
    );
}

/// docs/operations.md "Memory bounds" states the read-ahead's bound per target.
#[test]
fn the_ledger_read_ahead_takes_at_most_the_documented_bytes_per_target() {
    assert_eq!(SloLedger::read_ahead_bytes_per_target(), 1_184);
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/operations.md"))
        .unwrap();
    assert!(doc.contains("1,184 bytes per target"), "docs/operations.md");
}

#[tokio::test]
async fn the_first_pass_a_chunk_of_targets_at_a_time_gives_what_evaluate_gives() {
    let start = at(2026, 3, 1, 0, 0, 0);
    let (config, history) = ledger_history(start).await;
    let store = &history.store;
    // Chunks of one and two targets (the second chunk shorter), and one chunk for all three.
    let mut ledgers: Vec<SloLedger> = [1, 2, 3, 0]
        .into_iter()
        .map(|chunk| SloLedger::with_rebuild_chunk(&config, chunk))
        .collect();
    ledgers.push(SloLedger::new(&config));
    let mut t = start + chrono::Duration::hours(55) + chrono::Duration::seconds(13);
    // The first pass (everything afresh), a step, and a step too long to take incrementally.
    for step_s in [0, 600, 7_300] {
        t += chrono::Duration::seconds(step_s);
        let want = evaluate_at(store, &config, t).await;
        for (k, ledger) in ledgers.iter_mut().enumerate() {
            let (got, stats) = ledger.advance(store, &config, t).await.unwrap();
            assert_eq!(got, want, "ledger {k} at {t}");
            let rebuilt = if step_s == 600 { 0 } else { 3 };
            assert_eq!(stats.rebuilt, rebuilt, "ledger {k} at {t}: {stats:?}");
        }
    }
    assert!(
        ledgers[0].advance(store, &config, t).await.unwrap().0[2]
            .retroactive_maintenance
            .len()
            == 1,
        "c's retroactive window counts in every chunking"
    );
}

#[tokio::test]
async fn a_posted_maintenance_window_changes_the_ledger_to_what_evaluate_says() {
    let start = at(2026, 3, 1, 0, 0, 0);
    let (config, history) = ledger_history(start).await;
    let store = &history.store;
    let mut ledger = SloLedger::new(&config);
    let mut t = start + chrono::Duration::hours(60);
    let (before, _) = ledger.advance(store, &config, t).await.unwrap();
    assert!(
        before[1].retroactive_maintenance.is_empty(),
        "{:?}",
        before[1]
    );
    // Written off after the fact: b's last 3 hours, and every target's last 20 minutes.
    for (target, minutes) in [(Some("b"), 180), (None, 20)] {
        store
            .insert_maintenance_capped(
                hale::store::maintenance::NewWindow {
                    target,
                    starts_at: t - chrono::Duration::minutes(minutes),
                    ends_at: t + chrono::Duration::hours(1),
                    reason: "posted late",
                    retroactive: true,
                    created_at: t,
                },
                100,
            )
            .await
            .unwrap();
    }
    for _ in 0..5 {
        t += chrono::Duration::seconds(599);
        let (got, stats) = ledger.advance(store, &config, t).await.unwrap();
        let want = evaluate_at(store, &config, t).await;
        assert_eq!(got, want, "at {t}: {stats:?}");
    }
    let (after, _) = ledger.advance(store, &config, t).await.unwrap();
    assert!(
        after[1].availability.excluded >= before[1].availability.excluded + 90,
        "{:?}",
        after[1]
    );
    assert_eq!(after[1].retroactive_maintenance.len(), 2, "{:?}", after[1]);
    assert!(after[0].availability.excluded > before[0].availability.excluded);
}

#[tokio::test]
async fn slo_and_the_status_page_answer_from_the_last_pass_not_from_the_database() {
    let server = TargetServer::start(Mode::Healthy).await;
    let config = burn_config(&server).build();
    let lag = chrono::Duration::from_std(hale::slo::SloRefresher::lag(&config)).unwrap();
    let t0 = at(2026, 11, 26, 12, 0, 0);
    let clock = ManualClock::new(t0);
    let app = spawn_app_with_clock(config, Arc::new(clock.clone())).await;
    let mut pace = pacer(&app, &clock);
    let hp = ServiceKind::HealthProxy;
    pace.advance_s(120).await;
    // The refresher's pass at 120 s counts up to `now - lag`: a request evaluating the database would
    // end its window at now.
    let as_of = t0 + chrono::Duration::seconds(120) - lag;
    let until = |v: &Value| {
        DateTime::parse_from_rfc3339(v["window"]["until"].as_str()?)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    };
    let all = common::eventually("the pass at 120 s", || async {
        let (_, all) = app.get_json(hp, "/slo").await;
        (until(&all[0]) == Some(as_of)).then_some(all)
    })
    .await;
    assert_eq!(all[0]["status"], "met", "{all}");
    let valid = all[0]["availability"]["valid"].as_u64().unwrap();
    assert!(valid >= 100, "{all}");
    let page = app.get(hp, "/").await.text().await.unwrap();
    assert!(page.contains("SLOs count the checks made before"), "{page}");

    // 400 failed checks written behind hale's back, before `as_of`: the database now says breached.
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&app.db_path)
        .busy_timeout(Duration::from_secs(10));
    let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
    for i in 0..400i64 {
        sqlx::query(
            "INSERT INTO health_checks (checked_at_ms, service, outcome, http_status, latency_us, error, breaker_state, source)
             VALUES (?1, 'api', 'down', 500, 1000, 'injected', 'closed', 'monitor')",
        )
        .bind((t0 + chrono::Duration::milliseconds(100 + i * 200)).timestamp_millis())
        .execute(&pool)
        .await
        .unwrap();
    }
    pool.close().await;
    let (status, fresh) = app.get_json(hp, "/slo/api?window=168h").await;
    assert_eq!(status, 200, "{fresh}");
    assert_eq!(fresh["status"], "breached", "{fresh}");
    assert_eq!(until(&fresh), Some(t0 + chrono::Duration::seconds(120)));

    // `/slo`, `/slo/api` and the page still show the pass: nothing was evaluated for them.
    let (_, again) = app.get_json(hp, "/slo").await;
    assert_eq!(again, all);
    let (_, one) = app.get_json(hp, "/slo/api").await;
    assert_eq!(one, all[0]);
    let page_again = app.get(hp, "/").await.text().await.unwrap();
    assert_eq!(page_again, page);
}
