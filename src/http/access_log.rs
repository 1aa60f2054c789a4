//! What the access layer writes down, at a cost that does not grow with a flood: the audit rows and the
//! `429` log lines.
//!
//! An allowed request that tries to change something is one audit row, written before its answer leaves
//! (an MCP tool call is counted like a refusal below: each call is a row of `tool_calls`, written by the
//! batching writer). A
//! refused attempt (401, 403, a method the route does not have: 405) and a rate-limited one (429) is counted
//! in memory instead: one row per service, client, role, method, route and outcome per minute, with a
//! `count`. The counts are written every `FLUSH_EVERY` (in one transaction; a minute's row is inserted once
//! and then has its count raised), when `GET /audit` is asked, and at shutdown after the servers stopped, so
//! nothing counted is lost at a clean stop. A flood of 100,000 refused requests a minute from one client is
//! one row a minute and one write every few seconds.
//!
//! The `request finished` line of a 429 is sampled the same way: the first of each client in a minute is
//! logged at `info`, the others at `debug`, and one `info` line per client and minute says how many were
//! not logged.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::kind::ServiceKind;
use crate::records::AuditRecord;
use crate::store::Store;
use crate::worker::Worker;

/// How often counted attempts are written.
pub const FLUSH_EVERY: Duration = Duration::from_secs(5);
/// Distinct rows counted in memory past which they are written at once, without waiting for the period.
const FLUSH_AT_ROWS: usize = 10_000;
/// Distinct rows kept in memory at most (while the database cannot be written): past this, attempts that
/// would start a new row are dropped, counted and reported.
const MAX_ROWS: usize = 100_000;
/// Clients whose 429 lines are being sampled, at most; past this, each 429 is logged at `debug` only.
const MAX_SAMPLED_CLIENTS: usize = 100_000;

/// What one aggregated row is about: everything but the time, target, status and request id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct RowKey {
    minute: i64,
    service: ServiceKind,
    role: Option<&'static str>,
    client: String,
    method: String,
    route: String,
    /// `AuditOutcome::as_str`.
    outcome: &'static str,
}

#[derive(Debug)]
struct Row {
    /// The first attempt (its time, request id, status and target; the target becomes none when the
    /// attempts name different ones).
    first: AuditRecord,
    /// Its id once written.
    id: Option<i64>,
    /// Attempts not written yet.
    unwritten: u64,
}

/// 429s of one client in one minute.
#[derive(Debug, Clone, Copy)]
struct Sampled {
    minute: i64,
    /// Lines logged at `debug` instead of `info`.
    quieted: u64,
}

#[derive(Debug, Default)]
struct Pending {
    rows: HashMap<RowKey, Row>,
    /// Attempts dropped since the last report because `MAX_ROWS` rows were waiting.
    dropped: u64,
    limited: HashMap<IpAddr, Sampled>,
}

/// The audit log writer and the 429 line sampler, shared by every service of this process.
#[derive(Debug)]
pub struct AccessLog {
    store: Store,
    pending: Mutex<Pending>,
    /// One flush at a time, so a minute's row is never inserted twice.
    flushing: tokio::sync::Mutex<()>,
    /// Wakes the worker early when many rows wait.
    full: Notify,
}

fn minute_of(record: &AuditRecord) -> i64 {
    record.at.timestamp().div_euclid(60)
}

fn now_minute() -> i64 {
    chrono::Utc::now().timestamp().div_euclid(60)
}

