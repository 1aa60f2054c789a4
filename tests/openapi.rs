//! The OpenAPI documents against real tools: a validator accepts the committed specs, every schema and every
//! answer carries an example that a JSON Schema validator accepts against its schema, and schemathesis, a
//! schema-driven fuzzer, finds no 5xx and no response outside its own schema on any of the three services of
//! a running hale (with every role's token, so the routes that change something are exercised too).

// A test crate: an unwrap is an assertion, and tests/common sets a child's rlimit in `pre_exec`.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

use hale::kind::ServiceKind;
use serde_json::{json, Value};

use common::config::tcp_targets_config;
use common::process::HaleProcess;
use common::receivers::CountingTarget;

const ADMIN: &str = "openapi-admin-token-cccccccccccc";

fn run(program: &str, args: &[&str]) -> std::process::Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program} (scripts/test installs it with pip): {e}"))
}

#[test]
fn every_committed_spec_passes_openapi_spec_validator() {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi");
    for kind in ServiceKind::ALL {
        let file = folder.join(format!("{}.json", kind.as_str()));
        let out = run(
            "python3",
            &["-m", "openapi_spec_validator", file.to_str().unwrap()],
        );
        assert!(
            out.status.success(),
            "{} does not validate:\n{}{}",
            file.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // The validator can fail: a document without its required `info` is refused.
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.json");
    std::fs::write(&broken, r#"{"openapi": "3.1.0", "paths": {}}"#).unwrap();
    assert!(!run(
        "python3",
        &["-m", "openapi_spec_validator", broken.to_str().unwrap()]
    )
    .status
    .success());
}

/// The OpenAPI document `hale export openapi` writes for `kind` (the committed copy is kept equal to it by
/// `committed_openapi_documents_match_the_code` in tests/api.rs).
fn generated(kind: ServiceKind) -> Value {
    serde_json::from_str(&hale::cli::openapi_text(kind).expect("generate the document"))
        .expect("JSON")
}

/// One example in a document: where it is, its value, and the schema it must be valid against (JSON
/// pointers into the document).
#[derive(Debug)]
struct Example {
    at: String,
    value: Value,
    schema: String,
}

fn pointer_token(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// Every example in the document. An `example` (or each of the `examples`) of a media type, a parameter or
/// a header belongs to its `schema`; one of a schema belongs to that schema. The keys of `properties` are
/// property names, never keywords.
fn examples_in(doc: &Value) -> Vec<Example> {
    fn walk(node: &Value, at: &str, names_only: bool, found: &mut Vec<Example>) {
        match node {
            Value::Object(map) => {
                if !names_only {
                    let schema = if map.contains_key("schema") {
                        format!("{at}/schema")
                    } else {
                        at.to_owned()
                    };
                    if let Some(value) = map.get("example") {
                        found.push(Example {
                            at: format!("{at}/example"),
                            value: value.clone(),
                            schema: schema.clone(),
                        });
                    }
                    match map.get("examples") {
                        // A schema's `examples`: a list of values.
                        Some(Value::Array(values)) => {
                            found.extend(values.iter().enumerate().map(|(i, value)| Example {
                                at: format!("{at}/examples/{i}"),
                                value: value.clone(),
                                schema: schema.clone(),
                            }))
                        }
                        // A media type's or parameter's `examples`: Example Objects by name.
                        Some(Value::Object(named)) => {
                            for (name, example) in named {
                                if let Some(value) = example.get("value") {
                                    found.push(Example {
                                        at: format!("{at}/examples/{}/value", pointer_token(name)),
                                        value: value.clone(),
                                        schema: schema.clone(),
                                    });
                                }
                            }
                        }
                        _ => {}
                    }
                }
                for (key, child) in map {
                    if !names_only && (key == "example" || key == "examples") {
                        continue;
                    }
                    let child_at = format!("{at}/{}", pointer_token(key));
                    walk(child, &child_at, !names_only && key == "properties", found);
                }
            }
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    walk(item, &format!("{at}/{i}"), false, found);
                }
            }
            _ => {}
        }
    }
    let mut found = Vec::new();
    walk(doc, "", false, &mut found);
    found
}

fn has_example(schema: &Value) -> bool {
    schema.get("example").is_some()
        || schema
            .get("examples")
            .and_then(Value::as_array)
            .is_some_and(|list| !list.is_empty())
}

/// True when a reader of `schema` sees an example: its own, the one of the component it refers to, or for
/// an array the one of its items.
fn shows_example(doc: &Value, schema: &Value, depth: u32) -> bool {
    if has_example(schema) {
        return true;
    }
    if depth == 0 {
        return false;
    }
    if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
        return reference
            .strip_prefix('#')
            .and_then(|pointer| doc.pointer(pointer))
            .is_some_and(|target| shows_example(doc, target, depth - 1));
    }
    schema["type"] == json!("array")
        && schema
            .get("items")
            .is_some_and(|items| shows_example(doc, items, depth - 1))
}

/// What lacks an example: component schemas, request bodies and responses (every status, the errors
/// included), and operations without a documented success answer.
fn missing_examples(doc: &Value) -> Vec<String> {
    let mut missing = Vec::new();
    let empty = serde_json::Map::new();
    let schemas = doc["components"]["schemas"].as_object().unwrap_or(&empty);
    for (name, schema) in schemas {
        if !has_example(schema) {
            missing.push(format!("component schema {name} has no example"));
        }
    }
    let media_shows_example =
        |media: &Value| has_example(media) || shows_example(doc, &media["schema"], 8);
    let paths = doc["paths"].as_object().unwrap_or(&empty);
    for (path, item) in paths {
        for method in [
            "get", "put", "post", "delete", "options", "head", "patch", "trace",
        ] {
            let Some(operation) = item.get(method) else {
                continue;
            };
            let name = format!("{} {path}", method.to_uppercase());
            let body = operation["requestBody"]["content"]
                .as_object()
                .unwrap_or(&empty);
            for (content_type, media) in body {
                if !media_shows_example(media) {
                    missing.push(format!(
                        "{name}: request body {content_type} has no example"
                    ));
                }
            }
            let responses = operation["responses"].as_object().unwrap_or(&empty);
            let answers_with_content = |code: &String| {
                code.starts_with('2')
                    && responses[code]["content"]
                        .as_object()
                        .is_some_and(|content| !content.is_empty())
            };
            if !responses.keys().any(answers_with_content) {
                missing.push(format!("{name}: no 2xx response with a body"));
            }
            for (code, response) in responses {
                let content = response["content"].as_object().unwrap_or(&empty);
                for (content_type, media) in content {
                    if !media_shows_example(media) {
                        missing.push(format!(
                            "{name}: response {code} {content_type} has no example"
                        ));
                    }
                }
            }
        }
    }
    missing
}

/// Validates each example against its schema (`$ref`s resolved within the document) with
/// openapi-schema-validator's OpenAPI 3.1 validator, which is jsonschema's Draft 2020-12 validator with the
/// OpenAPI formats (`int32`, `int64`, `double`, ...) checked, and `date-time` through rfc3339-validator.
/// All three come with openapi-spec-validator, which scripts/test installs. One line per problem.
const VALIDATE_EXAMPLES: &str = r##"
import json, sys
from urllib.parse import quote
from openapi_schema_validator import OAS31Validator, oas31_format_checker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

job = json.load(sys.stdin)
base = "urn:hale:openapi"
document = Resource.from_contents(job["document"], default_specification=DRAFT202012)
registry = Registry().with_resource(base, document)
for example in job["examples"]:
    schema = {"$ref": base + "#" + quote(example["schema"], safe="/~")}
    validator = OAS31Validator(schema, registry=registry, format_checker=oas31_format_checker)
    for error in validator.iter_errors(example["value"]):
        print(f"{example['at']}: {error.message} (at {error.json_path})")
"##;

/// The examples that are not valid against their schemas, one line each.
fn invalid_examples(doc: &Value) -> Vec<String> {
    let examples: Vec<Value> = examples_in(doc)
        .into_iter()
        .map(|e| json!({"at": e.at, "value": e.value, "schema": e.schema}))
        .collect();
    let job = json!({"document": doc, "examples": examples}).to_string();
    let mut child = Command::new("python3")
        .args(["-c", VALIDATE_EXAMPLES])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run python3: {e}"));
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(job.as_bytes())
        .expect("write the examples to python3");
    let out = child.wait_with_output().expect("python3 ends");
    assert!(
        out.status.success(),
        "the example validator failed (scripts/test installs openapi-spec-validator, which brings it):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_schema_and_every_answer_has_an_example_valid_against_its_schema() {
    for kind in ServiceKind::ALL {
        let doc = generated(kind);
        let missing = missing_examples(&doc);
        assert!(
            missing.is_empty(),
            "{}: examples are missing:\n  {}",
            kind.as_str(),
            missing.join("\n  ")
        );
        let schemas = doc["components"]["schemas"]
            .as_object()
            .map_or(0, |s| s.len());
        let examples = examples_in(&doc).len();
        assert!(
            examples >= schemas,
            "{}: {examples} examples found for {schemas} schemas",
            kind.as_str()
        );
        let invalid = invalid_examples(&doc);
        assert!(
            invalid.is_empty(),
            "{}: examples that do not match their schema:\n  {}",
            kind.as_str(),
            invalid.join("\n  ")
        );
    }
}

#[test]
fn the_example_checks_find_a_missing_and_an_invalid_example() {
    let mut doc = generated(ServiceKind::HealthProxy);
    let schemas = &mut doc["components"]["schemas"];
    // Without its example, MaintenanceWindow leaves both answers of /maintenance without one.
    for name in ["Outcome", "MaintenanceWindow"] {
        schemas[name].as_object_mut().unwrap().remove("example");
    }
    let alert = &mut schemas["AlertView"]["example"];
    alert["level"] = json!("loud"); // not in AlertLevel, which only a resolved `$ref` knows
    alert["fired_at"] = json!("yesterday"); // not a date-time
    alert.as_object_mut().unwrap().remove("rule"); // required
    doc["paths"]["/metrics"]["get"]["responses"]["200"]["content"]["text/plain; version=0.0.4"]
        ["example"] = json!(42);

    let missing = missing_examples(&doc);
    assert_eq!(
        missing,
        [
            "component schema MaintenanceWindow has no example",
            "component schema Outcome has no example",
            "GET /maintenance: response 200 application/json has no example",
            "POST /maintenance: response 201 application/json has no example",
        ],
        "{missing:#?}"
    );
    let invalid = invalid_examples(&doc);
    let expected = [
        "/components/schemas/AlertView/example: 'loud' is not one of",
        "/components/schemas/AlertView/example: 'yesterday' is not a 'date-time'",
        "/components/schemas/AlertView/example: 'rule' is a required property",
        "/paths/~1metrics/get/responses/200/content/text~1plain; version=0.0.4/example: 42 is not of type 'string'",
    ];
    for line in expected {
        assert!(
            invalid.iter().any(|found| found.starts_with(line)),
            "no {line:?} in {invalid:#?}"
        );
    }
    assert_eq!(invalid.len(), expected.len(), "{invalid:#?}");
}

#[tokio::test]
async fn schemathesis_finds_no_server_error_and_no_answer_outside_the_spec() {
    // Two targets that are always up, so that `/health/all` answers 200: its documented 503 (a target is
    // down) is about the targets, not about the request.
    let target = CountingTarget::start().await;
    let mut config = tcp_targets_config(target.addr, 2);
    config["auth"] = serde_json::json!({
        "tokens": {
            "read": {"env": "OPENAPI_TEST_READ"},
            "operate": {"env": "OPENAPI_TEST_OPERATE"},
            "admin": {"env": "OPENAPI_TEST_ADMIN"}
        }
    });
    let mut hale = HaleProcess::serve_with_env(
        &config,
        &[],
        &[
            ("OPENAPI_TEST_READ", "openapi-read-token-aaaaaaaaaaaa"),
            ("OPENAPI_TEST_OPERATE", "openapi-operate-token-bbbbbbbbb"),
            ("OPENAPI_TEST_ADMIN", ADMIN),
        ],
    )
    .await;
    let listening = hale.wait_listening(&ServiceKind::ALL).await;
    let auth = format!("Authorization: Bearer {ADMIN}");
    for kind in ServiceKind::ALL {
        let spec = format!("http://{}/openapi.json", listening[&kind]);
        let out = tokio::task::spawn_blocking({
            let auth = auth.clone();
            move || {
                run(
                    "schemathesis",
                    &[
                        "run",
                        &spec,
                        "-H",
                        &auth,
                        "--checks",
                        "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
                        "--phases",
                        "examples,coverage,fuzzing",
                        "--max-time",
                        "15",
                        // One worker: Python 3.11's `ast.parse`, which hypothesis calls while generating, is not
                        // safe across threads ("AST constructor recursion depth mismatch").
                        "--workers",
                        "1",
                        "--no-color",
                    ],
                )
            }
        })
        .await
        .unwrap();
        let report = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "schemathesis found failures on {}:\n{report}{}",
            kind.as_str(),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(report.contains("generated"), "{report}");
    }
    hale.signal("TERM");
}
