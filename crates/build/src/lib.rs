//! `hako build`: a Dockerfile parser, a stage planner, an executor that runs steps through the
//! engine (RUN in real containers, COPY/ADD as layers written straight from the context), and a
//! layer cache kept in the state database.
#![deny(missing_docs)]

mod agent;
/// The build cache lives in the engine, which prunes and sizes it (`hako_engine::build_cache`).
pub use hako_engine::build_cache as cache;
pub mod context;
pub mod epoch;
pub mod events;
pub mod exec;
pub mod git;
pub mod ignore;
mod layer;
pub mod mounts;
pub mod parser;
pub mod pattern;
pub mod plan;
pub mod source;
mod union;
pub mod words;

pub use events::{BuildEvent, BuildSink};
pub use exec::{build, check_platform, BuildOptions, BuildOutput, Fetch};

/// Why a build failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A problem with one instruction of the Dockerfile.
    #[error("Dockerfile line {line}: {msg}")]
    Line {
        /// 1-based line of the instruction.
        line: usize,
        /// What is wrong.
        msg: String,
    },
    /// A RUN step exited with a non-zero status (Docker's wording).
    #[error("The command '{cmd}' returned a non-zero code: {code}")]
    RunFailed {
        /// The command as Docker prints it (`/bin/sh -c false`).
        cmd: String,
        /// Its exit status.
        code: i32,
    },
    /// A stage built in a child process failed; its message, and the exit status it asks for.
    #[error("{msg}")]
    Stage {
        /// The child's error, as it printed it.
        msg: String,
        /// The exit status `hako build` should end with.
        code: i32,
    },
    /// A problem with the build as a whole (options, context).
    #[error("{0}")]
    Invalid(String),
    /// The engine failed.
    #[error(transparent)]
    Engine(#[from] hako_engine::Error),
    /// The image store failed.
    #[error(transparent)]
    Image(#[from] hako_image::Error),
    /// The build cache tables failed.
    #[error("build cache: {0}")]
    Db(rusqlite::Error),
    /// A filesystem operation failed.
    #[error("{what}: {error}")]
    Io {
        /// What was being done.
        what: String,
        /// Underlying error, said in the message (not exposed again as `source()`).
        error: std::io::Error,
    },
}

// By hand rather than `#[from]`, which would also expose the database error as `source()`:
// the message says it already, and a report walking the chain would print it twice.
impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        Error::Db(e)
    }
}

impl Error {
    /// An error about the instruction on `line`.
    pub fn at(line: usize, msg: impl Into<String>) -> Error {
        Error::Line {
            line,
            msg: msg.into(),
        }
    }

    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let what = what.into();
        move |error| Error::Io { what, error }
    }

    /// The class of this error, for the front ends' exit codes and HTTP statuses: a
    /// Dockerfile that is wrong or a step that fails is the request's; the engine's and the
    /// image store's errors keep their own kind.
    pub fn kind(&self) -> hako_base::ErrorKind {
        use hako_base::ErrorKind as K;
        match self {
            Error::Line { .. } | Error::RunFailed { .. } | Error::Invalid(_) => K::Invalid,
            Error::Engine(e) => e.kind(),
            Error::Image(e) => e.kind(),
            Error::Stage { .. } | Error::Db(_) | Error::Io { .. } => K::Internal,
        }
    }

    /// The exit status `hako build` should end with.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::RunFailed { code, .. } if *code > 0 => *code,
            Error::Stage { code, .. } => *code,
            _ => 1,
        }
    }
}

#[cfg(test)]
mod error_tests {
    use super::Error;
    use hako_base::ErrorKind as K;

    #[test]
    fn kinds_survive_and_causes_are_said_once() {
        assert_eq!(Error::at(3, "unknown instruction").kind(), K::Invalid);
        let image = Error::from(hako_image::Error::NotFound("x".into()));
        assert_eq!(image.kind(), K::NotFound);
        let engine = Error::from(hako_engine::Error::NoSuchContainer("c".into()));
        assert_eq!(engine.kind(), K::NotFound);
        let io = Error::io("read the context")(std::io::Error::from_raw_os_error(libc::EACCES));
        assert_eq!(io.kind(), K::Internal);
        assert_eq!(
            io.to_string(),
            "read the context: Permission denied (os error 13)"
        );
        assert!(std::error::Error::source(&io).is_none());
        let db = Error::from(rusqlite::Error::InvalidQuery);
        assert!(std::error::Error::source(&db).is_none());
    }
}
