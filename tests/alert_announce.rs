//! Announcements (one-off notices no rule makes, such as a workflow's `notify` step) end to end: a real
//! database file, real HTTP receivers for the webhook, Discord and Alertmanager channels, the dispatcher
//! and the alert engine as workers.

// A test crate: an unwrap is an assertion.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use hale::alerts::{
    AlertEngine, AnnounceError, Announcement, AnnouncementRule, Announcer, Dispatcher,
};
use hale::answers::alerts::{active_alerts, alerts, AlertsParams};
use hale::clock::{Clock, SystemClock};
use hale::config::{
    AlertmanagerChannel, ChannelKind, ChannelsConfig, Config, DeliveryConfig, DiscordChannel,
    Secret, WebhookChannel,
};
use hale::events::EventBus;
use hale::metrics::{AlertMetrics, AlertResult, EventMetrics};
use hale::records::{AlertEventKind, AlertLevel, AlertState};
use hale::slo::maintenance::MaintenanceCalendar;
use hale::store::Store;
use hale::worker::Worker;
use tempfile::TempDir;
use tokio_util::sync::CancellationToken;

use common::db::{count_rows, select_texts};
use common::eventually;
use common::receivers::HttpReceiver;

const RUNBOOKS: &str = "https://runbooks.example/hale/runbooks.md";

fn channels(webhook: Option<String>, discord: Option<String>) -> ChannelsConfig {
    ChannelsConfig {
        webhook: webhook.map(|url| WebhookChannel {
            url: Secret::new(url),
            bearer_token: None,
        }),
        discord: discord.map(|url| DiscordChannel {
            webhook_url: Secret::new(url),
        }),
        delivery: DeliveryConfig {
            max_attempts: 3,
            initial_backoff_ms: 20,
            max_backoff_s: 1,
            timeout_s: 5,
            ..DeliveryConfig::default()
        },
        ..ChannelsConfig::default()
    }
}

/// A dispatcher and an announcer on their own database file.
struct Harness {
    config: Config,
    announcer: Announcer,
    dispatcher: Arc<Dispatcher>,
    metrics: AlertMetrics,
    store: Store,
    db_path: PathBuf,
    cancel: CancellationToken,
    _dir: TempDir,
}

