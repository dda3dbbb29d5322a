#!/usr/bin/env bash
# Side-by-side start-up benchmark: hako vs docker, podman, runc, crun.
#
# Usage: bench/run.sh [--only hako,docker,podman,runc,crun] [--runs N]
#                     [--warmup N] [--no-record]
#
# Every engine runs `true` in a fresh busybox container with networking off,
# all in ONE hyperfine invocation (so they share the machine's state):
#   hako    $HAKO run --rm --network none busybox true
#   docker  docker run --rm --network none busybox true
#   podman  podman --runtime runc run --rm --network none busybox true
#   runc    runc run -b BUNDLE hako-bench-runc
#   crun    crun run -b BUNDLE hako-bench-crun
# hyperfine runs with --shell=none (-N), so no shell start-up is included.
# `runc/crun run` delete the container when it exits (no --keep/--detach), so
# a fixed container id is reused safely by consecutive runs; no wrapper shell
# is needed. Their bundle (from setup-peers.sh) keeps runc spec's default
# namespaces, including a new network namespace, i.e. "network none".
#
# Then peak RSS of the hako process (`/usr/bin/time -f %M`, max over 5 runs),
# and a dated section appended to bench/RESULTS.md.
#
# An engine that is not installed is skipped with a note; one whose probe run
# fails is reported as "failed (reason)" and left out of the timing.
#
# Env: HAKO (default <repo>/target/release/hako), HAKO_ROOT (default
# /var/tmp/hako-bench-root, a private store filled from busybox.tar),
# HAKO_TEST_IMAGES, DOCKER. Run bench/setup-peers.sh first.
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ONLY="hako,docker,podman,runc,crun"
RUNS=30
WARMUP=3
RECORD=1
usage() {
    sed -n '3,5p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}
while (($#)); do
    case "$1" in
        --only) ONLY="${2:?}"; shift 2 ;;
        --only=*) ONLY="${1#*=}"; shift ;;
        --runs) RUNS="${2:?}"; shift 2 ;;
        --runs=*) RUNS="${1#*=}"; shift ;;
        --warmup) WARMUP="${2:?}"; shift 2 ;;
        --warmup=*) WARMUP="${1#*=}"; shift ;;
        --no-record) RECORD=0; shift ;;
        *) usage ;;
    esac
done
[[ "$RUNS" =~ ^[0-9]+$ && "$WARMUP" =~ ^[0-9]+$ ]] || usage

# Targets (printed next to the results).
TARGET_RATIO=0.10 # hako median <= 0.10 x docker median
TARGET_RSS_MIB=10 # hako peak RSS <= 10 MiB

