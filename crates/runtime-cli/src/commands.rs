//! The container life-cycle commands: create, start, run, state, kill, delete, list, ps,
//! pause and resume.

use crate::hooks;
use crate::state::{self, fifo_path, Container, Saved, Status};
use crate::{CreateArgs, ExecArgs, Logger};
use anyhow::{anyhow, bail, Context, Result};
use hako_cgroups::{Cgroup, CgroupSystem, DeviceRule, Resources};
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use oci_spec::runtime::Spec;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Everything `create` made, undone unless it completes.
struct Rollback {
    dir: Option<PathBuf>,
    cgroup: Option<Cgroup>,
    /// The root of a container without a mount namespace, whose mounts are ours to remove.
    host_mounts: Option<PathBuf>,
}

impl Rollback {
    fn disarm(&mut self) {
        self.dir = None;
        self.cgroup = None;
        self.host_mounts = None;
    }
}

impl Drop for Rollback {
    fn drop(&mut self) {
        if let Some(cg) = self.cgroup.take() {
            let _ = cg.kill_all();
            let _ = cg.remove();
        }
        if let Some(rootfs) = self.host_mounts.take() {
            let _ = hako_runtime::unmount_under(&rootfs);
        }
        if let Some(dir) = self.dir.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

pub(crate) fn load_spec(bundle: &Path) -> Result<Spec> {
    let path = bundle.join("config.json");
    let data = std::fs::read(&path).with_context(|| format!("read {}", path.display()))?;
    let spec: Spec =
        hako_runtime::parse_spec(&data).map_err(|e| anyhow!("invalid {}: {e}", path.display()))?;
    let major = spec.version().split('.').next().unwrap_or("");
    if major != "1" {
        bail!(
            "invalid {}: ociVersion {:?} is not supported (this runtime implements 1.x)",
            path.display(),
            spec.version()
        );
    }
    Ok(spec)
}

fn has_namespace(spec: &Spec, typ: oci_spec::runtime::LinuxNamespaceType) -> bool {
    spec.linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|ns| ns.iter().any(|n| n.typ() == typ))
}

fn has_cgroups_path(spec: &Spec) -> bool {
    spec.linux()
        .as_ref()
        .and_then(|l| l.cgroups_path().as_ref())
        .is_some_and(|p| !p.as_os_str().is_empty())
}

fn is_device_error(e: &hako_cgroups::Error) -> bool {
    match e {
        hako_cgroups::Error::Bpf { .. } => true,
        hako_cgroups::Error::Write { path, .. } => path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("devices.")),
        _ => false,
    }
}

/// A container without a cgroup: runc refuses any limit it asks for, naming the limit
/// (`cannot set memory limit: container could not join or create cgroup`); its device rules
/// hold where the container cannot create device nodes (a user namespace), except for a
/// device node the spec binds in that the rules deny, which only a cgroup could enforce.
fn check_without_cgroup(spec: &Spec, res: Option<&Resources>, why: &str) -> Result<()> {
    let Some(res) = res else { return Ok(()) };
    if let Some((limit, _)) = hako_cgroups::rootless::requested_limits(res).first() {
        bail!("cannot set {limit}: container could not join or create cgroup ({why})");
    }
    if let Some(r) = spec.linux().as_ref().and_then(|l| l.resources().as_ref()) {
        let x = extras(r);
        if x.kernel.is_some() || x.kernel_tcp.is_some() || x.cpu_burst.is_some() {
            bail!("cannot set the kernel memory or cpu burst limit: container could not join or create cgroup ({why})");
        }
    }
    let Some(rules) = &res.devices else {
        return Ok(());
    };
    if !has_namespace(spec, oci_spec::runtime::LinuxNamespaceType::User) {
        bail!("cannot apply linux.resources.devices: container could not join or create cgroup, and without a user namespace it could create any device node ({why})");
    }
    for m in spec.mounts().iter().flatten() {
        let Some(src) = m.source() else { continue };
        let Ok(meta) = std::fs::metadata(src) else {
            continue;
        };
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        let ft = meta.file_type();
        let kind = if ft.is_char_device() {
            'c'
        } else if ft.is_block_device() {
            'b'
        } else {
            continue;
        };
        let (major, minor) = (
            nix::sys::stat::major(meta.rdev()) as u32,
            nix::sys::stat::minor(meta.rdev()) as u32,
        );
        if !hako_cgroups::rootless::rules_allow(rules, kind, major, minor)
            .context("linux.resources.devices")?
        {
            bail!(
                "mount of device {} ({kind} {major}:{minor}) on {} is denied by linux.resources.devices, which cannot be enforced without a cgroup ({why})",
                src.display(),
                m.destination().display()
            );
        }
    }
    Ok(())
}

/// Where linux.cgroupsPath puts the container: `(parent, name)` for `CgroupSystem::create`.
fn cgroup_location(spec: &Spec, id: &str) -> Result<(Option<String>, String)> {
    let path = spec
        .linux()
        .as_ref()
        .and_then(|l| l.cgroups_path().as_ref())
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    if path.is_empty() {
        // Nested under the caller's cgroup, like a relative path: a runtime invoked from a
        // delegated subtree must stay inside it.
        return Ok((None, id.to_owned()));
    }
    if path.contains(':') {
        bail!("linux.cgroupsPath {path:?} is in systemd's slice:prefix:name form, which needs the systemd cgroup driver (not supported yet)");
    }
    if let Some(abs) = path.strip_prefix('/') {
        let abs = abs.trim_end_matches('/');
        return Ok(match abs.rsplit_once('/') {
            Some((parent, name)) => (Some(format!("/{parent}")), name.to_owned()),
            None if abs.is_empty() => bail!("linux.cgroupsPath must not be the root cgroup"),
            None => (Some("/".to_owned()), abs.to_owned()),
        });
    }
    Ok((None, path))
}

