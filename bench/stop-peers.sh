#!/usr/bin/env bash
# Stop the dockerd that bench/setup-peers.sh started. Only the process whose
# pid is recorded in /run/hako-bench-dockerd.pid is touched, and only if it
# still is a dockerd; a dockerd started some other way is left alone.
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if [[ ! -f "$DOCKERD_PIDFILE" ]]; then
    log "no $DOCKERD_PIDFILE: nothing to stop"
    exit 0
fi
pid="$(cat "$DOCKERD_PIDFILE")"
if [[ ! "$pid" =~ ^[0-9]+$ ]] || ! kill -0 "$pid" 2>/dev/null; then
    log "dockerd $pid is not running"
    rm -f "$DOCKERD_PIDFILE"
    exit 0
fi
if [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" != dockerd ]]; then
    log "pid $pid is not a dockerd any more; leaving it alone"
    rm -f "$DOCKERD_PIDFILE"
    exit 0
fi
log "stopping dockerd $pid"
kill -TERM "$pid"
for _ in $(seq 60); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.5
done
if kill -0 "$pid" 2>/dev/null; then
    log "dockerd $pid still running after 30 s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
fi
rm -f "$DOCKERD_PIDFILE"
log "dockerd stopped"
