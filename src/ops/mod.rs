//! hale's commands for the person who runs it: `hale verify` (every check of a deployment, as a PASS/FAIL
//! report) and `hale status` (one screen: services, targets against their SLOs, writer, database). Both read
//! the config and the database, and call a running hale's endpoints as an HTTP client; neither changes
//! anything.

pub mod prom_text;
pub mod status;
pub mod verify;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use reqwest::header::{HeaderValue, AUTHORIZATION};

use crate::auth::{Role, Tokens};
use crate::config::{AuthConfig, Config, RoleTokens};
use crate::kind::ServiceKind;

/// The target a saved breaker belongs to (the monitor names them), for reports that read breakers back.
pub use crate::probe::monitor::target_of_breaker;

/// The address a service of this config listens on.
pub fn listen_addr(config: &Config, kind: ServiceKind) -> SocketAddr {
    match kind {
        ServiceKind::HealthProxy => config.listen.health_proxy,
        ServiceKind::McpBridge => config.listen.mcp_bridge,
        ServiceKind::BossApi => config.listen.boss_api,
    }
}

/// `http://HOST:PORT` to reach a service listening on `addr` from this machine: a service on every address
/// (`0.0.0.0`, `[::]`) is reached on loopback. Port 0 is picked at start and cannot be known from the config.
pub fn base_url(addr: SocketAddr) -> Result<String, String> {
    if addr.port() == 0 {
        return Err(format!(
            "the config listens on {addr}: port 0 is picked when hale starts, so it cannot be reached from the config"
        ));
    }
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    Ok(format!("http://{}", SocketAddr::new(ip, addr.port())))
}

/// The read token, as far as the config asks for one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadToken {
    /// `auth.tokens.read` is not set: requests go without a token (enough on loopback).
    NotConfigured,
    /// Loaded from this source (never the token itself).
    Loaded { source: String },
    /// Configured, but it could not be loaded: why.
    Failed(String),
}

/// An HTTP client for a running hale: no proxy (hale is on this machine), a timeout per request, and the
/// read token as `Authorization: Bearer` when the config has one.
#[derive(Debug, Clone)]
pub struct HaleClient {
    http: reqwest::Client,
    authorization: Option<HeaderValue>,
    pub token: ReadToken,
}

/// An answer from hale: status, content type and body.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub content_type: String,
    pub body: String,
}

impl HaleClient {
    pub fn new(config: &Config, timeout: Duration) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(timeout)
            .user_agent(concat!("hale-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        let (authorization, token) = read_token(&config.auth);
        Ok(Self {
            http,
            authorization,
            token,
        })
    }

    /// GET `url`; `timeout` overrides the client's for this request.
    pub async fn get(&self, url: &str, timeout: Option<Duration>) -> Result<Answer, String> {
        let mut request = self.http.get(url);
        if let Some(value) = &self.authorization {
            request = request.header(AUTHORIZATION, value.clone());
        }
        if let Some(timeout) = timeout {
            request = request.timeout(timeout);
        }
        let response = request.send().await.map_err(|e| describe_error(url, &e))?;
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let body = response.text().await.map_err(|e| describe_error(url, &e))?;
        Ok(Answer {
            status,
            content_type,
            body,
        })
    }
}

/// Loads only the read token (a person allowed to read need not be able to read the admin token's file).
fn read_token(auth: &AuthConfig) -> (Option<HeaderValue>, ReadToken) {
    let Some(source) = auth.tokens.read.clone() else {
        return (None, ReadToken::NotConfigured);
    };
    let described = source.describe();
    let only_read = AuthConfig {
        tokens: RoleTokens {
            read: Some(source),
            operate: None,
            admin: None,
        },
        ..AuthConfig::default()
    };
    let tokens = match Tokens::load(&only_read) {
        Ok(tokens) => tokens,
        Err(e) => return (None, ReadToken::Failed(e.to_string())),
    };
    let Some(secret) = tokens.token(Role::Read) else {
        return (None, ReadToken::NotConfigured);
    };
    // A loaded token has no whitespace or control characters, so it is a valid header value.
    match HeaderValue::from_str(&format!("Bearer {}", secret.expose())) {
        Ok(mut value) => {
            value.set_sensitive(true);
            (Some(value), ReadToken::Loaded { source: described })
        }
        Err(_) => (
            None,
            ReadToken::Failed(format!(
                "auth.tokens.read: the token in {described} cannot be sent in an HTTP header"
            )),
        ),
    }
}

/// Why a request got no answer, in words an operator can act on. Never includes a header value.
fn describe_error(url: &str, error: &reqwest::Error) -> String {
    let mut cause = String::new();
    let mut source = std::error::Error::source(error);
    while let Some(inner) = source {
        cause = inner.to_string();
        source = inner.source();
    }
    if error.is_timeout() {
        format!("{url} did not answer in time")
    } else if error.is_connect() {
        if cause.contains("refused") {
            format!("nothing answers at {url} (connection refused)")
        } else {
            format!("cannot connect to {url} ({cause})")
        }
    } else if cause.is_empty() {
        format!("{url}: {error}")
    } else {
        format!("{url}: {error} ({cause})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_service_on_every_address_is_reached_on_loopback() {
        assert_eq!(
            base_url("0.0.0.0:3002".parse().unwrap()).unwrap(),
            "http://127.0.0.1:3002"
        );
        assert_eq!(
            base_url("[::]:3003".parse().unwrap()).unwrap(),
            "http://[::1]:3003"
        );
        assert_eq!(
            base_url("10.1.2.3:4000".parse().unwrap()).unwrap(),
            "http://10.1.2.3:4000"
        );
        assert!(base_url("127.0.0.1:0".parse().unwrap())
            .unwrap_err()
            .contains("port 0"));
    }
}
