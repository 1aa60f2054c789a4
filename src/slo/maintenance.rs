//! Maintenance windows: planned downtime whose scheduled checks are not valid for an SLO. Windows come from
//! the config (`slo.maintenance`, read at start, never copied into the database) and from `POST
//! /maintenance` (stored in `maintenance_windows`); both are listed and applied alike.
//!
//! `MaintenanceCalendar` answers "is target X in maintenance at t" from memory for auto-heal and the alert
//! manager, which both hold off on a target while one of its windows covers it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::clock::Clock;
use crate::config::{Config, SloConfig, MAX_MAINTENANCE_DAYS};
pub use crate::records::maintenance::{MaintenanceSource, MaintenanceWindow};
use crate::store::Store;
use chrono::{DateTime, Utc};

/// How old the calendar's copy of the windows may grow (on hale's clock) before a question reads them again.
pub const CALENDAR_REFRESH: Duration = Duration::from_secs(30);

/// How long the calendar keeps a window after it ended, so that a check handled a little late is still
/// judged by the windows in force when it was made.
const KEEP_ENDED: chrono::Duration = chrono::Duration::hours(1);

/// The rules a window posted to the API meets on top of `config::check_maintenance`, by the time it is
/// posted (`now`): it must end in the future, and it may start at most `grace` in the past unless it is
/// declared `retroactive`. Pure; the error names the field.
pub fn check_posted(
    starts_at: DateTime<Utc>,
    ends_at: DateTime<Utc>,
    now: DateTime<Utc>,
    grace: chrono::Duration,
    retroactive: bool,
) -> Result<(), (&'static str, String)> {
    if ends_at <= now {
        return Err((
            "ends_at",
            format!(
                "{} is not in the future (now is {}): a maintenance window cannot end in the past",
                ends_at.to_rfc3339(),
                now.to_rfc3339()
            ),
        ));
    }
    if starts_at < now - grace && !retroactive {
        return Err((
            "starts_at",
            format!(
                "{} is more than {} minutes in the past: declare \"retroactive\": true (admin role) to remove checks already made from the SLO",
                starts_at.to_rfc3339(),
                grace.num_minutes()
            ),
        ));
    }
    Ok(())
}

/// The config file's windows.
pub fn config_windows(config: &SloConfig) -> Vec<MaintenanceWindow> {
    config
        .maintenance
        .iter()
        .map(|m| MaintenanceWindow {
            id: None,
            target: m.target.clone(),
            starts_at: m.starts_at,
            ends_at: m.ends_at,
            reason: m.reason.clone(),
            source: MaintenanceSource::Config,
            created_at: None,
            retroactive: false,
        })
        .collect()
}

/// The maintenance windows in force now or soon (and those ended within the last hour), from the config and
/// the database, shared by auto-heal and the alert manager. It has no worker of its own: whoever is about to
/// ask calls `refresh_if_due`, which reads the windows again at the first call and then once
/// `CALENDAR_REFRESH` has passed on hale's clock, or at once after a `nudge` (`POST /maintenance` nudges it,
/// so a window posted there counts from the next check on). Questions (`covering`, `covers`) are answered
/// from memory. When the database cannot be read, the windows read last are kept.
#[derive(Debug)]
pub struct MaintenanceCalendar {
    store: Store,
    /// The config's `slo` section, for the windows it declares (`slo.maintenance`).
    slo: SloConfig,
    clock: Arc<dyn Clock>,
    cached: Mutex<Cached>,
    /// One read at a time: callers that find a read in progress wait for it rather than read again.
    reading: tokio::sync::Mutex<()>,
}

#[derive(Debug, Default)]
struct Cached {
    windows: Vec<MaintenanceWindow>,
    /// When the windows were last read (None: never).
    read_at: Option<DateTime<Utc>>,
    /// Nudges so far, and how many of them the last read answered: while they differ (a window was posted
    /// since the last read started), the next call reads again. Until a read is done, callers wait for it.
    nudges: u64,
    read_nudges: u64,
}

