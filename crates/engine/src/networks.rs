//! Network operations as every front end needs them: create (with the host's forwarding
//! rules), list, inspect, remove, prune. Connecting and disconnecting containers is in
//! [`crate::netwire`], which wires them at start.

use crate::netwire::{allow_forwarding, disallow_forwarding, networks};
use crate::views::network::{IpamConfig, NetworkCreate, NetworkEndpoint, NetworkResource};
use crate::{Engine, Error, Result};
use hako_net::NetworkInfo;

/// Docker's names that are not networks one may remove.
const PREDEFINED: [&str; 3] = ["bridge", "host", "none"];

/// The networks that are network modes rather than bridges, with Docker's driver names.
const MODES: [(&str, &str); 2] = [("host", "host"), ("none", "null")];

/// A mode network's ID: fixed, so an ID prefix finds it in every state root, and 64 hex
/// digits like any other network's.
fn mode_id(name: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(format!("hako network mode {name}")))
}

impl Engine {
    /// `host` or `none` as Docker shows them: no addresses, and the running containers that
    /// use that network mode. `created` is the default network's time (Docker shows when
    /// the daemon first made them).
    fn mode_view(&self, name: &str, driver: &str, created: i64) -> Result<NetworkResource> {
        let running = self.list(false)?;
        let configs = self.stored_configs(running.iter().map(|c| c.id.as_str()))?;
        let containers = running
            .into_iter()
            .filter(|c| configs.get(&c.id).is_some_and(|k| k.network.mode() == name))
            .map(|c| NetworkEndpoint {
                name: c.name,
                container_id: c.id,
                ipv4_address: String::new(),
                ipv6_address: String::new(),
                mac_address: String::new(),
            })
            .collect();
        Ok(NetworkResource {
            id: mode_id(name),
            name: name.to_string(),
            driver: driver.to_string(),
            created,
            internal: false,
            enable_ipv6: false,
            ipam: Vec::new(),
            options: Default::default(),
            labels: Default::default(),
            containers,
            builtin: true,
        })
    }

    fn network_view(&self, i: NetworkInfo, default_network: &str) -> NetworkResource {
        let mut ipam = vec![IpamConfig {
            subnet: i.subnet.to_string(),
            gateway: i.gateway.to_string(),
            ip_range: i.ip_range.map(|r| r.to_string()),
        }];
        if let (Some(s), Some(g)) = (i.subnet6, i.gateway6) {
            ipam.push(IpamConfig {
                subnet: s.to_string(),
                gateway: g.to_string(),
                ip_range: None,
            });
        }
        let mut options = i.options.clone();
        // Docker names the default bridge's Linux bridge in its options (`docker0`); a user
        // network's options are what its creator gave, which compose compares with its file's
        // `driver_opts` (an extra key there would make every `up` see a changed network).
        if i.name == default_network {
            options
                .entry("com.docker.network.bridge.name".into())
                .or_insert_with(|| i.bridge.clone());
        }
        let containers = i
            .endpoints
            .iter()
            .map(|e| NetworkEndpoint {
                name: self
                    .find(&e.container_id)
                    .map(|c| c.name)
                    .unwrap_or_default(),
                container_id: e.container_id.clone(),
                ipv4_address: format!("{}/{}", e.ip, i.subnet.prefix),
                ipv6_address: match (e.ip6, i.subnet6) {
                    (Some(a), Some(s)) => format!("{a}/{}", s.prefix),
                    _ => String::new(),
                },
                mac_address: e.mac.clone(),
            })
            .collect();
        NetworkResource {
            builtin: i.name == default_network,
            id: i.id,
            name: i.name,
            driver: i.driver,
            created: i.created.saturating_mul(1_000_000_000),
            internal: i.internal,
            enable_ipv6: i.ipv6,
            ipam,
            options,
            labels: i.labels,
            containers,
        }
    }

    /// `network create`: makes the network and lets its traffic through a host firewall
    /// that Docker set to drop forwarded packets.
    pub fn network_create(&self, name: &str, c: &NetworkCreate) -> Result<NetworkResource> {
        if c.driver != "bridge" {
            return Err(Error::Invalid(format!(
                "plugin \"{}\" not found: hako supports the bridge driver",
                c.driver
            )));
        }
        // Docker takes one --subnet and --gateway per address family.
        let split = |v: &[String], what: &str| -> Result<(Option<String>, Option<String>)> {
            let (v6, v4): (Vec<&String>, Vec<&String>) = v.iter().partition(|s| s.contains(':'));
            if v4.len() > 1 || v6.len() > 1 {
                return Err(Error::Invalid(format!(
                    "invalid {what}: give at most one IPv4 and one IPv6 --{what}"
                )));
            }
            Ok((
                v4.first().map(|s| s.to_string()),
                v6.first().map(|s| s.to_string()),
            ))
        };
        let (subnet, subnet6) = split(&c.subnets, "subnet")?;
        let (gateway, gateway6) = split(&c.gateways, "gateway")?;
        crate::rootless::ensure_user_netns()?;
        let nets = networks(self.store.conn(), &self.root)?;
        let info = nets.create(
            name,
            &hako_net::CreateOptions {
                subnet,
                gateway,
                subnet6,
                gateway6,
                ip_range: c.ip_range.clone(),
                internal: c.internal,
                ipv6: c.ipv6,
                labels: c.labels.clone(),
                options: c.options.clone(),
            },
        )?;
        allow_forwarding(&info.bridge);
        self.network_event(&info, "create", None);
        let default = nets.config().default_network.clone();
        Ok(self.network_view(info, &default))
    }

