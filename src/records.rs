//! The records hale persists, below both the engines that make them and the store that keeps them, so the
//! store never depends on a feature: today health checks; heal events, alerts, SLO results and workflow runs
//! join them here.

pub mod histogram;
pub mod maintenance;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::breaker::BreakerState;

/// The closed set of results of one check; also a metric label value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(example = "up")]
pub enum Outcome {
    /// The target answered as expected.
    Up,
    /// The target answered, but not as expected (status or body), or refused or reset the connection.
    Down,
    /// No answer within the target's timeout.
    Timeout,
    /// Not checked: the target's circuit breaker is open.
    CircuitOpen,
    /// The check itself could not be made: a name that does not resolve, a TLS failure, a malformed answer.
    Error,
}

impl Outcome {
    pub const ALL: [Outcome; 5] = [
        Outcome::Up,
        Outcome::Down,
        Outcome::Timeout,
        Outcome::CircuitOpen,
        Outcome::Error,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Up => "up",
            Self::Down => "down",
            Self::Timeout => "timeout",
            Self::CircuitOpen => "circuit_open",
            Self::Error => "error",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|o| o.as_str() == raw)
    }

    pub fn is_up(self) -> bool {
        self == Self::Up
    }
}

/// Who asked for a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(example = "monitor")]
pub enum CheckSource {
    /// The background monitor, at the target's interval.
    Monitor,
    /// A request such as `GET /health/all`.
    OnDemand,
}

impl CheckSource {
    pub const ALL: [CheckSource; 2] = [Self::Monitor, Self::OnDemand];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Monitor => "monitor",
            Self::OnDemand => "on_demand",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }
}

/// One persisted health check.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckRecord {
    pub checked_at: DateTime<Utc>,
    pub service: Arc<str>,
    pub outcome: Outcome,
    pub http_status: Option<u16>,
    pub latency: Option<Duration>,
    pub error: Option<String>,
    pub breaker_state: BreakerState,
    pub source: CheckSource,
}

/// How a request that tried to change something ended, as the audit log keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(example = "done")]
pub enum AuditOutcome {
    /// Allowed and answered with a 2xx.
    Done,
    /// Allowed, and then failed (4xx or 5xx from the route itself).
    Failed,
    /// No valid token (401).
    Unauthorized,
    /// A token of a weaker role, or no token configured for the role (403).
    Forbidden,
    /// Over the rate limit (429).
    RateLimited,
}

impl AuditOutcome {
    pub const ALL: [AuditOutcome; 5] = [
        Self::Done,
        Self::Failed,
        Self::Unauthorized,
        Self::Forbidden,
        Self::RateLimited,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Done => "done",
            Self::Failed => "failed",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::RateLimited => "rate_limited",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|o| o.as_str() == raw)
    }
}

/// One request that tried to change something: who, from where, what, and how it ended.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRecord {
    pub at: DateTime<Utc>,
    pub service: crate::kind::ServiceKind,
    /// The role the caller's token granted; none without a valid token.
    pub role: Option<&'static str>,
    /// The client's address.
    pub client: String,
    pub method: String,
    /// The route pattern, such as `/heal/{target}`.
    pub route: String,
    /// The `{target}` of the route, when it has one.
    pub target: Option<String>,
    pub status: u16,
    pub outcome: AuditOutcome,
    /// The first attempt's request id, for a row that stands for several.
    pub request_id: String,
    /// How many attempts the row stands for: 1 for an allowed request, the attempts of one minute for a
    /// refused or rate-limited one.
    pub count: u64,
}

/// Declares a closed set of names stored as TEXT and used as metric labels: `as_str`, `parse` and `ALL`.
macro_rules! named_set {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        // The derive comes first: a `#[schema(...)]` among the attributes given needs it in scope.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
        $(#[$meta])*
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            pub fn parse(raw: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|v| v.as_str() == raw)
            }
        }
    };
}

named_set! {
    /// What started a heal.
    #[schema(example = "automatic")]
    HealTrigger {
        /// The heal loop: failed scheduled checks or its slower sweep.
        Automatic => "automatic",
        /// `POST /heal/{target}`.
        Manual => "manual",
        /// A workflow step.
        Workflow => "workflow",
    }
}

