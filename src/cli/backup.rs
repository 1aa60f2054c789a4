//! `hale backup` and `hale restore`: the command-line face of `store::backup`, saying what was done, with a
//! progress bar on stderr for large files when stderr is a terminal.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::{HumanBytes, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::cli::{fail, EXIT_BAD_INPUT};
use crate::config::{Config, DEFAULT_CONFIG_PATH};
use crate::store::backup::{self, BackupError, Destination, NoProgress, Progress, Verified};

/// Files from this size up get a progress bar (on a terminal): below it a backup takes about a second.
const BAR_FROM_BYTES: u64 = 16 * 1024 * 1024;

#[derive(Debug, clap::Args)]
pub struct BackupArgs {
    /// The JSON config file, for `backup.dir` and `backup.keep` (not read with --out).
    #[arg(long, env = "HALE_CONFIG", default_value = DEFAULT_CONFIG_PATH)]
    pub config: PathBuf,
    /// The SQLite database file to back up, whether hale runs on it or not.
    #[arg(long, env = "HALE_DB", default_value = "data/hale.db")]
    pub db: PathBuf,
    /// Write the backup (gzip) to exactly this file instead of the backup folder; nothing is pruned.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct RestoreArgs {
    /// The backup to restore: a `.db.gz` from `hale backup` or `POST /backup`, or a plain database file.
    pub file: PathBuf,
    /// The database file to replace; refused while hale runs on it.
    #[arg(long, env = "HALE_DB", default_value = "data/hale.db")]
    pub db: PathBuf,
    /// The most a gzip backup may unpack to, in bytes or with a K, M, G or T suffix (powers of 1024)
    /// [default: 20 times the backup's size, at least 64M; never more than the free space less 64M].
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub max_size: Option<u64>,
}

/// `1048576`, `512K`, `64M`, `2G`, `1T` (powers of 1024).
fn parse_size(raw: &str) -> Result<u64, String> {
    let bad = || format!("{raw:?} is not a size: give bytes, or a number with K, M, G or T");
    let (digits, unit) = match raw.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => raw.split_at(i),
        None => (raw, ""),
    };
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let shift = match unit.to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        "T" | "TB" | "TIB" => 40,
        _ => return Err(bad()),
    };
    let bytes = n.checked_mul(1u64 << shift).ok_or_else(bad)?;
    if bytes == 0 {
        return Err(format!("{raw:?} is not a size: it must be more than 0"));
    }
    Ok(bytes)
}

