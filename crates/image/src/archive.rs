//! `save` and `load`: image archives in Docker's format (`manifest.json`,
//! `repositories`) that are at the same time OCI image layouts
//! (`oci-layout`, `index.json`, `blobs/`), as Docker 25+ writes them.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io::{self, BufReader, Read, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Mutex};

use serde_json::{json, Value};

use crate::extract::io_ctx;
use crate::ingest::config_diff_ids;
use crate::store::{hex_part, sha256_hex, TmpGuard};
use crate::{
    Compression, Error, Image, ImageStore, NewImage, NewLayer, Reference, StagedLayer, Stager,
};

const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// The most a manifest, index or config may take, as containerd and Docker
/// allow: they are read into memory whole.
const MAX_DOCUMENT: u64 = 4 << 20;

/// One image loaded by [`ImageStore::load_archive`].
#[derive(Debug)]
pub struct Loaded {
    /// The image.
    pub image: Image,
    /// The tags the archive gave it (possibly none).
    pub tags: Vec<Reference>,
}

fn corrupt(msg: impl Into<String>) -> Error {
    Error::InvalidArchive(msg.into())
}

fn append(
    tar: &mut tar::Builder<impl Write>,
    name: &str,
    size: u64,
    data: impl Read,
) -> Result<(), Error> {
    let mut h = tar::Header::new_ustar();
    h.set_size(size);
    h.set_mtime(0);
    if name.ends_with('/') {
        h.set_mode(0o755);
        h.set_entry_type(tar::EntryType::Directory);
    } else {
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
    }
    tar.append_data(&mut h, name, data)
        .map_err(|e| Error::Io(io::Error::new(e.kind(), format!("writing archive: {e}"))))
}

impl ImageStore {
    /// Writes `images` (each with the tags to record for it) as one
    /// archive loadable by `docker load`, `hako load` and OCI tools. Layers
    /// are written as stored (compressed), which `docker load` accepts.
    pub fn save(&self, images: &[(Image, Vec<Reference>)], out: impl Write) -> Result<(), Error> {
        let mut tar = tar::Builder::new(out);
        let mut written: HashSet<String> = HashSet::new();
        let mut manifest_json = Vec::new();
        let mut index = Vec::new();
        let mut repositories = serde_json::Map::new();
        append(&mut tar, "blobs/", 0, io::empty())?;
        append(&mut tar, "blobs/sha256/", 0, io::empty())?;
        for (image, tags) in images {
            let (mdigest, mbytes) = self.manifest_of(&image.id)?;
            let manifest: Value = serde_json::from_slice(&mbytes)
                .map_err(|e| Error::Corrupt(format!("manifest {mdigest}: {e}")))?;
            let mut blobs = vec![image.id.clone(), mdigest.clone()];
            let mut layer_paths = Vec::new();
            for l in manifest["layers"].as_array().into_iter().flatten() {
                let d = l["digest"].as_str().unwrap_or_default().to_string();
                layer_paths.push(format!("blobs/sha256/{}", hex_part(&d)));
                blobs.push(d);
            }
            for d in blobs {
                if !written.insert(d.clone()) {
                    continue;
                }
                let p = self.existing_blob(&d)?;
                let f = File::open(&p).map_err(|e| io_ctx(e, "open", &p))?;
                let len = f.metadata().map_err(|e| io_ctx(e, "stat", &p))?.len();
                append(
                    &mut tar,
                    &format!("blobs/sha256/{}", hex_part(&d)),
                    len,
                    BufReader::with_capacity(1 << 20, f),
                )?;
            }
            let repo_tags: Vec<String> = tags.iter().map(Reference::familiar).collect();
            manifest_json.push(json!({
                "Config": format!("blobs/sha256/{}", hex_part(&image.id)),
                "RepoTags": if repo_tags.is_empty() { Value::Null } else { json!(repo_tags) },
                "Layers": layer_paths,
            }));
            let media_type = manifest["mediaType"].as_str().unwrap_or(OCI_MANIFEST);
            let descriptor = |annotations: Value| {
                json!({
                    "mediaType": media_type,
                    "digest": mdigest,
                    "size": mbytes.len(),
                    "annotations": annotations,
                })
            };
            if tags.is_empty() {
                index.push(descriptor(json!({})));
            }
            for t in tags {
                index.push(descriptor(json!({
                    "io.containerd.image.name": t.to_string(),
                    "org.opencontainers.image.ref.name": t.tag().unwrap_or("latest"),
                })));
                let top = layer_paths
                    .last()
                    .map(|p| p.trim_start_matches("blobs/sha256/").to_string())
                    .unwrap_or_default();
                let entry = repositories
                    .entry(t.familiar_repository())
                    .or_insert_with(|| json!({}));
                if let Some(o) = entry.as_object_mut() {
                    o.insert(t.tag().unwrap_or("latest").to_string(), json!(top));
                }
            }
        }
        let docs = [
            ("oci-layout", json!({"imageLayoutVersion": "1.0.0"})),
            (
                "index.json",
                json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": index}),
            ),
            ("manifest.json", Value::Array(manifest_json)),
            ("repositories", Value::Object(repositories)),
        ];
        for (name, v) in docs {
            let bytes = serde_json::to_vec(&v)
                .map_err(|e| Error::Corrupt(format!("serializing {name}: {e}")))?;
            append(&mut tar, name, bytes.len() as u64, &bytes[..])?;
        }
        tar.into_inner()
            .and_then(|mut w| w.flush())
            .map_err(|e| Error::Io(io::Error::new(e.kind(), format!("writing archive: {e}"))))
    }

