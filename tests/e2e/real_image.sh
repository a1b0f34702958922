#!/usr/bin/env bash
# End-to-end: a real Debian root, in a Raspberry Pi OS-shaped disk image, reaches every output with
# all of its ACLs, xattrs and capabilities, byte for byte, and boots with them.
#
# The root is the Debian 12 amd64 root boot_qemu.sh boots (debootstrap, cached by lib/debian_root.sh),
# with what booted Debian systems carry on top: systemd's ACLs on /var/log/journal, a folder with
# named-user and named-group access and default ACLs, a file with an odd name, a user xattr and an
# ACL, and a file capability. It is put into a disk image laid out as Raspberry Pi OS's (MBR, FAT32
# boot partition at 8 MiB, ext4 root made by `mke2fs -d`, which keeps ACLs in ext4's own on-disk
# layout), and one recipe writes a tar, a dir, an sdimage and a netboot output from it. Each is read
# back with a tool imgbuild did not write (bsdtar --acls --xattrs; the kernel's getxattr through
# python3; debugfs ea_list on the SD image's root) and compared with the source. Then the SD image
# boots under qemu-system-x86_64 (TCG) and the running system's getfacl/getfattr/getcap answer.
#
# usage: bash tests/e2e/real_image.sh path/to/imgbuild
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib/common.sh
. "$HERE/lib/common.sh"
e2e_args "$@"
need_root "debootstrap, owners, trusted xattrs"
export LC_ALL=C.UTF-8
# shellcheck source=lib/qemu.sh
. "$HERE/lib/qemu.sh"

ROOT_VERSION=bookworm-amd64-minbase-kernel-v1 # the same root as boot_qemu.sh: one debootstrap for both
BOOT_TIMEOUT=${IMGBUILD_BOOT_TIMEOUT:-600}

apt_need qemu-system-x86_64 qemu-system-x86
apt_need debootstrap debootstrap
apt_need sfdisk fdisk
apt_need debugfs e2fsprogs
apt_need mkfs.vfat dosfstools
apt_need mcopy mtools
apt_need bsdtar libarchive-tools
apt_need getfacl acl
apt_need getfattr attr
apt_need setcap libcap2-bin
apt_need python3 python3
apt_install_needed
qemu_work_dir real_image

boot_root "$ROOT_VERSION" linux-image-amd64 systemd-sysv openssh-server udev kmod initramfs-tools

# --- 1. The source root -----------------------------------------------------------------------------
R=$W/root
mkdir -p "$R"
tar -xpf "$TARBALL" --numeric-owner --xattrs --xattrs-include='*' --acls -C "$R"
# As systemd-tmpfiles sets them on every booted Debian (tmpfiles.d/systemd.conf).
mkdir -p "$R/var/log/journal"
setfacl -m g:adm:r-x,m::r-x "$R/var/log/journal"
setfacl -d -m g::r-x,g:adm:r-x "$R/var/log/journal"
# What only this test sets: the booted system cannot have it from anywhere but the image.
T=$R/srv/acl-test
mkdir -p "$T"
setfacl -m u:1234:rwx,g:4321:r-x "$T"
setfacl -d -m u:1234:rw-,g:4321:r-- "$T"
echo "odd" > "$T/odd name ü"
setfacl -m u:1000:rw- "$T/odd name ü"
setfattr -n user.imgbuild -v kept "$T/odd name ü"
setfattr -n trusted.imgbuild -v 0x00ff01 "$T/odd name ü"
cp /bin/true "$T/ping"
setcap cap_net_raw+ep "$T/ping"
echo "immutable" > "$T/immutable"
# The build host's ACL tools, for the marker in the booted system (same Debian, same architecture).
cp /usr/bin/getfacl /usr/bin/getfattr /usr/sbin/getcap "$R/usr/local/bin/"
for f in /var/log/journal /srv/acl-test "/srv/acl-test/odd name ü"; do
  [ -n "$(getfacl -cps --absolute-names "$R$f")" ] || die "setfacl left no ACL on $f (does this filesystem keep ACLs?)"
