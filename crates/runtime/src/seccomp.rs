//! OCI seccomp profiles compiled to a BPF program in the parent, so the child only makes one
//! `seccomp(2)` call right before exec.
//!
//! A profile names the syscalls it knows. A syscall newer than the profile (clone3 against an
//! old Docker profile, say) must answer ENOSYS, not the profile's default EPERM, or glibc will
//! not fall back to the older call. So, like runc, a short stub is put in front of libseccomp's
//! program: on the native architecture, a syscall number above the highest one the profile
//! names returns ENOSYS.

use crate::Error;
use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use oci_spec::runtime::{LinuxSeccomp, LinuxSeccompAction, LinuxSeccompOperator};
use sha2::{Digest, Sha256};
use std::io::{Read, Seek, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::Path;

/// A compiled filter, ready for `seccomp(SECCOMP_SET_MODE_FILTER)`.
#[derive(Debug)]
pub(crate) struct Program {
    pub filter: Vec<libc::sock_filter>,
    pub flags: libc::c_ulong,
    /// Some rule answers SCMP_ACT_NOTIFY: loading returns a listener descriptor, which goes to
    /// the process at `linux.seccomp.listenerPath` (or the caller's own agent).
    pub notify: bool,
    /// Where the stub answering ENOSYS for syscalls newer than the profile returns, if there
    /// is one: [`Program::notify_enosys`] turns that answer into a notification.
    pub enosys_stub: Option<usize>,
}

impl Program {
    /// Sends the syscalls the stub answers with ENOSYS (numbers past every syscall the profile
    /// names: newer than the profile, or than the kernel) to the listener instead, whose agent
    /// records them and answers ENOSYS in turn. Allowed syscalls never reach the stub's return,
    /// so they cost nothing more.
    pub(crate) fn notify_enosys(&mut self) {
        if let Some(i) = self.enosys_stub {
            self.filter[i].k = libc::SECCOMP_RET_USER_NOTIF;
            self.notify = true;
            // SECCOMP_FILTER_FLAG_NEW_LISTENER: seccomp(2) returns the listener descriptor.
            self.flags |= 8;
        }
    }
}

/// The name of syscall `nr` on this architecture, as libseccomp knows it.
pub fn syscall_name(nr: i32) -> Option<String> {
    ScmpSyscall::from(nr)
        .get_name_by_arch(ScmpArch::native())
        .ok()
}

fn invalid(msg: String) -> Error {
    Error::InvalidSpec(format!("linux.seccomp: {msg}"))
}

fn action(
    a: LinuxSeccompAction,
    errno: Option<u32>,
    default_errno: u32,
) -> Result<ScmpAction, Error> {
    Ok(match a {
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            ScmpAction::KillThread
        }
        LinuxSeccompAction::ScmpActKillProcess => ScmpAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => ScmpAction::Trap,
        LinuxSeccompAction::ScmpActErrno => {
            ScmpAction::Errno(errno.unwrap_or(default_errno) as i32)
        }
        LinuxSeccompAction::ScmpActTrace => ScmpAction::Trace(errno.unwrap_or(0) as u16),
        LinuxSeccompAction::ScmpActAllow => ScmpAction::Allow,
        LinuxSeccompAction::ScmpActLog => ScmpAction::Log,
        LinuxSeccompAction::ScmpActNotify => ScmpAction::Notify,
    })
}

fn compare(a: &oci_spec::runtime::LinuxSeccompArg) -> ScmpArgCompare {
    use LinuxSeccompOperator as O;
    let (op, datum) = match a.op() {
        O::ScmpCmpNe => (ScmpCompareOp::NotEqual, a.value()),
        O::ScmpCmpLt => (ScmpCompareOp::Less, a.value()),
        O::ScmpCmpLe => (ScmpCompareOp::LessOrEqual, a.value()),
        O::ScmpCmpEq => (ScmpCompareOp::Equal, a.value()),
        O::ScmpCmpGe => (ScmpCompareOp::GreaterEqual, a.value()),
        O::ScmpCmpGt => (ScmpCompareOp::Greater, a.value()),
        O::ScmpCmpMaskedEq => (
            ScmpCompareOp::MaskedEqual(a.value()),
            a.value_two().unwrap_or(0),
        ),
    };
    ScmpArgCompare::new(a.index() as u32, op, datum)
}

