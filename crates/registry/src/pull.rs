//! `hako pull`: manifest resolution, then every missing layer streamed once
//! through digest check, decompression and extraction, all in parallel.

use std::io::Read as _;
use std::sync::mpsc;

use hako_image::{Image, ImageStore, NewImage, NewLayer, Reference, StagedLayer};

use crate::client::{read_limited, read_small, status_error, Client, Payload, MAX_DOCUMENT};
use crate::manifest::{self, classify, Descriptor, Kind, Manifest, Platform};
use crate::{sha256_digest, short, Credentials, Error, LayerStatus, Progress, ProgressSink};

/// Options of [`pull`].
#[derive(Clone, Debug, Default)]
pub struct PullOptions {
    /// The platform to pick from a multi-platform image; the host's when
    /// `None`.
    pub platform: Option<Platform>,
}

/// The outcome of [`pull`].
#[derive(Clone, Debug)]
pub struct Pulled {
    /// The image now in the store.
    pub image: Image,
    /// Digest of the manifest (or index) the reference resolved to.
    pub digest: String,
    /// `false` when the image was already there under this reference
    /// (Docker's "Image is up to date").
    pub downloaded: bool,
}

const LAYER_TYPES: &[&str] = &[
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd",
    "application/vnd.docker.image.rootfs.diff.tar",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/vnd.docker.image.rootfs.diff.tar.zstd",
];

fn layer(digest: &str, status: LayerStatus) -> Progress {
    Progress::Layer {
        id: short(digest).to_string(),
        status,
    }
}

fn out_err(e: std::io::Error) -> Error {
    Error::Output(e)
}

/// A manifest's bytes, content type and digest.
type FetchedManifest = (Vec<u8>, String, String);

/// Fetches a manifest by tag or digest; returns its bytes, content type
/// and digest (checked when `target` is a digest). At most `size` bytes
/// are read when an index gave it, and never more than [`MAX_DOCUMENT`].
fn fetch_manifest(
    client: &Client,
    target: &str,
    reference: &Reference,
    size: Option<u64>,
) -> Result<FetchedManifest, Error> {
    let what = || match target.starts_with("sha256:") {
        true => format!("manifest {target}"),
        false => format!("manifest for {}", reference.familiar()),
    };
    let (limit, why) = match size {
        Some(s) if s <= MAX_DOCUMENT => (s, "its descriptor gives"),
        Some(s) => {
            return Err(Error::BadManifest {
                reference: reference.familiar(),
                message: format!(
                    "its index gives manifest {target} {s} bytes, more than the {MAX_DOCUMENT} a manifest may have"
                ),
            })
        }
        None => (MAX_DOCUMENT, "a manifest may have"),
    };
    let url = client.url(&format!("manifests/{target}"));
    let resp = client.send("GET", &url, &[("Accept", manifest::ACCEPT)], Payload::Empty)?;
    let status = resp.status().as_u16();
    match status {
        200 => {}
        404 => {
            let body = read_small(resp, &url).unwrap_or_default();
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            let code = v["errors"][0]["code"].as_str().unwrap_or("");
            return Err(if code == "NAME_UNKNOWN" {
                Error::AccessDenied(reference.familiar_repository())
            } else {
                Error::ManifestUnknown(reference.familiar())
            });
        }
        401 | 403 => return Err(Error::AccessDenied(reference.familiar_repository())),
        s => return Err(status_error(resp, &url, s)),
    }
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = read_limited(resp, &url, limit)?.map_err(|_| Error::TooLarge {
        what: what(),
        limit,
        why,
    })?;
    if let Some(s) = size.filter(|s| *s != body.len() as u64) {
        return Err(Error::TooShort {
            what: what(),
            expected: s,
            received: body.len() as u64,
        });
    }
    let digest = sha256_digest(&body);
    if target.starts_with("sha256:") && digest != target {
        return Err(Error::DigestMismatch {
            what: format!("manifest {target}"),
            expected: target.to_string(),
            actual: digest,
        });
    }
    Ok((body, ct, digest))
}

