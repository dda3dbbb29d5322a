//! `/_ping`, `/version`, `/info`, `/events`, `/system/df`, `/auth`.

use super::{json, streaming, Body, Req};
use crate::compat;
use crate::error::ApiError;
use bytes::Bytes;
use hako_docker::api::{self as wire, API_VERSION, MIN_API_VERSION};
use hyper::header::{CACHE_CONTROL, CONTENT_TYPE, PRAGMA};
use hyper::{Method, Response, StatusCode};
use serde_json::json as j;

/// `GET|HEAD /_ping`: `OK`, with the headers clients negotiate from. Answered without the
/// engine, so a socket-activated service's first answer costs only its start.
pub(super) fn ping(req: Req) -> Result<Response<Body>, ApiError> {
    let body = if req.method == Method::HEAD {
        super::empty_body()
    } else {
        super::full_body("OK")
    };
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header(CONTENT_TYPE, "text/plain; charset=utf-8")
        .header(CACHE_CONTROL, "no-cache, no-store, must-revalidate")
        .header(PRAGMA, "no-cache")
        .header("Builder-Version", "1")
        .header("Swarm", "inactive")
        .body(body)
        .expect("static response"))
}

fn kernel() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// `GET /version`.
pub(super) async fn version(_req: Req) -> Result<Response<Body>, ApiError> {
    let v = env!("CARGO_PKG_VERSION");
    let details = j!({
        "ApiVersion": API_VERSION.to_string(),
        "Arch": go_arch(),
        "BuildTime": "",
        "Experimental": "false",
        "GitCommit": "",
        "GoVersion": "",
        "KernelVersion": kernel(),
        "MinAPIVersion": MIN_API_VERSION.to_string(),
        "Os": "linux",
    });
    Ok(json(
        StatusCode::OK,
        &j!({
            "Platform": {"Name": "hako"},
            "Components": [{"Name": "Engine", "Version": v, "Details": details}],
            "Version": v,
            "ApiVersion": API_VERSION.to_string(),
            "MinAPIVersion": MIN_API_VERSION.to_string(),
            "GitCommit": "",
            "GoVersion": "",
            "Os": "linux",
            "Arch": go_arch(),
            "KernelVersion": kernel(),
            "BuildTime": "",
        }),
    ))
}