    /// `network ls`: every network of the state root, then `host` and `none`, as Docker
    /// lists them.
    pub fn network_list(&self) -> Result<Vec<NetworkResource>> {
        let nets = networks(self.store.conn(), &self.root)?;
        let default = nets.config().default_network.clone();
        let infos = nets.list()?;
        if infos.is_empty() {
            // A `network rm` killed before it stopped the user's namespace.
            self.stop_idle_user_netns(&nets);
        }
        let mut list: Vec<NetworkResource> = infos
            .into_iter()
            .map(|i| self.network_view(i, &default))
            .collect();
        let created = list.iter().find(|n| n.builtin).map_or(0, |n| n.created);
        if !list.iter().any(|n| n.builtin) {
            // Docker always lists it; here it is made (subnet, bridge) when the first
            // container needs it, so until then it is shown without addresses.
            list.insert(0, self.mode_view(&default, "bridge", 0)?);
        }
        for (name, driver) in MODES {
            list.push(self.mode_view(name, driver, created)?);
        }
        Ok(list)
    }

    /// `network inspect`: one network by name or unique ID prefix (`host` and `none`
    /// included).
    pub fn network_inspect(&self, name: &str) -> Result<NetworkResource> {
        let nets = networks(self.store.conn(), &self.root)?;
        let default = nets.config().default_network.clone();
        let named = |m: &str| name == m || (name.len() >= 3 && mode_id(m).starts_with(name));
        let mode = MODES.iter().find(|(m, _)| named(m));
        match nets.inspect(name) {
            Ok(i) => Ok(self.network_view(i, &default)),
            Err(e) => match mode {
                // The default network before its first use, as `network ls` shows it.
                None if named(&default) => self.mode_view(&default, "bridge", 0),
                Some((m, driver)) => {
                    let created = nets
                        .inspect(&default)
                        .map_or(0, |d| d.created.saturating_mul(1_000_000_000));
                    self.mode_view(m, driver, created)
                }
                None => Err(e.into()),
            },
        }
    }

    /// `network rm`: one network no container is attached to, and its forwarding rules.
    pub fn network_remove(&self, name: &str) -> Result<()> {
        if PREDEFINED.contains(&name) {
            return Err(Error::Invalid(format!(
                "{name} is a pre-defined network and cannot be removed"
            )));
        }
        let nets = networks(self.store.conn(), &self.root)?;
        let info = nets.inspect(name).ok();
        nets.remove(name)?;
        if let Some(i) = info {
            disallow_forwarding(&i.bridge);
            self.network_event(&i, "destroy", None);
        }
        self.stop_idle_user_netns(&nets);
        Ok(())
    }

    /// `network prune`: removes the user-defined networks nothing uses (a stopped container
    /// connected to one still does); returns their names.
    pub fn network_prune(&self) -> Result<Vec<String>> {
        let nets = networks(self.store.conn(), &self.root)?;
        let gone = nets.prune()?;
        self.stop_idle_user_netns(&nets);
        Ok(gone
            .into_iter()
            .map(|n| {
                disallow_forwarding(&n.bridge);
                self.network_event(&n, "destroy", None);
                n.name
            })
            .collect())
    }

    /// Rootless: stops the user's network namespace once no network is left in it.
    fn stop_idle_user_netns(&self, nets: &hako_net::Networks<'_>) {
        if crate::rootless::active() && nets.list().is_ok_and(|l| l.is_empty()) {
            crate::rootless::stop_user_netns();
        }
    }

    /// Removes every network of the state root, the default bridge included (test roots
    /// create their own default bridge; this takes it away again).
    pub fn network_teardown(&self) -> Result<()> {
        let nets = networks(self.store.conn(), &self.root)?;
        for n in nets.list()? {
            nets.remove(&n.name)?;
            disallow_forwarding(&n.bridge);
        }
        self.stop_idle_user_netns(&nets);
        Ok(())
    }
}
