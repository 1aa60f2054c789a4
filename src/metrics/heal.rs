//! Auto-heal and supervised children: restarts by cause, heal attempts by outcome, children running.

use prometheus::{IntCounterVec, IntGaugeVec, Opts, Registry};

use crate::metrics::names;
use crate::records::HealOutcome;

/// Why a target was restarted (the `cause` label of `restarts_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartCause {
    /// Its supervised child exited by itself and hale started it again.
    Exited,
    /// Auto-heal (or a manual heal) restarted it.
    Heal,
}

impl RestartCause {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Exited => "exited",
            Self::Heal => "heal",
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
        let restarts = IntCounterVec::new(
            Opts::new(
                names::RESTARTS_TOTAL,
                "Restarts of a target, by cause: its supervised child exited, or a heal restarted it.",
            ),
            &[names::LABEL_TARGET, names::LABEL_CAUSE],
        )
        .expect("static metric definition is valid");
        let attempts = IntCounterVec::new(
            Opts::new(
                names::HEAL_ATTEMPTS_TOTAL,
                "Heal attempts of a target, by outcome (healed, failed, or the protection that skipped it).",
            ),
            &[names::LABEL_TARGET, names::LABEL_OUTCOME],
        )
        .expect("static metric definition is valid");
        let children_running = IntGaugeVec::new(
            Opts::new(
                names::CHILD_RUNNING,
                "1 while the supervised child of a target runs, else 0.",
            ),
            &[names::LABEL_TARGET],
        )
        .expect("static metric definition is valid");
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
