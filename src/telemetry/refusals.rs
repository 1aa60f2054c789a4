//! Requests actix-http refuses before routing (unparsable, head too large), and connections actix-server
//! cannot accept (out of file descriptors), logged at the right level and at a bounded rate.
//!
//! actix-server logs `Error accepting connection: ...` at `error` every 500 ms per listener while accept fails
//! (it backs off and retries); those become one counted `warn` line per period too, beside the open-file
//! watch's one line per episode that says why.
//!
//! actix-http answers such a request itself (a bare 400 or 431, see docs/operations.md) and then logs an
//! `error` event `stream error: ...` from `actix_http::h1::dispatcher`, one per request: 1,000 malformed
//! requests made 1,000 ERROR lines, though no operator has anything to do. `RefusalLayer` swallows those
//! events and counts them by kind; a small reporter thread writes the first refusal of a quiet period at
//! once and then at most one line per kind every `REPORT_EVERY`, with the count since its last line.

use std::fmt;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

/// At most one line per kind in this period.
pub const REPORT_EVERY: Duration = Duration::from_secs(10);

/// Where actix-http logs the refusals, and how its message starts.
const DISPATCHER_TARGET: &str = "actix_http::h1::dispatcher";
const PARSE_ERROR: &str = "stream error: request parse error: ";
const IO_ERROR: &str = "stream error: I/O error: ";
/// actix-http's text for `ParseError::TooLarge`: a head over 128 KiB, or more than 96 headers.
const TOO_LARGE: &str = "message head is too large";
/// Where actix-server logs a failed `accept`, and how its message starts.
const ACCEPT_TARGET: &str = "actix_server::accept";
const ACCEPT_ERROR: &str = "Error accepting connection: ";

/// What went wrong with a refused request; a closed set, used as the `kind` log field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalKind {
    /// The request line or a header could not be parsed: answered 400.
    Malformed,
    /// The request head is over 128 KiB or has more than 96 headers: answered 431.
    TooLarge,
    /// The connection failed while the request was read (the client reset it): nothing is answered.
    Connection,
    /// A new connection could not be accepted (out of file descriptors): it waits in the kernel's queue
    /// while actix retries.
    Accept,
}

impl RefusalKind {
    const ALL: [Self; 4] = [
        Self::Malformed,
        Self::TooLarge,
        Self::Connection,
        Self::Accept,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::TooLarge => "too_large",
            Self::Connection => "connection",
            Self::Accept => "accept",
        }
    }

    fn index(self) -> usize {
        self as usize
    }

    /// The kind of an actix-http dispatcher message, and the error it names; `None` for other messages.
    fn classify(message: &str) -> Option<(Self, &str)> {
        if let Some(error) = message.strip_prefix(PARSE_ERROR) {
            let kind = if error == TOO_LARGE {
                Self::TooLarge
            } else {
                Self::Malformed
            };
            return Some((kind, error));
        }
        message
            .strip_prefix(IO_ERROR)
            .map(|error| (Self::Connection, error))
    }
}

/// Refusals counted since the last line of their kind.
#[derive(Debug, Default)]
struct Pending {
    count: [u64; RefusalKind::ALL.len()],
    last_error: [String; RefusalKind::ALL.len()],
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.count.iter().all(|&n| n == 0)
    }
}

#[derive(Debug, Default)]
struct Shared {
    pending: Mutex<Pending>,
    arrived: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        // A panic while holding the lock leaves only counters behind, which are still usable.
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes one line per kind with refusals pending, and resets their counts.
    fn report(&self) {
        let taken = std::mem::take(&mut *self.lock());
        for kind in RefusalKind::ALL {
            let count = taken.count[kind.index()];
            if count == 0 {
                continue;
            }
            let last_error = taken.last_error[kind.index()].as_str();
            let period_s = REPORT_EVERY.as_secs();
            match kind {
                // A client going away mid-request is ordinary.
                RefusalKind::Connection => tracing::debug!(
                    kind = kind.as_str(),
                    count,
                    last_error,
                    period_s,
                    "requests refused before routing"
                ),
                RefusalKind::Accept => tracing::warn!(
                    kind = kind.as_str(),
                    count,
                    last_error,
                    period_s,
                    "cannot accept new connections; they wait until descriptors are free"
                ),
                _ => tracing::warn!(
                    kind = kind.as_str(),
                    count,
                    last_error,
                    period_s,
                    "requests refused before routing"
                ),
            }
        }
    }
}

