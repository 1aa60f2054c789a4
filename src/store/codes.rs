//! The small integers the `checks` table stores for outcomes, breaker states and sources: one table per set,
//! the only place the numbers are written in Rust, and how the three share the one `state` column (outcome in
//! bits 0-2, breaker in bits 3-4, source in bit 5: 0 for the usual up, closed, monitor check, which SQLite
//! stores in no data byte at all). `migrations/0009_compact_checks.sql` documents the same codes and decodes
//! them in the `health_checks` view; a test checks that the view and these tables agree.

use crate::breaker::BreakerState;
use crate::records::{CheckSource, Outcome};

/// A closed set stored as a small integer.
pub(crate) trait Code: Copy + PartialEq + Sized + 'static {
    /// Every value with its stored code.
    const CODES: &'static [(Self, i64)];
    /// The column that holds it, for messages about unknown codes.
    const COLUMN: &'static str;

    /// The name the value had as TEXT before migration 9 (and has in the `health_checks` view).
    fn name(self) -> &'static str;

    /// An SQL expression turning the old TEXT `column` into the code (NULL for an unknown name).
    fn from_name_sql(column: &str) -> String {
        let arms: String = Self::CODES
            .iter()
            .map(|(v, c)| format!(" WHEN '{}' THEN {c}", v.name()))
            .collect();
        format!("CASE {column}{arms} END")
    }

    fn code(self) -> i64 {
        Self::CODES
            .iter()
            .find(|(v, _)| *v == self)
            .map_or(-1, |(_, c)| *c)
    }

    fn from_code(code: i64) -> Option<Self> {
        Self::CODES
            .iter()
            .find(|(_, c)| *c == code)
            .map(|(v, _)| *v)
    }
}

impl Code for Outcome {
    const CODES: &'static [(Self, i64)] = &[
        (Outcome::Up, 0),
        (Outcome::Down, 1),
        (Outcome::Timeout, 2),
        (Outcome::CircuitOpen, 3),
        (Outcome::Error, 4),
    ];
    const COLUMN: &'static str = "outcome";

    fn name(self) -> &'static str {
        self.as_str()
    }
}

impl Code for BreakerState {
    const CODES: &'static [(Self, i64)] = &[
        (BreakerState::Closed, 0),
        (BreakerState::Open, 1),
        (BreakerState::HalfOpen, 2),
    ];
    const COLUMN: &'static str = "breaker";

    fn name(self) -> &'static str {
        self.as_str()
    }
}

impl Code for CheckSource {
    const CODES: &'static [(Self, i64)] = &[(CheckSource::Monitor, 0), (CheckSource::OnDemand, 1)];
    const COLUMN: &'static str = "source";

    fn name(self) -> &'static str {
        self.as_str()
    }
}

/// Where the breaker's code starts in `state`.
pub(crate) const BREAKER_SHIFT: u32 = 3;
/// Where the source's code starts in `state`.
pub(crate) const SOURCE_SHIFT: u32 = 5;
/// The outcome's bits.
pub(crate) const OUTCOME_MASK: i64 = 0b111;
/// The breaker's bits, once shifted down.
pub(crate) const BREAKER_MASK: i64 = 0b11;

/// The `state` of a check.
pub(crate) fn pack(outcome: Outcome, breaker: BreakerState, source: CheckSource) -> i64 {
    outcome.code() | (breaker.code() << BREAKER_SHIFT) | (source.code() << SOURCE_SHIFT)
}

/// A `state` read back; `None` (logged) when a part is unknown.
pub(crate) fn unpack(state: i64) -> Option<(Outcome, BreakerState, CheckSource)> {
    Some((
        decode(state & OUTCOME_MASK)?,
        decode((state >> BREAKER_SHIFT) & BREAKER_MASK)?,
        decode(state >> SOURCE_SHIFT)?,
    ))
}

/// SQL for the outcome code of the `state` column `col`.
pub(crate) fn outcome_sql(col: &str) -> String {
    format!("({col} & {OUTCOME_MASK})")
}

