#!/usr/bin/env bash
# Image-store benchmarks of issue 4, hako side by side with docker (and podman
# where it has the command), in one run:
#   - save: `save -o FILE` of the 5-layer bench image (bench/registry-image.sh);
#   - load: `load -i FILE` of each engine's own archive, the image purged first;
#   - images: `images` with 200 images in the store.
# Targets: save and load ≤ 0.5 × docker; `hako images` with 200 images ≤ 15 ms.
#
# Usage: bench/images.sh [--runs N] [--count N]
# Env: HAKO (default <repo>/target/release/hako), HAKO_TEST_IMAGES.
# Prints figures; recording them in RESULTS.md is left to whoever runs it on a
# quiet machine.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
runs=5
count=200
while [ $# -gt 0 ]; do
    case $1 in
        --runs) runs=$2; shift 2 ;;
        --count) count=$2; shift 2 ;;
        *) echo "usage: $0 [--runs N] [--count N]" >&2; exit 2 ;;
    esac
done
images=${HAKO_TEST_IMAGES:-/var/cache/hako-test-images}
HAKO=${HAKO:-$repo/target/release/hako}
[ -x "$HAKO" ] || (cd "$repo" && cargo build --release -p hako-cli >/dev/null)
for b in docker-registry skopeo hyperfine python3 tar; do
    command -v "$b" >/dev/null || { echo "missing $b" >&2; exit 1; }
done
source "$here/lib.sh"

work=$(mktemp -d /var/tmp/hako-bench-images.XXXXXX)
reg_pid=
docker=$(docker_cli)
have_docker=0
[ -n "$docker" ] && "$docker" info >/dev/null 2>&1 && have_docker=1
many_repo=hako-bench-many
cleanup() {
    if [ -x "$work/purge" ]; then
        "$work/purge" "$HAKO" 2>/dev/null || true
        [ "$have_docker" = 1 ] && { "$work/purge" "$docker" 2>/dev/null || true; }
    fi
    if [ "$have_docker" = 1 ]; then
        ids=$("$docker" images -q "$many_repo/*" 2>/dev/null | sort -u)
        # shellcheck disable=SC2086
        [ -n "$ids" ] && { "$docker" rmi -f $ids >/dev/null 2>&1 || true; }
    fi
    # The registry's status (143) from wait must not stop the cleanup under set -e.
    [ -n "$reg_pid" ] && kill "$reg_pid" 2>/dev/null && { wait "$reg_pid" 2>/dev/null || true; }
    rm -rf "$work"
}
trap cleanup EXIT

source "$here/registry-image.sh"
export HAKO_ROOT=$work/hako-root

"$HAKO" pull -q "$img" >/dev/null
[ "$have_docker" = 1 ] && "$docker" pull -q "$img" >/dev/null
[ "$have_docker" = 1 ] || echo "docker: not running, hako only (bench/setup-peers.sh starts it)"

median() { # JSON NAME
    python3 -c "import json,sys; r={x['command']:x['median'] for x in json.load(open(sys.argv[1]))['results']}; print(r.get(sys.argv[2],''))" "$1" "$2"
}
ratio() { python3 -c "import sys; h,d=sys.argv[1:3]; print(f'{float(h)/float(d):.3f}' if h and d else 'n/a')" "$1" "$2"; }

# save
cmds=(-n hako --prepare "rm -f $work/h.tar" "$HAKO save -o $work/h.tar $img")
[ "$have_docker" = 1 ] && cmds+=(-n docker --prepare "rm -f $work/d.tar" "$docker save -o $work/d.tar $img")
hyperfine --runs "$runs" --export-json "$work/save.json" "${cmds[@]}"
"$HAKO" save -o "$work/h.tar" "$img"
[ "$have_docker" = 1 ] && "$docker" save -o "$work/d.tar" "$img"

# load: each engine loads its own archive into a store without the image.
cmds=(-n hako --prepare "$work/purge $HAKO" "$HAKO load -q -i $work/h.tar")
[ "$have_docker" = 1 ] && cmds+=(-n docker --prepare "$work/purge $docker" "$docker load -q -i $work/d.tar")
hyperfine --runs "$runs" --export-json "$work/load.json" "${cmds[@]}"
"$HAKO" images -q "$img" | grep -q . || { echo "hako load did not restore the image" >&2; exit 1; }

# images with $count images: one shared tiny layer, distinct configs.
mkdir -p "$work/tiny"
echo bench >"$work/tiny/file"
tar -C "$work/tiny" -cf "$work/tiny.tar" file
export HAKO_ROOT=$work/many-root
for i in $(seq "$count"); do
    "$HAKO" import -c "LABEL n=$i" "$work/tiny.tar" "$many_repo/img$i:latest" >/dev/null
    [ "$have_docker" = 1 ] && "$docker" import -c "LABEL n=$i" "$work/tiny.tar" "$many_repo/img$i:latest" >/dev/null
done
n=$("$HAKO" images -q | wc -l)
[ "$n" -ge "$count" ] || { echo "hako lists $n images, expected $count" >&2; exit 1; }
cmds=(-N --warmup 3 -n hako "$HAKO images")
[ "$have_docker" = 1 ] && cmds+=(-n docker "$docker images")
hyperfine --runs "$((runs * 4))" --export-json "$work/list.json" "${cmds[@]}"

echo
echo "save   hako ÷ docker: $(ratio "$(median "$work/save.json" hako)" "$(median "$work/save.json" docker)") (target ≤ 0.5)"
echo "load   hako ÷ docker: $(ratio "$(median "$work/load.json" hako)" "$(median "$work/load.json" docker)") (target ≤ 0.5)"
echo "images with $count: hako $(python3 -c "import sys; print(f'{float(sys.argv[1])*1000:.1f} ms')" "$(median "$work/list.json" hako)") (target ≤ 15 ms)"
