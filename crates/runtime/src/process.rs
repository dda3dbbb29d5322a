//! Creating the container process and supervising it until it exits.

use crate::{child, Error, Prepared};
use nix::sys::signal::{kill, SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

/// How the container's main process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// It called exit with this code.
    Exited(i32),
    /// It was killed by this signal number.
    Signaled(i32),
}

impl ExitStatus {
    /// Docker's convention: the exit code, or 128 + the signal number.
    pub fn code(self) -> i32 {
        match self {
            ExitStatus::Exited(c) => c,
            ExitStatus::Signaled(s) => 128 + s,
        }
    }
}

/// Signals `hako run` relays to the container while it waits.
const FORWARDED: [Signal; 7] = [
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
];

fn supervised_set() -> SigSet {
    let mut set = SigSet::empty();
    for s in FORWARDED {
        set.add(s);
    }
    set.add(Signal::SIGCHLD);
    set
}

/// A started container process. Dropping it without waiting kills the container.
#[derive(Debug)]
pub struct Running {
    pid: Pid,
    old_mask: SigSet,
    reaped: bool,
    warnings: Vec<String>,
}

pub(crate) fn launch(
    prepared: Prepared,
    cgroup: Option<&hako_cgroups::Cgroup>,
    before_start: Option<&dyn Fn(i32) -> Result<(), String>>,
) -> Result<Running, Error> {
    let (running, report) = clone_and_start(prepared, cgroup, before_start)?;
    // EOF without a report means the exec succeeded (the pipe is close-on-exec).
    if let Some(report) = report {
        return Err(report.into_error(running));
    }
    Ok(running)
}

pub(crate) fn create(
    prepared: Prepared,
    cgroup: Option<&hako_cgroups::Cgroup>,
    before_start: Option<&dyn Fn(i32) -> Result<(), String>>,
) -> Result<Created, Error> {
    let (running, report) = clone_and_start(prepared, cgroup, before_start)?;
    match report {
        Some(Report(buf)) if buf == [child::READY] => Ok(Created {
            running: Some(running),
        }),
        Some(report) => Err(report.into_error(running)),
        // The child closes the report pipe only after announcing it is ready, so silence means
        // it died (e.g. killed) during setup.
        None => {
            drop(running);
            Err(Error::Setup(
                "the container process exited during setup".into(),
            ))
        }
    }
}

/// What the child wrote on the report pipe before closing it.
struct Report(Vec<u8>);

impl Report {
    fn into_error(self, mut running: Running) -> Error {
        let _ = waitpid(running.pid, None);
        running.reaped = true;
        child::decode_report(&self.0)
    }
}

