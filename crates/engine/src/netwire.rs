//! Wiring containers to networks (hako-net) at the right moments of their lives: attach in the
//! runtime's `before_start` hook (namespaces exist, the command has not run), detach once the
//! container has exited, reconcile after crashes.

use crate::{Error, Result};
use hako_net::{AttachOptions, Networks};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Network names of a state root. The default root (/var/lib/hako) uses `hako0` and the nft
/// table `hako`; any other root gets its own bridge and table, named from a hash of its path,
/// because networks and leases live in each root's database while bridges are host-wide.
/// These are the first names tried: what hako makes is marked with the root's path (its
/// [`hako_net::Config::owner`]), so a name held by another root or program is passed over,
/// and a root made again at the same path replaces what its earlier life left.
///
/// `HAKO_TEST_NET_TAG` replaces the hash (tests use it to make two roots' names collide).
pub fn config_for(root: &Path) -> hako_net::Config {
    let mut cfg = hako_net::Config::default();
    let canonical = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
    let path = canonical.as_os_str().as_encoded_bytes();
    let digest = || hex::encode(<sha2::Sha256 as sha2::Digest>::digest(path));
    if canonical != Path::new(crate::DEFAULT_ROOT) {
        let tag = match std::env::var("HAKO_TEST_NET_TAG") {
            Ok(t) if !t.is_empty() && t.len() <= 6 && t.bytes().all(|b| b.is_ascii_hexdigit()) => t,
            _ => digest()[..6].to_string(),
        };
        cfg.default_bridge = format!("hako{tag}");
        cfg.nft_table = format!("hako_{tag}");
    }
    // The marker holds the path where it fits and reads plainly, else its hash.
    cfg.owner = if path.len() <= 200
        && path
            .iter()
            .all(|&b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
    {
        String::from_utf8_lossy(path).into_owned()
    } else {
        format!("sha256:{}", digest())
    };
    cfg.owners_are_roots = true;
    // Installed next to `hako`, as hako-monitor is; a missing one fails the first `run` on a
    // user network with a message naming it.
    let exe = std::env::current_exe().ok();
    cfg.dns_server = exe.as_ref().map(|e| e.with_file_name("hako-dns"));
    cfg.proxy_server = exe.map(|e| e.with_file_name("hako-proxy"));
    if crate::rootless::active() {
        // The user's network namespace reaches the host's resolvers through its stack.
        cfg.dns_upstream = Some(hako_usernet::StackConfig::default().dns().into());
    }
    cfg
}

/// Opens the networks of the state root `root` on `conn`.
pub fn networks<'c>(conn: &'c rusqlite::Connection, root: &Path) -> Result<Networks<'c>> {
    Networks::open_with(conn, config_for(root)).map_err(|e| Error::Invalid(format!("network: {e}")))
}

/// What the start hook needs to attach a container.
#[derive(Debug, Clone)]
pub(crate) struct NetWire {
    pub(crate) root: PathBuf,
    pub(crate) network: String,
    pub(crate) container_id: String,
    pub(crate) opts: AttachOptions,
    pub(crate) hosts_file: PathBuf,
    pub(crate) hostname: String,
    /// The container's resolv.conf, to point at the network's name server; `None` with
    /// `--dns`, whose servers stay.
    pub(crate) resolv_file: Option<PathBuf>,
    /// A rootless container's user-mode stack and port forwarder, started instead.
    pub(crate) usernet: Option<crate::rootless::UserNet>,
}

