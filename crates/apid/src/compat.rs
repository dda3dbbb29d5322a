//! Engine views in Docker's JSON shapes, for the answers the engine does not give typed yet.
//!
//! This is the service's adapter while the engine's typed views (`hako_docker::container`,
//! `hako_docker::image`, … of issue 16's part 1) are being built: each function here is
//! replaced by the shared view once it exists, so the CLI and the API print the same thing.

use crate::error::ApiError;
use hako_engine::{ContainerInfo, Engine, State};
use serde_json::{json, Value};

/// How the values of one filter key combine: Docker ORs them (`status=running` or
/// `status=exited`), except `label`, whose values must all hold.
pub(crate) trait FilterValues: Iterator + Sized {
    fn holds<F: FnMut(Self::Item) -> bool>(mut self, all: bool, f: F) -> bool {
        if all {
            self.all(f)
        } else {
            self.any(f)
        }
    }
}

impl<I: Iterator> FilterValues for I {}

/// A stable ID for this state root (`/info`'s `ID`).
pub(crate) fn instance_id(root: &std::path::Path) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    root.hash(&mut h);
    let a = h.finish();
    "hako".hash(&mut h);
    let b = h.finish();
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xffff,
        b >> 48,
        b & 0xffff_ffff_ffff
    )
}

/// RFC 3339 (`2026-11-22T18:30:00.5Z`, or with an offset) to nanoseconds.
pub(crate) fn parse_rfc3339(s: &str) -> Option<i64> {
    hako_engine::hako_base::time::parse_rfc3339(s).ok()
}

/// Seconds east of UTC of the service's local time zone (`TZ`, `/etc/localtime`) at Unix time
/// `secs`: dockerd reads a filter's zoneless time (`until=2026-01-02`) in its own zone.
pub(crate) fn local_offset(secs: i64) -> i64 {
    let t = secs as libc::time_t;
    // SAFETY: an all-zero `tm` is a valid value for localtime_r to overwrite.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are to live locals; localtime_r is the reentrant variant.
    if unsafe { libc::localtime_r(&t, &mut tm) }.is_null() {
        return 0;
    }
    tm.tm_gmtoff
}

/// The `State` word of a container that is not paused.
pub(crate) fn state_word(c: &ContainerInfo) -> &'static str {
    hako_engine::views::container::state_word(c.state)
}

/// The argv as Docker's `Command` column shows it (see `hako_docker::format::command_text`).
fn command_line(c: &ContainerInfo) -> String {
    hako_docker::format::command_text(&c.command)
}

/// One row of `GET /containers/json`, from the container, whether it is paused and its
/// (inspect-shaped) document; State and Status in the words of the CLI's `ps`.
pub(crate) fn container_summary(
    c: &ContainerInfo,
    ports: &[hako_engine::hako_net::PublishedPort],
    paused: bool,
    doc: &Value,
    size: Option<(u64, u64)>,
) -> Value {
    let ports: Vec<Value> = ports
        .iter()
        .map(|p| {
            json!({
                "IP": p.host_ip.to_string(),
                "PrivatePort": p.container_port,
                "PublicPort": p.host_port,
                "Type": format!("{:?}", p.proto).to_lowercase(),
            })
        })
        .collect();
    let mut networks = doc["NetworkSettings"]["Networks"].clone();
    if networks.is_null() {
        networks = json!({});
    }
    let mut v = json!({
        "Id": c.id,
        "Names": [format!("/{}", c.name)],
        "Image": c.image,
        "ImageID": c.image_id,
        "Command": command_line(c),
        "Created": c.created.div_euclid(1_000_000_000),
        "Ports": ports,
        "Labels": doc["Config"]["Labels"].clone(),
        "State": hako_docker::format::ps_state(c, paused),
        "Status": hako_docker::format::ps_status(c, paused, hako_engine::now_nanos()),
        "HostConfig": {"NetworkMode": doc["HostConfig"]["NetworkMode"].clone()},
        "NetworkSettings": {"Networks": networks},
        "Mounts": doc["Mounts"].clone(),
    });
    if let Some((rw, virt)) = size {
        v["SizeRw"] = rw.into();
        v["SizeRootFs"] = virt.into();
    }
    v
}

