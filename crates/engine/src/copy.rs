//! `hako cp`: copying files into and out of a container.
//!
//! Paths inside the container are hostile (CVE-2018-15664, CVE-2019-14271): every lookup goes
//! through `openat2(RESOLVE_IN_ROOT)` on a descriptor of the container's root, files are opened
//! with `O_NOFOLLOW` relative to their parent's descriptor, and a running container is frozen
//! for the duration so nothing can swap a path between lookup and use, as Docker does.

use crate::{Engine, Error, Result, State};
use hako_runtime::fsutil::{self, Kind};
use std::ffi::CString;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
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
    thaw: Option<hako_cgroups::Cgroup>,
}

impl Drop for RootAccess {
    fn drop(&mut self) {
        if let Some(cg) = &self.thaw {
            let _ = cg.thaw();
        }
    }
}

impl Engine {
    fn root_access(&self, key: &str) -> Result<RootAccess> {
        let c = self.find(key)?;
        let (pid, start, parent): (Option<i32>, Option<i64>, Option<String>) =
            self.store.conn().query_row(
                "SELECT pid, pid_start, cgroup_parent FROM containers WHERE id = ?1",
                [&c.id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )?;
        if c.state == State::Running {
            if let Some(p) = pid.filter(|_| crate::alive(pid, start)) {
                let cg = hako_cgroups::CgroupSystem::detect()?
                    .open(parent.as_deref(), &format!("hako-{}", c.id));
                cg.freeze()?;
                let access = RootAccess {
                    root: std::fs::File::open(format!("/proc/{p}/root"))
                        .map_err(io("open the container's root"))?
                        .into(),
                    thaw: Some(cg),
                };
                return Ok(access);
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
        let lower: Vec<String> = image
            .layers
            .iter()
            .rev()
            .map(|l| l.display().to_string())
            .collect();
        let data = format!(
            "lowerdir={},upperdir={},workdir={}",
            lower.join(":"),
            dir.join("upper").display(),
            dir.join("work").display()
        );
        std::fs::create_dir_all(&rootfs).map_err(io("create the rootfs mount point"))?;
        nix::mount::mount(
            Some("overlay"),
            &rootfs,
            Some("overlay"),
            nix::mount::MsFlags::empty(),
            Some(data.as_str()),
        )
        .map_err(|e| Error::io("mount the container's filesystem", e.into()))?;
        Ok(RootAccess {
            root: std::fs::File::open(&rootfs)
                .map_err(io("open the container's root"))?
                .into(),
            thaw: None,
        })
    }

    /// `hako cp CONTAINER:SRC DEST` (DEST `-` writes a tar stream).
    pub fn copy_from(&self, key: &str, src: &str, sink: HostSink<'_>) -> Result<()> {
        let access = self.root_access(key)?;
        let root = access.root.as_raw_fd();
        let src_path = Path::new(src);
        let contents_only = src.ends_with("/.");
        let fd = fsutil::open_in_root(root, src_path, libc::O_PATH).map_err(|e| {
            Error::Invalid(format!(
                "Could not find the file {src} in container {key}: {}",
                plain(&e)
            ))
        })?;
        let meta = std::fs::metadata(fsutil_path(&fd)).map_err(io(format!("stat {src}")))?;
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
                b.follow_symlinks(false);
                let base = if contents_only {
                    PathBuf::from(".")
                } else {
                    name
                };
                if meta.is_dir() {
                    b.append_dir_all(&base, fsutil_path(&fd))
                        .map_err(io("write the archive"))?;
                } else {
                    b.append_path_with_name(fsutil_path(&fd), &base)
                        .map_err(io("write the archive"))?;
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
                } else {
                    copy_file_out(&fsutil_path(&fd), &target, &meta)?;
                }
            }
        }
        drop(access);
        Ok(())
    }

    /// `hako cp SRC CONTAINER:DEST` (SRC `-` reads a tar stream, extracted into DEST).
    pub fn copy_to(&self, key: &str, dst: &str, source: HostEnd<'_>, archive: bool) -> Result<()> {
        let access = self.root_access(key)?;
        let root = access.root.as_raw_fd();
        let dst_path = Path::new(dst);
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
                let meta = std::fs::symlink_metadata(src)
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
        drop(access);
        Ok(())
    }
}

fn plain(e: &std::io::Error) -> String {
    let s = e.to_string();
    s.split(" (os error").next().unwrap_or(&s).to_lowercase()
}

fn fsutil_path(fd: &OwnedFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

fn copy_file_out(src: &Path, dst: &Path, meta: &std::fs::Metadata) -> Result<()> {
    std::fs::copy(src, dst).map_err(io(format!("copy to {}", dst.display())))?;
    std::fs::set_permissions(dst, std::fs::Permissions::from_mode(meta.mode() & 0o7777))
        .map_err(io(format!("chmod {}", dst.display())))
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
            let f = openat(dir.as_raw_fd(), &cname, libc::O_RDONLY | libc::O_NOFOLLOW)
                .map_err(io("open a file"))?;
            let mut src = std::fs::File::from(f);
            let mut out =
                std::fs::File::create(&to).map_err(io(format!("create {}", to.display())))?;
            std::io::copy(&mut src, &mut out).map_err(io(format!("copy to {}", to.display())))?;
            std::fs::set_permissions(&to, std::fs::Permissions::from_mode(m.mode() & 0o7777))
                .map_err(io("chmod"))?;
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
