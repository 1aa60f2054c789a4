//! What the integration tests share: `spawn_app` starts hale in-process on port 0 with a fresh temp
//! database, `HaleProcess` runs the real `hale` binary as a child process, and small readers for the
//! Prometheus text format. Logs stay quiet unless `TEST_LOG` is set (to a `HALE_LOG`-style filter or `1`).

// Each test binary uses a different part of this module.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use hale::app::Application;
use hale::config::{Config, ListenConfig};
use hale::kind::ServiceKind;
use hale::probe::Monitor;
use hale::services::Core;
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// How long a test waits for a port, a log line or a process before it fails.
pub const DEADLINE: Duration = Duration::from_secs(15);

/// `127.0.0.1:0`: let the kernel pick a free port.
pub fn any_port() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// The config every in-process test starts from: every service on a free port, no monitored services (so
/// nothing writes to the database unless the test does), one worker per service.
pub fn test_config() -> Config {
    let mut config = Config {
        listen: ListenConfig {
            health_proxy: any_port(),
            mcp_bridge: any_port(),
            boss_api: any_port(),
        },
        services: Vec::new(),
        ..Config::default()
    };
    config.http.workers = 1;
    config.http.shutdown_timeout_s = 5;
    // Load tests send bursts from one address; the rate limit tests turn the limits back on.
    config.rate_limits.enabled = false;
    config
}

/// The same config as JSON, for a child process (`hale serve --config FILE`).
pub fn test_config_json() -> serde_json::Value {
    serde_json::json!({
        "listen": {
            "health_proxy": "127.0.0.1:0",
            "mcp_bridge": "127.0.0.1:0",
            "boss_api": "127.0.0.1:0"
        },
        "http": { "workers": 1, "shutdown_timeout_s": 5 },
        "rate_limits": { "enabled": false },
        "services": []
    })
}

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
}

/// One sample of the Prometheus text format.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Every sample in a Prometheus text exposition (comments skipped).
pub fn parse_samples(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| parse_sample(line).unwrap_or_else(|| panic!("unparsable sample {line:?}")))
        .collect()
}

