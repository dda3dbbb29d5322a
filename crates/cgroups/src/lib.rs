//! Cgroup management for hako: cgroup v1, v2 and hybrid hierarchies.
//!
//! [`CgroupSystem`] describes the hierarchies mounted on the host and where
//! the calling process sits in them; [`Cgroup`] is one container's set of
//! directories (one per hierarchy) and the operations the runtime needs on it.
//!
//! Everything here runs on the container start path, so operations stick to
//! one open+write per attribute file and avoid directory scans unless a
//! slow path (removal of a busy cgroup, killing) needs them.

#![deny(missing_docs)]

mod bpf;
mod devices;
mod error;
mod fs;
mod parse;
pub mod rootless;
mod stats;

use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use error::Error;
use parse::{
    Kind, BLKIO, CPU, CPUACCT, CPUSET, DEVICES, FREEZER, HUGETLB, MEMORY, NET_CLS, NET_PRIO, PIDS,
    RDMA, SYSTEMD,
};
pub use stats::{CpuStats, MemoryEntry, MemoryStats, PidsStats, ResourceStats};

/// How cgroups are laid out on the host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Only cgroup v1 controller hierarchies.
    V1,
    /// cgroup v1 controllers plus a cgroup2 hierarchy used for process tracking.
    Hybrid,
    /// A single cgroup2 hierarchy.
    V2,
}

/// One hierarchy we place cgroups in.
#[derive(Clone, Debug)]
struct Hierarchy {
    kind: Kind,
    mount_point: PathBuf,
    /// The calling process's cgroup relative to `mount_point`, normalized
    /// ("" for the top of the mount).
    caller: String,
}

/// The cgroup hierarchies available to this process.
#[derive(Clone, Debug)]
pub struct CgroupSystem {
    mode: Mode,
    hierarchies: Vec<Hierarchy>,
}

/// Controllers hako enables for children in cgroup v2, in the order the
/// kernel lists them.
const V2_CONTROLLERS: [&str; 6] = ["cpuset", "cpu", "io", "memory", "pids", "rdma"];

impl CgroupSystem {
    /// Parse /proc/self/mountinfo and /proc/self/cgroup.
    pub fn detect() -> Result<Self, Error> {
        let mountinfo = fs::read_string(Path::new("/proc/self/mountinfo"))?;
        let cgroup = fs::read_string(Path::new("/proc/self/cgroup"))?;
        Self::from_parts(&mountinfo, &cgroup)
    }

    /// Same as [`detect`](Self::detect) from given texts, e.g. a fake tree
    /// whose mount points lie in a temporary directory.
    pub fn from_parts(mountinfo: &str, proc_self_cgroup: &str) -> Result<Self, Error> {
        let mounts = parse::parse_mountinfo(mountinfo)?;
        let members = parse::parse_proc_cgroup(proc_self_cgroup)?;

        let has_v1_controllers = mounts
            .iter()
            .any(|m| matches!(m.kind, Kind::V1(mask) if mask & !SYSTEMD != 0));
        let has_v2 = mounts.iter().any(|m| m.kind == Kind::V2);
        let mode = match (has_v1_controllers, has_v2) {
            (true, true) => Mode::Hybrid,
            (true, false) => Mode::V1,
            (false, true) => Mode::V2,
            // A lone name=systemd hierarchy still tracks processes.
            (false, false) if !mounts.is_empty() => Mode::V1,
            (false, false) => return Err(Error::NoCgroupFs),
        };

        // (hierarchy, whether our own cgroup lies inside the mounted subtree)
        let mut found: Vec<(Hierarchy, bool)> = Vec::new();
        for m in mounts {
            if mode == Mode::V2 && m.kind != Kind::V2 {
                continue;
            }
            let own = members
                .iter()
                .find(|c| c.kind == m.kind)
                .map_or("/", |c| c.path);
            let root = m.root.trim_end_matches('/');
            let reachable = root.is_empty()
                || own
                    .strip_prefix(root)
                    .is_some_and(|r| r.is_empty() || r.starts_with('/'));
            let caller = parse::normalize(&parse::relative_to_root(&m.root, own))?;
            let h = Hierarchy {
                kind: m.kind,
                mount_point: m.mount_point,
                caller,
            };
            // The same hierarchy may be mounted several times (bind mounts,
            // containers); prefer a mount through which our cgroup is visible.
            match found.iter_mut().find(|(f, _)| f.kind == h.kind) {
                Some(slot) if !slot.1 && reachable => *slot = (h, reachable),
                Some(_) => {}
                None => found.push((h, reachable)),
            }
        }
        Ok(CgroupSystem {
            mode,
            hierarchies: found.into_iter().map(|(h, _)| h).collect(),
        })
    }

    /// Which of the optional limits this host's kernel offers, read from the top of each
    /// hierarchy as Docker's daemon reads it: a v1 controller mounted wins over cgroup2, as in
    /// [`Cgroup::apply`]. Only asked when such a limit is requested, so `run` pays nothing
    /// otherwise.
    pub fn support(&self) -> Support {
        let v1 = |bit: u16| {
            self.hierarchies
                .iter()
                .find(|h| matches!(h.kind, Kind::V1(m) if m & bit != 0))
                .map(|h| h.mount_point.as_path())
        };
        let v2 = self
            .hierarchies
            .iter()
            .find(|h| h.kind == Kind::V2)
            .map(|h| h.mount_point.as_path());
        let v2_controllers = v2
            .and_then(|d| std::fs::read_to_string(d.join("cgroup.controllers")).ok())
            .unwrap_or_default();
        let v2_has = |name: &str| v2_controllers.split_whitespace().any(|c| c == name);
        let has = |d: &Path, f: &str| d.join(f).exists();
        let mut s = Support::default();
        match v1(MEMORY) {
            Some(d) => {
                s.memory_reservation = has(d, "memory.soft_limit_in_bytes");
                s.oom_kill_disable = has(d, "memory.oom_control");
            }
            // memory.low; cgroup2 has no switch for the OOM killer.
            None => s.memory_reservation = v2_has("memory"),
        }
        s.cpu_cfs = match v1(CPU) {
            Some(d) => has(d, "cpu.cfs_quota_us") && has(d, "cpu.cfs_period_us"),
            None => v2_has("cpu"),
        };
        match v1(BLKIO) {
            Some(d) => {
                // CFQ's file is gone from current kernels; BFQ's appears when a disk uses it.
                s.blkio_weight = has(d, "blkio.weight") || has(d, "blkio.bfq.weight");
                s.blkio_read_bps = has(d, "blkio.throttle.read_bps_device");
                s.blkio_write_bps = has(d, "blkio.throttle.write_bps_device");
                s.blkio_read_iops = has(d, "blkio.throttle.read_iops_device");
                s.blkio_write_iops = has(d, "blkio.throttle.write_iops_device");
            }
            None => {
                let io = v2_has("io");
                // io.weight is iocost's, whose root file is io.cost.qos; io.bfq.weight BFQ's.
                s.blkio_weight =
                    io && v2.is_some_and(|d| has(d, "io.cost.qos") || has(d, "io.bfq.weight"));
                s.blkio_read_bps = io;
                s.blkio_write_bps = io;
                s.blkio_read_iops = io;
                s.blkio_write_iops = io;
            }
        }
        s
    }

    /// The host's cgroup layout.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Mount points of the hierarchies cgroups are created in.
    pub fn mount_points(&self) -> impl Iterator<Item = &Path> {
        self.hierarchies.iter().map(|h| h.mount_point.as_path())
    }

