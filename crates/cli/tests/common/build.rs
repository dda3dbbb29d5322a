//! Helpers of the `hako build` tests: contexts in /var/tmp and builds with a chosen environment.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::Root;

/// Writes `text` to `dir/name`, creating the directories on the way.
pub fn write(dir: &Path, name: &str, text: &str) {
    let p = dir.join(name);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(p, text).unwrap();
}

/// A fresh build context directory, removed on drop.
pub fn ctx() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("hako-build-ctx-")
        .tempdir_in("/var/tmp")
        .unwrap()
}

/// `hako build ARGS CTX` with extra environment variables (and the caller's SSH_AUTH_SOCK
/// removed unless `env` gives one), returning (code, stdout, stderr).
pub fn build_env(
    r: &Root,
    ctx: &Path,
    env: &[(&str, &str)],
    args: &[&str],
) -> (i32, String, String) {
    let mut a = vec!["build"];
    a.extend_from_slice(args);
    a.push(ctx.to_str().unwrap());
    let mut c = r.cmd(&a);
    c.env_remove("SSH_AUTH_SOCK");
    for (k, v) in env {
        c.env(k, v);
    }
    let o = c.output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Runs `git ARGS` in `dir` with a fixed identity, and checks that it succeeded.
pub fn git(dir: &Path, args: &[&str]) {
    let st = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
        .args(args)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success(), "git {args:?}");
}

/// `git daemon` runs `git-daemon` as a child of its own, which a kill of `git` would leave
/// serving forever: start the daemon binary itself, so its pid is the one stopped.
fn git_daemon() -> std::path::PathBuf {
    let out = Command::new("git").arg("--exec-path").output().unwrap();
    assert!(out.status.success(), "git --exec-path");
    Path::new(String::from_utf8_lossy(&out.stdout).trim()).join("git-daemon")
}

/// A `git daemon` serving `base` on a free port of 127.0.0.1, stopped by its pid when dropped.
pub struct GitDaemon {
    child: std::process::Child,
    pub port: u16,
}

impl GitDaemon {
    pub fn start(base: &Path) -> GitDaemon {
        for _ in 0..20 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let mut child = Command::new(git_daemon())
                .arg(format!("--base-path={}", base.display()))
                .args(["--export-all", "--reuseaddr", "--listen=127.0.0.1"])
                .arg(format!("--port={port}"))
                .arg(base)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let up = super::wait_for(5, || {
                std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
                    || child.try_wait().ok().flatten().is_some()
            });
            if up && child.try_wait().ok().flatten().is_none() {
                return GitDaemon { child, port };
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("git daemon did not start");
    }
}

impl Drop for GitDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An ssh-agent of the test's own, on a socket in a temporary directory, holding one key
/// whose comment is `comment`; stopped by its pid when dropped.
pub struct Agent {
    dir: tempfile::TempDir,
    pid: i32,
}

impl Agent {
    pub fn start(comment: &str) -> Option<Agent> {
        let dir = tempfile::Builder::new()
            .prefix("hako-agent-")
            .tempdir_in("/var/tmp")
            .unwrap();
        let sock = dir.path().join("agent.sock");
        let out = Command::new("ssh-agent")
            .args(["-s", "-a"])
            .arg(&sock)
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let pid: i32 = text
            .split("SSH_AGENT_PID=")
            .nth(1)?
            .split(';')
            .next()?
            .parse()
            .ok()?;
        let agent = Agent { dir, pid };
        let key = agent.dir.path().join("key");
        let made = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
            .arg(&key)
            .stdin(Stdio::null())
            .status()
            .ok()?;
        let added = Command::new("ssh-add")
            .arg(&key)
            .env("SSH_AUTH_SOCK", agent.socket())
            .stderr(Stdio::null())
            .status()
            .ok()?;
        (made.success() && added.success()).then_some(agent)
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("agent.sock")
    }

    /// The private key's file (not a socket).
    pub fn key(&self) -> PathBuf {
        self.dir.path().join("key")
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(self.pid.to_string()).status();
    }
}

/// A perl one-liner (perl-base is in every Debian image) that asks the agent at
/// $SSH_AUTH_SOCK for its identities and prints the answer's type, the key count, and
/// whether the key's comment came back.
pub const ASK_AGENT: &str = r#"perl -MIO::Socket::UNIX -e '$s = IO::Socket::UNIX->new(Peer => $ENV{SSH_AUTH_SOCK}) or die "connect: $!\n"; print $s pack("NC", 1, 11); read($s, $h, 5) == 5 or die "short answer\n"; ($l, $t) = unpack("NC", $h); read($s, $b, $l - 1); printf "agent answer %d, %d key(s), %s\n", $t, unpack("N", $b), ($b =~ /hako-e2e-key/ ? "comment ok" : "no comment")'"#;
