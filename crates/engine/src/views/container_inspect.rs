//! `docker inspect` of a container, as a typed view built once by
//! [`Engine::container_inspect`]: the CLI prints it (and runs `--format` templates on it), the
//! API server answers `GET /containers/{id}/json` with it. Its serialization is the document of
//! Docker's `ContainerInspectResponse` for the fields hako has (times as RFC 3339 with nine
//! fraction digits, as `docker inspect` prints them; `Name` with its leading slash).

use crate::config::Mount;
use crate::{monitor, ContainerConfig, Engine, Result, State};
use serde::{Serialize, Serializer};
use std::collections::BTreeMap;
use std::path::PathBuf;

fn rfc3339<S: Serializer>(t: &i64, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&crate::rfc3339(*t))
}

/// Go's zero time, which Docker prints for a container that never started or finished.
fn rfc3339_or_zero<S: Serializer>(t: &Option<i64>, s: S) -> std::result::Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_str(&crate::rfc3339(*t)),
        None => s.serialize_str("0001-01-01T00:00:00Z"),
    }
}

/// A container's inspect document.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerInspect {
    /// The full id.
    pub id: String,
    /// When it was created (nanoseconds since the epoch).
    #[serde(serialize_with = "rfc3339")]
    pub created: i64,
    /// The main process's program.
    pub path: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// Its state.
    pub state: ContainerState,
    /// The image's id.
    pub image: String,
    /// The `/etc/resolv.conf` hako writes for it at each start, in its directory.
    pub resolv_conf_path: PathBuf,
    /// Its `/etc/hostname`, likewise.
    pub hostname_path: PathBuf,
    /// Its `/etc/hosts`, likewise.
    pub hosts_path: PathBuf,
    /// The json-file log (empty when it has none: a container run in the foreground).
    pub log_path: String,
    /// `/NAME`.
    pub name: String,
    /// How often a restart policy restarted it.
    pub restart_count: i64,
    /// `overlay`.
    pub driver: &'static str,
    /// `linux`.
    pub platform: &'static str,
    /// The SELinux label of its mounts: hako's containers ask for none (empty).
    pub mount_label: &'static str,
    /// The SELinux label of its processes: none asked for (empty).
    pub process_label: &'static str,
    /// The AppArmor profile of its processes: none asked for (empty).
    pub app_armor_profile: &'static str,
    /// The exec instances of the container. The engine records none (`null`): an exec is a
    /// process of the `hako exec` that runs it; the API service lists those it runs itself.
    #[serde(rename = "ExecIDs")]
    pub exec_ids: Option<Vec<String>>,
    /// What it was created with, as Docker's HostConfig shows it.
    pub host_config: HostConfig,
    /// Its layers.
    pub graph_driver: GraphDriver,
    /// Bind mounts and volumes.
    pub mounts: Vec<MountPoint>,
    /// Its configuration, with the image's defaults applied.
    pub config: Config,
    /// Its network endpoints and published ports (an empty object when the network state
    /// cannot be read).
    #[serde(serialize_with = "settings_or_empty")]
    pub network_settings: Option<NetworkSettings>,
}

fn settings_or_empty<S: Serializer>(
    n: &Option<NetworkSettings>,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    match n {
        Some(n) => n.serialize(s),
        None => BTreeMap::<String, ()>::new().serialize(s),
    }
}

/// `State`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerState {
    /// `created`, `running`, `paused` or `exited`.
    pub status: &'static str,
    /// Whether it runs (paused too).
    pub running: bool,
    /// Whether it is frozen.
    pub paused: bool,
    /// Always false: a restart is a new start, not a state.
    pub restarting: bool,
    /// Always false (not recorded).
    #[serde(rename = "OOMKilled")]
    pub oom_killed: bool,
    /// Always false.
    pub dead: bool,
    /// The init's host pid while it runs, else 0.
    pub pid: i32,
    /// The last exit status.
    pub exit_code: i32,
    /// Always empty.
    pub error: String,
    /// When it last started.
    #[serde(serialize_with = "rfc3339_or_zero")]
    pub started_at: Option<i64>,
    /// When it last exited.
    #[serde(serialize_with = "rfc3339_or_zero")]
    pub finished_at: Option<i64>,
    /// hako's own: the syscalls its last foreground run called and got ENOSYS for.
    pub missing_syscalls: Vec<crate::missing::MissingSyscall>,
    /// A container with a healthcheck: its status, failing streak and last results.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health: Option<crate::health::Health>,
}

