//! Docker-shaped views of containers: `inspect`, `top`, `stats`, `diff`, plus the small
//! lifecycle commands that need nothing else (`pause`, `unpause`, `rename`, `prune`).

use crate::config::{ContainerConfig, ContainerUpdate};
use crate::{Engine, Error, Result, State};
use rusqlite::params;
use serde_json::Value;
use std::path::Path;

pub(crate) struct Row {
    pub(crate) pid: Option<i32>,
    pub(crate) config: String,
    pub(crate) cgroup_parent: Option<String>,
    pub(crate) restart_count: i64,
    /// JSON list of [`crate::missing::MissingSyscall`], from the last foreground run.
    pub(crate) missing_syscalls: Option<String>,
}

impl Engine {
    pub(crate) fn row(&self, id: &str) -> Result<Row> {
        self.container_row(
            id,
            "SELECT pid, config, cgroup_parent, restart_count, missing_syscalls FROM containers WHERE id = ?1",
            |r| {
                Ok(Row {
                    pid: r.get(0)?,
                    config: r.get(1)?,
                    cgroup_parent: r.get(2)?,
                    restart_count: r.get(3)?,
                    missing_syscalls: r.get(4)?,
                })
            },
        )
    }

    fn cgroup_of(&self, id: &str, parent: Option<&str>) -> Result<hako_cgroups::Cgroup> {
        let cs = hako_cgroups::CgroupSystem::detect()?;
        Ok(crate::rootless::open_cgroup(
            &cs,
            parent,
            id,
            &self.container_dir(id),
        ))
    }

    /// The options a container was created with, as stored: without resolving its image or
    /// planning its run, so a listing of many containers stays cheap (the API's `ps`).
    pub fn stored_config(&self, key: &str) -> Result<ContainerConfig> {
        let c = self.find(key)?;
        let row = self.row(&c.id)?;
        ContainerConfig::from_stored(&row.config)
    }

