//! `ApiError`: the one error type every handler returns, rendered as
//! `{"error": {"code", "message", "request_id"}}`. Server errors say nothing of their cause to the client;
//! the cause goes to the log.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::metrics::ErrorType;

/// The body of every error response.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "error": {"code": "bad_request", "message": "limit: \"5000\" is not a number from 1 to 1000",
              "request_id": "6f1c2a9e-4b7d-4e0a-9c3f-2d8e5b71a046"}
}))]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "code": "not_found", "message": "no target named \"apii\"",
    "request_id": "6f1c2a9e-4b7d-4e0a-9c3f-2d8e5b71a046"
}))]
pub struct ErrorDetail {
    /// A stable, machine-readable code such as `not_found` or `bad_request`.
    #[schema(example = "bad_request")]
    pub code: String,
    /// What went wrong, for a person.
    pub message: String,
    /// The request's `X-Request-ID`, to find its log lines.
    pub request_id: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    /// A well-formed request whose content is refused (422): the message names the field and the value.
    #[error("{0}")]
    Unprocessable(String),
    #[error("{0}")]
    NotFound(String),
    #[error("method not allowed")]
    MethodNotAllowed,
    /// The request does not apply to the thing as it is now (409): a run that already ended, a group full.
    #[error("{0}")]
    Conflict(String),
    #[error("request body is larger than the limit of {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("request URI is longer than the limit of {limit} bytes")]
    UriTooLong { limit: usize },
    #[error("request headers are over the limit of {max_count} headers or {max_bytes} bytes")]
    HeadersTooLarge { max_count: usize, max_bytes: usize },
    /// No valid token for a route that needs one (401, with `WWW-Authenticate: Bearer`).
    #[error("{0}")]
    Unauthorized(String),
    /// A valid token of a weaker role, or a route whose role has no token configured (403).
    #[error("{0}")]
    Forbidden(String),
    /// The service cannot do it now, and says why (503): a backup whose copy cannot be written.
    #[error("{0}")]
    Unavailable(String),
    /// Refused for now, with when to try again (503, with `Retry-After`): an open circuit breaker.
    #[error("{message}")]
    UnavailableFor { message: String, retry_after_s: u64 },
    /// An upstream server failed or answered something unusable (502).
    #[error("{0}")]
    BadGateway(String),
    /// An upstream server did not answer in time (504).
    #[error("{0}")]
    GatewayTimeout(String),
    /// Over the rate limit of this client and route group (429, with `Retry-After`).
    #[error("too many requests; retry after {retry_after_s} s")]
    RateLimited { retry_after_s: u64 },
    #[error("internal server error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl ApiError {
    pub fn internal(err: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Internal(Box::new(err))
    }

    pub fn code(&self) -> &'static str {
        self.error_type().as_str()
    }

    pub fn error_type(&self) -> ErrorType {
        match self {
            Self::BadRequest(_) => ErrorType::BadRequest,
            Self::Unprocessable(_) => ErrorType::Unprocessable,
            Self::NotFound(_) => ErrorType::NotFound,
            Self::MethodNotAllowed => ErrorType::MethodNotAllowed,
            Self::Conflict(_) => ErrorType::Conflict,
            Self::PayloadTooLarge { .. } => ErrorType::PayloadTooLarge,
            Self::UriTooLong { .. } => ErrorType::UriTooLong,
            Self::HeadersTooLarge { .. } => ErrorType::HeadersTooLarge,
            Self::Unauthorized(_) => ErrorType::Unauthorized,
            Self::Forbidden(_) => ErrorType::Forbidden,
            Self::RateLimited { .. } => ErrorType::RateLimited,
            Self::Unavailable(_) | Self::UnavailableFor { .. } => ErrorType::Unavailable,
            Self::BadGateway(_) => ErrorType::BadGateway,
            Self::GatewayTimeout(_) => ErrorType::Timeout,
            Self::Internal(_) => ErrorType::Internal,
        }
    }

    /// The body a client sees; `request_id` is filled in by the request middleware.
    pub fn body(&self, request_id: Option<String>) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                code: self.code().to_owned(),
                message: self.to_string(),
                request_id,
            },
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UriTooLong { .. } => StatusCode::URI_TOO_LONG,
            Self::HeadersTooLarge { .. } => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) | Self::UnavailableFor { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::BadGateway(_) => StatusCode::BAD_GATEWAY,
            Self::GatewayTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut res = HttpResponse::build(self.status_code());
        match self {
            Self::Unauthorized(_) => {
                res.insert_header((header::WWW_AUTHENTICATE, "Bearer realm=\"hale\""));
            }
            Self::RateLimited { retry_after_s } | Self::UnavailableFor { retry_after_s, .. } => {
                res.insert_header((header::RETRY_AFTER, retry_after_s.to_string()));
            }
            _ => {}
        }
        res.json(self.body(None))
    }
}

/// The error type and public message for an error response that did not come from an `ApiError`
/// (actix's own 404, 405, payload and extractor errors).
pub(crate) fn describe_status(status: StatusCode) -> (ErrorType, String) {
    match status.as_u16() {
        400 => (ErrorType::BadRequest, "bad request".to_owned()),
        401 => (
            ErrorType::Unauthorized,
            "authentication required".to_owned(),
        ),
        403 => (ErrorType::Forbidden, "forbidden".to_owned()),
        422 => (ErrorType::Unprocessable, "unprocessable content".to_owned()),
        404 => (ErrorType::NotFound, "no such route".to_owned()),
        405 => (ErrorType::MethodNotAllowed, "method not allowed".to_owned()),
        409 => (ErrorType::Conflict, "conflict".to_owned()),
        413 => (
            ErrorType::PayloadTooLarge,
            "request body is too large".to_owned(),
        ),
        414 => (ErrorType::UriTooLong, "request URI is too long".to_owned()),
        429 => (ErrorType::RateLimited, "too many requests".to_owned()),
        431 => (
            ErrorType::HeadersTooLarge,
            "request headers are too large".to_owned(),
        ),
        502 => (ErrorType::BadGateway, "bad gateway".to_owned()),
        503 => (ErrorType::Unavailable, "service unavailable".to_owned()),
        504 => (ErrorType::Timeout, "upstream timed out".to_owned()),
        s if s >= 500 => (ErrorType::Internal, "internal server error".to_owned()),
        _ => (
            ErrorType::Other,
            status
                .canonical_reason()
                .unwrap_or("request failed")
                .to_lowercase(),
        ),
    }
}
