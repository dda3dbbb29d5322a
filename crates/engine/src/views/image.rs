//! Images: the rows of `images`, `image inspect`, `history`, and what prune and removal did.

use hako_image::Reference;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// One image as `images` lists it (Docker's `ImageSummary`).
#[derive(Debug, Clone)]
pub struct ImageSummary {
    /// `sha256:<hex>`.
    pub id: String,
    /// The image it was built on (a build step's parent), if that still exists.
    pub parent: Option<String>,
    /// Tags pointing at it, sorted.
    pub repo_tags: Vec<Reference>,
    /// `repository@digest` of the manifests it was pulled or pushed as, full repository
    /// names (`docker.io/library/busybox@sha256:…`), sorted.
    pub repo_digests: Vec<String>,
    /// Creation time from its config, ns since the epoch.
    pub created: Option<i64>,
    /// The same, as the config spells it (RFC 3339).
    pub created_text: Option<String>,
    /// Bytes of its layers, uncompressed.
    pub size: u64,
    /// Containers using it.
    pub containers: usize,
    /// Its config's labels, when the listing asked for them ([`ImageListOptions::labels`]).
    pub labels: Option<BTreeMap<String, String>>,
    /// Untagged, and no other image's parent: what `dangling=true` and `image prune` mean.
    pub dangling: bool,
    /// Untagged, and another image's parent (a build step): listed only with `-a`.
    pub intermediate: bool,
}

/// What [`crate::Engine::image_list`] gathers besides the cheap facts.
#[derive(Debug, Clone, Copy, Default)]
pub struct ImageListOptions {
    /// Also intermediate images (`images -a`).
    pub all: bool,
    /// Read each image's config for its labels (a file per image).
    pub labels: bool,
    /// Look up each image's repository digests (a query per image).
    pub digests: bool,
}

/// `image inspect` (Docker's `ImageInspect`).
#[derive(Debug, Clone)]
pub struct ImageInspect {
    /// `sha256:<hex>`.
    pub id: String,
    /// Tags pointing at it.
    pub repo_tags: Vec<Reference>,
    /// `repository@digest`, full repository names.
    pub repo_digests: Vec<String>,
    /// The image it was built on, `None` for none.
    pub parent: Option<String>,
    /// The comment of its last history entry.
    pub comment: String,
    /// `created` of its config, as spelled there (RFC 3339).
    pub created: Option<String>,
    /// `docker_version` of its config.
    pub docker_version: String,
    /// `author` of its config.
    pub author: String,
    /// The `config` object of its OCI configuration, as stored (Docker's `Config`).
    pub config: serde_json::Value,
    /// `architecture` of its config.
    pub architecture: String,
    /// `variant` of its config.
    pub variant: Option<String>,
    /// `os` of its config.
    pub os: String,
    /// Bytes of its layers, uncompressed.
    pub size: u64,
    /// Its unpacked layer directories, bottom first.
    pub layer_dirs: Vec<PathBuf>,
    /// The diff IDs of its layers, bottom first.
    pub diff_ids: Vec<String>,
}

/// One entry of `history`, newest first.
#[derive(Debug, Clone)]
pub struct HistoryEntry {
    /// The image this entry is, when it is one the store has (the top entry): Docker prints
    /// `<missing>` for the others.
    pub id: Option<String>,
    /// When the step ran, as its config spells it (RFC 3339).
    pub created: Option<String>,
    /// The same, ns since the epoch.
    pub created_nanos: Option<i64>,
    /// The instruction that made it.
    pub created_by: String,
    /// Bytes of the layer it made (0 for an empty layer).
    pub size: u64,
    /// Its comment.
    pub comment: String,
    /// The tags of the image, on the entry that is that image.
    pub tags: Vec<Reference>,
    /// Whether the step made no layer.
    pub empty_layer: bool,
}

/// What an image removal or prune did, in order (`Untagged: …`, `Deleted: …`).
pub use hako_image::RemoveEvent;

/// What [`crate::Engine::image_prune`] removed.
#[derive(Debug, Clone, Default)]
pub struct ImagePruneReport {
    /// The untags and deletions, in order.
    pub events: Vec<RemoveEvent>,
    /// Bytes freed: layers no remaining image uses, each counted once, and unreferenced files.
    pub space_reclaimed: u64,
}
