//! Which namespaces a container's network lives in.

use std::fs::File;
use std::os::fd::OwnedFd;
use std::path::PathBuf;

use crate::{Error, Result};

/// A container's user and network namespaces, as the engine knows them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Target {
    /// The user namespace owning the network namespace (the invoking user's own).
    pub user: PathBuf,
    /// The network namespace.
    pub net: PathBuf,
    /// A process that keeps the namespaces alive (the container's init): the forwarder
    /// exits when it does.
    pub holder: Option<i32>,
}

impl Target {
    /// The namespaces of a running process, which also bounds the forwarder's life.
    pub fn pid(pid: i32) -> Target {
        Target {
            user: format!("/proc/{pid}/ns/user").into(),
            net: format!("/proc/{pid}/ns/net").into(),
            holder: Some(pid),
        }
    }

    /// Namespace files (e.g. bind mounts of them); the forwarder's life is then bounded by its
    /// exit fd alone.
    pub fn paths(user: impl Into<PathBuf>, net: impl Into<PathBuf>) -> Target {
        Target {
            user: user.into(),
            net: net.into(),
            holder: None,
        }
    }

    pub(crate) fn open(&self) -> Result<(OwnedFd, OwnedFd)> {
        let open = |p: &PathBuf, what: &str| -> Result<OwnedFd> {
            File::open(p)
                .map(OwnedFd::from)
                .map_err(|e| match e.kind() {
                    std::io::ErrorKind::NotFound => Error::Unavailable(format!(
                        "the container's {what} namespace {} does not exist (has it exited?)",
                        p.display()
                    )),
                    _ => Error::io(format!("open {}", p.display()), e),
                })
        };
        Ok((open(&self.user, "user")?, open(&self.net, "network")?))
    }
}
