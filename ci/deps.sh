# Sourced by ci/*.sh: installs the Debian packages imgbuild needs to build and test, when missing.
# Only Debian 12 packages; `apt-get update` runs first whenever something has to be installed.

IMGBUILD_BUILD_DEPS=(git cmake g++ make pkg-config libarchive-dev libext2fs-dev libyaml-cpp-dev libcli11-dev catch2 libssl-dev libcurl4-openssl-dev libzstd-dev liblzma-dev)
# Tools the tests verify with (nobody here wrote them: systemd-analyze and cloud-init judge the units
# and seeds the steps write) and the sample base is made with.
IMGBUILD_TEST_DEPS=(libarchive-tools attr acl libcap2-bin xz-utils zstd e2fsprogs util-linux debootstrap fakeroot python3 jq fdisk dosfstools mtools bzip2 zip time bmap-tools dnsmasq-base qemu-system-x86 initramfs-tools-core systemd cloud-init ipxe-qemu nfs-ganesha nfs-ganesha-vfs rpcbind gpg python3-jsonschema python3-yaml yamllint help2man lintian dpkg-dev signify-openbsd)

# Optional: libguestfs (the reader for qcow2, LVM, btrfs, xfs, and the kernel's view in tests) with a
# kernel for its appliance. A build without them works; their tests then skip, saying why.
IMGBUILD_OPTIONAL_DEPS=(libguestfs-dev libguestfs-tools linux-image-amd64 qemu-utils btrfs-progs)

imgbuild_install_optional() {
  imgbuild_install_deps "$@" || echo "warning: optional packages not installed ($*): their tests will be skipped"
}

imgbuild_install_deps() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "installing: ${missing[*]}"
  local sudo=()
  [ "$(id -u)" = 0 ] || sudo=(sudo)
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# Configures and builds into build/ (warnings are errors under CI=true).
imgbuild_build() {
  local werror=OFF
  [ "${CI:-}" = true ] && werror=ON
  cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DIMGBUILD_WERROR="$werror" >/dev/null
  cmake --build build -j "$(nproc)"
}
