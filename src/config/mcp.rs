//! `mcp_servers`: the Model Context Protocol servers the WebBridge connects to, each either a child process
//! (`command`) or a streamable HTTP endpoint (`url`). The pair is parsed into one `McpTransport`, so the rest
//! of the code never meets both or neither.
//!
//! The same servers may also be given the way Claude Desktop, VS Code and Cursor write them: a top-level
//! `mcpServers` (or VS Code's `servers`) map from name to `{command, args, env}` or `{url, type, headers}`.
//! `McpServersMap` reads that form into hale's, so a pasted config and `hale mcp import` agree.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::config::{Invalid, ServiceName, TargetUrl, TokenSource};

/// `timeout_s` when not given: the handshake, a listing and each call.
pub const DEFAULT_TIMEOUT_S: u64 = 30;
/// `max_result_bytes` when not given: 1 MiB of result JSON.
pub const DEFAULT_MAX_RESULT_BYTES: usize = 1 << 20;
/// The largest `max_result_bytes` accepted: the bridge holds a whole result in memory before answering.
pub const MAX_RESULT_BYTES_LIMIT: usize = 64 << 20;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawMcpServer", into = "RawMcpServer")]
pub struct McpServerConfig {
    pub name: ServiceName,
    pub transport: McpTransport,
    /// Seconds for the handshake, a tool listing and each call (1..=3600); also the longest wait for the
    /// answer to the `ping` of its target (`mcp:<name>`), at most its interval and 60 s.
    pub timeout_s: u64,
    /// Seconds between two checks of its target `mcp:<name>` (1..=86400); a target's default when absent.
    pub interval_s: Option<u64>,
    /// When not empty, only these tools are exposed.
    pub enabled_tools: Vec<String>,
    /// Tools never exposed (applied after `enabled_tools`).
    pub disabled_tools: Vec<String>,
    /// The largest result a call may return, in bytes of JSON; a larger one is refused (502).
    pub max_result_bytes: usize,
    /// The role a call of this server's tools needs: `operate` (the default) or `read`, for servers that
    /// only read.
    pub call_role: CallRole,
    /// Whether each persisted call keeps its arguments (never by default: they may hold anything).
    pub log_arguments: bool,
}

/// The role `POST /tools/{name}` needs for a server's tools.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallRole {
    Read,
    #[default]
    Operate,
}

/// How hale reaches an MCP server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum McpTransport {
    /// A child process speaking MCP on stdin/stdout.
    Command(McpCommand),
    /// A streamable HTTP endpoint.
    Http(McpHttp),
}

/// A stdio server: what to run, in which directory, with which variables added to its minimal environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct McpCommand {
    /// The program and its arguments (never empty, the program name never empty).
    pub argv: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub cwd: Option<PathBuf>,
}

/// A streamable HTTP server: its endpoint, extra request headers and a bearer token read from env or file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct McpHttp {
    pub url: url::Url,
    pub headers: BTreeMap<String, String>,
    pub bearer_token: Option<TokenSource>,
}

impl McpServerConfig {
    pub fn transport_name(&self) -> &'static str {
        match self.transport {
            McpTransport::Command(_) => "stdio",
            McpTransport::Http(_) => "streamable_http",
        }
    }

    /// Whether `tool` (the server's own name for it) is exposed by the bridge.
    pub fn exposes(&self, tool: &str) -> bool {
        (self.enabled_tools.is_empty() || self.enabled_tools.iter().any(|t| t == tool))
            && !self.disabled_tools.iter().any(|t| t == tool)
    }
}

/// Either form of `command`: hale's array, or the string program name Claude Desktop writes (with `args`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
enum RawCommand {
    Argv(Vec<String>),
    Program(String),
}

/// The form in the file. hale writes `command` as an array; the editors' form (`command` a string, `args`,
/// `type`) is read too.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMcpServer {
    /// Required in `mcp_servers`; in an `mcpServers` map the key is the name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<ServiceName>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    command: Option<RawCommand>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    args: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    env: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cwd: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    url: Option<String>,
    /// The editors' transport name: `stdio`, `http` or `streamable-http` (`sse` is refused).
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    headers: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    bearer_token: Option<TokenSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    timeout_s: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    interval_s: Option<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    enabled_tools: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    disabled_tools: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_result_bytes: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    call_role: Option<CallRole>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    log_arguments: bool,
    /// The editors' switch to leave a server out; hale leaves it out too.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    disabled: bool,
}