/// `HostConfig`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct HostConfig {
    /// `--rm`.
    pub auto_remove: bool,
    /// Binds and named volumes as `-v` writes them.
    pub binds: Vec<String>,
    /// `--link`, as Docker shows them (`/db:/web/db`); null when none.
    pub links: Option<Vec<String>>,
    /// `--volumes-from`; null when none, as Docker shows it.
    pub volumes_from: Option<Vec<String>>,
    /// `bridge`, `host`, `none` or a network's name.
    pub network_mode: String,
    /// `--privileged`.
    pub privileged: bool,
    /// `--init`.
    pub init: bool,
    /// `--security-opt`.
    pub security_opt: Vec<String>,
    /// `--read-only`.
    pub readonly_rootfs: bool,
    /// `--cap-add`.
    pub cap_add: Vec<String>,
    /// `--cap-drop`.
    pub cap_drop: Vec<String>,
    /// `--dns`.
    pub dns: Vec<std::net::IpAddr>,
    /// `--dns-option`.
    pub dns_options: Vec<String>,
    /// `--dns-search`.
    pub dns_search: Vec<String>,
    /// `--oom-score-adj`; 0 when not set.
    pub oom_score_adj: i32,
    /// `--cgroupns`: `private` or `host`.
    pub cgroupns_mode: &'static str,
    /// `--annotation`; absent when there are none.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// `--add-host`, as `NAME:IP`.
    pub extra_hosts: Vec<String>,
    /// `--group-add`.
    pub group_add: Vec<String>,
    /// Bytes; 0 for no limit.
    pub memory: i64,
    /// CPUs in billionths; 0 for no limit.
    pub nano_cpus: i64,
    /// `--cpu-shares`; 0 when not set.
    pub cpu_shares: u64,
    /// `--cpuset-cpus`.
    pub cpuset_cpus: String,
    /// `--cpuset-mems`.
    pub cpuset_mems: String,
    /// `--memory-swappiness`; absent when not set (Docker's null).
    pub memory_swappiness: Option<i64>,
    /// `--pids-limit`.
    pub pids_limit: Option<i64>,
    /// `--cpu-period`; 0 when not set.
    pub cpu_period: i64,
    /// `--cpu-quota`; 0 when not set.
    pub cpu_quota: i64,
    /// `--memory-reservation`; 0 when not set.
    pub memory_reservation: i64,
    /// `--oom-kill-disable`.
    pub oom_kill_disable: Option<bool>,
    /// `--blkio-weight`; 0 when not set.
    pub blkio_weight: u16,
    /// `--blkio-weight-device`.
    pub blkio_weight_device: Vec<WeightDeviceView>,
    /// `--device-read-bps`.
    pub blkio_device_read_bps: Vec<ThrottleView>,
    /// `--device-write-bps`.
    pub blkio_device_write_bps: Vec<ThrottleView>,
    /// `--device-read-iops`.
    #[serde(rename = "BlkioDeviceReadIOps")]
    pub blkio_device_read_iops: Vec<ThrottleView>,
    /// `--device-write-iops`.
    #[serde(rename = "BlkioDeviceWriteIOps")]
    pub blkio_device_write_iops: Vec<ThrottleView>,
    /// `--cgroup-parent`.
    pub cgroup_parent: String,
    /// `--userns`: `host`, `keep-id`, or empty for the default.
    pub userns_mode: &'static str,
    /// Not Docker's: the limits a rootless container could not have, and why.
    pub dropped_limits: Vec<String>,
    /// Targets of tmpfs mounts, with their options.
    pub tmpfs: BTreeMap<String, String>,
    /// `--device`.
    pub devices: Vec<DeviceMapping>,
    /// `--device-cgroup-rule`.
    pub device_cgroup_rules: Vec<String>,
    /// CDI devices (`--device vendor.com/class=name`, `--gpus`), as Docker shows them: one
    /// request of driver `cdi`; null when none.
    pub device_requests: Option<Vec<DeviceRequestView>>,
    /// `--ulimit`.
    pub ulimits: Vec<UlimitView>,
    /// `--restart`.
    pub restart_policy: RestartPolicyView,
    /// `-p`, as asked: `"80/tcp"` to the host addresses and ports (`""` for any; a range as
    /// `"8000-8010"`).
    pub port_bindings: BTreeMap<String, Vec<PortBindingView>>,
}