fn parse_sample(line: &str) -> Option<Sample> {
    let (series, value) = line.rsplit_once(' ')?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    let Some((name, rest)) = series.split_once('{') else {
        return Some(Sample {
            name: series.to_owned(),
            labels: BTreeMap::new(),
            value,
        });
    };
    let mut labels = BTreeMap::new();
    let mut chars = rest.strip_suffix('}')?.chars().peekable();
    loop {
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            break;
        }
        if chars.next()? != '"' {
            return None;
        }
        let mut value = String::new();
        loop {
            match chars.next()? {
                '\\' => match chars.next()? {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                '"' => break,
                c => value.push(c),
            }
        }
        labels.insert(key.trim_start_matches(',').to_owned(), value);
        if chars.peek() == Some(&',') {
            chars.next();
        }
    }
    Some(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// The value of the sample with this name and exactly these labels, if present.
pub fn sample_value(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let wanted: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    parse_samples(text)
        .into_iter()
        .find(|s| s.name == name && s.labels == wanted)
        .map(|s| s.value)
}

/// The sum of the samples with this name whose labels include these (other labels, such as the `source` of
/// `health_check_total`, are summed over); `None` when no sample matches.
pub fn sample_sum(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let matching: Vec<f64> = parse_samples(text)
        .into_iter()
        .filter(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
        .collect();
    (!matching.is_empty()).then(|| matching.iter().sum())
}

/// The path of the `hale` binary built for these tests.
pub fn hale_bin() -> &'static str {
    env!("CARGO_BIN_EXE_hale")
}

/// A `hale` command with a clean environment for hale's own variables and JSON logs, run in `dir`.
pub fn hale_command(dir: &Path) -> Command {
    let mut cmd = Command::new(hale_bin());
    cmd.current_dir(dir)
        .env_remove("HALE_CONFIG")
        .env_remove("HALE_DB")
        .env_remove("HALE_LOG")
        .env("HALE_LOG_FORMAT", "json")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    cmd
}

/// Runs `hale ARGS` in `dir` to completion (killed after `DEADLINE`).
pub async fn run_hale(dir: &Path, args: &[&str]) -> Output {
    let mut cmd = hale_command(dir);
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = cmd.spawn().expect("start the hale binary");
    match tokio::time::timeout(DEADLINE, child.wait_with_output()).await {
        Ok(output) => output.expect("wait for hale"),
        // The child is dropped with the future, which kills it (kill_on_drop).
        Err(_) => panic!("hale {args:?} did not exit within {DEADLINE:?}"),
    }
}

/// The exit code of a finished process; a death by signal fails the test.
pub fn exit_code(status: ExitStatus) -> i32 {
    status
        .code()
        .unwrap_or_else(|| panic!("hale was killed by a signal: {status:?}"))
}

/// `hale serve` running as a child process, its stdout and stderr collected line by line.
pub struct HaleProcess {
    child: Child,
    pub pid: u32,
    pub dir: TempDir,
    pub db_path: PathBuf,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
    readers: Vec<JoinHandle<()>>,
}

impl HaleProcess {
    /// Writes `config` to a temp folder and starts `hale serve --config .. --db .. EXTRA` there.
    pub async fn serve(config: &serde_json::Value, extra: &[&str]) -> Self {
        Self::serve_with_env(config, extra, &[]).await
    }

    pub async fn serve_with_env(
        config: &serde_json::Value,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        Self::spawn(config, None, extra, env, None).await
    }

    /// Like `serve_with_env`, with the database at `db` (default: `data/hale.db` in the temp folder).
    pub async fn serve_db(
        config: &serde_json::Value,
        db: Option<&Path>,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        Self::spawn(config, db, extra, env, None).await
    }

    /// Starts `hale serve` with both its soft and hard open-file limits set to `limit` (hale raises the soft
    /// limit to the hard one at start, so a low soft limit alone would not stay low).
    pub async fn serve_with_open_file_limit(config: &serde_json::Value, limit: u64) -> Self {
        Self::spawn(config, None, &[], &[], Some(limit)).await
    }

    /// `serve_db` with both open-file limits set to `limit`, for a test that restarts hale on one database.
    pub async fn serve_db_with_open_file_limit(
        config: &serde_json::Value,
        db: &Path,
        limit: u64,
    ) -> Self {
        Self::spawn(config, Some(db), &[], &[], Some(limit)).await
    }

    async fn spawn(
        config: &serde_json::Value,
        db: Option<&Path>,
        extra: &[&str],
        env: &[(&str, &str)],
        open_file_limit: Option<u64>,
    ) -> Self {
        let dir = tempfile::tempdir().expect("create a temp dir");
        let config_path = dir.path().join("config.json");
        std::fs::write(
            &config_path,
            serde_json::to_vec_pretty(config).expect("encode the config"),
        )
        .expect("write the config");
        let db_path = db.map_or_else(
            || dir.path().join("data").join("hale.db"),
            Path::to_path_buf,
        );
        let mut cmd = hale_command(dir.path());
        cmd.arg("serve")
            .arg("--config")
            .arg(&config_path)
            .arg("--db")
            .arg(&db_path)
            .args(extra)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(limit) = open_file_limit {
            // SAFETY: the closure runs in the forked child before exec and only calls setrlimit, which is
            // async-signal-safe; it allocates nothing and touches no lock.
            unsafe {
                cmd.pre_exec(move || rlimit::setrlimit(rlimit::Resource::NOFILE, limit, limit));
            }
        }
        let mut child = cmd.spawn().expect("start the hale binary");
        let pid = child.id().expect("a running child has a pid");
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let readers = vec![
            collect_lines(child.stdout.take().expect("piped stdout"), stdout.clone()),
            collect_lines(child.stderr.take().expect("piped stderr"), stderr.clone()),
        ];
        Self {
            child,
            pid,
            dir,
            db_path,
            stdout,
            stderr,
            readers,
        }
    }

    pub fn stdout_lines(&self) -> Vec<String> {
        self.stdout.lock().expect("stdout lock").clone()
    }

    pub fn stderr_lines(&self) -> Vec<String> {
        self.stderr.lock().expect("stderr lock").clone()
    }

    /// The stdout lines that are JSON objects (hale's log lines).
    pub fn json_logs(&self) -> Vec<serde_json::Value> {
        self.stdout_lines()
            .iter()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|v| v.is_object())
            .collect()
    }

    fn listening(&self) -> HashMap<ServiceKind, SocketAddr> {
        self.json_logs()
            .iter()
            .filter(|log| log["message"] == "listening")
            .filter_map(|log| {
                let name = log["service"].as_str()?;
                let kind = ServiceKind::ALL.into_iter().find(|k| k.as_str() == name)?;
                let addr = log["addr"].as_str()?.parse().ok()?;
                Some((kind, addr))
            })
            .collect()
    }

    /// Waits until hale either says every service in `kinds` listens (their addresses) or exits (its
    /// status, once its output is read).
    pub async fn wait_listening_or_exit(
        &mut self,
        kinds: &[ServiceKind],
    ) -> Result<HashMap<ServiceKind, SocketAddr>, ExitStatus> {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let listening = self.listening();
            if kinds.iter().all(|k| listening.contains_key(k)) {
                return Ok(listening);
            }
            if let Ok(Some(_)) = self.child.try_wait() {
                return Err(self.wait_exit(DEADLINE).await);
            }
            assert!(
                Instant::now() < deadline,
                "hale did not log `listening` for {kinds:?} within {DEADLINE:?}; stdout: {:?}",
                self.stdout_lines()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until every service in `kinds` has logged its bound address, and returns the addresses.
    pub async fn wait_listening(
        &mut self,
        kinds: &[ServiceKind],
    ) -> HashMap<ServiceKind, SocketAddr> {
        match self.wait_listening_or_exit(kinds).await {
            Ok(listening) => listening,
            Err(status) => panic!(
                "hale exited with {status} before listening; stderr: {:?}",
                self.stderr_lines()
            ),
        }
    }

    /// Sends a signal (`TERM`, `INT`, ...) with `kill`.
    pub fn signal(&self, name: &str) {
        let status = std::process::Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid.to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} {} failed", self.pid);
    }

    /// Waits for the process to exit, failing the test (and killing it) after `within`. Every output line is
    /// collected when this returns.
    pub async fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let status = match tokio::time::timeout(within, self.child.wait()).await {
            Ok(status) => status.expect("wait for hale"),
            Err(_) => {
                let _ = self.child.start_kill();
                panic!(
                    "hale did not exit within {within:?}; last stdout: {:?}",
                    self.stdout_lines()
                        .iter()
                        .rev()
                        .take(10)
                        .collect::<Vec<_>>()
                );
            }
        };
        for reader in self.readers.drain(..) {
            let _ = tokio::time::timeout(DEADLINE, reader).await;
        }
        status
    }
}

fn collect_lines(
    stream: impl AsyncRead + Unpin + Send + 'static,
    into: Arc<Mutex<Vec<String>>>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut lines = BufReader::new(stream).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            into.lock().expect("output lock").push(line);
        }
    })
}

