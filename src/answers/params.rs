//! Query parameters shared by the services' routes (times, limits, names, closed sets, flags), each parsed
//! with an error that names the parameter.

use chrono::{DateTime, Utc};

use crate::config::ServiceName;

/// A time such as `since` or `until`: RFC 3339.
pub fn time(name: &str, raw: Option<&str>) -> Result<Option<DateTime<Utc>>, String> {
    raw.map(|s| {
        DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| format!("{name}: {s:?} is not an RFC 3339 time ({e})"))
    })
    .transpose()
}

/// `limit`: 1 to `max`, `default` when absent.
pub fn limit(raw: Option<&str>, default: u32, max: u32) -> Result<u32, String> {
    match raw {
        None => Ok(default),
        Some(raw) => match raw.parse::<u32>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(format!("limit: {raw:?} is not a number from 1 to {max}")),
        },
    }
}

/// A page number such as `page`: 1 to `pages`, 1 when absent.
pub fn page(name: &str, raw: Option<&str>, pages: u32) -> Result<u32, String> {
    match raw {
        None => Ok(1),
        Some(raw) => match raw.parse::<u32>() {
            Ok(n) if (1..=pages).contains(&n) => Ok(n),
            _ => {
                let shown: String = raw.chars().take(32).collect();
                Err(format!(
                    "{name}: {shown:?} is not a page number from 1 to {pages}"
                ))
            }
        },
    }
}

/// An offset such as `offset`: 0 to `max`, 0 when absent.
pub fn offset(name: &str, raw: Option<&str>, max: u32) -> Result<u32, String> {
    match raw {
        None => Ok(0),
        Some(raw) => match raw.parse::<u32>() {
            Ok(n) if n <= max => Ok(n),
            _ => {
                let shown: String = raw.chars().take(32).collect();
                Err(format!("{name}: {shown:?} is not a number from 0 to {max}"))
            }
        },
    }
}

/// A target's name, as a filter.
pub fn target(name: &str, raw: Option<&str>) -> Result<Option<String>, String> {
    raw.map(|s| {
        ServiceName::parse(s)
            .map(String::from)
            .map_err(|e| format!("{name}: {e}"))
    })
    .transpose()
}

/// One of a closed set of names.
pub fn one_of<T: Copy>(
    name: &str,
    raw: Option<&str>,
    all: &[T],
    as_str: fn(T) -> &'static str,
) -> Result<Option<T>, String> {
    raw.map(|s| {
        all.iter()
            .copied()
            .find(|v| as_str(*v) == s)
            .ok_or_else(|| {
                let names: Vec<&str> = all.iter().map(|v| as_str(*v)).collect();
                format!("{name}: {s:?} is not one of {}", names.join(", "))
            })
    })
    .transpose()
}

/// A flag: `true` or `false`, false when absent.
pub fn flag(name: &str, raw: Option<&str>) -> Result<bool, String> {
    match raw {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(other) => Err(format!("{name}: {other:?} is not true or false")),
    }
}
