//! Parsing of Docker's value syntaxes: sizes (`512m`), `--cpus`, `--ulimit`, `-v`, `--tmpfs`,
//! `--add-host`, capability names. Error texts follow Docker's where it has one.
//!
//! The engine keeps these grammars (rather than `hako_docker::flags`, which builds a
//! [`ContainerConfig`](crate::config::ContainerConfig) from `docker run`'s flags with them)
//! because it reads rows that earlier hako stored as flag strings, and converts them with the
//! same grammars ([`crate::config`]).

use crate::config::Mount;
use crate::{Error, Result};

/// Docker's `RAMInBytes` ([`hako_base::size::parse_ram`]: `512m`, `1.5g`, `5MiB`) for `flag`,
/// with Docker's message when it is not one.
pub fn parse_size(s: &str, flag: &str) -> Result<i64> {
    hako_base::size::parse_ram(s.trim()).map_err(|_| {
        Error::Invalid(format!(
            "invalid argument \"{s}\" for \"{flag}\" flag: invalid size: '{s}'"
        ))
    })
}

/// `--cpus 1.5` → (quota, period) in microseconds with Docker's 100 ms period.
pub fn parse_cpus(s: &str) -> Result<(i64, u64)> {
    Ok((cpu_quota(parse_nano_cpus(s)?), CPU_PERIOD))
}

/// Docker's CFS period for `--cpus`, in microseconds.
pub(crate) const CPU_PERIOD: u64 = 100_000;

/// The CFS quota (microseconds per [`CPU_PERIOD`]) of `nano_cpus` billionths of a CPU.
pub(crate) fn cpu_quota(nano_cpus: i64) -> i64 {
    (nano_cpus as f64 / 1e9 * CPU_PERIOD as f64).round() as i64
}

/// `--cpus 1.5` → billionths of a CPU (Docker's NanoCPUs).
pub fn parse_nano_cpus(s: &str) -> Result<i64> {
    let v: f64 = s
        .parse()
        .map_err(|_| Error::Invalid(format!("invalid argument \"{s}\" for \"--cpus\" flag: failed to parse {s} as a rational number")))?;
    if v <= 0.0 || !v.is_finite() {
        return Err(Error::Invalid(format!(
            "Range of CPUs is from 0.01 to the number of CPUs available, got {s}"
        )));
    }
    Ok((v * 1e9).round() as i64)
}

/// The rlimits `--ulimit` knows, by Docker's names.
pub const ULIMITS: &[&str] = &[
    "core",
    "cpu",
    "data",
    "fsize",
    "locks",
    "memlock",
    "msgqueue",
    "nice",
    "nofile",
    "nproc",
    "rss",
    "rtprio",
    "rttime",
    "sigpending",
    "stack",
    "as",
];

/// `--ulimit nofile=1024:2048` → (OCI name, soft, hard).
pub fn parse_ulimit(s: &str) -> Result<(String, u64, u64)> {
    let bad = |why: &str| {
        Error::Invalid(format!(
            "invalid argument \"{s}\" for \"--ulimit\" flag: {why}"
        ))
    };
    let (name, vals) = s
        .split_once('=')
        .ok_or_else(|| bad("expected name=soft[:hard]"))?;
    if !ULIMITS.contains(&name) {
        return Err(bad(&format!("invalid ulimit type: {name}")));
    }
    let parse = |v: &str| -> Result<u64> {
        if v == "-1" || v == "unlimited" {
            Ok(u64::MAX)
        } else {
            v.parse()
                .map_err(|_| bad(&format!("invalid ulimit value: {v}")))
        }
    };
    let (soft, hard) = match vals.split_once(':') {
        Some((a, b)) => (parse(a)?, parse(b)?),
        None => {
            let v = parse(vals)?;
            (v, v)
        }
    };
    if soft > hard {
        return Err(bad(&format!(
            "ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}"
        )));
    }
    Ok((format!("RLIMIT_{}", name.to_ascii_uppercase()), soft, hard))
}

