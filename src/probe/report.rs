//! What the monitor knows: each target's latest check, and all targets at once with the health score.
//! Plain values; the services give them their HTTP shapes.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::breaker::BreakerState;
use crate::config::TargetConfig;
use crate::probe::score::ScoreInput;
use crate::records::Outcome;

/// One target's latest check, as the monitor keeps and reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct LatestCheck {
    pub target: Arc<str>,
    pub outcome: Outcome,
    /// The HTTP status, for HTTP targets that answered.
    pub http_status: Option<u16>,
    /// How long the check took; none when it was not attempted (an open breaker).
    pub latency: Option<Duration>,
    pub checked_at: DateTime<Utc>,
    /// Reused rather than checked for this request: a recent success, or any latest result when the
    /// request came from a hale probe.
    pub cached: bool,
    /// The result of a check already in flight when this request arrived, shared instead of probing twice.
    pub shared: bool,
    /// The target's circuit breaker state after the check.
    pub breaker: BreakerState,
    pub error: Option<String>,
}

impl LatestCheck {
    pub fn ok(&self) -> bool {
        self.outcome.is_up()
    }

    pub(crate) fn score_input(&self, target: &TargetConfig) -> ScoreInput {
        ScoreInput {
            weight: target.weight,
            critical: target.critical,
            outcome: self.outcome,
            latency: self.latency,
        }
    }
}

/// Every target at once: what `/health/all` answers.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthSweep {
    /// True when every target is up.
    pub ok: bool,
    /// Weighted health, 0 to 100 (see docs/health-score.md).
    pub score: f64,
    pub counts: OutcomeCounts,
    pub checks: Vec<LatestCheck>,
    pub at: DateTime<Utc>,
}

/// How many targets have each outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutcomeCounts {
    pub up: usize,
    pub down: usize,
    pub timeout: usize,
    pub circuit_open: usize,
    pub error: usize,
}

impl OutcomeCounts {
    pub(crate) fn add(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Up => self.up += 1,
            Outcome::Down => self.down += 1,
            Outcome::Timeout => self.timeout += 1,
            Outcome::CircuitOpen => self.circuit_open += 1,
            Outcome::Error => self.error += 1,
        }
    }
}
