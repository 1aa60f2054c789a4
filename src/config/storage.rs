//! `storage`: the SQLite store's retention, the batching writer and the page-cache budget.

use serde::{Deserialize, Serialize};

use crate::config::Invalid;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// Raw health checks older than this are pruned.
    pub retention_days: u32,
    /// Hourly rollups older than this are pruned.
    pub rollup_retention_days: u32,
    /// The batching writer flushes at least this often.
    pub flush_interval_ms: u64,
    /// Most rows in one write transaction.
    pub batch_size: usize,
    /// Checks are staged in time order and settled into the per-target table and the hourly rollups at least
    /// this often (0: after every flush). Rollups and SLOs trail the newest checks by up to this much.
    pub settle_interval_s: u64,
    /// SQLite's page cache for the whole connection pool, in MiB, shared out evenly over its connections.
    pub cache_mb: u32,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            retention_days: 30,
            rollup_retention_days: 400,
            flush_interval_ms: 250,
            // Under a backlog a batch this large touches each service's index page once for many rows, which
            // keeps the writer above 100,000 rows/s as the file grows (docs/benchmarks.md).
            batch_size: 10_000,
            // Two minutes of checks per settle: each target's leaf of `checks` is written once for about 12
            // checks at a 10 s interval (docs/benchmarks.md), and SLOs trail the newest checks by as much.
            settle_interval_s: 120,
            // 4 MiB for each of the pool's 8 connections: a batch of a flush interval touches well under that,
            // and readers' caches are reset by every commit of the writer anyway (docs/operations.md).
            cache_mb: 32,
        }
    }
}

impl StorageConfig {
    pub(crate) fn validate(&self) -> Result<(), Invalid> {
        if self.retention_days == 0 {
            return Err(Invalid::at("storage.retention_days", "must be at least 1"));
        }
        if self.rollup_retention_days < self.retention_days {
            return Err(Invalid::at(
                "storage.rollup_retention_days",
                format!(
                    "{} is shorter than retention_days ({})",
                    self.rollup_retention_days, self.retention_days
                ),
            ));
        }
        if !(10..=250).contains(&self.flush_interval_ms) {
            return Err(Invalid::at(
                "storage.flush_interval_ms",
                format!("{} is out of range 10..=250", self.flush_interval_ms),
            ));
        }
        if !(1..=50_000).contains(&self.batch_size) {
            return Err(Invalid::at(
                "storage.batch_size",
                format!("{} is out of range 1..=50000", self.batch_size),
            ));
        }
        if self.settle_interval_s > MAX_SETTLE_INTERVAL_S {
            return Err(Invalid::at(
                "storage.settle_interval_s",
                format!(
                    "{} is out of range 0..={MAX_SETTLE_INTERVAL_S}",
                    self.settle_interval_s
                ),
            ));
        }
        if !(MIN_CACHE_MB..=MAX_CACHE_MB).contains(&self.cache_mb) {
            return Err(Invalid::at(
                "storage.cache_mb",
                format!(
                    "{} is out of range {MIN_CACHE_MB}..={MAX_CACHE_MB}",
                    self.cache_mb
                ),
            ));
        }
        Ok(())
    }
}

/// The longest settle interval: an hour of staged checks is still a short read for a settle.
pub const MAX_SETTLE_INTERVAL_S: u64 = 3_600;
/// The smallest page-cache budget: 1 MiB for each of the pool's connections.
pub const MIN_CACHE_MB: u32 = 8;
/// The largest page-cache budget.
pub const MAX_CACHE_MB: u32 = 4096;
