//! Image trust for hako: the containers signature policy (`policy.json`, containers-policy.json(5)),
//! signature storage configuration (`registries.d`, containers-registries.d(5)), and the two
//! signature formats Podman and skopeo write:
//!
//! - sigstore signatures with a local key pair: ECDSA P-256 over a simple-signing payload,
//!   stored in the registry beside the image as the `sha256-<hex>.sig` tag (cosign's layout);
//! - simple signing with GPG keys (containers-signature(5)), read from and written to a
//!   `lookaside` store (a `file://` directory or an `http(s)://` server).
//!
//! The registry crate calls [`verify`] after it has the manifest of a pull and before it
//! downloads anything, and [`sign_sigstore`] / [`sign_gpg`] after a push. Reading the
//! `.sig` tag goes through the registry's own client (its authentication), which it lends
//! through [`SignatureStore`].
#![deny(missing_docs)]

mod gpg;
mod identity;
mod policy;
mod registries_d;
mod sigstore;
mod simple;
mod verify;

pub use identity::{ImageRef, SignedIdentity};
pub use policy::{KeySource, Policy, PolicySource, Requirement, Scope};
pub use registries_d::{LookasideConfig, RegistriesD};
pub use sigstore::{generate_key_pair, SigstorePrivateKey};
pub use verify::{
    requirements_fingerprint, sign_gpg, sign_sigstore, signature_tag, verify, verify_unnamed,
    verify_unsigned, SignatureStore, Verdict, SIGSTORE_LAYER_TYPE,
};

use std::path::PathBuf;

/// Errors of policy evaluation, signature checks and signing.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The policy file or registries.d configuration is malformed.
    #[error("{}: {}", path.display(), one_line(message))]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong, naming the field.
        message: String,
    },
    /// The policy refused the image.
    #[error("{reference} rejected by {rule}: {reason}")]
    Rejected {
        /// The image, as pulled.
        reference: String,
        /// The policy file and the requirement that refused it.
        rule: String,
        /// Why.
        reason: String,
    },
    /// A key given to sign with or to verify against is unusable.
    #[error("{what}: {message}")]
    Key {
        /// The key (its file).
        what: String,
        /// What is wrong.
        message: String,
    },
    /// Signatures could not be read or written (registry, lookaside).
    #[error("{what}: {message}")]
    Storage {
        /// The signature store or URL.
        what: String,
        /// What went wrong.
        message: String,
        /// The class of the underlying failure.
        kind: hako_base::ErrorKind,
    },
    /// `gpg` failed at something it is expected to do (importing a key, signing).
    #[error("gpg: {0}")]
    Gpg(String),
    /// A local file could not be read or written.
    #[error("{}: {error}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        error: std::io::Error,
    },
}

impl Error {
    /// The class of this error, for exit codes and HTTP statuses.
    pub fn kind(&self) -> hako_base::ErrorKind {
        use hako_base::ErrorKind as K;
        match self {
            Error::Config { .. } | Error::Key { .. } => K::Invalid,
            Error::Rejected { .. } => K::Forbidden,
            Error::Storage { kind, .. } => *kind,
            Error::Gpg(_) | Error::Io { .. } => K::Internal,
        }
    }
}

/// A message quoting a file's own keys and values, with their control characters escaped:
/// a `"\n"` in a key must not split a one-line error or reach the terminal raw.
fn one_line(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    for c in message.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

pub(crate) fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.into();
    move |error| Error::Io { path, error }
}

pub(crate) fn sha256_digest(data: &[u8]) -> String {
    use sha2::Digest as _;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(data)))
}

/// The user's home directory, for the per-user configuration files.
pub(crate) fn home() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
}

#[doc(hidden)]
pub mod fuzzing {
    //! Entry points of the fuzz targets (fuzz/), not part of the API.

    /// Parses `data` as a policy file. An error is one line naming the file; a policy that
    /// parses gives every reference a non-empty list of requirements from a scope the file
    /// has, and renders.
    pub fn policy(data: &[u8]) {
        let path = std::path::Path::new("fuzz.json");
        let p = match crate::Policy::parse(data, path) {
            Ok(p) => p,
            Err(e) => {
                let msg = e.to_string();
                assert!(msg.starts_with("fuzz.json: "), "{msg}");
                assert!(!msg.contains('\n'), "{msg:?}");
                assert_eq!(e.kind(), hako_base::ErrorKind::Invalid);
                return;
            }
        };
        for r in [
            "docker.io/library/busybox:latest",
            "localhost:5000/a/b/c@sha256:0000000000000000000000000000000000000000000000000000000000000000",
            "quay.io/x:1",
            "a.b.example.com/ns/app:v1",
        ] {
            let r = crate::ImageRef::parse(r).expect("test references parse");
            let (scope, reqs) = p.requirements_for(&r);
            assert!(!reqs.is_empty(), "{scope:?}");
            match scope {
                crate::Scope::Default => assert_eq!(reqs, p.default.as_slice()),
                crate::Scope::TransportDefault => assert!(p.transports["docker"].contains_key("")),
                crate::Scope::Docker(s) => assert!(p.transports["docker"].contains_key(&s)),
            }
        }
        let text = p.render();
        assert!(text.starts_with("Policy: fuzz.json\n"), "{text}");
    }
}
