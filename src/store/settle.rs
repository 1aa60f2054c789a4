//! Settling: the checks the writer staged in `checks_recent` (keyed by time, so each flush appends to its
//! last pages) are moved into `checks` (keyed by target) in target order, and added to their hourly rollups,
//! in one transaction. Each target's leaves of `checks` and `checks_hourly` are then written once per settle
//! for all its checks since the last one, not once per check (`migrations/0010_recent_checks.sql` says what
//! that saves).
//!
//! A check is in exactly one of the two tables at any time, and the rollups count exactly the settled ones,
//! so a crash between settles loses nothing: the next start settles what was left (`Store::open`).

use chrono::{DateTime, Utc};
use sqlx::{Connection, SqliteConnection, SqlitePool};

use futures_util::TryStreamExt;

use crate::store::rollups::{self, HourlyDeltas};
use crate::store::{from_ms, txn};

/// What one settle moved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Settled {
    /// Checks moved into `checks`.
    pub checks: u64,
    /// Hourly rollup rows written.
    pub rollups: usize,
}

/// Targets settled at a time: a settle moves their staged checks and adds them to their rollups, then takes
/// the next ones. What it holds (their sums, SQLite's sort of their checks into target order) is bounded by
/// this, not by the number of targets; each piece reads all of `checks_recent` once more (a few MB, about
/// 125,000 rows at 10,000 targets every 10 s), a few milliseconds.
pub(crate) const TARGETS_PER_PIECE: i64 = 1_000;

/// The page cache a settle works with, in KiB, when the connection's share of `storage.cache_mb` is larger.
/// A settle touches each leaf it writes once (checks in target order, rollups in key order), so a larger cache
/// would only hold pages it is done with: at 10,000 targets, the connection's whole share (4 MiB) for the
/// few seconds of the settle. SQLite also sorts a piece's checks in memory up to this size (a piece of
/// 1,000 targets checked every 10 s, settled every 120 s: about 0.6 MB), beyond it through a temporary file.
const SETTLE_CACHE_KIB: i64 = 1_024;

/// Moves every staged check into `checks` and the rollups, inside the caller's transaction, a piece of
/// `TARGETS_PER_PIECE` targets (by id) at a time, with a page cache of `SETTLE_CACHE_KIB` at most.
pub(crate) async fn settle(conn: &mut SqliteConnection) -> Result<Settled, sqlx::Error> {
    // `cache_size`: negative in KiB, positive in pages (4 KiB each).
    let kept: i64 = sqlx::query_scalar("PRAGMA cache_size")
        .fetch_one(&mut *conn)
        .await?;
    let kept_kib = if kept < 0 {
        -kept
    } else {
        kept.saturating_mul(4)
    };
    let smaller = kept_kib > SETTLE_CACHE_KIB;
    if smaller {
        sqlx::query(&format!("PRAGMA cache_size = -{SETTLE_CACHE_KIB}"))
            .execute(&mut *conn)
            .await?;
    }
    let settled = settle_in_pieces(conn, TARGETS_PER_PIECE).await;
    if smaller {
        sqlx::query(&format!("PRAGMA cache_size = {kept}"))
            .execute(&mut *conn)
            .await?;
    }
    settled
}

/// `settle`, with pieces of `per_piece` targets.
pub(crate) async fn settle_in_pieces(
    conn: &mut SqliteConnection,
    per_piece: i64,
) -> Result<Settled, sqlx::Error> {
    let mut settled = Settled::default();
    let mut after = i64::MIN;
    loop {
        // The piece is the targets after `after`, up to the `per_piece`-th one (the last piece: all the rest).
        let last: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM targets WHERE id > ?1 ORDER BY id LIMIT 1 OFFSET ?2",
        )
        .bind(after)
        .bind(per_piece.max(1) - 1)
        .fetch_optional(&mut *conn)
        .await?;
        let until = last.unwrap_or(i64::MAX);
        let piece = settle_targets(conn, after, until).await?;
        settled.checks += piece.checks;
        settled.rollups += piece.rollups;
        match last {
            Some(last) => after = last,
            None => break,
        }
    }
    sqlx::query("DELETE FROM checks_recent")
        .execute(&mut *conn)
        .await?;
    Ok(settled)
}

