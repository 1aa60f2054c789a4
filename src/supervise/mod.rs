//! Supervised children: hale starts the targets that have a `run` block, restarts them when they exit and
//! stops them on shutdown.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::config::Config;
use crate::events::EventBus;
use crate::metrics::HealMetrics;
use crate::store::Store;
use crate::worker::Worker;

#[derive(Debug, thiserror::Error)]
pub enum SuperviseError {
    #[error("target {0} has no supervised child")]
    NoChild(String),
    #[error("cannot start the child of {target}: {reason}")]
    Spawn { target: String, reason: String },
}

#[derive(Debug)]
pub struct Supervisor {
    #[allow(dead_code)]
    store: Store,
    #[allow(dead_code)]
    events: EventBus,
    #[allow(dead_code)]
    clock: Arc<dyn Clock>,
    #[allow(dead_code)]
    metrics: HealMetrics,
}

impl Supervisor {
    pub fn new(
        _config: &Config,
        store: Store,
        events: EventBus,
        clock: Arc<dyn Clock>,
        metrics: HealMetrics,
    ) -> Self {
        Self {
            store,
            events,
            clock,
            metrics,
        }
    }

    /// True when `target` has a `run` block.
    pub fn supervises(&self, _target: &str) -> bool {
        false
    }

    /// Stops the child of `target` (stop signal, wait, then kill its process group) and starts it again at
    /// once, with cause `heal`; its backoff starts over.
    pub async fn restart(&self, target: &str) -> Result<(), SuperviseError> {
        Err(SuperviseError::NoChild(target.to_owned()))
    }

    /// The exit code of the child's last exit by itself, if it exited with one and has not run since.
    pub fn last_exit_code(&self, _target: &str) -> Option<i32> {
        None
    }
}

impl Worker for Supervisor {
    fn name(&self) -> &'static str {
        "supervisor"
    }

    fn run(self: Arc<Self>, cancel: CancellationToken) -> BoxFuture<'static, ()> {
        Box::pin(async move { cancel.cancelled().await })
    }
}
