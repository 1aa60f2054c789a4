//! Every metric hale exports as one const table: name, type, help, label names, which registry holds it and
//! when its first series appears. The collectors are built from these definitions, and the exporters
//! (`hale export dashboards`, `hale export alerts`) check their queries against them, so renaming a metric
//! breaks a test rather than a dashboard.

use prometheus::{
    Gauge, GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts,
};

use crate::metrics::names;

/// The Prometheus type of a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    Counter,
    Gauge,
    Histogram,
}

impl MetricKind {
    /// The type as written on a `# TYPE` line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Counter => "counter",
            Self::Gauge => "gauge",
            Self::Histogram => "histogram",
        }
    }
}

/// Which `/metrics` serves a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exporter {
    /// Every service's registry (`service` label).
    EveryService,
    /// The Health Proxy's registry only.
    HealthProxy,
    /// The prometheus crate's `ProcessCollector`, on every service (Linux).
    Process,
    /// The SLO engine, on the Health Proxy (registered by the `slo` module).
    SloEngine,
    /// The MCP WebBridge's registry only.
    McpBridge,
    /// The Boss API's registry only.
    BossApi,
}

/// When the first series of a metric appears on `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appears {
    /// Once hale has started, answered a request and checked each target once.
    AfterCheck,
    /// Only after the event described (a label set appears the first time it is used).
    AfterEvent(&'static str),
}

/// Where the values of one label come from when a metric's series are created at 0 at start (see
/// `MetricDef::at_start`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartValues {
    /// The service whose registry holds the metric.
    Service,
    /// Every configured target.
    Target,
    /// Every target hale can heal: one with a `run` block or a heal command.
    HealableTarget,
    /// Every alert rule in force.
    Rule,
    /// The level of that rule.
    RuleLevel,
    /// The channels that rule's notices reach (those configured, `log` always, Alertmanager when
    /// configured), and `none` for notices held back.
    RuleChannel,
    /// Every value of a closed set.
    Closed(ClosedSet),
    /// The latency objective, `slo.p95_latency_target_ms`, in seconds (`latency_threshold`).
    LatencyTarget,
    /// Every workflow of the config.
    Workflow,
    /// Every step kind, when the config has a workflow; none otherwise.
    StepKind,
}

/// How many series of a metric each target adds to `/metrics`: the cardinality budget (docs/metrics.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PerTarget {
    /// No `target` label: the same series whatever the number of targets.
    Fleet,
    /// Exactly this many for every configured target (once it has been checked).
    Every(usize),
    /// At most this many, only for the targets an event concerns (a breaker that moved, a target hale can
    /// heal or supervise).
    AtMost(usize),
}

/// The closed sets label values come from: each is an enum's own list of values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClosedSet {
    Outcome,
    CheckSource,
    HealOutcome,
    ErrorType,
    AlertResult,
    /// The states a workflow run ends in.
    FinalRunState,
    /// The ends of a workflow step's attempt.
    AttemptOutcome,
}

impl ClosedSet {
    pub fn values(self) -> Vec<&'static str> {
        use crate::records::{CheckSource, HealOutcome, Outcome};
        match self {
            Self::Outcome => Outcome::ALL.iter().map(|o| o.as_str()).collect(),
            Self::CheckSource => CheckSource::ALL.iter().map(|s| s.as_str()).collect(),
            Self::HealOutcome => HealOutcome::ALL.iter().map(|o| o.as_str()).collect(),
            Self::ErrorType => crate::metrics::ErrorType::ALL
                .iter()
                .map(|t| t.as_str())
                .collect(),
            Self::AlertResult => crate::metrics::AlertResult::ALL
                .iter()
                .map(|r| r.as_str())
                .collect(),
            Self::FinalRunState => crate::records::RunState::ALL
                .iter()
                .filter(|s| s.is_final())
                .map(|s| s.as_str())
                .collect(),
            Self::AttemptOutcome => crate::metrics::workflows::ATTEMPT_OUTCOMES
                .iter()
                .map(|o| o.as_str())
                .collect(),
        }
    }
}

/// One alert rule in force, as its `alerts_total` series need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartRule {
    pub name: String,
    pub level: &'static str,
    /// The channels its notices reach (without `none`).
    pub channels: Vec<&'static str>,
}

