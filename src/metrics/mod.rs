//! The only module that knows the prometheus crate: one registry per HTTP service (so a Prometheus scraping
//! all three ports never counts a series twice), typed recording methods, label values from closed sets.

mod alerts;
pub mod catalog;
mod events;
mod heal;
mod health;
mod mcp;
pub mod names;
mod slo;
mod targets;
mod workflows;
mod writer;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use prometheus::{Encoder, HistogramVec, IntCounterVec, IntGaugeVec, TextEncoder};

use crate::kind::ServiceKind;

pub use alerts::{AlertMetrics, AlertResult, NO_CHANNEL};
pub use catalog::{StartLabels, StartRule};
pub use events::EventMetrics;
pub use heal::{HealMetrics, RestartCause};
pub use health::{HealthMetrics, ProbeInFlight};
pub use mcp::{McpMetrics, TOOL_BUCKETS as MCP_TOOL_BUCKETS};
/// The registry type, for callers that build their own (tests) without naming the prometheus crate.
pub use prometheus::Registry;
pub use slo::{SloGauges, SloMetrics};
pub use workflows::WorkflowMetrics;
pub use writer::WriterMetrics;

/// The content type of the Prometheus text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The `type` label of `errors_total`: why a request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorType {
    BadRequest,
    Unprocessable,
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    Conflict,
    PayloadTooLarge,
    UriTooLong,
    HeadersTooLarge,
    RateLimited,
    Internal,
    Unavailable,
    BadGateway,
    Timeout,
    Other,
}

impl ErrorType {
    pub const ALL: [ErrorType; 16] = [
        Self::BadRequest,
        Self::Unprocessable,
        Self::Unauthorized,
        Self::Forbidden,
        Self::NotFound,
        Self::MethodNotAllowed,
        Self::Conflict,
        Self::PayloadTooLarge,
        Self::UriTooLong,
        Self::HeadersTooLarge,
        Self::RateLimited,
        Self::Internal,
        Self::Unavailable,
        Self::BadGateway,
        Self::Timeout,
        Self::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadRequest => "bad_request",
            Self::Unprocessable => "unprocessable",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::Conflict => "conflict",
            Self::PayloadTooLarge => "payload_too_large",
            Self::UriTooLong => "uri_too_long",
            Self::HeadersTooLarge => "headers_too_large",
            Self::RateLimited => "rate_limited",
            Self::Internal => "internal",
            Self::Unavailable => "unavailable",
            Self::BadGateway => "bad_gateway",
            Self::Timeout => "timeout",
            Self::Other => "other",
        }
    }
}

/// The metrics of one HTTP service and the registry they live in.
#[derive(Debug, Clone)]
pub struct ServiceMetrics {
    service: ServiceKind,
    registry: Registry,
    up: IntGaugeVec,
    requests: IntCounterVec,
    durations: HistogramVec,
    errors: IntCounterVec,
    rate_limited: IntCounterVec,
    /// The Health Proxy's per-target series, written after the registry's families.
    targets: Arc<OnceLock<Arc<targets::TargetTable>>>,
    /// The length of the last scrape, so the next one allocates its buffer once.
    last_len: Arc<AtomicUsize>,
}

