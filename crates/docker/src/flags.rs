//! `docker run`/`create`/`update` flags, as the docker CLI reads them, turned into the engine's
//! typed configuration: what `hako run` parses with clap goes through [`container_config`], so
//! the engine never sees a flag string. The value grammars (`-v`, `--ulimit`, sizes, ...) are the
//! engine's own ([`hako_engine::options`]), which also reads the flag strings older hako stored.

use hako_engine::config::{
    ContainerConfig, ContainerUpdate, ExtraHost, HealthConfig, LogConfig, Mount, NamespaceMode,
    PortBinding, Resources, RestartPolicy, ThrottleDevice, Ulimit, UsernsMode,
};
use hako_engine::{options, seccomp, Error, Network};
use std::time::Duration;

type Result<T> = std::result::Result<T, Error>;

/// `docker run`'s and `docker create`'s flags, as given (clap fills it in the CLI).
#[derive(Debug, Default, Clone)]
pub struct RunFlags {
    /// `--name`.
    pub name: Option<String>,
    /// `-e K=V` or `-e K` (taken from this process's environment when set there).
    pub env: Vec<String>,
    /// `--env-file`.
    pub env_file: Vec<String>,
    /// `-w`.
    pub workdir: Option<String>,
    /// `-h`.
    pub hostname: Option<String>,
    /// `--entrypoint` (`""` clears the image's).
    pub entrypoint: Option<String>,
    /// `-u`.
    pub user: Option<String>,
    /// `--network`.
    pub network: Option<String>,
    /// `-i`.
    pub interactive: bool,
    /// `-t`.
    pub tty: bool,
    /// `-d`.
    pub detach: bool,
    /// `--rm`.
    pub rm: bool,
    /// `--read-only`.
    pub read_only: bool,
    /// `--cgroup-parent`.
    pub cgroup_parent: Option<String>,
    /// `--stop-timeout`.
    pub stop_timeout: Option<u64>,
    /// `--stop-signal`.
    pub stop_signal: Option<String>,
    /// `--dns-search`.
    pub dns_search: Vec<String>,
    /// `--dns-option`.
    pub dns_option: Vec<String>,
    /// `--domainname`.
    pub domainname: Option<String>,
    /// `--oom-score-adj`.
    pub oom_score_adj: Option<i32>,
    /// `--label-file`: files of `KEY=VALUE` lines, before `-l`.
    pub label_file: Vec<String>,
    /// `--annotation KEY=VALUE`.
    pub annotation: Vec<String>,
    /// `--cgroupns host|private`.
    pub cgroupns: Option<String>,
    /// `-m`, `--memory-swap`, `--cpus`, `-c`, `--cpuset-cpus`, `--pids-limit`.
    pub resources: ResourceFlags,
    /// `--ulimit`.
    pub ulimit: Vec<String>,
    /// `--cap-add`.
    pub cap_add: Vec<String>,
    /// `--cap-drop`.
    pub cap_drop: Vec<String>,
    /// `--privileged`.
    pub privileged: bool,
    /// `-v`.
    pub volume: Vec<String>,
    /// `--tmpfs`.
    pub tmpfs: Vec<String>,
    /// `--mount`.
    pub mount: Vec<String>,
    /// `-l`.
    pub label: Vec<String>,
    /// `--add-host`.
    pub add_host: Vec<String>,
    /// `--dns`.
    pub dns: Vec<String>,
    /// `--group-add`.
    pub group_add: Vec<String>,
    /// `--sysctl`.
    pub sysctl: Vec<String>,
    /// `--shm-size`.
    pub shm_size: Option<String>,
    /// `--security-opt`.
    pub security_opt: Vec<String>,
    /// `--restart`.
    pub restart: Option<String>,
    /// `-p`.
    pub publish: Vec<String>,
    /// `-P`.
    pub publish_all: bool,
    /// `--ip`.
    pub ip: Option<String>,
    /// `--ip6`.
    pub ip6: Option<String>,
    /// `--network-alias`.
    pub network_alias: Vec<String>,
    /// `--mac-address`.
    pub mac_address: Option<String>,
    /// `--init`.
    pub init: bool,
    /// `--device`.
    pub device: Vec<String>,
    /// `--gpus`: NVIDIA's CDI devices (`all`, a count, `device=ID,…`).
    pub gpus: Option<String>,
    /// `--device-cgroup-rule`.
    pub device_cgroup_rule: Vec<String>,
    /// `--pid`.
    pub pid: Option<String>,
    /// `--ipc`.
    pub ipc: Option<String>,
    /// `--uts`.
    pub uts: Option<String>,
    /// `--userns`.
    pub userns: Option<String>,
    /// `--log-opt`.
    pub log_opt: Vec<String>,
    /// `--log-driver`.
    pub log_driver: Option<String>,
    /// `--health-cmd`.
    pub health_cmd: Option<String>,
    /// `--health-interval`.
    pub health_interval: Option<String>,
    /// `--health-timeout`.
    pub health_timeout: Option<String>,
    /// `--health-start-period`.
    pub health_start_period: Option<String>,
    /// `--health-start-interval`.
    pub health_start_interval: Option<String>,
    /// `--health-retries`.
    pub health_retries: Option<u32>,
    /// `--no-healthcheck`.
    pub no_healthcheck: bool,
    /// `--volumes-from C[:ro|rw]`.
    pub volumes_from: Vec<String>,
    /// `--link NAME[:ALIAS]`.
    pub link: Vec<String>,
    /// `--expose` (`80`, `80/udp`, `8000-8010/tcp`).
    pub expose: Vec<String>,
    /// `--cpu-period` and `--cpu-quota`, the blkio and OOM-killer flags and
    /// `--memory-reservation`.
    pub more: MoreResourceFlags,
    /// IMAGE [COMMAND] [ARG...].
    pub image_and_command: Vec<String>,
}

