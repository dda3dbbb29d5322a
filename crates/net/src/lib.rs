#![deny(missing_docs)]
//! hako's container networking: Linux bridges, veth pairs, a persistent IPAM in the shared
//! SQLite database, outbound NAT and published ports in one nftables table owned by hako.
//!
//! # How the engine uses it
//!
//! ```text
//! let nets = Networks::open(&conn)?;                  // cheap: CREATE TABLE IF NOT EXISTS
//! let specs = parse_port_spec("8080:80")?;            // while parsing `run` options (fail early)
//! // write /etc/resolv.conf from resolv_conf_for_container(&host_resolv)
//! runtime::spawn(.. before_start: Some(&|pid| {
//!     nets.attach("bridge", &id, pid, &AttachOptions { ports: specs.clone(), ..Default::default() })
//!         .map(|a| { /* record a.ip for /etc/hosts, `ps` PORTS */ })
//!         .map_err(|e| e.to_string())
//! }))?;
//! // ... the container runs ...
//! nets.detach(&id)?;                                  // on stop / rm; idempotent
//! nets.reconcile(&|id| engine_knows_it_is_running(id))?; // at the start of any command
//! ```
//!
//! `attach` runs in the runtime's `before_start(pid)` hook: the container's network namespace
//! exists (`/proc/PID/ns/net`) and its command has not started yet, so the container never sees
//! a half-configured network, and a host port already in use fails the run before the command
//! starts. When `attach` returns, no thread, socket or process of ours is left behind.
//!
//! # Kernel state
//!
//! - One bridge per network (`hako0` for the default network `bridge`) with the gateway address,
//!   `route_localnet` on (so DNAT from 127.0.0.1 can leave through it) and `ip_forward` on.
//! - Per container and network, a veth pair: the host end enslaved to the bridge with hairpin
//!   mode on, the other end created directly in the container's namespace as `eth0` (`eth1`, ...
//!   for further networks), up, with the leased address, the MAC `02:42:<ip>` and a default
//!   route via the gateway (none on `internal` networks).
//! - One nftables table (`inet hako`) whose rules never change after creation (except once,
//!   to add the IPv6 ones to a table made before them): they match sets and maps (`bridges`,
//!   `nets`, `natnets`, `natnets6`, `internal`, `pany`, `pip`, `pany6`, `pip6`), and networks and
//!   published ports are elements of those. Adding or removing a port is one element
//!   operation, with no rule handles to track. The table is created by the first network and
//!   deleted with the last.
//!
//! # Names
//!
//! On user-defined networks, [`Config::dns_server`] names the `hako-dns` binary: `attach`
//! starts one per network (see [`dns`]), `detach` and `remove` stop it with the network's last
//! container. Names are rows of `net_names`, read by the server on every query.
//!
//! # The host side
//!
//! Bridges, the table, sysctls and name servers live in the calling thread's network namespace,
//! unless [`set_host_netns`] names another for the whole process: rootless hako's per-user
//! namespace, which every host-side operation then enters on a thread of its own (a rootless
//! process could not come back from it). The container side is unchanged.
//!
//! # State
//!
//! Tables `net_networks`, `net_leases`, `net_ports`, `net_names`, `net_dns`, `net_proxies`
//! and `net_connects` (connections `network connect` made, repeated at each start) in the
//! engine's database. Address and port allocation happen in `BEGIN IMMEDIATE` transactions, and `UNIQUE`
//! constraints back them up, so concurrent `hako run`s never share an address or a host port.
//! The connection should have a busy timeout (the image store sets 5 s).
//!
//! # Known limits
//!
//! - IPv6 (`CreateOptions::ipv6`) on user-defined networks only. A port on all host addresses
//!   is DNATed for IPv6 too, and one on an IPv6 host address (`-p [2001:db8::1]:80:80`, map
//!   `pip6`) goes to the container's IPv6 address. The kernel does not forward connections
//!   from `::1` to a container, so TCP ports on `[::1]` are served by a [`proxy`] process each
//!   (UDP there is refused), and there is no hairpin masquerade between containers over IPv6.
//! - Turning IPv6 forwarding on (`net.ipv6.conf.all.forwarding`, as Docker does) makes the
//!   kernel ignore router advertisements on interfaces with `accept_ra=1`.
//! - On a host where Docker set the `ip filter` FORWARD policy to `drop` (Docker does that when
//!   it enables forwarding itself), forwarded container traffic is dropped by Docker's chain.
//!   This crate leaves Docker's tables alone; the engine (`hako_engine::netwire`) allows each
//!   bridge in Docker's `DOCKER-USER` chain when it comes up and removes the rules with it.
//! - A published host port is checked free at `attach` but not held open (there is no proxy
//!   process); DNAT takes precedence over a host process that binds it later.

mod cidr;
pub mod dns;
mod host;
mod netlink;
mod nft;
mod ports;
pub mod proxy;
mod resolv;

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};

pub use cidr::{Cidr4, Cidr6};
pub use host::{host_netns_set, set_host_netns};
pub use ports::{exposed_port_spec, parse_port_spec, PortSpec, Proto};
pub use resolv::resolv_conf_for_container;

use netlink::{Netlink, SetElem, NFPROTO_INET};

/// Errors of this crate. Messages follow Docker's where Docker has one.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A `-p` value that cannot be parsed.
    #[error("invalid port spec {spec:?}: {reason}")]
    InvalidPortSpec {
        /// The value given.
        spec: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An invalid subnet, gateway, range, address, MAC, name or option.
    #[error("invalid {what} {value:?}: {reason}")]
    Invalid {
        /// Which input.
        what: &'static str,
        /// The value given.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// `create` with a name that is taken.
    #[error("network with name {0} already exists")]
    NetworkExists(String),
    /// No network of that name.
    #[error("network {0} not found")]
    NetworkNotFound(String),
    /// `remove` of a network that containers are attached to.
    #[error("error while removing network: network {name} has active endpoints ({containers})")]
    NetworkInUse {
        /// The network.
        name: String,
        /// The attached containers' IDs, comma separated.
        containers: String,
    },
    /// A requested subnet overlapping another network or a host route.
    #[error("subnet {subnet} overlaps with {other}")]
    SubnetOverlap {
        /// The requested subnet.
        subnet: Cidr4,
        /// What it overlaps, e.g. `network foo (10.89.0.0/16)` or `host route 192.0.2.0/24`.
        other: String,
    },
    /// No candidate subnet is free.
    #[error("could not find a free subnet for network {0}; give one with --subnet")]
    NoFreeSubnet(String),
    /// `--ip` outside the network's range.
    #[error("address {ip} is outside the address range {range} of network {network}")]
    IpOutOfRange {
        /// The requested address.
        ip: Ipv4Addr,
        /// The network.
        network: String,
        /// Its allocation range.
        range: Cidr4,
    },
    /// `--ip` already leased (or the gateway).
    #[error("address {ip} is already in use on network {network}")]
    IpInUse {
        /// The requested address.
        ip: Ipv4Addr,
        /// The network.
        network: String,
    },
    /// `--ip6` outside the network's IPv6 subnet, or on a network without one.
    #[error("address {ip} is outside the IPv6 subnet of network {network} ({subnet})")]
    Ip6OutOfRange {
        /// The requested address.
        ip: Ipv6Addr,
        /// The network.
        network: String,
        /// Its IPv6 subnet, or why it has none.
        subnet: String,
    },
    /// `--ip6` already leased (or the gateway).
    #[error("address {ip} is already in use on network {network}")]
    Ip6InUse {
        /// The requested address.
        ip: Ipv6Addr,
        /// The network.
        network: String,
    },
    /// Every address of the range is leased.
    #[error("no available IPv4 address left on network {0}")]
    NetworkFull(String),
    /// The container already has an endpoint on this network.
    #[error("container {container} is already attached to network {network}")]
    AlreadyAttached {
        /// The container.
        container: String,
        /// The network.
        network: String,
    },
    /// `disconnect` from a network the container is not on.
    #[error("container {container} is not connected to network {network}")]
    NotAttached {
        /// The container.
        container: String,
        /// The network.
        network: String,
    },
    /// A host port that another container publishes or a host process listens on.
    #[error("Bind for {}:{port} failed: port is already allocated", fmt_host(*.addr))]
    PortAllocated {
        /// The host address.
        addr: IpAddr,
        /// The host port.
        port: u16,
    },
    /// No free port in a requested host port range.
    #[error("no free host port in {lo}-{hi}/{proto}")]
    NoFreePort {
        /// Range start.
        lo: u16,
        /// Range end.
        hi: u16,
        /// Protocol.
        proto: &'static str,
    },
    /// A requested IPv6 subnet overlapping another network or a host route.
    #[error("subnet {subnet} overlaps with {other}")]
    SubnetOverlap6 {
        /// The requested subnet.
        subnet: Cidr6,
        /// What it overlaps.
        other: String,
    },
    /// `--ipv6` on a host with IPv6 turned off.
    #[error("IPv6 is disabled on this host (net.ipv6.conf.all.disable_ipv6 is not 0)")]
    Ipv6Disabled,
    /// A user network's name server cannot be started.
    #[error("{0}")]
    Dns(String),
    /// A feature that is not implemented yet.
    #[error("{0} is not supported yet")]
    Unsupported(&'static str),
    /// A netlink request failed.
    #[error("{op}: {error}")]
    Netlink {
        /// What we were doing.
        op: String,
        /// The kernel's answer, said in the message (not exposed again as `source()`).
        error: std::io::Error,
    },
    /// An nftables script failed.
    #[error("nftables: {0}")]
    Nft(String),
    /// The container's network namespace cannot be opened.
    #[error("cannot open the network namespace of process {pid}: {error}")]
    Netns {
        /// The process.
        pid: i32,
        /// Why, said in the message.
        error: std::io::Error,
    },
    /// A file (e.g. a sysctl) cannot be read or written.
    #[error("{path}: {error}")]
    Io {
        /// The file.
        path: String,
        /// Why, said in the message.
        error: std::io::Error,
    },
    /// The state database.
    #[error("network state: {0}")]
    Db(rusqlite::Error),
    /// A bridge or nftables table of the name hako must use exists and was not made for
    /// these networks; hako leaves it alone.
    #[error("{what} {name} exists and was made by {by}, not by this state root: hako leaves it alone; remove or rename it")]
    NameTaken {
        /// `bridge` or `nftables table`.
        what: &'static str,
        /// Its name.
        name: String,
        /// Who made it, as far as its marker tells.
        by: String,
    },
}

// By hand rather than `#[from]`, which would also expose the database error as `source()`:
// the message says it already, and a report walking the chain would print it twice.
impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        Error::Db(e)
    }
}

impl Error {
    /// The class of this error, for the front ends' exit codes and HTTP statuses.
    pub fn kind(&self) -> hako_base::ErrorKind {
        use hako_base::ErrorKind as K;
        match self {
            Error::NetworkNotFound(_) => K::NotFound,
            Error::NetworkExists(_)
            | Error::NetworkInUse { .. }
            | Error::SubnetOverlap { .. }
            | Error::SubnetOverlap6 { .. }
            | Error::IpInUse { .. }
            | Error::Ip6InUse { .. }
            | Error::NetworkFull(_)
            | Error::AlreadyAttached { .. }
            | Error::PortAllocated { .. }
            | Error::NoFreePort { .. }
            | Error::NameTaken { .. } => K::Conflict,
            Error::Invalid { .. }
            | Error::InvalidPortSpec { .. }
            | Error::IpOutOfRange { .. }
            | Error::Ip6OutOfRange { .. }
            | Error::NotAttached { .. }
            | Error::Ipv6Disabled
            | Error::Unsupported(_) => K::Invalid,
            Error::NoFreeSubnet(_)
            | Error::Dns(_)
            | Error::Netlink { .. }
            | Error::Nft(_)
            | Error::Netns { .. }
            | Error::Io { .. }
            | Error::Db(_) => K::Internal,
        }
    }
}

type Result<T, E = Error> = std::result::Result<T, E>;

fn nl_err(op: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let op = op.into();
    move |error| Error::Netlink { op, error }
}

/// Names and defaults, injectable so tests never collide with real use.
#[derive(Debug, Clone)]
pub struct Config {
    /// The default network's name (`bridge`), created on first use by `attach`.
    pub default_network: String,
    /// The default network's bridge (`hako0`).
    pub default_bridge: String,
    /// The default network's subnet; `None` picks the first of 10.88.0.0/16, 10.89.0.0/16, ...
    /// that overlaps neither a host route nor another network.
    pub default_subnet: Option<Cidr4>,
    /// The nftables table (family `inet`) holding NAT and port rules (`hako`).
    pub nft_table: String,
    /// Prefix of host-side veth names (`veth`, at most 7 bytes).
    pub veth_prefix: String,
    /// Prefix of user-defined networks' bridge names (`hk-`, at most 3 bytes).
    pub bridge_prefix: String,
    /// The `hako-dns` binary, started for user-defined networks (see [`dns`]); `None`: no
    /// name server, and [`Attachment::dns`] stays `None`.
    pub dns_server: Option<PathBuf>,
    /// The `hako-proxy` binary, started for each TCP port published on `[::1]` (see
    /// [`proxy`]); `None`: such ports are refused.
    pub proxy_server: Option<PathBuf>,
    /// Where the name servers forward names that are not containers'; `None`: the
    /// nameservers of the host's `/etc/resolv.conf`.
    pub dns_upstream: Option<IpAddr>,
    /// Who the networks belong to (the engine: its state root's path), at most 200 bytes of
    /// printable ASCII without spaces or quotes. Bridges and nftables tables carry it in their
    /// marker (see [`Networks`]' "Whose names" section), so that what this owner made before
    /// can be told from anyone else's.
    pub owner: String,
    /// Owners are state roots' paths, and a marker naming a path with no `hako.db` is an
    /// orphan to sweep (see [`Networks::sweep_orphans`]). Off unless the owner names real
    /// roots: the engine sets it; tests that invent owners must not sweep each other's.
    pub owners_are_roots: bool,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            default_network: "bridge".into(),
            default_bridge: "hako0".into(),
            default_subnet: None,
            nft_table: "hako".into(),
            veth_prefix: "veth".into(),
            bridge_prefix: "hk-".into(),
            dns_server: None,
            proxy_server: None,
            dns_upstream: None,
            owner: String::new(),
            owners_are_roots: false,
        }
    }
}

/// Options of `network create`.
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    /// `--subnet`; `None` picks a free /16 from 10.89.0.0 upwards.
    pub subnet: Option<String>,
    /// `--gateway`; defaults to the subnet's first address.
    pub gateway: Option<String>,
    /// `--ip-range`: a sub-prefix of the subnet that addresses are leased from.
    pub ip_range: Option<String>,
    /// `--internal`: no outbound NAT, no default route, no forwarding off the bridge.
    pub internal: bool,
    /// `--ipv6`: the network also gets an IPv6 subnet, gateway and NAT66.
    pub ipv6: bool,
    /// An IPv6 `--subnet`; `None` with `ipv6` picks a random ULA /64 (RFC 4193).
    pub subnet6: Option<String>,
    /// An IPv6 `--gateway`; defaults to the subnet's first address after the network's.
    pub gateway6: Option<String>,
    /// `--label k=v`.
    pub labels: BTreeMap<String, String>,
    /// `-o k=v`: `com.docker.network.bridge.name` names the bridge,
    /// `com.docker.network.driver.mtu` sets the MTU (default: the host uplink's).
    pub options: BTreeMap<String, String>,
}

