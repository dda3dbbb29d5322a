//! The image store proper: database, blobs, layers and the rmi/tag logic.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use nix::fcntl::{Flock, FlockArg};
use oci_spec::image::{
    Arch, Config, Descriptor, HistoryBuilder, ImageConfiguration, ImageConfigurationBuilder,
    ImageManifestBuilder, MediaType, Os, RootFsBuilder, Sha256Digest,
};
use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};
use sha2::{Digest, Sha256};

use crate::extract::{extract_layer, io_ctx};
use crate::journal::crash_point;
use crate::{changes, time, Error, Reference};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS images(
    id TEXT PRIMARY KEY,
    config_digest TEXT NOT NULL,
    manifest_digest TEXT NOT NULL,
    created TEXT,
    size INTEGER NOT NULL,
    added INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS tags(
    name TEXT PRIMARY KEY,
    image_id TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS tags_image_id ON tags(image_id);
CREATE TABLE IF NOT EXISTS layers(
    chain_id TEXT PRIMARY KEY,
    diff_id TEXT NOT NULL,
    blob_digest TEXT NOT NULL,
    size INTEGER NOT NULL,
    parent TEXT
);
CREATE TABLE IF NOT EXISTS image_layers(
    image_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    chain_id TEXT NOT NULL,
    PRIMARY KEY(image_id, position)
);
CREATE INDEX IF NOT EXISTS image_layers_chain_id ON image_layers(chain_id);
CREATE TABLE IF NOT EXISTS repo_digests(
    repository TEXT NOT NULL,
    digest TEXT NOT NULL,
    image_id TEXT NOT NULL,
    PRIMARY KEY(repository, digest)
);
CREATE INDEX IF NOT EXISTS repo_digests_image_id ON repo_digests(image_id);
CREATE TABLE IF NOT EXISTS layer_sync(
    chain_id TEXT PRIMARY KEY,
    boot_id TEXT NOT NULL,
    committed INTEGER NOT NULL
);
";

/// Options for [`ImageStore::import`] (`docker import`).
#[derive(Clone, Debug, Default)]
pub struct ImportOptions {
    /// Tag to give the new image.
    pub reference: Option<Reference>,
    /// Dockerfile instructions (`docker import --change`): CMD, ENTRYPOINT,
    /// ENV, EXPOSE, LABEL, STOPSIGNAL, USER, VOLUME, WORKDIR.
    pub changes: Vec<String>,
    /// Commit message recorded in the history instead of
    /// "Imported from <source>".
    pub message: Option<String>,
    /// Where the tarball came from (a path, a URL or "-"), for the history.
    pub source: String,
    /// The platform to record (`import --platform`); this host's when `None`.
    pub platform: Option<crate::ImagePlatform>,
}

/// A resolved image, ready to be run.
#[derive(Clone, Debug)]
pub struct Image {
    /// `sha256:<hex>` of the config blob.
    pub id: String,
    /// The OCI image configuration.
    pub config: ImageConfiguration,
    /// Unpacked layer directories, bottom → top (overlayfs wants them the
    /// other way round in `lowerdir`).
    pub layers: Vec<PathBuf>,
    /// Sum of the uncompressed layer sizes in bytes.
    pub size: u64,
    /// Tags pointing at this image.
    pub repo_tags: Vec<Reference>,
}

/// One row of `hako images`.
#[derive(Clone, Debug)]
pub struct ImageSummary {
    /// `sha256:<hex>`.
    pub id: String,
    /// Tags pointing at this image, sorted.
    pub repo_tags: Vec<Reference>,
    /// Creation time from the config (RFC 3339).
    pub created: Option<String>,
    /// Sum of the uncompressed layer sizes in bytes.
    pub size: u64,
}

/// What [`ImageStore::remove`] did, in order, like `docker rmi` prints it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RemoveEvent {
    /// A tag was removed (familiar form, e.g. `busybox:latest`).
    Untagged(String),
    /// The image was deleted (full `sha256:` ID).
    Deleted(String),
}

/// A container using an image, as the `in_use` callback of
/// [`ImageStore::remove`] reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageUser {
    /// Short container ID.
    pub container: String,
    /// Whether it is running (or being started): then not even `force`
    /// removes the image.
    pub running: bool,
}

/// Names a container using the image with the given ID, if any; runs inside
/// the store's write transaction.
pub type InUseFn<'a> = &'a dyn Fn(&Connection, &str) -> rusqlite::Result<Option<ImageUser>>;

