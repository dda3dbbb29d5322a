//! Single-pass layer ingestion: the raw stream is written to a blob file and
//! hashed, decompressed, hashed again (the diff ID) and unpacked, all while
//! being read once.

use std::ffi::{CString, OsStr};
use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use nix::sys::stat::{Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;
use sha2::{Digest, Sha256};

use crate::Error;

/// Compression detected from the stream's magic bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// Plain tar.
    None,
    /// gzip (`1f 8b`).
    Gzip,
    /// zstd (`28 b5 2f fd`).
    Zstd,
}

impl Compression {
    /// The OCI layer media type for this compression.
    pub fn media_type(self) -> oci_spec::image::MediaType {
        use oci_spec::image::MediaType;
        match self {
            Compression::None => MediaType::ImageLayer,
            Compression::Gzip => MediaType::ImageLayerGzip,
            Compression::Zstd => MediaType::ImageLayerZstd,
        }
    }
}

/// What one pass over a layer stream produced.
#[derive(Debug)]
pub(crate) struct Extracted {
    pub compression: Compression,
    /// Hex sha256 of the stream as given.
    pub blob_hex: String,
    pub blob_size: u64,
    /// Hex sha256 of the uncompressed tar.
    pub diff_hex: String,
    pub diff_size: u64,
}

/// Copies everything read through it into a file while hashing it.
struct Tee<R> {
    inner: R,
    /// `None` when the blob is already a file of its own (a loaded archive's).
    out: Option<BufWriter<File>>,
    hasher: Sha256,
    n: u64,
}

impl<R: Read> Read for Tee<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(out) = &mut self.out {
            out.write_all(&buf[..n])?;
        }
        self.hasher.update(&buf[..n]);
        self.n += n as u64;
        Ok(n)
    }
}

struct HashReader<R> {
    inner: R,
    hasher: Sha256,
    n: u64,
}

impl<R: Read> Read for HashReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.n += n as u64;
        Ok(n)
    }
}

/// One-line rendering of an error and its sources; the tar crate keeps the
/// root cause (e.g. "unexpected end of file") in the source chain only.
fn chain_message(e: &(dyn std::error::Error + 'static)) -> String {
    let mut msg = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let part = s.to_string();
        if !msg.contains(&part) {
            msg.push_str(": ");
            msg.push_str(&part);
        }
        cur = s.source();
    }
    msg.replace('\n', " ")
}

fn has_os_error(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(s) = cur {
        if let Some(io) = s.downcast_ref::<io::Error>() {
            if io.raw_os_error().is_some() {
                return true;
            }
        }
        cur = s.source();
    }
    false
}

/// The innermost OS error in the chain, if any.
fn os_error<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a io::Error> {
    let mut found = None;
    let mut cur = Some(e);
    while let Some(s) = cur {
        if let Some(io) = s.downcast_ref::<io::Error>() {
            if io.raw_os_error().is_some() {
                found = Some(io);
            }
        }
        cur = s.source();
    }
    found
}

/// Errors from the host filesystem (ENOSPC, EACCES, ...) are not the
/// archive's fault and should not be reported as a malformed input.
fn classify(e: io::Error) -> Error {
    let msg = chain_message(&e);
    if has_os_error(&e) {
        Error::Io(io::Error::new(
            e.kind(),
            format!("failed to extract layer: {msg}"),
        ))
    } else {
        Error::InvalidArchive(msg)
    }
}

fn invalid(msg: impl Into<String>) -> Error {
    Error::InvalidArchive(msg.into())
}

/// Reads `input` once: writes it verbatim to `blob_path` (which must not
/// exist), and unpacks the (decompressed) tar into `diff_dir` (which must
/// exist and be empty). Everything written is left in place on error for
/// the caller to discard.
pub(crate) fn extract_layer(
    input: impl Read,
    blob_path: &Path,
    diff_dir: &Path,
) -> Result<Extracted, Error> {
    extract_layer_verified(input, blob_path, diff_dir, None)
}

/// [`extract_layer`] for a blob whose digest is known in advance (a registry
/// or an archive named it). A mismatch is reported as such even when the
/// tampered bytes also break decompression or the tar format, because the
/// rest of the stream is still hashed before giving up.
pub(crate) fn extract_layer_verified(
    input: impl Read,
    blob_path: &Path,
    diff_dir: &Path,
    expected: Option<&str>,
) -> Result<Extracted, Error> {
    let blob = File::options()
        .write(true)
        .create_new(true)
        .open(blob_path)
        .map_err(|e| io_ctx(e, "create", blob_path))?;
    extract_with(input, Some((blob, blob_path)), diff_dir, expected)
}

