//! How much harm a workflow step can do (`RiskLevel`), read from what it does, and how long an approval of
//! each level stays open. Pure: the definition's loader scores each step once, the run's risk is its
//! highest step's.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::{HttpMethod, Invalid};
pub use crate::records::RiskLevel;

/// The `workflows.risk` section: when a run needs an approval, how long one stays open, and patterns of
/// the operator's own that raise a step's level.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RiskConfig {
    /// A run whose highest step reaches this level waits for an approval before its first step at that
    /// level; below it, the run is approved automatically (and that is recorded).
    pub approval_from: RiskLevel,
    /// How long an approval stays open, per level, in seconds; the riskier, the sooner it expires.
    pub expiry_s: ExpiryConfig,
    /// Text that, found in what a step does (see `StepSummary::text`), raises it to `level`.
    pub patterns: Vec<RiskPattern>,
}

impl Default for RiskConfig {
    fn default() -> Self {
        Self {
            approval_from: RiskLevel::High,
            expiry_s: ExpiryConfig::default(),
            patterns: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExpiryConfig {
    pub low: u64,
    pub medium: u64,
    pub high: u64,
    pub critical: u64,
}

impl Default for ExpiryConfig {
    fn default() -> Self {
        Self {
            low: 24 * 3600,
            medium: 24 * 3600,
            high: 8 * 3600,
            critical: 4 * 3600,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RiskPattern {
    /// Matched as plain text (case-sensitive) inside the step's summary.
    #[serde(rename = "match")]
    pub pattern: String,
    pub level: RiskLevel,
}

/// The longest an approval may stay open.
const MAX_EXPIRY_S: u64 = 30 * 24 * 3600;

impl RiskConfig {
    /// `at` is the section's JSON path without `$.` (`workflows.risk`).
    pub fn validate(&self, at: &str) -> Result<(), Invalid> {
        let e = &self.expiry_s;
        for (name, value) in [
            ("low", e.low),
            ("medium", e.medium),
            ("high", e.high),
            ("critical", e.critical),
        ] {
            if !(60..=MAX_EXPIRY_S).contains(&value) {
                return Err(Invalid::at(
                    format!("{at}.expiry_s.{name}"),
                    format!("{value} is out of range 60..={MAX_EXPIRY_S}"),
                ));
            }
        }
        for (i, p) in self.patterns.iter().enumerate() {
            if p.pattern.trim().is_empty() {
                return Err(Invalid::at(
                    format!("{at}.patterns[{i}].match"),
                    "an empty pattern would match every step",
                ));
            }
        }
        Ok(())
    }

    /// How long an approval of a run at `level` stays open.
    pub fn expiry(&self, level: RiskLevel) -> Duration {
        let e = &self.expiry_s;
        Duration::from_secs(match level {
            RiskLevel::Low => e.low,
            RiskLevel::Medium => e.medium,
            RiskLevel::High => e.high,
            RiskLevel::Critical => e.critical,
        })
    }

    /// Whether a run whose highest step is at `level` waits for a person.
    pub fn needs_approval(&self, level: RiskLevel) -> bool {
        level >= self.approval_from
    }
}

/// What a step does, as far as its risk goes.
#[derive(Debug, Clone, Copy)]
pub enum StepSummary<'a> {
    Http {
        method: HttpMethod,
        path: &'a str,
    },
    Command {
        argv: &'a [String],
    },
    Heal {
        target: &'a str,
        critical: bool,
    },
    McpTool {
        tool: &'a str,
    },
    /// `wait_healthy`, `sleep`, `notify`, `approval`: they change nothing.
    Harmless,
}

impl StepSummary<'_> {
    /// The text the configured patterns are matched in: `DELETE /path`, the argv joined with spaces, the
    /// tool's or the target's name.
    pub fn text(&self) -> String {
        match self {
            Self::Http { method, path } => format!("{} {path}", method.as_str()),
            Self::Command { argv } => argv.join(" "),
            Self::Heal { target, .. } => (*target).to_owned(),
            Self::McpTool { tool } => (*tool).to_owned(),
            Self::Harmless => String::new(),
        }
    }
}

/// A step's level and the reason for it, for the run's record and the approver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Risk {
    pub level: RiskLevel,
    pub why: String,
}

/// Scores one step: the built-in rules, then the configured patterns, the highest wins.
pub fn score(step: &StepSummary<'_>, config: &RiskConfig) -> Risk {
    let mut risk = builtin(step);
    let text = step.text();
    if !text.is_empty() {
        for p in &config.patterns {
            if p.level > risk.level && text.contains(&p.pattern) {
                risk = Risk {
                    level: p.level,
                    why: format!("matches the configured pattern {:?}", p.pattern),
                };
            }
        }
    }
    risk
}

fn risk(level: RiskLevel, why: impl Into<String>) -> Risk {
    Risk {
        level,
        why: why.into(),
    }
}

fn builtin(step: &StepSummary<'_>) -> Risk {
    match step {
        StepSummary::Http { method, .. } => match method {
            HttpMethod::Delete => risk(RiskLevel::High, "an HTTP DELETE"),
            HttpMethod::Get | HttpMethod::Head | HttpMethod::Options => {
                risk(RiskLevel::Low, "an HTTP read")
            }
            HttpMethod::Post | HttpMethod::Put | HttpMethod::Patch => {
                risk(RiskLevel::Medium, "an HTTP write")
            }
        },
        StepSummary::Command { argv } => command(argv),
        StepSummary::Heal { target, critical } if *critical => risk(
            RiskLevel::High,
            format!("heals {target}, a critical target"),
        ),
        StepSummary::Heal { target, .. } => risk(RiskLevel::Medium, format!("heals {target}")),
        StepSummary::McpTool { tool } => {
            risk(RiskLevel::Medium, format!("calls the MCP tool {tool}"))
        }
        StepSummary::Harmless => risk(RiskLevel::Low, "changes nothing"),
    }
}

/// The program's file name: `/usr/bin/rm` is `rm`.
fn program(arg: &str) -> &str {
    arg.rsplit('/').next().unwrap_or(arg)
}

/// The built-in rules for a command, looking at every program in the argv (so `sudo rm -rf /x` and
/// `env X=1 dd if=...` are seen through).
fn command(argv: &[String]) -> Risk {
    let mut found = risk(RiskLevel::Medium, "runs a command");
    let mut raise = |level: RiskLevel, why: String| {
        if level > found.level {
            found = risk(level, why);
        }
    };
    for (i, arg) in argv.iter().enumerate() {
        let rest = &argv[i + 1..];
        let name = program(arg);
        match name {
            "sudo" | "doas" | "su" | "pkexec" => {
                raise(RiskLevel::High, format!("runs {name} (elevated rights)"));
            }
            "rm" if recursive_force(rest) => {
                raise(
                    RiskLevel::High,
                    "rm with -r and -f (recursive delete)".to_owned(),
                );
            }
            "chmod"
                if rest
                    .iter()
                    .any(|a| a == "777" || a == "0777" || a == "a+rwx") =>
            {
                raise(RiskLevel::High, "chmod 777 (world-writable)".to_owned());
            }
            "chown" if rest.iter().any(|a| a == "-R" || a == "--recursive") => {
                raise(RiskLevel::High, "chown -R".to_owned());
            }
            "dd" if rest
                .iter()
                .any(|a| a.starts_with("if=") || a.starts_with("of=")) =>
            {
                raise(
                    RiskLevel::Critical,
                    "dd (raw copy onto a file or device)".to_owned(),
                );
            }
            "shutdown" | "reboot" | "halt" | "poweroff" => {
                raise(RiskLevel::Critical, format!("{name} (stops the machine)"));
            }
            _ if name.starts_with("mkfs") || name == "wipefs" || name == "fdisk" => {
                raise(
                    RiskLevel::Critical,
                    format!("{name} (erases a file system)"),
                );
            }
            _ if (name == "kill" || name == "pkill" || name == "killall")
                && rest
                    .iter()
                    .any(|a| a == "-9" || a == "-KILL" || a == "-SIGKILL") =>
            {
                raise(RiskLevel::High, format!("{name} -9"));
            }
            _ => {}
        }
    }
    found
}

/// `-rf`, `-fr`, `-r -f`, `-Rf`, `--recursive --force`: both flags among the arguments.
fn recursive_force(args: &[String]) -> bool {
    let short = |c: char| {
        args.iter()
            .any(|a| a.starts_with('-') && !a.starts_with("--") && a.contains(c))
    };
    let long = |l: &str| args.iter().any(|a| a == l);
    (short('r') || short('R') || long("--recursive")) && (short('f') || long("--force"))
}

/// A run's risk: its highest step's (the first such step when several tie), or low for no steps.
pub fn highest<'a>(risks: impl IntoIterator<Item = &'a Risk>) -> Option<&'a Risk> {
    risks
        .into_iter()
        .fold(None, |top: Option<&Risk>, r| match top {
            Some(t) if t.level >= r.level => Some(t),
            _ => Some(r),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(text: &str) -> Vec<String> {
        text.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn commands_are_scored_by_what_they_run() {
        let table = [
            ("systemctl restart api", RiskLevel::Medium, "runs a command"),
            ("rm -rf /var/cache/api", RiskLevel::High, "recursive delete"),
            ("/bin/rm -fr build", RiskLevel::High, "recursive delete"),
            ("rm -r -f build", RiskLevel::High, "recursive delete"),
            (
                "rm --recursive --force x",
                RiskLevel::High,
                "recursive delete",
            ),
            ("rm -r build", RiskLevel::Medium, "runs a command"),
            ("rm -f one.log", RiskLevel::Medium, "runs a command"),
            ("sudo systemctl restart api", RiskLevel::High, "sudo"),
            ("chmod 777 /srv", RiskLevel::High, "chmod 777"),
            ("chmod 755 /srv", RiskLevel::Medium, "runs a command"),
            ("mkfs.ext4 /dev/sdb1", RiskLevel::Critical, "mkfs.ext4"),
            ("dd if=/dev/zero of=/dev/sda", RiskLevel::Critical, "dd"),
            (
                "sudo dd if=/dev/zero of=/dev/sda",
                RiskLevel::Critical,
                "dd",
            ),
            ("kill -9 1234", RiskLevel::High, "kill -9"),
            ("kill 1234", RiskLevel::Medium, "runs a command"),
            ("reboot", RiskLevel::Critical, "stops the machine"),
            ("echo rm -rf", RiskLevel::High, "recursive delete"),
        ];
        let config = RiskConfig::default();
        for (line, level, why) in table {
            let a = argv(line);
            let r = score(&StepSummary::Command { argv: &a }, &config);
            assert_eq!(r.level, level, "{line}: {r:?}");
            assert!(r.why.contains(why), "{line}: {r:?}");
        }
    }

    #[test]
    fn http_heal_and_the_rest() {
        let config = RiskConfig::default();
        let level = |s: StepSummary<'_>| score(&s, &config).level;
        let http = |method| StepSummary::Http { method, path: "/x" };
        assert_eq!(level(http(HttpMethod::Delete)), RiskLevel::High);
        assert_eq!(level(http(HttpMethod::Get)), RiskLevel::Low);
        assert_eq!(level(http(HttpMethod::Head)), RiskLevel::Low);
        assert_eq!(level(http(HttpMethod::Post)), RiskLevel::Medium);
        assert_eq!(level(http(HttpMethod::Put)), RiskLevel::Medium);
        let heal = |critical| StepSummary::Heal {
            target: "db",
            critical,
        };
        assert_eq!(level(heal(true)), RiskLevel::High);
        assert_eq!(level(heal(false)), RiskLevel::Medium);
        assert_eq!(level(StepSummary::McpTool { tool: "x" }), RiskLevel::Medium);
        assert_eq!(level(StepSummary::Harmless), RiskLevel::Low);
    }

    #[test]
    fn configured_patterns_only_raise() {
        let config = RiskConfig {
            patterns: vec![
                RiskPattern {
                    pattern: "systemctl stop".into(),
                    level: RiskLevel::Critical,
                },
                RiskPattern {
                    pattern: "/admin/".into(),
                    level: RiskLevel::High,
                },
                RiskPattern {
                    pattern: "rm".into(),
                    level: RiskLevel::Low,
                },
            ],
            ..RiskConfig::default()
        };
        let a = argv("systemctl stop api");
        let r = score(&StepSummary::Command { argv: &a }, &config);
        assert_eq!(r.level, RiskLevel::Critical);
        assert!(r.why.contains("\"systemctl stop\""), "{r:?}");
        let post = StepSummary::Http {
            method: HttpMethod::Post,
            path: "/admin/flush",
        };
        assert_eq!(score(&post, &config).level, RiskLevel::High);
        let rm = argv("rm -rf x");
        assert_eq!(
            score(&StepSummary::Command { argv: &rm }, &config).level,
            RiskLevel::High,
            "a lower pattern never lowers a step"
        );
        assert_eq!(score(&StepSummary::Harmless, &config).level, RiskLevel::Low);
    }

    #[test]
    fn a_run_takes_its_highest_step_and_approvals_expire_by_level() {
        let steps = [
            risk(RiskLevel::Low, "a"),
            risk(RiskLevel::High, "b"),
            risk(RiskLevel::Medium, "c"),
            risk(RiskLevel::High, "d"),
        ];
        assert_eq!(highest(&steps).map(|r| r.why.as_str()), Some("b"));
        assert_eq!(highest(&[]), None);
        let config = RiskConfig::default();
        assert_eq!(
            config.expiry(RiskLevel::Critical),
            Duration::from_secs(4 * 3600)
        );
        assert_eq!(
            config.expiry(RiskLevel::High),
            Duration::from_secs(8 * 3600)
        );
        assert_eq!(
            config.expiry(RiskLevel::Medium),
            Duration::from_secs(24 * 3600)
        );
        assert!(config.needs_approval(RiskLevel::High));
        assert!(config.needs_approval(RiskLevel::Critical));
        assert!(!config.needs_approval(RiskLevel::Medium));
        assert!(RiskLevel::Low < RiskLevel::Medium && RiskLevel::High < RiskLevel::Critical);
    }

    #[test]
    fn the_section_is_checked() {
        assert_eq!(RiskConfig::default().validate("workflows.risk"), Ok(()));
        let mut c = RiskConfig::default();
        c.expiry_s.high = 10;
        let e = c.validate("workflows.risk").unwrap_err();
        assert_eq!(e.path, "$.workflows.risk.expiry_s.high");
        assert_eq!(e.reason, "10 is out of range 60..=2592000");
        let mut c = RiskConfig::default();
        c.patterns.push(RiskPattern {
            pattern: " ".into(),
            level: RiskLevel::High,
        });
        let e = c.validate("workflows.risk").unwrap_err();
        assert_eq!(e.path, "$.workflows.risk.patterns[0].match");
    }
}