/// The resource flags `run`, `create` and `update` share.
#[derive(Debug, Default, Clone)]
pub struct ResourceFlags {
    /// `-m`.
    pub memory: Option<String>,
    /// `--memory-swap` (`-1`: unlimited).
    pub memory_swap: Option<String>,
    /// `--cpus`.
    pub cpus: Option<String>,
    /// `-c`.
    pub cpu_shares: Option<u64>,
    /// `--cpuset-cpus`.
    pub cpuset_cpus: Option<String>,
    /// `--pids-limit`.
    pub pids_limit: Option<i64>,
}

/// The limits only `run` and `create` take.
#[derive(Debug, Default, Clone)]
pub struct MoreResourceFlags {
    /// `--cpu-period` (microseconds).
    pub cpu_period: Option<i64>,
    /// `--cpu-quota` (microseconds per period).
    pub cpu_quota: Option<i64>,
    /// `--memory-reservation`.
    pub memory_reservation: Option<String>,
    /// `--oom-kill-disable`.
    pub oom_kill_disable: bool,
    /// `--blkio-weight` (10..=1000, 0 for the default).
    pub blkio_weight: Option<u16>,
    /// `--device-read-bps PATH:RATE`.
    pub device_read_bps: Vec<String>,
    /// `--device-write-bps PATH:RATE`.
    pub device_write_bps: Vec<String>,
    /// `--device-read-iops PATH:RATE`.
    pub device_read_iops: Vec<String>,
    /// `--device-write-iops PATH:RATE`.
    pub device_write_iops: Vec<String>,
    /// `--cpuset-mems`.
    pub cpuset_mems: Option<String>,
    /// `--memory-swappiness` (-1: not set).
    pub memory_swappiness: Option<i64>,
    /// `--blkio-weight-device PATH:WEIGHT`.
    pub blkio_weight_device: Vec<String>,
}

impl MoreResourceFlags {
    /// Each of these limits set (the tests of the flags and of the API's HostConfig compare
    /// what they become).
    #[cfg(test)]
    pub(crate) fn every_one_set() -> MoreResourceFlags {
        MoreResourceFlags {
            cpu_period: Some(50_000),
            cpu_quota: Some(-1),
            memory_reservation: Some("32m".into()),
            oom_kill_disable: true,
            blkio_weight: Some(300),
            device_read_bps: vec!["/dev/vda:1mb".into()],
            device_write_bps: vec!["/dev/vda:512".into()],
            device_read_iops: vec!["/dev/vda:100".into()],
            device_write_iops: vec!["/dev/vdb:7".into()],
            cpuset_mems: Some("0".into()),
            memory_swappiness: Some(10),
            blkio_weight_device: vec!["/dev/vda:200".into()],
        }
    }

    /// Docker's CLI reading of them (its errors for values it cannot parse); the daemon's
    /// checks are the engine's.
    fn apply(&self, r: &mut Resources) -> Result<()> {
        let throttle = |v: &[String], flag: &str, bytes: bool| {
            v.iter()
                .map(|t| ThrottleDevice::parse(t, flag, bytes))
                .collect::<Result<Vec<_>>>()
        };
        r.cpu_period = self.cpu_period;
        r.cpu_quota = self.cpu_quota;
        r.memory_reservation = self
            .memory_reservation
            .as_deref()
            .map(|m| options::parse_size(m, "--memory-reservation"))
            .transpose()?;
        r.oom_kill_disable = self.oom_kill_disable.then_some(true);
        r.blkio_weight = self.blkio_weight;
        r.blkio_device_read_bps = throttle(&self.device_read_bps, "--device-read-bps", true)?;
        r.blkio_device_write_bps = throttle(&self.device_write_bps, "--device-write-bps", true)?;
        r.blkio_device_read_iops = throttle(&self.device_read_iops, "--device-read-iops", false)?;
        r.blkio_device_write_iops =
            throttle(&self.device_write_iops, "--device-write-iops", false)?;
        r.cpuset_mems = self.cpuset_mems.clone();
        r.memory_swappiness = self.memory_swappiness.filter(|&s| s != -1);
        r.blkio_weight_device = self
            .blkio_weight_device
            .iter()
            .map(|w| hako_engine::config::parse_weight_device(w))
            .collect::<Result<_>>()?;
        Ok(())
    }
}

