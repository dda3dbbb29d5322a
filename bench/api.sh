#!/usr/bin/env bash
# The Docker Engine API: the same docker CLI against `hako system service` and against dockerd,
# side by side in one run, and the service's own costs. Targets (issue 16):
#   docker run --rm busybox true        hako ≤ 0.15 × dockerd
#   docker ps -a with 200 containers    hako ≤ 0.30 × dockerd
#   service idle RSS                    ≤ 15 MiB
#   first answer after start            ≤ 20 ms (socket activation costs nothing noticeable)
# dockerd: Debian's 20.10 started privately for this run, as crates/testkit starts it (its own
# containerd, data root, socket and bridge, no iptables), unless DOCKERD_HOST names one.
# Needs hako's release build.
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
        *) sed -n '2,12p' "$0" >&2; exit 2 ;;
    esac
done
have hyperfine || die "hyperfine missing: run bench/setup-peers.sh"
have jq || die "jq missing: run bench/setup-peers.sh"
HAKO="${HAKO:-$REPO_DIR/target/release/hako}"
[[ -x "$HAKO" ]] || die "$HAKO missing: cargo build --release -p hako-cli"
DOCKER_BIN="${DOCKER:-/usr/local/bin/docker}"
[[ -x "$DOCKER_BIN" ]] || DOCKER_BIN="$(docker_cli)"

ROOT="$(mktemp -d /var/tmp/hako-bench-api.XXXXXX)"
SOCK="$ROOT/hako.sock"
export HAKO_ROOT="$ROOT"
SVC=""
DD="" CTRD="" BRIDGE=""
cleanup() {
    [[ -n "$SVC" ]] && kill "$SVC" 2>/dev/null && wait "$SVC" 2>/dev/null
    # shellcheck disable=SC2046
    "$HAKO" rm -f $("$HAKO" ps -aq) >/dev/null 2>&1 || true
    "$HAKO" network prune -f >/dev/null 2>&1 || true
    if [[ -n "$DD" ]]; then
        # shellcheck disable=SC2046
        "$DOCKER_BIN" -H "$DOCKERD_HOST" rm -f $("$DOCKER_BIN" -H "$DOCKERD_HOST" ps -aq) >/dev/null 2>&1 || true
        kill "$DD" 2>/dev/null && wait "$DD" 2>/dev/null
        [[ -n "$CTRD" ]] && kill "$CTRD" 2>/dev/null && wait "$CTRD" 2>/dev/null
        [[ -n "$BRIDGE" ]] && ip link del "$BRIDGE" 2>/dev/null
        # dockerd's overlay mounts and netns files under its root.
        grep -o "$ROOT/docker[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
        # Its cgroup parent in every hierarchy, with any container cgroup it left, deepest first.
        find /sys/fs/cgroup -mindepth 2 -maxdepth 2 -type d -name "bench-api-docker-$$" -print0 |
            xargs -r -0 -I{} find {} -depth -type d -exec rmdir {} + 2>/dev/null || true
    else
        # shellcheck disable=SC2046
        "$DOCKER_BIN" -H "$DOCKERD_HOST" rm -f $("$DOCKER_BIN" -H "$DOCKERD_HOST" ps -aq --filter label=hako-bench-api) >/dev/null 2>&1 || true
    fi
    rm -rf "$ROOT"
}
trap cleanup EXIT

if [[ -z "${DOCKERD_HOST:-}" ]]; then
    have dockerd || die "dockerd missing (apt install docker.io)"
    D="$ROOT/docker"
    mkdir -p "$D"
    cat >"$D/containerd.toml" <<EOT
version = 2
root = "$D/ctrd-root"
state = "$D/ctrd-state"
[grpc]
  address = "$D/ctrd.sock"
[ttrpc]
  address = "$D/ctrd.sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.grpc.v1.cri"]
  disable_cgroup = true
EOT
    containerd --config "$D/containerd.toml" >"$D/containerd.log" 2>&1 &
    CTRD=$!
    for _ in $(seq 200); do [[ -S "$D/ctrd.sock" ]] && break; sleep 0.05; done
    BRIDGE="hkb$$"
    ip link add "$BRIDGE" type bridge
    echo "{\"cgroup-parent\": \"/bench-api-docker-$$\"}" >"$D/daemon.json"
    dockerd --config-file "$D/daemon.json" --data-root "$D/data" --exec-root "$D/exec" \
        -H "unix://$D/docker.sock" --pidfile "$D/docker.pid" --containerd "$D/ctrd.sock" \
        --iptables=false --ip6tables=false --ip-masq=false --bridge="$BRIDGE" \
        >"$D/dockerd.log" 2>&1 &
    DD=$!
    DOCKERD_HOST="unix://$D/docker.sock"
    for _ in $(seq 600); do
        "$DOCKER_BIN" -H "$DOCKERD_HOST" version >/dev/null 2>&1 && break
        sleep 0.1
    done
fi
"$DOCKER_BIN" -H "$DOCKERD_HOST" info >/dev/null 2>&1 || die "no dockerd at $DOCKERD_HOST"

"$HAKO" import "$IMAGES_DIR/busybox.tar" busybox >/dev/null
"$DOCKER_BIN" -H "$DOCKERD_HOST" image inspect "$PEER_IMAGE" >/dev/null 2>&1 ||
    "$DOCKER_BIN" -H "$DOCKERD_HOST" import "$IMAGES_DIR/busybox.tar" "$PEER_IMAGE" >/dev/null

# First answer after start, median of 20 starts, two ways. Socket activation: the socket
# exists and a client's /_ping waits in it (as systemd's socket unit holds it) when the service
# is exec'd with it as fd 3; from the exec to the answer. Own socket: the service binds its
# endpoint itself and the client connects as soon as it can.
first_answer_ms() {
    python3 - "$HAKO" "$ROOT/first.sock" "$1" <<'PY'
import os, socket, statistics, subprocess, sys, time
hako, path, mode = sys.argv[1], sys.argv[2], sys.argv[3]
PING = b"GET /_ping HTTP/1.1\r\nHost: d\r\n\r\n"
times = []
for _ in range(20):
    if mode == "activation":
        if os.path.exists(path):
            os.unlink(path)
        lst = socket.socket(socket.AF_UNIX)
        lst.bind(path)
        lst.listen(16)
        c = socket.socket(socket.AF_UNIX)
        c.connect(path)
        c.sendall(PING)
        # The socket goes in as sh's stdin, which moves it to fd 3 (Python's own
        # descriptors in the child leave no number free to place it there directly).
        t0 = time.perf_counter()
        p = subprocess.Popen(["sh", "-c", 'exec 3<&0 </dev/null; LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" system service --time 0', hako], stdin=lst.fileno())
        ok = c.recv(64).startswith(b"HTTP/1.1 200")
        times.append((time.perf_counter() - t0) * 1000)
        assert ok
        c.close()
        lst.close()
    else:
        t0 = time.perf_counter()
        p = subprocess.Popen([hako, "system", "service", "--time", "0", "unix://" + path])
        while True:
            s = socket.socket(socket.AF_UNIX)
            try:
                s.connect(path)
                s.sendall(PING)
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
FIRST=$(first_answer_ms activation)
FIRST_BIND=$(first_answer_ms bind)

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
| first answer after start (socket activation), median ms | $FIRST | | | ≤ 20: $(verdict "$FIRST" 20) |
| first answer after start (binding its own socket), median ms | $FIRST_BIND | | | |
EOF
)
echo "$report"
if ((RECORD)); then
    echo "$report" >>"$BENCH_DIR/RESULTS.md"
fi
