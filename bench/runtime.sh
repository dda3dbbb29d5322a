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
# crun also runs as `crun-nocg`, with --cgroup-manager=disabled: it then makes no cgroup at
# all (on the host as it is, crun refuses even that: this VM's cgroup2 hierarchy has the
# hugetlb controller), a handicap for the others, shown as a second comparison.
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
        cargo rustc --profile release-runtime -q -p hako-runtime-cli --bin hako-runtime -- -C target-feature=+crt-static -C relocation-model=static &&
        cp target/release-runtime/hako-runtime target/release/hako-runtime)
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
    [[ $rt == crun ]] && RUNTIMES+=("crun-nocg=$bin")
done

# Everything below runs in the private mount namespace.
inner() {
    umount /sys/fs/cgroup/unified 2>/dev/null || true
    local args=(-N --runs "$RUNS" --warmup "$WARMUP" --export-markdown "$WORK/run.md" --export-json "$WORK/run.json")
    local cycle=(--runs "$RUNS" --warmup "$WARMUP" --export-markdown "$WORK/cycle.md" --export-json "$WORK/cycle.json")
    local ok=()
    for entry in "${RUNTIMES[@]}"; do
        local rt="${entry%%=*}" bin="${entry#*=}" root="$WORK/state-${entry%%=*}"
        [[ $rt == crun-nocg ]] && bin="$bin --cgroup-manager=disabled"
        if ! out=$($bin --root "$root" run -b "$WORK" "probe-$rt" 2>&1 </dev/null); then
            log "$rt: probe run failed: $(echo "$out" | tail -1)"
            $bin --root "$root" delete --force "probe-$rt" >/dev/null 2>&1 || true
            continue
        fi
        ok+=("$rt=$bin")
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
            kb=$(/usr/bin/time -f %M $bin --root "$root" run -b "$WORK" "rss-$rt" 2>&1 >/dev/null </dev/null | tail -1)
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
    echo "× crun: crun creating its cgroups as the others do; × crun-nocg: crun with \`--cgroup-manager=disabled\` (no cgroup at all)."
    echo
    python3 - "$WORK/run.json" "$WORK/cycle.json" <<'PY'
import json, sys
def medians(path):
    return {r["command"].split(" ")[0]: r["median"] * 1000 for r in json.load(open(path))["results"]}
run, cycle = medians(sys.argv[1]), medians(sys.argv[2])
def ratio(m, rt, base):
    return "%.2f" % (m[rt] / m[base]) if base in m and rt in m else "-"
print("| runtime | run median ms | × crun | × crun-nocg | create+start+delete median ms | × crun | × crun-nocg |")
print("|:---|---:|---:|---:|---:|---:|---:|")
for rt in run:
    print("| %s | %.1f | %s | %s | %.1f | %s | %s |" % (rt, run[rt], ratio(run, rt, "crun"), ratio(run, rt, "crun-nocg"),
          cycle.get(rt, float("nan")), ratio(cycle, rt, "crun"), ratio(cycle, rt, "crun-nocg")))
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
