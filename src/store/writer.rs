//! The batching writer: every high-rate record (health checks, and the MCP bridge's tool calls) goes through one task that writes a batch per transaction,
//! flushed when the batch is full or at least every `flush_interval`, and drained on shutdown. A flush stages
//! its checks in `checks_recent`; at least every `settle_interval` (and at shutdown) the writer settles them
//! into `checks` and the hourly rollups (`settle.rs`).
//!
//! A row counts as written only once its transaction committed. When a write fails (disk full, read-only,
//! locked, the file deleted) the connection is closed, never handed back to the pool, and the rows stay in
//! memory, up to `MAX_HELD_ROWS`, while the writer retries with backoff; past that bound newer rows are dropped
//! and counted. When the database takes writes again, everything held is written and the writer goes on.
//! One ERROR line when a failure starts (or changes kind), one INFO line when writes recover.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::pool::PoolConnection;
use sqlx::{Connection, Sqlite};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;
use crate::metrics::WriterMetrics;
use crate::records::{CheckRecord, ToolCallRecord};
use crate::store::health_checks::IdCache;
use crate::store::status::{StoreProblem, WriteErrorKind};
use crate::store::{health_checks, raw, settle, tool_calls, txn, Store};

/// Records waiting in the queue before `submit` applies backpressure.
const QUEUE_CAPACITY: usize = 65_536;
/// Rows held in memory while the database cannot take them. About 200 bytes each: at most ~20 MB.
pub const MAX_HELD_ROWS: usize = 100_000;
/// Staged checks are settled once this many wait, whatever the settle interval, so a settle stays a
/// transaction of a few seconds at most and a bulk load (`hale history generate`) settles as it goes.
pub const SETTLE_MAX_ROWS: usize = 250_000;
/// The longest wait between two attempts while writes fail.
const RETRY_MAX: Duration = Duration::from_secs(5);
/// The first retry after a failed write waits 250 ms; each further failure doubles it, up to `RETRY_MAX`.
/// On tokio's time, not the `Clock`: the wait is about the disk, not the schedule.
const RETRY: Backoff = Backoff::new(Duration::from_millis(250), RETRY_MAX);

#[derive(Debug, Clone, Copy)]
pub struct WriterSettings {
    pub flush_interval: Duration,
    pub batch_size: usize,
    /// Staged checks are settled at least this often (zero: after every flush).
    pub settle_interval: Duration,
}

/// Counters shared between the writer task and whoever reports on it.
#[derive(Debug, Default)]
pub struct WriterStats {
    /// Rows in committed transactions.
    pub written: AtomicU64,
    /// Committed transactions.
    pub batches: AtomicU64,
    /// Rows given up on: past `MAX_HELD_ROWS` while the database failed, or still unwritten at shutdown.
    pub dropped: AtomicU64,
    /// Write attempts that failed (each is retried).
    pub failed_batches: AtomicU64,
    /// Rows received and held until they are written.
    held: AtomicU64,
    /// The check time (epoch ms) of the first row held, in the order rows arrived; 0 when none is held.
    first_held_ms: AtomicI64,
    /// The check time (epoch ms) of the oldest row staged and not settled; 0 when none is.
    first_unsettled_ms: AtomicI64,
    /// Failed write attempts by `WriteErrorKind`, in `WriteErrorKind::ALL` order.
    errors: [AtomicU64; WriteErrorKind::ALL.len()],
}

impl WriterStats {
    /// Failed write attempts of one kind.
    pub fn errors(&self, kind: WriteErrorKind) -> u64 {
        self.errors[kind_index(kind)].load(Ordering::Relaxed)
    }

    /// The check time of the first row the writer holds unwritten (rows arrive as checks finish, so a row
    /// held behind it was made at most one probe timeout earlier); None when it holds none. Rows still in
    /// the queue are not counted: the writer takes them within a flush interval, even while writes fail.
    pub fn first_unwritten(&self) -> Option<DateTime<Utc>> {
        match self.first_held_ms.load(Ordering::Relaxed) {
            0 => None,
            ms => DateTime::from_timestamp_millis(ms),
        }
    }

