//! The Docker-compatibility layer shared by the CLI and the API server: what Docker users write
//! and expect to read back, independent of how hako runs containers: the Go templates of
//! `--format`, `docker run`'s flags read into the engine's typed configuration (`flags`), the
//! Engine API's create request read into the same (`container`), the filters, documents and
//! progress messages of images, networks and volumes (`image`, `network`, `volume`, `args`), ...
#![deny(missing_docs)]

pub mod api;
pub mod args;
pub mod container;
pub mod cp;
pub mod events;
pub mod flags;
pub mod format;
pub mod image;
pub mod logs;
pub mod network;
pub mod template;
pub mod volume;
