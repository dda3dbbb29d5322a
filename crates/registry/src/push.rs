//! `hako push`: blobs the registry lacks (monolithic uploads, in
//! parallel), then the manifest, byte for byte as stored.

use std::sync::mpsc;

use hako_image::{ImageStore, Reference};

use crate::client::{status_error, Client, Payload};
use crate::manifest::{Manifest, OCI_MANIFEST};
use crate::signatures::{SignOptions, Signer};
use crate::{short, Error, LayerStatus, Progress, ProgressSink};

fn out_err(e: std::io::Error) -> Error {
    Error::Output(e)
}

pub(crate) fn blob_exists(client: &Client, digest: &str) -> Result<bool, Error> {
    let url = client.url(&format!("blobs/{digest}"));
    let resp = client.send("HEAD", &url, &[], Payload::Empty)?;
    match resp.status().as_u16() {
        200 => Ok(true),
        404 => Ok(false),
        s => Err(status_error(resp, &url, s)),
    }
}

fn encode_digest(d: &str) -> String {
    d.replace(':', "%3A")
}

/// Starts an upload session and sends the whole blob in its closing PUT.
pub(crate) fn upload(client: &Client, digest: &str, body: Payload<'_>) -> Result<(), Error> {
    let url = client.url("blobs/uploads/");
    let resp = client.send("POST", &url, &[("Content-Length", "0")], Payload::Empty)?;
    let status = resp.status().as_u16();
    if status != 202 {
        return Err(status_error(resp, &url, status));
    }
    let location = resp
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| Error::Status {
            url: url.clone(),
            status,
            message: "upload started without a Location".into(),
        })?;
    let loc = client.absolute(location);
    let sep = if loc.contains('?') { '&' } else { '?' };
    let put = format!("{loc}{sep}digest={}", encode_digest(digest));
    let resp = client.send(
        "PUT",
        &put,
        &[("Content-Type", "application/octet-stream")],
        body,
    )?;
    match resp.status().as_u16() {
        201 | 204 => Ok(()),
        s => Err(status_error(resp, &put, s)),
    }
}

fn is_foreign(media_type: &str) -> bool {
    media_type.contains("foreign") || media_type.contains("nondistributable")
}

/// Pushes the local image tagged `reference` to its registry, reporting
/// typed [`Progress`]. Returns the manifest digest.
pub fn push(
    store: &ImageStore,
    reference: &Reference,
    progress: &mut ProgressSink<'_>,
) -> Result<String, Error> {
    push_as(store, reference, None, progress)
}

/// [`push`] with `creds` for the registry instead of the stored ones (the Engine API's
/// `X-Registry-Auth`).
pub fn push_as(
    store: &ImageStore,
    reference: &Reference,
    creds: Option<&crate::Credentials>,
    progress: &mut ProgressSink<'_>,
) -> Result<String, Error> {
    push_signed(store, reference, creds, &SignOptions::default(), progress).map(|(d, _)| d)
}

/// [`push_as`], then signs the manifest pushed as `sign` asks (`hako push --sign-by…`).
/// Keys and signature storage are checked before anything is uploaded. Returns the manifest
/// digest and a line per signature written.
pub fn push_signed(
    store: &ImageStore,
    reference: &Reference,
    creds: Option<&crate::Credentials>,
    sign: &SignOptions,
    progress: &mut ProgressSink<'_>,
) -> Result<(String, Vec<String>), Error> {
    let reference = match reference.tag() {
        Some(_) => reference.clone(),
        None => reference.with_tag("latest")?,
    };
    let image = match store.resolve(&reference.to_string()) {
        Ok(i) => i,
        Err(hako_image::Error::NotFound(_)) => {
            return Err(Error::Store(hako_image::Error::NotFound(format!(
                "An image does not exist locally with the tag: {}",
                reference.familiar_repository()
            ))))
        }
        Err(e) => return Err(e.into()),
    };
    let signer = Signer::prepare(sign, &reference)?;
    progress(Progress::PushRefersTo {
        repository: reference.repository(),
    })
    .map_err(out_err)?;
    let (digest, manifest_bytes) = store.manifest_of(&image.id)?;
    let manifest: Manifest =
        serde_json::from_slice(&manifest_bytes).map_err(|e| Error::BadManifest {
            reference: reference.familiar(),
            message: e.to_string(),
        })?;
    let diff_ids = image.config.rootfs().diff_ids().to_vec();
    let label = |i: usize, status: LayerStatus| Progress::Layer {
        id: short(diff_ids.get(i).map_or(&manifest.layers[i].digest, |d| d)).to_string(),
        status,
    };
    let mut client = Client::new(reference.domain(), reference.path(), true)?;
    if let Some(c) = creds {
        client = client.with_credentials(c.clone());
    }

    let order: Vec<usize> = (0..manifest.layers.len()).rev().collect();
    for &i in &order {
        progress(label(i, LayerStatus::Preparing)).map_err(out_err)?;
    }
    let mut paths = Vec::with_capacity(manifest.layers.len());
    for l in &manifest.layers {
        paths.push(if is_foreign(&l.media_type) {
            None
        } else {
            Some(store.existing_blob(&l.digest)?)
        });
    }
    // Authenticate once up front so the parallel uploads share a token.
    blob_exists(&client, &manifest.config.digest)?;

    let (tx, rx) = mpsc::channel::<(usize, Result<LayerStatus, Error>)>();
    let mut first_err = None;
    std::thread::scope(|s| -> Result<(), Error> {
        for &i in &order {
            let tx = tx.clone();
            let (client, d, path) = (&client, &manifest.layers[i], &paths[i]);
            s.spawn(move || {
                let r = match path {
                    None => Ok(LayerStatus::SkippedForeign),
                    Some(p) => match blob_exists(client, &d.digest) {
                        Ok(true) => Ok(LayerStatus::LayerAlreadyExists),
                        Ok(false) => {
                            upload(client, &d.digest, Payload::File(p)).map(|_| LayerStatus::Pushed)
                        }
                        Err(e) => Err(e),
                    },
                };
                let _ = tx.send((i, r));
            });
        }
        drop(tx);
        for (i, r) in rx {
            match r {
                Ok(what) => progress(label(i, what)).map_err(out_err)?,
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        Ok(())
    })?;
    if let Some(e) = first_err {
        return Err(e);
    }

    if !blob_exists(&client, &manifest.config.digest)? {
        let p = store.existing_blob(&manifest.config.digest)?;
        upload(&client, &manifest.config.digest, Payload::File(&p))?;
    }
    let tag = reference.tag().unwrap_or("latest");
    let media_type = manifest
        .media_type
        .clone()
        .unwrap_or_else(|| OCI_MANIFEST.to_string());
    let url = client.url(&format!("manifests/{tag}"));
    let resp = client.send(
        "PUT",
        &url,
        &[("Content-Type", media_type.as_str())],
        Payload::Bytes(&manifest_bytes),
    )?;
    match resp.status().as_u16() {
        200..=202 => {}
        s => return Err(status_error(resp, &url, s)),
    }
    progress(Progress::Pushed {
        tag: tag.to_string(),
        digest: digest.clone(),
        size: manifest_bytes.len() as u64,
    })
    .map_err(out_err)?;
    let signed = match signer {
        Some(s) => s.sign(&client, &digest)?,
        None => Vec::new(),
    };
    Ok((digest, signed))
}