/// The label values known at start, from the config: what the series created at 0 are made of. The
/// default knows nothing: no target, no rule, no workflow, and a latency objective of 0.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StartLabels {
    pub targets: Vec<String>,
    pub healable: Vec<String>,
    pub rules: Vec<StartRule>,
    /// `slo.p95_latency_target_ms`: the `threshold` of `health_check_fast_total`.
    pub latency_target_ms: u64,
    /// The ids of the config's workflows.
    pub workflows: Vec<String>,
}

/// A latency in milliseconds as a label value in seconds, written exactly (200 is `0.2`,
/// 1500 is `1.5`, 2000 is `2`): hale's counter and the exported rules spell it the same way.
pub fn latency_threshold(ms: u64) -> String {
    let (whole, frac) = (ms / 1000, ms % 1000);
    if frac == 0 {
        return whole.to_string();
    }
    let frac = format!("{frac:03}");
    format!("{whole}.{}", frac.trim_end_matches('0'))
}

/// One metric: everything a collector, a dashboard and a rule file need to agree on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MetricDef {
    pub name: &'static str,
    pub kind: MetricKind,
    pub help: &'static str,
    pub labels: &'static [&'static str],
    pub exporter: Exporter,
    pub appears: Appears,
    /// When not empty, one entry per label: the series made of every combination of these values exist at 0
    /// from start, so `rate()` and `increase()` see the first event (a series that appears at 1 has no
    /// earlier sample to grow from) and panels show 0 rather than "No data".
    pub at_start: &'static [StartValues],
    /// The series each target adds.
    pub per_target: PerTarget,
}

const VALID: &str = "a catalog definition is a valid metric";

impl MetricDef {
    /// The same definition, with its series created at 0 at start from these label values.
    const fn at_start(self, values: &'static [StartValues]) -> Self {
        Self {
            at_start: values,
            ..self
        }
    }

    /// The same definition, with the series each target adds.
    const fn per_target(self, per_target: PerTarget) -> Self {
        Self { per_target, ..self }
    }

    /// The label values of every series this metric has at 0 from start, in label order (`service`: the
    /// registry's service, when the metric has that label).
    pub fn series_at_start(&self, service: Option<&str>, known: &StartLabels) -> Vec<Vec<String>> {
        if self.at_start.is_empty() {
            return Vec::new();
        }
        let per_rule = self.at_start.iter().any(|v| {
            matches!(
                v,
                StartValues::Rule | StartValues::RuleLevel | StartValues::RuleChannel
            )
        });
        let rules: Vec<Option<&StartRule>> = if per_rule {
            known.rules.iter().map(Some).collect()
        } else {
            vec![None]
        };
        let mut all = Vec::new();
        for rule in rules {
            let columns: Vec<Vec<String>> = self
                .at_start
                .iter()
                .map(|values| match values {
                    StartValues::Service => service.map(str::to_owned).into_iter().collect(),
                    StartValues::Target => known.targets.clone(),
                    StartValues::HealableTarget => known.healable.clone(),
                    StartValues::Rule => rule.map(|r| r.name.clone()).into_iter().collect(),
                    StartValues::RuleLevel => {
                        rule.map(|r| r.level.to_owned()).into_iter().collect()
                    }
                    StartValues::RuleChannel => rule
                        .map(|r| {
                            r.channels
                                .iter()
                                .chain([&crate::metrics::NO_CHANNEL])
                                .map(|c| (*c).to_owned())
                                .collect()
                        })
                        .unwrap_or_default(),
                    StartValues::Closed(set) => {
                        set.values().into_iter().map(str::to_owned).collect()
                    }
                    StartValues::LatencyTarget => vec![latency_threshold(known.latency_target_ms)],
                    StartValues::Workflow => known.workflows.clone(),
                    StartValues::StepKind if known.workflows.is_empty() => Vec::new(),
                    StartValues::StepKind => crate::metrics::workflows::STEP_KINDS
                        .iter()
                        .map(|k| (*k).to_owned())
                        .collect(),
                })
                .collect();
            let mut rows: Vec<Vec<String>> = vec![Vec::new()];
            for column in &columns {
                rows = rows
                    .iter()
                    .flat_map(|row| {
                        column.iter().map(move |value| {
                            let mut row = row.clone();
                            row.push(value.clone());
                            row
                        })
                    })
                    .collect();
            }
            all.extend(rows.into_iter().filter(|row| self.can_happen(row)));
        }
        all
    }

