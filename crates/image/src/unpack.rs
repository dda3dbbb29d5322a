//! Unpacking a layer's tar into its directory, every operation relative to a directory
//! descriptor inside it.
//!
//! Entries are hostile: a name with `..`, or one reaching through a symlink the archive made
//! earlier ("link -> /" then "link/etc/x"), must never write outside the layer. Each entry's
//! parent directory is opened with `openat2(RESOLVE_BENEATH)`, which follows symlinks only while
//! they stay inside the layer and refuses absolute ones, and the entry is then made with the
//! `*at` calls on that descriptor, never through its path again.
//!
//! The cost per entry is linear in its path: the parent is one lookup in the kernel, and a
//! directory used by the previous entry (its parent, or the directory it made) is reused as it
//! is: in a tar written depth first, nearly every entry. Only the components of a parent that
//! does not exist yet are walked one by one, each created once. Resolving each path component
//! from userspace (`canonicalize`) made one 3000-level path cost minutes.
//!
//! A path is at most [`MAX_PATH`] bytes and [`MAX_DEPTH`] components: no program could open a
//! longer one in a single call, and removing a tree takes a descriptor per level.

use std::collections::BTreeMap;
use std::ffi::{CString, OsStr};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::AtFlags;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{FchmodatFlags, Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;
use nix::unistd::{FchownatFlags, UnlinkatFlags};

use crate::extract::{classify, invalid};
use crate::Error;

/// The longest entry path: Linux's `PATH_MAX`.
pub(crate) const MAX_PATH: usize = 4096;
/// The most components an entry path may have.
pub(crate) const MAX_DEPTH: usize = 512;

/// A host error while making entry `rel`: not the archive's fault (ENOSPC, EACCES...).
fn host(e: impl Into<io::Error>, rel: &Path) -> Error {
    let e: io::Error = e.into();
    Error::Io(io::Error::new(
        e.kind(),
        format!("failed to extract layer: {}: {e}", rel.display()),
    ))
}

/// The first bytes of a long path, for messages.
fn shown(p: &Path) -> String {
    let s = p.to_string_lossy();
    match s.char_indices().nth(80) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.into_owned(),
    }
}

/// The entry path relative to the layer root; `None` if it tries to leave it.
fn sanitize(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            Component::ParentDir => return None,
        }
    }
    Some(out)
}

fn check_size(rel: &Path) -> Result<(), Error> {
    let depth = rel.components().count();
    if rel.as_os_str().len() > MAX_PATH || depth > MAX_DEPTH {
        return Err(invalid(format!(
            "entry {} is too deep: {} bytes in {depth} components, more than {MAX_PATH} bytes or {MAX_DEPTH} components",
            shown(rel),
            rel.as_os_str().len()
        )));
    }
    Ok(())
}

/// The layer directory being filled, and the directory the last entry used.
struct Tree {
    root: OwnedFd,
    /// Relative path and descriptor of the directory most recently resolved or made.
    last: Option<(PathBuf, OwnedFd)>,
    as_root: bool,
}

fn open_dir_beneath(dir: BorrowedFd<'_>, rel: &Path) -> nix::Result<OwnedFd> {
    nix::fcntl::openat2(
        dir,
        rel,
        OpenHow::new()
            .flags(OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC)
            .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_MAGICLINKS),
    )
}

