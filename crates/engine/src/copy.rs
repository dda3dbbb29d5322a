//! `hako cp`: copying files into and out of a container.
//!
//! Paths inside the container are hostile (CVE-2018-15664, CVE-2019-14271): every lookup goes
//! through `openat2(RESOLVE_IN_ROOT)` on a descriptor of the container's root, and everything
//! below the path named is reached from its parent's descriptor with `O_NOFOLLOW`, never by a
//! path string. A process in the container that swaps a directory for a symlink meanwhile can
//! make a lookup fail or land elsewhere in the container, never outside it, so a running
//! container is not frozen (Docker pauses it): a `cp` killed while it held the container frozen
//! left it frozen for good, and its end thawed a container the user had paused.

use crate::{Engine, Error, Result, State};
use hako_runtime::fsutil::{self, Kind};
use std::ffi::CString;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

/// Where `cp` writes to or reads from on the host side.
pub enum HostEnd<'a> {
    /// A path on the host.
    Path(&'a Path),
    /// A tar stream (`-`).
    Tar(&'a mut dyn Read),
}

/// Destination of a copy out of a container.
pub enum HostSink<'a> {
    /// A path on the host.
    Path(&'a Path),
    /// A tar stream (`-`).
    Tar(&'a mut dyn Write),
}

fn cstr(p: &Path) -> Result<CString> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| Error::Invalid(format!("NUL in path {}", p.display())))
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let what = what.into();
    move |e| Error::io(what, e)
}

/// The container's root filesystem while a copy runs.
struct RootAccess {
    root: OwnedFd,
}

