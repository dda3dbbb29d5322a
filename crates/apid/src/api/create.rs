//! `POST /containers/create`'s body, as Docker's clients send it, turned into the engine's
//! [`RunOptions`]. Fields hako does not implement are refused when they ask for something
//! (a non-zero, non-empty value), never silently dropped; fields no client sets a value in
//! hako cannot honour are refused by name.

use crate::error::ApiError;
use hako_engine::{Network, RunOptions};
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub(crate) struct CreateBody {
    pub(crate) image: String,
    pub(crate) cmd: Option<StrOrList>,
    pub(crate) entrypoint: Option<StrOrList>,
    pub(crate) env: Option<Vec<String>>,
    pub(crate) working_dir: String,
    pub(crate) user: String,
    pub(crate) hostname: String,
    pub(crate) labels: Option<BTreeMap<String, String>>,
    pub(crate) tty: bool,
    pub(crate) open_stdin: bool,
    pub(crate) stdin_once: bool,
    pub(crate) exposed_ports: Option<BTreeMap<String, Value>>,
    pub(crate) volumes: Option<BTreeMap<String, Value>>,
    pub(crate) stop_timeout: Option<i64>,
    pub(crate) stop_signal: String,
    pub(crate) mac_address: String,
    pub(crate) healthcheck: Option<Value>,
    pub(crate) host_config: HostConfig,
    pub(crate) networking_config: Option<NetworkingConfig>,
}

/// Docker accepts a command as a string (a shell would split it) or a list.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum StrOrList {
    Str(String),
    List(Vec<String>),
}

