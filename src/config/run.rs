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
    /// Set in the child's environment. A child starts from a minimal environment (`PATH`, `HOME`, `LANG`
    /// and `TZ`, from hale's), then these, then `inherit_env`'s.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Names of hale's own environment variables passed on to the child as they are. A variable that
    /// holds a role token (`auth.tokens.*.env`) cannot be listed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inherit_env: Vec<String>,
    /// How many lines of the child's output (stdout and stderr together) reach hale's log per second...
    #[serde(default = "default_log_lines_per_s")]
    pub log_lines_per_s: u32,
    /// ...after a burst of this many; the lines past the budget are counted and reported as one
    /// `suppressed N lines` line per second.
    #[serde(default = "default_log_burst")]
    pub log_burst: u32,
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

impl RunConfig {
    /// A process started with every other setting at its default: an MCP server the bridge runs.
    pub fn process(argv: Vec<String>, cwd: Option<PathBuf>, env: BTreeMap<String, String>) -> Self {
        Self {
            argv,
            cwd,
            env,
            inherit_env: Vec::new(),
            log_lines_per_s: default_log_lines_per_s(),
            log_burst: default_log_burst(),
            stop_signal: StopSignal::default(),
            stop_timeout_s: default_stop_timeout_s(),
            backoff_initial_ms: default_backoff_initial_ms(),
            backoff_max_s: default_backoff_max_s(),
            stable_after_s: default_stable_after_s(),
        }
    }
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

fn default_log_lines_per_s() -> u32 {
    100
}

fn default_log_burst() -> u32 {
    200
}

/// The variables every child gets from hale's environment, when hale has them.
pub const BASE_ENV: [&str; 4] = ["PATH", "HOME", "LANG", "TZ"];

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
        if let Some(i) = self.argv.iter().position(|a| a.contains('\0')) {
            return Err(Invalid::at(
                format!("{at}.argv[{i}]"),
                "an argument cannot contain a NUL byte",
            ));
        }
        if let Some(cwd) = &self.cwd {
            if cwd.as_os_str().is_empty() {
                return Err(Invalid::at(
                    format!("{at}.cwd"),
                    "an empty path; leave cwd out to run the child in hale's own working directory",
                ));
            }
            if cwd.as_os_str().as_encoded_bytes().contains(&0) {
                return Err(Invalid::at(
                    format!("{at}.cwd"),
                    "a path cannot contain a NUL byte",
                ));
            }
        }
        // Keys only: a value may be a secret and never appears in a message.
        for key in self.env.keys() {
            let reason = if key.is_empty() {
                "an environment variable needs a name, not an empty key"
            } else if key.contains('=') {
                "an environment variable name cannot contain '='"
            } else if key.contains('\0') {
                "an environment variable name cannot contain a NUL byte"
            } else {
                continue;
            };
            return Err(Invalid::at(env_path(at, key), reason));
        }
        if let Some((key, _)) = self.env.iter().find(|(_, v)| v.contains('\0')) {
            return Err(Invalid::at(
                env_path(at, key),
                "a value cannot contain a NUL byte",
            ));
        }
        check_names(&format!("{at}.inherit_env"), &self.inherit_env)?;
        let range = |field: &str, value: u64, low: u64, high: u64| {
            if (low..=high).contains(&value) {
                Ok(())
            } else {
                Err(Invalid::at(
                    format!("{at}.{field}"),
                    format!("{value} is out of range {low}..={high}"),
                ))
            }
        };
        range("stop_timeout_s", self.stop_timeout_s, 1, 600)?;
        range("backoff_initial_ms", self.backoff_initial_ms, 10, 600_000)?;
        range("backoff_max_s", self.backoff_max_s, 1, 86_400)?;
        if self.backoff_max_s.saturating_mul(1000) < self.backoff_initial_ms {
            return Err(Invalid::at(
                format!("{at}.backoff_max_s"),
                format!(
                    "{} s is shorter than backoff_initial_ms ({} ms)",
                    self.backoff_max_s, self.backoff_initial_ms
                ),
            ));
        }
        range("stable_after_s", self.stable_after_s, 1, 86_400)?;
        range(
            "log_lines_per_s",
            u64::from(self.log_lines_per_s),
            1,
            100_000,
        )?;
        range("log_burst", u64::from(self.log_burst), 1, 1_000_000)?;
        Ok(())
    }
}

