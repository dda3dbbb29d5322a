//! Detached containers and their monitor.
//!
//! `run -d` forks a process that becomes a child subreaper, spawns the container (so it is the
//! container's parent and can reap it), and then execs the tiny `hako-monitor` binary, which
//! keeps the container as its child across the exec. The monitor writes the container's output
//! to a log in Docker's json-file format, answers the seccomp notifications of syscalls that
//! get ENOSYS ([`crate::missing`]), waits for the exit, writes the status (and those syscalls)
//! to `containers/<id>/exit` and execs `hako-finish`, which records it and cleans up
//! ([`crate::finish`]).
//! No daemon, and one ~1 MiB process per container instead of a full `hako`.

use crate::{
    now_nanos, process_start_time, ContainerConfig, Engine, Error, Prepared, Result, RunMode,
};
use nix::unistd::{fork, ForkResult};
use rusqlite::params;
use std::ffi::CString;
use std::io::Read;
use std::os::fd::{AsFd, IntoRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Name of the json-file log inside the container directory (Docker's naming).
pub fn log_path(dir: &Path, id: &str) -> PathBuf {
    dir.join(format!("{id}-json.log"))
}

fn exit_path(dir: &Path) -> PathBuf {
    dir.join("exit")
}

pub(crate) fn monitor_binary() -> Result<PathBuf> {
    let exe = std::env::current_exe().map_err(|e| Error::io("locate the hako binary", e))?;
    let mon = exe.with_file_name("hako-monitor");
    if !mon.is_file() {
        return Err(Error::Invalid(format!(
            "{} is missing: it must be installed next to hako to run detached containers",
            mon.display()
        )));
    }
    Ok(mon)
}

/// `hako-health`, for a container with a healthcheck: missing, the check would silently
/// never run, so the start fails and says so instead.
pub(crate) fn require_health_binary() -> Result<()> {
    let exe = std::env::current_exe().map_err(|e| Error::io("locate the hako binary", e))?;
    let helper = exe.with_file_name("hako-health");
    if !helper.is_file() {
        return Err(Error::Invalid(format!(
            "{} is missing: it must be installed next to hako to run healthchecks (or pass --no-healthcheck)",
            helper.display()
        )));
    }
    Ok(())
}

fn cstr(p: &Path) -> Result<CString> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| Error::Invalid(format!("NUL in path {}", p.display())))
}

