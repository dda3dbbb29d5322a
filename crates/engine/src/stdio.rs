//! The standard streams of a container that a foreground `run` (or `exec`) starts without a
//! terminal: pipes, as Docker's and Podman's are, never the caller's own descriptors. hako
//! copies the container's output to its own stdout and stderr (and, for `run`, into the
//! json-file log, so `hako logs` shows a foreground run's output as Docker's does), and with
//! `-i` its own stdin into the container's.
//!
//! Handing the caller's descriptors over would be a few microseconds cheaper, but it gave the
//! container the caller's terminal: a process with CAP_SYS_ADMIN could push input into the
//! user's shell with TIOCSTI, and any could change the terminal's modes; and there was no log.

use hako_base::jsonlog::{JsonLog, Stream};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

/// The pipes, before the container is spawned.
pub(crate) struct Pipes {
    /// The container's ends, for `SpawnOptions` (dropped once it has its copies).
    stdin_r: Option<OwnedFd>,
    stdout_w: OwnedFd,
    stderr_w: OwnedFd,
    /// Ours.
    stdin_w: Option<OwnedFd>,
    stdout_r: OwnedFd,
    stderr_r: OwnedFd,
}

fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(std::io::Error::from)
}

fn set_nonblocking(fd: &OwnedFd) {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    if let Ok(flags) = fcntl(fd, FcntlArg::F_GETFL) {
        let _ = fcntl(
            fd,
            FcntlArg::F_SETFL(OFlag::from_bits_retain(flags) | OFlag::O_NONBLOCK),
        );
    }
}

impl Pipes {
    /// Output pipes, and an input pipe when `interactive`.
    pub(crate) fn new(interactive: bool) -> crate::Result<Pipes> {
        let io = |e| crate::Error::io("create the container's stdio pipes", e);
        let (stdout_r, stdout_w) = pipe().map_err(io)?;
        let (stderr_r, stderr_w) = pipe().map_err(io)?;
        let (stdin_r, stdin_w) = match interactive {
            true => pipe().map(|(r, w)| (Some(r), Some(w))).map_err(io)?,
            false => (None, None),
        };
        // Ours only (a pipe's two ends are separate open files): the copier drains them
        // without blocking once the container has gone, and never waits on a full input pipe.
        set_nonblocking(&stdout_r);
        set_nonblocking(&stderr_r);
        if let Some(w) = &stdin_w {
            set_nonblocking(w);
        }
        Ok(Pipes {
            stdin_r,
            stdout_w,
            stderr_w,
            stdin_w,
            stdout_r,
            stderr_r,
        })
    }

    /// The container's stdin for `SpawnOptions::stdin`.
    pub(crate) fn stdin(&self) -> hako_runtime::Stdin<'_> {
        match &self.stdin_r {
            Some(r) => hako_runtime::Stdin::Fd(r.as_fd()),
            None => hako_runtime::Stdin::Null,
        }
    }

    /// The container's stdout and stderr for `SpawnOptions`.
    pub(crate) fn outputs(&self) -> (BorrowedFd<'_>, BorrowedFd<'_>) {
        (self.stdout_w.as_fd(), self.stderr_w.as_fd())
    }

    /// Once the container has its copies: closes ours of its ends (or its exit would not end
    /// the output) and starts copying, into `log` too; to our stdout and stderr only where
    /// `shown` says (`run -a`).
    pub(crate) fn relay(self, log: JsonLog, shown: [bool; 2]) -> Relay {
        let Pipes {
            stdin_r,
            stdout_w,
            stderr_w,
            stdin_w,
            stdout_r,
            stderr_r,
        } = self;
        drop((stdin_r, stdout_w, stderr_w));
        let (wake_r, wake) = match pipe() {
            Ok(p) => (Some(p.0), Some(p.1)),
            // Without a way to wake it, the copier still ends when the outputs do.
            Err(_) => (None, None),
        };
        let copier = Copier {
            outputs: [Some(stdout_r), Some(stderr_r)],
            stdin_w,
            pending: Vec::new(),
            wake: wake_r,
            log,
            ours: shown,
        };
        Relay {
            thread: Some(spawn_without_signals(move || copier.run())),
            wake,
        }
    }
}