/// Docker's `-v [SRC:]DST[:OPTS]`.
pub fn parse_volume(s: &str) -> Result<Mount> {
    let bad = |why: &str| Error::Invalid(format!("invalid volume specification: '{s}': {why}"));
    let parts: Vec<&str> = s.split(':').collect();
    let (src, dst, opts) = match parts.as_slice() {
        [d] => (None, *d, ""),
        [a, b] if b.starts_with('/') => (Some(*a), *b, ""),
        [d, o] => (None, *d, *o),
        [a, b, o] => (Some(*a), *b, *o),
        _ => return Err(bad("too many colons")),
    };
    if !dst.starts_with('/') {
        return Err(bad(
            "invalid mount config: the mount destination must be an absolute path",
        ));
    }
    if dst == "/" {
        return Err(bad("invalid mount config: destination can't be '/'"));
    }
    let mut readonly = false;
    let mut propagation = "rprivate".to_string();
    for o in opts.split(',').filter(|o| !o.is_empty()) {
        match o {
            "ro" => readonly = true,
            "rw" => readonly = false,
            "z" | "Z" | "nocopy" => {}
            "private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave" => {
                propagation = o.to_string()
            }
            other => return Err(bad(&format!("invalid mode: {other}"))),
        }
    }
    Ok(match src {
        Some(p) if p.starts_with('/') => Mount::Bind {
            source: p.to_string(),
            target: dst.to_string(),
            readonly,
            propagation,
        },
        Some(name) => {
            if !crate::names::valid(name) {
                return Err(bad(&format!(
                    "\"{name}\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path"
                )));
            }
            Mount::Volume {
                name: Some(name.to_string()),
                target: dst.to_string(),
                readonly,
            }
        }
        None => Mount::Volume {
            name: None,
            target: dst.to_string(),
            readonly,
        },
    })
}

/// `--tmpfs /run:rw,size=64m` → a tmpfs mount with those options.
pub fn parse_tmpfs(s: &str) -> Result<Mount> {
    let (target, opts) = s.split_once(':').unwrap_or((s, ""));
    if !target.starts_with('/') {
        return Err(Error::Invalid(format!(
            "invalid tmpfs mount '{s}': the destination must be an absolute path"
        )));
    }
    Ok(Mount::Tmpfs {
        target: target.to_string(),
        options: opts
            .split(',')
            .filter(|x| !x.is_empty())
            .map(String::from)
            .collect(),
    })
}

/// A tmpfs's mount options: Docker's `nosuid,nodev,noexec`, then those given.
pub(crate) fn tmpfs_options(given: &[String]) -> Vec<String> {
    let mut o: Vec<String> = vec!["nosuid".into(), "nodev".into(), "noexec".into()];
    o.extend(given.iter().cloned());
    o
}

/// `--add-host name:ip` (also `name=ip`) → an /etc/hosts line.
pub fn parse_add_host(s: &str) -> Result<String> {
    let (name, ip) = s
        .split_once('=')
        .or_else(|| s.split_once(':'))
        .ok_or_else(|| Error::Invalid(format!("invalid argument \"{s}\" for \"--add-host\" flag: bad format for add-host: \"{s}\"")))?;
    let ip = ip.trim_start_matches('[').trim_end_matches(']');
    if ip.parse::<std::net::IpAddr>().is_err() && ip != "host-gateway" {
        return Err(Error::Invalid(format!("invalid argument \"{s}\" for \"--add-host\" flag: invalid IP address in add-host: \"{ip}\"")));
    }
    if ip == "host-gateway" {
        return Err(Error::Invalid(
            "--add-host host-gateway needs bridge networking, which hako does not have yet".into(),
        ));
    }
    Ok(format!("{ip}\t{name}"))
}

/// A capability name as Docker accepts it (`NET_ADMIN`, `cap_net_admin`, `ALL`).
pub fn parse_capability(s: &str) -> Result<Option<oci_spec::runtime::Capability>> {
    let up = s.to_ascii_uppercase();
    let name = up.strip_prefix("CAP_").unwrap_or(&up);
    if name == "ALL" {
        return Ok(None);
    }
    name.parse::<oci_spec::runtime::Capability>()
        .map(Some)
        .map_err(|_| Error::Invalid(format!("unknown capability: \"{s}\"")))
}

/// `--device HOST[:CONTAINER][:PERMISSIONS]`, read as Docker's CLI reads it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DeviceRequest {
    /// The device node (or a directory of them) on the host.
    pub host: String,
    /// Where it appears in the container (absolute).
    pub container: String,
    /// Device cgroup access: some of `r`, `w`, `m`.
    pub permissions: String,
}

/// Docker's `validDeviceMode`: one to three of `r`, `w`, `m`, none twice.
fn valid_device_mode(mode: &str) -> bool {
    let mut seen = 0u8;
    !mode.is_empty()
        && mode.chars().all(|c| {
            let bit = match c {
                'r' => 1,
                'w' => 2,
                'm' => 4,
                _ => return false,
            };
            let fresh = seen & bit == 0;
            seen |= bit;
            fresh
        })
}

