//! One outage, one page: the Alertmanager config of `hale export alertmanager` checked with the real tools.
//! amtool accepts it and routes hale's alerts by severity; and with a real Prometheus (loaded with the
//! exported rules) and a real Alertmanager (loaded with the exported config, and fed by hale's own
//! alertmanager channel too), a target that goes fully down makes one notification group with one active
//! page, every other alert about it held back by an inhibit rule. Runbook links are absolute and lead to a
//! section of docs/runbooks.md.

// A test crate: an unwrap is an assertion, and tests/common sets a child's rlimit in `pre_exec`.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use hale::alerts::labels::{self, AlertClass};
use hale::config::{AlertmanagerChannel, Condition, Secret, SloConfig};
use hale::export::{self, alertmanager, rules};
use hale::kind::ServiceKind;
use hale::records::AlertLevel;
use serde_json::Value;
use tokio::time::Instant;

use common::app::TestApp;
use common::prom::run_tool;
use common::receivers::HttpReceiver;
use common::{dead_port, repo};

/// The committed Alertmanager config.
fn committed_config() -> PathBuf {
    repo().join("deploy/alertmanager").join(alertmanager::FILE)
}

#[tokio::test]
async fn amtool_accepts_the_config_and_routes_pages_and_tickets_by_target() {
    let config = committed_config();
    let config = config.to_str().unwrap();
    let (ok, out) = run_tool(
        "amtool",
        &["check-config", config],
        "prometheus-alertmanager",
    )
    .await;
    assert!(ok, "amtool check-config:\n{out}");
    assert!(out.contains("4 inhibit rules"), "{out}");

    // Where alerts go: critical ones of either origin page, the rest are tickets, other alerts are not hale's.
    for (labels, receiver) in [
        (
            &["class=target_down", "severity=critical", "target=db"][..],
            alertmanager::PAGE_RECEIVER,
        ),
        (
            &[
                "class=target_down",
                "severity=critical",
                "target=db",
                "source=hale",
                "alertname=target_down",
            ][..],
            alertmanager::PAGE_RECEIVER,
        ),
        (
            &["class=breaker_open", "severity=warning", "target=db"][..],
            alertmanager::TICKET_RECEIVER,
        ),
        (
            &["alertname=SomethingElse", "severity=critical"][..],
            alertmanager::DEFAULT_RECEIVER,
        ),
    ] {
        let args: Vec<&str> = ["config", "routes", "test", "--config.file", config]
            .into_iter()
            .chain(labels.iter().copied())
            .collect();
        let (ok, out) = run_tool("amtool", &args, "prometheus-alertmanager").await;
        assert!(ok, "amtool config routes test {labels:?}:\n{out}");
        // stdout (the receiver) comes first; amtool warns on stderr that --config.file wins.
        assert_eq!(out.lines().next(), Some(receiver), "{labels:?}: {out}");
    }

    // A broken config is refused, so the check above means something.
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.yml");
    std::fs::write(
        &broken,
        export::alertmanager::config_text().replace("receiver: hale-page", "receiver: nobody"),
    )
    .unwrap();
    let (ok, out) = run_tool(
        "amtool",
        &["check-config", broken.to_str().unwrap()],
        "prometheus-alertmanager",
    )
    .await;
    assert!(
        !ok,
        "amtool accepted a route to an unknown receiver:\n{out}"
    );
}