done
[ "$(getfattr --absolute-names -n user.imgbuild --only-values "$T/odd name ü")" = kept ] || die "setfattr did not keep user.imgbuild"
getcap "$T/ping" | grep -q cap_net_raw || die "setcap did not keep cap_net_raw on $T/ping"
# Raspberry Pi OS's fstab: both partitions by PARTUUID of the disk signature.
sig=2a5b3c4d
mkdir -p "$R/boot/firmware"
printf 'proc /proc proc defaults 0 0\nPARTUUID=%s-01 /boot/firmware vfat defaults 0 2\nPARTUUID=%s-02 / ext4 defaults,noatime 0 1\n' "$sig" "$sig" > "$R/etc/fstab"

# Every xattr of every path under a folder, one line each: path, name, value in hex (sorted).
xattr_dump() {
  python3 - "$1" << 'PY'
import os, sys
root = sys.argv[1]
out = []
for d, dirs, files in os.walk(root):
    for n in dirs + files:
        p = os.path.join(d, n)
        rel = "/" + os.path.relpath(p, root)
        for a in os.listxattr(p, follow_symlinks=False):
            out.append("%r %s %s" % (rel, a, os.getxattr(p, a, follow_symlinks=False).hex()))
print("\n".join(sorted(out)))
PY
}
xattr_dump "$R" > "$W/source.xattrs"
n_src=$(wc -l < "$W/source.xattrs")
grep -q "'/var/log/journal' system.posix_acl_default" "$W/source.xattrs" || die "the source dump misses /var/log/journal's default ACL"
echo "source root: $(du -sh "$R" | cut -f1), $n_src xattrs"

# --- 2. The Raspberry Pi OS-shaped image -----------------------------------------------------------
mib=$((1024 * 1024))
root_mib=$(($(du -sm "$R" | cut -f1) * 13 / 10 + 64))
boot_mib=64
IMG_BASE=$W/base.img
truncate -s $(((8 + boot_mib + root_mib) * mib)) "$IMG_BASE"
printf 'label: dos\nlabel-id: 0x%s\nunit: sectors\n\nstart=16384, size=%d, type=c\nstart=%d, type=83\n' \
  "$sig" $((boot_mib * 2048)) $(((8 + boot_mib) * 2048)) | sfdisk -q "$IMG_BASE"
mkdir -p "$W/bootfs"
echo "root=PARTUUID=$sig-02 rootfstype=ext4 rw console=ttyS0 panic=10 systemd.show_status=1" > "$W/bootfs/cmdline.txt"
printf '[all]\narm_64bit=1\n' > "$W/bootfs/config.txt"
truncate -s "${boot_mib}M" "$W/boot.fat"
mkfs.vfat -F 32 -S 512 -s 1 -n bootfs "$W/boot.fat" > /dev/null
mcopy -p -m -i "$W/boot.fat" "$W/bootfs/cmdline.txt" "$W/bootfs/config.txt" ::/
mke2fs -q -F -t ext4 -O ^orphan_file,^metadata_csum_seed -L rootfs -E root_owner=0:0 -d "$R" "$W/root.ext4" "${root_mib}M"
# An inode flag no output can keep: the build must say it drops it.
debugfs -w -R "set_inode_field /srv/acl-test/immutable flags 0x80010" "$W/root.ext4" > /dev/null 2>&1
dd if="$W/boot.fat" of="$IMG_BASE" bs=1M seek=8 conv=notrunc,sparse status=none
dd if="$W/root.ext4" of="$IMG_BASE" bs=1M seek=$((8 + boot_mib)) conv=notrunc,sparse status=none
rm -f "$W/boot.fat"
debugfs -R "ea_list /var/log/journal" "$W/root.ext4" 2> /dev/null | grep -q "system.posix_acl_default" ||
  die "mke2fs -d did not keep /var/log/journal's ACL: nothing to test"

# The files debugfs is asked about: every path with an xattr, in the source dump's order.
python3 - "$W/source.xattrs" > "$W/ea.cmds" << 'PY'
import ast, sys
paths = []
for line in open(sys.argv[1], encoding="utf-8", errors="surrogateescape"):
    path = ast.literal_eval(line.rsplit(" ", 2)[0])
    if not paths or paths[-1] != path:
        paths.append(path)
