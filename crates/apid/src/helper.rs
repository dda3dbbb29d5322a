//! `hako api-helper OP ARGS…`: the service's work that must run in a single-threaded process
//! (it forks, or enters a mount namespace of its own). The service spawns it with the
//! streams of the request as stdin/stdout/stderr and reads its result on fd 3, one JSON line:
//! `{"ok": VALUE}` or `{"status": HTTP_STATUS, "message": "…"}`.
//!
//! Not a user command: its arguments are the service's, and may change with it.

use crate::error::ApiError;
use hako_engine::Engine;
use std::io::Write;
use std::os::fd::FromRawFd;
use std::path::Path;

/// Runs one helper operation; returns the process's exit status.
pub fn main(root: &Path, args: &[String]) -> i32 {
    // SAFETY: fd 3 is the status pipe the service passed (see Backend::helper_command); we
    // own it from here on. Without it (run by hand) writes fail and are ignored.
    let mut status = unsafe { std::fs::File::from_raw_fd(3) };
    // What the work starts (a monitor, a name server) must not hold the status pipe.
    let _ = nix::fcntl::fcntl(
        &status,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    );
    let result = run(root, args);
    let line = match &result {
        Ok(v) => serde_json::json!({ "ok": v }),
        Err(e) => serde_json::json!({ "status": e.status.as_u16(), "message": e.message }),
    };
    let _ = writeln!(status, "{line}");
    i32::from(result.is_err())
}

fn arg<'a>(args: &'a [String], i: usize, what: &str) -> Result<&'a str, ApiError> {
    args.get(i)
        .map(String::as_str)
        .ok_or_else(|| ApiError::internal(format!("api-helper: missing {what}")))
}

fn run(root: &Path, args: &[String]) -> Result<serde_json::Value, ApiError> {
    let op = arg(args, 0, "operation")?;
    let engine = Engine::open(root)?;
    match op {
        // start ID [attach]
        "start" => {
            let id = arg(args, 1, "container")?;
            let attach = args.get(2).is_some_and(|a| a == "attach");
            Ok(engine.start_attaching(id, attach)?.into())
        }
        // restart ID SECONDS
        "restart" => {
            let id = arg(args, 1, "container")?;
            let secs: u64 = arg(args, 2, "timeout")?.parse().unwrap_or(10);
            let id = engine.stop(id, std::time::Duration::from_secs(secs))?;
            Ok(engine.start(&id)?.into())
        }
        other => Err(ApiError::internal(format!(
            "api-helper: unknown operation {other:?}"
        ))),
    }
}
