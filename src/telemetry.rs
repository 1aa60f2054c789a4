//! The tracing subscriber: JSON lines (the default when stdout is not a terminal) or pretty text, filtered
//! by `HALE_LOG`.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
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

/// Installs the global subscriber. `HALE_LOG` takes an env-filter expression such as `info` or
/// `hale=debug,sqlx=warn`; an invalid one is an error naming it.
pub fn init(format: LogFormat) -> Result<(), String> {
    let filter = match std::env::var("HALE_LOG") {
        Ok(spec) => EnvFilter::try_new(&spec)
            .map_err(|e| format!("HALE_LOG={spec:?} is not a valid log filter: {e}"))?,
        Err(_) => EnvFilter::new("info,sqlx=warn"),
    };
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let result = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
    result.map_err(|e| format!("cannot install the log subscriber: {e}"))
}