/// runc allows these on top of the spec's device rules, as every container needs them.
const DEFAULT_DEVICE_RULES: [(char, Option<i64>, Option<i64>, &str); 11] = [
    ('c', None, None, "m"),
    ('b', None, None, "m"),
    ('c', Some(1), Some(3), "rwm"),
    ('c', Some(1), Some(8), "rwm"),
    ('c', Some(1), Some(7), "rwm"),
    ('c', Some(5), Some(0), "rwm"),
    ('c', Some(1), Some(5), "rwm"),
    ('c', Some(1), Some(9), "rwm"),
    ('c', Some(5), Some(1), "rwm"),
    ('c', Some(136), None, "rwm"),
    ('c', Some(5), Some(2), "rwm"),
];

/// The cgroup limits of `linux.resources`, without the device rules (which need the spec's
/// device list: see [`device_rules`]).
pub(crate) fn limits(r: &oci_spec::runtime::LinuxResources) -> Result<Resources> {
    let mut out = Resources::default();
    if let Some(m) = r.memory() {
        out.memory_limit = m.limit();
        out.memory_swap = m.swap();
        out.memory_reservation = m.reservation();
        out.memory_swappiness = m.swappiness();
        out.disable_oom_killer = m.disable_oom_killer() == Some(true);
    }
    if let Some(c) = r.cpu() {
        out.cpu_shares = c.shares();
        out.cpu_quota = c.quota();
        out.cpu_period = c.period();
        out.cpuset_cpus = c.cpus().clone().filter(|s| !s.is_empty());
        out.cpuset_mems = c.mems().clone().filter(|s| !s.is_empty());
        out.cpu_rt_runtime = c.realtime_runtime().filter(|v| *v != 0);
        out.cpu_rt_period = c.realtime_period().filter(|v| *v != 0);
        out.cpu_idle = c.idle().filter(|v| *v != 0);
    }
    if let Some(p) = r.pids() {
        // 0 is "not set", as in runc (containerd passes Docker's unset limit as 0).
        out.pids_limit = Some(p.limit()).filter(|l| *l != 0);
    }
    if let Some(b) = r.block_io() {
        use hako_cgroups::{Throttle, ThrottleKind as K, WeightDevice};
        out.blkio_weight = b.weight().filter(|w| *w != 0);
        out.blkio_leaf_weight = b.leaf_weight().filter(|w| *w != 0);
        for d in b.weight_device().iter().flatten() {
            out.blkio_weight_devices.push(WeightDevice {
                major: d.major(),
                minor: d.minor(),
                weight: d.weight(),
                leaf_weight: d.leaf_weight(),
            });
        }
        for (kind, list) in [
            (K::ReadBps, b.throttle_read_bps_device()),
            (K::WriteBps, b.throttle_write_bps_device()),
            (K::ReadIops, b.throttle_read_iops_device()),
            (K::WriteIops, b.throttle_write_iops_device()),
        ] {
            for d in list.iter().flatten() {
                out.blkio_throttle.push(Throttle {
                    kind,
                    major: d.major(),
                    minor: d.minor(),
                    rate: d.rate(),
                });
            }
        }
    }
    for h in r.hugepage_limits().iter().flatten() {
        out.hugepage_limits.push((h.page_size().clone(), h.limit()));
    }
    if let Some(n) = r.network() {
        out.net_class_id = n.class_id();
        for p in n.priorities().iter().flatten() {
            out.net_priorities.push((p.name().clone(), p.priority()));
        }
    }
    if let Some(rdma) = r.rdma() {
        let mut limits: Vec<hako_cgroups::RdmaLimit> = rdma
            .iter()
            .map(|(device, l)| hako_cgroups::RdmaLimit {
                device: device.clone(),
                hca_handles: l.hca_handles(),
                hca_objects: l.hca_objects(),
            })
            .collect();
        // A map in the spec: write in a stable order.
        limits.sort_by(|a, b| a.device.cmp(&b.device));
        out.rdma = limits;
    }
    if let Some(u) = r.unified() {
        let mut u: Vec<(String, String)> = u.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        u.sort();
        out.unified = u;
    }
    Ok(out)
}

/// Settings of `linux.resources` that `hako_cgroups::Resources` does not carry: written here,
/// to the container's own cgroup files, after `Cgroup::apply`.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct Extras {
    /// `memory.kernel`: v1 `memory.kmem.limit_in_bytes`.
    kernel: Option<i64>,
    /// `memory.kernelTCP`: v1 `memory.kmem.tcp.limit_in_bytes`.
    kernel_tcp: Option<i64>,
    /// `memory.useHierarchy`: v1 `memory.use_hierarchy`.
    use_hierarchy: Option<bool>,
    /// `cpu.burst`: v1 `cpu.cfs_burst_us`, v2 `cpu.max.burst`.
    cpu_burst: Option<u64>,
    /// `memory.checkBeforeUpdate`: `update` refuses a limit below the current usage.
    pub check_before_update: bool,
}

pub(crate) fn extras(r: &oci_spec::runtime::LinuxResources) -> Extras {
    let mut out = Extras::default();
    if let Some(m) = r.memory() {
        out.kernel = m.kernel().filter(|v| *v != 0);
        out.kernel_tcp = m.kernel_tcp().filter(|v| *v != 0);
        out.use_hierarchy = m.use_hierarchy();
        out.check_before_update = m.check_before_update() == Some(true);
    }
    if let Some(c) = r.cpu() {
        out.cpu_burst = c.burst();
    }
    out
}