/// The image config: no more bytes than its descriptor gives, read into memory whole.
fn fetch_config(client: &Client, d: &Descriptor, reference: &Reference) -> Result<Vec<u8>, Error> {
    let what = || format!("config {}", d.digest);
    let size = declared_size(d, "config", reference)?;
    if size > MAX_DOCUMENT {
        return Err(Error::BadManifest {
            reference: reference.familiar(),
            message: format!(
                "it gives config {} {size} bytes, more than the {MAX_DOCUMENT} a config may have",
                d.digest
            ),
        });
    }
    let url = client.url(&format!("blobs/{}", d.digest));
    let resp = client.send("GET", &url, &[], Payload::Empty)?;
    let status = resp.status().as_u16();
    if status != 200 {
        return Err(status_error(resp, &url, status));
    }
    let body = read_limited(resp, &url, size)?.map_err(|_| Error::TooLarge {
        what: what(),
        limit: size,
        why: "its descriptor gives",
    })?;
    if body.len() as u64 != size {
        return Err(Error::TooShort {
            what: what(),
            expected: size,
            received: body.len() as u64,
        });
    }
    let actual = sha256_digest(&body);
    if actual != d.digest {
        return Err(Error::DigestMismatch {
            what: format!("blob {}", d.digest),
            expected: d.digest.clone(),
            actual,
        });
    }
    Ok(body)
}

/// The size a descriptor gives, which every read of the blob is held to; a descriptor without
/// one (the distribution spec requires it) is refused.
fn declared_size(d: &Descriptor, kind: &str, reference: &Reference) -> Result<u64, Error> {
    u64::try_from(d.size)
        .ok()
        .filter(|s| *s > 0)
        .ok_or_else(|| Error::BadManifest {
            reference: reference.familiar(),
            message: format!("{kind} {} has no size", d.digest),
        })
}

fn stage(
    client: &Client,
    store_stager: &hako_image::Stager,
    d: &Descriptor,
    size: u64,
) -> Result<StagedLayer, Error> {
    let url = client.url(&format!("blobs/{}", d.digest));
    let resp = client.send("GET", &url, &[], Payload::Empty)?;
    let status = resp.status().as_u16();
    if status != 200 {
        return Err(status_error(resp, &url, status));
    }
    let wrong_size = std::sync::Mutex::new(None);
    let reader = Resuming {
        client,
        url: url.clone(),
        what: format!("layer {}", d.digest),
        body: Some(resp.into_body().into_reader()),
        offset: 0,
        size,
        resumes: 0,
        wrong_size: &wrong_size,
    };
    let staged = store_stager.stage_layer(reader, Some(&d.digest));
    // The extraction saw only a read error; the reader knows what was wrong.
    if let Some(e) = wrong_size.lock().ok().and_then(|mut w| w.take()) {
        return Err(e);
    }
    staged.map_err(|e| match e {
        hako_image::Error::DigestMismatch { expected, actual } => Error::DigestMismatch {
            what: format!("layer {}", d.digest),
            expected,
            actual,
        },
        other => Error::Store(other),
    })
}

/// How many layers are downloaded at the same time, however many the image has: Docker takes
/// 3; 8 keeps an image of up to 8 layers (the bench image has 5) downloading all at once, as
/// before there was a bound.
const DOWNLOADS: usize = 8;

/// How many times one blob download may be resumed after its connection
/// broke or stalled.
const RESUMES: u32 = 5;

/// A blob body that survives broken connections: on a read error, or an
/// end before the announced size, it asks again for the rest with
/// `Range: bytes=<offset>-` and carries on, so the digest check and the
/// extraction downstream see one unbroken stream.
///
/// It never yields more than the descriptor's size: a registry that sends
/// more (junk after the blob, or an endless body) fails the read once one
/// byte past the size arrived, so no more than that is ever written.
struct Resuming<'a> {
    client: &'a Client,
    url: String,
    /// The blob, for errors.
    what: String,
    body: Option<ureq::BodyReader<'static>>,
    offset: u64,
    size: u64,
    resumes: u32,
    /// Where a size error is recorded for the caller, which gets only an I/O
    /// error back through the extraction.
    wrong_size: &'a std::sync::Mutex<Option<Error>>,
}

/// An answer to a resume that says the blob ends where the last one did.
const RANGE_NOT_SATISFIABLE: u16 = 416;

