//! Docker's grammar and shapes for images: `images --filter` and `image prune --filter`, the
//! `image inspect` document, the rows the Engine API lists, history, and pull/push progress
//! as Docker's JSON messages.

use hako_build::BuildEvent;
use hako_engine::hako_image::{Image, Reference};
use hako_engine::images::{LayerStatus, Progress};
use hako_engine::views::image::{HistoryEntry, ImageInspect, ImageSummary, RemoveEvent};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// Why a filter or a request could not be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A malformed filter, or one Docker does not know for this command (Docker's daemon
    /// refuses those: status 1 in the CLI, 400 from the API).
    #[error("{0}")]
    Invalid(String),
    /// The engine failed (an image named by `before=`/`since=` does not exist, say).
    #[error(transparent)]
    Engine(#[from] hako_engine::Error),
}

/// The `filters` query parameter of the Engine API (`{"dangling":["true"]}`, or the older
/// `{"dangling":{"true":true}}`) as `key=value` arguments, the form `--filter` takes.
pub fn filter_args_from_json(text: &str) -> Result<Vec<String>, Error> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let v: Value = serde_json::from_str(text)
        .map_err(|e| Error::Invalid(format!("invalid filter JSON: {e}")))?;
    let Value::Object(m) = v else {
        return Err(Error::Invalid("invalid filter JSON: not an object".into()));
    };
    let mut out = Vec::new();
    for (k, vals) in m {
        match vals {
            Value::Array(a) => {
                for x in a {
                    match x {
                        Value::String(s) => out.push(format!("{k}={s}")),
                        other => {
                            return Err(Error::Invalid(format!(
                                "invalid filter '{k}': value {other} is not a string"
                            )))
                        }
                    }
                }
            }
            Value::Object(o) => {
                for (s, on) in o {
                    if on == Value::Bool(true) {
                        out.push(format!("{k}={s}"));
                    }
                }
            }
            other => {
                return Err(Error::Invalid(format!(
                    "invalid filter '{k}': {other} is neither a list nor a map"
                )))
            }
        }
    }
    Ok(out)
}

/// A `label=k` (`None`) or `label=k=v` condition.
type Label = (String, Option<String>);

fn label_of(v: &str) -> Label {
    match v.split_once('=') {
        Some((k, v)) => (k.to_string(), Some(v.to_string())),
        None => (v.to_string(), None),
    }
}

fn label_holds(labels: &BTreeMap<String, String>, (k, v): &Label) -> bool {
    match (labels.get(k), v) {
        (Some(have), Some(want)) => have == want,
        (Some(_), None) => true,
        (None, _) => false,
    }
}

fn parse_bool(key: &str, value: &str) -> Result<bool, Error> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(Error::Invalid(format!("invalid filter '{key}={value}'"))),
    }
}

/// Go's `path.Match` as a compiled pattern: `*` and `?` stop at `/`, `[...]` classes with
/// ranges and `^`, `\` escapes. A malformed pattern is an error, as in Go. Matching takes
/// linear time, whatever the pattern (`hako_build::pattern`).
pub fn glob(pattern: &str) -> Result<regex::Regex, Error> {
    hako_build::pattern::compile(pattern, hako_build::pattern::Dialect::FilepathMatch)
        .map_err(|e| Error::Invalid(format!("invalid reference pattern {pattern:?}: {e}")))
}

/// `images --filter` (dangling, reference, label, before, since). Values of one key are ORed,
/// keys ANDed, labels all must hold, as in Docker.
#[derive(Debug, Default)]
pub struct ImageFilters {
    /// `dangling=true|false`.
    pub dangling: Option<bool>,
    /// `reference=` patterns, compiled.
    pub reference: Vec<regex::Regex>,
    /// `label=` conditions.
    pub label: Vec<Label>,
    /// `before=IMAGE`.
    pub before: Option<String>,
    /// `since=IMAGE`.
    pub since: Option<String>,
}

