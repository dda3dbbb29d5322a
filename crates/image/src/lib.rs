//! Local image store for hako: content-addressed blobs, unpacked layers used
//! as overlayfs lower directories, and image/tag metadata in SQLite.
//!
//! Layout under the state root `R`:
//! - `R/hako.db`: SQLite database (shared with the engine's own tables).
//! - `R/blobs/sha256/<hex>`: layer blobs as given, config and manifest JSON.
//! - `R/layers/<chain-id hex>/diff`: unpacked layers.
//! - `R/tmp/<pid>-<random>`: work in progress; swept at open when the owning
//!   process is gone. `R/tmp/<pid>-journal-<random>`: the blobs and layers a
//!   removal or installation is changing, finished at open if it was killed.
//! - `R/store.lock`: `flock`ed exclusively around every write.
#![deny(missing_docs)]

pub mod abi;
mod archive;
mod changes;
mod durable;
mod extract;
mod ingest;
mod journal;
mod platform;
mod reference;
mod store;
mod time;
mod unpack;

pub use archive::Loaded;
pub use changes::apply as apply_changes;
pub use extract::Compression;
pub use ingest::{NewImage, NewLayer, StagedLayer, Stager};
pub use platform::ImagePlatform;
pub use reference::Reference;
pub use store::{
    GcReport, Image, ImageStore, ImageSummary, ImageUser, ImportOptions, InUseFn, RemoveEvent,
};

/// The most layers an image may have: Docker's limit (`maxLayerDepth`), which it enforces when
/// it pulls, loads, commits or builds one. Each layer is one lower directory of the container's
/// overlay, which the kernel caps at 500.
pub const MAX_LAYERS: usize = 125;

/// Errors returned by the image store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The string is not a valid image reference; the message says why.
    #[error("{0}")]
    InvalidReference(String),
    /// No image matches the given name or ID.
    #[error("No such image: {0}")]
    NotFound(String),
    /// An ID prefix matches more than one image.
    #[error("multiple IDs found with provided prefix: {0}")]
    Ambiguous(String),
    /// The import input is not a usable tar archive (corrupt, truncated,
    /// empty, or trying to escape the layer directory).
    #[error("invalid tar archive: {0}")]
    InvalidArchive(String),
    /// An image with more than [`MAX_LAYERS`] layers.
    #[error("max depth exceeded: the image has {0} layers, more than the {MAX_LAYERS} an image may have")]
    TooManyLayers(usize),
    /// An image for another operating system than Linux: Docker's message.
    #[error("image operating system \"{0}\" cannot be used on this platform")]
    UnsupportedOs(String),
    /// A `--change` instruction could not be applied.
    #[error("invalid change: {0}")]
    InvalidChange(String),
    /// The image is used by a container: a stopped one without `force`, a
    /// running one even with it.
    #[error(
        "conflict: unable to delete {image} ({}) - image is being used by {} container {container}",
        if *.running { "cannot be forced" } else { "must be forced" },
        if *.running { "running" } else { "stopped" }
    )]
    InUse {
        /// Short image ID.
        image: String,
        /// The container the `in_use` callback named.
        container: String,
        /// Whether that container is running.
        running: bool,
    },
    /// The last tag of an image a container uses, removed without `force`.
    #[error(
        "conflict: unable to remove repository reference \"{reference}\" (must force) - container {container} is using its referenced image {image}"
    )]
    ReferenceInUse {
        /// The reference as given.
        reference: String,
        /// The container the `in_use` callback named.
        container: String,
        /// Short image ID.
        image: String,
    },
    /// Any other refusal that `force` would override.
    #[error("{0}")]
    Conflict(String),
    /// Content did not hash to the digest that named it.
    #[error("digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        /// The digest the manifest or archive announced.
        expected: String,
        /// The digest of the bytes actually received.
        actual: String,
    },
    /// Stored metadata or blobs do not make sense.
    #[error("image store is corrupt: {0}")]
    Corrupt(String),
    /// A filesystem operation failed; the message names the path.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The database failed.
    #[error("image database: {0}")]
    Db(rusqlite::Error),
}

// By hand rather than `#[from]`, which would also expose the database error as `source()`:
// the message says it already, and a report walking the chain would print it twice.
impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        Error::Db(e)
    }
}

impl Error {
    /// The class of this error, for the front ends' exit codes and HTTP statuses.
    pub fn kind(&self) -> hako_base::ErrorKind {
        use hako_base::ErrorKind as K;
        match self {
            Error::NotFound(_) => K::NotFound,
            Error::InUse { .. } | Error::ReferenceInUse { .. } | Error::Conflict(_) => K::Conflict,
            // An ambiguous prefix is the request's to make precise.
            Error::InvalidReference(_)
            | Error::Ambiguous(_)
            | Error::InvalidArchive(_)
            | Error::TooManyLayers(_)
            | Error::UnsupportedOs(_)
            | Error::InvalidChange(_) => K::Invalid,
            // Bytes that do not hash to their name came from elsewhere, broken.
            Error::DigestMismatch { .. } | Error::Corrupt(_) | Error::Io(_) | Error::Db(_) => {
                K::Internal
            }
        }
    }
}

#[cfg(test)]
mod error_tests {
    use super::Error;
    use hako_base::ErrorKind as K;

    #[test]
    fn kinds_and_causes_said_once() {
        assert_eq!(Error::NotFound("x".into()).kind(), K::NotFound);
        assert_eq!(Error::Conflict("x".into()).kind(), K::Conflict);
        let in_use = Error::InUse {
            image: "abc".into(),
            container: "c".into(),
            running: true,
        };
        assert_eq!(in_use.kind(), K::Conflict);
        assert_eq!(Error::InvalidReference("x".into()).kind(), K::Invalid);
        assert_eq!(Error::Ambiguous("ab".into()).kind(), K::Invalid);
        assert_eq!(Error::TooManyLayers(200).kind(), K::Invalid);
        assert_eq!(Error::Corrupt("x".into()).kind(), K::Internal);
        let io = Error::from(std::io::Error::from_raw_os_error(libc::EACCES));
        assert_eq!(io.kind(), K::Internal);
        // Transparent: the io error's own message, and its source (none) forwarded.
        assert_eq!(io.to_string(), "Permission denied (os error 13)");
        let db = Error::from(rusqlite::Error::InvalidQuery);
        assert_eq!(db.kind(), K::Internal);
        assert!(std::error::Error::source(&db).is_none());
    }
}
