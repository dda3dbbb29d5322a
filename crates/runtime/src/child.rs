//! The container side of `spawn`: runs in the freshly cloned child, inside the new namespaces,
//! and ends in `execve` of the container's command (or in `_exit` after reporting why not).
//!
//! The parent is single-threaded, so allocating here is safe; everything that can be decided
//! without the new namespaces was decided in `Prepared::from_spec`.

use crate::fsutil::{self, Kind};
use crate::mounts::MountPlan;
use crate::{Error, ExecFailure, Prepared};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::stat::{Mode, SFlag};
use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

const SETUP: u8 = 0;
const EXEC_NOT_FOUND: u8 = 1;
const EXEC_CANNOT: u8 = 2;
/// Sent on the report pipe by a `create`d child once it waits for `start`.
pub(crate) const READY: u8 = 3;
/// First byte a `create`d child writes into the exec FIFO when `start` opens it.
pub(crate) const RELEASED: u8 = b'0';
/// Seccomp listener hand-over, on the report pipe or the exec FIFO: the number of the write end
/// of a pipe the runtime takes to acknowledge on (4 bytes, native order).
pub(crate) const SECCOMP_ACK_PIPE: u8 = 4;
/// Then, before the filter goes in: the descriptor number the listener will get, that of the
/// agent's socket, the payload's length (4 bytes each) and the payload.
pub(crate) const SECCOMP_LISTENER: u8 = 5;

enum Failure {
    Setup(String),
    Exec(ExecFailure, String),
    /// The parent went away before telling us to start: nobody to report to.
    Abandoned,
}

type Res<T> = Result<T, Failure>;

trait Context<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> Res<T>;
}

impl<T, E: Into<io::Error>> Context<T> for Result<T, E> {
    fn ctx(self, what: impl FnOnce() -> String) -> Res<T> {
        self.map_err(|e| {
            let e: io::Error = e.into();
            Failure::Setup(format!("{}: {}", what(), strip_os_error(&e)))
        })
    }
}

/// `io::Error`'s Display appends " (os error N)"; Docker users see plain strerror text.
pub(crate) fn strip_os_error(e: &io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_lowercase(),
        None => s,
    }
}

/// Where the child reports a failure: the report pipe until a `create`d child announced it is
/// ready, then the exec FIFO that `start` reads, and stderr when neither is open.
struct Channel {
    report: Option<OwnedFd>,
    fifo: Option<OwnedFd>,
}

/// Entry point of the child. Never returns.
pub(crate) fn run(p: &Prepared, go: OwnedFd, report: OwnedFd, mapped: OwnedFd) -> ! {
    let mut channel = Channel {
        report: Some(report),
        fifo: None,
    };
    let failure = match become_root(p, mapped).and_then(|()| setup_and_exec(p, go, &mut channel)) {
        Err(f) => f,
        Ok(never) => match never {},
    };
    let (kind, msg) = match failure {
        Failure::Setup(m) => (SETUP, m),
        Failure::Exec(ExecFailure::NotFound, m) => (EXEC_NOT_FOUND, m),
        Failure::Exec(ExecFailure::CannotExecute, m) => (EXEC_CANNOT, m),
        // SAFETY: _exit is async-signal-safe and skips the parent's atexit handlers and buffers.
        Failure::Abandoned => unsafe { libc::_exit(1) },
    };
    let code = match kind {
        EXEC_NOT_FOUND => 127,
        EXEC_CANNOT => 126,
        _ => 1,
    };
    let mut buf = Vec::with_capacity(msg.len() + 1);
    buf.push(kind);
    buf.extend_from_slice(msg.as_bytes());
    match channel.report.as_ref().or(channel.fifo.as_ref()) {
        Some(fd) => {
            let _ = nix::unistd::write(fd, &buf);
        }
        None => {
            let line = format!("hako-runtime: {msg}\n");
            let _ = nix::unistd::write(std::io::stderr(), line.as_bytes());
        }
    }
    // SAFETY: as above; the parent learns the outcome from the report pipe.
    unsafe { libc::_exit(code) }
}

/// For `create`: tells the parent the container is ready, then blocks until `start` opens the
/// exec FIFO for reading. The FIFO is reopened for writing through the host's /proc, because its
/// path is outside the container's root.
fn wait_for_start(p: &Prepared, channel: &mut Channel) -> Res<()> {
    let Some((fifo, proc)) = &p.exec_fifo else {
        return Ok(());
    };
    if let Some(report) = channel.report.take() {
        nix::unistd::write(&report, &[READY]).ctx(|| "report readiness".into())?;
    }
    let path = CString::new(format!("thread-self/fd/{}", fifo.as_raw_fd()))
        .map_err(|_| Failure::Setup("NUL in path".into()))?;
    let w = loop {
        // SAFETY: openat on a directory descriptor we own with a valid C string; the result is
        // checked and owned below.
        let r = unsafe {
            libc::openat(
                proc.as_raw_fd(),
                path.as_ptr(),
                libc::O_WRONLY | libc::O_CLOEXEC,
            )
        };
        if r >= 0 {
            // SAFETY: a fresh descriptor nothing else owns.
            break unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(r) };
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e).ctx(|| "open the exec FIFO".into());
        }
    };
    nix::unistd::write(&w, &[RELEASED]).ctx(|| "write the exec FIFO".into())?;
    channel.fifo = Some(w);
    Ok(())
}

/// Parent side: turns the child's report into an error.
pub(crate) fn decode_report(buf: &[u8]) -> Error {
    let msg = String::from_utf8_lossy(&buf[1..]).into_owned();
    match buf[0] {
        EXEC_NOT_FOUND => Error::Exec {
            kind: ExecFailure::NotFound,
            message: msg,
        },
        EXEC_CANNOT => Error::Exec {
            kind: ExecFailure::CannotExecute,
            message: msg,
        },
        _ => Error::Setup(msg),
    }
}

enum Never {}

/// In a new user namespace: waits until the parent wrote the id maps, then takes the
/// namespace's root ids so files created during setup belong to the container's root.
fn become_root(p: &Prepared, mapped: OwnedFd) -> Res<()> {
    if p.id_maps.is_none() {
        return Ok(());
    }
    let mut b = [0u8; 1];
    match nix::unistd::read(&mapped, &mut b) {
        Ok(1) => {}
        _ => return Err(Failure::Abandoned),
    }
    let root_gid = nix::unistd::Gid::from_raw(0);
    let root_uid = nix::unistd::Uid::from_raw(0);
    nix::unistd::setresgid(root_gid, root_gid, root_gid)
        .ctx(|| "become root in the user namespace (gid)".into())?;
    nix::unistd::setresuid(root_uid, root_uid, root_uid)
        .ctx(|| "become root in the user namespace (uid)".into())
}

