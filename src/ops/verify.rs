//! `hale verify`: the checks of a deployment as one command. For a config (and, unless `--offline`, the hale
//! running with it) it checks the config, the read token, the database, every service's `/health` and
//! `/metrics` (the Prometheus text read by `prom_text`, and by `promtool check metrics` when installed), that
//! `/health/all` reaches every target, that breakers and the writer are sane, hale's own resources, and that
//! the exported files are what this binary generates. The result is a `Report`: PASS only when no check
//! failed (a skipped check is not a failure), each failure with its details and what to do about it.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;

use crate::answers::HealthResponse;
use crate::breaker::BreakerState;
use crate::config::{Config, TargetUrl};
use crate::export::{self, units, Generated};
use crate::kind::ServiceKind;
use crate::markdown::cell;
use crate::metrics::names;
use crate::ops::prom_text::{self, Exposition};
use crate::ops::{base_url, listen_addr, target_of_breaker, HaleClient, ReadToken};
use crate::records::Outcome;
use crate::store::Store;

/// How long one request to hale may take (`/health/all` gets more: see `health_all_timeout`).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Writer rows waiting above this mean the writer is falling behind (its queue holds 65,536).
const WRITER_QUEUE_LIMIT: usize = 10_000;
/// Open files at or above this share of the limit fail the self-watch check (the open-file watch warns there).
const OPEN_FILES_FAIL_PERCENT: f64 = 90.0;

/// What `hale verify` looks at.
#[derive(Debug, Clone)]
pub struct VerifyOptions {
    pub config: PathBuf,
    pub db: PathBuf,
    /// The folder that holds the exported files (`openapi/`, `dashboards/`, `alerts/`, `deploy/`).
    pub exports: PathBuf,
    /// Verify only this service of the running hale (as started with `serve --only`).
    pub only: Option<ServiceKind>,
    /// Do not call a running hale: config, database and exports only.
    pub offline: bool,
    pub promtool: Promtool,
    /// Each service's OpenAPI document as `hale export openapi` writes it. The documents are built from
    /// the HTTP routes, which live above `ops`, so the command line hands the builder in.
    pub openapi: fn(ServiceKind) -> Result<String, String>,
}

/// Whether `promtool check metrics` reads the metrics too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Promtool {
    /// `promtool` when it is on the PATH.
    Auto,
    Path(PathBuf),
    Off,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    Fail,
    /// Not checked, and not a failure: the summary says why.
    Skip,
}

impl Verdict {
    pub fn label(self) -> &'static str {
        match self {
            Self::Pass => "PASS",
            Self::Fail => "FAIL",
            Self::Skip => "SKIP",
        }
    }
}

/// One check and its result.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Check {
    pub name: String,
    pub result: Verdict,
    /// One line: what was found.
    pub summary: String,
    /// The evidence, one item per line.
    pub details: Vec<String>,
    /// For a failure: what to do about it.
    pub remedy: Option<String>,
}

impl Check {
    fn pass(name: impl Into<String>, summary: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            result: Verdict::Pass,
            summary: summary.into(),
            details: Vec::new(),
            remedy: None,
        }
    }

    fn fail(
        name: impl Into<String>,
        summary: impl Into<String>,
        remedy: impl Into<String>,
    ) -> Self {
        Self {
            name: name.into(),
            result: Verdict::Fail,
            summary: summary.into(),
            details: Vec::new(),
            remedy: Some(remedy.into()),
        }
    }

    fn skip(name: impl Into<String>, summary: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            result: Verdict::Skip,
            summary: summary.into(),
            details: Vec::new(),
            remedy: None,
        }
    }

    fn details(mut self, details: impl IntoIterator<Item = String>) -> Self {
        self.details.extend(details);
        self
    }
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Counts {
    pub passed: usize,
    pub failed: usize,
    pub skipped: usize,
}

/// The whole verification, as written to Markdown and JSON.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// `pass` when no check failed.
    pub result: Verdict,
    pub hale_version: String,
    pub generated_at: DateTime<Utc>,
    pub config: String,
    pub database: String,
    pub exports: String,
    /// How the Prometheus text was checked.
    pub metrics_checked_with: String,
    pub counts: Counts,
    pub checks: Vec<Check>,
}

impl Report {
    fn new(options: &VerifyOptions, metrics_checked_with: String, checks: Vec<Check>) -> Self {
        let count = |verdict| checks.iter().filter(|c| c.result == verdict).count();
        let counts = Counts {
            passed: count(Verdict::Pass),
            failed: count(Verdict::Fail),
            skipped: count(Verdict::Skip),
        };
        Self {
            result: if counts.failed == 0 {
                Verdict::Pass
            } else {
                Verdict::Fail
            },
            hale_version: env!("CARGO_PKG_VERSION").to_owned(),
            generated_at: Utc::now(),
            config: options.config.display().to_string(),
            database: options.db.display().to_string(),
            exports: options.exports.display().to_string(),
            metrics_checked_with,
            counts,
            checks,
        }
    }

    pub fn passed(&self) -> bool {
        self.result == Verdict::Pass
    }

