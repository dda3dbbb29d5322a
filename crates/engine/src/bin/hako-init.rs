//! `hako-init`: the PID 1 that `run --init` puts in front of the container's command.
//!
//! Usage (inside the container): `/dev/init -- CMD [ARGS...]`.
//! - Runs CMD as its only child, in a process group of its own that it makes the terminal's
//!   foreground group, so a ctrl-c typed at a `-t` container reaches CMD once, not twice.
//! - Forwards every signal it is sent (SIGTERM from `stop`, `kill -s`, SIGWINCH, ...) to CMD.
//! - Reaps every process that is reparented to it, so orphans never pile up as zombies.
//! - Exits when CMD exits, with CMD's status (128+N if a signal N killed it). The kernel then
//!   kills whatever is left in the pid namespace.
//!
//! The engine embeds a static build of this file (made by `build.rs` with `+crt-static`) and
//! bind-mounts it read-only: it must run in images with no libc at all, such as busybox. It uses
//! std only and declares the handful of C functions it needs itself, because the static build is
//! made by calling rustc directly, without cargo's dependency graph. The `hako-init` binary that
//! cargo builds from this file (dynamically linked) is only there so fmt, clippy and the unit
//! tests cover the source.

use std::ffi::{c_char, c_int, c_ulong, CStr};
use std::os::unix::process::CommandExt;

/// glibc's `sigset_t` on Linux: 1024 bits.
#[repr(C)]
struct SigSet([c_ulong; SIGSET_WORDS]);

const SIGSET_WORDS: usize = 1024 / (8 * std::mem::size_of::<c_ulong>());

/// glibc's `siginfo_t`: 128 bytes; `si_signo` comes first.
#[repr(C)]
struct SigInfo {
    signo: c_int,
    _rest: [c_int; 31],
}

extern "C" {
    fn sigfillset(set: *mut SigSet) -> c_int;
    fn sigdelset(set: *mut SigSet, sig: c_int) -> c_int;
    fn sigprocmask(how: c_int, set: *const SigSet, old: *mut SigSet) -> c_int;
    fn sigwaitinfo(set: *const SigSet, info: *mut SigInfo) -> c_int;
    fn waitpid(pid: c_int, status: *mut c_int, options: c_int) -> c_int;
    fn kill(pid: c_int, sig: c_int) -> c_int;
    fn setpgid(pid: c_int, pgid: c_int) -> c_int;
    fn getpid() -> c_int;
    fn isatty(fd: c_int) -> c_int;
    fn tcsetpgrp(fd: c_int, pgrp: c_int) -> c_int;
    fn strerror(errnum: c_int) -> *const c_char;
}

// The same numbers on every Linux architecture hako builds for (x86_64 and aarch64 use the
// generic signal numbering).
const SIG_BLOCK: c_int = 0;
const SIG_SETMASK: c_int = 2;
const WNOHANG: c_int = 1;
const SIGCHLD: c_int = 17;
const SIGTTIN: c_int = 21;
const SIGTTOU: c_int = 22;
/// Faults are the kernel's to deliver to us, never something to forward: left unblocked.
const SYNCHRONOUS: [c_int; 7] = [4, 5, 6, 7, 8, 11, 31]; // ILL TRAP ABRT BUS FPE SEGV SYS

/// The command after the optional `--`.
fn command(args: &[String]) -> &[String] {
    match args.first().map(String::as_str) {
        Some("--") => &args[1..],
        _ => args,
    }
}

/// The exit status a shell would report for a `waitpid` status.
fn exit_code(status: c_int) -> c_int {
    if status & 0x7f == 0 {
        (status >> 8) & 0xff
    } else {
        128 + (status & 0x7f)
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cmd = command(&args);
    if cmd.is_empty() {
        eprintln!("hako-init: usage: hako-init -- COMMAND [ARG...]");
        std::process::exit(125);
    }
    let mut set = SigSet([0; SIGSET_WORDS]);
    // SAFETY: `set` is a valid sigset_t-sized buffer; the process is single-threaded.
    unsafe {
        sigfillset(&mut set);
        for s in SYNCHRONOUS {
            sigdelset(&mut set, s);
        }
        sigprocmask(SIG_BLOCK, &set, std::ptr::null_mut());
    }
    let tty = {
        // SAFETY: isatty only inspects the descriptor.
        unsafe { isatty(0) == 1 }
    };
    let mut child = std::process::Command::new(&cmd[0]);
    child.args(&cmd[1..]);
    // SAFETY: the closure only makes async-signal-safe calls (setpgid, getpid, tcsetpgrp,
    // sigprocmask) on memory it owns. SIGTTOU is still blocked while it takes the terminal,
    // which is what lets a process outside the foreground group do that; then CMD gets an
    // empty mask, as it would have had without us (std does not reset it).
    unsafe {
        child.pre_exec(move || {
            setpgid(0, 0);
            if tty {
                tcsetpgrp(0, getpid());
            }
            let empty = SigSet([0; SIGSET_WORDS]);
            sigprocmask(SIG_SETMASK, &empty, std::ptr::null_mut());
            Ok(())
        });
    }
    let pid = match child.spawn() {
        Ok(c) => c.id() as c_int,
        Err(e) => {
            let code = match e.kind() {
                std::io::ErrorKind::NotFound => 127,
                _ => 126,
            };
            let msg = e
                .raw_os_error()
                .map(|n| {
                    // SAFETY: strerror returns a NUL-terminated string for any errno, and we
                    // copy it before any other libc call.
                    unsafe { CStr::from_ptr(strerror(n)) }
                        .to_string_lossy()
                        .into_owned()
                })
                .unwrap_or_else(|| e.to_string());
            eprintln!("hako-init: exec {:?}: {}", cmd[0], msg.to_lowercase());
            std::process::exit(code);
        }
    };
    std::process::exit(supervise(pid, &set));
}

/// Relays signals to `pid` and reaps children until `pid` exits; returns its exit status.
fn supervise(pid: c_int, set: &SigSet) -> c_int {
    let mut info = SigInfo {
        signo: 0,
        _rest: [0; 31],
    };
    loop {
        // SAFETY: `set` and `info` are valid for the call.
        let sig = unsafe { sigwaitinfo(set, &mut info) };
        if sig < 0 {
            continue;
        }
        if sig != SIGCHLD {
            // Job-control signals for the terminal concern CMD's group, not us.
            if sig != SIGTTIN && sig != SIGTTOU {
                // SAFETY: plain kill(2); a vanished child only makes it fail with ESRCH.
                unsafe { kill(pid, sig) };
            }
            continue;
        }
        loop {
            let mut status: c_int = 0;
            // SAFETY: `status` is a valid out-pointer.
            let got = unsafe { waitpid(-1, &mut status, WNOHANG) };
            if got <= 0 {
                break;
            }
            if got == pid {
                return exit_code(status);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_after_double_dash() {
        let a: Vec<String> = ["--", "sh", "-c", "x"].map(String::from).into();
        assert_eq!(command(&a), &a[1..]);
        let b: Vec<String> = ["sh", "--"].map(String::from).into();
        assert_eq!(command(&b), &b[..]);
    }

    #[test]
    fn status_to_exit_code() {
        assert_eq!(exit_code(3 << 8), 3);
        assert_eq!(exit_code(9), 137);
        assert_eq!(exit_code(15 | 0x80), 143);
    }

    #[test]
    fn layouts_match_libc() {
        assert_eq!(std::mem::size_of::<SigSet>(), 128);
        assert_eq!(std::mem::size_of::<SigInfo>(), 128);
    }
}
