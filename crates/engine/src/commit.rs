//! `hako commit`: a new image from a container's writable layer.
//!
//! The upper directory of the overlay becomes a layer tar: overlayfs whiteouts (0:0 character
//! devices) turn back into OCI `.wh.` entries and opaque directories into `.wh..wh..opq`, so the
//! layer means the same thing to any runtime. The builder commits RUN steps the same way.

use crate::{now_nanos, rfc3339, Engine, Error, Result};
use hako_image::{NewImage, NewLayer, Reference};
use std::io::{Seek, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

/// Options of `hako commit`.
#[derive(Debug, Default, Clone)]
pub struct CommitOptions {
    /// `-m`.
    pub message: Option<String>,
    /// `-a`.
    pub author: Option<String>,
    /// `-c` Dockerfile instructions applied to the config.
    pub changes: Vec<String>,
    /// REPOSITORY[:TAG].
    pub reference: Option<Reference>,
}

/// Files hako creates for every container (mount points); they are not part of a commit.
const HAKO_FILES: [&str; 3] = ["etc/hosts", "etc/hostname", "etc/resolv.conf"];

/// Writes the OCI layer tar of an overlay upper directory. With `clamp` (a reproducible
/// build's `SOURCE_DATE_EPOCH`), no entry's time is later than it.
pub fn write_layer_tar(
    upper: &Path,
    out: impl Write,
    skip: &[String],
    clamp: Option<u64>,
) -> std::io::Result<()> {
    let mut b = tar::Builder::new(out);
    b.follow_symlinks(false);
    add_dir(&mut b, upper, Path::new(""), skip, clamp)?;
    b.finish()
}

fn add_dir<W: Write>(
    b: &mut tar::Builder<W>,
    root: &Path,
    rel: &Path,
    skip: &[String],
    clamp: Option<u64>,
) -> std::io::Result<()> {
    let dir = root.join(rel);
    let mut entries: Vec<_> = std::fs::read_dir(&dir)?.collect::<std::io::Result<_>>()?;
    // A stable order makes equal contents produce equal layer digests.
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name();
        let r = rel.join(&name);
        let rs = r.to_string_lossy();
        if skip.iter().any(|s| s == rs.as_ref()) {
            continue;
        }
        let meta = std::fs::symlink_metadata(e.path())?;
        if meta.file_type().is_char_device() && meta.rdev() == 0 {
            let wh = rel.join(format!(".wh.{}", name.to_string_lossy()));
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Regular);
            h.set_size(0);
            h.set_mode(0o644);
            let t = meta.mtime().max(0) as u64;
            h.set_mtime(clamp.map_or(t, |c| t.min(c)));
            b.append_data(&mut h, &wh, std::io::empty())?;
            continue;
        }
        let ft = meta.file_type();
        let special = ft.is_fifo() || ft.is_char_device() || ft.is_block_device();
        match clamp {
            None if !special => b.append_path_with_name(e.path(), &r)?,
            // tar's `append_path_with_name` names a fifo or device by its host path, which
            // it then refuses as absolute: a RUN step that left one could not be committed.
            _ => append_clamped(b, &e.path(), &r, &meta, clamp.unwrap_or(u64::MAX))?,
        }
        if meta.is_dir() {
            if let Ok(Some(v)) = xattr_get(&e.path(), &opaque_name()) {
                if v == b"y" {
                    let mut h = tar::Header::new_gnu();
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_size(0);
                    h.set_mode(0o644);
                    b.append_data(&mut h, r.join(".wh..wh..opq"), std::io::empty())?;
                }
            }
            add_dir(b, root, &r, skip, clamp)?;
        }
    }
    Ok(())
}

/// What `append_path_with_name` writes (and, for a fifo or device, would), with the entry's
/// time at most `clamp`: the header is the same one (GNU, the file's metadata, no access or
/// change times), only made here.
fn append_clamped<W: Write>(
    b: &mut tar::Builder<W>,
    path: &Path,
    name: &Path,
    meta: &std::fs::Metadata,
    clamp: u64,
) -> std::io::Result<()> {
    let ft = meta.file_type();
    let mut h = tar::Header::new_gnu();
    h.set_metadata_in_mode(meta, tar::HeaderMode::Complete);
    h.set_mtime((meta.mtime().max(0) as u64).min(clamp));
    if ft.is_file() {
        use std::io::Read;
        let f = std::fs::File::open(path)?;
        b.append_data(&mut h, name, f.take(meta.len()))
    } else if ft.is_dir() {
        h.set_size(0);
        b.append_data(&mut h, name, std::io::empty())
    } else if ft.is_symlink() {
        h.set_size(0);
        b.append_link(&mut h, name, std::fs::read_link(path)?)
    } else if ft.is_fifo() || ft.is_char_device() || ft.is_block_device() {
        h.set_size(0);
        let dev = meta.rdev();
        h.set_device_major(libc::major(dev))?;
        h.set_device_minor(libc::minor(dev))?;
        b.append_data(&mut h, name, std::io::empty())
    } else {
        // A socket: refused as `append_path_with_name` refuses it.
        b.append_path_with_name(path, name)
    }
}

