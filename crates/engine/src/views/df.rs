//! `system df -v`: each image with the containers that use it, each container with its
//! writable layer and volumes, each volume with its users and size.

use crate::{ContainerInfo, Engine, Result};

/// One image of `system df -v`.
#[derive(Debug, Clone)]
pub struct DfImage {
    /// The image.
    pub image: hako_image::ImageSummary,
    /// How many containers (in any state) are made from it.
    pub containers: usize,
}

/// One container of `system df -v`.
#[derive(Debug, Clone)]
pub struct DfContainer {
    /// The container.
    pub container: ContainerInfo,
    /// Bytes of its writable layer.
    pub size_rw: u64,
    /// How many volumes it mounts.
    pub local_volumes: usize,
}

/// One volume of `system df -v`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DfVolume {
    /// Its name.
    pub name: String,
    /// How many containers mount it.
    pub links: usize,
    /// Bytes of its data.
    pub size: u64,
}

/// `system df -v`.
#[derive(Debug, Clone, Default)]
pub struct DfVerbose {
    /// Images, newest first.
    pub images: Vec<DfImage>,
    /// Containers, newest first.
    pub containers: Vec<DfContainer>,
    /// Volumes.
    pub volumes: Vec<DfVolume>,
}

impl Engine {
    /// `system df -v`. Layers shared between images are not broken out (no SHARED/UNIQUE
    /// sizes).
    pub fn system_df_verbose(&self) -> Result<DfVerbose> {
        let containers = self.list(true)?;
        let sizes = self.container_sizes(&containers)?;
        let (volumes, per_container) = self.volume_usage()?;
        let images = self
            .images()
            .list()?
            .into_iter()
            .map(|image| DfImage {
                containers: containers.iter().filter(|c| c.image_id == image.id).count(),
                image,
            })
            .collect();
        Ok(DfVerbose {
            images,
            containers: containers
                .into_iter()
                .zip(sizes)
                .map(|(c, (rw, _))| DfContainer {
                    local_volumes: per_container.get(&c.id).copied().unwrap_or(0),
                    size_rw: rw,
                    container: c,
                })
                .collect(),
            volumes: volumes
                .into_iter()
                .map(|(name, links, size)| DfVolume { name, links, size })
                .collect(),
        })
    }
}