/// Clones the child, lets it join its cgroup and run `before_start`, and reads its report
/// (`None`: EOF without a word).
fn clone_and_start(
    prepared: Prepared,
    cgroup: Option<&hako_cgroups::Cgroup>,
    before_start: Option<&dyn Fn(i32) -> Result<(), String>>,
) -> Result<(Running, Option<Report>), Error> {
    let (go_r, go_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    let (err_r, err_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    let (mapped_r, mapped_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;

    // Block the signals we supervise before the child exists, so none can be lost between the
    // clone and the wait loop; the child unblocks them before exec.
    let mut old_mask = SigSet::empty();
    nix::sys::signal::sigprocmask(
        SigmaskHow::SIG_BLOCK,
        Some(&supervised_set()),
        Some(&mut old_mask),
    )?;

    let flags = prepared.clone_flags.bits() as libc::c_long | libc::SIGCHLD as libc::c_long;
    let cloned = match &prepared.join_pid {
        Some(target) => clone_in_pid_namespace(target, flags),
        None => raw_clone(flags),
    };
    let ret = match cloned {
        Ok(ret) => ret,
        Err(e) => {
            let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&old_mask), None);
            return Err(e);
        }
    };
    if ret == 0 {
        drop(go_w);
        drop(err_r);
        drop(mapped_w);
        child::run(&prepared, go_r, err_w, mapped_r);
    }
    let pid = Pid::from_raw(ret as i32);
    drop(go_r);
    drop(err_w);
    drop(mapped_r);
    let running = Running {
        pid,
        old_mask,
        reaped: false,
        warnings: prepared.warnings.clone(),
    };

    // The child builds its root filesystem meanwhile and waits for `go` before running
    // anything of the container. If it failed already, its report explains the failure better
    // than the ESRCH or EPIPE we would see here.
    // A child in a new user namespace owns nothing until it has ids; it waits for these.
    let mapped = match &prepared.id_maps {
        Some((uid_map, gid_map)) => {
            crate::rootless::write_maps(&prepared.map_writer, pid.as_raw(), uid_map, gid_map)
                .and_then(|()| {
                    nix::unistd::write(&mapped_w, &[1u8])
                        .map(drop)
                        .map_err(|e| Error::sys("release the container process", e))
                })
        }
        None => Ok(()),
    };
    drop(mapped_w);
    // Before the hooks, which may look for the devices (as runc and crun order it).
    let moved = mapped.and_then(|()| match &prepared.net_devices {
        Some(devices) => devices.move_into(pid.as_raw()),
        None => Ok(()),
    });
    let joined = moved.and_then(|()| {
        join_and_hook(
            cgroup,
            before_start,
            pid.as_raw(),
            prepared.before_start_during_cgroup_join,
        )
    });
    let started = joined.and_then(|()| {
        nix::unistd::write(&go_w, &[1u8])
            .map(|_| ())
            .map_err(|e| Error::sys("start the container process", e))
    });
    if started.is_err() {
        // A child still waiting for `go` exits when it reads EOF instead.
        running.kill();
    }
    drop(go_w);

    let report = read_channel(err_r, pid.as_raw(), "start-up report")?;
    if !report.is_empty() && report != [child::READY] {
        return Ok((running, Some(Report(report))));
    }
    started?;
    Ok((running, (!report.is_empty()).then_some(Report(report))))
}

/// fork(2) by raw clone: the pid of the child in the parent, 0 in the child.
fn raw_clone(flags: libc::c_long) -> Result<i64, Error> {
    sys_clone(flags).map_err(|e| Error::sys("clone the container process", e))
}

fn sys_clone(flags: libc::c_long) -> std::io::Result<i64> {
    // SAFETY: a raw clone without CLONE_VM and with a NULL stack behaves like fork(2): the child
    // gets a copy of our address space. The caller guarantees this process is single-threaded,
    // so no lock (e.g. in malloc) can be held by a thread that does not exist in the child.
    let ret = unsafe { libc::syscall(libc::SYS_clone, flags, 0usize, 0usize, 0usize, 0usize) };
    if ret < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(ret)
}

/// Clones the child into the pid namespace `target` (an exec into a running container), still
/// as our child. setns(CLONE_NEWPID) changes the namespace of the caller's future children
/// only, but for good: a process whose children's pid namespace is not its own cannot start a
/// thread (EINVAL), and switching back needs CAP_SYS_ADMIN over the user namespace that owns
/// its own pid namespace. Root in the initial user namespace has it, and switches back at once;
/// rootless hako never has it (the host's pid namespace is not its user namespace's), and
/// before, its `exec` could start no thread afterwards: `exec -t` (whose relay is a thread)
/// failed. Without that right, a short-lived intermediate process joins the namespace and
/// clones the child with CLONE_PARENT, which makes it our child all the same.
fn clone_in_pid_namespace(target: &OwnedFd, flags: libc::c_long) -> Result<i64, Error> {
    let join = || nix::sched::setns(target, nix::sched::CloneFlags::CLONE_NEWPID);
    if !hako_base::userns::in_user_namespace() && nix::unistd::geteuid().is_root() {
        let own = std::fs::File::open("/proc/self/ns/pid_for_children")
            .map_err(|e| Error::sys("open /proc/self/ns/pid_for_children", e))?;
        join().map_err(|e| Error::sys("join the container's pid namespace", e))?;
        let ret = raw_clone(flags);
        if !matches!(ret, Ok(0)) {
            // Restoring our own namespace cannot fail for lack of rights we just used.
            let _ = nix::sched::setns(&own, nix::sched::CloneFlags::CLONE_NEWPID);
        }
        return ret;
    }
    let (pid_r, pid_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    match raw_clone(libc::SIGCHLD as libc::c_long)? {
        0 => {
            // The intermediate (single-threaded, as we are): it only makes system calls, then
            // leaves without running any of the parent's destructors (`_exit`).
            drop(pid_r);
            let cloned = join()
                .map_err(std::io::Error::from)
                .and_then(|()| sys_clone(flags | libc::CLONE_PARENT as libc::c_long));
            let answer: i64 = match cloned {
                // The container's process: the caller's code goes on in it.
                Ok(0) => return Ok(0),
                Ok(pid) => pid,
                Err(e) => -i64::from(e.raw_os_error().unwrap_or(libc::EINVAL)),
            };
            let _ = nix::unistd::write(&pid_w, &answer.to_ne_bytes());
            // SAFETY: _exit ends the intermediate without touching state shared with the caller.
            unsafe { libc::_exit(0) }
        }
        intermediate => {
            drop(pid_w);
            let mut answer = [0u8; 8];
            let read = std::fs::File::from(pid_r).read_exact(&mut answer);
            let _ = waitpid(Pid::from_raw(intermediate as i32), None);
            read.map_err(|e| Error::sys("clone the container process", e))?;
            match i64::from_ne_bytes(answer) {
                pid if pid > 0 => Ok(pid),
                errno => Err(Error::sys(
                    "clone the container process in its pid namespace",
                    std::io::Error::from_raw_os_error(-errno as i32),
                )),
            }
        }
    }
}

/// Puts the child `pid` into `cgroup` and runs `before_start`: one after the other, or, with
/// `overlap`, the hook here while a helper thread sleeps in the kernel's cgroup migration (see
/// [`crate::SpawnOptions::before_start_during_cgroup_join`]). Either failure fails the start;
/// the caller kills the child, and undoes what the hook made as it does for a failed hook.
fn join_and_hook(
    cgroup: Option<&hako_cgroups::Cgroup>,
    before_start: Option<&dyn Fn(i32) -> Result<(), String>>,
    pid: i32,
    overlap: bool,
) -> Result<(), Error> {
    let hook = |()| match before_start {
        Some(hook) => hook(pid).map_err(Error::Setup),
        None => Ok(()),
    };
    let Some(cg) = cgroup else {
        return hook(());
    };
    if overlap && before_start.is_some() {
        let overlapped = std::thread::scope(|s| {
            // The thread only writes a pid to a few cgroup.procs files: no big stack. It
            // inherits our blocked signals, so the supervised ones still reach only the wait.
            let joiner = std::thread::Builder::new()
                .name("cgroup-join".into())
                .stack_size(64 * 1024)
                .spawn_scoped(s, || cg.add_task(pid))
                .ok()?;
            let hooked = hook(());
            let joined = joiner
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p))
                .map_err(Error::from);
            Some(joined.and(hooked))
        });
        // No thread to be had (EAGAIN): the sequential way below.
        if let Some(r) = overlapped {
            return r;
        }
    }
    cg.add_task(pid).map_err(Error::from).and_then(hook)
}

