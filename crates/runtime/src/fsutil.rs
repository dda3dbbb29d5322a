//! Path resolution inside a container root that cannot be tricked into leaving it.
//!
//! Every path that comes from an image (mount destinations, the working directory, device
//! nodes) is hostile: a symlink `etc -> /` in an image must not make us mount over the host's
//! `/etc`. `openat2(RESOLVE_IN_ROOT)` makes the kernel treat the root fd as `/` for every `..` and
//! absolute symlink, so resolution is confined without a userspace symlink walk. This is one
//! system call, so it is written here rather than pulling in a path-resolution crate.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Component, Path, PathBuf};

#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
const RESOLVE_IN_ROOT: u64 = 0x10;

/// Opens `path` (absolute or relative, interpreted inside `root`) with `flags`, never escaping `root`.
pub fn open_in_root(root: RawFd, path: &Path, flags: i32) -> io::Result<OwnedFd> {
    let rel = relative(path);
    let c = CString::new(rel.as_os_str().as_bytes())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let how = OpenHow {
        flags: (flags | libc::O_CLOEXEC) as u64,
        mode: 0,
        resolve: RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
    };
    loop {
        // SAFETY: `c` is a valid NUL-terminated string and `how` a properly sized open_how
        // structure that outlive the call; the kernel only reads them.
        let r = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                root,
                c.as_ptr(),
                &how as *const OpenHow,
                std::mem::size_of::<OpenHow>(),
            )
        };
        if r >= 0 {
            // SAFETY: the kernel returned a fresh descriptor that nothing else owns.
            return Ok(unsafe { OwnedFd::from_raw_fd(r as RawFd) });
        }
        let err = io::Error::last_os_error();
        // openat2 returns EAGAIN when a concurrent rename could have raced the lookup.
        if err.raw_os_error() != Some(libc::EAGAIN) {
            return Err(err);
        }
    }
}

/// `path` with its leading `/` removed; `""` becomes `.` so it names the root itself.
pub fn relative(path: &Path) -> PathBuf {
    let rel: PathBuf = path
        .components()
        .filter(|c| !matches!(c, Component::RootDir | Component::CurDir))
        .collect();
    if rel.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        rel
    }
}

/// What to create at the end of a path when it is missing.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    /// A directory (mount points for directories, working directories).
    Dir,
    /// An empty regular file (mount points for bind-mounted files).
    File,
}

/// Ensures `path` exists inside `root`, creating missing directories (mode 0755) and, for
/// `Kind::File`, an empty final file. Returns an `O_PATH` descriptor of the result.
pub fn ensure_in_root(root: RawFd, path: &Path, kind: Kind) -> io::Result<OwnedFd> {
    ensure_depth(root, path, kind, 0)
}

/// Linux's own limit on symlinks followed in one lookup.
const MAX_SYMLINKS: usize = 40;

fn ensure_depth(root: RawFd, path: &Path, kind: Kind, depth: usize) -> io::Result<OwnedFd> {
    if depth > MAX_SYMLINKS {
        return Err(io::Error::from_raw_os_error(libc::ELOOP));
    }
    match open_in_root(root, path, libc::O_PATH) {
        Ok(fd) => return Ok(fd),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
        Err(e) => return Err(e),
    }
    let rel = relative(path);
    let mut prefix = PathBuf::new();
    let comps: Vec<_> = rel.components().collect();
    for (i, comp) in comps.iter().enumerate() {
        let Component::Normal(name) = comp else {
            // `..` is resolved by the kernel relative to the confined root.
            prefix.push(comp);
            continue;
        };
        let last = i + 1 == comps.len();
        let next = prefix.join(name);
        match open_in_root(root, &next, libc::O_PATH) {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                let parent = open_in_root(
                    root,
                    &prefix_or_dot(&prefix),
                    libc::O_PATH | libc::O_DIRECTORY,
                )?;
                let cname = CString::new(name.as_bytes())
                    .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
                // A dangling symlink (an image's `/dev -> /somewhere`): create what it points
                // to, resolved inside the root like every other lookup here.
                if let Some(target) = symlink_target(&parent, &cname)? {
                    let base = if target.is_absolute() {
                        PathBuf::from("/")
                    } else {
                        prefix.clone()
                    };
                    let mut redirected = base.join(target);
                    for rest in &comps[i + 1..] {
                        redirected.push(rest);
                    }
                    return ensure_depth(root, &redirected, kind, depth + 1);
                }
                let r = if last && kind == Kind::File {
                    // SAFETY: plain syscall on a descriptor we own with a valid C string.
                    let fd = unsafe {
                        libc::openat(
                            parent.as_raw_fd(),
                            cname.as_ptr(),
                            libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC | libc::O_NOFOLLOW,
                            0o644,
                        )
                    };
                    if fd >= 0 {
                        // SAFETY: fd was just returned by openat and is owned by nobody else.
                        drop(unsafe { OwnedFd::from_raw_fd(fd) });
                        0
                    } else {
                        -1
                    }
                } else {
                    // SAFETY: plain syscall on a descriptor we own with a valid C string.
                    unsafe { libc::mkdirat(parent.as_raw_fd(), cname.as_ptr(), 0o755) }
                };
                if r < 0 {
                    let err = io::Error::last_os_error();
                    if err.raw_os_error() != Some(libc::EEXIST) {
                        return Err(err);
                    }
                }
            }
            Err(e) => return Err(e),
        }
        prefix = next;
    }
    open_in_root(root, &rel, libc::O_PATH)
}

