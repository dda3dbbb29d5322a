//! Rootless hako: the same binary, run by an ordinary user, notices that it is not root and
//! works in a user namespace of that user's own.
//!
//! # Process model
//!
//! Each user has one user namespace for all its hako commands and containers, held by a small
//! process of its own (Podman's "pause process"): uid 0 inside is the user, and the user's
//! subordinate ranges from `/etc/subuid` and `/etc/subgid` are ids 1 and up, written by
//! `newuidmap`/`newgidmap`. Every `hako` command, at the very start of `main` while it is
//! still single-threaded, joins that namespace (`setns`), unshares a mount namespace of its own
//! and from then on runs the ordinary engine as root: files chowned to an image's ids, overlay
//! mounts (`userxattr`), network namespaces. The first command of a user creates the holder
//! (its pid and start time in `$XDG_RUNTIME_DIR/hako/userns.pid`); later ones only join it.
//!
//! Why not a fresh user namespace per command: namespaces made by two commands are siblings,
//! and the kernel lets a process into a container's pid or network namespace only with
//! `CAP_SYS_ADMIN` over the user namespace owning it, which a sibling never has: `exec`, `cp`,
//! `-p` forwarding and user networks would all have to re-enter each container's namespace
//! from outside first. It is also slower: mapping subordinate ids takes two setuid helpers
//! (`newuidmap`, `newgidmap`, a fork and exec each, about 2 ms), where joining is two system
//! calls. Each command's own mount namespace means that a command killed with `kill -9`
//! leaves no mount behind: its namespace, and every mount in it, goes with it.
//!
//! Containers get a user namespace nested in the user's (the same ids, or `--userns=keep-id`'s
//! layout), so the runtime treats them as a rootless runtime does: devices bound in, not made.

use std::ffi::{CString, OsString};
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// The argument that makes `hako` the user namespace's holder (never typed by a user).
pub const HOLDER_ARG: &str = "__userns-holder";

/// Where an ordinary user's hako keeps its state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Paths {
    /// Images, containers, volumes, the database: `$XDG_DATA_HOME/hako`, by default
    /// `~/.local/share/hako`.
    pub data: PathBuf,
    /// Runtime files (the namespace holder's pid, locks): `$XDG_RUNTIME_DIR/hako`, or
    /// `/tmp/hako-run-UID` without a login session.
    pub runtime: PathBuf,
    /// Settings: `$XDG_CONFIG_HOME/hako/config.json`, by default `~/.config/hako/config.json`.
    pub config: PathBuf,
}

impl Paths {
    /// The paths of user `uid` from its environment (`env` looks a variable up); `home` is the
    /// home directory when `$HOME` is unset.
    pub fn from_env(
        uid: u32,
        env: impl Fn(&str) -> Option<OsString>,
        home: impl FnOnce() -> Option<PathBuf>,
    ) -> Result<Paths> {
        let abs = |k: &str| {
            env(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
                .filter(|p| p.is_absolute())
        };
        let home = abs("HOME").or_else(home);
        let under_home = |rel: &str, var: &str| {
            abs(var)
                .or_else(|| home.as_ref().map(|h| h.join(rel)))
                .ok_or_else(|| {
                    Error::Invalid(format!(
                        "neither ${var} nor $HOME is set: rootless hako keeps its state there"
                    ))
                })
        };
        Ok(Paths {
            data: under_home(".local/share", "XDG_DATA_HOME")?.join("hako"),
            config: under_home(".config", "XDG_CONFIG_HOME")?
                .join("hako")
                .join("config.json"),
            runtime: match abs("XDG_RUNTIME_DIR") {
                Some(d) => d.join("hako"),
                None => PathBuf::from(format!("/tmp/hako-run-{uid}")),
            },
        })
    }

    /// The calling user's paths.
    pub fn current() -> Result<Paths> {
        let uid = host_uid();
        Paths::from_env(
            uid,
            |k| std::env::var_os(k),
            || {
                nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
                    .ok()
                    .flatten()
                    .map(|u| u.dir)
            },
        )
    }
}

/// Whether this process is rootless hako (see [`hako_base::userns::rootless`]).
pub fn active() -> bool {
    hako_base::userns::rootless()
}

/// The host uid of the invoking user: the effective uid outside a user namespace, and the
/// host id that is root inside one.
pub fn host_uid() -> u32 {
    hako_base::userns::uid_map()
        .iter()
        .find(|m| m.inside == 0 && m.size > 0)
        .filter(|_| hako_base::userns::in_user_namespace())
        .map_or_else(|| nix::unistd::geteuid().as_raw(), |m| m.outside)
}

/// The state root when neither `--root` nor `HAKO_ROOT` names one: the user's data directory
/// when rootless, [`crate::DEFAULT_ROOT`] for root.
pub fn default_root() -> PathBuf {
    if active() {
        if let Ok(p) = Paths::current() {
            return p.data;
        }
    }
    PathBuf::from(crate::DEFAULT_ROOT)
}

/// Whether this process must join the user's namespace before it does anything: an ordinary
/// user outside any user namespace.
pub fn must_enter() -> bool {
    !nix::unistd::geteuid().is_root() && !hako_base::userns::in_user_namespace()
}

/// Creates `dir` (mode 0700) for the user, or checks that an existing one is the user's and
/// private: a runtime directory under `/tmp` that someone else made first must not be used.
pub fn private_dir(dir: &Path) -> Result<()> {
    if let Some(parent) = dir.parent() {
        if !parent.starts_with("/tmp") {
            std::fs::create_dir_all(parent)
                .map_err(|e| Error::io(format!("create {}", parent.display()), e))?;
        }
    }
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => return Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(Error::io(format!("create {}", dir.display()), e)),
    }
    let m = std::fs::symlink_metadata(dir)
        .map_err(|e| Error::io(format!("inspect {}", dir.display()), e))?;
    let me = nix::unistd::geteuid().as_raw();
    if !m.is_dir() || m.uid() != me || m.permissions().mode() & 0o077 != 0 {
        return Err(Error::Invalid(format!(
            "{} is not a private directory of uid {me} (owner {}, mode {:o}): remove it or set $XDG_RUNTIME_DIR",
            dir.display(),
            m.uid(),
            m.permissions().mode() & 0o7777
        )));
    }
    Ok(())
}

fn holder_file(paths: &Paths) -> PathBuf {
    paths.runtime.join("userns.pid")
}

/// The recorded holder, if it still runs.
fn live_holder(file: &Path) -> Option<(i32, u64)> {
    let text = std::fs::read_to_string(file).ok()?;
    let mut f = text.split_whitespace().map(str::parse::<u64>);
    let (pid, start) = (f.next()?.ok()?, f.next()?.ok()?);
    let pid = i32::try_from(pid).ok()?;
    hako_base::proc::alive(pid, start).then_some((pid, start))
}