/// Polls `probe` every 20 ms until it returns `Some`, failing the test after `DEADLINE`.
pub async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {DEADLINE:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Starts every service with the given config and clock (a `ManualClock` drives breakers and timestamps).
pub async fn spawn_app_with_clock(config: Config, clock: Arc<dyn hale::clock::Clock>) -> TestApp {
    start_app(config, None, clock).await
}

impl TestApp {
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
}

/// `SELECT count(*) FROM health_checks WHERE <condition>` on a database file, read with sqlx directly (not
/// through hale's store), after hale has closed it.
pub async fn count_check_rows(db_path: &Path, condition: &str) -> i64 {
    count_rows(db_path, "health_checks", condition).await
}

/// `SELECT count(*) FROM table WHERE condition` on the database file, through a connection of the test's own.
pub async fn count_rows(db_path: &Path, table: &str, condition: &str) -> i64 {
    let options = sqlx::sqlite::SqliteConnectOptions::new().filename(db_path);
    let pool = sqlx::SqlitePool::connect_with(options)
        .await
        .unwrap_or_else(|e| panic!("open {}: {e}", db_path.display()));
    let count: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {table} WHERE {condition}"))
        .fetch_one(&pool)
        .await
        .unwrap_or_else(|e| panic!("count rows where {condition}: {e}"));
    pool.close().await;
    count
}

/// A small tmpfs, a real filesystem that fills up; unmounted when dropped. Mounting needs root (CI runs as
/// root); without it the test fails and says why.
pub struct Tmpfs {
    pub path: PathBuf,
    _dir: TempDir,
}

impl Tmpfs {
    pub fn mount(size: &str) -> Self {
        let dir = tempfile::tempdir().expect("create a temp dir");
        let path = dir.path().join("disk");
        std::fs::create_dir(&path).expect("create the mount point");
        let target = path.to_str().expect("utf-8 temp path");
        let out = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size}"),
                "tmpfs",
                target,
            ])
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "this test mounts a small tmpfs to fill a real disk and needs root (CI runs as root): {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Self { path, _dir: dir }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.path)
            .status();
    }
}

/// A TCP target that accepts every connection and counts it: each accepted connection is one check hale made.
pub struct CountingTarget {
    pub addr: SocketAddr,
    accepted: Arc<std::sync::atomic::AtomicU64>,
    task: JoinHandle<()>,
}

impl CountingTarget {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a free port");
        let addr = listener.local_addr().expect("bound address");
        let accepted = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counter = accepted.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                drop(stream);
            }
        });
        Self {
            addr,
            accepted,
            task,
        }
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for CountingTarget {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `test_config_json()` with `n` TCP targets on one local port, each checked every second.
pub fn tcp_targets_config(target: SocketAddr, n: usize) -> serde_json::Value {
    let mut config = test_config_json();
    config["services"] = (0..n)
        .map(|i| {
            serde_json::json!({
                "name": format!("t{i}"),
                "url": format!("tcp://{target}"),
                "interval_s": 1,
                "timeout_ms": 500
            })
        })
        .collect();
    config
}

/// Whether process `pid` exists and has not exited: a zombie (exited, not yet reaped by its parent, as an
/// orphan in a container without an init that reaps may stay) counts as gone.
pub fn process_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let (_, rest) = stat.rsplit_once(')')?;
            rest.split_whitespace().next().map(str::to_owned)
        })
        .is_some_and(|state| state != "Z" && state != "X")
}