/// What [`ImageStore::gc`] removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Unreferenced blobs deleted.
    pub blobs: usize,
    /// Unreferenced layer directories deleted.
    pub layers: usize,
    /// Bytes those took on disk (file sizes).
    pub bytes: u64,
}

/// Sum of the regular file sizes under `p`, not following symlinks.
fn tree_size(p: &Path) -> u64 {
    let Ok(m) = fs::symlink_metadata(p) else {
        return 0;
    };
    if !m.is_dir() {
        return if m.is_file() { m.len() } else { 0 };
    }
    fs::read_dir(p)
        .map(|d| d.flatten().map(|e| tree_size(&e.path())).sum())
        .unwrap_or(0)
}

/// Handle on the store under one state root.
pub struct ImageStore {
    root: PathBuf,
    conn: Connection,
}

impl std::fmt::Debug for ImageStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageStore")
            .field("root", &self.root)
            .finish()
    }
}

/// Removes a temporary file or directory unless it was moved into place.
pub(crate) struct TmpGuard {
    pub(crate) path: Option<PathBuf>,
}

impl TmpGuard {
    pub(crate) fn path(&self) -> &Path {
        self.path.as_deref().unwrap_or(Path::new(""))
    }
    pub(crate) fn disarm(&mut self) {
        self.path = None;
    }
}

impl Drop for TmpGuard {
    fn drop(&mut self) {
        if let Some(p) = self.path.take() {
            remove_any(&p);
        }
    }
}

/// A fresh `tmp/<pid>-<random>` path; the pid lets `open` sweep it once
/// this process is gone.
pub(crate) fn tmp_path_in(root: &Path) -> Result<PathBuf, Error> {
    let mut r = [0u8; 8];
    getrandom::fill(&mut r).map_err(|e| Error::Io(io::Error::other(e.to_string())))?;
    Ok(root
        .join("tmp")
        .join(format!("{}-{}", std::process::id(), hex::encode(r))))
}

pub(crate) fn remove_any(p: &Path) {
    match fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => {
            let _ = fs::remove_dir_all(p);
        }
        Ok(_) => {
            let _ = fs::remove_file(p);
        }
        Err(_) => {}
    }
}

pub(crate) fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

pub(crate) fn fsync_dir(dir: &Path) -> Result<(), Error> {
    File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(|e| io_ctx(e, "fsync", dir))
}

/// Go's GOARCH spelling of the architecture this binary was built for.
pub(crate) fn go_arch() -> Arch {
    let a = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "x86" => "386",
        "aarch64" => "arm64",
        "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
        "powerpc64" => "ppc64",
        "loongarch64" => "loong64",
        "mips64" if cfg!(target_endian = "little") => "mips64le",
        "mips" if cfg!(target_endian = "little") => "mipsle",
        other => other,
    };
    Arch::from(a)
}

pub(crate) fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let next = match out.last() {
            None => d.clone(),
            Some(parent) => format!("sha256:{}", sha256_hex(format!("{parent} {d}").as_bytes())),
        };
        out.push(next);
    }
    out
}

pub(crate) fn hex_part(digest: &str) -> &str {
    digest.strip_prefix("sha256:").unwrap_or(digest)
}

pub(crate) fn short_id(id: &str) -> String {
    hex_part(id).chars().take(12).collect()
}

