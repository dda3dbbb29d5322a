//! `hako-monitor`: the small process that supervises one detached container.
//!
//! It is exec'd by the process that spawned the container, so the container stays its child.
//! Arguments: ID PID LOG EXIT_FILE ROOT [MAX_SIZE MAX_FILE]; fd 3 and fd 4 are the
//! container's stdout and stderr (with `-t`, fd 3 is its terminal); with `-t` or `-i`, fd 5 is
//! the attach socket; with `-i` alone, fd 6 is the container's stdin; fd 7, when the container
//! has a seccomp filter, is its listener.
//! It writes Docker's json-file log lines, answers the filter's notifications (syscalls that
//! get ENOSYS, which it records: see [`Agent`]), reaps the container (and, as a subreaper, any
//! orphans), writes "CODE FINISHED_NANOS [NR,NR…]" to EXIT_FILE and execs `hako-finish ROOT
//! ID PID`, which records the exit and cleans up through the engine (`hako_engine::finish`).
//! Only std, libc and `hako-base` (std and libc only), and no std start-up code (see `main`), so one
//! stays well under 1 MiB of memory.
// The unit tests keep the test harness's own `main`.
#![cfg_attr(not(test), no_main)]

use hako_base::jsonlog::{JsonLog, Stream};
use std::io;

/// fds 3 and 4, in order.
const STREAMS: [Stream; 2] = [Stream::Stdout, Stream::Stderr];

// No std `main`: std's start-up code finds the main thread's stack guard through glibc's
// pthread_getattr_np, which parses /proc/self/maps with stdio and scanf, and installs
// stack-overflow handlers. None of that is needed here, and the code it touches stays mapped:
// 1024-1028 KiB of resident memory with it, 824-832 KiB without (one monitor per container).
// `std::env::args` still works: std reads argc/argv from glibc's init_array call.
#[cfg(not(test))]
#[no_mangle]
pub extern "C" fn main(_argc: libc::c_int, _argv: *const *const libc::c_char) -> libc::c_int {
    monitor();
    0
}

#[cfg_attr(test, allow(dead_code))]
fn monitor() {
    // Before anything here opens a descriptor, which could land on a free fd 7 (the log
    // file, with fds 3 to 6 taken and no filter).
    let mut agent = Agent::open();
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 6 && args.len() != 8 {
        eprintln!("hako-monitor is started by hako for detached containers; it is not run by hand");
        std::process::exit(2);
    }
    let (id, log, exit_file, root) = (&args[1], &args[3], &args[4], &args[5]);
    let init: i32 = args[2].parse().unwrap_or(-1);
    // The spawning process blocked the signals it relays; we need SIGCHLD-free blocking waits
    // only, but the container must not inherit a blocked mask through us, and we want to die
    // only by SIGKILL, so ignore the terminal-style signals.
    // SAFETY: plain signal-mask and disposition changes in a single-threaded process.
    unsafe {
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
        for sig in [libc::SIGHUP, libc::SIGINT, libc::SIGTERM, libc::SIGPIPE] {
            libc::signal(sig, libc::SIG_IGN);
        }
    }
    let (max_size, max_file) = match args.get(6..8) {
        Some([s, f]) => (s.parse().unwrap_or(0), f.parse().unwrap_or(1)),
        _ => (0, 1),
    };
    // Its stderr is the caller's until the container runs; the container must run even
    // when its log cannot be written.
    let mut out = JsonLog::open(log, max_size, max_file).unwrap_or_else(|e| {
        eprintln!("hako-monitor: open {log}: {e}");
        JsonLog::discard()
    });
    // Only with fd 6 open is there a stdin to hold: a plain `run -d` monitor then never runs
    // std's environment code, which costs it pages of resident memory (one runs per
    // container; `bench/containers.sh` measures it).
    // SAFETY: F_GETFD only inspects the descriptor.
    let stdin_mode = (unsafe { libc::fcntl(6, libc::F_GETFD) } >= 0)
        .then(|| std::env::var("HAKO_MONITOR_STDIN").ok())
        .flatten();
    // SAFETY: isatty only inspects the descriptor.
    let tty = unsafe { libc::isatty(3) } == 1;
    let clients = if tty || stdin_mode.is_some() {
        // fd 5 is the attach socket in the container's directory, which we remove by a
        // relative name.
        let dir = std::path::Path::new(log)
            .parent()
            .unwrap_or(std::path::Path::new("/"));
        if let Err(e) = std::env::set_current_dir(dir) {
            eprintln!("hako-monitor: chdir {}: {e}", dir.display());
        }
        let clients = if tty {
            // `run -dt`: fd 3 is the master of the container's pty, fd 4 is unused.
            // SAFETY: closing our own unused descriptor.
            unsafe { libc::close(4) };
            pump_tty(&mut out, &mut agent)
        } else {
            pump_stdin(
                &mut out,
                &mut agent,
                init,
                stdin_mode.as_deref() == Some("once"),
            )
        };
        let _ = std::fs::remove_file("attach.sock");
        clients
    } else {
        pump(&mut out, &mut agent);
        Vec::new()
    };
    agent.until_exit(init);
    let code = reap_all(init);
    record_exit(code, exit_file, &agent.numbers());
    // An attach that is still connected (`run -it` is one) learns the exit status here,
    // before the finish may remove the container with `--rm`. Without waiting: one
    // that does not read (stopped, or stuck on its own output) must not hold up the finish;
    // it still learns the status from the exit file.
    let mut clients = clients;
    broadcast(&mut clients, format!("x{code}").as_bytes());
    flush_before_exit(clients);
    finish(root, id, &args[2]);
}