/// The directory of the first hierarchy that has `controller`, and whether it is cgroup2.
fn controller_dir(cg: &Cgroup, controller: &str) -> Option<(PathBuf, bool)> {
    let views = cg.views();
    views
        .iter()
        .find(|v| !v.unified && v.name.split(',').any(|c| c == controller))
        .or_else(|| {
            views.iter().find(|v| {
                v.unified
                    && std::fs::read_to_string(v.dir.join("cgroup.controllers"))
                        .is_ok_and(|c| c.split_whitespace().any(|c| c == controller))
            })
        })
        .map(|v| (v.dir.clone(), v.unified))
}

/// A v1 byte limit: written, then read back, since the kernel may accept a write that does
/// nothing (kernel memory limits since Linux 5.16). Returns a warning when it did not apply.
fn byte_limit(dir: &Path, file: &str, what: &str, value: i64) -> Result<Option<String>> {
    let path = dir.join(file);
    if !path.exists() {
        return Ok(Some(format!(
            "linux.resources.memory.{what} is ignored: this kernel has no {file}"
        )));
    }
    std::fs::write(&path, value.to_string())
        .with_context(|| format!("linux.resources.memory.{what}: write {}", path.display()))?;
    let got: i64 = std::fs::read_to_string(&path)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(-1);
    // The kernel rounds a limit down to whole pages; -1 (no limit) reads back as a huge value.
    let applied = if value < 0 {
        got >= i64::MAX / 2
    } else {
        got <= value && value - got < 1 << 16
    };
    Ok((!applied).then(|| {
        format!(
            "linux.resources.memory.{what} is ignored: this kernel accepts {file} but does not enforce it"
        )
    }))
}

/// Applies [`Extras`]; returns warnings for what this host ignores, as runc warns.
pub(crate) fn apply_extras(cg: &Cgroup, x: &Extras) -> Result<Vec<String>> {
    let mut warnings = Vec::new();
    if x.kernel.is_none()
        && x.kernel_tcp.is_none()
        && x.use_hierarchy.is_none()
        && x.cpu_burst.is_none()
    {
        return Ok(warnings);
    }
    let memory = controller_dir(cg, "memory");
    for (value, file, what) in [
        (x.kernel, "memory.kmem.limit_in_bytes", "kernel"),
        (x.kernel_tcp, "memory.kmem.tcp.limit_in_bytes", "kernelTCP"),
    ] {
        let Some(value) = value else { continue };
        match &memory {
            Some((dir, false)) => warnings.extend(byte_limit(dir, file, what, value)?),
            Some((_, true)) => warnings.push(format!(
                "linux.resources.memory.{what} is ignored: cgroup v2 has no such limit"
            )),
            None => warnings.push(format!(
                "linux.resources.memory.{what} is ignored: no memory cgroup controller"
            )),
        }
    }
    if let Some(h) = x.use_hierarchy {
        match &memory {
            Some((dir, false)) => {
                let path = dir.join("memory.use_hierarchy");
                std::fs::write(&path, if h { "1" } else { "0" }).with_context(|| {
                    format!(
                        "linux.resources.memory.useHierarchy {h}: write {}",
                        path.display()
                    )
                })?;
            }
            // cgroup v2 is always hierarchical.
            _ if h => {}
            _ => bail!("linux.resources.memory.useHierarchy false: cgroup v2 memory accounting is always hierarchical"),
        }
    }
    if let Some(burst) = x.cpu_burst {
        let (dir, unified) = controller_dir(cg, "cpu")
            .ok_or_else(|| anyhow!("linux.resources.cpu.burst: no cpu cgroup controller"))?;
        let file = if unified {
            "cpu.max.burst"
        } else {
            "cpu.cfs_burst_us"
        };
        let path = dir.join(file);
        std::fs::write(&path, burst.to_string())
            .with_context(|| format!("linux.resources.cpu.burst: write {}", path.display()))?;
    }
    Ok(warnings)
}

fn resources(spec: &Spec) -> Result<Option<Resources>> {
    let Some(linux) = spec.linux() else {
        return Ok(None);
    };
    let Some(r) = linux.resources() else {
        return Ok(None);
    };
    let mut out = limits(r)?;
    out.devices = device_rules(r, linux.devices().as_deref().unwrap_or(&[]));
    Ok(Some(out))
}

/// The device rules of `linux.resources.devices` as runc applies them: the spec's rules, then
/// runc's always-allowed devices, then the nodes the spec asks to create. `None` when the
/// resources name no devices (the cgroup's device access is then left alone).
pub(crate) fn device_rules(
    r: &oci_spec::runtime::LinuxResources,
    nodes: &[oci_spec::runtime::LinuxDevice],
) -> Option<Vec<DeviceRule>> {
    let devs = r.devices().as_ref()?;
    let mut rules = Vec::new();
    for d in devs {
        use oci_spec::runtime::LinuxDeviceType as T;
        let kind = match d.typ() {
            None | Some(T::A) => 'a',
            Some(T::C) | Some(T::U) => 'c',
            Some(T::B) => 'b',
            Some(T::P) => continue,
        };
        rules.push(DeviceRule {
            allow: d.allow(),
            kind,
            major: d.major(),
            minor: d.minor(),
            access: d.access().clone().unwrap_or_else(|| "rwm".into()),
        });
    }
    for (kind, major, minor, access) in DEFAULT_DEVICE_RULES {
        rules.push(DeviceRule {
            allow: true,
            kind,
            major,
            minor,
            access: access.into(),
        });
    }
    // The devices the spec asks us to create must be usable.
    for d in nodes {
        use oci_spec::runtime::LinuxDeviceType as T;
        let kind = match d.typ() {
            T::C | T::U => 'c',
            T::B => 'b',
            _ => continue,
        };
        rules.push(DeviceRule {
            allow: true,
            kind,
            major: Some(d.major()),
            minor: Some(d.minor()),
            access: "rwm".into(),
        });
    }
    Some(rules)
}

