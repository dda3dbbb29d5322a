//! Docker's grammar and shapes for networks: `network ls --filter`, the `network inspect`
//! document (`NetworkResource`), and the fields `network ls --format` templates see.

use crate::args::{FilterArgs, InvalidFilter};
use hako_engine::views::network::NetworkResource;
use serde_json::{json, Value};

/// `network ls --filter`: dangling, driver, id, label, name, scope, type.
#[derive(Debug, Default)]
pub struct NetworkFilters {
    args: FilterArgs,
    dangling: Option<bool>,
}

impl NetworkFilters {
    /// Parses `key=value` arguments.
    pub fn parse(args: &[String]) -> Result<NetworkFilters, InvalidFilter> {
        let args = FilterArgs::parse(
            args,
            &["dangling", "driver", "id", "label", "name", "scope", "type"],
        )?;
        for t in args.get("type").into_iter().flatten() {
            if t != "custom" && t != "builtin" {
                return Err(InvalidFilter(format!("invalid filter: 'type'='{t}'")));
            }
        }
        Ok(NetworkFilters {
            dangling: args.bool("dangling")?,
            args,
        })
    }

    /// Whether `n` passes every filter.
    pub fn matches(&self, n: &NetworkResource) -> bool {
        let f = &self.args;
        self.dangling
            .is_none_or(|d| d == (n.containers.is_empty() && !n.builtin))
            && f.get("driver").is_none_or(|d| d.contains(&n.driver))
            && f.get("id")
                .is_none_or(|i| i.iter().any(|i| n.id.starts_with(i.as_str())))
            && f.get("name")
                .is_none_or(|x| x.iter().any(|x| n.name.contains(x.as_str())))
            && f.get("scope")
                .is_none_or(|s| s.iter().any(|s| s == "local"))
            && f.get("type")
                .is_none_or(|t| t.iter().any(|t| (t == "builtin") == n.builtin))
            && f.labels_hold(&n.labels)
    }
}

/// The `network inspect` document (Docker's `NetworkResource`), which both `hako network
/// inspect` and `GET /networks/{id}` give.
pub fn inspect_json(n: &NetworkResource) -> Value {
    let config: Vec<Value> = n
        .ipam
        .iter()
        .map(|c| {
            let mut v = json!({"Subnet": c.subnet, "Gateway": c.gateway});
            if let Some(r) = &c.ip_range {
                v["IPRange"] = r.as_str().into();
            }
            v
        })
        .collect();
    json!({
        "Name": n.name,
        "Id": n.id,
        "Created": created_rfc3339(n.created),
        "Scope": "local",
        "Driver": n.driver,
        "EnableIPv4": true,
        "EnableIPv6": n.enable_ipv6,
        "IPAM": {"Driver": "default", "Options": null, "Config": config},
        "Internal": n.internal,
        "Attachable": false,
        "Ingress": false,
        "ConfigFrom": {"Network": ""},
        "ConfigOnly": false,
        "Containers": n.containers.iter().map(|e| (e.container_id.clone(), json!({
            "Name": e.name,
            "EndpointID": "",
            "MacAddress": e.mac_address,
            "IPv4Address": e.ipv4_address,
            "IPv6Address": e.ipv6_address,
        }))).collect::<serde_json::Map<_, _>>(),
        "Options": n.options,
        "Labels": n.labels,
    })
}

/// Creation time as Docker's JSON gives it; Go's zero time when unknown (a mode network's
/// before the default network exists).
fn created_rfc3339(nanos: i64) -> String {
    if nanos == 0 {
        "0001-01-01T00:00:00Z".into()
    } else {
        hako_engine::rfc3339(nanos)
    }
}

/// The fields of one `network ls --format` row: booleans and labels as strings, as Docker's
/// CLI gives them; `created_at` is the CLI's spelling of the creation time.
pub fn ls_row(n: &NetworkResource, created_at: &str) -> Value {
    let labels: Vec<String> = n.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    json!({
        "ID": &n.id[..12.min(n.id.len())],
        "Name": n.name,
        "Driver": n.driver,
        "Scope": "local",
        "IPv6": n.enable_ipv6.to_string(),
        "Internal": n.internal.to_string(),
        "Labels": labels.join(","),
        "CreatedAt": created_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use hako_engine::views::network::IpamConfig;

    fn net(name: &str, builtin: bool) -> NetworkResource {
        NetworkResource {
            id: format!("{name:0>64}"),
            name: name.into(),
            driver: "bridge".into(),
            created: 0,
            internal: false,
            enable_ipv6: false,
            ipam: vec![IpamConfig {
                subnet: "10.89.0.0/16".into(),
                gateway: "10.89.0.1".into(),
                ip_range: Some("10.89.1.0/24".into()),
            }],
            options: Default::default(),
            labels: [("a".to_string(), "1".to_string())].into(),
            containers: Vec::new(),
            builtin,
        }
    }

    #[test]
    fn filters_like_docker() {
        let f = |a: &[&str]| {
            NetworkFilters::parse(&a.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
        };
        let (user, default) = (net("front", false), net("bridge", true));
        assert!(f(&["dangling=true"]).matches(&user));
        assert!(
            !f(&["dangling=true"]).matches(&default),
            "the default is never dangling"
        );
        assert!(f(&["type=builtin"]).matches(&default));
        assert!(!f(&["type=builtin"]).matches(&user));
        assert!(f(&["name=ron", "label=a=1"]).matches(&user));
        assert!(!f(&["label=a=2"]).matches(&user));
        assert!(NetworkFilters::parse(&["type=x".into()]).is_err());
        assert!(NetworkFilters::parse(&["color=x".into()]).is_err());
    }

    #[test]
    fn inspect_has_docker_fields() {
        let v = inspect_json(&net("front", false));
        assert_eq!(v["IPAM"]["Config"][0]["IPRange"], "10.89.1.0/24");
        assert_eq!(v["Scope"], "local");
        assert!(v["Containers"].as_object().unwrap().is_empty());
    }
}
