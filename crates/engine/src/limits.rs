//! Resource limits, capabilities, rlimits and sysctls requested on the command line, parsed and
//! checked before anything is created.

use crate::config::ContainerConfig;
use crate::options;
use crate::{Error, Result};
use oci_spec::runtime::Capability;
use std::collections::HashSet;

/// Every capability name the kernel knows, for `--privileged` and `--cap-add ALL`.
const ALL_CAPS: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// Docker's device cgroup rules for a container that is not privileged, as its dockerd (20.10,
/// runc) leaves them in `devices.list`: nothing may be opened but the standard nodes, the
/// terminals and /dev/net/tun; any node may be created (`m`), which a device cgroup allows
/// because opening is what it checks. The isolation tests compare this with a real dockerd.
pub(crate) const DEFAULT_DEVICE_RULES: &[(char, Option<i64>, Option<i64>, &str)] = &[
    ('c', None, None, "m"),
    ('b', None, None, "m"),
    ('c', Some(1), Some(3), "rwm"),    // null
    ('c', Some(1), Some(5), "rwm"),    // zero
    ('c', Some(1), Some(7), "rwm"),    // full
    ('c', Some(1), Some(8), "rwm"),    // random
    ('c', Some(1), Some(9), "rwm"),    // urandom
    ('c', Some(5), Some(0), "rwm"),    // tty
    ('c', Some(5), Some(1), "rwm"),    // console
    ('c', Some(5), Some(2), "rwm"),    // ptmx
    ('c', Some(10), Some(200), "rwm"), // net/tun
    ('c', Some(136), None, "rwm"),     // pts/*
];

/// A container's device rules: everything for `--privileged` (as Docker), otherwise nothing
/// but [`DEFAULT_DEVICE_RULES`], the `--device` nodes with their permissions and the
/// `--device-cgroup-rule`s.
pub(crate) fn device_rules(
    privileged: bool,
    devices: &[crate::spec::Device],
    extra: &[hako_cgroups::DeviceRule],
) -> Vec<hako_cgroups::DeviceRule> {
    use hako_cgroups::DeviceRule;
    if privileged {
        return vec![DeviceRule {
            allow: true,
            kind: 'a',
            major: None,
            minor: None,
            access: "rwm".into(),
        }];
    }
    let mut rules =
        Vec::with_capacity(1 + DEFAULT_DEVICE_RULES.len() + devices.len() + extra.len());
    rules.push(DeviceRule {
        allow: false,
        kind: 'a',
        major: None,
        minor: None,
        access: "rwm".into(),
    });
    for (kind, major, minor, access) in DEFAULT_DEVICE_RULES {
        rules.push(DeviceRule {
            allow: true,
            kind: *kind,
            major: *major,
            minor: *minor,
            access: (*access).into(),
        });
    }
    for d in devices {
        rules.push(DeviceRule {
            allow: true,
            kind: if d.block { 'b' } else { 'c' },
            major: Some(d.major),
            minor: Some(d.minor),
            access: d.permissions.clone(),
        });
    }
    rules.extend(extra.iter().cloned());
    rules
}

/// Parsed limits of one container.
#[derive(Debug, Clone, Default)]
pub(crate) struct Limits {
    pub(crate) resources: hako_cgroups::Resources,
    /// `--device`, checked for syntax; the host's nodes are looked at when the container starts.
    pub(crate) devices: Vec<options::DeviceRequest>,
    /// `--device-cgroup-rule`.
    pub(crate) device_cgroup_rules: Vec<hako_cgroups::DeviceRule>,
    pub(crate) capabilities: HashSet<Capability>,
    pub(crate) rlimits: Vec<(String, u64, u64)>,
    pub(crate) sysctls: Vec<(String, String)>,
    pub(crate) shm_size: Option<i64>,
    pub(crate) warnings: Vec<String>,
}

/// A capability set of this process (`CapPrm`, `CapEff`, …) from /proc/self/status, as bits.
pub(crate) fn own_caps(set: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix(set)?.strip_prefix(':'))?;
    u64::from_str_radix(hex.trim(), 16).ok()
}