#[test]
fn runbook_links_are_absolute_and_lead_to_a_section() {
    let runbooks =
        std::fs::read_to_string(repo().join("docs/runbooks.md")).expect("docs/runbooks.md");
    // GitHub's heading slug: lower case, spaces to '-', other punctuation but '_' and '-' dropped.
    let anchors: BTreeSet<String> = runbooks
        .lines()
        .filter_map(|l| l.strip_prefix("## "))
        .map(|h| {
            h.to_lowercase()
                .chars()
                .filter_map(|c| match c {
                    ' ' => Some('-'),
                    c if c.is_alphanumeric() || c == '_' || c == '-' => Some(c),
                    _ => None,
                })
                .collect()
        })
        .collect();
    let base = hale::config::default_runbook_base_url();
    assert!(base.starts_with("https://"), "{base}");
    // hale's own alerts, every class at every level.
    for class in AlertClass::ALL {
        for level in AlertLevel::ALL {
            let anchor = class.runbook_anchor(*level);
            assert!(
                anchors.contains(anchor),
                "docs/runbooks.md has no section #{anchor} (class {})",
                class.as_str()
            );
        }
    }
    // The exported rules, with another base.
    let files = rules::rule_files_linked(&SloConfig::default(), "https://wiki.example/ops/hale")
        .expect("rules");
    let mut alerts = 0;
    for rule in files
        .iter()
        .flat_map(|f| f.groups.iter())
        .flat_map(|g| g.rules.iter())
    {
        if let rules::Rule::Alert {
            alert,
            annotations,
            labels: rule_labels,
            ..
        } = rule
        {
            alerts += 1;
            let url = annotations
                .iter()
                .find(|(k, _)| k == "runbook_url")
                .map(|(_, v)| v.as_str())
                .unwrap_or_default();
            let anchor = url
                .strip_prefix("https://wiki.example/ops/hale#")
                .unwrap_or_else(|| panic!("{alert}: runbook_url {url}"));
            assert!(anchors.contains(anchor), "{alert}: no section #{anchor}");
            let class = rule_labels
                .iter()
                .find(|(k, _)| k == labels::CLASS)
                .map(|(_, v)| v.as_str());
            assert_eq!(
                class,
                alertmanager::class_of(alert).map(AlertClass::as_str),
                "{alert}"
            );
        }
    }
    assert_eq!(alerts, rules::alert_docs().len());
}

#[tokio::test]
async fn the_runbook_base_url_comes_from_the_config_and_a_relative_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::config::test_config_json();
    config["alerts"] = serde_json::json!({"runbook_base_url": "https://git.example.org/ops/hale/-/blob/main/docs/runbooks.md"});
    let path = dir.path().join("config.json");
    std::fs::write(&path, config.to_string()).unwrap();
    let out = dir.path().join("alerts");
    let output = common::process::run_hale(
        dir.path(),
        &[
            "export",
            "alerts",
            "--config",
            path.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
    )
    .await;
    assert!(output.status.success(), "{output:?}");
    let text = std::fs::read_to_string(out.join("hale-rules.yml")).unwrap();
    assert!(
        text.contains("runbook_url: \"https://git.example.org/ops/hale/-/blob/main/docs/runbooks.md#haletargetdown\""),
        "{text}"
    );

    config["alerts"] = serde_json::json!({"runbook_base_url": "docs/runbooks.md"});
    std::fs::write(&path, config.to_string()).unwrap();
    let output = common::process::run_hale(
        dir.path(),
        &[
            "export",
            "alerts",
            "--config",
            path.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(common::process::exit_code(output.status), 2, "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("alerts.runbook_base_url")
            && stderr.contains("\"docs/runbooks.md\" is not an absolute http(s) URL"),
        "{stderr}"
    );
}

/// Every `for:` of a rule file (a key of a rule, 8 spaces in) set to `for_`, so a test need not wait
/// minutes; nothing else changes.
fn with_short_for(text: &str, for_: &str) -> String {
    const RULE_KEY: &str = "        for: ";
    text.lines()
        .map(|line| match line.strip_prefix(RULE_KEY) {
            Some(_) => format!("{RULE_KEY}{for_}"),
            None => line.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// A child process killed when dropped, with the temp folder it works in.
struct Tool {
    child: tokio::process::Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Tool {
    async fn spawn(
        program: &str,
        package: &str,
        args: Vec<String>,
        dir: tempfile::TempDir,
        port: u16,
    ) -> Self {
        let child = match tokio::process::Command::new(program)
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
        {
            Ok(child) => child,
            Err(e) => panic!(
                "cannot run {program} ({e}): install the `{package}` package (scripts/test does)"
            ),
        };
        let tool = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        };
        let client = common::app::client();
        let ready = format!("{}/-/ready", tool.url);
        common::eventually(&format!("{program} ready"), || {
            let client = client.clone();
            let ready = ready.clone();
            async move {
                let response = client.get(&ready).send().await.ok()?;
                response.status().is_success().then_some(())
            }
        })
        .await;
        tool
    }

    /// Alertmanager with the committed config, exactly as exported.
    async fn alertmanager() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = dead_port();
        let args = vec![
            format!("--web.listen-address=127.0.0.1:{port}"),
            "--cluster.listen-address=".to_owned(),
            format!("--storage.path={}", dir.path().display()),
            format!("--config.file={}", committed_config().display()),
        ];
        Self::spawn(
            "prometheus-alertmanager",
            "prometheus-alertmanager",
            args,
            dir,
            port,
        )
        .await
    }

    /// Prometheus scraping `app` every second, with the committed rule files (each `for:` shortened to
    /// 3 s) and alerting to `alertmanager`.
    async fn prometheus(app: &TestApp, alertmanager: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = dead_port();
        let mut rule_files = Vec::new();
        for name in ["hale-rules.yml", "hale-slo-rules.yml"] {
            let text = std::fs::read_to_string(repo().join("alerts").join(name)).unwrap();
            let path = dir.path().join(name);
            std::fs::write(&path, with_short_for(&text, "3s")).unwrap();
            rule_files.push(format!("  - \"{}\"", path.display()));
        }
        let targets: Vec<String> = ServiceKind::ALL
            .iter()
            .map(|k| format!("\"{}\"", app.addr(*k)))
            .collect();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n{}\nalerting:\n  alertmanagers:\n    - static_configs:\n        - targets: [\"{}\"]\nscrape_configs:\n  - job_name: {}\n    static_configs:\n      - targets: [{}]\n",
            rule_files.join("\n"),
            alertmanager.trim_start_matches("http://"),
            rules::SCRAPE_JOB,
            targets.join(", ")
        );
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config).unwrap();
        let args = vec![
            format!("--config.file={}", config_path.display()),
            format!("--storage.tsdb.path={}", dir.path().join("data").display()),
            format!("--web.listen-address=127.0.0.1:{port}"),
        ];
        Self::spawn("prometheus", "prometheus", args, dir, port).await
    }

    async fn get(&self, path_and_query: &str) -> Value {
        common::app::client()
            .get(format!("{}{path_and_query}", self.url))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path_and_query}: {e}"))
            .json()
            .await
            .unwrap_or_else(|e| panic!("GET {path_and_query}: not JSON: {e}"))
    }
}

fn label<'a>(alert: &'a Value, name: &str) -> &'a str {
    alert["labels"][name].as_str().unwrap_or_default()
}

