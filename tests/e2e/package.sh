#!/usr/bin/env bash
# End-to-end: imgbuild as a Debian package. ci/package.sh builds imgbuild_<version>_<arch>.deb (into
# build-deb/, shared with ccache); lintian finds no error in it; its Depends come from dpkg-shlibdeps
# (the libraries the binary links, no libguestfs); it holds the binary, the man page, bash completion,
# copyright and changelog. Then it is installed with dpkg into a fresh Debian 12 root (the
# debootstrapped root the boot tests cache, unpacked here; its missing dependencies are taken from
# the host's apt cache, or downloaded from the Debian mirror), and inside that root (chroot)
# `imgbuild --version` prints the package's version and a small recipe builds a tarball that bsdtar
# reads back.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$HERE/lib/common.sh"
. "$HERE/lib/debian_root.sh"
e2e_args "$@"
need_root "chroot and dpkg --install into a root"
need_tools cmake cpack dpkg-deb dpkg-shlibdeps lintian help2man chroot bsdtar git
REPO=$(cd "$HERE/../.." && pwd)
fail() { echo "FAIL - $*" >&2; exit 1; }

W=$(mktemp -d /tmp/imgbuild-e2e-package.XXXXXX)
trap 'rm -rf "$W"' EXIT

# 1. The package.
t0=$(date +%s)
bash "$REPO/ci/package.sh" --out "$W/deb" > "$W/package.log" 2>&1 || { tail -n 30 "$W/package.log" >&2; fail "ci/package.sh failed"; }
deb=$(ls "$W"/deb/imgbuild_*.deb)
version=$(dpkg-deb -f "$deb" Version)
arch=$(dpkg --print-architecture)
[ "$(basename "$deb")" = "imgbuild_${version}_$arch.deb" ] || fail "package file name $(basename "$deb")"
echo "ok: $(basename "$deb") in $(($(date +%s) - t0)) s"
lintian --tag-display-limit 0 "$deb" > "$W/lintian.log" 2>&1 || true
if grep -q '^E: ' "$W/lintian.log"; then cat "$W/lintian.log" >&2; fail "lintian reports errors"; fi
echo "ok: lintian: no errors ($(grep -c '^W: ' "$W/lintian.log" || true) warnings)"
depends=$(dpkg-deb -f "$deb" Depends)
for lib in libarchive13 libyaml-cpp0.7 libext2fs2 libcurl4 libzstd1 liblzma5 libssl3 libc6; do
  [[ ", $depends," == *", $lib "* ]] || fail "Depends lacks $lib: $depends"
done
[[ $depends != *guestfs* ]] || fail "Depends names libguestfs: $depends"
echo "ok: Depends: $depends"
dpkg-deb -c "$deb" | awk '{print $NF}' > "$W/contents"
for f in ./usr/bin/imgbuild ./usr/share/man/man1/imgbuild.1.gz ./usr/share/bash-completion/completions/imgbuild \
  ./usr/share/doc/imgbuild/copyright ./usr/share/doc/imgbuild/changelog.gz; do
  grep -qxF "$f" "$W/contents" || fail "the package lacks $f"
done
dpkg-deb --fsys-tarfile "$deb" | tar -xOf - ./usr/share/man/man1/imgbuild.1.gz | gzip -dc | grep -q 'fB\\-\\-manifest' ||
  fail "the man page does not describe --manifest"
echo "ok: binary, man page (from --help), bash completion, copyright, changelog"

# 2. A fresh Debian 12 root (the boot tests' cached root, without its kernel and modules).
tarball=$(debian_root_tarball bookworm-amd64-minbase-kernel-v1 linux-image-amd64 systemd-sysv openssh-server udev kmod initramfs-tools) ||
  exit $?
