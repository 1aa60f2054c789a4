//! The request middleware of every service: one place that gives each request its id, span, log line,
//! metrics, security headers and JSON error body.

use std::fmt;
use std::time::Instant;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage, HttpResponse, ResponseError};
use tracing::Instrument;

use crate::http::error::{describe_status, ApiError, ErrorBody, ErrorDetail};
use crate::http::HttpContext;

pub const REQUEST_ID_HEADER: &str = "x-request-id";
const MAX_REQUEST_ID_LEN: usize = 128;

/// hale's own limits on a request head, answered with a JSON 414 or 431. They sit below actix-http's hard
/// limits (a head of 128 KiB, 96 headers), whose refusals come back before routing, without a JSON body.
pub const MAX_URI_BYTES: usize = 8 * 1024;
pub const MAX_HEADERS: usize = 64;
pub const MAX_HEADER_BYTES: usize = 32 * 1024;

/// Swagger UI needs its own scripts, inline styles and data: images; nothing else is allowed.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The request id of the current request, in its extensions.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

impl RequestId {
    /// The id of `req` (empty before the middleware gave it one).
    pub fn of(req: &impl HttpMessage) -> String {
        req.extensions()
            .get::<Self>()
            .map(|id| id.0.clone())
            .unwrap_or_default()
    }
}

/// Wraps every request of a service (install with `actix_web::middleware::from_fn(observe)`).
pub async fn observe(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let started = Instant::now();
    let Some(ctx) = req.app_data::<web::Data<HttpContext>>().cloned() else {
        // Only reachable if a service forgot its context: fail loudly in the response, not with a panic.
        let err = ApiError::Internal("the service has no HTTP context".into());
        return Ok(req.error_response(err));
    };
    let request_id = incoming_request_id(req.headers()).unwrap_or_else(new_request_id);
    req.extensions_mut().insert(RequestId(request_id.clone()));
    // `Method` clones without allocating for the standard methods.
    let method = req.method().clone();
    // HEAD is GET without a body: route it as GET. actix-http's codec saw HEAD when it decoded the request,
    // so it sends GET's status and headers (Content-Length included) and drops the body. Logs and metrics
    // keep the client's method.
    if req.method() == Method::HEAD {
        req.head_mut().method = Method::GET;
    }
    // Health probes and scrapes arrive every few seconds from every monitor and Prometheus: their successful
    // answers are logged at `debug` (a failed one still at `info`), so they cost no log line by default.
    let probe_route = is_probe_path(req.path());
    // Fields recorded as `&str` (not `%`): the same JSON strings without going through `Display`.
    let span = if probe_route {
        tracing::debug_span!(
            "request",
            service = ctx.kind.as_str(),
            request_id = request_id.as_str(),
            method = method.as_str(),
        )
    } else {
        tracing::info_span!(
            "request",
            service = ctx.kind.as_str(),
            request_id = request_id.as_str(),
            method = method.as_str(),
        )
    };

    let res = if let Some(refusal) = head_refusal(&req, ctx.body_limit) {
        req.error_response(refusal)
    } else {
        // The request cannot be cloned before routing (routing needs it unshared), so an `Err` from an inner
        // middleware (CORS refusing an origin) is answered by actix after we gave the request away: it is
        // turned into an error that renders our JSON body and headers itself.
        match next.call(req).instrument(span.clone()).await {
            Ok(res) => res.map_into_boxed_body(),
            Err(err) => {
                let status = err.as_response_error().status_code();
                let (error_type, _) = describe_status(status);
                ctx.metrics.request_finished(
                    method.as_str(),
                    "unmatched",
                    status.as_u16(),
                    started.elapsed(),
                );
                ctx.metrics.error(error_type);
                tracing::info!(parent: &span, status = status.as_u16(), error = %err, "request refused by middleware");
                let body = ErrorBody {
                    error: ErrorDetail {
                        code: error_type.as_str().to_owned(),
                        message: err.to_string(),
                        request_id: Some(request_id.clone()),
                    },
                };
                return Err(Refused {
                    status,
                    body,
                    request_id,
                }
                .into());
            }
        }
    };

    let status = res.status();
    let route = res
        .request()
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
    // A handler that answers an error status with a JSON body of its own (`/health`'s 503 `HealthResponse`)
    // keeps it; errors (`ApiError`, extractors, actix) and actix's bare answers (an empty 405) get ours.
    let own_body =
        res.response().error().is_none() && res.headers().contains_key(header::CONTENT_TYPE);
    let is_error = status.is_client_error() || status.is_server_error();
    if is_error && own_body {
        ctx.metrics.error(describe_status(status).0);
    }
    let mut res = if is_error && !own_body {
        let (error_type, message) = match res.response().error() {
            Some(err) => match err.as_error::<ApiError>() {
                Some(api) => (api.error_type(), api.to_string()),
                // actix's own client errors (extractors) describe the request, not our internals.
                None if status.is_client_error() => (describe_status(status).0, err.to_string()),
                None => describe_status(status),
            },
            None => describe_status(status),
        };
        if status.is_server_error() {
            if let Some(err) = res.response().error() {
                tracing::error!(parent: &span, error = %err, cause = ?err, route = %route, "request failed");
            }
        }
        ctx.metrics.error(error_type);
        let body = ErrorBody {
            error: ErrorDetail {
                code: error_type.as_str().to_owned(),
                message,
                request_id: Some(request_id.clone()),
            },
        };
        let json = serde_json::to_vec(&body).unwrap_or_default();
        res.map_body(|head, _| {
            head.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            BoxBody::new(json)
        })
    } else {
        res
    };

    let is_docs = res.request().path().starts_with("/docs");
    add_common_headers(res.headers_mut(), &request_id, is_docs);

    let elapsed = started.elapsed();
    ctx.metrics
        .request_finished(method.as_str(), &route, status.as_u16(), elapsed);
    macro_rules! finished {
        ($level:expr) => {
            tracing::event!(
                parent: &span,
                $level,
                service = ctx.kind.as_str(),
                request_id = request_id.as_str(),
                method = method.as_str(),
                route = route.as_str(),
                status = status.as_u16(),
                latency_ms = (elapsed.as_micros() as f64) / 1000.0,
                "request finished"
            )
        };
    }
    // A flood of 429s logs the first of each client's minute and a count (see `AccessLog`).
    let quiet_429 = status == StatusCode::TOO_MANY_REQUESTS
        && ctx
            .guard
            .as_ref()
            .and_then(|guard| guard.access.as_ref())
            .zip(res.request().peer_addr())
            .is_some_and(|(access, peer)| !access.log_rate_limited(peer.ip()));
    if (probe_route && status.is_success()) || quiet_429 {
        finished!(tracing::Level::DEBUG);
    } else {
        finished!(tracing::Level::INFO);
    }
    Ok(res)
}

