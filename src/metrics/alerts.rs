//! The alert manager: every alert notice by level, rule, channel and result, and the alerts firing now.

use prometheus::{IntCounterVec, IntGaugeVec, Registry};

use crate::metrics::catalog;
use crate::records::AlertLevel;

/// What became of one notice on one channel (the `result` label of `alerts_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertResult {
    /// Delivered (for `log`: written).
    Sent,
    /// One attempt failed; it will be retried.
    Retried,
    /// Every attempt failed: kept as a dead letter.
    DeadLetter,
    /// Not sent: a later notice of the same alert to the same channel replaced it while it waited.
    Superseded,
    /// Not sent: the channel's queue was full and this was its oldest notice; kept as a dead letter.
    Dropped,
    /// Not sent: a repeat within the rule's cooldown (channel `none`).
    Suppressed,
    /// Not sent: held back while a critical alert of the same target fires (channel `none`).
    Inhibited,
}

impl AlertResult {
    pub const ALL: [AlertResult; 5] = [
        Self::Sent,
        Self::Retried,
        Self::DeadLetter,
        Self::Suppressed,
        Self::Inhibited,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sent => "sent",
            Self::Retried => "retried",
            Self::DeadLetter => "dead_letter",
            Self::Superseded => "superseded",
            Self::Dropped => "dropped",
            Self::Suppressed => "suppressed",
            Self::Inhibited => "inhibited",
        }
    }
}

/// The `channel` label of a notice that reached no channel.
pub const NO_CHANNEL: &str = "none";

#[derive(Debug, Clone)]
pub struct AlertMetrics {
    total: IntCounterVec,
    active: IntGaugeVec,
}

impl AlertMetrics {
    pub fn register(registry: &Registry) -> Self {
        let total = catalog::ALERTS_TOTAL_DEF.int_counter_vec();
        let active = catalog::ALERTS_ACTIVE_DEF.int_gauge_vec();
        for collector in [
            Box::new(total.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(active.clone()),
        ] {
            registry
                .register(collector)
                .expect("metric names are unique");
        }
        // Every level is exported from the start, so a dashboard shows 0 rather than no data.
        for level in AlertLevel::ALL {
            active.with_label_values(&[level.as_str()]).set(0);
        }
        Self { total, active }
    }

    /// Creates at 0 the notice series of every rule in force, on the channels it reaches (catalog:
    /// `alerts_total`), so the first notice is an increase Prometheus can see.
    pub fn start_series(&self, known: &catalog::StartLabels) {
        for labels in catalog::ALERTS_TOTAL_DEF.series_at_start(None, known) {
            self.total.with_label_values(&labels);
        }
    }

    pub fn notice(&self, level: AlertLevel, rule: &str, channel: &str, result: AlertResult) {
        self.total
            .with_label_values(&[level.as_str(), rule, channel, result.as_str()])
            .inc();
    }

    pub fn set_active(&self, level: AlertLevel, firing: usize) {
        self.active
            .with_label_values(&[level.as_str()])
            .set(i64::try_from(firing).unwrap_or(i64::MAX));
    }

    /// Notices so far for one (level, rule, channel, result).
    pub fn count(&self, level: AlertLevel, rule: &str, channel: &str, result: AlertResult) -> u64 {
        self.total
            .with_label_values(&[level.as_str(), rule, channel, result.as_str()])
            .get()
    }
}