/// The target of `name` in `dir` if it is a symlink.
fn symlink_target(dir: &OwnedFd, name: &CString) -> io::Result<Option<PathBuf>> {
    // SAFETY: an all-zero stat is a valid output buffer.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid descriptor, C string and output buffer for the duration of the call.
    let r = unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            name.as_ptr(),
            &mut st,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if r != 0 {
        let e = io::Error::last_os_error();
        return if e.raw_os_error() == Some(libc::ENOENT) {
            Ok(None)
        } else {
            Err(e)
        };
    }
    if st.st_mode & libc::S_IFMT != libc::S_IFLNK {
        return Ok(None);
    }
    // procfs links (`/proc/self/fd/N`, `/proc/self/cwd`) are magic: their text names whatever
    // the process has open, possibly on the host (CVE-2024-21626). Never follow them.
    // SAFETY: an all-zero statfs is a valid output buffer.
    let mut sfs: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: valid descriptor and output buffer for the duration of the call.
    if unsafe { libc::fstatfs(dir.as_raw_fd(), &mut sfs) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if sfs.f_type == libc::PROC_SUPER_MAGIC {
        return Err(io::Error::from_raw_os_error(libc::ELOOP));
    }
    let mut buf = vec![0u8; libc::PATH_MAX as usize];
    // SAFETY: the buffer is writable for its full length.
    let n = unsafe {
        libc::readlinkat(
            dir.as_raw_fd(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    buf.truncate(n as usize);
    Ok(Some(PathBuf::from(std::ffi::OsString::from_vec(buf))))
}

fn prefix_or_dot(p: &Path) -> PathBuf {
    if p.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        p.to_path_buf()
    }
}

/// The `/proc/self/fd/N` path of a descriptor, which mount(2) follows to the exact inode the
/// descriptor names, so a path swapped after resolution cannot redirect the mount.
pub fn proc_fd_path(fd: RawFd) -> CString {
    CString::new(format!("/proc/self/fd/{fd}")).expect("no NUL in a formatted number")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::symlink;

    fn open_dir(p: &Path) -> OwnedFd {
        fs::File::open(p).unwrap().into()
    }

    #[test]
    fn relative_strips_root() {
        assert_eq!(
            relative(Path::new("/etc/hosts")),
            PathBuf::from("etc/hosts")
        );
        assert_eq!(relative(Path::new("/")), PathBuf::from("."));
        assert_eq!(relative(Path::new("./a")), PathBuf::from("a"));
    }

    #[test]
    fn symlink_to_host_root_stays_inside() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        fs::create_dir(&root).unwrap();
        symlink("/", root.join("escape")).unwrap();
        symlink("../../../../", root.join("up")).unwrap();
        let rfd = open_dir(&root);
        // Through the absolute symlink the file is created inside the root, not on the host.
        let name = format!("hako-test-{}", std::process::id());
        ensure_in_root(
            rfd.as_raw_fd(),
            &Path::new("/escape").join(&name),
            Kind::File,
        )
        .unwrap();
        assert!(root.join(&name).exists());
        assert!(!Path::new("/").join(&name).exists());
        ensure_in_root(rfd.as_raw_fd(), Path::new("/up/a/b"), Kind::Dir).unwrap();
        assert!(root.join("a/b").is_dir());
        // A dangling absolute symlink gets its target created inside the root.
        symlink("/elsewhere/dev", root.join("dev")).unwrap();
        ensure_in_root(rfd.as_raw_fd(), Path::new("/dev/pts"), Kind::Dir).unwrap();
        assert!(root.join("elsewhere/dev/pts").is_dir());
        // A symlink loop ends with ELOOP rather than recursing forever.
        symlink("/loop", root.join("loop")).unwrap();
        let err = ensure_in_root(rfd.as_raw_fd(), Path::new("/loop/x"), Kind::Dir).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ELOOP));
    }

    #[test]
    fn missing_parents_are_created() {
        let dir = tempfile::tempdir().unwrap();
        let rfd = open_dir(dir.path());
        ensure_in_root(rfd.as_raw_fd(), Path::new("/x/y/z"), Kind::File).unwrap();
        assert!(dir.path().join("x/y/z").is_file());
        // Existing paths are returned as they are.
        ensure_in_root(rfd.as_raw_fd(), Path::new("/x/y"), Kind::Dir).unwrap();
    }
}
