//! Resource limits, capabilities, rlimits and sysctls requested on the command line, parsed and
//! checked before anything is created.

use crate::options;
use crate::{Error, Result, RunOptions};
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

/// Parsed limits of one container.
#[derive(Debug, Clone, Default)]
pub(crate) struct Limits {
    pub(crate) resources: hako_cgroups::Resources,
    pub(crate) capabilities: HashSet<Capability>,
    pub(crate) rlimits: Vec<(String, u64, u64)>,
    pub(crate) sysctls: Vec<(String, String)>,
    pub(crate) shm_size: Option<i64>,
    pub(crate) warnings: Vec<String>,
}

/// All capabilities this process holds: a privileged container gets what hako itself has, as
/// with Docker (a host may withhold some, e.g. CAP_SYS_RESOURCE here).
fn all_caps() -> HashSet<Capability> {
    let held = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapPrm:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .unwrap_or(u64::MAX);
    ALL_CAPS
        .iter()
        .enumerate()
        .filter(|(bit, _)| held & (1u64 << bit) != 0)
        .filter_map(|(_, n)| n.parse().ok())
        .collect()
}

impl Limits {
    pub(crate) fn parse(o: &RunOptions) -> Result<Limits> {
        let mut l = Limits::default();
        let r = &mut l.resources;
        r.memory_limit = o
            .memory
            .as_deref()
            .map(|m| options::parse_size(m, "-m, --memory"))
            .transpose()?;
        if let Some(m) = r.memory_limit {
            if m < 6 * 1024 * 1024 {
                return Err(Error::Invalid("Minimum memory limit allowed is 6MB".into()));
            }
        }
        r.memory_swap = match o.memory_swap.as_deref() {
            None => None,
            Some("-1") => Some(-1),
            Some(s) => Some(options::parse_size(s, "--memory-swap")?),
        };
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
        if let Some(c) = &o.cpus {
            let (quota, period) = options::parse_cpus(c)?;
            r.cpu_quota = Some(quota);
            r.cpu_period = Some(period);
        }
        r.cpu_shares = o.cpu_shares;
        r.cpuset_cpus = o.cpuset_cpus.clone();
        r.pids_limit = o.pids_limit;

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
        for u in &o.ulimits {
            l.rlimits.push(options::parse_ulimit(u)?);
        }
        for s in &o.sysctls {
            let (k, v) = s.split_once('=').ok_or_else(|| {
                Error::Invalid(format!(
                    "invalid argument \"{s}\" for \"--sysctl\" flag: sysctl '{s}' is not allowed"
                ))
            })?;
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
        l.shm_size = o
            .shm_size
            .as_deref()
            .map(|s| options::parse_size(s, "--shm-size"))
            .transpose()?;
        Ok(l)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_follow_docker() {
        let o = RunOptions {
            cap_add: vec!["NET_ADMIN".into()],
            cap_drop: vec!["chown".into()],
            ..Default::default()
        };
        let l = Limits::parse(&o).unwrap();
        assert!(l.capabilities.contains(&Capability::NetAdmin));
        assert!(!l.capabilities.contains(&Capability::Chown));
        assert_eq!(l.capabilities.len(), 14);
        let o = RunOptions {
            cap_drop: vec!["ALL".into()],
            cap_add: vec!["KILL".into()],
            ..Default::default()
        };
        assert_eq!(Limits::parse(&o).unwrap().capabilities.len(), 1);
        let o = RunOptions {
            privileged: true,
            ..Default::default()
        };
        assert!(Limits::parse(&o).unwrap().capabilities.len() >= 14);
        let o = RunOptions {
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
        let o = RunOptions {
            memory: Some("1m".into()),
            ..Default::default()
        };
        assert!(Limits::parse(&o).is_err());
        let o = RunOptions {
            memory: Some("64m".into()),
            memory_swap: Some("32m".into()),
            ..Default::default()
        };
        assert!(Limits::parse(&o).is_err());
        let o = RunOptions {
            memory_swap: Some("32m".into()),
            ..Default::default()
        };
        assert!(Limits::parse(&o).is_err());
        let o = RunOptions {
            memory: Some("64m".into()),
            cpus: Some("0.5".into()),
            pids_limit: Some(10),
            ..Default::default()
        };
        let l = Limits::parse(&o).unwrap();
        assert_eq!(l.resources.memory_limit, Some(64 << 20));
        assert_eq!(l.resources.cpu_quota, Some(50_000));
        assert_eq!(l.resources.pids_limit, Some(10));
    }

    #[test]
    fn sysctls_must_be_namespaced() {
        let o = RunOptions {
            sysctls: vec!["net.ipv4.ip_forward=1".into()],
            ..Default::default()
        };
        assert!(Limits::parse(&o).is_ok());
        let o = RunOptions {
            sysctls: vec!["kernel.panic=1".into()],
            ..Default::default()
        };
        assert!(Limits::parse(&o).is_err());
    }
}
