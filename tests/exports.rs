//! `hale export dashboards|alerts|systemd|launchd` checked with the real tools: the committed files equal a
//! fresh export, promtool accepts the rules and their unit tests pass, a real Prometheus scraping a running
//! hale with the rules loaded answers every dashboard query with data, plists parse with Python's plistlib
//! and units pass `systemd-analyze verify`. The metric catalog is checked against a running hale's
//! `/metrics` and against every name a dashboard or rule reads.

// A test crate: an unwrap is an assertion, and tests/common sets a child's rlimit in `pre_exec`.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use hale::config::SloConfig;
use hale::export::{self, dashboards, promql, rules};
use hale::kind::ServiceKind;
use hale::metrics::catalog::{self, Appears, Exporter, CATALOG};
use serde_json::Value;

use common::app::TestApp;
use common::prom::{parse_samples, run_tool};
use common::receivers::HttpReceiver;
use common::{dead_port, repo};

/// Metrics of the catalog that appear only after an event this test does not cause, with the reason.
const NOT_CAUSED: [(&str, &str); 8] = [
    (
        "http_rate_limited_total",
        "rate limits are off in test configs",
    ),
    (
        "store_write_errors_total",
        "needs a failing database (tests/store_faults.rs)",
    ),
    (
        "events_lagged_total",
        "needs an event subscriber to fall behind",
    ),
    (
        "heal_attempts_total",
        "needs auto-heal configured (tests/heal.rs)",
    ),
    (
        "alerts_total",
        "needs an alert rule to fire and notify (tests/alert_delivery.rs)",
    ),
    (
        "mcp_servers",
        "needs an MCP server configured (tests/mcp.rs)",
    ),
    (
        "mcp_tool_calls_total",
        "needs a tool call through the MCP WebBridge (tests/mcp.rs)",
    ),
    (
        "mcp_tool_duration_seconds",
        "needs a tool call through the MCP WebBridge (tests/mcp.rs)",
    ),
];

/// Series names Prometheus itself makes, which the catalog does not hold.
const PROMETHEUS_SERIES: [&str; 1] = ["up"];

fn rule_names(slo: &SloConfig) -> BTreeSet<String> {
    rules::rule_files(slo)
        .expect("rules for the default config")
        .iter()
        .flat_map(|f| f.groups.iter())
        .flat_map(|g| g.rules.iter())
        .filter_map(|r| match r {
            rules::Rule::Record { record, .. } => Some(record.clone()),
            rules::Rule::Alert { .. } => None,
        })
        .collect()
}

/// Every series name read by `expr` is a catalog metric (or one of its histogram series), a recording
/// rule of the exported files, or a series Prometheus makes.
fn assert_known_names(what: &str, expr: &str, records: &BTreeSet<String>) {
    for name in promql::series_names(expr) {
        if name.contains(':') {
            assert!(
                records.contains(&name),
                "{what} reads the rule {name}, which no rule file records: {expr}"
            );
        } else {
            assert!(
                catalog::find(&name).is_some() || PROMETHEUS_SERIES.contains(&name.as_str()),
                "{what} reads {name}, which is not in src/metrics/catalog.rs: {expr}"
            );
        }
    }
}