    /// Loads a Docker archive (`docker save`) or an OCI archive, plain or
    /// compressed. Layers are unpacked in parallel; every image is committed
    /// only once all its layers checked out.
    pub fn load_archive(&self, input: impl Read) -> Result<Vec<Loaded>, Error> {
        let dir = TmpGuard {
            path: Some(self.tmp_path()?),
        };
        fs::create_dir(dir.path()).map_err(|e| io_ctx(e, "create", dir.path()))?;
        let root = dir.path();
        let stager = self.stager();
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Mutex::new(queue);
        let stop = AtomicBool::new(false);
        std::thread::scope(|s| {
            let threads: Vec<_> = (0..workers())
                .map(|_| s.spawn(|| work(&queue, &stop, &stager)))
                .collect();
            let pool = Pool { jobs };
            let loaded = (|| {
                // Which files are layers is only known from manifest.json, which
                // both Docker and hako write last. A file that looks like a layer
                // is staged as soon as it is written, while the rest of the
                // archive is still being read; a guess that no image uses is
                // dropped with its staging.
                let mut early = Early::default();
                let links = unpack_plain(input, root, &mut |rel, path, head| {
                    if !looks_like_layer(head) {
                        return;
                    }
                    let digest = rel
                        .strip_prefix("blobs/sha256/")
                        .map(|h| format!("sha256:{h}"));
                    early.0.insert(rel.to_string(), pool.submit(path, digest));
                })?;
                self.load_unpacked(&Unpacked { root, links }, &pool, &mut early)
            })();
            // Guesses no image took are not staged any more; the workers end with the queue.
            stop.store(true, Ordering::Relaxed);
            drop(pool);
            // The scope alone waits for the closures only; joining waits until the threads
            // are gone, their thread-locals freed, before the caller goes on (a long-lived
            // caller such as the API server or a fuzzer sees no memory still held).
            for t in threads {
                if let Err(panic) = t.join() {
                    std::panic::resume_unwind(panic);
                }
            }
            loaded
        })
    }

