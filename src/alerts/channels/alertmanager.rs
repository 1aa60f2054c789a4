//! The `alertmanager` channel: Prometheus Alertmanager's API v2 (`POST {url}/api/v2/alerts`). Alertmanager
//! resolves an alert it has not heard of for its `resolve_timeout`, so the alerts firing are kept here and
//! posted again every `resend_interval_s` (`resend`); a resolved notice is posted once with `endsAt` and
//! the alert leaves the set. The set lives in memory; at start the alert manager puts the alerts still firing
//! back (`restore`), and the next round posts them.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde_json::{json, Value};

use crate::alerts::channels::{post_json, Channel, Failure};
use crate::alerts::{labels, Notice};
use crate::config::{AlertmanagerChannel, ChannelKind, Secret};
use crate::records::AlertEventKind;

/// How long Alertmanager shows an announcement (a one-off notice) as active: its `endsAt` is this after it
/// was made. As long as Alertmanager's default `resolve_timeout` keeps an alert it hears of once, and longer
/// than the exported route's `group_wait` (30 s), so its receivers are notified before it ends.
pub const ONE_OFF_ACTIVE: chrono::TimeDelta = chrono::TimeDelta::minutes(5);

/// Identifies an alert in the firing set: its `alertname` and `target` labels.
type Key = (String, String);

#[derive(Debug)]
pub struct Alertmanager {
    config: AlertmanagerChannel,
    client: reqwest::Client,
    endpoint: String,
    firing: Mutex<BTreeMap<Key, Value>>,
}

impl Alertmanager {
    pub fn new(config: AlertmanagerChannel, client: reqwest::Client) -> Self {
        let endpoint = format!(
            "{}/api/v2/alerts",
            config.url.expose().trim_end_matches('/')
        );
        Self {
            config,
            client,
            endpoint,
            firing: Mutex::default(),
        }
    }

    pub fn resend_interval(&self) -> Duration {
        Duration::from_secs(self.config.resend_interval_s)
    }

    fn firing(&self) -> std::sync::MutexGuard<'_, BTreeMap<Key, Value>> {
        // Plain data: a poisoned lock still holds a whole map.
        self.firing.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How many alerts are firing, as last posted.
    pub fn firing_count(&self) -> usize {
        self.firing().len()
    }

    /// Puts an alert that still fires (read back from the database at start) into the set, without posting
    /// it: the next round does.
    pub fn restore(&self, notice: &Notice) {
        let alert = alert(notice);
        self.firing().insert(key(&alert), alert);
    }

    /// Posts every firing alert again; a failure waits for the next round.
    pub async fn resend(&self) -> Result<(), Failure> {
        let alerts: Vec<Value> = self.firing().values().cloned().collect();
        if alerts.is_empty() {
            return Ok(());
        }
        post_json(
            &self.client,
            &self.endpoint,
            None,
            &Value::Array(alerts).to_string(),
        )
        .await
    }
}

