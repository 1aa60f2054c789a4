//! What the HTTP benchmarks share: `wrk` run as a real load generator and its report read back, and the
//! benchmarks' settings from the environment. Included by each bench with `#[path]` (a bench is a crate
//! of its own).

use std::time::Duration;

/// A benchmark setting from the environment variable `name`, or `default`.
pub fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One `wrk` measurement.
#[derive(Debug, Clone, Copy)]
pub struct Run {
    pub requests_per_s: f64,
    pub p99: Duration,
    /// Answers that were not 2xx or 3xx, and socket errors (connect, read, write, timeout).
    pub non_2xx: u64,
    pub socket_errors: u64,
}

/// Whether `wrk` can be run; when not, says so on stderr for the benchmark `bench`, with how to install it.
pub fn installed(bench: &str) -> bool {
    match std::process::Command::new("wrk").arg("--version").output() {
        Ok(_) => true,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!(
                "{bench}: `wrk` is not installed; this benchmark needs it as its load generator.\n\
                 Install it with: apt-get install -y wrk"
            );
            false
        }
        Err(e) => {
            eprintln!("{bench}: cannot run wrk: {e}");
            false
        }
    }
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Runs `wrk --latency` against `url` (with a Lua `script` when given) and reads its report.
pub async fn wrk(
    url: &str,
    threads: u64,
    connections: u64,
    seconds: u64,
    script: Option<&std::path::Path>,
) -> Run {
    let mut command = tokio::process::Command::new("wrk");
    command
        .arg(format!("-t{threads}"))
        .arg(format!("-c{connections}"))
        .arg(format!("-d{seconds}s"))
        .arg("--latency");
    if let Some(script) = script {
        command.arg("-s").arg(script);
    }
    let output = command.arg(url).output().await.expect("run wrk");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "wrk failed: {text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    parse_wrk(&text).unwrap_or_else(|| panic!("cannot read wrk's report:\n{text}"))
}

/// Reads `Requests/sec`, the 99% latency, and the error lines of a `wrk --latency` report.
pub fn parse_wrk(text: &str) -> Option<Run> {
    let mut requests_per_s = None;
    let mut p99 = None;
    let mut non_2xx = 0;
    let mut socket_errors = 0;
    for line in text.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("Requests/sec:") {
            requests_per_s = rest.trim().parse().ok();
        } else if let Some(rest) = line.strip_prefix("99%") {
            p99 = parse_duration(rest.trim());
        } else if let Some(rest) = line.strip_prefix("Non-2xx or 3xx responses:") {
            non_2xx = rest.trim().parse().unwrap_or(0);
        } else if let Some(rest) = line.strip_prefix("Socket errors:") {
            socket_errors = rest
                .split(',')
                .filter_map(|part| part.split_whitespace().nth(1)?.parse::<u64>().ok())
                .sum();
        }
    }
    Some(Run {
        requests_per_s: requests_per_s?,
        p99: p99?,
        non_2xx,
        socket_errors,
    })
}

/// wrk's durations: `812.00us`, `1.20ms`, `2.01s`.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let seconds = match unit {
        "us" => number / 1e6,
        "ms" => number / 1e3,
        "s" => number,
        "m" => number * 60.0,
        _ => return None,
    };
    Some(Duration::from_secs_f64(seconds))
}
