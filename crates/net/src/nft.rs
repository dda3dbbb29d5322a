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
        (lib.ctx_free)(ctx);
        if rc == 0 {
            Ok(out)
        } else {
            Err(first_error(&err))
        }
    }
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

/// True if `err` (from [`run`]) says the object does not exist.
pub(crate) fn is_missing(err: &str) -> bool {
    err.contains("No such file or directory")
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
}