impl NetWire {
    /// Runs in `before_start(pid)`, on the connection of the `hako` that starts the container:
    /// for `run -d` that is the parent of the forked monitor, which asks it (see
    /// `monitor::start_detached`), as a process forked from one with the database open must
    /// not use SQLite.
    pub(crate) fn attach(
        &self,
        conn: &rusqlite::Connection,
        pid: i32,
    ) -> std::result::Result<(), String> {
        if let Some(u) = self.usernet.as_ref().filter(|u| !u.shared()) {
            return u.start(pid, self);
        }
        let nets = Networks::open_with(conn, config_for(&self.root)).map_err(|e| e.to_string())?;
        let mut opts = self.opts.clone();
        if self.network != nets.config().default_network {
            // The name server answers for the container's name and short ID, as Docker's does.
            if let Ok(name) = conn.query_row(
                "SELECT name FROM containers WHERE id = ?1",
                [&self.container_id],
                |r| r.get::<_, String>(0),
            ) {
                opts.names.push(name);
            }
            opts.names
                .push(self.container_id[..12.min(self.container_id.len())].to_string());
        }
        let a = nets
            .attach(&self.network, &self.container_id, pid, &opts)
            .map_err(|e| e.to_string())?;
        allow_new_bridge(&a);
        // The file is bind-mounted into the container already: append in place, keeping the
        // inode, so the container sees its own address like Docker's /etc/hosts shows it.
        // One write: `writeln!` on a File makes a system call per formatted piece.
        let mut lines = format!("{}\t{}\n", a.ip, self.hostname);
        if let Some((ip6, _, _)) = a.ip6 {
            lines.push_str(&format!("{ip6}\t{}\n", self.hostname));
        }
        std::fs::OpenOptions::new()
            .append(true)
            .open(&self.hosts_file)
            .and_then(|mut f| f.write_all(lines.as_bytes()))
            .map_err(|e| format!("update /etc/hosts: {e}"))?;
        if let (Some(dns), Some(path)) = (a.dns, &self.resolv_file) {
            if let Err(e) = point_resolv_conf(path, dns) {
                let _ = nets.detach(&self.container_id);
                return Err(e);
            }
        }
        // Further networks `network connect` recorded for the container, attached after the
        // first one (as eth1, ...). Read here rather than when the start is prepared: the
        // hook runs while the kernel moves the process into its cgroup, so this costs no time.
        let recorded = nets.recorded_connects(&self.container_id).map_err(|e| {
            let _ = nets.detach(&self.container_id);
            e.to_string()
        })?;
        for (network, mut extra) in recorded {
            if network != nets.config().default_network {
                extra.names = opts.names.clone();
                if extra.names.is_empty() {
                    extra.names = connect_names(conn, &self.container_id);
                }
            }
            match nets.attach(&network, &self.container_id, pid, &extra) {
                Ok(a) => allow_new_bridge(&a),
                Err(e) => {
                    let _ = nets.detach(&self.container_id);
                    return Err(format!("network {network}: {e}"));
                }
            }
        }
        if let Some(u) = &self.usernet {
            if let Err(e) = u.forward(pid, a.ip, &a.ports, self) {
                let _ = nets.detach(&self.container_id);
                return Err(e);
            }
        }
        Ok(())
    }
}

/// The names a user network's name server answers for a container: its name and short ID.
fn connect_names(conn: &rusqlite::Connection, id: &str) -> Vec<String> {
    let mut names: Vec<String> = conn
        .query_row("SELECT name FROM containers WHERE id = ?1", [id], |r| {
            r.get::<_, String>(0)
        })
        .into_iter()
        .collect();
    names.push(id[..12.min(id.len())].to_string());
    names
}

/// Replaces the nameservers of a container's resolv.conf with the network's name server,
/// keeping search domains and options. Written in place: the file is bind-mounted already.
fn point_resolv_conf(path: &Path, dns: std::net::Ipv4Addr) -> std::result::Result<(), String> {
    let old = std::fs::read_to_string(path).map_err(|e| format!("read resolv.conf: {e}"))?;
    let mut new = format!("nameserver {dns}\n");
    for l in old.lines() {
        if !l.trim_start().starts_with("nameserver") {
            new.push_str(l);
            new.push('\n');
        }
    }
    std::fs::write(path, new).map_err(|e| format!("write resolv.conf: {e}"))
}

