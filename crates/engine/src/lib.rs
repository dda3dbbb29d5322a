//! hako's engine: containers and their state, orchestrating the image store, cgroups and the
//! runtime library. Daemonless: every `hako` command opens the state, acts, and exits.
#![deny(missing_docs)]

pub mod build_cache;
pub mod build_support;
pub mod builder;
pub mod cdi;
pub mod commit;
pub mod config;
pub mod copy;
pub mod events;
pub mod exec;
mod export;
pub mod finish;
pub mod health;
pub mod helper;
pub mod images;
mod init;
mod inspect;
pub(crate) mod limits;
pub mod links;
pub mod logs;
pub mod missing;
mod monitor;
pub mod names;
pub mod netwire;
pub mod networks;
pub mod options;
pub mod platform;
mod procstat;
pub mod pull_policy;
pub mod rootless;
pub mod seccomp;
pub mod spec;
mod stdio;
mod system;
mod trust;
pub mod tty;
pub mod user;
pub mod views;
pub mod volumes;
pub mod wait;

use hako_base::jsonlog::JsonLog;
use hako_cgroups::CgroupSystem;
use hako_image::ImageStore;
use rusqlite::config::DbConfig;
use rusqlite::params;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use config::{ContainerConfig, ContainerUpdate, RestartPolicy};
pub use hako_base;
pub use hako_base::ErrorKind;
pub use hako_image;
pub use hako_net;
pub use hako_registry;
pub use hako_runtime;
pub use inspect::{ContainerStats, SystemInfo, VolumeUsage};

/// Errors of engine operations. [`Error::kind`] classifies them; [`Error::exit_code`] maps
/// them to Docker's `run` exit codes. Each message says its cause itself, and nothing is
/// exposed again through `source()` (the transparent variants forward their inner error's
/// message and source), so no report prints a cause twice.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The image is not in the local store (and there is no registry client yet).
    #[error("Unable to find image '{0}' locally")]
    ImageNotFound(String),
    /// `--name` is taken.
    #[error("Conflict. The container name \"/{name}\" is already in use by container \"{id}\". You have to remove (or rename) that container to be able to reuse that name.")]
    NameConflict {
        /// The requested name.
        name: String,
        /// The container holding it.
        id: String,
    },
    /// A user-supplied value is malformed.
    #[error("{0}")]
    Invalid(String),
    /// Neither the image nor the command line gives a command.
    #[error("No command specified")]
    NoCommand,
    /// No container matches.
    #[error("No such container: {0}")]
    NoSuchContainer(String),
    /// The operation needs a running container.
    #[error("Container {0} is not running")]
    NotRunning(String),

    /// No volume of that name.
    #[error("get {0}: no such volume")]
    NoSuchVolume(String),
    /// A container uses the volume (`force` does not override that, as with Docker).
    #[error("remove {name}: volume is in use - [{}]", users.join(", "))]
    VolumeInUse {
        /// The volume.
        name: String,
        /// The IDs of the containers using it.
        users: Vec<String>,
    },
    /// `rm` without `-f` on a running container.
    #[error("You cannot remove a running container {0}. Stop the container before attempting removal or force remove")]
    Running(String),
    /// The image's USER cannot be resolved.
    #[error(transparent)]
    User(#[from] user::UserError),
    /// Image store failure.
    #[error(transparent)]
    Image(#[from] hako_image::Error),
    /// A registry (pull, push, login) failed.
    #[error(transparent)]
    Registry(#[from] hako_registry::Error),
    /// A network operation failed.
    #[error(transparent)]
    Net(#[from] hako_net::Error),
    /// The runtime failed to create or start the process.
    #[error(transparent)]
    Runtime(#[from] hako_runtime::Error),
    /// cgroup setup or teardown failed.
    #[error("cgroup: {0}")]
    Cgroup(hako_cgroups::Error),
    /// The state database failed.
    #[error("state database: {0}")]
    Db(rusqlite::Error),
    /// A filesystem operation on the state root failed.
    #[error("{what}: {error}")]
    Io {
        /// What was being done.
        what: String,
        /// Underlying error, said in the message.
        error: std::io::Error,
    },
}

// By hand rather than `#[from]`, which would also expose the wrapped error as `source()`:
// the message says it already, and a report walking the chain would print it twice.
impl From<hako_cgroups::Error> for Error {
    fn from(e: hako_cgroups::Error) -> Self {
        Error::Cgroup(e)
    }
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        Error::Db(e)
    }
}

impl Error {
    fn io(what: impl Into<String>, error: std::io::Error) -> Self {
        Error::Io {
            what: what.into(),
            error,
        }
    }

    /// The class of this error, which survives wrapping: the CLI maps it to Docker's exit
    /// statuses, the API server to dockerd's HTTP statuses (see [`hako_base::ErrorKind`]).
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::ImageNotFound(_) | Error::NoSuchContainer(_) | Error::NoSuchVolume(_) => {
                ErrorKind::NotFound
            }
            Error::NameConflict { .. }
            | Error::NotRunning(_)
            | Error::Running(_)
            | Error::VolumeInUse { .. } => ErrorKind::Conflict,
            Error::Invalid(_) | Error::NoCommand | Error::User(_) => ErrorKind::Invalid,
            Error::Image(e) => e.kind(),
            Error::Registry(e) => e.kind(),
            Error::Net(e) => e.kind(),
            Error::Runtime(e) => e.kind(),
            Error::Cgroup(e) => e.kind(),
            Error::Db(_) | Error::Io { .. } => ErrorKind::Internal,
        }
    }

    /// Docker's exit status for a failed `run`: 126/127 for commands that cannot be executed or
    /// found, 125 for everything the engine itself refused or failed at.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Runtime(e) => e.exit_code(),
            _ => 125,
        }
    }
}

type Result<T> = std::result::Result<T, Error>;

/// The short ID of a container that uses image `image_id`, if any: the store's in-use check,
/// run inside its write transaction.
pub(crate) fn container_using(
    conn: &rusqlite::Connection,
    image_id: &str,
) -> rusqlite::Result<Option<hako_image::ImageUser>> {
    // A running container whose process is gone (hako was killed) counts as stopped, as
    // reconcile would record it; one whose start is under way counts as running.
    let mut st = conn.prepare_cached(
        "SELECT id, state, pid, pid_start, owner_pid, owner_start FROM containers WHERE image_id = ?1",
    )?;
    let rows = st.query_map([image_id], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, Option<i32>>(2)?,
            r.get::<_, Option<i64>>(3)?,
            r.get::<_, Option<i32>>(4)?,
            r.get::<_, Option<i64>>(5)?,
        ))
    })?;
    let mut first = None;
    for row in rows {
        let (id, state, pid, pid_start, owner, owner_start) = row?;
        let running = match state.as_str() {
            "running" => alive(pid, pid_start),
            "created" => alive(owner, owner_start),
            _ => false,
        };
        let user = hako_image::ImageUser {
            container: id[..12].to_string(),
            running,
        };
        if running {
            return Ok(Some(user));
        }
        first.get_or_insert(user);
    }
    Ok(first)
}

/// id, pid, pid start time, auto-remove, cgroup parent of a container recorded as running.
type RunningRow = (
    String,
    Option<i32>,
    Option<i64>,
    bool,
    Option<String>,
    Option<i32>,
    Option<i64>,
);

/// The lifecycle state of a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Recorded but never started (or its start failed).
    Created,
    /// Its process is alive.
    Running,
    /// Its process has exited.
    Exited,
}

impl State {
    fn parse(s: &str) -> State {
        match s {
            "running" => State::Running,
            "exited" => State::Exited,
            _ => State::Created,
        }
    }
}

/// A container as `ps` shows it.
#[derive(Debug, Clone)]
pub struct ContainerInfo {
    /// 64-hex id.
    pub id: String,
    /// Name without the leading slash.
    pub name: String,
    /// The image as the user named it.
    pub image: String,
    /// The image's id.
    pub image_id: String,
    /// argv of the main process.
    pub command: Vec<String>,
    /// Creation time, nanoseconds since the epoch.
    pub created: i64,
    /// Lifecycle state.
    pub state: State,
    /// Exit status once exited (or of the failed start).
    pub exit_code: Option<i32>,
    /// When it started, nanoseconds since the epoch.
    pub started_at: Option<i64>,
    /// When it exited, nanoseconds since the epoch.
    pub finished_at: Option<i64>,
    /// Its health (`starting`, `healthy`, `unhealthy`) when it has a healthcheck.
    pub health: Option<String>,
}

/// Network choice for `run`.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum Network {
    /// No `--network` (or `bridge`): the default bridge, with NAT to the outside.
    #[default]
    Default,
    /// `--network none`: loopback only.
    None,
    /// `--network host`.
    Host,
    /// A network made with `hako network create`.
    Named(String),
    /// `--network container:NAME`, as given: the other container's network namespace, host
    /// name, /etc/hosts and resolv.conf.
    Container(String),
}

impl Network {
    /// The network to attach to, if any.
    pub fn attach_to(&self) -> Option<&str> {
        match self {
            Network::Default => Some("bridge"),
            Network::Named(n) => Some(n),
            Network::None | Network::Host | Network::Container(_) => None,
        }
    }

    /// The container whose network `--network container:NAME` joins.
    pub fn container(&self) -> Option<&str> {
        match self {
            Network::Container(m) => m.strip_prefix("container:"),
            _ => None,
        }
    }

    /// Docker's NetworkMode name.
    pub fn mode(&self) -> &str {
        match self {
            Network::Default => "bridge",
            Network::None => "none",
            Network::Host => "host",
            Network::Named(n) | Network::Container(n) => n,
        }
    }
}

impl std::str::FromStr for Network {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "none" => Ok(Network::None),
            "host" => Ok(Network::Host),
            "default" | "bridge" => Ok(Network::Default),
            other if other.starts_with("container:") => {
                if other.len() == "container:".len() {
                    return Err(Error::Invalid(
                        "invalid container format container:<name|id>".into(),
                    ));
                }
                Ok(Network::Container(other.to_string()))
            }
            other => Ok(Network::Named(other.to_string())),
        }
    }
}

/// The state root when neither `--root` nor `HAKO_ROOT` is given.
pub const DEFAULT_ROOT: &str = "/var/lib/hako";

/// How `run` starts a container; not part of its configuration (a later `start` runs it
/// detached, with nobody attached).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RunMode {
    /// Start it under a monitor process and return at once (`-d`).
    pub detach: bool,
    /// `run -it`: with `detach` and a terminal or an open stdin, the caller attaches at once,
    /// so the monitor waits for that attach before it reads the container's output (the exit
    /// status then reaches it even if the command ends at once).
    pub attach_on_start: bool,
    /// `run -a` without `stdout` (or `stderr`): a foreground run does not show that output
    /// (it is still logged). With a terminal, its output counts as stdout.
    pub hide_stdout: bool,
    /// See `hide_stdout`.
    pub hide_stderr: bool,
}

/// Reported once the container's process is running.
#[derive(Debug)]
pub struct Started<'a> {
    /// Container id.
    pub id: &'a str,
    /// Non-fatal problems (e.g. clamped rlimits).
    pub warnings: &'a [String],
}

/// A container ready to be spawned: its spec, root filesystem layers and cgroup.
pub(crate) struct Prepared {
    pub(crate) spec: oci_spec::runtime::Spec,
    pub(crate) overlay: hako_runtime::Overlay,
    pub(crate) cgroup: hako_cgroups::Cgroup,
    pub(crate) warnings: Vec<String>,
    pub(crate) net: Option<netwire::NetWire>,
    /// Where the runtime keeps compiled seccomp programs (see [`Engine::seccomp_cache`]).
    pub(crate) seccomp_cache: PathBuf,
    /// The container's OCI state for its spec's hooks (CDI devices' `createContainer` and
    /// `startContainer` hooks); `None` when it has none.
    pub(crate) hook_state: Option<String>,
}

