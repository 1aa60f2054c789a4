//! The Health Proxy's engine: HTTP and TCP checks, the targets, the monitor (checks on demand and in the
//! background, as a `Worker`), the health score, and the events it publishes.

pub mod check;
pub mod monitor;
mod report;
mod schedule;
pub mod score;
pub mod streaks;
mod target;

pub use monitor::{Monitor, MonitorError};
pub use report::{HealthSweep, LatestCheck, OutcomeCounts};
pub use target::Target;