/// [`extract_layer_verified`] of a blob that is a file already: it is only
/// read, hashed and unpacked, not copied.
pub(crate) fn extract_layer_from_blob(
    input: impl Read,
    diff_dir: &Path,
    expected: Option<&str>,
) -> Result<Extracted, Error> {
    extract_with(input, None, diff_dir, expected)
}

fn extract_with(
    input: impl Read,
    blob: Option<(File, &Path)>,
    diff_dir: &Path,
    expected: Option<&str>,
) -> Result<Extracted, Error> {
    let blob_path = blob.as_ref().map(|(_, p)| *p);
    let mut tee = Tee {
        inner: BufReader::with_capacity(256 * 1024, input),
        out: blob.map(|(f, _)| BufWriter::with_capacity(256 * 1024, f)),
        hasher: Sha256::new(),
        n: 0,
    };

    let mut magic = [0u8; 4];
    let mut got = 0;
    while got < magic.len() {
        match tee.read(&mut magic[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(classify(e)),
        }
    }
    let compression = if got >= 2 && magic[..2] == [0x1f, 0x8b] {
        Compression::Gzip
    } else if got == 4 && magic == [0x28, 0xb5, 0x2f, 0xfd] {
        Compression::Zstd
    } else {
        Compression::None
    };

    let unpacked = (|| -> Result<(String, u64), Error> {
        let raw = io::Cursor::new(magic[..got].to_vec()).chain(&mut tee);
        let decoder: Box<dyn Read + '_> = match compression {
            // Multi-member gzip is valid and some tools emit it.
            Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(raw)),
            Compression::Zstd => Box::new(
                zstd::stream::read::Decoder::new(raw).map_err(|e| invalid(format!("zstd: {e}")))?,
            ),
            Compression::None => Box::new(raw),
        };
        let mut hr = HashReader {
            inner: decoder,
            hasher: Sha256::new(),
            n: 0,
        };
        unpack(&mut hr, diff_dir)?;
        // The tar reader stops at the first end-of-archive block; the second
        // zero block and any record padding are part of the diff ID too.
        io::copy(&mut hr, &mut io::sink()).map_err(classify)?;
        Ok((hex::encode(hr.hasher.finalize()), hr.n))
    })();
    // Trailing bytes after the compressed stream still belong to the blob.
    let drained = if unpacked.is_ok() || expected.is_some() {
        io::copy(&mut tee, &mut io::sink()).map_err(classify)
    } else {
        Ok(0)
    };
    if let Some(want) = expected {
        let got = format!("sha256:{}", hex::encode(tee.hasher.clone().finalize()));
        if drained.is_ok() && got != want {
            return Err(Error::DigestMismatch {
                expected: want.to_string(),
                actual: got,
            });
        }
    }
    let (diff_hex, diff_size) = unpacked?;
    drained?;

    // Not synced here: the store records the layer as not yet durable
    // (durable.rs).
    if let (Some(out), Some(path)) = (tee.out.take(), blob_path) {
        out.into_inner()
            .map_err(|e| io_ctx(e.into_error(), "write", path))?;
    }
    Ok(Extracted {
        compression,
        blob_hex: hex::encode(tee.hasher.finalize()),
        blob_size: tee.n,
        diff_hex,
        diff_size,
    })
}

pub(crate) fn io_ctx(e: io::Error, what: &str, path: &Path) -> Error {
    Error::Io(io::Error::new(
        e.kind(),
        format!("failed to {what} {}: {e}", path.display()),
    ))
}

fn nix_ctx(e: nix::Error, what: &str, path: &Path) -> Error {
    io_ctx(io::Error::from(e), what, path)
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

/// Creates the directories of `rel` below `root` and returns the real path.
/// Existing symlinks are followed only while they stay inside `root`, which
/// is what keeps "link -> /" followed by "link/etc/x" inside the layer.
fn safe_dir(root: &Path, rel: &Path) -> Result<PathBuf, Error> {
    let mut cur = root.to_path_buf();
    for c in rel.components() {
        let next = cur.join(c);
        match fs::symlink_metadata(&next) {
            Ok(m) if m.is_dir() => cur = next,
            Ok(m) if m.file_type().is_symlink() => {
                let real = next.canonicalize().map_err(|e| {
                    invalid(format!("{}: cannot resolve symlink: {e}", rel.display()))
                })?;
                if !real.starts_with(root) || !real.is_dir() {
                    return Err(invalid(format!(
                        "{} resolves outside of the layer",
                        rel.display()
                    )));
                }
                cur = real;
            }
            Ok(_) => {
                return Err(invalid(format!(
                    "{}: a path component is not a directory",
                    rel.display()
                )))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir(&next).map_err(|e| io_ctx(e, "create", &next))?;
                cur = next;
            }
            Err(e) => return Err(io_ctx(e, "stat", &next)),
        }
    }
    Ok(cur)
}

fn remove_existing(path: &Path) -> Result<(), Error> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path).map_err(|e| io_ctx(e, "remove", path)),
        Ok(_) => fs::remove_file(path).map_err(|e| io_ctx(e, "remove", path)),
        Err(_) => Ok(()),
    }
}

