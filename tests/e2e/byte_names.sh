#!/usr/bin/env bash
# End-to-end: names that are not UTF-8 are bytes, kept the same in every output that can hold them,
# and an error naming them where one cannot (the FAT boot partition).
#
# A folder base holds /home/caf\xe9 (Latin-1) and /home/d\xff/f. The tar output is extracted with
# bsdtar and GNU tar, the dir output listed, the sdimage's ext4 root listed with debugfs: each must
# hold exactly those bytes. The same name in the boot folder fails the build, naming the file, with
# no output left behind.
#
# usage: bash tests/e2e/byte_names.sh path/to/imgbuild
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib/common.sh
. "$HERE/lib/common.sh"
# shellcheck source=lib/report.sh
. "$HERE/lib/report.sh"
e2e_args "$@"
need_tools bsdtar tar debugfs dd od

export LC_ALL=C SOURCE_DATE_EPOCH=1700000000
W=$(mktemp -d /tmp/imgbuild-e2e-bytes.XXXXXX)
trap 'rm -rf "$W"' EXIT

b=$W/base
mkdir -p "$b/boot/firmware" "$b/etc" "$b/home/d"$'\xff'
printf 'console=tty1 root=PARTUUID=abcd-02 rootwait\n' > "$b/boot/firmware/cmdline.txt"
printf 'PARTUUID=abcd-01 /boot/firmware vfat defaults 0 2\nPARTUUID=abcd-02 / ext4 defaults 0 1\n' > "$b/etc/fstab"
printf 'x\n' > "$b/home/caf"$'\xe9'
printf 'y\n' > "$b/home/d"$'\xff'/f
chmod -R u+rwX,go+rX "$b"
# The names as hex, sorted: what every output must list under /home.
want=$(printf 'caf\xe9\nd\xff\n' | od -An -tx1 | tr -s ' \n' ' ')

cat > "$W/r.yaml" <<'EOF'
base: {dir: base}
outputs:
  - tar: {path: rootfs.tar}
  - dir: {path: root}
  - sdimage: {path: node.img, align: 8, boot_size: 32, root_size: 64, bmap: false}
EOF
(cd "$W" && "$IMGBUILD" -q r.yaml --out out) || die "the build failed"

names() { LC_ALL=C sort | od -An -tx1 | tr -s ' \n' ' '; }
eq "dir output" "$(ls "$W/out/root/home" | names)" "$want"
mkdir "$W/bsd" "$W/gnu"
bsdtar -xf "$W/out/rootfs.tar" -C "$W/bsd"
tar -xf "$W/out/rootfs.tar" -C "$W/gnu" 2> /dev/null
eq "tar output, extracted by bsdtar" "$(ls "$W/bsd/home" | names)" "$want"
eq "tar output, extracted by GNU tar" "$(ls "$W/gnu/home" | names)" "$want"
eq "file in the non-UTF-8 folder (tar)" "$(cat "$W/gnu/home/d"$'\xff'/f)" y
# The root partition starts after the 8 MiB alignment and the 32 MiB boot partition.
dd if="$W/out/node.img" of="$W/root.ext4" bs=1M skip=40 count=64 status=none
listing=$(debugfs -R 'ls -p /home' "$W/root.ext4" 2> /dev/null | awk -F/ '$6 != "." && $6 != ".." && $6 != "" {print $6}')
eq "sdimage ext4 root, listed by debugfs" "$(names <<< "$listing")" "$want"

printf 'z\n' > "$b/boot/firmware/caf"$'\xe9.txt'
printf 'base: {dir: base}\noutputs:\n  - sdimage: {path: node.img, boot_size: 32, root_size: 64}\n' > "$W/boot.yaml"
set +e
err=$(cd "$W" && "$IMGBUILD" -q boot.yaml --out out2 2>&1)
rc=$?
set -e
eq "a non-UTF-8 boot file fails the build" "$rc" 1
case "$err" in
  *"cannot write '/boot/firmware/caf\\xe9.txt' to FAT: its name is not valid UTF-8"*) ok "the error names it" ;;
  *) fail "the error does not name the file: $err" ;;
esac
[ ! -e "$W/out2" ] && ok "nothing left behind" || fail "out2 was left behind"

finish byte_names
