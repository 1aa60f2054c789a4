//! `hale export dashboards`: two Grafana dashboards (classic JSON model, schemaVersion 41) built from code.
//! `hale-overview.json` shows targets, the score, hale's own services, breakers, restarts and alerts;
//! `hale-slo.json` shows each target against its availability, latency and restart objectives. Every panel
//! reads the `datasource` variable, so one file works for an import by hand (`__inputs`) and for file
//! provisioning.

use serde_json::{json, Value};

use crate::config::SloConfig;
use crate::export::rules::{self, Slo};
use crate::kind::ServiceKind;
use crate::metrics::names;

/// The dashboard JSON model version written.
pub const SCHEMA_VERSION: u32 = 41;
/// Grid width of a Grafana dashboard.
const GRID_WIDTH: u32 = 24;

/// A panel query: a PromQL expression, with how its series are named.
#[derive(Debug, Clone)]
pub struct Query {
    pub expr: String,
    pub legend: String,
}

fn q(expr: impl Into<String>, legend: &str) -> Query {
    Query {
        expr: expr.into(),
        legend: legend.to_owned(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PanelType {
    Timeseries,
    Stat,
    Gauge,
    Table,
    /// A heading across the dashboard, over the panels after it (no query).
    Row,
}

impl PanelType {
    fn as_str(self) -> &'static str {
        match self {
            Self::Row => "row",
            Self::Timeseries => "timeseries",
            Self::Stat => "stat",
            Self::Gauge => "gauge",
            Self::Table => "table",
        }
    }
}

/// One panel before layout.
#[derive(Debug, Clone)]
pub struct Panel {
    pub title: &'static str,
    pub description: &'static str,
    pub kind: PanelType,
    pub unit: &'static str,
    pub queries: Vec<Query>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    /// Red at or above this value (or below it, with `red_below`).
    pub threshold: Option<f64>,
    pub red_below: bool,
    pub width: u32,
    pub height: u32,
}

fn panel(
    title: &'static str,
    description: &'static str,
    kind: PanelType,
    unit: &'static str,
) -> Panel {
    Panel {
        title,
        description,
        kind,
        unit,
        queries: Vec::new(),
        min: None,
        max: None,
        threshold: None,
        red_below: false,
        width: 12,
        height: 8,
    }
}

impl Panel {
    fn query(mut self, query: Query) -> Self {
        self.queries.push(query);
        self
    }
    fn size(mut self, width: u32, height: u32) -> Self {
        self.width = width;
        self.height = height;
        self
    }
    fn range(mut self, min: f64, max: f64) -> Self {
        self.min = Some(min);
        self.max = Some(max);
        self
    }
    fn red_above(mut self, threshold: f64) -> Self {
        self.threshold = Some(threshold);
        self
    }
    fn red_under(mut self, threshold: f64) -> Self {
        self.threshold = Some(threshold);
        self.red_below = true;
        self
    }
}

/// A dashboard before it is written: what the exporter and the tests read.
#[derive(Debug, Clone)]
pub struct Dashboard {
    pub file: &'static str,
    pub uid: &'static str,
    pub title: &'static str,
    pub description: &'static str,
    pub panels: Vec<Panel>,
}

fn datasource() -> Value {
    json!({"type": "prometheus", "uid": "${datasource}"})
}

/// `target=~"$target"`: the multi-value `target` variable as a label matcher.
const T: &str = r#"target=~"$target""#;
/// `service=~"$service"`.
const S: &str = r#"service=~"$service""#;

/// The overview: targets, score, hale's services, breakers, restarts, alerts.
pub fn overview() -> Dashboard {
    use PanelType::*;
    let panels = vec![
        panel("Targets up", "Targets whose latest check was up.", Stat, "short")
            .query(q(format!("sum({}{{{T}}})", names::TARGET_UP), "up"))
            .size(4, 4),
        panel("Targets down", "Targets whose latest check failed.", Stat, "short")
            .query(q(format!("count({}{{{T}}} == 0) or vector(0)", names::TARGET_UP), "down"))
            .red_above(1.0)
            .size(4, 4),
        panel("Health score", "Weighted health of all targets, 0 to 100.", Gauge, "short")
            .query(q(names::HEALTH_SCORE, "score"))
            .range(0.0, 100.0)
            .red_under(80.0)
            .size(4, 4),
        panel("Breakers open", "Targets whose circuit breaker is open.", Stat, "short")
            .query(q(format!("count({}{{{T}}} == 2) or vector(0)", names::CIRCUIT_BREAKER_STATE), "open"))
            .red_above(1.0)
            .size(4, 4),
        panel("Alerts firing", "hale's own alerts firing now, all levels.", Stat, "short")
            .query(q(format!("sum({})", names::ALERTS_ACTIVE), "firing"))
            .red_above(1.0)
            .size(4, 4),
        panel("hale services up", "hale's services that can do their job (service_up).", Stat, "short")
            .query(q(format!("sum({}{{{S}}})", names::SERVICE_UP), "up"))
            .size(4, 4),
        panel("Target status", "Latest check of each target: 1 up, 0 not up.", Table, "short")
            .query(q(format!("{}{{{T}}}", names::TARGET_UP), "{{target}}")),
        panel("Check latency p95", "p95 latency of all targets' checks, scheduled and on demand (the latency histogram has no target label; per target, see the SLO dashboard).", Timeseries, "s")
            .query(q(
                format!(
                    "histogram_quantile(0.95, sum by (source, le) (rate({}_bucket[$__rate_interval])))",
                    names::HEALTH_CHECK_DURATION_SECONDS
                ),
                "{{source}}",
            )),
        panel("Checks by outcome", "Scheduled checks per second, by target and outcome, and on-demand checks of all targets by outcome.", Timeseries, "short")
            .query(q(
                format!(
                    "sum by (target, outcome) (rate({}{{{T}}}[$__rate_interval]))",
                    names::HEALTH_CHECK_TOTAL
                ),
                "{{target}} {{outcome}}",
            ))
            .query(q(
                format!(
                    "sum by (outcome) (rate({}[$__rate_interval]))",
                    names::HEALTH_CHECK_ON_DEMAND_TOTAL
                ),
                "on demand {{outcome}}",
            )),
        panel("Health score over time", "Weighted health of all targets.", Timeseries, "short")
            .query(q(names::HEALTH_SCORE, "score"))
            .range(0.0, 100.0)
            .red_under(80.0),
        panel("Request rate per service", "Requests per second answered by each of hale's services.", Timeseries, "short")
            .query(q(
                format!("sum by (service) (rate({}{{{S}}}[$__rate_interval]))", names::HTTP_REQUESTS_TOTAL),
                "{{service}}",
            )),
        panel("Request latency p95 per service", "p95 time to answer a request, per service.", Timeseries, "s")
            .query(q(
                format!(
                    "histogram_quantile(0.95, sum by (service, le) (rate({}_bucket{{{S}}}[$__rate_interval])))",
                    names::HTTP_REQUEST_DURATION_SECONDS
                ),
                "{{service}}",
            )),
        panel("Errors by type", "Error answers per second, by service and error type.", Timeseries, "short")
            .query(q(
                format!("sum by (service, type) (rate({}{{{S}}}[$__rate_interval]))", names::ERRORS_TOTAL),
                "{{service}} {{type}}",
            )),
        panel("Error answer share", "Share of requests answered with a 4xx or 5xx, per service.", Timeseries, "percentunit")
            .query(q(
                format!(
                    "sum by (service) (rate({r}{{{S},status=~\"[45]..\"}}[$__rate_interval])) / sum by (service) (rate({r}{{{S}}}[$__rate_interval]))",
                    r = names::HTTP_REQUESTS_TOTAL
                ),
                "{{service}}",
            ))
            .range(0.0, 1.0),
        panel("Circuit breaker state", "0 closed, 1 half-open, 2 open.", Timeseries, "short")
            .query(q(format!("{}{{{T}}}", names::CIRCUIT_BREAKER_STATE), "{{target}}"))
            .range(0.0, 2.0)
            .red_above(2.0),
        panel("Restarts", "Restarts of each target over the dashboard's time range, by cause.", Timeseries, "short")
            .query(q(
                format!("sum by (target, cause) (increase({}{{{T}}}[$__range]))", names::RESTARTS_TOTAL),
                "{{target}} {{cause}}",
            )),
        panel("Alerts firing by level", "hale's own alerts firing now.", Timeseries, "short")
            .query(q(format!("sum by (level) ({})", names::ALERTS_ACTIVE), "{{level}}")),
        panel("Alert notices", "Alert notices per interval, by rule and result.", Timeseries, "short")
            .query(q(
                format!("sum by (rule, result) (increase({}[$__interval]))", names::ALERTS_TOTAL),
                "{{rule}} {{result}}",
            )),
        panel("Check writer", "Rows waiting to be written, and rows given up on.", Timeseries, "short")
            .query(q(names::STORE_QUEUE_DEPTH, "queued"))
            .query(q(format!("increase({}[$__interval])", names::STORE_ROWS_DROPPED_TOTAL), "dropped")),
        panel("hale resident memory", "Resident memory of each hale process.", Timeseries, "bytes")
            .query(q(format!("max by (instance) ({})", names::PROCESS_RESIDENT_MEMORY_BYTES), "{{instance}}")),
        row("MCP WebBridge", "The MCP servers the bridge connects to, and the calls of their tools (POST /tools/{name})."),
        panel("MCP servers ready", "MCP servers the bridge is connected to, with their tools listed.", Stat, "short")
            .query(q(format!("sum({})", names::MCP_SERVER_READY), "ready"))
            .size(6, 4),
        panel("MCP servers not ready", "Configured MCP servers the bridge is not connected to (GET /servers says why).", Stat, "short")
            .query(q(format!("count({} == 0) or vector(0)", names::MCP_SERVER_READY), "not ready"))
            .red_above(1.0)
            .size(6, 4),
        panel("MCP server connected", "1 while the bridge is connected to the server, 0 while it connects or backs off.", Timeseries, "short")
            .query(q(names::MCP_SERVER_READY, "{{server}}"))
            .range(0.0, 1.0)
            .size(12, 4),
        panel("Tool calls by outcome", "Calls of MCP tools per second, by server and outcome (ok, tool_error, invalid, not_ready, breaker_open, timeout, too_large, upstream_error).", Timeseries, "short")
            .query(q(
                format!("sum by (server, outcome) (rate({}[$__rate_interval]))", names::MCP_TOOL_CALLS_TOTAL),
                "{{server}} {{outcome}}",
            )),
        panel("Tool call latency p95", "p95 time from sending a call to its server to the answer, per server and tool.", Timeseries, "s")
            .query(q(
                format!(
                    "histogram_quantile(0.95, sum by (server, tool, le) (rate({}_bucket[$__rate_interval])))",
                    names::MCP_TOOL_DURATION_SECONDS
                ),
                "{{server}} {{tool}}",
            )),
        row("Workflows", "Runbook workflows on the Boss API (POST /workflow/{id}/start): runs, the queue, approvals and step attempts."),
        panel("Runs started and finished", "Workflow runs accepted per second, by workflow, and runs that ended, by workflow and final state (succeeded, failed, timed_out, cancelled, interrupted).", Timeseries, "short")
            .query(q(
                format!("sum by (workflow) (rate({}[$__rate_interval]))", names::WORKFLOW_RUNS_STARTED_TOTAL),
                "{{workflow}} started",
            ))
            .query(q(
                format!("sum by (workflow, status) (rate({}[$__rate_interval]))", names::WORKFLOW_RUNS_FINISHED_TOTAL),
                "{{workflow}} {{status}}",
            ))
            .size(12, 8),
        panel("Runs active and queued", "Runs in progress (running or waiting) and runs queued for a free slot (the global cap or their concurrency group).", Timeseries, "short")
            .query(q(format!("sum({})", names::WORKFLOW_RUNS_ACTIVE), "active"))
            .query(q(format!("sum({})", names::WORKFLOW_QUEUE_DEPTH), "queued"))
            .size(6, 8),
        panel("Approvals waiting", "Runs waiting for someone with the operate token to approve or reject a step (POST /runs/{id}/approve).", Stat, "short")
            .query(q(format!("sum({})", names::WORKFLOW_APPROVALS_WAITING), "waiting"))
            .red_above(1.0)
            .size(6, 8),
        panel("Run duration p95", "p95 time from a run's acceptance to its end, by workflow (approvals and sleeps included).", Timeseries, "s")
            .query(q(
                format!(
                    "histogram_quantile(0.95, sum by (workflow, le) (rate({}_bucket[$__rate_interval])))",
                    names::WORKFLOW_RUN_DURATION_SECONDS
                ),
                "{{workflow}}",
            )),
        panel("Step attempts by kind and outcome", "Attempts of workflow steps per second, by step kind and outcome (succeeded, failed, interrupted).", Timeseries, "short")
            .query(q(
                format!("sum by (kind, outcome) (rate({}[$__rate_interval]))", names::WORKFLOW_STEP_ATTEMPTS_TOTAL),
                "{{kind}} {{outcome}}",
            )),
    ];
    Dashboard {
        file: "hale-overview.json",
        uid: "hale-overview",
        title: "hale overview",
        description: "hale's targets, health score, services, breakers, restarts, alerts, the MCP WebBridge and workflows (generated by `hale export dashboards`).",
        panels,
    }
}

/// The SLO dashboard: each target against its objectives.
pub fn slo(config: &SloConfig) -> Dashboard {
    use PanelType::*;
    let availability = rules::objective(Slo::Availability, config);
    let p95 = config.p95_latency_target_ms as f64 / 1000.0;
    let latency_objective = rules::objective(Slo::Latency, config);
    let restarts = f64::from(config.max_restarts_per_week);
    let a = Slo::Availability.id();
    let l = Slo::Latency.id();
    let period = format!("{}d", config.window_days);
    let panels = vec![
        panel("Availability over the SLO window", "Share of scheduled checks that were up over the SLO window (the recording rules); red below the objective.", Stat, "percentunit")
            .query(q(format!("1 - max by (target) (slo:sli_error:ratio_rate{period}{{sloth_id=\"{a}\",{T}}})"), "{{target}}"))
            .red_under(availability)
            .size(6, 5),
        panel("Error budget remaining", "Share of the availability error budget left over the SLO window (the recording rules).", Gauge, "percentunit")
            .query(q(format!("max by (target) (slo:period_error_budget_remaining:ratio{{sloth_id=\"{a}\",{T}}})"), "{{target}}"))
            .range(0.0, 1.0)
            .red_under(0.0)
            .size(6, 5),
        panel("Checks within the latency target over the SLO window", "Share of scheduled checks that took at most the p95 target over the SLO window (the recording rules); the p95 holds while it is 95% or more.", Stat, "percentunit")
            .query(q(format!("1 - max by (target) (slo:sli_error:ratio_rate{period}{{sloth_id=\"{l}\",{T}}})"), "{{target}}"))
            .red_under(latency_objective)
            .size(6, 5),
        panel("Restarts in 7 days", "Restarts over the last 7 days; red at the weekly maximum.", Stat, "short")
            .query(q(format!("sum by (target) (increase({}{{{T}}}[7d]))", names::RESTARTS_TOTAL), "{{target}}"))
            .red_above(restarts)
            .size(6, 5),
        panel("Availability against the target", "Share of scheduled checks that were up, over 1 hour, against the objective.", Timeseries, "percentunit")
            .query(q(format!("1 - max by (target) (slo:sli_error:ratio_rate1h{{sloth_id=\"{a}\",{T}}})"), "{{target}}"))
            .query(q(format!("max(slo:objective:ratio{{sloth_id=\"{a}\"}})"), "objective"))
            .red_under(availability),
        panel("Error budget remaining (Prometheus)", "Share of each SLO's error budget left over the SLO window, from the recording rules.", Timeseries, "percentunit")
            .query(q(format!("slo:period_error_budget_remaining:ratio{{{T}}}"), "{{target}} {{sloth_slo}}"))
            .red_under(0.0),
        panel("Burn rate (5m)", "How fast each SLO's budget burns now: 1 spends it exactly over the SLO window.", Timeseries, "short")
            .query(q(format!("slo:current_burn_rate:ratio{{{T}}}"), "{{target}} {{sloth_slo}}"))
            .red_above(crate::config::burn::BURN_PAIRS[0].burn_rate(config.window_days)),
        panel("Availability burn rate per window", "Availability burn rate over each alerting window; the page alert needs both windows of a pair above its factor.", Timeseries, "short")
            .query(q(format!("max by (target) (slo:sli_error:ratio_rate1h{{sloth_id=\"{a}\",{T}}}) / scalar(slo:error_budget:ratio{{sloth_id=\"{a}\"}})"), "{{target}} 1h"))
            .query(q(format!("max by (target) (slo:sli_error:ratio_rate6h{{sloth_id=\"{a}\",{T}}}) / scalar(slo:error_budget:ratio{{sloth_id=\"{a}\"}})"), "{{target}} 6h"))
            .query(q(format!("max by (target) (slo:sli_error:ratio_rate1d{{sloth_id=\"{a}\",{T}}}) / scalar(slo:error_budget:ratio{{sloth_id=\"{a}\"}})"), "{{target}} 1d"))
            .query(q(format!("max by (target) (slo:sli_error:ratio_rate3d{{sloth_id=\"{a}\",{T}}}) / scalar(slo:error_budget:ratio{{sloth_id=\"{a}\"}})"), "{{target}} 3d")),
        panel("p95 check latency against the target", "p95 latency of all targets' scheduled checks together (the latency histogram has no target label); red above the p95 target.", Timeseries, "s")
            .query(q(
                format!(
                    "histogram_quantile(0.95, sum by (le) (rate({}_bucket{{source=\"monitor\"}}[$__rate_interval])))",
                    names::HEALTH_CHECK_DURATION_SECONDS
                ),
                "all targets",
            ))
            .red_above(p95),
        panel("Checks slower than the target", "Share of scheduled checks slower than the p95 target, over 1 hour (the latency SLI; 5% is the budget).", Timeseries, "percentunit")
            .query(q(format!("max by (target) (slo:sli_error:ratio_rate1h{{sloth_id=\"{l}\",{T}}})"), "{{target}}"))
            .red_above(1.0 - latency_objective),
        panel("Restarts in 7 days against the maximum", "Restarts of each target over the last 7 days; red at the weekly maximum.", Timeseries, "short")
            .query(q(format!("sum by (target) (increase({}{{{T}}}[7d]))", names::RESTARTS_TOTAL), "{{target}}"))
            .red_above(restarts),
        panel("SLO status", "Error budget left per target and SLO, over the SLO window.", Table, "percentunit")
            .query(q(format!("slo:period_error_budget_remaining:ratio{{{T}}}"), "{{target}} {{sloth_slo}}"))
            .size(12, 8),
        panel("Targets out of budget (hale)", "Targets whose availability error budget over the SLO window is spent, as hale's SLO engine counts it (maintenance excluded, history from before Prometheus included); and targets in maintenance now.", Stat, "short")
            .query(q(names::SLO_BUDGET_EXHAUSTED_TARGETS, "budget spent"))
            .query(q(names::MAINTENANCE_ACTIVE_TARGETS, "in maintenance"))
            .red_above(1.0)
            .size(12, 8),
    ];
    Dashboard {
        file: "hale-slo.json",
        uid: "hale-slo",
        title: "hale SLOs",
        description: "Each target against its availability, latency and restart objectives (generated by `hale export dashboards`; needs the rules of `hale export alerts`).",
        panels,
    }
}

/// Both dashboards.
pub fn dashboards(config: &SloConfig) -> Vec<Dashboard> {
    vec![overview(), slo(config)]
}

fn thresholds(panel: &Panel) -> Value {
    let steps = match (panel.threshold, panel.red_below) {
        (None, _) => json!([{"color": "green", "value": null}]),
        (Some(t), false) => {
            json!([{"color": "green", "value": null}, {"color": "red", "value": t}])
        }
        (Some(t), true) => json!([{"color": "red", "value": null}, {"color": "green", "value": t}]),
    };
    json!({"mode": "absolute", "steps": steps})
}

/// A row: a heading over the panels that follow it.
fn row(title: &'static str, description: &'static str) -> Panel {
    panel(title, description, PanelType::Row, "short").size(GRID_WIDTH, 1)
}

fn panel_json(panel: &Panel, id: u32, x: u32, y: u32) -> Value {
    if panel.kind == PanelType::Row {
        return json!({
            "id": id,
            "type": "row",
            "title": panel.title,
            "description": panel.description,
            "collapsed": false,
            "gridPos": {"h": panel.height, "w": panel.width, "x": x, "y": y},
            "panels": [],
        });
    }
    let table = panel.kind == PanelType::Table;
    let targets: Vec<Value> = panel
        .queries
        .iter()
        .zip(b'A'..)
        .map(|(query, ref_id)| {
            json!({
                "datasource": datasource(),
                "editorMode": "code",
                "expr": query.expr,
                "legendFormat": query.legend,
                "range": !table,
                "instant": table,
                "format": if table { "table" } else { "time_series" },
                "refId": (ref_id as char).to_string(),
            })
        })
        .collect();
    let mut defaults = json!({
        "unit": panel.unit,
        "thresholds": thresholds(panel),
        "color": {"mode": if panel.kind == PanelType::Timeseries { "palette-classic" } else { "thresholds" }},
    });
    if let Some(min) = panel.min {
        defaults["min"] = json!(min);
    }
    if let Some(max) = panel.max {
        defaults["max"] = json!(max);
    }
    let options = match panel.kind {
        PanelType::Timeseries => {
            if panel.threshold.is_some() {
                defaults["custom"] = json!({"thresholdsStyle": {"mode": "line"}});
            }
            json!({"legend": {"displayMode": "list", "placement": "bottom", "showLegend": true}, "tooltip": {"mode": "multi", "sort": "none"}})
        }
        PanelType::Stat => {
            json!({"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": false}, "colorMode": "value", "graphMode": "area", "textMode": "auto"})
        }
        PanelType::Gauge => {
            json!({"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": false}, "showThresholdLabels": false, "showThresholdMarkers": true})
        }
        PanelType::Table => json!({"showHeader": true, "cellHeight": "sm"}),
        PanelType::Row => json!({}),
    };
    let mut value = json!({
        "id": id,
        "type": panel.kind.as_str(),
        "title": panel.title,
        "description": panel.description,
        "datasource": datasource(),
        "gridPos": {"h": panel.height, "w": panel.width, "x": x, "y": y},
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": options,
        "targets": targets,
    });
    if table {
        value["transformations"] = json!([
            {"id": "organize", "options": {"excludeByName": {"Time": true, "__name__": true}}}
        ]);
    }
    value
}

