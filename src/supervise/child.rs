//! One child process: started in its own process group from a minimal environment (and, on Linux, killed
//! by the kernel when hale dies), its output logged line by line within a budget of lines per second,
//! stopped by signalling the whole group.
//!
//! Children are forked by one long-lived thread per supervisor (`Spawner`): `PR_SET_PDEATHSIG` fires when
//! the *thread* that forked the child exits, so forking from a pool thread that exits when idle would kill
//! healthy children.

// Unsafe code here: PR_SET_PDEATHSIG in the forked child before exec, and signalling its process group.
#![allow(unsafe_code)]

use std::io;
use std::process::{ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::config::{RunConfig, StopSignal};

/// Longest line of a child's output that is logged; the rest of the line is dropped.
pub const MAX_LINE_BYTES: usize = 4096;

/// How long hale waits for the last lines of a child's output after the child is gone.
const OUTPUT_DRAIN: Duration = Duration::from_millis(500);

/// How often lines past a child's log budget are reported, as one `suppressed N lines` line.
const SUPPRESSED_REPORT_EVERY: Duration = Duration::from_secs(1);

struct SpawnRequest {
    run: Arc<RunConfig>,
    env: Arc<Vec<(String, String)>>,
    /// The child reads hale's requests on its stdin (an MCP server), rather than nothing.
    stdin_piped: bool,
    runtime: tokio::runtime::Handle,
    reply: oneshot::Sender<io::Result<Child>>,
}

/// The thread that forks every child of one supervisor. It lives as long as the supervisor (its channel
/// closes when the supervisor is dropped), which is as long as any child it started may run.
#[derive(Debug)]
pub struct Spawner {
    requests: Mutex<mpsc::Sender<SpawnRequest>>,
}

impl Spawner {
    pub fn start() -> io::Result<Self> {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("hale-spawner".into())
            .spawn(move || {
                while let Ok(request) = rx.recv() {
                    // tokio's child handling (reaping, pipes) needs its runtime while spawning.
                    let _runtime = request.runtime.enter();
                    let result = command(&request.run, &request.env, request.stdin_piped)
                        .and_then(|mut c| c.spawn());
                    // A requester that gave up drops the child, which kills it (kill_on_drop).
                    let _ = request.reply.send(result);
                }
            })?;
        Ok(Self {
            requests: Mutex::new(tx),
        })
    }

    /// Starts a child on the spawner thread, with no stdin.
    pub async fn spawn(
        &self,
        run: Arc<RunConfig>,
        env: Arc<Vec<(String, String)>>,
    ) -> io::Result<Child> {
        self.request(run, env, false).await
    }

    /// Starts a child on the spawner thread with its stdin piped from hale: a server hale talks to.
    pub async fn spawn_with_stdin(
        &self,
        run: Arc<RunConfig>,
        env: Arc<Vec<(String, String)>>,
    ) -> io::Result<Child> {
        self.request(run, env, true).await
    }

    async fn request(
        &self,
        run: Arc<RunConfig>,
        env: Arc<Vec<(String, String)>>,
        stdin_piped: bool,
    ) -> io::Result<Child> {
        let (reply, answer) = oneshot::channel();
        let request = SpawnRequest {
            run,
            env,
            stdin_piped,
            runtime: tokio::runtime::Handle::current(),
            reply,
        };
        let sent = self
            .requests
            .lock()
            .map_err(|_| io::Error::other("the spawner thread is gone"))?
            .send(request);
        if sent.is_err() {
            return Err(io::Error::other("the spawner thread is gone"));
        }
        answer
            .await
            .map_err(|_| io::Error::other("the spawner thread is gone"))?
    }
}

/// The command for a child: argv run directly, its own process group, exactly the environment `env`
/// (see `env.rs`), output piped, stdin piped or none.
fn command(run: &RunConfig, env: &[(String, String)], stdin_piped: bool) -> io::Result<Command> {
    let (program, args) = run
        .argv
        .split_first()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "empty argv"))?;
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(if stdin_piped {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(cwd) = &run.cwd {
        cmd.current_dir(cwd);
    }
    #[cfg(target_os = "linux")]
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: the closure runs in the forked child before exec; it only makes async-signal-safe calls
    // (setpgid, prctl, getppid, _exit), allocates nothing and takes no lock.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setpgid(0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            #[cfg(target_os = "linux")]
            {
                if libc::prctl(
                    libc::PR_SET_PDEATHSIG,
                    libc::SIGKILL as libc::c_ulong,
                    0,
                    0,
                    0,
                ) != 0
                {
                    return Err(io::Error::last_os_error());
                }
                // hale may have died between the fork and the prctl: then nobody would kill this child.
                if libc::getppid() != parent {
                    libc::_exit(1);
                }
            }
            Ok(())
        });
    }
    Ok(cmd)
}

