//! Open files: raises the soft `RLIMIT_NOFILE` to the hard limit at start, sizes probe concurrency and idle
//! probe connections so they fit under it beside the alert deliveries' own bounded share, and watches
//! descriptor use so running short is logged once.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio_util::sync::CancellationToken;

use crate::worker::Worker;

/// Descriptors kept out of the probes' budget whatever the config: stdin/out/err, the tokio runtime, the
/// accept threads, the three listeners, the SQLite pool (up to 8 connections, each with the database and
/// its write-ahead log, plus one shared `-shm`) and about 64 connections of hale's own clients.
const BASE_RESERVE: u64 = 128;
/// Descriptors of one HTTP worker thread: its runtime's epoll and event fds, plus room for a connection.
const PER_WORKER: u64 = 6;
/// How often the watcher counts `/proc/self/fd`.
const WATCH_EVERY: Duration = Duration::from_secs(1);
/// Use at or above this share of the limit (in percent) starts a "short of open files" episode.
const SHORT_AT_PERCENT: u64 = 90;
/// Use below this share ends it; the gap keeps a count hovering at 90% from logging every second.
const RECOVERED_BELOW_PERCENT: u64 = 80;

/// Channels whose deliveries go through the pooled HTTP client (Discord, the webhook, Alertmanager); email
/// opens one SMTP connection per attempt and closes it.
const POOLED_CHANNELS: u64 = 3;

/// The most descriptors alert deliveries can hold: one connection per attempt in flight
/// (`max_concurrent`), the idle connections the delivery client keeps (`max_concurrent_per_channel` per
/// receiver), and Alertmanager's periodic re-post. The dispatcher is built to stay within it; the probe
/// budget keeps it out of what probes may take.
pub fn delivery_descriptors(max_concurrent: usize, max_concurrent_per_channel: usize) -> u64 {
    max_concurrent as u64 + POOLED_CHANNELS * max_concurrent_per_channel as u64 + 1
}

/// Below this open-file limit hale does not start: its database connections, listeners and server threads
/// alone take about 55 descriptors with the default config, before any probe.
pub const MIN_OPEN_FILES: u64 = 64;

/// Raises the soft open-file limit to the hard one (as Go's runtime does at start) and logs the limit in
/// force. Returns that soft limit; `None` when the platform has none or it cannot be read.
pub fn raise_open_file_limit() -> Option<u64> {
    let before = current_open_file_limit();
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "cannot raise the open-file limit"),
    }
    let after = current_open_file_limit();
    match (before, after) {
        (Some(before), Some(after)) => {
            let hard = rlimit::getrlimit(rlimit::Resource::NOFILE)
                .map(|(_, hard)| hard)
                .unwrap_or(after);
            tracing::info!(
                limit = after,
                raised_from = before,
                hard_limit = hard,
                "open-file limit"
            );
        }
        _ => tracing::info!("no open-file limit applies"),
    }
    after
}

/// The soft open-file limit in force; `None` when there is none (or it is "unlimited").
pub fn current_open_file_limit() -> Option<u64> {
    match rlimit::getrlimit(rlimit::Resource::NOFILE) {
        Ok((soft, _)) if soft != rlimit::INFINITY => Some(soft),
        _ => None,
    }
}

/// How many probes may run at once and how many idle connections the probe client may keep per host, so
/// that probes never take the descriptors hale needs for its database, listeners and clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeBudget {
    /// Probes in flight at once, background and on-demand together.
    pub concurrency: usize,
    /// Idle connections the probe client keeps per host; 0 turns connection reuse off.
    pub idle_per_host: usize,
    /// The soft open-file limit the budget was sized from.
    pub open_files: Option<u64>,
    /// Descriptors kept out of the budget.
    pub reserve: u64,
}

impl ProbeBudget {
    /// The reserve is hale's own share (database, listeners, server threads) plus `deliveries`, the most the
    /// alert deliveries can hold (`delivery_descriptors`). Half of what the limit leaves after it goes to
    /// probes in flight (one socket each), the other half to idle connections, shared among the distinct
    /// hosts; each half is capped by `max_in_flight`. With no limit, `max_in_flight` alone decides.
    pub fn new(
        max_in_flight: usize,
        http_workers: usize,
        distinct_hosts: usize,
        open_files: Option<u64>,
        deliveries: u64,
    ) -> Self {
        let services = crate::kind::ServiceKind::ALL.len() as u64;
        let reserve = BASE_RESERVE + PER_WORKER * services * http_workers as u64 + deliveries;
        let max_in_flight = max_in_flight.max(1);
        let Some(limit) = open_files else {
            return Self {
                concurrency: max_in_flight,
                idle_per_host: max_in_flight,
                open_files,
                reserve,
            };
        };
        let half = usize::try_from(limit.saturating_sub(reserve) / 2).unwrap_or(usize::MAX);
        let concurrency = max_in_flight.min(half).max(1);
        let idle_per_host = match distinct_hosts {
            0 => 0,
            hosts => (half / hosts).min(max_in_flight),
        };
        Self {
            concurrency,
            idle_per_host,
            open_files,
            reserve,
        }
    }
}

