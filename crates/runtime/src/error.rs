use std::io;

/// Why the container's process could not be executed, in the classes Docker maps to exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecFailure {
    /// The command does not exist (Docker exit code 127).
    NotFound,
    /// The command exists but cannot be executed (Docker exit code 126).
    CannotExecute,
}

impl ExecFailure {
    /// The exit status Docker reports for this failure.
    pub fn exit_code(self) -> i32 {
        match self {
            ExecFailure::NotFound => 127,
            ExecFailure::CannotExecute => 126,
        }
    }
}

/// Errors from preparing, starting or waiting for a container process. Each message says its
/// cause itself; none is exposed again through `source()`, so no report prints one twice.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The OCI spec asks for something that is malformed or that hako cannot do.
    #[error("invalid runtime spec: {0}")]
    InvalidSpec(String),
    /// A host-side system call failed.
    #[error("{what}: {error}")]
    Sys {
        /// What was being done.
        what: String,
        /// The underlying OS error, said in the message (not exposed again as `source()`).
        error: io::Error,
    },
    /// Setting up the container inside its namespaces failed before the command could run.
    #[error("container setup failed: {0}")]
    Setup(String),
    /// The command could not be executed; the message is phrased like Docker's.
    #[error("{message}")]
    Exec {
        /// Exit-code class.
        kind: ExecFailure,
        /// Docker-style message, e.g. `exec: "foo": executable file not found in $PATH`.
        message: String,
    },
    /// `start` found no exec FIFO: the container was started already or never created.
    #[error("the container is not in the created state")]
    NotCreated,
    /// Putting the new process into its cgroup failed.
    #[error("cgroup: {0}")]
    Cgroup(hako_cgroups::Error),
    /// The user namespace of a rootless container cannot be set up as asked.
    #[error("{0}")]
    Rootless(crate::rootless::RootlessError),
}

impl From<crate::rootless::RootlessError> for Error {
    fn from(e: crate::rootless::RootlessError) -> Self {
        Error::Rootless(e)
    }
}

impl From<hako_cgroups::Error> for Error {
    fn from(e: hako_cgroups::Error) -> Self {
        Error::Cgroup(e)
    }
}

impl Error {
    pub(crate) fn sys(what: impl Into<String>, error: impl Into<io::Error>) -> Self {
        Error::Sys {
            what: what.into(),
            error: error.into(),
        }
    }

    /// The class of this error. A command that cannot be executed is the request's fault, as
    /// dockerd answers it (400); the CLI tells 126 from 127 by [`Error::exit_code`].
    pub fn kind(&self) -> hako_base::ErrorKind {
        use hako_base::ErrorKind as K;
        match self {
            Error::InvalidSpec(_) | Error::Exec { .. } => K::Invalid,
            Error::NotCreated => K::Conflict,
            Error::Cgroup(e) => e.kind(),
            Error::Rootless(e) => e.kind(),
            Error::Sys { .. } | Error::Setup(_) => K::Internal,
        }
    }

    /// The exit status `hako run` should report for this error (Docker's convention).
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Exec { kind, .. } => kind.exit_code(),
            _ => 125,
        }
    }
}

impl From<nix::Error> for Error {
    fn from(e: nix::Error) -> Self {
        Error::sys("system call failed", e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hako_base::ErrorKind as K;

    #[test]
    fn kinds_and_causes_said_once() {
        let e = Error::sys("open /x", io::Error::from_raw_os_error(libc::EACCES));
        assert_eq!(e.kind(), K::Internal);
        assert_eq!(e.to_string(), "open /x: Permission denied (os error 13)");
        assert!(std::error::Error::source(&e).is_none());
        let cg = Error::from(hako_cgroups::Error::Read {
            path: "/sys/fs/cgroup/x".into(),
            error: io::Error::from_raw_os_error(libc::EACCES),
        });
        assert_eq!(cg.kind(), K::Internal);
        assert_eq!(cg.to_string().matches("Permission denied").count(), 1);
        assert!(std::error::Error::source(&cg).is_none());
        let invalid = Error::from(hako_cgroups::Error::InvalidResources("x"));
        assert_eq!(invalid.kind(), K::Invalid);
        assert_eq!(Error::InvalidSpec("x".into()).kind(), K::Invalid);
        assert_eq!(Error::Setup("x".into()).kind(), K::Internal);
        assert_eq!(Error::NotCreated.kind(), K::Conflict);
        let exec = Error::Exec {
            kind: ExecFailure::NotFound,
            message: "exec: \"x\": executable file not found in $PATH".into(),
        };
        assert_eq!((exec.kind(), exec.exit_code()), (K::Invalid, 127));
        let exec = Error::Exec {
            kind: ExecFailure::CannotExecute,
            message: "permission denied".into(),
        };
        assert_eq!((exec.kind(), exec.exit_code()), (K::Invalid, 126));
    }
}
