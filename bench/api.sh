#!/usr/bin/env bash
# The Docker Engine API: the same docker CLI against `hako system service` and against dockerd,
# side by side in one run, and the service's own costs. Targets (issue 16):
#   docker run --rm busybox true        hako ≤ 0.15 × dockerd
#   docker ps -a with 200 containers    hako ≤ 0.30 × dockerd
#   service idle RSS                    ≤ 15 MiB
#   first answer after start            ≤ 20 ms (socket activation costs nothing noticeable)
# Needs a running dockerd (bench/setup-peers.sh starts one) and hako's release build.
# Usage: bench/api.sh [--runs N] [--no-record]
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
RUNS=20
RECORD=1
while (($#)); do
    case "$1" in
        --runs) RUNS="${2:?}"; shift 2 ;;
        --no-record) RECORD=0; shift ;;
        *) sed -n '2,10p' "$0" >&2; exit 2 ;;
    esac
done
have hyperfine || die "hyperfine missing: run bench/setup-peers.sh"
have jq || die "jq missing: run bench/setup-peers.sh"
HAKO="${HAKO:-$REPO_DIR/target/release/hako}"
[[ -x "$HAKO" ]] || die "$HAKO missing: cargo build --release -p hako-cli"
# DOCKERD_HOST: the dockerd to compare with (default the one bench/setup-peers.sh starts).
DOCKERD_HOST="${DOCKERD_HOST:-unix:///var/run/docker.sock}"
DOCKER_BIN="${DOCKER:-/usr/local/bin/docker}"
[[ -x "$DOCKER_BIN" ]] || DOCKER_BIN="$(docker_cli)"
"$DOCKER_BIN" -H "$DOCKERD_HOST" info >/dev/null 2>&1 ||
    die "no dockerd at $DOCKERD_HOST: run bench/setup-peers.sh"

ROOT="$(mktemp -d /var/tmp/hako-bench-api.XXXXXX)"
SOCK="$ROOT/hako.sock"
export HAKO_ROOT="$ROOT"
SVC=""
cleanup() {
    [[ -n "$SVC" ]] && kill "$SVC" 2>/dev/null && wait "$SVC" 2>/dev/null
    "$HAKO" rm -f $("$HAKO" ps -aq) >/dev/null 2>&1 || true
    "$DOCKER_BIN" -H "$DOCKERD_HOST" rm -f $("$DOCKER_BIN" -H "$DOCKERD_HOST" ps -aq --filter label=hako-bench-api) >/dev/null 2>&1 || true
    rm -rf "$ROOT"
}
trap cleanup EXIT
"$HAKO" import "$IMAGES_DIR/busybox.tar" busybox >/dev/null
"$DOCKER_BIN" -H "$DOCKERD_HOST" image inspect "$PEER_IMAGE" >/dev/null 2>&1 ||
    "$DOCKER_BIN" -H "$DOCKERD_HOST" import "$IMAGES_DIR/busybox.tar" "$PEER_IMAGE" >/dev/null

# First answer after start: the service's spawn to its first /_ping answer, as a socket-activated
# service's first client sees it (median of 20 starts).
first_answer_ms() {
    python3 - "$HAKO" "$ROOT/first.sock" <<'PY'
import os, socket, statistics, subprocess, sys, time
hako, sock = sys.argv[1], sys.argv[2]
times = []
for _ in range(20):
    t0 = time.perf_counter()
    p = subprocess.Popen([hako, "system", "service", "--time", "0", "unix://" + sock])
    while True:
        try:
            s = socket.socket(socket.AF_UNIX)
            s.connect(sock)
            s.sendall(b"GET /_ping HTTP/1.1\r\nHost: d\r\n\r\n")
            if s.recv(64).startswith(b"HTTP/1.1 200"):
                break
        except OSError:
            pass
        finally:
            s.close()
    times.append((time.perf_counter() - t0) * 1000)
    p.terminate()
    p.wait()
print(f"{statistics.median(times):.1f}")
PY
}
FIRST=$(first_answer_ms)