/// A container's endpoint on a network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The container ID.
    pub container_id: String,
    /// Its address.
    pub ip: Ipv4Addr,
    /// Its IPv6 address, on IPv6 networks.
    pub ip6: Option<Ipv6Addr>,
    /// Its MAC address, `aa:bb:cc:dd:ee:ff`.
    pub mac: String,
    /// The interface name inside the container (`eth0`).
    pub interface: String,
    /// The host end of the veth pair.
    pub host_veth: String,
    /// `--network-alias` names.
    pub aliases: Vec<String>,
}

/// A network as `network inspect` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkInfo {
    /// Its name.
    pub name: String,
    /// Its 64-hex-digit ID.
    pub id: String,
    /// Always `bridge` for now.
    pub driver: String,
    /// The Linux bridge.
    pub bridge: String,
    /// The subnet.
    pub subnet: Cidr4,
    /// The gateway (the bridge's address).
    pub gateway: Ipv4Addr,
    /// The range addresses are leased from (the subnet unless `--ip-range`).
    pub ip_range: Option<Cidr4>,
    /// `--internal`.
    pub internal: bool,
    /// `--ipv6`.
    pub ipv6: bool,
    /// The IPv6 subnet (set when `ipv6`).
    pub subnet6: Option<Cidr6>,
    /// The IPv6 gateway, on the bridge (set when `ipv6`).
    pub gateway6: Option<Ipv6Addr>,
    /// The MTU of paths out of the host: the uplink's, or the one given with `-o
    /// com.docker.network.driver.mtu`. See [`NetworkInfo::link_mtu`] for the links'.
    pub mtu: u32,
    /// The nftables table (family `inet`) of its rules.
    pub nft_table: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Driver options.
    pub options: BTreeMap<String, String>,
    /// Creation time, seconds since the epoch.
    pub created: i64,
    /// Attached containers.
    pub endpoints: Vec<Endpoint>,
    /// When the boot began (Unix seconds, see [`boot_start`]) in which its bridge and table
    /// were last made or found to be its own; not this boot's: to be checked before use.
    checked_boot: Option<i64>,
}

/// The network option that sets the MTU, as in Docker.
const MTU_OPTION: &str = "com.docker.network.driver.mtu";

/// Docker's MTU for its bridges and veths.
const DEFAULT_LINK_MTU: u32 = 1500;

impl NetworkInfo {
    /// The MTU of the bridge and veths: the one given with `-o com.docker.network.driver.mtu`;
    /// else at least Docker's 1500, even when the uplink's is smaller. The uplink's MTU then
    /// goes on the containers' default routes ([`NetworkInfo::route_mtu`]), so what leaves the
    /// host still fits it, while traffic between containers and the host is not cut to it:
    /// iperf3 container→host measured 13.8-14.0 Gbit/s at the development VM's 1400 against
    /// 15.5-18.6 at 1500.
    pub fn link_mtu(&self) -> u32 {
        if self.options.contains_key(MTU_OPTION) {
            self.mtu
        } else {
            self.mtu.max(DEFAULT_LINK_MTU)
        }
    }

    /// The MTU of the containers' default routes, when it is below the links' MTU.
    pub fn route_mtu(&self) -> Option<u32> {
        (self.mtu < self.link_mtu()).then_some(self.mtu)
    }
}

/// Options of `attach` (`run --ip`, `-p`, `--network-alias`, `--mac-address`).
#[derive(Debug, Clone, Default)]
pub struct AttachOptions {
    /// A fixed address; must lie in the network's range and be free. An IPv6 address here
    /// counts as [`AttachOptions::ip6`].
    pub ip: Option<IpAddr>,
    /// A fixed IPv6 address (`--ip6`); must lie in the network's IPv6 subnet and be free.
    pub ip6: Option<Ipv6Addr>,
    /// Ports to publish.
    pub ports: Vec<PortSpec>,
    /// DNS aliases (`--network-alias`).
    pub aliases: Vec<String>,
    /// Further names the network's name server answers for (the container's name and short
    /// ID), before the aliases.
    pub names: Vec<String>,
    /// A fixed MAC address; default `02:42:` followed by the IPv4 address.
    pub mac: Option<String>,
}

/// A published port, as `hako port` and `ps` show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedPort {
    /// The host address (`0.0.0.0`: all, IPv4 and IPv6).
    pub host_ip: IpAddr,
    /// The host port.
    pub host_port: u16,
    /// The container port.
    pub container_port: u16,
    /// The protocol.
    pub proto: Proto,
}

impl PublishedPort {
    /// The host address and port as Docker prints them: `0.0.0.0:8080`, `[::1]:8080`.
    pub fn host(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::new(self.host_ip, self.host_port)
    }
}

/// An address as Docker prints it before a port: IPv6 in brackets.
fn fmt_host(a: IpAddr) -> String {
    match a {
        IpAddr::V4(a) => a.to_string(),
        IpAddr::V6(a) => format!("[{a}]"),
    }
}