/// runc creates these in every container, whether the spec lists them or not.
fn add_default_devices(spec: &mut Spec) -> Result<()> {
    use oci_spec::runtime::{LinuxDeviceBuilder, LinuxDeviceType};
    let mut linux = spec.linux().clone().unwrap_or_default();
    let mut devices = linux.devices().clone().unwrap_or_default();
    for (path, major, minor) in hako_runtime::DEFAULT_DEVICES {
        if devices.iter().any(|d| d.path() == Path::new(path)) {
            continue;
        }
        devices.push(
            LinuxDeviceBuilder::default()
                .path(path)
                .typ(LinuxDeviceType::C)
                .major(major)
                .minor(minor)
                .file_mode(0o666u32)
                .uid(0u32)
                .gid(0u32)
                .build()
                .context("default device")?,
        );
    }
    linux.set_devices(Some(devices));
    spec.set_linux(Some(linux));
    Ok(())
}

/// Refuses what the library would otherwise silently skip.
fn check_supported(spec: &Spec, args: &CreateArgs) -> Result<()> {
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| anyhow!("invalid config.json: process is missing"))?;
    if process.terminal() == Some(true) && args.console_socket.is_none() {
        bail!("process.terminal is true but no --console-socket was given");
    }
    if process.terminal() != Some(true) && args.console_socket.is_some() {
        bail!("--console-socket was given but process.terminal is not true");
    }
    if let Some(h) = spec.hooks() {
        let lists = [
            ("prestart", h.prestart()),
            ("createRuntime", h.create_runtime()),
            ("createContainer", h.create_container()),
            ("startContainer", h.start_container()),
            ("poststart", h.poststart()),
            ("poststop", h.poststop()),
        ];
        for (kind, list) in lists {
            for hook in list.iter().flatten() {
                if let Some(t) = hook.timeout().filter(|t| *t <= 0) {
                    bail!(
                        "hooks.{kind} {}: timeout must be greater than zero, not {t}",
                        hook.path().display()
                    );
                }
            }
        }
    }
    Ok(())
}

/// A prepared, not yet started container and what `run` needs to finish it.
struct Made {
    created: hako_runtime::Created,
    container: Container,
    rollback: Rollback,
}

fn make(root: &Path, args: &CreateArgs, rootless: bool, logger: &Logger) -> Result<Made> {
    state::validate_id(&args.id)?;
    let bundle = std::fs::canonicalize(&args.bundle)
        .with_context(|| format!("bundle {}", args.bundle.display()))?;
    let mut spec = load_spec(&bundle)?;
    check_supported(&spec, args)?;
    let rootfs = {
        let r = spec
            .root()
            .as_ref()
            .ok_or_else(|| anyhow!("invalid config.json: root is missing"))?;
        let p = bundle.join(r.path());
        if !p.is_dir() {
            bail!(
                "root.path {} does not exist or is not a directory",
                p.display()
            );
        }
        let p = std::fs::canonicalize(&p)?;
        let mut r = r.clone();
        r.set_path(p.clone());
        spec.set_root(Some(r));
        p
    };
    add_default_devices(&mut spec)?;
    let res = resources(&spec)?;
    let (cg_parent, cg_name) = cgroup_location(&spec, &args.id)?;

    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(root)
        .with_context(|| format!("create {}", root.display()))?;
    let dir = root.join(&args.id);
    match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            bail!("container with id {} already exists", args.id)
        }
        Err(e) => return Err(e).with_context(|| format!("create {}", dir.display())),
    }
    let host_mounts = !has_namespace(&spec, oci_spec::runtime::LinuxNamespaceType::Mount);
    let mut rollback = Rollback {
        dir: Some(dir.clone()),
        cgroup: None,
        host_mounts: host_mounts.then(|| rootfs.clone()),
    };

    let system = CgroupSystem::detect().context("detect cgroups")?;
    let cgroup = match system.create(cg_parent.as_deref(), &cg_name) {
        Ok(cg) => Some(cg),
        // runc's rootless rule: a container that names no cgroups path runs without a
        // cgroup when the user may not make one; limits it asks for then fail below.
        Err(e)
            if rootless
                && !has_cgroups_path(&spec)
                && hako_cgroups::rootless::is_rootless_ignorable(&e) =>
        {
            let why = match system.rootless_driver(nix::unistd::geteuid().as_raw()) {
                hako_cgroups::rootless::Driver::None(reason) => format!("{e}; {reason}"),
                _ => e.to_string(),
            };
            logger.log("debug", &format!("no cgroup: {why}"));
            check_without_cgroup(&spec, res.as_ref(), &why)?;
            None
        }
        Err(e) => return Err(e).context("create cgroup"),
    };
    rollback.cgroup = cgroup.clone();
    if let Some(cgroup) = &cgroup {
        if let Some(res) = &res {
            let applied = cgroup.apply(res);
            match applied {
                // As runc: a rootless container's device rules may fail to apply (a
                // cgroup v2 subtree without the right to attach device programs).
                Err(e) if rootless && res.devices.is_some() && is_device_error(&e) => {
                    let mut rest = res.clone();
                    rest.devices = None;
                    cgroup.apply(&rest).context("apply linux.resources")?;
                    logger.warn(&format!("linux.resources.devices not applied: {e}"));
                }
                r => r.context("apply linux.resources")?,
            }
        }
        if let Some(r) = spec.linux().as_ref().and_then(|l| l.resources().as_ref()) {
            for w in apply_extras(cgroup, &extras(r))? {
                logger.warn(&w);
            }
        }
        logger.log("debug", &format!("cgroup {}", cgroup.relative_path()));
    }

    let mut saved = Saved {
        id: args.id.clone(),
        pid: 0,
        pid_start: 0,
        bundle: bundle.clone(),
        rootfs,
        created: state::rfc3339_now(),
        owner: String::new(),
        annotations: spec
            .annotations()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect(),
        cgroup_dirs: cgroup
            .as_ref()
            .map(|c| c.paths().to_vec())
            .unwrap_or_default(),
        hooks: spec.hooks().clone(),
        host_mounts,
    };

    // prestart (deprecated) and createRuntime hooks run in the runtime's namespaces once the
    // container's namespaces exist.
    let hooks_before = saved.hooks.clone();
    let state_for_hooks = |pid: i32| -> Result<(), String> {
        let Some(h) = &hooks_before else {
            return Ok(());
        };
        let mut s = saved.clone();
        s.pid = pid;
        let c = Container {
            dir: dir.clone(),
            saved: s,
        };
        let mut json =
            serde_json::to_value(c.oci_state(Status::Created)).map_err(|e| e.to_string())?;
        json["status"] = "creating".into();
        let json = json.to_string();
        hooks::run("prestart", h.prestart().as_ref(), json.as_bytes())
            .and_then(|()| {
                hooks::run(
                    "createRuntime",
                    h.create_runtime().as_ref(),
                    json.as_bytes(),
                )
            })
            .map_err(|e| format!("{e:#}"))
    };
    // The container allocates its pty from its own devpts and sends the master straight to
    // the caller's console socket before it runs anything, as runc does.
    let console = match &args.console_socket {
        Some(sock) => Some(connect_console(sock)?),
        None => None,
    };
    // The library adds status and pid for the hooks it runs in the container's namespaces.
    let hook_state = {
        let c = Container {
            dir: dir.clone(),
            saved: saved.clone(),
        };
        let mut v = serde_json::to_value(c.oci_state(Status::Created))?;
        if let Some(o) = v.as_object_mut() {
            o.remove("status");
            o.remove("pid");
        }
        v.to_string()
    };
    let seccomp_cache = seccomp_cache_dir(root);
    let opts = hako_runtime::SpawnOptions {
        console_socket: console.as_ref().map(std::os::fd::AsFd::as_fd),
        cgroup: cgroup.as_ref(),
        hook_state: Some(&hook_state),
        stdin: hako_runtime::Stdin::Inherit,
        kill_with_parent: false,
        preserve_fds: args.preserve_fds,
        no_pivot: args.no_pivot,
        new_session_keyring: !args.no_new_keyring,
        before_start: Some(&state_for_hooks),
        seccomp_cache: Some(&seccomp_cache),
        ..Default::default()
    };
    let created = hako_runtime::create(&spec, &opts, &fifo_path(&dir))?;
    for w in created.warnings() {
        logger.warn(w);
    }
    saved.pid = created.pid();
    saved.pid_start = hako_base::proc::start_time(saved.pid)
        .ok_or_else(|| anyhow!("the container process exited during creation"))?;
    let container = Container { dir, saved };
    container.save()?;
    if let Some(pid_file) = &args.pid_file {
        write_pid_file(pid_file, container.saved.pid)?;
    }
    Ok(Made {
        created,
        container,
        rollback,
    })
}

