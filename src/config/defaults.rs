//! Every default value of the configuration, one small function each, so the docs and the code agree.

use std::net::SocketAddr;

pub fn health_proxy_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 3002))
}

pub fn mcp_bridge_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 3003))
}

pub fn boss_api_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 4000))
}

pub fn http_workers() -> usize {
    2
}

pub fn shutdown_timeout_s() -> u64 {
    30
}

pub fn body_limit_bytes() -> usize {
    1024 * 1024
}

pub fn probe_timeout_ms() -> u64 {
    2_000
}

pub fn probe_interval_s() -> u64 {
    30
}

pub fn target_weight() -> f64 {
    1.0
}

pub fn probe_method() -> String {
    "GET".to_owned()
}

pub fn background_checks() -> bool {
    true
}

pub fn cache_ttl_s() -> u64 {
    120
}

/// Probes in flight at once. 256 fits beside hale's reserve even under a 1,024 open-file limit that cannot be
/// raised ((1024 - 164) / 2 = 430 with 2 workers), and lets `/health/all` over 5,000 targets finish in 20
/// rounds of probes rather than 79 at 64.
pub fn max_in_flight() -> usize {
    256
}

pub fn slow_threshold_ms() -> u64 {
    1_000
}

pub fn failure_threshold() -> u32 {
    5
}

pub fn success_threshold() -> u32 {
    2
}

pub fn open_timeout_s() -> u64 {
    60
}

pub fn retention_days() -> u32 {
    30
}

pub fn rollup_retention_days() -> u32 {
    400
}

pub fn flush_interval_ms() -> u64 {
    250
}

/// Under a backlog a batch this large touches each service's index page once for many rows, which keeps the
/// writer above 100,000 rows/s as the file grows (docs/benchmarks.md).
pub fn batch_size() -> usize {
    10_000
}

pub fn availability_target_percent() -> f64 {
    99.5
}

pub fn p95_latency_target_ms() -> u64 {
    200
}

pub fn max_restarts_per_week() -> u32 {
    3
}

pub fn slo_window_days() -> u32 {
    7
}
