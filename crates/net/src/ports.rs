//! `-p` port specifications, parsed the way `docker run -p` reads them.

use std::net::IpAddr;

use crate::Error;

/// A transport protocol of a published port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Proto {
    /// TCP (the default).
    Tcp,
    /// UDP.
    Udp,
}

impl Proto {
    /// `tcp` or `udp`, as nftables and Docker spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Proto> {
        match s {
            "tcp" => Some(Proto::Tcp),
            "udp" => Some(Proto::Udp),
            _ => None,
        }
    }
}

/// One container port to publish.
///
/// `host_port` is a range: `(p, p)` asks for exactly `p`, `(0, 0)` for any free port (as
/// `-p 80` does), and `(a, b)` with `a < b` for any free port in `a..=b` (as `-p 8000-8010:80`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortSpec {
    /// The host address to listen on; `None` means all of the host's addresses.
    pub host_ip: Option<IpAddr>,
    /// The acceptable host ports, inclusive; `(0, 0)` means any.
    pub host_port: (u16, u16),
    /// The port inside the container.
    pub container_port: u16,
    /// The protocol.
    pub proto: Proto,
}

/// A random host port for an image's `EXPOSE` entry (`80/tcp`, `53/udp`, `8080`), as `-P`
/// publishes it. Ranges (`8000-8002/tcp`) are refused, since each would need its own entry.
pub fn exposed_port_spec(exposed: &str) -> Result<PortSpec, Error> {
    let (port, proto) = match exposed.split_once('/') {
        Some((p, proto)) => (
            p,
            Proto::parse(&proto.to_ascii_lowercase())
                .ok_or_else(|| bad(exposed, "the protocol must be tcp or udp"))?,
        ),
        None => (exposed, Proto::Tcp),
    };
    let container_port = match port.parse::<u16>() {
        Ok(0) | Err(_) => return Err(bad(exposed, &format!("invalid exposed port {port:?}"))),
        Ok(p) => p,
    };
    Ok(PortSpec {
        host_ip: None,
        host_port: (0, 0),
        container_port,
        proto,
    })
}

fn bad(spec: &str, why: &str) -> Error {
    Error::InvalidPortSpec {
        spec: spec.to_string(),
        reason: why.to_string(),
    }
}

fn parse_range(spec: &str, s: &str, what: &str) -> Result<(u16, u16), Error> {
    let one = |p: &str| -> Result<u16, Error> {
        match p.parse::<u16>() {
            Ok(0) | Err(_) => Err(bad(spec, &format!("invalid {what} port {p:?}"))),
            Ok(n) => Ok(n),
        }
    };
    match s.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (one(a)?, one(b)?);
            if a > b {
                return Err(bad(spec, &format!("invalid {what} port range {s:?}")));
            }
            Ok((a, b))
        }
        None => {
            let p = one(s)?;
            Ok((p, p))
        }
    }
}

