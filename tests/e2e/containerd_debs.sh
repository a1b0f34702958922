#!/usr/bin/env bash
# End-to-end: the `containerd` step with Debian's own arm64 containerd and runc packages.
#
# Downloads containerd:arm64 and runc:arm64 with apt-get (adding the arm64 architecture to dpkg first if
# it is missing: needs root), builds a small arm64 base (dpkg status saying base-files is arm64, /bin/sh
# an arm64 ELF header, merged /usr), runs imgbuild with a `tar` output and checks with bsdtar that the
# binaries, the package's unit, its enable link and config.toml are in the tarball. Then a runc package
# of the host's own architecture (when that is not arm64) must be refused with exit 1.
#
# usage: bash tests/e2e/containerd_debs.sh path/to/imgbuild      (exit 77: skipped, with the reason)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib/common.sh
. "$HERE/lib/common.sh"
e2e_args "$@"
need_tools apt-get dpkg bsdtar tar od

export LC_ALL=C.UTF-8
W=$(mktemp -d /tmp/imgbuild-e2e-containerd.XXXXXX)
trap 'rm -rf "$W"' EXIT
chmod 755 "$W" # apt's _apt user writes the downloads

# shellcheck source=lib/report.sh
. "$HERE/lib/report.sh"

# ---------------------------------------------------------------------------------------------
# The packages.
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  if [ "$(id -u)" != 0 ]; then
    echo "SKIP: dpkg has no arm64 architecture and adding it needs root"
    exit 77
  fi
  dpkg --add-architecture arm64
  apt-get update -qq > "$W/apt.log" 2>&1 || { echo "SKIP: apt-get update failed after adding arm64"; exit 77; }
fi
download() { (cd "$W/debs" && apt-get download "$@") >> "$W/apt.log" 2>&1; }
mkdir -p "$W/debs" && chmod 777 "$W/debs"
if ! download containerd:arm64 runc:arm64; then
  # The architecture may have been added without the lists being fetched for it.
  if [ "$(id -u)" = 0 ] && apt-get update -qq >> "$W/apt.log" 2>&1 && download containerd:arm64 runc:arm64; then
    :
  else
    echo "SKIP: apt-get download containerd:arm64 runc:arm64 failed: $(tail -n1 "$W/apt.log")"
    exit 77
  fi
fi
CONTAINERD_DEB=$(ls "$W"/debs/containerd_*_arm64.deb)
RUNC_DEB=$(ls "$W"/debs/runc_*_arm64.deb)
echo "packages: $(basename "$CONTAINERD_DEB"), $(basename "$RUNC_DEB")"

# ---------------------------------------------------------------------------------------------
# A small arm64 base: merged /usr, dpkg status, /bin/sh with an arm64 ELF header (e_machine 0xB7).
B=$W/base
mkdir -p "$B"/usr/bin "$B"/usr/lib/systemd/system "$B"/usr/local/bin "$B"/etc/systemd/system "$B"/var/lib/dpkg
ln -s usr/bin "$B/bin"
ln -s usr/lib "$B/lib"
ln -s usr/sbin "$B/sbin"
mkdir -p "$B/usr/sbin"
{
  printf '\177ELF\002\001\001\000\000\000\000\000\000\000\000\000\002\000\267\000\001\000\000\000'
  head -c 40 /dev/zero
} > "$B/usr/bin/dash"
chmod 755 "$B/usr/bin/dash"
ln -s dash "$B/usr/bin/sh"
printf 'Package: base-files\nStatus: install ok installed\nEssential: yes\nArchitecture: arm64\nVersion: 12.4\n\n' \
  > "$B/var/lib/dpkg/status"
tar -C "$B" -cf "$W/base.tar" .

cat > "$W/recipe.yaml" << EOF
base: {tarball: base.tar}
steps:
  - containerd:
      containerd: debs/$(basename "$CONTAINERD_DEB")
      runc: debs/$(basename "$RUNC_DEB")
outputs:
  - tar: {path: out.tar}
EOF
if ! "$IMGBUILD" --out "$W/out" "$W/recipe.yaml" > "$W/build.log" 2>&1; then
  echo "FAIL - imgbuild failed:" >&2
  sed 's/^/       /' "$W/build.log" >&2
  exit 1
fi
ok "build with the arm64 containerd and runc packages"
OUT=$W/out/out.tar
bsdtar -tvf "$OUT" > "$W/listing.txt"

member() { # member LABEL REGEX: some line of `bsdtar -tv` matches
  if grep -qE "$2" "$W/listing.txt"; then ok "$1"; else fail "$1: no member matches '$2'"; fi
}
member "/usr/bin/containerd is an executable file" '^-rwxr-xr-x .* \./usr/bin/containerd$'
member "/usr/sbin/runc is an executable file" '^-rwxr-xr-x .* \./usr/sbin/runc$'
member "the package's containerd.service is in /usr/lib/systemd/system (through the /lib link)" \
  '^-rw-r--r-- .* \./usr/lib/systemd/system/containerd\.service$'
member "/lib is still a link to usr/lib" '^l.* \./lib -> usr/lib$'
member "containerd.service is enabled" \
  '^l.* \./etc/systemd/system/multi-user\.target\.wants/containerd\.service -> /(usr/)?lib/systemd/system/containerd\.service$'
member "/etc/containerd/config.toml is there" '^-rw-r--r-- .* \./etc/containerd/config\.toml$'

bsdtar -xOf "$OUT" ./etc/containerd/config.toml > "$W/config.toml"
if grep -qx '  *SystemdCgroup = true' "$W/config.toml" && grep -qx 'version = 2' "$W/config.toml"; then
  ok "config.toml has version = 2 (containerd 1.x) and SystemdCgroup = true"
else
  fail "config.toml lacks version = 2 or SystemdCgroup = true:"
  sed 's/^/       /' "$W/config.toml" >&2
fi
mkdir -p "$W/x" && bsdtar -xf "$OUT" -C "$W/x" ./usr/bin/containerd
machine=$(od -An -tx1 -j18 -N2 "$W/x/usr/bin/containerd" | tr -d ' \n')
[ "$machine" = b700 ] && ok "/usr/bin/containerd in the output is an aarch64 ELF" ||
  fail "/usr/bin/containerd in the output has e_machine bytes '$machine', want b700 (aarch64)"

# ---------------------------------------------------------------------------------------------
# A runc of the host's own architecture is refused.
NATIVE=$(dpkg --print-architecture)
if [ "$NATIVE" != arm64 ] && download "runc:$NATIVE"; then
  NATIVE_RUNC=$(ls "$W"/debs/runc_*_"$NATIVE".deb)
  sed "s|runc: .*|runc: debs/$(basename "$NATIVE_RUNC")|" "$W/recipe.yaml" > "$W/native.yaml"
  set +e
  "$IMGBUILD" --out "$W/out-native" "$W/native.yaml" > "$W/native.log" 2>&1
  rc=$?
  set -e
  if [ "$rc" = 1 ] && grep -q "'/usr/sbin/runc' (from '.*') is .* but the image is arm64" "$W/native.log"; then
    ok "a $NATIVE runc package is refused: $(grep -o "'/usr/sbin/runc'.*" "$W/native.log")"
  else
    fail "a $NATIVE runc package: exit $rc, want 1 with '... is ... but the image is arm64'; output:"
    sed 's/^/       /' "$W/native.log" >&2
  fi
  [ ! -e "$W/out-native/out.tar" ] && ok "no out.tar left by the failed build" || fail "the failed build left out.tar"
else
  echo "info - no check with a foreign runc (host is $NATIVE)"
fi

finish containerd_debs
