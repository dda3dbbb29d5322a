#!/usr/bin/env bash
# Rootless OCI runtimes: hako-runtime vs runc and crun, as the same ordinary user.
#
# Usage: bench/rootless.sh [--runs N] [--warmup N]
#
# Creates a throw-away account (home under /var/tmp, a 65536-id range in /etc/subuid and
# /etc/subgid, removed on exit) and a busybox `/bin/true` bundle from `hako-runtime spec
# --rootless` (ambient capabilities dropped, which runc skips silently and hako warns
# about). Each runtime runs it as that user with its own --root under the user's
# XDG_RUNTIME_DIR, in two layouts:
#   own ids:  the user's own uid/gid as root, nothing else (kernel writes the maps;
#             setgroups denied)
#   subids:   the user as root plus its 65536 subordinate ids (newuidmap/newgidmap)
# No runtime gets a cgroup: this host's controllers are cgroup v1, which cannot be
# delegated; crun runs with --cgroup-manager=disabled, which is what it needs for that. As in
# bench/runtime.sh, everything runs in one private mount namespace without
# /sys/fs/cgroup/unified, which crun refuses otherwise (hybrid layout), for every runtime.
# Prints a markdown table of hyperfine's medians; records nothing (the lead does that).
#
# Env: HAKO_RUNTIME (default <repo>/target/release/hako-runtime), HAKO_TEST_IMAGES.
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

RUNS=50
WARMUP=5
while [[ $# -gt 0 ]]; do
    case "$1" in
    --runs) RUNS="$2"; shift 2 ;;
    --warmup) WARMUP="$2"; shift 2 ;;
    *) sed -n '3,4p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
    esac
done

[[ $EUID -eq 0 ]] || die "run as root (the script creates the benchmark's user)"
if [[ -z "${HAKO_BENCH_ROOTLESS_INNER:-}" ]]; then
    exec unshare -m --propagation private env HAKO_BENCH_ROOTLESS_INNER=1 "$0" --runs "$RUNS" --warmup "$WARMUP"
fi
umount /sys/fs/cgroup/unified 2>/dev/null || true
have hyperfine || die "hyperfine is missing (apt-get install hyperfine)"
have newuidmap || die "newuidmap is missing (apt-get install uidmap)"
HAKO_RUNTIME="${HAKO_RUNTIME:-$REPO_DIR/target/release/hako-runtime}"
[[ -x "$HAKO_RUNTIME" ]] || die "$HAKO_RUNTIME is missing: cargo build --release -p hako-runtime-cli"
[[ -f "$IMAGES_DIR/busybox.tar" ]] || "$REPO_DIR/scripts/make-test-images.sh" --only busybox

USER_NAME="hakob$$"
HOME_DIR="/var/tmp/hako-bench-rootless-$$"
START=1900000000
cleanup() {
    pkill -KILL -u "$USER_NAME" 2>/dev/null || true
    userdel -r -f "$USER_NAME" >/dev/null 2>&1 || true
    sed -i "/^$USER_NAME:/d" /etc/subuid /etc/subgid
    rm -rf "$HOME_DIR"
}
trap cleanup EXIT
useradd --create-home --home-dir "$HOME_DIR" --no-user-group --gid users -s /bin/sh "$USER_NAME"
sed -i "/^$USER_NAME:/d" /etc/subuid /etc/subgid
echo "$USER_NAME:$START:65536" >>/etc/subuid
echo "$USER_NAME:$START:65536" >>/etc/subgid
UID_NUM=$(id -u "$USER_NAME")
GID_NUM=$(id -g "$USER_NAME")
install -d -o "$UID_NUM" -g "$GID_NUM" -m 0700 "$HOME_DIR/run"
cp "$HAKO_RUNTIME" "$HOME_DIR/hako-runtime"
chmod 0755 "$HOME_DIR/hako-runtime"

for layout in own subids; do
    b="$HOME_DIR/bundle-$layout"
    mkdir -p "$b/rootfs"
    tar -xf "$IMAGES_DIR/busybox.tar" -C "$b/rootfs"
    (cd "$b" && "$HOME_DIR/hako-runtime" spec --rootless)
    python3 - "$b/config.json" "$layout" "$UID_NUM" "$GID_NUM" "$START" <<'EOF'
import json, sys
p, layout, uid, gid, start = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:])
c = json.load(open(p))
c["process"]["args"] = ["/bin/true"]
c["ociVersion"] = "1.0.2"  # crun 1.8 refuses newer spec versions; the same here
c["process"]["capabilities"].pop("ambient", None)
c["linux"]["uidMappings"] = [{"containerID": 0, "hostID": uid, "size": 1}]
c["linux"]["gidMappings"] = [{"containerID": 0, "hostID": gid, "size": 1}]
if layout == "subids":
    c["linux"]["uidMappings"].append({"containerID": 1, "hostID": start, "size": 65536})
    c["linux"]["gidMappings"].append({"containerID": 1, "hostID": start, "size": 65536})
json.dump(c, open(p, "w"))
EOF
    chown -R "$UID_NUM:$GID_NUM" "$b"
done

as_user() {
    setpriv --reuid="$UID_NUM" --regid="$GID_NUM" --init-groups -- \
        env -i HOME="$HOME_DIR" USER="$USER_NAME" PATH=/usr/local/bin:/usr/bin:/bin \
        XDG_RUNTIME_DIR="$HOME_DIR/run" "$@"
}

ARGS=(-N --runs "$RUNS" --warmup "$WARMUP" --export-json "$HOME_DIR/run.json")
for layout in own subids; do
    b="$HOME_DIR/bundle-$layout"
    for rt in hako-runtime runc crun; do
        case $rt in
        hako-runtime) bin="$HOME_DIR/hako-runtime" ;;
        crun) have crun || continue; bin="crun --cgroup-manager=disabled" ;;
        *) have "$rt" || continue; bin="$rt" ;;
        esac
        root="$HOME_DIR/run/$rt-$layout"
        if ! out=$(as_user $bin --root "$root" run -b "$b" "probe" 2>&1 </dev/null); then
            log "$rt ($layout): probe failed: $(echo "$out" | tail -1)"
            as_user $bin --root "$root" delete --force probe >/dev/null 2>&1 || true
            continue
        fi
        ARGS+=(-n "$rt $layout" "$bin --root $root run -b $b bench")
    done
done
chown "$UID_NUM" "$HOME_DIR"
as_user hyperfine "${ARGS[@]}" >&2

echo
echo "## rootless hako-runtime vs runc, crun — $(date -u +%Y-%m-%dT%H:%MZ)"
echo
echo "bench/rootless.sh, busybox /bin/true, one ordinary user, no cgroup (cgroup v1 host; private mount namespace without /sys/fs/cgroup/unified), $RUNS runs, $(nproc) CPUs, kernel $(uname -r)."
echo
python3 - "$HOME_DIR/run.json" <<'PY'
import json, sys
res = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
print("| runtime | own ids median ms | × runc | subids (newuidmap) median ms | × runc |")
print("|:---|---:|---:|---:|---:|")
def med(name):
    r = res.get(name)
    return r["median"] * 1000 if r else None
for rt in ["hako-runtime", "runc", "crun"]:
    cells = []
    for layout in ["own", "subids"]:
        m, base = med(f"{rt} {layout}"), med(f"runc {layout}")
        cells += ["%.1f" % m if m else "-", "%.2f" % (m / base) if m and base else "-"]
    print("| %s | %s |" % (rt, " | ".join(cells)))
PY
