#!/usr/bin/env bash
# Builds the sample base the README's quick start and the example recipes use: a Debian 12 (bookworm)
# arm64 root filesystem made by `debootstrap --foreign --variant=minbase`, packed as a zstd rootfs
# tarball, plus what the recipes install into it and log in with:
#
#   build/sample/debian-bookworm-arm64-v2.tar.zst   the root filesystem (numeric-owner pax tarball)
#   build/sample/debs/containerd.deb, runc.deb      Debian's own arm64 packages, for the containerd step
#   build/sample/demo_ed25519, demo_ed25519.pub     a demo SSH key pair (no passphrase), for `ssh` keys
#
# What is in the root:
#   - debootstrap's first stage: the required packages unpacked (not configured: no maintainer script
#     has run), every package of the second stage downloaded into /var/cache/apt/archives.
#   - the packages a cluster node needs, unpacked here the way that first stage unpacks (dpkg-deb's data
#     tar, existing links to folders kept for merged /usr): systemd, systemd-resolved, openssh-server,
#     iproute2, ifupdown, locales, sudo and cloud-init, with their dependencies. containerd and runc are
#     downloaded but left packed: the recipes' containerd step installs them from debs/.
#   - what the first `dpkg --configure` would have written and the recipes' steps act on: /etc/passwd,
#     /etc/group, /etc/shadow, /etc/gshadow from base-passwd's master files, and openssh-server's
#     /etc/ssh/sshd_config from its template (no host keys: those are made per machine).
#   - a SAMPLE Raspberry Pi OS-like boot layout, so that the boot-partition steps (cmdline, config_txt)
#     have files to edit: /boot/firmware/cmdline.txt, /boot/firmware/config.txt and an /etc/fstab that
#     mounts PARTUUID=00000000-01 on /boot/firmware (vfat) and PARTUUID=00000000-02 on / (ext4). There
#     is no firmware, kernel or device tree in it: it is not a bootable image, only real Debian files
#     (owners, modes, setuid binaries, hardlinks, symlinks, device nodes) to show the pipeline on.
#
# Nothing but Debian packages is downloaded, from the mirror this machine's apt already uses. The
# tarball's name carries the layout's version (-v2): a change here bumps it, so that an older cached
# sample is not taken for this one. Nothing is redone when all the files above are there.
#
# usage: ci/sample-base.sh [OUTPUT.tar.zst]   (default build/sample/debian-bookworm-arm64-v2.tar.zst;
#                                              debs/ and the key go beside it)
set -euo pipefail

out=${1:-build/sample/debian-bookworm-arm64-v2.tar.zst}
dir=$(dirname "$out")
key=$dir/demo_ed25519
if [ -s "$out" ] && [ -s "$dir/debs/containerd.deb" ] && [ -s "$dir/debs/runc.deb" ] && [ -s "$key.pub" ]; then
  echo "sample base: $out already there"
  exit 0
fi

# What a cluster node needs beyond minbase: unpacked into the root.
node_packages=(systemd systemd-sysv systemd-resolved openssh-server iproute2 ifupdown locales sudo cloud-init)
# Downloaded only; copied out to debs/ for the containerd step.
packed_packages=(containerd runc)

source "$(dirname "$0")/deps.sh"
tools=(debootstrap zstd openssh-client)
[ "$(id -u)" = 0 ] || tools+=(fakeroot)
imgbuild_install_deps "${tools[@]}"