impl TryFrom<RawMcpServer> for McpServerConfig {
    type Error = String;

    fn try_from(raw: RawMcpServer) -> Result<Self, Self::Error> {
        let name = raw.name.clone().ok_or("name: missing field `name`")?;
        if raw.disabled {
            return Err("disabled: leave a disabled server out of `mcp_servers`".to_owned());
        }
        server(name, raw)
    }
}

/// A server from its raw form, under `name`.
fn server(name: ServiceName, raw: RawMcpServer) -> Result<McpServerConfig, String> {
    if name.mcp_server().is_some() {
        return Err(format!(
            "name: {:?}: an MCP server's name is its own (its target is then mcp:<name>); leave out the \"mcp:\"",
            name.as_str()
        ));
    }
    let kind = raw.kind.as_deref();
    if kind == Some("sse") {
        return Err(
            "type: \"sse\" (the legacy HTTP+SSE transport) is not supported; give the server's streamable HTTP endpoint"
                .to_owned(),
        );
    }
    if let Some(kind) =
        kind.filter(|k| !["stdio", "http", "streamable-http", "streamable_http"].contains(k))
    {
        return Err(format!(
            "type: {kind:?} is not a transport; use \"stdio\" or \"http\""
        ));
    }
    let transport = match (raw.command, raw.url) {
        (Some(command), None) => {
            if kind.is_some_and(|k| k != "stdio") {
                return Err("type: a server with a command is a stdio server".to_owned());
            }
            if !raw.headers.is_empty() || raw.bearer_token.is_some() {
                return Err("headers and bearer_token are for a server with a url".to_owned());
            }
            let mut argv = match command {
                RawCommand::Argv(argv) => argv,
                RawCommand::Program(program) => vec![program],
            };
            argv.extend(raw.args);
            if argv.first().is_none_or(|p| p.is_empty()) {
                return Err("command: the program name is empty".to_owned());
            }
            if let Some(var) = raw.env.keys().find(|k| k.is_empty() || k.contains('=')) {
                return Err(format!("env: {var:?} is not an environment variable name"));
            }
            McpTransport::Command(McpCommand {
                argv,
                env: raw.env,
                cwd: raw.cwd,
            })
        }
        (None, Some(url)) => {
            if kind == Some("stdio") {
                return Err("type: a server with a url is not a stdio server".to_owned());
            }
            if !raw.args.is_empty() || !raw.env.is_empty() || raw.cwd.is_some() {
                return Err("args, env and cwd are for a server with a command".to_owned());
            }
            let url = match TargetUrl::parse(&url) {
                Ok(TargetUrl::Http(url)) => url,
                _ => {
                    return Err(format!(
                        "url: {:?} is not an http(s) URL",
                        crate::config::redact_userinfo(&url)
                    ))
                }
            };
            for (header, value) in &raw.headers {
                if reqwest::header::HeaderName::from_bytes(header.as_bytes()).is_err() {
                    return Err(format!("headers: {header:?} is not a header name"));
                }
                if reqwest::header::HeaderValue::from_str(value).is_err() {
                    return Err(format!(
                        "headers.{header}: the value is not a valid header value"
                    ));
                }
            }
            match &raw.bearer_token {
                Some(TokenSource::Env(var)) if var.is_empty() || var.contains('=') => {
                    return Err(format!(
                        "bearer_token.env: {var:?} is not an environment variable name"
                    ))
                }
                Some(TokenSource::File(path)) if path.as_os_str().is_empty() => {
                    return Err("bearer_token.file: the path is empty".to_owned())
                }
                _ => {}
            }
            McpTransport::Http(McpHttp {
                url,
                headers: raw.headers,
                bearer_token: raw.bearer_token,
            })
        }
        (None, None) => return Err("give a command or a url".to_owned()),
        (Some(_), Some(_)) => return Err("give a command or a url, not both".to_owned()),
    };
    let timeout_s = raw.timeout_s.unwrap_or(DEFAULT_TIMEOUT_S);
    if !(1..=3600).contains(&timeout_s) {
        return Err(format!("timeout_s: {timeout_s} is not between 1 and 3600"));
    }
    if let Some(interval_s) = raw.interval_s.filter(|s| !(1..=86_400).contains(s)) {
        return Err(format!(
            "interval_s: {interval_s} is not between 1 and 86400"
        ));
    }
    let max_result_bytes = raw.max_result_bytes.unwrap_or(DEFAULT_MAX_RESULT_BYTES);
    if !(1024..=MAX_RESULT_BYTES_LIMIT).contains(&max_result_bytes) {
        return Err(format!(
            "max_result_bytes: {max_result_bytes} is not between 1024 and {MAX_RESULT_BYTES_LIMIT}"
        ));
    }
    Ok(McpServerConfig {
        name,
        transport,
        timeout_s,
        interval_s: raw.interval_s,
        enabled_tools: raw.enabled_tools,
        disabled_tools: raw.disabled_tools,
        max_result_bytes,
        call_role: raw.call_role.unwrap_or_default(),
        log_arguments: raw.log_arguments,
    })
}

