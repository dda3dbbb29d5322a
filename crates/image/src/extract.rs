//! Single-pass layer ingestion: the raw stream is written to a blob file and
//! hashed, decompressed, hashed again (the diff ID) and unpacked, all while
//! being read once.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::Path;

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

/// Errors from the host filesystem (ENOSPC, EACCES, ...) are not the
/// archive's fault and should not be reported as a malformed input.
pub(crate) fn classify(e: io::Error) -> Error {
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

pub(crate) fn invalid(msg: impl Into<String>) -> Error {
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
        crate::unpack::unpack(&mut hr, diff_dir)?;
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
