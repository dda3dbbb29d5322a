//! `RUN --mount=type=cache|bind|tmpfs|secret`: parsing the option list and turning each into
//! a bind or tmpfs mount of the step's container.
//!
//! - `cache` mounts a directory kept in the build cache (`ROOT/build-cache/mounts/`), named by
//!   its `id` (the target when none is given), so later builds see what earlier ones left;
//!   `builder prune` removes them.
//! - `bind` mounts a path of the build context (what `.dockerignore` keeps of it), or with
//!   `from=` of another stage's or image's filesystem, read-only; with `rw` writable, the
//!   writes going to a scratch overlay layer thrown away after the step. What it shows is part
//!   of the step's cache key.
//! - `tmpfs` mounts an empty tmpfs.
//! - `secret` mounts the file given with `--secret id=ID,src=PATH` read-only, by default at
//!   `/run/secrets/ID`; it is not part of the cache key and never of a layer.

use crate::Error;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One `--mount` flag, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mount {
    /// `type=cache`.
    Cache {
        /// Where it appears in the container.
        target: String,
        /// `id=` (defaults to the target).
        id: String,
        /// `ro`.
        readonly: bool,
        /// `mode=` for a new directory (octal, default 0755).
        mode: u32,
        /// `uid=`, `gid=` for a new directory.
        owner: (u32, u32),
    },
    /// `type=bind`: a path of the context, or of another stage's or image's filesystem.
    Bind {
        /// Where it appears in the container.
        target: String,
        /// The path (`source=`, default the root) in the context or in `from`, cleaned and
        /// relative.
        source: String,
        /// `from=`: the stage (name or index) or image whose filesystem is bound; None for the
        /// context.
        from: Option<String>,
        /// `rw`: writable, the writes thrown away after the step.
        readwrite: bool,
    },
    /// `type=tmpfs`.
    Tmpfs {
        /// Where it appears in the container.
        target: String,
        /// `size=` in bytes, if given.
        size: Option<u64>,
    },
    /// `type=secret`.
    Secret {
        /// `id=`.
        id: String,
        /// Where it appears in the container.
        target: String,
        /// `required=true`: a missing secret fails the step.
        required: bool,
    },
}

impl Mount {
    /// The path inside the container.
    pub fn target(&self) -> &str {
        match self {
            Mount::Cache { target, .. }
            | Mount::Bind { target, .. }
            | Mount::Tmpfs { target, .. }
            | Mount::Secret { target, .. } => target,
        }
    }
}

fn bool_value(key: &str, v: Option<&str>) -> Result<bool, String> {
    match v {
        None | Some("true") | Some("1") => Ok(true),
        Some("false") | Some("0") => Ok(false),
        Some(other) => Err(format!("invalid value for {key}: {other:?}")),
    }
}

