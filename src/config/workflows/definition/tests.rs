//! Tests of workflow definitions: the example of docs/workflows.md loads as documented, and each rule
//! refuses what it should with the JSON path and the reason.

use serde_json::{json, Value};

use super::*;
use crate::records::RiskLevel;

fn env() -> Environment {
    Environment {
        targets: vec![("api".into(), false), ("db".into(), true)],
        token_variables: vec![("operate", "HALE_OPERATE_TOKEN".into())],
    }
}

/// The example of docs/workflows.md.
fn example() -> Value {
    json!({
        "definitions": [{
            "id": "restart-api",
            "description": "drain, restart, verify",
            "inputs": {
                "target": {"type": "string"},
                "drain_s": {"type": "integer", "required": false}
            },
            "deadline_s": 900,
            "concurrency": {"limit": 1, "key": "target", "on_conflict": "queue"},
            "steps": [
                {"id": "drain", "kind": "http", "target": "{{inputs.target}}", "method": "POST",
                 "path": "/admin/drain", "body": {"seconds": "{{inputs.drain_s}}"}, "expect_status": [200, 202],
                 "timeout_s": 30, "retry": {"attempts": 3, "initial_backoff_ms": 500, "factor": 2, "cap_s": 10}},
                {"id": "restart", "kind": "command", "argv": ["systemctl", "restart", "{{inputs.target}}"],
                 "timeout_s": 120, "retry_on": ["nonzero_exit"], "inherit_env": ["SYSTEMD_LOG_LEVEL"]},
                {"id": "settle", "kind": "sleep", "duration_s": 5},
                {"id": "verify", "kind": "wait_healthy", "target": "{{inputs.target}}", "consecutive": 3,
                 "timeout_s": 300},
                {"id": "tell", "kind": "notify",
                 "message": "{{inputs.target}} restarted; drain answered {{steps.drain.output.status}}",
                 "on_failure": "continue"}
            ]
        }]
    })
}

fn load(value: &Value) -> Result<Definitions, Invalid> {
    Definitions::from_json(value, &env())
}

/// The example with `change` applied to its one workflow.
fn with(change: impl FnOnce(&mut Value)) -> Value {
    let mut v = example();
    change(&mut v["definitions"][0]);
    v
}

fn refused(value: &Value, path: &str, reason: &str) {
    let e = load(value).unwrap_err();
    assert_eq!(e.path, path, "{e:?}");
    assert!(
        e.reason.contains(reason),
        "{:?} does not say {reason:?}",
        e.reason
    );
}

/// The JSON blocks of docs/workflows.md, in order.
fn documented_blocks() -> Vec<Value> {
    let doc = include_str!("../../../../docs/workflows.md");
    doc.split("```json\n")
        .skip(1)
        .filter_map(|block| block.split("```").next())
        .map(|text| serde_json::from_str(text).unwrap())
        .collect()
}

#[test]
fn the_documented_example_is_the_tested_one_and_its_risk_section_loads() {
    let blocks = documented_blocks();
    assert_eq!(blocks.len(), 2);
    assert_eq!(
        blocks[0],
        example(),
        "docs/workflows.md and example() differ"
    );
    let d = load(&blocks[1]).unwrap();
    assert_eq!(d.risk().approval_from, RiskLevel::High);
    assert_eq!(
        d.risk().expiry(RiskLevel::Critical),
        Duration::from_secs(14_400)
    );
    assert_eq!(d.risk().patterns[0].level, RiskLevel::Critical);
}

#[test]
fn an_empty_section_has_no_workflows() {
    let d = load(&json!({})).unwrap();
    assert_eq!(d.iter().count(), 0);
    assert_eq!(d.risk(), &RiskConfig::default());
}