/// Execs `hako-finish` (installed next to this binary), which records the exit and cleans up
/// through the engine. The engine is not linked in here: its code would make every monitor's
/// resident memory larger for the whole life of its container (the kernel maps the cached
/// pages around each one a process touches, and a binary with the engine in it spreads the
/// few this loop runs over many more of them: 1272 KiB instead of 744 KiB, static).
fn finish(root: &str, id: &str, init: &str) -> ! {
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe()
        .map(|e| e.with_file_name("hako-finish"))
        .unwrap_or_else(|_| "hako-finish".into());
    let err = std::process::Command::new(&exe)
        .args([root, id, init])
        .exec();
    eprintln!("hako-monitor: exec {}: {err}", exe.display());
    std::process::exit(1);
}

/// Writes "CODE FINISHED_NANOS" to EXIT_FILE (atomically, through a rename), followed by the
/// numbers of the syscalls that got ENOSYS when there are some (`missing`: "1000,434").
fn record_exit(code: i32, exit_file: &str, missing: &str) {
    let finished = hako_base::time::now_nanos();
    let tmp = format!("{exit_file}.tmp");
    let sep = if missing.is_empty() { "" } else { " " };
    if std::fs::write(&tmp, format!("{code} {finished}{sep}{missing}\n")).is_ok() {
        let _ = std::fs::rename(&tmp, exit_file);
    }
}

/// Copies fd 3 (stdout) and fd 4 (stderr) into the log until both are closed, answering the
/// `agent`'s notifications meanwhile.
fn pump(out: &mut JsonLog, agent: &mut Agent) {
    let mut fds = [
        pollfd(3, libc::POLLIN),
        pollfd(4, libc::POLLIN),
        agent.pollfd(),
    ];
    let mut buf = IdleBuf::new(64 * 1024);
    while fds[..2].iter().any(|f| f.fd >= 0) {
        fds[2] = agent.pollfd();
        // SAFETY: `fds` is a valid array of three pollfd structures.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 3, -1) };
        if n < 0 {
            if interrupted() {
                continue;
            }
            return;
        }
        agent.ready(fds[2].revents);
        for (i, f) in fds[..2].iter_mut().enumerate() {
            if f.fd < 0 || f.revents == 0 {
                continue;
            }
            // SAFETY: reading into our own buffer from a descriptor we own.
            let r = unsafe { libc::read(f.fd, buf.as_mut_ptr().cast(), buf.len()) };
            if r <= 0 {
                if r < 0 && interrupted() {
                    continue;
                }
                // SAFETY: closing our own descriptor once.
                unsafe { libc::close(f.fd) };
                f.fd = -1;
                out.end(STREAMS[i]);
                continue;
            }
            out.output(STREAMS[i], &buf[..r as usize]);
        }
    }
}

