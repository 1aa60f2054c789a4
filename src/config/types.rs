//! Value types of the configuration. `ServiceName` and `TargetUrl` are valid by construction; the body
//! condition and status codes are checked by `Config::validate`, which knows the field paths.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use url::Url;

/// The name of a monitored service or an MCP server: 1-64 characters of `A-Z a-z 0-9 - _ .`; or the name of
/// the target hale makes of an MCP server, `mcp:<server>` (`ServiceName::mcp_target`). A name written in
/// `services` or `mcp_servers` never takes that form (`Config::validate` refuses it), so `mcp:x` is always
/// the MCP server `x`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ServiceName(Arc<str>);

impl ServiceName {
    pub const MAX_LEN: usize = 64;
    /// What the name of an MCP server's target starts with.
    pub const MCP_PREFIX: &'static str = "mcp:";

    pub fn parse(raw: &str) -> Result<Self, String> {
        if let Some(server) = raw.strip_prefix(Self::MCP_PREFIX) {
            Self::parse_plain(server).map_err(|e| {
                format!("{raw:?} names an MCP server's target, but its server: {e}")
            })?;
            return Ok(Self(Arc::from(raw)));
        }
        Self::parse_plain(raw)
    }

    /// The target hale makes of the MCP server `server`: `mcp:<server>`.
    pub fn mcp_target(server: &ServiceName) -> Self {
        match server.mcp_server() {
            // Already a target's name: it stays what it is.
            Some(_) => server.clone(),
            None => Self(Arc::from(format!(
                "{}{}",
                Self::MCP_PREFIX,
                server.as_str()
            ))),
        }
    }

    /// The MCP server this name is the target of, when it is `mcp:<server>`.
    pub fn mcp_server(&self) -> Option<&str> {
        self.0.strip_prefix(Self::MCP_PREFIX)
    }

