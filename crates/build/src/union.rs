//! Read access to an image's filesystem as the union of its unpacked layers, without mounting
//! anything: COPY needs to know what the destination is (a directory? a symlink such as
//! Debian's `/bin -> usr/bin`?) and `COPY --from` reads files out of another image.
//!
//! Paths are resolved component by component with symlinks confined to the image's root (an
//! absolute link target or `..` never leaves it), so an image cannot make the builder read or
//! write host files.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// The layers of an image, top layer first.
pub struct Union {
    layers: Vec<PathBuf>,
}

fn is_whiteout(m: &std::fs::Metadata) -> bool {
    m.file_type().is_char_device() && m.rdev() == 0
}

fn is_opaque(p: &Path) -> bool {
    let Ok(c) = std::ffi::CString::new(std::os::unix::ffi::OsStrExt::as_bytes(p.as_os_str()))
    else {
        return false;
    };
    let name = hako_base::userns::overlay_opaque_xattr();
    let mut buf = [0u8; 4];
    // SAFETY: lgetxattr writes at most buf.len() bytes into our buffer; both strings are
    // NUL-terminated.
    let r = unsafe {
        libc::lgetxattr(
            c.as_ptr(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    r == 1 && buf[0] == b'y'
}

impl Union {
    /// The union of `layers_bottom_first` (as [`hako_image::Image::layers`] lists them).
    pub fn new(layers_bottom_first: &[PathBuf]) -> Union {
        Union {
            layers: layers_bottom_first.iter().rev().cloned().collect(),
        }
    }

    /// The topmost entry at an already resolved path (no symlinks followed), or None.
    pub fn raw(&self, comps: &[String]) -> Option<PathBuf> {
        if comps.is_empty() {
            return self.layers.first().cloned();
        }
        for layer in &self.layers {
            let mut p = layer.clone();
            let mut hidden_below = false;
            for (i, c) in comps.iter().enumerate() {
                p.push(c);
                let Ok(m) = std::fs::symlink_metadata(&p) else {
                    break;
                };
                if is_whiteout(&m) {
                    return None;
                }
                if i + 1 == comps.len() {
                    return Some(p);
                }
                if !m.is_dir() {
                    // A file (or link) in an upper layer hides everything below that name.
                    return None;
                }
                if is_opaque(&p) {
                    hidden_below = true;
                }
            }
            if hidden_below {
                return None;
            }
        }
        None
    }

    /// Resolves `path` (absolute inside the image) following symlinks, the last one only when
    /// `follow_last`. Returns the resolved components; the path need not exist.
    pub fn resolve(&self, path: &str, follow_last: bool) -> Vec<String> {
        let mut todo: Vec<String> = path
            .split('/')
            .filter(|c| !c.is_empty())
            .rev()
            .map(String::from)
            .collect();
        let mut out: Vec<String> = Vec::new();
        let mut links = 0;
        while let Some(c) = todo.pop() {
            match c.as_str() {
                "." => continue,
                ".." => {
                    out.pop();
                    continue;
                }
                _ => {}
            }
            out.push(c);
            let last = todo.is_empty();
            if last && !follow_last {
                break;
            }
            let Some(p) = self.raw(&out) else { continue };
            let Ok(m) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            if m.file_type().is_symlink() && links < 40 {
                links += 1;
                let Ok(target) = std::fs::read_link(&p) else {
                    continue;
                };
                let t = target.to_string_lossy().into_owned();
                out.pop();
                if t.starts_with('/') {
                    out.clear();
                }
                for part in t.split('/').filter(|c| !c.is_empty()).rev() {
                    todo.push(part.to_string());
                }
            }
        }
        out
    }

    /// Metadata of the entry at resolved components.
    pub fn metadata(&self, comps: &[String]) -> Option<(PathBuf, std::fs::Metadata)> {
        let p = self.raw(comps)?;
        let m = std::fs::symlink_metadata(&p).ok()?;
        Some((p, m))
    }

    /// The directory at resolved `comps` in each layer that shows through, topmost first: what
    /// overlayfs needs as lower layers to present that directory of the union.
    pub fn lowers(&self, comps: &[String]) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for layer in &self.layers {
            let mut p = layer.clone();
            let mut present = true;
            let mut last = false;
            for c in comps {
                p.push(c);
                match std::fs::symlink_metadata(&p) {
                    Err(_) => {
                        present = false;
                        break;
                    }
                    Ok(m) if is_whiteout(&m) || !m.is_dir() => {
                        // Deleted or replaced here: nothing below shows.
                        present = false;
                        last = true;
                        break;
                    }
                    Ok(_) => last |= is_opaque(&p),
                }
            }
            if present {
                out.push(p);
            }
            if last {
                break;
            }
        }
        out
    }

    /// The names in a directory, merged over the layers, sorted.
    pub fn read_dir(&self, comps: &[String]) -> Vec<String> {
        let mut seen = std::collections::BTreeMap::<String, bool>::new();
        for layer in &self.layers {
            let mut p = layer.clone();
            for c in comps {
                p.push(c);
            }
            let Ok(m) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            if is_whiteout(&m) {
                break;
            }
            if !m.is_dir() {
                break;
            }
            if let Ok(rd) = std::fs::read_dir(&p) {
                for e in rd.flatten() {
                    let name = e.file_name().to_string_lossy().into_owned();
                    if seen.contains_key(&name) {
                        continue;
                    }
                    let wh = e.metadata().map(|m| is_whiteout(&m)).unwrap_or(false);
                    seen.insert(name, !wh);
                }
            }
            if is_opaque(&p) {
                break;
            }
        }
        seen.into_iter()
            .filter(|(_, live)| *live)
            .map(|(n, _)| n)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowers_stop_at_deletions_and_opaque_dirs() {
        let d = tempfile::tempdir().unwrap();
        let l: Vec<PathBuf> = (0..3).map(|i| d.path().join(format!("l{i}"))).collect();
        for p in ["l0/a/x", "l1/a/y", "l2/a/z", "l0/b/x", "l0/c/x"] {
            let p = d.path().join(p);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, "").unwrap();
        }
        std::fs::write(d.path().join("l1/b"), "").unwrap();
        nix::sys::stat::mknod(
            &d.path().join("l2/c"),
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::empty(),
            0,
        )
        .unwrap();
        let c = std::ffi::CString::new(d.path().join("l1/a").to_str().unwrap()).unwrap();
        // SAFETY: both strings are NUL-terminated and the value is one readable byte.
        let r = unsafe {
            libc::lsetxattr(
                c.as_ptr(),
                c"trusted.overlay.opaque".as_ptr(),
                b"y".as_ptr().cast(),
                1,
                0,
            )
        };
        assert_eq!(r, 0, "set the opaque xattr (needs root)");
        let u = Union::new(&l);
        let a = vec!["a".to_string()];
        assert_eq!(u.lowers(&a), vec![l[2].join("a"), l[1].join("a")]);
        assert_eq!(u.read_dir(&a), vec!["y", "z"]);
        assert!(u.lowers(&["b".to_string()]).is_empty(), "a file hides b");
        assert!(u.lowers(&["c".to_string()]).is_empty(), "c is deleted");
        assert_eq!(u.lowers(&[]).len(), 3);
    }
}
