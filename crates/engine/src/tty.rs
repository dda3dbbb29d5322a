//! Pseudo-terminals for `run -t` and `exec -t`: the container gets the slave as its controlling
//! terminal; hako puts its own terminal in raw mode and copies bytes both ways.

use crate::{Error, Result};
use hako_base::jsonlog::{JsonLog, Stream};
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
/// and follows our terminal's size, until the container closes its side. A foreground
/// `run -t` logs the output into `log` (`exec` gives [`JsonLog::discard`]) and shows it only
/// when `shown` (`run -a`). Runs on its own thread: the container already exists, so no clone
/// happens while it runs.
pub(crate) fn relay(
    master: OwnedFd,
    input: bool,
    mut log: JsonLog,
    shown: bool,
) -> std::thread::JoinHandle<()> {
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
                    log.end(Stream::Stdout);
                    return;
                }
                // The log first: a write to a reader that has gone ends this process.
                log.output(Stream::Stdout, &buf[..r as usize]);
                if shown {
                    write_all(libc::STDOUT_FILENO, &buf[..r as usize]);
                }
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

/// Docker's `--detach-keys` syntax ("ctrl-p,ctrl-q", "ctrl-a,d"): the bytes typed.
pub fn parse_detach_keys(spec: &str) -> Result<Vec<u8>> {
    let bad = || Error::Invalid(format!("Invalid detach keys ({spec}) provided"));
    let mut keys = Vec::new();
    for k in spec.split(',') {
        let b = match k.strip_prefix("ctrl-") {
            Some(c) if c.len() == 1 => match c.as_bytes()[0] {
                c @ b'a'..=b'z' => c - b'a' + 1,
                b'@' => 0,
                c @ b'['..=b'_' => c - b'[' + 27,
                _ => return Err(bad()),
            },
            None if k.len() == 1 => k.as_bytes()[0],
            _ => return Err(bad()),
        };
        keys.push(b);
    }
    if keys.is_empty() {
        return Err(bad());
    }
    Ok(keys)
}

/// How an attach to a `-t` container ended.
#[derive(Debug, PartialEq, Eq)]
pub enum AttachEnd {
    /// The detach keys were typed; the container runs on.
    Detached,
    /// The container closed its terminal (its status is not known yet).
    Closed,
    /// The container exited with this status while we were attached.
    Exited(i32),
}

/// Recognises the detach sequence in typed input. Bytes that begin the sequence are held back
/// until it is complete (detach) or broken (they are passed on), as docker does.
struct DetachMatcher {
    keys: Vec<u8>,
    held: usize,
}

impl DetachMatcher {
    /// Returns the bytes to pass on, and whether the sequence completed.
    fn feed(&mut self, input: &[u8]) -> (Vec<u8>, bool) {
        let mut out = Vec::with_capacity(input.len());
        for &b in input {
            if b == self.keys[self.held] {
                self.held += 1;
                if self.held == self.keys.len() {
                    return (out, true);
                }
            } else {
                out.extend_from_slice(&self.keys[..self.held]);
                self.held = 0;
                if b == self.keys[0] {
                    self.held = 1;
                    if self.keys.len() == 1 {
                        return (out, true);
                    }
                } else {
                    out.push(b);
                }
            }
        }
        (out, false)
    }
}

/// The listening attach socket of a `-t` container, `attach.sock` beside its rootfs.
///
/// It is bound through a descriptor of the directory (`/proc/self/fd/N/attach.sock`), because
/// a state root's path can be longer than the 108 bytes a socket address holds; and with a
/// umask that leaves it to root alone.
pub(crate) fn attach_listener(spec: &oci_spec::runtime::Spec) -> Result<OwnedFd> {
    use nix::sys::socket::{bind, listen, socket, AddressFamily, Backlog, SockFlag, SockType};
    let dir = spec
        .root()
        .as_ref()
        .and_then(|r| r.path().parent().map(std::path::Path::to_path_buf))
        .ok_or_else(|| Error::Invalid("container without a root directory".into()))?;
    let dirfd =
        std::fs::File::open(&dir).map_err(|e| Error::io(format!("open {}", dir.display()), e))?;
    let fd = socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(|e| Error::io("create the attach socket", e.into()))?;
    let path = format!("/proc/self/fd/{}/attach.sock", dirfd.as_raw_fd());
    let _ = std::fs::remove_file(&path);
    let addr = nix::sys::socket::UnixAddr::new(path.as_str())
        .map_err(|e| Error::io("attach socket path", e.into()))?;
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o177));
    let bound = bind(fd.as_raw_fd(), &addr);
    nix::sys::stat::umask(old);
    bound.map_err(|e| Error::io("bind the attach socket", e.into()))?;
    listen(&fd, Backlog::new(8).expect("small backlog"))
        .map_err(|e| Error::io("listen on the attach socket", e.into()))?;
    Ok(fd)
}