fn key(alert: &Value) -> Key {
    let label = |name: &str| {
        alert["labels"][name]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    (label("alertname"), label("target"))
}

/// One alert as Alertmanager takes it. `endsAt` only when resolved, or `ONE_OFF_ACTIVE` after an
/// announcement was made (it then never joins the set re-posted: Alertmanager notifies it once and ends it). The labels are those the exported
/// Prometheus rules carry too (`target`, `severity`, `class`, and `slo` for a burn rate), plus
/// `source="hale"`, so the exported Alertmanager config groups and inhibits both alike.
pub fn alert(notice: &Notice) -> Value {
    let mut alert = json!({
        "labels": {
            "alertname": notice.rule,
            "target": notice.target,
            "severity": notice.level.as_str(),
            labels::SOURCE: labels::SOURCE_HALE,
            labels::CLASS: notice.class.as_str(),
        },
        "annotations": {
            "summary": notice.summary,
            "description": notice.description,
            "runbook_url": notice.runbook_url,
        },
        "startsAt": notice.fired_at.to_rfc3339(),
    });
    if let Some(slo) = notice.class.slo() {
        alert["labels"][labels::SLO] = json!(slo);
    }
    if notice.kind == AlertEventKind::Resolved {
        alert["endsAt"] = json!(notice.resolved_at.unwrap_or(notice.at).to_rfc3339());
    } else if notice.one_off {
        let ends_at = notice
            .at
            .checked_add_signed(ONE_OFF_ACTIVE)
            .unwrap_or(notice.at);
        alert["endsAt"] = json!(ends_at.to_rfc3339());
    }
    if !notice.generator_url.is_empty() {
        alert["generatorURL"] = json!(notice.generator_url);
    }
    alert
}

impl Channel for Alertmanager {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Alertmanager
    }

    /// The notice's alert; when its labels changed since it was last posted (an escalation changes
    /// `severity`), the old label set is ended in the same post, or Alertmanager would keep both.
    fn payload(&self, notice: &Notice) -> String {
        let new = alert(notice);
        let mut alerts = Vec::new();
        if let Some(previous) = self.firing().get(&key(&new)) {
            if previous["labels"] != new["labels"] {
                let mut ended = previous.clone();
                ended["endsAt"] = json!(notice.at.to_rfc3339());
                alerts.push(ended);
            }
        }
        alerts.push(new);
        Value::Array(alerts).to_string()
    }

    fn deliver<'a>(&'a self, payload: &'a str) -> BoxFuture<'a, Result<(), Failure>> {
        Box::pin(async move {
            let alerts: Vec<Value> = serde_json::from_str(payload)
                .map_err(|e| Failure::permanent(format!("malformed alertmanager payload: {e}")))?;
            {
                let mut firing = self.firing();
                for alert in &alerts {
                    let key = key(alert);
                    if alert.get("endsAt").is_some() {
                        if firing
                            .get(&key)
                            .is_some_and(|f| f["labels"] == alert["labels"])
                        {
                            firing.remove(&key);
                        }
                    } else {
                        firing.insert(key, alert.clone());
                    }
                }
            }
            post_json(&self.client, &self.endpoint, None, payload).await
        })
    }

    fn secrets(&self) -> Vec<&Secret> {
        vec![&self.config.url]
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::alerts::AlertClass;
    use crate::records::AlertLevel;

    #[test]
    fn an_alert_restored_at_start_joins_the_firing_set_unresolved() {
        let am = Alertmanager::new(
            AlertmanagerChannel {
                url: Secret::new("http://127.0.0.1:9"),
                resend_interval_s: 60,
            },
            reqwest::Client::new(),
        );
        let at = Utc.with_ymd_and_hms(2026, 11, 26, 12, 0, 0).unwrap();
        let notice = Notice {
            alert_id: 1,
            event_id: 0,
            kind: AlertEventKind::Fired,
            rule: "target_down".into(),
            target: "api".into(),
            level: AlertLevel::Critical,
            summary: "api is down".into(),
            description: String::new(),
            fired_at: at,
            resolved_at: None,
            suppressed: 0,
            at,
            generator_url: String::new(),
            class: AlertClass::TargetDown,
            runbook_url: "https://x.example/runbooks.md#haletargetdown".into(),
            one_off: false,
        };
        am.restore(&notice);
        assert_eq!(am.firing_count(), 1);
        let alert = am.firing().values().next().cloned().unwrap();
        assert_eq!(alert["labels"]["alertname"], "target_down");
        assert!(alert.get("endsAt").is_none());
    }

    #[test]
    fn the_labels_are_those_the_exported_rules_share() {
        let at = Utc.with_ymd_and_hms(2026, 11, 26, 12, 0, 0).unwrap();
        let notice = |rule: &str, class| Notice {
            alert_id: 1,
            event_id: 0,
            kind: AlertEventKind::Fired,
            rule: rule.into(),
            target: "api".into(),
            level: AlertLevel::Critical,
            summary: "s".into(),
            description: String::new(),
            fired_at: at,
            resolved_at: None,
            suppressed: 0,
            at,
            generator_url: String::new(),
            class,
            runbook_url: format!("https://x.example/r.md#{rule}"),
            one_off: false,
        };
        let down = alert(&notice("target_down", AlertClass::TargetDown));
        assert_eq!(
            down["labels"],
            json!({"alertname": "target_down", "target": "api", "severity": "critical",
                   "source": "hale", "class": "target_down"})
        );
        assert_eq!(
            down["annotations"]["runbook_url"],
            "https://x.example/r.md#target_down"
        );
        let burn = alert(&notice("slo_fast_burn", AlertClass::SloBurn));
        assert_eq!(burn["labels"]["class"], "slo_burn");
        assert_eq!(burn["labels"]["slo"], "target-availability");
    }
}