/// Connects to the caller's console socket; the container sends its terminal's master there
/// (SCM_RIGHTS, with the slave's name as payload, like runc).
fn connect_console(socket: &Path) -> Result<std::os::fd::OwnedFd> {
    use nix::sys::socket::{
        connect, socket as mksocket, AddressFamily, SockFlag, SockType, UnixAddr,
    };
    use std::os::fd::AsRawFd;
    let sock = mksocket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .context("create a unix socket")?;
    let addr = UnixAddr::new(socket).context("console socket path")?;
    connect(sock.as_raw_fd(), &addr)
        .with_context(|| format!("connect to console socket {}", socket.display()))?;
    Ok(sock)
}

/// Written to a temporary name and renamed, so a reader never sees a partial pid.
fn write_pid_file(path: &Path, pid: i32) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, pid.to_string()).with_context(|| format!("write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("write {}", path.display()))
}

pub fn create(root: &Path, args: &CreateArgs, rootless: bool, logger: &Logger) -> Result<()> {
    let mut made = make(root, args, rootless, logger)?;
    made.rollback.disarm();
    made.created.detach();
    Ok(())
}

pub fn start(root: &Path, id: &str, logger: &Logger) -> Result<()> {
    let c = Container::load(root, id)?;
    match c.status() {
        Status::Created => {}
        Status::Stopped => bail!("cannot start container {id}: it is stopped"),
        s => bail!("cannot start container {id}: it is already {}", s.as_str()),
    }
    start_created(&c, logger)
}

fn start_created(c: &Container, logger: &Logger) -> Result<()> {
    hako_runtime::start(&fifo_path(&c.dir), c.saved.pid).map_err(|e| match e {
        hako_runtime::Error::NotCreated => anyhow!(
            "cannot start container {}: it is not in the created state",
            c.saved.id
        ),
        e => anyhow!(e),
    })?;
    if let Some(h) = &c.saved.hooks {
        let json = serde_json::to_string(&c.oci_state(Status::Running))?;
        for w in hooks::run_all("poststart", h.poststart().as_ref(), json.as_bytes()) {
            logger.warn(&w);
        }
    }
    Ok(())
}

pub fn run(
    root: &Path,
    args: &CreateArgs,
    detach: bool,
    keep: bool,
    rootless: bool,
    logger: &Logger,
) -> Result<i32> {
    let mut made = make(root, args, rootless, logger)?;
    if detach {
        start_created(&made.container, logger)?;
        made.rollback.disarm();
        made.created.detach();
        return Ok(0);
    }
    // In the foreground this process stays the container's parent: it relays signals and
    // reaps it, then cleans up like `delete`.
    let running = made.created.into_running();
    let result = start_created(&made.container, logger).and_then(|()| {
        // runc run relays signals for as long as the container lives, with no stop timeout.
        running
            .wait(Duration::from_secs(u32::MAX.into()))
            .map_err(anyhow::Error::from)
    });
    made.rollback.disarm();
    if keep {
        return result.map(|s| s.code());
    }
    let cleaned = destroy(&made.container, logger);
    let status = result?;
    cleaned?;
    Ok(status.code())
}

/// The process `exec` runs: `--process` verbatim, or the container's own process with the
/// command and flags applied (as runc does).
fn exec_process(spec: &Spec, args: &ExecArgs) -> Result<oci_spec::runtime::Process> {
    if let Some(file) = &args.process {
        let data = std::fs::read(file).with_context(|| format!("read {}", file.display()))?;
        return hako_runtime::parse_process(&data)
            .map_err(|e| anyhow!("invalid process file {}: {e}", file.display()));
    }
    if args.command.is_empty() {
        bail!("exec needs a command or --process");
    }
    let mut p = spec.process().clone().unwrap_or_default();
    p.set_args(Some(args.command.clone()));
    p.set_terminal(Some(args.tty));
    if let Some(cwd) = &args.cwd {
        p.set_cwd(cwd.into());
    }
    let mut env = p.env().clone().unwrap_or_default();
    env.extend(args.env.iter().cloned());
    p.set_env(Some(env));
    if let Some(u) = &args.user {
        let (uid, gid) = match u.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (u.as_str(), None),
        };
        let mut user = p.user().clone();
        user.set_uid(
            uid.parse()
                .map_err(|_| anyhow!("--user {u:?}: use uid[:gid]"))?,
        );
        if let Some(g) = gid {
            user.set_gid(
                g.parse()
                    .map_err(|_| anyhow!("--user {u:?}: use uid[:gid]"))?,
            );
        }
        p.set_user(user);
    }
    if !args.cap.is_empty() {
        let mut caps = p.capabilities().clone().unwrap_or_default();
        let mut extra = std::collections::HashSet::new();
        for c in &args.cap {
            let name = c.to_ascii_uppercase();
            let name = name.strip_prefix("CAP_").unwrap_or(&name);
            extra.insert(
                name.parse::<oci_spec::runtime::Capability>()
                    .map_err(|_| anyhow!("unknown capability {c:?}"))?,
            );
        }
        let add = |set: &Option<oci_spec::runtime::Capabilities>| {
            let mut s = set.clone().unwrap_or_default();
            s.extend(extra.iter().cloned());
            Some(s)
        };
        caps.set_bounding(add(caps.bounding()));
        caps.set_effective(add(caps.effective()));
        caps.set_permitted(add(caps.permitted()));
        p.set_capabilities(Some(caps));
    }
    if args.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    Ok(p)
}

