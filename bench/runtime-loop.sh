#!/usr/bin/env bash
# Fork-safety check: N (default 1000) consecutive `hako-runtime run`s of a busybox
# `/bin/true` bundle. A container that exits at once must never be missed: every run
# returns within a generous bound (a hang otherwise), exits 0, and leaves no state dir,
# cgroup or mount behind. Prints the counts; exits 1 on any hang, failure or leftover.
#
# Usage: bench/runtime-loop.sh [--runs N]
# Env: HAKO_RUNTIME (default <repo>/target/release/hako-runtime, built if missing),
# HAKO_TEST_IMAGES.
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

RUNS=1000
while [[ $# -gt 0 ]]; do
    case "$1" in
    --runs) RUNS="$2"; shift 2 ;;
    *) sed -n '7p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
    esac
done

[[ $EUID -eq 0 ]] || die "run as root"
HAKO_RUNTIME="${HAKO_RUNTIME:-$REPO_DIR/target/release/hako-runtime}"
if [[ ! -x "$HAKO_RUNTIME" ]]; then
    log "building hako-runtime (release)"
    (cd "$REPO_DIR" && cargo build --release -q -p hako-runtime-cli)
fi
[[ -f "$IMAGES_DIR/busybox.tar" ]] || "$REPO_DIR/scripts/make-test-images.sh" --only busybox

WORK="$(mktemp -d /var/tmp/hako-bench-loop.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
mkdir "$WORK/rootfs"
tar -xf "$IMAGES_DIR/busybox.tar" -C "$WORK/rootfs"
"$HAKO_RUNTIME" spec --bundle "$WORK"
CG="hako-bench-loop-$$"
python3 - "$WORK/config.json" "$CG" <<'PY'
import json, sys
p, cg = sys.argv[1], sys.argv[2]
c = json.load(open(p))
c["process"]["args"] = ["/bin/true"]
c["process"]["capabilities"].pop("ambient", None)
c["linux"]["cgroupsPath"] = cg
json.dump(c, open(p, "w"))
PY

own_memcg=$(awk -F: '$2 ~ /(^|,)memory(,|$)/ {print $3}' /proc/self/cgroup)
memcg="/sys/fs/cgroup/memory${own_memcg%/}/$CG"
root="$WORK/state"
hangs=0 failures=0 leftovers=0
for ((i = 0; i < RUNS; i++)); do
    rc=0
    timeout -s KILL 30 "$HAKO_RUNTIME" --root "$root" run -b "$WORK" loop </dev/null >/dev/null 2>"$WORK/err" || rc=$?
    if ((rc == 137)); then
        hangs=$((hangs + 1))
        log "run $i hung"
    elif ((rc != 0)); then
        failures=$((failures + 1))
        log "run $i failed ($rc): $(tail -1 "$WORK/err")"
    fi
    if [[ -e "$root/loop" || -d "$memcg" ]] || grep -qF "$WORK/" /proc/self/mountinfo; then
        leftovers=$((leftovers + 1))
        log "run $i left state, cgroup or mounts behind"
        "$HAKO_RUNTIME" --root "$root" delete --force loop >/dev/null 2>&1 || true
    fi
done
echo "runs=$RUNS hangs=$hangs failures=$failures leftovers=$leftovers"
((hangs == 0 && failures == 0 && leftovers == 0))
