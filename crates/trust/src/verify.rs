//! Policy evaluation of a pulled image, and writing signatures after a push.

use std::cell::OnceCell;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::identity::{ImageRef, SignedIdentity};
use crate::policy::{KeySource, Policy, PolicySource, Requirement, Scope};
use crate::registries_d::{signature_url, RegistriesD};
use crate::sigstore::SigstorePrivateKey;
use crate::{gpg, sha256_digest, sigstore, simple, Error};

/// The media type of a sigstore signature layer (the simple-signing payload).
pub const SIGSTORE_LAYER_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The layer annotation holding the base64 signature.
const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// No payload or signature file a verifier reads may be larger (a manifest's limit).
const MAX_SIGNATURE: u64 = 4 << 20;
/// Signatures read per image at most; a store that offers more is not trusted to end.
const MAX_SIGNATURES: usize = 64;

/// Access to the repository an image is pulled from or pushed to, lent by the registry
/// client (its connection and credentials).
pub trait SignatureStore {
    /// The manifest tagged `tag` in the repository, or `None` when there is none.
    fn manifest(&self, tag: &str) -> Result<Option<Vec<u8>>, Error>;
    /// A blob of the repository: at most `size` bytes, which hash to `digest`.
    fn blob(&self, digest: &str, size: u64) -> Result<Vec<u8>, Error>;
    /// Uploads a blob unless the repository has it.
    fn put_blob(&self, digest: &str, data: &[u8]) -> Result<(), Error>;
    /// Stores a manifest under `tag`.
    fn put_manifest(&self, tag: &str, media_type: &str, data: &[u8]) -> Result<(), Error>;
}

/// The tag sigstore signatures of `manifest_digest` live under: `sha256-<hex>.sig`.
pub fn signature_tag(manifest_digest: &str) -> String {
    format!("{}.sig", manifest_digest.replacen(':', "-", 1))
}

/// An accepted image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// The scope whose requirements applied.
    pub scope: Scope,
    /// Whether a signature was checked (not only `insecureAcceptAnything`).
    pub signed: bool,
}

fn storage(what: impl Into<String>, message: impl ToString) -> Error {
    Error::Storage {
        what: what.into(),
        message: message.to_string(),
        kind: hako_base::ErrorKind::Unavailable,
    }
}

/// A sigstore signature as stored: the payload and the base64 signature.
struct SigstoreSig {
    payload: Vec<u8>,
    signature: String,
}

