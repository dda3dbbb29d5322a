//! Build cache operations every front end needs: the collection after a build, `builder
//! prune` (by age, or down to a size), and the `Build Cache` row of `system df`. The cache's
//! tables and directories are [`crate::build_cache`]'s.

use crate::{build_cache, Engine, ErrorKind, Result};

/// What a build cache prune removed.
#[derive(Debug, Clone, Default)]
pub struct BuildCachePruneReport {
    /// The images and cache mounts deleted (`sha256:…` ids and mount directory names).
    pub deleted: Vec<String>,
    /// Bytes freed.
    pub space_reclaimed: u64,
}

/// The `Build Cache` line of `system df`.
#[derive(Debug, Clone, Copy, Default)]
pub struct BuildCacheUsage {
    /// Cache entries and cache mounts.
    pub entries: u64,
    /// Entries whose image a tag or a container keeps.
    pub active: u64,
    /// Bytes the cache holds.
    pub size: u64,
    /// Bytes a prune would free.
    pub reclaimable: u64,
}

impl Engine {
    /// Deletes an image the build cache let go of, unless another process removed it or a
    /// container started using it since: either way it is no longer the cache's to delete.
    fn remove_cache_image(&self, id: &str) -> Result<bool> {
        match self.remove_image(id, false) {
            Ok(_) => Ok(true),
            Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::Conflict) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Least-recently-used collection down to `max` bytes (the configured maximum when
    /// `None`, see [`build_cache::configured_max`]), never deleting `keep` (the image a build
    /// just produced). Builds run it after they finish; `builder prune --keep-storage` with
    /// its size.
    pub fn build_cache_collect(
        &self,
        max: Option<u64>,
        keep: Option<&str>,
    ) -> Result<BuildCachePruneReport> {
        let max = match max {
            Some(m) => m,
            None => build_cache::configured_max(&self.root)?,
        };
        let conn = self.store.conn();
        build_cache::ensure_schema(conn)?;
        let before = build_cache::stored_layer_bytes(conn)?;
        let mut deleted = Vec::new();
        build_cache::collect(conn, Some(&self.root), max, keep, &mut |id| {
            if self.remove_cache_image(id)? {
                deleted.push(id.to_string());
            }
            Ok(())
        })?;
        let after = build_cache::stored_layer_bytes(conn)?;
        Ok(BuildCachePruneReport {
            deleted,
            space_reclaimed: before.saturating_sub(after),
        })
    }

    /// `builder prune` (and the last part of `system prune`): drops the cache entries (the
    /// dangling ones, or all with `all`) last used before `older_than` (Unix seconds), the
    /// images only they kept, and the cache mounts last used before then.
    pub fn build_cache_prune(
        &self,
        older_than: Option<i64>,
        all: bool,
    ) -> Result<BuildCachePruneReport> {
        let conn = self.store.conn();
        build_cache::ensure_schema(conn)?;
        let before = build_cache::stored_layer_bytes(conn)?;
        let mut deleted = Vec::new();
        let pruned = build_cache::prune(conn, build_cache::PruneFilter { older_than, all })?;
        for id in pruned.images {
            if self.remove_cache_image(&id)? {
                deleted.push(id);
            }
        }
        let mut freed = before.saturating_sub(build_cache::stored_layer_bytes(conn)?);
        let (ids, bytes) = build_cache::prune_cache_dirs(&self.root, older_than)?;
        deleted.extend(ids);
        freed += bytes;
        Ok(BuildCachePruneReport {
            deleted,
            space_reclaimed: freed,
        })
    }

    /// The build cache's share of the disk (`system df`). Cache mounts count as entries too;
    /// none is in use between builds.
    pub fn build_cache_usage(&self) -> Result<BuildCacheUsage> {
        let conn = self.store.conn();
        build_cache::ensure_schema(conn)?;
        let u = build_cache::usage(conn)?;
        let mounts = build_cache::list_cache_dirs(&self.root);
        let mount_bytes: u64 = mounts.iter().map(|m| m.1).sum();
        Ok(BuildCacheUsage {
            entries: u.entries + mounts.len() as u64,
            active: u.active,
            size: u.size + mount_bytes,
            reclaimable: u.reclaimable + mount_bytes,
        })
    }
}