fn open_child_dir(dir: BorrowedFd<'_>, name: &OsStr) -> nix::Result<OwnedFd> {
    nix::fcntl::openat(
        dir,
        name,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
}

impl Tree {
    /// The directory `rel` (relative to the root), made with its missing parents as needed.
    fn dir(&mut self, rel: &Path) -> Result<BorrowedFd<'_>, Error> {
        let hit = matches!(&self.last, Some((p, _)) if p == rel);
        if !hit {
            let fd = self.resolve(rel)?;
            self.last = Some((rel.to_path_buf(), fd));
        }
        self.cached()
    }

    /// [`Tree::dir`] of a directory that must exist already: `None` if it does not.
    fn existing_dir(&mut self, rel: &Path) -> Result<Option<BorrowedFd<'_>>, Error> {
        let hit = matches!(&self.last, Some((p, _)) if p == rel);
        if !hit {
            let fd = if rel.as_os_str().is_empty() {
                self.root.try_clone().map_err(|e| host(e, rel))?
            } else {
                match open_dir_beneath(self.root.as_fd(), rel) {
                    Ok(fd) => fd,
                    Err(Errno::ENOENT | Errno::ENOTDIR) => return Ok(None),
                    Err(e) => return Err(self.lookup_error(e, rel)),
                }
            };
            self.last = Some((rel.to_path_buf(), fd));
        }
        self.cached().map(Some)
    }

    fn cached(&self) -> Result<BorrowedFd<'_>, Error> {
        match &self.last {
            Some((_, fd)) => Ok(fd.as_fd()),
            None => Ok(self.root.as_fd()),
        }
    }

    /// Opens (and makes) directory `rel` without touching the cache.
    fn resolve(&self, rel: &Path) -> Result<OwnedFd, Error> {
        if rel.as_os_str().is_empty() {
            return self.root.try_clone().map_err(|e| host(e, Path::new(".")));
        }
        match open_dir_beneath(self.root.as_fd(), rel) {
            Ok(fd) => return Ok(fd),
            Err(Errno::ENOENT) => {}
            Err(e) => return Err(self.lookup_error(e, rel)),
        }
        // Something is missing: walk down from the root, making what is not there.
        let mut cur = self.root.try_clone().map_err(|e| host(e, rel))?;
        let mut done = PathBuf::new();
        for c in rel.components() {
            let name = c.as_os_str();
            done.push(name);
            cur = match open_child_dir(cur.as_fd(), name) {
                Ok(fd) => fd,
                Err(Errno::ENOENT) => {
                    match nix::sys::stat::mkdirat(
                        cur.as_fd(),
                        name,
                        Mode::from_bits_truncate(0o755),
                    ) {
                        Ok(()) | Err(Errno::EEXIST) => {}
                        Err(e) => return Err(host(e, &done)),
                    }
                    open_child_dir(cur.as_fd(), name).map_err(|e| self.lookup_error(e, &done))?
                }
                // A symlink (or not a directory): resolved from the root, kept inside.
                Err(Errno::ELOOP | Errno::ENOTDIR) => open_dir_beneath(self.root.as_fd(), &done)
                    .map_err(|e| self.lookup_error(e, &done))?,
                Err(e) => return Err(self.lookup_error(e, &done)),
            };
        }
        Ok(cur)
    }

    fn lookup_error(&self, e: Errno, rel: &Path) -> Error {
        match e {
            Errno::EXDEV | Errno::ELOOP => {
                invalid(format!("{} resolves outside of the layer", shown(rel)))
            }
            Errno::ENOTDIR => invalid(format!(
                "{}: a path component is not a directory",
                shown(rel)
            )),
            Errno::ENAMETOOLONG => invalid(format!("{}: path too long", shown(rel))),
            e => host(e, rel),
        }
    }

    /// Removes whatever is at `name` in `dir` (`rel` names it), so an entry can take its place;
    /// a directory goes with its content. The cached directory goes too if it was there.
    fn clear(&mut self, parent: &Path, name: &OsStr, rel: &Path) -> Result<(), Error> {
        let is_dir = {
            let dir = self.dir(parent)?;
            match nix::sys::stat::fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
                Ok(st) => {
                    Some(SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR)
                }
                Err(Errno::ENOENT) => None,
                Err(e) => return Err(host(e, rel)),
            }
        };
        let Some(is_dir) = is_dir else {
            return Ok(());
        };
        let dir = self.dir(parent)?;
        if is_dir {
            // Through our own descriptor: the remaining path is inside the layer, and
            // `remove_dir_all` follows no symlink.
            let p = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd())).join(name);
            std::fs::remove_dir_all(&p).map_err(|e| host(e, rel))?;
        } else {
            nix::unistd::unlinkat(dir, name, UnlinkatFlags::NoRemoveDir)
                .map_err(|e| host(e, rel))?;
        }
        // A directory removed may be what the cached one is, through a symlink.
        if is_dir || matches!(&self.last, Some((p, _)) if p.starts_with(rel)) {
            self.last = None;
        }
        Ok(())
    }
}

