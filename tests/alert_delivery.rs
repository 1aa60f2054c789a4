//! Alert delivery end to end, with real receivers: an HTTP server for Discord and the generic webhook, a
//! real SMTP server (aiosmtpd), a real Prometheus Alertmanager, and a port with nothing listening for the
//! dead letters.

// A test crate: an unwrap is an assertion, and tests/common sets a child's rlimit in `pre_exec`.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeDelta, Utc};
use hale::alerts::{Dispatcher, Notice};
use hale::clock::{Clock, SystemClock};
use hale::config::{
    AlertmanagerChannel, ChannelKind, ChannelsConfig, DeliveryConfig, DiscordChannel, EmailChannel,
    Secret, SmtpSecurity, TokenSource, WebhookChannel,
};
use hale::kind::ServiceKind;
use hale::metrics::{AlertMetrics, AlertResult};
use hale::records::{AlertEventKind, AlertLevel};
use hale::store::Store;
use hale::worker::Worker;
use tempfile::TempDir;
use tokio::io::AsyncBufReadExt;
use tokio_util::sync::CancellationToken;

use common::clock::{dispatcher_settled, Pacer};
use common::db::{count_rows, select_texts};
use common::receivers::HttpReceiver;
use common::{dead_port, eventually};

const SECRET_PATH: &str = "SECRETTOKEN123";
const SMTP_PASSWORD: &str = "PASSWORDXYZZY987";

fn notice(kind: AlertEventKind) -> Notice {
    let fired_at = Utc::now() - TimeDelta::seconds(120);
    Notice {
        alert_id: 7,
        event_id: 70,
        kind,
        rule: "target_down".into(),
        target: "api".into(),
        level: AlertLevel::Critical,
        summary: "api is down".into(),
        description: "3 failed checks in a row since 10:00".into(),
        fired_at,
        resolved_at: (kind == AlertEventKind::Resolved).then(|| Utc::now() - TimeDelta::seconds(1)),
        suppressed: 0,
        at: Utc::now(),
        generator_url: "http://127.0.0.1:3002/alerts/7".into(),
        class: hale::alerts::AlertClass::TargetDown,
        runbook_url: "https://runbooks.example/hale.md#haletargetdown".into(),
        one_off: false,
    }
}

/// Quick retries, so a dead letter takes milliseconds.
fn quick_delivery(max_attempts: u32) -> DeliveryConfig {
    DeliveryConfig {
        max_attempts,
        initial_backoff_ms: 20,
        max_backoff_s: 1,
        timeout_s: 5,
        ..DeliveryConfig::default()
    }
}

/// A dispatcher on its own database file, running as a worker.
struct Harness {
    dispatcher: Arc<Dispatcher>,
    metrics: AlertMetrics,
    store: Store,
    db_path: PathBuf,
    cancel: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
    _dir: TempDir,
}

impl Harness {
    async fn start(channels: ChannelsConfig) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let db_path = dir.path().join("hale.db");
        let store = Store::open(&db_path).await.expect("open the store");
        let metrics = AlertMetrics::register(&prometheus::Registry::new());
        let dispatcher = Arc::new(Dispatcher::new(
            channels,
            store.clone(),
            Arc::new(SystemClock),
            metrics.clone(),
        ));
        let cancel = CancellationToken::new();
        let task = tokio::spawn(dispatcher.clone().run(cancel.clone()));
        Self {
            dispatcher,
            metrics,
            store,
            db_path,
            cancel,
            task: Some(task),
            _dir: dir,
        }
    }

    async fn rows(&self, condition: &str) -> i64 {
        count_rows(&self.db_path, "alert_deliveries", condition).await
    }

    async fn stop(&mut self) {
        self.cancel.cancel();
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(5), task)
                .await
                .expect("the dispatcher stops promptly")
                .expect("the dispatcher does not panic");
        }
        self.store.close().await;
    }
}

fn discord_config(url: String) -> ChannelsConfig {
    ChannelsConfig {
        discord: Some(DiscordChannel {
            webhook_url: Secret::new(url),
        }),
        delivery: quick_delivery(3),
        ..ChannelsConfig::default()
    }
}

#[tokio::test]
async fn discord_receives_the_webhook_payload_and_the_delivery_is_counted() {
    let receiver = HttpReceiver::start(vec![(204, "")]).await;
    let mut h = Harness::start(discord_config(receiver.url("/api/webhooks/1/tok"))).await;
    h.dispatcher
        .send(notice(AlertEventKind::Fired), &[ChannelKind::Discord]);

    let got = eventually("discord receives the notice", || async {
        receiver.requests().into_iter().next()
    })
    .await;
    assert_eq!(got.method, "POST");
    assert_eq!(got.path, "/api/webhooks/1/tok");
    let body = got.json();
    assert_eq!(body["username"], "hale");
    assert!(body["content"].as_str().unwrap().contains("api is down"));
    let embed = &body["embeds"][0];
    assert_eq!(embed["title"], "[CRITICAL] target_down: api");
    assert!(embed["description"]
        .as_str()
        .unwrap()
        .starts_with("api is down"));
    assert_eq!(embed["color"], 0xE74C3C);
    let fields = embed["fields"].as_array().expect("fields");
    assert!(fields
        .iter()
        .any(|f| f["name"] == "Target" && f["value"] == "api"));
    let timestamp = embed["timestamp"].as_str().expect("timestamp");
    chrono::DateTime::parse_from_rfc3339(timestamp).expect("an RFC 3339 timestamp");

    eventually("the delivery is marked delivered", || async {
        (h.rows("channel = 'discord' AND state = 'delivered' AND attempts = 1")
            .await
            == 1)
            .then_some(())
    })
    .await;
    assert_eq!(
        h.metrics.count(
            AlertLevel::Critical,
            "target_down",
            "discord",
            AlertResult::Sent
        ),
        1
    );
    let payload = select_texts(
        &h.db_path,
        "alert_deliveries",
        "payload",
        "channel = 'discord'",
    )
    .await;
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&payload[0]).unwrap(),
        body,
        "the stored payload is what was sent"
    );

    // A resolved notice is green.
    h.dispatcher
        .send(notice(AlertEventKind::Resolved), &[ChannelKind::Discord]);
    let resolved = eventually("discord receives the resolved notice", || async {
        receiver.requests().get(1).cloned()
    })
    .await;
    assert_eq!(resolved.json()["embeds"][0]["color"], 0x2ECC71);
    assert_eq!(
        resolved.json()["embeds"][0]["title"],
        "[RESOLVED] target_down: api"
    );
    h.stop().await;
}

