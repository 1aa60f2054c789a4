//! `listen`: the address each of hale's three services listens on. Port 0 picks a free port.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::config::Invalid;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ListenConfig {
    #[serde(deserialize_with = "socket_addr")]
    pub health_proxy: SocketAddr,
    #[serde(deserialize_with = "socket_addr")]
    pub mcp_bridge: SocketAddr,
    #[serde(deserialize_with = "socket_addr")]
    pub boss_api: SocketAddr,
}

impl Default for ListenConfig {
    fn default() -> Self {
        Self {
            health_proxy: SocketAddr::from(([127, 0, 0, 1], 3002)),
            mcp_bridge: SocketAddr::from(([127, 0, 0, 1], 3003)),
            boss_api: SocketAddr::from(([127, 0, 0, 1], 4000)),
        }
    }
}

impl ListenConfig {
    /// Every address with its JSON path, in a fixed order.
    pub fn all(&self) -> [(&'static str, SocketAddr); 3] {
        [
            ("listen.health_proxy", self.health_proxy),
            ("listen.mcp_bridge", self.mcp_bridge),
            ("listen.boss_api", self.boss_api),
        ]
    }

    pub(crate) fn validate(&self) -> Result<(), Invalid> {
        let listen = self.all();
        for (i, (path, addr)) in listen.iter().enumerate() {
            if addr.port() == 0 {
                continue;
            }
            if let Some((other, _)) = listen[..i].iter().find(|(_, a)| a == addr) {
                return Err(Invalid::at(
                    path,
                    format!("address {addr} is already used by {other}"),
                ));
            }
        }
        Ok(())
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
