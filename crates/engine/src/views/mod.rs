//! Typed views of the engine's objects, built once and rendered by every front end: the CLI's
//! tables and `--format` templates, and the API server's JSON (through `hako-docker`).
//!
//! A view holds facts (ids, references, times in nanoseconds, sizes in bytes), never text made
//! for one front end: "2 hours ago" and "4.26MB" are Docker's wording, which `hako-docker`
//! owns.

pub mod container;
pub mod container_inspect;
pub mod df;
pub mod image;
pub mod network;
pub mod stats;
pub mod system;
mod top;

pub use top::Top;
