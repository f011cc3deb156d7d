#!/usr/bin/env bash
# The whole test suite, from a fresh machine: setup (Debian packages, the cached regtest bitcoind),
# the gates (formatting, clippy with warnings denied, docs with warnings denied), then every unit
# and end-to-end test of the workspace, then schemathesis against a live gateway (the published
# OpenAPI contract checked by an outside tool), then a short run of every fuzz target (nightly
# and cargo-fuzz; see fuzz/README.md). CI runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/sendero/target}"
BITCOIND_EXE="$(scripts/setup.sh)"
export BITCOIND_EXE
echo "test.sh: bitcoind at $BITCOIND_EXE; build artefacts in $CARGO_TARGET_DIR" >&2
rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt clippy >&2 || true
echo "test.sh: cargo fmt --check" >&2
cargo fmt --all -- --check
echo "test.sh: cargo clippy (warnings denied)" >&2
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "test.sh: cargo doc (warnings denied)" >&2
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked --quiet
cargo test --workspace --locked
echo "test.sh: schemathesis against a live senderod --dev" >&2
scripts/schemathesis.sh
echo "test.sh: fuzz smoke (every cargo-fuzz target, a few seconds each)" >&2
scripts/fuzz-smoke.sh
