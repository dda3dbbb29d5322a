//! Process attributes of the spec that are one system call each: domainname, personality,
//! I/O priority, scheduler, CPU affinity (`execCPUAffinity`) and the time namespace's clock
//! offsets. Decoded in the parent; the child only makes the calls.

use nix::sched::CloneFlags;
use oci_spec::runtime::{
    IOPriorityClass, LinuxPersonalityDomain, LinuxSchedulerFlag, LinuxSchedulerPolicy, Spec,
};
use std::ffi::CString;
use std::io;

use crate::Error;

/// The kernel's `struct sched_attr` (SCHED_ATTR_SIZE_VER0).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct SchedAttr {
    size: u32,
    policy: u32,
    flags: u64,
    nice: i32,
    priority: u32,
    runtime: u64,
    deadline: u64,
    period: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Attrs {
    pub domainname: Option<CString>,
    pub personality: Option<libc::c_ulong>,
    /// The `ioprio_set` value: class << 13 | level.
    pub io_priority: Option<i32>,
    pub scheduler: Option<SchedAttr>,
    /// CPUs the child runs on from its start (`execCPUAffinity.initial`).
    pub cpus_initial: Option<Vec<usize>>,
    /// CPUs the command runs on (`execCPUAffinity.final`).
    pub cpus_final: Option<Vec<usize>>,
    /// A new time namespace, with these `/proc/self/timens_offsets` lines.
    pub new_timens: Option<String>,
    /// `linux.memoryPolicy`: the `set_mempolicy(2)` mode (with its flags) and node mask.
    pub mempolicy: Option<(libc::c_int, Vec<libc::c_ulong>)>,
}

fn invalid(msg: String) -> Error {
    Error::InvalidSpec(msg)
}

/// A cpu list such as `0-3,7`.
pub(crate) fn parse_cpus(s: &str, what: &str) -> Result<Vec<usize>, Error> {
    let bad = || invalid(format!("{what} {s:?} is not a CPU list such as 0-3,7"));
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let (a, b): (usize, usize) = (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
        if a > b || b >= libc::CPU_SETSIZE as usize {
            return Err(bad());
        }
        out.extend(a..=b);
    }
    Ok(out)
}

