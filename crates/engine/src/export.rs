//! `hako export`: a container's filesystem as one tar stream, as `docker export` writes it.
//!
//! The filesystem is assembled as a read-only overlay of the container's upper directory on
//! top of the image layers, mounted in a private mount namespace of this process. Read-only
//! (the upper dir as just another lower layer) means no workdir and no second writer on a
//! running container's upper dir; the overlay applies the upper dir's whiteouts itself. Only
//! the container's own filesystem is exported: volumes, /proc and the other mounts a running
//! container has are not part of it, as with Docker.

use crate::{Engine, Error, Result};
use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let what = what.into();
    move |e| Error::io(what, e)
}

impl Engine {
    /// Writes the filesystem of container `key` to `out` as a tar archive.
    ///
    /// Unshares this process's mount namespace (the mount disappears with the process), so the
    /// caller must be single-threaded and must not need host mounts made afterwards.
    pub fn export(&self, key: &str, out: &mut dyn Write) -> Result<()> {
        let c = self.find(key)?;
        let image = self.resolve_image(&c.image_id)?;
        let upper = self.container_dir(&c.id).join("upper");
        let mut lower: Vec<PathBuf> = Vec::new();
        if upper.is_dir() {
            lower.push(upper);
        }
        lower.extend(image.layers.iter().rev().cloned());
        // The store sweeps tmp/<pid>-… entries of processes that are gone, so a crash leaves
        // only an empty directory that the next open removes.
        let mnt = self
            .root
            .join("tmp")
            .join(format!("{}-export", std::process::id()));
        std::fs::create_dir_all(&mnt).map_err(io("create the export mount point"))?;
        let res = self.export_mounted(&lower, &mnt, out);
        let _ = nix::mount::umount2(&mnt, nix::mount::MntFlags::MNT_DETACH);
        let _ = std::fs::remove_dir(&mnt);
        if res.is_ok() {
            self.event(&c.id, "export", &[]);
        }
        res
    }

    fn export_mounted(&self, lower: &[PathBuf], mnt: &Path, out: &mut dyn Write) -> Result<()> {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)
            .map_err(|e| Error::io("unshare the mount namespace", e.into()))?;
        nix::mount::mount(
            None::<&str>,
            "/",
            None::<&str>,
            nix::mount::MsFlags::MS_REC | nix::mount::MsFlags::MS_PRIVATE,
            None::<&str>,
        )
        .map_err(|e| Error::io("make / private", e.into()))?;
        if lower.len() == 1 {
            // overlayfs needs two lower layers without an upper one; one layer is itself the
            // filesystem.
            nix::mount::mount(
                Some(&lower[0]),
                mnt,
                None::<&str>,
                nix::mount::MsFlags::MS_BIND | nix::mount::MsFlags::MS_RDONLY,
                None::<&str>,
            )
            .map_err(|e| Error::io("mount the container's filesystem", e.into()))?;
        } else {
            // More layers than fit in a page of mount options are named by descriptor there.
            hako_runtime::mount_overlay(lower, None, mnt, nix::mount::MsFlags::MS_RDONLY)
                .map_err(|e| Error::io("mount the container's filesystem", e))?;
        }
        let mut tar = tar::Builder::new(out);
        tar.follow_symlinks(false);
        tar.mode(tar::HeaderMode::Complete);
        let mut links = HashMap::new();
        walk(&mut tar, mnt, Path::new(""), &mut links)?;
        tar.into_inner()
            .and_then(|w| w.flush())
            .map_err(io("write the export archive"))?;
        Ok(())
    }
}

