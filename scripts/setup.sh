#!/usr/bin/env bash
# Prepares a fresh Debian machine for Sendero: the packages needed to build bitcoind (and the
# Rust crates' C parts; systemd for the package test's systemd-analyze and systemd-sysusers;
# chromium and a font for the dashboard test's headless screenshot; nats-server for the events
# test; postgresql for the PostgreSQL store's tests),
# then the cached regtest bitcoind itself. Safe to run again: it only does what is missing.
# Prints the bitcoind path on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(cmake g++ make pkg-config libboost-dev libevent-dev python3 systemd chromium fonts-dejavu-core nats-server postgresql)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup.sh: installing ${missing[*]}" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >&2
fi

command -v cargo >/dev/null || { echo "setup.sh: cargo not found; install Rust (rustup) first" >&2; exit 1; }
scripts/bitcoind.sh
