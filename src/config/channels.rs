//! `alerts.channels`: where alert notices are delivered besides the log, and how deliveries are retried.
//! Webhook URLs, SMTP passwords and tokens are `Secret`s: they never appear in logs, errors, `check-config`
//! or API answers.

use serde::{Deserialize, Serialize};

use crate::backoff::Backoff;
use crate::config::{BreakerConfig, Invalid, Secret};

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

/// How hard a notice is tried before it becomes a dead letter, and how many deliveries may be under way,
/// queued or resumed at once, so that a receiver that hangs cannot take hale's descriptors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeliveryConfig {
    pub max_attempts: u32,
    pub initial_backoff_ms: u64,
    pub max_backoff_s: u64,
    pub timeout_s: u64,
    /// Delivery attempts in flight at once, every channel together (one connection each).
    pub max_concurrent: usize,
    /// Delivery attempts in flight at once to one channel.
    pub max_concurrent_per_channel: usize,
    /// Notices waiting for one channel; past it the oldest become dead letters.
    pub max_queued_per_channel: usize,
    /// Rows a previous run left pending are started at most this many a second.
    pub resume_per_s: u32,
    /// Each channel's circuit breaker: a receiver that keeps failing is left alone for `open_timeout_s`
    /// while its notices wait.
    pub breaker: BreakerConfig,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            initial_backoff_ms: 1_000,
            max_backoff_s: 60,
            timeout_s: 10,
            max_concurrent: 8,
            max_concurrent_per_channel: 2,
            max_queued_per_channel: 1_000,
            resume_per_s: 5,
            breaker: BreakerConfig::default(),
        }
    }
}

impl ChannelsConfig {
    pub(crate) fn validate(&self) -> Result<(), Invalid> {
        if let Some(discord) = &self.discord {
            http_url("alerts.channels.discord.webhook_url", &discord.webhook_url)?;
        }
        if let Some(webhook) = &self.webhook {
            http_url("alerts.channels.webhook.url", &webhook.url)?;
            if webhook.bearer_token.as_ref().is_some_and(Secret::is_empty) {
                return Err(Invalid::at(
                    "alerts.channels.webhook.bearer_token",
                    "is empty: remove it or give a token",
                ));
            }
        }
        if let Some(am) = &self.alertmanager {
            http_url("alerts.channels.alertmanager.url", &am.url)?;
            if !(10..=3_600).contains(&am.resend_interval_s) {
                return Err(Invalid::at(
                    "alerts.channels.alertmanager.resend_interval_s",
                    format!("{} is out of range 10..=3600", am.resend_interval_s),
                ));
            }
        }
        if let Some(email) = &self.email {
            email.validate()?;
        }
        self.delivery.validate()
    }
}

/// A secret URL that must be http or https. The error never shows the URL: it is a secret.
fn http_url(path: &str, url: &Secret) -> Result<(), Invalid> {
    match url::Url::parse(url.expose()) {
        Ok(parsed) if matches!(parsed.scheme(), "http" | "https") && parsed.has_host() => Ok(()),
        _ => Err(Invalid::at(path, "not an http(s) URL")),
    }
}

impl EmailChannel {
    fn validate(&self) -> Result<(), Invalid> {
        let at = |field: &str| format!("alerts.channels.email.{field}");
        if self.smtp_host.trim().is_empty() {
            return Err(Invalid::at(at("smtp_host"), "is empty"));
        }
        if self.smtp_port == 0 {
            return Err(Invalid::at(at("smtp_port"), "0 is not a port"));
        }
        if self.username.is_some() != self.password.is_some() {
            return Err(Invalid::at(
                at("password"),
                "username and password go together: give both or neither",
            ));
        }
        if let Err(e) = self.from.parse::<lettre::message::Mailbox>() {
            return Err(Invalid::at(
                at("from"),
                format!("{:?} is not an email address ({e})", self.from),
            ));
        }
        if self.to.is_empty() {
            return Err(Invalid::at(at("to"), "needs at least one address"));
        }
        for (i, to) in self.to.iter().enumerate() {
            if let Err(e) = to.parse::<lettre::message::Mailbox>() {
                return Err(Invalid::at(
                    format!("alerts.channels.email.to[{i}]"),
                    format!("{to:?} is not an email address ({e})"),
                ));
            }
        }
        Ok(())
    }
}