/// The result of `attach`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    /// The network's name.
    pub network: String,
    /// The container's address.
    pub ip: Ipv4Addr,
    /// The subnet's prefix length.
    pub prefix: u8,
    /// The gateway.
    pub gateway: Ipv4Addr,
    /// The IPv6 address, prefix length and gateway, on IPv6 networks.
    pub ip6: Option<(Ipv6Addr, u8, Ipv6Addr)>,
    /// The MAC address.
    pub mac: String,
    /// The interface inside the container.
    pub interface: String,
    /// The host end of the veth pair.
    pub host_veth: String,
    /// Published ports, with random host ports resolved.
    pub ports: Vec<PublishedPort>,
    /// The network's name server, for the container's resolv.conf (user-defined networks
    /// with [`Config::dns_server`] set).
    pub dns: Option<Ipv4Addr>,
    /// The network's bridge, if this attach brought it up (the default network's first use,
    /// or the first after a reboot), so the caller can add what goes with a new bridge.
    pub new_bridge: Option<String>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS net_networks (
    name TEXT PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    bridge TEXT NOT NULL UNIQUE,
    subnet TEXT NOT NULL,
    gateway TEXT NOT NULL,
    ip_range TEXT,
    internal INTEGER NOT NULL,
    ipv6 INTEGER NOT NULL,
    mtu INTEGER NOT NULL,
    nft_table TEXT NOT NULL,
    labels TEXT NOT NULL,
    options TEXT NOT NULL,
    created INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS net_leases (
    network TEXT NOT NULL,
    container_id TEXT NOT NULL,
    ip TEXT NOT NULL,
    mac TEXT NOT NULL,
    interface TEXT NOT NULL,
    host_veth TEXT NOT NULL UNIQUE,
    aliases TEXT NOT NULL,
    PRIMARY KEY (network, container_id),
    UNIQUE (network, ip)
);
CREATE TABLE IF NOT EXISTS net_ports (
    proto TEXT NOT NULL,
    host_ip TEXT NOT NULL,
    host_port INTEGER NOT NULL,
    container_id TEXT NOT NULL,
    network TEXT NOT NULL,
    container_ip TEXT NOT NULL,
    container_port INTEGER NOT NULL,
    nft_table TEXT NOT NULL,
    PRIMARY KEY (proto, host_ip, host_port)
);
CREATE INDEX IF NOT EXISTS net_ports_container ON net_ports (container_id);
CREATE TABLE IF NOT EXISTS net_names (
    network TEXT NOT NULL,
    container_id TEXT NOT NULL,
    ord INTEGER NOT NULL,
    name TEXT NOT NULL,
    PRIMARY KEY (network, container_id, ord)
);
CREATE INDEX IF NOT EXISTS net_names_name ON net_names (network, name);
CREATE TABLE IF NOT EXISTS net_dns (
    network TEXT PRIMARY KEY,
    pid INTEGER NOT NULL,
    start_time INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS net_leases_container ON net_leases (container_id);
CREATE TABLE IF NOT EXISTS net_networks6 (
    network TEXT PRIMARY KEY,
    subnet TEXT NOT NULL,
    gateway TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS net_proxies (
    container_id TEXT NOT NULL,
    network TEXT NOT NULL,
    host_port INTEGER NOT NULL PRIMARY KEY,
    pid INTEGER NOT NULL,
    start_time INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS net_connects (
    container_id TEXT NOT NULL,
    network TEXT NOT NULL,
    ip TEXT,
    ip6 TEXT,
    aliases TEXT NOT NULL,
    PRIMARY KEY (container_id, network)
);
CREATE TABLE IF NOT EXISTS net_leases6 (
    network TEXT NOT NULL,
    container_id TEXT NOT NULL,
    ip TEXT NOT NULL,
    PRIMARY KEY (network, container_id),
    UNIQUE (network, ip)
);
CREATE TABLE IF NOT EXISTS net_meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
";

/// True when every table and index of SCHEMA exists: one statement to parse at each open
/// (several per command) rather than twelve CREATE statements. Parsing SQL was about a tenth
/// of a bridged `run`'s user time in `perf`.
const SCHEMA_CURRENT: &str = "SELECT count(*) = 13 FROM sqlite_master WHERE name IN
    ('net_networks', 'net_leases', 'net_ports', 'net_ports_container', 'net_names', 'net_names_name', 'net_dns', 'net_leases_container', 'net_networks6', 'net_proxies', 'net_connects', 'net_leases6', 'net_meta')";

/// The networks of one hako state root; open one per command.
///
/// # Whose names
///
/// Bridges and nftables tables live in the host's namespace, while the networks naming them
/// live in one state root's database. A root deleted and made again at the same path (`rm -rf
/// /var/lib/hako`) finds the bridge and table of its earlier life, and two roots can derive the
/// same names. So what hako makes carries a marker, `hako INSTANCE OWNER`: the link's alias
/// (`IFLA_IFALIAS`) and the table's comment, where OWNER is [`Config::owner`] and INSTANCE a
/// random ID kept in the database (`net_meta`), new with every new database.
///
/// - Making a network, a name is usable when nothing has it, or when what has it carries this
///   owner's marker (this root's leftover, or its earlier life's) and no network of this
///   database uses it: that is deleted and made anew. The default network then tries the next
///   name (`hako0`, `hako01`, ...; tables `hako`, `hako_1`, ...) past anything else; a name
///   the user gave fails with [`Error::NameTaken`].
/// - Bringing a recorded network back (after a reboot), a link or table of its name is
///   adopted if it is this owner's or unmarked (made by a hako before markers), and marked as
///   this instance's; another owner's fails with [`Error::NameTaken`].
/// - Removing a network deletes only what is this owner's or unmarked, never another's.
pub struct Networks<'c> {
    conn: &'c Connection,
    cfg: Config,
    /// This database's INSTANCE, read (or made) the first time a marker is needed.
    instance: std::cell::OnceCell<String>,
}

/// Whose a bridge or table of some name is, by its marker.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Claim {
    /// Nothing has the name.
    Free,
    /// Marked by this owner and this database.
    Mine,
    /// Marked by this owner in an earlier life of its state root.
    Stale,
    /// Exists without a marker: made by a hako older than markers, or by anyone else.
    Unmarked,
    /// Marked by another owner, or by another program (the text says whom).
    Theirs(String),
}

impl Claim {
    /// This owner's, in this life or an earlier one.
    fn ours(&self) -> bool {
        matches!(self, Claim::Mine | Claim::Stale)
    }

    fn by(&self) -> String {
        match self {
            Claim::Theirs(b) => b.clone(),
            Claim::Unmarked => "another program (it has no hako marker)".into(),
            _ => "this state root".into(),
        }
    }
}

/// What [`Networks::ensure_kernel`] made (rather than found), so a failure undoes only that.
#[derive(Debug, Default, Clone, Copy)]
struct Made {
    table: bool,
    elements: bool,
    bridge: bool,
}

/// How many names the default network tries past others' bridges and tables.
const NAME_CANDIDATES: u32 = 16;

/// The `k`th name of a series starting at `base` (`base`, then `base` `sep` `k`), if it
/// fits in `max` bytes.
fn candidate(base: &str, k: u32, sep: &str, max: usize) -> Option<String> {
    if k == 0 {
        return Some(base.to_string());
    }
    let c = format!("{base}{sep}{k}");
    (c.len() <= max).then_some(c)
}

/// The text of a table's comment in `nft list table` output.
fn table_comment(listing: &str) -> Option<&str> {
    listing.lines().find_map(|l| {
        l.trim()
            .strip_prefix("comment \"")
            .and_then(|c| c.strip_suffix('"'))
    })
}

fn invalid(what: &'static str, value: &str, reason: impl Into<String>) -> Error {
    Error::Invalid {
        what,
        value: value.to_string(),
        reason: reason.into(),
    }
}

fn valid_ifname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 15
        && name != "."
        && name != ".."
        && !name.contains(['/', ':', ' ', '\0'])
}

fn random_hex(bytes: usize) -> Result<String> {
    let mut buf = vec![0u8; bytes];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .map_err(|error| Error::Io {
            path: "/dev/urandom".into(),
            error,
        })?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// FNV-1a: a stable short hash for veth names (no randomness needed, only spread).
fn fnv(s: &str) -> u32 {
    s.bytes().fold(0x811c9dc5u32, |h, b| {
        (h ^ b as u32).wrapping_mul(0x01000193)
    })
}

fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() != 6 {
        return None;
    }
    let mut mac = [0u8; 6];
    for (m, p) in mac.iter_mut().zip(parts) {
        if p.len() != 2 {
            return None;
        }
        *m = u8::from_str_radix(p, 16).ok()?;
    }
    // A multicast MAC (low bit of the first byte) cannot be an interface's address.
    (mac[0] & 1 == 0 && mac != [0; 6]).then_some(mac)
}

fn fmt_mac(m: &[u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn write_sysctl(path: &str, value: &str) -> Result<()> {
    host::run(|| write_sysctl_here(path, value)).map_err(|error| Error::Io {
        path: path.to_string(),
        error,
    })?
}

fn write_sysctl_here(path: &str, value: &str) -> Result<()> {
    // Read first: writing an unchanged value is not free (ip_forward resets all devices'
    // forwarding settings) and may be refused where /proc/sys is read-only.
    if std::fs::read_to_string(path).is_ok_and(|v| v.trim() == value) {
        return Ok(());
    }
    std::fs::write(path, value).map_err(|error| Error::Io {
        path: path.to_string(),
        error,
    })
}

/// The table's fixed ruleset; see the crate docs for the sets and maps it matches. `marker`
/// becomes the table's comment (see [`Networks`]' "Whose names").
fn table_script(t: &str, marker: &str) -> String {
    format!(
        "create table inet {t} {{ comment \"{marker}\"; }}
add set inet {t} bridges {{ type ifname; }}
add set inet {t} internal {{ type ifname; }}
add set inet {t} natnets {{ type ipv4_addr; flags interval; }}
add set inet {t} nets {{ type ipv4_addr; flags interval; }}
add set inet {t} natnets6 {{ type ipv6_addr; flags interval; }}
add map inet {t} pany {{ type inet_proto . inet_service : ipv4_addr . inet_service; }}
add map inet {t} pip {{ type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service; }}
add map inet {t} pany6 {{ type inet_proto . inet_service : ipv6_addr . inet_service; }}
add map inet {t} pip6 {{ type ipv6_addr . inet_proto . inet_service : ipv6_addr . inet_service; }}
add chain inet {t} prerouting {{ type nat hook prerouting priority dstnat; policy accept; }}
add chain inet {t} output {{ type nat hook output priority -100; policy accept; }}
add chain inet {t} postrouting {{ type nat hook postrouting priority srcnat; policy accept; }}
add chain inet {t} forward {{ type filter hook forward priority filter; policy accept; }}
add chain inet {t} ports
add rule inet {t} prerouting fib daddr type local jump ports
add rule inet {t} output fib daddr type local jump ports
add rule inet {t} ports meta nfproto ipv4 dnat ip to ip daddr . meta l4proto . th dport map @pip
add rule inet {t} ports meta nfproto ipv4 dnat ip to meta l4proto . th dport map @pany
add rule inet {t} ports meta nfproto ipv6 dnat ip6 to ip6 daddr . meta l4proto . th dport map @pip6
add rule inet {t} ports meta nfproto ipv6 dnat ip6 to meta l4proto . th dport map @pany6
add rule inet {t} postrouting ip saddr @natnets oifname != @bridges masquerade
add rule inet {t} postrouting ip6 saddr @natnets6 oifname != @bridges masquerade
add rule inet {t} postrouting oifname @bridges ct status dnat fib saddr type local masquerade
add rule inet {t} postrouting oifname @bridges ct status dnat ip saddr @nets masquerade
add rule inet {t} forward iifname @internal oifname != @internal drop
add rule inet {t} forward oifname @internal iifname != @internal drop
"
    )
}

/// Adds the IPv6 sets, maps and rules to a table made by an older hako (without IPv6
/// support, or without `pip6`), which otherwise lives on while any network does. Runs
/// inside `create`'s immediate transaction, or on a failed `pip6` element add, so that no
/// two hakos add the same rules; a race that still does so only duplicates a rule that
/// matches the same packets.
fn upgrade_table_v6(t: &str) -> Result<()> {
    let missing = |what: &str| match nft::run(&{
        let (kind, name) = what.split_once(' ').expect("kind and name");
        format!("list {kind} inet {t} {name}")
    }) {
        Ok(_) => Ok(false),
        Err(e) if nft::is_missing(&e) => Ok(true),
        Err(e) => Err(Error::Nft(e)),
    };
    let mut lines: Vec<&str> = Vec::new();
    let script = table_script(t, "");
    if missing("set natnets6")? {
        lines.extend(
            script
                .lines()
                .filter(|l| l.contains("natnets6") || l.contains("pany6")),
        );
    }
    if missing("map pip6")? {
        lines.extend(script.lines().filter(|l| l.contains("pip6")));
    }
    if lines.is_empty() {
        return Ok(());
    }
    let v6: String = lines.iter().map(|l| format!("{l}\n")).collect();
    nft::run(&v6).map(|_| ()).map_err(Error::Nft)
}

/// The set elements describing one network.
fn network_elements(verb: &str, n: &NetworkInfo) -> String {
    let t = &n.nft_table;
    let mut s = format!(
        "{verb} element inet {t} bridges {{ \"{b}\" }}\n{verb} element inet {t} nets {{ {s} }}\n",
        b = n.bridge,
        s = n.subnet
    );
    if n.internal {
        s += &format!("{verb} element inet {t} internal {{ \"{}\" }}\n", n.bridge);
    } else {
        s += &format!("{verb} element inet {t} natnets {{ {} }}\n", n.subnet);
        if let Some(s6) = n.subnet6 {
            s += &format!("{verb} element inet {t} natnets6 {{ {s6} }}\n");
        }
    }
    s
}

struct PortRow {
    proto: Proto,
    /// `0.0.0.0` for all addresses (IPv4 and, with `container_ip6`, IPv6).
    host_ip: IpAddr,
    host_port: u16,
    container_ip: Ipv4Addr,
    /// The container's IPv6 address: a port on all host addresses is published on the
    /// host's IPv6 addresses too, as Docker does.
    container_ip6: Option<Ipv6Addr>,
    container_port: u16,
    nft_table: String,
}

/// The IPv6 DNAT element of a published port on all host addresses (`pany6`), if the
/// container has an IPv6 address.
fn port_set_elem6(p: &PortRow) -> Option<SetElem> {
    let ip6 = p
        .container_ip6
        .filter(|_| p.host_ip == IpAddr::V4(Ipv4Addr::UNSPECIFIED))?;
    let (_, v4) = port_set_elem(p)?;
    let mut data = ip6.octets().to_vec();
    data.extend_from_slice(&v4.data.expect("a map element")[4..]);
    Some(SetElem {
        key: v4.key,
        data: Some(data),
    })
}

/// The DNAT map element of a published port: (map, element), in nf_tables register layout
/// (each field of a concatenation padded to 4 bytes; addresses and ports in network order).
/// `None` for a port on an IPv6 host address of a container without an IPv6 address (which
/// `lease` refuses).
fn port_set_elem(p: &PortRow) -> Option<(&'static str, SetElem)> {
    let proto = match p.proto {
        Proto::Tcp => libc::IPPROTO_TCP as u8,
        Proto::Udp => libc::IPPROTO_UDP as u8,
    };
    let [hp0, hp1] = p.host_port.to_be_bytes();
    let [cp0, cp1] = p.container_port.to_be_bytes();
    let mut key = Vec::with_capacity(24);
    let (map, mut data) = match p.host_ip {
        IpAddr::V4(a) if a.is_unspecified() => ("pany", p.container_ip.octets().to_vec()),
        IpAddr::V4(a) => {
            key.extend_from_slice(&a.octets());
            ("pip", p.container_ip.octets().to_vec())
        }
        // Served by a hako-proxy: the kernel does not DNAT from ::1.
        IpAddr::V6(a) if a.is_loopback() => return None,
        IpAddr::V6(a) => {
            key.extend_from_slice(&a.octets());
            ("pip6", p.container_ip6?.octets().to_vec())
        }
    };
    key.extend_from_slice(&[proto, 0, 0, 0, hp0, hp1, 0, 0]);
    data.extend_from_slice(&[cp0, cp1, 0, 0]);
    Some((
        map,
        SetElem {
            key,
            data: Some(data),
        },
    ))
}

/// Adds or deletes the DNAT elements of published ports, over our own nfnetlink socket.
///
/// Not through libnftables: before every command it dumps the host's whole ruleset into its
/// cache (every table of every program), which made `-p` cost about 36 ms of CPU per run on the
/// development VM (`perf stat`: 6,300 page faults against 1,100 without `-p`; `perf record`: two
/// thirds of them under `nftnl_table_list_foreach`). An element operation needs no cache: the
/// maps' types are fixed by [`table_script`]. Deleting is idempotent: elements (or a table)
/// that are gone already are skipped.
fn port_elements(add: bool, rows: &[PortRow]) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut groups: BTreeMap<(&str, &str), Vec<SetElem>> = BTreeMap::new();
    for r in rows {
        if let Some((map, e)) = port_set_elem(r) {
            groups.entry((&r.nft_table, map)).or_default().push(e);
        }
        if let Some(e6) = port_set_elem6(r) {
            groups.entry((&r.nft_table, "pany6")).or_default().push(e6);
        }
    }
    let mut nl = Netlink::open_netfilter().map_err(nl_err("netfilter netlink socket"))?;
    let verb = if add { "adding" } else { "deleting" };
    let gone = |e: &std::io::Error| !add && e.raw_os_error() == Some(libc::ENOENT);
    let mut result = Ok(());
    'groups: for ((table, map), elems) in &groups {
        let err = |e| nl_err(format!("{verb} published ports in {table} {map}"))(e);
        let mut r = nl.set_elements(add, NFPROTO_INET, table, map, elems);
        if add && *map == "pip6" && matches!(&r, Err(e) if e.raw_os_error() == Some(libc::ENOENT)) {
            // A table made before pip6 existed.
            if let Err(e) = upgrade_table_v6(table) {
                result = Err(e);
                break;
            }
            r = nl.set_elements(add, NFPROTO_INET, table, map, elems);
        }
        match r {
            Ok(()) => {}
            Err(e) if gone(&e) => {
                for el in elems {
                    match nl.set_elements(false, NFPROTO_INET, table, map, std::slice::from_ref(el))
                    {
                        Ok(()) => {}
                        Err(e) if gone(&e) => {}
                        Err(e) => {
                            result = Err(err(e));
                            break 'groups;
                        }
                    }
                }
            }
            Err(e) => {
                result = Err(err(e));
                break;
            }
        }
    }
    // See nft::last_close_elsewhere: closing after a delete waits for an RCU grace period.
    if !add {
        if let Some(release) = nft::last_close_elsewhere() {
            drop(nl);
            release();
        }
    }
    result
}

/// Runs a delete script; if the batch fails because something is already gone, retries line by
/// line, ignoring what is missing (teardown must be idempotent).
fn nft_delete(script: &str) -> Result<()> {
    if script.is_empty() {
        return Ok(());
    }
    match nft::run(script) {
        Ok(_) => Ok(()),
        Err(e) if nft::is_missing(&e) => {
            for line in script.lines() {
                match nft::run(line) {
                    Ok(_) => {}
                    Err(e) if nft::is_missing(&e) => {}
                    Err(e) => return Err(Error::Nft(e)),
                }
            }
            Ok(())
        }
        Err(e) => Err(Error::Nft(e)),
    }
}

fn is_busy_or_constraint(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if f.code == rusqlite::ErrorCode::ConstraintViolation)
}

