//! `hale verify`, `hale status` and hale's self-watch, run as the real binary: against a running hale that
//! probes a real local target, a database with known rollups written by the store's own writer, and a real
//! terminal under tmux.

// A test crate: an unwrap is an assertion, and tests/common sets a child's rlimit in `pre_exec`.
#![allow(clippy::unwrap_used)]

mod common;
#[allow(dead_code)]
#[path = "health_proxy/target_server.rs"]
mod target_server;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use hale::breaker::{BreakerSnapshot, BreakerState};
use hale::kind::ServiceKind;
use hale::records::{CheckRecord, CheckSource, Outcome};
use hale::store::writer::{self, WriterSettings};
use hale::store::Store;
use serde_json::{json, Value};

use common::app::{spawn_app, spawn_app_with};
use common::config::{test_config, test_config_json};
use common::process::{exit_code, hale_bin, run_hale, HaleProcess};
use common::prom::promtool;
use common::{eventually, DEADLINE};
use target_server::{Mode, TargetServer};

/// A port nothing listens on: bound once to pick it, then closed.
fn closed_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("bound address")
}

/// `hale serve` on free ports with these targets, and the config an operator keeps for it: the same file with
/// the addresses hale listens on.
async fn start_hale(targets: Value) -> (HaleProcess, PathBuf) {
    let mut config = test_config_json();
    config["services"] = targets;
    let mut hale = HaleProcess::serve(&config, &[]).await;
    let addrs = hale.wait_listening(&ServiceKind::ALL).await;
    let path = write_operator_config(hale.dir.path(), &config, &addrs);
    (hale, path)
}

fn write_operator_config(
    dir: &Path,
    config: &Value,
    addrs: &HashMap<ServiceKind, SocketAddr>,
) -> PathBuf {
    let mut config = config.clone();
    for kind in ServiceKind::ALL {
        config["listen"][kind.as_str().replace('-', "_")] = json!(addrs[&kind].to_string());
    }
    let path = dir.join("operator.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&config).expect("encode")).expect("write");
    path
}

fn text(path: &Path) -> String {
    path.to_str().expect("a UTF-8 path").to_owned()
}

/// Runs `hale verify ARGS` and returns the exit code, stdout and the report it wrote as JSON.
async fn verify(dir: &Path, args: &[&str]) -> (i32, String, Value) {
    let json_path = dir.join("report.json");
    let mut all = vec!["verify", "--json", json_path.to_str().expect("UTF-8")];
    all.extend_from_slice(args);
    let output = run_hale(dir, &all).await;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.is_empty(), "verify wrote on stderr: {stderr}");
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(&json_path).expect("read the JSON report"))
            .expect("the JSON report parses");
    (exit_code(output.status), stdout, report)
}

fn check<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name:?} in {report:#}"))
}

fn assert_result(report: &Value, name: &str, expected: &str) {
    let found = check(report, name);
    assert_eq!(found["result"], expected, "{name}: {found:#}");
}

