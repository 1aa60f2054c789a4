//! `alerts.channels`: where alert notices are delivered besides the log, and how deliveries are retried.
//! Webhook URLs, SMTP passwords and tokens are `Secret`s: they never appear in logs, errors, `check-config`
//! or API answers.

use serde::{Deserialize, Serialize};

use crate::config::{Invalid, Secret};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChannelsConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub discord: Option<DiscordChannel>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<EmailChannel>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookChannel>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alertmanager: Option<AlertmanagerChannel>,
    pub delivery: DeliveryConfig,
}

/// A Discord incoming webhook.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscordChannel {
    pub webhook_url: Secret,
}

/// Email over SMTP.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailChannel {
    pub smtp_host: String,
    pub smtp_port: u16,
    /// `starttls` (upgrade, required) or `plain` (no TLS: only for a relay on this machine).
    pub security: SmtpSecurity,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
    pub from: String,
    pub to: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmtpSecurity {
    Starttls,
    Plain,
}

/// A generic JSON webhook.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookChannel {
    pub url: Secret,
    /// Sent as `Authorization: Bearer ...` when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer_token: Option<Secret>,
}

/// Prometheus Alertmanager, API v2.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertmanagerChannel {
    /// Its base URL, such as `http://127.0.0.1:9093`.
    pub url: Secret,
    /// While an alert fires it is posted again this often, as Alertmanager expects.
    #[serde(default = "default_resend_interval_s")]
    pub resend_interval_s: u64,
}

fn default_resend_interval_s() -> u64 {
    60
}

/// How hard a notice is tried before it becomes a dead letter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeliveryConfig {
    pub max_attempts: u32,
    pub initial_backoff_ms: u64,
    pub max_backoff_s: u64,
    pub timeout_s: u64,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            initial_backoff_ms: 1_000,
            max_backoff_s: 60,
            timeout_s: 10,
        }
    }
}

impl ChannelsConfig {
    pub(crate) fn validate(&self) -> Result<(), Invalid> {
        Ok(())
    }
}
