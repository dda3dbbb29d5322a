//! Answering a seccomp user-notification listener with ENOSYS: what the missing-syscall agents
//! (a foreground `run`'s or `exec`'s thread, a detached container's monitor) do with each
//! notification. Here once, since the monitor links only this crate.

use std::os::fd::RawFd;

/// Receives one notification from `listener` and answers it with ENOSYS, so the caller sees
/// what it would have seen without the agent; returns the syscall's number. The errors are the
/// ioctl's: ENOENT when the call was withdrawn (its caller was killed) before it was received,
/// which needs no answer; any other ends the listener for the caller.
pub fn answer_enosys(listener: RawFd) -> std::io::Result<i32> {
    // SAFETY: a zeroed seccomp_notif is what SECCOMP_IOCTL_NOTIF_RECV requires.
    let mut req: libc::seccomp_notif = unsafe { std::mem::zeroed() };
    // SAFETY: the ioctl fills `req`, a seccomp_notif we own.
    let r = unsafe {
        libc::ioctl(
            listener,
            libc::SECCOMP_IOCTL_NOTIF_RECV,
            &mut req as *mut libc::seccomp_notif,
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut resp = libc::seccomp_notif_resp {
        id: req.id,
        val: 0,
        error: -libc::ENOSYS,
        flags: 0,
    };
    // SAFETY: the ioctl reads `resp`, a seccomp_notif_resp we own. A caller that died in the
    // meantime (ENOENT) needs no answer.
    unsafe {
        libc::ioctl(
            listener,
            libc::SECCOMP_IOCTL_NOTIF_SEND,
            &mut resp as *mut libc::seccomp_notif_resp,
        )
    };
    Ok(req.data.nr)
}