    /// Create cgroup `name` in every relevant hierarchy.
    ///
    /// With `parent` `None` the cgroup is nested under the caller's own
    /// cgroup in each hierarchy; `Some(p)` is a path below each hierarchy's
    /// root (like `docker --cgroup-parent`). Missing parents are created. An
    /// existing cgroup is reused. On failure, directories created by this
    /// call are removed again.
    pub fn create(&self, parent: Option<&str>, name: &str) -> Result<Cgroup, Error> {
        let cg = self.layout(parent, name)?;
        self.make(cg, |h| if parent.is_some() { 0 } else { h.caller.len() })
    }

    /// Creates the directories of `cg` in each hierarchy, preparing the levels below the
    /// first `base_len(h)` bytes of its path there; on failure, removes what it created.
    fn make(&self, cg: Cgroup, base_len: impl Fn(&Hierarchy) -> usize) -> Result<Cgroup, Error> {
        let mut created = Vec::new();
        let mut buf = Vec::new();
        for (h, rel) in self.hierarchies.iter().zip(&cg.rels) {
            if let Err(e) = create_in(h, rel, base_len(h), &mut created, &mut buf) {
                for dir in created.iter().rev() {
                    let _ = fs::rmdir(dir);
                }
                return Err(e);
            }
        }
        Ok(cg)
    }

    /// Creates cgroup `name` below `base`, a cgroup directory of the v2 hierarchy this
    /// process may manage (a rootless user's delegated cgroup): unlike a `parent` given to
    /// [`create`](Self::create), the levels above `base` are left as they are, since they are
    /// not the caller's to prepare.
    pub fn create_below(&self, base: &Path, name: &str) -> Result<Cgroup, Error> {
        let v2 = self
            .hierarchies
            .iter()
            .find(|h| h.kind == Kind::V2)
            .ok_or_else(|| Error::InvalidName(base.display().to_string()))?;
        let rel = base
            .strip_prefix(&v2.mount_point)
            .map_err(|_| Error::InvalidName(base.display().to_string()))?;
        let rel = parse::normalize(&rel.to_string_lossy())?;
        let cg = self.layout(Some(&rel), name)?;
        self.make(cg, |_| rel.len())
    }

    /// Handle to an existing (or already gone) cgroup, with the same path
    /// rules as [`create`](Self::create); meant for cleanup after a crash.
    ///
    /// An invalid name yields a handle with no directories, so every
    /// operation on it is a no-op rather than touching an unintended cgroup.
    pub fn open(&self, parent: Option<&str>, name: &str) -> Cgroup {
        self.layout(parent, name).unwrap_or(Cgroup {
            paths: Vec::new(),
            kinds: Vec::new(),
            rels: Vec::new(),
            primary: 0,
        })
    }

    /// Handle to the cgroup whose directories are `dirs` (as returned by
    /// [`Cgroup::paths`], e.g. recorded by another process). Directories
    /// outside every known hierarchy are skipped.
    pub fn open_dirs(&self, dirs: &[PathBuf]) -> Cgroup {
        let mut cg = Cgroup {
            paths: Vec::new(),
            kinds: Vec::new(),
            rels: Vec::new(),
            primary: 0,
        };
        for dir in dirs {
            let Some(h) = self
                .hierarchies
                .iter()
                .filter(|h| dir.starts_with(&h.mount_point))
                .max_by_key(|h| h.mount_point.as_os_str().len())
            else {
                continue;
            };
            let Ok(rest) = dir.strip_prefix(&h.mount_point) else {
                continue;
            };
            let Some(rel) = rest.to_str().and_then(|r| parse::normalize(r).ok()) else {
                continue;
            };
            if rel.is_empty() {
                // Never operate on a hierarchy's root.
                continue;
            }
            let is_primary = match self.mode {
                Mode::V2 => h.kind == Kind::V2,
                Mode::V1 | Mode::Hybrid => matches!(h.kind, Kind::V1(m) if m & MEMORY != 0),
            };
            if is_primary {
                cg.primary = cg.paths.len();
            }
            cg.paths.push(h.mount_point.join(&rel[1..]));
            cg.kinds.push(h.kind);
            cg.rels.push(rel);
        }
        cg
    }

    fn layout(&self, parent: Option<&str>, name: &str) -> Result<Cgroup, Error> {
        let name_n = parse::normalize(name)?;
        if name_n.is_empty() {
            // An empty name would make the cgroup its own parent, and remove()
            // would then rmdir the caller's cgroup.
            return Err(Error::InvalidName(name.to_owned()));
        }
        let parent_n = parent.map(parse::normalize).transpose()?;
        let n = self.hierarchies.len();
        let mut cg = Cgroup {
            paths: Vec::with_capacity(n),
            kinds: Vec::with_capacity(n),
            rels: Vec::with_capacity(n),
            primary: 0,
        };
        for (i, h) in self.hierarchies.iter().enumerate() {
            let base = parent_n.as_deref().unwrap_or(&h.caller);
            let mut rel = String::with_capacity(base.len() + name_n.len());
            rel.push_str(base);
            rel.push_str(&name_n);
            cg.paths.push(h.mount_point.join(&rel[1..]));
            cg.kinds.push(h.kind);
            cg.rels.push(rel);
            let is_primary = match self.mode {
                Mode::V2 => h.kind == Kind::V2,
                Mode::V1 | Mode::Hybrid => matches!(h.kind, Kind::V1(m) if m & MEMORY != 0),
            };
            if is_primary {
                cg.primary = i;
            }
        }
        Ok(cg)
    }
}

/// Creates the levels of `rel` below its first `base_len` bytes in one
/// hierarchy, preparing each level the way the hierarchy requires.
fn create_in(
    h: &Hierarchy,
    rel: &str,
    base_len: usize,
    created: &mut Vec<PathBuf>,
    buf: &mut Vec<u8>,
) -> Result<(), Error> {
    let mut dir = h.mount_point.join(rel[..base_len].trim_start_matches('/'));
    for comp in rel[base_len..].split('/').filter(|c| !c.is_empty()) {
        if h.kind == Kind::V2 {
            enable_controllers(&dir, buf)?;
        }
        dir.push(comp);
        match fs::mkdir(&dir) {
            Ok(()) => created.push(dir.clone()),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(source) => {
                return Err(Error::Create {
                    path: dir,
                    error: source,
                })
            }
        }
        if matches!(h.kind, Kind::V1(m) if m & CPUSET != 0) {
            inherit_cpuset(&dir, buf)?;
        }
    }
    Ok(())
}

/// A v1 cpuset cgroup starts with empty cpus/mems, and the kernel refuses to
/// attach tasks to it until they are set. The parent is already populated
/// because levels are handled top-down from a cgroup that holds processes
/// (or the root).
fn inherit_cpuset(dir: &Path, buf: &mut Vec<u8>) -> Result<(), Error> {
    let Some(parent) = dir.parent() else {
        return Ok(());
    };
    for file in ["cpuset.cpus", "cpuset.mems"] {
        let path = dir.join(file);
        match fs::read_small(&path, buf) {
            Ok(s) if !s.trim().is_empty() => continue,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(Error::Read {
                    path,
                    error: source,
                })
            }
        }
        let ppath = parent.join(file);
        let value = match fs::read_small(&ppath, buf) {
            Ok(s) => s.trim(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(source) => {
                return Err(Error::Read {
                    path: ppath,
                    error: source,
                })
            }
        };
        if !value.is_empty() {
            fs::write(&path, value.as_bytes())?;
        }
    }
    Ok(())
}

