//! The tracing subscriber: JSON lines (the default when stdout is not a terminal) or pretty text, filtered
//! by `HALE_LOG`, with actix-http's per-request refusal errors turned into counted, rate-limited lines.

pub mod refusals;

use std::io::IsTerminal;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, EnvFilter, Layer};

use refusals::RefusalLayer;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Pretty,
}

impl LogFormat {
    /// `HALE_LOG_FORMAT` if set and valid, else JSON unless stdout is a terminal.
    pub fn from_env() -> Result<Self, String> {
        match std::env::var("HALE_LOG_FORMAT") {
            Ok(v) if v.eq_ignore_ascii_case("json") => Ok(Self::Json),
            Ok(v) if v.eq_ignore_ascii_case("pretty") => Ok(Self::Pretty),
            Ok(v) => Err(format!("HALE_LOG_FORMAT={v:?} is not json or pretty")),
            Err(_) if std::io::stdout().is_terminal() => Ok(Self::Pretty),
            Err(_) => Ok(Self::Json),
        }
    }
}

/// What `init` leaves behind: a handle on the counted refusals, to write what is pending at shutdown.
#[derive(Debug, Clone)]
pub struct Logs {
    refusals: RefusalLayer,
}

impl Logs {
    /// Writes the refused-request counts not yet logged (their period has not ended); call before exiting.
    pub fn flush(&self) {
        self.refusals.flush();
    }
}

/// Installs the global subscriber. `HALE_LOG` takes an env-filter expression such as `info` or
/// `hale=debug,sqlx=warn`; an invalid one is an error naming it. Requests actix-http refuses before routing
/// are counted and logged at most once per kind every 10 s (`telemetry::refusals`).
pub fn init(format: LogFormat) -> Result<Logs, String> {
    let filter = match std::env::var("HALE_LOG") {
        Ok(spec) => EnvFilter::try_new(&spec)
            .map_err(|e| format!("HALE_LOG={spec:?} is not a valid log filter: {e}"))?,
        Err(_) => EnvFilter::new("info,sqlx=warn"),
    };
    let refusals = RefusalLayer::start()
        .map_err(|e| format!("cannot start the thread that logs refused requests: {e}"))?;
    let output = match format {
        LogFormat::Json => fmt::layer()
            .json()
            .flatten_event(true)
            // Events name what they are about in a field of their own, `target` (a monitored service); the
            // module path would be written under the same key, and a JSON reader keeps only one of the two.
            .with_target(false)
            .with_current_span(true)
            .with_span_list(false)
            .boxed(),
        LogFormat::Pretty => fmt::layer().boxed(),
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(refusals.clone())
        .with(output)
        .try_init()
        .map_err(|e| format!("cannot install the log subscriber: {e}"))?;
    log_panics();
    Ok(Logs { refusals })
}

/// A panic, in hale or in a library's thread (an actix worker that cannot build its runtime when no file
/// descriptor is left), becomes one ERROR line in the log: which thread, where, and its message. No stack
/// trace is printed, whatever `RUST_BACKTRACE` says.
fn log_panics() {
    std::panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(no message)".to_owned());
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let thread = std::thread::current();
        tracing::error!(
            thread = thread.name().unwrap_or("unnamed"),
            location,
            panic = %message,
            "a thread panicked"
        );
    }));
}