/// A container whose process has set everything up and waits for [`start`] before exec.
///
/// Dropping it without [`detach`](Self::detach) or [`into_running`](Self::into_running) kills
/// the container, so an error between `create` and recording its state leaves nothing behind.
#[derive(Debug)]
pub struct Created {
    running: Option<Running>,
}

impl Created {
    /// The container process's pid on the host.
    pub fn pid(&self) -> i32 {
        self.running.as_ref().map_or(0, Running::pid)
    }

    /// Non-fatal problems met while creating (e.g. rlimits clamped to the host's hard limit).
    pub fn warnings(&self) -> &[String] {
        self.running.as_ref().map_or(&[], Running::warnings)
    }

    /// Lets the container live on without this handle (and without this process: it is
    /// reparented to the nearest subreaper when the caller exits). Returns its pid.
    pub fn detach(mut self) -> i32 {
        let running = self
            .running
            .take()
            .expect("a Created always holds its process");
        let pid = running.pid;
        let mask = running.old_mask;
        std::mem::forget(running);
        let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&mask), None);
        pid.as_raw()
    }

    /// Keeps supervising the container from this process (its parent), e.g. for a foreground
    /// `run`: call [`start`] and then [`Running::wait`].
    pub fn into_running(mut self) -> Running {
        self.running
            .take()
            .expect("a Created always holds its process")
    }
}