#[cfg(target_arch = "x86_64")]
const NATIVE_AUDIT_ARCH: u32 = 0xC000_003E;
#[cfg(target_arch = "aarch64")]
const NATIVE_AUDIT_ARCH: u32 = 0xC000_00B7;

fn sys(msg: &str, e: libseccomp::error::SeccompError) -> Error {
    invalid(format!("{msg}: {e}"))
}

/// Compiles `profile`.
pub(crate) fn compile(profile: &LinuxSeccomp) -> Result<Program, Error> {
    let default_errno = profile.default_errno_ret().unwrap_or(libc::EPERM as u32);
    if profile.default_action() == LinuxSeccompAction::ScmpActNotify {
        // Every syscall, the ones the runtime still makes included, would wait for a listener
        // that has not got the descriptor yet.
        return Err(invalid("defaultAction must not be SCMP_ACT_NOTIFY".into()));
    }
    let default = action(profile.default_action(), None, default_errno)?;
    let mut notify = false;
    let mut ctx = ScmpFilterContext::new(default).map_err(|e| sys("create filter", e))?;
    for arch in profile.architectures().iter().flatten() {
        let name = serde_json::to_value(arch)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let arch: ScmpArch = name
            .parse()
            .map_err(|_| invalid(format!("unknown architecture {name}")))?;
        ctx.add_arch(arch).map_err(|e| sys("add architecture", e))?;
    }
    let mut max_native: Option<i32> = None;
    for rule in profile.syscalls().iter().flatten() {
        let act = action(rule.action(), rule.errno_ret(), default_errno)?;
        notify |= act == ScmpAction::Notify;
        for name in rule.names() {
            // Names this libseccomp does not know cannot be filtered (runc skips them too);
            // they still count for the ENOSYS stub when the native table knows them.
            if let Ok(nr) = ScmpSyscall::from_name_by_arch(name, ScmpArch::native()) {
                let raw = nr.as_raw_syscall();
                if raw >= 0 {
                    max_native = Some(max_native.map_or(raw, |m| m.max(raw)));
                }
            }
            let Ok(call) = ScmpSyscall::from_name(name) else {
                continue;
            };
            if act == default {
                continue;
            }
            let args = rule.args().clone().unwrap_or_default();
            let mut indexes: Vec<usize> = args.iter().map(|a| a.index()).collect();
            indexes.sort_unstable();
            indexes.dedup();
            if args.is_empty() {
                ctx.add_rule(act, call).map_err(|e| sys(name, e))?;
            } else if indexes.len() == args.len() {
                let cmps: Vec<ScmpArgCompare> = args.iter().map(compare).collect();
                ctx.add_rule_conditional(act, call, &cmps)
                    .map_err(|e| sys(name, e))?;
            } else {
                // Several conditions on one argument cannot be ANDed by libseccomp; runc
                // treats them as alternatives, one rule each.
                for a in &args {
                    ctx.add_rule_conditional(act, call, &[compare(a)])
                        .map_err(|e| sys(name, e))?;
                }
            }
        }
    }

    let mut flags: libc::c_ulong = 0;
    for f in profile.flags().iter().flatten() {
        let name = serde_json::to_value(f)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        flags |= match name.as_str() {
            "SECCOMP_FILTER_FLAG_TSYNC" => 1,
            "SECCOMP_FILTER_FLAG_LOG" => 2,
            "SECCOMP_FILTER_FLAG_SPEC_ALLOW" => 4,
            // Linux 5.19: a notified call waits killably once the agent has received it.
            "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV" => 32,
            other => return Err(invalid(format!("unsupported flag {other}"))),
        };
    }
    if notify {
        // SECCOMP_FILTER_FLAG_NEW_LISTENER: seccomp(2) returns the listener descriptor. Who
        // gets it (listenerPath, or the caller's agent) is the spawn's to check.
        flags |= 8;
    }

    let bpf = export(&ctx)?;
    let mut filter = Vec::with_capacity(bpf.len() / 8 + 5);
    let stub_applies = !matches!(default, ScmpAction::Allow | ScmpAction::Log);
    let mut enosys_stub = None;
    if let Some(max) = max_native.filter(|_| stub_applies) {
        let ld = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
        let jeq = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
        let jgt = (libc::BPF_JMP | libc::BPF_JGT | libc::BPF_K) as u16;
        let ret = (libc::BPF_RET | libc::BPF_K) as u16;
        let ins = |code, jt, jf, k| libc::sock_filter { code, jt, jf, k };
        // seccomp_data: nr at offset 0, arch at offset 4.
        filter.push(ins(ld, 0, 0, 4));
        filter.push(ins(jeq, 0, 3, NATIVE_AUDIT_ARCH));
        filter.push(ins(ld, 0, 0, 0));
        filter.push(ins(jgt, 0, 1, max as u32));
        enosys_stub = Some(filter.len());
        filter.push(ins(
            ret,
            0,
            0,
            libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32,
        ));
    }
    for c in bpf.chunks_exact(8) {
        filter.push(libc::sock_filter {
            code: u16::from_ne_bytes([c[0], c[1]]),
            jt: c[2],
            jf: c[3],
            k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
        });
    }
    Ok(Program {
        filter,
        flags,
        notify,
        enosys_stub,
    })
}

