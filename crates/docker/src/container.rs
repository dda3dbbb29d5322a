//! Docker's container JSON and the engine's container types: the body of
//! `POST /containers/create` read into the engine's [`ContainerConfig`], with the same value
//! grammars the CLI's flags go through ([`crate::flags`]).
//!
//! A field hako cannot honour is refused with its name when it is set to anything but Docker's
//! empty value, never accepted and dropped: clients send most fields with those empty values
//! (`"CpuPeriod": 0`, `"Links": null`), and those are what every container gets anyway.

use crate::flags;
use bollard_stubs::models::{
    ContainerCreateBody, EndpointSettings, HostConfig, Mount as ApiMount, MountType, ThrottleDevice,
};
use hako_engine::config::{
    ContainerConfig, ExtraHost, HealthConfig, LogConfig, Mount, NamespaceMode, PortBinding,
    Resources, RestartPolicy, ThrottleDevice as EngineThrottle, Ulimit,
};
use hako_engine::{options, Error, Network};
use std::collections::BTreeMap;

type Result<T> = std::result::Result<T, Error>;

/// A create request, read: the configuration, and what to tell the client (Docker's
/// `Warnings`).
#[derive(Debug, Clone)]
pub struct Create {
    /// The configuration the engine creates the container from.
    pub config: ContainerConfig,
    /// Options accepted with nothing to apply on this host.
    pub warnings: Vec<String>,
}

fn unsupported(field: &str) -> Error {
    Error::Invalid(format!("{field} is not supported by hako"))
}

/// Refuses `field` when `set`.
fn refuse_if(set: bool, field: &str) -> Result<()> {
    if set {
        Err(unsupported(field))
    } else {
        Ok(())
    }
}

fn nonempty<T>(v: &Option<Vec<T>>) -> bool {
    v.as_ref().is_some_and(|v| !v.is_empty())
}

fn nonzero(v: Option<i64>) -> bool {
    v.is_some_and(|v| v != 0)
}

/// Empty strings are Docker's "not set".
fn text(v: &Option<String>) -> Option<String> {
    v.clone().filter(|s| !s.is_empty())
}

/// `POST /containers/create`'s body into the engine's configuration. The container's name is
/// the request's `name` query parameter, which the engine checks when it creates it.
pub fn from_create_body(body: &ContainerCreateBody) -> Result<Create> {
    let image = text(&body.image)
        .ok_or_else(|| Error::Invalid("Config.Image: an image is required".into()))?;
    refuse_if(nonempty(&body.on_build), "Config.OnBuild")?;
    refuse_if(nonempty(&body.shell), "Config.Shell")?;
    let stop_timeout = match body.stop_timeout {
        None => None,
        Some(t) => Some(
            u64::try_from(t)
                .map_err(|_| Error::Invalid(format!("Config.StopTimeout: {t} is negative")))?,
        ),
    };
    let healthcheck = body
        .healthcheck
        .as_ref()
        .map(|h| -> Result<HealthConfig> {
            let ns = |v: Option<i64>, f: &str| -> Result<i64> {
                match v.unwrap_or(0) {
                    n if n < 0 => Err(Error::Invalid(format!(
                        "Config.Healthcheck.{f}: {n} is negative"
                    ))),
                    n => Ok(n),
                }
            };
            Ok(HealthConfig {
                test: h.test.clone().unwrap_or_default(),
                interval: ns(h.interval, "Interval")?,
                timeout: ns(h.timeout, "Timeout")?,
                start_period: ns(h.start_period, "StartPeriod")?,
                start_interval: ns(h.start_interval, "StartInterval")?,
                retries: u32::try_from(h.retries.unwrap_or(0)).map_err(|_| {
                    Error::Invalid("Config.Healthcheck.Retries: out of range".into())
                })?,
            })
        })
        .transpose()?;
    let mut exposed_ports = body.exposed_ports.clone().unwrap_or_default();
    for e in &exposed_ports {
        hako_engine::hako_net::exposed_port_spec(e)
            .map_err(|err| Error::Invalid(format!("Config.ExposedPorts: {err}")))?;
    }
    exposed_ports.sort();
    let mut config = ContainerConfig {
        image,
        cmd: body.cmd.clone().unwrap_or_default(),
        // `[""]` clears the image's entrypoint (what `docker run --entrypoint ""` sends); an
        // empty list leaves it, as with Docker.
        entrypoint: match &body.entrypoint {
            Some(e) if e.len() == 1 && e[0].is_empty() => Some(Vec::new()),
            Some(e) if !e.is_empty() => Some(e.clone()),
            _ => None,
        },
        env: body.env.clone().unwrap_or_default(),
        working_dir: text(&body.working_dir),
        hostname: text(&body.hostname),
        user: text(&body.user),
        labels: body
            .labels
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        tty: body.tty.unwrap_or(false),
        open_stdin: body.open_stdin.unwrap_or(false),
        stdin_once: body.stdin_once.unwrap_or(false),
        attach_stdin: body.attach_stdin.unwrap_or(false),
        attach_stdout: body.attach_stdout.unwrap_or(false),
        attach_stderr: body.attach_stderr.unwrap_or(false),
        stop_timeout,
        stop_signal: text(&body.stop_signal),
        domainname: text(&body.domainname),
        healthcheck,
        exposed_ports,
        // Config.Volumes: anonymous volumes, as an image's VOLUME makes them.
        mounts: body
            .volumes
            .iter()
            .flatten()
            .map(|target| Mount::Volume {
                name: None,
                target: target.clone(),
                readonly: false,
            })
            .collect(),
        ..Default::default()
    };
    let mut warnings = Vec::new();
    if let Some(h) = &body.host_config {
        host_config(h, &mut config, &mut warnings)?;
    }
    if body.network_disabled == Some(true) {
        if !matches!(config.network, Network::Default | Network::None) {
            return Err(Error::Invalid(
                "Config.NetworkDisabled conflicts with HostConfig.NetworkMode".into(),
            ));
        }
        config.network = Network::None;
    }
    let endpoints = body
        .networking_config
        .as_ref()
        .and_then(|n| n.endpoints_config.as_ref());
    if let Some(endpoints) = endpoints.filter(|e| !e.is_empty()) {
        endpoint(endpoints, &mut config)?;
    }
    Ok(Create { config, warnings })
}