    /// False for a combination hale never counts: an alert notice held back (`suppressed`, `inhibited`) is
    /// on channel `none`, and only those are.
    fn can_happen(&self, row: &[String]) -> bool {
        let at = |label: &str| self.labels.iter().position(|l| *l == label);
        match (at(names::LABEL_CHANNEL), at(names::LABEL_RESULT)) {
            (Some(channel), Some(result)) if self.name == names::ALERTS_TOTAL => {
                let held = [
                    crate::metrics::AlertResult::Suppressed.as_str(),
                    crate::metrics::AlertResult::Inhibited.as_str(),
                ]
                .contains(&row[result].as_str());
                held == (row[channel] == crate::metrics::NO_CHANNEL)
            }
            _ => true,
        }
    }

    fn opts(&self) -> Opts {
        Opts::new(self.name, self.help)
    }

    /// The names of the series this metric exports: a histogram's `_bucket`, `_sum` and `_count`.
    pub fn series_names(&self) -> Vec<String> {
        match self.kind {
            MetricKind::Histogram => ["_bucket", "_sum", "_count"]
                .iter()
                .map(|suffix| format!("{}{suffix}", self.name))
                .collect(),
            _ => vec![self.name.to_owned()],
        }
    }

    pub fn int_counter(&self) -> IntCounter {
        debug_assert!(self.kind == MetricKind::Counter && self.labels.is_empty());
        IntCounter::with_opts(self.opts()).expect(VALID)
    }

    pub fn int_counter_vec(&self) -> IntCounterVec {
        debug_assert!(self.kind == MetricKind::Counter && !self.labels.is_empty());
        IntCounterVec::new(self.opts(), self.labels).expect(VALID)
    }

    pub fn int_gauge(&self) -> IntGauge {
        debug_assert!(self.kind == MetricKind::Gauge && self.labels.is_empty());
        IntGauge::with_opts(self.opts()).expect(VALID)
    }

    pub fn gauge(&self) -> Gauge {
        debug_assert!(self.kind == MetricKind::Gauge && self.labels.is_empty());
        Gauge::with_opts(self.opts()).expect(VALID)
    }

    pub fn gauge_vec(&self) -> GaugeVec {
        debug_assert!(self.kind == MetricKind::Gauge && !self.labels.is_empty());
        GaugeVec::new(self.opts(), self.labels).expect(VALID)
    }

    pub fn int_gauge_vec(&self) -> IntGaugeVec {
        debug_assert!(self.kind == MetricKind::Gauge && !self.labels.is_empty());
        IntGaugeVec::new(self.opts(), self.labels).expect(VALID)
    }

    pub fn histogram_vec(&self, buckets: &[f64]) -> HistogramVec {
        debug_assert!(self.kind == MetricKind::Histogram);
        HistogramVec::new(
            HistogramOpts::new(self.name, self.help).buckets(buckets.to_vec()),
            self.labels,
        )
        .expect(VALID)
    }
}

/// The definition of a metric by its name (a histogram's base name, as on its `# TYPE` line).
pub fn by_name(name: &str) -> Option<&'static MetricDef> {
    CATALOG.iter().find(|def| def.name == name)
}

/// The definition of a metric by the name of one of its series (a histogram's `..._bucket`, never its base
/// name, which no series has).
pub fn find(series: &str) -> Option<&'static MetricDef> {
    CATALOG
        .iter()
        .find(|def| def.series_names().iter().any(|name| name == series))
}

/// Request latency buckets, in seconds.
pub const HTTP_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Probe latency buckets in seconds, of the fleet-wide histogram (no `target` label): dense around the
/// default 200 ms p95 target. The latency SLI does not read them: it counts `health_check_fast_total`, whose
/// `threshold` is the objective itself, whatever it is.
pub const CHECK_BUCKETS: [f64; 20] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.125, 0.15, 0.175, 0.2, 0.225, 0.25, 0.3, 0.4, 0.5,
    0.75, 1.0, 2.0, 5.0, 10.0,
];

use names::*;
use Appears::*;
use Exporter::*;
use MetricKind::*;

const fn def(
    name: &'static str,
    kind: MetricKind,
    help: &'static str,
    labels: &'static [&'static str],
    exporter: Exporter,
    appears: Appears,
) -> MetricDef {
    MetricDef {
        name,
        kind,
        help,
        labels,
        exporter,
        appears,
        at_start: &[],
        per_target: PerTarget::Fleet,
    }
}

