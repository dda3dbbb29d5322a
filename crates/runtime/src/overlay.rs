//! overlayfs mount options for a stack of layers, however many the store allows.
//!
//! The kernel reads the options of `mount(2)` from one page (4096 bytes). A layer of a state root
//! under `/var/lib/hako` is a 90-byte path (`/var/lib/hako/layers/<64 hex>/diff`), so about 40
//! layers fit, fewer under a longer root, while Docker runs images of up to 125 layers. Past a
//! page, each layer is opened (`O_PATH`) and named by its descriptor, `/proc/self/fd/N`: about 18
//! bytes a layer, room for 200. overlayfs resolves each name like any path, and the magic link
//! lands on the directory the descriptor holds.
//!
//! Measured alternatives: the new mount API takes layers one by one (`fsconfig` with
//! `lowerdir+`, Linux 6.8+) and needs a fallback on older kernels anyway; short names for layer
//! directories (Docker's `l/` symlinks) need a second name per layer in the store. A stack that
//! fits in a page (nearly every image) is mounted exactly as before, with one `mount(2)` and no
//! `open` per layer: both other ways cost a system call per layer on the path of every `run`.

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use nix::mount::MsFlags;
use nix::sys::stat::Mode;

use crate::Error;

/// The kernel copies at most one page of mount options.
const PAGE: usize = 4096;

/// The `data` of an overlay's `mount(2)`, and the layer descriptors it may name, which must
/// stay open until the mount is made.
#[derive(Debug)]
pub(crate) struct OverlayOptions {
    pub data: CString,
    /// Layers named by descriptor: each one's path, and the descriptor `data` names it by.
    layers: Vec<(CString, OwnedFd)>,
}

impl OverlayOptions {
    /// Points each descriptor `data` names at its layer as the caller's mount namespace sees
    /// it. The runtime's child runs in a mount namespace of its own, and overlayfs refuses a
    /// layer whose mount belongs to another namespace ("failed to clone lowerpath"), which is
    /// what the descriptors it inherited hold. Only system calls, as the child needs.
    pub(crate) fn reopen_layers(&self) -> nix::Result<()> {
        for (path, fd) in &self.layers {
            let new = nix::fcntl::open(
                path.as_c_str(),
                OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
                Mode::empty(),
            )?;
            // SAFETY: dup3 only replaces, atomically, a descriptor this process holds (its
            // copy of `fd`), which keeps its number; `new` is closed when dropped.
            let r = unsafe { libc::dup3(new.as_raw_fd(), fd.as_raw_fd(), libc::O_CLOEXEC) };
            nix::errno::Errno::result(r)?;
        }
        Ok(())
    }
}

/// Options for `lower` (topmost first), with `upper` and `work` when the overlay is writable.
pub(crate) fn options(
    lower: &[PathBuf],
    upper: Option<(&Path, &Path)>,
    volatile: bool,
) -> Result<OverlayOptions, Error> {
    if lower.is_empty() {
        return Err(Error::InvalidSpec(
            "an overlay needs at least one lower layer".into(),
        ));
    }
    let by_path: Vec<Vec<u8>> = lower
        .iter()
        .map(|l| escape(l.as_os_str().as_bytes()))
        .collect();
    let data = render(&by_path, upper, volatile);
    if data.len() < PAGE {
        return finish(data, Vec::new());
    }
    let mut layers = Vec::with_capacity(lower.len());
    for l in lower {
        let fd = nix::fcntl::open(
            l.as_path(),
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Error::sys(format!("open layer {}", l.display()), e))?;
        layers.push((
            crate::cstring(l.as_os_str().as_bytes(), "a layer path")?,
            fd,
        ));
    }
    let by_fd: Vec<Vec<u8>> = layers
        .iter()
        .map(|(_, fd)| format!("/proc/self/fd/{}", fd.as_raw_fd()).into_bytes())
        .collect();
    let data = render(&by_fd, upper, volatile);
    if data.len() >= PAGE {
        return Err(Error::InvalidSpec(format!(
            "{} layers are too many for one overlay: their mount options take {} bytes, more than the kernel's {PAGE}",
            lower.len(),
            data.len()
        )));
    }
    finish(data, layers)
}

fn render(lower: &[Vec<u8>], upper: Option<(&Path, &Path)>, volatile: bool) -> Vec<u8> {
    let mut data = Vec::from(&b"lowerdir="[..]);
    data.extend_from_slice(&lower.join(&b':'));
    if let Some((upper, work)) = upper {
        data.extend_from_slice(b",upperdir=");
        data.extend_from_slice(&escape(upper.as_os_str().as_bytes()));
        data.extend_from_slice(b",workdir=");
        data.extend_from_slice(&escape(work.as_os_str().as_bytes()));
    }
    if volatile {
        data.extend_from_slice(b",volatile");
    }
    // Inside a user namespace (rootless hako) overlayfs may not use trusted.* xattrs; it
    // keeps its opaque and redirect marks in user.overlay.* instead (Linux 5.11+).
    if hako_base::userns::overlay_userxattr() {
        data.extend_from_slice(b",userxattr");
    }
    data
}