/// The parts of an inspect document a listing reads, from a container's stored options (for
/// containers that are not running: no endpoints, not paused).
pub(crate) fn light_doc(c: &ContainerInfo, o: &hako_engine::ContainerConfig) -> Value {
    use hako_engine::config::Mount;
    let labels = serde_json::to_value(&o.labels).unwrap_or_else(|_| json!({}));
    let mode = o.network.mode().to_string();
    let networks = match mode.as_str() {
        "none" | "host" => json!({}),
        m => {
            json!({ m: {"NetworkID": "", "EndpointID": "", "IPAddress": "", "Gateway": "", "MacAddress": ""} })
        }
    };
    let mounts: Vec<Value> = o
        .mounts
        .iter()
        .filter_map(|m| match m {
            Mount::Bind {
                source,
                target,
                readonly,
                ..
            } => Some(
                json!({"Type": "bind", "Source": source, "Destination": target, "RW": !readonly}),
            ),
            Mount::Volume {
                name,
                target,
                readonly,
            } => Some(json!({
                "Type": "volume", "Name": name.clone().unwrap_or_default(), "Source": "",
                "Destination": target, "RW": !readonly,
            })),
            Mount::Tmpfs { .. } => None,
        })
        .collect();
    json!({
        "Id": c.id,
        "Config": {"Labels": labels},
        "HostConfig": {"NetworkMode": mode},
        "NetworkSettings": {"Networks": networks},
        "Mounts": mounts,
        "State": {"Status": state_word(c), "Paused": false, "Running": false},
    })
}

/// Labels of an inspect document's `Config.Labels` as `k=v` / `k` matches.
pub(crate) fn labels_match(labels: &Value, want: &str) -> bool {
    let (k, v) = match want.split_once('=') {
        Some((k, v)) => (k, Some(v)),
        None => (want, None),
    };
    match (labels.get(k), v) {
        (Some(have), Some(v)) => have.as_str() == Some(v),
        (Some(_), None) => true,
        (None, _) => false,
    }
}

/// An event as `/events` streams it (the old `status`/`id`/`from` fields too, which docker-py
/// and compose 1.x read).
pub(crate) fn event_json(e: &hako_engine::events::Event) -> Value {
    let mut v = json!({
        "Type": e.kind,
        "Action": e.action,
        "Actor": {"ID": e.id, "Attributes": e.attributes},
        "scope": "local",
        "time": e.time_nano.div_euclid(1_000_000_000),
        "timeNano": e.time_nano,
    });
    if e.kind == "container" {
        v["status"] = e.action.clone().into();
        v["id"] = e.id.clone().into();
        if let Some(img) = e.attributes.get("image") {
            v["from"] = img.clone().into();
        }
    }
    v
}

/// The repository and tag columns of an image, Docker's `RepoTags`.
fn repo_tags(refs: &[hako_engine::hako_image::Reference]) -> Vec<String> {
    refs.iter().map(|r| r.familiar()).collect()
}

/// `GET /images/json` rows.
pub(crate) fn image_summaries(
    engine: &Engine,
    users: &std::collections::HashMap<String, usize>,
) -> Result<Vec<Value>, ApiError> {
    let mut out = Vec::new();
    for img in engine.images().list()? {
        let created = img
            .created
            .as_deref()
            .and_then(parse_rfc3339)
            .map(|n| n.div_euclid(1_000_000_000))
            .unwrap_or(0);
        let digests: Vec<String> = engine
            .images()
            .repo_digests(&img.id)
            .unwrap_or_default()
            .into_iter()
            .map(|d| match d.split_once('@') {
                Some((r, dg)) => match hako_engine::hako_image::Reference::parse(r) {
                    Ok(r) => format!("{}@{dg}", r.familiar_repository()),
                    Err(_) => d.clone(),
                },
                None => d,
            })
            .collect();
        let labels = engine
            .images()
            .resolve(&img.id)
            .ok()
            .and_then(|i| serde_json::to_value(i.config.config().as_ref()?.labels()).ok())
            .filter(|l| !l.is_null())
            .unwrap_or_else(|| json!({}));
        out.push(json!({
            "Id": img.id,
            "ParentId": "",
            "RepoTags": repo_tags(&img.repo_tags),
            "RepoDigests": digests,
            "Created": created,
            "Size": img.size,
            "SharedSize": -1,
            "VirtualSize": img.size,
            "Labels": labels,
            "Containers": users.get(&img.id).copied().map_or(-1, |n| n as i64),
        }));
    }
    Ok(out)
}

