//! A target's `run` block: hale starts the service itself as a supervised child, restarts it when it exits
//! (with a capped exponential backoff) and stops it on shutdown.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::config::Invalid;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// The program and its arguments, run directly (not through a shell).
    pub argv: Vec<String>,
    /// The child's working directory; hale's own when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<PathBuf>,
    /// Added to (or replacing) hale's own environment.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// The signal that asks the child to stop.
    #[serde(default)]
    pub stop_signal: StopSignal,
    /// After the stop signal, how long hale waits before it kills the child's whole process group.
    #[serde(default = "default_stop_timeout_s")]
    pub stop_timeout_s: u64,
    /// The first restart waits this long; each quick exit doubles it...
    #[serde(default = "default_backoff_initial_ms")]
    pub backoff_initial_ms: u64,
    /// ...up to this.
    #[serde(default = "default_backoff_max_s")]
    pub backoff_max_s: u64,
    /// A child that ran this long without exiting is stable: its backoff starts over.
    #[serde(default = "default_stable_after_s")]
    pub stable_after_s: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum StopSignal {
    #[default]
    #[serde(rename = "SIGTERM")]
    Term,
    #[serde(rename = "SIGINT")]
    Int,
    #[serde(rename = "SIGQUIT")]
    Quit,
    #[serde(rename = "SIGHUP")]
    Hup,
    #[serde(rename = "SIGUSR1")]
    Usr1,
    #[serde(rename = "SIGUSR2")]
    Usr2,
}

fn default_stop_timeout_s() -> u64 {
    10
}

fn default_backoff_initial_ms() -> u64 {
    1_000
}

fn default_backoff_max_s() -> u64 {
    60
}

fn default_stable_after_s() -> u64 {
    60
}

impl RunConfig {
    pub(crate) fn validate(&self, at: &str) -> Result<(), Invalid> {
        if self.argv.is_empty() || self.argv[0].is_empty() {
            return Err(Invalid::at(
                format!("{at}.argv"),
                "a non-empty list: the program, then its arguments",
            ));
        }
        Ok(())
    }
}