    /// The check of this name, if it ran.
    pub fn check(&self, name: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.name == name)
    }

    pub fn to_json(&self) -> String {
        // A tree of strings, numbers and enums: encoding cannot fail.
        serde_json::to_string_pretty(self).expect("the report encodes as JSON") + "\n"
    }

    pub fn to_markdown(&self) -> String {
        let mut md = String::new();
        let _ = writeln!(md, "# hale verify: {}\n", self.result.label());
        let _ = writeln!(
            md,
            "- hale {}, {}",
            self.hale_version,
            self.generated_at.format("%Y-%m-%d %H:%M:%S UTC")
        );
        let _ = writeln!(
            md,
            "- config `{}`, database `{}`, exported files in `{}`",
            self.config, self.database, self.exports
        );
        let _ = writeln!(
            md,
            "- metrics (Prometheus text format): {}",
            self.metrics_checked_with
        );
        let _ = writeln!(
            md,
            "- {} checks: {} passed, {} failed, {} skipped (a skip is not a failure)\n",
            self.checks.len(),
            self.counts.passed,
            self.counts.failed,
            self.counts.skipped
        );
        md.push_str("| result | check | summary |\n|---|---|---|\n");
        for check in &self.checks {
            let _ = writeln!(
                md,
                "| {} | {} | {} |",
                check.result.label(),
                cell(&check.name),
                cell(&check.summary)
            );
        }
        let failures: Vec<&Check> = self
            .checks
            .iter()
            .filter(|c| c.result == Verdict::Fail)
            .collect();
        if !failures.is_empty() {
            md.push_str("\n## Failures\n");
            for check in failures {
                let _ = writeln!(md, "\n### FAIL: {}\n", check.name);
                let _ = writeln!(md, "**What failed:** {}\n", check.summary);
                if !check.details.is_empty() {
                    md.push_str("**Details:**\n\n");
                    for line in &check.details {
                        let _ = writeln!(md, "- {line}");
                    }
                    md.push('\n');
                }
                if let Some(remedy) = &check.remedy {
                    let _ = writeln!(md, "**What to do:** {remedy}");
                }
            }
        }
        let skipped: Vec<&Check> = self
            .checks
            .iter()
            .filter(|c| c.result == Verdict::Skip)
            .collect();
        if !skipped.is_empty() {
            md.push_str("\n## Skipped\n\n");
            for check in skipped {
                let _ = writeln!(md, "- **{}**: {}", check.name, check.summary);
            }
        }
        md
    }
}

/// Runs every check. Never fails: whatever could not be checked is a failed or skipped check in the report.
pub async fn verify(options: &VerifyOptions) -> Report {
    let mut checks = Vec::new();
    let config = match Config::load(&options.config) {
        Ok(config) => {
            checks.push(Check::pass(
                "config",
                format!(
                    "valid: {} targets; health-proxy {}, mcp-bridge {}, boss-api {}",
                    config.services.len(),
                    config.listen.health_proxy,
                    config.listen.mcp_bridge,
                    config.listen.boss_api
                ),
            ));
            Some(config)
        }
        Err(e) => {
            checks.push(Check::fail(
                "config",
                format!("{} is not a usable config", options.config.display()),
                format!(
                    "fix the value at the path the error names (`hale check-config --config {}` shows the same \
                     error), or pass the config hale runs with as --config or HALE_CONFIG",
                    options.config.display()
                ),
            )
            .details([e.to_string()]));
            None
        }
    };
    let store = check_database(options, &mut checks).await;
    let promtool = match &options.promtool {
        Promtool::Off => None,
        Promtool::Path(path) => Some(path.clone()),
        Promtool::Auto => find_on_path("promtool"),
    };
    let asks_hale = config.is_some() && !options.offline;
    let metrics_checked_with = match (&promtool, &options.promtool) {
        _ if !asks_hale => "not checked: no running hale was asked".to_owned(),
        (Some(path), _) => format!(
            "hale's own parser of the text format and `{} check metrics`",
            path.display()
        ),
        (None, Promtool::Off) => {
            "hale's own parser of the text format (promtool not used: --no-promtool)".to_owned()
        }
        (None, _) => {
            "hale's own parser of the text format (promtool was not found; it is optional)"
                .to_owned()
        }
    };
    match (&config, options.offline) {
        (_, true) => checks.push(Check::skip(
            "running hale",
            "not checked: --offline (config, database and exported files only)",
        )),
        (None, false) => checks.push(Check::skip(
            "running hale",
            "not checked: the config is not usable, so hale's addresses are unknown",
        )),
        (Some(config), false) => {
            let mut online = Online {
                config,
                options,
                promtool: promtool.as_deref(),
                store: store.as_ref(),
                checks: &mut checks,
            };
            online.run().await;
        }
    }
    if let Some(store) = store {
        store.close().await;
    }
    check_exports(options, config.as_ref(), &mut checks);
    Report::new(options, metrics_checked_with, checks)
}

async fn check_database(options: &VerifyOptions, checks: &mut Vec<Check>) -> Option<Store> {
    const NAME: &str = "database";
    let shown = options.db.display();
    let store = match Store::open_read_only(&options.db).await {
        Ok(store) => store,
        Err(crate::store::StoreError::NotFound { .. }) if options.offline => {
            checks.push(Check::skip(
                NAME,
                format!("no database at {shown} yet: hale creates it when it first starts"),
            ));
            return None;
        }
        Err(e) => {
            checks.push(
                Check::fail(
                    NAME,
                    format!("cannot read the database {shown}"),
                    "pass the file hale runs with as --db or HALE_DB; if it is damaged, restore a backup \
                     (operations.md, The database)",
                )
                .details([e.to_string()]),
            );
            return None;
        }
    };
    if let Err(e) = store.quick_check().await {
        checks.push(
            Check::fail(
                NAME,
                format!("{shown} is damaged"),
                "stop hale, move the file aside and restore a backup (operations.md, The database)",
            )
            .details([e.to_string()]),
        );
        return Some(store);
    }
    let files = crate::store::DatabaseFiles::of(&options.db);
    let size = format!(
        "{} in the file, {} in the write-ahead log",
        bytes(files.db_bytes.unwrap_or(0)),
        bytes(files.wal_bytes.unwrap_or(0))
    );
    match store.schema().await {
        Ok(schema) if schema.is_current() => checks.push(Check::pass(
            NAME,
            format!(
                "{shown}: sound (quick_check ok), schema at migration {}; {size}",
                schema.applied
            ),
        )),
        Ok(schema) => {
            let (summary, remedy) = if let Some(failed) = schema.failed {
                (
                    format!("{shown}: migration {failed} started but did not finish"),
                    "restore the backup taken before the upgrade, then start hale again",
                )
            } else if schema.applied > schema.known {
                (
                    format!(
                        "{shown} was written by a newer hale (migration {}; this hale knows up to {})",
                        schema.applied, schema.known
                    ),
                    "run the hale version that wrote it, or verify with that version's binary",
                )
            } else {
                (
                    format!(
                        "{shown} is at migration {} and this hale's schema is at {}",
                        schema.applied, schema.known
                    ),
                    "start this hale on it once: it applies the missing migrations at start",
                )
            };
            checks.push(Check::fail(NAME, summary, remedy));
        }
        Err(e) => checks.push(
            Check::fail(
                NAME,
                format!("cannot read the schema of {shown}"),
                "check the file is hale's database and readable by this user",
            )
            .details([e.to_string()]),
        ),
    }
    Some(store)
}