/// `run -dt`: copies the pty's output into the log (as stdout, like docker) and to every
/// `hako attach` connected to the attach socket (fd 5), and their input and window sizes to
/// the pty, until the container closes its terminal; returns the attaches still connected.
/// The socket is SOCK_SEQPACKET, so every message arrives whole. From an attach: `i` + bytes
/// typed, or `w` + rows and columns (u16, LE). To it: `o` + output, and at the end `x` + the
/// exit status in decimal.
fn pump_tty(out: &mut JsonLog, agent: &mut Agent) -> Vec<Client> {
    // The spawning process bound and listens on the socket, as fd 5, so it exists by the
    // time `run` returns.
    let listener = 5;
    // As with a stdin pipe (see `pump_stdin`): a program that does not read its terminal
    // must not stop us, blocked on a full input queue, from reading its output and its end.
    set_nonblocking(3);
    let mut pending: Vec<u8> = Vec::new();
    let mut clients = first_attach(listener, agent);
    let mut buf = IdleBuf::new(64 * 1024);
    loop {
        let blocked = !pending.is_empty();
        let mut fds = vec![
            pollfd(3, libc::POLLIN | if blocked { libc::POLLOUT } else { 0 }),
            pollfd(listener, libc::POLLIN),
            agent.pollfd(),
        ];
        if !poll_with_clients(&mut fds, &clients, blocked) {
            break;
        }
        agent.ready(fds[2].revents);
        if fds[0].revents & libc::POLLOUT != 0 {
            match write_some(3, &pending) {
                Some(w) if w < pending.len() => {
                    pending.drain(..w);
                }
                // Written, or the terminal is gone (the read below then sees EIO).
                _ => pending = Vec::new(),
            }
        }
        if fds[0].revents & !libc::POLLOUT != 0 {
            buf[0] = b'o';
            // SAFETY: reading into our own buffer, after the message type, from our master.
            let r = unsafe { libc::read(3, buf[1..].as_mut_ptr().cast(), buf.len() - 1) };
            if r < 0
                && matches!(
                    io::Error::last_os_error().kind(),
                    io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock
                )
            {
                continue;
            }
            if r <= 0 {
                // EIO: every slave descriptor is closed, the container is gone.
                break;
            }
            broadcast(&mut clients, &buf[..=r as usize]);
            out.output(Stream::Stdout, &buf[1..=r as usize]);
        }
        if fds[1].revents != 0 {
            accept_client(listener, &mut clients);
        }
        serve_attaches(
            &fds[3..],
            &mut clients,
            &mut buf,
            &mut pending,
            |msg, pending| {
                match msg.first() {
                    Some(b'i') => {
                        if let Some(w) = write_some(3, &msg[1..]) {
                            pending.extend_from_slice(&msg[1 + w..]);
                        }
                    }
                    Some(b'w') if msg.len() >= 5 => {
                        let ws = libc::winsize {
                            ws_row: u16::from_le_bytes([msg[1], msg[2]]),
                            ws_col: u16::from_le_bytes([msg[3], msg[4]]),
                            ws_xpixel: 0,
                            ws_ypixel: 0,
                        };
                        // SAFETY: TIOCSWINSZ reads the winsize we pass; the kernel then sends
                        // SIGWINCH to the terminal's foreground process group.
                        unsafe { libc::ioctl(3, libc::TIOCSWINSZ, &ws) };
                    }
                    _ => {}
                }
            },
        );
    }
    out.end(Stream::Stdout);
    // SAFETY: closing our own descriptors.
    unsafe {
        libc::close(listener);
        libc::close(3);
    }
    clients
}