impl StrOrList {
    fn into_vec(self) -> Vec<String> {
        match self {
            StrOrList::Str(s) => s.split_whitespace().map(str::to_string).collect(),
            StrOrList::List(v) => v,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub(crate) struct HostConfig {
    pub(crate) binds: Option<Vec<String>>,
    pub(crate) port_bindings: Option<BTreeMap<String, Option<Vec<PortBinding>>>>,
    pub(crate) network_mode: String,
    pub(crate) auto_remove: bool,
    pub(crate) restart_policy: Option<RestartPolicy>,
    pub(crate) privileged: bool,
    pub(crate) cap_add: Option<Vec<String>>,
    pub(crate) cap_drop: Option<Vec<String>>,
    pub(crate) memory: i64,
    pub(crate) memory_swap: i64,
    pub(crate) nano_cpus: i64,
    pub(crate) cpu_shares: i64,
    pub(crate) cpuset_cpus: String,
    pub(crate) pids_limit: Option<i64>,
    pub(crate) ulimits: Option<Vec<Ulimit>>,
    pub(crate) tmpfs: Option<BTreeMap<String, String>>,
    pub(crate) extra_hosts: Option<Vec<String>>,
    pub(crate) dns: Option<Vec<String>>,
    pub(crate) group_add: Option<Vec<String>>,
    pub(crate) sysctls: Option<BTreeMap<String, String>>,
    pub(crate) shm_size: i64,
    pub(crate) security_opt: Option<Vec<String>>,
    pub(crate) readonly_rootfs: bool,
    pub(crate) init: Option<bool>,
    pub(crate) devices: Option<Vec<Device>>,
    pub(crate) device_cgroup_rules: Option<Vec<String>>,
    pub(crate) mounts: Option<Vec<Mount>>,
    pub(crate) publish_all_ports: bool,
    pub(crate) log_config: Option<LogConfig>,
    pub(crate) cgroup_parent: String,
    pub(crate) pid_mode: String,
    pub(crate) ipc_mode: String,
    #[serde(rename = "UTSMode")]
    pub(crate) uts_mode: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub(crate) struct PortBinding {
    pub(crate) host_ip: String,
    pub(crate) host_port: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub(crate) struct RestartPolicy {
    pub(crate) name: String,
    pub(crate) maximum_retry_count: i64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub(crate) struct Ulimit {
    pub(crate) name: String,
    pub(crate) soft: i64,
    pub(crate) hard: i64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub(crate) struct Device {
    pub(crate) path_on_host: String,
    pub(crate) path_in_container: String,
    pub(crate) cgroup_permissions: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub(crate) struct Mount {
    #[serde(rename = "Type")]
    pub(crate) kind: String,
    pub(crate) source: String,
    pub(crate) target: String,
    pub(crate) read_only: bool,
    pub(crate) tmpfs_options: Option<TmpfsOptions>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub(crate) struct TmpfsOptions {
    pub(crate) size_bytes: i64,
    pub(crate) mode: u32,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub(crate) struct LogConfig {
    #[serde(rename = "Type")]
    pub(crate) kind: String,
    pub(crate) config: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub(crate) struct NetworkingConfig {
    pub(crate) endpoints_config: Option<BTreeMap<String, Option<EndpointConfig>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub(crate) struct EndpointConfig {
    pub(crate) aliases: Option<Vec<String>>,
    #[serde(rename = "IPAMConfig")]
    pub(crate) ipam_config: Option<IpamConfig>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct IpamConfig {
    #[serde(rename = "IPv4Address")]
    pub(crate) ipv4: String,
    #[serde(rename = "IPv6Address")]
    pub(crate) ipv6: String,
}

/// HostConfig fields hako has no counterpart for: a request that sets one is refused.
const UNSUPPORTED_HOST: &[&str] = &[
    "BlkioWeight",
    "BlkioWeightDevice",
    "BlkioDeviceReadBps",
    "BlkioDeviceWriteBps",
    "BlkioDeviceReadIOps",
    "BlkioDeviceWriteIOps",
    "CpuPeriod",
    "CpuQuota",
    "CpuRealtimePeriod",
    "CpuRealtimeRuntime",
    "CpusetMems",
    "KernelMemory",
    "KernelMemoryTCP",
    "MemoryReservation",
    "MemorySwappiness",
    "OomKillDisable",
    "OomScoreAdj",
    "Links",
    "VolumesFrom",
    "VolumeDriver",
    "DnsOptions",
    "DnsSearch",
    "StorageOpt",
    "Runtime",
    "Isolation",
    "CgroupnsMode",
    "UsernsMode",
    "DeviceRequests",
];

/// Whether a JSON value asks for something (not null, false, 0, "", [], {}).
fn is_set(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// Parses and checks a create body.
pub(crate) fn parse(raw: &Value) -> Result<CreateBody, ApiError> {
    if !raw.is_object() {
        return Err(ApiError::bad_request(
            "invalid JSON: the container configuration must be an object",
        ));
    }
    if let Some(hc) = raw.get("HostConfig").and_then(Value::as_object) {
        for k in UNSUPPORTED_HOST {
            // OomKillDisable false and MemorySwappiness -1 are what the CLIs send by default.
            let v = hc.get(*k).unwrap_or(&Value::Null);
            let default = (*k == "MemorySwappiness" && v.as_i64() == Some(-1))
                || (*k == "CgroupnsMode" && v.as_str() == Some("private"))
                || (*k == "Runtime" && matches!(v.as_str(), Some("runc" | "hako")))
                || (*k == "Isolation" && v.as_str() == Some("default"));
            if is_set(v) && !default {
                return Err(ApiError::bad_request(format!(
                    "HostConfig.{k} is not supported by hako"
                )));
            }
        }
    }
    serde_json::from_value(raw.clone())
        .map_err(|e| ApiError::bad_request(format!("invalid container configuration: {e}")))
}

fn port_spec(key: &str) -> Result<(String, String), ApiError> {
    let (port, proto) = key.split_once('/').unwrap_or((key, "tcp"));
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
        return Err(ApiError::bad_request(format!(
            "invalid port specification: {key:?}"
        )));
    }
    Ok((port.to_string(), proto.to_string()))
}

/// The engine's options for a create body and the `name` query parameter.
pub(crate) fn to_run_options(b: CreateBody, name: Option<String>) -> Result<RunOptions, ApiError> {
    if b.image.is_empty() {
        return Err(ApiError::bad_request(
            "config cannot be empty in order to create a container: no image given",
        ));
    }
    if let Some(hc) = &b.healthcheck {
        let test = hc.get("Test").and_then(Value::as_array);
        let none = test.is_some_and(|t| t.first().and_then(Value::as_str) == Some("NONE"));
        if test.is_some_and(|t| !t.is_empty()) && !none {
            return Err(ApiError::bad_request(
                "Healthcheck is not supported by hako",
            ));
        }
    }
    if !b.stop_signal.is_empty() && !matches!(b.stop_signal.as_str(), "SIGTERM" | "TERM" | "15") {
        return Err(ApiError::bad_request(
            "StopSignal other than SIGTERM is not supported by hako",
        ));
    }
    let h = b.host_config;
    let mut o = RunOptions {
        image: b.image,
        cmd: b.cmd.map(StrOrList::into_vec).unwrap_or_default(),
        name: name.filter(|n| !n.is_empty()),
        env: b.env.unwrap_or_default(),
        workdir: Some(b.working_dir).filter(|s| !s.is_empty()),
        hostname: Some(b.hostname).filter(|s| !s.is_empty()),
        user: Some(b.user).filter(|s| !s.is_empty()),
        auto_remove: h.auto_remove,
        interactive: b.open_stdin,
        stdin_once: b.stdin_once,
        tty: b.tty,
        detach: true,
        read_only: h.readonly_rootfs,
        privileged: h.privileged,
        cap_add: h.cap_add.unwrap_or_default(),
        cap_drop: h.cap_drop.unwrap_or_default(),
        labels: b
            .labels
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect(),
        add_hosts: h.extra_hosts.unwrap_or_default(),
        dns: h.dns.unwrap_or_default(),
        group_add: h.group_add.unwrap_or_default(),
        sysctls: h
            .sysctls
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect(),
        init: h.init.unwrap_or(false),
        publish_all: h.publish_all_ports,
        cgroup_parent: Some(h.cgroup_parent).filter(|s| !s.is_empty()),
        pid_mode: Some(h.pid_mode).filter(|s| !s.is_empty()),
        ipc_mode: Some(h.ipc_mode).filter(|s| !s.is_empty()),
        uts_mode: Some(h.uts_mode).filter(|s| !s.is_empty()),
        device_cgroup_rules: h.device_cgroup_rules.unwrap_or_default(),
        mac_address: Some(b.mac_address).filter(|s| !s.is_empty()),
        ..RunOptions::default()
    };
    if let Some(ep) = b.entrypoint {
        let v = ep.into_vec();
        // Docker's JSON carries the entrypoint as a list; the engine takes the first word and
        // puts the rest in front of the command.
        match v.split_first() {
            None => o.entrypoint = Some(String::new()),
            Some((first, rest)) => {
                o.entrypoint = Some(first.clone());
                if !rest.is_empty() {
                    let mut cmd = rest.to_vec();
                    cmd.append(&mut o.cmd);
                    o.cmd = cmd;
                }
            }
        }
    }
    if let Some(t) = b.stop_timeout.filter(|t| *t >= 0) {
        o.stop_timeout = Some(t as u64);
    }
    o.network = match h.network_mode.as_str() {
        "" | "default" => Network::Default,
        m => m
            .parse()
            .map_err(|e: hako_engine::Error| ApiError::bad_request(e.to_string()))?,
    };
    if let Some(nc) = b.networking_config.and_then(|n| n.endpoints_config) {
        if nc.len() > 1 {
            return Err(ApiError::bad_request(
                "a container can be created with one network; connect it to the others afterwards",
            ));
        }
        for (net, ep) in nc {
            let net = if net == "default" {
                "bridge".to_string()
            } else {
                net
            };
            if o.network == Network::Default && net != "bridge" {
                o.network = Network::Named(net.clone());
            }
            let Some(ep) = ep else { continue };
            if o.network.mode() != net && !(net == "bridge" && o.network == Network::Default) {
                return Err(ApiError::bad_request(format!(
                    "NetworkingConfig names network {net:?} but NetworkMode is {:?}",
                    o.network.mode()
                )));
            }
            o.network_aliases = ep.aliases.unwrap_or_default();
            if let Some(ipam) = ep.ipam_config {
                o.ip = Some(ipam.ipv4).filter(|s| !s.is_empty());
                o.ip6 = Some(ipam.ipv6).filter(|s| !s.is_empty());
            }
        }
    }
    if let Some(r) = h.restart_policy {
        o.restart = match r.name.as_str() {
            "" | "no" => None,
            "on-failure" if r.maximum_retry_count > 0 => {
                Some(format!("on-failure:{}", r.maximum_retry_count))
            }
            other => Some(other.to_string()),
        };
    }
    if h.memory > 0 {
        o.memory = Some(h.memory.to_string());
    }
    if h.memory_swap != 0 {
        o.memory_swap = Some(h.memory_swap.to_string());
    }
    if h.nano_cpus > 0 {
        o.cpus = Some(format!("{}", h.nano_cpus as f64 / 1e9));
    }
    if h.cpu_shares > 0 {
        o.cpu_shares = Some(h.cpu_shares as u64);
    }
    o.cpuset_cpus = Some(h.cpuset_cpus).filter(|s| !s.is_empty());
    o.pids_limit = h.pids_limit.filter(|p| *p != 0);
    if h.shm_size > 0 {
        o.shm_size = Some(h.shm_size.to_string());
    }
    for u in h.ulimits.unwrap_or_default() {
        o.ulimits.push(format!("{}={}:{}", u.name, u.soft, u.hard));
    }
    for (dst, opts) in h.tmpfs.unwrap_or_default() {
        o.tmpfs.push(if opts.is_empty() {
            dst
        } else {
            format!("{dst}:{opts}")
        });
    }
    for d in h.devices.unwrap_or_default() {
        let mut s = d.path_on_host;
        if !d.path_in_container.is_empty() {
            s = format!("{s}:{}", d.path_in_container);
            if !d.cgroup_permissions.is_empty() {
                s = format!("{s}:{}", d.cgroup_permissions);
            }
        }
        o.devices.push(s);
    }
    for so in h.security_opt.unwrap_or_default() {
        match so.as_str() {
            "no-new-privileges" | "no-new-privileges:true" | "no-new-privileges=true" => {
                o.no_new_privileges = true
            }
            s if s.starts_with("seccomp=") || s.starts_with("seccomp:") => {
                o.seccomp = hako_engine::seccomp::Seccomp::from_option(&s[8..])
                    .map_err(|e| ApiError::bad_request(e.to_string()))?;
            }
            s if s.starts_with("label=") || s.starts_with("label:") => {}
            other => {
                return Err(ApiError::bad_request(format!(
                    "invalid --security-opt: {other:?} is not supported by hako"
                )))
            }
        }
        o.security_opt.push(so);
    }
    if let Some(lc) = h.log_config {
        if !matches!(lc.kind.as_str(), "" | "json-file" | "local") {
            return Err(ApiError::bad_request(format!(
                "logging driver {:?} is not supported by hako (json-file only)",
                lc.kind
            )));
        }
        for (k, v) in lc.config.unwrap_or_default() {
            o.log_opts.push(format!("{k}={v}"));
        }
    }
    o.volumes = h.binds.unwrap_or_default();
    // The image's and the body's anonymous volumes (`Volumes`): the engine makes one for
    // each target no bind covers.
    for target in b.volumes.unwrap_or_default().into_keys() {
        let covered = o
            .volumes
            .iter()
            .any(|v| v.split(':').nth(1) == Some(target.as_str()));
        if !covered {
            o.volumes.push(target);
        }
    }
    for m in h.mounts.unwrap_or_default() {
        let ro = if m.read_only { ":ro" } else { "" };
        match m.kind.as_str() {
            "bind" | "volume" if m.source.is_empty() => o.volumes.push(format!("{}{ro}", m.target)),
            "bind" | "volume" => o.volumes.push(format!("{}:{}{ro}", m.source, m.target)),
            "tmpfs" => {
                let mut opts = Vec::new();
                if let Some(t) = m.tmpfs_options {
                    if t.size_bytes > 0 {
                        opts.push(format!("size={}", t.size_bytes));
                    }
                    if t.mode != 0 {
                        opts.push(format!("mode={:o}", t.mode));
                    }
                }
                o.tmpfs.push(if opts.is_empty() {
                    m.target
                } else {
                    format!("{}:{}", m.target, opts.join(","))
                });
            }
            other => {
                return Err(ApiError::bad_request(format!(
                    "mount type {other:?} is not supported by hako"
                )))
            }
        }
    }
    for (key, bindings) in h.port_bindings.unwrap_or_default() {
        let (port, proto) = port_spec(&key)?;
        let bindings = bindings.unwrap_or_default();
        if bindings.is_empty() {
            o.publish.push(format!("{port}/{proto}"));
        }
        for b in bindings {
            let ip = if b.host_ip.contains(':') {
                format!("[{}]", b.host_ip)
            } else {
                b.host_ip
            };
            o.publish
                .push(match (ip.is_empty(), b.host_port.is_empty()) {
                    (true, true) => format!("{port}/{proto}"),
                    (true, false) => format!("{}:{port}/{proto}", b.host_port),
                    (false, _) => format!("{ip}:{}:{port}/{proto}", b.host_port),
                });
        }
    }
    // `ExposedPorts` only matter to `-P`, which takes them from the image and the body.
    if o.publish_all {
        for key in b.exposed_ports.unwrap_or_default().into_keys() {
            let (port, proto) = port_spec(&key)?;
            let spec = format!("{port}/{proto}");
            if !o.publish.contains(&spec) {
                o.publish.push(spec);
            }
        }
    }
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn opts(v: Value) -> Result<RunOptions, ApiError> {
        to_run_options(parse(&v)?, Some("n".into()))
    }

    #[test]
    fn docker_cli_body() {
        let o = opts(json!({
            "Image": "busybox", "Cmd": ["sh", "-c", "echo hi"], "Env": ["A=1"], "Tty": false,
            "OpenStdin": true, "StdinOnce": true, "Labels": {"l": "v"},
            "HostConfig": {"AutoRemove": true, "NetworkMode": "default", "Binds": ["/tmp:/x:ro"],
                "PortBindings": {"80/tcp": [{"HostIp": "", "HostPort": "8080"}], "53/udp": [{"HostIp": "127.0.0.1", "HostPort": ""}]},
                "RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 3},
                "Memory": 0, "OomKillDisable": false, "MemorySwappiness": -1, "Links": null,
                "NanoCpus": 1500000000, "Mounts": [{"Type": "volume", "Source": "v1", "Target": "/data"}]},
            "NetworkingConfig": {"EndpointsConfig": {"default": {}}},
        }))
        .unwrap();
        assert_eq!(o.cmd, ["sh", "-c", "echo hi"]);
        assert!(o.auto_remove && o.interactive && o.stdin_once);
        assert_eq!(o.labels, ["l=v"]);
        assert_eq!(o.volumes, ["/tmp:/x:ro", "v1:/data"]);
        assert_eq!(o.publish, ["127.0.0.1::53/udp", "8080:80/tcp"]);
        assert_eq!(o.restart.as_deref(), Some("on-failure:3"));
        assert_eq!(o.cpus.as_deref(), Some("1.5"));
        assert_eq!(o.name.as_deref(), Some("n"));
    }

    #[test]
    fn compose_network_and_aliases() {
        let o = opts(json!({
            "Image": "busybox",
            "HostConfig": {"NetworkMode": "proj_default"},
            "NetworkingConfig": {"EndpointsConfig": {"proj_default": {"Aliases": ["web", "abc"]}}},
        }))
        .unwrap();
        assert_eq!(o.network, Network::Named("proj_default".into()));
        assert_eq!(o.network_aliases, ["web", "abc"]);
    }

    #[test]
    fn entrypoint_list_puts_the_rest_before_the_command() {
        let o =
            opts(json!({"Image": "i", "Entrypoint": ["/bin/sh", "-c"], "Cmd": ["true"]})).unwrap();
        assert_eq!(o.entrypoint.as_deref(), Some("/bin/sh"));
        assert_eq!(o.cmd, ["-c", "true"]);
        let o = opts(json!({"Image": "i", "Entrypoint": []})).unwrap();
        assert_eq!(o.entrypoint.as_deref(), Some(""));
    }

    #[test]
    fn bad_bodies_are_400_naming_the_problem() {
        let e = opts(json!({"Image": "i", "Cmd": 5})).unwrap_err();
        assert_eq!(e.status, hyper::StatusCode::BAD_REQUEST);
        let e = opts(json!({"Image": "i", "HostConfig": {"CpuQuota": 5000}})).unwrap_err();
        assert!(e.message.contains("HostConfig.CpuQuota"), "{}", e.message);
        let e = opts(json!({"Cmd": ["x"]})).unwrap_err();
        assert!(e.message.contains("image"), "{}", e.message);
        let e = opts(json!([1])).unwrap_err();
        assert_eq!(e.status, hyper::StatusCode::BAD_REQUEST);
        let e = opts(json!({"Image": "i", "HostConfig": {"LogConfig": {"Type": "syslog"}}}))
            .unwrap_err();
        assert!(e.message.contains("syslog"));
        // Unknown fields (a newer client's) are ignored, as dockerd ignores them.
        assert!(opts(json!({"Image": "i", "SomethingNew": 1})).is_ok());
    }
}
