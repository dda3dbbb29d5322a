//! `/containers/{id}/exec`, `/exec/{id}/…`. An exec instance lives in the service's memory
//! from its create to the end of the service, as dockerd keeps it; its start runs
//! `hako exec` (which forks into the container's namespaces) as a child process whose stdio
//! is the hijacked connection: pipes, framed, without a terminal; a pseudo-terminal made
//! here with one.

use super::{json, no_content, Body, Req};
use crate::error::ApiError;
use crate::hijack;
use hako_docker::api::StdStream;
use hyper::{Response, StatusCode};
use serde::Deserialize;
use serde_json::json as j;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// An exec instance.
pub(crate) struct ExecEntry {
    pub(crate) id: String,
    pub(crate) container: String,
    config: ExecConfig,
    run: Mutex<ExecRun>,
}

#[derive(Default)]
struct ExecRun {
    running: bool,
    started: bool,
    exit_code: Option<i32>,
    pid: Option<u32>,
    /// The terminal's master, for resizes.
    pty: Option<Arc<OwnedFd>>,
}

#[derive(Debug, Default, Deserialize, Clone)]
#[serde(rename_all = "PascalCase", default)]
struct ExecConfig {
    attach_stdin: bool,
    attach_stdout: bool,
    attach_stderr: bool,
    tty: bool,
    cmd: Vec<String>,
    env: Option<Vec<String>>,
    user: String,
    working_dir: String,
    privileged: bool,
    detach_keys: String,
    console_size: Option<Vec<u16>>,
}

/// `POST /containers/{id}/exec`.
pub(super) async fn create(mut req: Req, id: String) -> Result<Response<Body>, ApiError> {
    let cfg: ExecConfig = req
        .json()
        .await?
        .ok_or_else(|| ApiError::bad_request("missing exec configuration"))?;
    if cfg.cmd.is_empty() {
        return Err(ApiError::bad_request("No exec command specified"));
    }
    let cid = id.clone();
    let c = req.state.backend.engine(move |e| Ok(e.find(&cid)?)).await?;
    if c.state != hako_engine::State::Running {
        return Err(ApiError::conflict(format!(
            "Container {} is not running",
            c.id
        )));
    }
    let exec_id = random_id()?;
    let entry = Arc::new(ExecEntry {
        id: exec_id.clone(),
        container: c.id,
        config: cfg,
        run: Mutex::new(ExecRun::default()),
    });
    let mut execs = req.state.backend.execs.lock().expect("exec lock");
    // Finished instances a client never inspected would pile up in a long-running service.
    if execs.len() > 1000 {
        execs.retain(|_, e| {
            let r = e.run.lock().expect("exec run lock");
            r.running || !r.started
        });
    }
    execs.insert(exec_id.clone(), entry);
    Ok(json(StatusCode::CREATED, &j!({"Id": exec_id})))
}

fn random_id() -> Result<String, ApiError> {
    let mut b = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b))
        .map_err(|e| ApiError::internal(format!("read /dev/urandom: {e}")))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

