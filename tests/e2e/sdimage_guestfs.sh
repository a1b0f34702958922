#!/usr/bin/env bash
# End-to-end: an `sdimage` output read back through libguestfs, that is by the Linux kernel's own ext4
# and vfat drivers in a small appliance, holds what it should. The raspios fixture
# (tests/fixtures/make-image.sh) is built into `sdimage: {disk_id: "0x0badcafe", boot_size: 64,
# align: 4, headroom: 16}`; virt-ls, with p2 mounted as ext4 at / and p1 as vfat at /boot/firmware,
# lists every entry with its type, mode, owner, size, device numbers, inode, link count, blocks and
# sha256, and that listing must agree
#   - with imgbuild's Tree listing of the same image (`imgbuild ls -R`): names, types, permission bits,
#     owners, sizes, symlink targets, device numbers, hardlinks;
#   - with the fixture's source folders: the same, for the root and (names, types, sizes) for the boot
#     files; the same hardlink groups; every file's sha256, fstab and cmdline.txt as the output
#     rewrites them (PARTUUID=1234abcd-NN becomes 0badcafe-NN);
#   - with the layout: / on the image's second partition, /boot/firmware on its first; the sparse file
#     still sparse.
# One appliance start, with TCG unless LIBGUESTFS_BACKEND_SETTINGS says otherwise: virt-ls is only the
# independent reader here, and KVM hangs or fails on machines whose /dev/kvm exists but does not work.
# Skipped (77) without root (the fixture holds a device node and uid 1000 files), without virt-ls
# (Debian package libguestfs-tools) or python3, or when virt-ls fails and libguestfs-test-tool cannot
# start an appliance either; virt-ls failing where the probe starts one is a failure.
# The fixture carries POSIX ACLs: the build must keep them (sdimage.sh compares them byte for byte).
#
# usage: bash tests/e2e/sdimage_guestfs.sh path/to/imgbuild
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib/common.sh
. "$HERE/lib/common.sh"
e2e_args "$@"
need_root "the fixture holds a device node and files of uid 1000"
command -v virt-ls > /dev/null || { echo "SKIP: virt-ls is not installed (Debian package libguestfs-tools)"; exit 77; }
need_tools python3 sfdisk mkfs.vfat mcopy mke2fs

export LC_ALL=C.UTF-8 LIBGUESTFS_BACKEND=${LIBGUESTFS_BACKEND:-direct} LIBGUESTFS_BACKEND_SETTINGS=${LIBGUESTFS_BACKEND_SETTINGS:-force_tcg}
W=$(mktemp -d /tmp/imgbuild-e2e-sdguestfs.XXXXXX)
trap 'rm -rf "$W"' EXIT
export IMGBUILD_CACHE=$W/cache
T0=$(date +%s)
# shellcheck source=lib/report.sh
. "$HERE/lib/report.sh"
same() { # LABEL WANT GOT
  if diff -u "$2" "$3" > "$W/diff.txt"; then
    ok "$1 ($(wc -l < "$3") lines)"
  else
    fail "$1; diff (${2#"$W"/} vs ${3#"$W"/}):"
    head -n 40 "$W/diff.txt" | sed 's/^/       /'
  fi
}

# ---- the image ------------------------------------------------------------------------------------
if ! bash "$HERE/../fixtures/make-image.sh" raspios "$W/fx.img" "$W/fx" > "$W/fx.log" 2>&1; then
  die "the raspios fixture could not be made: $(tail -n 5 "$W/fx.log")"
fi
printf 'base: {image: "%s"}\noutputs:\n  - sdimage: {path: out.img, disk_id: "0x0badcafe", boot_size: 64, align: 4, headroom: 16}\n' \
  "$W/fx.img" > "$W/recipe.yaml"
if ! SOURCE_DATE_EPOCH=1700000000 "$IMGBUILD" -q --out "$W/o" "$W/recipe.yaml" > "$W/build.log" 2>&1; then
  die "the build failed: $(head -c 600 "$W/build.log")"
fi
IMG=$W/o/out.img

# ---- the kernel's view: one appliance ---------------------------------------------------------------
# CSV columns with --uids --extra-stats --checksum: type, mode, size, uid, gid, dev, inode, nlink, rdev,
# blocks, sha256, path, symlink target.
if ! virt-ls --format=raw -a "$IMG" -m /dev/sda2:/::ext4 -m /dev/sda1:/boot/firmware::vfat \
  -lR --uids --extra-stats --checksum=sha256 --csv / > "$W/virt-ls.csv" 2> "$W/virt-ls.err"; then
  if ! guestfs_probe; then
    echo "SKIP: no libguestfs appliance can start here (libguestfs-test-tool with force_tcg: $GUESTFS_PROBE); virt-ls: $(head -c 300 "$W/virt-ls.err")"
    exit 77
  fi
  die "virt-ls could not list the image, though libguestfs-test-tool starts an appliance here: $(head -c 600 "$W/virt-ls.err")"
