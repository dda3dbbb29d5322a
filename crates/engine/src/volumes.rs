//! Volumes and the container's extra mounts (`-v`, `--tmpfs`, the image's VOLUME).
//!
//! A volume is a directory `ROOT/volumes/<name>/_data`, recorded in the `volumes` table;
//! `container_volumes` says which containers use which, so in-use volumes are never removed.

use crate::config::{ContainerConfig, Mount as Spec};
use crate::options;
use crate::{now_nanos, random_id, Engine, Error, Plan, Result};
use oci_spec::runtime::{Mount, MountBuilder};
use rusqlite::{params, OptionalExtension};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// A volume as `volume ls` / `volume inspect` show it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct VolumeInfo {
    /// Name (64 hex for anonymous volumes).
    #[serde(rename = "Name")]
    pub name: String,
    /// Always "local".
    #[serde(rename = "Driver")]
    pub driver: &'static str,
    /// Host directory holding the data.
    #[serde(rename = "Mountpoint")]
    pub mountpoint: PathBuf,
    /// Creation time, RFC 3339.
    #[serde(rename = "CreatedAt")]
    pub created_at: String,
    /// `--label` values.
    #[serde(rename = "Labels")]
    pub labels: std::collections::BTreeMap<String, String>,
    /// "local".
    #[serde(rename = "Scope")]
    pub scope: &'static str,
    #[serde(skip)]
    /// Created implicitly for a container.
    pub anonymous: bool,
}

fn mount(dest: &str, typ: &str, source: &str, opts: Vec<String>) -> Result<Mount> {
    MountBuilder::default()
        .destination(dest)
        .typ(typ)
        .source(source)
        .options(opts)
        .build()
        .map_err(|e| Error::Invalid(format!("mount {dest}: {e}")))
}

impl Engine {
    pub(crate) fn volume_dir(&self, name: &str) -> PathBuf {
        self.root().join("volumes").join(name).join("_data")
    }

    /// Creates a volume (idempotent for an existing name, like Docker). Returns its name.
    pub fn volume_create(&self, name: Option<&str>, labels: &[String]) -> Result<String> {
        let (name, anonymous) = match name {
            Some(n) => {
                if !crate::names::valid(n) {
                    return Err(Error::Invalid(format!(
                        "create {n}: \"{n}\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed"
                    )));
                }
                (n.to_string(), false)
            }
            None => (random_id()?, true),
        };
        self.ensure_volume(&name, anonymous, labels)?;
        Ok(name)
    }

    /// Returns true when the volume was created by this call.
    fn ensure_volume(&self, name: &str, anonymous: bool, labels: &[String]) -> Result<bool> {
        self.ensure_volume_for(name, anonymous, labels, None)
    }

