//! Where "the host side" is: the bridges, the nftables table, the sysctls and the name
//! servers. For root that is the calling thread's own network namespace. Rootless hako has no
//! power over the host's namespace; its networks live in one network namespace per user
//! (see `hako_usernet`'s docs), which the engine names once per process with
//! [`set_host_netns`]. Every host-side operation then runs on a short-lived thread that has
//! joined that namespace: sockets (netlink, libnftables') and `/proc/sys/net` files keep the
//! namespace they were made in, and a process started from that thread (`hako-dns`) is born
//! there. A thread, because a rootless process cannot come back to the host's namespace once
//! it has left it (that needs `CAP_SYS_ADMIN` in the initial user namespace).

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::sync::{Mutex, OnceLock};

type Provider = Box<dyn Fn() -> io::Result<File> + Send + Sync>;

static PROVIDER: OnceLock<Provider> = OnceLock::new();
/// The namespace the provider gave, kept for the rest of the process.
static OPENED: Mutex<Option<&'static File>> = Mutex::new(None);

/// Makes the network namespace that `open` returns (called on first need, at most once per
/// process while it succeeds) the host side of every network of this process. For rootless
/// hako, set before any network is touched; a second call is ignored.
pub fn set_host_netns(open: impl Fn() -> io::Result<File> + Send + Sync + 'static) {
    let _ = PROVIDER.set(Box::new(open));
}

/// Whether the host side is a namespace of its own (rootless), rather than the caller's.
pub fn host_netns_set() -> bool {
    PROVIDER.get().is_some()
}

fn netns() -> io::Result<Option<&'static File>> {
    let Some(open) = PROVIDER.get() else {
        return Ok(None);
    };
    let mut opened = OPENED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(f) = *opened {
        return Ok(Some(f));
    }
    let f: &'static File = Box::leak(Box::new(open()?));
    *opened = Some(f);
    Ok(Some(f))
}

/// Runs `f` on the host side: here, or on a thread inside the host network namespace.
pub(crate) fn run<T: Send>(f: impl FnOnce() -> T + Send) -> io::Result<T> {
    match netns()? {
        None => Ok(f()),
        Some(ns) => on_thread_in(ns, f),
    }
}

/// Runs `f` on a new thread that has joined the network namespace `ns` (and ends with it).
pub(crate) fn on_thread_in<T: Send>(ns: &File, f: impl FnOnce() -> T + Send) -> io::Result<T> {
    std::thread::scope(|s| {
        s.spawn(|| {
            // SAFETY: setns(2) on a valid, open namespace fd; it moves only this thread,
            // which ends after `f`.
            if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(f())
        })
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p))
    })
}

/// Whether process `pid` lives in the host-side namespace (a name server started before the
/// rootless namespace was made again does not). Always true for root's host side.
pub(crate) fn holds(pid: i64) -> bool {
    let Ok(Some(ns)) = netns() else {
        return true;
    };
    let theirs = std::fs::metadata(format!("/proc/{pid}/ns/net"));
    match (ns.metadata(), theirs) {
        (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
        _ => false,
    }
}