/// Starts `f` on a thread that has every signal blocked from its first instruction: it must
/// never take a signal the caller relays to the container (SIGINT, SIGTERM…), and its writes
/// must see EPIPE rather than end the process by themselves (see [`Copier::write_out`]).
fn spawn_without_signals(f: impl FnOnce() + Send + 'static) -> std::thread::JoinHandle<()> {
    use nix::sys::signal::{pthread_sigmask, SigSet, SigmaskHow};
    let mut old = SigSet::empty();
    let _ = pthread_sigmask(
        SigmaskHow::SIG_SETMASK,
        Some(&SigSet::all()),
        Some(&mut old),
    );
    let handle = std::thread::spawn(f);
    let _ = pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&old), None);
    handle
}

/// The copier thread of a running container.
pub(crate) struct Relay {
    thread: Option<std::thread::JoinHandle<()>>,
    wake: Option<OwnedFd>,
}

impl Relay {
    /// After the container's exit (and its stragglers' end): copies what its output pipes
    /// still hold and stops, even if something outside the container keeps them open.
    pub(crate) fn finish(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        drop(self.wake.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop();
    }
}

struct Copier {
    /// The container's stdout and stderr (read ends), until each ends.
    outputs: [Option<OwnedFd>; 2],
    /// The container's stdin (write end), until our stdin ends or the container's closes.
    stdin_w: Option<OwnedFd>,
    /// Input read from our stdin that the container has not taken yet.
    pending: Vec<u8>,
    /// Becomes readable (its writer closed) when the container has gone.
    wake: Option<OwnedFd>,
    log: JsonLog,
    /// Whether our own stdout and stderr take output (not hidden by `run -a`, reader not gone).
    ours: [bool; 2],
}

const STREAMS: [Stream; 2] = [Stream::Stdout, Stream::Stderr];

impl Copier {
    fn run(mut self) {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let raw = |fd: &Option<OwnedFd>| fd.as_ref().map_or(-1, AsRawFd::as_raw_fd);
            let want_input = self.stdin_w.is_some() && self.pending.is_empty();
            let mut fds = [
                pollfd(raw(&self.outputs[0]), libc::POLLIN),
                pollfd(raw(&self.outputs[1]), libc::POLLIN),
                pollfd(
                    if want_input { libc::STDIN_FILENO } else { -1 },
                    libc::POLLIN,
                ),
                pollfd(
                    if self.pending.is_empty() {
                        -1
                    } else {
                        raw(&self.stdin_w)
                    },
                    libc::POLLOUT,
                ),
                pollfd(raw(&self.wake), libc::POLLIN),
            ];
            // A command that closed its outputs may still read its input: that ends with our
            // stdin, or with the container.
            if self.outputs.iter().all(Option::is_none) && self.stdin_w.is_none() {
                break;
            }
            // SAFETY: `fds` is a valid array of five pollfds for the duration of the call.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
            if n < 0 {
                if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                break;
            }
            for (i, f) in fds[..2].iter().enumerate() {
                if f.revents != 0 {
                    self.copy_output(i, &mut buf);
                }
            }
            if fds[2].revents != 0 {
                self.read_input(&mut buf);
            }
            if fds[3].revents != 0 {
                self.feed_input();
            }
            if fds[4].revents != 0 {
                // The container has gone: what its pipes hold now is all there is.
                for i in 0..2 {
                    while self.outputs[i].is_some() && self.copy_output(i, &mut buf) {}
                }
                break;
            }
        }
        for s in STREAMS {
            self.log.end(s);
        }
    }

    /// Copies one read of output `i`; false once there is nothing more to read for now.
    fn copy_output(&mut self, i: usize, buf: &mut [u8]) -> bool {
        let Some(fd) = &self.outputs[i] else {
            return false;
        };
        match nix::unistd::read(fd, buf) {
            Ok(0) => {
                self.outputs[i] = None;
                false
            }
            Ok(n) => {
                // The log first: a write to a reader that has gone may end this process.
                self.log.output(STREAMS[i], &buf[..n]);
                self.write_out(i, &buf[..n]);
                true
            }
            Err(nix::errno::Errno::EINTR) => true,
            Err(_) => false,
        }
    }