fn entry(req: &Req, id: &str) -> Result<Arc<ExecEntry>, ApiError> {
    req.state
        .backend
        .execs
        .lock()
        .expect("exec lock")
        .get(id)
        .cloned()
        .ok_or_else(|| ApiError::not_found(format!("No such exec instance: {id}")))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct StartBody {
    detach: bool,
    tty: Option<bool>,
}

fn exec_args(e: &ExecEntry, tty: bool, detach: bool) -> Vec<String> {
    let c = &e.config;
    let mut a = vec!["exec".to_string()];
    if detach {
        a.push("-d".into());
    }
    if c.attach_stdin {
        a.push("-i".into());
    }
    if tty {
        a.push("-t".into());
    }
    if c.privileged {
        a.push("--privileged".into());
    }
    if !c.user.is_empty() {
        a.push(format!("--user={}", c.user));
    }
    if !c.working_dir.is_empty() {
        a.push(format!("--workdir={}", c.working_dir));
    }
    for kv in c.env.iter().flatten() {
        a.push(format!("--env={kv}"));
    }
    a.push(e.container.clone());
    a.extend(c.cmd.iter().cloned());
    a
}

/// A pseudo-terminal pair in raw mode (the exec's `hako` puts it in raw mode too, but input
/// could arrive before it does), of the given size.
fn open_pty(size: Option<(u16, u16)>) -> Result<(OwnedFd, OwnedFd), ApiError> {
    let ws = size.map(|(h, w)| nix::pty::Winsize {
        ws_row: h,
        ws_col: w,
        ws_xpixel: 0,
        ws_ypixel: 0,
    });
    let p = nix::pty::openpty(ws.as_ref(), None)
        .map_err(|e| ApiError::internal(format!("open a pseudo-terminal: {e}")))?;
    // openpty's descriptors are inheritable: other children spawned meanwhile must not hold
    // the terminal (its master reads the end only once nothing holds the slave).
    for fd in [&p.master, &p.slave] {
        nix::fcntl::fcntl(
            fd,
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
        )
        .map_err(|e| ApiError::internal(format!("fcntl: {e}")))?;
    }
    let mut t = nix::sys::termios::tcgetattr(&p.slave)
        .map_err(|e| ApiError::internal(format!("tcgetattr: {e}")))?;
    nix::sys::termios::cfmakeraw(&mut t);
    nix::sys::termios::tcsetattr(&p.slave, nix::sys::termios::SetArg::TCSANOW, &t)
        .map_err(|e| ApiError::internal(format!("tcsetattr: {e}")))?;
    Ok((p.master, p.slave))
}

fn set_size(master: &OwnedFd, h: u16, w: u16) {
    let ws = libc::winsize {
        ws_row: h,
        ws_col: w,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ with a valid winsize on a pty master we own.
    unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
}

/// `POST /exec/{id}/start`.
pub(super) async fn start(mut req: Req, id: String) -> Result<Response<Body>, ApiError> {
    let e = entry(&req, &id)?;
    let body: StartBody = req.json().await?.unwrap_or_default();
    let tty = body.tty.unwrap_or(e.config.tty);
    {
        let mut r = e.run.lock().expect("exec run lock");
        if r.started {
            return Err(ApiError::conflict(format!(
                "Exec {id} has already been started"
            )));
        }
        r.started = true;
        r.running = true;
    }
    let backend = &req.state.backend;
    if body.detach {
        let mut child = backend
            .cli_command(&exec_args(&e, false, true))
            .spawn()
            .map_err(|err| ApiError::internal(format!("start hako exec: {err}")))?;
        let out = child.wait().await;
        let mut r = e.run.lock().expect("exec run lock");
        r.running = false;
        r.exit_code = out.ok().and_then(|s| s.code());
        return Ok(no_content(StatusCode::OK));
    }
    let mut cmd = backend.cli_command(&exec_args(&e, tty, false));
    let mut master = None;
    if tty {
        let size = e
            .config
            .console_size
            .as_ref()
            .filter(|s| s.len() == 2 && s[0] > 0 && s[1] > 0)
            .map(|s| (s[0], s[1]));
        let (m, slave) = open_pty(size.or(Some((24, 80))))?;
        let dup = |f: &OwnedFd| {
            f.try_clone()
                .map_err(|err| ApiError::internal(format!("dup: {err}")))
        };
        cmd.stdin(dup(&slave)?).stdout(dup(&slave)?).stderr(slave);
        master = Some(Arc::new(m));
    } else {
        cmd.stdin(if e.config.attach_stdin {
            std::process::Stdio::piped()
        } else {
            std::process::Stdio::null()
        })
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    }
    let mut child = cmd
        .spawn()
        .map_err(|err| ApiError::internal(format!("start hako exec: {err}")))?;
    drop(cmd);
    {
        let mut r = e.run.lock().expect("exec run lock");
        r.pid = child.id();
        r.pty = master.clone();
    }
    let ct = if tty {
        "application/vnd.docker.raw-stream"
    } else {
        "application/vnd.docker.multiplexed-stream"
    };
    let rx = req.conn.hijack(req.wants_upgrade(), ct);
    let state = req.state.clone();
    let want_out = e.config.attach_stdout;
    let want_err = e.config.attach_stderr;
    tokio::spawn(async move {
        let _busy = state.backend.mark_busy();
        let conn = rx.await.ok();
        let code = match (conn, master) {
            (None, _) => {
                let _ = child.kill().await;
                None
            }
            (Some(conn), Some(master)) => {
                let (mut cin, mut cout) = conn.split();
                let m = match master.try_clone().and_then(Pty::new) {
                    Ok(m) => std::sync::Arc::new(m),
                    Err(_) => {
                        let _ = child.kill().await;
                        return;
                    }
                };
                let mw = m.clone();
                let input = tokio::spawn(async move {
                    let mut buf = vec![0u8; 32 * 1024];
                    loop {
                        match cin.read(&mut buf).await {
                            Ok(0) | Err(_) => {
                                // End of input: an EOF character for the program on the
                                // terminal, as its user would type it.
                                let _ = mw.write_all(b"\x04").await;
                                return;
                            }
                            Ok(n) => {
                                if mw.write_all(&buf[..n]).await.is_err() {
                                    return;
                                }
                            }
                        }
                    }
                });
                let mut buf = vec![0u8; 64 * 1024];
                let mut client_gone = false;
                // The master reads EIO once the exec's `hako` has closed the terminal.
                while let Ok(n) = m.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    if cout.write_all(&buf[..n]).await.is_err() {
                        client_gone = true;
                        break;
                    }
                }
                input.abort();
                if client_gone {
                    let _ = child.kill().await;
                }
                let code = child.wait().await.ok().and_then(|s| s.code());
                // Recorded before the stream ends: the client inspects the exec for its
                // status as soon as it sees the end.
                record(&e, code);
                let _ = cout.shutdown().await;
                code
            }
            (Some(conn), None) => {
                let (mut cin, mut cout) = conn.split();
                let mut stdin = child.stdin.take();
                let so = child.stdout.take().expect("piped");
                let se = child.stderr.take().expect("piped");
                let (ftx, mut frx) = tokio::sync::mpsc::channel::<Vec<u8>>(16);
                let reader = |mut r: Box<dyn tokio::io::AsyncRead + Unpin + Send>,
                              stream: StdStream,
                              want: bool,
                              tx: tokio::sync::mpsc::Sender<Vec<u8>>| async move {
                    let mut buf = vec![0u8; 32 * 1024];
                    while let Ok(n) = r.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        if want
                            && tx
                                .send(super::containers_framed(false, stream, &buf[..n]))
                                .await
                                .is_err()
                        {
                            break;
                        }
                    }
                };
                tokio::spawn(reader(
                    Box::new(so),
                    StdStream::Stdout,
                    want_out,
                    ftx.clone(),
                ));
                tokio::spawn(reader(Box::new(se), StdStream::Stderr, want_err, ftx));
                let input = async {
                    let Some(w) = stdin.as_mut() else {
                        return std::future::pending::<()>().await;
                    };
                    let mut buf = vec![0u8; 32 * 1024];
                    loop {
                        match cin.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => {
                                if w.write_all(&buf[..n]).await.is_err() {
                                    break;
                                }
                            }
                        }
                    }
                    // The client's half-close is the command's end of input.
                    drop(stdin.take());
                    std::future::pending::<()>().await
                };
                let output = async {
                    while let Some(f) = frx.recv().await {
                        if cout.write_all(&f).await.is_err() {
                            return false;
                        }
                    }
                    true
                };
                let delivered = tokio::select! {
                    d = output => d,
                    _ = input => unreachable!("input never ends the exec"),
                };
                let code = if delivered {
                    child.wait().await.ok().and_then(|s| s.code())
                } else {
                    // The client went: the command goes with it.
                    let _ = child.kill().await;
                    None
                };
                record(&e, code);
                let _ = cout.shutdown().await;
                code
            }
        };
        let code = match code {
            Some(c) => Some(c),
            None => child.wait().await.ok().and_then(|s| s.code()),
        };
        record(&e, code);
    });
    Ok(hijack::placeholder())
}