/// NetworkingConfig.EndpointsConfig: the settings of the one network the container joins.
fn endpoint(
    endpoints: &std::collections::HashMap<String, EndpointSettings>,
    config: &mut ContainerConfig,
) -> Result<()> {
    if endpoints.len() > 1 {
        return Err(Error::Invalid(
            "NetworkingConfig.EndpointsConfig: joining several networks at create is not \
             supported by hako; connect the others with network connect"
                .into(),
        ));
    }
    let (net, settings) = endpoints.iter().next().expect("one");
    match &config.network {
        // No NetworkMode: the endpoint names the network.
        Network::Default => config.network = net.parse()?,
        other if other.mode() == *net => {}
        other => {
            return Err(Error::Invalid(format!(
                "NetworkingConfig.EndpointsConfig names network {net}, HostConfig.NetworkMode {}",
                other.mode()
            )))
        }
    }
    refuse_if(
        nonempty(&settings.links),
        "NetworkingConfig.EndpointsConfig.Links",
    )?;
    refuse_if(
        settings.driver_opts.as_ref().is_some_and(|o| !o.is_empty()),
        "NetworkingConfig.EndpointsConfig.DriverOpts",
    )?;
    config.network_aliases = settings.aliases.clone().unwrap_or_default();
    config.mac_address = text(&settings.mac_address).or(config.mac_address.take());
    if let Some(ipam) = &settings.ipam_config {
        refuse_if(
            nonempty(&ipam.link_local_ips),
            "NetworkingConfig.EndpointsConfig.IPAMConfig.LinkLocalIPs",
        )?;
        if let Some(ip) = text(&ipam.ipv4_address) {
            config.ip = Some(
                ip.parse()
                    .map_err(|_| Error::Invalid(format!("invalid IPv4 address: {ip}")))?,
            );
        }
        if let Some(ip) = text(&ipam.ipv6_address) {
            config.ip6 = Some(
                ip.parse()
                    .map_err(|_| Error::Invalid(format!("invalid IPv6 address: {ip}")))?,
            );
        }
    }
    Ok(())
}