/// What an attach through the monitor's socket carries.
pub(crate) struct Streams {
    /// The container has a terminal: raw mode, window sizes, detach keys.
    tty: bool,
    /// Our stdin is passed on.
    stdin: bool,
    /// `-i` without `-t`, StdinOnce: the end of our input closes the container's stdin, and
    /// we stay for its output and exit. Without it we leave at the end of our input, and the
    /// container's stdin stays open for the next attach, as Docker does.
    once: bool,
}

impl crate::Engine {
    /// [`Engine::attach_monitor`](crate::Engine::attach_monitor) with our stdin passed on, as
    /// `run -it` attaches.
    pub fn attach_terminal(
        &self,
        id: &str,
        detach_keys: &[u8],
        sig_proxy: bool,
    ) -> Result<Option<AttachEnd>> {
        self.attach_monitor(id, detach_keys, sig_proxy, true)
    }

    /// `attach` to a running container whose monitor takes attaches: one with a terminal
    /// (`-t`), or an open stdin (`-i`). `None` if it has none (its output is then only in the
    /// log). With `stdin` (not `--no-stdin`, or `start -a` without `-i`) our input is passed
    /// on.
    ///
    /// SIGINT, SIGTERM, SIGHUP and SIGQUIT are blocked meanwhile, and those that arrive are
    /// sent to the container when `sig_proxy`.
    pub fn attach_monitor(
        &self,
        id: &str,
        detach_keys: &[u8],
        sig_proxy: bool,
        stdin: bool,
    ) -> Result<Option<AttachEnd>> {
        let sock = self.container_dir(id).join("attach.sock");
        if !sock.exists() {
            return Ok(None);
        }
        let row: Option<(Option<i32>, Option<i64>, String)> = self
            .store
            .conn()
            .query_row(
                "SELECT owner_pid, owner_start, config FROM containers WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .ok();
        let owner = row.as_ref().map(|(pid, start, _)| (*pid, *start));
        let opts = row
            .and_then(|(_, _, config)| crate::ContainerConfig::from_stored(&config).ok())
            .unwrap_or_default();
        let streams = Streams {
            tty: opts.tty,
            stdin,
            once: opts.stdin_once,
        };
        let old = crate::block_signals_for_attach();
        let end = attach_socket(&sock, detach_keys, &streams, &mut |sig| {
            if sig_proxy {
                let _ = self.kill(id, sig);
            }
        });
        crate::restore_signal_mask(&old);
        let end = end?;
        // The exit is not the end: the monitor still frees the cgroup and network and applies
        // --rm (`hako-finish`, exec'd under its pid). Like docker's `run --rm`, return once
        // that is done, so the next command finds nothing left over. Bounded, because a
        // restart policy starts the container again.
        if let (AttachEnd::Exited(_) | AttachEnd::Closed, Some((Some(pid), start))) = (&end, owner)
        {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            let reap = || {
                // After `run -it` the monitor is our own child: reap it, or it would linger
                // as a zombie that still looks alive. For anyone else's, this is ECHILD.
                let _ = nix::sys::wait::waitpid(
                    nix::unistd::Pid::from_raw(pid),
                    Some(nix::sys::wait::WaitPidFlag::WNOHANG),
                );
            };
            // Woken by the monitor's exit (a pidfd turns readable when the process ends,
            // before it is reaped), not by a timer.
            while {
                reap();
                crate::alive(Some(pid), start)
            } {
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                if left.is_zero() {
                    break;
                }
                match crate::wait::pidfd((Some(pid), start)) {
                    Some(fd) => {
                        let mut p = libc::pollfd {
                            fd: std::os::fd::AsRawFd::as_raw_fd(&fd),
                            events: libc::POLLIN,
                            revents: 0,
                        };
                        // SAFETY: one valid pollfd for the duration of the call.
                        unsafe { libc::poll(&mut p, 1, left.as_millis().max(1) as i32) };
                    }
                    // It ended meanwhile (or no pidfd could be had): look again shortly.
                    None => std::thread::sleep(std::time::Duration::from_millis(5)),
                }
            }
        }
        Ok(Some(end))
    }
}

/// `attach` through the monitor's socket (see hako-monitor's `pump_tty` and `pump_stdin`).
/// With a terminal: ours in raw mode, its size followed, typed input passed on until
/// `detach_keys`. Without: the container's stdout and stderr to ours, our input passed on
/// until its end.
pub(crate) fn attach_socket(
    sock: &std::path::Path,
    detach_keys: &[u8],
    streams: &Streams,
    proxy: &mut dyn FnMut(i32),
) -> Result<AttachEnd> {
    use nix::sys::socket::{connect, socket, AddressFamily, SockFlag, SockType, UnixAddr};
    let fd = socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(|e| Error::io("create the attach socket", e.into()))?;
    // Through a descriptor of the directory, so the address stays short whatever the path.
    let dir = sock.parent().unwrap_or(std::path::Path::new("/"));
    let dirfd =
        std::fs::File::open(dir).map_err(|e| Error::io(format!("open {}", dir.display()), e))?;
    let name = sock.file_name().unwrap_or_default().to_string_lossy();
    let short = format!("/proc/self/fd/{}/{name}", dirfd.as_raw_fd());
    let addr =
        UnixAddr::new(short.as_str()).map_err(|e| Error::io("attach socket path", e.into()))?;
    connect(fd.as_raw_fd(), &addr)
        .map_err(|e| Error::io(format!("connect to {}", sock.display()), e.into()))?;
    // Messages to the monitor are sent without waiting: the monitor stops reading us while
    // the container does not read its stdin, and we must go on showing its output then. The
    // one that did not fit waits here, and our stdin is not read meanwhile.
    let mut unsent: Option<Vec<u8>> = None;
    let try_send = |msg: &[u8]| -> std::io::Result<bool> {
        // SAFETY: sending our own buffer on a socket we own.
        let r = unsafe {
            libc::send(
                fd.as_raw_fd(),
                msg.as_ptr().cast(),
                msg.len(),
                libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
            )
        };
        if r >= 0 {
            return Ok(true);
        }
        let e = std::io::Error::last_os_error();
        match e.kind() {
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted => Ok(false),
            _ => Err(e),
        }
    };
    let size_msg = |w: &nix::pty::Winsize| {
        let mut m = vec![b'w'];
        m.extend_from_slice(&w.ws_row.to_le_bytes());
        m.extend_from_slice(&w.ws_col.to_le_bytes());
        m
    };
    let proxied = crate::stop_signals();
    let _raw = (streams.tty && streams.stdin).then(RawMode::enter);
    let mut size = if streams.tty { our_size() } else { None };
    if let Some(w) = &size {
        // A fresh socket has room for one small message.
        let _ = try_send(&size_msg(w));
    }
    let mut matcher = DetachMatcher {
        keys: detach_keys.to_vec(),
        held: 0,
    };
    let mut stdin_open = streams.stdin;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let mut fds = [
            libc::pollfd {
                fd: fd.as_raw_fd(),
                events: libc::POLLIN | if unsent.is_some() { libc::POLLOUT } else { 0 },
                revents: 0,
            },
            libc::pollfd {
                fd: if stdin_open && unsent.is_none() {
                    libc::STDIN_FILENO
                } else {
                    -1
                },
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: `fds` is a valid array of two pollfds for the duration of the call. The
        // timeout is how often our terminal's size is looked at.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, 200) };
        if n < 0 {
            if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(Error::io("poll", std::io::Error::last_os_error()));
        }
        // Signals sent to us (the caller keeps them blocked) go to the container, as docker's
        // --sig-proxy does; in raw mode a typed ctrl-c is just a byte for the container's tty.
        let zero = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: a valid sigset and timespec for the duration of the call.
        let sig = unsafe { libc::sigtimedwait(proxied.as_ref(), std::ptr::null_mut(), &zero) };
        if sig > 0 {
            proxy(sig);
        }
        if streams.tty {
            let now = our_size();
            if now.is_some()
                && now.map(|w| (w.ws_row, w.ws_col)) != size.map(|w| (w.ws_row, w.ws_col))
            {
                if let Some(w) = &now {
                    // A size that does not fit now is superseded by the next one anyway.
                    let _ = try_send(&size_msg(w));
                }
                size = now;
            }
        }
        if fds[0].revents & libc::POLLOUT != 0 {
            if let Some(m) = &unsent {
                match try_send(m) {
                    Ok(true) => unsent = None,
                    Ok(false) => {}
                    // The monitor is gone; its end shows up as EOF below.
                    Err(_) => {
                        unsent = None;
                        stdin_open = false;
                    }
                }
            }
        }
        if fds[0].revents & !libc::POLLOUT != 0 {
            // SAFETY: receiving into our own buffer.
            let r = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if r <= 0 {
                return Ok(AttachEnd::Closed);
            }
            let msg = &buf[..r as usize];
            match msg[0] {
                b'o' => write_all(libc::STDOUT_FILENO, &msg[1..]),
                b'e' => write_all(libc::STDERR_FILENO, &msg[1..]),
                b'x' => {
                    let code = std::str::from_utf8(&msg[1..])
                        .ok()
                        .and_then(|c| c.parse().ok());
                    return Ok(code.map_or(AttachEnd::Closed, AttachEnd::Exited));
                }
                _ => {}
            }
        }
        if stdin_open && unsent.is_none() && fds[1].revents != 0 {
            // One message per read: 32 KiB of input and its type fit the monitor's buffer.
            buf[0] = b'i';
            // SAFETY: reading into our own buffer, after the message type, from our stdin.
            let r =
                unsafe { libc::read(libc::STDIN_FILENO, buf[1..].as_mut_ptr().cast(), 32 * 1024) };
            if r < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            let msg = if r <= 0 {
                stdin_open = false;
                if streams.tty {
                    // End of input: an EOF character tells the program on the terminal.
                    b"i\x04".to_vec()
                } else if streams.once {
                    // The monitor closes the container's stdin.
                    b"c".to_vec()
                } else {
                    // The container's stdin stays open for the next attach; we leave.
                    return Ok(AttachEnd::Detached);
                }
            } else if streams.tty {
                let (pass, detach) = matcher.feed(&buf[1..=r as usize]);
                if detach {
                    // What was typed before the keys still goes; the monitor reads a
                    // terminal's attaches at once, so this wait is short.
                    let mut m = vec![b'i'];
                    m.extend_from_slice(&pass);
                    // SAFETY: sending our own buffer on a socket we own.
                    unsafe {
                        libc::send(
                            fd.as_raw_fd(),
                            m.as_ptr().cast(),
                            m.len(),
                            libc::MSG_NOSIGNAL,
                        )
                    };
                    return Ok(AttachEnd::Detached);
                }
                [&b"i"[..], &pass].concat()
            } else {
                buf[..=r as usize].to_vec()
            };
            if msg.len() > 1 || msg[0] != b'i' {
                match try_send(&msg) {
                    Ok(true) => {}
                    Ok(false) => unsent = Some(msg),
                    Err(_) => stdin_open = false,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detach_key_syntax() {
        assert_eq!(parse_detach_keys("ctrl-p,ctrl-q").unwrap(), [16, 17]);
        assert_eq!(parse_detach_keys("ctrl-a,d").unwrap(), [1, b'd']);
        assert_eq!(
            parse_detach_keys("ctrl-@,ctrl-[,ctrl-_").unwrap(),
            [0, 27, 31]
        );
        for bad in ["", "ctrl-", "ctrl-pp", "alt-x", "ab", "ctrl-1"] {
            assert!(parse_detach_keys(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn detach_sequence_is_held_back_then_passed_or_consumed() {
        let mut m = DetachMatcher {
            keys: vec![16, 17],
            held: 0,
        };
        assert_eq!(m.feed(b"ab\x10"), (b"ab".to_vec(), false));
        // Broken sequence: the held ctrl-p goes through with what broke it.
        assert_eq!(m.feed(b"x"), (b"\x10x".to_vec(), false));
        assert_eq!(m.feed(b"\x10\x10"), (b"\x10".to_vec(), false));
        assert_eq!(m.feed(b"\x11rest"), (Vec::new(), true));
    }
}
