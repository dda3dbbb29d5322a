//! Docker's grammar and shapes for volumes: `volume ls --filter`, the `volume inspect`
//! document (`Volume`), and the fields `volume ls --format` templates see.

use crate::args::{FilterArgs, InvalidFilter};
use hako_engine::volumes::VolumeInfo;
use serde_json::{json, Value};

/// `volume ls --filter`: dangling, driver, label, name.
#[derive(Debug, Default)]
pub struct VolumeFilters {
    args: FilterArgs,
    dangling: Option<bool>,
}

impl VolumeFilters {
    /// Parses `key=value` arguments.
    pub fn parse(args: &[String]) -> Result<VolumeFilters, InvalidFilter> {
        let args = FilterArgs::parse(args, &["dangling", "driver", "label", "name"])?;
        Ok(VolumeFilters {
            dangling: args.bool("dangling")?,
            args,
        })
    }

    /// Whether matching needs to know which volumes containers use
    /// ([`hako_engine::Engine::volumes_in_use`]).
    pub fn needs_usage(&self) -> bool {
        self.dangling.is_some()
    }

    /// Whether `v` passes; `in_use` says whether a container uses it.
    pub fn matches(&self, v: &VolumeInfo, in_use: bool) -> bool {
        let f = &self.args;
        self.dangling.is_none_or(|d| d != in_use)
            && f.get("driver")
                .is_none_or(|d| d.iter().any(|d| d == v.driver))
            && f.get("name")
                .is_none_or(|n| n.iter().any(|n| v.name.contains(n.as_str())))
            && f.labels_hold(&v.labels)
    }
}

/// The `volume inspect` document (Docker's `Volume`), which both `hako volume inspect` and
/// `GET /volumes/{name}` give.
pub fn inspect_json(v: &VolumeInfo) -> Value {
    json!({
        "CreatedAt": v.created_at,
        "Driver": v.driver,
        "Labels": v.labels,
        "Mountpoint": v.mountpoint,
        "Name": v.name,
        // The local driver's options; hako's volumes take none (`volume create -o` is
        // refused).
        "Options": {},
        "Scope": v.scope,
    })
}

/// The fields of one `volume ls --format` row: Labels is one `k=v,k=v` string there; Links
/// and Size are `N/A` as Docker's list gives them without usage data, and the cluster-volume
/// fields (Group, Availability, Status) empty.
pub fn ls_row(v: &VolumeInfo) -> Value {
    let labels: Vec<String> = v.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    json!({
        "Name": v.name,
        "Driver": v.driver,
        "Mountpoint": v.mountpoint,
        "CreatedAt": v.created_at,
        "Labels": labels.join(","),
        "Scope": v.scope,
        "Links": "N/A",
        "Size": "N/A",
        "Group": "",
        "Availability": "",
        "Status": "",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_like_docker() {
        let v = VolumeInfo {
            name: "data1".into(),
            driver: "local",
            mountpoint: "/x".into(),
            created_at: String::new(),
            labels: [("a".to_string(), "1".to_string())].into(),
            scope: "local",
            anonymous: false,
        };
        let f = |a: &[&str]| {
            VolumeFilters::parse(&a.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
        };
        assert!(f(&["dangling=true"]).matches(&v, false));
        assert!(!f(&["dangling=true"]).matches(&v, true));
        assert!(f(&["name=ata", "label=a"]).matches(&v, true));
        assert!(!f(&["driver=nfs"]).matches(&v, true));
        assert!(VolumeFilters::parse(&["id=1".into()]).is_err());
    }
}