#[test]
fn the_documented_example_loads_with_its_defaults() {
    let d = load(&example()).unwrap();
    let w = d.get("restart-api").unwrap();
    assert_eq!(w.deadline, Duration::from_secs(900));
    assert_eq!(w.concurrency.key.as_deref(), Some("target"));
    assert_eq!(w.concurrency.on_conflict, OnConflict::Queue);
    let kinds: Vec<StepKind> = w.steps.iter().map(Step::kind).collect();
    assert_eq!(
        kinds,
        [
            StepKind::Http,
            StepKind::Command,
            StepKind::Sleep,
            StepKind::WaitHealthy,
            StepKind::Notify
        ]
    );
    let idempotent: Vec<bool> = w.steps.iter().map(|s| s.idempotent).collect();
    assert_eq!(
        idempotent,
        [false, false, true, true, false],
        "POST and commands are not idempotent"
    );
    let drain = &w.steps[0];
    assert_eq!(drain.retry.attempts, 3);
    assert_eq!(drain.retry_on, DEFAULT_RETRY_ON);
    assert_eq!(w.steps[1].retry_on, [FailureClass::NonzeroExit]);
    assert_eq!(w.steps[1].retry, RetryPolicy::default());
    assert_eq!(w.steps[4].on_failure, OnFailure::Continue);
    assert_eq!(w.steps[3].timeout, Duration::from_secs(300));
    assert_eq!(w.steps[4].timeout, Duration::from_secs(60), "the default");
    assert_eq!(
        w.source,
        example()["definitions"][0],
        "the copy a run keeps"
    );
    let levels: Vec<RiskLevel> = w.steps.iter().map(|s| s.risk.level).collect();
    assert_eq!(
        levels,
        [
            RiskLevel::Medium,
            RiskLevel::Medium,
            RiskLevel::Low,
            RiskLevel::Low,
            RiskLevel::Low
        ]
    );
    assert_eq!(w.risk().map(|r| r.level), Some(RiskLevel::Medium));
    assert!(!d.risk().needs_approval(RiskLevel::Medium));
    match &w.steps[1].action {
        Action::Command {
            argv,
            run,
            output_cap_bytes,
            kill_grace,
        } => {
            assert_eq!(argv[2].source(), "{{inputs.target}}");
            assert_eq!(run.inherit_env, ["SYSTEMD_LOG_LEVEL"]);
            assert_eq!(
                (*output_cap_bytes, *kill_grace),
                (65_536, Duration::from_secs(10))
            );
        }
        other => panic!("not a command: {other:?}"),
    }
}

#[test]
fn idempotent_defaults_follow_the_kind_and_can_be_declared() {
    let v = with(|w| {
        w["steps"] = json!([
            {"id": "a", "kind": "http", "target": "api", "path": "/x"},
            {"id": "b", "kind": "http", "target": "api", "method": "HEAD"},
            {"id": "c", "kind": "http", "target": "api", "method": "PUT"},
            {"id": "d", "kind": "heal", "target": "api"},
            {"id": "e", "kind": "command", "argv": ["true"], "idempotent": true},
            {"id": "f", "kind": "approval"},
            {"id": "g", "kind": "mcp_tool", "tool": "files__read", "arguments": {"path": "{{inputs.target}}"}}
        ]);
    });
    let d = load(&v).unwrap();
    let flags: Vec<bool> = d
        .iter()
        .next()
        .unwrap()
        .steps
        .iter()
        .map(|s| s.idempotent)
        .collect();
    assert_eq!(flags, [true, true, false, false, true, false, false]);
}

#[test]
fn ids_are_names_and_unique() {
    refused(
        &with(|w| w["id"] = json!("restart api")),
        "$.workflows.definitions[0].id",
        "contains ' '",
    );
    refused(
        &with(|w| w["id"] = json!("")),
        "$.workflows.definitions[0].id",
        "cannot be empty",
    );
    refused(
        &with(|w| w["steps"][1]["id"] = json!("drain")),
        "$.workflows.definitions[0].steps[1].id",
        "drain is the id of an earlier step",
    );
    refused(
        &with(|w| w["steps"][2]["id"] = json!("a.b")),
        "$.workflows.definitions[0].steps[2].id",
        "contains '.'",
    );
    refused(
        &with(|w| w["inputs"]["bad name"] = json!({"type": "string"})),
        "$.workflows.definitions[0].inputs.bad name",
        "contains ' '",
    );
    let mut two = example();
    let copy = two["definitions"][0].clone();
    two["definitions"].as_array_mut().unwrap().push(copy);
    refused(
        &two,
        "$.workflows.definitions[1].id",
        "restart-api is the id of an earlier workflow",
    );
}

