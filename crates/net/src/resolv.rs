//! The container's `/etc/resolv.conf`, derived from the host's.

/// Docker's fallback when the host has no resolver a container can reach (Google DNS).
const FALLBACK: [&str; 2] = ["8.8.8.8", "8.8.4.4"];

/// Rewrites the host's resolv.conf for a container on a bridge network.
///
/// Loopback nameservers (`127.0.0.53` of systemd-resolved, `127.0.0.1` of dnsmasq, `::1`) point
/// at the host's own namespace and cannot be reached from the container's, so they are dropped
/// as Docker drops them. When systemd-resolved is the stub, its real upstreams in
/// `/run/systemd/resolve/resolv.conf` are used, as Docker does; if nothing usable remains,
/// Docker's public defaults are added. Other lines (search, options) are kept.
pub fn resolv_conf_for_container(host_resolv: &str) -> String {
    let upstream = if host_resolv.contains("127.0.0.53") {
        std::fs::read_to_string("/run/systemd/resolve/resolv.conf").ok()
    } else {
        None
    };
    rewrite(host_resolv, upstream.as_deref())
}

fn is_loopback(ns: &str) -> bool {
    // Strip a zone (fe80::1%eth0) before parsing.
    let ns = ns.split('%').next().unwrap_or(ns);
    ns.parse::<std::net::IpAddr>()
        .map(|ip| ip.is_loopback())
        .unwrap_or(false)
}

fn nameserver(line: &str) -> Option<&str> {
    let mut w = line.split_whitespace();
    (w.next() == Some("nameserver")).then(|| w.next()).flatten()
}

pub(crate) fn rewrite(host: &str, systemd_upstream: Option<&str>) -> String {
    let mut out = String::new();
    let mut have = false;
    for line in host.lines() {
        match nameserver(line) {
            Some(ns) if is_loopback(ns) => continue,
            Some(_) => have = true,
            None => {}
        }
        out.push_str(line);
        out.push('\n');
    }
    if !have {
        let ups: Vec<&str> = systemd_upstream
            .map(|s| {
                s.lines()
                    .filter_map(nameserver)
                    .filter(|ns| !is_loopback(ns))
                    .collect()
            })
            .unwrap_or_default();
        let list: Vec<&str> = if ups.is_empty() {
            FALLBACK.to_vec()
        } else {
            ups
        };
        for ns in list {
            out.push_str(&format!("nameserver {ns}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_real_resolvers() {
        let h = "search example.com\nnameserver 192.0.2.1\noptions ndots:2\n";
        assert_eq!(rewrite(h, None), h);
    }

    #[test]
    fn drops_loopback_and_uses_upstreams() {
        let h = "nameserver 127.0.0.53\noptions edns0 trust-ad\nsearch lan\n";
        let up = "nameserver 192.0.2.53\nnameserver 127.0.0.1\n";
        assert_eq!(
            rewrite(h, Some(up)),
            "options edns0 trust-ad\nsearch lan\nnameserver 192.0.2.53\n"
        );
    }

    #[test]
    fn falls_back_to_public_resolvers() {
        let h = "nameserver 127.0.0.1\nnameserver ::1\n";
        assert_eq!(rewrite(h, None), "nameserver 8.8.8.8\nnameserver 8.8.4.4\n");
    }

    #[test]
    fn mixed_keeps_only_reachable() {
        let h = "nameserver 127.0.0.53\nnameserver 10.0.0.1\n";
        assert_eq!(rewrite(h, None), "nameserver 10.0.0.1\n");
    }
}
