//! `hale export alertmanager`: an Alertmanager config that makes one outage one page. hale's alerts reach
//! Alertmanager twice over, from Prometheus (the rules of `hale export alerts`) and from hale's own
//! `alertmanager` channel; both carry the labels of `alerts::labels` (`target`, `severity`, `class`, `slo`).
//! The config groups every hale alert by `target`, sends critical ones to `hale-page` and the rest to
//! `hale-ticket`, and inhibits the echoes of an outage: a target-down alert holds back the same target's
//! burn-rate, breaker, latency and flapping alerts; what hale's own channel sends holds back the same alert
//! from Prometheus; a page holds back the ticket of the same SLO; a mass failure holds back every target's
//! alerts. This module also gives the exported rules those labels (`label_alerts`).

use std::fmt::Write as _;

use crate::alerts::labels::{self, AlertClass};
use crate::export::rules::{self, AlertDoc, Rule, RuleFile, Slo};

/// The file `hale export alertmanager` writes.
pub const FILE: &str = "alertmanager.yml";

/// The receiver of critical alerts (a pager).
pub const PAGE_RECEIVER: &str = "hale-page";
/// The receiver of every other hale alert (a ticket queue or chat).
pub const TICKET_RECEIVER: &str = "hale-ticket";
/// The root receiver of a stand-alone config, for alerts that are not hale's.
pub const DEFAULT_RECEIVER: &str = "default";

/// The labels every notification group of hale's route is made by.
pub const GROUP_BY: [&str; 1] = ["target"];

/// The class of an exported alert, by its name.
pub fn class_of(alert: &str) -> Option<AlertClass> {
    let table: [(&AlertDoc, AlertClass); 14] = [
        (&rules::TARGET_DOWN, AlertClass::TargetDown),
        (&rules::TARGET_SLOW, AlertClass::Latency),
        (&rules::TARGET_RESTARTS, AlertClass::RestartsTooOften),
        (&rules::BREAKER_OPEN, AlertClass::BreakerOpen),
        (&rules::SCORE_LOW, AlertClass::HealthScore),
        (&rules::HTTP_5XX, AlertClass::Hale),
        (&rules::HTTP_SLOW, AlertClass::Hale),
        (&rules::ROWS_DROPPED, AlertClass::Hale),
        (&rules::SERVICE_DOWN, AlertClass::Hale),
        (&rules::SCRAPE_DOWN, AlertClass::Hale),
        (&rules::MCP_SERVER_DOWN, AlertClass::Hale),
        (&rules::WORKFLOW_RUN_INTERRUPTED, AlertClass::Workflow),
        (&rules::WORKFLOW_APPROVAL_WAITING, AlertClass::Workflow),
        (&rules::WORKFLOW_QUEUE_STUCK, AlertClass::Workflow),
    ];
    if let Some((_, class)) = table.iter().find(|(doc, _)| doc.name == alert) {
        return Some(*class);
    }
    burn_slo(alert).map(|_| AlertClass::SloBurn)
}

/// The SLO of an exported burn-rate alert.
fn burn_slo(alert: &str) -> Option<Slo> {
    Slo::ALL
        .into_iter()
        .find(|slo| slo.page().name == alert || slo.ticket().name == alert)
}

/// The labels an exported alert shares with hale's own: `class`, and `slo` for a burn rate.
pub fn shared_labels(alert: &str) -> Option<Vec<(String, String)>> {
    let class = class_of(alert)?;
    let mut labels = vec![(labels::CLASS.to_owned(), class.as_str().to_owned())];
    if let Some(slo) = burn_slo(alert) {
        labels.push((labels::SLO.to_owned(), slo.name().to_owned()));
    }
    Some(labels)
}

/// Gives every alert of the rule files its shared labels and an absolute `runbook_url` under
/// `runbook_base_url`. An alert without a class is an error (a new alert must be given one in `class_of`).
pub fn label_alerts(files: &mut [RuleFile], runbook_base_url: &str) -> Result<(), String> {
    for rule in files
        .iter_mut()
        .flat_map(|f| f.groups.iter_mut())
        .flat_map(|g| g.rules.iter_mut())
    {
        if let Rule::Alert {
            alert,
            labels,
            annotations,
            ..
        } = rule
        {
            let shared = shared_labels(alert).ok_or_else(|| {
                format!("the exported alert {alert} has no class: add it to export::alertmanager::class_of")
            })?;
            for (key, value) in shared {
                labels.retain(|(k, _)| *k != key);
                labels.push((key, value));
            }
            let url = labels::runbook_url(runbook_base_url, &rules::anchor(alert));
            match annotations.iter_mut().find(|(k, _)| k == "runbook_url") {
                Some((_, value)) => *value = url,
                None => annotations.push(("runbook_url".to_owned(), url)),
            }
        }
    }
    Ok(())
}

/// One inhibit rule: while an alert matching `source` fires, alerts matching `target` with the same values
/// of `equal` are held back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InhibitRule {
    pub why: &'static str,
    pub source: Vec<String>,
    pub target: Vec<String>,
    pub equal: Vec<&'static str>,
}

fn eq(label: &str, value: &str) -> String {
    format!("{label}=\"{value}\"")
}

fn re(label: &str, regex: &str) -> String {
    format!("{label}=~\"{regex}\"")
}

/// The matcher of every hale alert (each has a class, from Prometheus and from hale alike).
pub fn hale_matcher() -> String {
    re(labels::CLASS, ".+")
}