/// What on this host keeps an ordinary user from a working user namespace, as a hint naming
/// the setting and its fix; `read` reads a file under /proc/sys. Debian's and older Ubuntu's
/// kernels have a switch, any kernel a count, and Ubuntu 23.10 and later let AppArmor take
/// the namespace's capabilities away (the namespace is made, but nothing can be mounted in it).
fn userns_restriction(read: impl Fn(&str) -> Option<String>) -> Option<String> {
    let value = |f: &str| read(f).map(|v| v.trim().to_string());
    if value("user/max_user_namespaces").as_deref() == Some("0") {
        return Some(
            "user.max_user_namespaces is 0 on this host (an administrator can raise it: sysctl -w user.max_user_namespaces=15000)"
                .into(),
        );
    }
    if value("kernel/unprivileged_userns_clone").as_deref() == Some("0") {
        return Some(
            "kernel.unprivileged_userns_clone is 0 on this host (an administrator can allow them: sysctl -w kernel.unprivileged_userns_clone=1)"
                .into(),
        );
    }
    if value("kernel/apparmor_restrict_unprivileged_userns").as_deref() == Some("1") {
        return Some(
            "AppArmor restricts unprivileged user namespaces on this host (kernel.apparmor_restrict_unprivileged_userns=1): an administrator can give hako a profile with the `userns,` rule, or set the sysctl to 0"
                .into(),
        );
    }
    None
}

fn host_userns_restriction() -> Option<String> {
    userns_restriction(|f| std::fs::read_to_string(Path::new("/proc/sys").join(f)).ok())
}

/// `what` failed with `e` inside or while making the user's namespace: the host setting that
/// explains it when there is one, else the system's error.
fn userns_error(what: &str, e: nix::Error) -> Error {
    match (e, host_userns_restriction()) {
        (
            nix::Error::EPERM | nix::Error::EACCES | nix::Error::ENOSPC | nix::Error::EINVAL,
            Some(why),
        ) => Error::Invalid(format!("cannot {what}: {why}")),
        _ => Error::io(what.to_string(), e.into()),
    }
}

/// Joins the user namespace of `holder` and gives this process a mount namespace of its own.
fn join(holder: (i32, u64)) -> Result<()> {
    let (pid, start) = holder;
    let path = format!("/proc/{pid}/ns/user");
    let ns = std::fs::File::open(&path).map_err(|e| Error::io(format!("open {path}"), e))?;
    // The pid may have been reused between the check and the open: the start time says.
    if !hako_base::proc::alive(pid, start) {
        return Err(Error::io(
            format!("join the user namespace of pid {pid}"),
            std::io::Error::from(std::io::ErrorKind::NotFound),
        ));
    }
    nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWUSER)
        .map_err(|e| Error::io(format!("join the user namespace {path}"), e.into()))?;
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)
        .map_err(|e| userns_error("create a mount namespace in the user namespace", e))?;
    // Mounts made here stay here (the kernel already turned the shared ones into slaves for a
    // namespace of a less privileged user namespace; this makes it explicit).
    nix::mount::mount(
        None::<&str>,
        "/",
        None::<&str>,
        nix::mount::MsFlags::MS_REC | nix::mount::MsFlags::MS_SLAVE,
        None::<&str>,
    )
    .map_err(|e| Error::io("make / a slave mount", e.into()))?;
    Ok(())
}

/// Joins the user's namespace, creating it (and its holder) first if there is none. Must run
/// before any thread exists: the kernel refuses `setns` into a user namespace otherwise.
///
/// Errors are one line naming what is missing: no subordinate ids in `/etc/subuid`, no
/// `newuidmap` (package uidmap), an unusable runtime directory.
pub fn enter() -> Result<()> {
    let paths = Paths::current()?;
    private_dir(&paths.runtime)?;
    let file = holder_file(&paths);
    if let Some(h) = live_holder(&file) {
        if join(h).is_ok() {
            return Ok(());
        }
    }
    // Two first commands at once must make one namespace, not two.
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(paths.runtime.join("userns.lock"))
        .map_err(|e| Error::io(format!("open {}", paths.runtime.display()), e))?;
    let _lock = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| Error::io("lock the user namespace", e.into()))?;
    if let Some(h) = live_holder(&file) {
        return join(h);
    }
    let identity = hako_runtime::rootless::Identity::current().map_err(runtime_err)?;
    let ns = hako_runtime::rootless::UserNamespace::with_subids(&identity).map_err(runtime_err)?;
    let pid = spawn_holder(&ns)?;
    let start = hako_base::proc::start_time(pid).ok_or_else(|| {
        Error::io(
            "start the user namespace holder",
            std::io::Error::from(std::io::ErrorKind::NotFound),
        )
    })?;
    let tmp = file.with_extension(format!("pid.{}", std::process::id()));
    std::fs::write(&tmp, format!("{pid} {start}\n"))
        .and_then(|()| std::fs::rename(&tmp, &file))
        .map_err(|e| Error::io(format!("write {}", file.display()), e))?;
    join((pid, start))
}

/// Executes this program again with the same arguments, after [`enter`]: the kernel ties a
/// process image to the user namespace it was executed in, and a container that the engine
/// forks inherits that. Executed in the initial namespace, the user's own processes there
/// could not open the container's namespaces (`/proc/PID/ns/*` of a process that changed
/// its credentials needs `CAP_SYS_PTRACE` over that namespace), which the network helper
/// and `exec` do. Returns only on failure.
pub fn reexec() -> Error {
    let args: Vec<CString> = std::env::args_os()
        .filter_map(|a| CString::new(a.as_bytes()).ok())
        .collect();
    let e = nix::unistd::execv(c"/proc/self/exe", &args).unwrap_err();
    Error::io("execute hako in the user namespace", e.into())
}

fn runtime_err(e: hako_runtime::rootless::RootlessError) -> Error {
    Error::Runtime(e.into())
}

