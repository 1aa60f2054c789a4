//! The `command` step: a program run directly (no shell) in its own process group, its output kept up to a
//! cap; on timeout or cancel, SIGTERM to the group, a grace period, then SIGKILL.

use std::path::PathBuf;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::supervise::child::Spawner;
use crate::workflows::steps::{Failure, StepResult};

/// A `command` step, rendered.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandSpec {
    pub argv: Vec<String>,
    pub cwd: Option<PathBuf>,
    /// The whole environment of the command (built by `supervise::env`: never hale's tokens).
    pub env: Vec<(String, String)>,
    pub output_cap_bytes: u64,
    pub timeout: Duration,
    /// After SIGTERM, how long before SIGKILL.
    pub kill_grace: Duration,
}

/// Runs the command; its output is its exit code and what it wrote, cut at the cap.
pub async fn run(
    _spawner: &Spawner,
    _spec: &CommandSpec,
    _cancel: &CancellationToken,
) -> StepResult {
    Err(Failure::fatal("command steps are not built yet"))
}
