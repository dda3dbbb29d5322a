//! Registry client for hako: pull and push images over the OCI
//! distribution spec (v2 API), with Docker's reference, platform and
//! authentication rules.
//!
//! Every call returns with the process single-threaded again: layer
//! downloads run on scoped threads that are joined before returning, and the
//! HTTP client never starts background threads. `hako run` relies on that,
//! because it clones the container straight out of the same process.
#![deny(missing_docs)]

mod auth;
mod catalog;
mod client;
mod config;
#[doc(hidden)]
pub mod fuzzing;
mod manifest;
mod progress;
mod pull;
mod push;
mod signatures;

use std::path::PathBuf;

pub use auth::{docker_config_dir, Credentials};
pub use catalog::{list_tags, search, SearchResult};
pub use config::{config_path, RegistryConfig};
pub use manifest::Platform;
pub use progress::{lines_to, LayerStatus, Progress, ProgressSink};
pub use pull::{fetch_raw_manifest, pull, pull_as, PullOptions, Pulled};
pub use push::{push, push_as, push_signed};
pub use signatures::{
    check_stored, check_stored_unnamed, policy_accepts_everything, policy_fingerprint, SignOptions,
};

/// Errors of registry operations.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The registry could not be reached or the connection broke.
    #[error("{url}: {message}")]
    Network {
        /// The URL requested.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// The registry refused the credentials or demanded ones we lack.
    #[error("unauthorized: {registry}: {message}")]
    Unauthorized {
        /// Registry host.
        registry: String,
        /// The reason.
        message: String,
    },
    /// The registry answered with an unexpected status.
    #[error("{url}: {status}: {message}")]
    Status {
        /// The URL requested.
        url: String,
        /// HTTP status code.
        status: u16,
        /// The registry's explanation.
        message: String,
    },
    /// The tag or digest is not in the repository (Docker's wording).
    #[error("manifest for {0} not found: manifest unknown")]
    ManifestUnknown(String),
    /// The repository does not exist or access was refused.
    #[error("pull access denied for {0}, repository does not exist or may require 'hako login'")]
    AccessDenied(String),
    /// A Docker schema 1 manifest, which current clients no longer accept.
    #[error("{0} uses Docker image manifest version 2, schema 1, which is not supported; push it again with a current client")]
    Schema1(String),
    /// A manifest or index that is not JSON of the expected shape.
    #[error("malformed manifest for {reference}: {message}")]
    BadManifest {
        /// The reference being pulled.
        reference: String,
        /// What is wrong.
        message: String,
    },
    /// A media type hako does not know how to handle.
    #[error("unsupported media type {0}")]
    UnsupportedMediaType(String),
    /// The image is for another operating system.
    #[error("image operating system \"{0}\" cannot be used on this platform")]
    OsMismatch(String),
    /// No manifest in an index matches the wanted platform.
    #[error("no matching manifest for {0} in the manifest list entries")]
    NoMatchingPlatform(String),
    /// `--platform` asked for a platform the single-platform image is not.
    #[error("image with reference {reference} was found but does not match the specified platform: wanted {wanted}, actual: {actual}")]
    PlatformMismatch {
        /// The reference.
        reference: String,
        /// The platform asked for.
        wanted: String,
        /// The image's platform.
        actual: String,
    },
    /// `--platform` could not be parsed.
    #[error("invalid platform {0:?}: expected os/arch[/variant]")]
    InvalidPlatform(String),
    /// Content received did not hash to its digest.
    #[error("digest mismatch for {what}: expected {expected}, got {actual}")]
    DigestMismatch {
        /// Which blob or manifest.
        what: String,
        /// The announced digest.
        expected: String,
        /// The digest of what arrived.
        actual: String,
    },
    /// More bytes arrived than a blob's descriptor gives, or than a manifest or config may have;
    /// reading stopped there.
    #[error("{what}: received more than the {limit} bytes {why}")]
    TooLarge {
        /// Which blob or manifest.
        what: String,
        /// The bytes allowed.
        limit: u64,
        /// Where the limit comes from.
        why: &'static str,
    },
    /// A blob ended before the size its descriptor gives.
    #[error("{what}: received {received} bytes, its descriptor gives {expected}")]
    TooShort {
        /// Which blob.
        what: String,
        /// The size the descriptor gives.
        expected: u64,
        /// The bytes received.
        received: u64,
    },
    /// The Docker client configuration could not be read or written.
    #[error("{}: {message}", path.display())]
    Config {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A local file could not be read.
    #[error("{}: {error}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        error: std::io::Error,
    },
    /// The local image store failed.
    #[error(transparent)]
    Store(#[from] hako_image::Error),
    /// Writing progress output failed.
    #[error("writing progress: {0}")]
    Output(std::io::Error),
    /// The registry has no search endpoint (a plain distribution registry).
    #[error("{registry} does not support search (it answered {status} to {url})")]
    SearchUnsupported {
        /// The registry.
        registry: String,
        /// The URL asked.
        url: String,
        /// Its answer.
        status: u16,
    },
    /// The signature policy refused the image, or signing failed.
    #[error(transparent)]
    Trust(#[from] hako_trust::Error),
}

impl Error {
    /// The class of this error, for the front ends' exit codes and HTTP statuses (dockerd
    /// answers a pull of a missing repository or tag with 404).
    pub fn kind(&self) -> hako_base::ErrorKind {
        use hako_base::ErrorKind as K;
        match self {
            Error::ManifestUnknown(_) | Error::AccessDenied(_) | Error::NoMatchingPlatform(_) => {
                K::NotFound
            }
            Error::Unauthorized { .. } => K::Unauthorized,
            Error::SearchUnsupported { .. } => K::NotFound,
            Error::Network { .. } => K::Unavailable,
            Error::Status { status, .. } => match status {
                401 => K::Unauthorized,
                403 => K::Forbidden,
                404 => K::NotFound,
                429 | 500..=599 => K::Unavailable,
                _ => K::Internal,
            },
            Error::Schema1(_)
            | Error::UnsupportedMediaType(_)
            | Error::OsMismatch(_)
            | Error::PlatformMismatch { .. }
            | Error::InvalidPlatform(_) => K::Invalid,
            Error::Store(e) => e.kind(),
            Error::Trust(e) => e.kind(),
            Error::BadManifest { .. }
            | Error::DigestMismatch { .. }
            | Error::TooLarge { .. }
            | Error::TooShort { .. }
            | Error::Config { .. }
            | Error::Io { .. }
            | Error::Output(_) => K::Internal,
        }
    }
}

/// Logs in to a registry: checks the credentials against it, then records
/// them in the Docker client config. Returns the config file written.
pub fn login(domain: &str, creds: &Credentials) -> Result<PathBuf, Error> {
    check_login(domain, creds)?;
    auth::store(domain, creds)
}

/// Checks credentials against a registry without recording them (the Engine API's
/// `POST /auth`: the client keeps them).
pub fn check_login(domain: &str, creds: &Credentials) -> Result<(), Error> {
    // The catalog-less ping needs some repository name for a token scope;
    // registries grant anonymous-looking scopes to any authenticated user.
    let client =
        client::Client::new(domain, "hako-login-check", false)?.with_credentials(creds.clone());
    client.ping()?;
    Ok(())
}

/// Forgets stored credentials for `domain`; `false` if there were none.
pub fn logout(domain: &str) -> Result<bool, Error> {
    auth::erase(domain)
}

/// The registry host for a `hako login [SERVER]` argument (Docker Hub when
/// absent).
pub fn login_domain(server: Option<&str>) -> String {
    match server {
        None => "docker.io".into(),
        Some(s) => {
            let s = s
                .trim_start_matches("https://")
                .trim_start_matches("http://");
            let host = s.split('/').next().unwrap_or(s);
            match host {
                "index.docker.io" | "registry-1.docker.io" | "docker.io" => "docker.io".into(),
                h => h.to_string(),
            }
        }
    }
}

pub(crate) fn short(digest: &str) -> &str {
    let hex = digest.split_once(':').map_or(digest, |(_, h)| h);
    &hex[..hex.len().min(12)]
}

pub(crate) fn sha256_digest(data: &[u8]) -> String {
    use sha2::Digest as _;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(data)))
}

