//! What `hale check-config` prints: the config as hale reads it, defaults filled in, with every value that
//! may be a secret replaced by a placeholder. The placeholders are valid where they stand, so the printed
//! config passes `check-config` again: target and MCP server URLs show their query values, path parameter
//! values and fragment as `redacted` (as `/services` does), every `run.env` value is `redacted`, a channel's
//! secret URL is `https://redacted.invalid/` and its other secrets `***`.

use serde_json::Value;

use crate::config::{Config, McpTransport, TargetUrl, REDACTED};

/// What replaces a `run.env` value (the word `/services` shows for a URL's query values).
pub const REDACTED_VALUE: &str = "redacted";
/// What replaces a channel's secret URL: an http URL (as the field requires) on a name that never resolves.
pub const REDACTED_URL: &str = "https://redacted.invalid/";

impl Config {
    /// The config as `check-config` prints it: no secret, still a valid config.
    pub fn printable(&self) -> Result<Value, serde_json::Error> {
        let mut shown = self.clone();
        for target in &mut shown.services {
            // A copy of this target's config, for this printout only.
            let target = std::sync::Arc::make_mut(target);
            target.url = redacted_url(&target.url);
            if let Some(run) = &mut target.run {
                for value in run.env.values_mut() {
                    *value = REDACTED_VALUE.to_owned();
                }
            }
        }
        for server in &mut shown.mcp_servers {
            match &mut server.transport {
                McpTransport::Http(http) => {
                    if let TargetUrl::Http(url) = redacted_url(&TargetUrl::Http(http.url.clone())) {
                        http.url = url;
                    }
                    // A header is where an API key travels.
                    for value in http.headers.values_mut() {
                        *value = REDACTED_VALUE.to_owned();
                    }
                }
                McpTransport::Command(command) => {
                    for value in command.env.values_mut() {
                        *value = REDACTED_VALUE.to_owned();
                    }
                }
            }
        }
        let mut value = serde_json::to_value(&shown)?;
        // `Secret`s print as `***` wherever they are shown; a URL field needs a URL to stay valid.
        let channels = &mut value["alerts"]["channels"];
        for (channel, field) in [
            ("discord", "webhook_url"),
            ("webhook", "url"),
            ("alertmanager", "url"),
        ] {
            if let Some(url) = channels.get_mut(channel).and_then(|c| c.get_mut(field)) {
                debug_assert_eq!(
                    url.as_str(),
                    Some(REDACTED),
                    "{channel}.{field} is a Secret"
                );
                *url = Value::from(REDACTED_URL);
            }
        }
        Ok(value)
    }
}

/// A URL with its query values, path parameter values and fragment shown as `redacted`.
fn redacted_url(url: &TargetUrl) -> TargetUrl {
    // `redacted` keeps the scheme, host and path of a valid URL, so it parses again; if it ever did not, the
    // host alone is shown rather than the secret.
    TargetUrl::parse(&url.redacted()).unwrap_or_else(|_| match url {
        TargetUrl::Http(u) => {
            let mut bare = u.clone();
            bare.set_query(None);
            bare.set_fragment(None);
            bare.set_path("/");
            TargetUrl::Http(bare)
        }
        TargetUrl::Tcp { .. } | TargetUrl::Mcp { .. } => url.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_become_placeholders_that_are_valid_config() {
        let text = r#"{
            "services": [{
                "name": "api", "url": "https://api.example/health;jsessionid=SESSION1?token=QUERY1#FRAG1",
                "run": {"argv": ["api"], "env": {"DB_PASSWORD": "ENVSECRET1"}}
            }],
            "mcp_servers": [{"name": "m", "url": "https://mcp.example/mcp?key=MCPKEY1"}],
            "alerts": {"channels": {
                "discord": {"webhook_url": "https://discord.example/api/webhooks/1/HOOK1"},
                "webhook": {"url": "https://hooks.example/h/HOOK2", "bearer_token": "BEARER1"},
                "alertmanager": {"url": "http://127.0.0.1:9093/AM1"},
                "email": {"smtp_host": "127.0.0.1", "smtp_port": 25, "security": "plain",
                          "username": "hale", "password": "SMTP1", "from": "a@example.com", "to": ["b@example.com"]}
            }}
        }"#;
        let config = Config::from_json(text, "test").unwrap();
        let printed = serde_json::to_string_pretty(&config.printable().unwrap()).unwrap();
        for secret in [
            "SESSION1",
            "QUERY1",
            "FRAG1",
            "ENVSECRET1",
            "MCPKEY1",
            "HOOK1",
            "HOOK2",
            "BEARER1",
            "AM1",
            "SMTP1",
        ] {
            assert!(!printed.contains(secret), "{secret}: {printed}");
        }
        assert!(printed.contains("token=redacted"), "{printed}");
        assert!(
            printed.contains(r#""DB_PASSWORD": "redacted""#),
            "{printed}"
        );
        let again = Config::from_json(&printed, "printed").unwrap();
        assert_eq!(
            again.services[0].url.to_string(),
            "https://api.example/health;jsessionid=redacted?token=redacted#redacted"
        );
        assert_eq!(again.printable().unwrap(), config.printable().unwrap());
    }
}