for p in paths:
    print('ea_list "%s"' % p.replace('"', '\\"'))
PY
# ea_list shows xattrs in the order they are stored (in the inode or its block): a writer's choice.
ea_list() { # IMAGE: each file's xattrs sorted, files in the order of ea.cmds
  debugfs -f "$W/ea.cmds" "$1" 2> /dev/null | python3 -c '
import sys
block = []
for line in sys.stdin:
    if line.startswith("  "):
        block.append(line)
        continue
    sys.stdout.writelines(sorted(block) + [line])
    block = []
sys.stdout.writelines(sorted(block))'
}
ea_list "$W/root.ext4" > "$W/ea.base"
[ "$(grep -c 'posix_acl' "$W/ea.base")" -ge 5 ] || die "debugfs finds fewer than 5 ACLs in the base image: nothing to compare"
rm -f "$W/root.ext4"

# The same root as a tarball (GNU tar, POSIX.1e ACLs in pax headers) and as a folder, with the boot
# partition's files in /boot/firmware as a tarball or folder base has them.
cp "$W/bootfs/cmdline.txt" "$W/bootfs/config.txt" "$R/boot/firmware/"
tar --numeric-owner --xattrs --xattrs-include='*' --acls --format=posix -C "$R" -cf "$W/root-src.tar" .

# --- 3. From each kind of base, four outputs --------------------------------------------------------
cp -r "$HERE/real_image/overlay" "$W/overlay"
# Nothing the recipe writes or a node output rewrites carries an xattr in the source: every xattr
# must come out as it went in.
compare_dump() { # LABEL FOLDER
  xattr_dump "$2" > "$W/got.xattrs"
  if diff "$W/source.xattrs" "$W/got.xattrs" > "$W/xattrs.diff"; then
    ok "$1: all $n_src xattrs and ACLs equal the source's, byte for byte"
  else
    head -n 20 "$W/xattrs.diff" >&2
    fail "$1: xattrs differ from the source's ($(grep -c '^[<>]' "$W/xattrs.diff") lines)"
  fi
}
build_from() { # KIND BASE: builds the four outputs into $W/out-KIND and compares each with the source
  local kind=$1 out=$W/out-$1 t0
  cat > "$W/recipe-$kind.yaml" << EOF
name: real-image
epoch: 1700000000
base: $2
nodes:
  - {name: realnode, mac: "52:54:00:12:34:57", ip: 10.0.2.15/24}
steps:
  - files: {src: overlay, dest: /}
  - systemd:
      enable: imgbuild-real-marker.service
      default_target: multi-user.target
  - hostname: realnode
outputs:
  - tar: {path: real.tar}
  - dir: {path: real-dir}
  - sdimage: {path: real.img, boot_size: 64, align: 4}
  - netboot: {server: 10.0.2.2, prefix: mac, export_base: /srv/nfs}
EOF
  t0=$(now)
  "$IMGBUILD" --out "$out" "$W/recipe-$kind.yaml" > "$W/build-$kind.log" 2>&1 ||
    { cat "$W/build-$kind.log" >&2; die "imgbuild could not build from the $kind base"; }
  echo "built tar, dir, sdimage and netboot from the $kind base in $(secs "$t0" "$(now)")s"

  compare_dump "$kind base, dir output (getxattr)" "$out/real-dir"
  mkdir -p "$W/from-tar"
  bsdtar -xpf "$out/real.tar" --acls --xattrs --numeric-owner -C "$W/from-tar"
  compare_dump "$kind base, tar output (bsdtar --acls --xattrs)" "$W/from-tar"
  rm -rf "$W/from-tar"
  compare_dump "$kind base, netboot NFS root (getxattr)" "$out/nfs/realnode"
  [ "$(getfacl -cp "$out/real-dir/var/log/journal" | grep -c 'group:adm:r-x')" = 2 ] &&
    ok "$kind base, getfacl on the dir output: /var/log/journal has group:adm:r-x and default:group:adm:r-x" ||
    fail "$kind base, getfacl on the dir output: $(getfacl -cp "$out/real-dir/var/log/journal" | tr '\n' ' ')"

  # The SD image's root partition, read by debugfs, against the base image's, read the same way.
  local img=$out/real.img start size
  sfdisk --dump "$img" > "$W/sfdisk.txt"
  read -r start size < <(awk -v p="${img}2" '$1 == p { gsub(/,/, ""); for (i = 2; i <= NF; i++) { if ($i == "start=") s = $(i + 1); if ($i == "size=") z = $(i + 1) } print s, z }' "$W/sfdisk.txt")
  [ -n "${start:-}" ] || die "sfdisk shows no partition 2 in the SD image from the $kind base"
  dd if="$img" of="$W/out-root.ext4" bs=512 skip="$start" count="$size" conv=sparse status=none
  if e2fsck -fn "$W/out-root.ext4" > "$W/fsck.log" 2>&1; then ok "$kind base, e2fsck -fn: the SD image's root is clean"; else
    tail -n 20 "$W/fsck.log" >&2
    fail "$kind base, e2fsck -fn finds errors in the SD image's root"
  fi
  ea_list "$W/out-root.ext4" > "$W/ea.out"
  if diff "$W/ea.base" "$W/ea.out" > "$W/ea.diff"; then
    ok "$kind base, sdimage output (debugfs ea_list): the xattrs of all $(wc -l < "$W/ea.cmds") files equal the base image's, in ext4's own layout"
  else
    head -n 20 "$W/ea.diff" >&2
    fail "$kind base, sdimage output (debugfs ea_list): xattrs differ from the base image's"
  fi
  rm -f "$W/out-root.ext4"
  rm -rf "$out/real-dir" "$out/nfs" "$out/tftp" "$out/real.tar"
}
t0=$(now)
build_from image "{image: base.img}"
t_build=$(secs "$t0" "$(now)")
if grep -q "immutable or append-only flag (first: '/srv/acl-test/immutable')" "$W/build-image.log"; then
  ok "image base: the build warns that the immutable flag of /srv/acl-test/immutable is dropped"
