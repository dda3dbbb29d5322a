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
#
# Linked by rust-lld (shipped with rustup's toolchains) in the order of scripts/hako.order, so
# that the functions everyday commands run sit together and the rest of the code is never
# mapped: see scripts/gen-link-order.sh. The list is matched against the symbols of the hako
# `cargo build` just linked (the same crates, so the same names); a listed name missing there
# (its hash changed) takes every symbol of that name under any hash; other names missing there
# (the C library's, which only the static link adds) are passed on as they are. Without
# rust-lld hako is linked as before, only larger in memory.
link_order=()
gcc_ld="$(rustc --print sysroot)/lib/rustlib/$(rustc -vV | sed -n 's/^host: //p')/bin/gcc-ld"
if [[ -x "$gcc_ld/ld.lld" && -s scripts/hako.order ]]; then
    order="$PWD/target/release/hako.order"
    nm --defined-only target/release/hako | awk '{ print $3 }' >"$order.syms"
    awk 'FNR == 1 { f++ }
         f == 1 { if ($0 !~ /^#/ && $0 != "") want[$0] = 1; next }
         { s = $0; sub(/\.llvm\.[0-9]+$/, "", s) }
         f == 2 { if (s in want) found[s] = 1; next }
         FNR == 1 { for (w in want) if (!(w in found)) { k = w; sub(/17h[0-9a-f]+E$/, "", k); loose[k] = 1 } }
         { if (s in want) { print; next } k = s; sub(/17h[0-9a-f]+E$/, "", k); if (k in loose) print }
         END { for (w in want) if (!(w in found) && w !~ /17h[0-9a-f]+E$/) print w }' \
        scripts/hako.order "$order.syms" "$order.syms" >"$order"
    echo "build-release: link order: $(wc -l <"$order") symbols for $(grep -vc '^#' scripts/hako.order) listed functions"
    link_order=(-C link-arg=-fuse-ld=lld -C "link-arg=-B$gcc_ld"
        -C "link-arg=-Wl,--symbol-ordering-file=$order" -C link-arg=-Wl,--no-warn-symbol-ordering)
else
    echo "build-release: no rust-lld in the toolchain ($gcc_ld): hako linked without its link order" >&2
fi
cargo rustc --release -p hako-cli --bin hako -- -C target-feature=+crt-static "${link_order[@]}"
# Put each binary in place by copying, as an install (dpkg, `install`, `cp`) does: the file
# the linker wrote is cached in small pieces, and on this ext4 disk every `hako` command
# started from it faulted in more pages and ran about 1 ms slower (`create`: 5.9 against
# 4.7 ms, interleaved) than the same binary copied once. A copy breaks the hard link into
# target/release/deps, which nothing uses.
for bin in hako hako-runtime hako-monitor hako-finish hako-health hako-init hako-dns hako-proxy; do
    cp "target/release/$bin" "target/release/$bin.tmp"
    mv "target/release/$bin.tmp" "target/release/$bin"
done
