//! The access layer on real HTTP: role tokens on every route that needs more than a read, reads from loopback,
//! the refusal to listen beyond loopback without a read token, rate limits per client and route group, and the
//! audit log of every request that tried to change something (counted in the database file). No token ever
//! shows up in a log line, an error, `check-config` or `/metrics`.

// A test crate: an unwrap is an assertion, and tests/common sets a child's rlimit in `pre_exec`.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use hale::auth::Role;
use hale::config::{Config, RateLimit};
use hale::kind::ServiceKind;
use reqwest::Method;
use serde_json::{json, Value};

use common::app::{client, TestApp};
use common::config::{test_config, test_config_json, TestConfig};
use common::process::{exit_code, run_hale, HaleProcess};
use common::prom::sample_value;

const READ: &str = "read-token-aaaaaaaaaaaaaaaa";
const OPERATE: &str = "operate-token-bbbbbbbbbbbbbbbb";
const ADMIN: &str = "admin-token-cccccccccccccccc";

/// A config whose tokens come from environment variables named after `prefix` (set here; each test uses its
/// own prefix, since the environment is shared by the tests of this binary).
fn with_tokens(prefix: &str, open_reads_on_loopback: bool) -> Config {
    TestConfig::new()
        .tokens(prefix, READ, OPERATE, ADMIN)
        .with(|config| config.auth.open_reads_on_loopback = open_reads_on_loopback)
        .build()
}

async fn call(
    app: &TestApp,
    kind: ServiceKind,
    method: Method,
    path: &str,
    token: Option<&str>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut req = app.request(method.clone(), kind, path);
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    let res = req
        .send()
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let body = res.json().await.unwrap_or(Value::Null);
    (status, headers, body)
}

/// A concrete path for a route pattern (`/heal/{target}` becomes `/heal/probe`).
fn concrete(pattern: &str) -> String {
    let mut path = String::new();
    let mut in_param = false;
    for c in pattern.chars() {
        match c {
            '{' => in_param = true,
            '}' => {
                in_param = false;
                path.push_str("probe");
            }
            _ if in_param => {}
            _ => path.push(c),
        }
    }
    path
}