/// The creation times `before=` and `since=` name, resolved once per listing.
#[derive(Debug, Default, Clone, Copy)]
pub struct Bounds {
    before: Option<i64>,
    since: Option<i64>,
}

impl ImageFilters {
    /// Parses `key=value` arguments.
    pub fn parse(args: &[String]) -> Result<ImageFilters, Error> {
        let mut f = ImageFilters::default();
        for arg in args {
            let Some((key, value)) = arg.split_once('=') else {
                return Err(Error::Invalid(format!(
                    "bad format of filter (expected name=value): {arg}"
                )));
            };
            match key {
                "dangling" => f.dangling = Some(parse_bool(key, value)?),
                "reference" => f.add_reference(value)?,
                "label" => f.label.push(label_of(value)),
                "before" => f.before = Some(value.to_string()),
                "since" => f.since = Some(value.to_string()),
                _ => return Err(Error::Invalid(format!("invalid filter '{key}'"))),
            }
        }
        Ok(f)
    }

    /// Adds a `reference=` pattern; a malformed one is refused now rather than matching
    /// nothing.
    pub fn add_reference(&mut self, pattern: &str) -> Result<(), Error> {
        self.reference.push(glob(pattern)?);
        Ok(())
    }

    /// Whether matching needs the images' labels ([`hako_engine::views::image::ImageListOptions::labels`]).
    pub fn needs_labels(&self) -> bool {
        !self.label.is_empty()
    }

    /// Resolves `before=` and `since=` to creation times.
    pub fn bounds(&self, engine: &hako_engine::Engine) -> Result<Bounds, Error> {
        let created = |name: &Option<String>| -> Result<Option<i64>, Error> {
            let Some(n) = name else { return Ok(None) };
            let img = engine
                .images()
                .resolve(n)
                .map_err(hako_engine::Error::from)?;
            img.config
                .created()
                .as_deref()
                .and_then(hako_engine::images::parse_rfc3339)
                .map(Some)
                .ok_or_else(|| Error::Invalid(format!("image {n} has no creation time")))
        };
        Ok(Bounds {
            before: created(&self.before)?,
            since: created(&self.since)?,
        })
    }

    /// Docker's `reference.FamiliarMatch`: a pattern against `name:tag`, then against `name`.
    pub fn reference_matches(&self, r: &Reference) -> bool {
        self.reference.is_empty()
            || self
                .reference
                .iter()
                .any(|p| p.is_match(&r.familiar()) || p.is_match(&r.familiar_repository()))
    }

    /// The tags of `img` a listing shows: those `reference=` matches; `None` when the image is
    /// filtered out.
    pub fn matches<'a>(&self, img: &'a ImageSummary, bounds: Bounds) -> Option<Vec<&'a Reference>> {
        match self.dangling {
            Some(true) if !img.dangling => return None,
            Some(false) if img.repo_tags.is_empty() => return None,
            _ => {}
        }
        if bounds
            .before
            .is_some_and(|b| img.created.is_none_or(|c| c >= b))
            || bounds
                .since
                .is_some_and(|s| img.created.is_none_or(|c| c <= s))
        {
            return None;
        }
        if !self.label.is_empty() {
            let empty = BTreeMap::new();
            let labels = img.labels.as_ref().unwrap_or(&empty);
            if !self.label.iter().all(|l| label_holds(labels, l)) {
                return None;
            }
        }
        let tags: Vec<&Reference> = img
            .repo_tags
            .iter()
            .filter(|r| self.reference_matches(r))
            .collect();
        if !self.reference.is_empty() && tags.is_empty() {
            return None;
        }
        Some(tags)
    }
}

/// `image prune --filter`: `until=` (a duration before now, a Unix time or RFC 3339) and
/// `label=`/`label!=` (`k` or `k=v`).
#[derive(Debug, Default)]
pub struct PruneFilters {
    until: Option<i64>,
    label: Vec<Label>,
    not_label: Vec<Label>,
}

