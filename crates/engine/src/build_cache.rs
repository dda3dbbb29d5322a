//! The build cache, in the state database: step key → image, and a per-file metadata cache so
//! hashing the context for COPY/ADD does not re-read files whose inode, size and times are
//! unchanged; image parents (Docker's `Parent`); and the directories of `RUN
//! --mount=type=cache`.
//!
//! It lives in the engine rather than in `hako-build` because the engine's image and system
//! operations read and prune it (`images -a`, `image prune`, `system df`, `system prune`,
//! `builder prune`), and `hako-build` sits above the engine.

use crate::Error;
use rusqlite::{params, Connection, OptionalExtension};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS build_cache(
    key TEXT PRIMARY KEY,
    image_id TEXT NOT NULL,
    created INTEGER NOT NULL,
    last_used INTEGER NOT NULL,
    used_ms INTEGER NOT NULL DEFAULT 0,
    step INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS build_cache_image ON build_cache(image_id);
CREATE TABLE IF NOT EXISTS image_parents(
    id TEXT PRIMARY KEY,
    parent TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS image_parents_parent ON image_parents(parent);
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

/// Creates the tables when missing, and adds the LRU columns to a cache made before them
/// (cheaply: one query when all is there).
pub fn ensure_schema(conn: &Connection) -> Result<(), Error> {
    let have = |conn: &Connection| -> Result<bool, Error> {
        Ok(conn.query_row(
            "SELECT count(*) FROM pragma_table_info('build_cache') WHERE name = 'step'",
            [],
            |r| r.get::<_, i64>(0),
        )? > 0)
    };
    if have(conn)? && has_table(conn, "image_parents")? {
        return Ok(());
    }
    conn.execute_batch(SCHEMA)?;
    if !have(conn)? {
        conn.execute_batch(
            "ALTER TABLE build_cache ADD COLUMN used_ms INTEGER NOT NULL DEFAULT 0;
             ALTER TABLE build_cache ADD COLUMN step INTEGER NOT NULL DEFAULT 0;",
        )?;
    }
    Ok(())
}

fn has_table(conn: &Connection, name: &str) -> Result<bool, Error> {
    Ok(conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
        [name],
        |r| r.get::<_, i64>(0),
    )? > 0)
}

/// Records that `child` was built on `parent`, as Docker records an image's Parent: a parent
/// is never dangling, so pruning keeps the steps of a tagged image's build.
pub fn record_parent(conn: &Connection, child: &str, parent: &str) -> Result<(), Error> {
    conn.prepare_cached("INSERT OR REPLACE INTO image_parents(id, parent) VALUES (?1, ?2)")?
        .execute([child, parent])?;
    Ok(())
}

/// Image → parent, for the images that still exist (empty before the first build).
pub fn parents(conn: &Connection) -> Result<std::collections::HashMap<String, String>, Error> {
    if !has_table(conn, "image_parents")? {
        return Ok(Default::default());
    }
    let mut stmt =
        conn.prepare("SELECT p.id, p.parent FROM image_parents p JOIN images i ON i.id = p.id")?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Forgets cache entries and parent links of images that are gone (removed by `rmi` or an
/// image prune), so `system df` does not count them and the table does not grow.
pub fn forget_missing(conn: &Connection) -> Result<(), Error> {
    if !has_table(conn, "build_cache")? {
        return Ok(());
    }
    conn.execute_batch(
        "DELETE FROM build_cache WHERE image_id NOT IN (SELECT id FROM images);
         DELETE FROM image_parents WHERE id NOT IN (SELECT id FROM images);",
    )?;
    Ok(())
}

/// The images a tag or a container holds, and their ancestors: the cache entries of these
/// are in use, and pruning the dangling build cache keeps them (`WITH RECURSIVE kept`).
const KEPT: &str = "WITH RECURSIVE kept(id) AS (
        SELECT image_id FROM (SELECT image_id FROM tags UNION SELECT image_id FROM containers)
        UNION SELECT p.parent FROM image_parents p JOIN kept ON p.id = kept.id
    )";

/// When and where in a build an entry was last used, for least-recently-used collection:
/// every entry a build touches gets the build's start time, and its step number so that a
/// later step goes before its parent (a step whose parent is gone can never be hit again).
#[derive(Debug, Clone, Copy)]
pub struct Use {
    /// The build's start, ms since the epoch.
    pub build_ms: i64,
    /// The step's number in that build.
    pub step: usize,
}

/// Milliseconds since the epoch.
pub fn unix_now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The image cached for a step key, if it still exists; touches its LRU time.
pub fn lookup(conn: &Connection, key: &str, used: Use) -> Result<Option<String>, Error> {
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
        "UPDATE build_cache SET last_used = ?2, used_ms = ?3, step = ?4 WHERE key = ?1",
        params![key, unix_now(), used.build_ms, used.step as i64],
    )?;
    Ok(Some(id))
}

/// Records that `key` produced `image_id`.
pub fn store(conn: &Connection, key: &str, image_id: &str, used: Use) -> Result<(), Error> {
    let now = unix_now();
    conn.execute(
        "INSERT OR REPLACE INTO build_cache(key, image_id, created, last_used, used_ms, step)
         VALUES (?1, ?2, ?3, ?3, ?4, ?5)",
        params![key, image_id, now, used.build_ms, used.step as i64],
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

/// Images that hold their layers whatever the cache does: tagged ones, ones a container uses,
/// and ones no build step made (pulled, loaded, committed).
const KEEPERS: &str = "SELECT image_id FROM tags
     UNION SELECT image_id FROM containers
     UNION SELECT id FROM images WHERE id NOT IN (SELECT image_id FROM build_cache)";

/// What the build cache holds, for `system df`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// Cache entries (steps).
    pub entries: u64,
    /// Entries whose image is tagged or used by a container, or is the parent of one.
    pub active: u64,
    /// Bytes of the layers cache images hold that no image outside the cache does.
    pub size: u64,
    /// The part of `size` that pruning the whole cache would free (no tag or container keeps it).
    pub reclaimable: u64,
}

/// Sizes the build cache.
pub fn usage(conn: &Connection) -> Result<Usage, Error> {
    let (entries, active): (i64, i64) = conn.query_row(
        &format!(
            "{KEPT} SELECT count(*), coalesce(sum(image_id IN (SELECT id FROM kept)), 0)
             FROM build_cache"
        ),
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let layers_not_held_by = |holders: &str| -> Result<u64, Error> {
        let n: i64 = conn.query_row(
            &format!(
                "SELECT coalesce(sum(size), 0) FROM layers WHERE chain_id IN
                   (SELECT chain_id FROM image_layers WHERE image_id IN (SELECT image_id FROM build_cache))
                 AND chain_id NOT IN
                   (SELECT chain_id FROM image_layers WHERE image_id IN ({holders}))"
            ),
            [],
            |r| r.get(0),
        )?;
        Ok(n.max(0) as u64)
    };
    let size = layers_not_held_by(
        "SELECT id FROM images WHERE id NOT IN (SELECT image_id FROM build_cache)",
    )?;
    let reclaimable = layers_not_held_by(KEEPERS)?;
    Ok(Usage {
        entries: entries as u64,
        active: active as u64,
        size,
        reclaimable,
    })
}

/// Bytes of every layer in the store: what a prune freed is the difference before and after.
pub fn stored_layer_bytes(conn: &Connection) -> Result<u64, Error> {
    let n: i64 = conn.query_row("SELECT coalesce(sum(size), 0) FROM layers", [], |r| {
        r.get(0)
    })?;
    Ok(n.max(0) as u64)
}

/// Which entries [`prune`] drops.
#[derive(Debug, Default, Clone, Copy)]
pub struct PruneFilter {
    /// Only entries last used before this Unix time (`--filter until=`).
    pub older_than: Option<i64>,
    /// `-a`: also entries in use: steps whose image a tag or a container keeps, and the
    /// steps it was built from (removing those frees no layer, but drops them from the cache).
    pub all: bool,
}

/// What [`prune`] removed.
#[derive(Debug, Default)]
pub struct Pruned {
    /// Cache entries dropped.
    pub entries: usize,
    /// Image ids only the cache referenced, for the caller to delete.
    pub images: Vec<String>,
}

/// Drops the entries `filter` selects and returns the images that nothing (tag, container,
/// remaining entry) refers to any more, for the caller to delete.
pub fn prune(conn: &Connection, filter: PruneFilter) -> Result<Pruned, Error> {
    let cutoff = filter.older_than.unwrap_or(i64::MAX);
    forget_missing(conn)?;
    let selected = if filter.all {
        "last_used < ?1"
    } else {
        "last_used < ?1 AND image_id NOT IN (SELECT id FROM kept)"
    };
    let ids: Vec<String> = conn
        .prepare(&format!(
            "{KEPT} SELECT DISTINCT image_id FROM build_cache WHERE {selected}"
        ))?
        .query_map([cutoff], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let entries = conn.execute(
        &format!("{KEPT} DELETE FROM build_cache WHERE {selected}"),
        [cutoff],
    )?;
    // An image goes once nothing refers to it but children going too: a dropped step's
    // parent, dropped as well, goes with it.
    let mut images: Vec<String> = Vec::new();
    loop {
        let mut more = false;
        for id in &ids {
            if !images.contains(id) && !held(conn, id, &images)? {
                images.push(id.clone());
                more = true;
            }
        }
        if !more {
            break;
        }
    }
    conn.execute(
        "DELETE FROM build_file_hashes WHERE rowid IN (SELECT rowid FROM build_file_hashes LIMIT -1 OFFSET 100000)",
        [],
    )?;
    Ok(Pruned { entries, images })
}

/// Whether a tag, a cache entry, a container or a child other than `going` holds the image.
fn held(conn: &Connection, image_id: &str, going: &[String]) -> Result<bool, Error> {
    let direct: bool = conn.query_row(
        "SELECT EXISTS(SELECT 1 FROM tags WHERE image_id = ?1)
             OR EXISTS(SELECT 1 FROM build_cache WHERE image_id = ?1)
             OR EXISTS(SELECT 1 FROM containers WHERE image_id = ?1)",
        [image_id],
        |r| r.get(0),
    )?;
    if direct {
        return Ok(true);
    }
    let mut stmt = conn.prepare_cached(
        "SELECT p.id FROM image_parents p JOIN images i ON i.id = p.id WHERE p.parent = ?1",
    )?;
    let children = stmt.query_map([image_id], |r| r.get::<_, String>(0))?;
    for c in children {
        if !going.contains(&c?) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Least-recently-used collection: drops the oldest entries (a later step of the same build
/// before its parent) and the oldest cache mounts of `root` (`RUN --mount=type=cache`) until
/// what only the cache keeps is at most `max` bytes. Images left unreferenced are deleted
/// through `remove`, except `keep` (the image a build just produced, which stays as an
/// untagged image). Returns the number of entries and mounts dropped.
pub fn collect(
    conn: &Connection,
    root: Option<&std::path::Path>,
    max: u64,
    keep: Option<&str>,
    remove: &mut dyn FnMut(&str) -> Result<(), Error>,
) -> Result<usize, Error> {
    let mut mounts = root.map(list_cache_dirs).unwrap_or_default();
    // Oldest last, to pop.
    mounts.sort_by_key(|m| std::cmp::Reverse(m.2));
    let mut dropped = 0;
    loop {
        let mount_bytes: u64 = mounts.iter().map(|m| m.1).sum();
        if usage(conn)?.reclaimable + mount_bytes <= max {
            break;
        }
        // Entries in use hold layers a tag or a container keeps anyway: dropping them would
        // free nothing and only lose the steps a rebuild of a tagged image reuses.
        let oldest: Option<(String, String, i64)> = conn
            .query_row(
                &format!(
                    "{KEPT} SELECT key, image_id, used_ms FROM build_cache
                     WHERE image_id NOT IN (SELECT id FROM kept)
                     ORDER BY used_ms ASC, step DESC LIMIT 1"
                ),
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        let mount_first = match (&oldest, mounts.last()) {
            (_, None) => false,
            (None, Some(_)) => true,
            (Some((_, _, used_ms)), Some(m)) => m.2 * 1000 < *used_ms,
        };
        if mount_first {
            let (dir, _, _) = mounts.pop().expect("checked above");
            remove_cache_dir(&dir)?;
            dropped += 1;
            continue;
        }
        let Some((key, image, _)) = oldest else { break };
        conn.execute("DELETE FROM build_cache WHERE key = ?1", [&key])?;
        dropped += 1;
        if keep != Some(image.as_str()) && !held(conn, &image, &[])? {
            remove(&image)?;
        }
    }
    Ok(dropped)
}

/// Where the maximum cache size comes from, in order: `HAKO_BUILD_CACHE_MAX`, then
/// `builder.gc.defaultKeepStorage` in `ROOT/daemon.json` (the key Docker's daemon.json uses),
/// then [`DEFAULT_MAX`]. Sizes are Docker's (`512MB`, `20GB`, `1.5g`, plain bytes).
pub fn configured_max(root: &std::path::Path) -> Result<u64, Error> {
    let parse = |s: &str, from: &str| -> Result<u64, Error> {
        hako_base::size::parse_ram(s.trim())
            .map(|n| n.max(0) as u64)
            .map_err(|_| Error::Invalid(format!("{from}: invalid build cache size {s:?}")))
    };
    if let Ok(v) = std::env::var("HAKO_BUILD_CACHE_MAX") {
        return parse(&v, "HAKO_BUILD_CACHE_MAX");
    }
    let path = root.join("daemon.json");
    match std::fs::read(&path) {
        Ok(bytes) => {
            let v: serde_json::Value = serde_json::from_slice(&bytes)
                .map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))?;
            match &v["builder"]["gc"]["defaultKeepStorage"] {
                serde_json::Value::String(s) => parse(s, &path.display().to_string()),
                serde_json::Value::Number(n) => Ok(n.as_u64().unwrap_or(0)),
                serde_json::Value::Null => Ok(DEFAULT_MAX),
                other => Err(Error::Invalid(format!(
                    "{}: builder.gc.defaultKeepStorage: expected a size, got {other}",
                    path.display()
                ))),
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(DEFAULT_MAX),
        Err(e) => Err(Error::io(format!("read {}", path.display()), e)),
    }
}

/// The cache size kept when nothing configures one (Docker Desktop's default keep-storage).
pub const DEFAULT_MAX: u64 = 20 << 30;

/// The directory of the cache mount `id`.
pub fn cache_dir(root: &Path, id: &str) -> PathBuf {
    use sha2::Digest as _;
    mounts_root(root).join(hex::encode(sha2::Sha256::digest(id.as_bytes())))
}

/// Where cache mounts live.
pub fn mounts_root(root: &Path) -> PathBuf {
    root.join("build-cache").join("mounts")
}

/// Cache mounts: (directory, bytes, last used as Unix seconds).
pub fn list_cache_dirs(root: &Path) -> Vec<(PathBuf, u64, i64)> {
    let Ok(rd) = std::fs::read_dir(mounts_root(root)) else {
        return Vec::new();
    };
    rd.filter_map(|e| e.ok())
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| {
            use std::os::unix::fs::MetadataExt;
            let p = e.path();
            let used = std::fs::metadata(&p).map(|m| m.mtime()).unwrap_or(0);
            (p.clone(), du_blocks(&p), used)
        })
        .collect()
}

/// Removes the cache mounts last used before `older_than` (all with `None`), and what removals
/// cut short left. Returns (ids removed, bytes).
pub fn prune_cache_dirs(root: &Path, older_than: Option<i64>) -> Result<(Vec<String>, u64), Error> {
    let mut gone = Vec::new();
    let mut bytes = 0;
    for (dir, size, used) in list_cache_dirs(root) {
        if older_than.is_some_and(|t| used >= t) {
            continue;
        }
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        remove_cache_dir(&dir)?;
        gone.push(name);
        bytes += size;
    }
    if let Ok(rd) = std::fs::read_dir(mounts_root(root)) {
        for e in rd.flatten() {
            if e.file_name().to_string_lossy().starts_with(".gone-") {
                std::fs::remove_dir_all(e.path())
                    .map_err(|err| Error::io(format!("remove {}", e.path().display()), err))?;
            }
        }
    }
    Ok((gone, bytes))
}

/// Removes one cache mount: renamed to `.gone-…` first, so a removal cut short never leaves a
/// half-emptied cache under a valid name (the next prune finishes it).
pub fn remove_cache_dir(dir: &Path) -> Result<(), Error> {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let parent = dir.parent().unwrap_or(Path::new("."));
    let doomed = parent.join(format!(".gone-{name}"));
    std::fs::rename(dir, &doomed).map_err(|e| Error::io(format!("remove {}", dir.display()), e))?;
    std::fs::remove_dir_all(&doomed)
        .map_err(|e| Error::io(format!("remove {}", doomed.display()), e))
}

/// Bytes allocated below `p` (blocks, as `du` counts them), without following symlinks.
fn du_blocks(p: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(m) = std::fs::symlink_metadata(p) else {
        return 0;
    };
    if !m.is_dir() {
        return m.blocks() * 512;
    }
    let mut total = m.blocks() * 512;
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            total += du_blocks(&e.path());
        }
    }
    total
}