/// Forks the holder: it makes a new user namespace, waits until its maps are written (by
/// `newuidmap`/`newgidmap`, which must run outside it), then becomes `hako __userns-holder`
/// in a session of its own and waits forever.
fn spawn_holder(ns: &hako_runtime::rootless::UserNamespace) -> Result<i32> {
    use nix::unistd::{fork, ForkResult};
    let pipe = || {
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .map_err(|e| Error::io("create a pipe", e.into()))
    };
    let (ready_r, ready_w) = pipe()?;
    let (go_r, go_w) = pipe()?;
    let exe = std::env::current_exe().map_err(|e| Error::io("locate the hako binary", e))?;
    let exe_c = CString::new(exe.as_os_str().as_bytes())
        .map_err(|_| Error::Invalid(format!("NUL in path {}", exe.display())))?;
    let argv = [exe_c.clone(), CString::new(HOLDER_ARG).expect("no NUL")];
    // SAFETY: the caller is single-threaded (the start of main), so the child may do anything
    // the parent could; it only makes system calls and then execs or exits.
    match unsafe { fork() }.map_err(|e| Error::io("fork", e.into()))? {
        ForkResult::Child => {
            drop(ready_r);
            drop(go_w);
            holder_child(ready_w, go_r, &exe_c, &argv)
        }
        ForkResult::Parent { child } => {
            drop(ready_w);
            drop(go_r);
            let pid = child.as_raw();
            let abort = |e: Error| {
                let _ = nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGKILL);
                let _ = nix::sys::wait::waitpid(child, None);
                e
            };
            let mut errno = [0u8; 4];
            let mut r = std::fs::File::from(ready_r);
            if let Err(e) = r.read_exact(&mut errno) {
                return Err(abort(Error::io("start the user namespace holder", e)));
            }
            let errno = i32::from_ne_bytes(errno);
            if errno != 0 {
                return Err(abort(userns_error(
                    "create a user namespace",
                    nix::Error::from_raw(errno),
                )));
            }
            if let Err(e) = ns.write_to(pid) {
                return Err(abort(e.into()));
            }
            let mut w = std::fs::File::from(go_w);
            w.write_all(b"g")
                .map_err(|e| abort(Error::io("start the user namespace holder", e)))?;
            Ok(pid)
        }
    }
}

fn holder_child(ready: OwnedFd, go: OwnedFd, exe: &CString, argv: &[CString]) -> ! {
    let code = match nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUSER) {
        Ok(()) => 0i32,
        Err(e) => e as i32,
    };
    let _ = nix::unistd::write(&ready, &code.to_ne_bytes());
    if code != 0 {
        // SAFETY: ends the forked child without running the parent's exit handlers.
        unsafe { libc::_exit(1) };
    }
    let mut b = [0u8; 1];
    if !matches!(nix::unistd::read(&go, &mut b), Ok(1)) {
        // SAFETY: as above; the parent failed to write the maps (or died).
        unsafe { libc::_exit(1) };
    }
    // No controlling terminal (a ctrl-c in the user's shell is not for it), no working
    // directory that keeps a file system busy, no inherited stdio.
    let _ = nix::unistd::setsid();
    let _ = nix::unistd::chdir("/");
    if let Ok(null) = nix::fcntl::open(
        "/dev/null",
        nix::fcntl::OFlag::O_RDWR,
        nix::sys::stat::Mode::empty(),
    ) {
        for fd in 0..3 {
            // SAFETY: dup2 onto the standard descriptors of this single-threaded child.
            unsafe { libc::dup2(null.as_raw_fd(), fd) };
        }
    }
    let _ = nix::unistd::execv(exe, argv);
    // SAFETY: exec failed; end the child.
    unsafe { libc::_exit(127) }
}

/// The holder's life: wait for signals until one ends it. It keeps no file open and has no
/// work to do; the user namespace lives as long as it does.
pub fn holder_main() -> ! {
    loop {
        nix::unistd::pause();
    }
}

/// Sets `HAKO_CONFIG` to the user's `config.json` unless it is set: the registry settings of
/// an ordinary user are its own. Call while single-threaded.
pub fn use_user_config() {
    if std::env::var_os("HAKO_CONFIG").is_none() {
        if let Ok(p) = Paths::current() {
            std::env::set_var("HAKO_CONFIG", p.config);
        }
    }
}

/// One line of a container's id map: `size` ids from `container` are `outer` in the user's
/// namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NestedMap {
    /// First id in the container.
    pub container: u32,
    /// First id in the user's namespace.
    pub outer: u32,
    /// Number of ids.
    pub size: u32,
}

/// How many ids, from 0, the user's namespace has without a gap.
fn contiguous(map: &[hako_base::userns::MapLine]) -> u64 {
    let mut lines: Vec<_> = map.to_vec();
    lines.sort_by_key(|m| m.inside);
    let mut n = 0u64;
    for m in lines {
        if u64::from(m.inside) != n {
            break;
        }
        n += u64::from(m.size);
    }
    n
}

/// The container's map for `mode` in a namespace of `n` ids whose root is the user (host id
/// `own`): the same ids, or keep-id's layout (the user's id `own` is itself inside, ids below
/// it shift up by one, ids above it stay).
fn nested_map(
    mode: crate::config::UsernsMode,
    n: u64,
    own: u32,
    kind: &str,
) -> Result<Vec<NestedMap>> {
    let n32 = u32::try_from(n).unwrap_or(u32::MAX);
    match mode {
        crate::config::UsernsMode::KeepId => {
            if u64::from(own) >= n {
                return Err(Error::Invalid(format!(
                    "--userns=keep-id needs {kind} {own} inside, but the user namespace has {kind}s 0-{}: ask for a subordinate range of at least {own} ids",
                    n.saturating_sub(1)
                )));
            }
            let mut m = vec![
                NestedMap {
                    container: 0,
                    outer: 1,
                    size: own,
                },
                NestedMap {
                    container: own,
                    outer: 0,
                    size: 1,
                },
            ];
            if n32 > own + 1 {
                m.push(NestedMap {
                    container: own + 1,
                    outer: own + 1,
                    size: n32 - own - 1,
                });
            }
            m.retain(|l| l.size > 0);
            Ok(m)
        }
        _ => Ok(vec![NestedMap {
            container: 0,
            outer: 0,
            size: n32,
        }]),
    }
}

/// Splits each line of `maps` where the user's namespace's own lines (`outer`) begin and end:
/// the kernel wants each line of a child's map inside one line of its parent's.
fn split_at_extents(maps: &[NestedMap], outer: &[hako_base::userns::MapLine]) -> Vec<NestedMap> {
    let mut cuts: Vec<u64> = outer
        .iter()
        .flat_map(|m| [u64::from(m.inside), u64::from(m.inside) + u64::from(m.size)])
        .collect();
    cuts.sort_unstable();
    let mut out = Vec::new();
    for m in maps {
        let (mut start, end) = (u64::from(m.outer), u64::from(m.outer) + u64::from(m.size));
        while start < end {
            let next = cuts
                .iter()
                .copied()
                .find(|&c| c > start)
                .unwrap_or(end)
                .min(end);
            out.push(NestedMap {
                container: (u64::from(m.container) + start - u64::from(m.outer)) as u32,
                outer: start as u32,
                size: (next - start) as u32,
            });
            start = next;
        }
    }
    out
}

fn to_oci(maps: &[NestedMap]) -> Vec<oci_spec::runtime::LinuxIdMapping> {
    maps.iter()
        .map(|m| {
            oci_spec::runtime::LinuxIdMappingBuilder::default()
                .container_id(m.container)
                .host_id(m.outer)
                .size(m.size)
                .build()
                .expect("every field of an id mapping is set")
        })
        .collect()
}

