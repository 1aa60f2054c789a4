//! `auth`: the bearer tokens of the three roles (`read`, `operate`, `admin`). A token is never written in the
//! config: each role names an environment variable or a file that holds it, read at start.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::config::Invalid;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Where each role's token comes from; a role without one cannot be used.
    pub tokens: RoleTokens,
    /// Reads from a loopback address need no token. Turn off behind a reverse proxy on the same host, where
    /// every client arrives from loopback.
    pub open_reads_on_loopback: bool,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            tokens: RoleTokens::default(),
            open_reads_on_loopback: true,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RoleTokens {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read: Option<TokenSource>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operate: Option<TokenSource>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin: Option<TokenSource>,
}

/// Where a token is read from: `{"env": "HALE_ADMIN_TOKEN"}` or `{"file": "/run/secrets/hale-admin"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum TokenSource {
    Env(String),
    File(PathBuf),
}

impl TokenSource {
    /// Where the token is, for messages (never the token itself).
    pub fn describe(&self) -> String {
        match self {
            Self::Env(name) => format!("environment variable {name}"),
            Self::File(path) => format!("file {}", path.display()),
        }
    }
}

impl AuthConfig {
    /// The roles in order, with their sources and JSON paths.
    pub fn sources(&self) -> [(&'static str, Option<&TokenSource>); 3] {
        [
            ("read", self.tokens.read.as_ref()),
            ("operate", self.tokens.operate.as_ref()),
            ("admin", self.tokens.admin.as_ref()),
        ]
    }

    pub(crate) fn validate(&self) -> Result<(), Invalid> {
        for (role, source) in self.sources() {
            match source {
                Some(TokenSource::Env(name)) if name.is_empty() || name.contains('=') => {
                    return Err(Invalid::at(
                        format!("auth.tokens.{role}.env"),
                        format!("{name:?} is not an environment variable name"),
                    ))
                }
                Some(TokenSource::File(path)) if path.as_os_str().is_empty() => {
                    return Err(Invalid::at(
                        format!("auth.tokens.{role}.file"),
                        "the path is empty",
                    ))
                }
                _ => {}
            }
        }
        Ok(())
    }
}
