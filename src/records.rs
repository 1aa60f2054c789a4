//! The records hale persists, below both the engines that make them and the store that keeps them, so the
//! store never depends on a feature: today health checks; heal events, alerts, SLO results and workflow runs
//! join them here.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::breaker::BreakerState;

/// The closed set of results of one check; also a metric label value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The target answered as expected.
    Up,
    /// The target answered, but not as expected (status or body), or refused or reset the connection.
    Down,
    /// No answer within the target's timeout.
    Timeout,
    /// Not checked: the target's circuit breaker is open.
    CircuitOpen,
    /// The check itself could not be made: a name that does not resolve, a TLS failure, a malformed answer.
    Error,
}

impl Outcome {
    pub const ALL: [Outcome; 5] = [
        Outcome::Up,
        Outcome::Down,
        Outcome::Timeout,
        Outcome::CircuitOpen,
        Outcome::Error,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Up => "up",
            Self::Down => "down",
            Self::Timeout => "timeout",
            Self::CircuitOpen => "circuit_open",
            Self::Error => "error",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|o| o.as_str() == raw)
    }

    pub fn is_up(self) -> bool {
        self == Self::Up
    }
}

/// Who asked for a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CheckSource {
    /// The background monitor, at the target's interval.
    Monitor,
    /// A request such as `GET /health/all`.
    OnDemand,
}

impl CheckSource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Monitor => "monitor",
            Self::OnDemand => "on_demand",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [Self::Monitor, Self::OnDemand]
            .into_iter()
            .find(|s| s.as_str() == raw)
    }
}

/// One persisted health check.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckRecord {
    pub checked_at: DateTime<Utc>,
    pub service: Arc<str>,
    pub outcome: Outcome,
    pub http_status: Option<u16>,
    pub latency: Option<Duration>,
    pub error: Option<String>,
    pub breaker_state: BreakerState,
    pub source: CheckSource,
}

/// How a request that tried to change something ended, as the audit log keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuditOutcome {
    /// Allowed and answered with a 2xx.
    Done,
    /// Allowed, and then failed (4xx or 5xx from the route itself).
    Failed,
    /// No valid token (401).
    Unauthorized,
    /// A token of a weaker role, or no token configured for the role (403).
    Forbidden,
    /// Over the rate limit (429).
    RateLimited,
}

impl AuditOutcome {
    pub const ALL: [AuditOutcome; 5] = [
        Self::Done,
        Self::Failed,
        Self::Unauthorized,
        Self::Forbidden,
        Self::RateLimited,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Done => "done",
            Self::Failed => "failed",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::RateLimited => "rate_limited",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|o| o.as_str() == raw)
    }
}

/// One request that tried to change something: who, from where, what, and how it ended.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRecord {
    pub at: DateTime<Utc>,
    pub service: crate::kind::ServiceKind,
    /// The role the caller's token granted; none without a valid token.
    pub role: Option<&'static str>,
    /// The client's address.
    pub client: String,
    pub method: String,
    /// The route pattern, such as `/heal/{target}`.
    pub route: String,
    /// The `{target}` of the route, when it has one.
    pub target: Option<String>,
    pub status: u16,
    pub outcome: AuditOutcome,
    pub request_id: String,
}
