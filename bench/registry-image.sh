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

# A 5-layer OCI layout shaped like the pull target of the issue (~245 MB of
# layer tars, ~80 MB gzip-compressed): the trixie rootfs split into 3 layers,
# then a layer of incompressible data and one of compressible text, sized so
# that the totals come out at those figures. All content is deterministic, so
# every run pushes the same digests.
python3 - "$images/trixie.tar" "$work/layout" <<'PY'
import gzip, hashlib, io, json, os, random, sys, tarfile
src, out = sys.argv[1], sys.argv[2]
RAW_TARGET, GZ_TARGET = 245e6, 80e6
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
    if size > total / 3 and len(groups) < 2:
        groups.append(cur); cur, size = [], 0
groups.append(cur)
def layer_tar(entries):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for m, d in entries:
            t.addfile(m, io.BytesIO(d) if d is not None else None)
    return buf.getvalue()
raws = [layer_tar(g) for g in groups]
gzs = [gzip.compress(r, 6, mtime=0) for r in raws]

rng = random.Random(245)
vocab = [bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 10)))
         for _ in range(256)]
def text(n):
    words = rng.randbytes(n // 5)
    return (b" ".join(vocab[w] for w in words) + b"\n")[:n]
sample = text(4 << 20)
ratio = len(sample) / len(gzip.compress(sample, 6, mtime=0))
# Extra raw bytes E = random R + text C; extra compressed bytes = R + C/ratio.
extra_raw = max(RAW_TARGET - sum(map(len, raws)), 0)
extra_gz = max(GZ_TARGET - sum(map(len, gzs)), 0)
text_bytes = int(min(max((extra_raw - extra_gz) / (1 - 1 / ratio), 0), extra_raw))
random_bytes = int(extra_raw - text_bytes)
def data_layer(name, n, gen):
    entries, i, chunk = [], 0, 8 << 20
    d = tarfile.TarInfo(f"opt/bench/{name}"); d.type = tarfile.DIRTYPE; d.mode = 0o755
    entries.append((d, None))
    while n > 0:
        b = gen(min(chunk, n)); n -= len(b)
        f = tarfile.TarInfo(f"opt/bench/{name}/{i:03}"); f.size = len(b); f.mode = 0o644
        entries.append((f, b)); i += 1
    return layer_tar(entries)
for name, n, gen in (("random", random_bytes, rng.randbytes), ("text", text_bytes, text)):
    raws.append(data_layer(name, n, gen))
    gzs.append(gzip.compress(raws[-1], 6, mtime=0))
layers, diffs = [], []
for raw, gz in zip(raws, gzs):
    diffs.append("sha256:" + hashlib.sha256(raw).hexdigest())
    dg, n = put(gz)
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
print(f"image: {len(layers)} layers, {sum(map(len, gzs))/1e6:.1f} MB compressed, {sum(map(len, raws))/1e6:.1f} MB uncompressed")
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