/// Gives `name` in `dir` the entry's owner; only root can (rootless imports keep the caller's).
fn chown(
    as_root: bool,
    dir: BorrowedFd<'_>,
    name: &OsStr,
    ids: (u32, u32),
    rel: &Path,
) -> Result<(), Error> {
    if !as_root {
        return Ok(());
    }
    nix::unistd::fchownat(
        dir,
        name,
        Some(nix::unistd::Uid::from_raw(ids.0)),
        Some(nix::unistd::Gid::from_raw(ids.1)),
        FchownatFlags::AT_SYMLINK_NOFOLLOW,
    )
    .map_err(|e| chown_err(e, ids, rel))
}

/// A chown refused with EINVAL inside a user namespace: the id has no host id there (rootless
/// hako, whose ids beyond 0 are the user's subordinate range).
fn chown_err(e: nix::Error, ids: (u32, u32), rel: &Path) -> Error {
    if e != nix::Error::EINVAL || !hako_base::userns::in_user_namespace() {
        return host(e, rel);
    }
    let (uids, gids) = (hako_base::userns::uid_map(), hako_base::userns::gid_map());
    let (kind, id, map, file) = if hako_base::userns::mapped(&uids, ids.0) {
        ("gid", ids.1, gids, "/etc/subgid")
    } else {
        ("uid", ids.0, uids, "/etc/subuid")
    };
    Error::Io(io::Error::new(
        io::ErrorKind::InvalidInput,
        format!(
            "failed to extract layer: {} belongs to {kind} {id}, which is beyond the user namespace (ids {} exist): ask for a range of at least {id} subordinate ids in {file}",
            shown(rel),
            hako_base::userns::describe(&map)
        ),
    ))
}

fn set_mtime(dir: BorrowedFd<'_>, name: &OsStr, mtime: u64, rel: &Path) -> Result<(), Error> {
    let ts = TimeSpec::new(mtime as libc::time_t, 0);
    nix::sys::stat::utimensat(dir, name, &ts, &ts, UtimensatFlags::NoFollowSymlink)
        .map_err(|e| host(e, rel))
}

fn lsetxattr(dir: BorrowedFd<'_>, name: &OsStr, key: &[u8], value: &[u8]) -> io::Result<()> {
    // No lsetxattrat before Linux 6.13: through the parent's descriptor, which leaves only the
    // final name to a lookup that does not follow it.
    let mut path = format!("/proc/self/fd/{}/", dir.as_raw_fd()).into_bytes();
    path.extend_from_slice(name.as_bytes());
    let p = CString::new(path).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let k = CString::new(key).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: both strings are NUL-terminated and outlive the call; the value pointer/length
    // pair comes from a live slice.
    let rc = unsafe {
        libc::lsetxattr(
            p.as_ptr(),
            k.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Extended attribute name and value pairs.
type Xattrs = Vec<(Vec<u8>, Vec<u8>)>;

fn pax_xattrs<R: Read>(entry: &mut tar::Entry<'_, R>) -> Result<Xattrs, Error> {
    let mut out = Vec::new();
    if let Some(exts) = entry.pax_extensions().map_err(classify)? {
        for ext in exts {
            let ext = ext.map_err(classify)?;
            if let Some(name) = ext.key_bytes().strip_prefix(b"SCHILY.xattr.") {
                out.push((name.to_vec(), ext.value_bytes().to_vec()));
            }
        }
    }
    Ok(out)
}

/// The target of a hard link, as a path inside the layer.
fn link_target(target: &Path, rel: &Path) -> Result<PathBuf, Error> {
    let mut out = PathBuf::new();
    for c in target.components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::ParentDir if out.pop() => {}
            Component::ParentDir => {
                return Err(invalid(format!(
                    "hard link {} -> {} points outside of the layer",
                    rel.display(),
                    target.display()
                )))
            }
            _ => {}
        }
    }
    if out.as_os_str().is_empty() {
        return Err(invalid(format!(
            "hard link {} has no target",
            rel.display()
        )));
    }
    Ok(out)
}

/// A reader that counts what it gave.
struct Counted<'a> {
    inner: &'a mut dyn Read,
    bytes: u64,
}