/// One `--device-{read,write}-{bps,iops}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ThrottleView {
    /// The host's block device.
    pub path: String,
    /// Bytes or operations per second.
    pub rate: u64,
}

/// One `--blkio-weight-device`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct WeightDeviceView {
    /// The host's block device.
    pub path: String,
    /// Its relative weight, 10 to 1000.
    pub weight: u64,
}

/// One entry of `DeviceRequests`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeviceRequestView {
    /// `cdi`.
    pub driver: String,
    /// 0: the devices are named.
    pub count: i64,
    /// The CDI names.
    #[serde(rename = "DeviceIDs")]
    pub device_ids: Vec<String>,
    /// None.
    pub capabilities: Option<Vec<Vec<String>>>,
    /// None.
    pub options: BTreeMap<String, String>,
}

/// One `--device`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeviceMapping {
    /// The host's device.
    pub path_on_host: String,
    /// Where the container sees it.
    pub path_in_container: String,
    /// `rwm` and its subsets.
    pub cgroup_permissions: String,
}

/// One `--ulimit`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct UlimitView {
    /// `nofile`, ...
    pub name: String,
    /// Soft limit.
    pub soft: u64,
    /// Hard limit.
    pub hard: u64,
}

/// `--restart`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct RestartPolicyView {
    /// `no`, `always`, `unless-stopped`, `on-failure`.
    pub name: &'static str,
    /// `on-failure`'s count.
    pub maximum_retry_count: u32,
}

/// `GraphDriver`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct GraphDriver {
    /// `overlay`.
    pub name: &'static str,
    /// The overlay's directories.
    pub data: OverlayDirs,
}

/// The overlay's directories.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct OverlayDirs {
    /// The image's layers, top first, joined by `:`.
    pub lower_dir: String,
    /// The writable layer.
    pub upper_dir: PathBuf,
    /// Overlayfs's work directory.
    pub work_dir: PathBuf,
    /// Where the root filesystem is mounted.
    pub merged_dir: PathBuf,
}

/// One of `Mounts`: a bind (`Destination`, `Mode`, `Propagation`) or a volume (`Name`,
/// `Driver`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct MountPoint {
    /// `bind` or `volume`.
    #[serde(rename = "Type")]
    pub kind: &'static str,
    /// A volume's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The host path.
    pub source: PathBuf,
    /// A bind's target in the container.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
    /// A volume's driver (`local`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub driver: Option<&'static str>,
    /// A bind's mode (empty).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// Writable.
    #[serde(rename = "RW")]
    pub rw: bool,
    /// A bind's propagation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub propagation: Option<String>,
}

/// `Config`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Config {
    /// The host name.
    pub hostname: String,
    /// `--domainname`.
    pub domainname: String,
    /// `--user`.
    pub user: String,
    /// The image's exposed ports, `--expose` and `-p`, as `{"80/tcp": {}}`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub exposed_ports: BTreeMap<String, serde_json::Value>,
    /// Whether the creating client attached stdin (`run -i` without `-d`, or `-a stdin`).
    pub attach_stdin: bool,
    /// Whether it attached stdout.
    pub attach_stdout: bool,
    /// Whether it attached stderr.
    pub attach_stderr: bool,
    /// `-t`.
    pub tty: bool,
    /// `-i`.
    pub open_stdin: bool,
    /// Stdin closes after the first attach ends.
    pub stdin_once: bool,
    /// The environment, the image's included.
    pub env: Vec<String>,
    /// `CMD`.
    pub cmd: Vec<String>,
    /// The image as the user named it.
    pub image: String,
    /// The working directory.
    pub working_dir: String,
    /// `--entrypoint`.
    pub entrypoint: Option<Vec<String>>,
    /// `--label`.
    pub labels: BTreeMap<String, String>,
    /// `--stop-timeout`.
    pub stop_timeout: Option<u64>,
    /// `--stop-signal`, or the image's STOPSIGNAL (left out when neither names one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    /// `--health-*`.
    pub healthcheck: Option<Healthcheck>,
}