/// All capabilities this process holds: a privileged container gets what hako itself has, as
/// with Docker (a host may withhold some, e.g. CAP_SYS_RESOURCE here).
fn all_caps() -> HashSet<Capability> {
    let held = own_caps("CapPrm").unwrap_or(u64::MAX);
    ALL_CAPS
        .iter()
        .enumerate()
        .filter(|(bit, _)| held & (1u64 << bit) != 0)
        .filter_map(|(_, n)| n.parse().ok())
        .collect()
}

/// A limit the host cannot apply: Docker's daemon's words when it drops one.
fn discard(warnings: &mut Vec<String>, what: &str, dropped: &str) {
    warnings.push(format!(
        "Your kernel does not support {what} or the cgroup is not mounted. {dropped} discarded."
    ));
}

/// The host's block device `path` as (major, minor).
fn block_device(path: &str) -> Result<(i64, i64)> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let meta = std::fs::metadata(path).map_err(|e| Error::Invalid(format!("{path}: {e}")))?;
    if !meta.file_type().is_block_device() {
        return Err(Error::Invalid(format!("{path} is not a block device")));
    }
    let dev = meta.rdev();
    Ok((i64::from(libc::major(dev)), i64::from(libc::minor(dev))))
}

impl Limits {
    /// The CFS, soft-memory, OOM-killer and block I/O limits, checked as Docker's daemon
    /// checks them; those this host cannot apply are dropped with Docker's warning rather than
    /// failing the start (or being ignored without a word).
    fn more_resources(
        o: &ContainerConfig,
        r: &mut hako_cgroups::Resources,
        warnings: &mut Vec<String>,
    ) -> Result<()> {
        let given = &o.resources;
        let period = given.cpu_period.filter(|p| *p != 0);
        let quota = given.cpu_quota.filter(|q| *q != 0);
        if given.nano_cpus.is_some() && period.is_some() {
            return Err(Error::Invalid(
                "Conflicting options: Nano CPUs and CPU Period cannot both be set".into(),
            ));
        }
        if given.nano_cpus.is_some() && quota.is_some() {
            return Err(Error::Invalid(
                "Conflicting options: Nano CPUs and CPU Quota cannot both be set".into(),
            ));
        }
        if period.is_some_and(|p| !(1000..=1_000_000).contains(&p)) {
            return Err(Error::Invalid(
                "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)"
                    .into(),
            ));
        }
        if quota.is_some_and(|q| q > 0 && q < 1000) {
            return Err(Error::Invalid(
                "CPU cfs quota can not be less than 1ms (i.e. 1000)".into(),
            ));
        }
        let reservation = given.memory_reservation.filter(|m| *m != 0);
        if reservation.is_some_and(|m| m < 6 * 1024 * 1024) {
            return Err(Error::Invalid(
                "Minimum memory reservation allowed is 6MB".into(),
            ));
        }
        if let (Some(m), Some(res)) = (given.memory.filter(|m| *m > 0), reservation) {
            if m < res {
                return Err(Error::Invalid(
                    "Minimum memory limit can not be less than memory reservation limit, see usage"
                        .into(),
                ));
            }
        }
        let oom = given.oom_kill_disable == Some(true);
        let weight = given.blkio_weight.filter(|w| *w != 0);
        if weight.is_some_and(|w| !(10..=1000).contains(&w)) {
            return Err(Error::Invalid(
                "Range of blkio weight is from 10 to 1000".into(),
            ));
        }
        use hako_cgroups::ThrottleKind;
        let throttles = [
            (ThrottleKind::ReadBps, &given.blkio_device_read_bps),
            (ThrottleKind::WriteBps, &given.blkio_device_write_bps),
            (ThrottleKind::ReadIops, &given.blkio_device_read_iops),
            (ThrottleKind::WriteIops, &given.blkio_device_write_iops),
        ];
        let any_throttle = throttles.iter().any(|(_, t)| !t.is_empty());
        if period.is_none()
            && quota.is_none()
            && reservation.is_none()
            && !oom
            && weight.is_none()
            && !any_throttle
            && given.blkio_weight_device.is_empty()
        {
            // Nothing to ask the host about: the common `run` reads no cgroup files here.
            return Ok(());
        }
        if oom && given.memory.is_none_or(|m| m <= 0) {
            warnings.push(
                "OOM killer is disabled for the container, but no memory limit is set, this can \
                 result in the system running out of resources."
                    .into(),
            );
        }
        let support = hako_cgroups::CgroupSystem::detect()?.support();
        if period.is_some() {
            if support.cpu_cfs {
                r.cpu_period = period.map(|p| p as u64);
            } else {
                discard(warnings, "CPU CFS period", "Period");
            }
        }
        if quota.is_some() {
            if support.cpu_cfs {
                r.cpu_quota = quota;
            } else {
                discard(warnings, "CPU CFS quota", "Quota");
            }
        }
        if reservation.is_some() {
            if support.memory_reservation {
                r.memory_reservation = reservation;
            } else {
                discard(warnings, "memory soft limit capabilities", "Limitation");
            }
        }
        if oom {
            if support.oom_kill_disable {
                r.disable_oom_killer = true;
            } else {
                warnings.push(
                    "Your kernel does not support OomKillDisable. OomKillDisable discarded.".into(),
                );
            }
        }
        if let Some(w) = weight {
            if support.blkio_weight {
                r.blkio_weight = Some(w);
            } else {
                discard(warnings, "Block I/O weight", "Weight");
            }
        }
        for (kind, devices) in throttles {
            if devices.is_empty() {
                continue;
            }
            let (ok, what, dropped) = match kind {
                ThrottleKind::ReadBps => (
                    support.blkio_read_bps,
                    "BPS Block I/O read limit",
                    "Block I/O BPS read limit",
                ),
                ThrottleKind::WriteBps => (
                    support.blkio_write_bps,
                    "BPS Block I/O write limit",
                    "Block I/O BPS write limit",
                ),
                ThrottleKind::ReadIops => (
                    support.blkio_read_iops,
                    "IOPS Block I/O read limit",
                    "Block I/O IOPS read limit",
                ),
                ThrottleKind::WriteIops => (
                    support.blkio_write_iops,
                    "IOPS Block I/O write limit",
                    "Block I/O IOPS write limit",
                ),
            };
            // The device must exist either way: a typo is an error, not a warning.
            let mut found = Vec::with_capacity(devices.len());
            for d in devices {
                let (major, minor) = block_device(&d.path)?;
                found.push(hako_cgroups::Throttle {
                    kind,
                    major,
                    minor,
                    rate: d.rate,
                });
            }
            if ok {
                r.blkio_throttle.extend(found);
            } else {
                discard(warnings, what, dropped);
            }
        }
        if !given.blkio_weight_device.is_empty() {
            let mut found = Vec::with_capacity(given.blkio_weight_device.len());
            for d in &given.blkio_weight_device {
                if !(10..=1000).contains(&d.rate) {
                    return Err(Error::Invalid(format!(
                        "invalid weight for device: {}:{} (the range is 10 to 1000)",
                        d.path, d.rate
                    )));
                }
                let (major, minor) = block_device(&d.path)?;
                found.push(hako_cgroups::WeightDevice {
                    major,
                    minor,
                    weight: Some(d.rate as u16),
                    leaf_weight: None,
                });
            }
            if support.blkio_weight {
                r.blkio_weight_devices = found;
            } else {
                discard(warnings, "Block I/O weight_device", "Weight-device");
            }
        }
        Ok(())
    }

