//! hale in this test's process: `spawn_app*` start it on port 0 with a fresh temp database (on the system
//! clock or a `ManualClock`), and `TestApp` gives the test its addresses, an HTTP client and its parts.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Once};
use std::time::Duration;

use hale::app::Application;
use hale::config::Config;
use hale::events::Subscription;
use hale::kind::ServiceKind;
use hale::probe::Monitor;
use hale::services::Core;
use tempfile::TempDir;

use super::config::test_config;

fn init_test_logs() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        if let Ok(filter) = std::env::var("TEST_LOG") {
            if filter != "1" {
                std::env::set_var("HALE_LOG", filter);
            }
            // A second subscriber (another test binary's) is not an error worth failing a test for.
            let _ = hale::telemetry::init(hale::telemetry::LogFormat::Pretty);
        }
    });
}

/// hale running in this test's process, with its own database in a temp folder.
pub struct TestApp {
    app: Option<Application>,
    pub addrs: HashMap<ServiceKind, SocketAddr>,
    pub db_path: PathBuf,
    pub dir: TempDir,
    pub client: reqwest::Client,
}

/// Starts every service with `test_config()`.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(test_config()).await
}

/// Starts every service with the given config (its `listen` addresses should use port 0).
pub async fn spawn_app_with(config: Config) -> TestApp {
    spawn_app_only(config, None).await
}

/// Starts only `only` (or every service) with the given config.
pub async fn spawn_app_only(config: Config, only: Option<ServiceKind>) -> TestApp {
    start_app(config, only, Arc::new(hale::clock::SystemClock)).await
}

/// Starts every service with the given config and clock (a `ManualClock` drives breakers and timestamps).
pub async fn spawn_app_with_clock(config: Config, clock: Arc<dyn hale::clock::Clock>) -> TestApp {
    start_app(config, None, clock).await
}

async fn start_app(
    config: Config,
    only: Option<ServiceKind>,
    clock: Arc<dyn hale::clock::Clock>,
) -> TestApp {
    init_test_logs();
    let dir = tempfile::tempdir().expect("create a temp dir");
    let db_path = dir.path().join("hale.db");
    let app = Application::start_with_clock(config, &db_path, only, clock)
        .await
        .unwrap_or_else(|e| panic!("hale did not start: {e}"));
    let mut test_app = TestApp {
        app: Some(app),
        addrs: HashMap::new(),
        db_path,
        dir,
        client: client(),
    };
    test_app.refresh_addrs();
    test_app
}

/// An HTTP client that gives up instead of hanging a test.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("build the HTTP client")
}

impl TestApp {
    pub fn app(&self) -> &Application {
        self.app.as_ref().expect("the app is running")
    }

    /// What every service shares: config, store, writer, clock.
    pub fn core(&self) -> &Core {
        self.app().core()
    }

    /// The Health Proxy's monitor.
    pub fn monitor(&self) -> &Arc<Monitor> {
        self.app().monitor().expect("the Health Proxy runs")
    }

    pub fn addr(&self, kind: ServiceKind) -> SocketAddr {
        *self
            .addrs
            .get(&kind)
            .unwrap_or_else(|| panic!("{kind} is not running"))
    }

    /// `http://127.0.0.1:PORT` of a service.
    pub fn base_url(&self, kind: ServiceKind) -> String {
        format!("http://{}", self.addr(kind))
    }

    pub fn url(&self, kind: ServiceKind, path: &str) -> String {
        format!("{}{path}", self.base_url(kind))
    }

    pub fn request(
        &self,
        method: reqwest::Method,
        kind: ServiceKind,
        path: &str,
    ) -> reqwest::RequestBuilder {
        self.client.request(method, self.url(kind, path))
    }

