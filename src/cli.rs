//! The command line: `hale serve`, `hale check-config`, `hale export openapi`, and `hale backup` and
//! `hale restore` (in `backup_cli`).

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
    /// Check a config file and print what it resolves to, with every default filled in.
    CheckConfig {
        #[arg(long, env = "HALE_CONFIG", default_value = DEFAULT_CONFIG_PATH)]
        config: PathBuf,
    },
    /// Write generated files for other tools.
    Export {
        #[command(subcommand)]
        what: Export,
    },
    /// Make a verified, compressed copy of the database, while hale runs or not.
    Backup(crate::backup_cli::BackupArgs),
    /// Put a backup in place of the database (refused while hale runs on it), keeping the one it replaces.
    Restore(crate::backup_cli::RestoreArgs),
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
            Ok(config) => match serde_json::to_string_pretty(&config) {
                Ok(text) => {
                    println!("{text}");
                    ExitCode::SUCCESS
                }
                Err(e) => fail(1, &format!("cannot print the config: {e}")),
            },
            Err(e) => fail(EXIT_BAD_INPUT, &e.to_string()),
        },
        Command::Export {
            what: Export::Openapi { out },
        } => match export_openapi(&out) {
            Ok(written) => {
                for path in written {
                    println!("wrote {}", path.display());
                }
                ExitCode::SUCCESS
            }
            Err(e) => fail(1, &e),
        },
        Command::Backup(args) => crate::backup_cli::backup(args).await,
        Command::Restore(args) => crate::backup_cli::restore(args).await,
    }
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
    match Application::start(config, &files.db, only).await {
        Ok(app) => {
            let stopped = app.run_until(shutdown_signal()).await;
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
            // Everything but a failure to build the probe client is the operator's input to fix.
            let code = match e {
                StartError::Monitor(MonitorError::Client(_)) => 1,
                _ => EXIT_BAD_INPUT,
            };
            fail(code, &e.to_string())
        }
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

/// Resolves on SIGTERM or SIGINT. actix's own signal handling is disabled so both get the same graceful path.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        (term, int) => {
            tracing::warn!(
                sigterm = term.is_ok(),
                sigint = int.is_ok(),
                "cannot install signal handlers; only Ctrl-C stops hale"
            );
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