    /// The check time of the oldest row written and not yet settled into `checks` and the rollups; None when
    /// every written row is settled.
    pub fn first_unsettled(&self) -> Option<DateTime<Utc>> {
        match self.first_unsettled_ms.load(Ordering::Relaxed) {
            0 => None,
            ms => DateTime::from_timestamp_millis(ms),
        }
    }

    fn staged(&self, batch: &[Row]) {
        if let Some(oldest) = batch
            .iter()
            .filter_map(Row::check)
            .map(|r| r.checked_at.timestamp_millis().max(1))
            .min()
        {
            let _ =
                self.first_unsettled_ms
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |now| {
                        Some(if now == 0 { oldest } else { now.min(oldest) })
                    });
        }
    }

    fn count_error(&self, kind: WriteErrorKind) {
        self.failed_batches.fetch_add(1, Ordering::Relaxed);
        self.errors[kind_index(kind)].fetch_add(1, Ordering::Relaxed);
    }
}

fn kind_index(kind: WriteErrorKind) -> usize {
    WriteErrorKind::ALL
        .iter()
        .position(|k| *k == kind)
        .unwrap_or(WriteErrorKind::ALL.len() - 1)
}

#[derive(Debug, thiserror::Error)]
#[error("the check writer has shut down; the record was not stored")]
pub struct WriterClosed;

/// What the writer stores: health checks, and the calls of MCP tools through the bridge.
#[derive(Debug)]
enum Row {
    Check(CheckRecord),
    /// Boxed: a call is rare beside checks, and the box keeps every held row the size of a check.
    ToolCall(Box<ToolCallRecord>),
}

impl Row {
    fn check(&self) -> Option<&CheckRecord> {
        match self {
            Self::Check(check) => Some(check),
            Self::ToolCall(_) => None,
        }
    }

    fn at(&self) -> DateTime<Utc> {
        match self {
            Self::Check(check) => check.checked_at,
            Self::ToolCall(call) => call.at,
        }
    }
}

/// The sending side, cloned into every producer.
#[derive(Debug, Clone)]
pub struct CheckWriter {
    tx: mpsc::Sender<Row>,
    stats: Arc<WriterStats>,
}

impl CheckWriter {
    /// Queues a check, waiting for room when the queue is full.
    pub async fn submit(&self, record: CheckRecord) -> Result<(), WriterClosed> {
        self.tx
            .send(Row::Check(record))
            .await
            .map_err(|_| WriterClosed)
    }

    /// Queues the record of a tool call, waiting for room when the queue is full.
    pub async fn submit_tool_call(&self, record: ToolCallRecord) -> Result<(), WriterClosed> {
        self.tx
            .send(Row::ToolCall(Box::new(record)))
            .await
            .map_err(|_| WriterClosed)
    }

    pub fn stats(&self) -> &WriterStats {
        &self.stats
    }

    /// Records not yet written: queued, and held by the writer.
    pub fn queued(&self) -> usize {
        let in_queue = self.tx.max_capacity() - self.tx.capacity();
        in_queue + self.stats.held.load(Ordering::Relaxed) as usize
    }

    pub fn is_running(&self) -> bool {
        !self.tx.is_closed()
    }
}

/// What the writer did over its life, reported when it stops.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriterReport {
    pub written: u64,
    /// Rows dropped while running (the hold was full).
    pub dropped: u64,
    /// Rows still unwritten at shutdown because the database would not take them.
    pub unwritten: u64,
}

impl WriterReport {
    /// Rows that were handed to the writer and are not in the database.
    pub fn lost(&self) -> u64 {
        self.dropped + self.unwritten
    }
}

/// Owns the writer task; `shutdown` writes everything queued it can, then reports.
#[derive(Debug)]
pub struct WriterHandle {
    stop: CancellationToken,
    task: JoinHandle<WriterReport>,
}