fn setup_and_exec(p: &Prepared, go: OwnedFd, channel: &mut Channel) -> Res<Never> {
    // Until execve this process is the runtime's binary inside the container's namespaces.
    // Non-dumpable, its /proc entries (exe, mem, fds) are closed to the container's processes,
    // which could otherwise reopen the runtime binary for writing (CVE-2019-5736). execve
    // makes the container's own command dumpable again.
    nix::sys::prctl::set_dumpable(false).ctx(|| "make the runtime non-dumpable".into())?;
    if p.kill_with_parent {
        nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
            .ctx(|| "set parent-death signal".into())?;
    }
    // Device nodes and mount points get exactly the modes we ask for.
    nix::sys::stat::umask(Mode::empty());

    for (fd, flag) in &p.join {
        nix::sched::setns(fd, *flag).ctx(|| format!("join namespace {flag:?}"))?;
    }
    crate::attrs::apply_early(&p.attrs).map_err(Failure::Setup)?;
    // Joining the container's mount namespace (exec) lands in its finished root, which
    // setns made our root and working directory.
    // The host's /proc is still ours here, so /proc/self names our pid as the runtime sees it:
    // the pid the hooks' state carries.
    let host_pid = if p.create_container_hooks.is_empty()
        && p.start_container_hooks.is_empty()
        && p.seccomp_listener.is_none()
    {
        0
    } else {
        std::fs::read_link("/proc/self")
            .ok()
            .and_then(|l| l.to_str()?.parse().ok())
            .ok_or_else(|| Failure::Setup("read our pid from /proc/self".into()))?
    };
    let mut go = Some(go);
    let root = if p.chroot_existing {
        // A running container without a mount namespace of its own: its root is a chroot in
        // ours, which `p.root` (its init's /proc/PID/root) leads to.
        nix::unistd::chroot(&p.root).ctx(|| format!("chroot to {}", p.root.display()))?;
        nix::unistd::chdir("/").ctx(|| "chdir /".into())?;
        nix::fcntl::open(
            "/",
            nix::fcntl::OFlag::O_PATH
                | nix::fcntl::OFlag::O_DIRECTORY
                | nix::fcntl::OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .ctx(|| "open the container's root".into())?
    } else if p.exec_in_existing_root {
        nix::fcntl::open(
            "/",
            nix::fcntl::OFlag::O_PATH
                | nix::fcntl::OFlag::O_DIRECTORY
                | nix::fcntl::OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .ctx(|| "open the container's root".into())?
    } else {
        build_root(p, &mut go, host_pid)?
    };

    crate::attrs::apply_domainname(&p.attrs).map_err(Failure::Setup)?;

    // Moving a process into a v1 cgroup waits for an RCU grace period (~10-15 ms), so the
    // parent does it while we build the root filesystem above, and we only wait here, before
    // anything of the container runs. The cgroup namespace is then rooted at that cgroup.
    if let Some(go) = go.take() {
        wait_go(go)?;
    }
    if p.new_session_keyring {
        // SAFETY: KEYCTL_JOIN_SESSION_KEYRING with a NULL name creates an anonymous keyring and
        // reads no memory of ours.
        let r = unsafe {
            libc::syscall(
                libc::SYS_keyctl,
                libc::KEYCTL_JOIN_SESSION_KEYRING,
                std::ptr::null::<libc::c_char>(),
            )
        };
        // Kernels without keyrings (or seccomp'd hosts) answer ENOSYS; runc goes on there too.
        if r < 0 && io::Error::last_os_error().raw_os_error() != Some(libc::ENOSYS) {
            return Err(io::Error::last_os_error()).ctx(|| "join a new session keyring".into());
        }
    }
    if p.new_cgroupns {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWCGROUP)
            .ctx(|| "create cgroup namespace".into())?;
    }

    for &(res, soft, hard) in &p.rlimits {
        let lim = libc::rlimit {
            rlim_cur: soft,
            rlim_max: hard,
        };
        // SAFETY: setrlimit reads the struct we pass.
        if unsafe { libc::setrlimit(res, &lim) } != 0 {
            return Err(io::Error::last_os_error()).ctx(|| format!("setrlimit {res}"));
        }
    }
    if let Some(adj) = p.oom_score_adj {
        std::fs::write("/proc/self/oom_score_adj", adj.to_string())
            .ctx(|| "set oom_score_adj".into())?;
    }

    // The container must not share the caller's session: a terminal's Ctrl-C goes to hako,
    // which decides what the container receives.
    nix::unistd::setsid().ctx(|| "setsid".into())?;
    for (target, fd) in p.stdio.iter().enumerate() {
        if let Some(fd) = fd {
            // SAFETY: dup2 of a descriptor we own onto 0, 1 or 2; the copy has no close-on-exec.
            if unsafe { libc::dup2(fd.as_raw_fd(), target as i32) } < 0 {
                return Err(io::Error::last_os_error())
                    .ctx(|| format!("redirect standard descriptor {target}"));
            }
        }
    }
    if let Some(socket) = p.console_socket {
        attach_console(p, root.as_raw_fd(), socket)?;
    }

    // Resolved with RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS, so `/proc/self/fd/N` working
    // directories (CVE-2024-21626) and symlinks out of the root are refused.
    let cwd = fsutil::ensure_in_root(root.as_raw_fd(), &p.cwd, Kind::Dir)
        .ctx(|| format!("working directory {}", p.cwd.display()))?;
    nix::unistd::fchdir(&cwd).ctx(|| format!("chdir to {}", p.cwd.display()))?;
    drop(cwd);
    drop(root);

    wait_for_start(p, channel)?;
    if !p.start_container_hooks.is_empty() {
        let state = crate::hooks::state_json(&p.hook_state, "created", host_pid);
        crate::hooks::run("startContainer", &p.start_container_hooks, &state)
            .map_err(Failure::Setup)?;
    }
    crate::attrs::apply_late(&p.attrs).map_err(Failure::Setup)?;
    // Before the filter, which may deny the writes; the kernel switches labels at exec.
    crate::lsm::apply_exec(&p.lsm_exec).map_err(Failure::Setup)?;
    // Without no_new_privs, installing a filter needs CAP_SYS_ADMIN, which the user switch
    // may drop; with it, the filter goes last so it need not allow the switch's syscalls.
    if let Some(prog) = p.seccomp.as_ref().filter(|_| !p.no_new_privs) {
        load_seccomp(p, prog, channel, host_pid)?;
    }
    switch_user(p)?;
    if p.no_new_privs {
        nix::sys::prctl::set_no_new_privs().ctx(|| "set no_new_privs".into())?;
        if let Some(prog) = &p.seccomp {
            load_seccomp(p, prog, channel, host_pid)?;
        }
    }
    nix::sys::stat::umask(Mode::from_bits_truncate(p.umask as libc::mode_t));
    reset_signals();
    // Everything inherited from hako (the state database, the store lock) must not reach the
    // container; CLOEXEC rather than close so the report pipe still works until exec succeeds.
    // SAFETY: close_range only flags our own descriptors.
    unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3u32.saturating_add(p.preserve_fds),
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };

    exec(p)
}

