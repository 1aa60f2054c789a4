//! The event bus's own metric: events a subscriber skipped because it fell behind.

use prometheus::{IntCounterVec, Registry};

use crate::metrics::catalog;

#[derive(Debug, Clone)]
pub struct EventMetrics {
    lagged: IntCounterVec,
}

impl EventMetrics {
    /// Registers the collector on the registry of the service that publishes events.
    pub fn register(registry: &Registry) -> Self {
        let lagged = catalog::EVENTS_LAGGED_TOTAL_DEF.int_counter_vec();
        // A distinct constant name, registered once per registry.
        registry
            .register(Box::new(lagged.clone()))
            .expect("metric names are unique");
        Self { lagged }
    }

    pub fn lagged(&self, subscriber: &str, missed: u64) {
        self.lagged.with_label_values(&[subscriber]).inc_by(missed);
    }

    /// Events skipped so far by one subscriber.
    pub fn lagged_count(&self, subscriber: &str) -> u64 {
        self.lagged.with_label_values(&[subscriber]).get()
    }
}
