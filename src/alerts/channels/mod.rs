//! The delivery channels, one file each. A channel renders a notice into the payload it sends (stored as is
//! in `alert_deliveries`, so it never holds a secret) and makes one delivery attempt of a payload; retries,
//! backoff, timeouts and dead letters are written once, in `dispatch.rs`.

pub mod alertmanager;
pub mod discord;
pub mod email;
pub mod log;
pub mod webhook;

use std::time::Duration;

use futures_util::future::BoxFuture;

use crate::alerts::Notice;
use crate::config::{ChannelKind, Secret, REDACTED};
use crate::records::{AlertEventKind, AlertLevel};

/// Why one attempt failed. `error` holds no secret: URLs are stripped from HTTP errors and every secret of
/// the channel is scrubbed from what a server answered.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub error: String,
    /// The receiver asked for this wait before the next attempt (HTTP 429): it replaces the backoff.
    pub retry_after: Option<Duration>,
    /// Retrying cannot help (a 4xx other than 408 and 429, a permanent SMTP error, a malformed payload).
    pub permanent: bool,
}

impl Failure {
    pub fn transient(error: impl Into<String>) -> Self {
        Self {
            error: error.into(),
            retry_after: None,
            permanent: false,
        }
    }

    pub fn permanent(error: impl Into<String>) -> Self {
        Self {
            error: error.into(),
            retry_after: None,
            permanent: true,
        }
    }
}

/// One way of delivering notices.
pub trait Channel: Send + Sync + 'static {
    fn kind(&self) -> ChannelKind;

    /// The exact text this channel sends for `notice`.
    fn payload(&self, notice: &Notice) -> String;

    /// One attempt at delivering `payload`.
    fn deliver<'a>(&'a self, payload: &'a str) -> BoxFuture<'a, Result<(), Failure>>;

    /// The secrets of this channel's config, to scrub from any error text.
    fn secrets(&self) -> Vec<&Secret>;
}

/// `text` with every non-empty secret replaced by `***`.
pub fn scrub(text: &str, secrets: &[&Secret]) -> String {
    let mut text = text.to_owned();
    for secret in secrets {
        if !secret.is_empty() {
            text = text.replace(secret.expose(), REDACTED);
        }
    }
    text
}

/// The level in capitals, as subjects and titles show it.
pub(crate) fn level_upper(level: AlertLevel) -> &'static str {
    match level {
        AlertLevel::Info => "INFO",
        AlertLevel::Warning => "WARNING",
        AlertLevel::Critical => "CRITICAL",
    }
}

/// `[CRITICAL]`, or `[RESOLVED]` for a resolved notice.
pub(crate) fn tag(notice: &Notice) -> &'static str {
    if notice.kind == AlertEventKind::Resolved {
        "RESOLVED"
    } else {
        level_upper(notice.level)
    }
}

/// POSTs a JSON body and sorts the answer: 2xx is delivered; 429 asks for a wait (`retry_after` in a JSON
/// body, in seconds, as Discord sends it, else the `Retry-After` header); 408 and 5xx are retried; any
/// other status is permanent. The error never contains the URL.
pub(crate) async fn post_json(
    client: &reqwest::Client,
    url: &str,
    bearer: Option<&Secret>,
    body: &str,
) -> Result<(), Failure> {
    let mut request = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body.to_owned());
    if let Some(token) = bearer {
        request = request.bearer_auth(token.expose());
    }
    let response = request
        .send()
        .await
        .map_err(|e| Failure::transient(http_error(e)))?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let header_wait = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok());
    let text = response.text().await.unwrap_or_default();
    let body_wait = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v.get("retry_after").and_then(serde_json::Value::as_f64));
    let shown: String = text.chars().take(200).collect();
    let error = if shown.trim().is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status}: {}", shown.trim())
    };
    if status == reqwest::StatusCode::TOO_MANY_REQUESTS {
        let wait = body_wait
            .or(header_wait)
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(|s| Duration::from_secs_f64(s.min(3_600.0)));
        return Err(Failure {
            error,
            retry_after: wait,
            permanent: false,
        });
    }
    if status.is_server_error() || status == reqwest::StatusCode::REQUEST_TIMEOUT {
        Err(Failure::transient(error))
    } else {
        Err(Failure::permanent(error))
    }
}

/// A reqwest error without its URL (which is a secret), with its causes.
pub(crate) fn http_error(err: reqwest::Error) -> String {
    let err = err.without_url();
    let mut text = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrub_hides_every_secret() {
        let url = Secret::new("http://x/hook/SECRET1");
        let empty = Secret::new("");
        assert_eq!(
            scrub("failed for http://x/hook/SECRET1 now", &[&url, &empty]),
            "failed for *** now"
        );
    }
}