/// Starts the container under a monitor and returns once its command runs.
pub(crate) fn start_detached(
    engine: &Engine,
    id: &str,
    dir: &Path,
    opts: &ContainerConfig,
    mode: RunMode,
    prepared: &Prepared,
    healthcheck: bool,
) -> Result<i32> {
    let monitor = monitor_binary()?;
    let argv: Vec<CString> = vec![
        cstr(&monitor)?,
        CString::new(id).map_err(|_| Error::Invalid("bad id".into()))?,
        cstr(&log_path(dir, id))?,
        cstr(&exit_path(dir))?,
        cstr(engine.root())?,
    ];
    let pipe = || {
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .map_err(|e| Error::io("create a pipe", e.into()))
    };
    let (report_r, report_w) = pipe()?;
    // The container's network is wired from the runtime's start hook, which runs in the forked
    // child; the child sends the container's pid on `wire` and this process attaches it and
    // answers on `wired`. The child must not use SQLite: the unix VFS keeps per-process
    // records of the locks it holds on the database and its shared-memory index, which a
    // forked child inherits (even for a connection it opens itself) while the kernel's locks
    // stay with the parent. Once the parent is gone (kill -9 while it waits here), the next
    // process to open or close the database takes itself for the only one: it resets the
    // index under the child (every command then fails with "locking protocol" for ten
    // seconds) or deletes the WAL the child is writing, whose lease never reaches the
    // database while its veth and port rule stay in the kernel.
    let wiring = match &prepared.net {
        Some(_) => Some((pipe()?, pipe()?)),
        None => None,
    };

    // SAFETY: hako is single-threaded here (the runtime requires it too), so the child may do
    // anything the parent could.
    match unsafe { fork() }.map_err(|e| Error::io("fork the monitor", e.into()))? {
        ForkResult::Child => {
            // See SigpipeBlocked: the runtime's writes to a container process that died in
            // set-up. Left blocked across the exec: the monitor ignores SIGPIPE anyway.
            std::mem::forget(crate::SigpipeBlocked::new());
            drop(report_r);
            // Above the numbers the monitor's descriptors are moved to, so none lands on them.
            let high = |fd| match fd_above(fd, 10) {
                Ok(fd) => fd,
                // SAFETY: _exit skips destructors of state shared with the parent.
                Err(_) => unsafe { libc::_exit(1) },
            };
            let report_w = high(report_w);
            let wire = wiring.map(|((wire_r, wire_w), (wired_r, wired_w))| {
                // The parent's ends, or it would never see us go.
                drop((wire_r, wired_w));
                (high(wire_w), high(wired_r))
            });
            let hook = |pid: i32| match &wire {
                Some((wire_w, wired_r)) => ask_to_wire(wire_w, wired_r, pid),
                None => Ok(()),
            };
            let (msg, pid) = match become_monitor(prepared, opts, dir, &hook) {
                Err(e) => (format!("E{} {}", e.exit_code(), e), None),
                Ok(pid) => (format!("P{pid}"), Some(pid)),
            };
            if pid.is_some() {
                // The log exists before the start is reported, so `start -a` and `attach`,
                // which open it right after, never find it missing (the monitor, which
                // appends to it, opens it only after its exec).
                let _ = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(log_path(dir, id));
            }
            let _ = nix::unistd::write(&report_w, msg.as_bytes());
            if let Some(pid) = pid {
                drop(report_w);
                let mut argv = argv;
                argv.insert(2, CString::new(pid.to_string()).expect("digits"));
                let log = &opts.log_config;
                if log.max_size > 0 {
                    argv.push(CString::new(log.max_size.to_string()).expect("digits"));
                    argv.push(CString::new(log.files().to_string()).expect("digits"));
                }
                // `-i` without `-t`: the monitor holds the container's stdin for `attach`.
                if healthcheck {
                    start_health_helper(&monitor, engine.root(), id);
                }
                let stdin = match (opts.open_stdin && !opts.tty, opts.stdin_once) {
                    (false, _) => None,
                    (true, false) => Some("open"),
                    (true, true) => Some("once"),
                };
                exec_monitor(
                    &argv,
                    mode.attach_on_start && (opts.tty || opts.open_stdin),
                    stdin,
                );
            }
            // SAFETY: _exit skips destructors of state shared with the parent (the database).
            unsafe { libc::_exit(1) }
        }
        ForkResult::Parent { child } => {
            drop(report_w);
            if let Some(((wire_r, wire_w), (wired_r, wired_w))) = wiring {
                // The child's ends, or we would never see it go.
                drop((wire_w, wired_r));
                if let Some(net) = &prepared.net {
                    wire_for_child(engine, net, wire_r, wired_w);
                }
            }
            let mut report = String::new();
            let _ = std::fs::File::from(report_r).read_to_string(&mut report);
            if let Some(pid) = report.strip_prefix('P').and_then(|p| p.parse::<i32>().ok()) {
                // The monitor may already have recorded an exit: only a created row turns running.
                let monitor = child.as_raw();
                engine.store.conn().execute(
                    "UPDATE containers SET state = 'running', pid = ?2, pid_start = ?3, started_at = ?4, owner_pid = ?5, owner_start = ?6 WHERE id = ?1 AND state = 'created'",
                    params![id, pid, process_start_time(pid), now_nanos(), monitor, process_start_time(monitor)],
                )?;
                engine.event(id, "start", &[]);
                if healthcheck {
                    engine.health_reset(id)?;
                }
                return Ok(0);
            }
            let _ = nix::sys::wait::waitpid(child, None);
            let _ = prepared.cgroup.kill_all();
            let _ = prepared.cgroup.remove();
            let _ = crate::netwire::detach(engine.store.conn(), engine.root(), id);
            Err(
                match report.strip_prefix('E').and_then(|r| r.split_once(' ')) {
                    Some(("126", m)) => Error::Runtime(hako_runtime::Error::Exec {
                        kind: hako_runtime::ExecFailure::CannotExecute,
                        message: m.to_string(),
                    }),
                    Some(("127", m)) => Error::Runtime(hako_runtime::Error::Exec {
                        kind: hako_runtime::ExecFailure::NotFound,
                        message: m.to_string(),
                    }),
                    Some((_, m)) => Error::Invalid(m.to_string()),
                    None => Error::Invalid(
                        "the container monitor died while starting the container".into(),
                    ),
                },
            )
        }
    }
}

