//! The build context: the files of the context directory that `.dockerignore` keeps, the size
//! Docker would have sent (`Sending build context to …`), and source selection for COPY/ADD.

use crate::ignore::Ignore;
use crate::Error;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A walked context directory.
pub struct Context {
    /// The directory (None when the Dockerfile came on stdin without a context).
    pub root: Option<PathBuf>,
    /// Every kept entry, relative `/`-separated path → metadata (symlinks not followed).
    pub entries: BTreeMap<String, std::fs::Metadata>,
    /// What Docker's tar of the context would weigh.
    pub tar_size: u64,
    /// The topmost entries `.dockerignore` leaves out (nothing under them is kept), so a bind
    /// mount of the context can hide them.
    pub hidden: BTreeSet<String>,
}

impl Context {
    /// No context at all (`hako build - < Dockerfile`).
    pub fn empty() -> Context {
        Context {
            root: None,
            entries: BTreeMap::new(),
            tar_size: 1024,
            hidden: BTreeSet::new(),
        }
    }

    /// Walks `root`, dropping what `ignore` excludes.
    pub fn open(root: &Path, ignore: &Ignore) -> Result<Context, Error> {
        let mut entries = BTreeMap::new();
        let mut hidden = BTreeSet::new();
        // Go's tar writer ends the archive with two zero blocks.
        let mut size = 1024u64;
        walk(root, "", ignore, &mut entries, &mut hidden, &mut size)?;
        Ok(Context {
            root: Some(root.to_path_buf()),
            entries,
            tar_size: size,
            hidden,
        })
    }

    /// Unpacks `archive` into `dest` when it is a tar (plain, gzip or zstd), for a context
    /// sent on stdin. Returns false, leaving `dest` alone, when it is not an archive (then it
    /// is a Dockerfile). The tar crate refuses entries that leave `dest`.
    pub fn unpack(archive: &Path, dest: &Path) -> Result<bool, Error> {
        let Some(reader) = crate::layer::open_archive(archive)? else {
            return Ok(false);
        };
        let mut a = tar::Archive::new(reader);
        a.set_preserve_permissions(true);
        a.set_overwrite(true);
        a.unpack(dest)
            .map_err(Error::io("unpack the build context from stdin"))?;
        Ok(true)
    }

    /// Docker's `units.HumanSize` ("%.4g" with decimal units), e.g. `2.048kB`.
    pub fn human_size(&self) -> String {
        human_size(self.tar_size)
    }

    /// The context entries a COPY/ADD source names: an exact path or a wildcard pattern.
    /// Errors name what is missing or outside the context.
    pub fn select(&self, src: &str) -> Result<Vec<String>, String> {
        let root = self
            .root
            .as_ref()
            .ok_or_else(|| format!("no build context: cannot copy {src}"))?;
        let clean = clean_rel(src)
            .ok_or_else(|| format!("forbidden path outside the build context: {src} ()"))?;
        if clean.is_empty() {
            return Ok(vec![String::new()]);
        }
        if clean.contains(['*', '?', '[']) {
            let re = crate::pattern::compile(&clean, crate::pattern::Dialect::FilepathMatch)?;
            let hits: Vec<String> = self
                .entries
                .keys()
                .filter(|k| re.is_match(k))
                .cloned()
                .collect();
            if hits.is_empty() {
                return Err(format!("no source files were specified (pattern {src})"));
            }
            return Ok(hits);
        }
        if self.entries.contains_key(&clean) {
            return Ok(vec![clean]);
        }
        if root.join(&clean).symlink_metadata().is_ok() {
            return Err(format!(
                "file not found in build context or excluded by .dockerignore: stat {clean}: file does not exist"
            ));
        }
        Err(format!(
            "file not found in build context or excluded by .dockerignore: stat {clean}: file does not exist"
        ))
    }

    /// Whether `rel` is in the context: kept, or a directory holding kept entries (an ignored
    /// directory with `!` exceptions inside).
    pub fn has(&self, rel: &str) -> bool {
        rel.is_empty() || self.under(rel).next().is_some()
    }

    /// The hidden entries strictly under `rel`, relative to it.
    pub fn hidden_under<'a>(&'a self, rel: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.hidden.iter().filter_map(move |h| {
            if rel.is_empty() {
                Some(h.as_str())
            } else {
                h.strip_prefix(rel).and_then(|r| r.strip_prefix('/'))
            }
        })
    }

    /// The kept entries at and under `rel`, in order.
    pub fn under<'a>(
        &'a self,
        rel: &'a str,
    ) -> impl Iterator<Item = (&'a String, &'a std::fs::Metadata)> {
        self.entries
            .range(rel.to_string()..)
            .take_while(move |(k, _)| {
                rel.is_empty()
                    || k.as_str() == rel
                    || (k.starts_with(rel) && k.as_bytes().get(rel.len()) == Some(&b'/'))
            })
    }
}