fn host_config(
    h: &HostConfig,
    config: &mut ContainerConfig,
    warnings: &mut Vec<String>,
) -> Result<()> {
    // What hako has no way to apply, each refused by its name when set.
    refuse_if(
        nonzero(h.cpu_realtime_period),
        "HostConfig.CpuRealtimePeriod",
    )?;
    refuse_if(
        nonzero(h.cpu_realtime_runtime),
        "HostConfig.CpuRealtimeRuntime",
    )?;
    refuse_if(nonzero(h.cpu_count), "HostConfig.CpuCount")?;
    refuse_if(nonzero(h.cpu_percent), "HostConfig.CpuPercent")?;
    refuse_if(nonzero(h.io_maximum_iops), "HostConfig.IOMaximumIOps")?;
    refuse_if(
        nonzero(h.io_maximum_bandwidth),
        "HostConfig.IOMaximumBandwidth",
    )?;
    refuse_if(
        text(&h.volume_driver).is_some_and(|d| d != "local"),
        "HostConfig.VolumeDriver (other than local)",
    )?;
    refuse_if(text(&h.cgroup).is_some(), "HostConfig.Cgroup")?;
    refuse_if(text(&h.userns_mode).is_some(), "HostConfig.UsernsMode")?;
    refuse_if(
        h.storage_opt.as_ref().is_some_and(|o| !o.is_empty()),
        "HostConfig.StorageOpt",
    )?;
    refuse_if(
        text(&h.runtime).is_some_and(|r| r != "runc"),
        "HostConfig.Runtime (other than runc)",
    )?;
    refuse_if(
        h.isolation
            .as_ref()
            .is_some_and(|i| !matches!(i.to_string().as_str(), "" | "default")),
        "HostConfig.Isolation",
    )?;
    refuse_if(
        h.masked_paths.is_some() || h.readonly_paths.is_some(),
        "HostConfig.MaskedPaths and ReadonlyPaths",
    )?;

    let c = config;
    for b in h.binds.iter().flatten() {
        c.mounts.push(options::parse_volume(b)?);
    }
    for m in h.mounts.iter().flatten() {
        c.mounts.push(api_mount(m)?);
    }
    let mut tmpfs: Vec<_> = h.tmpfs.iter().flatten().collect();
    tmpfs.sort();
    for (target, opts) in tmpfs {
        let spec = if opts.is_empty() {
            target.clone()
        } else {
            format!("{target}:{opts}")
        };
        c.mounts.push(options::parse_tmpfs(&spec)?);
    }
    // A later mount of a target replaces an anonymous volume of Config.Volumes, as the docker
    // CLI's `-v /data` and `--mount` both land there too.
    let mut seen = std::collections::HashSet::new();
    let mut deduped = Vec::with_capacity(c.mounts.len());
    for m in c.mounts.drain(..).rev() {
        if seen.insert(m.target().to_string()) {
            deduped.push(m);
        }
    }
    deduped.reverse();
    c.mounts = deduped;

    if let Some(mode) = text(&h.network_mode).filter(|m| m != "default") {
        c.network = mode.parse()?;
    }
    let mut ports: Vec<_> = h.port_bindings.iter().flatten().collect();
    ports.sort_by(|a, b| a.0.cmp(b.0));
    for (port, bindings) in ports {
        let (cport, proto) = port.split_once('/').unwrap_or((port, "tcp"));
        let bindings = bindings.as_deref().unwrap_or_default();
        if bindings.is_empty() {
            c.port_bindings
                .extend(PortBinding::parse(&format!("{cport}/{proto}"))?);
        }
        for b in bindings {
            let ip = match text(&b.host_ip) {
                Some(ip) if ip.contains(':') => format!("[{ip}]:"),
                Some(ip) => format!("{ip}:"),
                None => String::new(),
            };
            let host = b.host_port.clone().unwrap_or_default();
            let spec = if ip.is_empty() && host.is_empty() {
                format!("{cport}/{proto}")
            } else {
                format!("{ip}{host}:{cport}/{proto}")
            };
            c.port_bindings
                .extend(PortBinding::parse(&spec).map_err(|e| {
                    Error::Invalid(format!("HostConfig.PortBindings[{port}]: {e}"))
                })?);
        }
    }
    c.publish_all = h.publish_all_ports.unwrap_or(false);
    if let Some(p) = &h.restart_policy {
        let name = p.name.as_ref().map(|n| n.to_string()).unwrap_or_default();
        c.restart_policy = match (name.as_str(), p.maximum_retry_count.unwrap_or(0)) {
            ("on-failure", n) => RestartPolicy::OnFailure(u32::try_from(n).map_err(|_| {
                Error::Invalid(format!(
                    "invalid restart policy: maximum retry count cannot be negative: {n}"
                ))
            })?),
            (name, 0) => RestartPolicy::parse(name)?,
            (name, _) => {
                return Err(Error::Invalid(format!(
                    "invalid restart policy: maximum retry count can only be used with 'on-failure', not '{name}'"
                )))
            }
        };
    }
    c.auto_remove = h.auto_remove.unwrap_or(false);
    c.privileged = h.privileged.unwrap_or(false);
    c.read_only = h.readonly_rootfs.unwrap_or(false);
    c.init = h.init.unwrap_or(false);
    c.cap_add = h.cap_add.clone().unwrap_or_default();
    c.cap_drop = h.cap_drop.clone().unwrap_or_default();
    c.group_add = h.group_add.clone().unwrap_or_default();
    c.cgroup_parent = text(&h.cgroup_parent);
    c.dns = h
        .dns
        .iter()
        .flatten()
        .map(|d| {
            d.parse()
                .map_err(|_| Error::Invalid(format!("{d} is not an ip address")))
        })
        .collect::<Result<_>>()?;
    c.annotations = h
        .annotations
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    c.dns_search = h.dns_search.clone().unwrap_or_default();
    c.dns_options = h.dns_options.clone().unwrap_or_default();
    c.oom_score_adj = match h.oom_score_adj.filter(|&a| a != 0) {
        None => None,
        // Beyond i32 it would wrap into the range the engine checks.
        Some(a) => Some(i32::try_from(a).map_err(|_| {
            Error::Invalid(format!(
                "Invalid value {a}, range for oom score adj is [-1000, 1000]"
            ))
        })?),
    };
    c.extra_hosts = h
        .extra_hosts
        .iter()
        .flatten()
        .map(|e| ExtraHost::parse(e))
        .collect::<Result<_>>()?;
    c.sysctls = h
        .sysctls
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect::<BTreeMap<_, _>>();
    c.shm_size = h.shm_size.filter(|&s| s != 0);
    let mode =
        |m: &Option<String>, flag: &str| NamespaceMode::parse(m.as_deref().unwrap_or(""), flag);
    c.pid_mode = mode(&h.pid_mode, "--pid")?;
    c.ipc_mode = mode(&h.ipc_mode, "--ipc")?;
    c.uts_mode = mode(&h.uts_mode, "--uts")?;
    c.cgroupns_host =
        flags::cgroupns_host(h.cgroupns_mode.as_ref().map(|m| m.to_string()).as_deref())?;
    let security_opt = h.security_opt.clone().unwrap_or_default();
    let security = flags::security_options(&security_opt, warnings)?;
    c.no_new_privileges = security.no_new_privileges;
    c.seccomp = security.seccomp;
    c.security_opt = security_opt;
    if let Some(log) = &h.log_config {
        match log.typ.as_deref() {
            None | Some("") | Some("json-file") => {}
            Some(d) => {
                return Err(Error::Invalid(format!(
                    "logging driver \"{d}\" is not supported: hako writes json-file logs"
                )))
            }
        }
        let mut opts: Vec<String> = log
            .config
            .iter()
            .flatten()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        opts.sort();
        c.log_config = LogConfig::parse(&opts)?;
    }
    c.resources =
        Resources {
            memory: h.memory.filter(|&m| m != 0),
            memory_swap: h.memory_swap.filter(|&m| m != 0),
            nano_cpus: h.nano_cpus.filter(|&n| n != 0),
            cpu_shares: match h.cpu_shares {
                None | Some(0) => None,
                Some(s) => Some(u64::try_from(s).map_err(|_| {
                    Error::Invalid(format!("HostConfig.CpuShares: {s} is negative"))
                })?),
            },
            cpuset_cpus: text(&h.cpuset_cpus),
            // 0 and -1 both mean no limit; Docker 20.10's CLI sends 0 when --pids-limit is unset.
            pids_limit: h.pids_limit.filter(|&p| p > 0),
            ulimits: h
                .ulimits
                .iter()
                .flatten()
                .map(|u| -> Result<Ulimit> {
                    let name = u.name.clone().unwrap_or_default();
                    let limit = |v: Option<i64>| match v.unwrap_or(0) {
                        -1 => u64::MAX,
                        n => u64::try_from(n).unwrap_or(u64::MAX),
                    };
                    // The same checks as `--ulimit`'s.
                    Ulimit::parse(&format!(
                        "{name}={}:{}",
                        u.soft.unwrap_or(0),
                        u.hard.unwrap_or(0)
                    ))
                    .map(|_| Ulimit {
                        name,
                        soft: limit(u.soft),
                        hard: limit(u.hard),
                    })
                })
                .collect::<Result<_>>()?,
            devices: h
                .devices
                .iter()
                .flatten()
                .map(|d| {
                    let host = d.path_on_host.clone().unwrap_or_default();
                    let container = text(&d.path_in_container).unwrap_or_else(|| host.clone());
                    let perms = text(&d.cgroup_permissions).unwrap_or_else(|| "rwm".into());
                    options::parse_device(&format!("{host}:{container}:{perms}"))
                })
                .collect::<Result<_>>()?,
            device_cgroup_rules: h
                .device_cgroup_rules
                .iter()
                .flatten()
                .map(|r| options::parse_device_cgroup_rule(r).map(|_| r.clone()))
                .collect::<Result<_>>()?,
            cdi_devices: device_requests(h)?,
            // 0 is Docker's "not set" for each of these; the engine checks the values the
            // same way for the CLI's flags and these fields.
            cpu_period: h.cpu_period.filter(|&p| p != 0),
            cpu_quota: h.cpu_quota.filter(|&q| q != 0),
            memory_reservation: h.memory_reservation.filter(|&m| m != 0),
            oom_kill_disable: h.oom_kill_disable.filter(|&d| d),
            blkio_weight: h.blkio_weight.filter(|&w| w != 0),
            blkio_device_read_bps: throttle(&h.blkio_device_read_bps, "BlkioDeviceReadBps")?,
            blkio_device_write_bps: throttle(&h.blkio_device_write_bps, "BlkioDeviceWriteBps")?,
            blkio_device_read_iops: throttle(&h.blkio_device_read_iops, "BlkioDeviceReadIOps")?,
            blkio_device_write_iops: throttle(&h.blkio_device_write_iops, "BlkioDeviceWriteIOps")?,
            cpuset_mems: text(&h.cpuset_mems),
            blkio_weight_device: h
                .blkio_weight_device
                .iter()
                .flatten()
                .map(|w| {
                    let path = w.path.clone().unwrap_or_default();
                    let weight = w.weight.unwrap_or(0);
                    hako_engine::config::parse_weight_device(&format!("{path}:{weight}")).map_err(
                        |_| {
                            Error::Invalid(format!(
                                "HostConfig.BlkioWeightDevice: invalid weight {weight} for {path}"
                            ))
                        },
                    )
                })
                .collect::<Result<_>>()?,
            // -1 is the docker CLI's "not set".
            memory_swappiness: h.memory_swappiness.filter(|&s| s != -1),
        };
    c.volumes_from = h.volumes_from.clone().unwrap_or_default();
    c.links = h
        .links
        .iter()
        .flatten()
        .map(|l| {
            hako_engine::links::parse(l)
                .map(|_| l.clone())
                .map_err(|e| Error::Invalid(format!("HostConfig.Links: {e}")))
        })
        .collect::<Result<_>>()?;
    Ok(())
}

