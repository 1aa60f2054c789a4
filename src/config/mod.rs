//! Typed configuration, read from one JSON file. Each section lives in its own file with its defaults (one
//! `impl Default` per section, each value written once) and its own `validate`; errors name the file, the
//! JSON path and the reason.

mod alerts;
mod auth;
mod backup;
mod breaker;
pub mod burn;
mod channels;
mod heal;
mod http;
mod listen;
mod mcp;
mod monitor;
mod print;
mod rate_limits;
mod run;
mod secret;
mod slo;
mod storage;
mod targets;
mod types;
pub mod workflows;

use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use alerts::{
    check_runbook_base_url, default_runbook_base_url, AlertRule, AlertsConfig, ChannelKind,
    Condition, ANNOUNCEMENT_RULES,
};
pub use auth::{AuthConfig, RoleTokens, TokenSource};
pub use backup::BackupConfig;
pub use breaker::{BreakerConfig, BreakerOverride};
pub use channels::{
    AlertmanagerChannel, ChannelsConfig, DeliveryConfig, DiscordChannel, EmailChannel,
    SmtpSecurity, WebhookChannel,
};
pub use heal::{HealConfig, TargetHeal};
pub use http::HttpConfig;
pub use listen::ListenConfig;
pub use mcp::{
    CallRole, EditorMcpFile, McpCommand, McpHttp, McpServerConfig, McpServersMap, McpTransport,
};
pub use monitor::MonitorConfig;
pub use print::{REDACTED_URL, REDACTED_VALUE};
pub use rate_limits::{RateLimit, RateLimitsConfig};
pub(crate) use run::refuse_token_variables;
pub use run::{RunConfig, StopSignal, BASE_ENV};
pub use secret::{Secret, REDACTED};
pub use slo::{
    check_maintenance, MaintenanceConfig, SloConfig, MAX_MAINTENANCE_DAYS, MAX_MAINTENANCE_REASON,
};
pub use storage::StorageConfig;
pub use targets::{HttpMethod, TargetConfig};
pub use types::{redact_userinfo, BodyCondition, ExpectedStatus, ServiceName, TargetUrl};
pub use workflows::WorkflowsConfig;

/// The default location of the config file, relative to the working directory.
pub const DEFAULT_CONFIG_PATH: &str = "config/services.monitor.json";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {file}: {source}")]
    Read {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: {path}: {reason}")]
    Invalid {
        file: String,
        path: String,
        reason: String,
    },
}

/// A value the types accept but the rules do not: where it is (a JSON path such as `$.http.workers`) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub path: String,
    pub reason: String,
}

impl Invalid {
    /// `path` is relative to the root, without the leading `$.`.
    pub(crate) fn at(path: impl AsRef<str>, reason: impl Into<String>) -> Self {
        Self {
            path: format!("$.{}", path.as_ref()),
            reason: reason.into(),
        }
    }
}

/// The whole configuration. Every section may be missing or `{}` and then takes its defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub listen: ListenConfig,
    pub http: HttpConfig,
    pub rate_limits: RateLimitsConfig,
    /// The monitored targets; without this field hale watches its own three services. After loading it
    /// also holds one target per MCP server (`mcp:<name>`, see `with_mcp_targets`), which is never written
    /// back: the server's entry in `mcp_servers` is what makes it.
    #[serde(serialize_with = "targets::serialize_written")]
    pub services: Vec<Arc<TargetConfig>>,
    pub monitor: MonitorConfig,
    pub breaker: BreakerConfig,
    pub storage: StorageConfig,
    pub backup: BackupConfig,
    pub heal: HealConfig,
    pub alerts: AlertsConfig,
    pub slo: SloConfig,
    pub mcp_servers: Vec<McpServerConfig>,
    /// The same servers in the editors' form (`mcpServers`, as Claude Desktop writes it): moved into
    /// `mcp_servers` as the file is read, so nothing else ever looks here.
    #[serde(rename = "mcpServers", skip_serializing)]
    pub mcp_servers_from_editors: McpServersMap,
    pub workflows: WorkflowsConfig,
    pub auth: AuthConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: ListenConfig::default(),
            http: HttpConfig::default(),
            rate_limits: RateLimitsConfig::default(),
            services: targets::default_services(),
            monitor: MonitorConfig::default(),
            breaker: BreakerConfig::default(),
            storage: StorageConfig::default(),
            backup: BackupConfig::default(),
            heal: HealConfig::default(),
            alerts: AlertsConfig::default(),
            slo: SloConfig::default(),
            mcp_servers: Vec::new(),
            mcp_servers_from_editors: McpServersMap::default(),
            workflows: WorkflowsConfig::default(),
            auth: AuthConfig::default(),
        }
    }
}