use PerTarget::{AtMost, Every};
use StartValues::{
    Closed, HealableTarget, LatencyTarget, Rule, RuleChannel, RuleLevel, Service, StepKind, Target,
    Workflow,
};

pub const SERVICE_UP_DEF: MetricDef = def(
    SERVICE_UP,
    Gauge,
    "1 while the service can do its job, else 0.",
    &[LABEL_SERVICE],
    EveryService,
    AfterCheck,
);
pub const HTTP_REQUESTS_TOTAL_DEF: MetricDef = def(
    HTTP_REQUESTS_TOTAL,
    Counter,
    "HTTP requests answered, by method, matched route and status.",
    &[LABEL_SERVICE, LABEL_METHOD, LABEL_ROUTE, LABEL_STATUS],
    EveryService,
    AfterCheck,
);
pub const HTTP_REQUEST_DURATION_SECONDS_DEF: MetricDef = def(
    HTTP_REQUEST_DURATION_SECONDS,
    Histogram,
    "Time to answer an HTTP request, by matched route, in seconds.",
    &[LABEL_SERVICE, LABEL_ROUTE],
    EveryService,
    AfterCheck,
);
pub const ERRORS_TOTAL_DEF: MetricDef = def(
    ERRORS_TOTAL,
    Counter,
    "Requests answered with an error, by error type.",
    &[LABEL_SERVICE, LABEL_TYPE],
    EveryService,
    AfterCheck,
)
.at_start(&[Service, Closed(ClosedSet::ErrorType)]);
pub const HTTP_RATE_LIMITED_TOTAL_DEF: MetricDef = def(
    HTTP_RATE_LIMITED_TOTAL,
    Counter,
    "Requests refused with 429 because the client was over the rate limit of the route's group.",
    &[LABEL_SERVICE, LABEL_ROUTE],
    EveryService,
    AfterEvent("a request refused with 429 for its rate"),
);

