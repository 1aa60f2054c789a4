//! A heal's action: run a target's heal command, bounded by its timeout.
//!
//! The command runs in a session (and process group) of its own, from a minimal environment
//! (`supervise::env`). hale waits for the command's process to exit, not for the end of its output: a
//! command that starts a daemon (`sh -c "daemon &"`) has done its job when it exits, although the daemon
//! still holds its stderr. That daemon *is* the healed service: it is left running, also after hale stops,
//! and it is never in hale's own process group, so a signal to hale's group (a Ctrl-C in its terminal)
//! does not reach it. A command still running at its timeout is killed with its whole process group.

// Unsafe code here: setsid in the forked heal command before exec, and killing its process group.
#![allow(unsafe_code)]

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::process::Command;

/// Most bytes of a failed command's output kept in the heal's error.
const OUTPUT_KEPT: usize = 1_024;

/// After a command failed, how long hale waits for the rest of its stderr (a daemon it started may hold
/// the pipe open for good).
const OUTPUT_GRACE: Duration = Duration::from_millis(300);

/// Runs `argv` directly (no shell) with exactly the environment `env`, and waits for it to exit; an error
/// says why it failed in one line.
pub async fn run_command(
    argv: &[String],
    env: &[(String, String)],
    timeout: Duration,
) -> Result<(), String> {
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| "the heal command is empty".to_owned())?;
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    // SAFETY: the closure runs in the forked child before exec and only calls setsid, which is
    // async-signal-safe; it allocates nothing and takes no lock.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    let pid = child.id();
    // Read everything (so neither the command nor a daemon it started blocks on a full pipe), keep the
    // start. The reader lives until the last holder of the pipe closes it, which may be long after the
    // command exited.
    let kept = Arc::new(Mutex::new(Vec::new()));
    let reader = child.stderr.take().map(|mut stderr| {
        let kept = kept.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stderr.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                let mut out = kept.lock().unwrap_or_else(|p| p.into_inner());
                if out.len() < OUTPUT_KEPT {
                    let room = OUTPUT_KEPT - out.len();
                    out.extend_from_slice(&buf[..n.min(room)]);
                }
            }
        })
    });
    let status = match tokio::time::timeout(timeout, child.wait()).await {
        Err(_) => {
            if let Some(pid) = pid.and_then(|p| libc::pid_t::try_from(p).ok()) {
                // The command leads its own group (setsid): the group goes, hale's own never does.
                // SAFETY: kill has no memory-safety preconditions.
                unsafe {
                    libc::kill(-pid, libc::SIGKILL);
                }
            }
            let _ = child.kill().await;
            return Err(format!(
                "{program} did not finish within {timeout:?} and was killed with its process group"
            ));
        }
        Ok(Err(e)) => return Err(format!("cannot wait for {program}: {e}")),
        Ok(Ok(status)) => status,
    };
    if status.success() {
        return Ok(());
    }
    if let Some(reader) = reader {
        let _ = tokio::time::timeout(OUTPUT_GRACE, reader).await;
    }
    let stderr = kept.lock().unwrap_or_else(|p| p.into_inner()).clone();
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

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| (*w).to_owned()).collect()
    }

    #[tokio::test]
    async fn a_command_succeeds_fails_with_its_output_or_times_out() {
        let env = [("PATH".to_owned(), std::env::var("PATH").unwrap_or_default())];
        assert_eq!(
            run_command(&argv(&["true"]), &env, Duration::from_secs(5)).await,
            Ok(())
        );
        let err = run_command(
            &argv(&["sh", "-c", "echo no such unit >&2; exit 5"]),
            &env,
            Duration::from_secs(5),
        )
        .await
        .unwrap_err();
        assert_eq!(err, "sh exited with 5: no such unit");
        let err = run_command(&argv(&["sleep", "5"]), &env, Duration::from_millis(200))
            .await
            .unwrap_err();
        assert!(err.contains("did not finish within"), "{err}");
        let err = run_command(&argv(&["/no/such/program"]), &env, Duration::from_secs(1))
            .await
            .unwrap_err();
        assert!(err.starts_with("cannot run /no/such/program"), "{err}");
    }
}
