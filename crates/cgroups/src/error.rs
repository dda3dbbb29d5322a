use std::io;
use std::path::PathBuf;
use std::time::Duration;

/// Everything that can go wrong while managing cgroups.
///
/// I/O variants carry the path involved because "Permission denied" alone is
/// useless when a container start touches a dozen cgroup files.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A cgroup or proc file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// File that was being read.
        path: PathBuf,
        /// Underlying error.
        #[source]
        source: io::Error,
    },
    /// A value could not be written to a cgroup file.
    #[error("writing {value:?} to {path}: {source}")]
    Write {
        /// File that was being written.
        path: PathBuf,
        /// Value that was being written.
        value: String,
        /// Underlying error.
        #[source]
        source: io::Error,
    },
    /// A cgroup directory could not be created.
    #[error("creating cgroup {path}: {source}")]
    Create {
        /// Directory that was being created.
        path: PathBuf,
        /// Underlying error.
        #[source]
        source: io::Error,
    },
    /// A cgroup directory could not be removed.
    #[error("removing cgroup {path}: {source}")]
    Remove {
        /// Directory that was being removed.
        path: PathBuf,
        /// Underlying error.
        #[source]
        source: io::Error,
    },
    /// A signal could not be delivered to a process in the cgroup.
    #[error("killing pid {pid}: {source}")]
    Kill {
        /// Target process.
        pid: i32,
        /// Underlying error.
        #[source]
        source: io::Error,
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
    #[error("cgroup device filter: {op} ({path}): {source}")]
    Bpf {
        /// The step that failed, e.g. "attach the device program".
        op: &'static str,
        /// The cgroup2 directory.
        path: PathBuf,
        /// Underlying error (with the verifier's last words when it refused the program).
        #[source]
        source: io::Error,
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