/// The checks against the running hale.
struct Online<'a> {
    config: &'a Config,
    options: &'a VerifyOptions,
    promtool: Option<&'a Path>,
    store: Option<&'a Store>,
    checks: &'a mut Vec<Check>,
}

/// The parts of `/health/all` and `/services` that verify reads.
#[derive(Debug, Deserialize)]
struct AllHealthAnswer {
    targets: Vec<TargetAnswer>,
}

#[derive(Debug, Deserialize)]
struct TargetAnswer {
    service: String,
    outcome: Outcome,
    status: Option<u16>,
    latency_ms: Option<f64>,
    checked_at: DateTime<Utc>,
    cached: bool,
    breaker: BreakerState,
    error: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ServiceAnswer {
    name: String,
    breaker: BreakerAnswer,
}

#[derive(Debug, Deserialize)]
struct BreakerAnswer {
    state: BreakerState,
    retry_at: Option<DateTime<Utc>>,
}

impl Online<'_> {
    async fn run(&mut self) {
        let client = match HaleClient::new(self.config, REQUEST_TIMEOUT) {
            Ok(client) => client,
            Err(e) => {
                self.checks.push(Check::fail(
                    "running hale",
                    e,
                    "this is a fault of hale itself: report it",
                ));
                return;
            }
        };
        self.checks.push(match &client.token {
            ReadToken::NotConfigured => Check::skip(
                "read token",
                "auth.tokens.read is not set: requests carry no token (enough for a hale on loopback)",
            ),
            ReadToken::Loaded { source } => {
                Check::pass("read token", format!("loaded from {source} and sent"))
            }
            ReadToken::Failed(e) => Check::fail(
                "read token",
                "the read token cannot be loaded; requests go without it",
                "set the environment variable or fix the file that auth.tokens.read names (the token \
                 itself is never written in the config)",
            )
            .details([e.clone()]),
        });
        let kinds: Vec<ServiceKind> = ServiceKind::ALL
            .into_iter()
            .filter(|k| self.options.only.is_none_or(|o| o == *k))
            .collect();
        let mut health: HashMap<ServiceKind, HealthResponse> = HashMap::new();
        let mut metrics: HashMap<ServiceKind, Exposition> = HashMap::new();
        for kind in kinds {
            let base = match base_url(listen_addr(self.config, kind)) {
                Ok(base) => base,
                Err(e) => {
                    self.checks.push(Check::fail(
                        format!("{kind} /health"),
                        e,
                        "give the service a fixed port in the config's listen section",
                    ));
                    continue;
                }
            };
            if let Some(answer) = self.check_health(&client, kind, &base).await {
                health.insert(kind, answer);
                if let Some(exposition) = self.check_metrics(&client, kind, &base).await {
                    metrics.insert(kind, exposition);
                }
            } else {
                self.checks.push(Check::skip(
                    format!("{kind} /metrics"),
                    format!("not checked: {kind} /health failed"),
                ));
            }
        }
        let proxy_runs = health.contains_key(&ServiceKind::HealthProxy);
        if proxy_runs {
            // The address is known: the Health Proxy answered on it.
            let base = base_url(self.config.listen.health_proxy).unwrap_or_default();
            self.check_targets(&client, &base).await;
            self.check_breakers(&client, &base).await;
        } else {
            let why = if self
                .options
                .only
                .is_some_and(|o| o != ServiceKind::HealthProxy)
            {
                "not checked: only another service is verified (--only)"
            } else {
                "not checked: the Health Proxy does not answer"
            };
            self.checks.push(Check::skip("targets", why));
            self.checks.push(Check::skip("breakers", why));
        }
        let writer_view = health
            .get(&ServiceKind::HealthProxy)
            .or_else(|| health.values().next());
        match writer_view {
            Some(answer) => self.check_writer(answer),
            None => self.checks.push(Check::skip(
                "writer",
                "not checked: no service of hale answers",
            )),
        }
        let process_view = metrics
            .get(&ServiceKind::HealthProxy)
            .or_else(|| metrics.values().next());
        match process_view {
            Some(exposition) => self.check_self_watch(exposition),
            None => self.checks.push(Check::skip(
                "self-watch",
                "not checked: no service of hale served its metrics",
            )),
        }
    }

    async fn check_health(
        &mut self,
        client: &HaleClient,
        kind: ServiceKind,
        base: &str,
    ) -> Option<HealthResponse> {
        let name = format!("{kind} /health");
        let url = format!("{base}/health");
        let answer = match client.get(&url, None).await {
            Ok(answer) => answer,
            Err(e) => {
                self.checks.push(Check::fail(
                    name,
                    format!("{kind} does not answer at {base}"),
                    format!(
                        "start hale with this config (`hale serve --config {}`), or check that it runs on the \
                         address the config's listen section gives; its log says why it stopped",
                        self.options.config.display()
                    ),
                )
                .details([e]));
                return None;
            }
        };
        if matches!(answer.status, 401 | 403) {
            self.checks.push(Check::fail(
                name,
                format!("{kind} refused the request with {}", answer.status),
                "configure auth.tokens.read with the read token of the running hale (an environment variable \
                 or a file) so verify can send it",
            ));
            return None;
        }
        let parsed: HealthResponse = match serde_json::from_str(&answer.body) {
            Ok(parsed) => parsed,
            Err(e) => {
                self.checks.push(Check::fail(
                    name,
                    format!(
                        "{base}/health answered {} with something that is not hale's health answer",
                        answer.status
                    ),
                    "another program listens on this address: stop it, or move hale to a free port",
                )
                .details([format!("{e}"), format!("body: {}", shorten(&answer.body, 200))]));
                return None;
            }
        };
        let details = &parsed.details;
        let mut evidence = vec![
            format!("HTTP {}", answer.status),
            format!(
                "service {}, version {}, up {}",
                details.service,
                details.version,
                duration(details.uptime_s)
            ),
            format!(
                "database {}, writer {}, writer queue {}",
                details.database, details.writer, details.writer_queue
            ),
        ];
        if let Some(error) = &details.database_error {
            evidence.push(format!("database error: {error}"));
        }
        let version = env!("CARGO_PKG_VERSION");
        let check = if details.service != kind.as_str() {
            Check::fail(
                &name,
                format!("{base} is hale's {}, not its {kind}", details.service),
                "the listen addresses of the running hale differ from this config: verify with the config it \
                 runs with",
            )
        } else if !parsed.ok || answer.status != 200 {
            Check::fail(
                &name,
                format!(
                    "{kind} answers {} and cannot do its job: database {}, writer {}",
                    answer.status, details.database, details.writer
                ),
                database_remedy(&details.database),
            )
        } else if details.version != version {
            Check::fail(
                &name,
                format!("{kind} runs hale {}, this binary is {version}", details.version),
                "restart hale so the running version is the verified one (or verify with the binary that runs)",
            )
        } else {
            Check::pass(
                &name,
                format!(
                    "up at {base}, hale {}, up {}",
                    details.version,
                    duration(details.uptime_s)
                ),
            )
        };
        self.checks.push(check.details(evidence));
        // A service that answered as hale is worth reading the metrics of, even when unhealthy.
        (details.service == kind.as_str()).then_some(parsed)
    }

