//! Every question hale answers, once: one function per answer, without actix, taking typed parameters and
//! returning the schema types the HTTP services serialise (and hale's MCP tools return). The catalog
//! (`ANSWERS`) lists them with the role each needs and the route each is served on.

pub mod alerts;
pub mod audit;
pub mod backup;
pub mod catalog;
pub mod checks;
pub mod dead_letters;
pub mod heal;
pub mod own_health;
pub mod params;
pub mod slo;
pub mod status_page;
pub mod tool_calls;
pub mod workflows;

pub use catalog::{Answer, Verb, ANSWERS};
pub use own_health::{own_health, HealthDetails, HealthResponse};

/// Why a question could not be answered; the HTTP layer gives each case its status.
#[derive(Debug, thiserror::Error)]
pub enum AnswerError {
    /// A parameter is not valid; the message names it (400).
    #[error("{0}")]
    BadInput(String),
    /// The thing asked about does not exist (404).
    #[error("{0}")]
    NotFound(String),
    /// The caller's role is not enough for what the parameters ask (403).
    #[error("{0}")]
    Forbidden(String),
    /// Well formed, but refused: a field out of bounds, a limit reached (422).
    #[error("{0}")]
    Refused(String),
    /// The request does not apply to the thing as it is now (409).
    #[error("{0}")]
    Conflict(String),
    /// The work could not be done now (503).
    #[error("{0}")]
    Unavailable(String),
    /// A fault inside hale, such as a failed read of the database (500; the cause goes to the log only).
    #[error(transparent)]
    Internal(Box<dyn std::error::Error + Send + Sync>),
}

impl AnswerError {
    pub fn internal(err: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Internal(Box::new(err))
    }
}

impl From<crate::store::StoreError> for AnswerError {
    fn from(e: crate::store::StoreError) -> Self {
        Self::internal(e)
    }
}