named_set! {
    /// What a heal does to a target.
    #[schema(example = "restart_child")]
    HealAction {
        /// Restart the supervised child of the target.
        RestartChild => "restart_child",
        /// Run the target's configured command (`systemctl restart x`, `launchctl kickstart -k ...`).
        Command => "command",
        /// Connect again to the MCP server of an `mcp:<name>` target (a stdio server is restarted).
        Reconnect => "reconnect",
        /// Nothing could be done: the target has neither a child nor a command.
        None => "none",
    }
}

named_set! {
    /// How a heal attempt ended; also a metric label value.
    #[schema(example = "healed")]
    HealOutcome {
        /// The action ran and the target answered up before the verify deadline.
        Healed => "healed",
        /// The action failed, or the target was still not up at the verify deadline.
        Failed => "failed",
        /// The target was healed less than `heal.cooldown_s` ago.
        SkippedCooldown => "skipped_cooldown",
        /// The target used up its `heal.max_per_hour` heals in the last hour.
        SkippedBudget => "skipped_budget",
        /// Most targets fail at once: hale's own host or network is the likelier cause.
        SkippedMassFailure => "skipped_mass_failure",
        /// Another heal was running.
        SkippedBusy => "skipped_busy",
        /// A workflow run holds the target.
        SkippedHeld => "skipped_held",
        /// The child's last exit code says its configuration is wrong; restarting cannot help.
        SkippedConfigError => "skipped_config_error",
        /// The target has no way to be healed (no `run` block, no heal command).
        SkippedNoAction => "skipped_no_action",
    }
}

impl HealOutcome {
    /// True when an action ran (a restart happened, whether or not it helped).
    pub fn acted(self) -> bool {
        matches!(self, Self::Healed | Self::Failed)
    }
}

/// One heal attempt, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct HealRecord {
    pub target: Arc<str>,
    pub trigger: HealTrigger,
    pub action: HealAction,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub outcome: HealOutcome,
    /// From the end of the action until the target answered up (healed attempts only).
    pub verify_latency: Option<Duration>,
    pub error: Option<String>,
}

named_set! {
    /// Why a supervised child was started.
    #[schema(example = "exited")]
    ChildStartCause {
        /// The first start in this run of hale.
        Start => "start",
        /// A restart after the child exited by itself.
        Exited => "exited",
        /// A restart asked by auto-heal.
        Heal => "heal",
    }
}

named_set! {
    /// How loud an alert is.
    #[schema(example = "critical")]
    AlertLevel {
        Info => "info",
        Warning => "warning",
        Critical => "critical",
    }
}

impl AlertLevel {
    /// The Prometheus/Alertmanager `severity` label value, and the ordering used for inhibition.
    pub fn rank(self) -> u8 {
        match self {
            Self::Info => 0,
            Self::Warning => 1,
            Self::Critical => 2,
        }
    }
}

named_set! {
    /// Whether an alert is still on.
    #[schema(example = "firing")]
    AlertState {
        Firing => "firing",
        Resolved => "resolved",
    }
}

named_set! {
    /// What happened to an alert; also the kind of notice a channel receives.
    #[schema(example = "fired")]
    AlertEventKind {
        /// A new alert: notified.
        Fired => "fired",
        /// The alert's level rose: notified.
        Escalated => "escalated",
        /// Still firing after its cooldown: notified again.
        Repeated => "repeated",
        /// Still firing within its cooldown: counted, not notified.
        Suppressed => "suppressed",
        /// Held back while a critical alert of the same target fires: not notified.
        Inhibited => "inhibited",
        /// Over: notified.
        Resolved => "resolved",
    }
}

impl AlertEventKind {
    /// True for the events that reach the channels.
    pub fn notifies(self) -> bool {
        matches!(
            self,
            Self::Fired | Self::Escalated | Self::Repeated | Self::Resolved
        )
    }
}

