//! The MCP bridge's answer about its past calls: every call of a tool, newest first.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::answers::{params, AnswerError};
use crate::records::ToolCallOutcome;
use crate::store::tool_calls::{StoredToolCall, ToolCallQuery};
use crate::store::Store;

const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 1_000;

/// One call of a tool through the bridge.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": 42, "at": "2026-12-05T10:00:00.120Z", "server": "everything", "tool": "echo", "outcome": "ok",
    "latency_ms": 1.8, "request_id": "5f0c8c1e-8d1e-4c47-9a8e-2f3b1c9d7e10", "role": "operate",
    "argument_bytes": 17, "error": null, "arguments": null, "result": null
}))]
pub struct ToolCallView {
    /// Ids grow with each call: `before=<id>` asks for the calls older than this one.
    pub id: i64,
    /// When the call was asked for.
    pub at: DateTime<Utc>,
    pub server: String,
    /// The name the call was made with (`server__tool` when two servers list the same name).
    pub tool: String,
    pub outcome: ToolCallOutcome,
    /// How long the server took; null when nothing was sent (invalid arguments, server not ready, breaker
    /// open).
    pub latency_ms: Option<f64>,
    /// The `x-request-id` of the call's request.
    pub request_id: String,
    /// The role of the caller's token; null on loopback without a token.
    pub role: Option<String>,
    /// The size of the arguments as JSON.
    pub argument_bytes: u64,
    /// Why the call failed, when it did.
    pub error: Option<String>,
    /// The arguments as JSON text, kept only for a server with `log_arguments: true` (cut at 64 KiB) and
    /// shown only to operate or admin.
    pub arguments: Option<String>,
    /// The result as JSON text, kept and shown like `arguments`.
    pub result: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ToolCallsParams {
    /// Calls of this tool, by the name it was called with.
    pub tool: Option<String>,
    /// Calls of this server's tools.
    pub server: Option<String>,
    /// Calls made at or after this time (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    pub since: Option<String>,
    /// Calls older than the one with this id (the next page: the last id of the page before).
    #[param(value_type = Option<i64>, minimum = 1)]
    pub before: Option<String>,
    /// At most this many, 1 to 1000 (default 100).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000, default = 100)]
    pub limit: Option<String>,
}

/// The calls `params` ask for, newest first. `show_payloads`: the caller may see logged arguments and
/// results (operate or admin).
pub async fn tool_calls(
    store: &Store,
    params: &ToolCallsParams,
    show_payloads: bool,
) -> Result<Vec<ToolCallView>, AnswerError> {
    let since = params::time("since", params.since.as_deref()).map_err(AnswerError::BadInput)?;
    let limit = params::limit(params.limit.as_deref(), DEFAULT_LIMIT, MAX_LIMIT)
        .map_err(AnswerError::BadInput)?;
    let before_id = match params.before.as_deref() {
        None => None,
        Some(raw) => match raw.parse::<i64>() {
            Ok(id) if id >= 1 => Some(id),
            _ => {
                return Err(AnswerError::BadInput(format!(
                    "before must be a call id (a whole number of at least 1), not {raw:?}"
                )))
            }
        },
    };
    let name = |field: &str, raw: Option<&str>| -> Result<Option<String>, AnswerError> {
        match raw {
            Some("") => Err(AnswerError::BadInput(format!(
                "{field} must not be empty; leave it out to list every {field}"
            ))),
            Some(raw) if raw.len() > 256 => Err(AnswerError::BadInput(format!(
                "{field} is {} bytes long; names are at most 256",
                raw.len()
            ))),
            other => Ok(other.map(str::to_owned)),
        }
    };
    let query = ToolCallQuery {
        tool: name("tool", params.tool.as_deref())?,
        server: name("server", params.server.as_deref())?,
        since,
        before_id,
        limit,
    };
    let rows = store.tool_calls(&query).await?;
    Ok(rows
        .into_iter()
        .map(|row| view(row, show_payloads))
        .collect())
}

fn view(row: StoredToolCall, show_payloads: bool) -> ToolCallView {
    let call = row.record;
    ToolCallView {
        id: row.id,
        at: call.at,
        server: call.server.to_string(),
        tool: call.tool,
        outcome: call.outcome,
        latency_ms: call.latency.map(|d| d.as_secs_f64() * 1000.0),
        request_id: call.request_id,
        role: call.role.map(str::to_owned),
        argument_bytes: call.argument_bytes,
        error: call.error,
        arguments: call.arguments.filter(|_| show_payloads),
        result: call.result.filter(|_| show_payloads),
    }
}
