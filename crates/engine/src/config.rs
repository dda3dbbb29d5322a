//! A container's configuration, typed: what Docker keeps in a container's `Config`,
//! `HostConfig` and `NetworkingConfig`, in the engine's own types. Front ends build it (the
//! CLI from `docker run`'s flags through `hako_docker::flags`, the API server from the create
//! request's JSON through `hako_docker::container`); the engine checks what only it can check
//! (an image, a network, limits the kernel takes) when the container is created, stores it in
//! the container's row and starts the container from it as it is, without parsing anything
//! again.
//!
//! The row holds it as JSON with a `version`. Rows written by earlier hako hold the flags as
//! they were typed (`RunOptions`: `"memory": "512m"`, `"volumes": ["/h:/c:ro"]`); they are
//! converted when read ([`ContainerConfig::from_stored`]), with the same grammars, so such a
//! container starts as it did.

use crate::{options, seccomp, Error, Network, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The version [`ContainerConfig::to_stored`] writes. Rows without one are version 1, the
/// flag strings of earlier hako.
pub const VERSION: u32 = 2;

/// Everything a container is created with.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ContainerConfig {
    /// The format of the stored document ([`VERSION`]).
    pub version: u32,
    /// The image as the user named it (a reference or an ID).
    pub image: String,
    /// Replaces the image's Cmd when not empty.
    pub cmd: Vec<String>,
    /// Replaces the image's Entrypoint (and drops its Cmd); `Some(vec![])` clears it.
    pub entrypoint: Option<Vec<String>>,
    /// `NAME=VALUE` entries, after the image's.
    pub env: Vec<String>,
    /// Overrides the image's WorkingDir (absolute).
    pub working_dir: Option<String>,
    /// The container's host name (default: the short ID).
    pub hostname: Option<String>,
    /// `NAME|UID[:GROUP|GID]`, overriding the image's USER.
    pub user: Option<String>,
    /// Supplementary groups (names are looked up in the image, numbers taken as they are).
    pub group_add: Vec<String>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// A pseudo-terminal as the container's stdio.
    pub tty: bool,
    /// The container's stdin stays open for attaches (`-i`).
    pub open_stdin: bool,
    /// Docker's StdinOnce: the first attach's end of input closes the container's stdin.
    pub stdin_once: bool,
    /// Docker's AttachStdin, AttachStdout and AttachStderr: the streams the creating client
    /// attached (`run` without `-d`: stdout and stderr, and stdin with `-i`; `-a` chooses).
    /// Recorded for `inspect`; every attach chooses its own streams.
    pub attach_stdin: bool,
    /// See [`ContainerConfig::attach_stdin`].
    pub attach_stdout: bool,
    /// See [`ContainerConfig::attach_stdin`].
    pub attach_stderr: bool,
    /// Seconds between a stop signal and SIGKILL (default 10).
    pub stop_timeout: Option<u64>,
    /// `--dns-search`: replaces the host's search domains (`.` alone: none).
    pub dns_search: Vec<String>,
    /// `--dns-option`: replaces the host's resolver options.
    pub dns_options: Vec<String>,
    /// `--domainname`: the UTS NIS domain name.
    pub domainname: Option<String>,
    /// `--oom-score-adj`, -1000 to 1000.
    pub oom_score_adj: Option<i32>,
    /// `--annotation`: passed to the runtime in the spec's annotations.
    pub annotations: BTreeMap<String, String>,
    /// The signal `stop` sends first (`--stop-signal`; default: the image's STOPSIGNAL, else
    /// SIGTERM), as the user wrote it.
    pub stop_signal: Option<String>,
    /// The health check, run by the `hako-health` helper while the container runs.
    pub healthcheck: Option<HealthConfig>,
    /// Removed when it exits.
    pub auto_remove: bool,
    /// What `--restart` says to do after an exit.
    pub restart_policy: RestartPolicy,
    /// Binds, volumes and tmpfs mounts, in the order given.
    pub mounts: Vec<Mount>,
    /// `--link NAME[:ALIAS]`.
    pub links: Vec<String>,
    /// `--volumes-from C[:ro|rw]`: resolved into `mounts` when the container is created,
    /// kept for inspect.
    pub volumes_from: Vec<String>,
    /// The network it is attached to when it starts.
    pub network: Network,
    /// Ports published on the host.
    pub port_bindings: Vec<PortBinding>,
    /// Every port the image exposes and [`exposed_ports`](Self::exposed_ports), on a free
    /// host port (`-P`).
    pub publish_all: bool,
    /// Ports exposed besides the image's (`--expose`, Config.ExposedPorts): `80/tcp`.
    pub exposed_ports: Vec<String>,
    /// A fixed IPv4 address on its network.
    pub ip: Option<Ipv4Addr>,
    /// A fixed IPv6 address on its network.
    pub ip6: Option<Ipv6Addr>,
    /// Names its network's name server answers for, besides its name and short ID.
    pub network_aliases: Vec<String>,
    /// A fixed MAC address.
    pub mac_address: Option<String>,
    /// Name servers of its `resolv.conf` instead of the host's.
    pub dns: Vec<IpAddr>,
    /// Lines added to its `/etc/hosts`.
    pub extra_hosts: Vec<ExtraHost>,
    /// Resource limits.
    pub resources: Resources,
    /// The cgroup its own is made under (default: hako's own cgroup).
    pub cgroup_parent: Option<String>,
    /// Capabilities added to Docker's default set (`ALL`, names with or without `CAP_`).
    pub cap_add: Vec<String>,
    /// Capabilities dropped from it.
    pub cap_drop: Vec<String>,
    /// Every capability and device, no seccomp filter.
    pub privileged: bool,
    /// The root filesystem is read-only.
    pub read_only: bool,
    /// Namespaced sysctls.
    pub sysctls: BTreeMap<String, String>,
    /// Bytes of `/dev/shm` (default 64 MiB).
    pub shm_size: Option<i64>,
    /// The process cannot gain privileges (setuid, file capabilities).
    pub no_new_privileges: bool,
    /// The seccomp profile (ignored with `privileged`, as in Docker).
    pub seccomp: seccomp::Seccomp,
    /// `--security-opt` as given, for inspect's HostConfig.SecurityOpt.
    pub security_opt: Vec<String>,
    /// Its PID namespace.
    pub pid_mode: NamespaceMode,
    /// `--cgroupns host`: the host's cgroup namespace instead of its own (the default).
    pub cgroupns_host: bool,
    /// Its IPC namespace.
    pub ipc_mode: NamespaceMode,
    /// Its UTS namespace.
    pub uts_mode: NamespaceMode,
    /// Its user namespace (`--userns`).
    pub userns_mode: UsernsMode,
    /// How its output is logged.
    pub log_config: LogConfig,
    /// hako-init runs as PID 1 in front of the command.
    pub init: bool,
    /// Overlays a build step mounts (`RUN --mount=type=bind` of a stage, or a writable one).
    pub overlays: Vec<crate::build_support::OverlayMount>,
    /// A build step: the root's overlay is mounted `volatile` where the kernel has it (5.10+),
    /// so the step's exit does not sync the whole filesystem; the builder syncs the layer it
    /// makes from the upper layer, and a crash discards the step anyway.
    pub volatile_rootfs: bool,
}

