//! The state root as a whole: `system df` and `system prune`.

use crate::inspect::du;
use crate::views::system::{SystemDataUsage, SystemPruneOptions, SystemPruneReport, UsageTotals};
use crate::{Engine, Result, State};
use std::collections::HashSet;

impl Engine {
    /// `system df`: what images, containers, volumes and the build cache take.
    ///
    /// Image bytes are layer bytes, each layer once however many images share it (summing
    /// image sizes would count a base image again for every image built on it); reclaimable
    /// are the layers no image a container uses holds.
    pub fn system_df(&self) -> Result<SystemDataUsage> {
        let containers = self.list(true)?;
        let conn = self.store.conn();
        let (images_total, images_active): (i64, i64) = conn.query_row(
            "SELECT count(*), coalesce(sum(id IN (SELECT image_id FROM containers)), 0)
             FROM images",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let layer_bytes = |sql: &str| -> Result<u64> {
            let n: i64 = conn.query_row(sql, [], |r| r.get(0))?;
            Ok(n.max(0) as u64)
        };
        let images_size = self.layers_size()?;
        let images_reclaimable = layer_bytes(
            "SELECT coalesce(sum(size), 0) FROM layers
             WHERE chain_id IN (SELECT chain_id FROM image_layers)
             AND chain_id NOT IN (SELECT chain_id FROM image_layers
                                  WHERE image_id IN (SELECT image_id FROM containers))",
        )?;
        let mut c = UsageTotals {
            total: containers.len() as u64,
            ..UsageTotals::default()
        };
        for ct in &containers {
            let s = du(&self.container_dir(&ct.id).join("upper"));
            c.size += s;
            if ct.state == State::Running {
                c.active += 1;
            } else {
                c.reclaimable += s;
            }
        }
        let used_vols: HashSet<String> = self.volumes_in_use()?;
        let vols = self.volume_list()?;
        let mut v = UsageTotals {
            total: vols.len() as u64,
            ..UsageTotals::default()
        };
        for vol in &vols {
            let s = du(&vol.mountpoint);
            v.size += s;
            if used_vols.contains(&vol.name) {
                v.active += 1;
            } else {
                v.reclaimable += s;
            }
        }
        Ok(SystemDataUsage {
            images: UsageTotals {
                total: images_total as u64,
                active: images_active as u64,
                size: images_size,
                reclaimable: images_reclaimable,
            },
            containers: c,
            volumes: v,
            build_cache: self.build_cache_usage()?,
        })
    }

    /// Bytes of the layers images hold, each layer once however many images share it
    /// (Docker's `LayersSize`).
    pub fn layers_size(&self) -> Result<u64> {
        let n: i64 = self.store.conn().query_row(
            "SELECT coalesce(sum(size), 0) FROM layers
             WHERE chain_id IN (SELECT chain_id FROM image_layers)",
            [],
            |r| r.get(0),
        )?;
        Ok(n.max(0) as u64)
    }

    /// `system prune`, in Docker's order: stopped containers first (so what they used becomes
    /// unused), then networks, volumes, images, and the build cache last.
    pub fn system_prune(&self, opts: SystemPruneOptions) -> Result<SystemPruneReport> {
        let mut report = SystemPruneReport {
            containers: self.prune()?,
            networks: self.network_prune()?,
            ..SystemPruneReport::default()
        };
        if opts.volumes {
            let (names, bytes) = self.volume_prune(false)?;
            report.volumes = names;
            report.space_reclaimed += bytes;
        }
        let images = self.image_prune(opts.all, &|_| true)?;
        report.images = images.events;
        report.space_reclaimed += images.space_reclaimed;
        let cache = self.build_cache_prune(None, opts.all)?;
        report.build_cache = cache.deleted;
        report.space_reclaimed += cache.space_reclaimed;
        Ok(report)
    }
}
