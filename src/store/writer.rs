//! The batching writer: every high-rate record goes through one task that writes a batch per transaction,
//! flushed when the batch is full or at least every `flush_interval`, and drained on shutdown.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sqlx::pool::PoolConnection;
use sqlx::{Connection, Sqlite};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::probe::CheckRecord;
use crate::store::rollups::{self, RollupCache};
use crate::store::{health_checks, Store};

/// Records waiting in the queue before `submit` applies backpressure.
const QUEUE_CAPACITY: usize = 65_536;
/// A failed batch is retried this many times before it is dropped (and counted).
const WRITE_ATTEMPTS: u32 = 3;

#[derive(Debug, Clone, Copy)]
pub struct WriterSettings {
    pub flush_interval: Duration,
    pub batch_size: usize,
}

/// Counters shared between the writer task and whoever reports on it.
#[derive(Debug, Default)]
pub struct WriterStats {
    pub written: AtomicU64,
    pub batches: AtomicU64,
    pub dropped: AtomicU64,
    pub failed_batches: AtomicU64,
}

#[derive(Debug, thiserror::Error)]
#[error("the check writer has shut down; the record was not stored")]
pub struct WriterClosed;

/// The sending side, cloned into every producer.
#[derive(Debug, Clone)]
pub struct CheckWriter {
    tx: mpsc::Sender<CheckRecord>,
    stats: Arc<WriterStats>,
}

impl CheckWriter {
    /// Queues a record, waiting for room when the queue is full.
    pub async fn submit(&self, record: CheckRecord) -> Result<(), WriterClosed> {
        self.tx.send(record).await.map_err(|_| WriterClosed)
    }

    pub fn stats(&self) -> &WriterStats {
        &self.stats
    }

    /// Records queued but not yet written.
    pub fn queued(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    pub fn is_running(&self) -> bool {
        !self.tx.is_closed()
    }
}

/// Owns the writer task; `shutdown` writes everything queued, then returns.
#[derive(Debug)]
pub struct WriterHandle {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl WriterHandle {
    pub async fn shutdown(self) {
        self.stop.cancel();
        if let Err(e) = self.task.await {
            tracing::error!(error = %e, "check writer task failed");
        }
    }
}

/// Starts the writer task on the current runtime.
pub fn spawn(store: Store, settings: WriterSettings) -> (CheckWriter, WriterHandle) {
    let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
    let stats = Arc::new(WriterStats::default());
    let stop = CancellationToken::new();
    let task = tokio::spawn(run(store, settings, rx, stats.clone(), stop.clone()));
    (CheckWriter { tx, stats }, WriterHandle { stop, task })
}

async fn run(
    store: Store,
    settings: WriterSettings,
    mut rx: mpsc::Receiver<CheckRecord>,
    stats: Arc<WriterStats>,
    stop: CancellationToken,
) {
    let batch_size = settings.batch_size.max(1);
    let mut batch = Vec::with_capacity(batch_size);
    let mut sink = BatchSink::new(store);
    loop {
        let received = tokio::select! {
            _ = stop.cancelled() => break,
            n = rx.recv_many(&mut batch, batch_size) => n,
        };
        if received == 0 {
            break; // every sender is gone
        }
        // Gather more until the batch is full or the oldest record has waited a flush interval.
        let deadline = Instant::now() + settings.flush_interval;
        while batch.len() < batch_size {
            let room = batch_size - batch.len();
            match tokio::time::timeout_at(deadline, rx.recv_many(&mut batch, room)).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        sink.write(&mut batch, &stats).await;
    }

    // Shutdown: accept nothing new, write what is queued.
    rx.close();
    loop {
        if rx.recv_many(&mut batch, batch_size).await == 0 {
            break;
        }
        sink.write(&mut batch, &stats).await;
    }
    tracing::info!(
        written = stats.written.load(Ordering::Relaxed),
        dropped = stats.dropped.load(Ordering::Relaxed),
        "check writer drained"
    );
}

/// Where batches go: one pooled connection kept for the writer's life, so its page cache stays warm (another
/// connection would start cold after every write), and the rollup cache that goes with it.
struct BatchSink {
    store: Store,
    conn: Option<PoolConnection<Sqlite>>,
    rollups: RollupCache,
}

impl BatchSink {
    fn new(store: Store) -> Self {
        Self {
            store,
            conn: None,
            rollups: RollupCache::default(),
        }
    }

    async fn write(&mut self, batch: &mut Vec<CheckRecord>, stats: &WriterStats) {
        for attempt in 1..=WRITE_ATTEMPTS {
            let written = self.write_once(batch).await;
            if written.is_err() {
                // The transaction rolled back: the cache is ahead of the database, and the connection may be bad.
                self.rollups.invalidate();
                self.conn = None;
            }
            match written {
                Ok(()) => {
                    stats
                        .written
                        .fetch_add(batch.len() as u64, Ordering::Relaxed);
                    stats.batches.fetch_add(1, Ordering::Relaxed);
                    batch.clear();
                    return;
                }
                Err(e) if attempt < WRITE_ATTEMPTS => {
                    tracing::warn!(error = %e, attempt, rows = batch.len(), "writing a batch of checks failed; retrying");
                    tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt))).await;
                }
                Err(e) => {
                    tracing::error!(error = %e, rows = batch.len(), "writing a batch of checks failed; the batch is dropped");
                }
            }
        }
        stats.failed_batches.fetch_add(1, Ordering::Relaxed);
        stats
            .dropped
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        batch.clear();
    }

    async fn write_once(&mut self, batch: &[CheckRecord]) -> Result<(), sqlx::Error> {
        let conn = match &mut self.conn {
            Some(conn) => conn,
            None => self.conn.insert(self.store.pool().acquire().await?),
        };
        let mut tx = conn.begin().await?;
        health_checks::insert_batch(&mut tx, batch).await?;
        rollups::merge_batch(&mut tx, &mut self.rollups, batch).await?;
        tx.commit().await
    }
}
