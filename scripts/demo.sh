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
HAKO=target/release/hako

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