/// `run -d -i` without `-t`: fds 3 and 4 are the container's stdout and stderr, fd 5 the
/// attach socket, fd 6 the write end of the container's stdin. Output goes to the log and,
/// as `o` (stdout) and `e` (stderr) messages, to every attach; their `i` input goes to the
/// stdin pipe, which stays open when an attach leaves, as Docker keeps it. With `once`
/// (Docker's StdinOnce, which `create -i` sets) an attach's `c`, the end of its input,
/// closes the pipe, so the command reads EOF. Runs until the container has exited and its
/// output ended; returns the attaches still connected.
fn pump_stdin(out: &mut JsonLog, agent: &mut Agent, init: i32, once: bool) -> Vec<Client> {
    let listener = 5;
    let mut stdin = 6;
    // Never block on the pipe: a container that does not read its stdin while an attach pours
    // input must not keep us from logging its output or recording its exit. What the pipe
    // has no room for waits in `pending`, and the attaches are not read meanwhile, so their
    // sends block instead (on their side).
    set_nonblocking(stdin);
    let mut pending: Vec<u8> = Vec::new();
    // The output pipes can outlive the command (a background process keeps them), or end
    // before it (it closed them and still reads its input), so its exit is watched apart.
    // SAFETY: pidfd_open takes a pid and flags; the descriptor is ours to close.
    let mut pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, init, 0) } as i32;
    let mut outs = [3, 4];
    let mut clients = first_attach(listener, agent);
    let mut buf = IdleBuf::new(64 * 1024);
    // Without a pidfd (kernels before 5.3) the end of the output stands for the exit.
    while outs != [-1, -1] || pidfd >= 0 {
        let blocked = !pending.is_empty();
        let mut fds = vec![
            pollfd(outs[0], libc::POLLIN),
            pollfd(outs[1], libc::POLLIN),
            pollfd(pidfd, libc::POLLIN),
            pollfd(listener, libc::POLLIN),
            pollfd(if blocked { stdin } else { -1 }, libc::POLLOUT),
            agent.pollfd(),
        ];
        if !poll_with_clients(&mut fds, &clients, blocked) {
            break;
        }
        agent.ready(fds[5].revents);
        for (i, tag) in [(0, b'o'), (1, b'e')] {
            if fds[i].revents == 0 {
                continue;
            }
            buf[0] = tag;
            // SAFETY: reading into our own buffer, after the message type, from our pipe.
            let r = unsafe { libc::read(outs[i], buf[1..].as_mut_ptr().cast(), buf.len() - 1) };
            if r <= 0 {
                if r < 0 && interrupted() {
                    continue;
                }
                // SAFETY: closing our own descriptor once.
                unsafe { libc::close(outs[i]) };
                outs[i] = -1;
                out.end(STREAMS[i]);
                continue;
            }
            broadcast(&mut clients, &buf[..=r as usize]);
            out.output(STREAMS[i], &buf[1..=r as usize]);
        }
        if fds[2].revents != 0 {
            // SAFETY: closing our own descriptor once.
            unsafe { libc::close(pidfd) };
            pidfd = -1;
        }
        if fds[3].revents != 0 {
            accept_client(listener, &mut clients);
        }
        if fds[4].revents != 0 {
            match write_some(stdin, &pending) {
                Some(w) if w < pending.len() => {
                    pending.drain(..w);
                }
                Some(_) => pending = Vec::new(),
                None => {
                    close_stdin(&mut stdin);
                    pending = Vec::new();
                }
            }
        }
        serve_attaches(
            &fds[6..],
            &mut clients,
            &mut buf,
            &mut pending,
            |msg, pending| match msg.first() {
                Some(b'i') if stdin >= 0 => match write_some(stdin, &msg[1..]) {
                    Some(w) => pending.extend_from_slice(&msg[1 + w..]),
                    None => close_stdin(&mut stdin),
                },
                Some(b'c') if once => close_stdin(&mut stdin),
                _ => {}
            },
        );
    }
    for s in STREAMS {
        out.end(s);
    }
    // Whatever still holds the read end (an orphan, with `--pid host`) sees EOF now rather
    // than keep the reaping below waiting.
    close_stdin(&mut stdin);
    // SAFETY: closing our own descriptors.
    unsafe {
        libc::close(listener);
        for fd in outs.into_iter().chain([pidfd]).filter(|&fd| fd >= 0) {
            libc::close(fd);
        }
    }
    clients
}

