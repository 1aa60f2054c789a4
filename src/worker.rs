//! One shape for background work. Every subsystem that runs in the background (the monitor, retention, the
//! database file watch, and later heal, alerts and the SLO refresher) is a `Worker`: `app.rs` spawns a list
//! of them and, at shutdown, stops them one by one in list order, so producers stop before what they feed.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub trait Worker: Send + Sync + 'static {
    /// A short name for the logs.
    fn name(&self) -> &'static str;

    /// Runs until `cancel` fires. Work already started (a probe in flight) finishes before it returns.
    fn run(self: Arc<Self>, cancel: CancellationToken) -> BoxFuture<'static, ()>;
}

/// Workers running on the current runtime, each with its own cancellation.
#[derive(Default)]
pub struct Workers {
    running: Vec<(&'static str, CancellationToken, JoinHandle<()>)>,
}

impl Workers {
    /// Starts every worker, in order.
    pub fn spawn(workers: Vec<Arc<dyn Worker>>) -> Self {
        let running = workers
            .into_iter()
            .map(|worker| {
                let cancel = CancellationToken::new();
                let name = worker.name();
                let task = tokio::spawn(worker.run(cancel.clone()));
                (name, cancel, task)
            })
            .collect();
        Self { running }
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.running.iter().map(|(name, _, _)| *name).collect()
    }

    /// Stops the workers one by one, in the order they were started, each finishing what it started.
    pub async fn stop(self) {
        for (name, cancel, task) in self.running {
            tracing::info!(worker = name, "stopping background worker");
            cancel.cancel();
            if let Err(e) = task.await {
                tracing::error!(worker = name, error = %e, "background worker failed");
            }
        }
    }
}