# The first deb URI apt is configured with, from deb822 .sources files or the classic sources.list.
mirror=$(grep -hoE '^URIs:\s*\S+' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' | grep -v security | head -n1 || true)
if [ -z "$mirror" ]; then
  mirror=$(grep -hoE '^deb\s+(\[[^]]*\]\s+)?\S+' /etc/apt/sources.list 2>/dev/null | awk '{print $NF}' | grep -v security | head -n1 || true)
fi
[ -n "$mirror" ] || { echo "sample-base: no Debian mirror in /etc/apt/sources.list*" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/imgbuild-sample.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$dir"
root=$work/root

# As root the files get their real owners; otherwise fakeroot keeps them in a state file across calls.
run() { if [ "$(id -u)" = 0 ]; then "$@"; else fakeroot -i "$work/state" -s "$work/state" "$@"; fi; }
touch "$work/state"

echo "sample base: debootstrap --foreign arm64 bookworm from $mirror"
include=$(IFS=,; echo "${node_packages[*]},${packed_packages[*]}")
run debootstrap --foreign --arch=arm64 --variant=minbase --include="$include" bookworm "$root" "$mirror" \
  > "$work/debootstrap.log" 2>&1 || { tail -n 20 "$work/debootstrap.log" >&2; exit 1; }

# --include only downloads: the first stage unpacks the required packages alone. debootstrap/base lists
# the others (the node packages with their dependencies, and apt); debootstrap/debpaths says where
# each .deb is. --keep-directory-symlink keeps /bin, /sbin and /lib the links to usr/ they are.
deb_of() { awk -v p="$1" '$1 == p { print $2 }' "$root/debootstrap/debpaths"; }
unpacked=0
for pkg in $(cat "$root/debootstrap/base"); do
  case " ${packed_packages[*]} " in *" $pkg "*) continue ;; esac
  deb=$root$(deb_of "$pkg")
  dpkg-deb --fsys-tarfile "$deb" | run tar -C "$root" --numeric-owner --keep-directory-symlink -xf - \
    || { echo "sample-base: cannot unpack $deb" >&2; exit 1; }
  unpacked=$((unpacked + 1))
done
mkdir -p "$dir/debs"
for pkg in "${packed_packages[@]}"; do
  deb=$(deb_of "$pkg")
  [ -n "$deb" ] || { echo "sample-base: debootstrap did not download $pkg" >&2; exit 1; }
  cp "$root$deb" "$dir/debs/$pkg.deb.tmp"
  mv "$dir/debs/$pkg.deb.tmp" "$dir/debs/$pkg.deb"
done

# Accounts, as base-passwd's preinst and passwd's `shadowconfig on` leave them: passwords in shadow.
etc=$root/etc
days=$(($(date +%s) / 86400))
sed -E 's/^([^:]*):[^:]*:/\1:x:/' "$root/usr/share/base-passwd/passwd.master" > "$work/passwd"
sed -E 's/^([^:]*):[^:]*:/\1:x:/' "$root/usr/share/base-passwd/group.master" > "$work/group"
awk -F: -v d="$days" '{ print $1 ":" $2 ":" d ":0:99999:7:::" }' "$root/usr/share/base-passwd/passwd.master" > "$work/shadow"
awk -F: '{ print $1 ":" $2 "::" }' "$root/usr/share/base-passwd/group.master" > "$work/gshadow"
run install -m 0644 -o 0 -g 0 "$work/passwd" "$etc/passwd"
run install -m 0644 -o 0 -g 0 "$work/group" "$etc/group"
run install -m 0640 -o 0 -g 42 "$work/shadow" "$etc/shadow" # gid 42: shadow
run install -m 0640 -o 0 -g 42 "$work/gshadow" "$etc/gshadow"
# openssh-server's postinst installs its sshd_config template (with ucf).
run install -m 0644 -o 0 -g 0 "$root/usr/share/openssh/sshd_config" "$etc/ssh/sshd_config"

# The SAMPLE boot layout (see the top): Raspberry Pi OS's file names and usual settings, no firmware.
cat > "$work/cmdline.txt" << 'EOF'
console=serial0,115200 console=tty1 root=PARTUUID=00000000-02 rootfstype=ext4 fsck.repair=yes rootwait
EOF
cat > "$work/config.txt" << 'EOF'
# Sample config.txt from imgbuild's ci/sample-base.sh, laid out as Raspberry Pi OS's.
# There is no firmware in this sample: nothing reads this file.

[all]
# 64-bit kernel
arm_64bit=1
# Audio through the on-board output
dtparam=audio=on
# Cameras and DSI displays found at boot
camera_auto_detect=1
display_auto_detect=1
# The KMS graphics driver
dtoverlay=vc4-kms-v3d
max_framebuffers=2
disable_overscan=1

[pi4]
arm_boost=1
EOF
cat > "$work/fstab" << 'EOF'
# Sample /etc/fstab from imgbuild's ci/sample-base.sh: the partitions of a Raspberry Pi OS SD card.
proc                  /proc           proc  defaults          0  0
PARTUUID=00000000-01  /boot/firmware  vfat  defaults          0  2
PARTUUID=00000000-02  /               ext4  defaults,noatime  0  1
EOF
run install -d -m 0755 -o 0 -g 0 "$root/boot/firmware"
run install -m 0644 -o 0 -g 0 "$work/cmdline.txt" "$work/config.txt" "$root/boot/firmware/"
run install -m 0644 -o 0 -g 0 "$work/fstab" "$etc/fstab"

# The demo key: kept across rebuilds of the sample, so that images built earlier still accept it.
if [ ! -s "$key.pub" ]; then
  rm -f "$key" "$key.pub"
  ssh-keygen -q -t ed25519 -N '' -C imgbuild-demo -f "$key"
fi

# A numeric-owner pax tarball, sorted, as any rootfs tarball from the field would be. Written last:
# its presence says the rest is there.
run tar --numeric-owner --xattrs --xattrs-include='*' --sort=name --format=posix \
  --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
  -C "$root" -cf - . | zstd -q -f -T0 -6 -o "$out.tmp"
mv "$out.tmp" "$out"
echo "sample base: $out ($(du -h "$out" | cut -f1); $unpacked packages unpacked beyond the first stage)," \
  "$dir/debs/{containerd,runc}.deb, $key{,.pub}"
