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

/// Errors from preparing, starting or waiting for a container process.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The OCI spec asks for something that is malformed or that hako cannot do.
    #[error("invalid runtime spec: {0}")]
    InvalidSpec(String),
    /// A host-side system call failed.
    #[error("{what}: {source}")]
    Sys {
        /// What was being done.
        what: String,
        /// The underlying OS error.
        #[source]
        source: io::Error,
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
    Cgroup(#[from] hako_cgroups::Error),
}

impl Error {
    pub(crate) fn sys(what: impl Into<String>, source: impl Into<io::Error>) -> Self {
        Error::Sys {
            what: what.into(),
            source: source.into(),
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
