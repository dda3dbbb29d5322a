//! OCI hooks: programs run by the runtime at fixed points of a container's life, with the
//! container's state JSON on their stdin.

use anyhow::{bail, Context, Result};
use oci_spec::runtime::Hook;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs `hooks` in order; the first failure stops the sequence.
pub fn run(kind: &str, hooks: Option<&Vec<Hook>>, state_json: &[u8]) -> Result<()> {
    for hook in hooks.into_iter().flatten() {
        run_one(hook, state_json)
            .with_context(|| format!("{kind} hook {}", hook.path().display()))?;
    }
    Ok(())
}

/// Like [`run`] but for hooks whose failure must not stop anything (poststart, poststop):
/// every hook runs and failures come back as warnings.
pub fn run_all(kind: &str, hooks: Option<&Vec<Hook>>, state_json: &[u8]) -> Vec<String> {
    let mut warnings = Vec::new();
    for hook in hooks.into_iter().flatten() {
        if let Err(e) = run_one(hook, state_json) {
            warnings.push(format!("{kind} hook {}: {e:#}", hook.path().display()));
        }
    }
    warnings
}

fn run_one(hook: &Hook, state_json: &[u8]) -> Result<()> {
    let mut cmd = Command::new(hook.path());
    if let Some(args) = hook.args() {
        // args[0] is argv[0], as in execve.
        if let Some((first, rest)) = args.split_first() {
            std::os::unix::process::CommandExt::arg0(&mut cmd, first);
            cmd.args(rest);
        }
    }
    cmd.env_clear();
    for e in hook.env().iter().flatten() {
        if let Some((k, v)) = e.split_once('=') {
            cmd.env(k, v);
        }
    }
    cmd.stdin(Stdio::piped());
    let mut child = cmd.spawn().context("start")?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that does not read its stdin is fine.
        let _ = stdin.write_all(state_json);
    }
    let deadline = hook
        .timeout()
        .map(|t| Instant::now() + Duration::from_secs(t.max(1) as u64));
    loop {
        if let Some(status) = child.try_wait().context("wait")? {
            if !status.success() {
                bail!("failed: {status}");
            }
            return Ok(());
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            let _ = child.kill();
            let _ = child.wait();
            bail!("timed out after {} s", hook.timeout().unwrap_or_default());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}