/// Normalises a source path relative to the context; None when it leaves the context.
pub fn clean_rel(src: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for seg in src.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            s => parts.push(s),
        }
    }
    Some(parts.join("/"))
}

fn walk(
    root: &Path,
    rel: &str,
    ignore: &Ignore,
    out: &mut BTreeMap<String, std::fs::Metadata>,
    hidden: &mut BTreeSet<String>,
    size: &mut u64,
) -> Result<(), Error> {
    let dir = if rel.is_empty() {
        root.to_path_buf()
    } else {
        root.join(rel)
    };
    let rd = std::fs::read_dir(&dir).map_err(Error::io(format!(
        "read the build context {}",
        dir.display()
    )))?;
    for e in rd {
        let e = e.map_err(Error::io(format!("read {}", dir.display())))?;
        let name = e.file_name().to_string_lossy().into_owned();
        let r = if rel.is_empty() {
            name
        } else {
            format!("{rel}/{name}")
        };
        let m = std::fs::symlink_metadata(e.path())
            .map_err(Error::io(format!("stat {}", e.path().display())))?;
        let excluded = ignore.excluded(&r);
        if m.is_dir() {
            if excluded && !ignore.has_exceptions() {
                hidden.insert(r);
                continue;
            }
            if !excluded {
                *size += 512;
                out.insert(r.clone(), m);
            }
            let kept_before = out.len();
            walk(root, &r, ignore, out, hidden, size)?;
            if excluded && out.len() == kept_before {
                // Nothing kept inside: the directory is hidden as a whole.
                let inside = format!("{r}/");
                let within: Vec<String> = hidden
                    .range(inside.clone()..)
                    .take_while(|h| h.starts_with(&inside))
                    .cloned()
                    .collect();
                for h in within {
                    hidden.remove(&h);
                }
                hidden.insert(r);
            }
        } else if !excluded {
            *size += 512;
            if m.is_file() {
                *size += m.len().div_ceil(512) * 512;
            }
            out.insert(r, m);
        } else {
            hidden.insert(r);
        }
    }
    Ok(())
}

/// Docker's `units.HumanSize`: decimal units, four significant digits (`2.048kB`).
pub fn human_size(n: u64) -> String {
    hako_base::size::human_size(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_like_docker() {
        assert_eq!(human_size(2048), "2.048kB");
        assert_eq!(human_size(39_560_000), "39.56MB");
        assert_eq!(human_size(512), "512B");
        assert_eq!(human_size(1000), "1kB");
        assert_eq!(human_size(10_487_296), "10.49MB");
    }

    #[test]
    fn select_and_ignore() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("a.txt"), "a").unwrap();
        std::fs::write(d.path().join("b.txt"), "b").unwrap();
        std::fs::write(d.path().join("secret"), "s").unwrap();
        std::fs::create_dir(d.path().join("dir")).unwrap();
        std::fs::write(d.path().join("dir/x"), "x").unwrap();
        let c = Context::open(d.path(), &Ignore::parse("secret\n").unwrap()).unwrap();
        assert_eq!(c.select("*.txt").unwrap(), vec!["a.txt", "b.txt"]);
        assert_eq!(c.select("./dir/../a.txt").unwrap(), vec!["a.txt"]);
        assert!(c.select("secret").unwrap_err().contains("excluded"));
        assert!(c.select("../etc/passwd").unwrap_err().contains("outside"));
        assert!(c.select("nope").is_err());
        let under: Vec<&String> = c.under("dir").map(|(k, _)| k).collect();
        assert_eq!(under, vec!["dir", "dir/x"]);
        assert_eq!(c.under("").count(), 4);
        // Four headers, three files of one data block each, and the trailer.
        assert_eq!(c.tar_size, 1024 + 4 * 512 + 3 * 512);
        assert_eq!(c.hidden.iter().collect::<Vec<_>>(), vec!["secret"]);

        // Hidden entries are the topmost ones left out; an ignored directory with a kept
        // exception inside is in the context, its other entries are hidden one by one.
        std::fs::create_dir_all(d.path().join("logs/old")).unwrap();
        std::fs::write(d.path().join("logs/old/a"), "a").unwrap();
        std::fs::write(d.path().join("logs/keep.log"), "k").unwrap();
        std::fs::write(d.path().join("logs/b.log"), "b").unwrap();
        std::fs::write(d.path().join("dir/y"), "y").unwrap();
        let c = Context::open(
            d.path(),
            &Ignore::parse("logs\n!logs/keep.log\ndir/y\n").unwrap(),
        )
        .unwrap();
        assert_eq!(
            c.hidden.iter().collect::<Vec<_>>(),
            vec!["dir/y", "logs/b.log", "logs/old"]
        );
        assert!(c.has("logs") && c.has("logs/keep.log") && !c.has("logs/b.log"));
        assert_eq!(
            c.hidden_under("logs").collect::<Vec<_>>(),
            vec!["b.log", "old"]
        );
        assert_eq!(c.hidden_under("dir").collect::<Vec<_>>(), vec!["y"]);
    }
}