    /// Writes to our stdout (`i` 0) or stderr (1). Once its reader has gone, as a direct write
    /// would end a CLI by SIGPIPE, the signal goes to the process: `hako run … | head -1` ends
    /// (and the container with it). A caller that ignores SIGPIPE keeps the log going.
    fn write_out(&mut self, i: usize, mut data: &[u8]) {
        if !self.ours[i] {
            return;
        }
        let fd = [libc::STDOUT_FILENO, libc::STDERR_FILENO][i];
        while !data.is_empty() {
            // SAFETY: writing from our own buffer to our stdout or stderr.
            let w = unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) };
            if w < 0 {
                match std::io::Error::last_os_error().raw_os_error() {
                    Some(libc::EINTR) => continue,
                    // Our output is non-blocking (a caller's choice): wait until it drains.
                    Some(libc::EAGAIN) => {
                        let mut p = [pollfd(fd, libc::POLLOUT)];
                        // SAFETY: one valid pollfd.
                        unsafe { libc::poll(p.as_mut_ptr(), 1, -1) };
                        continue;
                    }
                    Some(libc::EPIPE) => {
                        self.ours[i] = false;
                        // SAFETY: kill(2) of our own process; no memory involved.
                        unsafe { libc::kill(libc::getpid(), libc::SIGPIPE) };
                        return;
                    }
                    _ => {
                        self.ours[i] = false;
                        return;
                    }
                }
            }
            data = &data[w as usize..];
        }
    }

    fn read_input(&mut self, buf: &mut [u8]) {
        // SAFETY: reading into our own buffer from our stdin.
        let r = unsafe { libc::read(libc::STDIN_FILENO, buf.as_mut_ptr().cast(), buf.len()) };
        if r < 0 {
            let e = std::io::Error::last_os_error();
            if matches!(e.raw_os_error(), Some(libc::EINTR | libc::EAGAIN)) {
                return;
            }
        }
        if r <= 0 {
            // End of our input (or a stdin that cannot be read): the container sees its end.
            self.stdin_w = None;
            return;
        }
        self.pending.extend_from_slice(&buf[..r as usize]);
        self.feed_input();
    }

    fn feed_input(&mut self) {
        let Some(w) = &self.stdin_w else {
            self.pending.clear();
            return;
        };
        match nix::unistd::write(w, &self.pending) {
            Ok(n) => {
                self.pending.drain(..n);
            }
            Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => {}
            // EPIPE (blocked here, not raised): the container closed its stdin.
            Err(_) => {
                self.stdin_w = None;
                self.pending.clear();
            }
        }
    }
}

fn pollfd(fd: RawFd, events: libc::c_short) -> libc::pollfd {
    libc::pollfd {
        fd,
        events,
        revents: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A child writing into the pipes the way a container would, and the log afterwards.
    #[test]
    fn output_is_logged_in_order_and_everything_is_drained_after_the_exit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        let pipes = Pipes::new(false).unwrap();
        let (out, err) = pipes.outputs();
        let (mut out, mut err) = (
            std::fs::File::from(out.try_clone_to_owned().unwrap()),
            std::fs::File::from(err.try_clone_to_owned().unwrap()),
        );
        let relay = pipes.relay(JsonLog::open(&path, 0, 1).unwrap(), [false, false]);
        out.write_all(b"one\n").unwrap();
        err.write_all(b"warn\n").unwrap();
        out.write_all(b"two, unended").unwrap();
        // The writers are still open (as a straggler's would be): finish drains and returns.
        relay.finish();
        let log = std::fs::read_to_string(&path).unwrap();
        let got: Vec<String> = log
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                format!(
                    "{}:{}",
                    v["stream"].as_str().unwrap(),
                    v["log"].as_str().unwrap()
                )
            })
            .collect();
        // The two pipes are read as they become ready: order holds within one stream.
        let stdout: Vec<&String> = got.iter().filter(|l| l.starts_with("stdout:")).collect();
        assert_eq!(stdout, ["stdout:one\n", "stdout:two, unended"], "{log}");
        assert!(got.contains(&"stderr:warn\n".to_string()), "{log}");
        assert_eq!(got.len(), 3, "{log}");
    }

    #[test]
    fn the_relay_ends_by_itself_when_the_outputs_close() {
        let pipes = Pipes::new(false).unwrap();
        let relay = pipes.relay(JsonLog::discard(), [false, false]);
        // Only the container's copies held the write ends: none exist here.
        let t = relay.thread.as_ref().unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !t.is_finished() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(t.is_finished());
    }
}
