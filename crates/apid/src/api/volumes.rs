//! `/volumes/…`.

use super::{json, no_content, Body, Req};
use crate::error::ApiError;
use hako_docker::volume::{inspect_json, VolumeFilters};
use hyper::{Response, StatusCode};
use serde::Deserialize;
use serde_json::{json as j, Value};
use std::collections::BTreeMap;

/// `GET /volumes?filters=`: the engine's list, filtered and shaped as `hako volume ls` and
/// `volume inspect` do it.
pub(super) async fn list(req: Req) -> Result<Response<Body>, ApiError> {
    let args: Vec<String> = req
        .filters()?
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let filters = VolumeFilters::parse(&args).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let vols = req
        .state
        .backend
        .engine(move |e| {
            let used = if filters.needs_usage() {
                e.volumes_in_use()?
            } else {
                Default::default()
            };
            Ok(e.volume_list()?
                .iter()
                .filter(|v| filters.matches(v, used.contains(&v.name)))
                .map(inspect_json)
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
    Ok(json(StatusCode::CREATED, &inspect_json(&v)))
}

/// `GET /volumes/{name}`.
pub(super) async fn inspect(req: Req, name: String) -> Result<Response<Body>, ApiError> {
    let v = req
        .state
        .backend
        .engine(move |e| Ok(e.volume_inspect(&name)?))
        .await?;
    Ok(json(StatusCode::OK, &inspect_json(&v)))
}

/// `DELETE /volumes/{name}?force=`.
pub(super) async fn remove(req: Req, name: String) -> Result<Response<Body>, ApiError> {
    let force = req.q_bool("force");
    req.state
        .backend
        .engine(move |e| match e.volume_remove(&name) {
            Err(hako_engine::Error::NoSuchVolume(_)) if force => Ok(()),
            other => Ok(other?),
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
    let filter = crate::compat::prune_filters(&filters, &["all"])?;
    // Volumes have no creation time dockerd filters on.
    if filter.has_until() {
        return Err(ApiError::bad_request("invalid filter 'until'"));
    }
    let (gone, freed) = req
        .state
        .backend
        .engine(move |e| {
            Ok(e.volume_prune_matching(all, &|v| filter.accepts_object(None, &v.labels))?)
        })
        .await?;
    Ok(json(
        StatusCode::OK,
        &j!({"VolumesDeleted": if gone.is_empty() { Value::Null } else { j!(gone) }, "SpaceReclaimed": freed}),
    ))
}
