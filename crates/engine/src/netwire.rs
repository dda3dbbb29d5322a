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
}

fn open_db(root: &Path) -> std::result::Result<rusqlite::Connection, String> {
    // The hook may run in the forked monitor, which must not reuse the parent's connection.
    let conn = rusqlite::Connection::open(root.join("hako.db"))
        .map_err(|e| format!("state database: {e}"))?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(|e| format!("state database: {e}"))?;
    Ok(conn)
}

impl NetWire {
    /// Runs in `before_start(pid)`.
    pub(crate) fn attach(&self, pid: i32) -> std::result::Result<(), String> {
        let conn = open_db(&self.root)?;
        let nets = Networks::open_with(&conn, config_for(&self.root)).map_err(|e| e.to_string())?;
        let bridge_was_up = nets
            .inspect(&self.network)
            .map(|n| Path::new("/sys/class/net").join(&n.bridge).exists())
            .unwrap_or(false);
        let a = nets
            .attach(&self.network, &self.container_id, pid, &self.opts)
            .map_err(|e| e.to_string())?;
        if !bridge_was_up {
            if let Ok(info) = nets.inspect(&a.network) {
                allow_forwarding(&info.bridge);
            }
        }
        // The file is bind-mounted into the container already: append in place, keeping the
        // inode, so the container sees its own address like Docker's /etc/hosts shows it.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.hosts_file)
            .map_err(|e| format!("update /etc/hosts: {e}"))?;
        writeln!(f, "{}\t{}", a.ip, self.hostname)
            .map_err(|e| format!("update /etc/hosts: {e}"))?;
        if a.network != nets.config().default_network {
            self.publish_names(&conn, &nets, &a);
        }
        Ok(())
    }

    /// On user-defined networks containers find each other by name, as with Docker. hako has
    /// no DNS server yet: names go into the /etc/hosts of every container on the network (each
    /// file is bind-mounted, so appending reaches the running containers).
    fn publish_names(
        &self,
        conn: &rusqlite::Connection,
        nets: &Networks<'_>,
        a: &hako_net::Attachment,
    ) {
        let Ok(info) = nets.inspect(&a.network) else {
            return;
        };
        let names_of = |id: &str, aliases: &[String]| -> Vec<String> {
            let mut n: Vec<String> = conn
                .query_row("SELECT name FROM containers WHERE id = ?1", [id], |r| {
                    r.get::<_, String>(0)
                })
                .ok()
                .into_iter()
                .collect();
            n.push(id[..12.min(id.len())].to_string());
            n.extend(aliases.iter().cloned());
            n
        };
        let mine = format!(
            "{}\t{}\n",
            a.ip,
            names_of(&self.container_id, &self.opts.aliases).join(" ")
        );
        let mut theirs = String::new();
        for e in info
            .endpoints
            .iter()
            .filter(|e| e.container_id != self.container_id)
        {
            theirs.push_str(&format!(
                "{}\t{}\n",
                e.ip,
                names_of(&e.container_id, &e.aliases).join(" ")
            ));
            let other = self
                .root
                .join("containers")
                .join(&e.container_id)
                .join("hosts");
            if let Ok(mut f) = std::fs::OpenOptions::new().append(true).open(other) {
                let _ = f.write_all(mine.as_bytes());
            }
        }
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.hosts_file)
        {
            let _ = f.write_all(theirs.as_bytes());
        }
    }
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
