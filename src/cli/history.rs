//! `hale history generate`: the flags, the estimate and the cap, a progress bar on a terminal, and the exit
//! status; `history` writes the rows.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use chrono::Utc;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::cli::{fail, EXIT_BAD_INPUT};
use crate::history::{generate, GenerateProgress, HistoryError, HistorySpec, Silent};
use crate::store::backup::{free_space, human_bytes};

#[derive(Debug, clap::Subcommand)]
pub enum HistoryCommand {
    /// Write synthetic history (checks, rollups, restarts, heals, alerts, a maintenance window) into a new
    /// database, for demos, reports and benchmarks. Deterministic for a given --seed.
    Generate(GenerateArgs),
}

#[derive(Debug, clap::Args)]
pub struct GenerateArgs {
    /// The database file to create (refused when it exists, unless --append).
    #[arg(long)]
    pub db: PathBuf,
    /// Services to generate, 1 to 99999, named svc-001, svc-002, ... (svc-00001 ... from 1000)
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=i64::from(crate::history::MAX_SERVICES)))]
    pub services: u32,
    /// Days of history, 1 to 400, ending at --end.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=400))]
    pub days: u32,
    /// Seconds between two checks of a service, 1 to 86400.
    #[arg(long = "interval-s", value_parser = clap::value_parser!(u32).range(1..=86_400))]
    pub interval_s: u32,
    /// The seed: the same seed and flags give the same rows.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// When the history ends (RFC 3339); default now.
    #[arg(long)]
    pub end: Option<String>,
    /// Add to an existing database instead of refusing it.
    #[arg(long)]
    pub append: bool,
    /// Generate even when the estimate is over the cap (50,000,000 checks) or over the free space.
    #[arg(long)]
    pub force: bool,
}

/// `hale history generate`: 0 when everything was written, 2 for bad input (flags, an existing file
/// without --append, a database in use by a running hale), 1 when writing failed.
pub(super) async fn run(command: HistoryCommand) -> ExitCode {
    let HistoryCommand::Generate(args) = command;
    let spec = match HistorySpec::parse(
        args.services,
        args.days,
        args.interval_s,
        args.seed,
        args.end.as_deref(),
        Utc::now(),
    ) {
        Ok(spec) => spec,
        Err(e) => return fail(EXIT_BAD_INPUT, &e),
    };
    if args.db.exists() && !args.append {
        return fail(
            EXIT_BAD_INPUT,
            &HistoryError::Exists {
                path: args.db.display().to_string(),
            }
            .to_string(),
        );
    }
    let existing = if args.append {
        std::fs::metadata(&args.db).map_or(0, |m| m.len())
    } else {
        0
    };
    println!(
        "estimate: {} health checks ({} services x {} checks), about {} bytes ({}) added to {}",
        spec.rows(),
        spec.services,
        spec.ticks(),
        spec.estimated_bytes(),
        human_bytes(spec.estimated_bytes()),
        args.db.display()
    );
    if !args.force {
        if let Some(why) = spec.over_cap(existing, free_space(existing_folder(&args.db))) {
            return fail(EXIT_BAD_INPUT, &why);
        }
    }
    let progress: Arc<dyn GenerateProgress> = if std::io::stderr().is_terminal() {
        Arc::new(Bar::new(spec.rows()))
    } else {
        Arc::new(Silent)
    };
    let generated = tokio::select! {
        generated = generate(&args.db, &spec, args.append, progress.clone()) => generated,
        signal = stop_signal() => {
            progress.finished();
            // Dropping the run removed its temp file: the target is as it was.
            let code = 128 + signal;
            return fail(
                u8::try_from(code).unwrap_or(1),
                &format!(
                    "stopped by signal {signal}; removed the partial database, {} is as it was",
                    args.db.display()
                ),
            );
        }
    };
    match generated {
        Ok(summary) => {
            println!(
                "wrote {} health checks ({} services x {} days every {} s, seed {}) to {} in {:.1} s: {:.0} rows/s",
                summary.checks,
                spec.services,
                spec.days,
                spec.interval_s,
                spec.seed,
                args.db.display(),
                summary.elapsed.as_secs_f64(),
                summary.rows_per_second()
            );
            println!(
                "rows in the database: {} hourly rollups, {} child runs, {} heal events, {} alerts, {} maintenance windows",
                summary.rollup_rows,
                summary.child_runs,
                summary.heal_events,
                summary.alerts,
                summary.maintenance_windows
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail(
            if e.is_bad_input() { EXIT_BAD_INPUT } else { 1 },
            &e.to_string(),
        ),
    }
}

/// The folder `db` goes in, or its nearest ancestor that exists (for the free space).
fn existing_folder(db: &Path) -> &Path {
    let mut folder = db
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    while !folder.exists() {
        match folder.parent().filter(|p| !p.as_os_str().is_empty()) {
            Some(parent) => folder = parent,
            None => return Path::new("."),
        }
    }
    folder
}

/// Resolves with the number of the first SIGINT or SIGTERM; never when they cannot be caught.
async fn stop_signal() -> i32 {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(mut int), Ok(mut term)) => tokio::select! {
            _ = int.recv() => libc::SIGINT,
            _ = term.recv() => libc::SIGTERM,
        },
        _ => std::future::pending().await,
    }
}

/// The progress bar on a terminal: rows handed to the writer, rows/s, eta.
struct Bar(ProgressBar);

impl Bar {
    fn new(total: u64) -> Self {
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template(
            "generate [{bar:32}] {human_pos}/{human_len} checks {per_sec} eta {eta}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        Self(bar)
    }
}

impl GenerateProgress for Bar {
    fn advanced(&self, rows: u64) {
        self.0.set_position(rows);
    }

    fn finished(&self) {
        self.0.finish_and_clear();
    }
}
