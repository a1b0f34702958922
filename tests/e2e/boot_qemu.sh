#!/usr/bin/env bash
# End-to-end: an SD card image imgbuild writes boots. A Debian 12 amd64 root made natively here
# (debootstrap with linux-image-amd64, systemd-sysv, openssh-server; no emulation) is packed as a
# rootfs tarball, built into an `sdimage` by tests/e2e/boot/recipe.yaml, and booted with
# qemu-system-x86_64 (TCG) the way a Pi's firmware would: the kernel and initrd read out of the image
# (`imgbuild cat`), the image's own cmdline.txt as -append, the image as the only disk. It passes when
# systemd reaches multi-user.target, / is the image's second partition by PARTUUID and the boot
# partition is mounted at /boot/firmware from the image's fstab, with no unit failed.
#
# The debootstrapped root is cached as a tarball under ${IMGBUILD_BOOT_CACHE:-/var/tmp/imgbuild-boot-root},
# keyed by ROOT_VERSION below (change it to rebuild), by tests/e2e/lib/debian_root.sh. The mirror is
# the one this machine's apt uses.
# Needs root (debootstrap, chroot): exit 77 (skipped) without it, and when the Debian mirror cannot
# be reached (debootstrap cannot download, or the qemu/debootstrap install fails); any other problem fails.
#
# usage: bash tests/e2e/boot_qemu.sh path/to/imgbuild
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib/common.sh
. "$HERE/lib/common.sh"
e2e_args "$@"
need_root "debootstrap, chroot"
export LC_ALL=C.UTF-8
# shellcheck source=lib/qemu.sh
. "$HERE/lib/qemu.sh"

ROOT_VERSION=bookworm-amd64-minbase-kernel-v1
BOOT_TIMEOUT=${IMGBUILD_BOOT_TIMEOUT:-600}

# --- 1. Tools -------------------------------------------------------------------------------------
apt_need qemu-system-x86_64 qemu-system-x86
apt_need debootstrap debootstrap
apt_need sfdisk fdisk
apt_need e2fsck e2fsprogs
apt_need fsck.vfat dosfstools
apt_need findmnt util-linux
apt_need lsinitramfs initramfs-tools-core
apt_install_needed
qemu_work_dir boot

# --- 2. The Debian root, as a tarball (cached) ---------------------------------------------------
boot_root "$ROOT_VERSION" linux-image-amd64 systemd-sysv openssh-server udev kmod initramfs-tools

# The base's kernels and initrds, to check the initrd and compare with what comes out of the image.
mkdir -p "$W/ref"
tar -xf "$TARBALL" -C "$W/ref" --wildcards './boot/vmlinuz-*' './boot/initrd.img-*' ||
  die "no /boot/vmlinuz-* or /boot/initrd.img-* in $TARBALL"
# The initramfs must be able to find a virtio disk: Debian's MODULES=most puts virtio_blk in it.
for f in "$W"/ref/boot/initrd.img-*; do
  [ -e "$f" ] || die "no /boot/initrd.img-* in $TARBALL"
  lsinitramfs "$f" > "$W/initrd.list" || die "lsinitramfs cannot read $(basename "$f")"
  if grep -qE '/virtio_blk\.ko' "$W/initrd.list"; then
    ok "$(basename "$f") holds virtio_blk"
  else
    fail "$(basename "$f") has no virtio_blk.ko: the root on a virtio disk cannot be found"
  fi
done

# --- 3/4. Build the image, read what the firmware would out of it ---------------------------------
t0=$(now)
"$IMGBUILD" --out "$W/out" --set "base_tarball=$TARBALL" "$HERE/boot/recipe.yaml" > "$W/build.log" 2>&1 ||
  { cat "$W/build.log" >&2; die "imgbuild could not build tests/e2e/boot/recipe.yaml"; }
t_build=$(secs "$t0" "$(now)")
IMG=$W/out/boot.img
[ -s "$IMG" ] || die "no boot.img in the output folder: $(ls "$W/out")"
echo "image: $(du -h --apparent-size "$IMG" | cut -f1) ($(du -h "$IMG" | cut -f1) on disk) in ${t_build}s"
"$IMGBUILD" inspect "$IMG" > "$W/inspect.txt" 2>&1 || { cat "$W/inspect.txt" >&2; fail "imgbuild inspect failed"; }
sed 's/^/  inspect: /' "$W/inspect.txt"

