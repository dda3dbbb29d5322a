//! `hako-monitor`: the small process that supervises one detached container.
//!
//! It is exec'd by the process that spawned the container, so the container stays its child.
//! Arguments: ID PID LOG EXIT_FILE HAKO ROOT [MAX_SIZE MAX_FILE]; fd 3 and fd 4 are the container's stdout and stderr.
//! It writes Docker's json-file log lines, reaps the container (and, as a subreaper, any
//! orphans), writes "CODE FINISHED_NANOS" to EXIT_FILE and execs `HAKO --root ROOT
//! container-finish ID`. Only std and libc, so one stays near 1 MiB of memory.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::process::CommandExt;
use std::time::{SystemTime, UNIX_EPOCH};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 7 && args.len() != 9 {
        eprintln!("hako-monitor is started by hako for detached containers; it is not run by hand");
        std::process::exit(2);
    }
    let (id, log, exit_file, hako, root) = (&args[1], &args[3], &args[4], &args[5], &args[6]);
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
    let (max_size, max_file) = match args.get(7..9) {
        Some([s, f]) => (s.parse().unwrap_or(0), f.parse().unwrap_or(1)),
        _ => (0, 1),
    };
    let mut out = Log::open(log.clone(), max_size, max_file);
    // SAFETY: isatty only inspects the descriptor.
    if unsafe { libc::isatty(3) } == 1 {
        // `run -dt`: fd 3 is the master of the container's pty (fd 4 is unused), fd 5 the
        // attach socket in the container's directory, which we remove by a relative name.
        // SAFETY: closing our own unused descriptor.
        unsafe { libc::close(4) };
        let dir = std::path::Path::new(log)
            .parent()
            .unwrap_or(std::path::Path::new("/"));
        if let Err(e) = std::env::set_current_dir(dir) {
            eprintln!("hako-monitor: chdir {}: {e}", dir.display());
        }
        let clients = pump_tty(&mut out, std::path::Path::new("attach.sock"));
        let code = reap_all(init);
        // An attach that is still connected (`run -it` is one) learns the exit status here,
        // before `container-finish` may remove the container with `--rm`.
        let msg = format!("x{code}");
        let mut sink = [0u8; 512];
        for c in clients {
            // SAFETY: on a client socket we own: send our own buffer; drain what it sent us
            // (closing with unread messages would reset the connection and drop ours); close.
            unsafe {
                libc::send(c, msg.as_ptr().cast(), msg.len(), libc::MSG_NOSIGNAL);
                while libc::recv(c, sink.as_mut_ptr().cast(), sink.len(), libc::MSG_DONTWAIT) > 0 {}
                libc::close(c);
            }
        }
        finish(code, exit_file, hako, root, id, &args[2]);
    } else {
        pump(&mut out);
    }
    let code = reap_all(init);
    finish(code, exit_file, hako, root, id, &args[2]);
}

/// Records `code` in EXIT_FILE and execs `hako container-finish`.
fn finish(code: i32, exit_file: &str, hako: &str, root: &str, id: &str, init: &str) -> ! {
    let finished = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let tmp = format!("{exit_file}.tmp");
    if std::fs::write(&tmp, format!("{code} {finished}\n")).is_ok() {
        let _ = std::fs::rename(&tmp, exit_file);
    }
    let err = std::process::Command::new(hako)
        .args(["--root", root, "container-finish", id, init])
        .exec();
    eprintln!("hako-monitor: exec {hako}: {err}");
    std::process::exit(1);
}

