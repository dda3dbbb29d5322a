//! Published ports: the typed spec the engine passes, docker's `-p` grammar for the helper
//! binary and tests, and the kernel's limit on unprivileged ports.

use std::net::IpAddr;

use crate::{Error, Result};

/// A transport protocol.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    /// TCP (the default).
    #[default]
    Tcp,
    /// UDP.
    Udp,
}

impl Proto {
    /// `tcp` or `udp`.
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

/// One port to publish, as the engine's `PortBinding` has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Publish {
    /// The host address to listen on; `None` for all (IPv4 and IPv6).
    pub host_ip: Option<IpAddr>,
    /// First acceptable host port; 0 for any free port.
    pub host_port: u16,
    /// Last acceptable host port (`host_port` for exactly one).
    pub host_port_end: u16,
    /// The port inside the container.
    pub container_port: u16,
    /// The protocol.
    pub proto: Proto,
}

impl std::fmt::Display for Publish {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.host_ip {
            Some(IpAddr::V6(ip)) => write!(f, "[{ip}]:")?,
            Some(ip) => write!(f, "{ip}:")?,
            None => {}
        }
        if self.host_port_end > self.host_port {
            write!(f, "{}-{}", self.host_port, self.host_port_end)?;
        } else {
            write!(f, "{}", self.host_port)?;
        }
        write!(f, ":{}/{}", self.container_port, self.proto.as_str())
    }
}

fn bad(spec: &str, why: &str) -> Error {
    Error::Invalid(format!("invalid port spec {spec:?}: {why}"))
}

fn port(spec: &str, s: &str, what: &str, zero_ok: bool) -> Result<u16> {
    match s.parse::<u16>() {
        Ok(0) if !zero_ok => Err(bad(spec, &format!("{what} 0 is not a port"))),
        Ok(p) => Ok(p),
        Err(_) => Err(bad(spec, &format!("invalid {what} {s:?}"))),
    }
}

/// Parses docker's `-p` grammar for one container port: `[IP:][HOSTPORT[-END]:]PORT[/PROTO]`
/// (an IPv6 address in brackets). A host port left out, or empty, means any free port.
pub fn parse_publish(spec: &str) -> Result<Publish> {
    let (rest, proto) = match spec.rsplit_once('/') {
        Some((r, "tcp")) => (r, Proto::Tcp),
        Some((r, "udp")) => (r, Proto::Udp),
        Some((_, p)) => return Err(bad(spec, &format!("unknown protocol {p:?}"))),
        None => (spec, Proto::Tcp),
    };
    let (ip, rest) = if let Some(r) = rest.strip_prefix('[') {
        let (ip, r) = r
            .split_once("]:")
            .ok_or_else(|| bad(spec, "an IPv6 address must be followed by ]:"))?;
        (Some(ip), r)
    } else if rest.matches(':').count() == 2 {
        let (ip, r) = rest.split_once(':').unwrap_or_default();
        (Some(ip), r)
    } else {
        (None, rest)
    };
    let host_ip = match ip {
        None | Some("") => None,
        Some(ip) => Some(
            ip.parse::<IpAddr>()
                .map_err(|_| bad(spec, &format!("invalid host address {ip:?}")))?,
        ),
    };
    let (host, container) = match rest.split_once(':') {
        Some((h, c)) => (h, c),
        None => ("", rest),
    };
    let container_port = port(spec, container, "container port", false)?;
    let (host_port, host_port_end) = match host.split_once('-') {
        _ if host.is_empty() => (0, 0),
        Some((a, b)) => {
            let (a, b) = (
                port(spec, a, "host port", false)?,
                port(spec, b, "host port", false)?,
            );
            if a > b {
                return Err(bad(spec, "the host port range is reversed"));
            }
            (a, b)
        }
        None => {
            let p = port(spec, host, "host port", false)?;
            (p, p)
        }
    };
    Ok(Publish {
        host_ip,
        host_port,
        host_port_end,
        container_port,
        proto,
    })
}

/// `net.ipv4.ip_unprivileged_port_start` of the caller's network namespace (1024 when the
/// kernel has no such sysctl).
pub fn unprivileged_port_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1024)
}

/// Refuses a port an unprivileged process could not bind, before anything is started.
pub(crate) fn check_unprivileged(p: &Publish, start: u16, root: bool) -> Result<()> {
    if !root && p.host_port != 0 && p.host_port < start {
        return Err(Error::Invalid(format!(
            "cannot publish {p}: host port {} is below net.ipv4.ip_unprivileged_port_start ({start}), which an ordinary user cannot bind; use a port >= {start}, or lower the sysctl as root",
            p.host_port
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(host_ip: Option<&str>, a: u16, b: u16, c: u16, proto: Proto) -> Publish {
        Publish {
            host_ip: host_ip.map(|s| s.parse().unwrap()),
            host_port: a,
            host_port_end: b,
            container_port: c,
            proto,
        }
    }

    #[test]
    fn docker_grammar() {
        assert_eq!(parse_publish("80").unwrap(), p(None, 0, 0, 80, Proto::Tcp));
        assert_eq!(
            parse_publish("8080:80").unwrap(),
            p(None, 8080, 8080, 80, Proto::Tcp)
        );
        assert_eq!(
            parse_publish("127.0.0.1:8080:80/udp").unwrap(),
            p(Some("127.0.0.1"), 8080, 8080, 80, Proto::Udp)
        );
        assert_eq!(
            parse_publish("127.0.0.1::80").unwrap(),
            p(Some("127.0.0.1"), 0, 0, 80, Proto::Tcp)
        );
        assert_eq!(
            parse_publish("[::1]:8000-8010:80").unwrap(),
            p(Some("::1"), 8000, 8010, 80, Proto::Tcp)
        );
        assert_eq!(
            parse_publish("[::1]:8000-8010:80").unwrap().to_string(),
            "[::1]:8000-8010:80/tcp"
        );
    }

    #[test]
    fn bad_specs_say_what_is_wrong() {
        for (spec, want) in [
            ("80/sctp", "unknown protocol \"sctp\""),
            ("x:80", "invalid host port \"x\""),
            ("8080:0", "container port 0 is not a port"),
            ("9-8:80", "reversed"),
            ("1.2.3:80:80", "invalid host address \"1.2.3\""),
            ("[::1:80:80", "]:"),
            ("70000:80", "invalid host port \"70000\""),
        ] {
            let e = parse_publish(spec).unwrap_err().to_string();
            assert!(e.contains(want), "{spec}: {e}");
            assert!(!e.contains('\n'));
        }
    }

    #[test]
    fn privileged_ports_name_the_sysctl() {
        let spec = parse_publish("80:80").unwrap();
        let e = check_unprivileged(&spec, 1024, false).unwrap_err();
        assert_eq!(e.kind(), hako_base::ErrorKind::Invalid);
        assert!(e
            .to_string()
            .contains("net.ipv4.ip_unprivileged_port_start (1024)"));
        check_unprivileged(&spec, 1024, true).unwrap();
        check_unprivileged(&spec, 80, false).unwrap();
        check_unprivileged(&parse_publish("80").unwrap(), 1024, false).unwrap();
    }
}