/// Evaluates `policy` for the image pulled as `image` whose (top-level) manifest has
/// `digest`. An image the policy refuses is [`Error::Rejected`], naming the rule and why.
pub fn verify(
    policy: &Policy,
    registries: &RegistriesD,
    image: &ImageRef,
    digest: &str,
    store: &dyn SignatureStore,
) -> Result<Verdict, Error> {
    let (scope, reqs) = policy.requirements_for(image);
    let file = policy_file(policy);
    let sigstore_sigs: OnceCell<Vec<SigstoreSig>> = OnceCell::new();
    let simple_sigs: OnceCell<Vec<Vec<u8>>> = OnceCell::new();
    let mut signed = false;
    for (i, req) in reqs.iter().enumerate() {
        let reject = |reason: String| Error::Rejected {
            reference: image.to_string(),
            rule: format!("{file} {}[{i}] ({})", scope.describe(), req.type_name()),
            reason,
        };
        match req {
            Requirement::InsecureAcceptAnything => {}
            Requirement::Reject => {
                return Err(reject(
                    "the policy rejects every image in this scope".into(),
                ))
            }
            Requirement::SigstoreSigned { key, identity } => {
                if !registries.use_sigstore_attachments(image) {
                    return Err(reject(format!(
                        "no sigstore signature can be found: use-sigstore-attachments is not enabled for {} in {}",
                        image.repository(),
                        registries.dir.as_deref().unwrap_or(Path::new("registries.d")).display()
                    )));
                }
                let sigs = match sigstore_sigs.get() {
                    Some(s) => s,
                    None => {
                        let loaded = read_sigstore(store, digest)?;
                        sigstore_sigs.get_or_init(|| loaded)
                    }
                };
                if sigs.is_empty() {
                    return Err(reject(format!(
                        "a signature was required, but no sigstore signature exists (no tag {})",
                        signature_tag(digest)
                    )));
                }
                let what = key_name(key);
                let keys = key.load()?;
                let vk = sigstore::public_key(&keys[0], &what)?;
                let verdicts: Vec<Result<(), String>> = sigs
                    .iter()
                    .map(|s| {
                        sigstore::verify(&vk, &s.payload, &s.signature)?;
                        let claims = simple::parse(&s.payload, simple::COSIGN_TYPE)?;
                        check_claims(&claims, image, digest, identity)
                    })
                    .collect();
                accept_any(verdicts).map_err(reject)?;
                signed = true;
            }
            Requirement::SignedBy { keys, identity } => {
                let sigs = match simple_sigs.get() {
                    Some(s) => s,
                    None => {
                        let loaded = read_lookaside(registries, image, digest)?;
                        simple_sigs.get_or_init(|| loaded)
                    }
                };
                if sigs.is_empty() {
                    let why = match registries.read_url(image) {
                        Some(u) => format!("none under {u}"),
                        None => format!(
                            "no lookaside is configured for {} in {}",
                            image.repository(),
                            registries
                                .dir
                                .as_deref()
                                .unwrap_or(Path::new("registries.d"))
                                .display()
                        ),
                    };
                    return Err(reject(format!(
                        "a signature was required, but no simple signature exists ({why})"
                    )));
                }
                let key_data = keys.load()?;
                let mut verdicts = Vec::new();
                for s in sigs {
                    verdicts.push(match gpg::verify(&key_data, s)? {
                        Ok((payload, _fpr)) => simple::parse(&payload, simple::ATOMIC_TYPE)
                            .and_then(|c| check_claims(&c, image, digest, identity)),
                        Err(why) => Err(why),
                    });
                }
                accept_any(verdicts).map_err(reject)?;
                signed = true;
            }
        }
    }
    Ok(Verdict { scope, signed })
}

fn policy_file(policy: &Policy) -> String {
    match &policy.source {
        PolicySource::File(p) => p.display().to_string(),
        PolicySource::None => "(no policy file)".into(),
    }
}

/// The check of an image that has no signatures to look at (built, loaded or tagged here, or
/// never pulled from `image`'s repository): accepted when every requirement for `image` is
/// `insecureAcceptAnything`, else [`Error::Rejected`] by the first one that is not, for
/// `reason`.
pub fn verify_unsigned(policy: &Policy, image: &ImageRef, reason: &str) -> Result<(), Error> {
    let (scope, reqs) = policy.requirements_for(image);
    refuse_unsigned(policy, &image.to_string(), &scope, reqs, reason)
}

/// [`verify_unsigned`] for an image with no name at all (never tagged, never pulled: a build's
/// untagged result run by its ID), which only the policy's `default` covers.
pub fn verify_unnamed(policy: &Policy, what: &str, reason: &str) -> Result<(), Error> {
    refuse_unsigned(policy, what, &Scope::Default, &policy.default, reason)
}

fn refuse_unsigned(
    policy: &Policy,
    reference: &str,
    scope: &Scope,
    reqs: &[Requirement],
    reason: &str,
) -> Result<(), Error> {
    match reqs
        .iter()
        .enumerate()
        .find(|(_, r)| **r != Requirement::InsecureAcceptAnything)
    {
        None => Ok(()),
        Some((i, req)) => Err(Error::Rejected {
            reference: reference.to_string(),
            rule: format!(
                "{} {}[{i}] ({})",
                policy_file(policy),
                scope.describe(),
                req.type_name()
            ),
            reason: match req {
                Requirement::Reject => "the policy rejects every image in this scope".into(),
                _ => reason.to_string(),
            },
        }),
    }
}