impl Drop for Created {
    fn drop(&mut self) {
        // Running's Drop kills and reaps the child and restores the signal mask.
        self.running.take();
    }
}

/// How often `start` checks that a container it waits for is still alive.
const START_POLL: Duration = Duration::from_millis(50);

/// Lets a container made by [`crate::create`] exec its command: opens its exec FIFO, waits for
/// the process to check in, removes the FIFO (so a second `start` finds none) and returns once
/// the command was exec'd or the reason it could not be.
pub fn start(exec_fifo: &std::path::Path, pid: i32) -> Result<(), Error> {
    use nix::fcntl::OFlag;
    let fd = match nix::fcntl::open(
        exec_fifo,
        OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(nix::errno::Errno::ENOENT) => return Err(Error::NotCreated),
        Err(e) => return Err(Error::sys(format!("open {}", exec_fifo.display()), e)),
    };
    let _ = std::fs::remove_file(exec_fifo);
    // A FIFO reader that never had a writer sees neither data nor a hangup, so poll until the
    // child opens its end, and meanwhile make sure it has not died.
    loop {
        let mut pfd = [nix::poll::PollFd::new(
            std::os::fd::AsFd::as_fd(&fd),
            nix::poll::PollFlags::POLLIN,
        )];
        match nix::poll::poll(
            &mut pfd,
            nix::poll::PollTimeout::from(START_POLL.as_millis() as u16),
        ) {
            Ok(0) | Err(nix::errno::Errno::EINTR) => {
                if !hako_base::proc::exists(pid) {
                    return Err(Error::Setup(
                        "the container process exited before it was started".into(),
                    ));
                }
            }
            Ok(_) => break,
            Err(e) => return Err(Error::sys("wait for the container process", e)),
        }
    }
    nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_SETFL(OFlag::empty()))
        .map_err(|e| Error::sys("make the exec FIFO blocking", e))?;
    let buf = read_channel(fd, pid, "start report")?;
    match buf.split_first() {
        Some((&child::RELEASED, [])) => Ok(()),
        Some((&child::RELEASED, report)) => Err(child::decode_report(report)),
        _ => Err(Error::Setup(
            "the container process exited before it was started".into(),
        )),
    }
}