fn iptables(args: &[&str]) -> bool {
    std::process::Command::new("iptables")
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// [`allow_forwarding`] for the bridge of an attach that brought it up (the only time it is
/// needed, so a plain attach pays nothing for it).
fn allow_new_bridge(a: &hako_net::Attachment) {
    if let Some(bridge) = &a.new_bridge {
        allow_forwarding(bridge);
    }
}

/// Removes what [`allow_forwarding`] added for a bridge that is going away.
pub fn disallow_forwarding(bridge: &str) {
    // Rootless bridges live in the user's own network namespace, out of Docker's reach.
    if crate::rootless::active() {
        return;
    }
    for dir in ["-i", "-o"] {
        while iptables(&["-w", "-D", "DOCKER-USER", dir, bridge, "-j", "ACCEPT"]) {}
    }
}

/// Docker sets the FORWARD policy to DROP and lets users allow more in its DOCKER-USER chain;
/// without these rules nothing forwarded through hako's bridge (NAT, published ports) passes on
/// a host that also runs Docker. Done once, when the bridge comes up.
pub fn allow_forwarding(bridge: &str) {
    if crate::rootless::active() {
        return;
    }
    let ipt = iptables;
    if !ipt(&["-w", "-n", "-L", "DOCKER-USER"]) {
        return;
    }
    sweep_forwarding(bridge);
    for dir in ["-i", "-o"] {
        let rule = ["DOCKER-USER", dir, bridge, "-j", "ACCEPT"];
        let mut check = vec!["-w", "-C"];
        check.extend(rule);
        if !ipt(&check) {
            let mut insert = vec!["-w", "-I"];
            insert.extend(rule);
            ipt(&insert);
        }
    }
}

/// Deletes the DOCKER-USER rules of hako-named bridges that no longer exist: a `hako` killed
/// between removing a bridge and [`disallow_forwarding`] leaves them, and a reboot takes the
/// bridges but not a saved ruleset. Every forwarded packet walks that chain. Only rules of the
/// exact shape [`allow_forwarding`] adds, for names of hako's schemes, are considered.
fn sweep_forwarding(keep: &str) {
    let Ok(out) = std::process::Command::new("iptables")
        .args(["-w", "-S", "DOCKER-USER"])
        .stderr(std::process::Stdio::null())
        .output()
    else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        if let Some((dir, name)) = stale_forwarding_rule(line, keep) {
            iptables(&["-w", "-D", "DOCKER-USER", dir, name, "-j", "ACCEPT"]);
        }
    }
}

/// `(direction, bridge)` of an `iptables -S` line that is one of our rules for a bridge that is
/// gone.
fn stale_forwarding_rule<'a>(line: &'a str, keep: &str) -> Option<(&'a str, &'a str)> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let ["-A", "DOCKER-USER", dir @ ("-i" | "-o"), name, "-j", "ACCEPT"] = words[..] else {
        return None;
    };
    let ours = |rest: Option<&str>, len: Option<usize>| {
        rest.is_some_and(|r| {
            !r.is_empty()
                && len.is_none_or(|l| r.len() == l)
                && r.bytes().all(|b| b.is_ascii_hexdigit())
        })
    };
    // The default bridges (`hako0`, `hako` + a root's hash) and user networks (`hk-` + 12 hex).
    let schemed = ours(name.strip_prefix("hako"), None) || ours(name.strip_prefix("hk-"), Some(12));
    let gone = !Path::new("/sys/class/net").join(name).exists();
    (schemed && name != keep && gone).then_some((dir, name))
}

/// Releases a container's addresses, veths and port rules; quiet when there is nothing.
pub(crate) fn detach(conn: &rusqlite::Connection, root: &Path, id: &str) -> Result<()> {
    networks(conn, root)?
        .detach(id)
        .map_err(|e| Error::Invalid(format!("network: {e}")))
}

