//! hale's own MCP tools, declared once: each is one answer of `crate::answers` (the function its HTTP
//! route calls), with an input schema built from the route's parameters and an output schema built from
//! the answer's type, so a tool and its route cannot disagree.

use std::collections::HashMap;
use std::sync::Arc;

use rmcp::model::{CallToolResult, ContentBlock, Tool, ToolAnnotations};
use rmcp::ErrorData as McpError;
use serde::de::DeserializeOwned;
use serde_json::{json, Map, Value};
use utoipa::openapi::{RefOr, Schema};
use utoipa::{IntoParams, PartialSchema, ToSchema};

use crate::answers::alerts::AlertView;
use crate::answers::checks::{AllHealth, HistoryPage, HistoryParams};
use crate::answers::heal::{HealEventsParams, HealView};
use crate::answers::slo::{SloListParams, SloParams};
use crate::answers::{self, AnswerError};
use crate::auth::Role;
use crate::slo::TargetSlo;

/// One of hale's tools.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HaleTool {
    HealthAll,
    HealthHistory,
    Slo,
    SloTarget,
    SloReport,
    HealEvents,
    ActiveAlerts,
    Heal,
}

impl HaleTool {
    pub const ALL: [HaleTool; 8] = [
        Self::HealthAll,
        Self::HealthHistory,
        Self::Slo,
        Self::SloTarget,
        Self::SloReport,
        Self::HealEvents,
        Self::ActiveAlerts,
        Self::Heal,
    ];

