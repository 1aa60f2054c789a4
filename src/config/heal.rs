//! `heal`: auto-heal, the loop that acts on a target that is down, and its protections. A target's own way
//! to be healed (a command, or its supervised child) is in its entry under `services`.

use serde::{Deserialize, Serialize};

use crate::config::Invalid;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HealConfig {
    /// Heal automatically; `POST /heal/{target}` works either way.
    pub enabled: bool,
    /// Heal at once after this many consecutive failed scheduled checks.
    pub after_failures: u32,
    /// How often the slower sweep looks for targets that are still down.
    pub sweep_interval_s: u64,
    /// Least time between two heals of one target.
    pub cooldown_s: u64,
    /// Most heals of one target in any rolling hour; past it hale stops healing the target and raises a
    /// critical alert.
    pub max_per_hour: u32,
    /// After the action, how long hale polls the target for it to answer up.
    pub verify_timeout_s: u64,
    /// How often it polls meanwhile.
    pub verify_interval_ms: u64,
    /// No heal when more than this share of the targets fail at once (hale's own host or network is then the
    /// likelier cause)...
    pub mass_failure_share: f64,
    /// ...and at least this many targets are configured.
    pub mass_failure_min_targets: usize,
    /// Exit codes by which a supervised child says its configuration is wrong: such a child is neither
    /// restarted nor healed until its config (or hale's) changes. 78 is `EX_CONFIG` of sysexits.h.
    pub config_error_exit_codes: Vec<i32>,
}

impl Default for HealConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            after_failures: 3,
            sweep_interval_s: 300,
            cooldown_s: 300,
            max_per_hour: 3,
            verify_timeout_s: 30,
            verify_interval_ms: 1_000,
            mass_failure_share: 0.5,
            mass_failure_min_targets: 3,
            config_error_exit_codes: vec![78],
        }
    }
}

impl HealConfig {
    pub(crate) fn validate(&self) -> Result<(), Invalid> {
        let range = |field: &str, value: u64, low: u64, high: u64| {
            if (low..=high).contains(&value) {
                Ok(())
            } else {
                Err(Invalid::at(
                    format!("heal.{field}"),
                    format!("{value} is out of range {low}..={high}"),
                ))
            }
        };
        range("after_failures", u64::from(self.after_failures), 1, 1_000)?;
        range("sweep_interval_s", self.sweep_interval_s, 1, 86_400)?;
        range("cooldown_s", self.cooldown_s, 0, 86_400)?;
        range("max_per_hour", u64::from(self.max_per_hour), 1, 1_000)?;
        range("verify_timeout_s", self.verify_timeout_s, 1, 3_600)?;
        range("verify_interval_ms", self.verify_interval_ms, 10, 60_000)?;
        if self.verify_interval_ms > self.verify_timeout_s * 1000 {
            return Err(Invalid::at(
                "heal.verify_interval_ms",
                format!(
                    "{} ms is longer than verify_timeout_s ({} s)",
                    self.verify_interval_ms, self.verify_timeout_s
                ),
            ));
        }
        if !(self.mass_failure_share > 0.0 && self.mass_failure_share <= 1.0) {
            return Err(Invalid::at(
                "heal.mass_failure_share",
                format!("{} is out of range (0, 1]", self.mass_failure_share),
            ));
        }
        range(
            "mass_failure_min_targets",
            self.mass_failure_min_targets as u64,
            1,
            100_000,
        )?;
        for (i, code) in self.config_error_exit_codes.iter().enumerate() {
            if !(1..=255).contains(code) {
                return Err(Invalid::at(
                    format!("heal.config_error_exit_codes[{i}]"),
                    format!("{code} is not an exit code that means failure (1..=255)"),
                ));
            }
        }
        Ok(())
    }
}

/// How one target is healed, in its `services` entry. Without it, a target with a `run` block is healed
/// by restarting its child, and any other target cannot be healed (its attempts are `skipped_no_action`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetHeal {
    /// Heal this target automatically (a manual heal works either way).
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
    /// A command that restarts the service, such as `["systemctl", "restart", "api"]`. Run directly, not
    /// through a shell.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// The command fails when it has not ended within this time (it is then killed).
    #[serde(default = "default_command_timeout_s")]
    pub command_timeout_s: u64,
    /// Names of hale's own environment variables passed on to the command, beside `PATH`, `HOME`, `LANG`
    /// and `TZ`. A variable that holds a role token (`auth.tokens.*.env`) cannot be listed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inherit_env: Vec<String>,
}

fn enabled_by_default() -> bool {
    true
}

fn default_command_timeout_s() -> u64 {
    60
}

impl Default for TargetHeal {
    fn default() -> Self {
        Self {
            enabled: enabled_by_default(),
            command: None,
            command_timeout_s: default_command_timeout_s(),
            inherit_env: Vec::new(),
        }
    }
}

impl TargetHeal {
    pub(crate) fn validate(&self, at: &str) -> Result<(), Invalid> {
        if let Some(argv) = &self.command {
            if argv.is_empty() || argv[0].is_empty() {
                return Err(Invalid::at(
                    format!("{at}.command"),
                    "a command is a non-empty list: the program, then its arguments",
                ));
            }
            if let Some(i) = argv.iter().position(|a| a.contains('\0')) {
                return Err(Invalid::at(
                    format!("{at}.command[{i}]"),
                    "an argument cannot contain a NUL byte",
                ));
            }
        }
        crate::config::run::check_names(&format!("{at}.inherit_env"), &self.inherit_env)?;
        if !(1..=3_600).contains(&self.command_timeout_s) {
            return Err(Invalid::at(
                format!("{at}.command_timeout_s"),
                format!("{} is out of range 1..=3600", self.command_timeout_s),
            ));
        }
        Ok(())
    }
}
