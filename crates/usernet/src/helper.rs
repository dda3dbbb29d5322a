//! The forwarder's process: what the engine runs in a re-executed helper for a rootless
//! container, outliving the `hako` command that started it.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::MetadataExt;

use crate::ports::check_unprivileged;
use crate::sys;
use crate::{
    unprivileged_port_start, Error, Forwarder, Publish, Result, Stack, StackConfig, Target,
};

/// What the helper does for one container.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HelperConfig {
    /// The container's namespaces.
    pub target: Target,
    /// The user-mode stack to start, if any (none when the engine runs one itself, or for
    /// a container on a rootless user network, whose stack is the shared namespace's).
    pub stack: Option<StackConfig>,
    /// Ports to publish.
    pub ports: Vec<Publish>,
    /// Where the ports lead inside the namespace; by default the stack's container address.
    pub container_ip: Option<IpAddr>,
}

impl HelperConfig {
    fn container_ip(&self) -> IpAddr {
        self.container_ip
            .unwrap_or_else(|| IpAddr::V4(self.stack.clone().unwrap_or_default().container_ip()))
    }
}

/// The helper's one line on its ready stream, once everything serves.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Ready {
    /// The stack's pid.
    pub stack_pid: Option<i32>,
    /// Each published port with the host address it is bound to.
    pub ports: Vec<(Publish, SocketAddr)>,
}

fn same_userns(user: &OwnedFd) -> Result<bool> {
    let theirs = std::fs::File::from(user.try_clone().map_err(|e| Error::io("dup", e))?)
        .metadata()
        .map_err(|e| Error::io("stat the container's user namespace", e))?;
    let ours = std::fs::metadata("/proc/self/ns/user")
        .map_err(|e| Error::io("stat our user namespace", e))?;
    Ok(theirs.ino() == ours.ino() && theirs.dev() == ours.dev())
}

/// Runs the stack and the forwarder for one container until the container's namespace holder
/// exits or `exit_fd` (whose other end the engine holds) reads end-of-file; writes one
/// [`Ready`] JSON line to `ready` when serving. Must be called while the process is
/// single-threaded: the kernel lets only such a process join a user namespace.
pub fn helper_main(
    cfg: &HelperConfig,
    exit_fd: Option<OwnedFd>,
    ready: &mut dyn Write,
) -> Result<()> {
    // Refusals first, before anything is started.
    let start = unprivileged_port_start();
    // Root of rootless hako's user namespace binds on the host as the ordinary user it is.
    let root = nix::unistd::geteuid().is_root() && !hako_base::userns::rootless();
    for p in &cfg.ports {
        check_unprivileged(p, start, root)?;
    }
    if cfg.target.holder.is_none() && exit_fd.is_none() {
        return Err(Error::Invalid(
            "the forwarder needs the container's pid or an exit fd, to know when to exit".into(),
        ));
    }
    let (user, net) = cfg.target.open()?;
    let holder = match cfg.target.holder {
        Some(pid) => Some(sys::pidfd_open(pid).map_err(|_| {
            Error::Unavailable(format!("the container's process {pid} has exited"))
        })?),
        None => None,
    };
    let stack = match &cfg.stack {
        Some(s) => Some(Stack::start(&cfg.target, s)?),
        None => None,
    };
    let fwd = Forwarder::bind(&cfg.ports)?;
    let ports = fwd.addresses();
    if !cfg.ports.is_empty() {
        if !same_userns(&user)? {
            nix::sched::setns(&user, nix::sched::CloneFlags::CLONE_NEWUSER).map_err(|e| {
                match e {
                    nix::Error::EINVAL => Error::Invalid(
                        "cannot join the container's user namespace: the process has threads already".into(),
                    ),
                    nix::Error::EPERM => Error::Invalid(
                        "cannot join the container's user namespace: it is not this user's".into(),
                    ),
                    e => Error::io("join the container's user namespace", e.into()),
                }
            })?;
        }
        fwd.serve(net, cfg.container_ip())?;
    }
    let line = serde_json::to_string(&Ready {
        stack_pid: stack.as_ref().map(Stack::pid),
        ports,
    })
    .map_err(|e| Error::io("encode the ready line", e.into()))?;
    writeln!(ready, "{line}")
        .and_then(|()| ready.flush())
        .map_err(|e| Error::io("write the ready line", e))?;
    let mut fds = Vec::new();
    if let Some(h) = &holder {
        fds.push(h.as_fd());
    }
    if let Some(e) = &exit_fd {
        fds.push(e.as_fd());
    }
    sys::wait_readable(&fds, None)?;
    match stack {
        Some(s) => s.stop(),
        None => Ok(()),
    }
}
