//! hako's OCI runtime library: an OCI runtime spec in, an isolated running process out.
//!
//! The engine calls [`spawn`] in-process (no runtime binary is exec'd, which is where hako's
//! start-up speed comes from); a runc-compatible command line can sit on top of the same calls.
//!
//! The calling process must be single-threaded when it calls [`spawn`]: the container is created
//! with a raw `clone(2)` carrying the new namespaces, and the child keeps running Rust code until
//! it `execve`s the container's command.
#![deny(missing_docs)]

mod attrs;
mod child;
mod compat;
mod error;
mod exec;
pub mod fsutil;
mod hooks;
mod idmap;
mod lsm;
pub mod mounts;
mod netdev;
mod overlay;
mod process;
pub mod rootless;
mod seccomp;

pub use compat::{parse_process, parse_spec};
pub use error::{Error, ExecFailure};
pub use exec::{exec_spec, ExecSpec};
pub use overlay::mount_overlay;
pub use process::{start, take_relayed_stop, Created, ExitStatus, Running};
pub use seccomp::syscall_name;

use nix::sched::CloneFlags;
use oci_spec::runtime::{LinuxNamespaceType, Spec};
use std::collections::HashSet;
use std::ffi::CString;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

/// The character devices every container gets, as runc makes them whether the spec lists them
/// or not: (path, major, minor), mode 0666, owned by root.
pub const DEFAULT_DEVICES: [(&str, i64, i64); 6] = [
    ("/dev/null", 1, 3),
    ("/dev/zero", 1, 5),
    ("/dev/full", 1, 7),
    ("/dev/random", 1, 8),
    ("/dev/urandom", 1, 9),
    ("/dev/tty", 5, 0),
];

/// Default `PATH` when neither the image nor the user sets one (Docker's value).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// An overlay filesystem to mount as the container's root before anything else.
///
/// It is mounted inside the container's own mount namespace, so the kernel tears it down when
/// the last process of the container exits: nothing can leak onto the host, even after `kill -9`.
#[derive(Debug, Clone)]
pub struct Overlay {
    /// Read-only layers, topmost first (overlayfs `lowerdir` order).
    pub lower: Vec<PathBuf>,
    /// The container's writable layer.
    pub upper: PathBuf,
    /// overlayfs scratch directory on the same filesystem as `upper`.
    pub work: PathBuf,
    /// Mount with `volatile` (Linux 5.10+): no sync of the upper filesystem when the overlay
    /// is unmounted, which otherwise flushes every dirty page of that filesystem as the
    /// container's mount namespace goes away. For containers whose upper layer does not
    /// have to survive a crash.
    pub volatile: bool,
}

/// Where the container's standard input comes from.
#[derive(Debug, Clone, Copy, Default)]
pub enum Stdin<'a> {
    /// `/dev/null`, like `docker run` without `-i`.
    #[default]
    Null,
    /// The caller's standard input.
    Inherit,
    /// This descriptor (e.g. a pipe the caller feeds).
    Fd(BorrowedFd<'a>),
}

/// Options that are not part of the OCI spec.
#[derive(Default)]
pub struct SpawnOptions<'a> {
    /// Root filesystem to assemble from layers at `spec.root.path`.
    pub overlay: Option<&'a Overlay>,
    /// cgroup the process joins before it runs anything of the container.
    pub cgroup: Option<&'a hako_cgroups::Cgroup>,
    /// SIGKILL the container when the calling process dies (foreground `run`).
    pub kill_with_parent: bool,
    /// Standard input of the container process.
    pub stdin: Stdin<'a>,
    /// Standard output of the container process; the caller's own without one.
    pub stdout: Option<BorrowedFd<'a>>,
    /// Standard error of the container process; the caller's own without one.
    pub stderr: Option<BorrowedFd<'a>>,
    /// Called with the container's host pid after its namespaces exist and before its command
    /// runs: the place to wire its network namespace (`/proc/PID/ns/net`). An error aborts the
    /// start and kills the child.
    pub before_start: Option<&'a dyn Fn(i32) -> Result<(), String>>,
    /// `before_start` does not need the process in its cgroup yet: run it while the kernel
    /// moves the process there. That move waits for an RCU grace period (the cgroup
    /// threadgroup lock's writer side, v1 and v2 alike: ~8 ms on the development VM) during
    /// which this process would otherwise sit idle, so a hook shorter than the wait costs
    /// nothing. Leave it off for OCI hooks: some look the container's cgroup up from its pid.
    pub before_start_during_cgroup_join: bool,
    /// Descriptors 3 to 3+N-1 of the caller stay open in the container (runc's `--preserve-fds`,
    /// e.g. for socket activation); every other inherited descriptor is closed on exec.
    pub preserve_fds: u32,
    /// Enter the root with `MS_MOVE` and `chroot` instead of `pivot_root` (runc's `--no-pivot`),
    /// for roots on filesystems that cannot be pivoted, such as an initramfs.
    pub no_pivot: bool,
    /// Join a fresh anonymous session keyring, so the container cannot use the caller's keys
    /// (runc's default; its `--no-new-keyring` turns it off).
    pub new_session_keyring: bool,
    /// Gives the container a terminal (OCI `process.terminal`), as runc's `--console-socket`
    /// does: one end of a connected unix stream socket (a `socketpair`, or a connection to a
    /// console socket). The container's process allocates a pseudo-terminal from the
    /// container's own `/dev/ptmx` (its devpts instance), sizes it per
    /// `process.consoleSize`, and makes the slave its stdin, stdout, stderr and controlling
    /// terminal; before it runs the command it sends the master over this socket (SCM_RIGHTS,
    /// with the slave's path inside the container as payload). [`receive_console`] takes it.
    /// `stdin` is then ignored.
    pub console_socket: Option<BorrowedFd<'a>>,
    /// The container's OCI state as a JSON object without `status` and `pid` (which the
    /// runtime adds), e.g. `{"ociVersion":"1.2.0","id":"c1","bundle":"/b","annotations":{}}`.
    /// With it, the spec's `createContainer` and `startContainer` hooks run inside the
    /// container's namespaces at the moments the spec names, with the state on their stdin;
    /// without it, a spec that has such hooks is refused.
    pub hook_state: Option<&'a str>,
    /// For a process joining a running container (`exec`): that container's whole OCI state,
    /// which a seccomp agent at `listenerPath` receives as `state`. Without it, the agent
    /// gets the state of the container being created, from `hook_state`.
    pub joined_state: Option<&'a str>,
    /// A directory, as trusted as the runtime's state, where compiled seccomp programs are
    /// kept by profile, so a profile is compiled once rather than at every start; `None`
    /// compiles every time.
    pub seccomp_cache: Option<&'a std::path::Path>,
    /// The caller's own seccomp agent: one end of a connected unix socket. The syscalls the
    /// filter would answer with ENOSYS for being newer than the profile are notified instead,
    /// and the listener (with that of any SCMP_ACT_NOTIFY rule, when the spec names no
    /// `listenerPath`) is sent over this socket as it would be to `listenerPath`.
    pub seccomp_agent: Option<BorrowedFd<'a>>,
    /// For a process joining a running container that has no mount namespace of its own
    /// (`exec`): `spec.root.path` is that container's finished root (e.g. `/proc/PID/root`),
    /// which the process only enters with `chroot`; nothing is mounted.
    pub enter_existing_root: bool,
}