impl<'c> Networks<'c> {
    /// Opens the networks with the default [`Config`]; creates the tables if missing.
    pub fn open(conn: &'c Connection) -> Result<Networks<'c>> {
        Networks::open_with(conn, Config::default())
    }

    /// Opens the networks with explicit names and defaults.
    pub fn open_with(conn: &'c Connection, cfg: Config) -> Result<Networks<'c>> {
        if cfg.veth_prefix.len() > 7 || !valid_ifname(&cfg.veth_prefix) {
            return Err(invalid("veth prefix", &cfg.veth_prefix, "1 to 7 bytes"));
        }
        if cfg.bridge_prefix.len() > 3 || !valid_ifname(&cfg.bridge_prefix) {
            return Err(invalid("bridge prefix", &cfg.bridge_prefix, "1 to 3 bytes"));
        }
        if !cfg
            .nft_table
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
            || cfg.nft_table.is_empty()
        {
            return Err(invalid(
                "nftables table name",
                &cfg.nft_table,
                "use [A-Za-z0-9_]",
            ));
        }
        if cfg.owner.len() > 200
            || !cfg
                .owner
                .bytes()
                .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
        {
            return Err(invalid(
                "owner",
                &cfg.owner,
                "at most 200 bytes of printable ASCII without spaces, quotes or backslashes",
            ));
        }
        if !conn.query_row(SCHEMA_CURRENT, [], |r| r.get::<_, bool>(0))? {
            conn.execute_batch(SCHEMA)?;
        }
        Ok(Networks {
            conn,
            cfg,
            instance: std::cell::OnceCell::new(),
        })
    }

    /// This database's INSTANCE (see "Whose names"), made on first use.
    fn instance(&self) -> Result<&str> {
        if let Some(i) = self.instance.get() {
            return Ok(i);
        }
        let read = || {
            self.conn
                .query_row(
                    "SELECT value FROM net_meta WHERE key = 'instance'",
                    [],
                    |r| r.get::<_, String>(0),
                )
                .optional()
        };
        let id = match read()? {
            Some(id) => id,
            None => {
                // OR IGNORE: another hako may have made it meanwhile; theirs wins for both.
                self.conn.execute(
                    "INSERT OR IGNORE INTO net_meta (key, value) VALUES ('instance', ?1)",
                    [random_hex(8)?],
                )?;
                read()?.ok_or(Error::Db(rusqlite::Error::QueryReturnedNoRows))?
            }
        };
        Ok(self.instance.get_or_init(|| id))
    }

    /// The marker this instance puts on what it makes.
    fn marker(&self) -> Result<String> {
        Ok(format!("hako {} {}", self.instance()?, self.cfg.owner))
    }

    /// Whose something marked `marker` (`None`: unmarked) is.
    fn claim_of(&self, marker: Option<&str>) -> Result<Claim> {
        let Some(m) = marker else {
            return Ok(Claim::Unmarked);
        };
        let mut words = m.splitn(3, ' ');
        Ok(match (words.next(), words.next(), words.next()) {
            (Some("hako"), Some(inst), Some(owner)) if owner == self.cfg.owner => {
                if inst == self.instance()? {
                    Claim::Mine
                } else {
                    Claim::Stale
                }
            }
            (Some("hako"), Some(_), Some(owner)) => {
                Claim::Theirs(format!("the hako state root {owner}"))
            }
            _ => Claim::Theirs(format!("another program (it is marked {m:?})")),
        })
    }

    /// Whose the link `name` is.
    fn link_claim(&self, nl: &mut Netlink, name: &str) -> Result<Claim> {
        match nl
            .alias_of(name)
            .map_err(nl_err(format!("looking up link {name}")))?
        {
            None => Ok(Claim::Free),
            Some(alias) => self.claim_of(alias.as_deref()),
        }
    }

    /// Deletes the bridges and tables whose marker names a state root that is gone: an owner
    /// that is a path with no `hako.db` in it (the root was deleted with `rm -rf` while its
    /// networks were up, so nothing of that root will ever take them down). Owners recorded as
    /// a hash cannot be looked up and are left alone, as is everything unmarked or another
    /// program's. Runs when a root makes a new table (its first network), not on every `run`:
    /// a link dump and a listing of each table cost a few milliseconds. Returns what went.
    pub fn sweep_orphans(&self) -> Result<Vec<String>> {
        let orphaned = |marker: &str| -> bool {
            let mut words = marker.splitn(3, ' ');
            match (words.next(), words.next(), words.next()) {
                (Some("hako"), Some(_), Some(owner)) => {
                    owner != self.cfg.owner
                        && owner.starts_with('/')
                        && !Path::new(owner).join("hako.db").exists()
                }
                _ => false,
            }
        };
        let mut gone = Vec::new();
        if !self.cfg.owners_are_roots {
            return Ok(gone);
        }
        let mut nl = Netlink::open_host().map_err(nl_err("netlink socket"))?;
        for (name, alias) in nl.aliased_links().map_err(nl_err("listing links"))? {
            if orphaned(&alias)
                && nl
                    .delete_link(&name)
                    .map_err(nl_err(format!("deleting the orphaned link {name}")))?
            {
                gone.push(format!("link {name}"));
            }
        }
        let tables = nft::run("list tables").map_err(Error::Nft)?;
        for name in tables
            .lines()
            .filter_map(|l| l.trim().strip_prefix("table inet "))
        {
            let listing = match nft::run(&format!("list table inet {name}")) {
                Ok(l) => l,
                Err(e) if nft::is_missing(&e) => continue,
                Err(e) => return Err(Error::Nft(e)),
            };
            if table_comment(&listing).is_some_and(orphaned) {
                nft_delete(&format!("delete table inet {name}"))?;
                gone.push(format!("table inet {name}"));
            }
        }
        Ok(gone)
    }

    /// Whose the nftables table `inet name` is.
    fn table_claim(&self, name: &str) -> Result<Claim> {
        match nft::run(&format!("list table inet {name}")) {
            Ok(listing) => self.claim_of(table_comment(&listing)),
            Err(e) if nft::is_missing(&e) => Ok(Claim::Free),
            Err(e) => Err(Error::Nft(e)),
        }
    }

    /// The table for a new network: the one the root's networks share, else the first
    /// candidate that is free or this owner's leftover (deleted, to be made anew). Returns
    /// whether it is to be made.
    fn pick_table(&self, existing: &[NetworkInfo]) -> Result<(String, bool)> {
        if let Some(n) = existing.first() {
            return Ok((n.nft_table.clone(), false));
        }
        let base = &self.cfg.nft_table;
        let mut last = None;
        for k in 0..NAME_CANDIDATES {
            let Some(t) = candidate(base, k, "_", 64) else {
                break;
            };
            match self.table_claim(&t)? {
                Claim::Free => return Ok((t, true)),
                c if c.ours() => {
                    nft_delete(&format!("delete table inet {t}"))?;
                    return Ok((t, true));
                }
                c => last = Some((t, c)),
            }
        }
        let (name, c) = last.unwrap_or_else(|| (base.clone(), Claim::Unmarked));
        Err(Error::NameTaken {
            what: "nftables table",
            name,
            by: c.by(),
        })
    }

    /// Makes `name` usable for a new bridge: free, or this owner's leftover that no network
    /// of this database uses (deleted, to be made anew). Otherwise the claim that blocks it.
    fn free_bridge(
        &self,
        nl: &mut Netlink,
        name: &str,
        existing: &[NetworkInfo],
    ) -> Result<Option<Claim>> {
        if existing.iter().any(|n| n.bridge == name) {
            return Ok(Some(Claim::Mine));
        }
        match self.link_claim(nl, name)? {
            Claim::Free => Ok(None),
            c if c.ours() => {
                nl.delete_link(name)
                    .map_err(nl_err(format!("deleting the stale bridge {name}")))?;
                Ok(None)
            }
            c => Ok(Some(c)),
        }
    }

    /// The table (and whether it is to be made) and bridge of a new network: the default
    /// network's from [`Networks::pick_default_bridge`], a user network's as given
    /// (`bridge`) or derived from its `id`, refused if it is taken by anyone else.
    fn pick_names(
        &self,
        default: bool,
        bridge: &str,
        id: &str,
        existing: &[NetworkInfo],
    ) -> Result<(String, bool, String)> {
        let (table, new_table) = self.pick_table(existing)?;
        if default {
            return Ok((table, new_table, self.pick_default_bridge(existing)?));
        }
        let b = if bridge.is_empty() {
            format!("{}{}", self.cfg.bridge_prefix, &id[..12])
        } else {
            bridge.to_string()
        };
        if let Some(n) = existing.iter().find(|n| n.bridge == b) {
            return Err(invalid(
                "bridge name",
                &b,
                format!("already used by network {}", n.name),
            ));
        }
        // Never adopt a link someone else made: configuring (and on failure deleting)
        // another's interface would be far worse than refusing.
        let mut nl = Netlink::open_host().map_err(nl_err("netlink socket"))?;
        if let Some(c) = self.free_bridge(&mut nl, &b, existing)? {
            return Err(invalid(
                "bridge name",
                &b,
                format!(
                    "a network interface of that name already exists, made by {}",
                    c.by()
                ),
            ));
        }
        Ok((table, new_table, b))
    }

    /// The default network's bridge: the first candidate [`Networks::free_bridge`] allows.
    fn pick_default_bridge(&self, existing: &[NetworkInfo]) -> Result<String> {
        let mut nl = Netlink::open_host().map_err(nl_err("netlink socket"))?;
        let base = &self.cfg.default_bridge;
        let mut last = None;
        for k in 0..NAME_CANDIDATES {
            let Some(b) = candidate(base, k, "", libc::IFNAMSIZ - 1) else {
                break;
            };
            match self.free_bridge(&mut nl, &b, existing)? {
                None => return Ok(b),
                Some(c) => last = Some((b, c)),
            }
        }
        let (name, c) = last.unwrap_or_else(|| (base.clone(), Claim::Unmarked));
        Err(Error::NameTaken {
            what: "bridge",
            name,
            by: c.by(),
        })
    }

    /// The configuration in use.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    fn immediate(&self) -> Result<Transaction<'c>> {
        Ok(Transaction::new_unchecked(
            self.conn,
            TransactionBehavior::Immediate,
        )?)
    }

    /// Creates a network: validates everything, then the bridge and nftables elements, then
    /// records it. On any failure nothing is left behind.
    pub fn create(&self, name: &str, opts: &CreateOptions) -> Result<NetworkInfo> {
        // Docker's predefined networks always exist there; here the default one is made on
        // first use, and `host` and `none` are modes, not networks, but the names are taken.
        if name == self.cfg.default_network || name == "host" || name == "none" {
            return Err(Error::NetworkExists(name.to_string()));
        }
        self.create_inner(name, opts, false)
    }

    /// Creates network `name`; `default`: the default network, whose bridge is the first
    /// usable of [`Config::default_bridge`]'s series (see "Whose names").
    fn create_inner(&self, name: &str, opts: &CreateOptions, default: bool) -> Result<NetworkInfo> {
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
            || !name.chars().next().unwrap().is_ascii_alphanumeric()
        {
            return Err(invalid(
                "network name",
                name,
                "only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed",
            ));
        }
        if !opts.ipv6 && (opts.subnet6.is_some() || opts.gateway6.is_some()) {
            return Err(invalid(
                "subnet or gateway",
                opts.subnet6
                    .as_deref()
                    .or(opts.gateway6.as_deref())
                    .unwrap_or(""),
                "an IPv6 address needs --ipv6",
            ));
        }
        let subnet6 = opts
            .subnet6
            .as_deref()
            .map(|s| s.parse::<Cidr6>().map_err(|e| invalid("subnet", s, e.0)))
            .transpose()?;
        if let Some(s) = subnet6 {
            if s.prefix > 120 {
                return Err(invalid(
                    "subnet",
                    &s.to_string(),
                    "too small (at most /120)",
                ));
            }
            let seg0 = s.addr.segments()[0];
            if seg0 & 0xff00 == 0xff00 || seg0 & 0xffc0 == 0xfe80 || s.prefix < 8 {
                return Err(invalid(
                    "subnet",
                    &s.to_string(),
                    "not a unicast prefix for hosts (multicast, link-local or too large)",
                ));
            }
        }
        let gateway6 = opts
            .gateway6
            .as_deref()
            .map(|s| {
                s.parse::<Ipv6Addr>()
                    .map_err(|_| invalid("gateway", s, "not an IPv6 address"))
            })
            .transpose()?;
        if subnet6.is_none() && gateway6.is_some() {
            return Err(invalid(
                "gateway",
                opts.gateway6.as_deref().unwrap_or(""),
                "needs an IPv6 --subnet",
            ));
        }
        if opts.ipv6 {
            let path = "/proc/sys/net/ipv6/conf/all/disable_ipv6";
            let on = host::run(|| std::fs::read_to_string(path).is_ok_and(|v| v.trim() == "0"));
            if !on.unwrap_or(false) {
                return Err(Error::Ipv6Disabled);
            }
        }
        let subnet = opts
            .subnet
            .as_deref()
            .map(|s| s.parse::<Cidr4>().map_err(|e| invalid("subnet", s, e.0)))
            .transpose()?;
        if let Some(s) = subnet {
            if s.prefix > 30 {
                return Err(invalid("subnet", &s.to_string(), "too small (at most /30)"));
            }
        }
        let ip_range = opts
            .ip_range
            .as_deref()
            .map(|s| s.parse::<Cidr4>().map_err(|e| invalid("ip range", s, e.0)))
            .transpose()?;
        let gateway = opts
            .gateway
            .as_deref()
            .map(|s| {
                s.parse::<Ipv4Addr>()
                    .map_err(|_| invalid("gateway", s, "not an IPv4 address"))
            })
            .transpose()?;
        if subnet.is_none() && (ip_range.is_some() || gateway.is_some()) {
            return Err(invalid(
                "gateway or ip range",
                opts.gateway
                    .as_deref()
                    .or(opts.ip_range.as_deref())
                    .unwrap_or(""),
                "needs --subnet",
            ));
        }
        let bridge = match (default, opts.options.get("com.docker.network.bridge.name")) {
            (true, _) => String::new(), // picked below
            (false, Some(b)) => b.clone(),
            (false, None) => String::new(), // derived from the ID below
        };
        if !bridge.is_empty() && !valid_ifname(&bridge) {
            return Err(invalid(
                "bridge name",
                &bridge,
                "1 to 15 bytes, no / : or space",
            ));
        }
        let mtu = match opts.options.get(MTU_OPTION) {
            Some(m) => m
                .parse::<u32>()
                .ok()
                .filter(|m| (68..=65535).contains(m))
                .ok_or_else(|| invalid("mtu", m, "a number from 68 to 65535"))?,
            None => uplink_mtu()?,
        };

        let tx = self.immediate()?;
        if tx
            .query_row("SELECT 1 FROM net_networks WHERE name = ?1", [name], |_| {
                Ok(())
            })
            .optional()?
            .is_some()
        {
            return Err(Error::NetworkExists(name.to_string()));
        }
        let existing = self.list_in(&tx)?;
        let id = random_hex(32)?;
        // Names first: a leftover of this root's earlier life goes here, before its route
        // makes its subnet look taken.
        let mut picked = Some(self.pick_names(default, &bridge, &id, &existing)?);
        let routes = Netlink::open_host()
            .and_then(|mut nl| nl.routes4())
            .map_err(nl_err("listing host routes"))?;
        let is_ours = |c: &Cidr4| existing.iter().any(|n| n.subnet == *c);
        let conflict = |c: &Cidr4| -> Option<String> {
            if let Some(n) = existing.iter().find(|n| n.subnet.overlaps(c)) {
                return Some(format!("network {} ({})", n.name, n.subnet));
            }
            routes
                .iter()
                .map(|r| Cidr4::new(r.dst, r.prefix))
                // The default route overlaps everything; our own bridges' routes are covered
                // by the network check above.
                .find(|r| r.prefix > 0 && r.overlaps(c) && !is_ours(r))
                .map(|r| format!("host route {r}"))
        };
        let subnet = match subnet {
            Some(s) => {
                if let Some(other) = conflict(&s) {
                    return Err(Error::SubnetOverlap { subnet: s, other });
                }
                s
            }
            None => {
                let first: u8 = if default { 88 } else { 89 };
                let picked = match (default, self.cfg.default_subnet) {
                    (true, Some(s)) => match conflict(&s) {
                        Some(other) => return Err(Error::SubnetOverlap { subnet: s, other }),
                        None => Some(s),
                    },
                    _ => (first..=254)
                        .map(|b| Cidr4::new(Ipv4Addr::new(10, b, 0, 0), 16))
                        .find(|c| conflict(c).is_none()),
                };
                picked.ok_or_else(|| Error::NoFreeSubnet(name.to_string()))?
            }
        };
        let v6 = if opts.ipv6 {
            let routes6 = Netlink::open_host()
                .and_then(|mut nl| nl.routes6())
                .map_err(nl_err("listing host IPv6 routes"))?;
            let is_ours6 = |c: &Cidr6| existing.iter().any(|n| n.subnet6 == Some(*c));
            let conflict6 = |c: &Cidr6| -> Option<String> {
                if let Some(n) = existing
                    .iter()
                    .find(|n| n.subnet6.is_some_and(|s| s.overlaps(c)))
                {
                    return Some(format!(
                        "network {} ({})",
                        n.name,
                        n.subnet6.expect("checked")
                    ));
                }
                routes6
                    .iter()
                    .map(|r| Cidr6::new(r.dst, r.prefix))
                    .find(|r| r.prefix > 0 && r.overlaps(c) && !is_ours6(r))
                    .map(|r| format!("host route {r}"))
            };
            let s6 = match subnet6 {
                Some(s6) => {
                    if let Some(other) = conflict6(&s6) {
                        return Err(Error::SubnetOverlap6 { subnet: s6, other });
                    }
                    s6
                }
                None => {
                    // RFC 4193: fd00::/8 with a random 40-bit global ID, subnet ID 0.
                    let mut picked = None;
                    for _ in 0..16 {
                        let g = u64::from_str_radix(&random_hex(5)?, 16).unwrap_or(0);
                        let addr = (0xfdu128 << 120) | ((g as u128) << 80);
                        let c = Cidr6::new(Ipv6Addr::from(addr), 64);
                        if conflict6(&c).is_none() {
                            picked = Some(c);
                            break;
                        }
                    }
                    picked.ok_or_else(|| Error::NoFreeSubnet(name.to_string()))?
                }
            };
            let g6 = match gateway6 {
                Some(g) => {
                    let gu = u128::from(g);
                    if !s6.contains(g) || gu == s6.first() {
                        return Err(invalid(
                            "gateway",
                            &g.to_string(),
                            format!("not a usable address of {s6}"),
                        ));
                    }
                    g
                }
                None => Ipv6Addr::from(s6.first() + 1),
            };
            Some((s6, g6))
        } else {
            None
        };
        let gateway = match gateway {
            Some(g) => {
                let gu = u32::from(g);
                if !subnet.contains(g) || gu == subnet.first() || gu == subnet.last() {
                    return Err(invalid(
                        "gateway",
                        &g.to_string(),
                        format!("not a usable address of {subnet}"),
                    ));
                }
                g
            }
            None => Ipv4Addr::from(subnet.first() + 1),
        };
        if let Some(r) = ip_range {
            if !subnet.covers(&r) {
                return Err(invalid(
                    "ip range",
                    &r.to_string(),
                    format!("not inside the subnet {subnet}"),
                ));
            }
        }
        let created = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let mut info = NetworkInfo {
            name: name.to_string(),
            id: id.clone(),
            driver: "bridge".into(),
            bridge: String::new(),
            subnet,
            gateway,
            ip_range,
            internal: opts.internal,
            ipv6: v6.is_some(),
            subnet6: v6.map(|v| v.0),
            gateway6: v6.map(|v| v.1),
            mtu,
            nft_table: String::new(),
            labels: opts.labels.clone(),
            options: opts.options.clone(),
            created,
            endpoints: Vec::new(),
            checked_boot: Some(boot_start()),
        };
        // The kernel side: a name found free can be taken by another state root before we
        // make it (two roots with colliding names starting at once); that one is then
        // someone else's, and the next pick passes it.
        let mut made = None;
        for _ in 0..3 {
            let (table, new_table, bridge) = match picked.take() {
                Some(p) => p,
                None => self.pick_names(default, &bridge, &id, &existing)?,
            };
            info.nft_table = table;
            info.bridge = bridge;
            match self.ensure_kernel(&info, new_table, true) {
                Ok(m) => {
                    made = Some(m);
                    break;
                }
                Err(Error::NameTaken { .. }) if default => continue,
                Err(e) => return Err(e),
            }
        }
        let Some(made) = made else {
            return Err(Error::NameTaken {
                what: "bridge",
                name: info.bridge,
                by: "another state root starting at the same time".into(),
            });
        };
        let recorded = (|| -> Result<()> {
            tx.execute(
                "INSERT INTO net_networks (name, id, bridge, subnet, gateway, ip_range, internal, ipv6,
                    mtu, nft_table, labels, options, created)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
                params![
                    info.name,
                    info.id,
                    info.bridge,
                    info.subnet.to_string(),
                    info.gateway.to_string(),
                    info.ip_range.map(|r| r.to_string()),
                    info.internal,
                    info.ipv6,
                    info.mtu,
                    info.nft_table,
                    serde_json::to_string(&info.labels).unwrap_or_default(),
                    serde_json::to_string(&info.options).unwrap_or_default(),
                    info.created,
                ],
            )?;
            if let Some((s6, g6)) = v6 {
                tx.execute(
                    "INSERT INTO net_networks6 (network, subnet, gateway) VALUES (?1, ?2, ?3)",
                    params![info.name, s6.to_string(), g6.to_string()],
                )?;
            }
            record_checked(&tx, &info.name)?;
            Ok(())
        })();
        // If the rows do not go in, what was made for them is undone, so a failed create
        // leaves nothing.
        if let Err(e) = recorded.and_then(|()| tx.commit().map_err(Error::from)) {
            undo_kernel(&info, made);
            return Err(e);
        }
        Ok(info)
    }