/// Makes the v2 controllers hako limits available to children of `dir`.
///
/// Failures the kernel uses for "not possible here" are ignored: the
/// no-internal-processes rule (EBUSY), controllers that cannot be enabled in
/// this cgroup type (ENOTSUP) and cpu with realtime tasks present (EINVAL).
/// The cgroup is then created without those controllers and a later
/// [`Cgroup::apply`] reports [`Error::Unsupported`] if a limit needs them.
fn enable_controllers(dir: &Path, buf: &mut Vec<u8>) -> Result<(), Error> {
    let mask_of = |text: &str| {
        text.split_ascii_whitespace().fold(0u8, |m, c| {
            m | V2_CONTROLLERS
                .iter()
                .position(|w| *w == c)
                .map_or(0, |i| 1 << i)
        })
    };
    let path = dir.join("cgroup.controllers");
    let available = match fs::read_small(&path, buf) {
        Ok(s) => mask_of(s),
        // Not a cgroup2 directory we can manage controllers in.
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(Error::Read {
                path,
                error: source,
            })
        }
    };
    if available == 0 {
        return Ok(());
    }
    let path = dir.join("cgroup.subtree_control");
    let enabled = match fs::read_small(&path, buf) {
        Ok(s) => mask_of(s),
        Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
        Err(source) => {
            return Err(Error::Read {
                path,
                error: source,
            })
        }
    };
    let missing = available & !enabled;
    if missing == 0 {
        return Ok(());
    }
    let wanted = || {
        V2_CONTROLLERS
            .iter()
            .enumerate()
            .filter(move |(i, _)| missing & (1 << i) != 0)
            .map(|(_, c)| *c)
    };
    let mut request = String::with_capacity(40);
    for c in wanted() {
        if !request.is_empty() {
            request.push(' ');
        }
        request.push('+');
        request.push_str(c);
    }
    let ignorable =
        |e: &io::Error| matches!(fs::errno(e), libc::EBUSY | libc::ENOTSUP | libc::EINVAL);
    match fs::write_raw(&path, request.as_bytes()) {
        Ok(()) => Ok(()),
        Err(e) if ignorable(&e) => {
            // The kernel applies such a request all or nothing; one refused
            // controller should not cost us the others.
            for c in wanted() {
                request.clear();
                request.push('+');
                request.push_str(c);
                match fs::write_raw(&path, request.as_bytes()) {
                    Err(e) if !ignorable(&e) => {
                        return Err(fs::write_err(&path, request.as_bytes(), e))
                    }
                    _ => {}
                }
            }
            Ok(())
        }
        Err(e) => Err(fs::write_err(&path, request.as_bytes(), e)),
    }
}

/// The optional limits a host offers (see [`CgroupSystem::support`]); what it lacks is
/// dropped with a warning, as Docker's daemon does.
#[derive(Default, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Support {
    /// A soft memory limit (v1 `memory.soft_limit_in_bytes`, v2 `memory.low`).
    pub memory_reservation: bool,
    /// Turning the OOM killer off (v1 `memory.oom_control` only).
    pub oom_kill_disable: bool,
    /// CFS quota and period.
    pub cpu_cfs: bool,
    /// A block I/O weight (CFQ's or BFQ's, or cgroup2's iocost).
    pub blkio_weight: bool,
    /// Read bytes per second per device.
    pub blkio_read_bps: bool,
    /// Written bytes per second per device.
    pub blkio_write_bps: bool,
    /// Read operations per second per device.
    pub blkio_read_iops: bool,
    /// Write operations per second per device.
    pub blkio_write_iops: bool,
}

/// Resource limits, in Docker's conventions: `None` (and 0 where Docker
/// treats it as "unset") leaves the kernel default, negative means unlimited.
#[derive(Default, Clone, Debug)]
pub struct Resources {
    /// Memory limit in bytes.
    pub memory_limit: Option<i64>,
    /// Memory plus swap limit in bytes (Docker's `--memory-swap`).
    pub memory_swap: Option<i64>,
    /// Soft memory limit in bytes, reclaimed towards under memory pressure.
    pub memory_reservation: Option<i64>,
    /// Relative CPU weight in v1 shares (2..=262144, default 1024).
    pub cpu_shares: Option<u64>,
    /// CFS quota in microseconds per period.
    pub cpu_quota: Option<i64>,
    /// CFS period in microseconds.
    pub cpu_period: Option<u64>,
    /// CPUs the container may run on, e.g. "0-3,6".
    pub cpuset_cpus: Option<String>,
    /// Memory nodes the container may allocate from.
    pub cpuset_mems: Option<String>,
    /// Maximum number of tasks.
    pub pids_limit: Option<i64>,
    /// Relative block I/O weight, 10..=1000 (v1 blkio scale).
    pub blkio_weight: Option<u16>,
    /// Device access rules (the OCI `linux.resources.devices` list), read in order as the
    /// cgroup v1 kernel reads writes to `devices.allow`/`devices.deny`, starting from
    /// everything allowed: an `a` rule sets the default and drops what came before, `b`/`c`
    /// rules make exceptions to it. The list is the cgroup's whole device access: applying
    /// another replaces it (on cgroup v2, the eBPF program generated from it replaces the
    /// previous one instead of adding to it).
    pub devices: Option<Vec<DeviceRule>>,
    /// Kernel swappiness for the cgroup's memory, 0..=100 (v1 only).
    pub memory_swappiness: Option<u64>,
    /// Pause instead of OOM-killing at the limit (v1 only).
    pub disable_oom_killer: bool,
    /// Real-time scheduling budget per period, in microseconds (v1 only).
    pub cpu_rt_runtime: Option<i64>,
    /// Real-time scheduling period, in microseconds (v1 only).
    pub cpu_rt_period: Option<u64>,
    /// SCHED_IDLE-like weight for the whole cgroup (v2 only): 0 or 1.
    pub cpu_idle: Option<i64>,
    /// Per-device I/O limits.
    pub blkio_throttle: Vec<Throttle>,
    /// Weight of the cgroup's own tasks against its children, 10..=1000 (v1 CFQ only).
    pub blkio_leaf_weight: Option<u16>,
    /// Per-device weights, overriding `blkio_weight` for that device.
    pub blkio_weight_devices: Vec<WeightDevice>,
    /// RDMA limits per device.
    pub rdma: Vec<RdmaLimit>,
    /// Hugepage limits as (page size such as `2MB`, bytes).
    pub hugepage_limits: Vec<(String, i64)>,
    /// net_cls class id (v1 only).
    pub net_class_id: Option<u32>,
    /// net_prio priorities as (interface, priority) (v1 only).
    pub net_priorities: Vec<(String, u32)>,
    /// Raw cgroup2 files to write (OCI `unified`), as (file, value).
    pub unified: Vec<(String, String)>,
}

/// What a [`Throttle`] limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThrottleKind {
    /// Bytes read per second.
    ReadBps,
    /// Bytes written per second.
    WriteBps,
    /// Read operations per second.
    ReadIops,
    /// Write operations per second.
    WriteIops,
}

/// One per-device I/O limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Throttle {
    /// What is limited.
    pub kind: ThrottleKind,
    /// Device major number.
    pub major: i64,
    /// Device minor number.
    pub minor: i64,
    /// The limit, per second.
    pub rate: u64,
}

