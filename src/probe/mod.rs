//! The Health Proxy's engine: targets, HTTP and TCP checks, the monitor loop and the health score.

mod outcome;

pub use outcome::{CheckRecord, CheckSource, Outcome};