impl AccessLog {
    pub fn new(store: Store) -> Self {
        Self {
            store,
            pending: Mutex::default(),
            flushing: tokio::sync::Mutex::new(()),
            full: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Pending> {
        // Only counters are behind the lock; a panic while it was held leaves them usable.
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records one request that tried to change something: written now when it was allowed (`aggregate`
    /// false), counted into its minute's row otherwise.
    pub async fn record(&self, record: AuditRecord, aggregate: bool) {
        if !aggregate {
            if let Err(e) = self.store.insert_audit(&record).await {
                tracing::error!(error = %e, route = %record.route, "cannot write the audit row of a mutating request");
            }
            return;
        }
        let key = RowKey {
            minute: minute_of(&record),
            service: record.service,
            role: record.role,
            client: record.client.clone(),
            method: record.method.clone(),
            route: record.route.clone(),
            outcome: record.outcome.as_str(),
        };
        let mut pending = self.lock();
        let rows = pending.rows.len();
        if let Some(row) = pending.rows.get_mut(&key) {
            row.unwritten += 1;
            if row.first.target.is_some() && row.first.target != record.target {
                row.first.target = None;
            }
            return;
        }
        if rows >= MAX_ROWS {
            pending.dropped += 1;
            return;
        }
        pending.rows.insert(
            key,
            Row {
                first: record,
                id: None,
                unwritten: 1,
            },
        );
        drop(pending);
        if rows + 1 >= FLUSH_AT_ROWS {
            self.full.notify_one();
        }
    }

    /// Whether the `request finished` line of a 429 to `client` is logged at `info`: the first of the
    /// client's minute is, the others are counted and summed up in one line once the minute is over.
    pub fn log_rate_limited(&self, client: IpAddr) -> bool {
        let minute = now_minute();
        let mut pending = self.lock();
        let clients = pending.limited.len();
        match pending.limited.get_mut(&client) {
            Some(sampled) if sampled.minute == minute => {
                sampled.quieted += 1;
                false
            }
            Some(sampled) => {
                let ended = *sampled;
                *sampled = Sampled { minute, quieted: 0 };
                drop(pending);
                report_quieted(client, ended);
                true
            }
            None if clients >= MAX_SAMPLED_CLIENTS => false,
            None => {
                pending
                    .limited
                    .insert(client, Sampled { minute, quieted: 0 });
                true
            }
        }
    }

    /// Writes what was counted: every row of a minute that is over, and the current minute's rows so far
    /// (they stay in memory, to be raised). `all` (at shutdown) also reports the current minute's 429s.
    pub async fn flush(&self, all: bool) {
        let _one_at_a_time = self.flushing.lock().await;
        let minute = now_minute();
        let (work, dropped) = {
            let mut pending = self.lock();
            // A minute that is over and fully written gets no more attempts: its rows are done.
            pending
                .rows
                .retain(|key, row| key.minute >= minute || row.unwritten > 0);
            let work: Vec<(RowKey, Option<i64>, AuditRecord)> = pending
                .rows
                .iter_mut()
                .filter(|(_, row)| row.unwritten > 0)
                .map(|(key, row)| {
                    let mut record = row.first.clone();
                    record.count = std::mem::take(&mut row.unwritten);
                    (key.clone(), row.id, record)
                })
                .collect();
            let mut ended = Vec::new();
            pending.limited.retain(|client, sampled| {
                let keep = sampled.minute == minute && !all;
                if !keep {
                    ended.push((*client, *sampled));
                }
                keep
            });
            let dropped = std::mem::take(&mut pending.dropped);
            drop(pending);
            for (client, sampled) in ended {
                report_quieted(client, sampled);
            }
            (work, dropped)
        };
        if dropped > 0 {
            tracing::error!(
                dropped,
                waiting = MAX_ROWS,
                "refused attempts not audited: too many audit rows wait to be written"
            );
        }
        if work.is_empty() {
            return;
        }
        let rows: Vec<(Option<i64>, AuditRecord)> = work
            .iter()
            .map(|(_, id, record)| (*id, record.clone()))
            .collect();
        let written = self.store.write_audit_counts(&rows).await;
        let mut pending = self.lock();
        match written {
            Ok(ids) => {
                for ((key, _, _), id) in work.iter().zip(ids) {
                    if let Some(row) = pending.rows.get_mut(key) {
                        row.id = Some(id);
                    }
                }
                pending
                    .rows
                    .retain(|key, row| key.minute >= minute || row.unwritten > 0);
            }
            Err(e) => {
                // Counted again at the next flush: nothing is lost while the database cannot be written.
                for (key, _, record) in &work {
                    if let Some(row) = pending.rows.get_mut(key) {
                        row.unwritten += record.count;
                    }
                }
                let waiting = pending.rows.len();
                drop(pending);
                tracing::error!(error = %e, rows = waiting, "cannot write the audit rows of refused attempts; they are kept and written later");
            }
        }
    }
}

fn report_quieted(client: IpAddr, sampled: Sampled) {
    if sampled.quieted == 0 {
        return;
    }
    let minute = chrono::DateTime::from_timestamp(sampled.minute * 60, 0)
        .map(|at| at.to_rfc3339())
        .unwrap_or_default();
    tracing::info!(
        client = %client,
        minute = minute.as_str(),
        count = sampled.quieted,
        "rate-limited requests of this client in this minute logged at debug only"
    );
}

impl Worker for AccessLog {
    fn name(&self) -> &'static str {
        "access-log"
    }

    fn run(self: Arc<Self>, cancel: CancellationToken) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tokio::time::sleep(FLUSH_EVERY) => {}
                    _ = self.full.notified() => {}
                }
                self.flush(false).await;
            }
            // The servers have stopped: every attempt they counted is written now.
            self.flush(true).await;
        })
    }
}