    /// The tool's name: the name of its answer in `answers::ANSWERS` (the SLO report, which has no route,
    /// is `slo_report`).
    pub fn name(self) -> &'static str {
        match self {
            Self::HealthAll => "health_all",
            Self::HealthHistory => "health_history",
            Self::Slo => "slo",
            Self::SloTarget => "slo_target",
            Self::SloReport => "slo_report",
            Self::HealEvents => "heal_events",
            Self::ActiveAlerts => "active_alerts",
            Self::Heal => "heal",
        }
    }

    pub fn by_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.name() == name)
    }

    /// The weakest role that may call it: its answer's, from the catalog (read for the report).
    pub fn role(self) -> Role {
        answers::ANSWERS
            .iter()
            .find(|a| a.name == self.name())
            .map_or(Role::Read, |a| a.role)
    }

    /// The route that gives the same answer, for the description.
    fn route(self) -> Option<String> {
        answers::ANSWERS
            .iter()
            .find(|a| a.name == self.name())
            .map(|a| format!("{} {}", a.verb.as_str(), a.route))
    }

    fn summary(self) -> &'static str {
        match self {
            Self::HealthAll => {
                "Checks every target now: each one's outcome, latency and breaker, the counts and the 0-100 health score"
            }
            Self::HealthHistory => {
                "Stored health checks, newest first, one page at a time (pass next_cursor as cursor for the next)"
            }
            Self::Slo => {
                "Every target's SLO status over the configured window (availability, latency, restarts, error budget), in config order"
            }
            Self::SloTarget => "One target's SLO status over a window (default the configured one)",
            Self::SloReport => {
                "The SLO report as `hale slo report` makes it: structured content is the JSON report (version 1); the text is Markdown or JSON as `format` asks"
            }
            Self::HealEvents => "Recent heal attempts, newest first",
            Self::ActiveAlerts => "The alerts firing now, loudest first",
            Self::Heal => {
                "Heals a target now (a manual heal, under the same budgets and cooldowns as automatic ones); needs the operate role"
            }
        }
    }

    fn description(self) -> String {
        match self.route() {
            Some(route) => format!("{}. The same answer as {route}.", self.summary()),
            None => format!("{}.", self.summary()),
        }
    }

    /// The JSON Schema of its arguments.
    pub fn input_schema(self) -> Value {
        match self {
            Self::HealthAll | Self::ActiveAlerts => object_schema(Map::new(), &[]),
            Self::HealthHistory => params_schema::<HistoryParams>(Vec::new()),
            Self::Slo => params_schema::<SloListParams>(Vec::new()),
            Self::SloTarget => params_schema::<SloParams>(vec![(
                "service",
                name_schema("A configured target's name"),
            )]),
            Self::HealEvents => params_schema::<HealEventsParams>(Vec::new()),
            Self::Heal => {
                params_schema::<NoParams>(vec![("target", name_schema("The target to heal"))])
            }
            Self::SloReport => {
                let mut properties = Map::new();
                properties.insert(
                    "window".into(),
                    json!({"type": "string", "description": "The window, ending at the end of the current hour: `7d`, `24h`, ... (default: `slo.window_days`)"}),
                );
                properties.insert("service".into(), name_schema("Only this target"));
                properties.insert(
                    "format".into(),
                    json!({"type": "string", "enum": ["markdown", "json"], "default": "markdown", "description": "The text item's form; the structured content is always the JSON report"}),
                );
                properties.insert(
                    "exact".into(),
                    json!({"type": "boolean", "default": false, "description": "Count every raw check instead of reading the hourly rollups (slower; the p95 is exact)"}),
                );
                object_schema(properties, &[])
            }
        }
    }

    /// The JSON Schema of its structured content (always an object: a list is wrapped in one).
    pub fn output_schema(self) -> Value {
        match self {
            Self::HealthAll => type_schema::<AllHealth>(),
            Self::HealthHistory => type_schema::<HistoryPage>(),
            Self::Slo => object_schema(
                Map::from_iter([
                    (
                        "targets".to_owned(),
                        json!({"type": "array", "items": type_schema::<TargetSlo>()}),
                    ),
                    (
                        "total".to_owned(),
                        json!({"type": "integer", "minimum": 0, "description": "How many targets there are"}),
                    ),
                ]),
                &["targets", "total"],
            ),
            Self::SloTarget => type_schema::<TargetSlo>(),
            Self::SloReport => {
                json!({"type": "object", "description": "The JSON report (`version` 1), as `hale slo report --format json` prints it; see docs/reports.md"})
            }
            Self::HealEvents => list_schema::<HealView>("events"),
            Self::ActiveAlerts => list_schema::<AlertView>("alerts"),
            Self::Heal => type_schema::<HealView>(),
        }
    }

    /// The tool as `tools/list` shows it.
    pub fn tool(self) -> Tool {
        let mut tool = Tool::new(
            self.name(),
            self.description(),
            Arc::new(as_object(self.input_schema())),
        )
        .with_raw_output_schema(Arc::new(as_object(self.output_schema())));
        let mut annotations = ToolAnnotations::default();
        annotations.read_only_hint = Some(self != Self::Heal);
        annotations.open_world_hint = Some(false);
        tool = tool.with_annotations(annotations);
        tool
    }
}

/// A tool whose only argument is its route's path parameter.
#[derive(Debug, serde::Deserialize, IntoParams)]
pub struct NoParams {}

fn as_object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => Map::from_iter([("const".to_owned(), other)]),
    }
}

fn name_schema(description: &str) -> Value {
    json!({"type": "string", "minLength": 1, "maxLength": 64, "pattern": "^[A-Za-z0-9._-]+$", "description": description})
}

fn object_schema(properties: Map<String, Value>, required: &[&str]) -> Value {
    json!({"type": "object", "properties": properties, "required": required, "additionalProperties": false})
}

fn list_schema<T: ToSchema>(field: &str) -> Value {
    object_schema(
        Map::from_iter([(
            field.to_owned(),
            json!({"type": "array", "items": type_schema::<T>()}),
        )]),
        &[field],
    )
}