impl DeliveryConfig {
    fn validate(&self) -> Result<(), Invalid> {
        let at = |field: &str| format!("alerts.channels.delivery.{field}");
        if !(1..=100).contains(&self.max_attempts) {
            return Err(Invalid::at(
                at("max_attempts"),
                format!("{} is out of range 1..=100", self.max_attempts),
            ));
        }
        if !(1..=600_000).contains(&self.initial_backoff_ms) {
            return Err(Invalid::at(
                at("initial_backoff_ms"),
                format!("{} is out of range 1..=600000", self.initial_backoff_ms),
            ));
        }
        if self.max_backoff_s.saturating_mul(1_000) < self.initial_backoff_ms
            || self.max_backoff_s > 86_400
        {
            return Err(Invalid::at(
                at("max_backoff_s"),
                format!(
                    "{} is out of range: at least initial_backoff_ms ({} ms) and at most 86400",
                    self.max_backoff_s, self.initial_backoff_ms
                ),
            ));
        }
        if !(1..=300).contains(&self.timeout_s) {
            return Err(Invalid::at(
                at("timeout_s"),
                format!("{} is out of range 1..=300", self.timeout_s),
            ));
        }
        if !(1..=64).contains(&self.max_concurrent) {
            return Err(Invalid::at(
                at("max_concurrent"),
                format!("{} is out of range 1..=64", self.max_concurrent),
            ));
        }
        if !(1..=self.max_concurrent).contains(&self.max_concurrent_per_channel) {
            return Err(Invalid::at(
                at("max_concurrent_per_channel"),
                format!(
                    "{} is out of range 1..=max_concurrent ({})",
                    self.max_concurrent_per_channel, self.max_concurrent
                ),
            ));
        }
        if !(1..=100_000).contains(&self.max_queued_per_channel) {
            return Err(Invalid::at(
                at("max_queued_per_channel"),
                format!("{} is out of range 1..=100000", self.max_queued_per_channel),
            ));
        }
        if !(1..=1_000).contains(&self.resume_per_s) {
            return Err(Invalid::at(
                at("resume_per_s"),
                format!("{} is out of range 1..=1000", self.resume_per_s),
            ));
        }
        self.breaker.validate("alerts.channels.delivery.breaker")
    }

    /// The wait before attempt `next` (2 for the first retry): `initial_backoff_ms` doubled at each retry,
    /// at most `max_backoff_s`.
    pub fn backoff(&self, next: u32) -> std::time::Duration {
        Backoff::new(
            std::time::Duration::from_millis(self.initial_backoff_ms),
            std::time::Duration::from_secs(self.max_backoff_s),
        )
        .delay(next.saturating_sub(2))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invalid(config: &ChannelsConfig) -> Invalid {
        config.validate().expect_err("the config is invalid")
    }

    #[test]
    fn a_bad_url_is_refused_without_showing_it() {
        let config = ChannelsConfig {
            discord: Some(DiscordChannel {
                webhook_url: Secret::new("ftp://example.com/SECRETTOKEN"),
            }),
            ..ChannelsConfig::default()
        };
        let err = invalid(&config);
        assert_eq!(err.path, "$.alerts.channels.discord.webhook_url");
        assert_eq!(err.reason, "not an http(s) URL");
        assert!(!format!("{err:?}").contains("SECRETTOKEN"));
    }

    #[test]
    fn email_addresses_and_ranges_are_checked() {
        let email = EmailChannel {
            smtp_host: "localhost".into(),
            smtp_port: 25,
            security: SmtpSecurity::Plain,
            username: None,
            password: None,
            from: "hale <hale@example.com>".into(),
            to: vec!["ops@example.com".into()],
        };
        let mut config = ChannelsConfig {
            email: Some(email.clone()),
            ..ChannelsConfig::default()
        };
        assert_eq!(config.validate(), Ok(()));
        config.email.as_mut().unwrap().to = vec!["not an address".into()];
        assert_eq!(invalid(&config).path, "$.alerts.channels.email.to[0]");
        config.email.as_mut().unwrap().to.clear();
        assert_eq!(invalid(&config).reason, "needs at least one address");
        config.email = Some(EmailChannel {
            smtp_port: 0,
            ..email
        });
        assert_eq!(invalid(&config).path, "$.alerts.channels.email.smtp_port");
        config.email = None;
        config.delivery.max_backoff_s = 0;
        assert_eq!(
            invalid(&config).path,
            "$.alerts.channels.delivery.max_backoff_s"
        );
        config.delivery = DeliveryConfig {
            max_attempts: 0,
            ..DeliveryConfig::default()
        };
        assert_eq!(invalid(&config).reason, "0 is out of range 1..=100");
        config.delivery = DeliveryConfig {
            max_concurrent_per_channel: 9,
            ..DeliveryConfig::default()
        };
        let err = invalid(&config);
        assert_eq!(
            err.path,
            "$.alerts.channels.delivery.max_concurrent_per_channel"
        );
        assert_eq!(err.reason, "9 is out of range 1..=max_concurrent (8)");
        config.delivery = DeliveryConfig::default();
        config.delivery.breaker.open_timeout_s = 0;
        assert_eq!(
            invalid(&config).path,
            "$.alerts.channels.delivery.breaker.open_timeout_s"
        );
    }

    #[test]
    fn backoff_doubles_up_to_the_ceiling() {
        let delivery = DeliveryConfig {
            max_attempts: 10,
            initial_backoff_ms: 500,
            max_backoff_s: 3,
            timeout_s: 5,
            ..DeliveryConfig::default()
        };
        let ms = |n| delivery.backoff(n).as_millis();
        assert_eq!(
            [ms(2), ms(3), ms(4), ms(5), ms(40)],
            [500, 1000, 2000, 3000, 3000]
        );
    }
}
