//! The state root as a whole: `system df`.

pub use crate::builder::BuildCacheUsage;

/// One kind of object's share of the disk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UsageTotals {
    /// How many there are.
    pub total: u64,
    /// How many are in use (images a container uses, running containers, volumes a container
    /// mounts).
    pub active: u64,
    /// Bytes they take, each shared layer counted once.
    pub size: u64,
    /// Bytes a prune would free.
    pub reclaimable: u64,
}

/// `system df` (Docker's `SystemDataUsage`, in totals).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemDataUsage {
    /// Images: their layers, each counted once however many images share it.
    pub images: UsageTotals,
    /// Containers: their writable layers.
    pub containers: UsageTotals,
    /// Local volumes: their data.
    pub volumes: UsageTotals,
    /// The build cache.
    pub build_cache: BuildCacheUsage,
}

/// What `system prune` removed, in the order it removes them.
#[derive(Debug, Clone, Default)]
pub struct SystemPruneReport {
    /// Containers removed (IDs).
    pub containers: Vec<String>,
    /// Networks removed (names).
    pub networks: Vec<String>,
    /// Volumes removed (names).
    pub volumes: Vec<String>,
    /// Images untagged and deleted.
    pub images: Vec<crate::views::image::RemoveEvent>,
    /// Build cache objects removed.
    pub build_cache: Vec<String>,
    /// Bytes freed by all of it.
    pub space_reclaimed: u64,
}

/// What `system prune` removes.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemPruneOptions {
    /// `-a`: all unused images (not only dangling ones) and all build cache.
    pub all: bool,
    /// `--volumes`: also unused anonymous volumes.
    pub volumes: bool,
}
