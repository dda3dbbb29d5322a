#!/usr/bin/env bash
# Output of a foreground run, side by side: hako vs docker and podman.
#
# Usage: bench/output.sh [--runs N] [--mb N] [--no-record]
#
# Each engine runs, in ONE hyperfine invocation, a container printing N MB (default 20) of
# two-byte lines (`yes | head -c`), with its stdout on /dev/null:
#   hako    $HAKO run --rm --network none busybox sh -c 'yes | head -c BYTES'
#   docker  docker run --rm --network none busybox sh -c 'yes | head -c BYTES'
#   podman  podman --runtime runc run --rm --network none busybox sh -c …
# Every engine copies the output from pipes and logs each line (hako and docker as json-file,
# podman as k8s-file), so this is the cost of the log writer per line, the worst case.
# No target of an issue: recorded so that a regression shows (hako <= 1x docker).
#
# Env: HAKO (default <repo>/target/release/hako), HAKO_ROOT (default
# /var/tmp/hako-bench-root), DOCKER. Run bench/setup-peers.sh first.
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

RUNS=5
MB=20
RECORD=1
while (($#)); do
    case "$1" in
        --runs) RUNS="${2:?}"; shift 2 ;;
        --mb) MB="${2:?}"; shift 2 ;;
        --no-record) RECORD=0; shift ;;
        *) sed -n '3,5p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
    esac
done
[[ "$RUNS" =~ ^[0-9]+$ && "$MB" =~ ^[0-9]+$ ]] || die "--runs and --mb take numbers"

HAKO="${HAKO:-$REPO_DIR/target/release/hako}"
if [[ "$HAKO" == */* ]]; then HAKO="$(readlink -f "$HAKO" 2>/dev/null || echo "$HAKO")"; fi
export HAKO_ROOT="${HAKO_ROOT:-/var/tmp/hako-bench-root}"
DOCKER="$(docker_cli)"
have hyperfine || die "hyperfine missing: run bench/setup-peers.sh"
[[ -x "$HAKO" ]] || die "$HAKO not built: cargo build --release"
cd "$REPO_DIR"

WORK="$(mktemp -d /tmp/hako-bench-output.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT

script="yes | head -c $((MB * 1000000))"
if ! "$HAKO" images 2>/dev/null | awk '{print $1}' | grep -qxE '(localhost/)?busybox(:latest)?'; then
    mkdir -p "$HAKO_ROOT"
    "$HAKO" import "$IMAGES_DIR/busybox.tar" busybox >/dev/null
fi
names=(hako)
cmds=("$HAKO run --rm --network none busybox sh -c '$script'")
notes=()
if [[ -n "$DOCKER" ]] && "$DOCKER" run --rm --network none "$PEER_IMAGE" true >/dev/null 2>&1; then
    names+=(docker)
    cmds+=("$DOCKER run --rm --network none $PEER_IMAGE sh -c '$script'")
else
    notes+=("docker: skipped (no working daemon: run bench/setup-peers.sh)")
fi
if have podman && podman --runtime runc run --rm --network none "$PEER_IMAGE" true >/dev/null 2>&1; then
    names+=(podman)
    cmds+=("podman --runtime runc run --rm --network none $PEER_IMAGE sh -c '$script'")
else
    notes+=("podman: skipped (not installed or its probe run failed)")
fi
for n in "${notes[@]+"${notes[@]}"}"; do log "$n"; done

args=()
for i in "${!names[@]}"; do args+=(--command-name "${names[$i]}" "${cmds[$i]}"); done
# The commands hold quoted shell words, so hyperfine's shell runs them (its start-up is
# subtracted).
hyperfine --runs "$RUNS" --warmup 1 --export-json "$WORK/out.json" "${args[@]}" >&2

median() { jq -r --arg n "$1" '.results[] | select(.command == $n) | .median * 1000' "$WORK/out.json"; }
h="$(median hako)"
rows="| hako | $(printf %.0f "$h") | 1.00 |"
for n in "${names[@]:1}"; do
    m="$(median "$n")"
    rows+=$'\n'"| $n | $(printf %.0f "$m") | $(jq -n "$h / $m * 100 | round / 100") |"
done
section="## $(date -u '+%Y-%m-%d %H:%M UTC') — foreground output ($MB MB of two-byte lines)

- machine: kernel $(uname -r), $(nproc) CPUs; hyperfine $RUNS runs, 1 warm-up
- every engine copies the container's output from pipes and logs every line

| engine | median ms | hako / engine |
|---|---|---|
$rows
$(for n in "${notes[@]+"${notes[@]}"}"; do echo "- $n"; done)
"
printf '%s\n' "$section"
if ((RECORD)); then printf '\n%s' "$section" >>"$BENCH_DIR/RESULTS.md"; fi
