#!/usr/bin/env bash
# `hako build` against Docker's classic builder, BuildKit (DOCKER_BUILDKIT=1) and Podman, side by
# side in one run, on the issue's small build: FROM / RUN / WORKDIR / COPY of a 10 MB file / ENV
# / CMD. Three cases per builder:
#   cold    --no-cache (every step runs)
#   no-op   nothing changed (every step cached)
#   change  the copied file changes before each run (RUN cached, COPY onwards rebuilt)
# Then hako's cold build against the same build made reproducible (--source-date-epoch; issue
# 20's target: at most 1.1x), both from a store holding only busybox.
# Usage: bench/build.sh [--runs N] [--no-record]
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
RUNS=10
RECORD=1
while (($#)); do
    case "$1" in
        --runs) RUNS="${2:?}"; shift 2 ;;
        --no-record) RECORD=0; shift ;;
        *) sed -n '2,10p' "$0" >&2; exit 2 ;;
    esac
done
have hyperfine || die "hyperfine missing: run bench/setup-peers.sh"
HAKO="${HAKO:-$REPO_DIR/target/release/hako}"
[[ -x "$HAKO" ]] || die "$HAKO missing: scripts/build-release.sh"
export HAKO_ROOT="${HAKO_ROOT:-/var/tmp/hako-bench-build-root}"
"$HAKO" images -q | grep -q . || "$HAKO" import "$IMAGES_DIR/busybox.tar" busybox >/dev/null
DOCKER_BIN="$(docker_cli)"
CTX="$(mktemp -d /var/tmp/hako-bench-build-ctx.XXXXXX)"
trap 'rm -rf "$CTX"' EXIT
head -c 10M /dev/urandom >"$CTX/big"
cat >"$CTX/Dockerfile" <<'DF'
FROM busybox
RUN echo built > /built.txt
WORKDIR /app
COPY big .
ENV MODE=bench
CMD ["cat", "/built.txt"]
DF
change="sh -c 'head -c 16 /dev/urandom | dd of=$CTX/big bs=16 seek=1 conv=notrunc status=none'"

declare -a builders=("hako" "$HAKO build -q -t bench-build $CTX")
have_docker=0
if [[ -n "$DOCKER_BIN" ]] && "$DOCKER_BIN" info >/dev/null 2>&1; then
    have_docker=1
    "$DOCKER_BIN" image inspect "$PEER_IMAGE" >/dev/null 2>&1 || "$DOCKER_BIN" import "$IMAGES_DIR/busybox.tar" "$PEER_IMAGE" >/dev/null
    builders+=("docker classic" "env DOCKER_BUILDKIT=0 $DOCKER_BIN build -q -t bench-build $CTX")
    builders+=("buildkit" "env DOCKER_BUILDKIT=1 $DOCKER_BIN build -q -t bench-build $CTX")
fi
if have podman; then
    podman image exists "$PEER_IMAGE" 2>/dev/null || podman import "$IMAGES_DIR/busybox.tar" "$PEER_IMAGE" >/dev/null
    builders+=("podman" "podman --runtime runc build -q -t bench-build $CTX")
fi

args=(-N --warmup 1 --runs "$RUNS" --export-json /tmp/hako-bench-build.json)
for ((i = 0; i < ${#builders[@]}; i += 2)); do
    name="${builders[i]}"
    cmd="${builders[i + 1]}"
    # Podman and Docker take --no-cache the same way hako does.
    args+=(--command-name "$name cold" "${cmd/ build / build --no-cache }")
done
for ((i = 0; i < ${#builders[@]}; i += 2)); do
    args+=(--command-name "${builders[i]} no-op" "${builders[i + 1]}")
done
hyperfine "${args[@]}" >&2
cp /tmp/hako-bench-build.json /tmp/hako-bench-build-1.json
args=(-N --warmup 1 --runs "$RUNS" --export-json /tmp/hako-bench-build-2.json)
for ((i = 0; i < ${#builders[@]}; i += 2)); do
    args+=(--prepare "$change" --command-name "${builders[i]} change" "${builders[i + 1]}")
done
hyperfine "${args[@]}" >&2

# A reproducible rebuild writes the layers the store already has from the run before, and the
# store keeps those instead of installing them again; so each run here starts from a store
# with only busybox (the previous run's images, steps and layers removed), and both builds do
# all their work.
fresh="sh -c '$HAKO rmi -f bench-build-fresh bench-build-fresh-repro >/dev/null 2>&1; $HAKO builder prune -af >/dev/null; $HAKO image prune -f >/dev/null'"
hyperfine -N --warmup 1 --runs "$RUNS" --export-json /tmp/hako-bench-build-3.json \
    --prepare "$fresh" --command-name "hako" "$HAKO build -q --no-cache -t bench-build-fresh $CTX" \
    --prepare "$fresh" --command-name "hako repro" \
    "$HAKO build -q --no-cache --source-date-epoch 1700000000 -t bench-build-fresh-repro $CTX" >&2
repro_table=$(python3 - <<'PY'
import json
r = {x["command"]: x["median"] * 1000 for x in json.load(open("/tmp/hako-bench-build-3.json"))["results"]}
print("| hako, from a store with only busybox | cold ms |")
print("| --- | --- |")
print(f"| today's build | {r['hako']:.0f} |")
print(f"| reproducible (--source-date-epoch) | {r['hako repro']:.0f} ({r['hako repro'] / r['hako']:.2f}x) |")
PY
)

table=$(python3 - <<'PY'
import json
rows = {}
for f in ("/tmp/hako-bench-build-1.json", "/tmp/hako-bench-build-2.json"):
    for r in json.load(open(f))["results"]:
        name, case = r["command"].rsplit(" ", 1)
        rows.setdefault(name, {})[case] = r["median"] * 1000
bk = rows.get("buildkit", {})
print("| builder | cold ms | no-op ms | after change ms |")
print("| --- | --- | --- | --- |")
for name, c in rows.items():
    cells = []
    for case in ("cold", "no-op", "change"):
        v = c.get(case)
        if v is None:
            cells.append("-")
        elif name != "buildkit" and bk.get(case):
            cells.append(f"{v:.0f} ({v / bk[case]:.2f}x BuildKit)")
        else:
            cells.append(f"{v:.0f}")
    print(f"| {name} | " + " | ".join(cells) + " |")
PY
)
echo "$table"
echo
echo "$repro_table"
if ((RECORD)); then
    {
        echo
        echo "## build ($(date -u +%Y-%m-%d), bench/build.sh, $RUNS runs, medians)"
        echo
        echo "FROM busybox / RUN / WORKDIR / COPY 10 MB / ENV / CMD; \`-q\` for every builder."
        echo
        echo "$table"
        echo
        echo "$repro_table"
    } >>"$BENCH_DIR/RESULTS.md"
fi
