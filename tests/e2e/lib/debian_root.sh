# shellcheck shell=bash
# Sourced by the QEMU boot tests: a Debian 12 (bookworm) amd64 root made natively by debootstrap
# (variant minbase, no emulation), packed as a rootfs tarball imgbuild takes as `base: {tarball: ...}`,
# and cached between runs.
#
#   . "$HERE/lib/debian_root.sh"
#   TARBALL=$(debian_root_tarball KEY PACKAGE...) || exit $?
#
# debian_root_tarball prints the path of the cached tarball, $DEBIAN_ROOT_CACHE/KEY/root.tar, building
# it first when it is missing; progress goes to stderr. PACKAGEs are given to debootstrap --include:
# their dependencies come along, but debootstrap cannot choose a provider for a virtual package, so
# list it too (python3-cffi-backend for python3-cryptography's python3-cffi-backend-api-*). KEY names
# the cache entry: use a new KEY whenever the PACKAGE list (or anything else that changes the root)
# changes, as nothing checks that an entry matches its list.
# When a linux-image-* package is listed, the root must end up with /boot/vmlinuz-* and
# /boot/initrd.img-* (update-initramfs is run when the packages' order left no initrd).
# The tarball keeps numeric owners, xattrs and ACLs, and holds no .debs from apt's cache.
#
# Exit status: 0 with the path printed; 77 (the tests' "skipped") without root, when debootstrap
# cannot be installed, or when the mirror cannot be reached; 1 on any other failure (log on stderr).
# It runs in a subshell of its own: its exits and traps never touch the caller's.
#
# debian_root_path KEY prints where that tarball is (or would be) without building anything.
#
# DEBIAN_ROOT_CACHE defaults to ${IMGBUILD_BOOT_CACHE:-/var/tmp/imgbuild-boot-root}. The mirror is
# the first non-security one this machine's apt is configured with.

DEBIAN_ROOT_CACHE=${DEBIAN_ROOT_CACHE:-${IMGBUILD_BOOT_CACHE:-/var/tmp/imgbuild-boot-root}}

debian_root_path() {
  echo "$DEBIAN_ROOT_CACHE/$1/root.tar"
}

debian_root_tarball() (
  set -euo pipefail
  [ $# -ge 1 ] || { echo "usage: debian_root_tarball KEY PACKAGE..." >&2; exit 1; }
  local key=$1
  shift
  local tarball
  tarball=$(debian_root_path "$key")
  # Tests that share a KEY may run at once (ctest -j): one builds the root, the others wait for it.
  mkdir -p "$(dirname "$tarball")"
  exec 9> "$(dirname "$tarball")/.lock"
  flock 9
  if [ -s "$tarball" ]; then
    echo "root: cached $tarball ($(du -h "$tarball" | cut -f1))" >&2
    echo "$tarball"
    exit 0
  fi
  [ "$(id -u)" = 0 ] || { echo "SKIP: needs root (debootstrap, chroot)" >&2; exit 77; }
  if ! command -v debootstrap > /dev/null; then
    echo "installing: debootstrap" >&2
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap > /dev/null; } >&2; then
      echo "SKIP: could not install debootstrap (no network to the Debian mirror?)" >&2
      exit 77
    fi
  fi

  # The first deb URI apt is configured with (as ci/sample-base.sh finds it).
  local mirror
  mirror=$(grep -hoE '^URIs:\s*\S+' /etc/apt/sources.list.d/*.sources 2> /dev/null | awk '{print $2}' | grep -v security | head -n1 || true)
  if [ -z "$mirror" ]; then
    mirror=$(grep -hoE '^deb\s+(\[[^]]*\]\s+)?\S+' /etc/apt/sources.list 2> /dev/null | awk '{print $NF}' | grep -v security | head -n1 || true)
  fi
  [ -n "$mirror" ] || { echo "FAIL - no Debian mirror in /etc/apt/sources.list*" >&2; exit 1; }

  # Built next to the cache entry, so a half-made root never sits in a temporary folder of the caller's.
  local dir
  dir=$(dirname "$tarball")
  mkdir -p "$dir"
  local w
  w=$(mktemp -d "$dir/build.XXXXXX")
  local R=$w/root
  # A debootstrap interrupted half-way may leave its /proc mounted.
  cleanup_root() {
    local m
    for m in "$R/proc" "$R/sys" "$R/dev/pts"; do
      if mountpoint -q "$m" 2> /dev/null; then umount -l "$m" || true; fi
    done
    rm -rf "$w"
  }
  trap cleanup_root EXIT

  local include
  include=$(IFS=,; echo "$*")
  echo "root: debootstrap bookworm amd64 from $mirror${include:+ with $include}" >&2
  local t0
  t0=$(date +%s)
  if ! debootstrap --arch=amd64 --variant=minbase ${include:+--include="$include"} \
    bookworm "$R" "$mirror" > "$w/debootstrap.log" 2>&1; then
    tail -n 30 "$w/debootstrap.log" >&2
    # A package that failed to configure is only named in the root's own log.
    if [ -s "$R/debootstrap/debootstrap.log" ]; then
      echo "--- last 30 lines of the root's debootstrap/debootstrap.log ---" >&2
      tail -n 30 "$R/debootstrap/debootstrap.log" >&2
    fi
    if grep -qE "Couldn't download|Failed getting release|Failed getting release signature|Couldn't retrieve|Temporary failure resolving|Could not resolve|Connection (refused|timed out)|Network is unreachable" "$w/debootstrap.log"; then
      echo "SKIP: debootstrap could not download from $mirror" >&2
      exit 77
    fi
    echo "FAIL - debootstrap failed (log above)" >&2
    exit 1
  fi
  if [[ ",$include," == *,linux-image-* ]]; then
    # The kernel's postinst makes the initramfs when initramfs-tools is already configured; when the
    # packages were configured the other way round, make it now.
    if ! ls "$R"/boot/initrd.img-* > /dev/null 2>&1; then
      echo "root: no initramfs after debootstrap; running update-initramfs" >&2
      mount -t proc proc "$R/proc"
      if ! chroot "$R" update-initramfs -c -k all > "$w/initramfs.log" 2>&1; then
        tail -n 30 "$w/initramfs.log" >&2
        echo "FAIL - update-initramfs failed" >&2
        exit 1
      fi
      umount "$R/proc"
    fi
    ls "$R"/boot/vmlinuz-* > /dev/null 2>&1 || { echo "FAIL - debootstrap left no /boot/vmlinuz-*" >&2; exit 1; }
    ls "$R"/boot/initrd.img-* > /dev/null 2>&1 || { echo "FAIL - no /boot/initrd.img-* in the root" >&2; exit 1; }
  fi
  # Leave nothing of the build host in the root: apt's package cache and debootstrap's own log.
  rm -rf "$R"/var/cache/apt/archives/*.deb "$R"/debootstrap
  tar --numeric-owner --xattrs --xattrs-include='*' --acls --sort=name --format=posix \
    --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
    -C "$R" -cf "$w/root.tar" .
  mv "$w/root.tar" "$tarball"
  echo "root: $tarball ($(du -h "$tarball" | cut -f1)) in $(($(date +%s) - t0))s" >&2
  echo "$tarball"
)