/// The exec has ended with `code`.
fn record(e: &ExecEntry, code: Option<i32>) {
    let mut r = e.run.lock().expect("exec run lock");
    r.running = false;
    r.exit_code = code;
    r.pty = None;
}

/// A pseudo-terminal's master, non-blocking, read and written at once by two tasks.
struct Pty(tokio::io::unix::AsyncFd<OwnedFd>);

impl Pty {
    fn new(fd: OwnedFd) -> std::io::Result<Pty> {
        let flags = nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_GETFL)?;
        let flags = nix::fcntl::OFlag::from_bits_truncate(flags) | nix::fcntl::OFlag::O_NONBLOCK;
        nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_SETFL(flags))?;
        // SAFETY: the OwnedFd moves into the AsyncFd and stays open as long as it lives.
        unsafe { tokio::io::unix::AsyncFd::register(fd) }
            .map(Pty)
            .map_err(|e| std::io::Error::other(format!("register the terminal: {e}")))
    }

    /// Reads what the terminal's program wrote; an error (EIO) once nothing holds its slave.
    async fn read(&self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            let mut g = self.0.readable().await?;
            if let Ok(r) = g.try_io(|fd| nix::unistd::read(fd, buf).map_err(std::io::Error::from)) {
                return r;
            }
        }
    }

    async fn write_all(&self, mut data: &[u8]) -> std::io::Result<()> {
        while !data.is_empty() {
            let mut g = self.0.writable().await?;
            if let Ok(r) = g.try_io(|fd| nix::unistd::write(fd, data).map_err(std::io::Error::from))
            {
                data = &data[r?..];
            }
        }
        Ok(())
    }
}

