#!/usr/bin/env bash
# OCI runtime benchmark: hako-runtime vs runc, crun (and youki when installed).
#
# Usage: bench/runtime.sh [--runs N] [--warmup N] [--no-record]
#
# All runtimes run a busybox `/bin/true` bundle (runc spec's defaults, args
# replaced) inside ONE private mount namespace where /sys/fs/cgroup/unified is
# unmounted: crun refuses this host's hybrid layout otherwise, and measuring
# everyone the same way keeps the comparison fair. Each gets its own --root
# and a relative linux.cgroupsPath, so cgroups nest under the caller's own.
# A second pass runs them on the host as it is, crun with --cgroup-manager=disabled
# (the only way it starts there: it then makes no cgroup at all).
#   run:                  RT --root R run -b BUNDLE ID
#   create+start+delete:  RT create, RT start, RT delete (a small sh loop body;
#                         the container exits at once, delete waits for it)
# Then the peak RSS (`/usr/bin/time -f %M`, max over 5 runs) of each runtime's
# `run`, and a dated section appended to bench/RESULTS.md.
#
# Env: HAKO_RUNTIME (default <repo>/target/release/hako-runtime, built if
# missing), HAKO_TEST_IMAGES.
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

RUNS=50
WARMUP=5
RECORD=1
while [[ $# -gt 0 ]]; do
    case "$1" in
    --runs) RUNS="$2"; shift 2 ;;
    --warmup) WARMUP="$2"; shift 2 ;;
    --no-record) RECORD=0; shift ;;
    *) sed -n '3,4p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
    esac
done

[[ $EUID -eq 0 ]] || die "run as root"
have hyperfine || die "hyperfine is missing (apt-get install hyperfine)"
HAKO_RUNTIME="${HAKO_RUNTIME:-$REPO_DIR/target/release/hako-runtime}"
if [[ ! -x "$HAKO_RUNTIME" ]]; then
    log "building hako-runtime (release, static as scripts/build-release.sh builds it)"
    (cd "$REPO_DIR" && LIBSECCOMP_LINK_TYPE=static LIBSECCOMP_LIB_PATH="/usr/lib/$(gcc -print-multiarch)" \
        cargo rustc --release -q -p hako-runtime-cli --bin hako-runtime -- -C target-feature=+crt-static -C relocation-model=static)
fi
[[ -f "$IMAGES_DIR/busybox.tar" ]] || "$REPO_DIR/scripts/make-test-images.sh" --only busybox

WORK="$(mktemp -d /var/tmp/hako-bench-runtime.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
mkdir "$WORK/rootfs"
tar -xf "$IMAGES_DIR/busybox.tar" -C "$WORK/rootfs"
"$HAKO_RUNTIME" spec --bundle "$WORK"
python3 - "$WORK/config.json" <<'EOF'
import json, sys
p = sys.argv[1]
c = json.load(open(p))
c["process"]["args"] = ["/bin/true"]
# crun 1.8 refuses spec versions newer than it knows; 1.0.2 means the same here.
c["ociVersion"] = "1.0.2"
# Ambient capabilities that are not inheritable cannot be raised; runc skips them
# silently, hako warns: keep the output clean for every runtime.
c["process"]["capabilities"].pop("ambient", None)
c["linux"]["cgroupsPath"] = "hako-bench-runtime"
json.dump(c, open(p, "w"))
EOF

RUNTIMES=()
for rt in hako-runtime runc crun youki; do
    bin="$rt"
    [[ $rt == hako-runtime ]] && bin="$HAKO_RUNTIME"
    if [[ $rt != hako-runtime ]] && ! have "$rt"; then
        log "$rt: not installed, skipped"
        continue
    fi
    RUNTIMES+=("$rt=$bin")
done

# The same side by side on the host as it is (hybrid cgroups): crun 1.8 starts containers
# there only with `--cgroup-manager=disabled`, i.e. without creating any cgroup, while
# hako-runtime and runc make (and delete) one per container in every hierarchy. A handicap for
# them, reported as a second comparison.
host_pass() {
    local args=(-N --runs "$RUNS" --warmup "$WARMUP" --export-markdown "$WORK/host-run.md" --export-json "$WORK/host-run.json")
    local cycle=(--runs "$RUNS" --warmup "$WARMUP" --export-markdown "$WORK/host-cycle.md" --export-json "$WORK/host-cycle.json")
    for entry in "${RUNTIMES[@]}"; do
        local rt="${entry%%=*}" bin="${entry#*=}" root="$WORK/host-state-${entry%%=*}" flags=""
        [[ $rt == crun ]] && flags="--cgroup-manager=disabled"
        if ! out=$("$bin" $flags --root "$root" run -b "$WORK" "probe-$rt" 2>&1 </dev/null); then
            log "$rt (host): probe run failed: $(echo "$out" | tail -1)"
            "$bin" $flags --root "$root" delete --force "probe-$rt" >/dev/null 2>&1 || true
            continue
        fi
        args+=(-n "$rt run" "$bin $flags --root $root run -b $WORK bench-$rt")
        cycle+=(-n "$rt create+start+delete"
            "$bin $flags --root $root create -b $WORK c-$rt </dev/null >/dev/null 2>&1 && $bin $flags --root $root start c-$rt && $bin $flags --root $root delete --force c-$rt")
    done
    hyperfine "${args[@]}" >&2
    hyperfine -S "sh" "${cycle[@]}" >&2
}
host_pass