/// Copies fd 3 (stdout) and fd 4 (stderr) into the log until both are closed.
fn pump(out: &mut Log) {
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
    let mut partial: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
    let mut buf = IdleBuf::new(64 * 1024);
    while fds.iter().any(|f| f.fd >= 0) {
        // SAFETY: `fds` is a valid array of two pollfd structures.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
        if n < 0 {
            if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return;
        }
        for (i, f) in fds.iter_mut().enumerate() {
            if f.fd < 0 || f.revents == 0 {
                continue;
            }
            // SAFETY: reading into our own buffer from a descriptor we own.
            let r = unsafe { libc::read(f.fd, buf.as_mut_ptr().cast(), buf.len()) };
            if r <= 0 {
                if r < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                // SAFETY: closing our own descriptor once.
                unsafe { libc::close(f.fd) };
                f.fd = -1;
                if !partial[i].is_empty() {
                    let rest = std::mem::take(&mut partial[i]);
                    write_line(out, i, &rest);
                }
                continue;
            }
            partial[i].extend_from_slice(&buf[..r as usize]);
            while let Some(pos) = partial[i].iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = partial[i].drain(..=pos).collect();
                write_line(out, i, &line);
            }
            // Docker splits very long lines too, so a line without newline cannot grow forever.
            if partial[i].len() >= 16 * 1024 {
                let chunk = std::mem::take(&mut partial[i]);
                write_line(out, i, &chunk);
            }
        }
    }
}

