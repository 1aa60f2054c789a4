//! The MCP WebBridge's engine: hale as a client of the configured Model Context Protocol servers. One
//! connection per server (`connection.rs`, a `Worker` that connects, lists tools, follows
//! `tools/list_changed` and reconnects with backoff), the catalog of their tools under the names HTTP clients
//! call (`catalog.rs`), and the call path (`registry.rs`: schema check, a breaker per tool, timeout with
//! upstream cancellation, a cap on the result), and what watching a server as a target needs (`watch.rs`: a
//! `ping`, a reconnect). The routes are in `services/mcp_bridge.rs`; this module knows nothing of actix, and
//! it is the only one that knows `rmcp`. `server/` is the other direction: hale as an MCP server, its tools
//! the answers its HTTP routes give (`/mcp` and `hale mcp`).

mod catalog;
mod connection;
mod registry;
pub mod server;
mod watch;

pub use catalog::{sanitize, Catalog, CatalogTool, CheckError, SchemaViolation, SEPARATOR};
pub use connection::Connections;
pub use registry::{
    CallContext, CallError, CallOutcome, McpRegistry, ServerState, ServerView, ToolView,
    STDERR_LINES_KEPT,
};
pub use watch::PingError;
