#!/usr/bin/env bash
# Builds the sample base the README's quick start uses: a Debian 12 (bookworm) arm64 root filesystem
# made by `debootstrap --foreign --variant=minbase` (first stage only: packages unpacked, not configured,
# as for a board that finishes the job at first boot), packed as a zstd rootfs tarball.
#
# It is a sample, not a bootable image: it shows the pipeline on real Debian files (owners, modes,
# setuid binaries, hardlinks, symlinks, device nodes) without downloading anything but Debian packages.
# The mirror is the one this machine's apt already uses.
#
# usage: ci/sample-base.sh [OUTPUT.tar.zst]   (default build/sample/debian-bookworm-arm64.tar.zst)
set -euo pipefail

out=${1:-build/sample/debian-bookworm-arm64.tar.zst}
if [ -s "$out" ]; then
  echo "sample base: $out already there"
  exit 0
fi

# The first deb URI apt is configured with, from deb822 .sources files or the classic sources.list.
mirror=$(grep -hoE '^URIs:\s*\S+' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' | grep -v security | head -n1 || true)
if [ -z "$mirror" ]; then
  mirror=$(grep -hoE '^deb\s+(\[[^]]*\]\s+)?\S+' /etc/apt/sources.list 2>/dev/null | awk '{print $NF}' | grep -v security | head -n1 || true)
fi
[ -n "$mirror" ] || { echo "sample-base: no Debian mirror in /etc/apt/sources.list*" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/imgbuild-sample.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$(dirname "$out")"

run() { if [ "$(id -u)" = 0 ]; then "$@"; else fakeroot -i "$work/state" -s "$work/state" "$@"; fi; }
touch "$work/state"
echo "sample base: debootstrap --foreign arm64 bookworm from $mirror"
run debootstrap --foreign --arch=arm64 --variant=minbase bookworm "$work/root" "$mirror" > "$work/debootstrap.log" 2>&1 \
  || { tail -n 20 "$work/debootstrap.log" >&2; exit 1; }
# A numeric-owner pax tarball, sorted, as any rootfs tarball from the field would be.
run tar --numeric-owner --xattrs --xattrs-include='*' --sort=name --format=posix \
  --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
  -C "$work/root" -cf - . | zstd -q -T0 -6 -o "$out.tmp"
mv "$out.tmp" "$out"
echo "sample base: $out ($(du -h "$out" | cut -f1))"
