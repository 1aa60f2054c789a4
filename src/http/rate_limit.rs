//! Rate limits per client address and route group, with `governor` (GCRA token buckets): one keyed limiter
//! per group, so a client flooding one group never empties another group's bucket, nor another client's.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::config::{RateLimit, RateLimitsConfig};

/// Which bucket a route draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RateGroup {
    /// `/health`, `/healthz`, `/metrics`, `/openapi.json`, Swagger UI.
    Ops,
    /// `/health/all`: may probe every target.
    Check,
    /// Every other read.
    Read,
    /// Everything that changes something, but a tool call.
    Write,
    /// `POST /tools/{name}`: a bucket per client and tool (`RateLimits::check_tool`).
    ToolCall,
}

/// Checks between two sweeps of client addresses not seen lately.
const SWEEP_EVERY: u64 = 10_000;

pub struct RateLimits {
    ops: DefaultKeyedRateLimiter<IpAddr>,
    check: DefaultKeyedRateLimiter<IpAddr>,
    read: DefaultKeyedRateLimiter<IpAddr>,
    write: DefaultKeyedRateLimiter<IpAddr>,
    tool_call: DefaultKeyedRateLimiter<(IpAddr, String)>,
    checks: AtomicU64,
}

impl std::fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimits").finish_non_exhaustive()
    }
}

fn limiter<K: std::hash::Hash + Eq + Clone>(limit: RateLimit) -> DefaultKeyedRateLimiter<K> {
    // The config is validated to 1..=100000 for both; `max(1)` keeps a bad value from panicking anyway.
    let per_second = NonZeroU32::new(limit.per_second.max(1)).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(limit.burst.max(1)).unwrap_or(NonZeroU32::MIN);
    RateLimiter::keyed(Quota::per_second(per_second).allow_burst(burst))
}

impl RateLimits {
    /// None when rate limiting is off.
    pub fn new(config: &RateLimitsConfig) -> Option<Self> {
        config.enabled.then(|| Self {
            ops: limiter(config.ops),
            check: limiter(config.check),
            read: limiter(config.read),
            write: limiter(config.write),
            tool_call: limiter(config.tool_call),
            checks: AtomicU64::new(0),
        })
    }

    /// Takes one request from `client`'s bucket of `group`; `Err` says how long until one is free. A tool
    /// call (`RateGroup::ToolCall`) is checked by `check_tool`, which knows the tool.
    pub fn check(&self, group: RateGroup, client: IpAddr) -> Result<(), Duration> {
        let limiter = match group {
            RateGroup::Ops => &self.ops,
            RateGroup::Check => &self.check,
            RateGroup::Read => &self.read,
            RateGroup::Write | RateGroup::ToolCall => &self.write,
        };
        self.sweep_now_and_then();
        limiter
            .check_key(&client)
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }

    /// Takes one call of `tool` from `client`'s bucket for it.
    pub fn check_tool(&self, client: IpAddr, tool: &str) -> Result<(), Duration> {
        self.sweep_now_and_then();
        self.tool_call
            .check_key(&(client, tool.to_owned()))
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }

    fn sweep_now_and_then(&self) {
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            // Forget clients whose buckets are full again, so a scan of many addresses (or tool names) cannot
            // grow memory.
            for limiter in [&self.ops, &self.check, &self.read, &self.write] {
                limiter.retain_recent();
                limiter.shrink_to_fit();
            }
            self.tool_call.retain_recent();
            self.tool_call.shrink_to_fit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_client_and_group_has_its_own_bucket() {
        let mut config = RateLimitsConfig {
            check: RateLimit {
                per_second: 1,
                burst: 3,
            },
            ..RateLimitsConfig::default()
        };
        let limits = RateLimits::new(&config).unwrap();
        let noisy: IpAddr = [127, 0, 0, 1].into();
        let quiet: IpAddr = [127, 0, 0, 2].into();
        for _ in 0..3 {
            assert!(limits.check(RateGroup::Check, noisy).is_ok());
        }
        let wait = limits.check(RateGroup::Check, noisy).unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
        assert!(
            limits.check(RateGroup::Check, quiet).is_ok(),
            "another client"
        );
        assert!(limits.check(RateGroup::Ops, noisy).is_ok(), "another group");
        config.enabled = false;
        assert!(RateLimits::new(&config).is_none());
    }
}
