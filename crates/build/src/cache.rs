//! The build cache, in the state database: step key → image, and a per-file metadata cache so
//! hashing the context for COPY/ADD does not re-read files whose inode, size and times are
//! unchanged.

use crate::Error;
use rusqlite::{params, Connection, OptionalExtension};
use std::time::{SystemTime, UNIX_EPOCH};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS build_cache(
    key TEXT PRIMARY KEY,
    image_id TEXT NOT NULL,
    created INTEGER NOT NULL,
    last_used INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS build_cache_image ON build_cache(image_id);
CREATE TABLE IF NOT EXISTS build_file_hashes(
    path TEXT PRIMARY KEY,
    ino INTEGER NOT NULL,
    size INTEGER NOT NULL,
    mtime INTEGER NOT NULL,
    ctime INTEGER NOT NULL,
    sha256 TEXT NOT NULL
);
";

/// Seconds since the epoch.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Creates the tables when missing (cheaply: one query when they exist).
pub fn ensure_schema(conn: &Connection) -> Result<(), Error> {
    let have: i64 = conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type='table' AND name='build_file_hashes'",
        [],
        |r| r.get(0),
    )?;
    if have == 0 {
        conn.execute_batch(SCHEMA)?;
    }
    Ok(())
}

/// The image cached for a step key, if it still exists; touches its LRU time.
pub fn lookup(conn: &Connection, key: &str) -> Result<Option<String>, Error> {
    let id: Option<String> = conn
        .query_row(
            "SELECT image_id FROM build_cache WHERE key = ?1",
            [key],
            |r| r.get(0),
        )
        .optional()?;
    let Some(id) = id else { return Ok(None) };
    let exists: bool = conn.query_row(
        "SELECT EXISTS(SELECT 1 FROM images WHERE id = ?1)",
        [&id],
        |r| r.get(0),
    )?;
    if !exists {
        // The image was removed (rmi, prune): the entry is stale.
        conn.execute("DELETE FROM build_cache WHERE key = ?1", [key])?;
        return Ok(None);
    }
    conn.execute(
        "UPDATE build_cache SET last_used = ?2 WHERE key = ?1",
        params![key, unix_now()],
    )?;
    Ok(Some(id))
}

/// Records that `key` produced `image_id`.
pub fn store(conn: &Connection, key: &str, image_id: &str) -> Result<(), Error> {
    let now = unix_now();
    conn.execute(
        "INSERT OR REPLACE INTO build_cache(key, image_id, created, last_used) VALUES (?1, ?2, ?3, ?3)",
        params![key, image_id, now],
    )?;
    Ok(())
}

/// A file's identity for the hash cache: inode, size, mtime and ctime in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp {
    /// Inode number.
    pub ino: i64,
    /// Size in bytes.
    pub size: i64,
    /// Modification time, ns.
    pub mtime: i64,
    /// Status change time, ns (any chmod, chown, write or rename changes it).
    pub ctime: i64,
}

impl FileStamp {
    /// The stamp of a file's metadata.
    pub fn of(m: &std::fs::Metadata) -> FileStamp {
        use std::os::unix::fs::MetadataExt;
        FileStamp {
            ino: m.ino() as i64,
            size: m.size() as i64,
            mtime: m.mtime() * 1_000_000_000 + m.mtime_nsec(),
            ctime: m.ctime() * 1_000_000_000 + m.ctime_nsec(),
        }
    }
}

/// The cached content hash of `path` if its stamp is unchanged.
pub fn file_hash(conn: &Connection, path: &str, stamp: FileStamp) -> Result<Option<String>, Error> {
    let row: Option<(i64, i64, i64, i64, String)> = conn
        .prepare_cached(
            "SELECT ino, size, mtime, ctime, sha256 FROM build_file_hashes WHERE path = ?1",
        )?
        .query_row([path], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .optional()?;
    Ok(row.and_then(|(ino, size, mtime, ctime, sha)| {
        (FileStamp {
            ino,
            size,
            mtime,
            ctime,
        } == stamp)
            .then_some(sha)
    }))
}

/// Remembers a file's content hash. Files changed within the last 50 ms are not remembered: a
/// second write within the same timestamp tick (the kernel's coarse clock, a few ms) would leave
/// the stamp unchanged (git's "racy clean" problem), so they are hashed again next time.
pub fn remember_file_hash(
    conn: &Connection,
    path: &str,
    stamp: FileStamp,
    sha: &str,
) -> Result<(), Error> {
    let now_ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0);
    if now_ns - stamp.mtime.max(stamp.ctime) < 50_000_000 {
        return Ok(());
    }
    conn.prepare_cached(
        "INSERT OR REPLACE INTO build_file_hashes(path, ino, size, mtime, ctime, sha256) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![path, stamp.ino, stamp.size, stamp.mtime, stamp.ctime, sha])?;
    Ok(())
}

/// What [`prune`] removed.
#[derive(Debug, Default)]
pub struct Pruned {
    /// Cache entries dropped.
    pub entries: usize,
    /// Image ids only the cache referenced, for the caller to delete.
    pub images: Vec<String>,
}

/// Drops cache entries last used before `older_than` (all of them with `None`) and returns the
/// images that no tag and no remaining entry refer to.
pub fn prune(conn: &Connection, older_than: Option<i64>) -> Result<Pruned, Error> {
    let cutoff = older_than.unwrap_or(i64::MAX);
    let ids: Vec<String> = conn
        .prepare("SELECT DISTINCT image_id FROM build_cache WHERE last_used < ?1")?
        .query_map([cutoff], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let entries = conn.execute("DELETE FROM build_cache WHERE last_used < ?1", [cutoff])?;
    let mut images = Vec::new();
    for id in ids {
        let kept: bool = conn.query_row(
            "SELECT EXISTS(SELECT 1 FROM tags WHERE image_id = ?1)
                 OR EXISTS(SELECT 1 FROM build_cache WHERE image_id = ?1)
                 OR EXISTS(SELECT 1 FROM containers WHERE image_id = ?1)",
            [&id],
            |r| r.get(0),
        )?;
        if !kept {
            images.push(id);
        }
    }
    conn.execute(
        "DELETE FROM build_file_hashes WHERE rowid IN (SELECT rowid FROM build_file_hashes LIMIT -1 OFFSET 100000)",
        [],
    )?;
    Ok(Pruned { entries, images })
}