"$HAKO" system service --time 0 "unix://$SOCK" &
SVC=$!
for _ in $(seq 100); do [[ -S "$SOCK" ]] && break; sleep 0.05; done
HK=(-H "unix://$SOCK")
DK=(-H "$DOCKERD_HOST")
sleep 1
IDLE_RSS_KB=$(ps -o rss= -p "$SVC" | tr -d ' ')

hyperfine -N --warmup 3 --runs "$RUNS" --export-json /tmp/hako-bench-api-run.json \
    --command-name "hako run" "$DOCKER_BIN ${HK[*]} run --rm busybox true" \
    --command-name "dockerd run" "$DOCKER_BIN ${DK[*]} run --rm $PEER_IMAGE true"
for i in $(seq 200); do
    "$HAKO" create -l hako-bench-api=1 busybox true >/dev/null
    "$DOCKER_BIN" "${DK[@]}" create -l hako-bench-api=1 "$PEER_IMAGE" true >/dev/null
done
hyperfine -N --warmup 2 --runs "$RUNS" --export-json /tmp/hako-bench-api-ps.json \
    --command-name "hako ps -a (200)" "$DOCKER_BIN ${HK[*]} ps -a" \
    --command-name "dockerd ps -a (200)" "$DOCKER_BIN ${DK[*]} ps -a"
BUSY_RSS_KB=$(ps -o rss= -p "$SVC" | tr -d ' ')

median() { jq -r ".results[] | select(.command == \"$2\") | .median * 1000" "$1"; }
run_h=$(median /tmp/hako-bench-api-run.json "hako run")
run_d=$(median /tmp/hako-bench-api-run.json "dockerd run")
ps_h=$(median /tmp/hako-bench-api-ps.json "hako ps -a (200)")
ps_d=$(median /tmp/hako-bench-api-ps.json "dockerd ps -a (200)")
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }
verdict() { awk -v r="$1" -v t="$2" 'BEGIN { print (r <= t ? "met" : "NOT met") }'; }
r_run=$(ratio "$run_h" "$run_d")
r_ps=$(ratio "$ps_h" "$ps_d")
idle_mib=$(awk -v k="$IDLE_RSS_KB" 'BEGIN { printf "%.1f", k / 1024 }')
busy_mib=$(awk -v k="$BUSY_RSS_KB" 'BEGIN { printf "%.1f", k / 1024 }')

report=$(cat <<EOF

## API $(date -u '+%Y-%m-%d %H:%M UTC')

- machine: kernel $(uname -r), $(nproc) CPUs
- client: $("$DOCKER_BIN" --version); dockerd: $("$DOCKER_BIN" "${DK[@]}" version --format '{{.Server.Version}}')
- hyperfine $(hyperfine --version | cut -d' ' -f2), --shell=none, $RUNS runs

| measurement | hako service | dockerd | ratio | target |
| --- | ---: | ---: | ---: | --- |
| \`docker run --rm busybox true\` median ms | $(printf %.1f "$run_h") | $(printf %.1f "$run_d") | $r_run | ≤ 0.15: $(verdict "$r_run" 0.15) |
| \`docker ps -a\`, 200 containers, median ms | $(printf %.1f "$ps_h") | $(printf %.1f "$ps_d") | $r_ps | ≤ 0.30: $(verdict "$r_ps" 0.30) |
| service RSS idle / after the runs, MiB | $idle_mib / $busy_mib | | | ≤ 15: $(verdict "$idle_mib" 15) |
| first answer after start, median ms | $FIRST | | | ≤ 20: $(verdict "$FIRST" 20) |
EOF
)
echo "$report"
if ((RECORD)); then
    echo "$report" >>"$BENCH_DIR/RESULTS.md"
fi
