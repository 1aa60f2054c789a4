//! The command line: `hale serve`, `hale check-config`,
//! `hale export openapi|dashboards|alerts|alertmanager|systemd|launchd`, `hale verify`, `hale status`,
//! `hale audit`, `hale token`, `hale backup` and `hale restore` (in `backup_cli`), `hale history generate`
//! (in `history`) and `hale slo report` (in `slo::report`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use crate::app::{Application, StartError};
use crate::config::{Config, DEFAULT_CONFIG_PATH};
use crate::kind::ServiceKind;
use crate::probe::MonitorError;
use crate::telemetry::{self, LogFormat};

/// Exit status for bad input: a config error, a port in use, an unusable database file, a bad flag.
pub const EXIT_BAD_INPUT: u8 = 2;
/// Exit status of a stop after which some health checks are not in the database (it failed to take them).
pub const EXIT_CHECKS_LOST: u8 = 3;

#[derive(Debug, Parser)]
#[command(
    name = "hale",
    version,
    about = "Keeps a handful of HTTP services healthy and proves it with numbers",
    long_about = "hale probes your services, breaks circuits, heals crashes, raises alerts once and keeps every \
                  check in SQLite, from which it computes honest 7-day SLOs.\n\n\
                  Logs: HALE_LOG sets the level filter (e.g. info, hale=debug); HALE_LOG_FORMAT=json|pretty \
                  (json when stdout is not a terminal)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the Health Proxy (:3002), MCP WebBridge (:3003) and Boss API (:4000) in this process.
    Serve {
        #[command(flatten)]
        files: Files,
        /// Run only this service.
        #[arg(long, value_enum)]
        only: Option<OnlyService>,
    },
    /// Check a config file and print what it resolves to, with every default filled in and every value that
    /// may be a secret replaced by a placeholder that is still valid config.
    CheckConfig {
        #[arg(long, env = "HALE_CONFIG", default_value = DEFAULT_CONFIG_PATH)]
        config: PathBuf,
    },
    /// Write generated files for other tools.
    Export {
        #[command(subcommand)]
        what: Export,
    },
    /// Print the audit log (every request that tried to change something), newest first. Reads the
    /// database directly, whether hale runs or not.
    Audit {
        /// The SQLite database file.
        #[arg(long, env = "HALE_DB", default_value = "data/hale.db")]
        db: PathBuf,
        /// Only rows at or after this time (RFC 3339).
        #[arg(long)]
        since: Option<String>,
        /// At most this many rows, 1 to 1000.
        #[arg(long, default_value_t = crate::services::audit::DEFAULT_AUDIT_LIMIT)]
        limit: u32,
        /// JSON (the same rows as `GET /audit`) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Check a deployment: config, database, every service's /health and /metrics, every target, breakers, the
    /// writer, hale's own resources and the exported files. Prints a PASS/FAIL report; exits 0 only when
    /// every check passes.
    Verify(VerifyArgs),
    /// One screen: hale's services, each target against its SLOs, alerts, the writer, the database, backups.
    Status(StatusArgs),
    /// Make a verified, compressed copy of the database, while hale runs or not.
    Backup(crate::backup_cli::BackupArgs),
    /// Put a backup in place of the database (refused while hale runs on it), keeping the one it replaces.
    Restore(crate::backup_cli::RestoreArgs),
    /// Synthetic history for demos, reports and benchmarks.
    History {
        #[command(subcommand)]
        what: crate::history::HistoryCommand,
    },
    /// Service-level objectives: reports from the database.
    Slo {
        #[command(subcommand)]
        what: crate::slo::report::SloCommand,
    },
    /// Print a new random bearer token (256 bits, 64 hex characters) that `auth.tokens` accepts, e.g.
    /// `hale token > /run/secrets/hale-admin`.
    Token,
}

