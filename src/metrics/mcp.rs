//! The MCP WebBridge's metrics, on its own registry: its servers by connection state, and the tool calls it
//! made by outcome and duration. Label values are configured server names and the tools those servers
//! listed, never a name a client sent, so a client cannot add series.

use prometheus::{HistogramVec, IntCounterVec, IntGaugeVec, Registry};

use crate::metrics::catalog;
use crate::records::ToolCallOutcome;

/// Buckets of `mcp_tool_duration_seconds`: from a local call's milliseconds to a slow tool's half minute.
pub const TOOL_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

#[derive(Debug, Clone)]
pub struct McpMetrics {
    servers: IntGaugeVec,
    ready: IntGaugeVec,
    calls: IntCounterVec,
    duration: HistogramVec,
}

impl McpMetrics {
    /// Registers the bridge's collectors on its registry.
    pub fn register(registry: &Registry) -> Self {
        let metrics = Self {
            servers: catalog::MCP_SERVERS_DEF.int_gauge_vec(),
            ready: catalog::MCP_SERVER_READY_DEF.int_gauge_vec(),
            calls: catalog::MCP_TOOL_CALLS_TOTAL_DEF.int_counter_vec(),
            duration: catalog::MCP_TOOL_DURATION_SECONDS_DEF.histogram_vec(&TOOL_BUCKETS),
        };
        let collectors: [Box<dyn prometheus::core::Collector>; 4] = [
            Box::new(metrics.servers.clone()),
            Box::new(metrics.ready.clone()),
            Box::new(metrics.calls.clone()),
            Box::new(metrics.duration.clone()),
        ];
        for collector in collectors {
            // Each name is a distinct constant, registered once per registry.
            registry
                .register(collector)
                .expect("metric names are unique");
        }
        metrics
    }

    /// How many servers are in each state (every state given, zeros included).
    pub fn servers_in(&self, counts: &[(&str, usize)]) {
        for (state, count) in counts {
            self.servers
                .with_label_values(&[*state])
                .set(i64::try_from(*count).unwrap_or(i64::MAX));
        }
    }

    /// Whether the bridge is connected to `server` and has its tools.
    pub fn server_ready(&self, server: &str, ready: bool) {
        self.ready
            .with_label_values(&[server])
            .set(i64::from(ready));
    }

    /// One call of `tool` on `server`: its outcome, and how long it waited for the server when it was sent.
    pub fn call(
        &self,
        server: &str,
        tool: &str,
        outcome: ToolCallOutcome,
        sent_for_s: Option<f64>,
    ) {
        self.calls
            .with_label_values(&[server, tool, outcome.as_str()])
            .inc();
        if let Some(seconds) = sent_for_s {
            self.duration
                .with_label_values(&[server, tool])
                .observe(seconds);
        }
    }
}
