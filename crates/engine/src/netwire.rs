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
pub fn config_for(root: &Path) -> hako_net::Config {
    let mut cfg = hako_net::Config::default();
    let canonical = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
    if canonical != Path::new(crate::DEFAULT_ROOT) {
        let digest =
            <sha2::Sha256 as sha2::Digest>::digest(canonical.as_os_str().as_encoded_bytes());
        let tag = &hex::encode(digest)[..6];
        cfg.default_bridge = format!("hako{tag}");
        cfg.nft_table = format!("hako_{tag}");
    }
    // Installed next to `hako`, as hako-monitor is; a missing one fails the first `run` on a
    // user network with a message naming it.
    cfg.dns_server = std::env::current_exe()
        .ok()
        .map(|e| e.with_file_name("hako-dns"));
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
}

fn open_db(root: &Path) -> std::result::Result<rusqlite::Connection, String> {
    let conn = rusqlite::Connection::open(root.join("hako.db"))
        .map_err(|e| format!("state database: {e}"))?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(|e| format!("state database: {e}"))?;
    // As the image store's connection: in WAL mode a commit then appends to the WAL without
    // an fsync (a power cut may lose the last commits, never consistency). With the default
    // FULL, the lease's commit was an fsync on the path of every `run -d` (~4.5 ms here, tens
    // of ms while other I/O runs), and a lease lost to a power cut belongs to a container
    // that did not survive it either.
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(|e| format!("state database: {e}"))?;
    Ok(conn)
}

impl NetWire {
    /// Runs in `before_start(pid)`, on `conn` when the caller's own connection may be used
    /// (the foreground `run`), else on a connection of its own: the hook may run in the
    /// forked monitor, which must not use the parent's.
    pub(crate) fn attach(
        &self,
        conn: Option<&rusqlite::Connection>,
        pid: i32,
    ) -> std::result::Result<(), String> {
        let own;
        let conn = match conn {
            Some(c) => c,
            None => {
                own = open_db(&self.root)?;
                &own
            }
        };
        let nets = Networks::open_with(conn, config_for(&self.root)).map_err(|e| e.to_string())?;
        let bridge_was_up = nets
            .inspect(&self.network)
            .map(|n| Path::new("/sys/class/net").join(&n.bridge).exists())
            .unwrap_or(false);
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
        if !bridge_was_up {
            if let Ok(info) = nets.inspect(&a.network) {
                allow_forwarding(&info.bridge);
            }
        }
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
        Ok(())
    }
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

/// Removes what [`allow_forwarding`] added for a bridge that is going away.
pub fn disallow_forwarding(bridge: &str) {
    for dir in ["-i", "-o"] {
        while iptables(&["-w", "-D", "DOCKER-USER", dir, bridge, "-j", "ACCEPT"]) {}
    }
}

/// Docker sets the FORWARD policy to DROP and lets users allow more in its DOCKER-USER chain;
/// without these rules nothing forwarded through hako's bridge (NAT, published ports) passes on
/// a host that also runs Docker. Done once, when the bridge comes up.
pub fn allow_forwarding(bridge: &str) {
    let ipt = iptables;
    if !ipt(&["-w", "-n", "-L", "DOCKER-USER"]) {
        return;
    }
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

/// Releases a container's addresses, veths and port rules; quiet when there is nothing.
pub(crate) fn detach(conn: &rusqlite::Connection, root: &Path, id: &str) -> Result<()> {
    networks(conn, root)?
        .detach(id)
        .map_err(|e| Error::Invalid(format!("network: {e}")))
}

/// Releases the network state of a container that has exited (its namespace is gone, and the
/// kernel removes its veths).
pub(crate) fn release_exited(conn: &rusqlite::Connection, root: &Path, id: &str) -> Result<()> {
    networks(conn, root)?
        .release_exited(id)
        .map_err(|e| Error::Invalid(format!("network: {e}")))
}

/// Published ports of a container, as `ps` and `port` show them.
pub fn published_ports(
    conn: &rusqlite::Connection,
    root: &Path,
    id: &str,
) -> Vec<hako_net::PublishedPort> {
    networks(conn, root)
        .ok()
        .and_then(|n| n.ports(id).ok())
        .unwrap_or_default()
}

impl crate::Engine {
    /// `network connect`: a running container gains an interface on `network` (`eth1`, ...),
    /// with its name, short ID and `aliases` in the network's name server. The attachment
    /// lasts until the container stops; it is not repeated by `start`.
    pub fn network_connect(
        &self,
        container: &str,
        network: &str,
        ip: Option<&str>,
        aliases: &[String],
    ) -> Result<()> {
        let c = self.find(container)?;
        let Some(pid) = self.live_pid(&c.id)? else {
            return Err(Error::Invalid(format!(
                "container {} is not running: hako connects running containers only",
                c.name
            )));
        };
        let ip = ip
            .map(|i| {
                i.parse()
                    .map_err(|_| Error::Invalid(format!("invalid IPv4 address: {i}")))
            })
            .transpose()?;
        let nets = networks(self.store.conn(), &self.root)?;
        let net = nets
            .inspect(network)
            .map_err(|e| Error::Invalid(e.to_string()))?;
        let mut opts = AttachOptions {
            ip,
            aliases: aliases.to_vec(),
            ..Default::default()
        };
        if net.name != nets.config().default_network {
            opts.names = vec![c.name.clone(), c.id[..12].to_string()];
        }
        let bridge_up = Path::new("/sys/class/net").join(&net.bridge).exists();
        nets.attach(&net.name, &c.id, pid, &opts)
            .map_err(|e| Error::Invalid(e.to_string()))?;
        if !bridge_up {
            allow_forwarding(&net.bridge);
        }
        Ok(())
    }

    /// `network disconnect`: the container loses its interface on `network`.
    pub fn network_disconnect(&self, container: &str, network: &str) -> Result<()> {
        let c = self.find(container)?;
        networks(self.store.conn(), &self.root)?
            .detach_from(&c.id, network)
            .map_err(|e| Error::Invalid(e.to_string()))
    }
}