#[test]
fn unknown_fields_and_kinds_are_refused_where_they_stand() {
    refused(
        &json!({"definitons": []}),
        "$.workflows.definitons",
        "unknown field `definitons`",
    );
    refused(
        &with(|w| w["deadline"] = json!(3)),
        "$.workflows.definitions[0].deadline",
        "unknown field `deadline`",
    );
    refused(
        &with(|w| w["steps"][2]["argv"] = json!(["x"])),
        "$.workflows.definitions[0].steps[2].argv",
        "unknown field `argv`, expected `duration_s` (in a sleep step)",
    );
    refused(
        &with(|w| w["steps"][0]["kind"] = json!("shell")),
        "$.workflows.definitions[0].steps[0].kind",
        "unknown variant `shell`",
    );
    refused(
        &with(|w| w["steps"][0]["retry"]["tries"] = json!(3)),
        "$.workflows.definitions[0].steps[0].retry.tries",
        "unknown field `tries`",
    );
    refused(
        &with(|w| w["steps"][0]["retry_on"] = json!(["4xx"])),
        "$.workflows.definitions[0].steps[0].retry_on[0]",
        "unknown variant `4xx`",
    );
    refused(
        &with(|w| w["inputs"]["target"]["type"] = json!("list")),
        "$.workflows.definitions[0].inputs.target.type",
        "unknown variant `list`",
    );
    refused(
        &with(|w| w["concurrency"]["on_conflict"] = json!("drop")),
        "$.workflows.definitions[0].concurrency.on_conflict",
        "unknown variant `drop`",
    );
    refused(
        &with(|w| w["steps"][0] = json!({"kind": "sleep", "duration_s": 1})),
        "$.workflows.definitions[0].steps[0].id",
        "every step needs an id",
    );
    refused(
        &with(|w| w["steps"][0] = json!({"id": "x", "duration_s": 1})),
        "$.workflows.definitions[0].steps[0]",
        "missing field `kind`",
    );
}

#[test]
fn ranges_name_the_field() {
    let cases: [(&str, Value, &str, &str); 10] = [
        (
            "/steps/2/timeout_s",
            json!(0),
            "steps[2].timeout_s",
            "0 is out of range 1..=604800",
        ),
        (
            "/deadline_s",
            json!(604_801),
            "deadline_s",
            "604801 is out of range 1..=604800",
        ),
        (
            "/concurrency/limit",
            json!(0),
            "concurrency.limit",
            "0 is out of range 1..=1000",
        ),
        (
            "/steps/0/retry/attempts",
            json!(0),
            "steps[0].retry.attempts",
            "0 is out of range 1..=100",
        ),
        (
            "/steps/0/retry/factor",
            json!(0.5),
            "steps[0].retry.factor",
            "0.5 is out of range 1..=10",
        ),
        (
            "/steps/0/retry/cap_s",
            json!(0),
            "steps[0].retry.cap_s",
            "0 is out of range 1..=86400",
        ),
        (
            "/steps/2/duration_s",
            json!(0),
            "steps[2].duration_s",
            "0 is out of range",
        ),
        (
            "/steps/3/consecutive",
            json!(0),
            "steps[3].consecutive",
            "0 is out of range 1..=100",
        ),
        (
            "/steps/1/kill_grace_s",
            json!(0),
            "steps[1].kill_grace_s",
            "0 is out of range 1..=600",
        ),
        (
            "/steps/1/output_cap_bytes",
            json!(0),
            "steps[1].output_cap_bytes",
            "0 is out of range",
        ),
    ];
    for (pointer, value, path, reason) in cases {
        let v = with(|w| {
            if let Some(slot) = w.pointer_mut(pointer) {
                *slot = value;
            } else {
                let (parent, field) = pointer.rsplit_once('/').unwrap();
                w.pointer_mut(parent).unwrap()[field] = value;
            }
        });
        refused(&v, &format!("$.workflows.definitions[0].{path}"), reason);
    }
    refused(
        &with(|w| w["steps"][0]["retry"] = json!({"initial_backoff_ms": 5000, "cap_s": 2})),
        "$.workflows.definitions[0].steps[0].retry.cap_s",
        "2 s is shorter than initial_backoff_ms (5000 ms)",
    );
    refused(
        &with(|w| w["steps"] = json!([])),
        "$.workflows.definitions[0].steps",
        "at least one step",
    );
}

#[test]
fn commands_take_argv_without_a_shell_and_never_a_token() {
    let step = |v: Value| with(move |w| w["steps"][1] = v);
    refused(
        &step(json!({"id": "restart", "kind": "command", "argv": []})),
        "$.workflows.definitions[0].steps[1].argv",
        "a non-empty list",
    );
    refused(
        &step(json!({"id": "restart", "kind": "command", "argv": ["/bin/sh", "-c", "rm -rf /"]})),
        "$.workflows.definitions[0].steps[1].argv",
        "sh -c runs a command line through a shell",
    );
    refused(
        &step(json!({"id": "restart", "kind": "command", "argv": ["bash", "-ec", "x"]})),
        "$.workflows.definitions[0].steps[1].argv",
        "bash -c",
    );
    refused(
        &step(json!({"id": "restart", "kind": "command", "argv": ["true"],
                     "inherit_env": ["PATH", "HALE_OPERATE_TOKEN"]})),
        "$.workflows.definitions[0].steps[1].inherit_env[1]",
        "HALE_OPERATE_TOKEN holds the operate token",
    );
    refused(
        &step(json!({"id": "restart", "kind": "command", "argv": ["true"], "env": {"A=B": "x"}})),
        "$.workflows.definitions[0].steps[1].env.A=B",
        "cannot contain '='",
    );
    refused(
        &step(json!({"id": "restart", "kind": "command", "argv": ["true"], "cwd": ""})),
        "$.workflows.definitions[0].steps[1].cwd",
        "an empty path",
    );
    let ok = step(json!({"id": "restart", "kind": "command", "argv": ["bash", "deploy.sh"]}));
    assert!(load(&ok).is_ok(), "a script file is not a command line");
}

