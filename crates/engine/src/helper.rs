//! Container work for multi-threaded callers (the API server): starting a container, exec,
//! `cp` and `export` fork, clone namespaces or mount in a private mount namespace, which needs a
//! single-threaded process with a known signal mask. These methods run that work in a fresh
//! `hako` process instead (spawned with `posix_spawn`, safe from any thread), doing what the
//! same `hako` command does; the caller passes the streams as file descriptors, never this
//! process's own stdio. What can be checked in-process is checked first, so a missing or
//! stopped container keeps its error kind.
//!
//! The CLI, single-threaded, keeps calling the in-process methods (`start`, `exec`, ...), which
//! are faster by one process start.

use crate::exec::ExecOptions;
use crate::{Engine, Error, Result};
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// The streams of a spawned command: `None` is `/dev/null`.
#[derive(Debug, Default)]
pub struct Streams {
    /// Its standard input.
    pub stdin: Option<OwnedFd>,
    /// Its standard output.
    pub stdout: Option<OwnedFd>,
    /// Its standard error.
    pub stderr: Option<OwnedFd>,
}

fn stdio(fd: Option<OwnedFd>) -> Stdio {
    fd.map(Stdio::from).unwrap_or_else(Stdio::null)
}

/// The `hako` binary the work runs in: `HAKO_BINARY` when set (tests, or a service installed
/// apart from it), else this process when it is `hako`, else `hako` next to it.
fn helper_binary() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("HAKO_BINARY") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe().map_err(|e| Error::io("locate the hako binary", e))?;
    let hako = exe.with_file_name("hako");
    if !hako.is_file() {
        return Err(Error::Invalid(format!(
            "{} is missing: it must be installed next to {}",
            hako.display(),
            exe.display()
        )));
    }
    Ok(hako)
}

/// A failed helper's error: its last line on stderr, without the `hako: ` prefix.
fn failure(what: &str, status: std::process::ExitStatus, stderr: &[u8]) -> Error {
    let text = String::from_utf8_lossy(stderr);
    let line = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    let line = line.strip_prefix("hako: ").unwrap_or(line).trim();
    if line.is_empty() {
        Error::Invalid(format!("{what} failed ({status})"))
    } else {
        Error::Invalid(line.to_string())
    }
}

impl Engine {
    fn helper(&self) -> Result<Command> {
        let mut c = Command::new(helper_binary()?);
        c.arg("--root")
            .arg(&self.root)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        Ok(c)
    }

    /// Runs `cmd` to its end; its stderr is the error if it fails.
    fn run_helper(&self, what: &str, mut cmd: Command) -> Result<()> {
        let out = cmd
            .output()
            .map_err(|e| Error::io(format!("run hako {what}"), e))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(failure(what, out.status, &out.stderr))
        }
    }

    /// `docker start` from any thread: the container starts detached under its monitor, as
    /// [`Engine::start`] starts it. Returns its ID.
    pub fn start_spawned(&self, key: &str) -> Result<String> {
        let c = self.find(key)?;
        let mut cmd = self.helper()?;
        cmd.args(["start", &c.id]);
        self.run_helper("start", cmd)?;
        Ok(c.id)
    }

    /// `docker exec` from any thread, with the caller's streams; returns the command's exit
    /// status (0 once it runs, with `detach`). As with Docker's API, an exec that cannot start
    /// (a missing command: 127) says so on the caller's stderr. Terminals are not offered
    /// here yet: the relay and resizing of an exec's pty live in the CLI's process.
    pub fn exec_spawned(&self, key: &str, opts: &ExecOptions, streams: Streams) -> Result<i32> {
        if opts.cmd.is_empty() {
            return Err(Error::Invalid("exec needs a command to run".into()));
        }
        if opts.tty {
            return Err(Error::Invalid(
                "exec with a terminal is not available to multi-threaded callers yet".into(),
            ));
        }
        let c = self.find(key)?;
        if self.live_pid(&c.id)?.is_none() {
            return Err(Error::NotRunning(c.id));
        }
        let mut cmd = self.helper()?;
        cmd.arg("exec");
        for (set, flag) in [
            (opts.interactive, "-i"),
            (opts.detach, "-d"),
            (opts.privileged, "--privileged"),
        ] {
            if set {
                cmd.arg(flag);
            }
        }
        if let Some(u) = &opts.user {
            cmd.args(["-u", u]);
        }
        if let Some(w) = &opts.workdir {
            cmd.args(["-w", w]);
        }
        for e in &opts.env {
            // `-e NAME` would take NAME from the helper's environment, which is not the
            // caller's request: only NAME=VALUE is passed on.
            if !e.contains('=') {
                return Err(Error::Invalid(format!(
                    "exec environment {e:?}: expected NAME=VALUE"
                )));
            }
            cmd.args(["-e", e]);
        }
        cmd.arg(&c.id).args(&opts.cmd);
        cmd.stdin(stdio(streams.stdin))
            .stdout(stdio(streams.stdout))
            .stderr(stdio(streams.stderr));
        let status = cmd.status().map_err(|e| Error::io("run hako exec", e))?;
        Ok(status.code().unwrap_or(128 + 9))
    }

    /// `docker cp CONTAINER:PATH -` from any thread: a tar archive of `path` written to `out`.
    pub fn copy_from_spawned(&self, key: &str, path: &str, out: OwnedFd) -> Result<()> {
        let c = self.find(key)?;
        let mut cmd = self.helper()?;
        cmd.args(["cp", &format!("{}:{path}", c.id), "-"])
            .stdout(Stdio::from(out));
        self.run_helper("cp", cmd)
    }

    /// `docker cp - CONTAINER:PATH` from any thread: the tar archive read from `input` is
    /// extracted at `path`.
    pub fn copy_to_spawned(&self, key: &str, path: &str, input: OwnedFd) -> Result<()> {
        let c = self.find(key)?;
        let mut cmd = self.helper()?;
        cmd.args(["cp", "-", &format!("{}:{path}", c.id)])
            .stdin(Stdio::from(input));
        self.run_helper("cp", cmd)
    }

    /// `docker export` from any thread: the container's filesystem as a tar archive on `out`.
    pub fn export_spawned(&self, key: &str, out: OwnedFd) -> Result<()> {
        let c = self.find(key)?;
        let mut cmd = self.helper()?;
        cmd.args(["export", &c.id]).stdout(Stdio::from(out));
        self.run_helper("export", cmd)
    }
}