named_set! {
    /// How a call of an MCP tool through the bridge ended; also `mcp_tool_calls_total`'s `outcome`.
    #[schema(example = "ok")]
    ToolCallOutcome {
        /// The tool answered.
        Ok => "ok",
        /// The tool answered with `isError: true`.
        ToolError => "tool_error",
        /// The arguments did not fit the input schema (nothing was sent).
        Invalid => "invalid",
        /// The server was not connected.
        NotReady => "not_ready",
        /// The tool's breaker was open (nothing was sent).
        BreakerOpen => "breaker_open",
        /// No answer within the server's timeout; the call was cancelled.
        Timeout => "timeout",
        /// The result was over `max_result_bytes`.
        TooLarge => "too_large",
        /// The server failed the call, or its answer could not be used.
        UpstreamError => "upstream_error",
    }
}

/// One call of an MCP tool through the bridge, as `tool_calls` keeps it. The arguments and the result are
/// kept only for a server with `log_arguments`, and then cut at `LOGGED_BYTES_MAX`.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCallRecord {
    pub at: DateTime<Utc>,
    /// The configured server.
    pub server: Arc<str>,
    /// The name the call was made with (`POST /tools/{name}`; `server__tool` when two servers share it).
    pub tool: String,
    pub outcome: ToolCallOutcome,
    /// How long the server took; none when nothing was sent.
    pub latency: Option<Duration>,
    pub request_id: String,
    /// The role the caller's token granted; none on loopback without a token.
    pub role: Option<&'static str>,
    /// The size of the arguments object as JSON.
    pub argument_bytes: u64,
    /// Why the call failed, when it did (never the arguments).
    pub error: Option<String>,
    pub arguments: Option<String>,
    pub result: Option<String>,
}

impl ToolCallRecord {
    /// Logged arguments and results are cut at this many bytes.
    pub const LOGGED_BYTES_MAX: usize = 64 * 1024;

    /// `text` as kept: whole up to `LOGGED_BYTES_MAX`, else cut at a character boundary and marked.
    pub fn logged(text: String) -> String {
        if text.len() <= Self::LOGGED_BYTES_MAX {
            return text;
        }
        let mut end = Self::LOGGED_BYTES_MAX;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}… ({} bytes in all)", &text[..end], text.len())
    }
}

named_set! {
    /// Where a workflow run is: `queued -> running <-> waiting -> succeeded | failed | timed_out | cancelled |
    /// interrupted`. Ordered as listed (a map by state reads in this order).
    #[derive(PartialOrd, Ord)]
    #[schema(example = "running")]
    RunState {
        /// Accepted, waiting for a free slot (the global cap or its concurrency group).
        Queued => "queued",
        /// A step is being attempted.
        Running => "running",
        /// Between attempts: a backoff, a sleep or an approval (`WaitReason`), until its stored wake time.
        Waiting => "waiting",
        Succeeded => "succeeded",
        Failed => "failed",
        /// Its deadline passed.
        TimedOut => "timed_out",
        Cancelled => "cancelled",
        /// hale stopped during a step that could not be run again.
        Interrupted => "interrupted",
    }
}

impl RunState {
    /// A state the run never leaves.
    pub fn is_final(self) -> bool {
        !matches!(self, Self::Queued | Self::Running | Self::Waiting)
    }
}

named_set! {
    /// Why a workflow run is waiting.
    #[schema(example = "approval")]
    WaitReason {
        /// Before the next attempt of a failed step.
        Backoff => "backoff",
        /// A `sleep` step.
        Sleep => "sleep",
        /// An approval by someone with the operate token.
        Approval => "approval",
    }
}

named_set! {
    /// Where one attempt of a workflow step is.
    #[schema(example = "succeeded")]
    AttemptState {
        Running => "running",
        Succeeded => "succeeded",
        Failed => "failed",
        /// hale stopped while it ran.
        Interrupted => "interrupted",
    }
}

named_set! {
    /// How an approval of a workflow step was decided.
    #[schema(example = "approved")]
    ApprovalDecision {
        Approved => "approved",
        Rejected => "rejected",
        /// Nobody decided before it expired.
        Expired => "expired",
        /// The run's risk was below the approval threshold: approved by hale, and recorded.
        Automatic => "automatic",
    }
}

named_set! {
    /// How much harm a workflow step can do, from least to most; runs at or above a threshold wait for an
    /// approval.
    #[derive(PartialOrd, Ord)]
    #[schema(example = "high")]
    RiskLevel {
        Low => "low",
        Medium => "medium",
        High => "high",
        Critical => "critical",
    }
}