/// `GET /images/{name}/json`.
pub(crate) fn image_inspect(engine: &Engine, name: &str) -> Result<Value, ApiError> {
    let image = engine.images().resolve(name)?;
    let raw: Value = serde_json::from_slice(&engine.images().read_blob(&image.id)?)
        .map_err(|e| ApiError::internal(format!("image config of {}: {e}", image.id)))?;
    let repo_digests: Vec<String> = engine
        .images()
        .repo_digests(&image.id)?
        .into_iter()
        .map(|d| match d.split_once('@') {
            Some((r, dg)) => match hako_engine::hako_image::Reference::parse(r) {
                Ok(r) => format!("{}@{dg}", r.familiar_repository()),
                Err(_) => d.clone(),
            },
            None => d,
        })
        .collect();
    let mut config = raw.get("config").cloned().unwrap_or(Value::Null);
    if let Some(o) = config.as_object_mut() {
        // Docker's ContainerConfig shape: the fields an image config lacks, zeroed.
        for (k, v) in [
            ("Hostname", json!("")),
            ("Domainname", json!("")),
            ("User", json!("")),
            ("AttachStdin", json!(false)),
            ("AttachStdout", json!(false)),
            ("AttachStderr", json!(false)),
            ("Tty", json!(false)),
            ("OpenStdin", json!(false)),
            ("StdinOnce", json!(false)),
            ("Image", json!("")),
            ("Volumes", Value::Null),
            ("WorkingDir", json!("")),
            ("Entrypoint", Value::Null),
            ("OnBuild", Value::Null),
            ("Labels", Value::Null),
        ] {
            o.entry(k).or_insert(v);
        }
    }
    let mut doc = json!({
        "Id": image.id,
        "RepoTags": repo_tags(&image.repo_tags),
        "RepoDigests": repo_digests,
        "Parent": "",
        "Comment": raw["history"].as_array().and_then(|h| h.last()).and_then(|h| h["comment"].as_str()).unwrap_or(""),
        "Created": raw["created"].as_str().unwrap_or("0001-01-01T00:00:00Z"),
        "DockerVersion": raw["docker_version"].as_str().unwrap_or(""),
        "Author": raw["author"].as_str().unwrap_or(""),
        "Config": config,
        "Architecture": raw["architecture"],
        "Os": raw["os"],
        "Size": image.size,
        "VirtualSize": image.size,
        "GraphDriver": {
            "Data": {
                "LowerDir": image.layers.iter().rev().map(|p| p.display().to_string()).collect::<Vec<_>>().join(":"),
            },
            "Name": "overlay",
        },
        "RootFS": {"Type": "layers", "Layers": raw["rootfs"]["diff_ids"]},
        "Metadata": {"LastTagTime": "0001-01-01T00:00:00Z"},
    });
    if let Some(v) = raw["variant"].as_str() {
        doc["Variant"] = v.into();
    }
    Ok(doc)
}

