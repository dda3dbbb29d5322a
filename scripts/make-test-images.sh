#!/usr/bin/env bash
# Build the root-filesystem tarballs that hako's tests and benchmarks use.
#
# Usage: scripts/make-test-images.sh [--only busybox|trixie] [DIR]
#        (DIR defaults to /var/cache/hako-test-images)
#
# Produces:
#   DIR/busybox.tar  minimal rootfs from busybox-static; reproducible byte for
#                    byte (sorted entries, mtime 0, numeric owners, fixed modes)
#   DIR/trixie.tar   `debootstrap --variant=minbase trixie` rootfs (~45 s+)
#
# Idempotent and cached: an image whose tar exists and is newer than this
# script is not rebuilt (delete the tar to force a rebuild). Each tar is
# written to a temporary file in DIR and then renamed into place, so readers
# never see a half-written image. Missing apt packages (busybox-static,
# debootstrap) are installed automatically. Must run as root.
set -euo pipefail

usage() {
    echo "usage: $0 [--only busybox|trixie] [DIR]" >&2
    exit 2
}

ONLY=""
DIR=""
while (($#)); do
    case "$1" in
        --only)
            [[ $# -ge 2 ]] || usage
            ONLY="$2"
            shift 2
            ;;
        --only=*)
            ONLY="${1#--only=}"
            shift
            ;;
        -h | --help) usage ;;
        -*) usage ;;
        *)
            [[ -z "$DIR" ]] || usage
            DIR="$1"
            shift
            ;;
    esac
done
DIR="${DIR:-/var/cache/hako-test-images}"
case "$ONLY" in
    "" | busybox | trixie) ;;
    *) usage ;;
esac

if [[ $(id -u) -ne 0 ]]; then
    echo "$0: must run as root (needs chown and debootstrap)" >&2
    exit 1
fi

SELF="$(readlink -f "${BASH_SOURCE[0]}")"
mkdir -p "$DIR"
DIR="$(cd "$DIR" && pwd)"

# Cleanup of temporaries created below (staging dirs, partial tars).
CLEANUP=()
cleanup() {
    local p
    for p in "${CLEANUP[@]+"${CLEANUP[@]}"}"; do
        # debootstrap may leave bind mounts behind on failure.
        if [[ -d "$p" ]]; then
            umount -R "$p/proc" "$p/sys" "$p/dev/pts" "$p/dev" 2>/dev/null || true
        fi
        rm -rf -- "$p"
    done
}
trap cleanup EXIT