    fn load_unpacked(
        &self,
        root: &Unpacked<'_>,
        pool: &Pool,
        early: &mut Early,
    ) -> Result<Vec<Loaded>, Error> {
        let mut out = Vec::new();
        if root.is_file("index.json") {
            let index = read_json(root, "index.json")?;
            let mut seen: Vec<(String, Vec<Reference>)> = Vec::new();
            let manifests = index["manifests"]
                .as_array()
                .ok_or_else(|| corrupt("index.json: \"manifests\" is not a list"))?;
            for d in manifests {
                let digest = d["digest"].as_str().unwrap_or_default().to_string();
                let mt = d["mediaType"].as_str().unwrap_or_default();
                let digest = if mt == OCI_INDEX || mt == DOCKER_LIST {
                    pick_from_index(root, &digest)?
                } else {
                    digest
                };
                let name = d["annotations"]["io.containerd.image.name"]
                    .as_str()
                    .or_else(|| d["annotations"]["org.opencontainers.image.ref.name"].as_str())
                    .and_then(|n| {
                        (n.contains(':') || n.contains('/')).then(|| Reference::parse(n).ok())
                    })
                    .flatten();
                match seen.iter_mut().find(|(m, _)| *m == digest) {
                    Some((_, tags)) => tags.extend(name),
                    None => seen.push((digest, name.into_iter().collect())),
                }
            }
            for (digest, tags) in seen {
                let manifest = read_blob_file(root, &digest)?;
                let m: Value = serde_json::from_slice(&manifest)
                    .map_err(|e| corrupt(format!("manifest {digest}: {e}")))?;
                let config = read_blob_file(root, m["config"]["digest"].as_str().unwrap_or(""))?;
                let layers: Vec<(String, Option<String>)> = m["layers"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|l| {
                        let d = l["digest"].as_str().unwrap_or_default().to_string();
                        (format!("blobs/sha256/{}", hex_part(&d)), Some(d))
                    })
                    .collect();
                out.push(self.load_one(
                    root,
                    pool,
                    Some(manifest),
                    config,
                    &layers,
                    tags,
                    early,
                )?);
            }
        } else if root.is_file("manifest.json") {
            let list = read_json(root, "manifest.json")?;
            // Docker's own loader refuses anything but a list too; reading nothing from it
            // would "load" an archive without a word.
            let list = list
                .as_array()
                .ok_or_else(|| corrupt("manifest.json is not a list of images"))?;
            for entry in list {
                let cfg_path = entry["Config"].as_str().unwrap_or_default();
                let config = root.read(cfg_path)?;
                let layers: Vec<(String, Option<String>)> = entry["Layers"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|l| {
                        let p = l.as_str().unwrap_or_default().to_string();
                        let d = p
                            .strip_prefix("blobs/sha256/")
                            .map(|h| format!("sha256:{h}"));
                        (p, d)
                    })
                    .collect();
                let tags = entry["RepoTags"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|t| t.as_str().and_then(|t| Reference::parse(t).ok()))
                    .collect();
                out.push(self.load_one(root, pool, None, config, &layers, tags, early)?);
            }
        } else {
            return Err(corrupt(
                "neither manifest.json nor index.json found: not an image archive",
            ));
        }
        Ok(out)
    }

    #[allow(clippy::too_many_arguments)]
    fn load_one(
        &self,
        root: &Unpacked<'_>,
        pool: &Pool,
        manifest: Option<Vec<u8>>,
        config: Vec<u8>,
        layers: &[(String, Option<String>)],
        tags: Vec<Reference>,
        early: &mut Early,
    ) -> Result<Loaded, Error> {
        let (_, diff_ids) = config_diff_ids(&config)?;
        // Refused before any of its layers is staged: no kernel here can run it.
        let v: Value =
            serde_json::from_slice(&config).map_err(|e| corrupt(format!("image config: {e}")))?;
        crate::ImagePlatform::of_json(&v).check_os()?;
        if diff_ids.len() != layers.len() {
            return Err(corrupt(format!(
                "config lists {} layers, archive has {}",
                diff_ids.len(),
                layers.len()
            )));
        }
        let tickets: Vec<Result<Ticket, Error>> = layers
            .iter()
            .map(|(path, digest)| {
                // Staged early under the name its digest gives, or now
                // (a layer shared with an image loaded before, whose
                // early staging that image took, or one repeated in
                // this image).
                let name = root.resolve(path)?;
                let staged_early = early
                    .0
                    .remove(&name)
                    .filter(|_| digest_of_name(&name) == *digest);
                Ok(match staged_early {
                    Some(t) => t,
                    None => pool.submit(root.root.join(name), digest.clone()),
                })
            })
            .collect();
        let staged: Vec<Result<StagedLayer, Error>> = tickets
            .into_iter()
            .map(|t| t.and_then(Ticket::wait))
            .collect();
        let staged: Vec<StagedLayer> = staged.into_iter().collect::<Result<_, _>>()?;
        let manifest = match manifest {
            Some(m) => m,
            None => {
                let layer_descs: Vec<Value> = staged
                    .iter()
                    .map(|s| {
                        json!({
                            "mediaType": Compression::media_type(s.compression).to_string(),
                            "digest": s.blob_digest,
                            "size": s.blob_size,
                        })
                    })
                    .collect();
                serde_json::to_vec(&json!({
                    "schemaVersion": 2,
                    "mediaType": OCI_MANIFEST,
                    "config": {
                        "mediaType": OCI_CONFIG,
                        "digest": format!("sha256:{}", sha256_hex(&config)),
                        "size": config.len(),
                    },
                    "layers": layer_descs,
                }))
                .map_err(|e| Error::Corrupt(format!("serializing manifest: {e}")))?
            }
        };
        let mut image = self.commit_image(NewImage {
            manifest,
            config,
            layers: staged.into_iter().map(NewLayer::Staged).collect(),
            tag: None,
            repo_digest: None,
        })?;
        for t in &tags {
            self.tag(&image.id, t)?;
        }
        if !tags.is_empty() {
            image = self.load(&image.id)?;
        }
        Ok(Loaded { image, tags })
    }
}