impl From<McpServerConfig> for RawMcpServer {
    fn from(server: McpServerConfig) -> Self {
        let mut raw = RawMcpServer {
            name: Some(server.name),
            timeout_s: Some(server.timeout_s),
            interval_s: server.interval_s,
            enabled_tools: server.enabled_tools,
            disabled_tools: server.disabled_tools,
            max_result_bytes: Some(server.max_result_bytes),
            call_role: Some(server.call_role),
            log_arguments: server.log_arguments,
            ..RawMcpServer::default()
        };
        match server.transport {
            McpTransport::Command(command) => {
                raw.command = Some(RawCommand::Argv(command.argv));
                raw.env = command.env;
                raw.cwd = command.cwd;
            }
            McpTransport::Http(http) => {
                raw.url = Some(http.url.to_string());
                raw.headers = http.headers;
                raw.bearer_token = http.bearer_token;
            }
        }
        raw
    }
}

/// The editors' form: a map from server name to its entry, read into hale's list (in name order). A
/// `disabled` entry is left out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct McpServersMap(pub Vec<McpServerConfig>);

impl<'de> Deserialize<'de> for McpServersMap {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let map = BTreeMap::<String, RawMcpServer>::deserialize(deserializer)?;
        let mut servers = Vec::with_capacity(map.len());
        for (key, raw) in map {
            if raw.disabled {
                continue;
            }
            let name = ServiceName::parse(&key)
                .map_err(|e| serde::de::Error::custom(format!("{key:?}: {e}")))?;
            if raw.name.as_ref().is_some_and(|n| *n != name) {
                return Err(serde::de::Error::custom(format!(
                    "{key:?}: the entry's name differs from its key"
                )));
            }
            servers.push(
                server(name, raw).map_err(|e| serde::de::Error::custom(format!("{key:?}: {e}")))?,
            );
        }
        Ok(Self(servers))
    }
}

/// A file of MCP servers in the editors' form (`mcpServers`, or VS Code's `servers`), for `hale mcp import`.
#[derive(Debug, Deserialize)]
pub struct EditorMcpFile {
    #[serde(default, rename = "mcpServers")]
    mcp_servers: Option<McpServersMap>,
    #[serde(default)]
    servers: Option<McpServersMap>,
}