/// `GET /system/df`: images, containers and volumes with their sizes; the CLI sums them.
pub(crate) fn system_df(engine: &Engine) -> Result<Value, ApiError> {
    let containers = engine.list(true)?;
    let sizes = engine.container_sizes(&containers)?;
    let mut users: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for c in &containers {
        *users.entry(c.image_id.clone()).or_default() += 1;
    }
    let mut images = image_summaries(engine, &users)?;
    for i in &mut images {
        if i["Containers"].as_i64() == Some(-1) {
            i["Containers"] = 0.into();
        }
        i["SharedSize"] = 0.into();
    }
    let layers: u64 = images.iter().filter_map(|i| i["Size"].as_u64()).sum();
    let mut cs = Vec::new();
    for (c, size) in containers.iter().zip(sizes) {
        let doc = engine.inspect(&c.id).unwrap_or(Value::Null);
        let ports = if c.state == State::Running {
            engine.published_ports(&c.id)
        } else {
            Vec::new()
        };
        let paused = doc["State"]["Paused"].as_bool().unwrap_or(false);
        cs.push(container_summary(c, &ports, paused, &doc, Some(size)));
    }
    let (vols, _) = engine.volume_usage()?;
    let info: std::collections::HashMap<String, hako_engine::volumes::VolumeInfo> = engine
        .volume_list()?
        .into_iter()
        .map(|v| (v.name.clone(), v))
        .collect();
    let volumes: Vec<Value> = vols
        .into_iter()
        .map(|(name, links, size)| {
            let mut v = info
                .get(&name)
                .map(volume_json)
                .unwrap_or_else(|| json!({"Name": name}));
            v["UsageData"] = json!({"Size": size, "RefCount": links});
            v
        })
        .collect();
    Ok(json!({
        "LayersSize": layers,
        "Images": images,
        "Containers": cs,
        "Volumes": volumes,
        "BuildCache": [],
    }))
}

/// A volume as Docker shows it.
pub(crate) fn volume_json(v: &hako_engine::volumes::VolumeInfo) -> Value {
    let mut doc = serde_json::to_value(v).unwrap_or_else(|_| json!({}));
    doc["Options"] = json!({});
    doc
}

/// `POST /auth`: checks the credentials against the registry (the client keeps them).
pub(crate) fn registry_login(server: &str, username: &str, password: &str) -> Result<(), ApiError> {
    if username.is_empty() || password.is_empty() {
        return Err(ApiError::bad_request("username and password are required"));
    }
    let domain = hako_registry::login_domain((!server.is_empty()).then_some(server));
    hako_registry::check_login(
        &domain,
        &hako_registry::Credentials {
            username: username.into(),
            password: password.into(),
        },
    )
    .map_err(|e| {
        ApiError::new(
            hyper::StatusCode::UNAUTHORIZED,
            format!("login attempt to {domain} failed: {e}"),
        )
    })
}

/// The `filters` of container, network and volume prune: `until=` (created before; not for
/// volumes, as dockerd), `label=`/`label!=` (`k` or `k=v`), and the keys the endpoint reads
/// itself (`extra`). Any other key is the client's error, as dockerd answers it.
#[derive(Debug, Default)]
pub(crate) struct PruneFilter {
    until: Option<i64>,
    label: Vec<String>,
    not_label: Vec<String>,
}

impl PruneFilter {
    pub(crate) fn parse(
        filters: &[(String, String)],
        until_ok: bool,
        extra: &[&str],
    ) -> Result<PruneFilter, ApiError> {
        let now = hako_engine::hako_base::time::now_nanos();
        let mut f = PruneFilter::default();
        for (k, v) in filters {
            match k.as_str() {
                "until" if until_ok => {
                    let t = hako_docker::image::parse_until(
                        v,
                        now,
                        local_offset(now.div_euclid(1_000_000_000)),
                    )
                    .map_err(|e| ApiError::bad_request(e.to_string()))?;
                    f.until = Some(t);
                }
                "label" => f.label.push(v.clone()),
                "label!" => f.not_label.push(v.clone()),
                k if extra.contains(&k) => {}
                _ => return Err(ApiError::bad_request(format!("invalid filter '{k}'"))),
            }
        }
        Ok(f)
    }

    /// Whether the prune may take an object created at `created` (ns) with `labels`.
    pub(crate) fn accepts(&self, created: Option<i64>, labels: &Value) -> bool {
        if let Some(until) = self.until {
            if created.is_none_or(|c| c >= until) {
                return false;
            }
        }
        self.label.iter().all(|l| labels_match(labels, l))
            && !self.not_label.iter().any(|l| labels_match(labels, l))
    }

