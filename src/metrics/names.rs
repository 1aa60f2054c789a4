//! Every metric name hale exports, in one list (documented in docs/metrics.md); `catalog.rs` gives each its
//! type, help and labels. Durations are in seconds,
//! Prometheus's base unit.

pub const SERVICE_UP: &str = "service_up";
pub const HTTP_REQUESTS_TOTAL: &str = "http_requests_total";
pub const HTTP_REQUEST_DURATION_SECONDS: &str = "http_request_duration_seconds";
pub const ERRORS_TOTAL: &str = "errors_total";
pub const HTTP_RATE_LIMITED_TOTAL: &str = "http_rate_limited_total";

pub const HEALTH_CHECK_TOTAL: &str = "health_check_total";
pub const HEALTH_CHECK_FAST_TOTAL: &str = "health_check_fast_total";
pub const HEALTH_CHECK_ON_DEMAND_TOTAL: &str = "health_check_on_demand_total";
pub const HEALTH_CHECK_DURATION_SECONDS: &str = "health_check_duration_seconds";
pub const HEALTH_CHECK_SHARED_TOTAL: &str = "health_check_shared_total";
pub const HEALTH_CHECK_NOT_STORED_TOTAL: &str = "health_check_not_stored_total";
pub const PROBES_IN_FLIGHT: &str = "probes_in_flight";
pub const PROBE_CONCURRENCY_LIMIT: &str = "probe_concurrency_limit";
pub const TARGET_UP: &str = "target_up";
pub const HEALTH_SCORE: &str = "health_score";
pub const CIRCUIT_BREAKER_STATE: &str = "circuit_breaker_state";
pub const CIRCUIT_BREAKER_TRANSITIONS_TOTAL: &str = "circuit_breaker_transitions_total";
pub const STORE_ROWS_WRITTEN_TOTAL: &str = "store_rows_written_total";
pub const STORE_ROWS_DROPPED_TOTAL: &str = "store_rows_dropped_total";
pub const STORE_QUEUE_DEPTH: &str = "store_queue_depth";
pub const STORE_WRITE_ERRORS_TOTAL: &str = "store_write_errors_total";
pub const EVENTS_LAGGED_TOTAL: &str = "events_lagged_total";

pub const RESTARTS_TOTAL: &str = "restarts_total";
pub const HEAL_ATTEMPTS_TOTAL: &str = "heal_attempts_total";
pub const CHILD_RUNNING: &str = "child_running";
pub const ALERTS_TOTAL: &str = "alerts_total";
pub const ALERTS_ACTIVE: &str = "alerts_active";

// The SLO engine's view of the whole fleet, refreshed in the background (not computed per scrape). Per
// target, the SLOs are the exported recording rules' (`slo:sli_error:ratio_rate*`), read from the counters.
pub const SLO_BUDGET_EXHAUSTED_TARGETS: &str = "slo_budget_exhausted_targets";
pub const MAINTENANCE_ACTIVE_TARGETS: &str = "maintenance_active_targets";

// The MCP WebBridge: its servers and the tool calls it made.
pub const MCP_SERVERS: &str = "mcp_servers";
pub const MCP_SERVER_READY: &str = "mcp_server_ready";
pub const MCP_TOOL_CALLS_TOTAL: &str = "mcp_tool_calls_total";
pub const MCP_TOOL_DURATION_SECONDS: &str = "mcp_tool_duration_seconds";

// The Boss API's workflow runs.
pub const WORKFLOW_RUNS_STARTED_TOTAL: &str = "workflow_runs_started_total";
pub const WORKFLOW_RUNS_FINISHED_TOTAL: &str = "workflow_runs_finished_total";
pub const WORKFLOW_RUN_DURATION_SECONDS: &str = "workflow_run_duration_seconds";
pub const WORKFLOW_STEP_ATTEMPTS_TOTAL: &str = "workflow_step_attempts_total";
pub const WORKFLOW_RUNS_ACTIVE: &str = "workflow_runs_active";
pub const WORKFLOW_QUEUE_DEPTH: &str = "workflow_queue_depth";
pub const WORKFLOW_APPROVALS_WAITING: &str = "workflow_approvals_waiting";

// The standard process metrics, exported by the prometheus crate's `ProcessCollector` (Linux) on every service.
pub const PROCESS_RESIDENT_MEMORY_BYTES: &str = "process_resident_memory_bytes";
pub const PROCESS_VIRTUAL_MEMORY_BYTES: &str = "process_virtual_memory_bytes";
pub const PROCESS_OPEN_FDS: &str = "process_open_fds";
pub const PROCESS_MAX_FDS: &str = "process_max_fds";
pub const PROCESS_CPU_SECONDS_TOTAL: &str = "process_cpu_seconds_total";
pub const PROCESS_THREADS: &str = "process_threads";
pub const PROCESS_START_TIME_SECONDS: &str = "process_start_time_seconds";

// Label names. Values come from closed sets (enums) or from the config, never from raw input.
pub const LABEL_SERVICE: &str = "service";
pub const LABEL_METHOD: &str = "method";
pub const LABEL_ROUTE: &str = "route";
pub const LABEL_STATUS: &str = "status";
pub const LABEL_TYPE: &str = "type";
pub const LABEL_TARGET: &str = "target";
pub const LABEL_OUTCOME: &str = "outcome";
/// `monitor` (a scheduled check) or `on_demand` (a check a request asked for): a `CheckSource`.
pub const LABEL_SOURCE: &str = "source";
pub const LABEL_TO: &str = "to";
pub const LABEL_KIND: &str = "kind";
pub const LABEL_SUBSCRIBER: &str = "subscriber";
pub const LABEL_CAUSE: &str = "cause";
pub const LABEL_LEVEL: &str = "level";
pub const LABEL_RULE: &str = "rule";
pub const LABEL_CHANNEL: &str = "channel";
pub const LABEL_RESULT: &str = "result";
/// A workflow's id (from the config).
pub const LABEL_WORKFLOW: &str = "workflow";
/// An MCP server's name (from the config).
pub const LABEL_SERVER: &str = "server";
/// An MCP tool's own name on its server (only tools a server listed, never a name a client sent).
pub const LABEL_TOOL: &str = "tool";
/// An MCP server's connection state: `connecting`, `ready`, `backing_off`.
pub const LABEL_STATE: &str = "state";
/// The latency objective of `health_check_fast_total`, in seconds (a histogram bucket's `le`, under a
/// name of its own: `le` is for histograms only).
pub const LABEL_THRESHOLD: &str = "threshold";