/// A mount of the container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Mount {
    /// A host path bind-mounted into the container.
    Bind {
        /// Absolute host path (created when missing, as `-v` does).
        source: String,
        /// Absolute container path.
        target: String,
        /// Mounted read-only.
        readonly: bool,
        /// Propagation (`rprivate` unless given).
        propagation: String,
    },
    /// A named volume, or an anonymous one (`name` None) made for the container.
    Volume {
        /// The volume; `None` makes an anonymous volume.
        name: Option<String>,
        /// Absolute container path.
        target: String,
        /// Mounted read-only.
        readonly: bool,
    },
    /// A tmpfs.
    Tmpfs {
        /// Absolute container path.
        target: String,
        /// Mount options after Docker's `nosuid,nodev,noexec` (`size=64m`, `mode=1777`, ...).
        options: Vec<String>,
    },
}

impl Mount {
    /// Where it appears in the container.
    pub fn target(&self) -> &str {
        match self {
            Mount::Bind { target, .. }
            | Mount::Volume { target, .. }
            | Mount::Tmpfs { target, .. } => target,
        }
    }
}

/// A port published on the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortBinding {
    /// The host address; `None` for all of them.
    pub host_ip: Option<IpAddr>,
    /// First acceptable host port; 0 for any free port.
    pub host_port: u16,
    /// Last acceptable host port (`host_port` for exactly one).
    pub host_port_end: u16,
    /// The port inside the container.
    pub container_port: u16,
    /// `tcp` or `udp`.
    pub protocol: Protocol,
}

/// A transport protocol of a published port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// TCP.
    #[default]
    Tcp,
    /// UDP.
    Udp,
}

impl Protocol {
    /// `tcp` or `udp`.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

impl PortBinding {
    /// What the network layer publishes.
    pub(crate) fn to_net(self) -> hako_net::PortSpec {
        hako_net::PortSpec {
            host_ip: self.host_ip,
            host_port: (self.host_port, self.host_port_end),
            container_port: self.container_port,
            proto: match self.protocol {
                Protocol::Tcp => hako_net::Proto::Tcp,
                Protocol::Udp => hako_net::Proto::Udp,
            },
        }
    }

    /// From the network layer's reading of a `-p` value.
    pub fn from_net(p: &hako_net::PortSpec) -> PortBinding {
        PortBinding {
            host_ip: p.host_ip,
            host_port: p.host_port.0,
            host_port_end: p.host_port.1,
            container_port: p.container_port,
            protocol: match p.proto {
                hako_net::Proto::Tcp => Protocol::Tcp,
                hako_net::Proto::Udp => Protocol::Udp,
            },
        }
    }

    /// Docker's `-p` syntax, one value (a range gives several bindings).
    pub fn parse(spec: &str) -> Result<Vec<PortBinding>> {
        Ok(hako_net::parse_port_spec(spec)
            .map_err(|e| Error::Invalid(e.to_string()))?
            .iter()
            .map(PortBinding::from_net)
            .collect())
    }
}

/// An `/etc/hosts` entry (`--add-host NAME:IP`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtraHost {
    /// The host name.
    pub name: String,
    /// Its address.
    pub ip: IpAddr,
}