    async fn check_metrics(
        &mut self,
        client: &HaleClient,
        kind: ServiceKind,
        base: &str,
    ) -> Option<Exposition> {
        let name = format!("{kind} /metrics");
        let url = format!("{base}/metrics");
        let answer = match client.get(&url, None).await {
            Ok(answer) if answer.status == 200 => answer,
            Ok(answer) => {
                self.checks.push(
                    Check::fail(
                        name,
                        format!("{url} answered {}", answer.status),
                        "look for `request failed` with route /metrics in hale's log",
                    )
                    .details([shorten(&answer.body, 300)]),
                );
                return None;
            }
            Err(e) => {
                self.checks.push(
                    Check::fail(
                        name,
                        format!("{url} did not answer"),
                        "see the /health check of this service",
                    )
                    .details([e]),
                );
                return None;
            }
        };
        let mut problems = Vec::new();
        if !answer.content_type.starts_with("text/plain")
            || !answer.content_type.contains("version=0.0.4")
        {
            problems.push(format!(
                "Content-Type is {:?}, not the text format's text/plain; version=0.0.4",
                answer.content_type
            ));
        }
        let exposition = match prom_text::parse(&answer.body) {
            Ok(exposition) => Some(exposition),
            Err(e) => {
                problems.push(format!("the text format does not parse: {e}"));
                None
            }
        };
        if let Some(exposition) = &exposition {
            if exposition.value(names::SERVICE_UP, &[(names::LABEL_SERVICE, kind.as_str())])
                != Some(1.0)
            {
                problems.push(format!("service_up{{service=\"{kind}\"}} is not 1"));
            }
            let mut expected = vec![names::SERVICE_UP, names::HTTP_REQUESTS_TOTAL];
            if cfg!(target_os = "linux") {
                expected.extend([
                    names::PROCESS_RESIDENT_MEMORY_BYTES,
                    names::PROCESS_OPEN_FDS,
                ]);
            }
            if kind == ServiceKind::HealthProxy {
                expected.extend([names::STORE_QUEUE_DEPTH, names::STORE_ROWS_WRITTEN_TOTAL]);
            }
            for family in expected {
                if !exposition.has_family(family) {
                    problems.push(format!("the metric {family} is missing"));
                }
            }
        }
        if let Some(promtool) = self.promtool {
            match promtool_check(promtool, &answer.body).await {
                Ok(None) => {}
                Ok(Some(report)) => {
                    problems.push(format!("promtool check metrics: {}", shorten(&report, 600)))
                }
                Err(e) => problems.push(e),
            }
        }
        let families = exposition.as_ref().map_or(0, |e| e.types.len());
        let samples = exposition.as_ref().map_or(0, |e| e.samples.len());
        let checked = if self.promtool.is_some() {
            "parser and promtool"
        } else {
            "parser"
        };
        self.checks.push(if problems.is_empty() {
            Check::pass(
                name,
                format!("{families} metric families, {samples} samples; the text format is valid ({checked})"),
            )
        } else {
            Check::fail(
                name,
                format!("{kind}'s metrics are not what a Prometheus scrape expects: {}", problems[0]),
                "a scrape of this service would fail or miss series: report it with the details (a fault of hale)",
            )
            .details(problems)
        });
        exposition
    }

