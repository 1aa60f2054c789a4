//! The `discord` channel: a Discord incoming webhook, sent one message with one embed per notice, coloured
//! by level (green when resolved). A 429 answer's `retry_after` sets the wait before the next attempt.

use futures_util::future::BoxFuture;
use serde_json::json;

use crate::alerts::channels::{level_upper, post_json, tag, Channel, Failure};
use crate::alerts::Notice;
use crate::config::{ChannelKind, DiscordChannel, Secret};
use crate::records::{AlertEventKind, AlertLevel};

/// Embed colours (decimal RGB, as Discord takes them).
pub const RED: u32 = 0xE7_4C_3C;
pub const ORANGE: u32 = 0xF3_9C_12;
pub const BLUE: u32 = 0x34_98_DB;
pub const GREEN: u32 = 0x2E_CC_71;

#[derive(Debug)]
pub struct Discord {
    config: DiscordChannel,
    client: reqwest::Client,
}

impl Discord {
    pub fn new(config: DiscordChannel, client: reqwest::Client) -> Self {
        Self { config, client }
    }
}

/// The colour of a notice's embed.
pub fn colour(notice: &Notice) -> u32 {
    if notice.kind == AlertEventKind::Resolved {
        return GREEN;
    }
    match notice.level {
        AlertLevel::Critical => RED,
        AlertLevel::Warning => ORANGE,
        AlertLevel::Info => BLUE,
    }
}

/// At most `max` characters (Discord refuses longer fields).
fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
        cut.push('…');
        cut
    }
}

/// The webhook message of a notice.
pub fn message(notice: &Notice) -> serde_json::Value {
    let title = format!("[{}] {}: {}", tag(notice), notice.rule, notice.target);
    let description = if notice.description.is_empty() {
        notice.summary.clone()
    } else {
        format!("{}\n\n{}", notice.summary, notice.description)
    };
    let field = |name: &str, value: String| json!({"name": name, "value": cut(&value, 1024), "inline": true});
    let mut fields = vec![
        field("Rule", notice.rule.clone()),
        field("Target", notice.target.clone()),
        field("Level", level_upper(notice.level).to_owned()),
        field("Kind", notice.kind.as_str().to_owned()),
        field("Fired at", notice.fired_at.to_rfc3339()),
    ];
    if let Some(resolved_at) = notice.resolved_at {
        fields.push(field("Resolved at", resolved_at.to_rfc3339()));
    }
    if notice.suppressed > 0 {
        fields.push(field("Repeats held back", notice.suppressed.to_string()));
    }
    json!({
        "username": "hale",
        "content": cut(&format!("**[{}]** {}: {}", tag(notice), notice.rule, notice.summary), 2000),
        "embeds": [{
            "title": cut(&title, 256),
            "description": cut(&description, 4096),
            "color": colour(notice),
            "fields": fields,
            "timestamp": notice.at.to_rfc3339(),
        }],
        "allowed_mentions": { "parse": [] },
    })
}

impl Channel for Discord {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Discord
    }

    fn payload(&self, notice: &Notice) -> String {
        message(notice).to_string()
    }

    fn deliver<'a>(&'a self, payload: &'a str) -> BoxFuture<'a, Result<(), Failure>> {
        Box::pin(post_json(
            &self.client,
            self.config.webhook_url.expose(),
            None,
            payload,
        ))
    }

    fn secrets(&self) -> Vec<&Secret> {
        vec![&self.config.webhook_url]
    }
}