/// `GET /info`.
pub(super) async fn info(req: Req) -> Result<Response<Body>, ApiError> {
    let info = req.state.backend.engine(|e| Ok(e.info()?)).await?;
    let hostname = nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default();
    let cgroup_version = if info.cgroup_version.starts_with('2') {
        "2"
    } else {
        "1"
    };
    let now = hako_engine::rfc3339(hako_engine::now_nanos());
    let limits = info.no_cgroups.is_none();
    let mut security = vec!["name=seccomp,profile=builtin"];
    if info.rootless {
        // How docker-py, compose and IDEs tell a rootless engine.
        security.push("name=rootless");
    }
    let warnings: Vec<String> = info
        .no_cgroups
        .iter()
        .map(|why| {
            format!(
                "WARNING: running rootless without cgroups ({why}): resource limits are dropped"
            )
        })
        .collect();
    Ok(json(
        StatusCode::OK,
        &j!({
            "ID": compat::instance_id(req.state.backend.root()),
            "Containers": info.containers,
            "ContainersRunning": info.containers_running,
            "ContainersPaused": info.containers_paused,
            "ContainersStopped": info.containers_stopped,
            "Images": info.images,
            "Driver": "overlay2",
            "DriverStatus": [["Backing Filesystem", "overlay"], ["Supports d_type", "true"]],
            "Plugins": {
                "Volume": ["local"],
                "Network": ["bridge", "host", "null"],
                "Authorization": null,
                "Log": ["json-file"],
            },
            "MemoryLimit": limits,
            "SwapLimit": limits,
            "KernelMemory": false,
            "CpuCfsPeriod": limits,
            "CpuCfsQuota": limits,
            "CPUShares": limits,
            "CPUSet": limits,
            "PidsLimit": limits,
            "IPv4Forwarding": true,
            "BridgeNfIptables": false,
            "BridgeNfIp6tables": false,
            "Debug": false,
            "NFd": 0,
            "OomKillDisable": false,
            "NGoroutines": 0,
            "SystemTime": now,
            "LoggingDriver": "json-file",
            "CgroupDriver": info.cgroup_driver,
            "CgroupVersion": cgroup_version,
            "NEventsListener": 0,
            "KernelVersion": info.kernel_version,
            "OperatingSystem": info.operating_system,
            "OSVersion": "",
            "OSType": "linux",
            "Architecture": info.architecture,
            "IndexServerAddress": "https://index.docker.io/v1/",
            "RegistryConfig": {
                "AllowNondistributableArtifactsCIDRs": null,
                "AllowNondistributableArtifactsHostnames": null,
                "InsecureRegistryCIDRs": ["127.0.0.0/8", "::1/128"],
                "IndexConfigs": {},
                "Mirrors": null,
            },
            "NCPU": info.ncpu,
            "MemTotal": info.mem_total,
            "GenericResources": null,
            "DockerRootDir": info.root_dir,
            "HttpProxy": "",
            "HttpsProxy": "",
            "NoProxy": "",
            "Name": hostname,
            "Labels": [],
            "ExperimentalBuild": false,
            "ServerVersion": env!("CARGO_PKG_VERSION"),
            "Runtimes": {"hako": {"path": "hako"}},
            "DefaultRuntime": "hako",
            "Swarm": {
                "NodeID": "",
                "NodeAddr": "",
                "LocalNodeState": "inactive",
                "ControlAvailable": false,
                "Error": "",
                "RemoteManagers": null,
            },
            "LiveRestoreEnabled": false,
            "Isolation": "",
            "InitBinary": "hako-init",
            "ContainerdCommit": {"ID": "", "Expected": ""},
            "RuncCommit": {"ID": "", "Expected": ""},
            "InitCommit": {"ID": "", "Expected": ""},
            "SecurityOptions": security,
            "Warnings": warnings,
        }),
    ))
}

/// Docker's `since`/`until` query values: Unix seconds with an optional fraction, or RFC 3339.
/// (The CLIs turn relative durations into timestamps before they send them.)
pub(super) fn parse_time(v: &str) -> Result<i64, ApiError> {
    let bad = || ApiError::bad_request(format!("invalid timestamp: {v:?}"));
    if let Some((secs, frac)) = v.split_once('.') {
        let s: i64 = secs.parse().map_err(|_| bad())?;
        if frac.is_empty() || frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let n: i64 = format!("{frac:0<9}").parse().map_err(|_| bad())?;
        return Ok(s * 1_000_000_000 + n);
    }
    if let Ok(s) = v.parse::<i64>() {
        return Ok(s.saturating_mul(1_000_000_000));
    }
    compat::parse_rfc3339(v).ok_or_else(bad)
}

