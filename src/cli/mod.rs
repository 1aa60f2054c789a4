//! The command line: the clap root, `run`, the exit statuses and `fail`, one file per command: `hale serve`,
//! `hale check-config`, `hale export openapi|dashboards|alerts|alertmanager|systemd|launchd`, `hale verify`,
//! `hale status`, `hale audit`, `hale token`, `hale backup` and `hale restore`, `hale history generate`,
//! `hale slo report` and `hale workflow ...`. Only this module prints a command's result and chooses its exit status; the engines
//! below it return typed errors.

mod audit;
mod backup;
mod check_config;
mod export;
mod history;
mod mcp;
mod serve;
mod slo;
mod status;
mod token;
mod verify;
mod workflow;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use crate::config::DEFAULT_CONFIG_PATH;
use crate::kind::ServiceKind;

/// Where `hale export openapi` and `hale verify` get each document; kept here for callers of `cli`.
pub use crate::services::openapi_text;
pub use backup::{BackupArgs, RestoreArgs};
pub use export::{export_openapi, Export, UnitPathArgs};
pub use history::{GenerateArgs, HistoryCommand};
pub use slo::{ReportArgs, SloCommand};
pub use status::StatusArgs;
pub use verify::{ReportFormat, VerifyArgs};
pub use workflow::{WorkflowArgs, WorkflowCommand};

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
        what: export::Export,
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
        #[arg(long, default_value_t = crate::answers::audit::DEFAULT_AUDIT_LIMIT)]
        limit: u32,
        /// JSON (the same rows as `GET /audit`) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Check a deployment: config, database, every service's /health and /metrics, every target, breakers, the
    /// writer, hale's own resources and the exported files. Prints a PASS/FAIL report; exits 0 only when
    /// every check passes.
    Verify(verify::VerifyArgs),
    /// One screen: hale's services, each target against its SLOs, alerts, the writer, the database, backups.
    Status(status::StatusArgs),
    /// Make a verified, compressed copy of the database, while hale runs or not.
    Backup(backup::BackupArgs),
    /// Put a backup in place of the database (refused while hale runs on it), keeping the one it replaces.
    Restore(backup::RestoreArgs),
    /// Synthetic history for demos, reports and benchmarks.
    History {
        #[command(subcommand)]
        what: history::HistoryCommand,
    },
    /// Service-level objectives: reports from the database.
    Slo {
        #[command(subcommand)]
        what: slo::SloCommand,
    },
    /// hale's MCP tools on stdio for an AI assistant (relayed to the running hale's `/mcp`; the bearer
    /// token, if any, from HALE_TOKEN), or `import`: an editor's MCP servers in hale's form.
    Mcp(mcp::McpArgs),
    /// The Boss API's workflows from the command line, over HTTP to the running hale (the bearer token
    /// from HALE_TOKEN): list, start, status (--follow to watch a run), approve, reject, cancel.
    Workflow(workflow::WorkflowArgs),
    /// Print a new random bearer token (256 bits, 64 hex characters) that `auth.tokens` accepts, e.g.
    /// `hale token > /run/secrets/hale-admin`.
    Token,
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
        Command::Serve { files, only } => serve::run(&files, only.map(Into::into)).await,
        Command::CheckConfig { config } => check_config::run(&config),
        Command::Export { what } => export::run(what),
        Command::Audit {
            db,
            since,
            limit,
            json,
        } => audit::run(&db, since, limit, json).await,
        Command::Verify(args) => verify::run(args).await,
        Command::Status(args) => status::run(args).await,
        Command::Backup(args) => backup::backup(args).await,
        Command::Restore(args) => backup::restore(args).await,
        Command::History { what } => history::run(what).await,
        Command::Slo { what } => slo::run(what).await,
        Command::Mcp(args) => mcp::run(args).await,
        Command::Workflow(args) => workflow::run(args).await,
        Command::Token => token::run(),
    }
}

pub(crate) fn fail(code: u8, message: &str) -> ExitCode {
    // Also logged when the subscriber is up, so JSON log collectors see why hale stopped.
    tracing::error!(error = %message, "hale cannot continue");
    eprintln!("hale: {message}");
    ExitCode::from(code)
}