/// Puts CDI hooks into `spec` (`createContainer` and `startContainer`, run by the runtime in
/// the container's namespaces) and returns the OCI state they read on their stdin.
fn cdi_hooks(
    spec: &mut oci_spec::runtime::Spec,
    hooks: &[cdi::CdiHook],
    id: &str,
    bundle: &Path,
) -> Result<String> {
    let mut all = spec.hooks().clone().unwrap_or_default();
    for h in hooks {
        let mut b = oci_spec::runtime::HookBuilder::default()
            .path(&h.path)
            .args(h.args.clone())
            .env(h.env.clone());
        if let Some(t) = h.timeout {
            b = b.timeout(t);
        }
        let hook = b
            .build()
            .map_err(|e| Error::Invalid(format!("CDI hook {}: {e}", h.path)))?;
        let list = if h.hook_name == "createContainer" {
            all.create_container().clone()
        } else {
            all.start_container().clone()
        };
        let mut list = list.unwrap_or_default();
        list.push(hook);
        if h.hook_name == "createContainer" {
            all.set_create_container(Some(list));
        } else {
            all.set_start_container(Some(list));
        }
    }
    spec.set_hooks(Some(all));
    Ok(serde_json::json!({
        "ociVersion": spec.version(),
        "id": id,
        "bundle": bundle,
        "annotations": {},
    })
    .to_string())
}

/// `base` with each `NAME=VALUE` of `over` replacing the variable of that name, or appended:
/// a name must appear once (getenv reads the first).
fn replace_or_append<'a>(
    mut base: Vec<String>,
    over: impl IntoIterator<Item = &'a String>,
) -> Vec<String> {
    let name = |v: &str| v.split_once('=').map_or(v, |(k, _)| k).to_string();
    for v in over {
        let n = name(v);
        match base.iter_mut().find(|b| name(b) == n) {
            Some(b) => *b = v.clone(),
            None => base.push(v.clone()),
        }
    }
    base
}

/// A container's options resolved against its image.
pub(crate) struct Plan {
    pub(crate) image: hako_image::Image,
    pub(crate) args: Vec<String>,
    pub(crate) env: Vec<String>,
    pub(crate) workdir: String,
    pub(crate) user: user::ResolvedUser,
    pub(crate) hostname: String,
    pub(crate) limits: limits::Limits,
    pub(crate) image_volumes: Vec<String>,
    pub(crate) attach: Option<(String, hako_net::AttachOptions)>,
    /// A rootless container's user-mode network (instead of `attach`).
    pub(crate) usernet: Option<rootless::UserNet>,
    /// The `binfmt_misc` emulator a foreign-architecture image runs under.
    pub(crate) emulator: Option<platform::Emulator>,
}

/// An open hako state root.
pub struct Engine {
    root: PathBuf,
    store: ImageStore,
    /// Set by commands that delete files after committing their rows (image and volume
    /// removal): their commits are checkpointed, and so made durable, when the engine closes.
    durable: std::cell::Cell<bool>,
}

/// The WAL size (bytes) past which the last connection to close checkpoints it and removes it.
///
/// Each `hako` command is a process of its own. SQLite's default is to checkpoint and delete
/// the WAL whenever the last connection closes, which costs four fsyncs (the checkpoint's two,
/// then the WAL header and its directory when the next writer creates the WAL again): on a
/// `create`, more than all of its own work. Leaving the WAL in place instead means the next
/// process to open the database rebuilds the WAL index from it (SQLite discards the shared
/// index when no connection is open), reading every frame: a few microseconds per frame, so
/// the WAL is kept small, 64 frames of 4 KiB on average, about five `create`s.
///
/// Durability: with `synchronous=NORMAL` a commit is in the WAL, written but not synced. A
/// `hako` that is killed loses nothing (the kernel has the data); a power loss or kernel crash
/// loses at most the commits since the last checkpoint, and the database stays consistent
/// (WAL frames are checksummed). What such a loss leaves behind is what reconcile already
/// repairs: container directories without rows are removed, and a container whose removal
/// was lost shows up again as stopped. Image and volume removals delete data the rows point
/// to, so those commands still checkpoint before they exit (`durable`).
const WAL_CHECKPOINT_BYTES: u64 = 128 * (4096 + 24);

impl Engine {
    /// Whether a caller that keeps this engine open across requests (the API service) should
    /// close it now, as a `hako` command's exit does: its last work must be made durable (an
    /// image or volume removal), or the write-ahead log has grown past its bound. Closing is
    /// what checkpoints (see [`WAL_CHECKPOINT_BYTES`]).
    pub fn wants_close(&self) -> bool {
        self.durable.get()
            || std::fs::metadata(self.root.join("hako.db-wal"))
                .is_ok_and(|m| m.len() > WAL_CHECKPOINT_BYTES)
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        if self.wants_close() {
            // The connection closes right after this, with SQLite's default close behaviour:
            // checkpoint and remove the WAL if it is the last connection to the database.
            let _ = self
                .store
                .conn()
                .set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, false);
        }
    }
}

pub use hako_base::time::{now_nanos, rfc3339};

/// This process as the owner of a container being started.
pub(crate) fn self_owner() -> (i32, Option<i64>) {
    let me = std::process::id() as i32;
    (me, process_start_time(me))
}

pub(crate) fn random_id() -> Result<String> {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).map_err(|e| {
        Error::io(
            "generate container id",
            std::io::Error::other(e.to_string()),
        )
    })?;
    Ok(hex::encode(b))
}

/// The start time of process `pid` as the store records it (`hako_base::proc::start_time`):
/// it tells a container's process from a later one reusing its pid; `None` once the process
/// has exited, a zombie included.
pub(crate) fn process_start_time(pid: i32) -> Option<i64> {
    hako_base::proc::start_time(pid).map(|t| t as i64)
}

