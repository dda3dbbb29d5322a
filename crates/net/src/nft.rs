//! Running nftables scripts.
//!
//! Measured on the development VM (Debian 12, nft 1.0.6): one `nft -f -` process costs about
//! 8.5 ms (fork + exec + library start-up), while through libnftables inside our process a whole
//! `-p 8080:80` (host port check, database rows and the nft map element) adds about 0.9 ms to
//! `attach` (release build; printed by the `attach_cost_and_no_threads_left` test). Port
//! publishing sits on the hot path of `hako run`, so we load `libnftables.so.1` (Debian package
//! `libnftables1`, a dependency of `nftables`) with `dlopen` and call it directly. `dlopen`
//! rather than linking keeps the build free of `libnftables-dev` and lets hako fall back to the
//! `nft` binary where the library is missing. libnftables starts no threads, so the process stays
//! fork-safe.
//!
//! Every script runs as one nftables transaction: it applies completely or not at all.
//!
//! Published ports no longer come through here: libnftables fills its cache from the host's
//! whole ruleset before every command, so their map elements go over our own nfnetlink socket
//! (`port_elements` in lib.rs). Table and network changes (rare) still use these scripts.

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

type CtxNew = unsafe extern "C" fn(u32) -> *mut c_void;
type CtxFree = unsafe extern "C" fn(*mut c_void);
type BufferOn = unsafe extern "C" fn(*mut c_void) -> c_int;
type GetBuffer = unsafe extern "C" fn(*mut c_void) -> *const c_char;
type RunCmd = unsafe extern "C" fn(*mut c_void, *const c_char) -> c_int;

/// The libnftables entry points we use.
struct Lib {
    ctx_new: CtxNew,
    ctx_free: CtxFree,
    buffer_output: BufferOn,
    buffer_error: BufferOn,
    get_output: GetBuffer,
    get_error: GetBuffer,
    run_cmd: RunCmd,
}

fn lib() -> Option<&'static Lib> {
    static LIB: OnceLock<Option<Lib>> = OnceLock::new();
    LIB.get_or_init(load).as_ref()
}

fn load() -> Option<Lib> {
    // SAFETY: dlopen/dlsym with NUL-terminated names; the handle is never closed, so the
    // function pointers stay valid for the life of the process. Each symbol is cast to the
    // signature declared in <nftables/libnftables.h>.
    unsafe {
        let h = libc::dlopen(
            c"libnftables.so.1".as_ptr(),
            libc::RTLD_NOW | libc::RTLD_LOCAL,
        );
        if h.is_null() {
            return None;
        }
        let sym = |name: &CStr| {
            let p = libc::dlsym(h, name.as_ptr());
            (!p.is_null()).then_some(p)
        };
        Some(Lib {
            ctx_new: std::mem::transmute::<*mut c_void, CtxNew>(sym(c"nft_ctx_new")?),
            ctx_free: std::mem::transmute::<*mut c_void, CtxFree>(sym(c"nft_ctx_free")?),
            buffer_output: std::mem::transmute::<*mut c_void, BufferOn>(sym(
                c"nft_ctx_buffer_output",
            )?),
            buffer_error: std::mem::transmute::<*mut c_void, BufferOn>(sym(
                c"nft_ctx_buffer_error",
            )?),
            get_output: std::mem::transmute::<*mut c_void, GetBuffer>(sym(
                c"nft_ctx_get_output_buffer",
            )?),
            get_error: std::mem::transmute::<*mut c_void, GetBuffer>(sym(
                c"nft_ctx_get_error_buffer",
            )?),
            run_cmd: std::mem::transmute::<*mut c_void, RunCmd>(sym(c"nft_run_cmd_from_buffer")?),
        })
    }
}

/// Runs `script` as one transaction and returns what nft printed (for `list` commands), or
/// nft's error message.
pub(crate) fn run(script: &str) -> Result<String, String> {
    crate::host::run(|| run_here(script))
        .map_err(|e| format!("entering the network namespace of the networks: {e}"))?
}

fn run_here(script: &str) -> Result<String, String> {
    match lib() {
        Some(lib) => run_lib(lib, script),
        None => run_binary(script),
    }
}