/// `--expose`: each port of a range, as Docker's CLI expands it.
fn exposed(expose: &[String]) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for e in expose {
        if e.contains(':') {
            return Err(Error::Invalid(format!(
                "invalid port format for --expose: {e}"
            )));
        }
        let (ports, proto) = e.split_once('/').unwrap_or((e.as_str(), "tcp"));
        let range = |why: &str| {
            Error::Invalid(format!(
                "invalid range format for --expose: {e}, error: {why}"
            ))
        };
        let port = |p: &str| {
            p.parse::<u16>()
                .map_err(|_| range(&format!("invalid port number: {p}")))
        };
        let (start, end) = match ports.split_once('-') {
            Some((a, b)) => (port(a)?, port(b)?),
            None => (port(ports)?, port(ports)?),
        };
        if end < start {
            return Err(range(&format!("invalid range specified for port: {ports}")));
        }
        for p in start..=end {
            let spec = format!("{p}/{proto}");
            hako_engine::hako_net::exposed_port_spec(&spec).map_err(|err| {
                Error::Invalid(format!("invalid port format for --expose: {err}"))
            })?;
            if !out.contains(&spec) {
                out.push(spec);
            }
        }
    }
    Ok(out)
}

/// A container to create: its name and configuration, and what to tell the user.
#[derive(Debug, Clone)]
pub struct Parsed {
    /// `--name`.
    pub name: Option<String>,
    /// The configuration.
    pub config: ContainerConfig,
    /// Options accepted with nothing to apply on this host (said, not silently ignored).
    pub warnings: Vec<String>,
}

/// A flag value refused, and who refuses it with Docker: its CLI (`docker create` then exits
/// 125) or its daemon (`create` exits 1). `run` exits 125 for both.
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct FlagError {
    /// What is wrong.
    pub error: Error,
    /// Docker's daemon, not its CLI, finds it.
    pub by_daemon: bool,
}

impl From<Error> for FlagError {
    fn from(error: Error) -> FlagError {
        FlagError {
            error,
            by_daemon: false,
        }
    }
}

/// A value Docker's CLI hands to its daemon as it is: the daemon refuses it, except where
/// the CLI parses it first (its errors are worded `invalid argument "…" for "…" flag`).
fn daemon<T>(r: Result<T>) -> std::result::Result<T, FlagError> {
    r.map_err(|error| FlagError {
        by_daemon: !error.to_string().starts_with("invalid argument \""),
        error,
    })
}