    async fn check_targets(&mut self, client: &HaleClient, base: &str) {
        let url = format!("{base}/health/all");
        let answer = match client.get(&url, Some(self.health_all_timeout())).await {
            Ok(answer) if matches!(answer.status, 200 | 503) => answer,
            Ok(answer) => {
                self.checks.push(
                    Check::fail(
                        "targets",
                        format!("{url} answered {}", answer.status),
                        "look for `request failed` with route /health/all in hale's log",
                    )
                    .details([shorten(&answer.body, 300)]),
                );
                return;
            }
            Err(e) => {
                self.checks.push(Check::fail(
                    "targets",
                    format!("{url} did not answer"),
                    "a check of every target is bounded by the longest timeout_ms: see the Health Proxy's log",
                )
                .details([e]));
                return;
            }
        };
        let all: AllHealthAnswer = match serde_json::from_str(&answer.body) {
            Ok(all) => all,
            Err(e) => {
                self.checks.push(
                    Check::fail(
                        "targets",
                        format!("{url} is not hale's /health/all answer"),
                        "verify with the binary of the running hale",
                    )
                    .details([e.to_string()]),
                );
                return;
            }
        };
        if self.config.services.is_empty() {
            self.checks
                .push(Check::skip("targets", "the config has no targets"));
        }
        let by_name: HashMap<&str, &TargetAnswer> = all
            .targets
            .iter()
            .map(|t| (t.service.as_str(), t))
            .collect();
        for (index, target) in self.config.services.iter().enumerate() {
            let name = format!("target {}", target.name);
            let url = target.url.redacted();
            let Some(found) = by_name.get(target.name.as_str()) else {
                self.checks.push(Check::fail(
                    name,
                    format!("the running hale does not monitor {}", target.name),
                    format!(
                        "hale runs with another config: restart it with {} or verify with the config it runs with",
                        self.options.config.display()
                    ),
                ));
                continue;
            };
            let mut details = vec![
                format!("url {url}"),
                format!(
                    "outcome {}{}{}",
                    found.outcome.as_str(),
                    found
                        .status
                        .map(|s| format!(", HTTP {s}"))
                        .unwrap_or_default(),
                    found
                        .latency_ms
                        .map(|l| format!(", {l:.1} ms"))
                        .unwrap_or_default()
                ),
                format!(
                    "checked at {}{}",
                    found.checked_at.format("%Y-%m-%d %H:%M:%S UTC"),
                    if found.cached {
                        " (a recent success, reused)"
                    } else {
                        ""
                    }
                ),
                format!("breaker {}", found.breaker.as_str()),
            ];
            if let Some(error) = &found.error {
                details.push(format!("error: {error}"));
            }
            let at = format!("services[{index}]");
            let check = match found.outcome {
                Outcome::Up => Check::pass(
                    name,
                    format!(
                        "up{}{}",
                        found.status.map(|s| format!(": HTTP {s}")).unwrap_or_default(),
                        found.latency_ms.map(|l| format!(" in {l:.1} ms")).unwrap_or_default()
                    ),
                ),
                Outcome::Down => Check::fail(
                    name,
                    format!(
                        "{} is down at {url}: {}",
                        target.name,
                        found.error.clone().unwrap_or_else(|| "not the expected answer".to_owned())
                    ),
                    if let TargetUrl::Mcp { server } = &target.url {
                        format!(
                            "hale is not connected to the MCP server {server}: GET /servers on the MCP WebBridge \
                             shows its state, last error and stderr; fix its entry in mcp_servers or start it"
                        )
                    } else if target.url.is_tcp() {
                        format!(
                            "nothing accepts connections at {url}: start the service, or fix {at}.url if it moved"
                        )
                    } else {
                        format!(
                            "the target refused the connection or answered other than expected: check that it \
                             runs and listens at {url}, and that {at}.expected_status and {at}.body match what \
                             it answers"
                        )
                    },
                ),
                Outcome::Timeout => Check::fail(
                    name,
                    format!("{} did not answer within {} ms", target.name, target.timeout_ms),
                    format!(
                        "check that the target runs and is not overloaded; if it is just slow, raise \
                         {at}.timeout_ms"
                    ),
                ),
                Outcome::CircuitOpen => Check::fail(
                    name,
                    format!("{} was not probed: its circuit breaker is open after repeated failures", target.name),
                    "fix the target; hale lets one trial check through at the breaker's retry time and closes \
                     it after breaker.success_threshold successes (see the breakers check)",
                ),
                Outcome::Error => Check::fail(
                    name,
                    format!(
                        "{} could not be checked: {}",
                        target.name,
                        found.error.clone().unwrap_or_default()
                    ),
                    format!(
                        "the check itself failed (name resolution, TLS, a malformed answer): fix {at}.url or \
                         the target's TLS"
                    ),
                ),
            };
            self.checks.push(check.details(details));
        }
        let unknown: Vec<&str> = all
            .targets
            .iter()
            .map(|t| t.service.as_str())
            .filter(|name| {
                !self
                    .config
                    .services
                    .iter()
                    .any(|s| s.name.as_str() == *name)
            })
            .collect();
        if !unknown.is_empty() {
            self.checks.push(Check::fail(
                "targets",
                format!("the running hale monitors targets this config does not have: {}", unknown.join(", ")),
                format!(
                    "hale runs with another config: restart it with {} or verify with the config it runs with",
                    self.options.config.display()
                ),
            ));
        }
    }

    /// Long enough for one round of probes of every target (each bounded by its timeout) per
    /// `max_in_flight` targets, plus a margin; at most two minutes.
    fn health_all_timeout(&self) -> Duration {
        let longest = self
            .config
            .services
            .iter()
            .map(|s| s.timeout_ms)
            .max()
            .unwrap_or(0);
        let rounds = self
            .config
            .services
            .len()
            .div_ceil(self.config.monitor.max_in_flight.max(1)) as u64;
        (Duration::from_millis(longest * rounds.max(1)) + REQUEST_TIMEOUT)
            .min(Duration::from_secs(120))
    }

    async fn check_breakers(&mut self, client: &HaleClient, base: &str) {
        const NAME: &str = "breakers";
        let url = format!("{base}/services");
        let running: Vec<ServiceAnswer> = match client.get(&url, None).await {
            Ok(answer) if answer.status == 200 => match serde_json::from_str(&answer.body) {
                Ok(views) => views,
                Err(e) => {
                    self.checks.push(
                        Check::fail(
                            NAME,
                            format!("{url} is not hale's /services answer"),
                            "verify with the binary of the running hale",
                        )
                        .details([e.to_string()]),
                    );
                    return;
                }
            },
            Ok(answer) => {
                self.checks.push(Check::fail(
                    NAME,
                    format!("{url} answered {}", answer.status),
                    "look for `request failed` with route /services in hale's log",
                ));
                return;
            }
            Err(e) => {
                self.checks.push(
                    Check::fail(
                        NAME,
                        format!("{url} did not answer"),
                        "see the Health Proxy's log",
                    )
                    .details([e]),
                );
                return;
            }
        };
        let mut saved: HashMap<String, BreakerState> = HashMap::new();
        let mut saved_note = "not compared with the database (it could not be read)".to_owned();
        if let Some(store) = self.store {
            match store.load_breakers().await {
                Ok(rows) => {
                    saved = rows
                        .into_iter()
                        .filter_map(|(name, s)| {
                            Some((target_of_breaker(&name)?.to_owned(), s.state))
                        })
                        .collect();
                    saved_note = "the same state is saved in the database".to_owned();
                }
                Err(e) => saved_note = format!("not compared with the database: {e}"),
            }
        }
        let mut open = Vec::new();
        let mut half_open = Vec::new();
        let mut unsaved = Vec::new();
        for view in &running {
            match view.breaker.state {
                BreakerState::Open => open.push(format!(
                    "{} is open{}",
                    view.name,
                    view.breaker
                        .retry_at
                        .map(|t| format!(" until {}", t.format("%Y-%m-%d %H:%M:%S UTC")))
                        .unwrap_or_default()
                )),
                BreakerState::HalfOpen => half_open.push(format!(
                    "{} is half-open (a trial check is due or running)",
                    view.name
                )),
                BreakerState::Closed => {}
            }
            if self.store.is_some() && !saved_note.starts_with("not") {
                // A breaker that never moved may have no row: it is closed.
                let stored = saved
                    .get(&view.name)
                    .copied()
                    .unwrap_or(BreakerState::Closed);
                if stored != view.breaker.state {
                    unsaved.push(format!(
                        "{}: running {}, saved {}",
                        view.name,
                        view.breaker.state.as_str(),
                        stored.as_str()
                    ));
                }
            }
        }
        let closed = running.len() - open.len() - half_open.len();
        let details: Vec<String> = open
            .iter()
            .chain(&half_open)
            .chain(&unsaved)
            .cloned()
            .collect();
        self.checks.push(if !open.is_empty() {
            Check::fail(
                NAME,
                format!("{} of {} breakers open: {}", open.len(), running.len(), open.join("; ")),
                "a breaker opens after breaker.failure_threshold failed checks in a row and stops probes until \
                 its retry time; fix the target (see its target check): the breaker closes after \
                 breaker.success_threshold successful trials",
            )
            .details(details)
        } else if !unsaved.is_empty() {
            Check::fail(
                NAME,
                format!("breaker states in the database differ from the running hale: {}", unsaved.join("; ")),
                "breaker transitions are not being saved, so a restart would forget them: look for `cannot \
                 persist circuit breaker state` in hale's log and check --db is the database hale runs with",
            )
            .details(details)
        } else {
            Check::pass(
                NAME,
                format!(
                    "{closed} closed, {} half-open, 0 open; {saved_note}",
                    half_open.len()
                ),
            )
            .details(details)
        });
    }