/// Counts this process's open descriptors every second and logs a `warn` once when they reach 90% of the
/// soft limit (accept starts failing with "Too many open files" at 100%), and an `info` once they are back
/// below 80%. It watches the real process, so it ticks on tokio's time.
#[derive(Debug)]
pub struct OpenFileWatch {
    limit: u64,
}

impl OpenFileWatch {
    /// None where the limit or `/proc/self/fd` cannot be read: nothing to watch.
    pub fn new() -> Option<Self> {
        let limit = current_open_file_limit()?;
        if count_open_files().is_err() {
            tracing::debug!("open files cannot be counted on this system; no watcher");
            return None;
        }
        Some(Self { limit })
    }
}

impl Worker for OpenFileWatch {
    fn name(&self) -> &'static str {
        "open-file watch"
    }

    fn run(self: Arc<Self>, cancel: CancellationToken) -> BoxFuture<'static, ()> {
        let limit = self.limit;
        Box::pin(async move {
            let mut ticker = tokio::time::interval(WATCH_EVERY);
            let mut short = false;
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = ticker.tick() => {}
                }
                // Reading /proc is quick but still blocking I/O.
                let counted = tokio::task::spawn_blocking(count_open_files).await;
                let open = match counted {
                    Ok(Ok(open)) => open,
                    // Not even one more descriptor to read the folder with: the limit is reached.
                    Ok(Err(e)) if e.raw_os_error() == Some(EMFILE) => limit,
                    _ => continue,
                };
                if !short && open * 100 >= limit * SHORT_AT_PERCENT {
                    short = true;
                    tracing::warn!(
                        open_files = open,
                        limit,
                        "open files near the limit; new connections and probes will fail with \"Too many open files\" when it is reached"
                    );
                } else if short && open * 100 < limit * RECOVERED_BELOW_PERCENT {
                    short = false;
                    tracing::info!(
                        open_files = open,
                        limit,
                        "open files back below 80% of the limit"
                    );
                }
            }
        })
    }
}

pub(crate) fn count_open_files() -> std::io::Result<u64> {
    // The count includes the descriptor read_dir itself holds, which is gone right after.
    Ok(std::fs::read_dir(Path::new("/proc/self/fd"))?.count() as u64)
}

/// EMFILE, "Too many open files", on Linux (the only system with `/proc/self/fd`).
const EMFILE: i32 = 24;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_fits_probes_and_idle_connections_under_the_limit() {
        // 1 worker per service: reserve 128 + 6 × 3 = 146; (1024 - 146) / 2 = 439 per half.
        let budget = ProbeBudget::new(256, 1, 3, Some(1024), 0);
        assert_eq!(budget.reserve, 146);
        assert_eq!(budget.concurrency, 256, "the configured bound fits");
        assert_eq!(
            budget.idle_per_host, 146,
            "439 idle connections shared by 3 hosts"
        );

        let low = ProbeBudget::new(256, 1, 3, Some(256), 0);
        assert_eq!(low.concurrency, 55, "(256 - 146) / 2");
        assert_eq!(low.idle_per_host, 18);
        let total = low.reserve + low.concurrency as u64 + 3 * low.idle_per_host as u64;
        assert!(total <= 256, "{total}");

        let many_hosts = ProbeBudget::new(256, 2, 5_000, Some(1024), 0);
        assert_eq!(
            many_hosts.idle_per_host, 0,
            "too many hosts to keep one idle each: no pooling"
        );

        let tiny = ProbeBudget::new(64, 2, 1, Some(100), 0);
        assert_eq!(tiny.concurrency, 1, "always at least one probe");
        assert_eq!(tiny.idle_per_host, 0);

        let unlimited = ProbeBudget::new(64, 2, 10, None, 0);
        assert_eq!((unlimited.concurrency, unlimited.idle_per_host), (64, 64));

        let huge = ProbeBudget::new(64, 2, 1, Some(1 << 20), 0);
        assert_eq!(
            (huge.concurrency, huge.idle_per_host),
            (64, 64),
            "capped by max_in_flight"
        );
    }

    #[test]
    fn deliveries_and_probes_draw_from_one_reserve() {
        // The default delivery bounds: 8 in flight, 2 per channel: 8 + 3 × 2 idle + 1 re-post = 15.
        let deliveries = delivery_descriptors(8, 2);
        assert_eq!(deliveries, 15);
        let budget = ProbeBudget::new(256, 1, 1, Some(256), deliveries);
        assert_eq!(budget.reserve, 146 + 15);
        assert_eq!(budget.concurrency, 47, "(256 - 161) / 2");
        let most = budget.reserve + budget.concurrency as u64 + budget.idle_per_host as u64;
        assert!(most <= 256, "probes and deliveries at their bounds: {most}");
    }
}
