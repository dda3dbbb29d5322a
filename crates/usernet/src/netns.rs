//! The per-user network namespace of rootless user-defined networks and its holder process
//! (see the crate's docs, "Rootless user-defined networks").

use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::sys::{self, last_os_error};
use crate::{Error, Result, Stack, StackConfig, Target};

/// The holder's one line on its ready stream.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NetnsReady {
    /// The holder process (stop it with SIGTERM: the namespace and its stack go with it).
    pub holder: i32,
    /// The process whose network namespace is the user's (`/proc/PID/ns/net`): it does
    /// nothing but keep it.
    pub keeper: i32,
    /// The stack's pid.
    pub stack_pid: i32,
}

/// The holder's life (`hako __usernet-netns CONFIG`, in the user's user namespace, in the
/// host's network namespace, single-threaded): detaches itself (its starter's `output()`
/// returns once the ready line is written), forks the keeper of a new network namespace,
/// starts `cfg`'s stack for it (the stack must run in the host's namespace, which only this
/// side of the fork is in), writes one [`NetnsReady`] line to `ready` and waits for the
/// keeper. SIGTERM to the holder ends all three: the stack through its exit fd, the keeper
/// through its parent-death signal; a keeper that dies ends the holder and the stack.
///
/// `record` is the file where the starter records the holder's pid (first word): a holder
/// that is not named there ends too, once it has been, or once its starter is gone or 10 s
/// have passed (a starter killed between starting it and recording it).
pub fn netns_main(cfg: &StackConfig, record: Option<&Path>, ready: &mut dyn Write) -> Result<()> {
    cfg.validate()?;
    reset_signals();
    // SAFETY: getppid has no preconditions.
    let starter = unsafe { libc::getppid() };
    let starter = hako_base::proc::start_time(starter).map(|t| (starter, t));
    detach()?;
    let (errno_r, errno_w) = sys::pipe()?;
    let holder = std::process::id() as i32;
    // SAFETY: this process is single-threaded (a fresh exec), so the child may run any code;
    // it only makes system calls before it waits forever.
    let keeper = unsafe { libc::fork() };
    if keeper < 0 {
        return Err(last_os_error("fork the network namespace's keeper"));
    }
    if keeper == 0 {
        drop(errno_r);
        keeper_main(holder, errno_w);
    }
    drop(errno_w);
    let mut errno = [0u8; 4];
    let got = nix::unistd::read(&errno_r, &mut errno).unwrap_or(0);
    let errno = i32::from_ne_bytes(errno);
    if got != 4 || errno != 0 {
        let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(keeper), None);
        return Err(Error::io(
            "create the user's network namespace",
            std::io::Error::from_raw_os_error(if got == 4 { errno } else { libc::ESRCH }),
        ));
    }
    let pidfd = sys::pidfd_open(keeper).map_err(|e| Error::io("open a pidfd", e))?;
    let stack = Stack::start(&Target::pid(keeper), cfg)?;
    let line = serde_json::to_string(&NetnsReady {
        holder,
        keeper,
        stack_pid: stack.pid(),
    })
    .map_err(|e| Error::io("encode the ready line", e.into()))?;
    writeln!(ready, "{line}")
        .and_then(|()| ready.flush())
        .map_err(|e| Error::io("write the ready line", e))?;
    null_stdio();
    let started = Instant::now();
    let mut seen = false;
    loop {
        if sys::wait_readable(&[pidfd.as_fd()], Some(Duration::from_secs(1)))?.is_some() {
            break;
        }
        let Some(file) = record else {
            continue;
        };
        let me = holder.to_string();
        if std::fs::read_to_string(file)
            .is_ok_and(|t| t.split_whitespace().next() == Some(me.as_str()))
        {
            seen = true;
            continue;
        }
        let starter_gone = starter.is_none_or(|(p, t)| !hako_base::proc::alive(p, t));
        if seen || starter_gone || started.elapsed() > Duration::from_secs(10) {
            break;
        }
    }
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(keeper),
        nix::sys::signal::Signal::SIGKILL,
    );
    let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(keeper), None);
    stack.stop()
}

fn keeper_main(holder: i32, errno_w: OwnedFd) -> ! {
    // SAFETY: in the forked child of a single-threaded process: plain system calls, and
    // `_exit` on every path that does not wait forever.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        // The holder may have died before the signal was armed.
        if libc::getppid() != holder {
            libc::_exit(1);
        }
        let code: i32 = if libc::unshare(libc::CLONE_NEWNET) == 0 {
            0
        } else {
            *libc::__errno_location()
        };
        libc::write(errno_w.as_raw_fd(), code.to_ne_bytes().as_ptr().cast(), 4);
        if code != 0 {
            libc::_exit(1);
        }
        drop(errno_w);
        null_stdio();
        loop {
            libc::pause();
        }
    }
}

/// The starter blocks signals while it creates containers, and a blocked mask survives exec:
/// the holder must see the SIGTERM that stops it.
fn reset_signals() {
    // SAFETY: sigemptyset initialises a set we own; sigprocmask and signal take plain values
    // and change only this single-threaded process's signal state.
    unsafe {
        let mut set = std::mem::zeroed::<libc::sigset_t>();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
        for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGPIPE] {
            libc::signal(sig, libc::SIG_DFL);
        }
    }
}

/// Forks: the parent exits at once (its starter reaps it, and the holder is nobody's child,
/// so no subreaper waits for it), the child starts a session of its own.
fn detach() -> Result<()> {
    // SAFETY: single-threaded; the parent only calls `_exit`.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(last_os_error("fork"));
    }
    if pid > 0 {
        // SAFETY: ends the parent without running exit handlers the child shares.
        unsafe { libc::_exit(0) };
    }
    let _ = nix::unistd::setsid();
    let _ = nix::unistd::chdir("/");
    Ok(())
}

/// Points stdin, stdout and stderr at /dev/null: whoever reads the starter's pipes to the
/// end must not wait for the holder or the keeper.
fn null_stdio() {
    if let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        for fd in 0..3 {
            // SAFETY: dup2 onto the standard descriptors from a file we own.
            unsafe { libc::dup2(null.as_raw_fd(), fd) };
        }
    }
}