impl ExtraHost {
    /// Docker's `NAME:IP` (or `NAME=IP`; an IPv6 address may be bracketed).
    pub fn parse(s: &str) -> Result<ExtraHost> {
        let line = options::parse_add_host(s)?;
        let (ip, name) = line.split_once('\t').expect("parse_add_host's format");
        Ok(ExtraHost {
            name: name.to_string(),
            ip: ip.parse().expect("checked by parse_add_host"),
        })
    }

    /// Docker's `NAME:IP` form, as inspect shows it.
    pub fn docker(&self) -> String {
        format!("{}:{}", self.name, self.ip)
    }
}

/// Resource limits (Docker's `Resources`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Resources {
    /// Memory limit in bytes.
    pub memory: Option<i64>,
    /// Memory plus swap in bytes; -1 for unlimited swap.
    pub memory_swap: Option<i64>,
    /// CPUs in billionths (`--cpus 1.5` is 1_500_000_000).
    pub nano_cpus: Option<i64>,
    /// Relative CPU weight.
    pub cpu_shares: Option<u64>,
    /// CPUs it may run on (`0-3`, `0,1`).
    pub cpuset_cpus: Option<String>,
    /// Most tasks at once; -1 or 0 for no limit.
    pub pids_limit: Option<i64>,
    /// rlimits of its processes.
    pub ulimits: Vec<Ulimit>,
    /// Host devices it gets.
    pub devices: Vec<options::DeviceRequest>,
    /// CDI devices it gets (`--device vendor.com/class=name`, `--gpus`), resolved against the
    /// CDI specifications at each start ([`crate::cdi`]).
    pub cdi_devices: Vec<String>,
    /// Device cgroup rules added to Docker's defaults (`c 42:* rmw`).
    pub device_cgroup_rules: Vec<String>,
    /// CFS period in microseconds (`--cpu-period`).
    pub cpu_period: Option<i64>,
    /// CFS quota in microseconds per period (`--cpu-quota`); -1 for none.
    pub cpu_quota: Option<i64>,
    /// Soft memory limit in bytes (`--memory-reservation`).
    pub memory_reservation: Option<i64>,
    /// `--oom-kill-disable`.
    pub oom_kill_disable: Option<bool>,
    /// Relative block I/O weight, 10..=1000 (`--blkio-weight`); 0 for the default.
    pub blkio_weight: Option<u16>,
    /// `--device-read-bps`.
    pub blkio_device_read_bps: Vec<ThrottleDevice>,
    /// `--device-write-bps`.
    pub blkio_device_write_bps: Vec<ThrottleDevice>,
    /// `--device-read-iops`.
    pub blkio_device_read_iops: Vec<ThrottleDevice>,
    /// `--device-write-iops`.
    pub blkio_device_write_iops: Vec<ThrottleDevice>,
    /// `--cpuset-mems`: the memory nodes it may use.
    pub cpuset_mems: Option<String>,
    /// `--memory-swappiness`, 0 to 100 (cgroup v1 only).
    pub memory_swappiness: Option<i64>,
    /// `--blkio-weight-device`: a block I/O weight per device (the `rate` is the weight).
    pub blkio_weight_device: Vec<ThrottleDevice>,
}

/// Docker's CLI reading of `--blkio-weight-device PATH:WEIGHT`.
pub fn parse_weight_device(s: &str) -> Result<ThrottleDevice> {
    let bad = |why: String| {
        Error::Invalid(format!(
            "invalid argument \"{s}\" for \"--blkio-weight-device\" flag: {why}"
        ))
    };
    let (path, weight) = s
        .split_once(':')
        .filter(|(p, _)| p.starts_with("/dev/"))
        .ok_or_else(|| bad(format!("bad format: {s}")))?;
    let weight: u64 = weight
        .parse()
        .ok()
        .filter(|w| (10..=1000).contains(w))
        .ok_or_else(|| bad(format!("invalid weight for device: {s}")))?;
    Ok(ThrottleDevice {
        path: path.to_string(),
        rate: weight,
    })
}

/// A per-device I/O rate (Docker's `ThrottleDevice`): bytes or operations per second.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThrottleDevice {
    /// The host's block device, e.g. `/dev/vda`.
    pub path: String,
    /// The limit per second.
    pub rate: u64,
}

impl ThrottleDevice {
    /// Docker's CLI reading of `PATH:RATE`: bytes with Docker's units (`1mb`) when `bytes`,
    /// a plain count of operations otherwise.
    pub fn parse(s: &str, flag: &str, bytes: bool) -> Result<ThrottleDevice> {
        let bad = |why: String| {
            Error::Invalid(format!(
                "invalid argument \"{s}\" for \"{flag}\" flag: {why}"
            ))
        };
        let (path, rate) = match s.split(':').collect::<Vec<_>>()[..] {
            [path, rate] => (path, rate),
            _ => return Err(bad(format!("bad format: {s}"))),
        };
        if !path.starts_with("/dev/") {
            return Err(bad(format!("bad format for device path: {s}")));
        }
        let rate = if bytes {
            hako_base::size::parse_ram(rate)
                .ok()
                .and_then(|r| u64::try_from(r).ok())
                .ok_or_else(|| {
                    bad(format!(
                        "invalid rate for device: {s}. The correct format is \
                         <device-path>:<number>[<unit>]. Number must be a positive integer. \
                         Unit is optional and can be kb, mb, or gb"
                    ))
                })?
        } else {
            rate.parse::<u64>().map_err(|_| {
                bad(format!(
                    "invalid rate for device: {s}. The correct format is \
                     <device-path>:<number>. Number must be a positive integer"
                ))
            })?
        };
        Ok(ThrottleDevice {
            path: path.to_string(),
            rate,
        })
    }
}

