//! Multi-layer images from outside (a registry, an archive): layers are
//! staged in `tmp/` in parallel, with no database access, then committed
//! together in one transaction.

use std::fs;
use std::io::Read;
use std::path::PathBuf;

use oci_spec::image::ImageConfiguration;
use rusqlite::{params, OptionalExtension};

use crate::extract::{
    extract_layer_from_blob, extract_layer_verified, io_ctx, Compression, Extracted,
};
use crate::store::{
    chain_ids, check_taggable, fsync_dir, hex_part, sha256_hex, tmp_path_in, TmpGuard,
};
use crate::{time, Error, Image, ImageStore, Reference};

/// Stages layers for a later [`ImageStore::commit_image`]. It holds no
/// database handle, so it can be cloned into worker threads.
#[derive(Clone, Debug)]
pub struct Stager {
    root: PathBuf,
}

/// A layer unpacked and verified under `tmp/`, not yet part of the store.
/// Dropping it removes the staged files.
pub struct StagedLayer {
    pub(crate) work: TmpGuard,
    blob: TmpGuard,
    /// `sha256:` digest of the blob as received.
    pub blob_digest: String,
    /// Size of the blob as received.
    pub blob_size: u64,
    /// `sha256:` digest of the uncompressed tar.
    pub diff_id: String,
    /// Size of the uncompressed tar.
    pub diff_size: u64,
    /// Compression detected from the blob's magic bytes.
    pub compression: Compression,
}

impl std::fmt::Debug for StagedLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StagedLayer")
            .field("blob_digest", &self.blob_digest)
            .field("diff_id", &self.diff_id)
            .finish()
    }
}

impl Stager {
    /// Reads a layer blob once: keeps it verbatim, unpacks it, and checks
    /// it against `expected` (`sha256:<hex>`) when given. On any error,
    /// nothing is left behind.
    pub fn stage_layer(
        &self,
        input: impl Read,
        expected: Option<&str>,
    ) -> Result<StagedLayer, Error> {
        if let Some(d) = expected {
            check_digest(d)?;
        }
        let (work, diff) = self.work_dir()?;
        let blob = TmpGuard {
            path: Some(tmp_path_in(&self.root)?),
        };
        let ex = extract_layer_verified(input, blob.path(), &diff, expected)?;
        Ok(StagedLayer::new(work, blob, ex))
    }

    /// A fresh staging directory with its empty `diff/`; removed again on drop.
    fn work_dir(&self) -> Result<(TmpGuard, PathBuf), Error> {
        let work = TmpGuard {
            path: Some(tmp_path_in(&self.root)?),
        };
        fs::create_dir(work.path()).map_err(|e| io_ctx(e, "create", work.path()))?;
        let diff = work.path().join("diff");
        fs::create_dir(&diff).map_err(|e| io_ctx(e, "create", &diff))?;
        Ok((work, diff))
    }
}

impl StagedLayer {
    fn new(work: TmpGuard, blob: TmpGuard, ex: Extracted) -> StagedLayer {
        StagedLayer {
            work,
            blob,
            blob_digest: format!("sha256:{}", ex.blob_hex),
            blob_size: ex.blob_size,
            diff_id: format!("sha256:{}", ex.diff_hex),
            diff_size: ex.diff_size,
            compression: ex.compression,
        }
    }
}

impl Stager {
    /// [`Stager::stage_layer`] of a blob that is already a file on the
    /// store's filesystem (an unpacked archive's): the file is hard-linked as
    /// the staged blob instead of copied, and read once to hash and unpack.
    /// Falls back to a copy where it cannot be linked.
    pub(crate) fn stage_layer_file(
        &self,
        path: &std::path::Path,
        expected: Option<&str>,
    ) -> Result<StagedLayer, Error> {
        let open = || {
            fs::File::open(path)
                .map(|f| std::io::BufReader::with_capacity(1 << 20, f))
                .map_err(|e| io_ctx(e, "open", path))
        };
        if let Some(d) = expected {
            check_digest(d)?;
        }
        let blob = TmpGuard {
            path: Some(tmp_path_in(&self.root)?),
        };
        if fs::hard_link(path, blob.path()).is_err() {
            return self.stage_layer(open()?, expected);
        }
        let (work, diff) = self.work_dir()?;
        let ex = extract_layer_from_blob(open()?, &diff, expected)?;
        Ok(StagedLayer::new(work, blob, ex))
    }
}

/// A layer of a [`NewImage`], in the order of the config's `diff_ids`.
#[derive(Debug)]
pub enum NewLayer {
    /// Freshly staged.
    Staged(StagedLayer),
    /// Already in the store under the chain ID the config implies
    /// ([`ImageStore::has_layer`] said so).
    Existing,
}