impl PruneFilters {
    /// Parses `key=value` arguments; `now` is ns since the epoch, `local_offset` the seconds
    /// east of UTC a zoneless `until=` time is read in (see [`parse_until`]).
    pub fn parse(args: &[String], now: i64, local_offset: i64) -> Result<PruneFilters, Error> {
        let mut f = PruneFilters::default();
        for arg in args {
            if let Some(v) = arg.strip_prefix("label!=") {
                f.not_label.push(label_of(v));
                continue;
            }
            let Some((key, value)) = arg.split_once('=') else {
                return Err(Error::Invalid(format!(
                    "bad format of filter (expected name=value): {arg}"
                )));
            };
            match key {
                "until" => f.until = Some(parse_until(value, now, local_offset)?),
                "label" => f.label.push(label_of(value)),
                _ => return Err(Error::Invalid(format!("invalid filter '{key}'"))),
            }
        }
        Ok(f)
    }

    /// Whether the prune may take `img`.
    pub fn accepts(&self, img: &Image) -> bool {
        let created = img
            .config
            .created()
            .as_deref()
            .and_then(hako_engine::images::parse_rfc3339);
        self.accepts_object(created, &hako_engine::images::image_labels(img))
    }

    /// Whether the prune may take an object (container, network, volume, image) created at
    /// `created` (ns since the epoch; unknown never passes `until=`) with `labels`.
    pub fn accepts_object(&self, created: Option<i64>, labels: &BTreeMap<String, String>) -> bool {
        if let Some(until) = self.until {
            if created.is_none_or(|c| c >= until) {
                return false;
            }
        }
        self.label.iter().all(|l| label_holds(labels, l))
            && !self.not_label.iter().any(|l| label_holds(labels, l))
    }

    /// Whether an `until=` was given (volume prune refuses it, as dockerd does).
    pub fn has_until(&self) -> bool {
        self.until.is_some()
    }

    /// Whether it takes everything the unfiltered prune takes.
    pub fn is_empty(&self) -> bool {
        self.until.is_none() && self.label.is_empty() && self.not_label.is_empty()
    }
}

/// Docker's `until` values ([`hako_base::time::parse_timestamp`], the grammar of every
/// `until=` and `--since`/`--until`): `10m`, `2d` (before `now`), `1700000000[.5]`, or an RFC
/// 3339 date or time, in its zone or else `local_offset` seconds east of UTC; as ns since the
/// epoch.
pub fn parse_until(v: &str, now: i64, local_offset: i64) -> Result<i64, Error> {
    hako_engine::hako_base::time::parse_timestamp(v, now, local_offset)
        .map_err(|e| Error::Invalid(format!("invalid filter 'until={v}': {e}")))
}

/// `repository@digest` with the familiar repository name (`busybox@sha256:…`), as Docker
/// shows RepoDigests.
pub fn familiar_digest(d: &str) -> String {
    match d.split_once('@') {
        Some((r, dg)) => match Reference::parse(r) {
            Ok(r) => format!("{}@{dg}", r.familiar_repository()),
            Err(_) => d.to_string(),
        },
        None => d.to_string(),
    }
}