/// Reads what the child writes on its report pipe or exec FIFO until EOF, and carries out the
/// seccomp listener hand-over it asks for on the way. Returns everything else it wrote.
fn read_channel(fd: OwnedFd, pid: i32, what: &str) -> Result<Vec<u8>, Error> {
    let mut file = std::fs::File::from(fd);
    let err = |e| Error::sys(format!("read the container's {what}"), e);
    let mut out = Vec::new();
    let mut ack: Option<OwnedFd> = None;
    let mut pidfd: Option<OwnedFd> = None;
    loop {
        let mut kind = [0u8; 1];
        if file.read(&mut kind).map_err(err)? == 0 {
            return Ok(out);
        }
        match kind[0] {
            child::SECCOMP_ACK_PIPE => {
                let fd = pidfd_getfd(
                    pidfd_of(&mut pidfd, pid)?,
                    read_i32(&mut file).map_err(err)?,
                )
                .map_err(|e| Error::sys("take the seccomp hand-over pipe", e))?;
                nix::unistd::write(&fd, &[1u8])
                    .map_err(|e| Error::sys("acknowledge the seccomp hand-over", e))?;
                ack = Some(fd);
            }
            child::SECCOMP_LISTENER => {
                let slot = read_i32(&mut file).map_err(err)?;
                let socket = read_i32(&mut file).map_err(err)?;
                let len = read_i32(&mut file).map_err(err)? as u32 as usize;
                let mut payload = vec![0u8; len];
                file.read_exact(&mut payload).map_err(err)?;
                let ack = ack.take().ok_or_else(|| {
                    Error::Setup("the container process skipped the seccomp hand-over pipe".into())
                })?;
                let pidfd = pidfd_of(&mut pidfd, pid)?;
                if hand_over_listener(&file, pidfd, slot, socket, &payload)? {
                    nix::unistd::write(&ack, &[1u8])
                        .map_err(|e| Error::sys("acknowledge the seccomp hand-over", e))?;
                }
            }
            // Single-byte markers; anything else is a failure report running to EOF.
            child::READY | child::RELEASED => out.push(kind[0]),
            k => {
                out.push(k);
                file.read_to_end(&mut out).map_err(err)?;
                return Ok(out);
            }
        }
    }
}

fn read_i32(file: &mut std::fs::File) -> std::io::Result<i32> {
    let mut b = [0u8; 4];
    file.read_exact(&mut b)?;
    Ok(i32::from_ne_bytes(b))
}

fn pidfd_of(slot: &mut Option<OwnedFd>, pid: i32) -> Result<BorrowedFd<'_>, Error> {
    if slot.is_none() {
        // SAFETY: pidfd_open takes a pid and flags; the result is checked and owned below.
        let r = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        if r < 0 {
            return Err(Error::sys(
                "open a pidfd of the container process",
                std::io::Error::last_os_error(),
            ));
        }
        // SAFETY: a fresh descriptor nothing else owns.
        *slot = Some(unsafe { OwnedFd::from_raw_fd(r as i32) });
    }
    Ok(slot.as_ref().expect("set above").as_fd())
}

fn pidfd_getfd(pidfd: BorrowedFd<'_>, fd: i32) -> std::io::Result<OwnedFd> {
    // SAFETY: pidfd_getfd takes a pidfd, a descriptor number of that process and flags; the
    // result is a new descriptor of ours (close-on-exec), checked and owned below.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), fd, 0) };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: as above.
    Ok(unsafe { OwnedFd::from_raw_fd(r as i32) })
}

/// How long to wait between looks for the listener while the child installs its filter: that
/// is one system call, so the first or second look finds it.
const LISTENER_POLL_MS: u16 = 1;

