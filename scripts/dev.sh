#!/usr/bin/env bash
# Sets up a fresh machine and runs `senderod --dev`: a private regtest bitcoind, a funded treasury,
# the API on 127.0.0.1:8380 and the admin RPC on <datadir>/admin.sock. Extra arguments go to
# senderod (e.g. --datadir /tmp/sendero-dev). Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/sendero/target}"
BITCOIND_EXE="$(scripts/setup.sh)"
export BITCOIND_EXE
cargo build --locked --bin senderod --bin sendero-cli
echo "dev.sh: admin client: $CARGO_TARGET_DIR/debug/sendero-cli --datadir <datadir> getinfo" >&2
exec "$CARGO_TARGET_DIR/debug/senderod" --dev "$@"