/// Allocates the container's terminal from its own devpts instance (its `/dev/ptmx`, resolved
/// in `root`, which is the new root or the joined container's), as runc does: the master goes
/// to the caller over `socket`, the slave becomes stdin, stdout, stderr and the controlling
/// terminal of this process, which must lead a session without one.
fn attach_console(p: &Prepared, root: RawFd, socket: RawFd) -> Res<()> {
    let master = fsutil::open_in_root(root, Path::new("/dev/ptmx"), libc::O_RDWR | libc::O_NOCTTY)
        .ctx(|| "open /dev/ptmx in the container".into())?;
    let unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK (unlockpt) reads the int we pass; the master is ours.
    if unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &unlock) } < 0 {
        return Err(io::Error::last_os_error()).ctx(|| "unlock the pseudo-terminal".into());
    }
    let mut number: libc::c_uint = 0;
    // SAFETY: TIOCGPTN (ptsname) writes the slave's number into the int we pass.
    if unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGPTN, &mut number) } < 0 {
        return Err(io::Error::last_os_error()).ctx(|| "name the pseudo-terminal".into());
    }
    let name = format!("/dev/pts/{number}");
    if let Some((rows, cols)) = p.console_size {
        let ws = libc::winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads the winsize we pass.
        if unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) } < 0 {
            return Err(io::Error::last_os_error()).ctx(|| "set the console size".into());
        }
    }
    // The slave of this very master, through its devpts instance: no path to swap.
    // SAFETY: TIOCGPTPEER takes open flags by value and returns a fresh descriptor or -1.
    let peer = unsafe {
        libc::ioctl(
            master.as_raw_fd(),
            libc::TIOCGPTPEER,
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    };
    let slave = if peer >= 0 {
        // SAFETY: a fresh descriptor nothing else owns.
        unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(peer) }
    } else {
        // Kernels before 4.13: by name, in the same root.
        fsutil::open_in_root(root, Path::new(&name), libc::O_RDWR | libc::O_NOCTTY)
            .ctx(|| format!("open {name}"))?
    };
    // The terminal belongs to the container's user, as with runc; a uid the user namespace
    // does not map (EINVAL) or may not give away (EPERM) leaves it as it is.
    // SAFETY: fchown on a descriptor we own; -1 keeps the group (devpts' gid= option).
    if unsafe { libc::fchown(slave.as_raw_fd(), p.uid, libc::gid_t::MAX) } < 0 {
        let e = io::Error::last_os_error();
        if !matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(libc::EPERM)) {
            return Err(e).ctx(|| format!("chown {name}"));
        }
    }

    let fds = [master.as_raw_fd()];
    let payload = [io::IoSlice::new(name.as_bytes())];
    nix::sys::socket::sendmsg::<nix::sys::socket::UnixAddr>(
        socket,
        &payload,
        &[nix::sys::socket::ControlMessage::ScmRights(&fds)],
        nix::sys::socket::MsgFlags::MSG_NOSIGNAL,
        None,
    )
    .ctx(|| "send the terminal to the console socket".into())?;
    drop(master);
    // Our copy of the caller's socket must not outlive the hand-over into the container.
    // SAFETY: the descriptor was inherited from the caller for this purpose and is not used
    // again in this process.
    unsafe { libc::close(socket) };

    nix::unistd::dup2_stdin(&slave)
        .and_then(|()| nix::unistd::dup2_stdout(&slave))
        .and_then(|()| nix::unistd::dup2_stderr(&slave))
        .ctx(|| "attach the terminal".into())?;
    // SAFETY: TIOCSCTTY on our stdin, now the pty slave, in the session setsid just made.
    if unsafe { libc::ioctl(0, libc::TIOCSCTTY, 0) } < 0 {
        return Err(io::Error::last_os_error())
            .ctx(|| "make the terminal the controlling terminal".into());
    }
    Ok(())
}