impl WriterHandle {
    pub async fn shutdown(self) -> WriterReport {
        self.stop.cancel();
        match self.task.await {
            Ok(report) => report,
            Err(e) => {
                tracing::error!(error = %e, "check writer task failed");
                WriterReport::default()
            }
        }
    }
}

/// Starts the writer task on the current runtime; it keeps `metrics` up to date itself.
pub fn spawn(
    store: Store,
    settings: WriterSettings,
    metrics: WriterMetrics,
) -> (CheckWriter, WriterHandle) {
    let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
    let stats = Arc::new(WriterStats::default());
    let stop = CancellationToken::new();
    let observed = Observed {
        stats: stats.clone(),
        metrics,
    };
    let task = tokio::spawn(run(store, settings, rx, observed, stop.clone()));
    (CheckWriter { tx, stats }, WriterHandle { stop, task })
}

/// What the writer reports through: its own counters (for `WriterReport` and `/health`) and the metrics.
#[derive(Debug, Clone)]
struct Observed {
    stats: Arc<WriterStats>,
    metrics: WriterMetrics,
}

impl Observed {
    fn written(&self, rows: usize) {
        self.stats.written.fetch_add(rows as u64, Ordering::Relaxed);
        self.stats.batches.fetch_add(1, Ordering::Relaxed);
        self.metrics.written(rows as u64);
    }

    fn dropped(&self, rows: u64) {
        self.stats.dropped.fetch_add(rows, Ordering::Relaxed);
        self.metrics.dropped(rows);
    }

    fn failed(&self, kind: WriteErrorKind) {
        self.stats.count_error(kind);
        self.metrics.write_failed(kind.as_str());
    }

    fn held(&self, rows: usize, queued: usize, first: Option<&Row>) {
        self.stats.held.store(rows as u64, Ordering::Relaxed);
        let first_ms = first.map_or(0, |r| r.at().timestamp_millis().max(1));
        self.stats.first_held_ms.store(first_ms, Ordering::Relaxed);
        self.metrics.queued(rows + queued);
    }
}

async fn run(
    store: Store,
    settings: WriterSettings,
    mut rx: mpsc::Receiver<Row>,
    observed: Observed,
    stop: CancellationToken,
) -> WriterReport {
    let stats = observed.stats.clone();
    let batch_size = settings.batch_size.max(1);
    let mut received = Vec::with_capacity(batch_size);
    let mut pending = Pending::new(observed.clone());
    let mut sink = BatchSink::new(store, observed, settings.settle_interval);
    sink.settle(0).await;
    'serve: loop {
        if pending.is_empty() {
            let settle_at = sink.settle_at();
            let n = tokio::select! {
                _ = stop.cancelled() => break 'serve,
                _ = sleep_until(settle_at) => {
                    sink.settle(pending.len()).await;
                    continue 'serve;
                }
                n = rx.recv_many(&mut received, batch_size) => n,
            };
            if n == 0 {
                break 'serve; // every sender is gone
            }
            pending.extend(&mut received, rx.len());
        }
        // Gather until the batch is full or the oldest record has waited a flush interval; while the database
        // fails, keep taking records (so probes never wait on a broken disk) until the next retry.
        let failing = sink.retry_at();
        let deadline = failing.unwrap_or_else(|| Instant::now() + settings.flush_interval);
        while failing.is_some() || pending.len() < batch_size {
            let room = if failing.is_some() {
                batch_size
            } else {
                batch_size - pending.len()
            };
            let n = tokio::select! {
                _ = stop.cancelled() => break 'serve,
                n = tokio::time::timeout_at(deadline, rx.recv_many(&mut received, room)) => n,
            };
            match n {
                Ok(0) | Err(_) => break,
                Ok(_) => pending.extend(&mut received, rx.len()),
            }
        }
        if sink.write_front(&mut pending, batch_size).await
            && sink.settle_at().is_some_and(|at| at <= Instant::now())
        {
            sink.settle(pending.len()).await;
        }
    }

    // Shutdown: accept nothing new, write what is queued and held, as long as the database takes it.
    rx.close();
    while rx.recv_many(&mut received, batch_size).await > 0 {
        pending.extend(&mut received, rx.len());
    }
    while !pending.is_empty() {
        if !sink.write_front(&mut pending, batch_size).await {
            break;
        }
    }
    // What was staged is settled now, so a stopped hale leaves every check in `checks`; if the database
    // refuses, the next start settles it.
    if sink.settle_at().is_some() {
        sink.settle(pending.len()).await;
    }
    let unwritten = pending.len() as u64;
    // What the database never took is given up on: the metric counts it with the rows dropped while running.
    sink.observed.metrics.dropped(unwritten);
    let report = WriterReport {
        written: stats.written.load(Ordering::Relaxed),
        dropped: stats.dropped.load(Ordering::Relaxed),
        unwritten,
    };
    tracing::info!(
        written = report.written,
        dropped = report.dropped,
        unwritten = report.unwritten,
        "check writer drained"
    );
    if report.lost() > 0 {
        tracing::error!(
            dropped = report.dropped,
            unwritten = report.unwritten,
            "health checks were lost: the database did not take them"
        );
    }
    report
}