    fn check_writer(&mut self, answer: &HealthResponse) {
        const NAME: &str = "writer";
        let details = &answer.details;
        let mut evidence = vec![
            format!("writer {}, queue {}", details.writer, details.writer_queue),
            format!("database {}", details.database),
            format!(
                "last write {}",
                details
                    .last_write_at
                    .map_or("none since start".to_owned(), |t| t
                        .format("%Y-%m-%d %H:%M:%S UTC")
                        .to_string())
            ),
        ];
        if let Some(error) = &details.database_error {
            evidence.push(format!("database error: {error}"));
        }
        // With background checks every target stores a row per interval: a write is due at least that often.
        let shortest = self.config.services.iter().map(|s| s.interval_s).min();
        let due_s =
            shortest.map(|i| 2 * i + self.config.storage.flush_interval_ms.div_ceil(1000) + 5);
        let stale = match (self.config.monitor.background_checks, due_s) {
            (true, Some(due_s)) if details.uptime_s > due_s => match details.last_write_at {
                None => Some(format!(
                    "nothing was written in {} since start",
                    duration(details.uptime_s)
                )),
                Some(at) => {
                    let age = (Utc::now() - at).num_seconds().max(0) as u64;
                    (age > due_s).then(|| {
                        format!(
                            "the last write was {} ago (expected every {} at most)",
                            duration(age),
                            duration(due_s)
                        )
                    })
                }
            },
            _ => None,
        };
        self.checks.push(if details.writer != "running" {
            Check::fail(
                NAME,
                "the check writer has stopped: health checks are no longer stored",
                "restart hale; its log says why the writer stopped",
            )
            .details(evidence)
        } else if details.database != "ok" {
            Check::fail(
                NAME,
                format!("the database does not take writes ({}); checks are held in memory", details.database),
                database_remedy(&details.database),
            )
            .details(evidence)
        } else if details.writer_queue > WRITER_QUEUE_LIMIT {
            Check::fail(
                NAME,
                format!("{} checks wait to be written: the writer is falling behind", details.writer_queue),
                "the disk is too slow for the check rate: raise storage.batch_size, lengthen the targets' \
                 interval_s, or move the database to a faster disk",
            )
            .details(evidence)
        } else if let Some(stale) = stale {
            Check::fail(
                NAME,
                format!("no recent writes: {stale}"),
                "background checks should store a row per target per interval: look for ERROR lines of the \
                 writer or the monitor in hale's log",
            )
            .details(evidence)
        } else {
            Check::pass(
                NAME,
                format!("running, {} checks queued, database ok", details.writer_queue),
            )
            .details(evidence)
        });
    }

    fn check_self_watch(&mut self, exposition: &Exposition) {
        const NAME: &str = "self-watch";
        let value = |name: &str| exposition.value(name, &[]);
        let (Some(rss), Some(open), Some(max)) = (
            value(names::PROCESS_RESIDENT_MEMORY_BYTES),
            value(names::PROCESS_OPEN_FDS),
            value(names::PROCESS_MAX_FDS),
        ) else {
            self.checks.push(if cfg!(target_os = "linux") {
                Check::fail(
                    NAME,
                    "hale does not export process_resident_memory_bytes, process_open_fds and process_max_fds",
                    "run a hale built with the prometheus crate's process feature (this version is)",
                )
            } else {
                Check::skip(NAME, "process metrics exist on Linux only")
            });
            return;
        };
        let queue = value(names::STORE_QUEUE_DEPTH);
        let percent = if max > 0.0 { open * 100.0 / max } else { 0.0 };
        let mut evidence = vec![
            format!("resident memory {}", bytes(rss as u64)),
            format!("open files {open} of {max} ({percent:.1}%)"),
        ];
        if let Some(queue) = queue {
            evidence.push(format!("writer queue {queue}"));
        }
        self.checks.push(if percent >= OPEN_FILES_FAIL_PERCENT {
            Check::fail(
                NAME,
                format!("hale uses {open} of its {max} open files ({percent:.0}%)"),
                "raise the hard open-file limit (LimitNOFILE= in the systemd unit) or lower \
                 monitor.max_in_flight; see operations.md, Open files",
            )
            .details(evidence)
        } else {
            Check::pass(
                NAME,
                format!(
                    "resident memory {}, open files {open} of {max}{}",
                    bytes(rss as u64),
                    queue
                        .map(|q| format!(", writer queue {q}"))
                        .unwrap_or_default()
                ),
            )
            .details(evidence)
        });
    }
}