fi
ok "virt-ls listed the image: p2 mounted as ext4 at /, p1 as vfat at /boot/firmware ($(wc -l < "$W/virt-ls.csv") entries)"

# Normalised listings, one "path|type|mode|uid|gid|size|target-or-rdev" line per entry, sorted; for the
# kernel's view also the hardlink groups, checksums and per-entry device/blocks.
python3 - "$W" "$IMGBUILD" "$IMG" << 'EOF'
import csv, os, stat, subprocess, sys, hashlib, re
w, imgbuild, img = sys.argv[1:4]

def write(name, lines):
    with open(os.path.join(w, name), "w") as f:
        f.writelines(l + "\n" for l in sorted(lines))

# virt-ls: the Linux kernel's ext4 and vfat.
kernel, sums, devs, inodes = [], [], [], {}
for row in csv.reader(open(os.path.join(w, "virt-ls.csv"))):
    typ, mode, size, uid, gid, dev, ino, nlink, rdev, blocks, sha, path = [c.strip() for c in row[:12]]
    target = row[12] if len(row) > 12 else ""
    if path == "/":
        devs.append("/ " + dev)
        continue
    extra = target if typ == "l" else rdev if typ in "cb" else ""
    kernel.append("|".join([path, typ, mode, uid, gid, size if typ == "-" else "", extra]))
    if typ == "-":
        sums.append(path + " " + sha)
        inodes.setdefault((dev, ino), []).append(path)
    if path in ("/boot/firmware", "/etc", "/var/sparse.img"):
        devs.append(path + " " + dev + (" blocks=" + blocks if path == "/var/sparse.img" else ""))
write("kernel.list", kernel)
write("kernel.sums", sums)
write("kernel.devs", devs)
write("kernel.links", [" ".join(sorted(v)) for v in inodes.values() if len(v) > 1])

# imgbuild ls -R: the Tree as imgbuild's own readers see the image.
def octal(perms):
    bits = 0
    for i, (c, on) in enumerate(zip(perms, "rwxrwxrwx")):
        if c in (on, "s", "t"):
            bits |= 1 << (8 - i)
    if perms[2] in "sS": bits |= 0o4000
    if perms[5] in "sS": bits |= 0o2000
    if perms[8] in "tT": bits |= 0o1000
    return "%04o" % bits
tree, tree_links = [], {}
out = subprocess.run([imgbuild, "ls", "-R", img], capture_output=True, text=True, check=True).stdout
for line in out.splitlines():
    m = re.match(r"^(\S)(\S{9})\+? (\d+) (\d+) (\S+) \S+ \S+ (.*)$", line)  # "+": the entry has an ACL
    if not m:
        print("FAIL - imgbuild ls -R: unexpected line: " + line)
        continue
    typ, perms, uid, gid, size, rest = m.groups()
    target = ""
    if typ == "l":
        rest, target = rest.split(" -> ", 1)
    elif " => " in rest:
        rest, leader = rest.split(" => ", 1)
        tree_links.setdefault(leader, [leader]).append(rest)
    extra = target if typ == "l" else size.replace(",", ":") if typ in "cb" else ""
    tree.append("|".join([rest, typ, octal(perms), uid, gid, size if typ == "-" else "", extra]))
write("tree.list", tree)
write("tree.links", [" ".join(sorted(v)) for v in tree_links.values()])

# The fixture's source folders: the root, and the boot files under /boot/firmware.
TYPES = {stat.S_IFDIR: "d", stat.S_IFREG: "-", stat.S_IFLNK: "l", stat.S_IFCHR: "c", stat.S_IFBLK: "b",
         stat.S_IFIFO: "p", stat.S_IFSOCK: "s"}