/// Takes the listener from the child once its filter is in and sends it with the state to the
/// agent. Returns false if the child reported a failure instead (left on `channel` to read).
fn hand_over_listener(
    channel: &std::fs::File,
    pidfd: BorrowedFd<'_>,
    slot: i32,
    socket: i32,
    payload: &[u8],
) -> Result<bool, Error> {
    let socket =
        pidfd_getfd(pidfd, socket).map_err(|e| Error::sys("take the seccomp agent's socket", e))?;
    let listener = loop {
        match pidfd_getfd(pidfd, slot) {
            Ok(fd) => break fd,
            Err(e) if e.raw_os_error() == Some(libc::EBADF) => {}
            Err(e) => return Err(Error::sys("take the seccomp listener", e)),
        }
        // Not there yet. A word from the child now means loading failed; silence with a hangup
        // means it died.
        let mut pfd = [nix::poll::PollFd::new(
            channel.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        match nix::poll::poll(&mut pfd, nix::poll::PollTimeout::from(LISTENER_POLL_MS)) {
            Ok(0) | Err(nix::errno::Errno::EINTR) => {}
            Ok(_) => {
                let ev = pfd[0].revents().unwrap_or(nix::poll::PollFlags::empty());
                if ev.contains(nix::poll::PollFlags::POLLIN) {
                    return Ok(false);
                }
                return Err(Error::Setup(
                    "the container process exited while installing its seccomp filter".into(),
                ));
            }
            Err(e) => return Err(Error::sys("wait for the container process", e)),
        }
    };
    // The number was free when the child looked, so this can only be its listener; check anyway
    // rather than hand an agent some other descriptor.
    let link = std::fs::read_link(format!("/proc/self/fd/{}", listener.as_raw_fd()))
        .map_err(|e| Error::sys("inspect the seccomp listener", e))?;
    if link.as_os_str() != "anon_inode:seccomp notify" {
        return Err(Error::Setup(format!(
            "descriptor {slot} of the container process is not its seccomp listener"
        )));
    }
    let payload = std::str::from_utf8(payload)
        .map_err(|_| Error::Setup("the seccomp state is not UTF-8".into()))?;
    crate::seccomp::send_listener(socket.as_fd(), &listener, payload)
        .map_err(|e| Error::sys("send the seccomp listener to linux.seccomp.listenerPath", e))?;
    Ok(true)
}

/// The first stopping signal a [`Running::wait`] of this process relayed since the last
/// [`take_relayed_stop`], 0 for none. The waits run on the caller's thread, one at a time, and
/// the signal is consumed by them, so this is how a caller learns that it was asked to stop.
static RELAYED_STOP: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

/// The stopping signal (INT, TERM, HUP) that a wait relayed to its container, if any, clearing
/// the record: a build step stopped that way was interrupted, not failed.
pub fn take_relayed_stop() -> Option<i32> {
    match RELAYED_STOP.swap(0, std::sync::atomic::Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}

impl Running {
    /// The container process's pid on the host.
    pub fn pid(&self) -> i32 {
        self.pid.as_raw()
    }

    /// Non-fatal problems met while starting (e.g. rlimits clamped to the host's hard limit).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Waits for the container to exit, relaying SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1,
    /// SIGUSR2 and SIGWINCH to it.
    ///
    /// A PID 1 without a handler ignores forwarded signals, so a stopping signal (INT, TERM, HUP)
    /// starts a `stop_timeout` grace period after which the container is killed, and a second
    /// one kills it at once — the way `docker stop` and a double Ctrl-C behave.
    pub fn wait(mut self, stop_timeout: Duration) -> Result<ExitStatus, Error> {
        let set = supervised_set();
        let mut deadline: Option<Instant> = None;
        loop {
            match waitpid(self.pid, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(_, code)) => {
                    self.reaped = true;
                    return Ok(ExitStatus::Exited(code));
                }
                Ok(WaitStatus::Signaled(_, sig, _)) => {
                    self.reaped = true;
                    return Ok(ExitStatus::Signaled(sig as i32));
                }
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(Error::sys("wait for the container", e)),
            }
            let timeout = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if timeout == Some(Duration::ZERO) {
                let _ = kill(self.pid, Signal::SIGKILL);
                deadline = None;
                continue;
            }
            match wait_signal(&set, timeout) {
                Some(Signal::SIGCHLD) | None => {}
                Some(sig) => {
                    let stopping = matches!(sig, Signal::SIGINT | Signal::SIGTERM | Signal::SIGHUP);
                    if stopping {
                        let _ = RELAYED_STOP.compare_exchange(
                            0,
                            sig as i32,
                            std::sync::atomic::Ordering::SeqCst,
                            std::sync::atomic::Ordering::SeqCst,
                        );
                    }
                    if stopping && deadline.is_some() {
                        let _ = kill(self.pid, Signal::SIGKILL);
                    } else {
                        let _ = kill(self.pid, sig);
                        if stopping {
                            deadline = Some(Instant::now() + stop_timeout);
                        }
                    }
                }
            }
        }
    }

    /// Lets the process live on without this handle (it is reparented to the nearest
    /// subreaper when the caller exits). Returns its pid.
    pub fn detach(self) -> i32 {
        let pid = self.pid.as_raw();
        let mask = self.old_mask;
        std::mem::forget(self);
        let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&mask), None);
        pid
    }

    /// Kills the container's main process (and so, as it is PID 1, its whole pid namespace).
    pub fn kill(&self) {
        let _ = kill(self.pid, Signal::SIGKILL);
    }
}