/// An rlimit (`--ulimit nofile=1024:2048`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ulimit {
    /// Docker's name: `nofile`, `nproc`, `core`, ...
    pub name: String,
    /// Soft limit (`u64::MAX`: unlimited).
    pub soft: u64,
    /// Hard limit.
    pub hard: u64,
}

impl Ulimit {
    /// Docker's `NAME=SOFT[:HARD]`.
    pub fn parse(s: &str) -> Result<Ulimit> {
        let (name, soft, hard) = options::parse_ulimit(s)?;
        let name = name
            .strip_prefix("RLIMIT_")
            .unwrap_or(&name)
            .to_ascii_lowercase();
        Ok(Ulimit { name, soft, hard })
    }

    /// The OCI name (`RLIMIT_NOFILE`).
    pub(crate) fn oci_name(&self) -> String {
        format!("RLIMIT_{}", self.name.to_ascii_uppercase())
    }
}

/// A `--restart` policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(
    tag = "name",
    content = "maximum_retry_count",
    rename_all = "kebab-case"
)]
pub enum RestartPolicy {
    /// Never restart.
    #[default]
    No,
    /// Restart after a non-zero exit, at most this many times (0 = no limit).
    OnFailure(u32),
    /// Always restart (unless stopped by the user).
    Always,
    /// Like always; in Docker they differ only at daemon start, which hako does not have.
    UnlessStopped,
}

impl RestartPolicy {
    /// Docker's syntax.
    pub fn parse(s: &str) -> Result<RestartPolicy> {
        match s {
            "" | "no" => Ok(RestartPolicy::No),
            "always" => Ok(RestartPolicy::Always),
            "unless-stopped" => Ok(RestartPolicy::UnlessStopped),
            "on-failure" => Ok(RestartPolicy::OnFailure(0)),
            other => match other.strip_prefix("on-failure:").map(|n| n.parse::<u32>()) {
                Some(Ok(n)) => Ok(RestartPolicy::OnFailure(n)),
                Some(Err(_)) => Err(Error::Invalid(format!(
                    "invalid restart policy: maximum retry count must be an integer: {other}"
                ))),
                None => Err(Error::Invalid(format!("invalid restart policy '{other}'"))),
            },
        }
    }

    /// Docker's name: `no`, `on-failure`, `always`, `unless-stopped`.
    pub fn name(self) -> &'static str {
        match self {
            RestartPolicy::No => "no",
            RestartPolicy::OnFailure(_) => "on-failure",
            RestartPolicy::Always => "always",
            RestartPolicy::UnlessStopped => "unless-stopped",
        }
    }

    /// The retry limit of `on-failure` (0 otherwise, and for no limit).
    pub fn maximum_retry_count(self) -> u32 {
        match self {
            RestartPolicy::OnFailure(n) => n,
            _ => 0,
        }
    }

    /// Whether a container that exited with `code`, restarted `count` times so far, restarts.
    pub fn restarts(self, code: i32, count: u32) -> bool {
        match self {
            RestartPolicy::No => false,
            RestartPolicy::Always | RestartPolicy::UnlessStopped => true,
            RestartPolicy::OnFailure(max) => code != 0 && (max == 0 || count < max),
        }
    }
}

/// Which namespace of a kind (pid, ipc, uts) the container is in.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NamespaceMode {
    /// Its own (Docker's "private", and "" for pid and uts).
    #[default]
    Private,
    /// Its own, which others may join (`--ipc shareable`, Docker's default for IPC).
    Shareable,
    /// The host's.
    Host,
    /// That of another container (`container:NAME`).
    Container(String),
}

impl NamespaceMode {
    /// Docker's syntax for `--pid`, `--ipc` or `--uts` (`flag`); `uts` takes only `host`.
    pub fn parse(s: &str, flag: &str) -> Result<NamespaceMode> {
        let bad = || Error::Invalid(format!("invalid {flag} mode: {s}"));
        match s {
            "" | "private" => Ok(NamespaceMode::Private),
            "shareable" if flag == "--ipc" => Ok(NamespaceMode::Shareable),
            "host" => Ok(NamespaceMode::Host),
            other => match other.strip_prefix("container:") {
                Some(c) if !c.is_empty() && flag != "--uts" => {
                    Ok(NamespaceMode::Container(c.to_string()))
                }
                _ => Err(bad()),
            },
        }
    }

    /// Docker's name of the mode (inspect's PidMode, IpcMode, UTSMode).
    pub fn docker(&self, private: &str) -> String {
        match self {
            NamespaceMode::Private => private.to_string(),
            NamespaceMode::Shareable => "shareable".into(),
            NamespaceMode::Host => "host".into(),
            NamespaceMode::Container(c) => format!("container:{c}"),
        }
    }
}

