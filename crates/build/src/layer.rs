//! Layer tars written straight from the context (or another image) for COPY, ADD and WORKDIR:
//! no container, no overlay mount, just the entries the step adds, with the parent directories
//! carrying the metadata they already have in the image (overlayfs takes a directory's
//! attributes from the topmost layer, so a fresh 0755 entry would change `/root`'s mode).

use crate::union::Union;
use crate::Error;
use std::collections::BTreeSet;
use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Ownership and mode overrides of a COPY/ADD (`--chown`, `--chmod`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Attrs {
    /// uid:gid for everything written (Docker's default is 0:0).
    pub owner: (u64, u64),
    /// Permission bits replacing the source's.
    pub chmod: Option<u32>,
}

/// A layer tar being written (to the pipe of [`hako_engine::Engine::stage_streamed`]).
pub struct LayerWriter<'a> {
    b: tar::Builder<&'a mut dyn Write>,
    written: BTreeSet<String>,
    /// `SOURCE_DATE_EPOCH`: the time of what the step makes, and the latest any entry says.
    epoch: Option<u64>,
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl<'a> LayerWriter<'a> {
    /// A writer of a tar into `out`; with `epoch`, every entry's time is at most the epoch
    /// and what the step itself makes (directories, heredoc files) gets the epoch.
    pub fn new(out: &'a mut dyn Write, epoch: Option<u64>) -> LayerWriter<'a> {
        let mut b = tar::Builder::new(out);
        b.follow_symlinks(false);
        LayerWriter {
            b,
            written: BTreeSet::new(),
            epoch,
        }
    }

    /// The time of an entry the step makes: the epoch, not a clamped clock, so that an
    /// epoch later than the build still gives the same layer.
    fn made_now(&self) -> u64 {
        self.epoch.unwrap_or_else(now)
    }

    fn clamp(&self, mtime: u64) -> u64 {
        crate::epoch::clamp(mtime, self.epoch)
    }

    /// Directory entries for the ancestors of `comps` (not `comps` itself): as they are in the
    /// image when they exist there, new ones as 0755 with `owner`.
    pub fn parents(
        &mut self,
        image: &Union,
        comps: &[String],
        owner: (u64, u64),
    ) -> Result<(), Error> {
        for i in 1..comps.len() {
            self.dir(image, &comps[..i], owner, 0o755)?;
        }
        Ok(())
    }

    /// A directory entry at `comps`, keeping the image's metadata if it has one there.
    pub fn dir(
        &mut self,
        image: &Union,
        comps: &[String],
        owner: (u64, u64),
        mode: u32,
    ) -> Result<(), Error> {
        let path = comps.join("/");
        if self.written.contains(&path) {
            return Ok(());
        }
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_size(0);
        match image.metadata(comps) {
            Some((_, m)) if m.is_dir() => {
                h.set_mode(m.mode() & 0o7777);
                h.set_uid(m.uid().into());
                h.set_gid(m.gid().into());
                h.set_mtime(self.clamp(m.mtime().max(0) as u64));
            }
            Some(_) => {
                return Err(Error::Invalid(format!(
                    "cannot copy to /{path}: it exists in the image and is not a directory"
                )))
            }
            None => {
                h.set_mode(mode);
                h.set_uid(owner.0);
                h.set_gid(owner.1);
                h.set_mtime(self.made_now());
            }
        }
        self.b
            .append_data(&mut h, format!("{path}/"), std::io::empty())
            .map_err(Error::io("write the layer"))?;
        self.written.insert(path);
        Ok(())
    }

    /// A file, symlink or directory from the host (the context or an image's layer) at `comps`.
    pub fn host(
        &mut self,
        comps: &[String],
        src: &Path,
        m: &std::fs::Metadata,
        attrs: Attrs,
    ) -> Result<(), Error> {
        let path = comps.join("/");
        let mut h = tar::Header::new_gnu();
        h.set_metadata_in_mode(m, tar::HeaderMode::Complete);
        h.set_mtime(self.clamp(m.mtime().max(0) as u64));
        h.set_uid(attrs.owner.0);
        h.set_gid(attrs.owner.1);
        if let Some(mode) = attrs.chmod {
            if !m.file_type().is_symlink() {
                h.set_mode(mode);
            }
        }
        let ft = m.file_type();
        let res = if ft.is_symlink() {
            let target = std::fs::read_link(src)
                .map_err(Error::io(format!("read link {}", src.display())))?;
            h.set_size(0);
            self.b.append_link(&mut h, &path, target)
        } else if ft.is_dir() {
            h.set_size(0);
            self.b
                .append_data(&mut h, format!("{path}/"), std::io::empty())
        } else if ft.is_file() {
            let f = File::open(src).map_err(Error::io(format!("open {}", src.display())))?;
            h.set_size(m.len());
            self.b.append_data(&mut h, &path, f.take(m.len()))
        } else {
            // Sockets, fifos and devices are not copied, as with Docker's context tar.
            return Ok(());
        };
        res.map_err(Error::io("write the layer"))?;
        self.written.insert(path);
        Ok(())
    }

    /// A regular file with the given contents (a COPY heredoc).
    pub fn bytes(&mut self, comps: &[String], data: &[u8], attrs: Attrs) -> Result<(), Error> {
        let path = comps.join("/");
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_size(data.len() as u64);
        h.set_mode(attrs.chmod.unwrap_or(0o644));
        h.set_uid(attrs.owner.0);
        h.set_gid(attrs.owner.1);
        h.set_mtime(self.made_now());
        self.b
            .append_data(&mut h, &path, data)
            .map_err(Error::io("write the layer"))?;
        self.written.insert(path);
        Ok(())
    }

    /// The entries of a local tar archive (plain, gzip, bzip2-free: gzip and zstd detected by
    /// magic bytes) re-rooted under `dest`, for ADD. Entries that try to leave `dest` are
    /// refused.
    pub fn archive(&mut self, dest: &[String], input: Box<dyn Read>) -> Result<(), Error> {
        let mut a = tar::Archive::new(input);
        let entries = a.entries().map_err(Error::io("read the archive"))?;
        for e in entries {
            let mut e = e.map_err(Error::io("read the archive"))?;
            let p = e
                .path()
                .map_err(Error::io("read the archive"))?
                .into_owned();
            let mut comps: Vec<String> = dest.to_vec();
            for c in p.components() {
                match c {
                    std::path::Component::Normal(s) => comps.push(s.to_string_lossy().into_owned()),
                    std::path::Component::CurDir | std::path::Component::RootDir => {}
                    _ => {
                        return Err(Error::Invalid(format!(
                            "archive entry {} leaves the destination",
                            p.display()
                        )))
                    }
                }
            }
            if comps.len() == dest.len() {
                continue;
            }
            let mut h = e.header().clone();
            if self.epoch.is_some() {
                let t = h.mtime().map_err(Error::io("read the archive"))?;
                h.set_mtime(self.clamp(t));
                // A GNU header may carry access and change times: the archive's, but the
                // epoch promises no time after it.
                if let Some(gnu) = h.as_gnu_mut() {
                    gnu.set_atime(0);
                    gnu.set_ctime(0);
                }
            }
            let path = comps.join("/");
            let kind = h.entry_type();
            if kind.is_hard_link() {
                let target = e
                    .link_name()
                    .map_err(Error::io("read the archive"))?
                    .map(|t| t.into_owned())
                    .unwrap_or_default();
                let mut t: Vec<String> = dest.to_vec();
                t.extend(target.components().filter_map(|c| match c {
                    std::path::Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
                    _ => None,
                }));
                self.b
                    .append_link(&mut h, &path, t.join("/"))
                    .map_err(Error::io("write the layer"))?;
            } else if kind.is_symlink() {
                let target = e
                    .link_name()
                    .map_err(Error::io("read the archive"))?
                    .map(|t| t.into_owned())
                    .unwrap_or_default();
                self.b
                    .append_link(&mut h, &path, target)
                    .map_err(Error::io("write the layer"))?;
            } else if kind.is_pax_global_extensions()
                || kind.is_pax_local_extensions()
                || kind.is_gnu_longname()
                || kind.is_gnu_longlink()
            {
                continue;
            } else {
                let size = h.entry_size().map_err(Error::io("read the archive"))?;
                h.set_size(size);
                self.b
                    .append_data(&mut h, &path, &mut e)
                    .map_err(Error::io("write the layer"))?;
            }
            self.written.insert(path);
        }
        Ok(())
    }

    /// Ends the archive (its two zero blocks).
    pub fn finish(self) -> Result<(), Error> {
        self.b.into_inner().map_err(Error::io("write the layer"))?;
        Ok(())
    }
}

/// What ADD extracts, as Docker decides it: a file whose contents (after gzip, bzip2, xz or
/// zstd decompression, if it starts with their magic) begin with a valid tar header. Anything
/// else, a gzip file of plain text included, is copied as it is. `None`: not an archive.
pub fn open_archive(path: &Path) -> Result<Option<Box<dyn Read>>, Error> {
    let open = || File::open(path).map_err(Error::io(format!("open {}", path.display())));
    let mut magic = [0u8; 4];
    let n = read_full(&mut open()?, &mut magic)
        .map_err(Error::io(format!("read {}", path.display())))?;
    let decoded = || -> Result<Box<dyn Read>, Error> {
        Ok(if magic[..n].starts_with(&[0x1f, 0x8b]) {
            Box::new(flate2::read::GzDecoder::new(open()?))
        } else if magic[..n].starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Box::new(zstd::Decoder::new(open()?).map_err(Error::io("read a zstd archive"))?)
        } else if magic[..n].starts_with(b"BZh") {
            Box::new(bzip2::read::MultiBzDecoder::new(open()?))
        } else if magic[..n].starts_with(&[0xfd, b'7', b'z', b'X']) {
            Box::new(liblzma::read::XzDecoder::new_multi_decoder(open()?))
        } else {
            Box::new(open()?)
        })
    };
    // A stream that does not decompress is no archive either: Docker copies it too.
    let mut head = [0u8; 512];
    match read_full(&mut *decoded()?, &mut head) {
        Ok(512) if is_tar_header(&head) => Ok(Some(decoded()?)),
        _ => Ok(None),
    }
}

/// Reads until `buf` is full or the input ends; the count read.
fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Whether a block is a tar header as Go's reader accepts one: its checksum field (octal)
/// equals the sum of the block's bytes with that field read as spaces, unsigned or signed
/// (old tars). An all-zero block is the end of an archive, not a header.
fn is_tar_header(b: &[u8; 512]) -> bool {
    if b.iter().all(|&c| c == 0) {
        return false;
    }
    let field = &b[148..156];
    let text: String = field
        .iter()
        .map(|&c| c as char)
        .filter(|c| *c != ' ' && *c != '\0')
        .collect();
    let Ok(want) = i64::from_str_radix(&text, 8) else {
        return false;
    };
    let (mut unsigned, mut signed) = (0i64, 0i64);
    for (i, &c) in b.iter().enumerate() {
        let c = if (148..156).contains(&i) { b' ' } else { c };
        unsigned += i64::from(c);
        signed += i64::from(c as i8);
    }
    want == unsigned || want == signed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut e, data).unwrap();
        e.finish().unwrap()
    }

    fn one_file_tar(ustar: bool) -> Vec<u8> {
        let mut h = if ustar {
            tar::Header::new_ustar()
        } else {
            tar::Header::new_old()
        };
        h.set_path("f").unwrap();
        h.set_size(2);
        h.set_mode(0o644);
        h.set_cksum();
        let mut b = tar::Builder::new(Vec::new());
        b.append(&h, &b"hi"[..]).unwrap();
        b.into_inner().unwrap()
    }

    /// ADD extracts only what is a tar once decompressed: a gzip of plain text, a short file
    /// or text stay files (this failed with "failed to read entire block"), while tars (ustar
    /// or the old format without magic) plain or gzipped are archives.
    #[test]
    fn what_add_extracts() {
        let d = tempfile::tempdir().unwrap();
        let is_archive = |name: &str, data: &[u8]| {
            let p = d.path().join(name);
            std::fs::write(&p, data).unwrap();
            open_archive(&p).unwrap().is_some()
        };
        assert!(!is_archive("text.gz", &gz(&b"hello world\n".repeat(100))));
        assert!(!is_archive("short.gz", &gz(b"x")));
        assert!(!is_archive("text", &b"plain text\n".repeat(100)));
        assert!(!is_archive("empty", b""));
        assert!(!is_archive("zeros", &[0u8; 1024]));
        assert!(!is_archive("bad.gz", &[0x1f, 0x8b, 1, 2, 3]));
        assert!(is_archive("a.tar", &one_file_tar(true)));
        assert!(is_archive("old.tar", &one_file_tar(false)));
        assert!(is_archive("a.tar.gz", &gz(&one_file_tar(true))));
        let mut bz = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
        std::io::Write::write_all(&mut bz, &one_file_tar(true)).unwrap();
        assert!(is_archive("a.tar.bz2", &bz.finish().unwrap()));
        let mut xz = liblzma::write::XzEncoder::new(Vec::new(), 1);
        std::io::Write::write_all(&mut xz, &one_file_tar(true)).unwrap();
        let xz = xz.finish().unwrap();
        assert!(is_archive("a.tar.xz", &xz));
        let mut bz = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
        std::io::Write::write_all(&mut bz, &b"plain text\n".repeat(100)).unwrap();
        assert!(!is_archive("text.bz2", &bz.finish().unwrap()));
        let p = d.path().join("a.tar.xz");
        let mut a = tar::Archive::new(open_archive(&p).unwrap().unwrap());
        let names: Vec<String> = a
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["f"]);
        let p = d.path().join("a.tar.gz");
        let mut a = tar::Archive::new(open_archive(&p).unwrap().unwrap());
        let names: Vec<String> = a
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["f"]);
    }

    fn times(tar: &[u8]) -> Vec<(String, u64)> {
        tar::Archive::new(tar)
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let t = e.header().mtime().unwrap();
                (e.path().unwrap().to_string_lossy().into_owned(), t)
            })
            .collect()
    }

    /// With an epoch, what the step makes gets the epoch, a newer source is clamped to it, an
    /// older one keeps its time; ADDed archive entries too.
    #[test]
    fn the_epoch_is_every_time_s_ceiling() {
        let d = tempfile::tempdir().unwrap();
        let (new, old) = (d.path().join("new"), d.path().join("old"));
        std::fs::write(&new, b"new").unwrap();
        std::fs::write(&old, b"old").unwrap();
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000);
        std::fs::File::options()
            .write(true)
            .open(&old)
            .unwrap()
            .set_modified(t)
            .unwrap();
        let mut archive = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(1);
        h.set_mode(0o644);
        h.set_mtime(4_000_000_000);
        archive
            .append_data(&mut h, "in-archive", &b"x"[..])
            .unwrap();
        let archive = archive.into_inner().unwrap();

        let image = Union::new(&[]);
        let comps = |p: &str| p.split('/').map(String::from).collect::<Vec<_>>();
        let write = |epoch: Option<u64>| -> Vec<u8> {
            let mut out = Vec::new();
            let mut w = LayerWriter::new(&mut out, epoch);
            w.parents(&image, &comps("a/b/new"), (0, 0)).unwrap();
            for (name, src) in [("a/b/new", &new), ("a/b/old", &old)] {
                let m = std::fs::symlink_metadata(src).unwrap();
                w.host(&comps(name), src, &m, Attrs::default()).unwrap();
            }
            w.bytes(&comps("a/doc"), b"heredoc", Attrs::default())
                .unwrap();
            w.archive(&comps("x"), Box::new(std::io::Cursor::new(archive.clone())))
                .unwrap();
            w.finish().unwrap();
            out
        };
        let e = 1_700_000_000;
        assert_eq!(
            times(&write(Some(e))),
            [
                ("a/".into(), e),
                ("a/b/".into(), e),
                ("a/b/new".into(), e),
                ("a/b/old".into(), 1_000),
                ("a/doc".into(), e),
                ("x/in-archive".into(), e),
            ]
        );
        // Without one, the clock and the sources' own times.
        let plain = times(&write(None));
        assert!(plain[0].1 <= now() && plain[0].1 + 60 > now(), "{plain:?}");
        assert_eq!(plain[3].1, 1_000);
        assert_eq!(plain[5].1, 4_000_000_000);
    }
}
