#!/usr/bin/env bash
# Pull benchmark: hako vs docker vs podman pulling the same image from a local
# registry (Debian's docker-registry on 127.0.0.1), the image removed before
# each run (hyperfine --prepare), all in one hyperfine invocation.
#
# The image: trixie.tar (from scripts/make-test-images.sh) split into 5 layers
# of similar size, each gzip-compressed, pushed with skopeo as an OCI image.
#
# Usage: bench/pull.sh [--runs N] [--no-record]
# Env: HAKO (default <repo>/target/release/hako), HAKO_TEST_IMAGES.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
runs=5
record=1
while [ $# -gt 0 ]; do
    case $1 in
        --runs) runs=$2; shift 2 ;;
        --no-record) record=0; shift ;;
        *) echo "usage: $0 [--runs N] [--no-record]" >&2; exit 2 ;;
    esac
done
images=${HAKO_TEST_IMAGES:-/var/cache/hako-test-images}
HAKO=${HAKO:-$repo/target/release/hako}
[ -x "$HAKO" ] || (cd "$repo" && cargo build --release -p hako-cli >/dev/null)
for b in docker-registry skopeo hyperfine python3; do
    command -v "$b" >/dev/null || { echo "missing $b (apt-get install docker-registry skopeo hyperfine python3)" >&2; exit 1; }
done

work=$(mktemp -d /var/tmp/hako-bench-pull.XXXXXX)
reg_pid=
cleanup() {
    [ -n "$reg_pid" ] && kill "$reg_pid" 2>/dev/null && wait "$reg_pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$work/reg.yml" <<YML
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $work/storage
http:
  addr: 127.0.0.1:$port
YML
docker-registry serve "$work/reg.yml" >/dev/null 2>&1 &
reg_pid=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/v2/" >/dev/null && break; sleep 0.1; done

# A 5-layer OCI layout built from the trixie rootfs.
python3 - "$images/trixie.tar" "$work/layout" <<'PY'
import gzip, hashlib, io, json, os, sys, tarfile
src, out = sys.argv[1], sys.argv[2]
os.makedirs(out + "/blobs/sha256")
def put(b):
    d = hashlib.sha256(b).hexdigest()
    open(f"{out}/blobs/sha256/{d}", "wb").write(b)
    return "sha256:" + d, len(b)
members = []
with tarfile.open(src) as t:
    for m in t:
        members.append((m, t.extractfile(m).read() if m.isfile() else None))
total = sum(len(d or b"") for _, d in members)
groups, cur, size = [], [], 0
for m, d in members:
    cur.append((m, d)); size += len(d or b"")
    if size > total / 5 and len(groups) < 4:
        groups.append(cur); cur, size = [], 0
groups.append(cur)
layers, diffs = [], []
for g in groups:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for m, d in g:
            t.addfile(m, io.BytesIO(d) if d is not None else None)
    raw = buf.getvalue()
    diffs.append("sha256:" + hashlib.sha256(raw).hexdigest())
    dg, n = put(gzip.compress(raw, 6, mtime=0))
    layers.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": dg, "size": n})
cfg = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["bash"]},
                  "rootfs": {"type": "layers", "diff_ids": diffs}}).encode()
c, cn = put(cfg)
man = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                  "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": c, "size": cn},
                  "layers": layers}).encode()
m, mn = put(man)
json.dump({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
           "digest": m, "size": mn, "annotations": {"org.opencontainers.image.ref.name": "latest"}}]},
          open(out + "/index.json", "w"))
open(out + "/oci-layout", "w").write('{"imageLayoutVersion":"1.0.0"}')
print(f"image: {len(layers)} layers, {sum(l['size'] for l in layers)/1e6:.1f} MB compressed, {total/1e6:.1f} MB of file data")
PY
img=127.0.0.1:$port/bench/trixie:latest
skopeo copy -q --dest-tls-verify=false "oci:$work/layout:latest" "docker://$img"

export HAKO_ROOT=$work/hako-root
cmds=(-n hako --prepare "$HAKO rmi -f $img >/dev/null 2>&1 || true" "$HAKO pull -q $img")
if docker info >/dev/null 2>&1; then
    cmds+=(-n docker --prepare "docker rmi -f $img >/dev/null 2>&1 || true" "docker pull -q $img")
else
    echo "docker: not running, skipped (bench/setup-peers.sh starts it)"
fi
if command -v podman >/dev/null; then
    cmds+=(-n podman --prepare "podman rmi -f $img >/dev/null 2>&1 || true" "podman pull -q --tls-verify=false $img")
fi
hyperfine --runs "$runs" --export-json "$work/pull.json" "${cmds[@]}"

median() { python3 -c "import json,sys; r={x['command']:x['median'] for x in json.load(open('$work/pull.json'))['results']}; print(r.get(sys.argv[1],''))" "$1"; }
h=$(median hako); d=$(median docker); p=$(median podman)
ratio=$(python3 -c "import sys; h,d=sys.argv[1],sys.argv[2]; print(f'{float(h)/float(d):.3f}' if d else 'n/a')" "$h" "$d")
echo "hako ÷ docker: $ratio (target ≤ 0.40)"
if [ "$record" = 1 ]; then
    fmt() { [ -n "$1" ] && python3 -c "import sys; print(f'{float(sys.argv[1]):.3f}')" "$1" || echo "skipped"; }
    {
        echo
        echo "## $(date -u +%F) pull from a local registry (bench/pull.sh)"
        echo
        echo "- $(uname -r), $(nproc) CPUs; trixie rootfs as 5 gzip layers; image removed before each run; hyperfine medians of $runs runs"
        echo
        echo "| engine | pull (s) |"
        echo "| --- | ---: |"
        echo "| hako | $(fmt "$h") |"
        echo "| docker | $(fmt "$d") |"
        echo "| podman | $(fmt "$p") |"
        echo "| hako ÷ docker | $ratio (target ≤ 0.40) |"
    } >>"$here/RESULTS.md"
fi