pub fn exec(root: &Path, args: &ExecArgs, logger: &Logger) -> Result<i32> {
    let c = Container::load(root, &args.id)?;
    match c.status() {
        Status::Running => {}
        s => bail!("cannot exec in container {}: it is {}", args.id, s.as_str()),
    }
    let mut spec = load_spec(&c.saved.bundle)?;
    let process = exec_process(&spec, args)?;
    if process.terminal() == Some(true) && args.console_socket.is_none() {
        bail!("a terminal needs --console-socket");
    }
    let mut r = spec.root().clone().unwrap_or_default();
    r.set_path(c.saved.rootfs.clone());
    spec.set_root(Some(r));
    let hako_runtime::ExecSpec {
        spec,
        enter_existing_root,
    } = hako_runtime::exec_spec(&spec, c.saved.pid, process);

    if has_namespace(&spec, oci_spec::runtime::LinuxNamespaceType::User) {
        hako_runtime::rootless::enter_user_namespace(c.saved.pid)?;
    }
    let cgroup = c.cgroup();
    let console = match &args.console_socket {
        Some(sock) => Some(connect_console(sock)?),
        None => None,
    };
    let seccomp_cache = seccomp_cache_dir(root);
    let joined_state = serde_json::to_string(&c.oci_state(Status::Running))?;
    let opts = hako_runtime::SpawnOptions {
        cgroup: cgroup.as_ref(),
        joined_state: Some(&joined_state),
        stdin: hako_runtime::Stdin::Inherit,
        kill_with_parent: false,
        preserve_fds: args.preserve_fds,
        console_socket: console.as_ref().map(std::os::fd::AsFd::as_fd),
        seccomp_cache: Some(&seccomp_cache),
        enter_existing_root,
        ..Default::default()
    };
    let running = hako_runtime::spawn(&spec, &opts)?;
    for w in running.warnings() {
        logger.warn(w);
    }
    if let Some(pid_file) = &args.pid_file {
        write_pid_file(pid_file, running.pid())?;
    }
    if args.detach {
        running.detach();
        return Ok(0);
    }
    Ok(running.wait(Duration::from_secs(u32::MAX.into()))?.code())
}

pub fn state(root: &Path, id: &str) -> Result<()> {
    let c = Container::load(root, id)?;
    let status = c.status();
    println!("{}", serde_json::to_string_pretty(&c.oci_state(status))?);
    Ok(())
}

/// A signal by name or number, from the one table (`KILL`, `SIGKILL`, `9`, `RTMIN+3`).
pub fn parse_signal(s: &str) -> Result<i32> {
    hako_base::signal::parse(s).ok_or_else(|| anyhow!("unknown signal {s:?}"))
}

