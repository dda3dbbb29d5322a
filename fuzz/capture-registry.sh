#!/usr/bin/env bash
# Captures real registry answers as seeds: pushes a one-file image to a private Debian
# docker-registry with hako, then saves the manifest, config and error answers it serves into
# corpus/manifest and corpus/registry_auth, and `hako save`'s archive of it into corpus/load.
# Usage: fuzz/capture-registry.sh [HAKO_BINARY]   (default: target/debug/hako)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
hako=$(realpath "${1:-$here/../target/debug/hako}")
corpus=$here/corpus

work=$(mktemp -d /var/tmp/hako-fuzz-capture.XXXXXX)
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$work/config.yml" <<EOF
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $work/storage
http:
  addr: 127.0.0.1:$port
EOF
docker-registry serve "$work/config.yml" >"$work/registry.log" 2>&1 &
registry=$!
cleanup() {
    kill "$registry" 2>/dev/null || true
    wait "$registry" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
for _ in $(seq 50); do
    curl -fs "http://127.0.0.1:$port/v2/" >/dev/null && break
    sleep 0.1
done

export HAKO_ROOT=$work/root
mkdir "$work/rootfs"
echo hello >"$work/rootfs/hello"
tar -C "$work/rootfs" -cf "$work/rootfs.tar" .
ref=127.0.0.1:$port/fuzz/tiny:1
"$hako" import --change 'CMD ["/hello"]' --change 'LABEL a=b' "$work/rootfs.tar" "$ref" >/dev/null
"$hako" push "$ref" >/dev/null
"$hako" save -o "$corpus/load/hako-save.tar" "$ref"

base=http://127.0.0.1:$port/v2/fuzz/tiny
accept='application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json'
# $1: seed name, $2: platform line, $3: URL
manifest_seed() {
    local headers body ct
    headers=$(mktemp) body=$(mktemp)
    curl -s -D "$headers" -o "$body" -H "Accept: $accept" "$3"
    ct=$(tr -d '\r' <"$headers" | sed -n 's/^[Cc]ontent-[Tt]ype: //p' | tail -1)
    { printf '%s\n%s\n' "$ct" "$2"; cat "$body"; } >"$corpus/manifest/$1"
    rm -f "$headers" "$body"
}
manifest_seed captured-manifest linux/amd64 "$base/manifests/1"
config=$(curl -s -H "Accept: $accept" "$base/manifests/1" | python3 -c 'import json, sys; print(json.load(sys.stdin)["config"]["digest"])')
manifest_seed captured-config linux/arm64 "$base/blobs/$config"

# Error answers: an unknown manifest, an unknown repository, a bad digest.
n=0
for url in "$base/manifests/nope" "http://127.0.0.1:$port/v2/fuzz/none/manifests/1" "$base/blobs/sha256:bad"; do
    status=$(curl -s -o "$work/err" -w '%{http_code}' "$url")
    printf '\0\0\0\0\0%s\0' "$status" >"$corpus/registry_auth/captured-error-$n"
    cat "$work/err" >>"$corpus/registry_auth/captured-error-$n"
    n=$((n + 1))
done
echo "captured from docker-registry $(dpkg-query -W -f '${Version}' docker-registry 2>/dev/null || true)"
