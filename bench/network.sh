#!/usr/bin/env bash
# Networking cost of `run` (issue 6), side by side in one hyperfine run:
#   hako    run --rm --network none busybox true   (baseline)
#   hako    run --rm busybox true                  (default bridge: veth, IPAM, NAT)
#   hako    run --rm -p PORT:80 busybox true       (bridge + a published port)
#   docker  run --rm busybox true                  (its default bridge)
#   podman  --runtime runc run --rm busybox true   (its default network)
# then container<->host TCP throughput with iperf3 (apt), hako against docker: the host's
# iperf3 binary and libraries are bind-mounted read-only into the same busybox image for both,
# the server runs on the host at the bridge's gateway, the client in the container (both
# directions: container->host, and host->container with -R).
# Usage: bench/network.sh [--runs N] [--iperf-seconds S] [--no-iperf] [--no-startup] [--no-record]
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
RUNS=30
RECORD=1
IPERF_RUNS=5
IPERF_SECS=10
IPERF=1
STARTUP=1
while (($#)); do
    case "$1" in
        --runs) RUNS="${2:?}"; shift 2 ;;
        --iperf-seconds) IPERF_SECS="${2:?}"; shift 2 ;;
        --no-iperf) IPERF=0; shift ;;
        --no-startup) STARTUP=0; shift ;;
        --no-record) RECORD=0; shift ;;
        *) sed -n '2,13p' "$0" >&2; exit 2 ;;
    esac
done
have hyperfine || die "hyperfine missing: run bench/setup-peers.sh"
HAKO="${HAKO:-$REPO_DIR/target/release/hako}"
[[ -x "$HAKO" ]] || die "$HAKO missing: scripts/build-release.sh"
export HAKO_ROOT="${HAKO_ROOT:-/var/tmp/hako-bench-root}"
"$HAKO" images -q | grep -q . || "$HAKO" import "$IMAGES_DIR/busybox.tar" busybox >/dev/null
PORT=$((20000 + RANDOM % 10000))
DOCKER_BIN="$(docker_cli)"

table=""
if ((STARTUP)); then
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
fi

# --- TCP throughput container <-> host (iperf3) -----------------------------------------
# Gbit/s of one iperf3 run: $1 the gateway (server address), $2 "" or -R, then the
# engine's run command.
iperf_once() {
    local gw="$1" dir="$2"; shift 2
    local port=$((30000 + RANDOM % 10000))
    iperf3 -s -1 -B "$gw" -p "$port" >/dev/null 2>&1 &
    local srv=$!
    sleep 0.3
    local json
    json=$("$@" --rm -v /usr:/usr:ro -v /lib:/lib:ro -v /lib64:/lib64:ro --entrypoint /usr/bin/iperf3 busybox \
        -c "$gw" -p "$port" -t "$IPERF_SECS" -J ${dir:+"$dir"}) || { kill "$srv" 2>/dev/null; return 1; }
    wait "$srv" 2>/dev/null || true
    python3 -c 'import json,sys; print("%.2f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e9))' <<<"$json"
}
if ((IPERF)); then
    have iperf3 || die "iperf3 missing: apt-get install -y --no-install-recommends iperf3"
    hako_gw=$("$HAKO" run --rm busybox sh -c "ip route | awk '/default/ {print \$3}'")
    tput=("| direction | hako Gbit/s | docker Gbit/s | hako ÷ docker (target ≥ 0.9) |" "| --- | ---: | ---: | ---: |")
    docker_gw=""
    if [[ -n "$DOCKER_BIN" ]] && "$DOCKER_BIN" info >/dev/null 2>&1; then
        # Docker 20.10 leaves the default bridge's Gateway out of `network inspect`; ask a
        # container, as for hako.
        docker_gw=$("$DOCKER_BIN" run --rm busybox sh -c "ip route | awk '/default/ {print \$3}'")
    fi
    median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
    for dir in "" "-R"; do
        name="container→host"; [[ -n "$dir" ]] && name="host→container"
        # One iperf3 run on this 2-CPU VM swings by ±40 %: take the median of IPERF_RUNS,
        # alternating the engines so both see the same background.
        hs=() ds=()
        for _ in $(seq "$IPERF_RUNS"); do
            hs+=("$(iperf_once "$hako_gw" "$dir" "$HAKO" run)") || die "iperf3 through hako failed"
            if [[ -n "$docker_gw" ]]; then
                ds+=("$(iperf_once "$docker_gw" "$dir" "$DOCKER_BIN" run)") || die "iperf3 through docker failed"
            fi
        done
        h=$(median "${hs[@]}")
        d="-"; ratio="-"
        if [[ -n "$docker_gw" ]]; then
            d=$(median "${ds[@]}")
            ratio=$(python3 -c "print('%.2f' % ($h / $d))")
        fi
        tput+=("| $name (median of $IPERF_RUNS) | $h | $d | $ratio |")
    done
    table+=$'\n\n'"$(printf '%s\n' "${tput[@]}")"
fi

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