impl Config {
    /// Reads, parses and validates a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: file.clone(),
            source,
        })?;
        Self::from_json(&text, &file)
    }

    /// Parses and validates config text; `file` only names the source in errors.
    pub fn from_json(text: &str, file: &str) -> Result<Self, ConfigError> {
        let invalid = |path: String, reason: String| ConfigError::Invalid {
            file: file.to_owned(),
            path,
            reason,
        };
        let mut de = serde_json::Deserializer::from_str(text);
        let mut config: Config = serde_path_to_error::deserialize(&mut de)
            .map_err(|e| invalid(json_path(&e.path().to_string()), e.inner().to_string()))?;
        // The list grew by doubling while it was read; it is kept for as long as hale runs.
        config.services.shrink_to_fit();
        de.end()
            .map_err(|e| invalid("$".to_owned(), e.to_string()))?;
        // serde also accepts a struct written as an array of its fields in order (`"listen": []` silently meant
        // every default); only the named form is a config. Every struct serializes back as an object, so an array
        // in the file where the parsed config has an object is that positional form.
        let raw: serde_json::Value =
            serde_json::from_str(text).map_err(|e| invalid("$".to_owned(), e.to_string()))?;
        let parsed =
            serde_json::to_value(&config).map_err(|e| invalid("$".to_owned(), e.to_string()))?;
        if let Some(path) = positional_struct(&raw, &parsed, "$") {
            return Err(invalid(
                path,
                "expected an object with named fields, found an array".to_owned(),
            ));
        }
        let from_editors = std::mem::take(&mut config.mcp_servers_from_editors.0);
        config.mcp_servers.extend(from_editors);
        let mut config = config.with_mcp_targets();
        config
            .validate()
            .map_err(|Invalid { path, reason }| invalid(path, reason))?;
        // Definitions are checked against the targets and token variables, so after the rest.
        let env = workflows::definition::Environment::of(&config);
        config
            .workflows
            .load(&env)
            .map_err(|Invalid { path, reason }| invalid(path, reason))?;
        Ok(config)
    }

    /// The config with one target per MCP server, `mcp:<name>` (`TargetUrl::Mcp`), after the written
    /// targets, so that their checks go into the same history, breakers, SLOs, alerts and heals. Adds only
    /// what is missing: calling it again changes nothing.
    pub fn with_mcp_targets(mut self) -> Self {
        for server in &self.mcp_servers {
            let name = ServiceName::mcp_target(&server.name);
            if !self.services.iter().any(|t| t.name == name) {
                self.services.push(Arc::new(targets::mcp_target(server)));
            }
        }
        self
    }

    /// The config without the targets of its MCP servers: for a process that does not run the bridge.
    pub fn without_mcp_targets(mut self) -> Self {
        self.services.retain(|t| !t.url.is_mcp());
        self
    }

    /// Checks what types alone cannot (ranges, uniqueness, combinations), section by section.
    pub fn validate(&self) -> Result<(), Invalid> {
        self.listen.validate()?;
        self.http.validate()?;
        self.rate_limits.validate()?;
        targets::validate_all(&self.services, &self.breaker, self.listen.health_proxy)?;
        self.monitor.validate()?;
        self.breaker.validate("breaker")?;
        self.storage.validate()?;
        self.backup.validate()?;
        self.heal.validate()?;
        self.alerts.validate()?;
        self.slo.validate(&self.storage, &self.services)?;
        mcp::validate_all(&self.mcp_servers)?;
        self.auth.validate()?;
        self.refuse_tokens_in_child_env()?;
        Ok(())
    }

    /// No `inherit_env` list (of a `run` block or a heal command) may pass on a role token's variable.
    fn refuse_tokens_in_child_env(&self) -> Result<(), Invalid> {
        let tokens: Vec<(&str, &str)> = self
            .auth
            .sources()
            .into_iter()
            .filter_map(|(role, source)| match source {
                Some(TokenSource::Env(var)) => Some((role, var.as_str())),
                _ => None,
            })
            .collect();
        let mut lists: Vec<(String, &[String])> = Vec::new();
        for (i, target) in self.services.iter().enumerate() {
            if let Some(run) = &target.run {
                lists.push((format!("services[{i}].run.inherit_env"), &run.inherit_env));
            }
            if let Some(heal) = &target.heal {
                lists.push((format!("services[{i}].heal.inherit_env"), &heal.inherit_env));
            }
        }
        run::refuse_token_variables(&lists, &tokens)
    }
}

/// The JSON path of the first array in `raw` (the file) standing where `parsed` (the config serialized back)
/// has an object.
fn positional_struct(
    raw: &serde_json::Value,
    parsed: &serde_json::Value,
    path: &str,
) -> Option<String> {
    use serde_json::Value;
    match (raw, parsed) {
        (Value::Array(_), Value::Object(_)) => Some(path.to_owned()),
        (Value::Object(raw), Value::Object(parsed)) => raw.iter().find_map(|(key, value)| {
            let inner = parsed.get(key)?;
            positional_struct(value, inner, &format!("{path}.{key}"))
        }),
        (Value::Array(raw), Value::Array(parsed)) => {
            raw.iter()
                .zip(parsed)
                .enumerate()
                .find_map(|(i, (value, inner))| {
                    positional_struct(value, inner, &format!("{path}[{i}]"))
                })
        }
        _ => None,
    }
}

/// Turns serde_path_to_error's `services[1].url` (or `.` for the root) into `$.services[1].url`.
fn json_path(path: &str) -> String {
    if path == "." || path.is_empty() {
        "$".to_owned()
    } else {
        format!("$.{path}")
    }
}