impl Attrs {
    pub(crate) fn from_spec(spec: &Spec, new_uts: bool, new_time: bool) -> Result<Self, Error> {
        let mut out = Attrs::default();
        if let Some(d) = spec.domainname().as_deref().filter(|d| !d.is_empty()) {
            if !new_uts {
                return Err(invalid("a domainname needs a new UTS namespace".into()));
            }
            out.domainname = Some(
                CString::new(d).map_err(|_| invalid("domainname contains a NUL byte".into()))?,
            );
        }
        let linux = spec.linux().as_ref();
        if let Some(p) = linux.and_then(|l| l.personality().as_ref()) {
            if let Some(f) = p.flags().as_ref().and_then(|f| f.first()) {
                return Err(invalid(format!(
                    "linux.personality.flags: {f:?} is not supported (no flags are)"
                )));
            }
            out.personality = Some(match p.domain() {
                LinuxPersonalityDomain::PerLinux => 0x0000,
                LinuxPersonalityDomain::PerLinux32 => 0x0008,
            });
        }
        let offsets = linux.and_then(|l| l.time_offsets().as_ref());
        if new_time {
            let mut lines = String::new();
            for (clock, o) in offsets.into_iter().flatten() {
                if clock != "monotonic" && clock != "boottime" {
                    return Err(invalid(format!(
                        "linux.timeOffsets: clock {clock:?} must be monotonic or boottime"
                    )));
                }
                lines.push_str(&format!(
                    "{clock} {} {}\n",
                    o.secs().unwrap_or(0),
                    o.nanosecs().unwrap_or(0)
                ));
            }
            out.new_timens = Some(lines);
        } else if offsets.is_some_and(|o| !o.is_empty()) {
            return Err(invalid(
                "linux.timeOffsets needs a new time namespace".into(),
            ));
        }
        if let Some(p) = linux.and_then(|l| l.memory_policy().as_ref()) {
            out.mempolicy = Some(mempolicy(p)?);
        }
        let Some(process) = spec.process().as_ref() else {
            return Ok(out);
        };
        if let Some(io) = process.io_priority() {
            let class = match io.class() {
                IOPriorityClass::IoprioClassRt => 1,
                IOPriorityClass::IoprioClassBe => 2,
                IOPriorityClass::IoprioClassIdle => 3,
            };
            if !(0..=7).contains(&io.priority()) {
                return Err(invalid(format!(
                    "process.ioPriority.priority {} must be between 0 and 7",
                    io.priority()
                )));
            }
            out.io_priority = Some(class << 13 | io.priority() as i32);
        }
        if let Some(s) = process.scheduler() {
            let policy = match s.policy() {
                LinuxSchedulerPolicy::SchedOther => libc::SCHED_OTHER,
                LinuxSchedulerPolicy::SchedFifo => libc::SCHED_FIFO,
                LinuxSchedulerPolicy::SchedRr => libc::SCHED_RR,
                LinuxSchedulerPolicy::SchedBatch => libc::SCHED_BATCH,
                LinuxSchedulerPolicy::SchedIdle => libc::SCHED_IDLE,
                LinuxSchedulerPolicy::SchedDeadline => 6,
                LinuxSchedulerPolicy::SchedIso => {
                    return Err(invalid(
                        "process.scheduler.policy SCHED_ISO is not implemented by Linux".into(),
                    ))
                }
            };
            let mut flags = 0u64;
            for f in s.flags().iter().flatten() {
                flags |= match f {
                    LinuxSchedulerFlag::SchedResetOnFork => 0x01,
                    LinuxSchedulerFlag::SchedFlagReclaim => 0x02,
                    LinuxSchedulerFlag::SchedFlagDLOverrun => 0x04,
                    LinuxSchedulerFlag::SchedFlagKeepPolicy => 0x08,
                    LinuxSchedulerFlag::SchedFlagKeepParams => 0x10,
                    LinuxSchedulerFlag::SchedFlagUtilClampMin => 0x20,
                    LinuxSchedulerFlag::SchedFlagUtilClampMax => 0x40,
                };
            }
            out.scheduler = Some(SchedAttr {
                size: std::mem::size_of::<SchedAttr>() as u32,
                policy: policy as u32,
                flags,
                nice: s.nice().unwrap_or(0),
                priority: u32::try_from(s.priority().unwrap_or(0)).map_err(|_| {
                    invalid("process.scheduler.priority must not be negative".into())
                })?,
                runtime: s.runtime().unwrap_or(0),
                deadline: s.deadline().unwrap_or(0),
                period: s.period().unwrap_or(0),
            });
        }
        if let Some(a) = process.exec_cpu_affinity() {
            if let Some(s) = a.initial().as_deref() {
                out.cpus_initial = Some(parse_cpus(s, "process.execCPUAffinity.initial")?);
            }
            if let Some(s) = a.cpu_affinity_final().as_deref() {
                out.cpus_final = Some(parse_cpus(s, "process.execCPUAffinity.final")?);
            }
        }
        Ok(out)
    }
}

