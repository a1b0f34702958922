#!/usr/bin/env bash
# imgbuild as a Debian package: builds into build-deb/ (without libguestfs, whose library alone pulls
# QEMU and a hundred packages into Depends: qcow2/LVM/btrfs/xfs bases then need a build of your own)
# and runs `cpack -G DEB`, which installs the binary, the man page (help2man), bash completion,
# copyright and changelog, and computes Depends with dpkg-shlibdeps.
#
#   ci/package.sh [--out DIR]      (default dist-deb; leaves DIR/imgbuild_<version>_<arch>.deb)
#
# The version is the binary's (git describe); the files are dated SOURCE_DATE_EPOCH, else HEAD's
# commit time. Uses ccache when it is installed.
set -euo pipefail
umask 022
out=dist-deb
while [ $# -gt 0 ]; do
  case $1 in
    --out) out=$2; shift 2 ;;
    --out=*) out=${1#--out=}; shift ;;
    *) echo "usage: ci/package.sh [--out DIR]" >&2; exit 2 ;;
  esac
done
out=$(realpath -m "$out")
cd "$(dirname "$0")/.."
source ci/deps.sh
imgbuild_install_deps "${IMGBUILD_BUILD_DEPS[@]}" help2man dpkg-dev file

if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
  SOURCE_DATE_EPOCH=$(git log -1 --format=%ct HEAD 2> /dev/null || date +%s)
fi
export SOURCE_DATE_EPOCH

build=${IMGBUILD_PACKAGE_BUILD_DIR:-build-deb}
launcher=()
if command -v ccache > /dev/null; then
  # Paths relative to the checkout and no cwd in the hash: build/ and build-deb/ share their entries.
  export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$PWD} CCACHE_NOHASHDIR=1
  launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
fi
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DIMGBUILD_WERROR=ON -DIMGBUILD_TESTS=OFF \
  -DIMGBUILD_GUESTFS=OFF "${launcher[@]}" > /dev/null
cmake --build "$build" -j "$(nproc)"
rm -f "$build"/imgbuild_*.deb
(cd "$build" && cpack -G DEB > cpack.log 2>&1) || { cat "$build/cpack.log" >&2; exit 1; }
deb=$(ls "$build"/imgbuild_*.deb)
mkdir -p "$out"
cp "$deb" "$out/"
echo "package: $out/$(basename "$deb")"
dpkg-deb -f "$deb" Version Depends | sed 's/^/  /'
