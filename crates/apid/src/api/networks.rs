//! `/networks/…`. Reads run in this process; changes run `hako network …`, which also sets
//! the host's forwarding rules and, for a running container, enters its network namespace.

use super::{json, no_content, Body, Req};
use crate::error::ApiError;
use hako_docker::network::{inspect_json, NetworkFilters};
use hako_engine::views::network::NetworkCreate;
use hyper::{Response, StatusCode};
use serde::Deserialize;
use serde_json::json as j;
use std::collections::BTreeMap;

/// The `filters` pairs as the `key=value` arguments the CLI's `--filter` takes.
fn filter_args(pairs: &[(String, String)]) -> Vec<String> {
    pairs.iter().map(|(k, v)| format!("{k}={v}")).collect()
}

/// `GET /networks?filters=`: the engine's list, filtered and shaped as `hako network ls`
/// and `network inspect` do it.
pub(super) async fn list(req: Req) -> Result<Response<Body>, ApiError> {
    let filters = NetworkFilters::parse(&filter_args(&req.filters()?))
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let list = req
        .state
        .backend
        .engine(move |e| {
            Ok(e.network_list()?
                .iter()
                .filter(|n| filters.matches(n))
                .map(inspect_json)
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
        .engine(move |e| match e.network_inspect(&id) {
            Ok(n) => Ok(inspect_json(&n)),
            Err(err) if err.kind() == hako_engine::ErrorKind::NotFound => {
                Err(ApiError::not_found(format!("network {id} not found")))
            }
            Err(err) => Err(err.into()),
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
    let mut create = NetworkCreate {
        driver: if b.driver.is_empty() {
            "bridge".into()
        } else {
            b.driver
        },
        internal: b.internal,
        ipv6: b.enable_ipv6 == Some(true),
        labels: b.labels.unwrap_or_default(),
        options: b.options.unwrap_or_default(),
        ..Default::default()
    };
    if let Some(ipam) = b.ipam {
        if !matches!(ipam.driver.as_str(), "" | "default") {
            return Err(ApiError::bad_request(format!(
                "IPAM driver {:?} is not supported by hako",
                ipam.driver
            )));
        }
        for c in ipam.config.unwrap_or_default() {
            if !c.subnet.is_empty() {
                create.subnets.push(c.subnet);
            }
            if !c.gateway.is_empty() {
                create.gateways.push(c.gateway);
            }
            if !c.ip_range.is_empty() {
                if create.ip_range.is_some() {
                    return Err(ApiError::bad_request(
                        "IPAM.Config: hako takes one IPRange per network",
                    ));
                }
                create.ip_range = Some(c.ip_range);
            }
        }
    }
    let name = b.name;
    let id = req
        .state
        .backend
        .engine(move |e| Ok(e.network_create(&name, &create)?.id))
        .await?;
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
        .engine(move |e| Ok(e.network_remove(&id)?))
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
    let filter = crate::compat::prune_filters(&req.filters()?, &[])?;
    let gone = req
        .state
        .backend
        .engine(move |e| {
            if filter.is_empty() {
                return Ok(e.network_prune()?);
            }
            let names: Vec<String> = e
                .network_list()?
                .into_iter()
                .filter(|n| {
                    !n.builtin
                        && n.containers.is_empty()
                        && filter.accepts_object(Some(n.created), &n.labels)
                })
                .map(|n| n.name)
                .collect();
            let mut gone = Vec::new();
            for n in names {
                // A container connected since the list keeps it, as `network prune` does.
                match e.network_remove(&n) {
                    Ok(()) => gone.push(n),
                    Err(err)
                        if matches!(
                            err.kind(),
                            hako_engine::ErrorKind::Conflict | hako_engine::ErrorKind::NotFound
                        ) => {}
                    Err(err) => return Err(err.into()),
                }
            }
            Ok(gone)
        })
        .await?;
    Ok(json(StatusCode::OK, &j!({"NetworksDeleted": gone})))
}
