//! Thin file helpers tuned for cgroupfs.
//!
//! Unit tests run against a fake tree on an ordinary filesystem, which differs
//! from kernfs in two ways: files do not appear by themselves in a new
//! directory, and a directory holding files cannot be rmdir'ed (and says
//! ENOTEMPTY where kernfs says EBUSY for child cgroups). The two
//! `cfg(test)` seams below emulate kernfs there, and nowhere else.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;

use crate::Error;

/// Opens `path` for writing. std adds O_CLOEXEC; O_TRUNC and O_CREAT are
/// pointless on cgroupfs, so the real build issues a bare O_WRONLY open.
fn open_write(path: &Path) -> io::Result<File> {
    let mut opts = OpenOptions::new();
    opts.write(true);
    #[cfg(test)]
    opts.create(true).truncate(true);
    opts.open(path)
}

/// Writes `value` with exactly one write(2): cgroupfs parses each write as a
/// whole, so splitting it would change its meaning.
pub(crate) fn write_raw(path: &Path, value: &[u8]) -> io::Result<()> {
    let file = open_write(path)?;
    let n = (&file).write(value)?;
    if n != value.len() {
        return Err(io::Error::new(
            io::ErrorKind::WriteZero,
            "short write to cgroup file",
        ));
    }
    Ok(())
}

/// Writes each of `values` with a write(2) of its own to one open of `path`: cgroupfs takes
/// every write as a whole request, so a list of rules costs one open instead of one each.
/// `Ok(false)` if `path` does not exist.
pub(crate) fn write_each<'a>(
    path: &Path,
    values: impl IntoIterator<Item = &'a [u8]>,
) -> Result<bool, Error> {
    let file = match open_write(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(write_err(path, b"", e)),
    };
    for value in values {
        match (&file).write(value) {
            Ok(n) if n == value.len() => {}
            Ok(_) => {
                let short = io::Error::new(io::ErrorKind::WriteZero, "short write to cgroup file");
                return Err(write_err(path, value, short));
            }
            Err(e) => return Err(write_err(path, value, e)),
        }
    }
    Ok(true)
}

/// [`write_raw`] with the error wrapped for the caller.
pub(crate) fn write(path: &Path, value: &[u8]) -> Result<(), Error> {
    write_raw(path, value).map_err(|source| write_err(path, value, source))
}

pub(crate) fn write_err(path: &Path, value: &[u8], source: io::Error) -> Error {
    Error::Write {
        path: path.to_path_buf(),
        value: String::from_utf8_lossy(value).into_owned(),
        error: source,
    }
}

/// Reads a small file into `buf` with a single read(2) when it fits, which is
/// the common case for cgroup attribute files; larger ones are read fully.
pub(crate) fn read_small<'a>(path: &Path, buf: &'a mut Vec<u8>) -> io::Result<&'a str> {
    let mut file = File::open(path)?;
    buf.clear();
    if buf.capacity() < 256 {
        buf.reserve(256);
    }
    let cap = buf.capacity();
    buf.resize(cap, 0);
    let n = file.read(buf)?;
    buf.truncate(n);
    if n == cap {
        file.read_to_end(buf)?;
    }
    std::str::from_utf8(buf).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Reads a whole file, mapping errors to [`Error::Read`].
pub(crate) fn read_string(path: &Path) -> Result<String, Error> {
    std::fs::read_to_string(path).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        error: source,
    })
}

/// mkdir with the permissions runc and systemd use for cgroups.
pub(crate) fn mkdir(path: &Path) -> io::Result<()> {
    DirBuilder::new().mode(0o755).create(path)
}

/// rmdir of a cgroup directory.
#[cfg(not(test))]
pub(crate) fn rmdir(path: &Path) -> io::Result<()> {
    std::fs::remove_dir(path)
}

/// rmdir of a fake cgroup directory, made to behave like kernfs.
#[cfg(test)]
pub(crate) fn rmdir(path: &Path) -> io::Result<()> {
    // kernfs drops attribute files together with the directory.
    if let Ok(entries) = std::fs::read_dir(path) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_file()) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
    // cgroupfs reports child cgroups as EBUSY, not ENOTEMPTY.
    std::fs::remove_dir(path).map_err(|e| {
        if e.raw_os_error() == Some(libc::ENOTEMPTY) {
            io::Error::from_raw_os_error(libc::EBUSY)
        } else {
            e
        }
    })
}

pub(crate) fn errno(e: &io::Error) -> i32 {
    e.raw_os_error().unwrap_or(0)
}
