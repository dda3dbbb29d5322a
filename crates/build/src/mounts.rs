//! `RUN --mount=type=cache|bind|tmpfs|secret|ssh`: parsing the option list and turning each
//! into a bind or tmpfs mount of the step's container.
//!
//! - `cache` mounts a directory kept in the build cache (`ROOT/build-cache/mounts/`), named by
//!   its `id` (the target when none is given), so later builds see what earlier ones left;
//!   `builder prune` removes them.
//! - `bind` mounts a path of the build context (what `.dockerignore` keeps of it), or with
//!   `from=` of another stage's or image's filesystem, read-only; with `rw` writable, the
//!   writes going to a scratch overlay layer thrown away after the step. What it shows is part
//!   of the step's cache key.
//! - `tmpfs` mounts an empty tmpfs.
//! - `secret` mounts the secret given with `--secret id=ID,src=PATH` (a file) or
//!   `--secret id=ID,env=VAR` (an environment variable of `hako build`), by default at
//!   `/run/secrets/ID`, as a copy with the mount's `mode` (0400) and owner, made for the step
//!   and removed as soon as its process is gone; with `env=NAME` the step gets it as the
//!   variable NAME instead (or as well, with a `target`). It is not part of the cache key and
//!   never of a layer or of the image's config.
//! - `ssh` forwards the ssh-agent socket given with `--ssh ID[=SOCKET]` (`$SSH_AUTH_SOCK` for
//!   `default`): a socket of the mount's `mode` (0600) and owner at the target
//!   (`/run/buildkit/ssh_agent.N` by default, as BuildKit), served by a small relay process for
//!   the step, and `SSH_AUTH_SOCK` names the first one, as BuildKit sets it.

use crate::Error;
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
        /// Where the file appears in the container; None when it is only an environment
        /// variable.
        target: Option<String>,
        /// `env=`: the environment variable that holds it in the step.
        env: Option<String>,
        /// `required=true`: a missing secret fails the step.
        required: bool,
        /// `mode=` of the file (octal, default 0400).
        mode: u32,
        /// `uid=`, `gid=` of the file.
        owner: (u32, u32),
    },
    /// `type=ssh`.
    Ssh {
        /// `id=` (default `default`).
        id: String,
        /// Where the socket appears in the container; None until the step gives it the
        /// default (`/run/buildkit/ssh_agent.N`, N counting the step's ssh mounts).
        target: Option<String>,
        /// `required=true`: a missing agent fails the step.
        required: bool,
        /// `mode=` of the socket (octal, default 0600).
        mode: u32,
        /// `uid=`, `gid=` of the socket.
        owner: (u32, u32),
    },
}