impl Engine {
    fn root_access(&self, key: &str) -> Result<RootAccess> {
        let c = self.find(key)?;
        let (pid, start): (Option<i32>, Option<i64>) = self.container_row(
            &c.id,
            "SELECT pid, pid_start FROM containers WHERE id = ?1",
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        if c.state == State::Running && crate::alive(pid, start) {
            if let Some(p) = pid {
                let root = std::fs::File::open(format!("/proc/{p}/root"));
                // Checked again after the open: the pid could have been reused meanwhile.
                if let (Ok(root), true) = (root, crate::alive(pid, start)) {
                    return Ok(RootAccess { root: root.into() });
                }
            }
        }
        // A stopped container has no mounted root: assemble it in a mount namespace of our
        // own, which disappears with this process.
        let image = self.resolve_image(&c.image_id)?;
        let dir = self.container_dir(&c.id);
        let rootfs = dir.join("rootfs");
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
        let lower: Vec<std::path::PathBuf> = image.layers.iter().rev().cloned().collect();
        std::fs::create_dir_all(&rootfs).map_err(io("create the rootfs mount point"))?;
        // More layers than fit in a page of mount options are named by descriptor there.
        hako_runtime::mount_overlay(
            &lower,
            Some((&dir.join("upper"), &dir.join("work"))),
            &rootfs,
            nix::mount::MsFlags::empty(),
        )
        .map_err(|e| Error::io("mount the container's filesystem", e))?;
        Ok(RootAccess {
            root: std::fs::File::open(&rootfs)
                .map_err(io("open the container's root"))?
                .into(),
        })
    }

    /// `hako cp CONTAINER:SRC DEST` (DEST `-` writes a tar stream). As Docker's: a symlink
    /// named by SRC is copied as the symlink, unless `follow` (`-L`) or a trailing `/` or `/.`
    /// asks for what it points to (resolved inside the container, as every lookup is).
    pub fn copy_from(&self, key: &str, src: &str, sink: HostSink<'_>, follow: bool) -> Result<()> {
        let access = self.root_access(key)?;
        let root = access.root.as_raw_fd();
        let src_path = Path::new(src);
        let contents_only = src.ends_with("/.");
        let nofollow = if follow || src.ends_with('/') || contents_only {
            0
        } else {
            libc::O_NOFOLLOW
        };
        let fd = fsutil::open_in_root(root, src_path, libc::O_PATH | nofollow).map_err(|e| {
            Error::Invalid(format!(
                "Could not find the file {src} in container {key}: {}",
                plain(&e)
            ))
        })?;
        let meta = fstat(&fd).map_err(io(format!("stat {src}")))?;
        let name = src_path
            .components()
            .rev()
            .find_map(|c| match c {
                Component::Normal(n) => Some(PathBuf::from(n)),
                _ => None,
            })
            .unwrap_or_else(|| PathBuf::from("."));
        match sink {
            HostSink::Tar(w) => {
                let mut b = tar::Builder::new(w);
                let base = if contents_only {
                    PathBuf::from(".")
                } else {
                    name
                };
                if meta.is_dir() {
                    let dir = reopen(&fd, libc::O_RDONLY | libc::O_DIRECTORY)
                        .map_err(io(format!("open {src}")))?;
                    append_tree(&mut b, &dir, &base)?;
                } else {
                    append_entry(&mut b, &fd, &meta, &base)?;
                }
                b.finish().map_err(io("write the archive"))?;
            }
            HostSink::Path(dest) => {
                let target = if dest.is_dir() && !contents_only {
                    dest.join(&name)
                } else {
                    dest.to_path_buf()
                };
                if meta.is_dir() {
                    if target.exists() && !target.is_dir() {
                        return Err(Error::Invalid(format!(
                            "cannot copy a directory to file {}",
                            target.display()
                        )));
                    }
                    std::fs::create_dir_all(&target)
                        .map_err(io(format!("create {}", target.display())))?;
                    copy_dir_out(&fd, &target)?;
                } else if meta.is_file() {
                    let f = reopen(&fd, libc::O_RDONLY | libc::O_NONBLOCK)
                        .map_err(io(format!("open {src}")))?;
                    copy_file_out(f, &target, &meta)?;
                } else if meta.file_type().is_symlink() {
                    let link = readlink_fd(&fd).map_err(io(format!("readlink {src}")))?;
                    if target.is_dir() && !target.is_symlink() {
                        return Err(Error::Invalid(format!(
                            "cannot overwrite directory {} with the symlink {src}",
                            target.display()
                        )));
                    }
                    let _ = std::fs::remove_file(&target);
                    std::os::unix::fs::symlink(link, &target)
                        .map_err(io(format!("create {}", target.display())))?;
                } else {
                    return Err(Error::Invalid(format!(
                        "{src} in container {key} is not a regular file, a directory or a symlink"
                    )));
                }
            }
        }
        Ok(())
    }

    /// `hako cp SRC CONTAINER:DEST` (SRC `-` reads a tar stream, extracted into DEST). A host
    /// symlink SRC is copied as the symlink unless `follow` (`-L`); a DEST that is a symlink in
    /// the container is followed once, inside the container, as Docker's CLI does.
    pub fn copy_to(
        &self,
        key: &str,
        dst: &str,
        source: HostEnd<'_>,
        archive: bool,
        follow: bool,
    ) -> Result<()> {
        let access = self.root_access(key)?;
        let root = access.root.as_raw_fd();
        let linked = link_destination(root, Path::new(dst));
        let dst_path = linked.as_deref().unwrap_or(Path::new(dst));
        let writer = Writer {
            root,
            keep_owner: archive,
        };
        match source {
            HostEnd::Tar(r) => {
                let dir = fsutil::open_in_root(root, dst_path, libc::O_PATH | libc::O_DIRECTORY)
                    .map_err(|e| {
                        Error::Invalid(format!(
                            "destination {dst} must be a directory in the container: {}",
                            plain(&e)
                        ))
                    })?;
                drop(dir);
                let mut ar = tar::Archive::new(r);
                for entry in ar.entries().map_err(io("read the archive"))? {
                    let mut entry = entry.map_err(io("read the archive"))?;
                    let rel = entry.path().map_err(io("read the archive"))?.into_owned();
                    if rel.components().any(|c| matches!(c, Component::ParentDir)) {
                        return Err(Error::Invalid(format!(
                            "archive entry {} leaves the destination",
                            rel.display()
                        )));
                    }
                    let path = dst_path.join(&rel);
                    let h = entry.header();
                    let (mode, uid, gid) = (
                        h.mode().unwrap_or(0o644),
                        h.uid().unwrap_or(0) as u32,
                        h.gid().unwrap_or(0) as u32,
                    );
                    match h.entry_type() {
                        tar::EntryType::Directory => writer.dir(&path, mode, uid, gid)?,
                        tar::EntryType::Symlink => {
                            let target = entry
                                .link_name()
                                .map_err(io("read the archive"))?
                                .unwrap_or_default()
                                .into_owned();
                            writer.symlink(&path, &target, uid, gid)?;
                        }
                        tar::EntryType::Regular | tar::EntryType::Continuous => {
                            writer.file(&path, &mut entry, mode, uid, gid)?
                        }
                        other => {
                            return Err(Error::Invalid(format!(
                                "archive entry {} has type {other:?}, which cp does not copy",
                                rel.display()
                            )))
                        }
                    }
                }
            }
            HostEnd::Path(src) => {
                let meta = if follow {
                    std::fs::metadata(src)
                } else {
                    std::fs::symlink_metadata(src)
                }
                .map_err(io(format!("stat {}", src.display())))?;
                let contents_only = src.as_os_str().as_bytes().ends_with(b"/.");
                let existing_dir =
                    fsutil::open_in_root(root, dst_path, libc::O_PATH | libc::O_DIRECTORY).is_ok();
                let name = src.file_name().map(PathBuf::from).unwrap_or_default();
                let target = if existing_dir && !contents_only && !name.as_os_str().is_empty() {
                    dst_path.join(&name)
                } else {
                    dst_path.to_path_buf()
                };
                copy_in_tree(&writer, src, &target, &meta)?;
            }
        }
        Ok(())
    }
}

/// Where a destination that is a symlink in the container points (joined with its directory
/// when relative), or None when it is not one. Only a path: the writes that follow resolve it
/// under the container's root again, and never follow a symlink at their last step.
fn link_destination(root: RawFd, dst: &Path) -> Option<PathBuf> {
    let s = dst.as_os_str().as_bytes();
    if s.ends_with(b"/") || s.ends_with(b"/.") {
        return None;
    }
    let fd = fsutil::open_in_root(root, dst, libc::O_PATH | libc::O_NOFOLLOW).ok()?;
    if !fstat(&fd).ok()?.file_type().is_symlink() {
        return None;
    }
    let link = readlink_fd(&fd).ok()?;
    Some(if link.is_absolute() {
        link
    } else {
        dst.parent().unwrap_or(Path::new("/")).join(link)
    })
}

fn plain(e: &std::io::Error) -> String {
    let s = e.to_string();
    s.split(" (os error").next().unwrap_or(&s).to_lowercase()
}

fn fsutil_path(fd: &OwnedFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// `fstat` of a descriptor (an `O_PATH` one too): the metadata of exactly what it names.
fn fstat(fd: &OwnedFd) -> std::io::Result<std::fs::Metadata> {
    // The File is only borrowed for the call: ManuallyDrop keeps it from closing `fd`.
    // SAFETY: `fd` is open for the duration; the File never closes it.
    let f = std::mem::ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(fd.as_raw_fd()) });
    f.metadata()
}