    pub async fn get(&self, kind: ServiceKind, path: &str) -> reqwest::Response {
        self.request(reqwest::Method::GET, kind, path)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path} on {kind} failed: {e}"))
    }

    pub async fn get_with_request_id(
        &self,
        kind: ServiceKind,
        path: &str,
        request_id: &str,
    ) -> reqwest::Response {
        self.request(reqwest::Method::GET, kind, path)
            .header("x-request-id", request_id)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path} on {kind} failed: {e}"))
    }

    pub async fn post_json(
        &self,
        kind: ServiceKind,
        path: &str,
        body: &serde_json::Value,
    ) -> reqwest::Response {
        self.request(reqwest::Method::POST, kind, path)
            .json(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {path} on {kind} failed: {e}"))
    }

    /// GET a path and parse its JSON body; returns the status too.
    pub async fn get_json(&self, kind: ServiceKind, path: &str) -> (u16, serde_json::Value) {
        let res = self.get(kind, path).await;
        let status = res.status().as_u16();
        let body = res
            .json()
            .await
            .unwrap_or_else(|e| panic!("GET {path} on {kind} did not answer JSON: {e}"));
        (status, body)
    }

    /// The `/metrics` text of a service.
    pub async fn metrics(&self, kind: ServiceKind) -> String {
        let res = self.get(kind, "/metrics").await;
        assert_eq!(res.status().as_u16(), 200, "/metrics of {kind}");
        res.text().await.expect("read /metrics")
    }

    /// Stops the app gracefully (servers, loops, writer drain, database close). The temp folder stays.
    pub async fn shutdown(&mut self) {
        if let Some(app) = self.app.take() {
            app.shutdown().await;
        }
    }

    /// Stops the app gracefully and returns what its writer reported.
    pub async fn shutdown_with_report(&mut self) -> hale::store::writer::WriterReport {
        self.app
            .take()
            .expect("the app is running")
            .shutdown()
            .await
    }

    /// Stops hale gracefully and starts it again on the same database, as an operator's restart would.
    pub async fn restart(&mut self, config: Config, clock: Arc<dyn hale::clock::Clock>) {
        self.shutdown().await;
        let app = Application::start_with_clock(config, &self.db_path, None, clock)
            .await
            .unwrap_or_else(|e| panic!("hale did not restart: {e}"));
        self.app = Some(app);
        self.refresh_addrs();
    }

    fn refresh_addrs(&mut self) {
        let app = self.app.as_ref().expect("the app is running");
        self.addrs = ServiceKind::ALL
            .into_iter()
            .filter_map(|kind| app.addr(kind).map(|addr| (kind, addr)))
            .collect();
    }

    /// Follows the app's event bus from now on (checks, breaker moves, children, heals).
    pub fn events(&self, name: &'static str) -> Subscription {
        self.app().events().subscribe(name)
    }
}

impl TestApp {
    /// Checks a body hale keeps as sent (the status page, `/slo`'s pages) at `path`: a request that
    /// accepts gzip gets a gzip copy that decompresses to the identity body (compared when both carry the
    /// same entity tag, that is, the same kept body), both say `Vary: Accept-Encoding`, and
    /// `If-None-Match` with the tag gets `304` with no body. Returns the identity body.
    pub async fn check_kept_body(&self, kind: ServiceKind, path: &str) -> Vec<u8> {
        use std::io::Read;
        let header = |res: &reqwest::Response, name: &str| {
            res.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let identity = super::eventually("a gzip copy of the same kept body", || async {
            let plain = self.get(kind, path).await;
            assert_eq!(plain.status(), 200, "{path}");
            assert_eq!(header(&plain, "content-encoding"), None, "{path}");
            assert_eq!(header(&plain, "vary").as_deref(), Some("Accept-Encoding"));
            let tag = header(&plain, "etag").expect("an ETag");
            let plain = plain.bytes().await.unwrap().to_vec();
            let zipped = self
                .request(reqwest::Method::GET, kind, path)
                .header("accept-encoding", "gzip, deflate, br")
                .send()
                .await
                .unwrap();
            assert_eq!(zipped.status(), 200, "{path}");
            assert_eq!(header(&zipped, "vary").as_deref(), Some("Accept-Encoding"));
            assert_eq!(
                header(&zipped, "content-encoding").as_deref(),
                Some("gzip"),
                "{path}"
            );
            let zipped_tag = header(&zipped, "etag").expect("an ETag");
            let zipped = zipped.bytes().await.unwrap();
            let mut unzipped = Vec::new();
            flate2::read::GzDecoder::new(&zipped[..])
                .read_to_end(&mut unzipped)
                .expect("a gzip body");
            assert!(zipped.len() < plain.len(), "{path}");
            let same = zipped_tag == format!("{}-gz\"", tag.trim_end_matches('"'));
            same.then(|| {
                assert_eq!(unzipped, plain, "{path}");
                plain
            })
        })
        .await;
        super::eventually("304 for the current ETag", || async {
            let res = self.get(kind, path).await;
            let tag = header(&res, "etag").expect("an ETag");
            let again = self
                .request(reqwest::Method::GET, kind, path)
                .header("if-none-match", &tag)
                .send()
                .await
                .unwrap();
            if again.status() != 304 {
                // A new SLO pass or a new render in between: another tag, another try.
                assert_eq!(again.status(), 200, "{path}");
                assert_ne!(header(&again, "etag").as_deref(), Some(tag.as_str()));
                return None;
            }
            assert_eq!(header(&again, "etag").as_deref(), Some(tag.as_str()));
            assert!(again.bytes().await.unwrap().is_empty(), "{path}");
            Some(())
        })
        .await;
        identity
    }
}