#[tokio::test]
async fn discord_rate_limit_retry_after_is_honoured() {
    let receiver = HttpReceiver::start(vec![
        (
            429,
            r#"{"message": "You are being rate limited.", "retry_after": 0.3, "global": false}"#,
        ),
        (204, ""),
    ])
    .await;
    let mut config = discord_config(receiver.url("/hook"));
    // The backoff alone would retry after 20 ms: the 300 ms seen below come from retry_after.
    config.delivery.max_attempts = 2;
    let mut h = Harness::start(config).await;
    h.dispatcher
        .send(notice(AlertEventKind::Fired), &[ChannelKind::Discord]);
    eventually("delivered on the second attempt", || async {
        (h.rows("state = 'delivered' AND attempts = 2").await == 1).then_some(())
    })
    .await;
    let requests = receiver.requests();
    assert_eq!(requests.len(), 2);
    let gap = requests[1].at - requests[0].at;
    assert!(
        gap >= Duration::from_millis(290),
        "the second attempt came {gap:?} after the first, before retry_after"
    );
    assert_eq!(
        h.metrics.count(
            AlertLevel::Critical,
            "target_down",
            "discord",
            AlertResult::Retried
        ),
        1
    );
    assert_eq!(
        h.metrics.count(
            AlertLevel::Critical,
            "target_down",
            "discord",
            AlertResult::Sent
        ),
        1
    );
    h.stop().await;
}

#[tokio::test]
async fn the_generic_webhook_gets_its_document_and_the_bearer_token() {
    let receiver = HttpReceiver::start(vec![(200, "{}")]).await;
    let config = ChannelsConfig {
        webhook: Some(WebhookChannel {
            url: Secret::new(receiver.url("/hale")),
            bearer_token: Some(Secret::new("tok-abc")),
        }),
        delivery: quick_delivery(3),
        ..ChannelsConfig::default()
    };
    let mut h = Harness::start(config).await;
    let sent = notice(AlertEventKind::Fired);
    h.dispatcher
        .send(sent.clone(), &[ChannelKind::Webhook, ChannelKind::Log]);
    let got = eventually("the webhook receives the notice", || async {
        receiver.requests().into_iter().next()
    })
    .await;
    assert_eq!(got.headers["authorization"], "Bearer tok-abc");
    assert_eq!(got.headers["content-type"], "application/json");
    let body = got.json();
    assert_eq!(body["version"], 1);
    assert_eq!(body["kind"], "fired");
    assert_eq!(body["generator_url"], "http://127.0.0.1:3002/alerts/7");
    let alert = &body["alert"];
    assert_eq!(alert["id"], 7);
    assert_eq!(alert["rule"], "target_down");
    assert_eq!(alert["target"], "api");
    assert_eq!(alert["level"], "critical");
    assert_eq!(alert["state"], "firing");
    assert_eq!(alert["summary"], "api is down");
    assert_eq!(alert["suppressed"], 0);
    assert!(alert["resolved_at"].is_null());
    assert_eq!(
        alert["fired_at"]
            .as_str()
            .map(|s| chrono::DateTime::parse_from_rfc3339(s).unwrap()),
        Some(sent.fired_at.into())
    );
    // The log channel is a delivery too.
    eventually("both deliveries are delivered", || async {
        (h.rows("state = 'delivered'").await == 2).then_some(())
    })
    .await;
    h.stop().await;
}

#[tokio::test]
async fn a_receiver_that_is_down_ends_as_a_dead_letter_listed_by_the_api() {
    let port = dead_port();
    let mut config = common::config::test_config();
    config.alerts.channels.webhook = Some(WebhookChannel {
        url: Secret::new(format!("http://127.0.0.1:{port}/hook/{SECRET_PATH}")),
        bearer_token: None,
    });
    config.alerts.channels.delivery = quick_delivery(3);
    // Dead letters need the operate role.
    std::env::set_var("HALE_DEAD_LETTERS_OPERATE", OPERATE_TOKEN);
    config.auth.tokens.operate = Some(TokenSource::Env("HALE_DEAD_LETTERS_OPERATE".into()));
    let mut app = common::app::spawn_app_with(config).await;
    let dispatcher = app.app().dispatcher().expect("the dispatcher runs").clone();
    assert!(dispatcher.configured(ChannelKind::Webhook));
    assert!(!dispatcher.configured(ChannelKind::Discord));
    dispatcher.send(
        notice(AlertEventKind::Fired),
        &[ChannelKind::Webhook, ChannelKind::Discord],
    );

    let letters = eventually("the dead letter is listed", || async {
        let (status, body) = get_as(&app, "/alerts/dead-letters?limit=10", OPERATE_TOKEN).await;
        assert_eq!(status, 200, "{body}");
        (body.as_array().is_some_and(|a| !a.is_empty())).then_some(body)
    })
    .await;
    let letter = &letters[0];
    assert_eq!(letter["channel"], "webhook");
    assert_eq!(letter["attempts"], 3);
    assert_eq!(letter["payload"]["alert"]["rule"], "target_down");
    let error = letter["error"].as_str().expect("an error");
    assert!(!error.is_empty());
    assert!(!letters.to_string().contains(SECRET_PATH), "{letters}");
    assert!(
        !letters.to_string().contains(&port.to_string()),
        "{letters}"
    );

    let (status, body) = get_as(&app, "/alerts/dead-letters?limit=0", OPERATE_TOKEN).await;
    assert_eq!(status, 400);
    assert!(body.to_string().contains("limit"), "{body}");

    app.shutdown().await;
    assert_eq!(
        count_rows(
            &app.db_path,
            "alert_deliveries",
            "state = 'dead' AND channel = 'webhook'"
        )
        .await,
        1
    );
    assert_eq!(
        count_rows(&app.db_path, "alert_deliveries", "channel = 'discord'").await,
        0
    );
    let payloads = select_texts(
        &app.db_path,
        "alert_deliveries",
        "payload",
        "state = 'dead'",
    )
    .await;
    assert!(payloads[0].contains("api is down"));
}

const OPERATE_TOKEN: &str = "operate-token-bbbbbbbbbbbbbbbb";
const READ_TOKEN: &str = "read-token-aaaaaaaaaaaaaaaa";