/// Parses one `--mount` value; `workdir` makes a relative target absolute.
pub fn parse(spec: &str, workdir: &str) -> Result<Mount, String> {
    let mut kv: Vec<(String, Option<String>)> = Vec::new();
    for field in spec.split(',') {
        let field = field.trim();
        if field.is_empty() {
            continue;
        }
        match field.split_once('=') {
            Some((k, v)) => kv.push((k.to_ascii_lowercase(), Some(v.to_string()))),
            None => kv.push((field.to_ascii_lowercase(), None)),
        }
    }
    let get = |names: &[&str]| -> Option<String> {
        kv.iter()
            .rev()
            .find(|(k, _)| names.contains(&k.as_str()))
            .and_then(|(_, v)| v.clone())
    };
    let has = |names: &[&str]| kv.iter().any(|(k, _)| names.contains(&k.as_str()));
    let kind = get(&["type"]).unwrap_or_else(|| "bind".into());
    let allowed: &[&str] = match kind.as_str() {
        "cache" => &[
            "type",
            "target",
            "dst",
            "destination",
            "id",
            "sharing",
            "ro",
            "readonly",
            "mode",
            "uid",
            "gid",
        ],
        "bind" => &[
            "type",
            "target",
            "dst",
            "destination",
            "source",
            "src",
            "from",
            "ro",
            "readonly",
            "rw",
            "readwrite",
        ],
        "tmpfs" => &["type", "target", "dst", "destination", "size"],
        "secret" => &[
            "type",
            "target",
            "dst",
            "destination",
            "id",
            "required",
            "mode",
            "uid",
            "gid",
        ],
        "ssh" => return Err("type=ssh mounts are not supported by hako build".into()),
        other => return Err(format!("unsupported mount type {other:?}")),
    };
    if let Some((k, _)) = kv.iter().find(|(k, _)| !allowed.contains(&k.as_str())) {
        return Err(format!("unexpected key '{k}' for a {kind} mount"));
    }
    let absolute = |t: String| -> String {
        if t.starts_with('/') {
            t
        } else {
            format!("{}/{t}", workdir.trim_end_matches('/'))
        }
    };
    let target = get(&["target", "dst", "destination"]).map(absolute);
    let need_target = || {
        target
            .clone()
            .ok_or_else(|| format!("a {kind} mount needs a target"))
    };
    let octal = |k: &str, default: u32| -> Result<u32, String> {
        match get(&[k]) {
            None => Ok(default),
            Some(v) => u32::from_str_radix(&v, 8)
                .ok()
                .filter(|m| *m <= 0o7777)
                .ok_or_else(|| format!("invalid {k}={v}: an octal mode is expected")),
        }
    };
    let number = |k: &str| -> Result<u32, String> {
        match get(&[k]) {
            None => Ok(0),
            Some(v) => v.parse().map_err(|_| format!("invalid {k}={v}")),
        }
    };
    match kind.as_str() {
        "cache" => {
            let target = need_target()?;
            match get(&["sharing"]).as_deref() {
                None | Some("shared") | Some("locked") | Some("private") => {}
                Some(other) => return Err(format!("invalid sharing={other}")),
            }
            let readonly = if has(&["ro", "readonly"]) {
                bool_value("readonly", get(&["ro", "readonly"]).as_deref())?
            } else {
                false
            };
            Ok(Mount::Cache {
                id: get(&["id"]).unwrap_or_else(|| target.clone()),
                target,
                readonly,
                mode: octal("mode", 0o755)?,
                owner: (number("uid")?, number("gid")?),
            })
        }
        "bind" => {
            let target = need_target()?;
            // `ro` and `rw` in order, the last one winning, as BuildKit reads them.
            let mut readwrite = false;
            for (k, v) in &kv {
                match k.as_str() {
                    "rw" | "readwrite" => readwrite = bool_value(k, v.as_deref())?,
                    "ro" | "readonly" => readwrite = !bool_value(k, v.as_deref())?,
                    _ => {}
                }
            }
            let from = get(&["from"]).filter(|f| !f.is_empty());
            let src = get(&["source", "src"]).unwrap_or_default();
            let source = crate::context::clean_rel(&src).ok_or_else(|| match &from {
                None => format!("source={src} is outside the build context"),
                Some(f) => format!("source={src} is outside the root of {f}"),
            })?;
            Ok(Mount::Bind {
                target,
                source,
                from,
                readwrite,
            })
        }
        "tmpfs" => {
            let size = match get(&["size"]) {
                None => None,
                Some(v) => Some(
                    hako_engine::options::parse_size(&v, "size").map_err(|e| e.to_string())? as u64,
                ),
            };
            Ok(Mount::Tmpfs {
                target: need_target()?,
                size,
            })
        }
        _ => {
            let id = match (get(&["id"]), &target) {
                (Some(id), _) => id,
                (None, Some(t)) => t.rsplit('/').next().unwrap_or_default().to_string(),
                (None, None) => return Err("a secret mount needs an id or a target".into()),
            };
            if id.is_empty() {
                return Err("a secret mount needs an id".into());
            }
            let required = if has(&["required"]) {
                bool_value("required", get(&["required"]).as_deref())?
            } else {
                false
            };
            Ok(Mount::Secret {
                target: target.unwrap_or_else(|| format!("/run/secrets/{id}")),
                id,
                required,
            })
        }
    }
}

/// The `from=` of a bind mount spec (unexpanded), for the stage graph.
pub fn bind_from(spec: &str) -> Option<&str> {
    let mut kind = "bind";
    let mut from = None;
    for field in spec.split(',') {
        let (k, v) = field.trim().split_once('=').unwrap_or((field.trim(), ""));
        if k.eq_ignore_ascii_case("type") {
            kind = v;
        } else if k.eq_ignore_ascii_case("from") {
            from = Some(v);
        }
    }
    from.filter(|f| kind == "bind" && !f.is_empty())
}