/// Rows received and not yet committed, bounded by `MAX_HELD_ROWS`.
struct Pending {
    rows: VecDeque<Row>,
    observed: Observed,
    /// Set while rows are being dropped, so the drop is logged once per episode.
    overflowing: bool,
}

impl Pending {
    fn new(observed: Observed) -> Self {
        Self {
            rows: VecDeque::new(),
            observed,
            overflowing: false,
        }
    }

    fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    fn len(&self) -> usize {
        self.rows.len()
    }

    /// Takes every record of `received`; those past the bound are dropped and counted. The oldest are kept:
    /// what is stored stays one unbroken stretch of history.
    /// `queued` is what still waits in the channel, for the queue gauge.
    fn extend(&mut self, received: &mut Vec<Row>, queued: usize) {
        let room = MAX_HELD_ROWS.saturating_sub(self.rows.len());
        if received.len() > room {
            let dropped = (received.len() - room) as u64;
            received.truncate(room);
            self.observed.dropped(dropped);
            if !self.overflowing {
                self.overflowing = true;
                tracing::error!(
                    held = self.rows.len(),
                    limit = MAX_HELD_ROWS,
                    "the database has not taken writes for a while and the in-memory hold is full; newer health checks are dropped and counted in store_rows_dropped_total"
                );
            }
        }
        self.rows.extend(received.drain(..));
        self.observed
            .held(self.rows.len(), queued, self.rows.front());
    }

    /// The oldest `n` rows, as one slice.
    fn front(&mut self, n: usize) -> &[Row] {
        let n = n.min(self.rows.len());
        &self.rows.make_contiguous()[..n]
    }

    fn remove_front(&mut self, n: usize) {
        self.rows.drain(..n.min(self.rows.len()));
        if self.rows.len() < MAX_HELD_ROWS {
            self.overflowing = false;
        }
        self.observed.held(self.rows.len(), 0, self.rows.front());
    }
}

/// A failure episode: from the first failed write until one succeeds.
struct Failing {
    kind: WriteErrorKind,
    attempts: u32,
    retry_at: Instant,
    since: Instant,
}

/// Where batches go: one pooled connection kept for the writer's life, so its page cache stays warm (another
/// connection would start cold after every write).
struct BatchSink {
    store: Store,
    observed: Observed,
    conn: Option<PoolConnection<Sqlite>>,
    ids: IdCache,
    failing: Option<Failing>,
    settle_interval: Duration,
    /// When the oldest staged batch not yet settled was written; None when everything is settled.
    unsettled_since: Option<Instant>,
    /// Rows staged since the last settle.
    unsettled_rows: usize,
    /// Set until the first settle committed: anything an earlier run left staged and `Store::open` could
    /// not settle joins the rest as soon as the database takes it (on an empty table it writes nothing).
    settle_at_start: bool,
}

