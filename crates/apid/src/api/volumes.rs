//! `/volumes/…`.

use super::{json, no_content, Body, Req};
use crate::compat::{self, FilterValues};
use crate::error::ApiError;
use hyper::{Response, StatusCode};
use serde::Deserialize;
use serde_json::{json as j, Value};
use std::collections::BTreeMap;

/// `GET /volumes?filters=`.
pub(super) async fn list(req: Req) -> Result<Response<Body>, ApiError> {
    let filters = req.filters()?;
    for (k, _) in &filters {
        if !["name", "label", "driver", "dangling"].contains(&k.as_str()) {
            return Err(ApiError::bad_request(format!("invalid filter '{k}'")));
        }
    }
    let vols = req
        .state
        .backend
        .engine(move |e| {
            let used = if filters.iter().any(|(k, _)| k == "dangling") {
                e.volumes_in_use()?
            } else {
                Default::default()
            };
            Ok(e.volume_list()?
                .into_iter()
                .filter(|v| {
                    let keys: std::collections::BTreeSet<&str> =
                        filters.iter().map(|(k, _)| k.as_str()).collect();
                    let labels = serde_json::to_value(&v.labels).unwrap_or(Value::Null);
                    keys.into_iter().all(|key| {
                        filters.iter().filter(|(k, _)| k == key).holds(
                            key == "label",
                            |(_, want)| match key {
                                "name" => v.name.contains(want.as_str()),
                                "label" => compat::labels_match(&labels, want),
                                "driver" => want == "local",
                                "dangling" => {
                                    (want == "true" || want == "1") != used.contains(&v.name)
                                }
                                _ => false,
                            },
                        )
                    })
                })
                .map(|v| compat::volume_json(&v))
                .collect::<Vec<_>>())
        })
        .await?;
    Ok(json(StatusCode::OK, &j!({"Volumes": vols, "Warnings": []})))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct CreateBody {
    name: String,
    driver: String,
    driver_opts: Option<BTreeMap<String, String>>,
    labels: Option<BTreeMap<String, String>>,
    cluster_volume_spec: Option<Value>,
}

/// `POST /volumes/create`.
pub(super) async fn create(mut req: Req) -> Result<Response<Body>, ApiError> {
    let b: CreateBody = req.json().await?.unwrap_or_default();
    if !matches!(b.driver.as_str(), "" | "local") {
        return Err(ApiError::not_implemented(format!(
            "volume driver {:?} (hako has the local driver)",
            b.driver
        )));
    }
    if b.driver_opts.as_ref().is_some_and(|o| !o.is_empty()) {
        return Err(ApiError::not_implemented(
            "volume driver options (DriverOpts)",
        ));
    }
    if b.cluster_volume_spec.as_ref().is_some_and(|v| !v.is_null()) {
        return Err(ApiError::not_implemented("cluster volumes"));
    }
    let labels: Vec<String> = b
        .labels
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let name = Some(b.name).filter(|n| !n.is_empty());
    let v = req
        .state
        .backend
        .engine(move |e| {
            // Docker answers an existing volume's create with that volume.
            if let Some(n) = &name {
                if e.volume_exists(n)? {
                    return Ok(e.volume_inspect(n)?);
                }
            }
            let name = e.volume_create(name.as_deref(), &labels)?;
            Ok(e.volume_inspect(&name)?)
        })
        .await?;
    Ok(json(StatusCode::CREATED, &compat::volume_json(&v)))
}

/// `GET /volumes/{name}`.
pub(super) async fn inspect(req: Req, name: String) -> Result<Response<Body>, ApiError> {
    let v = req
        .state
        .backend
        .engine(move |e| {
            if !e.volume_exists(&name)? {
                return Err(ApiError::not_found(format!("get {name}: no such volume")));
            }
            Ok(e.volume_inspect(&name)?)
        })
        .await?;
    Ok(json(StatusCode::OK, &compat::volume_json(&v)))
}

/// `DELETE /volumes/{name}?force=`.
pub(super) async fn remove(req: Req, name: String) -> Result<Response<Body>, ApiError> {
    let force = req.q_bool("force");
    req.state
        .backend
        .engine(move |e| {
            if !e.volume_exists(&name)? {
                if force {
                    return Ok(());
                }
                return Err(ApiError::not_found(format!("get {name}: no such volume")));
            }
            if e.volumes_in_use()?.contains(&name) {
                return Err(ApiError::conflict(format!(
                    "remove {name}: volume is in use"
                )));
            }
            Ok(e.volume_remove(&name)?)
        })
        .await?;
    Ok(no_content(StatusCode::NO_CONTENT))
}

/// `POST /volumes/prune?filters=`.
pub(super) async fn prune(req: Req) -> Result<Response<Body>, ApiError> {
    let filters = req.filters()?;
    let mut all = false;
    for (k, v) in &filters {
        match (k.as_str(), v.as_str()) {
            ("all", "true" | "1") => all = true,
            ("all", "false" | "0") => {}
            ("all", _) => return Err(ApiError::bad_request(format!("invalid filter 'all={v}'"))),
            _ => {}
        }
    }
    let filter = crate::compat::PruneFilter::parse(&filters, false, &["all"])?;
    let (gone, freed) = req
        .state
        .backend
        .engine(move |e| {
            Ok(e.volume_prune_matching(all, &|v| {
                filter.accepts(None, &serde_json::json!(v.labels))
            })?)
        })
        .await?;
    Ok(json(
        StatusCode::OK,
        &j!({"VolumesDeleted": if gone.is_empty() { Value::Null } else { j!(gone) }, "SpaceReclaimed": freed}),
    ))
}
