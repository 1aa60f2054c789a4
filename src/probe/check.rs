//! One check of one target, HTTP or TCP, never longer than the target's timeout (an MCP server's target is
//! checked through `probe::mcp`).

use std::time::{Duration, Instant};

use reqwest::Method;

use crate::config::{BodyCondition, HttpMethod, TargetConfig, TargetUrl};
use crate::records::Outcome;

/// Body bytes read at most to evaluate a body condition.
const MAX_BODY_BYTES: usize = 1024 * 1024;

/// What a check found, before it is stamped and stored.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckResult {
    pub outcome: Outcome,
    pub http_status: Option<u16>,
    pub latency: Duration,
    pub error: Option<String>,
}

impl CheckResult {
    fn new(outcome: Outcome, http_status: Option<u16>, error: Option<String>) -> Self {
        Self {
            outcome,
            http_status,
            latency: Duration::ZERO,
            error,
        }
    }
}

/// The header every HTTP probe carries, so that another hale (or this one) can tell a probe from a person:
/// a `/health/all` request that carries it is answered from the latest results, without new probes.
pub const PROBE_MARKER_HEADER: &str = "x-hale-probe";

/// The HTTP client every probe shares: at most `idle_per_host` idle connections kept per host (0: none),
/// no redirects (a probe reports what it got), and marked as hale's with `User-Agent: hale/x.y` and
/// `X-Hale-Probe: 1`.
pub fn http_client(idle_per_host: usize) -> Result<reqwest::Client, reqwest::Error> {
    let mut marker = reqwest::header::HeaderMap::new();
    marker.insert(
        PROBE_MARKER_HEADER,
        reqwest::header::HeaderValue::from_static("1"),
    );
    reqwest::Client::builder()
        .user_agent(concat!("hale/", env!("CARGO_PKG_VERSION")))
        .default_headers(marker)
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(idle_per_host)
        .pool_idle_timeout(Duration::from_secs(90))
        .tcp_nodelay(true)
        .build()
}

/// Checks a target once; the whole check, body included, is bounded by the target's timeout.
pub async fn run_check(client: &reqwest::Client, target: &TargetConfig) -> CheckResult {
    let started = Instant::now();
    let checked = tokio::time::timeout(target.timeout(), check(client, target)).await;
    let mut result = checked.unwrap_or_else(|_| {
        CheckResult::new(
            Outcome::Timeout,
            None,
            Some(format!("no answer within {} ms", target.timeout_ms)),
        )
    });
    result.latency = started.elapsed();
    result
}

async fn check(client: &reqwest::Client, target: &TargetConfig) -> CheckResult {
    match &target.url {
        TargetUrl::Http(url) => check_http(client, target, url.clone()).await,
        TargetUrl::Tcp { host, port } => check_tcp(host, *port).await,
        // The monitor checks these through its `McpLink`; here there is no MCP client to ask.
        TargetUrl::Mcp { server } => CheckResult::new(
            Outcome::Error,
            None,
            Some(format!(
                "MCP server {server:?} is checked by the monitor, not by a plain probe"
            )),
        ),
    }
}

async fn check_tcp(host: &str, port: u16) -> CheckResult {
    match tokio::net::TcpStream::connect((host, port)).await {
        Ok(_) => CheckResult::new(Outcome::Up, None, None),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            CheckResult::new(Outcome::Down, None, Some("connection refused".to_owned()))
        }
        Err(e) => CheckResult::new(Outcome::Error, None, Some(format!("cannot connect: {e}"))),
    }
}