/// hale with two targets up and `db` on a closed port, checked every second; hale's alertmanager channel
/// points at `alertmanager`. Its fast-burn rule looks at 60 s and 10 s instead of 1 h and 5 min, so it can
/// fire within the test (the engine waits until the short window is covered).
async fn spawn_hale(web: &HttpReceiver, api: &HttpReceiver, alertmanager: &str) -> TestApp {
    let mut config = common::config::test_config();
    config.services = serde_json::from_value(serde_json::json!([
        {"name": "web", "url": web.url("/health"), "interval_s": 1, "timeout_ms": 500},
        {"name": "api", "url": api.url("/health"), "interval_s": 1, "timeout_ms": 500},
        {"name": "db", "url": format!("http://127.0.0.1:{}/", dead_port()), "interval_s": 1, "timeout_ms": 500,
         "breaker": {"failure_threshold": 1, "open_timeout_s": 3600}}
    ]))
    .expect("target configs");
    config.alerts.channels.alertmanager = Some(AlertmanagerChannel {
        url: Secret::new(alertmanager),
        resend_interval_s: 10,
    });
    let mut shortened = false;
    for rule in &mut config.alerts.rules {
        if let Condition::SloBurn {
            long_window_s,
            short_window_s,
            burn_rate,
            for_s,
        } = &mut rule.when
        {
            if rule.level == AlertLevel::Critical {
                // Windows outside the burn-rate table need their own rate; no `for` wait in a test.
                *long_window_s = 60;
                *short_window_s = 10;
                *burn_rate = Some(14.4);
                *for_s = Some(0);
                shortened = true;
            }
        }
    }
    assert!(shortened, "the default rules have a critical slo_burn rule");
    config.validate().expect("a valid test config");
    common::app::spawn_app_with(config).await
}

/// The alerts Alertmanager holds about `target`, by `alertname`.
async fn alertnames(am: &Tool, target: &str) -> BTreeSet<String> {
    let alerts = am
        .get(&format!("/api/v2/alerts?filter=target%3D%22{target}%22"))
        .await;
    alerts
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| label(a, "alertname").to_owned())
        .collect()
}