/// Sends signal number `sig`, which may be a real-time one (nix's `Signal` names only the
/// standard ones).
fn send_signal(pid: i32, sig: i32) -> std::io::Result<()> {
    // SAFETY: kill(2) takes two integers and touches no memory of ours.
    if unsafe { libc::kill(pid, sig) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

pub fn kill(root: &Path, id: &str, signal: Option<&str>, all: bool) -> Result<()> {
    let sig = parse_signal(signal.unwrap_or("SIGTERM"))?;
    let c = Container::load(root, id)?;
    let status = c.status();
    if all {
        // runc signals whatever is left in the cgroup, even once the init has exited, and
        // succeeds when nothing is: containerd's shim relies on that to record the exit of a
        // pod's containers.
        if let Some(cg) = c.cgroup() {
            let pids = match cg.pids() {
                Ok(p) => p,
                Err(_) if status == Status::Stopped => Vec::new(),
                Err(e) => return Err(e).context("list the container's processes"),
            };
            for pid in pids {
                let _ = send_signal(pid, sig);
            }
            if status == Status::Paused && sig == libc::SIGKILL {
                // A frozen task dies only once thawed.
                cg.thaw().context("thaw the killed container")?;
            }
            return Ok(());
        }
        if status == Status::Stopped {
            return Ok(());
        }
        for pid in pids_in_pid_namespace(&c)? {
            let _ = send_signal(pid, sig);
        }
        return Ok(());
    }
    if status == Status::Stopped {
        // runc's words: the shim matches them to tell a finished process from a failure.
        bail!("cannot kill container {id}: container not running");
    }
    send_signal(c.saved.pid, sig).with_context(|| {
        let name = hako_base::signal::name(sig).unwrap_or_else(|| sig.to_string());
        format!("send {name} to pid {}", c.saved.pid)
    })?;
    if status == Status::Paused && sig == libc::SIGKILL {
        if let Some(cg) = c.cgroup() {
            cg.thaw().context("thaw the killed container")?;
        }
    }
    Ok(())
}

/// Kills whatever is left, removes the cgroup and the state directory, runs poststop hooks.
fn destroy(c: &Container, logger: &Logger) -> Result<()> {
    let cg = c.cgroup();
    if c.alive() {
        if let Some(cg) = &cg {
            let _ = cg.thaw();
        }
        let _ = nix::sys::signal::kill(Pid::from_raw(c.saved.pid), Signal::SIGKILL);
        let deadline = Instant::now() + Duration::from_secs(5);
        while c.alive() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    if let Some(cg) = &cg {
        cg.kill_all().context("kill the container's processes")?;
        cg.remove().context("remove the container's cgroup")?;
    }
    if c.saved.host_mounts {
        hako_runtime::unmount_under(&c.saved.rootfs)
            .context("unmount what the container mounted")?;
    }
    if let Some(h) = &c.saved.hooks {
        let json = serde_json::to_string(&c.oci_state(Status::Stopped))?;
        for w in hooks::run_all("poststop", h.poststop().as_ref(), json.as_bytes()) {
            logger.warn(&w);
        }
    }
    std::fs::remove_dir_all(&c.dir).with_context(|| format!("remove {}", c.dir.display()))
}

pub fn delete(root: &Path, id: &str, force: bool, logger: &Logger) -> Result<()> {
    let c = match Container::load(root, id) {
        Ok(c) => c,
        // runc: deleting a container that does not exist is fine with --force.
        Err(_) if force && state::validate_id(id).is_ok() && !root.join(id).exists() => {
            return Ok(())
        }
        Err(e) => return Err(e),
    };
    match c.status() {
        // A created container never ran anything; runc deletes it without --force.
        Status::Stopped | Status::Created => {}
        s if !force => bail!(
            "cannot delete container {id} that is not stopped: it is {} (use --force)",
            s.as_str()
        ),
        _ => {}
    }
    destroy(&c, logger)
}

/// Compiled seccomp programs, beside the containers' state directories. `@` cannot appear in a
/// container id, so no container can claim the name.
fn seccomp_cache_dir(root: &Path) -> PathBuf {
    root.join("@seccomp-cache")
}

fn containers(root: &Path) -> Result<Vec<Container>> {
    let entries = match std::fs::read_dir(root) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("read {}", root.display())),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        // Directories without a state file are creations in progress.
        if let Ok(c) = Container::load(root, &name) {
            out.push(c);
        }
    }
    out.sort_by(|a, b| a.saved.created.cmp(&b.saved.created));
    Ok(out)
}

pub fn list(root: &Path, format: &str, quiet: bool) -> Result<()> {
    let all = containers(root)?;
    if quiet {
        for c in &all {
            println!("{}", c.saved.id);
        }
        return Ok(());
    }
    match format {
        "json" => {
            let states: Vec<_> = all.iter().map(|c| c.oci_state(c.status())).collect();
            println!("{}", serde_json::to_string(&states)?);
        }
        "table" => {
            let rows: Vec<[String; 6]> = all
                .iter()
                .map(|c| {
                    let s = c.status();
                    [
                        c.saved.id.clone(),
                        if s == Status::Stopped { 0 } else { c.saved.pid }.to_string(),
                        s.as_str().to_owned(),
                        c.saved.bundle.display().to_string(),
                        c.saved.created.clone(),
                        c.saved.owner.clone(),
                    ]
                })
                .collect();
            let header = ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"].map(String::from);
            let mut widths = [0usize; 6];
            for row in std::iter::once(&header).chain(&rows) {
                for (w, cell) in widths.iter_mut().zip(row) {
                    *w = (*w).max(cell.len());
                }
            }
            for row in std::iter::once(&header).chain(&rows) {
                let mut line = String::new();
                for (i, cell) in row.iter().enumerate() {
                    if i + 1 < row.len() {
                        line.push_str(&format!("{cell:<w$}   ", w = widths[i]));
                    } else {
                        line.push_str(cell);
                    }
                }
                println!("{}", line.trim_end());
            }
        }
        other => bail!("invalid format {other:?}: use table or json"),
    }
    Ok(())
}

/// The container's processes when it has no cgroup (rootless without delegation): those in
/// its pid namespace, which the container's init made and which ends with it.
fn pids_in_pid_namespace(c: &Container) -> Result<Vec<i32>> {
    let ns_of = |pid: i32| std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok();
    let own = ns_of(nix::unistd::getpid().as_raw());
    let target = ns_of(c.saved.pid)
        .ok_or_else(|| anyhow!("read the pid namespace of pid {}", c.saved.pid))?;
    if Some(&target) == own.as_ref() {
        bail!(
            "container {} has neither a cgroup nor a pid namespace of its own: its processes cannot be told apart",
            c.saved.id
        );
    }
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").context("read /proc")? {
        let Ok(pid) = entry?.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if ns_of(pid).as_ref() == Some(&target) {
            pids.push(pid);
        }
    }
    pids.sort_unstable();
    Ok(pids)
}