/// [`compile`], through a cache of compiled programs in `dir`.
///
/// libseccomp takes about 20 ms of CPU to build and optimise a Docker-sized profile (some 350
/// syscalls), more than everything else a container start costs; the program depends only on
/// the profile, the libseccomp version and the kernel (whose API level libseccomp consults), so
/// it is compiled once per distinct profile and read back afterwards. The cache is written
/// aside and renamed into place, and a file that does not decode is compiled again, so a crash
/// or a truncated file can only cost time. `dir` must be as trusted as the runtime's own state:
/// whoever can write it can weaken containers' filters.
pub(crate) fn compile_cached(profile: &LinuxSeccomp, dir: Option<&Path>) -> Result<Program, Error> {
    let Some(dir) = dir else {
        return compile(profile);
    };
    let path = dir.join(format!("{}.bpf", cache_key(profile)));
    if let Some(p) = std::fs::read(&path).ok().and_then(|b| decode(&b)) {
        return Ok(p);
    }
    let p = compile(profile)?;
    // Only an optimisation: a read-only or full state dir still runs the container.
    let _ = store(dir, &path, &p);
    Ok(p)
}

const CACHE_MAGIC: &[u8; 8] = b"hkbpf\x002\0";

fn cache_key(profile: &LinuxSeccomp) -> String {
    let mut h = Sha256::new();
    h.update(CACHE_MAGIC);
    if let Ok(v) = libseccomp::ScmpVersion::current() {
        h.update(v.to_string().as_bytes());
    }
    h.update([0]);
    h.update(std::fs::read("/proc/sys/kernel/osrelease").unwrap_or_default());
    h.update([0]);
    h.update(serde_json::to_vec(profile).unwrap_or_default());
    hex::encode(h.finalize())
}

/// The cache file: magic, flags (u64 LE), notify (u64 LE, 0 or 1), the ENOSYS stub's return
/// (u64 LE, `u64::MAX` for none), then the instructions.
fn encode(p: &Program) -> Vec<u8> {
    let mut out = Vec::with_capacity(32 + p.filter.len() * 8);
    out.extend_from_slice(CACHE_MAGIC);
    // c_ulong is u32 on 32-bit targets, where the conversion is not a no-op.
    #[allow(clippy::useless_conversion)]
    out.extend_from_slice(&u64::from(p.flags).to_le_bytes());
    out.extend_from_slice(&u64::from(p.notify).to_le_bytes());
    out.extend_from_slice(&p.enosys_stub.map_or(u64::MAX, |i| i as u64).to_le_bytes());
    for i in &p.filter {
        out.extend_from_slice(&i.code.to_le_bytes());
        out.extend_from_slice(&[i.jt, i.jf]);
        out.extend_from_slice(&i.k.to_le_bytes());
    }
    out
}

