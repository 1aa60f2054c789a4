//! The HTTP face every service shares, tested against hale running in-process: endpoints, request ids,
//! JSON error bodies, security headers, metrics (and `promtool`), Swagger UI and OpenAPI drift.

// A test crate: an unwrap is an assertion, and tests/common sets a child's rlimit in `pre_exec`.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::io::ErrorKind;
use std::process::Stdio;

use hale::kind::ServiceKind;
use reqwest::header::CACHE_CONTROL;
use reqwest::Method;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use common::app::{spawn_app, spawn_app_with};
use common::config::test_config;
use common::prom::sample_value;

const VERSION: &str = env!("CARGO_PKG_VERSION");
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn header<'a>(res: &'a reqwest::Response, name: &str) -> &'a str {
    res.headers()
        .get(name)
        .unwrap_or_else(|| panic!("missing header {name} on {}", res.url()))
        .to_str()
        .expect("ASCII header")
}

fn assert_uuid_v4(id: &str) {
    let uuid = uuid::Uuid::parse_str(id).unwrap_or_else(|e| panic!("{id:?} is not a UUID: {e}"));
    assert_eq!(uuid.get_version_num(), 4, "{id:?} is not a v4 UUID");
}

/// Asserts the health answer of a service that can do its job.
fn assert_healthy(kind: ServiceKind, body: &Value) {
    assert_eq!(body["ok"], json!(true), "{kind}: {body}");
    let details = &body["details"];
    assert_eq!(details["service"], json!(kind.as_str()));
    assert_eq!(details["version"], json!(VERSION));
    assert_eq!(details["database"], json!("ok"));
    assert_eq!(details["writer"], json!("running"));
    assert_eq!(details["writer_queue"], json!(0));
    assert!(details["uptime_s"].is_u64(), "uptime_s: {details}");
    let timestamp = body["timestamp"].as_str().expect("timestamp is a string");
    chrono::DateTime::parse_from_rfc3339(timestamp)
        .unwrap_or_else(|e| panic!("timestamp {timestamp:?} is not RFC 3339: {e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_answers_200_with_details_on_every_service() {
    let app = spawn_app().await;
    for kind in ServiceKind::ALL {
        let res = app.get(kind, "/health").await;
        assert_eq!(res.status().as_u16(), 200, "{kind} /health");
        assert_eq!(header(&res, "content-type"), "application/json");
        let body: Value = res.json().await.expect("JSON body");
        assert_healthy(kind, &body);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boss_api_healthz_answers_like_health() {
    let app = spawn_app().await;
    let (status, body) = app.get_json(ServiceKind::BossApi, "/healthz").await;
    assert_eq!(status, 200);
    assert_healthy(ServiceKind::BossApi, &body);
    // `/healthz` belongs to the Boss API only.
    let (status, body) = app.get_json(ServiceKind::McpBridge, "/healthz").await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], json!("not_found"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_503_with_ok_false_when_the_database_is_closed() {
    let app = spawn_app().await;
    app.core().store.close().await;
    for kind in ServiceKind::ALL {
        let (status, body) = app.get_json(kind, "/health").await;
        assert_eq!(status, 503, "{kind}: {body}");
        assert_eq!(body["ok"], json!(false));
        assert_eq!(body["details"]["database"], json!("unreachable"));
        assert_eq!(body["details"]["writer"], json!("running"));
        assert_eq!(body["details"]["service"], json!(kind.as_str()));
        let metrics = app.metrics(kind).await;
        assert_eq!(
            sample_value(&metrics, "service_up", &[("service", kind.as_str())]),
            Some(0.0),
            "{kind} reports itself down"
        );
        assert_eq!(
            sample_value(
                &metrics,
                "errors_total",
                &[("service", kind.as_str()), ("type", "unavailable")]
            ),
            Some(1.0),
            "{kind} counts the 503"
        );
    }
    let (status, body) = app.get_json(ServiceKind::BossApi, "/healthz").await;
    assert_eq!(status, 503);
    assert_eq!(body["ok"], json!(false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_request_id_is_echoed() {
    let app = spawn_app().await;
    for id in ["test-123", "abc-123_x.y:z", &"a".repeat(128)] {
        let res = app
            .get_with_request_id(ServiceKind::HealthProxy, "/health", id)
            .await;
        assert_eq!(res.status().as_u16(), 200);
        assert_eq!(header(&res, "x-request-id"), id);
    }
    // Error bodies carry the same id.
    let res = app
        .get_with_request_id(ServiceKind::McpBridge, "/nope", "trace-42")
        .await;
    assert_eq!(header(&res, "x-request-id"), "trace-42");
    let body: Value = res.json().await.expect("JSON body");
    assert_eq!(body["error"]["request_id"], json!("trace-42"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_or_missing_request_id_is_replaced_by_a_uuid() {
    let app = spawn_app().await;
    for bad in [
        "has spaces in it",
        &"a".repeat(200),
        &"b".repeat(129),
        "semi;colon",
        "",
    ] {
        let res = app
            .get_with_request_id(ServiceKind::BossApi, "/health", bad)
            .await;
        assert_eq!(res.status().as_u16(), 200);
        let id = header(&res, "x-request-id");
        assert_ne!(id, bad);
        assert_uuid_v4(id);
    }
    // The replacement id is the one error bodies carry.
    let res = app
        .get_with_request_id(ServiceKind::BossApi, "/nope", "bad id")
        .await;
    let id = header(&res, "x-request-id").to_owned();
    assert_uuid_v4(&id);
    let body: Value = res.json().await.expect("JSON body");
    assert_eq!(body["error"]["request_id"], json!(id));

    let first = app.get(ServiceKind::BossApi, "/health").await;
    let second = app.get(ServiceKind::BossApi, "/health").await;
    let (first, second) = (
        header(&first, "x-request-id"),
        header(&second, "x-request-id"),
    );
    assert_uuid_v4(first);
    assert_uuid_v4(second);
    assert_ne!(first, second, "every request gets its own id");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_route_is_a_json_404() {
    let app = spawn_app().await;
    for kind in ServiceKind::ALL {
        let res = app
            .get_with_request_id(kind, "/no/such/route", "r-404")
            .await;
        assert_eq!(res.status().as_u16(), 404, "{kind}");
        assert_eq!(header(&res, "content-type"), "application/json");
        let body: Value = res.json().await.expect("JSON body");
        assert_eq!(
            body,
            json!({"error": {
                "code": "not_found",
                "message": "no route for GET /no/such/route",
                "request_id": "r-404"
            }})
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_404_message_quotes_at_most_200_characters_of_the_path() {
    let app = spawn_app().await;
    let path = format!("/{}", "a".repeat(500));
    let (status, body) = app.get_json(ServiceKind::HealthProxy, &path).await;
    assert_eq!(status, 404);
    assert_eq!(
        body["error"]["message"],
        json!(format!("no route for GET {}", &path[..200]))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_method_is_a_json_405() {
    let app = spawn_app().await;
    for (method, path) in [(Method::POST, "/health"), (Method::DELETE, "/metrics")] {
        let res = app
            .request(method.clone(), ServiceKind::HealthProxy, path)
            .header("x-request-id", "r-405")
            .send()
            .await
            .expect("send");
        assert_eq!(res.status().as_u16(), 405, "{method} {path}");
        assert_eq!(header(&res, "content-type"), "application/json");
        let body: Value = res.json().await.expect("JSON body");
        assert_eq!(
            body,
            json!({"error": {
                "code": "method_not_allowed",
                "message": "method not allowed",
                "request_id": "r-405"
            }})
        );
    }
}

/// Sends a raw HTTP/1.1 request and returns the status code, the header block and the body.
async fn raw_request(addr: std::net::SocketAddr, request: &str) -> (u16, String, String) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(request.as_bytes())
        .await
        .expect("send request");
    let mut answer = Vec::new();
    tokio::time::timeout(common::DEADLINE, stream.read_to_end(&mut answer))
        .await
        .expect("the server answers and closes")
        .expect("read answer");
    let answer = String::from_utf8(answer).expect("UTF-8 answer");
    let (head, body) = answer.split_once("\r\n\r\n").expect("a header block");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    (status, head.to_ascii_lowercase(), body.to_owned())
}

/// The header lines of a raw answer, without the status line and the ones that differ between two answers.
fn stable_headers(head: &str) -> BTreeSet<String> {
    head.lines()
        .skip(1)
        .filter(|line| !line.starts_with("date:") && !line.starts_with("x-request-id:"))
        .filter(|line| !line.starts_with("content-length:"))
        .map(str::to_owned)
        .collect()
}

fn content_length(head: &str) -> usize {
    head.lines()
        .find_map(|line| line.strip_prefix("content-length: "))
        .unwrap_or_else(|| panic!("no content-length in {head}"))
        .parse()
        .expect("a number")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_answers_every_get_route_like_get_without_a_body() {
    let app = spawn_app().await;
    // The status page changes once its history and the first SLO pass are read: compare GET and HEAD after.
    common::eventually("the status page is loaded", || async {
        let page = app
            .get(ServiceKind::HealthProxy, "/")
            .await
            .text()
            .await
            .ok()?;
        (!page.contains(hale::answers::status_page::HISTORY_LOADING_NOTE)
            && !page.contains(hale::answers::status_page::SLO_LOADING_NOTE))
        .then_some(())
    })
    .await;
    for kind in ServiceKind::ALL {
        let doc: Value =
            serde_json::from_str(&hale::cli::openapi_text(kind).expect("document")).expect("JSON");
        let mut paths: Vec<String> = doc["paths"]
            .as_object()
            .expect("paths")
            .iter()
            .filter(|(_, item)| item["get"].is_object())
            .map(|(path, _)| path.clone())
            .collect();
        assert!(paths.contains(&"/health".to_owned()), "{kind}: {paths:?}");
        // Not in the document, but GET routes all the same.
        paths.extend(["/openapi.json", "/docs/", "/docs/swagger-initializer.js"].map(String::from));
        for path in &paths {
            let request = |method: &str| {
                format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            };
            let (get_status, get_head, get_body) =
                raw_request(app.addr(kind), &request("GET")).await;
            let (status, head, body) = raw_request(app.addr(kind), &request("HEAD")).await;
            assert_eq!(status, get_status, "{kind} HEAD {path}: {head}");
            assert!(body.is_empty(), "{kind} HEAD {path} sent a body: {body:?}");
            assert_eq!(
                stable_headers(&head),
                stable_headers(&get_head),
                "{kind} HEAD {path}: the same headers as GET"
            );
            assert!(
                head.contains("x-request-id: "),
                "{kind} HEAD {path}: {head}"
            );
            assert_eq!(
                content_length(&get_head),
                get_body.len(),
                "{kind} GET {path}"
            );
            let length = content_length(&head);
            if matches!(
                path.as_str(),
                "/openapi.json" | "/docs/" | "/docs/swagger-initializer.js"
            ) {
                // Answers that do not change between two requests have exactly GET's length.
                assert_eq!(length, get_body.len(), "{kind} HEAD {path}");
            } else {
                assert!(length > 0, "{kind} HEAD {path}: {head}");
            }
        }
        // Metrics keep the client's method.
        let metrics = app.metrics(kind).await;
        assert_eq!(
            requests_total(&metrics, kind, "HEAD", "/health", "200"),
            1.0,
            "{kind}\n{metrics}"
        );
    }
    // An unknown path is a 404 for HEAD too, without a body.
    let (status, _, body) = raw_request(
        app.addr(ServiceKind::HealthProxy),
        "HEAD /nope HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!((status, body.as_str()), (404, ""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_1_mib_is_a_json_413_before_it_is_read() {
    let app = spawn_app().await;
    for kind in ServiceKind::ALL {
        // Only the declared length is sent: the answer must not wait for the body.
        let request = format!(
            "POST /health HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nX-Request-ID: r-413\r\nConnection: close\r\n\r\n",
            1024 * 1024 + 1
        );
        let (status, head, body) = raw_request(app.addr(kind), &request).await;
        assert_eq!(status, 413, "{kind}: {head}");
        assert!(head.contains("content-type: application/json"), "{head}");
        assert!(head.contains("cache-control: no-store"), "{head}");
        let body: Value = serde_json::from_str(&body).expect("JSON body");
        assert_eq!(
            body,
            json!({"error": {
                "code": "payload_too_large",
                "message": "request body is larger than the limit of 1048576 bytes",
                "request_id": "r-413"
            }})
        );
    }
}

/// A raw GET of `target` with `headers` extra header lines.
fn get_with(target: &str, headers: &[String]) -> String {
    format!(
        "GET {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nX-Request-ID: r-head\r\n{}\r\n",
        headers.iter().map(|h| format!("{h}\r\n")).collect::<String>()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_uri_or_too_many_headers_is_a_json_error_below_actix_limits() {
    use hale::http::{MAX_HEADERS, MAX_HEADER_BYTES, MAX_URI_BYTES};
    let app = spawn_app().await;
    // The request above already carries 3 headers (Host, Connection, X-Request-ID).
    let filler = |n: usize| {
        (0..n)
            .map(|i| format!("X-Filler-{i}: 1"))
            .collect::<Vec<_>>()
    };
    let big_value = vec![format!("X-Big: {}", "v".repeat(MAX_HEADER_BYTES))];
    for kind in ServiceKind::ALL {
        let addr = app.addr(kind);
        // At the limits the request goes through to routing.
        let at_limit = format!("/{}", "a".repeat(MAX_URI_BYTES - 1));
        let (status, _, _) = raw_request(addr, &get_with(&at_limit, &[])).await;
        assert_eq!(status, 404, "{kind}");
        let (status, _, _) =
            raw_request(addr, &get_with("/health", &filler(MAX_HEADERS - 3))).await;
        assert_eq!(status, 200, "{kind}");

        let over_limit = format!("/{}", "a".repeat(MAX_URI_BYTES));
        for (request, want_status, want_code, want_message) in [
            (
                get_with(&over_limit, &[]),
                414,
                "uri_too_long",
                format!("request URI is longer than the limit of {MAX_URI_BYTES} bytes"),
            ),
            (
                get_with("/health", &filler(MAX_HEADERS - 2)),
                431,
                "headers_too_large",
                format!("request headers are over the limit of {MAX_HEADERS} headers or {MAX_HEADER_BYTES} bytes"),
            ),
            (
                get_with("/health", &big_value),
                431,
                "headers_too_large",
                format!("request headers are over the limit of {MAX_HEADERS} headers or {MAX_HEADER_BYTES} bytes"),
            ),
        ] {
            let (status, head, body) = raw_request(addr, &request).await;
            assert_eq!(status, want_status, "{kind}: {head}");
            assert!(head.contains("content-type: application/json"), "{head}");
            let body: Value = serde_json::from_str(&body).expect("JSON body");
            assert_eq!(
                body,
                json!({"error": {"code": want_code, "message": want_message, "request_id": "r-head"}}),
                "{kind}"
            );
        }
        let metrics = app.metrics(kind).await;
        for (error_type, count) in [("uri_too_long", 1.0), ("headers_too_large", 2.0)] {
            assert_eq!(
                sample_value(
                    &metrics,
                    "errors_total",
                    &[("service", kind.as_str()), ("type", error_type)]
                ),
                Some(count),
                "{kind} {error_type}"
            );
        }
    }
}

/// Beyond actix-http's own limits, or for a head it cannot parse, actix-http answers by itself: no JSON body is
/// possible there (docs/operations.md says so). This pins that behaviour, so a change shows up here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_actix_http_refuses_before_routing_has_no_body() {
    let app = spawn_app().await;
    let many: Vec<String> = (0..100).map(|i| format!("X-Filler-{i}: 1")).collect();
    for (request, want) in [
        (get_with("/health", &many), 431),
        ("NOT HTTP\r\n\r\n".to_owned(), 400),
        (
            "GET /health HTTP/1.1\r\nConnection: close\r\n\r\n".to_owned(),
            400,
        ),
    ] {
        let (status, head, body) = raw_request(app.addr(ServiceKind::BossApi), &request).await;
        assert_eq!(status, want, "{head}");
        assert!(head.contains("content-length: 0"), "{head}");
        assert!(!head.contains("content-type"), "{head}");
        assert!(body.is_empty(), "{body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_body_limit_follows_the_config() {
    let mut config = test_config();
    config.http.body_limit_bytes = 2048;
    let app = spawn_app_with(config).await;
    let res = app
        .request(Method::POST, ServiceKind::BossApi, "/health")
        .body(vec![b'x'; 2049])
        .send()
        .await
        .expect("send");
    assert_eq!(res.status().as_u16(), 413);
    let body: Value = res.json().await.expect("JSON body");
    assert_eq!(body["error"]["code"], json!("payload_too_large"));
    assert_eq!(
        body["error"]["message"],
        json!("request body is larger than the limit of 2048 bytes")
    );
    // At the limit the request goes through to routing (POST /health is not a route: 405).
    let res = app
        .request(Method::POST, ServiceKind::BossApi, "/health")
        .body(vec![b'x'; 2048])
        .send()
        .await
        .expect("send");
    assert_eq!(res.status().as_u16(), 405);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_carries_the_security_headers() {
    let app = spawn_app().await;
    for kind in ServiceKind::ALL {
        for path in ["/health", "/metrics", "/openapi.json", "/docs/", "/missing"] {
            let res = app.get(kind, path).await;
            for (name, value) in [
                ("x-content-type-options", "nosniff"),
                ("x-frame-options", "DENY"),
                ("referrer-policy", "no-referrer"),
                ("content-security-policy", CSP),
            ] {
                assert_eq!(header(&res, name), value, "{name} on {kind} {path}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_stays_closed_unless_origins_are_configured() {
    let closed = spawn_app().await;
    let res = closed
        .request(Method::GET, ServiceKind::HealthProxy, "/health")
        .header("origin", "https://dash.example")
        .send()
        .await
        .expect("send");
    assert_eq!(res.status().as_u16(), 200);
    assert!(
        res.headers().get("access-control-allow-origin").is_none(),
        "no CORS header without configured origins"
    );

    let mut config = test_config();
    config.http.cors_origins = vec!["https://dash.example".to_owned()];
    let open = spawn_app_with(config).await;
    let preflight = |origin: &'static str| {
        open.request(Method::OPTIONS, ServiceKind::HealthProxy, "/health")
            .header("origin", origin)
            .header("access-control-request-method", "GET")
            .send()
    };
    let allowed = preflight("https://dash.example").await.expect("send");
    assert_eq!(allowed.status().as_u16(), 200);
    assert_eq!(
        header(&allowed, "access-control-allow-origin"),
        "https://dash.example"
    );
    let refused = preflight("https://evil.example").await.expect("send");
    assert!(
        refused.status().is_client_error(),
        "status {}",
        refused.status()
    );
    assert!(refused
        .headers()
        .get("access-control-allow-origin")
        .is_none());
    // The refusal is JSON with the same headers as every other answer.
    assert_eq!(header(&refused, "content-type"), "application/json");
    assert_eq!(header(&refused, "cache-control"), "no-store");
    assert_eq!(header(&refused, "x-frame-options"), "DENY");
    let id = header(&refused, "x-request-id").to_owned();
    let body: Value = refused.json().await.expect("JSON body");
    assert_eq!(body["error"]["code"], json!("bad_request"));
    assert_eq!(body["error"]["request_id"], json!(id));
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_answers_are_not_cached() {
    let app = spawn_app().await;
    for kind in ServiceKind::ALL {
        for path in ["/health", "/metrics", "/openapi.json", "/missing"] {
            let res = app.get(kind, path).await;
            assert_eq!(
                res.headers().get(CACHE_CONTROL).map(|v| v.as_bytes()),
                Some(&b"no-store"[..]),
                "Cache-Control on {kind} {path}"
            );
        }
        let res = app
            .request(Method::PUT, kind, "/health")
            .send()
            .await
            .expect("send");
        assert_eq!(res.status().as_u16(), 405);
        assert_eq!(header(&res, "cache-control"), "no-store");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swagger_ui_and_the_openapi_document_are_served() {
    let app = spawn_app().await;
    for kind in ServiceKind::ALL {
        let res = app.get(kind, "/docs/").await;
        assert_eq!(res.status().as_u16(), 200, "{kind} /docs/");
        assert!(
            header(&res, "content-type").starts_with("text/html"),
            "{kind} /docs/ is HTML"
        );
        let html = res.text().await.expect("read /docs/");
        assert!(html.contains("<title>Swagger UI</title>"), "{html}");
        assert!(html.contains("swagger-ui-bundle.js"), "{html}");

        // `/docs` redirects to `/docs/`.
        let res = app.get(kind, "/docs").await;
        assert_eq!(res.status().as_u16(), 200);
        assert_eq!(res.url().path(), "/docs/");

        // Swagger UI is pointed at this service's document.
        let res = app.get(kind, "/docs/swagger-initializer.js").await;
        assert_eq!(res.status().as_u16(), 200, "{kind} swagger-initializer.js");
        let script = res.text().await.expect("read the initializer");
        assert!(script.contains("/openapi.json"), "{script}");

        let res = app.get(kind, "/openapi.json").await;
        assert_eq!(res.status().as_u16(), 200);
        assert!(header(&res, "content-type").starts_with("application/json"));
        let doc: Value = res.json().await.expect("/openapi.json is JSON");
        assert_eq!(doc["openapi"], json!("3.1.0"));
        assert_eq!(doc["info"]["title"], json!(kind.title()));
        assert_eq!(doc["info"]["version"], json!(VERSION));
        assert!(doc["paths"]["/health"]["get"].is_object(), "{kind}: {doc}");
        assert!(doc["paths"]["/metrics"]["get"].is_object(), "{kind}: {doc}");
        // The served document is the generated one.
        let generated: Value =
            serde_json::from_str(&hale::cli::openapi_text(kind).expect("generate the document"))
                .expect("generated JSON");
        assert_eq!(doc, generated, "{kind} serves its generated document");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_served_in_the_prometheus_text_format() {
    let app = spawn_app().await;
    for kind in ServiceKind::ALL {
        // A counter shows once it has a series: the first scrape makes one for itself.
        app.get(kind, "/metrics").await;
        let res = app.get(kind, "/metrics").await;
        assert_eq!(res.status().as_u16(), 200);
        assert_eq!(
            header(&res, "content-type"),
            "text/plain; version=0.0.4; charset=utf-8"
        );
        let text = res.text().await.expect("read /metrics");
        assert!(
            text.contains("# TYPE http_requests_total counter"),
            "{kind}: {text}"
        );
        assert_eq!(
            sample_value(&text, "service_up", &[("service", kind.as_str())]),
            Some(1.0)
        );
    }
}

fn requests_total(
    metrics: &str,
    kind: ServiceKind,
    method: &str,
    route: &str,
    status: &str,
) -> f64 {
    sample_value(
        metrics,
        "http_requests_total",
        &[
            ("service", kind.as_str()),
            ("method", method),
            ("route", route),
            ("status", status),
        ],
    )
    .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_and_error_counters_move() {
    let app = spawn_app().await;
    for kind in ServiceKind::ALL {
        let before = app.metrics(kind).await;
        for _ in 0..3 {
            assert_eq!(app.get(kind, "/health").await.status().as_u16(), 200);
        }
        assert_eq!(app.get(kind, "/nope").await.status().as_u16(), 404);
        let after = app.metrics(kind).await;

        let service = kind.as_str();
        assert_eq!(
            requests_total(&after, kind, "GET", "/health", "200")
                - requests_total(&before, kind, "GET", "/health", "200"),
            3.0,
            "{kind}: http_requests_total for /health\n{after}"
        );
        let durations = |text: &str| {
            sample_value(
                text,
                "http_request_duration_seconds_count",
                &[("service", service), ("route", "/health")],
            )
            .unwrap_or(0.0)
        };
        assert_eq!(durations(&after) - durations(&before), 3.0, "{kind}");
        let not_found = |text: &str| {
            sample_value(
                text,
                "errors_total",
                &[("service", service), ("type", "not_found")],
            )
            .unwrap_or(0.0)
        };
        assert_eq!(not_found(&after) - not_found(&before), 1.0, "{kind}");
        // The first /metrics request was counted by the time of the second.
        assert!(requests_total(&after, kind, "GET", "/metrics", "200") >= 1.0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_route_label_stays_bounded() {
    let app = spawn_app().await;
    let raw_paths = ["/tools/a", "/tools/b", "/x/y/z"];
    for kind in ServiceKind::ALL {
        let before = app.metrics(kind).await;
        let mut not_found = 0.0;
        for path in raw_paths {
            if app.get(kind, path).await.status().as_u16() == 404 {
                not_found += 1.0;
            }
        }
        let after = app.metrics(kind).await;
        for path in raw_paths {
            assert!(
                !after.contains(&format!("\"{path}\"")),
                "{kind}: the raw path {path} became a label value\n{after}"
            );
        }
        // Every route label is a documented route, a docs route or `unmatched`.
        let doc: Value =
            serde_json::from_str(&hale::cli::openapi_text(kind).expect("document")).expect("JSON");
        let mut allowed: BTreeSet<String> = doc["paths"]
            .as_object()
            .expect("paths")
            .keys()
            .cloned()
            .collect();
        allowed.extend(["unmatched", "/openapi.json", "/docs", "/docs/{_:.*}"].map(String::from));
        for sample in common::prom::parse_samples(&after) {
            if let Some(route) = sample.labels.get("route") {
                assert!(
                    allowed.contains(route),
                    "{kind}: unexpected route {route:?}"
                );
            }
        }
        if kind != ServiceKind::McpBridge {
            // These services have no catch-all routes: every one of the requests is unmatched.
            assert_eq!(not_found, 3.0, "{kind}");
        }
        assert_eq!(
            requests_total(&after, kind, "GET", "unmatched", "404")
                - requests_total(&before, kind, "GET", "unmatched", "404"),
            not_found,
            "{kind}\n{after}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_service_exports_only_its_own_metrics() {
    let app = spawn_app().await;
    for kind in ServiceKind::ALL {
        app.get(kind, "/health").await;
        app.get(kind, "/nope").await;
    }
    for kind in ServiceKind::ALL {
        let text = app.metrics(kind).await;
        let services: BTreeSet<String> = common::prom::parse_samples(&text)
            .into_iter()
            .filter_map(|s| s.labels.get("service").cloned())
            .collect();
        assert_eq!(
            services,
            BTreeSet::from([kind.as_str().to_owned()]),
            "{kind} /metrics shows only its own service label"
        );
        let has_store_metrics = text.contains("store_rows_written_total");
        assert_eq!(
            has_store_metrics,
            kind == ServiceKind::HealthProxy,
            "{kind}: the store writer metrics live on the Health Proxy only"
        );
    }
}

/// Pipes metrics text through `promtool check metrics`; returns its exit success and output.
async fn promtool_check(text: &str) -> (bool, String) {
    let promtool = common::prom::promtool();
    let mut child = match tokio::process::Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
    {
        Ok(child) => child,
        Err(e) if e.kind() == ErrorKind::NotFound => panic!(
            "`{promtool}` is not installed: install the `prometheus` package (apt-get install prometheus) \
             or set PROMTOOL to its path; this test does not skip"
        ),
        Err(e) => panic!("cannot run {promtool}: {e}"),
    };
    let mut stdin = child.stdin.take().expect("piped stdin");
    stdin
        .write_all(text.as_bytes())
        .await
        .expect("feed promtool");
    drop(stdin);
    let output = tokio::time::timeout(common::DEADLINE, child.wait_with_output())
        .await
        .expect("promtool finishes")
        .expect("wait for promtool");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), report)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promtool_accepts_every_services_metrics() {
    let app = spawn_app().await;
    for kind in ServiceKind::ALL {
        // Fill in series of every kind: counters, histograms and errors.
        app.get(kind, "/health").await;
        app.get(kind, "/nope").await;
        app.request(Method::POST, kind, "/health")
            .send()
            .await
            .expect("send");
        let text = app.metrics(kind).await;
        // The process metrics (self-watch) are part of what promtool checks.
        for family in [
            "process_resident_memory_bytes",
            "process_open_fds",
            "process_max_fds",
            "process_cpu_seconds_total",
        ] {
            assert!(
                text.contains(&format!("# TYPE {family} ")),
                "{kind}: no {family}"
            );
        }
        let (ok, report) = promtool_check(&text).await;
        assert!(
            ok,
            "promtool check metrics rejects {kind}:\n{report}\n{text}"
        );
        assert!(
            report.trim().is_empty(),
            "promtool lint for {kind}:\n{report}"
        );
    }
    // The checker itself catches a broken exposition, so the assertion above can fail.
    let (ok, report) = promtool_check("# TYPE broken counter\nbroken{a=\"1\"} one\n").await;
    assert!(!ok, "promtool accepted a broken exposition: {report}");
}

#[test]
fn committed_openapi_documents_match_the_code() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi");
    let mut stale = Vec::new();
    for kind in ServiceKind::ALL {
        let path = dir.join(format!("{}.json", kind.as_str()));
        let generated = hale::cli::openapi_text(kind).expect("generate the document");
        match std::fs::read_to_string(&path) {
            Ok(committed) if committed == generated => {}
            Ok(_) => stale.push(format!("{} differs from the code", path.display())),
            Err(e) => stale.push(format!("cannot read {}: {e}", path.display())),
        }
    }
    assert!(
        stale.is_empty(),
        "the OpenAPI documents in openapi/ are stale:\n  {}\nregenerate them with:\n  cargo run -- export openapi --out openapi/",
        stale.join("\n  ")
    );
}