#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub files: Files,
    /// The folder holding the exported files (openapi/; later dashboards/, alerts/, deploy/).
    #[arg(long, default_value = ".")]
    pub exports: PathBuf,
    /// Verify only this service of the running hale (as started with `serve --only`).
    #[arg(long, value_enum)]
    pub only: Option<OnlyService>,
    /// Do not call a running hale: check the config, database and exported files only.
    #[arg(long)]
    pub offline: bool,
    /// Also write the report as Markdown to this file.
    #[arg(long, value_name = "FILE.md")]
    pub report: Option<PathBuf>,
    /// Also write the report as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// What to print on stdout.
    #[arg(long, value_enum, default_value = "markdown")]
    pub format: ReportFormat,
    /// `promtool` to check the metrics with, besides hale's own parser (default: promtool on the PATH).
    #[arg(long, value_name = "PATH", conflicts_with = "no_promtool")]
    pub promtool: Option<PathBuf>,
    /// Check the metrics with hale's own parser only.
    #[arg(long)]
    pub no_promtool: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ReportFormat {
    Markdown,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub files: Files,
    /// The same data as JSON, for scripts.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct Files {
    /// The JSON config file.
    #[arg(long, env = "HALE_CONFIG", default_value = DEFAULT_CONFIG_PATH)]
    pub config: PathBuf,
    /// The SQLite database file; its folder is created when missing.
    #[arg(long, env = "HALE_DB", default_value = "data/hale.db")]
    pub db: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum Export {
    /// The OpenAPI 3.1 document of each service, as <service>.json.
    Openapi {
        /// The folder to write into (created when missing).
        #[arg(long, default_value = "openapi")]
        out: PathBuf,
    },
    /// Grafana dashboards (hale-overview.json, hale-slo.json), thresholds from the config's `slo`.
    Dashboards {
        /// The folder to write into (created when missing).
        #[arg(long, default_value = "dashboards")]
        out: PathBuf,
        /// The config whose `slo` block sets the thresholds (default: the built-in defaults).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Prometheus rule files (hale-rules.yml, hale-slo-rules.yml) for the config's `slo` block, runbook links
    /// under its `alerts.runbook_base_url`.
    Alerts {
        /// The folder to write into (created when missing).
        #[arg(long, default_value = "alerts")]
        out: PathBuf,
        /// The config whose `slo` block sets the objectives (default: the built-in defaults).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// An Alertmanager config (alertmanager.yml): hale's alerts grouped by target, critical ones paged, and
    /// inhibit rules so one outage pages once, from Prometheus's rules and hale's own channel alike.
    Alertmanager {
        /// The folder to write into (created when missing).
        #[arg(long, default_value = "deploy/alertmanager")]
        out: PathBuf,
    },
    /// A systemd unit, hale.service.
    Systemd {
        /// The folder to write into (created when missing).
        #[arg(long, default_value = "deploy/systemd")]
        out: PathBuf,
        #[command(flatten)]
        paths: UnitPathArgs,
        /// The user (and group) hale runs as [default: hale].
        #[arg(long)]
        user: Option<String>,
    },
    /// A launchd job, com.hale.serve.plist.
    Launchd {
        /// The folder to write into (created when missing).
        #[arg(long, default_value = "deploy/launchd")]
        out: PathBuf,
        #[command(flatten)]
        paths: UnitPathArgs,
        /// The folder of hale.out.log and hale.err.log [default: /usr/local/var/log/hale].
        #[arg(long, value_name = "DIR")]
        log_dir: Option<PathBuf>,
    },
}

/// Where a service unit finds hale; each default depends on the init system.
#[derive(Debug, clap::Args)]
pub struct UnitPathArgs {
    /// The hale binary [default: /usr/local/bin/hale].
    #[arg(long, value_name = "PATH")]
    pub binary: Option<PathBuf>,
    /// The config file passed to `hale serve --config`.
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// The database file passed to `hale serve --db`; its folder is made writable.
    #[arg(long, value_name = "PATH")]
    pub db: Option<PathBuf>,
    /// The working directory.
    #[arg(long, value_name = "DIR")]
    pub working_dir: Option<PathBuf>,
}

impl UnitPathArgs {
    fn apply(self, paths: &mut crate::export::units::UnitPaths) {
        if let Some(binary) = self.binary {
            paths.binary = binary;
        }
        if let Some(config) = self.config {
            paths.config = config;
        }
        if let Some(db) = self.db {
            paths.db = db;
        }
        if let Some(working_dir) = self.working_dir {
            paths.working_dir = working_dir;
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum OnlyService {
    HealthProxy,
    McpBridge,
    BossApi,
}

impl From<OnlyService> for ServiceKind {
    fn from(only: OnlyService) -> Self {
        match only {
            OnlyService::HealthProxy => ServiceKind::HealthProxy,
            OnlyService::McpBridge => ServiceKind::McpBridge,
            OnlyService::BossApi => ServiceKind::BossApi,
        }
    }
}

/// Runs a parsed command and returns the process exit status.
pub async fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Serve { files, only } => serve(&files, only.map(Into::into)).await,
        Command::CheckConfig { config } => match Config::load(&config) {
            Ok(config) => match config
                .printable()
                .and_then(|shown| serde_json::to_string_pretty(&shown))
            {
                Ok(text) => {
                    println!("{text}");
                    ExitCode::SUCCESS
                }
                Err(e) => fail(1, &format!("cannot print the config: {e}")),
            },
            Err(e) => fail(EXIT_BAD_INPUT, &e.to_string()),
        },
        Command::Export { what } => export(what),
        Command::Audit {
            db,
            since,
            limit,
            json,
        } => audit(&db, since, limit, json).await,
        Command::Verify(args) => verify(args).await,
        Command::Status(args) => status(args).await,
        Command::Backup(args) => crate::backup_cli::backup(args).await,
        Command::Restore(args) => crate::backup_cli::restore(args).await,
        Command::History { what } => crate::history::run(what).await,
        Command::Slo { what } => crate::slo::report::run(what).await,
        Command::Token => {
            println!("{}", crate::auth::generate_token());
            ExitCode::SUCCESS
        }
    }
}

async fn audit(db: &Path, since: Option<String>, limit: u32, json: bool) -> ExitCode {
    use crate::services::audit::{audit_entries, AuditParams};
    let params = AuditParams {
        since,
        limit: Some(limit.to_string()),
    };
    let (since, limit) = match params.parse() {
        Ok(parsed) => parsed,
        Err(e) => return fail(EXIT_BAD_INPUT, &e),
    };
    let store = match crate::store::Store::open_read_only(db).await {
        Ok(store) => store,
        Err(e) => return fail(EXIT_BAD_INPUT, &e.to_string()),
    };
    let entries = match audit_entries(&store, since, limit).await {
        Ok(entries) => entries,
        Err(e) => return fail(1, &format!("cannot read the audit log: {e}")),
    };
    store.close().await;
    if json {
        match serde_json::to_string_pretty(&entries) {
            Ok(text) => println!("{text}"),
            Err(e) => return fail(1, &format!("cannot print the audit log: {e}")),
        }
        return ExitCode::SUCCESS;
    }
    if entries.is_empty() {
        println!("no audit rows");
        return ExitCode::SUCCESS;
    }
    println!(
        "{:<24} {:<12} {:<8} {:<16} {:<7} {:<28} {:>6} {:<13} {:>7} request id",
        "time", "service", "role", "client", "method", "route", "status", "outcome", "count"
    );
    for e in entries {
        let route = match &e.target {
            Some(target) => format!("{} ({target})", e.route),
            None => e.route.clone(),
        };
        println!(
            "{:<24} {:<12} {:<8} {:<16} {:<7} {:<28} {:>6} {:<13} {:>7} {}",
            e.at.format("%Y-%m-%dT%H:%M:%S%.3fZ"),
            e.service,
            e.role.as_deref().unwrap_or("-"),
            e.client,
            e.method,
            route,
            e.status,
            e.outcome.as_str(),
            e.count,
            e.request_id
        );
    }
    ExitCode::SUCCESS
}

/// `hale verify`: 0 when every check passed, 1 when one failed, 2 when the report cannot be written.
async fn verify(args: VerifyArgs) -> ExitCode {
    use crate::ops::verify::{self, Promtool, VerifyOptions};
    let options = VerifyOptions {
        config: args.files.config,
        db: args.files.db,
        exports: args.exports,
        only: args.only.map(Into::into),
        offline: args.offline,
        promtool: match (args.promtool, args.no_promtool) {
            (_, true) => Promtool::Off,
            (Some(path), false) => Promtool::Path(path),
            (None, false) => Promtool::Auto,
        },
    };
    let report = verify::verify(&options).await;
    let markdown = report.to_markdown();
    let json = report.to_json();
    for (path, text) in [(&args.report, &markdown), (&args.json, &json)] {
        if let Some(path) = path {
            if let Err(e) = std::fs::write(path, text) {
                return fail(
                    EXIT_BAD_INPUT,
                    &format!("cannot write the report to {}: {e}", path.display()),
                );
            }
        }
    }
    match args.format {
        ReportFormat::Markdown => print!("{markdown}"),
        ReportFormat::Json => print!("{json}"),
    }
    if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// `hale status`: 0 once the status is printed, whatever it shows; 2 for a config that cannot be used.
async fn status(args: StatusArgs) -> ExitCode {
    use crate::ops::status;
    let config = match Config::load(&args.files.config) {
        Ok(config) => config,
        Err(e) => return fail(EXIT_BAD_INPUT, &e.to_string()),
    };
    let found = status::gather(&config, &args.files.config, &args.files.db).await;
    if args.json {
        match serde_json::to_string_pretty(&found) {
            Ok(text) => println!("{text}"),
            Err(e) => return fail(1, &format!("cannot encode the status: {e}")),
        }
    } else {
        print!("{}", status::render(&found, status::colour_wanted()));
    }
    ExitCode::SUCCESS
}

async fn serve(files: &Files, only: Option<ServiceKind>) -> ExitCode {
    let format = match LogFormat::from_env() {
        Ok(format) => format,
        Err(e) => return fail(EXIT_BAD_INPUT, &e),
    };
    let logs = match telemetry::init(format) {
        Ok(logs) => logs,
        Err(e) => return fail(EXIT_BAD_INPUT, &e),
    };
    let config = match Config::load(&files.config) {
        Ok(config) => config,
        Err(e) => return fail(EXIT_BAD_INPUT, &e.to_string()),
    };
    let signals = StopSignals::install();
    match Application::start(config, &files.db, only).await {
        Ok(app) => {
            let stopped = app.run_until(signals.stopped()).await;
            logs.flush();
            if !stopped.asked {
                ExitCode::FAILURE
            } else if stopped.writer.lost() > 0 {
                eprintln!(
                    "hale: {} health checks were not stored: the database did not take them (see the log)",
                    stopped.writer.lost()
                );
                ExitCode::from(EXIT_CHECKS_LOST)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            // Everything but a failure to build the probe client or to start a server's threads is the
            // operator's input to fix (a missing or weak token, an exposed address without one, a port in
            // use, a bad database file).
            let code = match e {
                StartError::Monitor(MonitorError::Client(_)) | StartError::Serve { .. } => 1,
                _ => EXIT_BAD_INPUT,
            };
            fail(code, &e.to_string())
        }
    }
}

/// `hale export ...`: prints `wrote FILE` per file; 2 for a config that cannot be used, 1 for a write error.
fn export(what: Export) -> ExitCode {
    use crate::export::{self, units};
    let slo = |config: Option<PathBuf>| match config {
        Some(path) => Config::load(&path)
            .map(|c| c.slo)
            .map_err(|e| e.to_string()),
        None => Ok(crate::config::SloConfig::default()),
    };
    let written = match what {
        Export::Openapi { out } => export_openapi(&out),
        Export::Dashboards { out, config } => match slo(config) {
            Ok(slo) => export::write_all(&out, &export::dashboard_files(&slo)),
            Err(e) => return fail(EXIT_BAD_INPUT, &e),
        },
        Export::Alerts { out, config } => {
            let files = match config {
                Some(path) => Config::load(&path)
                    .map_err(|e| e.to_string())
                    .and_then(|c| export::alert_files(&c.slo, &c.alerts.runbook_base_url)),
                None => export::alert_files(
                    &crate::config::SloConfig::default(),
                    &crate::config::default_runbook_base_url(),
                ),
            };
            match files {
                Ok(files) => export::write_all(&out, &files),
                Err(e) => return fail(EXIT_BAD_INPUT, &e),
            }
        }
        Export::Alertmanager { out } => export::write_all(&out, &export::alertmanager_files()),
        Export::Systemd { out, paths, user } => {
            let mut options = units::SystemdOptions::default();
            paths.apply(&mut options.paths);
            if let Some(user) = user {
                options.user = user;
            }
            export::write_all(&out, &export::systemd_files(&options))
        }
        Export::Launchd {
            out,
            paths,
            log_dir,
        } => {
            let mut options = units::LaunchdOptions::default();
            paths.apply(&mut options.paths);
            if let Some(log_dir) = log_dir {
                options.log_dir = log_dir;
            }
            export::write_all(&out, &export::launchd_files(&options))
        }
    };
    match written {
        Ok(written) => {
            for path in written {
                println!("wrote {}", path.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => fail(1, &e),
    }
}

/// Writes the three OpenAPI documents; returns the files written.
pub fn export_openapi(out: &Path) -> Result<Vec<PathBuf>, String> {
    std::fs::create_dir_all(out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let mut written = Vec::new();
    for kind in ServiceKind::ALL {
        let path = out.join(format!("{}.json", kind.as_str()));
        let text = openapi_text(kind)?;
        std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

/// The committed form of a service's OpenAPI document: pretty JSON with a final newline.
pub fn openapi_text(kind: ServiceKind) -> Result<String, String> {
    crate::services::openapi(kind)
        .to_pretty_json()
        .map(|text| text + "\n")
        .map_err(|e| format!("cannot encode the {kind} OpenAPI document: {e}"))
}

pub(crate) fn fail(code: u8, message: &str) -> ExitCode {
    // Also logged when the subscriber is up, so JSON log collectors see why hale stopped.
    tracing::error!(error = %message, "hale cannot continue");
    eprintln!("hale: {message}");
    ExitCode::from(code)
}

/// SIGTERM, SIGINT and SIGHUP, caught from before the application starts: a signal that arrives while it
/// starts (or an instant after it says `listening`) is answered once it runs, instead of taking its default
/// action, which ends hale on the spot. actix's own signal handling is disabled so SIGTERM and SIGINT get
/// the same graceful path. SIGHUP is logged and ignored: hale cannot reload its config yet.
struct StopSignals {
    term: std::io::Result<tokio::signal::unix::Signal>,
    int: std::io::Result<tokio::signal::unix::Signal>,
    hup: Option<tokio::signal::unix::Signal>,
}

impl StopSignals {
    fn install() -> Self {
        use tokio::signal::unix::{signal, SignalKind};
        let hup = match signal(SignalKind::hangup()) {
            Ok(hup) => Some(hup),
            Err(e) => {
                tracing::warn!(error = %e, "cannot install a sighup handler; a sighup ends hale");
                None
            }
        };
        Self {
            term: signal(SignalKind::terminate()),
            int: signal(SignalKind::interrupt()),
            hup,
        }
    }

    /// Resolves on SIGTERM or SIGINT.
    async fn stopped(self) {
        let mut hup = self.hup;
        match (self.term, self.int) {
            (Ok(mut term), Ok(mut int)) => loop {
                tokio::select! {
                    _ = term.recv() => break,
                    _ = int.recv() => break,
                    _ = hangup(&mut hup) => sighup_ignored(),
                }
            },
            (term, int) => {
                tracing::warn!(
                    sigterm = term.is_ok(),
                    sigint = int.is_ok(),
                    "cannot install signal handlers; only Ctrl-C stops hale"
                );
                let ctrl_c = tokio::signal::ctrl_c();
                tokio::pin!(ctrl_c);
                loop {
                    tokio::select! {
                        _ = &mut ctrl_c => break,
                        _ = hangup(&mut hup) => sighup_ignored(),
                    }
                }
            }
        }
    }
}

/// Resolves at each SIGHUP; never without a handler.
async fn hangup(hup: &mut Option<tokio::signal::unix::Signal>) {
    let received = match hup {
        Some(hup) => hup.recv().await,
        None => None,
    };
    if received.is_none() {
        std::future::pending::<()>().await;
    }
}

fn sighup_ignored() {
    tracing::warn!(
        signal = "SIGHUP",
        "sighup ignored: hale cannot reload its config while running; restart hale to apply a changed config"
    );
}