/// Releases the network state of a container that has exited (its namespace is gone, and the
/// kernel removes its veths).
pub(crate) fn release_exited(conn: &rusqlite::Connection, root: &Path, id: &str) -> Result<()> {
    // A container that joined its network (`--network container:…`) keeps the namespace, and
    // with it the veth, alive: delete the veth then, so the joiner is left with loopback as
    // with Docker, not with an address that is handed out again.
    let joined: bool = conn
        .query_row(
            "SELECT EXISTS(SELECT 1 FROM containers WHERE config LIKE '%\"Container\":\"container:%')",
            [],
            |r| r.get(0),
        )
        .unwrap_or(true);
    let nets = networks(conn, root)?;
    if joined {
        nets.detach(id)
    } else {
        nets.release_exited(id)
    }
    .map_err(|e| Error::Invalid(format!("network: {e}")))
}

/// Published ports of a container, as `ps` and `port` show them.
pub fn published_ports(
    conn: &rusqlite::Connection,
    root: &Path,
    id: &str,
) -> Vec<hako_net::PublishedPort> {
    let ports = networks(conn, root)
        .ok()
        .and_then(|n| n.ports(id).ok())
        .unwrap_or_default();
    if ports.is_empty() && crate::rootless::active() {
        // The default network's ports, bound by the container's own helper.
        return crate::rootless::recorded_ports(&root.join("containers").join(id));
    }
    ports
}

impl crate::Engine {
    /// `network connect`: records the connection, so every later start of the container
    /// attaches it to `network` too (as Docker keeps it in the container's configuration),
    /// and, if the container runs, gives it an interface there now (`eth1`, ...), with its
    /// name, short ID and `aliases` in the network's name server.
    pub fn network_connect(
        &self,
        container: &str,
        network: &str,
        ip: Option<&str>,
        ip6: Option<&str>,
        aliases: &[String],
    ) -> Result<()> {
        let c = self.find(container)?;
        refuse_mode_network(network)?;
        let run = self.config_of(&c.id)?;
        let Some(primary) = run.network.attach_to() else {
            return Err(Error::Invalid(format!(
                "container {} uses network mode {}: it cannot be connected to other networks",
                c.name,
                run.network.mode()
            )));
        };
        if crate::rootless::active() && network == hako_net::Config::default().default_network {
            return Err(Error::Invalid(format!(
                "network {network}: rootless, the default network is a user-mode stack of each container's own and cannot be connected to; connect to a network of your own (hako network create)"
            )));
        }
        let ip = ip
            .map(|i| {
                i.parse::<std::net::Ipv4Addr>()
                    .map_err(|_| Error::Invalid(format!("invalid IPv4 address: {i}")))
            })
            .transpose()?;
        let ip6 = ip6
            .map(|i| {
                i.parse::<std::net::Ipv6Addr>()
                    .map_err(|_| Error::Invalid(format!("invalid IPv6 address: {i}")))
            })
            .transpose()?;
        let nets = networks(self.store.conn(), &self.root)?;
        let invalid = |e: hako_net::Error| Error::Invalid(e.to_string());
        let net = nets.inspect(network).map_err(invalid)?;
        if net.name == primary {
            return Err(invalid(hako_net::Error::AlreadyAttached {
                container: c.id.clone(),
                network: net.name,
            }));
        }
        nets.record_connect(&c.id, &net.name, ip, ip6, aliases)
            .map_err(invalid)?;
        let connected = |e: &Self| e.network_event(&net, "connect", Some(&c.id));
        let Some(pid) = self.live_pid(&c.id)? else {
            connected(self);
            return Ok(());
        };
        let mut opts = AttachOptions {
            ip: ip.map(std::net::IpAddr::V4),
            ip6,
            aliases: aliases.to_vec(),
            ..Default::default()
        };
        if net.name != nets.config().default_network {
            opts.names = vec![c.name.clone(), c.id[..12].to_string()];
        }
        if let Err(e) = crate::rootless::ensure_user_netns() {
            let _ = nets.forget_connect(&c.id, &net.name);
            return Err(e);
        }
        match nets.attach(&net.name, &c.id, pid, &opts) {
            Ok(a) => allow_new_bridge(&a),
            Err(e) => {
                let _ = nets.forget_connect(&c.id, &net.name);
                return Err(invalid(e));
            }
        }
        connected(self);
        Ok(())
    }

