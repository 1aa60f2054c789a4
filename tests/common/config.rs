//! Configs for the tests, built in one place: `TestConfig` (typed, for hale in-process or written to a file)
//! and `target` (one monitored target), so a test says only what differs from the quiet base.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use hale::auth::Role;
use hale::config::{
    AlertsConfig, ChannelsConfig, Config, HealConfig, ListenConfig, MonitorConfig, ServiceName,
    SloConfig, StorageConfig, TargetConfig, TargetHeal, TargetUrl, TokenSource,
};

use super::{any_port, dead_port};

/// A typed config for one test. The base: every service on a free port, no monitored targets (so nothing
/// writes to the database unless the test does), one worker per service, no rate limits (load tests send
/// bursts from one address; the rate limit tests turn them back on).
#[derive(Debug, Clone)]
pub struct TestConfig {
    config: Config,
}

impl Default for TestConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl TestConfig {
    pub fn new() -> Self {
        let mut config = Config {
            listen: ListenConfig {
                health_proxy: any_port(),
                mcp_bridge: any_port(),
                boss_api: any_port(),
            },
            services: Vec::new(),
            ..Config::default()
        };
        config.http.workers = 1;
        config.http.shutdown_timeout_s = 5;
        config.rate_limits.enabled = false;
        // Checks settle into `checks` and the rollups after every flush, so a test reads them at once.
        config.storage.settle_interval_s = 0;
        Self { config }
    }

    /// Adds one monitored target.
    pub fn target(mut self, target: impl Into<TargetConfig>) -> Self {
        self.config
            .services
            .push(std::sync::Arc::new(target.into()));
        self
    }

    /// Adds monitored targets, in order.
    pub fn targets<T: Into<TargetConfig>>(mut self, targets: impl IntoIterator<Item = T>) -> Self {
        self.config
            .services
            .extend(targets.into_iter().map(|t| std::sync::Arc::new(t.into())));
        self
    }

    /// Adds a target for each name, checked every second on a port where nothing listens (always down).
    pub fn down_targets(self, names: &[&str]) -> Self {
        let url = format!("tcp://127.0.0.1:{}", dead_port());
        self.targets(names.iter().map(|name| target(name, &url).every_second()))
    }

    /// Only on-demand checks: no background prober and no cache, so every stored row is one request's.
    pub fn on_demand_only(self) -> Self {
        self.monitor(|monitor| {
            monitor.background_checks = false;
            monitor.cache_ttl_s = 0;
        })
    }

    /// Heals verify for `timeout_s`, one probe every `interval_ms`.
    pub fn heal_verify(self, timeout_s: u64, interval_ms: u64) -> Self {
        self.heal(|heal| {
            heal.verify_timeout_s = timeout_s;
            heal.verify_interval_ms = interval_ms;
        })
    }

    /// The writer flushes every `ms`: on a test clock that moves far faster than real time, rows land
    /// within milliseconds.
    pub fn flush_every_ms(self, ms: u64) -> Self {
        self.storage(|storage| storage.flush_interval_ms = ms)
    }

    /// The alert rules, as they would be written in the config file.
    pub fn alert_rules(mut self, rules: serde_json::Value) -> Self {
        self.config.alerts.rules =
            serde_json::from_value(rules).unwrap_or_else(|e| panic!("invalid alert rules: {e}"));
        self
    }

    /// A token for `role`, read by hale from the environment variable `env` (set here to `token`). Each
    /// test names its own variable: the environment is shared by the tests of one binary.
    pub fn token(mut self, role: Role, env: &str, token: &str) -> Self {
        std::env::set_var(env, token);
        let source = Some(TokenSource::Env(env.to_owned()));
        let tokens = &mut self.config.auth.tokens;
        match role {
            Role::Read => tokens.read = source,
            Role::Operate => tokens.operate = source,
            Role::Admin => tokens.admin = source,
        }
        self
    }

    /// Read, operate and admin tokens from the variables `PREFIX_READ`, `PREFIX_OPERATE`, `PREFIX_ADMIN`.
    pub fn tokens(self, prefix: &str, read: &str, operate: &str, admin: &str) -> Self {
        self.token(Role::Read, &format!("{prefix}_READ"), read)
            .token(Role::Operate, &format!("{prefix}_OPERATE"), operate)
            .token(Role::Admin, &format!("{prefix}_ADMIN"), admin)
    }

    pub fn monitor(mut self, edit: impl FnOnce(&mut MonitorConfig)) -> Self {
        edit(&mut self.config.monitor);
        self
    }

    pub fn heal(mut self, edit: impl FnOnce(&mut HealConfig)) -> Self {
        edit(&mut self.config.heal);
        self
    }