fn finish(data: Vec<u8>, layers: Vec<(CString, OwnedFd)>) -> Result<OverlayOptions, Error> {
    Ok(OverlayOptions {
        data: crate::cstring(data, "an overlay path")?,
        layers,
    })
}

/// overlayfs splits options on `,` and lower dirs on `:`; both must be escaped in paths.
fn escape(p: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(p.len());
    for &b in p {
        if b == b',' || b == b':' || b == b'\\' {
            out.push(b'\\');
        }
        out.push(b);
    }
    out
}

/// Mounts an overlay of `lower` (topmost first) on `target` in the caller's mount namespace,
/// writable when `upper` gives the upper and work directories, with as many layers as a
/// container's root may have. For the engine's own views of a container's filesystem (`cp`,
/// `export`); a container's root is mounted by the runtime itself. The layers are opened here,
/// so in the mount namespace the overlay is mounted in.
pub fn mount_overlay(
    lower: &[PathBuf],
    upper: Option<(&Path, &Path)>,
    target: &Path,
    flags: MsFlags,
) -> std::io::Result<()> {
    use std::io::{Error as IoError, ErrorKind};
    let o = options(lower, upper, false).map_err(|e| match e {
        Error::Sys { what, error } => IoError::new(
            error.kind(),
            format!(
                "{what}: {}",
                nix::errno::Errno::from_raw(error.raw_os_error().unwrap_or(0)).desc()
            ),
        ),
        Error::InvalidSpec(m) => IoError::new(ErrorKind::InvalidInput, m),
        other => IoError::other(other.to_string()),
    })?;
    nix::mount::mount(
        Some("overlay"),
        target,
        Some("overlay"),
        flags,
        Some(o.data.as_c_str()),
    )
    .map_err(IoError::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layers(root: &Path, n: usize) -> Vec<PathBuf> {
        (0..n)
            .map(|i| {
                let l = root.join(format!("layers/{i:064}/diff"));
                std::fs::create_dir_all(&l).unwrap();
                l
            })
            .collect()
    }

    #[test]
    fn options_are_escaped() {
        let lower: Vec<PathBuf> = vec!["/l/a:b".into(), "/l/c".into()];
        let o = options(&lower, Some((Path::new("/u,x"), Path::new("/w"))), false).unwrap();
        assert_eq!(
            o.data.to_str().unwrap(),
            "lowerdir=/l/a\\:b:/l/c,upperdir=/u\\,x,workdir=/w"
        );
        assert!(o.layers.is_empty(), "paths that fit are not opened");
        let v = options(&lower, Some((Path::new("/u,x"), Path::new("/w"))), true).unwrap();
        assert!(v.data.to_str().unwrap().ends_with(",workdir=/w,volatile"));
        let ro = options(&lower, None, false).unwrap();
        assert_eq!(ro.data.to_str().unwrap(), "lowerdir=/l/a\\:b:/l/c");
        assert!(matches!(
            options(&[], None, false),
            Err(Error::InvalidSpec(_))
        ));
    }

    #[test]
    fn a_stack_longer_than_a_page_is_named_by_descriptors() {
        let dir = tempfile::tempdir().unwrap();
        let lower = layers(dir.path(), 125);
        let o = options(&lower, Some((Path::new("/u"), Path::new("/w"))), false).unwrap();
        let data = o.data.to_str().unwrap();
        assert!(data.len() < PAGE, "{}", data.len());
        let names: Vec<&str> = data
            .strip_prefix("lowerdir=")
            .unwrap()
            .split(',')
            .next()
            .unwrap()
            .split(':')
            .collect();
        assert_eq!(names.len(), 125);
        for (name, layer) in names.iter().zip(&lower) {
            let fd: i32 = name
                .strip_prefix("/proc/self/fd/")
                .unwrap()
                .parse()
                .unwrap();
            assert!(o.layers.iter().any(|(_, l)| l.as_raw_fd() == fd));
            assert_eq!(&std::fs::read_link(name).unwrap(), layer);
        }
        assert!(data.ends_with(",upperdir=/u,workdir=/w"));
        // Far beyond what the store accepts, even descriptors do not fit.
        let many = layers(dir.path(), 300);
        assert!(matches!(
            options(&many, None, false),
            Err(Error::InvalidSpec(m)) if m.contains("300 layers are too many")
        ));
        // A layer that is missing is named in the error.
        let mut gone = lower.clone();
        gone[7] = dir.path().join("nope");
        let err = options(&gone, None, false).unwrap_err();
        assert!(err.to_string().contains("nope"), "{err}");
    }
}