# The disk signature and partitions, as sfdisk (not imgbuild) reads them.
sfdisk --dump "$IMG" > "$W/sfdisk.txt"
label_id=$(awk '/^label-id:/ {print $2}' "$W/sfdisk.txt")
label_id=${label_id#0x}
[ -n "$label_id" ] || die "sfdisk shows no label-id: $(cat "$W/sfdisk.txt")"
label_id=$(printf '%08x' "$((16#$label_id))")
[ "$label_id" != 00000000 ] || fail "the disk signature is still 00000000"

# cmdline.txt, and the kernel and initrd out of the image's root filesystem (the versioned names in /boot).
boot_files "$IMG"
if [[ " $cmdline " == *" root=PARTUUID=$label_id-02 "* ]]; then
  ok "cmdline.txt's root= is the image's disk id: PARTUUID=$label_id-02"
else
  fail "cmdline.txt's root= is not PARTUUID=$label_id-02 (sfdisk label-id 0x$label_id)"
fi
"$IMGBUILD" cat "$IMG:/etc/fstab" > "$W/fstab" || die "imgbuild cat IMG:/etc/fstab failed"
if grep -qE "^PARTUUID=$label_id-02\s+/\s" "$W/fstab" && grep -qE "^PARTUUID=$label_id-01\s+/boot/firmware\s+vfat" "$W/fstab"; then
  ok "fstab names both partitions by PARTUUID=$label_id-0N"
else
  fail "fstab does not name the partitions by the disk id $label_id: $(cat "$W/fstab")"
fi

# The filesystems, checked by e2fsck and fsck.vfat, on copies of the two partitions.
part_field() { awk -v p="$IMG$1" -v f="$2" '$1 == p { for (i = 2; i <= NF; i++) if ($i == f "=") { v = $(i + 1); sub(/,$/, "", v); print v } }' "$W/sfdisk.txt"; }
for n in 1 2; do
  start=$(part_field "$n" start)
  size=$(part_field "$n" size)
  [ -n "$start" ] && [ -n "$size" ] || { fail "sfdisk shows no partition $n"; continue; }
  dd if="$IMG" of="$W/p$n" bs=512 skip="$start" count="$size" conv=sparse status=none
done
if [ -s "$W/p1" ]; then
  if fsck.vfat -n "$W/p1" > "$W/fsck1.log" 2>&1; then ok "fsck.vfat -n: partition 1 is clean"; else
    cat "$W/fsck1.log" >&2
    fail "fsck.vfat -n finds errors in partition 1"
  fi
fi
if [ -s "$W/p2" ]; then
  if e2fsck -fn "$W/p2" > "$W/fsck2.log" 2>&1; then ok "e2fsck -fn: partition 2 is clean"; else
    tail -n 30 "$W/fsck2.log" >&2
    fail "e2fsck -fn finds errors in partition 2"
  fi
fi
rm -f "$W/p1" "$W/p2"

# The kernel and initrd boot_files read out of the image: byte for byte what the base has.
for f in vmlinuz:"$vmlinuz" initrd.img:"$initrd"; do
  if cmp -s "$W/${f%%:*}" "$W/ref/boot/${f#*:}"; then ok "IMG:/boot/${f#*:} is the base's, byte for byte"; else
    fail "IMG:/boot/${f#*:} differs from the base's"
  fi
done
rm -rf "$W/ref"

# --- 5. Boot it -----------------------------------------------------------------------------------
boot_sdimage "$IMG" IMGBUILD-BOOT-OK
result=$BOOT_RESULT t_boot=$T_BOOT

if [ "$result" != pass ]; then
  console_tail
  fail "boot: $result (after ${t_boot}s)"
else
  reached=$(grep -aE 'Reached target.*(multi-user\.target|Multi-User System)' "$W/serial.txt" | head -n1 || true)
  if [ -n "$reached" ]; then ok "boot: systemd says: ${reached#*] }"; else
    fail "boot: the marker ran but systemd never printed 'Reached target multi-user.target'"
  fi
  grep -ao 'IMGBUILD-BOOT.*' "$W/serial.txt" | sed 's/^/  console: /'
  want_root="/dev/vda2 ext4"
  want_boot="/dev/vda1 vfat"
  get() { marker IMGBUILD-BOOT "$1"; }
  [ "$(get host)" = bootnode ] && ok "hostname is bootnode" || fail "hostname is '$(get host)', not bootnode"
  [ "$(get root)" = "$want_root" ] && ok "/ is $want_root" || fail "/ is '$(get root)', not $want_root"
  [ "$(get boot)" = "$want_boot" ] && ok "/boot/firmware is $want_boot (from the image's fstab)" ||
    fail "/boot/firmware is '$(get boot)', not $want_boot"
  [ "$(get cmdline)" = "$cmdline" ] && ok "the running system reads the same cmdline.txt from /boot/firmware" ||
    fail "/boot/firmware/cmdline.txt in the running system is '$(get cmdline)'"
  marker_units IMGBUILD-BOOT
fi

echo "timings: debootstrap ${T_DEBOOT}, imgbuild build ${t_build}s, boot to multi-user ${t_boot}s"
finish boot_qemu
