//! The `webhook` channel: a generic JSON document POSTed to a URL, with an optional bearer token. Its shape
//! (version 1) is documented in docs/alerts.md.

use futures_util::future::BoxFuture;
use serde_json::json;

use crate::alerts::channels::{post_json, Channel, Failure};
use crate::alerts::Notice;
use crate::config::{ChannelKind, Secret, WebhookChannel};
use crate::records::{AlertEventKind, AlertState};

#[derive(Debug)]
pub struct Webhook {
    config: WebhookChannel,
    client: reqwest::Client,
}

impl Webhook {
    pub fn new(config: WebhookChannel, client: reqwest::Client) -> Self {
        Self { config, client }
    }
}

/// The generic JSON document of a notice (version 1).
pub fn document(notice: &Notice) -> serde_json::Value {
    // An announcement is stored resolved at once: its `resolved_at` is set although its kind is `fired`.
    let state = if notice.kind == AlertEventKind::Resolved || notice.resolved_at.is_some() {
        AlertState::Resolved
    } else {
        AlertState::Firing
    };
    json!({
        "version": 1,
        "kind": notice.kind.as_str(),
        "alert": {
            "id": notice.alert_id,
            "rule": notice.rule,
            "target": notice.target,
            "level": notice.level.as_str(),
            "state": state.as_str(),
            "summary": notice.summary,
            "description": notice.description,
            "fired_at": notice.fired_at,
            "resolved_at": notice.resolved_at,
            "suppressed": notice.suppressed,
        },
        "at": notice.at,
        "generator_url": notice.generator_url,
    })
}

impl Channel for Webhook {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Webhook
    }

    fn payload(&self, notice: &Notice) -> String {
        document(notice).to_string()
    }

    fn deliver<'a>(&'a self, payload: &'a str) -> BoxFuture<'a, Result<(), Failure>> {
        Box::pin(post_json(
            &self.client,
            self.config.url.expose(),
            self.config.bearer_token.as_ref(),
            payload,
        ))
    }

    fn secrets(&self) -> Vec<&Secret> {
        let mut secrets = vec![&self.config.url];
        secrets.extend(self.config.bearer_token.as_ref());
        secrets
    }
}
