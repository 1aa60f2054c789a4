//! Hourly rollups of health checks, merged in the writer's transaction as checks land, and pruning of old
//! rows. The SLO engine reads rollups: they outlive raw checks.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::SqliteConnection;

use crate::probe::CheckRecord;
use crate::slo::histogram::LatencyHistogram;
use crate::store::{from_ms, to_ms, Store, StoreError};

const HOUR_MS: i64 = 3_600_000;
/// Rows deleted per statement while pruning, so a prune never holds the write lock for long.
const PRUNE_CHUNK: i64 = 10_000;

/// One service's checks during one hour.
#[derive(Debug, Clone, PartialEq)]
pub struct HourlyRollup {
    pub service: String,
    pub hour: DateTime<Utc>,
    pub total: u64,
    pub good: u64,
    pub latency_sum_us: u64,
    pub latency_max_us: u64,
    pub latency: LatencyHistogram,
}

#[derive(Default)]
struct Aggregate {
    total: u64,
    good: u64,
    latency_sum_us: u64,
    latency_max_us: u64,
    latency: LatencyHistogram,
}

/// Adds a batch of checks to their hourly rows inside the caller's transaction.
pub(crate) async fn merge_batch(
    conn: &mut SqliteConnection,
    records: &[CheckRecord],
) -> Result<(), sqlx::Error> {
    let mut groups: HashMap<(&str, i64), Aggregate> = HashMap::new();
    for record in records {
        let ms = to_ms(record.checked_at);
        let hour = ms - ms.rem_euclid(HOUR_MS);
        let agg = groups.entry((record.service.as_ref(), hour)).or_default();
        agg.total += 1;
        agg.good += u64::from(record.outcome.is_up());
        if let Some(latency) = record.latency {
            let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
            agg.latency_sum_us = agg.latency_sum_us.saturating_add(us);
            agg.latency_max_us = agg.latency_max_us.max(us);
            agg.latency.record(us);
        }
    }
    for ((service, hour), mut agg) in groups {
        let existing: Option<(i64, i64, i64, i64, Vec<u8>)> = sqlx::query_as(
            "SELECT total, good, latency_sum_us, latency_max_us, latency_buckets FROM health_check_hourly
             WHERE service = ?1 AND hour_ms = ?2",
        )
        .bind(service)
        .bind(hour)
        .fetch_optional(&mut *conn)
        .await?;
        if let Some((total, good, sum, max, blob)) = existing {
            agg.total += non_negative(total);
            agg.good += non_negative(good);
            agg.latency_sum_us = agg.latency_sum_us.saturating_add(non_negative(sum));
            agg.latency_max_us = agg.latency_max_us.max(non_negative(max));
            match LatencyHistogram::decode(&blob) {
                Ok(old) => agg.latency.merge(&old),
                Err(e) => {
                    tracing::warn!(service, hour_ms = hour, error = %e, "replacing an unreadable latency histogram")
                }
            }
        }
        sqlx::query(
            "INSERT OR REPLACE INTO health_check_hourly
             (service, hour_ms, total, good, latency_sum_us, latency_max_us, latency_buckets)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )
        .bind(service)
        .bind(hour)
        .bind(saturating_i64(agg.total))
        .bind(saturating_i64(agg.good))
        .bind(saturating_i64(agg.latency_sum_us))
        .bind(saturating_i64(agg.latency_max_us))
        .bind(agg.latency.encode())
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

fn non_negative(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn saturating_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl Store {
    /// The hourly rollups of one service whose hour starts in `[since, until)`, oldest first.
    pub async fn hourly_rollups(
        &self,
        service: &str,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<HourlyRollup>, StoreError> {
        let rows: Vec<(String, i64, i64, i64, i64, i64, Vec<u8>)> = sqlx::query_as(
            "SELECT service, hour_ms, total, good, latency_sum_us, latency_max_us, latency_buckets
             FROM health_check_hourly WHERE service = ?1 AND hour_ms >= ?2 AND hour_ms < ?3 ORDER BY hour_ms",
        )
        .bind(service)
        .bind(to_ms(since))
        .bind(to_ms(until))
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(service, hour, total, good, sum, max, blob)| HourlyRollup {
                hour: from_ms(hour),
                total: non_negative(total),
                good: non_negative(good),
                latency_sum_us: non_negative(sum),
                latency_max_us: non_negative(max),
                latency: LatencyHistogram::decode(&blob).unwrap_or_else(|e| {
                    tracing::warn!(service = %service, hour_ms = hour, error = %e, "ignoring an unreadable latency histogram");
                    LatencyHistogram::new()
                }),
                service,
            })
            .collect())
    }

    /// Deletes raw checks older than `checks_before` and rollups older than `rollups_before`, in small
    /// chunks. Returns how many rows of each went.
    pub async fn prune(
        &self,
        checks_before: DateTime<Utc>,
        rollups_before: DateTime<Utc>,
    ) -> Result<(u64, u64), StoreError> {
        let mut checks = 0;
        loop {
            let deleted = sqlx::query(
                "DELETE FROM health_checks WHERE id IN
                 (SELECT id FROM health_checks WHERE checked_at_ms < ?1 LIMIT ?2)",
            )
            .bind(to_ms(checks_before))
            .bind(PRUNE_CHUNK)
            .execute(self.pool())
            .await?
            .rows_affected();
            checks += deleted;
            if deleted < PRUNE_CHUNK as u64 {
                break;
            }
            tokio::task::yield_now().await;
        }
        let rollups = sqlx::query("DELETE FROM health_check_hourly WHERE hour_ms < ?1")
            .bind(to_ms(rollups_before))
            .execute(self.pool())
            .await?
            .rows_affected();
        Ok((checks, rollups))
    }
}