/// `linux.memoryPolicy` as `set_mempolicy(2)` takes it, with the kernel's checks on which
/// modes need nodes made here, so a bad policy fails the create with a clear message.
fn mempolicy(
    p: &oci_spec::runtime::LinuxMemoryPolicy,
) -> Result<(libc::c_int, Vec<libc::c_ulong>), Error> {
    use oci_spec::runtime::{MemoryPolicyFlagType as F, MemoryPolicyModeType as M};
    let (mode, name) = match p.mode() {
        M::MpolDefault => (0, "MPOL_DEFAULT"),
        M::MpolPreferred => (1, "MPOL_PREFERRED"),
        M::MpolBind => (2, "MPOL_BIND"),
        M::MpolInterleave => (3, "MPOL_INTERLEAVE"),
        M::MpolLocal => (4, "MPOL_LOCAL"),
        M::MpolPreferredMany => (5, "MPOL_PREFERRED_MANY"),
        M::MpolWeightedInterleave => (6, "MPOL_WEIGHTED_INTERLEAVE"),
    };
    let nodes = match p
        .nodes()
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
    {
        Some(n) => parse_cpus(n, "linux.memoryPolicy.nodes")?,
        None => Vec::new(),
    };
    let needs_nodes = matches!(mode, 2 | 3 | 5 | 6);
    if needs_nodes && nodes.is_empty() {
        return Err(invalid(format!("linux.memoryPolicy: {name} needs nodes")));
    }
    if matches!(mode, 0 | 4) && !nodes.is_empty() {
        return Err(invalid(format!(
            "linux.memoryPolicy: {name} takes no nodes"
        )));
    }
    let mut flags = 0;
    for f in p.flags().iter().flatten() {
        flags |= match f {
            F::MpolFNumaBalancing => 1 << 13,
            F::MpolFRelativeNodes => 1 << 14,
            F::MpolFStaticNodes => 1 << 15,
        };
    }
    let bits = libc::c_ulong::BITS as usize;
    let mut mask = vec![0 as libc::c_ulong; nodes.iter().max().map_or(1, |m| m / bits + 1)];
    for n in nodes {
        mask[n / bits] |= 1 << (n % bits);
    }
    Ok((mode | flags, mask))
}

/// An OS error as the runtime's other messages word it: strerror, without "(os error N)".
fn os_error(e: io::Error) -> String {
    crate::child::strip_os_error(&e)
}

fn set_affinity(cpus: &[usize]) -> io::Result<()> {
    // SAFETY: cpu_set_t is plain data; all zeroes is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &c in cpus {
        // SAFETY: parse_cpus keeps every CPU below CPU_SETSIZE.
        unsafe { libc::CPU_SET(c, &mut set) };
    }
    // SAFETY: sched_setaffinity reads the set we pass, of the size we pass.
    if unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// At the child's start: the initial CPU affinity and the new time namespace (whose offsets
/// can only be set before any process is in it, so the child enters it right away).
pub(crate) fn apply_early(a: &Attrs) -> Result<(), String> {
    if let Some(cpus) = &a.cpus_initial {
        set_affinity(cpus).map_err(|e| format!("set the initial CPU affinity: {}", os_error(e)))?;
    }
    if let Some(offsets) = &a.new_timens {
        let timens = CloneFlags::from_bits_retain(libc::CLONE_NEWTIME);
        nix::sched::unshare(timens).map_err(|e| format!("create time namespace: {}", e.desc()))?;
        if !offsets.is_empty() {
            std::fs::write("/proc/self/timens_offsets", offsets)
                .map_err(|e| format!("write /proc/self/timens_offsets: {}", os_error(e)))?;
        }
        // unshare only moves our future children; a single-threaded process may enter it.
        let ns = std::fs::File::open("/proc/self/ns/time_for_children")
            .map_err(|e| format!("open /proc/self/ns/time_for_children: {}", os_error(e)))?;
        nix::sched::setns(ns, timens)
            .map_err(|e| format!("enter the time namespace: {}", e.desc()))?;
    }
    Ok(())
}

/// Once the UTS namespace exists.
pub(crate) fn apply_domainname(a: &Attrs) -> Result<(), String> {
    if let Some(d) = &a.domainname {
        // SAFETY: setdomainname reads len bytes of the string we pass.
        if unsafe { libc::setdomainname(d.as_ptr(), d.as_bytes().len()) } != 0 {
            return Err(format!(
                "set domainname {d:?}: {}",
                os_error(io::Error::last_os_error())
            ));
        }
    }
    Ok(())
}