/// The host gid of the invoking user (root's group inside).
pub fn host_gid() -> u32 {
    hako_base::userns::gid_map()
        .iter()
        .find(|m| m.inside == 0 && m.size > 0)
        .filter(|_| hako_base::userns::in_user_namespace())
        .map_or_else(|| nix::unistd::getegid().as_raw(), |m| m.outside)
}

/// The user's grants, for messages that name `/etc/subuid` and the range.
fn identity() -> hako_runtime::rootless::Identity {
    let uid = host_uid();
    let user = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map_or_else(|| uid.to_string(), |u| u.name);
    let read = |f| std::fs::read_to_string(f).unwrap_or_default();
    hako_runtime::rootless::Identity::from_grants(
        uid,
        host_gid(),
        user,
        &read(hako_runtime::rootless::SUBUID_FILE),
        &read(hako_runtime::rootless::SUBGID_FILE),
    )
}

/// Checks `--userns` for this engine (rootful: only the host's; rootless: not the host's),
/// and for a rootless container gives `spec` its user namespace, nested in the user's, and
/// checks that the ids it runs as exist there (one line naming `/etc/subuid` and the range
/// when an image's `USER` is beyond it). With keep-id and no `--user`, the container runs as
/// the user.
pub(crate) fn apply_userns(
    spec: &mut oci_spec::runtime::Spec,
    mode: crate::config::UsernsMode,
    explicit_user: bool,
) -> Result<()> {
    use crate::config::UsernsMode;
    if !active() {
        if mode == UsernsMode::KeepId {
            return Err(Error::Invalid(
                "--userns=keep-id is for rootless hako: root's containers already see the host's ids".into(),
            ));
        }
        return Ok(());
    }
    if mode == UsernsMode::Host {
        return Err(Error::Invalid(
            "--userns=host is not possible rootless: an ordinary user cannot give a container the host's ids (only its own and its subordinate range); use the default or --userns=keep-id".into(),
        ));
    }
    let (own_uid, own_gid) = (host_uid(), host_gid());
    let (outer_uids, outer_gids) = (hako_base::userns::uid_map(), hako_base::userns::gid_map());
    let uids = split_at_extents(
        &nested_map(mode, contiguous(&outer_uids), own_uid, "uid")?,
        &outer_uids,
    );
    let gids = split_at_extents(
        &nested_map(mode, contiguous(&outer_gids), own_gid, "gid")?,
        &outer_gids,
    );
    let mut process = spec.process().clone().unwrap_or_default();
    if mode == UsernsMode::KeepId && !explicit_user {
        let mut user = process.user().clone();
        user.set_uid(own_uid);
        user.set_gid(own_gid);
        process.set_user(user);
    }
    let user = process.user().clone();
    let inside = |maps: &[NestedMap], id: u32| {
        maps.iter().any(|m| {
            id >= m.container && u64::from(id) < u64::from(m.container) + u64::from(m.size)
        })
    };
    let extra = user.additional_gids().clone().unwrap_or_default();
    if !inside(&uids, user.uid())
        || !inside(&gids, user.gid())
        || extra.iter().any(|g| !inside(&gids, *g))
    {
        let id = identity();
        let ns = hako_runtime::rootless::UserNamespace::with_subids(&id)
            .map_err(|e| Error::Runtime(e.into()))?;
        ns.check_ids(user.uid(), user.gid(), &extra)
            .map_err(|e| Error::Runtime(e.into()))?;
    }
    spec.set_process(Some(process));
    let mut linux = spec.linux().clone().unwrap_or_default();
    let mut ns = linux.namespaces().clone().unwrap_or_default();
    ns.retain(|n| n.typ() != oci_spec::runtime::LinuxNamespaceType::User);
    let mut user_ns = oci_spec::runtime::LinuxNamespace::default();
    user_ns.set_typ(oci_spec::runtime::LinuxNamespaceType::User);
    ns.push(user_ns);
    linux.set_namespaces(Some(ns));
    linux.set_uid_mappings(Some(to_oci(&uids)));
    linux.set_gid_mappings(Some(to_oci(&gids)));
    spec.set_linux(Some(linux));
    Ok(())
}

/// File in a container's directory naming its cgroup directories, one per line (none: it has
/// no cgroup), as they were made when it started.
pub(crate) const CGROUP_FILE: &str = "cgroup";

/// Records where container directory `dir`'s cgroup is, for the commands that later freeze,
/// kill, measure or remove it: they may run from another cgroup than the one that started it
/// (another login session), and a cgroup worked out from theirs would be the wrong one.
pub(crate) fn record_cgroup(dir: &Path, cg: &hako_cgroups::Cgroup) -> Result<()> {
    let mut text = String::new();
    for p in cg.paths() {
        text.push_str(&p.to_string_lossy());
        text.push('\n');
    }
    // Written aside and renamed into place: a kill in the middle of writing it in place
    // left an empty record, which reads as "no cgroup", and the container's cleanup then left
    // its cgroup behind (seen by the fault-injection tests). Without a record the cleanup
    // works the cgroup out instead.
    let file = dir.join(CGROUP_FILE);
    let tmp = dir.join(format!("{CGROUP_FILE}.tmp"));
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, &file))
        .map_err(|e| Error::io(format!("write {}", file.display()), e))
}

/// The cgroup of container `id` whose directory is `dir`: the one recorded when it started;
/// for a container started before hako recorded them, the one a start would make from this
/// process's cgroup (as [`hako_cgroups::CgroupSystem::open`]), or an empty handle, on which
/// every operation does nothing, where rootless containers get no cgroup.
pub(crate) fn open_cgroup(
    cs: &hako_cgroups::CgroupSystem,
    parent: Option<&str>,
    id: &str,
    dir: &Path,
) -> hako_cgroups::Cgroup {
    if let Ok(text) = std::fs::read_to_string(dir.join(CGROUP_FILE)) {
        let dirs: Vec<PathBuf> = text.lines().map(PathBuf::from).collect();
        return cs.open_dirs(&dirs);
    }
    if active() && !cgroup_driver(cs).creates_cgroups() {
        return cs.open_dirs(&[]);
    }
    cs.open(parent, &format!("hako-{id}"))
}

/// How this rootless engine's containers get their cgroups. The caller's uid is its
/// effective one as this process sees it: inside the user's namespace the user is 0, and the
/// delegated cgroup's files read as 0's there (the host uid made every delegation look like
/// another user's).
pub(crate) fn cgroup_driver(cs: &hako_cgroups::CgroupSystem) -> hako_cgroups::rootless::Driver {
    cs.rootless_driver(nix::unistd::geteuid().as_raw())
}

