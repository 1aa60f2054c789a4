//! hale's three HTTP services, by name: the value of the `service` label and of log fields.

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ServiceKind {
    HealthProxy,
    McpBridge,
    BossApi,
}

impl ServiceKind {
    pub const ALL: [ServiceKind; 3] = [Self::HealthProxy, Self::McpBridge, Self::BossApi];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::HealthProxy => "health-proxy",
            Self::McpBridge => "mcp-bridge",
            Self::BossApi => "boss-api",
        }
    }

    /// The inverse of `as_str`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// The human title used in the OpenAPI documents.
    pub fn title(self) -> &'static str {
        match self {
            Self::HealthProxy => "hale Health Proxy",
            Self::McpBridge => "hale MCP WebBridge",
            Self::BossApi => "hale Boss API",
        }
    }
}

impl fmt::Display for ServiceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
