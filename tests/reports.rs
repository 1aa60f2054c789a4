//! `hale history generate`, `hale slo report` and the status page (`GET /` on the Health Proxy), through
//! the real binary, a real database file and a real headless Chromium.

// A test crate: an unwrap is an assertion, and tests/common sets a child's rlimit in `pre_exec`.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::Stdio;

use common::app::spawn_app_with;
use common::config::{test_config_json, TestConfig};
use common::db::{count_check_rows, count_rows};
use common::process::{exit_code, run_hale};
use common::receivers::HttpReceiver;
use common::{dead_port, eventually, DEADLINE};
use hale::config::Config;
use hale::kind::ServiceKind;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Generates `services` services of 7 days of history every 60 s, ending now, into `dir/hale.db`.
async fn generate(dir: &Path, services: &str) {
    let out = run_hale(
        dir,
        &[
            "history",
            "generate",
            "--db",
            "hale.db",
            "--services",
            services,
            "--days",
            "7",
            "--interval-s",
            "60",
            "--seed",
            "42",
        ],
    )
    .await;
    assert_eq!(exit_code(out.status), 0, "{}", text(&out.stderr));
}

async fn report(dir: &Path, args: &[&str]) -> (i32, String, String) {
    std::fs::write(dir.join("config.json"), test_config_json().to_string()).unwrap();
    let mut all = vec![
        "slo",
        "report",
        "--db",
        "hale.db",
        "--config",
        "config.json",
    ];
    all.extend_from_slice(args);
    let out = run_hale(dir, &all).await;
    (exit_code(out.status), text(&out.stdout), text(&out.stderr))
}