fn database_remedy(kind: &str) -> String {
    match kind {
        "full" => "free space on the database's disk; writing resumes by itself".to_owned(),
        "read_only" => {
            "make the database file, its folder and filesystem writable again".to_owned()
        }
        "locked" => {
            "another process holds the database's write lock: end its transaction".to_owned()
        }
        "file_gone" => {
            "the database file was deleted or replaced: restore it or restart hale".to_owned()
        }
        "io_error" => "the disk refused a read or write: check it (dmesg)".to_owned(),
        _ => {
            "see details.database_error and operations.md, When the database fails while hale runs"
                .to_owned()
        }
    }
}

/// Runs `promtool check metrics` on the text: `None` when it is content, else its complaint.
async fn promtool_check(promtool: &Path, text: &str) -> Result<Option<String>, String> {
    let mut child = tokio::process::Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", promtool.display()))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(text.as_bytes())
            .await
            .map_err(|e| format!("cannot feed {}: {e}", promtool.display()))?;
    }
    let output = tokio::time::timeout(REQUEST_TIMEOUT, child.wait_with_output())
        .await
        .map_err(|_| {
            format!(
                "{} check metrics did not finish in time",
                promtool.display()
            )
        })?
        .map_err(|e| format!("cannot wait for {}: {e}", promtool.display()))?;
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok((!output.status.success() || !report.trim().is_empty()).then(|| report.trim().to_owned()))
}

/// The first executable `name` on the PATH.
fn find_on_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| {
            std::fs::metadata(candidate)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// Regenerates one export in memory, from the config verify was given.
type Generator = fn(&VerifyOptions, &Config) -> Result<Vec<Generated>, String>;

struct ExportKind {
    name: &'static str,
    /// Under `--exports`: where `hale export ...` writes it by default.
    folder: &'static str,
    /// The command that writes the folder.
    command: &'static str,
    /// Generated from the config (its `slo` block, `alerts.runbook_base_url`): compared only with a usable
    /// config, and regenerated with `--config`.
    from_config: bool,
    /// What the regenerate hint adds about the command's options.
    note: &'static str,
    generate: Generator,
}

fn openapi_files(options: &VerifyOptions, _: &Config) -> Result<Vec<Generated>, String> {
    ServiceKind::ALL
        .into_iter()
        .map(|kind| Ok((format!("{}.json", kind.as_str()), (options.openapi)(kind)?)))
        .collect()
}

fn dashboard_files(_: &VerifyOptions, config: &Config) -> Result<Vec<Generated>, String> {
    Ok(export::dashboard_files(&config.slo))
}

fn alert_files(_: &VerifyOptions, config: &Config) -> Result<Vec<Generated>, String> {
    export::alert_files(&config.slo, &config.alerts.runbook_base_url)
}

fn alertmanager_files(_: &VerifyOptions, _: &Config) -> Result<Vec<Generated>, String> {
    Ok(export::alertmanager_files())
}

fn systemd_files(_: &VerifyOptions, _: &Config) -> Result<Vec<Generated>, String> {
    Ok(export::systemd_files(&units::SystemdOptions::default()))
}

fn launchd_files(_: &VerifyOptions, _: &Config) -> Result<Vec<Generated>, String> {
    Ok(export::launchd_files(&units::LaunchdOptions::default()))
}

/// Every export this hale generates, each compared file by file with a fresh export made in memory.
const EXPORTS: [ExportKind; 6] = [
    ExportKind {
        name: "openapi",
        folder: "openapi",
        command: "hale export openapi",
        from_config: false,
        note: "",
        generate: openapi_files,
    },
    ExportKind {
        name: "dashboards",
        folder: "dashboards",
        command: "hale export dashboards",
        from_config: true,
        note: "",
        generate: dashboard_files,
    },
    ExportKind {
        name: "alert rules",
        folder: "alerts",
        command: "hale export alerts",
        from_config: true,
        note: "",
        generate: alert_files,
    },
    ExportKind {
        name: "alertmanager",
        folder: "deploy/alertmanager",
        command: "hale export alertmanager",
        from_config: false,
        note: "",
        generate: alertmanager_files,
    },
    ExportKind {
        name: "systemd unit",
        folder: "deploy/systemd",
        command: "hale export systemd",
        from_config: false,
        note: " (verify compares with the default paths and user; a unit exported with --binary, --config, \
               --db, --working-dir or --user differs by those lines)",
        generate: systemd_files,
    },
    ExportKind {
        name: "launchd job",
        folder: "deploy/launchd",
        command: "hale export launchd",
        from_config: false,
        note: " (verify compares with the default paths; a job exported with --binary, --config, --db, \
               --working-dir or --log-dir differs by those lines)",
        generate: launchd_files,
    },
];

/// The extension of a file name, with its dot (`.json`), or the whole name without one.
fn extension(file: &str) -> &str {
    file.rfind('.').map_or(file, |dot| &file[dot..])
}

fn check_exports(options: &VerifyOptions, config: Option<&Config>, checks: &mut Vec<Check>) {
    let root = &options.exports;
    for export in &EXPORTS {
        let name = format!("exports {}", export.name);
        let folder = root.join(export.folder);
        let regenerate = if export.from_config {
            format!(
                "{} --config {} --out {}",
                export.command,
                options.config.display(),
                folder.display()
            )
        } else {
            format!("{} --out {}", export.command, folder.display())
        };
        if !folder.is_dir() {
            checks.push(Check::skip(
                name,
                format!(
                    "no folder {}: nothing to compare (`{regenerate}` writes it)",
                    folder.display()
                ),
            ));
            continue;
        }
        // Exports that do not depend on the config are compared even when it cannot be loaded.
        let defaults;
        let config = match (config, export.from_config) {
            (Some(config), _) => config,
            (None, false) => {
                defaults = Config::default();
                &defaults
            }
            (None, true) => {
                checks.push(Check::skip(
                    name,
                    format!(
                        "not compared: the config is not usable, and {} is generated from it",
                        folder.display()
                    ),
                ));
                continue;
            }
        };
        let generated = match (export.generate)(options, config) {
            Ok(files) => files,
            Err(e) => {
                checks.push(Check::fail(
                    name,
                    e,
                    "this is a fault of hale itself: report it",
                ));
                continue;
            }
        };
        let mut problems = Vec::new();
        let mut equal = Vec::new();
        for (file, text) in &generated {
            let path = folder.join(file);
            match std::fs::read_to_string(&path) {
                Ok(on_disk) if on_disk == *text => equal.push(file.clone()),
                Ok(on_disk) => problems.push(format!(
                    "{} is stale: it differs from what this hale generates ({})",
                    path.display(),
                    first_difference(&on_disk, text)
                )),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    problems.push(format!("{} is missing", path.display()))
                }
                Err(e) => problems.push(format!("cannot read {}: {e}", path.display())),
            }
        }
        // Files of the same kinds (extensions) as the generated ones, that this hale does not generate.
        let known: Vec<&str> = generated.iter().map(|(f, _)| f.as_str()).collect();
        let kinds: Vec<&str> = known.iter().map(|f| extension(f)).collect();
        if let Ok(entries) = std::fs::read_dir(&folder) {
            let mut extra: Vec<String> = entries
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|f| kinds.contains(&extension(f)) && !known.contains(&f.as_str()))
                .collect();
            extra.sort();
            for file in extra {
                problems.push(format!(
                    "{} is not generated by this hale (an old or foreign file)",
                    folder.join(&file).display()
                ));
            }
        }
        checks.push(if problems.is_empty() {
            Check::pass(
                name,
                format!("{} files in {} equal what this hale generates", equal.len(), folder.display()),
            )
        } else {
            Check::fail(
                name,
                problems.join("; "),
                format!(
                    "regenerate them with `{regenerate}`{} and commit or deploy the result; remove files this \
                     hale does not generate",
                    export.note
                ),
            )
            .details(problems.clone())
        });
    }
}

