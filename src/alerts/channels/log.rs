//! The `log` channel: one tracing event per notice (critical as an error, warning as a warning, info as
//! info), with the fields rule, target, level, kind and summary. Always configured, never fails.

use futures_util::future::BoxFuture;
use serde_json::json;

use crate::alerts::channels::{Channel, Failure};
use crate::alerts::Notice;
use crate::config::{ChannelKind, Secret};

#[derive(Debug, Default)]
pub struct LogChannel;

impl Channel for LogChannel {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Log
    }

    fn payload(&self, notice: &Notice) -> String {
        json!({
            "rule": notice.rule,
            "target": notice.target,
            "level": notice.level.as_str(),
            "kind": notice.kind.as_str(),
            "summary": notice.summary,
        })
        .to_string()
    }

    fn deliver<'a>(&'a self, payload: &'a str) -> BoxFuture<'a, Result<(), Failure>> {
        Box::pin(async move {
            let value: serde_json::Value = serde_json::from_str(payload)
                .map_err(|e| Failure::permanent(format!("malformed log payload: {e}")))?;
            let field = |name: &str| value[name].as_str().unwrap_or_default().to_owned();
            let (rule, target, level, kind, summary) = (
                field("rule"),
                field("target"),
                field("level"),
                field("kind"),
                field("summary"),
            );
            match level.as_str() {
                "critical" => tracing::error!(%rule, %target, %level, %kind, %summary, "alert"),
                "warning" => tracing::warn!(%rule, %target, %level, %kind, %summary, "alert"),
                _ => tracing::info!(%rule, %target, %level, %kind, %summary, "alert"),
            }
            Ok(())
        })
    }

    fn secrets(&self) -> Vec<&Secret> {
        Vec::new()
    }
}