/// Docker's `--device` syntax: `HOST`, `HOST:CONTAINER`, `HOST:PERMISSIONS` or
/// `HOST:CONTAINER:PERMISSIONS`; permissions default to `rwm`.
pub fn parse_device(s: &str) -> Result<DeviceRequest> {
    let bad = |why: String| {
        Error::Invalid(format!(
            "invalid argument \"{s}\" for \"--device\" flag: {why}"
        ))
    };
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() > 3 || parts[0].is_empty() {
        return Err(bad(format!("bad format for path: {s}")));
    }
    let (host, container, permissions) = match parts[..] {
        [h] => (h, h, "rwm"),
        [h, m] if valid_device_mode(m) => (h, h, m),
        [h, c] => (h, c, "rwm"),
        [h, c, m] if valid_device_mode(m) => (h, c, m),
        [_, _, m] => return Err(bad(format!("bad mode specified: {m}"))),
        _ => return Err(bad(format!("bad format for path: {s}"))),
    };
    if !container.starts_with('/') {
        return Err(bad(format!("{container} is not an absolute path")));
    }
    Ok(DeviceRequest {
        host: host.to_string(),
        container: clean_path(container),
        permissions: permissions.to_string(),
    })
}

/// Go's `path.Clean` for an absolute path: no `.`, `..` or repeated slashes.
fn clean_path(p: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for part in p.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    format!("/{}", out.join("/"))
}