fn decode(b: &[u8]) -> Option<Program> {
    let (head, body) = b.split_at_checked(32)?;
    if &head[..8] != CACHE_MAGIC || body.is_empty() || body.len() % 8 != 0 {
        return None;
    }
    let word = |r: &[u8]| u64::from_le_bytes(r.try_into().expect("8 bytes"));
    #[allow(clippy::useless_conversion)]
    let flags = libc::c_ulong::try_from(word(&head[8..16])).ok()?;
    let notify = match word(&head[16..24]) {
        0 => false,
        1 => true,
        _ => return None,
    };
    let enosys_stub = match word(&head[24..32]) {
        u64::MAX => None,
        i => Some(usize::try_from(i).ok()?),
    };
    let filter: Vec<libc::sock_filter> = body
        .chunks_exact(8)
        .map(|c| libc::sock_filter {
            code: u16::from_le_bytes([c[0], c[1]]),
            jt: c[2],
            jf: c[3],
            k: u32::from_le_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect();
    // The kernel's limit (BPF_MAXINSNS); a longer program cannot have come from compile.
    if filter.len() > 4096 || enosys_stub.is_some_and(|i| i >= filter.len()) {
        return None;
    }
    Some(Program {
        filter,
        flags,
        notify,
        enosys_stub,
    })
}

fn store(dir: &Path, path: &Path, p: &Program) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let tmp = dir.join(format!(".{}.tmp", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    let res = f
        .write_all(&encode(p))
        .and_then(|_| f.sync_data())
        .and_then(|_| std::fs::rename(&tmp, path));
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res
}

/// libseccomp 2.5 exports only to a descriptor; a memfd keeps it off the filesystem.
fn export(ctx: &ScmpFilterContext) -> Result<Vec<u8>, Error> {
    // SAFETY: memfd_create with a valid C string; the result is checked and owned below.
    let fd = unsafe { libc::memfd_create(c"hako-seccomp".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(Error::sys("memfd_create", std::io::Error::last_os_error()));
    }
    // SAFETY: a fresh descriptor nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    ctx.export_bpf(&fd).map_err(|e| sys("export", e))?;
    let mut f = std::fs::File::from(fd);
    let mut out = Vec::new();
    f.rewind()
        .and_then(|_| f.read_to_end(&mut out))
        .map_err(|e| Error::sys("read the seccomp program", e))?;
    Ok(out)
}

/// Installs `p` on the calling thread: one system call. Returns the notification listener
/// when the program has SCMP_ACT_NOTIFY rules.
pub(crate) fn load(p: &Program) -> std::io::Result<Option<OwnedFd>> {
    let prog = libc::sock_fprog {
        len: p.filter.len() as u16,
        filter: p.filter.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: `prog` points at `p.filter`, which outlives the call; the kernel copies it.
    let r = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            p.flags,
            &prog as *const libc::sock_fprog,
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    if p.notify {
        // SAFETY: with SECCOMP_FILTER_FLAG_NEW_LISTENER the result is a new descriptor we own.
        return Ok(Some(unsafe { OwnedFd::from_raw_fd(r as i32) }));
    }
    Ok(None)
}

/// Sends the listener to the seccomp agent as the spec says: SCM_RIGHTS with the descriptor,
/// and the container process state (`ociVersion`, `fds`, `pid`, `metadata`, `state`) as JSON.
pub(crate) fn send_listener(
    socket: std::os::fd::BorrowedFd<'_>,
    listener: &OwnedFd,
    payload: &str,
) -> std::io::Result<()> {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags, UnixAddr};
    use std::os::fd::AsRawFd;
    let fds = [listener.as_raw_fd()];
    let iov = [std::io::IoSlice::new(payload.as_bytes())];
    sendmsg::<UnixAddr>(
        socket.as_raw_fd(),
        &iov,
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .map_err(std::io::Error::from)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile() -> LinuxSeccomp {
        serde_json::from_value(serde_json::json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [
                {"names": ["read", "write", "exit_group"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]}
            ]
        }))
        .unwrap()
    }

    fn same(a: &Program, b: &Program) -> bool {
        a.flags == b.flags
            && a.notify == b.notify
            && a.enosys_stub == b.enosys_stub
            && a.filter.len() == b.filter.len()
            && a.filter
                .iter()
                .zip(&b.filter)
                .all(|(x, y)| (x.code, x.jt, x.jf, x.k) == (y.code, y.jt, y.jf, y.k))
    }

    #[test]
    fn cached_program_is_the_compiled_one_and_bad_files_are_recompiled() {
        let dir = tempfile::tempdir().unwrap();
        let fresh = compile(&profile()).unwrap();
        let first = compile_cached(&profile(), Some(dir.path())).unwrap();
        assert!(same(&fresh, &first));
        let files: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect();
        assert_eq!(files.len(), 1, "one program, no temporary file: {files:?}");
        let again = compile_cached(&profile(), Some(dir.path())).unwrap();
        assert!(same(&fresh, &again));

        // A truncated or foreign file is never loaded: it is compiled and replaced.
        std::fs::write(&files[0], b"hkbpf\x002\0short").unwrap();
        let healed = compile_cached(&profile(), Some(dir.path())).unwrap();
        assert!(same(&fresh, &healed));
        assert!(decode(&std::fs::read(&files[0]).unwrap()).is_some());

        // Another profile gets its own entry.
        let mut other = profile();
        other.set_default_errno_ret(Some(38));
        compile_cached(&other, Some(dir.path())).unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    #[test]
    fn every_filter_flag_of_the_spec_is_taken() {
        let mut v = serde_json::to_value(profile()).unwrap();
        v["flags"] = serde_json::json!([
            "SECCOMP_FILTER_FLAG_TSYNC",
            "SECCOMP_FILTER_FLAG_LOG",
            "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
            "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"
        ]);
        let p = compile(&serde_json::from_value(v).unwrap()).unwrap();
        assert_eq!(p.flags, 1 | 2 | 4 | 32);
    }

    #[test]
    fn decode_refuses_what_encode_cannot_make() {
        let p = compile(&profile()).unwrap();
        let bytes = encode(&p);
        assert!(same(&p, &decode(&bytes).unwrap()));
        assert!(decode(&bytes[..bytes.len() - 3]).is_none());
        assert!(decode(&bytes[..32]).is_none());
        let mut bad = bytes.clone();
        bad[0] ^= 1;
        assert!(decode(&bad).is_none());
        let mut bad = bytes.clone();
        bad[16] = 2;
        assert!(decode(&bad).is_none());
        // A stub index past the program.
        let mut bad = bytes;
        bad[24..32].copy_from_slice(&9999u64.to_le_bytes());
        assert!(decode(&bad).is_none());
    }

    #[test]
    fn the_enosys_stub_can_notify_instead() {
        let mut p = compile(&profile()).unwrap();
        let i = p.enosys_stub.expect("an errno default has the stub");
        assert_eq!(p.filter[i].k, libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32);
        assert!(!p.notify);
        p.notify_enosys();
        assert_eq!(p.filter[i].k, libc::SECCOMP_RET_USER_NOTIF);
        assert!(p.notify && p.flags & 8 != 0);
        assert!(same(&p, &decode(&encode(&p)).unwrap()));
        // An allowing default has no stub, and nothing to notify.
        let mut v = serde_json::to_value(profile()).unwrap();
        v["defaultAction"] = "SCMP_ACT_ALLOW".into();
        let mut open = compile(&serde_json::from_value(v).unwrap()).unwrap();
        assert_eq!(open.enosys_stub, None);
        open.notify_enosys();
        assert!(!open.notify);
        assert_eq!(syscall_name(0).as_deref(), Some("read"));
    }
}