/// Moves the staged checks of the targets with ids in `(after, until]` into `checks` and the rollups.
async fn settle_targets(
    conn: &mut SqliteConnection,
    after: i64,
    until: i64,
) -> Result<Settled, sqlx::Error> {
    // Only scheduled checks count in rollups (source bit 5 clear: `codes.rs`). Streamed: what is held is one
    // sum per target and hour, however many checks wait.
    let mut deltas = HourlyDeltas::default();
    {
        let mut staged = sqlx::query_as::<_, (i64, i64, i64, Option<i64>)>(
            "SELECT target_id, checked_at_ms, state, latency_us FROM checks_recent
             WHERE target_id > ?1 AND target_id <= ?2 AND (state >> 5) = 0",
        )
        .bind(after)
        .bind(until)
        .fetch(&mut *conn);
        while let Some((target, ms, state, latency_us)) = staged.try_next().await? {
            deltas.add(target, ms, state, latency_us);
        }
    }
    let rollups = rollups::add_to_stored(conn, deltas).await?;
    // A row keeps its `seq` unless `checks` already holds checks of its target at its millisecond (the clock
    // stepped back, or a script added history): then it goes after them. A later row of the same millisecond
    // always lands above an earlier one, so no key is taken twice.
    let checks = sqlx::query(
        "INSERT INTO checks (target_id, checked_at_ms, seq, state, http_status, latency_us, error_id)
         SELECT r.target_id, r.checked_at_ms,
                r.seq + coalesce((SELECT max(c.seq) + 1 FROM checks AS c
                                  WHERE c.target_id = r.target_id AND c.checked_at_ms = r.checked_at_ms), 0),
                r.state, r.http_status, r.latency_us, r.error_id
         FROM checks_recent AS r
         WHERE r.target_id > ?1 AND r.target_id <= ?2
         ORDER BY r.target_id, r.checked_at_ms, r.seq",
    )
    .bind(after)
    .bind(until)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok(Settled { checks, rollups })
}

/// The time of the oldest staged check, if any.
pub(crate) async fn oldest_staged(
    conn: &mut SqliteConnection,
) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    let ms: Option<i64> = sqlx::query_scalar("SELECT min(checked_at_ms) FROM checks_recent")
        .fetch_one(conn)
        .await?;
    Ok(ms.map(from_ms))
}

/// Migration 10 rewrites `checks_hourly` keyed by hour first, in one statement without progress of its own:
/// with many targets and a long rollup retention that is millions of rows, so a start that would make it
/// says so first (about 3 s per million rows, measured at 10,000 targets over a week: docs/benchmarks.md).
pub(crate) async fn announce_rollup_rewrite(pool: &SqlitePool, path: &std::path::Path) {
    let pending: Result<bool, sqlx::Error> = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'checks_hourly')
            AND NOT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'checks_recent')",
    )
    .fetch_one(pool)
    .await;
    if !matches!(pending, Ok(true)) {
        return;
    }
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM checks_hourly")
        .fetch_one(pool)
        .await
        .unwrap_or(0);
    if rows >= 100_000 {
        tracing::info!(
            path = %path.display(), rows,
            "upgrading the database: the hourly rollups are rewritten keyed by hour (about 3 s per million rows, once)"
        );
    }
}

