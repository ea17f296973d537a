#!/bin/sh
# Builds a busybox image and root filesystem from the host's /bin/busybox (Debian's
# busybox-static), with no registry and no network: the same image the tests build.
#
#   scripts/busybox-image.sh [DIR]     # default: the current directory
#
# writes DIR/rootfs/ (for `berth run --rootfs DIR/rootfs ...`) and DIR/busybox.tar, a
# `docker save` archive tagged busybox:latest (`berth images import DIR/busybox.tar` names
# it docker.io/library/busybox:latest). Needs tar and sha256sum; run as root so the files
# belong to root, as an image's do.
set -eu
out=${1:-.}
busybox=${BUSYBOX:-/bin/busybox}
if [ ! -x "$busybox" ]; then
  echo "busybox-image: $busybox is missing: apt-get install busybox-static" >&2
  exit 1
fi
if ! "$busybox" --list >/dev/null 2>&1; then
  echo "busybox-image: $busybox does not list its applets (is it busybox-static?)" >&2
  exit 1
fi
mkdir -p "$out"
out=$(cd "$out" && pwd)
rootfs=$out/rootfs
if [ -e "$rootfs" ]; then
  echo "busybox-image: $rootfs exists; remove it first" >&2
  exit 1
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The root filesystem: busybox, a link per applet, and the few files a shell expects.
mkdir -p "$rootfs/bin" "$rootfs/etc" "$rootfs/tmp" "$rootfs/root" "$rootfs/proc" \
  "$rootfs/sys" "$rootfs/dev"
cp "$busybox" "$rootfs/bin/busybox"
for applet in $("$busybox" --list); do
  [ "$applet" = busybox ] || ln -sf busybox "$rootfs/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$rootfs/etc/passwd"
printf 'root:x:0:\n' >"$rootfs/etc/group"
chmod 1777 "$rootfs/tmp"
chmod 700 "$rootfs/root"

# One layer: the root filesystem as a tar, entries sorted and owned by root, so the same
# busybox gives the same digests.
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 \
  -C "$rootfs" -cf "$work/layer.tar" .
layer=$(sha256sum "$work/layer.tar" | cut -d' ' -f1)
mkdir "$work/$layer"
mv "$work/layer.tar" "$work/$layer/layer.tar"
printf '1.0' >"$work/$layer/VERSION"

arch=$(uname -m)
case $arch in
  x86_64) arch=amd64 ;;
  aarch64) arch=arm64 ;;
esac
printf '{"architecture":"%s","os":"linux","config":{"Cmd":["sh"],"Env":["PATH=/usr/sbin:/usr/bin:/sbin:/bin"]},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
  "$arch" "$layer" >"$work/config.json"
config=$(sha256sum "$work/config.json" | cut -d' ' -f1)
mv "$work/config.json" "$work/$config.json"
printf '[{"Config":"%s.json","RepoTags":["busybox:latest"],"Layers":["%s/layer.tar"]}]' \
  "$config" "$layer" >"$work/manifest.json"
printf '{"busybox":{"latest":"%s"}}' "$config" >"$work/repositories"

tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 \
  -C "$work" -cf "$out/busybox.tar.tmp" manifest.json repositories "$config.json" "$layer"
mv "$out/busybox.tar.tmp" "$out/busybox.tar"
echo "busybox-image: wrote $out/busybox.tar (busybox:latest) and $rootfs/"
