#!/usr/bin/env bash
# Set-up and the main job on a fresh Debian 12 machine, as root: build hako, import an image
# made from the host's busybox-static, and run containers from it.
#
# The state lives in $HAKO_ROOT (default /var/lib/hako), so the image stays for later use:
#   target/release/hako run --rm busybox sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [[ $EUID -ne 0 ]]; then
    echo "scripts/demo.sh: run as root (containers need namespaces, mounts and cgroups)" >&2
    exit 1
fi

# shellcheck source=scripts/lib.sh
. scripts/lib.sh

apt_install busybox-static build-essential pkg-config libseccomp-dev ca-certificates curl iproute2 nftables iptables
ensure_rust

scripts/build-release.sh
# Installed on the PATH: hako finds its helpers (monitor, finish, init, name server, proxy)
# beside its own executable, so they go together. `install` writes each file anew, as the
# build script's copy does, rather than replacing a running binary in place.
for bin in hako hako-runtime hako-monitor hako-finish hako-health hako-init hako-dns hako-proxy; do
    install -m 0755 "target/release/$bin" "/usr/local/bin/$bin"
done
HAKO=hako
echo "hako is installed in /usr/local/bin; images and containers live in /var/lib/hako (HAKO_ROOT to change)" >&2

scripts/make-test-images.sh --only busybox
IMAGES=${HAKO_TEST_IMAGES:-/var/cache/hako-test-images}

set -x
"$HAKO" import "$IMAGES/busybox.tar" busybox
"$HAKO" images
# shellcheck disable=SC2016 # expanded inside the container
"$HAKO" run --rm busybox sh -c 'echo "hello from $(hostname), PID $$, as $(id -un)"; ps'
"$HAKO" run --name demo busybox sh -c 'exit 3' || echo "exit status: $?"
"$HAKO" ps -a
"$HAKO" rm demo
