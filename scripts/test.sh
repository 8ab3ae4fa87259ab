#!/usr/bin/env bash
# The whole test suite: formatting, the crate layering, lints, fuzzing runs of the map
# parser, the gossip packet decoder, the migration link's decoders, the syscall planner
# and the control protocol's reader, the /proc/hpc kernel module booted in qemu
# (kmod/test.sh; the first run builds the test kernel into /var/cache/om-kmod, about 5
# minutes), and every test (unit, property, and the omcluster tests on real namespaces).
# Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
command -v cargo >/dev/null || export PATH="$HOME/.cargo/bin:$PATH"

step() { printf '\n== %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all --check

step "crate layering (scripts/layers.py)"
python3 scripts/layers.py

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets --quiet -- -D warnings

# cargo-fuzz needs nightly flags; RUSTC_BOOTSTRAP lets the stable compiler accept them.
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked --quiet
fuzz() { # fuzz DIR TARGET SECONDS
    local dir=$1 target=$2 secs=$3 log
    step "fuzz $dir: $target ($secs s)"
    mkdir -p "$dir/corpus/$target"
    log=$(mktemp)
    if ! (cd "$dir" && RUSTC_BOOTSTRAP=1 cargo fuzz run "$target" "corpus/$target" seeds -- -max_total_time="$secs") >"$log" 2>&1; then
        tail -40 "$log" >&2
        echo "fuzzing $dir/$target failed (a crash is kept in $dir/artifacts/$target)" >&2
        exit 1
    fi
    grep -E '^Done' "$log"
    rm -f "$log"
}
fuzz map/fuzz parse 30
fuzz wire/fuzz packet 20
fuzz wire/fuzz announce 10
fuzz migrate/fuzz link 30
fuzz remote/fuzz plan 20
fuzz proto/fuzz request 15

step "kernel module: kmod/test.sh (qemu)"
kmod/test.sh

step "tests"
# The package test (tests/omcluster/tests/package.rs) builds the Debian package
# (dpkg-dev), verifies its unit (systemd's systemd-analyze) and finds its man pages
# (man-db); the omview test drives the web view in headless Chromium (chromium).
. scripts/apt.sh
apt_need test dpkg-dev systemd man-db chromium
command -v cargo-nextest >/dev/null || cargo install cargo-nextest --locked --quiet
cargo nextest run --workspace --no-fail-fast
