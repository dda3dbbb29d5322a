//! `hako-health ROOT ID`: the health helper of one detached container with a healthcheck,
//! started by its monitor (and killed with it). It only sleeps: every step (waiting for the
//! start, each check and its record) is `hako __health ROOT ID first|probe`, which prints the
//! container's pid and the wait before the next check, or nothing once the container's run is
//! over. The container's end wakes it at once (a pidfd), since the monitor reaps every child
//! before it records the exit. Only std and libc, so a sleeping helper costs about as little
//! memory as the monitor. Not run by hand.

use std::process::{Command, ExitCode, Stdio};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let [_, root, id] = &args[..] else {
        eprintln!("hako-health is started by hako-monitor; it is not run by hand");
        return ExitCode::from(2);
    };
    let hako = match std::env::current_exe() {
        Ok(e) => e.with_file_name("hako"),
        Err(_) => return ExitCode::FAILURE,
    };
    let step = |what: &str| -> Option<(i32, u64)> {
        let out = Command::new(&hako)
            .args(["__health", root, id, what])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .ok()?;
        let text = String::from_utf8(out.stdout).ok()?;
        let (pid, ms) = text.trim().split_once(' ')?;
        Some((pid.parse().ok()?, ms.parse().ok()?))
    };
    let Some((pid, mut wait_ms)) = step("first") else {
        return ExitCode::SUCCESS;
    };
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } as i32;
    if pidfd < 0 {
        return ExitCode::SUCCESS;
    }
    loop {
        let mut p = libc::pollfd {
            fd: pidfd,
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = i32::try_from(wait_ms).unwrap_or(i32::MAX);
        // SAFETY: one valid pollfd for the duration of the call.
        let r = unsafe { libc::poll(&mut p, 1, ms) };
        if r > 0 || (r < 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR)) {
            return ExitCode::SUCCESS;
        }
        if r < 0 {
            continue;
        }
        match step("probe") {
            Some((_, next)) => wait_ms = next,
            None => return ExitCode::SUCCESS,
        }
    }
}