/// `hale export openapi --out INTO`, run in the folder that holds the exports.
async fn export_openapi(exports: &Path) {
    std::fs::create_dir_all(exports).expect("create the exports folder");
    let into = exports.join("openapi");
    let output = run_hale(exports, &["export", "openapi", "--out", &text(&into)]).await;
    assert_eq!(exit_code(output.status), 0, "{output:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_passes_on_a_healthy_running_hale() {
    let target = TargetServer::start(Mode::Healthy).await;
    let (hale, config) = start_hale(json!([{"name": "api", "url": target.url()}])).await;
    let dir = hale.dir.path();
    let exports = dir.join("exports");
    export_openapi(&exports).await;
    let markdown_path = dir.join("report.md");
    let promtool = promtool();
    let args = [
        "--config",
        &text(&config),
        "--db",
        &text(&hale.db_path),
        "--exports",
        &text(&exports),
        "--report",
        &text(&markdown_path),
        "--promtool",
        &promtool,
    ];
    let (code, stdout, report) = verify(dir, &args).await;
    assert_eq!(code, 0, "{stdout}");
    assert_eq!(report["result"], "pass", "{report:#}");
    for name in [
        "config",
        "database",
        "health-proxy /health",
        "health-proxy /metrics",
        "mcp-bridge /health",
        "mcp-bridge /metrics",
        "boss-api /health",
        "boss-api /metrics",
        "target api",
        "breakers",
        "writer",
        "self-watch",
        "exports openapi",
    ] {
        assert_result(&report, name, "pass");
    }
    assert!(target.hits() >= 1, "/health/all reached the real target");
    assert!(
        check(&report, "health-proxy /metrics")["summary"]
            .as_str()
            .unwrap()
            .contains("parser and promtool"),
        "{report:#}"
    );
    assert!(report["metrics_checked_with"]
        .as_str()
        .unwrap()
        .contains("check metrics"));
    // Exports whose folder is not there are skipped, saying so, and are not a failure.
    for name in [
        "exports dashboards",
        "exports alert rules",
        "exports alertmanager",
        "exports systemd unit",
        "exports launchd job",
    ] {
        assert_result(&report, name, "skip");
        assert!(
            check(&report, name)["summary"]
                .as_str()
                .unwrap()
                .starts_with("no folder "),
            "{report:#}"
        );
    }
    assert_result(&report, "read token", "skip");
    assert_eq!(report["counts"]["failed"], 0);
    // Markdown on stdout, and the same in the --report file.
    assert!(stdout.starts_with("# hale verify: PASS\n"), "{stdout}");
    assert!(
        stdout.contains("| PASS | target api | up: HTTP 200 in "),
        "{stdout}"
    );
    assert!(
        stdout.contains("| SKIP | exports dashboards | no folder "),
        "{stdout}"
    );
    assert!(!stdout.contains("## Failures"), "{stdout}");
    assert_eq!(std::fs::read_to_string(&markdown_path).unwrap(), stdout);

    // Without promtool the text format is still checked, by hale's own parser, and the report says so.
    let output = run_hale(
        dir,
        &[
            "verify",
            "--config",
            &text(&config),
            "--db",
            &text(&hale.db_path),
            "--exports",
            &text(&exports),
            "--no-promtool",
            "--format",
            "json",
        ],
    )
    .await;
    assert_eq!(exit_code(output.status), 0);
    let report: Value = serde_json::from_slice(&output.stdout).expect("JSON on stdout");
    assert_eq!(report["result"], "pass");
    assert!(report["metrics_checked_with"]
        .as_str()
        .unwrap()
        .contains("hale's own parser of the text format (promtool not used: --no-promtool)"));
    assert_result(&report, "boss-api /metrics", "pass");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_fails_naming_a_target_on_a_closed_port() {
    let target = TargetServer::start(Mode::Healthy).await;
    let closed = closed_port();
    let ghost_url = format!("http://{closed}/health");
    let (hale, config) = start_hale(json!([
        {"name": "api", "url": target.url()},
        {"name": "ghost", "url": ghost_url},
    ]))
    .await;
    let dir = hale.dir.path();
    let (code, stdout, report) = verify(
        dir,
        &[
            "--config",
            &text(&config),
            "--db",
            &text(&hale.db_path),
            "--exports",
            &text(&dir.join("no-exports")),
            "--no-promtool",
        ],
    )
    .await;
    assert_eq!(code, 1, "{stdout}");
    assert_eq!(report["result"], "fail");
    assert_eq!(report["counts"]["failed"], 1, "{report:#}");
    assert_result(&report, "target api", "pass");
    let ghost = check(&report, "target ghost");
    assert_eq!(ghost["result"], "fail");
    assert!(
        ghost["summary"]
            .as_str()
            .unwrap()
            .starts_with(&format!("ghost is down at {ghost_url}")),
        "{ghost:#}"
    );
    assert!(ghost["remedy"].as_str().unwrap().contains(&ghost_url));
    assert!(ghost["details"]
        .as_array()
        .unwrap()
        .contains(&json!(format!("url {ghost_url}"))));
    // No exported folders there: skipped, not failed.
    assert_result(&report, "exports openapi", "skip");
    // The Markdown names the target in the table and in a section with what to do.
    assert!(stdout.starts_with("# hale verify: FAIL\n"), "{stdout}");
    assert!(
        stdout.contains("| FAIL | target ghost | ghost is down at "),
        "{stdout}"
    );
    assert!(stdout.contains("### FAIL: target ghost"), "{stdout}");
    assert!(
        stdout.contains("**What to do:** the target refused the connection"),
        "{stdout}"
    );
}

#[tokio::test]
async fn verify_fails_naming_a_stale_exported_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("config.json");
    std::fs::write(&config, test_config_json().to_string()).expect("write the config");
    let exports = dir.path().join("exports");
    let openapi = exports.join("openapi");
    export_openapi(&exports).await;
    let args = [
        "--offline",
        "--config",
        &text(&config),
        "--db",
        &text(&dir.path().join("data/hale.db")),
        "--exports",
        &text(&exports),
    ];
    let (code, stdout, report) = verify(dir.path(), &args).await;
    assert_eq!(code, 0, "{stdout}");
    assert_result(&report, "exports openapi", "pass");
    assert_result(&report, "running hale", "skip");
    // Offline, a database not created yet is not a failure.
    assert_result(&report, "database", "skip");

    // An older copy of one document: that file is named, with the line that differs.
    let stale = openapi.join("mcp-bridge.json");
    let current = std::fs::read_to_string(&stale).unwrap();
    std::fs::write(
        &stale,
        current.replace("\"version\": \"", "\"version\": \"0.0.9-"),
    )
    .unwrap();
    let (code, stdout, report) = verify(dir.path(), &args).await;
    assert_eq!(code, 1, "{stdout}");
    let found = check(&report, "exports openapi");
    assert_eq!(found["result"], "fail");
    let summary = found["summary"].as_str().unwrap();
    assert!(
        summary.starts_with(&format!(
            "{} is stale: it differs from what this hale generates (first at line ",
            stale.display()
        )),
        "{summary}"
    );
    assert!(!summary.contains("boss-api.json"), "{summary}");
    assert!(stdout.contains("### FAIL: exports openapi"), "{stdout}");
    assert!(
        stdout.contains(&format!("hale export openapi --out {}", openapi.display())),
        "{stdout}"
    );

    // A missing document and a file this hale does not generate are failures too.
    std::fs::remove_file(&stale).unwrap();
    std::fs::write(openapi.join("old-service.json"), "{}").unwrap();
    let (code, _, report) = verify(dir.path(), &args).await;
    assert_eq!(code, 1);
    let summary = check(&report, "exports openapi")["summary"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        summary.contains(&format!("{} is missing", stale.display())),
        "{summary}"
    );
    assert!(
        summary.contains("old-service.json is not generated by this hale"),
        "{summary}"
    );

    // An invalid config fails its check and verify still reports the rest.
    std::fs::write(&config, r#"{"listen": {"boss_api": "nowhere"}}"#).unwrap();
    let (code, stdout, report) = verify(dir.path(), &args).await;
    assert_eq!(code, 1);
    let found = check(&report, "config");
    assert_eq!(found["result"], "fail");
    assert!(
        found["details"][0]
            .as_str()
            .unwrap()
            .contains("$.listen.boss_api"),
        "{found:#}"
    );
    assert!(stdout.contains("### FAIL: config"), "{stdout}");
}

/// Every `hale export ...` into `exports`, the config-driven ones with `--config config`.
async fn export_everything(exports: &Path, config: &Path) {
    export_openapi(exports).await;
    for (what, folder, with_config) in [
        ("dashboards", "dashboards", true),
        ("alerts", "alerts", true),
        ("alertmanager", "deploy/alertmanager", false),
        ("systemd", "deploy/systemd", false),
        ("launchd", "deploy/launchd", false),
    ] {
        let out = text(&exports.join(folder));
        let mut args = vec!["export", what, "--out", &out];
        let config = text(config);
        if with_config {
            args.extend(["--config", &config]);
        }
        let output = run_hale(exports, &args).await;
        assert_eq!(exit_code(output.status), 0, "{what}: {output:?}");
    }
}

const EXPORT_CHECKS: [&str; 6] = [
    "exports openapi",
    "exports dashboards",
    "exports alert rules",
    "exports alertmanager",
    "exports systemd unit",
    "exports launchd job",
];

#[tokio::test]
async fn verify_compares_every_export_with_a_fresh_one_and_names_each_drifted_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    // Objectives and runbook links that are not the defaults: verify must generate from this config.
    let mut config_json = test_config_json();
    config_json["slo"] = json!({"availability_target_percent": 99.9, "p95_latency_target_ms": 300});
    config_json["alerts"] = json!({"runbook_base_url": "https://runbooks.example/hale"});
    let config = dir.path().join("config.json");
    std::fs::write(&config, config_json.to_string()).expect("write the config");
    let exports = dir.path().join("exports");
    export_everything(&exports, &config).await;
    let args = [
        "--offline",
        "--config",
        &text(&config),
        "--db",
        &text(&dir.path().join("data/hale.db")),
        "--exports",
        &text(&exports),
    ];
    let (code, stdout, report) = verify(dir.path(), &args).await;
    assert_eq!(code, 0, "{stdout}");
    for name in EXPORT_CHECKS {
        assert_result(&report, name, "pass");
    }
    assert!(
        check(&report, "exports dashboards")["summary"]
            .as_str()
            .unwrap()
            .ends_with("equal what this hale generates"),
        "{report:#}"
    );

    // Dashboards exported with the default objectives do not match this config: stale, by file name, and
    // the hint regenerates them from the config verify was given.
    let output = run_hale(
        dir.path(),
        &[
            "export",
            "dashboards",
            "--out",
            &text(&exports.join("dashboards")),
        ],
    )
    .await;
    assert_eq!(exit_code(output.status), 0, "{output:?}");
    // An edited rule file, a missing unit and a file this hale does not write.
    let rules = exports.join("alerts/hale-slo-rules.yml");
    let edited = std::fs::read_to_string(&rules)
        .unwrap()
        .replace("severity: \"critical\"", "severity: \"info\"");
    std::fs::write(&rules, edited + "# a local edit\n").unwrap();
    let unit = exports.join("deploy/systemd/hale.service");
    std::fs::remove_file(&unit).unwrap();
    let foreign = exports.join("deploy/alertmanager/old.yml");
    std::fs::write(&foreign, "route: {}\n").unwrap();
    let (code, stdout, report) = verify(dir.path(), &args).await;
    assert_eq!(code, 1, "{stdout}");
    for name in ["exports openapi", "exports launchd job"] {
        assert_result(&report, name, "pass");
    }
    let dashboards = check(&report, "exports dashboards");
    assert_eq!(dashboards["result"], "fail", "{dashboards:#}");
    let summary = dashboards["summary"].as_str().unwrap();
    assert!(
        summary.contains(&format!(
            "{} is stale: it differs from what this hale generates (first at line ",
            exports.join("dashboards/hale-slo.json").display()
        )),
        "{summary}"
    );
    assert!(
        dashboards["remedy"].as_str().unwrap().contains(&format!(
            "hale export dashboards --config {} --out {}",
            config.display(),
            exports.join("dashboards").display()
        )),
        "{dashboards:#}"
    );
    let alerts = check(&report, "exports alert rules");
    assert_eq!(alerts["result"], "fail");
    assert!(
        alerts["summary"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{} is stale", rules.display())),
        "{alerts:#}"
    );
    assert!(
        !alerts["summary"]
            .as_str()
            .unwrap()
            .contains("hale-rules.yml"),
        "{alerts:#}"
    );
    let systemd = check(&report, "exports systemd unit");
    assert_eq!(systemd["result"], "fail");
    assert_eq!(
        systemd["summary"],
        format!("{} is missing", unit.display()),
        "{systemd:#}"
    );
    let alertmanager = check(&report, "exports alertmanager");
    assert_eq!(alertmanager["result"], "fail");
    assert_eq!(
        alertmanager["summary"],
        format!(
            "{} is not generated by this hale (an old or foreign file)",
            foreign.display()
        ),
        "{alertmanager:#}"
    );
    assert!(
        stdout.contains("### FAIL: exports systemd unit"),
        "{stdout}"
    );

    // With a config that cannot be loaded, what is generated from it is not compared; the rest still is.
    std::fs::write(&config, r#"{"listen": {"boss_api": "nowhere"}}"#).unwrap();
    let (_, _, report) = verify(dir.path(), &args).await;
    for name in ["exports dashboards", "exports alert rules"] {
        assert_result(&report, name, "skip");
        assert!(
            check(&report, name)["summary"]
                .as_str()
                .unwrap()
                .starts_with("not compared: the config is not usable"),
            "{report:#}"
        );
    }
    assert_result(&report, "exports openapi", "pass");
    assert_result(&report, "exports systemd unit", "fail");
}

#[tokio::test]
async fn verify_loads_the_read_token_and_never_shows_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = test_config_json();
    config["auth"] = json!({"tokens": {"read": {"env": "HALE_TEST_VERIFY_READ"}}});
    let path = dir.path().join("config.json");
    std::fs::write(&path, config.to_string()).unwrap();
    let run = |token: Option<&'static str>| {
        let path = path.clone();
        let dir = dir.path().to_owned();
        async move {
            let mut cmd = common::process::hale_command(&dir);
            cmd.args([
                "verify",
                "--config",
                &text(&path),
                "--db",
                "none.db",
                "--no-promtool",
            ])
            .env_remove("HALE_TEST_VERIFY_READ")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
            if let Some(token) = token {
                cmd.env("HALE_TEST_VERIFY_READ", token);
            }
            let output = tokio::time::timeout(DEADLINE, cmd.output())
                .await
                .expect("verify finishes")
                .expect("run verify");
            String::from_utf8_lossy(&output.stdout).into_owned()
        }
    };
    // hale's listen ports are 0 in this config, so the services fail; the token check is what matters here.
    let loaded = run(Some("read-token-0123456789-SECRET")).await;
    assert!(loaded.contains("| PASS | read token | loaded from environment variable HALE_TEST_VERIFY_READ and sent |"), "{loaded}");
    assert!(!loaded.contains("SECRET"), "the token is shown: {loaded}");
    let missing = run(None).await;
    assert!(
        missing.contains(
            "| FAIL | read token | the read token cannot be loaded; requests go without it |"
        ),
        "{missing}"
    );
    assert!(
        missing
            .contains("- auth.tokens.read: environment variable HALE_TEST_VERIFY_READ is not set"),
        "{missing}"
    );
    assert!(
        missing.contains("port 0 is picked when hale starts"),
        "{missing}"
    );
}

fn record(service: &Arc<str>, at: DateTime<Utc>, outcome: Outcome, latency_ms: u64) -> CheckRecord {
    CheckRecord {
        checked_at: at,
        service: service.clone(),
        outcome,
        http_status: (outcome == Outcome::Up).then_some(200),
        latency: Some(Duration::from_millis(latency_ms)),
        error: (outcome != Outcome::Up).then(|| "connection refused".to_owned()),
        breaker_state: BreakerState::Closed,
        source: CheckSource::Monitor,
    }
}

fn assert_near(found: &Value, expected: f64, what: &str) {
    let found = found
        .as_f64()
        .unwrap_or_else(|| panic!("{what} is not a number: {found}"));
    assert!(
        (found - expected).abs() <= expected * 0.01,
        "{what}: {found}, expected {expected} within 1%"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_json_reads_known_rollups_while_hale_is_stopped() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("hale.db");
    let now = Utc::now();
    let store = Store::open(&db).await.expect("open the store");
    let (checks, handle) = writer::spawn(
        store.clone(),
        WriterSettings {
            flush_interval: Duration::from_millis(10),
            batch_size: 1000,
            settle_interval: Duration::ZERO,
        },
        hale::metrics::WriterMetrics::register(&prometheus::Registry::new()),
    );
    let api: Arc<str> = Arc::from("api");
    let database: Arc<str> = Arc::from("db");
    let mut records = Vec::new();
    // api, inside the 7-day window: 18 up at 10 ms, 1 up at 400 ms, 1 down at 50 ms (95% available, p95 50 ms).
    for i in 0..18 {
        records.push(record(&api, now - TimeDelta::hours(2 + i), Outcome::Up, 10));
    }
    records.push(record(&api, now - TimeDelta::days(2), Outcome::Up, 400));
    records.push(record(&api, now - TimeDelta::days(3), Outcome::Down, 50));
    // The newest check of api.
    let newest = now - TimeDelta::minutes(30);
    records.push(record(&api, newest, Outcome::Up, 12));
    // api, 8 days ago: outside the window, never counted.
    for _ in 0..10 {
        records.push(record(&api, now - TimeDelta::days(8), Outcome::Down, 5));
    }
    // db: always up but slow (250 ms, above the 200 ms p95 target).
    for i in 0..10 {
        records.push(record(
            &database,
            now - TimeDelta::hours(1 + i),
            Outcome::Up,
            250,
        ));
    }
    for record in records {
        checks.submit(record).await.expect("submit");
    }
    handle.shutdown().await;
    store
        .save_breaker(
            "target:db",
            &BreakerSnapshot {
                state: BreakerState::Open,
                consecutive_failures: 5,
                consecutive_successes: 0,
                retry_at: Some(now + TimeDelta::seconds(60)),
                updated_at: now,
            },
            None,
        )
        .await
        .expect("save a breaker");
    // Two heal commands ran for the api this week (one 8 days ago does not count), and an alert fires.
    for days_ago in [8, 2, 1] {
        let at = now - TimeDelta::days(days_ago);
        store
            .insert_heal(&hale::records::HealRecord {
                target: "api".into(),
                trigger: hale::records::HealTrigger::Automatic,
                action: hale::records::HealAction::Command,
                started_at: at,
                finished_at: at,
                outcome: hale::records::HealOutcome::Healed,
                verify_latency: Some(Duration::from_millis(300)),
                error: None,
            })
            .await
            .expect("store a heal");
    }
    store
        .open_alert(
            "target_down",
            "db",
            hale::records::AlertLevel::Critical,
            "db is down",
            now - TimeDelta::minutes(5),
            hale::records::AlertEventKind::Fired,
        )
        .await
        .expect("store an alert");
    store.close().await;

    let mut config = test_config_json();
    let listen: Vec<SocketAddr> = (0..3).map(|_| closed_port()).collect();
    config["listen"] = json!({
        "health_proxy": listen[0].to_string(),
        "mcp_bridge": listen[1].to_string(),
        "boss_api": listen[2].to_string(),
    });
    config["services"] = json!([
        {"name": "api", "url": "http://127.0.0.1:9/health?key=hidden"},
        {"name": "db", "url": "tcp://127.0.0.1:9"},
        {"name": "idle", "url": "http://127.0.0.1:9/"},
    ]);
    let config_path = dir.path().join("config.json");
    std::fs::write(&config_path, config.to_string()).unwrap();
    // A real backup into the default folder beside the database: status shows it as the last one.
    let backup = run_hale(
        dir.path(),
        &[
            "backup",
            "--config",
            config_path.to_str().unwrap(),
            "--db",
            db.to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(
        common::process::exit_code(backup.status),
        0,
        "{}",
        String::from_utf8_lossy(&backup.stderr)
    );
    let output = run_hale(
        dir.path(),
        &[
            "status",
            "--json",
            "--config",
            &text(&config_path),
            "--db",
            &text(&db),
        ],
    )
    .await;
    assert_eq!(exit_code(output.status), 0, "{output:?}");
    let status: Value = serde_json::from_slice(&output.stdout).expect("status --json is JSON");

    assert_eq!(status["hale_version"], env!("CARGO_PKG_VERSION"));
    let services = status["services"].as_array().unwrap();
    assert_eq!(services.len(), 3);
    for (service, (kind, addr)) in services
        .iter()
        .zip(ServiceKind::ALL.into_iter().zip(&listen))
    {
        assert_eq!(service["name"], kind.as_str());
        assert_eq!(service["address"], addr.to_string());
        assert_eq!(service["up"], false);
        assert_eq!(service["state"], "down");
        assert_eq!(service["uptime_s"], Value::Null);
        assert!(
            service["error"]
                .as_str()
                .unwrap()
                .contains("connection refused"),
            "{service}"
        );
    }
    assert_eq!(
        status["slo"],
        json!({"window_days": 7, "availability_target_percent": 99.5, "p95_latency_target_ms": 200, "max_restarts_per_week": 3})
    );
    let targets = status["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 3);

    let api = &targets[0];
    assert_eq!(api["name"], "api");
    assert_eq!(api["url"], "http://127.0.0.1:9/health?key=redacted");
    assert_eq!(api["state"], "up");
    assert_eq!(api["breaker"], "closed");
    assert_eq!(
        api["last_check"]["at"]
            .as_str()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .unwrap(),
        DateTime::from_timestamp_millis(newest.timestamp_millis()).unwrap()
    );
    assert_eq!(api["last_check"]["outcome"], "up");
    assert_eq!(api["last_check"]["http_status"], 200);
    assert_eq!(api["last_check"]["latency_ms"], 12.0);
    assert_eq!(api["availability"]["checks"], 21);
    assert_eq!(api["availability"]["good"], 20);
    assert_eq!(api["availability"]["percent"], 95.2381);
    assert_eq!(api["availability"]["target_percent"], 99.5);
    assert_eq!(api["availability"]["met"], false);
    // Sorted: 18 × 10 ms, 12, 50, 400; rank ceil(0.95 × 21) = 20 is 50 ms.
    assert_near(&api["p95"]["ms"], 50.0, "api p95");
    assert_eq!(api["p95"]["target_ms"], 200);
    assert_eq!(api["p95"]["met"], true);
    assert_eq!(
        api["restarts"],
        json!({"tracked": true, "count": 2, "max_per_week": 3})
    );

    let db_target = &targets[1];
    assert_eq!(db_target["name"], "db");
    assert_eq!(db_target["breaker"], "open");
    assert_eq!(db_target["availability"]["percent"], 100.0);
    assert_eq!(db_target["availability"]["met"], true);
    assert_near(&db_target["p95"]["ms"], 250.0, "db p95");
    assert_eq!(db_target["p95"]["met"], false);

    let idle = &targets[2];
    assert_eq!(idle["state"], "unknown");
    assert_eq!(idle["last_check"], Value::Null);
    assert_eq!(idle["availability"]["checks"], 0);
    assert_eq!(idle["availability"]["percent"], Value::Null);
    assert_eq!(idle["availability"]["met"], Value::Null);
    assert_eq!(idle["p95"]["ms"], Value::Null);

    assert_eq!(status["alerts"]["tracked"], true);
    let active = status["alerts"]["active"].as_array().unwrap();
    assert_eq!(active.len(), 1, "{active:?}");
    assert_eq!(active[0]["rule"], "target_down");
    assert_eq!(active[0]["target"], "db");
    assert_eq!(active[0]["level"], "critical");
    assert_eq!(status["backup"]["tracked"], true);
    let last_backup = status["backup"]["path"]
        .as_str()
        .expect("the backup's path");
    assert!(
        last_backup.contains("/backups/hale-") && last_backup.ends_with(".db.gz"),
        "{last_backup}"
    );
    assert!(status["backup"]["last_at"].is_string());
    assert_eq!(
        status["writer"],
        json!({"state": null, "queue": null, "database": null, "last_write_at": null})
    );
    let database = &status["database"];
    assert_eq!(database["path"], text(&db));
    assert_eq!(database["exists"], true);
    assert_eq!(database["schema"], hale::store::MIGRATOR.iter().count());
    assert_eq!(database["error"], Value::Null);
    let file_bytes = std::fs::metadata(&db).unwrap().len();
    assert_eq!(database["file_bytes"], file_bytes);
    let wal_bytes = database["wal_bytes"].as_u64().unwrap_or(0);
    assert_eq!(database["size_bytes"], file_bytes + wal_bytes);
    assert_eq!(status["notes"], json!([]));

    // A missing database is shown as such, and status still answers.
    let output = run_hale(
        dir.path(),
        &[
            "status",
            "--json",
            "--config",
            &text(&config_path),
            "--db",
            "missing.db",
        ],
    )
    .await;
    assert_eq!(exit_code(output.status), 0);
    let status: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(status["database"]["exists"], false);
    assert_eq!(status["database"]["error"], "no database at missing.db");
    assert_eq!(status["targets"][0]["state"], "unknown");
    assert!(
        !dir.path().join("missing.db").exists(),
        "status created a database"
    );
}

/// A tmux server of this test's own, on a socket in its temp folder.
struct Tmux {
    socket: PathBuf,
}

impl Tmux {
    fn run(&self, args: &[&str]) -> String {
        let output = std::process::Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .args(args)
            .env_remove("NO_COLOR")
            .env_remove("TMUX")
            .output()
            .unwrap_or_else(|e| {
                panic!("cannot run tmux ({e}): install the Debian package tmux (scripts/test does); this test does not skip")
            });
        assert!(output.status.success(), "tmux {args:?}: {output:?}");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Runs `command` in a new 160×50 session, kept open after it ends, and returns the screen once `ready`
    /// shows: plain, and with colours as escape sequences.
    async fn screen(&self, session: &str, command: &str, ready: &str) -> (String, String) {
        self.run(&[
            "new-session",
            "-d",
            "-x",
            "160",
            "-y",
            "50",
            "-s",
            session,
            &format!("{command}; sleep 600"),
        ]);
        let plain = eventually(
            &format!("{ready:?} on the tmux screen of {command}"),
            || async {
                let screen = self.run(&["capture-pane", "-p", "-t", session]);
                screen.contains(ready).then_some(screen)
            },
        )
        .await;
        let coloured = self.run(&["capture-pane", "-p", "-e", "-t", session]);
        (plain, coloured)
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        // Ends this test's own tmux server (and the panes it started), nothing else.
        let _ = std::process::Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .arg("kill-server")
            .output();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_in_a_terminal_shows_services_and_targets_in_colour_and_plain_when_piped() {
    let target = TargetServer::start(Mode::Healthy).await;
    let (hale, config) = start_hale(
        json!([{"name": "api", "url": target.url(), "interval_s": 1, "timeout_ms": 500}]),
    )
    .await;
    let dir = hale.dir.path();
    let args = [
        "status",
        "--config",
        &text(&config),
        "--db",
        &text(&hale.db_path),
    ];
    // Wait until the background probe of api is stored.
    eventually("a stored check of api", || async {
        let output = run_hale(dir, &[args.as_slice(), &["--json"]].concat()).await;
        let status: Value = serde_json::from_slice(&output.stdout).ok()?;
        (status["targets"][0]["state"] == "up").then_some(())
    })
    .await;

    let command = format!(
        "'{}' status --config '{}' --db '{}'",
        hale_bin(),
        text(&config),
        text(&hale.db_path)
    );
    let tmux = Tmux {
        socket: dir.join("tmux.sock"),
    };
    let (plain, coloured) = tmux.screen("status", &command, "BACKUP").await;
    let lines: Vec<&str> = plain.lines().collect();
    assert!(lines[0].starts_with("hale status "), "{plain}");
    let line_of = |start: &str| {
        lines
            .iter()
            .find(|l| l.trim_start().starts_with(start))
            .unwrap_or_else(|| panic!("no line starting with {start:?}:\n{plain}"))
            .to_owned()
    };
    for kind in ServiceKind::ALL {
        let line = line_of(kind.as_str());
        assert!(line.contains(" up "), "{line}");
        assert!(
            line.contains(&format!("hale {}", env!("CARGO_PKG_VERSION"))),
            "{line}"
        );
    }
    let api = line_of("api ");
    for part in [" up ", " closed ", " ago ", "100.000% ok", " ms ok"] {
        assert!(api.contains(part), "{part:?} in {api:?}");
    }
    assert!(api.trim_end().ends_with(" 0"), "no restarts: {api:?}");
    assert!(line_of("ALERTS").contains("none active"));
    assert!(line_of("WRITER").contains("running, "));
    assert!(
        line_of("DATABASE").contains(&format!("schema {}", hale::store::MIGRATOR.iter().count()))
    );
    assert!(
        line_of("BACKUP").contains("none yet"),
        "{}",
        line_of("BACKUP")
    );
    assert!(!plain.contains('\x1b'));
    // Green for up, bold headings: the terminal got colours.
    assert!(coloured.contains("\x1b[32mup"), "{coloured:?}");
    assert!(coloured.contains("\x1b[1mSERVICES"), "{coloured:?}");

    // NO_COLOR turns them off, even on a terminal.
    let (_, uncoloured) = tmux
        .screen("no-colour", &format!("NO_COLOR=1 {command}"), "BACKUP")
        .await;
    assert!(!uncoloured.contains("\x1b[32m"), "{uncoloured:?}");
    assert!(!uncoloured.contains("\x1b[1m"), "{uncoloured:?}");

    // Piped, the same screen has no escape sequences at all.
    let output = run_hale(dir, &args).await;
    assert_eq!(exit_code(output.status), 0);
    let piped = String::from_utf8(output.stdout).unwrap();
    assert!(
        piped.contains("SERVICES") && piped.contains("api "),
        "{piped}"
    );
    assert!(!piped.contains('\x1b'), "{piped:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hale_logs_its_own_resources_at_start() {
    let mut hale = HaleProcess::serve(&test_config_json(), &[]).await;
    hale.wait_listening(&ServiceKind::ALL).await;
    let line = eventually("the self-watch log line", || async {
        hale.json_logs()
            .into_iter()
            .find(|l| l["message"] == "self-watch")
    })
    .await;
    assert_eq!(line["level"], "INFO");
    assert!(
        line["resident_memory_bytes"].as_u64().unwrap() > 1_000_000,
        "{line}"
    );
    assert!(
        line["resident_memory_peak_bytes"].as_u64().unwrap()
            >= line["resident_memory_bytes"].as_u64().unwrap()
    );
    assert!(line["open_files"].as_u64().unwrap() > 3, "{line}");
    assert!(line["open_files_limit"].as_u64().unwrap() >= line["open_files"].as_u64().unwrap());
    assert!(line["threads"].as_u64().unwrap() >= 1);
    assert_eq!(line["writer_queue"], 0);
    assert_eq!(line["writer"], "running");
    hale.signal("TERM");
    assert_eq!(exit_code(hale.wait_exit(DEADLINE).await), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_self_watch_is_a_worker_unless_turned_off() {
    let mut app = spawn_app().await;
    let workers = app.app().worker_names();
    assert_eq!(workers.last(), Some(&"self-watch"), "{workers:?}");
    app.shutdown().await;
    let mut config = test_config();
    config.monitor.self_watch_interval_s = 0;
    let mut off = spawn_app_with(config).await;
    assert!(!off.app().worker_names().contains(&"self-watch"));
    off.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_service_exports_the_process_metrics_and_the_writer_queue() {
    let app = spawn_app().await;
    for kind in ServiceKind::ALL {
        let text = app.metrics(kind).await;
        for name in [
            "process_resident_memory_bytes",
            "process_open_fds",
            "process_max_fds",
            "process_cpu_seconds_total",
            "process_threads",
            "process_start_time_seconds",
        ] {
            let value = common::prom::sample_value(&text, name, &[])
                .unwrap_or_else(|| panic!("{kind}: no {name}\n{text}"));
            assert!(value >= 0.0, "{kind}: {name} {value}");
        }
        assert!(
            common::prom::sample_value(&text, "process_resident_memory_bytes", &[]).unwrap() > 1e6
        );
        assert_eq!(
            common::prom::sample_value(&text, "store_queue_depth", &[]).is_some(),
            kind == ServiceKind::HealthProxy,
            "{kind}"
        );
    }
}

#[tokio::test]
async fn verify_fails_on_a_damaged_database_and_says_what_to_do() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("config.json");
    std::fs::write(&config, test_config_json().to_string()).unwrap();
    let db = dir.path().join("hale.db");
    std::fs::write(&db, vec![b'x'; 8192]).unwrap();
    let (code, stdout, report) = verify(
        dir.path(),
        &["--offline", "--config", &text(&config), "--db", &text(&db)],
    )
    .await;
    assert_eq!(code, 1, "{stdout}");
    let found = check(&report, "database");
    assert_eq!(found["result"], "fail", "{found:#}");
    assert!(
        found["details"][0]
            .as_str()
            .unwrap()
            .contains("is not a SQLite database or is corrupt"),
        "{found:#}"
    );
    assert!(
        found["remedy"]
            .as_str()
            .unwrap()
            .contains("restore a backup"),
        "{found:#}"
    );
    assert_eq!(
        std::fs::read(&db).unwrap(),
        vec![b'x'; 8192],
        "verify changed the file"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sighup_is_logged_as_ignored_and_hale_keeps_running() {
    let mut hale = HaleProcess::serve(&test_config_json(), &[]).await;
    let addrs = hale.wait_listening(&ServiceKind::ALL).await;
    // One at a time: two signals sent back to back may be delivered as one.
    let mut lines = Vec::new();
    for n in 1..=2 {
        hale.signal("HUP");
        lines = eventually(&format!("{n} sighup log line(s)"), || async {
            let lines: Vec<Value> = hale
                .json_logs()
                .into_iter()
                .filter(|l| l["signal"] == "SIGHUP")
                .collect();
            (lines.len() == n).then_some(lines)
        })
        .await;
    }
    for line in &lines {
        assert_eq!(line["level"], "WARN", "{line}");
        assert_eq!(
            line["message"],
            "sighup ignored: hale cannot reload its config while running; restart hale to apply a changed config"
        );
    }
    // Still serving.
    let health = common::app::client()
        .get(format!(
            "http://{}/health",
            addrs[&ServiceKind::HealthProxy]
        ))
        .send()
        .await
        .expect("GET /health after the sighups");
    assert_eq!(health.status().as_u16(), 200);
    hale.signal("TERM");
    assert_eq!(exit_code(hale.wait_exit(DEADLINE).await), 0);
}

fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("list the folder")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn generate_args<'a>(
    db: &'a str,
    services: &'a str,
    days: &'a str,
    every: &'a str,
) -> Vec<&'a str> {
    vec![
        "history",
        "generate",
        "--db",
        db,
        "--services",
        services,
        "--days",
        days,
        "--interval-s",
        every,
        "--end",
        "2026-06-01T00:00:00Z",
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_generate_prints_its_estimate_and_refuses_one_over_the_cap_or_the_free_space() {
    let dir = tempfile::tempdir().expect("temp dir");
    // 10,000 services x 400 days every second: 345,600,000,000 checks.
    let out = run_hale(dir.path(), &generate_args("x.db", "10000", "400", "1")).await;
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(exit_code(out.status), 2, "{stderr}");
    assert!(
        stdout.starts_with(
            "estimate: 345600000000 health checks (10000 services x 34560000 checks), about 9676800000000 bytes (8.8 TiB) added to x.db"
        ),
        "{stdout}"
    );
    assert_eq!(
        stderr.trim_end(),
        "hale: the estimate of 345600000000 health checks (about 8.8 TiB) is over the cap of 50000000 checks; \
         pass --force to generate it anyway, or ask for fewer --services or --days or a longer --interval-s"
    );
    assert!(listing(dir.path()).is_empty(), "{:?}", listing(dir.path()));

    // Under the cap but over the free space: 604,800 checks, about 17 MB, on a 16 MB file system.
    let disk = common::process::Tmpfs::mount("16m");
    let out = run_hale(&disk.path, &generate_args("x.db", "1", "7", "1")).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(exit_code(out.status), 2, "{stderr}");
    assert!(
        stderr.starts_with("hale: the estimate of 604800 health checks needs about 16934400 bytes (16.1 MiB), more than the "),
        "{stderr}"
    );
    assert!(
        stderr.contains("free there; pass --force to try anyway"),
        "{stderr}"
    );
    assert!(listing(&disk.path).is_empty(), "{:?}", listing(&disk.path));

    // With --force it tries, the disk fills, and nothing is left but the lock file.
    let mut forced = generate_args("x.db", "1", "7", "1");
    forced.push("--force");
    let out = run_hale(&disk.path, &forced).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(exit_code(out.status), 0, "{stderr}");
    assert_eq!(listing(&disk.path), ["x.db.lock"], "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_generate_takes_up_to_99999_services() {
    let dir = tempfile::tempdir().expect("temp dir");
    // 20,000 services are taken: the run goes as far as its estimate (over the cap, so nothing is written).
    let out = run_hale(dir.path(), &generate_args("x.db", "20000", "400", "1")).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(exit_code(out.status), 2, "{stdout}");
    assert!(
        stdout
            .starts_with("estimate: 691200000000 health checks (20000 services x 34560000 checks)"),
        "{stdout}"
    );

    let out = run_hale(dir.path(), &generate_args("y.db", "100000", "1", "86400")).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(exit_code(out.status), 2, "{stderr}");
    assert!(
        stderr.contains("--services") && stderr.contains("100000"),
        "{stderr}"
    );
    assert!(listing(dir.path()).is_empty(), "{:?}", listing(dir.path()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_generate_writes_a_temp_file_so_a_stopped_run_leaves_no_database() {
    let dir = tempfile::tempdir().expect("temp dir");
    let temp_files = |dir: &Path| -> Vec<String> {
        listing(dir)
            .into_iter()
            .filter(|n| n.starts_with(".x.db.generate-"))
            .collect()
    };
    // 200 services x 60 days every 10 s: 103,680,000 checks, over the cap, so --force; minutes of work.
    let mut args = generate_args("x.db", "200", "60", "10");
    args.push("--force");
    for (signal, code) in [("TERM", 143), ("INT", 130)] {
        let mut cmd = common::process::hale_command(dir.path());
        cmd.args(&args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let child = cmd.spawn().expect("start hale");
        let pid = child.id().expect("pid");
        // Stopped once the temp file beside the target holds rows.
        eventually("rows in the temp file", || async {
            let temps = temp_files(dir.path());
            let size = temps
                .iter()
                .filter(|n| n.ends_with(".tmp") || n.ends_with(".tmp-wal"))
                .filter_map(|n| std::fs::metadata(dir.path().join(n)).ok())
                .map(|m| m.len())
                .sum::<u64>();
            (size > 1 << 20).then_some(())
        })
        .await;
        assert!(!dir.path().join("x.db").exists());
        let status = std::process::Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()
            .expect("kill");
        assert!(status.success());
        let out = tokio::time::timeout(DEADLINE, child.wait_with_output())
            .await
            .expect("hale stops")
            .expect("wait");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{stderr}");
        assert!(
            stderr.contains("removed the partial database, x.db is as it was"),
            "{stderr}"
        );
        assert_eq!(listing(dir.path()), ["x.db.lock"], "{stderr}");
    }

    // Killed outright, it cannot clean up: the temp file stays, but never at the target path, and the next
    // run removes it.
    let mut cmd = common::process::hale_command(dir.path());
    cmd.args(&args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut child = cmd.spawn().expect("start hale");
    eventually("the temp file", || async {
        (!temp_files(dir.path()).is_empty()).then_some(())
    })
    .await;
    child.kill().await.expect("kill -9");
    assert!(!dir.path().join("x.db").exists());
    assert!(!temp_files(dir.path()).is_empty());
    let out = run_hale(dir.path(), &generate_args("x.db", "2", "1", "60")).await;
    assert_eq!(
        exit_code(out.status),
        0,
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(listing(dir.path()), ["x.db", "x.db.lock"]);
    assert_eq!(
        common::db::count_check_rows(&dir.path().join("x.db"), "1 = 1").await,
        2 * 1440
    );

    // --append writes a copy and renames it too: the old rows and the new ones, nothing left beside.
    let mut append = generate_args("x.db", "2", "1", "60");
    let last = append.len() - 1;
    append[last] = "2026-06-02T00:00:00Z";
    append.push("--append");
    let out = run_hale(dir.path(), &append).await;
    assert_eq!(
        exit_code(out.status),
        0,
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(listing(dir.path()), ["x.db", "x.db.lock"]);
    assert_eq!(
        common::db::count_check_rows(&dir.path().join("x.db"), "1 = 1").await,
        2 * 2 * 1440
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_generate_append_on_a_database_hale_runs_on_is_refused_and_changes_nothing() {
    let mut hale = HaleProcess::serve(&test_config_json(), &[]).await;
    hale.wait_listening(&ServiceKind::ALL).await;
    let db = hale.db_path.clone();
    let folder = db.parent().expect("a folder").to_owned();
    let before = listing(&folder);
    let mut args = generate_args(db.to_str().expect("utf-8"), "1", "1", "60");
    args.push("--append");
    let out = run_hale(hale.dir.path(), &args).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(exit_code(out.status), 2, "{stderr}");
    assert_eq!(
        stderr.trim_end(),
        format!(
            "hale: database {} is in use by another hale (pid {}); stop it first or choose another --db",
            db.display(),
            hale.pid
        )
    );
    assert_eq!(listing(&folder), before);
    hale.signal("TERM");
    assert_eq!(exit_code(hale.wait_exit(DEADLINE).await), 0);
}
