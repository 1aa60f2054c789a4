//! The OpenAPI documents against real tools: a validator accepts the committed specs, and schemathesis, a
//! schema-driven fuzzer, finds no 5xx and no response outside its own schema on any of the three services of
//! a running hale (with every role's token, so the routes that change something are exercised too).

mod common;

use std::path::Path;
use std::process::Command;

use hale::kind::ServiceKind;

use common::{tcp_targets_config, CountingTarget, HaleProcess};

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