/// Which of a child's output streams a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stdout => "stdout",
            Self::Stderr => "stderr",
        }
    }
}

/// A child's budget of logged lines: a token bucket of `burst` lines refilled at `rate` lines a second.
/// Lines past it are counted, not logged, and the count is reported at most once per period. Pure: the
/// time is an argument.
#[derive(Debug, Clone)]
pub struct LogBudget {
    rate: f64,
    burst: f64,
    tokens: f64,
    refilled_at: Instant,
    suppressed: u64,
    reported_at: Instant,
}

impl LogBudget {
    pub fn new(lines_per_s: u32, burst: u32, now: Instant) -> Self {
        let burst = f64::from(burst.max(1));
        Self {
            rate: f64::from(lines_per_s.max(1)),
            burst,
            tokens: burst,
            refilled_at: now,
            suppressed: 0,
            reported_at: now,
        }
    }

    /// Whether a line may be logged at `now`; a line that may not is counted as suppressed.
    pub fn admit(&mut self, now: Instant) -> bool {
        let elapsed = now
            .saturating_duration_since(self.refilled_at)
            .as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.refilled_at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            self.suppressed += 1;
            false
        }
    }

    /// The lines suppressed since the last report, when there are some and a period has passed since it
    /// (or at once with `now_anyway`, at the end of the output); the count starts over.
    pub fn report(&mut self, now: Instant, now_anyway: bool) -> Option<u64> {
        if self.suppressed == 0
            || (!now_anyway
                && now.saturating_duration_since(self.reported_at) < SUPPRESSED_REPORT_EVERY)
        {
            return None;
        }
        self.reported_at = now;
        Some(std::mem::take(&mut self.suppressed))
    }
}

/// One child's budget, shared by the tasks that log its two streams.
#[derive(Debug)]
struct SharedBudget {
    target: Arc<str>,
    lines_per_s: u32,
    burst: u32,
    budget: Mutex<LogBudget>,
}

impl SharedBudget {
    fn lock(&self) -> std::sync::MutexGuard<'_, LogBudget> {
        // Plain counters updated in one step; a panic elsewhere cannot leave them torn.
        self.budget
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn admit(&self) -> bool {
        self.lock().admit(Instant::now())
    }

    /// Logs the count of suppressed lines when one is due.
    fn report(&self, now_anyway: bool) {
        let due = self.lock().report(Instant::now(), now_anyway);
        if let Some(n) = due {
            tracing::warn!(
                target = &*self.target,
                suppressed = n,
                lines_per_s = self.lines_per_s,
                burst = self.burst,
                "suppressed {n} lines of the child's output (over its log budget of {} lines/s)",
                self.lines_per_s
            );
        }
    }
}

/// A started child: its process (the leader of its own group) and the tasks logging its output.
#[derive(Debug)]
pub struct Running {
    pub child: Child,
    pub pid: u32,
    pub start_ticks: Option<u64>,
    output: Vec<JoinHandle<()>>,
    budget: Arc<SharedBudget>,
}

impl Running {
    /// Takes the child's output pipes and logs them, within the run block's log budget.
    pub fn new(mut child: Child, target: &Arc<str>, run: &RunConfig) -> io::Result<Self> {
        let pid = child
            .id()
            .ok_or_else(|| io::Error::other("the child exited before hale saw its pid"))?;
        let budget = Arc::new(SharedBudget {
            target: target.clone(),
            lines_per_s: run.log_lines_per_s,
            burst: run.log_burst,
            budget: Mutex::new(LogBudget::new(
                run.log_lines_per_s,
                run.log_burst,
                Instant::now(),
            )),
        });
        let mut output = Vec::with_capacity(2);
        if let Some(stdout) = child.stdout.take() {
            output.push(tokio::spawn(log_output(
                budget.clone(),
                Stream::Stdout,
                stdout,
            )));
        }
        if let Some(stderr) = child.stderr.take() {
            output.push(tokio::spawn(log_output(
                budget.clone(),
                Stream::Stderr,
                stderr,
            )));
        }
        tokio::spawn(report_suppressed(budget.clone()));
        Ok(Self {
            child,
            pid,
            start_ticks: proc_start_ticks(pid),
            output,
            budget,
        })
    }

