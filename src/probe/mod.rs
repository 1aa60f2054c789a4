//! The Health Proxy's engine: HTTP and TCP checks, the monitor loop and the health score.

pub mod check;
pub mod monitor;
pub mod score;

pub use monitor::{AllHealth, CheckReport, Monitor, MonitorError, OutcomeCounts, Target};