/// Writes what a non-blocking `fd` takes of `data` now: `Some(bytes written)`, or `None`
/// once the reading end is closed (or the write fails otherwise).
fn write_some(fd: i32, data: &[u8]) -> Option<usize> {
    loop {
        // SAFETY: writing from our own buffer to a descriptor we hold.
        let w = unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) };
        if w >= 0 {
            return Some(w as usize);
        }
        match io::Error::last_os_error().kind() {
            io::ErrorKind::Interrupted => continue,
            io::ErrorKind::WouldBlock => return Some(0),
            _ => return None,
        }
    }
}

fn set_nonblocking(fd: i32) {
    // SAFETY: fcntl on a descriptor we own; only its status flags change.
    unsafe {
        let fl = libc::fcntl(fd, libc::F_GETFL);
        libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK);
    }
}

fn close_stdin(fd: &mut i32) {
    if *fd >= 0 {
        // SAFETY: closing our own descriptor once; it is forgotten at once.
        unsafe { libc::close(*fd) };
        *fd = -1;
    }
}

fn pollfd(fd: i32, events: libc::c_short) -> libc::pollfd {
    libc::pollfd {
        fd,
        events,
        revents: 0,
    }
}

/// Polls `fds`, followed by the attach clients' sockets unless output is `blocked` (their
/// input then waits until the container takes what is pending); `false` if poll fails.
fn poll_with_clients(fds: &mut Vec<libc::pollfd>, clients: &[Client], blocked: bool) -> bool {
    // An attach with output queued is waited on until it takes it, and its input is not read
    // meanwhile: one that does not keep up (a terminal echoing what it pours in) slows only
    // itself down.
    fds.extend(clients.iter().map(|c| {
        let events = match (c.queued(), blocked) {
            (true, _) => libc::POLLOUT,
            (false, false) => libc::POLLIN,
            // Not polled at all: a hung-up attach must not wake us over and over.
            (false, true) => return pollfd(-1, 0),
        };
        pollfd(c.fd, events)
    }));
    loop {
        // SAFETY: `fds` is a valid array of pollfds for the duration of the call.
        if unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) } >= 0 {
            return true;
        }
        if !interrupted() {
            return false;
        }
    }
}

/// The container's seccomp agent: its filter notifies the syscalls that would get ENOSYS (past
/// every syscall the profile names, and the ones a user's profile answers with ENOSYS), and
/// this answers each with ENOSYS, so the container sees what it would have without us, and
/// records its number for `.State.MissingSyscalls`. The listener is polled in the loop that
/// relays the output, one notification per wake-up: receiving after POLLIN and answering
/// never wait, so the relay is never held up. If the monitor dies, the kernel answers the
/// calls with ENOSYS itself.
struct Agent {
    /// The listener, -1 without one (or once closed).
    fd: i32,
    /// The numbers seen, each once, in the order first called; bounded, as one process runs
    /// per container and a container may call any number.
    seen: [i32; 64],
    count: usize,
}

/// fd 7: the listener, when the container has a filter.
const SECCOMP_LISTENER: i32 = 7;

impl Agent {
    fn open() -> Agent {
        // SAFETY: F_GETFD only inspects the descriptor.
        let open = unsafe { libc::fcntl(SECCOMP_LISTENER, libc::F_GETFD) } >= 0;
        Agent {
            fd: if open { SECCOMP_LISTENER } else { -1 },
            seen: [0; 64],
            count: 0,
        }
    }

    fn pollfd(&self) -> libc::pollfd {
        pollfd(self.fd, libc::POLLIN)
    }

