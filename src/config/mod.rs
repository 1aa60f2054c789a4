//! Typed configuration: read from one JSON file, defaults in `defaults.rs`, checked by `validate()` at
//! start-up with errors that name the file, the JSON path and the reason.

pub mod defaults;
mod types;

use std::collections::{BTreeSet, HashSet};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use types::{BodyCondition, ExpectedStatus, ServiceName, TargetUrl};

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

/// The whole configuration. Every section may be missing or `{}` and then takes its defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub listen: ListenConfig,
    #[serde(default)]
    pub http: HttpConfig,
    #[serde(default = "default_services")]
    pub services: Vec<TargetConfig>,
    #[serde(default)]
    pub monitor: MonitorConfig,
    #[serde(default)]
    pub breaker: BreakerConfig,
    #[serde(default)]
    pub storage: StorageConfig,
    #[serde(default)]
    pub heal: HealConfig,
    #[serde(default)]
    pub alerts: AlertsConfig,
    #[serde(default)]
    pub slo: SloConfig,
    #[serde(default)]
    pub mcp_servers: Vec<McpServerConfig>,
    #[serde(default)]
    pub workflows: WorkflowsConfig,
    #[serde(default)]
    pub auth: AuthConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: ListenConfig::default(),
            http: HttpConfig::default(),
            services: default_services(),
            monitor: MonitorConfig::default(),
            breaker: BreakerConfig::default(),
            storage: StorageConfig::default(),
            heal: HealConfig::default(),
            alerts: AlertsConfig::default(),
            slo: SloConfig::default(),
            mcp_servers: Vec::new(),
            workflows: WorkflowsConfig::default(),
            auth: AuthConfig::default(),
        }
    }
}

/// The address each of hale's three services listens on. Port 0 picks a free port.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenConfig {
    #[serde(
        default = "defaults::health_proxy_listen",
        deserialize_with = "socket_addr"
    )]
    pub health_proxy: SocketAddr,
    #[serde(
        default = "defaults::mcp_bridge_listen",
        deserialize_with = "socket_addr"
    )]
    pub mcp_bridge: SocketAddr,
    #[serde(
        default = "defaults::boss_api_listen",
        deserialize_with = "socket_addr"
    )]
    pub boss_api: SocketAddr,
}

impl Default for ListenConfig {
    fn default() -> Self {
        Self {
            health_proxy: defaults::health_proxy_listen(),
            mcp_bridge: defaults::mcp_bridge_listen(),
            boss_api: defaults::boss_api_listen(),
        }
    }
}

/// What every HTTP service shares.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Worker threads per service.
    #[serde(default = "defaults::http_workers")]
    pub workers: usize,
    /// How long a graceful shutdown waits for in-flight requests.
    #[serde(default = "defaults::shutdown_timeout_s")]
    pub shutdown_timeout_s: u64,
    /// Largest accepted request body; larger bodies get 413.
    #[serde(default = "defaults::body_limit_bytes")]
    pub body_limit_bytes: usize,
    /// Browser origins allowed by CORS; empty means CORS stays closed.
    #[serde(default)]
    pub cors_origins: Vec<String>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            workers: defaults::http_workers(),
            shutdown_timeout_s: defaults::shutdown_timeout_s(),
            body_limit_bytes: defaults::body_limit_bytes(),
            cors_origins: Vec::new(),
        }
    }
}

impl HttpConfig {
    pub fn shutdown_timeout(&self) -> Duration {
        Duration::from_secs(self.shutdown_timeout_s)
    }
}