/// In the forked monitor: detach from the caller, spawn the container with its output on pipes
/// (or, with `tty`, on a pty whose master the monitor keeps for `attach`). With `interactive`
/// and no `tty`, its stdin is a pipe whose write end the monitor keeps for `attach`. The
/// monitor is the container's seccomp agent ([`crate::missing`]): it gets the listener as fd 7.
fn become_monitor(
    prepared: &Prepared,
    opts: &ContainerConfig,
    dir: &Path,
    hook: &dyn Fn(i32) -> std::result::Result<(), String>,
) -> Result<i32> {
    let (tty, interactive) = (opts.tty, opts.open_stdin);
    nix::unistd::setsid().map_err(|e| Error::io("setsid", e.into()))?;
    // Orphans of the container are reparented to us rather than to the host's init, so every
    // process of the container is reaped by its monitor.
    nix::sys::prctl::set_child_subreaper(true)
        .map_err(|e| Error::io("become subreaper", e.into()))?;
    let (out_r, out_w) = nix::unistd::pipe().map_err(|e| Error::io("create a pipe", e.into()))?;
    let (err_r, err_w) = nix::unistd::pipe().map_err(|e| Error::io("create a pipe", e.into()))?;
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map_err(|e| Error::io("open /dev/null", e))?;
    let stdin_pipe = if interactive && !tty {
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .map_err(|e| Error::io("create a pipe", e.into()))?;
        // The runtime passes our stdin on (`Stdin::Inherit`).
        nix::unistd::dup2_stdin(&r).map_err(|e| Error::io("redirect stdin", e.into()))?;
        Some(w)
    } else {
        None
    };
    nix::unistd::dup2_stdout(&out_w).map_err(|e| Error::io("redirect stdout", e.into()))?;
    nix::unistd::dup2_stderr(&err_w).map_err(|e| Error::io("redirect stderr", e.into()))?;
    drop(out_w);
    drop(err_w);
    let mut spec = prepared.spec.clone();
    let console = if tty {
        Some(crate::tty::open(&mut spec)?)
    } else {
        None
    };
    let (agent_ours, agent_theirs) = crate::missing::socket_pair()
        .map_err(|e| Error::io("create the seccomp agent's socket", e))?;
    let (spec, profile_enosys) = crate::missing::agent_spec(&spec, &opts.seccomp);
    crate::missing::save_profile_names(dir, &profile_enosys)
        .map_err(|e| Error::io("record the seccomp profile's ENOSYS rules", e))?;
    let spawned = hako_runtime::spawn(
        &spec,
        &hako_runtime::SpawnOptions {
            overlay: Some(&prepared.overlay),
            cgroup: Some(&prepared.cgroup),
            kill_with_parent: false,
            stdin: if stdin_pipe.is_some() {
                hako_runtime::Stdin::Inherit
            } else {
                hako_runtime::Stdin::Null
            },
            before_start: Some(hook),
            // The network's wiring needs the namespaces, not the cgroup.
            before_start_during_cgroup_join: true,
            console_socket: console.as_ref().map(|c| c.theirs.as_fd()),
            seccomp_cache: Some(&prepared.seccomp_cache),
            hook_state: prepared.hook_state.as_deref(),
            seccomp_agent: Some(agent_theirs.as_fd()),
            ..Default::default()
        },
    );
    drop(agent_theirs);
    // Our own stdio must not keep the log pipes (or the container's stdin) open, nor the
    // caller's terminal.
    let _ = nix::unistd::dup2_stdin(&null);
    let _ = nix::unistd::dup2_stdout(&null);
    let _ = nix::unistd::dup2_stderr(&null);
    let running = spawned?;
    let pid = running.pid();
    // The monitor binary waits for it; dropping `running` here would kill it.
    std::mem::forget(running);
    // Its calls that the filter notifies wait for the monitor, which answers them from its
    // loop; if it dies, the kernel answers them with ENOSYS itself.
    let listener = crate::missing::take_listener(&agent_ours);
    drop(agent_ours);
    let fds = match (console, stdin_pipe) {
        // The monitor tells the two apart by isatty(3).
        (Some(c), _) => {
            drop((out_r, err_r));
            vec![
                c.master()?,
                null.into(),
                crate::tty::attach_listener(&prepared.spec)?,
            ]
        }
        // fds 3 and 4 of the monitor are the read ends of the container's stdout and stderr.
        (None, None) => vec![out_r, err_r],
        (None, Some(stdin)) => vec![
            out_r,
            err_r,
            crate::tty::attach_listener(&prepared.spec)?,
            stdin,
        ],
    };
    let mut fds: Vec<(i32, OwnedFd)> = (3..).zip(fds).collect();
    fds.extend(listener.map(|l| (SECCOMP_LISTENER_FD, l)));
    move_fds(fds)?;
    Ok(pid)
}

/// Where the monitor finds the seccomp listener, if the container has one: past the others
/// (3 to 6), whichever of them it has.
const SECCOMP_LISTENER_FD: i32 = 7;

/// In the forked child's start hook: asks the parent to wire the network of the container
/// whose init is `pid`, and waits for its answer.
fn ask_to_wire(wire: &OwnedFd, wired: &OwnedFd, pid: i32) -> std::result::Result<(), String> {
    nix::unistd::write(wire, format!("{pid}\n").as_bytes())
        .map_err(|e| format!("ask hako to wire the network: {e}"))?;
    let answer = read_line(wired);
    match answer.as_deref() {
        Some("ok") => Ok(()),
        Some(err) => Err(err.to_string()),
        None => Err("hako went away while it wired the network".into()),
    }
}