/// Parses one `-p` value: `[ip:][hostPort:]containerPort[/tcp|/udp]`, where either port may be
/// a range `a-b`; an IPv6 host address is written in brackets (`[::1]:8080:80`).
///
/// Equal-length ranges map port to port (`8000-8001:80-81` gives two specs); a host range
/// with a single container port asks for any free host port of the range.
pub fn parse_port_spec(spec: &str) -> Result<Vec<PortSpec>, Error> {
    let (rest, proto) = match spec.rsplit_once('/') {
        Some((r, p)) => (
            r,
            Proto::parse(p).ok_or_else(|| bad(spec, &format!("unknown protocol {p:?}")))?,
        ),
        None => (spec, Proto::Tcp),
    };
    // Split off a bracketed IPv6 address first: its colons are not separators.
    let (host_ip, rest): (Option<&str>, &str) = if let Some(r) = rest.strip_prefix('[') {
        let (ip, after) = r
            .split_once(']')
            .ok_or_else(|| bad(spec, "unterminated [ in the host address"))?;
        let after = after
            .strip_prefix(':')
            .ok_or_else(|| bad(spec, "expected : after the host address"))?;
        (Some(ip), after)
    } else {
        let parts: Vec<&str> = rest.split(':').collect();
        match parts.len() {
            1 | 2 => (None, rest),
            3 => (Some(parts[0]), &rest[parts[0].len() + 1..]),
            _ => return Err(bad(spec, "too many colons")),
        }
    };
    let host_ip = match host_ip {
        None | Some("") => None,
        Some(s) => Some(
            s.parse::<IpAddr>()
                .map_err(|_| bad(spec, &format!("invalid host address {s:?}")))?,
        ),
    };
    let (host, container) = match rest.split_once(':') {
        Some((h, c)) => (Some(h), c),
        None => (None, rest),
    };
    let container = parse_range(spec, container, "container")?;
    let host = match host {
        None | Some("") => None,
        Some(h) => Some(parse_range(spec, h, "host")?),
    };
    let n = container.1 - container.0;
    let mk = |host_port: (u16, u16), container_port: u16| PortSpec {
        host_ip,
        host_port,
        container_port,
        proto,
    };
    match host {
        None => Ok((container.0..=container.1).map(|c| mk((0, 0), c)).collect()),
        Some(h) if n == 0 => Ok(vec![mk(h, container.0)]),
        Some(h) if h.1 - h.0 == n => Ok((0..=n)
            .map(|i| mk((h.0 + i, h.0 + i), container.0 + i))
            .collect()),
        Some(_) => Err(bad(
            spec,
            "the host and container port ranges must have the same length",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposed_ports() {
        let p = exposed_port_spec("53/UDP").unwrap();
        assert_eq!(
            (p.container_port, p.proto, p.host_port),
            (53, Proto::Udp, (0, 0))
        );
        assert_eq!(exposed_port_spec("8080").unwrap().proto, Proto::Tcp);
        for bad in ["0/tcp", "80/sctp", "x", "8000-8002/tcp"] {
            assert!(exposed_port_spec(bad).is_err(), "{bad}");
        }
    }

    fn one(host_ip: Option<&str>, h: (u16, u16), c: u16, proto: Proto) -> PortSpec {
        PortSpec {
            host_ip: host_ip.map(|s| s.parse().unwrap()),
            host_port: h,
            container_port: c,
            proto,
        }
    }

    #[test]
    fn forms() {
        assert_eq!(
            parse_port_spec("80").unwrap(),
            vec![one(None, (0, 0), 80, Proto::Tcp)]
        );
        assert_eq!(
            parse_port_spec("8080:80").unwrap(),
            vec![one(None, (8080, 8080), 80, Proto::Tcp)]
        );
        assert_eq!(
            parse_port_spec("127.0.0.1:8080:80/udp").unwrap(),
            vec![one(Some("127.0.0.1"), (8080, 8080), 80, Proto::Udp)]
        );
        assert_eq!(
            parse_port_spec("127.0.0.1::80").unwrap(),
            vec![one(Some("127.0.0.1"), (0, 0), 80, Proto::Tcp)]
        );
        assert_eq!(
            parse_port_spec("[::1]:8080:80").unwrap(),
            vec![one(Some("::1"), (8080, 8080), 80, Proto::Tcp)]
        );
        assert_eq!(
            parse_port_spec("8000-8001:80-81").unwrap(),
            vec![
                one(None, (8000, 8000), 80, Proto::Tcp),
                one(None, (8001, 8001), 81, Proto::Tcp)
            ]
        );
        assert_eq!(
            parse_port_spec("8000-8010:80").unwrap(),
            vec![one(None, (8000, 8010), 80, Proto::Tcp)]
        );
        assert_eq!(parse_port_spec("80-81").unwrap().len(), 2);
    }

    #[test]
    fn bad_specs() {
        for s in [
            "",
            "0",
            "x",
            "70000",
            "80/sctp",
            "1:2:3:4",
            "8000-7000:80",
            "8000-8002:80-81",
            "1.2.3:80:80",
            "[::1:80:80",
            ":",
            "80:",
        ] {
            let e = parse_port_spec(s).unwrap_err();
            assert!(
                e.to_string()
                    .starts_with(&format!("invalid port spec {s:?}")),
                "{s}: {e}"
            );
        }
    }
}