/// Receives the pseudo-terminal master a container sent over its
/// [`SpawnOptions::console_socket`] (the other end of that socket), with the slave's path
/// inside the container. Blocks until the message arrives; the container sends it before its
/// command runs, so after [`spawn`] returned (or [`create`]) it is already there.
pub fn receive_console(socket: BorrowedFd<'_>) -> Result<(OwnedFd, String), Error> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags, UnixAddr};
    use std::os::fd::{AsRawFd, FromRawFd};
    let mut name = [0u8; 4096];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let (fd, len) = loop {
        let mut iov = [std::io::IoSliceMut::new(&mut name)];
        match recvmsg::<UnixAddr>(
            socket.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Ok(msg) => {
                let mut fds = Vec::new();
                for c in msg
                    .cmsgs()
                    .map_err(|e| Error::sys("receive the terminal", e))?
                {
                    if let ControlMessageOwned::ScmRights(f) = c {
                        fds.extend(f);
                    }
                }
                break (fds, msg.bytes);
            }
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(Error::sys("receive the terminal", e)),
        }
    };
    // SAFETY: descriptors just received over SCM_RIGHTS belong to nobody else in this process.
    let mut owned: Vec<OwnedFd> = fd
        .into_iter()
        .map(|f| unsafe { OwnedFd::from_raw_fd(f) })
        .collect();
    if owned.len() != 1 {
        return Err(Error::Setup(
            "the container did not send exactly one terminal".into(),
        ));
    }
    let name = String::from_utf8_lossy(&name[..len]).into_owned();
    Ok((owned.remove(0), name))
}

/// Starts the container described by `spec` and returns once its command has been exec'd.
///
/// On error nothing is left running: the child, if it was created, has been killed and reaped.
pub fn spawn(spec: &Spec, opts: &SpawnOptions<'_>) -> Result<Running, Error> {
    let prepared = Prepared::from_spec(spec, opts)?;
    process::launch(prepared, opts.cgroup, opts.before_start)
}

