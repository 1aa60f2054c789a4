//! `hale history generate`, `hale slo report` and the status page (`GET /` on the Health Proxy), through
//! the real binary, a real database file and a real headless Chromium.

mod common;

use std::path::Path;
use std::process::Stdio;

use common::{
    count_check_rows, count_rows, dead_port, eventually, exit_code, run_hale, spawn_app_with,
    test_config_json, HttpReceiver, DEADLINE,
};
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
                 (SELECT * FROM health_checks ORDER BY id)",
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
            ["--services", "10001", "--days", "1", "--interval-s", "60"],
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
    assert!(md.contains("| svc-001 | planned upgrade |"), "{md}");
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

#[tokio::test]
async fn the_status_page_renders_in_a_real_browser_without_console_errors() {
    let up_a = HttpReceiver::start(vec![(200, "ok")]).await;
    let up_b = HttpReceiver::start(vec![(200, "ok")]).await;
    let mut json = test_config_json();
    json["services"] = serde_json::json!([
        { "name": "alpha", "url": up_a.url("/health"), "interval_s": 1, "timeout_ms": 500 },
        { "name": "beta", "url": up_b.url("/health"), "interval_s": 1, "timeout_ms": 500 },
        { "name": "gamma", "url": format!("http://127.0.0.1:{}/health", dead_port()), "interval_s": 1, "timeout_ms": 500 },
    ]);
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

    let profile = tempfile::tempdir().unwrap();
    let url = app.url(ServiceKind::HealthProxy, "/");
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
        .arg(&url)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(DEADLINE, run)
        .await
        .expect("chromium finished in time")
        .expect("chromium runs (scripts/test installs it)");
    let dom = text(&out.stdout);
    let log = text(&out.stderr);
    assert!(out.status.success(), "{log}");
    for name in ["alpha", "beta", "gamma"] {
        assert!(
            dom.contains(&format!(r#"<span class="name">{name}</span>"#)),
            "{name} missing from the DOM:\n{dom}"
        );
    }
    assert!(dom.contains(r#"<span class="score" id="score">"#), "{dom}");
    assert!(dom.contains("2 of 3 targets up"), "{dom}");
    assert!(dom.contains("<svg"), "{dom}");
    let problems: Vec<&str> = log
        .lines()
        .filter(|l| {
            l.contains("CONSOLE")
                || l.contains("Content Security Policy")
                || l.contains("Refused to")
        })
        .collect();
    assert!(problems.is_empty(), "console errors: {problems:#?}");
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