#[test]
fn every_name_a_dashboard_or_rule_reads_is_in_the_catalog() {
    let slo = SloConfig::default();
    let records = rule_names(&slo);
    let mut checked = 0;
    for dashboard in dashboards::dashboards(&slo) {
        for panel in &dashboard.panels {
            for query in &panel.queries {
                assert_known_names(
                    &format!("{} / {}", dashboard.file, panel.title),
                    &query.expr,
                    &records,
                );
                checked += 1;
            }
        }
    }
    for file in rules::rule_files(&slo).unwrap() {
        for group in &file.groups {
            for rule in &group.rules {
                assert_known_names(
                    &format!("{} / {}", file.file, group.name),
                    rule.expr(),
                    &records,
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 50, "only {checked} expressions checked");
    // The check itself catches a rename.
    let caught = std::panic::catch_unwind(|| {
        assert_known_names("renamed", "rate(health_checks_total[5m])", &records)
    });
    assert!(caught.is_err(), "a renamed metric went unnoticed");
}

#[test]
fn committed_exports_match_the_code() {
    for (path, generated) in export::default_exports().expect("default exports") {
        let committed = std::fs::read_to_string(repo().join(&path)).unwrap_or_else(|e| {
            panic!("cannot read {path} ({e}); run `hale export` (see docs/exports.md) and commit the result")
        });
        assert!(
            committed == generated,
            "{path} differs from a fresh export: run `cargo run -- export ...` (docs/exports.md) and commit the result"
        );
    }
}

#[test]
fn every_alert_has_a_runbook_section() {
    let runbooks =
        std::fs::read_to_string(repo().join("docs/runbooks.md")).expect("docs/runbooks.md");
    for file in rules::rule_files(&SloConfig::default()).unwrap() {
        for group in &file.groups {
            for rule in &group.rules {
                if let rules::Rule::Alert {
                    alert,
                    labels,
                    annotations,
                    ..
                } = rule
                {
                    assert!(
                        runbooks.contains(&format!("\n## {alert}\n")),
                        "docs/runbooks.md has no section {alert}"
                    );
                    let annotation = |key: &str| {
                        annotations
                            .iter()
                            .find(|(k, _)| k == key)
                            .map(|(_, v)| v.as_str())
                    };
                    assert_eq!(
                        annotation("runbook_url"),
                        Some(
                            format!(
                                "{}#{}",
                                hale::config::default_runbook_base_url(),
                                alert.to_ascii_lowercase()
                            )
                            .as_str()
                        )
                    );
                    assert!(
                        annotation("summary").is_some() && annotation("description").is_some(),
                        "{alert}"
                    );
                    let severity = labels
                        .iter()
                        .find(|(k, _)| k == "severity")
                        .map(|(_, v)| v.as_str());
                    assert!(
                        matches!(severity, Some("critical" | "warning")),
                        "{alert}: {severity:?}"
                    );
                }
            }
        }
    }
}

#[test]
fn dashboards_follow_the_grafana_model() {
    for dashboard in dashboards::dashboards(&SloConfig::default()) {
        let json = dashboard.to_json();
        assert!(json["schemaVersion"].as_u64().unwrap() >= 41);
        assert_eq!(json["uid"], dashboard.uid);
        assert_eq!(json["__inputs"][0]["name"], "DS_PROMETHEUS");
        let vars = json["templating"]["list"].as_array().unwrap();
        let var = |name: &str| {
            vars.iter()
                .find(|v| v["name"] == name)
                .unwrap_or_else(|| panic!("no ${name}"))
        };
        assert_eq!(var("datasource")["type"], "datasource");
        assert_eq!(var("datasource")["query"], "prometheus");
        assert_eq!(var("target")["multi"], true);
        assert_eq!(var("target")["includeAll"], true);
        assert!(var("target")["definition"]
            .as_str()
            .unwrap()
            .starts_with("label_values("));
        assert_eq!(var("service")["query"], "health-proxy,mcp-bridge,boss-api");
        for panel in json["panels"].as_array().unwrap() {
            if panel["type"] == "row" {
                // A heading over the panels after it: no query of its own.
                assert!(panel.get("targets").is_none(), "{}", panel["title"]);
                continue;
            }
            assert_eq!(
                panel["datasource"]["uid"], "${datasource}",
                "{}",
                panel["title"]
            );
            assert!(
                ["timeseries", "stat", "gauge", "table"].contains(&panel["type"].as_str().unwrap())
            );
            let unit = panel["fieldConfig"]["defaults"]["unit"].as_str().unwrap();
            assert!(
                ["percentunit", "s", "short", "bytes"].contains(&unit),
                "{}: {unit}",
                panel["title"]
            );
        }
    }
}

#[tokio::test]
async fn promtool_accepts_the_rules_and_their_unit_tests_pass() {
    let files: Vec<String> = ["alerts/hale-rules.yml", "alerts/hale-slo-rules.yml"]
        .iter()
        .map(|f| repo().join(f).display().to_string())
        .collect();
    let args: Vec<&str> = std::iter::once("check")
        .chain(std::iter::once("rules"))
        .chain(files.iter().map(String::as_str))
        .collect();
    let (ok, out) = run_tool("promtool", &args, "prometheus").await;
    assert!(ok, "promtool check rules:\n{out}");

    let mut tests: Vec<String> = std::fs::read_dir(repo().join("tests/rules"))
        .expect("tests/rules")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.to_string_lossy().ends_with(".test.yml"))
        .map(|p| p.display().to_string())
        .collect();
    tests.sort();
    assert!(tests.len() >= 2, "{tests:?}");
    let args: Vec<&str> = ["test", "rules"]
        .into_iter()
        .chain(tests.iter().map(String::as_str))
        .collect();
    let (ok, out) = run_tool("promtool", &args, "prometheus").await;
    assert!(ok, "promtool test rules:\n{out}");

    // A broken rule is refused, so the check above means something.
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.yml");
    std::fs::write(
        &broken,
        "groups:\n  - name: x\n    rules:\n      - alert: X\n        expr: sum(\n",
    )
    .unwrap();
    let (ok, _) = run_tool(
        "promtool",
        &["check", "rules", broken.to_str().unwrap()],
        "prometheus",
    )
    .await;
    assert!(!ok, "promtool accepted a broken rule file");
}

/// Any whole number of milliseconds is a latency target: hale counts the checks within it itself
/// (`health_check_fast_total{threshold}`), and the exported rules read that threshold.
#[tokio::test]
async fn a_latency_target_between_the_histogram_buckets_is_exported() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.json");
    std::fs::write(&config, r#"{"slo": {"p95_latency_target_ms": 230}}"#).unwrap();
    let out = dir.path().join("alerts");
    let output = common::process::run_hale(
        dir.path(),
        &[
            "export",
            "alerts",
            "--out",
            out.to_str().unwrap(),
            "--config",
            config.to_str().unwrap(),
        ],
    )
    .await;
    assert!(output.status.success(), "{output:?}");
    let rules = std::fs::read_to_string(out.join("hale-slo-rules.yml")).unwrap();
    assert!(
        rules.contains(r#"health_check_fast_total{threshold="0.23"}[5m]"#),
        "{rules}"
    );
    assert!(!rules.contains(r#"threshold="0.2""#), "{rules}");
}

#[tokio::test]
async fn the_exported_units_pass_the_init_systems_checks() {
    let dir = tempfile::tempdir().unwrap();
    // Spaces, an ampersand and a percent sign in every path: quoting and escaping must hold.
    let base = dir.path().join("my hale & 100%");
    let bin_dir = base.join("bin dir");
    std::fs::create_dir_all(&bin_dir).unwrap();
    let binary = bin_dir.join("hale");
    std::fs::copy(common::process::hale_bin(), &binary).unwrap();
    let data = base.join("data dir");
    std::fs::create_dir_all(&data).unwrap();
    let config = base.join("conf dir/config.json");
    let db = data.join("hale.db");
    let systemd_out = dir.path().join("systemd");
    let launchd_out = dir.path().join("launchd");
    let s = |p: &Path| p.to_str().unwrap().to_owned();
    let output = common::process::run_hale(
        dir.path(),
        &[
            "export",
            "systemd",
            "--out",
            &s(&systemd_out),
            "--binary",
            &s(&binary),
            "--config",
            &s(&config),
            "--db",
            &s(&db),
            "--working-dir",
            &s(&data),
            "--user",
            "root",
        ],
    )
    .await;
    assert!(output.status.success(), "{output:?}");
    let unit_path = systemd_out.join("hale.service");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        format!("wrote {}\n", unit_path.display())
    );
    let unit = std::fs::read_to_string(&unit_path).unwrap();
    for line in [
        "Restart=on-failure",
        "RestartSec=5",
        "StartLimitIntervalSec=600",
        "StartLimitBurst=5",
        "KillMode=mixed",
        "KillSignal=SIGTERM",
        "TimeoutStopSec=40",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "PrivateTmp=yes",
    ] {
        assert!(unit.lines().any(|l| l == line), "{line} missing:\n{unit}");
    }
    let unit_section = unit.split("[Service]").next().unwrap();
    assert!(
        unit_section.contains("StartLimitBurst=5"),
        "the start limit belongs in [Unit]"
    );
    assert!(
        unit.contains(&format!(
            "ReadWritePaths=\"{}\"",
            s(&data).replace('%', "%%")
        )),
        "{unit}"
    );
    // systemd-analyze verify checks the syntax, that ExecStart's binary exists and is executable, and the
    // quoting (a wrongly split path names a binary that does not exist).
    let (ok, out) = run_tool("systemd-analyze", &["verify", &s(&unit_path)], "systemd").await;
    assert!(
        ok && !out.contains("hale.service:"),
        "systemd-analyze verify:\n{out}\n{unit}"
    );

    let output = common::process::run_hale(
        dir.path(),
        &[
            "export",
            "launchd",
            "--out",
            &s(&launchd_out),
            "--binary",
            &s(&binary),
            "--config",
            &s(&config),
            "--db",
            &s(&db),
            "--working-dir",
            &s(&data),
            "--log-dir",
            &s(&base.join("logs <1>")),
        ],
    )
    .await;
    assert!(output.status.success(), "{output:?}");
    let plist = launchd_out.join("com.hale.serve.plist");
    // plistlib reads it back: every value, with the escaped paths restored.
    let script =
        "import json,plistlib,sys; print(json.dumps(plistlib.load(open(sys.argv[1],'rb'))))";
    let (ok, out) = run_tool("python3", &["-c", script, &s(&plist)], "python3").await;
    assert!(ok, "plistlib rejects the plist:\n{out}");
    let parsed: Value = serde_json::from_str(out.trim()).expect("plistlib's JSON");
    assert_eq!(parsed["Label"], "com.hale.serve");
    assert_eq!(
        parsed["ProgramArguments"],
        serde_json::json!([s(&binary), "serve", "--config", s(&config), "--db", s(&db)])
    );
    assert_eq!(parsed["WorkingDirectory"], s(&data));
    assert_eq!(
        parsed["KeepAlive"],
        serde_json::json!({"SuccessfulExit": false})
    );
    assert_eq!(parsed["ThrottleInterval"], 30);
    assert_eq!(
        parsed["StandardErrorPath"],
        s(&base.join("logs <1>/hale.err.log"))
    );
    assert!(parsed["StandardOutPath"]
        .as_str()
        .unwrap()
        .ends_with("hale.out.log"));

    // The committed defaults parse too (their binary does not exist here, so systemd-analyze would refuse
    // them for that alone: the generated unit above covers the syntax).
    let (ok, out) = run_tool(
        "python3",
        &[
            "-c",
            script,
            &s(&repo().join("deploy/launchd/com.hale.serve.plist")),
        ],
        "python3",
    )
    .await;
    assert!(ok, "{out}");
}

/// The operate token of the watched hale, which starts workflow runs.
const OPS_ENV: &str = "HALE_EXPORTS_TEST_OPERATE";
const OPS_TOKEN: &str = "exports-operate-5Tg8Wc2Nq7Lr4Yb";

/// `config` with one workflow, `probe`: an HTTP step on the `web` target and a command step, so its runs
/// end quickly and succeed.
fn with_probe_workflow(mut config: hale::config::Config) -> hale::config::Config {
    let section = serde_json::json!({"definitions": [{
        "id": "probe",
        "concurrency": {"limit": 10},
        "steps": [
            {"id": "ask", "kind": "http", "target": "web", "path": "/health"},
            {"id": "done", "kind": "command", "argv": ["true"]}
        ]
    }]});
    config.workflows = hale::config::workflows::WorkflowsConfig::from_value(
        section,
        &hale::workflows::Environment::of(&config),
    )
    .unwrap_or_else(|e| panic!("invalid workflows: {}: {}", e.path, e.reason));
    config
}

/// hale with one target up (a local HTTP server), one down (a closed port, its breaker opening at the first
/// failure) and one whose supervised child keeps crashing (restarts), checked every second, and one
/// workflow (`probe`) the operate token may start.
async fn spawn_watched_hale() -> (TestApp, HttpReceiver) {
    let receiver = HttpReceiver::start(vec![(200, "ok"); 100_000]).await;
    let mut config = common::config::TestConfig::new()
        .token(hale::auth::Role::Operate, OPS_ENV, OPS_TOKEN)
        .build();
    config.services = serde_json::from_value(serde_json::json!([
        {"name": "web", "url": format!("http://{}/health", receiver.addr), "interval_s": 1, "timeout_ms": 500},
        {"name": "db", "url": format!("http://127.0.0.1:{}/", dead_port()), "interval_s": 1, "timeout_ms": 500,
         "breaker": {"failure_threshold": 1, "open_timeout_s": 3600}},
        {"name": "worker", "url": format!("tcp://127.0.0.1:{}", dead_port()), "interval_s": 1, "timeout_ms": 500,
         "run": {"argv": ["sh", "-c", "sleep 0.2; exit 1"], "backoff_initial_ms": 100, "stop_timeout_s": 1}}
    ]))
    .expect("target configs");
    // The bridge's series: one MCP server (the in-repo one, over stdio) whose tools loopback may call.
    config.mcp_servers = vec![serde_json::from_value(serde_json::json!({
        "name": "tools",
        "command": [common::mcp_fixture::fixture().display().to_string(), "stdio"],
        "call_role": "read",
    }))
    .expect("an MCP server config")];
    // The slo_* gauges are recomputed every second rather than every minute.
    config.slo.refresh_interval_s = 1;
    let config = with_probe_workflow(config);
    let app = common::app::spawn_app_with(config).await;
    (app, receiver)
}

/// Requests that cause the events the dashboards show: answered requests and a 404 on every service,
/// on-demand checks, a tool call and a run of the `probe` workflow.
async fn cause_events(app: &TestApp) {
    for kind in ServiceKind::ALL {
        let _ = app.get(kind, "/no-such-route").await;
        let _ = app.get(kind, "/metrics").await;
    }
    let _ = app.get(ServiceKind::HealthProxy, "/health/all").await;
    // A tool call (404 until the server is connected and its tools listed).
    let _ = common::app::client()
        .post(app.url(ServiceKind::McpBridge, "/tools/echo"))
        .json(&serde_json::json!({"message": "dashboards"}))
        .send()
        .await;
    let started = app
        .request(
            reqwest::Method::POST,
            ServiceKind::BossApi,
            "/workflow/probe/start",
        )
        .bearer_auth(OPS_TOKEN)
        .json(&serde_json::json!({"reason": "exports test"}))
        .send()
        .await
        .expect("start a run of probe");
    assert_eq!(started.status().as_u16(), 202, "start a run of probe");
}

#[tokio::test]
async fn every_catalog_metric_is_on_metrics_or_documented_as_after_an_event() {
    let (mut app, _receiver) = spawn_watched_hale().await;
    cause_events(&app).await;
    let caused_by_this_test = [
        "errors_total",
        "circuit_breaker_transitions_total",
        "restarts_total",
        "child_running",
        "workflow_run_duration_seconds",
    ];
    let texts = common::eventually("every expected metric", || async {
        let mut texts = std::collections::HashMap::new();
        for kind in ServiceKind::ALL {
            texts.insert(kind, app.metrics(kind).await);
        }
        let proxy = &texts[&ServiceKind::HealthProxy];
        let present = |name: &str| {
            texts
                .values()
                .any(|text| text.lines().any(|l| l.starts_with(name)))
        };
        let ready = caused_by_this_test.iter().all(|n| present(n))
            && proxy
                .lines()
                .any(|l| l.starts_with("health_check_on_demand_total{") && !l.ends_with(" 0"))
            && common::prom::sample_sum(proxy, "health_check_total", &[("target", "web")])
                .is_some_and(|n| n >= 1.0)
            && present("target_up{target=\"worker\"}");
        ready.then_some(texts)
    })
    .await;
    for (kind, text) in &texts {
        let types: BTreeMap<&str, &str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split_once(' '))
            .collect();
        let helps: BTreeMap<&str, &str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# HELP "))
            .filter_map(|l| l.split_once(' '))
            .collect();
        // Everything served is in the catalog, with its type, help and label names.
        for (name, kind_text) in &types {
            let def = catalog::by_name(name)
                .unwrap_or_else(|| panic!("{kind} serves {name}, which is not in the catalog"));
            assert_eq!(*kind_text, def.kind.as_str(), "type of {name}");
            assert_eq!(helps.get(name).copied(), Some(def.help), "help of {name}");
        }
        for sample in parse_samples(text) {
            let def = catalog::find(&sample.name).unwrap();
            // A histogram's buckets add `le`.
            let bucket = def.kind == catalog::MetricKind::Histogram;
            let labels: BTreeSet<&str> = sample
                .labels
                .keys()
                .map(String::as_str)
                .filter(|l| !(bucket && *l == "le"))
                .collect();
            let expected: BTreeSet<&str> = def.labels.iter().copied().collect();
            assert_eq!(labels, expected, "labels of {}", sample.name);
        }
        // Everything in the catalog for this service is served, unless documented as appearing later.
        for def in CATALOG {
            let here = match def.exporter {
                Exporter::EveryService | Exporter::Process => true,
                Exporter::HealthProxy | Exporter::SloEngine => *kind == ServiceKind::HealthProxy,
                Exporter::McpBridge => *kind == ServiceKind::McpBridge,
                Exporter::BossApi => *kind == ServiceKind::BossApi,
            };
            if !here {
                assert!(
                    !types.contains_key(def.name),
                    "{kind} serves {}, another service's metric",
                    def.name
                );
                continue;
            }
            let served = types.contains_key(def.name);
            match def.appears {
                Appears::AfterCheck => {
                    assert!(served, "{kind} does not serve {} after a check", def.name)
                }
                Appears::AfterEvent(event) => {
                    if caused_by_this_test.contains(&def.name) {
                        assert!(
                            served,
                            "{kind} does not serve {} after {event}, which the test caused",
                            def.name
                        );
                    } else if def.exporter == Exporter::SloEngine {
                        // Registered by the SLO engine (branch `slo`), not here yet.
                    } else if !served {
                        assert!(
                            NOT_CAUSED.iter().any(|(name, _)| *name == def.name),
                            "{} (after {event}) is neither served nor listed in NOT_CAUSED",
                            def.name
                        );
                    }
                }
            }
        }
    }
    // Scheduled checks are counted per target, on-demand ones (the test's /health/all) for all targets
    // together, and the latency histogram has both sources without a target.
    let proxy = &texts[&ServiceKind::HealthProxy];
    assert!(
        common::prom::sample_sum(proxy, "health_check_total", &[("target", "web")])
            .is_some_and(|n| n >= 1.0),
        "{proxy}"
    );
    assert!(
        common::prom::sample_sum(proxy, "health_check_on_demand_total", &[])
            .is_some_and(|n| n >= 3.0),
        "{proxy}"
    );
    for source in ["monitor", "on_demand"] {
        assert!(
            common::prom::sample_value(
                proxy,
                "health_check_duration_seconds_count",
                &[("source", source)]
            )
            .is_some_and(|n| n >= 1.0),
            "{source}: {proxy}"
        );
    }
    app.shutdown().await;
}

/// A free TCP port on 127.0.0.1 for Prometheus to listen on.
fn free_port() -> u16 {
    dead_port()
}

struct Prometheus {
    child: tokio::process::Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    async fn start(app: &TestApp) -> Self {
        let addrs: Vec<std::net::SocketAddr> =
            ServiceKind::ALL.iter().map(|k| app.addr(*k)).collect();
        Self::start_at(&addrs).await
    }

    /// Prometheus scraping these addresses (job `hale`) every second, with the exported rules evaluated
    /// every second; ready once it answers `/-/ready` (the addresses need not listen yet).
    async fn start_at(addrs: &[std::net::SocketAddr]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let targets: Vec<String> = addrs.iter().map(|a| format!("\"{a}\"")).collect();
        let rule_files: Vec<String> = ["alerts/hale-rules.yml", "alerts/hale-slo-rules.yml"]
            .iter()
            .map(|f| format!("  - \"{}\"", repo().join(f).display()))
            .collect();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n{}\nscrape_configs:\n  - job_name: {}\n    static_configs:\n      - targets: [{}]\n",
            rule_files.join("\n"),
            rules::SCRAPE_JOB,
            targets.join(", ")
        );
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config).unwrap();
        let (ok, out) = run_tool(
            "promtool",
            &["check", "config", config_path.to_str().unwrap()],
            "prometheus",
        )
        .await;
        assert!(ok, "{out}");
        let child = match tokio::process::Command::new("prometheus")
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
        {
            Ok(child) => child,
            Err(e) => panic!(
                "cannot run prometheus ({e}): install the `prometheus` package (scripts/test does)"
            ),
        };
        let prometheus = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        };
        let client = common::app::client();
        let ready = format!("{}/-/ready", prometheus.url);
        common::eventually("prometheus ready", || {
            let client = client.clone();
            let ready = ready.clone();
            async move {
                client
                    .get(&ready)
                    .send()
                    .await
                    .ok()
                    .filter(|r| r.status().is_success())
            }
        })
        .await;
        prometheus
    }

    /// `GET /api/v1/query`: the status and the result.
    async fn query(&self, expr: &str) -> (String, Value) {
        self.query_at(expr, None).await
    }

    /// `GET /api/v1/query` at a given evaluation time (Unix seconds), or now.
    async fn query_at(&self, expr: &str, time: Option<f64>) -> (String, Value) {
        let mut params = vec![("query", expr.to_owned())];
        if let Some(time) = time {
            params.push(("time", format!("{time:.3}")));
        }
        let res = common::app::client()
            .get(format!("{}/api/v1/query", self.url))
            .query(&params)
            .send()
            .await
            .expect("query prometheus");
        let body: Value = res.json().await.expect("prometheus answers JSON");
        (body["status"].as_str().unwrap_or_default().to_owned(), body)
    }
}

