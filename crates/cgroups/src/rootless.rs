//! Cgroups for an ordinary user: which driver applies, and what becomes of limits it cannot
//! apply.
//!
//! An ordinary user can only manage cgroups the administrator (usually systemd, with
//! `Delegate=yes`) handed over: on cgroup v2, a subtree whose directory and interface files it
//! owns. cgroup v1 hierarchies are never delegated that way, so there a rootless container
//! gets no cgroup at all, and every limit it asked for is reported back as dropped — never
//! silently ignored.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::{parse::Kind, CgroupSystem, Mode, Resources};

/// How an ordinary user's containers get their cgroups.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Driver {
    /// cgroup v2 with the caller's own cgroup delegated to it: containers nest under that
    /// cgroup and limits apply as for root, for the controllers listed.
    Delegated {
        /// The caller's cgroup directory, under which containers are created.
        dir: PathBuf,
        /// Controllers the subtree offers (`cgroup.controllers` of `dir`).
        controllers: Vec<String>,
    },
    /// No cgroup is created; each requested limit is dropped with a warning.
    None(NoneReason),
}

/// Why rootless containers get no cgroup here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NoneReason {
    /// The host's controllers live in cgroup v1 hierarchies (v1 or hybrid).
    V1,
    /// cgroup v2, but the caller's cgroup is not delegated to it; says what is missing.
    NotDelegated(String),
}

impl std::fmt::Display for NoneReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NoneReason::V1 => f.write_str("cgroup v1 cannot be delegated to an ordinary user"),
            NoneReason::NotDelegated(why) => write!(f, "cgroup v2 subtree not delegated: {why}"),
        }
    }
}

impl std::fmt::Display for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Driver::Delegated { dir, controllers } => write!(
                f,
                "cgroupfs (v2, delegated {}: {})",
                dir.display(),
                controllers.join(" ")
            ),
            Driver::None(reason) => write!(f, "none ({reason})"),
        }
    }
}

/// A limit that was asked for and not applied, with the reason: what the engine shows the
/// user and records in the container's inspect data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DroppedLimit {
    /// The limit, as Docker users know it, e.g. `memory limit`, `cpu shares`, `pids limit`.
    pub limit: &'static str,
    /// Why it was not applied.
    pub reason: String,
}

impl std::fmt::Display for DroppedLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} not applied: {}; the container runs without it",
            self.limit, self.reason
        )
    }
}

/// Each limit Docker users know: its name, the cgroup v2 controller it needs (`None`: a v1-only
/// setting that cgroup v2 does not have; `Some("")`: raw files, whichever controller they name),
/// whether `res` asks for it, and how to take it out of `res`.
type Limit = (
    &'static str,
    Option<&'static str>,
    fn(&Resources) -> bool,
    fn(&mut Resources),
);

const LIMITS: &[Limit] = &[
    (
        "memory limit",
        Some("memory"),
        |r| r.memory_limit.is_some(),
        |r| r.memory_limit = None,
    ),
    (
        "memory+swap limit",
        Some("memory"),
        |r| r.memory_swap.is_some(),
        |r| r.memory_swap = None,
    ),
    (
        "memory reservation",
        Some("memory"),
        |r| r.memory_reservation.is_some(),
        |r| r.memory_reservation = None,
    ),
    (
        "memory swappiness",
        None,
        |r| r.memory_swappiness.is_some(),
        |r| r.memory_swappiness = None,
    ),
    (
        "oom-kill disable",
        None,
        |r| r.disable_oom_killer,
        |r| r.disable_oom_killer = false,
    ),
    (
        "cpu shares",
        Some("cpu"),
        |r| r.cpu_shares.is_some(),
        |r| r.cpu_shares = None,
    ),
    (
        "cpu quota",
        Some("cpu"),
        |r| r.cpu_quota.is_some() || r.cpu_period.is_some(),
        |r| {
            r.cpu_quota = None;
            r.cpu_period = None;
        },
    ),
    (
        "cpu realtime budget",
        None,
        |r| r.cpu_rt_runtime.is_some() || r.cpu_rt_period.is_some(),
        |r| {
            r.cpu_rt_runtime = None;
            r.cpu_rt_period = None;
        },
    ),
    (
        "cpu idle",
        Some("cpu"),
        |r| r.cpu_idle.is_some(),
        |r| r.cpu_idle = None,
    ),
    (
        "cpuset",
        Some("cpuset"),
        |r| r.cpuset_cpus.is_some() || r.cpuset_mems.is_some(),
        |r| {
            r.cpuset_cpus = None;
            r.cpuset_mems = None;
        },
    ),
    (
        "pids limit",
        Some("pids"),
        |r| r.pids_limit.is_some(),
        |r| r.pids_limit = None,
    ),
    (
        "blkio weight",
        Some("io"),
        |r| {
            r.blkio_weight.is_some()
                || r.blkio_leaf_weight.is_some()
                || !r.blkio_weight_devices.is_empty()
        },
        |r| {
            r.blkio_weight = None;
            r.blkio_leaf_weight = None;
            r.blkio_weight_devices.clear();
        },
    ),
    (
        "blkio throttle",
        Some("io"),
        |r| !r.blkio_throttle.is_empty(),
        |r| r.blkio_throttle.clear(),
    ),
    (
        "rdma limit",
        Some("rdma"),
        |r| !r.rdma.is_empty(),
        |r| r.rdma.clear(),
    ),
    (
        "hugepage limit",
        Some("hugetlb"),
        |r| !r.hugepage_limits.is_empty(),
        |r| r.hugepage_limits.clear(),
    ),
    (
        "network class/priority",
        None,
        |r| r.net_class_id.is_some() || !r.net_priorities.is_empty(),
        |r| {
            r.net_class_id = None;
            r.net_priorities.clear();
        },
    ),
    (
        "unified cgroup settings",
        Some(""),
        |r| !r.unified.is_empty(),
        |r| r.unified.clear(),
    ),
];

