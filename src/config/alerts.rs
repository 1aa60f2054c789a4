//! `alerts`: the alert manager's rules and where their notices go. A rule says when an alert fires, how loud
//! it is, how long repeats are held back and which channels hear of it. The defaults are the levels of the
//! setup hale replaces; a `rules` list in the file replaces them all.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::config::{ChannelsConfig, Invalid};
use crate::records::AlertLevel;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertsConfig {
    /// Evaluate the rules; when false no alert fires (checks and heals are still stored).
    pub enabled: bool,
    /// An alert resolves after this many successful checks of its target in a row, so a flapping target
    /// does not fire and resolve every minute.
    pub resolve_after_successes: u32,
    pub rules: Vec<AlertRule>,
    pub channels: ChannelsConfig,
    /// Where docs/runbooks.md is published: each alert's `runbook_url` is this plus `#section`, in the
    /// exported rules and in what hale's Alertmanager channel sends. An absolute http(s) URL.
    pub runbook_base_url: String,
}

/// The rule names of announcements (`alerts::AnnouncementRule`): one-off notices that no rule makes, such as
/// a workflow's `notify` step. A rule of `alerts.rules` cannot take them, so an alert's rule says which is which.
pub const ANNOUNCEMENT_RULES: [&str; 2] = ["workflow_notify", "workflow_run_interrupted"];

/// Used when Cargo.toml names no `repository`: a placeholder to replace with where the runbooks are served.
pub const FALLBACK_RUNBOOK_BASE_URL: &str = "https://example.com/hale/docs/runbooks.md";

/// The default `alerts.runbook_base_url`: docs/runbooks.md in the repository Cargo.toml names (its `main`
/// branch), else `FALLBACK_RUNBOOK_BASE_URL`.
pub fn default_runbook_base_url() -> String {
    let repository = env!("CARGO_PKG_REPOSITORY").trim_end_matches('/');
    if repository.is_empty() {
        FALLBACK_RUNBOOK_BASE_URL.to_owned()
    } else {
        format!("{repository}/blob/main/docs/runbooks.md")
    }
}

/// When a rule fires.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Condition {
    /// This many failed scheduled checks of a target in a row.
    ConsecutiveFailures { count: u32 },
    /// This many failed scheduled checks of a target within the window.
    FailuresWithin { count: u32, window_s: u64 },
    /// A target was restarted: its supervised child restarted, or a heal ran its action.
    Restarted,
    /// A target used up its heal budget: hale stopped healing it.
    HealBudgetExhausted,
    /// More than `heal.mass_failure_share` of the targets fail at once. One alert for all of them (target
    /// `*`); while it fires, the targets' own alerts are held back.
    MassFailure,
    /// A target spends its availability error budget (`slo.availability_target_percent`) more than
    /// `burn_rate` times too fast over both the long and the short window, for `for_s`: the multi-window
    /// burn-rate alert of the Google SRE workbook. Without `burn_rate` and `for_s`, the burn-rate table's
    /// (`config::burn`, scaled to `slo.window_days`; the windows must then be a pair of it), which the
    /// exported Prometheus rules use too. Counted over scheduled checks, from the alert manager's own
    /// record of them; resolves once the short window burns under the rate again (and the usual successes
    /// in a row).
    SloBurn {
        long_window_s: u64,
        short_window_s: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        burn_rate: Option<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        for_s: Option<u64>,
    },
}

/// A channel a rule's notices go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChannelKind {
    /// hale's own log, always available.
    Log,
    Discord,
    Email,
    Webhook,
    /// Prometheus Alertmanager. When configured it receives every alert, whichever rules name it: it routes
    /// and silences by itself.
    Alertmanager,
}

