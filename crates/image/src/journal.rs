//! Changes to the store's files that a `kill -9` interrupted are finished by the next open.
//!
//! Files and rows cannot change in one transaction. A removal commits its rows, then deletes
//! layer directories and blobs; an installation renames staged layers and blobs into place,
//! then commits their rows. A process killed in between left files that no row references, up
//! to a whole image, which nothing counted (not even `system df`) until the next `image prune`.
//!
//! So before either begins, the process writes the names of the blobs and layers it is about
//! to touch to `tmp/<pid>-journal-<random>`, and deletes that file once done. `open` already
//! lists `tmp/` to sweep what dead processes left there; a journal of a dead process is
//! replayed instead: under the store lock, every blob or layer it names that no row references
//! is deleted. An open finds no journal unless a process died mid-change, so it reads nothing
//! more than before; and what a row references is never touched, whether the interrupted
//! commit happened or not. The journal is not synced: a `kill -9` loses no written page, and
//! what a power loss leaves is for `durable.rs` and `gc`.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use rusqlite::OptionalExtension;

use crate::extract::io_ctx;
use crate::store::{hex_part, remove_any};
use crate::{Error, ImageStore};

/// The journal of one change; deleted when dropped, which is once the change is complete (or
/// failed before touching anything).
pub(crate) struct Journal {
    path: PathBuf,
}

impl Drop for Journal {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// The part of a `tmp/` entry's name that marks a journal, after the pid.
const MARK: &str = "-journal-";

/// Whether a `tmp/` entry name is a journal.
pub(crate) fn is_journal(name: &str) -> bool {
    name.split_once('-')
        .is_some_and(|(_, rest)| rest.starts_with(&MARK[1..]))
}

fn valid_digest(d: &str) -> bool {
    d.strip_prefix("sha256:")
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// A test hook: with `HAKO_TEST_CRASH=<point>` in a debug build, the process kills itself
/// with SIGKILL at that point, as a `kill -9` there would. Release builds have no such hook.
pub(crate) fn crash_point(point: &str) {
    #[cfg(debug_assertions)]
    if std::env::var_os("HAKO_TEST_CRASH").is_some_and(|v| v == point) {
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
    }
    #[cfg(not(debug_assertions))]
    let _ = point;
}

impl ImageStore {
    /// Records that the blobs (`sha256:` digests) and layers (chain IDs) named are about to be
    /// installed or removed.
    pub(crate) fn journal<'a>(
        &self,
        blobs: impl IntoIterator<Item = &'a str>,
        layers: impl IntoIterator<Item = &'a str>,
    ) -> Result<Journal, Error> {
        let mut text = String::new();
        for b in blobs {
            text.push_str("blob ");
            text.push_str(b);
            text.push('\n');
        }
        for l in layers {
            text.push_str("layer ");
            text.push_str(l);
            text.push('\n');
        }
        let tmp = self.tmp_path()?;
        let name = tmp
            .file_name()
            .map(|n| n.to_string_lossy().replacen('-', MARK, 1))
            .unwrap_or_default();
        let path = tmp.with_file_name(name);
        fs::write(&path, text).map_err(|e| io_ctx(e, "write", &path))?;
        Ok(Journal { path })
    }

    /// Finishes the changes the journals of dead processes describe (see the module's
    /// comment). Best effort: a journal that cannot be replayed now stays for a later open.
    pub(crate) fn replay(&self, journals: &[PathBuf]) {
        let Ok(_lock) = self.lock() else {
            return;
        };
        for j in journals {
            if self.replay_one(j).is_ok() {
                let _ = fs::remove_file(j);
            }
        }
    }

    fn replay_one(&self, journal: &Path) -> Result<(), Error> {
        let text = match fs::read_to_string(journal) {
            Ok(t) => t,
            // Another process replayed it first.
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io_ctx(e, "read", journal)),
        };
        for line in text.lines() {
            // A line cut short by the kill that stopped the writer names nothing yet touched.
            match line.split_once(' ') {
                Some(("blob", d)) if valid_digest(d) => {
                    let used: Option<i64> = self
                        .conn()
                        .query_row(
                            "SELECT 1 FROM images WHERE config_digest = ?1 OR manifest_digest = ?1
                             UNION ALL SELECT 1 FROM layers WHERE blob_digest = ?1 LIMIT 1",
                            [d],
                            |r| r.get(0),
                        )
                        .optional()?;
                    if used.is_none() {
                        let p = self.blob_path(d);
                        match fs::remove_file(&p) {
                            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                                return Err(io_ctx(e, "remove", &p))
                            }
                            _ => {}
                        }
                    }
                }
                Some(("layer", c)) if valid_digest(c) => {
                    let used: Option<i64> = self
                        .conn()
                        .query_row("SELECT 1 FROM layers WHERE chain_id = ?1", [c], |r| {
                            r.get(0)
                        })
                        .optional()?;
                    let dir = self.root().join("layers").join(hex_part(c));
                    if used.is_none() && fs::symlink_metadata(&dir).is_ok() {
                        self.discard(&dir)?;
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// Whether process `pid` runs: it exists and is neither a zombie nor being reaped. A zombie
/// has finished with its files, and lingers as long as its parent (or, for an orphan such as
/// a forked build stage whose `hako build` was killed, the host's init) takes to reap it,
/// which some inits take seconds to do. The entry's name holds no start time, so a later
/// process that reuses the pid keeps it until that process ends.
fn running(pid: i32) -> bool {
    hako_base::proc::exists(pid)
}

/// Removes what a dead process left in `tmp/`, and returns its journals, which need the
/// database to be replayed.
pub(crate) fn sweep_tmp(tmp: &Path) -> Vec<PathBuf> {
    let mut journals = Vec::new();
    let Ok(entries) = fs::read_dir(tmp) else {
        return journals;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        let pid = name
            .split_once('-')
            .and_then(|(p, _)| p.parse::<i32>().ok())
            .filter(|p| *p > 0);
        if pid.is_some_and(running) {
            continue;
        }
        if is_journal(&name) {
            journals.push(e.path());
        } else {
            remove_any(&e.path());
        }
    }
    journals
}