    /// [`Engine::stored_config`] of each of `ids` (full ids) at once: one statement for the
    /// lot, so a listing of hundreds of containers costs one query, not one per row. An id
    /// that is gone is absent from the map.
    pub fn stored_configs<'a>(
        &self,
        ids: impl IntoIterator<Item = &'a str>,
    ) -> Result<std::collections::HashMap<String, ContainerConfig>> {
        let wanted: std::collections::HashSet<&str> = ids.into_iter().collect();
        let mut out = std::collections::HashMap::with_capacity(wanted.len());
        if wanted.is_empty() {
            return Ok(out);
        }
        let mut st = self
            .store
            .conn()
            .prepare_cached("SELECT id, config FROM containers")?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            let id: String = r.get(0)?;
            if wanted.contains(id.as_str()) {
                let text: String = r.get(1)?;
                out.insert(id, ContainerConfig::from_stored(&text)?);
            }
        }
        Ok(out)
    }

    /// Changes the network of a container that is not running, as Docker's connect and
    /// disconnect do before a start (compose creates, then connects with its aliases).
    pub fn set_network(
        &self,
        key: &str,
        network: crate::Network,
        aliases: Vec<String>,
        ip: Option<std::net::Ipv4Addr>,
        ip6: Option<std::net::Ipv6Addr>,
    ) -> Result<String> {
        let c = self.find(key)?;
        if c.state == State::Running {
            return Err(Error::Running(c.id));
        }
        let row = self.row(&c.id)?;
        let mut opts = ContainerConfig::from_stored(&row.config)?;
        opts.network = network;
        opts.network_aliases = aliases;
        opts.ip = ip;
        opts.ip6 = ip6;
        opts.check()?;
        let config = opts.to_stored()?;
        self.store.conn().execute(
            "UPDATE containers SET config = ?2 WHERE id = ?1",
            params![c.id, config],
        )?;
        Ok(c.id)
    }

    /// An error naming `action` when this engine's containers have no cgroup (rootless where
    /// the host cannot delegate one).
    fn need_cgroup(&self, name: &str, action: &str, what: &str) -> Result<()> {
        let cs = hako_cgroups::CgroupSystem::detect()?;
        match crate::rootless::no_cgroup_reason(&cs) {
            Some(why) => Err(Error::Invalid(format!(
                "cannot {action} container {name}: {what} (rootless, and {why})"
            ))),
            None => Ok(()),
        }
    }

    /// `docker inspect` of a container, as JSON: [`Engine::container_inspect`]'s view.
    pub fn inspect(&self, key: &str) -> Result<Value> {
        let view = self.container_inspect(key)?;
        serde_json::to_value(view)
            .map_err(|e| Error::io("inspect document", std::io::Error::other(e)))
    }

    pub(crate) fn is_paused(&self, id: &str, parent: Option<&str>) -> bool {
        let Ok(cg) = self.cgroup_of(id, parent) else {
            return false;
        };
        cg.paths().iter().any(|p| {
            std::fs::read_to_string(p.join("freezer.state"))
                .map(|s| s.trim() == "FROZEN")
                .unwrap_or(false)
                || std::fs::read_to_string(p.join("cgroup.freeze"))
                    .map(|s| s.trim() == "1")
                    .unwrap_or(false)
        })
    }

    /// `docker pause`: freezes every process of the container.
    pub fn pause(&self, key: &str) -> Result<String> {
        let c = self.find(key)?;
        if c.state != State::Running {
            return Err(Error::NotRunning(c.id));
        }
        let row = self.row(&c.id)?;
        self.need_cgroup(&c.name, "pause", "it has no cgroup to freeze")?;
        if self.is_paused(&c.id, row.cgroup_parent.as_deref()) {
            return Err(Error::Invalid(format!(
                "Container {} is already paused",
                c.id
            )));
        }
        self.cgroup_of(&c.id, row.cgroup_parent.as_deref())?
            .freeze()?;
        self.event(&c.id, "pause", &[]);
        Ok(c.id)
    }

    /// `docker unpause`.
    pub fn unpause(&self, key: &str) -> Result<String> {
        let c = self.find(key)?;
        let row = self.row(&c.id)?;
        if !self.is_paused(&c.id, row.cgroup_parent.as_deref()) {
            return Err(Error::Invalid(format!("Container {} is not paused", c.id)));
        }
        self.cgroup_of(&c.id, row.cgroup_parent.as_deref())?
            .thaw()?;
        self.event(&c.id, "unpause", &[]);
        Ok(c.id)
    }

    /// `docker update`: `change` edits the container's options (resource limits, restart
    /// policy); the new limits are applied to its cgroup at once when it runs and kept for its
    /// next start.
    pub fn update(&self, key: &str, change: &ContainerUpdate) -> Result<String> {
        let c = self.find(key)?;
        let row = self.row(&c.id)?;
        let mut opts = ContainerConfig::from_stored(&row.config)?;
        let limits_only = ContainerUpdate {
            restart_policy: None,
            ..change.clone()
        };
        // Rootless, only what the delegated controllers can take applies.
        let driver = crate::rootless::active().then(|| {
            hako_cgroups::CgroupSystem::detect().map(|cs| crate::rootless::cgroup_driver(&cs))
        });
        let driver = driver.transpose()?;
        if !limits_only.is_empty() {
            // Stored, they would be dropped again at each start: refused before anything
            // changes, as runc refuses to update a rootless container without a cgroup.
            self.need_cgroup(&c.name, "update", "it has no cgroup to limit")?;
            if let Some(driver) = &driver {
                let mut asked = ContainerConfig::default();
                limits_only.apply(&mut asked);
                let asked = crate::limits::Limits::parse(&asked)?;
                if let Some(d) = driver.dropped(&asked.resources).first() {
                    return Err(Error::Invalid(format!(
                        "cannot update container {}: {} cannot apply: {}",
                        c.name, d.limit, d.reason
                    )));
                }
            }
        }
        change.apply(&mut opts);
        opts.check()?;
        let limits = crate::limits::Limits::parse(&opts)?;
        if c.state == State::Running {
            let res = match &driver {
                Some(d) => hako_cgroups::rootless::applicable(d, &limits.resources),
                None => limits.resources.clone(),
            };
            self.cgroup_of(&c.id, row.cgroup_parent.as_deref())?
                .apply(&res)?;
        }
        let config = opts.to_stored()?;
        self.store.conn().execute(
            "UPDATE containers SET config = ?2 WHERE id = ?1",
            params![c.id, config],
        )?;
        self.event(&c.id, "update", &[]);
        Ok(c.id)
    }

    /// `docker rename`.
    pub fn rename(&self, key: &str, new_name: &str) -> Result<()> {
        let c = self.find(key)?;
        let new_name = new_name.trim_start_matches('/');
        if !crate::names::valid(new_name) {
            return Err(Error::Invalid(format!(
                "Invalid container name ({new_name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
            )));
        }
        match self.store.conn().execute(
            "UPDATE containers SET name = ?2 WHERE id = ?1",
            params![c.id, new_name],
        ) {
            Ok(_) => {
                crate::netwire::networks(self.store.conn(), &self.root)?
                    .rename(&c.id, new_name)
                    .map_err(|e| Error::Invalid(format!("network: {e}")))?;
                self.event(&c.id, "rename", &[("oldName", format!("/{}", c.name))]);
                Ok(())
            }
            Err(rusqlite::Error::SqliteFailure(f, _))
                if f.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                let holder = self.find(new_name).map(|h| h.id).unwrap_or_default();
                Err(Error::NameConflict {
                    name: new_name.to_string(),
                    id: holder,
                })
            }
            Err(e) => Err(e.into()),
        }
    }

    /// `docker container prune`: removes every stopped container; returns their ids.
    pub fn prune(&self) -> Result<Vec<String>> {
        let stopped: Vec<String> = self
            .list(true)?
            .into_iter()
            .filter(|c| c.state != State::Running)
            .map(|c| c.id)
            .collect();
        for id in &stopped {
            self.delete_container_with(id, &self.container_dir(id), false);
        }
        Ok(stopped)
    }

    /// `docker diff`: changes of the writable layer, as (kind, path) with kind A, C or D.
    pub fn diff(&self, key: &str) -> Result<Vec<(char, String)>> {
        let c = self.find(key)?;
        let image = self.resolve_image(&c.image_id)?;
        let upper = self.container_dir(&c.id).join("upper");
        let mut out = Vec::new();
        walk_upper(&upper, &upper, &image.layers, &mut out);
        // Mount points hako made for the container are not changes the user made, so Docker
        // leaves them out (they live in its "init" layer).
        let row = self.row(&c.id)?;
        let opts = ContainerConfig::from_stored(&row.config).unwrap_or_default();
        let mut hidden: Vec<String> = ["/etc/hosts", "/etc/hostname", "/etc/resolv.conf"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        hidden.extend(opts.mounts.iter().map(|m| m.target().to_string()));
        out.retain(|(kind, path)| *kind != 'A' || !hidden.contains(path));
        out.sort_by(|a, b| a.1.cmp(&b.1));
        Ok(out)
    }

    /// Host pids of the container's processes (for `top`).
    pub fn pids(&self, key: &str) -> Result<Vec<i32>> {
        let c = self.find(key)?;
        if c.state != State::Running {
            return Err(Error::Invalid(format!("Container {} is not running", c.id)));
        }
        let row = self.row(&c.id)?;
        let cg = self.cgroup_of(&c.id, row.cgroup_parent.as_deref())?;
        if cg.paths().is_empty() {
            return Ok(self
                .live_pid(&c.id)?
                .map(crate::procstat::container_pids)
                .unwrap_or_default());
        }
        let mut pids = cg.pids()?;
        pids.sort_unstable();
        pids.dedup();
        Ok(pids)
    }

    /// Resource usage for `stats`: (id, name, cpu ns, memory bytes, memory limit, pids).
    pub fn stats(&self, key: &str) -> Result<ContainerStats> {
        let c = self.find(key)?;
        let row = self.row(&c.id)?;
        let cg = self.cgroup_of(&c.id, row.cgroup_parent.as_deref())?;
        let live = match c.state {
            State::Running => self.live_pid(&c.id)?,
            _ => None,
        };
        let mut s = if c.state == State::Running {
            cg.stats().unwrap_or_default()
        } else {
            Default::default()
        };
        let cgroup_block = live.and_then(|_| block_io(cg.paths()));
        // Rootless, the cgroup may be missing (cgroup v1, no delegation) or lack controllers
        // (those not delegated): what it cannot tell comes from the processes themselves
        // (a scan of /proc, so only when something is missing).
        let incomplete = s.cpu_usage_ns.is_none()
            || s.memory_usage.is_none()
            || s.pids_current.is_none()
            || cgroup_block.is_none();
        let from_proc = match live {
            Some(init) if crate::rootless::active() && incomplete => {
                let pids = crate::procstat::container_pids(init);
                Some((crate::procstat::usage(&pids), pids.len() as u64))
            }
            _ => None,
        };
        if let Some((u, n)) = from_proc {
            s.cpu_usage_ns = s.cpu_usage_ns.or(Some(u.cpu_ns));
            s.memory_usage = s.memory_usage.or(Some(u.memory));
            s.pids_current = s.pids_current.or(Some(n));
        }
        let limit = cg
            .paths()
            .iter()
            .find_map(|p| {
                std::fs::read_to_string(p.join("memory.limit_in_bytes"))
                    .or_else(|_| std::fs::read_to_string(p.join("memory.max")))
                    .ok()
                    .and_then(|v| v.trim().parse::<u64>().ok())
            })
            .filter(|&l| l < (1 << 62));
        let opts = ContainerConfig::from_stored(&row.config).unwrap_or_default();
        // The host's interfaces are not the container's: docker shows 0B for --network host.
        let net = match live {
            Some(pid) if opts.network != crate::Network::Host => {
                std::fs::read_to_string(format!("/proc/{pid}/net/dev"))
                    .map(|t| net_dev_totals(&t))
                    .unwrap_or_default()
            }
            _ => (0, 0),
        };
        let block = match (cgroup_block, from_proc) {
            (Some(b), _) => b,
            (None, Some((u, _))) => (u.read, u.write),
            (None, None) => (0, 0),
        };
        Ok(ContainerStats {
            id: c.id,
            name: c.name,
            cpu_ns: s.cpu_usage_ns,
            memory: s.memory_usage,
            memory_limit: limit,
            pids: s.pids_current,
            net_rx: net.0,
            net_tx: net.1,
            block_read: block.0,
            block_write: block.1,
        })
    }
}