R=$W/root
mkdir "$R"
tar --numeric-owner -xf "$tarball" -C "$R" --exclude=./usr/lib/modules --exclude=./boot --exclude=./usr/lib/firmware
admin=$R/var/lib/dpkg
installed() { dpkg-query --admindir="$admin" -W -f='${Status}' "$1" 2> /dev/null | grep -q 'install ok installed'; }
# A .deb of PACKAGE (dpkg checks the versions Depends asks for): the newest in apt's cache, else the
# candidate downloaded from the mirror.
deb_for() {
  local f
  f=$(ls /var/cache/apt/archives/"$1"_*_{"$arch",all}.deb 2> /dev/null | sort -V | tail -n1)
  [ -n "$f" ] && { echo "$f"; return 0; }
  (cd "$W/debs" && apt-get download -qq "$1" > /dev/null 2>&1) || return 1
  ls "$W"/debs/"$1"_*.deb
}
mkdir -p "$W/debs"
queue=$(dpkg-deb -f "$deb" Depends)
wanted=()
declare -A seen
while [ -n "$queue" ]; do
  next=""
  IFS=, read -ra items <<< "$queue"
  for item in "${items[@]}"; do
    name=$(sed -E 's/\|.*//; s/\(.*\)//; s/:any//; s/[[:space:]]//g' <<< "$item") # first alternative
    [ -n "$name" ] && [ -z "${seen[$name]:-}" ] || continue
    seen[$name]=1
    installed "$name" && continue
    f=$(deb_for "$name") || fail "no .deb for the dependency $name (not in apt's cache, no download)"
    wanted+=("$f")
    next+="$(dpkg-deb -f "$f" Depends Pre-Depends | sed -E 's/^(Pre-)?Depends: //' | paste -sd,),"
  done
  queue=${next%,}
done
echo "ok: fresh root from $(basename "$(dirname "$tarball")"); ${#wanted[@]} dependencies to add: $(for f in "${wanted[@]}"; do basename "$f" | cut -d_ -f1; done | paste -sd' ')"
mkdir -p "$R/tmp/debs"
cp "${wanted[@]}" "$deb" "$R/tmp/debs/"
chroot "$R" sh -c 'dpkg -i /tmp/debs/*.deb' > "$W/dpkg.log" 2>&1 || { tail -n 30 "$W/dpkg.log" >&2; fail "dpkg -i in the root failed"; }
chroot "$R" dpkg-query -W -f='${Status} ${Version}\n' imgbuild | grep -qx "install ok installed $version" ||
  fail "dpkg in the root does not list imgbuild $version as installed"

# 3. Run it there.
got=$(chroot "$R" imgbuild --version)
[ "$got" = "imgbuild $version" ] || fail "imgbuild --version in the root printed '$got', the package is $version"
mkdir -p "$R/tmp/t/base/etc"
printf 'root:x:0:0:root:/root:/bin/sh\n' > "$R/tmp/t/base/etc/passwd"
printf 'root:x:0:\n' > "$R/tmp/t/base/etc/group"
cat > "$R/tmp/t/recipe.yaml" << 'EOF'
base: {dir: base}
steps:
  - files: {content: "built inside a fresh root\n", dest: /etc/motd}
  - hostname: {name: packaged}
outputs:
  - tar: {path: rootfs.tar.zst}
EOF
chroot "$R" env SOURCE_DATE_EPOCH=1700000000 imgbuild /tmp/t/recipe.yaml --out /tmp/t/out > "$W/run.log" 2>&1 ||
  { cat "$W/run.log" >&2; fail "imgbuild failed in the root"; }
[ "$(bsdtar -xOf "$R/tmp/t/out/rootfs.tar.zst" ./etc/motd)" = "built inside a fresh root" ] || fail "etc/motd in the tarball"
[ "$(bsdtar -xOf "$R/tmp/t/out/rootfs.tar.zst" ./etc/hostname)" = packaged ] || fail "etc/hostname in the tarball"
bash -n "$R/usr/share/bash-completion/completions/imgbuild" || fail "the bash completion does not parse"
echo "ok: installed in a fresh Debian 12 root: '$got', and a recipe built there"
