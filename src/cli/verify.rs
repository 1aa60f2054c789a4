//! `hale verify`: checks a deployment and prints a PASS/FAIL report (`ops::verify` runs the checks).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::ValueEnum;

use crate::cli::{fail, Files, OnlyService, EXIT_BAD_INPUT};

#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub files: Files,
    /// The folder holding the exported files (openapi/, dashboards/, alerts/, deploy/).
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

/// `hale verify`: 0 when every check passed, 1 when one failed, 2 when the report cannot be written.
pub(super) async fn run(args: VerifyArgs) -> ExitCode {
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
        openapi: crate::services::openapi_text,
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
