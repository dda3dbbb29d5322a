//! The registry's side of image trust (crates/trust): the policy check of a pull, the
//! signatures of a push, and the repository access both lend `hako_trust`.

use std::path::PathBuf;

use hako_image::Reference;
use hako_trust::{ImageRef, Policy, RegistriesD, SignatureStore, SigstorePrivateKey};

use crate::client::{read_limited, status_error, Client, Payload, MAX_DOCUMENT};
use crate::{sha256_digest, Error};

/// How `hako push` signs what it pushed.
#[derive(Clone, Debug, Default)]
pub struct SignOptions {
    /// A sigstore private key (cosign's encrypted PEM): the signature goes to the
    /// `sha256-<hex>.sig` tag beside the image.
    pub sigstore_private_key: Option<PathBuf>,
    /// A GPG key fingerprint: the simple signature goes to the lookaside staging directory.
    pub gpg_fingerprint: Option<String>,
    /// The passphrase of either key, in a file; none means an empty passphrase (sigstore)
    /// or gpg's own prompt / agent.
    pub passphrase_file: Option<PathBuf>,
}

impl SignOptions {
    fn any(&self) -> bool {
        self.sigstore_private_key.is_some() || self.gpg_fingerprint.is_some()
    }
}

fn trust_ref(reference: &Reference) -> Result<ImageRef, Error> {
    ImageRef::parse(&reference.to_string()).map_err(|message| Error::BadManifest {
        reference: reference.familiar(),
        message,
    })
}

impl SignatureStore for Client {
    fn manifest(&self, tag: &str) -> Result<Option<Vec<u8>>, hako_trust::Error> {
        let url = self.url(&format!("manifests/{tag}"));
        let accept = "application/vnd.oci.image.manifest.v1+json";
        let resp = self
            .send("GET", &url, &[("Accept", accept)], Payload::Empty)
            .map_err(storage(&url))?;
        match resp.status().as_u16() {
            200 => read_limited(resp, &url, MAX_DOCUMENT)
                .map_err(storage(&url))?
                .map(Some)
                .map_err(|_| {
                    storage(&url)(Error::TooLarge {
                        what: format!("signature manifest {tag}"),
                        limit: MAX_DOCUMENT,
                        why: "a manifest may have",
                    })
                }),
            404 => Ok(None),
            s => Err(storage(&url)(status_error(resp, &url, s))),
        }
    }

    fn blob(&self, digest: &str, size: u64) -> Result<Vec<u8>, hako_trust::Error> {
        let url = self.url(&format!("blobs/{digest}"));
        let resp = self
            .send("GET", &url, &[], Payload::Empty)
            .map_err(storage(&url))?;
        let status = resp.status().as_u16();
        if status != 200 {
            return Err(storage(&url)(status_error(resp, &url, status)));
        }
        let body = read_limited(resp, &url, size)
            .map_err(storage(&url))?
            .map_err(|_| {
                storage(&url)(Error::TooLarge {
                    what: format!("signature {digest}"),
                    limit: size,
                    why: "its descriptor gives",
                })
            })?;
        let actual = sha256_digest(&body);
        if actual != digest {
            return Err(storage(&url)(Error::DigestMismatch {
                what: format!("signature {digest}"),
                expected: digest.to_string(),
                actual,
            }));
        }
        Ok(body)
    }

    fn put_blob(&self, digest: &str, data: &[u8]) -> Result<(), hako_trust::Error> {
        let url = self.url(&format!("blobs/{digest}"));
        if !crate::push::blob_exists(self, digest).map_err(storage(&url))? {
            crate::push::upload(self, digest, Payload::Bytes(data)).map_err(storage(&url))?;
        }
        Ok(())
    }

    fn put_manifest(
        &self,
        tag: &str,
        media_type: &str,
        data: &[u8],
    ) -> Result<(), hako_trust::Error> {
        let url = self.url(&format!("manifests/{tag}"));
        let resp = self
            .send(
                "PUT",
                &url,
                &[("Content-Type", media_type)],
                Payload::Bytes(data),
            )
            .map_err(storage(&url))?;
        match resp.status().as_u16() {
            200..=202 => Ok(()),
            s => Err(storage(&url)(status_error(resp, &url, s))),
        }
    }
}

fn storage(url: &str) -> impl Fn(Error) -> hako_trust::Error + '_ {
    move |e| hako_trust::Error::Storage {
        what: url.to_string(),
        kind: e.kind(),
        message: match e {
            Error::Status {
                status, message, ..
            } => format!("{status}: {message}"),
            other => other.to_string(),
        },
    }
}

/// The policy check of a pull, before anything is downloaded: `digest` is the manifest (or
/// index) the reference resolved to. Returns nothing when the image may be pulled.
pub(crate) fn check_pull(
    client: &Client,
    reference: &Reference,
    digest: &str,
) -> Result<(), Error> {
    let policy = Policy::load()?;
    if policy.accepts_everything() {
        return Ok(());
    }
    let registries = RegistriesD::load()?;
    hako_trust::verify(&policy, &registries, &trust_ref(reference)?, digest, client)?;
    Ok(())
}

/// Whether the policy in effect accepts every image without a check (Debian's default policy,
/// or no policy file): then nothing else about an image needs to be looked up.
pub fn policy_accepts_everything() -> Result<bool, Error> {
    Ok(Policy::load()?.accepts_everything())
}

