//! The Health Proxy's engine: HTTP, TCP and MCP checks, the targets, the monitor (checks on demand and in the
//! background, as a `Worker`), the health score, and the events it publishes.

pub mod check;
pub mod mcp;
pub mod monitor;
mod report;
mod schedule;
pub mod score;
pub mod streaks;
mod target;

pub use mcp::{McpCheckFailure, McpLink, McpServers};
pub use monitor::{Monitor, MonitorError};
pub use report::{HealthSweep, LatestCheck, OutcomeCounts};
pub use target::Target;