/// (volume name, containers using it, bytes) for each volume, and the number of volumes each
/// container id uses.
pub type VolumeUsage = (
    Vec<(String, usize, u64)>,
    std::collections::HashMap<String, usize>,
);

/// One container's usage, as `stats` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerStats {
    /// Container id.
    pub id: String,
    /// Container name.
    pub name: String,
    /// Cumulative CPU time in nanoseconds.
    pub cpu_ns: Option<u64>,
    /// Memory in use, bytes.
    pub memory: Option<u64>,
    /// Memory limit, bytes (None: the host's memory).
    pub memory_limit: Option<u64>,
    /// Number of tasks.
    pub pids: Option<u64>,
    /// Bytes received on the container's interfaces (loopback excluded, as in docker).
    pub net_rx: u64,
    /// Bytes sent on the container's interfaces.
    pub net_tx: u64,
    /// Bytes read from block devices by the container's cgroup.
    pub block_read: u64,
    /// Bytes written to block devices by the container's cgroup.
    pub block_write: u64,
}

/// (received, sent) bytes summed over the interfaces of a `/proc/PID/net/dev`, without `lo`.
fn net_dev_totals(text: &str) -> (u64, u64) {
    let mut total = (0, 0);
    for line in text.lines().skip(2) {
        let Some((name, counters)) = line.split_once(':') else {
            continue;
        };
        if name.trim() == "lo" {
            continue;
        }
        let f: Vec<u64> = counters
            .split_whitespace()
            .map(|n| n.parse().unwrap_or(0))
            .collect();
        if f.len() >= 9 {
            total.0 += f[0];
            total.1 += f[8];
        }
    }
    total
}