impl ChannelKind {
    pub const ALL: [ChannelKind; 5] = [
        Self::Log,
        Self::Discord,
        Self::Email,
        Self::Webhook,
        Self::Alertmanager,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Log => "log",
            Self::Discord => "discord",
            Self::Email => "email",
            Self::Webhook => "webhook",
            Self::Alertmanager => "alertmanager",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == raw)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertRule {
    /// Identifies the rule in alerts, metrics and the API: letters, digits, `_` and `-`.
    pub name: String,
    pub when: Condition,
    pub level: AlertLevel,
    /// While the alert still fires unchanged, repeats within this time are counted, not notified.
    pub cooldown_s: u64,
    /// Where notices go. A channel that is not configured under `alerts.channels` is skipped.
    pub channels: Vec<ChannelKind>,
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
}

fn enabled_by_default() -> bool {
    true
}

impl Default for AlertsConfig {
    fn default() -> Self {
        use ChannelKind::{Discord, Email, Log};
        let rule = |name: &str, when, level, cooldown_s, channels: &[ChannelKind]| AlertRule {
            name: name.to_owned(),
            when,
            level,
            cooldown_s,
            channels: channels.to_vec(),
            enabled: true,
        };
        Self {
            enabled: true,
            resolve_after_successes: 2,
            rules: vec![
                rule(
                    "target_down",
                    Condition::ConsecutiveFailures { count: 3 },
                    AlertLevel::Critical,
                    3_600,
                    &[Discord, Email, Log],
                ),
                rule(
                    "target_flapping",
                    Condition::FailuresWithin {
                        count: 5,
                        window_s: 86_400,
                    },
                    AlertLevel::Warning,
                    7_200,
                    &[Log],
                ),
                rule(
                    "target_restarted",
                    Condition::Restarted,
                    AlertLevel::Info,
                    14_400,
                    &[Log],
                ),
                rule(
                    "heal_budget_exhausted",
                    Condition::HealBudgetExhausted,
                    AlertLevel::Critical,
                    3_600,
                    &[Discord, Email, Log],
                ),
                rule(
                    "mass_failure",
                    Condition::MassFailure,
                    AlertLevel::Critical,
                    3_600,
                    &[Discord, Email, Log],
                ),
                rule(
                    "slo_fast_burn",
                    Condition::SloBurn {
                        long_window_s: 3_600,
                        short_window_s: 300,
                        burn_rate: None,
                        for_s: None,
                    },
                    AlertLevel::Critical,
                    3_600,
                    &[Discord, Email, Log],
                ),
                rule(
                    "slo_slow_burn",
                    Condition::SloBurn {
                        long_window_s: 21_600,
                        short_window_s: 1_800,
                        burn_rate: None,
                        for_s: None,
                    },
                    AlertLevel::Warning,
                    14_400,
                    &[Log],
                ),
            ],
            channels: ChannelsConfig::default(),
            runbook_base_url: default_runbook_base_url(),
        }
    }
}

impl AlertsConfig {
    pub(crate) fn validate(&self) -> Result<(), Invalid> {
        if !(1..=100).contains(&self.resolve_after_successes) {
            return Err(Invalid::at(
                "alerts.resolve_after_successes",
                format!("{} is out of range 1..=100", self.resolve_after_successes),
            ));
        }
        let mut names = HashSet::new();
        for (i, rule) in self.rules.iter().enumerate() {
            let at = |field: &str| format!("alerts.rules[{i}].{field}");
            let valid_name = !rule.name.is_empty()
                && rule.name.len() <= 64
                && rule
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if !valid_name {
                return Err(Invalid::at(
                    at("name"),
                    format!(
                        "{:?} is not a rule name: 1 to 64 letters, digits, '_' or '-'",
                        rule.name
                    ),
                ));
            }
            if ANNOUNCEMENT_RULES.contains(&rule.name.as_str()) {
                return Err(Invalid::at(
                    at("name"),
                    format!(
                        "{:?} is reserved for workflow announcements; name the rule otherwise",
                        rule.name
                    ),
                ));
            }
            if !names.insert(rule.name.as_str()) {
                return Err(Invalid::at(
                    at("name"),
                    format!("duplicate rule name {:?}", rule.name),
                ));
            }
            match rule.when {
                Condition::ConsecutiveFailures { count } if !(1..=1_000).contains(&count) => {
                    return Err(Invalid::at(
                        format!("alerts.rules[{i}].when.consecutive_failures.count"),
                        format!("{count} is out of range 1..=1000"),
                    ));
                }
                Condition::FailuresWithin { count, window_s } => {
                    if !(1..=100_000).contains(&count) {
                        return Err(Invalid::at(
                            format!("alerts.rules[{i}].when.failures_within.count"),
                            format!("{count} is out of range 1..=100000"),
                        ));
                    }
                    if !(60..=30 * 86_400).contains(&window_s) {
                        return Err(Invalid::at(
                            format!("alerts.rules[{i}].when.failures_within.window_s"),
                            format!("{window_s} is out of range 60..=2592000 (30 days)"),
                        ));
                    }
                }
                Condition::SloBurn {
                    long_window_s,
                    short_window_s,
                    burn_rate,
                    for_s,
                } => {
                    let at = |field: &str| format!("alerts.rules[{i}].when.slo_burn.{field}");
                    if !(60..=7 * 86_400).contains(&long_window_s) {
                        return Err(Invalid::at(
                            at("long_window_s"),
                            format!("{long_window_s} is out of range 60..=604800 (7 days)"),
                        ));
                    }
                    if short_window_s == 0 || short_window_s >= long_window_s {
                        return Err(Invalid::at(
                            at("short_window_s"),
                            format!(
                                "{short_window_s} must be above 0 and below long_window_s ({long_window_s})"
                            ),
                        ));
                    }
                    match burn_rate {
                        Some(rate) if !(rate.is_finite() && rate > 0.0) => {
                            return Err(Invalid::at(
                                at("burn_rate"),
                                format!("{rate} must be a number above 0"),
                            ));
                        }
                        None if crate::config::burn::pair(long_window_s, short_window_s)
                            .is_none() =>
                        {
                            return Err(Invalid::at(
                                at("burn_rate"),
                                format!(
                                    "is required: {long_window_s}/{short_window_s} s is not a window pair of the burn-rate table ({})",
                                    crate::config::burn::pairs_text()
                                ),
                            ));
                        }
                        _ => {}
                    }
                    if for_s.is_some_and(|f| f > 86_400) {
                        return Err(Invalid::at(
                            at("for_s"),
                            format!("{} is out of range 0..=86400 (1 day)", for_s.unwrap_or(0)),
                        ));
                    }
                }
                _ => {}
            }
            if rule.cooldown_s > 7 * 86_400 {
                return Err(Invalid::at(
                    at("cooldown_s"),
                    format!("{} is out of range 0..=604800 (7 days)", rule.cooldown_s),
                ));
            }
            let mut seen = HashSet::new();
            for (j, channel) in rule.channels.iter().enumerate() {
                if !seen.insert(channel) {
                    return Err(Invalid::at(
                        format!("alerts.rules[{i}].channels[{j}]"),
                        format!("{} is listed twice", channel.as_str()),
                    ));
                }
            }
        }
        self.channels.validate()?;
        check_runbook_base_url(&self.runbook_base_url)
            .map_err(|reason| Invalid::at("alerts.runbook_base_url", reason))
    }