    /// [`Engine::ensure_volume`], recorded in the same transaction as used by container `id`
    /// at `target` when `user` is `Some((id, target))`: made apart, a kill between the two
    /// left an anonymous volume that no container used and no `rm -v` or `--rm` removed.
    fn ensure_volume_for(
        &self,
        name: &str,
        anonymous: bool,
        labels: &[String],
        user: Option<(&str, &str)>,
    ) -> Result<bool> {
        // The row first: a kill between the two steps then leaves a volume without its
        // directory, which the next use creates and `volume prune` removes, rather than a
        // directory no row names, which nothing would ever collect.
        let labels = serde_json::to_string(labels).unwrap_or_else(|_| "[]".into());
        let tx = rusqlite::Transaction::new_unchecked(
            self.store.conn(),
            rusqlite::TransactionBehavior::Immediate,
        )?;
        let n = tx.execute(
            "INSERT OR IGNORE INTO volumes (name, created, anonymous, labels) VALUES (?1, ?2, ?3, ?4)",
            params![name, now_nanos(), anonymous, labels],
        )?;
        if let Some((id, target)) = user {
            tx.execute(
                "INSERT INTO container_volumes (container_id, volume, target) VALUES (?1, ?2, ?3)
                 ON CONFLICT (container_id, volume) DO UPDATE SET target = excluded.target",
                params![id, name, target],
            )?;
        }
        tx.commit()?;
        let dir = self.volume_dir(name);
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(format!("create volume {name}"), e))?;
        if n == 1 {
            self.object_event("volume", name, "create", &[("driver", "local".into())]);
        }
        Ok(n == 1)
    }

    /// All volumes, by name.
    pub fn volume_list(&self) -> Result<Vec<VolumeInfo>> {
        let mut st = self
            .store
            .conn()
            .prepare("SELECT name, created, anonymous, labels FROM volumes ORDER BY name")?;
        let rows = st.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, bool>(2)?,
                r.get::<_, String>(3)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (name, created, anonymous, labels) = row?;
            let labels: Vec<String> = serde_json::from_str(&labels).unwrap_or_default();
            out.push(VolumeInfo {
                mountpoint: self.volume_dir(&name),
                name,
                driver: "local",
                created_at: crate::rfc3339(created),
                labels: labels
                    .iter()
                    .map(|l| match l.split_once('=') {
                        Some((k, v)) => (k.to_string(), v.to_string()),
                        None => (l.clone(), String::new()),
                    })
                    .collect(),
                scope: "local",
                anonymous,
            });
        }
        Ok(out)
    }

    /// The volumes some container (running or not) uses: `volume ls -f dangling=` needs them.
    pub fn volumes_in_use(&self) -> Result<std::collections::HashSet<String>> {
        let mut st = self
            .store
            .conn()
            .prepare("SELECT DISTINCT volume FROM container_volumes")?;
        let names = st.query_map([], |r| r.get::<_, String>(0))?;
        Ok(names.collect::<rusqlite::Result<_>>()?)
    }

    /// One volume.
    pub fn volume_inspect(&self, name: &str) -> Result<VolumeInfo> {
        self.volume_list()?
            .into_iter()
            .find(|v| v.name == name)
            .ok_or_else(|| Error::NoSuchVolume(name.to_string()))
    }

    /// Removes a volume unless a container uses it (`force` does not override that, as with Docker).
    pub fn volume_remove(&self, name: &str) -> Result<()> {
        self.reconcile()?;
        let exists: bool = self.store.conn().query_row(
            "SELECT EXISTS(SELECT 1 FROM volumes WHERE name = ?1)",
            [name],
            |r| r.get(0),
        )?;
        if !exists {
            return Err(Error::NoSuchVolume(name.to_string()));
        }
        let users: Vec<String> = {
            let mut st = self
                .store
                .conn()
                .prepare("SELECT container_id FROM container_volumes WHERE volume = ?1")?;
            let rows = st.query_map([name], |r| r.get::<_, String>(0))?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        if !users.is_empty() {
            return Err(Error::VolumeInUse {
                name: name.to_string(),
                users,
            });
        }
        self.durable.set(true);
        self.delete_volumes(|tx| {
            tx.execute("DELETE FROM volumes WHERE name = ?1", [name])?;
            Ok(vec![name.to_string()])
        })?;
        Ok(())
    }

    /// Runs `delete`, which drops rows of volumes and names them, in one transaction that
    /// commits only once those volumes' directories are out of `volumes/`, then deletes the
    /// directories. Returns the names.
    ///
    /// The order matters for a kill: a directory that no row names is never collected and
    /// shows in no listing, while a row whose directory went is a volume the next use
    /// recreates and `rm -v`, `volume rm` or `prune` removes. Committing first left the first
    /// in the window before the move (seen in CI: `rm -f -v` killed there).
    fn delete_volumes(
        &self,
        delete: impl FnOnce(&rusqlite::Transaction<'_>) -> rusqlite::Result<Vec<String>>,
    ) -> Result<Vec<String>> {
        let tx = rusqlite::Transaction::new_unchecked(
            self.store.conn(),
            rusqlite::TransactionBehavior::Immediate,
        )?;
        let names = delete(&tx)?;
        let aside: Vec<Option<PathBuf>> = names
            .iter()
            .map(|n| self.move_volume_dir_aside(n))
            .collect();
        if let Err(e) = tx.commit() {
            // The rows stay: so do their directories.
            for (n, tmp) in names.iter().zip(&aside) {
                if let Some(tmp) = tmp {
                    let _ = std::fs::rename(tmp, self.root().join("volumes").join(n));
                }
            }
            return Err(e.into());
        }
        for (n, tmp) in names.iter().zip(aside) {
            match tmp {
                Some(tmp) => {
                    let _ = std::fs::remove_dir_all(tmp);
                }
                // Not movable (no `tmp/`): deleted in place, after the commit.
                None => {
                    let _ = std::fs::remove_dir_all(self.root().join("volumes").join(n));
                }
            }
            self.object_event("volume", n, "destroy", &[("driver", "local".into())]);
        }
        Ok(names)
    }

    /// Moves a volume's directory into `tmp/` as `<pid>-volume-…` (one rename), whose
    /// leftovers the store sweeps once this process is dead, so that neither a kill nor a
    /// failed deletion of a large volume leaves part of it under `volumes/`. None when it
    /// could not be moved (or does not exist).
    fn move_volume_dir_aside(&self, name: &str) -> Option<PathBuf> {
        let dir = self.root().join("volumes").join(name);
        let mut r = [0u8; 8];
        getrandom::fill(&mut r).ok()?;
        let tmp = self.root().join("tmp").join(format!(
            "{}-volume-{}",
            std::process::id(),
            hex::encode(r)
        ));
        std::fs::rename(&dir, &tmp).ok().map(|()| tmp)
    }

    /// Removes anonymous volumes no container uses (Docker's default `volume prune`), or all
    /// unused volumes with `all`. Returns the names and the bytes freed.
    pub fn volume_prune(&self, all: bool) -> Result<(Vec<String>, u64)> {
        self.volume_prune_matching(all, &|_| true)
    }

    /// [`Engine::volume_prune`] of the volumes `accept` takes (`volume prune --filter
    /// label=…`).
    pub fn volume_prune_matching(
        &self,
        all: bool,
        accept: &dyn Fn(&VolumeInfo) -> bool,
    ) -> Result<(Vec<String>, u64)> {
        self.reconcile()?;
        let candidates: Vec<String> = {
            let mut st = self.store.conn().prepare(
                "SELECT name FROM volumes WHERE (anonymous = 1 OR ?1) AND name NOT IN (SELECT volume FROM container_volumes)",
            )?;
            let rows = st.query_map([all], |r| r.get::<_, String>(0))?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        let names: Vec<String> = if candidates.is_empty() {
            candidates
        } else {
            let list = self.volume_list()?;
            candidates
                .into_iter()
                .filter(|n| list.iter().any(|v| &v.name == n && accept(v)))
                .collect()
        };
        let mut freed = 0;
        for n in &names {
            freed += disk_usage(&self.volume_dir(n));
            self.volume_remove(n)?;
        }
        Ok((names, freed))
    }

    /// Forgets a container's volume uses; its anonymous volumes go too when `anonymous` is set
    /// (`--rm`, `rm -v`).
    pub(crate) fn release_volumes(&self, id: &str, anonymous: bool) {
        // The links and (with `anonymous`) the container's anonymous volumes that no other
        // container uses go in one transaction: deleted one after the other, a kill in between
        // left the volumes unlinked, and `rm -v` run again no longer found them.
        let release = |tx: &rusqlite::Transaction<'_>| -> rusqlite::Result<Vec<String>> {
            let anon: Vec<String> = if anonymous {
                let mut st = tx.prepare(
                    "SELECT v.name FROM container_volumes cv JOIN volumes v ON v.name = cv.volume
                     WHERE cv.container_id = ?1 AND v.anonymous = 1 AND NOT EXISTS
                       (SELECT 1 FROM container_volumes o WHERE o.volume = v.name AND o.container_id != ?1)",
                )?;
                let rows = st.query_map([id], |r| r.get::<_, String>(0))?;
                rows.collect::<rusqlite::Result<Vec<_>>>()?
            } else {
                Vec::new()
            };
            tx.execute(
                "DELETE FROM container_volumes WHERE container_id = ?1",
                [id],
            )?;
            for n in &anon {
                tx.execute("DELETE FROM volumes WHERE name = ?1", [n])?;
            }
            Ok(anon)
        };
        if self
            .delete_volumes(release)
            .is_ok_and(|gone| !gone.is_empty())
        {
            self.durable.set(true);
        }
    }

    /// `-v`, `--tmpfs` and the image's VOLUMEs that `-v` does not cover.
    fn mount_specs(opts: &ContainerConfig, plan: &Plan) -> Vec<Spec> {
        let mut specs: Vec<Spec> = opts.mounts.clone();
        for v in &plan.image_volumes {
            let covered = specs.iter().any(|s| s.target() == v);
            if !covered {
                specs.push(Spec::Volume {
                    name: None,
                    target: v.clone(),
                    readonly: false,
                });
            }
        }
        specs
    }

    /// `--volumes-from`: the binds and volumes of each container named, added to the
    /// configuration's own (which win at the same mount point, as with Docker), read-only or
    /// writable as the suffix says or as the other container has them.
    pub(crate) fn with_volumes_from<'a>(
        &self,
        config: &'a ContainerConfig,
    ) -> Result<std::borrow::Cow<'a, ContainerConfig>> {
        if config.volumes_from.is_empty() {
            return Ok(std::borrow::Cow::Borrowed(config));
        }
        let mut out = config.clone();
        for spec in &config.volumes_from {
            let (key, mode) = match spec.split_once(':') {
                Some((k, m)) => (k, Some(m)),
                None => (spec.as_str(), None),
            };
            let readonly = match mode {
                None => None,
                Some("ro") => Some(true),
                Some("rw") => Some(false),
                Some(m) => return Err(Error::Invalid(format!("invalid mode: {m}"))),
            };
            let source = self.find(key)?;
            let theirs = self.config_of(&source.id)?;
            let ro_at = |target: &str| {
                theirs.mounts.iter().any(|m| match m {
                    Spec::Bind {
                        target: t,
                        readonly,
                        ..
                    }
                    | Spec::Volume {
                        target: t,
                        readonly,
                        ..
                    } => t == target && *readonly,
                    Spec::Tmpfs { .. } => false,
                })
            };
            let mut add: Vec<Spec> = Vec::new();
            for m in &theirs.mounts {
                if let Spec::Bind {
                    source,
                    target,
                    readonly: ro,
                    propagation,
                } = m
                {
                    add.push(Spec::Bind {
                        source: source.clone(),
                        target: target.clone(),
                        readonly: readonly.unwrap_or(*ro),
                        propagation: propagation.clone(),
                    });
                }
            }
            // Every volume it uses, named or anonymous (its image's VOLUMEs too), where it
            // has them.
            let mut st = self.store.conn().prepare(
                "SELECT volume, target FROM container_volumes WHERE container_id = ?1 ORDER BY volume",
            )?;
            let rows = st.query_map([&source.id], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?))
            })?;
            for row in rows {
                let (name, target) = row?;
                let Some(target) = target else { continue };
                add.push(Spec::Volume {
                    name: Some(name),
                    readonly: readonly.unwrap_or_else(|| ro_at(&target)),
                    target,
                });
            }
            for m in add {
                if !out.mounts.iter().any(|o| o.target() == m.target()) {
                    out.mounts.push(m);
                }
            }
        }
        Ok(std::borrow::Cow::Owned(out))
    }

    /// The container's anonymous volumes from earlier (`create`, or a previous run), as
    /// (name, mount point); the point is unknown for rows written before it was recorded.
    fn previous_anonymous(&self, id: &str) -> Result<Vec<(String, Option<String>)>> {
        let mut st = self.store.conn().prepare(
            "SELECT v.name, cv.target FROM container_volumes cv JOIN volumes v ON v.name = cv.volume WHERE cv.container_id = ?1 AND v.anonymous = 1 ORDER BY v.name",
        )?;
        let rows = st.query_map([id], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The volume for a `-v` (or image VOLUME) at `target`: the named one, or the anonymous
    /// one this container had there before, or a new one; made if missing and recorded as
    /// the container's, at `target`. Returns its name and whether it was made now.
    fn claim_volume(
        &self,
        id: &str,
        name: Option<String>,
        target: &str,
        previous: &mut Vec<(String, Option<String>)>,
    ) -> Result<(String, bool)> {
        let (name, anonymous) = match name {
            Some(n) => (n, false),
            None => {
                // Its own mount point's first; a row without one (older roots) only when
                // none matches, which is the best that can be done for them.
                let at = previous
                    .iter()
                    .position(|(_, t)| t.as_deref() == Some(target))
                    .or_else(|| previous.iter().position(|(_, t)| t.is_none()));
                match at {
                    Some(i) => (previous.remove(i).0, true),
                    None => (random_id()?, true),
                }
            }
        };
        let created = self.ensure_volume_for(&name, anonymous, &[], Some((id, target)))?;
        Ok((name, created))
    }

    /// `create` makes the container's volumes, as Docker does: from then on they exist and
    /// are in use (`volume ls` shows them, `volume prune` keeps them), and its starts mount
    /// the same ones at the same points. They are filled from the image at the first start.
    pub(crate) fn claim_volumes(
        &self,
        id: &str,
        opts: &ContainerConfig,
        plan: &Plan,
    ) -> Result<()> {
        let mut previous = self.previous_anonymous(id)?;
        for spec in Self::mount_specs(opts, plan) {
            if let Spec::Volume { name, target, .. } = spec {
                self.claim_volume(id, name, &target, &mut previous)?;
            }
        }
        Ok(())
    }

    /// The mounts of `-v`, `--tmpfs` and the image's VOLUMEs, creating volumes (and missing `-v`
    /// host directories, as Docker does) on the way.
    pub(crate) fn container_mounts(
        &self,
        id: &str,
        opts: &ContainerConfig,
        plan: &Plan,
    ) -> Result<Vec<Mount>> {
        let mut mounts = Vec::new();
        let mut targets = Vec::new();
        let specs = Self::mount_specs(opts, plan);
        // Reuse a container's anonymous volumes when it is started again.
        let mut previous = self.previous_anonymous(id)?;
        for spec in specs {
            match spec {
                Spec::Bind {
                    source,
                    target,
                    readonly,
                    propagation,
                } => {
                    if !Path::new(&source).exists() {
                        std::fs::create_dir_all(&source).map_err(|e| {
                            Error::io(format!("create bind mount source {source}"), e)
                        })?;
                    }
                    let mut o = vec!["rbind".to_string(), propagation];
                    if readonly {
                        o.push("ro".into());
                    }
                    mounts.push(mount(&target, "bind", &source, o)?);
                    targets.push(target);
                }
                Spec::Volume {
                    name,
                    target,
                    readonly,
                } => {
                    let (name, created) = self.claim_volume(id, name, &target, &mut previous)?;
                    let data = self.volume_dir(&name);
                    if created || dir_is_empty(&data) {
                        // Docker fills an empty volume with what the image has at the mount point.
                        if let Some(src) = find_in_layers(&plan.image.layers, &target) {
                            copy_tree(&src, &data).map_err(|e| {
                                Error::io(format!("fill volume {name} from the image"), e)
                            })?;
                        }
                    }
                    let mut o = vec!["rbind".to_string(), "rprivate".to_string()];
                    if readonly {
                        o.push("ro".into());
                    }
                    mounts.push(mount(&target, "bind", &data.to_string_lossy(), o)?);
                    targets.push(target);
                }
                Spec::Tmpfs { target, options } => {
                    let o = options::tmpfs_options(&options);
                    mounts.push(mount(&target, "tmpfs", "tmpfs", o)?);
                    targets.push(target);
                }
            }
        }
        for o in &opts.overlays {
            mounts.push(o.oci()?);
            targets.push(o.target.clone());
        }
        // Parents before what is mounted inside them, as Docker orders mounts (a cache mount
        // at /src/target inside a bind mount at /src).
        mounts.sort_by_key(|m| m.destination().components().count());
        targets.sort();
        if let Some(w) = targets.windows(2).find(|w| w[0] == w[1]) {
            return Err(Error::Invalid(format!("Duplicate mount point: {}", w[0])));
        }
        Ok(mounts)
    }

    /// Whether a volume exists.
    pub fn volume_exists(&self, name: &str) -> Result<bool> {
        Ok(self
            .store
            .conn()
            .query_row("SELECT 1 FROM volumes WHERE name = ?1", [name], |_| Ok(()))
            .optional()?
            .is_some())
    }
}

/// Bytes of regular files under `p` (what Docker counts as reclaimed).
fn disk_usage(p: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(p) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => disk_usage(&e.path()),
            Ok(m) if m.is_file() => m.len(),
            _ => 0,
        })
        .sum()
}

