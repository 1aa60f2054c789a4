//! Malformed configs through the real binary: `hale check-config` and `hale serve` both exit 2 with one
//! message naming the file, the JSON path and the reason, and `serve` touches nothing.

// A test crate: an unwrap is an assertion, and tests/common sets a child's rlimit in `pre_exec`.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use hale::config::Config;

use common::process::{exit_code, run_hale};

/// A malformed config, the JSON path its error must name and a piece of the reason.
struct Case {
    what: &'static str,
    text: &'static str,
    path: &'static str,
    reason: &'static str,
}

const CASES: &[Case] = &[
    Case {
        what: "bad JSON (truncated)",
        text: r#"{"listen": "#,
        path: "$.listen",
        reason: "EOF while parsing a value",
    },
    Case {
        what: "empty file",
        text: "",
        path: "$",
        reason: "EOF while parsing a value",
    },
    Case {
        what: "trailing characters",
        text: r#"{} x"#,
        path: "$",
        reason: "trailing characters",
    },
    Case {
        what: "unknown top-level field",
        text: r#"{"lisen": {}}"#,
        path: "$.lisen",
        reason: "unknown field `lisen`, expected one of `listen`",
    },
    Case {
        what: "unknown field in a service",
        text: r#"{"services": [{"name": "a", "url": "http://127.0.0.1:9/", "timeoutms": 5}]}"#,
        path: "$.services[0].timeoutms",
        reason: "unknown field `timeoutms`",
    },
    Case {
        what: "wrong type",
        text: r#"{"http": {"workers": "two"}}"#,
        path: "$.http.workers",
        reason: "invalid type: string \"two\", expected usize",
    },
    Case {
        what: "negative number",
        text: r#"{"http": {"workers": -1}}"#,
        path: "$.http.workers",
        reason: "invalid value: integer `-1`",
    },
    Case {
        what: "bad address",
        text: r#"{"listen": {"boss_api": "localhost:4000"}}"#,
        path: "$.listen.boss_api",
        reason: "\"localhost:4000\" is not an address like 127.0.0.1:3002",
    },
    Case {
        what: "port out of range",
        text: r#"{"listen": {"mcp_bridge": "127.0.0.1:70000"}}"#,
        path: "$.listen.mcp_bridge",
        reason: "\"127.0.0.1:70000\" is not an address like 127.0.0.1:3002",
    },
    Case {
        what: "status as a string",
        text: r#"{"services": [{"name": "a", "url": "http://127.0.0.1:1/", "expected_status": "200"}]}"#,
        path: "$.services[0].expected_status",
        reason: "\"200\" is not a status code or a list of status codes",
    },
    Case {
        what: "one address for two services",
        text: r#"{"listen": {"health_proxy": "127.0.0.1:5000", "mcp_bridge": "127.0.0.1:5000"}}"#,
        path: "$.listen.mcp_bridge",
        reason: "address 127.0.0.1:5000 is already used by listen.health_proxy",
    },
    Case {
        what: "duplicate service names",
        text: r#"{"services": [
            {"name": "api", "url": "http://127.0.0.1:8080/health"},
            {"name": "api", "url": "http://127.0.0.1:8081/health"}
        ]}"#,
        path: "$.services[1].name",
        reason: "duplicate service name \"api\"",
    },
    Case {
        what: "invalid service name",
        text: r#"{"services": [{"name": "my api", "url": "http://127.0.0.1:8080/"}]}"#,
        path: "$.services[0].name",
        reason: "name \"my api\" contains ' '",
    },
    Case {
        what: "missing required field",
        text: r#"{"services": [{"name": "api"}]}"#,
        path: "$.services[0]",
        reason: "missing field `url`",
    },
    Case {
        what: "unsupported URL scheme",
        text: r#"{"services": [{"name": "api", "url": "ftp://127.0.0.1/"}]}"#,
        path: "$.services[0].url",
        reason: "has scheme \"ftp\"",
    },
    Case {
        what: "credentials in a URL",
        text: r#"{"services": [{"name": "api", "url": "http://user:secret@127.0.0.1/"}]}"#,
        path: "$.services[0].url",
        reason: "carries credentials in the URL",
    },
    Case {
        what: "a target that is hale's own /health/all",
        text: r#"{"services": [{"name": "me", "url": "http://127.0.0.1:3002/health/all"}]}"#,
        path: "$.services[0].url",
        reason: "http://127.0.0.1:3002/health/all is hale's own /health/all (listen.health_proxy 127.0.0.1:3002); hale does not probe its own aggregating route",
    },
    Case {
        what: "hale's own /health/all by name, listening on every interface",
        text: r#"{"listen": {"health_proxy": "0.0.0.0:3100"},
                  "services": [{"name": "ok", "url": "http://127.0.0.1:3100/health"},
                               {"name": "me", "url": "http://LocalHost:3100/health/all/"}]}"#,
        path: "$.services[1].url",
        reason: "is hale's own /health/all (listen.health_proxy 0.0.0.0:3100)",
    },
    Case {
        what: "timeout longer than the interval",
        text: r#"{"services": [{"name": "api", "url": "http://127.0.0.1/", "timeout_ms": 5000, "interval_s": 1}]}"#,
        path: "$.services[0].timeout_ms",
        reason: "timeout 5000 ms is longer than the interval of 1 s",
    },
    Case {
        what: "value out of range",
        text: r#"{"storage": {"flush_interval_ms": 5}}"#,
        path: "$.storage.flush_interval_ms",
        reason: "5 is out of range 10..=250",
    },
    Case {
        what: "a page cache too small to give each pooled connection 1 MiB",
        text: r#"{"storage": {"cache_mb": 4}}"#,
        path: "$.storage.cache_mb",
        reason: "4 is out of range 8..=4096",
    },
    Case {
        what: "impossible breaker threshold",
        text: r#"{"breaker": {"failure_threshold": 0}}"#,
        path: "$.breaker.failure_threshold",
        reason: "0 is out of range 1..=1000",
    },
    Case {
        what: "a CORS origin with a path",
        text: r#"{"http": {"cors_origins": ["https://example.com/app"]}}"#,
        path: "$.http.cors_origins[0]",
        reason: "is not an origin",
    },
    Case {
        what: "the whole config as an array",
        text: "[]",
        path: "$",
        reason: "expected an object with named fields, found an array",
    },
    Case {
        what: "a section as an array",
        text: r#"{"listen": ["127.0.0.1:1"]}"#,
        path: "$.listen",
        reason: "expected an object with named fields, found an array",
    },
    Case {
        what: "a service as an array of its fields",
        text: r#"{"services": [{"name": "a", "url": "http://127.0.0.1/"}, ["b", "http://127.0.0.1/"]]}"#,
        path: "$.services[1]",
        reason: "expected an object with named fields, found an array",
    },
    Case {
        what: "null instead of an object",
        text: "null",
        path: "$",
        reason: "invalid type: null, expected struct Config",
    },
    Case {
        what: "a self-watch interval too short to be modest",
        text: r#"{"monitor": {"self_watch_interval_s": 5}}"#,
        path: "$.monitor.self_watch_interval_s",
        reason: "5 is out of range: 0 (off) or 10..=86400",
    },
];