/// What a verdict for `image` depends on, as a hex digest: its requirements and the bytes of
/// their keys; `None` when every requirement is `insecureAcceptAnything` (nothing to check).
/// A verdict recorded under this fingerprint holds until the policy or a key changes.
pub fn requirements_fingerprint(
    policy: &Policy,
    image: &ImageRef,
) -> Result<Option<String>, Error> {
    use sha2::{Digest, Sha256};
    let (scope, reqs) = policy.requirements_for(image);
    if reqs
        .iter()
        .all(|r| *r == Requirement::InsecureAcceptAnything)
    {
        return Ok(None);
    }
    let mut h = Sha256::new();
    h.update(format!("{scope:?}\n{reqs:?}\n{image}\n").as_bytes());
    for r in reqs {
        if let Requirement::SignedBy { keys: k, .. } | Requirement::SigstoreSigned { key: k, .. } =
            r
        {
            for bytes in k.load()? {
                h.update((bytes.len() as u64).to_le_bytes());
                h.update(&bytes);
            }
        }
    }
    Ok(Some(hex::encode(h.finalize())))
}

fn key_name(k: &KeySource) -> String {
    match k {
        KeySource::Path(p) => p.display().to_string(),
        KeySource::Paths(ps) => ps
            .first()
            .map_or_else(String::new, |p| p.display().to_string()),
        KeySource::Data(_) => "keyData".into(),
    }
}

/// Accepted when one signature is; else the reasons, the first of several named.
fn accept_any(verdicts: Vec<Result<(), String>>) -> Result<(), String> {
    let n = verdicts.len();
    let mut first = None;
    for v in verdicts {
        match v {
            Ok(()) => return Ok(()),
            Err(e) => {
                first.get_or_insert(e);
            }
        }
    }
    let first = first.unwrap_or_else(|| "no signature".into());
    Err(match n {
        1 => first,
        n => format!("none of {n} signatures is acceptable; the first: {first}"),
    })
}

fn check_claims(
    claims: &simple::Claims,
    image: &ImageRef,
    digest: &str,
    identity: &SignedIdentity,
) -> Result<(), String> {
    if claims.digest != digest {
        return Err(format!(
            "the signature is for manifest {}, not {digest} (the manifest was changed after signing)",
            claims.digest
        ));
    }
    if !identity.matches(image, &claims.reference) {
        return Err(format!(
            "the signature is for {}, which {} does not accept for {image}",
            claims.reference,
            identity.name()
        ));
    }
    Ok(())
}

fn read_sigstore(store: &dyn SignatureStore, digest: &str) -> Result<Vec<SigstoreSig>, Error> {
    let tag = signature_tag(digest);
    let Some(bytes) = store.manifest(&tag)? else {
        return Ok(Vec::new());
    };
    let m: Value = serde_json::from_slice(&bytes).map_err(|e| {
        storage(
            format!("signature manifest {tag}"),
            format!("not JSON: {e}"),
        )
    })?;
    let layers = m["layers"].as_array().cloned().unwrap_or_default();
    let mut out = Vec::new();
    for l in layers.iter().take(MAX_SIGNATURES) {
        if l["mediaType"].as_str() != Some(SIGSTORE_LAYER_TYPE) {
            continue;
        }
        let (Some(d), Some(size)) = (l["digest"].as_str(), l["size"].as_u64()) else {
            continue;
        };
        let Some(signature) = l["annotations"][SIGNATURE_ANNOTATION].as_str() else {
            continue;
        };
        if size > MAX_SIGNATURE {
            continue;
        }
        let payload = store.blob(d, size)?;
        out.push(SigstoreSig {
            payload,
            signature: signature.to_string(),
        });
    }
    Ok(out)
}

/// Where a lookaside URL points.
enum Lookaside {
    Dir(PathBuf),
    Http(String),
}

fn lookaside(url: &str) -> Result<Lookaside, Error> {
    if let Some(p) = url.strip_prefix("file://") {
        return Ok(Lookaside::Dir(PathBuf::from(p)));
    }
    if url.starts_with("http://") || url.starts_with("https://") {
        return Ok(Lookaside::Http(url.to_string()));
    }
    Err(Error::Config {
        path: RegistriesD::dir(),
        message: format!("lookaside {url:?}: only file://, http:// and https:// are supported"),
    })
}

