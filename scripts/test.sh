#!/usr/bin/env bash
# The whole test suite, from a clean checkout on Debian 12, as root.
#
# Installs what it needs (apt packages by name; Rust through rustup only when cargo is missing
# or older than the workspace's rust-version), builds the test images (cached), then checks
# formatting and lints and runs every unit and end-to-end test, then a short run of every fuzz
# target (scripts/fuzz.sh: each over its whole corpus, then 20 s of fuzzing).
# `.ci/run` calls exactly this.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [[ $EUID -ne 0 ]]; then
    echo "scripts/test.sh: run as root (the tests create namespaces, mounts and cgroups)" >&2
    exit 1
fi

# shellcheck source=scripts/lib.sh
. scripts/lib.sh

# containernetworking-plugins: the CNI plugins of crates/runtime-cli/tests/cri.rs; protobuf-compiler:
# protoc, which the CRI client crate (k8s-cri) needs to build its gRPC types; docker-compose
# (1.29) and python3-venv: the Engine API tests (crates/cli/tests/api_*.rs); qemu-user-static:
# the emulator crates/cli/tests/platform.rs registers for its arm64 image.
apt_install docker-compose python3-venv python3-pip busybox-static debootstrap tar bzip2 xz-utils coreutils build-essential pkg-config libseccomp-dev ca-certificates curl iproute2 nftables iptables wget docker-registry skopeo containerd procps util-linux podman docker.io attr buildah umoci runc openssl apache2-utils openssh-client git containernetworking-plugins protobuf-compiler uidmap slirp4netns passt passwd qemu-user-static
ensure_rust

# docker-py (PyPI `docker`) for crates/cli/tests/api_dockerpy.rs, in a venv of its own under
# target/ so the system's Python stays as Debian ships it; the test finds it through
# HAKO_TEST_PYTHON.
if [[ ! -x target/dockerpy-venv/bin/python ]] || ! target/dockerpy-venv/bin/python -c 'import docker' 2>/dev/null; then
    python3 -m venv target/dockerpy-venv
    target/dockerpy-venv/bin/pip install --quiet 'docker>=7,<8'
fi
export HAKO_TEST_PYTHON="$PWD/target/dockerpy-venv/bin/python"

scripts/make-test-images.sh
scripts/make-test-image-arm64.sh

# One build from a clean checkout: incremental caches would only cost disk (they were a third
# of target/ and filled a CI machine's disk before the tests ran).
export CARGO_INCREMENTAL=0

cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings
# Every test binary runs even after one fails, so one CI run shows every failure.
cargo test --workspace --no-fail-fast

# The fuzz targets of fuzz/ (fuzz/README.md): every parser of hostile input replays its corpus
# and is fuzzed briefly; the long runs use the same script with more seconds. The unoptimized
# build costs a quarter of the CPU time of an optimized one, which would be most of the step.
FUZZ_BUILD=dev scripts/fuzz.sh 20