impl EditorMcpFile {
    /// The servers of the file, in hale's form; an error when it has neither map.
    pub fn into_servers(self) -> Result<Vec<McpServerConfig>, String> {
        match (self.mcp_servers, self.servers) {
            (Some(a), Some(b)) => {
                let mut all = a.0;
                all.extend(b.0);
                Ok(all)
            }
            (Some(map), None) | (None, Some(map)) => Ok(map.0),
            (None, None) => Err("the file has no `mcpServers` (or `servers`) object".to_owned()),
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

    fn argv(server: &McpServerConfig) -> Vec<String> {
        match &server.transport {
            McpTransport::Command(c) => c.argv.clone(),
            McpTransport::Http(_) => panic!("not a command"),
        }
    }

    #[test]
    fn a_server_is_a_command_or_a_url_never_both_or_neither() {
        let command = parse(r#"{"name": "fs", "command": ["mcp-fs", "--root", "/srv"]}"#).unwrap();
        assert_eq!(argv(&command), ["mcp-fs", "--root", "/srv"]);
        assert_eq!(command.timeout_s, DEFAULT_TIMEOUT_S);
        assert_eq!(command.call_role, CallRole::Operate);
        let http = parse(r#"{"name": "web", "url": "http://127.0.0.1:9000/mcp"}"#).unwrap();
        assert!(matches!(http.transport, McpTransport::Http(ref h) if h.url.port() == Some(9000)));
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
        let unknown = parse(r#"{"name": "x", "command": ["a"], "environment": {}}"#).unwrap_err();
        assert!(unknown.contains("unknown field `environment`"), "{unknown}");
        let misplaced =
            parse(r#"{"name": "x", "url": "http://h/", "env": {"A": "1"}}"#).unwrap_err();
        assert!(
            misplaced.starts_with("args, env and cwd are for a server with a command"),
            "{misplaced}"
        );
        let sse = parse(r#"{"name": "x", "url": "http://h/sse", "type": "sse"}"#).unwrap_err();
        assert!(sse.contains("legacy HTTP+SSE"), "{sse}");
        let slow = parse(r#"{"name": "x", "command": ["a"], "timeout_s": 0}"#).unwrap_err();
        assert!(
            slow.starts_with("timeout_s: 0 is not between 1 and 3600"),
            "{slow}"
        );
        let tiny = parse(r#"{"name": "x", "command": ["a"], "max_result_bytes": 10}"#).unwrap_err();
        assert!(
            tiny.starts_with("max_result_bytes: 10 is not between"),
            "{tiny}"
        );
        let header = parse(r#"{"name": "x", "url": "http://h/", "headers": {"bad header": "v"}}"#)
            .unwrap_err();
        assert!(
            header.starts_with("headers: \"bad header\" is not a header name"),
            "{header}"
        );
    }

    #[test]
    fn the_editors_string_command_and_args_read_as_one_argv_and_print_back_in_hales_form() {
        let server = parse(
            r#"{"name": "time", "command": "uvx", "args": ["mcp-server-time"], "env": {"TZ": "UTC"}, "timeout_s": 5}"#,
        )
        .unwrap();
        assert_eq!(argv(&server), ["uvx", "mcp-server-time"]);
        let printed = serde_json::to_value(&server).unwrap();
        assert_eq!(
            printed["command"],
            serde_json::json!(["uvx", "mcp-server-time"])
        );
        assert!(printed.get("args").is_none());
        assert_eq!(printed["env"]["TZ"], "UTC");
        // What hale prints reads back as the same server.
        let again: McpServerConfig = serde_json::from_value(printed).unwrap();
        assert_eq!(again, server);
    }

    #[test]
    fn an_editors_map_becomes_hales_list_in_name_order_without_the_disabled() {
        let file: EditorMcpFile = serde_json::from_str(
            r#"{"mcpServers": {
                "time": {"command": "uvx", "args": ["mcp-server-time"]},
                "everything": {"type": "http", "url": "http://127.0.0.1:3001/mcp", "headers": {"X-Team": "ops"}},
                "old": {"command": "gone", "disabled": true}
            }}"#,
        )
        .unwrap();
        let servers = file.into_servers().unwrap();
        let names: Vec<&str> = servers.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["everything", "time"]);
        let McpTransport::Http(http) = &servers[0].transport else {
            panic!("everything is an http server");
        };
        assert_eq!(http.headers["X-Team"], "ops");
        let bad: Result<EditorMcpFile, _> =
            serde_json::from_str(r#"{"mcpServers": {"x": {"command": "a", "url": "http://h/"}}}"#);
        let bad = bad.unwrap_err().to_string();
        assert!(
            bad.contains("\"x\": give a command or a url, not both"),
            "{bad}"
        );
        let none: EditorMcpFile = serde_json::from_str(r#"{"other": 1}"#).unwrap();
        assert!(none.into_servers().unwrap_err().contains("no `mcpServers`"));
    }

    #[test]
    fn tool_filters_apply_enabled_then_disabled() {
        let server = parse(
            r#"{"name": "x", "command": ["a"], "enabled_tools": ["echo", "add"], "disabled_tools": ["add"]}"#,
        )
        .unwrap();
        assert!(server.exposes("echo"));
        assert!(!server.exposes("add"));
        assert!(!server.exposes("other"));
    }
}
