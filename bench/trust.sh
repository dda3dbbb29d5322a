#!/usr/bin/env bash
# What signature verification adds to a pull (issue 20's target: at most 5 ms): `hako pull` of
# busybox from a local registry (Debian's docker-registry on 127.0.0.1), already in the store,
# so every run asks the registry for the manifest and stops there ("Image is up to date"); the
# only difference between the rows is the policy:
#   accept    insecureAcceptAnything (nothing is verified)
#   sigstore  sigstoreSigned: the .sig tag's manifest and payload fetched, P-256 verified
#   gpg       signedBy: the lookaside signature file read, checked by gpg in a private GNUPGHOME
# The image is signed by hako itself (push --sign-by-sigstore-private-key / --sign-by).
#
# Usage: bench/trust.sh [--runs N]
# Env: HAKO (default <repo>/target/release/hako), HAKO_TEST_IMAGES.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
runs=30
while [ $# -gt 0 ]; do
    case $1 in
        --runs) runs=$2; shift 2 ;;
        *) echo "usage: $0 [--runs N]" >&2; exit 2 ;;
    esac
done
source "$here/lib.sh"
HAKO=${HAKO:-$repo/target/release/hako}
[ -x "$HAKO" ] || (cd "$repo" && cargo build --release -p hako-cli --bin hako >/dev/null)
for b in docker-registry hyperfine gpg gpgconf; do
    have "$b" || die "missing $b (apt-get install docker-registry hyperfine gnupg)"
done

work=$(mktemp -d /var/tmp/hako-bench-trust.XXXXXX)
gnupg=$(mktemp -d /tmp/hgpg.XXXXXX)
reg_pid=
cleanup() {
    GNUPGHOME=$gnupg gpgconf --kill gpg-agent 2>/dev/null || true
    [ -n "$reg_pid" ] && kill "$reg_pid" 2>/dev/null && { wait "$reg_pid" 2>/dev/null || true; }
    rm -rf "$work" "$gnupg"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$work/registry" "$work/registries.d" "$work/lookaside"
cat >"$work/registry.yml" <<YML
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $work/registry
http:
  addr: 127.0.0.1:$port
YML
docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
reg_pid=$!
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done

export HAKO_ROOT=$work/root HAKO_REGISTRIES_D=$work/registries.d
cat >"$work/registries.d/default.yaml" <<YML
default-docker:
  use-sigstore-attachments: true
  lookaside: file://$work/lookaside
YML
echo '{"default":[{"type":"insecureAcceptAnything"}]}' >"$work/accept.json"
export HAKO_POLICY=$work/accept.json
"$HAKO" import "$IMAGES_DIR/busybox.tar" busybox >/dev/null
img=127.0.0.1:$port/bench/busybox:1
"$HAKO" tag busybox "$img"
"$HAKO" image trust generate-sigstore-key --output-prefix "$work/key" >/dev/null
GNUPGHOME=$gnupg gpg --batch --quiet --passphrase '' --quick-gen-key 'hako bench <bench@example.test>' ed25519 sign never
fpr=$(GNUPGHOME=$gnupg gpg --batch --with-colons --list-secret-keys | awk -F: '/^fpr/ {print $10; exit}')
GNUPGHOME=$gnupg gpg --batch --export --output "$work/signer.gpg" "$fpr"
GNUPGHOME=$gnupg "$HAKO" push -q --sign-by-sigstore-private-key "$work/key.private" --sign-by "$fpr" "$img" >/dev/null
cat >"$work/sigstore.json" <<JSON
{"default":[{"type":"reject"}],"transports":{"docker":{"127.0.0.1:$port/bench":[{"type":"sigstoreSigned","keyPath":"$work/key.pub"}]}}}
JSON
cat >"$work/gpg.json" <<JSON
{"default":[{"type":"reject"}],"transports":{"docker":{"127.0.0.1:$port/bench":[{"type":"signedBy","keyType":"GPGKeys","keyPath":"$work/signer.gpg"}]}}}
JSON
# Each policy must accept (a refusal would be fast and meaningless), and a pull must verify.
for p in accept sigstore gpg; do
    HAKO_POLICY=$work/$p.json "$HAKO" pull -q "$img" >/dev/null || die "pull under $p.json failed"
done
echo '{"default":[{"type":"reject"}]}' >"$work/reject.json"
! HAKO_POLICY=$work/reject.json "$HAKO" pull -q "$img" >/dev/null 2>&1 || die "reject.json accepted"

hyperfine -N --warmup 3 --runs "$runs" --export-markdown "$work/table.md" \
    -n accept "env HAKO_POLICY=$work/accept.json $HAKO pull -q $img" \
    -n sigstore "env HAKO_POLICY=$work/sigstore.json $HAKO pull -q $img" \
    -n gpg "env HAKO_POLICY=$work/gpg.json $HAKO pull -q $img"
cat "$work/table.md"