    /// Makes the bridge, sysctls and nftables state of `n` exist, and returns what it made.
    /// `new_table`, `new_bridge`: the names were just picked (free, see "Whose names"), so
    /// finding either taken means another root took it meanwhile ([`Error::NameTaken`]).
    /// Otherwise the network is recorded already (brought back after a reboot, or a new one
    /// in the root's table): what exists is adopted if it is this owner's or unmarked, and
    /// marked as this instance's. On failure it undoes what it made.
    fn ensure_kernel(&self, n: &NetworkInfo, new_table: bool, new_bridge: bool) -> Result<Made> {
        let mut made = Made::default();
        let r = self.ensure_kernel_steps(n, new_table, new_bridge, &mut made);
        if r.is_err() {
            undo_kernel(n, made);
        } else if made.table {
            // A failed sweep leaves others' leftovers as they were; this network is made.
            let _ = self.sweep_orphans();
        }
        r.map(|()| made)
    }

    fn ensure_kernel_steps(
        &self,
        n: &NetworkInfo,
        new_table: bool,
        new_bridge: bool,
        made: &mut Made,
    ) -> Result<()> {
        let marker = self.marker()?;
        let taken = |what: &'static str, name: &str, c: Claim| Error::NameTaken {
            what,
            name: name.to_string(),
            by: c.by(),
        };
        match nft::run(&table_script(&n.nft_table, &marker)) {
            Ok(_) => made.table = true,
            Err(e) if nft::is_exists(&e) => {
                let claim = self.table_claim(&n.nft_table)?;
                if new_table || matches!(claim, Claim::Theirs(_)) {
                    return Err(taken("nftables table", &n.nft_table, claim));
                }
                if n.subnet6.is_some() {
                    upgrade_table_v6(&n.nft_table)?;
                }
            }
            Err(e) => return Err(Error::Nft(e)),
        }
        nft::run(&network_elements("add", n)).map_err(Error::Nft)?;
        made.elements = true;
        let mut nl = Netlink::open_host().map_err(nl_err("netlink socket"))?;
        let mut claim = Claim::Free;
        match nl.create_bridge(&n.bridge, n.link_mtu()) {
            Ok(()) => made.bridge = true,
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                claim = self.link_claim(&mut nl, &n.bridge)?;
                if new_bridge || matches!(claim, Claim::Theirs(_)) {
                    return Err(taken("bridge", &n.bridge, claim));
                }
            }
            Err(e) => return Err(nl_err(format!("creating bridge {}", n.bridge))(e)),
        }
        let link = nl
            .index_of(&n.bridge)
            .map_err(nl_err("looking up the bridge"))?
            .ok_or_else(|| Error::Netlink {
                op: format!("bridge {} vanished", n.bridge),
                error: std::io::Error::from_raw_os_error(libc::ENODEV),
            })?;
        if claim != Claim::Mine {
            // The kernel takes no alias when it creates a link: a second message. A hako
            // killed between the two leaves an unmarked bridge, which is passed over as
            // someone else's.
            nl.set_alias(link, &marker)
                .map_err(nl_err(format!("marking {}", n.bridge)))?;
        }
        nl.add_addr4(link, n.gateway, n.subnet.prefix)
            .map_err(nl_err(format!("adding {} to {}", n.gateway, n.bridge)))?;
        if let (Some(s6), Some(g6)) = (n.subnet6, n.gateway6) {
            // A host whose default is IPv6 off for new interfaces would refuse the address.
            write_sysctl(
                &format!("/proc/sys/net/ipv6/conf/{}/disable_ipv6", n.bridge),
                "0",
            )?;
            nl.add_addr6(link, g6, s6.prefix)
                .map_err(nl_err(format!("adding {g6} to {}", n.bridge)))?;
            if !n.internal {
                write_sysctl("/proc/sys/net/ipv6/conf/all/forwarding", "1")?;
            }
        }
        nl.set_up(link)
            .map_err(nl_err(format!("setting {} up", n.bridge)))?;
        // route_localnet: lets DNATed packets from 127.0.0.1 leave through the bridge (the
        // masquerade rule then gives them the gateway's address).
        write_sysctl(
            &format!("/proc/sys/net/ipv4/conf/{}/route_localnet", n.bridge),
            "1",
        )?;
        if !n.internal {
            write_sysctl("/proc/sys/net/ipv4/ip_forward", "1")?;
        }
        Ok(())
    }

    /// Removes a recorded network's kernel state: its bridge and its elements (or, if `last`,
    /// the whole table). Only what is this owner's or unmarked goes
    /// (another owner's that took the name after a reboot stays); missing pieces are fine.
    ///
    /// The bridge goes first: `remove` runs this before its commit, so a hako killed halfway
    /// leaves the network recorded with part of its kernel state gone. Without its bridge, the
    /// next `attach` makes the whole network again (see `wire`); a bridge left without its
    /// elements would be trusted as it is, and its containers would have no NAT.
    fn teardown_kernel(&self, n: &NetworkInfo, last: bool) -> Result<()> {
        let mut nl = Netlink::open_host().map_err(nl_err("netlink socket"))?;
        if !matches!(
            self.link_claim(&mut nl, &n.bridge)?,
            Claim::Free | Claim::Theirs(_)
        ) {
            nl.delete_link(&n.bridge)
                .map_err(nl_err(format!("deleting bridge {}", n.bridge)))?;
        }
        match self.table_claim(&n.nft_table)? {
            Claim::Free | Claim::Theirs(_) => {}
            _ if last => nft_delete(&format!("delete table inet {}", n.nft_table))?,
            _ => nft_delete(&network_elements("delete", n))?,
        }
        Ok(())
    }

    /// All networks.
    pub fn list(&self) -> Result<Vec<NetworkInfo>> {
        self.list_in(self.conn)
    }

    fn list_in(&self, conn: &Connection) -> Result<Vec<NetworkInfo>> {
        let mut st = conn.prepare_cached(
            "SELECT name, id, bridge, subnet, gateway, ip_range, internal, ipv6, mtu, nft_table,
                    labels, options, created,
                    (SELECT value FROM net_meta WHERE key = 'checked:' || name)
             FROM net_networks ORDER BY name",
        )?;
        let rows = st.query_map([], row_to_network)?;
        let mut out = Vec::new();
        for r in rows {
            let mut n = r?;
            load_v6(conn, &mut n)?;
            n.endpoints = endpoints(conn, &n.name)?;
            out.push(n);
        }
        Ok(out)
    }

    /// The networks a container is attached to, each with its endpoint there.
    pub fn container_endpoints(&self, container_id: &str) -> Result<Vec<(NetworkInfo, Endpoint)>> {
        let mut out = Vec::new();
        for n in self.list()? {
            if let Some(e) = n
                .endpoints
                .iter()
                .find(|e| e.container_id == container_id)
                .cloned()
            {
                out.push((n, e));
            }
        }
        Ok(out)
    }

    /// One network by name, or [`Error::NetworkNotFound`]. A unique ID prefix also works.
    pub fn inspect(&self, name: &str) -> Result<NetworkInfo> {
        let mut n = self.lookup(name)?;
        n.endpoints = endpoints(self.conn, &n.name)?;
        Ok(n)
    }

    /// [`Networks::inspect`] without the endpoints, which an attach does not need (and which
    /// grow with every container on the network).
    fn lookup(&self, name: &str) -> Result<NetworkInfo> {
        let mut n = self
            .conn
            .query_row(
                "SELECT name, id, bridge, subnet, gateway, ip_range, internal, ipv6, mtu,
                        nft_table, labels, options, created,
                        (SELECT value FROM net_meta WHERE key = 'checked:' || name)
                 FROM net_networks WHERE name = ?1
                    OR (length(?1) >= 3 AND id LIKE ?1 || '%'
                        AND (SELECT count(*) FROM net_networks WHERE id LIKE ?1 || '%') = 1)",
                [name],
                row_to_network,
            )
            .optional()?
            .ok_or_else(|| Error::NetworkNotFound(name.to_string()))?;
        load_v6(self.conn, &mut n)?;
        Ok(n)
    }

    /// Removes a network that no container is attached to: its bridge, its nftables elements,
    /// and the table itself when no other network uses it.
    pub fn remove(&self, name: &str) -> Result<()> {
        let n = self.inspect(name)?;
        let tx = self.immediate()?;
        let users: Vec<String> = {
            let mut st = tx.prepare("SELECT container_id FROM net_leases WHERE network = ?1")?;
            let v = st
                .query_map([&n.name], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            v
        };
        if !users.is_empty() {
            return Err(Error::NetworkInUse {
                name: n.name,
                containers: users.join(", "),
            });
        }
        tx.execute("DELETE FROM net_networks WHERE name = ?1", [&n.name])?;
        tx.execute(
            "DELETE FROM net_meta WHERE key = 'checked:' || ?1",
            [&n.name],
        )?;
        tx.execute("DELETE FROM net_networks6 WHERE network = ?1", [&n.name])?;
        // Stopped containers connected to it start without it.
        tx.execute("DELETE FROM net_connects WHERE network = ?1", [&n.name])?;
        let others: i64 = tx.query_row(
            "SELECT count(*) FROM net_networks WHERE nft_table = ?1",
            [&n.nft_table],
            |r| r.get(0),
        )?;
        self.teardown_kernel(&n, others == 0)?;
        tx.commit()?;
        self.stop_idle_dns()
    }

    /// The network `name` (the default network is created on first use), and whether its
    /// bridge was made now.
    fn network_for_attach(&self, name: &str) -> Result<(NetworkInfo, bool)> {
        match self.lookup(name) {
            Err(Error::NetworkNotFound(_)) if name == self.cfg.default_network => {
                match self.create_inner(name, &CreateOptions::default(), true) {
                    Ok(n) => Ok((n, true)),
                    // Another hako created it meanwhile.
                    Err(Error::NetworkExists(_)) => Ok((self.lookup(name)?, false)),
                    Err(e) => Err(e),
                }
            }
            r => r.map(|n| (n, false)),
        }
    }

    /// Wires the network namespace of process `pid` (`/proc/PID/ns/net`) to `network`.
    ///
    /// In order: lease an address and host ports (one transaction; a host port that another
    /// container publishes or a host socket listens on fails here), make sure the bridge and
    /// table exist (they vanish on reboot), create the veth pair with the container end
    /// directly in the namespace, configure address, loopback and default route there, and add
    /// the DNAT map elements. Any failure undoes all of it.
    pub fn attach(
        &self,
        network: &str,
        container_id: &str,
        pid: i32,
        opts: &AttachOptions,
    ) -> Result<Attachment> {
        let (net, created) = self.network_for_attach(network)?;
        let ns = File::open(format!("/proc/{pid}/ns/net"))
            .map_err(|error| Error::Netns { pid, error })?;
        let (want_ip, want_ip6) = match opts.ip {
            None => (None, opts.ip6),
            Some(IpAddr::V4(ip)) => (Some(ip), opts.ip6),
            Some(IpAddr::V6(ip)) => (None, Some(ip)),
        };
        let want_mac = opts
            .mac
            .as_deref()
            .map(|m| {
                parse_mac(m).ok_or_else(|| {
                    invalid("MAC address", m, "expected a unicast aa:bb:cc:dd:ee:ff")
                })
            })
            .transpose()?;
        for p in &opts.ports {
            if let Some(IpAddr::V6(a)) = p.host_ip {
                if a.is_loopback() {
                    if p.proto == Proto::Udp || self.cfg.proxy_server.is_none() {
                        return Err(invalid(
                            "host address",
                            "::1",
                            "only TCP ports can be published on the IPv6 loopback address \
                             (through hako-proxy: the kernel does not forward IPv6 loopback \
                             connections to a container)",
                        ));
                    }
                    continue;
                }
                if net.subnet6.is_none() {
                    return Err(invalid(
                        "host address",
                        &a.to_string(),
                        format!(
                            "publishing on an IPv6 host address needs an IPv6 network \
                             (network {} has no IPv6 subnet; create one with --ipv6)",
                            net.name
                        ),
                    ));
                }
            }
        }

        let (mut att, rows) =
            self.lease(&net, container_id, (want_ip, want_ip6), want_mac, opts)?;
        let host_veth = att.host_veth.clone();
        let undo = |e: Error| -> Error {
            let _ = Netlink::open_host().and_then(|mut nl| nl.delete_link(&host_veth));
            let _ = self.forget(container_id, Some(&net.name));
            e
        };
        match self.wire(&net, &ns, &att) {
            Ok(recreated) => {
                att.new_bridge = (created || recreated).then(|| net.bridge.clone());
            }
            Err(e) => return Err(undo(e)),
        }
        if net.name != self.cfg.default_network {
            match self.ensure_dns(&net) {
                Ok(d) => att.dns = d,
                Err(e) => return Err(undo(e)),
            }
        }
        if let Err(e) = port_elements(true, &rows) {
            // The pany and pip maps are two transactions: the first may have gone in.
            let _ = port_elements(false, &rows);
            return Err(undo(e));
        }
        if let Err(e) = self.start_proxies(&net.name, container_id, &rows) {
            let _ = port_elements(false, &rows);
            return Err(undo(e));
        }
        Ok(att)
    }

    /// Records that a container is connected to `network` (`network connect`), so that each
    /// start of the container attaches it there too, as Docker keeps a connection in the
    /// container's configuration. Fixed addresses are checked as for `create`.
    pub fn record_connect(
        &self,
        container_id: &str,
        network: &str,
        ip: Option<Ipv4Addr>,
        ip6: Option<Ipv6Addr>,
        aliases: &[String],
    ) -> Result<()> {
        let net = self.inspect(network)?;
        self.check_fixed_addresses(container_id, &net.name, ip, ip6)?;
        self.conn
            .execute(
                "INSERT INTO net_connects (container_id, network, ip, ip6, aliases)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    container_id,
                    net.name,
                    ip.map(|i| i.to_string()),
                    ip6.map(|i| i.to_string()),
                    serde_json::to_string(aliases).unwrap_or_default(),
                ],
            )
            .map_err(|e| {
                if is_busy_or_constraint(&e) {
                    Error::AlreadyAttached {
                        container: container_id.to_string(),
                        network: net.name.clone(),
                    }
                } else {
                    e.into()
                }
            })?;
        Ok(())
    }

    /// Drops the record of [`Networks::record_connect`]; `false` if there was none.
    pub fn forget_connect(&self, container_id: &str, network: &str) -> Result<bool> {
        let name = self.inspect(network).map(|n| n.name)?;
        Ok(self.conn.execute(
            "DELETE FROM net_connects WHERE container_id = ?1 AND network = ?2",
            [container_id, &name],
        )? > 0)
    }

    /// Drops every connection record of a container (it is being removed).
    pub fn forget_connects(&self, container_id: &str) -> Result<()> {
        self.conn.execute(
            "DELETE FROM net_connects WHERE container_id = ?1",
            [container_id],
        )?;
        Ok(())
    }

    /// The networks a container was connected to with [`Networks::record_connect`], in the
    /// order of connection, each with the options to attach it with.
    pub fn recorded_connects(&self, container_id: &str) -> Result<Vec<(String, AttachOptions)>> {
        let mut st = self.conn.prepare_cached(
            "SELECT network, ip, ip6, aliases FROM net_connects WHERE container_id = ?1
             ORDER BY rowid",
        )?;
        let v = st
            .query_map([container_id], |r| {
                let ip: Option<String> = r.get(1)?;
                let ip6: Option<String> = r.get(2)?;
                Ok((
                    r.get::<_, String>(0)?,
                    AttachOptions {
                        ip: ip.and_then(|s| s.parse().ok()),
                        ip6: ip6.and_then(|s| s.parse().ok()),
                        aliases: serde_json::from_str(&r.get::<_, String>(3)?).unwrap_or_default(),
                        ..Default::default()
                    },
                ))
            })?
            .collect::<rusqlite::Result<_>>()?;
        Ok(v)
    }

    /// Checks fixed addresses (`--ip`, `--ip6`) against `network` before a container is
    /// created, so `create` and `run` refuse them with nothing made: outside the range or
    /// subnet, or leased now. The lease at `attach` stays the authority (it may still find
    /// an address taken meanwhile). A default network not made yet has nothing to check, and
    /// the addresses `container_id` holds itself are not taken.
    pub fn check_fixed_addresses(
        &self,
        container_id: &str,
        network: &str,
        ip: Option<Ipv4Addr>,
        ip6: Option<Ipv6Addr>,
    ) -> Result<()> {
        let net = match self.inspect(network) {
            Err(Error::NetworkNotFound(_)) if network == self.cfg.default_network => return Ok(()),
            r => r?,
        };
        if let Some(ip) = ip {
            let range = net.ip_range.unwrap_or(net.subnet);
            let u = u32::from(ip);
            if !range.contains(ip) || u == net.subnet.first() || u == net.subnet.last() {
                return Err(Error::IpOutOfRange {
                    ip,
                    network: net.name,
                    range,
                });
            }
            let others = || {
                net.endpoints
                    .iter()
                    .filter(|e| e.container_id != container_id)
            };
            if ip == net.gateway || others().any(|e| e.ip == ip) {
                return Err(Error::IpInUse {
                    ip,
                    network: net.name,
                });
            }
        }
        if let Some(ip6) = ip6 {
            let Some(s6) = net.subnet6 else {
                return Err(Error::Ip6OutOfRange {
                    ip: ip6,
                    network: net.name,
                    subnet: "it has none: create it with --ipv6".into(),
                });
            };
            if !s6.contains(ip6) || u128::from(ip6) == s6.first() {
                return Err(Error::Ip6OutOfRange {
                    ip: ip6,
                    network: net.name,
                    subnet: s6.to_string(),
                });
            }
            let mut others = net
                .endpoints
                .iter()
                .filter(|e| e.container_id != container_id);
            if net.gateway6 == Some(ip6) || others.any(|e| e.ip6 == Some(ip6)) {
                return Err(Error::Ip6InUse {
                    ip: ip6,
                    network: net.name,
                });
            }
        }
        Ok(())
    }

    /// Starts a `hako-proxy` for each port of `rows` on `[::1]` and records it.
    fn start_proxies(&self, network: &str, container_id: &str, rows: &[PortRow]) -> Result<()> {
        let loopback: Vec<&PortRow> = rows
            .iter()
            .filter(|r| matches!(r.host_ip, IpAddr::V6(a) if a.is_loopback()))
            .collect();
        if loopback.is_empty() {
            return Ok(());
        }
        let exe = self
            .cfg
            .proxy_server
            .as_deref()
            .ok_or(Error::Unsupported("publishing on [::1] without hako-proxy"))?;
        let db = self
            .conn
            .path()
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
            .ok_or_else(|| Error::Dns("the proxy needs an on-disk state database".into()))?;
        for r in loopback {
            let listen = std::net::SocketAddr::new(r.host_ip, r.host_port);
            let target = std::net::SocketAddr::new(IpAddr::V4(r.container_ip), r.container_port);
            let pid = host::run(|| proxy::spawn(exe, &db, container_id, listen, target))
                .map_err(|e| Error::Dns(format!("starting hako-proxy: {e}")))??;
            let st = dns::start_time(pid).unwrap_or(0);
            if let Err(e) = self.conn.execute(
                "INSERT OR REPLACE INTO net_proxies (container_id, network, host_port, pid, start_time)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![container_id, network, r.host_port, pid, st],
            ) {
                dns::kill(pid, st);
                return Err(e.into());
            }
        }
        Ok(())
    }

    /// The database half of `attach`: address, MAC, interface name and host ports.
    fn lease(
        &self,
        net: &NetworkInfo,
        container_id: &str,
        (want_ip, want_ip6): (Option<Ipv4Addr>, Option<Ipv6Addr>),
        want_mac: Option<[u8; 6]>,
        opts: &AttachOptions,
    ) -> Result<(Attachment, Vec<PortRow>)> {
        if let (Some(ip), None) = (want_ip6, net.subnet6) {
            return Err(Error::Ip6OutOfRange {
                ip,
                network: net.name.clone(),
                subnet: "it has none: create it with --ipv6".into(),
            });
        }
        let tx = self.immediate()?;
        if tx
            .query_row(
                "SELECT 1 FROM net_leases WHERE network = ?1 AND container_id = ?2",
                [&net.name, container_id],
                |_| Ok(()),
            )
            .optional()?
            .is_some()
        {
            return Err(Error::AlreadyAttached {
                container: container_id.to_string(),
                network: net.name.clone(),
            });
        }
        let used: HashSet<u32> = {
            let mut st = tx.prepare_cached("SELECT ip FROM net_leases WHERE network = ?1")?;
            let v = st
                .query_map([&net.name], |r| r.get::<_, String>(0))?
                .filter_map(|r| r.ok()?.parse::<Ipv4Addr>().ok().map(u32::from))
                .collect();
            v
        };
        let range = net.ip_range.unwrap_or(net.subnet);
        let reserved = |ip: u32| {
            ip == net.subnet.first() || ip == net.subnet.last() || ip == u32::from(net.gateway)
        };
        let ip = match want_ip {
            Some(ip) => {
                if !range.contains(ip)
                    || reserved(u32::from(ip)) && u32::from(ip) != u32::from(net.gateway)
                {
                    return Err(Error::IpOutOfRange {
                        ip,
                        network: net.name.clone(),
                        range,
                    });
                }
                if used.contains(&u32::from(ip)) || ip == net.gateway {
                    return Err(Error::IpInUse {
                        ip,
                        network: net.name.clone(),
                    });
                }
                ip
            }
            None => (range.first()..=range.last())
                .find(|a| !reserved(*a) && !used.contains(a))
                .map(Ipv4Addr::from)
                .ok_or_else(|| Error::NetworkFull(net.name.clone()))?,
        };
        let mac = want_mac.unwrap_or_else(|| {
            let o = ip.octets();
            [0x02, 0x42, o[0], o[1], o[2], o[3]]
        });
        let interface = {
            let mut st =
                tx.prepare_cached("SELECT interface FROM net_leases WHERE container_id = ?1")?;
            let taken: HashSet<String> = st
                .query_map([container_id], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            (0..)
                .map(|i| format!("eth{i}"))
                .find(|n| !taken.contains(n))
                .expect("an unbounded range has a free name")
        };
        let host_veth = format!(
            "{}{:08x}",
            self.cfg.veth_prefix,
            fnv(&format!("{}/{}", net.id, container_id))
        );
        tx.execute(
            "INSERT INTO net_leases (network, container_id, ip, mac, interface, host_veth, aliases)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                net.name,
                container_id,
                ip.to_string(),
                fmt_mac(&mac),
                interface,
                host_veth,
                serde_json::to_string(&opts.aliases).unwrap_or_default(),
            ],
        )
        .map_err(|e| {
            if is_busy_or_constraint(&e) {
                Error::IpInUse {
                    ip,
                    network: net.name.clone(),
                }
            } else {
                e.into()
            }
        })?;
        let ip6 = match (net.subnet6, net.gateway6) {
            (Some(s6), Some(g6)) => {
                let used6: HashSet<u128> = {
                    let mut st =
                        tx.prepare_cached("SELECT ip FROM net_leases6 WHERE network = ?1")?;
                    let v = st
                        .query_map([&net.name], |r| r.get::<_, String>(0))?
                        .filter_map(|r| r.ok()?.parse::<Ipv6Addr>().ok().map(u128::from))
                        .collect();
                    v
                };
                let ip6 = match want_ip6 {
                    Some(ip6) => {
                        let a = u128::from(ip6);
                        // The subnet's first address is its subnet-router anycast address.
                        if !s6.contains(ip6) || a == s6.first() {
                            return Err(Error::Ip6OutOfRange {
                                ip: ip6,
                                network: net.name.clone(),
                                subnet: s6.to_string(),
                            });
                        }
                        if a == u128::from(g6) || used6.contains(&a) {
                            return Err(Error::Ip6InUse {
                                ip: ip6,
                                network: net.name.clone(),
                            });
                        }
                        ip6
                    }
                    // Lowest free first, like the IPv4 side; a bounded scan, since a /64 has
                    // more addresses than any bridge has ports.
                    None => (s6.first() + 1..=s6.last())
                        .take(used6.len() + 2)
                        .find(|a| *a != u128::from(g6) && !used6.contains(a))
                        .map(Ipv6Addr::from)
                        .ok_or_else(|| Error::NetworkFull(net.name.clone()))?,
                };
                tx.execute(
                    "INSERT INTO net_leases6 (network, container_id, ip) VALUES (?1, ?2, ?3)",
                    params![net.name, container_id, ip6.to_string()],
                )
                .map_err(|e| {
                    if is_busy_or_constraint(&e) {
                        Error::Ip6InUse {
                            ip: ip6,
                            network: net.name.clone(),
                        }
                    } else {
                        e.into()
                    }
                })?;
                Some((ip6, s6.prefix, g6))
            }
            _ => None,
        };
        {
            let mut st = tx.prepare_cached(
                "INSERT OR IGNORE INTO net_names (network, container_id, ord, name)
                 VALUES (?1, ?2, ?3, ?4)",
            )?;
            let names = opts.names.iter().chain(&opts.aliases);
            for (ord, name) in names.enumerate() {
                let name = name.trim_end_matches('.').to_ascii_lowercase();
                if !name.is_empty() {
                    st.execute(params![net.name, container_id, ord as i64, name])?;
                }
            }
        }
        let mut rows = Vec::new();
        for spec in &opts.ports {
            let host_ip = spec.host_ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
            let port = pick_port(&tx, spec, host_ip)?;
            tx.execute(
                "INSERT INTO net_ports (proto, host_ip, host_port, container_id, network,
                    container_ip, container_port, nft_table)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    spec.proto.as_str(),
                    host_ip.to_string(),
                    port,
                    container_id,
                    net.name,
                    ip.to_string(),
                    spec.container_port,
                    net.nft_table,
                ],
            )
            .map_err(|e| {
                if is_busy_or_constraint(&e) {
                    Error::PortAllocated {
                        addr: host_ip,
                        port,
                    }
                } else {
                    e.into()
                }
            })?;
            rows.push(PortRow {
                proto: spec.proto,
                host_ip,
                host_port: port,
                container_ip: ip,
                container_ip6: ip6.map(|v| v.0),
                container_port: spec.container_port,
                nft_table: net.nft_table.clone(),
            });
        }
        tx.commit()?;
        let att = Attachment {
            network: net.name.clone(),
            ip,
            prefix: net.subnet.prefix,
            gateway: net.gateway,
            ip6,
            mac: fmt_mac(&mac),
            interface,
            host_veth,
            dns: None,
            new_bridge: None,
            ports: rows
                .iter()
                .map(|r| PublishedPort {
                    host_ip: r.host_ip,
                    host_port: r.host_port,
                    container_port: r.container_port,
                    proto: r.proto,
                })
                .collect(),
        };
        Ok((att, rows))
    }

    /// The kernel half of `attach`: veth pair, addresses, routes.
    /// Returns whether the bridge had to be made again (after a reboot).
    fn wire(&self, net: &NetworkInfo, ns: &File, att: &Attachment) -> Result<bool> {
        let mut nl = Netlink::open_host().map_err(nl_err("netlink socket"))?;
        let mut recreated = false;
        let found = nl
            .index_of(&net.bridge)
            .map_err(nl_err("looking up the bridge"))?;
        let bridge = match found {
            Some(l) if net.checked_boot.is_some_and(same_boot) => l,
            _ => {
                // After a reboot the database outlives the kernel state, and another state
                // root whose names collide with ours may have brought up a bridge or table
                // of our names first: made or adopted again, never someone else's. Once per
                // boot; then an index lookup is all.
                let made = self.ensure_kernel(net, false, false)?;
                recreated = made.bridge;
                record_checked(self.conn, &net.name)?;
                nl.index_of(&net.bridge)
                    .map_err(nl_err("looking up the bridge"))?
                    .ok_or_else(|| Error::Netlink {
                        op: format!("bridge {} vanished", net.bridge),
                        error: std::io::Error::from_raw_os_error(libc::ENODEV),
                    })?
            }
        };
        let mac = parse_mac(&att.mac).expect("we formatted it");
        let create = |nl: &mut Netlink| {
            nl.create_veth(
                &att.host_veth,
                bridge,
                net.link_mtu(),
                &att.interface,
                ns,
                mac,
            )
        };
        match create(&mut nl) {
            Ok(()) => {}
            // A leftover of a crashed run with the same name: replace it.
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                let _ = nl.delete_link(&att.host_veth);
                create(&mut nl).map_err(nl_err(format!("creating veth {}", att.host_veth)))?;
            }
            Err(e) => return Err(nl_err(format!("creating veth {}", att.host_veth))(e)),
        }
        let host = nl
            .index_of(&att.host_veth)
            .map_err(nl_err("looking up the veth"))?
            .ok_or_else(|| Error::Netlink {
                op: format!("veth {} vanished", att.host_veth),
                error: std::io::Error::from_raw_os_error(libc::ENODEV),
            })?;
        nl.set_hairpin(host)
            .map_err(nl_err(format!("hairpin mode on {}", att.host_veth)))?;
        nl.set_addr_gen_none(host).map_err(nl_err(format!(
            "IPv6 address generation on {}",
            att.host_veth
        )))?;

        // Before the interface comes up, so IPv6 never starts on it; a user's
        // `--sysctl net.ipv6.conf.eth0.disable_ipv6=0` is written later, by the runtime, and
        // wins (`...conf.all.disable_ipv6=0` was seen not to re-enable it here).
        let mut cnl = netlink::in_netns(ns, || {
            if att.ip6.is_none() {
                netlink::disable_ipv6(&att.interface).map_err(nl_err(format!(
                    "disabling IPv6 on {} in the container",
                    att.interface
                )))?;
            }
            Netlink::open().map_err(nl_err("netlink socket in the container"))
        })
        .map_err(nl_err("entering the container's network namespace"))??;
        // The runtime brings loopback up itself; `network connect` of a container whose
        // runtime did not must still leave it usable. Up already is no error.
        cnl.set_up(netlink::LOOPBACK_INDEX)
            .map_err(nl_err("setting lo up"))?;
        let eth = cnl
            .index_of(&att.interface)
            .map_err(nl_err("container interface"))?
            .ok_or_else(|| Error::Netlink {
                op: format!("{} missing in the container", att.interface),
                error: std::io::Error::from_raw_os_error(libc::ENODEV),
            })?;
        cnl.add_addr4(eth, att.ip, att.prefix)
            .map_err(nl_err(format!("adding {} in the container", att.ip)))?;
        cnl.set_up(eth)
            .map_err(nl_err(format!("setting {} up", att.interface)))?;
        if let Some((ip6, prefix6, _)) = att.ip6 {
            cnl.add_addr6(eth, ip6, prefix6)
                .map_err(nl_err(format!("adding {ip6} in the container")))?;
        }
        if !net.internal {
            cnl.add_default_route4(eth, net.gateway, net.route_mtu())
                .map_err(nl_err("adding the default route in the container"))?;
            if let Some((_, _, g6)) = att.ip6 {
                // IPv6 needs at least 1280 on every link.
                let mtu6 = net.route_mtu().map(|m| m.max(1280));
                cnl.add_default_route6(eth, g6, mtu6)
                    .map_err(nl_err("adding the IPv6 default route in the container"))?;
            }
        }
        Ok(recreated)
    }

    /// Deletes database rows of a container (on one network, or all).
    fn forget(&self, container_id: &str, network: Option<&str>) -> Result<()> {
        let tx = self.immediate()?;
        let proxies: Vec<(i64, i64)> = {
            let mut st = tx.prepare_cached(
                "DELETE FROM net_proxies WHERE container_id = ?1 AND (?2 IS NULL OR network = ?2)
                 RETURNING pid, start_time",
            )?;
            let v = st
                .query_map(params![container_id, network], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })?
                .collect::<rusqlite::Result<_>>()?;
            v
        };
        match network {
            Some(n) => {
                tx.execute(
                    "DELETE FROM net_leases WHERE container_id = ?1 AND network = ?2",
                    [container_id, n],
                )?;
                tx.execute(
                    "DELETE FROM net_ports WHERE container_id = ?1 AND network = ?2",
                    [container_id, n],
                )?;
                tx.execute(
                    "DELETE FROM net_names WHERE container_id = ?1 AND network = ?2",
                    [container_id, n],
                )?;
                tx.execute(
                    "DELETE FROM net_leases6 WHERE container_id = ?1 AND network = ?2",
                    [container_id, n],
                )?;
            }
            None => {
                tx.execute(
                    "DELETE FROM net_leases WHERE container_id = ?1",
                    [container_id],
                )?;
                tx.execute(
                    "DELETE FROM net_ports WHERE container_id = ?1",
                    [container_id],
                )?;
                tx.execute(
                    "DELETE FROM net_names WHERE container_id = ?1",
                    [container_id],
                )?;
                tx.execute(
                    "DELETE FROM net_leases6 WHERE container_id = ?1",
                    [container_id],
                )?;
            }
        }
        tx.commit()?;
        for (pid, st) in proxies {
            dns::kill(pid, st);
        }
        self.stop_idle_dns()
    }

    /// Releases everything of a container on every network: DNAT elements, veth pairs, leases
    /// and port rows. Idempotent; kernel state goes first, so a crash halfway leaves rows that
    /// the next `detach` or `reconcile` finishes.
    ///
    /// Cost: deleting a veth waits for the kernel's RCU grace periods, about 20-35 ms on the
    /// development VM (`ip link del` takes as long); everything else is under 1 ms. When the
    /// container's namespace is already gone, the kernel has removed the pair itself and this
    /// is fast. The engine should therefore call `detach` after it has reported the
    /// container's exit (its exit code does not depend on it).
    pub fn detach(&self, container_id: &str) -> Result<()> {
        self.detach_inner(container_id, true)
    }

    /// Like [`Networks::detach`], for a container whose network namespace is already gone:
    /// the kernel deletes both ends of its veth pairs with the namespace, and deleting them
    /// ourselves would wait on the kernel's asynchronous namespace cleanup for tens of
    /// milliseconds (measured: ~40 ms per `run --rm`), so only hako's own state is released.
    pub fn release_exited(&self, container_id: &str) -> Result<()> {
        self.detach_inner(container_id, false)
    }

    fn detach_inner(&self, container_id: &str, delete_links: bool) -> Result<()> {
        port_elements(false, &self.port_rows(container_id)?)?;
        let veths: Vec<String> = {
            let mut st = self
                .conn
                .prepare_cached("SELECT host_veth FROM net_leases WHERE container_id = ?1")?;
            let v = st
                .query_map([container_id], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            v
        };
        if delete_links && !veths.is_empty() {
            let mut nl = Netlink::open_host().map_err(nl_err("netlink socket"))?;
            for v in &veths {
                // Gone already when the container's namespace died with its last process.
                nl.delete_link(v).map_err(nl_err(format!("deleting {v}")))?;
            }
        }
        self.forget(container_id, None)
    }

    /// Takes a running container off one network (`network disconnect`): its DNAT elements
    /// there, the veth pair (the interface vanishes from the container) and the lease.
    pub fn detach_from(&self, container_id: &str, network: &str) -> Result<()> {
        let net = self.inspect(network)?;
        let veth: Option<String> = self
            .conn
            .query_row(
                "SELECT host_veth FROM net_leases WHERE container_id = ?1 AND network = ?2",
                [container_id, &net.name],
                |r| r.get(0),
            )
            .optional()?;
        let Some(veth) = veth else {
            return Err(Error::NotAttached {
                container: container_id.to_string(),
                network: net.name,
            });
        };
        port_elements(false, &self.port_rows_on(container_id, Some(&net.name))?)?;
        Netlink::open_host()
            .and_then(|mut nl| nl.delete_link(&veth))
            .map_err(nl_err(format!("deleting {veth}")))?;
        self.forget(container_id, Some(&net.name))
    }

    /// Removes every user-defined network that no container is attached to (`network
    /// prune`); returns them. The default network stays.
    pub fn prune(&self) -> Result<Vec<NetworkInfo>> {
        let mut gone = Vec::new();
        for n in self.list()? {
            if n.name == self.cfg.default_network || !n.endpoints.is_empty() {
                continue;
            }
            // A stopped container connected to it still uses it, as in Docker.
            let recorded: bool = self.conn.query_row(
                "SELECT EXISTS (SELECT 1 FROM net_connects WHERE network = ?1)",
                [&n.name],
                |r| r.get(0),
            )?;
            if recorded {
                continue;
            }
            match self.remove(&n.name) {
                Ok(()) => gone.push(n),
                // A container attached meanwhile, or another prune was faster.
                Err(Error::NetworkInUse { .. } | Error::NetworkNotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(gone)
    }

    fn port_rows(&self, container_id: &str) -> Result<Vec<PortRow>> {
        self.port_rows_on(container_id, None)
    }

    fn port_rows_on(&self, container_id: &str, network: Option<&str>) -> Result<Vec<PortRow>> {
        let mut st = self.conn.prepare_cached(
            "SELECT p.proto, p.host_ip, p.host_port, p.container_ip, p.container_port,
                    p.nft_table, l6.ip
             FROM net_ports p LEFT JOIN net_leases6 l6
               ON l6.network = p.network AND l6.container_id = p.container_id
             WHERE p.container_id = ?1 AND (?2 IS NULL OR p.network = ?2)
             ORDER BY p.container_port, p.proto",
        )?;
        let rows = st
            .query_map(params![container_id, network], |r| {
                Ok(PortRow {
                    proto: Proto::parse(&r.get::<_, String>(0)?).unwrap_or(Proto::Tcp),
                    host_ip: r
                        .get::<_, String>(1)?
                        .parse()
                        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
                    host_port: r.get(2)?,
                    container_ip: r
                        .get::<_, String>(3)?
                        .parse()
                        .unwrap_or(Ipv4Addr::UNSPECIFIED),
                    container_port: r.get(4)?,
                    nft_table: r.get(5)?,
                    container_ip6: r.get::<_, Option<String>>(6)?.and_then(|s| s.parse().ok()),
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        Ok(rows)
    }

    /// The ports a container publishes (for `hako port` and the PORTS column of `ps`).
    pub fn ports(&self, container_id: &str) -> Result<Vec<PublishedPort>> {
        Ok(self
            .port_rows(container_id)?
            .into_iter()
            .map(|r| PublishedPort {
                host_ip: r.host_ip,
                host_port: r.host_port,
                container_port: r.container_port,
                proto: r.proto,
            })
            .collect())
    }

    /// Detaches every container that has network state but is not live any more (its `hako`
    /// process died): call at the start of commands, with the engine's liveness test.
    pub fn reconcile(&self, is_live: &dyn Fn(&str) -> bool) -> Result<()> {
        let ids: Vec<String> = {
            let mut st = self.conn.prepare(
                "SELECT container_id FROM net_leases UNION SELECT container_id FROM net_ports",
            )?;
            let v = st
                .query_map([], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            v
        };
        for id in ids.iter().filter(|id| !is_live(id)) {
            self.detach(id)?;
        }
        self.stop_idle_dns()
    }
}

fn row_to_network(r: &rusqlite::Row<'_>) -> rusqlite::Result<NetworkInfo> {
    let parse_err = |i: usize, s: &str| {
        rusqlite::Error::FromSqlConversionFailure(
            i,
            rusqlite::types::Type::Text,
            format!("bad value {s:?}").into(),
        )
    };
    let subnet: String = r.get(3)?;
    let gateway: String = r.get(4)?;
    let ip_range: Option<String> = r.get(5)?;
    Ok(NetworkInfo {
        name: r.get(0)?,
        id: r.get(1)?,
        driver: "bridge".into(),
        bridge: r.get(2)?,
        subnet: subnet.parse().map_err(|_| parse_err(3, &subnet))?,
        gateway: gateway.parse().map_err(|_| parse_err(4, &gateway))?,
        ip_range: match ip_range {
            Some(s) => Some(s.parse().map_err(|_| parse_err(5, &s))?),
            None => None,
        },
        internal: r.get(6)?,
        ipv6: r.get(7)?,
        subnet6: None,
        gateway6: None,
        mtu: r.get(8)?,
        nft_table: r.get(9)?,
        labels: serde_json::from_str(&r.get::<_, String>(10)?).unwrap_or_default(),
        options: serde_json::from_str(&r.get::<_, String>(11)?).unwrap_or_default(),
        created: r.get(12)?,
        endpoints: Vec::new(),
        checked_boot: r.get::<_, Option<String>>(13)?.and_then(|v| v.parse().ok()),
    })
}

fn load_v6(conn: &Connection, n: &mut NetworkInfo) -> Result<()> {
    let row: Option<(String, String)> = conn
        .prepare_cached("SELECT subnet, gateway FROM net_networks6 WHERE network = ?1")?
        .query_row([&n.name], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    if let Some((s, g)) = row {
        n.subnet6 = s.parse().ok();
        n.gateway6 = g.parse().ok();
    }
    Ok(())
}

fn endpoints(conn: &Connection, network: &str) -> Result<Vec<Endpoint>> {
    let mut st = conn.prepare_cached(
        "SELECT l.container_id, l.ip, l.mac, l.interface, l.host_veth, l.aliases, l6.ip
         FROM net_leases l LEFT JOIN net_leases6 l6
           ON l6.network = l.network AND l6.container_id = l.container_id
         WHERE l.network = ?1 ORDER BY l.container_id",
    )?;
    let v = st
        .query_map([network], |r| {
            Ok(Endpoint {
                container_id: r.get(0)?,
                ip: r
                    .get::<_, String>(1)?
                    .parse()
                    .unwrap_or(Ipv4Addr::UNSPECIFIED),
                mac: r.get(2)?,
                interface: r.get(3)?,
                host_veth: r.get(4)?,
                aliases: serde_json::from_str(&r.get::<_, String>(5)?).unwrap_or_default(),
                ip6: r.get::<_, Option<String>>(6)?.and_then(|s| s.parse().ok()),
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(v)
}

/// When this boot began, in Unix seconds: the realtime clock less the time since boot (which
/// counts suspended time too), two vDSO calls. It moves only when the clock is stepped.
fn boot_start() -> i64 {
    let now = |clock| {
        let mut t = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime writes one timespec we own.
        unsafe { libc::clock_gettime(clock, &mut t) };
        t.tv_sec
    };
    now(libc::CLOCK_REALTIME) - now(libc::CLOCK_BOOTTIME)
}

/// Whether a [`boot_start`] recorded earlier is this boot's (allowing for clock slewing; a
/// stepped clock only costs a check more).
fn same_boot(recorded: i64) -> bool {
    (recorded - boot_start()).abs() <= 2
}

/// Records that network `name`'s bridge and table are its own in this boot.
fn record_checked(conn: &Connection, name: &str) -> Result<()> {
    conn.execute(
        "INSERT OR REPLACE INTO net_meta (key, value) VALUES ('checked:' || ?1, ?2)",
        params![name, boot_start().to_string()],
    )?;
    Ok(())
}

/// Undoes what [`Networks::ensure_kernel`] made for `n` (and nothing it found).
fn undo_kernel(n: &NetworkInfo, made: Made) {
    if made.bridge {
        let _ = Netlink::open_host().and_then(|mut nl| nl.delete_link(&n.bridge));
    }
    if made.table {
        let _ = nft_delete(&format!("delete table inet {}", n.nft_table));
    } else if made.elements {
        let _ = nft_delete(&network_elements("delete", n));
    }
}

/// True if a host socket could bind `addr:port` now (nothing listens there); an address
/// that is not the host's is an error.
fn host_port_free(proto: Proto, addr: IpAddr, port: u16) -> Result<bool> {
    let sa = std::net::SocketAddr::new(addr, port);
    // std sets SO_REUSEADDR, so only a listener (not TIME_WAIT leftovers) makes this fail.
    let r = match proto {
        Proto::Tcp => TcpListener::bind(sa).map(drop),
        Proto::Udp => UdpSocket::bind(sa).map(drop),
    };
    match r {
        Ok(()) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::EADDRNOTAVAIL) => Err(invalid(
            "host address",
            &addr.to_string(),
            "not an address of this host",
        )),
        Err(_) => Ok(false),
    }
}

/// A port the kernel considers free right now (bind to port 0).
fn kernel_free_port(proto: Proto, addr: IpAddr) -> Result<Option<u16>> {
    let sa = std::net::SocketAddr::new(addr, 0);
    let r = match proto {
        Proto::Tcp => TcpListener::bind(sa).and_then(|l| l.local_addr()),
        Proto::Udp => UdpSocket::bind(sa).and_then(|l| l.local_addr()),
    };
    match r {
        Ok(a) => Ok(Some(a.port())),
        Err(e) if e.raw_os_error() == Some(libc::EADDRNOTAVAIL) => Err(invalid(
            "host address",
            &addr.to_string(),
            "not an address of this host",
        )),
        Err(_) => Ok(None),
    }
}

/// Chooses the host port for `spec`: free both in our table (no other container publishes it
/// on an overlapping address) and on the host (nothing listens).
fn pick_port(tx: &Transaction<'_>, spec: &PortSpec, host_ip: IpAddr) -> Result<u16> {
    let taken = |port: u16| -> Result<bool> {
        Ok(tx
            .prepare_cached(
                "SELECT 1 FROM net_ports WHERE proto = ?1 AND host_port = ?2
                 AND (host_ip = ?3 OR host_ip = '0.0.0.0' OR ?3 = '0.0.0.0')",
            )?
            .query_row(
                params![spec.proto.as_str(), port, host_ip.to_string()],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    };
    let (lo, hi) = spec.host_port;
    if lo == 0 {
        for _ in 0..32 {
            if let Some(p) = kernel_free_port(spec.proto, host_ip)? {
                if !taken(p)? {
                    return Ok(p);
                }
            }
        }
        return Err(Error::NoFreePort {
            lo: 1,
            hi: 65535,
            proto: spec.proto.as_str(),
        });
    }
    if lo == hi {
        if taken(lo)? || !host_port_free(spec.proto, host_ip, lo)? {
            return Err(Error::PortAllocated {
                addr: host_ip,
                port: lo,
            });
        }
        return Ok(lo);
    }
    for p in lo..=hi {
        if !taken(p)? && host_port_free(spec.proto, host_ip, p)? {
            return Ok(p);
        }
    }
    Err(Error::NoFreePort {
        lo,
        hi,
        proto: spec.proto.as_str(),
    })
}

/// The MTU of the link carrying the default route (Docker uses 1500; a smaller uplink MTU,
/// e.g. on a VPN or cloud VM, would otherwise black-hole large packets). 1500 if none.
fn uplink_mtu() -> Result<u32> {
    let mut nl = Netlink::open_host().map_err(nl_err("netlink socket"))?;
    let oif = nl
        .route_oif(Ipv4Addr::new(1, 1, 1, 1))
        .map_err(nl_err("looking up the default route"))?;
    let mtu = match oif {
        Some(i) => nl.mtu_of(i).map_err(nl_err("looking up the uplink"))?,
        None => None,
    };
    Ok(mtu.unwrap_or(1500))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_check_names_every_table_and_index() {
        let created: Vec<&str> = SCHEMA
            .split("IF NOT EXISTS ")
            .skip(1)
            .filter_map(|rest| rest.split_whitespace().next())
            .collect();
        let checked = SCHEMA_CURRENT;
        assert!(
            checked.contains(&format!("count(*) = {} ", created.len())),
            "{checked}"
        );
        for name in created {
            assert!(checked.contains(&format!("'{name}'")), "{name} unchecked");
        }
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        let current = |c: &rusqlite::Connection| -> bool {
            c.query_row(SCHEMA_CURRENT, [], |r| r.get(0)).unwrap()
        };
        assert!(!current(&conn));
        conn.execute_batch(SCHEMA).unwrap();
        assert!(current(&conn));
    }

    #[test]
    fn error_kinds_and_causes_said_once() {
        use hako_base::ErrorKind as K;
        assert_eq!(Error::NetworkNotFound("n".into()).kind(), K::NotFound);
        assert_eq!(Error::NetworkExists("n".into()).kind(), K::Conflict);
        let port = Error::PortAllocated {
            addr: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            port: 80,
        };
        assert_eq!(port.kind(), K::Conflict);
        let invalid = Error::InvalidPortSpec {
            spec: "x".into(),
            reason: "y".into(),
        };
        assert_eq!(invalid.kind(), K::Invalid);
        let denied = || std::io::Error::from_raw_os_error(libc::EACCES);
        for e in [
            Error::Netlink {
                op: "add link".into(),
                error: denied(),
            },
            Error::Netns {
                pid: 1,
                error: denied(),
            },
            Error::Io {
                path: "/proc/sys/x".into(),
                error: denied(),
            },
            Error::from(rusqlite::Error::InvalidQuery),
        ] {
            assert_eq!(e.kind(), K::Internal, "{e}");
            assert!(std::error::Error::source(&e).is_none(), "{e}");
            assert!(
                e.to_string().matches("Permission denied").count() <= 1,
                "{e}"
            );
        }
    }

    #[test]
    fn macs() {
        assert_eq!(
            parse_mac("02:42:0a:58:00:02"),
            Some([2, 0x42, 10, 88, 0, 2])
        );
        assert_eq!(fmt_mac(&[2, 0x42, 10, 88, 0, 2]), "02:42:0a:58:00:02");
        for bad in [
            "01:00:5e:00:00:01",
            "00:00:00:00:00:00",
            "02:42:0a:58:00",
            "zz:42:0a:58:00:02",
        ] {
            assert_eq!(parse_mac(bad), None, "{bad}");
        }
    }

    #[test]
    fn port_elements_in_register_layout() {
        let mut r = PortRow {
            proto: Proto::Tcp,
            host_ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            host_port: 8080,
            container_ip: Ipv4Addr::new(10, 88, 0, 2),
            container_ip6: Some("fd00::2".parse().unwrap()),
            container_port: 80,
            nft_table: "hako".into(),
        };
        let (map, e) = port_set_elem(&r).unwrap();
        assert_eq!(map, "pany");
        assert_eq!(e.key, [6, 0, 0, 0, 0x1f, 0x90, 0, 0]);
        assert_eq!(e.data.unwrap(), [10, 88, 0, 2, 0, 80, 0, 0]);
        let e6 = port_set_elem6(&r).unwrap();
        assert_eq!(e6.key, [6, 0, 0, 0, 0x1f, 0x90, 0, 0]);
        let mut want = vec![0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
        want.extend_from_slice(&[0, 80, 0, 0]);
        assert_eq!(e6.data.unwrap(), want);
        r.host_ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        r.proto = Proto::Udp;
        let (map, e) = port_set_elem(&r).unwrap();
        assert_eq!(map, "pip");
        assert!(port_set_elem6(&r).is_none(), "a v4 host address is v4 only");
        assert_eq!(e.key, [127, 0, 0, 1, 17, 0, 0, 0, 0x1f, 0x90, 0, 0]);
        // An IPv6 host address: pip6, keyed by it, to the container's IPv6 address.
        r.host_ip = "2001:db8::1".parse().unwrap();
        let (map, e) = port_set_elem(&r).unwrap();
        assert_eq!(map, "pip6");
        assert!(
            port_set_elem6(&r).is_none(),
            "pany6 is for all addresses only"
        );
        let mut key = vec![0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        key.extend_from_slice(&[17, 0, 0, 0, 0x1f, 0x90, 0, 0]);
        assert_eq!(e.key, key);
        assert_eq!(e.data.unwrap(), want);
        r.container_ip6 = None;
        assert!(port_set_elem(&r).is_none());
    }

    #[test]
    fn a_table_without_ipv6_gains_its_sets_and_rules_once() {
        // SAFETY: unshare(2) with CLONE_NEWNET affects only this test's thread.
        if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
            eprintln!(
                "skipped: no CLONE_NEWNET ({})",
                std::io::Error::last_os_error()
            );
            return;
        }
        let old: String = table_script("hkup", "hako test")
            .lines()
            .filter(|l| !l.contains("natnets6") && !l.contains("pany6") && !l.contains("pip6"))
            .map(|l| format!("{l}\n"))
            .collect();
        nft::run(&old).unwrap();
        upgrade_table_v6("hkup").unwrap();
        upgrade_table_v6("hkup").unwrap();
        let listed = nft::run("list table inet hkup").unwrap();
        assert_eq!(listed.matches("saddr @natnets6").count(), 1, "{listed}");
        assert_eq!(listed.matches("map @pany6").count(), 1, "{listed}");
        assert_eq!(listed.matches("map @pip6").count(), 1, "{listed}");
        // A table with IPv6 but from before pip6 gains only that.
        nft::run("delete table inet hkup").unwrap();
        let old: String = table_script("hkup", "hako test")
            .lines()
            .filter(|l| !l.contains("pip6"))
            .map(|l| format!("{l}\n"))
            .collect();
        nft::run(&old).unwrap();
        upgrade_table_v6("hkup").unwrap();
        let listed = nft::run("list table inet hkup").unwrap();
        assert_eq!(listed.matches("map @pany6").count(), 1, "{listed}");
        assert_eq!(listed.matches("map @pip6").count(), 1, "{listed}");
        nft::run("delete table inet hkup").unwrap();
    }

    #[test]
    fn open_is_idempotent_and_validates_config() {
        let conn = Connection::open_in_memory().unwrap();
        Networks::open(&conn).unwrap();
        Networks::open(&conn).unwrap();
        let cfg = Config {
            nft_table: "bad name".into(),
            ..Config::default()
        };
        assert!(Networks::open_with(&conn, cfg).is_err());
        for owner in ["/a b", "/a\"b", "/a\\b", &"x".repeat(201)] {
            let cfg = Config {
                owner: owner.into(),
                ..Config::default()
            };
            assert!(Networks::open_with(&conn, cfg).is_err(), "{owner}");
        }
    }

    #[test]
    fn markers_tell_this_root_its_earlier_life_and_others_apart() {
        let cfg = || Config {
            owner: "/var/tmp/root-a".into(),
            ..Config::default()
        };
        let conn = Connection::open_in_memory().unwrap();
        let nets = Networks::open_with(&conn, cfg()).unwrap();
        let mine = nets.marker().unwrap();
        assert!(
            mine.starts_with("hako ") && mine.ends_with(" /var/tmp/root-a"),
            "{mine}"
        );
        assert_eq!(nets.claim_of(Some(&mine)).unwrap(), Claim::Mine);
        // The instance is kept in the database: the next command is the same life.
        let again = Networks::open_with(&conn, cfg()).unwrap();
        assert_eq!(again.marker().unwrap(), mine);
        // A new database at the same path (rm -rf of the root) is a new life: what the old
        // one made is this root's, but stale.
        let conn2 = Connection::open_in_memory().unwrap();
        let reborn = Networks::open_with(&conn2, cfg()).unwrap();
        assert_ne!(reborn.marker().unwrap(), mine);
        assert_eq!(reborn.claim_of(Some(&mine)).unwrap(), Claim::Stale);
        assert!(reborn.claim_of(Some(&mine)).unwrap().ours());
        // Anyone else's.
        let other = nets
            .claim_of(Some("hako 0123456789abcdef /var/tmp/root-b"))
            .unwrap();
        assert!(
            matches!(&other, Claim::Theirs(b) if b.contains("/var/tmp/root-b")),
            "{other:?}"
        );
        assert!(matches!(
            nets.claim_of(Some("uplink to the lab")).unwrap(),
            Claim::Theirs(_)
        ));
        assert_eq!(nets.claim_of(None).unwrap(), Claim::Unmarked);
        assert!(!Claim::Unmarked.ours());
    }

    #[test]
    fn name_series_and_table_comments() {
        assert_eq!(candidate("hako0", 0, "", 15).as_deref(), Some("hako0"));
        assert_eq!(candidate("hako0", 1, "", 15).as_deref(), Some("hako01"));
        assert_eq!(
            candidate("hakoabcdef", 12, "", 15).as_deref(),
            Some("hakoabcdef12")
        );
        assert_eq!(
            candidate("hkt123456x7", 10000, "", 15),
            None,
            "over IFNAMSIZ"
        );
        assert_eq!(candidate("hako", 2, "_", 64).as_deref(), Some("hako_2"));
        let listing = "table inet hako_ab {\n\tcomment \"hako 00ff /r\"\n\n\tset bridges {\n";
        assert_eq!(table_comment(listing), Some("hako 00ff /r"));
        assert_eq!(table_comment("table inet t {\n}\n"), None);
        assert!(table_script("t", "hako 00ff /r")
            .starts_with("create table inet t { comment \"hako 00ff /r\"; }\n"));
    }
}