/// The fingerprint of what the policy in effect requires of `reference` (its requirements
/// and their keys), under which a verdict about an image is recorded; `None` when the policy
/// accepts it without any check.
pub fn policy_fingerprint(reference: &Reference) -> Result<Option<String>, Error> {
    let policy = Policy::load()?;
    if policy.accepts_everything() {
        return Ok(None);
    }
    Ok(hako_trust::requirements_fingerprint(
        &policy,
        &trust_ref(reference)?,
    )?)
}

/// The policy check of an image already in the store, which `run` and `create` make before
/// using it as `reference` (it may have been pulled before the policy required signatures, or
/// never pulled: built, loaded, imported or tagged here). `digests` are the manifest digests
/// it was pulled as from `reference`'s repository; their signatures are read from the
/// registry as a pull reads them, and one that verifies accepts the image. `known` says
/// whether a verdict was recorded under a fingerprint (see [`policy_fingerprint`]). Returns
/// the fingerprint to record after a fresh verdict, `None` when nothing was checked.
pub fn check_stored(
    reference: &Reference,
    digests: &[String],
    known: &dyn Fn(&str) -> bool,
) -> Result<Option<String>, Error> {
    let policy = Policy::load()?;
    if policy.accepts_everything() {
        return Ok(None);
    }
    let image = trust_ref(reference)?;
    let Some(fingerprint) = hako_trust::requirements_fingerprint(&policy, &image)? else {
        return Ok(None);
    };
    if known(&fingerprint) {
        return Ok(None);
    }
    if digests.is_empty() {
        hako_trust::verify_unsigned(
            &policy,
            &image,
            &format!(
                "the local image was not pulled from {} (it was built, loaded, imported or tagged here), so there is no signature to verify; pull it",
                reference.repository()
            ),
        )?;
        return Ok(Some(fingerprint));
    }
    let registries = RegistriesD::load()?;
    let client = Client::new(reference.domain(), reference.path(), false)?;
    let mut refused = None;
    for d in digests {
        match hako_trust::verify(&policy, &registries, &image, d, &client) {
            Ok(_) => return Ok(Some(fingerprint)),
            Err(e) => refused = Some(e),
        }
    }
    Err(refused.expect("at least one digest").into())
}

/// [`check_stored`] for an image with no name (never tagged nor pulled), run by its ID
/// `id`: the policy's `default` decides.
pub fn check_stored_unnamed(id: &str) -> Result<(), Error> {
    let policy = Policy::load()?;
    if policy.accepts_everything() {
        return Ok(());
    }
    hako_trust::verify_unnamed(
        &policy,
        id,
        "the image has no name and was never pulled, so there is no signature to verify",
    )?;
    Ok(())
}

/// What [`SignOptions`] turn into before the push starts: a decrypted key and the checked
/// configuration, so a wrong passphrase or a missing lookaside fails before any upload.
pub(crate) struct Signer {
    opts: SignOptions,
    registries: RegistriesD,
    sigstore: Option<SigstorePrivateKey>,
    image: ImageRef,
}

impl Signer {
    pub(crate) fn prepare(
        opts: &SignOptions,
        reference: &Reference,
    ) -> Result<Option<Signer>, Error> {
        if !opts.any() {
            return Ok(None);
        }
        let image = trust_ref(reference)?;
        let registries = RegistriesD::load()?;
        let passphrase = match &opts.passphrase_file {
            Some(p) => {
                let mut s = std::fs::read(p).map_err(|error| Error::Io {
                    path: p.clone(),
                    error,
                })?;
                // A passphrase file's trailing newline is not part of the passphrase.
                while s.last().is_some_and(|c| *c == b'\n' || *c == b'\r') {
                    s.pop();
                }
                s
            }
            None => Vec::new(),
        };
        let sigstore = match &opts.sigstore_private_key {
            Some(p) => {
                let pem = std::fs::read(p).map_err(|error| Error::Io {
                    path: p.clone(),
                    error,
                })?;
                Some(SigstorePrivateKey::decrypt(
                    &pem,
                    &passphrase,
                    &p.display().to_string(),
                )?)
            }
            None => None,
        };
        if sigstore.is_some() && !registries.use_sigstore_attachments(&image) {
            return Err(hako_trust::Error::Config {
                path: registries.dir.clone().unwrap_or_else(RegistriesD::dir),
                message: format!(
                    "use-sigstore-attachments is not enabled for {}: sigstore signatures would not be stored in the registry",
                    image.repository()
                ),
            }
            .into());
        }
        if opts.gpg_fingerprint.is_some() && registries.write_url(&image).is_none() {
            return Err(hako_trust::Error::Config {
                path: registries.dir.clone().unwrap_or_else(RegistriesD::dir),
                message: format!(
                    "no lookaside-staging or lookaside is configured for {}: there is nowhere to write its signature",
                    image.repository()
                ),
            }
            .into());
        }
        Ok(Some(Signer {
            opts: opts.clone(),
            registries,
            sigstore,
            image,
        }))
    }

    /// Signs the manifest `digest` just pushed; returns one line per signature written.
    pub(crate) fn sign(&self, client: &Client, digest: &str) -> Result<Vec<String>, Error> {
        let mut done = Vec::new();
        if let Some(key) = &self.sigstore {
            let tag =
                hako_trust::sign_sigstore(&self.registries, &self.image, digest, key, client)?;
            done.push(format!("Storing signatures: sigstore signature as {tag}"));
        }
        if let Some(fpr) = &self.opts.gpg_fingerprint {
            let path = hako_trust::sign_gpg(
                &self.registries,
                &self.image,
                digest,
                fpr,
                self.opts.passphrase_file.as_deref(),
            )?;
            done.push(format!(
                "Storing signatures: simple signature in {}",
                path.display()
            ));
        }
        Ok(done)
    }
}