/// A per-device block I/O weight; either weight may be left unset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WeightDevice {
    /// Device major number.
    pub major: i64,
    /// Device minor number.
    pub minor: i64,
    /// Weight, 10..=1000 (v1 blkio scale).
    pub weight: Option<u16>,
    /// Leaf weight, 10..=1000 (v1 CFQ only).
    pub leaf_weight: Option<u16>,
}

/// RDMA limits of one device (e.g. `mlx5_0`); `None` leaves that resource unlimited.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RdmaLimit {
    /// The RDMA device's name.
    pub device: String,
    /// Maximum number of HCA handles.
    pub hca_handles: Option<u32>,
    /// Maximum number of HCA objects.
    pub hca_objects: Option<u32>,
}

/// One device cgroup rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceRule {
    /// Allow (true) or deny (false).
    pub allow: bool,
    /// `'a'` (all), `'c'` (character) or `'b'` (block).
    pub kind: char,
    /// Major number, `None` for any.
    pub major: Option<i64>,
    /// Minor number, `None` for any.
    pub minor: Option<i64>,
    /// Any of `r`, `w`, `m`.
    pub access: String,
}

impl DeviceRule {
    /// The line the v1 `devices.allow`/`devices.deny` files take, e.g. `c 1:3 rwm`.
    pub fn v1_line(&self) -> String {
        // Some OCI writers spell "any" as -1.
        let num = |n: Option<i64>| {
            n.filter(|n| *n >= 0)
                .map_or_else(|| "*".to_owned(), |n| n.to_string())
        };
        if self.kind == 'a' {
            return format!("a *:* {}", self.access);
        }
        format!(
            "{} {}:{} {}",
            self.kind,
            num(self.major),
            num(self.minor),
            self.access
        )
    }
}

/// Point-in-time usage of a cgroup; `None` when the controller is absent.
#[derive(Default, Clone, Debug, PartialEq, Eq)]
pub struct Stats {
    /// Memory in use, in bytes.
    pub memory_usage: Option<u64>,
    /// Number of tasks.
    pub pids_current: Option<u64>,
    /// Total CPU time consumed, in nanoseconds.
    pub cpu_usage_ns: Option<u64>,
}

/// One container's cgroup: a directory in each hierarchy.
#[derive(Clone, Debug)]
pub struct Cgroup {
    paths: Vec<PathBuf>,
    kinds: Vec<Kind>,
    /// Per-hierarchy path relative to the mount point.
    rels: Vec<String>,
    primary: usize,
}

/// Formats into a stack buffer, so writing numbers to cgroup files needs no
/// allocation.
struct Fmt {
    buf: [u8; 64],
    len: usize,
}

impl Fmt {
    fn new(args: std::fmt::Arguments<'_>) -> Self {
        let mut buf = [0u8; 64];
        let mut rest = &mut buf[..];
        // Callers format at most two integers and a keyword, far below 64.
        let _ = rest.write_fmt(args);
        let len = 64 - rest.len();
        Fmt { buf, len }
    }

    fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

const KILL_TIMEOUT: Duration = Duration::from_secs(10);
const REMOVE_TIMEOUT: Duration = Duration::from_secs(1);
const FREEZE_TIMEOUT: Duration = Duration::from_secs(2);
const MAX_BACKOFF: Duration = Duration::from_millis(20);

/// One hierarchy of a cgroup, as a container's `/sys/fs/cgroup` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct View {
    /// The hierarchy's mount directory name on the host, e.g. `cpu,cpuacct`, `memory`,
    /// `unified`, `systemd`.
    pub name: String,
    /// This cgroup's directory in that hierarchy.
    pub dir: PathBuf,
    /// Whether it is the cgroup2 hierarchy.
    pub unified: bool,
}

impl Cgroup {
    /// Each hierarchy's name and this cgroup's directory in it.
    pub fn views(&self) -> Vec<View> {
        let mut out = Vec::with_capacity(self.paths.len());
        for ((dir, rel), kind) in self.paths.iter().zip(&self.rels).zip(&self.kinds) {
            let mut mount_point = dir.as_path();
            for _ in Path::new(rel.trim_start_matches('/')).components() {
                mount_point = mount_point.parent().unwrap_or(mount_point);
            }
            let Some(name) = mount_point.file_name() else {
                continue;
            };
            out.push(View {
                name: name.to_string_lossy().into_owned(),
                dir: dir.clone(),
                unified: *kind == Kind::V2,
            });
        }
        out
    }

    /// One directory per hierarchy.
    pub fn paths(&self) -> &[PathBuf] {
        &self.paths
    }

    /// Path relative to the hierarchy root, e.g. `/process_api/x/hako-<id>`.
    ///
    /// With v1 hierarchies the caller may sit at different places in each
    /// one; this is the path in the memory hierarchy (v1/hybrid) or the
    /// cgroup2 hierarchy (v2). See [`relative_paths`](Self::relative_paths).
    /// Empty for a handle from [`CgroupSystem::open`] with an invalid name.
    pub fn relative_path(&self) -> &str {
        self.rels.get(self.primary).map_or("", String::as_str)
    }

    /// Relative path in each hierarchy, parallel to [`paths`](Self::paths).
    pub fn relative_paths(&self) -> &[String] {
        &self.rels
    }

    /// Moves process `pid` into this cgroup in every hierarchy.
    pub fn add_task(&self, pid: i32) -> Result<(), Error> {
        let value = Fmt::new(format_args!("{pid}"));
        for dir in &self.paths {
            fs::write(&dir.join("cgroup.procs"), value.bytes())?;
        }
        Ok(())
    }

    /// This cgroup's directory in the cgroup2 hierarchy, if there is one.
    ///
    /// Useful for clone3(CLONE_INTO_CGROUP): starting the container process
    /// directly in its cgroup avoids the migration that makes the first
    /// `cgroup.procs` write cost milliseconds (the kernel waits for an RCU
    /// grace period when taking the threadgroup lock for writing).
    pub fn unified_path(&self) -> Option<&Path> {
        self.v2_dir()
    }

    fn v2_dir(&self) -> Option<&Path> {
        self.kinds
            .iter()
            .position(|k| *k == Kind::V2)
            .map(|i| self.paths[i].as_path())
    }

    fn v1_dir(&self, bit: u16) -> Option<&Path> {
        self.kinds
            .iter()
            .position(|k| matches!(k, Kind::V1(m) if m & bit != 0))
            .map(|i| self.paths[i].as_path())
    }

    /// Directory that provides controller `bit`: its v1 hierarchy when that
    /// is mounted (the kernel then keeps it out of cgroup2), else cgroup2.
    fn controller_dir(&self, bit: u16, name: &'static str) -> Result<(&Path, bool), Error> {
        if let Some(dir) = self.v1_dir(bit) {
            return Ok((dir, false));
        }
        if let Some(dir) = self.v2_dir() {
            return Ok((dir, true));
        }
        Err(Error::Unsupported {
            controller: name,
            path: self.paths.first().cloned().unwrap_or_default(),
        })
    }

