//! A guard process for a stack that has no `--exit-fd` of its own (pasta): it kills the stack
//! when the owner's end of a pipe closes, however the owner ended.

use std::os::fd::{AsRawFd, OwnedFd};

use crate::sys::last_os_error;
use crate::Result;

/// Forks the guard: it holds `exit_r` (whose write end only the owner has) and `victim` (a
/// pidfd of the stack), sends SIGTERM (then SIGKILL after 2 s) to the victim when `exit_r`
/// reads end-of-file, and exits when the victim does. Returns the guard's pid, which the
/// owner reaps.
pub(crate) fn spawn(exit_r: &OwnedFd, victim: &OwnedFd) -> Result<i32> {
    let (a, b) = (exit_r.as_raw_fd(), victim.as_raw_fd());
    // SAFETY: fork; the child below calls only async-signal-safe functions (open, dup2,
    // close_range, setsid, sigaction through signal, poll, pidfd_send_signal, _exit), as a
    // child of a possibly multi-threaded process must.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(last_os_error("fork the stack's guard"));
    }
    if pid > 0 {
        return Ok(pid);
    }
    // SAFETY: in the forked child; see above. Nothing here returns into Rust code.
    unsafe {
        guard_child(a, b);
    }
}

/// # Safety
/// Only in a freshly forked child.
unsafe fn guard_child(exit_r: i32, victim: i32) -> ! {
    // SAFETY: all calls below are async-signal-safe system calls on fd numbers we own.
    unsafe {
        // Its own session: a signal to the owner's process group (^C) must not take the guard
        // away while the stack lives on in a session of its own.
        libc::setsid();
        for sig in [
            libc::SIGINT,
            libc::SIGHUP,
            libc::SIGQUIT,
            libc::SIGTERM,
            libc::SIGPIPE,
        ] {
            libc::signal(sig, libc::SIG_IGN);
        }
        // Whoever reads the owner's stdout/stderr to the end must not wait for the guard.
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        for fd in 0..3 {
            libc::dup2(null, fd);
        }
        // Keep exit_r and victim only (as 3 and 4): every other inherited fd (listeners, the
        // owner's own pipes) would outlive the owner in the guard.
        let a = libc::fcntl(exit_r, libc::F_DUPFD_CLOEXEC, 10);
        let b = libc::fcntl(victim, libc::F_DUPFD_CLOEXEC, 10);
        libc::dup2(a, 3);
        libc::dup2(b, 4);
        libc::syscall(libc::SYS_close_range, 5u32, u32::MAX, 0u32);
        let mut fds = [
            libc::pollfd {
                fd: 3,
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: 4,
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        loop {
            let n = libc::poll(fds.as_mut_ptr(), 2, -1);
            if n < 0 {
                continue;
            }
            if fds[1].revents != 0 {
                libc::_exit(0);
            }
            if fds[0].revents != 0 {
                break;
            }
        }
        libc::syscall(libc::SYS_pidfd_send_signal, 4, libc::SIGTERM, 0usize, 0u32);
        let mut v = [libc::pollfd {
            fd: 4,
            events: libc::POLLIN,
            revents: 0,
        }];
        if libc::poll(v.as_mut_ptr(), 1, 2000) <= 0 {
            libc::syscall(libc::SYS_pidfd_send_signal, 4, libc::SIGKILL, 0usize, 0u32);
        }
        libc::_exit(0);
    }
}
