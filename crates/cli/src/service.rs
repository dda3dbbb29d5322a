//! `hako system service` (the Docker Engine API, see `hako_apid`) and `hako compose` (Debian's
//! `docker-compose` against a service of its own).

use crate::Failure;
use clap::Args;
use std::path::Path;
use std::time::{Duration, Instant};

#[derive(Args)]
pub struct ServiceArgs {
    /// Seconds without a connection after which the service exits (0: never)
    #[arg(short, long, default_value_t = 5)]
    time: u64,
    /// Where to listen: unix:///PATH or tcp://127.0.0.1:PORT (default unix:///run/hako/docker.sock;
    /// rootless, unix://$XDG_RUNTIME_DIR/hako/docker.sock)
    endpoint: Option<String>,
}

#[derive(Args)]
pub struct ComposeArgs {
    /// docker-compose's arguments
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<String>,
}

fn hako_exe() -> anyhow::Result<std::path::PathBuf> {
    std::env::current_exe().map_err(|e| anyhow::anyhow!("find the hako binary: {e}"))
}

pub fn service(root: &Path, a: ServiceArgs) -> Result<i32, Failure> {
    let endpoint = match a.endpoint.as_deref() {
        Some(e) => hako_apid::Endpoint::parse(e)?,
        // /run/hako is root's: an ordinary user's service listens in its own runtime
        // directory, as rootless Podman's and Docker's do.
        None if hako_engine::rootless::active() => hako_apid::Endpoint::Unix(
            hako_engine::rootless::Paths::current()?
                .runtime
                .join("docker.sock"),
        ),
        None => hako_apid::Endpoint::Unix(hako_apid::listen::DEFAULT_SOCKET.into()),
    };
    hako_apid::serve(hako_apid::ServiceOptions {
        root: root.to_path_buf(),
        endpoint,
        idle: (a.time > 0).then(|| Duration::from_secs(a.time)),
        hako: hako_exe()?,
        ready: None,
    })?;
    Ok(0)
}

/// Finds `name` on `PATH`.
fn which(name: &str) -> Option<std::path::PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p).map(|d| d.join(name)).find(|f| {
            f.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    })
}

/// Stops the private service when `compose` ends, however it ends.
struct ServiceChild(std::process::Child);

impl Drop for ServiceChild {
    fn drop(&mut self) {
        // SAFETY: signalling our own child, which we have not reaped yet.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let _ = self.0.wait();
    }
}

pub fn compose(root: &Path, a: ComposeArgs) -> Result<i32, Failure> {
    let Some(compose) = which("docker-compose") else {
        return Err(anyhow::anyhow!(
            "docker-compose is not installed: hako compose runs Debian's docker-compose \
             (install it with: apt-get install docker-compose)"
        )
        .into());
    };
    let dir = tempfile::Builder::new()
        .prefix("hako-compose-")
        .tempdir()
        .map_err(|e| anyhow::anyhow!("create a directory for the service's socket: {e}"))?;
    let sock = dir.path().join("docker.sock");
    let mut cmd = std::process::Command::new(hako_exe()?);
    // SAFETY: prctl is async-signal-safe; it runs in the child between fork and exec. This
    // process is single-threaded, so the parent death it watches is this process's.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
            // A `hako compose` killed outright takes its service along.
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd
        .arg("--root")
        .arg(root)
        .args(["system", "service", "--time", "0"])
        .arg(format!("unix://{}", sock.display()))
        .stdin(std::process::Stdio::null())
        .spawn()
        .map_err(|e| anyhow::anyhow!("start the API service: {e}"))?;
    let mut child = ServiceChild(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::os::unix::net::UnixStream::connect(&sock).is_err() {
        if let Some(status) = child.0.try_wait()? {
            return Err(anyhow::anyhow!(
                "the API service for compose exited at its start ({status})"
            )
            .into());
        }
        if Instant::now() > deadline {
            return Err(
                anyhow::anyhow!("the API service for compose did not start listening").into(),
            );
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let status = std::process::Command::new(compose)
        .args(&a.args)
        .env("DOCKER_HOST", format!("unix://{}", sock.display()))
        .status()
        .map_err(|e| anyhow::anyhow!("run docker-compose: {e}"))?;
    drop(child);
    use std::os::unix::process::ExitStatusExt;
    Ok(status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)))
}