pub const HEALTH_CHECK_TOTAL_DEF: MetricDef = def(
    HEALTH_CHECK_TOTAL,
    Counter,
    "Scheduled health checks (the monitor's), by target and outcome.",
    &[LABEL_TARGET, LABEL_OUTCOME],
    HealthProxy,
    AfterCheck,
)
.at_start(&[Target, Closed(ClosedSet::Outcome)])
.per_target(Every(5));
pub const HEALTH_CHECK_FAST_TOTAL_DEF: MetricDef = def(
    HEALTH_CHECK_FAST_TOTAL,
    Counter,
    "Scheduled health checks that took at most threshold seconds (the p95 latency objective), by target.",
    &[LABEL_TARGET, LABEL_THRESHOLD],
    HealthProxy,
    AfterCheck,
)
.at_start(&[Target, LatencyTarget])
.per_target(Every(1));
pub const HEALTH_CHECK_ON_DEMAND_TOTAL_DEF: MetricDef = def(
    HEALTH_CHECK_ON_DEMAND_TOTAL,
    Counter,
    "On-demand health checks (asked for by a request), all targets together, by outcome.",
    &[LABEL_OUTCOME],
    HealthProxy,
    AfterCheck,
)
.at_start(&[Closed(ClosedSet::Outcome)]);
pub const HEALTH_CHECK_DURATION_SECONDS_DEF: MetricDef = def(
    HEALTH_CHECK_DURATION_SECONDS,
    Histogram,
    "Time a health check took, all targets together, by source, in seconds.",
    &[LABEL_SOURCE],
    HealthProxy,
    AfterCheck,
)
.at_start(&[Closed(ClosedSet::CheckSource)]);
pub const HEALTH_CHECK_SHARED_TOTAL_DEF: MetricDef = def(
    HEALTH_CHECK_SHARED_TOTAL,
    Counter,
    "Check requests answered with the result of a check of the same target already in flight.",
    &[],
    HealthProxy,
    AfterCheck,
);
pub const HEALTH_CHECK_NOT_STORED_TOTAL_DEF: MetricDef = def(HEALTH_CHECK_NOT_STORED_TOTAL, Counter, "On-demand checks answered but not stored: the target had an on-demand row within its interval.", &[], HealthProxy, AfterCheck);
pub const PROBES_IN_FLIGHT_DEF: MetricDef = def(
    PROBES_IN_FLIGHT,
    Gauge,
    "Probes running now, background and on-demand.",
    &[],
    HealthProxy,
    AfterCheck,
);
pub const PROBE_CONCURRENCY_LIMIT_DEF: MetricDef = def(PROBE_CONCURRENCY_LIMIT, Gauge, "The most probes that may run at once (monitor.max_in_flight, lowered to fit the open-file limit).", &[], HealthProxy, AfterCheck);
pub const TARGET_UP_DEF: MetricDef = def(
    TARGET_UP,
    Gauge,
    "1 if the target's latest check was up, else 0.",
    &[LABEL_TARGET],
    HealthProxy,
    AfterCheck,
)
.per_target(Every(1));
pub const HEALTH_SCORE_DEF: MetricDef = def(
    HEALTH_SCORE,
    Gauge,
    "Weighted health of all targets, 0 to 100.",
    &[],
    HealthProxy,
    AfterCheck,
);
pub const CIRCUIT_BREAKER_STATE_DEF: MetricDef = def(
    CIRCUIT_BREAKER_STATE,
    Gauge,
    "Circuit breaker state of each target: 0 closed, 1 half-open, 2 open.",
    &[LABEL_TARGET],
    HealthProxy,
    AfterCheck,
)
.per_target(Every(1));
pub const CIRCUIT_BREAKER_TRANSITIONS_TOTAL_DEF: MetricDef = def(
    CIRCUIT_BREAKER_TRANSITIONS_TOTAL,
    Counter,
    "Circuit breaker transitions, by target and new state.",
    &[LABEL_TARGET, LABEL_TO],
    HealthProxy,
    AfterEvent("a breaker changing state"),
)
.per_target(AtMost(3));
pub const STORE_ROWS_WRITTEN_TOTAL_DEF: MetricDef = def(
    STORE_ROWS_WRITTEN_TOTAL,
    Counter,
    "Health-check rows in committed transactions.",
    &[],
    HealthProxy,
    AfterCheck,
);
pub const STORE_ROWS_DROPPED_TOTAL_DEF: MetricDef = def(STORE_ROWS_DROPPED_TOTAL, Counter, "Health-check rows given up on: past the in-memory hold while the database failed, or unwritten at shutdown.", &[], HealthProxy, AfterCheck);
pub const STORE_QUEUE_DEPTH_DEF: MetricDef = def(
    STORE_QUEUE_DEPTH,
    Gauge,
    "Health-check rows waiting to be written: queued, or held while the database fails.",
    &[],
    HealthProxy,
    AfterCheck,
);
pub const STORE_WRITE_ERRORS_TOTAL_DEF: MetricDef = def(STORE_WRITE_ERRORS_TOTAL, Counter, "Failed database writes of health checks (each a failed batch, retried), by kind: full, read_only, locked, file_gone, io_error, other.", &[LABEL_KIND], HealthProxy, AfterEvent("a failed database write"));
pub const EVENTS_LAGGED_TOTAL_DEF: MetricDef = def(
    EVENTS_LAGGED_TOTAL,
    Counter,
    "Check events a subscriber skipped because it fell behind, by subscriber.",
    &[LABEL_SUBSCRIBER],
    HealthProxy,
    AfterEvent("an event subscriber falling behind"),
);