/// A panel query as Grafana sends it, with the dashboard variables filled in.
fn substitute(expr: &str) -> String {
    expr.replace("$__rate_interval", "1m")
        .replace("$__interval", "15s")
        .replace("$__range", "5m")
        .replace("$target", ".*")
        .replace("$service", ".*")
}

#[tokio::test]
async fn prometheus_answers_every_dashboard_query_with_data() {
    let (mut app, _receiver) = spawn_watched_hale().await;
    let mut prometheus = Prometheus::start(&app).await;
    let queries: Vec<(String, String, String)> = dashboards::dashboards(&SloConfig::default())
        .into_iter()
        .flat_map(|d| {
            d.panels.into_iter().flat_map(move |p| {
                p.queries
                    .into_iter()
                    .map(move |q| (d.file.to_owned(), p.title.to_owned(), q.expr))
            })
        })
        .collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut missing: Vec<String>;
    loop {
        cause_events(&app).await;
        missing = Vec::new();
        for (file, title, expr) in &queries {
            let expr = substitute(expr);
            let (status, body) = prometheus.query(&expr).await;
            assert_eq!(status, "success", "{file} / {title}: {expr}\n{body}");
            let empty = body["data"]["result"].as_array().is_none_or(Vec::is_empty);
            if empty {
                missing.push(format!("{file} / {title}: {expr}"));
            }
        }
        if missing.is_empty() || tokio::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    assert!(
        missing.is_empty(),
        "panels without data after 60 s:\n{}",
        missing.join("\n")
    );

    // The rules loaded and evaluate: the down target's breaker alert is pending or firing, and the fast
    // availability burn of the down target is recorded. Rules are evaluated every second, after the
    // scrape that brought the panels their data, so each is given a few rounds.
    for expr in [
        "ALERTS{alertname=\"HaleCircuitBreakerOpen\",target=\"db\"}",
        "slo:current_burn_rate:ratio{sloth_slo=\"target-availability\",target=\"db\"} > 1",
    ] {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let (_, body) = prometheus.query(expr).await;
            if !body["data"]["result"].as_array().unwrap().is_empty() {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{expr}: no result within 20 s: {body}"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    let _ = prometheus.child.kill().await;
    app.shutdown().await;
}

/// Every series the catalog creates at start (`at_start`) is on a fresh hale's `/metrics` at 0, before any
/// check failed: checks by target, outcome and source, their latency histograms, every error type of every
/// service, heal attempts by outcome of the targets hale can heal, and alert notices of every rule in force
/// on the channels it reaches. Without them a target's first failure (or first error, heal, alert) is a
/// series that appears at 1, which `rate()` and `increase()` cannot see.
#[tokio::test]
async fn a_fresh_hale_exports_every_catalog_start_series_at_zero() {
    let receiver = HttpReceiver::start(vec![(200, "ok"); 100_000]).await;
    let mut config = common::config::test_config();
    config.services = serde_json::from_value(serde_json::json!([
        {"name": "api", "url": receiver.url("/health"), "interval_s": 1, "timeout_ms": 500,
         "heal": {"command": ["true"], "command_timeout_s": 5}},
        {"name": "web", "url": receiver.url("/health"), "interval_s": 1, "timeout_ms": 500}
    ]))
    .expect("target configs");
    let config = with_probe_workflow(config);
    let known = hale::metrics::StartLabels {
        targets: vec!["api".to_owned(), "web".to_owned()],
        healable: vec!["api".to_owned()],
        // No channel is configured in the test config: every default rule reaches the log only.
        rules: config
            .alerts
            .active_rules()
            .map(|rule| hale::metrics::StartRule {
                name: rule.name.clone(),
                level: rule.level.as_str(),
                channels: vec!["log"],
            })
            .collect(),
        latency_target_ms: config.slo.p95_latency_target_ms,
        workflows: vec!["probe".to_owned()],
    };
    let mut app = common::app::spawn_app_with(config).await;
    let mut checked = 0;
    for kind in ServiceKind::ALL {
        let text = app.metrics(kind).await;
        let samples = parse_samples(&text);
        for def in CATALOG.iter().filter(|d| !d.at_start.is_empty()) {
            let here = match def.exporter {
                Exporter::EveryService | Exporter::Process => true,
                Exporter::HealthProxy | Exporter::SloEngine => kind == ServiceKind::HealthProxy,
                Exporter::McpBridge => kind == ServiceKind::McpBridge,
                Exporter::BossApi => kind == ServiceKind::BossApi,
            };
            if !here {
                continue;
            }
            let rows = def.series_at_start(Some(kind.as_str()), &known);
            assert!(!rows.is_empty(), "{}: no series at start", def.name);
            for row in rows {
                let labels: Vec<(&str, &str)> = def
                    .labels
                    .iter()
                    .copied()
                    .zip(row.iter().map(String::as_str))
                    .collect();
                // A histogram's count stands for its series; a target that answered up may have been
                // checked already (only its `up` checks and their latencies can have moved).
                let series = def.series_names().pop().unwrap_or_default();
                let up = labels.contains(&("outcome", "up"))
                    || def.name == catalog::HEALTH_CHECK_DURATION_SECONDS_DEF.name
                    || def.name == catalog::HEALTH_CHECK_FAST_TOTAL_DEF.name;
                let value = samples
                    .iter()
                    .find(|s| {
                        s.name == series
                            && labels
                                .iter()
                                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
                    })
                    .map(|s| s.value)
                    .unwrap_or_else(|| {
                        panic!("{kind}: {series} {labels:?} is not exported at start")
                    });
                if !up {
                    assert_eq!(value, 0.0, "{kind}: {series} {labels:?}");
                }
                checked += 1;
            }
        }
    }
    // The sets come from the config and the closed enums, not from a list in the code under test.
    let proxy = app.metrics(ServiceKind::HealthProxy).await;
    for (name, labels) in [
        (
            "health_check_total",
            vec![("target", "web"), ("outcome", "timeout")],
        ),
        (
            "health_check_fast_total",
            vec![("target", "web"), ("threshold", "0.2")],
        ),
        (
            "heal_attempts_total",
            vec![("target", "api"), ("outcome", "healed")],
        ),
        (
            "alerts_total",
            vec![
                ("level", "critical"),
                ("rule", "target_down"),
                ("channel", "log"),
                ("result", "sent"),
            ],
        ),
        (
            "alerts_total",
            vec![
                ("rule", "target_down"),
                ("channel", "none"),
                ("result", "inhibited"),
            ],
        ),
        (
            "errors_total",
            vec![("service", "health-proxy"), ("type", "internal")],
        ),
    ] {
        assert_eq!(
            common::prom::sample_sum(&proxy, name, &labels),
            Some(0.0),
            "{name} {labels:?}"
        );
    }
    // web cannot be healed, and a held-back notice is never on a real channel.
    assert_eq!(
        common::prom::sample_sum(&proxy, "heal_attempts_total", &[("target", "web")]),
        None
    );
    assert_eq!(
        common::prom::sample_sum(
            &proxy,
            "alerts_total",
            &[("channel", "log"), ("result", "suppressed")]
        ),
        None
    );
    // The workflow of the config, in each final state, and every step kind by outcome.
    let boss = app.metrics(ServiceKind::BossApi).await;
    for (name, labels) in [
        ("workflow_runs_started_total", vec![("workflow", "probe")]),
        (
            "workflow_runs_finished_total",
            vec![("workflow", "probe"), ("status", "interrupted")],
        ),
        (
            "workflow_step_attempts_total",
            vec![("kind", "approval"), ("outcome", "failed")],
        ),
        ("workflow_runs_active", vec![]),
        ("workflow_queue_depth", vec![]),
        ("workflow_approvals_waiting", vec![]),
    ] {
        assert_eq!(
            common::prom::sample_sum(&boss, name, &labels),
            Some(0.0),
            "{name} {labels:?}"
        );
    }
    // 2 targets × 5 outcomes and × 1 latency objective, 5 on-demand outcomes, 2 histograms (by source),
    // 3 services × 16 error types, 9 heal outcomes, per default rule (7): 3 results on the log and 2 on
    // none; and 1 workflow started and in 5 final states, 8 step kinds × 3 outcomes.
    assert_eq!(
        checked,
        10 + 2 + 5 + 2 + 48 + 9 + 7 * 5 + (1 + 5) + 8 * 3,
        "series checked"
    );
    app.shutdown().await;
}

/// The cardinality budget: once every target has been checked, each adds exactly the catalog's
/// `SERIES_PER_TARGET` series to the Health Proxy's `/metrics` (the number docs/metrics.md states), and the
/// whole answer grows by that slope from 3 targets to 9: nothing else grows with the targets.
#[tokio::test]
async fn every_target_adds_the_catalogs_series_per_target_and_nothing_else_grows() {
    let docs = std::fs::read_to_string(repo().join("docs/metrics.md")).expect("docs/metrics.md");
    let stated = format!("**{} series per target**", catalog::SERIES_PER_TARGET);
    assert!(
        docs.contains(&stated),
        "docs/metrics.md does not say {stated}"
    );

    let receiver = HttpReceiver::start(vec![(200, "ok"); 100_000]).await;
    let mut totals = Vec::new();
    for n in [3usize, 9] {
        let mut config = common::config::test_config();
        config.services = serde_json::from_value(Value::Array(
            (0..n)
                .map(|i| {
                    serde_json::json!({
                        "name": format!("svc-{i:05}"), "url": receiver.url(&format!("/t{i}")),
                        "interval_s": 1, "timeout_ms": 500
                    })
                })
                .collect(),
        ))
        .expect("target configs");
        let mut app = common::app::spawn_app_with(config).await;
        let proxy = ServiceKind::HealthProxy;
        common::eventually("every target checked", || async {
            let text = app.metrics(proxy).await;
            let up = parse_samples(&text)
                .iter()
                .filter(|s| s.name == "target_up")
                .count();
            (up == n).then_some(())
        })
        .await;
        // One more scrape, so the answer counts the same routes in both runs (its own request included).
        let text = app.metrics(proxy).await;
        let samples = parse_samples(&text);
        let mut per_target: BTreeMap<String, usize> = BTreeMap::new();
        for sample in &samples {
            if let Some(target) = sample.labels.get("target") {
                *per_target.entry(target.clone()).or_default() += 1;
            }
        }
        assert_eq!(per_target.len(), n, "{per_target:?}");
        for (target, count) in &per_target {
            assert_eq!(
                *count,
                catalog::SERIES_PER_TARGET,
                "series of {target}:\n{text}"
            );
        }
        totals.push(samples.len());
        app.shutdown().await;
    }
    assert_eq!(
        totals[1] - totals[0],
        6 * catalog::SERIES_PER_TARGET,
        "series with 3 and 9 targets: {totals:?}"
    );
}

/// A probe target with a known failure pattern: every `every`-th request is answered with a 500 (`Fail`)
/// or only after `delay` (`Slow`, past the checker's timeout); the others with 200. No request is answered
/// before `gate` opens, so no check ends before Prometheus has scraped hale once.
struct PatternTarget {
    addr: std::net::SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Clone, Copy)]
enum Pattern {
    Up,
    Fail(u64),
    Slow(u64, Duration),
}

impl PatternTarget {
    async fn start(pattern: Pattern, gate: tokio::sync::watch::Receiver<bool>) -> Self {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind(common::any_port())
            .await
            .expect("bind a pattern target");
        let addr = listener.local_addr().expect("target address");
        let count = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let task = tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let count = count.clone();
                let mut gate = gate.clone();
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    let mut head = Vec::new();
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match socket.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let _ = gate.wait_for(|open| *open).await;
                    let n = count.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                    let status = match pattern {
                        Pattern::Fail(every) if n.is_multiple_of(every) => 500,
                        Pattern::Slow(every, delay) if n.is_multiple_of(every) => {
                            tokio::time::sleep(delay).await;
                            200
                        }
                        _ => 200,
                    };
                    let answer = format!(
                        "HTTP/1.1 {status} X\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"
                    );
                    let _ = socket.write_all(answer.as_bytes()).await;
                    let _ = socket.shutdown().await;
                });
            }
        });
        Self { addr, task }
    }
}

