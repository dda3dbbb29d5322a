//! The private registry, dockerd and podman peers of the interop tests live in
//! `hako-testkit`, shared with the runtime's tests.

// Every test binary compiles `common`, and each uses a different subset of the peers.
#[allow(unused_imports)]
pub use hako_testkit::{need, Docker, Podman, Registry};