/// The limits `res` asks for, each once, with the cgroup v2 controller it needs (`None`: a
/// v1-only setting that cgroup v2 does not have).
pub fn requested_limits(res: &Resources) -> Vec<(&'static str, Option<&'static str>)> {
    LIMITS
        .iter()
        .filter(|(_, _, set, _)| set(res))
        .map(|(name, ctl, _, _)| (*name, *ctl))
        .collect()
}

impl Driver {
    /// The limits of `res` this driver cannot apply, one entry per limit. Device rules are
    /// not among them: without a cgroup the container still cannot create device nodes in
    /// its user namespace, so the runtime checks them against what it binds in instead.
    pub fn dropped(&self, res: &Resources) -> Vec<DroppedLimit> {
        requested_limits(res)
            .into_iter()
            .filter_map(|(limit, ctl)| {
                let reason = match (self, ctl) {
                    (Driver::None(reason), _) => reason.to_string(),
                    (Driver::Delegated { .. }, None) => "cgroup v2 has no such setting".to_owned(),
                    // Raw `unified` files: whichever controller they need is checked when
                    // they are written.
                    (Driver::Delegated { .. }, Some("")) => return None,
                    (Driver::Delegated { dir, controllers }, Some(c)) => {
                        if controllers.iter().any(|have| have == c) {
                            return None;
                        }
                        format!(
                            "cgroup v2 subtree not delegated: controller {c} is not in {}",
                            dir.join("cgroup.controllers").display()
                        )
                    }
                };
                Some(DroppedLimit { limit, reason })
            })
            .collect()
    }

    /// Whether containers get a cgroup of their own.
    pub fn creates_cgroups(&self) -> bool {
        matches!(self, Driver::Delegated { .. })
    }
}

