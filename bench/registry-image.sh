# shellcheck shell=bash
# Sourced by pull.sh and images.sh: starts Debian's docker-registry on a free
# loopback port (storage and config in $work; the caller's EXIT trap stops it
# by $reg_pid) and pushes the 5-layer trixie image into it with skopeo.
# Needs: $work, $images. Sets: reg_pid, port, img, img_config (the config
# digest, which is the image ID for docker's graph store and for podman).

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
print(c, file=open(out + "/config-digest", "w"))
print(f"image: {len(layers)} layers, {sum(l['size'] for l in layers)/1e6:.1f} MB compressed, {total/1e6:.1f} MB of file data")
PY
img=127.0.0.1:$port/bench/trixie:latest
skopeo copy -q --dest-tls-verify=false "oci:$work/layout:latest" "docker://$img"

img_config=$(cat "$work/layout/config-digest")

# $work/purge CLI: removes the bench image from an engine completely (every
# tag of every copy, whatever registry port an earlier run pushed it under,
# and the image by its config digest), then fails if anything of it is left.
# Layers shared with a leftover of an earlier run would make a "pull" find
# everything already there (a docker pull of 23 ms), so all copies go.
# A script file, not a function, because hyperfine --prepare runs it.
cat >"$work/purge" <<SH
#!/usr/bin/env bash
cli=\$1
ids() {
    "\$cli" images --no-trunc --format '{{.ID}} {{.Repository}}' 2>/dev/null |
        awk '\$2 ~ /\\/bench\\/trixie\$/ {print \$1}' | sort -u
}
list=\$(ids)
[ -n "\$list" ] && "\$cli" rmi -f \$list >/dev/null 2>&1
"\$cli" rmi -f $img_config >/dev/null 2>&1
if [ -n "\$(ids)" ] || "\$cli" image inspect $img_config >/dev/null 2>&1; then
    echo "\$cli still holds the bench image after removal" >&2
    exit 1
fi
exit 0
SH
chmod +x "$work/purge"

# Purges, pulls once untimed and checks that every layer was downloaded:
# proof that the purge really leaves the engine with nothing to reuse.
check_fresh_pull() { # NAME PULL-COMMAND...
    local name=$1 out
    shift
    "$work/purge" "${PURGE_CLI:-$name}" || exit 1
    out=$("$@" 2>&1) || { echo "$name: pull failed: $out" >&2; exit 1; }
    if grep -qi 'already exists' <<<"$out"; then
        echo "$name reused layers after the purge; its timings would be meaningless:" >&2
        echo "$out" >&2
        exit 1
    fi
}
