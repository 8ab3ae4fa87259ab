#!/usr/bin/env bash
# Builds the test kernel for the /proc/hpc module, once: Debian's linux-source-6.12 with
# `make LLVM=1 tinyconfig` + kmod/kernel.config, in $OM_KMOD_CACHE (default
# /var/cache/om-kmod), reused while the config fragment is unchanged. Installs what it
# needs from Debian and crates.io first. Prints the kernel tree's path on its last line.
set -euo pipefail
cd "$(dirname "$0")"
CACHE=${OM_KMOD_CACHE:-/var/cache/om-kmod}
log() { printf 'kmod: %s\n' "$*" >&2; }

# Debian: the kernel source, an LLVM toolchain, the kernel's build tools, qemu and a
# static busybox for the test VM. Installed one by one as needed; nothing is removed.
PKGS=(linux-source-6.12 clang lld llvm libclang-dev flex bison bc libelf-dev libssl-dev
      cpio xz-utils qemu-system-x86 busybox-static make)
. ../scripts/apt.sh
apt_need kmod "${PKGS[@]}"
command -v cargo >/dev/null || export PATH="$HOME/.cargo/bin:$PATH"
rustup component list --installed 2>/dev/null | grep -q '^rust-src' || rustup component add rust-src
# Debian's bindgen is too old for Linux 6.12's Rust support; 0.72.1 is known to work.
if ! bindgen --version 2>/dev/null | grep -q '0.72.1'; then
    log "installing bindgen-cli 0.72.1"
    cargo install bindgen-cli --version 0.72.1 --locked --quiet
fi

stamp=$(cat kernel.config | sha256sum | cut -c1-16)
tree="$CACHE/linux-6.12-$stamp"
# The tree's Rust metadata only fits the compiler that built it: a new rustc rebuilds it.
rustc_now=$(rustc --version)
if [ -f "$tree/.om-built" ]; then
    if [ "$(cat "$tree/.om-built")" = "$rustc_now" ]; then
        log "kernel tree cached: $tree"
        echo "$tree"
        exit 0
    fi
    log "the cached tree was built by another rustc ($(cat "$tree/.om-built")); rebuilding"
fi
mkdir -p "$CACHE"
rm -rf "$tree" "$tree.tmp"
log "unpacking linux-source-6.12 into $tree"
mkdir -p "$tree.tmp"
tar -xf /usr/src/linux-source-6.12.tar.xz -C "$tree.tmp" --strip-components=1
mv "$tree.tmp" "$tree"
cd "$tree"
make -s LLVM=1 tinyconfig
scripts/kconfig/merge_config.sh -m .config "$OLDPWD/kernel.config" >/dev/null
make -s LLVM=1 olddefconfig
if ! make -s LLVM=1 rustavailable; then
    log "Rust is not available for this kernel build (see above)"
    exit 1
fi
# Every option the fragment sets to y must have stuck (a missing dependency drops it).
for opt in $(grep -o '^CONFIG_[A-Z0-9_]*=y' "$OLDPWD/kernel.config"); do
    grep -qx "$opt" .config || { log "$opt did not stick (a dependency is missing)"; exit 1; }
done
log "building the kernel (a few minutes)"
t0=$(date +%s)
# `modules` also writes Module.symvers, which out-of-tree modules link against.
make -s LLVM=1 -j"$(nproc)" bzImage modules
log "kernel built in $(( $(date +%s) - t0 )) s"
echo "$rustc_now" >.om-built
echo "$tree"