/// Assembles the container's root filesystem, enters it and applies the root-wide settings.
/// Returns a descriptor of the new root.
/// Installs the seccomp filter. With SCMP_ACT_NOTIFY rules the runtime, outside the filter,
/// takes the listener from us with pidfd_getfd(2) and sends it to the agent: once the filter is
/// in, any system call of ours may wait for that agent, so everything the runtime needs is told
/// beforehand and nothing after the load depends on a call that could be notified.
fn load_seccomp(
    p: &Prepared,
    prog: &crate::seccomp::Program,
    channel: &Channel,
    host_pid: i32,
) -> Res<()> {
    let Some(l) = p.seccomp_listener.as_ref().filter(|_| prog.notify) else {
        crate::seccomp::load(prog).ctx(|| "load the seccomp filter".into())?;
        return Ok(());
    };
    let out = channel
        .report
        .as_ref()
        .or(channel.fifo.as_ref())
        .ok_or_else(|| {
            Failure::Setup("no channel to the runtime for the seccomp listener".into())
        })?;
    // The runtime acknowledges on this pipe; once it holds the only write end, EOF means it is
    // gone.
    let (ack_r, ack_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .ctx(|| "create the seccomp hand-over pipe".into())?;
    let mut msg = vec![SECCOMP_ACK_PIPE];
    msg.extend_from_slice(&ack_w.as_raw_fd().to_ne_bytes());
    write_all(out, &msg).ctx(|| "announce the seccomp listener".into())?;
    wait_ack(&ack_r)?;
    drop(ack_w);

    // The listener gets the lowest free descriptor: find it now, so the runtime knows where to
    // look without a word from us once the filter is in.
    let slot = nix::fcntl::fcntl(&ack_r, nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(0))
        .ctx(|| "find a free descriptor".into())?;
    // SAFETY: closing the probe descriptor we just made; nothing else refers to it.
    unsafe { libc::close(slot) };
    let state = match &p.joined_state {
        Some(s) => s.clone(),
        None => crate::hooks::state_json(&p.hook_state, "created", host_pid),
    };
    let payload = format!(
        "{{\"ociVersion\":{},\"fds\":[\"seccompFd\"],\"pid\":{host_pid},\"metadata\":{},\"state\":{state}}}",
        serde_json::Value::from(l.oci_version.as_str()),
        l.metadata
    );
    let mut msg = vec![SECCOMP_LISTENER];
    msg.extend_from_slice(&slot.to_ne_bytes());
    msg.extend_from_slice(&l.socket.as_raw_fd().to_ne_bytes());
    msg.extend_from_slice(&(payload.len() as u32).to_ne_bytes());
    msg.extend_from_slice(payload.as_bytes());
    write_all(out, &msg).ctx(|| "announce the seccomp listener".into())?;

    let listener = crate::seccomp::load(prog).ctx(|| "load the seccomp filter".into())?;
    if listener.as_ref().map(|fd| fd.as_raw_fd()) != Some(slot) {
        // Reporting could itself wait for the agent; the runtime sees us exit instead.
        // SAFETY: _exit is async-signal-safe and skips the parent's atexit handlers.
        unsafe { libc::_exit(1) }
    }
    // Whatever the agent answers for this read, the byte only comes once the runtime took the
    // listener, and the listener must stay open until then.
    wait_ack(&ack_r)?;
    drop(listener);
    Ok(())
}

fn wait_ack(ack: &OwnedFd) -> Res<()> {
    let mut b = [0u8; 1];
    loop {
        match nix::unistd::read(ack, &mut b) {
            Ok(1) => return Ok(()),
            Err(nix::errno::Errno::EINTR) => continue,
            _ => return Err(Failure::Abandoned),
        }
    }
}

fn write_all(fd: &OwnedFd, mut buf: &[u8]) -> nix::Result<()> {
    while !buf.is_empty() {
        match nix::unistd::write(fd, buf) {
            Ok(n) => buf = &buf[n..],
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Waits for the parent's `go`: the cgroup is joined and the runtime's own hooks ran.
fn wait_go(go: OwnedFd) -> Res<()> {
    let mut b = [0u8; 1];
    match nix::unistd::read(&go, &mut b) {
        Ok(1) => Ok(()),
        _ => Err(Failure::Abandoned),
    }
}

/// Makes the mount that `path` is on private (or a slave, per `flags`), walking up from `path`
/// until a mount point answers, as runc does: EINVAL means "not a mount point".
fn parent_mount_propagation(path: &Path, flags: MsFlags) -> Res<()> {
    let mut at = path;
    loop {
        match mount(None::<&str>, at, None::<&str>, flags, None::<&str>) {
            Ok(()) => return Ok(()),
            Err(nix::errno::Errno::EINVAL) if at != Path::new("/") => {
                at = at.parent().unwrap_or(Path::new("/"));
            }
            Err(e) => return Err(e).ctx(|| format!("make the mount of {} private", at.display())),
        }
    }
}

fn build_root(p: &Prepared, go: &mut Option<OwnedFd>, host_pid: i32) -> Res<OwnedFd> {
    if p.shared_mount_ns {
        return build_shared_root(p, go, host_pid);
    }
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        p.rootfs_propagation.before(),
        None::<&str>,
    )
    .ctx(|| "set propagation of /".into())?;
    if !p.rootfs_propagation.is_default() {
        // pivot_root refuses a root whose parent mount is shared, and a root mounted under a
        // shared parent would show up in the host's mount namespace too.
        parent_mount_propagation(&p.root, p.rootfs_propagation.parent_flags())?;
    }
    if let Some(o) = &p.overlay {
        o.reopen_layers().ctx(|| "open the image's layers".into())?;
    }
    match p.overlay.as_ref().map(|o| &o.data) {
        Some(data) => mount(
            Some("overlay"),
            &p.root,
            Some("overlay"),
            MsFlags::empty(),
            Some(data.as_c_str()),
        )
        .ctx(|| format!("mount overlay root filesystem on {}", p.root.display()))?,
        // pivot_root needs the new root to be a mount point.
        None => mount(
            Some(&p.root),
            &p.root,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .ctx(|| format!("bind mount root {}", p.root.display()))?,
    }
    let root: OwnedFd = nix::fcntl::open(
        &p.root,
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .ctx(|| format!("open root {}", p.root.display()))?;

    mount_all(p, root.as_raw_fd(), go, host_pid)?;

    nix::unistd::fchdir(&root).ctx(|| "enter root".into())?;
    if p.no_pivot {
        mount(Some("."), "/", None::<&str>, MsFlags::MS_MOVE, None::<&str>)
            .ctx(|| "move the root to /".into())?;
        nix::unistd::chroot(".").ctx(|| "chroot".into())?;
    } else {
        nix::unistd::pivot_root(".", ".").ctx(|| "pivot_root".into())?;
        if !p.rootfs_propagation.is_default() {
            // The old root, stacked at ".", still shares peer groups with the host's mounts:
            // as a slave its detach below cannot propagate back and unmount the host's.
            mount(
                None::<&str>,
                ".",
                None::<&str>,
                MsFlags::MS_SLAVE | MsFlags::MS_REC,
                None::<&str>,
            )
            .ctx(|| "make the old root a slave".into())?;
        }
        // The old root is now stacked under the new one at "."; detaching it hides the host.
        umount2(".", MntFlags::MNT_DETACH).ctx(|| "detach the host root".into())?;
    }
    nix::unistd::chdir("/").ctx(|| "chdir /".into())?;
    drop(root);
    let root = finish_root(p, go)?;
    if let Some(flags) = p.rootfs_propagation.after_pivot() {
        // Given to the new root itself, now that it is "/" and complete.
        mount(None::<&str>, "/", None::<&str>, flags, None::<&str>)
            .ctx(|| "set the propagation of the root".into())?;
    }
    Ok(root)
}

/// Without a mount namespace: the spec's mounts go onto the root in the runtime's namespace
/// (its caller unmounts them when the container is gone) and the root is entered with chroot.
/// Nothing here may touch a mount outside the root: no propagation change, no pivot or move.
fn build_shared_root(p: &Prepared, go: &mut Option<OwnedFd>, host_pid: i32) -> Res<OwnedFd> {
    if p.root_readonly {
        // A read-only root needs a mount of its own to remount, not the host's filesystem.
        mount(
            Some(&p.root),
            &p.root,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .ctx(|| format!("bind mount root {}", p.root.display()))?;
    }
    let root: OwnedFd = nix::fcntl::open(
        &p.root,
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .ctx(|| format!("open root {}", p.root.display()))?;
    mount_all(p, root.as_raw_fd(), go, host_pid)?;
    nix::unistd::fchdir(&root).ctx(|| "enter root".into())?;
    nix::unistd::chroot(".").ctx(|| "chroot".into())?;
    nix::unistd::chdir("/").ctx(|| "chdir /".into())?;
    drop(root);
    finish_root(p, go)
}

/// The spec's mounts, the cgroup views' finishing touches, devices and /dev links on the
/// assembled root, then the createContainer hooks.
fn mount_all(p: &Prepared, root: RawFd, go: &mut Option<OwnedFd>, host_pid: i32) -> Res<()> {
    for (i, m) in p.mounts.iter().enumerate() {
        let tree = p.idmapped.iter().find(|(j, _)| *j == i).map(|(_, t)| t);
        mount_one(root, m, tree, p.clone_flags)?;
        if m.fstype.as_deref() == Some("mqueue") {
            if let Some(label) = &p.mount_label {
                label_mount_point(root, &m.destination, label)?;
            }
        }
    }
    for (link, target) in &p.cgroup_fixups.links {
        let (parent, name) = split_parent(link)?;
        let dir = fsutil::open_in_root(root, &parent, libc::O_PATH | libc::O_DIRECTORY)
            .ctx(|| format!("open {}", parent.display()))?;
        nix::unistd::symlinkat(target.as_str(), &dir, name.as_c_str())
            .ctx(|| format!("symlink {}", link.display()))?;
    }
    for dest in &p.cgroup_fixups.readonly {
        let flags = MsFlags::MS_REMOUNT
            | MsFlags::MS_BIND
            | MsFlags::MS_RDONLY
            | MsFlags::MS_NOSUID
            | MsFlags::MS_NODEV
            | MsFlags::MS_NOEXEC;
        change_mount(root, dest, flags)?;
    }
    for d in &p.devices {
        make_device(root, d, p.id_maps.is_some())?;
    }
    if p.default_dev_links {
        dev_links(root)?;
    }

    if !p.create_container_hooks.is_empty() {
        // createContainer comes after createRuntime, which the parent runs before `go`; the
        // hooks' paths resolve in the runtime's filesystem, still ours before pivot_root.
        if let Some(go) = go.take() {
            wait_go(go)?;
        }
        let state = crate::hooks::state_json(&p.hook_state, "creating", host_pid);
        crate::hooks::run("createContainer", &p.create_container_hooks, &state)
            .map_err(Failure::Setup)?;
    }

    Ok(())
}

/// After the root became `/`: names, loopback, sysctls, masks, read-only paths.
fn finish_root(p: &Prepared, go: &mut Option<OwnedFd>) -> Res<OwnedFd> {
    let root: OwnedFd = nix::fcntl::open(
        "/",
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .ctx(|| "open new root".into())?;

    if let Some(h) = &p.hostname {
        nix::unistd::sethostname(h).ctx(|| format!("set hostname {h:?}"))?;
    }
    if p.clone_flags.contains(nix::sched::CloneFlags::CLONE_NEWNET) {
        loopback_up().ctx(|| "bring up the loopback interface".into())?;
    }
    if !p.sysctl.is_empty() {
        // As with runc, sysctls are written after the createRuntime hooks (our `go`): a network
        // wired there has made its interfaces by then, so `net.ipv4.conf.eth0.*` exists. And
        // before /proc/sys turns read-only below. Without sysctls nothing waits here.
        if let Some(go) = go.take() {
            wait_go(go)?;
        }
        for (path, value) in &p.sysctl {
            std::fs::write(path, value).ctx(|| format!("write sysctl {}", path.display()))?;
        }
    }
    let mask_data = p
        .mount_label
        .as_ref()
        .map(|l| format!("context=\"{}\"", l.to_string_lossy()));
    for path in &p.masked {
        mask_path(root.as_raw_fd(), path, mask_data.as_deref())?;
    }
    for path in &p.readonly {
        readonly_path(root.as_raw_fd(), path)?;
    }
    if p.root_readonly {
        let flags = mount_flags_of(root.as_raw_fd()).ctx(|| "stat /".into())?;
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | flags,
            None::<&str>,
        )
        .ctx(|| "make the root filesystem read-only".into())?;
    }
    Ok(root)
}

/// The host's mount of a filesystem that shows a namespace, and that namespace's clone flag
/// (see `mount_one`).
fn host_view_of(fstype: &str) -> Option<(&'static str, nix::sched::CloneFlags)> {
    use nix::sched::CloneFlags as F;
    match fstype {
        "proc" => Some(("/proc", F::CLONE_NEWPID)),
        "sysfs" => Some(("/sys", F::CLONE_NEWNET)),
        "mqueue" => Some(("/dev/mqueue", F::CLONE_NEWIPC)),
        _ => None,
    }
}

/// `tree`: an idmapped clone of a bind mount's source, attached instead of mounting it.
fn mount_one(
    root: RawFd,
    m: &MountPlan,
    tree: Option<&OwnedFd>,
    created: nix::sched::CloneFlags,
) -> Res<()> {
    let dest = &m.destination;
    if m.is_bind() {
        let src = m.source.as_ref().ok_or_else(|| {
            Failure::Setup(format!("bind mount on {} has no source", dest.display()))
        })?;
        let meta = std::fs::metadata(src).ctx(|| format!("bind mount source {}", src.display()))?;
        let kind = if meta.is_dir() { Kind::Dir } else { Kind::File };
        let target = fsutil::ensure_in_root(root, dest, kind)
            .ctx(|| format!("mount point {}", dest.display()))?;
        if let Some(tree) = tree {
            crate::idmap::attach(tree, &target)
                .ctx(|| format!("attach idmapped {} on {}", src.display(), dest.display()))?;
        } else {
            mount(
                Some(src.as_path()),
                fsutil::proc_fd_path(target.as_raw_fd()).as_c_str(),
                None::<&str>,
                MsFlags::MS_BIND | (m.flags & MsFlags::MS_REC),
                None::<&str>,
            )
            .ctx(|| format!("bind mount {} on {}", src.display(), dest.display()))?;
        }
        let extra = m.flags
            & (MsFlags::MS_RDONLY
                | MsFlags::MS_NOSUID
                | MsFlags::MS_NODEV
                | MsFlags::MS_NOEXEC
                | MsFlags::MS_NOATIME
                | MsFlags::MS_NODIRATIME
                | MsFlags::MS_RELATIME
                | MsFlags::MS_STRICTATIME
                | crate::mounts::MS_NOSYMFOLLOW);
        if !extra.is_empty() {
            change_mount(root, dest, MsFlags::MS_BIND | MsFlags::MS_REMOUNT | extra)?;
        }
    } else {
        let target = fsutil::ensure_in_root(root, dest, Kind::Dir)
            .ctx(|| format!("mount point {}", dest.display()))?;
        let fstype = m.fstype.as_deref().unwrap_or("none");
        let source = m
            .source
            .as_ref()
            .map(|s| s.as_os_str().to_owned())
            .unwrap_or_else(|| fstype.into());
        let mounted = mount(
            Some(source.as_os_str()),
            fsutil::proc_fd_path(target.as_raw_fd()).as_c_str(),
            Some(fstype),
            m.flags,
            if m.data.is_empty() {
                None
            } else {
                Some(m.data.as_str())
            },
        );
        // Only for a namespace the container shares rather than made, and only in a user
        // namespace: there the host's view shows nothing the container could not see
        // already, whereas binding it over a refused mount elsewhere would widen its view.
        let host_view = host_view_of(fstype)
            .filter(|(_, ns)| !created.contains(*ns) && hako_base::userns::in_user_namespace())
            .map(|(path, _)| path);
        match (mounted, host_view) {
            (Ok(()), _) => {}
            // A fresh proc, sysfs or mqueue may be mounted only by the owner of the pid,
            // network or IPC namespace it shows: in a user namespace that shares the host's
            // (rootless `--pid host`, `--network host`, `--ipc host`), the host's own mount is
            // bound instead, as runc and crun do; the namespace shown is the host's anyway.
            // Where the host mounts no mqueue there is nothing to show: message queues work
            // through their system calls, the mount only lists them.
            (Err(nix::Error::EPERM), Some(host @ "/dev/mqueue"))
                if !std::path::Path::new(host).is_dir() => {}
            (Err(nix::Error::EPERM), Some(host)) => {
                mount(
                    Some(host),
                    fsutil::proc_fd_path(target.as_raw_fd()).as_c_str(),
                    None::<&str>,
                    MsFlags::MS_BIND | MsFlags::MS_REC,
                    None::<&str>,
                )
                .ctx(|| {
                    format!(
                        "bind the host's {host} on {} (mount {fstype}: EPERM)",
                        dest.display()
                    )
                })?;
                let keep = m.flags
                    & (MsFlags::MS_RDONLY
                        | MsFlags::MS_NOSUID
                        | MsFlags::MS_NODEV
                        | MsFlags::MS_NOEXEC);
                if !keep.is_empty() {
                    change_mount(root, dest, MsFlags::MS_BIND | MsFlags::MS_REMOUNT | keep)?;
                }
            }
            (Err(e), _) => {
                return Err(e).ctx(|| format!("mount {fstype} on {}", dest.display()));
            }
        }
    }
    if !m.propagation.is_empty() {
        change_mount(root, dest, m.propagation)?;
    }
    if !m.recursive.is_empty() {
        set_tree_attrs(root, dest, m.recursive)?;
    }
    Ok(())
}

/// Sets and clears mount attributes on the mount at `dest` and every mount below it.
fn set_tree_attrs(root: RawFd, dest: &Path, attrs: crate::mounts::RecursiveAttrs) -> Res<()> {
    let target = fsutil::open_in_root(root, dest, libc::O_PATH)
        .ctx(|| format!("reopen {}", dest.display()))?;
    let attr = libc::mount_attr {
        attr_set: attrs.set,
        attr_clr: attrs.clear,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: mount_setattr reads `attr` (of the size we pass) and the empty path.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            target.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH | libc::AT_RECURSIVE,
            &attr as *const libc::mount_attr,
            std::mem::size_of::<libc::mount_attr>(),
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error())
            .ctx(|| format!("set the recursive mount options of {}", dest.display()));
    }
    Ok(())
}

/// Changes flags or propagation of the mount at `dest`. The descriptor is opened afresh so it
/// names the mount just made rather than the directory underneath it.
fn change_mount(root: RawFd, dest: &Path, flags: MsFlags) -> Res<()> {
    let target = fsutil::open_in_root(root, dest, libc::O_PATH)
        .ctx(|| format!("reopen {}", dest.display()))?;
    mount(
        None::<&str>,
        fsutil::proc_fd_path(target.as_raw_fd()).as_c_str(),
        None::<&str>,
        flags,
        None::<&str>,
    )
    .ctx(|| format!("change mount flags of {}", dest.display()))
}

fn split_parent(path: &Path) -> Res<(PathBuf, CString)> {
    let name = path
        .file_name()
        .ok_or_else(|| Failure::Setup(format!("invalid path {}", path.display())))?;
    let parent = path.parent().unwrap_or(Path::new("/")).to_path_buf();
    let name = CString::new(name.as_bytes()).map_err(|_| Failure::Setup("NUL in path".into()))?;
    Ok((parent, name))
}

/// In a user namespace mknod is not allowed: bind the host's node instead (as runc does).
fn bind_device(root: RawFd, d: &crate::Device) -> Res<()> {
    let target = fsutil::ensure_in_root(root, &d.path, Kind::File)
        .ctx(|| format!("device {}", d.path.display()))?;
    mount(
        Some(d.path.as_path()),
        fsutil::proc_fd_path(target.as_raw_fd()).as_c_str(),
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .ctx(|| format!("bind device {}", d.path.display()))
}

fn make_device(root: RawFd, d: &crate::Device, userns: bool) -> Res<()> {
    if userns {
        return bind_device(root, d);
    }
    let (parent, name) = split_parent(&d.path)?;
    let dir = fsutil::ensure_in_root(root, &parent, Kind::Dir)
        .ctx(|| format!("directory {}", parent.display()))?;
    let mode = d.kind.bits() | (d.mode & 0o7777);
    // SAFETY: mknodat/fchownat on a directory descriptor we own with a valid C string name.
    let r = unsafe {
        libc::mknodat(
            dir.as_raw_fd(),
            name.as_ptr(),
            mode,
            libc::makedev(d.major as u32, d.minor as u32),
        )
    };
    if r != 0 {
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EEXIST) {
            return Err(err).ctx(|| format!("create device {}", d.path.display()));
        }
    }
    // SAFETY: as above; AT_SYMLINK_NOFOLLOW keeps a planted symlink from redirecting the chown.
    let r = unsafe {
        libc::fchownat(
            dir.as_raw_fd(),
            name.as_ptr(),
            d.uid,
            d.gid,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error())
            .ctx(|| format!("chown device {}", d.path.display()));
    }
    Ok(())
}

fn dev_links(root: RawFd) -> Res<()> {
    let dev = fsutil::open_in_root(root, Path::new("/dev"), libc::O_PATH | libc::O_DIRECTORY)
        .ctx(|| "open /dev".into())?;
    let mut links: Vec<(&CStr, &CStr)> = vec![
        (c"/proc/self/fd", c"fd"),
        (c"/proc/self/fd/0", c"stdin"),
        (c"/proc/self/fd/1", c"stdout"),
        (c"/proc/self/fd/2", c"stderr"),
        (c"pts/ptmx", c"ptmx"),
    ];
    if Path::new("/proc/kcore").exists() {
        links.push((c"/proc/kcore", c"core"));
    }
    for (target, name) in links {
        // SAFETY: symlinkat with valid C strings and a directory descriptor we own.
        let r = unsafe { libc::symlinkat(target.as_ptr(), dev.as_raw_fd(), name.as_ptr()) };
        if r != 0 {
            let err = io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::EEXIST) {
                return Err(err).ctx(|| format!("create /dev/{}", name.to_string_lossy()));
            }
        }
    }
    Ok(())
}

fn loopback_up() -> io::Result<()> {
    // SAFETY: plain socket(2) call; the result is checked and owned below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh socket owned by nobody else.
    let sock = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    // SAFETY: ifreq is plain old data for which all-zero bytes are valid.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    ifr.ifr_name[0] = b'l' as libc::c_char;
    ifr.ifr_name[1] = b'o' as libc::c_char;
    // SAFETY: SIOCGIFFLAGS/SIOCSIFFLAGS read and write the ifreq we own.
    unsafe {
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut ifr) < 0 {
            return Err(io::Error::last_os_error());
        }
        ifr.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &ifr) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Mount flags a bind remount must repeat, read from the mount the descriptor is on.
fn mount_flags_of(fd: RawFd) -> io::Result<MsFlags> {
    use nix::sys::statvfs::FsFlags;
    // SAFETY: the descriptor is valid for the duration of the call.
    let st = nix::sys::statvfs::fstatvfs(unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) })?;
    let f = st.flags();
    let mut out = MsFlags::empty();
    for (s, m) in [
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
        // ST_NOSYMFOLLOW (Linux 5.10), which nix does not name.
        (
            FsFlags::from_bits_retain(0x2000),
            crate::mounts::MS_NOSYMFOLLOW,
        ),
    ] {
        if f.contains(s) {
            out |= m;
        }
    }
    Ok(out)
}

/// Opens `path` in the root, or `None` when it does not exist (nothing to mask or protect).
fn open_existing(root: RawFd, path: &Path, what: &str) -> Res<Option<OwnedFd>> {
    match fsutil::open_in_root(root, path, libc::O_PATH) {
        Ok(fd) => Ok(Some(fd)),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(e) => Err(e).ctx(|| format!("{what} {}", path.display())),
    }
}

/// SELinux labels a mount point whose filesystem takes no `context=` (mqueue), as runc does.
fn label_mount_point(root: RawFd, dest: &Path, label: &CStr) -> Res<()> {
    let target = fsutil::open_in_root(root, dest, libc::O_PATH)
        .ctx(|| format!("reopen {}", dest.display()))?;
    let path = fsutil::proc_fd_path(target.as_raw_fd());
    // SAFETY: setxattr reads the NUL-terminated path and name and `len` bytes of the value.
    let r = unsafe {
        libc::setxattr(
            path.as_ptr(),
            c"security.selinux".as_ptr(),
            label.as_ptr().cast(),
            label.to_bytes().len(),
            0,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error())
            .ctx(|| format!("label {} with linux.mountLabel", dest.display()));
    }
    Ok(())
}

fn mask_path(root: RawFd, path: &Path, tmpfs_data: Option<&str>) -> Res<()> {
    let Some(target) = open_existing(root, path, "masked path")? else {
        return Ok(());
    };
    let st = nix::sys::stat::fstat(&target).ctx(|| format!("stat {}", path.display()))?;
    let tpath = fsutil::proc_fd_path(target.as_raw_fd());
    if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR {
        mount(
            Some("tmpfs"),
            tpath.as_c_str(),
            Some("tmpfs"),
            MsFlags::MS_RDONLY,
            tmpfs_data,
        )
        .ctx(|| format!("mask {}", path.display()))?;
    } else {
        // Only a real /dev/null may be bound over the path (CVE-2025-31133: a swapped
        // /dev/null symlink would otherwise expose what it points at).
        let null = fsutil::open_in_root(root, Path::new("/dev/null"), libc::O_PATH)
            .ctx(|| "open /dev/null".into())?;
        let nst = nix::sys::stat::fstat(&null).ctx(|| "stat /dev/null".into())?;
        if SFlag::from_bits_truncate(nst.st_mode) & SFlag::S_IFMT != SFlag::S_IFCHR
            || nst.st_rdev != libc::makedev(1, 3)
        {
            return Err(Failure::Setup(
                "/dev/null in the container is not the null device".into(),
            ));
        }
        mount(
            Some(fsutil::proc_fd_path(null.as_raw_fd()).as_c_str()),
            tpath.as_c_str(),
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .ctx(|| format!("mask {}", path.display()))?;
    }
    Ok(())
}

fn readonly_path(root: RawFd, path: &Path) -> Res<()> {
    let Some(target) = open_existing(root, path, "read-only path")? else {
        return Ok(());
    };
    let tpath = fsutil::proc_fd_path(target.as_raw_fd());
    mount(
        Some(tpath.as_c_str()),
        tpath.as_c_str(),
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .ctx(|| format!("bind {} read-only", path.display()))?;
    let target = fsutil::open_in_root(root, path, libc::O_PATH)
        .ctx(|| format!("reopen {}", path.display()))?;
    let flags = mount_flags_of(target.as_raw_fd()).ctx(|| format!("stat {}", path.display()))?;
    mount(
        None::<&str>,
        fsutil::proc_fd_path(target.as_raw_fd()).as_c_str(),
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | flags,
        None::<&str>,
    )
    .ctx(|| format!("remount {} read-only", path.display()))?;
    Ok(())
}

fn switch_user(p: &Prepared) -> Res<()> {
    use caps::CapSet;
    if let Some(c) = &p.caps {
        for cap in caps::runtime::thread_all_supported() {
            if !c.bounding.contains(&cap) {
                caps::drop(None, CapSet::Bounding, cap)
                    .map_err(|e| Failure::Setup(format!("drop {cap}: {e}")))?;
            }
        }
    }
    // Keep the permitted set across the uid change so the spec's capabilities can be applied
    // to a non-root user below.
    nix::sys::prctl::set_keepcaps(true).ctx(|| "keep capabilities".into())?;
    let gids: Vec<nix::unistd::Gid> = p
        .additional_gids
        .iter()
        .map(|&g| nix::unistd::Gid::from_raw(g))
        .collect();
    // A namespace that maps only the caller's own ids denies setgroups (the kernel's
    // condition for its gid map); the spec asked for no extra groups (checked beforehand).
    if !p.setgroups_denied {
        match nix::unistd::setgroups(&gids) {
            // A joined user namespace (exec into a rootless container of the user's own
            // ids) denies setgroups too; with no groups asked for, the process keeps the
            // ones it has, which the kernel pins in that namespace anyway (as runc does).
            Err(nix::errno::Errno::EPERM)
                if gids.is_empty()
                    && std::fs::read("/proc/self/setgroups").is_ok_and(|s| s == b"deny\n") => {}
            r => r.ctx(|| "setgroups".into())?,
        }
    }
    let gid = nix::unistd::Gid::from_raw(p.gid);
    nix::unistd::setresgid(gid, gid, gid).ctx(|| format!("setgid {}", p.gid))?;
    let uid = nix::unistd::Uid::from_raw(p.uid);
    nix::unistd::setresuid(uid, uid, uid).ctx(|| format!("setuid {}", p.uid))?;
    nix::sys::prctl::set_keepcaps(false).ctx(|| "reset keepcaps".into())?;
    if let Some(c) = &p.caps {
        // Effective first: capset refuses an effective set larger than the permitted one.
        for (set, value) in [
            (CapSet::Effective, &c.effective),
            (CapSet::Permitted, &c.permitted),
            (CapSet::Inheritable, &c.inheritable),
        ] {
            caps::set(None, set, value)
                .map_err(|e| Failure::Setup(format!("set {set:?} capabilities: {e}")))?;
        }
        for cap in &c.ambient {
            caps::raise(None, CapSet::Ambient, *cap)
                .map_err(|e| Failure::Setup(format!("raise ambient {cap}: {e}")))?;
        }
    }
    Ok(())
}

fn reset_signals() {
    for sig in 1..=libc::SIGRTMAX() {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: restoring the default disposition is always valid; failures (for signals
        // glibc reserves) are harmless and ignored.
        unsafe { libc::signal(sig, libc::SIG_DFL) };
    }
    let empty = nix::sys::signal::SigSet::empty();
    let _ = nix::sys::signal::sigprocmask(
        nix::sys::signal::SigmaskHow::SIG_SETMASK,
        Some(&empty),
        None,
    );
}

/// Go's exec.LookPath rules, which is what Docker users' error messages come from.
fn executable(path: &Path) -> Result<(), io::Error> {
    let meta = std::fs::metadata(path)?;
    if meta.is_dir() {
        return Err(io::Error::from_raw_os_error(libc::EISDIR));
    }
    if meta.permissions().mode() & 0o111 == 0 {
        return Err(io::Error::from_raw_os_error(libc::EACCES));
    }
    let _ = meta.mode();
    Ok(())
}

fn lookup(name: &str, path_env: &str) -> Res<PathBuf> {
    if name.contains('/') {
        return match executable(Path::new(name)) {
            Ok(()) => Ok(PathBuf::from(name)),
            Err(e)
                if e.raw_os_error() == Some(libc::ENOENT)
                    || e.raw_os_error() == Some(libc::ENOTDIR) =>
            {
                Err(Failure::Exec(
                    ExecFailure::NotFound,
                    format!("exec: {name:?}: stat {name}: {}", strip_os_error(&e)),
                ))
            }
            Err(e) => Err(Failure::Exec(
                ExecFailure::CannotExecute,
                format!("exec: {name:?}: {}", strip_os_error(&e)),
            )),
        };
    }
    for dir in path_env.split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let candidate = Path::new(dir).join(name);
        if executable(&candidate).is_ok() {
            return Ok(candidate);
        }
    }
    Err(Failure::Exec(
        ExecFailure::NotFound,
        format!("exec: {name:?}: executable file not found in $PATH"),
    ))
}

fn exec(p: &Prepared) -> Res<Never> {
    let name = p.args[0].to_string_lossy().into_owned();
    let path = lookup(&name, &p.path_env)?;
    let cpath = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| Failure::Setup("NUL in path".into()))?;
    let err = nix::unistd::execve(&cpath, &p.args, &p.env).unwrap_err();
    let e = io::Error::from(err);
    let msg = format!("exec {}: {}", path.display(), strip_os_error(&e));
    Err(match err {
        nix::errno::Errno::ENOENT => Failure::Exec(ExecFailure::NotFound, msg),
        _ => Failure::Exec(ExecFailure::CannotExecute, msg),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_follows_go_rules() {
        let dir = tempfile::tempdir().unwrap();
        let exe = dir.path().join("tool");
        std::fs::write(&exe, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        let plain = dir.path().join("data");
        std::fs::write(&plain, "x").unwrap();
        let path_env = format!("/nonexistent:{}", dir.path().display());
        assert_eq!(lookup("tool", &path_env).ok(), Some(exe.clone()));
        // A non-executable match is skipped, so the result is "not found", as with Docker.
        match lookup("data", &path_env) {
            Err(Failure::Exec(ExecFailure::NotFound, m)) => {
                assert_eq!(m, "exec: \"data\": executable file not found in $PATH")
            }
            _ => panic!("expected not found"),
        }
        match lookup(plain.to_str().unwrap(), &path_env) {
            Err(Failure::Exec(ExecFailure::CannotExecute, m)) => {
                assert!(m.ends_with(": permission denied"), "{m}")
            }
            _ => panic!("expected permission denied"),
        }
        match lookup("/no/such", &path_env) {
            Err(Failure::Exec(ExecFailure::NotFound, m)) => {
                assert_eq!(
                    m,
                    "exec: \"/no/such\": stat /no/such: no such file or directory"
                )
            }
            _ => panic!("expected not found"),
        }
    }

    #[test]
    fn reports_round_trip() {
        let e = decode_report(&[EXEC_CANNOT, b'x']);
        assert_eq!(e.exit_code(), 126);
        let e = decode_report(&[SETUP, b'y']);
        assert_eq!(e.exit_code(), 125);
    }
}
