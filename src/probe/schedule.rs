//! The monitor as a background `Worker`: one probe loop per target at its interval (the first probe at a
//! random point of the interval, so targets do not all fire at once) and the score gauge. Both tick on the
//! monitor's `Clock`, so a test moves them with a `ManualClock`.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use rand::Rng;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::clock::Ticker;
use crate::probe::{Monitor, Target};
use crate::records::CheckSource;
use crate::worker::Worker;

/// How often the health-score gauge is recomputed from the latest results.
const SCORE_REFRESH: Duration = Duration::from_secs(1);

impl Worker for Monitor {
    fn name(&self) -> &'static str {
        "monitor"
    }

    fn run(self: Arc<Self>, cancel: CancellationToken) -> BoxFuture<'static, ()> {
        // The schedule starts now, when the worker is started, not when its task first runs.
        let started = self.clock.now();
        Box::pin(async move {
            let mut loops = JoinSet::new();
            if self.background {
                for target in &self.targets {
                    loops.spawn(
                        self.clone()
                            .probe_loop(target.clone(), started, cancel.clone()),
                    );
                }
            }
            loops.spawn(self.clone().score_loop(started, cancel.clone()));
            // Each loop ends once cancelled and its probe in flight (if any) is stored.
            while let Some(ended) = loops.join_next().await {
                if let Err(e) = ended {
                    tracing::error!(error = %e, "a monitor loop failed");
                }
            }
        })
    }
}

impl Monitor {
    async fn probe_loop(
        self: Arc<Self>,
        target: Arc<Target>,
        started: DateTime<Utc>,
        cancel: CancellationToken,
    ) {
        let interval = target.config.interval();
        let first = interval.mul_f64(rand::rng().random_range(0.0..1.0));
        let mut ticker = Ticker::from(self.clock.clone(), started, first, interval);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = ticker.tick() => {}
            }
            // Waiting for a probe slot ends with cancellation; a probe that has started finishes (within
            // its timeout) and is stored.
            if self
                .check_until(&target, CheckSource::Monitor, Some(&cancel))
                .await
                .is_none()
            {
                break;
            }
        }
    }

    async fn score_loop(self: Arc<Self>, started: DateTime<Utc>, cancel: CancellationToken) {
        let mut ticker = Ticker::from(self.clock.clone(), started, Duration::ZERO, SCORE_REFRESH);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = ticker.tick() => self.metrics.set_score(self.current_score()),
            }
        }
    }
}