/// The tracing layer that turns actix-http's per-request `error` lines into counted, rate-limited ones.
/// Cloning shares the counts.
#[derive(Debug, Clone)]
pub struct RefusalLayer {
    shared: Arc<Shared>,
}

impl RefusalLayer {
    /// The layer and its reporter thread, which runs until the process exits.
    pub fn start() -> std::io::Result<Self> {
        let shared = Arc::new(Shared::default());
        let reporter = shared.clone();
        std::thread::Builder::new()
            .name("hale-refusals".to_owned())
            .spawn(move || loop {
                {
                    let mut pending = reporter.lock();
                    while pending.is_empty() {
                        pending = reporter
                            .arrived
                            .wait(pending)
                            .unwrap_or_else(|e| e.into_inner());
                    }
                }
                reporter.report();
                // The quiet period: refusals in it are counted and written at its end.
                std::thread::sleep(REPORT_EVERY);
            })?;
        Ok(Self { shared })
    }

    /// Writes what is pending now, without waiting for the period to end (at shutdown).
    pub fn flush(&self) {
        self.shared.report();
    }

    fn record(&self, kind: RefusalKind, error: &str) {
        let mut pending = self.shared.lock();
        pending.count[kind.index()] += 1;
        let last = &mut pending.last_error[kind.index()];
        last.clear();
        last.push_str(error);
        drop(pending);
        self.shared.arrived.notify_one();
    }
}

impl<S: Subscriber> Layer<S> for RefusalLayer {
    fn event_enabled(&self, event: &Event<'_>, _ctx: Context<'_, S>) -> bool {
        let meta = event.metadata();
        let from_dispatcher = meta.target() == DISPATCHER_TARGET;
        if *meta.level() != Level::ERROR || !(from_dispatcher || meta.target() == ACCEPT_TARGET) {
            return true;
        }
        let mut message = MessageText(String::new());
        event.record(&mut message);
        let classified = if from_dispatcher {
            RefusalKind::classify(&message.0)
        } else {
            message
                .0
                .strip_prefix(ACCEPT_ERROR)
                .map(|error| (RefusalKind::Accept, error))
        };
        match classified {
            Some((kind, error)) => {
                self.record(kind, error);
                false
            }
            None => true,
        }
    }
}

/// Collects the `message` field of an event.
struct MessageText(String);

impl Visit for MessageText {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            use fmt::Write;
            let _ = write!(self.0, "{value:?}");
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.push_str(value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dispatcher_messages_are_sorted_into_kinds() {
        assert_eq!(
            RefusalKind::classify("stream error: request parse error: invalid Header provided"),
            Some((RefusalKind::Malformed, "invalid Header provided"))
        );
        assert_eq!(
            RefusalKind::classify("stream error: request parse error: message head is too large"),
            Some((RefusalKind::TooLarge, "message head is too large"))
        );
        assert_eq!(
            RefusalKind::classify(
                "stream error: I/O error: Connection reset by peer (os error 104)"
            ),
            Some((
                RefusalKind::Connection,
                "Connection reset by peer (os error 104)"
            ))
        );
        assert_eq!(RefusalKind::classify("stream error: internal error"), None);
        assert_eq!(RefusalKind::classify("write zero; closing"), None);
    }

    #[test]
    fn failed_accepts_are_counted_as_their_own_kind() {
        let layer = RefusalLayer {
            shared: Arc::new(Shared::default()),
        };
        layer.record(RefusalKind::Accept, "Too many open files (os error 24)");
        layer.record(RefusalKind::Accept, "Too many open files (os error 24)");
        assert_eq!(layer.shared.lock().count, [0, 0, 0, 2]);
        layer.flush();
        assert!(layer.shared.lock().is_empty());
    }

    #[test]
    fn refusals_are_counted_until_reported() {
        let layer = RefusalLayer {
            shared: Arc::new(Shared::default()),
        };
        for _ in 0..3 {
            layer.record(RefusalKind::Malformed, "invalid method specified");
        }
        layer.record(RefusalKind::TooLarge, TOO_LARGE);
        {
            let pending = layer.shared.lock();
            assert_eq!(pending.count, [3, 1, 0, 0]);
            assert_eq!(pending.last_error[0], "invalid method specified");
        }
        layer.flush();
        assert!(layer.shared.lock().is_empty());
    }
}