pub const RESTARTS_TOTAL_DEF: MetricDef = def(
    RESTARTS_TOTAL,
    Counter,
    "Restarts of a target, by cause: its supervised child exited (exited), a heal restarted it (heal), or hale started it after its own unclean end (hale_restart).",
    &[LABEL_TARGET, LABEL_CAUSE],
    HealthProxy,
    AfterEvent("a supervised child restarted, or a heal"),
)
.per_target(AtMost(3));
pub const MCP_SERVERS_DEF: MetricDef = def(
    MCP_SERVERS,
    Gauge,
    "Configured MCP servers, by connection state (connecting, ready, backing_off).",
    &[LABEL_STATE],
    McpBridge,
    AfterEvent("an MCP server in the config"),
);
pub const MCP_SERVER_READY_DEF: MetricDef = def(
    MCP_SERVER_READY,
    Gauge,
    "1 while the bridge is connected to the MCP server and has its tools, else 0, by configured server.",
    &[LABEL_SERVER],
    McpBridge,
    AfterEvent("an MCP server in the config"),
);
pub const MCP_TOOL_CALLS_TOTAL_DEF: MetricDef = def(
    MCP_TOOL_CALLS_TOTAL,
    Counter,
    "Calls of MCP tools through the bridge, by server, tool and outcome.",
    &[LABEL_SERVER, LABEL_TOOL, LABEL_OUTCOME],
    McpBridge,
    AfterEvent("a call of a tool the catalog lists"),
);
pub const MCP_TOOL_DURATION_SECONDS_DEF: MetricDef = def(
    MCP_TOOL_DURATION_SECONDS,
    Histogram,
    "Time from sending a tool call to its answer (or timeout), by server and tool, in seconds.",
    &[LABEL_SERVER, LABEL_TOOL],
    McpBridge,
    AfterEvent("a call of a tool the catalog lists, sent to its server"),
);
pub const WORKFLOW_RUNS_STARTED_TOTAL_DEF: MetricDef = def(
    WORKFLOW_RUNS_STARTED_TOTAL,
    Counter,
    "Workflow runs accepted (queued), by workflow.",
    &[LABEL_WORKFLOW],
    BossApi,
    AfterEvent("a workflow in the config"),
)
.at_start(&[Workflow]);
pub const WORKFLOW_RUNS_FINISHED_TOTAL_DEF: MetricDef = def(
    WORKFLOW_RUNS_FINISHED_TOTAL,
    Counter,
    "Workflow runs that ended, by workflow and final state (succeeded, failed, timed_out, cancelled, interrupted).",
    &[LABEL_WORKFLOW, LABEL_STATUS],
    BossApi,
    AfterEvent("a workflow in the config"),
)
.at_start(&[Workflow, Closed(ClosedSet::FinalRunState)]);
pub const WORKFLOW_RUN_DURATION_SECONDS_DEF: MetricDef = def(
    WORKFLOW_RUN_DURATION_SECONDS,
    Histogram,
    "Time from a run's acceptance to its end, by workflow, in seconds.",
    &[LABEL_WORKFLOW],
    BossApi,
    AfterEvent("a workflow run that ended"),
);
pub const WORKFLOW_STEP_ATTEMPTS_TOTAL_DEF: MetricDef = def(
    WORKFLOW_STEP_ATTEMPTS_TOTAL,
    Counter,
    "Attempts of workflow steps, by step kind and outcome (succeeded, failed, interrupted).",
    &[LABEL_KIND, LABEL_OUTCOME],
    BossApi,
    AfterEvent("a workflow in the config"),
)
.at_start(&[StepKind, Closed(ClosedSet::AttemptOutcome)]);
pub const WORKFLOW_RUNS_ACTIVE_DEF: MetricDef = def(
    WORKFLOW_RUNS_ACTIVE,
    Gauge,
    "Workflow runs in progress (running or waiting).",
    &[],
    BossApi,
    AfterCheck,
);
pub const WORKFLOW_QUEUE_DEPTH_DEF: MetricDef = def(
    WORKFLOW_QUEUE_DEPTH,
    Gauge,
    "Workflow runs queued for a free slot (the global cap or their concurrency group).",
    &[],
    BossApi,
    AfterCheck,
);
pub const WORKFLOW_APPROVALS_WAITING_DEF: MetricDef = def(
    WORKFLOW_APPROVALS_WAITING,
    Gauge,
    "Workflow runs waiting for an approval.",
    &[],
    BossApi,
    AfterCheck,
);
pub const HEAL_ATTEMPTS_TOTAL_DEF: MetricDef = def(
    HEAL_ATTEMPTS_TOTAL,
    Counter,
    "Heal attempts of a target, by outcome (healed, failed, or the protection that skipped it).",
    &[LABEL_TARGET, LABEL_OUTCOME],
    HealthProxy,
    AfterEvent("a target hale can heal (a run block or a heal command)"),
)
.at_start(&[HealableTarget, Closed(ClosedSet::HealOutcome)])
.per_target(AtMost(9));
pub const CHILD_RUNNING_DEF: MetricDef = def(
    CHILD_RUNNING,
    Gauge,
    "1 while the supervised child of a target runs, else 0.",
    &[LABEL_TARGET],
    HealthProxy,
    AfterEvent("a target with a run block (a supervised child)"),
)
.per_target(AtMost(1));
pub const ALERTS_TOTAL_DEF: MetricDef = def(ALERTS_TOTAL, Counter, "Alert notices by level, rule, channel and result (sent, retried, dead_letter, superseded, dropped; suppressed and inhibited on channel none).", &[LABEL_LEVEL, LABEL_RULE, LABEL_CHANNEL, LABEL_RESULT], HealthProxy, AfterEvent("an alert rule in force"))
.at_start(&[RuleLevel, Rule, RuleChannel, Closed(ClosedSet::AlertResult)]);
pub const ALERTS_ACTIVE_DEF: MetricDef = def(
    ALERTS_ACTIVE,
    Gauge,
    "Alerts firing now, by level.",
    &[LABEL_LEVEL],
    HealthProxy,
    AfterCheck,
);