/// One monitored service (a probe target).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    pub name: ServiceName,
    pub url: TargetUrl,
    /// HTTP method of the probe (HTTP targets only; `GET` when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Accepted status codes; any 2xx when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_status: Option<ExpectedStatus>,
    /// Extra condition on the response body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<BodyCondition>,
    #[serde(default = "defaults::probe_timeout_ms")]
    pub timeout_ms: u64,
    #[serde(default = "defaults::probe_interval_s")]
    pub interval_s: u64,
    /// Share of the health score.
    #[serde(default = "defaults::target_weight")]
    pub weight: f64,
    /// A critical target that is down caps the health score.
    #[serde(default)]
    pub critical: bool,
    #[serde(default)]
    pub tags: Vec<String>,
    /// Per-target circuit breaker settings; unset fields take the `breaker` section's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub breaker: Option<BreakerOverride>,
}

impl TargetConfig {
    pub fn new(name: ServiceName, url: TargetUrl) -> Self {
        Self {
            name,
            url,
            method: None,
            expected_status: None,
            body: None,
            timeout_ms: defaults::probe_timeout_ms(),
            interval_s: defaults::probe_interval_s(),
            weight: defaults::target_weight(),
            critical: false,
            tags: Vec::new(),
            breaker: None,
        }
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// The HTTP method a probe of an HTTP target uses.
    pub fn http_method(&self) -> String {
        self.method.clone().unwrap_or_else(defaults::probe_method)
    }

    pub fn interval(&self) -> Duration {
        Duration::from_secs(self.interval_s)
    }

    /// The breaker settings of this target: its override over the global section.
    pub fn breaker_settings(&self, global: &BreakerConfig) -> BreakerConfig {
        let o = self.breaker.clone().unwrap_or_default();
        BreakerConfig {
            failure_threshold: o.failure_threshold.unwrap_or(global.failure_threshold),
            success_threshold: o.success_threshold.unwrap_or(global.success_threshold),
            open_timeout_s: o.open_timeout_s.unwrap_or(global.open_timeout_s),
        }
    }
}

fn default_services() -> Vec<TargetConfig> {
    let own = |name: &str, url: &str| {
        TargetConfig::new(
            ServiceName::parse(name).expect("built-in name is valid"),
            TargetUrl::parse(url).expect("built-in url is valid"),
        )
    };
    vec![
        own("health-proxy", "http://127.0.0.1:3002/health"),
        own("mcp-bridge", "http://127.0.0.1:3003/health"),
        own("boss-api", "http://127.0.0.1:4000/healthz"),
    ]
}

/// The Health Proxy's monitor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MonitorConfig {
    /// Probe every target at its interval in the background; when false, targets are checked only on
    /// request (`/health/all`).
    #[serde(default = "defaults::background_checks")]
    pub background_checks: bool,
    /// A successful result younger than this is reused by `/health/all`; failures are always re-checked.
    #[serde(default = "defaults::cache_ttl_s")]
    pub cache_ttl_s: u64,
    /// Most background probes in flight at once (`/health/all` checks every target at once).
    #[serde(default = "defaults::max_in_flight")]
    pub max_in_flight: usize,
    /// An up target slower than this counts only partly in the health score.
    #[serde(default = "defaults::slow_threshold_ms")]
    pub slow_threshold_ms: u64,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        Self {
            background_checks: defaults::background_checks(),
            cache_ttl_s: defaults::cache_ttl_s(),
            max_in_flight: defaults::max_in_flight(),
            slow_threshold_ms: defaults::slow_threshold_ms(),
        }
    }
}

/// Circuit breaker settings shared by every breaker unless overridden.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BreakerConfig {
    #[serde(default = "defaults::failure_threshold")]
    pub failure_threshold: u32,
    #[serde(default = "defaults::success_threshold")]
    pub success_threshold: u32,
    #[serde(default = "defaults::open_timeout_s")]
    pub open_timeout_s: u64,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failure_threshold: defaults::failure_threshold(),
            success_threshold: defaults::success_threshold(),
            open_timeout_s: defaults::open_timeout_s(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BreakerOverride {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_threshold: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_threshold: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_timeout_s: Option<u64>,
}

/// The SQLite store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// Raw health checks older than this are pruned.
    #[serde(default = "defaults::retention_days")]
    pub retention_days: u32,
    /// Hourly rollups older than this are pruned.
    #[serde(default = "defaults::rollup_retention_days")]
    pub rollup_retention_days: u32,
    /// The batching writer flushes at least this often.
    #[serde(default = "defaults::flush_interval_ms")]
    pub flush_interval_ms: u64,
    /// Most rows in one write transaction.
    #[serde(default = "defaults::batch_size")]
    pub batch_size: usize,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            retention_days: defaults::retention_days(),
            rollup_retention_days: defaults::rollup_retention_days(),
            flush_interval_ms: defaults::flush_interval_ms(),
            batch_size: defaults::batch_size(),
        }
    }
}