/// `docker run`'s reading of its flags into the configuration the engine creates a container
/// from; the engine checks the rest (the image, the network, names) when it creates it.
pub fn container_config(f: &RunFlags) -> std::result::Result<Parsed, FlagError> {
    let image = f
        .image_and_command
        .first()
        .ok_or_else(|| Error::Invalid("\"run\" requires at least 1 argument.".into()))?;
    let mut warnings = Vec::new();
    let network: Network = match f.network.as_deref() {
        None => Network::Default,
        Some(n) => n.parse()?,
    };
    let security = security_options(&f.security_opt, &mut warnings)?;
    if let Some(d) = f.log_driver.as_deref().filter(|d| *d != "json-file") {
        return Err(Error::Invalid(format!(
            "logging driver \"{d}\" is not supported: hako writes json-file logs"
        ))
        .into());
    }
    let mut mounts = daemon(ContainerConfig::mounts_from_flags(&f.volume, &[]))?;
    for m in &f.mount {
        mounts.push(parse_mount(m)?);
    }
    for t in &f.tmpfs {
        mounts.push(daemon(options::parse_tmpfs(t))?);
    }
    let env = environment(&f.env_file, &f.env)?;
    let mut port_bindings = Vec::new();
    for p in &f.publish {
        port_bindings.extend(PortBinding::parse(p)?);
    }
    // Docker's CLI reads the retry count, its daemon the policy's name.
    let restart_policy = match &f.restart {
        Some(r) if r.starts_with("on-failure:") => RestartPolicy::parse(r)?,
        Some(r) => daemon(RestartPolicy::parse(r))?,
        None => RestartPolicy::No,
    };
    if f.rm && restart_policy != RestartPolicy::No {
        return Err(Error::Invalid("Conflicting options: --restart and --rm".into()).into());
    }
    let kv = |v: &[String]| {
        v.iter()
            .map(|l| match l.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (l.clone(), String::new()),
            })
            .collect()
    };
    let mut sysctls = std::collections::BTreeMap::new();
    for s in &f.sysctl {
        let (k, v) = s.split_once('=').ok_or_else(|| {
            Error::Invalid(format!(
                "invalid argument \"{s}\" for \"--sysctl\" flag: sysctl '{s}' is not allowed"
            ))
        })?;
        sysctls.insert(k.to_string(), v.to_string());
    }
    let config = ContainerConfig {
        image: image.clone(),
        cmd: f.image_and_command[1..].to_vec(),
        entrypoint: f.entrypoint.as_ref().map(|e| {
            if e.is_empty() {
                Vec::new()
            } else {
                vec![e.clone()]
            }
        }),
        env,
        working_dir: f.workdir.clone(),
        hostname: f.hostname.clone(),
        user: f.user.clone(),
        group_add: f.group_add.clone(),
        labels: {
            let mut all = read_label_files(&f.label_file)?;
            all.extend(f.label.iter().cloned());
            kv(&all)
        },
        tty: f.tty,
        open_stdin: f.interactive,
        // As Docker's CLI sets it: `create -i` and `run -i` attach stdin once, `run -d -i`
        // keeps it open for any number of attaches.
        stdin_once: f.interactive && !f.detach,
        // As Docker's CLI records them without `-a` (the CLI sets them from `-a` for `run`).
        attach_stdin: f.interactive && !f.detach,
        attach_stdout: !f.detach,
        attach_stderr: !f.detach,
        stop_timeout: f.stop_timeout,
        stop_signal: f.stop_signal.clone(),
        dns_search: f.dns_search.clone(),
        dns_options: f.dns_option.clone(),
        domainname: f.domainname.clone(),
        oom_score_adj: f.oom_score_adj,
        annotations: f
            .annotation
            .iter()
            .map(|a| match a.split_once('=') {
                Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
                _ => Err(Error::Invalid(format!(
                    "invalid argument \"{a}\" for \"--annotation\" flag: bad format for annotation: {a}"
                ))),
            })
            .collect::<Result<_>>()?,
        healthcheck: healthcheck(f)?,
        auto_remove: f.rm,
        restart_policy,
        mounts,
        network,
        port_bindings,
        publish_all: f.publish_all,
        ip: daemon(
            f.ip.as_deref()
                .map(|i| {
                    i.parse()
                        .map_err(|_| Error::Invalid(format!("invalid IPv4 address: {i}")))
                })
                .transpose(),
        )?,
        ip6: daemon(
            f.ip6
                .as_deref()
                .map(|i| {
                    i.parse()
                        .map_err(|_| Error::Invalid(format!("invalid IPv6 address: {i}")))
                })
                .transpose(),
        )?,
        network_aliases: f.network_alias.clone(),
        mac_address: f.mac_address.clone(),
        dns: daemon(
            f.dns
                .iter()
                .map(|d| {
                    d.parse()
                        .map_err(|_| Error::Invalid(format!("{d} is not an ip address")))
                })
                .collect::<Result<_>>(),
        )?,
        extra_hosts: daemon(
            f.add_host
                .iter()
                .map(|h| ExtraHost::parse(h))
                .collect::<Result<_>>(),
        )?,
        resources: Resources {
            ulimits: daemon(
                f.ulimit
                    .iter()
                    .map(|u| Ulimit::parse(u))
                    .collect::<Result<_>>(),
            )?,
            devices: daemon(
                f.device
                    .iter()
                    .filter(|d| !hako_engine::cdi::is_cdi_name(d))
                    .map(|d| options::parse_device(d))
                    .collect::<Result<_>>(),
            )?,
            cdi_devices: daemon(cdi_devices(f))?,
            device_cgroup_rules: daemon(
                f.device_cgroup_rule
                    .iter()
                    .map(|r| options::parse_device_cgroup_rule(r).map(|_| r.clone()))
                    .collect::<Result<_>>(),
            )?,
            ..more_resources(f)?
        },
        cgroup_parent: f.cgroup_parent.clone(),
        cap_add: f.cap_add.clone(),
        cap_drop: f.cap_drop.clone(),
        privileged: f.privileged,
        read_only: f.read_only,
        sysctls,
        shm_size: daemon(
            f.shm_size
                .as_deref()
                .map(|s| options::parse_size(s, "--shm-size"))
                .transpose(),
        )?,
        no_new_privileges: security.no_new_privileges,
        seccomp: security.seccomp,
        security_opt: f.security_opt.clone(),
        pid_mode: daemon(mode(&f.pid, "--pid"))?,
        ipc_mode: daemon(mode(&f.ipc, "--ipc"))?,
        uts_mode: daemon(mode(&f.uts, "--uts"))?,
        cgroupns_host: cgroupns_host(f.cgroupns.as_deref())?,
        userns_mode: daemon(UsernsMode::parse(f.userns.as_deref().unwrap_or("")))?,
        log_config: daemon(LogConfig::parse(&f.log_opt))?,
        init: f.init,
        exposed_ports: exposed(&f.expose)?,
        volumes_from: f.volumes_from.clone(),
        links: f
            .link
            .iter()
            .map(|l| hako_engine::links::parse(l).map(|_| l.clone()))
            .collect::<Result<_>>()?,
        ..Default::default()
    };
    Ok(Parsed {
        name: f.name.clone(),
        config,
        warnings,
    })
}

/// The limits all of `run`'s and `create`'s flags give.
fn more_resources(f: &RunFlags) -> Result<Resources> {
    let mut r = f.resources.resources()?;
    f.more.apply(&mut r)?;
    Ok(r)
}

/// `-e NAME=VALUE`, or `-e NAME` taken from this process's environment (and left out when it
/// is not set there), as Docker's CLI reads it: the value is the caller's, not that of
/// whichever process starts the container later.
/// `--env-file` and `-e`, as `run`, `create` and `exec` take them: each file's `NAME=VALUE`
/// lines (a bare `NAME` takes this process's value, or nothing when it has none; blank lines
/// and `#` comments skipped), then `-e`, so the command line wins, as with Docker.
pub fn environment(env_files: &[String], env: &[String]) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for file in env_files {
        let text = std::fs::read_to_string(file)
            .map_err(|e| Error::Invalid(format!("open {file}: {e}")))?;
        for line in text.lines() {
            let line = line.trim_start();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let name = line.split_once('=').map_or(line, |(n, _)| n);
            if name.is_empty() || name.contains(char::is_whitespace) {
                return Err(Error::Invalid(format!(
                    "poorly formatted environment: variable '{}' contains whitespaces ({file})",
                    name.trim_end()
                )));
            }
            out.extend(env_entry(line));
        }
    }
    for e in env {
        out.extend(env_entry(e));
    }
    Ok(out)
}

