//! The dead letters (`GET /alerts/dead-letters`, operate): the alert notices that every attempt failed to
//! deliver, with their payload and last error (neither ever holds a secret).

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::answers::audit::AuditParams;
use crate::answers::AnswerError;
use crate::store::deliveries::DeadLetter;
use crate::store::Store;

/// One notice that was not delivered.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "id": 18, "alert_event_id": 311, "channel": "webhook", "attempts": 5,
    "created_at": "2026-11-26T12:00:03Z", "last_attempt_at": "2026-11-26T12:04:51Z",
    "error": "HTTP 503: upstream unavailable",
    "payload": {
        "version": 1, "kind": "fired",
        "alert": {"id": 7, "rule": "target_down", "target": "api", "level": "critical", "state": "firing",
                  "summary": "api is down", "description": "3 failed scheduled checks in a row; the latest: down, HTTP 503",
                  "fired_at": "2026-11-26T12:00:03Z", "resolved_at": null, "suppressed": 0},
        "at": "2026-11-26T12:00:03Z", "generator_url": "http://127.0.0.1:3002/alerts?state=firing"
    }
}))]
pub struct DeadLetterView {
    pub id: i64,
    /// The alert event the notice was about; null when that event is no longer stored.
    pub alert_event_id: Option<i64>,
    /// `log`, `discord`, `email`, `webhook` or `alertmanager`.
    pub channel: String,
    pub attempts: u32,
    pub created_at: DateTime<Utc>,
    pub last_attempt_at: Option<DateTime<Utc>>,
    /// The last attempt's error.
    pub error: Option<String>,
    /// What was sent: a JSON value when it is JSON (an object, or for `alertmanager` an array of alerts), else
    /// the text.
    pub payload: serde_json::Value,
}

impl From<DeadLetter> for DeadLetterView {
    fn from(d: DeadLetter) -> Self {
        let payload = serde_json::from_str(&d.payload)
            .unwrap_or_else(|_| serde_json::Value::String(d.payload.clone()));
        Self {
            id: d.id,
            alert_event_id: d.alert_event_id,
            channel: d.channel,
            attempts: d.attempts,
            created_at: d.created_at,
            last_attempt_at: d.last_attempt_at,
            error: d.error,
            payload,
        }
    }
}

/// The dead letters `params` ask for (`since`, `limit`), newest first.
pub async fn dead_letters(
    store: &Store,
    params: &AuditParams,
) -> Result<Vec<DeadLetterView>, AnswerError> {
    let (since, limit) = params.parse().map_err(AnswerError::BadInput)?;
    Ok(store
        .dead_letters(since, limit)
        .await?
        .into_iter()
        .map(DeadLetterView::from)
        .collect())
}
