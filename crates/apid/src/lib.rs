//! `hako system service`: the Docker Engine API over a unix socket (or loopback TCP), so the
//! docker CLI, docker-compose and the SDKs drive hako.
//!
//! The service holds no state of its own, as Podman's does not: containers belong to their
//! monitors and outlive it, and `hako` commands work on the same root at the same time. Every
//! request opens the state root, does its work through the engine and closes it again. The
//! only memory it keeps is what lives no longer than the service anyway: exec instances (a
//! Docker exec ID names a command yet to run) and the attaches waiting for a container to
//! start.
//!
//! The process is multi-threaded (tokio), so nothing here may fork: container starts, execs,
//! copies and builds, which need a single-threaded parent or a private mount namespace, run in
//! a `hako` helper process spawned with `Command` (see [`backend`]).
#![deny(missing_docs)]
#![recursion_limit = "256"]

mod api;
pub mod backend;
mod changes;
mod compat;
mod error;
pub mod helper;
mod hijack;
pub mod listen;
mod monitor_attach;
mod server;

pub use error::ApiError;
pub use listen::Endpoint;

use std::path::PathBuf;
use std::time::Duration;

/// What `hako system service` was asked to serve.
#[derive(Debug, Clone)]
pub struct ServiceOptions {
    /// The state root.
    pub root: PathBuf,
    /// Where to listen; ignored when systemd passes listening sockets (`LISTEN_FDS`).
    pub endpoint: Endpoint,
    /// Exit after this long without a connection; `None` serves until a signal.
    pub idle: Option<Duration>,
    /// The `hako` binary whose helper subcommands do the work that must not happen in a
    /// multi-threaded process.
    pub hako: PathBuf,
    /// Called once the service listens (a `hako compose` starts its client then).
    pub ready: Option<std::sync::mpsc::Sender<()>>,
}

/// Why the service could not run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The endpoint is malformed or refused.
    #[error("{0}")]
    Endpoint(String),
    /// Listening failed.
    #[error("listen on {what}")]
    Listen {
        /// The endpoint.
        what: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The runtime could not be built.
    #[error("start the service's runtime: {0}")]
    Runtime(#[source] std::io::Error),
}

/// Serves the API until `idle` passes without a connection, or SIGINT/SIGTERM.
pub fn serve(opts: ServiceOptions) -> Result<(), Error> {
    // Before the runtime opens its own descriptors (see listen::systemd_sockets).
    let activated = listen::systemd_sockets()?;
    // Two workers: the engine's work runs on the blocking pool, and the machines this runs
    // on are small; each worker's stack and arena costs idle memory.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(64)
        .thread_keep_alive(Duration::from_secs(5))
        .enable_all()
        .build()
        .map_err(Error::Runtime)?;
    let r = rt.block_on(server::run(opts, activated));
    // Work still under way (a helper's start, a pull) is not waited for: the containers are
    // their monitors', and a client that lost its answer sees the connection end.
    rt.shutdown_timeout(Duration::from_millis(500));
    r
}