/// Opens the inode an `O_PATH` descriptor names, for reading. Through its `/proc/self/fd`
/// link, which leads to that inode and no other, however the container's paths change.
fn reopen(fd: &OwnedFd, flags: i32) -> std::io::Result<OwnedFd> {
    let p = fsutil::proc_fd_path(fd.as_raw_fd());
    // SAFETY: a valid C string; the result is checked and owned.
    let r = unsafe { libc::open(p.as_ptr(), flags | libc::O_CLOEXEC | libc::O_NOCTTY) };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(r) })
}

/// Copies an open file of the container to the host path `dst`.
fn copy_file_out(src: OwnedFd, dst: &Path, meta: &std::fs::Metadata) -> Result<()> {
    let mut src = std::fs::File::from(src);
    let mut out = std::fs::File::create(dst).map_err(io(format!("create {}", dst.display())))?;
    std::io::copy(&mut src, &mut out).map_err(io(format!("copy to {}", dst.display())))?;
    std::fs::set_permissions(dst, std::fs::Permissions::from_mode(meta.mode() & 0o7777))
        .map_err(io(format!("chmod {}", dst.display())))
}

/// The tar header of an entry with metadata `meta` (size 0 but for regular files).
fn header_for(meta: &std::fs::Metadata) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_metadata_in_mode(meta, tar::HeaderMode::Complete);
    h.set_mode(meta.mode() & 0o7777);
    h.set_size(if meta.is_file() { meta.len() } else { 0 });
    let ft = meta.file_type();
    if ft.is_char_device() || ft.is_block_device() {
        let rdev = meta.rdev();
        let _ = h.set_device_major(libc::major(rdev));
        let _ = h.set_device_minor(libc::minor(rdev));
    }
    h
}