/// `--cgroupns` (and the API's CgroupnsMode): whether the container keeps the host's cgroup
/// namespace.
pub fn cgroupns_host(mode: Option<&str>) -> Result<bool> {
    match mode.unwrap_or("") {
        "" | "private" => Ok(false),
        "host" => Ok(true),
        other => Err(Error::Invalid(format!(
            "invalid argument \"{other}\" for \"--cgroupns\" flag: must be host or private"
        ))),
    }
}

/// `--label-file`s' labels: a `KEY=VALUE` (or bare `KEY`) per line, blank lines and `#`
/// comments skipped, as Docker's CLI reads them.
fn read_label_files(files: &[String]) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(file)
            .map_err(|e| Error::Invalid(format!("open {file}: {e}")))?;
        out.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_owned),
        );
    }
    Ok(out)
}

/// `--device` values that are CDI names, then `--gpus`'s NVIDIA devices.
fn cdi_devices(f: &RunFlags) -> Result<Vec<String>> {
    let mut out: Vec<String> = f
        .device
        .iter()
        .filter(|d| hako_engine::cdi::is_cdi_name(d))
        .cloned()
        .collect();
    if let Some(g) = &f.gpus {
        out.extend(hako_engine::cdi::gpus(g)?);
    }
    Ok(out)
}

fn env_entry(e: &str) -> Option<String> {
    if e.contains('=') {
        return Some(e.to_string());
    }
    std::env::var(e).ok().map(|v| format!("{e}={v}"))
}

fn mode(m: &Option<String>, flag: &str) -> Result<NamespaceMode> {
    NamespaceMode::parse(m.as_deref().unwrap_or(""), flag)
}

impl ResourceFlags {
    /// Whether any limit is given.
    pub fn any(&self) -> bool {
        self.memory.is_some()
            || self.memory_swap.is_some()
            || self.cpus.is_some()
            || self.cpu_shares.is_some()
            || self.cpuset_cpus.is_some()
            || self.pids_limit.is_some()
    }

    /// The limits given, with Docker's CLI errors for values it cannot read.
    pub fn resources(&self) -> Result<Resources> {
        Ok(Resources {
            memory: self
                .memory
                .as_deref()
                .map(|m| options::parse_size(m, "-m, --memory"))
                .transpose()?,
            memory_swap: match self.memory_swap.as_deref() {
                None => None,
                Some("-1") => Some(-1),
                Some(s) => Some(options::parse_size(s, "--memory-swap")?),
            },
            nano_cpus: self
                .cpus
                .as_deref()
                .map(options::parse_nano_cpus)
                .transpose()?,
            cpu_shares: self.cpu_shares,
            cpuset_cpus: self.cpuset_cpus.clone(),
            pids_limit: self.pids_limit,
            ..Default::default()
        })
    }
}

/// `docker update`'s flags.
pub fn update(
    resources: &ResourceFlags,
    restart: Option<&str>,
) -> std::result::Result<ContainerUpdate, FlagError> {
    let r = resources.resources()?;
    Ok(ContainerUpdate {
        memory: r.memory,
        memory_swap: r.memory_swap,
        nano_cpus: r.nano_cpus,
        cpu_shares: r.cpu_shares,
        cpuset_cpus: r.cpuset_cpus,
        pids_limit: r.pids_limit,
        restart_policy: daemon(restart.map(RestartPolicy::parse).transpose())?,
    })
}

/// What `--security-opt` sets.
pub(crate) struct Security {
    pub(crate) no_new_privileges: bool,
    pub(crate) seccomp: seccomp::Seccomp,
}

pub(crate) fn security_options(opts: &[String], warnings: &mut Vec<String>) -> Result<Security> {
    let mut s = Security {
        no_new_privileges: false,
        seccomp: seccomp::Seccomp::Default,
    };
    for o in opts {
        // Docker accepts both KEY=VALUE and the older KEY:VALUE.
        let (key, value) = o.split_once(['=', ':']).unwrap_or((o.as_str(), ""));
        match (key, value) {
            ("no-new-privileges", "" | "true") => s.no_new_privileges = true,
            ("no-new-privileges", "false") => s.no_new_privileges = false,
            ("seccomp", v) if !v.is_empty() => s.seccomp = seccomp::Seccomp::from_option(v)?,
            ("apparmor", v) if !v.is_empty() => lsm_option("apparmor", o, warnings)?,
            ("label", "disable") => {}
            ("label", v) if !v.is_empty() => lsm_option("selinux", o, warnings)?,
            _ => {
                return Err(Error::Invalid(format!(
                    "Invalid --security-opt: {o:?} (supported: seccomp=FILE|unconfined, \
                     no-new-privileges[=true|false], apparmor=PROFILE, label=…)"
                )))
            }
        }
    }
    Ok(s)
}