/// `Config.Healthcheck`; durations in nanoseconds, left out when not set (Docker's omitempty).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Healthcheck {
    /// The test command.
    pub test: Vec<String>,
    /// Between checks.
    #[serde(skip_serializing_if = "is_zero")]
    pub interval: i64,
    /// Of one check.
    #[serde(skip_serializing_if = "is_zero")]
    pub timeout: i64,
    /// Before failures count.
    #[serde(skip_serializing_if = "is_zero")]
    pub start_period: i64,
    /// Between checks in the start period.
    #[serde(skip_serializing_if = "is_zero")]
    pub start_interval: i64,
    /// Failures before unhealthy.
    #[serde(skip_serializing_if = "is_zero")]
    pub retries: i64,
}

/// `Config.Env` as Docker's daemon stores it at create: the container's own variables, then
/// the image's that the container does not set. Not the process's environment (no HOSTNAME,
/// HOME or default PATH, which the runtime adds; no link or CDI variables).
fn configured_env(image: Vec<String>, own: &[String]) -> Vec<String> {
    if own.is_empty() {
        return image;
    }
    let key = |v: &str| v.split_once('=').map_or(v, |(k, _)| k).to_string();
    let mut out = own.to_vec();
    for v in image {
        if !own.iter().any(|o| key(o) == key(&v)) {
            out.push(v);
        }
    }
    out
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

/// `NetworkSettings`: the default network's addresses at the top (empty on user networks, as
/// Docker leaves them), every endpoint in `Networks`, and the published ports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkSettings {
    /// The default network's addresses.
    #[serde(flatten)]
    pub default: Addresses,
    /// Each network the container is on, by name.
    pub networks: BTreeMap<String, EndpointView>,
    /// Published ports of a running container: `"80/tcp"` to its host addresses.
    pub ports: BTreeMap<String, Vec<PortBindingView>>,
}

/// A container's addresses on one network.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Addresses {
    /// Its MAC address.
    #[serde(rename = "MacAddress")]
    pub mac_address: String,
    /// Its IPv4 address.
    #[serde(rename = "IPAddress")]
    pub ip_address: String,
    /// The subnet's prefix length.
    #[serde(rename = "IPPrefixLen")]
    pub ip_prefix_len: u8,
    /// The network's gateway.
    #[serde(rename = "Gateway")]
    pub gateway: String,
    /// Its IPv6 address.
    #[serde(rename = "GlobalIPv6Address")]
    pub global_ipv6_address: String,
    /// The IPv6 subnet's prefix length.
    #[serde(rename = "GlobalIPv6PrefixLen")]
    pub global_ipv6_prefix_len: u8,
    /// The network's IPv6 gateway.
    #[serde(rename = "IPv6Gateway")]
    pub ipv6_gateway: String,
}

/// One of `NetworkSettings.Networks`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EndpointView {
    /// The network's id.
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    /// The container's names on it.
    #[serde(rename = "Aliases")]
    pub aliases: Vec<String>,
    /// Its addresses there.
    #[serde(flatten)]
    pub addresses: Addresses,
}

/// One host address of a published port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PortBindingView {
    /// The host address.
    pub host_ip: String,
    /// The host port.
    pub host_port: String,
}