/// `SELECT <column> FROM table WHERE condition` on the database file, each value as text (null as empty).
pub async fn select_texts(
    db_path: &Path,
    table: &str,
    column: &str,
    condition: &str,
) -> Vec<String> {
    let options = sqlx::sqlite::SqliteConnectOptions::new().filename(db_path);
    let pool = sqlx::SqlitePool::connect_with(options)
        .await
        .unwrap_or_else(|e| panic!("open {}: {e}", db_path.display()));
    let values: Vec<Option<String>> = sqlx::query_scalar(&format!(
        "SELECT CAST({column} AS TEXT) FROM {table} WHERE {condition} ORDER BY id"
    ))
    .fetch_all(&pool)
    .await
    .unwrap_or_else(|e| panic!("select {column} where {condition}: {e}"));
    pool.close().await;
    values.into_iter().map(Option::unwrap_or_default).collect()
}

/// A port on 127.0.0.1 with nothing listening (bound once by the kernel, then released).
pub fn dead_port() -> u16 {
    let listener = std::net::TcpListener::bind(any_port()).expect("bind a free port");
    listener.local_addr().expect("local address").port()
}

/// One request an `HttpReceiver` got.
#[derive(Debug, Clone)]
pub struct Received {
    pub at: Instant,
    pub method: String,
    pub path: String,
    /// Header names in lower case.
    pub headers: HashMap<String, String>,
    pub body: String,
}

impl Received {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("the body is not JSON ({e}): {}", self.body))
    }
}

/// A real HTTP/1.1 server on a random port that records every request and answers each with the next of a
/// scripted list of (status, body), then with the last one.
pub struct HttpReceiver {
    pub addr: SocketAddr,
    requests: Arc<Mutex<Vec<Received>>>,
    task: JoinHandle<()>,
}

impl HttpReceiver {
    pub async fn start(answers: Vec<(u16, &'static str)>) -> Self {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind(any_port())
            .await
            .expect("bind the receiver");
        let addr = listener.local_addr().expect("receiver address");
        let requests: Arc<Mutex<Vec<Received>>> = Arc::default();
        let recorded = requests.clone();
        let answers = Arc::new(Mutex::new(std::collections::VecDeque::from(answers)));
        let task = tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let recorded = recorded.clone();
                let answers = answers.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    let header_end = loop {
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i + 4;
                        }
                        match socket.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..header_end]).to_string();
                    let mut lines = head.split("\r\n");
                    let mut request_line = lines.next().unwrap_or_default().split(' ');
                    let method = request_line.next().unwrap_or_default().to_owned();
                    let path = request_line.next().unwrap_or_default().to_owned();
                    let headers: HashMap<String, String> = lines
                        .filter_map(|l| l.split_once(':'))
                        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
                        .collect();
                    let length: usize = headers
                        .get("content-length")
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0);
                    while buf.len() < header_end + length {
                        match socket.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let body =
                        String::from_utf8_lossy(&buf[header_end..header_end + length]).to_string();
                    recorded.lock().expect("requests lock").push(Received {
                        at: Instant::now(),
                        method,
                        path,
                        headers,
                        body,
                    });
                    let (status, answer) = {
                        let mut answers = answers.lock().expect("answers lock");
                        if answers.len() > 1 {
                            answers.pop_front().expect("not empty")
                        } else {
                            answers.front().copied().unwrap_or((204, ""))
                        }
                    };
                    let response = format!(
                        "HTTP/1.1 {status} Answer\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
                        answer.len()
                    );
                    let _ = socket.write_all(response.as_bytes()).await;
                    let _ = socket.shutdown().await;
                });
            }
        });
        Self {
            addr,
            requests,
            task,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn requests(&self) -> Vec<Received> {
        self.requests.lock().expect("requests lock").clone()
    }
}

impl Drop for HttpReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The repository's root, where the committed exports live.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs a tool (promtool, amtool, ...) to completion and returns whether it succeeded and its stdout then
/// stderr; fails (never skips) when it is missing, naming the Debian package. `$PROMTOOL`, when set, is
/// run instead of promtool.
pub async fn run_tool(program: &str, args: &[&str], package: &str) -> (bool, String) {
    let program = match program {
        "promtool" => std::env::var("PROMTOOL").unwrap_or_else(|_| "promtool".to_owned()),
        other => other.to_owned(),
    };
    let output = match Command::new(&program).args(args).output().await {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "`{program}` is not installed: install the `{package}` package (scripts/test does)"
        ),
        Err(e) => panic!("cannot run {program}: {e}"),
    };
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}