fn run_lib(lib: &Lib, script: &str) -> Result<String, String> {
    let c = CString::new(script).map_err(|_| "nft script contains a NUL byte".to_string())?;
    // SAFETY: the context is created, used and freed here only; the buffers returned by
    // nft_ctx_get_*_buffer are NUL-terminated strings owned by the context, copied before it is
    // freed.
    unsafe {
        let ctx = (lib.ctx_new)(0);
        if ctx.is_null() {
            return Err("libnftables: cannot create a context".into());
        }
        (lib.buffer_output)(ctx);
        (lib.buffer_error)(ctx);
        let rc = (lib.run_cmd)(ctx, c.as_ptr());
        let grab = |p: *const c_char| {
            if p.is_null() {
                String::new()
            } else {
                CStr::from_ptr(p).to_string_lossy().into_owned()
            }
        };
        let out = grab((lib.get_output)(ctx));
        let err = grab((lib.get_error)(ctx));
        // See `last_close_elsewhere`: after a delete, freeing the context (which closes its
        // netlink socket) would wait for an RCU grace period.
        let holder = if rc == 0 && script.contains("delete ") {
            last_close_elsewhere()
        } else {
            None
        };
        (lib.ctx_free)(ctx);
        if let Some(release) = holder {
            release();
        }
        if rc == 0 {
            Ok(out)
        } else {
            Err(first_error(&err))
        }
    }
}

/// Lets a short-lived child own the last reference to our open files while a netfilter socket
/// is closed; returns the call that lets it go.
///
/// Measured with `strace -T` on `hako run --rm -p 18777:80 busybox true` (kernel 6.18): the
/// `close` of a netfilter netlink socket after an `add element` takes 0.04 ms, after a
/// `delete element` 8-13 ms. Releasing such a socket (NETLINK_URELEASE) makes nf_tables flush
/// its pending transaction destroy work, and a deleted element's destruction waits for an RCU
/// grace period. A child process holding the socket too turns our close into a plain
/// reference drop; the slow release happens when that child exits, which nobody waits for.
/// Waiting for a double fork's intermediate process cost several ms of scheduling latency on
/// a busy machine, so the child is not waited for: it is reaped (if done) by the next call,
/// and by init once we exit.
///
/// The child shares our memory (`CLONE_VM`) and gets only a copy of the descriptor table: a
/// `fork` copied the page tables and then cost about 110 copy-on-write faults as the caller
/// went on (`perf stat`, `run --rm -p`), about as much as the rest of the port's teardown.
pub(crate) fn last_close_elsewhere() -> Option<impl FnOnce()> {
    const STACK: usize = 64 * 1024;
    // (pid, stack): a stack is unmapped once its child is reaped, never while it may run.
    static HOLDERS: std::sync::Mutex<Vec<(libc::pid_t, usize)>> = std::sync::Mutex::new(Vec::new());
    let mut holders = HOLDERS.lock().unwrap_or_else(|e| e.into_inner());
    holders.retain(|&(pid, stack)| {
        let mut status = 0;
        // SAFETY: polls one of our own children without blocking.
        let done = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) } == pid;
        if done {
            // SAFETY: the child that ran on this mapping has exited and been reaped.
            unsafe { libc::munmap(stack as *mut c_void, STACK) };
        }
        !done
    });
    let mut fds = [0 as c_int; 2];
    // SAFETY: pipe2 writes two fds into the array we pass.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return None;
    }
    let [rd, wr] = fds;
    let close_both = || {
        // SAFETY: our own pipe ends, not used afterwards.
        unsafe {
            libc::close(rd);
            libc::close(wr);
        }
    };
    // SAFETY: a fresh anonymous mapping; checked for failure below.
    let stack = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            STACK,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
            -1,
            0,
        )
    };
    if stack == libc::MAP_FAILED {
        close_both();
        return None;
    }
    // Both pipe ends travel in the argument's value, so the child reads no memory of ours
    // (two 32-bit descriptors in a 64-bit pointer).
    const _: () = assert!(usize::BITS == 64);
    let arg = ((rd as u32 as usize) << 32 | wr as u32 as usize) as *mut c_void;
    // SAFETY: the child runs `hold` on its own stack (the top of the mapping above), which we
    // unmap only after reaping it, and touches no other memory. See `hold` for its calls.
    let pid = unsafe {
        libc::clone(
            hold,
            (stack as *mut u8).add(STACK).cast(),
            libc::CLONE_VM | libc::SIGCHLD,
            arg,
        )
    };
    if pid < 0 {
        // SAFETY: no child uses the mapping.
        unsafe { libc::munmap(stack, STACK) };
        close_both();
        return None;
    }
    // SAFETY: closing our copy of the read end, which we never use.
    unsafe { libc::close(rd) };
    holders.push((pid, stack as usize));
    Some(move || {
        // SAFETY: our own write end; closing it releases the child.
        unsafe { libc::close(wr) };
    })
}