    fn parse_plain(raw: &str) -> Result<Self, String> {
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
        Ok(Self(Arc::from(raw)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name itself, shared: what keeps one target's name allocated once, however many parts hold it.
    pub fn shared(&self) -> Arc<str> {
        Arc::clone(&self.0)
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
        name.0.to_string()
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

/// Where a target is probed: an HTTP(S) URL, `tcp://host:port` for a plain connect check, or a configured MCP
/// server (`mcp://<server>`, an MCP `ping`). The last is never written in a config: hale makes one target of
/// each `mcp_servers` entry (`Config::with_mcp_targets`), and `parse` refuses the scheme.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum TargetUrl {
    Http(Url),
    Tcp { host: String, port: u16 },
    Mcp { server: ServiceName },
}

impl TargetUrl {
    pub fn parse(raw: &str) -> Result<Self, String> {
        // Every message quotes the value without its userinfo: a refused URL must not put a password in
        // the log or on stderr.
        let shown = redact_userinfo(raw);
        let url = Url::parse(raw).map_err(|e| format!("{shown:?} is not a valid URL ({e})"))?;
        match url.scheme() {
            "http" | "https" => {
                if url.host_str().is_none() {
                    return Err(format!("{shown:?} has no host"));
                }
                if !url.username().is_empty() || url.password().is_some() {
                    return Err(format!(
                        "{shown:?} carries credentials in the URL; they would end up in logs and the database"
                    ));
                }
                Ok(Self::Http(url))
            }
            "tcp" => {
                let host = url
                    .host_str()
                    .ok_or_else(|| format!("{shown:?} has no host"))?
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_owned();
                let port = url
                    .port()
                    .ok_or_else(|| format!("{shown:?} has no port; write tcp://host:port"))?;
                if !url.username().is_empty() || url.password().is_some() {
                    return Err(format!(
                        "{shown:?} carries credentials in the URL; a tcp:// target takes none"
                    ));
                }
                if url.path() != "" && url.path() != "/" {
                    return Err(format!("{shown:?}: a tcp:// target takes no path"));
                }
                Ok(Self::Tcp { host, port })
            }
            "mcp" => Err(format!(
                "{shown:?}: an MCP server is watched as a target by listing it in mcp_servers (its target is mcp:<name>)"
            )),
            other => Err(format!(
                "{shown:?} has scheme {other:?}; use http://, https:// or tcp://host:port"
            )),
        }
    }

    pub fn is_tcp(&self) -> bool {
        matches!(self, Self::Tcp { .. })
    }

    /// Whether this is an MCP server's target (`mcp://<server>`).
    pub fn is_mcp(&self) -> bool {
        matches!(self, Self::Mcp { .. })
    }

    /// Whether a probe of it is an HTTP request.
    pub fn is_http(&self) -> bool {
        matches!(self, Self::Http(_))
    }

    /// The URL as hale shows it in answers: the values of query pairs and of path parameters
    /// (`;jsessionid=...`) and the fragment, which often carry tokens, become `redacted`; userinfo (never
    /// accepted by `parse`) becomes `***`.
    pub fn redacted(&self) -> String {
        let Self::Http(url) = self else {
            return self.to_string();
        };
        let mut shown = url.clone();
        if !url.username().is_empty() || url.password().is_some() {
            // Only fails for URLs that cannot have a host, and an http(s) URL always has one.
            let _ = shown.set_password(None);
            let _ = shown.set_username(REDACTED_USERINFO);
        }
        if url.path().contains(';') {
            let path = url
                .path()
                .split('/')
                .map(redact_path_params)
                .collect::<Vec<_>>()
                .join("/");
            shown.set_path(&path);
        }
        if url.query().is_some() {
            let names: Vec<String> = url
                .query_pairs()
                .map(|(name, _)| name.into_owned())
                .collect();
            shown
                .query_pairs_mut()
                .clear()
                .extend_pairs(names.iter().map(|name| (name.as_str(), REDACTED)));
        }
        if url.fragment().is_some() {
            shown.set_fragment(Some(REDACTED));
        }
        shown.to_string()
    }
}

/// What replaces a redacted value in a URL hale shows.
const REDACTED: &str = "redacted";
/// What replaces the userinfo (`user:password`) of a URL hale shows.
const REDACTED_USERINFO: &str = "***";

/// One path segment with the values of its parameters redacted: `a;jsessionid=X;v` becomes
/// `a;jsessionid=redacted;v=redacted`.
fn redact_path_params(segment: &str) -> String {
    let mut parts = segment.split(';');
    let mut shown = parts.next().unwrap_or_default().to_owned();
    for param in parts {
        let name = param.split_once('=').map_or(param, |(name, _)| name);
        shown.push(';');
        shown.push_str(name);
        shown.push('=');
        shown.push_str(REDACTED);
    }
    shown
}

/// `raw` with its userinfo shown as `***`: everything from after `scheme://` (or from the start, without
/// one) up to the last `@` is replaced, so even a value that is not a valid URL (a password with a `/`,
/// `?` or `#` in it) loses its secret. For messages about a URL that was refused or could not be parsed.
pub fn redact_userinfo(raw: &str) -> Cow<'_, str> {
    let Some(at) = raw.rfind('@') else {
        return Cow::Borrowed(raw);
    };
    let start = raw[..at].find("://").map_or(0, |i| i + 3);
    Cow::Owned(format!(
        "{}{REDACTED_USERINFO}{}",
        &raw[..start],
        &raw[at..]
    ))
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
            Self::Mcp { server } => write!(f, "mcp://{server}"),
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
        // Every holder of a name shares one allocation of it.
        let name = ServiceName::parse("api").unwrap();
        assert!(Arc::ptr_eq(&name.shared(), &name.clone().shared()));
        assert_eq!(String::from(name), "api");
        assert!(ServiceName::parse("")
            .unwrap_err()
            .contains("must not be empty"));
        assert!(ServiceName::parse("a b").unwrap_err().contains("' '"));
        assert!(ServiceName::parse(&"x".repeat(65))
            .unwrap_err()
            .contains("longer than 64"));
    }

    #[test]
    fn an_mcp_servers_target_is_named_mcp_and_its_url_is_never_parsed() {
        let server = ServiceName::parse("fs").unwrap();
        let target = ServiceName::mcp_target(&server);
        assert_eq!(target.as_str(), "mcp:fs");
        assert_eq!(target.mcp_server(), Some("fs"));
        assert_eq!(server.mcp_server(), None);
        // A reference to it (a route's path, an alert rule's target) parses; the server part is checked.
        assert_eq!(ServiceName::parse("mcp:fs"), Ok(target));
        let long = format!("mcp:{}", "x".repeat(64));
        assert!(ServiceName::parse(&long).is_ok());
        assert_eq!(
            ServiceName::parse("mcp:a:b").unwrap_err(),
            r#""mcp:a:b" names an MCP server's target, but its server: name "a:b" contains ':'; use letters, digits, '-', '_' or '.'"#
        );
        assert!(ServiceName::parse("mcp:")
            .unwrap_err()
            .contains("must not be empty"));
        let url = TargetUrl::Mcp { server };
        assert_eq!(url.to_string(), "mcp://fs");
        assert!(url.is_mcp() && !url.is_http() && !url.is_tcp());
        assert!(TargetUrl::parse("mcp://fs")
            .unwrap_err()
            .contains("listing it in mcp_servers"));
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

    #[test]
    fn a_refused_url_is_quoted_without_its_userinfo() {
        for (raw, reason) in [
            ("http://user:s3cret@host/", "carries credentials"),
            ("https://s3cret@host/", "carries credentials"),
            ("tcp://user:s3cret@db:5432", "carries credentials"),
            ("ftp://user:s3cret@host/", "has scheme \"ftp\""),
            // Not valid URLs at all: a password with '/' or '#', a port that is not a number.
            ("http://user:s3/cret@host/", "not a valid URL"),
            ("http://user:s3#cret@host/", "not a valid URL"),
            ("user:s3cret@host", "has scheme"),
        ] {
            let err = TargetUrl::parse(raw).unwrap_err();
            assert!(err.contains(reason), "{raw}: {err}");
            assert!(
                !err.contains("s3"),
                "{raw}: the secret is quoted in {err:?}"
            );
            assert!(err.contains("***@"), "{raw}: {err}");
        }
        assert_eq!(
            TargetUrl::parse("http://user:s3cret@host/").unwrap_err(),
            "\"http://***@host/\" carries credentials in the URL; they would end up in logs and the database"
        );
    }

    #[test]
    fn redact_userinfo_replaces_everything_up_to_the_last_at() {
        assert_eq!(redact_userinfo("http://u:p@h/x"), "http://***@h/x");
        assert_eq!(redact_userinfo("http://u:p@w@h/"), "http://***@h/");
        assert_eq!(redact_userinfo("u:p@h"), "***@h");
        assert_eq!(redact_userinfo("http://h/x"), "http://h/x");
        assert!(matches!(redact_userinfo("http://h/x"), Cow::Borrowed(_)));
    }

    #[test]
    fn redacted_hides_query_values_path_parameters_and_fragments() {
        let shown = |raw: &str| TargetUrl::parse(raw).unwrap().redacted();
        assert_eq!(
            shown("https://api.example/health;jsessionid=ABC123?token=s3cret#access_token=XYZ"),
            "https://api.example/health;jsessionid=redacted?token=redacted#redacted"
        );
        assert_eq!(
            shown("http://h/a;x=1;y/b;z=2/c"),
            "http://h/a;x=redacted;y=redacted/b;z=redacted/c"
        );
        assert_eq!(shown("http://h/status#section"), "http://h/status#redacted");
        assert_eq!(shown("http://h:8080/health"), "http://h:8080/health");
        assert_eq!(shown("tcp://db:5432"), "tcp://db:5432");
        // Userinfo cannot come from `parse`, but a hand-built URL with some is not shown either.
        let built = TargetUrl::Http(Url::parse("http://u:s3cret@h/").unwrap());
        assert_eq!(built.redacted(), "http://***@h/");
    }
}