/// An image to add with [`ImageStore::commit_image`].
#[derive(Debug)]
pub struct NewImage {
    /// The image manifest, byte for byte as it will be pushed or saved.
    pub manifest: Vec<u8>,
    /// The image config, byte for byte (its sha256 is the image ID).
    pub config: Vec<u8>,
    /// One entry per `rootfs.diff_ids` entry of the config.
    pub layers: Vec<NewLayer>,
    /// Tag to point at the image.
    pub tag: Option<Reference>,
    /// `(repository, digest)` the image was pulled by, for `RepoDigests`
    /// and `name@digest` lookups.
    pub repo_digest: Option<(String, String)>,
}

fn check_digest(d: &str) -> Result<(), Error> {
    match d.strip_prefix("sha256:") {
        Some(h) if h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()) => Ok(()),
        _ => Err(Error::Corrupt(format!("unsupported digest {d:?}"))),
    }
}

/// The diff IDs of a parsed config, or a clear error.
pub(crate) fn config_diff_ids(config: &[u8]) -> Result<(ImageConfiguration, Vec<String>), Error> {
    let parsed: ImageConfiguration = serde_json::from_slice(config)
        .map_err(|e| Error::Corrupt(format!("malformed image config: {e}")))?;
    let ids = parsed.rootfs().diff_ids().to_vec();
    if ids.len() > crate::MAX_LAYERS {
        return Err(Error::TooManyLayers(ids.len()));
    }
    for d in &ids {
        check_digest(d)?;
    }
    Ok((parsed, ids))
}

impl ImageStore {
    /// A handle for staging layers from worker threads.
    pub fn stager(&self) -> Stager {
        Stager {
            root: self.root().to_path_buf(),
        }
    }

    /// The chain IDs of an image config's layers (bottom first).
    pub fn chain_ids_of(config: &[u8]) -> Result<Vec<String>, Error> {
        Ok(chain_ids(&config_diff_ids(config)?.1))
    }

    /// Whether the layer with this chain ID is unpacked and recorded.
    pub fn has_layer(&self, chain_id: &str) -> Result<bool, Error> {
        let known = self
            .conn()
            .query_row(
                "SELECT 1 FROM layers WHERE chain_id = ?1",
                [chain_id],
                |_| Ok(()),
            )
            .optional()?
            .is_some();
        Ok(known && self.layer_path(chain_id).is_dir())
    }

    /// Whether a blob with this digest is stored.
    pub fn has_blob(&self, digest: &str) -> bool {
        self.blob_path(digest).is_file()
    }

    /// Whether an image with this ID (`sha256:<hex>`) exists.
    pub fn has_image(&self, id: &str) -> Result<bool, Error> {
        Ok(self
            .conn()
            .query_row("SELECT 1 FROM images WHERE id = ?1", [id], |_| Ok(()))
            .optional()?
            .is_some())
    }

    /// Reads a whole stored blob and checks its digest (used for configs
    /// and manifests, which are small).
    pub fn read_blob(&self, digest: &str) -> Result<Vec<u8>, Error> {
        let p = self.blob_path(digest);
        let data = fs::read(&p).map_err(|e| io_ctx(e, "read blob", &p))?;
        let actual = format!("sha256:{}", sha256_hex(&data));
        if actual != digest {
            return Err(Error::DigestMismatch {
                expected: digest.to_string(),
                actual,
            });
        }
        Ok(data)
    }

    /// The manifest digest and bytes of an image, by full ID.
    pub fn manifest_of(&self, id: &str) -> Result<(String, Vec<u8>), Error> {
        let digest: String = self
            .conn()
            .query_row(
                "SELECT manifest_digest FROM images WHERE id = ?1",
                [id],
                |r| r.get(0),
            )
            .optional()?
            .ok_or_else(|| Error::NotFound(id.to_string()))?;
        let bytes = self.read_blob(&digest)?;
        Ok((digest, bytes))
    }