# Everything below runs in the private mount namespace.
inner() {
    umount /sys/fs/cgroup/unified 2>/dev/null || true
    local args=(-N --runs "$RUNS" --warmup "$WARMUP" --export-markdown "$WORK/run.md" --export-json "$WORK/run.json")
    local cycle=(--runs "$RUNS" --warmup "$WARMUP" --export-markdown "$WORK/cycle.md" --export-json "$WORK/cycle.json")
    local ok=()
    for entry in "${RUNTIMES[@]}"; do
        local rt="${entry%%=*}" bin="${entry#*=}" root="$WORK/state-${entry%%=*}"
        if ! out=$("$bin" --root "$root" run -b "$WORK" "probe-$rt" 2>&1 </dev/null); then
            log "$rt: probe run failed: $(echo "$out" | tail -1)"
            "$bin" --root "$root" delete --force "probe-$rt" >/dev/null 2>&1 || true
            continue
        fi
        ok+=("$entry")
        args+=(-n "$rt run" "$bin --root $root run -b $WORK bench-$rt")
        cycle+=(-n "$rt create+start+delete"
            "$bin --root $root create -b $WORK c-$rt </dev/null >/dev/null 2>&1 && $bin --root $root start c-$rt && $bin --root $root delete --force c-$rt")
    done
    hyperfine "${args[@]}" >&2
    hyperfine -S "sh" "${cycle[@]}" >&2
    : >"$WORK/rss.md"
    for entry in "${ok[@]}"; do
        local rt="${entry%%=*}" bin="${entry#*=}" root="$WORK/state-${entry%%=*}" max=0
        for _ in 1 2 3 4 5; do
            kb=$(/usr/bin/time -f %M "$bin" --root "$root" run -b "$WORK" "rss-$rt" 2>&1 >/dev/null </dev/null | tail -1)
            ((kb > max)) && max=$kb
        done
        echo "| $rt | $max |" >>"$WORK/rss.md"
    done
}
export -f inner log
export WORK RUNS WARMUP
RUNTIMES_STR="${RUNTIMES[*]}"
export RUNTIMES_STR
unshare -m --propagation private bash -c 'RUNTIMES=($RUNTIMES_STR); inner'

{
    echo
    echo "## hako-runtime vs OCI runtimes — $(date -u +%Y-%m-%dT%H:%MZ)"
    echo
    echo "bench/runtime.sh, busybox /bin/true bundle, private mount namespace without /sys/fs/cgroup/unified, $RUNS runs."
    echo "$(nproc) CPUs, kernel $(uname -r)."
    echo
    echo "### run"
    echo
    cat "$WORK/run.md"
    echo
    echo "### create + start + delete (includes one sh)"
    echo
    cat "$WORK/cycle.md"
    echo
    echo "### medians, against crun (targets: hako-runtime run ≤ 0.7×, create+start+delete ≤ 0.8× crun)"
    echo
    echo "Every runtime creating its cgroups (private mount namespace without the unified hierarchy):"
    echo
    python3 - "$WORK/run.json" "$WORK/cycle.json" <<'PY'
import json, sys
def medians(path):
    return {r["command"].split(" ")[0]: r["median"] * 1000 for r in json.load(open(path))["results"]}
run, cycle = medians(sys.argv[1]), medians(sys.argv[2])
def ratio(m, rt):
    return "%.2f" % (m[rt] / m["crun"]) if "crun" in m and rt in m else "-"
print("| runtime | run median ms | × crun | create+start+delete median ms | × crun |")
print("|:---|---:|---:|---:|---:|")
for rt in run:
    print("| %s | %.1f | %s | %.1f | %s |" % (rt, run[rt], ratio(run, rt), cycle.get(rt, float("nan")), ratio(cycle, rt)))
PY
    echo
    echo "On the host as it is (hybrid cgroups), crun with \`--cgroup-manager=disabled\` (no cgroup at all), hako-runtime and runc creating theirs:"
    echo
    python3 - "$WORK/host-run.json" "$WORK/host-cycle.json" <<'PY'
import json, sys
def medians(path):
    return {r["command"].split(" ")[0]: r["median"] * 1000 for r in json.load(open(path))["results"]}
run, cycle = medians(sys.argv[1]), medians(sys.argv[2])
def ratio(m, rt):
    return "%.2f" % (m[rt] / m["crun"]) if "crun" in m and rt in m else "-"
print("| runtime | run median ms | × crun | create+start+delete median ms | × crun |")
print("|:---|---:|---:|---:|---:|")
for rt in run:
    print("| %s | %.1f | %s | %.1f | %s |" % (rt, run[rt], ratio(run, rt), cycle.get(rt, float("nan")), ratio(cycle, rt)))
PY
    echo
    echo "### peak RSS of \`run\` (KiB, max of 5; target: hako-runtime ≤ crun)"
    echo
    echo "| runtime | max RSS |"
    echo "|:---|---:|"
    cat "$WORK/rss.md"
} >"$WORK/section.md"
cat "$WORK/section.md"
if [[ $RECORD -eq 1 ]]; then
    cat "$WORK/section.md" >>"$BENCH_DIR/RESULTS.md"
    log "appended to bench/RESULTS.md"
fi
