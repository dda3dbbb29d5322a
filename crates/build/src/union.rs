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
    let name = c"trusted.overlay.opaque";
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