/// Layers staged while the archive was still being read, by their path in
/// it.
#[derive(Default)]
struct Early(HashMap<String, Ticket>);

/// A layer file to stage, and where its result goes.
type Job = (
    PathBuf,
    Option<String>,
    mpsc::SyncSender<Result<StagedLayer, Error>>,
);

/// Stages layer files on a few threads however many layers the archive holds
/// (one thread each made a 3000-file archive start 2000 threads).
struct Pool {
    jobs: mpsc::Sender<Job>,
}

/// A layer a worker stages, or has staged.
struct Ticket(mpsc::Receiver<Result<StagedLayer, Error>>);

/// As many workers as cores, at least 4 (staging waits for the disk too), at most 8.
fn workers() -> usize {
    std::thread::available_parallelism()
        .map_or(4, |n| n.get())
        .clamp(4, 8)
}

impl Pool {
    fn submit(&self, path: PathBuf, digest: Option<String>) -> Ticket {
        let (tx, rx) = mpsc::sync_channel(1);
        // The workers outlive the pool, so the queue is open.
        let _ = self.jobs.send((path, digest, tx));
        Ticket(rx)
    }
}

impl Ticket {
    fn wait(self) -> Result<StagedLayer, Error> {
        self.0
            .recv()
            .unwrap_or_else(|_| Err(corrupt("layer worker panicked")))
    }
}

/// A worker: stages queued layer files until the queue closes, skipping them once `stop` says
/// nothing will take them.
fn work(queue: &Mutex<mpsc::Receiver<Job>>, stop: &AtomicBool, stager: &Stager) {
    loop {
        let job = match queue.lock().map(|rx| rx.recv()) {
            Ok(Ok(job)) => job,
            _ => return,
        };
        let (path, digest, reply) = job;
        if stop.load(Ordering::Relaxed) {
            continue;
        }
        let _ = reply.send(stager.stage_layer_file(&path, digest.as_deref()));
    }
}

/// The digest a `blobs/sha256/<hex>` path names, as [`load_archive`] passes it.
fn digest_of_name(name: &str) -> Option<String> {
    name.strip_prefix("blobs/sha256/")
        .map(|h| format!("sha256:{h}"))
}

/// Whether a file starting with `head` can be a layer: gzip, zstd, or a tar
/// header (`ustar` at offset 257). Config and manifest JSON cannot.
fn looks_like_layer(head: &[u8]) -> bool {
    head.starts_with(&[0x1f, 0x8b])
        || head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd])
        || head.get(257..262) == Some(&b"ustar"[..])
}