APT_UPDATED=0
ensure_pkg() {
    local pkg missing=()
    for pkg in "$@"; do
        if ! dpkg -s "$pkg" >/dev/null 2>&1; then
            missing+=("$pkg")
        fi
    done
    ((${#missing[@]})) || return 0
    echo ">> installing ${missing[*]}"
    if ((!APT_UPDATED)); then
        apt-get update -qq
        APT_UPDATED=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
}

# up_to_date TAR: the tar exists and is newer than this script.
up_to_date() {
    [[ -f "$1" && "$1" -nt "$SELF" ]]
}

# Deterministic tar of the top-level entries of $1 into $2.
det_tar() {
    local src="$1" out="$2"
    shift 2
    local entries=()
    mapfile -t entries < <(find "$src" -mindepth 1 -maxdepth 1 -printf '%P\n' | LC_ALL=C sort)
    LC_ALL=C tar -C "$src" --sort=name --mtime=@0 --numeric-owner \
        --format=gnu "$@" -cf "$out" -- "${entries[@]}"
}

build_busybox() {
    local out="$DIR/busybox.tar"
    if up_to_date "$out"; then
        echo ">> $out is up to date"
        return 0
    fi
    ensure_pkg busybox-static
    local bb=/bin/busybox
    if ! "$bb" --list >/dev/null 2>&1 || ! file_is_static "$bb"; then
        echo "$0: $bb is not a working static busybox" >&2
        exit 1
    fi

    echo ">> building $out"
    local stage
    stage="$(mktemp -d "$DIR/.busybox-stage.XXXXXX")"
    CLEANUP+=("$stage")
    local d
    for d in bin dev etc home home/hako proc root sys tmp var var/tmp; do
        mkdir -p "$stage/$d"
    done
    install -m 0755 "$bb" "$stage/bin/busybox"
    local applet
    while IFS= read -r applet; do
        [[ -n "$applet" && "$applet" != busybox && "$applet" != */* ]] || continue
        ln -s busybox "$stage/bin/$applet"
    done < <("$bb" --list | LC_ALL=C sort -u)
    # Some programs expect /bin/sh; busybox --list includes sh, but be sure.
    [[ -e "$stage/bin/sh" ]] || ln -s busybox "$stage/bin/sh"

    cat >"$stage/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
hako:x:1234:1234:hako:/home/hako:/bin/sh
EOF
    cat >"$stage/etc/group" <<'EOF'
root:x:0:
nogroup:x:65534:
hako:x:1234:
EOF

    # Fixed ownership and modes, independent of umask and of who runs this.
    chown -R -h 0:0 "$stage"
    find "$stage" -type d -exec chmod 0755 {} +
    chmod 0644 "$stage/etc/passwd" "$stage/etc/group"
    chmod 0700 "$stage/root"
    chmod 1777 "$stage/tmp" "$stage/var/tmp"
    chown 1234:1234 "$stage/home/hako"

    local tmp
    tmp="$(mktemp "$DIR/.busybox.tar.XXXXXX")"
    CLEANUP+=("$tmp")
    det_tar "$stage" "$tmp"
    chmod 0644 "$tmp"
    mv -f "$tmp" "$out"
    rm -rf "$stage"
}

file_is_static() {
    # Avoid depending on `file`: a static binary has no PT_INTERP, so the
    # dynamic loader refuses it with "not a dynamic executable".
    ! ldd "$1" >/dev/null 2>&1
}

# The Debian mirror configured for apt on this host (deb822 or one-line
# format), falling back to deb.debian.org.
debian_mirror() {
    local m=""
    m="$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
        /etc/apt/sources.list.d/*.sources 2>/dev/null |
        grep -oE 'https?://[^ ]+/debian/?( |$)' |
        grep -v -- '-security' | head -n1 | tr -d ' ' || true)"
    m="${m%/}"
    echo "${m:-http://deb.debian.org/debian}"
}

build_trixie() {
    local out="$DIR/trixie.tar"
    if up_to_date "$out"; then
        echo ">> $out is up to date"
        return 0
    fi
    ensure_pkg debootstrap debian-archive-keyring

    local mirror=http://deb.debian.org/debian
    if ! wget -q -T 10 -O /dev/null "$mirror/dists/trixie/Release" 2>/dev/null &&
        ! curl -fsS -m 10 -o /dev/null "$mirror/dists/trixie/Release" 2>/dev/null; then
        mirror="$(debian_mirror)"
        echo ">> deb.debian.org not reachable, using $mirror"
    fi
    # debootstrap 1.0.128 (bookworm) knows trixie through a symlink to its
    # sid script; name that script explicitly if the symlink is missing.
    local script=()
    if [[ ! -e /usr/share/debootstrap/scripts/trixie ]]; then
        script=(/usr/share/debootstrap/scripts/sid)
    fi

    echo ">> building $out (debootstrap from $mirror, takes a minute)"
    local stage
    stage="$(mktemp -d "$DIR/.trixie-stage.XXXXXX")"
    CLEANUP+=("$stage")
    chmod 0755 "$stage"
    if ! debootstrap --variant=minbase trixie "$stage" "$mirror" "${script[@]}" \
        >"$DIR/.trixie-debootstrap.log" 2>&1; then
        echo "$0: debootstrap failed; last lines of $DIR/.trixie-debootstrap.log:" >&2
        tail -n 20 "$DIR/.trixie-debootstrap.log" >&2
        exit 1
    fi
    # Not part of an image: apt lists/caches and the host-specific bits.
    rm -rf "$stage"/var/cache/apt/archives/*.deb "$stage"/var/lib/apt/lists/* \
        "$stage"/debootstrap
    # proc, sys and dev stay as (empty) directories; dev keeps the few nodes
    # debootstrap created, which runtimes overmount anyway.
    umount -R "$stage/proc" "$stage/sys" 2>/dev/null || true

    local tmp
    tmp="$(mktemp "$DIR/.trixie.tar.XXXXXX")"
    CLEANUP+=("$tmp")
    det_tar "$stage" "$tmp" --xattrs --xattrs-include='*' --acls \
        --anchored --exclude='proc/*' --exclude='sys/*'
    chmod 0644 "$tmp"
    mv -f "$tmp" "$out"
    rm -rf "$stage"
    rm -f "$DIR/.trixie-debootstrap.log"
}

built=()
if [[ -z "$ONLY" || "$ONLY" == busybox ]]; then
    build_busybox
    built+=("$DIR/busybox.tar")
fi
if [[ -z "$ONLY" || "$ONLY" == trixie ]]; then
    build_trixie
    built+=("$DIR/trixie.tar")
fi
printf '%s\n' "${built[@]}"