/// The `image inspect` document (Docker's `ImageInspect`), which both `hako image inspect` and
/// `GET /images/{name}/json` give.
pub fn inspect_json(i: &ImageInspect) -> Value {
    // An imported image's config may have no `config` at all; Docker shows the same zeroed
    // shape then.
    let mut config = match &i.config {
        Value::Object(_) => i.config.clone(),
        _ => json!({}),
    };
    if let Some(o) = config.as_object_mut() {
        // Docker's ContainerConfig shape: the fields an image config lacks, zeroed, as
        // dockerd gives them (clients index some without checking).
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
            ("Env", Value::Null),
            ("Cmd", Value::Null),
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
        "Id": i.id,
        "RepoTags": i.repo_tags.iter().map(Reference::familiar).collect::<Vec<_>>(),
        "RepoDigests": i.repo_digests.iter().map(|d| familiar_digest(d)).collect::<Vec<_>>(),
        "Parent": i.parent.as_deref().unwrap_or(""),
        "Comment": i.comment,
        "Created": i.created.as_deref().unwrap_or("0001-01-01T00:00:00Z"),
        "DockerVersion": i.docker_version,
        "Author": i.author,
        "Config": config,
        "Architecture": i.architecture,
        "Os": i.os,
        "Size": i.size,
        // Removed in API 1.44, read by older clients (the 20.10 CLI's SIZE column).
        "VirtualSize": i.size,
        "GraphDriver": {
            "Data": {
                "LowerDir": i.layer_dirs.iter().rev().map(|p| p.display().to_string()).collect::<Vec<_>>().join(":"),
            },
            "Name": "overlay",
        },
        "RootFS": {
            "Type": "layers",
            "Layers": i.diff_ids,
        },
        "Metadata": { "LastTagTime": "0001-01-01T00:00:00Z" },
    });
    if let Some(v) = &i.variant {
        doc["Variant"] = v.as_str().into();
    }
    doc
}

/// One image of `GET /images/json` (Docker's `ImageSummary`); `tags` are the tags the filters
/// kept.
pub fn summary_json(i: &ImageSummary, tags: &[&Reference]) -> Value {
    json!({
        "Id": i.id,
        "ParentId": i.parent.as_deref().unwrap_or(""),
        "RepoTags": tags.iter().map(|r| r.familiar()).collect::<Vec<_>>(),
        "RepoDigests": i.repo_digests.iter().map(|d| familiar_digest(d)).collect::<Vec<_>>(),
        "Created": i.created.map_or(0, |n| n.div_euclid(1_000_000_000)),
        "Size": i.size,
        "SharedSize": -1,
        "VirtualSize": i.size,
        "Labels": i.labels.clone().unwrap_or_default(),
        "Containers": i.containers,
    })
}

/// One entry of `GET /images/{name}/history` (Docker's `HistoryResponseItem`).
pub fn history_json(h: &HistoryEntry) -> Value {
    json!({
        "Id": h.id.as_deref().unwrap_or("<missing>"),
        "Created": h.created_nanos.map_or(0, |n| n.div_euclid(1_000_000_000)),
        "CreatedBy": h.created_by,
        "Tags": h.tags.iter().map(Reference::familiar).collect::<Vec<_>>(),
        "Size": h.size,
        "Comment": h.comment,
    })
}

/// What `DELETE /images/{name}` and `POST /images/prune` list (Docker's
/// `ImageDeleteResponseItem`).
pub fn remove_event_json(e: &RemoveEvent) -> Value {
    match e {
        RemoveEvent::Untagged(r) => json!({ "Untagged": r }),
        RemoveEvent::Deleted(id) => json!({ "Deleted": id }),
    }
}

/// Docker's JSON message for a pull or push step, as `POST /images/create` and
/// `POST /images/{name}/push` stream them.
pub fn progress_json(p: &Progress) -> Value {
    match p {
        Progress::PullingFrom { tag, repository } => {
            json!({"status": format!("Pulling from {repository}"), "id": tag})
        }
        Progress::Layer { id, status } => match status {
            LayerStatus::Downloading { current, total } => json!({
                "status": status.text(),
                "progressDetail": {"current": current, "total": total},
                "id": id,
            }),
            _ => json!({"status": status.text(), "progressDetail": {}, "id": id}),
        },
        Progress::Pushed { tag, digest, size } => json!({
            "status": format!("{tag}: digest: {digest} size: {size}"),
            "progressDetail": {},
            "aux": {"Tag": tag, "Digest": digest, "Size": size},
        }),
        other => json!({"status": other.line().unwrap_or_default()}),
    }
}

