//! The hooks that run inside the container's namespaces: `createContainer` (after the mounts,
//! before `pivot_root`, so its path resolves in the runtime's filesystem) and `startContainer`
//! (after `start`, right before the command, its path resolved in the container's root).
//!
//! They run from the container's own child process, which is single-threaded, so it can
//! fork each hook. Hooks that run in the runtime's namespaces (prestart, createRuntime,
//! poststart, poststop) are the caller's business.

use nix::sys::signal::{kill, SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{ForkResult, Pid};
use oci_spec::runtime::Hook;
use std::ffi::CString;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use crate::Error;

/// One hook, decoded ahead of time.
#[derive(Debug, Clone)]
pub(crate) struct HookPlan {
    pub path: CString,
    pub args: Vec<CString>,
    pub env: Vec<CString>,
    pub timeout: Option<Duration>,
}

impl HookPlan {
    pub(crate) fn from_spec(kind: &str, hook: &Hook) -> Result<Self, Error> {
        let c = |s: &str, what: &str| {
            CString::new(s).map_err(|_| {
                Error::InvalidSpec(format!("hooks.{kind}: {what} contains a NUL byte"))
            })
        };
        let path = c(&hook.path().to_string_lossy(), "path")?;
        let mut args = Vec::new();
        for a in hook.args().iter().flatten() {
            args.push(c(a, "an argument")?);
        }
        if args.is_empty() {
            args.push(path.clone());
        }
        let mut env = Vec::new();
        for e in hook.env().iter().flatten() {
            env.push(c(e, "an environment variable")?);
        }
        let timeout = match hook.timeout() {
            Some(t) if t <= 0 => {
                return Err(Error::InvalidSpec(format!(
                    "hooks.{kind}: timeout must be greater than zero, not {t}"
                )))
            }
            Some(t) => Some(Duration::from_secs(t as u64)),
            None => None,
        };
        Ok(HookPlan {
            path,
            args,
            env,
            timeout,
        })
    }
}

/// The OCI state with `status` and `pid` spliced into the caller's `{...}` document.
pub(crate) fn state_json(base: &str, status: &str, pid: i32) -> String {
    let rest = base.trim_start().strip_prefix('{').unwrap_or("}");
    let sep = if rest.trim_start().starts_with('}') {
        ""
    } else {
        ","
    };
    format!("{{\"status\":\"{status}\",\"pid\":{pid}{sep}{rest}")
}

/// Runs `hooks` in order; the first failure is returned as a one-line message.
pub(crate) fn run(kind: &str, hooks: &[HookPlan], state: &str) -> Result<(), String> {
    for h in hooks {
        run_one(h, state).map_err(|e| format!("{kind} hook {}: {e}", h.path.to_string_lossy()))?;
    }
    Ok(())
}

fn run_one(h: &HookPlan, state: &str) -> Result<(), String> {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| format!("pipe: {}", e.desc()))?;
    // SAFETY: the container's child process is single-threaded (see child.rs), so the forked
    // process may do anything until execve.
    match unsafe { nix::unistd::fork() }.map_err(|e| format!("fork: {}", e.desc()))? {
        ForkResult::Child => {
            let _ = nix::unistd::dup2_stdin(&r);
            // The runtime blocks the signals it relays; a hook starts with none blocked.
            let _ = nix::sys::signal::sigprocmask(
                SigmaskHow::SIG_SETMASK,
                Some(&SigSet::empty()),
                None,
            );
            let err = nix::unistd::execve(&h.path, &h.args, &h.env).unwrap_err();
            let msg = format!("exec: {}\n", err.desc());
            let _ = nix::unistd::write(std::io::stderr(), msg.as_bytes());
            // SAFETY: _exit ends the forked process without running the parent's destructors.
            unsafe { libc::_exit(127) }
        }
        ForkResult::Parent { child } => {
            drop(r);
            // A hook that does not read its stdin is fine: EPIPE is ignored (SIGPIPE is too,
            // in Rust binaries). The state is far below a pipe's capacity, so this never
            // blocks past the timeout.
            let _ = write_all(w.as_raw_fd(), state.as_bytes());
            drop(w);
            wait(child, h.timeout)
        }
    }
}

fn write_all(fd: i32, mut buf: &[u8]) -> nix::Result<()> {
    // SAFETY: the descriptor is our pipe's write end, open for the duration of the call.
    let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    while !buf.is_empty() {
        let n = nix::unistd::write(fd, buf)?;
        buf = &buf[n..];
    }
    Ok(())
}

fn wait(child: Pid, timeout: Option<Duration>) -> Result<(), String> {
    let deadline = timeout.map(|t| Instant::now() + t);
    let mut delay = Duration::from_micros(200);
    loop {
        match waitpid(child, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(_, 0)) => return Ok(()),
            Ok(WaitStatus::Exited(_, code)) => return Err(format!("exited with status {code}")),
            Ok(WaitStatus::Signaled(_, sig, _)) => return Err(format!("killed by {sig}")),
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(format!("wait: {}", e.desc())),
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            let _ = kill(child, Signal::SIGKILL);
            let _ = waitpid(child, None);
            return Err(format!(
                "timed out after {} s",
                timeout.unwrap_or_default().as_secs()
            ));
        }
        std::thread::sleep(delay);
        delay = (delay * 2).min(Duration::from_millis(10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_gets_status_and_pid() {
        assert_eq!(
            state_json(r#"{"id":"x"}"#, "creating", 42),
            r#"{"status":"creating","pid":42,"id":"x"}"#
        );
        assert_eq!(
            state_json("{}", "running", 1),
            r#"{"status":"running","pid":1}"#
        );
    }

    #[test]
    fn hooks_run_with_state_and_time_out() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let hook = |script: String, timeout: Option<i64>| {
            let mut b = oci_spec::runtime::HookBuilder::default()
                .path("/bin/sh")
                .args(vec!["sh".to_string(), "-c".to_string(), script])
                .env(vec!["GREETING=hi".to_string()]);
            if let Some(t) = timeout {
                b = b.timeout(t);
            }
            HookPlan::from_spec("test", &b.build().unwrap()).unwrap()
        };
        let ok = hook(
            format!("echo $GREETING $(cat) > {}", out.display()),
            Some(5),
        );
        run("test", &[ok], r#"{"id":"x"}"#).unwrap();
        assert_eq!(
            std::fs::read_to_string(&out).unwrap(),
            "hi {\"id\":\"x\"}\n"
        );
        let fails = hook("exit 3".into(), None);
        let e = run("createContainer", &[fails], "{}").unwrap_err();
        assert_eq!(e, "createContainer hook /bin/sh: exited with status 3");
        let slow = hook("sleep 30".into(), Some(1));
        let e = run("startContainer", &[slow], "{}").unwrap_err();
        assert!(e.ends_with("timed out after 1 s"), "{e}");
        let zero = oci_spec::runtime::HookBuilder::default()
            .path("/bin/true")
            .timeout(0)
            .build()
            .unwrap();
        assert!(HookPlan::from_spec("poststop", &zero).is_err());
    }
}