    /// `RepoDigests` of an image: `repository@sha256:…`, sorted.
    pub fn repo_digests(&self, id: &str) -> Result<Vec<String>, Error> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT repository, digest FROM repo_digests WHERE image_id = ?1
             ORDER BY repository, digest",
        )?;
        let rows = stmt.query_map([id], |r| {
            Ok(format!(
                "{}@{}",
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Uncompressed sizes of the layers of an image, bottom first.
    pub fn layer_sizes(&self, id: &str) -> Result<Vec<u64>, Error> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT l.size FROM image_layers il JOIN layers l ON l.chain_id = il.chain_id
             WHERE il.image_id = ?1 ORDER BY il.position",
        )?;
        let rows = stmt.query_map([id], |r| r.get::<_, i64>(0))?;
        Ok(rows
            .map(|r| r.map(|n| n as u64))
            .collect::<Result<_, _>>()?)
    }

    /// Adds an image whose layers were staged (or already present): moves
    /// staged layers and blobs into place and records everything in one
    /// transaction. Staged layers must match the config's diff IDs.
    pub fn commit_image(&self, new: NewImage) -> Result<Image, Error> {
        if let Some(t) = &new.tag {
            check_taggable(t)?;
        }
        let (config, diff_ids) = config_diff_ids(&new.config)?;
        if diff_ids.len() != new.layers.len() {
            return Err(Error::Corrupt(format!(
                "image config lists {} layers but {} were given",
                diff_ids.len(),
                new.layers.len()
            )));
        }
        for (want, layer) in diff_ids.iter().zip(&new.layers) {
            if let NewLayer::Staged(s) = layer {
                if &s.diff_id != want {
                    return Err(Error::DigestMismatch {
                        expected: want.clone(),
                        actual: s.diff_id.clone(),
                    });
                }
            }
        }
        let chains = chain_ids(&diff_ids);
        let id = format!("sha256:{}", sha256_hex(&new.config));

        let _lock = self.lock()?;
        let tx = self.begin()?;
        let staged_names: Vec<(&str, &str)> = new
            .layers
            .iter()
            .zip(&chains)
            .filter_map(|(l, c)| match l {
                NewLayer::Staged(s) => Some((s.blob_digest.as_str(), c.as_str())),
                NewLayer::Existing => None,
            })
            .collect();
        let manifest_digest = format!("sha256:{}", sha256_hex(&new.manifest));
        let _journal = self.journal(
            staged_names
                .iter()
                .map(|(b, _)| *b)
                .chain([id.as_str(), manifest_digest.as_str()]),
            staged_names.iter().map(|(_, c)| *c),
        )?;
        drop(staged_names);
        let mut size = 0u64;
        let mut parent: Option<&str> = None;
        for (i, (layer, chain)) in new.layers.into_iter().zip(&chains).enumerate() {
            let present = self.has_layer(chain)?;
            match layer {
                NewLayer::Existing if !present => {
                    return Err(Error::NotFound(format!("layer {chain}")));
                }
                NewLayer::Existing => {}
                NewLayer::Staged(mut s) => {
                    let blob_hex = hex_part(&s.blob_digest).to_string();
                    self.put_blob_file(&mut s.blob, &blob_hex)?;
                    if !present {
                        let layer_root = self.root().join("layers").join(hex_part(chain));
                        if fs::symlink_metadata(&layer_root).is_ok() {
                            // Left over from a crash between rename and commit.
                            self.discard(&layer_root)?;
                        }
                        fs::rename(s.work.path(), &layer_root)
                            .map_err(|e| io_ctx(e, "install layer", &layer_root))?;
                        s.work.disarm();
                        tx.execute(
                            "INSERT OR REPLACE INTO layers(chain_id, diff_id, blob_digest, size, parent)
                             VALUES (?1, ?2, ?3, ?4, ?5)",
                            params![chain, diff_ids[i], s.blob_digest, s.diff_size as i64, parent],
                        )?;
                        crate::durable::record_pending(&tx, chain)?;
                    }
                }
            }
            let layer_size: i64 = tx.query_row(
                "SELECT size FROM layers WHERE chain_id = ?1",
                [chain],
                |r| r.get(0),
            )?;
            size += layer_size as u64;
            parent = Some(chain);
        }
        self.put_blob_bytes(&new.config)?;
        let manifest_hex = self.put_blob_bytes(&new.manifest)?;
        fsync_dir(&self.root().join("blobs/sha256"))?;
        if !self.has_image(&id)? {
            tx.execute(
                "INSERT INTO images(id, config_digest, manifest_digest, created, size, added)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    id,
                    id,
                    format!("sha256:{manifest_hex}"),
                    config.created().as_deref(),
                    size as i64,
                    time::unix_now()
                ],
            )?;
            for (pos, chain) in chains.iter().enumerate() {
                tx.execute(
                    "INSERT INTO image_layers(image_id, position, chain_id) VALUES (?1, ?2, ?3)",
                    params![id, pos as i64, chain],
                )?;
            }
        }
        if let Some(t) = &new.tag {
            tx.execute(
                "INSERT OR REPLACE INTO tags(name, image_id) VALUES (?1, ?2)",
                params![t.to_string(), id],
            )?;
        }
        if let Some((repo, digest)) = &new.repo_digest {
            tx.execute(
                "INSERT OR REPLACE INTO repo_digests(repository, digest, image_id) VALUES (?1, ?2, ?3)",
                params![repo, digest, id],
            )?;
        }
        crate::journal::crash_point("install:renamed");
        tx.commit()?;
        self.load(&id)
    }

    /// Path of the stored blob for `digest`, checking it exists.
    pub fn existing_blob(&self, digest: &str) -> Result<PathBuf, Error> {
        let p = self.blob_path(digest);
        if p.is_file() {
            Ok(p)
        } else {
            Err(Error::NotFound(format!("blob {digest}")))
        }
    }
}
