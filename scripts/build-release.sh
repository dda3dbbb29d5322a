#!/usr/bin/env bash
# Release build of every binary, with hako-monitor linked statically: one monitor runs per
# detached container, and a static, non-PIE binary maps about half the memory of a dynamic one
# (no shared libc to fault in). Used by demo.sh and the benchmarks.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo build --release
cargo rustc --release -p hako-cli --bin hako-monitor -- -C target-feature=+crt-static -C relocation-model=static
# hako-runtime the same way, with libseccomp linked in: static and non-PIE, since no shared
# libc or libseccomp is then mapped and relocated at every start; and with its own profile
# (release-runtime in Cargo.toml: optimised for size), as its peak memory is mostly its code.
# A `run` peaks at about 3.0 MB RSS (crun 1.8: 3.4 MB; a plain release build: 4.7 MB).
export LIBSECCOMP_LINK_TYPE=static LIBSECCOMP_LIB_PATH="${LIBSECCOMP_LIB_PATH:-/usr/lib/$(gcc -print-multiarch)}"
cargo rustc --profile release-runtime -p hako-runtime-cli --bin hako-runtime -- -C target-feature=+crt-static -C relocation-model=static
cp target/release-runtime/hako-runtime target/release/hako-runtime
# hako static too, as a static PIE (it parses images and talks to registries: it keeps ASLR).
# Every command is a process of its own, and a dynamic hako spent about 1 ms of each start in
# ld.so, mapping four libraries and looking up their symbols. Host names still resolve: glibc
# 2.34 and later have the files and dns NSS modules built in.
cargo rustc --release -p hako-cli --bin hako -- -C target-feature=+crt-static
# Put each binary in place by copying, as an install (dpkg, `install`, `cp`) does: the file
# the linker wrote is cached in small pieces, and on this ext4 disk every `hako` command
# started from it faulted in more pages and ran about 1 ms slower (`create`: 5.9 against
# 4.7 ms, interleaved) than the same binary copied once. A copy breaks the hard link into
# target/release/deps, which nothing uses.
for bin in hako hako-runtime hako-monitor hako-finish hako-health hako-init hako-dns hako-proxy; do
    cp "target/release/$bin" "target/release/$bin.tmp"
    mv "target/release/$bin.tmp" "target/release/$bin"
done