fn read_lookaside(
    registries: &RegistriesD,
    image: &ImageRef,
    digest: &str,
) -> Result<Vec<Vec<u8>>, Error> {
    let Some(base) = registries.read_url(image) else {
        return Ok(Vec::new());
    };
    lookaside(&base)?;
    let mut out = Vec::new();
    for index in 1..=MAX_SIGNATURES {
        let url = signature_url(&base, image, digest, index);
        let data = match lookaside(&url)? {
            Lookaside::Dir(p) => match std::fs::File::open(&p) {
                Ok(f) => {
                    use std::io::Read as _;
                    let mut data = Vec::new();
                    f.take(MAX_SIGNATURE + 1)
                        .read_to_end(&mut data)
                        .map_err(crate::io_err(&p))?;
                    Some(data)
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => return Err(crate::io_err(&p)(e)),
            },
            Lookaside::Http(u) => http_get(&u)?,
        };
        match data {
            Some(d) if d.len() as u64 > MAX_SIGNATURE => {
                return Err(storage(url, "signature larger than 4 MiB"))
            }
            Some(d) => out.push(d),
            None => break,
        }
    }
    Ok(out)
}

fn http_get(url: &str) -> Result<Option<Vec<u8>>, Error> {
    let config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(std::time::Duration::from_secs(60)))
        .user_agent(concat!("hako/", env!("CARGO_PKG_VERSION")))
        .build();
    let agent: ureq::Agent = config.into();
    let resp = agent.get(url).call().map_err(|e| storage(url, e))?;
    match resp.status().as_u16() {
        200 => {
            use std::io::Read as _;
            let mut data = Vec::new();
            resp.into_body()
                .into_reader()
                .take(MAX_SIGNATURE + 1)
                .read_to_end(&mut data)
                .map_err(|e| storage(url, e))?;
            Ok(Some(data))
        }
        404 => Ok(None),
        s => Err(storage(url, format!("HTTP status {s}"))),
    }
}

/// Signs the manifest `digest` pushed as `image` with a sigstore private key and stores the
/// signature beside it in the registry, keeping the signatures already there. Returns the
/// signature tag.
pub fn sign_sigstore(
    registries: &RegistriesD,
    image: &ImageRef,
    digest: &str,
    key: &SigstorePrivateKey,
    store: &dyn SignatureStore,
) -> Result<String, Error> {
    if !registries.use_sigstore_attachments(image) {
        return Err(Error::Config {
            path: registries.dir.clone().unwrap_or_else(RegistriesD::dir),
            message: format!(
                "use-sigstore-attachments is not enabled for {}, so sigstore signatures cannot be stored in its registry (Podman and skopeo would not read them)",
                image.repository()
            ),
        });
    }
    let payload = simple::payload(simple::COSIGN_TYPE, image, digest);
    let signature = key.sign(&payload);
    let payload_digest = sha256_digest(&payload);
    let tag = signature_tag(digest);
    let mut layers: Vec<Value> = match store.manifest(&tag)? {
        Some(bytes) => serde_json::from_slice::<Value>(&bytes)
            .ok()
            .and_then(|m| m["layers"].as_array().cloned())
            .unwrap_or_default(),
        None => Vec::new(),
    };
    layers.push(json!({
        "mediaType": SIGSTORE_LAYER_TYPE,
        "digest": payload_digest,
        "size": payload.len(),
        "annotations": {SIGNATURE_ANNOTATION: signature},
    }));
    let diff_ids: Vec<&str> = layers.iter().filter_map(|l| l["digest"].as_str()).collect();
    let config = serde_json::to_vec(&json!({
        "architecture": "",
        "os": "",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap_or_default();
    let config_digest = sha256_digest(&config);
    store.put_blob(&payload_digest, &payload)?;
    store.put_blob(&config_digest, &config)?;
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": config.len()},
        "layers": layers,
    }))
    .unwrap_or_default();
    store.put_manifest(&tag, OCI_MANIFEST, &manifest)?;
    Ok(tag)
}