impl Resuming<'_> {
    /// Records a size error and returns the I/O error that stops the extraction.
    fn size_error(&self, e: Error) -> std::io::Error {
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string());
        if let Ok(mut slot) = self.wrong_size.lock() {
            slot.get_or_insert(e);
        }
        io
    }

    fn too_short(&self) -> std::io::Error {
        self.size_error(Error::TooShort {
            what: self.what.clone(),
            expected: self.size,
            received: self.offset,
        })
    }

    fn reopen(&mut self) -> std::io::Result<()> {
        self.body = None;
        let range = format!("bytes={}-", self.offset);
        let resp = self
            .client
            .send("GET", &self.url, &[("Range", &range)], Payload::Empty)
            .map_err(std::io::Error::other)?;
        match resp.status().as_u16() {
            206 => {
                let want = format!("bytes {}-", self.offset);
                let ok = resp
                    .headers()
                    .get("content-range")
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v.starts_with(&want));
                if !ok {
                    return Err(std::io::Error::other(format!(
                        "{}: the registry answered the resume from byte {} with another range",
                        self.url, self.offset
                    )));
                }
                self.body = Some(resp.into_body().into_reader());
            }
            200 => {
                // No range support: start over and skip what was already read.
                let mut body = resp.into_body().into_reader();
                let skipped =
                    std::io::copy(&mut (&mut body).take(self.offset), &mut std::io::sink())?;
                if skipped != self.offset {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        format!("{}: blob shorter on retry", self.url),
                    ));
                }
                self.body = Some(body);
            }
            RANGE_NOT_SATISFIABLE => return Err(self.too_short()),
            s => {
                return Err(std::io::Error::other(status_error(resp, &self.url, s)));
            }
        }
        Ok(())
    }
}

impl std::io::Read for Resuming<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if let Some(e) = self
            .wrong_size
            .lock()
            .ok()
            .and_then(|w| w.as_ref().map(|e| e.to_string()))
        {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, e));
        }
        // Past the size only one byte is asked for, to see that the body ends there.
        let room = (self.size - self.offset).clamp(1, buf.len() as u64) as usize;
        let buf = &mut buf[..room];
        loop {
            let err = match self.body.as_mut().map(|b| b.read(buf)) {
                Some(Ok(0)) if self.offset < self.size => std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "connection closed before the end of the blob",
                ),
                Some(Ok(n)) if self.offset == self.size && n > 0 => {
                    return Err(self.size_error(Error::TooLarge {
                        what: self.what.clone(),
                        limit: self.size,
                        why: "its descriptor gives",
                    }))
                }
                Some(Ok(n)) => {
                    self.offset += n as u64;
                    return Ok(n);
                }
                Some(Err(e)) => e,
                None => std::io::Error::other("no connection"),
            };
            if self.resumes >= RESUMES {
                return Err(std::io::Error::new(
                    err.kind(),
                    format!(
                        "{}: {err} (gave up after {} resumes at byte {})",
                        self.url, self.resumes, self.offset
                    ),
                ));
            }
            self.resumes += 1;
            std::thread::sleep(std::time::Duration::from_millis(
                200 * u64::from(self.resumes),
            ));
            if let Err(e) = self.reopen() {
                if self.resumes >= RESUMES || e.kind() == std::io::ErrorKind::InvalidData {
                    return Err(e);
                }
            }
        }
    }
}

/// The client to pull `reference` with, and its top manifest: for Docker
/// Hub, the first configured mirror that serves the manifest, else Docker
/// Hub itself, as dockerd does with `registry-mirrors`.
fn connect(
    reference: &Reference,
    target: &str,
    creds: Option<&Credentials>,
) -> Result<(Client, FetchedManifest), Error> {
    if reference.domain() == "docker.io" {
        for m in &crate::config::RegistryConfig::load()?.registry_mirrors {
            let Ok(client) = Client::mirror(m, reference.path()) else {
                continue;
            };
            if let Ok(found) = fetch_manifest(&client, target, reference, None) {
                return Ok((client, found));
            }
        }
    }
    let mut client = Client::new(reference.domain(), reference.path(), false)?;
    if let Some(c) = creds {
        client = client.with_credentials(c.clone());
    }
    let found = fetch_manifest(&client, target, reference, None)?;
    Ok((client, found))
}