    /// Acts on what poll reported for the listener: answers one notification.
    fn ready(&mut self, revents: libc::c_short) {
        if self.fd < 0 || revents == 0 {
            return;
        }
        if revents & libc::POLLIN == 0 {
            // POLLHUP: no process is left under the filter.
            self.close();
            return;
        }
        // After POLLIN the receive does not wait: a call withdrawn meanwhile (its caller was
        // killed) is ENOENT.
        let nr = match hako_base::seccomp_notify::answer_enosys(self.fd) {
            Ok(nr) => nr,
            Err(e) => {
                if !matches!(e.raw_os_error(), Some(libc::ENOENT | libc::EINTR)) {
                    self.close();
                }
                return;
            }
        };
        if !self.seen[..self.count].contains(&nr) && self.count < self.seen.len() {
            self.seen[self.count] = nr;
            self.count += 1;
        }
    }

    /// Once the output has ended: answers until the container's init exits (the kernel then
    /// kills the rest of its pid namespace), then closes the listener, so that a process that
    /// outlives it (with `--pid host`) gets ENOSYS from the kernel and the reaping after this
    /// never waits for a call nobody answers.
    fn until_exit(&mut self, init: i32) {
        if self.fd < 0 {
            return;
        }
        // SAFETY: pidfd_open takes a pid and flags; the descriptor is ours to close.
        let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, init, 0) } as i32;
        while pidfd >= 0 && self.fd >= 0 {
            let mut fds = [self.pollfd(), pollfd(pidfd, libc::POLLIN)];
            // SAFETY: `fds` is a valid array of two pollfds.
            if unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) } < 0 {
                if interrupted() {
                    continue;
                }
                break;
            }
            if fds[1].revents != 0 {
                break;
            }
            self.ready(fds[0].revents);
        }
        if pidfd >= 0 {
            // SAFETY: closing our own descriptor once.
            unsafe { libc::close(pidfd) };
        }
        self.close();
    }

    fn close(&mut self) {
        if self.fd >= 0 {
            // SAFETY: closing our own descriptor once; it is forgotten at once.
            unsafe { libc::close(self.fd) };
            self.fd = -1;
        }
    }

    /// The numbers seen, for the exit file: "1000,434".
    fn numbers(&self) -> String {
        let mut s = String::new();
        for nr in &self.seen[..self.count] {
            if !s.is_empty() {
                s.push(',');
            }
            s.push_str(&nr.to_string());
        }
        s
    }
}

fn interrupted() -> bool {
    io::Error::last_os_error().kind() == io::ErrorKind::Interrupted
}

/// `run -it` and `start -a` attach at once. Until that attach connects the container's
/// output is not read, so neither its output nor its exit can pass it by; a `hako` that died
/// before connecting only costs this wait. The `agent` answers meanwhile.
fn first_attach(listener: i32, agent: &mut Agent) -> Vec<Client> {
    let mut clients = Vec::new();
    if std::env::var_os("HAKO_MONITOR_WAIT_ATTACH").is_none() {
        return clients;
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            break;
        }
        let mut p = [pollfd(listener, libc::POLLIN), agent.pollfd()];
        // SAFETY: two valid pollfds.
        let n = unsafe { libc::poll(p.as_mut_ptr(), 2, left.as_millis().max(1) as i32) };
        if n < 0 && !interrupted() {
            break;
        }
        agent.ready(p[1].revents);
        if p[0].revents != 0 {
            accept_client(listener, &mut clients);
            break;
        }
    }
    clients
}

fn accept_client(listener: i32, clients: &mut Vec<Client>) {
    // SAFETY: accept4 on our listening socket; the peer address is not wanted.
    let c = unsafe {
        libc::accept4(
            listener,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            libc::SOCK_CLOEXEC,
        )
    };
    if c >= 0 {
        clients.push(Client {
            fd: c,
            queue: std::collections::VecDeque::new(),
            bytes: 0,
        });
    }
}

/// One `hako attach` on the attach socket, with the messages its socket had no room for.
struct Client {
    fd: i32,
    queue: std::collections::VecDeque<Vec<u8>>,
    bytes: usize,
}