    /// Writes a limit; a missing file means the controller is not enabled
    /// for this cgroup.
    fn set(dir: &Path, file: &str, value: &[u8], controller: &'static str) -> Result<(), Error> {
        let path = dir.join(file);
        match fs::write_raw(&path, value) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err(Error::Unsupported { controller, path })
            }
            Err(e) => Err(fs::write_err(&path, value, e)),
        }
    }

    /// Like [`set`](Self::set), but a missing file is fine (swap accounting
    /// is commonly disabled). Returns whether the file existed.
    fn set_optional(dir: &Path, file: &str, value: &[u8]) -> Result<bool, Error> {
        let path = dir.join(file);
        match fs::write_raw(&path, value) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(fs::write_err(&path, value, e)),
        }
    }

    /// Applies resource limits; fields left `None` are not touched.
    pub fn apply(&self, res: &Resources) -> Result<(), Error> {
        if res.cpuset_cpus.is_some() || res.cpuset_mems.is_some() {
            let (dir, _) = self.controller_dir(CPUSET, "cpuset")?;
            if let Some(cpus) = &res.cpuset_cpus {
                Self::set(dir, "cpuset.cpus", cpus.as_bytes(), "cpuset")?;
            }
            if let Some(mems) = &res.cpuset_mems {
                Self::set(dir, "cpuset.mems", mems.as_bytes(), "cpuset")?;
            }
        }
        self.apply_memory(res)?;
        self.apply_cpu(res)?;
        if let Some(rules) = &res.devices {
            self.apply_devices(rules)?;
        }
        if let Some(limit) = res.pids_limit {
            let (dir, _) = self.controller_dir(PIDS, "pids")?;
            let value = if limit > 0 {
                Fmt::new(format_args!("{limit}"))
            } else {
                Fmt::new(format_args!("max"))
            };
            Self::set(dir, "pids.max", value.bytes(), "pids")?;
        }
        if let Some(w) = res.blkio_weight.filter(|w| *w != 0) {
            self.apply_blkio_weight(w)?;
        }
        self.apply_blkio_more(res)?;
        self.apply_rdma(&res.rdma)?;
        self.apply_more(res)
    }

    /// A cgroup-version-specific knob on a host of the other version.
    fn unsupported(&self, what: &'static str) -> Error {
        Error::Unsupported {
            controller: what,
            path: self.paths.first().cloned().unwrap_or_default(),
        }
    }

    fn apply_more(&self, res: &Resources) -> Result<(), Error> {
        if let Some(sw) = res.memory_swappiness {
            if sw > 100 {
                return Err(Error::InvalidResources(
                    "memory swappiness must be between 0 and 100",
                ));
            }
            match self.controller_dir(MEMORY, "memory")? {
                (dir, false) => {
                    let v = Fmt::new(format_args!("{sw}"));
                    Self::set(dir, "memory.swappiness", v.bytes(), "memory")?;
                }
                (_, true) => return Err(self.unsupported("memory.swappiness (cgroup v1 only)")),
            }
        }
        if res.disable_oom_killer {
            match self.controller_dir(MEMORY, "memory")? {
                (dir, false) => Self::set(dir, "memory.oom_control", b"1", "memory")?,
                (_, true) => {
                    return Err(self.unsupported("memory.disableOOMKiller (cgroup v1 only)"))
                }
            }
        }
        if res.cpu_rt_runtime.is_some() || res.cpu_rt_period.is_some() {
            match self.controller_dir(CPU, "cpu")? {
                (dir, false) => {
                    // Period first: the runtime is checked against it.
                    if let Some(p) = res.cpu_rt_period {
                        let v = Fmt::new(format_args!("{p}"));
                        Self::set(dir, "cpu.rt_period_us", v.bytes(), "cpu (realtime)")?;
                    }
                    if let Some(r) = res.cpu_rt_runtime {
                        let v = Fmt::new(format_args!("{r}"));
                        Self::set(dir, "cpu.rt_runtime_us", v.bytes(), "cpu (realtime)")?;
                    }
                }
                (_, true) => return Err(self.unsupported("cpu realtime (cgroup v1 only)")),
            }
        }
        if let Some(idle) = res.cpu_idle {
            match self.controller_dir(CPU, "cpu")? {
                (dir, true) => {
                    let v = Fmt::new(format_args!("{idle}"));
                    Self::set(dir, "cpu.idle", v.bytes(), "cpu")?;
                }
                (_, false) => return Err(self.unsupported("cpu.idle (cgroup v2 only)")),
            }
        }
        if !res.blkio_throttle.is_empty() {
            let (dir, v2) = self.controller_dir(BLKIO, "blkio")?;
            for t in &res.blkio_throttle {
                let (v1_file, v2_key) = match t.kind {
                    ThrottleKind::ReadBps => ("blkio.throttle.read_bps_device", "rbps"),
                    ThrottleKind::WriteBps => ("blkio.throttle.write_bps_device", "wbps"),
                    ThrottleKind::ReadIops => ("blkio.throttle.read_iops_device", "riops"),
                    ThrottleKind::WriteIops => ("blkio.throttle.write_iops_device", "wiops"),
                };
                let (maj, min, rate) = (t.major, t.minor, t.rate);
                if v2 {
                    let v = Fmt::new(format_args!("{maj}:{min} {v2_key}={rate}"));
                    Self::set(dir, "io.max", v.bytes(), "io")?;
                } else {
                    let v = Fmt::new(format_args!("{maj}:{min} {rate}"));
                    Self::set(dir, v1_file, v.bytes(), "blkio")?;
                }
            }
        }
        if !res.hugepage_limits.is_empty() {
            let (dir, v2) = self.controller_dir(HUGETLB, "hugetlb")?;
            for (size, limit) in &res.hugepage_limits {
                if size.is_empty() || !size.chars().all(|c| c.is_ascii_alphanumeric()) {
                    return Err(Error::InvalidResources(
                        "hugepage sizes look like 2MB or 1GB",
                    ));
                }
                let file = if v2 {
                    format!("hugetlb.{size}.max")
                } else {
                    format!("hugetlb.{size}.limit_in_bytes")
                };
                let v = Fmt::new(format_args!("{limit}"));
                Self::set(dir, &file, v.bytes(), "hugetlb")?;
            }
        }
        if let Some(id) = res.net_class_id {
            let dir = self
                .v1_dir(NET_CLS)
                .ok_or_else(|| self.unsupported("net_cls"))?;
            let v = Fmt::new(format_args!("{id}"));
            Self::set(dir, "net_cls.classid", v.bytes(), "net_cls")?;
        }
        if !res.net_priorities.is_empty() {
            let dir = self
                .v1_dir(NET_PRIO)
                .ok_or_else(|| self.unsupported("net_prio"))?;
            for (ifname, prio) in &res.net_priorities {
                let line = format!("{ifname} {prio}");
                Self::set(dir, "net_prio.ifpriomap", line.as_bytes(), "net_prio")?;
            }
        }
        if !res.unified.is_empty() {
            let dir = self
                .v2_dir()
                .ok_or_else(|| self.unsupported("unified (no cgroup2 hierarchy)"))?;
            for (file, value) in &res.unified {
                // One file of this cgroup: no paths, no cgroup core files.
                if file.contains('/') || file.starts_with('.') || file.starts_with("cgroup.") {
                    return Err(Error::InvalidResources(
                        "unified keys name a controller file of the cgroup, such as memory.high",
                    ));
                }
                Self::set(dir, file, value.as_bytes(), "unified")?;
            }
        }
        Ok(())
    }

    fn apply_blkio_weight(&self, weight: u16) -> Result<(), Error> {
        if !(10..=1000).contains(&weight) {
            return Err(Error::InvalidResources(
                "blkio weight must be between 10 and 1000",
            ));
        }
        let (dir, v2) = self.controller_dir(BLKIO, "blkio")?;
        // Which file exists depends on the I/O scheduler: CFQ's blkio.weight is gone from
        // modern kernels, BFQ offers its own on both versions.
        let candidates: [(&str, Fmt); 2] = if v2 {
            // io.weight is 1..=10000; io.bfq.weight keeps the blkio scale.
            let scaled = 1 + (u32::from(weight) - 10) * 9999 / 990;
            [
                ("io.bfq.weight", Fmt::new(format_args!("{weight}"))),
                ("io.weight", Fmt::new(format_args!("default {scaled}"))),
            ]
        } else {
            [
                ("blkio.weight", Fmt::new(format_args!("{weight}"))),
                ("blkio.bfq.weight", Fmt::new(format_args!("{weight}"))),
            ]
        };
        for (file, value) in &candidates {
            if Self::set_optional(dir, file, value.bytes())? {
                return Ok(());
            }
        }
        Err(Error::Unsupported {
            // Neither CFQ's nor BFQ's weight file: the disk's I/O scheduler has no weights.
            controller: "blkio weight",
            path: dir.to_path_buf(),
        })
    }

    /// leafWeight and per-device weights. Like the cgroup-wide weight, which file takes them
    /// depends on the disk's I/O scheduler, so the first that exists is written.
    fn apply_blkio_more(&self, res: &Resources) -> Result<(), Error> {
        let leaf = res.blkio_leaf_weight.filter(|w| *w != 0);
        if leaf.is_none() && res.blkio_weight_devices.is_empty() {
            return Ok(());
        }
        let valid = |w: u16| {
            if (10..=1000).contains(&w) {
                Ok(w)
            } else {
                Err(Error::InvalidResources(
                    "blkio weights must be between 10 and 1000",
                ))
            }
        };
        let (dir, v2) = self.controller_dir(BLKIO, "blkio")?;
        if let Some(w) = leaf {
            let w = valid(w)?;
            if v2 {
                return Err(self.unsupported("blkio leafWeight (cgroup v1 only)"));
            }
            let v = Fmt::new(format_args!("{w}"));
            Self::set_existing(dir, &["blkio.leaf_weight"], v.bytes(), "blkio leafWeight")?;
        }
        for d in &res.blkio_weight_devices {
            let (maj, min) = (d.major, d.minor);
            if let Some(w) = d.weight {
                let w = valid(w)?;
                if v2 {
                    // io.bfq.weight keeps the blkio scale, io.weight (iocost) is 1..=10000.
                    let bfq = Fmt::new(format_args!("{maj}:{min} {w}"));
                    let scaled = 1 + (u32::from(w) - 10) * 9999 / 990;
                    let cost = Fmt::new(format_args!("{maj}:{min} {scaled}"));
                    if !Self::set_if_exists(dir, "io.bfq.weight", bfq.bytes())?
                        && !Self::set_if_exists(dir, "io.weight", cost.bytes())?
                    {
                        return Err(Error::Unsupported {
                            controller: "blkio weightDevice (neither io.bfq.weight nor io.weight)",
                            path: dir.to_path_buf(),
                        });
                    }
                } else {
                    let v = Fmt::new(format_args!("{maj}:{min} {w}"));
                    Self::set_existing(
                        dir,
                        &["blkio.weight_device", "blkio.bfq.weight_device"],
                        v.bytes(),
                        "blkio weightDevice",
                    )?;
                }
            }
            if let Some(w) = d.leaf_weight {
                let w = valid(w)?;
                if v2 {
                    return Err(self.unsupported("blkio weightDevice leafWeight (cgroup v1 only)"));
                }
                let v = Fmt::new(format_args!("{maj}:{min} {w}"));
                Self::set_existing(
                    dir,
                    &["blkio.leaf_weight_device"],
                    v.bytes(),
                    "blkio weightDevice leafWeight",
                )?;
            }
        }
        Ok(())
    }

    /// Writes `value` to the first of `files` present in `dir`; none present means the kernel
    /// (or the disk's I/O scheduler) lacks the knob.
    fn set_existing(
        dir: &Path,
        files: &[&str],
        value: &[u8],
        what: &'static str,
    ) -> Result<(), Error> {
        for file in files {
            if Self::set_if_exists(dir, file, value)? {
                return Ok(());
            }
        }
        Err(Error::Unsupported {
            controller: what,
            path: dir.join(files[0]),
        })
    }

    /// Writes a file only if it exists (checked first, so the test tree, which creates files
    /// on write, sees the same answer as kernfs).
    fn set_if_exists(dir: &Path, file: &str, value: &[u8]) -> Result<bool, Error> {
        let path = dir.join(file);
        if !path.exists() {
            return Ok(false);
        }
        Self::set_optional(dir, file, value)
    }

    fn apply_rdma(&self, limits: &[RdmaLimit]) -> Result<(), Error> {
        if limits.is_empty() {
            return Ok(());
        }
        let (dir, _) = self.controller_dir(RDMA, "rdma")?;
        for l in limits {
            // The kernel parses the line by spaces and '='.
            if l.device.is_empty() || l.device.contains(|c: char| c.is_whitespace() || c == '=') {
                return Err(Error::InvalidResources(
                    "rdma device names must not be empty or contain spaces or '='",
                ));
            }
            if l.hca_handles.is_none() && l.hca_objects.is_none() {
                continue;
            }
            let mut line = l.device.clone();
            if let Some(h) = l.hca_handles {
                line.push_str(&format!(" hca_handle={h}"));
            }
            if let Some(o) = l.hca_objects {
                line.push_str(&format!(" hca_object={o}"));
            }
            // rdma.max is there whenever the controller is; the kernel refuses unknown devices.
            Self::set(dir, "rdma.max", line.as_bytes(), "rdma")?;
        }
        Ok(())
    }

    /// Applies a device rule list as the whole of the cgroup's device access (see
    /// [`Resources::devices`]).
    ///
    /// A v1 devices hierarchy, where there is one, decides alone: on a hybrid host the kernel
    /// checks both it and cgroup2's programs, so a program would only repeat the v1 rules at
    /// the cost of a verifier run per container. Without one (pure cgroup2, or a hybrid host
    /// that leaves the devices controller unmounted), the rules become an eBPF program on the
    /// cgroup2 directory.
    fn apply_devices(&self, rules: &[DeviceRule]) -> Result<(), Error> {
        let canonical = devices::Canonical::from_rules(rules)?;
        if let Some(dir) = self.v1_dir(DEVICES) {
            // The default goes first and drops the old exceptions, so the result does not
            // depend on what the cgroup had before (and a deny default closes everything
            // before the allowed devices are opened again).
            let writes = canonical.v1_writes();
            // Consecutive lines for the same file share one open (the exceptions all go to
            // one file).
            let mut rest = &writes[..];
            while let Some((file, _)) = rest.first() {
                let n = rest.iter().take_while(|(f, _)| f == file).count();
                let path = dir.join(file);
                if !fs::write_each(&path, rest[..n].iter().map(|(_, l)| l.as_bytes()))? {
                    return Err(Error::Unsupported {
                        controller: "devices",
                        path,
                    });
                }
                rest = &rest[n..];
            }
            return Ok(());
        }
        let dir = self.v2_dir().ok_or_else(|| Error::Unsupported {
            controller: "devices",
            path: self.paths.first().cloned().unwrap_or_default(),
        })?;
        let program = (!canonical.allows_all()).then(|| devices::program(&canonical));
        bpf::attach_device_program(dir, program.as_deref())
    }

    fn apply_memory(&self, res: &Resources) -> Result<(), Error> {
        // Docker treats 0 as "not set" for both.
        let memory = res.memory_limit.filter(|m| *m != 0);
        let swap = res.memory_swap.filter(|s| *s != 0);
        if let Some(r) = res.memory_reservation.filter(|r| *r != 0) {
            let (dir, v2) = self.controller_dir(MEMORY, "memory")?;
            let (file, value) = match (v2, r > 0) {
                (true, true) => ("memory.low", Fmt::new(format_args!("{r}"))),
                (true, false) => ("memory.low", Fmt::new(format_args!("max"))),
                (false, _) => (
                    "memory.soft_limit_in_bytes",
                    Fmt::new(format_args!("{}", r.max(-1))),
                ),
            };
            Self::set(dir, file, value.bytes(), "memory")?;
        }
        if memory.is_none() && swap.is_none() {
            return Ok(());
        }
        if let Some(s) = swap.filter(|s| *s > 0) {
            match memory {
                Some(m) if m > 0 && s >= m => {}
                Some(m) if m > 0 => {
                    return Err(Error::InvalidResources(
                        "memory_swap must not be smaller than memory_limit",
                    ))
                }
                _ => return Err(Error::InvalidResources("memory_swap needs a memory_limit")),
            }
        }
        let (dir, v2) = self.controller_dir(MEMORY, "memory")?;
        if v2 {
            if let Some(m) = memory {
                let value = if m > 0 {
                    Fmt::new(format_args!("{m}"))
                } else {
                    Fmt::new(format_args!("max"))
                };
                Self::set(dir, "memory.max", value.bytes(), "memory")?;
            }
            if let Some(s) = swap {
                // v2 limits swap alone, Docker's value is memory plus swap.
                let value = match memory {
                    Some(m) if s > 0 => Fmt::new(format_args!("{}", s - m)),
                    _ => Fmt::new(format_args!("max")),
                };
                Self::set_optional(dir, "memory.swap.max", value.bytes())?;
            }
            return Ok(());
        }
        let memory = memory.map(|m| Fmt::new(format_args!("{}", m.max(-1))));
        let swap = swap.map(|s| Fmt::new(format_args!("{}", s.max(-1))));
        if let Some(m) = &memory {
            let path = dir.join("memory.limit_in_bytes");
            match fs::write_raw(&path, m.bytes()) {
                Ok(()) => {}
                // The kernel keeps limit <= memsw limit at every step, so
                // raising both needs memsw first.
                Err(e) if fs::errno(&e) == libc::EINVAL && swap.is_some() => {
                    if let Some(s) = &swap {
                        Self::set_optional(dir, "memory.memsw.limit_in_bytes", s.bytes())?;
                    }
                    fs::write(&path, m.bytes())?;
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    return Err(Error::Unsupported {
                        controller: "memory",
                        path,
                    })
                }
                Err(e) => return Err(fs::write_err(&path, m.bytes(), e)),
            }
        }
        if let Some(s) = &swap {
            Self::set_optional(dir, "memory.memsw.limit_in_bytes", s.bytes())?;
        }
        Ok(())
    }

    fn apply_cpu(&self, res: &Resources) -> Result<(), Error> {
        // 0 means "not set" for all three, as in runc: Docker's update sends zeros for what it
        // leaves alone, and the kernel refuses a zero period or quota anyway.
        let shares = res.cpu_shares.filter(|s| *s != 0);
        let quota = res.cpu_quota.filter(|q| *q != 0);
        let period = res.cpu_period.filter(|p| *p != 0);
        if shares.is_none() && quota.is_none() && period.is_none() {
            return Ok(());
        }
        let (dir, v2) = self.controller_dir(CPU, "cpu")?;
        if v2 {
            if let Some(s) = shares {
                let s = s.clamp(2, 262_144);
                let weight = 1 + ((s - 2) * 9999) / 262_142;
                let value = Fmt::new(format_args!("{weight}"));
                Self::set(dir, "cpu.weight", value.bytes(), "cpu")?;
            }
            if quota.is_some() || period.is_some() {
                let value = match (quota.filter(|q| *q > 0), period) {
                    (Some(q), Some(p)) => Fmt::new(format_args!("{q} {p}")),
                    (Some(q), None) => Fmt::new(format_args!("{q}")),
                    (None, Some(p)) => Fmt::new(format_args!("max {p}")),
                    (None, None) => Fmt::new(format_args!("max")),
                };
                Self::set(dir, "cpu.max", value.bytes(), "cpu")?;
            }
            return Ok(());
        }
        if let Some(s) = shares {
            let value = Fmt::new(format_args!("{s}"));
            Self::set(dir, "cpu.shares", value.bytes(), "cpu")?;
        }
        // Period first: the quota is validated against the current period.
        if let Some(p) = period {
            let value = Fmt::new(format_args!("{p}"));
            Self::set(dir, "cpu.cfs_period_us", value.bytes(), "cpu")?;
        }
        if let Some(q) = quota {
            let value = Fmt::new(format_args!("{}", if q > 0 { q } else { -1 }));
            Self::set(dir, "cpu.cfs_quota_us", value.bytes(), "cpu")?;
        }
        Ok(())
    }

    /// Processes currently in this cgroup or its descendants, sorted.
    pub fn pids(&self) -> Result<Vec<i32>, Error> {
        let mut out = Vec::new();
        let mut buf = Vec::new();
        for dir in &self.paths {
            collect_pids(dir, &mut out, &mut buf)?;
        }
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    /// Freezer control for this cgroup: the v1 freezer hierarchy if mounted,
    /// else cgroup2's core freezer. Returns the file written, or `None` if
    /// no freezer exists.
    fn set_frozen(&self, frozen: bool) -> Result<Option<PathBuf>, Error> {
        let (path, value): (PathBuf, &[u8]) = if let Some(dir) = self.v1_dir(FREEZER) {
            let v: &[u8] = if frozen { b"FROZEN" } else { b"THAWED" };
            (dir.join("freezer.state"), v)
        } else if let Some(dir) = self.v2_dir() {
            (dir.join("cgroup.freeze"), if frozen { b"1" } else { b"0" })
        } else {
            return Ok(None);
        };
        match fs::write_raw(&path, value) {
            Ok(()) => Ok(Some(path)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(fs::write_err(&path, value, e)),
        }
    }

    /// Freezes every process in the cgroup and waits until the kernel
    /// reports the cgroup frozen.
    pub fn freeze(&self) -> Result<(), Error> {
        let start = Instant::now();
        let mut delay = Duration::from_millis(1);
        let mut buf = Vec::new();
        loop {
            let Some(path) = self.set_frozen(true)? else {
                return Err(Error::Unsupported {
                    controller: "freezer",
                    path: self.paths.first().cloned().unwrap_or_default(),
                });
            };
            let (state, done): (PathBuf, fn(&str) -> bool) = if path.ends_with("freezer.state") {
                (path, |s| s.trim() == "FROZEN")
            } else {
                (path.with_file_name("cgroup.events"), |s| {
                    s.lines().any(|l| l.trim() == "frozen 1")
                })
            };
            match fs::read_small(&state, &mut buf) {
                Ok(s) if done(s) => return Ok(()),
                Ok(_) => {}
                Err(source) => {
                    return Err(Error::Read {
                        path: state,
                        error: source,
                    })
                }
            }
            if start.elapsed() >= FREEZE_TIMEOUT {
                let _ = self.set_frozen(false);
                return Err(Error::FreezeTimeout {
                    path: state,
                    waited: start.elapsed(),
                });
            }
            std::thread::sleep(delay);
            delay = (delay * 2).min(MAX_BACKOFF);
        }
    }

    /// Whether the cgroup is (being) frozen.
    pub fn is_frozen(&self) -> Result<bool, Error> {
        let mut buf = Vec::new();
        let (path, frozen): (PathBuf, fn(&str) -> bool) = if let Some(dir) = self.v1_dir(FREEZER) {
            (dir.join("freezer.state"), |s| s.trim() != "THAWED")
        } else if let Some(dir) = self.v2_dir() {
            (dir.join("cgroup.freeze"), |s| s.trim() == "1")
        } else {
            return Ok(false);
        };
        match fs::read_small(&path, &mut buf) {
            Ok(s) => Ok(frozen(s)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(source) => Err(Error::Read {
                path,
                error: source,
            }),
        }
    }

    /// Thaws a cgroup frozen by [`freeze`](Self::freeze).
    pub fn thaw(&self) -> Result<(), Error> {
        self.set_frozen(false).map(drop)
    }

    /// SIGKILLs everything in the cgroup and waits (up to 10 s, as long as
    /// Docker's kill waits) until it is empty: a killed process still
    /// finishes the I/O it sleeps in, which a `--device-write-iops` limit
    /// can stretch to seconds.
    ///
    /// Uses cgroup2's `cgroup.kill` when available, which cannot race with
    /// forks or pid reuse. Otherwise the cgroup is frozen so nothing can fork
    /// while each pid is signalled, then thawed so the signals are delivered.
    pub fn kill_all(&self) -> Result<(), Error> {
        let start = Instant::now();
        let kill_file = self.v2_dir().map(|d| d.join("cgroup.kill"));
        let mut use_kill_file = kill_file.is_some();
        // SIGKILLed processes are usually gone within a few hundred µs.
        let mut delay = Duration::from_micros(200);
        let mut pids = self.pids()?;
        loop {
            if pids.is_empty() {
                return Ok(());
            }
            if start.elapsed() >= KILL_TIMEOUT {
                return Err(Error::KillTimeout {
                    path: self.paths.first().cloned().unwrap_or_default(),
                    remaining: pids.len(),
                    waited: start.elapsed(),
                });
            }
            if let Some(path) = kill_file.as_deref().filter(|_| use_kill_file) {
                match fs::write_raw(path, b"1") {
                    Ok(()) => {}
                    // Kernels before 5.14 have no cgroup.kill.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => use_kill_file = false,
                    Err(e) => return Err(fs::write_err(path, b"1", e)),
                }
            }
            if !use_kill_file {
                self.signal_frozen(&pids)?;
            }
            std::thread::sleep(delay);
            delay = (delay * 2).min(MAX_BACKOFF);
            pids = self.pids()?;
            // In hybrid mode a process may have been moved out of our
            // cgroup2 directory but not out of the v1 ones; cgroup.kill
            // cannot reach it there.
            if start.elapsed() >= Duration::from_millis(100) {
                use_kill_file = false;
            }
        }
    }

    fn signal_frozen(&self, pids: &[i32]) -> Result<(), Error> {
        // Best effort: an unfreezable cgroup still gets its signals.
        let frozen = self.set_frozen(true).ok().flatten().is_some();
        let mut result = Ok(());
        for &pid in pids {
            match nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            ) {
                Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
                Err(e) => {
                    result = Err(Error::Kill {
                        pid,
                        error: io::Error::from(e),
                    });
                    break;
                }
            }
        }
        // v1-frozen tasks only die once thawed.
        if frozen {
            self.set_frozen(false)?;
        }
        result
    }

    /// Removes every directory of this cgroup, including sub-cgroups the
    /// container created, deepest first. Directories that are already gone
    /// count as removed; busy ones are retried for about 1 s.
    pub fn remove(&self) -> Result<(), Error> {
        let deadline = Instant::now() + REMOVE_TIMEOUT;
        for dir in &self.paths {
            remove_tree(dir, deadline)?;
        }
        Ok(())
    }

    /// Current usage counters.
    pub fn stats(&self) -> Result<Stats, Error> {
        let mut buf = Vec::new();
        let mut stats = Stats::default();
        if let Ok((dir, v2)) = self.controller_dir(MEMORY, "memory") {
            let file = if v2 {
                "memory.current"
            } else {
                "memory.usage_in_bytes"
            };
            stats.memory_usage = read_u64(&dir.join(file), &mut buf)?;
        }
        if let Ok((dir, _)) = self.controller_dir(PIDS, "pids") {
            stats.pids_current = read_u64(&dir.join("pids.current"), &mut buf)?;
        }
        if let Ok((dir, v2)) = self.controller_dir(CPUACCT, "cpuacct") {
            if v2 {
                let path = dir.join("cpu.stat");
                match fs::read_small(&path, &mut buf) {
                    Ok(s) => {
                        stats.cpu_usage_ns = s
                            .lines()
                            .find_map(|l| l.strip_prefix("usage_usec "))
                            .and_then(|v| v.trim().parse::<u64>().ok())
                            .map(|us| us.saturating_mul(1000));
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(source) => {
                        return Err(Error::Read {
                            path,
                            error: source,
                        })
                    }
                }
            } else {
                stats.cpu_usage_ns = read_u64(&dir.join("cpuacct.usage"), &mut buf)?;
            }
        }
        Ok(stats)
    }
}

/// Reads a single-number cgroup file; missing files and "max" give `None`.
fn read_u64(path: &Path, buf: &mut Vec<u8>) -> Result<Option<u64>, Error> {
    match fs::read_small(path, buf) {
        Ok(s) => Ok(s.trim().parse().ok()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(Error::Read {
            path: path.to_path_buf(),
            error: source,
        }),
    }
}

fn collect_pids(dir: &Path, out: &mut Vec<i32>, buf: &mut Vec<u8>) -> Result<(), Error> {
    let path = dir.join("cgroup.procs");
    match fs::read_small(&path, buf) {
        Ok(s) => out.extend(s.lines().filter_map(|l| l.trim().parse::<i32>().ok())),
        // The cgroup is gone, or this is not a cgroup (stray directory).
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(Error::Read {
                path,
                error: source,
            })
        }
    }
    for sub in subdirs(dir)? {
        collect_pids(&sub, out, buf)?;
    }
    Ok(())
}

/// Child directories (sub-cgroups) of `dir`; none if `dir` is gone.
fn subdirs(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let read_err = |source| Error::Read {
        path: dir.to_path_buf(),
        error: source,
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(read_err(e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(read_err)?;
        if entry.file_type().map_err(read_err)?.is_dir() {
            out.push(entry.path());
        }
    }
    Ok(out)
}

fn remove_tree(dir: &Path, deadline: Instant) -> Result<(), Error> {
    let mut delay = Duration::from_millis(1);
    loop {
        let err = match fs::rmdir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => e,
        };
        if fs::errno(&err) != libc::EBUSY {
            return Err(Error::Remove {
                path: dir.to_path_buf(),
                error: err,
            });
        }
        // EBUSY means live processes or child cgroups; only scan for the
        // latter on this slow path.
        let children = subdirs(dir)?;
        for child in &children {
            remove_tree(child, deadline)?;
        }
        if children.is_empty() {
            if Instant::now() >= deadline {
                return Err(Error::Remove {
                    path: dir.to_path_buf(),
                    error: err,
                });
            }
            std::thread::sleep(delay);
            delay = (delay * 2).min(MAX_BACKOFF);
        }
    }
}

#[cfg(test)]
mod tests;