/// An object schema of the route's query parameters (their OpenAPI schemas), after `first` (the path's).
fn params_schema<P: IntoParams>(first: Vec<(&str, Value)>) -> Value {
    let mut properties = Map::new();
    let mut required: Vec<String> = first.iter().map(|(name, _)| (*name).to_owned()).collect();
    for (name, schema) in first {
        properties.insert(name.to_owned(), schema);
    }
    for parameter in P::into_params(|| None) {
        let Ok(Value::Object(p)) = serde_json::to_value(&parameter) else {
            continue;
        };
        let Some(name) = p.get("name").and_then(Value::as_str).map(str::to_owned) else {
            continue;
        };
        let mut schema = match p.get("schema") {
            Some(Value::Object(s)) => s.clone(),
            _ => Map::new(),
        };
        if let Some(description) = p.get("description") {
            schema.insert("description".into(), description.clone());
        }
        if p.get("required").and_then(Value::as_bool) == Some(true) {
            required.push(name.clone());
        }
        properties.insert(name, clean(Value::Object(schema), &HashMap::new(), 0));
    }
    json!({"type": "object", "properties": properties, "required": required, "additionalProperties": false})
}

/// The JSON Schema of an answer's type: its OpenAPI schema with every `$ref` inlined (an MCP schema
/// stands alone), without OpenAPI's `example` and its numeric formats, which JSON Schema does not know.
fn type_schema<T: ToSchema>() -> Value {
    let mut named: Vec<(String, RefOr<Schema>)> = Vec::new();
    T::schemas(&mut named);
    let defs: HashMap<String, Value> = named
        .into_iter()
        .filter_map(|(name, schema)| serde_json::to_value(schema).ok().map(|v| (name, v)))
        .collect();
    let root = serde_json::to_value(<T as PartialSchema>::schema()).unwrap_or(Value::Null);
    clean(root, &defs, 0)
}

/// Past this depth a `$ref` is left as it is (no schema of hale's is nested this deep).
const MAX_DEPTH: usize = 32;

const OPENAPI_FORMATS: &[&str] = &[
    "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "float", "double",
];

fn clean(value: Value, defs: &HashMap<String, Value>, depth: usize) -> Value {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(reference)) = map.get("$ref") {
                if let Some(found) = reference
                    .strip_prefix("#/components/schemas/")
                    .and_then(|name| defs.get(name))
                {
                    if depth < MAX_DEPTH {
                        return clean(found.clone(), defs, depth + 1);
                    }
                }
            }
            let mut out = Map::new();
            for (key, value) in map {
                match key.as_str() {
                    "example" => {}
                    // `["string", "null"]` as `anyOf` branches of one type each, which more clients map.
                    "type" if value.as_array().is_some_and(|types| types.len() > 1) => {
                        let branches: Vec<Value> = value
                            .as_array()
                            .map(|types| types.iter().map(|t| json!({ "type": t })).collect())
                            .unwrap_or_default();
                        out.insert("anyOf".to_owned(), Value::Array(branches));
                    }
                    "format" if value.as_str().is_some_and(|f| OPENAPI_FORMATS.contains(&f)) => {}
                    "properties" => {
                        let properties = match value {
                            Value::Object(properties) => properties
                                .into_iter()
                                .map(|(name, schema)| (name, clean(schema, defs, depth)))
                                .collect(),
                            _ => Map::new(),
                        };
                        out.insert(key, Value::Object(properties));
                    }
                    _ => {
                        out.insert(key, clean(value, defs, depth));
                    }
                }
            }
            Value::Object(out)
        }
        Value::Array(items) => {
            Value::Array(items.into_iter().map(|v| clean(v, defs, depth)).collect())
        }
        other => other,
    }
}

/// The arguments of a call, checked against the tool's input schema's property names, as the route's
/// query parameters (each value a string, as in a query), so the answer parses them as the route does.
pub fn query<P: DeserializeOwned>(
    tool: HaleTool,
    arguments: &Map<String, Value>,
) -> Result<P, McpError> {
    let schema = tool.input_schema();
    let known: Vec<&str> = schema["properties"]
        .as_object()
        .map(|p| p.keys().map(String::as_str).collect())
        .unwrap_or_default();
    let mut fields = Map::new();
    for (name, value) in arguments {
        if !known.contains(&name.as_str()) {
            return Err(McpError::invalid_params(
                format!(
                    "{name}: {} takes no such argument (it takes {})",
                    tool.name(),
                    if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    }
                ),
                None,
            ));
        }
        let text = match value {
            Value::Null => continue,
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Array(_) | Value::Object(_) => {
                return Err(McpError::invalid_params(
                    format!("{name}: must be a string, a number or a boolean"),
                    None,
                ))
            }
        };
        fields.insert(name.clone(), Value::String(text));
    }
    serde_json::from_value(Value::Object(fields))
        .map_err(|e| McpError::invalid_params(format!("{}: {e}", tool.name()), None))
}

