//! `/networks/…`. Reads run in this process; changes run `hako network …`, which also sets
//! the host's forwarding rules and, for a running container, enters its network namespace.

use super::{json, no_content, Body, Req};
use crate::compat::{self, FilterValues};
use crate::error::ApiError;
use hyper::{Response, StatusCode};
use serde::Deserialize;
use serde_json::{json as j, Value};
use std::collections::BTreeMap;

fn network_json(
    e: &hako_engine::Engine,
    i: &hako_engine::hako_net::NetworkInfo,
    detail: bool,
) -> Value {
    let mut options = i.options.clone();
    // Docker names the default bridge's Linux bridge in its options; a user network's options
    // are what its creator gave (compose compares them with its file's).
    if i.name == "bridge" {
        options
            .entry("com.docker.network.bridge.name".into())
            .or_insert_with(|| i.bridge.clone());
    }
    let mut ipam = vec![{
        let mut c = j!({"Subnet": i.subnet.to_string(), "Gateway": i.gateway.to_string()});
        if let Some(r) = i.ip_range {
            c["IPRange"] = r.to_string().into();
        }
        c
    }];
    if let (Some(s), Some(g)) = (i.subnet6, i.gateway6) {
        ipam.push(j!({"Subnet": s.to_string(), "Gateway": g.to_string()}));
    }
    let containers: serde_json::Map<String, Value> = if detail {
        i.endpoints
            .iter()
            .map(|ep| {
                (
                    ep.container_id.clone(),
                    j!({
                        "Name": e.find(&ep.container_id).map(|c| c.name).unwrap_or_default(),
                        "EndpointID": "",
                        "MacAddress": ep.mac,
                        "IPv4Address": format!("{}/{}", ep.ip, i.subnet.prefix),
                        "IPv6Address": match (ep.ip6, i.subnet6) {
                            (Some(a), Some(s)) => format!("{a}/{}", s.prefix),
                            _ => String::new(),
                        },
                    }),
                )
            })
            .collect()
    } else {
        Default::default()
    };
    j!({
        "Name": i.name,
        "Id": i.id,
        "Created": hako_engine::rfc3339(i.created * 1_000_000_000),
        "Scope": "local",
        "Driver": i.driver,
        "EnableIPv4": true,
        "EnableIPv6": i.ipv6,
        "IPAM": {"Driver": "default", "Options": null, "Config": ipam},
        "Internal": i.internal,
        "Attachable": false,
        "Ingress": false,
        "ConfigFrom": {"Network": ""},
        "ConfigOnly": false,
        "Containers": containers,
        "Options": options,
        "Labels": i.labels,
    })
}

/// The special networks Docker always shows.
fn builtin(name: &str) -> Value {
    j!({
        "Name": name, "Id": name, "Created": "0001-01-01T00:00:00Z", "Scope": "local",
        "Driver": name, "EnableIPv6": false, "IPAM": {"Driver": "default", "Options": null, "Config": []},
        "Internal": false, "Attachable": false, "Ingress": false, "ConfigFrom": {"Network": ""},
        "ConfigOnly": false, "Containers": {}, "Options": {}, "Labels": {},
    })
}

/// `GET /networks?filters=`.
pub(super) async fn list(req: Req) -> Result<Response<Body>, ApiError> {
    let filters = req.filters()?;
    for (k, _) in &filters {
        if !["name", "id", "label", "driver", "type", "scope", "dangling"].contains(&k.as_str()) {
            return Err(ApiError::bad_request(format!("invalid filter '{k}'")));
        }
    }
    let list = req
        .state
        .backend
        .engine(move |e| {
            let nets = hako_engine::netwire::networks(e.images().conn(), e.root())
                .map_err(|err| ApiError::internal(err.to_string()))?;
            let mut out: Vec<Value> = Vec::new();
            let mut have_bridge = false;
            for n in nets
                .list()
                .map_err(|err| ApiError::internal(err.to_string()))?
            {
                have_bridge |= n.name == "bridge";
                let detail = nets.inspect(&n.name).unwrap_or(n);
                out.push(network_json(e, &detail, true));
            }
            if !have_bridge {
                out.push(builtin("bridge"));
            }
            out.push(builtin("host"));
            out.push(builtin("none"));
            Ok(out
                .into_iter()
                .filter(|n| {
                    let keys: std::collections::BTreeSet<&str> =
                        filters.iter().map(|(k, _)| k.as_str()).collect();
                    keys.into_iter().all(|key| {
                        filters
                            .iter()
                            .filter(|(k, _)| k == key)
                            .holds(key == "label", |(_, v)| match key {
                                "name" => {
                                    n["Name"].as_str().is_some_and(|x| x.contains(v.as_str()))
                                }
                                "id" => n["Id"].as_str().is_some_and(|x| x.starts_with(v.as_str())),
                                "label" => compat::labels_match(&n["Labels"], v),
                                "driver" => n["Driver"].as_str() == Some(v),
                                "scope" => v == "local",
                                "type" => {
                                    let builtin = matches!(
                                        n["Name"].as_str(),
                                        Some("bridge" | "host" | "none")
                                    );
                                    (v == "builtin") == builtin
                                }
                                "dangling" => {
                                    let empty =
                                        n["Containers"].as_object().is_none_or(|c| c.is_empty());
                                    (v == "true" || v == "1") == empty
                                }
                                _ => false,
                            })
                    })
                })
                .collect::<Vec<_>>())
        })
        .await?;
    Ok(json(StatusCode::OK, &list))
}