fn lsetxattr(path: &Path, name: &[u8], value: &[u8]) -> io::Result<()> {
    let p = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let n = CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: both strings are NUL-terminated and outlive the call; the value
    // pointer/length pair comes from a live slice.
    let rc = unsafe {
        libc::lsetxattr(
            p.as_ptr(),
            n.as_ptr(),
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

fn set_mtime(path: &Path, mtime: u64) -> Result<(), Error> {
    let ts = TimeSpec::new(mtime as libc::time_t, 0);
    nix::sys::stat::utimensat(
        nix::fcntl::AT_FDCWD,
        path,
        &ts,
        &ts,
        UtimensatFlags::NoFollowSymlink,
    )
    .map_err(|e| nix_ctx(e, "set mtime of", path))
}

struct Ctx<'a> {
    root: &'a Path,
    as_root: bool,
}

fn unpack(reader: &mut dyn Read, diff_dir: &Path) -> Result<(), Error> {
    let root = diff_dir
        .canonicalize()
        .map_err(|e| io_ctx(e, "resolve", diff_dir))?;
    let ctx = Ctx {
        root: &root,
        as_root: nix::unistd::geteuid().is_root(),
    };
    let mut archive = tar::Archive::new(reader);
    archive.set_preserve_permissions(true);
    archive.set_preserve_mtime(true);
    // Only root can chown; rootless imports keep the caller's ownership.
    archive.set_preserve_ownerships(ctx.as_root);
    // Extended attributes are applied below for every entry type; the tar
    // crate would only handle regular files.
    archive.set_unpack_xattrs(false);
    archive.set_overwrite(true);

    let mut files = 0usize;
    // Adding children bumps a directory's mtime, so directories get theirs
    // once everything is in place.
    let mut dir_times: Vec<(PathBuf, u64)> = Vec::new();
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
        files += 1;
        if rel.as_os_str().is_empty() {
            // "./": the layer root itself, whose attributes overlayfs takes
            // from the upper directory anyway.
            continue;
        }
        let name = rel.file_name().unwrap_or_default().as_bytes();
        if let Some(target) = name.strip_prefix(b".wh.") {
            whiteout(&ctx, &rel, target)?;
            continue;
        }

        let xattrs = pax_xattrs(&mut entry)?;
        let header = entry.header();
        let mtime = header.mtime().unwrap_or(0);
        if kind.is_character_special() || kind.is_block_special() || kind.is_fifo() {
            special(&ctx, &rel, &entry)?;
        } else {
            if kind.is_hard_link() {
                check_link_target(&entry, &raw_path)?;
            }
            let ok = entry
                .unpack_in(&root)
                .map_err(|e| entry_error(e, &raw_path, &root))?;
            if !ok {
                return Err(invalid(format!(
                    "entry {} points outside of the layer",
                    raw_path.display()
                )));
            }
        }
        let dst = root.join(&rel);
        for (k, v) in xattrs {
            if let Err(e) = lsetxattr(&dst, &k, &v) {
                // Filesystems without xattr support (or security.* names the
                // kernel refuses) should not make the whole image unusable.
                let ignorable = matches!(
                    e.raw_os_error(),
                    Some(libc::ENOTSUP) | Some(libc::EPERM) | Some(libc::EINVAL)
                );
                if !ignorable {
                    return Err(io_ctx(e, "set xattr on", &dst));
                }
            }
        }
        if kind.is_dir() {
            dir_times.push((dst, mtime));
        }
    }
    if files == 0 {
        return Err(invalid("archive contains no files"));
    }
    // Deepest first so that setting a child's time does not disturb an
    // already-fixed parent.
    for (dir, mtime) in dir_times.iter().rev() {
        set_mtime(dir, *mtime)?;
    }
    Ok(())
}

/// Makes the tar crate's messages about an entry readable: no temporary
/// paths, and a plain statement when it refused to write outside the layer.
fn entry_error(e: io::Error, entry: &Path, root: &Path) -> Error {
    // The tar crate wraps a host error twice, each time naming the temporary path: keep just
    // the entry and the OS error.
    if let Some(os) = os_error(&e) {
        return Error::Io(io::Error::new(
            os.kind(),
            format!("failed to extract layer: {}: {os}", entry.display()),
        ));
    }
    match classify(e) {
        Error::InvalidArchive(msg) if msg.contains("outside of destination path") => invalid(
            format!("entry {} points outside of the layer", entry.display()),
        ),
        Error::InvalidArchive(msg) => invalid(msg.replace(&*root.to_string_lossy(), "")),
        other => other,
    }
}

/// Hard link targets are names inside the archive; one climbing above the
/// root can only be an attempt to reach host files.
fn check_link_target<R: Read>(entry: &tar::Entry<'_, R>, path: &Path) -> Result<(), Error> {
    let Some(target) = entry.link_name().map_err(classify)? else {
        return Ok(());
    };
    let mut depth = 0usize;
    for c in target.components() {
        match c {
            Component::Normal(_) => depth += 1,
            Component::ParentDir if depth == 0 => {
                return Err(invalid(format!(
                    "hard link {} -> {} points outside of the layer",
                    path.display(),
                    target.display()
                )))
            }
            Component::ParentDir => depth -= 1,
            _ => {}
        }
    }
    Ok(())
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

/// Device nodes and FIFOs; the tar crate would write them as regular files.
fn special<R: Read>(ctx: &Ctx<'_>, rel: &Path, entry: &tar::Entry<'_, R>) -> Result<(), Error> {
    let h = entry.header();
    let kind = h.entry_type();
    let parent = safe_dir(ctx.root, rel.parent().unwrap_or(Path::new("")))?;
    let dst = parent.join(rel.file_name().unwrap_or_default());
    remove_existing(&dst)?;
    let mode = h.mode().map_err(classify)? & 0o7777;
    let (sflag, dev) = if kind.is_fifo() {
        (SFlag::S_IFIFO, 0)
    } else {
        let major = h.device_major().map_err(classify)?.unwrap_or(0);
        let minor = h.device_minor().map_err(classify)?.unwrap_or(0);
        let flag = if kind.is_character_special() {
            SFlag::S_IFCHR
        } else {
            SFlag::S_IFBLK
        };
        (flag, libc::makedev(major, minor))
    };
    nix::sys::stat::mknod(&dst, sflag, Mode::from_bits_truncate(mode), dev)
        .map_err(|e| nix_ctx(e, "create node", &dst))?;
    if ctx.as_root {
        let uid = h.uid().map_err(classify)? as u32;
        let gid = h.gid().map_err(classify)? as u32;
        std::os::unix::fs::lchown(&dst, Some(uid), Some(gid))
            .map_err(|e| io_ctx(e, "chown", &dst))?;
    }
    // mknod honours the umask; chmod afterwards (and after chown, which
    // clears setuid bits) gives the exact mode.
    fs::set_permissions(&dst, fs::Permissions::from_mode(mode))
        .map_err(|e| io_ctx(e, "chmod", &dst))?;
    set_mtime(&dst, h.mtime().unwrap_or(0))
}

/// OCI whiteouts become what overlayfs understands natively.
fn whiteout(ctx: &Ctx<'_>, rel: &Path, target: &[u8]) -> Result<(), Error> {
    let parent = safe_dir(ctx.root, rel.parent().unwrap_or(Path::new("")))?;
    if target == b".wh..opq" {
        return lsetxattr(&parent, b"trusted.overlay.opaque", b"y")
            .map_err(|e| io_ctx(e, "mark opaque", &parent));
    }
    if target.is_empty() || target == b"." || target == b".." || target.contains(&b'/') {
        return Err(invalid(format!("invalid whiteout {}", rel.display())));
    }
    let dst = parent.join(OsStr::from_bytes(target));
    remove_existing(&dst)?;
    nix::sys::stat::mknod(&dst, SFlag::S_IFCHR, Mode::empty(), libc::makedev(0, 0))
        .map_err(|e| nix_ctx(e, "create whiteout", &dst))?;
    if ctx.as_root {
        std::os::unix::fs::lchown(&dst, Some(0), Some(0)).map_err(|e| io_ctx(e, "chown", &dst))?;
    }
    Ok(())
}
