#!/usr/bin/env bash
# Container lifecycle benchmark (issue 5): hako vs docker vs podman, side by side in one run.
#
# Usage: bench/containers.sh [--only hako,docker,podman] [--count N] [--runs N] [--no-record]
#
#   cycle   `run -d busybox sleep 1000` + `stop -t 0` + `rm`, one container at a time (hyperfine)
#   create  N sequential `create busybox true` (wall time of the batch)
#   start   N sequential `start` of those created containers (wall time of the batch)
#   ps      `ps -a` with those N containers present (hyperfine)
#   inspect `inspect` of one of them (hyperfine)
#   monitor RSS of hako's per-container monitor vs podman's conmon, for a sleeping container
#
# Every engine uses its own private state where it can (hako: HAKO_ROOT; podman and docker:
# their defaults, with containers named hakobench-* removed before and after).
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ONLY="hako,docker,podman"
COUNT=200
RUNS=15
RECORD=1
while (($#)); do
    case "$1" in
        --only) ONLY="${2:?}"; shift 2 ;;
        --count) COUNT="${2:?}"; shift 2 ;;
        --runs) RUNS="${2:?}"; shift 2 ;;
        --no-record) RECORD=0; shift ;;
        *) sed -n '3,4p' "$0" >&2; exit 2 ;;
    esac
done
have hyperfine || die "hyperfine missing: run bench/setup-peers.sh"

HAKO="${HAKO:-$REPO_DIR/target/release/hako}"
export HAKO_ROOT="${HAKO_ROOT:-/var/tmp/hako-bench-lifecycle}"
DOCKER_BIN="$(docker_cli)"
PODMAN=(podman --runtime runc)

engines=()
for e in ${ONLY//,/ }; do
    case "$e" in
        hako) if [[ -x "$HAKO" ]]; then engines+=(hako); else log "hako: $HAKO missing (cargo build --release)"; fi ;;
        docker) if [[ -n "$DOCKER_BIN" ]] && "$DOCKER_BIN" info >/dev/null 2>&1; then engines+=(docker); else log "docker: not running, skipped"; fi ;;
        podman) if have podman; then engines+=(podman); else log "podman: not installed, skipped"; fi ;;
    esac
done
((${#engines[@]})) || die "no engine available"

cli() {
    case "$1" in
        hako) echo "$HAKO" ;;
        docker) echo "$DOCKER_BIN" ;;
        podman) echo "${PODMAN[*]}" ;;
    esac
}

cleanup() {
    for e in "${engines[@]}"; do
        # shellcheck disable=SC2046
        $(cli "$e") rm -f $($(cli "$e") ps -aq --filter name=hakobench 2>/dev/null) >/dev/null 2>&1 || true
    done
}
trap cleanup EXIT

if [[ " ${engines[*]} " == *" hako "* ]] && ! "$HAKO" images -q | grep -q .; then
    "$HAKO" import "$IMAGES_DIR/busybox.tar" busybox >/dev/null
fi
cleanup

ms() { awk -v s="$1" -v e="$2" 'BEGIN { printf "%.1f", (e - s) / 1e6 }'; }

declare -A CYCLE CREATE START PS INSPECT RSS
json=$(mktemp)
for e in "${engines[@]}"; do
    c=$(cli "$e")
    log "$e: run -d + stop -t 0 + rm cycle"
    hyperfine -N --warmup 2 --runs "$RUNS" --export-json "$json" \
        --command-name "$e" \
        "sh -c 'id=\$($c run -d --network none busybox sleep 1000) && $c stop -t 0 \$id >/dev/null && $c rm \$id >/dev/null'" >/dev/null 2>&1 || true
    # -N cannot run a pipeline; the cycle above goes through one sh, the same for every engine.
    CYCLE[$e]=$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["results"][0]; print("%.1f" % (r["median"]*1000))' "$json")

    log "$e: $COUNT creates"
    t0=$(date +%s%N)
    for i in $(seq "$COUNT"); do $c create --name "hakobench-$i" --network none busybox true >/dev/null; done
    t1=$(date +%s%N)
    CREATE[$e]=$(ms "$t0" "$t1")

    log "$e: ps -a and inspect with $COUNT containers"
    hyperfine -N --warmup 2 --runs "$RUNS" --export-json "$json" "$c ps -a" >/dev/null 2>&1
    PS[$e]=$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["results"][0]; print("%.1f" % (r["median"]*1000))' "$json")
    hyperfine -N --warmup 2 --runs "$RUNS" --export-json "$json" "$c inspect hakobench-1" >/dev/null 2>&1
    INSPECT[$e]=$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["results"][0]; print("%.1f" % (r["median"]*1000))' "$json")

    log "$e: $COUNT starts"
    t0=$(date +%s%N)
    for i in $(seq "$COUNT"); do $c start "hakobench-$i" >/dev/null; done
    t1=$(date +%s%N)
    START[$e]=$(ms "$t0" "$t1")

    log "$e: monitor RSS"
    rid=$($c run -d --name hakobench-rss --network none busybox sleep 1000)
    sleep 1
    case "$e" in
        # The monitor of this container only (other hako roots may run monitors too).
        hako) RSS[$e]=$(ps -o rss= -p "$(pgrep -f "hako-monitor $rid" | head -1)") ;;
        podman) RSS[$e]=$(ps -C conmon -o rss= | sort -n | tail -1) ;;
        docker) RSS[$e]=$(ps -C containerd-shim-runc-v2 -o rss= | sort -n | tail -1) ;;
    esac
    cleanup
done
rm -f "$json"

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.3f", a / b; else print "-" }'; }
table=$(
    echo "| engine | run -d+stop+rm (ms) | $COUNT× create (ms) | $COUNT× start (ms) | ps -a (ms) | inspect (ms) | monitor RSS (KiB) |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
    for e in "${engines[@]}"; do
        echo "| $e | ${CYCLE[$e]} | ${CREATE[$e]} | ${START[$e]} | ${PS[$e]} | ${INSPECT[$e]} | ${RSS[$e]:-?} |"
    done
    if [[ -n "${CYCLE[docker]:-}" && -n "${CYCLE[hako]:-}" ]]; then
        echo "| hako ÷ docker | $(ratio "${CYCLE[hako]}" "${CYCLE[docker]}") (target ≤ 0.10) | $(ratio "${CREATE[hako]}" "${CREATE[docker]}") (≤ 0.10) | $(ratio "${START[hako]}" "${START[docker]}") (≤ 0.10) | $(ratio "${PS[hako]}" "${PS[docker]}") (≤ 0.5) | ${INSPECT[hako]} ms (≤ 10) | monitor ≤ 1024 KiB |"
    fi
)
echo "$table"
if ((RECORD)); then
    {
        echo
        echo "## $(date -u +%Y-%m-%d) container lifecycle (bench/containers.sh)"
        echo
        echo "- $(uname -r), $(nproc) CPUs; hako $("$HAKO" version | awk '{print $3}'); $COUNT containers; hyperfine medians of $RUNS runs"
        echo "- the docker column's monitor is containerd-shim-runc-v2, podman's is conmon"
        echo
        echo "$table"
    } >>"$BENCH_DIR/RESULTS.md"
    log "appended to bench/RESULTS.md"
fi