const SLO_ENGINE: Appears = AfterEvent("the SLO engine's first refresh");
pub const SLO_BUDGET_EXHAUSTED_TARGETS_DEF: MetricDef = def(
    SLO_BUDGET_EXHAUSTED_TARGETS,
    Gauge,
    "Targets whose availability error budget over the SLO window is spent (hale's SLO engine, maintenance excluded).",
    &[],
    SloEngine,
    SLO_ENGINE,
);
pub const MAINTENANCE_ACTIVE_TARGETS_DEF: MetricDef = def(
    MAINTENANCE_ACTIVE_TARGETS,
    Gauge,
    "Targets a maintenance window covers now.",
    &[],
    SloEngine,
    SLO_ENGINE,
);

pub const PROCESS_RESIDENT_MEMORY_BYTES_DEF: MetricDef = def(
    PROCESS_RESIDENT_MEMORY_BYTES,
    Gauge,
    "Resident memory size in bytes.",
    &[],
    Process,
    AfterCheck,
);
pub const PROCESS_VIRTUAL_MEMORY_BYTES_DEF: MetricDef = def(
    PROCESS_VIRTUAL_MEMORY_BYTES,
    Gauge,
    "Virtual memory size in bytes.",
    &[],
    Process,
    AfterCheck,
);
pub const PROCESS_OPEN_FDS_DEF: MetricDef = def(
    PROCESS_OPEN_FDS,
    Gauge,
    "Number of open file descriptors.",
    &[],
    Process,
    AfterCheck,
);
pub const PROCESS_MAX_FDS_DEF: MetricDef = def(
    PROCESS_MAX_FDS,
    Gauge,
    "Maximum number of open file descriptors.",
    &[],
    Process,
    AfterCheck,
);
pub const PROCESS_CPU_SECONDS_TOTAL_DEF: MetricDef = def(
    PROCESS_CPU_SECONDS_TOTAL,
    Counter,
    "Total user and system CPU time spent in seconds.",
    &[],
    Process,
    AfterCheck,
);
pub const PROCESS_THREADS_DEF: MetricDef = def(
    PROCESS_THREADS,
    Gauge,
    "Number of OS threads in the process.",
    &[],
    Process,
    AfterCheck,
);
pub const PROCESS_START_TIME_SECONDS_DEF: MetricDef = def(
    PROCESS_START_TIME_SECONDS,
    Gauge,
    "Start time of the process since unix epoch in seconds.",
    &[],
    Process,
    AfterCheck,
);