/// Auto-heal; its settings arrive with `hale supervise`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealConfig {}

/// Alert manager; its channels arrive with the alerting work.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsConfig {}

/// The SLO targets over a rolling window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SloConfig {
    #[serde(default = "defaults::availability_target_percent")]
    pub availability_target_percent: f64,
    #[serde(default = "defaults::p95_latency_target_ms")]
    pub p95_latency_target_ms: u64,
    #[serde(default = "defaults::max_restarts_per_week")]
    pub max_restarts_per_week: u32,
    #[serde(default = "defaults::slo_window_days")]
    pub window_days: u32,
}

impl Default for SloConfig {
    fn default() -> Self {
        Self {
            availability_target_percent: defaults::availability_target_percent(),
            p95_latency_target_ms: defaults::p95_latency_target_ms(),
            max_restarts_per_week: defaults::max_restarts_per_week(),
            window_days: defaults::slo_window_days(),
        }
    }
}

/// One MCP server the bridge connects to: a child process (`command`) or a streamable HTTP endpoint (`url`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpServerConfig {
    pub name: ServiceName,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// Boss API workflows; their definitions arrive with the workflow engine.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkflowsConfig {}

/// API authentication; its settings arrive with the MCP WebBridge.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {}

const HTTP_METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

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
        let config: Config = serde_path_to_error::deserialize(&mut de)
            .map_err(|e| invalid(json_path(&e.path().to_string()), e.inner().to_string()))?;
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
        config
            .validate()
            .map_err(|(path, reason)| invalid(path, reason))?;
        Ok(config)
    }

    /// Checks what types alone cannot: uniqueness, ranges and combinations. The error is (JSON path, reason).
    pub fn validate(&self) -> Result<(), (String, String)> {
        let err = |path: &str, reason: String| Err((format!("$.{path}"), reason));

        let listen = [
            ("listen.health_proxy", self.listen.health_proxy),
            ("listen.mcp_bridge", self.listen.mcp_bridge),
            ("listen.boss_api", self.listen.boss_api),
        ];
        for (i, (path, addr)) in listen.iter().enumerate() {
            if addr.port() == 0 {
                continue;
            }
            if let Some((other, _)) = listen[..i].iter().find(|(_, a)| a == addr) {
                return err(path, format!("address {addr} is already used by {other}"));
            }
        }

        let http = &self.http;
        if !(1..=64).contains(&http.workers) {
            return err(
                "http.workers",
                format!("{} is out of range 1..=64", http.workers),
            );
        }
        if http.shutdown_timeout_s > 3600 {
            return err(
                "http.shutdown_timeout_s",
                format!("{} is more than an hour", http.shutdown_timeout_s),
            );
        }
        if !(1024..=64 * 1024 * 1024).contains(&http.body_limit_bytes) {
            return err(
                "http.body_limit_bytes",
                format!("{} is out of range 1024..=67108864", http.body_limit_bytes),
            );
        }
        for (i, origin) in http.cors_origins.iter().enumerate() {
            check_origin(origin)
                .or_else(|reason| err(&format!("http.cors_origins[{i}]"), reason))?;
        }

        let mut names = HashSet::new();
        for (i, target) in self.services.iter().enumerate() {
            let at = |field: &str| format!("services[{i}].{field}");
            if !names.insert(target.name.as_str()) {
                return err(
                    &at("name"),
                    format!("duplicate service name {:?}", target.name.as_str()),
                );
            }
            if target.timeout_ms == 0 || target.timeout_ms > 60_000 {
                return err(
                    &at("timeout_ms"),
                    format!("{} is out of range 1..=60000", target.timeout_ms),
                );
            }
            if target.interval_s == 0 || target.interval_s > 86_400 {
                return err(
                    &at("interval_s"),
                    format!("{} is out of range 1..=86400", target.interval_s),
                );
            }
            if target.timeout_ms > target.interval_s * 1000 {
                return err(
                    &at("timeout_ms"),
                    format!(
                        "timeout {} ms is longer than the interval of {} s",
                        target.timeout_ms, target.interval_s
                    ),
                );
            }
            if !(target.weight.is_finite() && target.weight > 0.0 && target.weight <= 1000.0) {
                return err(
                    &at("weight"),
                    format!("{} is out of range (0, 1000]", target.weight),
                );
            }
            let mut tags = BTreeSet::new();
            for (j, tag) in target.tags.iter().enumerate() {
                if tag.is_empty() || tag.chars().count() > 64 {
                    return err(
                        &at(&format!("tags[{j}]")),
                        "a tag has 1 to 64 characters".to_owned(),
                    );
                }
                if !tags.insert(tag) {
                    return err(&at(&format!("tags[{j}]")), format!("duplicate tag {tag:?}"));
                }
            }
            if target.url.is_tcp() {
                if target.method.is_some() {
                    return err(
                        &at("method"),
                        "a tcp:// target takes no HTTP method".to_owned(),
                    );
                }
                if target.expected_status.is_some() {
                    return err(
                        &at("expected_status"),
                        "a tcp:// target has no HTTP status".to_owned(),
                    );
                }
                if target.body.is_some() {
                    return err(&at("body"), "a tcp:// target has no body".to_owned());
                }
            } else if !HTTP_METHODS.contains(&target.http_method().as_str()) {
                return err(
                    &at("method"),
                    format!(
                        "{:?} is not one of {}",
                        target.http_method(),
                        HTTP_METHODS.join(", ")
                    ),
                );
            }
            if let Some(expected) = &target.expected_status {
                if expected.codes().is_empty() {
                    return err(
                        &at("expected_status"),
                        "the list of statuses is empty".to_owned(),
                    );
                }
                if let Some(bad) = expected.codes().iter().find(|c| !(100..=599).contains(*c)) {
                    return err(
                        &at("expected_status"),
                        format!("{bad} is not an HTTP status"),
                    );
                }
            }
            if let Some(body) = &target.body {
                body.check().or_else(|reason| err(&at("body"), reason))?;
            }
            if target.breaker.is_some() {
                check_breaker(&target.breaker_settings(&self.breaker), &at("breaker"))?;
            }
        }

        if self.monitor.max_in_flight == 0 || self.monitor.max_in_flight > 10_000 {
            return err(
                "monitor.max_in_flight",
                format!("{} is out of range 1..=10000", self.monitor.max_in_flight),
            );
        }
        if self.monitor.slow_threshold_ms == 0 {
            return err("monitor.slow_threshold_ms", "must be at least 1".to_owned());
        }

        check_breaker(&self.breaker, "breaker")?;

        let storage = &self.storage;
        if storage.retention_days == 0 {
            return err("storage.retention_days", "must be at least 1".to_owned());
        }
        if storage.rollup_retention_days < storage.retention_days {
            return err(
                "storage.rollup_retention_days",
                format!(
                    "{} is shorter than retention_days ({})",
                    storage.rollup_retention_days, storage.retention_days
                ),
            );
        }
        if !(10..=250).contains(&storage.flush_interval_ms) {
            return err(
                "storage.flush_interval_ms",
                format!("{} is out of range 10..=250", storage.flush_interval_ms),
            );
        }
        if !(1..=50_000).contains(&storage.batch_size) {
            return err(
                "storage.batch_size",
                format!("{} is out of range 1..=50000", storage.batch_size),
            );
        }

        let slo = &self.slo;
        if !(slo.availability_target_percent > 0.0 && slo.availability_target_percent < 100.0) {
            return err(
                "slo.availability_target_percent",
                format!(
                    "{} must be above 0 and below 100",
                    slo.availability_target_percent
                ),
            );
        }
        if slo.p95_latency_target_ms == 0 {
            return err("slo.p95_latency_target_ms", "must be at least 1".to_owned());
        }
        if !(1..=90).contains(&slo.window_days) {
            return err(
                "slo.window_days",
                format!("{} is out of range 1..=90", slo.window_days),
            );
        }
        if slo.window_days > storage.rollup_retention_days {
            return err(
                "slo.window_days",
                "is longer than storage.rollup_retention_days".to_owned(),
            );
        }

        let mut servers = HashSet::new();
        for (i, server) in self.mcp_servers.iter().enumerate() {
            let at = |field: &str| format!("mcp_servers[{i}].{field}");
            if !servers.insert(server.name.as_str()) {
                return err(
                    &at("name"),
                    format!("duplicate MCP server name {:?}", server.name.as_str()),
                );
            }
            match (server.command.is_empty(), &server.url) {
                (false, None) => {}
                (true, Some(url)) => {
                    if !TargetUrl::parse(url).is_ok_and(|u| !u.is_tcp()) {
                        return err(
                            &at("url"),
                            format!("{:?} is not an http(s) URL", types::redact_userinfo(url)),
                        );
                    }
                }
                (true, None) => return err(&at("command"), "give a command or a url".to_owned()),
                (false, Some(_)) => {
                    return err(&at("url"), "give a command or a url, not both".to_owned())
                }
            }
        }
        Ok(())
    }
}