/// In `run -d`: wires the network for the forked child (see [`start_detached`]) if it asks,
/// on this process's connection. The child closes `wire` without asking when it fails first.
fn wire_for_child(engine: &Engine, net: &crate::netwire::NetWire, wire: OwnedFd, wired: OwnedFd) {
    let Some(pid) = read_line(&wire).and_then(|l| l.parse::<i32>().ok()) else {
        return;
    };
    let answer = match net.attach(engine.store.conn(), pid) {
        Ok(()) => "ok".to_string(),
        // One line: the child reads up to the newline.
        Err(e) => e.replace('\n', " "),
    };
    let _ = nix::unistd::write(&wired, format!("{answer}\n").as_bytes());
}

/// One line from `fd`, without its newline; `None` at end of file before any newline.
fn read_line(fd: &OwnedFd) -> Option<String> {
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    loop {
        match nix::unistd::read(fd, &mut b) {
            Ok(1) if b[0] == b'\n' => return Some(String::from_utf8_lossy(&line).into_owned()),
            Ok(1) => line.push(b[0]),
            Err(nix::errno::Errno::EINTR) => {}
            _ => return None,
        }
    }
}

/// A copy of `fd` numbered `min` or above, close-on-exec; `fd` is closed.
fn fd_above(fd: OwnedFd, min: i32) -> Result<OwnedFd> {
    use std::os::fd::{AsRawFd, FromRawFd};
    // SAFETY: F_DUPFD_CLOEXEC makes a new descriptor, which we then own alone.
    let raw = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, min) };
    if raw < 0 {
        return Err(Error::io(
            "pass a descriptor",
            std::io::Error::last_os_error(),
        ));
    }
    // SAFETY: `raw` is a fresh descriptor nothing else refers to.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// Makes each of `fds` the monitor's descriptor numbered as paired, open across its exec.
/// They are first copied above that range, so moving one never closes another that happened
/// to sit on its target.
fn move_fds(fds: Vec<(i32, OwnedFd)>) -> Result<()> {
    let high: Vec<(i32, OwnedFd)> = fds
        .into_iter()
        .map(|(target, fd)| fd_above(fd, 10).map(|fd| (target, fd)))
        .collect::<Result<_>>()?;
    for (target, fd) in high {
        let raw = fd.into_raw_fd();
        // SAFETY: dup2 onto a fixed number we reserve for the monitor (the copy is not
        // close-on-exec); `raw` is ours and closed after.
        let r = unsafe { libc::dup2(raw, target) };
        // SAFETY: as above.
        unsafe { libc::close(raw) };
        if r < 0 {
            return Err(Error::io(
                "pass a descriptor to the monitor",
                std::io::Error::last_os_error(),
            ));
        }
    }
    Ok(())
}

/// In the forked monitor, before it execs (or in a foreground `run`): starts the container's
/// health helper ([`crate::health`], `hako-health`, installed next to the monitor) as its
/// child, which dies with the monitor's process (the monitor, then `hako-finish`). Nothing
/// here touches the database (see `start_detached`).
pub(crate) fn start_health_helper(monitor: &Path, root: &Path, id: &str) {
    let helper = monitor.with_file_name("hako-health");
    let argv = [
        cstr(&helper),
        cstr(root),
        CString::new(id).map_err(|_| Error::Invalid("bad id".into())),
    ];
    let Ok(argv) = argv.into_iter().collect::<Result<Vec<CString>>>() else {
        return;
    };
    let me = nix::unistd::getpid();
    // SAFETY: the process is single-threaded; the child only calls async-signal-safe
    // functions before it execs or leaves with _exit.
    if let Ok(ForkResult::Child) = unsafe { fork() } {
        let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL);
        if nix::unistd::getppid() != me {
            // SAFETY: leaving the forked child without the parent's destructors.
            unsafe { libc::_exit(0) }
        }
        // SAFETY: plain syscalls on descriptors this process owns: the helper holds none of
        // the monitor's (the container's pipes, pty, attach socket), or an attach would
        // never see them close; its stdio is /dev/null.
        unsafe {
            let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
            for fd in 0..3 {
                libc::dup2(null, fd);
            }
            libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
            let mut empty: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut empty);
            libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
        }
        let _ = nix::unistd::execv(&argv[0], &argv);
        // SAFETY: exec failed; leave without running the parent's destructors.
        unsafe { libc::_exit(127) }
    }
}