/// Where two texts first differ, for a person: the line and both versions of it.
fn first_difference(on_disk: &str, generated: &str) -> String {
    let mut disk_lines = on_disk.lines();
    let mut new_lines = generated.lines();
    let mut number = 1;
    loop {
        match (disk_lines.next(), new_lines.next()) {
            (Some(a), Some(b)) if a == b => number += 1,
            (Some(a), Some(b)) => {
                return format!(
                    "first at line {number}: the file has `{}`, this hale generates `{}`",
                    shorten(a.trim(), 80),
                    shorten(b.trim(), 80)
                )
            }
            (Some(_), None) => return format!("the file has more lines, from line {number}"),
            (None, Some(_)) => return format!("the file ends early, at line {number}"),
            (None, None) => return "they differ in line endings or the final newline".to_owned(),
        }
    }
}

fn shorten(text: &str, max: usize) -> String {
    let text = text.trim();
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let cut: String = text.chars().take(max).collect();
    format!("{cut}...")
}

/// `12.3 MiB`.
pub(crate) fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// `3d 4h`, `2h 5m`, `4m 10s`, `9s`.
pub(crate) fn duration(seconds: u64) -> String {
    let (d, h, m, s) = (
        seconds / 86_400,
        seconds / 3_600 % 24,
        seconds / 60 % 60,
        seconds % 60,
    );
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations_read_like_a_person_writes_them() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(5 * 1024 * 1024), "5.0 MiB");
        assert_eq!(duration(9), "9s");
        assert_eq!(duration(250), "4m 10s");
        assert_eq!(duration(7_500), "2h 5m");
        assert_eq!(duration(3 * 86_400 + 4 * 3_600 + 59), "3d 4h");
    }

    #[test]
    fn the_first_difference_names_the_line() {
        assert_eq!(
            first_difference("a\nb\nc\n", "a\nB\nc\n"),
            "first at line 2: the file has `b`, this hale generates `B`"
        );
        assert_eq!(
            first_difference("a\n", "a\nb\n"),
            "the file ends early, at line 2"
        );
        assert_eq!(
            first_difference("a\n", "a"),
            "they differ in line endings or the final newline"
        );
    }

    #[test]
    fn a_report_passes_only_without_failures_and_renders_each_failure() {
        let options = VerifyOptions {
            config: "c.json".into(),
            db: "h.db".into(),
            exports: ".".into(),
            only: None,
            offline: true,
            promtool: Promtool::Off,
            openapi: |_| Ok(String::new()),
        };
        let passing = Report::new(
            &options,
            "parser".into(),
            vec![
                Check::pass("config", "valid"),
                Check::skip("exports dashboards", "not yet generated"),
            ],
        );
        assert!(passing.passed());
        assert_eq!(
            passing.counts,
            Counts {
                passed: 1,
                failed: 0,
                skipped: 1
            }
        );
        let failing = Report::new(
            &options,
            "parser".into(),
            vec![
                Check::pass("config", "valid"),
                Check::fail("target api", "api is down | refused", "start api")
                    .details(["url http://x".into()]),
            ],
        );
        assert!(!failing.passed());
        let md = failing.to_markdown();
        assert!(md.starts_with("# hale verify: FAIL\n"), "{md}");
        assert!(
            md.contains("| FAIL | target api | api is down \\| refused |"),
            "{md}"
        );
        assert!(md.contains("### FAIL: target api"), "{md}");
        assert!(md.contains("**What to do:** start api"), "{md}");
        assert!(md.contains("- url http://x"), "{md}");
        let json: serde_json::Value = serde_json::from_str(&failing.to_json()).unwrap();
        assert_eq!(json["result"], "fail");
        assert_eq!(json["checks"][1]["result"], "fail");
        assert_eq!(json["checks"][1]["remedy"], "start api");
    }

    #[test]
    fn a_table_cell_cannot_link_or_carry_html() {
        let options = VerifyOptions {
            config: "c.json".into(),
            db: "h.db".into(),
            exports: ".".into(),
            only: None,
            offline: true,
            promtool: Promtool::Off,
            openapi: |_| Ok(String::new()),
        };
        let report = Report::new(
            &options,
            "parser".into(),
            vec![Check::fail(
                "target [x](http://evil)",
                "down: <script>x</script>",
                "start it",
            )],
        );
        let md = report.to_markdown();
        assert!(
            md.contains(
                "| FAIL | target \\[x\\](http://evil) | down: &lt;script&gt;x&lt;/script&gt; |"
            ),
            "{md}"
        );
    }
}