/// Settles what an earlier run left staged (it stopped without its last settle: killed, or the disk failed),
/// in one transaction of its own.
pub(crate) async fn settle_leftovers(pool: &SqlitePool) -> Result<Settled, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    if oldest_staged(&mut conn).await?.is_none() {
        return Ok(Settled::default());
    }
    // IMMEDIATE, as the writer's settles (`writer.rs`): it reads before it writes.
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
    let settled = settle(&mut tx).await?;
    tx.commit().await?;
    txn::confirm_committed(&mut conn).await?;
    Ok(settled)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use chrono::TimeZone;

    use super::*;
    use crate::breaker::BreakerState;
    use crate::kind::ServiceKind;
    use crate::metrics::{ServiceMetrics, WriterMetrics};
    use crate::records::{CheckRecord, CheckSource, Outcome};
    use crate::store::health_checks::HistoryQuery;
    use crate::store::writer::{self, CheckWriter, WriterHandle, WriterSettings};
    use crate::store::Store;

    fn start_writer(store: &Store, settle_interval: Duration) -> (CheckWriter, WriterHandle) {
        let metrics = ServiceMetrics::new(ServiceKind::HealthProxy);
        writer::spawn(
            store.clone(),
            WriterSettings {
                flush_interval: Duration::from_millis(10),
                batch_size: 1_000,
                settle_interval,
            },
            WriterMetrics::register(metrics.registry()),
        )
    }

    fn check(service: &str, at_ms: i64, outcome: Outcome, source: CheckSource) -> CheckRecord {
        CheckRecord {
            checked_at: from_ms(at_ms),
            service: Arc::from(service),
            outcome,
            http_status: Some(200),
            latency: Some(Duration::from_millis(7)),
            error: (outcome != Outcome::Up).then(|| "refused".to_owned()),
            breaker_state: BreakerState::Closed,
            source,
        }
    }

    async fn count(store: &Store, sql: &str) -> i64 {
        sqlx::query_scalar(sql)
            .fetch_one(store.pool())
            .await
            .unwrap()
    }

    /// Waits until the writer has committed `rows` rows in all.
    async fn written(writer: &CheckWriter, rows: u64) {
        for _ in 0..500 {
            if writer
                .stats()
                .written
                .load(std::sync::atomic::Ordering::Relaxed)
                >= rows
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the writer did not write {rows} rows");
    }

    /// Two hours of 3 targets, a check every 10 s, every 5th down, and one on-demand check in 7.
    fn history() -> Vec<CheckRecord> {
        let start = Utc
            .with_ymd_and_hms(2026, 12, 1, 10, 0, 0)
            .unwrap()
            .timestamp_millis();
        (0..720)
            .flat_map(|i| {
                ["a", "b", "c"]
                    .into_iter()
                    .enumerate()
                    .map(move |(k, name)| {
                        let outcome = if (i + k) % 5 == 0 {
                            Outcome::Down
                        } else {
                            Outcome::Up
                        };
                        let source = if i % 7 == 3 {
                            CheckSource::OnDemand
                        } else {
                            CheckSource::Monitor
                        };
                        check(name, start + i as i64 * 10_000 + k as i64, outcome, source)
                    })
            })
            .collect()
    }

    #[tokio::test]
    async fn staged_checks_are_seen_at_once_and_settle_into_checks_and_rollups_at_shutdown() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("hale.db")).await.unwrap();
        let (writer, handle) = start_writer(&store, Duration::from_secs(3_600));
        let checks = history();
        for c in &checks {
            writer.submit(c.clone()).await.unwrap();
        }
        written(&writer, checks.len() as u64).await;
        let total = checks.len() as i64;

        // Before a settle: everything staged, nothing in `checks` or the rollups, all of it readable.
        assert_eq!(
            count(&store, "SELECT count(*) FROM checks_recent").await,
            total
        );
        assert_eq!(count(&store, "SELECT count(*) FROM checks").await, 0);
        assert_eq!(count(&store, "SELECT count(*) FROM checks_hourly").await, 0);
        assert_eq!(
            count(&store, "SELECT count(*) FROM health_checks").await,
            total
        );
        assert_eq!(store.count_checks(None).await.unwrap(), total);
        assert_eq!(store.count_checks(Some("b")).await.unwrap(), 720);
        let oldest = checks.iter().map(|c| c.checked_at).min();
        assert_eq!(writer.stats().first_unsettled(), oldest);
        let page = HistoryQuery {
            service: Some("b".to_owned()),
            limit: 5,
            ..HistoryQuery::default()
        };
        let (newest, next) = store.check_history(&page).await.unwrap();
        assert_eq!(newest.len(), 5);
        assert!(next.is_some());
        assert_eq!(newest[0].checked_at, checks[checks.len() - 2].checked_at);

        handle.shutdown().await;

        // After: all in `checks`, none staged, and each hour's rollup counts its scheduled checks.
        assert_eq!(count(&store, "SELECT count(*) FROM checks").await, total);
        assert_eq!(count(&store, "SELECT count(*) FROM checks_recent").await, 0);
        assert_eq!(
            count(&store, "SELECT count(*) FROM health_checks").await,
            total
        );
        let expected: Vec<(String, i64, i64, i64)> = sqlx::query_as(
            "SELECT service, checked_at_ms / 3600000 * 3600000, count(*), sum(outcome = 'up')
             FROM health_checks WHERE source = 'monitor' GROUP BY 1, 2 ORDER BY 1, 2",
        )
        .fetch_all(store.pool())
        .await
        .unwrap();
        let rollups: Vec<(String, i64, i64, i64)> = sqlx::query_as(
            "SELECT service, hour_ms, total, good FROM health_check_hourly ORDER BY 1, 2",
        )
        .fetch_all(store.pool())
        .await
        .unwrap();
        assert_eq!(rollups, expected);
        assert_eq!(expected.len(), 6);
        // The same page, now from `checks`.
        let (settled, _) = store.check_history(&page).await.unwrap();
        assert_eq!(settled, newest);
    }

    #[tokio::test]
    async fn settles_every_interval_and_adds_to_rollups_already_stored() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("hale.db")).await.unwrap();
        let (writer, handle) = start_writer(&store, Duration::ZERO);
        let checks = history();
        // In small pieces: each settle adds a few checks to hours that already have rows.
        for piece in checks.chunks(50) {
            for c in piece {
                writer.submit(c.clone()).await.unwrap();
            }
            tokio::time::sleep(Duration::from_millis(15)).await;
        }
        written(&writer, checks.len() as u64).await;
        for _ in 0..500 {
            if writer.stats().first_unsettled().is_none() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(writer.stats().first_unsettled(), None);
        assert_eq!(count(&store, "SELECT count(*) FROM checks_recent").await, 0);
        assert_eq!(
            count(&store, "SELECT count(*) FROM checks").await,
            checks.len() as i64
        );
        let monitor = checks.iter().filter(|c| c.source == CheckSource::Monitor);
        let good = monitor.clone().filter(|c| c.outcome == Outcome::Up).count() as i64;
        assert_eq!(
            count(&store, "SELECT sum(total) FROM checks_hourly").await,
            monitor.count() as i64
        );
        assert_eq!(
            count(&store, "SELECT sum(good) FROM checks_hourly").await,
            good
        );
        handle.shutdown().await;
    }

    #[tokio::test]
    async fn a_settle_over_many_targets_adds_to_the_hours_rows_read_in_one_range() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("hale.db")).await.unwrap();
        let (writer, handle) = start_writer(&store, Duration::ZERO);
        let hour = Utc
            .with_ymd_and_hms(2026, 12, 1, 10, 0, 0)
            .unwrap()
            .timestamp_millis();
        // 200 targets, three waves in one hour, each settled on its own: the second and third add to rows
        // the first stored. Target t7 fails every time.
        for wave in 0..3i64 {
            for t in 0..200 {
                let outcome = if t == 7 { Outcome::Down } else { Outcome::Up };
                let name = format!("t{t}");
                let at = hour + wave * 600_000 + t;
                writer
                    .submit(check(&name, at, outcome, CheckSource::Monitor))
                    .await
                    .unwrap();
            }
            written(&writer, 200 * (wave as u64 + 1)).await;
            for _ in 0..500 {
                if writer.stats().first_unsettled().is_none() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            assert_eq!(count(&store, "SELECT count(*) FROM checks_recent").await, 0);
        }
        handle.shutdown().await;
        assert_eq!(
            count(&store, "SELECT count(*) FROM checks_hourly").await,
            200
        );
        assert_eq!(
            count(&store, "SELECT min(total) FROM checks_hourly").await,
            3
        );
        assert_eq!(
            count(&store, "SELECT max(total) FROM checks_hourly").await,
            3
        );
        assert_eq!(
            count(&store, "SELECT sum(good) FROM checks_hourly").await,
            597
        );
        assert_eq!(
            count(
                &store,
                "SELECT good FROM health_check_hourly WHERE service = 't7'"
            )
            .await,
            0
        );
    }

    /// Stages `waves` of checks of targets 1..=`targets` straight into `checks_recent`, settling after each
    /// wave in pieces of `per_piece` targets; returns every `checks` and `checks_hourly` row, in key order.
    async fn settle_waves(
        per_piece: i64,
        targets: i64,
    ) -> (
        Vec<(i64, i64, i64, i64, Option<i64>)>,
        Vec<rollups::StoredRow>,
    ) {
        use crate::breaker::BreakerState;
        use crate::store::codes::pack;
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("hale.db")).await.unwrap();
        sqlx::query(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?1)
             INSERT INTO targets (id, name) SELECT i, 't' || i FROM n",
        )
        .bind(targets)
        .execute(store.pool())
        .await
        .unwrap();
        let hour = Utc
            .with_ymd_and_hms(2026, 12, 1, 10, 0, 0)
            .unwrap()
            .timestamp_millis();
        let up = pack(Outcome::Up, BreakerState::Closed, CheckSource::Monitor);
        let down = pack(Outcome::Down, BreakerState::Closed, CheckSource::Monitor);
        let on_demand = pack(Outcome::Up, BreakerState::Closed, CheckSource::OnDemand);
        // Wave 0 in the hour's last minutes, wave 1 across its end (added to rows wave 0 stored, and new rows
        // of the next hour), wave 2 in the next hour; some down, some on demand, latencies spread.
        for wave in 0..3i64 {
            let mut tx = store.pool().begin().await.unwrap();
            for k in 0..4i64 {
                let at = hour + 3_300_000 + wave * 200_000 + k * 60_000;
                sqlx::query(
                    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?1)
                     INSERT INTO checks_recent (checked_at_ms, target_id, state, latency_us)
                     SELECT ?2 + i, i, CASE WHEN (i + ?3) % 11 = 0 THEN ?4 WHEN (i + ?3) % 13 = 0 THEN ?5
                                             ELSE ?6 END,
                            ((i * 7919 + ?3 * 104729) % 400000) + 200
                     FROM n",
                )
                .bind(targets)
                .bind(at)
                .bind(wave * 4 + k)
                .bind(down)
                .bind(on_demand)
                .bind(up)
                .execute(&mut *tx)
                .await
                .unwrap();
            }
            let settled = settle_in_pieces(&mut tx, per_piece).await.unwrap();
            tx.commit().await.unwrap();
            assert_eq!(settled.checks, 4 * targets as u64);
        }
        assert_eq!(count(&store, "SELECT count(*) FROM checks_recent").await, 0);
        let checks = sqlx::query_as(
            "SELECT target_id, checked_at_ms, seq, state, latency_us FROM checks
             ORDER BY target_id, checked_at_ms, seq",
        )
        .fetch_all(store.pool())
        .await
        .unwrap();
        let hourly = sqlx::query_as(
            "SELECT target_id, hour_ms, total, good, latency_sum_us, latency_max_us, latency_buckets
             FROM checks_hourly ORDER BY hour_ms, target_id",
        )
        .fetch_all(store.pool())
        .await
        .unwrap();
        (checks, hourly)
    }

    /// A settle moves and rolls up a bounded piece of targets at a time, and the rollup rows of a piece are
    /// merged and written a bounded number at a time: with many targets, in pieces small or large, across an
    /// hour's end and onto rows an earlier settle stored, the result is what summing every check at once gives.
    #[tokio::test]
    async fn settling_in_pieces_gives_the_rollups_of_summing_every_check_at_once() {
        let targets = 2_300; // more than `ROWS_PER_STATEMENT` (1,000) rollup rows per hour
        let (checks, hourly) = settle_waves(TARGETS_PER_PIECE, targets).await;
        assert_eq!(checks.len(), 12 * targets as usize);
        let mut all = HourlyDeltas::default();
        for &(target, ms, _, state, latency_us) in &checks {
            all.add(target, ms, state, latency_us);
        }
        let expected = all.stored_rows();
        assert_eq!(expected.len(), 2 * targets as usize, "two hours per target");
        assert_eq!(hourly.len(), expected.len());
        for (got, want) in hourly.iter().zip(&expected) {
            assert_eq!(got, want);
        }
        // Pieces of 7 targets (and a last, shorter one), and one piece of everything: the same tables.
        assert_eq!(
            settle_waves(7, targets).await,
            (checks.clone(), hourly.clone())
        );
        assert_eq!(settle_waves(1_000_000, targets).await, (checks, hourly));
    }

    /// A settle works with a smaller page cache than the connection's share, and leaves the share as it was.
    #[tokio::test]
    async fn a_settle_gives_the_connection_its_page_cache_size_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("hale.db")).await.unwrap();
        let mut conn = store.pool().acquire().await.unwrap();
        let share: i64 = sqlx::query_scalar("PRAGMA cache_size")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        assert!(-share > SETTLE_CACHE_KIB, "{share}");
        sqlx::query(
            "INSERT INTO targets (id, name) VALUES (1, 'a');
             INSERT INTO checks_recent (checked_at_ms, target_id, state, latency_us)
             VALUES (1764583200000, 1, 0, 900)",
        )
        .execute(&mut *conn)
        .await
        .unwrap();
        let mut tx = conn.begin().await.unwrap();
        assert_eq!(settle(&mut tx).await.unwrap().checks, 1);
        tx.commit().await.unwrap();
        let after: i64 = sqlx::query_scalar("PRAGMA cache_size")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        assert_eq!(after, share);
    }

    #[tokio::test]
    async fn a_staged_check_at_a_settled_checks_millisecond_is_renumbered_not_lost() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("hale.db")).await.unwrap();
        let at = Utc
            .with_ymd_and_hms(2026, 12, 1, 10, 0, 0)
            .unwrap()
            .timestamp_millis();
        // Settled first, then two more of the same target and millisecond staged.
        let (writer, handle) = start_writer(&store, Duration::ZERO);
        writer
            .submit(check("a", at, Outcome::Up, CheckSource::Monitor))
            .await
            .unwrap();
        handle.shutdown().await;
        let (writer, handle) = start_writer(&store, Duration::from_secs(3_600));
        for outcome in [Outcome::Down, Outcome::Timeout] {
            writer
                .submit(check("a", at, outcome, CheckSource::Monitor))
                .await
                .unwrap();
        }
        written(&writer, 2).await;
        assert_eq!(count(&store, "SELECT count(*) FROM checks_recent").await, 2);
        handle.shutdown().await;

        let rows: Vec<(i64, String)> =
            sqlx::query_as("SELECT seq, outcome FROM health_checks ORDER BY seq")
                .fetch_all(store.pool())
                .await
                .unwrap();
        let seqs: Vec<i64> = rows.iter().map(|(seq, _)| *seq).collect();
        let outcomes: Vec<&str> = rows.iter().map(|(_, o)| o.as_str()).collect();
        assert_eq!(seqs, [0, 1, 2]);
        assert_eq!(outcomes, ["up", "down", "timeout"]);
        assert_eq!(count(&store, "SELECT total FROM checks_hourly").await, 3);
    }

    /// A settle reads before it writes; begun as a deferred transaction, a commit of another connection while
    /// it read would make its first write fail at once (SQLITE_BUSY on a stale snapshot).
    #[tokio::test]
    async fn a_settle_waits_for_another_writer_instead_of_failing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("hale.db")).await.unwrap();
        sqlx::query(
            "INSERT INTO targets (id, name) VALUES (1, 'a');
             INSERT INTO checks_recent (checked_at_ms, target_id, state, latency_us)
             VALUES (1764583200000, 1, 0, 900), (1764583210000, 1, 1, 1200)",
        )
        .execute(store.pool())
        .await
        .unwrap();
        // Another writer holds the write lock, and commits while the settle waits.
        let mut other = store.pool().acquire().await.unwrap();
        sqlx::query("BEGIN IMMEDIATE")
            .execute(&mut *other)
            .await
            .unwrap();
        sqlx::query("INSERT INTO hale_meta (key, value) VALUES ('probe', 'x')")
            .execute(&mut *other)
            .await
            .unwrap();
        let pool = store.pool().clone();
        let settling = tokio::spawn(async move { settle_leftovers(&pool).await });
        tokio::time::sleep(Duration::from_millis(300)).await;
        sqlx::query("COMMIT").execute(&mut *other).await.unwrap();
        let settled = settling
            .await
            .unwrap()
            .expect("the settle waits for the lock, then succeeds");
        assert_eq!(settled.checks, 2);
        assert_eq!(count(&store, "SELECT count(*) FROM checks").await, 2);
        assert_eq!(count(&store, "SELECT total FROM checks_hourly").await, 2);
    }

    #[tokio::test]
    async fn checks_left_staged_by_a_run_that_was_killed_are_settled_at_the_next_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hale.db");
        let store = Store::open(&path).await.unwrap();
        let (writer, handle) = start_writer(&store, Duration::from_secs(3_600));
        let checks = history();
        for c in &checks {
            writer.submit(c.clone()).await.unwrap();
        }
        written(&writer, checks.len() as u64).await;
        // What a kill leaves: the staged rows, committed, and no settle. (The writer task is dropped, not
        // shut down; the copy below is taken while it holds its rows staged.)
        let copy = dir.path().join("copy.db");
        sqlx::query("VACUUM INTO ?1")
            .bind(copy.display().to_string())
            .execute(store.pool())
            .await
            .unwrap();
        drop(handle);
        drop(writer);
        let reopened = Store::open(&copy).await.unwrap();
        assert_eq!(
            count(&reopened, "SELECT count(*) FROM checks_recent").await,
            0
        );
        assert_eq!(
            count(&reopened, "SELECT count(*) FROM checks").await,
            checks.len() as i64
        );
        let monitor = checks
            .iter()
            .filter(|c| c.source == CheckSource::Monitor)
            .count();
        assert_eq!(
            count(&reopened, "SELECT sum(total) FROM checks_hourly").await,
            monitor as i64
        );
    }
}