/// Right before the command: before the seccomp filter (which may forbid these calls) and
/// while the capabilities a real-time policy needs are still there.
pub(crate) fn apply_late(a: &Attrs) -> Result<(), String> {
    if let Some(p) = a.personality {
        // SAFETY: personality takes a plain integer.
        if unsafe { libc::personality(p) } == -1 {
            return Err(format!(
                "set personality: {}",
                os_error(io::Error::last_os_error())
            ));
        }
    }
    if let Some(v) = a.io_priority {
        // SAFETY: ioprio_set(IOPRIO_WHO_PROCESS, 0 = ourselves, value) takes integers only.
        if unsafe { libc::syscall(libc::SYS_ioprio_set, 1, 0, v) } != 0 {
            return Err(format!(
                "set I/O priority: {}",
                os_error(io::Error::last_os_error())
            ));
        }
    }
    if let Some(attr) = &a.scheduler {
        // SAFETY: sched_setattr reads `size` bytes of the struct we pass; flags are 0.
        if unsafe { libc::syscall(libc::SYS_sched_setattr, 0, attr as *const SchedAttr, 0) } != 0 {
            return Err(format!(
                "set the scheduler: {}",
                os_error(io::Error::last_os_error())
            ));
        }
    }
    if let Some(cpus) = &a.cpus_final {
        set_affinity(cpus).map_err(|e| format!("set the CPU affinity: {}", os_error(e)))?;
    }
    if let Some((mode, mask)) = &a.mempolicy {
        // The kernel reads maxnode - 1 bits of the mask.
        let maxnode = mask.len() * libc::c_ulong::BITS as usize + 1;
        // SAFETY: set_mempolicy reads `maxnode - 1` bits of the mask we pass, which has them.
        if unsafe { libc::syscall(libc::SYS_set_mempolicy, *mode, mask.as_ptr(), maxnode) } != 0 {
            return Err(format!(
                "set the memory policy (linux.memoryPolicy): {}",
                os_error(io::Error::last_os_error())
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpus("0-2,5", "x").unwrap(), vec![0, 1, 2, 5]);
        assert_eq!(parse_cpus("3", "x").unwrap(), vec![3]);
        assert!(parse_cpus("2-1", "x").is_err());
        assert!(parse_cpus("a", "x").is_err());
        assert!(parse_cpus("99999", "x").is_err());
    }

    fn spec(v: serde_json::Value) -> Spec {
        let mut base = serde_json::json!({"ociVersion": "1.2.0", "root": {"path": "/"}});
        for (k, val) in v.as_object().unwrap() {
            base[k] = val.clone();
        }
        serde_json::from_value(base).unwrap()
    }

    #[test]
    fn decodes_and_refuses() {
        let s = spec(serde_json::json!({
            "domainname": "example.org",
            "process": {"cwd": "/", "args": ["true"], "user": {"uid": 0, "gid": 0},
                "ioPriority": {"class": "IOPRIO_CLASS_BE", "priority": 5},
                "scheduler": {"policy": "SCHED_BATCH", "nice": 3, "flags": ["SCHED_RESET_ON_FORK"]},
                "execCPUAffinity": {"initial": "0", "final": "0-1"}},
            "linux": {"personality": {"domain": "LINUX32"},
                "timeOffsets": {"boottime": {"secs": 100, "nanosecs": 5}}}
        }));
        let a = Attrs::from_spec(&s, true, true).unwrap();
        assert_eq!(
            a.domainname.as_deref().unwrap().to_str().unwrap(),
            "example.org"
        );
        assert_eq!(a.personality, Some(8));
        assert_eq!(a.io_priority, Some(2 << 13 | 5));
        let sched = a.scheduler.unwrap();
        assert_eq!((sched.policy, sched.nice, sched.flags), (3, 3, 1));
        assert_eq!(a.cpus_initial, Some(vec![0]));
        assert_eq!(a.cpus_final, Some(vec![0, 1]));
        assert_eq!(a.new_timens.as_deref(), Some("boottime 100 5\n"));

        let e = Attrs::from_spec(&s, false, true).unwrap_err();
        assert!(
            e.to_string()
                .contains("domainname needs a new UTS namespace"),
            "{e}"
        );
        let e = Attrs::from_spec(&s, true, false).unwrap_err();
        assert!(
            e.to_string()
                .contains("timeOffsets needs a new time namespace"),
            "{e}"
        );
        let bad = spec(serde_json::json!({
            "process": {"cwd": "/", "args": ["true"], "user": {"uid": 0, "gid": 0},
                "ioPriority": {"class": "IOPRIO_CLASS_RT", "priority": 9}}
        }));
        let e = Attrs::from_spec(&bad, true, false).unwrap_err();
        assert!(e.to_string().contains("ioPriority.priority 9"), "{e}");
    }
}
