//! `http`: what every HTTP service shares.

use serde::{Deserialize, Serialize};

use crate::config::Invalid;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Worker threads per service.
    pub workers: usize,
    /// How long a graceful shutdown waits for in-flight requests.
    pub shutdown_timeout_s: u64,
    /// Largest accepted request body; larger bodies get 413.
    pub body_limit_bytes: usize,
    /// Browser origins allowed by CORS; empty means CORS stays closed.
    pub cors_origins: Vec<String>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            workers: 2,
            shutdown_timeout_s: 30,
            body_limit_bytes: 1024 * 1024,
            cors_origins: Vec::new(),
        }
    }
}

impl HttpConfig {
    pub(crate) fn validate(&self) -> Result<(), Invalid> {
        if !(1..=64).contains(&self.workers) {
            return Err(Invalid::at(
                "http.workers",
                format!("{} is out of range 1..=64", self.workers),
            ));
        }
        if self.shutdown_timeout_s > 3600 {
            return Err(Invalid::at(
                "http.shutdown_timeout_s",
                format!("{} is more than an hour", self.shutdown_timeout_s),
            ));
        }
        if !(1024..=64 * 1024 * 1024).contains(&self.body_limit_bytes) {
            return Err(Invalid::at(
                "http.body_limit_bytes",
                format!("{} is out of range 1024..=67108864", self.body_limit_bytes),
            ));
        }
        for (i, origin) in self.cors_origins.iter().enumerate() {
            check_origin(origin)
                .map_err(|reason| Invalid::at(format!("http.cors_origins[{i}]"), reason))?;
        }
        Ok(())
    }
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
