//! Layers are committed without waiting for the disk.
//!
//! A `syncfs` per layer cost a pull seconds of wall time on a busy host (it
//! waits for every dirty page of the filesystem, other programs' included).
//! A `kill -9` needs no sync at all: the page cache survives it. Only a power
//! loss or kernel crash can lose written data, and those cannot happen
//! without a reboot. So a committed layer is recorded in `layer_sync` as
//! "written, not yet known durable", with the boot it was written in:
//! - a later `hako` command of the same boot that finds such rows older than
//!   the kernel's writeback interval (by then the flusher has written them,
//!   so it is cheap) runs one `syncfs` and deletes them;
//! - rows left from an earlier boot are distrusted: the layer is unpacked
//!   again from its blob, if the blob still hashes to its digest, and its
//!   images are removed if not, as if their pull had never finished.

use std::fs::{self, File};
use std::io::BufReader;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use rusqlite::{params, OptionalExtension, Transaction};

use crate::extract::io_ctx;
use crate::store::hex_part;
use crate::{time, Error, ImageStore};

const BOOT_ID: &str = "/proc/sys/kernel/random/boot_id";

/// The current boot's ID; empty if the kernel does not say, which makes
/// every pending layer look like one of an earlier boot (the safe side).
pub(crate) fn boot_id() -> String {
    fs::read_to_string(BOOT_ID)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Seconds after which the kernel has written a dirty page back on its own:
/// `dirty_expire_centisecs` plus one flusher period.
fn writeback_secs() -> i64 {
    let read = |name: &str, default: i64| {
        fs::read_to_string(format!("/proc/sys/vm/{name}"))
            .ok()
            .and_then(|s| s.trim().parse::<i64>().ok())
            .unwrap_or(default)
    };
    let centis = read("dirty_expire_centisecs", 3000) + read("dirty_writeback_centisecs", 500);
    (centis + 99) / 100
}

/// Records a freshly committed layer as not yet known durable.
pub(crate) fn record_pending(tx: &Transaction<'_>, chain_id: &str) -> Result<(), Error> {
    tx.execute(
        "INSERT OR REPLACE INTO layer_sync(chain_id, boot_id, committed) VALUES (?1, ?2, ?3)",
        params![chain_id, boot_id(), time::unix_now()],
    )?;
    Ok(())
}

/// One `syncfs` per filesystem holding layers or blobs.
fn sync_store(root: &Path) -> Result<(), Error> {
    let mut seen = Vec::new();
    for d in ["layers", "blobs/sha256"] {
        let p = root.join(d);
        let f = File::open(&p).map_err(|e| io_ctx(e, "open", &p))?;
        let dev = f.metadata().map_err(|e| io_ctx(e, "stat", &p))?.dev();
        if seen.contains(&dev) {
            continue;
        }
        seen.push(dev);
        nix::unistd::syncfs(&f).map_err(|e| io_ctx(e.into(), "sync", &p))?;
    }
    Ok(())
}

/// A pending row as read from `layer_sync`.
struct Pending {
    chain_id: String,
    boot_id: String,
    committed: i64,
}

impl ImageStore {
    /// Applies the rules of this module for the boot `boot` at time `now`
    /// (unix seconds). Cheap when nothing is pending, which is almost always:
    /// one read of an empty table.
    /// `boot` gives the current boot's ID; it is only read when a row is pending, so the
    /// common open (nothing pending) costs one query.
    pub(crate) fn settle_pending(
        &self,
        boot: impl FnOnce() -> String,
        now: i64,
    ) -> Result<(), Error> {
        let mut stmt = self
            .conn()
            .prepare_cached("SELECT chain_id, boot_id, committed FROM layer_sync")?;
        let rows = stmt
            .query_map([], |r| {
                Ok(Pending {
                    chain_id: r.get(0)?,
                    boot_id: r.get(1)?,
                    committed: r.get(2)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        drop(stmt);
        if rows.is_empty() {
            return Ok(());
        }
        let boot = boot();
        let (stale, current): (Vec<_>, Vec<_>) = rows.into_iter().partition(|p| p.boot_id != boot);
        let limit = writeback_secs();
        let ripe: Vec<_> = current
            .into_iter()
            .filter(|p| p.committed + limit <= now)
            .collect();
        if !ripe.is_empty() {
            // Everything those rows describe was written before they were
            // read, so this sync covers it.
            sync_store(self.root())?;
            let marked = (|| -> Result<(), Error> {
                let tx = self.begin()?;
                for p in &ripe {
                    // A recommit in the meantime has a newer row, which stays.
                    tx.execute(
                        "DELETE FROM layer_sync WHERE chain_id = ?1 AND boot_id = ?2 AND committed = ?3",
                        params![p.chain_id, p.boot_id, p.committed],
                    )?;
                }
                Ok(tx.commit()?)
            })();
            // Marking is an optimisation (it spares a re-extraction after the
            // next reboot): a database another writer holds for longer than
            // the busy timeout leaves it to a later command.
            match marked {
                Err(Error::Db(rusqlite::Error::SqliteFailure(e, _)))
                    if matches!(
                        e.code,
                        rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                    ) => {}
                other => other?,
            }
        }
        if !stale.is_empty() {
            self.recover(&stale, &boot)?;
        }
        Ok(())
    }

    /// Layers of an earlier boot that were never known durable: unpacked
    /// again from a blob that still verifies, or removed with their images.
    fn recover(&self, stale: &[Pending], boot: &str) -> Result<(), Error> {
        let _lock = self.lock()?;
        let stager = self.stager();
        let mut lost = Vec::new();
        for p in stale {
            // Another process may have recovered it while we waited for the lock.
            let still: Option<String> = self
                .conn()
                .query_row(
                    "SELECT boot_id FROM layer_sync WHERE chain_id = ?1",
                    [&p.chain_id],
                    |r| r.get(0),
                )
                .optional()?;
            if still.as_deref().is_none_or(|b| b == boot) {
                continue;
            }
            let row: Option<(String, String)> = self
                .conn()
                .query_row(
                    "SELECT diff_id, blob_digest FROM layers WHERE chain_id = ?1",
                    [&p.chain_id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            let Some((diff_id, blob_digest)) = row else {
                self.conn()
                    .execute("DELETE FROM layer_sync WHERE chain_id = ?1", [&p.chain_id])?;
                continue;
            };
            let staged = File::open(self.blob_path(&blob_digest))
                .map_err(Error::Io)
                .and_then(|f| {
                    stager.stage_layer(BufReader::with_capacity(1 << 20, f), Some(&blob_digest))
                })
                .ok()
                .filter(|s| s.diff_id == diff_id);
            match staged {
                Some(mut s) => {
                    let layer_root = self.root().join("layers").join(hex_part(&p.chain_id));
                    if fs::symlink_metadata(&layer_root).is_ok() {
                        self.discard(&layer_root)?;
                    }
                    fs::rename(s.work.path(), &layer_root)
                        .map_err(|e| io_ctx(e, "install layer", &layer_root))?;
                    s.work.disarm();
                }
                None => lost.push((p.chain_id.clone(), blob_digest)),
            }
        }
        sync_store(self.root())?;
        let tx = self.begin()?;
        let mut doomed = Vec::new();
        for (chain, blob) in &lost {
            let ids: Vec<String> = tx
                .prepare("SELECT DISTINCT image_id FROM image_layers WHERE chain_id = ?1")?
                .query_map([chain], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            for id in ids {
                tx.execute("DELETE FROM tags WHERE image_id = ?1", [&id])?;
                doomed.push(self.delete_image_rows(&id)?);
            }
            // Layers of images already gone (or of none) go too.
            tx.execute("DELETE FROM layers WHERE chain_id = ?1", [chain])?;
            doomed.push(crate::store::Doomed {
                layers: vec![chain.clone()],
                blobs: vec![blob.clone()],
            });
        }
        tx.execute("DELETE FROM layer_sync WHERE boot_id <> ?1", params![boot])?;
        let _journals = doomed
            .iter()
            .map(|d| self.journal_removal(d))
            .collect::<Result<Vec<_>, Error>>()?;
        tx.commit()?;
        for d in doomed {
            self.unlink(d);
        }
        Ok(())
    }
}