/// HostConfig.DeviceRequests as CDI device names: driver `cdi` names them (`DeviceIDs`, what
/// the docker CLI sends for `--device vendor.com/class=name`); a GPU request (driver `nvidia`
/// or none, capability `gpu`: `--gpus`) is NVIDIA's CDI devices, as `--gpus` maps them.
fn device_requests(h: &HostConfig) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for r in h.device_requests.iter().flatten() {
        let driver = r.driver.clone().unwrap_or_default();
        let ids = r.device_ids.clone().unwrap_or_default();
        let gpu = r
            .capabilities
            .iter()
            .flatten()
            .any(|set| set.iter().any(|c| c == "gpu"));
        match driver.as_str() {
            "cdi" => {
                for id in ids {
                    if !hako_engine::cdi::is_cdi_name(&id) {
                        return Err(Error::Invalid(format!(
                            "HostConfig.DeviceRequests: {id:?} is not a CDI device name (vendor.com/class=name)"
                        )));
                    }
                    out.push(id);
                }
            }
            "" | "nvidia" if gpu => {
                let spec = if !ids.is_empty() {
                    format!("device={}", ids.join(","))
                } else {
                    match r.count.unwrap_or(0) {
                        -1 => "all".to_string(),
                        n if n > 0 => n.to_string(),
                        n => {
                            return Err(Error::Invalid(format!(
                                "HostConfig.DeviceRequests: Count {n} asks for no GPU"
                            )))
                        }
                    }
                };
                out.extend(hako_engine::cdi::gpus(&spec)?);
            }
            other => {
                return Err(Error::Invalid(format!(
                    "HostConfig.DeviceRequests: driver {other:?} with capabilities {:?} is not supported by hako (CDI devices and NVIDIA GPUs are)",
                    r.capabilities.clone().unwrap_or_default()
                )))
            }
        }
    }
    Ok(out)
}

/// HostConfig.BlkioDevice*: Docker's `ThrottleDevice` list, each with a device and a rate.
fn throttle(v: &Option<Vec<ThrottleDevice>>, field: &str) -> Result<Vec<EngineThrottle>> {
    v.iter()
        .flatten()
        .map(|t| {
            let path = text(&t.path).ok_or_else(|| {
                Error::Invalid(format!("HostConfig.{field}: a device path is required"))
            })?;
            let rate = u64::try_from(t.rate.unwrap_or(0)).map_err(|_| {
                Error::Invalid(format!(
                    "HostConfig.{field}: the rate of {path} is negative"
                ))
            })?;
            Ok(EngineThrottle { path, rate })
        })
        .collect()
}

/// HostConfig.Mounts: one entry, as `--mount` reads it.
fn api_mount(m: &ApiMount) -> Result<Mount> {
    let target = text(&m.target)
        .ok_or_else(|| Error::Invalid("HostConfig.Mounts: Target is required".into()))?;
    let mut spec = vec![format!("target={target}")];
    let readonly = m.read_only.unwrap_or(false);
    if readonly {
        spec.push("readonly".into());
    }
    match m.typ {
        Some(MountType::BIND) => {
            spec.push("type=bind".into());
            if let Some(s) = text(&m.source) {
                spec.push(format!("source={s}"));
            }
            if let Some(b) = &m.bind_options {
                refuse_if(
                    b.non_recursive == Some(true)
                        || b.create_mountpoint == Some(true)
                        || b.read_only_non_recursive == Some(true)
                        || b.read_only_force_recursive == Some(true),
                    "HostConfig.Mounts.BindOptions (other than Propagation)",
                )?;
                if let Some(p) = b.propagation.as_ref().map(|p| p.to_string()) {
                    if !p.is_empty() {
                        spec.push(format!("bind-propagation={p}"));
                    }
                }
            }
        }
        Some(MountType::VOLUME) | None => {
            spec.push("type=volume".into());
            if let Some(s) = text(&m.source) {
                spec.push(format!("source={s}"));
            }
            if let Some(v) = &m.volume_options {
                refuse_if(
                    v.labels.as_ref().is_some_and(|l| !l.is_empty())
                        || v.driver_config.as_ref().is_some_and(|d| {
                            text(&d.name).is_some_and(|n| n != "local")
                                || d.options.as_ref().is_some_and(|o| !o.is_empty())
                        })
                        || text(&v.subpath).is_some(),
                    "HostConfig.Mounts.VolumeOptions (other than NoCopy)",
                )?;
            }
        }
        Some(MountType::TMPFS) => {
            spec.push("type=tmpfs".into());
            if let Some(t) = &m.tmpfs_options {
                refuse_if(
                    nonempty(&t.options),
                    "HostConfig.Mounts.TmpfsOptions.Options",
                )?;
                if let Some(size) = t.size_bytes.filter(|&s| s > 0) {
                    spec.push(format!("tmpfs-size={size}"));
                }
                if let Some(mode) = t.mode.filter(|&m| m != 0) {
                    spec.push(format!("tmpfs-mode={mode:o}"));
                }
            }
        }
        Some(other) => return Err(unsupported(&format!("HostConfig.Mounts of type {other}"))),
    }
    flags::parse_mount(&spec.join(","))
}

/// `docker inspect` of a container in Docker's JSON, from the engine's typed view, with what
/// dockerd shows that the view leaves out: the network a container that is not running is
/// configured for (compose reads it to decide whether to connect it), the destination of each
/// volume mount (from the `-v` list: named ones by name, anonymous ones in order), and the
/// json-file `LogConfig` every container logs with.
pub fn inspect_json(
    view: &hako_engine::views::container_inspect::ContainerInspect,
) -> serde_json::Value {
    shape_inspect(serde_json::to_value(view).unwrap_or_default())
}