    /// Waits for the child to exit by itself.
    pub async fn wait(&mut self) -> io::Result<ExitStatus> {
        self.child.wait().await
    }

    /// After the leader exited: kills what is left of its group (a grandchild that outlived it) and lets
    /// the last lines of output be logged.
    pub async fn finish(&mut self) {
        signal_group(self.pid, libc::SIGKILL);
        for task in self.output.drain(..) {
            if tokio::time::timeout(OUTPUT_DRAIN, task).await.is_err() {
                tracing::debug!(pid = self.pid, "child output still open after it exited");
            }
        }
        self.budget.report(true);
    }

    /// Stops the child: `signal` to its whole group, up to `timeout` for it to exit, then SIGKILL to the
    /// group. Returns how it ended.
    pub async fn stop(
        &mut self,
        target: &str,
        signal: StopSignal,
        timeout: Duration,
    ) -> io::Result<ExitStatus> {
        signal_group(self.pid, raw_signal(signal));
        let status = match tokio::time::timeout(timeout, self.child.wait()).await {
            Ok(status) => status,
            Err(_) => {
                tracing::warn!(
                    target,
                    pid = self.pid,
                    timeout_s = timeout.as_secs(),
                    "child did not stop in time; killing its process group"
                );
                signal_group(self.pid, libc::SIGKILL);
                self.child.wait().await
            }
        };
        self.finish().await;
        status
    }
}

/// The number of a stop signal.
pub fn raw_signal(signal: StopSignal) -> libc::c_int {
    match signal {
        StopSignal::Term => libc::SIGTERM,
        StopSignal::Int => libc::SIGINT,
        StopSignal::Quit => libc::SIGQUIT,
        StopSignal::Hup => libc::SIGHUP,
        StopSignal::Usr1 => libc::SIGUSR1,
        StopSignal::Usr2 => libc::SIGUSR2,
    }
}

/// Sends `signal` to the process group led by `pgid`. A group that is already gone is not an error.
pub fn signal_group(pgid: u32, signal: libc::c_int) {
    let Ok(pgid) = libc::pid_t::try_from(pgid) else {
        return;
    };
    if pgid <= 1 {
        // kill(0) and kill(-1) would signal hale's own group or every process: never.
        return;
    }
    // SAFETY: kill has no memory-safety preconditions.
    unsafe {
        libc::kill(-pgid, signal);
    }
}

/// The start time of process `pid` in clock ticks since boot: field 22 of `/proc/<pid>/stat`. None when
/// the process is gone or on systems without `/proc`.
pub fn proc_start_ticks(pid: u32) -> Option<u64> {
    crate::process::start_ticks(pid)
}

/// Field 22 of a `/proc/<pid>/stat` line.
pub fn parse_start_ticks(stat: &str) -> Option<u64> {
    crate::process::parse_start_ticks(stat)
}

/// Reads one line of at most `max` bytes into `line` (without its `\n`), dropping the rest of a longer
/// line. Returns None at the end of the stream, else whether the line was cut.
pub async fn read_capped_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    line: &mut Vec<u8>,
    max: usize,
) -> io::Result<Option<bool>> {
    line.clear();
    let mut cut = false;
    let mut read_any = false;
    loop {
        let buf = reader.fill_buf().await?;
        if buf.is_empty() {
            return Ok(read_any.then_some(cut));
        }
        read_any = true;
        let newline = buf.iter().position(|&b| b == b'\n');
        let chunk = &buf[..newline.unwrap_or(buf.len())];
        let room = max.saturating_sub(line.len());
        if chunk.len() > room {
            cut = true;
        }
        line.extend_from_slice(&chunk[..chunk.len().min(room)]);
        let used = newline.map_or(buf.len(), |i| i + 1);
        reader.consume(used);
        if newline.is_some() {
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            return Ok(Some(cut));
        }
    }
}

