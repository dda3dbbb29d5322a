#!/usr/bin/env bash
# Prepare the peer engines that bench/run.sh compares hako against.
#
#  * installs (apt, only what is missing) docker.io podman runc crun
#    hyperfine time uidmap jq iperf3
#  * makes podman usable without systemd/ulimit surprises via
#    /etc/containers/containers.conf (merged, existing content kept)
#  * starts a dockerd unless `docker info` already works; its pid goes to
#    /run/hako-bench-dockerd.pid (bench/stop-peers.sh stops it)
#  * builds the test images (scripts/make-test-images.sh, cached) and
#    imports busybox.tar into docker and podman as busybox:latest
#  * prepares an OCI bundle for runc/crun in $IMAGES_DIR/bundle
#
# Env: HAKO_TEST_IMAGES (default /var/cache/hako-test-images), DOCKER (CLI).
# Idempotent; run as root.
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ $(id -u) -eq 0 ]] || die "must run as root"

# --- packages ---------------------------------------------------------------
missing=()
for pkg in docker.io podman runc crun hyperfine time uidmap jq iperf3; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
fi

# --- containers.conf --------------------------------------------------------
# Add keys only where the file does not set them already; everything else in
# the file is left untouched. Without systemd as init, podman must use the
# cgroupfs manager and file events logger.
conf=/etc/containers/containers.conf
mkdir -p /etc/containers
touch "$conf"
want=("containers" "default_ulimits" "[]")
if [[ "$(podman_cgroup_manager)" == cgroupfs ]]; then
    want+=("engine" "cgroup_manager" '"cgroupfs"' "engine" "events_logger" '"file"')
fi
python3 - "$conf" "${want[@]}" <<'EOF'
import re, sys
path, rest = sys.argv[1], sys.argv[2:]
lines = open(path).read().splitlines()
changed = False
for i in range(0, len(rest), 3):
    section, key, value = rest[i:i + 3]
    # Does the file already set this key inside the section?
    cur, found = None, False
    for ln in lines:
        m = re.match(r'\s*\[([^\]]+)\]\s*(#.*)?$', ln)
        if m:
            cur = m.group(1).strip()
        elif cur == section and re.match(r'\s*' + re.escape(key) + r'\s*=', ln):
            found = True
    if found:
        continue
    changed = True
    idx = next((j for j, ln in enumerate(lines)
                if re.match(r'\s*\[' + re.escape(section) + r'\]\s*(#.*)?$', ln)), None)
    if idx is None:
        if lines and lines[-1].strip():
            lines.append("")
        lines += ["[%s]" % section, "%s = %s" % (key, value)]
    else:
        lines.insert(idx + 1, "%s = %s" % (key, value))
if changed:
    open(path, "w").write("\n".join(lines) + "\n")
    print(">> updated " + path, file=sys.stderr)
EOF

# --- dockerd ----------------------------------------------------------------
DOCKER="$(docker_cli)"
[[ -n "$DOCKER" ]] || die "no docker CLI found"
if [[ "$(which -a docker | head -n1)" != "$DOCKER" ]]; then
    log "using docker CLI $DOCKER (first on PATH is $(which -a docker | head -n1))"
fi
if "$DOCKER" info >/dev/null 2>&1; then
    log "dockerd already running"
else
    have dockerd || die "dockerd not installed"
    log "starting dockerd (log: $DOCKERD_LOG)"
    setsid dockerd >"$DOCKERD_LOG" 2>&1 </dev/null &
    echo $! >"$DOCKERD_PIDFILE"
    for _ in $(seq 60); do
        "$DOCKER" info >/dev/null 2>&1 && break
        kill -0 "$(cat "$DOCKERD_PIDFILE")" 2>/dev/null || break
        sleep 0.5
    done
    if ! "$DOCKER" info >/dev/null 2>&1; then
        tail -n 20 "$DOCKERD_LOG" >&2
        die "dockerd did not come up within 30 s"
    fi
    log "dockerd running, pid $(cat "$DOCKERD_PIDFILE")"
fi

# --- images -----------------------------------------------------------------
"$REPO_DIR/scripts/make-test-images.sh" --only busybox "$IMAGES_DIR" >/dev/null
TAR="$IMAGES_DIR/busybox.tar"
sum="$(sha256sum "$TAR" | cut -d' ' -f1)"

# import_into ENGINE-NAME CLI...: import busybox.tar unless the image exists
# and was imported from this very tar (stamp file keeps the tar's sha256).
import_into() {
    local name="$1"
    shift
    local stamp="$IMAGES_DIR/.imported-$name"
    if "$@" image inspect "$PEER_IMAGE" >/dev/null 2>&1 &&
        [[ -f "$stamp" && "$(cat "$stamp")" == "$sum" ]]; then
        log "$name: $PEER_IMAGE up to date"
        return 0
    fi
    log "$name: importing $TAR as $PEER_IMAGE"
    "$@" import ${quiet:+"$quiet"} --change 'CMD ["/bin/sh"]' "$TAR" "$PEER_IMAGE" >/dev/null
    echo "$sum" >"$stamp"
}
quiet="" import_into docker "$DOCKER"
quiet=--quiet import_into podman podman

# --- OCI bundle for runc/crun -------------------------------------------------
if [[ ! -f "$BUNDLE_DIR/config.json" || "$TAR" -nt "$BUNDLE_DIR/config.json" ]]; then
    log "preparing OCI bundle $BUNDLE_DIR"
    rm -rf "$BUNDLE_DIR"
    mkdir -p "$BUNDLE_DIR/rootfs"
    tar -C "$BUNDLE_DIR/rootfs" --numeric-owner -xf "$TAR"
    # `runc spec` writes a default config: namespaces incl. network, no
    # terminal; we only change the process and make the root read-only.
    (cd "$BUNDLE_DIR" && runc spec)
    tmp="$(mktemp "$BUNDLE_DIR/.config.XXXXXX")"
    jq '.process.args = ["true"] | .process.terminal = false | .root.readonly = true' \
        "$BUNDLE_DIR/config.json" >"$tmp"
    mv "$tmp" "$BUNDLE_DIR/config.json"
fi

log "peers ready:"
for tool in "$DOCKER" podman runc crun hyperfine; do
    printf '   %-16s %s\n' "$(basename "$tool")" "$("$tool" --version 2>&1 | head -n1)" >&2
done
if [[ -f "$DOCKERD_PIDFILE" ]] && kill -0 "$(cat "$DOCKERD_PIDFILE")" 2>/dev/null; then
    log "dockerd pid $(cat "$DOCKERD_PIDFILE") (bench/stop-peers.sh stops it)"
fi
