//! `services`: the monitored targets, each with its probe, schedule, weight and breaker override.

use std::collections::{BTreeSet, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::{
    BodyCondition, BreakerConfig, BreakerOverride, ExpectedStatus, Invalid, McpServerConfig,
    RunConfig, ServiceName, TargetHeal, TargetUrl,
};

/// The HTTP method of a probe.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum HttpMethod {
    #[default]
    Get,
    Head,
    Post,
    Put,
    Patch,
    Delete,
    Options,
}

impl HttpMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Head => "HEAD",
            Self::Post => "POST",
            Self::Put => "PUT",
            Self::Patch => "PATCH",
            Self::Delete => "DELETE",
            Self::Options => "OPTIONS",
        }
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
    pub method: Option<HttpMethod>,
    /// Accepted status codes; any 2xx when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_status: Option<ExpectedStatus>,
    /// Extra condition on the response body. Boxed, as `run` and `heal` are: few targets set one, and
    /// the box keeps the others 8 bytes rather than the whole field (a config is held for hale's life).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Box<BodyCondition>>,
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    #[serde(default = "default_interval_s")]
    pub interval_s: u64,
    /// Share of the health score.
    #[serde(default = "default_weight")]
    pub weight: f64,
    /// A critical target that is down caps the health score.
    #[serde(default)]
    pub critical: bool,
    #[serde(default)]
    pub tags: Vec<String>,
    /// Per-target circuit breaker settings; unset fields take the `breaker` section's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub breaker: Option<BreakerOverride>,
    /// Run the service as a child of hale, supervised.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<Box<RunConfig>>,
    /// How auto-heal heals this target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heal: Option<Box<TargetHeal>>,
}

// A target has required fields, so its defaults are per field; each is written here once.
fn default_timeout_ms() -> u64 {
    2_000
}

fn default_interval_s() -> u64 {
    30
}

fn default_weight() -> f64 {
    1.0
}