impl Dashboard {
    /// The Grafana JSON model.
    pub fn to_json(&self) -> Value {
        let mut panels = Vec::new();
        let (mut x, mut y, mut row_height) = (0u32, 0u32, 0u32);
        for (i, panel) in self.panels.iter().enumerate() {
            if x + panel.width > GRID_WIDTH {
                x = 0;
                y += row_height;
                row_height = 0;
            }
            // Panel ids start at 1; a dashboard has far fewer than u32::MAX panels.
            let id = u32::try_from(i + 1).unwrap_or(u32::MAX);
            panels.push(panel_json(panel, id, x, y));
            x += panel.width;
            row_height = row_height.max(panel.height);
        }
        let services: Vec<&str> = ServiceKind::ALL.iter().map(|k| k.as_str()).collect();
        let service_options: Vec<Value> =
            std::iter::once(json!({"selected": true, "text": "All", "value": "$__all"}))
                .chain(
                    services
                        .iter()
                        .map(|s| json!({"selected": false, "text": s, "value": s})),
                )
                .collect();
        let target_query = format!("label_values({}, target)", names::TARGET_UP);
        json!({
            "__inputs": [{
                "name": "DS_PROMETHEUS",
                "label": "Prometheus",
                "description": "The Prometheus that scrapes hale",
                "type": "datasource",
                "pluginId": "prometheus",
                "pluginName": "Prometheus"
            }],
            "__requires": [
                {"type": "grafana", "id": "grafana", "name": "Grafana", "version": "11.0.0"},
                {"type": "datasource", "id": "prometheus", "name": "Prometheus", "version": "1.0.0"},
                {"type": "panel", "id": "timeseries", "name": "Time series", "version": ""},
                {"type": "panel", "id": "stat", "name": "Stat", "version": ""},
                {"type": "panel", "id": "gauge", "name": "Gauge", "version": ""},
                {"type": "panel", "id": "table", "name": "Table", "version": ""}
            ],
            "annotations": {"list": [{
                "builtIn": 1,
                "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                "enable": true,
                "hide": true,
                "iconColor": "rgba(0, 211, 255, 1)",
                "name": "Annotations & Alerts",
                "type": "dashboard"
            }]},
            "description": self.description,
            "editable": true,
            "fiscalYearStartMonth": 0,
            "graphTooltip": 1,
            "id": null,
            "links": [],
            "panels": panels,
            "refresh": "30s",
            "schemaVersion": SCHEMA_VERSION,
            "tags": ["hale"],
            "templating": {"list": [
                {
                    "name": "datasource",
                    "label": "Data source",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {"selected": false, "text": "Prometheus", "value": "${DS_PROMETHEUS}"},
                    "hide": 0,
                    "includeAll": false,
                    "multi": false,
                    "options": [],
                    "refresh": 1,
                    "regex": ""
                },
                {
                    "name": "target",
                    "label": "Target",
                    "type": "query",
                    "datasource": datasource(),
                    "definition": target_query,
                    "query": {"query": target_query, "refId": "PrometheusVariableQueryEditor-VariableQuery", "qryType": 1},
                    "current": {"selected": true, "text": ["All"], "value": ["$__all"]},
                    "hide": 0,
                    "includeAll": true,
                    "allValue": ".*",
                    "multi": true,
                    "options": [],
                    "refresh": 2,
                    "regex": "",
                    "sort": 1
                },
                {
                    "name": "service",
                    "label": "hale service",
                    "type": "custom",
                    "query": services.join(","),
                    "current": {"selected": true, "text": ["All"], "value": ["$__all"]},
                    "hide": 0,
                    "includeAll": true,
                    "allValue": ".*",
                    "multi": true,
                    "options": service_options
                }
            ]},
            "time": {"from": "now-6h", "to": "now"},
            "timepicker": {},
            "timezone": "browser",
            "title": self.title,
            "uid": self.uid,
            "version": 1
        })
    }