impl Harness {
    /// The dispatcher's worker is not started yet: `run` starts it.
    async fn new(channels: ChannelsConfig) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db_path = dir.path().join("hale.db");
        let store = Store::open(&db_path).await.unwrap();
        let mut config = Config::default();
        config.alerts.channels = channels.clone();
        config.alerts.runbook_base_url = RUNBOOKS.into();
        let metrics = AlertMetrics::register(&prometheus::Registry::new());
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let dispatcher = Arc::new(Dispatcher::new(
            channels,
            store.clone(),
            clock.clone(),
            metrics.clone(),
        ));
        let announcer = Announcer::new(&config, store.clone(), clock, dispatcher.clone());
        Self {
            config,
            announcer,
            dispatcher,
            metrics,
            store,
            db_path,
            cancel: CancellationToken::new(),
            _dir: dir,
        }
    }

    fn run(&self) {
        tokio::spawn(self.dispatcher.clone().run(self.cancel.clone()));
    }

    async fn started(channels: ChannelsConfig) -> Self {
        let h = Self::new(channels).await;
        h.run();
        h
    }

    async fn rows(&self, table: &str, condition: &str) -> i64 {
        count_rows(&self.db_path, table, condition).await
    }

    /// Waits until the dispatcher has nothing left to do, so that "only one request" means it.
    async fn settled(&self) {
        let progress = self.dispatcher.progress();
        eventually("the dispatcher is idle", || {
            let idle = progress.borrow().idle_at(Utc::now());
            async move { idle.then_some(()) }
        })
        .await;
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

fn notify(target: &str, summary: &str, channels: Option<Vec<ChannelKind>>) -> Announcement {
    Announcement {
        rule: AnnouncementRule::WorkflowNotify,
        target: target.into(),
        level: AlertLevel::Info,
        summary: summary.into(),
        description: "step 3 of nightly-restart".into(),
        channels,
    }
}

#[tokio::test]
async fn an_announcement_is_stored_resolved_and_delivered_once() {
    let receiver = HttpReceiver::start(vec![(204, "")]).await;
    let h = Harness::started(channels(Some(receiver.url("/hook")), None)).await;

    let receipt = h
        .announcer
        .announce(notify(
            "nightly-restart",
            "api drained, restarting",
            Some(vec![ChannelKind::Webhook]),
        ))
        .await
        .unwrap();
    assert_eq!(receipt.channels, vec![ChannelKind::Webhook]);
    assert!(receipt.skipped.is_empty());
    let alert_id = receipt.alert_id.expect("the alert is stored");
    let event_id = receipt.event_id.expect("its event is stored");

    let got = eventually("the webhook receives the announcement", || async {
        receiver.requests().into_iter().next()
    })
    .await;
    let body = got.json();
    assert_eq!(body["kind"], "fired");
    assert_eq!(body["alert"]["id"], alert_id);
    assert_eq!(body["alert"]["rule"], "workflow_notify");
    assert_eq!(body["alert"]["target"], "nightly-restart");
    assert_eq!(body["alert"]["level"], "info");
    assert_eq!(body["alert"]["summary"], "api drained, restarting");
    assert_eq!(body["alert"]["description"], "step 3 of nightly-restart");
    // One event, not a condition: a receiver that tracks state does not keep it open.
    assert_eq!(body["alert"]["state"], "resolved");
    assert_eq!(body["alert"]["resolved_at"], body["alert"]["fired_at"]);

    eventually(
        "the delivery is recorded against the stored event",
        || async {
            (h.rows(
                "alert_deliveries",
                &format!(
                    "alert_event_id = {event_id} AND channel = 'webhook' AND state = 'delivered'"
                ),
            )
            .await
                == 1)
                .then_some(())
        },
    )
    .await;
    h.settled().await;
    assert_eq!(receiver.requests().len(), 1, "exactly one notice");
    assert_eq!(h.rows("alert_deliveries", "1 = 1").await, 1);
    assert_eq!(
        h.metrics.count(
            AlertLevel::Info,
            "workflow_notify",
            "webhook",
            AlertResult::Sent
        ),
        1
    );

    // In the file: an alert opened and resolved at once, with its fired and resolved events.
    assert_eq!(
        h.rows(
            "alerts",
            &format!(
                "id = {alert_id} AND rule = 'workflow_notify' AND target = 'nightly-restart' \
                 AND level = 'info' AND state = 'resolved' AND resolved_at_ms = fired_at_ms \
                 AND last_notified_at_ms = fired_at_ms"
            )
        )
        .await,
        1
    );
    assert_eq!(
        select_texts(
            &h.db_path,
            "alert_events",
            "kind",
            &format!("alert_id = {alert_id}")
        )
        .await,
        vec![
            AlertEventKind::Fired.as_str(),
            AlertEventKind::Resolved.as_str()
        ]
    );
    assert_eq!(
        select_texts(
            &h.db_path,
            "alert_events",
            "id",
            &format!("alert_id = {alert_id} AND kind = 'fired'")
        )
        .await,
        vec![event_id.to_string()]
    );

    // In the history, never firing.
    let history = alerts(
        &h.store,
        &AlertsParams {
            state: None,
            level: None,
            since: None,
            limit: None,
        },
    )
    .await
    .unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].id, alert_id);
    assert_eq!(history[0].state, AlertState::Resolved);
    assert!(active_alerts(&h.store).await.unwrap().is_empty());
    assert!(h.store.firing_alerts().await.unwrap().is_empty());
}

