# shellcheck shell=bash disable=SC2034
# Helpers shared by the bench/ scripts. Source it; do not run it.

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$BENCH_DIR/.." && pwd)"
IMAGES_DIR="${HAKO_TEST_IMAGES:-/var/cache/hako-test-images}"
BUNDLE_DIR="${HAKO_BENCH_BUNDLE:-$IMAGES_DIR/bundle}"
DOCKERD_PIDFILE="${HAKO_BENCH_DOCKERD_PIDFILE:-/run/hako-bench-dockerd.pid}"
DOCKERD_LOG=/var/log/hako-bench-dockerd.log
# Image name the peers are loaded with (from busybox.tar).
PEER_IMAGE="${HAKO_BENCH_IMAGE:-busybox:latest}"

log() { printf '>> %s\n' "$*" >&2; }
die() {
    printf '%s: %s\n' "$(basename "$0")" "$*" >&2
    exit 1
}

# The docker CLI to use. /usr/local/bin/docker may be a separately installed
# (newer) bare client that shadows the Debian one; prefer the client shipped
# with the daemon we start (docker.io's /usr/bin/docker), since its API version
# always matches. DOCKER=... overrides.
docker_cli() {
    if [[ -n "${DOCKER:-}" ]]; then
        echo "$DOCKER"
    elif [[ -x /usr/bin/docker ]]; then
        echo /usr/bin/docker
    else
        command -v docker || true
    fi
}

have() { command -v "$1" >/dev/null 2>&1; }

# cgroup manager for podman: systemd only if systemd is PID 1.
podman_cgroup_manager() {
    if [[ -d /run/systemd/system ]]; then echo systemd; else echo cgroupfs; fi
}
