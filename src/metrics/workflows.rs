//! The Boss API's workflow metrics: runs started and finished, their duration, step attempts, and the
//! gauges of the queue (runs in progress, queued, waiting for an approval).

use std::time::Duration;

use prometheus::{HistogramVec, IntCounterVec, IntGauge, Registry};

use crate::metrics::catalog;
use crate::records::{AttemptState, RunState};

/// Buckets of a run's duration, in seconds: from a one-step run to a day-long approval.
pub const RUN_BUCKETS: [f64; 12] = [
    0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0, 60.0, 300.0, 1800.0, 3600.0, 86400.0,
];

/// Step kinds, the `kind` label of `workflow_step_attempts_total`.
pub const STEP_KINDS: [&str; 8] = [
    "http",
    "wait_healthy",
    "command",
    "sleep",
    "heal",
    "mcp_tool",
    "notify",
    "approval",
];

/// The ends of a step's attempt, the `outcome` label of `workflow_step_attempts_total`.
pub const ATTEMPT_OUTCOMES: [AttemptState; 3] = [
    AttemptState::Succeeded,
    AttemptState::Failed,
    AttemptState::Interrupted,
];

#[derive(Debug, Clone)]
pub struct WorkflowMetrics {
    started: IntCounterVec,
    finished: IntCounterVec,
    duration: HistogramVec,
    attempts: IntCounterVec,
    active: IntGauge,
    queued: IntGauge,
    approvals: IntGauge,
}

impl WorkflowMetrics {
    /// Registers the collectors on the Boss API's registry, with the catalog's series at 0 from start: every
    /// workflow of the config (started, and finished in each final state) and, when there is one, every step
    /// kind and outcome, so that a rate over them reads 0 rather than nothing before the first run.
    pub fn register(registry: &Registry, workflows: &[&str]) -> Self {
        let metrics = Self {
            started: catalog::WORKFLOW_RUNS_STARTED_TOTAL_DEF.int_counter_vec(),
            finished: catalog::WORKFLOW_RUNS_FINISHED_TOTAL_DEF.int_counter_vec(),
            duration: catalog::WORKFLOW_RUN_DURATION_SECONDS_DEF.histogram_vec(&RUN_BUCKETS),
            attempts: catalog::WORKFLOW_STEP_ATTEMPTS_TOTAL_DEF.int_counter_vec(),
            active: catalog::WORKFLOW_RUNS_ACTIVE_DEF.int_gauge(),
            queued: catalog::WORKFLOW_QUEUE_DEPTH_DEF.int_gauge(),
            approvals: catalog::WORKFLOW_APPROVALS_WAITING_DEF.int_gauge(),
        };
        let collectors: [Box<dyn prometheus::core::Collector>; 7] = [
            Box::new(metrics.started.clone()),
            Box::new(metrics.finished.clone()),
            Box::new(metrics.duration.clone()),
            Box::new(metrics.attempts.clone()),
            Box::new(metrics.active.clone()),
            Box::new(metrics.queued.clone()),
            Box::new(metrics.approvals.clone()),
        ];
        for collector in collectors {
            // Each name is a distinct constant, registered once per registry.
            registry
                .register(collector)
                .expect("metric names are unique");
        }
        let known = catalog::StartLabels {
            workflows: workflows.iter().map(|w| (*w).to_owned()).collect(),
            ..catalog::StartLabels::default()
        };
        for (def, vec) in [
            (catalog::WORKFLOW_RUNS_STARTED_TOTAL_DEF, &metrics.started),
            (catalog::WORKFLOW_RUNS_FINISHED_TOTAL_DEF, &metrics.finished),
            (catalog::WORKFLOW_STEP_ATTEMPTS_TOTAL_DEF, &metrics.attempts),
        ] {
            for labels in def.series_at_start(None, &known) {
                vec.with_label_values(&labels);
            }
        }
        metrics
    }

    pub fn run_started(&self, workflow: &str) {
        self.started.with_label_values(&[workflow]).inc();
    }

    /// A run ended in `state`, `took` after it was accepted.
    pub fn run_finished(&self, workflow: &str, state: RunState, took: Duration) {
        self.finished
            .with_label_values(&[workflow, state.as_str()])
            .inc();
        self.duration
            .with_label_values(&[workflow])
            .observe(took.as_secs_f64());
    }

    /// An attempt of a step of `kind` ended.
    pub fn attempt(&self, kind: &str, outcome: AttemptState) {
        self.attempts
            .with_label_values(&[kind, outcome.as_str()])
            .inc();
    }

    /// The queue as the store counts it.
    pub fn queue(&self, in_progress: u64, queued: u64, approvals_waiting: u64) {
        let gauge = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        self.active.set(gauge(in_progress));
        self.queued.set(gauge(queued));
        self.approvals.set(gauge(approvals_waiting));
    }
}