impl MaintenanceCalendar {
    pub fn new(store: Store, config: &Config, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            slo: config.slo.clone(),
            clock,
            cached: Mutex::new(Cached::default()),
            reading: tokio::sync::Mutex::new(()),
        }
    }

    fn cached(&self) -> std::sync::MutexGuard<'_, Cached> {
        self.cached.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn due(&self, now: DateTime<Utc>) -> bool {
        let cached = self.cached();
        cached.nudges != cached.read_nudges
            || cached.read_at.is_none_or(|at| {
                // A clock stepped backwards reads again too.
                now < at || (now - at).to_std().unwrap_or_default() >= CALENDAR_REFRESH
            })
    }

    /// Reads the windows again if they were never read, are `CALENDAR_REFRESH` old, or a nudge asked.
    pub async fn refresh_if_due(&self) {
        if !self.due(self.clock.now()) {
            return;
        }
        let _reading = self.reading.lock().await;
        let now = self.clock.now();
        if !self.due(now) {
            // Another caller read them while this one waited.
            return;
        }
        // The nudges this read answers: one made during the read asks for another.
        let nudges = self.cached().nudges;
        let from = now - KEEP_ENDED;
        let until = now + chrono::Duration::days(MAX_MAINTENANCE_DAYS + 1);
        let read = crate::slo::maintenance_windows_of(&self.store, &self.slo, from, until).await;
        let mut cached = self.cached();
        match read {
            Ok(windows) => cached.windows = windows,
            Err(e) => {
                tracing::warn!(error = %e, kept = cached.windows.len(), "cannot read the maintenance windows; the ones read before still apply")
            }
        }
        cached.read_at = Some(now);
        cached.read_nudges = nudges;
    }

    /// Makes the next `refresh_if_due` read the windows, whatever their age.
    pub fn nudge(&self) {
        self.cached().nudges += 1;
    }

    /// The window that covers `target` at `at` (the one that ends last, when several do), if any.
    pub fn covering(&self, target: &str, at: DateTime<Utc>) -> Option<MaintenanceWindow> {
        self.cached()
            .windows
            .iter()
            .filter(|w| w.covers_target(target) && w.is_active(at))
            .max_by_key(|w| w.ends_at)
            .cloned()
    }

    /// True when a maintenance window covers `target` at `at`.
    pub fn covers(&self, target: &str, at: DateTime<Utc>) -> bool {
        self.cached()
            .windows
            .iter()
            .any(|w| w.covers_target(target) && w.is_active(at))
    }
}

/// How a span of time meets the maintenance windows of one target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overlap {
    None,
    Partial,
    Full,
}

/// One target's maintenance windows, merged into disjoint sorted `[start, end)` spans of epoch milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Exclusions {
    spans: Vec<(i64, i64)>,
}

impl Exclusions {
    pub fn for_target(windows: &[MaintenanceWindow], target: &str) -> Self {
        let mut spans: Vec<(i64, i64)> = windows
            .iter()
            .filter(|w| w.covers_target(target))
            .map(|w| (w.starts_at.timestamp_millis(), w.ends_at.timestamp_millis()))
            .filter(|(s, e)| s < e)
            .collect();
        spans.sort_unstable();
        let mut merged: Vec<(i64, i64)> = Vec::with_capacity(spans.len());
        for (start, end) in spans {
            match merged.last_mut() {
                Some(last) if start <= last.1 => last.1 = last.1.max(end),
                _ => merged.push((start, end)),
            }
        }
        Self { spans: merged }
    }

    /// True when the instant `ms` is inside a window.
    pub fn covers(&self, ms: i64) -> bool {
        let i = self.spans.partition_point(|(start, _)| *start <= ms);
        i > 0 && ms < self.spans[i - 1].1
    }