/// `GET /networks/{id}`.
pub(super) async fn inspect(req: Req, id: String) -> Result<Response<Body>, ApiError> {
    let doc = req
        .state
        .backend
        .engine(move |e| {
            if matches!(id.as_str(), "host" | "none") {
                return Ok(builtin(&id));
            }
            let nets = hako_engine::netwire::networks(e.images().conn(), e.root())
                .map_err(|err| ApiError::internal(err.to_string()))?;
            match nets.inspect(&id) {
                Ok(i) => Ok(network_json(e, &i, true)),
                Err(_) if id == "bridge" => Ok(builtin("bridge")),
                Err(_) => Err(ApiError::not_found(format!("network {id} not found"))),
            }
        })
        .await?;
    Ok(json(StatusCode::OK, &doc))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct CreateBody {
    name: String,
    driver: String,
    internal: bool,
    #[serde(rename = "EnableIPv6")]
    enable_ipv6: Option<bool>,
    #[serde(rename = "IPAM")]
    ipam: Option<Ipam>,
    options: Option<BTreeMap<String, String>>,
    labels: Option<BTreeMap<String, String>>,
    #[allow(dead_code)]
    attachable: bool,
    ingress: bool,
    config_only: bool,
    scope: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct Ipam {
    driver: String,
    config: Option<Vec<IpamConfig>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct IpamConfig {
    subnet: String,
    gateway: String,
    #[serde(rename = "IPRange")]
    ip_range: String,
}

/// `POST /networks/create`.
pub(super) async fn create(mut req: Req) -> Result<Response<Body>, ApiError> {
    let b: CreateBody = req
        .json()
        .await?
        .ok_or_else(|| ApiError::bad_request("missing network configuration"))?;
    if b.name.is_empty() {
        return Err(ApiError::bad_request("network name is required"));
    }
    // Attachable lets swarm services' networks take plain containers; every local network
    // takes them, so it holds as asked. The others need swarm mode.
    if b.ingress || b.config_only || !matches!(b.scope.as_str(), "" | "local") {
        return Err(ApiError::not_implemented(
            "swarm network options (Ingress, ConfigOnly, Scope other than local)",
        ));
    }
    let mut args = vec!["network".to_string(), "create".into()];
    if !b.driver.is_empty() {
        args.push(format!("--driver={}", b.driver));
    }
    if b.internal {
        args.push("--internal".into());
    }
    if b.enable_ipv6 == Some(true) {
        args.push("--ipv6".into());
    }
    if let Some(ipam) = b.ipam {
        if !matches!(ipam.driver.as_str(), "" | "default") {
            return Err(ApiError::bad_request(format!(
                "IPAM driver {:?} is not supported by hako",
                ipam.driver
            )));
        }
        for c in ipam.config.unwrap_or_default() {
            if !c.subnet.is_empty() {
                args.push(format!("--subnet={}", c.subnet));
            }
            if !c.gateway.is_empty() {
                args.push(format!("--gateway={}", c.gateway));
            }
            if !c.ip_range.is_empty() {
                args.push(format!("--ip-range={}", c.ip_range));
            }
        }
    }
    for (k, v) in b.options.unwrap_or_default() {
        args.push(format!("--opt={k}={v}"));
    }
    for (k, v) in b.labels.unwrap_or_default() {
        args.push(format!("--label={k}={v}"));
    }
    args.push(b.name);
    let out = req.state.backend.cli(&args, None).await?;
    let id = String::from_utf8_lossy(&out).trim().to_string();
    Ok(json(StatusCode::CREATED, &j!({"Id": id, "Warning": ""})))
}

/// `DELETE /networks/{id}`.
pub(super) async fn remove(req: Req, id: String) -> Result<Response<Body>, ApiError> {
    if matches!(id.as_str(), "bridge" | "host" | "none") {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("{id} is a pre-defined network and cannot be removed"),
        ));
    }
    req.state
        .backend
        .cli(&["network".into(), "rm".into(), id], None)
        .await?;
    Ok(no_content(StatusCode::NO_CONTENT))
}

#[derive(Debug, Default, Deserialize, Clone)]
#[serde(rename_all = "PascalCase", default)]
struct EndpointConfig {
    aliases: Option<Vec<String>>,
    #[serde(rename = "IPAMConfig")]
    ipam_config: Option<IpamAddresses>,
}

#[derive(Debug, Default, Deserialize, Clone)]
#[serde(default)]
struct IpamAddresses {
    #[serde(rename = "IPv4Address")]
    ipv4: String,
    #[serde(rename = "IPv6Address")]
    ipv6: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct ConnectBody {
    container: String,
    endpoint_config: Option<EndpointConfig>,
    force: bool,
}

/// `POST /networks/{id}/connect` and `disconnect`.
pub(super) async fn connect(
    mut req: Req,
    id: String,
    connect: bool,
) -> Result<Response<Body>, ApiError> {
    let b: ConnectBody = req
        .json()
        .await?
        .ok_or_else(|| ApiError::bad_request("missing container"))?;
    if b.container.is_empty() {
        return Err(ApiError::bad_request("missing container"));
    }
    // A container that is not running has no endpoint yet: its configuration changes, as
    // for a container created with that network.
    let (cid, net) = (b.container.clone(), id.clone());
    let ep = b.endpoint_config.as_ref().map(|ep| {
        (
            ep.aliases.clone().unwrap_or_default(),
            ep.ipam_config
                .as_ref()
                .map(|i| (i.ipv4.clone(), i.ipv6.clone())),
        )
    });
    let handled = req
        .state
        .backend
        .engine(move |e| {
            let c = e.find(&cid)?;
            if c.state == hako_engine::State::Running {
                return Ok(false);
            }
            let doc = e.inspect(&c.id)?;
            let mode = doc["HostConfig"]["NetworkMode"]
                .as_str()
                .unwrap_or("")
                .to_string();
            let is_bridge = net == "bridge";
            let same = mode == net || (is_bridge && matches!(mode.as_str(), "bridge" | "default"));
            let to = if is_bridge {
                hako_engine::Network::Default
            } else {
                hako_engine::Network::Named(net.clone())
            };
            if connect && (same || mode == "none") {
                let (aliases, ips) = ep.clone().unwrap_or_default();
                let (v4, v6) = ips.unwrap_or_default();
                let v4 = Some(v4)
                    .filter(|s| !s.is_empty())
                    .map(|s| {
                        s.parse().map_err(|_| {
                            ApiError::bad_request(format!("invalid IPv4 address: {s}"))
                        })
                    })
                    .transpose()?;
                let v6 = Some(v6)
                    .filter(|s| !s.is_empty())
                    .map(|s| {
                        s.parse().map_err(|_| {
                            ApiError::bad_request(format!("invalid IPv6 address: {s}"))
                        })
                    })
                    .transpose()?;
                e.set_network(&c.id, to, aliases, v4, v6)?;
                return Ok(true);
            }
            if !connect && same {
                e.set_network(&c.id, hako_engine::Network::None, Vec::new(), None, None)?;
                return Ok(true);
            }
            Ok(false)
        })
        .await?;
    if handled {
        return Ok(no_content(StatusCode::OK));
    }
    let mut args = vec!["network".to_string()];
    if connect {
        args.push("connect".into());
        if let Some(ep) = b.endpoint_config {
            for a in ep.aliases.unwrap_or_default() {
                args.push(format!("--alias={a}"));
            }
            if let Some(ipam) = ep.ipam_config {
                if !ipam.ipv4.is_empty() {
                    args.push(format!("--ip={}", ipam.ipv4));
                }
                if !ipam.ipv6.is_empty() {
                    args.push(format!("--ip6={}", ipam.ipv6));
                }
            }
        }
    } else {
        args.push("disconnect".into());
        if b.force {
            args.push("--force".into());
        }
    }
    args.push(id);
    args.push(b.container);
    req.state.backend.cli(&args, None).await?;
    Ok(no_content(StatusCode::OK))
}

/// `POST /networks/prune`.
pub(super) async fn prune(req: Req) -> Result<Response<Body>, ApiError> {
    let filter = crate::compat::PruneFilter::parse(&req.filters()?, true, &[])?;
    if !filter.is_empty() {
        let names = req
            .state
            .backend
            .engine(move |e| {
                Ok(e.network_list()?
                    .into_iter()
                    .filter(|n| {
                        !n.builtin
                            && n.containers.is_empty()
                            && filter.accepts(Some(n.created), &serde_json::json!(n.labels))
                    })
                    .map(|n| n.name)
                    .collect::<Vec<_>>())
            })
            .await?;
        let mut gone = Vec::new();
        for n in names {
            // A container connected since the list keeps it, as `network prune` does.
            match req
                .state
                .backend
                .cli(&["network".into(), "rm".into(), n.clone()], None)
                .await
            {
                Ok(_) => gone.push(n),
                Err(e) if e.status == StatusCode::CONFLICT || e.status == StatusCode::NOT_FOUND => {
                }
                Err(e) => return Err(e),
            }
        }
        return Ok(json(StatusCode::OK, &j!({"NetworksDeleted": gone})));
    }
    let out = req
        .state
        .backend
        .cli(&["network".into(), "prune".into(), "--force".into()], None)
        .await?;
    let names: Vec<String> = String::from_utf8_lossy(&out)
        .lines()
        .filter(|l| !l.is_empty() && *l != "Deleted Networks:")
        .map(str::to_string)
        .collect();
    Ok(json(StatusCode::OK, &j!({"NetworksDeleted": names})))
}
