//! The window an SLO is computed over, parsed from `1h`..`Nd`: only hours and days, from one hour up to the
//! rollup retention.

use chrono::{DateTime, Duration, TimeDelta, Timelike, Utc};

use crate::slo::model::SloWindow;

impl SloWindow {
    /// `[now - length, now)` for `raw` such as `1h`, `36h` or `7d`. The error names the problem, e.g.
    /// `"8x" is not a duration like 1h or 7d`.
    pub fn parse(raw: &str, now: DateTime<Utc>, max_days: u32) -> Result<SloWindow, String> {
        let not_a_duration = || format!("{raw:?} is not a duration like 1h or 7d");
        let Some(unit) = raw.chars().last() else {
            return Err(not_a_duration());
        };
        let digits = &raw[..raw.len() - unit.len_utf8()];
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(not_a_duration());
        }
        let n: i64 = digits.parse().map_err(|_| not_a_duration())?;
        let hours = match unit {
            'h' => n,
            'd' => n.checked_mul(24).ok_or_else(not_a_duration)?,
            _ => return Err(not_a_duration()),
        };
        if hours < 1 {
            return Err(format!("{raw:?} is shorter than 1h"));
        }
        if hours > i64::from(max_days) * 24 {
            return Err(format!(
                "{raw:?} is longer than the rollup retention of {max_days} days"
            ));
        }
        Ok(SloWindow {
            label: raw.to_owned(),
            from: now - Duration::hours(hours),
            until: now,
        })
    }

    /// The last `days` days up to `now`, labelled `{days}d`.
    pub fn last_days(days: u32, now: DateTime<Utc>) -> SloWindow {
        SloWindow {
            label: format!("{days}d"),
            from: now - Duration::days(i64::from(days)),
            until: now,
        }
    }

    /// `until - from`.
    pub fn length(&self) -> Duration {
        self.until - self.from
    }
}

/// The SLO window as whole hours: the `days × 24` hourly rollups up to and including the current hour.
pub fn whole_hours(now: DateTime<Utc>, days: u32) -> (DateTime<Utc>, DateTime<Utc>) {
    let hour = now
        .with_nanosecond(0)
        .and_then(|t| t.with_second(0))
        .and_then(|t| t.with_minute(0))
        .unwrap_or(now);
    let until = hour + TimeDelta::hours(1);
    (until - TimeDelta::days(i64::from(days)), until)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 1, 12, 30, 0).unwrap()
    }

    #[test]
    fn hours_and_days_parse_into_a_window_ending_now() {
        let w = SloWindow::parse("36h", now(), 90).unwrap();
        assert_eq!(w.until, now());
        assert_eq!(w.length(), Duration::hours(36));
        assert_eq!(w.label, "36h");
        assert_eq!(
            SloWindow::parse("7d", now(), 90).unwrap(),
            SloWindow::last_days(7, now())
        );
    }

    #[test]
    fn bad_windows_say_what_is_wrong() {
        let err = |raw| SloWindow::parse(raw, now(), 90).unwrap_err();
        assert_eq!(err("8x"), r#""8x" is not a duration like 1h or 7d"#);
        assert_eq!(err("h"), r#""h" is not a duration like 1h or 7d"#);
        assert_eq!(err("-1h"), r#""-1h" is not a duration like 1h or 7d"#);
        assert_eq!(err("30m"), r#""30m" is not a duration like 1h or 7d"#);
        assert_eq!(err(""), r#""" is not a duration like 1h or 7d"#);
        assert_eq!(err("7é"), r#""7é" is not a duration like 1h or 7d"#);
        assert_eq!(err("0h"), r#""0h" is shorter than 1h"#);
        assert_eq!(
            err("91d"),
            r#""91d" is longer than the rollup retention of 90 days"#
        );
        assert_eq!(
            err("99999999999999999999d"),
            r#""99999999999999999999d" is not a duration like 1h or 7d"#
        );
        assert!(SloWindow::parse("2160h", now(), 90).is_ok());
    }
}