/// Docker's JSON messages for a build event, as `POST /build` streams them: builder lines as
/// `{"stream": …}`, a base image's pull as the pull's own messages.
pub fn build_event_json(e: &BuildEvent) -> Value {
    match e {
        BuildEvent::Pull(p) => progress_json(p),
        e => json!({"stream": e.text()}),
    }
}

/// The messages that end a successful `POST /build`: the image's ID as `aux` (what docker-py
/// and the docker CLI read it from), then Docker's `Successfully built`/`tagged` lines.
pub fn build_done_json(image_id: &str, tags: &[Reference]) -> Vec<Value> {
    let hex = image_id.strip_prefix("sha256:").unwrap_or(image_id);
    let mut out = vec![
        json!({"aux": {"ID": image_id}}),
        json!({"stream": format!("Successfully built {}\n", &hex[..12.min(hex.len())])}),
    ];
    out.extend(
        tags.iter()
            .map(|t| json!({"stream": format!("Successfully tagged {}\n", t.familiar())})),
    );
    out
}

/// Docker's JSON message for a failure in the middle of a stream.
pub fn error_json(message: &str) -> Value {
    json!({"errorDetail": {"message": message}, "error": message})
}

/// What `POST /images/load` streams for each image loaded.
pub fn loaded_json(tags: &[Reference], id: &str) -> Vec<Value> {
    if tags.is_empty() {
        return vec![json!({"stream": format!("Loaded image ID: {id}\n")})];
    }
    tags.iter()
        .map(|t| json!({"stream": format!("Loaded image: {}\n", t.familiar())}))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_like_go_path_match() {
        let m = |p: &str, n: &str| glob(p).unwrap().is_match(n);
        assert!(m("busybox", "busybox"));
        assert!(m("busy*", "busybox"));
        assert!(m("*:latest", "busybox:latest"));
        assert!(!m("*", "library/busybox"), "* stops at /");
        assert!(m("*/*", "library/busybox"));
        assert!(m("b?sybox", "busybox"));
        assert!(m("[a-c]usybox", "busybox"));
        assert!(!m("[^a-c]usybox", "busybox"));
        assert!(m("a\\*b", "a*b"));
        assert!(!m("a\\*b", "axb"));
        assert!(!m("busy", "busybox"));
        assert!(glob("[abc").is_err());
        assert!(glob("ab\\").is_err());
        // Once exponential backtracking.
        assert!(!m(&format!("{}b", "*a".repeat(30)), &"a".repeat(200)));
    }

    fn summary(tags: &[&str], labels: &[(&str, &str)]) -> ImageSummary {
        ImageSummary {
            id: "sha256:ab".into(),
            parent: None,
            repo_tags: tags.iter().map(|t| Reference::parse(t).unwrap()).collect(),
            repo_digests: Vec::new(),
            created: Some(1_000),
            created_text: None,
            size: 1,
            containers: 0,
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            dangling: tags.is_empty(),
            intermediate: false,
        }
    }

    #[test]
    fn filters_parse_and_match() {
        let f = ImageFilters::parse(&[
            "dangling=false".into(),
            "label=a".into(),
            "label=b=2".into(),
            "reference=busy*".into(),
        ])
        .unwrap();
        assert_eq!(f.dangling, Some(false));
        let b = Bounds::default();
        let both = summary(&["busybox:1", "alpine"], &[("a", "x"), ("b", "2")]);
        let tags = f.matches(&both, b).unwrap();
        assert_eq!(tags.len(), 1, "reference= keeps the matching tags only");
        assert!(f
            .matches(&summary(&["busybox:1"], &[("a", "x")]), b)
            .is_none());
        assert!(f
            .matches(&summary(&[], &[("a", "x"), ("b", "2")]), b)
            .is_none());
        assert!(ImageFilters::parse(&["nope=1".into()]).is_err());
        assert!(ImageFilters::parse(&["dangling=maybe".into()]).is_err());
        assert!(ImageFilters::parse(&["dangling".into()]).is_err());
        let bounded = Bounds {
            before: Some(1_000),
            since: None,
        };
        assert!(ImageFilters::default().matches(&both, bounded).is_none());
    }

    #[test]
    fn until_values_like_docker() {
        let now = 1_000_000 * 1_000_000_000i64;
        let at = |v: &str| parse_until(v, now, 0).unwrap();
        let s = 1_000_000_000i64;
        assert_eq!(at("10m"), now - 600 * s);
        assert_eq!(at("1h30m"), now - 5400 * s);
        assert_eq!(at("1.5h"), now - 5400 * s);
        // Days, as `builder prune` and every other `until=` take them.
        assert_eq!(at("2d"), now - 2 * 86_400 * s);
        assert_eq!(at("500000"), 500_000 * s);
        assert_eq!(at("1970-01-02T00:00:00Z"), 86_400 * s);
        // A time without a zone is in the caller's.
        assert_eq!(parse_until("1970-01-02", now, 3600).unwrap(), 82_800 * s);
        for bad in ["", "10x", "h", "1.5.3"] {
            assert!(parse_until(bad, now, 0).is_err(), "{bad}");
        }
        assert!(PruneFilters::parse(&["dangling=true".into()], now, 0).is_err());
    }

    #[test]
    fn api_filters_become_arguments() {
        let mut a = filter_args_from_json(r#"{"dangling":["true"],"label":["a=b","c"]}"#).unwrap();
        a.sort();
        assert_eq!(a, ["dangling=true", "label=a=b", "label=c"]);
        let a = filter_args_from_json(r#"{"dangling":{"true":true,"false":false}}"#).unwrap();
        assert_eq!(a, ["dangling=true"]);
        assert!(filter_args_from_json("[1]").is_err());
        assert!(filter_args_from_json(r#"{"a":[1]}"#).is_err());
        assert!(filter_args_from_json("").unwrap().is_empty());
    }

    #[test]
    fn progress_as_docker_json() {
        let v = progress_json(&Progress::PullingFrom {
            tag: "latest".into(),
            repository: "library/busybox".into(),
        });
        assert_eq!(
            v,
            json!({"status": "Pulling from library/busybox", "id": "latest"})
        );
        let v = progress_json(&Progress::Layer {
            id: "abc".into(),
            status: LayerStatus::Downloading {
                current: 5,
                total: 10,
            },
        });
        assert_eq!(v["progressDetail"]["current"], 5);
        let v = progress_json(&Progress::PullDone {
            reference: "busybox:latest".into(),
            downloaded: true,
        });
        assert_eq!(
            v["status"],
            "Status: Downloaded newer image for busybox:latest"
        );
        let v = progress_json(&Progress::Pushed {
            tag: "1".into(),
            digest: "sha256:x".into(),
            size: 9,
        });
        assert_eq!(v["aux"]["Size"], 9);
    }

    #[test]
    fn build_events_as_docker_json() {
        let v = build_event_json(&BuildEvent::Step {
            n: 1,
            of: 2,
            instruction: "FROM busybox".into(),
        });
        assert_eq!(v, json!({"stream": "Step 1/2 : FROM busybox\n"}));
        let v = build_event_json(&BuildEvent::UsingCache);
        assert_eq!(v["stream"], " ---> Using cache\n");
        let done = build_done_json(
            "sha256:0123456789abcdef",
            &[Reference::parse("app:1").unwrap()],
        );
        assert_eq!(done[0]["aux"]["ID"], "sha256:0123456789abcdef");
        assert_eq!(done[1]["stream"], "Successfully built 0123456789ab\n");
        assert_eq!(done[2]["stream"], "Successfully tagged app:1\n");
    }
}
