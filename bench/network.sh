#!/usr/bin/env bash
# Networking cost of `run` (issue 6), side by side in one run of this script:
#   hako    run --rm --network none busybox true   (baseline)
#   hako    run --rm busybox true                  (default bridge: veth, IPAM, NAT)
#   hako    run --rm -p PORT:80 busybox true       (bridge + a published port)
#   docker  run --rm busybox true                  (its default bridge)
#   podman  --runtime runc run --rm busybox true   (its default network)
# then container<->host TCP throughput with iperf3 (apt), hako against docker: the host's
# iperf3 binary and libraries are bind-mounted read-only into the same busybox image for both,
# the server runs on the host at the bridge's gateway, the client in the container (both
# directions: container->host, and host->container with -R).
# Usage: bench/network.sh [--runs N] [--hako-runs M] [--rounds R] [--iperf-seconds S] [--no-iperf] [--no-startup] [--no-record]
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
RUNS=30
HAKO_RUNS=300
ROUNDS=10
RECORD=1
IPERF_RUNS=7
IPERF_SECS=10
IPERF=1
STARTUP=1
while (($#)); do
    case "$1" in
        --runs) RUNS="${2:?}"; shift 2 ;;
        --hako-runs) HAKO_RUNS="${2:?}"; shift 2 ;;
        --rounds) ROUNDS="${2:?}"; shift 2 ;;
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
    # The three hako variants differ by a few ms while one run varies by ±6 ms here (the
    # first cgroup v1 migration after a pause waits for an RCU grace period), so they get
    # HAKO_RUNS runs each (one costs ~30 ms), in ROUNDS interleaved hyperfine calls, the order
    # rotating each round, and their times pooled: a drift of the machine during the bench
    # then lands on all three alike. With σ ≈ 7 ms, 100 runs left each median ±0.9 ms (one
    # standard error), and the same binary's bridge − none read 4.5, 4.9 and 7.6 ms in three
    # runs; 300 halve that spread for ~30 s more. The peers get RUNS.
    hako_cmds=("hako none|$HAKO run --rm --network none busybox true"
        "hako bridge|$HAKO run --rm busybox true"
        "hako bridge -p|$HAKO run --rm -p $PORT:80 busybox true")
    per_round=$(((HAKO_RUNS + ROUNDS - 1) / ROUNDS))
    rm -f /tmp/hako-bench-net-*.json
    for r in $(seq 0 $((ROUNDS - 1))); do
        args=(-N --warmup 2 --runs "$per_round" --export-json "/tmp/hako-bench-net-$r.json")
        for i in 0 1 2; do
            c="${hako_cmds[$(((i + r) % 3))]}"
            args+=(--command-name "${c%%|*}" "${c#*|}")
        done
        hyperfine "${args[@]}" >/dev/null
    done
    args=(-N --warmup 3 --runs "$RUNS" --export-json /tmp/hako-bench-net-peers.json)
    npeers=0
    if [[ -n "$DOCKER_BIN" ]] && "$DOCKER_BIN" info >/dev/null 2>&1; then
        args+=(--command-name "docker bridge" "$DOCKER_BIN run --rm busybox true")
        npeers=$((npeers + 1))
    fi
    if have podman; then
        args+=(--command-name "podman bridge" "podman --runtime runc run --rm busybox true")
        npeers=$((npeers + 1))
    fi
    if ((npeers)); then
        hyperfine "${args[@]}" >&2
    fi
    table=$(python3 - "$ROUNDS" <<'PY'
import glob, json, statistics, sys
times = {}
for f in sorted(glob.glob("/tmp/hako-bench-net-*.json")):
    for x in json.load(open(f))["results"]:
        times.setdefault(x["command"], []).extend(x["times"])
order = ["hako none", "hako bridge", "hako bridge -p", "docker bridge", "podman bridge"]
med = {k: statistics.median(v) * 1000 for k, v in times.items()}
print("| command | runs | median ms | mean ± σ ms |")
print("| --- | ---: | ---: | ---: |")
for k in (k for k in order if k in times):
    v = [t * 1000 for t in times[k]]
    print(f"| {k} | {len(v)} | {med[k]:.1f} | {statistics.mean(v):.1f} ± {statistics.stdev(v):.1f} |")
if "docker bridge" in med:
    print(f"| hako bridge ÷ docker bridge | {med['hako bridge']/med['docker bridge']:.3f} (target ≤ 0.10) | | |")
print(f"| bridge − none | {med['hako bridge']-med['hako none']:.1f} ms (target ≤ 5) | | |")
print(f"| -p − bridge | {med['hako bridge -p']-med['hako bridge']:.1f} ms (target ≤ 3) | | |")
print(f"\nhako's three variants: {sys.argv[1]} interleaved hyperfine calls, order rotating, times pooled.")
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
        echo "- $(uname -r), $(nproc) CPUs; hyperfine -N; hako: $HAKO_RUNS runs each in $ROUNDS interleaved rounds (2 warm-ups each); peers: $RUNS runs, 3 warm-ups"
        echo
        echo "$table"
    } >>"$BENCH_DIR/RESULTS.md"
fi