fn is_hex(s: &str) -> bool {
    s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

pub(crate) fn spec_err(e: oci_spec::OciSpecError) -> Error {
    Error::Corrupt(format!("building OCI metadata: {e}"))
}

/// How a name passed to resolve/remove matched.
enum Match {
    Id(String),
    Tag(String, Reference),
}

impl Match {
    fn id(&self) -> &str {
        match self {
            Match::Id(id) | Match::Tag(id, _) => id,
        }
    }
}

impl ImageStore {
    /// Opens (creating if needed) the store under `root`.
    ///
    /// Cheap: creates missing directories and tables, sweeps the few
    /// leftovers in `tmp/` whose owning process is gone, and finishes the
    /// removals and installations such a process journaled (`journal.rs`).
    pub fn open(root: &Path) -> Result<Self, Error> {
        for d in ["blobs/sha256", "layers", "tmp"] {
            let p = root.join(d);
            fs::create_dir_all(&p).map_err(|e| io_ctx(e, "create", &p))?;
        }
        let journals = crate::journal::sweep_tmp(&root.join("tmp"));
        spread_inodes(&root.join("tmp"));
        let conn = Connection::open(root.join("hako.db"))?;
        conn.busy_timeout(Duration::from_secs(5))?;
        let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(Error::Corrupt(format!(
                "cannot switch database to WAL mode (got {mode})"
            )));
        }
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        // Skip the DDL (and its write lock) when the schema is already there:
        // open() is on the hot path of every `hako run`.
        let have: i64 = conn.query_row(
            "SELECT count(*) FROM sqlite_master WHERE type='table' AND name='layer_sync'",
            [],
            |r| r.get(0),
        )?;
        if have == 0 {
            conn.execute_batch(SCHEMA)?;
        }
        let store = ImageStore {
            root: root.to_path_buf(),
            conn,
        };
        store.settle_pending(crate::durable::boot_id, time::unix_now())?;
        if !journals.is_empty() {
            store.replay(&journals);
        }
        Ok(store)
    }

    /// The state root this store lives in.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The shared database connection; other crates keep their own tables
    /// in the same database.
    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    /// Path of a blob by digest (`sha256:<hex>` or bare hex).
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        self.root.join("blobs/sha256").join(hex_part(digest))
    }

    /// Unpacked directory of the layer with this chain ID.
    pub fn layer_path(&self, chain_id: &str) -> PathBuf {
        self.root
            .join("layers")
            .join(hex_part(chain_id))
            .join("diff")
    }

    pub(crate) fn tmp_path(&self) -> Result<PathBuf, Error> {
        tmp_path_in(&self.root)
    }

    pub(crate) fn lock(&self) -> Result<Flock<File>, Error> {
        let p = self.root.join("store.lock");
        let f = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&p)
            .map_err(|e| io_ctx(e, "open", &p))?;
        Flock::lock(f, FlockArg::LockExclusive)
            .map_err(|(_, e)| io_ctx(io::Error::from(e), "lock", &p))
    }

    pub(crate) fn begin(&self) -> Result<Transaction<'_>, Error> {
        Ok(Transaction::new_unchecked(
            &self.conn,
            TransactionBehavior::Immediate,
        )?)
    }

    /// Moves `tmp` to blobs/sha256/<hex> unless that blob already exists
    /// (content addressing makes the existing one equally good).
    pub(crate) fn put_blob_file(&self, tmp: &mut TmpGuard, hex: &str) -> Result<(), Error> {
        let dst = self.blob_path(hex);
        if !dst.exists() {
            fs::rename(tmp.path(), &dst).map_err(|e| io_ctx(e, "store blob", &dst))?;
            tmp.disarm();
        }
        Ok(())
    }

    pub(crate) fn put_blob_bytes(&self, data: &[u8]) -> Result<String, Error> {
        let hex = sha256_hex(data);
        if self.blob_path(&hex).exists() {
            return Ok(hex);
        }
        let mut tmp = TmpGuard {
            path: Some(self.tmp_path()?),
        };
        let mut f = File::options()
            .write(true)
            .create_new(true)
            .open(tmp.path())
            .map_err(|e| io_ctx(e, "create", tmp.path()))?;
        f.write_all(data)
            .and_then(|_| f.sync_all())
            .map_err(|e| io_ctx(e, "write", tmp.path()))?;
        self.put_blob_file(&mut tmp, &hex)?;
        Ok(hex)
    }

    /// Imports a rootfs tarball (plain, gzip or zstd, detected by magic
    /// bytes) as a one-layer image.
    ///
    /// On any error nothing is left behind in the store.
    pub fn import(&self, reader: impl Read, opts: &ImportOptions) -> Result<Image, Error> {
        if let Some(r) = &opts.reference {
            check_taggable(r)?;
        }
        // Validate the changes before spending time on the tarball.
        let mut run_config = Config::default();
        changes::apply(&mut run_config, &opts.changes)?;
        let platform = opts
            .platform
            .clone()
            .unwrap_or_else(crate::ImagePlatform::host);
        platform.check_os()?;

        let mut work = TmpGuard {
            path: Some(self.tmp_path()?),
        };
        fs::create_dir(work.path()).map_err(|e| io_ctx(e, "create", work.path()))?;
        let diff_dir = work.path().join("diff");
        fs::create_dir(&diff_dir).map_err(|e| io_ctx(e, "create", &diff_dir))?;
        let mut blob_tmp = TmpGuard {
            path: Some(self.tmp_path()?),
        };
        let ex = extract_layer(reader, blob_tmp.path(), &diff_dir)?;

        let diff_id = format!("sha256:{}", ex.diff_hex);
        let chain_id = chain_ids(std::slice::from_ref(&diff_id))
            .pop()
            .unwrap_or_else(|| diff_id.clone());
        let created = time::now_rfc3339();
        let comment = match &opts.message {
            Some(m) if !m.is_empty() => m.clone(),
            _ => format!("Imported from {}", opts.source),
        };
        let history = HistoryBuilder::default()
            .created(created.clone())
            .comment(comment)
            .build()
            .map_err(spec_err)?;
        let rootfs = RootFsBuilder::default()
            .typ("layers")
            .diff_ids(vec![diff_id.clone()])
            .build()
            .map_err(spec_err)?;
        let mut builder = ImageConfigurationBuilder::default()
            .created(created.clone())
            .architecture(Arch::from(platform.architecture.as_str()))
            .os(Os::Linux)
            .rootfs(rootfs)
            .history(vec![history]);
        if let Some(v) = &platform.variant {
            builder = builder.variant(v.clone());
        }
        if !opts.changes.is_empty() {
            builder = builder.config(run_config);
        }
        let config = builder.build().map_err(spec_err)?;
        let config_bytes = serde_json::to_vec(&config)
            .map_err(|e| Error::Corrupt(format!("serializing config: {e}")))?;
        let id_hex = sha256_hex(&config_bytes);
        let id = format!("sha256:{id_hex}");

        let digest = |hex: &str| Sha256Digest::from_str(hex).map_err(spec_err);
        let manifest = ImageManifestBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageManifest)
            .config(Descriptor::new(
                MediaType::ImageConfig,
                config_bytes.len() as u64,
                digest(&id_hex)?,
            ))
            .layers(vec![Descriptor::new(
                ex.compression.media_type(),
                ex.blob_size,
                digest(&ex.blob_hex)?,
            )])
            .build()
            .map_err(spec_err)?;
        let manifest_bytes = serde_json::to_vec(&manifest)
            .map_err(|e| Error::Corrupt(format!("serializing manifest: {e}")))?;

        let _lock = self.lock()?;
        let tx = self.begin()?;
        let blob_digest = format!("sha256:{}", ex.blob_hex);
        let manifest_digest = format!("sha256:{}", sha256_hex(&manifest_bytes));
        let _journal = self.journal(
            [blob_digest.as_str(), id.as_str(), manifest_digest.as_str()],
            [chain_id.as_str()],
        )?;
        let exists: bool = tx
            .query_row("SELECT 1 FROM images WHERE id = ?1", [&id], |_| Ok(()))
            .optional()?
            .is_some();
        if !exists {
            let layer_root = self.root.join("layers").join(hex_part(&chain_id));
            let known: bool = tx
                .query_row(
                    "SELECT 1 FROM layers WHERE chain_id = ?1",
                    [&chain_id],
                    |_| Ok(()),
                )
                .optional()?
                .is_some();
            if !(known && layer_root.join("diff").is_dir()) {
                if fs::symlink_metadata(&layer_root).is_ok() {
                    // Left over from a crash between rename and commit.
                    self.discard(&layer_root)?;
                }
                fs::rename(work.path(), &layer_root)
                    .map_err(|e| io_ctx(e, "install layer", &layer_root))?;
                work.disarm();
                tx.execute(
                    "INSERT OR REPLACE INTO layers(chain_id, diff_id, blob_digest, size, parent)
                     VALUES (?1, ?2, ?3, ?4, NULL)",
                    params![
                        chain_id,
                        diff_id,
                        format!("sha256:{}", ex.blob_hex),
                        ex.diff_size as i64
                    ],
                )?;
                crate::durable::record_pending(&tx, &chain_id)?;
            }
            self.put_blob_file(&mut blob_tmp, &ex.blob_hex)?;
            self.put_blob_bytes(&config_bytes)?;
            let manifest_hex = self.put_blob_bytes(&manifest_bytes)?;
            fsync_dir(&self.root.join("blobs/sha256"))?;
            tx.execute(
                "INSERT INTO images(id, config_digest, manifest_digest, created, size, added)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    id,
                    id,
                    format!("sha256:{manifest_hex}"),
                    created,
                    ex.diff_size as i64,
                    time::unix_now()
                ],
            )?;
            tx.execute(
                "INSERT INTO image_layers(image_id, position, chain_id) VALUES (?1, 0, ?2)",
                params![id, chain_id],
            )?;
            crash_point("install:renamed");
        }
        if let Some(r) = &opts.reference {
            tx.execute(
                "INSERT OR REPLACE INTO tags(name, image_id) VALUES (?1, ?2)",
                params![r.to_string(), id],
            )?;
        }
        tx.commit()?;
        self.load(&id)
    }

    /// Moves a directory out of the way atomically, then deletes it; if the
    /// deletion is interrupted the remains are swept from tmp/ later.
    pub(crate) fn discard(&self, path: &Path) -> Result<(), Error> {
        let tmp = self.tmp_path()?;
        fs::rename(path, &tmp).map_err(|e| io_ctx(e, "remove", path))?;
        remove_any(&tmp);
        Ok(())
    }

    /// Garbage-collects the store: removes blobs and unpacked layers that no
    /// image record references, such as those a crash left behind between a
    /// removal's commit and its file deletions, or between a layer's rename
    /// into place and the commit that would have recorded it.
    ///
    /// Runs under the store lock, so no commit can be halfway through; what
    /// the database references is never touched. Each removal is a single
    /// unlink or a rename into `tmp/`, so a crash during GC leaves nothing
    /// half-deleted where a later pull or run would look.
    pub fn gc(&self) -> Result<GcReport, Error> {
        let _lock = self.lock()?;
        let mut blobs: HashSet<String> = HashSet::new();
        let mut stmt = self.conn.prepare(
            "SELECT config_digest FROM images UNION SELECT manifest_digest FROM images
             UNION SELECT blob_digest FROM layers",
        )?;
        for d in stmt.query_map([], |r| r.get::<_, String>(0))? {
            blobs.insert(hex_part(&d?).to_string());
        }
        let mut layers: HashSet<String> = HashSet::new();
        let mut stmt = self.conn.prepare("SELECT chain_id FROM layers")?;
        for c in stmt.query_map([], |r| r.get::<_, String>(0))? {
            layers.insert(hex_part(&c?).to_string());
        }
        let mut report = GcReport::default();
        let dir = self.root.join("blobs/sha256");
        for e in fs::read_dir(&dir).map_err(|e| io_ctx(e, "read", &dir))? {
            let e = e.map_err(|e| io_ctx(e, "read", &dir))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if blobs.contains(&name) {
                continue;
            }
            let size = e.metadata().map(|m| m.len()).unwrap_or(0);
            fs::remove_file(e.path()).map_err(|err| io_ctx(err, "remove", &e.path()))?;
            report.blobs += 1;
            report.bytes += size;
        }
        let dir = self.root.join("layers");
        for e in fs::read_dir(&dir).map_err(|e| io_ctx(e, "read", &dir))? {
            let e = e.map_err(|e| io_ctx(e, "read", &dir))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if layers.contains(&name) {
                continue;
            }
            report.bytes += tree_size(&e.path());
            self.discard(&e.path())?;
            report.layers += 1;
        }
        Ok(report)
    }

    /// All images, newest first.
    pub fn list(&self) -> Result<Vec<ImageSummary>, Error> {
        let mut tags: HashMap<String, Vec<Reference>> = HashMap::new();
        let mut stmt = self.conn.prepare("SELECT name, image_id FROM tags")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        for row in rows {
            let (name, id) = row?;
            if let Ok(r) = Reference::parse(&name) {
                tags.entry(id).or_default().push(r);
            }
        }
        let mut stmt = self
            .conn
            .prepare("SELECT id, created, size, added FROM images")?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Option<String>>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, created, size, added) = row?;
            let mut repo_tags = tags.remove(&id).unwrap_or_default();
            repo_tags.sort_by_key(|r| r.to_string());
            out.push((
                created.as_deref().map(time::sort_key),
                added,
                ImageSummary {
                    id,
                    repo_tags,
                    created,
                    size: size as u64,
                },
            ));
        }
        out.sort_by(|a, b| (&b.0, b.1).cmp(&(&a.0, a.1)));
        Ok(out.into_iter().map(|(_, _, s)| s).collect())
    }

    /// The chain IDs of every image, bottom first, keyed by image ID: one
    /// query, for `hako images` to tell intermediate images from the rest.
    pub fn all_layer_chains(&self) -> Result<HashMap<String, Vec<String>>, Error> {
        let mut stmt = self
            .conn
            .prepare("SELECT image_id, chain_id FROM image_layers ORDER BY image_id, position")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        let mut out: HashMap<String, Vec<String>> = HashMap::new();
        for row in rows {
            let (id, chain) = row?;
            out.entry(id).or_default().push(chain);
        }
        Ok(out)
    }

    /// Finds an image by tag (`busybox`, `busybox:1`,
    /// `docker.io/library/busybox:latest`), by manifest digest
    /// (`busybox@sha256:…`), by full ID (`sha256:<hex>` or 64 hex), or by a
    /// unique ID prefix.
    pub fn resolve(&self, name_or_id: &str) -> Result<Image, Error> {
        let m = self.lookup(name_or_id)?;
        self.load(m.id())
    }

    fn lookup(&self, name: &str) -> Result<Match, Error> {
        let not_found = || Error::NotFound(name.to_string());
        if let Some(hex) = name.strip_prefix("sha256:") {
            if hex.is_empty() || hex.len() > 64 || !is_hex(hex) {
                return Err(not_found());
            }
            return self.by_prefix(hex)?.map(Match::Id).ok_or_else(not_found);
        }
        if let Ok(r) = Reference::parse(name) {
            if let Some(d) = r.digest() {
                let by_repo: Option<String> = self
                    .conn
                    .query_row(
                        "SELECT image_id FROM repo_digests WHERE repository = ?1 AND digest = ?2",
                        [r.repository().as_str(), d],
                        |row| row.get(0),
                    )
                    .optional()?;
                let id: Option<String> = match by_repo {
                    Some(id) => Some(id),
                    None => self
                        .conn
                        .query_row(
                            "SELECT id FROM images WHERE manifest_digest = ?1 OR id = ?1
                             ORDER BY added DESC LIMIT 1",
                            [d],
                            |row| row.get(0),
                        )
                        .optional()?,
                };
                return id.map(Match::Id).ok_or_else(not_found);
            }
            let id: Option<String> = self
                .conn
                .query_row(
                    "SELECT image_id FROM tags WHERE name = ?1",
                    [r.to_string()],
                    |row| row.get(0),
                )
                .optional()?;
            if let Some(id) = id {
                return Ok(Match::Tag(id, r));
            }
        }
        // Like docker, anything hex that is not a known tag may be an ID prefix.
        if !name.is_empty() && name.len() <= 64 && is_hex(name) {
            if let Some(id) = self.by_prefix(name)? {
                return Ok(Match::Id(id));
            }
        }
        Err(not_found())
    }

    fn by_prefix(&self, hex: &str) -> Result<Option<String>, Error> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id FROM images WHERE id GLOB ?1 LIMIT 2")?;
        let ids: Vec<String> = stmt
            .query_map([format!("sha256:{hex}*")], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        match ids.len() {
            0 => Ok(None),
            1 => Ok(ids.into_iter().next()),
            _ => Err(Error::Ambiguous(hex.to_string())),
        }
    }

    fn tags_of(&self, id: &str) -> Result<Vec<Reference>, Error> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT name FROM tags WHERE image_id = ?1 ORDER BY name")?;
        let names: Vec<String> = stmt
            .query_map([id], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        Ok(names
            .iter()
            .filter_map(|n| Reference::parse(n).ok())
            .collect())
    }

    pub(crate) fn load(&self, id: &str) -> Result<Image, Error> {
        let (config_digest, size): (String, i64) = self
            .conn
            .query_row(
                "SELECT config_digest, size FROM images WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?
            .ok_or_else(|| Error::NotFound(id.to_string()))?;
        let path = self.blob_path(&config_digest);
        let f = File::open(&path).map_err(|e| io_ctx(e, "open config", &path))?;
        let config = ImageConfiguration::from_reader(io::BufReader::new(f))
            .map_err(|e| Error::Corrupt(format!("config {}: {e}", path.display())))?;
        let mut stmt = self.conn.prepare_cached(
            "SELECT chain_id FROM image_layers WHERE image_id = ?1 ORDER BY position",
        )?;
        let layers = stmt
            .query_map([id], |r| r.get::<_, String>(0))?
            .map(|c| c.map(|c| self.layer_path(&c)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Image {
            id: id.to_string(),
            config,
            layers,
            size: size as u64,
            repo_tags: self.tags_of(id)?,
        })
    }

    /// Points `reference` at an image (given by ID, ID prefix or another
    /// tag), moving the tag if it pointed elsewhere.
    pub fn tag(&self, image_id: &str, reference: &Reference) -> Result<(), Error> {
        check_taggable(reference)?;
        let _lock = self.lock()?;
        let tx = self.begin()?;
        let id = self.lookup(image_id)?.id().to_string();
        tx.execute(
            "INSERT OR REPLACE INTO tags(name, image_id) VALUES (?1, ?2)",
            params![reference.to_string(), id],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// `docker rmi` for one argument.
    ///
    /// By tag: the tag is removed, and the image with it when that was its
    /// last tag. By ID: the image is deleted with all its tags; tags in
    /// several repositories need `force`.
    ///
    /// An image a container uses (as `in_use` reports) is never deleted,
    /// because the container's root filesystem stacks on its layers. Without
    /// `force` that is refused; with it the image is untagged and stays as a
    /// `<none>` image, which `image prune` removes once no container uses it.
    /// By ID, an image of a running container is refused even with `force`.
    /// `in_use` runs inside the write transaction, so no container can start
    /// using the image between the check and the deletion.
    pub fn remove(
        &self,
        name_or_id: &str,
        force: bool,
        in_use: InUseFn<'_>,
    ) -> Result<Vec<RemoveEvent>, Error> {
        let _lock = self.lock()?;
        let tx = self.begin()?;
        let m = self.lookup(name_or_id)?;
        let id = m.id().to_string();
        let tags = self.tags_of(&id)?;
        let mut events = Vec::new();
        let user = match &m {
            Match::Tag(_, r) if tags.len() > 1 => {
                tx.execute("DELETE FROM tags WHERE name = ?1", [r.to_string()])?;
                events.push(RemoveEvent::Untagged(r.familiar()));
                tx.commit()?;
                return Ok(events);
            }
            Match::Tag(..) => {
                let user = in_use(&self.conn, &id)?;
                if let (Some(u), false) = (&user, force) {
                    return Err(Error::ReferenceInUse {
                        reference: name_or_id.to_string(),
                        container: u.container.clone(),
                        image: short_id(&id),
                    });
                }
                user
            }
            Match::Id(_) => {
                let user = in_use(&self.conn, &id)?;
                if let Some(u) = &user {
                    if u.running || !force {
                        return Err(Error::InUse {
                            image: short_id(&id),
                            container: u.container.clone(),
                            running: u.running,
                        });
                    }
                }
                let repos: HashSet<String> = tags.iter().map(Reference::repository).collect();
                if repos.len() > 1 && !force {
                    return Err(Error::Conflict(format!(
                        "conflict: unable to delete {} (must be forced) - image is referenced in multiple repositories",
                        short_id(&id)
                    )));
                }
                user
            }
        };
        for t in &tags {
            tx.execute("DELETE FROM tags WHERE name = ?1", [t.to_string()])?;
            events.push(RemoveEvent::Untagged(t.familiar()));
        }
        if user.is_some() {
            tx.commit()?;
            return Ok(events);
        }
        let doomed = self.delete_image_rows(&id)?;
        let _journal = self.journal_removal(&doomed)?;
        tx.commit()?;
        events.push(RemoveEvent::Deleted(id));
        self.unlink(doomed);
        Ok(events)
    }

    /// `image prune` for one image (full ID): removes it with all its tags
    /// unless `in_use` names a container for it, checked inside the write
    /// transaction so no container can start using it in between. `None`
    /// when it is in use (or already gone).
    pub fn remove_unused(
        &self,
        id: &str,
        in_use: InUseFn<'_>,
    ) -> Result<Option<Vec<RemoveEvent>>, Error> {
        let _lock = self.lock()?;
        let tx = self.begin()?;
        if !self.has_image(id)? || in_use(&self.conn, id)?.is_some() {
            return Ok(None);
        }
        let mut events = Vec::new();
        for t in self.tags_of(id)? {
            tx.execute("DELETE FROM tags WHERE name = ?1", [t.to_string()])?;
            events.push(RemoveEvent::Untagged(t.familiar()));
        }
        let doomed = self.delete_image_rows(id)?;
        let _journal = self.journal_removal(&doomed)?;
        tx.commit()?;
        events.push(RemoveEvent::Deleted(id.to_string()));
        self.unlink(doomed);
        Ok(Some(events))
    }

    /// Journals a removal before its rows are committed (see `journal.rs`).
    pub(crate) fn journal_removal(
        &self,
        doomed: &Doomed,
    ) -> Result<crate::journal::Journal, Error> {
        self.journal(
            doomed.blobs.iter().map(String::as_str),
            doomed.layers.iter().map(String::as_str),
        )
    }

    /// Deletes the files of committed removals; failures only waste space
    /// until [`ImageStore::gc`].
    pub(crate) fn unlink(&self, doomed: Doomed) {
        crash_point("remove:committed");
        for chain in doomed.layers {
            let dir = self.root.join("layers").join(hex_part(&chain));
            if fs::symlink_metadata(&dir).is_ok() {
                let _ = self.discard(&dir);
            }
            crash_point("remove:unlinking");
        }
        for blob in doomed.blobs {
            let _ = fs::remove_file(self.blob_path(&blob));
        }
    }

    pub(crate) fn delete_image_rows(&self, id: &str) -> Result<Doomed, Error> {
        let (config_digest, manifest_digest): (String, String) = self.conn.query_row(
            "SELECT config_digest, manifest_digest FROM images WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let chains: Vec<String> = self
            .conn
            .prepare(
                "SELECT chain_id FROM image_layers WHERE image_id = ?1 ORDER BY position DESC",
            )?
            .query_map([id], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        self.conn
            .execute("DELETE FROM image_layers WHERE image_id = ?1", [id])?;
        self.conn
            .execute("DELETE FROM images WHERE id = ?1", [id])?;
        self.conn
            .execute("DELETE FROM repo_digests WHERE image_id = ?1", [id])?;
        let mut doomed = Doomed {
            layers: Vec::new(),
            blobs: vec![config_digest, manifest_digest],
        };
        for chain in chains {
            let used: i64 = self.conn.query_row(
                "SELECT count(*) FROM image_layers WHERE chain_id = ?1",
                [&chain],
                |r| r.get(0),
            )?;
            let children: i64 = self.conn.query_row(
                "SELECT count(*) FROM layers WHERE parent = ?1",
                [&chain],
                |r| r.get(0),
            )?;
            if used > 0 || children > 0 {
                continue;
            }
            let blob: Option<String> = self
                .conn
                .query_row(
                    "SELECT blob_digest FROM layers WHERE chain_id = ?1",
                    [&chain],
                    |r| r.get(0),
                )
                .optional()?;
            self.conn
                .execute("DELETE FROM layers WHERE chain_id = ?1", [&chain])?;
            self.conn
                .execute("DELETE FROM layer_sync WHERE chain_id = ?1", [&chain])?;
            doomed.layers.push(chain.clone());
            if let Some(blob) = blob {
                let shared: i64 = self.conn.query_row(
                    "SELECT count(*) FROM layers WHERE blob_digest = ?1",
                    [&blob],
                    |r| r.get(0),
                )?;
                if shared == 0 {
                    doomed.blobs.push(blob);
                }
            }
        }
        Ok(doomed)
    }
}

/// The files a removal frees, deleted once its rows are committed.
pub(crate) struct Doomed {
    /// Chain IDs of the layers.
    pub(crate) layers: Vec<String>,
    /// `sha256:` digests of the blobs.
    pub(crate) blobs: Vec<String>,
}

pub(crate) fn check_taggable(r: &Reference) -> Result<(), Error> {
    if r.digest().is_some() || r.tag().is_none() {
        return Err(Error::InvalidReference(format!(
            "refusing to create a tag with a digest reference: {}",
            r.familiar()
        )));
    }
    Ok(())
}

/// Marks `tmp/`, where layers are unpacked, as the top of directory trees
/// (`chattr +T`), so that ext4 places each staged layer in a block group of
/// its own choosing instead of its parent's. Without a journal, ext4 skips
/// inodes freed in the last minutes one by one on every allocation: a pull
/// right after an `rmi` of the same image in the same group spent seconds
/// of kernel time there. Other filesystems refuse the flag, which is fine.
fn spread_inodes(dir: &Path) {
    use std::os::fd::AsRawFd;
    const FS_TOPDIR_FL: libc::c_int = 0x0002_0000;
    let Ok(f) = File::open(dir) else {
        return;
    };
    let mut flags: libc::c_int = 0;
    // SAFETY: FS_IOC_GETFLAGS writes one int through the pointer, which
    // points at a live local; the fd is open for the duration of the call.
    let got = unsafe { libc::ioctl(f.as_raw_fd(), libc::FS_IOC_GETFLAGS, &mut flags) };
    if got != 0 || flags & FS_TOPDIR_FL != 0 {
        return;
    }
    flags |= FS_TOPDIR_FL;
    // SAFETY: FS_IOC_SETFLAGS reads one int through the pointer, which points
    // at a live local; the fd is open for the duration of the call.
    unsafe { libc::ioctl(f.as_raw_fd(), libc::FS_IOC_SETFLAGS, &flags) };
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
