//! `rate_limits`: how many requests one client address may make to one route group of one service. Each
//! group has its own bucket, so a client flooding `/health/all` does not starve a Prometheus scraping
//! `/metrics` from the same host, and each client address has its own, so one noisy client does not starve
//! another.

use serde::{Deserialize, Serialize};

use crate::config::Invalid;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitsConfig {
    /// When false, no request is ever refused for its rate.
    pub enabled: bool,
    /// `/health`, `/healthz`, `/metrics`, `/openapi.json` and Swagger UI: what monitors and scrapers call.
    pub ops: RateLimit,
    /// `/health/all`: every call may probe every target.
    pub check: RateLimit,
    /// Every other read.
    pub read: RateLimit,
    /// Every request that changes something, but a tool call.
    pub write: RateLimit,
    /// `POST /tools/{name}` on the MCP WebBridge: a bucket per client and tool.
    pub tool_call: RateLimit,
}

/// A token bucket: `per_second` on average, up to `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    pub per_second: u32,
    pub burst: u32,
}

impl Default for RateLimitsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            ops: RateLimit {
                per_second: 100,
                burst: 200,
            },
            check: RateLimit {
                per_second: 10,
                burst: 50,
            },
            read: RateLimit {
                per_second: 50,
                burst: 100,
            },
            write: RateLimit {
                per_second: 2,
                burst: 10,
            },
            tool_call: RateLimit {
                per_second: 10,
                burst: 20,
            },
        }
    }
}

impl RateLimitsConfig {
    /// The groups with their names, in a fixed order.
    pub fn groups(&self) -> [(&'static str, RateLimit); 5] {
        [
            ("ops", self.ops),
            ("check", self.check),
            ("read", self.read),
            ("write", self.write),
            ("tool_call", self.tool_call),
        ]
    }

    pub(crate) fn validate(&self) -> Result<(), Invalid> {
        for (group, limit) in self.groups() {
            if !(1..=100_000).contains(&limit.per_second) {
                return Err(Invalid::at(
                    format!("rate_limits.{group}.per_second"),
                    format!("{} is out of range 1..=100000", limit.per_second),
                ));
            }
            if !(1..=100_000).contains(&limit.burst) {
                return Err(Invalid::at(
                    format!("rate_limits.{group}.burst"),
                    format!("{} is out of range 1..=100000", limit.burst),
                ));
            }
        }
        Ok(())
    }
}