/// The distribution manifest `reference` names, as the registry serves it:
/// an image manifest, or the index / manifest list of a multi-platform
/// image (`hako manifest inspect`). The bytes are checked to be JSON of a
/// known manifest kind, and against the digest when the reference has one.
pub fn fetch_raw_manifest(reference: &Reference) -> Result<Vec<u8>, Error> {
    let target = reference.digest().or(reference.tag()).unwrap_or("latest");
    let (_, (bytes, ct, _)) = connect(reference, target, None)?;
    classify(&ct, &bytes, &reference.familiar())?;
    Ok(bytes)
}

/// Pulls `reference` into `store`, reporting typed [`Progress`] to `progress`
/// (which ends the pull by returning an error).
///
/// Nothing becomes visible in the store unless every blob checked out:
/// layers are staged under `tmp/` and committed together at the end.
/// All worker threads are joined before this returns.
pub fn pull(
    store: &ImageStore,
    reference: &Reference,
    opts: &PullOptions,
    progress: &mut ProgressSink<'_>,
) -> Result<Pulled, Error> {
    pull_as(store, reference, opts, None, progress)
}

/// [`pull`] with `creds` for the registry instead of the stored ones (the Engine API's
/// `X-Registry-Auth`: the client's login, not the server's).
pub fn pull_as(
    store: &ImageStore,
    reference: &Reference,
    opts: &PullOptions,
    creds: Option<&Credentials>,
    progress: &mut ProgressSink<'_>,
) -> Result<Pulled, Error> {
    let target = reference
        .digest()
        .or(reference.tag())
        .unwrap_or("latest")
        .to_string();
    progress(Progress::PullingFrom {
        tag: target.clone(),
        repository: reference.path().to_string(),
    })
    .map_err(out_err)?;

    let (client, (top, ct, digest)) = connect(reference, &target, creds)?;
    crate::signatures::check_pull(&client, reference, &digest)?;
    let (manifest_bytes, manifest) = match classify(&ct, &top, &reference.familiar())? {
        Kind::Manifest => (top.clone(), parse_manifest(&top, reference)?),
        Kind::Index => {
            let index: manifest::Index =
                serde_json::from_slice(&top).map_err(|e| Error::BadManifest {
                    reference: reference.familiar(),
                    message: e.to_string(),
                })?;
            let want = opts.platform.clone().unwrap_or_else(Platform::host);
            let entry = manifest::select(&index, &want)?;
            let size = declared_size(entry, "manifest", reference)?;
            let (bytes, ct, _) = fetch_manifest(&client, &entry.digest, reference, Some(size))?;
            if classify(&ct, &bytes, &reference.familiar())? != Kind::Manifest {
                return Err(Error::BadManifest {
                    reference: reference.familiar(),
                    message: "index entry is not an image manifest".into(),
                });
            }
            let m = parse_manifest(&bytes, reference)?;
            (bytes, m)
        }
    };
    // Refused before anything is downloaded.
    if manifest.layers.len() > hako_image::MAX_LAYERS {
        return Err(hako_image::Error::TooManyLayers(manifest.layers.len()).into());
    }
    for l in &manifest.layers {
        if !l.media_type.is_empty() && !LAYER_TYPES.contains(&l.media_type.as_str()) {
            return Err(Error::UnsupportedMediaType(format!(
                "{} (layer {})",
                l.media_type, l.digest
            )));
        }
    }

    let sizes = manifest
        .layers
        .iter()
        .map(|l| declared_size(l, "layer", reference))
        .collect::<Result<Vec<u64>, Error>>()?;
    let config = fetch_config(&client, &manifest.config, reference)?;
    check_platform(&config, reference, opts, progress)?;
    let chains = ImageStore::chain_ids_of(&config)?;
    if chains.len() != manifest.layers.len() {
        return Err(Error::BadManifest {
            reference: reference.familiar(),
            message: format!(
                "manifest has {} layers but the config lists {}",
                manifest.layers.len(),
                chains.len()
            ),
        });
    }
    let image_id = sha256_digest(&config);

    let mut missing = Vec::new();
    for (i, (l, chain)) in manifest.layers.iter().zip(&chains).enumerate() {
        if store.has_layer(chain)? && store.has_blob(&l.digest) {
            progress(layer(&l.digest, LayerStatus::AlreadyExists)).map_err(out_err)?;
        } else {
            progress(layer(&l.digest, LayerStatus::PullingFsLayer)).map_err(out_err)?;
            missing.push(i);
        }
    }

    let mut staged: Vec<Option<Result<StagedLayer, Error>>> =
        (0..manifest.layers.len()).map(|_| None).collect();
    if !missing.is_empty() {
        let stager = store.stager();
        let (tx, rx) = mpsc::channel::<(usize, Result<StagedLayer, Error>)>();
        // A few downloads at a time, however many layers the image has.
        let next = std::sync::atomic::AtomicUsize::new(0);
        let failed = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| -> Result<(), Error> {
            for _ in 0..missing.len().min(DOWNLOADS) {
                let tx = tx.clone();
                let (client, stager, layers, sizes) = (&client, &stager, &manifest.layers, &sizes);
                let (missing, next, failed) = (&missing, &next, &failed);
                s.spawn(move || loop {
                    use std::sync::atomic::Ordering::Relaxed;
                    // After a failure the pull fails: no new downloads.
                    if failed.load(Relaxed) {
                        break;
                    }
                    let Some(&i) = missing.get(next.fetch_add(1, Relaxed)) else {
                        break;
                    };
                    let r = stage(client, stager, &layers[i], sizes[i]);
                    if r.is_err() {
                        failed.store(true, Relaxed);
                    }
                    if tx.send((i, r)).is_err() {
                        break;
                    }
                });
            }
            drop(tx);
            // Printing happens here, on the caller's thread, as layers land.
            for (i, r) in rx {
                let d = &manifest.layers[i].digest;
                if r.is_ok() {
                    progress(layer(d, LayerStatus::DownloadComplete)).map_err(out_err)?;
                    progress(layer(d, LayerStatus::PullComplete)).map_err(out_err)?;
                }
                staged[i] = Some(r);
            }
            Ok(())
        })?;
    }

    let mut layers = Vec::with_capacity(staged.len());
    for slot in staged {
        match slot {
            None => layers.push(NewLayer::Existing),
            Some(Ok(s)) => layers.push(NewLayer::Staged(s)),
            Some(Err(e)) => return Err(e),
        }
    }
    let up_to_date = missing.is_empty()
        && reference.tag().is_some()
        && store
            .resolve(&reference.to_string())
            .is_ok_and(|i| i.id == image_id);
    let tag = reference.tag().map(|_| reference.clone());
    let image = store.commit_image(NewImage {
        manifest: manifest_bytes,
        config,
        layers,
        tag,
        repo_digest: Some((reference.repository(), digest.clone())),
    })?;
    progress(Progress::Digest(digest.clone())).map_err(out_err)?;
    progress(Progress::PullDone {
        reference: reference.familiar(),
        downloaded: !up_to_date,
    })
    .map_err(out_err)?;
    Ok(Pulled {
        image,
        digest,
        downloaded: !up_to_date,
    })
}

