#!/usr/bin/env bash
# Kubernetes' path: containerd's CRI plugin with hako-runtime vs runc as the runtime handler.
#
# Usage: bench/cri.sh [--runs N] [--pods N] [--no-record]
#
# Runs the ignored test `bench_cri_pods` of crates/runtime-cli/tests/cri.rs: one private
# containerd (Debian's, CRI plugin, CNI bridge, pause image from a private registry) with both
# handlers, `hako` (BinaryName = the release hako-runtime from scripts/build-release.sh) and
# `runc` (Debian's). After a warm-up pod per handler it times, alternating handlers, N pods
# each of RunPodSandbox + CreateContainer + StartContainer of one busybox container (the
# time kubelet waits for a pod to start), removing every pod after; then it creates and
# removes --pods pods with hako-runtime one after the other and counts failures and what is
# left behind (mounts, cgroups, network namespaces, veths, CNI results, runtime state).
# The CRI client is the test's (debug build; the same for both handlers).
#
# Env: HAKO_RUNTIME (default <repo>/target/release/hako-runtime).
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

RUNS=30
PODS=200
RECORD=1
while [[ $# -gt 0 ]]; do
    case "$1" in
    --runs) RUNS="$2"; shift 2 ;;
    --pods) PODS="$2"; shift 2 ;;
    --no-record) RECORD=0; shift ;;
    *) sed -n '3,4p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
    esac
done

[[ $EUID -eq 0 ]] || die "run as root"
HAKO_RUNTIME="${HAKO_RUNTIME:-$REPO_DIR/target/release/hako-runtime}"
[[ -x "$HAKO_RUNTIME" ]] || die "$HAKO_RUNTIME is missing: run scripts/build-release.sh"
[[ -f "$IMAGES_DIR/busybox.tar" ]] || "$REPO_DIR/scripts/make-test-images.sh" --only busybox
for bin in containerd containerd-shim-runc-v2 runc protoc; do
    have "$bin" || die "$bin is missing (apt-get install containerd runc protobuf-compiler)"
done
[[ -x /usr/lib/cni/bridge ]] || die "CNI plugins are missing (apt-get install containernetworking-plugins)"

WORK="$(mktemp -d /var/tmp/hako-bench-cri.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
log "building the CRI test (debug) and running $RUNS timed pods per handler, then $PODS pods"
(cd "$REPO_DIR" && HAKO_RUNTIME="$HAKO_RUNTIME" HAKO_CRI_RUNS="$RUNS" HAKO_CRI_PODS="$PODS" \
    cargo test -q -p hako-runtime-cli --test cri bench_cri_pods -- --ignored --nocapture) \
    >"$WORK/out" 2>&1 || { tail -40 "$WORK/out" >&2; die "bench_cri_pods failed"; }
LINE="$(grep -o 'HAKO_CRI_BENCH .*' "$WORK/out" | head -1 | cut -d' ' -f2-)"
[[ -n "$LINE" ]] || { tail -40 "$WORK/out" >&2; die "no result line"; }

{
    echo
    echo "## $(date -u +%Y-%m-%d) containerd CRI: hako-runtime vs runc as handler (bench/cri.sh)"
    echo
    echo "- $(uname -r), $(nproc) CPUs; containerd $(containerd --version | awk '{print $3}'), runc $(runc --version | awk 'NR==1{print $3}'); hako-runtime: $HAKO_RUNTIME"
    python3 - "$LINE" <<'PY'
import json, sys
r = json.loads(sys.argv[1])
print(f"- RunPodSandbox + CreateContainer + StartContainer of one busybox container, medians of {r['runs']} pods per handler, alternating")
print()
print("| handler | median ms | × runc (target ≤ 0.8) |")
print("|:---|---:|---:|")
print(f"| hako-runtime | {r['hako_ms']:.1f} | {r['ratio']:.2f} |")
print(f"| runc | {r['runc_ms']:.1f} | 1.00 |")
print()
fails = len(r["failures"])
print(f"{r['pods']} pods created, started and removed with hako-runtime in {r['pods_seconds']:.1f} s: "
      f"{fails} failures, leftovers: {'none' if r['clean'] else r['leftovers']} (targets: 0 and none).")
for f in r["failures"][:5]:
    print(f"- {f}")
PY
} >"$WORK/section.md"
cat "$WORK/section.md"
if [[ $RECORD -eq 1 ]]; then
    cat "$WORK/section.md" >>"$BENCH_DIR/RESULTS.md"
    log "appended to bench/RESULTS.md"
fi