/// Opens an `http://` or `https://` URL for reading, following redirects
/// (`hako import URL`). Anything but a 200 answer is an error naming the
/// status.
pub fn open_url(url: &str) -> Result<Box<dyn std::io::Read + Send>, Error> {
    let config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(std::time::Duration::from_secs(30)))
        .timeout_recv_response(Some(std::time::Duration::from_secs(120)))
        .user_agent(concat!("hako/", env!("CARGO_PKG_VERSION")))
        .build();
    let agent: ureq::Agent = config.into();
    let resp = agent.get(url).call().map_err(|e| Error::Network {
        url: url.to_string(),
        message: e.to_string(),
    })?;
    let status = resp.status().as_u16();
    if status != 200 {
        return Err(Error::Status {
            url: url.to_string(),
            status,
            message: resp
                .status()
                .canonical_reason()
                .unwrap_or("unexpected status")
                .to_string(),
        });
    }
    Ok(Box::new(resp.into_body().into_reader()))
}

#[cfg(test)]
mod error_tests {
    use super::Error;
    use hako_base::ErrorKind as K;

    #[test]
    fn kinds() {
        assert_eq!(Error::ManifestUnknown("a:1".into()).kind(), K::NotFound);
        assert_eq!(Error::AccessDenied("a".into()).kind(), K::NotFound);
        let status = |status| Error::Status {
            url: "https://r/v2/".into(),
            status,
            message: String::new(),
        };
        assert_eq!(status(404).kind(), K::NotFound);
        assert_eq!(status(401).kind(), K::Unauthorized);
        assert_eq!(status(503).kind(), K::Unavailable);
        assert_eq!(status(418).kind(), K::Internal);
        let network = Error::Network {
            url: "https://r/v2/".into(),
            message: "connection refused".into(),
        };
        assert_eq!(network.kind(), K::Unavailable);
        assert_eq!(Error::InvalidPlatform("x".into()).kind(), K::Invalid);
        let store = Error::from(hako_image::Error::Conflict("x".into()));
        assert_eq!(store.kind(), K::Conflict);
    }
}
