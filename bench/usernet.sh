#!/usr/bin/env bash
# Rootless networking (issue 17), side by side in one run, as an ordinary user this script
# creates (and removes): each case is a user + network namespace made with `unshare` and the
# `hako-usernet` helper (crates/usernet) serving it.
#   outbound, container -> host: iperf3 throughput and TCP connect latency (connect + close,
#     median of 2000) to servers on the host's own address, for slirp4netns at MTU 1500 and
#     65520 and pasta at 65520: the default stack is chosen from these rows;
#   -p, host -> container (iperf3 client on the host at 127.0.0.1, server inside): hako's
#     forwarder against slirp4netns' own port forwarding (`--api-socket`, `add_hostfwd`);
#   the rootful reference: root's iperf3 over a veth pair into a network namespace, the path
#     rootful hako's bridge and `-p` take (bench/network.sh measures hako itself).
# Usage: bench/usernet.sh [--seconds S] [--runs N]
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
SECS=5
RUNS=3
while (($#)); do
    case "$1" in
        --seconds) SECS="${2:?}"; shift 2 ;;
        --runs) RUNS="${2:?}"; shift 2 ;;
        *) sed -n '2,14p' "$0" >&2; exit 2 ;;
    esac
done
[[ $EUID -eq 0 ]] || die "run as root: it creates the ordinary user it measures as"
for p in iperf3 slirp4netns pasta unshare nsenter; do have "$p" || die "$p missing (apt-get install iperf3 slirp4netns passt util-linux)"; done
HELPER="${HAKO_USERNET:-$REPO_DIR/target/release/hako-usernet}"
[[ -x "$HELPER" ]] || die "$HELPER missing: cargo build --release -p hako-usernet"
PY=/usr/bin/python3
HOSTIP=$(ip -4 route get 1.1.1.1 | awk '{for (i = 1; i < NF; i++) if ($i == "src") print $(i + 1)}')
[[ -n "$HOSTIP" ]] || die "the host has no IPv4 source address for outbound traffic"

U="hakobn$$"
WORK=$(mktemp -d /var/tmp/hako-bench-usernet.XXXXXX)
chmod 755 "$WORK"
PIDS=()
NETNS="hakobn$$"
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    pkill -KILL -u "$U" 2>/dev/null || true
    userdel -r -f "$U" >/dev/null 2>&1 || true
    ip netns del "$NETNS" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
useradd --no-create-home --home-dir "$WORK" --shell /bin/sh "$U"
cp "$HELPER" "$WORK/hako-usernet"
chmod 755 "$WORK/hako-usernet"
chown "$U" "$WORK"
# A distribution with udev makes /dev/net/tun 0666; a host without leaves it root's only.
[[ $(stat -c %a /dev/net/tun) == 666 ]] || die "/dev/net/tun is not usable by ordinary users: chmod 0666 /dev/net/tun"

cat >"$WORK/latency.py" <<'PY'
import socket, statistics, sys, time
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
ts = []
for _ in range(n):
    t = time.perf_counter()
    s = socket.create_connection((host, port))
    s.recv(1)
    s.close()
    ts.append(time.perf_counter() - t)
print(f"{statistics.median(ts) * 1e6:.0f}")
PY
cat >"$WORK/accept.py" <<'PY'
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(512)
while True:
    c, _ = s.accept()
    c.send(b"x")
    c.close()
PY
cat >"$WORK/hostfwd.py" <<'PY'
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.send(json.dumps({"execute": "add_hostfwd", "arguments": {"proto": "tcp", "host_addr": "127.0.0.1",
       "host_port": int(sys.argv[2]), "guest_port": int(sys.argv[3])}}).encode())
r = s.recv(4096).decode()
if "error" in r:
    sys.exit(r)
