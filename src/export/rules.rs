//! `hale export alerts`: Prometheus rule files. `hale-rules.yml` alerts on targets (down, slow, restarting,
//! breaker open, low score) and on hale itself (5xx answers, slow answers, dropped rows, a service down);
//! `hale-slo-rules.yml` records each target's SLIs the way Sloth does (`slo:sli_error:ratio_rate5m`...) for
//! an availability and a latency SLO, and alerts on multi-window, multi-burn-rate budget burn.

use std::fmt::Write as _;

use crate::alerts::labels;
use crate::config::burn::{self, BurnSeverity, BURN_PAIRS};
use crate::config::SloConfig;
use crate::metrics::catalog::latency_threshold;
use crate::metrics::names;

/// Where the runbook sections live (`docs/runbooks.md#<anchor>`).
pub const RUNBOOK_BASE: &str = "docs/runbooks.md";

/// The Prometheus job name the rules and the example Prometheus config expect hale's targets under.
pub const SCRAPE_JOB: &str = "hale";

/// The windows the SLIs are recorded over, shortest first (Sloth's set for a 30-day period).
pub const SLI_WINDOWS: [&str; 7] = ["5m", "30m", "1h", "2h", "6h", "1d", "3d"];

/// A number as PromQL and YAML read it, without float noise (`0.005`, not `0.0050000000000000044`).
fn num(x: f64) -> String {
    let rounded = (x * 1e9).round() / 1e9;
    format!("{rounded}")
}

/// A rule group.
#[derive(Debug, Clone)]
pub struct Group {
    pub name: String,
    pub rules: Vec<Rule>,
}

#[derive(Debug, Clone)]
pub enum Rule {
    Record {
        record: String,
        expr: String,
        labels: Vec<(String, String)>,
    },
    Alert {
        alert: String,
        expr: String,
        for_: Option<String>,
        labels: Vec<(String, String)>,
        annotations: Vec<(String, String)>,
    },
}

impl Rule {
    pub fn expr(&self) -> &str {
        match self {
            Self::Record { expr, .. } | Self::Alert { expr, .. } => expr,
        }
    }
}

/// One rule file: its name and its groups.
#[derive(Debug, Clone)]
pub struct RuleFile {
    pub file: &'static str,
    pub groups: Vec<Group>,
}

/// What an alert's runbook section says (docs/runbooks.md is checked against these).
#[derive(Debug, Clone, Copy)]
pub struct AlertDoc {
    pub name: &'static str,
    pub severity: &'static str,
    pub summary: &'static str,
    pub description: &'static str,
}

fn s(x: &str) -> String {
    x.to_owned()
}

/// The runbook anchor of an alert (GitHub's heading slug of the alert name).
pub fn anchor(alert: &str) -> String {
    alert.to_ascii_lowercase()
}

fn alert(doc: AlertDoc, expr: String, for_: Option<String>, extra_labels: &[(&str, &str)]) -> Rule {
    let mut labels = vec![(s("severity"), s(doc.severity))];
    labels.extend(extra_labels.iter().map(|(k, v)| (s(k), s(v))));
    Rule::Alert {
        alert: s(doc.name),
        expr,
        for_,
        labels,
        annotations: vec![
            (s("summary"), s(doc.summary)),
            (s("description"), s(doc.description)),
            (
                s("runbook_url"),
                format!("{RUNBOOK_BASE}#{}", anchor(doc.name)),
            ),
        ],
    }
}

