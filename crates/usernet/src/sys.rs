//! The few system calls std does not wrap.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use crate::{Error, Result};

pub(crate) fn last_os_error(what: &str) -> Error {
    Error::io(what, std::io::Error::last_os_error())
}

/// A pipe whose ends are close-on-exec: (read, write).
pub(crate) fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| Error::io("create a pipe", e.into()))
}

/// An anonymous file, for a child's stderr or a pid file that must leave nothing on disk.
pub(crate) fn memfd(name: &str) -> Result<File> {
    nix::sys::memfd::memfd_create(name, nix::sys::memfd::MFdFlags::MFD_CLOEXEC)
        .map(File::from)
        .map_err(|e| Error::io("create a memfd", e.into()))
}

/// What a child wrote into a memfd, its last line first-class: for one-line errors.
pub(crate) fn last_line(f: &File) -> String {
    let mut f = f;
    let mut text = String::new();
    let _ = f.seek(SeekFrom::Start(0));
    let _ = f.read_to_string(&mut text);
    text.lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .unwrap_or("")
        .to_string()
}

pub(crate) fn pidfd_open(pid: i32) -> std::io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this fd to us and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Waits until one of `fds` is readable (or hung up); returns its index, or `None` after
/// `timeout`.
pub(crate) fn wait_readable(
    fds: &[BorrowedFd<'_>],
    timeout: Option<Duration>,
) -> Result<Option<usize>> {
    let mut pfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|fd| libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let ms = timeout.map_or(-1, |t| t.as_millis().min(i32::MAX as u128) as i32);
    loop {
        // SAFETY: pfds is a valid array of pollfd of the length given.
        let n = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, ms) };
        if n < 0 {
            if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(last_os_error("poll"));
        }
        return Ok(pfds.iter().position(|p| p.revents != 0));
    }
}

/// Lets a child inherit `fd` across exec: for use between fork and exec only.
pub(crate) fn keep_on_exec(fd: RawFd) -> std::io::Result<()> {
    // SAFETY: fcntl on an fd number; async-signal-safe, as a pre_exec hook needs.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, 0) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

pub(crate) fn raw<F: AsFd>(f: &F) -> RawFd {
    f.as_fd().as_raw_fd()
}