/// Appends one entry that is not a directory, named by `fd` (`O_PATH`) whose metadata is
/// `meta`: a regular file with its content, a symlink with its target, a device or FIFO as
/// a header. Sockets have no tar form and are left out, as GNU tar does.
fn append_entry<W: Write>(
    b: &mut tar::Builder<W>,
    fd: &OwnedFd,
    meta: &std::fs::Metadata,
    name: &Path,
) -> Result<()> {
    let ft = meta.file_type();
    let write = io(format!("write {} to the archive", name.display()));
    if ft.is_file() {
        // O_NONBLOCK: should the inode not be a regular file after all, opening it never
        // waits (a FIFO without a writer).
        let f = reopen(fd, libc::O_RDONLY | libc::O_NONBLOCK)
            .map_err(io(format!("open {}", name.display())))?;
        let f = std::fs::File::from(f);
        let meta = f
            .metadata()
            .map_err(io(format!("stat {}", name.display())))?;
        let mut h = header_for(&meta);
        // Exactly the size in the header, even if the file shrinks or grows meanwhile
        // (the container keeps running): short content is padded with zeros, as GNU tar does.
        let len = meta.len();
        let data = f.take(len).chain(std::io::repeat(0)).take(len);
        b.append_data(&mut h, name, data).map_err(write)
    } else if ft.is_symlink() {
        let mut h = header_for(meta);
        let target = readlink_fd(fd).map_err(io(format!("readlink {}", name.display())))?;
        let bytes = target.as_os_str().as_bytes();
        if bytes.len() <= 100 {
            // As it is: set_link_name would normalise the target (`/` became `//`).
            h.set_link_name_literal(bytes)
                .map_err(io("write the archive"))?;
            b.append_data(&mut h, name, std::io::empty()).map_err(write)
        } else {
            // Longer targets go in a GNU long-link entry of their own.
            b.append_link(&mut h, name, target).map_err(write)
        }
    } else if ft.is_socket() {
        Ok(())
    } else {
        let mut h = header_for(meta);
        b.append_data(&mut h, name, std::io::empty()).map_err(write)
    }
}

/// Appends the directory `dir` (open for reading) as `name` and everything below it. Each
/// entry is opened from its parent's descriptor with `O_NOFOLLOW`, so a symlink the container
/// puts in place of a directory meanwhile is archived as a symlink, never followed.
fn append_tree<W: Write>(b: &mut tar::Builder<W>, dir: &OwnedFd, name: &Path) -> Result<()> {
    let meta = fstat(dir).map_err(io(format!("stat {}", name.display())))?;
    let mut h = header_for(&meta);
    b.append_data(&mut h, name, std::io::empty())
        .map_err(io("write the archive"))?;
    let mut names: Vec<std::ffi::OsString> = std::fs::read_dir(fsutil_path(dir))
        .map_err(io(format!("read {}", name.display())))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<std::io::Result<_>>()
        .map_err(io(format!("read {}", name.display())))?;
    names.sort();
    for entry in names {
        let cname =
            CString::new(entry.as_bytes()).map_err(|_| Error::Invalid("NUL in name".into()))?;
        let path = name.join(&entry);
        let fd = match openat(dir.as_raw_fd(), &cname, libc::O_PATH | libc::O_NOFOLLOW) {
            Ok(fd) => fd,
            // Removed by the container meanwhile.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
            Err(e) => return Err(Error::io(format!("open {}", path.display()), e)),
        };
        let meta = fstat(&fd).map_err(io(format!("stat {}", path.display())))?;
        if meta.is_dir() {
            let sub = reopen(&fd, libc::O_RDONLY | libc::O_DIRECTORY)
                .map_err(io(format!("open {}", path.display())))?;
            append_tree(b, &sub, &path)?;
        } else {
            append_entry(b, &fd, &meta, &path)?;
        }
    }
    Ok(())
}

