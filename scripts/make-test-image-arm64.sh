#!/usr/bin/env bash
# Build the arm64 root filesystem the platform tests (crates/cli/tests/platform.rs) run under
# qemu-user-static: Debian's arm64 busybox-static, fetched with apt (no emulation needed to
# build it).
#
# Usage: scripts/make-test-image-arm64.sh [DIR]   (DIR defaults to /var/cache/hako-test-images)
#
# Produces DIR/busybox-arm64.tar, reproducible as busybox.tar is (sorted entries, mtime 0,
# numeric owners). Cached: not rebuilt while it is newer than this script. Must run as root
# (dpkg --add-architecture, chown).
set -euo pipefail

DIR="${1:-/var/cache/hako-test-images}"
if [[ $(id -u) -ne 0 ]]; then
    echo "$0: must run as root" >&2
    exit 1
fi
SELF="$(readlink -f "${BASH_SOURCE[0]}")"
mkdir -p "$DIR"
DIR="$(cd "$DIR" && pwd)"
OUT="$DIR/busybox-arm64.tar"
if [[ -f "$OUT" && "$OUT" -nt "$SELF" ]]; then
    echo ">> $OUT is up to date"
    exit 0
fi

WORK="$(mktemp -d "$DIR/.busybox-arm64.XXXXXX")"
trap 'rm -rf -- "$WORK"' EXIT

if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    dpkg --add-architecture arm64
fi
# The arm64 package lists come with the first update after the architecture is added.
if ! apt-cache show busybox-static:arm64 >/dev/null 2>&1; then
    apt-get update -qq
fi
# Root downloads: the private work directory is not writable for apt's sandbox user.
(cd "$WORK" && apt-get download -qq -o APT::Sandbox::User=root busybox-static:arm64)
dpkg-deb -x "$WORK"/busybox-static_*_arm64.deb "$WORK/deb"

stage="$WORK/stage"
for d in bin dev etc proc root sys tmp; do
    mkdir -p "$stage/$d"
done
install -m 0755 "$WORK/deb/bin/busybox" "$stage/bin/busybox"
# The applets a test uses; the arm64 busybox cannot list its own without an emulator.
for applet in sh echo cat uname true false sleep ls env; do
    ln -s busybox "$stage/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$stage/etc/passwd"
printf 'root:x:0:\n' >"$stage/etc/group"
chown -R -h 0:0 "$stage"
find "$stage" -type d -exec chmod 0755 {} +
chmod 0644 "$stage/etc/passwd" "$stage/etc/group"
chmod 1777 "$stage/tmp"

tmp="$(mktemp "$DIR/.busybox-arm64.tar.XXXXXX")"
mapfile -t entries < <(find "$stage" -mindepth 1 -maxdepth 1 -printf '%P\n' | LC_ALL=C sort)
LC_ALL=C tar -C "$stage" --sort=name --mtime=@0 --numeric-owner --format=gnu -cf "$tmp" -- "${entries[@]}"
chmod 0644 "$tmp"
mv -f "$tmp" "$OUT"
echo "$OUT"