/// GET a Health Proxy path with a bearer token; the status and the JSON body.
async fn get_as(app: &common::app::TestApp, path: &str, token: &str) -> (u16, serde_json::Value) {
    let res = app
        .request(reqwest::Method::GET, ServiceKind::HealthProxy, path)
        .bearer_auth(token)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(serde_json::Value::Null))
}

#[tokio::test]
async fn pending_deliveries_are_resumed_at_start() {
    let receiver = HttpReceiver::start(vec![(204, "")]).await;
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("hale.db");
    {
        let store = Store::open(&db_path).await.unwrap();
        store
            .insert_delivery(1, "discord", r#"{"content": "left over"}"#, Utc::now())
            .await
            .unwrap();
        store.close().await;
    }
    let store = Store::open(&db_path).await.unwrap();
    let dispatcher = Arc::new(Dispatcher::new(
        discord_config(receiver.url("/hook")),
        store.clone(),
        Arc::new(SystemClock),
        AlertMetrics::register(&prometheus::Registry::new()),
    ));
    let cancel = CancellationToken::new();
    let task = tokio::spawn(dispatcher.run(cancel.clone()));
    let got = eventually("the left-over payload is sent", || async {
        receiver.requests().into_iter().next()
    })
    .await;
    assert_eq!(got.body, r#"{"content": "left over"}"#);
    eventually("the row is delivered", || async {
        (count_rows(&db_path, "alert_deliveries", "state = 'delivered'").await == 1).then_some(())
    })
    .await;
    cancel.cancel();
    task.await.unwrap();
    store.close().await;
}

#[tokio::test]
async fn cancel_stops_promptly_and_leaves_the_delivery_pending() {
    let port = dead_port();
    let mut config = discord_config(format!("http://127.0.0.1:{port}/hook"));
    config.delivery = DeliveryConfig {
        max_attempts: 10,
        initial_backoff_ms: 60_000,
        max_backoff_s: 60,
        timeout_s: 5,
        ..DeliveryConfig::default()
    };
    let mut h = Harness::start(config).await;
    h.dispatcher
        .send(notice(AlertEventKind::Fired), &[ChannelKind::Discord]);
    eventually("the first attempt failed", || async {
        (h.rows("state = 'pending' AND attempts = 1").await == 1).then_some(())
    })
    .await;
    let started = std::time::Instant::now();
    h.stop().await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(h.rows("state = 'pending'").await, 1);
}

/// aiosmtpd on a free port, printing every message it gets.
struct SmtpServer {
    port: u16,
    child: tokio::process::Child,
    lines: Arc<std::sync::Mutex<Vec<String>>>,
}

impl SmtpServer {
    async fn start() -> Self {
        let port = dead_port();
        let mut child = tokio::process::Command::new("python3")
            .args(["-u", "-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{port}"))
            .args(["-c", "aiosmtpd.handlers.Debugging"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("python3 runs (scripts/test installs aiosmtpd)");
        let lines: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
        let out = lines.clone();
        let stdout = child.stdout.take().unwrap();
        tokio::spawn(async move {
            let mut reader = tokio::io::BufReader::new(stdout).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                out.lock().unwrap().push(line);
            }
        });
        eventually("aiosmtpd listens", || async {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .ok()
                .map(|_| ())
        })
        .await;
        Self { port, child, lines }
    }

    fn output(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }
}

#[tokio::test]
async fn email_reaches_a_real_smtp_server() {
    let mut smtp = SmtpServer::start().await;
    let config = ChannelsConfig {
        email: Some(EmailChannel {
            smtp_host: "127.0.0.1".into(),
            smtp_port: smtp.port,
            security: SmtpSecurity::Plain,
            username: None,
            password: None,
            from: "hale <hale@example.com>".into(),
            to: vec!["ops@example.com".into()],
        }),
        delivery: quick_delivery(3),
        ..ChannelsConfig::default()
    };
    let mut h = Harness::start(config).await;
    h.dispatcher
        .send(notice(AlertEventKind::Fired), &[ChannelKind::Email]);
    eventually("the email arrives", || async {
        smtp.output()
            .contains("Subject: [hale CRITICAL] target_down: api is down")
            .then_some(())
    })
    .await;
    h.dispatcher
        .send(notice(AlertEventKind::Resolved), &[ChannelKind::Email]);
    eventually("the resolved email arrives", || async {
        smtp.output()
            .contains("Subject: [hale RESOLVED] target_down: api is down")
            .then_some(())
    })
    .await;
    let output = smtp.output();
    assert!(output.contains("To: ops@example.com"), "{output}");
    assert!(output.contains("3 failed checks in a row"), "{output}");
    eventually("both emails are delivered", || async {
        (h.rows("channel = 'email' AND state = 'delivered'").await == 2).then_some(())
    })
    .await;
    h.stop().await;
    let _ = smtp.child.kill().await;
}

/// A real Alertmanager on a free port, with one receiver that drops everything.
struct AlertmanagerProcess {
    url: String,
    child: tokio::process::Child,
    _dir: TempDir,
}

impl AlertmanagerProcess {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("alertmanager.yml");
        std::fs::write(
            &config,
            "route:\n  receiver: 'null'\nreceivers:\n  - name: 'null'\n",
        )
        .unwrap();
        let port = dead_port();
        let child = tokio::process::Command::new("prometheus-alertmanager")
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .arg(format!("--storage.path={}", dir.path().display()))
            .arg(format!("--config.file={}", config.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("prometheus-alertmanager runs (scripts/test installs it)");
        let url = format!("http://127.0.0.1:{port}");
        let client = common::app::client();
        eventually("alertmanager is ready", || {
            let client = client.clone();
            let url = url.clone();
            async move {
                let response = client.get(format!("{url}/-/ready")).send().await.ok()?;
                response.status().is_success().then_some(())
            }
        })
        .await;
        Self {
            url,
            child,
            _dir: dir,
        }
    }

    async fn alerts(&self, query: &str) -> Vec<serde_json::Value> {
        common::app::client()
            .get(format!("{}/api/v2/alerts{query}", self.url))
            .send()
            .await
            .expect("alertmanager answers")
            .json()
            .await
            .expect("a JSON list")
    }
}

#[tokio::test]
async fn alertmanager_shows_the_alert_firing_then_resolved() {
    let mut am = AlertmanagerProcess::start().await;
    let config = ChannelsConfig {
        alertmanager: Some(AlertmanagerChannel {
            url: Secret::new(am.url.clone()),
            resend_interval_s: 60,
        }),
        delivery: quick_delivery(3),
        ..ChannelsConfig::default()
    };
    let mut h = Harness::start(config).await;
    assert!(h.dispatcher.configured(ChannelKind::Alertmanager));
    // The rule names only the log: Alertmanager receives every notice all the same.
    h.dispatcher
        .send(notice(AlertEventKind::Fired), &[ChannelKind::Log]);
    let alert = eventually("alertmanager lists the alert", || async {
        am.alerts("")
            .await
            .into_iter()
            .find(|a| a["labels"]["alertname"] == "target_down")
    })
    .await;
    assert_eq!(alert["labels"]["target"], "api");
    assert_eq!(alert["labels"]["severity"], "critical");
    assert_eq!(alert["labels"]["source"], "hale");
    assert_eq!(alert["annotations"]["summary"], "api is down");
    assert_eq!(alert["status"]["state"], "active");
    assert_eq!(alert["generatorURL"], "http://127.0.0.1:3002/alerts/7");

    h.dispatcher
        .send(notice(AlertEventKind::Resolved), &[ChannelKind::Log]);
    eventually(
        "alertmanager no longer lists the alert as active",
        || async {
            let active = am.alerts("?active=true").await;
            (!active
                .iter()
                .any(|a| a["labels"]["alertname"] == "target_down"))
            .then_some(())
        },
    )
    .await;
    // Alertmanager leaves a resolved alert out of every listing (its endsAt is in the past).
    assert!(am.alerts("").await.is_empty());
    // The row is marked once Alertmanager's answer is back, a moment after it shows the change.
    eventually("both notices marked delivered", || async {
        (h.rows("channel = 'alertmanager' AND state = 'delivered'")
            .await
            == 2)
            .then_some(())
    })
    .await;
    assert_eq!(h.rows("channel = 'alertmanager'").await, 2);
    h.stop().await;
    let _ = am.child.kill().await;
}

#[tokio::test]
async fn no_secret_reaches_the_logs_or_the_database() {
    // A database with a delivery left pending: the real `hale serve` resumes it at start, against a
    // webhook URL with a secret path on a port where nothing listens.
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("hale.db");
    {
        let store = Store::open(&db_path).await.unwrap();
        let payload = hale::alerts::channels::webhook::document(&notice(AlertEventKind::Fired));
        store
            .insert_delivery(1, "webhook", &payload.to_string(), Utc::now())
            .await
            .unwrap();
        store
            .insert_delivery(1, "email", r#"{"subject": "s", "body": "b"}"#, Utc::now())
            .await
            .unwrap();
        store.close().await;
    }
    let port = dead_port();
    let mut config = common::config::test_config_json();
    config["alerts"] = serde_json::json!({
        "channels": {
            "webhook": {
                "url": format!("http://127.0.0.1:{port}/hook/{SECRET_PATH}"),
                "bearer_token": "BEARERSECRET555"
            },
            "email": {
                "smtp_host": "127.0.0.1",
                "smtp_port": port,
                "security": "plain",
                "username": "hale",
                "password": SMTP_PASSWORD,
                "from": "hale@example.com",
                "to": ["ops@example.com"]
            },
            "delivery": { "max_attempts": 2, "initial_backoff_ms": 10, "max_backoff_s": 1, "timeout_s": 2 }
        }
    });
    let mut hale = common::process::HaleProcess::serve_db(
        &config,
        Some(&db_path),
        &[],
        &[("HALE_LOG", "debug")],
    )
    .await;
    hale.wait_listening(&[ServiceKind::HealthProxy]).await;
    eventually("both deliveries are dead letters", || async {
        (count_rows(&db_path, "alert_deliveries", "state = 'dead'").await == 2).then_some(())
    })
    .await;
    hale.signal("TERM");
    assert!(hale.wait_exit(common::DEADLINE).await.success());

    let logs = [hale.stdout_lines(), hale.stderr_lines()]
        .concat()
        .join("\n");
    assert!(
        logs.contains("dead letter"),
        "the dead letters are logged: {logs}"
    );
    for secret in [SECRET_PATH, SMTP_PASSWORD, "BEARERSECRET555"] {
        assert!(!logs.contains(secret), "{secret} in the logs");
        for column in ["payload", "error"] {
            let values = select_texts(&db_path, "alert_deliveries", column, "1").await;
            assert!(
                values.iter().all(|v| !v.contains(secret)),
                "{secret} in {column}: {values:?}"
            );
        }
    }
}

#[tokio::test]
async fn alertmanager_firing_alerts_are_posted_again_until_resolved() {
    let receiver = HttpReceiver::start(vec![(200, "")]).await;
    let clock = hale::clock::ManualClock::new(Utc::now());
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("hale.db")).await.unwrap();
    let dispatcher = Arc::new(Dispatcher::new(
        ChannelsConfig {
            alertmanager: Some(AlertmanagerChannel {
                url: Secret::new(receiver.url("/am/")),
                resend_interval_s: 60,
            }),
            delivery: quick_delivery(3),
            ..ChannelsConfig::default()
        },
        store.clone(),
        Arc::new(clock.clone()),
        AlertMetrics::register(&prometheus::Registry::new()),
    ));
    let cancel = CancellationToken::new();
    let task = tokio::spawn(dispatcher.clone().run(cancel.clone()));
    dispatcher.send(notice(AlertEventKind::Fired), &[]);
    let first = eventually("the fired alert is posted", || async {
        receiver.requests().into_iter().next()
    })
    .await;
    assert_eq!(first.path, "/am/api/v2/alerts");
    let posts = || receiver.requests().len();

    Pacer::new(&clock)
        .step(Duration::from_secs(1))
        .advance(Duration::from_secs(59))
        .await;
    dispatcher_settled(&dispatcher, &clock).await;
    assert_eq!(posts(), 1, "nothing before resend_interval_s");
    Pacer::new(&clock)
        .step(Duration::from_secs(1))
        .advance(Duration::from_secs(1))
        .await;
    let again = eventually("the firing alert is posted again", || async {
        receiver.requests().get(1).cloned()
    })
    .await;
    assert_eq!(again.json(), first.json(), "the same alert, unchanged");
    // The re-post is not a new delivery.
    assert_eq!(
        count_rows(&dir.path().join("hale.db"), "alert_deliveries", "1").await,
        1
    );

    dispatcher.send(notice(AlertEventKind::Resolved), &[]);
    let resolved = eventually("the resolved alert is posted", || async {
        receiver.requests().get(2).cloned()
    })
    .await;
    assert!(
        resolved.json()[0]["endsAt"].is_string(),
        "{}",
        resolved.body
    );
    Pacer::new(&clock)
        .step(Duration::from_secs(10))
        .advance(Duration::from_secs(180))
        .await;
    dispatcher_settled(&dispatcher, &clock).await;
    assert_eq!(posts(), 3, "a resolved alert is not posted again");
    cancel.cancel();
    task.await.unwrap();
    store.close().await;
}

/// Serves `/tN` for many targets at once: target N answers 503 while the current second plus N is even, else
/// 200, so each flips every second and half of them are down at any time (`steady` makes every one answer
/// 200). Counts the requests it gets: each is one check hale made.
struct FlippingTarget {
    addr: std::net::SocketAddr,
    requests: Arc<std::sync::atomic::AtomicU64>,
    steady: Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl FlippingTarget {
    async fn start() -> Self {
        use std::sync::atomic::Ordering;
        use tokio::io::AsyncWriteExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let steady = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (counted, steady_now) = (requests.clone(), steady.clone());
        let task = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let (counted, steady) = (counted.clone(), steady_now.clone());
                tokio::spawn(async move {
                    let mut socket = tokio::io::BufReader::new(socket);
                    let mut request_line = String::new();
                    if socket.read_line(&mut request_line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    loop {
                        let mut header = String::new();
                        match socket.read_line(&mut header).await {
                            Ok(0) | Err(_) => return,
                            Ok(_) if header.trim().is_empty() => break,
                            Ok(_) => {}
                        }
                    }
                    counted.fetch_add(1, Ordering::SeqCst);
                    let n: u64 = request_line
                        .split(' ')
                        .nth(1)
                        .and_then(|path| path.strip_prefix("/t"))
                        .and_then(|n| n.parse().ok())
                        .unwrap_or(0);
                    let second = Utc::now().timestamp().unsigned_abs();
                    let down = !steady.load(Ordering::SeqCst) && (second + n).is_multiple_of(2);
                    let status = if down { "503 Down" } else { "200 OK" };
                    let response = format!(
                        "HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                    );
                    let _ = socket.get_mut().write_all(response.as_bytes()).await;
                    let _ = socket.get_mut().shutdown().await;
                });
            }
        });
        Self {
            addr,
            requests,
            steady,
            task,
        }
    }

    fn requests(&self) -> u64 {
        self.requests.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for FlippingTarget {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A webhook receiver that accepts every connection and never reads or answers: each connection stays open
/// until hale closes it. Counts the connections it accepted.
struct HangingReceiver {
    addr: std::net::SocketAddr,
    accepted: Arc<std::sync::atomic::AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl HangingReceiver {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counted = accepted.clone();
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                held.push(socket);
            }
        });
        Self {
            addr,
            accepted,
            task,
        }
    }

    fn accepted(&self) -> u64 {
        self.accepted.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for HangingReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What a watch over a running hale saw: its open descriptors (from /proc), its RSS, and the `/health`
/// requests that got no answer within a second.
#[derive(Debug, Default)]
struct Watched {
    max_fds: u64,
    max_rss_kb: u64,
    health_asked: u32,
    health_unanswered: Vec<String>,
}

/// Asks `/health` and counts hale's descriptors every 250 ms for `span`.
async fn watch_hale(pid: u32, health: &str, span: Duration) -> Watched {
    // A new connection for each request: hale must still accept one.
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(1))
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let mut seen = Watched::default();
    let until = tokio::time::Instant::now() + span;
    while tokio::time::Instant::now() < until {
        if let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) {
            seen.max_fds = seen.max_fds.max(dir.count() as u64);
        }
        seen.max_rss_kb = seen.max_rss_kb.max(rss_kb(pid));
        seen.health_asked += 1;
        match client.get(health).send().await {
            Ok(response) => {
                let _ = response.bytes().await;
            }
            Err(e) => seen.health_unanswered.push(e.to_string()),
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    seen
}

/// VmRSS of a process in kB (0 once it is gone).
fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Issue 15, item 2: 40 targets flip up and down every second, an alert rule fires and resolves at every flip
/// (`consecutive_failures` 1, `cooldown_s` 0) and sends to a webhook that accepts connections and never
/// answers (`timeout_s` 300), under an open-file limit of 256. Deliveries are bounded, so hale keeps its
/// descriptors, `/health` answers throughout and every check is stored; a restart over a backlog of 3,000
/// pending rows answers at once, dead-letters what is past the queue bound and resumes the rest paced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_hangs_never_exhausts_descriptors_nor_the_next_start() {
    const LIMIT: u64 = 256;
    const FD_BOUND: u64 = 200;
    let target = FlippingTarget::start().await;
    let webhook = HangingReceiver::start().await;
    let mut config = common::config::test_config_json();
    config["services"] = (0..40)
        .map(|i| {
            serde_json::json!({
                "name": format!("t{i}"),
                "url": format!("http://{}/t{i}", target.addr),
                "interval_s": 1,
                "timeout_ms": 900
            })
        })
        .collect();
    config["alerts"] = serde_json::json!({
        "resolve_after_successes": 1,
        "rules": [{
            "name": "down",
            "when": { "consecutive_failures": { "count": 1 } },
            "level": "critical",
            "cooldown_s": 0,
            "channels": ["webhook"]
        }],
        "channels": {
            "webhook": { "url": format!("http://{}/hook", webhook.addr) },
            "delivery": { "timeout_s": 300 }
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("hale.db");

    // A first run of 15 s: about 40 notices a second, none ever answered.
    let mut hale =
        common::process::HaleProcess::serve_db_with_open_file_limit(&config, &db_path, LIMIT).await;
    let addrs = hale.wait_listening(&[ServiceKind::HealthProxy]).await;
    let health = format!("http://{}/health", addrs[&ServiceKind::HealthProxy]);
    let first = watch_hale(hale.pid, &health, Duration::from_secs(15)).await;
    let connections = webhook.accepted();
    hale.signal("TERM");
    assert!(hale.wait_exit(common::DEADLINE).await.success());
    let checks = count_rows(&db_path, "health_checks", "1").await;
    let made = target.requests();
    let count = |state: &'static str| {
        let db_path = db_path.clone();
        async move { count_rows(&db_path, "alert_deliveries", &format!("state = '{state}'")).await }
    };
    let (pending, superseded, events) = (
        count("pending").await,
        count("superseded").await,
        count_rows(&db_path, "alert_events", "kind IN ('fired', 'resolved')").await,
    );
    eprintln!(
        "first run: max fds {}, max rss {} kB, /health unanswered {}/{}, webhook connections {connections}, \
         checks stored {checks} of {made}, notices {events}, pending {pending}, superseded {superseded}",
        first.max_fds,
        first.max_rss_kb,
        first.health_unanswered.len(),
        first.health_asked
    );
    assert!(
        first.health_unanswered.is_empty(),
        "/health did not answer: {:?}",
        first.health_unanswered
    );
    assert!(
        first.max_fds < FD_BOUND,
        "{} descriptors open",
        first.max_fds
    );
    assert!(
        connections <= 2,
        "{connections} connections to the webhook at once"
    );
    assert!(events > 200, "the alerts fired and resolved: {events}");
    assert_eq!(checks, made as i64, "every check made is stored");
    let drained = hale
        .json_logs()
        .into_iter()
        .find(|l| l["message"] == "check writer drained")
        .expect("the writer reports at shutdown");
    assert_eq!(drained["dropped"], 0, "{drained}");
    assert_eq!(drained["unwritten"], 0, "{drained}");
    // One waiting notice per alert, the 2 in flight, and at most one per alert received as hale stopped
    // (stored as it was, without collapsing).
    assert!(
        pending <= 40 + 2 + 40,
        "at most one notice waits per alert: {pending} pending"
    );
    assert!(superseded > 0, "repeats of an alert collapse");

    // A backlog of 3,000 more pending rows of one channel, as a long outage leaves behind.
    {
        let pool = sqlx::SqlitePool::connect_with(
            sqlx::sqlite::SqliteConnectOptions::new().filename(&db_path),
        )
        .await
        .unwrap();
        sqlx::query(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000)
             INSERT INTO alert_deliveries (alert_event_id, channel, state, attempts, created_at_ms, payload)
             SELECT NULL, 'webhook', 'pending', 0, ?1 + i, '{\"version\": 1}' FROM n",
        )
        .bind(Utc::now().timestamp_millis())
        .execute(&pool)
        .await
        .unwrap();
        pool.close().await;
    }
    let rows_before = count_rows(&db_path, "alert_deliveries", "1").await;

    // The next start, with every target healthy: /health answers at once and descriptors stay bounded.
    target
        .steady
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let connections_before = webhook.accepted();
    let started = std::time::Instant::now();
    let mut hale =
        common::process::HaleProcess::serve_db_with_open_file_limit(&config, &db_path, LIMIT).await;
    let addrs = hale.wait_listening(&[ServiceKind::HealthProxy]).await;
    let health = format!("http://{}/health", addrs[&ServiceKind::HealthProxy]);
    let answered = common::app::client().get(&health).send().await;
    let first_answer = started.elapsed();
    let second = watch_hale(hale.pid, &health, Duration::from_secs(6)).await;
    let connections = webhook.accepted() - connections_before;
    hale.signal("TERM");
    assert!(hale.wait_exit(common::DEADLINE).await.success());
    let (pending, dead) = (count("pending").await, count("dead").await);
    eprintln!(
        "restart over {rows_before} rows: /health answered after {first_answer:?}, max fds {}, max rss {} kB, \
         /health unanswered {}/{}, webhook connections {connections}, pending {pending}, dead {dead}",
        second.max_fds,
        second.max_rss_kb,
        second.health_unanswered.len(),
        second.health_asked
    );
    assert!(answered.is_ok(), "{answered:?}");
    assert!(
        first_answer < Duration::from_secs(2),
        "/health first answered after {first_answer:?}"
    );
    assert!(
        second.health_unanswered.is_empty(),
        "/health did not answer: {:?}",
        second.health_unanswered
    );
    assert!(
        second.max_fds < FD_BOUND,
        "{} descriptors open",
        second.max_fds
    );
    assert!(
        connections <= 2,
        "{connections} connections to the webhook at once"
    );
    assert!(
        dead >= 3000 - 1000,
        "past the queue bound the oldest rows are dead letters: {dead}"
    );
    assert!(
        count_rows(&db_path, "alert_deliveries", "1").await >= rows_before,
        "no row is deleted"
    );
    assert!(
        pending <= 1000 + 40 + 2,
        "the queue is bounded: {pending} pending"
    );
    assert_eq!(
        count_rows(
            &db_path,
            "alert_deliveries",
            "state = 'dead' AND error LIKE '%queue%full%'"
        )
        .await,
        dead,
        "each row past the bound says why"
    );
}

/// A notice for `target` (its own alert and lane), made at `at`.
fn notice_for(target: &str, kind: AlertEventKind, at: chrono::DateTime<Utc>) -> Notice {
    Notice {
        target: target.into(),
        at,
        ..notice(kind)
    }
}

#[tokio::test]
async fn a_failing_receiver_opens_its_channel_breaker_and_the_notices_wait() {
    // Three 503s, then 204s. The breaker opens after 2 failures in a row and closes after 1 trial success.
    let receiver = HttpReceiver::start(vec![(503, ""), (503, ""), (503, ""), (204, "")]).await;
    let clock = hale::clock::ManualClock::new(Utc::now());
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("hale.db");
    let store = Store::open(&db_path).await.unwrap();
    let mut config = discord_config(receiver.url("/hook"));
    config.delivery.max_attempts = 10;
    // One attempt at a time, so the failures come in a known order.
    config.delivery.max_concurrent_per_channel = 1;
    config.delivery.breaker = hale::config::BreakerConfig {
        failure_threshold: 2,
        success_threshold: 1,
        open_timeout_s: 60,
    };
    let dispatcher = Arc::new(Dispatcher::new(
        config,
        store.clone(),
        Arc::new(clock.clone()),
        AlertMetrics::register(&prometheus::Registry::new()),
    ));
    let cancel = CancellationToken::new();
    let task = tokio::spawn(dispatcher.clone().run(cancel.clone()));
    let now = clock.now();
    for target in ["a", "b", "c"] {
        dispatcher.send(
            notice_for(target, AlertEventKind::Fired, now),
            &[ChannelKind::Discord],
        );
    }
    let rows = |condition: &'static str| {
        let db_path = db_path.clone();
        async move { count_rows(&db_path, "alert_deliveries", condition).await }
    };
    eventually("two attempts failed", || async {
        (rows("attempts = 1").await == 2).then_some(())
    })
    .await;
    // The backoff (20 ms) has passed, but the breaker is open for 60 s: nothing is tried.
    Pacer::new(&clock)
        .step(Duration::from_secs(1))
        .advance(Duration::from_secs(59))
        .await;
    dispatcher_settled(&dispatcher, &clock).await;
    assert_eq!(
        receiver.requests().len(),
        2,
        "the open breaker holds the notices"
    );
    assert_eq!(rows("state = 'pending'").await, 3, "they wait, pending");

    // Past open_timeout_s one trial goes out; it fails and the breaker opens again.
    Pacer::new(&clock)
        .step(Duration::from_secs(1))
        .advance(Duration::from_secs(1))
        .await;
    eventually("one trial", || async {
        (receiver.requests().len() == 3).then_some(())
    })
    .await;
    dispatcher_settled(&dispatcher, &clock).await;
    assert_eq!(receiver.requests().len(), 3, "one trial at a time");

    // The next trial succeeds: the breaker closes and every notice goes out.
    Pacer::new(&clock)
        .step(Duration::from_secs(1))
        .advance(Duration::from_secs(60))
        .await;
    eventually("every notice delivered", || async {
        (rows("state = 'delivered'").await == 3).then_some(())
    })
    .await;
    assert_eq!(receiver.requests().len(), 6);
    cancel.cancel();
    task.await.unwrap();
    store.close().await;
}

#[tokio::test]
async fn repeats_of_an_alert_collapse_and_a_full_queue_drops_its_oldest_as_dead_letters() {
    // A receiver that never answers holds the channel's only slot with the first notice.
    let webhook = HangingReceiver::start().await;
    let mut config = ChannelsConfig {
        webhook: Some(WebhookChannel {
            url: Secret::new(format!("http://{}/hook", webhook.addr)),
            bearer_token: None,
        }),
        delivery: quick_delivery(3),
        ..ChannelsConfig::default()
    };
    config.delivery.max_concurrent_per_channel = 1;
    config.delivery.max_queued_per_channel = 3;
    let mut h = Harness::start(config).await;
    let now = Utc::now();
    h.dispatcher.send(
        notice_for("first", AlertEventKind::Fired, now),
        &[ChannelKind::Webhook],
    );
    eventually("the first notice is in flight", || async {
        (webhook.accepted() == 1).then_some(())
    })
    .await;
    // Three notices of one alert: the last replaces the two before it.
    for kind in [
        AlertEventKind::Fired,
        AlertEventKind::Resolved,
        AlertEventKind::Fired,
    ] {
        h.dispatcher
            .send(notice_for("api", kind, now), &[ChannelKind::Webhook]);
    }
    eventually("two notices superseded", || async {
        (h.rows("state = 'superseded'").await == 2).then_some(())
    })
    .await;
    assert_eq!(
        h.metrics.count(
            AlertLevel::Critical,
            "target_down",
            "webhook",
            AlertResult::Superseded
        ),
        2
    );
    // Four more alerts: the queue holds 3, so the two oldest waiting become dead letters.
    for target in ["b", "c", "d", "e"] {
        h.dispatcher.send(
            notice_for(target, AlertEventKind::Fired, now),
            &[ChannelKind::Webhook],
        );
    }
    eventually("the two oldest waiting are dead letters", || async {
        (h.rows("state = 'dead' AND error LIKE '%queue of channel webhook was full (3 notices waiting)%'")
            .await
            == 2)
            .then_some(())
    })
    .await;
    assert_eq!(
        h.metrics.count(
            AlertLevel::Critical,
            "target_down",
            "webhook",
            AlertResult::Dropped
        ),
        2
    );
    let dead_payloads =
        select_texts(&h.db_path, "alert_deliveries", "payload", "state = 'dead'").await;
    assert!(
        dead_payloads
            .iter()
            .any(|p| p.contains("\"target\":\"api\"")),
        "the oldest waiting (api's latest) went first: {dead_payloads:?}"
    );
    assert_eq!(
        h.rows("state = 'pending'").await,
        1 + 3,
        "one in flight, three waiting"
    );
    assert_eq!(h.rows("1").await, 8, "every notice has its row");
    assert_eq!(webhook.accepted(), 1, "one connection for the channel");
    h.stop().await;
}

#[tokio::test]
async fn rows_left_pending_are_resumed_paced() {
    let receiver = HttpReceiver::start(vec![(204, "")]).await;
    let clock = hale::clock::ManualClock::new(Utc::now());
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("hale.db");
    let store = Store::open(&db_path).await.unwrap();
    for i in 0..10 {
        store
            .insert_delivery(
                1,
                "discord",
                &format!(r#"{{"content": "left over {i}"}}"#),
                clock.now(),
            )
            .await
            .unwrap();
    }
    let mut config = discord_config(receiver.url("/hook"));
    config.delivery.resume_per_s = 2;
    let dispatcher = Arc::new(Dispatcher::new(
        config,
        store.clone(),
        Arc::new(clock.clone()),
        AlertMetrics::register(&prometheus::Registry::new()),
    ));
    let cancel = CancellationToken::new();
    let task = tokio::spawn(dispatcher.clone().run(cancel.clone()));
    eventually("the first row is sent at once", || async {
        (receiver.requests().len() == 1).then_some(())
    })
    .await;
    dispatcher_settled(&dispatcher, &clock).await;
    assert_eq!(receiver.requests().len(), 1, "the next waits its turn");
    // Two a second: 2 s later, 4 more.
    Pacer::new(&clock)
        .step(Duration::from_millis(500))
        .advance(Duration::from_secs(2))
        .await;
    eventually("four more rows sent", || async {
        (receiver.requests().len() == 5).then_some(())
    })
    .await;
    dispatcher_settled(&dispatcher, &clock).await;
    assert_eq!(receiver.requests().len(), 5, "no more than the pace allows");
    Pacer::new(&clock)
        .step(Duration::from_millis(500))
        .advance(Duration::from_secs(3))
        .await;
    eventually("every row delivered", || async {
        (count_rows(&db_path, "alert_deliveries", "state = 'delivered'").await == 10).then_some(())
    })
    .await;
    assert_eq!(
        receiver.requests()[0].body,
        r#"{"content": "left over 0"}"#,
        "oldest first"
    );
    cancel.cancel();
    task.await.unwrap();
    store.close().await;
}

/// An SMTP receiver (aiosmtpd) that offers one login mechanism and refuses every login quoting, as some
/// servers do, the base64 credentials it got.
const ECHOING_SMTP: &str = r#"
import base64, sys, threading
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

port, mechanism = int(sys.argv[1]), sys.argv[2]

class Echo:
    async def auth_PLAIN(self, server, args):
        if len(args) > 1:
            given = args[1]
        else:
            given = base64.b64encode(await server.challenge_auth("")).decode()
        await server.push("535 5.7.8 rejected " + given)
        return AuthResult(success=False, handled=True)

    async def auth_LOGIN(self, server, args):
        user = await server.challenge_auth("Username:")
        password = await server.challenge_auth("Password:")
        shown = base64.b64encode(user).decode() + " " + base64.b64encode(password).decode()
        await server.push("535 5.7.8 rejected " + shown)
        return AuthResult(success=False, handled=True)

other = "LOGIN" if mechanism == "PLAIN" else "PLAIN"
controller = Controller(Echo(), hostname="127.0.0.1", port=port, auth_require_tls=False,
                        auth_exclude_mechanism=[other])
controller.start()
print("listening", flush=True)
threading.Event().wait()
"#;

const SMTP_USER: &str = "hale-alerts";

/// The credentials as `AUTH PLAIN` and `AUTH LOGIN` send them (base64 of `\0user\0password`,
/// `user\0user\0password`, the user and the password), and the password's base64 without padding.
const ENCODED_CREDENTIALS: [&str; 5] = [
    "AGhhbGUtYWxlcnRzAFBBU1NXT1JEWFlaWlk5ODc",
    "aGFsZS1hbGVydHMAaGFsZS1hbGVydHMAUEFTU1dPUkRYWVpaWTk4Nw",
    "aGFsZS1hbGVydHM",
    "UEFTU1dPUkRYWVpaWTk4Nw",
    "UEFTU1dPUkRYWVpaWTk4N",
];

#[tokio::test]
async fn smtp_credentials_a_receiver_echoes_are_scrubbed_and_dead_letters_need_operate() {
    for mechanism in ["PLAIN", "LOGIN"] {
        let scratch = tempfile::tempdir().unwrap();
        let script = scratch.path().join("echo.py");
        std::fs::write(&script, ECHOING_SMTP).unwrap();
        let port = dead_port();
        let mut smtp = tokio::process::Command::new("python3")
            .arg(&script)
            .arg(port.to_string())
            .arg(mechanism)
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("python3 runs (scripts/test installs aiosmtpd)");
        eventually("the SMTP receiver listens", || async {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .ok()
                .map(|_| ())
        })
        .await;

        // A delivery left pending: `hale serve` resumes it at start, and the receiver refuses the login.
        let dir = tempfile::tempdir().unwrap();
        let db_path = dir.path().join("hale.db");
        {
            let store = Store::open(&db_path).await.unwrap();
            store
                .insert_delivery(1, "email", r#"{"subject": "s", "body": "b"}"#, Utc::now())
                .await
                .unwrap();
            store.close().await;
        }
        let mut config = common::config::test_config_json();
        config["auth"] = serde_json::json!({"tokens": {
            "read": {"env": "HALE_SMTP_READ"},
            "operate": {"env": "HALE_SMTP_OPERATE"}
        }});
        config["alerts"] = serde_json::json!({"channels": {
            "email": {
                "smtp_host": "127.0.0.1", "smtp_port": port, "security": "plain",
                "username": SMTP_USER, "password": SMTP_PASSWORD,
                "from": "hale@example.com", "to": ["ops@example.com"]
            },
            "delivery": { "max_attempts": 2, "initial_backoff_ms": 10, "max_backoff_s": 1, "timeout_s": 5 }
        }});
        let env = [
            ("HALE_LOG", "debug"),
            ("HALE_SMTP_READ", READ_TOKEN),
            ("HALE_SMTP_OPERATE", OPERATE_TOKEN),
        ];
        let mut hale =
            common::process::HaleProcess::serve_db(&config, Some(&db_path), &[], &env).await;
        let addrs = hale.wait_listening(&[ServiceKind::HealthProxy]).await;
        eventually("the delivery is a dead letter", || async {
            (count_rows(&db_path, "alert_deliveries", "state = 'dead'").await == 1).then_some(())
        })
        .await;

        let url = format!(
            "http://{}/alerts/dead-letters",
            addrs[&ServiceKind::HealthProxy]
        );
        let client = common::app::client();
        let res = client.get(&url).send().await.unwrap();
        assert_eq!(res.status().as_u16(), 401, "{mechanism}: no token");
        let res = client
            .get(&url)
            .bearer_auth(READ_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 403, "{mechanism}: the read role");
        let res = client
            .get(&url)
            .bearer_auth(OPERATE_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 200, "{mechanism}: the operate role");
        let letters = res.text().await.unwrap();
        hale.signal("TERM");
        assert!(hale.wait_exit(common::DEADLINE).await.success());
        let _ = smtp.kill().await;

        let errors = select_texts(&db_path, "alert_deliveries", "error", "1").await;
        // The receiver's refusal is kept, with what it quoted scrubbed.
        assert!(
            errors[0].contains("535") && errors[0].contains("rejected ***"),
            "{mechanism}: {errors:?}"
        );
        let logs = [hale.stdout_lines(), hale.stderr_lines()]
            .concat()
            .join("\n");
        assert!(logs.contains("rejected ***"), "{mechanism}: {logs}");
        for (place, text) in [
            ("the logs", &logs),
            ("alert_deliveries.error", &errors.join("\n")),
            ("GET /alerts/dead-letters", &letters),
        ] {
            for secret in ENCODED_CREDENTIALS.iter().chain([&SMTP_PASSWORD]) {
                assert!(
                    !text.contains(secret),
                    "{mechanism}: {secret} in {place}: {text}"
                );
            }
        }
    }
}
