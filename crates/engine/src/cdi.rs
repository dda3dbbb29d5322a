//! Container Device Interface: `--device vendor.com/class=name` (and `--gpus`, which names
//! NVIDIA's CDI devices) resolved against the CDI specifications a device's vendor installs in
//! `/etc/cdi` and `/var/run/cdi` (JSON or YAML; a later directory's definition of a device wins).
//! A device is a set of edits to the container: device nodes (into the spec and the device
//! cgroup), environment variables, bind mounts and hooks; its specification's own edits come
//! with it. Names are resolved when the container is created (an unknown one is refused then)
//! and again at each start, as the files may have changed.

use crate::{Error, Result};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Where specifications are read from, in increasing priority: `HAKO_CDI_SPEC_DIRS`
/// (colon-separated), else CDI's defaults.
pub fn spec_dirs() -> Vec<PathBuf> {
    match std::env::var("HAKO_CDI_SPEC_DIRS") {
        Ok(v) if !v.is_empty() => v.split(':').map(PathBuf::from).collect(),
        _ => vec![PathBuf::from("/etc/cdi"), PathBuf::from("/var/run/cdi")],
    }
}

/// Whether `s` is a CDI name (`vendor.com/class=name`) rather than a device path.
pub fn is_cdi_name(s: &str) -> bool {
    parse_name(s).is_some()
}

/// `vendor.com/class=name` into its kind and name.
fn parse_name(s: &str) -> Option<(&str, &str)> {
    let (kind, name) = s.split_once('=')?;
    let (vendor, class) = kind.split_once('/')?;
    let ok_vendor = !vendor.is_empty()
        && vendor.contains('.')
        && vendor
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-'));
    let ok_class = !class.is_empty()
        && class
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    let ok_name = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'));
    (ok_vendor && ok_class && ok_name).then_some((kind, name))
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SpecFile {
    #[serde(default)]
    cdi_version: String,
    kind: String,
    #[serde(default)]
    devices: Vec<SpecDevice>,
    #[serde(default)]
    container_edits: Edits,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SpecDevice {
    name: String,
    #[serde(default)]
    container_edits: Edits,
}

/// One set of container edits, as a specification writes them.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Edits {
    /// `NAME=VALUE` variables.
    #[serde(default)]
    pub env: Vec<String>,
    /// Device nodes.
    #[serde(default)]
    pub device_nodes: Vec<DeviceNode>,
    /// Bind mounts.
    #[serde(default)]
    pub mounts: Vec<CdiMount>,
    /// Hooks.
    #[serde(default)]
    pub hooks: Vec<CdiHook>,
    /// Groups the process joins.
    #[serde(default, rename = "additionalGIDs")]
    pub additional_gids: Vec<u32>,
    #[serde(default)]
    intel_rdt: Option<serde_json::Value>,
}

/// A device node of an edit.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DeviceNode {
    /// Where it appears in the container.
    pub path: String,
    /// The host's node, when it is not at `path`.
    pub host_path: Option<String>,
    /// `c`, `b` (or `u`, `p`); the host node's when not given.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// Major number; the host node's when not given.
    pub major: Option<i64>,
    /// Minor number; the host node's when not given.
    pub minor: Option<i64>,
    /// Mode bits; the host node's when not given.
    pub file_mode: Option<u32>,
    /// Device cgroup access (`rwm` when not given).
    pub permissions: Option<String>,
    /// Owner.
    pub uid: Option<u32>,
    /// Group.
    pub gid: Option<u32>,
}

/// A bind mount of an edit.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CdiMount {
    /// The host's path.
    pub host_path: String,
    /// Where it appears.
    pub container_path: String,
    /// Mount options (`ro`, `nosuid`, `bind`, …).
    #[serde(default)]
    pub options: Vec<String>,
    /// The filesystem type (`bind` when not given).
    #[serde(rename = "type")]
    pub kind: Option<String>,
}