/// `run -dt`: copies the pty's output into the log (as stdout, like docker) and to every
/// `hako attach` connected to SOCK, and their input and window sizes to the pty, until the
/// container closes its terminal; returns the attaches still connected. SOCK is a
/// SOCK_SEQPACKET socket, so every message arrives whole. From an attach: `i` + bytes typed,
/// or `w` + rows and columns (u16, LE). To it: `o` + output, and at the end `x` + the exit
/// status in decimal.
fn pump_tty(out: &mut Log, sock: &std::path::Path) -> Vec<i32> {
    // The spawning process bound and listens on SOCK, as fd 5, so the socket exists by the
    // time `run` returns.
    let listener = 5;
    let mut clients: Vec<i32> = Vec::new();
    if std::env::var_os("HAKO_MONITOR_WAIT_ATTACH").is_some() {
        // `run -it`: its attach is on the way. Until it connects the terminal is not read, so
        // neither output nor the exit can pass it by; a `hako` that died before connecting
        // only costs this wait.
        let mut p = libc::pollfd {
            fd: listener,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd; then accept4 on our own listening socket.
        unsafe {
            if libc::poll(&mut p, 1, 10_000) == 1 {
                let c = libc::accept4(
                    listener,
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                    libc::SOCK_CLOEXEC,
                );
                if c >= 0 {
                    clients.push(c);
                }
            }
        }
    }
    let mut partial = Vec::new();
    let mut buf = IdleBuf::new(64 * 1024);
    loop {
        let mut fds: Vec<libc::pollfd> = [3, listener]
            .iter()
            .chain(clients.iter())
            .map(|&fd| libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        // SAFETY: `fds` is a valid array of pollfds for the duration of the call.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
        if n < 0 {
            if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            break;
        }
        if fds[0].revents != 0 {
            buf[0] = b'o';
            // SAFETY: reading into our own buffer, after the message type, from our master.
            let r = unsafe { libc::read(3, buf[1..].as_mut_ptr().cast(), buf.len() - 1) };
            if r <= 0 {
                if r < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                // EIO: every slave descriptor is closed, the container is gone.
                break;
            }
            let data = &buf[1..=r as usize];
            clients.retain(|&c| {
                // SAFETY: sending our own buffer on a socket we own; a client that cannot keep
                // up or has gone is dropped rather than allowed to stall the container.
                let sent = unsafe {
                    libc::send(
                        c,
                        buf.as_ptr().cast(),
                        data.len() + 1,
                        libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
                    )
                };
                if sent < 0 {
                    // SAFETY: closing the client's descriptor once, as we forget it.
                    unsafe { libc::close(c) };
                }
                sent >= 0
            });
            partial.extend_from_slice(data);
            while let Some(pos) = partial.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = partial.drain(..=pos).collect();
                write_line(out, 0, &line);
            }
            if partial.len() >= 16 * 1024 {
                let chunk = std::mem::take(&mut partial);
                write_line(out, 0, &chunk);
            }
        }
        if fds[1].revents != 0 {
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
                clients.push(c);
            }
        }
        let mut gone = Vec::new();
        for f in fds.iter().skip(2).filter(|f| f.revents != 0) {
            // SAFETY: receiving into our own buffer from a client socket we own.
            let r = unsafe { libc::recv(f.fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
            if r <= 0 {
                gone.push(f.fd);
                continue;
            }
            let msg = &buf[..r as usize];
            match msg.first() {
                Some(b'i') => write_all(3, &msg[1..]),
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
        }
        for c in gone {
            clients.retain(|&x| x != c);
            // SAFETY: closing the departed client's descriptor once.
            unsafe { libc::close(c) };
        }
    }
    if !partial.is_empty() {
        write_line(out, 0, &partial);
    }
    let _ = std::fs::remove_file(sock);
    // SAFETY: closing our own descriptors.
    unsafe {
        libc::close(listener);
        libc::close(3);
    }
    clients
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

fn write_all(fd: i32, mut data: &[u8]) {
    while !data.is_empty() {
        // SAFETY: writing from our own buffer to a descriptor we hold.
        let w = unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) };
        if w <= 0 {
            if w < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return;
        }
        data = &data[w as usize..];
    }
}

/// The json-file log with Docker's `--log-opt max-size/max-file` rotation: when the file would
/// exceed `max_size`, it becomes LOG.1 (older ones shift up, the oldest beyond `max_file` goes).
struct Log {
    file: Option<File>,
    path: String,
    written: u64,
    max_size: u64,
    max_file: u32,
}

impl Log {
    fn open(path: String, max_size: u64, max_file: u32) -> Log {
        let file = match OpenOptions::new().create(true).append(true).open(&path) {
            Ok(f) => Some(f),
            Err(e) => {
                eprintln!("hako-monitor: open {path}: {e}");
                None
            }
        };
        let written = file
            .as_ref()
            .and_then(|f| f.metadata().ok())
            .map_or(0, |m| m.len());
        Log {
            file,
            path,
            written,
            max_size,
            max_file: max_file.max(1),
        }
    }

    fn write(&mut self, data: &[u8]) {
        if self.max_size > 0 && self.written > 0 && self.written + data.len() as u64 > self.max_size
        {
            self.rotate();
        }
        if let Some(f) = &mut self.file {
            if f.write_all(data).is_ok() {
                self.written += data.len() as u64;
            }
        }
    }

    fn rotate(&mut self) {
        self.file = None;
        if self.max_file > 1 {
            for i in (1..self.max_file - 1).rev() {
                let _ = std::fs::rename(
                    format!("{}.{i}", self.path),
                    format!("{}.{}", self.path, i + 1),
                );
            }
            let _ = std::fs::rename(&self.path, format!("{}.1", self.path));
        }
        self.file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&self.path)
            .ok();
        self.written = 0;
    }
}

fn write_line(out: &mut Log, stream: usize, line: &[u8]) {
    let mut s = String::with_capacity(line.len() + 80);
    s.push_str("{\"log\":\"");
    for c in String::from_utf8_lossy(line).chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            '\n' => s.push_str("\\n"),
            '\r' => s.push_str("\\r"),
            '\t' => s.push_str("\\t"),
            c if (c as u32) < 0x20 => s.push_str(&format!("\\u{:04x}", c as u32)),
            c => s.push(c),
        }
    }
    s.push_str("\",\"stream\":\"");
    s.push_str(if stream == 0 { "stdout" } else { "stderr" });
    s.push_str("\",\"time\":\"");
    s.push_str(&rfc3339_now());
    s.push_str("\"}\n");
    out.write(s.as_bytes());
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

fn rfc3339_now() -> String {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = d.as_secs() as i64;
    let days = secs.div_euclid(86400);
    let rem = secs.rem_euclid(86400);
    // Civil date from days since the epoch (Howard Hinnant's algorithm). A copy of
    // hako_engine::civil: this binary stays std-only to keep its memory small.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + if month <= 2 { 1 } else { 0 };
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_nanos()
    )
}