/// `POST /exec/{id}/resize?h=&w=`.
pub(super) async fn resize(req: Req, id: String) -> Result<Response<Body>, ApiError> {
    let e = entry(&req, &id)?;
    let h: u16 = req.q_num("h")?.unwrap_or(0);
    let w: u16 = req.q_num("w")?.unwrap_or(0);
    let pty = e.run.lock().expect("exec run lock").pty.clone();
    match pty {
        Some(m) => {
            set_size(&m, h, w);
            Ok(no_content(StatusCode::OK))
        }
        None => Err(ApiError::conflict(format!(
            "exec {id} has no terminal to resize (not running, or started without Tty)"
        ))),
    }
}

/// `GET /exec/{id}/json`.
pub(super) async fn inspect(req: Req, id: String) -> Result<Response<Body>, ApiError> {
    let e = entry(&req, &id)?;
    let r = e.run.lock().expect("exec run lock");
    let c = &e.config;
    let (entrypoint, args) = c
        .cmd
        .split_first()
        .map(|(a, b)| (a.clone(), b.to_vec()))
        .unwrap_or_default();
    Ok(json(
        StatusCode::OK,
        &j!({
            "ID": e.id,
            "ContainerID": e.container,
            "Running": r.running,
            "ExitCode": r.exit_code,
            "Pid": r.pid.unwrap_or(0),
            "OpenStdin": c.attach_stdin,
            "OpenStdout": c.attach_stdout,
            "OpenStderr": c.attach_stderr,
            "CanRemove": false,
            "DetachKeys": c.detach_keys,
            "ProcessConfig": {
                "tty": c.tty,
                "entrypoint": entrypoint,
                "arguments": args,
                "privileged": c.privileged,
                "user": c.user,
            },
        }),
    ))
}