/// (read, written) bytes of a cgroup: v1 blkio's recursive service bytes, or v2's `io.stat`;
/// None when it has neither (no blkio or io controller).
fn block_io(paths: &[std::path::PathBuf]) -> Option<(u64, u64)> {
    for p in paths {
        if let Ok(t) = std::fs::read_to_string(p.join("blkio.throttle.io_service_bytes_recursive"))
        {
            return Some(blkio_v1(&t));
        }
    }
    for p in paths {
        if let Ok(t) = std::fs::read_to_string(p.join("io.stat")) {
            return Some(io_stat_v2(&t));
        }
    }
    None
}

/// Lines like "8:0 Read 4096"; the "Total" lines are skipped.
fn blkio_v1(text: &str) -> (u64, u64) {
    let mut total = (0, 0);
    for line in text.lines() {
        let mut f = line.split_whitespace();
        let (Some(_dev), Some(op), Some(n)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        let n: u64 = n.parse().unwrap_or(0);
        match op {
            "Read" => total.0 += n,
            "Write" => total.1 += n,
            _ => {}
        }
    }
    total
}

/// Lines like "8:0 rbytes=4096 wbytes=0 rios=1 wios=0 dbytes=0 dios=0".
fn io_stat_v2(text: &str) -> (u64, u64) {
    let mut total = (0, 0);
    for kv in text.split_whitespace() {
        match kv.split_once('=') {
            Some(("rbytes", n)) => total.0 += n.parse::<u64>().unwrap_or(0),
            Some(("wbytes", n)) => total.1 += n.parse::<u64>().unwrap_or(0),
            _ => {}
        }
    }
    total
}

#[cfg(test)]
mod io_tests {
    use super::*;

    #[test]
    fn net_dev_skips_loopback_and_headers() {
        let t = "Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:     100       1    0    0    0     0          0         0      100       1    0    0    0     0       0          0
  eth0:    1500      10    0    0    0     0          0         0      700       7    0    0    0     0       0          0
  eth1:      20       1    0    0    0     0          0         0        2       1    0    0    0     0       0          0
";
        assert_eq!(net_dev_totals(t), (1520, 702));
    }

    #[test]
    fn block_counters_v1_and_v2() {
        let v1 =
            "8:0 Read 4096\n8:0 Write 512\n8:0 Sync 0\n8:16 Read 4\n8:0 Total 4608\nTotal 4612\n";
        assert_eq!(blkio_v1(v1), (4100, 512));
        let v2 = "8:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n259:0 rbytes=1 wbytes=2 rios=1 wios=1\n";
        assert_eq!(io_stat_v2(v2), (4097, 8194));
    }
}

fn exists_in_layers(layers: &[std::path::PathBuf], rel: &Path) -> bool {
    layers
        .iter()
        .any(|l| std::fs::symlink_metadata(l.join(rel)).is_ok())
}

fn walk_upper(
    root: &Path,
    dir: &Path,
    layers: &[std::path::PathBuf],
    out: &mut Vec<(char, String)>,
) {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        let rel = p.strip_prefix(root).unwrap_or(&p).to_path_buf();
        let shown = format!("/{}", rel.display());
        let Ok(m) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        // overlayfs records deletions as 0:0 character devices.
        if m.file_type().is_char_device() && m.rdev() == 0 {
            out.push(('D', shown));
            continue;
        }
        out.push((
            if exists_in_layers(layers, &rel) {
                'C'
            } else {
                'A'
            },
            shown,
        ));
        if m.is_dir() {
            walk_upper(root, &p, layers, out);
        }
    }
}