/// The target of the symlink an `O_PATH | O_NOFOLLOW` descriptor names.
fn readlink_fd(fd: &OwnedFd) -> std::io::Result<PathBuf> {
    let mut buf = vec![0u8; libc::PATH_MAX as usize];
    // SAFETY: an empty path with a descriptor reads the link the descriptor names; the buffer
    // is writable for its full length.
    let n = unsafe {
        libc::readlinkat(
            fd.as_raw_fd(),
            c"".as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    buf.truncate(n as usize);
    Ok(PathBuf::from(std::ffi::OsString::from_vec(buf)))
}

/// Copies a directory of the container (named by a descriptor) to the host, never following
/// the container's symlinks: they are recreated as symlinks.
fn copy_dir_out(dir: &OwnedFd, dst: &Path) -> Result<()> {
    let base = fsutil_path(dir);
    for entry in std::fs::read_dir(&base).map_err(io(format!("read {}", dst.display())))? {
        let entry = entry.map_err(io("read a directory"))?;
        let name = entry.file_name();
        let m = std::fs::symlink_metadata(base.join(&name)).map_err(io("stat"))?;
        let to = dst.join(&name);
        if m.file_type().is_symlink() {
            let t = std::fs::read_link(base.join(&name)).map_err(io("readlink"))?;
            let _ = std::fs::remove_file(&to);
            std::os::unix::fs::symlink(t, &to).map_err(io(format!("create {}", to.display())))?;
        } else if m.is_dir() {
            std::fs::create_dir_all(&to).map_err(io(format!("create {}", to.display())))?;
            let cname =
                CString::new(name.as_bytes()).map_err(|_| Error::Invalid("NUL in name".into()))?;
            let sub = openat(
                dir.as_raw_fd(),
                &cname,
                libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW,
            )
            .map_err(io("open a directory"))?;
            copy_dir_out(&sub, &to)?;
        } else if m.is_file() {
            let cname =
                CString::new(name.as_bytes()).map_err(|_| Error::Invalid("NUL in name".into()))?;
            // O_NONBLOCK: a FIFO swapped in since the stat must not hang the copy.
            let f = openat(
                dir.as_raw_fd(),
                &cname,
                libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK,
            )
            .map_err(io("open a file"))?;
            if fstat(&f).map_err(io("stat"))?.is_file() {
                copy_file_out(f, &to, &m)?;
            }
        }
    }
    Ok(())
}

fn openat(dir: RawFd, name: &CString, flags: i32) -> std::io::Result<OwnedFd> {
    // SAFETY: valid descriptor and C string; the result is checked and owned.
    let fd = unsafe { libc::openat(dir, name.as_ptr(), flags | libc::O_CLOEXEC, 0o600) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Creates entries inside the container, each resolved under its root.
struct Writer {
    root: RawFd,
    keep_owner: bool,
}

impl Writer {
    fn parent_and_name(&self, path: &Path) -> Result<(OwnedFd, CString)> {
        let name = path
            .file_name()
            .ok_or_else(|| Error::Invalid(format!("invalid destination {}", path.display())))?;
        let parent = path.parent().unwrap_or(Path::new("/"));
        drop(
            fsutil::ensure_in_root(self.root, parent, Kind::Dir)
                .map_err(io(format!("directory {}", parent.display())))?,
        );
        let dir = fsutil::open_in_root(self.root, parent, libc::O_PATH | libc::O_DIRECTORY)
            .map_err(io(format!("{} is not a directory", parent.display())))?;
        Ok((
            dir,
            CString::new(name.as_bytes()).map_err(|_| Error::Invalid("NUL in name".into()))?,
        ))
    }

    fn owner(&self, uid: u32, gid: u32) -> (u32, u32) {
        if self.keep_owner {
            (uid, gid)
        } else {
            (0, 0)
        }
    }

    fn dir(&self, path: &Path, mode: u32, uid: u32, gid: u32) -> Result<()> {
        let fd = fsutil::ensure_in_root(self.root, path, Kind::Dir)
            .map_err(io(format!("create {}", path.display())))?;
        let (u, g) = self.owner(uid, gid);
        let p = cstr(&fsutil_path(&fd))?;
        // SAFETY: chmod/chown of the exact directory the descriptor names.
        unsafe {
            libc::chmod(p.as_ptr(), mode & 0o7777);
            libc::chown(p.as_ptr(), u, g);
        }
        Ok(())
    }

    fn symlink(&self, path: &Path, target: &Path, uid: u32, gid: u32) -> Result<()> {
        let (dir, name) = self.parent_and_name(path)?;
        let t = cstr(target)?;
        // SAFETY: *at calls on a directory descriptor we own with valid C strings.
        unsafe {
            libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), 0);
            if libc::symlinkat(t.as_ptr(), dir.as_raw_fd(), name.as_ptr()) != 0 {
                return Err(Error::io(
                    format!("create {}", path.display()),
                    std::io::Error::last_os_error(),
                ));
            }
            let (u, g) = self.owner(uid, gid);
            libc::fchownat(
                dir.as_raw_fd(),
                name.as_ptr(),
                u,
                g,
                libc::AT_SYMLINK_NOFOLLOW,
            );
        }
        Ok(())
    }

    fn file(
        &self,
        path: &Path,
        content: &mut dyn Read,
        mode: u32,
        uid: u32,
        gid: u32,
    ) -> Result<()> {
        let (dir, name) = self.parent_and_name(path)?;
        // O_NOFOLLOW: a symlink planted at the destination must not redirect the write.
        let fd = openat(
            dir.as_raw_fd(),
            &name,
            libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_NOFOLLOW,
        )
        .map_err(io(format!("create {}", path.display())))?;
        let mut f = std::fs::File::from(fd);
        std::io::copy(content, &mut f).map_err(io(format!("write {}", path.display())))?;
        let (u, g) = self.owner(uid, gid);
        // SAFETY: fchmod/fchown on the descriptor we just opened.
        unsafe {
            libc::fchmod(f.as_raw_fd(), mode & 0o7777);
            libc::fchown(f.as_raw_fd(), u, g);
        }
        Ok(())
    }
}

fn copy_in_tree(w: &Writer, src: &Path, dst: &Path, meta: &std::fs::Metadata) -> Result<()> {
    let ft = meta.file_type();
    if ft.is_dir() {
        w.dir(dst, meta.mode(), meta.uid(), meta.gid())?;
        for e in std::fs::read_dir(src).map_err(io(format!("read {}", src.display())))? {
            let e = e.map_err(io("read a directory"))?;
            let m = std::fs::symlink_metadata(e.path()).map_err(io("stat"))?;
            copy_in_tree(w, &e.path(), &dst.join(e.file_name()), &m)?;
        }
    } else if ft.is_symlink() {
        let t = std::fs::read_link(src).map_err(io("readlink"))?;
        w.symlink(dst, &t, meta.uid(), meta.gid())?;
    } else if ft.is_file() {
        let mut f = std::fs::File::open(src).map_err(io(format!("open {}", src.display())))?;
        w.file(dst, &mut f, meta.mode(), meta.uid(), meta.gid())?;
    }
    Ok(())
}