/// A file or directory `euid` may write as a delegate: owned by it. (Permission bits alone
/// would say yes to root for every file, which is not what delegation means.)
fn owned_by(path: &Path, euid: u32) -> Result<(), String> {
    match std::fs::metadata(path) {
        Ok(m) if m.uid() == euid => Ok(()),
        Ok(m) => Err(format!(
            "{} belongs to {}, not to {}",
            path.display(),
            host_uid_of(m.uid()),
            host_uid_of(euid)
        )),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// A uid of this process's view as the host names it, for messages: inside rootless hako's
/// user namespace the user is 0 and whoever is not mapped shows as the overflow id.
fn host_uid_of(uid: u32) -> String {
    if !hako_base::userns::in_user_namespace() {
        return format!("uid {uid}");
    }
    hako_base::userns::uid_map()
        .iter()
        .find(|m| uid >= m.inside && uid - m.inside < m.size)
        .map_or_else(
            || "a user outside this user namespace".to_string(),
            |m| format!("uid {}", m.outside + (uid - m.inside)),
        )
}

impl CgroupSystem {
    /// The cgroup driver rootless containers of the user `euid` get on this host. `euid` is
    /// the caller's effective uid as this process sees it, in its own user namespace (0 in
    /// rootless hako's), because that is how the delegated files' owner reads here.
    pub fn rootless_driver(&self, euid: u32) -> Driver {
        if self.mode() != Mode::V2 {
            return Driver::None(NoneReason::V1);
        }
        let Some(h) = self.hierarchies.iter().find(|h| h.kind == Kind::V2) else {
            return Driver::None(NoneReason::V1);
        };
        let mut dir = h.mount_point.join(h.caller.trim_start_matches('/'));
        // A command run from the leaf that an earlier one moved the delegate's processes
        // into (see [`vacate`]) works in the same delegated cgroup as that one.
        if dir.file_name().is_some_and(|n| n == CALLER_LEAF) {
            dir.pop();
        }
        let not = |why: String| Driver::None(NoneReason::NotDelegated(why));
        // systemd's Delegate=yes hands over the directory and these files (the ones that
        // let the delegate create children, move processes and enable controllers).
        for p in [
            dir.clone(),
            dir.join("cgroup.procs"),
            dir.join("cgroup.subtree_control"),
        ] {
            if let Err(why) = owned_by(&p, euid) {
                return not(why);
            }
        }
        let listed = |file: &str| -> Result<Vec<String>, String> {
            let p = dir.join(file);
            std::fs::read_to_string(&p)
                .map(|s| s.split_whitespace().map(str::to_owned).collect())
                .map_err(|e| format!("{}: {e}", p.display()))
        };
        let controllers = match listed("cgroup.controllers") {
            Ok(c) => c,
            Err(why) => return not(why),
        };
        let enabled = match listed("cgroup.subtree_control") {
            Ok(c) => c,
            Err(why) => return not(why),
        };
        if enabled.is_empty() && controllers.is_empty() {
            return not(format!(
                "no controllers are available in {}",
                dir.join("cgroup.controllers").display()
            ));
        }
        Driver::Delegated { dir, controllers }
    }
}

/// The child of a delegated cgroup that its own processes are moved into (by [`vacate`]), so
/// that the cgroup may enable controllers for the containers created beside it.
pub const CALLER_LEAF: &str = "hako-caller";

/// Makes delegated cgroup `dir` hold no process of its own, as cgroup v2 requires of a cgroup
/// that enables controllers for its children ("no internal processes"): its processes (the
/// caller, and whatever else of the user's runs there, such as its shell) move into the child
/// [`CALLER_LEAF`], where they keep every limit `dir` has. Nothing happens to an empty `dir`.
pub fn vacate(dir: &Path) -> Result<(), crate::Error> {
    let procs = dir.join("cgroup.procs");
    let leaf = dir.join(CALLER_LEAF);
    // A process that forks while we move it can leave a child behind: a few rounds.
    for _ in 0..10 {
        let pids = crate::fs::read_string(&procs)?;
        if pids.trim().is_empty() {
            return Ok(());
        }
        match crate::fs::mkdir(&leaf) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(error) => return Err(crate::Error::Create { path: leaf, error }),
        }
        for pid in pids.split_whitespace() {
            match crate::fs::write_raw(&leaf.join("cgroup.procs"), pid.as_bytes()) {
                Ok(()) => {}
                // Gone meanwhile.
                Err(e) if crate::fs::errno(&e) == libc::ESRCH => {}
                Err(e) => {
                    return Err(crate::fs::write_err(
                        &leaf.join("cgroup.procs"),
                        pid.as_bytes(),
                        e,
                    ))
                }
            }
        }
    }
    Err(crate::Error::Create {
        path: leaf,
        error: std::io::Error::other(format!("{} keeps gaining processes", procs.display())),
    })
}

/// `res` without what a rootless container's cgroup cannot take: the limits `driver` drops
/// (reported by [`Driver::dropped`]) and the device rules, whose cgroup v2 filter needs a
/// privilege no user namespace grants (the user namespace already keeps the container from
/// creating device nodes, and from using any the user could not).
pub fn applicable(driver: &Driver, res: &Resources) -> Resources {
    let mut out = res.clone();
    out.devices = None;
    let dropped = driver.dropped(res);
    for (name, _, _, clear) in LIMITS {
        if dropped.iter().any(|d| d.limit == *name) {
            clear(&mut out);
        }
    }
    out
}

/// Whether a cgroup error is one runc tolerates for a rootless container that names no
/// cgroups path: permission refused (EPERM, EACCES) or a read-only cgroupfs (EROFS). The
/// container then runs without a cgroup.
pub fn is_rootless_ignorable(e: &crate::Error) -> bool {
    use crate::Error as E;
    let io = match e {
        E::Create { error, .. } | E::Write { error, .. } | E::Read { error, .. } => error,
        _ => return false,
    };
    if io.kind() == std::io::ErrorKind::PermissionDenied {
        return true;
    }
    matches!(
        io.raw_os_error(),
        Some(libc::EPERM) | Some(libc::EACCES) | Some(libc::EROFS)
    )
}

/// Whether `rules` (read in order, as the v1 kernel reads them) allow read and write access
/// to the character (`'c'`) or block (`'b'`) device `major:minor`.
pub fn rules_allow(
    rules: &[crate::DeviceRule],
    kind: char,
    major: u32,
    minor: u32,
) -> Result<bool, crate::Error> {
    let c = crate::devices::Canonical::from_rules(rules)?;
    Ok(c.allows_rw(kind == 'b', major, minor))
}
