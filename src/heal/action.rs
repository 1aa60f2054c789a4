//! A heal's action: run a target's heal command, bounded by its timeout.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::process::Command;

/// Most bytes of a failed command's output kept in the heal's error.
const OUTPUT_KEPT: usize = 1_024;

/// Runs `argv` directly (no shell) and waits for it; an error says why it failed in one line.
pub async fn run_command(argv: &[String], timeout: Duration) -> Result<(), String> {
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| "the heal command is empty".to_owned())?;
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    let mut stderr = child.stderr.take();
    let read_stderr = async move {
        let mut out = Vec::new();
        if let Some(stderr) = stderr.as_mut() {
            // Read everything (so the command never blocks on a full pipe), keep the start.
            let mut buf = [0u8; 4096];
            while let Ok(n) = stderr.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                if out.len() < OUTPUT_KEPT {
                    out.extend_from_slice(&buf[..n.min(OUTPUT_KEPT - out.len())]);
                }
            }
        }
        out
    };
    let waited = tokio::time::timeout(timeout, async {
        let (status, stderr) = tokio::join!(child.wait(), read_stderr);
        (status, stderr)
    })
    .await;
    match waited {
        Err(_) => {
            // kill_on_drop also covers this, but say it here so the error is exact.
            let _ = child.kill().await;
            Err(format!(
                "{program} did not finish within {timeout:?} and was killed"
            ))
        }
        Ok((Err(e), _)) => Err(format!("cannot wait for {program}: {e}")),
        Ok((Ok(status), _)) if status.success() => Ok(()),
        Ok((Ok(status), stderr)) => {
            let said = String::from_utf8_lossy(&stderr);
            let said = said.split_whitespace().collect::<Vec<_>>().join(" ");
            let code = status.code().map_or_else(
                || "was killed by a signal".to_owned(),
                |c| format!("exited with {c}"),
            );
            if said.is_empty() {
                Err(format!("{program} {code}"))
            } else {
                Err(format!("{program} {code}: {said}"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| (*w).to_owned()).collect()
    }

    #[tokio::test]
    async fn a_command_succeeds_fails_with_its_output_or_times_out() {
        assert_eq!(
            run_command(&argv(&["true"]), Duration::from_secs(5)).await,
            Ok(())
        );
        let err = run_command(
            &argv(&["sh", "-c", "echo no such unit >&2; exit 5"]),
            Duration::from_secs(5),
        )
        .await
        .unwrap_err();
        assert_eq!(err, "sh exited with 5: no such unit");
        let err = run_command(&argv(&["sleep", "5"]), Duration::from_millis(200))
            .await
            .unwrap_err();
        assert!(err.contains("did not finish within"), "{err}");
        let err = run_command(&argv(&["/no/such/program"]), Duration::from_secs(1))
            .await
            .unwrap_err();
        assert!(err.starts_with("cannot run /no/such/program"), "{err}");
    }
}