/// `--userns`: which user namespace a container gets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UsernsMode {
    /// The engine's: for root the host's, rootless the user's namespace (the user is root
    /// inside, its subordinate ids the rest).
    #[default]
    Default,
    /// `host`: the host's ids, which rootless hako cannot give.
    Host,
    /// `keep-id` (Podman's): rootless, the user's own uid and gid are the same inside, and the
    /// container runs as them.
    KeepId,
}

impl UsernsMode {
    /// Docker's and Podman's syntax.
    pub fn parse(s: &str) -> Result<UsernsMode> {
        match s {
            "" => Ok(UsernsMode::Default),
            "host" => Ok(UsernsMode::Host),
            "keep-id" => Ok(UsernsMode::KeepId),
            other => Err(Error::Invalid(format!(
                "invalid --userns mode: {other} (use host or keep-id)"
            ))),
        }
    }

    /// Inspect's HostConfig.UsernsMode.
    pub fn docker(&self) -> &'static str {
        match self {
            UsernsMode::Default => "",
            UsernsMode::Host => "host",
            UsernsMode::KeepId => "keep-id",
        }
    }
}

/// The log driver and its options. Only Docker's json-file driver exists here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LogConfig {
    /// Bytes after which the log is rotated; 0 for never.
    pub max_size: u64,
    /// Files kept, the current one included (1 without rotation).
    pub max_file: u32,
}

/// No options: one file, never rotated (what [`LogConfig::parse`] makes of no options, so a
/// container created through the API without a LogConfig equals one made by the CLI).
impl Default for LogConfig {
    fn default() -> LogConfig {
        LogConfig {
            max_size: 0,
            max_file: 1,
        }
    }
}

impl LogConfig {
    /// `--log-opt` values of the json-file driver (`max-size=10m`, `max-file=3`).
    pub fn parse(opts: &[String]) -> Result<LogConfig> {
        let (mut max_size, mut max_file) = (0u64, 1u32);
        for o in opts {
            match o.split_once('=') {
                Some(("max-size", v)) => {
                    max_size = options::parse_size(v, "--log-opt max-size")? as u64
                }
                Some(("max-file", v)) => {
                    max_file =
                        v.parse().ok().filter(|&n| n >= 1).ok_or_else(|| {
                            Error::Invalid(format!("invalid value for max-file: {v}"))
                        })?
                }
                _ => {
                    return Err(Error::Invalid(format!(
                        "unknown log opt '{o}' for json-file log driver"
                    )))
                }
            }
        }
        let c = LogConfig { max_size, max_file };
        c.check()?;
        Ok(c)
    }

    pub(crate) fn check(&self) -> Result<()> {
        if self.max_file > 1 && self.max_size == 0 {
            return Err(Error::Invalid(
                "max-file cannot be set without max-size".into(),
            ));
        }
        Ok(())
    }

    /// Files kept, at least one.
    pub fn files(&self) -> u32 {
        self.max_file.max(1)
    }
}

/// Docker's HEALTHCHECK, as `--health-*` or the API give it. Durations are nanoseconds, 0
/// meaning the default (inherited from the image).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct HealthConfig {
    /// `["NONE"]`, `["CMD", args...]` or `["CMD-SHELL", command]`.
    pub test: Vec<String>,
    /// Between checks.
    pub interval: i64,
    /// Before a check counts as failed.
    pub timeout: i64,
    /// Grace period after the start.
    pub start_period: i64,
    /// Between checks during the start period.
    pub start_interval: i64,
    /// Consecutive failures that make it unhealthy (0: the default).
    pub retries: u32,
}

impl ContainerConfig {
    /// The stored form, with the current [`VERSION`].
    pub fn to_stored(&self) -> Result<String> {
        let mut c = self.clone();
        c.version = VERSION;
        serde_json::to_string(&c).map_err(|e| Error::Invalid(format!("store configuration: {e}")))
    }

    /// Reads a stored configuration, converting what earlier hako wrote.
    pub fn from_stored(text: &str) -> Result<ContainerConfig> {
        let bad = |e: serde_json::Error| Error::Invalid(format!("stored configuration: {e}"));
        // Every row hako writes now is the current version: read it straight into the type
        // (a listing reads hundreds). A legacy or newer document, which that does not give,
        // takes the way through a generic value, which tells them apart.
        if let Ok(c) = serde_json::from_str::<ContainerConfig>(text) {
            if c.version == VERSION {
                return Ok(c);
            }
        }
        let v: serde_json::Value = serde_json::from_str(text).map_err(bad)?;
        match v.get("version").and_then(|n| n.as_u64()) {
            Some(n) if n == u64::from(VERSION) => serde_json::from_value(v).map_err(bad),
            Some(n) => Err(Error::Invalid(format!(
                "stored configuration: version {n} is newer than this hako ({VERSION})"
            ))),
            None => serde_json::from_value::<legacy::RunOptions>(v)
                .map_err(bad)?
                .convert(),
        }
    }

