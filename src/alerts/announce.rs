//! Announcements: one-off notices that no rule makes, such as a workflow's `notify` step or a run that a
//! restart interrupted. Each is stored as an alert already resolved (in the history, never firing, so
//! nothing restores it at start) and handed to the dispatcher once, so its deliveries are recorded, retried
//! and kept as dead letters like any alert's.
//!
//! An `Announcer` is separate from the `AlertEngine`: an announcement changes nothing the rules remember
//! (no cooldown, no firing alert), so it neither waits for the engine's state nor needs its event loop; it
//! only needs the store, the clock and the shared `Dispatcher`, and it is cheap to clone into whatever
//! makes announcements.

use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::alerts::{labels, AlertClass, Dispatcher, Notice};
use crate::clock::Clock;
use crate::config::{ChannelKind, Config, ANNOUNCEMENT_RULES};
use crate::records::{AlertEventKind, AlertLevel};
use crate::store::Store;

/// A summary longer than this many characters is cut (with `…`): it is one line in every channel.
pub const MAX_SUMMARY_CHARS: usize = 500;
/// A description longer than this many characters is cut (with `…`); channels cut further to their limits.
pub const MAX_DESCRIPTION_CHARS: usize = 8_000;

/// What an announcement is about: its alert's `rule` (a name `alerts.rules` cannot take), its runbook
/// section and its class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AnnouncementRule {
    /// A workflow's `notify` step: a message through the alert channels.
    WorkflowNotify,
    /// A workflow run ended `interrupted` after a restart of hale, and was not resumed.
    WorkflowRunInterrupted,
}

impl AnnouncementRule {
    pub const ALL: [AnnouncementRule; 2] = [Self::WorkflowNotify, Self::WorkflowRunInterrupted];

    /// The alert's `rule` (and the `alertname` Alertmanager gets, the `rule` label of `alerts_total`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::WorkflowNotify => ANNOUNCEMENT_RULES[0],
            Self::WorkflowRunInterrupted => ANNOUNCEMENT_RULES[1],
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == raw)
    }

    /// The level it has unless its maker says otherwise: a `notify` step informs, an interrupted run pages.
    pub fn default_level(self) -> AlertLevel {
        match self {
            Self::WorkflowNotify => AlertLevel::Info,
            Self::WorkflowRunInterrupted => AlertLevel::Critical,
        }
    }

    /// Its section of docs/runbooks.md.
    pub fn runbook_anchor(self) -> &'static str {
        match self {
            Self::WorkflowNotify => "workflow-notify",
            Self::WorkflowRunInterrupted => "workflow-run-interrupted",
        }
    }

    /// The `class` label: both are about a workflow.
    pub fn class(self) -> AlertClass {
        AlertClass::Workflow
    }
}

impl fmt::Display for AnnouncementRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One announcement, as its maker gives it.
#[derive(Debug, Clone, PartialEq)]
pub struct Announcement {
    pub rule: AnnouncementRule,
    /// What it is about: the workflow's id. Must not be empty.
    pub target: String,
    pub level: AlertLevel,
    /// One line. Must not be empty; cut at `MAX_SUMMARY_CHARS`.
    pub summary: String,
    /// More, for the channels that show it; cut at `MAX_DESCRIPTION_CHARS`.
    pub description: String,
    /// The channels to tell; `None`: every configured channel. One that is not configured is skipped (as a
    /// rule's are); Alertmanager, when configured, gets every announcement all the same.
    pub channels: Option<Vec<ChannelKind>>,
}

/// What became of an announcement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnounceReceipt {
    /// The stored alert (`alerts.id`, in `GET /alerts`); `None` when the database refused it (the notice
    /// went out all the same, and the error is logged).
    pub alert_id: Option<i64>,
    /// The event its deliveries point to (`alert_deliveries.alert_event_id`).
    pub event_id: Option<i64>,
    /// When it was made.
    pub at: DateTime<Utc>,
    /// The channels it was queued for (delivered in the background, each recorded in `alert_deliveries`).
    pub channels: Vec<ChannelKind>,
    /// Channels asked for that are not configured: skipped.
    pub skipped: Vec<ChannelKind>,
}

/// Why an announcement was refused or not sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnnounceError {
    #[error("announcement {rule} has an empty target")]
    EmptyTarget { rule: AnnouncementRule },
    #[error("announcement {rule} about {target:?} has an empty summary")]
    EmptySummary {
        rule: AnnouncementRule,
        target: String,
    },
    /// hale is shutting down: the alert is stored, but no channel will hear of it.
    #[error("alert delivery has stopped: announcement {rule} about {target:?} was stored (alert {alert_id:?}) but not sent")]
    DeliveryStopped {
        rule: AnnouncementRule,
        target: String,
        alert_id: Option<i64>,
    },
}

/// Stores announcements and hands them to the dispatcher.
#[derive(Debug, Clone)]
pub struct Announcer {
    store: Store,
    clock: Arc<dyn Clock>,
    dispatcher: Arc<Dispatcher>,
    runbook_base_url: String,
    generator_base: String,
}