#[test]
fn templates_are_checked_at_load_with_the_path() {
    refused(
        &with(|w| w["steps"][1]["argv"][2] = json!("{{inputs.service}}")),
        "$.workflows.definitions[0].steps[1].argv[2]",
        "names the input \"service\", which the workflow does not declare (inputs: drain_s, target)",
    );
    refused(
        &with(|w| w["steps"][0]["path"] = json!("/x/{{steps.verify.output}}")),
        "$.workflows.definitions[0].steps[0].path",
        "names the step \"verify\", which runs later",
    );
    refused(
        &with(|w| w["steps"][4]["message"] = json!("{{steps.gone.output}}")),
        "$.workflows.definitions[0].steps[4].message",
        "which the workflow does not have",
    );
    refused(
        &with(|w| w["steps"][0]["body"] = json!({"a": ["{{inputs.nope}}"]})),
        "$.workflows.definitions[0].steps[0].body.a[0]",
        "\"nope\"",
    );
    refused(
        &with(|w| w["steps"][3]["target"] = json!("{{inputs.target")),
        "$.workflows.definitions[0].steps[3].target",
        "never closed",
    );
    refused(
        &with(|w| w["concurrency"]["key"] = json!("region")),
        "$.workflows.definitions[0].concurrency.key",
        "\"region\" is not a declared input",
    );
}

#[test]
fn literal_targets_must_exist_and_http_is_well_formed() {
    refused(
        &with(|w| w["steps"][3]["target"] = json!("apii")),
        "$.workflows.definitions[0].steps[3].target",
        "\"apii\" is not a configured target (api, db)",
    );
    refused(
        &with(|w| w["steps"][0]["path"] = json!("admin/drain")),
        "$.workflows.definitions[0].steps[0].path",
        "must start with '/'",
    );
    refused(
        &with(|w| w["steps"][0]["method"] = json!("GET")),
        "$.workflows.definitions[0].steps[0].body",
        "a GET request has no body",
    );
    refused(
        &with(|w| w["steps"][0]["expect_status"] = json!([200, 700])),
        "$.workflows.definitions[0].steps[0].expect_status[1]",
        "700 is not an HTTP status",
    );
    refused(
        &with(|w| w["steps"][4]["message"] = json!(" ")),
        "$.workflows.definitions[0].steps[4].message",
        "needs a message",
    );
}

#[test]
fn risk_is_scored_per_step_with_the_configured_rules() {
    let v = json!({
        "risk": {"approval_from": "medium", "patterns": [{"match": "/admin/purge", "level": "critical"}]},
        "definitions": [{
            "id": "cleanup",
            "steps": [
                {"id": "look", "kind": "http", "target": "api", "path": "/stats"},
                {"id": "purge", "kind": "http", "target": "api", "method": "POST", "path": "/admin/purge"},
                {"id": "wipe", "kind": "command", "argv": ["sudo", "rm", "-rf", "/var/cache/api"]},
                {"id": "drop", "kind": "http", "target": "db", "method": "DELETE", "path": "/cache"},
                {"id": "heal-db", "kind": "heal", "target": "db"}
            ]
        }]
    });
    let d = load(&v).unwrap();
    let w = d.get("cleanup").unwrap();
    let levels: Vec<RiskLevel> = w.steps.iter().map(|s| s.risk.level).collect();
    assert_eq!(
        levels,
        [
            RiskLevel::Low,
            RiskLevel::Critical,
            RiskLevel::High,
            RiskLevel::High,
            RiskLevel::High
        ]
    );
    assert!(
        w.steps[4].risk.why.contains("critical target"),
        "{:?}",
        w.steps[4].risk
    );
    assert_eq!(w.risk().map(|r| r.level), Some(RiskLevel::Critical));
    assert_eq!(w.first_step_at(RiskLevel::High), Some(1));
    assert!(d.risk().needs_approval(RiskLevel::Medium));
    refused(
        &json!({"risk": {"approval_from": "severe"}}),
        "$.workflows.risk.approval_from",
        "unknown variant `severe`",
    );
    refused(
        &json!({"risk": {"expiry_s": {"high": 1}}}),
        "$.workflows.risk.expiry_s.high",
        "1 is out of range",
    );
}