    /// Docker's network event `action` of `net` (with the container, for connect and
    /// disconnect).
    pub(crate) fn network_event(
        &self,
        net: &hako_net::NetworkInfo,
        action: &str,
        container: Option<&str>,
    ) {
        let mut attrs = vec![("name", net.name.clone()), ("type", net.driver.clone())];
        if let Some(c) = container {
            attrs.push(("container", c.to_string()));
        }
        self.object_event("network", &net.id, action, &attrs);
    }

    /// `network disconnect`: the container loses its interface on `network` if it runs, and
    /// later starts no longer attach it there.
    pub fn network_disconnect(&self, container: &str, network: &str) -> Result<()> {
        let c = self.find(container)?;
        refuse_mode_network(network)?;
        let nets = networks(self.store.conn(), &self.root)?;
        let invalid = |e: hako_net::Error| Error::Invalid(e.to_string());
        let info = nets.inspect(network).ok();
        let recorded = nets.forget_connect(&c.id, network).map_err(invalid)?;
        let done = if self.live_pid(&c.id)?.is_none() {
            if !recorded {
                return Err(invalid(hako_net::Error::NotAttached {
                    container: c.id,
                    network: network.to_string(),
                }));
            }
            Ok(())
        } else {
            match nets.detach_from(&c.id, network) {
                Err(hako_net::Error::NotAttached { .. }) if recorded => Ok(()),
                r => r.map_err(invalid),
            }
        };
        if let (Ok(()), Some(net)) = (&done, &info) {
            self.network_event(net, "disconnect", Some(&c.id));
        }
        done
    }
}

/// `host` and `none` are network modes chosen at `run`/`create`, not networks to connect to
/// or disconnect from (Docker's refusal).
fn refuse_mode_network(network: &str) -> Result<()> {
    if matches!(network, "host" | "none") {
        return Err(Error::Invalid(format!(
            "container cannot be disconnected from {network} network or connected to {network} network"
        )));
    }
    Ok(())
}

/// Drops the connection records of a container that is being removed.
pub(crate) fn forget_connects(conn: &rusqlite::Connection, root: &Path, id: &str) {
    if let Ok(n) = networks(conn, root) {
        let _ = n.forget_connects(id);
    }
}

#[cfg(test)]
mod tests {
    use super::stale_forwarding_rule;

    #[test]
    fn only_our_rules_for_bridges_that_are_gone_are_stale() {
        let gone = "-A DOCKER-USER -i hakoffffe9 -j ACCEPT";
        assert_eq!(
            stale_forwarding_rule(gone, "hako0"),
            Some(("-i", "hakoffffe9"))
        );
        assert_eq!(
            stale_forwarding_rule("-A DOCKER-USER -o hk-0123456789ab -j ACCEPT", "hako0"),
            Some(("-o", "hk-0123456789ab"))
        );
        // The bridge being brought up is kept.
        assert_eq!(stale_forwarding_rule(gone, "hakoffffe9"), None);
        // Not our naming, not our rule's shape, or not a rule.
        for line in [
            "-A DOCKER-USER -i mybridge -j ACCEPT",
            "-A DOCKER-USER -i hako-lab -j ACCEPT",
            "-A DOCKER-USER -i hk-0123 -j ACCEPT",
            "-A DOCKER-USER -i hakoffffe9 -p tcp -j ACCEPT",
            "-A DOCKER-USER -i hakoffffe9 -j DROP",
            "-A FORWARD -i hakoffffe9 -j ACCEPT",
            "-N DOCKER-USER",
            "-A DOCKER-USER -j RETURN",
        ] {
            assert_eq!(stale_forwarding_rule(line, "hako0"), None, "{line}");
        }
    }
}