/// `--secret id=ID,src=PATH` (also `source=`, and `type=file`); `env=` secrets are refused.
pub fn parse_secret(spec: &str) -> Result<(String, PathBuf), String> {
    let mut id = None;
    let mut src = None;
    for field in spec.split(',') {
        match field.split_once('=') {
            Some(("id", v)) => id = Some(v.to_string()),
            Some(("src" | "source", v)) => src = Some(PathBuf::from(v)),
            Some(("type", "file")) => {}
            Some(("type", "env")) | Some(("env", _)) => {
                return Err(format!(
                    "--secret {spec}: environment secrets are not supported; write it to a file and pass src="
                ))
            }
            _ => return Err(format!("--secret {spec}: unexpected field {field:?}")),
        }
    }
    let id = id
        .or_else(|| {
            src.as_ref()
                .and_then(|s| s.file_name())
                .map(|n| n.to_string_lossy().into_owned())
        })
        .ok_or_else(|| format!("--secret {spec}: an id= is required"))?;
    let src = src.ok_or_else(|| format!("--secret {spec}: a src= file is required"))?;
    Ok((id, src))
}

/// Makes `upper` the top layer of an overlay over the directory `lower`: it hides the entries
/// `hidden` (relative paths) with whiteouts, and its directories carry the mode and owner of
/// the ones they cover (an overlay shows the upper directory's).
pub(crate) fn hiding_layer(upper: &Path, lower: &Path, hidden: &[&str]) -> Result<(), Error> {
    use std::os::unix::fs::MetadataExt;
    let mkdir = |rel: &str| -> Result<(), Error> {
        let up = upper.join(rel);
        if up.is_dir() {
            return Ok(());
        }
        let low = if rel.is_empty() {
            lower.to_path_buf()
        } else {
            lower.join(rel)
        };
        let m = std::fs::metadata(&low).map_err(Error::io(format!("stat {}", low.display())))?;
        std::fs::create_dir(&up).map_err(Error::io(format!("create {}", up.display())))?;
        std::os::unix::fs::chown(&up, Some(m.uid()), Some(m.gid()))
            .map_err(Error::io(format!("chown {}", up.display())))?;
        std::fs::set_permissions(&up, m.permissions())
            .map_err(Error::io(format!("chmod {}", up.display())))
    };
    mkdir("")?;
    for h in hidden {
        let parts: Vec<&str> = h.split('/').collect();
        for k in 1..parts.len() {
            mkdir(&parts[..k].join("/"))?;
        }
        let p = upper.join(h);
        // overlayfs's whiteout: a 0:0 character device.
        nix::sys::stat::mknod(
            &p,
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::empty(),
            0,
        )
        .map_err(|e| Error::io(format!("hide {}", p.display()))(e.into()))?;
    }
    Ok(())
}

/// The directory of the cache mount `id`.
pub fn cache_dir(root: &Path, id: &str) -> PathBuf {
    mounts_root(root).join(hex::encode(Sha256::digest(id.as_bytes())))
}

/// Where cache mounts live.
pub fn mounts_root(root: &Path) -> PathBuf {
    root.join("build-cache").join("mounts")
}

/// Creates a cache mount's directory when missing (through a temporary name, so a crash never
/// leaves one with the wrong mode), and marks it used now for `builder prune --filter until=`.
pub fn prepare_cache_dir(
    root: &Path,
    id: &str,
    mode: u32,
    owner: (u32, u32),
) -> Result<PathBuf, Error> {
    use std::os::unix::fs::PermissionsExt;
    let dir = cache_dir(root, id);
    if !dir.is_dir() {
        let parent = mounts_root(root);
        std::fs::create_dir_all(&parent)
            .map_err(Error::io(format!("create {}", parent.display())))?;
        let tmp = tempfile::Builder::new()
            .prefix(".new-")
            .tempdir_in(&parent)
            .map_err(Error::io("create a cache mount"))?;
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(mode))
            .map_err(Error::io("set a cache mount's mode"))?;
        std::os::unix::fs::chown(tmp.path(), Some(owner.0), Some(owner.1))
            .map_err(Error::io("set a cache mount's owner"))?;
        let tmp = tmp.keep();
        if let Err(e) = std::fs::rename(&tmp, &dir) {
            let _ = std::fs::remove_dir(&tmp);
            // Another build created it at the same time: use theirs.
            if !dir.is_dir() {
                return Err(Error::io(format!("create {}", dir.display()))(e));
            }
        }
    }
    let now = std::time::SystemTime::now();
    if let Ok(f) = std::fs::File::open(&dir) {
        let _ = f.set_modified(now);
    }
    Ok(dir)
}

/// Cache mounts: (directory, bytes, last used as Unix seconds).
pub fn list_cache_dirs(root: &Path) -> Vec<(PathBuf, u64, i64)> {
    let Ok(rd) = std::fs::read_dir(mounts_root(root)) else {
        return Vec::new();
    };
    rd.filter_map(|e| e.ok())
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| {
            use std::os::unix::fs::MetadataExt;
            let p = e.path();
            let used = std::fs::metadata(&p).map(|m| m.mtime()).unwrap_or(0);
            (p.clone(), du(&p), used)
        })
        .collect()
}

