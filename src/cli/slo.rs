//! `hale slo report`: the flags, the config and database to read, where the report goes and the exit status
//! (`slo::report` builds and renders it).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use chrono::Utc;
use clap::ValueEnum;

use crate::cli::{fail, EXIT_BAD_INPUT};
use crate::config::{Config, DEFAULT_CONFIG_PATH};
use crate::slo::report::{self, build, open_database, parse_window, render, Verdict};

/// Exit status of a report in which some objective is breached.
pub const EXIT_SLO_BREACHED: u8 = 1;
/// Exit status of a report in which nothing is breached but some target has no valid check in the window
/// (or there is no target): nothing was shown to pass, so a gate does not pass on it.
pub const EXIT_NO_DATA: u8 = 3;

#[derive(Debug, clap::Subcommand)]
pub enum SloCommand {
    /// Report each target's SLOs over a window. Exit 0 when every target has valid checks and no objective is
    /// breached, 1 when one is, 2 for bad input (an unknown service, a bad window, a missing, unreadable or
    /// corrupt database), 3 when nothing is breached but a target has no valid check (NO DATA).
    Report(ReportArgs),
}

/// `--format`: the report formats as the command line spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    Markdown,
    Json,
    Html,
}

impl From<ReportFormat> for report::ReportFormat {
    fn from(format: ReportFormat) -> Self {
        match format {
            ReportFormat::Markdown => Self::Markdown,
            ReportFormat::Json => Self::Json,
            ReportFormat::Html => Self::Html,
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// The window, ending at the end of the current hour: `7d`, `24h`, ... (default: `slo.window_days`).
    #[arg(long)]
    pub window: Option<String>,
    /// Only this target.
    #[arg(long)]
    pub service: Option<String>,
    #[arg(long, value_enum, default_value = "markdown")]
    pub format: ReportFormat,
    /// Write the report to this file instead of stdout.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Count every raw check instead of reading the hourly rollups (slower; the p95 is exact).
    #[arg(long)]
    pub exact: bool,
    /// The JSON config file, for the objectives and the targets (default: config/services.monitor.json when
    /// it exists, else the default objectives).
    #[arg(long, env = "HALE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Count a target without valid checks in the window (NO DATA) as a failure: exit 1 instead of 3.
    #[arg(long)]
    pub require_data: bool,
    /// The SQLite database file, opened read-only.
    #[arg(long, env = "HALE_DB", default_value = "data/hale.db")]
    pub db: PathBuf,
}

pub(super) async fn run(command: SloCommand) -> ExitCode {
    let SloCommand::Report(args) = command;
    report(args).await
}

/// The config named, or the default file when present, or the defaults.
fn load_config(path: Option<&Path>) -> Result<Config, String> {
    match path {
        Some(path) => Config::load(path).map_err(|e| e.to_string()),
        None if Path::new(DEFAULT_CONFIG_PATH).exists() => {
            Config::load(Path::new(DEFAULT_CONFIG_PATH)).map_err(|e| e.to_string())
        }
        None => Ok(Config::default()),
    }
}

async fn report(args: ReportArgs) -> ExitCode {
    let config = match load_config(args.config.as_deref()) {
        Ok(config) => config,
        Err(e) => return fail(EXIT_BAD_INPUT, &e),
    };
    let now = Utc::now();
    let raw = args
        .window
        .clone()
        .unwrap_or_else(|| format!("{}d", config.slo.window_days));
    let max_days = config.storage.rollup_retention_days;
    let window = match parse_window(&raw, now, max_days) {
        Ok(window) => window,
        Err(e) => return fail(EXIT_BAD_INPUT, &e.to_string()),
    };
    let store = match open_database(&args.db).await {
        Ok(store) => store,
        Err(e) => return fail(EXIT_BAD_INPUT, &e.to_string()),
    };
    let built = build(
        &store,
        &config,
        &window,
        args.service.as_deref(),
        args.exact,
        now,
        args.require_data,
    )
    .await;
    store.close().await;
    let report = match built {
        Ok(report) => report,
        // Bad input, or a database that cannot be read (corrupt, truncated, a table missing): 2 either way,
        // so that 1 always means an objective is breached.
        Err(e) => return fail(EXIT_BAD_INPUT, &e.to_string()),
    };
    let text = render(&report, args.format.into());
    match &args.out {
        Some(path) => {
            if let Err(e) = std::fs::write(path, &text) {
                return fail(
                    EXIT_BAD_INPUT,
                    &format!("cannot write the report to {}: {e}", path.display()),
                );
            }
            eprintln!(
                "wrote {} ({} targets, {})",
                path.display(),
                report.targets.len(),
                match report.result {
                    Verdict::Pass => "all pass",
                    Verdict::Fail => "some fail",
                    Verdict::NoData => "no data for some",
                }
            );
        }
        None => print!("{text}"),
    }
    match report.result {
        Verdict::Pass => ExitCode::SUCCESS,
        Verdict::Fail => ExitCode::from(EXIT_SLO_BREACHED),
        Verdict::NoData => ExitCode::from(EXIT_NO_DATA),
    }
}