/// Why this rootless engine's containers have no cgroup, or None when they have one (root, or
/// a delegated cgroup v2 subtree).
pub(crate) fn no_cgroup_reason(cs: &hako_cgroups::CgroupSystem) -> Option<String> {
    if !active() {
        return None;
    }
    match cgroup_driver(cs) {
        hako_cgroups::rootless::Driver::None(reason) => Some(reason.to_string()),
        _ => None,
    }
}

/// File in a container's directory listing the limits it was created without (one per
/// line), which inspect shows as `HostConfig.DroppedLimits`.
pub(crate) const DROPPED_FILE: &str = "dropped-limits";

/// The limits a container was created without.
pub(crate) fn dropped_limits(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join(DROPPED_FILE))
        .map(|t| t.lines().map(str::to_owned).collect())
        .unwrap_or_default()
}

/// The cgroup of rootless container `name`: a delegated cgroup v2 subtree's, or none (an
/// empty handle on which every operation does nothing). Each limit that cannot apply is
/// returned once, as the warning to print, and recorded in `dir` for inspect.
pub(crate) fn container_cgroup(
    cs: &hako_cgroups::CgroupSystem,
    parent: Option<&str>,
    name: &str,
    res: &hako_cgroups::Resources,
    dir: &Path,
) -> Result<(hako_cgroups::Cgroup, Vec<String>)> {
    let driver = cgroup_driver(cs);
    let mut dropped: Vec<String> = driver.dropped(res).iter().map(|d| d.to_string()).collect();
    let cgroup = if let hako_cgroups::rootless::Driver::Delegated { dir: base, .. } = &driver {
        let cg = match parent {
            Some(p) => cs.create(Some(p), name)?,
            None => {
                // cgroup v2 enables controllers only for a cgroup's children when it holds
                // no process itself, and the caller (systemd-run --user --scope, a user
                // service) usually sits in the delegated cgroup: moved into a leaf first.
                hako_cgroups::rootless::vacate(base)?;
                cs.create_below(base, name)?
            }
        };
        if let Err(e) = cg.apply(&hako_cgroups::rootless::applicable(&driver, res)) {
            let _ = cg.remove();
            return Err(e.into());
        }
        cg
    } else {
        if let (Some(p), hako_cgroups::rootless::Driver::None(reason)) = (parent, &driver) {
            dropped.push(format!(
                "cgroup parent {p} not applied: {reason}; the container runs without it"
            ));
        }
        cs.open_dirs(&[])
    };
    let file = dir.join(DROPPED_FILE);
    if dropped.is_empty() {
        let _ = std::fs::remove_file(&file);
    } else {
        std::fs::write(&file, dropped.join("\n") + "\n")
            .map_err(|e| Error::io(format!("write {}", file.display()), e))?;
    }
    Ok((cgroup, dropped))
}

/// The argument that makes `hako` a rootless container's network helper.
pub const USERNET_ARG: &str = "__usernet-helper";

/// A rootless container's network on the default network: a user-mode stack of its own and
/// hako's port forwarder, run by a helper (`hako __usernet-helper`) that lives as long as the
/// container's init. On a user-defined network (`shared`): the network itself is wired as for
/// root, inside the user's network namespace (see [`user_netns`]), and the helper only
/// forwards the published ports into that namespace, to the container's address there.
#[derive(Clone, Debug)]
pub struct UserNet {
    stack: hako_usernet::StackConfig,
    ports: Vec<hako_usernet::Publish>,
    shared: bool,
}

/// A rootful container's network and how it joins it.
pub(crate) type Attach = (String, hako_net::AttachOptions);

fn to_publish(
    host_ip: Option<std::net::IpAddr>,
    host_port: (u16, u16),
    container_port: u16,
    proto: hako_net::Proto,
) -> hako_usernet::Publish {
    hako_usernet::Publish {
        host_ip,
        host_port: host_port.0,
        host_port_end: host_port.1.max(host_port.0),
        container_port,
        proto: match proto {
            hako_net::Proto::Tcp => hako_usernet::Proto::Tcp,
            hako_net::Proto::Udp => hako_usernet::Proto::Udp,
        },
    }
}

/// Rootless: turns the default network's attach plan into a user-mode network (refusing what
/// it cannot do), keeps a user-defined network's plan (wired in the user's network
/// namespace, with the ports forwarded into it), and checks the published ports an ordinary
/// user may bind.
pub(crate) fn plan_network(attach: Option<Attach>) -> Result<(Option<Attach>, Option<UserNet>)> {
    let Some((network, opts)) = attach.as_ref().filter(|_| active()) else {
        return Ok((attach, None));
    };
    let start = hako_usernet::unprivileged_port_start();
    let mut ports = Vec::new();
    for p in &opts.ports {
        let publish = to_publish(p.host_ip, p.host_port, p.container_port, p.proto);
        if publish.host_port != 0 && publish.host_port < start {
            return Err(Error::Invalid(format!(
                "cannot publish {publish}: host port {} is below net.ipv4.ip_unprivileged_port_start ({start}), which an ordinary user cannot bind; use a port >= {start}, or lower the sysctl as root",
                publish.host_port
            )));
        }
        ports.push(publish);
    }
    if *network != hako_net::Config::default().default_network {
        let shared = UserNet {
            stack: hako_usernet::StackConfig::default(),
            ports: Vec::new(),
            shared: true,
        };
        return Ok((attach, Some(shared)));
    }
    let refuse = |what: &str| {
        Err(Error::Invalid(format!(
            "{what} is not supported rootless on the default network: it is a user-mode stack of the container's own (use a network of your own, hako network create)"
        )))
    };
    if opts.ip.is_some() || opts.ip6.is_some() {
        return refuse("--ip");
    }
    if opts.mac.is_some() {
        return refuse("--mac-address");
    }
    if !opts.aliases.is_empty() {
        return refuse("--network-alias");
    }
    Ok((
        None,
        Some(UserNet {
            stack: hako_usernet::StackConfig::default(),
            ports,
            shared: false,
        }),
    ))
}

/// The file recording the ports a rootless container's helper bound, for `ps`, `port` and
/// `inspect` (on the default network, where no network row holds them).
pub(crate) const PORTS_FILE: &str = "usernet-ports.json";

/// The ports recorded in a container directory's [`PORTS_FILE`].
pub(crate) fn recorded_ports(dir: &Path) -> Vec<hako_net::PublishedPort> {
    let Ok(text) = std::fs::read_to_string(dir.join(PORTS_FILE)) else {
        return Vec::new();
    };
    let ready: Vec<(hako_usernet::Publish, std::net::SocketAddr)> =
        serde_json::from_str(&text).unwrap_or_default();
    ready
        .into_iter()
        .map(|(p, addr)| hako_net::PublishedPort {
            host_ip: match p.host_ip {
                Some(ip) => ip,
                None => std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            },
            host_port: addr.port(),
            container_port: p.container_port,
            proto: match p.proto {
                hako_usernet::Proto::Tcp => hako_net::Proto::Tcp,
                hako_usernet::Proto::Udp => hako_net::Proto::Udp,
            },
        })
        .collect()
}

