//! The batching writer's metrics, published by the writer itself as it commits, fails and drops: no
//! service needs to copy them in at scrape time.

use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};

use crate::metrics::names;

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
        let valid = "static metric definition is valid";
        let metrics = Self {
            rows_written: IntCounter::new(
                names::STORE_ROWS_WRITTEN_TOTAL,
                "Health-check rows in committed transactions.",
            )
            .expect(valid),
            rows_dropped: IntCounter::new(
                names::STORE_ROWS_DROPPED_TOTAL,
                "Health-check rows given up on: past the in-memory hold while the database failed, or unwritten at shutdown.",
            )
            .expect(valid),
            queue_depth: IntGauge::new(
                names::STORE_QUEUE_DEPTH,
                "Health-check rows waiting to be written: queued, or held while the database fails.",
            )
            .expect(valid),
            write_errors: IntCounterVec::new(
                Opts::new(
                    names::STORE_WRITE_ERRORS_TOTAL,
                    "Failed database writes of health checks (each a failed batch, retried), by kind: full, read_only, locked, file_gone, io_error, other.",
                ),
                &[names::LABEL_KIND],
            )
            .expect(valid),
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