fn token_of(role: Role) -> &'static str {
    match role {
        Role::Read => READ,
        Role::Operate => OPERATE,
        Role::Admin => ADMIN,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_that_needs_more_than_a_read_asks_for_its_role_on_every_service() {
    let app = common::app::spawn_app_with(with_tokens("HALE_ACCESS_A", true)).await;
    let mut checked = 0;
    for kind in ServiceKind::ALL {
        for ((method, pattern), needed) in hale::services::route_roles(kind) {
            // A change whose handler decides the role (a tool call): tests/mcp.rs checks it per server.
            if needed == Role::Read {
                continue;
            }
            let path = concrete(&pattern);
            let method = Method::from_bytes(method.as_str().as_bytes()).unwrap();
            let what = format!("{kind} {method} {path}");
            // Without a token: 401, and the answer says how to authenticate.
            let (status, headers, body) = call(&app, kind, method.clone(), &path, None).await;
            assert_eq!(status, 401, "{what}: {body}");
            assert_eq!(body["error"]["code"], "unauthorized", "{what}");
            assert!(
                headers[reqwest::header::WWW_AUTHENTICATE]
                    .to_str()
                    .unwrap()
                    .starts_with("Bearer"),
                "{what}"
            );
            // A token that is not valid: 401.
            let (status, _, _) = call(
                &app,
                kind,
                method.clone(),
                &path,
                Some("not-a-valid-token-xxxxxx"),
            )
            .await;
            assert_eq!(status, 401, "{what}");
            // Every weaker role: 403, naming the role needed.
            for weaker in Role::ALL.into_iter().filter(|r| *r < needed) {
                let (status, _, body) =
                    call(&app, kind, method.clone(), &path, Some(token_of(weaker))).await;
                assert_eq!(status, 403, "{what} with {weaker}: {body}");
                let message = body["error"]["message"].as_str().unwrap();
                assert!(
                    message.contains(&format!("needs the {needed} role")),
                    "{message}"
                );
            }
            // The role itself and every stronger one get through to the route.
            for enough in Role::ALL.into_iter().filter(|r| *r >= needed) {
                let (status, _, body) =
                    call(&app, kind, method.clone(), &path, Some(token_of(enough))).await;
                assert!(
                    status != 401 && status != 403,
                    "{what} with {enough}: {status} {body}"
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 1, "the table has routes: {checked}");
    // Reads stay open on loopback, with or without a token; a method a path does not have is the router's
    // 405, whoever asks.
    for kind in ServiceKind::ALL {
        let (status, _, _) = call(&app, kind, Method::GET, "/health", None).await;
        assert_eq!(status, 200, "{kind}");
        let (status, _, _) = call(&app, kind, Method::GET, "/health", Some(READ)).await;
        assert_eq!(status, 200, "{kind}");
        for method in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
            let (status, _, body) = call(&app, kind, method.clone(), "/metrics", None).await;
            assert_eq!(status, 405, "{kind} {method} /metrics: {body}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_proxy_on_the_same_host_reads_from_loopback_need_the_read_token() {
    let app = common::app::spawn_app_with(with_tokens("HALE_ACCESS_B", false)).await;
    for kind in ServiceKind::ALL {
        let (status, _, body) = call(&app, kind, Method::GET, "/metrics", None).await;
        assert_eq!(status, 401, "{kind}: {body}");
        for token in [READ, OPERATE, ADMIN] {
            let (status, _, _) = call(&app, kind, Method::GET, "/health", Some(token)).await;
            assert_eq!(status, 200, "{kind}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_token_configured_an_admin_route_is_403_and_says_how_to_enable_it() {
    let app = common::app::spawn_app().await;
    let (status, _, body) = call(&app, ServiceKind::BossApi, Method::GET, "/audit", None).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "forbidden");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("needs an admin token and none is configured")
            && message.contains("auth.tokens.admin"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listening_beyond_loopback_needs_a_read_token() {
    let mut config = test_config_json();
    config["listen"]["boss_api"] = json!("0.0.0.0:0");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json");
    std::fs::write(&path, config.to_string()).unwrap();
    let out = run_hale(
        dir.path(),
        &[
            "serve",
            "--config",
            path.to_str().unwrap(),
            "--db",
            dir.path().join("hale.db").to_str().unwrap(),
        ],
    )
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(exit_code(out.status), 2, "{stderr}");
    assert!(
        stderr.contains("listen.boss_api is 0.0.0.0:0, which is not a loopback address, and no read token is set"),
        "{stderr}"
    );
    assert!(
        !dir.path().join("hale.db").exists(),
        "refused before the database is touched"
    );

    // With a read token it starts, and says the address needs tokens.
    config["auth"] = json!({"tokens": {"read": {"env": "HALE_EXPOSED_READ"}}});
    let mut hale = HaleProcess::serve_with_env(&config, &[], &[("HALE_EXPOSED_READ", READ)]).await;
    hale.wait_listening(&ServiceKind::ALL).await;
    let notice = hale
        .json_logs()
        .into_iter()
        .find(|l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.contains("requests from other hosts need a bearer token"))
        })
        .expect("the non-loopback notice");
    assert_eq!(notice["service"], "boss-api");
    hale.signal("TERM");
    assert_eq!(exit_code(hale.wait_exit(common::DEADLINE).await), 0);
}

/// A client whose requests come from `source` (any 127.0.0.0/8 address is this machine).
fn client_from(source: IpAddr) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(source)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_over_the_rate_limit_gets_429_while_other_clients_and_groups_are_served() {
    let mut config = test_config();
    config.rate_limits.enabled = true;
    config.rate_limits.check = RateLimit {
        per_second: 1,
        burst: 5,
    };
    let app = common::app::spawn_app_with(config).await;
    let all = app.url(ServiceKind::HealthProxy, "/health/all");
    let noisy = client_from([127, 0, 0, 1].into());
    let mut limited = None;
    for _ in 0..20 {
        let res = noisy.get(&all).send().await.unwrap();
        if res.status().as_u16() == 429 {
            limited = Some(res);
            break;
        }
    }
    let res = limited.expect("a burst of 20 against a burst of 5 meets the limit");
    let retry_after: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry_after), "Retry-After {retry_after}");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");
    assert!(body["error"]["request_id"].is_string());

    // Another group of the same client: a Prometheus on the same host still scrapes.
    let metrics = noisy
        .get(app.url(ServiceKind::HealthProxy, "/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status().as_u16(), 200);
    let text = metrics.text().await.unwrap();
    assert!(
        sample_value(
            &text,
            "http_rate_limited_total",
            &[("service", "health-proxy"), ("route", "/health/all")]
        )
        .is_some_and(|n| n >= 1.0),
        "the refusal is counted"
    );
    // Another client, same group: its own bucket.
    let quiet = client_from([127, 0, 0, 2].into());
    let res = quiet.get(&all).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 200, "a second client is served");
}

async fn audit_rows(db: &Path) -> i64 {
    common::db::count_rows(db, "audit_log", "1 = 1").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_that_tries_to_change_something_is_one_audit_row() {
    let mut app = common::app::spawn_app_with(with_tokens("HALE_ACCESS_C", true)).await;
    // Three attempts: a method the path does not have, an unknown token, a read token on a route.
    let (status, _, _) = call(
        &app,
        ServiceKind::HealthProxy,
        Method::POST,
        "/health",
        None,
    )
    .await;
    assert_eq!(status, 405);
    let res = app
        .request(Method::DELETE, ServiceKind::BossApi, "/healthz")
        .bearer_auth("not-a-valid-token-xxxxxx")
        .header("x-request-id", "audit-me-1")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 405);
    let (status, _, _) = call(
        &app,
        ServiceKind::McpBridge,
        Method::PUT,
        "/metrics",
        Some(READ),
    )
    .await;
    assert_eq!(status, 405);
    // Reads are not audited.
    call(&app, ServiceKind::HealthProxy, Method::GET, "/health", None).await;

    let (status, _, entries) = call(
        &app,
        ServiceKind::BossApi,
        Method::GET,
        "/audit?limit=10",
        Some(ADMIN),
    )
    .await;
    assert_eq!(status, 200, "{entries}");
    let entries = entries.as_array().unwrap().clone();
    assert_eq!(entries.len(), 3, "{entries:#?}");
    let delete = entries
        .iter()
        .find(|e| e["request_id"] == "audit-me-1")
        .expect("the DELETE is in the log");
    assert_eq!(delete["service"], "boss-api");
    assert_eq!(delete["method"], "DELETE");
    assert_eq!(delete["route"], "/healthz");
    assert_eq!(delete["status"], 405);
    assert_eq!(delete["outcome"], "failed");
    assert_eq!(delete["client"], "127.0.0.1");
    assert!(delete["role"].is_null(), "no valid token, no role");
    assert_eq!(delete["count"], 1, "one attempt");
    let put = entries.iter().find(|e| e["method"] == "PUT").unwrap();
    assert_eq!(put["role"], "read");
    // Newest first.
    assert!(entries
        .windows(2)
        .all(|w| w[0]["at"].as_str() >= w[1]["at"].as_str()));
    let (status, _, body) = call(
        &app,
        ServiceKind::BossApi,
        Method::GET,
        "/audit?limit=0",
        Some(ADMIN),
    )
    .await;
    assert_eq!(status, 400);
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("limit: \"0\" is not a number from 1 to 1000"));

    app.shutdown().await;
    assert_eq!(
        audit_rows(&app.db_path).await,
        3,
        "counted in the database file"
    );
    // `hale audit` reads the same rows from the file.
    let out = run_hale(
        app.dir.path(),
        &["audit", "--db", app.db_path.to_str().unwrap(), "--json"],
    )
    .await;
    assert_eq!(
        exit_code(out.status),
        0,
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(printed.as_array().unwrap().len(), 3);
    assert_eq!(printed[0]["id"], entries[0]["id"]);
    let table = run_hale(
        app.dir.path(),
        &["audit", "--db", app.db_path.to_str().unwrap()],
    )
    .await;
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.contains("DELETE") && text.contains("audit-me-1"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_token_shows_up_in_logs_errors_check_config_or_metrics() {
    let mut config = test_config_json();
    config["auth"] = json!({"tokens": {
        "read": {"env": "HALE_LEAK_READ"},
        "admin": {"env": "HALE_LEAK_ADMIN"}
    }});
    // Alert channels hold secrets of their own: a webhook URL, a bearer token, an SMTP password.
    let channel_secrets = [
        "https://discord.example/api/webhooks/1/LEAKDISCORD",
        "LEAKBEARER",
        "LEAKSMTPPASSWORD",
    ];
    config["alerts"] = json!({"channels": {
        "discord": {"webhook_url": channel_secrets[0]},
        "webhook": {"url": "http://127.0.0.1:9/hook", "bearer_token": channel_secrets[1]},
        "email": {"smtp_host": "127.0.0.1", "smtp_port": 9, "security": "plain", "username": "hale",
                  "password": channel_secrets[2], "from": "hale@example.com", "to": ["ops@example.com"]}
    }});
    let env = [("HALE_LEAK_READ", READ), ("HALE_LEAK_ADMIN", ADMIN)];
    let mut hale = HaleProcess::serve_with_env(&config, &[], &env).await;
    let addrs = hale.wait_listening(&ServiceKind::ALL).await;
    let client = common::app::client();
    let boss: SocketAddr = addrs[&ServiceKind::BossApi];
    let near_miss = &ADMIN[..ADMIN.len() - 1];
    let mut bodies = String::new();
    for token in [READ, ADMIN, near_miss, "x"] {
        for path in ["/audit", "/health", "/metrics"] {
            let res = client
                .get(format!("http://{boss}{path}"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap();
            bodies.push_str(&res.text().await.unwrap());
        }
    }
    hale.signal("TERM");
    assert_eq!(exit_code(hale.wait_exit(common::DEADLINE).await), 0);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json");
    std::fs::write(&path, config.to_string()).unwrap();
    let printed = run_hale(
        dir.path(),
        &["check-config", "--config", path.to_str().unwrap()],
    )
    .await;
    let printed = String::from_utf8_lossy(&printed.stdout).to_string();
    assert!(printed.contains("HALE_LEAK_ADMIN"), "{printed}");
    assert!(printed.contains(r#""password": "***""#), "{printed}");
    let everything = [
        hale.stdout_lines().join("\n"),
        hale.stderr_lines().join("\n"),
        bodies,
        printed,
    ]
    .join("\n");
    for secret in [READ, ADMIN, near_miss] {
        assert!(!everything.contains(secret), "a token leaked");
    }
    for secret in channel_secrets {
        assert!(!everything.contains(secret), "{secret} leaked");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flood_of_refused_posts_is_a_few_counted_audit_rows_and_a_few_log_lines() {
    let mut config = test_config_json();
    config["rate_limits"] = json!({"enabled": true});
    config["auth"] = json!({"tokens": {"operate": {"env": "HALE_FLOOD_OPERATE"}}});
    let env = [("HALE_FLOOD_OPERATE", OPERATE)];
    let mut hale = HaleProcess::serve_with_env(&config, &[], &env).await;
    let addrs = hale.wait_listening(&[ServiceKind::HealthProxy]).await;
    let url = format!("http://{}/heal/api", addrs[&ServiceKind::HealthProxy]);

    // 8 keep-alive connections, each sending unauthenticated POSTs back to back for 10 s.
    let until = tokio::time::Instant::now() + Duration::from_secs(10);
    let floods: Vec<_> = (0..8)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move {
                let client = reqwest::Client::builder()
                    .pool_max_idle_per_host(1)
                    .http1_only()
                    .timeout(Duration::from_secs(10))
                    .build()
                    .unwrap();
                let (mut unauthorized, mut limited) = (0u64, 0u64);
                while tokio::time::Instant::now() < until {
                    let res = client.post(&url).send().await.unwrap();
                    match res.status().as_u16() {
                        401 => unauthorized += 1,
                        429 => limited += 1,
                        other => panic!("POST /heal/api without a token: {other}"),
                    }
                    // Read the body, so the connection is reused.
                    let _ = res.bytes().await;
                }
                (unauthorized, limited)
            })
        })
        .collect();
    let (mut unauthorized, mut limited) = (0u64, 0u64);
    for flood in floods {
        let (u, l) = flood.await.unwrap();
        unauthorized += u;
        limited += l;
    }
    assert!(
        limited > 1_000,
        "a flood meets the rate limit: {limited} 429s"
    );
    hale.signal("TERM");
    assert_eq!(exit_code(hale.wait_exit(common::DEADLINE).await), 0);

    // Counted in the database file, after a clean stop: a handful of rows, whose counts add up to every
    // refused request.
    let rows = audit_rows(&hale.db_path).await;
    assert!(
        (2..=20).contains(&rows),
        "{rows} audit rows for {} refused requests",
        unauthorized + limited
    );
    let sum = |outcome: &str| {
        let condition = format!("outcome = '{outcome}'");
        let db = hale.db_path.clone();
        async move {
            common::db::select_texts(&db, "audit_log", "count", &condition)
                .await
                .iter()
                .map(|n| n.parse::<u64>().unwrap())
                .sum::<u64>()
        }
    };
    assert_eq!(sum("unauthorized").await, unauthorized, "401s counted");
    assert_eq!(sum("rate_limited").await, limited, "429s counted");
    let routes = common::db::select_texts(
        &hale.db_path,
        "audit_log",
        "route || ' ' || client",
        "1 = 1",
    )
    .await;
    assert!(
        routes.iter().all(|r| r == "/heal/{target} 127.0.0.1"),
        "{routes:?}"
    );

    // The log has a few 429 lines: the first of each minute and a count, not one per request.
    let stdout = hale.stdout_lines();
    let lines_429 = stdout
        .iter()
        .filter(|line| line.contains("\"status\":429"))
        .count();
    assert!(
        (1..=4).contains(&lines_429),
        "{lines_429} lines for {limited} 429s"
    );
    let quieted: u64 = stdout
        .iter()
        .filter(|line| line.contains("logged at debug only"))
        .map(|line| {
            let value: Value = serde_json::from_str(line).unwrap();
            value["count"].as_u64().unwrap()
        })
        .sum();
    assert_eq!(
        quieted + lines_429 as u64,
        limited,
        "every 429 is logged or counted"
    );
    eprintln!(
        "flood: {unauthorized} 401s and {limited} 429s; {rows} audit rows; {lines_429} 429 lines; {} log lines",
        stdout.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_attempts_share_a_counted_row_and_allowed_changes_keep_their_own() {
    let mut app = common::app::spawn_app_with(with_tokens("HALE_ACCESS_D", true)).await;
    // Allowed (the operate token) and then failed: no such target. One row each.
    for _ in 0..2 {
        let (status, _, body) = call(
            &app,
            ServiceKind::HealthProxy,
            Method::POST,
            "/heal/nosuch",
            Some(OPERATE),
        )
        .await;
        assert_eq!(status, 404, "{body}");
    }
    // Refused: no token, five times; a read token, three times.
    for _ in 0..5 {
        let (status, _, _) = call(
            &app,
            ServiceKind::HealthProxy,
            Method::POST,
            "/heal/nosuch",
            None,
        )
        .await;
        assert_eq!(status, 401);
    }
    for _ in 0..3 {
        let (status, _, _) = call(
            &app,
            ServiceKind::HealthProxy,
            Method::POST,
            "/heal/nosuch",
            Some(READ),
        )
        .await;
        assert_eq!(status, 403);
    }
    // `GET /audit` shows the counts at once, before the periodic write.
    let (status, _, entries) = call(
        &app,
        ServiceKind::BossApi,
        Method::GET,
        "/audit?limit=10",
        Some(ADMIN),
    )
    .await;
    assert_eq!(status, 200, "{entries}");
    let entries = entries.as_array().unwrap().clone();
    let by_outcome = |outcome: &str| -> Vec<u64> {
        entries
            .iter()
            .filter(|e| e["outcome"] == outcome)
            .map(|e| e["count"].as_u64().unwrap())
            .collect()
    };
    // One row per minute: a test that runs across a minute boundary may see two.
    assert_eq!(by_outcome("failed"), [1, 1], "{entries:#?}");
    for (outcome, attempts) in [("unauthorized", 5), ("forbidden", 3)] {
        let counts = by_outcome(outcome);
        assert!(
            counts.iter().sum::<u64>() == attempts && counts.len() <= 2,
            "{outcome}: {entries:#?}"
        );
    }
    let forbidden = entries
        .iter()
        .find(|e| e["outcome"] == "forbidden")
        .unwrap();
    assert_eq!(forbidden["role"], "read");
    assert_eq!(forbidden["route"], "/heal/{target}");

    // Two more refusals after that write raise the same row's count.
    for _ in 0..2 {
        call(
            &app,
            ServiceKind::HealthProxy,
            Method::POST,
            "/heal/nosuch",
            None,
        )
        .await;
    }
    app.shutdown().await;
    let rows = audit_rows(&app.db_path).await;
    assert!((4..=6).contains(&rows), "{rows} rows in the database file");
    let counts = common::db::select_texts(
        &app.db_path,
        "audit_log",
        "count",
        "outcome = 'unauthorized'",
    )
    .await;
    let total: u64 = counts.iter().map(|n| n.parse::<u64>().unwrap()).sum();
    assert!(
        total == 7 && counts.len() <= 2,
        "the minute's row is raised at shutdown: {counts:?}"
    );
}

#[tokio::test]
async fn hale_audit_reads_a_database_from_before_the_count_column() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hale.db");
    hale::store::Store::open(&db).await.unwrap().close().await;
    // The audit table as it was before migration 0007, with one row.
    let options = sqlx::sqlite::SqliteConnectOptions::new().filename(&db);
    let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
    for statement in [
        "DROP TABLE audit_log",
        "CREATE TABLE audit_log (id INTEGER PRIMARY KEY, at_ms INTEGER NOT NULL, service TEXT NOT NULL, role TEXT,
         client TEXT NOT NULL, method TEXT NOT NULL, route TEXT NOT NULL, target TEXT, status INTEGER NOT NULL,
         outcome TEXT NOT NULL, request_id TEXT NOT NULL)",
        "INSERT INTO audit_log (at_ms, service, client, method, route, status, outcome, request_id)
         VALUES (1764158403000, 'boss-api', '127.0.0.1', 'POST', '/backup', 401, 'unauthorized', 'old-row-1')",
    ] {
        sqlx::query(statement).execute(&pool).await.unwrap();
    }
    pool.close().await;
    let out = run_hale(
        dir.path(),
        &["audit", "--db", db.to_str().unwrap(), "--json"],
    )
    .await;
    assert_eq!(
        exit_code(out.status),
        0,
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(printed[0]["request_id"], "old-row-1");
    assert_eq!(printed[0]["count"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_file_must_hold_a_varied_token_and_hale_token_prints_one_that_works() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("admin.token");
    let db = dir.path().join("hale.db");
    let mut config = test_config_json();
    config["auth"] = json!({"tokens": {"admin": {"file": token_file}}});
    let config_path = dir.path().join("config.json");
    std::fs::write(&config_path, config.to_string()).unwrap();
    let serve = [
        "serve",
        "--config",
        config_path.to_str().unwrap(),
        "--db",
        db.to_str().unwrap(),
    ];
    let shown = token_file.display();
    for (content, expected) in [
        (
            "",
            format!("hale: auth.tokens.admin: file {shown} is empty; put a token in it (`hale token` prints one)"),
        ),
        (
            "\n",
            format!("hale: auth.tokens.admin: file {shown} is empty; put a token in it (`hale token` prints one)"),
        ),
        (
            "aaaaaaaaaaaaaaaa\n",
            format!(
                "hale: auth.tokens.admin: the token in file {shown} has fewer than 8 different characters, so it can \
                 be guessed; `hale token` prints a good one"
            ),
        ),
        (
            "passwordpassword",
            format!(
                "hale: auth.tokens.admin: the token in file {shown} has fewer than 8 different characters, so it can \
                 be guessed; `hale token` prints a good one"
            ),
        ),
    ] {
        std::fs::write(&token_file, content).unwrap();
        let out = run_hale(dir.path(), &serve).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(exit_code(out.status), 2, "{content:?}: {stderr}");
        assert_eq!(stderr.trim_end(), expected, "{content:?}");
        assert!(!db.exists(), "{content:?}: refused before the database is touched");
    }

    // `hale token` prints a new 64-hex-character token each time; written to the file as printed, it works.
    let mut printed = Vec::new();
    for _ in 0..2 {
        let out = run_hale(dir.path(), &["token"]).await;
        assert_eq!(exit_code(out.status), 0);
        let stdout = String::from_utf8(out.stdout).unwrap();
        let token = stdout.strip_suffix('\n').expect("one line").to_owned();
        assert_eq!(token.len(), 64, "{token}");
        assert!(token.chars().all(|c| c.is_ascii_hexdigit()), "{token}");
        printed.push(token);
    }
    assert_ne!(printed[0], printed[1]);
    std::fs::write(&token_file, format!("{}\n", printed[0])).unwrap();
    let mut hale = HaleProcess::serve(&config, &[]).await;
    let addrs = hale.wait_listening(&ServiceKind::ALL).await;
    let audit = format!("http://{}/audit", addrs[&ServiceKind::BossApi]);
    let with = client()
        .get(&audit)
        .bearer_auth(&printed[0])
        .send()
        .await
        .unwrap();
    assert_eq!(with.status().as_u16(), 200);
    let without = client().get(&audit).send().await.unwrap();
    assert_ne!(without.status().as_u16(), 200);
    hale.signal("TERM");
    assert_eq!(exit_code(hale.wait_exit(common::DEADLINE).await), 0);
}
