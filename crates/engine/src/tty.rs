//! Pseudo-terminals for `run -t` and `exec -t`: the container gets the slave as its controlling
//! terminal; hako puts its own terminal in raw mode and copies bytes both ways.

use crate::{Error, Result};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

/// The two ends of the socket over which the container sends the master of the pty it
/// allocates from its own devpts (so the slave is a `/dev/pts/N` that exists in the container).
pub(crate) struct Console {
    /// Ours: the master arrives here.
    ours: OwnedFd,
    /// The container's: `SpawnOptions::console_socket`.
    pub(crate) theirs: OwnedFd,
}

fn our_size() -> Option<nix::pty::Winsize> {
    let mut ws = nix::pty::Winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes a winsize into the struct we pass.
    let r = unsafe { libc::ioctl(libc::STDIN_FILENO, libc::TIOCGWINSZ, &mut ws) };
    (r == 0 && ws.ws_row > 0).then_some(ws)
}

/// A socket pair for the container's terminal, and `spec`'s consoleSize set to our terminal's
/// size (the container applies it before its command runs).
pub(crate) fn open(spec: &mut oci_spec::runtime::Spec) -> Result<Console> {
    use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
    if let (Some(ws), Some(mut process)) = (our_size(), spec.process().clone()) {
        let size = oci_spec::runtime::BoxBuilder::default()
            .height(ws.ws_row)
            .width(ws.ws_col)
            .build()
            .map_err(|e| Error::Invalid(format!("console size: {e}")))?;
        process.set_console_size(Some(size));
        process.set_terminal(Some(true));
        spec.set_process(Some(process));
    }
    let (ours, theirs) = socketpair(
        AddressFamily::Unix,
        SockType::Stream,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(|e| Error::io("create the console socket", e.into()))?;
    Ok(Console { ours, theirs })
}

impl Console {
    /// After a successful spawn: the pty master the container sent.
    pub(crate) fn master(self) -> Result<OwnedFd> {
        // Without our copy of their end, a container that sent nothing reads as EOF.
        drop(self.theirs);
        Ok(hako_runtime::receive_console(self.ours.as_fd())?.0)
    }
}

/// Our terminal in raw mode until dropped (only when stdin is a terminal).
pub(crate) struct RawMode {
    saved: Option<nix::sys::termios::Termios>,
}

impl RawMode {
    pub(crate) fn enter() -> RawMode {
        let stdin = std::io::stdin();
        let Ok(saved) = nix::sys::termios::tcgetattr(stdin.as_fd()) else {
            return RawMode { saved: None };
        };
        let mut raw = saved.clone();
        nix::sys::termios::cfmakeraw(&mut raw);
        let _ =
            nix::sys::termios::tcsetattr(stdin.as_fd(), nix::sys::termios::SetArg::TCSANOW, &raw);
        RawMode { saved: Some(saved) }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(t) = &self.saved {
            let _ = nix::sys::termios::tcsetattr(
                std::io::stdin().as_fd(),
                nix::sys::termios::SetArg::TCSANOW,
                t,
            );
        }
    }
}

/// Copies the container's terminal output to our stdout and (with `input`) our stdin to it,
/// and follows our terminal's size, until the container closes its side. Runs on its own
/// thread: the container already exists, so no clone happens while it runs.
pub(crate) fn relay(master: OwnedFd, input: bool) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mfd = master.as_raw_fd();
        let mut size = our_size();
        let mut buf = [0u8; 8192];
        let mut stdin_open = input;
        loop {
            let mut fds = [
                libc::pollfd {
                    fd: mfd,
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: if stdin_open { libc::STDIN_FILENO } else { -1 },
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            // SAFETY: `fds` is a valid array of two pollfds for the duration of the call.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, 200) };
            if n < 0 {
                if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return;
            }
            // Resizing the pty makes the kernel send SIGWINCH to the container's foreground job.
            let now = our_size();
            if now.is_some()
                && (now.map(|w| (w.ws_row, w.ws_col)) != size.map(|w| (w.ws_row, w.ws_col)))
            {
                if let Some(w) = &now {
                    // SAFETY: TIOCSWINSZ reads the winsize we pass.
                    unsafe { libc::ioctl(mfd, libc::TIOCSWINSZ, w) };
                }
                size = now;
            }
            if fds[0].revents != 0 {
                // SAFETY: reading into our own buffer from the master we own.
                let r = unsafe { libc::read(mfd, buf.as_mut_ptr().cast(), buf.len()) };
                if r <= 0 {
                    // EIO once every slave descriptor is closed: the container is gone.
                    return;
                }
                write_all(libc::STDOUT_FILENO, &buf[..r as usize]);
            }
            if stdin_open && fds[1].revents != 0 {
                // SAFETY: reading into our own buffer from our stdin.
                let r =
                    unsafe { libc::read(libc::STDIN_FILENO, buf.as_mut_ptr().cast(), buf.len()) };
                if r <= 0 {
                    stdin_open = false;
                    // End of input: an EOF character tells the program on the terminal.
                    write_all(mfd, &[4]);
                    continue;
                }
                write_all(mfd, &buf[..r as usize]);
            }
        }
    })
}

fn write_all(fd: i32, mut data: &[u8]) {
    while !data.is_empty() {
        // SAFETY: writing from our own buffer to a descriptor we hold.
        let w = unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) };
        if w <= 0 {
            if w < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return;
        }
        data = &data[w as usize..];
    }
}