impl Engine {
    /// `docker inspect` of a container.
    pub fn container_inspect(&self, key: &str) -> Result<ContainerInspect> {
        let c = self.find(key)?;
        let row = self.row(&c.id)?;
        let opts = ContainerConfig::from_stored(&row.config).unwrap_or_default();
        let dir = self.container_dir(&c.id);
        let paused =
            c.state == State::Running && self.is_paused(&c.id, row.cgroup_parent.as_deref());
        let status = match (c.state, paused) {
            (State::Running, true) => "paused",
            (State::Running, false) => "running",
            (State::Exited, _) => "exited",
            (State::Created, _) => "created",
        };
        let plan = self
            .resolve_image(&c.image_id)
            .and_then(|img| self.plan(&c.id, &opts, img))
            .ok();
        let (env, workdir, hostname, lowers) = match &plan {
            Some(p) => (
                configured_env(
                    p.image
                        .config
                        .config()
                        .as_ref()
                        .and_then(|c| c.env().clone())
                        .unwrap_or_default(),
                    &opts.env,
                ),
                p.workdir.clone(),
                p.hostname.clone(),
                p.image
                    .layers
                    .iter()
                    .rev()
                    .map(|l| l.to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join(":"),
            ),
            None => (
                opts.env.clone(),
                String::new(),
                c.id[..12].to_string(),
                String::new(),
            ),
        };
        // As Docker's daemon merges them into the container's Config.
        let mut exposed_ports = BTreeMap::new();
        let image_ports = plan
            .as_ref()
            .and_then(|p| p.image.config.config().as_ref())
            .and_then(|c| c.exposed_ports().clone())
            .unwrap_or_default();
        let published = opts
            .port_bindings
            .iter()
            .map(|p| format!("{}/{}", p.container_port, p.protocol.as_str()));
        for e in image_ports
            .iter()
            .chain(&opts.exposed_ports)
            .cloned()
            .chain(published)
        {
            let key = if e.contains('/') {
                e
            } else {
                format!("{e}/tcp")
            };
            exposed_ports.insert(key, serde_json::Value::Object(Default::default()));
        }
        let log_path = monitor::log_path(&dir, &c.id);
        let log_path = if log_path.exists() {
            log_path.to_string_lossy().into_owned()
        } else {
            String::new()
        };
        let ro = |readonly: bool| if readonly { ":ro" } else { "" };
        let network_settings = self.network_settings(&c.id).map(|mut n| {
            if c.state == State::Running {
                for p in self.published_ports(&c.id) {
                    let key = format!(
                        "{}/{}",
                        p.container_port,
                        format!("{:?}", p.proto).to_lowercase()
                    );
                    n.ports.entry(key).or_default().push(PortBindingView {
                        host_ip: p.host_ip.to_string(),
                        host_port: p.host_port.to_string(),
                    });
                }
            }
            n
        });
        Ok(ContainerInspect {
            created: c.created,
            path: c.command.first().cloned().unwrap_or_default(),
            args: c.command.iter().skip(1).cloned().collect(),
            state: ContainerState {
                status,
                running: c.state == State::Running,
                paused,
                restarting: false,
                oom_killed: false,
                dead: false,
                pid: if c.state == State::Running {
                    row.pid.unwrap_or(0)
                } else {
                    0
                },
                exit_code: c.exit_code.unwrap_or(0),
                error: String::new(),
                started_at: c.started_at,
                finished_at: c.finished_at,
                missing_syscalls: row
                    .missing_syscalls
                    .as_deref()
                    .and_then(|j| serde_json::from_str(j).ok())
                    .unwrap_or_default(),
                health: self.health(&c.id)?,
            },
            image: c.image_id.clone(),
            resolv_conf_path: dir.join("resolv.conf"),
            hostname_path: dir.join("hostname"),
            hosts_path: dir.join("hosts"),
            log_path,
            name: format!("/{}", c.name),
            restart_count: row.restart_count,
            driver: "overlay",
            platform: "linux",
            mount_label: "",
            process_label: "",
            app_armor_profile: "",
            exec_ids: None,
            host_config: HostConfig {
                auto_remove: opts.auto_remove,
                binds: opts
                    .mounts
                    .iter()
                    .filter_map(|m| match m {
                        Mount::Bind {
                            source,
                            target,
                            readonly,
                            ..
                        } => Some(format!("{source}:{target}{}", ro(*readonly))),
                        Mount::Volume {
                            name: Some(n),
                            target,
                            readonly,
                        } => Some(format!("{n}:{target}{}", ro(*readonly))),
                        _ => None,
                    })
                    .collect(),
                links: (!opts.links.is_empty()).then(|| {
                    opts.links
                        .iter()
                        .filter_map(|l| crate::links::parse(l).ok())
                        .map(|(name, alias)| format!("/{name}:/{}/{alias}", c.name))
                        .collect()
                }),
                volumes_from: (!opts.volumes_from.is_empty()).then(|| opts.volumes_from.clone()),
                network_mode: opts.network.mode().to_string(),
                privileged: opts.privileged,
                init: opts.init,
                security_opt: opts.security_opt.clone(),
                readonly_rootfs: opts.read_only,
                cap_add: opts.cap_add.clone(),
                cap_drop: opts.cap_drop.clone(),
                dns: opts.dns.clone(),
                dns_options: opts.dns_options.clone(),
                dns_search: opts.dns_search.clone(),
                oom_score_adj: opts.oom_score_adj.unwrap_or(0),
                cgroupns_mode: if opts.cgroupns_host {
                    "host"
                } else {
                    "private"
                },
                annotations: opts.annotations.clone(),
                extra_hosts: opts.extra_hosts.iter().map(|h| h.docker()).collect(),
                group_add: opts.group_add.clone(),
                memory: opts.resources.memory.unwrap_or(0),
                nano_cpus: opts.resources.nano_cpus.unwrap_or(0),
                cpu_shares: opts.resources.cpu_shares.unwrap_or(0),
                cpuset_cpus: opts.resources.cpuset_cpus.clone().unwrap_or_default(),
                cpuset_mems: opts.resources.cpuset_mems.clone().unwrap_or_default(),
                memory_swappiness: opts.resources.memory_swappiness,
                pids_limit: opts.resources.pids_limit,
                cpu_period: opts.resources.cpu_period.unwrap_or(0),
                cpu_quota: opts.resources.cpu_quota.unwrap_or(0),
                memory_reservation: opts.resources.memory_reservation.unwrap_or(0),
                oom_kill_disable: opts.resources.oom_kill_disable,
                blkio_weight: opts.resources.blkio_weight.unwrap_or(0),
                blkio_device_read_bps: throttles(&opts.resources.blkio_device_read_bps),
                blkio_weight_device: opts
                    .resources
                    .blkio_weight_device
                    .iter()
                    .map(|w| WeightDeviceView {
                        path: w.path.clone(),
                        weight: w.rate,
                    })
                    .collect(),
                blkio_device_write_bps: throttles(&opts.resources.blkio_device_write_bps),
                blkio_device_read_iops: throttles(&opts.resources.blkio_device_read_iops),
                blkio_device_write_iops: throttles(&opts.resources.blkio_device_write_iops),
                cgroup_parent: opts.cgroup_parent.clone().unwrap_or_default(),
                userns_mode: opts.userns_mode.docker(),
                dropped_limits: crate::rootless::dropped_limits(&dir),
                tmpfs: opts
                    .mounts
                    .iter()
                    .filter_map(|m| match m {
                        Mount::Tmpfs { target, options } => {
                            Some((target.clone(), options.join(",")))
                        }
                        _ => None,
                    })
                    .collect(),
                devices: opts
                    .resources
                    .devices
                    .iter()
                    .map(|d| DeviceMapping {
                        path_on_host: d.host.clone(),
                        path_in_container: d.container.clone(),
                        cgroup_permissions: d.permissions.clone(),
                    })
                    .collect(),
                device_cgroup_rules: opts.resources.device_cgroup_rules.clone(),
                device_requests: (!opts.resources.cdi_devices.is_empty()).then(|| {
                    vec![DeviceRequestView {
                        driver: "cdi".into(),
                        count: 0,
                        device_ids: opts.resources.cdi_devices.clone(),
                        capabilities: None,
                        options: BTreeMap::new(),
                    }]
                }),
                ulimits: opts
                    .resources
                    .ulimits
                    .iter()
                    .map(|u| UlimitView {
                        name: u.name.clone(),
                        soft: u.soft,
                        hard: u.hard,
                    })
                    .collect(),
                restart_policy: RestartPolicyView {
                    name: opts.restart_policy.name(),
                    maximum_retry_count: opts.restart_policy.maximum_retry_count(),
                },
                port_bindings: {
                    let mut m: BTreeMap<String, Vec<PortBindingView>> = BTreeMap::new();
                    for p in &opts.port_bindings {
                        m.entry(format!("{}/{}", p.container_port, p.protocol.as_str()))
                            .or_default()
                            .push(PortBindingView {
                                host_ip: p.host_ip.map(|ip| ip.to_string()).unwrap_or_default(),
                                host_port: match (p.host_port, p.host_port_end) {
                                    (0, _) => String::new(),
                                    (a, b) if b > a => format!("{a}-{b}"),
                                    (a, _) => a.to_string(),
                                },
                            });
                    }
                    m
                },
            },
            graph_driver: GraphDriver {
                name: "overlay",
                data: OverlayDirs {
                    lower_dir: lowers,
                    upper_dir: dir.join("upper"),
                    work_dir: dir.join("work"),
                    merged_dir: dir.join("rootfs"),
                },
            },
            mounts: self.mount_points(&c.id, &opts),
            config: Config {
                hostname,
                domainname: opts.domainname.clone().unwrap_or_default(),
                user: opts.user.clone().unwrap_or_default(),
                exposed_ports,
                attach_stdin: opts.attach_stdin,
                attach_stdout: opts.attach_stdout,
                attach_stderr: opts.attach_stderr,
                tty: opts.tty,
                open_stdin: opts.open_stdin,
                stdin_once: opts.stdin_once,
                env,
                cmd: opts.cmd.clone(),
                image: c.image.clone(),
                working_dir: workdir,
                entrypoint: opts.entrypoint.clone(),
                labels: opts.labels.clone(),
                stop_timeout: opts.stop_timeout,
                stop_signal: opts
                    .stop_signal
                    .clone()
                    .or_else(|| self.image_stop_signal(&c.image_id)),
                healthcheck: self
                    .configured_health(&opts, &c.image_id)
                    .map(|h| Healthcheck {
                        test: h.test,
                        interval: h.interval,
                        timeout: h.timeout,
                        start_period: h.start_period,
                        start_interval: h.start_interval,
                        retries: i64::from(h.retries),
                    }),
            },
            network_settings,
            id: c.id,
        })
    }

    /// The check of `Config.Healthcheck`: the container's merged over its image's
    /// ([`crate::health::merge`]); the image's config is read only when the container's own
    /// leaves a field unset.
    fn configured_health(
        &self,
        opts: &crate::ContainerConfig,
        image_id: &str,
    ) -> Option<crate::config::HealthConfig> {
        let own = opts.healthcheck.as_ref();
        let complete = own.is_some_and(|h| {
            !h.test.is_empty()
                && h.interval != 0
                && h.timeout != 0
                && h.start_period != 0
                && h.start_interval != 0
                && h.retries != 0
        });
        let image = if complete {
            None
        } else {
            std::fs::read(self.images().blob_path(image_id))
                .ok()
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                .and_then(|v| crate::health::image_healthcheck(&v))
        };
        crate::health::merge(own, image.as_ref())
    }

    /// Docker's NetworkSettings: per network in `Networks`, and at the top level for the
    /// default network only (as Docker leaves those empty on user-defined networks).
    fn network_settings(&self, id: &str) -> Option<NetworkSettings> {
        let nets = crate::netwire::networks(self.store.conn(), &self.root).ok()?;
        let eps = nets.container_endpoints(id).unwrap_or_default();
        let addresses = |n: &hako_net::NetworkInfo, e: &hako_net::Endpoint| Addresses {
            mac_address: e.mac.clone(),
            ip_address: e.ip.to_string(),
            ip_prefix_len: n.subnet.prefix,
            gateway: n.gateway.to_string(),
            global_ipv6_address: e.ip6.map(|a| a.to_string()).unwrap_or_default(),
            global_ipv6_prefix_len: n.subnet6.map(|s| s.prefix).unwrap_or(0),
            ipv6_gateway: n.gateway6.map(|g| g.to_string()).unwrap_or_default(),
        };
        Some(NetworkSettings {
            default: eps
                .iter()
                .find(|(n, _)| n.name == nets.config().default_network)
                .map(|(n, e)| addresses(n, e))
                .unwrap_or_default(),
            networks: eps
                .iter()
                .map(|(n, e)| {
                    (
                        n.name.clone(),
                        EndpointView {
                            network_id: n.id.clone(),
                            aliases: e.aliases.clone(),
                            addresses: addresses(n, e),
                        },
                    )
                })
                .collect(),
            ports: BTreeMap::new(),
        })
    }

    fn mount_points(&self, id: &str, opts: &ContainerConfig) -> Vec<MountPoint> {
        let mut out = Vec::new();
        for m in &opts.mounts {
            if let Mount::Bind {
                source,
                target,
                readonly,
                propagation,
            } = m
            {
                out.push(MountPoint {
                    kind: "bind",
                    name: None,
                    source: source.into(),
                    destination: Some(target.clone()),
                    driver: None,
                    mode: Some(String::new()),
                    rw: !readonly,
                    propagation: Some(propagation.clone()),
                });
            }
        }
        let vols: Vec<String> = self
            .store
            .conn()
            .prepare("SELECT volume FROM container_volumes WHERE container_id = ?1 ORDER BY volume")
            .and_then(|mut st| st.query_map([id], |r| r.get::<_, String>(0))?.collect())
            .unwrap_or_default();
        for v in vols {
            out.push(MountPoint {
                kind: "volume",
                source: self.root().join("volumes").join(&v).join("_data"),
                name: Some(v),
                destination: None,
                driver: Some("local"),
                mode: None,
                rw: true,
                propagation: None,
            });
        }
        out
    }
}

fn throttles(given: &[crate::config::ThrottleDevice]) -> Vec<ThrottleView> {
    given
        .iter()
        .map(|t| ThrottleView {
            path: t.path.clone(),
            rate: t.rate,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The parts whose shape is not plain: times, the zero time, omitted health fields, the
    /// flattened addresses, an unreadable network state as `{}`.
    #[test]
    fn serializes_as_dockers_document() {
        let s = ContainerState {
            status: "created",
            running: false,
            paused: false,
            restarting: false,
            oom_killed: false,
            dead: false,
            pid: 0,
            exit_code: 0,
            error: String::new(),
            started_at: None,
            finished_at: Some(1_767_323_045_000_000_006),
            missing_syscalls: Vec::new(),
            health: None,
        };
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["StartedAt"], "0001-01-01T00:00:00Z");
        assert_eq!(v["FinishedAt"], "2026-01-02T03:04:05.000000006Z");
        assert_eq!(v["OOMKilled"], false);
        let h = Healthcheck {
            test: vec!["CMD".into(), "true".into()],
            interval: 5,
            timeout: 0,
            start_period: 0,
            start_interval: 0,
            retries: 3,
        };
        assert_eq!(
            serde_json::to_value(&h).unwrap(),
            serde_json::json!({"Test": ["CMD", "true"], "Interval": 5, "Retries": 3})
        );
        let n = NetworkSettings {
            default: Addresses {
                ip_address: "10.0.0.2".into(),
                ..Default::default()
            },
            networks: BTreeMap::from([(
                "bridge".to_string(),
                EndpointView {
                    network_id: "n1".into(),
                    aliases: vec![],
                    addresses: Addresses::default(),
                },
            )]),
            ports: BTreeMap::from([(
                "80/tcp".to_string(),
                vec![PortBindingView {
                    host_ip: "0.0.0.0".into(),
                    host_port: "8080".into(),
                }],
            )]),
        };
        let v = serde_json::to_value(&n).unwrap();
        assert_eq!(v["IPAddress"], "10.0.0.2");
        assert!(v.get("NetworkID").is_none());
        assert_eq!(v["Networks"]["bridge"]["NetworkID"], "n1");
        assert_eq!(v["Networks"]["bridge"]["IPPrefixLen"], 0);
        assert_eq!(v["Ports"]["80/tcp"][0]["HostPort"], "8080");
        let mut out = Vec::new();
        settings_or_empty(&None, &mut serde_json::Serializer::new(&mut out)).unwrap();
        assert_eq!(out, b"{}");
    }
}