pub fn ps(root: &Path, id: &str, format: &str, ps_args: &[String]) -> Result<()> {
    let c = Container::load(root, id)?;
    let pids = match c.cgroup() {
        _ if c.status() == Status::Stopped => Vec::new(),
        Some(cg) => cg.pids().context("list the container's processes")?,
        None => pids_in_pid_namespace(&c)?,
    };
    match format {
        "json" => println!("{}", serde_json::to_string(&pids)?),
        "table" => {
            let args: Vec<String> = if ps_args.is_empty() {
                vec!["-ef".into()]
            } else {
                ps_args.to_vec()
            };
            let out = std::process::Command::new("ps")
                .args(&args)
                .output()
                .context("run ps")?;
            if !out.status.success() {
                bail!(
                    "ps {}: {}",
                    args.join(" "),
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
            let text = String::from_utf8_lossy(&out.stdout);
            let mut lines = text.lines();
            let header = lines.next().unwrap_or_default();
            let col = header
                .split_whitespace()
                .position(|h| h == "PID")
                .ok_or_else(|| anyhow!("ps output has no PID column"))?;
            println!("{header}");
            for line in lines {
                let pid = line
                    .split_whitespace()
                    .nth(col)
                    .and_then(|p| p.parse::<i32>().ok());
                if pid.is_some_and(|p| pids.contains(&p)) {
                    println!("{line}");
                }
            }
        }
        other => bail!("invalid format {other:?}: use table or json"),
    }
    Ok(())
}

pub fn pause(root: &Path, id: &str, freeze: bool) -> Result<()> {
    let c = Container::load(root, id)?;
    let status = c.status();
    let cg = c
        .cgroup()
        .ok_or_else(|| anyhow!("container {id} has no cgroup to freeze (created rootless where cgroups cannot be delegated)"))?;
    if freeze {
        if status != Status::Running {
            bail!("cannot pause container {id}: it is {}", status.as_str());
        }
        cg.freeze().context("freeze")
    } else {
        if status != Status::Paused {
            bail!("cannot resume container {id}: it is {}", status.as_str());
        }
        cg.thaw().context("thaw")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_by_name_and_number() {
        assert_eq!(parse_signal("9").unwrap(), libc::SIGKILL);
        assert_eq!(parse_signal("KILL").unwrap(), libc::SIGKILL);
        assert_eq!(parse_signal("sigterm").unwrap(), libc::SIGTERM);
        assert_eq!(parse_signal("RTMIN+3").unwrap(), libc::SIGRTMIN() + 3);
        assert!(parse_signal("SIGNOPE").is_err());
        assert!(parse_signal("999").is_err());
    }

    fn spec_with_cgroups_path(p: &str) -> Spec {
        let mut spec = Spec::default();
        let mut linux = spec.linux().clone().unwrap_or_default();
        linux.set_cgroups_path(Some(p.into()));
        spec.set_linux(Some(linux));
        spec
    }

    #[test]
    fn cgroups_path_forms() {
        let l = |p: &str| cgroup_location(&spec_with_cgroups_path(p), "id");
        assert_eq!(l("").unwrap(), (None, "id".into()));
        assert_eq!(l("a/b").unwrap(), (None, "a/b".into()));
        assert_eq!(l("/a/b/c").unwrap(), (Some("/a/b".into()), "c".into()));
        assert_eq!(l("/c").unwrap(), (Some("/".into()), "c".into()));
        assert!(l("system.slice:hako:id").is_err());
        assert!(l("/").is_err());
    }

    #[test]
    fn blkio_weights_and_rdma_from_the_spec() {
        let r: oci_spec::runtime::LinuxResources = serde_json::from_value(serde_json::json!({
            "blockIO": {"weight": 500, "leafWeight": 300,
                "weightDevice": [{"major": 8, "minor": 0, "weight": 600},
                                 {"major": 8, "minor": 16, "leafWeight": 20}]},
            "rdma": {"mlx5_1": {"hcaObjects": 9}, "mlx5_0": {"hcaHandles": 3}}
        }))
        .unwrap();
        let out = limits(&r).unwrap();
        assert_eq!(out.blkio_weight, Some(500));
        assert_eq!(out.blkio_leaf_weight, Some(300));
        let w = &out.blkio_weight_devices;
        assert_eq!(
            (w[0].major, w[0].minor, w[0].weight, w[0].leaf_weight),
            (8, 0, Some(600), None)
        );
        assert_eq!(
            (w[1].minor, w[1].weight, w[1].leaf_weight),
            (16, None, Some(20))
        );
        let rd: Vec<_> = out
            .rdma
            .iter()
            .map(|l| (l.device.as_str(), l.hca_handles, l.hca_objects))
            .collect();
        assert_eq!(rd, [("mlx5_0", Some(3), None), ("mlx5_1", None, Some(9))]);
    }
}
