# shellcheck shell=bash
# Helpers shared by scripts/demo.sh and scripts/test.sh (sourced, not run).

# apt_install PKG...: installs the packages that dpkg does not report as installed.
apt_install() {
    local missing=()
    local p
    for p in "$@"; do
        dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
    done
    if ((${#missing[@]})); then
        echo "installing: ${missing[*]}" >&2
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
    fi
}

# ensure_rust: a cargo at least as new as the workspace's rust-version, with rustfmt and clippy.
# Debian 12's own rustc is too old for the crates hako uses, so rustup provides one if needed.
ensure_rust() {
    local need
    need=$(sed -n 's/^rust-version *= *"\(.*\)"/\1/p' Cargo.toml)
    # shellcheck source=/dev/null
    [[ -f "$HOME/.cargo/env" ]] && . "$HOME/.cargo/env"
    if ! command -v cargo >/dev/null || ! version_at_least "$(cargo --version | awk '{print $2}')" "$need"; then
        echo "installing Rust $need or newer with rustup" >&2
        curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
        # shellcheck source=/dev/null
        . "$HOME/.cargo/env"
    fi
    if command -v rustup >/dev/null; then
        rustup component add rustfmt clippy >/dev/null 2>&1 || true
    fi
}

# version_at_least HAVE NEED: true if dotted version HAVE >= NEED.
version_at_least() {
    [[ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -1)" == "$2" ]]
}