impl Announcer {
    /// `dispatcher` is the one the alert engine sends to (its worker must run for anything to be sent).
    pub fn new(
        config: &Config,
        store: Store,
        clock: Arc<dyn Clock>,
        dispatcher: Arc<Dispatcher>,
    ) -> Self {
        Self {
            store,
            clock,
            dispatcher,
            runbook_base_url: config.alerts.runbook_base_url.clone(),
            generator_base: format!("http://{}", config.listen.health_proxy),
        }
    }

    /// Stores the announcement as an alert opened and resolved at once, and sends one notice of it to its
    /// channels. A database error does not stop the notice (it is logged, and the receipt has no ids).
    /// Never waits on the network: the dispatcher delivers in the background. `alerts.enabled` does not
    /// apply: it switches the rules off, and an announcement is asked for explicitly.
    pub async fn announce(
        &self,
        announcement: Announcement,
    ) -> Result<AnnounceReceipt, AnnounceError> {
        let Announcement {
            rule,
            target,
            level,
            summary,
            description,
            channels,
        } = announcement;
        let target = target.trim().to_owned();
        if target.is_empty() {
            return Err(AnnounceError::EmptyTarget { rule });
        }
        let summary = cut(summary.trim(), MAX_SUMMARY_CHARS);
        if summary.is_empty() {
            return Err(AnnounceError::EmptySummary { rule, target });
        }
        let description = cut(description.trim(), MAX_DESCRIPTION_CHARS);
        let at = self.clock.now();
        let (alert_id, event_id) = match self
            .store
            .record_announcement(rule.as_str(), &target, level, &summary, at)
            .await
        {
            Ok((alert_id, event_id)) => (Some(alert_id), Some(event_id)),
            Err(e) => {
                // Not stored, but still said, as an alert is: a disk problem must not silence it.
                tracing::error!(rule = rule.as_str(), target = %target, error = %e, "cannot store an announcement; sending it all the same");
                (None, None)
            }
        };
        let notice = Notice {
            alert_id: alert_id.unwrap_or(0),
            event_id: event_id.unwrap_or(0),
            kind: AlertEventKind::Fired,
            rule: rule.as_str().to_owned(),
            target: target.clone(),
            level,
            summary: summary.clone(),
            description,
            fired_at: at,
            resolved_at: Some(at),
            suppressed: 0,
            at,
            generator_url: format!("{}/alerts?state=resolved", self.generator_base),
            class: rule.class(),
            runbook_url: labels::runbook_url(&self.runbook_base_url, rule.runbook_anchor()),
            one_off: true,
        };
        let asked = channels.unwrap_or_else(|| self.dispatcher.configured_channels());
        let handed = self.dispatcher.hand(notice, &asked);
        if handed.stopped {
            return Err(AnnounceError::DeliveryStopped {
                rule,
                target,
                alert_id,
            });
        }
        tracing::info!(
            rule = rule.as_str(),
            target = %target,
            level = level.as_str(),
            alert_id,
            channels = handed.queued.len(),
            skipped = handed.skipped.len(),
            summary = %summary,
            "announcement made"
        );
        Ok(AnnounceReceipt {
            alert_id,
            event_id,
            at,
            channels: handed.queued,
            skipped: handed.skipped,
        })
    }
}

/// `text` cut to at most `max` characters, the last of them `…` when it was longer.
fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announcement_rules_are_the_reserved_names_and_parse_back() {
        let names: Vec<&str> = AnnouncementRule::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(names, ANNOUNCEMENT_RULES);
        for rule in AnnouncementRule::ALL {
            assert_eq!(AnnouncementRule::parse(rule.as_str()), Some(rule));
            assert_eq!(rule.class(), AlertClass::Workflow);
        }
        assert_eq!(AnnouncementRule::parse("target_down"), None);
        assert_eq!(
            AnnouncementRule::WorkflowRunInterrupted.default_level(),
            AlertLevel::Critical
        );
    }

    #[test]
    fn every_announcement_has_a_runbook_section() {
        let runbooks = include_str!("../../docs/runbooks.md");
        for rule in AnnouncementRule::ALL {
            let heading = format!("\n## {}\n", rule.runbook_anchor());
            assert!(
                runbooks.contains(&heading),
                "docs/runbooks.md has no {heading:?}"
            );
        }
        let class = format!(
            "\n## {}\n",
            AlertClass::Workflow.runbook_anchor(AlertLevel::Info)
        );
        assert!(runbooks.contains(&class));
    }

    #[test]
    fn long_texts_are_cut_on_a_character() {
        assert_eq!(cut("short", 10), "short");
        assert_eq!(cut("ééééé", 3), "éé…");
        assert_eq!(cut("abc", 3), "abc");
        assert_eq!(cut("abcd", 3).chars().count(), 3);
    }
}
