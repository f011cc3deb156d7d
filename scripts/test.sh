#!/usr/bin/env bash
# The whole test suite, from a fresh machine: setup (Debian packages, the cached regtest bitcoind),
# then every unit and end-to-end test of the workspace. CI runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/sendero/target}"
BITCOIND_EXE="$(scripts/setup.sh)"
export BITCOIND_EXE
echo "test.sh: bitcoind at $BITCOIND_EXE; build artefacts in $CARGO_TARGET_DIR" >&2
cargo test --workspace --locked