/// The extended attributes of `path` (not following a symlink) as PAX records, which is how
/// GNU tar and Docker's archiver carry them. Names that are not UTF-8 cannot be PAX keys.
fn xattr_records(path: &Path) -> std::io::Result<Vec<(String, Vec<u8>)>> {
    let names = match xattr::list(path) {
        Ok(n) => n,
        Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for name in names {
        let Some(key) = name.to_str() else { continue };
        if let Some(value) = xattr::get(path, &name)? {
            out.push((format!("SCHILY.xattr.{key}"), value));
        }
    }
    out.sort();
    Ok(out)
}

/// Writes a PAX extended header (`records`) that applies to the entry appended next.
fn append_pax(
    tar: &mut tar::Builder<&mut dyn Write>,
    records: &[(String, Vec<u8>)],
) -> std::io::Result<()> {
    if records.is_empty() {
        return Ok(());
    }
    let mut data = Vec::new();
    for (key, value) in records {
        // "<len> <key>=<value>\n", where len counts the whole record, its own digits included.
        let rest = 1 + key.len() + 1 + value.len() + 1;
        let mut len = rest + 1;
        while len.to_string().len() + rest != len {
            len = len.to_string().len() + rest;
        }
        data.extend_from_slice(format!("{len} {key}=").as_bytes());
        data.extend_from_slice(value);
        data.push(b'\n');
    }
    let mut h = tar::Header::new_ustar();
    h.set_path("@PaxHeader")?;
    h.set_entry_type(tar::EntryType::XHeader);
    h.set_mode(0o644);
    h.set_size(data.len() as u64);
    h.set_cksum();
    tar.append(&h, &data[..])
}

/// Appends a directory entry named `rel/`, as Docker's archiver does (the tar crate drops a
/// trailing slash); a name too long for the header goes in a PAX `path` record.
fn append_dir(
    tar: &mut tar::Builder<&mut dyn Write>,
    meta: &std::fs::Metadata,
    rel: &Path,
    mut records: Vec<(String, Vec<u8>)>,
) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let mut name = rel.as_os_str().as_bytes().to_vec();
    name.push(b'/');
    let mut h = tar::Header::new_gnu();
    h.set_metadata_in_mode(meta, tar::HeaderMode::Complete);
    h.set_entry_type(tar::EntryType::Directory);
    h.set_size(0);
    let field = &mut h.as_old_mut().name;
    if name.len() <= field.len() {
        field[..name.len()].copy_from_slice(&name);
    } else {
        let n = field.len();
        field.copy_from_slice(&name[..n]);
        records.push(("path".to_string(), name));
    }
    append_pax(tar, &records)?;
    h.set_cksum();
    tar.append(&h, std::io::empty())
}

/// Appends the entries under `dir` (named `rel/…` in the archive), sorted by name; a file with
/// several links is written once and linked afterwards.
fn walk(
    tar: &mut tar::Builder<&mut dyn Write>,
    dir: &Path,
    rel: &Path,
    links: &mut HashMap<(u64, u64), PathBuf>,
) -> Result<()> {
    let here = dir.join(rel);
    let mut names: Vec<_> = std::fs::read_dir(&here)
        .map_err(io(format!("read {}", rel.display())))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<std::io::Result<_>>()
        .map_err(io(format!("read {}", rel.display())))?;
    names.sort();
    for name in names {
        let rel = rel.join(&name);
        let full = dir.join(&rel);
        let meta =
            std::fs::symlink_metadata(&full).map_err(io(format!("stat {}", rel.display())))?;
        let write = io(format!("archive {}", rel.display()));
        if meta.is_file() && meta.nlink() > 1 {
            if let Some(first) = links.get(&(meta.dev(), meta.ino())) {
                let mut h = tar::Header::new_gnu();
                h.set_metadata_in_mode(&meta, tar::HeaderMode::Complete);
                h.set_entry_type(tar::EntryType::Link);
                h.set_size(0);
                tar.append_link(&mut h, &rel, first).map_err(write)?;
                continue;
            }
            links.insert((meta.dev(), meta.ino()), rel.clone());
        }
        let ft = meta.file_type();
        if ft.is_socket() {
            // tar cannot hold sockets; Docker's archiver skips them too.
            continue;
        }
        let records =
            xattr_records(&full).map_err(io(format!("read the xattrs of {}", rel.display())))?;
        if meta.is_dir() {
            append_dir(tar, &meta, &rel, records).map_err(write)?;
            walk(tar, dir, &rel, links)?;
            continue;
        }
        append_pax(tar, &records).map_err(io(format!("archive {}", rel.display())))?;
        if ft.is_char_device() || ft.is_block_device() || ft.is_fifo() {
            // tar's own append_path names special files by their host path: build the header.
            let mut h = tar::Header::new_gnu();
            h.set_metadata_in_mode(&meta, tar::HeaderMode::Complete);
            h.set_entry_type(if ft.is_char_device() {
                tar::EntryType::Char
            } else if ft.is_block_device() {
                tar::EntryType::Block
            } else {
                tar::EntryType::Fifo
            });
            let rdev = meta.rdev();
            h.set_device_major(nix::sys::stat::major(rdev) as u32)
                .and_then(|_| h.set_device_minor(nix::sys::stat::minor(rdev) as u32))
                .map_err(io(format!("archive {}", rel.display())))?;
            h.set_size(0);
            tar.append_data(&mut h, &rel, std::io::empty())
                .map_err(write)?;
            continue;
        }
        tar.append_path_with_name(&full, &rel).map_err(write)?;
    }
    Ok(())
}
