#!/usr/bin/env bash
# Rootless pull: `hako pull` of the 5-layer bench image (bench/registry-image.sh) from a local
# registry as an ordinary user against rootful hako, side by side in one hyperfine run, the
# image removed before each run (issue 17's target: rootless <= 1.2x rootful).
#
# Usage: bench/rootless-pull.sh [--runs N]
#
# Creates a throw-away account (home under /var/tmp, a 65536-id range, removed on exit); the
# rootless rows include joining the user's namespace and the re-exec every command does, and
# unpacking every layer into the user's id range. Prints a markdown table; records nothing.
#
# Env: HAKO (default <repo>/target/release/hako), HAKO_TEST_IMAGES.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
# shellcheck source=bench/lib.sh
. "$here/lib.sh"

runs=5
while [ $# -gt 0 ]; do
    case $1 in
        --runs) runs=$2; shift 2 ;;
        *) sed -n '7,7p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
    esac
done
[ "$EUID" -eq 0 ] || die "run as root (the script creates the benchmark's user)"
for b in docker-registry skopeo hyperfine python3 newuidmap; do
    have "$b" || die "missing $b (apt-get install docker-registry skopeo hyperfine python3 uidmap)"
done
images=${HAKO_TEST_IMAGES:-/var/cache/hako-test-images}
HAKO=${HAKO:-$repo/target/release/hako}
[ -x "$HAKO" ] || die "$HAKO is missing: cargo build --release -p hako-cli"

work=$(mktemp -d /var/tmp/hako-bench-rootless-pull.XXXXXX)
chmod 0755 "$work"
user_name="hakop$$"
home_dir="$work/home"
reg_pid=
cleanup() {
    pkill -KILL -u "$user_name" 2>/dev/null || true
    userdel -f "$user_name" >/dev/null 2>&1 || true
    sed -i "/^$user_name:/d" /etc/subuid /etc/subgid
    [ -n "$reg_pid" ] && kill "$reg_pid" 2>/dev/null && { wait "$reg_pid" 2>/dev/null || true; }
    HAKO_ROOT="$work/rootful" "$HAKO" rmi -f $(HAKO_ROOT="$work/rootful" "$HAKO" images -q 2>/dev/null) >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

useradd --create-home --home-dir "$home_dir" --no-user-group --gid users -s /bin/sh "$user_name"
sed -i "/^$user_name:/d" /etc/subuid /etc/subgid
echo "$user_name:1930000000:65536" >>/etc/subuid
echo "$user_name:1930000000:65536" >>/etc/subgid
uid=$(id -u "$user_name")
gid=$(id -g "$user_name")
install -d -o "$uid" -g "$gid" -m 0700 "$home_dir/run"
install -m 0755 "$HAKO" "$home_dir/hako"
# The rootless engine as a command of its own, for hyperfine and the purge script.
cat >"$work/hako-user" <<SH
#!/bin/sh
cd "$home_dir" && exec setpriv --reuid=$uid --regid=$gid --init-groups -- env -i HOME="$home_dir" USER="$user_name" PATH=/usr/local/bin:/usr/bin:/bin XDG_RUNTIME_DIR="$home_dir/run" "$home_dir/hako" "\$@"
SH
cat >"$work/hako-root" <<SH
#!/bin/sh
exec env HAKO_ROOT="$work/rootful" "$HAKO" "\$@"
SH
chmod 0755 "$work/hako-user" "$work/hako-root"

# shellcheck source=bench/registry-image.sh
source "$here/registry-image.sh"
check_fresh_pull "$work/hako-root" "$work/hako-root" pull "$img"
check_fresh_pull "$work/hako-user" "$work/hako-user" pull "$img"
hyperfine -N --runs "$runs" --export-json "$work/pull.json" \
    -n "hako rootful" --prepare "$work/purge $work/hako-root" "$work/hako-root pull -q $img" \
    -n "hako rootless" --prepare "$work/purge $work/hako-user" "$work/hako-user pull -q $img"

echo "## rootless pull vs rootful hako — $(date -u +%Y-%m-%dT%H:%MZ)"
echo
echo "- $(uname -r), $(nproc) CPUs, load $(cut -d' ' -f1 /proc/loadavg); 5 layers (~245 MB, ~80 MB gzip); image removed before each run; hyperfine medians of $runs runs"
echo
python3 - "$work/pull.json" <<'PY'
import json, sys
res = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
base = res["hako rootful"]["median"]
print("| engine | median s | × rootful hako |")
print("| --- | ---: | ---: |")
for name, r in res.items():
    print(f"| {name} | {r['median']:.3f} | {r['median'] / base:.2f} |")
PY
