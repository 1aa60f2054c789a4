//! What the integration tests share, one file per concern: `app` (hale in-process), `config` (the
//! `TestConfig` builder), `process` (the real binary and what /proc says), `receivers` (servers hale sends
//! to), `prom` (Prometheus text and tools), `clock` (the `Pacer` for a `ManualClock`), `db` (reading the
//! database file). Logs stay quiet unless `TEST_LOG` is set (to a `HALE_LOG`-style filter or `1`).

// Each test binary uses a different part of these modules.
#![allow(dead_code)]

pub mod app;
pub mod clock;
pub mod config;
pub mod db;
pub mod mcp_fixture;
pub mod process;
pub mod prom;
pub mod receivers;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use tokio::time::Instant;

/// How long a test waits for a port, a log line, an event or a process before it fails.
pub const DEADLINE: Duration = Duration::from_secs(15);

/// `127.0.0.1:0`: let the kernel pick a free port.
pub fn any_port() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// A port on 127.0.0.1 with nothing listening (bound once by the kernel, then released).
pub fn dead_port() -> u16 {
    let listener = std::net::TcpListener::bind(any_port()).expect("bind a free port");
    listener.local_addr().expect("local address").port()
}

/// The repository's root, where the committed exports live.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
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