pub const TARGET_DOWN: AlertDoc = AlertDoc {
    name: "HaleTargetDown",
    severity: "critical",
    summary: "target {{ $labels.target }} is down",
    description:
        "hale's latest checks of {{ $labels.target }} failed for 2 minutes (target_up is 0).",
};
pub const TARGET_SLOW: AlertDoc = AlertDoc {
    name: "HaleTargetLatencyHigh",
    severity: "warning",
    summary: "p95 check latency of {{ $labels.target }} is above its target",
    description: "Over the last 10 minutes, 5% of the scheduled checks of {{ $labels.target }} took longer than the p95 latency target.",
};
pub const TARGET_RESTARTS: AlertDoc = AlertDoc {
    name: "HaleTargetRestartingTooOften",
    severity: "warning",
    summary: "{{ $labels.target }} restarted too often this week",
    description: "{{ $labels.target }} was restarted (its child exited or a heal restarted it) at least as often as the SLO allows in 7 days.",
};
pub const BREAKER_OPEN: AlertDoc = AlertDoc {
    name: "HaleCircuitBreakerOpen",
    severity: "warning",
    summary: "circuit breaker of {{ $labels.target }} is open",
    description: "The breaker of {{ $labels.target }} has been open for 2 minutes: on-demand checks (/health/all) are answered circuit_open, while each scheduled check still probes it as the breaker's trial.",
};
pub const SCORE_LOW: AlertDoc = AlertDoc {
    name: "HaleHealthScoreLow",
    severity: "warning",
    summary: "hale's health score is below 80",
    description: "The weighted health of all targets has been below 80 (of 100) for 5 minutes.",
};
pub const HTTP_5XX: AlertDoc = AlertDoc {
    name: "HaleHttp5xxAnswers",
    severity: "critical",
    summary: "{{ $labels.service }} answered more than 10 requests with a 5xx in 5 minutes",
    description:
        "hale's {{ $labels.service }} is failing requests (http_requests_total with a 5xx status).",
};
pub const HTTP_SLOW: AlertDoc = AlertDoc {
    name: "HaleHttpLatencyHigh",
    severity: "warning",
    summary: "p99 latency of {{ $labels.service }} is above 5 s",
    description: "Over the last 5 minutes, 1% of the requests to hale's {{ $labels.service }} took longer than 5 seconds.",
};
pub const ROWS_DROPPED: AlertDoc = AlertDoc {
    name: "HaleCheckRowsDropped",
    severity: "critical",
    summary: "hale dropped health-check rows",
    description: "The check writer gave up on rows in the last 5 minutes (store_rows_dropped_total): the database is not accepting writes.",
};
pub const SERVICE_DOWN: AlertDoc = AlertDoc {
    name: "HaleServiceDown",
    severity: "critical",
    summary: "hale's {{ $labels.service }} cannot do its job",
    description: "service_up of {{ $labels.service }} has been 0 for 1 minute: health checks cannot be stored or the check writer stopped.",
};
pub const SCRAPE_DOWN: AlertDoc = AlertDoc {
    name: "HaleScrapeDown",
    severity: "critical",
    summary: "Prometheus cannot scrape hale at {{ $labels.instance }}",
    description: "The scrape of {{ $labels.instance }} (job hale) has failed for 1 minute: hale is not running or not listening.",
};

pub const MCP_SERVER_DOWN: AlertDoc = AlertDoc {
    name: "HaleMcpServerDown",
    severity: "warning",
    summary: "the MCP WebBridge is not connected to MCP server {{ $labels.server }}",
    description: "mcp_server_ready of {{ $labels.server }} has been 0 for 2 minutes: its tools are missing from GET /tools and calls to them answer 503. GET /servers on the bridge shows its last error and stderr.",
};

pub const WORKFLOW_RUN_INTERRUPTED: AlertDoc = AlertDoc {
    name: "HaleWorkflowRunInterrupted",
    severity: "critical",
    summary: "a run of workflow {{ $labels.workflow }} was interrupted",
    description: "A run of {{ $labels.workflow }} ended interrupted in the last 15 minutes (workflow_runs_finished_total{status=\"interrupted\"}): hale stopped during a step that cannot be run again, and the run was not resumed. hale announces the same run itself (rule workflow_run_interrupted).",
};
pub const WORKFLOW_APPROVAL_WAITING: AlertDoc = AlertDoc {
    name: "HaleWorkflowApprovalWaiting",
    severity: "warning",
    summary: "workflow runs have waited for an approval for 4 hours",
    description: "workflow_approvals_waiting has been above 0 for 4 hours on {{ $labels.instance }}: a run waits for someone with the operate token to approve or reject it (GET :4000/workflow/ID/runs shows the runs waiting).",
};
pub const WORKFLOW_QUEUE_STUCK: AlertDoc = AlertDoc {
    name: "HaleWorkflowQueueStuck",
    severity: "warning",
    summary: "the workflow queue on {{ $labels.instance }} has not moved for 15 minutes",
    description: "Runs have been queued for a free slot for 15 minutes (workflow_queue_depth) and no run ended in that time (workflow_runs_finished_total), so no slot was freed: the runs holding the slots hang, wait, or the engine stopped.",
};

/// The SLOs as Sloth names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slo {
    Availability,
    Latency,
}

impl Slo {
    pub const ALL: [Slo; 2] = [Slo::Availability, Slo::Latency];

