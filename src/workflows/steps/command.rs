//! The `command` step: a program run directly (no shell) in its own process group, its output kept up to a
//! cap; on timeout or cancel, SIGTERM to the group, a grace period, then SIGKILL.

use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Child;
use tokio_util::sync::CancellationToken;

use crate::config::RunConfig;
use crate::supervise::child::{signal_group, Spawner};
use crate::workflows::steps::http::seconds;
use crate::workflows::steps::{Failure, StepResult};
use crate::workflows::FailureClass;

/// How long the output is still read after the command's process group is gone (a process that left the
/// group may hold a pipe open); what it writes later is not kept.
const OUTPUT_DRAIN: Duration = Duration::from_millis(500);

/// The most of stderr quoted in a failure's message.
const MESSAGE_STDERR_CHARS: usize = 200;

/// A `command` step, rendered.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandSpec {
    pub argv: Vec<String>,
    pub cwd: Option<PathBuf>,
    /// The whole environment of the command (built by `supervise::env`: never hale's tokens).
    pub env: Vec<(String, String)>,
    pub output_cap_bytes: u64,
    pub timeout: Duration,
    /// After SIGTERM, how long before SIGKILL.
    pub kill_grace: Duration,
}

/// Runs the command; its output is its exit code and what it wrote, cut at the cap.
///
/// The output is `{"exit_code": 0, "stdout", "stderr", "truncated", "pid"}`. stdout and stderr share
/// `output_cap_bytes`: each keeps at least half of it when both are long, and one that wrote less leaves
/// the rest to the other. Output past the cap is read and dropped, so the command never blocks on a full
/// pipe. When the command's leader exits, whatever is left of its process group is killed.
pub async fn run(spawner: &Spawner, spec: &CommandSpec, cancel: &CancellationToken) -> StepResult {
    let Some(program) = spec.argv.first().filter(|p| !p.is_empty()) else {
        return Err(Failure::fatal("a command needs a program: argv is empty"));
    };
    let run = RunConfig::process(spec.argv.clone(), spec.cwd.clone(), BTreeMap::new());
    let mut child = spawner
        .spawn(Arc::new(run), Arc::new(spec.env.clone()))
        .await
        .map_err(|e| Failure::fatal(format!("cannot start {program}: {e}")))?;
    let Some(pid) = child.id() else {
        return Err(Failure::fatal(format!(
            "{program} exited before its pid was seen"
        )));
    };
    // From here on, the group is killed however this step ends (even when its future is dropped).
    let mut group = GroupGuard {
        pgid: pid,
        killed: false,
    };

    let cap = usize::try_from(spec.output_cap_bytes).unwrap_or(usize::MAX);
    let mut stdout = Capture::new(cap);
    let mut stderr = Capture::new(cap);
    let stdout_pipe = child.stdout.take();
    let stderr_pipe = child.stderr.take();
    let ending = {
        let reading = async {
            tokio::join!(
                read_all(stdout_pipe, &mut stdout),
                read_all(stderr_pipe, &mut stderr)
            )
        };
        tokio::pin!(reading);
        let waiting = wait(&mut child, pid, spec, cancel);
        tokio::pin!(waiting);
        let mut read_to_end = false;
        let ending = loop {
            tokio::select! {
                ending = &mut waiting => break ending,
                _ = &mut reading, if !read_to_end => read_to_end = true,
            }
        };
        // The leader is gone: so is the rest of its group, and with it the pipes' last writers.
        group.kill();
        if !read_to_end {
            let _ = tokio::time::timeout(OUTPUT_DRAIN, &mut reading).await;
        }
        ending
    };
    drop(group);

    let (stdout_kept, stderr_kept) = share(cap, stdout.kept.len(), stderr.kept.len());
    let truncated = stdout.more
        || stderr.more
        || stdout_kept + stderr_kept < stdout.kept.len() + stderr.kept.len();
    let stdout_text = String::from_utf8_lossy(&stdout.kept[..stdout_kept]).into_owned();
    let stderr_text = String::from_utf8_lossy(&stderr.kept[..stderr_kept]).into_owned();

    match ending {
        Ending::Exited(status) => match (status.code(), signal_of(&status)) {
            (Some(0), _) => Ok(json!({
                "exit_code": 0,
                "stdout": stdout_text,
                "stderr": stderr_text,
                "truncated": truncated,
                "pid": pid,
            })),
            (Some(code), _) => {
                let said = quote(&stderr_text);
                let said = if said.is_empty() {
                    String::new()
                } else {
                    format!(": {said}")
                };
                Err(Failure::of(
                    FailureClass::NonzeroExit,
                    format!("{program} exited with {code}{said}"),
                ))
            }
            (None, Some(signal)) => Err(Failure::fatal(format!(
                "{program} was killed by signal {signal} ({})",
                signal_name(signal)
            ))),
            (None, None) => Err(Failure::fatal(format!(
                "{program} ended without an exit code or a signal ({status})"
            ))),
        },
        Ending::WaitFailed(e) => Err(Failure::fatal(format!(
            "cannot wait for {program} (pid {pid}): {e}"
        ))),
        Ending::Stopped { why, killed } => {
            let how = if killed {
                format!(
                    "sent SIGTERM, then SIGKILL after a grace of {}",
                    seconds(spec.kill_grace)
                )
            } else {
                "stopped by SIGTERM".to_owned()
            };
            match why {
                Stop::Timeout => Err(Failure::of(
                    FailureClass::Timeout,
                    format!(
                        "{program} ran past its timeout of {} and was killed with its process group ({how})",
                        seconds(spec.timeout)
                    ),
                )),
                Stop::Cancelled => Err(Failure::fatal(format!(
                    "cancelled while {program} ran; it was killed with its process group ({how})"
                ))),
            }
        }
    }
}

