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