    /// The effective restart policy with `--rm`: none.
    pub(crate) fn check(&self) -> Result<()> {
        if self.auto_remove && self.restart_policy != RestartPolicy::No {
            return Err(Error::Invalid(
                "Conflicting options: --restart and --rm".into(),
            ));
        }
        self.log_config.check()?;
        // Each becomes a word of a resolv.conf line: a space or line break would make others.
        for (what, values) in [
            ("DNS search domain", &self.dns_search),
            ("DNS option", &self.dns_options),
        ] {
            if let Some(v) = values
                .iter()
                .find(|v| v.is_empty() || v.chars().any(|c| c.is_whitespace() || c.is_control()))
            {
                return Err(Error::Invalid(format!("invalid {what}: {v:?}")));
            }
        }
        if let Some(adj) = self.oom_score_adj {
            if !(-1000..=1000).contains(&adj) {
                return Err(Error::Invalid(format!(
                    "Invalid value {adj}, range for oom score adj is [-1000, 1000]"
                )));
            }
        }
        if self.domainname.is_some() && self.uts_mode == NamespaceMode::Host {
            return Err(Error::Invalid(
                "conflicting options: domainname and the UTS mode host".into(),
            ));
        }
        if let Some(s) = &self.stop_signal {
            if hako_base::signal::parse(s).is_none() {
                return Err(Error::Invalid(format!("invalid stop signal: {s}")));
            }
        }
        for m in &self.mounts {
            if !m.target().starts_with('/') {
                return Err(Error::Invalid(format!(
                    "invalid mount config: the mount destination {} must be an absolute path",
                    m.target()
                )));
            }
        }
        Ok(())
    }

    /// The mounts of `-v` and `--tmpfs` values (what a build step asks for).
    pub fn mounts_from_flags(volumes: &[String], tmpfs: &[String]) -> Result<Vec<Mount>> {
        let mut out = Vec::with_capacity(volumes.len() + tmpfs.len());
        for v in volumes {
            out.push(options::parse_volume(v)?);
        }
        for t in tmpfs {
            out.push(options::parse_tmpfs(t)?);
        }
        Ok(out)
    }
}

/// A partial change of a container's configuration (`docker update`): what is `Some` replaces.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContainerUpdate {
    /// Memory limit in bytes.
    pub memory: Option<i64>,
    /// Memory plus swap in bytes, -1 for unlimited.
    pub memory_swap: Option<i64>,
    /// CPUs in billionths.
    pub nano_cpus: Option<i64>,
    /// Relative CPU weight.
    pub cpu_shares: Option<u64>,
    /// CPUs it may run on.
    pub cpuset_cpus: Option<String>,
    /// Most tasks at once.
    pub pids_limit: Option<i64>,
    /// The restart policy.
    pub restart_policy: Option<RestartPolicy>,
}

impl ContainerUpdate {
    /// Whether it changes anything.
    pub fn is_empty(&self) -> bool {
        *self == ContainerUpdate::default()
    }

    pub(crate) fn apply(&self, c: &mut ContainerConfig) {
        let r = &mut c.resources;
        r.memory = self.memory.or(r.memory);
        r.memory_swap = self.memory_swap.or(r.memory_swap);
        r.nano_cpus = self.nano_cpus.or(r.nano_cpus);
        r.cpu_shares = self.cpu_shares.or(r.cpu_shares);
        if let Some(s) = &self.cpuset_cpus {
            r.cpuset_cpus = Some(s.clone());
        }
        r.pids_limit = self.pids_limit.or(r.pids_limit);
        if let Some(p) = self.restart_policy {
            c.restart_policy = p;
        }
    }
}

/// What hako before the typed configuration stored: the flags, as typed.
mod legacy {
    use super::*;

    #[derive(Debug, Default, Deserialize)]
    #[serde(default)]
    pub(super) struct RunOptions {
        image: String,
        cmd: Vec<String>,
        env: Vec<String>,
        workdir: Option<String>,
        hostname: Option<String>,
        entrypoint: Option<String>,
        user: Option<String>,
        network: Network,
        auto_remove: bool,
        interactive: bool,
        stdin_once: bool,
        read_only: bool,
        cgroup_parent: Option<String>,
        stop_timeout: Option<u64>,
        memory: Option<String>,
        memory_swap: Option<String>,
        cpus: Option<String>,
        cpu_shares: Option<u64>,
        cpuset_cpus: Option<String>,
        pids_limit: Option<i64>,
        ulimits: Vec<String>,
        cap_add: Vec<String>,
        cap_drop: Vec<String>,
        privileged: bool,
        volumes: Vec<String>,
        tmpfs: Vec<String>,
        labels: Vec<String>,
        add_hosts: Vec<String>,
        dns: Vec<String>,
        group_add: Vec<String>,
        sysctls: Vec<String>,
        shm_size: Option<String>,
        no_new_privileges: bool,
        restart: Option<String>,
        publish: Vec<String>,
        publish_all: bool,
        tty: bool,
        pid_mode: Option<String>,
        devices: Vec<String>,
        device_cgroup_rules: Vec<String>,
        ipc_mode: Option<String>,
        uts_mode: Option<String>,
        log_opts: Vec<String>,
        ip: Option<String>,
        ip6: Option<String>,
        network_aliases: Vec<String>,
        mac_address: Option<String>,
        overlays: Vec<crate::build_support::OverlayMount>,
        volatile_rootfs: bool,
        init: bool,
        seccomp: seccomp::Seccomp,
        security_opt: Vec<String>,
    }