/// In a nested index, the manifest for this host (or the only one).
fn pick_from_index(root: &Unpacked<'_>, digest: &str) -> Result<String, Error> {
    let idx: Value = serde_json::from_slice(&read_blob_file(root, digest)?)
        .map_err(|e| corrupt(format!("index {digest}: {e}")))?;
    let entries = idx["manifests"].as_array().cloned().unwrap_or_default();
    let host_arch = crate::store::go_arch().to_string();
    entries
        .iter()
        .find(|e| {
            e["platform"]["os"].as_str() == Some("linux")
                && e["platform"]["architecture"].as_str() == Some(host_arch.as_str())
        })
        .or_else(|| (entries.len() == 1).then(|| &entries[0]))
        .and_then(|e| e["digest"].as_str().map(str::to_string))
        .ok_or_else(|| {
            corrupt(format!(
                "no manifest for linux/{host_arch} in index {digest}"
            ))
        })
}

fn read_json(root: &Unpacked<'_>, name: &str) -> Result<Value, Error> {
    serde_json::from_slice(&root.read(name)?).map_err(|e| corrupt(format!("{name}: {e}")))
}

fn read_blob_file(root: &Unpacked<'_>, digest: &str) -> Result<Vec<u8>, Error> {
    let hex = digest
        .strip_prefix("sha256:")
        .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(|| corrupt(format!("unsupported digest {digest:?}")))?;
    let data = root.read(&format!("blobs/sha256/{hex}"))?;
    if sha256_hex(&data) != hex {
        return Err(Error::DigestMismatch {
            expected: digest.to_string(),
            actual: format!("sha256:{}", sha256_hex(&data)),
        });
    }
    Ok(data)
}

/// A member name as a path inside the archive (`a/b`), refused if it
/// climbs out of it.
fn normalize(rel: &str) -> Result<String, Error> {
    let mut out: Vec<&str> = Vec::new();
    for c in Path::new(rel).components() {
        match c {
            Component::Normal(n) => out.push(n.to_str().unwrap_or_default()),
            Component::CurDir => {}
            _ => return Err(corrupt(format!("invalid path {rel:?} in archive"))),
        }
    }
    if out.is_empty() || out.iter().any(|n| n.is_empty()) {
        return Err(corrupt(format!("invalid path {rel:?} in archive")));
    }
    Ok(out.join("/"))
}

/// Where the symlink member `rel` (normalized) points, as a member name:
/// relative targets only, and never above the archive's top.
fn link_target(rel: &str, target: &Path) -> Result<String, Error> {
    let escapes = || {
        corrupt(format!(
            "symlink {rel} -> {} points outside of the archive",
            target.display()
        ))
    };
    let mut out: Vec<&str> = rel.split('/').collect();
    out.pop();
    for c in target.components() {
        match c {
            Component::Normal(n) => out.push(n.to_str().ok_or_else(escapes)?),
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop().ok_or_else(escapes)?;
            }
            Component::RootDir | Component::Prefix(_) => return Err(escapes()),
        }
    }
    if out.is_empty() {
        return Err(escapes());
    }
    Ok(out.join("/"))
}

/// An archive unpacked under `tmp/`: its regular files, plus the symlinks
/// between its members, which are only followed by name, never on disk.
/// Docker 20.10 writes a layer an image repeats as a symlink to its first
/// copy (`<id>/layer.tar -> ../<first id>/layer.tar`).
struct Unpacked<'a> {
    root: &'a Path,
    /// Symlink member → the member it names (normalized, inside).
    links: HashMap<String, String>,
}

impl Unpacked<'_> {
    /// The member `rel` names, through the archive's symlinks.
    fn resolve(&self, rel: &str) -> Result<String, Error> {
        let mut cur = normalize(rel)?;
        // As many hops as the kernel follows.
        for _ in 0..40 {
            match self.links.get(&cur) {
                Some(t) => cur = t.clone(),
                None => return Ok(cur),
            }
        }
        Err(corrupt(format!(
            "{rel}: too many levels of symbolic links in the archive"
        )))
    }

    fn is_file(&self, rel: &str) -> bool {
        self.resolve(rel).is_ok_and(|r| self.root.join(r).is_file())
    }

    /// A JSON document of the archive (`manifest.json`, `index.json`, a
    /// manifest or config), which is read into memory: at most
    /// [`MAX_DOCUMENT`] bytes.
    fn read(&self, rel: &str) -> Result<Vec<u8>, Error> {
        let p = self.root.join(self.resolve(rel)?);
        let missing = || corrupt(format!("{rel} is missing from the archive"));
        let len = fs::metadata(&p).map_err(|_| missing())?.len();
        if len > MAX_DOCUMENT {
            return Err(corrupt(format!(
                "{rel} is {len} bytes, more than the {MAX_DOCUMENT} a manifest or config may have"
            )));
        }
        fs::read(&p).map_err(|_| missing())
    }
}

