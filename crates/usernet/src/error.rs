//! Errors with kinds, one line each.

use hako_base::ErrorKind;

/// What went wrong.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request itself is wrong: a malformed spec, a privileged port, a bad option.
    #[error("{0}")]
    Invalid(String),
    /// A host port is taken.
    #[error("{0}")]
    Conflict(String),
    /// Something the host must provide is missing: a program, `/dev/net/tun`, a namespace.
    #[error("{0}")]
    Unavailable(String),
    /// A system call failed at our own work.
    #[error("{what}: {source}")]
    Io {
        /// What we were doing.
        what: String,
        /// The system's answer.
        source: std::io::Error,
    },
}

impl Error {
    /// The class of the error, for the front ends.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Invalid(_) => ErrorKind::Invalid,
            Error::Conflict(_) => ErrorKind::Conflict,
            Error::Unavailable(_) => ErrorKind::Unavailable,
            Error::Io { .. } => ErrorKind::Internal,
        }
    }

    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io {
            what: what.into(),
            source,
        }
    }
}

/// This crate's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;
