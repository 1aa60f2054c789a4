//! `hale export ...`: writes the generated files (OpenAPI documents, dashboards, rules, Alertmanager config,
//! service units) that other tools read.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;

use crate::cli::{fail, EXIT_BAD_INPUT};
use crate::config::Config;
use crate::kind::ServiceKind;

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

/// `hale export ...`: prints `wrote FILE` per file; 2 for a config that cannot be used, 1 for a write error.
pub(super) fn run(what: Export) -> ExitCode {
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
        let text = crate::services::openapi_text(kind)?;
        std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}
