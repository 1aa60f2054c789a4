//! Events: the monitor publishes what it finds (a check finished, a breaker moved), the supervisor what its
//! children do, auto-heal every attempt, on a broadcast channel that any number of subscribers follow:
//! auto-heal, alerts and SLO burn rates. Publishing never
//! waits. A subscriber that falls behind skips the oldest events; the loss is counted in
//! `events_lagged_total{subscriber}` and logged once per episode, and probing goes on at full speed.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::broadcast;

use crate::breaker::{BreakerState, TransitionReason};
use crate::metrics::EventMetrics;
use crate::records::{CheckSource, ChildStartCause, HealRecord, Outcome};

/// Events kept for a subscriber that is behind; older ones are skipped (and counted) past this.
pub const EVENT_BUFFER: usize = 8192;

/// Something the monitor found.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    CheckFinished(CheckFinished),
    BreakerMoved(BreakerMoved),
    /// A supervised child was started (first start or restart).
    ChildStarted(ChildStarted),
    /// A supervised child exited (by itself, or stopped by hale).
    ChildExited(ChildExited),
    /// A heal attempt ended (including the ones a protection skipped), as stored.
    Healed(HealRecord),
}

/// A supervised child was started.
#[derive(Debug, Clone, PartialEq)]
pub struct ChildStarted {
    pub target: Arc<str>,
    pub pid: u32,
    pub cause: ChildStartCause,
    pub at: DateTime<Utc>,
}

/// A supervised child exited.
#[derive(Debug, Clone, PartialEq)]
pub struct ChildExited {
    pub target: Arc<str>,
    pub pid: u32,
    /// Its exit code, when it exited by itself.
    pub code: Option<i32>,
    /// The signal that ended it, when one did.
    pub signal: Option<i32>,
    /// Stopped by hale (shutdown or a heal), not by itself.
    pub stopped: bool,
    pub at: DateTime<Utc>,
}

/// One check of one target, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckFinished {
    pub target: Arc<str>,
    pub outcome: Outcome,
    pub http_status: Option<u16>,
    /// None when no check was made (an open breaker).
    pub latency: Option<Duration>,
    /// Who asked: the scheduled monitor or an on-demand request.
    pub source: CheckSource,
    pub at: DateTime<Utc>,
}

/// A target's circuit breaker changed state.
#[derive(Debug, Clone, PartialEq)]
pub struct BreakerMoved {
    pub target: Arc<str>,
    pub from: BreakerState,
    pub to: BreakerState,
    pub reason: TransitionReason,
    pub at: DateTime<Utc>,
    /// When an open breaker lets the next trial through.
    pub retry_at: Option<DateTime<Utc>>,
}

/// The publishing side; cheap to clone.
#[derive(Debug, Clone)]
pub struct EventBus {
    tx: broadcast::Sender<Arc<Event>>,
    metrics: EventMetrics,
}

impl EventBus {
    pub fn new(metrics: EventMetrics) -> Self {
        let (tx, _) = broadcast::channel(EVENT_BUFFER);
        Self { tx, metrics }
    }

    /// Hands the event to every subscriber; never waits, whatever they do.
    pub fn publish(&self, event: Event) {
        // An error only means that nobody subscribes right now.
        let _ = self.tx.send(Arc::new(event));
    }

    /// Follows every event published from now on. `name` labels the lag metric and log lines.
    pub fn subscribe(&self, name: &'static str) -> Subscription {
        Subscription {
            rx: self.tx.subscribe(),
            name,
            metrics: self.metrics.clone(),
            behind: false,
        }
    }
}

/// One subscriber's view of the events.
#[derive(Debug)]
pub struct Subscription {
    rx: broadcast::Receiver<Arc<Event>>,
    name: &'static str,
    metrics: EventMetrics,
    behind: bool,
}

impl Subscription {
    /// The next event; `None` once the bus is gone. Events skipped because this subscriber fell behind are
    /// counted and logged, not returned.
    pub async fn recv(&mut self) -> Option<Arc<Event>> {
        loop {
            match self.rx.recv().await {
                Ok(event) => {
                    if self.behind && self.rx.is_empty() {
                        self.behind = false;
                        tracing::info!(subscriber = self.name, "event subscriber caught up");
                    }
                    return Some(event);
                }
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    self.metrics.lagged(self.name, missed);
                    if !self.behind {
                        self.behind = true;
                        tracing::warn!(
                            subscriber = self.name,
                            missed,
                            "an event subscriber fell behind; the oldest events were skipped"
                        );
                    }
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(i: u32) -> Event {
        Event::CheckFinished(CheckFinished {
            target: Arc::from(format!("t{i}")),
            outcome: Outcome::Up,
            http_status: Some(200),
            latency: Some(Duration::from_millis(u64::from(i))),
            source: CheckSource::Monitor,
            at: DateTime::<Utc>::UNIX_EPOCH,
        })
    }

    #[tokio::test]
    async fn every_subscriber_sees_every_event_in_order() {
        let bus = EventBus::new(EventMetrics::register(&crate::metrics::Registry::new()));
        let mut a = bus.subscribe("a");
        let mut b = bus.subscribe("b");
        for i in 0..3 {
            bus.publish(check(i));
        }
        for sub in [&mut a, &mut b] {
            for i in 0..3 {
                assert_eq!(*sub.recv().await.unwrap(), check(i));
            }
        }
    }

    #[tokio::test]
    async fn a_slow_subscriber_never_blocks_the_publisher_and_its_loss_is_counted() {
        let metrics = EventMetrics::register(&crate::metrics::Registry::new());
        let bus = EventBus::new(metrics.clone());
        let mut slow = bus.subscribe("slow");
        let extra = 100;
        for i in 0..(EVENT_BUFFER as u32 + extra) {
            bus.publish(check(i));
        }
        // The oldest `extra` events were skipped; the rest arrive in order.
        assert_eq!(*slow.recv().await.unwrap(), check(extra));
        assert_eq!(metrics.lagged_count("slow"), u64::from(extra));
    }
}
