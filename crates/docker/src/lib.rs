//! The Docker-compatibility layer shared by the CLI and the API server: what Docker users write
//! and expect to read back, independent of how hako runs containers. So far the Go templates of
//! `--format`.
#![deny(missing_docs)]

pub mod args;
pub mod image;
pub mod network;
pub mod template;
pub mod volume;