/// How far an attach may fall behind the container's output before it is dropped. Enough to
/// ride out a client that the scheduler starves for a while on a busy machine (the kernel's
/// socket buffer alone holds ~200 KiB); beyond it a client that stopped reading must not
/// grow our memory (one monitor runs per container) or stall the container.
const CLIENT_QUEUE_MAX: usize = 4 << 20;

impl Client {
    fn queued(&self) -> bool {
        !self.queue.is_empty()
    }

    /// Sends what is queued, in order, as far as the socket takes it now; `false` once the
    /// attach has gone.
    fn flush(&mut self) -> bool {
        while let Some(msg) = self.queue.front() {
            match send_now(self.fd, msg) {
                Sent::Yes => {
                    self.bytes -= msg.len();
                    self.queue.pop_front();
                }
                Sent::Full => return true,
                Sent::Gone => return false,
            }
        }
        true
    }

    /// Sends `msg` after what is queued; `false` if the attach has gone or fell too far behind.
    fn send(&mut self, msg: &[u8]) -> bool {
        if !self.queued() {
            match send_now(self.fd, msg) {
                Sent::Yes => return true,
                Sent::Gone => return false,
                Sent::Full => {}
            }
        }
        self.bytes += msg.len();
        self.queue.push_back(msg.to_vec());
        self.bytes <= CLIENT_QUEUE_MAX
    }
}

enum Sent {
    Yes,
    Full,
    Gone,
}

fn send_now(fd: i32, msg: &[u8]) -> Sent {
    loop {
        // SAFETY: sending our own buffer on a socket we own, without waiting.
        let sent = unsafe {
            libc::send(
                fd,
                msg.as_ptr().cast(),
                msg.len(),
                libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
            )
        };
        if sent >= 0 {
            return Sent::Yes;
        }
        match io::Error::last_os_error().kind() {
            io::ErrorKind::Interrupted => continue,
            io::ErrorKind::WouldBlock => return Sent::Full,
            _ => return Sent::Gone,
        }
    }
}

/// Sends one message to every attach; one that falls too far behind, or has gone, is
/// dropped rather than allowed to stall the container.
fn broadcast(clients: &mut Vec<Client>, msg: &[u8]) {
    clients.retain_mut(|c| {
        let kept = c.send(msg);
        if !kept {
            // SAFETY: closing the client's descriptor once, as we forget it.
            unsafe { libc::close(c.fd) };
        }
        kept
    });
}

/// After the exit: gives the attaches still connected what is queued for them (the end of
/// the output and the exit status), for at most a second in all, so one that does not read
/// (stopped, or stuck on its own output) cannot hold up the finish and `--rm`; it still
/// learns the status from the exit file. Then drains what each sent us (closing with unread
/// messages would reset the connection and drop ours) and closes it.
fn flush_before_exit(mut clients: Vec<Client>) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
    loop {
        clients.retain_mut(|c| {
            let kept = !c.queued() || c.flush();
            if !kept {
                // SAFETY: closing the departed client's descriptor once, as we forget it.
                unsafe { libc::close(c.fd) };
            }
            kept
        });
        let waiting: Vec<libc::pollfd> = clients
            .iter()
            .filter(|c| c.queued())
            .map(|c| pollfd(c.fd, libc::POLLOUT))
            .collect();
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if waiting.is_empty() || left.is_zero() {
            break;
        }
        let mut waiting = waiting;
        // SAFETY: `waiting` is a valid array of pollfds for the duration of the call.
        unsafe {
            libc::poll(
                waiting.as_mut_ptr(),
                waiting.len() as libc::nfds_t,
                left.as_millis().max(1) as i32,
            )
        };
    }
    let mut sink = [0u8; 512];
    for c in clients {
        // SAFETY: on a client socket we own: drain into our own buffer, then close it once.
        unsafe {
            while libc::recv(
                c.fd,
                sink.as_mut_ptr().cast(),
                sink.len(),
                libc::MSG_DONTWAIT,
            ) > 0
            {}
            libc::close(c.fd);
        }
    }
}

