//! The `wait_healthy` step: waits on the monitor's check events (never the database) until a target has
//! passed N checks in a row.

use std::time::Duration;

use crate::events::Subscription;
use crate::workflows::steps::{Failure, StepResult};

/// Waits until `target` passed `consecutive` checks in a row, or `timeout`.
pub async fn run(
    _checks: Subscription,
    _target: &str,
    _consecutive: u32,
    _timeout: Duration,
) -> StepResult {
    Err(Failure::fatal("wait_healthy steps are not built yet"))
}