# A relative $HAKO is taken from the caller's directory; the default from the
# repository root. A bare name is looked up on PATH.
HAKO="${HAKO:-$REPO_DIR/target/release/hako}"
if [[ "$HAKO" == */* ]]; then HAKO="$(readlink -f "$HAKO" 2>/dev/null || echo "$HAKO")"; fi
cd "$REPO_DIR"
export HAKO_ROOT="${HAKO_ROOT:-/var/tmp/hako-bench-root}"
DOCKER="$(docker_cli)"
TAR="$IMAGES_DIR/busybox.tar"

have hyperfine || die "hyperfine missing: run bench/setup-peers.sh"
[[ -x /usr/bin/time ]] || die "/usr/bin/time missing: run bench/setup-peers.sh"

WORK="$(mktemp -d /tmp/hako-bench.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT

names=()    # engines to benchmark
cmds=()     # their command lines (word-split by hyperfine, no shell)
notes=()    # "engine: skipped/failed (...)" lines
versions=() # "engine: version" lines

# probe NAME VERSION-CMD -- CMD...: run CMD once; on success queue it.
probe() {
    local name="$1" ver="$2"
    shift 3
    local out
    if out="$("$@" 2>&1 </dev/null)"; then
        names+=("$name")
        cmds+=("$*")
        versions+=("$name: $($ver 2>&1 | head -n1)")
    else
        local reason
        reason="$(printf '%s\n' "$out" | grep -v '^[[:space:]]*$' | tail -n1)"
        notes+=("$name: failed (${reason:-exit status non-zero})")
        versions+=("$name: $($ver 2>&1 | head -n1)")
    fi
}
skip() { notes+=("$1: skipped ($2)"); }

wanted() { [[ ",$ONLY," == *",$1,"* ]]; }

if wanted hako; then
    if [[ ! -x "$HAKO" ]] && ! have "$HAKO"; then
        skip hako "$HAKO not built: cargo build --release"
    else
        mkdir -p "$HAKO_ROOT"
        if ! "$HAKO" images 2>/dev/null | awk '{print $1}' | grep -qxE '(localhost/)?busybox(:latest)?'; then
            log "hako: importing $TAR as busybox into $HAKO_ROOT"
            [[ -f "$TAR" ]] || "$REPO_DIR/scripts/make-test-images.sh" --only busybox "$IMAGES_DIR" >/dev/null
            "$HAKO" import "$TAR" busybox >/dev/null ||
                notes+=("hako: import of $TAR failed")
        fi
        probe hako "$HAKO --version" -- "$HAKO" run --rm --network none busybox true
    fi
fi
if wanted docker; then
    if [[ -z "$DOCKER" ]]; then
        skip docker "not installed"
    else
        probe docker "$DOCKER --version" -- "$DOCKER" run --rm --network none "$PEER_IMAGE" true
    fi
fi
if wanted podman; then
    if ! have podman; then
        skip podman "not installed"
    else
        probe podman "podman --version" -- podman --runtime runc run --rm --network none "$PEER_IMAGE" true
    fi
fi
for rt in runc crun; do
    wanted "$rt" || continue
    if ! have "$rt"; then
        skip "$rt" "not installed"
    elif [[ ! -f "$BUNDLE_DIR/config.json" ]]; then
        skip "$rt" "no bundle at $BUNDLE_DIR: run bench/setup-peers.sh"
    else
        # Clear a container left behind by an interrupted earlier run.
        "$rt" delete -f "hako-bench-$rt" >/dev/null 2>&1 || true
        probe "$rt" "$rt --version" -- "$rt" run --bundle "$BUNDLE_DIR" "hako-bench-$rt"
    fi
done

for n in "${notes[@]+"${notes[@]}"}"; do log "$n"; done
((${#names[@]})) || die "nothing to benchmark"

# --- timing -------------------------------------------------------------------
hf_args=(--shell=none --warmup "$WARMUP" --runs "$RUNS" --export-json "$WORK/hf.json")
for i in "${!names[@]}"; do
    hf_args+=(--command-name "${names[$i]}" "${cmds[$i]}")
done
log "hyperfine: ${#names[@]} commands, $WARMUP warm-up + $RUNS runs each"
hyperfine "${hf_args[@]}" >&2

# --- peak RSS of hako -----------------------------------------------------------
rss_kib=""
if [[ " ${names[*]} " == *" hako "* ]]; then
    for _ in 1 2 3 4 5; do
        /usr/bin/time -o "$WORK/rss" -f %M "$HAKO" run --rm --network none busybox true
        r="$(tail -n1 "$WORK/rss")"
        if [[ -z "$rss_kib" || "$r" -gt "$rss_kib" ]]; then rss_kib="$r"; fi
    done
fi

# --- report -----------------------------------------------------------------------
table="$(python3 - "$WORK/hf.json" "$TARGET_RATIO" <<'EOF'
import json, sys
res = json.load(open(sys.argv[1]))["results"]
target = float(sys.argv[2])
by = {r["command"]: r for r in res}
base = by.get("docker")
print("| engine | median ms | mean ± stddev ms | min ms | max ms | × docker |")
print("| --- | ---: | ---: | ---: | ---: | ---: |")
for r in res:
    ms = lambda v: v * 1000.0
    ratio = "%.3f" % (r["median"] / base["median"]) if base else "n/a"
    if r["command"] == "hako" and base:
        ratio += " (target ≤ %.2f: %s)" % (
            target, "met" if r["median"] / base["median"] <= target else "NOT met")
    print("| %s | %.1f | %.1f ± %.1f | %.1f | %.1f | %s |" % (
        r["command"], ms(r["median"]), ms(r["mean"]), ms(r["stddev"] or 0.0),
        ms(r["min"]), ms(r["max"]), ratio))
EOF
)"
rss_line="hako peak RSS: not measured (hako not benchmarked)"
if [[ -n "$rss_kib" ]]; then
    verdict="NOT met"
    ((rss_kib <= TARGET_RSS_MIB * 1024)) && verdict="met"
    rss_line="$(awk -v k="$rss_kib" -v t="$TARGET_RSS_MIB" -v v="$verdict" \
        'BEGIN { printf "hako peak RSS (max of 5 runs, /usr/bin/time %%M): %d KiB = %.2f MiB (target ≤ %d MiB: %s)", k, k / 1024, t, v }')"
fi

echo
echo "$table"
echo
echo "$rss_line"
for n in "${notes[@]+"${notes[@]}"}"; do echo "$n"; done

((RECORD)) || exit 0
results="$BENCH_DIR/RESULTS.md"
if [[ ! -f "$results" ]]; then
    cat >"$results" <<'EOF'
# hako benchmark results

Start-up time of `run --rm --network none busybox true`, hako against docker,
podman (with runc), and bare runc/crun on an OCI bundle, measured by
hyperfine in one invocation; plus hako's peak RSS. Each run of `bench/run.sh`
appends a dated section below.

Reproduce (as root, on Debian 12):

    bench/setup-peers.sh && cargo build --release && bench/run.sh

Targets: hako median ≤ 0.10 × docker median; hako peak RSS ≤ 10 MiB.
EOF
fi
{
    echo
    echo "## $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo
    echo "- machine: kernel $(uname -r), $(nproc) CPUs, $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo) RAM"
    echo "- hyperfine $(hyperfine --version | awk '{print $2}'), --shell=none, $WARMUP warm-up + $RUNS runs"
    for v in "${versions[@]}"; do echo "- $v"; done
    echo
    echo "$table"
    echo
    echo "$rss_line"
    for n in "${notes[@]+"${notes[@]}"}"; do
        echo
        echo "$n"
    done
} >>"$results"
log "appended results to $results"
