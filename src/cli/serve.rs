//! `hale serve`: starts the services, runs until SIGTERM or SIGINT, and exits with a status that says whether
//! every health check was stored.

use std::process::ExitCode;

use crate::app::{Application, StartError};
use crate::cli::{fail, Files, EXIT_BAD_INPUT, EXIT_CHECKS_LOST};
use crate::config::Config;
use crate::kind::ServiceKind;
use crate::probe::MonitorError;
use crate::telemetry::{self, LogFormat};

pub(super) async fn run(files: &Files, only: Option<ServiceKind>) -> ExitCode {
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
