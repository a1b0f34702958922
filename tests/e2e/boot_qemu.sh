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

if [ $# -lt 1 ]; then
  echo "usage: $0 path/to/imgbuild" >&2
  exit 2
fi
IMGBUILD=$(realpath "$1")
[ -x "$IMGBUILD" ] || { echo "FAIL: '$1' is not an executable" >&2; exit 1; }
HERE=$(cd "$(dirname "$0")" && pwd)
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root (debootstrap, chroot)"; exit 77; }
export LC_ALL=C.UTF-8

ROOT_VERSION=bookworm-amd64-minbase-kernel-v1
BOOT_TIMEOUT=${IMGBUILD_BOOT_TIMEOUT:-600}

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

# --- 1. Tools -------------------------------------------------------------------------------------
need=()
command -v qemu-system-x86_64 > /dev/null || need+=(qemu-system-x86)
command -v debootstrap > /dev/null || need+=(debootstrap)
command -v sfdisk > /dev/null || need+=(fdisk)
command -v e2fsck > /dev/null || need+=(e2fsprogs)
command -v fsck.vfat > /dev/null || need+=(dosfstools)
command -v findmnt > /dev/null || need+=(util-linux)
command -v lsinitramfs > /dev/null || need+=(initramfs-tools-core)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" > /dev/null; }; then
    echo "SKIP: could not install ${need[*]} (no network to the Debian mirror?)"
    exit 77
  fi
fi

W=$(mktemp -d "${TMPDIR:-/tmp}/imgbuild-e2e-boot.XXXXXX")
QEMU_PID=
cleanup() {
  if [ -n "$QEMU_PID" ] && kill -0 "$QEMU_PID" 2> /dev/null; then
    kill "$QEMU_PID" 2> /dev/null || true
    wait "$QEMU_PID" 2> /dev/null || true
  fi
  rm -rf "$W"
}
trap cleanup EXIT

# shellcheck source=lib/report.sh
. "$HERE/lib/report.sh"

# --- 2. The Debian root, as a tarball (cached) ---------------------------------------------------
# shellcheck source=lib/debian_root.sh
. "$HERE/lib/debian_root.sh"
t_deboot=cached
t0=
[ -s "$(debian_root_path "$ROOT_VERSION")" ] || t0=$(now)
TARBALL=$(debian_root_tarball "$ROOT_VERSION" linux-image-amd64 systemd-sysv openssh-server udev kmod initramfs-tools) || exit $?
[ -z "$t0" ] || t_deboot=$(secs "$t0" "$(now)")

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

"$IMGBUILD" cat "$IMG:/boot/firmware/cmdline.txt" > "$W/cmdline.txt" || die "imgbuild cat IMG:/boot/firmware/cmdline.txt failed"
cmdline=$(tr '\n' ' ' < "$W/cmdline.txt" | sed 's/ *$//')
echo "cmdline.txt: $cmdline"
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

# The kernel and initrd, out of the image's root filesystem: the versioned names in /boot.
"$IMGBUILD" ls "$IMG:/boot" > "$W/boot.ls" 2>&1 || { cat "$W/boot.ls" >&2; die "imgbuild ls IMG:/boot failed"; }
vmlinuz=$(grep -oE 'vmlinuz-[^ ]+' "$W/boot.ls" | sort -V | tail -n1)
initrd=$(grep -oE 'initrd\.img-[^ ]+' "$W/boot.ls" | sort -V | tail -n1)
[ -n "$vmlinuz" ] && [ -n "$initrd" ] || { cat "$W/boot.ls" >&2; die "no vmlinuz-*/initrd.img-* in IMG:/boot"; }
"$IMGBUILD" cat "$IMG:/boot/$vmlinuz" > "$W/vmlinuz" || die "imgbuild cat IMG:/boot/$vmlinuz failed"
"$IMGBUILD" cat "$IMG:/boot/$initrd" > "$W/initrd.img" || die "imgbuild cat IMG:/boot/$initrd failed"
# Byte for byte what the base has.
for f in vmlinuz:"$vmlinuz" initrd.img:"$initrd"; do
  if cmp -s "$W/${f%%:*}" "$W/ref/boot/${f#*:}"; then ok "IMG:/boot/${f#*:} is the base's, byte for byte"; else
    fail "IMG:/boot/${f#*:} differs from the base's"
  fi
done
rm -rf "$W/ref"

# --- 5. Boot it -----------------------------------------------------------------------------------
echo "boot: qemu-system-x86_64 -accel tcg, -kernel $vmlinuz -initrd $initrd -append \"$cmdline\""
: > "$W/serial.log"
t0=$(now)
# -nodefaults: no floppy, CD-ROM, VGA or NIC; the image is the only disk, the serial port the console.
timeout "$BOOT_TIMEOUT" qemu-system-x86_64 -accel tcg -m 1024 -smp 2 -nographic -nodefaults -no-reboot \
  -kernel "$W/vmlinuz" -initrd "$W/initrd.img" -append "$cmdline" \
  -drive "file=$IMG,format=raw,if=virtio" \
  -serial "file:$W/serial.log" -monitor none -display none -net none > "$W/qemu.log" 2>&1 &
QEMU_PID=$!

last_lines() {
  echo "--- last 40 lines of the serial console ---" >&2
  tail -n 40 "$W/serial.txt" >&2
  echo "---" >&2
}
# What the console shows so far: a verdict, or nothing while the boot goes on. Failures win.
verdict() {
  local f=$W/serial.log
  if grep -qaE 'Failed to mount .* as root file system|ALERT! .* does not exist' "$f"; then
    echo "the initramfs could not mount the root file system"
  elif grep -qa 'Kernel panic' "$f"; then echo "kernel panic"
  elif grep -qaE 'Give root password|emergency mode|Dropping to a shell|\(initramfs\)|Cannot open access to console' "$f"; then
    echo "emergency shell"
  elif grep -qaE 'Failed to mount|Dependency failed' "$f"; then echo "a mount (or what it depends on) failed"
  elif grep -qa 'IMGBUILD-BOOT-OK' "$f"; then echo pass
  fi
}
result=
while :; do
  result=$(verdict)
  if [ -n "$result" ]; then
    # A failure's message may still be on its way: give the console a moment, then read it again.
    if [ "$result" != pass ]; then
      sleep 3
      result=$(verdict)
    fi
    break
  fi
  if ! kill -0 "$QEMU_PID" 2> /dev/null; then
    wait "$QEMU_PID" && rc=0 || rc=$?
    QEMU_PID=
    result=$(verdict)
    [ -n "$result" ] && break
    if [ "$rc" = 124 ]; then result="timeout after ${BOOT_TIMEOUT}s"; else result="qemu exited ($rc): $(head -c 2000 "$W/qemu.log")"; fi
    break
  fi
  sleep 1
done
t_boot=$(secs "$t0" "$(now)")
if [ -n "$QEMU_PID" ]; then
  kill "$QEMU_PID" 2> /dev/null || true
  wait "$QEMU_PID" 2> /dev/null || true
  QEMU_PID=
fi
# Without carriage returns and systemd's colours.
tr -d '\r' < "$W/serial.log" | sed -E 's/\x1b\[[0-9;]*[A-Za-z]//g' > "$W/serial.txt"

if [ "$result" != pass ]; then
  last_lines
  fail "boot: $result (after ${t_boot}s)"
else
  reached=$(grep -aE 'Reached target.*(multi-user\.target|Multi-User System)' "$W/serial.txt" | head -n1 || true)
  if [ -n "$reached" ]; then ok "boot: systemd says: ${reached#*] }"; else
    fail "boot: the marker ran but systemd never printed 'Reached target multi-user.target'"
  fi
  grep -ao 'IMGBUILD-BOOT.*' "$W/serial.txt" | sed 's/^/  console: /'
  want_root="/dev/vda2 ext4"
  want_boot="/dev/vda1 vfat"
  # A marker line may follow systemd's "A start job is running..." status, which ends in a carriage
  # return and no newline: the marker is looked for anywhere in a line.
  get() { grep -ao "IMGBUILD-BOOT $1: .*" "$W/serial.txt" | tail -n1 | sed "s/^IMGBUILD-BOOT $1: //; s/ *\$//"; }
  [ "$(get host)" = bootnode ] && ok "hostname is bootnode" || fail "hostname is '$(get host)', not bootnode"
  [ "$(get root)" = "$want_root" ] && ok "/ is $want_root" || fail "/ is '$(get root)', not $want_root"
  [ "$(get boot)" = "$want_boot" ] && ok "/boot/firmware is $want_boot (from the image's fstab)" ||
    fail "/boot/firmware is '$(get boot)', not $want_boot"
  [ "$(get cmdline)" = "$cmdline" ] && ok "the running system reads the same cmdline.txt from /boot/firmware" ||
    fail "/boot/firmware/cmdline.txt in the running system is '$(get cmdline)'"
  [ "$(get ssh)" = active ] && ok "ssh.service is active" || fail "ssh.service is '$(get ssh)'"
  [ "$(get failed)" = 0 ] && ok "no failed units" || fail "$(get failed) failed unit(s)"
  if grep -aqE '\[FAILED\]' "$W/serial.txt"; then
    grep -aE '\[FAILED\]' "$W/serial.txt" >&2
    fail "the console shows failed units"
  fi
fi

echo "timings: debootstrap ${t_deboot}$([ "$t_deboot" = cached ] || echo s), imgbuild build ${t_build}s, boot to multi-user ${t_boot}s"
if [ "$FAILS" -gt 0 ]; then
  echo "$FAILS check(s) failed"
  exit 1
fi
echo "all checks passed"
