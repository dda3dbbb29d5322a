#!/usr/bin/env bash
# Networking cost of `run` (issue 6), side by side in one hyperfine run:
#   hako    run --rm --network none busybox true   (baseline)
#   hako    run --rm busybox true                  (default bridge: veth, IPAM, NAT)
#   hako    run --rm -p PORT:80 busybox true       (bridge + a published port)
#   docker  run --rm busybox true                  (its default bridge)
#   podman  --runtime runc run --rm busybox true   (its default network)
# Usage: bench/network.sh [--runs N] [--no-record]
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
RUNS=30
RECORD=1
while (($#)); do
    case "$1" in
        --runs) RUNS="${2:?}"; shift 2 ;;
        --no-record) RECORD=0; shift ;;
        *) sed -n '2,9p' "$0" >&2; exit 2 ;;
    esac
done
have hyperfine || die "hyperfine missing: run bench/setup-peers.sh"
HAKO="${HAKO:-$REPO_DIR/target/release/hako}"
[[ -x "$HAKO" ]] || die "$HAKO missing: scripts/build-release.sh"
export HAKO_ROOT="${HAKO_ROOT:-/var/tmp/hako-bench-root}"
"$HAKO" images -q | grep -q . || "$HAKO" import "$IMAGES_DIR/busybox.tar" busybox >/dev/null
PORT=$((20000 + RANDOM % 10000))
DOCKER_BIN="$(docker_cli)"

args=(-N --warmup 3 --runs "$RUNS" --export-json /tmp/hako-bench-net.json)
args+=(--command-name "hako none" "$HAKO run --rm --network none busybox true")
args+=(--command-name "hako bridge" "$HAKO run --rm busybox true")
args+=(--command-name "hako bridge -p" "$HAKO run --rm -p $PORT:80 busybox true")
if [[ -n "$DOCKER_BIN" ]] && "$DOCKER_BIN" info >/dev/null 2>&1; then
    args+=(--command-name "docker bridge" "$DOCKER_BIN run --rm busybox true")
fi
if have podman; then
    args+=(--command-name "podman bridge" "podman --runtime runc run --rm busybox true")
fi
hyperfine "${args[@]}" >&2
table=$(python3 - <<'PY'
import json
r = {x["command"]: x for x in json.load(open("/tmp/hako-bench-net.json"))["results"]}
med = {k: v["median"] * 1000 for k, v in r.items()}
print("| command | median ms | mean ± σ ms |")
print("| --- | ---: | ---: |")
for k, v in r.items():
    print(f"| {k} | {med[k]:.1f} | {v['mean']*1000:.1f} ± {v['stddev']*1000:.1f} |")
if "docker bridge" in med:
    print(f"| hako bridge ÷ docker bridge | {med['hako bridge']/med['docker bridge']:.3f} (target ≤ 0.10) | |")
print(f"| bridge − none | {med['hako bridge']-med['hako none']:.1f} ms (target ≤ 5) | |")
print(f"| -p − bridge | {med['hako bridge -p']-med['hako bridge']:.1f} ms (target ≤ 3) | |")
PY
)
echo "$table"
if ((RECORD)); then
    {
        echo
        echo "## $(date -u +%Y-%m-%d) network cost of run (bench/network.sh)"
        echo
        echo "- $(uname -r), $(nproc) CPUs; hyperfine -N, 3 warm-ups, $RUNS runs"
        echo
        echo "$table"
    } >>"$BENCH_DIR/RESULTS.md"
fi