impl BatchSink {
    fn new(store: Store, observed: Observed, settle_interval: Duration) -> Self {
        Self {
            store,
            observed,
            conn: None,
            ids: IdCache::default(),
            failing: None,
            settle_interval,
            unsettled_since: None,
            unsettled_rows: 0,
            settle_at_start: true,
        }
    }

    /// When the next attempt may be made, while writes are failing.
    fn retry_at(&self) -> Option<Instant> {
        self.failing.as_ref().map(|f| f.retry_at)
    }

    /// When the next settle is due: a settle interval after the oldest unsettled batch, and not before the
    /// next retry while writes fail. None when everything is settled.
    fn settle_at(&self) -> Option<Instant> {
        let due = match self.unsettled_since {
            _ if self.settle_at_start => Instant::now(),
            None => return None,
            Some(since) if self.unsettled_rows >= SETTLE_MAX_ROWS => since,
            Some(since) => since + self.settle_interval,
        };
        Some(self.retry_at().map_or(due, |retry| retry.max(due)))
    }

    /// Settles every staged check in one transaction. True when it committed.
    async fn settle(&mut self, held: usize) -> bool {
        let started = Instant::now();
        let (sqlite_before, _) = raw::sqlite_heap_bytes();
        match self.settle_once().await {
            Ok(settled) => {
                let (sqlite_after, sqlite_peak) = raw::sqlite_heap_bytes();
                self.unsettled_since = None;
                self.unsettled_rows = 0;
                self.settle_at_start = false;
                let stats = &self.observed.stats;
                stats.first_unsettled_ms.store(0, Ordering::Relaxed);
                tracing::debug!(
                    checks = settled.checks,
                    rollups = settled.rollups,
                    took_ms = started.elapsed().as_millis() as u64,
                    sqlite_heap_before_kb = sqlite_before / 1024,
                    sqlite_heap_peak_kb = sqlite_peak / 1024,
                    sqlite_heap_after_kb = sqlite_after / 1024,
                    "settled staged health checks"
                );
                self.recovered(held);
                true
            }
            Err((kind, message)) => {
                self.abandon_connection().await;
                self.observed.failed(kind);
                self.failed(kind, message, held);
                false
            }
        }
    }

    async fn settle_once(&mut self) -> Result<settle::Settled, (WriteErrorKind, String)> {
        let conn = connection(&self.store, &mut self.conn).await?;
        // IMMEDIATE: a settle reads before it writes, and a read transaction that another connection's commit
        // overtakes cannot become a write one (SQLITE_BUSY at once, not after the busy timeout).
        let mut tx = conn
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(sql_error)?;
        let settled = settle::settle(&mut tx).await.map_err(sql_error)?;
        tx.commit().await.map_err(sql_error)?;
        txn::confirm_committed(conn).await.map_err(sql_error)?;
        // A settle fills the writer's page cache (`storage.cache_mb` shared out) with leaves of `checks` and
        // the rollups that the next flushes do not touch (they append to `checks_recent`); kept, it is memory
        // held until the next settle. Given back, and what the settle freed (its sums, SQLite's sort) with it:
        // glibc would keep that in the arena of the thread that used it.
        // (Committed already: a connection that cannot be locked now only keeps its cache.)
        if let Ok(mut handle) = conn.lock_handle().await {
            raw::release_page_cache(&mut handle);
        }
        crate::process::release_free_memory();
        Ok(settled)
    }

    /// After a failed transaction: the connection may still be inside it, so it is closed rather than handed
    /// back to the pool, and ids it handed out may have been rolled back.
    async fn abandon_connection(&mut self) {
        self.ids.invalidate();
        if let Some(conn) = self.conn.take() {
            let _ = conn.close().await;
        }
    }

    /// Ends a failure episode, if one was going on.
    fn recovered(&mut self, held: usize) {
        if let Some(failing) = self.failing.take() {
            tracing::info!(
                kind = failing.kind.as_str(),
                failed_attempts = failing.attempts,
                failing_for_s = failing.since.elapsed().as_secs_f64(),
                held,
                "database writes recovered; held health checks are being written"
            );
        }
    }