fn write_config(dir: &Path, text: &str) -> String {
    let path = dir.join("bad config.json");
    std::fs::write(&path, text).expect("write the config");
    path.display().to_string()
}

/// Asserts the one-line error hale prints for a bad config: `hale: FILE: PATH: REASON`.
fn assert_names_the_problem(case: &Case, file: &str, stderr: &str) {
    let expected = format!("hale: {file}: {}: ", case.path);
    assert!(
        stderr.starts_with(&expected),
        "{}: stderr should start with {expected:?}, got {stderr:?}",
        case.what
    );
    assert!(
        stderr.contains(case.reason),
        "{}: stderr should contain {:?}, got {stderr:?}",
        case.what,
        case.reason
    );
    assert_eq!(
        stderr.lines().count(),
        1,
        "{}: one line: {stderr:?}",
        case.what
    );
}

#[test]
fn malformed_configs_are_rejected_in_process_with_their_path() {
    for case in CASES {
        let err = Config::from_json(case.text, "inline.json")
            .expect_err(case.what)
            .to_string();
        let expected = format!("inline.json: {}: ", case.path);
        assert!(
            err.starts_with(&expected) && err.contains(case.reason),
            "{}: got {err:?}, want {expected:?} and {:?}",
            case.what,
            case.reason
        );
    }
}

