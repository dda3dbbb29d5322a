//! The per-container state directory under `--root`: `state.json` (what `state` prints plus
//! what later commands need) and, between `create` and `start`, the `exec.fifo` the container
//! process waits on.

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The OCI runtime spec version this runtime implements.
pub const OCI_VERSION: &str = "1.2.0";

/// What `create` records about a container.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct Saved {
    pub id: String,
    pub pid: i32,
    /// Start time of `pid` in clock ticks since boot, so a recycled pid is not mistaken for
    /// the container.
    pub pid_start: u64,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    pub owner: String,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// The container's cgroup directories, one per hierarchy.
    #[serde(default)]
    pub cgroup_dirs: Vec<PathBuf>,
    /// The spec's hooks, kept because the bundle may change or vanish before `delete`.
    #[serde(default)]
    pub hooks: Option<oci_spec::runtime::Hooks>,
    /// The container has no mount namespace of its own: what it mounted on `rootfs` is in
    /// the runtime's namespace and must be unmounted when it goes.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub host_mounts: bool,
}

/// The container's status, as the OCI runtime spec names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Created,
    Running,
    Paused,
    Stopped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        }
    }
}

/// The OCI state document (`state` output and hooks' stdin).
#[derive(Serialize, Debug)]
pub struct OciState<'a> {
    #[serde(rename = "ociVersion")]
    pub oci_version: &'a str,
    pub id: &'a str,
    pub pid: i32,
    pub status: &'a str,
    pub bundle: &'a Path,
    pub rootfs: &'a Path,
    pub created: &'a str,
    pub owner: &'a str,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: &'a BTreeMap<String, String>,
}

pub struct Container {
    pub dir: PathBuf,
    pub saved: Saved,
}

/// Container IDs become directory names, so they are restricted the way runc restricts them.
pub fn validate_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id != "."
        && id != ".."
        && id.len() <= 1024
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '-' | '.'));
    if !ok {
        bail!("invalid container id {id:?}: use letters, digits, _ + - and .");
    }
    Ok(())
}

pub fn fifo_path(dir: &Path) -> PathBuf {
    dir.join("exec.fifo")
}

impl Container {
    pub fn load(root: &Path, id: &str) -> Result<Container> {
        validate_id(id)?;
        let dir = root.join(id);
        let path = dir.join("state.json");
        let data = match std::fs::read(&path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                bail!("container {id} does not exist")
            }
            Err(e) => return Err(e).with_context(|| format!("read {}", path.display())),
        };
        let saved: Saved = serde_json::from_slice(&data)
            .with_context(|| format!("corrupt state file {}", path.display()))?;
        Ok(Container { dir, saved })
    }

    pub fn save(&self) -> Result<()> {
        let tmp = self.dir.join("state.json.tmp");
        let data = serde_json::to_vec(&self.saved).context("encode state")?;
        let mut f =
            std::fs::File::create(&tmp).with_context(|| format!("create {}", tmp.display()))?;
        f.write_all(&data)
            .with_context(|| format!("write {}", tmp.display()))?;
        std::fs::rename(&tmp, self.dir.join("state.json"))
            .with_context(|| format!("rename {}", tmp.display()))
    }

    pub fn cgroup(&self) -> Option<hako_cgroups::Cgroup> {
        if self.saved.cgroup_dirs.is_empty() {
            return None;
        }
        let system = hako_cgroups::CgroupSystem::detect().ok()?;
        Some(system.open_dirs(&self.saved.cgroup_dirs))
    }

    /// Whether the recorded process still exists (and is not a zombie or a recycled pid).
    pub fn alive(&self) -> bool {
        hako_base::proc::alive(self.saved.pid, self.saved.pid_start)
    }

    pub fn status(&self) -> Status {
        if !self.alive() {
            return Status::Stopped;
        }
        if fifo_path(&self.dir).exists() {
            return Status::Created;
        }
        if self
            .cgroup()
            .is_some_and(|cg| cg.is_frozen().unwrap_or(false))
        {
            return Status::Paused;
        }
        Status::Running
    }

    pub fn oci_state(&self, status: Status) -> OciState<'_> {
        OciState {
            oci_version: OCI_VERSION,
            id: &self.saved.id,
            pid: if status == Status::Stopped {
                0
            } else {
                self.saved.pid
            },
            status: status.as_str(),
            bundle: &self.saved.bundle,
            rootfs: &self.saved.rootfs,
            created: &self.saved.created,
            owner: &self.saved.owner,
            annotations: &self.saved.annotations,
        }
    }
}

/// RFC 3339 UTC time with nanoseconds, as runc's `created`.
pub fn rfc3339_now() -> String {
    hako_base::time::rfc3339(hako_base::time::now_nanos())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_checked() {
        assert!(validate_id("abc-1.2_x+y").is_ok());
        for bad in ["", ".", "..", "a/b", "a b", "a\0"] {
            assert!(validate_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn time_format() {
        let t = rfc3339_now();
        assert_eq!(t.len(), 30, "{t}");
        assert!(t.ends_with('Z') && t.as_bytes()[10] == b'T', "{t}");
    }
}