/// SQL for the source code of the `state` column `col`.
pub(crate) fn source_sql(col: &str) -> String {
    format!("({col} >> {SOURCE_SHIFT})")
}

/// SQL turning the old TEXT columns into a `state` (used when copying rows of the old table).
pub(crate) fn pack_names_sql(outcome: &str, breaker: &str, source: &str) -> String {
    format!(
        "({} | ({} << {BREAKER_SHIFT}) | ({} << {SOURCE_SHIFT}))",
        Outcome::from_name_sql(outcome),
        BreakerState::from_name_sql(breaker),
        CheckSource::from_name_sql(source)
    )
}

/// A stored code read back; an unknown one is logged (once per read) and the row skipped, like an unknown
/// TEXT value was.
pub(crate) fn decode<T: Code>(code: i64) -> Option<T> {
    let value = T::from_code(code);
    if value.is_none() {
        tracing::warn!(
            table = "checks",
            column = T::COLUMN,
            code,
            "skipping a row with an unknown code"
        );
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    fn distinct<T: Code>() -> bool {
        T::CODES
            .iter()
            .enumerate()
            .all(|(i, (v, c))| T::CODES[i + 1..].iter().all(|(w, d)| w != v && d != c))
    }

    #[test]
    fn every_value_has_one_code_and_codes_are_distinct() {
        for o in Outcome::ALL {
            assert_eq!(Outcome::from_code(o.code()), Some(o));
        }
        for s in CheckSource::ALL {
            assert_eq!(CheckSource::from_code(s.code()), Some(s));
        }
        for b in [
            BreakerState::Closed,
            BreakerState::Open,
            BreakerState::HalfOpen,
        ] {
            assert_eq!(BreakerState::from_code(b.code()), Some(b));
        }
        assert!(distinct::<Outcome>() && distinct::<BreakerState>() && distinct::<CheckSource>());
        // Every code fits its bits.
        assert!(Outcome::CODES.iter().all(|(_, c)| *c & !OUTCOME_MASK == 0));
        assert!(BreakerState::CODES
            .iter()
            .all(|(_, c)| *c & !BREAKER_MASK == 0));
        assert!(CheckSource::CODES.iter().all(|(_, c)| *c & !1 == 0));
        assert_eq!(
            pack(Outcome::Up, BreakerState::Closed, CheckSource::Monitor),
            0,
            "the usual check costs no data byte"
        );
        assert_eq!(Outcome::from_code(99), None);
    }

    /// The view's CASE expressions decode every code to the name `as_str` gives.
    #[tokio::test]
    async fn the_view_decodes_the_codes_as_rust_does() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("hale.db")).await.unwrap();
        sqlx::query("INSERT INTO targets (id, name) VALUES (1, 'api')")
            .execute(store.pool())
            .await
            .unwrap();
        let mut at = 0;
        for o in Outcome::ALL {
            for b in [
                BreakerState::Closed,
                BreakerState::Open,
                BreakerState::HalfOpen,
            ] {
                for s in CheckSource::ALL {
                    at += 1;
                    assert_eq!(unpack(pack(o, b, s)), Some((o, b, s)));
                    sqlx::query(
                        "INSERT INTO checks (target_id, checked_at_ms, state) VALUES (1, ?1, ?2)",
                    )
                    .bind(at)
                    .bind(pack(o, b, s))
                    .execute(store.pool())
                    .await
                    .unwrap();
                    let row: (String, String, String) = sqlx::query_as(
                        "SELECT outcome, breaker_state, source FROM health_checks WHERE checked_at_ms = ?1",
                    )
                    .bind(at)
                    .fetch_one(store.pool())
                    .await
                    .unwrap();
                    assert_eq!(
                        row,
                        (
                            o.as_str().to_owned(),
                            b.as_str().to_owned(),
                            s.as_str().to_owned()
                        )
                    );
                }
            }
        }
    }
}
