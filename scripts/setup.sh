#!/usr/bin/env bash
# Installs what building and running the project needs on Debian 12 (as root), then
# builds the workspace. Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

need_root() {
    if [ "$(id -u)" != 0 ]; then
        echo "setup: run as root (omcluster creates namespaces and cgroups)" >&2
        exit 1
    fi
}
need_root

# Debian packages: iproute2 (ip, veth, bridges), procps (ps), python3 and iputils-ping
# (used by the demo and the tests), gcc (for crates that build C and for the checkpoint
# test programs), libclang-dev (the userfaultfd crate generates its kernel bindings with
# bindgen at build time), fuse3 (fusermount3, in case omd cannot mount /run/hpc itself),
# util-linux (setpriv, used by the tests), git, bc (the demo's jobs and a migration test),
# tmux (the terminal mosmon's test runs in).
APT_PACKAGES=(iproute2 procps python3 iputils-ping fuse3 util-linux gcc libc6-dev libclang-dev pkg-config git ca-certificates curl bc tmux)
. scripts/apt.sh
apt_need setup "${APT_PACKAGES[@]}"

# Rust: the toolchain comes from rustup; install it if this machine has none.
if ! command -v cargo >/dev/null; then
    [ -x "$HOME/.cargo/bin/cargo" ] || {
        echo "setup: installing the Rust toolchain with rustup"
        curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal -c rustfmt,clippy
    }
    export PATH="$HOME/.cargo/bin:$PATH"
fi
for comp in rustfmt clippy; do
    cargo "${comp/rustfmt/fmt}" --version >/dev/null 2>&1 || rustup component add "$comp"
done

echo "setup: building"
cargo build --workspace --bins --quiet