/// The paths monitors and scrapers poll: `/health`, `/healthz` and `/metrics`.
fn is_probe_path(path: &str) -> bool {
    matches!(path, "/health" | "/healthz" | "/metrics")
}

/// The request id and security headers every answer carries; `Cache-Control: no-store` outside `/docs`.
fn add_common_headers(headers: &mut HeaderMap, request_id: &str, is_docs: bool) {
    // Room for all of them at once, rather than growing the map on the way.
    headers.reserve(7);
    if let Ok(value) = HeaderValue::from_str(request_id) {
        headers.insert(HeaderName::from_static(REQUEST_ID_HEADER), value);
    }
    for (name, value) in [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    // A route that sets its own, stricter policy (the status page) keeps it.
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        );
    }
    if !is_docs {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
}

/// A refusal by an inner middleware, carrying the whole answer, since actix renders it after `observe`
/// has returned.
#[derive(Debug)]
struct Refused {
    status: StatusCode,
    body: ErrorBody,
    request_id: String,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.body.error.message)
    }
}

impl ResponseError for Refused {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut res = HttpResponse::build(self.status).json(&self.body);
        add_common_headers(res.headers_mut(), &self.request_id, false);
        res
    }
}

/// A UUID v4 from the thread's random generator: `Uuid::new_v4` would make a `getrandom` system call for
/// every request.
fn new_request_id() -> String {
    let uuid = uuid::Builder::from_random_bytes(rand::random()).into_uuid();
    let mut text = String::with_capacity(uuid::fmt::Hyphenated::LENGTH);
    text.push_str(
        uuid.hyphenated()
            .encode_lower(&mut uuid::Uuid::encode_buffer()),
    );
    text
}

/// A client's request id is kept when it is short and plain; anything else is replaced.
fn incoming_request_id(headers: &HeaderMap) -> Option<String> {
    let raw = headers.get(REQUEST_ID_HEADER)?.to_str().ok()?;
    let plain = !raw.is_empty()
        && raw.len() <= MAX_REQUEST_ID_LEN
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    plain.then(|| raw.to_owned())
}

/// Why a request is answered before routing: a URI or headers over hale's limits, or a declared body over
/// the body limit (answered without reading the body).
fn head_refusal(req: &ServiceRequest, body_limit: usize) -> Option<ApiError> {
    let uri_len = req
        .uri()
        .path_and_query()
        .map_or(0, |target| target.as_str().len());
    if uri_len > MAX_URI_BYTES {
        return Some(ApiError::UriTooLong {
            limit: MAX_URI_BYTES,
        });
    }
    let headers = req.headers();
    let header_bytes: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if headers.len() > MAX_HEADERS || header_bytes > MAX_HEADER_BYTES {
        return Some(ApiError::HeadersTooLarge {
            max_count: MAX_HEADERS,
            max_bytes: MAX_HEADER_BYTES,
        });
    }
    content_length(headers)
        .filter(|&len| len > body_limit)
        .map(|_| ApiError::PayloadTooLarge { limit: body_limit })
}

fn content_length(headers: &HeaderMap) -> Option<usize> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_id(id: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            HeaderName::from_static(REQUEST_ID_HEADER),
            HeaderValue::from_str(id).unwrap(),
        );
        headers
    }

    #[test]
    fn generated_request_ids_are_distinct_uuid_v4s() {
        let first = new_request_id();
        let uuid = uuid::Uuid::parse_str(&first).unwrap();
        assert_eq!(uuid.get_version_num(), 4);
        assert_eq!(uuid.get_variant(), uuid::Variant::RFC4122);
        assert_eq!(first, uuid.hyphenated().to_string());
        assert_ne!(first, new_request_id());
    }

    #[test]
    fn plain_request_ids_are_kept_and_others_replaced() {
        assert_eq!(
            incoming_request_id(&with_id("abc-123_x.y:z")).as_deref(),
            Some("abc-123_x.y:z")
        );
        assert_eq!(incoming_request_id(&with_id("has space")), None);
        assert_eq!(incoming_request_id(&with_id(&"a".repeat(129))), None);
        assert_eq!(incoming_request_id(&HeaderMap::new()), None);
    }
}