/// The xattr overlayfs marks opaque directories with here (`user.` inside a user namespace).
pub(crate) fn opaque_name() -> String {
    hako_base::userns::overlay_opaque_xattr()
        .to_string_lossy()
        .into_owned()
}

pub(crate) fn xattr_get(path: &Path, name: &str) -> std::io::Result<Option<Vec<u8>>> {
    use std::os::unix::ffi::OsStrExt;
    let p = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
    let n = std::ffi::CString::new(name)
        .map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
    let mut buf = [0u8; 16];
    // SAFETY: lgetxattr writes at most buf.len() bytes into our buffer.
    let r = unsafe { libc::lgetxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if r < 0 {
        let e = std::io::Error::last_os_error();
        return if e.raw_os_error() == Some(libc::ENODATA) {
            Ok(None)
        } else {
            Err(e)
        };
    }
    Ok(Some(buf[..r as usize].to_vec()))
}

impl Engine {
    /// `docker commit`: returns the new image's ID.
    pub fn commit(&self, key: &str, opts: &CommitOptions) -> Result<String> {
        let c = self.find(key)?;
        let image = self.resolve_image(&c.image_id)?;
        let config_bytes = self.store.read_blob(&image.id)?;
        let mut config: serde_json::Value = serde_json::from_slice(&config_bytes)
            .map_err(|e| Error::Invalid(format!("image config: {e}")))?;
        let (_, manifest_bytes) = self.store.manifest_of(&image.id)?;
        let mut manifest: serde_json::Value = serde_json::from_slice(&manifest_bytes)
            .map_err(|e| Error::Invalid(format!("image manifest: {e}")))?;

        // The running configuration of the container becomes the image's, as with Docker.
        let run = self.config_of(&c.id)?;
        let mut cfg: oci_spec::image::Config =
            serde_json::from_value(config["config"].clone()).unwrap_or_default();
        if !run.cmd.is_empty() {
            cfg.set_cmd(Some(run.cmd.clone()));
        }
        if let Some(e) = &run.entrypoint {
            cfg.set_entrypoint((!e.is_empty()).then(|| e.clone()));
        }
        if let Some(w) = &run.working_dir {
            cfg.set_working_dir(Some(w.clone()));
        }
        if let Some(u) = &run.user {
            cfg.set_user(Some(u.clone()));
        }
        if !run.env.is_empty() {
            let mut env = cfg.env().clone().unwrap_or_default();
            for kv in &run.env {
                let key = kv.split('=').next().unwrap_or("");
                env.retain(|e| e.split('=').next() != Some(key));
                env.push(kv.clone());
            }
            cfg.set_env(Some(env));
        }
        hako_image::apply_changes(&mut cfg, &opts.changes)?;
        config["config"] = serde_json::to_value(&cfg).map_err(|e| Error::Invalid(e.to_string()))?;

        // Layer: the upper directory as a tar, staged (hashed and unpacked) by the store. A
        // running container is frozen meanwhile so the layer is consistent (Docker's --pause).
        let frozen = if c.state == crate::State::Running {
            self.pause(&c.id).ok()
        } else {
            None
        };
        let _thaw = ThawOnDrop {
            engine: self,
            id: frozen,
        };
        let upper = self.container_dir(&c.id).join("upper");
        let mut tmp = tempfile::tempfile_in(self.root().join("tmp"))
            .map_err(|e| Error::io("create a temporary layer", e))?;
        // A container never started has no upper directory yet: its layer is empty, as
        // Docker's commit of a created container gives one.
        if upper.is_dir() {
            write_layer_tar(&upper, &mut tmp, &HAKO_FILES.map(String::from), None)
        } else {
            tar::Builder::new(&mut tmp).finish()
        }
        .map_err(|e| Error::io("write the layer", e))?;
        tmp.rewind().map_err(|e| Error::io("rewind the layer", e))?;
        let staged = self.store.stager().stage_layer(&mut tmp, None)?;

        let created = rfc3339(now_nanos());
        config["created"] = created.clone().into();
        if let Some(a) = &opts.author {
            config["author"] = a.clone().into();
        }
        config["rootfs"]["diff_ids"]
            .as_array_mut()
            .ok_or_else(|| Error::Invalid("image config has no rootfs.diff_ids".into()))?
            .push(staged.diff_id.clone().into());
        let mut hist = serde_json::json!({"created": created, "created_by": c.command.join(" ")});
        if let Some(m) = &opts.message {
            hist["comment"] = m.clone().into();
        }
        if let Some(a) = &opts.author {
            hist["author"] = a.clone().into();
        }
        match config["history"].as_array_mut() {
            Some(h) => h.push(hist),
            None => config["history"] = serde_json::json!([hist]),
        }
        let new_config = serde_json::to_vec(&config).map_err(|e| Error::Invalid(e.to_string()))?;
        let config_digest = format!(
            "sha256:{}",
            hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&new_config))
        );
        manifest["config"]["digest"] = config_digest.clone().into();
        manifest["config"]["size"] = new_config.len().into();
        let layer_type = match manifest["mediaType"].as_str() {
            Some(m) if m.contains("docker") => "application/vnd.docker.image.rootfs.diff.tar",
            _ => "application/vnd.oci.image.layer.v1.tar",
        };
        manifest["layers"]
            .as_array_mut()
            .ok_or_else(|| Error::Invalid("image manifest has no layers".into()))?
            .push(serde_json::json!({"mediaType": layer_type, "digest": staged.blob_digest, "size": staged.blob_size}));
        let parent_layers = image.layers.len();
        let mut layers: Vec<NewLayer> = (0..parent_layers).map(|_| NewLayer::Existing).collect();
        layers.push(NewLayer::Staged(staged));
        let new = self.store.commit_image(NewImage {
            manifest: serde_json::to_vec(&manifest).map_err(|e| Error::Invalid(e.to_string()))?,
            config: new_config,
            layers,
            tag: opts.reference.clone(),
            repo_digest: None,
        })?;
        self.event(&c.id, "commit", &[]);
        if let Some(tag) = &opts.reference {
            self.object_event("image", &new.id, "tag", &[("name", tag.familiar())]);
        }
        Ok(new.id)
    }
}

