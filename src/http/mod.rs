//! What every HTTP service shares: the request middleware (request id, logs, metrics, error bodies,
//! security headers, body limit), `ApiError`, extractor settings and CORS.

mod access_log;
mod error;
mod guard;
mod middleware;
mod rate_limit;

use actix_cors::Cors;
use actix_web::error::JsonPayloadError;
use actix_web::web;

pub use access_log::{AccessLog, FLUSH_EVERY};
pub use error::{ApiError, ErrorBody, ErrorDetail};
pub use guard::{authorize, guard, Caller, Denied, Guard, RoutePolicy};
pub use middleware::{
    observe, RequestId, MAX_HEADERS, MAX_HEADER_BYTES, MAX_URI_BYTES, REQUEST_ID_HEADER,
};
pub use rate_limit::{RateGroup, RateLimits};
// Refusals are counted in the log layer (`telemetry::refusals`); re-exported where the HTTP limits are.
pub use crate::telemetry::refusals::{RefusalKind, RefusalLayer, REPORT_EVERY};

use crate::kind::ServiceKind;
use crate::metrics::ServiceMetrics;

/// Per-service facts the middleware needs, registered as app data.
#[derive(Debug, Clone)]
pub struct HttpContext {
    pub kind: ServiceKind,
    pub metrics: ServiceMetrics,
    pub body_limit: usize,
    /// Tokens, rate limits and the audit log; none where only the middleware's own cost is measured.
    pub guard: Option<std::sync::Arc<Guard>>,
}

/// Extractor settings that turn bad bodies, queries and paths into `ApiError`s.
pub fn json_config(limit: usize) -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(limit)
        .error_handler(move |err, _req| match err {
            JsonPayloadError::Overflow { .. } | JsonPayloadError::OverflowKnownLength { .. } => {
                ApiError::PayloadTooLarge { limit }.into()
            }
            JsonPayloadError::ContentType => {
                ApiError::BadRequest("expected a body of Content-Type application/json".to_owned())
                    .into()
            }
            other => ApiError::BadRequest(format!("invalid JSON body: {other}")).into(),
        })
}

pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default()
        .error_handler(|err, _req| ApiError::BadRequest(format!("invalid query: {err}")).into())
}

pub fn path_config() -> web::PathConfig {
    web::PathConfig::default()
        .error_handler(|err, _req| ApiError::BadRequest(format!("invalid path: {err}")).into())
}

pub fn payload_config(limit: usize) -> web::PayloadConfig {
    web::PayloadConfig::new(limit)
}

/// CORS for the configured origins. With none configured the middleware is not installed at all, so
/// browsers apply their same-origin policy.
pub fn cors(origins: &[String]) -> Cors {
    origins
        .iter()
        .fold(Cors::default(), |cors, origin| cors.allowed_origin(origin))
        .allowed_methods(["GET", "POST", "PUT", "DELETE", "OPTIONS"])
        .allowed_headers(["content-type", "authorization", "x-request-id"])
        .expose_headers(["x-request-id"])
        .max_age(600)
}
