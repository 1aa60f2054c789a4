//! The batching writer's metrics, published by the writer itself as it commits, fails and drops: no
//! service needs to copy them in at scrape time.

use prometheus::{IntCounter, IntCounterVec, IntGauge, Registry};

use crate::metrics::catalog;

#[derive(Debug, Clone)]
pub struct WriterMetrics {
    rows_written: IntCounter,
    rows_dropped: IntCounter,
    queue_depth: IntGauge,
    write_errors: IntCounterVec,
}

impl WriterMetrics {
    /// Registers the writer's collectors on the registry of the service whose rows it writes.
    pub fn register(registry: &Registry) -> Self {
        let metrics = Self {
            rows_written: catalog::STORE_ROWS_WRITTEN_TOTAL_DEF.int_counter(),
            rows_dropped: catalog::STORE_ROWS_DROPPED_TOTAL_DEF.int_counter(),
            queue_depth: catalog::STORE_QUEUE_DEPTH_DEF.int_gauge(),
            write_errors: catalog::STORE_WRITE_ERRORS_TOTAL_DEF.int_counter_vec(),
        };
        let collectors: [Box<dyn prometheus::core::Collector>; 4] = [
            Box::new(metrics.rows_written.clone()),
            Box::new(metrics.rows_dropped.clone()),
            Box::new(metrics.queue_depth.clone()),
            Box::new(metrics.write_errors.clone()),
        ];
        for collector in collectors {
            // Each name is a distinct constant, registered once per registry.
            registry
                .register(collector)
                .expect("metric names are unique");
        }
        metrics
    }

    pub fn written(&self, rows: u64) {
        self.rows_written.inc_by(rows);
    }

    pub fn dropped(&self, rows: u64) {
        self.rows_dropped.inc_by(rows);
    }

    pub fn queued(&self, rows: usize) {
        self.queue_depth
            .set(i64::try_from(rows).unwrap_or(i64::MAX));
    }

    /// One failed write; `kind` is a `WriteErrorKind` label value.
    pub fn write_failed(&self, kind: &str) {
        self.write_errors.with_label_values(&[kind]).inc();
    }
}