/// Removes the cache mounts last used before `older_than` (all with `None`), and what removals
/// cut short left. Returns (ids removed, bytes).
pub fn prune_cache_dirs(root: &Path, older_than: Option<i64>) -> Result<(Vec<String>, u64), Error> {
    let mut gone = Vec::new();
    let mut bytes = 0;
    for (dir, size, used) in list_cache_dirs(root) {
        if older_than.is_some_and(|t| used >= t) {
            continue;
        }
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        remove_cache_dir(&dir)?;
        gone.push(name);
        bytes += size;
    }
    if let Ok(rd) = std::fs::read_dir(mounts_root(root)) {
        for e in rd.flatten() {
            if e.file_name().to_string_lossy().starts_with(".gone-") {
                std::fs::remove_dir_all(e.path())
                    .map_err(Error::io(format!("remove {}", e.path().display())))?;
            }
        }
    }
    Ok((gone, bytes))
}

/// Removes one cache mount: renamed to `.gone-…` first, so a removal cut short never leaves a
/// half-emptied cache under a valid name (the next prune finishes it).
pub fn remove_cache_dir(dir: &Path) -> Result<(), Error> {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let parent = dir.parent().unwrap_or(Path::new("."));
    let doomed = parent.join(format!(".gone-{name}"));
    std::fs::rename(dir, &doomed).map_err(Error::io(format!("remove {}", dir.display())))?;
    std::fs::remove_dir_all(&doomed).map_err(Error::io(format!("remove {}", doomed.display())))
}

fn du(p: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(m) = std::fs::symlink_metadata(p) else {
        return 0;
    };
    if !m.is_dir() {
        return m.blocks() * 512;
    }
    let mut total = m.blocks() * 512;
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            total += du(&e.path());
        }
    }
    total
}

/// Secrets by id.
pub type Secrets = BTreeMap<String, PathBuf>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_specs() {
        assert_eq!(
            parse("type=cache,target=/root/.cache", "/").unwrap(),
            Mount::Cache {
                target: "/root/.cache".into(),
                id: "/root/.cache".into(),
                readonly: false,
                mode: 0o755,
                owner: (0, 0)
            }
        );
        assert_eq!(
            parse("target=src,source=./a/../b", "/work").unwrap(),
            Mount::Bind {
                target: "/work/src".into(),
                source: "b".into(),
                from: None,
                readwrite: false,
            }
        );
        assert_eq!(
            parse("type=bind,from=build,src=/out/bin,target=/b,rw", "/").unwrap(),
            Mount::Bind {
                target: "/b".into(),
                source: "out/bin".into(),
                from: Some("build".into()),
                readwrite: true,
            }
        );
        let rw = |s: &str| match parse(s, "/").unwrap() {
            Mount::Bind { readwrite, .. } => readwrite,
            other => panic!("{other:?}"),
        };
        assert!(!rw("target=/x,rw,ro"));
        assert!(rw("target=/x,readonly,readwrite=true"));
        assert!(!rw("target=/x,rw=false"));
        let e = parse("type=bind,from=s,source=../../etc,target=/x", "/").unwrap_err();
        assert!(e.contains("outside the root of s"), "{e}");
        assert_eq!(bind_from("type=bind,from=base,target=/x"), Some("base"));
        assert_eq!(bind_from("FROM=base,target=/x"), Some("base"));
        assert_eq!(bind_from("type=cache,from=base,target=/x"), None);
        assert_eq!(bind_from("target=/x"), None);
        assert_eq!(
            parse("type=secret,id=tok", "/").unwrap(),
            Mount::Secret {
                id: "tok".into(),
                target: "/run/secrets/tok".into(),
                required: false
            }
        );
        assert_eq!(
            parse("type=tmpfs,dst=/t,size=1m", "/").unwrap(),
            Mount::Tmpfs {
                target: "/t".into(),
                size: Some(1 << 20)
            }
        );
        for bad in [
            "type=cache",
            "type=bind,target=/x,source=../etc",
            "type=bind,target=/x,rw=maybe",
            "type=ssh",
            "type=weird,target=/x",
            "type=tmpfs,target=/x,id=1",
        ] {
            assert!(parse(bad, "/").is_err(), "{bad}");
        }
        assert_eq!(
            parse_secret("id=a,src=/tmp/f").unwrap(),
            ("a".into(), PathBuf::from("/tmp/f"))
        );
        assert!(parse_secret("id=a,env=X").is_err());
        assert!(parse_secret("id=a").is_err());
    }
}
