//! The `http` step: one request to a target's base URL, refused at once (retryably) while the target's
//! breaker is open.

use std::time::Duration;

use serde_json::{json, Value};
use tokio::time::Instant;

use crate::config::HttpMethod;
use crate::workflows::steps::{Failure, HttpTarget, StepResult};
use crate::workflows::FailureClass;

/// The most of a response body kept in the step's output; the rest is not read.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The most of a response body quoted in a failure's message.
const MESSAGE_BODY_CHARS: usize = 160;

/// An `http` step's request, rendered.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpRequest {
    pub method: HttpMethod,
    /// Joined to the target's base URL.
    pub path: String,
    pub body: Option<Value>,
    /// Accepted statuses; any 2xx when empty.
    pub expect_status: Vec<u16>,
}

/// Sends the request; its output is the status, the body (JSON when it parses) and the latency.
///
/// The output is `{"status", "body", "latency_ms"}` (and `"body_truncated": true` when the body was longer
/// than `MAX_BODY_BYTES`); `latency_ms` runs from sending to the end of the body read. No request header
/// appears anywhere in the output or a failure.
pub async fn run(
    client: &reqwest::Client,
    target: &HttpTarget,
    request: &HttpRequest,
    timeout: Duration,
) -> StepResult {
    let method = request.method.as_str();
    if target.breaker_open {
        return Err(Failure::of(
            FailureClass::BreakerOpen,
            format!(
                "the circuit breaker of {} is open; {method} {} was not sent",
                target.base, request.path
            ),
        ));
    }
    let url = join(&target.base, &request.path)?;
    let started = Instant::now();
    let answer = match tokio::time::timeout(timeout, exchange(client, request, &url)).await {
        Ok(answer) => answer,
        Err(_) => {
            return Err(Failure::of(
                FailureClass::Timeout,
                format!(
                    "{method} {url}: no complete answer within {}",
                    seconds(timeout)
                ),
            ))
        }
    };
    let answer = answer.map_err(|e| transport_failure(method, &url, &e))?;
    let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let status = answer.status;
    let accepted = if request.expect_status.is_empty() {
        (200..300).contains(&status)
    } else {
        request.expect_status.contains(&status)
    };
    if !accepted {
        let expected = if request.expect_status.is_empty() {
            "any 2xx".to_owned()
        } else {
            request
                .expect_status
                .iter()
                .map(u16::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        let quoted = quote(&answer.body);
        let said = if quoted.is_empty() {
            String::new()
        } else {
            format!(": {quoted}")
        };
        let message = format!("{method} {url} answered {status} (expected {expected}){said}");
        return Err(if (500..600).contains(&status) {
            Failure::of(FailureClass::ServerError, message)
        } else {
            Failure::fatal(message)
        });
    }
    let body = match serde_json::from_slice::<Value>(&answer.body) {
        Ok(value) if !answer.truncated => value,
        _ => Value::String(String::from_utf8_lossy(&answer.body).into_owned()),
    };
    let mut output = json!({
        "status": status,
        "body": body,
        "latency_ms": latency_ms,
    });
    if answer.truncated {
        output["body_truncated"] = Value::Bool(true);
    }
    Ok(output)
}

/// What came back: the status and the body, at most `MAX_BODY_BYTES` of it.
struct Answer {
    status: u16,
    body: Vec<u8>,
    truncated: bool,
}

/// Sends the request and reads the answer, up to the body cap.
async fn exchange(
    client: &reqwest::Client,
    request: &HttpRequest,
    url: &url::Url,
) -> Result<Answer, reqwest::Error> {
    let method = match request.method {
        HttpMethod::Get => reqwest::Method::GET,
        HttpMethod::Head => reqwest::Method::HEAD,
        HttpMethod::Post => reqwest::Method::POST,
        HttpMethod::Put => reqwest::Method::PUT,
        HttpMethod::Patch => reqwest::Method::PATCH,
        HttpMethod::Delete => reqwest::Method::DELETE,
        HttpMethod::Options => reqwest::Method::OPTIONS,
    };
    let mut builder = client.request(method, url.clone());
    if let Some(body) = &request.body {
        builder = builder.json(body);
    }
    let mut response = builder.send().await?;
    let status = response.status().as_u16();
    let mut body = Vec::new();
    let mut truncated = false;
    while let Some(chunk) = response.chunk().await? {
        let room = MAX_BODY_BYTES - body.len();
        if chunk.len() > room {
            body.extend_from_slice(&chunk[..room]);
            truncated = true;
            break;
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Answer {
        status,
        body,
        truncated,
    })
}

/// `path` (which may carry a query) joined to `base`; a path that would lead to another origin (another
/// scheme, host or port, as `//elsewhere/` or `http://elsewhere/` would) is refused.
pub fn join(base: &url::Url, path: &str) -> Result<url::Url, Failure> {
    let url = base.join(path).map_err(|e| {
        Failure::fatal(format!("the path {path:?} cannot be joined to {base}: {e}"))
    })?;
    if url.origin() != base.origin() {
        return Err(Failure::fatal(format!(
            "the path {path:?} leads away from the target's origin {} (to {}); a path stays on its target",
            base.origin().ascii_serialization(),
            url.origin().ascii_serialization()
        )));
    }
    Ok(url)
}

/// A request that got no complete answer: a connection that could not be made or broke (`connect`), a
/// timeout inside the client (`timeout`), or a request that could not be built (fatal).
fn transport_failure(method: &str, url: &url::Url, error: &reqwest::Error) -> Failure {
    let cause = root_cause(error);
    if error.is_timeout() {
        Failure::of(
            FailureClass::Timeout,
            format!("{method} {url}: timed out: {cause}"),
        )
    } else if error.is_connect() {
        Failure::of(
            FailureClass::Connect,
            format!("{method} {url}: cannot connect: {cause}"),
        )
    } else if error.is_builder() || error.is_redirect() || error.is_decode() {
        Failure::fatal(format!("{method} {url}: {cause}"))
    } else {
        // The connection broke while the request or the answer was on its way.
        Failure::of(
            FailureClass::Connect,
            format!("{method} {url}: the connection failed: {cause}"),
        )
    }
}

/// The innermost cause of an error, which says what actually happened ("Connection refused").
fn root_cause(error: &reqwest::Error) -> String {
    let mut cause: &dyn std::error::Error = error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string()
}

/// The start of a body, on one line, for a failure's message.
fn quote(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut quoted: String = one_line.chars().take(MESSAGE_BODY_CHARS).collect();
    if quoted.len() < one_line.len() {
        quoted.push('…');
    }
    quoted
}

/// A duration in seconds, as a person reads it: `30 s`, `0.25 s`.
pub(crate) fn seconds(duration: Duration) -> String {
    if duration.subsec_nanos() == 0 {
        format!("{} s", duration.as_secs())
    } else {
        let text = format!("{:.3}", duration.as_secs_f64());
        format!("{} s", text.trim_end_matches('0').trim_end_matches('.'))
    }
}