/// What `hako info` reports.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct SystemInfo {
    /// All containers.
    pub containers: usize,
    /// Running ones.
    pub containers_running: usize,
    /// Paused ones.
    pub containers_paused: usize,
    /// Stopped or created ones.
    pub containers_stopped: usize,
    /// Images in the store.
    pub images: usize,
    /// Volumes.
    pub volumes: usize,
    /// How container root filesystems are made.
    pub driver: String,
    /// "cgroupfs", or "none" when containers get no cgroup (see `no_cgroups`).
    pub cgroup_driver: String,
    /// Why containers get no cgroup and so no limits: rootless where the host cannot delegate
    /// one. None when they get one.
    pub no_cgroups: Option<String>,
    /// "1", "1 (hybrid)" or "2".
    pub cgroup_version: String,
    /// `uname -r`.
    pub kernel_version: String,
    /// PRETTY_NAME of the host's os-release.
    pub operating_system: String,
    /// uname machine.
    pub architecture: String,
    /// Online CPUs.
    pub ncpu: usize,
    /// Bytes of RAM.
    pub mem_total: u64,
    /// The state root.
    pub root_dir: String,
    /// Security features in force.
    pub security_options: Vec<String>,
    /// Run by an ordinary user (in its own user namespace).
    pub rootless: bool,
    /// Rootless: what storage, network, cgroups and id mapping use, or why one is missing.
    pub rootless_mechanisms: Option<crate::rootless::Mechanisms>,
    /// The `binfmt_misc` handlers foreign-architecture images can run under: name, interpreter,
    /// flags, and whether a container can use them (enabled, with the F flag).
    pub emulators: Vec<String>,
    /// The kernel's vsyscall mode: `none` breaks glibc older than 2.14 (CentOS 6).
    pub vsyscall: String,
    /// The newest syscall libseccomp names that this kernel has, and the kernel's syscalls
    /// libseccomp does not know ([`crate::missing::newest_syscall`]).
    pub newest_syscall: String,
    /// The seccomp return actions this kernel knows (`user_notif` among them or not).
    pub seccomp_actions: String,
    /// How many user namespaces may exist (`user.max_user_namespaces`; 0: none).
    pub max_user_namespaces: u64,
}