/// `--security-opt apparmor=…` / `label=…`: hako cannot apply LSM profiles yet, so on a host
/// where the LSM is active that is an error (running unconfined would be a silent downgrade);
/// where it is not, there is nothing to apply, as with docker on such a host, and we say so.
fn lsm_option(lsm: &str, opt: &str, warnings: &mut Vec<String>) -> Result<()> {
    let active = std::fs::read_to_string("/sys/kernel/security/lsm")
        .map(|l| l.split(',').any(|n| n.trim() == lsm))
        .unwrap_or(false)
        || match lsm {
            "apparmor" => std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
                .is_ok_and(|v| v.trim() == "Y"),
            _ => std::path::Path::new("/sys/fs/selinux/enforce").exists(),
        };
    if active {
        return Err(Error::Invalid(format!(
            "--security-opt {opt}: applying {lsm} profiles is not supported yet"
        )));
    }
    warnings.push(format!(
        "{lsm} is not enabled on this host; ignoring --security-opt {opt}"
    ));
    Ok(())
}

/// Go's duration syntax of the `--health-*` flags, in nanoseconds.
fn duration(flag: &str, v: &str) -> Result<i64> {
    hako_engine::hako_base::duration::parse(v)
        .map(|d: Duration| d.as_nanos().min(i64::MAX as u128) as i64)
        .map_err(|_| {
            Error::Invalid(format!(
                "invalid argument \"{v}\" for \"{flag}\" flag: time: invalid duration \"{v}\""
            ))
        })
}

/// `--health-cmd` and friends; `--no-healthcheck` disables the image's.
fn healthcheck(f: &RunFlags) -> Result<Option<HealthConfig>> {
    let timing = f.health_interval.is_some()
        || f.health_timeout.is_some()
        || f.health_start_period.is_some()
        || f.health_start_interval.is_some()
        || f.health_retries.is_some();
    if f.no_healthcheck {
        if f.health_cmd.is_some() || timing {
            return Err(Error::Invalid(
                "--no-healthcheck conflicts with --health-* options".into(),
            ));
        }
        return Ok(Some(HealthConfig {
            test: vec!["NONE".into()],
            ..Default::default()
        }));
    }
    if f.health_cmd.is_none() && !timing {
        return Ok(None);
    }
    let d = |flag: &str, v: &Option<String>| -> Result<i64> {
        let n = v.as_deref().map(|v| duration(flag, v)).transpose()?;
        Ok(n.unwrap_or(0))
    };
    Ok(Some(HealthConfig {
        test: f
            .health_cmd
            .as_ref()
            .map(|c| vec!["CMD-SHELL".to_string(), c.clone()])
            .unwrap_or_default(),
        interval: d("--health-interval", &f.health_interval)?,
        timeout: d("--health-timeout", &f.health_timeout)?,
        start_period: d("--health-start-period", &f.health_start_period)?,
        start_interval: d("--health-start-interval", &f.health_start_interval)?,
        retries: f.health_retries.unwrap_or(0),
    }))
}

const PROPAGATIONS: [&str; 6] = [
    "private", "rprivate", "shared", "rshared", "slave", "rslave",
];