    /// Whether it takes everything the unfiltered prune takes.
    pub(crate) fn is_empty(&self) -> bool {
        self.until.is_none() && self.label.is_empty() && self.not_label.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prune_filters_as_dockerd_reads_them() {
        let f = |pairs: &[(&str, &str)]| {
            let v: Vec<(String, String)> = pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            PruneFilter::parse(&v, true, &["all"])
        };
        let labels = json!({"app": "web", "tier": "front"});
        assert!(f(&[]).unwrap().accepts(None, &labels));
        assert!(f(&[("label", "app=web")]).unwrap().accepts(None, &labels));
        assert!(f(&[("label", "app")]).unwrap().accepts(None, &labels));
        assert!(!f(&[("label", "app=db")]).unwrap().accepts(None, &labels));
        assert!(!f(&[("label!", "tier")]).unwrap().accepts(None, &labels));
        assert!(f(&[("label!", "tier=back")])
            .unwrap()
            .accepts(None, &labels));
        let now = hako_engine::hako_base::time::now_nanos();
        let hour = 3_600_000_000_000;
        let until = f(&[("until", "30m")]).unwrap();
        assert!(until.accepts(Some(now - hour), &labels));
        assert!(!until.accepts(Some(now), &labels));
        assert!(!until.accepts(None, &labels));
        assert!(f(&[("all", "true")]).unwrap().is_empty());
        let e = f(&[("until", "soon")]).unwrap_err();
        assert_eq!(e.status, hyper::StatusCode::BAD_REQUEST);
        let e = f(&[("dangling", "true")]).unwrap_err();
        assert!(e.message.contains("dangling"), "{}", e.message);
        let v = vec![("until".to_string(), "1h".to_string())];
        assert!(PruneFilter::parse(&v, false, &[]).is_err());
    }

    #[test]
    fn listing_rows_from_stored_options() {
        let c = ContainerInfo {
            id: "abc".into(),
            name: "n".into(),
            image: "busybox".into(),
            image_id: "sha256:1".into(),
            command: vec!["true".into()],
            created: 0,
            state: State::Created,
            exit_code: None,
            started_at: None,
            finished_at: None,
            health: None,
        };
        let o = hako_engine::ContainerConfig {
            labels: [
                ("a".to_string(), "1".to_string()),
                ("flag".to_string(), String::new()),
            ]
            .into_iter()
            .collect(),
            network: hako_engine::Network::Named("net1".into()),
            mounts: vec![
                hako_engine::config::Mount::Volume {
                    name: Some("v1".into()),
                    target: "/data".into(),
                    readonly: true,
                },
                hako_engine::config::Mount::Bind {
                    source: "/host".into(),
                    target: "/h".into(),
                    readonly: false,
                    propagation: "rprivate".into(),
                },
            ],
            ..Default::default()
        };
        let d = light_doc(&c, &o);
        assert_eq!(d["Config"]["Labels"], json!({"a": "1", "flag": ""}));
        assert!(labels_match(&d["Config"]["Labels"], "a=1"));
        assert_eq!(d["HostConfig"]["NetworkMode"], "net1");
        assert!(d["NetworkSettings"]["Networks"]["net1"].is_object());
        assert_eq!(d["Mounts"][0]["Name"], "v1");
        assert_eq!(d["Mounts"][0]["RW"], false);
        assert_eq!(d["Mounts"][1]["Type"], "bind");
        assert_eq!(d["State"]["Status"], "created");
    }

    #[test]
    fn label_values_are_all_required() {
        assert!(["a", "b"].iter().holds(true, |x| !x.is_empty()));
        assert!(!["a", ""].iter().holds(true, |x| !x.is_empty()));
        assert!(["a", ""].iter().holds(false, |x| !x.is_empty()));
    }

    #[test]
    fn rfc3339() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339("2000-03-01T00:00:01.5Z"),
            Some(951_868_801_500_000_000)
        );
        assert_eq!(
            parse_rfc3339("2000-03-01T09:00:01+09:00"),
            Some(951_868_801_000_000_000)
        );
        assert_eq!(parse_rfc3339("2000-13-01T00:00:00Z"), None);
        assert_eq!(parse_rfc3339("not a time at all!!"), None);
    }

    #[test]
    fn label_filters() {
        let l = json!({"a": "1", "b": ""});
        assert!(labels_match(&l, "a"));
        assert!(labels_match(&l, "a=1"));
        assert!(!labels_match(&l, "a=2"));
        assert!(labels_match(&l, "b="));
        assert!(!labels_match(&l, "c"));
    }
}