pub(crate) fn parse_manifest(bytes: &[u8], reference: &Reference) -> Result<Manifest, Error> {
    serde_json::from_slice(bytes).map_err(|e| Error::BadManifest {
        reference: reference.familiar(),
        message: e.to_string(),
    })
}

/// Refuses images for another OS; for another architecture, refuses when
/// `--platform` asked otherwise, and warns (as Docker does) when not.
pub(crate) fn check_platform(
    config: &[u8],
    reference: &Reference,
    opts: &PullOptions,
    progress: &mut ProgressSink<'_>,
) -> Result<(), Error> {
    let v: serde_json::Value = serde_json::from_slice(config).map_err(|e| Error::BadManifest {
        reference: reference.familiar(),
        message: format!("image config: {e}"),
    })?;
    let actual = Platform {
        os: v["os"].as_str().unwrap_or("linux").to_string(),
        architecture: v["architecture"].as_str().unwrap_or("").to_string(),
        variant: v["variant"].as_str().map(str::to_string),
    };
    if actual.os != "linux" {
        return Err(Error::OsMismatch(actual.os));
    }
    let want = opts.platform.clone().unwrap_or_else(Platform::host);
    if actual.architecture == want.architecture {
        return Ok(());
    }
    if opts.platform.is_some() {
        return Err(Error::PlatformMismatch {
            reference: reference.familiar(),
            wanted: want.to_string(),
            actual: actual.to_string(),
        });
    }
    progress(Progress::Warning(format!(
        "The requested image's platform ({actual}) does not match the detected host platform ({want}) and no specific platform was requested"
    )))
    .map_err(out_err)
}