/// A required string argument (a route's path parameter).
pub fn required_name<'a>(
    arguments: &'a Map<String, Value>,
    name: &str,
) -> Result<&'a str, McpError> {
    match arguments.get(name) {
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(McpError::invalid_params(
            format!("{name}: must be a string"),
            None,
        )),
        None => Err(McpError::invalid_params(
            format!("{name}: missing (required)"),
            None,
        )),
    }
}

/// An answer's error as an MCP error: the message names the bad argument; an internal fault's cause goes
/// to the log only.
pub fn answer_error(tool: HaleTool, e: AnswerError) -> McpError {
    match e {
        AnswerError::BadInput(m)
        | AnswerError::NotFound(m)
        | AnswerError::Refused(m)
        | AnswerError::Conflict(m) => McpError::invalid_params(m, None),
        AnswerError::Forbidden(m) => McpError::invalid_request(m, None),
        AnswerError::Unavailable(m) => McpError::internal_error(m, None),
        AnswerError::Internal(cause) => {
            tracing::warn!(tool = tool.name(), error = %cause, "an mcp tool call failed inside hale");
            McpError::internal_error("internal error (the cause is in hale's log)", None)
        }
    }
}

/// A result with `value` as its structured content and `text` as its one content item.
pub fn result(value: Value, text: String, is_error: bool) -> CallToolResult {
    let mut result = if is_error {
        CallToolResult::error(vec![ContentBlock::text(text)])
    } else {
        CallToolResult::success(vec![ContentBlock::text(text)])
    };
    result.structured_content = Some(value);
    result
}

/// A serialisable answer as a result, its text the pretty JSON of the structured content.
pub fn json_result<T: serde::Serialize>(
    answer: &T,
    is_error: bool,
) -> Result<CallToolResult, McpError> {
    let value = serde_json::to_value(answer)
        .map_err(|e| McpError::internal_error(format!("cannot encode the answer: {e}"), None))?;
    let text = serde_json::to_string_pretty(&value).unwrap_or_default();
    Ok(result(value, text, is_error))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_schema_is_an_object_and_stands_alone() {
        for tool in HaleTool::ALL {
            for schema in [tool.input_schema(), tool.output_schema()] {
                assert_eq!(schema["type"], "object", "{}: {schema}", tool.name());
                let text = schema.to_string();
                assert!(
                    !text.contains("$ref"),
                    "{}: a $ref is left: {text}",
                    tool.name()
                );
                assert!(!text.contains("\"example\""), "{}: {text}", tool.name());
            }
            assert!(HaleTool::by_name(tool.name()) == Some(tool));
        }
    }

    #[test]
    fn tools_with_a_route_take_its_name_and_role() {
        for tool in HaleTool::ALL {
            if tool != HaleTool::SloReport {
                assert!(
                    tool.route().is_some(),
                    "{} has no answer in the catalog",
                    tool.name()
                );
            }
        }
        assert_eq!(HaleTool::Heal.role(), Role::Operate);
        assert_eq!(HaleTool::HealthAll.role(), Role::Read);
    }

    #[test]
    fn arguments_are_parsed_as_the_route_parses_its_query() {
        let args = json!({"limit": 5, "service": "api"});
        let Value::Object(args) = args else {
            unreachable!()
        };
        let p: HistoryParams = query(HaleTool::HealthHistory, &args).expect("valid");
        assert_eq!(p.limit.as_deref(), Some("5"));
        let Value::Object(bad) = json!({"limt": 5}) else {
            unreachable!()
        };
        let e = query::<HistoryParams>(HaleTool::HealthHistory, &bad).expect_err("unknown");
        assert!(e.message.starts_with("limt: "), "{}", e.message);
    }
}