    impl RunOptions {
        /// The typed configuration, read with the grammars the flags had.
        pub(super) fn convert(self) -> Result<ContainerConfig> {
            let mode = |m: &Option<String>, flag: &str| {
                NamespaceMode::parse(m.as_deref().unwrap_or(""), flag)
            };
            let split = |kv: &String| match kv.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (kv.clone(), String::new()),
            };
            let mut port_bindings = Vec::new();
            for p in &self.publish {
                port_bindings.extend(PortBinding::parse(p)?);
            }
            let resources = Resources {
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
                cpuset_cpus: self.cpuset_cpus,
                pids_limit: self.pids_limit,
                ulimits: self
                    .ulimits
                    .iter()
                    .map(|u| Ulimit::parse(u))
                    .collect::<Result<_>>()?,
                devices: self
                    .devices
                    .iter()
                    .map(|d| options::parse_device(d))
                    .collect::<Result<_>>()?,
                device_cgroup_rules: self.device_cgroup_rules,
                // Older hako had none of the others.
                ..Default::default()
            };
            Ok(ContainerConfig {
                version: VERSION,
                image: self.image,
                cmd: self.cmd,
                entrypoint: self.entrypoint.map(
                    |e| {
                        if e.is_empty() {
                            Vec::new()
                        } else {
                            vec![e]
                        }
                    },
                ),
                env: self.env,
                working_dir: self.workdir,
                hostname: self.hostname,
                user: self.user,
                group_add: self.group_add,
                labels: self.labels.iter().map(split).collect(),
                tty: self.tty,
                open_stdin: self.interactive,
                stdin_once: self.stdin_once,
                // These rows did not record `-d` or `-a`: inspect shows what it showed then.
                attach_stdin: self.interactive,
                attach_stdout: false,
                attach_stderr: false,
                stop_timeout: self.stop_timeout,
                stop_signal: None,
                dns_search: Vec::new(),
                dns_options: Vec::new(),
                domainname: None,
                oom_score_adj: None,
                annotations: BTreeMap::new(),
                healthcheck: None,
                auto_remove: self.auto_remove,
                restart_policy: RestartPolicy::parse(self.restart.as_deref().unwrap_or(""))?,
                mounts: ContainerConfig::mounts_from_flags(&self.volumes, &self.tmpfs)?,
                volumes_from: Vec::new(),
                links: Vec::new(),
                network: self.network,
                port_bindings,
                publish_all: self.publish_all,
                exposed_ports: Vec::new(),
                ip: self
                    .ip
                    .as_deref()
                    .map(|i| {
                        i.parse()
                            .map_err(|_| Error::Invalid(format!("invalid IPv4 address: {i}")))
                    })
                    .transpose()?,
                ip6: self
                    .ip6
                    .as_deref()
                    .map(|i| {
                        i.parse()
                            .map_err(|_| Error::Invalid(format!("invalid IPv6 address: {i}")))
                    })
                    .transpose()?,
                network_aliases: self.network_aliases,
                mac_address: self.mac_address,
                dns: self
                    .dns
                    .iter()
                    .map(|d| {
                        d.parse()
                            .map_err(|_| Error::Invalid(format!("{d} is not an ip address")))
                    })
                    .collect::<Result<_>>()?,
                extra_hosts: self
                    .add_hosts
                    .iter()
                    .map(|h| ExtraHost::parse(h))
                    .collect::<Result<_>>()?,
                resources,
                cgroup_parent: self.cgroup_parent,
                cap_add: self.cap_add,
                cap_drop: self.cap_drop,
                privileged: self.privileged,
                read_only: self.read_only,
                sysctls: self.sysctls.iter().map(split).collect(),
                shm_size: self
                    .shm_size
                    .as_deref()
                    .map(|s| options::parse_size(s, "--shm-size"))
                    .transpose()?,
                no_new_privileges: self.no_new_privileges,
                seccomp: self.seccomp,
                security_opt: self.security_opt,
                pid_mode: mode(&self.pid_mode, "--pid")?,
                ipc_mode: mode(&self.ipc_mode, "--ipc")?,
                uts_mode: mode(&self.uts_mode, "--uts")?,
                cgroupns_host: false,
                userns_mode: UsernsMode::Default,
                log_config: LogConfig::parse(&self.log_opts)?,
                init: self.init,
                overlays: self.overlays,
                volatile_rootfs: self.volatile_rootfs,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A row as hako 0.1 before the typed configuration wrote it for
    /// `run -d --name web -m 64m --cpus 1.5 -v /srv:/srv:ro -v data:/data --tmpfs /run:size=1m
    /// -p 8080:80 --restart on-failure:3 -l a=b --ulimit nofile=10:20 --log-opt max-size=1m
    /// --log-opt max-file=2 --ipc host --add-host db:10.0.0.5 --dns 1.1.1.1 --sysctl
    /// net.ipv4.ip_forward=1 --shm-size 1g --device /dev/fuse --entrypoint sh busybox -c x`.
    const LEGACY: &str = r#"{"image":"busybox","cmd":["-c","x"],"name":"web","env":["A=1"],
        "workdir":null,"hostname":null,"entrypoint":"sh","user":null,"network":"Default",
        "auto_remove":false,"interactive":false,"stdin_once":false,"read_only":false,
        "cgroup_parent":null,"stop_timeout":null,"detach":true,"memory":"64m",
        "memory_swap":null,"cpus":"1.5","cpu_shares":null,"cpuset_cpus":null,"pids_limit":null,
        "ulimits":["nofile=10:20"],"cap_add":[],"cap_drop":[],"privileged":false,
        "volumes":["/srv:/srv:ro","data:/data"],"tmpfs":["/run:size=1m"],"labels":["a=b"],
        "add_hosts":["db:10.0.0.5"],"dns":["1.1.1.1"],"group_add":[],
        "sysctls":["net.ipv4.ip_forward=1"],"shm_size":"1g","no_new_privileges":false,
        "restart":"on-failure:3","publish":["8080:80"],"publish_all":false,"tty":false,
        "pid_mode":null,"devices":["/dev/fuse"],"device_cgroup_rules":[],"ipc_mode":"host",
        "uts_mode":null,"log_opts":["max-size=1m","max-file=2"],"ip":null,"ip6":null,
        "network_aliases":[],"mac_address":null,"overlays":[],"volatile_rootfs":false,
        "init":false,"seccomp":"Default","security_opt":[]}"#;

    #[test]
    fn rows_of_earlier_hako_are_converted() {
        let c = ContainerConfig::from_stored(LEGACY).unwrap();
        assert_eq!(c.version, VERSION);
        assert_eq!(c.entrypoint, Some(vec!["sh".to_string()]));
        assert_eq!(c.cmd, ["-c", "x"]);
        assert_eq!(c.resources.memory, Some(64 << 20));
        assert_eq!(c.resources.nano_cpus, Some(1_500_000_000));
        assert_eq!(
            c.resources.ulimits,
            [Ulimit {
                name: "nofile".into(),
                soft: 10,
                hard: 20
            }]
        );
        assert_eq!(c.resources.devices[0].container, "/dev/fuse");
        assert_eq!(
            c.mounts,
            [
                Mount::Bind {
                    source: "/srv".into(),
                    target: "/srv".into(),
                    readonly: true,
                    propagation: "rprivate".into()
                },
                Mount::Volume {
                    name: Some("data".into()),
                    target: "/data".into(),
                    readonly: false
                },
                Mount::Tmpfs {
                    target: "/run".into(),
                    options: vec!["size=1m".into()]
                },
            ]
        );
        assert_eq!(
            c.port_bindings,
            [PortBinding {
                host_ip: None,
                host_port: 8080,
                host_port_end: 8080,
                container_port: 80,
                protocol: Protocol::Tcp
            }]
        );
        assert_eq!(c.restart_policy, RestartPolicy::OnFailure(3));
        assert_eq!(c.labels["a"], "b");
        assert_eq!(c.sysctls["net.ipv4.ip_forward"], "1");
        assert_eq!(c.shm_size, Some(1 << 30));
        assert_eq!(c.ipc_mode, NamespaceMode::Host);
        assert_eq!(c.extra_hosts[0].docker(), "db:10.0.0.5");
        assert_eq!(c.dns, ["1.1.1.1".parse::<IpAddr>().unwrap()]);
        assert_eq!(
            c.log_config,
            LogConfig {
                max_size: 1 << 20,
                max_file: 2
            }
        );
        // The converted row reads back the same once stored in the current form.
        let again = ContainerConfig::from_stored(&c.to_stored().unwrap()).unwrap();
        assert_eq!(again, c);
    }

    #[test]
    fn an_empty_legacy_row_is_the_default() {
        let c = ContainerConfig::from_stored("{}").unwrap();
        assert_eq!(
            c,
            ContainerConfig {
                version: VERSION,
                log_config: LogConfig {
                    max_size: 0,
                    max_file: 1
                },
                ..Default::default()
            }
        );
        // `--entrypoint ""` cleared the image's.
        let c = ContainerConfig::from_stored(r#"{"entrypoint":""}"#).unwrap();
        assert_eq!(c.entrypoint, Some(Vec::new()));
    }

    #[test]
    fn a_newer_version_is_refused() {
        let e = ContainerConfig::from_stored(r#"{"version":99}"#).unwrap_err();
        assert!(e.to_string().contains("version 99 is newer"), "{e}");
    }

    #[test]
    fn restart_policies() {
        assert_eq!(
            RestartPolicy::parse("on-failure:5").unwrap(),
            RestartPolicy::OnFailure(5)
        );
        assert_eq!(RestartPolicy::parse("").unwrap(), RestartPolicy::No);
        assert!(RestartPolicy::parse("on-failure:x").is_err());
        assert!(RestartPolicy::parse("sometimes").is_err());
        let p = RestartPolicy::OnFailure(2);
        assert!(p.restarts(1, 1) && !p.restarts(1, 2) && !p.restarts(0, 0));
        let json = serde_json::to_string(&RestartPolicy::OnFailure(2)).unwrap();
        assert_eq!(
            serde_json::from_str::<RestartPolicy>(&json).unwrap(),
            RestartPolicy::OnFailure(2)
        );
    }

    #[test]
    fn namespace_modes() {
        assert_eq!(
            NamespaceMode::parse("container:web", "--pid").unwrap(),
            NamespaceMode::Container("web".into())
        );
        assert!(NamespaceMode::parse("container:web", "--uts").is_err());
        assert!(NamespaceMode::parse("shareable", "--pid").is_err());
        assert_eq!(
            NamespaceMode::parse("shareable", "--ipc").unwrap(),
            NamespaceMode::Shareable
        );
        assert!(NamespaceMode::parse("bogus", "--ipc").is_err());
    }
}