/// Checks a list of environment variable names (`inherit_env`): each a name, each once.
pub(crate) fn check_names(at: &str, names: &[String]) -> Result<(), Invalid> {
    for (i, name) in names.iter().enumerate() {
        let reason = if name.is_empty() {
            "an environment variable name cannot be empty".to_owned()
        } else if name.contains('=') || name.contains('\0') {
            format!(
                "{:?} is not an environment variable name (it holds '=' or a NUL byte)",
                name.escape_debug().to_string()
            )
        } else if names[..i].contains(name) {
            format!("{name} is listed twice")
        } else {
            continue;
        };
        return Err(Invalid::at(format!("{at}[{i}]"), reason));
    }
    Ok(())
}

/// Refuses an `inherit_env` entry that names the variable holding a role token: a token never reaches a
/// child process. `lists` are (JSON path, names) pairs; `tokens` are (role, variable) pairs.
pub(crate) fn refuse_token_variables(
    lists: &[(String, &[String])],
    tokens: &[(&str, &str)],
) -> Result<(), Invalid> {
    for (at, names) in lists {
        for (i, name) in names.iter().enumerate() {
            if let Some((role, _)) = tokens.iter().find(|(_, var)| var == name) {
                return Err(Invalid::at(
                    format!("{at}[{i}]"),
                    format!(
                        "{name} holds the {role} token (auth.tokens.{role}.env); a token never reaches a child process: remove it from the list"
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// The JSON path of one `env` key, with control characters escaped.
fn env_path(at: &str, key: &str) -> String {
    if key.is_empty() {
        format!("{at}.env")
    } else {
        format!("{at}.env.{}", key.escape_debug())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run() -> RunConfig {
        serde_json::from_value(serde_json::json!({"argv": ["sleep", "300"]})).unwrap()
    }

    fn error(run: &RunConfig) -> (String, String) {
        let Invalid { path, reason } = run.validate("services[2].run").unwrap_err();
        (path, reason)
    }

    fn expect(run: &RunConfig, path: &str, reason: &str) {
        let (got_path, got_reason) = error(run);
        assert_eq!(got_path, path);
        assert!(
            got_reason.contains(reason),
            "{got_reason:?} does not say {reason:?}"
        );
    }

    #[test]
    fn the_defaults_are_valid() {
        let run = run();
        assert_eq!(run.validate("services[0].run"), Ok(()));
        assert_eq!(run.stop_signal, StopSignal::Term);
        assert_eq!(
            (
                run.stop_timeout_s,
                run.backoff_initial_ms,
                run.backoff_max_s,
                run.stable_after_s
            ),
            (10, 1_000, 60, 60)
        );
    }

    #[test]
    fn argv_must_name_a_program_and_hold_no_nul() {
        let mut r = run();
        r.argv.clear();
        expect(&r, "$.services[2].run.argv", "a non-empty list");
        r.argv = vec![String::new()];
        expect(&r, "$.services[2].run.argv", "a non-empty list");
        r.argv = vec!["sleep".into(), "30\0".into()];
        expect(&r, "$.services[2].run.argv[1]", "NUL");
    }

    #[test]
    fn cwd_may_be_relative_but_not_empty() {
        let mut r = run();
        r.cwd = Some(PathBuf::from("services/api"));
        assert_eq!(r.validate("x"), Ok(()));
        r.cwd = Some(PathBuf::from("/srv/api"));
        assert_eq!(r.validate("x"), Ok(()));
        r.cwd = Some(PathBuf::new());
        expect(&r, "$.services[2].run.cwd", "an empty path");
    }

    #[test]
    fn env_names_are_checked_and_values_never_shown() {
        let mut r = run();
        r.env.insert("API_TOKEN".into(), "s3cret=value".into());
        assert_eq!(r.validate("x"), Ok(()), "'=' is fine in a value");
        r.env.insert(String::new(), "s3cret".into());
        expect(&r, "$.services[2].run.env", "needs a name");
        r.env.clear();
        r.env.insert("A=B".into(), "s3cret".into());
        expect(&r, "$.services[2].run.env.A=B", "cannot contain '='");
        r.env.clear();
        r.env.insert("A\0".into(), "s3cret".into());
        expect(&r, "$.services[2].run.env.A\\0", "NUL");
        r.env.clear();
        r.env.insert("TOKEN".into(), "s3c\0ret".into());
        let (path, reason) = error(&r);
        assert_eq!(path, "$.services[2].run.env.TOKEN");
        assert!(
            !reason.contains("s3c") && !path.contains("s3c"),
            "no value in the message"
        );
    }

    #[test]
    fn inherit_env_holds_names_once_and_never_a_token_variable() {
        let mut r = run();
        r.inherit_env = vec!["PGHOST".into(), "HALE_OPERATE_TOKEN".into()];
        assert_eq!(r.validate("x"), Ok(()));
        assert_eq!(r.log_lines_per_s, 100);
        assert_eq!(r.log_burst, 200);
        let lists = [("services[0].run.inherit_env".to_owned(), &r.inherit_env[..])];
        let Invalid { path, reason } =
            refuse_token_variables(&lists, &[("operate", "HALE_OPERATE_TOKEN")]).unwrap_err();
        assert_eq!(path, "$.services[0].run.inherit_env[1]");
        assert!(
            reason.starts_with(
                "HALE_OPERATE_TOKEN holds the operate token (auth.tokens.operate.env)"
            ),
            "{reason}"
        );
        assert_eq!(
            refuse_token_variables(&lists, &[("admin", "HALE_ADMIN_TOKEN")]),
            Ok(())
        );
        r.inherit_env = vec!["A".into(), "A".into()];
        expect(&r, "$.services[2].run.inherit_env[1]", "A is listed twice");
        r.inherit_env = vec![String::new()];
        expect(&r, "$.services[2].run.inherit_env[0]", "cannot be empty");
        r.inherit_env = vec!["A=B".into()];
        expect(
            &r,
            "$.services[2].run.inherit_env[0]",
            "not an environment variable name",
        );
    }

    #[test]
    fn ranges_name_the_field_and_the_bounds() {
        type Change = fn(&mut RunConfig);
        let cases: [(&str, Change, &str); 11] = [
            (
                "log_lines_per_s",
                |r| r.log_lines_per_s = 0,
                "0 is out of range 1..=100000",
            ),
            (
                "log_burst",
                |r| r.log_burst = 0,
                "0 is out of range 1..=1000000",
            ),
            (
                "stop_timeout_s",
                |r| r.stop_timeout_s = 0,
                "0 is out of range 1..=600",
            ),
            (
                "stop_timeout_s",
                |r| r.stop_timeout_s = 601,
                "601 is out of range 1..=600",
            ),
            (
                "backoff_initial_ms",
                |r| r.backoff_initial_ms = 9,
                "9 is out of range 10..=600000",
            ),
            (
                "backoff_initial_ms",
                |r| r.backoff_initial_ms = 600_001,
                "600001 is out of range 10..=600000",
            ),
            (
                "backoff_max_s",
                |r| r.backoff_max_s = 86_401,
                "86401 is out of range 1..=86400",
            ),
            (
                "backoff_max_s",
                |r| r.backoff_max_s = 0,
                "0 is out of range 1..=86400",
            ),
            (
                "backoff_max_s",
                |r| {
                    r.backoff_initial_ms = 5_000;
                    r.backoff_max_s = 4;
                },
                "4 s is shorter than backoff_initial_ms (5000 ms)",
            ),
            (
                "stable_after_s",
                |r| r.stable_after_s = 0,
                "0 is out of range 1..=86400",
            ),
            (
                "stable_after_s",
                |r| r.stable_after_s = 86_401,
                "86401 is out of range 1..=86400",
            ),
        ];
        for (field, change, reason) in cases {
            let mut r = run();
            change(&mut r);
            expect(&r, &format!("$.services[2].run.{field}"), reason);
        }
        let mut edge = run();
        edge.stop_timeout_s = 600;
        edge.backoff_initial_ms = 600_000;
        edge.backoff_max_s = 600;
        edge.stable_after_s = 86_400;
        assert_eq!(
            edge.validate("x"),
            Ok(()),
            "the bounds themselves are valid"
        );
    }
}