/// `hale backup`: exit 0 when the backup is written and verified, 2 for bad input (no database, a corrupt
/// or foreign one, a bad config), 1 when writing failed.
pub async fn backup(args: BackupArgs) -> ExitCode {
    let to = match &args.out {
        Some(out) => Destination::File(out.clone()),
        None => match Config::load(&args.config) {
            Ok(config) => Destination::Folder {
                dir: config.backup.dir,
                keep: config.backup.keep,
            },
            Err(e) => return fail(EXIT_BAD_INPUT, &e.to_string()),
        },
    };
    let progress = progress_for(&args.db);
    match backup::backup_database(&args.db, &to, progress).await {
        Ok(report) => {
            println!(
                "wrote {}: {} from a {} database in {}",
                report.path.display(),
                HumanBytes(report.bytes),
                HumanBytes(report.database_bytes),
                seconds(report.duration)
            );
            println!("verified: {}", describe(&report.verified));
            if let Destination::Folder { keep, .. } = to {
                for path in &report.pruned {
                    println!(
                        "removed {} (the folder keeps the newest {keep})",
                        path.display()
                    );
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => fail_with(&e),
    }
}

/// `hale restore`: exit 0 when the backup is in place, 2 for bad input (hale running on the database, a
/// backup that is not a sound hale database or unpacks past its cap), 1 when moving files failed.
pub async fn restore(args: RestoreArgs) -> ExitCode {
    let progress = progress_for(&args.file);
    match backup::restore(&args.file, &args.db, args.max_size, progress).await {
        Ok(report) => {
            println!(
                "verified {}: {}",
                report.backup.display(),
                describe(&report.verified)
            );
            match report.moved_aside.split_first() {
                Some((database, others)) => {
                    let others: Vec<String> =
                        others.iter().map(|p| p.display().to_string()).collect();
                    let others = if others.is_empty() {
                        String::new()
                    } else {
                        format!(" (and {})", others.join(", "))
                    };
                    println!(
                        "kept the database it replaces as {}{others}",
                        database.display()
                    );
                }
                None => println!("there was no database at {} to keep", report.db.display()),
            }
            println!(
                "restored {} ({}) from {} in {}; start hale to use it",
                report.db.display(),
                HumanBytes(report.bytes),
                report.backup.display(),
                seconds(report.duration)
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail_with(&e),
    }
}

fn fail_with(e: &BackupError) -> ExitCode {
    fail(
        if e.is_bad_input() { EXIT_BAD_INPUT } else { 1 },
        &e.to_string(),
    )
}

/// `integrity_check ok, schema version 1, 1200 health checks up to id 1200 (newest ...); tables: ...`.
fn describe(v: &Verified) -> String {
    let checks = v.rows("health_checks").unwrap_or(0);
    // A compact store (schema 9 on) has no global check id; the newest check's time says up to when.
    let upto = match (v.max_check_id, v.newest_check_at) {
        (Some(id), Some(at)) => format!(
            " up to id {id} (newest {})",
            at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ),
        (None, Some(at)) => format!(
            ", the newest at {}",
            at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ),
        _ => String::new(),
    };
    let tables: Vec<String> = v
        .tables
        .iter()
        .map(|t| format!("{} {}", t.table, t.rows))
        .collect();
    format!(
        "integrity_check ok, schema version {}, {checks} health checks{upto}; rows: {}",
        v.schema_version,
        tables.join(", ")
    )
}

fn seconds(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

/// A progress bar for a large `input` when stderr is a terminal; nothing otherwise.
fn progress_for(input: &Path) -> Arc<dyn Progress> {
    let large = std::fs::metadata(input).is_ok_and(|m| m.len() >= BAR_FROM_BYTES);
    if large && std::io::stderr().is_terminal() {
        Arc::new(Bar::default())
    } else {
        Arc::new(NoProgress)
    }
}

/// One bar per step: bytes when the step's size is known, a spinner when not.
#[derive(Default)]
struct Bar {
    current: Mutex<Option<ProgressBar>>,
}

impl Bar {
    fn current(&self) -> std::sync::MutexGuard<'_, Option<ProgressBar>> {
        // The bar is only drawn; a poisoned lock still holds a usable one.
        self.current.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        // A step cut short by an error: clear its bar before the error line is printed.
        self.finish();
    }
}

impl Progress for Bar {
    fn step(&self, name: &'static str, total: Option<u64>) {
        let bar = match total {
            Some(total) => {
                let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
                if let Ok(style) = ProgressStyle::with_template(
                    "{msg:>11} [{bar:32}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
                ) {
                    bar.set_style(style.progress_chars("=> "));
                }
                bar
            }
            None => {
                let bar = ProgressBar::new_spinner();
                bar.set_draw_target(ProgressDrawTarget::stderr());
                bar.enable_steady_tick(Duration::from_millis(120));
                bar
            }
        };
        bar.set_message(name);
        if let Some(old) = self.current().replace(bar) {
            old.finish_and_clear();
        }
    }

    fn done(&self, bytes: u64) {
        if let Some(bar) = self.current().as_ref() {
            bar.set_position(bytes);
        }
    }

    fn finish(&self) {
        if let Some(bar) = self.current().take() {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_bytes_or_powers_of_1024() {
        assert_eq!(parse_size("1048576"), Ok(1_048_576));
        assert_eq!(parse_size("512K"), Ok(512 * 1024));
        assert_eq!(parse_size("64m"), Ok(64 << 20));
        assert_eq!(parse_size("2G"), Ok(2 << 30));
        for bad in ["", "G", "1.5G", "12Q", "0", "99999999999T"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }
}