/// How the command's leader ended.
enum Ending {
    /// By itself.
    Exited(ExitStatus),
    /// Stopped by hale; `killed` when it outlived SIGTERM's grace.
    Stopped {
        why: Stop,
        killed: bool,
    },
    WaitFailed(io::Error),
}

/// Why hale stopped the command.
enum Stop {
    Timeout,
    Cancelled,
}

/// Waits for the leader to exit, or stops its group at the timeout or on cancel: SIGTERM, up to the grace
/// period, then SIGKILL.
async fn wait(
    child: &mut Child,
    pid: u32,
    spec: &CommandSpec,
    cancel: &CancellationToken,
) -> Ending {
    let why = tokio::select! {
        status = child.wait() => {
            return match status {
                Ok(status) => Ending::Exited(status),
                Err(e) => Ending::WaitFailed(e),
            };
        }
        () = tokio::time::sleep(spec.timeout) => Stop::Timeout,
        () = cancel.cancelled() => Stop::Cancelled,
    };
    signal_group(pid, libc::SIGTERM);
    let killed = match tokio::time::timeout(spec.kill_grace, child.wait()).await {
        Ok(Ok(_)) => false,
        Ok(Err(e)) => return Ending::WaitFailed(e),
        Err(_) => {
            signal_group(pid, libc::SIGKILL);
            if let Err(e) = child.wait().await {
                return Ending::WaitFailed(e);
            }
            true
        }
    };
    Ending::Stopped { why, killed }
}

/// Kills the command's process group: explicitly once its leader is gone, or when the step is dropped
/// midway.
struct GroupGuard {
    pgid: u32,
    killed: bool,
}

impl GroupGuard {
    fn kill(&mut self) {
        if !self.killed {
            self.killed = true;
            signal_group(self.pgid, libc::SIGKILL);
        }
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One output stream: up to `cap` bytes kept, and whether more was written.
struct Capture {
    cap: usize,
    kept: Vec<u8>,
    more: bool,
}

impl Capture {
    fn new(cap: usize) -> Self {
        Self {
            cap,
            kept: Vec::new(),
            more: false,
        }
    }

    fn take(&mut self, chunk: &[u8]) {
        let room = self.cap.saturating_sub(self.kept.len());
        if chunk.len() > room {
            self.more = true;
        }
        self.kept.extend_from_slice(&chunk[..chunk.len().min(room)]);
    }
}

/// Reads a stream to its end into `capture`; past the cap, reads and drops.
async fn read_all(pipe: Option<impl AsyncRead + Unpin>, capture: &mut Capture) {
    let Some(mut pipe) = pipe else {
        return;
    };
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => capture.take(&buf[..n]),
        }
    }
}

/// How many bytes of stdout and of stderr are kept within `cap` together: all of both when they fit; else
/// each keeps up to half, and the half one of them leaves unused goes to the other.
pub(super) fn share(cap: usize, stdout: usize, stderr: usize) -> (usize, usize) {
    if stdout.saturating_add(stderr) <= cap {
        return (stdout, stderr);
    }
    let half = cap / 2;
    let out = stdout.min(half.max(cap - stderr.min(cap - half)));
    let err = stderr.min(cap - out);
    (out, err)
}

/// The signal that ended a process, if one did.
fn signal_of(status: &ExitStatus) -> Option<i32> {
    use std::os::unix::process::ExitStatusExt;
    status.signal()
}

/// The name of a common signal.
fn signal_name(signal: i32) -> &'static str {
    match signal {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGUSR2 => "SIGUSR2",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        _ => "another signal",
    }
}

/// The start of stderr, on one line, for a failure's message.
fn quote(text: &str) -> String {
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut quoted: String = one_line.chars().take(MESSAGE_STDERR_CHARS).collect();
    if quoted.len() < one_line.len() {
        quoted.push('…');
    }
    quoted
}