/// A hook of an edit.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CdiHook {
    /// When it runs: `createContainer` and `startContainer` are supported.
    pub hook_name: String,
    /// The program.
    pub path: String,
    /// Its argv.
    #[serde(default)]
    pub args: Vec<String>,
    /// Its environment.
    #[serde(default)]
    pub env: Vec<String>,
    /// Seconds it may take.
    pub timeout: Option<i64>,
}

/// The edits of the devices named, merged: what the container gets.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Resolved {
    /// Variables, in order.
    pub env: Vec<String>,
    /// Device nodes, with their numbers known.
    pub devices: Vec<crate::spec::Device>,
    /// Bind mounts.
    pub mounts: Vec<CdiMount>,
    /// Hooks.
    pub hooks: Vec<CdiHook>,
    /// Groups the process joins.
    pub additional_gids: Vec<u32>,
}

/// Every device the specifications define, by `kind=name`, with its spec's own edits and the
/// file it came from.
fn registry(dirs: &[PathBuf]) -> Result<BTreeMap<String, (Edits, Edits, PathBuf)>> {
    let mut out = BTreeMap::new();
    for dir in dirs {
        let Ok(rd) = std::fs::read_dir(dir) else {
            continue;
        };
        let mut files: Vec<PathBuf> = rd
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                matches!(
                    p.extension().and_then(|e| e.to_str()),
                    Some("json" | "yaml" | "yml")
                )
            })
            .collect();
        files.sort();
        for f in files {
            let spec = read_spec(&f)?;
            for d in spec.devices {
                out.insert(
                    format!("{}={}", spec.kind, d.name),
                    (spec.container_edits.clone(), d.container_edits, f.clone()),
                );
            }
        }
    }
    Ok(out)
}

fn read_spec(f: &Path) -> Result<SpecFile> {
    let bad = |why: String| Error::Invalid(format!("CDI specification {}: {why}", f.display()));
    let data = std::fs::read(f).map_err(|e| bad(e.to_string()))?;
    let spec: SpecFile = if f.extension().is_some_and(|e| e == "json") {
        serde_json::from_slice(&data).map_err(|e| bad(e.to_string()))?
    } else {
        serde_yaml_ng::from_slice(&data).map_err(|e| bad(e.to_string().replace('\n', " ")))?
    };
    if spec.cdi_version.is_empty() {
        return Err(bad("cdiVersion is missing".into()));
    }
    if parse_name(&format!("{}=x", spec.kind)).is_none() {
        return Err(bad(format!("kind {:?} is not vendor.com/class", spec.kind)));
    }
    Ok(spec)
}

/// The device names of `kind` the specifications define, sorted (`--gpus N` takes the first N).
pub fn devices_of_kind(kind: &str) -> Result<Vec<String>> {
    Ok(registry(&spec_dirs())?
        .into_keys()
        .filter_map(|k| {
            let (kd, name) = k.split_once('=')?;
            (kd == kind).then(|| name.to_string())
        })
        .collect())
}

/// Checks that every name is a device some specification defines (at create).
pub fn check(names: &[String]) -> Result<()> {
    resolve(names).map(|_| ())
}

/// The merged edits of the devices `names`, each spec's own edits once.
pub fn resolve(names: &[String]) -> Result<Resolved> {
    let mut out = Resolved::default();
    if names.is_empty() {
        return Ok(out);
    }
    let dirs = spec_dirs();
    let reg = registry(&dirs)?;
    let mut specs_applied: Vec<PathBuf> = Vec::new();
    for n in names {
        let (spec_edits, edits, file) = reg.get(n).ok_or_else(|| {
            let where_ = dirs
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(" or ");
            Error::Invalid(format!(
                "CDI device {n} is not defined by any specification in {where_}"
            ))
        })?;
        if !specs_applied.contains(file) {
            apply(&mut out, spec_edits, file)?;
            specs_applied.push(file.clone());
        }
        apply(&mut out, edits, file)?;
    }
    Ok(out)
}