    /// Writes the oldest rows (up to `batch_size`) in one transaction. True when they were committed.
    async fn write_front(&mut self, pending: &mut Pending, batch_size: usize) -> bool {
        let batch = pending.front(batch_size);
        let rows = batch.len();
        if rows == 0 {
            return true;
        }
        match self.write_once(batch).await {
            Ok(()) => {
                let written = &pending.front(rows)[..rows];
                // Only checks are staged for the settle; tool calls are stored as they are.
                let checks = written.iter().filter_map(Row::check).count();
                if checks > 0 {
                    self.observed.stats.staged(written);
                    self.unsettled_since.get_or_insert_with(Instant::now);
                    self.unsettled_rows += checks;
                }
                pending.remove_front(rows);
                self.observed.written(rows);
                self.store.status().committed(Utc::now());
                self.recovered(pending.len());
                true
            }
            Err((kind, message)) => {
                self.abandon_connection().await;
                self.observed.failed(kind);
                self.failed(kind, message, pending.len());
                false
            }
        }
    }

    fn failed(&mut self, kind: WriteErrorKind, message: String, held: usize) {
        let now = Instant::now();
        let (attempts, since, changed) = match &self.failing {
            Some(f) => (f.attempts + 1, f.since, f.kind != kind),
            None => (1, now, true),
        };
        let backoff = RETRY.delay(attempts - 1);
        self.failing = Some(Failing {
            kind,
            attempts,
            retry_at: now + backoff,
            since,
        });
        if changed {
            tracing::error!(
                kind = kind.as_str(),
                error = %message,
                held,
                hold_limit = MAX_HELD_ROWS,
                "cannot store health checks; holding them in memory and retrying"
            );
        }
        self.store.status().write_failed(StoreProblem {
            kind,
            message: format!(
                "cannot store health checks ({message}); {held} held in memory, retrying every {} s at most",
                RETRY_MAX.as_secs()
            ),
            since: Utc::now(),
        });
    }

    async fn write_once(&mut self, batch: &[Row]) -> Result<(), (WriteErrorKind, String)> {
        let checks: Vec<&CheckRecord> = batch.iter().filter_map(Row::check).collect();
        let calls: Vec<&ToolCallRecord> = batch
            .iter()
            .filter_map(|row| match row {
                Row::ToolCall(call) => Some(&**call),
                Row::Check(_) => None,
            })
            .collect();
        let conn = connection(&self.store, &mut self.conn).await?;
        let mut tx = conn.begin().await.map_err(sql_error)?;
        if !checks.is_empty() {
            self.ids
                .resolve(&mut tx, &checks)
                .await
                .map_err(sql_error)?;
            health_checks::stage_batch(&mut tx, &self.ids, &checks)
                .await
                .map_err(sql_error)?;
        }
        if !calls.is_empty() {
            tool_calls::insert_batch(&mut tx, &calls)
                .await
                .map_err(sql_error)?;
        }
        tx.commit().await.map_err(sql_error)?;
        // A commit that left the connection inside a transaction stored nothing (`txn.rs`).
        txn::confirm_committed(conn).await.map_err(sql_error)
    }
}

/// The writer's connection, opened when it has none. Rows written into a deleted file would vanish with it:
/// the file's problem is returned instead, so they are held.
async fn connection<'c>(
    store: &Store,
    slot: &'c mut Option<PoolConnection<Sqlite>>,
) -> Result<&'c mut PoolConnection<Sqlite>, (WriteErrorKind, String)> {
    if let Some(problem) = store
        .status()
        .file_problem()
        .filter(|p| p.kind == WriteErrorKind::FileGone)
    {
        return Err((problem.kind, problem.message));
    }
    match slot {
        Some(conn) => Ok(conn),
        None => Ok(slot.insert(store.pool().acquire().await.map_err(sql_error)?)),
    }
}

fn sql_error(e: sqlx::Error) -> (WriteErrorKind, String) {
    (WriteErrorKind::classify(&e), e.to_string())
}

/// Sleeps until `at`, or forever when there is nothing to wait for.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
