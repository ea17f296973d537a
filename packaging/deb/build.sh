#!/usr/bin/env bash
# Builds berth's Debian package with dpkg-deb (Debian's own tool) from what `make
# install-files` installs: binaries, completions, man pages and the systemd units, under
# /usr and /lib/systemd/system. The package depends on runc and enables berthd.socket.
# Usage: packaging/deb/build.sh OUT_DIR [PROFILE] [TARGET_DIR]; DEB_COMPRESSION (xz by
# default; the tests use none) is dpkg-deb's -Z.
set -euo pipefail
out=$(realpath "$1")
profile=${2:-release}
root=$(cd "$(dirname "$0")/../.." && pwd)
target=${3:-${CARGO_TARGET_DIR:-$root/target}}
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/Cargo.toml" | head -n1)
arch=$(dpkg --print-architecture)
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
make -s -C "$root" install-files PROFILE="$profile" TARGET_DIR="$target" DESTDIR="$stage" \
  PREFIX=/usr UNITDIR=/lib/systemd/system
install -d "$stage/DEBIAN"
cat > "$stage/DEBIAN/control" <<CONTROL
Package: berth
Version: $version
Architecture: $arch
Maintainer: berth developers <berth@localhost>
Depends: runc
Recommends: busybox-static
Section: admin
Priority: optional
Description: container daemon for single-host development machines
 berthd keeps containers as metadata in SQLite, runs their tasks with runc and serves
 JSON-RPC 2.0 on a unix socket; berth is its command-line client.
CONTROL
# Maintainer scripts: only with systemd running and not into another root (DPKG_ROOT).
cat > "$stage/DEBIAN/postinst" <<'SCRIPT'
#!/bin/sh
set -e
if [ -z "$DPKG_ROOT" ] && [ -d /run/systemd/system ]; then
    systemctl daemon-reload
    systemctl enable --now berthd.socket
fi
SCRIPT
cat > "$stage/DEBIAN/prerm" <<'SCRIPT'
#!/bin/sh
set -e
if [ -z "$DPKG_ROOT" ] && [ -d /run/systemd/system ] && [ "$1" = remove ]; then
    systemctl disable --now berthd.socket berthd.service || true
fi
SCRIPT
cat > "$stage/DEBIAN/postrm" <<'SCRIPT'
#!/bin/sh
set -e
if [ -z "$DPKG_ROOT" ] && [ -d /run/systemd/system ]; then
    systemctl daemon-reload || true
fi
SCRIPT
chmod 0755 "$stage/DEBIAN/postinst" "$stage/DEBIAN/prerm" "$stage/DEBIAN/postrm"
mkdir -p "$out"
deb="$out/berth_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Z"${DEB_COMPRESSION:-xz}" --build "$stage" "$deb" >/dev/null
echo "$deb"
