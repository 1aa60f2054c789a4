//! hale watching itself: every `monitor.self_watch_interval_s` one INFO line `self-watch` with its resident
//! memory, open files and writer queue, so a leak shows in the log even where nothing scrapes `/metrics` (which
//! exports the same numbers as `process_resident_memory_bytes`, `process_open_fds` and `store_queue_depth`).

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio_util::sync::CancellationToken;

use crate::limits;
use crate::store::writer::CheckWriter;
use crate::worker::Worker;

/// What the kernel says about this process at one instant (Linux, from `/proc/self`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessSample {
    /// Resident memory (`VmRSS`).
    pub resident_bytes: u64,
    /// The most resident memory so far (`VmHWM`).
    pub resident_peak_bytes: u64,
    pub threads: u64,
    /// Descriptors open now (entries of `/proc/self/fd`).
    pub open_files: u64,
    /// The soft open-file limit; none when unlimited.
    pub open_files_limit: Option<u64>,
}

impl ProcessSample {
    /// Reads `/proc/self/status` and counts `/proc/self/fd`. Blocking (a few small reads).
    pub fn read() -> std::io::Result<Self> {
        let status = std::fs::read_to_string("/proc/self/status")?;
        let (resident_bytes, resident_peak_bytes, threads) =
            parse_status(&status).ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "/proc/self/status has no VmRSS, VmHWM or Threads line",
                )
            })?;
        Ok(Self {
            resident_bytes,
            resident_peak_bytes,
            threads,
            open_files: limits::count_open_files()?,
            open_files_limit: limits::current_open_file_limit(),
        })
    }
}

/// `VmRSS`, `VmHWM` (in bytes) and `Threads` from the text of `/proc/<pid>/status`.
fn parse_status(text: &str) -> Option<(u64, u64, u64)> {
    let field = |name: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
    };
    // The kernel writes memory sizes in kB (KiB).
    Some((
        field("VmRSS")? * 1024,
        field("VmHWM")? * 1024,
        field("Threads")?,
    ))
}

/// The self-watch worker. It watches the real process, so it ticks on tokio's time, not on the policy clock.
#[derive(Debug)]
pub struct SelfWatch {
    interval: Duration,
    writer: CheckWriter,
}

impl SelfWatch {
    /// None when the interval is 0 (off) or this system has no `/proc/self` to read.
    pub fn new(interval_s: u64, writer: CheckWriter) -> Option<Self> {
        if interval_s == 0 {
            return None;
        }
        if let Err(e) = ProcessSample::read() {
            tracing::debug!(error = %e, "this process cannot read its own resources; no self-watch");
            return None;
        }
        Some(Self {
            interval: Duration::from_secs(interval_s),
            writer,
        })
    }

    fn log(&self, sample: &ProcessSample) {
        tracing::info!(
            resident_memory_bytes = sample.resident_bytes,
            resident_memory_peak_bytes = sample.resident_peak_bytes,
            threads = sample.threads,
            open_files = sample.open_files,
            open_files_limit = sample.open_files_limit.unwrap_or(0),
            writer_queue = self.writer.queued(),
            writer = if self.writer.is_running() {
                "running"
            } else {
                "stopped"
            },
            "self-watch"
        );
    }
}

impl Worker for SelfWatch {
    fn name(&self) -> &'static str {
        "self-watch"
    }

    fn run(self: Arc<Self>, cancel: CancellationToken) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            // The first tick is at once: the log gets a baseline at start.
            let mut ticker = tokio::time::interval(self.interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = ticker.tick() => {}
                }
                match tokio::task::spawn_blocking(ProcessSample::read).await {
                    Ok(Ok(sample)) => self.log(&sample),
                    Ok(Err(e)) => {
                        tracing::debug!(error = %e, "self-watch cannot read this process's resources")
                    }
                    Err(e) => tracing::debug!(error = %e, "self-watch read did not finish"),
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_fields_are_read_in_bytes() {
        let text = "Name:\thale\nVmHWM:\t   20480 kB\nVmRSS:\t   10240 kB\nThreads:\t7\n";
        assert_eq!(parse_status(text), Some((10_485_760, 20_971_520, 7)));
        assert_eq!(parse_status("Name:\thale\n"), None);
    }

    #[test]
    fn this_process_can_be_read() {
        let sample = ProcessSample::read().unwrap();
        assert!(sample.resident_bytes > 0);
        assert!(sample.resident_peak_bytes >= sample.resident_bytes);
        assert!(sample.open_files >= 3, "{sample:?}");
        assert!(sample.threads >= 1);
    }
}