impl Read for Counted<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }
}

/// Unpacks the tar stream into `diff_dir` (existing and empty).
pub(crate) fn unpack(reader: &mut dyn Read, diff_dir: &Path) -> Result<(), Error> {
    let root = nix::fcntl::open(
        diff_dir,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| crate::extract::io_ctx(e.into(), "open", diff_dir))?;
    let mut tree = Tree {
        root,
        last: None,
        as_root: nix::unistd::geteuid().is_root(),
    };
    let mut counted = Counted {
        inner: reader,
        bytes: 0,
    };
    let mut archive = tar::Archive::new(&mut counted);
    let mut buf = vec![0u8; 256 * 1024];
    // Adding children bumps a directory's mtime, so directories get theirs once everything
    // is in place.
    // The last entry for a path wins, as for its other attributes.
    let mut dir_times: BTreeMap<PathBuf, u64> = BTreeMap::new();
    for entry in archive.entries().map_err(classify)? {
        let mut entry = entry.map_err(classify)?;
        let kind = entry.header().entry_type();
        if kind.is_pax_global_extensions() || kind.is_pax_local_extensions() {
            continue;
        }
        let raw_path = entry.path().map_err(classify)?.into_owned();
        let rel = sanitize(&raw_path).ok_or_else(|| {
            invalid(format!(
                "entry {} points outside of the layer",
                raw_path.display()
            ))
        })?;
        check_size(&rel)?;
        if rel.as_os_str().is_empty() {
            // "./": the layer root itself, whose attributes overlayfs takes from the upper
            // directory anyway.
            continue;
        }
        let parent = rel.parent().unwrap_or(Path::new("")).to_path_buf();
        let name = rel.file_name().unwrap_or_default().to_os_string();
        if let Some(target) = name.as_bytes().strip_prefix(b".wh.") {
            whiteout(&mut tree, &parent, &rel, target)?;
            continue;
        }
        let xattrs = pax_xattrs(&mut entry)?;
        let h = entry.header();
        let mtime = h.mtime().unwrap_or(0);
        let mode = h.mode().map_err(classify)? & 0o7777;
        let uid = h.uid().map_err(classify)? as u32;
        let gid = h.gid().map_err(classify)? as u32;
        use tar::EntryType as T;
        match kind {
            T::Directory => {
                let existing = {
                    let dir = tree.dir(&parent)?;
                    nix::sys::stat::fstatat(dir, name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW)
                        .ok()
                        .map(|st| {
                            SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR
                        })
                };
                if existing == Some(false) {
                    tree.clear(&parent, &name, &rel)?;
                }
                let as_root = tree.as_root;
                let dir = tree.dir(&parent)?;
                if existing != Some(true) {
                    nix::sys::stat::mkdirat(dir, name.as_os_str(), Mode::from_bits_truncate(0o700))
                        .map_err(|e| host(e, &rel))?;
                }
                chown(as_root, dir, &name, (uid, gid), &rel)?;
                nix::sys::stat::fchmodat(
                    dir,
                    name.as_os_str(),
                    Mode::from_bits_truncate(mode),
                    FchmodatFlags::FollowSymlink,
                )
                .map_err(|e| host(e, &rel))?;
                set_xattrs(dir, &name, &xattrs, &rel)?;
                dir_times.insert(rel.clone(), mtime);
                // Its content usually follows.
                let fd = open_child_dir(dir, &name).map_err(|e| host(e, &rel))?;
                tree.last = Some((rel, fd));
            }
            T::Regular | T::Continuous | T::GNUSparse => {
                tree.clear(&parent, &name, &rel)?;
                let as_root = tree.as_root;
                let dir = tree.dir(&parent)?;
                let fd = nix::fcntl::openat(
                    dir,
                    name.as_os_str(),
                    OFlag::O_WRONLY
                        | OFlag::O_CREAT
                        | OFlag::O_EXCL
                        | OFlag::O_NOFOLLOW
                        | OFlag::O_CLOEXEC,
                    Mode::from_bits_truncate(0o600),
                )
                .map_err(|e| host(e, &rel))?;
                let mut f = File::from(fd);
                loop {
                    let n = match entry.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(classify(e)),
                    };
                    f.write_all(&buf[..n]).map_err(|e| host(e, &rel))?;
                }
                if as_root {
                    nix::unistd::fchown(
                        &f,
                        Some(nix::unistd::Uid::from_raw(uid)),
                        Some(nix::unistd::Gid::from_raw(gid)),
                    )
                    .map_err(|e| chown_err(e, (uid, gid), &rel))?;
                }
                // After chown, which clears setuid bits.
                nix::sys::stat::fchmod(&f, Mode::from_bits_truncate(mode))
                    .map_err(|e| host(e, &rel))?;
                set_xattrs(dir, &name, &xattrs, &rel)?;
                let ts = TimeSpec::new(mtime as libc::time_t, 0);
                nix::sys::stat::futimens(&f, &ts, &ts).map_err(|e| host(e, &rel))?;
            }
            T::Symlink => {
                let target = entry
                    .link_name()
                    .map_err(classify)?
                    .ok_or_else(|| invalid(format!("symlink {} has no target", rel.display())))?
                    .into_owned();
                tree.clear(&parent, &name, &rel)?;
                let as_root = tree.as_root;
                let dir = tree.dir(&parent)?;
                nix::unistd::symlinkat(target.as_path(), dir, name.as_os_str())
                    .map_err(|e| host(e, &rel))?;
                chown(as_root, dir, &name, (uid, gid), &rel)?;
                set_xattrs(dir, &name, &xattrs, &rel)?;
                set_mtime(dir, &name, mtime, &rel)?;
            }
            T::Link => {
                let raw = entry
                    .link_name()
                    .map_err(classify)?
                    .ok_or_else(|| invalid(format!("hard link {} has no target", rel.display())))?
                    .into_owned();
                let target = link_target(&raw, &rel)?;
                check_size(&target)?;
                let tparent = target.parent().unwrap_or(Path::new(""));
                let tname = target.file_name().unwrap_or_default();
                let from = tree.resolve(tparent)?;
                if target == rel {
                    continue;
                }
                tree.clear(&parent, &name, &rel)?;
                let dir = tree.dir(&parent)?;
                nix::unistd::linkat(&from, tname, dir, name.as_os_str(), AtFlags::empty())
                    .map_err(|e| match e {
                        Errno::ENOENT => invalid(format!(
                            "hard link {} -> {}: no such file in the layer",
                            rel.display(),
                            raw.display()
                        )),
                        e => host(e, &rel),
                    })?;
                set_xattrs(dir, &name, &xattrs, &rel)?;
            }
            T::Char | T::Block | T::Fifo => {
                let (sflag, dev) = if kind == T::Fifo {
                    (SFlag::S_IFIFO, 0)
                } else {
                    let major = h.device_major().map_err(classify)?.unwrap_or(0);
                    let minor = h.device_minor().map_err(classify)?.unwrap_or(0);
                    let flag = if kind == T::Char {
                        SFlag::S_IFCHR
                    } else {
                        SFlag::S_IFBLK
                    };
                    (flag, libc::makedev(major, minor))
                };
                tree.clear(&parent, &name, &rel)?;
                let as_root = tree.as_root;
                let dir = tree.dir(&parent)?;
                match nix::sys::stat::mknodat(
                    dir,
                    name.as_os_str(),
                    sflag,
                    Mode::from_bits_truncate(0o600),
                    dev,
                ) {
                    Ok(()) => {}
                    // A user namespace may not make device nodes (rootless: images such as
                    // Debian's carry /dev/console). Left out, as Docker and Podman do
                    // rootless: a container's /dev is the runtime's own tmpfs anyway.
                    Err(Errno::EPERM)
                        if kind != T::Fifo && hako_base::userns::in_user_namespace() =>
                    {
                        continue;
                    }
                    Err(e) => return Err(host(e, &rel)),
                }
                chown(as_root, dir, &name, (uid, gid), &rel)?;
                // Just made by us, so no symlink: mknod honours the umask and chown clears
                // setuid bits, so the exact mode comes last.
                nix::sys::stat::fchmodat(
                    dir,
                    name.as_os_str(),
                    Mode::from_bits_truncate(mode),
                    FchmodatFlags::FollowSymlink,
                )
                .map_err(|e| host(e, &rel))?;
                set_xattrs(dir, &name, &xattrs, &rel)?;
                set_mtime(dir, &name, mtime, &rel)?;
            }
            // Other kinds (GNU volume headers and the like) carry nothing for a filesystem.
            _ => {}
        }
    }
    // A tar with no entries (its end-of-archive blocks only) is a valid, empty layer: Docker's
    // commit of an unchanged container and BuildKit make them. No bytes at all is no archive.
    if counted.bytes == 0 {
        return Err(invalid("the archive is empty (0 bytes)"));
    }
    // In path order, so that siblings reuse their parent's descriptor. A directory a later
    // entry replaced is not there any more.
    for (rel, mtime) in dir_times {
        let parent = rel.parent().unwrap_or(Path::new(""));
        let name = rel.file_name().unwrap_or_default();
        let Some(dir) = tree.existing_dir(parent)? else {
            continue;
        };
        let st = match nix::sys::stat::fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::ENOENT) => continue,
            Err(e) => return Err(host(e, &rel)),
        };
        if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR {
            set_mtime(dir, name, mtime, &rel)?;
        }
    }
    Ok(())
}