impl TargetConfig {
    /// A target with every optional field at its default.
    pub fn new(name: ServiceName, url: TargetUrl) -> Self {
        Self {
            name,
            url,
            method: None,
            expected_status: None,
            body: None,
            timeout_ms: default_timeout_ms(),
            interval_s: default_interval_s(),
            weight: default_weight(),
            critical: false,
            tags: Vec::new(),
            breaker: None,
            run: None,
            heal: None,
        }
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    pub fn interval(&self) -> Duration {
        Duration::from_secs(self.interval_s)
    }

    /// The HTTP method a probe of an HTTP target uses.
    pub fn http_method(&self) -> HttpMethod {
        self.method.unwrap_or_default()
    }

    /// How this target is healed: its own settings, or the defaults.
    pub fn heal_settings(&self) -> TargetHeal {
        self.heal.as_deref().cloned().unwrap_or_default()
    }

    /// The breaker settings of this target: its override over the global section.
    pub fn breaker_settings(&self, global: &BreakerConfig) -> BreakerConfig {
        global.overridden_by(self.breaker.as_ref())
    }

    fn validate(&self, i: usize, global: &BreakerConfig, own: SocketAddr) -> Result<(), Invalid> {
        let at = |field: &str| format!("services[{i}].{field}");
        if self.name.mcp_server().is_some() != self.url.is_mcp() {
            return Err(Invalid::at(
                at("name"),
                format!(
                    "{:?}: a name starting with \"mcp:\" belongs to the target hale makes of an MCP server; list the server in mcp_servers, or give this target another name",
                    self.name.as_str()
                ),
            ));
        }
        if self.timeout_ms == 0 || self.timeout_ms > 60_000 {
            return Err(Invalid::at(
                at("timeout_ms"),
                format!("{} is out of range 1..=60000", self.timeout_ms),
            ));
        }
        if self.interval_s == 0 || self.interval_s > 86_400 {
            return Err(Invalid::at(
                at("interval_s"),
                format!("{} is out of range 1..=86400", self.interval_s),
            ));
        }
        if self.timeout_ms > self.interval_s * 1000 {
            return Err(Invalid::at(
                at("timeout_ms"),
                format!(
                    "timeout {} ms is longer than the interval of {} s",
                    self.timeout_ms, self.interval_s
                ),
            ));
        }
        if !(self.weight.is_finite() && self.weight > 0.0 && self.weight <= 1000.0) {
            return Err(Invalid::at(
                at("weight"),
                format!("{} is out of range (0, 1000]", self.weight),
            ));
        }
        let mut tags = BTreeSet::new();
        for (j, tag) in self.tags.iter().enumerate() {
            if tag.is_empty() || tag.chars().count() > 64 {
                return Err(Invalid::at(
                    at(&format!("tags[{j}]")),
                    "a tag has 1 to 64 characters",
                ));
            }
            if !tags.insert(tag) {
                return Err(Invalid::at(
                    at(&format!("tags[{j}]")),
                    format!("duplicate tag {tag:?}"),
                ));
            }
        }
        if let Some(reason) = probes_own_aggregate(&self.url, own) {
            return Err(Invalid::at(at("url"), reason));
        }
        if !self.url.is_http() {
            let kind = if self.url.is_tcp() {
                "a tcp://"
            } else {
                "an MCP"
            };
            if self.method.is_some() {
                return Err(Invalid::at(
                    at("method"),
                    format!("{kind} target takes no HTTP method"),
                ));
            }
            if self.expected_status.is_some() {
                return Err(Invalid::at(
                    at("expected_status"),
                    format!("{kind} target has no HTTP status"),
                ));
            }
            if self.body.is_some() {
                return Err(Invalid::at(
                    at("body"),
                    format!("{kind} target has no body"),
                ));
            }
        }
        if let Some(expected) = &self.expected_status {
            if expected.codes().is_empty() {
                return Err(Invalid::at(
                    at("expected_status"),
                    "the list of statuses is empty",
                ));
            }
            if let Some(bad) = expected.codes().iter().find(|c| !(100..=599).contains(*c)) {
                return Err(Invalid::at(
                    at("expected_status"),
                    format!("{bad} is not an HTTP status"),
                ));
            }
        }
        if let Some(body) = &self.body {
            body.check()
                .map_err(|reason| Invalid::at(at("body"), reason))?;
        }
        if self.breaker.is_some() {
            self.breaker_settings(global).validate(&at("breaker"))?;
        }
        if let Some(run) = &self.run {
            run.validate(&at("run"))?;
        }
        if let Some(heal) = &self.heal {
            heal.validate(&at("heal"))?;
        }
        Ok(())
    }
}

/// Checks every target and that no name is used twice. `own` is the Health Proxy's listen address.
pub(crate) fn validate_all(
    targets: &[Arc<TargetConfig>],
    global: &BreakerConfig,
    own: SocketAddr,
) -> Result<(), Invalid> {
    let mut names = HashSet::new();
    for (i, target) in targets.iter().enumerate() {
        if !names.insert(target.name.as_str()) {
            return Err(Invalid::at(
                format!("services[{i}].name"),
                format!("duplicate service name {:?}", target.name.as_str()),
            ));
        }
        target.validate(i, global, own)?;
    }
    Ok(())
}

/// Why a target URL is hale's own `/health/all` (the Health Proxy's listen port, on a loopback or unspecified
/// host or the listen IP itself), if it is: probing it would make every `/health/all` probe hale again. Other
/// hosts may still reach hale; the `X-Hale-Probe` header covers those.
fn probes_own_aggregate(url: &TargetUrl, own: SocketAddr) -> Option<String> {
    let TargetUrl::Http(url) = url else {
        return None;
    };
    if url.path().trim_end_matches('/') != "/health/all" {
        return None;
    }
    if own.port() == 0 || url.port_or_known_default() != Some(own.port()) {
        return None;
    }
    let own_host = match url.host()? {
        url::Host::Domain(name) => {
            let name = name.to_ascii_lowercase();
            name == "localhost" || name.ends_with(".localhost")
        }
        url::Host::Ipv4(ip) => is_own_ip(IpAddr::V4(ip), own.ip()),
        url::Host::Ipv6(ip) => is_own_ip(IpAddr::V6(ip), own.ip()),
    };
    own_host.then(|| {
        format!("{url} is hale's own /health/all (listen.health_proxy {own}); hale does not probe its own aggregating route")
    })
}

fn is_own_ip(ip: IpAddr, listen: IpAddr) -> bool {
    ip.is_loopback() || ip.is_unspecified() || ip == listen
}

/// The target hale makes of an MCP server: `mcp:<name>`, checked by an MCP `ping` every `interval_s` (the
/// server's, else a target's default), within the server's `timeout_s` (at most the interval and 60 s).
pub(crate) fn mcp_target(server: &McpServerConfig) -> TargetConfig {
    let mut target = TargetConfig::new(
        ServiceName::mcp_target(&server.name),
        TargetUrl::Mcp {
            server: server.name.clone(),
        },
    );
    if let Some(interval_s) = server.interval_s {
        target.interval_s = interval_s;
    }
    target.timeout_ms = server
        .timeout_s
        .saturating_mul(1000)
        .min(target.interval_s.saturating_mul(1000))
        .min(60_000);
    target.tags = vec!["mcp".to_owned()];
    target
}

/// `services` as written in a file: without the targets hale makes of MCP servers, so a config written back
/// (`check-config`, a test's file) loads again.
pub(crate) fn serialize_written<S: serde::Serializer>(
    targets: &[Arc<TargetConfig>],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(targets.iter().filter(|t| !t.url.is_mcp()))
}

/// With no `services` in the file, hale watches its own three services.
pub(crate) fn default_services() -> Vec<Arc<TargetConfig>> {
    let own = |name: &str, url: &str| {
        Arc::new(TargetConfig::new(
            ServiceName::parse(name).expect("built-in name is valid"),
            TargetUrl::parse(url).expect("built-in url is valid"),
        ))
    };
    vec![
        own("health-proxy", "http://127.0.0.1:3002/health"),
        own("mcp-bridge", "http://127.0.0.1:3003/health"),
        own("boss-api", "http://127.0.0.1:4000/healthz"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_target_config_keeps_its_rarely_set_fields_out_of_line() {
        // Held for hale's life, once per target: `run`, `heal` and `body` are boxed.
        assert!(
            std::mem::size_of::<TargetConfig>() <= 256,
            "{} bytes",
            std::mem::size_of::<TargetConfig>()
        );
        let parsed: TargetConfig = serde_json::from_str(
            r#"{"name": "a", "url": "http://h/", "body": {"contains": "ok"}, "heal": {"command_timeout_s": 5},
                "run": {"argv": ["true"]}}"#,
        )
        .unwrap();
        assert_eq!(
            parsed.body.as_ref().and_then(|b| b.contains.as_deref()),
            Some("ok")
        );
        assert_eq!(parsed.heal_settings().command_timeout_s, 5);
        assert_eq!(
            parsed.run.as_ref().map(|r| r.argv.clone()),
            Some(vec!["true".to_owned()])
        );
        // They serialize as before: no trace of the boxes.
        let again: TargetConfig =
            serde_json::from_value(serde_json::to_value(&parsed).unwrap()).unwrap();
        assert_eq!(again, parsed);
    }

    #[test]
    fn a_method_is_one_of_the_http_methods_in_capitals() {
        let target: TargetConfig =
            serde_json::from_str(r#"{"name": "a", "url": "http://h/", "method": "HEAD"}"#).unwrap();
        assert_eq!(target.http_method(), HttpMethod::Head);
        assert_eq!(
            TargetConfig::new(ServiceName::parse("b").unwrap(), target.url.clone()).http_method(),
            HttpMethod::Get
        );
        let err = serde_json::from_str::<TargetConfig>(
            r#"{"name": "a", "url": "http://h/", "method": "FETCH"}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("unknown variant `FETCH`, expected one of `GET`"),
            "{err}"
        );
    }
}
