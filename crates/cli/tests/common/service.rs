//! `hako system service` on a private socket of a test root, and clients pointed at it.

use super::{hako_bin, Root};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A running service; stopped (SIGTERM, then waited for) when dropped.
pub struct Service {
    child: Child,
    pub socket: PathBuf,
    /// A private client configuration directory (DOCKER_CONFIG), so the host's is not read.
    pub config: tempfile::TempDir,
}

impl Service {
    pub fn start(root: &Root) -> Service {
        let socket = root.path().join("api.sock");
        let child = Command::new(hako_bin())
            .args(["system", "service", "--time", "0"])
            .arg(format!("unix://{}", socket.display()))
            .env("HAKO_ROOT", root.path())
            .stdin(Stdio::null())
            .spawn()
            .expect("start hako system service");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::os::unix::net::UnixStream::connect(&socket).is_err() {
            assert!(Instant::now() < deadline, "the service did not listen");
            std::thread::sleep(Duration::from_millis(5));
        }
        Service {
            child,
            socket,
            config: tempfile::tempdir().unwrap(),
        }
    }

    /// The service's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The CPU time the service has used so far (user + system), in milliseconds.
    pub fn cpu_ms(&self) -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap();
        // The fields after the command's parenthesis: utime and stime are the 12th and 13th.
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
        // SAFETY: sysconf only reads a configuration value.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
        ticks * 1000 / hz
    }

    pub fn host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// A client command (`docker`, `docker-compose`, python) aimed at this service.
    pub fn client(&self, bin: impl AsRef<Path>) -> Command {
        let mut c = Command::new(bin.as_ref());
        c.env("DOCKER_HOST", self.host())
            .env("DOCKER_CONFIG", self.config.path())
            .env_remove("DOCKER_API_VERSION")
            .env_remove("DOCKER_CONTEXT")
            .stdin(Stdio::null());
        c
    }

    /// Runs `bin args…`; returns (exit code, stdout, stderr).
    pub fn run(&self, bin: &str, args: &[&str]) -> (i32, String, String) {
        let out = self
            .client(bin)
            .args(args)
            .output()
            .expect("run the client");
        split(out)
    }

    /// Runs and asserts success; returns stdout.
    pub fn ok(&self, bin: &str, args: &[&str]) -> String {
        let (code, out, err) = self.run(bin, args);
        assert_eq!(code, 0, "{bin} {args:?} failed ({code}): {err}\n{out}");
        out
    }

    /// One raw HTTP/1.1 request on the socket; returns the status and body.
    pub fn request(&self, method: &str, path: &str, body: Option<&[u8]>) -> (u16, String) {
        request_on(&self.socket, method, path, body)
    }
}

/// One raw HTTP/1.1 request on the unix socket `socket` (the service's or dockerd's), with
/// `Connection: close`; returns the status and the body as sent (not de-chunked).
pub fn request_on(socket: &Path, method: &str, path: &str, body: Option<&[u8]>) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::os::unix::net::UnixStream::connect(socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: d\r\nConnection: close\r\n");
    if let Some(b) = body {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            b.len()
        ));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    if let Some(b) = body {
        // A service that answers early (a body too large) may close before all is sent.
        let _ = s.write_all(b);
    }
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|x| x.1)
        .unwrap_or("")
        .to_string();
    (status, body)
}

impl Drop for Service {
    fn drop(&mut self) {
        // SAFETY: signalling our own child, not yet reaped.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

pub fn split(out: Output) -> (i32, String, String) {
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Whether `bin` is on PATH.
pub fn have(bin: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {bin}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `c` socket-activated as systemd starts a service: `LISTEN_PID`/`LISTEN_FDS` are the
/// command's to set (`sh -c 'LISTEN_PID=$$ LISTEN_FDS=1 exec …'`); this puts `socket` on fd 3.
pub fn pass_as_fd3(c: &mut Command, socket: &std::os::unix::net::UnixListener) {
    use std::os::unix::process::CommandExt;
    let fd = std::os::fd::AsRawFd::as_raw_fd(socket);
    // SAFETY: dup2 and fcntl are async-signal-safe and touch only the child's descriptor
    // table; the copy on 3 is inheritable.
    unsafe {
        c.pre_exec(move || {
            // dup2 onto itself keeps close-on-exec: clear it instead.
            let r = if fd == 3 {
                libc::fcntl(3, libc::F_SETFD, 0)
            } else {
                libc::dup2(fd, 3)
            };
            if r < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}