/// Unpacks the archive's regular files and directories (nothing else is
/// meaningful in an image archive), decompressing it first if needed.
///
/// `written` is called with the archive path, the file and its first bytes
/// after each regular file is complete. Returns the symlinks between
/// members (see [`Unpacked`]).
fn unpack_plain(
    input: impl Read,
    dir: &Path,
    written: &mut dyn FnMut(&str, std::path::PathBuf, &[u8]),
) -> Result<HashMap<String, String>, Error> {
    let mut input = BufReader::with_capacity(1 << 20, input);
    let magic = {
        use std::io::BufRead;
        input
            .fill_buf()
            .map_err(Error::Io)?
            .get(..4)
            .map(|m| m.to_vec())
    };
    let reader: Box<dyn Read> = match magic.as_deref() {
        Some([0x1f, 0x8b, ..]) => Box::new(flate2::read::MultiGzDecoder::new(input)),
        Some([0x28, 0xb5, 0x2f, 0xfd]) => Box::new(
            zstd::stream::read::Decoder::with_buffer(input)
                .map_err(|e| corrupt(format!("zstd: {e}")))?,
        ),
        _ => Box::new(input),
    };
    let mut archive = tar::Archive::new(reader);
    let entries = archive
        .entries()
        .map_err(|e| corrupt(format!("reading archive: {e}")))?;
    let mut links = HashMap::new();
    for entry in entries {
        let mut entry = entry.map_err(|e| corrupt(format!("reading archive: {e}")))?;
        let path = entry
            .path()
            .map_err(|e| corrupt(format!("reading archive: {e}")))?
            .to_string_lossy()
            .into_owned();
        let kind = entry.header().entry_type();
        let is_dir = kind.is_dir() || path.ends_with('/');
        if Path::new(&path)
            .components()
            .all(|c| c == Component::CurDir)
        {
            continue;
        }
        let rel = normalize(&path)?;
        let rel = rel.as_str();
        let dst = dir.join(rel);
        if is_dir {
            fs::create_dir_all(&dst).map_err(|e| io_ctx(e, "create", &dst))?;
        } else if kind.is_symlink() {
            let target = entry
                .link_name()
                .map_err(|e| corrupt(format!("reading archive: {e}")))?
                .ok_or_else(|| corrupt(format!("symlink {rel} has no target")))?;
            links.insert(rel.to_string(), link_target(rel, &target)?);
        } else if kind.is_file() {
            links.remove(rel);
            if let Some(parent) = dst.parent() {
                fs::create_dir_all(parent).map_err(|e| io_ctx(e, "create", parent))?;
            }
            // A name given twice gets a new file: the first may already be
            // hard-linked as a staged blob, which must keep its content.
            match fs::remove_file(&dst) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    return Err(io_ctx(e, "replace", &dst))
                }
                _ => {}
            }
            let f = File::options()
                .write(true)
                .create_new(true)
                .open(&dst)
                .map_err(|e| io_ctx(e, "create", &dst))?;
            // io::copy fills a BufWriter's own buffer: 1 MiB writes, not 8 KiB.
            let mut w = io::BufWriter::with_capacity(1 << 20, f);
            let mut head = [0u8; 512];
            let mut got = 0;
            while got < head.len() {
                match entry.read(&mut head[got..]) {
                    Ok(0) => break,
                    Ok(n) => got += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(corrupt(format!("reading {rel} from archive: {e}"))),
                }
            }
            w.write_all(&head[..got])
                .map_err(|e| io_ctx(e, "write", &dst))?;
            io::copy(&mut entry, &mut w)
                .map_err(|e| corrupt(format!("reading {rel} from archive: {e}")))?;
            w.into_inner()
                .map_err(|e| io_ctx(e.into_error(), "write", &dst))?;
            written(rel, dst, &head[..got]);
        }
    }
    Ok(links)
}
