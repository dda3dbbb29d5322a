use std::io;
use std::path::PathBuf;
use std::time::Duration;

/// Everything that can go wrong while managing cgroups.
///
/// I/O variants carry the path involved because "Permission denied" alone is
/// useless when a container start touches a dozen cgroup files. Each message says its
/// cause itself; none is exposed again through `source()`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A cgroup or proc file could not be read.
    #[error("reading {path}: {error}")]
    Read {
        /// File that was being read.
        path: PathBuf,
        /// Underlying error, said in the message (not exposed as `source()`, so that no
        /// report prints it twice).
        error: io::Error,
    },
    /// A value could not be written to a cgroup file.
    #[error("writing {value:?} to {path}: {error}")]
    Write {
        /// File that was being written.
        path: PathBuf,
        /// Value that was being written.
        value: String,
        /// Underlying error, said in the message (not exposed as `source()`, so that no
        /// report prints it twice).
        error: io::Error,
    },
    /// A cgroup directory could not be created.
    #[error("creating cgroup {path}: {error}")]
    Create {
        /// Directory that was being created.
        path: PathBuf,
        /// Underlying error, said in the message (not exposed as `source()`, so that no
        /// report prints it twice).
        error: io::Error,
    },
    /// A cgroup directory could not be removed.
    #[error("removing cgroup {path}: {error}")]
    Remove {
        /// Directory that was being removed.
        path: PathBuf,
        /// Underlying error, said in the message (not exposed as `source()`, so that no
        /// report prints it twice).
        error: io::Error,
    },
    /// A signal could not be delivered to a process in the cgroup.
    #[error("killing pid {pid}: {error}")]
    Kill {
        /// Target process.
        pid: i32,
        /// Underlying error, said in the message (not exposed as `source()`, so that no
        /// report prints it twice).
        error: io::Error,
    },
    /// Processes survived `kill_all` past its deadline.
    #[error("{remaining} process(es) still in cgroup {path} after {waited:?}")]
    KillTimeout {
        /// One of the cgroup's directories.
        path: PathBuf,
        /// Number of processes still present.
        remaining: usize,
        /// How long we waited.
        waited: Duration,
    },
    /// The cgroup did not reach the frozen state in time (e.g. a task
    /// stuck in uninterruptible sleep); it has been thawed again.
    #[error("cgroup not frozen after {waited:?} ({path})")]
    FreezeTimeout {
        /// State file that was polled.
        path: PathBuf,
        /// How long we waited.
        waited: Duration,
    },
    /// No usable cgroup (v1 or v2) filesystem is mounted.
    #[error("no cgroup filesystem is mounted")]
    NoCgroupFs,
    /// A line of /proc/self/mountinfo or /proc/self/cgroup could not be parsed.
    #[error("malformed {file} line: {line:?}")]
    Parse {
        /// Which file the line came from.
        file: &'static str,
        /// The offending line.
        line: String,
    },
    /// A cgroup name or parent contains `..`, NUL, or names no cgroup at all.
    #[error("invalid cgroup name {0:?}")]
    InvalidName(String),
    /// The requested resource values are inconsistent.
    #[error("invalid resources: {0}")]
    InvalidResources(&'static str),
    /// A cgroup v2 device program could not be loaded, attached or replaced.
    #[error("cgroup device filter: {op} ({path}): {error}")]
    Bpf {
        /// The step that failed, e.g. "attach the device program".
        op: &'static str,
        /// The cgroup2 directory.
        path: PathBuf,
        /// Underlying error (with the verifier's last words when it refused the program), said
        /// in the message.
        error: io::Error,
    },
    /// A limit was requested for a controller this cgroup does not have.
    #[error("cgroup controller {controller} is not available ({path})")]
    Unsupported {
        /// Controller name, e.g. `memory`.
        controller: &'static str,
        /// File or directory that would have provided it.
        path: PathBuf,
    },
}

impl Error {
    /// The class of this error, for the front ends' exit codes and HTTP statuses.
    pub fn kind(&self) -> hako_base::ErrorKind {
        use hako_base::ErrorKind as K;
        match self {
            Error::InvalidName(_) | Error::InvalidResources(_) | Error::Unsupported { .. } => {
                K::Invalid
            }
            Error::Read { .. }
            | Error::Write { .. }
            | Error::Create { .. }
            | Error::Remove { .. }
            | Error::Kill { .. }
            | Error::KillTimeout { .. }
            | Error::FreezeTimeout { .. }
            | Error::NoCgroupFs
            | Error::Parse { .. }
            | Error::Bpf { .. } => K::Internal,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hako_base::ErrorKind as K;

    #[test]
    fn kinds_and_causes_said_once() {
        let denied = || io::Error::from_raw_os_error(libc::EACCES);
        let io_errors = [
            Error::Read {
                path: "/x".into(),
                error: denied(),
            },
            Error::Write {
                path: "/x".into(),
                value: "1".into(),
                error: denied(),
            },
            Error::Create {
                path: "/x".into(),
                error: denied(),
            },
            Error::Remove {
                path: "/x".into(),
                error: denied(),
            },
            Error::Kill {
                pid: 1,
                error: denied(),
            },
            Error::Bpf {
                op: "attach",
                path: "/x".into(),
                error: denied(),
            },
        ];
        for e in io_errors {
            assert_eq!(e.kind(), K::Internal, "{e}");
            let text = e.to_string();
            assert_eq!(text.matches("Permission denied").count(), 1, "{text}");
            assert!(std::error::Error::source(&e).is_none(), "{text}");
        }
        assert_eq!(Error::InvalidName("..".into()).kind(), K::Invalid);
        assert_eq!(Error::InvalidResources("x").kind(), K::Invalid);
        let unsupported = Error::Unsupported {
            controller: "memory",
            path: "/x".into(),
        };
        assert_eq!(unsupported.kind(), K::Invalid);
        assert_eq!(Error::NoCgroupFs.kind(), K::Internal);
        let timeout = Error::KillTimeout {
            path: "/x".into(),
            remaining: 1,
            waited: Duration::from_secs(1),
        };
        assert_eq!(timeout.kind(), K::Internal);
    }
}