fn set_xattrs(dir: BorrowedFd<'_>, name: &OsStr, xattrs: &Xattrs, rel: &Path) -> Result<(), Error> {
    for (k, v) in xattrs {
        if let Err(e) = lsetxattr(dir, name, k, v) {
            // Filesystems without xattr support (or security.* names the kernel refuses)
            // should not make the whole image unusable.
            let ignorable = matches!(
                e.raw_os_error(),
                Some(libc::ENOTSUP) | Some(libc::EPERM) | Some(libc::EINVAL)
            );
            if !ignorable {
                return Err(host(e, rel));
            }
        }
    }
    Ok(())
}

/// OCI whiteouts become what overlayfs understands natively.
fn whiteout(tree: &mut Tree, parent: &Path, rel: &Path, target: &[u8]) -> Result<(), Error> {
    if target == b".wh..opq" {
        let pfd = tree.resolve(parent)?;
        // The directory itself: named through its own descriptor.
        let p = CString::new(format!("/proc/self/fd/{}", pfd.as_raw_fd()))
            .map_err(|_| invalid("bad path"))?;
        // SAFETY: NUL-terminated strings that outlive the call; value from a live slice.
        let rc = unsafe {
            libc::setxattr(
                p.as_ptr(),
                hako_base::userns::overlay_opaque_xattr().as_ptr(),
                b"y".as_ptr().cast(),
                1,
                0,
            )
        };
        if rc != 0 {
            return Err(host(io::Error::last_os_error(), parent));
        }
        return Ok(());
    }
    if target.is_empty() || target == b"." || target == b".." || target.contains(&b'/') {
        return Err(invalid(format!("invalid whiteout {}", rel.display())));
    }
    let name = OsStr::from_bytes(target);
    let shown_rel = parent.join(name);
    tree.clear(parent, name, &shown_rel)?;
    let as_root = tree.as_root;
    let dir = tree.dir(parent)?;
    nix::sys::stat::mknodat(
        dir,
        name,
        SFlag::S_IFCHR,
        Mode::empty(),
        libc::makedev(0, 0),
    )
    .map_err(|e| host(e, &shown_rel))?;
    chown(as_root, dir, name, (0, 0), &shown_rel)
}