impl Engine {
    /// `hako info`.
    pub fn info(&self) -> Result<SystemInfo> {
        let list = self.list(true)?;
        let running: Vec<_> = list.iter().filter(|c| c.state == State::Running).collect();
        let paused = running
            .iter()
            .filter(|c| {
                self.row(&c.id)
                    .map(|r| self.is_paused(&c.id, r.cgroup_parent.as_deref()))
                    .unwrap_or(false)
            })
            .count();
        let uts = nix::sys::utsname::uname().map_err(|e| Error::Invalid(format!("uname: {e}")))?;
        let os = std::fs::read_to_string("/etc/os-release")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                    .map(|v| v.trim_matches('"').to_string())
            })
            .unwrap_or_else(|| "Linux".into());
        let mem_total = hako_base::proc::mem_total();
        let cs = hako_cgroups::CgroupSystem::detect()?;
        let no_cgroups = crate::rootless::no_cgroup_reason(&cs);
        let mut security_options: Vec<String> = vec![
            "capabilities (Docker's default set)".into(),
            "masked and read-only /proc paths".into(),
            "seccomp (Profile: builtin, unknown syscalls answer ENOSYS)".into(),
        ];
        if crate::rootless::active() {
            security_options.push("rootless".into());
        }
        let cgroup_version = match cs.mode() {
            hako_cgroups::Mode::V1 => "1",
            hako_cgroups::Mode::Hybrid => "1 (hybrid: cgroup2 mounted alongside)",
            hako_cgroups::Mode::V2 => "2",
        };
        Ok(SystemInfo {
            containers: list.len(),
            containers_running: running.len() - paused,
            containers_paused: paused,
            containers_stopped: list.len() - running.len(),
            images: self.store.list()?.len(),
            volumes: self.volume_list()?.len(),
            driver: "overlay (mounted inside each container's mount namespace)".into(),
            cgroup_driver: if no_cgroups.is_some() {
                "none"
            } else {
                "cgroupfs"
            }
            .into(),
            no_cgroups,
            cgroup_version: cgroup_version.into(),
            kernel_version: uts.release().to_string_lossy().into_owned(),
            operating_system: os,
            architecture: uts.machine().to_string_lossy().into_owned(),
            ncpu: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            mem_total,
            root_dir: self.root().display().to_string(),
            rootless: crate::rootless::active(),
            rootless_mechanisms: crate::rootless::active().then(crate::rootless::mechanisms),
            emulators: crate::platform::emulators()
                .iter()
                .map(|e| {
                    let usable = match (e.enabled, e.fixed_binary()) {
                        (false, _) => "disabled",
                        (true, false) => "not usable in containers: no F flag",
                        (true, true) => "usable",
                    };
                    format!(
                        "{}: {} (flags {}; {usable})",
                        e.name,
                        e.interpreter,
                        if e.flags.is_empty() { "none" } else { &e.flags }
                    )
                })
                .collect(),
            vsyscall: crate::platform::vsyscall_mode().into(),
            newest_syscall: crate::missing::newest_syscall(),
            seccomp_actions: std::fs::read_to_string("/proc/sys/kernel/seccomp/actions_avail")
                .map(|s| s.trim().to_string())
                .unwrap_or_else(|_| "unknown (no /proc/sys/kernel/seccomp/actions_avail)".into()),
            max_user_namespaces: std::fs::read_to_string("/proc/sys/user/max_user_namespaces")
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(0),
            security_options,
        })
    }
}