/// `--device-cgroup-rule 'c 42:* rmw'`: Docker's `^([acb]) ([0-9]+|\*):([0-9]+|\*) ([rwm]{1,3})$`,
/// an allow rule.
pub fn parse_device_cgroup_rule(s: &str) -> Result<hako_cgroups::DeviceRule> {
    let bad = || {
        Error::Invalid(format!(
            "invalid argument \"{s}\" for \"--device-cgroup-rule\" flag: invalid device cgroup format '{s}'"
        ))
    };
    let mut fields = s.split(' ');
    let (Some(kind), Some(numbers), Some(access), None) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Err(bad());
    };
    let kind = match kind {
        "a" => 'a',
        "b" => 'b',
        "c" => 'c',
        _ => return Err(bad()),
    };
    let (major, minor) = numbers.split_once(':').ok_or_else(bad)?;
    // Device numbers are 32-bit in the kernel; a longer one matches no device and cannot be
    // written to a cgroup.
    let number = |n: &str| -> Result<Option<i64>> {
        if n == "*" {
            return Ok(None);
        }
        if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        n.parse::<u32>().map(|n| Some(i64::from(n))).map_err(|_| {
            Error::Invalid(format!(
                "invalid argument \"{s}\" for \"--device-cgroup-rule\" flag: device number {n} is out of range"
            ))
        })
    };
    if access.is_empty()
        || access.len() > 3
        || !access.chars().all(|c| matches!(c, 'r' | 'w' | 'm'))
    {
        return Err(bad());
    }
    Ok(hako_cgroups::DeviceRule {
        allow: true,
        kind,
        major: number(major)?,
        minor: number(minor)?,
        access: access.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_read_as_docker() {
        let d = |host: &str, container: &str, permissions: &str| DeviceRequest {
            host: host.into(),
            container: container.into(),
            permissions: permissions.into(),
        };
        assert_eq!(
            parse_device("/dev/kvm").unwrap(),
            d("/dev/kvm", "/dev/kvm", "rwm")
        );
        assert_eq!(
            parse_device("/dev/kvm:r").unwrap(),
            d("/dev/kvm", "/dev/kvm", "r")
        );
        assert_eq!(
            parse_device("/dev/fuse:/dev/x//y/../f").unwrap(),
            d("/dev/fuse", "/dev/x/f", "rwm")
        );
        assert_eq!(
            parse_device("/dev/sda:/dev/xvda:rw").unwrap(),
            d("/dev/sda", "/dev/xvda", "rw")
        );
        for (bad, why) in [
            ("/dev/kvm:/dev/kvm:rwx", "bad mode specified: rwx"),
            ("/dev/kvm:/dev/kvm:rr", "bad mode specified: rr"),
            ("/dev/kvm:/dev/kvm:", "bad mode specified: "),
            ("/dev/kvm:kvm", "kvm is not an absolute path"),
            (":/dev/kvm", "bad format for path: :/dev/kvm"),
            ("/a:/b:r:w", "bad format for path: /a:/b:r:w"),
        ] {
            assert_eq!(
                parse_device(bad).unwrap_err().to_string(),
                format!("invalid argument \"{bad}\" for \"--device\" flag: {why}")
            );
        }
    }

    #[test]
    fn device_cgroup_rules_read_as_docker() {
        let r = parse_device_cgroup_rule("c 42:* rmw").unwrap();
        assert_eq!(
            r,
            hako_cgroups::DeviceRule {
                allow: true,
                kind: 'c',
                major: Some(42),
                minor: None,
                access: "rmw".into()
            }
        );
        assert_eq!(r.v1_line(), "c 42:* rmw");
        let r = parse_device_cgroup_rule("a *:* m").unwrap();
        assert_eq!((r.kind, r.major, r.minor), ('a', None, None));
        for bad in [
            "",
            "c 42:* rwx",
            "c 42 rwm",
            "x 1:3 rwm",
            "c  1:3 rwm",
            "c 1:3 rwm extra",
            "c -1:3 rwm",
            "c 1:3 rwmr",
            "c 1:3",
        ] {
            assert_eq!(
                parse_device_cgroup_rule(bad).unwrap_err().to_string(),
                format!(
                    "invalid argument \"{bad}\" for \"--device-cgroup-rule\" flag: invalid device cgroup format '{bad}'"
                ),
            );
        }
        assert!(parse_device_cgroup_rule("c 99999999999:1 r")
            .unwrap_err()
            .to_string()
            .contains("out of range"));
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512m", "--memory").unwrap(), 512 << 20);
        assert_eq!(parse_size("1g", "--memory").unwrap(), 1 << 30);
        assert_eq!(parse_size("1.5k", "--memory").unwrap(), 1536);
        assert_eq!(parse_size("100", "--memory").unwrap(), 100);
        assert_eq!(parse_size("64mb", "--memory").unwrap(), 64 << 20);
        assert_eq!(parse_size("5MiB", "--memory").unwrap(), 5 << 20);
        let e = parse_size("lots", "-m, --memory").unwrap_err().to_string();
        assert_eq!(
            e,
            "invalid argument \"lots\" for \"-m, --memory\" flag: invalid size: 'lots'"
        );
        assert!(parse_size("-1m", "--memory").is_err());
    }

    #[test]
    fn cpus_and_ulimits() {
        assert_eq!(parse_cpus("1.5").unwrap(), (150_000, 100_000));
        assert!(parse_cpus("0").is_err());
        assert_eq!(
            parse_ulimit("nofile=1024:2048").unwrap(),
            ("RLIMIT_NOFILE".into(), 1024, 2048)
        );
        assert_eq!(parse_ulimit("core=-1").unwrap().1, u64::MAX);
        assert!(parse_ulimit("nofile=10:5").is_err());
        assert!(parse_ulimit("bogus=1").is_err());
    }

    #[test]
    fn volumes() {
        assert_eq!(
            parse_volume("/h:/c:ro").unwrap(),
            Mount::Bind {
                source: "/h".into(),
                target: "/c".into(),
                readonly: true,
                propagation: "rprivate".into()
            }
        );
        assert_eq!(
            parse_volume("data:/var/lib/x").unwrap(),
            Mount::Volume {
                name: Some("data".into()),
                target: "/var/lib/x".into(),
                readonly: false
            }
        );
        assert_eq!(
            parse_volume("/anon").unwrap(),
            Mount::Volume {
                name: None,
                target: "/anon".into(),
                readonly: false
            }
        );
        assert!(parse_volume("rel:dst").is_err());
        assert!(parse_volume("/h:/c:bogus").is_err());
        assert!(parse_volume("/h:/").is_err());
    }

    #[test]
    fn hosts_tmpfs_caps() {
        assert_eq!(parse_add_host("db:10.0.0.5").unwrap(), "10.0.0.5\tdb");
        assert_eq!(parse_add_host("v6=[::1]").unwrap(), "::1\tv6");
        assert!(parse_add_host("nohost").is_err());
        assert!(parse_add_host("x:notanip").is_err());
        assert_eq!(
            parse_tmpfs("/run:size=1m").unwrap(),
            Mount::Tmpfs {
                target: "/run".into(),
                options: vec!["size=1m".into()]
            }
        );
        assert!(parse_tmpfs("run").is_err());
        assert_eq!(
            parse_capability("net_admin").unwrap(),
            Some(oci_spec::runtime::Capability::NetAdmin)
        );
        assert_eq!(
            parse_capability("CAP_SYS_ADMIN").unwrap(),
            Some(oci_spec::runtime::Capability::SysAdmin)
        );
        assert_eq!(parse_capability("ALL").unwrap(), None);
        assert!(parse_capability("FLY").is_err());
    }
}