#[test]
fn inputs_of_a_start_are_checked_by_name() {
    let d = load(&example()).unwrap();
    let w = d.get("restart-api").unwrap();
    let inputs = |v: Value| v.as_object().cloned().unwrap();
    assert_eq!(w.check_inputs(&inputs(json!({"target": "api"}))), Ok(()));
    assert_eq!(
        w.check_inputs(&inputs(json!({"target": "api", "drain_s": 30}))),
        Ok(())
    );
    let err = |v: Value| w.check_inputs(&inputs(v)).unwrap_err().to_string();
    assert_eq!(err(json!({})), "inputs.target: a required input is missing");
    assert_eq!(
        err(json!({"target": 3})),
        "inputs.target: expected a string, found 3"
    );
    assert_eq!(
        err(json!({"target": "api", "drain_s": 1.5})),
        "inputs.drain_s: expected an integer, found 1.5"
    );
    assert_eq!(
        err(json!({"target": "api", "region": "eu"})),
        "inputs.region: restart-api declares no input \"region\""
    );
    assert_eq!(
        w.concurrency_key(&inputs(json!({"target": "api"})))
            .as_deref(),
        Some("api")
    );
}

#[test]
fn retry_delays_grow_by_the_factor_up_to_the_cap() {
    let p = RetryPolicy {
        attempts: 5,
        initial_backoff_ms: 500,
        factor: 3.0,
        cap_s: 10,
    };
    let delays: Vec<u64> = (0..6).map(|r| p.delay(r).as_millis() as u64).collect();
    assert_eq!(delays, [500, 1_500, 4_500, 10_000, 10_000, 10_000]);
    assert_eq!(p.delay(u32::MAX), Duration::from_secs(10));
    let flat = RetryPolicy {
        factor: 1.0,
        ..RetryPolicy::default()
    };
    assert_eq!(flat.delay(7), Duration::from_secs(1));
}

#[test]
fn the_config_reads_the_definitions_against_its_targets_and_names_a_bad_one() {
    let text = |workflows: Value| {
        json!({
            "services": [{"name": "api", "url": "http://127.0.0.1:9001"}],
            "workflows": workflows
        })
        .to_string()
    };
    assert!(Config::from_json(&text(json!({})), "t.json").is_ok());
    let config = Config::from_json(&text(example()), "t.json").unwrap();
    assert_eq!(
        config
            .workflows
            .definitions()
            .get("restart-api")
            .unwrap()
            .steps
            .len(),
        5
    );
    let mut bad = example();
    bad["definitions"][0]["steps"][4]["message"] = json!("{{steps.nope.output}}");
    let e = Config::from_json(&text(bad), "t.json").unwrap_err();
    assert!(
        e.to_string()
            .contains("$.workflows.definitions[0].steps[4].message"),
        "{e}"
    );
    let mut bad = example();
    bad["definitions"][0]["steps"][0]["target"] = json!("nowhere");
    let e = Config::from_json(&text(bad), "t.json").unwrap_err();
    assert!(e.to_string().contains("nowhere"), "{e}");
}

#[test]
fn the_environment_comes_from_the_config() {
    let text = json!({
        "services": [
            {"name": "api", "url": "http://127.0.0.1:9001"},
            {"name": "db", "url": "http://127.0.0.1:9002", "critical": true}
        ],
        "auth": {"tokens": {"operate": {"env": "OPS_TOKEN"}, "admin": {"file": "/run/secrets/admin"}}}
    })
    .to_string();
    let config = Config::from_json(&text, "t.json").unwrap();
    let env = Environment::of(&config);
    assert_eq!(
        env.targets,
        vec![("api".to_owned(), false), ("db".to_owned(), true)]
    );
    assert_eq!(
        env.token_variables,
        vec![("operate", "OPS_TOKEN".to_owned())]
    );
    let v = with(|w| {
        w["steps"][1]["inherit_env"] = json!(["OPS_TOKEN"]);
    });
    let e = Definitions::from_json(&v, &env).unwrap_err();
    assert_eq!(e.path, "$.workflows.definitions[0].steps[1].inherit_env[0]");
    let heal = with(|w| w["steps"] = json!([{"id": "h", "kind": "heal", "target": "db"}]));
    let d = Definitions::from_json(&heal, &env).unwrap();
    assert_eq!(
        d.iter().next().unwrap().steps[0].risk.level,
        RiskLevel::High
    );
}