fn check_breaker(breaker: &BreakerConfig, path: &str) -> Result<(), (String, String)> {
    let fail = |field: &str, reason: String| Err((format!("$.{path}.{field}"), reason));
    if !(1..=1000).contains(&breaker.failure_threshold) {
        return fail(
            "failure_threshold",
            format!("{} is out of range 1..=1000", breaker.failure_threshold),
        );
    }
    if !(1..=1000).contains(&breaker.success_threshold) {
        return fail(
            "success_threshold",
            format!("{} is out of range 1..=1000", breaker.success_threshold),
        );
    }
    if !(1..=86_400).contains(&breaker.open_timeout_s) {
        return fail(
            "open_timeout_s",
            format!("{} is out of range 1..=86400", breaker.open_timeout_s),
        );
    }
    Ok(())
}

fn check_origin(origin: &str) -> Result<(), String> {
    let url = url::Url::parse(origin).map_err(|e| format!("{origin:?} is not an origin ({e})"))?;
    let bare = url.path() == "/" && url.query().is_none() && url.fragment().is_none();
    if !matches!(url.scheme(), "http" | "https")
        || url.host_str().is_none()
        || !bare
        || origin.ends_with('/')
    {
        return Err(format!(
            "{origin:?} is not an origin; write scheme://host[:port]"
        ));
    }
    Ok(())
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

/// A listen address, with an error that quotes the bad value.
fn socket_addr<'de, D: serde::Deserializer<'de>>(de: D) -> Result<SocketAddr, D::Error> {
    let raw = String::deserialize(de)?;
    raw.parse().map_err(|_| {
        serde::de::Error::custom(format!(
            "{raw:?} is not an address like 127.0.0.1:3002 or [::1]:3002"
        ))
    })
}

/// Turns serde_path_to_error's `services[1].url` (or `.` for the root) into `$.services[1].url`.
fn json_path(path: &str) -> String {
    if path == "." || path.is_empty() {
        "$".to_owned()
    } else {
        format!("$.{path}")
    }
}