#[tokio::test]
async fn check_config_exits_2_naming_the_file_and_json_path() {
    assert!(CASES.len() >= 8);
    let dir = tempfile::tempdir().expect("temp dir");
    for case in CASES {
        let file = write_config(dir.path(), case.text);
        let output = run_hale(dir.path(), &["check-config", "--config", &file]).await;
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(exit_code(output.status), 2, "{}: {stderr}", case.what);
        assert_names_the_problem(case, &file, &stderr);
        assert!(output.stdout.is_empty(), "{}: nothing on stdout", case.what);
    }
}

#[tokio::test]
async fn serve_exits_2_on_a_bad_config_before_touching_anything() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("data").join("hale.db");
    let db = db.to_str().expect("UTF-8 path");
    for case in CASES {
        let file = write_config(dir.path(), case.text);
        let output = run_hale(dir.path(), &["serve", "--config", &file, "--db", db]).await;
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(exit_code(output.status), 2, "{}: {stderr}", case.what);
        assert_names_the_problem(case, &file, &stderr);
        // The error is also logged, as JSON, for log collectors.
        let stdout = String::from_utf8_lossy(&output.stdout);
        let logged = stdout
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .any(|log| {
                log["level"] == "ERROR"
                    && log["error"]
                        .as_str()
                        .is_some_and(|e| e.contains(case.path) && e.contains(case.reason))
            });
        assert!(logged, "{}: no JSON error log in {stdout:?}", case.what);
    }
    assert!(
        !dir.path().join("data").exists(),
        "a bad config must not create the database"
    );
}

/// A URL with a password is refused, and neither stderr nor the log quotes the password.
#[tokio::test]
async fn a_refused_url_never_shows_its_password() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("data").join("hale.db");
    let db = db.to_str().expect("UTF-8 path");
    for (text, path, shown) in [
        (
            r#"{"services": [{"name": "api", "url": "http://admin:S3CRET-PW@127.0.0.1/"}]}"#,
            "$.services[0].url",
            r#""http://***@127.0.0.1/" carries credentials in the URL"#,
        ),
        (
            r#"{"services": [{"name": "api", "url": "http://admin:S3CRET-PW/x@127.0.0.1/"}]}"#,
            "$.services[0].url",
            r#""http://***@127.0.0.1/" is not a valid URL"#,
        ),
        (
            r#"{"mcp_servers": [{"name": "tools", "url": "https://bot:S3CRET-PW@mcp.example/mcp"}]}"#,
            "$.mcp_servers[0]",
            r#"url: "https://***@mcp.example/mcp" is not an http(s) URL"#,
        ),
    ] {
        let file = write_config(dir.path(), text);
        for args in [
            vec!["check-config", "--config", &file],
            vec!["serve", "--config", &file, "--db", db],
        ] {
            let output = run_hale(dir.path(), &args).await;
            let stderr = String::from_utf8_lossy(&output.stderr);
            let stdout = String::from_utf8_lossy(&output.stdout);
            assert_eq!(exit_code(output.status), 2, "{args:?}: {stderr}");
            assert!(
                stderr.starts_with(&format!("hale: {file}: {path}: {shown}")),
                "{args:?}: {stderr}"
            );
            for (name, text) in [("stderr", &stderr), ("stdout", &stdout)] {
                assert!(
                    !text.contains("S3CRET"),
                    "{args:?}: the password is on {name}: {text}"
                );
            }
            if args[0] == "serve" {
                assert!(stdout.contains("***@"), "the refusal is logged: {stdout}");
            }
        }
    }
}

#[tokio::test]
async fn a_missing_config_file_exits_2_naming_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    for command in ["check-config", "serve"] {
        let output = run_hale(dir.path(), &[command, "--config", "missing.json"]).await;
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(exit_code(output.status), 2, "{command}: {stderr}");
        assert!(
            stderr.starts_with("hale: cannot read config file missing.json: "),
            "{command}: {stderr}"
        );
    }
}

