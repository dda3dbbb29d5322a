#!/usr/bin/env bash
# Rootless hako, the engine: `run --rm --network none busybox true` as an ordinary user against
# rootful hako and rootless Podman (`podman --runtime runc`, the same user), side by side in one
# hyperfine run (issue 17's targets: <= 1.3x rootful hako, <= 0.1x rootless Podman).
#
# Usage: bench/rootless-engine.sh [--runs N] [--warmup N]
#
# Creates a throw-away account (home under /var/tmp, a 65536-id range, removed on exit); hako
# keeps its state in the user's XDG directories, rootful hako in a private root under
# /var/tmp. The rootless hako rows include joining the user's namespace and the re-exec every
# command does (the namespace's holder is made by the warm-up). Prints a markdown table of
# hyperfine's medians; records nothing.
#
# Env: HAKO (default <repo>/target/release/hako), HAKO_TEST_IMAGES.
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

RUNS=30
WARMUP=3
while [[ $# -gt 0 ]]; do
    case "$1" in
    --runs) RUNS="$2"; shift 2 ;;
    --warmup) WARMUP="$2"; shift 2 ;;
    *) sed -n '7,7p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
    esac
done
[[ $EUID -eq 0 ]] || die "run as root (the script creates the benchmark's user)"
have hyperfine || die "hyperfine is missing (apt-get install hyperfine)"
have newuidmap || die "newuidmap is missing (apt-get install uidmap)"
HAKO="${HAKO:-$REPO_DIR/target/release/hako}"
[[ -x "$HAKO" ]] || die "$HAKO is missing: cargo build --release -p hako-cli"

USER_NAME="hakoe$$"
HOME_DIR="/var/tmp/hako-bench-rootless-engine-$$"
ROOTFUL="/var/tmp/hako-bench-rootful-$$"
START=1910000000
cleanup() {
    pkill -KILL -u "$USER_NAME" 2>/dev/null || true
    userdel -r -f "$USER_NAME" >/dev/null 2>&1 || true
    sed -i "/^$USER_NAME:/d" /etc/subuid /etc/subgid
    rm -rf "$HOME_DIR" 2>/dev/null || true
    HAKO_ROOT="$ROOTFUL" "$HAKO" rm -f $(HAKO_ROOT="$ROOTFUL" "$HAKO" ps -aq 2>/dev/null) >/dev/null 2>&1 || true
    rm -rf "$ROOTFUL"
}
trap cleanup EXIT
useradd --create-home --home-dir "$HOME_DIR" --no-user-group --gid users -s /bin/sh "$USER_NAME"
sed -i "/^$USER_NAME:/d" /etc/subuid /etc/subgid
echo "$USER_NAME:$START:65536" >>/etc/subuid
echo "$USER_NAME:$START:65536" >>/etc/subgid
UID_NUM=$(id -u "$USER_NAME")
GID_NUM=$(id -g "$USER_NAME")
install -d -o "$UID_NUM" -g "$GID_NUM" -m 0700 "$HOME_DIR/run"
install -m 0755 "$HAKO" "$HOME_DIR/hako"
for b in hako-monitor hako-init; do
    [[ -x "$(dirname "$HAKO")/$b" ]] && install -m 0755 "$(dirname "$HAKO")/$b" "$HOME_DIR/$b"
done
as_user() {
    (cd "$HOME_DIR" && setpriv --reuid="$UID_NUM" --regid="$GID_NUM" --init-groups -- \
        env -i HOME="$HOME_DIR" USER="$USER_NAME" PATH=/usr/local/bin:/usr/bin:/bin \
        XDG_RUNTIME_DIR="$HOME_DIR/run" "$@")
}
as_user "$HOME_DIR/hako" import "$IMAGES_DIR/busybox.tar" busybox >/dev/null
HAKO_ROOT="$ROOTFUL" "$HAKO" import "$IMAGES_DIR/busybox.tar" busybox >/dev/null
ARGS=(-N --runs "$RUNS" --warmup "$WARMUP" --export-json "$HOME_DIR/engine.json")
ARGS+=(-n "hako rootful" "env HAKO_ROOT=$ROOTFUL $HAKO run --rm --network none busybox true")
ARGS+=(-n "hako rootless" "setpriv --reuid=$UID_NUM --regid=$GID_NUM --init-groups -- env -i HOME=$HOME_DIR USER=$USER_NAME PATH=/usr/bin:/bin XDG_RUNTIME_DIR=$HOME_DIR/run $HOME_DIR/hako run --rm --network none busybox true")
if have podman && as_user podman import "$IMAGES_DIR/busybox.tar" bench-busybox >/dev/null 2>&1; then
    ARGS+=(-n "podman rootless" "setpriv --reuid=$UID_NUM --regid=$GID_NUM --init-groups -- env -i HOME=$HOME_DIR USER=$USER_NAME PATH=/usr/bin:/bin XDG_RUNTIME_DIR=$HOME_DIR/run podman --runtime runc run --rm --network none bench-busybox true")
else
    log "podman (rootless) not available: its row is left out"
fi
(cd "$HOME_DIR" && hyperfine "${ARGS[@]}") >&2

echo
echo "## rootless hako run vs rootful hako and rootless podman — $(date -u +%Y-%m-%dT%H:%MZ)"
echo
echo "bench/rootless-engine.sh, \`run --rm --network none busybox true\`, $RUNS runs, $(nproc) CPUs, kernel $(uname -r); rootless rows as one ordinary user (65536 subordinate ids), no cgroup (cgroup v1 host)."
echo
python3 - "$HOME_DIR/engine.json" <<'PY'
import json, sys
res = {r["command"]: r["median"] * 1000 for r in json.load(open(sys.argv[1]))["results"]}
base, pod = res.get("hako rootful"), res.get("podman rootless")
print("| engine | median ms | × rootful hako | × rootless podman |")
print("|:---|---:|---:|---:|")
for name, m in res.items():
    print("| %s | %.1f | %s | %s |" % (name, m, "%.2f" % (m / base) if base else "-", "%.3f" % (m / pod) if pod else "-"))
PY
