//! Networks: what `network inspect` and `network ls` show.

use std::collections::BTreeMap;

/// One address pool of a network (Docker's `IPAMConfig`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpamConfig {
    /// `10.89.0.0/16`.
    pub subnet: String,
    /// The bridge's address.
    pub gateway: String,
    /// The sub-range addresses are leased from, when `--ip-range` gave one.
    pub ip_range: Option<String>,
}

/// A container attached to a network (Docker's `EndpointResource`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkEndpoint {
    /// The container's ID.
    pub container_id: String,
    /// The container's name (empty when it is gone).
    pub name: String,
    /// `10.89.0.2/16`.
    pub ipv4_address: String,
    /// `fd00::2/64` on IPv6 networks, else empty.
    pub ipv6_address: String,
    /// `aa:bb:cc:dd:ee:ff`.
    pub mac_address: String,
}

/// A network (Docker's `NetworkResource`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkResource {
    /// 64 hex digits.
    pub id: String,
    /// Its name.
    pub name: String,
    /// `bridge`.
    pub driver: String,
    /// Creation time, ns since the epoch.
    pub created: i64,
    /// `--internal`.
    pub internal: bool,
    /// `--ipv6`.
    pub enable_ipv6: bool,
    /// Its subnets: the IPv4 one, then the IPv6 one.
    pub ipam: Vec<IpamConfig>,
    /// Driver options: those given at create; the default network's also names its bridge
    /// (`com.docker.network.bridge.name`).
    pub options: BTreeMap<String, String>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// The containers attached now.
    pub containers: Vec<NetworkEndpoint>,
    /// The state root's default network (`bridge`), which is never removed or pruned.
    pub builtin: bool,
}

/// What `network create` takes.
#[derive(Debug, Clone, Default)]
pub struct NetworkCreate {
    /// The driver; only `bridge` is supported.
    pub driver: String,
    /// `--subnet`: at most one IPv4 and one IPv6 subnet.
    pub subnets: Vec<String>,
    /// `--gateway`: at most one per address family.
    pub gateways: Vec<String>,
    /// `--ip-range`.
    pub ip_range: Option<String>,
    /// `--internal`.
    pub internal: bool,
    /// `--ipv6`.
    pub ipv6: bool,
    /// `--label`.
    pub labels: BTreeMap<String, String>,
    /// `-o`.
    pub options: BTreeMap<String, String>,
}