impl UserNet {
    /// Whether the container is on a user-defined network (wired as for root).
    pub(crate) fn shared(&self) -> bool {
        self.shared
    }

    /// In the start hook: starts the helper for the container whose init is `pid`, waits
    /// until its stack and ports serve, and points the container's resolv.conf and hosts at
    /// the stack's addresses.
    pub(crate) fn start(
        &self,
        pid: i32,
        wire: &crate::netwire::NetWire,
    ) -> std::result::Result<(), String> {
        let cfg = hako_usernet::HelperConfig {
            target: hako_usernet::Target::pid(pid),
            stack: Some(self.stack.clone()),
            ports: self.ports.clone(),
            container_ip: None,
        };
        let ready = spawn_helper(&cfg, wire)?;
        if !ready.ports.is_empty() {
            let dir = wire.hosts_file.parent().unwrap_or(Path::new("/"));
            let json = serde_json::to_string(&ready.ports).map_err(|e| e.to_string())?;
            std::fs::write(dir.join(PORTS_FILE), json)
                .map_err(|e| format!("record the published ports: {e}"))?;
        }
        let stack = &self.stack;
        if let Some(path) = &wire.resolv_file {
            let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
            rewrite_in_place(path, &hako_usernet::resolv_conf(&host, stack.dns()))?;
        }
        let mut hosts = std::fs::OpenOptions::new()
            .append(true)
            .open(&wire.hosts_file)
            .map_err(|e| format!("update /etc/hosts: {e}"))?;
        hosts
            .write_all(format!("{}\t{}\n", stack.container_ip(), wire.hostname).as_bytes())
            .map_err(|e| format!("update /etc/hosts: {e}"))?;
        Ok(())
    }

    /// In the start hook, after the container is attached to a user-defined network at
    /// `ip`: forwards the ports the attach leased (`ports`, recorded in the network's rows as
    /// for root) from the host into the user's network namespace, by a helper that lives as
    /// long as the container's init `pid`.
    pub(crate) fn forward(
        &self,
        pid: i32,
        ip: std::net::Ipv4Addr,
        ports: &[hako_net::PublishedPort],
        wire: &crate::netwire::NetWire,
    ) -> std::result::Result<(), String> {
        if ports.is_empty() {
            return Ok(());
        }
        let Some((_, _, keeper, _)) = netns_file().as_deref().and_then(live_netns) else {
            return Err("the user's network namespace is gone".into());
        };
        let cfg = hako_usernet::HelperConfig {
            target: hako_usernet::Target {
                user: format!("/proc/{keeper}/ns/user").into(),
                net: format!("/proc/{keeper}/ns/net").into(),
                holder: Some(pid),
            },
            stack: None,
            ports: ports
                .iter()
                .map(|p| {
                    let ip = (!p.host_ip.is_unspecified()).then_some(p.host_ip);
                    to_publish(ip, (p.host_port, p.host_port), p.container_port, p.proto)
                })
                .collect(),
            container_ip: Some(std::net::IpAddr::V4(ip)),
        };
        spawn_helper(&cfg, wire).map(drop)
    }
}

/// Starts `hako __usernet-helper` for `cfg` and returns its ready line, or why it failed.
fn spawn_helper(
    cfg: &hako_usernet::HelperConfig,
    wire: &crate::netwire::NetWire,
) -> std::result::Result<hako_usernet::Ready, String> {
    use std::os::unix::process::CommandExt;
    let json = serde_json::to_string(cfg).map_err(|e| e.to_string())?;
    let exe = std::env::current_exe().map_err(|e| format!("locate the hako binary: {e}"))?;
    let dir = wire.hosts_file.parent().unwrap_or(Path::new("/"));
    let log_path = dir.join("usernet.log");
    let log = std::fs::File::create(&log_path)
        .map_err(|e| format!("create {}: {e}", log_path.display()))?;
    let mut cmd = std::process::Command::new(exe);
    cmd.arg(USERNET_ARG)
        .arg(json)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(log);
    // SAFETY: setsid in the forked child before exec: a ctrl-c in the user's terminal is
    // the container's to get (relayed), not the helper's.
    unsafe {
        cmd.pre_exec(|| {
            nix::unistd::setsid().map_err(std::io::Error::from)?;
            Ok(())
        })
    };
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("start the network helper: {e}"))?;
    let mut line = String::new();
    let mut out = std::io::BufReader::new(child.stdout.take().expect("piped"));
    let _ = std::io::BufRead::read_line(&mut out, &mut line);
    match serde_json::from_str::<hako_usernet::Ready>(line.trim()) {
        Ok(r) => Ok(r),
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            let why = std::fs::read_to_string(&log_path).unwrap_or_default();
            let why = why
                .lines()
                .last()
                .unwrap_or("the network helper exited")
                .trim();
            Err(why.strip_prefix("hako: ").unwrap_or(why).to_string())
        }
    }
}

/// The argument that makes `hako` the holder of the user's network namespace.
pub const NETNS_ARG: &str = "__usernet-netns";

fn netns_file() -> Option<PathBuf> {
    Paths::current().ok().map(|p| p.runtime.join("netns.pid"))
}

/// The recorded holder of the user's network namespace and its keeper, `(holder, start,
/// keeper, start)`, if both still run in this process's user namespace.
fn live_netns(file: &Path) -> Option<(i32, u64, i32, u64)> {
    recorded_netns(file).filter(|&(_, _, k, _)| ours(k))
}

/// Whether process `pid` is in this process's user namespace: a namespace holder killed and
/// made again leaves a network namespace owned by the old one, which nothing of the new one
/// may enter.
fn ours(pid: i32) -> bool {
    let ino = |p: String| std::fs::metadata(p).map(|m| (m.dev(), m.ino())).ok();
    let theirs = ino(format!("/proc/{pid}/ns/user"));
    theirs.is_some() && theirs == ino("/proc/self/ns/user".into())
}

/// The recorded holder and keeper, if both still run.
fn recorded_netns(file: &Path) -> Option<(i32, u64, i32, u64)> {
    let text = std::fs::read_to_string(file).ok()?;
    let v: Vec<u64> = text
        .split_whitespace()
        .map(|w| w.parse().ok())
        .collect::<Option<_>>()?;
    let [h, hs, k, ks] = v[..] else {
        return None;
    };
    let (h, k) = (i32::try_from(h).ok()?, i32::try_from(k).ok()?);
    (hako_base::proc::alive(h, hs) && hako_base::proc::alive(k, ks)).then_some((h, hs, k, ks))
}

fn lock_netns(paths: &Paths) -> std::io::Result<nix::fcntl::Flock<std::fs::File>> {
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(paths.runtime.join("netns.lock"))?;
    nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| std::io::Error::from(e))
}