/// Every metric hale exports, in the order of docs/metrics.md.
pub const CATALOG: &[MetricDef] = &[
    SERVICE_UP_DEF,
    HTTP_REQUESTS_TOTAL_DEF,
    HTTP_REQUEST_DURATION_SECONDS_DEF,
    ERRORS_TOTAL_DEF,
    HTTP_RATE_LIMITED_TOTAL_DEF,
    HEALTH_CHECK_TOTAL_DEF,
    HEALTH_CHECK_FAST_TOTAL_DEF,
    HEALTH_CHECK_ON_DEMAND_TOTAL_DEF,
    HEALTH_CHECK_DURATION_SECONDS_DEF,
    HEALTH_CHECK_SHARED_TOTAL_DEF,
    HEALTH_CHECK_NOT_STORED_TOTAL_DEF,
    PROBES_IN_FLIGHT_DEF,
    PROBE_CONCURRENCY_LIMIT_DEF,
    TARGET_UP_DEF,
    HEALTH_SCORE_DEF,
    CIRCUIT_BREAKER_STATE_DEF,
    CIRCUIT_BREAKER_TRANSITIONS_TOTAL_DEF,
    STORE_ROWS_WRITTEN_TOTAL_DEF,
    STORE_ROWS_DROPPED_TOTAL_DEF,
    STORE_QUEUE_DEPTH_DEF,
    STORE_WRITE_ERRORS_TOTAL_DEF,
    EVENTS_LAGGED_TOTAL_DEF,
    RESTARTS_TOTAL_DEF,
    HEAL_ATTEMPTS_TOTAL_DEF,
    CHILD_RUNNING_DEF,
    MCP_SERVERS_DEF,
    MCP_SERVER_READY_DEF,
    MCP_TOOL_CALLS_TOTAL_DEF,
    MCP_TOOL_DURATION_SECONDS_DEF,
    WORKFLOW_RUNS_STARTED_TOTAL_DEF,
    WORKFLOW_RUNS_FINISHED_TOTAL_DEF,
    WORKFLOW_RUN_DURATION_SECONDS_DEF,
    WORKFLOW_STEP_ATTEMPTS_TOTAL_DEF,
    WORKFLOW_RUNS_ACTIVE_DEF,
    WORKFLOW_QUEUE_DEPTH_DEF,
    WORKFLOW_APPROVALS_WAITING_DEF,
    ALERTS_TOTAL_DEF,
    ALERTS_ACTIVE_DEF,
    SLO_BUDGET_EXHAUSTED_TARGETS_DEF,
    MAINTENANCE_ACTIVE_TARGETS_DEF,
    PROCESS_RESIDENT_MEMORY_BYTES_DEF,
    PROCESS_VIRTUAL_MEMORY_BYTES_DEF,
    PROCESS_OPEN_FDS_DEF,
    PROCESS_MAX_FDS_DEF,
    PROCESS_CPU_SECONDS_TOTAL_DEF,
    PROCESS_THREADS_DEF,
    PROCESS_START_TIME_SECONDS_DEF,
];

/// The series every configured target adds to the Health Proxy's `/metrics` once it has been checked: the
/// sum of the catalog's `PerTarget::Every` (docs/metrics.md states it; tests/exports.rs counts it on a
/// running hale).
pub const SERIES_PER_TARGET: usize = series_per_target();

const fn series_per_target() -> usize {
    let mut total = 0;
    let mut i = 0;
    while i < CATALOG.len() {
        if let PerTarget::Every(n) = CATALOG[i].per_target {
            total += n;
        }
        i += 1;
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_valid() {
        let mut seen = std::collections::HashSet::new();
        for def in CATALOG {
            assert!(seen.insert(def.name), "{} is listed twice", def.name);
            assert!(
                def.name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                "{} is not snake_case",
                def.name
            );
            match def.kind {
                MetricKind::Counter => assert!(def.name.ends_with("_total"), "{}", def.name),
                _ => assert!(!def.name.ends_with("_total"), "{}", def.name),
            }
        }
    }

    #[test]
    fn histogram_series_are_found_by_name() {
        assert_eq!(
            find("health_check_duration_seconds_bucket").map(|d| d.name),
            Some(HEALTH_CHECK_DURATION_SECONDS)
        );
        assert_eq!(find("health_check_total_bucket"), None);
        assert_eq!(find("no_such_metric"), None);
    }

    #[test]
    fn latencies_are_written_as_exact_seconds() {
        for (ms, le) in [
            (200, "0.2"),
            (230, "0.23"),
            (5, "0.005"),
            (1500, "1.5"),
            (2000, "2"),
            (1, "0.001"),
        ] {
            assert_eq!(latency_threshold(ms), le);
        }
    }

    /// A metric has a per-target budget exactly when it has a `target` label, and a budget of `Every` is the
    /// number of series its `at_start` makes for one target.
    #[test]
    fn the_per_target_budget_follows_the_labels() {
        let one = StartLabels {
            targets: vec!["a".to_owned()],
            healable: vec!["a".to_owned()],
            ..StartLabels::default()
        };
        for def in CATALOG {
            let has_target = def.labels.contains(&LABEL_TARGET);
            assert_eq!(
                has_target,
                def.per_target != PerTarget::Fleet,
                "{}: per_target {:?}",
                def.name,
                def.per_target
            );
            if let (PerTarget::Every(n) | PerTarget::AtMost(n), false) =
                (def.per_target, def.at_start.is_empty())
            {
                assert_eq!(def.series_at_start(None, &one).len(), n, "{}", def.name);
            }
        }
        assert_eq!(SERIES_PER_TARGET, 8);
    }
}