    pub fn alerts(mut self, edit: impl FnOnce(&mut AlertsConfig)) -> Self {
        edit(&mut self.config.alerts);
        self
    }

    pub fn channels(mut self, channels: ChannelsConfig) -> Self {
        self.config.alerts.channels = channels;
        self
    }

    pub fn slo(mut self, edit: impl FnOnce(&mut SloConfig)) -> Self {
        edit(&mut self.config.slo);
        self
    }

    pub fn storage(mut self, edit: impl FnOnce(&mut StorageConfig)) -> Self {
        edit(&mut self.config.storage);
        self
    }

    /// Any other change, for what no method above names.
    pub fn with(mut self, edit: impl FnOnce(&mut Config)) -> Self {
        edit(&mut self.config);
        self
    }

    pub fn build(self) -> Config {
        self.config
    }

    /// Writes the config as JSON to `dir/config.json` and returns the path, for `hale serve --config`.
    /// Secrets serialise redacted, so a config with channel secrets can only be used in-process.
    pub fn write(&self, dir: &Path) -> PathBuf {
        let text = serde_json::to_string_pretty(&self.config).expect("a config serialises");
        assert!(
            !text.contains(hale::config::REDACTED),
            "this config holds a secret, which serialises redacted: use it in-process"
        );
        let path = dir.join("config.json");
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        path
    }
}

/// The base of `TestConfig`, for a test that changes its fields directly.
pub fn test_config() -> Config {
    TestConfig::new().build()
}

/// The same base as JSON, for a child process (`hale serve --config FILE`).
pub fn test_config_json() -> serde_json::Value {
    serde_json::json!({
        "listen": {
            "health_proxy": "127.0.0.1:0",
            "mcp_bridge": "127.0.0.1:0",
            "boss_api": "127.0.0.1:0"
        },
        "http": { "workers": 1, "shutdown_timeout_s": 5 },
        "rate_limits": { "enabled": false },
        // As `TestConfig`: checks settle after every flush, so a test reads rollups and SLOs at once.
        "storage": { "settle_interval_s": 0 },
        "services": []
    })
}

/// `test_config_json()` with `n` TCP targets on one local port, each checked every second.
pub fn tcp_targets_config(target: SocketAddr, n: usize) -> serde_json::Value {
    let mut config = test_config_json();
    config["services"] = (0..n)
        .map(|i| {
            serde_json::json!({
                "name": format!("t{i}"),
                "url": format!("tcp://{target}"),
                "interval_s": 1,
                "timeout_ms": 500
            })
        })
        .collect();
    config
}

/// One monitored target, with the config's defaults until a method says otherwise.
#[derive(Debug, Clone)]
pub struct Target(TargetConfig);

/// A target named `name` probed at `url` (both must be valid: they are the test's own).
pub fn target(name: &str, url: &str) -> Target {
    Target(TargetConfig::new(
        ServiceName::parse(name).unwrap_or_else(|e| panic!("target name {name:?}: {e}")),
        TargetUrl::parse(url).unwrap_or_else(|e| panic!("target url {url:?}: {e}")),
    ))
}

/// A target that hale runs itself (`run` is the target's `run` block). Its probe goes to a closed port, once
/// an hour: such tests are about the child, not the checks.
pub fn supervised(name: &str, run: serde_json::Value) -> Target {
    target(name, "tcp://127.0.0.1:1")
        .interval_s(3_600)
        .timeout_ms(200)
        .with(|target| {
            target.run = Some(serde_json::from_value(run).expect("a valid run block"));
        })
}

impl Target {
    /// Checked every second with a 500 ms timeout: the pace of the tests on a test clock.
    pub fn every_second(self) -> Self {
        self.interval_s(1).timeout_ms(500)
    }

    pub fn interval_s(mut self, seconds: u64) -> Self {
        self.0.interval_s = seconds;
        self
    }

    pub fn timeout_ms(mut self, ms: u64) -> Self {
        self.0.timeout_ms = ms;
        self
    }

    /// Healed by running `argv`, given 5 s.
    pub fn heal_command(self, argv: &[&str]) -> Self {
        self.with(|target| {
            target.heal = Some(Box::new(TargetHeal {
                command: Some(argv.iter().map(|w| (*w).to_owned()).collect()),
                command_timeout_s: 5,
                ..TargetHeal::default()
            }));
        })
    }

    /// Any other change to the target.
    pub fn with(mut self, edit: impl FnOnce(&mut TargetConfig)) -> Self {
        edit(&mut self.0);
        self
    }

    pub fn build(self) -> TargetConfig {
        self.0
    }
}

impl From<Target> for TargetConfig {
    fn from(target: Target) -> Self {
        target.0
    }
}