#[tokio::test]
async fn a_valid_config_prints_with_every_default_filled_in() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = write_config(
        dir.path(),
        r#"{"services": [{"name": "api", "url": "http://127.0.0.1:8080/health"}]}"#,
    );
    let output = run_hale(dir.path(), &["check-config", "--config", &file]).await;
    assert_eq!(
        exit_code(output.status),
        0,
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let printed: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("check-config prints JSON");
    assert_eq!(printed["listen"]["boss_api"], "127.0.0.1:4000");
    assert_eq!(printed["http"]["body_limit_bytes"], 1024 * 1024);
    assert_eq!(printed["services"][0]["name"], "api");
    // The method stays unset (GET for an HTTP target), since a tcp:// target takes none.
    assert!(printed["services"][0].get("method").is_none());
    assert_eq!(printed["services"][0]["timeout_ms"], 2000);
    // What it prints is itself a valid config that means the same.
    let reparsed = Config::from_json(&printed.to_string(), "printed").expect("printed config");
    let original = Config::load(Path::new(&file)).expect("original config");
    assert_eq!(reparsed, original);
}

#[test]
fn health_all_of_another_port_or_host_is_a_valid_target() {
    for url in [
        "http://127.0.0.1:3003/health/all",
        "http://10.0.0.7:3002/health/all",
        "http://127.0.0.1:3002/health",
        "https://hale.example.com/health/all",
    ] {
        let text = format!(r#"{{"services": [{{"name": "other", "url": "{url}"}}]}}"#);
        if let Err(e) = Config::from_json(&text, "inline.json") {
            panic!("{url} should be accepted: {e}");
        }
    }
}

#[tokio::test]
async fn the_shipped_default_config_is_valid() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let output = run_hale(
        root,
        &["check-config", "--config", "config/services.monitor.json"],
    )
    .await;
    assert_eq!(
        exit_code(output.status),
        0,
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn check_config_prints_no_secret_and_its_output_checks_again() {
    let dir = tempfile::tempdir().expect("temp dir");
    let secrets = [
        "ENVSECRET111",
        "QUERYSECRET222",
        "SESSIONSECRET333",
        "HOOKSECRET444",
        "SMTPSECRET555",
        "MCPSECRET666",
    ];
    let config = serde_json::json!({
        "services": [{
            "name": "api",
            "url": format!("http://127.0.0.1:8080/health;jsessionid={}?token={}&v=2", secrets[2], secrets[1]),
            "run": {"argv": ["sleep", "60"], "env": {"DB_PASSWORD": secrets[0], "MODE": "prod"}}
        }],
        "mcp_servers": [{"name": "tools", "url": format!("http://127.0.0.1:9/mcp?key={}", secrets[5])}],
        "alerts": {"channels": {
            "discord": {"webhook_url": format!("https://discord.example/api/webhooks/1/{}", secrets[3])},
            "email": {"smtp_host": "127.0.0.1", "smtp_port": 25, "security": "plain", "username": "hale",
                      "password": secrets[4], "from": "hale@example.com", "to": ["ops@example.com"]}
        }}
    });
    let file = write_config(dir.path(), &config.to_string());
    let output = run_hale(dir.path(), &["check-config", "--config", &file]).await;
    let printed = String::from_utf8_lossy(&output.stdout).to_string();
    assert_eq!(
        exit_code(output.status),
        0,
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for secret in secrets {
        assert!(!printed.contains(secret), "{secret} printed: {printed}");
    }
    let value: serde_json::Value = serde_json::from_str(&printed).expect("JSON");
    assert_eq!(
        value["services"][0]["url"],
        "http://127.0.0.1:8080/health;jsessionid=redacted?token=redacted&v=redacted"
    );
    assert_eq!(
        value["services"][0]["run"]["env"]["DB_PASSWORD"],
        "redacted"
    );

    // The printed config is itself a config that `check-config` accepts, and prints the same way.
    let again_file = dir.path().join("printed.json");
    std::fs::write(&again_file, &printed).expect("write the printed config");
    let again = run_hale(
        dir.path(),
        &["check-config", "--config", again_file.to_str().unwrap()],
    )
    .await;
    assert_eq!(
        exit_code(again.status),
        0,
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&again.stdout), printed);
}
