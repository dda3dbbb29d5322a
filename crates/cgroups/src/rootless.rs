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

/// The limits `res` asks for, each once, with the cgroup v2 controller it needs (`None`: a
/// v1-only setting that cgroup v2 does not have).
pub fn requested_limits(res: &Resources) -> Vec<(&'static str, Option<&'static str>)> {
    let mut out = Vec::new();
    let mut add = |set: bool, name: &'static str, ctl: Option<&'static str>| {
        if set {
            out.push((name, ctl));
        }
    };
    add(res.memory_limit.is_some(), "memory limit", Some("memory"));
    add(
        res.memory_swap.is_some(),
        "memory+swap limit",
        Some("memory"),
    );
    add(
        res.memory_reservation.is_some(),
        "memory reservation",
        Some("memory"),
    );
    add(res.memory_swappiness.is_some(), "memory swappiness", None);
    add(res.disable_oom_killer, "oom-kill disable", None);
    add(res.cpu_shares.is_some(), "cpu shares", Some("cpu"));
    add(
        res.cpu_quota.is_some() || res.cpu_period.is_some(),
        "cpu quota",
        Some("cpu"),
    );
    add(
        res.cpu_rt_runtime.is_some() || res.cpu_rt_period.is_some(),
        "cpu realtime budget",
        None,
    );
    add(res.cpu_idle.is_some(), "cpu idle", Some("cpu"));
    add(
        res.cpuset_cpus.is_some() || res.cpuset_mems.is_some(),
        "cpuset",
        Some("cpuset"),
    );
    add(res.pids_limit.is_some(), "pids limit", Some("pids"));
    add(
        res.blkio_weight.is_some()
            || res.blkio_leaf_weight.is_some()
            || !res.blkio_weight_devices.is_empty(),
        "blkio weight",
        Some("io"),
    );
    add(!res.blkio_throttle.is_empty(), "blkio throttle", Some("io"));
    add(!res.rdma.is_empty(), "rdma limit", Some("rdma"));
    add(
        !res.hugepage_limits.is_empty(),
        "hugepage limit",
        Some("hugetlb"),
    );
    add(
        res.net_class_id.is_some() || !res.net_priorities.is_empty(),
        "network class/priority",
        None,
    );
    add(!res.unified.is_empty(), "unified cgroup settings", Some(""));
    out
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
            "{} belongs to uid {}, not {euid}",
            path.display(),
            m.uid()
        )),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

impl CgroupSystem {
    /// The cgroup driver rootless containers of the user `euid` get on this host.
    pub fn rootless_driver(&self, euid: u32) -> Driver {
        if self.mode() != Mode::V2 {
            return Driver::None(NoneReason::V1);
        }
        let Some(h) = self.hierarchies.iter().find(|h| h.kind == Kind::V2) else {
            return Driver::None(NoneReason::V1);
        };
        let dir = h.mount_point.join(h.caller.trim_start_matches('/'));
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
