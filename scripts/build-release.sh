#!/usr/bin/env bash
# Release build of every binary, with hako-monitor linked statically: one monitor runs per
# detached container, and a static, non-PIE binary maps about half the memory of a dynamic one
# (no shared libc to fault in). Used by demo.sh and the benchmarks.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo build --release
cargo rustc --release -p hako-cli --bin hako-monitor -- -C target-feature=+crt-static -C relocation-model=static