impl Mount {
    /// The path inside the container (None for a secret given only as a variable).
    pub fn target(&self) -> Option<&str> {
        match self {
            Mount::Cache { target, .. }
            | Mount::Bind { target, .. }
            | Mount::Tmpfs { target, .. } => Some(target),
            Mount::Secret { target, .. } | Mount::Ssh { target, .. } => target.as_deref(),
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
            "env",
            "required",
            "mode",
            "uid",
            "gid",
        ],
        "ssh" => &[
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
        "ssh" => {
            let id = get(&["id"]).unwrap_or_else(|| "default".into());
            if id.is_empty() {
                return Err("an ssh mount needs a non-empty id".into());
            }
            let required = if has(&["required"]) {
                bool_value("required", get(&["required"]).as_deref())?
            } else {
                false
            };
            Ok(Mount::Ssh {
                id,
                target,
                required,
                mode: octal("mode", 0o600)?,
                owner: (number("uid")?, number("gid")?),
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
            let env = get(&["env"]);
            if let Some(e) = &env {
                if e.is_empty() || e.contains('=') || e.contains('\0') {
                    return Err(format!("invalid env={e}: a variable name is expected"));
                }
            }
            // A secret given as a variable is a file too only when a target says where.
            let target = match (target, &env) {
                (Some(t), _) => Some(t),
                (None, Some(_)) => None,
                (None, None) => Some(format!("/run/secrets/{id}")),
            };
            Ok(Mount::Secret {
                target,
                env,
                id,
                required,
                mode: octal("mode", 0o400)?,
                owner: (number("uid")?, number("gid")?),
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

/// What a `--secret` holds.
#[derive(Clone, PartialEq, Eq)]
pub enum Secret {
    /// `src=`: a file, read when a step mounts it.
    File(PathBuf),
    /// `env=`: the value the variable had when `hako build` started.
    Value(Vec<u8>),
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Secret::File(p) => f.debug_tuple("File").field(p).finish(),
            // Never the value, wherever a Debug of the options ends up.
            Secret::Value(v) => write!(f, "Value(<{} bytes>)", v.len()),
        }
    }
}

/// `--secret` as buildx reads it: `id=ID,src=FILE` (also `source=`, `type=file`),
/// `id=ID,env=VAR` or `type=env,id=ID[,src=VAR]`; with neither `src` nor `env`, the variable
/// named ID if it is set, else the file named ID. `var` looks variables up (the process
/// environment).
pub fn parse_secret(
    spec: &str,
    var: impl Fn(&str) -> Option<std::ffi::OsString>,
) -> Result<(String, Secret), String> {
    let mut id = None;
    let mut src = None;
    let mut env = None;
    let mut kind = None;
    for field in spec.split(',') {
        match field.split_once('=') {
            Some(("id", v)) => id = Some(v.to_string()),
            Some(("src" | "source", v)) => src = Some(v.to_string()),
            Some(("env", v)) => env = Some(v.to_string()),
            Some(("type", t @ ("file" | "env"))) => kind = Some(t),
            Some(("type", t)) => {
                return Err(format!(
                    "--secret {spec}: unsupported type={t} (file or env)"
                ))
            }
            _ => return Err(format!("--secret {spec}: unexpected field {field:?}")),
        }
    }
    if kind == Some("env") && env.is_none() {
        env = src.take().or_else(|| id.clone());
    }
    if env.is_none() && src.is_none() {
        let id = id
            .clone()
            .ok_or_else(|| format!("--secret {spec}: an id= is required"))?;
        if var(&id).is_some() {
            env = Some(id);
        } else {
            src = Some(id);
        }
    }
    let from_env = |name: &str| -> Result<Secret, String> {
        use std::os::unix::ffi::OsStringExt;
        var(name)
            .map(|v| Secret::Value(v.into_vec()))
            .ok_or_else(|| format!("--secret {spec}: the environment variable {name} is not set"))
    };
    match (env, src) {
        (Some(e), None) => {
            let id = id.unwrap_or_else(|| e.clone());
            Ok((id, from_env(&e)?))
        }
        (None, Some(s)) => {
            let id = id
                .or_else(|| {
                    Path::new(&s)
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                })
                .ok_or_else(|| format!("--secret {spec}: an id= is required"))?;
            Ok((id, Secret::File(PathBuf::from(s))))
        }
        _ => Err(format!(
            "--secret {spec}: give either src= (a file) or env= (a variable), not both"
        )),
    }
}

/// `--ssh ID[=SOCKET]`: the agent socket to forward for `RUN --mount=type=ssh,id=ID`; without
/// a path, `$SSH_AUTH_SOCK` (`var` looks it up). Key files, which BuildKit loads into an agent
/// of its own, are refused: hako forwards agents only.
pub fn parse_ssh(
    spec: &str,
    var: impl Fn(&str) -> Option<std::ffi::OsString>,
) -> Result<(String, PathBuf), String> {
    use std::os::unix::fs::FileTypeExt;
    let (id, path) = match spec.split_once('=') {
        Some((id, p)) => (id, Some(p)),
        None => (spec, None),
    };
    if id.is_empty() {
        return Err(format!("--ssh {spec}: an id is required (e.g. default)"));
    }
    let path = match path {
        Some(p) if p.contains(',') => {
            return Err(format!(
                "--ssh {spec}: key files are not supported; add the keys to an ssh-agent (ssh-add) and give its socket"
            ))
        }
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(var("SSH_AUTH_SOCK").filter(|v| !v.is_empty()).ok_or_else(|| {
            format!("--ssh {spec}: SSH_AUTH_SOCK is not set: start an ssh-agent or give its socket as {id}=PATH")
        })?),
    };
    let m =
        std::fs::metadata(&path).map_err(|e| format!("--ssh {spec}: {}: {e}", path.display()))?;
    if !m.file_type().is_socket() {
        return Err(format!(
            "--ssh {spec}: {} is not an agent socket (key files are not supported; add the key to an ssh-agent with ssh-add and give its socket)",
            path.display()
        ));
    }
    Ok((id.to_string(), path))
}

/// Writes `secret` for one step as `dir/secret` with `mode` and `owner`; the file is created
/// 0600 and only then given its mode, so it is never readable by others on the way.
pub(crate) fn secret_file(
    dir: &Path,
    secret: &Secret,
    mode: u32,
    owner: (u32, u32),
) -> Result<PathBuf, Error> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let path = dir.join("secret");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(Error::io(format!("create {}", path.display())))?;
    match secret {
        Secret::Value(v) => f.write_all(v).map_err(Error::io("write a secret"))?,
        Secret::File(src) => {
            let mut input = std::fs::File::open(src)
                .map_err(Error::io(format!("open the secret {}", src.display())))?;
            std::io::copy(&mut input, &mut f)
                .map_err(Error::io(format!("read the secret {}", src.display())))?;
        }
    }
    std::os::unix::fs::fchown(&f, Some(owner.0), Some(owner.1))
        .map_err(Error::io("set a secret's owner"))?;
    f.set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(Error::io("set a secret's mode"))?;
    Ok(path)
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

pub use hako_engine::build_cache::{
    cache_dir, list_cache_dirs, mounts_root, prune_cache_dirs, remove_cache_dir,
};

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

/// Secrets by id.
pub type Secrets = BTreeMap<String, Secret>;

/// ssh-agent sockets by id (`--ssh`).
pub type SshAgents = BTreeMap<String, PathBuf>;

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
                target: Some("/run/secrets/tok".into()),
                env: None,
                required: false,
                mode: 0o400,
                owner: (0, 0),
            }
        );
        assert_eq!(
            parse("type=secret,id=tok,env=TOKEN,uid=5", "/").unwrap(),
            Mount::Secret {
                id: "tok".into(),
                target: None,
                env: Some("TOKEN".into()),
                required: false,
                mode: 0o400,
                owner: (5, 0),
            }
        );
        assert_eq!(
            parse("type=secret,id=tok,env=TOKEN,target=/t", "/")
                .unwrap()
                .target(),
            Some("/t")
        );
        assert_eq!(
            parse("type=ssh", "/").unwrap(),
            Mount::Ssh {
                id: "default".into(),
                target: None,
                required: false,
                mode: 0o600,
                owner: (0, 0),
            }
        );
        assert_eq!(
            parse(
                "type=ssh,id=gh,target=/a.sock,mode=0660,gid=7,required",
                "/"
            )
            .unwrap(),
            Mount::Ssh {
                id: "gh".into(),
                target: Some("/a.sock".into()),
                required: true,
                mode: 0o660,
                owner: (0, 7),
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
            "type=ssh,source=/x",
            "type=secret,id=a,env=A=B",
            "type=weird,target=/x",
            "type=tmpfs,target=/x,id=1",
        ] {
            assert!(parse(bad, "/").is_err(), "{bad}");
        }
    }

    #[test]
    fn secret_and_ssh_flags() {
        let vars = |k: &str| match k {
            "TOKEN" => Some("t0k".into()),
            "SSH_AUTH_SOCK" => Some("/nonexistent/agent.sock".into()),
            _ => None,
        };
        let file = |p: &str| Secret::File(PathBuf::from(p));
        let value = |v: &str| Secret::Value(v.as_bytes().to_vec());
        assert_eq!(
            parse_secret("id=a,src=/tmp/f", vars).unwrap(),
            ("a".into(), file("/tmp/f"))
        );
        assert_eq!(
            parse_secret("src=/tmp/f", vars).unwrap(),
            ("f".into(), file("/tmp/f"))
        );
        assert_eq!(
            parse_secret("id=a,env=TOKEN", vars).unwrap(),
            ("a".into(), value("t0k"))
        );
        assert_eq!(
            parse_secret("type=env,id=a,src=TOKEN", vars).unwrap(),
            ("a".into(), value("t0k"))
        );
        assert_eq!(
            parse_secret("type=env,id=TOKEN", vars).unwrap(),
            ("TOKEN".into(), value("t0k"))
        );
        // Neither src nor env: the variable named by the id, else the file.
        assert_eq!(
            parse_secret("id=TOKEN", vars).unwrap(),
            ("TOKEN".into(), value("t0k"))
        );
        assert_eq!(
            parse_secret("id=tok.txt", vars).unwrap(),
            ("tok.txt".into(), file("tok.txt"))
        );
        let e = parse_secret("id=a,env=MISSING", vars).unwrap_err();
        assert!(e.contains("MISSING is not set"), "{e}");
        assert!(parse_secret("id=a,env=TOKEN,src=/f", vars).is_err());
        assert!(parse_secret("id=a,type=ssh", vars).is_err());
        assert!(parse_secret("", vars).is_err());
        // Debug output never shows a value.
        assert!(!format!("{:?}", value("t0k")).contains("t0k"));

        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("agent.sock");
        let _l = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let spec = format!("gh={}", sock.display());
        assert_eq!(parse_ssh(&spec, vars).unwrap(), ("gh".into(), sock.clone()));
        let with_sock = |k: &str| (k == "SSH_AUTH_SOCK").then(|| sock.clone().into_os_string());
        assert_eq!(
            parse_ssh("default", with_sock).unwrap(),
            ("default".into(), sock)
        );
        let e = parse_ssh("default", vars).unwrap_err();
        assert!(e.contains("/nonexistent/agent.sock"), "{e}");
        let e = parse_ssh("default", |_| None).unwrap_err();
        assert!(e.contains("SSH_AUTH_SOCK is not set"), "{e}");
        let key = dir.path().join("id_ed25519");
        std::fs::write(&key, "k").unwrap();
        let e = parse_ssh(&format!("default={}", key.display()), vars).unwrap_err();
        assert!(e.contains("not an agent socket"), "{e}");
        assert!(parse_ssh("default=/a,/b", vars)
            .unwrap_err()
            .contains("key files are not supported"));
    }

    #[test]
    fn secret_files_get_the_mount_mode_and_owner() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let p = secret_file(dir.path(), &Secret::Value(b"v".to_vec()), 0o440, (3, 4)).unwrap();
        let m = std::fs::metadata(&p).unwrap();
        assert_eq!((m.mode() & 0o7777, m.uid(), m.gid()), (0o440, 3, 4));
        assert_eq!(std::fs::read(&p).unwrap(), b"v");
    }
}