/// Whether the process recorded as `pid` with start time `start` still runs: the same process
/// (not a later one with its pid) and not a zombie. A row without a start time was recorded
/// when its process had already exited.
pub(crate) fn alive(pid: Option<i32>, start: Option<i64>) -> bool {
    match (pid, start) {
        (Some(p), Some(s)) => hako_base::proc::alive(p, s as u64),
        _ => false,
    }
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS containers (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    image TEXT NOT NULL,
    image_id TEXT NOT NULL,
    command TEXT NOT NULL,
    created INTEGER NOT NULL,
    state TEXT NOT NULL,
    pid INTEGER,
    pid_start INTEGER,
    exit_code INTEGER,
    started_at INTEGER,
    finished_at INTEGER,
    auto_remove INTEGER NOT NULL DEFAULT 0,
    cgroup_parent TEXT,
    config TEXT NOT NULL DEFAULT '{}',
    owner_pid INTEGER,
    owner_start INTEGER,
    restart_count INTEGER NOT NULL DEFAULT 0,
    stop_requested INTEGER NOT NULL DEFAULT 0,
    missing_syscalls TEXT,
    health TEXT
);
CREATE TABLE IF NOT EXISTS volumes (
    name TEXT PRIMARY KEY,
    created INTEGER NOT NULL,
    anonymous INTEGER NOT NULL DEFAULT 0,
    labels TEXT NOT NULL DEFAULT '[]'
);
CREATE TABLE IF NOT EXISTS container_volumes (
    container_id TEXT NOT NULL,
    volume TEXT NOT NULL,
    target TEXT,
    PRIMARY KEY (container_id, volume)
);
CREATE INDEX IF NOT EXISTS containers_image ON containers(image_id);
";

/// True when every table and index of SCHEMA and events::SCHEMA exists and `containers` has
/// the columns added since (see `Engine::migrate`).
const SCHEMA_CURRENT: &str = "SELECT
    (SELECT count(*) FROM sqlite_master WHERE name IN
        ('containers', 'volumes', 'container_volumes', 'containers_image', 'events')) = 5
    AND (SELECT count(*) FROM pragma_table_info('containers') WHERE name IN
        ('config', 'owner_pid', 'owner_start', 'restart_count', 'stop_requested',
         'missing_syscalls', 'health')) = 7
    AND (SELECT count(*) FROM pragma_table_info('container_volumes') WHERE name = 'target') = 1";

/// Names of the blocked signals while `run` holds state that must be cleaned up.
/// Blocks the signals an attach proxies; returns the previous mask.
pub(crate) fn block_signals_for_attach() -> nix::sys::signal::SigSet {
    let mut old = nix::sys::signal::SigSet::empty();
    let _ = nix::sys::signal::sigprocmask(
        nix::sys::signal::SigmaskHow::SIG_BLOCK,
        Some(&stop_signals()),
        Some(&mut old),
    );
    old
}

/// Restores a mask saved by [`block_signals_for_attach`], dropping what is still pending.
pub(crate) fn restore_signal_mask(old: &nix::sys::signal::SigSet) {
    let zero = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid sigset and timespec; draining pending signals before unblocking them.
    while unsafe { libc::sigtimedwait(stop_signals().as_ref(), std::ptr::null_mut(), &zero) } > 0 {}
    let _ =
        nix::sys::signal::sigprocmask(nix::sys::signal::SigmaskHow::SIG_SETMASK, Some(old), None);
}

/// Keeps SIGPIPE blocked while it lives, so that a write to a pipe whose reader is gone fails
/// with EPIPE, which the writer reports, rather than killing hako without a word.
///
/// `hako`'s `main` restores SIGPIPE's default action (so `hako ps | head` just ends), and a
/// start writes to pipes whose other end may be gone: the runtime's "go" to a container
/// process that already died of a set-up error (`-v /tmp:/etc/hosts`), which is how such runs
/// ended with status 141 and no message. Held around the runtime's spawn only: later, the
/// default action is what ends a `run -t` whose output reader has gone. Blocked rather than
/// ignored, because the disposition is process-wide and a blocked signal leaves the action
/// alone. A SIGPIPE raised meanwhile stays pending and is dropped on the way out. The runtime
/// empties the mask in the container's process before its command runs.
pub(crate) struct SigpipeBlocked {
    was_blocked: bool,
}

impl SigpipeBlocked {
    pub(crate) fn new() -> SigpipeBlocked {
        use nix::sys::signal::{sigprocmask, SigSet, SigmaskHow, Signal};
        let mut pipe = SigSet::empty();
        pipe.add(Signal::SIGPIPE);
        let mut old = SigSet::empty();
        let _ = sigprocmask(SigmaskHow::SIG_BLOCK, Some(&pipe), Some(&mut old));
        SigpipeBlocked {
            was_blocked: old.contains(Signal::SIGPIPE),
        }
    }
}

impl Drop for SigpipeBlocked {
    fn drop(&mut self) {
        use nix::sys::signal::{sigprocmask, SigSet, SigmaskHow, Signal};
        if self.was_blocked {
            return;
        }
        let mut pipe = SigSet::empty();
        pipe.add(Signal::SIGPIPE);
        while pipe.timed_wait_zero() {}
        let _ = sigprocmask(SigmaskHow::SIG_UNBLOCK, Some(&pipe), None);
    }
}

fn stop_signals() -> nix::sys::signal::SigSet {
    use nix::sys::signal::{SigSet, Signal};
    let mut s = SigSet::empty();
    for sig in [
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGQUIT,
    ] {
        s.add(sig);
    }
    s
}

impl Engine {
    /// Opens (creating if needed) the state under `root`.
    pub fn open(root: &Path) -> Result<Engine> {
        std::fs::create_dir_all(root.join("containers"))
            .map_err(|e| Error::io(format!("create state root {}", root.display()), e))?;
        let store = ImageStore::open(root)?;
        if rootless::active() {
            // Networks live in the user's own network namespace, made on first need.
            hako_net::set_host_netns(rootless::user_netns);
        }
        // See WAL_CHECKPOINT_BYTES. While another process keeps the database open (a `logs
        // -f`, a name server) no close checkpoints; the automatic checkpoint, at twice that
        // size, then bounds the WAL, and no open has to rebuild its index.
        store
            .conn()
            .set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)?;
        store
            .conn()
            .pragma_update(None, "wal_autocheckpoint", 256)?;
        // Every command opens the engine: skip the DDL (statements to parse, a write lock)
        // once the schema is the current one.
        let current: bool = store.conn().query_row(SCHEMA_CURRENT, [], |r| r.get(0))?;
        if !current {
            Self::migrate(&store)?;
        }
        Ok(Engine {
            root: root.to_path_buf(),
            store,
            durable: std::cell::Cell::new(false),
        })
    }

    fn migrate(store: &ImageStore) -> Result<()> {
        // Under the write lock, so two first commands cannot both add a column.
        let tx = rusqlite::Transaction::new_unchecked(
            store.conn(),
            rusqlite::TransactionBehavior::Immediate,
        )?;
        store.conn().execute_batch(SCHEMA)?;
        store.conn().execute_batch(events::SCHEMA)?;
        // State roots made by earlier versions lack these columns; one query tells which.
        let have: std::collections::HashSet<String> = store
            .conn()
            .prepare("SELECT name FROM pragma_table_info('containers')")?
            .query_map([], |r| r.get::<_, String>(0))?
            .collect::<rusqlite::Result<_>>()?;
        for (column, decl) in [
            ("config", "TEXT NOT NULL DEFAULT '{}'"),
            ("owner_pid", "INTEGER"),
            ("owner_start", "INTEGER"),
            ("restart_count", "INTEGER NOT NULL DEFAULT 0"),
            ("stop_requested", "INTEGER NOT NULL DEFAULT 0"),
            ("missing_syscalls", "TEXT"),
            // Docker's State.Health as JSON, for a container with a healthcheck.
            ("health", "TEXT"),
        ] {
            if !have.contains(column) {
                store.conn().execute_batch(&format!(
                    "ALTER TABLE containers ADD COLUMN {column} {decl}"
                ))?;
            }
        }
        // Where each volume is mounted: a container's anonymous volumes must go back to
        // their own mount points when it starts again. Rows from before have none (see
        // `container_mounts`).
        let targets: bool = store.conn().query_row(
            "SELECT count(*) FROM pragma_table_info('container_volumes') WHERE name = 'target'",
            [],
            |r| r.get::<_, i64>(0).map(|n| n == 1),
        )?;
        if !targets {
            store
                .conn()
                .execute_batch("ALTER TABLE container_volumes ADD COLUMN target TEXT")?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Compiled seccomp programs, one per distinct profile: compiling Docker's default profile
    /// costs more CPU than the rest of a container start.
    pub(crate) fn seccomp_cache(&self) -> PathBuf {
        self.root.join("cache").join("seccomp")
    }

    /// What each image's C library needs from the kernel (`platform::abi_warnings`).
    pub(crate) fn abi_cache(&self) -> PathBuf {
        self.root.join("cache").join("abi")
    }

    /// The state root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The image store.
    pub fn images(&self) -> &ImageStore {
        &self.store
    }

    pub(crate) fn container_dir(&self, id: &str) -> PathBuf {
        self.root.join("containers").join(id)
    }

    /// One row of the container `id` (`sql` selects by `id = ?1`). A command on a container
    /// found a moment ago can race its removal (`inspect` while another `hako rm` runs): the
    /// row is then gone, which is [`Error::NoSuchContainer`], not a database failure.
    pub(crate) fn container_row<T>(
        &self,
        id: &str,
        sql: &str,
        f: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<T> {
        self.store
            .conn()
            .query_row(sql, [id], f)
            .map_err(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => Error::NoSuchContainer(id.to_string()),
                e => e.into(),
            })
    }

    /// Removes an image unless a container uses it (`force` overrides).
    pub fn remove_image(
        &self,
        name_or_id: &str,
        force: bool,
    ) -> Result<Vec<hako_image::RemoveEvent>> {
        self.durable.set(true);
        let id = self.store.resolve(name_or_id).map(|i| i.id).ok();
        let events = self.store.remove(name_or_id, force, &container_using)?;
        if let Some(id) = id {
            self.image_removal_events(&id, &events);
        }
        platform::sweep_abi_cache(&self.abi_cache(), &|id| self.store.resolve(id).is_ok());
        Ok(events)
    }

    /// Docker's `untag` and `delete` image events for what a removal of image `id` did.
    pub(crate) fn image_removal_events(&self, id: &str, events: &[hako_image::RemoveEvent]) {
        for e in events {
            match e {
                hako_image::RemoveEvent::Untagged(tag) => {
                    self.object_event("image", id, "untag", &[("name", tag.clone())])
                }
                hako_image::RemoveEvent::Deleted(d) => {
                    self.object_event("image", d, "delete", &[("name", d.clone())])
                }
            }
        }
    }

    /// `docker run`: creates the container named `name` (a generated name if `None`) and runs
    /// it, in the foreground (returning its exit status, Docker's convention) or detached
    /// (returning 0 once it runs).
    ///
    /// The calling process must be single-threaded (see `hako_runtime::spawn`): the CLI's fast
    /// path.
    pub fn run(
        &self,
        name: Option<&str>,
        config: &ContainerConfig,
        mode: RunMode,
        on_start: &mut dyn FnMut(&Started<'_>),
    ) -> Result<i32> {
        use nix::sys::signal::{sigprocmask, SigmaskHow};
        // Ctrl-C before the container exists must not kill us halfway through creating it, and
        // one after it exits must not interrupt the cleanup: hold stop signals for the whole
        // call. While the container runs, the runtime relays them to it.
        let mut old = nix::sys::signal::SigSet::empty();
        sigprocmask(SigmaskHow::SIG_BLOCK, Some(&stop_signals()), Some(&mut old))
            .map_err(|e| Error::io("block signals", e.into()))?;
        let result = self.run_blocked(name, config, mode, on_start);
        let pending = stop_signals();
        // A signal that arrived after the container finished was meant for it; drop it.
        while pending.timed_wait_zero() {}
        let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&old), None);
        result
    }

    fn resolve_image(&self, name: &str) -> Result<hako_image::Image> {
        match self.store.resolve(name) {
            Ok(i) => Ok(i),
            Err(hako_image::Error::NotFound(_)) => {
                let shown = match hako_image::Reference::parse(name) {
                    Ok(r) => r.familiar(),
                    Err(_) => name.to_string(),
                };
                Err(Error::ImageNotFound(shown))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Everything about a container that follows from its options and image, validated.
    fn plan(&self, id: &str, opts: &ContainerConfig, image: hako_image::Image) -> Result<Plan> {
        // Before anything else: an image that cannot run here is refused with why, not left
        // to fail at exec with a bare "exec format error".
        let emulator = platform::check(&hako_image::ImagePlatform::of(&image.config))?;
        // An unknown CDI device is refused now, not at the first start.
        cdi::check(&opts.resources.cdi_devices)?;
        let cfg = image.config.config().clone().unwrap_or_default();

        // Docker's precedence: --entrypoint replaces the image's Entrypoint and drops its Cmd;
        // otherwise the command line replaces Cmd only.
        let (entrypoint, cmd): (Vec<String>, Vec<String>) = match &opts.entrypoint {
            Some(e) => (e.clone(), opts.cmd.clone()),
            None => (
                cfg.entrypoint().clone().unwrap_or_default(),
                if opts.cmd.is_empty() {
                    cfg.cmd().clone().unwrap_or_default()
                } else {
                    opts.cmd.clone()
                },
            ),
        };
        let args: Vec<String> = entrypoint.into_iter().chain(cmd).collect();
        if args.is_empty() {
            return Err(Error::NoCommand);
        }
        let workdir = match (&opts.working_dir, cfg.working_dir()) {
            (Some(w), _) => {
                if !user::is_absolute(w) {
                    return Err(Error::Invalid(format!(
                        "the working directory '{w}' is invalid, it needs to be an absolute path"
                    )));
                }
                w.clone()
            }
            (None, Some(w)) if !w.is_empty() => w.clone(),
            _ => "/".to_string(),
        };
        if let Some(h) = &opts.hostname {
            if h.is_empty() || h.len() > 64 || h.contains(['/', '\0', ' ']) {
                return Err(Error::Invalid(format!("invalid hostname {h:?}")));
            }
        }
        let layers_top_first: Vec<PathBuf> = image.layers.iter().rev().cloned().collect();
        let user_spec = opts
            .user
            .clone()
            .or_else(|| cfg.user().clone())
            .unwrap_or_default();
        let mut user = user::resolve(&user_spec, &layers_top_first)?;
        for g in &opts.group_add {
            let gid = match g.parse::<u32>() {
                Ok(n) => n,
                Err(_) => user::resolve(&format!("0:{g}"), &layers_top_first)?.gid,
            };
            if !user.additional_gids.contains(&gid) {
                user.additional_gids.push(gid);
            }
        }
        let peer = match &opts.network {
            Network::Container(_) => Some(self.network_peer(opts)?),
            _ => None,
        };
        let hostname = match (&opts.hostname, peer) {
            (Some(h), _) => h.clone(),
            // Docker gives it the other container's host name (and its /etc files).
            (None, Some(other)) => self
                .config_of(&other.id)?
                .hostname
                .unwrap_or_else(|| other.id[..12].to_string()),
            (None, None) if opts.network == Network::Host => nix::unistd::gethostname()
                .map(|h| h.to_string_lossy().into_owned())
                .unwrap_or_else(|_| id[..12].to_string()),
            (None, _) => id[..12].to_string(),
        };
        let mut env = build_env(
            cfg.env().as_deref().unwrap_or(&[]),
            &opts.env,
            &hostname,
            &user.home,
        );
        if opts.tty && !env.iter().any(|e| e.starts_with("TERM=")) {
            env.push("TERM=xterm".into());
        }
        let limits = limits::Limits::parse(opts)?;
        opts.check()?;
        let image_volumes: Vec<String> = cfg.volumes().clone().unwrap_or_default();
        let attach = match opts.network.attach_to() {
            None => {
                if !opts.port_bindings.is_empty() {
                    return Err(Error::Invalid(format!(
                        "published ports are discarded when using {} network mode",
                        opts.network.mode()
                    )));
                }
                None
            }
            Some(net) => {
                let mut ports: Vec<hako_net::PortSpec> =
                    opts.port_bindings.iter().map(|p| p.to_net()).collect();
                if opts.publish_all {
                    let image_ports = cfg.exposed_ports().as_deref().unwrap_or(&[]);
                    for e in image_ports.iter().chain(&opts.exposed_ports) {
                        let spec = hako_net::exposed_port_spec(e)
                            .map_err(|e| Error::Invalid(e.to_string()))?;
                        // An explicit -p for the same port wins, as with Docker.
                        if !ports.iter().any(|p| {
                            p.container_port == spec.container_port && p.proto == spec.proto
                        }) {
                            ports.push(spec);
                        }
                    }
                }
                if let Network::Named(n) = &opts.network {
                    let nets = netwire::networks(self.store.conn(), &self.root)?;
                    if nets.inspect(n).is_err() {
                        return Err(Error::Invalid(format!("network {n} not found")));
                    }
                }
                let (ip, ip6) = (opts.ip, opts.ip6);
                if ip.is_some() || ip6.is_some() {
                    netwire::networks(self.store.conn(), &self.root)?
                        .check_fixed_addresses(id, net, ip, ip6)
                        .map_err(|e| Error::Invalid(e.to_string()))?;
                }
                Some((
                    net.to_string(),
                    hako_net::AttachOptions {
                        ip: ip.map(std::net::IpAddr::V4),
                        ip6,
                        ports,
                        aliases: opts.network_aliases.clone(),
                        mac: opts.mac_address.clone(),
                        names: Vec::new(),
                    },
                ))
            }
        };
        let (attach, usernet) = rootless::plan_network(attach)?;
        Ok(Plan {
            image,
            args,
            env,
            workdir,
            user,
            hostname,
            limits,
            image_volumes,
            attach,
            usernet,
            emulator,
        })
    }

    fn run_blocked(
        &self,
        name: Option<&str>,
        config: &ContainerConfig,
        mode: RunMode,
        on_start: &mut dyn FnMut(&Started<'_>),
    ) -> Result<i32> {
        let config = &*self.with_volumes_from(config)?;
        let image = self.resolve_image(&config.image)?;
        self.check_trust(&config.image, &image)?;
        let id = random_id()?;
        let plan = self.plan(&id, config, image)?;
        self.insert_container(
            &id,
            name,
            config,
            &plan.image.id,
            &plan.args,
            Some(self_owner()),
            config.auto_remove,
        )?;
        self.launch(&id, config, &plan, mode, on_start)
    }

    /// `docker create`: records the container named `name` (a generated one if `None`);
    /// `start` runs it. Returns its ID.
    pub fn create(&self, name: Option<&str>, config: &ContainerConfig) -> Result<String> {
        let config = &*self.with_volumes_from(config)?;
        let image = self.resolve_image(&config.image)?;
        self.check_trust(&config.image, &image)?;
        let id = random_id()?;
        let plan = self.plan(&id, config, image)?;
        self.insert_container(
            &id,
            name,
            config,
            &plan.image.id,
            &plan.args,
            None,
            config.auto_remove,
        )?;
        self.claim_volumes(&id, config, &plan)?;
        Ok(id)
    }

    /// The stored configuration of the container `id`.
    pub(crate) fn config_of(&self, id: &str) -> Result<ContainerConfig> {
        let stored: String =
            self.container_row(id, "SELECT config FROM containers WHERE id = ?1", |r| {
                r.get(0)
            })?;
        ContainerConfig::from_stored(&stored)
            .map_err(|e| Error::Invalid(format!("container {}: {e}", id.get(..12).unwrap_or(id))))
    }

    /// `docker start`: runs a created or exited container again, detached, with its stored
    /// configuration and its writable layer as it was left.
    pub fn start(&self, key: &str) -> Result<String> {
        self.start_attaching(key, false)
    }

    /// `start -a` on a `-t` container: as [`Engine::start`], but its monitor waits for the
    /// caller's [`Engine::attach_terminal`] before it reads the terminal.
    pub fn start_attaching(&self, key: &str, attach: bool) -> Result<String> {
        let c = self.find(key)?;
        self.store.conn().execute(
            "UPDATE containers SET restart_count = 0, stop_requested = 0 WHERE id = ?1",
            [&c.id],
        )?;
        self.start_again_with(&c.id, attach)
    }

    /// Starts an existing container (by full id) with its stored options, detached.
    pub(crate) fn start_again(&self, key: &str) -> Result<String> {
        self.start_again_with(key, false)
    }

    fn start_again_with(&self, key: &str, attach: bool) -> Result<String> {
        let c = self.find(key)?;
        if c.state == State::Running {
            return Ok(c.id);
        }
        let config = self.config_of(&c.id)?;
        let image = self.resolve_image(&c.image_id)?;
        let plan = self.plan(&c.id, &config, image)?;
        let dir = self.container_dir(&c.id);
        // Under the container's lock: a finish of the previous run (its monitor's
        // finish, late) decides and cleans up under it, so it either completes
        // before this start or sees the new run and leaves it alone.
        // A container made by `create` has no directory until its first start.
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error::io(format!("create {}", dir.display()), e))?;
        let lock = monitor::lock_container(&dir)?
            .ok_or_else(|| Error::NoSuchContainer(key.to_string()))?;
        let state: String =
            self.container_row(&c.id, "SELECT state FROM containers WHERE id = ?1", |r| {
                r.get(0)
            })?;
        if state == "running" {
            return Ok(c.id);
        }
        let _ = std::fs::remove_file(dir.join("exit"));
        let (me, my_start) = self_owner();
        self.store.conn().execute(
            "UPDATE containers SET state = 'created', exit_code = NULL, pid = NULL, owner_pid = ?2, owner_start = ?3, missing_syscalls = NULL WHERE id = ?1",
            params![&c.id, me, my_start],
        )?;
        drop(lock);
        let mode = RunMode {
            detach: true,
            attach_on_start: attach && (config.tty || config.open_stdin),
            ..RunMode::default()
        };
        self.launch(&c.id, &config, &plan, mode, &mut |_| {})?;
        Ok(c.id)
    }

    fn launch(
        &self,
        id: &str,
        opts: &ContainerConfig,
        plan: &Plan,
        mode: RunMode,
        on_start: &mut dyn FnMut(&Started<'_>),
    ) -> Result<i32> {
        let dir = self.container_dir(id);
        // Before anything is prepared, so a refusal has nothing to undo.
        let check = self.health_check_of(opts, &plan.image.id);
        let result = match check {
            Some(_) => monitor::require_health_binary(),
            None => Ok(()),
        }
        .and_then(|()| self.prepare_start(id, &dir, opts, plan))
        .and_then(|prepared| {
            if mode.detach {
                monitor::start_detached(self, id, &dir, opts, mode, &prepared, check.is_some())
                    .inspect(|_| {
                        on_start(&Started {
                            id,
                            warnings: &prepared.warnings,
                        })
                    })
            } else {
                self.start_and_wait(id, &dir, opts, mode, &prepared, check.is_some(), on_start)
            }
        });
        if let Err(e) = &result {
            // A container whose start failed stays "Created" like Docker's, unless --rm. Its
            // cgroup and network are already undone by then; nobody is starting it any more.
            if opts.auto_remove {
                self.delete_container(id, &dir);
            } else {
                let _ = self.store.conn().execute(
                    "UPDATE containers SET state = 'created', exit_code = ?2, pid = NULL, owner_pid = NULL, owner_start = NULL WHERE id = ?1",
                    params![id, e.exit_code()],
                );
            }
        }
        result
    }

    /// Records a new container. `owner` is the process that will start it (this one for
    /// `run`), so a crash before the start is recorded can be recognised; `None` for `create`.
    /// `auto_remove` is what reconcile applies if that owner dies: `opts.auto_remove`, except
    /// for a build step, which goes with its build.
    #[allow(clippy::too_many_arguments)]
    fn insert_container(
        &self,
        id: &str,
        wanted: Option<&str>,
        opts: &ContainerConfig,
        image_id: &str,
        args: &[String],
        owner: Option<(i32, Option<i64>)>,
        auto_remove: bool,
    ) -> Result<String> {
        let wanted = wanted.map(|n| n.trim_start_matches('/'));
        if let Some(n) = wanted {
            if !names::valid(n) {
                return Err(Error::Invalid(format!(
                    "Invalid container name ({n}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
                )));
            }
        }
        let command = serde_json::to_string(args).map_err(|e| Error::Invalid(e.to_string()))?;
        let config = opts.to_stored()?;
        for attempt in 0..16 {
            let name = match wanted {
                Some(n) => n.to_string(),
                None => names::generate(),
            };
            // The row and its event in one transaction: one commit instead of three.
            let tx = rusqlite::Transaction::new_unchecked(
                self.store.conn(),
                rusqlite::TransactionBehavior::Immediate,
            )?;
            let r = tx.execute(
                "INSERT INTO containers (id, name, image, image_id, command, created, state, auto_remove, cgroup_parent, config, owner_pid, owner_start)
                 SELECT ?1, ?2, ?3, ?4, ?5, ?6, 'created', ?7, ?8, ?9, ?10, ?11 WHERE EXISTS (SELECT 1 FROM images WHERE id = ?4)",
                params![
                    id,
                    name,
                    opts.image,
                    image_id,
                    command,
                    now_nanos(),
                    auto_remove,
                    opts.cgroup_parent,
                    config,
                    owner.map(|(p, _)| p),
                    owner.and_then(|(_, t)| t)
                ],
            );
            match r {
                Ok(1) => {
                    self.event(id, "create", &[]);
                    tx.commit()?;
                    return Ok(name);
                }
                // The image was removed between resolve and insert.
                Ok(_) => return Err(Error::ImageNotFound(opts.image.clone())),
                Err(rusqlite::Error::SqliteFailure(f, _))
                    if f.code == rusqlite::ErrorCode::ConstraintViolation =>
                {
                    if wanted.is_some() || attempt == 15 {
                        let holder: String = self
                            .store
                            .conn()
                            .query_row("SELECT id FROM containers WHERE name = ?1", [&name], |r| {
                                r.get(0)
                            })
                            .unwrap_or_default();
                        return Err(Error::NameConflict { name, id: holder });
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        unreachable!("the loop returns on its last attempt")
    }

    /// `--pid`, `--ipc`, `--uts`: share the host's namespace (drop it from the spec) or another
    /// container's (join it through that container's init).
    fn apply_namespace_modes(
        &self,
        spec: &mut oci_spec::runtime::Spec,
        opts: &ContainerConfig,
    ) -> Result<()> {
        use crate::config::NamespaceMode;
        use oci_spec::runtime::LinuxNamespaceType as T;
        let mut linux = spec.linux().clone().unwrap_or_default();
        let mut namespaces = linux.namespaces().clone().unwrap_or_default();
        for (mode, typ, name) in [
            (&opts.pid_mode, T::Pid, "pid"),
            (&opts.ipc_mode, T::Ipc, "ipc"),
            (&opts.uts_mode, T::Uts, "uts"),
        ] {
            match mode {
                NamespaceMode::Private | NamespaceMode::Shareable => {}
                NamespaceMode::Host => {
                    if typ == T::Uts && opts.hostname.is_some() {
                        return Err(Error::Invalid(
                            "conflicting options: hostname and the UTS mode".into(),
                        ));
                    }
                    namespaces.retain(|n| n.typ() != typ);
                    if typ == T::Uts {
                        spec.set_hostname(None);
                    }
                }
                NamespaceMode::Container(other) => {
                    let other = self.find(other)?;
                    let pid = self.live_pid(&other.id)?.ok_or_else(|| {
                        Error::Invalid(format!(
                            "cannot join the {name} namespace of {}: it is not running",
                            other.name
                        ))
                    })?;
                    for n in namespaces.iter_mut().filter(|n| n.typ() == typ) {
                        n.set_path(Some(format!("/proc/{pid}/ns/{name}").into()));
                    }
                    if typ == T::Uts {
                        spec.set_hostname(None);
                    }
                }
            }
        }
        if opts.cgroupns_host {
            namespaces.retain(|n| n.typ() != T::Cgroup);
        }
        if let Some(other) = opts.network.container() {
            let other = self.find(other)?;
            let pid = self.live_pid(&other.id)?.ok_or_else(|| {
                Error::Invalid(format!(
                    "cannot join network of a non running container: {}",
                    other.name
                ))
            })?;
            for n in namespaces.iter_mut().filter(|n| n.typ() == T::Network) {
                n.set_path(Some(format!("/proc/{pid}/ns/net").into()));
            }
        }
        linux.set_namespaces(Some(namespaces));
        spec.set_linux(Some(linux));
        Ok(())
    }

    /// The container whose network namespace `--network container:NAME` joins, with Docker's
    /// refusals of what cannot go with it.
    fn network_peer(&self, opts: &ContainerConfig) -> Result<ContainerInfo> {
        let Some(name) = opts.network.container() else {
            return Err(Error::Invalid("not a container network".into()));
        };
        let conflict = |what: &str| Err(Error::Invalid(format!("conflicting options: {what}")));
        if opts.hostname.is_some() {
            return conflict("hostname and the network mode");
        }
        if !opts.dns.is_empty() || !opts.dns_search.is_empty() || !opts.dns_options.is_empty() {
            return conflict("dns and the network mode");
        }
        if !opts.extra_hosts.is_empty() {
            return conflict("custom host-to-IP mapping and the network mode");
        }
        if opts.mac_address.is_some() {
            return conflict("mac-address and the network mode");
        }
        if !opts.port_bindings.is_empty() || opts.publish_all {
            return conflict("port publishing and the container type network mode");
        }
        if !opts.exposed_ports.is_empty() {
            return conflict("port exposing and the container type network mode");
        }
        if !opts.links.is_empty() {
            return conflict(
                "container type network can't be used with links. This would result in undefined behavior",
            );
        }
        self.find(name)
    }

    fn prepare_start(
        &self,
        id: &str,
        dir: &Path,
        opts: &ContainerConfig,
        plan: &Plan,
    ) -> Result<Prepared> {
        if plan.usernet.as_ref().is_some_and(|u| u.shared()) {
            // Made (if it must be) before the container's mounts exist: its long-lived holder
            // keeps the mount namespace of the command that starts it.
            rootless::ensure_user_netns()?;
        }
        let rootfs = dir.join("rootfs");
        let upper = dir.join("upper");
        let work = dir.join("work");
        for d in [&rootfs, &upper, &work] {
            std::fs::create_dir_all(d)
                .map_err(|e| Error::io(format!("create {}", d.display()), e))?;
        }
        let mut hosts_extra: Vec<String> = opts
            .extra_hosts
            .iter()
            .map(|h| format!("{}\t{}", h.ip, h.name))
            .collect();
        let (link_hosts, link_env) = self.link_hosts(id, opts)?;
        hosts_extra.extend(link_hosts);
        let mut etc = write_etc_files(dir, &plan.hostname, opts, &hosts_extra)?;
        if let Some(other) = opts.network.container() {
            // The other container's own files, so what changes there shows here too.
            let theirs = self.container_dir(&self.find(other)?.id);
            for (_, path) in etc.iter_mut() {
                if let Some(name) = path.file_name() {
                    let shared = theirs.join(name);
                    if shared.exists() {
                        *path = shared;
                    }
                }
            }
        }
        let mut mounts = self.container_mounts(id, opts, plan)?;
        let args = if opts.init {
            mounts.push(init::mount(&init::host_path(&self.root)?));
            init::wrap(&plan.args)
        } else {
            plan.args.clone()
        };
        let mut warnings = Vec::new();
        let image_platform = hako_image::ImagePlatform::of(&plan.image.config);
        if let Some(e) = &plan.emulator {
            warnings.push(platform::emulated_note(&image_platform, e));
        }
        warnings.extend(platform::abi_warnings(
            &self.abi_cache(),
            &plan.image,
            &image_platform,
            &|id| self.store.resolve(id).is_ok(),
        ));
        let mut devices = spec::resolve_devices(&plan.limits.devices, opts.privileged)?;
        // CDI devices, read from their specifications now (they may have changed since the
        // container was created).
        let cdi = cdi::resolve(&opts.resources.cdi_devices)?;
        devices.extend(cdi.devices.iter().cloned());
        for m in &cdi.mounts {
            let mut options = m.options.clone();
            if !options.iter().any(|o| o == "bind" || o == "rbind") {
                options.push("rbind".into());
            }
            mounts.push(
                oci_spec::runtime::MountBuilder::default()
                    .destination(&m.container_path)
                    .typ(m.kind.clone().unwrap_or_else(|| "bind".into()))
                    .source(&m.host_path)
                    .options(options)
                    .build()
                    .map_err(|e| Error::Invalid(format!("CDI mount {}: {e}", m.container_path)))?,
            );
        }
        let device_rules =
            limits::device_rules(opts.privileged, &devices, &plan.limits.device_cgroup_rules);
        let spec = spec::build(&spec::SpecInput {
            rootfs: &rootfs,
            args,
            // Link variables first, replaced by the container's own (`-e`, the image's), as
            // Docker's daemon merges them; then CDI's.
            env: replace_or_append(link_env, plan.env.iter().chain(&cdi.env)),
            cwd: &plan.workdir,
            uid: plan.user.uid,
            gid: plan.user.gid,
            additional_gids: plan
                .user
                .additional_gids
                .iter()
                .chain(&cdi.additional_gids)
                .copied()
                .collect(),
            hostname: &plan.hostname,
            net: if opts.network == Network::Host {
                spec::NetMode::Host
            } else {
                spec::NetMode::Isolated
            },
            etc_files: etc,
            readonly_root: opts.read_only,
            extra_mounts: mounts,
            caps: plan.limits.capabilities.clone(),
            privileged: opts.privileged,
            rlimits: plan.limits.rlimits.clone(),
            sysctl: plan.limits.sysctls.clone(),
            shm_size: plan.limits.shm_size,
            no_new_privileges: opts.no_new_privileges,
            devices,
            device_rules: device_rules.clone(),
        })
        .map_err(|e| Error::Invalid(format!("{e}")))?;
        let mut spec = spec;
        let hook_state = (!cdi.hooks.is_empty())
            .then(|| cdi_hooks(&mut spec, &cdi.hooks, id, dir))
            .transpose()?;
        self.apply_namespace_modes(&mut spec, opts)?;
        if let Some(d) = &opts.domainname {
            spec.set_domainname(Some(d.clone()));
        }
        if !opts.annotations.is_empty() {
            let mut all = spec.annotations().clone().unwrap_or_default();
            all.extend(opts.annotations.iter().map(|(k, v)| (k.clone(), v.clone())));
            spec.set_annotations(Some(all));
        }
        if let Some(adj) = opts.oom_score_adj {
            let (adj, warning) = oom_score_adj_allowed(adj);
            warnings.extend(warning);
            let mut process = spec.process().clone().unwrap_or_default();
            process.set_oom_score_adj(Some(adj));
            spec.set_process(Some(process));
        }
        rootless::apply_userns(&mut spec, opts.userns_mode, opts.user.is_some())?;
        if !opts.privileged {
            let filter = opts.seccomp.resolve(&plan.limits.capabilities)?;
            let mut linux = spec.linux().clone().unwrap_or_default();
            linux.set_seccomp(filter);
            spec.set_linux(Some(linux));
        }

        let overlay = hako_runtime::Overlay {
            lower: plan.image.layers.iter().rev().cloned().collect(),
            upper,
            work,
            volatile: opts.volatile_rootfs
                && seccomp::kernel_version(&seccomp::kernel_release()) >= (5, 10),
        };
        let cgroups = CgroupSystem::detect()?;
        let resources = hako_cgroups::Resources {
            devices: Some(device_rules),
            ..plan.limits.resources.clone()
        };
        // A record of an earlier start's cgroup must not outlive this one's creation: killed
        // before the new record is written, the cleanup then works the cgroup out instead.
        let _ = std::fs::remove_file(dir.join(rootless::CGROUP_FILE));
        let cgroup = if rootless::active() {
            let (cgroup, dropped) = rootless::container_cgroup(
                &cgroups,
                opts.cgroup_parent.as_deref(),
                &format!("hako-{id}"),
                &resources,
                dir,
            )?;
            warnings.extend(dropped);
            cgroup
        } else {
            let cgroup = cgroups.create(opts.cgroup_parent.as_deref(), &format!("hako-{id}"))?;
            if let Err(e) = cgroup.apply(&resources) {
                let _ = cgroup.remove();
                return Err(e.into());
            }
            cgroup
        };
        if let Err(e) = rootless::record_cgroup(dir, &cgroup) {
            let _ = cgroup.remove();
            return Err(e);
        }
        // Limits this host cannot apply, dropped as Docker's daemon drops them: said, not
        // silently ignored.
        warnings.extend(plan.limits.warnings.iter().cloned());
        let net = plan
            .attach
            .as_ref()
            .map(|(network, attach)| netwire::NetWire {
                root: self.root.clone(),
                network: network.clone(),
                container_id: id.to_string(),
                opts: attach.clone(),
                hosts_file: dir.join("hosts"),
                hostname: plan.hostname.clone(),
                resolv_file: opts.dns.is_empty().then(|| dir.join("resolv.conf")),
                usernet: plan.usernet.clone(),
            })
            .or_else(|| {
                plan.usernet.as_ref().map(|u| netwire::NetWire {
                    root: self.root.clone(),
                    network: String::new(),
                    container_id: id.to_string(),
                    opts: hako_net::AttachOptions::default(),
                    hosts_file: dir.join("hosts"),
                    hostname: plan.hostname.clone(),
                    resolv_file: opts.dns.is_empty().then(|| dir.join("resolv.conf")),
                    usernet: Some(u.clone()),
                })
            });
        Ok(Prepared {
            spec,
            overlay,
            cgroup,
            warnings,
            net,
            seccomp_cache: self.seccomp_cache(),
            hook_state,
        })
    }

    /// Foreground `run`: the container is our child; we relay signals and wait for it.
    #[allow(clippy::too_many_arguments)]
    fn start_and_wait(
        &self,
        id: &str,
        dir: &Path,
        opts: &ContainerConfig,
        mode: RunMode,
        prepared: &Prepared,
        healthcheck: bool,
        on_start: &mut dyn FnMut(&Started<'_>),
    ) -> Result<i32> {
        let cgroup = &prepared.cgroup;
        // The pid goes on record before the process is released, so a `hako` killed between the
        // start and the `running` update leaves a container that `reconcile` reports as exited
        // (Docker's 255) rather than one that looks never started.
        let hook = |pid: i32| {
            self.store
                .conn()
                .execute(
                    "UPDATE containers SET pid = ?2, pid_start = ?3, started_at = ?4 WHERE id = ?1",
                    params![id, pid, process_start_time(pid), now_nanos()],
                )
                .map_err(|e| format!("recording the container's pid: {e}"))?;
            match &prepared.net {
                Some(n) => n.attach(self.store.conn(), pid),
                None => Ok(()),
            }
        };
        // A failure before the spawn undoes what the spawn's failure undoes: the cgroup and the
        // network's leases are made by then.
        let undo = |e: Error| {
            let _ = cgroup.kill_all();
            let _ = cgroup.remove();
            let _ = netwire::detach(self.store.conn(), &self.root, id);
            e
        };
        // With -t the container allocates its pty from its own devpts and sends us the master.
        let mut sized = None;
        let console = if opts.tty {
            let mut spec = prepared.spec.clone();
            let console = tty::open(&mut spec).map_err(undo)?;
            sized = Some(spec);
            Some(console)
        } else {
            None
        };
        // Syscalls that get ENOSYS are notified to an agent of ours, which records them.
        let (agent_ours, agent_theirs) = missing::socket_pair()
            .map_err(|e| undo(Error::io("create the seccomp agent's socket", e)))?;
        let (spec, profile_enosys) =
            missing::agent_spec(sized.as_ref().unwrap_or(&prepared.spec), &opts.seccomp);
        // Docker's json-file log, as a detached container's monitor writes it.
        let log = JsonLog::open(
            monitor::log_path(dir, id),
            opts.log_config.max_size,
            opts.log_config.files(),
        )
        .map_err(|e| undo(Error::io("open the container's log", e)))?;
        let pipes = match console.is_some() {
            true => None,
            false => Some(stdio::Pipes::new(opts.open_stdin).map_err(undo)?),
        };
        let pipe = SigpipeBlocked::new();
        let spawned = hako_runtime::spawn(
            &spec,
            &hako_runtime::SpawnOptions {
                overlay: Some(&prepared.overlay),
                cgroup: Some(cgroup),
                kill_with_parent: true,
                stdin: pipes
                    .as_ref()
                    .map_or(hako_runtime::Stdin::Null, |p| p.stdin()),
                stdout: pipes.as_ref().map(|p| p.outputs().0),
                stderr: pipes.as_ref().map(|p| p.outputs().1),
                before_start: Some(&hook),
                // The network's wiring needs the namespaces, not the cgroup.
                before_start_during_cgroup_join: true,
                console_socket: console
                    .as_ref()
                    .map(|c| std::os::fd::AsFd::as_fd(&c.theirs)),
                seccomp_cache: Some(&prepared.seccomp_cache),
                seccomp_agent: Some(std::os::fd::AsFd::as_fd(&agent_theirs)),
                hook_state: prepared.hook_state.as_deref(),
                ..Default::default()
            },
        )
        .map_err(Error::from)
        .and_then(|r| match console {
            Some(c) => c.master().map(|m| (r, Some(m))),
            None => Ok((r, None)),
        });
        // Only the start: once the container runs, a reader of our output that goes away
        // (`hako run -t … | head -1`) ends this hako, and the container with it, as before.
        drop(pipe);
        drop(agent_theirs);
        let (running, master) = match spawned {
            Ok(r) => r,
            Err(e) => {
                let _ = cgroup.kill_all();
                let _ = cgroup.remove();
                let _ = netwire::detach(self.store.conn(), &self.root, id);
                return Err(e);
            }
        };
        // A container whose calls could not be answered would hang in them: without the
        // thread, it is killed rather than left waiting.
        let agent = match missing::Agent::start(agent_ours, profile_enosys) {
            Ok(a) => a,
            Err(e) => {
                drop(running);
                let _ = cgroup.kill_all();
                let _ = cgroup.remove();
                let _ = netwire::detach(self.store.conn(), &self.root, id);
                return Err(Error::io("start the seccomp agent", e));
            }
        };
        let pid = running.pid();
        let recorded = self.store.conn().execute(
            "UPDATE containers SET state = 'running', pid = ?2, pid_start = ?3, started_at = ?4, missing_syscalls = NULL WHERE id = ?1",
            params![id, pid, process_start_time(pid), now_nanos()],
        );
        if let Err(e) = recorded {
            drop(running);
            let _ = cgroup.kill_all();
            let _ = cgroup.remove();
            return Err(e.into());
        }
        self.event(id, "start", &[]);
        // Its health helper is our child, as a detached one's is its monitor's, and dies with
        // this process.
        if healthcheck {
            self.health_reset(id)?;
            if let Ok(m) = monitor::monitor_binary() {
                monitor::start_health_helper(&m, &self.root, id);
            }
        }
        // What the engine dropped (limits a rootless container cannot have) and what the
        // runtime adjusted.
        let warnings: Vec<String> = prepared
            .warnings
            .iter()
            .chain(running.warnings())
            .cloned()
            .collect();
        on_start(&Started {
            id,
            warnings: &warnings,
        });
        // A terminal (its master) or the pipes: never both.
        let (relay, copier) = match (master, pipes) {
            (Some(m), _) => {
                let raw = opts.open_stdin.then(tty::RawMode::enter);
                let t = tty::relay(m, opts.open_stdin, log, !mode.hide_stdout);
                (Some((t, raw)), None)
            }
            (None, Some(p)) => (
                None,
                Some(p.relay(log, [!mode.hide_stdout, !mode.hide_stderr])),
            ),
            (None, None) => (None, None),
        };
        let status = running.wait(Duration::from_secs(opts.stop_timeout.unwrap_or(10)));
        if let Some((t, raw)) = relay {
            let _ = t.join();
            drop(raw);
        }
        // PID 1's exit tears down its pid namespace, but stragglers may still be exiting.
        let _ = cgroup.kill_all();
        if let Some(c) = copier {
            c.finish();
        }
        let missing = agent.finish();
        if !missing.is_empty() {
            for m in &missing {
                eprintln!("hako: {}", m.message());
            }
            let _ = self.store.conn().execute(
                "UPDATE containers SET missing_syscalls = ?2 WHERE id = ?1",
                params![id, serde_json::to_string(&missing).unwrap_or_default()],
            );
        }
        let cg_result = cgroup.remove();
        // Without a network of its own (none, host, container:) a container holds no leases:
        // `network connect` refuses those modes.
        if prepared.net.is_some() {
            let _ = netwire::release_exited(self.store.conn(), &self.root, id);
        }
        let code = status?.code();
        self.finish(id, dir, code, opts.auto_remove)?;
        cg_result?;
        Ok(code)
    }

    /// Records an exit (or deletes the container when it was started with `--rm`). Idempotent:
    /// only the first caller for a running container does the work.
    pub(crate) fn finish(&self, id: &str, dir: &Path, code: i32, auto_remove: bool) -> Result<()> {
        let running: bool = self
            .store
            .conn()
            .query_row(
                "SELECT state != 'exited' FROM containers WHERE id = ?1",
                [id],
                |r| r.get(0),
            )
            .unwrap_or(false);
        if running {
            self.event(id, "die", &[("exitCode", code.to_string())]);
        }
        if auto_remove {
            self.delete_container(id, dir);
            return Ok(());
        }
        // A stopped container with a healthcheck is unhealthy, as Docker shows it.
        self.store.conn().execute(
            "UPDATE containers SET state = 'exited', exit_code = ?2, finished_at = ?3, pid = NULL,
                health = CASE WHEN health IS NULL THEN NULL ELSE json_set(health, '$.Status', 'unhealthy') END
             WHERE id = ?1 AND state != 'exited'",
            params![id, code, now_nanos()],
        )?;
        Ok(())
    }

    pub(crate) fn delete_container(&self, id: &str, dir: &Path) {
        self.delete_container_with(id, dir, true)
    }

    /// Deletes the row, then the directory; anonymous volumes go too when `volumes` is set.
    pub(crate) fn delete_container_with(&self, id: &str, dir: &Path, volumes: bool) {
        self.event(id, "destroy", &[]);
        self.release_volumes(id, volumes);
        netwire::forget_connects(self.store.conn(), &self.root, id);
        // Row first: a crash after it leaves only a directory, which `reconcile` sweeps.
        let _ = self
            .store
            .conn()
            .execute("DELETE FROM containers WHERE id = ?1", [id]);
        let _ = std::fs::remove_dir_all(dir);
    }

    /// Fixes up containers whose process died without hako recording it (hako was killed).
    pub fn reconcile(&self) -> Result<()> {
        let rows: Vec<RunningRow> = {
            let mut st = self.store.conn().prepare(
                "SELECT id, pid, pid_start, auto_remove, cgroup_parent, owner_pid, owner_start FROM containers WHERE state = 'running'",
            )?;
            let it = st.query_map([], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                ))
            })?;
            it.collect::<rusqlite::Result<_>>()?
        };
        let mut cgroups = None;
        for (id, pid, start, auto_remove, parent, owner, owner_start) in rows {
            // A container whose owner (its monitor, or a foreground `run`) lives is finished
            // by that owner: finishing it here first would skip its restart policy, which only
            // the monitor's finish applies (a `--restart always` container polled
            // by `inspect` then never restarted).
            if alive(pid, start) || alive(owner, owner_start) {
                continue;
            }
            if cgroups.is_none() {
                cgroups = Some(CgroupSystem::detect()?);
            }
            if let Some(cs) = &cgroups {
                let cg =
                    rootless::open_cgroup(cs, parent.as_deref(), &id, &self.container_dir(&id));
                let _ = cg.kill_all();
                let _ = cg.remove();
            }
            // A monitor records the status in the exit file; without one (a foreground run
            // whose hako was killed) it was lost, and Docker reports 255 for that.
            let dir = self.container_dir(&id);
            let code = monitor::read_exit_file(&dir).unwrap_or(255);
            self.record_missing_syscalls(&id, &dir)?;
            self.finish(&id, &dir, code, auto_remove)?;
        }
        // A start whose owner died before recording the container's process.
        let orphans: Vec<(String, bool, Option<String>, bool)> = {
            let mut st = self.store.conn().prepare(
                "SELECT id, auto_remove, cgroup_parent, owner_pid, owner_start, pid IS NOT NULL FROM containers WHERE state = 'created' AND owner_pid IS NOT NULL",
            )?;
            let it = st.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, bool>(1)?,
                    r.get::<_, Option<String>>(2)?,
                    r.get::<_, i32>(3)?,
                    r.get::<_, Option<i64>>(4)?,
                    r.get::<_, bool>(5)?,
                ))
            })?;
            it.filter_map(|row| row.ok())
                .filter(|(_, _, _, pid, start, _)| !alive(Some(*pid), *start))
                .map(|(id, auto, parent, _, _, spawned)| (id, auto, parent, spawned))
                .collect()
        };
        for (id, auto_remove, parent, spawned) in orphans {
            if cgroups.is_none() {
                cgroups = Some(CgroupSystem::detect()?);
            }
            if let Some(cs) = &cgroups {
                let cg =
                    rootless::open_cgroup(cs, parent.as_deref(), &id, &self.container_dir(&id));
                let _ = cg.kill_all();
                let _ = cg.remove();
            }
            if spawned {
                // Its process was created (and likely ran) before the owner died mid-start.
                let dir = self.container_dir(&id);
                self.finish(&id, &dir, 255, auto_remove)?;
            } else if auto_remove {
                self.delete_container(&id, &self.container_dir(&id));
            } else {
                self.store.conn().execute(
                    "UPDATE containers SET owner_pid = NULL, owner_start = NULL WHERE id = ?1",
                    [&id],
                )?;
            }
        }
        // A build step's container stays recorded as --rm after its process exited, until its
        // build has made the layer and removed (or kept) it: if the build died meanwhile, the
        // container goes.
        let steps: Vec<String> = {
            let mut st = self.store.conn().prepare(
                "SELECT id, owner_pid, owner_start FROM containers WHERE state = 'exited' AND auto_remove = 1 AND owner_pid IS NOT NULL",
            )?;
            let it = st.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i32>(1)?,
                    r.get::<_, Option<i64>>(2)?,
                ))
            })?;
            it.filter_map(|row| row.ok())
                .filter(|(_, pid, start)| !alive(Some(*pid), *start))
                .map(|(id, ..)| id)
                .collect()
        };
        for id in steps {
            self.delete_container(&id, &self.container_dir(&id));
        }
        // Leases, veths and port rules of containers that no longer run. A container being
        // started is still `created` while its network is wired (the start hook runs before
        // its process is recorded): while its owner lives, its network is in use.
        if let Ok(nets) = netwire::networks(self.store.conn(), &self.root) {
            let rows: Vec<(String, String, Option<i32>, Option<i64>)> = self
                .store
                .conn()
                .prepare(
                    "SELECT id, state, owner_pid, owner_start FROM containers WHERE state IN ('running', 'created')",
                )?
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
                .collect::<rusqlite::Result<_>>()?;
            let in_use: std::collections::HashSet<String> = rows
                .into_iter()
                .filter(|(_, state, owner, start)| state == "running" || alive(*owner, *start))
                .map(|(id, ..)| id)
                .collect();
            let _ = nets.reconcile(&|cid| in_use.contains(cid));
        }
        // Directories without a row are left from a crash between the two steps of a removal.
        if let Ok(rd) = std::fs::read_dir(self.root.join("containers")) {
            for entry in rd.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let known: bool = self.store.conn().query_row(
                    "SELECT EXISTS(SELECT 1 FROM containers WHERE id = ?1)",
                    [&name],
                    |r| r.get(0),
                )?;
                if !known {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        }
        Ok(())
    }

    /// Containers, newest first; only running ones unless `all`.
    pub fn list(&self, all: bool) -> Result<Vec<ContainerInfo>> {
        self.reconcile()?;
        let out = self.query_containers("1 = 1", &[])?;
        Ok(out
            .into_iter()
            .filter(|c| all || c.state == State::Running)
            .collect())
    }

    fn query_containers(
        &self,
        filter: &str,
        args: &[&dyn rusqlite::ToSql],
    ) -> Result<Vec<ContainerInfo>> {
        let mut st = self.store.conn().prepare_cached(&format!(
            "SELECT id, name, image, image_id, command, created, state, exit_code, started_at, finished_at, pid, pid_start,
                json_extract(health, '$.Status')
             FROM containers WHERE {filter} ORDER BY created DESC"
        ))?;
        let rows = st.query_map(args, |r| {
            let command: String = r.get(4)?;
            Ok((
                ContainerInfo {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    image: r.get(2)?,
                    image_id: r.get(3)?,
                    command: serde_json::from_str(&command).unwrap_or_default(),
                    created: r.get(5)?,
                    state: State::parse(&r.get::<_, String>(6)?),
                    exit_code: r.get(7)?,
                    started_at: r.get(8)?,
                    finished_at: r.get(9)?,
                    health: r.get(12)?,
                },
                r.get::<_, Option<i32>>(10)?,
                r.get::<_, Option<i64>>(11)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            out.push(row?);
        }
        Ok(out.into_iter().map(|(c, _, _)| c).collect())
    }

    /// Finds a container by full id, name or unique id prefix. Looks up only that container
    /// (commands on one container stay fast with hundreds of others), reconciling everything
    /// only when its recorded process turns out to be dead.
    pub fn find(&self, key: &str) -> Result<ContainerInfo> {
        let name = key.trim_start_matches('/');
        let mut hits = self.query_containers("id = ?1 OR name = ?2", &[&key, &name])?;
        if hits.is_empty() && !key.is_empty() && key.bytes().all(|b| b.is_ascii_hexdigit()) {
            let pattern = format!("{key}%");
            hits = self.query_containers("id LIKE ?1", &[&pattern])?;
            if hits.len() > 1 {
                return Err(Error::Invalid(format!(
                    "multiple IDs found with provided prefix: {key}"
                )));
            }
        }
        let c = hits
            .into_iter()
            .next()
            .ok_or_else(|| Error::NoSuchContainer(key.to_string()))?;
        let gone = |e: Error| match e {
            Error::NoSuchContainer(_) => Error::NoSuchContainer(key.to_string()),
            e => e,
        };
        if c.state == State::Running && self.live_pid(&c.id).map_err(gone)?.is_none() {
            self.reconcile()?;
            return self
                .query_containers("id = ?1", &[&c.id])?
                .into_iter()
                .next()
                .ok_or_else(|| Error::NoSuchContainer(key.to_string()));
        }
        Ok(c)
    }

    /// Removes a container and its writable layer; `force` kills it first if it runs.
    pub fn remove(&self, key: &str, force: bool, volumes: bool) -> Result<String> {
        let c = self.find(key)?;
        if c.state == State::Running {
            if !force {
                return Err(Error::Running(c.id));
            }
            let (pid, start, parent): (Option<i32>, Option<i64>, Option<String>) = self
                .container_row(
                    &c.id,
                    "SELECT pid, pid_start, cgroup_parent FROM containers WHERE id = ?1",
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )?;
            let cs = CgroupSystem::detect()?;
            let cg =
                rootless::open_cgroup(&cs, parent.as_deref(), &c.id, &self.container_dir(&c.id));
            if let Some(p) = pid.filter(|_| alive(pid, start)) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(p),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            // The container's own hako may remove the cgroup at the same moment; only a
            // process that survives is a failure.
            if let Err(e) = cg.kill_all() {
                if alive(pid, start) {
                    return Err(e.into());
                }
            }
            let _ = cg.remove();
        }
        let _ = netwire::detach(self.store.conn(), &self.root, &c.id);
        self.delete_container_with(&c.id, &self.container_dir(&c.id), volumes);
        Ok(c.id)
    }
}

trait TimedWaitZero {
    fn timed_wait_zero(&self) -> bool;
}

impl TimedWaitZero for nix::sys::signal::SigSet {
    /// Consumes one pending signal of the set, if any.
    fn timed_wait_zero(&self) -> bool {
        let ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: valid sigset and timespec pointers for the duration of the call.
        unsafe { libc::sigtimedwait(self.as_ref(), std::ptr::null_mut(), &ts) > 0 }
    }
}

/// The container's environment, in Docker's order and precedence: PATH default, HOSTNAME, the
/// image's Env, then `-e` (replacing same-named entries), then HOME if still unset.
pub fn build_env(
    image_env: &[String],
    user_env: &[String],
    hostname: &str,
    home: &str,
) -> Vec<String> {
    let mut env: Vec<String> = Vec::with_capacity(image_env.len() + user_env.len() + 3);
    fn set(env: &mut Vec<String>, kv: String) {
        let key = kv.split('=').next().unwrap_or("").to_string();
        match env
            .iter_mut()
            .find(|e| e.split('=').next() == Some(key.as_str()))
        {
            Some(slot) => *slot = kv,
            None => env.push(kv),
        }
    }
    set(&mut env, format!("PATH={}", hako_runtime::DEFAULT_PATH));
    set(&mut env, format!("HOSTNAME={hostname}"));
    for e in image_env {
        set(&mut env, e.clone());
    }
    for e in user_env {
        if e.contains('=') {
            set(&mut env, e.clone());
        } else if let Ok(v) = std::env::var(e) {
            set(&mut env, format!("{e}={v}"));
        }
    }
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={home}"));
    }
    env
}

fn write_etc_files(
    dir: &Path,
    hostname: &str,
    opts: &ContainerConfig,
    extra_hosts: &[String],
) -> Result<[(&'static str, PathBuf); 3]> {
    let (net, dns) = (&opts.network, &opts.dns);
    let mut hosts = if *net == Network::Host {
        std::fs::read_to_string("/etc/hosts").unwrap_or_default()
    } else {
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n".to_string()
    };
    let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    for line in extra_hosts {
        hosts.push_str(line);
        hosts.push('\n');
    }
    let resolv = if !dns.is_empty() {
        // --dns replaces the nameservers and keeps the host's search domains, as Docker does.
        let mut r: String = host_resolv
            .lines()
            .filter(|l| !l.trim_start().starts_with("nameserver"))
            .map(|l| format!("{l}\n"))
            .collect();
        for d in dns {
            r.push_str(&format!("nameserver {d}\n"));
        }
        r
    } else if *net == Network::Host {
        host_resolv
    } else if net.attach_to().is_some() {
        // On a bridge the host's upstream resolvers are reachable through NAT.
        hako_net::resolv_conf_for_container(&host_resolv)
    } else {
        container_resolv_conf(&host_resolv)
    };
    let resolv = if opts.dns_search.is_empty() && opts.dns_options.is_empty() {
        resolv
    } else {
        resolv_overrides(&resolv, &opts.dns_search, &opts.dns_options)
    };
    let files = [
        ("/etc/hosts", dir.join("hosts"), hosts),
        (
            "/etc/hostname",
            dir.join("hostname"),
            format!("{hostname}\n"),
        ),
        ("/etc/resolv.conf", dir.join("resolv.conf"), resolv),
    ];
    for (_, path, content) in &files {
        std::fs::write(path, content)
            .map_err(|e| Error::io(format!("write {}", path.display()), e))?;
    }
    let [(a, pa, _), (b, pb, _), (c, pc, _)] = files;
    Ok([(a, pa), (b, pb), (c, pc)])
}

/// `--dns-search` and `--dns-option` over a container's resolv.conf: each replaces the lines
/// of its kind (`search`/`domain`, `options`); a search of `.` alone means none, as Docker's.
fn resolv_overrides(text: &str, search: &[String], options: &[String]) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let word = line.split_whitespace().next().unwrap_or("");
        let replaced = (!search.is_empty() && (word == "search" || word == "domain"))
            || (!options.is_empty() && word == "options");
        if !replaced {
            out.push_str(line);
            out.push('\n');
        }
    }
    let search: Vec<&str> = search
        .iter()
        .map(String::as_str)
        .filter(|s| *s != ".")
        .collect();
    if !search.is_empty() {
        out.push_str(&format!("search {}\n", search.join(" ")));
    }
    if !options.is_empty() {
        out.push_str(&format!("options {}\n", options.join(" ")));
    }
    out
}

/// The `--oom-score-adj` this process may give: lowering it below its own needs
/// CAP_SYS_RESOURCE, which a host (this one) or a rootless user may not have; then it is
/// clamped to its own value, with a warning, rather than failing the start.
fn oom_score_adj_allowed(wanted: i32) -> (i32, Option<String>) {
    let own: i32 = std::fs::read_to_string("/proc/self/oom_score_adj")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    // The kernel asks for the capability in the initial user namespace: rootless never has it.
    let capable = !rootless::active()
        // CAP_SYS_RESOURCE is capability 24.
        && limits::own_caps("CapEff").is_some_and(|eff| eff & (1 << 24) != 0);
    if wanted >= own || capable {
        return (wanted, None);
    }
    (
        own,
        Some(format!(
            "--oom-score-adj {wanted} needs CAP_SYS_RESOURCE to go below this process's {own}; clamped to {own}"
        )),
    )
}

/// The host's resolv.conf without loopback nameservers, which are unreachable from another
/// network namespace; Docker falls back to public resolvers when none remain.
pub fn container_resolv_conf(host: &str) -> String {
    let mut out = String::new();
    let mut servers = 0;
    for line in host.lines() {
        let mut words = line.split_whitespace();
        if words.next() == Some("nameserver") {
            let addr = words.next().unwrap_or("");
            if addr.starts_with("127.") || addr == "::1" {
                continue;
            }
            servers += 1;
        }
        out.push_str(line);
        out.push('\n');
    }
    if servers == 0 {
        out.push_str("nameserver 8.8.8.8\nnameserver 8.8.4.4\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_kinds_survive_wrapping_and_causes_are_said_once() {
        use ErrorKind as K;
        assert_eq!(Error::NoSuchContainer("c".into()).kind(), K::NotFound);
        assert_eq!(Error::ImageNotFound("i".into()).kind(), K::NotFound);
        let conflict = Error::NameConflict {
            name: "n".into(),
            id: "i".into(),
        };
        assert_eq!(conflict.kind(), K::Conflict);
        assert_eq!(Error::Running("c".into()).kind(), K::Conflict);
        assert_eq!(Error::NotRunning("c".into()).kind(), K::Conflict);
        assert_eq!(Error::Invalid("x".into()).kind(), K::Invalid);
        assert_eq!(Error::NoCommand.kind(), K::Invalid);
        // Wrapped errors keep their own kind.
        let image = Error::from(hako_image::Error::NotFound("busybox".into()));
        assert_eq!(image.kind(), K::NotFound);
        let in_use = Error::from(hako_image::Error::Conflict("x".into()));
        assert_eq!(in_use.kind(), K::Conflict);
        let spec = Error::from(hako_runtime::Error::InvalidSpec("x".into()));
        assert_eq!(spec.kind(), K::Invalid);
        let cgroup = Error::from(hako_cgroups::Error::InvalidName("..".into()));
        assert_eq!(cgroup.kind(), K::Invalid);
        // Io and database errors say their cause in their message only.
        let denied = Error::io(
            "create state root /x",
            std::io::Error::from_raw_os_error(libc::EACCES),
        );
        assert_eq!(denied.kind(), K::Internal);
        assert_eq!(
            denied.to_string(),
            "create state root /x: Permission denied (os error 13)"
        );
        assert!(std::error::Error::source(&denied).is_none());
        let db = Error::from(rusqlite::Error::InvalidQuery);
        assert_eq!(db.kind(), K::Internal);
        assert!(std::error::Error::source(&db).is_none());
        let cgroup_io = Error::from(hako_cgroups::Error::Write {
            path: "/sys/fs/cgroup/x/cpuset.cpus".into(),
            value: "63".into(),
            error: std::io::Error::from_raw_os_error(libc::ERANGE),
        });
        assert!(std::error::Error::source(&cgroup_io).is_none());
    }

    #[test]
    fn env_precedence() {
        let env = build_env(
            &["PATH=/custom".into(), "A=1".into(), "B=2".into()],
            &["B=3".into(), "C=4".into()],
            "h1",
            "/root",
        );
        assert_eq!(
            env,
            vec![
                "PATH=/custom",
                "HOSTNAME=h1",
                "A=1",
                "B=3",
                "C=4",
                "HOME=/root"
            ]
        );
        let env = build_env(&[], &["HOME=/x".into()], "h", "/root");
        assert_eq!(env[0], format!("PATH={}", hako_runtime::DEFAULT_PATH));
        assert_eq!(env.last().unwrap(), "HOME=/x");
    }

    #[test]
    fn resolv_conf_drops_loopback() {
        assert_eq!(
            container_resolv_conf("search x\nnameserver 127.0.0.53\nnameserver 10.0.0.2\n"),
            "search x\nnameserver 10.0.0.2\n"
        );
        assert!(container_resolv_conf("nameserver ::1\n").contains("8.8.8.8"));
    }

    #[test]
    fn network_names() {
        assert_eq!("none".parse::<Network>().unwrap(), Network::None);
        assert_eq!("bridge".parse::<Network>().unwrap(), Network::Default);
        assert_eq!(
            "mynet".parse::<Network>().unwrap(),
            Network::Named("mynet".into())
        );
        assert_eq!("host".parse::<Network>().unwrap(), Network::Host);
        let joined = "container:web".parse::<Network>().unwrap();
        assert_eq!(joined.container(), Some("web"));
        assert_eq!(joined.mode(), "container:web");
        assert_eq!(joined.attach_to(), None);
        assert!("container:".parse::<Network>().is_err());
    }

    #[test]
    fn wal_outlives_commands_until_it_grows() {
        let dir = tempfile::tempdir().unwrap();
        let wal = dir.path().join("hako.db-wal");
        let wal_len = || std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
        drop(Engine::open(dir.path()).unwrap());
        Engine::open(dir.path()).unwrap().event("c1", "create", &[]);
        let small = wal_len();
        assert!(
            small > 0 && small <= WAL_CHECKPOINT_BYTES,
            "a small WAL stays for the next command ({small} bytes)"
        );

        let e = Engine::open(dir.path()).unwrap();
        let pad = "x".repeat(3000);
        let mut n = 0;
        while wal_len() <= WAL_CHECKPOINT_BYTES {
            e.event("c2", "create", &[("pad", pad.clone())]);
            n += 1;
        }
        drop(e);
        assert!(!wal.exists(), "the last close checkpoints a large WAL");
        let events = Engine::open(dir.path())
            .unwrap()
            .events(0, None, None)
            .unwrap();
        assert_eq!(events.iter().filter(|e| e.id == "c1").count(), 1);
        assert_eq!(events.iter().filter(|e| e.id == "c2").count(), n);

        // A removal deletes files after its commit: that commit is checkpointed at once.
        let e = Engine::open(dir.path()).unwrap();
        e.volume_create(Some("v1"), &[]).unwrap();
        drop(e);
        assert!(wal.exists());
        let e = Engine::open(dir.path()).unwrap();
        e.volume_remove("v1").unwrap();
        drop(e);
        assert!(!wal.exists(), "volume rm leaves a checkpointed database");
    }

    #[test]
    fn start_time_of_self() {
        assert!(process_start_time(std::process::id() as i32).is_some());
        assert!(process_start_time(i32::MAX).is_none());
    }

    #[test]
    fn a_zombie_is_dead() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id() as i32;
        // Not reaped yet: /proc still has it, as a zombie.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| !s.contains(") Z "))
            .unwrap_or(false)
        {
            assert!(std::time::Instant::now() < deadline, "true did not exit");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok());
        assert_eq!(process_start_time(pid), None);
        assert!(!alive(Some(pid), Some(0)));
        child.wait().unwrap();
        let me = std::process::id() as i32;
        assert!(alive(Some(me), process_start_time(me)));
        assert!(!alive(Some(me), None), "a row without a start time");
    }

    /// A child that has exited and is not reaped yet (a zombie, still in /proc), with the start
    /// time it had while it ran, as a row records it.
    fn zombie() -> (std::process::Child, Option<i64>) {
        let mut child = std::process::Command::new("sh")
            .args(["-c", "read x"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let start = process_start_time(child.id() as i32);
        assert!(start.is_some(), "sh runs until its stdin closes");
        drop(child.stdin.take());
        let stat = format!("/proc/{}/stat", child.id());
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !std::fs::read_to_string(&stat)
            .unwrap()
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.starts_with(" Z"))
        {
            assert!(std::time::Instant::now() < deadline, "sh did not exit");
            std::thread::sleep(Duration::from_millis(2));
        }
        (child, start)
    }

    /// A container whose `hako` was killed while init had not reaped its process yet was listed
    /// running, and its port and address stayed taken, until init got round to it.
    #[test]
    fn reconcile_finishes_a_container_whose_process_is_a_zombie() {
        let dir = tempfile::tempdir().unwrap();
        let e = Engine::open(dir.path()).unwrap();
        let (mut z, start) = zombie();
        let pid = z.id() as i32;
        let id = "a".repeat(64);
        e.store
            .conn()
            .execute(
                "INSERT INTO containers (id, name, image, image_id, command, created, state, pid, pid_start, auto_remove, config)
                 VALUES (?1, 'zombie', 'busybox', 'x', '[]', 0, 'running', ?2, ?3, 0, '{}')",
                params![id, pid, start],
            )
            .unwrap();
        let c = e.find("zombie").unwrap();
        assert_eq!(c.state, State::Exited);
        assert_eq!(c.exit_code, Some(255));
        z.wait().unwrap();
    }

    /// `rm -v` killed between unlinking a container's anonymous volume and deleting it left the
    /// volume behind, unlinked, where `rm -v` run again no longer found it. A failure of the
    /// deletion (a trigger stands for the kill) must leave it linked.
    #[test]
    fn roots_from_before_volume_mount_points_gain_the_column_and_keep_their_rows() {
        let dir = tempfile::tempdir().unwrap();
        let id = "d".repeat(64);
        {
            let e = Engine::open(dir.path()).unwrap();
            e.store
                .conn()
                .execute_batch(&format!(
                    "ALTER TABLE container_volumes DROP COLUMN target;
                     INSERT INTO container_volumes (container_id, volume) VALUES ('{id}', 'v');"
                ))
                .unwrap();
        }
        let e = Engine::open(dir.path()).unwrap();
        let target: Option<String> = e
            .store
            .conn()
            .query_row(
                "SELECT target FROM container_volumes WHERE container_id = ?1",
                [&id],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(target, None);
        let current: bool = e
            .store
            .conn()
            .query_row(SCHEMA_CURRENT, [], |r| r.get(0))
            .unwrap();
        assert!(current);
    }

    #[test]
    fn rm_v_unlinks_and_deletes_anonymous_volumes_together() {
        let dir = tempfile::tempdir().unwrap();
        let e = Engine::open(dir.path()).unwrap();
        let vol = e.volume_create(None, &[]).unwrap();
        let id = "c".repeat(64);
        e.store
            .conn()
            .execute_batch(&format!(
                "INSERT INTO containers (id, name, image, image_id, command, created, state, auto_remove, config)
                 VALUES ('{id}', 'user', 'busybox', 'x', '[]', 0, 'exited', 0, '{{}}');
                 INSERT INTO container_volumes (container_id, volume) VALUES ('{id}', '{vol}');
                 CREATE TEMP TRIGGER crash BEFORE DELETE ON main.volumes
                 BEGIN SELECT RAISE(ABORT, 'killed'); END;"
            ))
            .unwrap();
        e.release_volumes(&id, true);
        let linked: bool = e
            .store
            .conn()
            .query_row(
                "SELECT EXISTS(SELECT 1 FROM container_volumes WHERE container_id = ?1 AND volume = ?2)",
                [&id, &vol],
                |r| r.get(0),
            )
            .unwrap();
        assert!(linked, "the volume stays linked to its container");
        e.store
            .conn()
            .execute_batch("DROP TRIGGER temp.crash")
            .unwrap();
        e.remove("user", false, true).unwrap();
        assert!(
            e.volume_list().unwrap().is_empty(),
            "rm -v again removes it"
        );
        assert!(!dir.path().join("volumes").join(&vol).exists());
        assert_eq!(
            std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
            0
        );
    }

    /// The rows of removed volumes commit only once their directories are out of `volumes/`
    /// (a kill after the commit left a directory no row names, which nothing collects); a
    /// commit that fails puts them back. A deferred foreign key makes the commit fail.
    #[test]
    fn a_failed_volume_deletion_keeps_the_directory_with_its_row() {
        let dir = tempfile::tempdir().unwrap();
        let e = Engine::open(dir.path()).unwrap();
        let vol = e.volume_create(Some("kept"), &[]).unwrap();
        std::fs::write(e.volume_dir(&vol).join("file"), "data").unwrap();
        e.store
            .conn()
            .execute_batch(&format!(
                "PRAGMA foreign_keys = ON;
                 CREATE TABLE pin (v TEXT REFERENCES volumes(name) DEFERRABLE INITIALLY DEFERRED);
                 INSERT INTO pin VALUES ('{vol}');"
            ))
            .unwrap();
        assert!(e.volume_remove(&vol).is_err(), "the commit fails");
        assert_eq!(e.volume_list().unwrap().len(), 1, "the row stays");
        assert_eq!(
            std::fs::read_to_string(e.volume_dir(&vol).join("file")).unwrap(),
            "data",
            "and its directory with it"
        );
        assert_eq!(
            std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
            0
        );
        e.store.conn().execute_batch("DELETE FROM pin").unwrap();
        e.volume_remove(&vol).unwrap();
        assert!(e.volume_list().unwrap().is_empty());
        assert!(!dir.path().join("volumes").join(&vol).exists());
        assert_eq!(
            std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
            0
        );
    }

    /// A build killed after a RUN step's process exited, while it made the step's layer, left
    /// the step's container behind as an exited container.
    #[test]
    fn reconcile_removes_the_exited_step_of_a_dead_build() {
        let dir = tempfile::tempdir().unwrap();
        let e = Engine::open(dir.path()).unwrap();
        let (me, my_start) = self_owner();
        let (mut z, dead_start) = zombie();
        let dead = z.id() as i32;
        z.wait().unwrap();
        for (id, name, owner, start) in [
            ("a".repeat(64), "live-build", me, my_start),
            ("b".repeat(64), "dead-build", dead, dead_start),
        ] {
            e.store
                .conn()
                .execute(
                    "INSERT INTO containers (id, name, image, image_id, command, created, state, exit_code, auto_remove, config, owner_pid, owner_start)
                     VALUES (?1, ?2, 'busybox', 'x', '[]', 0, 'exited', 0, 1, '{}', ?3, ?4)",
                    params![id, name, owner, start],
                )
                .unwrap();
            std::fs::create_dir_all(e.container_dir(&id).join("upper")).unwrap();
        }
        e.reconcile().unwrap();
        let names: Vec<String> = e.list(true).unwrap().into_iter().map(|c| c.name).collect();
        assert_eq!(names, ["live-build"], "the live build keeps its step");
        let dirs = std::fs::read_dir(dir.path().join("containers"))
            .unwrap()
            .count();
        assert_eq!(dirs, 1, "the dead build's step directory goes too");
    }
}