/// `GET /events`: the journal since `since` (or from now on), then new events as they are
/// recorded, until `until` or the client goes.
pub(super) async fn events(req: Req) -> Result<Response<Body>, ApiError> {
    let since = req
        .q("since")
        .filter(|s| !s.is_empty())
        .map(parse_time)
        .transpose()?;
    let until = req
        .q("until")
        .filter(|s| !s.is_empty())
        .map(parse_time)
        .transpose()?;
    let filters = hako_engine::events::EventFilters::new(&req.filters()?)?;
    let start = since.unwrap_or_else(hako_engine::now_nanos);
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(64);
    let backend_root = req.state.backend.root().to_path_buf();
    let state = req.state.clone();
    tokio::spawn(async move {
        let _busy = state.backend.mark_busy();
        // Every event is a commit to the journal in the state database: its WAL, in the root.
        let changes = crate::changes::Changes::root(&backend_root);
        let mut last = 0i64;
        // One connection for the stream: an open is a rebuild of the WAL's index when no
        // other process has the database open.
        let mut engine = None;
        loop {
            let r = root_events(&backend_root, engine.take(), last, start, until).await;
            let Ok((e, list)) = r else { return };
            engine = Some(e);
            for e in list {
                last = e.seq;
                if !filters.matches(&e) {
                    continue;
                }
                if tx
                    .send(Bytes::from(wire::json_line(&hako_docker::events::wire(&e))))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            if until.is_some_and(|u| hako_engine::now_nanos() >= u) {
                return;
            }
            // The journal is in the state database, written by whichever process acted.
            tokio::select! {
                _ = changes.next() => {}
                _ = tx.closed() => return,
            }
        }
    });
    Ok(streaming("application/json", rx))
}

async fn root_events(
    root: &std::path::Path,
    engine: Option<hako_engine::Engine>,
    after: i64,
    since: i64,
    until: Option<i64>,
) -> Result<(hako_engine::Engine, Vec<hako_engine::events::Event>), ApiError> {
    let root = root.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let e = match engine {
            Some(e) => e,
            None => hako_engine::Engine::open(&root)?,
        };
        let list = e.events(after, Some(since), until)?;
        Ok((e, list))
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))?
}

/// `GET /system/df`.
pub(super) async fn df(req: Req) -> Result<Response<Body>, ApiError> {
    let doc = req
        .state
        .backend
        .engine(|e| {
            let images: Vec<serde_json::Value> = e
                .image_list(&hako_engine::views::image::ImageListOptions {
                    all: true,
                    labels: true,
                    digests: true,
                })?
                .iter()
                .map(|i| {
                    let tags: Vec<&hako_engine::hako_image::Reference> =
                        i.repo_tags.iter().collect();
                    let mut v = hako_docker::image::summary_json(i, &tags);
                    // Layers shared between images are not broken out.
                    v["SharedSize"] = 0.into();
                    v
                })
                .collect();
            let containers = super::containers::summaries(e, true, &[], None, true)?;
            let (usage, _) = e.volume_usage()?;
            let mut volumes = Vec::new();
            for (name, links, size) in usage {
                let mut v = match e.volume_inspect(&name) {
                    Ok(v) => hako_docker::volume::inspect_json(&v),
                    // Removed since the usage was read.
                    Err(hako_engine::Error::NoSuchVolume(_)) => continue,
                    Err(err) => return Err(err.into()),
                };
                v["UsageData"] = serde_json::json!({"Size": size, "RefCount": links});
                volumes.push(v);
            }
            Ok(serde_json::json!({
                "LayersSize": e.layers_size()?,
                "Images": images,
                "Containers": containers,
                "Volumes": volumes,
                // Per-entry records need what the cache does not keep (creation and last-use
                // times, usage counts); the total is what older clients read.
                "BuildCache": [],
                "BuilderSize": e.build_cache_usage()?.size,
            }))
        })
        .await?;
    Ok(json(StatusCode::OK, &doc))
}

/// `POST /auth`: checks credentials against the registry, as `docker login` does.
pub(super) async fn auth(mut req: Req) -> Result<Response<Body>, ApiError> {
    let body: serde_json::Value = req
        .json()
        .await?
        .ok_or_else(|| ApiError::bad_request("missing authentication body"))?;
    let username = body["username"].as_str().unwrap_or("").to_string();
    let password = body["password"].as_str().unwrap_or("").to_string();
    let server = body["serveraddress"].as_str().unwrap_or("").to_string();
    req.state
        .backend
        .engine(move |_| compat::registry_login(&server, &username, &password))
        .await?;
    Ok(json(
        StatusCode::OK,
        &j!({"Status": "Login Succeeded", "IdentityToken": ""}),
    ))
}