fn exec_monitor(argv: &[CString], wait_attach: bool, stdin: Option<&str>) -> ! {
    let mut env: Vec<CString> = Vec::new();
    if wait_attach {
        env.push(c"HAKO_MONITOR_WAIT_ATTACH=1".to_owned());
    }
    if let Some(mode) = stdin {
        env.push(CString::new(format!("HAKO_MONITOR_STDIN={mode}")).expect("no NUL"));
    }
    let _ = nix::unistd::execve(&argv[0], argv, &env);
    // SAFETY: exec failed; leave without running the parent's destructors.
    unsafe { libc::_exit(127) }
}

impl Engine {
    /// Called by the monitor (through `hako-finish`, [`crate::finish`]) once the container has
    /// exited:
    /// records the status from the exit file, frees the cgroup, and honours `--rm`.
    ///
    /// `init` is the pid the monitor supervised: when the container has been started again
    /// since (a restart that raced this call), the new run is left alone.
    pub fn finish_detached(&self, id: &str, init: Option<i32>) -> Result<()> {
        let dir = self.container_dir(id);
        type Row = (bool, Option<String>, String, Option<i32>);
        let row = || -> Option<Row> {
            self.store
                .conn()
                .query_row(
                    "SELECT auto_remove, cgroup_parent, state, pid FROM containers WHERE id = ?1",
                    [id],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                )
                .ok()
        };
        let Some((_, _, mut state, mut pid)) = row() else {
            return Ok(());
        };
        // A container that exits at once can be reaped before the process that started it has
        // recorded its pid (that process reads the monitor's report, then writes the row): wait
        // for that write rather than mistake our own run for a newer one.
        if let (Some(_), None, "created") = (init, pid, state.as_str()) {
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
                let Some((_, _, s, p)) = row() else {
                    return Ok(());
                };
                (state, pid) = (s, p);
                if pid.is_some() || state != "created" {
                    break;
                }
            }
            // The starter died before writing: a newer start removes the exit file before it
            // marks the row created, so a present exit file is this run's.
            if pid.is_none() && state == "created" && read_exit_file(&dir).is_some() {
                pid = init;
                state = "running".into();
            }
        }
        let ours = |state: &str, pid: Option<i32>| {
            let newer_run = match (init, pid) {
                (Some(mine), Some(recorded)) => state == "running" && mine != recorded,
                (Some(_), None) => state == "created",
                _ => false,
            };
            !newer_run && state != "exited"
        };
        if !ours(&state, pid) {
            return Ok(());
        }
        // Decided again, and acted on, under the container's lock, which a start takes to
        // mark the row created: a `restart` whose stop finished this run too and started the
        // next one meanwhile would otherwise have its new run marked exited (while it runs
        // on, unlisted, with its monitor), its cgroup killed and its lease released.
        let Some(lock) = lock_container(&dir)? else {
            return Ok(());
        };
        let Some((auto_remove, parent, state, recorded)) = row() else {
            return Ok(());
        };
        let still = if pid == init && recorded.is_none() && state == "created" {
            // The run we took as ours above, whose starter died before recording it.
            read_exit_file(&dir).is_some()
        } else {
            ours(&state, recorded)
        };
        if !still {
            return Ok(());
        }
        let code = read_exit_file(&dir).unwrap_or(255);
        // Before the row says exited, so whoever waits for that finds them.
        self.record_missing_syscalls(id, &dir)?;
        let cgroups = hako_cgroups::CgroupSystem::detect()?;
        let cg = crate::rootless::open_cgroup(&cgroups, parent.as_deref(), id, &dir);
        let _ = cg.kill_all();
        let _ = cg.remove();
        let _ = crate::netwire::release_exited(self.store.conn(), &self.root, id);
        self.finish(id, &dir, code, auto_remove)?;
        drop(lock);
        self.maybe_restart(id, code)
    }

    /// The syscalls that got ENOSYS, which the monitor wrote into the exit file as their
    /// agent, onto the row (`.State.MissingSyscalls`); a start cleared what was there.
    pub(crate) fn record_missing_syscalls(&self, id: &str, dir: &Path) -> Result<()> {
        let numbers = read_exit_missing(dir);
        if numbers.is_empty() {
            return Ok(());
        }
        let missing = crate::missing::describe(&numbers, &crate::missing::load_profile_names(dir));
        self.store.conn().execute(
            "UPDATE containers SET missing_syscalls = ?2 WHERE id = ?1",
            params![id, serde_json::to_string(&missing).unwrap_or_default()],
        )?;
        Ok(())
    }

    /// Applies the container's `--restart` policy after an exit recorded by its monitor.
    fn maybe_restart(&self, id: &str, code: i32) -> Result<()> {
        let row: Option<(String, u32, bool)> = self
            .store
            .conn()
            .query_row(
                "SELECT config, restart_count, stop_requested FROM containers WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .ok();
        let Some((config, count, stopped)) = row else {
            return Ok(());
        };
        let policy = ContainerConfig::from_stored(&config)?.restart_policy;
        if stopped || !policy.restarts(code, count) {
            return Ok(());
        }
        // Docker's back-off: 100 ms doubling per restart; capped here at 10 s because a
        // daemonless restart holds this short-lived process meanwhile.
        let delay = Duration::from_millis(100u64.saturating_mul(1 << count.min(7)))
            .min(Duration::from_secs(10));
        std::thread::sleep(delay);
        // A `stop` or `rm` during the back-off wins.
        let still: Option<(bool, String)> = self
            .store
            .conn()
            .query_row(
                "SELECT stop_requested, state FROM containers WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .ok();
        if !matches!(still, Some((false, ref state)) if state == "exited") {
            return Ok(());
        }
        self.store.conn().execute(
            "UPDATE containers SET restart_count = restart_count + 1 WHERE id = ?1",
            [id],
        )?;
        self.start_again(id).map(|_| ())
    }

    /// Sends `signal` to the container's main process.
    pub fn kill(&self, key: &str, signal: i32) -> Result<String> {
        let c = self.find(key)?;
        if signal == libc::SIGKILL || signal == libc::SIGTERM {
            // As with `stop`: the user ended it, the restart policy must not bring it back.
            self.store.conn().execute(
                "UPDATE containers SET stop_requested = 1 WHERE id = ?1",
                [&c.id],
            )?;
        }
        let pid = self
            .live_pid(&c.id)?
            .ok_or_else(|| Error::NotRunning(c.id.clone()))?;
        if hako_base::signal::name(signal).is_none() {
            return Err(Error::Invalid(format!("invalid signal: {signal}")));
        }
        send_signal(pid, signal)
            .map_err(|e| Error::io(format!("kill container {}", &c.id[..12]), e))?;
        self.event(&c.id, "kill", &[("signal", signal.to_string())]);
        Ok(c.id)
    }

    /// The host pid of a running container, checked against its recorded start time.
    pub(crate) fn live_pid(&self, id: &str) -> Result<Option<i32>> {
        let (state, pid, start): (String, Option<i32>, Option<i64>) = self.container_row(
            id,
            "SELECT state, pid, pid_start FROM containers WHERE id = ?1",
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        Ok(pid.filter(|_| state == "running" && crate::alive(pid, start)))
    }

    /// The STOPSIGNAL of image `image_id`'s configuration, as written there.
    pub(crate) fn image_stop_signal(&self, image_id: &str) -> Option<String> {
        let blob = std::fs::read(self.images().blob_path(image_id)).ok()?;
        let config: serde_json::Value = serde_json::from_slice(&blob).ok()?;
        config["config"]["StopSignal"].as_str().map(str::to_owned)
    }

    /// The signal `stop` sends first: the container's `--stop-signal`, else its image's
    /// STOPSIGNAL, else SIGTERM (Docker's order). A stored name that no longer reads as a
    /// signal (checked at create) falls back to SIGTERM rather than leaving it unstoppable.
    pub(crate) fn stop_signal_of(&self, id: &str, image_id: &str) -> i32 {
        let own = self.config_of(id).ok().and_then(|c| c.stop_signal);
        own.or_else(|| self.image_stop_signal(image_id))
            .and_then(|s| hako_base::signal::parse(&s))
            .unwrap_or(libc::SIGTERM)
    }

    /// `docker stop`: the stop signal (SIGTERM unless the container or its image names
    /// another), then SIGKILL after `timeout`; returns once it has exited.
    pub fn stop(&self, key: &str, timeout: Duration) -> Result<String> {
        let c = self.find(key)?;
        self.event(&c.id, "stop", &[]);
        // A stopped container is not restarted by its policy.
        self.store.conn().execute(
            "UPDATE containers SET stop_requested = 1 WHERE id = ?1",
            [&c.id],
        )?;
        let Some(pid) = self.live_pid(&c.id)? else {
            return Ok(c.id);
        };
        let target = nix::unistd::Pid::from_raw(pid);
        let start = process_start_time(pid);
        let alive = || crate::alive(Some(pid), start);
        if !timeout.is_zero() {
            let _ = send_signal(pid, self.stop_signal_of(&c.id, &c.image_id));
            let deadline = Instant::now() + timeout;
            while alive() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        if alive() {
            let _ = nix::sys::signal::kill(target, nix::sys::signal::Signal::SIGKILL);
        }
        // The monitor writes the exit file as soon as it has reaped the container; finishing
        // here rather than waiting for its monitor's finish saves a wait.
        // Both paths are idempotent.
        let dir = self.container_dir(&c.id);
        let deadline = Instant::now() + Duration::from_secs(10);
        while read_exit_file(&dir).is_none() && Instant::now() < deadline {
            if self.monitor_gone(&c.id)? {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        if read_exit_file(&dir).is_some() {
            self.finish_detached(&c.id, Some(pid))?;
        } else {
            self.wait_exited(&c.id, Duration::from_secs(10))?;
        }
        Ok(c.id)
    }

    /// Whether the process owning the container (its monitor, or a foreground `hako run`) is gone.
    fn monitor_gone(&self, id: &str) -> Result<bool> {
        let (owner, start): (Option<i32>, Option<i64>) = self.container_row(
            id,
            "SELECT owner_pid, owner_start FROM containers WHERE id = ?1",
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        Ok(!crate::alive(owner, start))
    }

    /// Blocks until the container is recorded as exited (or gone, with `--rm`); returns its code.
    pub fn wait(&self, key: &str) -> Result<i32> {
        self.wait_for(key, crate::wait::WaitCondition::NotRunning)
    }

    fn wait_exited(&self, id: &str, limit: Duration) -> Result<i32> {
        let start = Instant::now();
        loop {
            self.reconcile()?;
            let row: Option<(String, Option<i32>)> = self
                .store
                .conn()
                .query_row(
                    "SELECT state, exit_code FROM containers WHERE id = ?1",
                    [id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .ok();
            match row {
                None => return Ok(read_exit_file(&self.container_dir(id)).unwrap_or(0)),
                Some((state, code)) if state != "running" => return Ok(code.unwrap_or(0)),
                _ => {}
            }
            if start.elapsed() > limit {
                return Err(Error::Invalid(format!(
                    "container {} did not stop",
                    &id[..12]
                )));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The container's log file, if it has one (detached containers).
    pub fn log_file(&self, key: &str) -> Result<(String, PathBuf)> {
        let c = self.find(key)?;
        let p = log_path(&self.container_dir(&c.id), &c.id);
        Ok((c.id, p))
    }

    /// Whether the container is still running, for `logs -f` and `attach`, which follow its
    /// log until it ends: until its exit is recorded, which its monitor does once it has
    /// copied the last output to the log. Its process may have exited (a zombie until the
    /// monitor reaps it) while that output is still on its way. One removed meanwhile is not.
    pub fn is_running(&self, id: &str) -> Result<bool> {
        // Finishes the rows whose process and owner are both dead; a row still marked
        // running after it has a live process or a live monitor that will finish it.
        self.reconcile()?;
        match self.container_row(id, "SELECT state FROM containers WHERE id = ?1", |r| {
            r.get::<_, String>(0)
        }) {
            Ok(state) => Ok(state == "running"),
            Err(Error::NoSuchContainer(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// Takes the lock of the container whose directory is `dir` (`flock` on the directory, which
/// goes with the process), held while a finish decides and cleans up and while a start marks
/// the row created, so that the two never interleave. `None` when the directory is gone (the
/// container was removed).
pub(crate) fn lock_container(dir: &Path) -> Result<Option<std::fs::File>> {
    use std::os::fd::AsRawFd;
    let f = match std::fs::File::open(dir) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(format!("open {}", dir.display()), e)),
    };
    loop {
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } == 0 {
            return Ok(Some(f));
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(Error::io(format!("lock {}", dir.display()), e));
        }
    }
}

/// The status the monitor recorded: "CODE FINISHED_NANOS", then, if the container called
/// syscalls that got ENOSYS, their numbers ("CODE FINISHED_NANOS 1000,434").
pub(crate) fn read_exit_file(dir: &Path) -> Option<i32> {
    let s = std::fs::read_to_string(exit_path(dir)).ok()?;
    s.split_whitespace().next()?.parse().ok()
}

/// The syscall numbers of the exit file (see [`read_exit_file`]), in the order first called.
fn read_exit_missing(dir: &Path) -> Vec<i64> {
    std::fs::read_to_string(exit_path(dir))
        .ok()
        .and_then(|s| {
            let numbers = s.split_whitespace().nth(2)?;
            Some(numbers.split(',').filter_map(|n| n.parse().ok()).collect())
        })
        .unwrap_or_default()
}

/// Sends signal number `signal` to `pid`: any of 1 to 64, the real-time ones too, which nix's
/// `Signal` cannot name (`kill -s RTMIN+3` failed as "invalid signal: 37").
fn send_signal(pid: i32, signal: i32) -> std::io::Result<()> {
    // SAFETY: kill(2) takes two integers and touches no memory of ours.
    if unsafe { libc::kill(pid, signal) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An engine on a fresh root with one container row named `name` in `state`.
    fn engine_with_row(name: &str, state: &str) -> (tempfile::TempDir, Engine, String) {
        let tmp = tempfile::tempdir().unwrap();
        let engine = Engine::open(tmp.path()).unwrap();
        let id = "f".repeat(64);
        engine
            .store
            .conn()
            .execute(
                "INSERT INTO containers (id, name, image, image_id, command, created, state, auto_remove, config)
                 VALUES (?1, ?2, 'busybox', 'x', 'true', 0, ?3, 0, '{}')",
                [&id, name, state],
            )
            .unwrap();
        (tmp, engine, id)
    }

    /// The race the CI hit under a burst of starts: the monitor reaps a short-lived container
    /// before `run -d` has written its pid. The finish must wait for that write, not take the
    /// exit for a newer run's and leave the container "running" with no restart.
    #[test]
    fn finish_waits_for_the_starter_to_record_the_pid() {
        let (tmp, engine, id) = engine_with_row("quick", "created");
        let dir = engine.container_dir(&id);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(exit_path(&dir), "3 0\n").unwrap();
        let root = tmp.path().to_path_buf();
        let starter = {
            let id = id.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(300));
                let late = Engine::open(&root).unwrap();
                late.store
                    .conn()
                    .execute(
                        "UPDATE containers SET state = 'running', pid = 4242 WHERE id = ?1 AND state = 'created'",
                        [&id],
                    )
                    .unwrap();
            })
        };
        engine.finish_detached(&id, Some(4242)).unwrap();
        starter.join().unwrap();
        let (state, code): (String, Option<i32>) = engine
            .store
            .conn()
            .query_row(
                "SELECT state, exit_code FROM containers WHERE id = ?1",
                [&id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!((state.as_str(), code), ("exited", Some(3)));
    }

    /// A command that found the container a moment ago and reads its row again after a `rm`
    /// removed it: the container is gone, not the database broken.
    #[test]
    fn a_row_removed_meanwhile_is_no_such_container() {
        let (_tmp, engine, id) = engine_with_row("racer", "running");
        engine
            .store
            .conn()
            .execute("DELETE FROM containers WHERE id = ?1", [&id])
            .unwrap();
        for r in [
            engine.live_pid(&id).map(|_| ()),
            engine.monitor_gone(&id).map(|_| ()),
            engine
                .container_row(&id, "SELECT config FROM containers WHERE id = ?1", |r| {
                    r.get::<_, String>(0)
                })
                .map(|_| ()),
        ] {
            assert!(
                matches!(r, Err(Error::NoSuchContainer(ref k)) if *k == id),
                "{r:?}"
            );
        }
        assert!(
            !engine.is_running(&id).unwrap(),
            "a removed container does not run"
        );
    }

    /// The syscalls the monitor wrote after the status become the row's record, each with its
    /// reason: the profile's ENOSYS rules saved at start, else the kernel. An exit file
    /// without them (none called, or a monitor from before) records nothing.
    #[test]
    fn the_exit_files_syscalls_are_recorded_with_their_reason() {
        let (_tmp, engine, id) = engine_with_row("agent", "running");
        let dir = engine.container_dir(&id);
        std::fs::create_dir_all(&dir).unwrap();
        let recorded = || -> Option<String> {
            engine
                .store
                .conn()
                .query_row(
                    "SELECT missing_syscalls FROM containers WHERE id = ?1",
                    [&id],
                    |r| r.get(0),
                )
                .unwrap()
        };
        std::fs::write(exit_path(&dir), "0 17\n").unwrap();
        engine.record_missing_syscalls(&id, &dir).unwrap();
        assert_eq!(recorded(), None);
        crate::missing::save_profile_names(&dir, &["pidfd_open".to_string()]).unwrap();
        std::fs::write(exit_path(&dir), "3 17 1000,434\n").unwrap();
        assert_eq!(read_exit_file(&dir), Some(3));
        engine.record_missing_syscalls(&id, &dir).unwrap();
        assert_eq!(
            recorded().unwrap(),
            r#"[{"Number":1000,"Name":null,"Reason":"kernel"},{"Number":434,"Name":"pidfd_open","Reason":"profile"}]"#
        );
    }

    /// A late finish for an old run, when the row already shows a newer run's pid, leaves that
    /// run alone.
    #[test]
    fn finish_leaves_a_newer_start_alone() {
        let (_tmp, engine, id) = engine_with_row("again", "running");
        engine
            .store
            .conn()
            .execute("UPDATE containers SET pid = 777 WHERE id = ?1", [&id])
            .unwrap();
        engine.finish_detached(&id, Some(4242)).unwrap();
        let state: String = engine
            .store
            .conn()
            .query_row("SELECT state FROM containers WHERE id = ?1", [&id], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(state, "running");
    }
}