struct ThawOnDrop<'a> {
    engine: &'a Engine,
    id: Option<String>,
}

impl Drop for ThawOnDrop<'_> {
    fn drop(&mut self) {
        if let Some(id) = &self.id {
            let _ = self.engine.unpause(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::write_layer_tar;
    use std::os::unix::fs::MetadataExt;

    /// An upper directory with a directory, a file, a symlink, a fifo and (as root) a whiteout.
    fn upper() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        let p = d.path();
        std::fs::create_dir_all(p.join("dir/sub")).unwrap();
        std::fs::write(p.join("dir/file"), b"content").unwrap();
        std::os::unix::fs::symlink("file", p.join("dir/link")).unwrap();
        nix::unistd::mkfifo(
            &p.join("fifo"),
            nix::sys::stat::Mode::from_bits_truncate(0o640),
        )
        .unwrap();
        // An overlayfs whiteout (a 0:0 character device) needs CAP_MKNOD: as root only.
        let _ = nix::sys::stat::mknod(
            &p.join("gone"),
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::from_bits_truncate(0o600),
            0,
        );
        d
    }

    fn entries(tar: &[u8]) -> Vec<(String, u64, u64)> {
        let mut a = tar::Archive::new(tar);
        a.entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                let gnu = h.as_gnu().unwrap();
                (
                    e.path().unwrap().to_string_lossy().into_owned(),
                    h.mtime().unwrap(),
                    gnu.atime().unwrap_or(0) + gnu.ctime().unwrap_or(0),
                )
            })
            .collect()
    }

    /// Also a fifo and a device (a whiteout is one too, but has its own entry): tar's own
    /// `append_path_with_name` refused them.
    #[test]
    fn a_clamp_changes_only_the_times_later_than_it() {
        let d = upper();
        let newest = ["dir", "dir/file", "fifo"]
            .iter()
            .map(|n| std::fs::symlink_metadata(d.path().join(n)).unwrap().mtime())
            .max()
            .unwrap() as u64;
        let mut plain = Vec::new();
        write_layer_tar(d.path(), &mut plain, &[], None).unwrap();
        // A clamp no entry reaches writes the very same bytes as none.
        let mut late = Vec::new();
        write_layer_tar(d.path(), &mut late, &[], Some(newest + 3600)).unwrap();
        assert!(plain == late, "a clamp after every time changed the layer");
        let mut clamped = Vec::new();
        write_layer_tar(d.path(), &mut clamped, &[], Some(1_000)).unwrap();
        let got = entries(&clamped);
        assert_eq!(
            got.iter().map(|(p, _, _)| p.as_str()).collect::<Vec<_>>(),
            entries(&plain)
                .iter()
                .map(|(p, _, _)| p.as_str())
                .collect::<Vec<_>>(),
        );
        assert!(got.len() >= 5, "{got:?}");
        for (path, mtime, atime_ctime) in &got {
            assert_eq!(*mtime, 1_000, "{path}");
            assert_eq!(*atime_ctime, 0, "{path}");
        }
    }
}