#[tokio::test]
async fn the_generator_writes_every_check_and_its_rollups_deterministically() {
    let dir = tempfile::tempdir().unwrap();
    let args = |db: &'static str| {
        vec![
            "history",
            "generate",
            "--db",
            db,
            "--services",
            "4",
            "--days",
            "2",
            "--interval-s",
            "60",
            "--seed",
            "7",
            "--end",
            "2026-01-10T00:00:00Z",
        ]
    };
    let out = run_hale(dir.path(), &args("a.db")).await;
    assert_eq!(exit_code(out.status), 0, "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("wrote 11520 health checks"), "{stdout}");
    assert!(stdout.contains("rows/s"), "{stdout}");
    // Not a terminal: no progress bar.
    assert!(
        !text(&out.stderr).contains("generate ["),
        "{}",
        text(&out.stderr)
    );

    let db = dir.path().join("a.db");
    // 4 services x 2 days x 1440 checks a day; 48 hourly rollups each.
    assert_eq!(count_check_rows(&db, "1").await, 11_520);
    assert_eq!(count_rows(&db, "health_check_hourly", "1").await, 4 * 48);
    assert_eq!(
        count_rows(&db, "health_check_hourly", "1").await,
        count_rows(
            &db,
            "(SELECT DISTINCT service, checked_at_ms / 3600000 FROM health_checks)",
            "1"
        )
        .await
    );
    // The rollups hold every check.
    assert_eq!(
        count_rows(&db, "health_check_hourly", "1").await,
        count_rows(&db, "health_check_hourly", "total = 60").await
    );
    // Outages, restarts, heals, alerts.
    assert!(count_check_rows(&db, "outcome IN ('down', 'timeout')").await > 0);
    assert!(count_check_rows(&db, "latency_us > 200000 AND outcome = 'up'").await > 0);
    assert!(count_rows(&db, "child_runs", "cause IN ('exited', 'heal')").await > 0);
    assert!(count_rows(&db, "heal_events", "1").await > 0);
    assert!(count_rows(&db, "alerts", "1").await > 0);
    // svc-001 is the clean baseline: down only while it is upgraded, inside its one maintenance window.
    assert_eq!(count_rows(&db, "maintenance_windows", "1").await, 1);
    assert_eq!(
        count_rows(
            &db,
            "maintenance_windows",
            "target = 'svc-001' AND ends_at_ms - starts_at_ms = 2700000"
        )
        .await,
        1
    );
    let in_maintenance = "checked_at_ms >= (SELECT starts_at_ms FROM maintenance_windows)
        AND checked_at_ms < (SELECT ends_at_ms FROM maintenance_windows)";
    assert!(
        count_check_rows(
            &db,
            &format!("service = 'svc-001' AND outcome != 'up' AND {in_maintenance}")
        )
        .await
            > 20
    );
    assert_eq!(
        count_check_rows(
            &db,
            &format!("service = 'svc-001' AND outcome != 'up' AND NOT ({in_maintenance})")
        )
        .await,
        0
    );

    // The same seed writes the same rows.
    let out = run_hale(dir.path(), &args("b.db")).await;
    assert_eq!(exit_code(out.status), 0, "{}", text(&out.stderr));
    let fingerprint = |db: &Path| {
        let db = db.to_owned();
        async move {
            let pool = sqlx::SqlitePool::connect_with(
                sqlx::sqlite::SqliteConnectOptions::new().filename(&db),
            )
            .await
            .unwrap();
            let row: (i64, i64, String) = sqlx::query_as(
                "SELECT sum(latency_us), sum(checked_at_ms % 100000), group_concat(outcome, '') FROM
                 (SELECT * FROM health_checks ORDER BY checked_at_ms, service, seq)",
            )
            .fetch_one(&pool)
            .await
            .unwrap();
            pool.close().await;
            row
        }
    };
    assert_eq!(
        fingerprint(&db).await,
        fingerprint(&dir.path().join("b.db")).await
    );

    // An existing file is refused without --append.
    let out = run_hale(dir.path(), &args("a.db")).await;
    assert_eq!(exit_code(out.status), 2);
    assert!(
        text(&out.stderr).contains("exists; pass --append"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(count_check_rows(&db, "1").await, 11_520);
}

#[tokio::test]
async fn the_generator_refuses_bad_flags_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    for (flags, expected) in [
        (
            ["--services", "0", "--days", "1", "--interval-s", "60"],
            "--services",
        ),
        (
            ["--services", "100000", "--days", "1", "--interval-s", "60"],
            "--services",
        ),
        (
            ["--services", "1", "--days", "401", "--interval-s", "60"],
            "--days",
        ),
        (
            ["--services", "1", "--days", "1", "--interval-s", "0"],
            "--interval-s",
        ),
        (
            ["--services", "1", "--days", "1", "--interval-s", "86401"],
            "--interval-s",
        ),
    ] {
        let mut args = vec!["history", "generate", "--db", "x.db"];
        args.extend(flags);
        let out = run_hale(dir.path(), &args).await;
        let stderr = text(&out.stderr);
        assert_eq!(exit_code(out.status), 2, "{flags:?}: {stderr}");
        assert!(stderr.contains(expected), "{flags:?}: {stderr}");
        assert!(
            stderr.contains("not in") || stderr.contains("range"),
            "{flags:?}: {stderr}"
        );
    }
    let out = run_hale(
        dir.path(),
        &[
            "history",
            "generate",
            "--db",
            "x.db",
            "--services",
            "1",
            "--days",
            "1",
            "--interval-s",
            "60",
            "--end",
            "yesterday",
        ],
    )
    .await;
    assert_eq!(exit_code(out.status), 2);
    assert!(
        text(&out.stderr).contains("--end \"yesterday\" is not an RFC 3339 time"),
        "{}",
        text(&out.stderr)
    );
    assert!(!dir.path().join("x.db").exists());
}

#[tokio::test]
async fn reports_say_pass_for_a_clean_target_and_fail_for_an_outage_in_every_format() {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), "4").await;

    // Markdown: svc-001 is clean, svc-002 had a long outage.
    let (code, md, stderr) = report(dir.path(), &["--service", "svc-001"]).await;
    assert_eq!(code, 0, "{stderr}\n{md}");
    assert!(md.contains("## svc-001: PASS"), "{md}");
    assert!(
        md.contains("| availability | ≥ 99.500% | 100.000% | PASS |"),
        "{md}"
    );
    assert!(md.contains("| restarts | < 3 a week | 0 | PASS |"), "{md}");
    // Its planned upgrade is inside a maintenance window: shown, and left out.
    assert!(md.contains("Every check was up."), "{md}");
    assert!(md.contains("### Maintenance windows"), "{md}");
    let row = md
        .lines()
        .find(|l| l.ends_with("| planned upgrade |"))
        .unwrap();
    assert!(row.contains("| svc-001 | "), "{row}");
    assert!(!row.contains("RETROACTIVE"), "{row}");
    assert!(
        md.contains("45 checks inside maintenance windows are not counted."),
        "{md}"
    );

    let (code, md, _) = report(dir.path(), &["--service", "svc-002"]).await;
    assert_eq!(code, 1, "{md}");
    assert!(md.contains("## svc-002: FAIL"), "{md}");
    let line = md
        .lines()
        .find(|l| l.starts_with("| availability |"))
        .unwrap();
    assert!(line.ends_with("| FAIL |"), "{line}");
    assert!(md.contains("### Worst hours"), "{md}");
    assert!(
        md.contains("restarted (by auto-heal) after signal 15"),
        "{md}"
    );
    assert!(md.contains("| target_down | critical |"), "{md}");

    // All four: the slow one fails p95, the crashing one restarts.
    let (code, md, _) = report(dir.path(), &[]).await;
    assert_eq!(code, 1);
    assert!(
        md.contains("**FAIL**: 1 of 4 targets meet every objective."),
        "{md}"
    );
    let p95 = md
        .split("## svc-003")
        .nth(1)
        .and_then(|s| s.lines().find(|l| l.starts_with("| p95 latency |")))
        .unwrap();
    assert!(p95.ends_with("| FAIL |"), "{p95}");
    let restarts = md
        .split("## svc-004")
        .nth(1)
        .and_then(|s| s.lines().find(|l| l.starts_with("| restarts |")))
        .unwrap();
    assert!(restarts.ends_with("| FAIL |"), "{restarts}");

    // JSON: the documented shape.
    let (code, json, _) = report(dir.path(), &["--format", "json"]).await;
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["version"], 1);
    assert_eq!(v["method"], "rollups");
    assert_eq!(v["passed"], false);
    assert_eq!(v["window"]["label"], "7d");
    assert_eq!(v["objectives"]["availability_target_percent"], 99.5);
    let targets = v["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 4);
    let (clean, outage) = (&targets[0], &targets[1]);
    assert_eq!(clean["name"], "svc-001");
    assert_eq!(clean["passed"], true);
    assert_eq!(clean["slo"]["availability"]["status"], "met");
    assert_eq!(clean["slo"]["availability"]["ratio"], 1.0);
    assert_eq!(clean["slo"]["latency"]["status"], "met");
    assert_eq!(clean["slo"]["error_budget"]["remaining_ratio"], 1.0);
    assert_eq!(outage["name"], "svc-002");
    assert_eq!(outage["slo"]["availability"]["status"], "breached");
    assert!(
        outage["slo"]["error_budget"]["remaining_ratio"]
            .as_f64()
            .unwrap()
            < 0.0
    );
    // The daily rows add up to the SLO's counts, maintenance left out alike.
    assert_eq!(clean["slo"]["availability"]["excluded"], 45);
    assert_eq!(clean["maintenance"][0]["reason"], "planned upgrade");
    assert_eq!(outage["maintenance"].as_array().unwrap().len(), 0);
    for t in targets {
        let daily = t["daily"].as_array().unwrap();
        assert!((7..=8).contains(&daily.len()), "{daily:?}");
        let sum = |field: &str| -> u64 { daily.iter().map(|d| d[field].as_u64().unwrap()).sum() };
        assert_eq!(
            sum("checks"),
            t["slo"]["availability"]["valid"],
            "{}",
            t["name"]
        );
        assert_eq!(
            sum("good"),
            t["slo"]["availability"]["good"],
            "{}",
            t["name"]
        );
        assert_eq!(
            sum("excluded"),
            t["slo"]["availability"]["excluded"],
            "{}",
            t["name"]
        );
    }
    assert_eq!(v["hale"]["starts"], 0);
    assert!(!outage["worst_hours"].as_array().unwrap().is_empty());
    assert!(outage["worst_hours"].as_array().unwrap().len() <= 5);
    assert_eq!(outage["alerts"][0]["rule"], "target_down");
    assert_eq!(outage["restarts"][0]["cause"], "heal");
    assert_eq!(outage["heals"][0]["outcome"], "failed");

    // --exact agrees with the rollups on the counts, and on the verdicts.
    let (code, exact, _) = report(dir.path(), &["--format", "json", "--exact"]).await;
    assert_eq!(code, 1);
    let e: serde_json::Value = serde_json::from_str(&exact).unwrap();
    assert_eq!(e["method"], "exact");
    for (r, x) in targets.iter().zip(e["targets"].as_array().unwrap()) {
        assert_eq!(r["slo"]["availability"], x["slo"]["availability"]);
        assert_eq!(r["passed"], x["passed"]);
        let (a, b) = (
            r["slo"]["latency"]["p95_ms"].as_f64().unwrap(),
            x["slo"]["latency"]["p95_ms"].as_f64().unwrap(),
        );
        assert!((a - b).abs() <= b * 0.011, "p95 {a} vs exact {b}");
    }

    // HTML: one well-formed file with inline SVG charts and badges.
    let (code, _, stderr) = report(dir.path(), &["--format", "html", "--out", "report.html"]).await;
    assert_eq!(code, 1, "{stderr}");
    let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains("<svg"), "no chart");
    assert!(html.contains("<h3>Maintenance windows</h3>"));
    assert!(html.contains(r#"<span class="badge fail">FAIL</span>"#));
    assert!(html.contains(r#"<span class="badge pass">PASS</span>"#));
    assert!(!html.contains("<script") && !html.contains("http://") && !html.contains("https://"));
    check_well_formed(&dir.path().join("report.html")).await;
}

/// Tags balance (void elements aside), checked by Python's own HTML parser.
async fn check_well_formed(file: &Path) {
    const SCRIPT: &str = r#"
import sys
from html.parser import HTMLParser
VOID = {"meta", "br", "hr", "img", "input", "link", "area", "base", "col", "embed", "source", "track", "wbr"}
class Check(HTMLParser):
    def __init__(self):
        super().__init__()
        self.stack = []
        self.svgs = 0
    def handle_starttag(self, tag, attrs):
        if tag == "svg":
            self.svgs += 1
        if tag not in VOID:
            self.stack.append(tag)
    def handle_startendtag(self, tag, attrs):
        pass
    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            sys.exit("unbalanced </%s> at line %d; open: %s" % (tag, self.getpos()[0], self.stack[-5:]))
        self.stack.pop()
c = Check()
c.feed(open(sys.argv[1], encoding="utf-8").read())
c.close()
if c.stack:
    sys.exit("unclosed: %s" % c.stack)
if c.svgs == 0:
    sys.exit("no svg")
print("ok", c.svgs)
"#;
    let out = tokio::process::Command::new("python3")
        .arg("-c")
        .arg(SCRIPT)
        .arg(file)
        .output()
        .await
        .expect("python3 runs (scripts/test installs it)");
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

#[tokio::test]
async fn reports_refuse_bad_input_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, stderr) = report(dir.path(), &[]).await;
    assert_eq!(code, 2);
    assert!(stderr.contains("no database at hale.db"), "{stderr}");

    generate(dir.path(), "2").await;
    let (code, _, stderr) = report(dir.path(), &["--service", "nope"]).await;
    assert_eq!(code, 2);
    assert!(stderr.contains("unknown service \"nope\""), "{stderr}");
    assert!(stderr.contains("svc-001, svc-002"), "{stderr}");
    for window in ["7x", "0d", "d", "500d"] {
        let (code, _, stderr) = report(dir.path(), &["--window", window]).await;
        assert_eq!(code, 2, "{window}");
        assert!(
            stderr.contains(&format!("bad window \"{window}\"")),
            "{stderr}"
        );
    }
    let (code, _, stderr) = report(dir.path(), &["--format", "pdf"]).await;
    assert_eq!(code, 2);
    assert!(stderr.contains("pdf"), "{stderr}");
    // A 24-hour window of the clean target works.
    let (code, md, _) = report(dir.path(), &["--window", "24h", "--service", "svc-001"]).await;
    assert_eq!(code, 0, "{md}");
    assert!(md.contains("# SLO report: 24h"), "{md}");
}

/// The DOM headless chromium builds from `url` (it sends `Accept-Encoding: gzip`, as browsers do), and
/// its log.
async fn chromium_dom(url: &str) -> (String, String) {
    let profile = tempfile::tempdir().unwrap();
    let run = tokio::process::Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--dump-dom")
        .arg(url)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(DEADLINE, run)
        .await
        .expect("chromium finished in time")
        .expect("chromium runs (scripts/test installs it)");
    let log = text(&out.stderr);
    assert!(out.status.success(), "{log}");
    (text(&out.stdout), log)
}

/// The lines of chromium's log that say the page broke a rule: a console message, a refused resource.
fn console_problems(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| {
            l.contains("CONSOLE")
                || l.contains("Content Security Policy")
                || l.contains("Refused to")
        })
        .collect()
}

#[tokio::test]
async fn the_status_page_renders_in_a_real_browser_without_console_errors() {
    let up_a = HttpReceiver::start(vec![(200, "ok")]).await;
    let up_b = HttpReceiver::start(vec![(200, "ok")]).await;
    let mut json = test_config_json();
    let dead = format!("http://127.0.0.1:{}/health", dead_port());
    json["services"] = serde_json::json!([
        { "name": "alpha", "url": up_a.url("/health"), "interval_s": 1, "timeout_ms": 500 },
        { "name": "beta", "url": up_b.url("/health"), "interval_s": 1, "timeout_ms": 500 },
        { "name": "gamma", "url": dead, "interval_s": 1, "timeout_ms": 500 },
        { "name": "delta", "url": dead, "interval_s": 1, "timeout_ms": 500 },
    ]);
    std::env::set_var("REPORTS_PAGE_ADMIN", "reports-page-admin-token-dddddddddd");
    json["auth"] = serde_json::json!({ "tokens": { "admin": { "env": "REPORTS_PAGE_ADMIN" } } });
    let config = Config::from_json(&json.to_string(), "test").unwrap();
    let app = spawn_app_with(config).await;
    let monitor = app.monitor().clone();
    eventually("every target checked", || {
        let monitor = monitor.clone();
        async move {
            monitor
                .targets()
                .iter()
                .all(|t| t.latest().is_some())
                .then_some(())
        }
    })
    .await;
    // gamma's outage is written off after the fact by an admin: the page must say so.
    let now = chrono::Utc::now();
    let res = app
        .request(
            reqwest::Method::POST,
            ServiceKind::HealthProxy,
            "/maintenance",
        )
        .bearer_auth("reports-page-admin-token-dddddddddd")
        .json(&serde_json::json!({
            "target": "gamma", "retroactive": true, "reason": "written off",
            "starts_at": (now - chrono::Duration::minutes(30)).to_rfc3339(),
            "ends_at": (now + chrono::Duration::minutes(10)).to_rfc3339(),
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    eventually("the slo of every target", || async {
        let (_, all) = app.get_json(ServiceKind::HealthProxy, "/slo").await;
        let status: Vec<&str> = all
            .as_array()?
            .iter()
            .filter_map(|t| t["status"].as_str())
            .collect();
        let removed = all[2]["retroactive_maintenance"][0]["removed_checks"].as_u64()?;
        (status == ["met", "met", "no_data", "breached"] && removed > 0).then_some(())
    })
    .await;

    // The headers first: HTML with the page's own strict policy.
    let res = app.get(ServiceKind::HealthProxy, "/").await;
    assert_eq!(res.status(), 200);
    let csp = res.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.starts_with("default-src 'none'; style-src 'unsafe-inline'; img-src data:"),
        "{csp}"
    );
    assert!(!csp.contains("script-src"), "{csp}");
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let body = res.text().await.unwrap();
    assert!(body.contains(r#"<meta http-equiv="refresh" content="30">"#));
    assert!(body.contains(r#"href="/docs/""#) && body.contains(r#"href="/metrics""#));

    let (dom, log) = chromium_dom(&app.url(ServiceKind::HealthProxy, "/")).await;
    for name in ["alpha", "beta", "gamma"] {
        assert!(
            dom.contains(&format!(r#"<span class="name">{name}</span>"#)),
            "{name} missing from the DOM:\n{dom}"
        );
    }
    assert!(dom.contains(r#"<span class="score" id="score">"#), "{dom}");
    assert!(dom.contains("2 of 4 targets up"), "{dom}");
    assert!(dom.contains("<svg"), "{dom}");
    // What the SLO says, per target, in the order of the config.
    let section = |name: &str| {
        dom.split(&format!(r#"<span class="name">{name}</span>"#))
            .nth(1)
            .and_then(|rest| rest.split("</section>").next())
            .unwrap_or_default()
            .to_owned()
    };
    for (name, badge, word, budget) in [
        ("alpha", "pass", "met", "100.0%"),
        ("gamma", "nodata", "no data", "-"),
        ("delta", "fail", "breached", ""),
    ] {
        let s = section(name);
        assert!(
            s.contains(&format!(r#"<span class="badge {badge}">SLO {word}</span>"#)),
            "{name}: {s}"
        );
        assert!(
            s.contains(&format!(r#"<span class="slo-status">{word}</span>"#)),
            "{name}: {s}"
        );
        assert!(
            s.contains(&format!(
                r#"error budget left <span class="budget">{budget}"#
            )),
            "{name}: {s}"
        );
        // A new install: hourly bars for the last 48 hours.
        assert!(s.contains(r#"aria-label="hourly uptime""#), "{name}: {s}");
        assert_eq!(s.matches("<rect").count(), 48, "{name}: {s}");
    }
    let gamma = section("gamma");
    assert!(
        gamma.contains(r#"<span class="badge risk">RETROACTIVE MAINTENANCE</span>"#),
        "{gamma}"
    );
    assert!(gamma.contains(" of this target: written off."), "{gamma}");
    assert!(!section("alpha").contains("RETROACTIVE"));
    let problems = console_problems(&log);
    assert!(problems.is_empty(), "console errors: {problems:#?}");
    // A fleet this small has one page: page 1 is the page, page 2 does not exist.
    assert_eq!(
        app.get(ServiceKind::HealthProxy, "/?page=1").await.status(),
        200
    );
    let (status, body) = app.get_json(ServiceKind::HealthProxy, "/?page=2").await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["error"]["message"],
        r#"page: "2" is not a page number from 1 to 1"#
    );
}

/// A fleet of 120: page 2 shows targets 51-100 with links either way, a bad page number is a 400 naming
/// `page`, and every page is sent gzipped to a request that accepts it and answers `If-None-Match`.
#[tokio::test]
async fn a_large_fleet_gets_the_status_page_one_page_of_targets_at_a_time() {
    let names: Vec<String> = (1..=120).map(|i| format!("t-{i:03}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let app = spawn_app_with(TestConfig::new().down_targets(&refs).build()).await;
    let hp = ServiceKind::HealthProxy;
    let app = &app;
    let page = move |path: &'static str| async move {
        let res = app.get(hp, path).await;
        assert_eq!(res.status(), 200, "{path}");
        res.text().await.unwrap()
    };
    let row = |name: &str| format!(r#"<tr><td><span class="name">{name}</span>"#);

    let two = page("/?page=2").await;
    assert!(two.contains("Targets 51-100 of 120"), "{two}");
    assert!(two.contains("targets 51-100 of 120 (page 2 of 3)"), "{two}");
    assert!(two.contains(r#"<a href="/?page=1" rel="prev">"#), "{two}");
    assert!(two.contains(r#"<a href="/?page=3" rel="next">"#), "{two}");
    // The page's own list, after the targets that need attention (which every page shows).
    let listed = two.split(r#"<h2 id="targets">"#).nth(1).unwrap_or_default();
    assert_eq!(
        listed.matches(r#"<tr><td><span class="name">"#).count(),
        50,
        "{two}"
    );
    for shown in ["t-051", "t-075", "t-100"] {
        assert!(listed.contains(&row(shown)), "{shown}: {two}");
    }
    for hidden in ["t-030", "t-050", "t-101"] {
        assert!(!listed.contains(&row(hidden)), "{hidden}: {two}");
    }
    assert!(two.contains("Needs attention"), "{two}");
    assert!(!two.contains("<script"), "{two}");
    let one = page("/").await;
    assert!(one.contains("Targets 1-50 of 120"), "{one}");
    assert!(one.contains(&row("t-001")) && !one.contains(r#"rel="prev""#));
    let three = page("/?page=3").await;
    assert!(three.contains("Targets 101-120 of 120"), "{three}");
    assert!(three.contains(&row("t-120")) && !three.contains(r#"rel="next""#));
    // Once the monitor has checked them: every target is down, 25 are listed, then how many more.
    eventually("the attention list", || async move {
        let one = page("/").await;
        one.contains("Needs attention (120)")
            .then_some(())
            .filter(|()| one.contains("and 95 more"))
    })
    .await;

    for query in ["page=0", "page=4", "page=two", "page=-1", "page="] {
        let (status, body) = app.get_json(hp, &format!("/?{query}")).await;
        assert_eq!(status, 400, "{query}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.starts_with("page: ") && message.ends_with("is not a page number from 1 to 3"),
            "{query}: {message}"
        );
    }
    let body = app.check_kept_body(hp, "/?page=2").await;
    assert!(text(&body).contains("Targets 51-100 of 120"));
    // A real browser, which asks for gzip, reads the page and finds nothing to refuse.
    let (dom, log) = chromium_dom(&app.url(hp, "/?page=2")).await;
    assert!(dom.contains("Targets 51-100 of 120"), "{dom}");
    assert!(dom.contains(r#"<span class="name">t-100</span>"#), "{dom}");
    assert!(dom.contains("<svg"), "{dom}");
    let problems = console_problems(&log);
    assert!(problems.is_empty(), "console errors: {problems:#?}");
}

/// A week of history in the database when hale starts: the status page answers 200 from the first request
/// on, with the current states and a note while its history is read in the background, then with the
/// week's daily bars, read without any request waiting for them.
#[tokio::test]
async fn the_status_page_answers_while_its_history_loads_then_shows_it() {
    let up = HttpReceiver::start(vec![(200, "ok")]).await;
    let mut json = test_config_json();
    json["services"] = serde_json::json!([
        { "name": "svc-001", "url": up.url("/health"), "interval_s": 1, "timeout_ms": 500 },
        { "name": "svc-002", "url": up.url("/health"), "interval_s": 1, "timeout_ms": 500 },
    ]);
    let config = Config::from_json(&json.to_string(), "test").unwrap();
    let mut app = spawn_app_with(config.clone()).await;
    app.shutdown().await;
    let out = run_hale(
        app.dir.path(),
        &[
            "history",
            "generate",
            "--db",
            "hale.db",
            "--append",
            "--services",
            "2",
            "--days",
            "7",
            "--interval-s",
            "300",
            "--seed",
            "3",
        ],
    )
    .await;
    assert_eq!(exit_code(out.status), 0, "{}", text(&out.stderr));
    app.restart(config, std::sync::Arc::new(hale::clock::SystemClock))
        .await;

    let hp = ServiceKind::HealthProxy;
    let loading = "still being read from the database";
    let app = &app;
    let body = eventually("the status page with the week's bars", || async move {
        let res = app.get(hp, "/").await;
        assert_eq!(res.status(), 200);
        let body = res.text().await.unwrap();
        if body.contains(loading) {
            // Loading: the current states, a quick refresh, and no bars or alerts made up.
            assert!(body.contains(r#"content="5""#), "{body}");
            assert!(
                body.contains(r#"<span class="name">svc-002</span>"#),
                "{body}"
            );
            assert!(!body.contains("No alert is firing."), "{body}");
            return None;
        }
        body.contains("90 days ago · today").then_some(body)
    })
    .await;
    assert!(body.contains(r#"content="30""#), "{body}");
    assert!(
        body.contains("uptime, p95, restarts and alerts read "),
        "{body}"
    );
    assert_eq!(body.matches("<svg").count(), 2, "{body}");
}

/// A database damaged after its schema (the report's read fails half-way) and a truncated one both exit 2,
/// never 1, which says an objective is breached: a CI gate on the report can tell the two apart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_on_a_corrupt_or_truncated_database_exit_2_not_1() {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), "2").await;
    let healthy = std::fs::read(dir.path().join("hale.db")).unwrap();
    let page_size = usize::from(u16::from_be_bytes([healthy[16], healthy[17]]));
    assert!(healthy.len() > 16 * page_size, "{} bytes", healthy.len());

    // The header and schema pages stay; three pages of the tables after them are overwritten, so the file
    // opens and the report's read fails half-way ("database disk image is malformed").
    let mut damaged = healthy.clone();
    damaged[8 * page_size..11 * page_size].fill(0x5a);
    std::fs::write(dir.path().join("hale.db"), &damaged).unwrap();
    let (code, stdout, stderr) = report(dir.path(), &[]).await;
    assert_eq!(code, 2, "stdout: {stdout}\nstderr: {stderr}");
    assert!(stderr.contains("malformed"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    std::fs::write(dir.path().join("hale.db"), &healthy[..healthy.len() / 2]).unwrap();
    let (code, _, stderr) = report(dir.path(), &[]).await;
    assert_eq!(code, 2, "{stderr}");
}

/// A config file for `hale slo report` with these targets (their URLs are never asked).
fn report_config(dir: &Path, names: &[&str]) {
    let mut json = test_config_json();
    json["services"] = names
        .iter()
        .map(|n| serde_json::json!({ "name": n, "url": "http://127.0.0.1:9/health" }))
        .collect();
    std::fs::write(dir.join("config.json"), json.to_string()).unwrap();
}

async fn report_with(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let mut all = vec![
        "slo",
        "report",
        "--db",
        "hale.db",
        "--config",
        "config.json",
    ];
    all.extend_from_slice(args);
    let out = run_hale(dir, &all).await;
    (exit_code(out.status), text(&out.stdout), text(&out.stderr))
}

/// A target without a valid check is NO DATA, never PASS: exit 3 when nothing is breached, 1 with
/// `--require-data`; a target that passes alone still exits 0.
#[tokio::test]
async fn a_target_without_data_is_no_data_with_exit_3_never_pass() {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), "1").await;
    report_config(dir.path(), &["svc-001", "fresh"]);

    let (code, md, stderr) = report_with(dir.path(), &[]).await;
    assert_eq!(code, 3, "{stderr}\n{md}");
    assert!(
        md.contains("**NO DATA**: 1 of 2 targets meet every objective; 1 without a valid check in the window (NO DATA)."),
        "{md}"
    );
    assert!(md.contains("## fresh: NO DATA"), "{md}");
    assert!(md.contains("## svc-001: PASS"), "{md}");
    let row = md.lines().find(|l| l.starts_with("| fresh |")).unwrap();
    assert!(row.ends_with("| NO DATA |"), "{row}");
    assert!(!md.contains("**PASS**"), "{md}");

    let (code, json, _) = report_with(dir.path(), &["--format", "json"]).await;
    assert_eq!(code, 3);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        (v["result"].as_str(), v["passed"].as_bool()),
        (Some("no_data"), Some(false))
    );
    assert_eq!(v["targets"][1]["name"], "fresh");
    assert_eq!(v["targets"][1]["result"], "no_data");
    assert_eq!(v["targets"][1]["passed"], false);
    assert_eq!(v["targets"][0]["result"], "pass");

    let (code, _, stderr) = report_with(dir.path(), &["--format", "html", "--out", "r.html"]).await;
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("no data for some"), "{stderr}");
    let html = std::fs::read_to_string(dir.path().join("r.html")).unwrap();
    assert!(
        html.contains(r#"<span class="badge nodata">NO DATA</span>"#),
        "{html}"
    );
    check_well_formed(&dir.path().join("r.html")).await;

    let (code, md, _) = report_with(dir.path(), &["--require-data"]).await;
    assert_eq!(code, 1, "{md}");
    assert!(md.contains("**FAIL**"), "{md}");
    assert!(md.contains("a failure with --require-data"), "{md}");

    let (code, md, _) = report_with(dir.path(), &["--service", "svc-001"]).await;
    assert_eq!(code, 0, "{md}");
    assert!(md.contains("**PASS**"), "{md}");
}

/// Issue 16's scenario: a target always down is breached; a backdated all-target window is refused without
/// `retroactive`; with it (admin) it is taken, and every format says NO DATA (exit 3), never PASS, and shows
/// the window as retroactive with the checks it removed, as counted in the database.
#[tokio::test]
async fn a_backdated_window_cannot_turn_a_breach_into_a_pass() {
    let tokens = [
        (
            "REPORTS_RETRO_OPERATE",
            "reports-operate-token-bbbbbbbbbbbb",
        ),
        ("REPORTS_RETRO_ADMIN", "reports-admin-token-cccccccccccccc"),
    ];
    for (name, token) in tokens {
        std::env::set_var(name, token);
    }
    let mut json = test_config_json();
    json["services"] = serde_json::json!([
        { "name": "down", "url": format!("http://127.0.0.1:{}/health", dead_port()), "interval_s": 1, "timeout_ms": 500 },
    ]);
    json["auth"] = serde_json::json!({ "tokens": {
        "operate": { "env": "REPORTS_RETRO_OPERATE" }, "admin": { "env": "REPORTS_RETRO_ADMIN" }
    }});
    let config = Config::from_json(&json.to_string(), "test").unwrap();
    let mut app = spawn_app_with(config).await;
    let hp = ServiceKind::HealthProxy;
    eventually("three failed checks stored", || async {
        (count_check_rows(&app.db_path, "service = 'down' AND outcome != 'up'").await >= 3)
            .then_some(())
    })
    .await;
    let (status, slo) = app.get_json(hp, "/slo/down?window=1h").await;
    assert_eq!(
        (status, slo["status"].as_str()),
        (200, Some("breached")),
        "{slo}"
    );

    let now = chrono::Utc::now();
    let mut backdated = serde_json::json!({
        "starts_at": (now - chrono::Duration::hours(1)).to_rfc3339(),
        "ends_at": (now + chrono::Duration::minutes(1)).to_rfc3339(),
        "reason": "nothing to see"
    });
    let post = |token: &'static str, body: serde_json::Value| {
        let req = app
            .request(reqwest::Method::POST, hp, "/maintenance")
            .bearer_auth(token)
            .json(&body);
        async move {
            let res = req.send().await.unwrap();
            let status = res.status().as_u16();
            (status, res.json::<serde_json::Value>().await.unwrap())
        }
    };
    let (status, answer) = post(tokens[0].1, backdated.clone()).await;
    assert_eq!(status, 422, "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("starts_at: "),
        "{answer}"
    );
    backdated["retroactive"] = serde_json::json!(true);
    let (status, answer) = post(tokens[0].1, backdated.clone()).await;
    assert_eq!(status, 403, "{answer}");
    let (status, created) = post(tokens[1].1, backdated).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["retroactive"], true);

    let (_, slo) = app.get_json(hp, "/slo/down?window=1h").await;
    assert_eq!(slo["status"], "no_data", "{slo}");
    let retro = &slo["retroactive_maintenance"][0];
    assert_eq!(retro["id"], created["id"], "{slo}");
    assert_eq!(
        retro["removed_checks"], slo["availability"]["excluded"],
        "{slo}"
    );
    assert!(retro["removed_checks"].as_u64().unwrap() >= 3, "{slo}");

    // Every check stored, then the report on the file.
    app.shutdown().await;
    let checks = count_check_rows(&app.db_path, "service = 'down' AND source = 'monitor'").await;
    assert!(checks >= 3);
    let dir = app.dir.path();
    std::fs::write(dir.join("config.json"), json.to_string()).unwrap();
    let (code, md, stderr) = report_with(dir, &["--window", "2h"]).await;
    assert_eq!(code, 3, "{stderr}\n{md}");
    assert!(md.contains("**NO DATA**"), "{md}");
    assert!(md.contains("## down: NO DATA"), "{md}");
    assert!(
        !md.contains("**PASS**") && !md.contains("## down: PASS"),
        "{md}"
    );
    assert!(
        md.contains("**RETROACTIVE**: retroactive maintenance "),
        "{md}"
    );
    assert!(
        md.contains(&format!(
            "removed {checks} checks of this target: nothing to see."
        )),
        "{checks} checks: {md}"
    );
    assert!(md.contains("(RETROACTIVE) | nothing to see |"), "{md}");

    let (code, json_out, _) = report_with(dir, &["--window", "2h", "--format", "json"]).await;
    assert_eq!(code, 3);
    let v: serde_json::Value = serde_json::from_str(&json_out).unwrap();
    assert_eq!(v["result"], "no_data");
    let t = &v["targets"][0];
    assert_eq!(t["result"], "no_data");
    assert_eq!(t["maintenance"][0]["retroactive"], true);
    assert_eq!(
        t["slo"]["retroactive_maintenance"][0]["removed_checks"].as_i64(),
        Some(checks)
    );

    let (code, _, _) = report_with(
        dir,
        &["--window", "2h", "--format", "html", "--out", "r.html"],
    )
    .await;
    assert_eq!(code, 3);
    let html = std::fs::read_to_string(dir.join("r.html")).unwrap();
    assert!(
        html.contains(r#"<span class="badge risk">RETROACTIVE</span>"#),
        "{html}"
    );
    assert!(html.contains(&format!("removed {checks} checks")), "{html}");
    check_well_formed(&dir.join("r.html")).await;

    // The admin's window is in the audit log, and so is the refused attempt.
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
}