/// Bytes of regular files below `p`, without following symlinks.
pub(crate) fn du(p: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(p) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match std::fs::symlink_metadata(e.path()) {
            Ok(m) if m.is_dir() => du(&e.path()),
            Ok(m) if m.is_file() => m.len(),
            _ => 0,
        })
        .sum()
}

impl Engine {
    /// `ps -s`: for each container, the bytes of its writable layer and that plus its image's
    /// (docker's "virtual" size).
    pub fn container_sizes(&self, list: &[crate::ContainerInfo]) -> Result<Vec<(u64, u64)>> {
        let images: std::collections::HashMap<String, u64> = self
            .store
            .list()?
            .into_iter()
            .map(|i| (i.id, i.size))
            .collect();
        Ok(list
            .iter()
            .map(|c| {
                let rw = du(&self.container_dir(&c.id).join("upper"));
                (rw, rw + images.get(&c.image_id).copied().unwrap_or(0))
            })
            .collect())
    }

    /// `system df -v`: each volume's name, number of containers using it, and size; and how
    /// many volumes each container uses.
    pub fn volume_usage(&self) -> Result<VolumeUsage> {
        let pairs: Vec<(String, String)> = self
            .store
            .conn()
            .prepare("SELECT container_id, volume FROM container_volumes")?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        let mut per_container = std::collections::HashMap::new();
        for (c, _) in &pairs {
            *per_container.entry(c.clone()).or_insert(0) += 1;
        }
        let vols = self
            .volume_list()?
            .into_iter()
            .map(|v| {
                let links = pairs.iter().filter(|(_, n)| *n == v.name).count();
                let size = du(&v.mountpoint);
                (v.name, links, size)
            })
            .collect();
        Ok((vols, per_container))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_configs_reads_the_asked_ones_in_one_go() {
        let dir = tempfile::tempdir().unwrap();
        let e = Engine::open(dir.path()).unwrap();
        for (id, name, label) in [("a", "one", "1"), ("b", "two", "2"), ("c", "three", "3")] {
            let mut cfg = ContainerConfig::default();
            cfg.labels.insert("n".into(), label.into());
            e.store
                .conn()
                .execute(
                    "INSERT INTO containers (id, name, image, image_id, command, created, state, auto_remove, config)
                     VALUES (?1, ?2, 'busybox', 'x', '[]', 0, 'created', 0, ?3)",
                    params![id.repeat(64), name, cfg.to_stored().unwrap()],
                )
                .unwrap();
        }
        let (a, c) = ("a".repeat(64), "c".repeat(64));
        let got = e.stored_configs([a.as_str(), c.as_str(), "gone"]).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[&a].labels["n"], "1");
        assert_eq!(got[&c].labels["n"], "3");
        assert!(e.stored_configs([]).unwrap().is_empty());
    }
}