async fn check_http(client: &reqwest::Client, target: &TargetConfig, url: url::Url) -> CheckResult {
    let method = match target.http_method() {
        HttpMethod::Get => Method::GET,
        HttpMethod::Head => Method::HEAD,
        HttpMethod::Post => Method::POST,
        HttpMethod::Put => Method::PUT,
        HttpMethod::Patch => Method::PATCH,
        HttpMethod::Delete => Method::DELETE,
        HttpMethod::Options => Method::OPTIONS,
    };
    let mut response = match client.request(method, url).send().await {
        Ok(response) => response,
        Err(e) => return request_failed(&e),
    };
    let status = response.status().as_u16();
    let expected = match &target.expected_status {
        Some(expected) => expected.codes().contains(&status),
        None => (200..300).contains(&status),
    };
    if !expected {
        let wanted = target
            .expected_status
            .as_ref()
            .map(|e| format!("{:?}", e.codes()))
            .unwrap_or_else(|| "2xx".to_owned());
        return CheckResult::new(
            Outcome::Down,
            Some(status),
            Some(format!("status {status}, expected {wanted}")),
        );
    }
    let Some(condition) = &target.body else {
        return CheckResult::new(Outcome::Up, Some(status), None);
    };
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = MAX_BODY_BYTES - body.len();
                body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                if body.len() >= MAX_BODY_BYTES {
                    break;
                }
            }
            Ok(None) => break,
            Err(e) => return request_failed(&e),
        }
    }
    match body_matches(condition, &body) {
        Ok(()) => CheckResult::new(Outcome::Up, Some(status), None),
        Err(reason) => CheckResult::new(Outcome::Down, Some(status), Some(reason)),
    }
}

fn request_failed(err: &reqwest::Error) -> CheckResult {
    let outcome = if err.is_timeout() {
        Outcome::Timeout
    } else if refused_or_reset(err) {
        // The host is there and said no: the service is down.
        Outcome::Down
    } else {
        // The check could not be made: DNS, TLS, a malformed answer.
        Outcome::Error
    };
    CheckResult::new(outcome, None, Some(describe(err)))
}

fn refused_or_reset(err: &reqwest::Error) -> bool {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            if matches!(
                io.kind(),
                ConnectionRefused | ConnectionReset | ConnectionAborted
            ) {
                return true;
            }
        }
        source = cause.source();
    }
    false
}

/// The error and its causes in one line, without the URL (it is in the config already).
fn describe(err: &reqwest::Error) -> String {
    let mut text = if err.is_connect() {
        "cannot connect".to_owned()
    } else if err.is_timeout() {
        "timed out".to_owned()
    } else if err.is_body() || err.is_decode() {
        "invalid response body".to_owned()
    } else {
        "request failed".to_owned()
    };
    let mut source = std::error::Error::source(err);
    let mut last = String::new();
    while let Some(cause) = source {
        let message = cause.to_string();
        if message != last {
            text.push_str(": ");
            text.push_str(&message);
            last = message;
        }
        source = cause.source();
    }
    text
}

/// Checks a body against a condition; the error says what did not match.
pub fn body_matches(condition: &BodyCondition, body: &[u8]) -> Result<(), String> {
    if let Some(needle) = &condition.contains {
        let text = String::from_utf8_lossy(body);
        return if text.contains(needle.as_str()) {
            Ok(())
        } else {
            Err(format!("body does not contain {needle:?}"))
        };
    }
    let (Some(pointer), Some(expected)) = (&condition.json_pointer, &condition.equals) else {
        return Ok(());
    };
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("body is not JSON: {e}"))?;
    match value.pointer(pointer) {
        Some(found) if found == expected => Ok(()),
        Some(found) => Err(format!("{pointer} is {found}, expected {expected}")),
        None => Err(format!("{pointer} is missing from the body")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pointer(p: &str, equals: serde_json::Value) -> BodyCondition {
        BodyCondition {
            contains: None,
            json_pointer: Some(p.to_owned()),
            equals: Some(equals),
        }
    }

    #[test]
    fn body_conditions_match_and_explain_mismatches() {
        let contains = BodyCondition {
            contains: Some("ready".into()),
            json_pointer: None,
            equals: None,
        };
        assert_eq!(body_matches(&contains, b"all ready"), Ok(()));
        assert_eq!(
            body_matches(&contains, b"starting"),
            Err("body does not contain \"ready\"".to_owned())
        );
        let status_ok = pointer("/status", serde_json::json!("ok"));
        assert_eq!(body_matches(&status_ok, br#"{"status":"ok"}"#), Ok(()));
        assert_eq!(
            body_matches(&status_ok, br#"{"status":"degraded"}"#),
            Err("/status is \"degraded\", expected \"ok\"".to_owned())
        );
        assert_eq!(
            body_matches(&status_ok, br#"{}"#),
            Err("/status is missing from the body".to_owned())
        );
        assert!(body_matches(&status_ok, b"<html>")
            .unwrap_err()
            .starts_with("body is not JSON"));
    }
}
