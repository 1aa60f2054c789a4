//! The alert manager: rules evaluated on events (pure in `policy.rs`, counting checks over time windows in
//! `windows.rs`, carried out by `engine.rs`), every alert event persisted, and notices
//! delivered to the channels in the background (`dispatch.rs`, one file per channel under `channels/`).
//! One-off notices that no rule makes (a workflow's `notify` step, a run interrupted by a restart) go the
//! same way through `announce.rs`.

pub mod announce;
pub mod channels;
pub mod dispatch;
pub mod engine;
pub mod labels;
pub mod policy;
pub mod windows;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::records::{AlertEventKind, AlertLevel};

pub use announce::{AnnounceError, AnnounceReceipt, Announcement, AnnouncementRule, Announcer};
pub use dispatch::{Dispatcher, Handed, Progress};
pub use engine::AlertEngine;
pub use labels::AlertClass;

/// One notice about one alert, as every channel receives it. Holds no secret.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Notice {
    /// The alert (`alerts.id`) and the event that caused this notice (`alert_events.id`).
    pub alert_id: i64,
    pub event_id: i64,
    /// Fired, escalated, repeated or resolved.
    pub kind: AlertEventKind,
    pub rule: String,
    /// The target's name, or `*` for an alert about all of them (mass failure).
    pub target: String,
    pub level: AlertLevel,
    /// One line: what is wrong.
    pub summary: String,
    /// More: since when, how many checks, what hale did.
    pub description: String,
    pub fired_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    /// Repeats held back by the cooldown since the previous notice.
    pub suppressed: u64,
    /// When this notice was made.
    pub at: DateTime<Utc>,
    /// A link back to hale about this alert (Alertmanager's `generatorURL`).
    pub generator_url: String,
    /// What kind of trouble it is, from the rule's condition (Alertmanager's `class` label).
    pub class: AlertClass,
    /// The absolute link to its runbook section, under `alerts.runbook_base_url`.
    pub runbook_url: String,
    /// An announcement (`announce.rs`): one event, not a condition that lasts. Its alert is stored already
    /// resolved (`resolved_at` is its own time), it has a delivery lane of its own (a later notice of the
    /// same rule and target never supersedes it), and Alertmanager gets it with a short `endsAt` instead of
    /// keeping it in the set it re-posts.
    pub one_off: bool,
}
