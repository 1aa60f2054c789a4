//! Prometheus for the tests: samples of a `/metrics` answer, read by hale's own parser
//! (`hale::ops::prom_text`, the one `hale verify` uses), and `promtool`/`amtool` run as tools.

use hale::ops::prom_text;
use tokio::process::Command;

pub use hale::ops::prom_text::Sample;

/// Every sample of a Prometheus text exposition; an exposition hale's parser refuses fails the test.
pub fn parse_samples(text: &str) -> Vec<Sample> {
    parse(text).samples
}

fn parse(text: &str) -> prom_text::Exposition {
    prom_text::parse(text).unwrap_or_else(|e| panic!("unparsable exposition ({e}): {text}"))
}

/// The value of the sample with this name and exactly these labels, if present.
pub fn sample_value(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    parse(text).value(name, labels)
}

/// The sum of the samples with this name whose labels include these (other labels, such as the `outcome` of
/// `health_check_total`, are summed over); `None` when no sample matches.
pub fn sample_sum(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    parse(text).sum(name, labels)
}

/// `promtool`, or `$PROMTOOL` when set (scripts/test installs promtool).
pub fn promtool() -> String {
    std::env::var("PROMTOOL").unwrap_or_else(|_| "promtool".to_owned())
}

/// Runs a tool (promtool, amtool, ...) to completion and returns whether it succeeded and its stdout then
/// stderr; fails (never skips) when it is missing, naming the Debian package. `$PROMTOOL`, when set, is
/// run instead of promtool.
pub async fn run_tool(program: &str, args: &[&str], package: &str) -> (bool, String) {
    let program = match program {
        "promtool" => promtool(),
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