fn apply(out: &mut Resolved, e: &Edits, file: &Path) -> Result<()> {
    let bad = |why: String| Error::Invalid(format!("CDI specification {}: {why}", file.display()));
    if e.intel_rdt.as_ref().is_some_and(|v| !v.is_null()) {
        return Err(bad("intelRdt edits are not supported by hako".into()));
    }
    for v in &e.env {
        if !v.contains('=') {
            return Err(bad(format!("env {v:?} is not NAME=VALUE")));
        }
        out.env.push(v.clone());
    }
    for d in &e.device_nodes {
        out.devices.push(device(d).map_err(bad)?);
    }
    for m in &e.mounts {
        if !m.container_path.starts_with('/') {
            return Err(bad(format!(
                "mount target {} is not an absolute path",
                m.container_path
            )));
        }
        out.mounts.push(m.clone());
    }
    for h in &e.hooks {
        if !matches!(h.hook_name.as_str(), "createContainer" | "startContainer") {
            return Err(bad(format!(
                "{} hooks are not supported by hako (createContainer and startContainer are)",
                h.hook_name
            )));
        }
        out.hooks.push(h.clone());
    }
    out.additional_gids.extend(&e.additional_gids);
    Ok(())
}

/// A device node with its type and numbers, from the edit or else the host's node.
fn device(d: &DeviceNode) -> std::result::Result<crate::spec::Device, String> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    if !d.path.starts_with('/') {
        return Err(format!("device path {} is not absolute", d.path));
    }
    let host = d.host_path.as_deref().unwrap_or(&d.path);
    let meta = std::fs::metadata(host).ok();
    let kind = match (d.kind.as_deref(), &meta) {
        (Some("c" | "u"), _) => false,
        (Some("b"), _) => true,
        (Some(other), _) => {
            return Err(format!(
                "device {}: type {other:?} is not c, u or b",
                d.path
            ))
        }
        (None, Some(m)) if m.file_type().is_block_device() => true,
        (None, Some(m)) if m.file_type().is_char_device() => false,
        (None, _) => {
            return Err(format!(
                "device {}: {host} is not a device node on this host",
                d.path
            ))
        }
    };
    let from_host = |f: fn(u64) -> i64| -> std::result::Result<i64, String> {
        meta.as_ref().map(|m| f(m.rdev())).ok_or_else(|| {
            format!(
                "device {}: {host} does not exist and the specification gives no numbers",
                d.path
            )
        })
    };
    let major = match d.major {
        Some(m) => m,
        None => from_host(|r| i64::from(libc::major(r)))?,
    };
    let minor = match d.minor {
        Some(m) => m,
        None => from_host(|r| i64::from(libc::minor(r)))?,
    };
    let permissions = d.permissions.clone().unwrap_or_else(|| "rwm".into());
    if permissions.is_empty() || !permissions.chars().all(|c| matches!(c, 'r' | 'w' | 'm')) {
        return Err(format!(
            "device {}: permissions {permissions:?} are not some of rwm",
            d.path
        ));
    }
    Ok(crate::spec::Device {
        path: PathBuf::from(&d.path),
        block: kind,
        major,
        minor,
        file_mode: d
            .file_mode
            .or_else(|| meta.as_ref().map(|m| m.mode() & 0o7777))
            .unwrap_or(0o666)
            & 0o7777,
        uid: d
            .uid
            .or_else(|| meta.as_ref().map(|m| m.uid()))
            .unwrap_or(0),
        gid: d
            .gid
            .or_else(|| meta.as_ref().map(|m| m.gid()))
            .unwrap_or(0),
        permissions,
    })
}