else
  fail "image base: no warning about the dropped immutable flag: $(cat "$W/build-image.log")"
fi
build_from tarball "{tarball: root-src.tar}"
build_from dir "{dir: root}"
IMG=$W/out-image/real.img

# --- 4. Boot the SD image and ask the running kernel ------------------------------------------------
oneline() { tr '\n' ',' | sed 's/,*$//'; }
want_journal=$(getfacl -cpn "$R/var/log/journal" | oneline)
want_dir=$(getfacl -cpn "$T" | oneline)
want_file=$(getfacl -cpn "$T/odd name ü" | oneline)
want_cap=$(getcap "$T/ping" | sed 's/^[^ ]* //')
rm -rf "$R" "$W/out-tarball" "$W/out-dir" "$W/root-src.tar"
boot_files "$IMG"
boot_sdimage "$IMG" IMGBUILD-REAL-OK
result=$BOOT_RESULT t_boot=$T_BOOT
if [ "$result" != pass ]; then
  console_tail
  fail "boot: $result (after ${t_boot}s)"
else
  ok "the SD image boots to multi-user.target in ${t_boot}s"
  get() { marker IMGBUILD-REAL "$1"; }
  eq "hostname in the booted system" "$(get host)" realnode
  eq "/ in the booted system" "$(get root)" "/dev/vda2 ext4"
  eq "getfacl /var/log/journal in the booted system" "$(get acl-journal)" "$want_journal"
  eq "getfacl /srv/acl-test (named user and group, default ACL) in the booted system" "$(get acl-dir)" "$want_dir"
  eq "getfacl on the odd-named file in the booted system" "$(get acl-file)" "$want_file"
  eq "user.imgbuild xattr in the booted system" "$(get xattr)" kept
  eq "getcap /srv/acl-test/ping in the booted system" "$(get cap)" "$want_cap"
  marker_units IMGBUILD-REAL
fi
echo "timings: debootstrap ${T_DEBOOT}, image base build and checks ${t_build}s, boot ${t_boot}s"
finish real_image
