#!/usr/bin/env bash
# Builds the Debian package of Sendero with dpkg-deb (no extra tool): senderod and sendero-cli in
# /usr/bin, the hardened systemd unit, /etc/sendero/config.toml (a conffile: config.example.toml,
# every option with its default), a `sendero` system user made by systemd-sysusers at install,
# sendero-cli's bash/zsh/fish completions and man page generated from its clap definition.
#
#   scripts/deb.sh                        release build, package in ./target-deb/
#   scripts/deb.sh --bin-dir DIR --out D  package binaries already built in DIR (the test's way)
#
# Installing it creates the user and /var/lib/sendero (0700); it neither enables nor starts the
# service (write /etc/sendero/config.toml first, then `systemctl enable --now senderod`). Purging
# it never deletes /var/lib/sendero: it holds the wallet.
set -euo pipefail
log() { printf 'deb: %s\n' "$*" >&2; }

# Paths given are the caller's; the default output is the repository's target-deb/.
bin_dir="" out="$(dirname "$0")/../target-deb"
while [ $# -gt 0 ]; do
  case "$1" in
    --bin-dir) bin_dir="$(realpath -m "$2")"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    *) log "unknown argument $1"; exit 2 ;;
  esac
done
out="$(realpath -m "$out")"
cd "$(dirname "$0")/.."
if [ -z "$bin_dir" ]; then
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/sendero/target}"
  log "cargo build --release (senderod, sendero-cli)"
  cargo build --release --locked -p sendero --bins
  bin_dir="$CARGO_TARGET_DIR/release"
fi
for b in senderod sendero-cli; do
  [ -x "$bin_dir/$b" ] || { log "$bin_dir/$b is missing"; exit 1; }
done

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
arch=$(dpkg --print-architecture)
stage=$(mktemp -d "${TMPDIR:-/tmp}/sendero-deb.XXXXXX")
trap 'rm -rf "$stage"' EXIT
root="$stage/sendero_${version}_${arch}"

install -D -m 0755 "$bin_dir/senderod" "$root/usr/bin/senderod"
install -D -m 0755 "$bin_dir/sendero-cli" "$root/usr/bin/sendero-cli"
strip --strip-debug "$root/usr/bin/senderod" "$root/usr/bin/sendero-cli" 2>/dev/null || true
# The unit as shipped, pointed at the package's paths.
install -d "$root/lib/systemd/system"
sed -e 's|^ExecStart=.*|ExecStart=/usr/bin/senderod --config /etc/sendero/config.toml --datadir /var/lib/sendero|' \
  -e '/^#   /d' systemd/senderod.service >"$root/lib/systemd/system/senderod.service"
install -D -m 0640 config.example.toml "$root/etc/sendero/config.toml"
install -D -m 0644 /dev/stdin "$root/usr/lib/sysusers.d/sendero.conf" <<'EOF'
# The user senderod runs as (systemd-sysusers(8)); its data directory is /var/lib/sendero.
u sendero - "Sendero payment gateway" /var/lib/sendero /usr/sbin/nologin
EOF
cli="$root/usr/bin/sendero-cli"
install -d "$root/usr/share/bash-completion/completions" "$root/usr/share/zsh/vendor-completions" \
  "$root/usr/share/fish/vendor_completions.d" "$root/usr/share/man/man1" "$root/usr/share/doc/sendero"
"$cli" completions bash >"$root/usr/share/bash-completion/completions/sendero-cli"
"$cli" completions zsh >"$root/usr/share/zsh/vendor-completions/_sendero-cli"
"$cli" completions fish >"$root/usr/share/fish/vendor_completions.d/sendero-cli.fish"
"$cli" manpage | gzip -9n >"$root/usr/share/man/man1/sendero-cli.1.gz"
gzip -9n <README.md >"$root/usr/share/doc/sendero/README.md.gz"
install -m 0644 openapi.json "$root/usr/share/doc/sendero/openapi.json"

install -d "$root/DEBIAN"
echo /etc/sendero/config.toml >"$root/DEBIAN/conffiles"
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
cat >"$root/DEBIAN/control" <<EOF
Package: sendero
Version: $version
Architecture: $arch
Maintainer: Sendero maintainers <maintainers@sendero.invalid>
Installed-Size: $size
Depends: libc6 (>= 2.36), systemd | systemd-sysusers
Recommends: bitcoind
Section: net
Priority: optional
Homepage: https://github.com/sendero/sendero
Description: self-hosted Bitcoin/Lightning payment gateway
 senderod runs beside your own bitcoind: an on-chain treasury (BDK) and a
 Lightning node (ldk-node) behind a local HTTP API for wallet apps and
 merchants, and an admin RPC with the sendero-cli client for operators.
EOF
# Maintainer scripts honour DPKG_ROOT (dpkg --root with --force-script-chrootless).
cat >"$root/DEBIAN/postinst" <<'EOF'
#!/bin/sh
set -e
if [ "$1" = configure ]; then
  systemd-sysusers ${DPKG_ROOT:+--root="$DPKG_ROOT"} sendero.conf
  # Numeric ids from the root's own files: under dpkg --root the host does not know the user.
  uid=$(sed -n 's/^sendero:[^:]*:\([0-9]*\):.*/\1/p' "$DPKG_ROOT/etc/passwd")
  gid=$(sed -n 's/^sendero:[^:]*:\([0-9]*\):.*/\1/p' "$DPKG_ROOT/etc/group")
  install -d -m 0700 -o "$uid" -g "$gid" "$DPKG_ROOT/var/lib/sendero"
  chgrp "$gid" "$DPKG_ROOT/etc/sendero/config.toml"
  chmod 0640 "$DPKG_ROOT/etc/sendero/config.toml"
  if [ -z "$DPKG_ROOT" ] && [ -d /run/systemd/system ]; then
    systemctl daemon-reload || true
  fi
  echo "sendero: edit /etc/sendero/config.toml, then: systemctl enable --now senderod" >&2
fi
EOF
cat >"$root/DEBIAN/postrm" <<'EOF'
#!/bin/sh
set -e
if [ "$1" = purge ]; then
  echo "sendero: /var/lib/sendero (the wallet, its mnemonic, the channels) is kept; remove it yourself once its funds are moved" >&2
fi
if [ -z "$DPKG_ROOT" ] && [ -d /run/systemd/system ]; then
  systemctl daemon-reload || true
fi
EOF
chmod 0755 "$root/DEBIAN/postinst" "$root/DEBIAN/postrm"

mkdir -p "$out"
deb="$out/sendero_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
log "built $deb ($(du -h "$deb" | cut -f1))"
echo "$deb"