/// `--gpus all|N|device=ID[,ID…]`: NVIDIA's CDI devices (`nvidia.com/gpu=…`), as the NVIDIA
/// Container Toolkit's `nvidia-ctk cdi generate` names them.
pub fn gpus(spec: &str) -> Result<Vec<String>> {
    const KIND: &str = "nvidia.com/gpu";
    let spec = spec.trim();
    let bad = || {
        Error::Invalid(format!(
            "invalid --gpus value {spec:?}: all, a count, or device=ID[,ID…]"
        ))
    };
    let known = devices_of_kind(KIND)?;
    if known.is_empty() {
        let dirs: Vec<String> = spec_dirs()
            .iter()
            .map(|d| d.display().to_string())
            .collect();
        return Err(Error::Invalid(format!(
            "--gpus {spec}: no CDI specification in {} defines {KIND} devices; generate one with the NVIDIA Container Toolkit (nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml)",
            dirs.join(" or ")
        )));
    }
    let names: Vec<String> = if spec == "all" || spec == "\"all\"" {
        if known.iter().any(|k| k == "all") {
            vec!["all".into()]
        } else {
            known
        }
    } else if let Some(ids) = spec
        .strip_prefix("device=")
        .or_else(|| spec.strip_prefix("\"device="))
    {
        ids.trim_end_matches('"')
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect()
    } else {
        let n: usize = spec.parse().map_err(|_| bad())?;
        let numbered: Vec<String> = known.into_iter().filter(|k| k != "all").collect();
        if n == 0 || n > numbered.len() {
            return Err(Error::Invalid(format!(
                "--gpus {n}: the CDI specifications define {} {KIND} device(s)",
                numbered.len()
            )));
        }
        numbered.into_iter().take(n).collect()
    };
    if names.is_empty() {
        return Err(bad());
    }
    Ok(names.into_iter().map(|n| format!("{KIND}={n}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_vendor_class_and_name() {
        assert!(is_cdi_name("vendor.com/device=gpu0"));
        assert!(is_cdi_name("nvidia.com/gpu=all"));
        for bad in [
            "/dev/null",
            "vendor/device=x",
            "vendor.com/=x",
            "vendor.com/device=",
            "a.b/c",
        ] {
            assert!(!is_cdi_name(bad), "{bad}");
        }
    }

    #[test]
    fn edits_merge_with_the_specs_own_once() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("v.yaml"),
            "cdiVersion: 0.6.0\nkind: example.com/dev\ncontainerEdits:\n  env: [SPEC=1]\ndevices:\n- name: a\n  containerEdits:\n    env: [A=1]\n    deviceNodes:\n    - path: /dev/xa\n      hostPath: /dev/null\n- name: b\n  containerEdits:\n    env: [B=1]\n    mounts:\n    - hostPath: /etc/hostname\n      containerPath: /etc/b\n      options: [ro, bind]\n",
        )
        .unwrap();
        let reg = registry(&[dir.path().to_path_buf()]).unwrap();
        assert_eq!(reg.len(), 2);
        let mut out = Resolved::default();
        let (s, e, f) = &reg["example.com/dev=a"];
        apply(&mut out, s, f).unwrap();
        apply(&mut out, e, f).unwrap();
        assert_eq!(out.env, ["SPEC=1", "A=1"]);
        let null = std::fs::metadata("/dev/null").unwrap();
        use std::os::unix::fs::MetadataExt;
        assert_eq!(out.devices[0].major, i64::from(libc::major(null.rdev())));
        assert_eq!(out.devices[0].path, PathBuf::from("/dev/xa"));
        assert_eq!(out.devices[0].permissions, "rwm");
    }

    #[test]
    fn unsupported_edits_are_refused_by_name() {
        let e = Edits {
            hooks: vec![CdiHook {
                hook_name: "prestart".into(),
                path: "/bin/true".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let err = apply(&mut Resolved::default(), &e, Path::new("/etc/cdi/x.json")).unwrap_err();
        assert!(
            err.to_string().contains("prestart hooks are not supported"),
            "{err}"
        );
    }
}