fn shape_inspect(mut doc: serde_json::Value) -> serde_json::Value {
    use serde_json::{json, Value};
    let mode = doc["HostConfig"]["NetworkMode"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let nets = &mut doc["NetworkSettings"]["Networks"];
    if nets.as_object().is_none_or(|o| o.is_empty())
        && !matches!(mode.as_str(), "" | "none" | "host")
    {
        let name = if mode == "default" {
            "bridge".to_string()
        } else {
            mode
        };
        *nets = json!({ name: {
            "IPAMConfig": null, "Links": null, "Aliases": null, "NetworkID": "", "EndpointID": "",
            "Gateway": "", "IPAddress": "", "IPPrefixLen": 0, "IPv6Gateway": "",
            "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "MacAddress": "",
        }});
    }
    let binds: Vec<String> = doc["HostConfig"]["Binds"]
        .as_array()
        .map(|b| {
            b.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let mut anonymous = binds.iter().filter(|b| {
        b.starts_with('/') && !b.contains(':') || b.split(':').next().is_some_and(|s| s.is_empty())
    });
    if let Some(mounts) = doc["Mounts"].as_array_mut() {
        for m in mounts.iter_mut().filter(|m| m["Destination"].is_null()) {
            let name = m["Name"].as_str().unwrap_or("").to_string();
            let named = binds.iter().find_map(|b| {
                let mut parts = b.split(':');
                (parts.next() == Some(name.as_str())).then(|| {
                    (
                        parts.next().unwrap_or("").to_string(),
                        parts.next().unwrap_or("").to_string(),
                    )
                })
            });
            let (dst, mode) = match named {
                Some(x) => x,
                None => match anonymous.next() {
                    Some(a) => (a.trim_start_matches(':').to_string(), String::new()),
                    None => continue,
                },
            };
            m["Destination"] = dst.into();
            m["Mode"] = mode.clone().into();
            m["RW"] = (!mode.split(',').any(|o| o == "ro")).into();
            m["Propagation"] = "".into();
        }
    }
    let hc = &mut doc["HostConfig"];
    if hc["LogConfig"].is_null() {
        hc["LogConfig"] = json!({"Type": "json-file", "Config": {}});
    }
    doc
}

/// One row of `GET /containers/json` (Docker's `ContainerSummary`), serialized straight from
/// the engine's types: a listing of hundreds of containers built no generic JSON values.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Summary {
    /// The full id.
    pub id: String,
    /// `/NAME`.
    pub names: Vec<String>,
    /// The image as the user named it.
    pub image: String,
    /// The image's id.
    #[serde(rename = "ImageID")]
    pub image_id: String,
    /// The argv joined by spaces.
    pub command: String,
    /// Unix seconds.
    pub created: i64,
    /// Published ports.
    pub ports: Vec<SummaryPort>,
    /// The container's labels.
    pub labels: BTreeMap<String, String>,
    /// `created`, `running`, `paused` or `exited`.
    pub state: &'static str,
    /// "Up 5 minutes (Paused)", "Exited (0) 2 seconds ago", "Created".
    pub status: String,
    /// `{"NetworkMode": …}`.
    pub host_config: SummaryHostConfig,
    /// `{"Networks": {name: endpoint}}`.
    pub network_settings: SummaryNetworks,
    /// Its mounts.
    pub mounts: Vec<SummaryMount>,
    /// Bytes of its writable layer, when asked for.
    #[serde(rename = "SizeRw", skip_serializing_if = "Option::is_none")]
    pub size_rw: Option<u64>,
    /// Bytes of that and its image, when asked for.
    #[serde(rename = "SizeRootFs", skip_serializing_if = "Option::is_none")]
    pub size_root_fs: Option<u64>,
}

/// A published port of a [`Summary`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SummaryPort {
    /// The host address.
    #[serde(rename = "IP")]
    pub ip: String,
    /// The container's port.
    #[serde(rename = "PrivatePort")]
    pub private_port: u16,
    /// The host's port.
    #[serde(rename = "PublicPort")]
    pub public_port: u16,
    /// `tcp` or `udp`.
    #[serde(rename = "Type")]
    pub kind: String,
}

/// A [`Summary`]'s `HostConfig`.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct SummaryHostConfig {
    /// `default`, `none`, `host`, a network's name.
    pub network_mode: String,
}

/// A [`Summary`]'s `NetworkSettings`.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct SummaryNetworks {
    /// Each network it is (or, not running, will be) on.
    pub networks: BTreeMap<String, SummaryEndpoint>,
}

/// An endpoint of a [`Summary`]; empty strings for a container that is not running.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct SummaryEndpoint {
    /// The network's id.
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    /// The endpoint's id.
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    /// Its IPv4 address.
    #[serde(rename = "IPAddress")]
    pub ip_address: String,
    /// Its prefix length.
    #[serde(rename = "IPPrefixLen")]
    pub ip_prefix_len: u8,
    /// The network's gateway.
    #[serde(rename = "Gateway")]
    pub gateway: String,
    /// Its MAC address.
    #[serde(rename = "MacAddress")]
    pub mac_address: String,
}

/// A mount of a [`Summary`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct SummaryMount {
    /// `bind` or `volume`.
    #[serde(rename = "Type")]
    pub kind: String,
    /// A volume's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The host path (empty for a volume not yet made).
    pub source: String,
    /// The path in the container.
    pub destination: String,
    /// Writable.
    #[serde(rename = "RW")]
    pub rw: bool,
}