/// Creates the container described by `spec` without running its command: the OCI `create`.
///
/// The returned process has built its whole environment (namespaces, root filesystem, mounts,
/// cgroup, working directory) and waits, before `execve`, until someone opens `exec_fifo` for
/// reading; [`start`] does that. The FIFO is made here and must not exist yet. The child does
/// not depend on the calling process, which may exit (the child is then reparented to the
/// nearest subreaper), so `opts.kill_with_parent` should be false for a detached container.
///
/// On error nothing is left: the child is killed and reaped and the FIFO removed.
pub fn create(spec: &Spec, opts: &SpawnOptions<'_>, exec_fifo: &Path) -> Result<Created, Error> {
    let mut prepared = Prepared::from_spec(spec, opts)?;
    nix::unistd::mkfifo(exec_fifo, nix::sys::stat::Mode::from_bits_truncate(0o600))
        .map_err(|e| Error::sys(format!("create {}", exec_fifo.display()), e))?;
    // The child opens the FIFO as the container's root, which in a user namespace is some
    // other host uid.
    if let Some((uid_map, gid_map)) = &prepared.id_maps {
        let host = |map: &str| {
            map.lines().find_map(|l| {
                let mut f = l.split_whitespace().map(|n| n.parse::<u32>().ok());
                match (f.next()??, f.next()??) {
                    (0, host) => Some(host),
                    _ => None,
                }
            })
        };
        let chowned = nix::unistd::chown(
            exec_fifo,
            host(uid_map).map(nix::unistd::Uid::from_raw),
            host(gid_map).map(nix::unistd::Gid::from_raw),
        )
        .or_else(|e| match e {
            // An ordinary user cannot give the FIFO to a subordinate id; the FIFO lies in
            // the user's private (0700) state directory, so letting anyone write it lets
            // only the container's root reach it, through the descriptor it inherits.
            nix::errno::Errno::EPERM => nix::sys::stat::fchmodat(
                nix::fcntl::AT_FDCWD,
                exec_fifo,
                nix::sys::stat::Mode::from_bits_truncate(0o622),
                nix::sys::stat::FchmodatFlags::FollowSymlink,
            ),
            e => Err(e),
        });
        if let Err(e) = chowned {
            let _ = std::fs::remove_file(exec_fifo);
            return Err(Error::sys(format!("chown {}", exec_fifo.display()), e));
        }
    }
    let opened = (|| -> Result<(OwnedFd, OwnedFd), Error> {
        let fifo = nix::fcntl::open(
            exec_fifo,
            nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .map_err(|e| Error::sys(format!("open {}", exec_fifo.display()), e))?;
        // The child reopens the FIFO for writing after pivot_root, when its path is no longer
        // reachable; the host's /proc gives it a way back to that inode through its descriptor.
        let proc = nix::fcntl::open(
            "/proc",
            nix::fcntl::OFlag::O_PATH
                | nix::fcntl::OFlag::O_DIRECTORY
                | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .map_err(|e| Error::sys("open /proc", e))?;
        Ok((fifo, proc))
    })();
    let result = opened.and_then(|(fifo, proc)| {
        prepared.exec_fifo = Some((fifo, proc));
        process::create(prepared, opts.cgroup, opts.before_start)
    });
    if result.is_err() {
        let _ = std::fs::remove_file(exec_fifo);
    }
    result
}

/// Everything the child needs, decoded in the parent so the child only makes system calls.
#[derive(Debug)]
pub(crate) struct Prepared {
    pub root: PathBuf,
    pub root_readonly: bool,
    pub overlay: Option<overlay::OverlayOptions>,
    pub clone_flags: CloneFlags,
    pub join: Vec<(OwnedFd, CloneFlags)>,
    pub new_cgroupns: bool,
    pub hostname: Option<String>,
    pub mounts: Vec<mounts::MountPlan>,
    /// Applied to `/` first, as runc does; see [`RootPropagation`].
    pub rootfs_propagation: RootPropagation,
    /// No mount namespace in the spec: the container shares the runtime's, so its root is
    /// entered with `chroot` and whatever it mounts stays in that namespace until the caller
    /// unmounts it (see [`unmount_under`]).
    pub shared_mount_ns: bool,
    pub devices: Vec<Device>,
    pub default_dev_links: bool,
    pub masked: Vec<PathBuf>,
    pub readonly: Vec<PathBuf>,
    pub sysctl: Vec<(PathBuf, String)>,
    pub rlimits: Vec<(libc::__rlimit_resource_t, u64, u64)>,
    pub warnings: Vec<String>,
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub umask: u32,
    pub caps: Option<CapSets>,
    pub no_new_privs: bool,
    pub oom_score_adj: Option<i32>,
    pub cwd: PathBuf,
    pub args: Vec<CString>,
    pub env: Vec<CString>,
    pub path_env: String,
    /// What becomes the process's stdin, stdout and stderr; the caller's own where `None`.
    pub stdio: [Option<OwnedFd>; 3],
    pub kill_with_parent: bool,
    pub before_start_during_cgroup_join: bool,
    pub preserve_fds: u32,
    pub no_pivot: bool,
    pub new_session_keyring: bool,
    /// The caller's console socket (see [`SpawnOptions::console_socket`]).
    pub console_socket: Option<std::os::fd::RawFd>,
    /// `process.consoleSize` as (rows, columns).
    pub console_size: Option<(u16, u16)>,
    pub seccomp: Option<seccomp::Program>,
    /// For SCMP_ACT_NOTIFY: a connection to `listenerPath`, and the message's fixed part.
    pub seccomp_listener: Option<SeccompListener>,
    /// A pid namespace to create the process in (the parent enters it around the clone).
    pub join_pid: Option<OwnedFd>,
    /// The mount namespace is an existing container's: its root is complete, build nothing.
    pub exec_in_existing_root: bool,
    /// With `exec_in_existing_root` and no mount namespace to join: `chroot` into `root`.
    pub chroot_existing: bool,
    /// LSM labels for the command, written to `/proc/thread-self/attr/...` right before
    /// the seccomp filter and the exec: (file under attr/, value).
    pub lsm_exec: Vec<(&'static str, CString)>,
    /// SELinux `linux.mountLabel` for mqueue mount points (the others carry it as `context=`).
    pub mount_label: Option<CString>,
    /// For a new user namespace: the uid_map and gid_map the parent writes before the child
    /// goes on.
    pub id_maps: Option<(String, String)>,
    /// How the parent writes `id_maps`: directly, or through newuidmap/newgidmap.
    pub map_writer: rootless::MapWriter,
    /// The maps are the caller's own ids only, so `setgroups` is denied in the namespace.
    pub setgroups_denied: bool,
    /// For `create`: an O_PATH descriptor of the exec FIFO and one of the host's /proc.
    pub exec_fifo: Option<(OwnedFd, OwnedFd)>,
    /// domainname, personality, I/O priority, scheduler, CPU affinity, time namespace.
    pub attrs: attrs::Attrs,
    /// Detached idmapped trees, by index into `mounts`, for the child to attach.
    pub idmapped: Vec<(usize, OwnedFd)>,
    /// `linux.netDevices`, moved in by the parent before the container runs anything.
    pub net_devices: Option<netdev::NetDevices>,
    /// What the cgroup mounts need once every mount is in place.
    pub cgroup_fixups: CgroupFixups,
    /// `hooks.createContainer` and `hooks.startContainer`, and the state they read.
    pub create_container_hooks: Vec<hooks::HookPlan>,
    pub start_container_hooks: Vec<hooks::HookPlan>,
    pub hook_state: String,
    /// `SpawnOptions::joined_state`.
    pub joined_state: Option<String>,
}

#[derive(Debug)]
pub(crate) struct Device {
    pub path: PathBuf,
    pub kind: nix::sys::stat::SFlag,
    pub major: u64,
    pub minor: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

#[derive(Debug, Default)]
pub(crate) struct CapSets {
    pub bounding: HashSet<caps::Capability>,
    pub effective: HashSet<caps::Capability>,
    pub permitted: HashSet<caps::Capability>,
    pub inheritable: HashSet<caps::Capability>,
    pub ambient: HashSet<caps::Capability>,
}

fn cstring(s: impl AsRef<[u8]>, what: &str) -> Result<CString, Error> {
    CString::new(s.as_ref()).map_err(|_| Error::InvalidSpec(format!("{what} contains a NUL byte")))
}

fn convert_caps(
    set: &Option<oci_spec::runtime::Capabilities>,
) -> Result<HashSet<caps::Capability>, Error> {
    let mut out = HashSet::new();
    for c in set.iter().flatten() {
        let name = format!("CAP_{c}");
        let cap = name
            .parse::<caps::Capability>()
            .map_err(|_| Error::InvalidSpec(format!("unknown capability {name}")))?;
        out.insert(cap);
    }
    Ok(out)
}

fn rlimit_resource(name: &str) -> Option<libc::__rlimit_resource_t> {
    Some(match name {
        "RLIMIT_AS" => libc::RLIMIT_AS,
        "RLIMIT_CORE" => libc::RLIMIT_CORE,
        "RLIMIT_CPU" => libc::RLIMIT_CPU,
        "RLIMIT_DATA" => libc::RLIMIT_DATA,
        "RLIMIT_FSIZE" => libc::RLIMIT_FSIZE,
        "RLIMIT_LOCKS" => libc::RLIMIT_LOCKS,
        "RLIMIT_MEMLOCK" => libc::RLIMIT_MEMLOCK,
        "RLIMIT_MSGQUEUE" => libc::RLIMIT_MSGQUEUE,
        "RLIMIT_NICE" => libc::RLIMIT_NICE,
        "RLIMIT_NOFILE" => libc::RLIMIT_NOFILE,
        "RLIMIT_NPROC" => libc::RLIMIT_NPROC,
        "RLIMIT_RSS" => libc::RLIMIT_RSS,
        "RLIMIT_RTPRIO" => libc::RLIMIT_RTPRIO,
        "RLIMIT_RTTIME" => libc::RLIMIT_RTTIME,
        "RLIMIT_SIGPENDING" => libc::RLIMIT_SIGPENDING,
        "RLIMIT_STACK" => libc::RLIMIT_STACK,
        _ => return None,
    })
}

impl Prepared {
    fn from_spec(spec: &Spec, opts: &SpawnOptions<'_>) -> Result<Self, Error> {
        let root = spec
            .root()
            .as_ref()
            .ok_or_else(|| Error::InvalidSpec("root is missing".into()))?;
        let root_path = root.path().clone();
        if !root_path.is_absolute() {
            return Err(Error::InvalidSpec(format!(
                "root path {} must be absolute",
                root_path.display()
            )));
        }
        if !root_path.is_dir() {
            return Err(Error::InvalidSpec(format!(
                "root path {} is not a directory",
                root_path.display()
            )));
        }
        let process = spec
            .process()
            .as_ref()
            .ok_or_else(|| Error::InvalidSpec("process is missing".into()))?;
        let args = process.args().clone().unwrap_or_default();
        if args.is_empty() {
            return Err(Error::InvalidSpec("process.args must not be empty".into()));
        }
        let linux = spec.linux().as_ref();

        let mut clone_flags = CloneFlags::empty();
        let mut join = Vec::new();
        let mut new_cgroupns = false;
        let mut has_mnt = false;
        // A hostname and a domainname may also be set in a joined UTS namespace (runc does).
        let mut uts = false;
        let mut new_time = false;
        let mut join_pid = None;
        let mut exec_in_existing_root = false;
        let mut netns_path = None;
        let mut joins_user = false;
        for ns in linux
            .and_then(|l| l.namespaces().as_ref())
            .into_iter()
            .flatten()
        {
            let flag = match ns.typ() {
                LinuxNamespaceType::Pid => CloneFlags::CLONE_NEWPID,
                LinuxNamespaceType::Network => CloneFlags::CLONE_NEWNET,
                LinuxNamespaceType::Mount => CloneFlags::CLONE_NEWNS,
                LinuxNamespaceType::Ipc => CloneFlags::CLONE_NEWIPC,
                LinuxNamespaceType::Uts => CloneFlags::CLONE_NEWUTS,
                LinuxNamespaceType::Cgroup => CloneFlags::CLONE_NEWCGROUP,
                LinuxNamespaceType::User => CloneFlags::CLONE_NEWUSER,
                // clone(2) has no bit for it (CLONE_NEWTIME overlaps CSIGNAL): the child
                // unshares it itself, see attrs.rs.
                LinuxNamespaceType::Time => CloneFlags::from_bits_retain(libc::CLONE_NEWTIME),
            };
            if flag == CloneFlags::CLONE_NEWNS {
                has_mnt = true;
            }
            if flag == CloneFlags::CLONE_NEWUTS {
                uts = true;
            }
            match ns.path() {
                Some(p) => {
                    if flag == CloneFlags::CLONE_NEWNET {
                        netns_path = Some(p.clone());
                    }
                    let fd = std::fs::File::open(p)
                        .map_err(|e| Error::sys(format!("open namespace {}", p.display()), e))?;
                    if flag == CloneFlags::CLONE_NEWPID {
                        join_pid = Some(fd.into());
                        continue;
                    }
                    if flag == CloneFlags::CLONE_NEWNS {
                        exec_in_existing_root = true;
                    }
                    // A caller that entered the container's user namespace already (see
                    // rootless::enter_user_namespace) cannot enter it again (EINVAL).
                    if flag == CloneFlags::CLONE_NEWUSER {
                        joins_user = true;
                        if rootless::is_current_user_ns(&fd) {
                            continue;
                        }
                    }
                    join.push((fd.into(), flag));
                }
                None if flag == CloneFlags::CLONE_NEWCGROUP => new_cgroupns = true,
                None if flag.bits() == libc::CLONE_NEWTIME => new_time = true,
                None => clone_flags.insert(flag),
            }
        }
        // Joining a user namespace changes which other namespaces we may join: it goes first.
        join.sort_by_key(|(_, f)| *f != CloneFlags::CLONE_NEWUSER);
        // Without a mount namespace the container inherits the runtime's, as the spec says:
        // its mounts are made there (on the bundle's rootfs) and its root is a chroot.
        let shared_mount_ns = !has_mnt;
        let chroot_existing = shared_mount_ns && opts.enter_existing_root;
        if chroot_existing {
            exec_in_existing_root = true;
        }
        if shared_mount_ns && opts.overlay.is_some() {
            return Err(Error::InvalidSpec(
                "an overlay root filesystem needs a mount namespace".into(),
            ));
        }

        let mut mounts = Vec::new();
        let mut cgroup_fixups = CgroupFixups::default();
        let mut idmapped = Vec::new();
        let mut default_dev_links = false;
        for m in spec.mounts().iter().flatten() {
            if !m.destination().is_absolute() {
                return Err(Error::InvalidSpec(format!(
                    "mount destination {} must be absolute",
                    m.destination().display()
                )));
            }
            let plan = mounts::plan(
                m.destination().clone(),
                m.typ().as_deref(),
                m.source().clone(),
                m.options().as_deref().unwrap_or(&[]),
            );
            if matches!(plan.fstype.as_deref(), Some("cgroup") | Some("cgroup2")) {
                let userns = clone_flags.contains(CloneFlags::CLONE_NEWUSER);
                cgroup_view(plan, opts.cgroup, userns, &mut mounts, &mut cgroup_fixups)?;
                continue;
            }
            if m.destination() == Path::new("/dev") && plan.fstype.as_deref() == Some("tmpfs") {
                default_dev_links = true;
            }
            if let Some(tree) = idmap::prepare(m)? {
                idmapped.push((mounts.len(), tree));
            }
            mounts.push(plan);
        }

        if linux.is_some_and(|l| l.intel_rdt().is_some()) {
            // runc refuses it too where resctrl is not mounted; here it is never managed.
            return Err(Error::InvalidSpec(
                "linux.intelRdt is not supported: hako-runtime does not manage resctrl (Intel RDT) groups".into(),
            ));
        }
        let net_devices = netdev::plan(
            spec,
            clone_flags.contains(CloneFlags::CLONE_NEWNET),
            netns_path.as_deref(),
        )?;
        let rootfs_propagation =
            RootPropagation::parse(linux.and_then(|l| l.rootfs_propagation().as_deref()))?;
        if shared_mount_ns && !rootfs_propagation.is_default() {
            // It would change the propagation of the runtime's own `/`.
            return Err(Error::InvalidSpec(
                "linux.rootfsPropagation needs a mount namespace (without one the container shares the runtime's mounts)".into(),
            ));
        }

        let mut devices = Vec::new();
        for d in linux
            .and_then(|l| l.devices().as_ref())
            .into_iter()
            .flatten()
        {
            use oci_spec::runtime::LinuxDeviceType as T;
            let kind = match d.typ() {
                T::C | T::U => nix::sys::stat::SFlag::S_IFCHR,
                T::B => nix::sys::stat::SFlag::S_IFBLK,
                T::P => nix::sys::stat::SFlag::S_IFIFO,
                T::A => {
                    return Err(Error::InvalidSpec(
                        "device type 'a' cannot be created".into(),
                    ))
                }
            };
            devices.push(Device {
                path: d.path().clone(),
                kind,
                major: d.major() as u64,
                minor: d.minor() as u64,
                mode: d.file_mode().unwrap_or(0o666),
                uid: d.uid().unwrap_or(0),
                gid: d.gid().unwrap_or(0),
            });
        }

        let mut warnings = Vec::new();
        let mut rlimits = Vec::new();
        for r in process.rlimits().iter().flatten() {
            let name = r.typ().to_string();
            let res = rlimit_resource(&name)
                .ok_or_else(|| Error::InvalidSpec(format!("unknown rlimit {name}")))?;
            let (mut soft, mut hard) = (r.soft(), r.hard());
            let mut cur = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            // SAFETY: getrlimit writes into the struct we pass and reads nothing else.
            if unsafe { libc::getrlimit(res, &mut cur) } == 0 && hard > cur.rlim_max {
                // Raising a hard limit needs CAP_SYS_RESOURCE, which many hosts (and rootless
                // users) lack; Docker users expect the container to start anyway.
                warnings.push(format!(
                    "{name} hard limit {hard} exceeds the host's {}; clamped",
                    cur.rlim_max
                ));
                hard = cur.rlim_max;
                soft = soft.min(hard);
            }
            rlimits.push((res, soft, hard));
        }

        let caps = match process.capabilities() {
            Some(c) => {
                let mut sets = CapSets {
                    bounding: convert_caps(c.bounding())?,
                    effective: convert_caps(c.effective())?,
                    permitted: convert_caps(c.permitted())?,
                    inheritable: convert_caps(c.inheritable())?,
                    ambient: convert_caps(c.ambient())?,
                };
                // The kernel only raises an ambient capability that is both permitted and
                // inheritable; runc's own default spec asks for others, and runc skips them.
                let mut skipped: Vec<String> = sets
                    .ambient
                    .iter()
                    .filter(|c| !sets.permitted.contains(c) || !sets.inheritable.contains(c))
                    .map(|c| c.to_string())
                    .collect();
                if !skipped.is_empty() {
                    skipped.sort();
                    warnings.push(format!(
                        "ambient capabilities {} are not both permitted and inheritable; not raised",
                        skipped.join(", ")
                    ));
                    let (p, i) = (sets.permitted.clone(), sets.inheritable.clone());
                    sets.ambient.retain(|c| p.contains(c) && i.contains(c));
                }
                Some(sets)
            }
            None => None,
        };

        let env: Vec<String> = process.env().clone().unwrap_or_default();
        let path_env = env
            .iter()
            .rev()
            .find_map(|e| e.strip_prefix("PATH="))
            .unwrap_or(DEFAULT_PATH)
            .to_string();
        let user = process.user();
        let copy = |fd: Option<BorrowedFd<'_>>, what: &str| {
            fd.map(|f| f.try_clone_to_owned())
                .transpose()
                .map_err(|e| Error::sys(format!("duplicate the container's {what}"), e))
        };
        // A terminal replaces all three.
        let stdio = if opts.console_socket.is_some() {
            [None, None, None]
        } else {
            [
                match opts.stdin {
                    Stdin::Null => Some(
                        std::fs::File::open("/dev/null")
                            .map_err(|e| Error::sys("open /dev/null", e))?
                            .into(),
                    ),
                    Stdin::Inherit => None,
                    Stdin::Fd(fd) => copy(Some(fd), "stdin")?,
                },
                copy(opts.stdout, "stdout")?,
                copy(opts.stderr, "stderr")?,
            ]
        };

        let mut map_writer = rootless::MapWriter::Direct;
        let id_maps = if clone_flags.contains(CloneFlags::CLONE_NEWUSER) {
            let l = linux.ok_or_else(|| Error::InvalidSpec("linux is missing".into()))?;
            let fmt = |maps: &Option<Vec<oci_spec::runtime::LinuxIdMapping>>, what: &str| {
                let maps = maps.as_deref().unwrap_or_default();
                if maps.is_empty() {
                    return Err(Error::InvalidSpec(format!(
                        "a new user namespace needs linux.{what}"
                    )));
                }
                Ok(maps
                    .iter()
                    .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
                    .collect::<String>())
            };
            let maps = (
                fmt(l.uid_mappings(), "uidMappings")?,
                fmt(l.gid_mappings(), "gidMappings")?,
            );
            map_writer = rootless::plan_maps(&maps.0, &maps.1)?;
            // Caught here, it names the maps; the child's setuid would only say EINVAL.
            let user = process.user();
            rootless::check_mapped("uid", &maps.0, "linux.uidMappings", user.uid())?;
            rootless::check_mapped("gid", &maps.1, "linux.gidMappings", user.gid())?;
            for g in user.additional_gids().iter().flatten() {
                rootless::check_mapped("gid", &maps.1, "linux.gidMappings", *g)?;
            }
            Some(maps)
        } else if !joins_user
            && linux.is_some_and(|l| {
                l.uid_mappings().as_ref().is_some_and(|m| !m.is_empty())
                    || l.gid_mappings().as_ref().is_some_and(|m| !m.is_empty())
            })
        {
            return Err(Error::InvalidSpec(
                "linux.uidMappings/gidMappings need a new user namespace".into(),
            ));
        } else {
            None
        };

        let setgroups_denied = map_writer == rootless::MapWriter::OwnIds;
        if setgroups_denied
            && process
                .user()
                .additional_gids()
                .as_ref()
                .is_some_and(|g| !g.is_empty())
        {
            return Err(Error::InvalidSpec(
                "process.user.additionalGids needs setgroups, which a user namespace mapping only your own ids denies: map subordinate gids (newgidmap) too".into(),
            ));
        }
        let hostname = spec.hostname().clone().filter(|h| !h.is_empty());
        if hostname.is_some() && !uts {
            return Err(Error::InvalidSpec(
                "a hostname needs a UTS namespace (new, or joined by path)".into(),
            ));
        }
        let labels = lsm::Labels::from_spec(spec)?;
        warnings.extend(labels.warnings.iter().cloned());
        if let Some(label) = &labels.mount_label {
            for m in &mut mounts {
                lsm::label_mount(m, label);
            }
        }

        let mut seccomp = linux
            .and_then(|l| l.seccomp().as_ref())
            .map(|p| seccomp::compile_cached(p, opts.seccomp_cache))
            .transpose()?;
        if let (Some(p), Some(_)) = (seccomp.as_mut(), opts.seccomp_agent) {
            p.notify_enosys();
        }
        Ok(Prepared {
            root: root_path,
            root_readonly: root.readonly().unwrap_or(false),
            overlay: opts
                .overlay
                .map(|o| overlay::options(&o.lower, Some((&o.upper, &o.work)), o.volatile))
                .transpose()?,
            clone_flags,
            join,
            new_cgroupns,
            hostname,
            mounts,
            rootfs_propagation,
            shared_mount_ns,
            devices,
            default_dev_links,
            masked: linux
                .and_then(|l| l.masked_paths().clone())
                .unwrap_or_default()
                .into_iter()
                .map(PathBuf::from)
                .collect(),
            readonly: linux
                .and_then(|l| l.readonly_paths().clone())
                .unwrap_or_default()
                .into_iter()
                .map(PathBuf::from)
                .collect(),
            sysctl: linux
                .and_then(|l| l.sysctl().clone())
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (PathBuf::from("/proc/sys").join(k.replace('.', "/")), v))
                .collect(),
            rlimits,
            warnings,
            uid: user.uid(),
            gid: user.gid(),
            additional_gids: user.additional_gids().clone().unwrap_or_default(),
            umask: user.umask().unwrap_or(0o022),
            caps,
            no_new_privs: process.no_new_privileges().unwrap_or(false),
            oom_score_adj: process.oom_score_adj(),
            cwd: process.cwd().clone(),
            args: args
                .iter()
                .map(|a| cstring(a, "an argument"))
                .collect::<Result<_, _>>()?,
            env: env
                .iter()
                .map(|e| cstring(e, "an environment variable"))
                .collect::<Result<_, _>>()?,
            path_env,
            stdio,
            kill_with_parent: opts.kill_with_parent,
            before_start_during_cgroup_join: opts.before_start_during_cgroup_join,
            preserve_fds: opts.preserve_fds,
            no_pivot: opts.no_pivot,
            new_session_keyring: opts.new_session_keyring,
            console_socket: opts
                .console_socket
                .map(|fd| std::os::fd::AsRawFd::as_raw_fd(&fd)),
            console_size: process
                .console_size()
                .map(|b| (clamp_u16(b.height()), clamp_u16(b.width()))),
            seccomp_listener: seccomp_listener(spec, seccomp.as_ref(), opts.seccomp_agent)?,
            seccomp,
            join_pid,
            exec_in_existing_root,
            chroot_existing,
            lsm_exec: labels.exec,
            mount_label: labels
                .mount_label
                .as_deref()
                .map(|l| cstring(l, "linux.mountLabel"))
                .transpose()?,
            id_maps,
            map_writer,
            setgroups_denied,
            exec_fifo: None,
            cgroup_fixups,
            idmapped,
            net_devices,
            attrs: attrs::Attrs::from_spec(spec, uts, new_time)?,
            create_container_hooks: container_hooks(spec, opts, "createContainer")?,
            start_container_hooks: container_hooks(spec, opts, "startContainer")?,
            hook_state: opts.hook_state.unwrap_or("{}").to_owned(),
            joined_state: opts.joined_state.map(str::to_owned),
        })
    }
}

/// `linux.rootfsPropagation`: the propagation given to `/` before the root is assembled and,
/// for `shared` and `unbindable`, to the new root after `pivot_root`, as runc does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RootPropagation(pub nix::mount::MsFlags);

impl RootPropagation {
    /// hako's default (the spec leaves it to the runtime): nothing propagates either way.
    const DEFAULT: nix::mount::MsFlags =
        nix::mount::MsFlags::MS_PRIVATE.union(nix::mount::MsFlags::MS_REC);

    fn parse(value: Option<&str>) -> Result<Self, Error> {
        use nix::mount::MsFlags as F;
        let flags = match value.unwrap_or("") {
            "" | "rprivate" => Self::DEFAULT,
            "private" => F::MS_PRIVATE,
            "slave" => F::MS_SLAVE,
            "rslave" => F::MS_SLAVE | F::MS_REC,
            "shared" => F::MS_SHARED,
            "rshared" => F::MS_SHARED | F::MS_REC,
            "unbindable" => F::MS_UNBINDABLE,
            "runbindable" => F::MS_UNBINDABLE | F::MS_REC,
            other => {
                return Err(Error::InvalidSpec(format!(
                    "linux.rootfsPropagation {other:?} is not one of shared, slave, private, unbindable (or their r-forms)"
                )))
            }
        };
        Ok(RootPropagation(flags))
    }

    /// Everything under `/` is private: no mount can propagate in or out, so neither the
    /// rootfs's parent nor the old root needs more care.
    pub fn is_default(self) -> bool {
        self.0 == Self::DEFAULT
    }

    /// What the rootfs's parent mount becomes before the root is mounted on it: never shared,
    /// since `pivot_root` refuses a shared parent and a bind of the root under a shared parent
    /// would propagate to the host's mount namespace.
    pub fn parent_flags(self) -> nix::mount::MsFlags {
        if self.0.contains(nix::mount::MsFlags::MS_SLAVE) {
            nix::mount::MsFlags::MS_SLAVE
        } else {
            nix::mount::MsFlags::MS_PRIVATE
        }
    }

    /// What `/` gets before the root is assembled. runc gives it the spec's value; for
    /// `unbindable` that makes every later bind from `/` (and for `runbindable` from any host
    /// mount, the cgroup views included) fail with EINVAL, so here `/` becomes private
    /// instead and the root is made unbindable once it is complete.
    pub fn before(self) -> nix::mount::MsFlags {
        use nix::mount::MsFlags as F;
        if self.0.contains(F::MS_UNBINDABLE) {
            (self.0 - F::MS_UNBINDABLE) | F::MS_PRIVATE
        } else {
            self.0
        }
    }

    /// Applied to the new `/` once the root is complete (after the masks and read-only
    /// paths, which bind within it): `private` and `slave` already hold there through the
    /// parent mount.
    pub fn after_pivot(self) -> Option<nix::mount::MsFlags> {
        use nix::mount::MsFlags as F;
        self.0
            .intersects(F::MS_SHARED | F::MS_UNBINDABLE)
            .then_some(self.0)
    }
}

/// Unmounts every mount at or below `dir` in the caller's mount namespace, deepest first.
/// A container without a mount namespace of its own ([`SpawnOptions`] spec without a `mount`
/// namespace) leaves its mounts on its root filesystem in the runtime's namespace; this is
/// how its runtime takes them away once the container is gone.
pub fn unmount_under(dir: &Path) -> Result<(), Error> {
    let info = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| Error::sys("read /proc/self/mountinfo", e))?;
    let mut points: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| PathBuf::from(std::ffi::OsString::from_vec(unescape_mountinfo(p))))
        .filter(|p| p.starts_with(dir))
        .collect();
    // Later lines are mounted later: on top of, or below, the earlier ones.
    points.reverse();
    for p in points {
        match nix::mount::umount2(&p, nix::mount::MntFlags::MNT_DETACH) {
            Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
            Err(e) => return Err(Error::sys(format!("unmount {}", p.display()), e)),
        }
    }
    Ok(())
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_mountinfo(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 4 <= b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

/// Where the seccomp notification descriptor goes.
#[derive(Debug)]
pub(crate) struct SeccompListener {
    pub socket: OwnedFd,
    pub oci_version: String,
    /// `listenerMetadata` as a JSON string.
    pub metadata: String,
}

/// Connects to the seccomp agent now, while `listenerPath` (a host path) still resolves.
fn seccomp_listener(
    spec: &Spec,
    program: Option<&seccomp::Program>,
    agent: Option<BorrowedFd<'_>>,
) -> Result<Option<SeccompListener>, Error> {
    if !program.is_some_and(|p| p.notify) {
        return Ok(None);
    }
    let profile = spec.linux().as_ref().and_then(|l| l.seccomp().as_ref());
    let Some(path) = profile.and_then(|p| p.listener_path().as_ref()) else {
        return match agent {
            Some(a) => Ok(Some(SeccompListener {
                socket: a
                    .try_clone_to_owned()
                    .map_err(|e| Error::sys("duplicate the seccomp agent's socket", e))?,
                oci_version: spec.version().clone(),
                metadata: serde_json::Value::from("").to_string(),
            })),
            None => Err(Error::InvalidSpec(
                "linux.seccomp: SCMP_ACT_NOTIFY needs a listenerPath to send the notification descriptor to"
                    .into(),
            )),
        };
    };
    let stream = std::os::unix::net::UnixStream::connect(path)
        .map_err(|e| Error::sys(format!("linux.seccomp.listenerPath {}", path.display()), e))?;
    let metadata = profile
        .and_then(|p| p.listener_metadata().clone())
        .unwrap_or_default();
    Ok(Some(SeccompListener {
        socket: stream.into(),
        oci_version: spec.version().clone(),
        metadata: serde_json::Value::from(metadata).to_string(),
    }))
}

/// Symlinks and read-only remounts that finish the cgroup mounts' views.
#[derive(Debug, Default)]
pub(crate) struct CgroupFixups {
    /// (link inside the container, target), e.g. `/sys/fs/cgroup/cpu` -> `cpu,cpuacct`.
    pub links: Vec<(PathBuf, String)>,
    /// tmpfs mounts to make read-only after the links exist.
    pub readonly: Vec<PathBuf>,
}

/// A `cgroup` mount becomes the container's own cgroup, not the host's hierarchies: like
/// runc on cgroup v1, a tmpfs with a bind mount of the container's directory of each
/// hierarchy (and symlinks for co-mounted controllers); on a pure cgroup2 host, a bind mount of
/// the container's cgroup2 directory. Neither shows a hierarchy root, so no `release_agent`
/// is reachable (CVE-2022-0492).
///
/// A rootless container without a cgroup of its own (no delegation) in a new user namespace
/// gets the host's cgroup tree read-only instead, as runc gives it: its root is an ordinary
/// user on the host, which can write none of the hierarchies' files anyway.
fn cgroup_view(
    plan: mounts::MountPlan,
    cgroup: Option<&hako_cgroups::Cgroup>,
    userns: bool,
    mounts: &mut Vec<mounts::MountPlan>,
    fixups: &mut CgroupFixups,
) -> Result<(), Error> {
    use nix::mount::MsFlags;
    let keep = plan.flags & (MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC);
    let ro = plan.flags & MsFlags::MS_RDONLY;
    let Some(cg) = cgroup else {
        if !userns {
            return Err(Error::InvalidSpec(format!(
                "the cgroup mount on {} needs the container to have a cgroup",
                plan.destination.display()
            )));
        }
        mounts.push(mounts::MountPlan {
            destination: plan.destination,
            fstype: None,
            source: Some("/sys/fs/cgroup".into()),
            flags: MsFlags::MS_BIND | MsFlags::MS_REC | keep | MsFlags::MS_RDONLY,
            propagation: MsFlags::empty(),
            data: String::new(),
            recursive: plan.recursive,
        });
        return Ok(());
    };
    let views = cg.views();
    let bind = |dest: PathBuf, src: PathBuf| mounts::MountPlan {
        destination: dest,
        fstype: None,
        source: Some(src),
        flags: MsFlags::MS_BIND | keep | ro,
        propagation: MsFlags::empty(),
        data: String::new(),
        recursive: plan.recursive,
    };
    if let [only] = views.as_slice() {
        if only.unified {
            mounts.push(bind(plan.destination, only.dir.clone()));
            return Ok(());
        }
    }
    mounts.push(mounts::MountPlan {
        destination: plan.destination.clone(),
        fstype: Some("tmpfs".into()),
        source: Some("tmpfs".into()),
        flags: keep,
        propagation: MsFlags::empty(),
        data: "mode=755".into(),
        recursive: mounts::RecursiveAttrs::default(),
    });
    for v in &views {
        let dest = plan.destination.join(&v.name);
        mounts.push(bind(dest, v.dir.clone()));
        if v.name.contains(',') {
            for part in v.name.split(',') {
                fixups
                    .links
                    .push((plan.destination.join(part), v.name.clone()));
            }
        }
    }
    if !ro.is_empty() {
        fixups.readonly.push(plan.destination);
    }
    Ok(())
}

/// The hooks of `kind` that run in the container's namespaces, decoded for the child.
fn container_hooks(
    spec: &Spec,
    opts: &SpawnOptions<'_>,
    kind: &str,
) -> Result<Vec<hooks::HookPlan>, Error> {
    let list = spec.hooks().as_ref().and_then(|h| match kind {
        "createContainer" => h.create_container().as_ref(),
        _ => h.start_container().as_ref(),
    });
    let Some(list) = list.filter(|l| !l.is_empty()) else {
        return Ok(Vec::new());
    };
    if opts.hook_state.is_none() {
        return Err(Error::InvalidSpec(format!(
            "hooks.{kind} needs the container's state, which this caller does not provide"
        )));
    }
    list.iter()
        .map(|h| hooks::HookPlan::from_spec(kind, h))
        .collect()
}

fn clamp_u16(n: u64) -> u16 {
    u16::try_from(n).unwrap_or(u16::MAX)
}