#[tokio::test]
async fn announcements_of_one_workflow_never_supersede_each_other() {
    // Three notices of the same rule and target reach the worker together: the first goes out while the
    // other two wait in its channel's queue. An alert's later notice would replace the one waiting; an
    // announcement's must not.
    let receiver = HttpReceiver::start(vec![(204, "")]).await;
    let h = Harness::new(channels(Some(receiver.url("/hook")), None)).await;
    for n in 1..=3 {
        h.announcer
            .announce(notify(
                "nightly-restart",
                &format!("message {n}"),
                Some(vec![ChannelKind::Webhook]),
            ))
            .await
            .unwrap();
    }
    h.run();
    eventually("all three are delivered", || async {
        (h.rows("alert_deliveries", "state = 'delivered'").await == 3).then_some(())
    })
    .await;
    h.settled().await;
    let summaries: Vec<String> = receiver
        .requests()
        .iter()
        .map(|r| r.json()["alert"]["summary"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(summaries, ["message 1", "message 2", "message 3"]);
    assert_eq!(h.rows("alert_deliveries", "state = 'superseded'").await, 0);
}

#[tokio::test]
async fn without_channels_every_configured_one_hears_and_unconfigured_ones_are_skipped() {
    let webhook = HttpReceiver::start(vec![(204, "")]).await;
    let discord = HttpReceiver::start(vec![(204, "")]).await;
    let h = Harness::started(channels(
        Some(webhook.url("/hook")),
        Some(discord.url("/api/webhooks/1/tok")),
    ))
    .await;

    let receipt = h
        .announcer
        .announce(Announcement {
            rule: AnnouncementRule::WorkflowRunInterrupted,
            target: "deploy-api".into(),
            level: AnnouncementRule::WorkflowRunInterrupted.default_level(),
            summary: "run 42 of deploy-api was interrupted by a restart".into(),
            description: String::new(),
            channels: None,
        })
        .await
        .unwrap();
    assert_eq!(
        receipt.channels,
        vec![ChannelKind::Log, ChannelKind::Discord, ChannelKind::Webhook]
    );
    let event_id = receipt.event_id.unwrap();
    eventually("every configured channel delivered it", || async {
        (h.rows(
            "alert_deliveries",
            &format!("alert_event_id = {event_id} AND state = 'delivered'"),
        )
        .await
            == 3)
            .then_some(())
    })
    .await;
    assert_eq!(webhook.requests().len(), 1);
    assert_eq!(
        webhook.requests()[0].json()["alert"]["rule"],
        "workflow_run_interrupted"
    );
    assert_eq!(discord.requests().len(), 1);
    let content = discord.requests()[0].json()["content"].to_string();
    assert!(content.contains("CRITICAL"), "{content}");
    assert!(content.contains("interrupted by a restart"), "{content}");

    // Email is not configured: skipped, as a rule's notice is; the webhook still hears.
    let receipt = h
        .announcer
        .announce(notify(
            "deploy-api",
            "second message",
            Some(vec![ChannelKind::Email, ChannelKind::Webhook]),
        ))
        .await
        .unwrap();
    assert_eq!(receipt.channels, vec![ChannelKind::Webhook]);
    assert_eq!(receipt.skipped, vec![ChannelKind::Email]);
    eventually("the webhook receives the second", || async {
        webhook.requests().get(1).cloned()
    })
    .await;
    h.settled().await;
    assert_eq!(h.rows("alert_deliveries", "channel = 'email'").await, 0);
    assert_eq!(h.rows("alerts", "state = 'resolved'").await, 2);
}

#[tokio::test]
async fn a_bad_announcement_is_refused_and_nothing_is_stored() {
    let h = Harness::started(channels(None, None)).await;
    let err = h
        .announcer
        .announce(notify("  ", "x", None))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        AnnounceError::EmptyTarget {
            rule: AnnouncementRule::WorkflowNotify
        }
    );
    assert_eq!(
        err.to_string(),
        "announcement workflow_notify has an empty target"
    );
    let err = h
        .announcer
        .announce(notify("deploy-api", " \n", None))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "announcement workflow_notify about \"deploy-api\" has an empty summary"
    );
    assert_eq!(h.rows("alerts", "1 = 1").await, 0);
}

#[tokio::test]
async fn a_database_error_does_not_stop_the_notice() {
    let receiver = HttpReceiver::start(vec![(204, "")]).await;
    let h = Harness::started(channels(Some(receiver.url("/hook")), None)).await;
    // The store refuses every write from now on.
    h.store.close().await;
    let receipt = h
        .announcer
        .announce(notify(
            "nightly-restart",
            "said even so",
            Some(vec![ChannelKind::Webhook]),
        ))
        .await
        .unwrap();
    assert_eq!(receipt.alert_id, None);
    assert_eq!(receipt.channels, vec![ChannelKind::Webhook]);
    let got = eventually("the webhook receives it", || async {
        receiver.requests().into_iter().next()
    })
    .await;
    assert_eq!(got.json()["alert"]["summary"], "said even so");
}