src_root, src_boot, src_sums, src_inodes = [], [], [], {}
def walk(top, prefix, into, boot):
    for d, dirs, files in os.walk(top):
        for n in sorted(dirs + files):
            p = os.path.join(d, n)
            path = prefix + "/" + os.path.relpath(p, top)
            st = os.lstat(p)
            typ = TYPES[stat.S_IFMT(st.st_mode)]
            if boot:  # FAT keeps names, kinds and sizes only
                into.append("|".join([path, typ, "", "", "", str(st.st_size) if typ == "-" else "", ""]))
            else:
                extra = os.readlink(p) if typ == "l" else "%d:%d" % (os.major(st.st_rdev), os.minor(st.st_rdev)) if typ in "cb" else ""
                into.append("|".join([path, typ, "%04o" % stat.S_IMODE(st.st_mode), str(st.st_uid), str(st.st_gid),
                                      str(st.st_size) if typ == "-" else "", extra]))
                if typ == "-":
                    src_inodes.setdefault(st.st_ino, []).append(path)
            if typ == "-":
                data = open(p, "rb").read()
                if path in ("/etc/fstab", "/boot/firmware/cmdline.txt"):
                    data = data.replace(b"PARTUUID=1234abcd-", b"PARTUUID=0badcafe-")
                src_sums.append(path + " " + hashlib.sha256(data).hexdigest())
walk(os.path.join(w, "fx/root"), "", src_root, False)
walk(os.path.join(w, "fx/boot"), "/boot/firmware", src_boot, True)
write("source.root", src_root)
write("source.boot", src_boot)
write("source.sums", src_sums)
write("source.links", [" ".join(sorted(v)) for v in src_inodes.values() if len(v) > 1])
EOF

# ---- comparisons ----------------------------------------------------------------------------------
same "the kernel lists what imgbuild's Tree listing of the image lists (names, types, modes, owners, sizes, symlink targets, device numbers)" \
  "$W/tree.list" "$W/kernel.list"
same "hardlink groups: the kernel's (shared inodes) equal the Tree listing's" "$W/tree.links" "$W/kernel.links"
grep -v -e '^/lost+found|' -e '^/boot/firmware/' "$W/kernel.list" > "$W/kernel.root"
same "the root filesystem through the kernel equals the source root folder (lost+found aside)" "$W/source.root" "$W/kernel.root"
grep '^/boot/firmware/' "$W/kernel.list" | awk -F'|' -v OFS='|' '{ $3 = $4 = $5 = ""; print }' > "$W/kernel.boot"
same "the boot partition through the kernel's vfat equals the source boot folder (names, long ones too, types, sizes)" \
  "$W/source.boot" "$W/kernel.boot"
same "hardlink groups through the kernel equal the source's" "$W/source.links" "$W/kernel.links"
same "every file's sha256 through the kernel equals the source's (fstab and cmdline.txt with PARTUUID 0badcafe-NN)" \
  "$W/source.sums" "$W/kernel.sums"

root_dev=$(awk '$1 == "/" { print $2 }' "$W/kernel.devs")
etc_dev=$(awk '$1 == "/etc" { print $2 }' "$W/kernel.devs")
boot_dev=$(awk '$1 == "/boot/firmware" { print $2 }' "$W/kernel.devs")
# The appliance names the image's disk sda or sdb (8:0 or 8:16, by libguestfs version and backend):
# what counts is one disk, its partition 2 for / and /etc and partition 1 for /boot/firmware.
part_of() { # part_of MAJOR:MINOR -> "DISK PARTITION" for a SCSI disk (16 minors each)
  local major=${1%%:*} minor=${1#*:}
  [ "$major" = 8 ] && [ -n "$minor" ] && echo "$((minor / 16)) $((minor % 16))"
}
r=$(part_of "$root_dev" || true) e=$(part_of "$etc_dev" || true) b=$(part_of "$boot_dev" || true)
if [ -n "$r" ] && [ "$r" = "$e" ] && [ "${r#* }" = 2 ] && [ "${b#* }" = 1 ] && [ "${r% *}" = "${b% *}" ]; then
  ok "/ and /etc are on the image's partition 2 ($root_dev), /boot/firmware on its partition 1 ($boot_dev)"
else
  fail "devices: / on '$root_dev', /etc on '$etc_dev', /boot/firmware on '$boot_dev' (want partitions 2, 2 and 1 of one disk)"
fi
blocks=$(sed -n 's|^/var/sparse.img .* blocks=||p' "$W/kernel.devs")
if [ -n "$blocks" ] && [ "$blocks" -le 64 ]; then
  ok "var/sparse.img (8 MiB, 6 bytes of data) takes $blocks sectors: its holes stayed holes"
else
  fail "var/sparse.img takes '$blocks' sectors (want at most 64: a hole was written)"
fi

echo
echo "info - took $(($(date +%s) - T0)) s"
finish sdimage_guestfs
exit 0
