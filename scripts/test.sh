#!/usr/bin/env bash
# The whole test suite: formatting, lints, a fuzzing run of the map parser, and every test
# (unit, property, and the omcluster tests on real namespaces). Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
command -v cargo >/dev/null || export PATH="$HOME/.cargo/bin:$PATH"

step() { printf '\n== %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets --quiet -- -D warnings

step "fuzz the map parser (30 s)"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked --quiet
mkdir -p map/fuzz/corpus/parse
# cargo-fuzz needs nightly flags; RUSTC_BOOTSTRAP lets the stable compiler accept them.
log=$(mktemp)
if ! (cd map/fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run parse corpus/parse seeds -- -max_total_time=30) >"$log" 2>&1; then
    tail -40 "$log" >&2
    echo "fuzzing the map parser failed (a crash is kept in map/fuzz/artifacts/parse)" >&2
    exit 1
fi
grep -E '^Done' "$log"
rm -f "$log"

step "tests"
command -v cargo-nextest >/dev/null || cargo install cargo-nextest --locked --quiet
cargo nextest run --workspace --no-fail-fast
