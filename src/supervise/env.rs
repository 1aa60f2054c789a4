//! The environment of every process hale starts for a target (supervised children and heal commands). It
//! is built from nothing, not from hale's own: `PATH`, `HOME`, `LANG` and `TZ` from hale's environment,
//! then the variables the config names in `inherit_env`, then the values the config sets (`run.env`). A
//! variable that holds a role token, or whose value is one of the alert channels' secrets, is never passed
//! on, even when listed: config validation refuses a token variable in `inherit_env`, and the rest is
//! dropped here with a warning that names the variable (never its value).

use std::collections::{BTreeMap, BTreeSet};

use crate::config::{Config, TokenSource, BASE_ENV};

/// Set in every supervised child's environment, with the database's canonical path as its value. It is
/// inherited by the child's own children, so the next start of hale on this database can find what a
/// killed hale left behind, even a grandchild that left the child's process group. Heal commands do not
/// get it: a service a heal command started is not hale's to stop.
pub const SUPERVISED_BY: &str = "HALE_SUPERVISED_BY";

/// Set in the environment of every stdio MCP server hale starts, with the database's canonical path as its
/// value: the MCP bridge's next start kills what a killed hale left of them. A different mark from
/// `SUPERVISED_BY`, so the supervisor's sweep never takes the bridge's servers for its own children.
pub const MCP_SERVER_OF: &str = "HALE_MCP_SERVER_OF";

/// What must never reach a child.
#[derive(Debug, Clone, Default)]
pub struct EnvPolicy {
    /// Variables that hold a role token (`auth.tokens.*.env`).
    token_vars: BTreeSet<String>,
    /// The alert channels' secrets (webhook URLs, bearer tokens, the SMTP password).
    secret_values: Vec<String>,
}

impl EnvPolicy {
    pub fn from_config(config: &Config) -> Self {
        let token_vars = config
            .auth
            .sources()
            .into_iter()
            .filter_map(|(_, source)| match source {
                Some(TokenSource::Env(var)) => Some(var.clone()),
                _ => None,
            })
            .collect();
        let channels = &config.alerts.channels;
        let mut secrets = Vec::new();
        if let Some(discord) = &channels.discord {
            secrets.push(&discord.webhook_url);
        }
        if let Some(webhook) = &channels.webhook {
            secrets.push(&webhook.url);
            secrets.extend(webhook.bearer_token.as_ref());
        }
        if let Some(am) = &channels.alertmanager {
            secrets.push(&am.url);
        }
        if let Some(email) = &channels.email {
            secrets.extend(email.password.as_ref());
        }
        let secret_values = secrets
            .into_iter()
            .map(|s| s.expose().to_owned())
            .filter(|s| !s.is_empty())
            .collect();
        Self {
            token_vars,
            secret_values,
        }
    }

    /// The whole environment of a process started for `who` (a target's child or heal command): the base
    /// variables and `inherit` read through `lookup` (hale's environment), then `set`. Inherited variables
    /// that hold a token or a channel secret are left out, with a warning.
    pub fn build(
        &self,
        who: &str,
        inherit: &[String],
        set: &BTreeMap<String, String>,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Vec<(String, String)> {
        let mut env: BTreeMap<String, String> = BTreeMap::new();
        for name in BASE_ENV
            .iter()
            .copied()
            .chain(inherit.iter().map(String::as_str))
        {
            let Some(value) = lookup(name) else {
                continue;
            };
            if self.token_vars.contains(name) {
                tracing::warn!(
                    target = who,
                    variable = name,
                    "not passing on an environment variable that holds a role token"
                );
                continue;
            }
            if self.secret_values.contains(&value) {
                tracing::warn!(
                    target = who,
                    variable = name,
                    "not passing on an environment variable that holds an alert channel's secret"
                );
                continue;
            }
            env.insert(name.to_owned(), value);
        }
        env.extend(set.iter().map(|(k, v)| (k.clone(), v.clone())));
        env.into_iter().collect()
    }
}

/// hale's own environment variable `name`, when it is set and valid Unicode.
pub fn from_hale(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(json: serde_json::Value) -> Config {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn only_the_base_the_inherited_and_the_set_variables_are_passed_and_never_a_secret() {
        let policy = EnvPolicy::from_config(&config(serde_json::json!({
            "auth": {"tokens": {"operate": {"env": "OP_TOKEN"}}},
            "alerts": {"channels": {"webhook": {"url": "https://hooks.example/s3cret"}}}
        })));
        let hale_env = |name: &str| {
            match name {
                "PATH" => Some("/usr/bin"),
                "HOME" => Some("/home/hale"),
                "OP_TOKEN" => Some("tok"),
                "HOOK" => Some("https://hooks.example/s3cret"),
                "PGHOST" => Some("db"),
                "UNLISTED" => Some("x"),
                _ => None,
            }
            .map(str::to_owned)
        };
        let set = BTreeMap::from([("PGHOST".to_owned(), "override".to_owned())]);
        let inherit = ["OP_TOKEN", "HOOK", "PGHOST", "MISSING"].map(str::to_owned);
        let env = policy.build("api", &inherit, &set, hale_env);
        assert_eq!(
            env,
            [
                ("HOME".to_owned(), "/home/hale".to_owned()),
                ("PATH".to_owned(), "/usr/bin".to_owned()),
                ("PGHOST".to_owned(), "override".to_owned()),
            ]
        );
    }
}
