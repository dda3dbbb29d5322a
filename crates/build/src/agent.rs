//! `RUN --mount=type=ssh`: a relay that forwards an ssh-agent socket into a step.
//!
//! The step cannot be given the host's agent socket itself: its mode and owner are the host
//! user's, while the mount asks for its own (`mode=0600,uid=0,gid=0` by default, as BuildKit).
//! So the builder listens on a socket of its own, with the mount's mode and owner, in the
//! step's scratch directory, and a forked relay process copies every connection to and from
//! the agent. A thread would not do: the runtime needs a single-threaded process to create the
//! step's container, and the relay must run while the step does.

use crate::Error;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

/// A running relay: the socket the step's mount shows, and the relay process. Dropping it stops
/// the relay (by its pid) and waits for it.
pub struct AgentRelay {
    /// The listening socket (a path in the step's scratch directory).
    pub socket: PathBuf,
    pid: nix::unistd::Pid,
}

impl AgentRelay {
    /// Listens on `dir/agent.sock` (given `mode` and `owner`) and starts the relay to `agent`.
    ///
    /// The process must be single-threaded, as it must be for the runtime to start the step.
    pub fn start(
        dir: &Path,
        agent: &Path,
        mode: u32,
        owner: (u32, u32),
    ) -> Result<AgentRelay, Error> {
        use std::os::unix::fs::PermissionsExt;
        let socket = dir.join("agent.sock");
        let listener = UnixListener::bind(&socket)
            .map_err(Error::io(format!("listen on {}", socket.display())))?;
        std::os::unix::fs::chown(&socket, Some(owner.0), Some(owner.1))
            .map_err(Error::io("set the agent socket's owner"))?;
        std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(mode))
            .map_err(Error::io("set the agent socket's mode"))?;
        let parent = nix::unistd::getpid();
        // SAFETY: the build process is single-threaded whenever a step starts (the runtime's
        // clone of the step's container requires it too), so the child is a full copy that may
        // allocate and start threads of its own. It leaves through `_exit` only.
        match unsafe { nix::unistd::fork() } {
            Err(e) => Err(Error::io("fork the ssh-agent relay")(e.into())),
            Ok(nix::unistd::ForkResult::Parent { child }) => Ok(AgentRelay { socket, pid: child }),
            Ok(nix::unistd::ForkResult::Child) => {
                serve(listener, agent, parent);
                // SAFETY: ends the relay without running the build's destructors (its database
                // connection, temporary directories) in this copy of the process.
                unsafe { libc::_exit(0) }
            }
        }
    }
}

impl Drop for AgentRelay {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(self.pid, nix::sys::signal::Signal::SIGKILL);
        while let Err(nix::errno::Errno::EINTR) = nix::sys::wait::waitpid(self.pid, None) {}
    }
}

/// The relay's main loop: one pair of copying threads per connection.
fn serve(listener: UnixListener, agent: &Path, parent: nix::unistd::Pid) {
    // Dies with the build, whatever kills it.
    let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL);
    if nix::unistd::getppid() != parent {
        return;
    }
    // hako restores SIGPIPE's default action; a client that hangs up must not end the relay.
    // SAFETY: setting a signal's disposition to "ignore" has no handler to be unsafe about.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    if let Ok(null) = std::fs::File::open("/dev/null") {
        let _ = nix::unistd::dup2_stdin(&null);
        let _ = nix::unistd::dup2_stdout(&null);
    }
    for conn in listener.incoming() {
        let Ok(client) = conn else { continue };
        let agent = agent.to_path_buf();
        std::thread::spawn(move || relay(client, &agent));
    }
}

/// Copies one connection both ways until either side is done.
fn relay(client: UnixStream, agent: &Path) {
    let Ok(upstream) = UnixStream::connect(agent) else {
        return;
    };
    let (Ok(mut client_r), Ok(mut upstream_r)) = (client.try_clone(), upstream.try_clone()) else {
        return;
    };
    let mut upstream_w = upstream;
    let to_agent = std::thread::spawn(move || {
        let _ = std::io::copy(&mut client_r, &mut upstream_w);
        let _ = upstream_w.shutdown(std::net::Shutdown::Write);
    });
    let mut client_w = client;
    let _ = std::io::copy(&mut upstream_r, &mut client_w);
    let _ = client_w.shutdown(std::net::Shutdown::Write);
    let _ = to_agent.join();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn relays_both_ways_with_the_mounts_mode() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        // A stand-in agent that answers each request with its reverse.
        let agent_path = dir.path().join("upstream.sock");
        let agent = UnixListener::bind(&agent_path).unwrap();
        let scratch = tempfile::tempdir().unwrap();
        let relay = AgentRelay::start(scratch.path(), &agent_path, 0o640, (0, 0)).unwrap();
        let m = std::fs::metadata(&relay.socket).unwrap();
        assert_eq!(m.mode() & 0o7777, 0o640);
        let server = std::thread::spawn(move || {
            let (mut c, _) = agent.accept().unwrap();
            let mut req = Vec::new();
            c.read_to_end(&mut req).unwrap();
            req.reverse();
            c.write_all(&req).unwrap();
        });
        let mut c = UnixStream::connect(&relay.socket).unwrap();
        c.write_all(b"abc").unwrap();
        c.shutdown(std::net::Shutdown::Write).unwrap();
        let mut reply = String::new();
        c.read_to_string(&mut reply).unwrap();
        assert_eq!(reply, "cba");
        server.join().unwrap();
        let sock = relay.socket.clone();
        drop(relay);
        // The relay is gone: nothing accepts on its socket any more.
        assert!(UnixStream::connect(&sock).is_err());
    }
}