    /// The committed form: pretty JSON with a final newline.
    pub fn to_text(&self) -> String {
        // A `Value` always serialises.
        serde_json::to_string_pretty(&self.to_json()).expect("JSON value serialises") + "\n"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panels_fit_the_grid_without_overlap() {
        for dashboard in dashboards(&SloConfig::default()) {
            let json = dashboard.to_json();
            let mut cells = std::collections::HashSet::new();
            for panel in json["panels"].as_array().unwrap() {
                let g = &panel["gridPos"];
                let (x, y, w, h) = (
                    g["x"].as_u64().unwrap(),
                    g["y"].as_u64().unwrap(),
                    g["w"].as_u64().unwrap(),
                    g["h"].as_u64().unwrap(),
                );
                assert!(x + w <= 24, "{} overflows the grid", panel["title"]);
                for cx in x..x + w {
                    for cy in y..y + h {
                        assert!(cells.insert((cx, cy)), "{} overlaps", panel["title"]);
                    }
                }
                if panel["type"] == "row" {
                    // A heading: no query, no datasource.
                    assert_eq!(w, 24, "{} spans the dashboard", panel["title"]);
                    continue;
                }
                assert_eq!(panel["datasource"], datasource());
                for target in panel["targets"].as_array().unwrap() {
                    assert_eq!(target["datasource"], datasource());
                }
            }
        }
    }
}
