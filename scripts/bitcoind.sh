#!/usr/bin/env bash
# Builds a real `bitcoind` + `bitcoin-cli` from the Bitcoin Core source that the crates.io package
# `libbitcoinkernel-sys` carries, once, and caches them outside the checkout.
#
#   scripts/bitcoind.sh          build if missing, then print the path of bitcoind
#   BITCOIND_EXE=/path ...       use that binary instead (printed as is, nothing built)
#
# Cache: ${SENDERO_CACHE:-~/.cache/sendero}/bitcoind-<version>/{bitcoind,bitcoin-cli}
# Needs: cmake, a C++ compiler, pkg-config, libboost-dev, libevent-dev (Debian package names).
set -euo pipefail

KERNEL_SYS_VERSION="0.4.1"
cache_root="${SENDERO_CACHE:-$HOME/.cache/sendero}"

log() { printf 'bitcoind.sh: %s\n' "$*" >&2; }

if [ -n "${BITCOIND_EXE:-}" ]; then
  [ -x "$BITCOIND_EXE" ] || { log "BITCOIND_EXE=$BITCOIND_EXE is not an executable"; exit 1; }
  printf '%s\n' "$BITCOIND_EXE"
  exit 0
fi

out="$cache_root/bitcoind-kernel-sys-$KERNEL_SYS_VERSION"
if [ -x "$out/bitcoind" ] && [ -x "$out/bitcoin-cli" ]; then
  printf '%s\n' "$out/bitcoind"
  exit 0
fi

# One build at a time: a second caller waits, then finds the cache filled.
mkdir -p "$cache_root"
exec 9>"$cache_root/bitcoind-build.lock"
if ! flock -n 9; then
  log "another build of bitcoind is running; waiting for it"
  flock 9
fi
if [ -x "$out/bitcoind" ] && [ -x "$out/bitcoin-cli" ]; then
  printf '%s\n' "$out/bitcoind"
  exit 0
fi

for tool in cmake c++ pkg-config; do
  command -v "$tool" >/dev/null || { log "missing '$tool' (Debian: apt-get install cmake g++ pkg-config libboost-dev libevent-dev)"; exit 1; }
done

# Find the crate's source through cargo, from a throw-away manifest, so that no workspace crate
# ever depends on it (that would compile Bitcoin Core's kernel on every clean build).
probe="$cache_root/kernel-sys-probe"
mkdir -p "$probe/src"
cat >"$probe/Cargo.toml" <<TOML
[package]
name = "kernel-sys-probe"
version = "0.0.0"
edition = "2021"
publish = false

[dependencies]
libbitcoinkernel-sys = "=$KERNEL_SYS_VERSION"

[workspace]
TOML
: >"$probe/src/lib.rs"
log "fetching libbitcoinkernel-sys $KERNEL_SYS_VERSION source through cargo"
cargo fetch --quiet --manifest-path "$probe/Cargo.toml"
src_dir=$(cargo metadata --format-version 1 --manifest-path "$probe/Cargo.toml" |
  python3 -c 'import json,sys
m = json.load(sys.stdin)
print(next(p["manifest_path"] for p in m["packages"] if p["name"] == "libbitcoinkernel-sys").rsplit("/", 1)[0])')
core_src="$src_dir/bitcoin"
[ -f "$core_src/CMakeLists.txt" ] || { log "no Bitcoin Core source at $core_src"; exit 1; }
version=$(sed -n 's/^set(CLIENT_VERSION_\(MAJOR\|MINOR\|BUILD\) \([0-9]*\)).*/\2/p' "$core_src/CMakeLists.txt" | paste -sd. -)
log "Bitcoin Core ${version:-unknown} source: $core_src"

build="$cache_root/bitcoind-build"
jobs=$(nproc 2>/dev/null || echo 2)
log "configuring (build dir $build)"
cmake -S "$core_src" -B "$build" -DCMAKE_BUILD_TYPE=Release \
  -DBUILD_DAEMON=ON -DBUILD_CLI=ON -DENABLE_WALLET=OFF -DWITH_EMBEDDED_ASMAP=OFF \
  -DBUILD_TESTS=OFF -DBUILD_BENCH=OFF -DBUILD_GUI=OFF -DWITH_ZMQ=OFF -DENABLE_IPC=OFF \
  -DBUILD_FUZZ_BINARY=OFF -DBUILD_UTIL=OFF -DBUILD_TX=OFF -DBUILD_WALLET_TOOL=OFF \
  -DBUILD_KERNEL_LIB=OFF -DBUILD_UTIL_CHAINSTATE=OFF >&2
log "compiling bitcoind and bitcoin-cli with $jobs jobs (about 6 minutes on 2 cores)"
cmake --build "$build" -j "$jobs" --target bitcoind bitcoin-cli >&2

tmp="$out.tmp.$$"
mkdir -p "$tmp"
cp "$build/bin/bitcoind" "$build/bin/bitcoin-cli" "$tmp/"
strip "$tmp/bitcoind" "$tmp/bitcoin-cli" 2>/dev/null || true
rm -rf "$out"
mv "$tmp" "$out"
rm -rf "$build"
log "cached in $out"
printf '%s\n' "$out/bitcoind"
