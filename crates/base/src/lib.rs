//! One of each of the small things every hako crate needs, with Docker's grammars:
//! - [`duration`]: Go's `time.ParseDuration` syntax plus `d` for days, for every duration flag
//!   and filter (`until=`, `--stop-timeout`, healthcheck intervals, runc's `--interval`);
//! - [`time`]: the civil calendar, RFC 3339 formatting (fixed nine digits, and Go's trimmed
//!   `RFC3339Nano`) and parsing, and Docker's `--since`/`--until`/`until=` timestamps;
//! - [`jsonlog`]: the writing side of Docker's json-file log (the monitor's and a foreground
//!   `run`'s);
//! - [`size`]: Docker's `RAMInBytes` parse, `HumanSize` and `BytesSize`;
//! - [`signal`]: one signal table, names and numbers;
//! - [`proc`]: `/proc/PID/stat` readers: a process's start time, and whether a recorded
//!   process still runs;
//! - [`userns`]: whether this process is rootless hako (an ordinary user, or root of a user
//!   namespace whose root is not the host's), and what overlayfs then needs;
//! - [`seccomp_notify`]: answering a seccomp notification with ENOSYS (the missing-syscall
//!   agents);
//! - [`ErrorKind`]: the class of an error every library error reports through `kind()`, which
//!   the CLI maps to exit codes and the API server to HTTP statuses.
//!
//! std and libc only: the per-container monitor (`hako-monitor`) links it and must stay small.
#![deny(missing_docs)]

pub mod duration;
mod error;
pub mod jsonlog;
pub mod proc;
pub mod seccomp_notify;
pub mod signal;
pub mod size;
pub mod time;
pub mod userns;

pub use error::ErrorKind;