/// Docker's `--mount type=bind|volume|tmpfs,source=…,target=…[,readonly][,bind-propagation=…]
/// [,tmpfs-size=…][,tmpfs-mode=…]`. Unlike `-v`, a missing bind source is an error, as with
/// Docker.
pub fn parse_mount(s: &str) -> Result<Mount> {
    let bad = |why: String| {
        Error::Invalid(format!(
            "invalid argument \"{s}\" for \"--mount\" flag: {why}"
        ))
    };
    let mut typ = "volume".to_string();
    let (mut source, mut target) = (None::<String>, None::<String>);
    let mut readonly = false;
    let mut propagation = None::<String>;
    let mut tmpfs_opts = Vec::new();
    for field in s.split(',') {
        let (k, v) = match field.split_once('=') {
            Some((k, v)) => (k.trim(), Some(v.trim())),
            None => (field.trim(), None),
        };
        match (k, v) {
            ("type", Some(t)) => typ = t.to_string(),
            ("source" | "src", Some(v)) => source = Some(v.to_string()),
            ("target" | "destination" | "dst", Some(v)) => target = Some(v.to_string()),
            ("readonly" | "ro", None) => readonly = true,
            ("readonly" | "ro", Some(v)) => readonly = matches!(v, "1" | "true"),
            ("bind-propagation", Some(v)) => {
                if !PROPAGATIONS.contains(&v) {
                    return Err(bad(format!("invalid propagation mode: {v}")));
                }
                propagation = Some(v.to_string())
            }
            ("tmpfs-size", Some(v)) => {
                tmpfs_opts.push(format!("size={}", options::parse_size(v, "--mount")?))
            }
            ("tmpfs-mode", Some(v)) => tmpfs_opts.push(format!("mode={v}")),
            ("volume-nocopy" | "consistency", _) => {}
            (other, _) => return Err(bad(format!("unexpected key '{other}' in '{field}'"))),
        }
    }
    let target = target.ok_or_else(|| bad("target is required".into()))?;
    if !target.starts_with('/') {
        return Err(bad(format!(
            "invalid mount path: '{target}' mount path must be absolute"
        )));
    }
    if target == "/" {
        return Err(bad("invalid mount config: destination can't be '/'".into()));
    }
    match typ.as_str() {
        "bind" => {
            let src = source.ok_or_else(|| {
                bad("source is required when specifying volume-specific options".into())
            })?;
            if !src.starts_with('/') {
                return Err(bad(format!(
                    "invalid mount config for type \"bind\": invalid mount path: '{src}' mount path must be absolute"
                )));
            }
            if !std::path::Path::new(&src).exists() {
                return Err(Error::Invalid(format!(
                    "invalid mount config for type \"bind\": bind source path does not exist: {src}"
                )));
            }
            Ok(Mount::Bind {
                source: src,
                target,
                readonly,
                propagation: propagation.unwrap_or_else(|| "rprivate".into()),
            })
        }
        "volume" => {
            if let Some(name) = &source {
                if !hako_engine::names::valid(name) {
                    return Err(bad(format!(
                        "\"{name}\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed"
                    )));
                }
            }
            Ok(Mount::Volume {
                name: source,
                target,
                readonly,
            })
        }
        "tmpfs" => {
            if source.is_some() {
                return Err(bad("source is not supported for tmpfs mounts".into()));
            }
            Ok(Mount::Tmpfs {
                target,
                options: tmpfs_opts,
            })
        }
        other => Err(bad(format!("invalid mount type: {other}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(args: &[&str]) -> RunFlags {
        RunFlags {
            image_and_command: args.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn expose_expands_ranges_as_dockers_cli() {
        let mut f = flags(&["busybox"]);
        f.expose = vec!["80".into(), "7000-7002/udp".into(), "80/tcp".into()];
        assert_eq!(
            container_config(&f).unwrap().config.exposed_ports,
            ["80/tcp", "7000/udp", "7001/udp", "7002/udp"]
        );
        for (bad, want) in [
            ("80:80", "invalid port format for --expose: 80:80"),
            (
                "9-8",
                "invalid range format for --expose: 9-8, error: invalid range specified for port: 9-8",
            ),
        ] {
            f.expose = vec![bad.into()];
            let e = container_config(&f).unwrap_err();
            assert_eq!(e.error.to_string(), want);
        }
        f.expose = vec!["80/sctp".into()];
        assert!(container_config(&f).is_err());
    }

    #[test]
    fn io_rates_and_cfs_flags_become_typed() {
        let mut f = flags(&["busybox"]);
        f.more = MoreResourceFlags::every_one_set();
        let r = container_config(&f).unwrap().config.resources;
        assert_eq!((r.cpu_period, r.cpu_quota), (Some(50_000), Some(-1)));
        assert_eq!(r.memory_reservation, Some(32 << 20));
        assert_eq!(r.oom_kill_disable, Some(true));
        assert_eq!(r.blkio_weight, Some(300));
        let t = |path: &str, rate| ThrottleDevice {
            path: path.into(),
            rate,
        };
        assert_eq!(r.blkio_device_read_bps, [t("/dev/vda", 1 << 20)]);
        assert_eq!(r.blkio_device_write_bps, [t("/dev/vda", 512)]);
        assert_eq!(r.blkio_device_read_iops, [t("/dev/vda", 100)]);
        assert_eq!(r.blkio_device_write_iops, [t("/dev/vdb", 7)]);
        // Not given: nothing recorded (inspect shows Docker's zeros and null).
        let r = container_config(&flags(&["busybox"]))
            .unwrap()
            .config
            .resources;
        assert_eq!(r.oom_kill_disable, None);
        assert!(r.blkio_device_read_bps.is_empty());
        // Docker's CLI refuses these itself: `create` exits 125 for them too.
        for (field, bad, want) in [
            ("rbps", "/dev/vda", "bad format: /dev/vda"),
            ("rbps", "vda:1", "bad format for device path: vda:1"),
            (
                "rbps",
                "/dev/vda:-1",
                "invalid rate for device: /dev/vda:-1.",
            ),
            (
                "riops",
                "/dev/vda:1k",
                "invalid rate for device: /dev/vda:1k.",
            ),
        ] {
            let mut f = flags(&["busybox"]);
            match field {
                "rbps" => f.more.device_read_bps = vec![bad.into()],
                _ => f.more.device_read_iops = vec![bad.into()],
            }
            let e = container_config(&f).unwrap_err();
            assert!(!e.by_daemon);
            assert!(e.error.to_string().contains(want), "{bad}: {}", e.error);
        }
    }

    #[test]
    fn a_full_run_becomes_typed() {
        let mut f = flags(&["busybox", "sh", "-c", "x"]);
        f.name = Some("web".into());
        f.resources.memory = Some("64m".into());
        f.resources.cpus = Some("1.5".into());
        f.volume = vec!["/srv:/srv:ro".into(), "data:/data".into()];
        f.tmpfs = vec!["/run:size=1m".into()];
        f.publish = vec!["127.0.0.1:8080-8081:80-81/udp".into()];
        f.restart = Some("on-failure:3".into());
        f.label = vec!["a=b".into(), "c".into()];
        f.entrypoint = Some(String::new());
        f.interactive = true;
        f.ulimit = vec!["nofile=10:20".into()];
        f.ipc = Some("container:db".into());
        f.health_cmd = Some("true".into());
        f.health_interval = Some("1m30s".into());
        let p = container_config(&f).unwrap();
        assert_eq!(p.name.as_deref(), Some("web"));
        let c = p.config;
        assert_eq!(c.image, "busybox");
        assert_eq!(c.cmd, ["sh", "-c", "x"]);
        assert_eq!(c.entrypoint, Some(Vec::new()));
        assert_eq!(c.resources.memory, Some(64 << 20));
        assert_eq!(c.resources.nano_cpus, Some(1_500_000_000));
        assert_eq!(c.mounts.len(), 3);
        assert_eq!(c.port_bindings.len(), 2);
        assert_eq!(c.port_bindings[1].container_port, 81);
        assert_eq!(c.port_bindings[1].host_port, 8081);
        assert_eq!(c.restart_policy, RestartPolicy::OnFailure(3));
        assert_eq!(c.labels["c"], "");
        assert!(c.open_stdin && c.stdin_once);
        assert_eq!(c.resources.ulimits[0].name, "nofile");
        assert_eq!(c.ipc_mode, NamespaceMode::Container("db".into()));
        let h = c.healthcheck.unwrap();
        assert_eq!(h.test, ["CMD-SHELL", "true"]);
        assert_eq!(h.interval, 90_000_000_000);
    }

    #[test]
    fn flag_errors_are_dockers() {
        let mut f = flags(&["busybox"]);
        f.resources.memory = Some("lots".into());
        assert_eq!(
            container_config(&f).unwrap_err().to_string(),
            "invalid argument \"lots\" for \"-m, --memory\" flag: invalid size: 'lots'"
        );
        let mut f = flags(&["busybox"]);
        f.rm = true;
        f.restart = Some("always".into());
        assert!(container_config(&f)
            .unwrap_err()
            .to_string()
            .contains("Conflicting options"));
        // Docker's daemon, not its CLI, refuses a policy it does not know (`create` exits 1).
        let mut f = flags(&["busybox"]);
        f.restart = Some("sometimes".into());
        assert!(container_config(&f).unwrap_err().by_daemon);
        f.restart = Some("on-failure:x".into());
        assert!(!container_config(&f).unwrap_err().by_daemon);
        let mut f = flags(&["busybox"]);
        f.ulimit = vec!["nofile".into()];
        assert!(!container_config(&f).unwrap_err().by_daemon);
        let mut f = flags(&["busybox"]);
        f.log_driver = Some("syslog".into());
        assert!(container_config(&f).is_err());
        let mut f = flags(&["busybox"]);
        f.health_interval = Some("soon".into());
        assert!(container_config(&f)
            .unwrap_err()
            .to_string()
            .contains("--health-interval"));
        let mut f = flags(&["busybox"]);
        f.no_healthcheck = true;
        f.health_cmd = Some("true".into());
        assert!(container_config(&f).is_err());
    }

    /// `-e NAME` takes the value the caller has now; an unset one is left out.
    #[test]
    fn env_names_take_the_callers_values() {
        let mut f = flags(&["busybox"]);
        f.env = vec![
            "HOME".into(),
            "HAKO_NO_SUCH_VARIABLE_X".into(),
            "A=1".into(),
        ];
        let c = container_config(&f).unwrap().config;
        assert_eq!(
            c.env,
            [
                format!("HOME={}", std::env::var("HOME").unwrap()),
                "A=1".to_string()
            ]
        );
    }

    #[test]
    fn mounts_read_as_docker() {
        assert_eq!(
            parse_mount("type=bind,source=/tmp,target=/t,readonly").unwrap(),
            Mount::Bind {
                source: "/tmp".into(),
                target: "/t".into(),
                readonly: true,
                propagation: "rprivate".into()
            }
        );
        assert_eq!(
            parse_mount("type=volume,src=data,dst=/d").unwrap(),
            Mount::Volume {
                name: Some("data".into()),
                target: "/d".into(),
                readonly: false
            }
        );
        assert_eq!(
            parse_mount("type=tmpfs,target=/run,tmpfs-size=1m").unwrap(),
            Mount::Tmpfs {
                target: "/run".into(),
                options: vec!["size=1048576".into()]
            }
        );
        assert!(parse_mount("type=bind,source=/no/such/dir,target=/t")
            .unwrap_err()
            .to_string()
            .contains("bind source path does not exist"));
        assert!(parse_mount("type=bind,source=/tmp").is_err());
        assert!(parse_mount("type=nfs,target=/x").is_err());
        assert!(parse_mount("type=bind,source=/tmp,target=/t,bind-propagation=odd").is_err());
    }

    #[test]
    fn update_flags() {
        let r = ResourceFlags {
            memory: Some("1g".into()),
            ..Default::default()
        };
        let u = update(&r, Some("always")).unwrap();
        assert_eq!(u.memory, Some(1 << 30));
        assert_eq!(u.restart_policy, Some(RestartPolicy::Always));
        assert!(update(&ResourceFlags::default(), None).unwrap().is_empty());
    }
}