    /// The rules in force.
    pub fn active_rules(&self) -> impl Iterator<Item = &AlertRule> {
        self.rules
            .iter()
            .filter(move |rule| self.enabled && rule.enabled)
    }
}

/// Why a runbook base URL cannot be used: it must be an absolute http(s) URL without a `#` part (the
/// section is appended), so the links are clickable in Alertmanager and Grafana.
pub fn check_runbook_base_url(raw: &str) -> Result<(), String> {
    if raw.len() > 2_000 {
        return Err(format!("{} characters is longer than 2000", raw.len()));
    }
    match url::Url::parse(raw) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.has_host() => {
            if raw.contains('#') {
                Err(format!(
                    "{raw:?} has a '#' part: the section is appended to it"
                ))
            } else if raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
                Err(format!("{raw:?} contains whitespace"))
            } else {
                Ok(())
            }
        }
        _ => Err(format!("{raw:?} is not an absolute http(s) URL")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_runbook_base_url_must_be_an_absolute_http_url_without_a_fragment() {
        assert_eq!(check_runbook_base_url(&default_runbook_base_url()), Ok(()));
        assert_eq!(
            check_runbook_base_url("https://git.example.org/ops/hale/-/blob/main/docs/runbooks.md"),
            Ok(())
        );
        for (raw, reason) in [
            ("docs/runbooks.md", "is not an absolute http(s) URL"),
            ("file:///srv/runbooks.md", "is not an absolute http(s) URL"),
            ("https://x.example/runbooks.md#top", "has a '#' part"),
            ("https://x.example/run books.md", "contains whitespace"),
            ("", "is not an absolute http(s) URL"),
        ] {
            let err = check_runbook_base_url(raw).unwrap_err();
            assert!(err.contains(reason), "{raw}: {err}");
        }
        let config = AlertsConfig {
            runbook_base_url: "runbooks.md".into(),
            ..AlertsConfig::default()
        };
        let err = config.validate().unwrap_err();
        assert_eq!(err.path, "$.alerts.runbook_base_url");
    }

    #[test]
    fn a_rule_cannot_take_an_announcements_name() {
        let mut config = AlertsConfig::default();
        let mut rule = config.rules[0].clone();
        rule.name = "workflow_notify".into();
        config.rules.push(rule);
        let err = config.validate().unwrap_err();
        assert_eq!(
            err.path,
            format!("$.alerts.rules[{}].name", config.rules.len() - 1)
        );
        assert!(
            err.reason.contains("reserved for workflow announcements"),
            "{}",
            err.reason
        );
    }
}