/// The holder child of [`last_close_elsewhere`]: waits for EOF on the pipe and exits, dropping
/// its copies of the parent's descriptors (the socket among them).
extern "C" fn hold(arg: *mut c_void) -> c_int {
    let (rd, wr) = ((arg as usize >> 32) as c_int, arg as usize as u32 as c_int);
    // SAFETY: raw system calls on plain values and buffers of this stack: sharing the parent's
    // memory, the child must not take libc's locks. `syscall` writes errno (the parent's, as
    // the thread pointer is shared) only on failure; with all signals blocked, only opening
    // /dev/null could fail, and a failure there leaves the descriptors as they are.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_SETMASK,
            &all as *const libc::sigset_t,
            std::ptr::null_mut::<libc::sigset_t>(),
            8usize,
        );
        libc::syscall(libc::SYS_close, wr);
        // Do not keep the caller's stdout and stderr open: whoever reads them to EOF (a
        // shell's command substitution, a test) must not wait for us.
        let null = libc::syscall(
            libc::SYS_openat,
            libc::AT_FDCWD,
            c"/dev/null".as_ptr(),
            libc::O_RDWR | libc::O_CLOEXEC,
        );
        if null >= 0 {
            for fd in 0..3 {
                if fd != null {
                    libc::syscall(libc::SYS_dup3, null, fd, 0);
                }
            }
        }
        let mut b = 0u8;
        // EOF once the parent has closed its write end (after its socket).
        while libc::syscall(
            libc::SYS_read,
            rd,
            (&mut b as *mut u8).cast::<c_void>(),
            1usize,
        ) > 0
        {}
        libc::syscall(libc::SYS_exit, 0);
    }
    0
}

fn run_binary(script: &str) -> Result<String, String> {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run nft (is the nftables package installed?): {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(script.as_bytes())
            .map_err(|e| format!("writing to nft: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("waiting for nft: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(first_error(&String::from_utf8_lossy(&out.stderr)))
    }
}

/// nft repeats the offending line and a caret marker after the message; keep the message lines.
fn first_error(err: &str) -> String {
    let msgs: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("Error:"))
        .map(str::trim)
        .collect();
    if msgs.is_empty() {
        err.trim().to_string()
    } else {
        msgs.join("; ")
    }
}

/// True if `err` (from [`run`]) says the object already exists.
pub(crate) fn is_exists(err: &str) -> bool {
    err.contains("File exists")
}

/// True if `err` (from [`run`]) says the object does not exist: the kernel's ENOENT, or, for an
/// element of an interval set (which nft looks up in its own cache before it sends anything),
/// nft's own message.
pub(crate) fn is_missing(err: &str) -> bool {
    err.contains("No such file or directory") || err.contains("element does not exist")
}

#[cfg(test)]
mod tests {
    #[test]
    fn error_lines_are_kept() {
        let e = "/dev/stdin:1:19-19: Error: Could not process rule: File exists\ncreate table inet T\n                  ^\n";
        assert_eq!(
            super::first_error(e),
            "/dev/stdin:1:19-19: Error: Could not process rule: File exists"
        );
        assert!(super::is_exists(e));
    }

    /// Both ways nft 1.0.6 reports a missing element (the interval one was seen as a failing
    /// `network rm` of a network whose removal a `kill -9` had interrupted).
    #[test]
    fn missing_elements_are_recognised() {
        let kernel =
            "/dev/stdin:1:39-41: Error: Could not process rule: No such file or directory\n\
                      delete element inet t bridges { \"x\" }\n";
        let interval = "/dev/stdin:2:36-46: Error: element does not exist\n\
                        delete element inet t nets { 10.9.0.0/24 }\n";
        for e in [kernel, interval] {
            assert!(super::is_missing(&super::first_error(e)), "{e}");
        }
        assert!(!super::is_missing(
            "Error: Could not process rule: File exists"
        ));
    }

    /// The holder keeps a copy of every descriptor until released, then lets go.
    #[test]
    fn holder_keeps_descriptors_until_released() {
        let (rd, wr) = std::io::pipe().unwrap();
        let release = super::last_close_elsewhere().expect("a holder child");
        drop(wr);
        let mut p = libc::pollfd {
            fd: std::os::fd::AsRawFd::as_raw_fd(&rd),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: polls one pollfd of ours.
        let n = unsafe { libc::poll(&mut p, 1, 100) };
        assert_eq!(n, 0, "the write end is still open in the holder");
        release();
        // SAFETY: as above; the holder exits, so the pipe hangs up.
        let n = unsafe { libc::poll(&mut p, 1, 10_000) };
        assert_eq!(n, 1, "the holder let go of the write end");
        assert_ne!(p.revents & libc::POLLHUP, 0);
    }
}