/// Opens the user's network namespace, where its user-defined networks live (bridges,
/// nftables table, name servers), starting its holder first when none runs: the first
/// network, or after a reboot or a `kill -9` of the holder, when the bridges and rules come
/// back as the networks are used again. Set as hako-net's host side for rootless hako.
pub fn user_netns() -> std::io::Result<std::fs::File> {
    let paths = Paths::current().map_err(std::io::Error::other)?;
    let file = paths.runtime.join("netns.pid");
    let open = |k: i32| std::fs::File::open(format!("/proc/{k}/ns/net"));
    if let Some((_, _, k, _)) = live_netns(&file) {
        if let Ok(f) = open(k) {
            return Ok(f);
        }
    }
    let _lock = lock_netns(&paths)?;
    if let Some((h, _, k, _)) = recorded_netns(&file) {
        if ours(k) {
            return open(k);
        }
        // Out of reach in an older user namespace: it goes, with what it holds.
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(h),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
    let ready = spawn_netns(&file)?;
    let start = |pid: i32| hako_base::proc::start_time(pid).unwrap_or(0);
    let tmp = file.with_extension(format!("pid.{}", std::process::id()));
    std::fs::write(
        &tmp,
        format!(
            "{} {} {} {}\n",
            ready.holder,
            start(ready.holder),
            ready.keeper,
            start(ready.keeper)
        ),
    )
    .and_then(|()| std::fs::rename(&tmp, &file))?;
    open(ready.keeper)
}

/// Rootless: makes the user's network namespace now if it must be, so that a failure is
/// reported as such (not as the first network operation's).
pub(crate) fn ensure_user_netns() -> Result<()> {
    if !active() {
        return Ok(());
    }
    user_netns()
        .map(drop)
        .map_err(|e| Error::io("the user's network namespace", e))
}

fn set_subreaper(on: bool) -> bool {
    let mut v: libc::c_int = 0;
    // SAFETY: PR_GET_CHILD_SUBREAPER writes one int through the pointer we pass;
    // PR_SET_CHILD_SUBREAPER takes a plain integer.
    unsafe {
        libc::prctl(libc::PR_GET_CHILD_SUBREAPER, &mut v as *mut libc::c_int);
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, libc::c_ulong::from(on));
    }
    v != 0
}

/// Runs `hako __usernet-netns`, which detaches itself, and returns its ready line.
fn spawn_netns(record: &Path) -> std::io::Result<hako_usernet::NetnsReady> {
    use std::os::unix::process::CommandExt;
    let cfg = serde_json::to_string(&hako_usernet::StackConfig::default())
        .map_err(std::io::Error::other)?;
    // `run -d` attaches from a child subreaper (the future monitor), which waits for every
    // descendant: the holder must be reparented to init instead.
    let was = set_subreaper(false);
    let out = std::process::Command::new(std::env::current_exe()?)
        .arg(NETNS_ARG)
        .arg(cfg)
        .arg(record)
        .stdin(std::process::Stdio::null())
        .process_group(0)
        .output();
    set_subreaper(was);
    let out = out?;
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.trim()).map_err(|_| {
        let err = String::from_utf8_lossy(&out.stderr);
        let why = err.lines().last().unwrap_or("it exited").trim();
        std::io::Error::other(why.strip_prefix("hako: ").unwrap_or(why).to_string())
    })
}

/// Stops the holder of the user's network namespace (its last network is gone): the
/// namespace, its stack and keeper go with it. Quiet when none runs.
pub(crate) fn stop_user_netns() {
    let Ok(paths) = Paths::current() else {
        return;
    };
    let file = paths.runtime.join("netns.pid");
    if !file.exists() {
        return;
    }
    let Ok(_lock) = lock_netns(&paths) else {
        return;
    };
    if let Some((h, hs, k, ks)) = recorded_netns(&file) {
        if hako_base::proc::alive(h, hs) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(h),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while (hako_base::proc::alive(k, ks) || hako_base::proc::alive(h, hs))
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
    let _ = std::fs::remove_file(&file);
}

/// The holder's life (`hako __usernet-netns CONFIG RECORD`). Must be called while
/// single-threaded.
pub fn usernet_netns_main(config: &str, record: &Path) -> i32 {
    let cfg: hako_usernet::StackConfig = match serde_json::from_str(config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("hako: network namespace configuration: {e}");
            return 2;
        }
    };
    match hako_usernet::netns_main(&cfg, Some(record), &mut std::io::stdout()) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("hako: {e}");
            1
        }
    }
}

/// Replaces the contents of a file that is bind-mounted into the container, keeping its inode.
fn rewrite_in_place(path: &Path, text: &str) -> std::result::Result<(), String> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .map_err(|e| format!("update {}: {e}", path.display()))?;
    f.write_all(text.as_bytes())
        .map_err(|e| format!("update {}: {e}", path.display()))
}

/// The network helper's life (`hako __usernet-helper CONFIG`): serves until the container's
/// init exits. Must be called while single-threaded. Returns the exit status.
pub fn usernet_helper_main(config: &str) -> i32 {
    let cfg: hako_usernet::HelperConfig = match serde_json::from_str(config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("hako: network helper configuration: {e}");
            return 2;
        }
    };
    let mut out = std::io::stdout();
    match hako_usernet::helper_main(&cfg, None, &mut out) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("hako: {e}");
            1
        }
    }
}

/// What rootless containers use on this host, each with the reason when the better
/// mechanism is missing (`hako info`).
#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Mechanisms {
    /// How ids are mapped.
    pub ids: String,
    /// How root filesystems are made.
    pub storage: String,
    /// The default network.
    pub network: String,
    /// How containers get cgroups.
    pub cgroups: String,
}

