//! Value types of the configuration. `ServiceName` and `TargetUrl` are valid by construction; the body
//! condition and status codes are checked by `Config::validate`, which knows the field paths.

use std::fmt;

use serde::{Deserialize, Serialize};
use url::Url;

/// The name of a monitored service or an MCP server: 1-64 characters of `A-Z a-z 0-9 - _ .`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ServiceName(String);

impl ServiceName {
    pub const MAX_LEN: usize = 64;

    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.is_empty() {
            return Err("a name must not be empty".to_owned());
        }
        if raw.len() > Self::MAX_LEN {
            return Err(format!(
                "name {raw:?} is longer than {} characters",
                Self::MAX_LEN
            ));
        }
        if let Some(bad) = raw
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        {
            return Err(format!(
                "name {raw:?} contains {bad:?}; use letters, digits, '-', '_' or '.'"
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ServiceName {
    type Error = String;
    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse(&raw)
    }
}

impl From<ServiceName> for String {
    fn from(name: ServiceName) -> Self {
        name.0
    }
}

impl fmt::Display for ServiceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for ServiceName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// Where a target is probed: an HTTP(S) URL, or `tcp://host:port` for a plain connect check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum TargetUrl {
    Http(Url),
    Tcp { host: String, port: u16 },
}

impl TargetUrl {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let url = Url::parse(raw).map_err(|e| format!("{raw:?} is not a valid URL ({e})"))?;
        match url.scheme() {
            "http" | "https" => {
                if url.host_str().is_none() {
                    return Err(format!("{raw:?} has no host"));
                }
                if !url.username().is_empty() || url.password().is_some() {
                    return Err(format!(
                        "{raw:?} carries credentials in the URL; they would end up in logs and the database"
                    ));
                }
                Ok(Self::Http(url))
            }
            "tcp" => {
                let host = url
                    .host_str()
                    .ok_or_else(|| format!("{raw:?} has no host"))?
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_owned();
                let port = url
                    .port()
                    .ok_or_else(|| format!("{raw:?} has no port; write tcp://host:port"))?;
                if url.path() != "" && url.path() != "/" {
                    return Err(format!("{raw:?}: a tcp:// target takes no path"));
                }
                Ok(Self::Tcp { host, port })
            }
            other => Err(format!(
                "{raw:?} has scheme {other:?}; use http://, https:// or tcp://host:port"
            )),
        }
    }

    pub fn is_tcp(&self) -> bool {
        matches!(self, Self::Tcp { .. })
    }

    /// The URL as hale shows it in answers: query values (often tokens) replaced by `redacted`.
    pub fn redacted(&self) -> String {
        match self {
            Self::Http(url) if url.query().is_some() => {
                let mut shown = url.clone();
                let names: Vec<String> = url
                    .query_pairs()
                    .map(|(name, _)| name.into_owned())
                    .collect();
                shown
                    .query_pairs_mut()
                    .clear()
                    .extend_pairs(names.iter().map(|name| (name.as_str(), "redacted")));
                shown.to_string()
            }
            other => other.to_string(),
        }
    }
}

impl TryFrom<String> for TargetUrl {
    type Error = String;
    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse(&raw)
    }
}

impl From<TargetUrl> for String {
    fn from(url: TargetUrl) -> Self {
        url.to_string()
    }
}

impl fmt::Display for TargetUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Http(url) => f.write_str(url.as_str()),
            Self::Tcp { host, port } if host.contains(':') => write!(f, "tcp://[{host}]:{port}"),
            Self::Tcp { host, port } => write!(f, "tcp://{host}:{port}"),
        }
    }
}

/// One expected HTTP status or a list of them (`200` or `[200, 204]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum ExpectedStatus {
    One(u16),
    Many(Vec<u16>),
}

impl<'de> Deserialize<'de> for ExpectedStatus {
    fn deserialize<D: serde::Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(de)?;
        let code = |v: &serde_json::Value| v.as_u64().and_then(|n| u16::try_from(n).ok());
        let parsed = match &value {
            serde_json::Value::Array(items) => items
                .iter()
                .map(code)
                .collect::<Option<Vec<u16>>>()
                .map(Self::Many),
            single => code(single).map(Self::One),
        };
        parsed.ok_or_else(|| {
            serde::de::Error::custom(format!(
                "{value} is not a status code or a list of status codes such as 200 or [200, 204]"
            ))
        })
    }
}

impl ExpectedStatus {
    pub fn codes(&self) -> &[u16] {
        match self {
            Self::One(code) => std::slice::from_ref(code),
            Self::Many(codes) => codes,
        }
    }
}

/// A condition on the response body of an HTTP probe: `{"contains": "ok"}` or
/// `{"json_pointer": "/status", "equals": "ok"}` (RFC 6901 pointer).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BodyCondition {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contains: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json_pointer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub equals: Option<serde_json::Value>,
}

impl BodyCondition {
    /// Checks that exactly one form is used; the error is the reason.
    pub fn check(&self) -> Result<(), String> {
        match (&self.contains, &self.json_pointer, &self.equals) {
            (Some(_), None, None) => Ok(()),
            (None, Some(pointer), Some(_)) => {
                if pointer.is_empty() || pointer.starts_with('/') {
                    Ok(())
                } else {
                    Err(format!(
                        "json_pointer {pointer:?} must be empty or start with '/'"
                    ))
                }
            }
            (None, Some(_), None) => Err("json_pointer needs an `equals` value".to_owned()),
            (None, None, Some(_)) => Err("`equals` needs a json_pointer".to_owned()),
            (None, None, None) => {
                Err("give either `contains` or `json_pointer` with `equals`".to_owned())
            }
            (Some(_), _, _) => Err("use either `contains` or `json_pointer`, not both".to_owned()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_names_are_checked() {
        assert!(ServiceName::parse("api-1.prod_x").is_ok());
        assert!(ServiceName::parse("")
            .unwrap_err()
            .contains("must not be empty"));
        assert!(ServiceName::parse("a b").unwrap_err().contains("' '"));
        assert!(ServiceName::parse(&"x".repeat(65))
            .unwrap_err()
            .contains("longer than 64"));
    }

    #[test]
    fn target_urls_parse_http_and_tcp() {
        assert!(matches!(
            TargetUrl::parse("http://127.0.0.1:8080/health"),
            Ok(TargetUrl::Http(_))
        ));
        assert_eq!(
            TargetUrl::parse("tcp://localhost:5432"),
            Ok(TargetUrl::Tcp {
                host: "localhost".into(),
                port: 5432
            })
        );
        assert_eq!(
            TargetUrl::parse("tcp://[::1]:22").unwrap().to_string(),
            "tcp://[::1]:22"
        );
        assert!(TargetUrl::parse("tcp://localhost")
            .unwrap_err()
            .contains("no port"));
        assert!(TargetUrl::parse("ftp://x/").unwrap_err().contains("ftp"));
        assert!(TargetUrl::parse("nope")
            .unwrap_err()
            .contains("not a valid URL"));
        assert_eq!(
            TargetUrl::parse("https://api.example/health?token=s3cret&v=2")
                .unwrap()
                .redacted(),
            "https://api.example/health?token=redacted&v=redacted"
        );
        assert!(TargetUrl::parse("http://u:p@host/")
            .unwrap_err()
            .contains("credentials"));
    }
}
