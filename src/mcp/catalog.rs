//! The tool catalog: every exposed tool of every ready server under the one name HTTP clients call it by,
//! with its input schema compiled once. Pure: built from the servers' tool lists, never from a connection.
//!
//! Names: a tool keeps its own name when no other server has one like it; otherwise it is exposed as
//! `server__tool`. A name is made of `[A-Za-z0-9_.-]`: anything else becomes `_`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use rmcp::model::Tool;
use serde_json::Value;

/// Between a server's name and its tool's, when a name needs the server to be told apart.
pub const SEPARATOR: &str = "__";

/// One exposed tool.
#[derive(Debug, Clone)]
pub struct CatalogTool {
    /// The name the bridge exposes.
    pub name: String,
    /// The server that has it.
    pub server: Arc<str>,
    /// The server's own name for it (what a call sends).
    pub tool: Arc<str>,
    pub description: Option<String>,
    pub input_schema: Arc<Value>,
    /// The compiled input schema, or why it cannot be used (then the tool is listed, and calls are refused).
    pub validator: Result<Arc<jsonschema::Validator>, String>,
}

/// The tools of one ready server, already filtered by its `enabled_tools` / `disabled_tools`.
#[derive(Debug, Clone)]
pub struct ServerTools {
    pub server: Arc<str>,
    pub tools: Vec<Tool>,
}

/// Every exposed tool, by exposed name.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    tools: BTreeMap<String, CatalogTool>,
}

impl Catalog {
    /// The catalog of `servers` (in the order given; a server listed twice keeps its first list).
    pub fn build(servers: &[ServerTools]) -> Self {
        // How many servers have each (sanitized) tool name.
        let mut owners: HashMap<String, usize> = HashMap::new();
        for server in servers {
            let mut seen = std::collections::HashSet::new();
            for tool in &server.tools {
                let name = sanitize(&tool.name);
                if seen.insert(name.clone()) {
                    *owners.entry(name).or_default() += 1;
                }
            }
        }
        let mut tools = BTreeMap::new();
        for server in servers {
            for tool in &server.tools {
                let bare = sanitize(&tool.name);
                let name = if owners.get(&bare).copied().unwrap_or(0) > 1 {
                    format!("{}{SEPARATOR}{bare}", sanitize(&server.server))
                } else {
                    bare
                };
                if tools.contains_key(&name) {
                    // Two tools of one server that sanitize alike, or `a__b` meeting server `a`'s `b`: the
                    // first keeps the name; the other cannot be called by name and is left out.
                    tracing::warn!(
                        server = %server.server,
                        tool = %tool.name,
                        exposed = %name,
                        "an MCP tool's exposed name is already taken; the tool is left out of the catalog"
                    );
                    continue;
                }
                let input_schema = Arc::new(Value::Object((*tool.input_schema).clone()));
                let validator = jsonschema::validator_for(&input_schema)
                    .map(Arc::new)
                    .map_err(|e| format!("the tool's input schema cannot be used: {e}"));
                tools.insert(
                    name.clone(),
                    CatalogTool {
                        name,
                        server: server.server.clone(),
                        tool: Arc::from(tool.name.as_ref()),
                        description: tool.description.as_ref().map(|d| d.to_string()),
                        input_schema,
                        validator,
                    },
                );
            }
        }
        Self { tools }
    }

    pub fn get(&self, name: &str) -> Option<&CatalogTool> {
        self.tools.get(name)
    }

    /// Every tool, by exposed name.
    pub fn tools(&self) -> impl Iterator<Item = &CatalogTool> {
        self.tools.values()
    }

    pub fn len(&self) -> usize {
        self.tools.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tools.is_empty()
    }
}

/// `name` with every character outside `[A-Za-z0-9_.-]` replaced by `_` (an empty name becomes `_`).
pub fn sanitize(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if cleaned.is_empty() {
        "_".to_owned()
    } else {
        cleaned
    }
}

/// Why arguments do not fit a tool's input schema: the JSON path of the failing field and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaViolation {
    /// A JSON pointer into the arguments (`/count`), empty for the arguments object itself.
    pub field: String,
    pub message: String,
}

impl CatalogTool {
    /// Checks `arguments` against the tool's input schema: the first violation, if any.
    pub fn check(&self, arguments: &Value) -> Result<(), CheckError> {
        let validator = self
            .validator
            .as_ref()
            .map_err(|reason| CheckError::UnusableSchema(reason.clone()))?;
        match validator.iter_errors(arguments).next() {
            None => Ok(()),
            Some(error) => Err(CheckError::Violation(SchemaViolation {
                field: error.instance_path().to_string(),
                message: error.to_string(),
            })),
        }
    }
}

/// Why a call's arguments cannot be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckError {
    Violation(SchemaViolation),
    UnusableSchema(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tool(name: &str, schema: Value) -> Tool {
        let Value::Object(schema) = schema else {
            panic!("a schema is an object")
        };
        Tool::new(name.to_owned(), "a tool", Arc::new(schema))
    }

    fn object() -> Value {
        serde_json::json!({"type": "object"})
    }

    #[test]
    fn unique_names_stay_bare_and_shared_ones_take_their_servers_name() {
        let catalog = Catalog::build(&[
            ServerTools {
                server: Arc::from("everything"),
                tools: vec![tool("echo", object()), tool("add", object())],
            },
            ServerTools {
                server: Arc::from("time"),
                tools: vec![tool("echo", object()), tool("get current time!", object())],
            },
        ]);
        let names: Vec<&str> = catalog.tools().map(|t| t.name.as_str()).collect();
        assert_eq!(
            names,
            ["add", "everything__echo", "get_current_time_", "time__echo"]
        );
        let echo = catalog.get("time__echo").unwrap();
        assert_eq!(&*echo.server, "time");
        assert_eq!(&*echo.tool, "echo");
        assert_eq!(
            &*catalog.get("get_current_time_").unwrap().tool,
            "get current time!"
        );
    }

    #[test]
    fn arguments_are_checked_against_the_schema_naming_the_failing_field() {
        let catalog = Catalog::build(&[ServerTools {
            server: Arc::from("s"),
            tools: vec![
                tool(
                    "add",
                    serde_json::json!({
                        "type": "object",
                        "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
                        "required": ["a", "b"]
                    }),
                ),
                tool(
                    "remote",
                    serde_json::json!({"$ref": "https://schemas.example/never-fetched.json"}),
                ),
            ],
        }]);
        let add = catalog.get("add").unwrap();
        assert_eq!(add.check(&serde_json::json!({"a": 1, "b": 2})), Ok(()));
        let Err(CheckError::Violation(wrong)) = add.check(&serde_json::json!({"a": "one", "b": 2}))
        else {
            panic!("a string is not a number")
        };
        assert_eq!(wrong.field, "/a");
        assert!(wrong.message.contains("number"), "{}", wrong.message);
        let Err(CheckError::Violation(missing)) = add.check(&serde_json::json!({"a": 1})) else {
            panic!("b is required")
        };
        assert!(missing.message.contains("\"b\""), "{}", missing.message);
        // A schema that would need a download is never fetched: the tool is listed, its calls refused.
        let remote = catalog.get("remote").unwrap();
        assert!(matches!(
            remote.check(&serde_json::json!({})),
            Err(CheckError::UnusableSchema(_))
        ));
    }

    #[test]
    fn names_keep_only_safe_characters() {
        assert_eq!(sanitize("a.b-c_d9"), "a.b-c_d9");
        assert_eq!(sanitize("héllo wörld/x"), "h_llo_w_rld_x");
        assert_eq!(sanitize(""), "_");
    }
}
