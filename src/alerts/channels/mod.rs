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

/// `text` with every non-empty secret replaced by `***`, in clear and in base64: SMTP sends credentials
/// base64-encoded (`AUTH PLAIN`, `AUTH LOGIN`) and a receiver may echo them back in its error. Besides the
/// whole encoding, every run of base64 characters that the secret alone determines is looked for, at each
/// of the three alignments it can have inside a longer encoded string (a password inside
/// `base64("\0user\0password")`), as long as that run is at least `MIN_ENCODED_RUN` characters; the whole
/// base64 word around a match is replaced. Longer forms go first, so a shorter one never leaves part of a
/// longer one behind.
pub fn scrub(text: &str, secrets: &[&Secret]) -> String {
    let mut raw: Vec<&str> = secrets
        .iter()
        .filter(|s| !s.is_empty())
        .map(|s| s.expose())
        .collect();
    raw.sort_by_key(|s| std::cmp::Reverse(s.len()));
    let mut text = text.to_owned();
    for secret in &raw {
        text = text.replace(secret, REDACTED);
    }
    let mut encoded: Vec<String> = raw
        .iter()
        .flat_map(|s| encoded_forms(s.as_bytes()))
        .collect();
    encoded.sort_by_key(|form| std::cmp::Reverse(form.len()));
    for form in &encoded {
        while let Some(at) = text.find(form.as_str()) {
            let is_base64 = |c: char| c.is_ascii_alphanumeric() || c == '+' || c == '/';
            let start = text[..at]
                .char_indices()
                .rev()
                .take_while(|(_, c)| is_base64(*c))
                .last()
                .map_or(at, |(i, _)| i);
            let end = text[at..]
                .char_indices()
                .find(|(_, c)| !(is_base64(*c) || *c == '='))
                .map_or(text.len(), |(i, _)| at + i);
            text.replace_range(start..end, REDACTED);
        }
    }
    text
}

/// Shorter runs of base64 text are not scrubbed: they could match ordinary words.
const MIN_ENCODED_RUN: usize = 8;

/// The base64 forms of `secret`, longest first: its padded encoding, then, for each alignment inside a
/// longer encoded string, the characters that depend on the secret's bytes only.
fn encoded_forms(secret: &[u8]) -> Vec<String> {
    let mut forms = vec![base64(secret)];
    for offset in 0..3usize {
        let mut shifted = vec![0u8; offset];
        shifted.extend_from_slice(secret);
        let encoded = base64(&shifted);
        // Character i holds bits 6i..6i+6 of the input; keep those that lie within the secret's bits.
        let first = (8 * offset).div_ceil(6);
        let end = (8 * (offset + secret.len())) / 6;
        if end >= first + MIN_ENCODED_RUN {
            forms.push(encoded[first..end].to_owned());
        }
    }
    forms.sort_by_key(|form| std::cmp::Reverse(form.len()));
    forms.dedup();
    forms
}

/// Standard base64 (RFC 4648, with `=` padding).
pub(crate) fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
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

    #[test]
    fn base64_matches_the_rfc_vectors() {
        for (raw, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(raw.as_bytes()), encoded, "{raw:?}");
        }
    }

    #[test]
    fn scrub_hides_a_secret_encoded_alone_or_inside_a_longer_encoding() {
        let password = Secret::new("PASSWORDXYZZY987");
        for user in ["hale", "ops", "alerts@example.com", "x"] {
            for framed in [
                format!("\0{user}\0PASSWORDXYZZY987"),
                format!("{user}\0{user}\0PASSWORDXYZZY987"),
                format!("{user}\0PASSWORDXYZZY987"),
                "PASSWORDXYZZY987".to_owned(),
            ] {
                let encoded = base64(framed.as_bytes());
                let unpadded = encoded.trim_end_matches('=');
                let text =
                    format!("smtp: permanent error (535): 5.7.8 rejected {encoded} / {unpadded}");
                let shown = scrub(&text, &[&password]);
                assert_eq!(
                    shown, "smtp: permanent error (535): 5.7.8 rejected *** / ***",
                    "{user}"
                );
            }
        }
        // Ordinary text is left alone.
        assert_eq!(
            scrub("connection refused (os error 111)", &[&password]),
            "connection refused (os error 111)"
        );
    }
}