    /// Checks the configuration's limits, capabilities, rlimits and sysctls, and reads them
    /// as the cgroup and the runtime take them.
    pub(crate) fn parse(o: &ContainerConfig) -> Result<Limits> {
        let mut l = Limits::default();
        let r = &mut l.resources;
        let given = &o.resources;
        r.memory_limit = given.memory;
        if let Some(m) = r.memory_limit {
            if m < 6 * 1024 * 1024 {
                return Err(Error::Invalid("Minimum memory limit allowed is 6MB".into()));
            }
        }
        r.memory_swap = given.memory_swap;
        if r.memory_swap.is_some_and(|s| s < -1) {
            return Err(Error::Invalid(format!(
                "invalid memory swap limit: {}",
                r.memory_swap.unwrap_or_default()
            )));
        }
        if let (Some(swap), Some(mem)) = (r.memory_swap, r.memory_limit) {
            if swap > 0 && swap < mem {
                return Err(Error::Invalid(
                    "Minimum memoryswap limit should be larger than memory limit, see usage".into(),
                ));
            }
        } else if r.memory_swap.is_some_and(|s| s > 0) {
            return Err(Error::Invalid(
                "You should always set the Memory limit when using Memoryswap limit, see usage"
                    .into(),
            ));
        }
        if let Some(n) = given.nano_cpus {
            if n <= 0 {
                return Err(Error::Invalid(format!(
                    "Range of CPUs is from 0.01 to the number of CPUs available, got {}",
                    n as f64 / 1e9
                )));
            }
            r.cpu_quota = Some(options::cpu_quota(n));
            r.cpu_period = Some(options::CPU_PERIOD);
        }
        r.cpu_shares = given.cpu_shares;
        r.cpuset_cpus = given.cpuset_cpus.clone();
        if let Some(m) = &given.cpuset_mems {
            let valid = !m.is_empty()
                && m.split(',').all(|part| {
                    let mut ends = part.splitn(2, '-');
                    ends.all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
                });
            if !valid {
                return Err(Error::Invalid(format!("Invalid value {m} for cpuset mems")));
            }
            r.cpuset_mems = Some(m.clone());
        }
        if let Some(s) = given.memory_swappiness.filter(|&s| s != -1) {
            if !(0..=100).contains(&s) {
                return Err(Error::Invalid(format!(
                    "Invalid value: {s}, valid memory swappiness range is 0-100"
                )));
            }
            // cgroup v2 has no per-cgroup swappiness: dropped as Docker's daemon drops it.
            if hako_cgroups::CgroupSystem::detect()?.mode() == hako_cgroups::Mode::V2 {
                discard(
                    &mut l.warnings,
                    "memory swappiness capabilities",
                    "Memory swappiness",
                );
            } else {
                r.memory_swappiness = Some(s as u64);
            }
        }
        r.pids_limit = given.pids_limit;
        Self::more_resources(o, r, &mut l.warnings)?;

        l.capabilities = if o.privileged {
            all_caps()
        } else {
            let mut caps: HashSet<Capability> = crate::spec::DEFAULT_CAPS.into_iter().collect();
            let mut drops = Vec::new();
            for c in &o.cap_drop {
                match options::parse_capability(c)? {
                    None => caps.clear(),
                    Some(cap) => drops.push(cap),
                }
            }
            for c in &o.cap_add {
                match options::parse_capability(c)? {
                    None => caps = all_caps(),
                    Some(cap) => {
                        caps.insert(cap);
                    }
                }
            }
            for d in drops {
                caps.remove(&d);
            }
            caps
        };
        for u in &given.ulimits {
            if !options::ULIMITS.contains(&u.name.as_str()) {
                return Err(Error::Invalid(format!("invalid ulimit type: {}", u.name)));
            }
            if u.soft > u.hard {
                return Err(Error::Invalid(format!(
                    "ulimit soft limit must be less than or equal to hard limit: {} > {}",
                    u.soft, u.hard
                )));
            }
            l.rlimits.push((u.oci_name(), u.soft, u.hard));
        }
        for (k, v) in &o.sysctls {
            let k = k.as_str();
            // Docker only allows namespaced sysctls: they cannot change the host.
            let namespaced = k.starts_with("net.")
                || k.starts_with("fs.mqueue.")
                || matches!(
                    k,
                    "kernel.msgmax"
                        | "kernel.msgmnb"
                        | "kernel.msgmni"
                        | "kernel.sem"
                        | "kernel.shmall"
                        | "kernel.shmmax"
                        | "kernel.shmmni"
                        | "kernel.shm_rmid_forced"
                );
            if !namespaced {
                return Err(Error::Invalid(format!(
                    "sysctl '{k}' is not allowed: it is not namespaced"
                )));
            }
            if k.starts_with("net.") && o.network == crate::Network::Host {
                return Err(Error::Invalid(format!(
                    "sysctl '{k}' is not allowed in host network mode"
                )));
            }
            l.sysctls.push((k.to_string(), v.to_string()));
        }
        for d in &given.devices {
            if !d.container.starts_with('/') {
                return Err(Error::Invalid(format!(
                    "device {}: {} is not an absolute path",
                    d.host, d.container
                )));
            }
            if d.permissions.is_empty() || !d.permissions.chars().all(|c| "rwm".contains(c)) {
                return Err(Error::Invalid(format!(
                    "device {}: bad mode specified: {}",
                    d.host, d.permissions
                )));
            }
        }
        l.devices = given.devices.clone();
        l.device_cgroup_rules = given
            .device_cgroup_rules
            .iter()
            .map(|r| options::parse_device_cgroup_rule(r))
            .collect::<Result<_>>()?;
        if o.shm_size.is_some_and(|s| s <= 0) {
            return Err(Error::Invalid("SHM size can not be less than 0".into()));
        }
        l.shm_size = o.shm_size;
        Ok(l)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Resources;

    #[test]
    fn capabilities_follow_docker() {
        let o = ContainerConfig {
            cap_add: vec!["NET_ADMIN".into()],
            cap_drop: vec!["chown".into()],
            ..Default::default()
        };
        let l = Limits::parse(&o).unwrap();
        assert!(l.capabilities.contains(&Capability::NetAdmin));
        assert!(!l.capabilities.contains(&Capability::Chown));
        assert_eq!(l.capabilities.len(), 14);
        let o = ContainerConfig {
            cap_drop: vec!["ALL".into()],
            cap_add: vec!["KILL".into()],
            ..Default::default()
        };
        assert_eq!(Limits::parse(&o).unwrap().capabilities.len(), 1);
        let o = ContainerConfig {
            privileged: true,
            ..Default::default()
        };
        assert!(Limits::parse(&o).unwrap().capabilities.len() >= 14);
        let o = ContainerConfig {
            cap_add: vec!["FLY".into()],
            ..Default::default()
        };
        assert!(Limits::parse(&o)
            .unwrap_err()
            .to_string()
            .contains("unknown capability"));
    }

    #[test]
    fn memory_rules() {
        let with = |resources: Resources| ContainerConfig {
            resources,
            ..Default::default()
        };
        let o = with(Resources {
            memory: Some(1 << 20),
            ..Default::default()
        });
        assert!(Limits::parse(&o).is_err());
        let o = with(Resources {
            memory: Some(64 << 20),
            memory_swap: Some(32 << 20),
            ..Default::default()
        });
        assert!(Limits::parse(&o).is_err());
        let o = with(Resources {
            memory_swap: Some(32 << 20),
            ..Default::default()
        });
        assert!(Limits::parse(&o).is_err());
        let o = with(Resources {
            memory: Some(64 << 20),
            nano_cpus: Some(500_000_000),
            pids_limit: Some(10),
            ..Default::default()
        });
        let l = Limits::parse(&o).unwrap();
        assert_eq!(l.resources.memory_limit, Some(64 << 20));
        assert_eq!(l.resources.cpu_quota, Some(50_000));
        assert_eq!(l.resources.pids_limit, Some(10));
    }

    #[test]
    fn device_rules_follow_docker() {
        let rule = |allow, kind, major, minor, access: &str| hako_cgroups::DeviceRule {
            allow,
            kind,
            major,
            minor,
            access: access.into(),
        };
        let o = ContainerConfig {
            resources: Resources {
                devices: vec![options::parse_device("/dev/kvm:/dev/kvm:r").unwrap()],
                device_cgroup_rules: vec!["c 42:* rmw".into()],
                ..Default::default()
            },
            ..Default::default()
        };
        let l = Limits::parse(&o).unwrap();
        assert_eq!(l.devices[0].permissions, "r");
        let kvm = crate::spec::Device {
            path: "/dev/kvm".into(),
            block: false,
            major: 10,
            minor: 232,
            file_mode: 0o600,
            uid: 0,
            gid: 0,
            permissions: "r".into(),
        };
        let rules = device_rules(false, std::slice::from_ref(&kvm), &l.device_cgroup_rules);
        assert_eq!(rules[0], rule(false, 'a', None, None, "rwm"));
        assert_eq!(rules.len(), 1 + DEFAULT_DEVICE_RULES.len() + 2);
        assert_eq!(rules[13], rule(true, 'c', Some(10), Some(232), "r"));
        assert_eq!(rules[14], rule(true, 'c', Some(42), None, "rmw"));
        // Privileged: everything, whatever else was asked.
        assert_eq!(
            device_rules(true, &[kvm], &l.device_cgroup_rules),
            vec![rule(true, 'a', None, None, "rwm")]
        );
        let bad_mode = options::DeviceRequest {
            host: "/dev/kvm".into(),
            container: "/dev/kvm".into(),
            permissions: "x".into(),
        };
        for (devices, rules) in [
            (vec![bad_mode], vec![]),
            (vec![], vec!["c 1:3".to_string()]),
        ] {
            let o = ContainerConfig {
                resources: Resources {
                    devices,
                    device_cgroup_rules: rules,
                    ..Default::default()
                },
                ..Default::default()
            };
            assert!(matches!(Limits::parse(&o), Err(Error::Invalid(_))));
        }
    }

    #[test]
    fn cfs_reservation_and_blkio_follow_dockers_daemon() {
        let with = |resources: Resources| ContainerConfig {
            resources,
            ..Default::default()
        };
        let refused = |r: Resources, want: &str| {
            let e = Limits::parse(&with(r)).unwrap_err();
            assert!(matches!(e, Error::Invalid(_)));
            assert_eq!(e.to_string(), want);
        };
        refused(
            Resources {
                nano_cpus: Some(1_000_000_000),
                cpu_period: Some(50_000),
                ..Default::default()
            },
            "Conflicting options: Nano CPUs and CPU Period cannot both be set",
        );
        refused(
            Resources {
                nano_cpus: Some(1_000_000_000),
                cpu_quota: Some(50_000),
                ..Default::default()
            },
            "Conflicting options: Nano CPUs and CPU Quota cannot both be set",
        );
        for p in [999, 1_000_001] {
            refused(
                Resources {
                    cpu_period: Some(p),
                    ..Default::default()
                },
                "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)",
            );
        }
        refused(
            Resources {
                cpu_quota: Some(999),
                ..Default::default()
            },
            "CPU cfs quota can not be less than 1ms (i.e. 1000)",
        );
        refused(
            Resources {
                memory_reservation: Some(1 << 20),
                ..Default::default()
            },
            "Minimum memory reservation allowed is 6MB",
        );
        refused(
            Resources {
                memory: Some(16 << 20),
                memory_reservation: Some(32 << 20),
                ..Default::default()
            },
            "Minimum memory limit can not be less than memory reservation limit, see usage",
        );
        refused(
            Resources {
                blkio_weight: Some(1001),
                ..Default::default()
            },
            "Range of blkio weight is from 10 to 1000",
        );
        refused(
            Resources {
                blkio_device_read_bps: vec![crate::config::ThrottleDevice {
                    path: "/dev/null".into(),
                    rate: 1,
                }],
                ..Default::default()
            },
            "/dev/null is not a block device",
        );
        // Zeros are Docker's "not set": nothing to check, nothing asked of the host.
        let l = Limits::parse(&with(Resources {
            cpu_period: Some(0),
            cpu_quota: Some(0),
            blkio_weight: Some(0),
            ..Default::default()
        }))
        .unwrap();
        assert!(l.warnings.is_empty());
        assert_eq!(l.resources.cpu_period, None);
    }

    #[test]
    fn sysctls_must_be_namespaced() {
        let sysctl = |k: &str| ContainerConfig {
            sysctls: [(k.to_string(), "1".to_string())].into(),
            ..Default::default()
        };
        let o = sysctl("net.ipv4.ip_forward");
        assert!(Limits::parse(&o).is_ok());
        let o = sysctl("kernel.panic");
        assert!(Limits::parse(&o).is_err());
    }
}