PY
gbps() { "$PY" -c 'import json,sys; print("%.2f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"] / 1e9))'; }
median() { sort -g | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
as_user() { setpriv --reuid="$U" --regid="$(id -g "$U")" --init-groups -- "$@"; }

IPORT=$((30000 + RANDOM % 5000))
LPORT=$((IPORT + 1))
iperf3 -s -B "$HOSTIP" -p "$IPORT" >/dev/null 2>&1 &
PIDS+=($!)
"$PY" "$WORK/accept.py" "$HOSTIP" "$LPORT" &
PIDS+=($!)
sleep 0.5

# Starts a container namespace (as the user) and the helper for it; sets HOLDER and READY.
start_case() {
    setpriv --reuid="$U" --regid="$(id -g "$U")" --init-groups -- unshare --user --map-root-user --net sleep infinity &
    HOLDER=$!
    PIDS+=("$HOLDER")
    # setpriv and unshare exec: the pid is the namespace holder's, once it has its own namespace.
    for _ in $(seq 100); do
        [[ "$(readlink "/proc/$HOLDER/ns/user")" != "$(readlink /proc/self/ns/user)" ]] && break
        sleep 0.02
    done
    READY="$WORK/ready.$RANDOM"
    as_user "$WORK/hako-usernet" --pid "$HOLDER" "$@" >"$READY" &
    PIDS+=($!)
    for _ in $(seq 100); do [[ -s "$READY" ]] && return 0; sleep 0.05; done
    die "the helper did not get ready ($*)"
}
inside() { as_user nsenter --preserve-credentials -U -n -t "$HOLDER" "$@"; }
stop_case() { kill "$HOLDER"; wait "$HOLDER" 2>/dev/null || true; sleep 0.3; }

rows=()
for c in "slirp4netns 1500" "slirp4netns 65520" "pasta 65520"; do
    set -- $c
    log "outbound: $1, MTU $2"
    start_case --stack "$1" --mtu "$2"
    tput=$(for _ in $(seq "$RUNS"); do inside iperf3 -c "$HOSTIP" -p "$IPORT" -t "$SECS" -J | gbps; done | median)
    lat=$(inside "$PY" "$WORK/latency.py" "$HOSTIP" "$LPORT" 2000)
    rows+=("| $1 MTU $2 | $tput | $lat |")
    stop_case
done

log "-p: hako's forwarder and slirp4netns' add_hostfwd"
HP=$((IPORT + 2))
SP=$((IPORT + 3))
start_case --stack slirp4netns --api-socket "$WORK/api.sock" -p "127.0.0.1:$HP:5201"
inside iperf3 -s -p 5201 >/dev/null 2>&1 &
PIDS+=($!)
sleep 0.5
as_user "$PY" "$WORK/hostfwd.py" "$WORK/api.sock" "$SP" 5201
fwd=$(for _ in $(seq "$RUNS"); do iperf3 -c 127.0.0.1 -p "$HP" -t "$SECS" -J | gbps; done | median)
slirpfwd=$(for _ in $(seq "$RUNS"); do iperf3 -c 127.0.0.1 -p "$SP" -t "$SECS" -J | gbps; done | median)
stop_case
# slirp4netns' own default MTU, which its port forwarding is usually run with.
start_case --stack slirp4netns --mtu 1500 --api-socket "$WORK/api1500.sock"
inside iperf3 -s -p 5201 >/dev/null 2>&1 &
PIDS+=($!)
sleep 0.5
as_user "$PY" "$WORK/hostfwd.py" "$WORK/api1500.sock" "$SP" 5201
slirpfwd1500=$(for _ in $(seq "$RUNS"); do iperf3 -c 127.0.0.1 -p "$SP" -t "$SECS" -J | gbps; done | median)
stop_case

log "rootful reference: veth into a network namespace"
ip netns add "$NETNS"
ip link add "${NETNS}h" type veth peer name eth0 netns "$NETNS"
ip addr add 10.251.0.1/30 dev "${NETNS}h"
ip link set "${NETNS}h" up
ip -n "$NETNS" addr add 10.251.0.2/30 dev eth0
ip -n "$NETNS" link set eth0 up
ip -n "$NETNS" link set lo up
ip netns exec "$NETNS" iperf3 -s -p 5201 >/dev/null 2>&1 &
PIDS+=($!)
sleep 0.5
veth=$(for _ in $(seq "$RUNS"); do iperf3 -c 10.251.0.2 -p 5201 -t "$SECS" -J | gbps; done | median)

cat <<EOT

## rootless networking ($(date -u +%Y-%m-%dT%H:%MZ), bench/usernet.sh, $RUNS runs of ${SECS}s, medians)

- machine: kernel $(uname -r), $(nproc) CPUs; $(slirp4netns --version | head -1); passt $(dpkg-query -W -f '${Version}' passt 2>/dev/null)

| outbound, container -> host | Gbit/s | connect µs |
| --- | ---: | ---: |
$(printf '%s\n' "${rows[@]}")

| host -> container | Gbit/s |
| --- | ---: |
| hako forwarder (-p) | $fwd |
| slirp4netns add_hostfwd, MTU 65520 | $slirpfwd |
| slirp4netns add_hostfwd, MTU 1500 | $slirpfwd1500 |
| root veth (rootful path) | $veth |
| forwarder ÷ slirp4netns MTU 65520 (target ≥ 3) | $(awk -v a="$fwd" -v b="$slirpfwd" 'BEGIN {printf "%.2f", a / b}') |
| forwarder ÷ slirp4netns MTU 1500 (target ≥ 3) | $(awk -v a="$fwd" -v b="$slirpfwd1500" 'BEGIN {printf "%.2f", a / b}') |
| forwarder ÷ root veth (target ≥ 0.5) | $(awk -v a="$fwd" -v b="$veth" 'BEGIN {printf "%.2f", a / b}') |
EOT