impl Drop for PatternTarget {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The goal of docs/slo.md, in CI form: on a fresh start with targets of known failure rates (always up;
/// every 5th probe a 500; every 10th probe past its timeout), the exported window rule evaluated by a real
/// Prometheus agrees with hale's `/slo` availability within 0.1 pp for every target, and no `slo:` series
/// is NaN. Both sides are compared at a moment when they count the same checks: hale's stored checks (what
/// `/slo` reads) and the checks in Prometheus's latest scrape can differ by the one check made between a
/// scrape and the write of its row, which is sampling, not the rule.
#[tokio::test]
async fn the_exported_window_rule_agrees_with_hale_slo_on_a_fresh_start() {
    let (open, gate) = tokio::sync::watch::channel(false);
    let targets = [
        ("steady", Pattern::Up),
        ("flaky", Pattern::Fail(5)),
        ("slow", Pattern::Slow(10, Duration::from_millis(1_500))),
    ];
    let mut servers = Vec::new();
    let mut services = Vec::new();
    for (name, pattern) in targets {
        let server = PatternTarget::start(pattern, gate.clone()).await;
        services.push(serde_json::json!({
            "name": name, "url": format!("http://{}/health", server.addr), "interval_s": 1,
            "timeout_ms": 1_000, "breaker": {"failure_threshold": 100}
        }));
        servers.push(server);
    }
    let mut config = common::config::test_config();
    config.services = serde_json::from_value(Value::Array(services)).expect("target configs");
    // Fixed ports, so Prometheus scrapes them from hale's first moment on.
    let ports: Vec<std::net::SocketAddr> = (0..3)
        .map(|_| std::net::SocketAddr::from(([127, 0, 0, 1], dead_port())))
        .collect();
    config.listen.health_proxy = ports[0];
    config.listen.mcp_bridge = ports[1];
    config.listen.boss_api = ports[2];
    open.send_replace(true);
    let mut prometheus = Prometheus::start_at(&ports).await;
    let mut app = common::app::spawn_app_with(config).await;
    let started = tokio::time::Instant::now();

    // The exported rule of the SLO window, as Prometheus evaluates it.
    let slo = SloConfig::default();
    let file = rules::slo_rules(&slo).unwrap();
    let window = format!("slo:sli_error:ratio_rate{}d", slo.window_days);
    let rule_expr = file
        .groups
        .iter()
        .flat_map(|g| g.rules.iter())
        .find_map(|r| match r {
            rules::Rule::Record {
                record,
                expr,
                labels,
            } if *record == window
                && labels
                    .iter()
                    .any(|(k, v)| k == "sloth_slo" && v == "target-availability") =>
            {
                Some(expr.clone())
            }
            _ => None,
        })
        .expect("the window rule");
    let total_expr = format!(
        "sum by (target) (increase(health_check_total[{}d]))",
        slo.window_days
    );

    // At least 40 s of checks (`HALE_AGREEMENT_RUN_S` for the 5-minute measurement of docs/slo.md), then
    // compare each target once both sides count the same checks.
    let run_s = std::env::var("HALE_AGREEMENT_RUN_S")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40);
    tokio::time::sleep_until(started + Duration::from_secs(run_s)).await;
    let mut compared: BTreeMap<String, (f64, f64, u64)> = BTreeMap::new();
    let mut last_seen: BTreeMap<String, (u64, f64)> = BTreeMap::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while compared.len() < targets.len() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "both sides never counted the same checks: {compared:?}; last (hale valid, scraped): {last_seen:?}"
        );
        // The time of the latest scrape: the rule evaluated there reads exactly the scraped counts, and hale's
        // SLO over the window ending there (what `/slo` computes, `slo::evaluate`) the checks made before it.
        let (_, stamp) = prometheus.query("max(timestamp(health_check_total))").await;
        let at = stamp["data"]["result"][0]["value"][1]
            .as_str()
            .and_then(|v| v.parse::<f64>().ok())
            .expect("a scrape time");
        // The run as Prometheus saw it: from its first scrape of hale (checks made before it are in that
        // first sample, so no rule can count them), to this one.
        let (_, raw) = prometheus
            .query_at("health_check_total[1h]", Some(at))
            .await;
        let first = raw["data"]["result"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s["values"][0][0].as_f64())
            .fold(f64::INFINITY, f64::min);
        let week = format!("[{}d]", slo.window_days);
        // 1 ms more than the run, so the first scrape is inside the range.
        let run = format!("[{}ms]", ((at - first) * 1000.0).round() as i64 + 1);
        let (_, ratios) = prometheus
            .query_at(&rule_expr.replace(&week, &run), Some(at))
            .await;
        let (_, totals) = prometheus
            .query_at(&total_expr.replace(&week, &run), Some(at))
            .await;
        // The rows of the checks before the scrape are written within storage.flush_interval_ms.
        tokio::time::sleep(Duration::from_millis(600)).await;
        let ms =
            |t: f64| chrono::DateTime::from_timestamp_millis((t * 1000.0).round() as i64).unwrap();
        let window = hale::slo::SloWindow {
            label: "run".to_owned(),
            from: ms(first),
            until: ms(at),
        };
        let core = app.core();
        let hale_slos = hale::slo::evaluate(&core.store, &core.config, &window, None, false)
            .await
            .expect("hale's SLO");
        let by_target = |body: &Value| -> BTreeMap<String, f64> {
            body["data"]["result"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|s| {
                    let target = s["metric"]["target"].as_str()?.to_owned();
                    let value = s["value"][1].as_str()?.parse::<f64>().ok()?;
                    Some((target, value))
                })
                .collect()
        };
        let (ratios, totals) = (by_target(&ratios), by_target(&totals));
        for entry in &hale_slos {
            let valid = entry.availability.valid;
            let scraped = totals.get(&entry.target).copied().unwrap_or(-1.0);
            // A check recorded in the few milliseconds between the scrape's start and its reading of the
            // counters is in one and not the other: take the next scrape.
            if compared.contains_key(&entry.target) || scraped.round() != valid as f64 {
                last_seen.insert(entry.target.clone(), (valid, scraped));
                continue;
            }
            let hale_ratio = entry.availability.ratio.expect("valid checks");
            let rule = 1.0 - ratios[&entry.target];
            compared.insert(entry.target.clone(), (hale_ratio, rule, valid));
        }
    }
    for (target, (hale_ratio, rule, valid)) in &compared {
        eprintln!(
            "{target}: hale {:.3} %, Prometheus {:.3} %, {valid} checks, after {} s",
            hale_ratio * 100.0,
            rule * 100.0,
            started.elapsed().as_secs()
        );
        assert!(
            (hale_ratio - rule).abs() * 100.0 < 0.1,
            "{target}: hale {:.3} %, Prometheus {:.3} % over {valid} checks",
            hale_ratio * 100.0,
            rule * 100.0
        );
        assert!(*valid >= 20, "{target}: only {valid} checks");
    }
    let flaky = compared["flaky"].0;
    assert!(flaky < 0.9 && compared["steady"].0 == 1.0, "{compared:?}");
    // No recording rule holds NaN: 0/0 is recorded as no sample.
    common::eventually("the window rule recorded", || async {
        let (_, body) = prometheus.query(&window).await;
        (body["data"]["result"].as_array()?.len() >= targets.len()).then_some(())
    })
    .await;
    let (_, all) = prometheus.query("{__name__=~\"slo:.+\"}").await;
    let all = all["data"]["result"]
        .as_array()
        .expect("slo series")
        .clone();
    assert!(!all.is_empty());
    for series in &all {
        assert_ne!(series["value"][1], "NaN", "{series}");
    }
    let _ = prometheus.child.kill().await;
    app.shutdown().await;
    drop(servers);
}
