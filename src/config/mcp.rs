//! `mcp_servers`: the Model Context Protocol servers the WebBridge connects to, each either a child process
//! (`command`) or a streamable HTTP endpoint (`url`). The pair is parsed into one `McpTransport`, so the rest
//! of the code never meets both or neither.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::config::{Invalid, ServiceName, TargetUrl};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawMcpServer", into = "RawMcpServer")]
pub struct McpServerConfig {
    pub name: ServiceName,
    pub transport: McpTransport,
}

/// How hale reaches an MCP server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum McpTransport {
    /// A child process speaking MCP on stdin/stdout: the program and its arguments (never empty).
    Command(Vec<String>),
    /// A streamable HTTP endpoint.
    Http(url::Url),
}

/// The form in the file: exactly one of `command` and `url`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMcpServer {
    name: ServiceName,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    command: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    url: Option<String>,
}

impl TryFrom<RawMcpServer> for McpServerConfig {
    type Error = String;

    fn try_from(raw: RawMcpServer) -> Result<Self, Self::Error> {
        let transport = match (raw.command.is_empty(), raw.url) {
            (false, None) => {
                if raw.command[0].is_empty() {
                    return Err("command: the program name is empty".to_owned());
                }
                McpTransport::Command(raw.command)
            }
            (true, Some(url)) => match TargetUrl::parse(&url) {
                Ok(TargetUrl::Http(url)) => McpTransport::Http(url),
                _ => {
                    return Err(format!(
                        "url: {:?} is not an http(s) URL",
                        crate::config::redact_userinfo(&url)
                    ))
                }
            },
            (true, None) => return Err("give a command or a url".to_owned()),
            (false, Some(_)) => return Err("give a command or a url, not both".to_owned()),
        };
        Ok(Self {
            name: raw.name,
            transport,
        })
    }
}

impl From<McpServerConfig> for RawMcpServer {
    fn from(server: McpServerConfig) -> Self {
        let (command, url) = match server.transport {
            McpTransport::Command(argv) => (argv, None),
            McpTransport::Http(url) => (Vec::new(), Some(url.to_string())),
        };
        Self {
            name: server.name,
            command,
            url,
        }
    }
}

/// Checks that no name is used twice.
pub(crate) fn validate_all(servers: &[McpServerConfig]) -> Result<(), Invalid> {
    let mut names = HashSet::new();
    for (i, server) in servers.iter().enumerate() {
        if !names.insert(server.name.as_str()) {
            return Err(Invalid::at(
                format!("mcp_servers[{i}].name"),
                format!("duplicate MCP server name {:?}", server.name.as_str()),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<McpServerConfig, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
    }

    #[test]
    fn a_server_is_a_command_or_a_url_never_both_or_neither() {
        let command = parse(r#"{"name": "fs", "command": ["mcp-fs", "--root", "/srv"]}"#).unwrap();
        assert_eq!(
            command.transport,
            McpTransport::Command(vec!["mcp-fs".into(), "--root".into(), "/srv".into()])
        );
        let http = parse(r#"{"name": "web", "url": "http://127.0.0.1:9000/mcp"}"#).unwrap();
        assert!(matches!(http.transport, McpTransport::Http(ref u) if u.port() == Some(9000)));
        let both = parse(r#"{"name": "x", "command": ["a"], "url": "http://h/"}"#).unwrap_err();
        assert!(
            both.starts_with("give a command or a url, not both"),
            "{both}"
        );
        let neither = parse(r#"{"name": "x"}"#).unwrap_err();
        assert!(neither.starts_with("give a command or a url"), "{neither}");
        let tcp = parse(r#"{"name": "x", "url": "tcp://h:1"}"#).unwrap_err();
        assert!(
            tcp.starts_with("url: \"tcp://h:1\" is not an http(s) URL"),
            "{tcp}"
        );
        let unknown = parse(r#"{"name": "x", "command": ["a"], "env": {}}"#).unwrap_err();
        assert!(unknown.contains("unknown field `env`"), "{unknown}");
        // Back to the file's form unchanged.
        assert_eq!(
            serde_json::to_value(&command).unwrap(),
            serde_json::json!({"name": "fs", "command": ["mcp-fs", "--root", "/srv"]})
        );
    }
}
