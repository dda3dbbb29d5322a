#!/usr/bin/env bash
# Pull benchmark: hako vs docker vs podman pulling the same image from a local
# registry (Debian's docker-registry on 127.0.0.1), the image removed before
# each run (hyperfine --prepare), all in one hyperfine invocation.
#
# The image (bench/registry-image.sh): ~245 MB uncompressed, ~80 MB gzip in 5
# layers, like the issue's target: trixie.tar (scripts/make-test-images.sh) in
# 3 layers, then generated incompressible and compressible data layers; pushed
# with skopeo as an OCI image.
#
# Usage: bench/pull.sh [--runs N] [--no-record]
# Env: HAKO (default <repo>/target/release/hako), HAKO_TEST_IMAGES.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
runs=5
record=1
while [ $# -gt 0 ]; do
    case $1 in
        --runs) runs=$2; shift 2 ;;
        --no-record) record=0; shift ;;
        *) echo "usage: $0 [--runs N] [--no-record]" >&2; exit 2 ;;
    esac
done
images=${HAKO_TEST_IMAGES:-/var/cache/hako-test-images}
HAKO=${HAKO:-$repo/target/release/hako}
[ -x "$HAKO" ] || (cd "$repo" && cargo build --release -p hako-cli >/dev/null)
for b in docker-registry skopeo hyperfine python3; do
    command -v "$b" >/dev/null || { echo "missing $b (apt-get install docker-registry skopeo hyperfine python3)" >&2; exit 1; }
done

work=$(mktemp -d /var/tmp/hako-bench-pull.XXXXXX)
reg_pid=
cleanup() {
    [ -x "$work/purge" ] && for cli in "$HAKO" "$(docker_cli)" podman; do
        command -v "$cli" >/dev/null 2>&1 && { "$work/purge" "$cli" 2>/dev/null || true; }
    done
    # The registry's status (143) from wait must not stop the cleanup under set -e.
    [ -n "$reg_pid" ] && kill "$reg_pid" 2>/dev/null && { wait "$reg_pid" 2>/dev/null || true; }
    rm -rf "$work"
}
trap cleanup EXIT

source "$here/lib.sh"
source "$here/registry-image.sh"

export HAKO_ROOT=$work/hako-root
docker=$(docker_cli)
cmds=()
check_fresh_pull "$HAKO" "$HAKO" pull "$img"
cmds+=(-n hako --prepare "$work/purge $HAKO" "$HAKO pull -q $img")
if [ -n "$docker" ] && "$docker" info >/dev/null 2>&1; then
    check_fresh_pull "$docker" "$docker" pull "$img"
    cmds+=(-n docker --prepare "$work/purge $docker" "$docker pull -q $img")
else
    echo "docker: not running, skipped (bench/setup-peers.sh starts it)"
fi
if command -v podman >/dev/null; then
    check_fresh_pull podman podman pull --tls-verify=false "$img"
    cmds+=(-n podman --prepare "$work/purge podman" "podman pull -q --tls-verify=false $img")
fi
hyperfine --runs "$runs" --export-json "$work/pull.json" "${cmds[@]}"

median() { python3 -c "import json,sys; r={x['command']:x['median'] for x in json.load(open('$work/pull.json'))['results']}; print(r.get(sys.argv[1],''))" "$1"; }
h=$(median hako); d=$(median docker); p=$(median podman)
ratio=$(python3 -c "import sys; h,d=sys.argv[1],sys.argv[2]; print(f'{float(h)/float(d):.3f}' if d else 'n/a')" "$h" "$d")
echo "hako ÷ docker: $ratio (target ≤ 0.40)"
if [ "$record" = 1 ]; then
    fmt() { [ -n "$1" ] && python3 -c "import sys; print(f'{float(sys.argv[1]):.3f}')" "$1" || echo "skipped"; }
    {
        echo
        echo "## $(date -u +%F) pull from a local registry (bench/pull.sh)"
        echo
        echo "- $(uname -r), $(nproc) CPUs; 5 gzip layers (trixie rootfs + generated data, ~245 MB / ~80 MB gzip); image removed before each run; hyperfine medians of $runs runs"
        echo
        echo "| engine | pull (s) |"
        echo "| --- | ---: |"
        echo "| hako | $(fmt "$h") |"
        echo "| docker | $(fmt "$d") |"
        echo "| podman | $(fmt "$p") |"
        echo "| hako ÷ docker | $ratio (target ≤ 0.40) |"
    } >>"$here/RESULTS.md"
fi