    /// `sloth_slo`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Availability => labels::SLO_AVAILABILITY,
            Self::Latency => labels::SLO_LATENCY,
        }
    }

    /// `sloth_id`: the service and the SLO.
    pub fn id(self) -> String {
        format!("{SLOTH_SERVICE}-{}", self.name())
    }

    fn selector(self) -> String {
        format!(
            r#"{{sloth_id="{}", sloth_service="{SLOTH_SERVICE}", sloth_slo="{}"}}"#,
            self.id(),
            self.name()
        )
    }

    fn sloth_labels(self) -> Vec<(String, String)> {
        vec![
            (s("sloth_id"), self.id()),
            (s("sloth_service"), s(SLOTH_SERVICE)),
            (s("sloth_slo"), s(self.name())),
        ]
    }

    pub fn page(self) -> AlertDoc {
        match self {
            Self::Availability => AlertDoc {
                name: "HaleAvailabilityBudgetBurnPage",
                severity: "critical",
                summary: "{{ $labels.target }} is burning its availability error budget fast",
                description: "Failed scheduled checks of {{ $labels.target }} will use up the availability error budget within days if this goes on (multi-window burn rate, page).",
            },
            Self::Latency => AlertDoc {
                name: "HaleLatencyBudgetBurnPage",
                severity: "critical",
                summary: "{{ $labels.target }} is burning its latency error budget fast",
                description: "Too many scheduled checks of {{ $labels.target }} are slower than the p95 target: the latency budget will be gone within days (multi-window burn rate, page).",
            },
        }
    }

    pub fn ticket(self) -> AlertDoc {
        match self {
            Self::Availability => AlertDoc {
                name: "HaleAvailabilityBudgetBurnTicket",
                severity: "warning",
                summary: "{{ $labels.target }} is slowly burning its availability error budget",
                description: "Failed scheduled checks of {{ $labels.target }} use the availability error budget faster than the SLO window allows (multi-window burn rate, ticket).",
            },
            Self::Latency => AlertDoc {
                name: "HaleLatencyBudgetBurnTicket",
                severity: "warning",
                summary: "{{ $labels.target }} is slowly burning its latency error budget",
                description: "Scheduled checks of {{ $labels.target }} are slower than the p95 target more often than the SLO window allows (multi-window burn rate, ticket).",
            },
        }
    }
}

/// `sloth_service` of every hale SLO.
pub const SLOTH_SERVICE: &str = "hale";

/// Every alert the exported rule files hold, for docs/runbooks.md and its test.
pub fn alert_docs() -> Vec<AlertDoc> {
    let mut docs = vec![
        TARGET_DOWN,
        TARGET_SLOW,
        TARGET_RESTARTS,
        BREAKER_OPEN,
        SCORE_LOW,
        HTTP_5XX,
        HTTP_SLOW,
        ROWS_DROPPED,
        SERVICE_DOWN,
        SCRAPE_DOWN,
        MCP_SERVER_DOWN,
        WORKFLOW_RUN_INTERRUPTED,
        WORKFLOW_APPROVAL_WAITING,
        WORKFLOW_QUEUE_STUCK,
    ];
    for slo in Slo::ALL {
        docs.push(slo.page());
        docs.push(slo.ticket());
    }
    docs
}

/// The `threshold` label value of the p95 target on `health_check_fast_total`: hale counts the scheduled checks
/// within the objective itself, so any whole number of milliseconds is a valid target.
pub fn latency_bucket(slo: &SloConfig) -> String {
    latency_threshold(slo.p95_latency_target_ms)
}

/// The share of a target's scheduled checks over `window` slower than the p95 target: the latency SLI's
/// error ratio. Its denominator is the checks that have a latency (all scheduled checks but those an open
/// breaker skipped); a target without one has no ratio.
fn slow_share(window: &str, le: &str) -> String {
    let fast = names::HEALTH_CHECK_FAST_TOTAL;
    let total = names::HEALTH_CHECK_TOTAL;
    format!(
        "1 - (\n  sum by (target) (increase({fast}{{threshold=\"{le}\"}}[{window}]))\n  /\n  (sum by (target) (increase({total}{{outcome!=\"circuit_open\"}}[{window}])) > 0)\n)"
    )
}