impl ServiceMetrics {
    pub fn new(service: ServiceKind) -> Self {
        let registry = Registry::new();
        let up = catalog::SERVICE_UP_DEF.int_gauge_vec();
        let requests = catalog::HTTP_REQUESTS_TOTAL_DEF.int_counter_vec();
        let durations =
            catalog::HTTP_REQUEST_DURATION_SECONDS_DEF.histogram_vec(&catalog::HTTP_BUCKETS);
        let errors = catalog::ERRORS_TOTAL_DEF.int_counter_vec();
        let rate_limited = catalog::HTTP_RATE_LIMITED_TOTAL_DEF.int_counter_vec();
        for collector in [
            Box::new(up.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(requests.clone()),
            Box::new(durations.clone()),
            Box::new(errors.clone()),
            Box::new(rate_limited.clone()),
        ] {
            // Names are distinct constants on a fresh registry, so registration cannot clash.
            registry
                .register(collector)
                .expect("metric names are unique");
        }
        register_process_collector(&registry);
        up.with_label_values(&[service.as_str()]).set(1);
        // Every error type at 0, so the first error of a type is an increase Prometheus can see.
        let known = catalog::StartLabels::default();
        for labels in catalog::ERRORS_TOTAL_DEF.series_at_start(Some(service.as_str()), &known) {
            errors.with_label_values(&labels);
        }
        Self {
            service,
            registry,
            up,
            requests,
            durations,
            errors,
            rate_limited,
            targets: Arc::new(OnceLock::new()),
            last_len: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Serves this per-target table on `/metrics` too. One per service: the Health Proxy registers its own
    /// once, like the names of its registry's collectors.
    fn render_targets(&self, table: Arc<targets::TargetTable>) {
        // A second table would repeat the per-target families, as a second registration of a collector
        // would repeat its name: both are mistakes of assembly, not of input.
        self.targets
            .set(table)
            .expect("one per-target table per service");
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    pub fn set_up(&self, up: bool) {
        self.up
            .with_label_values(&[self.service.as_str()])
            .set(i64::from(up));
    }

    /// Counts one answered request. `route` must be a route pattern (bounded), never a raw path.
    pub fn request_finished(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        let digits = status_digits(status);
        // Three ASCII digits are always UTF-8.
        let status = std::str::from_utf8(&digits).unwrap_or("000");
        self.requests
            .with_label_values(&[self.service.as_str(), method_label(method), route, status])
            .inc();
        self.durations
            .with_label_values(&[self.service.as_str(), route])
            .observe(elapsed.as_secs_f64());
    }

    /// A request refused for its rate. `route` must be a route pattern (or `unmatched`), never a raw path.
    pub fn rate_limited(&self, route: &str) {
        self.rate_limited
            .with_label_values(&[self.service.as_str(), route])
            .inc();
    }

    pub fn error(&self, kind: ErrorType) {
        self.errors
            .with_label_values(&[self.service.as_str(), kind.as_str()])
            .inc();
    }

    /// The registry, then the per-target series, in the Prometheus text format.
    pub fn render(&self) -> Result<String, prometheus::Error> {
        let mut buf = Vec::with_capacity(self.last_len.load(Ordering::Relaxed) + 4096);
        TextEncoder::new().encode(&self.registry.gather(), &mut buf)?;
        let mut text = String::from_utf8(buf).map_err(|e| prometheus::Error::Msg(e.to_string()))?;
        if let Some(table) = self.targets.get() {
            table.render(&mut text);
        }
        self.last_len.store(text.len(), Ordering::Relaxed);
        Ok(text)
    }
}

/// The three digits of an HTTP status (100..=999), without allocating a `String` per request.
fn status_digits(status: u16) -> [u8; 3] {
    let status = status.min(999);
    [
        b'0' + (status / 100) as u8,
        b'0' + (status / 10 % 10) as u8,
        b'0' + (status % 10) as u8,
    ]
}

/// The standard `process_*` metrics of this process (resident memory, open and maximum file descriptors, CPU
/// seconds, threads, start time), read from `/proc/self` at each scrape. Every service's registry gets its
/// own collector: services started in separate processes (`serve --only`) each report their own process,
/// and in one process the three show the same values.
#[cfg(target_os = "linux")]
fn register_process_collector(registry: &Registry) {
    // A fresh registry has no `process_*` names yet, so registration cannot clash.
    registry
        .register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))
        .expect("process metric names are unique");
}

/// The prometheus crate reads process metrics from `/proc`, on Linux only.
#[cfg(not(target_os = "linux"))]
fn register_process_collector(_registry: &Registry) {}

/// Methods outside the standard set share one label value, so a client cannot grow the label set.
fn method_label(method: &str) -> &'static str {
    match method {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "OPTIONS" => "OPTIONS",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_labels_are_three_digits() {
        for (status, label) in [(200, "200"), (404, "404"), (503, "503"), (101, "101")] {
            assert_eq!(std::str::from_utf8(&status_digits(status)), Ok(label));
        }
    }
}
