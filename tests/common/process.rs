//! The real `hale` binary as a child process (`run_hale`, `HaleProcess` with its output collected line by
//! line), and what the tests read about processes from the system: `/proc`, exit codes, a small tmpfs.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hale::kind::ServiceKind;
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::DEADLINE;

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
            #[allow(unsafe_code)]
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

/// The live processes whose environment has `name=value` (zombies excluded).
pub fn pids_with_env(name: &str, value: &str) -> Vec<u32> {
    let wanted = format!("{name}={value}");
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.split(|b| *b == 0).any(|kv| kv == wanted.as_bytes()))
        })
        .filter(|pid| process_alive(*pid))
        .collect()
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