/// Alerts on the targets and on hale itself.
pub fn hale_rules(slo: &SloConfig) -> Result<RuleFile, String> {
    let le = latency_bucket(slo);
    let slow_budget = num(1.0 - objective(Slo::Latency, slo));
    let targets = Group {
        name: s("hale-targets"),
        rules: vec![
            alert(
                TARGET_DOWN,
                format!("{} == 0", names::TARGET_UP),
                Some(s("2m")),
                &[],
            ),
            alert(
                TARGET_SLOW,
                // p95 above the target is more than 5% of the checks slower than it.
                format!(
                    "(\n{}\n) > {slow_budget}",
                    slow_share("10m", &le)
                        .lines()
                        .map(|line| format!("  {line}"))
                        .collect::<Vec<_>>()
                        .join("\n")
                ),
                Some(s("10m")),
                &[],
            ),
            alert(
                TARGET_RESTARTS,
                format!(
                    "sum by (target) (increase({}[7d])) >= {}",
                    names::RESTARTS_TOTAL,
                    slo.max_restarts_per_week
                ),
                None,
                &[],
            ),
            alert(
                BREAKER_OPEN,
                format!("{} == 2", names::CIRCUIT_BREAKER_STATE),
                Some(s("2m")),
                &[],
            ),
            alert(
                SCORE_LOW,
                format!("{} < 80", names::HEALTH_SCORE),
                Some(s("5m")),
                &[],
            ),
        ],
    };
    let me = Group {
        name: s("hale-self"),
        rules: vec![
            alert(
                HTTP_5XX,
                format!(
                    r#"sum by (service) (increase({}{{status=~"5.."}}[5m])) > 10"#,
                    names::HTTP_REQUESTS_TOTAL
                ),
                None,
                &[],
            ),
            alert(
                HTTP_SLOW,
                format!(
                    "histogram_quantile(0.99, sum by (service, le) (rate({}_bucket[5m]))) > 5",
                    names::HTTP_REQUEST_DURATION_SECONDS
                ),
                Some(s("5m")),
                &[],
            ),
            alert(
                ROWS_DROPPED,
                format!("increase({}[5m]) > 0", names::STORE_ROWS_DROPPED_TOTAL),
                None,
                &[],
            ),
            alert(
                SERVICE_DOWN,
                format!("{} == 0", names::SERVICE_UP),
                Some(s("1m")),
                &[],
            ),
            alert(
                SCRAPE_DOWN,
                format!(r#"up{{job="{SCRAPE_JOB}"}} == 0"#),
                Some(s("1m")),
                &[],
            ),
            alert(
                MCP_SERVER_DOWN,
                format!("{} == 0", names::MCP_SERVER_READY),
                Some(s("2m")),
                &[],
            ),
        ],
    };
    let workflows = Group {
        name: s("hale-workflows"),
        rules: vec![
            // `target` is the workflow's id, as on hale's own announcement of the same run, so
            // Alertmanager groups them together and the announcement holds this echo back.
            alert(
                WORKFLOW_RUN_INTERRUPTED,
                format!(
                    r#"label_replace(sum by (instance, workflow) (increase({}{{status="interrupted"}}[15m])) > 0, "target", "$1", "workflow", "(.+)")"#,
                    names::WORKFLOW_RUNS_FINISHED_TOTAL
                ),
                None,
                &[],
            ),
            alert(
                WORKFLOW_APPROVAL_WAITING,
                format!("sum by (instance) ({}) > 0", names::WORKFLOW_APPROVALS_WAITING),
                Some(s("4h")),
                &[],
            ),
            // Runs started (accepted) keep counting while the queue is stuck, so they cannot tell a
            // stuck queue from a busy one; a queued run only moves when a run in progress ends and frees
            // its slot. A queue never empty for 15 minutes with no run ended in them is stuck; a busy
            // healthy queue ends runs.
            alert(
                WORKFLOW_QUEUE_STUCK,
                format!(
                    "min by (instance) (min_over_time({}[15m])) > 0 and on (instance) sum by (instance) (increase({}[15m])) == 0",
                    names::WORKFLOW_QUEUE_DEPTH,
                    names::WORKFLOW_RUNS_FINISHED_TOTAL
                ),
                None,
                &[],
            ),
        ],
    };
    Ok(RuleFile {
        file: "hale-rules.yml",
        groups: vec![targets, me, workflows],
    })
}

/// The SLI error ratio of an SLO over one window, per target, from scheduled checks only (the only ones
/// `health_check_total` counts): bad checks over all checks counted over the window (Pyrra's ratio of
/// counts, which is how hale computes its SLO). A target without a check in the window has no ratio ("no
/// data"): the `> 0` on the denominator drops it rather than recording 0/0 = NaN, which would poison every
/// rule built on it.
fn sli_error(slo: Slo, window: &str, le: &str) -> String {
    match slo {
        Slo::Availability => {
            let total = names::HEALTH_CHECK_TOTAL;
            format!(
                "(\n  sum by (target) (increase({total}{{outcome!=\"up\"}}[{window}]))\n  or\n  sum by (target) (increase({total}[{window}])) * 0\n)\n/\n(sum by (target) (increase({total}[{window}])) > 0)"
            )
        }
        Slo::Latency => slow_share(window, le),
    }
}

/// The objective (share of good checks) of an SLO.
pub fn objective(slo: Slo, config: &SloConfig) -> f64 {
    match slo {
        Slo::Availability => config.availability_target_percent / 100.0,
        Slo::Latency => 0.95,
    }
}

/// The recording rules and burn-rate alerts of both SLOs.
pub fn slo_rules(config: &SloConfig) -> Result<RuleFile, String> {
    let le = latency_bucket(config);
    let days = config.window_days;
    let period = format!("{days}d");
    let mut groups = Vec::new();
    for slo in Slo::ALL {
        let selector = slo.selector();
        let mut sli = Vec::new();
        for window in SLI_WINDOWS {
            let mut labels = slo.sloth_labels();
            labels.push((s("sloth_window"), s(window)));
            sli.push(Rule::Record {
                record: format!("slo:sli_error:ratio_rate{window}"),
                expr: sli_error(slo, window, &le),
                labels,
            });
        }
        if !SLI_WINDOWS.contains(&period.as_str()) {
            // The SLO window's ratio, counted like the others (not Sloth's mean of 5-minute ratios).
            let mut labels = slo.sloth_labels();
            labels.push((s("sloth_window"), period.clone()));
            sli.push(Rule::Record {
                record: format!("slo:sli_error:ratio_rate{period}"),
                expr: sli_error(slo, &period, &le),
                labels,
            });
        }

        let objective = objective(slo, config);
        let budget = 1.0 - objective;
        let meta = |record: &str, expr: String| Rule::Record {
            record: s(record),
            expr,
            labels: slo.sloth_labels(),
        };
        let on = "on (sloth_id, sloth_slo, sloth_service) group_left";
        let meta_rules = vec![
                meta("slo:objective:ratio", format!("vector({})", num(objective))),
                meta("slo:error_budget:ratio", format!("vector({})", num(budget))),
                meta("slo:time_period:days", format!("vector({days})")),
                meta(
                    "slo:current_burn_rate:ratio",
                    format!("slo:sli_error:ratio_rate5m{selector}\n/ {on}\nslo:error_budget:ratio{selector}"),
                ),
                meta(
                    "slo:period_burn_rate:ratio",
                    format!("slo:sli_error:ratio_rate{period}{selector}\n/ {on}\nslo:error_budget:ratio{selector}"),
                ),
                meta(
                    "slo:period_error_budget_remaining:ratio",
                    format!("1 - slo:period_burn_rate:ratio{selector}"),
                ),
        ];

        let burn = |w: &burn::BurnPair| {
            let threshold = format!("({} * {})", num(w.burn_rate(days)), num(budget));
            format!(
                "(\n  max(slo:sli_error:ratio_rate{short}{selector} > {threshold}) without (sloth_window)\n  and\n  max(slo:sli_error:ratio_rate{long}{selector} > {threshold}) without (sloth_window)\n)",
                short = w.short(),
                long = w.long(),
            )
        };
        let alert_of = |severity: BurnSeverity, doc: AlertDoc, sloth_severity: &str| {
            let pairs: Vec<&burn::BurnPair> = BURN_PAIRS
                .iter()
                .filter(|w| w.severity == severity)
                .collect();
            let exprs: Vec<String> = pairs.iter().map(|w| burn(w)).collect();
            // The pairs of one severity share their `for` (a test of the table says so).
            let for_ = pairs.first().map(|w| burn::duration(w.for_s));
            alert(
                doc,
                exprs.join("\nor\n"),
                for_,
                &[
                    ("sloth_severity", sloth_severity),
                    ("sloth_slo", slo.name()),
                ],
            )
        };
        // One group per SLO, in dependency order. Prometheus evaluates the rules of a group one after
        // another, so a rule reading a recording sees this evaluation's value; across groups it could see
        // the previous one (and `promtool test rules` evaluates groups in no fixed order).
        let alerts = [
            alert_of(BurnSeverity::Page, slo.page(), "page"),
            alert_of(BurnSeverity::Ticket, slo.ticket(), "ticket"),
        ];
        groups.push(Group {
            name: format!("hale-slo-{}", slo.id()),
            rules: sli.into_iter().chain(meta_rules).chain(alerts).collect(),
        });
    }
    Ok(RuleFile {
        file: "hale-slo-rules.yml",
        groups,
    })
}

/// Both rule files for this SLO config, with the default `alerts.runbook_base_url`.
pub fn rule_files(config: &SloConfig) -> Result<Vec<RuleFile>, String> {
    rule_files_linked(config, &crate::config::default_runbook_base_url())
}

/// Both rule files, every alert with the labels it shares with hale's own alerts (`class`, `slo`) and an
/// absolute `runbook_url` under `runbook_base_url` (see `export::alertmanager`).
pub fn rule_files_linked(
    config: &SloConfig,
    runbook_base_url: &str,
) -> Result<Vec<RuleFile>, String> {
    let mut files = vec![hale_rules(config)?, slo_rules(config)?];
    super::alertmanager::label_alerts(&mut files, runbook_base_url)?;
    Ok(files)
}

/// A YAML double-quoted scalar (JSON's string syntax is a subset of it).
fn quoted(value: &str) -> String {
    // Serialising a `&str` cannot fail.
    serde_json::to_string(value).expect("a string serialises")
}

/// A rule expression: one line quoted, several as a literal block.
fn expr_yaml(out: &mut String, indent: &str, expr: &str) {
    if expr.contains('\n') {
        let _ = writeln!(out, "{indent}expr: |-");
        for line in expr.lines() {
            let _ = writeln!(out, "{indent}  {line}");
        }
    } else {
        let _ = writeln!(out, "{indent}expr: {}", quoted(expr));
    }
}

fn map_yaml(out: &mut String, indent: &str, key: &str, pairs: &[(String, String)]) {
    if pairs.is_empty() {
        return;
    }
    let _ = writeln!(out, "{indent}{key}:");
    for (k, v) in pairs {
        let _ = writeln!(out, "{indent}  {k}: {}", quoted(v));
    }
}

impl RuleFile {
    /// The file as Prometheus reads it.
    pub fn to_yaml(&self, header: &str) -> String {
        let mut out = String::new();
        for line in header.lines() {
            let _ = writeln!(out, "# {line}");
        }
        out.push_str("groups:\n");
        for group in &self.groups {
            let _ = writeln!(out, "  - name: {}", quoted(&group.name));
            out.push_str("    rules:\n");
            for rule in &group.rules {
                match rule {
                    Rule::Record {
                        record,
                        expr,
                        labels,
                    } => {
                        let _ = writeln!(out, "      - record: {}", quoted(record));
                        expr_yaml(&mut out, "        ", expr);
                        map_yaml(&mut out, "        ", "labels", labels);
                    }
                    Rule::Alert {
                        alert,
                        expr,
                        for_,
                        labels,
                        annotations,
                    } => {
                        let _ = writeln!(out, "      - alert: {}", quoted(alert));
                        expr_yaml(&mut out, "        ", expr);
                        if let Some(for_) = for_ {
                            let _ = writeln!(out, "        for: {for_}");
                        }
                        map_yaml(&mut out, "        ", "labels", labels);
                        map_yaml(&mut out, "        ", "annotations", annotations);
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_written_without_float_noise() {
        assert_eq!(num(1.0 - 0.995), "0.005");
        assert_eq!(num(BURN_PAIRS[3].burn_rate(7)), "0.2333");
    }

    #[test]
    fn any_latency_target_is_its_own_le() {
        let slo = SloConfig {
            p95_latency_target_ms: 230,
            ..SloConfig::default()
        };
        assert_eq!(latency_bucket(&slo), "0.23");
        assert_eq!(latency_bucket(&SloConfig::default()), "0.2");
        let rules = slo_rules(&slo).unwrap();
        let latency = rules.groups[1].rules[0].expr();
        assert!(
            latency.contains("health_check_fast_total{threshold=\"0.23\"}[5m]"),
            "{latency}"
        );
    }
}