#[tokio::test]
async fn one_target_fully_down_is_one_group_with_one_active_page() {
    let web = HttpReceiver::start(vec![(200, "ok")]).await;
    let api = HttpReceiver::start(vec![(200, "ok")]).await;
    let mut am = Tool::alertmanager().await;
    let mut app = spawn_hale(&web, &api, &am.url).await;
    let mut prometheus = Tool::prometheus(&app, &am.url).await;

    // Every page and ticket the outage causes, from both sides, has reached Alertmanager.
    let expected: BTreeSet<String> = [
        rules::TARGET_DOWN.name,
        rules::BREAKER_OPEN.name,
        "HaleAvailabilityBudgetBurnPage",
        "HaleAvailabilityBudgetBurnTicket",
        "target_down",
        "slo_fast_burn",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    let deadline = Instant::now() + Duration::from_secs(75);
    loop {
        let seen = alertnames(&am, "db").await;
        if expected.is_subset(&seen) {
            break;
        }
        let firing = prometheus.get("/api/v1/alerts").await;
        assert!(
            Instant::now() < deadline,
            "within 75 s Alertmanager has only {seen:?} of {expected:?}; Prometheus: {firing}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // One notification group for db with an alert not held back: the page group, with one page.
    let active = am
        .get("/api/v2/alerts/groups?filter=target%3D%22db%22&active=true&inhibited=false&silenced=false")
        .await;
    let active = active.as_array().expect("a list of groups");
    assert_eq!(
        active.len(),
        1,
        "groups with an active alert about db: {active:#?}"
    );
    let group = &active[0];
    assert_eq!(group["receiver"]["name"], alertmanager::PAGE_RECEIVER);
    assert_eq!(group["labels"], serde_json::json!({"target": "db"}));
    let pages = group["alerts"].as_array().unwrap();
    assert_eq!(pages.len(), 1, "active pages about db: {pages:#?}");
    let page = &pages[0];
    assert_eq!(label(page, "alertname"), "target_down", "{page:#}");
    assert_eq!(label(page, "source"), labels::SOURCE_HALE);
    assert_eq!(label(page, "class"), "target_down");
    assert_eq!(label(page, "severity"), "critical");
    let runbook = page["annotations"]["runbook_url"]
        .as_str()
        .unwrap_or_default();
    assert_eq!(
        runbook,
        format!(
            "{}#haletargetdown",
            hale::config::default_runbook_base_url()
        )
    );

    // Every other alert about db, page or ticket, from Prometheus or hale, is held back by an inhibit rule.
    let all = am
        .get("/api/v2/alerts/groups?filter=target%3D%22db%22")
        .await;
    let mut held_back = BTreeSet::new();
    for group in all.as_array().unwrap() {
        assert_eq!(group["labels"]["target"], "db");
        for alert in group["alerts"].as_array().unwrap() {
            let name = label(alert, "alertname");
            if name == "target_down" {
                continue;
            }
            assert_eq!(alert["status"]["state"], "suppressed", "{alert:#}");
            assert!(
                !alert["status"]["inhibitedBy"]
                    .as_array()
                    .unwrap()
                    .is_empty(),
                "{alert:#}"
            );
            held_back.insert(name.to_owned());
        }
    }
    let mut others = expected.clone();
    others.remove("target_down");
    assert!(
        others.is_subset(&held_back),
        "{others:?} not all in {held_back:?}"
    );
    // Prometheus's own alerts carry the shared labels, so the inhibit rules could match them.
    let prom_down = all
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["alerts"].as_array().unwrap().iter())
        .find(|a| label(a, "alertname") == rules::TARGET_DOWN.name)
        .unwrap();
    assert_eq!(label(prom_down, "class"), "target_down");
    assert_eq!(label(prom_down, "severity"), "critical");
    assert_eq!(label(prom_down, "source"), "");
    // The targets that are up have no alert at all.
    for target in ["web", "api"] {
        assert!(alertnames(&am, target).await.is_empty(), "{target}");
    }

    let _ = prometheus.child.kill().await;
    let _ = am.child.kill().await;
    app.shutdown().await;
}

/// The shortened `for:` rewrites only `for:` lines.
#[test]
fn with_short_for_rewrites_only_for_lines() {
    let text = "      - alert: \"X\"\n        expr: \"up == 0\"\n        for: 2m\n        labels:\n          for: \"kept\"\n";
    assert_eq!(
        with_short_for(text, "3s"),
        "      - alert: \"X\"\n        expr: \"up == 0\"\n        for: 3s\n        labels:\n          for: \"kept\"\n"
    );
}

#[tokio::test]
async fn the_binary_writes_the_committed_alertmanager_config() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("am");
    let output = common::process::run_hale(
        dir.path(),
        &["export", "alertmanager", "--out", out.to_str().unwrap()],
    )
    .await;
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        stdout.trim(),
        format!("wrote {}", out.join(alertmanager::FILE).display())
    );
    assert_eq!(
        std::fs::read_to_string(out.join(alertmanager::FILE)).unwrap(),
        std::fs::read_to_string(committed_config()).unwrap()
    );
}