#[tokio::test]
async fn alertmanager_gets_a_short_end_and_nothing_to_repost() {
    let am = HttpReceiver::start(vec![(200, "")]).await;
    let mut config = channels(None, None);
    config.alertmanager = Some(AlertmanagerChannel {
        url: Secret::new(am.url("")),
        resend_interval_s: 10,
    });
    let h = Harness::started(config).await;
    // Only the log is asked for: Alertmanager hears of every announcement all the same.
    let receipt = h
        .announcer
        .announce(notify(
            "nightly-restart",
            "done",
            Some(vec![ChannelKind::Log]),
        ))
        .await
        .unwrap();
    assert_eq!(
        receipt.channels,
        vec![ChannelKind::Log, ChannelKind::Alertmanager]
    );
    let got = eventually("alertmanager receives it", || async {
        am.requests().into_iter().next()
    })
    .await;
    assert_eq!(got.path, "/api/v2/alerts");
    let alert = &got.json()[0];
    assert_eq!(alert["labels"]["alertname"], "workflow_notify");
    assert_eq!(alert["labels"]["target"], "nightly-restart");
    assert_eq!(alert["labels"]["class"], "workflow");
    assert_eq!(alert["labels"]["severity"], "info");
    assert_eq!(
        alert["annotations"]["runbook_url"],
        format!("{RUNBOOKS}#workflow-notify")
    );
    let starts = chrono::DateTime::parse_from_rfc3339(alert["startsAt"].as_str().unwrap()).unwrap();
    let ends = chrono::DateTime::parse_from_rfc3339(alert["endsAt"].as_str().unwrap()).unwrap();
    assert_eq!(ends - starts, chrono::TimeDelta::minutes(5));
    eventually("the delivery is recorded", || async {
        (h.rows(
            "alert_deliveries",
            "channel = 'alertmanager' AND state = 'delivered'",
        )
        .await
            == 1)
            .then_some(())
    })
    .await;
    // An alert rule's firing notice joins the set re-posted every `resend_interval_s`; an announcement
    // never does, so the re-post loop has nothing to post and never becomes due for it.
    h.settled().await;
    assert_eq!(am.requests().len(), 1);
}

/// `alerts_active{level}` as the registry exports it.
fn active(registry: &prometheus::Registry, level: &str) -> Option<f64> {
    registry
        .gather()
        .into_iter()
        .find(|f| f.name() == "alerts_active")?
        .get_metric()
        .iter()
        .find(|m| {
            m.get_label()
                .iter()
                .any(|l| l.name() == "level" && l.value() == level)
        })
        .map(|m| m.get_gauge().get_value())
}

#[tokio::test]
async fn a_fresh_engine_does_not_restore_an_announcement_as_firing() {
    let h = Harness::started(channels(None, None)).await;
    let receipt = h
        .announcer
        .announce(Announcement {
            rule: AnnouncementRule::WorkflowRunInterrupted,
            target: "deploy-api".into(),
            level: AlertLevel::Critical,
            summary: "run 42 was interrupted".into(),
            description: String::new(),
            channels: None,
        })
        .await
        .unwrap();
    assert!(receipt.alert_id.is_some());
    // A real alert still firing, of a rule in the config: the engine restores it, which tells when its
    // start has read the store.
    h.store
        .open_alert(
            "target_flapping",
            "api",
            AlertLevel::Warning,
            "api flaps",
            Utc::now(),
            AlertEventKind::Fired,
        )
        .await
        .unwrap();

    let registry = prometheus::Registry::new();
    let metrics = AlertMetrics::register(&registry);
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let events = EventBus::new(EventMetrics::register(&registry));
    let maintenance = Arc::new(MaintenanceCalendar::new(
        h.store.clone(),
        &h.config,
        clock.clone(),
    ));
    let engine = Arc::new(AlertEngine::new(
        &h.config,
        h.store.clone(),
        &events,
        clock,
        h.dispatcher.clone(),
        metrics,
        maintenance,
    ));
    let cancel = CancellationToken::new();
    let task = tokio::spawn(engine.run(cancel.clone()));
    eventually("the engine restores the firing alert", || async {
        (active(&registry, "warning") == Some(1.0)).then_some(())
    })
    .await;
    assert_eq!(active(&registry, "critical"), Some(0.0));
    assert_eq!(active(&registry, "info"), Some(0.0));
    let firing = h.store.firing_alerts().await.unwrap();
    assert_eq!(firing.len(), 1);
    assert_eq!(firing[0].rule, "target_flapping");
    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap();
}
