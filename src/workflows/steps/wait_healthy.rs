//! The `wait_healthy` step: waits on the monitor's check events (never the database) until a target has
//! passed N checks in a row.

use std::time::Duration;

use serde_json::{json, Value};

use crate::events::{Event, Subscription};
use crate::records::Outcome;
use crate::workflows::steps::http::seconds;
use crate::workflows::steps::{Failure, StepResult};
use crate::workflows::FailureClass;

/// Waits until `target` passed `consecutive` checks in a row, or `timeout`.
///
/// Only checks finished after `checks` was subscribed count: an `up` adds one to the count, any other
/// outcome (down, timeout, an open breaker, an error) sets it back to zero. The output is
/// `{"consecutive": N, "last_latency_ms": ..}` (null when the last check has no latency).
pub async fn run(
    mut checks: Subscription,
    target: &str,
    consecutive: u32,
    timeout: Duration,
) -> StepResult {
    if consecutive == 0 {
        return Ok(json!({ "consecutive": 0, "last_latency_ms": Value::Null }));
    }
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    let mut in_a_row: u32 = 0;
    loop {
        let event = tokio::select! {
            event = checks.recv() => event,
            () = &mut deadline => {
                return Err(Failure::of(
                    FailureClass::Timeout,
                    format!(
                        "{target} passed {in_a_row} of {consecutive} checks in a row within {}",
                        seconds(timeout)
                    ),
                ));
            }
        };
        let Some(event) = event else {
            return Err(Failure::fatal(format!(
                "the check events ended (hale is shutting down) while waiting for {target} to pass \
                 {consecutive} checks in a row ({in_a_row} so far)"
            )));
        };
        let Event::CheckFinished(check) = &*event else {
            continue;
        };
        if &*check.target != target {
            continue;
        }
        if check.outcome != Outcome::Up {
            in_a_row = 0;
            continue;
        }
        in_a_row += 1;
        if in_a_row >= consecutive {
            let last_latency_ms = check
                .latency
                .map(|l| u64::try_from(l.as_millis()).unwrap_or(u64::MAX));
            return Ok(json!({
                "consecutive": in_a_row,
                "last_latency_ms": last_latency_ms,
            }));
        }
    }
}