/// sigtimedwait on `set`; `None` on timeout or interruption.
fn wait_signal(set: &SigSet, timeout: Option<Duration>) -> Option<Signal> {
    let ts = timeout.map(|t| libc::timespec {
        tv_sec: t.as_secs() as libc::time_t,
        tv_nsec: t.subsec_nanos() as libc::c_long,
    });
    let ts_ptr = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `set` is a valid sigset, the info pointer may be NULL and `ts_ptr` is NULL or
    // points at a timespec that lives until the call returns.
    let r = unsafe { libc::sigtimedwait(set.as_ref(), std::ptr::null_mut(), ts_ptr) };
    if r < 0 {
        return None;
    }
    Signal::try_from(r).ok()
}

impl Drop for Running {
    fn drop(&mut self) {
        if !self.reaped {
            let _ = kill(self.pid, Signal::SIGKILL);
            let _ = waitpid(self.pid, None);
        }
        // Signals that arrived while we supervised were meant for the container; discard them
        // rather than let them hit this process once unblocked.
        let set = supervised_set();
        while wait_signal(&set, Some(Duration::ZERO)).is_some() {}
        let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&self.old_mask), None);
    }
}

#[cfg(test)]
mod tests {
    use super::join_and_hook;
    use std::cell::Cell;

    /// A real cgroup under the caller's, and a child to put in it.
    fn cgroup_and_child(tag: &str) -> (hako_cgroups::Cgroup, std::process::Child) {
        let system = hako_cgroups::CgroupSystem::detect().expect("cgroups");
        let name = format!("hako-test-join-{tag}-{}", std::process::id());
        let cg = system.create(None, &name).expect("create cgroup");
        let child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("spawn sleep");
        (cg, child)
    }

    fn done(cg: hako_cgroups::Cgroup, mut child: std::process::Child) {
        let _ = child.kill();
        let _ = child.wait();
        cg.remove().expect("remove cgroup");
    }

    #[test]
    fn the_hook_runs_and_the_child_joins_with_or_without_overlap() {
        for overlap in [false, true] {
            let (cg, child) = cgroup_and_child(if overlap { "overlap" } else { "serial" });
            let pid = child.id() as i32;
            let ran = Cell::new(0);
            let hook = |p: i32| {
                assert_eq!(p, pid);
                ran.set(ran.get() + 1);
                Ok(())
            };
            join_and_hook(Some(&cg), Some(&hook), pid, overlap).expect("join and hook");
            assert_eq!(ran.get(), 1, "overlap {overlap}");
            assert_eq!(cg.pids().expect("pids"), vec![pid], "overlap {overlap}");
            done(cg, child);
        }
    }

    #[test]
    fn either_failure_fails_the_start_when_they_overlap() {
        let (cg, child) = cgroup_and_child("hookfails");
        let pid = child.id() as i32;
        let failing = |_: i32| Err("no network today".to_string());
        let e = join_and_hook(Some(&cg), Some(&failing), pid, true).unwrap_err();
        assert!(e.to_string().contains("no network today"), "{e}");
        done(cg, child);

        // A pid that no process has: the join fails, though the hook went well.
        let (cg, child) = cgroup_and_child("joinfails");
        let ok = |_: i32| Ok(());
        assert!(join_and_hook(Some(&cg), Some(&ok), i32::MAX, true).is_err());
        assert!(cg.pids().expect("pids").is_empty());
        done(cg, child);
    }
}
