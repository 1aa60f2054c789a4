//! Auto-heal and supervised children: restarts by cause, heal attempts by outcome, children running.

use prometheus::{IntCounterVec, IntGaugeVec, Registry};

use crate::metrics::catalog;
use crate::records::HealOutcome;

/// Why a target was restarted (the `cause` label of `restarts_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartCause {
    /// Its supervised child exited by itself and hale started it again.
    Exited,
    /// Auto-heal (or a manual heal) restarted it.
    Heal,
    /// hale started it again after the run before ended uncleanly (killed or crashed): the child died with
    /// that run, so this start is a restart too.
    HaleRestart,
}

impl RestartCause {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Exited => "exited",
            Self::Heal => "heal",
            Self::HaleRestart => "hale_restart",
        }
    }
}

#[derive(Debug, Clone)]
pub struct HealMetrics {
    restarts: IntCounterVec,
    attempts: IntCounterVec,
    children_running: IntGaugeVec,
}

impl HealMetrics {
    /// Registers the collectors on the Health Proxy's registry, where the targets are.
    pub fn register(registry: &Registry) -> Self {
        let restarts = catalog::RESTARTS_TOTAL_DEF.int_counter_vec();
        let attempts = catalog::HEAL_ATTEMPTS_TOTAL_DEF.int_counter_vec();
        let children_running = catalog::CHILD_RUNNING_DEF.int_gauge_vec();
        for collector in [
            Box::new(restarts.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(attempts.clone()),
            Box::new(children_running.clone()),
        ] {
            registry
                .register(collector)
                .expect("metric names are unique");
        }
        Self {
            restarts,
            attempts,
            children_running,
        }
    }

    /// Creates a target's restart series at 0, so the first restart is an increase Prometheus can see (a
    /// series that appears at 1 has no earlier sample to grow from).
    pub fn restarts_known(&self, target: &str, causes: &[RestartCause]) {
        for cause in causes {
            self.restarts.with_label_values(&[target, cause.as_str()]);
        }
    }

    /// Creates at 0 the heal-attempt series of every target hale can heal, by outcome (catalog:
    /// `heal_attempts_total`).
    pub fn start_series(&self, known: &catalog::StartLabels) {
        for labels in catalog::HEAL_ATTEMPTS_TOTAL_DEF.series_at_start(None, known) {
            self.attempts.with_label_values(&labels);
        }
    }

    pub fn restarted(&self, target: &str, cause: RestartCause) {
        self.restarts
            .with_label_values(&[target, cause.as_str()])
            .inc();
    }

    pub fn heal_attempt(&self, target: &str, outcome: HealOutcome) {
        self.attempts
            .with_label_values(&[target, outcome.as_str()])
            .inc();
    }

    pub fn child_running(&self, target: &str, running: bool) {
        self.children_running
            .with_label_values(&[target])
            .set(i64::from(running));
    }

    /// Restarts of one target by one cause so far.
    pub fn restart_count(&self, target: &str, cause: RestartCause) -> u64 {
        self.restarts
            .with_label_values(&[target, cause.as_str()])
            .get()
    }
}