/// Takes one message from each attach of `ready` that has sent one, and hands it to
/// `handle`, which may leave input it could not pass on in `pending`. While input is
/// pending no more is read, so it keeps its order and the other attaches wait in their
/// sockets. Attaches that left are closed and dropped from `clients`.
fn serve_attaches(
    ready: &[libc::pollfd],
    clients: &mut Vec<Client>,
    buf: &mut [u8],
    pending: &mut Vec<u8>,
    mut handle: impl FnMut(&[u8], &mut Vec<u8>),
) {
    let mut gone = Vec::new();
    for f in ready.iter().filter(|f| f.revents != 0) {
        if f.events == libc::POLLOUT {
            // Its queue: what it takes now, or its end (POLLHUP/POLLERR).
            let flushed = clients
                .iter_mut()
                .find(|c| c.fd == f.fd)
                .is_some_and(|c| c.flush());
            if !flushed {
                gone.push(f.fd);
            }
            continue;
        }
        if !pending.is_empty() {
            break;
        }
        // SAFETY: receiving into our own buffer from a client socket we own.
        let r = unsafe { libc::recv(f.fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
        if r <= 0 {
            gone.push(f.fd);
            continue;
        }
        handle(&buf[..r as usize], pending);
    }
    drop_clients(clients, &gone);
}

fn drop_clients(clients: &mut Vec<Client>, gone: &[i32]) {
    for &c in gone {
        clients.retain(|x| x.fd != c);
        // SAFETY: closing the departed client's descriptor once.
        unsafe { libc::close(c) };
    }
}

/// A zeroed read buffer whose pages are mapped only once data is read into them: the monitor
/// of a quiet container then holds none of it. (A heap buffer of this size comes from calloc,
/// which clears, and so faults in, memory it reuses.)
struct IdleBuf {
    ptr: *mut u8,
    len: usize,
}

impl IdleBuf {
    fn new(len: usize) -> IdleBuf {
        // SAFETY: a fresh private anonymous mapping; nothing else refers to it.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            eprintln!("hako-monitor: mmap: {}", io::Error::last_os_error());
            std::process::exit(1);
        }
        IdleBuf {
            ptr: ptr.cast(),
            len,
        }
    }
}

impl std::ops::Deref for IdleBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: the mapping is LEN bytes, zero-initialised, and lives as long as self.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl std::ops::DerefMut for IdleBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in deref; &mut self makes this the only reference.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

/// Waits for every child (orphans of the container are reparented to us) and returns the
/// container init's status in Docker's convention.
fn reap_all(init: i32) -> i32 {
    let mut code = 255;
    loop {
        let mut status = 0;
        // SAFETY: waitpid writes the status into our local variable.
        let pid = unsafe { libc::waitpid(-1, &mut status, 0) };
        if pid < 0 {
            if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            break;
        }
        if pid == init {
            code = if libc::WIFEXITED(status) {
                libc::WEXITSTATUS(status)
            } else if libc::WIFSIGNALED(status) {
                128 + libc::WTERMSIG(status)
            } else {
                255
            };
        }
    }
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The stdin pipe of a container that does not read: writes take what fits, then
    /// nothing (without blocking), and report the pipe's end once its reader is gone.
    #[test]
    fn write_some_never_blocks_and_sees_the_readers_end() {
        let mut fds = [0; 2];
        // SAFETY: pipe2 fills the two descriptors, which this test owns.
        let made = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK) };
        assert_eq!(made, 0);
        let chunk = vec![b'y'; 64 * 1024];
        let mut total = 0;
        loop {
            match write_some(fds[1], &chunk) {
                Some(0) => break,
                Some(n) => total += n,
                None => panic!("the reader is still there"),
            }
        }
        assert!(total > 0);
        // SAFETY: closing the read end we own; SIGPIPE is ignored as in the monitor.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_IGN);
            libc::close(fds[0]);
        }
        assert_eq!(write_some(fds[1], b"more"), None);
        // SAFETY: closing the write end we own.
        unsafe { libc::close(fds[1]) };
    }
}