/// The inhibit rules, in the order the file lists them.
pub fn inhibit_rules() -> Vec<InhibitRule> {
    let class = labels::CLASS;
    vec![
        InhibitRule {
            why: "a target that is down pages once: its burn-rate, breaker, latency and flapping alerts are symptoms of the same outage",
            source: vec![eq(class, AlertClass::TargetDown.as_str())],
            target: vec![re(
                class,
                &labels::alternatives(&AlertClass::HELD_BACK_BY_TARGET_DOWN),
            )],
            equal: vec!["target"],
        },
        InhibitRule {
            why: "what hale's own alertmanager channel sends holds back the same alert from Prometheus's rules (the same signal seen twice)",
            source: vec![eq(labels::SOURCE, labels::SOURCE_HALE)],
            target: vec![
                format!("{}!=\"{}\"", labels::SOURCE, labels::SOURCE_HALE),
                hale_matcher(),
            ],
            equal: vec!["target", class, labels::SLO, "severity"],
        },
        InhibitRule {
            why: "a page about an SLO holds back the ticket about the same SLO",
            source: vec![
                eq(class, AlertClass::SloBurn.as_str()),
                eq("severity", "critical"),
            ],
            target: vec![
                eq(class, AlertClass::SloBurn.as_str()),
                "severity!=\"critical\"".to_owned(),
            ],
            equal: vec!["target", labels::SLO],
        },
        InhibitRule {
            why: "a mass failure (hale's alert about every target at once, target \"*\") holds back the targets' own alerts",
            source: vec![eq(class, AlertClass::MassFailure.as_str())],
            target: vec![re(
                class,
                &labels::alternatives(&AlertClass::HELD_BACK_BY_MASS_FAILURE),
            )],
            equal: Vec::new(),
        },
    ]
}

/// A YAML single-quoted scalar (a matcher holds double quotes).
fn single_quoted(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// `key:` at `indent`, then one quoted item a line, two spaces further in.
fn list(out: &mut String, indent: &str, key: &str, items: &[String]) {
    let _ = writeln!(out, "{indent}{key}:");
    for item in items {
        let _ = writeln!(out, "{indent}  - {}", single_quoted(item));
    }
}

/// The Alertmanager config, as Alertmanager 0.22 or later reads it (`matchers`, `source_matchers`).
pub fn config_text() -> String {
    let mut out = String::new();
    out.push_str(concat!(
        "# Generated by `hale export alertmanager`: do not edit. See docs/alerts.md (paging once per outage).\n",
        "# A whole Alertmanager config for hale's alerts, from Prometheus (alerts/*.yml) and from hale's own\n",
        "# alertmanager channel alike. To merge it into your config: add the route below under your\n",
        "# `route.routes` (first: it matches hale's alerts only), add the inhibit_rules, and give the hale-page\n",
        "# and hale-ticket receivers your pager and ticket integrations.\n",
    ));
    out.push_str("route:\n");
    let _ = writeln!(out, "  receiver: {DEFAULT_RECEIVER}");
    out.push_str("  routes:\n");
    out.push_str("    # Every hale alert has a class label. One notification group per target.\n");
    let _ = writeln!(out, "    - receiver: {TICKET_RECEIVER}");
    list(&mut out, "      ", "matchers", &[hale_matcher()]);
    let group_by: Vec<String> = GROUP_BY.iter().map(|l| (*l).to_owned()).collect();
    list(&mut out, "      ", "group_by", &group_by);
    out.push_str("      group_wait: 30s\n      group_interval: 5m\n      repeat_interval: 4h\n");
    out.push_str("      routes:\n");
    let _ = writeln!(out, "        - receiver: {PAGE_RECEIVER}");
    list(
        &mut out,
        "          ",
        "matchers",
        &[eq("severity", "critical")],
    );
    out.push_str("inhibit_rules:\n");
    for rule in inhibit_rules() {
        let _ = writeln!(out, "  # {}", rule.why);
        out.push_str("  - source_matchers:\n");
        for item in &rule.source {
            let _ = writeln!(out, "      - {}", single_quoted(item));
        }
        list(&mut out, "    ", "target_matchers", &rule.target);
        if !rule.equal.is_empty() {
            let equal: Vec<String> = rule.equal.iter().map(|l| (*l).to_owned()).collect();
            list(&mut out, "    ", "equal", &equal);
        }
    }
    out.push_str("receivers:\n");
    for name in [DEFAULT_RECEIVER, PAGE_RECEIVER, TICKET_RECEIVER] {
        let _ = writeln!(out, "  - name: {name}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_exported_alert_has_a_class_and_burns_have_their_slo() {
        for doc in rules::alert_docs() {
            assert!(class_of(doc.name).is_some(), "{} has no class", doc.name);
        }
        assert_eq!(
            shared_labels("HaleAvailabilityBudgetBurnPage").unwrap(),
            vec![
                ("class".to_owned(), "slo_burn".to_owned()),
                ("slo".to_owned(), labels::SLO_AVAILABILITY.to_owned())
            ]
        );
        assert_eq!(
            shared_labels("HaleLatencyBudgetBurnTicket").unwrap()[1].1,
            labels::SLO_LATENCY
        );
        assert_eq!(
            shared_labels("HaleTargetDown").unwrap(),
            vec![("class".to_owned(), "target_down".to_owned())]
        );
        assert_eq!(class_of("NoSuchAlert"), None);
    }

    #[test]
    fn the_config_lists_routes_inhibit_rules_and_receivers() {
        let text = config_text();
        assert!(text.contains("\n  - source_matchers:\n      - 'class=\"target_down\"'\n    target_matchers:\n      - 'class=~\"slo_burn|breaker_open|latency|flapping\"'\n    equal:\n      - 'target'\n"), "{text}");
        assert!(
            text.contains("      group_by:\n        - 'target'\n"),
            "{text}"
        );
        assert!(text.ends_with("  - name: hale-ticket\n"), "{text}");
    }
}