fn dir_is_empty(p: &Path) -> bool {
    std::fs::read_dir(p)
        .map(|mut d| d.next().is_none())
        .unwrap_or(false)
}

/// The directory at `target` in the topmost layer that has it (layers bottom → top).
fn find_in_layers(layers: &[PathBuf], target: &str) -> Option<PathBuf> {
    let rel = target.trim_start_matches('/');
    layers.iter().rev().map(|l| l.join(rel)).find(|p| {
        std::fs::symlink_metadata(p)
            .map(|m| m.is_dir())
            .unwrap_or(false)
    })
}

/// Copies a directory tree keeping modes, owners and symlinks (not following them).
fn copy_tree(src: &Path, dst: &Path) -> std::io::Result<()> {
    let meta = std::fs::symlink_metadata(src)?;
    std::fs::set_permissions(dst, std::fs::Permissions::from_mode(meta.mode() & 0o7777))?;
    std::os::unix::fs::lchown(dst, Some(meta.uid()), Some(meta.gid()))?;
    for entry in std::fs::read_dir(src)? {
        let entry = entry?;
        let from = entry.path();
        let to = dst.join(entry.file_name());
        let m = std::fs::symlink_metadata(&from)?;
        let ft = m.file_type();
        if ft.is_dir() {
            std::fs::create_dir_all(&to)?;
            copy_tree(&from, &to)?;
        } else if ft.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&from)?, &to)?;
            std::os::unix::fs::lchown(&to, Some(m.uid()), Some(m.gid()))?;
        } else if ft.is_file() {
            std::fs::copy(&from, &to)?;
            std::os::unix::fs::lchown(&to, Some(m.uid()), Some(m.gid()))?;
            std::fs::set_permissions(&to, std::fs::Permissions::from_mode(m.mode() & 0o7777))?;
        }
        // Device nodes, sockets and FIFOs are not copied into volumes, as with Docker.
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A container's new anonymous volume and its use are recorded together: made apart, a
    /// kill between them left a volume no container used, which `--rm` and `rm -v` never
    /// removed (seen by the fault-injection tests). A failing link (a trigger stands for the
    /// kill) must leave no volume.
    #[test]
    fn an_anonymous_volume_is_made_with_its_use_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let e = Engine::open(dir.path()).unwrap();
        let id = "e".repeat(64);
        e.store
            .conn()
            .execute_batch(
                "CREATE TEMP TRIGGER crash BEFORE INSERT ON main.container_volumes
                 BEGIN SELECT RAISE(ABORT, 'killed'); END;",
            )
            .unwrap();
        assert!(e.claim_volume(&id, None, "/data", &mut Vec::new()).is_err());
        assert!(
            e.volume_list().unwrap().is_empty(),
            "no volume without its use"
        );
        e.store
            .conn()
            .execute_batch("DROP TRIGGER temp.crash")
            .unwrap();
        let (name, made) = e.claim_volume(&id, None, "/data", &mut Vec::new()).unwrap();
        assert!(made);
        assert_eq!(
            e.volumes_in_use().unwrap().into_iter().collect::<Vec<_>>(),
            [name]
        );
    }
}
