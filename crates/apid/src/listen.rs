//! Where the service listens: a unix socket (default `/run/hako/docker.sock`), a loopback TCP
//! port, or the sockets systemd passes (`LISTEN_FDS`, socket activation).

use crate::Error;
use std::net::SocketAddr;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

/// The default socket, where Docker's clients look when `DOCKER_HOST` says
/// `unix:///run/hako/docker.sock`.
pub const DEFAULT_SOCKET: &str = "/run/hako/docker.sock";

/// A listening address as Docker writes it (`DOCKER_HOST`, `dockerd -H`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `unix:///path`.
    Unix(PathBuf),
    /// `tcp://127.0.0.1:PORT`: loopback addresses only.
    Tcp(SocketAddr),
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Unix(p) => write!(f, "unix://{}", p.display()),
            Endpoint::Tcp(a) => write!(f, "tcp://{a}"),
        }
    }
}

impl Endpoint {
    /// Parses `unix:///PATH` or `tcp://HOST:PORT`.
    ///
    /// TCP is plain HTTP without authentication, and the API is root on this host to whoever
    /// reaches it, so only loopback addresses are served.
    pub fn parse(s: &str) -> Result<Endpoint, Error> {
        if let Some(path) = s.strip_prefix("unix://") {
            if !path.starts_with('/') {
                return Err(Error::Endpoint(format!(
                    "invalid endpoint {s:?}: a unix socket's path must be absolute (unix:///PATH)"
                )));
            }
            return Ok(Endpoint::Unix(PathBuf::from(path)));
        }
        if let Some(addr) = s.strip_prefix("tcp://") {
            let addr = addr.trim_end_matches('/');
            let parsed: SocketAddr = addr.parse().map_err(|_| {
                Error::Endpoint(format!(
                    "invalid endpoint {s:?}: expected tcp://ADDRESS:PORT with a numeric address"
                ))
            })?;
            if !parsed.ip().is_loopback() {
                return Err(Error::Endpoint(format!(
                    "refusing to serve the API on {addr}: it has no authentication and gives \
                     root on this host to anyone who reaches it; use a loopback address \
                     (tcp://127.0.0.1:PORT) or a unix socket"
                )));
            }
            return Ok(Endpoint::Tcp(parsed));
        }
        Err(Error::Endpoint(format!(
            "invalid endpoint {s:?}: expected unix:///PATH or tcp://127.0.0.1:PORT"
        )))
    }
}

/// A socket the service accepts connections on.
pub(crate) enum Listener {
    Unix(tokio::net::UnixListener),
    Tcp(tokio::net::TcpListener),
}

/// A listening socket before the runtime exists (tokio's listeners need one).
pub(crate) enum StdListener {
    Unix(std::os::unix::net::UnixListener),
    Tcp(std::net::TcpListener),
}

impl StdListener {
    pub(crate) fn into_tokio(self) -> std::io::Result<Listener> {
        Ok(match self {
            StdListener::Unix(l) => {
                l.set_nonblocking(true)?;
                Listener::Unix(tokio::net::UnixListener::from_std(l)?)
            }
            StdListener::Tcp(l) => {
                l.set_nonblocking(true)?;
                Listener::Tcp(tokio::net::TcpListener::from_std(l)?)
            }
        })
    }
}

/// The sockets systemd passed, if this process was socket-activated: `LISTEN_PID` names us and
/// `LISTEN_FDS` counts descriptors from 3 on. The variables are removed, so no child (a
/// helper) takes the sockets for its own. Called before anything else opens a descriptor (the
/// async runtime's epoll and event fds): a descriptor promised but not passed would otherwise
/// be one of those, taken and closed here under the runtime. Each is checked to be an open
/// socket before it is owned.
pub(crate) fn systemd_sockets() -> Result<Vec<StdListener>, Error> {
    let pid_ok = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
        .is_some_and(|p| p == std::process::id());
    let count = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|n| n.parse::<i32>().ok())
        .unwrap_or(0);
    for var in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
        std::env::remove_var(var);
    }
    if !pid_ok || count <= 0 {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for fd in 3..3 + count {
        // Not owned until it is known to be an open socket: dropping an owned descriptor
        // that was never open closes whatever gets that number next.
        let domain = nix::sys::socket::getsockname::<nix::sys::socket::SockaddrStorage>(fd)
            .map_err(|e| Error::Listen {
                what: format!("socket-activation descriptor {fd} (LISTEN_FDS={count})"),
                source: e.into(),
            })?;
        // SAFETY: systemd hands us descriptors 3..3+LISTEN_FDS, open (getsockname answered)
        // and owned by nothing else in this process.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        // systemd passes them inheritable; our helpers must not hold the service's sockets.
        // SAFETY: F_SETFD on a descriptor we now own.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
        out.push(if domain.as_unix_addr().is_some() {
            StdListener::Unix(owned.into())
        } else {
            StdListener::Tcp(owned.into())
        });
    }
    Ok(out)
}

/// Listens on `endpoint`. A unix socket's directory is made if missing; a socket file left by
/// a service that is gone is replaced, one that still answers is not.
pub(crate) async fn bind(endpoint: &Endpoint) -> Result<Listener, Error> {
    let what = endpoint.to_string();
    let err = |e: std::io::Error| Error::Listen {
        what: what.clone(),
        source: e,
    };
    match endpoint {
        Endpoint::Tcp(addr) => Ok(Listener::Tcp(
            tokio::net::TcpListener::bind(addr).await.map_err(err)?,
        )),
        Endpoint::Unix(path) => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(err)?;
            }
            if path.exists() {
                if tokio::net::UnixStream::connect(path).await.is_ok() {
                    return Err(Error::Endpoint(format!(
                        "{} is in use: another service answers on it",
                        path.display()
                    )));
                }
                std::fs::remove_file(path).map_err(err)?;
            }
            // Owner and group only: the API is root on this host.
            let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o117));
            let l = tokio::net::UnixListener::bind(path);
            nix::sys::stat::umask(old);
            Ok(Listener::Unix(l.map_err(err)?))
        }
    }
}

/// Removes the socket file the service made, when it stops (not one systemd owns).
pub(crate) fn unlink(endpoint: &Endpoint) {
    if let Endpoint::Unix(p) = endpoint {
        let _ = std::fs::remove_file(Path::new(p));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        assert_eq!(
            Endpoint::parse("unix:///run/hako/docker.sock").unwrap(),
            Endpoint::Unix("/run/hako/docker.sock".into())
        );
        assert_eq!(
            Endpoint::parse("tcp://127.0.0.1:2375").unwrap(),
            Endpoint::Tcp("127.0.0.1:2375".parse().unwrap())
        );
        assert!(Endpoint::parse("tcp://[::1]:2375").is_ok());
        let e = Endpoint::parse("tcp://0.0.0.0:2375")
            .unwrap_err()
            .to_string();
        assert!(e.contains("refusing") && e.contains("loopback"), "{e}");
        assert!(Endpoint::parse("unix://relative.sock").is_err());
        assert!(Endpoint::parse("tcp://localhost:2375").is_err());
        assert!(Endpoint::parse("/run/x.sock").is_err());
        assert_eq!(
            Endpoint::parse("unix:///a.sock").unwrap().to_string(),
            "unix:///a.sock"
        );
    }
}