/// Signs the manifest `digest` pushed as `image` with the GPG key `fingerprint` and writes
/// the simple signature to the repository's lookaside staging directory, as
/// `signature-1` (replacing the signatures there, as containers/image does on a push).
/// Returns the file written.
pub fn sign_gpg(
    registries: &RegistriesD,
    image: &ImageRef,
    digest: &str,
    fingerprint: &str,
    passphrase_file: Option<&Path>,
) -> Result<PathBuf, Error> {
    let dir = registries.dir.clone().unwrap_or_else(RegistriesD::dir);
    let Some(base) = registries.write_url(image) else {
        return Err(Error::Config {
            path: dir,
            message: format!(
                "no lookaside-staging or lookaside is configured for {}, so there is nowhere to write its signature",
                image.repository()
            ),
        });
    };
    let Lookaside::Dir(_) = lookaside(&base)? else {
        return Err(Error::Config {
            path: dir,
            message: format!("lookaside {base:?}: signatures can only be written to a file:// URL"),
        });
    };
    let payload = simple::payload(simple::ATOMIC_TYPE, image, digest);
    let signed = gpg::sign(&payload, fingerprint, passphrase_file)?;
    let Lookaside::Dir(first) = lookaside(&signature_url(&base, image, digest, 1))? else {
        return Err(Error::Config {
            path: dir,
            message: format!("lookaside {base:?}: not a file:// URL"),
        });
    };
    let parent = first.parent().unwrap_or(Path::new("/"));
    std::fs::create_dir_all(parent).map_err(crate::io_err(parent))?;
    let tmp = parent.join(".signature-1.tmp");
    std::fs::write(&tmp, &signed).map_err(crate::io_err(&tmp))?;
    std::fs::rename(&tmp, &first).map_err(crate::io_err(&first))?;
    for index in 2..=MAX_SIGNATURES {
        let Lookaside::Dir(p) = lookaside(&signature_url(&base, image, digest, index))? else {
            break;
        };
        match std::fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
            Err(e) => return Err(crate::io_err(&p)(e)),
        }
    }
    Ok(first)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::collections::HashMap;

    /// A repository in memory.
    #[derive(Default)]
    struct Mem {
        manifests: RefCell<HashMap<String, Vec<u8>>>,
        blobs: RefCell<HashMap<String, Vec<u8>>>,
    }

    impl SignatureStore for Mem {
        fn manifest(&self, tag: &str) -> Result<Option<Vec<u8>>, Error> {
            Ok(self.manifests.borrow().get(tag).cloned())
        }
        fn blob(&self, digest: &str, _size: u64) -> Result<Vec<u8>, Error> {
            self.blobs
                .borrow()
                .get(digest)
                .cloned()
                .ok_or_else(|| storage(digest, "no such blob"))
        }
        fn put_blob(&self, digest: &str, data: &[u8]) -> Result<(), Error> {
            self.blobs.borrow_mut().insert(digest.into(), data.into());
            Ok(())
        }
        fn put_manifest(&self, tag: &str, _mt: &str, data: &[u8]) -> Result<(), Error> {
            self.manifests.borrow_mut().insert(tag.into(), data.into());
            Ok(())
        }
    }

    const DIGEST: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    /// A lookaside over HTTP: `signature-1` is there, `signature-2` answers 404, which ends
    /// the list.
    #[test]
    fn http_lookaside_reads_until_404() {
        use std::io::{BufRead as _, Write as _};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let mut paths = Vec::new();
            for _ in 0..2 {
                let (conn, _) = listener.accept().unwrap();
                let mut reader = std::io::BufReader::new(conn.try_clone().unwrap());
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                while {
                    let mut h = String::new();
                    reader.read_line(&mut h).unwrap();
                    h != "\r\n"
                } {}
                let path = line.split_whitespace().nth(1).unwrap().to_string();
                let (status, body) = match path.ends_with("/signature-1") {
                    true => ("200 OK", "SIG"),
                    false => ("404 Not Found", ""),
                };
                let mut conn = conn;
                write!(
                    conn,
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
                .unwrap();
                paths.push(path);
            }
            paths
        });
        let regd = RegistriesD {
            default_docker: Some(crate::LookasideConfig {
                lookaside: Some(format!("http://127.0.0.1:{port}/sigs")),
                ..Default::default()
            }),
            ..Default::default()
        };
        let image = ImageRef::parse("quay.io/ns/app:1").unwrap();
        let sigs = read_lookaside(&regd, &image, DIGEST).unwrap();
        assert_eq!(sigs, vec![b"SIG".to_vec()]);
        let hex = &DIGEST[7..];
        assert_eq!(
            server.join().unwrap(),
            [
                format!("/sigs/ns/app@sha256={hex}/signature-1"),
                format!("/sigs/ns/app@sha256={hex}/signature-2")
            ]
        );
    }

    #[test]
    fn sigstore_sign_then_verify() {
        let dir = tempfile::tempdir().unwrap();
        let (private, public) = crate::generate_key_pair(b"").unwrap();
        let (_, wrong) = crate::generate_key_pair(b"").unwrap();
        std::fs::write(dir.path().join("k.pub"), &public).unwrap();
        std::fs::write(dir.path().join("wrong.pub"), &wrong).unwrap();
        let policy_for = |key: &str| {
            let text = format!(
                r#"{{"default":[{{"type":"reject"}}],"transports":{{"docker":{{"localhost:5000/ns":[{{"type":"sigstoreSigned","keyPath":"{}"}}]}}}}}}"#,
                dir.path().join(key).display()
            );
            Policy::parse(text.as_bytes(), Path::new("/policy.json")).unwrap()
        };
        let regd = RegistriesD {
            dir: Some("/regd".into()),
            default_docker: Some(crate::LookasideConfig {
                use_sigstore_attachments: Some(true),
                ..Default::default()
            }),
            ..Default::default()
        };
        let image = ImageRef::parse("localhost:5000/ns/app:1").unwrap();
        let store = Mem::default();
        let policy = policy_for("k.pub");
        let e = verify(&policy, &regd, &image, DIGEST, &store)
            .unwrap_err()
            .to_string();
        assert!(e.contains("no sigstore signature exists"), "{e}");
        assert!(
            e.contains("/policy.json transports.docker[\"localhost:5000/ns\"][0] (sigstoreSigned)"),
            "{e}"
        );
        let key = SigstorePrivateKey::decrypt(private.as_bytes(), b"", "k").unwrap();
        let tag = sign_sigstore(&regd, &image, DIGEST, &key, &store).unwrap();
        assert_eq!(tag, format!("sha256-{}.sig", &DIGEST[7..]));
        let v = verify(&policy, &regd, &image, DIGEST, &store).unwrap();
        assert!(v.signed);
        // Another tag of the same repository: matchRepoDigestOrExact refuses it.
        let other = ImageRef::parse("localhost:5000/ns/app:2").unwrap();
        let e = verify(&policy, &regd, &other, DIGEST, &store)
            .unwrap_err()
            .to_string();
        assert!(e.contains("matchRepoDigestOrExact"), "{e}");
        let e = verify(&policy_for("wrong.pub"), &regd, &image, DIGEST, &store)
            .unwrap_err()
            .to_string();
        assert!(e.contains("does not match the policy's key"), "{e}");
        // Signing again keeps the first signature.
        sign_sigstore(&regd, &image, DIGEST, &key, &store).unwrap();
        let m: Value = serde_json::from_slice(&store.manifests.borrow()[&tag]).unwrap();
        assert_eq!(m["layers"].as_array().unwrap().len(), 2);
        // Not enabled: neither read nor written.
        let off = RegistriesD::default();
        assert!(sign_sigstore(&off, &image, DIGEST, &key, &store).is_err());
        let e = verify(&policy, &off, &image, DIGEST, &store)
            .unwrap_err()
            .to_string();
        assert!(e.contains("use-sigstore-attachments"), "{e}");
    }
}