/// Reports the child's suppressed lines once a period while its output is open.
async fn report_suppressed(budget: Arc<SharedBudget>) {
    let mut ticker = tokio::time::interval(SUPPRESSED_REPORT_EVERY);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        // Only this task left: both streams are closed and `finish` reports the rest (or the child was
        // dropped).
        if Arc::strong_count(&budget) == 1 {
            budget.report(true);
            return;
        }
        budget.report(false);
    }
}

/// Logs a child's output stream line by line until it closes: stdout at INFO, stderr at WARN. Lines past
/// the child's budget are read and dropped (the child never blocks on a full pipe), and counted.
async fn log_output(budget: Arc<SharedBudget>, stream: Stream, output: impl AsyncRead + Unpin) {
    let target = budget.target.clone();
    let mut reader = BufReader::new(output);
    let mut line = Vec::with_capacity(256);
    loop {
        let cut = match read_capped_line(&mut reader, &mut line, MAX_LINE_BYTES).await {
            Ok(Some(cut)) => cut,
            Ok(None) => return,
            Err(e) => {
                tracing::debug!(target = &*target, stream = stream.as_str(), error = %e, "cannot read child output");
                return;
            }
        };
        if !budget.admit() {
            budget.report(false);
            continue;
        }
        let text = String::from_utf8_lossy(&line);
        let suffix = if cut { " [truncated]" } else { "" };
        match stream {
            Stream::Stdout => {
                tracing::info!(
                    target = &*target,
                    stream = stream.as_str(),
                    "{text}{suffix}"
                )
            }
            Stream::Stderr => {
                tracing::warn!(
                    target = &*target,
                    stream = stream.as_str(),
                    "{text}{suffix}"
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_lets_a_burst_through_then_the_rate_and_counts_the_rest_once_a_second() {
        let t0 = Instant::now();
        let mut budget = LogBudget::new(10, 5, t0);
        let logged = (0..100).filter(|_| budget.admit(t0)).count();
        assert_eq!(logged, 5, "the burst");
        assert_eq!(
            budget.report(t0, false),
            None,
            "not within the first second"
        );
        let later = t0 + Duration::from_millis(500);
        let logged = (0..100).filter(|_| budget.admit(later)).count();
        assert_eq!(logged, 5, "half a second at 10 lines/s");
        let second = t0 + Duration::from_secs(1);
        assert_eq!(budget.report(second, false), Some(190));
        assert_eq!(budget.report(second, true), None, "nothing new");
        let logged = (0..100).filter(|_| budget.admit(second)).count();
        assert_eq!(logged, 5);
        assert_eq!(
            budget.report(second + Duration::from_millis(60), true),
            Some(95),
            "at the end, at once"
        );
        let idle = second + Duration::from_secs(60);
        let logged = (0..100).filter(|_| budget.admit(idle)).count();
        assert_eq!(logged, 5, "a long pause refills only up to the burst");
    }

    #[test]
    fn start_ticks_are_field_22_even_when_the_name_holds_spaces_and_parentheses() {
        let stat = "4242 (a (weird) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        assert_eq!(parse_start_ticks(stat), Some(987_654));
        assert_eq!(parse_start_ticks("4242 (short) S 1 2"), None);
        assert_eq!(parse_start_ticks("garbage"), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn our_own_start_ticks_can_be_read() {
        assert!(proc_start_ticks(std::process::id()).is_some());
    }

    #[tokio::test]
    async fn long_lines_are_cut_and_the_rest_of_the_line_is_dropped() {
        let input = format!("short\r\n{}\nnext\nlast without newline", "x".repeat(10));
        let mut reader = input.as_bytes();
        let mut line = Vec::new();
        let mut lines = Vec::new();
        while let Some(cut) = read_capped_line(&mut reader, &mut line, 6).await.unwrap() {
            lines.push((String::from_utf8(line.clone()).unwrap(), cut));
        }
        assert_eq!(
            lines,
            [
                ("short".to_owned(), false),
                ("xxxxxx".to_owned(), true),
                ("next".to_owned(), false),
                ("last w".to_owned(), true),
            ]
        );
    }
}