fn in_path(name: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|p| {
        std::env::split_paths(&p).any(|d| {
            std::fs::metadata(d.join(name))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    })
}

/// Looks at the grants, the kernel, `$PATH` and the cgroup hierarchies.
pub fn mechanisms() -> Mechanisms {
    let id = identity();
    let ids = match hako_runtime::rootless::UserNamespace::with_subids(&id) {
        Ok(_) => {
            let list = |r: &[hako_runtime::rootless::SubIdRange]| {
                r.iter()
                    .map(|r| r.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            format!(
                "newuidmap/newgidmap: uid 0 is {} ({}), subordinate uids {}, gids {}",
                id.uid,
                id.user,
                list(&id.subuids),
                list(&id.subgids)
            )
        }
        Err(e) => format!("none: {e}"),
    };
    let release = crate::seccomp::kernel_release();
    let storage = if crate::seccomp::kernel_version(&release) >= (5, 11) {
        "overlay (in the user namespace, userxattr)".to_string()
    } else {
        format!("none: overlayfs in a user namespace needs Linux 5.11 or later (this is {release}): upgrade the kernel")
    };
    let driver = hako_usernet::Driver::default();
    let network = if in_path(driver.as_str()) {
        format!(
            "{} per container, -p through hako's forwarder; user-defined networks in a network namespace of the user's behind one {}",
            driver.as_str(),
            driver.as_str()
        )
    } else {
        format!(
            "none: {} not found: install the package {}",
            driver.as_str(),
            match driver {
                hako_usernet::Driver::Slirp4netns => "slirp4netns",
                hako_usernet::Driver::Pasta => "passt",
            }
        )
    };
    let cgroups = match hako_cgroups::CgroupSystem::detect() {
        Ok(cs) => cgroup_driver(&cs).to_string(),
        Err(e) => format!("none: {e}"),
    };
    Mechanisms {
        ids,
        storage,
        network,
        cgroups,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_host_that_restricts_user_namespaces_is_named_with_its_fix() {
        let host = |pairs: &'static [(&'static str, &'static str)]| {
            move |f: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == f)
                    .map(|(_, v)| format!("{v}\n"))
            }
        };
        assert_eq!(
            userns_restriction(host(&[("user/max_user_namespaces", "15000")])),
            None
        );
        let why = userns_restriction(host(&[("user/max_user_namespaces", "0")])).unwrap();
        assert!(why.starts_with("user.max_user_namespaces is 0"), "{why}");
        let why = userns_restriction(host(&[
            ("user/max_user_namespaces", "15000"),
            ("kernel/unprivileged_userns_clone", "0"),
        ]))
        .unwrap();
        assert!(
            why.contains("sysctl -w kernel.unprivileged_userns_clone=1"),
            "{why}"
        );
        let why = userns_restriction(host(&[
            ("kernel/unprivileged_userns_clone", "1"),
            ("kernel/apparmor_restrict_unprivileged_userns", "1"),
        ]))
        .unwrap();
        assert!(why.contains("AppArmor") && why.contains("userns,"), "{why}");
        assert_eq!(
            userns_restriction(host(&[(
                "kernel/apparmor_restrict_unprivileged_userns",
                "0"
            )])),
            None
        );
    }

    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<OsString> + 'a {
        move |k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| OsString::from(v))
        }
    }

    #[test]
    fn xdg_paths_and_their_defaults() {
        let p = Paths::from_env(
            1000,
            env(&[("HOME", "/home/a"), ("XDG_RUNTIME_DIR", "/run/user/1000")]),
            || None,
        )
        .unwrap();
        assert_eq!(p.data, Path::new("/home/a/.local/share/hako"));
        assert_eq!(p.runtime, Path::new("/run/user/1000/hako"));
        assert_eq!(p.config, Path::new("/home/a/.config/hako/config.json"));
        let p = Paths::from_env(
            1000,
            env(&[
                ("HOME", "/home/a"),
                ("XDG_DATA_HOME", "/d"),
                ("XDG_CONFIG_HOME", "/c"),
                ("XDG_RUNTIME_DIR", "relative"),
            ]),
            || None,
        )
        .unwrap();
        assert_eq!(p.data, Path::new("/d/hako"));
        assert_eq!(p.config, Path::new("/c/hako/config.json"));
        assert_eq!(p.runtime, Path::new("/tmp/hako-run-1000"));
        let p = Paths::from_env(7, env(&[]), || Some("/var/h".into())).unwrap();
        assert_eq!(p.data, Path::new("/var/h/.local/share/hako"));
        let e = Paths::from_env(7, env(&[]), || None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "neither $XDG_DATA_HOME nor $HOME is set: rootless hako keeps its state there"
        );
    }

    #[test]
    fn keep_id_keeps_the_users_id_and_shifts_the_rest() {
        use crate::config::UsernsMode;
        let m = nested_map(UsernsMode::KeepId, 65537, 1000, "uid").unwrap();
        assert_eq!(
            m,
            [
                NestedMap {
                    container: 0,
                    outer: 1,
                    size: 1000
                },
                NestedMap {
                    container: 1000,
                    outer: 0,
                    size: 1
                },
                NestedMap {
                    container: 1001,
                    outer: 1001,
                    size: 64536
                },
            ]
        );
        let total: u32 = m.iter().map(|l| l.size).sum();
        assert_eq!(total, 65537);
        let same = nested_map(UsernsMode::Default, 65537, 1000, "uid").unwrap();
        assert_eq!(
            same,
            [NestedMap {
                container: 0,
                outer: 0,
                size: 65537
            }]
        );
        let e = nested_map(UsernsMode::KeepId, 1001, 2000, "uid")
            .unwrap_err()
            .to_string();
        assert_eq!(e, "--userns=keep-id needs uid 2000 inside, but the user namespace has uids 0-1000: ask for a subordinate range of at least 2000 ids");
        let maps = hako_base::userns::parse_map("0 1000 1\n1 1000000000 65536\n");
        assert_eq!(contiguous(&maps), 65537);
        // Each line inside one line of the user's map, as the kernel wants.
        assert_eq!(
            split_at_extents(&same, &maps),
            [
                NestedMap {
                    container: 0,
                    outer: 0,
                    size: 1
                },
                NestedMap {
                    container: 1,
                    outer: 1,
                    size: 65536
                },
            ]
        );
        assert_eq!(
            split_at_extents(&m, &maps),
            [
                NestedMap {
                    container: 0,
                    outer: 1,
                    size: 1000
                },
                NestedMap {
                    container: 1000,
                    outer: 0,
                    size: 1
                },
                NestedMap {
                    container: 1001,
                    outer: 1001,
                    size: 64536
                },
            ]
        );
    }

    #[test]
    fn the_network_namespace_record_names_live_processes_of_our_user_namespace() {
        let tmp = tempfile::tempdir().unwrap();
        let f = tmp.path().join("netns.pid");
        let me = std::process::id() as i32;
        let st = hako_base::proc::start_time(me).unwrap();
        std::fs::write(&f, format!("{me} {st} {me} {st}\n")).unwrap();
        assert_eq!(live_netns(&f), Some((me, st, me, st)));
        assert!(ours(me));
        // Another start time: the pid was reused.
        std::fs::write(&f, format!("{me} {} {me} {st}\n", st + 1)).unwrap();
        assert_eq!(recorded_netns(&f), None);
        std::fs::write(&f, "garbage").unwrap();
        assert_eq!(recorded_netns(&f), None);
        assert!(!ours(i32::MAX));
    }

    #[test]
    fn a_runtime_dir_of_someone_else_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path().join("rt");
        private_dir(&d).unwrap();
        assert_eq!(
            std::fs::metadata(&d).unwrap().permissions().mode() & 0o777,
            0o700
        );
        private_dir(&d).unwrap();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
        let e = private_dir(&d).unwrap_err().to_string();
        assert!(e.contains("is not a private directory"), "{e}");
    }
}