    /// How `[from, until)` meets the windows.
    pub fn overlap(&self, from: i64, until: i64) -> Overlap {
        for &(start, end) in &self.spans {
            if end <= from || start >= until {
                continue;
            }
            return if start <= from && end >= until {
                Overlap::Full
            } else {
                Overlap::Partial
            };
        }
        Overlap::None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(target: Option<&str>, start: i64, end: i64) -> MaintenanceWindow {
        MaintenanceWindow {
            id: None,
            target: target.map(str::to_owned),
            starts_at: DateTime::from_timestamp_millis(start).unwrap(),
            ends_at: DateTime::from_timestamp_millis(end).unwrap(),
            reason: "test".to_owned(),
            source: MaintenanceSource::Api,
            created_at: None,
            retroactive: false,
        }
    }

    #[tokio::test]
    async fn the_calendar_reads_at_first_then_when_30_s_old_or_nudged() {
        use crate::clock::ManualClock;
        use crate::config::MaintenanceConfig;

        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("hale.db")).await.unwrap();
        let t0 = DateTime::from_timestamp(1_795_694_400, 0).unwrap();
        let clock = ManualClock::new(t0);
        let mut config = Config::default();
        let minutes = |m: i64| t0 + chrono::Duration::minutes(m);
        config.slo.maintenance = vec![MaintenanceConfig {
            target: None,
            starts_at: minutes(60),
            ends_at: minutes(120),
            reason: "network".into(),
        }];
        let calendar = MaintenanceCalendar::new(store.clone(), &config, Arc::new(clock.clone()));
        assert!(!calendar.covers("api", minutes(90)), "nothing read yet");
        calendar.refresh_if_due().await;
        assert!(
            calendar.covers("api", minutes(90)),
            "config windows cover every target"
        );
        assert!(
            !calendar.covers("api", minutes(120)),
            "the end is not in the window"
        );

        // A stored window is seen once the copy is 30 s old, or at once after a nudge.
        store
            .insert_maintenance(Some("api"), t0, minutes(10), "upgrade", t0)
            .await
            .unwrap();
        clock.advance(Duration::from_secs(29));
        calendar.refresh_if_due().await;
        assert!(!calendar.covers("api", clock.now()), "read 29 s ago");
        clock.advance(Duration::from_secs(1));
        calendar.refresh_if_due().await;
        let window = calendar.covering("api", clock.now()).unwrap();
        assert_eq!(
            (window.reason.as_str(), window.ends_at),
            ("upgrade", minutes(10))
        );
        assert!(
            !calendar.covers("db", clock.now()),
            "another target is not covered"
        );
        store
            .insert_maintenance(Some("db"), t0, minutes(10), "disk", t0)
            .await
            .unwrap();
        calendar.nudge();
        calendar.refresh_if_due().await;
        assert!(
            calendar.covers("db", clock.now()),
            "read again at once after a nudge"
        );
        store.close().await;
    }

    #[test]
    fn a_posted_window_ends_in_the_future_and_starts_within_the_grace_unless_retroactive() {
        let now = DateTime::from_timestamp(1_795_694_400, 0).unwrap();
        let min = |m: i64| now + chrono::Duration::minutes(m);
        let grace = chrono::Duration::minutes(15);
        assert_eq!(check_posted(min(-15), min(1), now, grace, false), Ok(()));
        assert_eq!(check_posted(min(5), min(60), now, grace, false), Ok(()));
        let (field, message) = check_posted(min(-60), min(0), now, grace, true).unwrap_err();
        assert_eq!(field, "ends_at");
        assert!(message.contains("is not in the future"), "{message}");
        let (field, message) = check_posted(min(-16), min(1), now, grace, false).unwrap_err();
        assert_eq!(field, "starts_at");
        assert!(
            message.contains("more than 15 minutes in the past"),
            "{message}"
        );
        assert_eq!(check_posted(min(-60), min(1), now, grace, true), Ok(()));
    }

    #[test]
    fn overlapping_windows_of_one_target_exclude_each_instant_once() {
        let windows = [
            window(Some("api"), 0, 100),
            window(Some("api"), 50, 150),
            window(None, 60, 120),
            window(Some("api"), 150, 160),
        ];
        let excl = Exclusions::for_target(&windows, "api");
        assert_eq!(excl.spans, vec![(0, 160)]);
        let covered = (0..200).filter(|ms| excl.covers(*ms)).count();
        assert_eq!(covered, 160);
    }

    #[test]
    fn windows_of_the_target_and_of_all_are_merged_and_others_ignored() {
        let windows = [
            window(Some("api"), 100, 200),
            window(None, 150, 300),
            window(Some("db"), 0, 1_000),
        ];
        let excl = Exclusions::for_target(&windows, "api");
        assert!(!excl.covers(99));
        assert!(excl.covers(100));
        assert!(excl.covers(299));
        assert!(!excl.covers(300), "the end is not in the window");
        assert_eq!(excl.overlap(120, 280), Overlap::Full);
        assert_eq!(excl.overlap(0, 150), Overlap::Partial);
        assert_eq!(excl.overlap(300, 400), Overlap::None);
    }
}