impl Summary {
    /// The row of the `ps` row `row`: a running container's networks and mounts from its
    /// inspect view (`running`), any other's from its stored configuration.
    pub fn new(
        row: &hako_engine::views::container::PsRow,
        config: &ContainerConfig,
        running: Option<&hako_engine::views::container_inspect::ContainerInspect>,
        now: i64,
    ) -> Summary {
        let c = &row.container;
        let network_mode = config.network.mode().to_string();
        let (networks, mounts) = match running {
            Some(view) => (
                view.network_settings
                    .as_ref()
                    .map(|n| {
                        n.networks
                            .iter()
                            .map(|(name, e)| {
                                (
                                    name.clone(),
                                    SummaryEndpoint {
                                        network_id: e.network_id.clone(),
                                        endpoint_id: String::new(),
                                        ip_address: e.addresses.ip_address.clone(),
                                        ip_prefix_len: e.addresses.ip_prefix_len,
                                        gateway: e.addresses.gateway.clone(),
                                        mac_address: e.addresses.mac_address.clone(),
                                    },
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
                view.mounts
                    .iter()
                    .filter(|m| m.kind != "tmpfs")
                    .map(|m| SummaryMount {
                        kind: m.kind.to_string(),
                        name: m.name.clone(),
                        source: m.source.display().to_string(),
                        destination: m.destination.clone().unwrap_or_default(),
                        rw: m.rw,
                    })
                    .collect(),
            ),
            None => (
                match network_mode.as_str() {
                    "none" | "host" => BTreeMap::new(),
                    m => BTreeMap::from([(m.to_string(), SummaryEndpoint::default())]),
                },
                config
                    .mounts
                    .iter()
                    .filter_map(|m| match m {
                        Mount::Bind {
                            source,
                            target,
                            readonly,
                            ..
                        } => Some(SummaryMount {
                            kind: "bind".into(),
                            name: None,
                            source: source.clone(),
                            destination: target.clone(),
                            rw: !readonly,
                        }),
                        Mount::Volume {
                            name,
                            target,
                            readonly,
                        } => Some(SummaryMount {
                            kind: "volume".into(),
                            name: Some(name.clone().unwrap_or_default()),
                            source: String::new(),
                            destination: target.clone(),
                            rw: !readonly,
                        }),
                        Mount::Tmpfs { .. } => None,
                    })
                    .collect(),
            ),
        };
        Summary {
            id: c.id.clone(),
            names: vec![format!("/{}", c.name)],
            image: c.image.clone(),
            image_id: c.image_id.clone(),
            command: crate::format::command_text(&c.command),
            created: c.created.div_euclid(1_000_000_000),
            ports: row
                .ports
                .iter()
                .map(|p| SummaryPort {
                    ip: p.host_ip.to_string(),
                    private_port: p.container_port,
                    public_port: p.host_port,
                    kind: format!("{:?}", p.proto).to_lowercase(),
                })
                .collect(),
            labels: config.labels.clone().into_iter().collect(),
            state: crate::format::ps_state(c, row.paused),
            status: crate::format::ps_status(c, row.paused, now),
            host_config: SummaryHostConfig { network_mode },
            network_settings: SummaryNetworks { networks },
            mounts,
            size_rw: row.size.map(|s| s.0),
            size_root_fs: row.size.map(|s| s.1),
        }
    }

    /// Whether it passes the list filters the engine's `ps` does not apply: `label` (all must
    /// hold), `status`, `network` and `volume` (any value may); other keys are the engine's.
    pub fn matches(&self, filters: &[(String, String)]) -> bool {
        let mut keys: Vec<&str> = filters.iter().map(|(k, _)| k.as_str()).collect();
        keys.sort_unstable();
        keys.dedup();
        keys.into_iter().all(|key| {
            let mut values = filters.iter().filter(|(k, _)| k == key).map(|(_, v)| v);
            match key {
                "label" => {
                    values.all(|v| hako_engine::views::container::label_matches(&self.labels, v))
                }
                "status" => values.any(|v| v == self.state),
                "network" => values.any(|v| self.network_settings.networks.contains_key(v)),
                "volume" => values.any(|v| {
                    self.mounts.iter().any(|m| {
                        m.name.as_deref() == Some(v) || m.source == *v || m.destination == *v
                    })
                }),
                _ => true,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inspect_adds_what_compose_reads() {
        use serde_json::json;
        let d = shape_inspect(json!({
            "HostConfig": {"NetworkMode": "proj_back", "Binds": ["proj_data:/data:ro", "/anon"]},
            "NetworkSettings": {"Networks": {}},
            "Mounts": [
                {"Type": "volume", "Name": "proj_data"},
                {"Type": "volume", "Name": "0123abcd"},
            ],
        }));
        assert!(d["NetworkSettings"]["Networks"]["proj_back"].is_object());
        assert_eq!(d["HostConfig"]["LogConfig"]["Type"], "json-file");
        assert_eq!(d["Mounts"][0]["Destination"], "/data");
        assert_eq!(d["Mounts"][0]["RW"], false);
        assert_eq!(d["Mounts"][1]["Destination"], "/anon");
        // A running container's endpoints are left as the engine gave them.
        let d = shape_inspect(json!({
            "HostConfig": {"NetworkMode": "bridge"},
            "NetworkSettings": {"Networks": {"bridge": {"IPAddress": "10.88.0.2"}}},
        }));
        assert_eq!(
            d["NetworkSettings"]["Networks"]["bridge"]["IPAddress"],
            "10.88.0.2"
        );
    }

    fn ps_row(state: hako_engine::State) -> hako_engine::views::container::PsRow {
        hako_engine::views::container::PsRow {
            container: hako_engine::ContainerInfo {
                id: "c".repeat(64),
                name: "web".into(),
                image: "busybox".into(),
                image_id: "sha256:1".into(),
                command: vec!["sh".into(), "-c".into(), "sleep 9".into()],
                created: 5_000_000_000,
                state,
                exit_code: None,
                started_at: Some(0),
                finished_at: None,
                health: None,
            },
            ports: Vec::new(),
            size: None,
            paused: false,
        }
    }

    /// A created container's row from its configuration: Docker's keys, its configured
    /// network, volume mounts, no size keys unless measured; the filters the engine leaves.
    #[test]
    fn summary_rows_like_dockers() {
        let config = ContainerConfig {
            labels: BTreeMap::from([("app".into(), "web".into())]),
            mounts: vec![Mount::Volume {
                name: Some("data".into()),
                target: "/data".into(),
                readonly: false,
            }],
            ..Default::default()
        };
        let s = Summary::new(&ps_row(hako_engine::State::Created), &config, None, 0);
        let v = serde_json::to_value(&s).unwrap();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        for k in [
            "Id",
            "Names",
            "Image",
            "ImageID",
            "Command",
            "Created",
            "Ports",
            "Labels",
            "State",
            "Status",
            "HostConfig",
            "NetworkSettings",
            "Mounts",
        ] {
            assert!(keys.contains(&k), "{k}: {v}");
        }
        assert!(v.get("SizeRw").is_none());
        assert_eq!(v["Names"][0], "/web");
        assert_eq!(v["Command"], "sh -c 'sleep 9'");
        assert_eq!(v["Created"], 5);
        assert_eq!(v["State"], "created");
        assert_eq!(v["Mounts"][0]["Name"], "data");
        let f = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Vec<_>>()
        };
        assert!(s.matches(&f(&[("label", "app=web"), ("volume", "data")])));
        assert!(!s.matches(&f(&[("label", "app=web"), ("label", "tier")])));
        assert!(s.matches(&f(&[("status", "exited"), ("status", "created")])));
        assert!(!s.matches(&f(&[("status", "running")])));
        let mut paused = ps_row(hako_engine::State::Running);
        paused.paused = true;
        let s = Summary::new(&paused, &config, None, 60_000_000_000);
        assert_eq!(s.state, "paused");
        assert!(s.status.ends_with(" (Paused)"), "{}", s.status);
        assert!(s.matches(&f(&[("status", "paused")])));
    }
    use hako_engine::config::Protocol;

    /// What the docker 28 CLI sends for `docker run -d --name web -p 127.0.0.1:8080:80
    /// -v /tmp:/data:ro --tmpfs /run:size=1m --restart on-failure:3 -m 64m --cpus 1.5
    /// --ulimit nofile=1024:2048 -e A=1 -l tier=front --entrypoint "" busybox sleep 100`
    /// (its zero values included), plus an anonymous `/data` in Config.Volumes, which the
    /// bind of the same target replaces.
    const DOCKER_RUN: &str = r#"{
        "Hostname":"","Domainname":"","User":"","AttachStdin":false,"AttachStdout":false,
        "AttachStderr":false,"ExposedPorts":{"80/tcp":{}},"Tty":false,"OpenStdin":false,
        "StdinOnce":false,"Env":["A=1"],"Cmd":["sleep","100"],"Image":"busybox",
        "Volumes":{"/data":{}},"WorkingDir":"","Entrypoint":[""],"OnBuild":null,
        "Labels":{"tier":"front"},
        "HostConfig":{"Binds":["/tmp:/data:ro"],"ContainerIDFile":"",
          "LogConfig":{"Type":"","Config":{}},"NetworkMode":"default",
          "PortBindings":{"80/tcp":[{"HostIp":"127.0.0.1","HostPort":"8080"}]},
          "RestartPolicy":{"Name":"on-failure","MaximumRetryCount":3},"AutoRemove":false,
          "VolumeDriver":"","VolumesFrom":null,"ConsoleSize":[24,80],"CapAdd":null,
          "CapDrop":null,"CgroupnsMode":"","Dns":[],"DnsOptions":[],"DnsSearch":[],
          "ExtraHosts":null,"GroupAdd":null,"IpcMode":"","Cgroup":"","Links":null,
          "OomScoreAdj":0,"PidMode":"","Privileged":false,"PublishAllPorts":false,
          "ReadonlyRootfs":false,"SecurityOpt":null,"Tmpfs":{"/run":"size=1m"},"UTSMode":"",
          "UsernsMode":"","ShmSize":0,"Isolation":"","CpuShares":0,"Memory":67108864,
          "NanoCpus":1500000000,"CgroupParent":"","BlkioWeight":0,"BlkioWeightDevice":[],
          "BlkioDeviceReadBps":[],"BlkioDeviceWriteBps":[],"BlkioDeviceReadIOps":[],
          "BlkioDeviceWriteIOps":[],"CpuPeriod":0,"CpuQuota":0,"CpuRealtimePeriod":0,
          "CpuRealtimeRuntime":0,"CpusetCpus":"","CpusetMems":"","Devices":[],
          "DeviceCgroupRules":null,"DeviceRequests":null,"MemoryReservation":0,
          "MemorySwap":0,"MemorySwappiness":null,"OomKillDisable":null,"PidsLimit":null,
          "Ulimits":[{"Name":"nofile","Hard":2048,"Soft":1024}],"CpuCount":0,"CpuPercent":0,
          "IOMaximumIOps":0,"IOMaximumBandwidth":0},
        "NetworkingConfig":{"EndpointsConfig":{}}
    }"#;

    fn body(json: &str) -> ContainerCreateBody {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn the_docker_clis_run_becomes_the_same_config_as_the_flags() {
        let c = from_create_body(&body(DOCKER_RUN)).unwrap().config;
        assert_eq!(c.image, "busybox");
        assert_eq!(c.cmd, ["sleep", "100"]);
        assert_eq!(c.entrypoint, Some(Vec::new()));
        assert_eq!(c.env, ["A=1"]);
        assert_eq!(c.labels["tier"], "front");
        assert_eq!(c.resources.memory, Some(64 << 20));
        assert_eq!(c.resources.nano_cpus, Some(1_500_000_000));
        assert_eq!(c.resources.pids_limit, None);
        assert_eq!(c.resources.ulimits[0].soft, 1024);
        assert_eq!(c.restart_policy, RestartPolicy::OnFailure(3));
        assert_eq!(c.network, Network::Default);
        // `-v /tmp:/data:ro` replaces Config.Volumes' anonymous /data.
        assert_eq!(
            c.mounts,
            [
                Mount::Bind {
                    source: "/tmp".into(),
                    target: "/data".into(),
                    readonly: true,
                    propagation: "rprivate".into()
                },
                Mount::Tmpfs {
                    target: "/run".into(),
                    options: vec!["size=1m".into()]
                }
            ]
        );
        assert_eq!(
            c.port_bindings,
            [PortBinding {
                host_ip: Some("127.0.0.1".parse().unwrap()),
                host_port: 8080,
                host_port_end: 8080,
                container_port: 80,
                protocol: Protocol::Tcp
            }]
        );
        assert_eq!(c.exposed_ports, ["80/tcp"]);

        // The flags of the same command line give the same configuration.
        let f = flags::RunFlags {
            name: Some("web".into()),
            detach: true,
            publish: vec!["127.0.0.1:8080:80".into()],
            volume: vec!["/tmp:/data:ro".into()],
            tmpfs: vec!["/run:size=1m".into()],
            restart: Some("on-failure:3".into()),
            resources: flags::ResourceFlags {
                memory: Some("64m".into()),
                cpus: Some("1.5".into()),
                ..Default::default()
            },
            ulimit: vec!["nofile=1024:2048".into()],
            env: vec!["A=1".into()],
            label: vec!["tier=front".into()],
            entrypoint: Some(String::new()),
            image_and_command: vec!["busybox".into(), "sleep".into(), "100".into()],
            ..Default::default()
        };
        let from_flags = flags::container_config(&f).unwrap().config;
        assert_eq!(
            ContainerConfig {
                exposed_ports: Vec::new(),
                ..c
            },
            from_flags
        );
    }

    #[test]
    fn what_hako_cannot_apply_is_refused_by_name() {
        for (field, json) in [
            (
                "HostConfig.CpuRealtimeRuntime",
                r#"{"Image":"b","HostConfig":{"CpuRealtimeRuntime":5000}}"#,
            ),
            (
                "HostConfig.BlkioWeightDevice: invalid weight 5 for /dev/vda",
                r#"{"Image":"b","HostConfig":{"BlkioWeightDevice":[{"Path":"/dev/vda","Weight":5}]}}"#,
            ),
            (
                "HostConfig.Links",
                r#"{"Image":"b","HostConfig":{"Links":["db:"]}}"#,
            ),
            (
                "HostConfig.BlkioDeviceReadBps: the rate of /dev/vda is negative",
                r#"{"Image":"b","HostConfig":{"BlkioDeviceReadBps":[{"Path":"/dev/vda","Rate":-1}]}}"#,
            ),
            (
                "joining several networks",
                r#"{"Image":"b","NetworkingConfig":{"EndpointsConfig":{"a":{},"b":{}}}}"#,
            ),
        ] {
            let e = from_create_body(&body(json)).unwrap_err().to_string();
            assert!(e.contains(field), "{field}: {e}");
        }
        assert!(from_create_body(&body("{}")).is_err());
        // Docker's "not set" values are not settings.
        let c = from_create_body(&body(
            r#"{"Image":"b","HostConfig":{"MemorySwappiness":-1,"PidsLimit":0,"LogConfig":{"Type":"json-file","Config":{"max-size":"1m"}}}}"#,
        ))
        .unwrap()
        .config;
        assert_eq!(c.resources.pids_limit, None);
        assert_eq!(c.log_config.max_size, 1 << 20);
        let c = from_create_body(&body(
            r#"{"Image":"b","Domainname":"example.com","StopSignal":"SIGQUIT","HostConfig":{"DnsSearch":["a.example"],"DnsOptions":["ndots:2"],"OomScoreAdj":300}}"#,
        ))
        .unwrap()
        .config;
        assert_eq!(c.domainname.as_deref(), Some("example.com"));
        assert_eq!(c.stop_signal.as_deref(), Some("SIGQUIT"));
        assert_eq!(
            (c.dns_search, c.dns_options),
            (vec!["a.example".to_string()], vec!["ndots:2".to_string()])
        );
        assert_eq!(c.oom_score_adj, Some(300));
        // 2^32 + 100 must not wrap to 100.
        let e = from_create_body(&body(
            r#"{"Image":"b","HostConfig":{"OomScoreAdj":4294967396}}"#,
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("range for oom score adj"), "{e}");
    }

    /// The fields the CLI's resource, link and volumes-from flags set arrive as the same
    /// configuration through the API (compose sends them for `cpu_quota:`, `links:`, ...).
    #[test]
    fn cfs_blkio_links_and_volumes_from_read_as_the_cli_flags_do() {
        let api = from_create_body(&body(
            r#"{"Image":"busybox","AttachStdout":true,"AttachStderr":true,
                "HostConfig":{"CpuPeriod":50000,"CpuQuota":-1,
                "MemoryReservation":33554432,"OomKillDisable":true,"BlkioWeight":300,
                "BlkioDeviceReadBps":[{"Path":"/dev/vda","Rate":1048576}],
                "BlkioDeviceWriteBps":[{"Path":"/dev/vda","Rate":512}],
                "BlkioDeviceReadIOps":[{"Path":"/dev/vda","Rate":100}],
                "BlkioDeviceWriteIOps":[{"Path":"/dev/vdb","Rate":7}],
                "CpusetMems":"0","MemorySwappiness":10,
                "BlkioWeightDevice":[{"Path":"/dev/vda","Weight":200}],
                "Links":["db:data"],"VolumesFrom":["store:ro"]}}"#,
        ))
        .unwrap()
        .config;
        let f = flags::RunFlags {
            more: flags::MoreResourceFlags::every_one_set(),
            link: vec!["db:data".into()],
            volumes_from: vec!["store:ro".into()],
            image_and_command: vec!["busybox".into()],
            ..Default::default()
        };
        assert_eq!(api, flags::container_config(&f).unwrap().config);
        // Docker's zeros are "not set".
        let zeros = from_create_body(&body(
            r#"{"Image":"b","HostConfig":{"CpuPeriod":0,"CpuQuota":0,"BlkioWeight":0,
                "MemoryReservation":0,"OomKillDisable":false,"Links":null,"VolumesFrom":null,
                "BlkioDeviceReadBps":[]}}"#,
        ))
        .unwrap()
        .config;
        assert_eq!(zeros.resources, Resources::default());
        assert!(zeros.links.is_empty() && zeros.volumes_from.is_empty());
    }

    #[test]
    fn device_requests_name_cdi_devices() {
        let c = from_create_body(&body(
            r#"{"Image":"b","HostConfig":{"DeviceRequests":[{"Driver":"cdi","DeviceIDs":["example.com/widget=one"]}]}}"#,
        ))
        .unwrap()
        .config;
        assert_eq!(c.resources.cdi_devices, ["example.com/widget=one"]);
        for (json, want) in [
            (
                r#"{"Image":"b","HostConfig":{"DeviceRequests":[{"Driver":"cdi","DeviceIDs":["/dev/sda"]}]}}"#,
                "is not a CDI device name",
            ),
            (
                r#"{"Image":"b","HostConfig":{"DeviceRequests":[{"Driver":"acme","Count":1,"Capabilities":[["tpu"]]}]}}"#,
                "driver \"acme\"",
            ),
        ] {
            let e = from_create_body(&body(json)).unwrap_err().to_string();
            assert!(e.contains(want), "{e}");
        }
    }

    #[test]
    fn an_endpoint_names_the_network_and_its_addresses() {
        let c = from_create_body(&body(
            r#"{"Image":"b","NetworkingConfig":{"EndpointsConfig":{"front":{
                "Aliases":["web"],"IPAMConfig":{"IPv4Address":"10.5.0.9"}}}}}"#,
        ))
        .unwrap()
        .config;
        assert_eq!(c.network, Network::Named("front".into()));
        assert_eq!(c.network_aliases, ["web"]);
        assert_eq!(c.ip, Some("10.5.0.9".parse().unwrap()));
        let e = from_create_body(&body(
            r#"{"Image":"b","HostConfig":{"NetworkMode":"host"},
                "NetworkingConfig":{"EndpointsConfig":{"front":{}}}}"#,
        ))
        .unwrap_err();
        assert!(e.to_string().contains("front"), "{e}");
    }

    #[test]
    fn api_mounts_read_as_the_mount_flag() {
        let c = from_create_body(&body(
            r#"{"Image":"b","HostConfig":{"Mounts":[
                {"Type":"volume","Source":"data","Target":"/d","ReadOnly":true},
                {"Type":"tmpfs","Target":"/t","TmpfsOptions":{"SizeBytes":1048576,"Mode":448}},
                {"Type":"bind","Source":"/tmp","Target":"/b","BindOptions":{"Propagation":"rslave"}}
            ]}}"#,
        ))
        .unwrap()
        .config;
        assert_eq!(
            c.mounts,
            [
                Mount::Volume {
                    name: Some("data".into()),
                    target: "/d".into(),
                    readonly: true
                },
                Mount::Tmpfs {
                    target: "/t".into(),
                    options: vec!["size=1048576".into(), "mode=700".into()]
                },
                Mount::Bind {
                    source: "/tmp".into(),
                    target: "/b".into(),
                    readonly: false,
                    propagation: "rslave".into()
                },
            ]
        );
        let e = from_create_body(&body(
            r#"{"Image":"b","HostConfig":{"Mounts":[{"Type":"npipe","Target":"/x"}]}}"#,
        ))
        .unwrap_err();
        assert!(e.to_string().contains("npipe"), "{e}");
    }
}
