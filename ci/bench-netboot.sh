#!/usr/bin/env bash
# Benchmark of the `netboot` output against the guides' way, `cp -a` of the root once per node.
# Prints, for NODES nodes (default 32) of a root of about SIZE_MIB MiB (default 1024), measured in the
# same run on the same disk:
#   - time: imgbuild's build (TFTP folders, NFS roots, server files) vs. NODES x `cp -a` of the root,
#     each followed by `sync` (otherwise the page cache hides most of cp's writing); target < 0.1;
#   - disk: `du` of imgbuild's output vs. of the copies (du counts a hardlinked file once); target < 0.1;
#   - a second imgbuild build with nothing changed (in-place update: should write nothing);
#   - the same two ratios with share: export (one read-only /usr export instead of links per node);
#   - for scale, `cp -al` of the root once per node: every file a hardlink, no data written. Any
#     design with a tree of names per node (as hardlinks from a store are) costs at least that.
# imgbuild runs twice (before and after the copies; the faster run counts, as the machine may be
# shared), and nothing is removed until the end. Needs about NODES + 4 times the root's size free.
#
# The root: a Debian root filesystem tarball (ROOT_TAR; default: the debootstrapped amd64 root that
# tests/e2e/boot_qemu.sh caches in /var/tmp/imgbuild-boot-root/, about 690 MB), unpacked, then padded
# with generated files under /usr/share/bench-pad whose sizes follow those of the root's own /usr files,
# up to SIZE_MIB. Without a tarball the whole root is generated that way (a synthetic /usr, /etc, /var).
#
# usage: ci/bench-netboot.sh [path/to/imgbuild]   (as root: the roots keep their owners)
#        env NODES=32 SIZE_MIB=1024 ROOT_TAR=path/to/root.tar WORK=dir-on-the-disk-to-measure
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
IMGBUILD=$(realpath "${1:-build/builder/imgbuild}")
NODES=${NODES:-32}
SIZE_MIB=${SIZE_MIB:-1024}
if [ -z "${ROOT_TAR:-}" ]; then
  ROOT_TAR=$(ls /var/tmp/imgbuild-boot-root/*/root.tar 2> /dev/null | head -n 1)
fi
[ "$(id -u)" = 0 ] || { echo "bench-netboot: run as root (the roots keep their owners)" >&2; exit 2; }
[ -x "$IMGBUILD" ] || { echo "bench-netboot: '$IMGBUILD' is not an executable" >&2; exit 2; }
work=$(mktemp -d "${WORK:-/var/tmp}/imgbuild-bench-netboot.XXXXXX")
trap 'rm -rf "$work"' EXIT
export IMGBUILD_CACHE=$work/cache SOURCE_DATE_EPOCH=1700000000 LC_ALL=C
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }
verdict() { awk -v r="$1" 'BEGIN { print (r < 0.1 ? "target < 0.1 met" : "target < 0.1 MISSED") }'; }

# ---- the root -------------------------------------------------------------------------------------
R=$work/root
mkdir -p "$R"
if [ -n "$ROOT_TAR" ] && [ -f "$ROOT_TAR" ]; then
  tar -xpf "$ROOT_TAR" -C "$R" --numeric-owner --xattrs --xattrs-include='*' || exit 1
  origin="$ROOT_TAR"
else
  origin="synthetic"
  mkdir -p "$R"/{etc/ssh,var/lib/dpkg/info,var/log,var/cache/apt,home/user,root,tmp,dev,proc,sys,boot}
  mkdir -p "$R/usr"/{bin,sbin,lib/x86_64-linux-gnu,share/doc}
  ln -s usr/bin "$R/bin" && ln -s usr/sbin "$R/sbin" && ln -s usr/lib "$R/lib"
  chmod 1777 "$R/tmp"
  mknod -m 666 "$R/dev/null" c 1 3
fi
# Files with the size mix of a Debian /usr (or, synthetic, a typical one), until the root is SIZE_MIB.
python3 - "$R" "$SIZE_MIB" << 'EOF' || exit 1
import os, random, sys
root, target = sys.argv[1], int(sys.argv[2]) << 20
rng = random.Random(1)
sizes = []
for d, _, files in os.walk(os.path.join(root, "usr")):
    for f in files:
        p = os.path.join(d, f)
        if not os.path.islink(p):
            sizes.append(os.lstat(p).st_size)
if len(sizes) < 1000:  # synthetic: mostly small files, a few large ones (log-normal, median ~4 KiB)
    sizes = [int(rng.lognormvariate(8.3, 2.0)) % (64 << 20) for _ in range(20000)]
def used():
    total = 0
    for d, _, files in os.walk(root):
        for f in files:
            total += os.lstat(os.path.join(d, f)).st_size
    return total
have = used()
if not os.path.exists(os.path.join(root, "etc", "passwd")):  # synthetic /etc and /var
    for rel, n, size in (("etc/conf", 400, 2000), ("var/lib/dpkg/info", 3000, 1500), ("var/log", 20, 50000),
                         ("var/cache/apt", 2, 20 << 20), ("usr/share/doc/pkg", 2000, 3000)):
        os.makedirs(os.path.join(root, rel), exist_ok=True)
        for i in range(n):
            with open(os.path.join(root, rel, "f%05d" % i), "wb") as f:
                f.write(rng.randbytes(size))
            have += size
    with open(os.path.join(root, "etc/passwd"), "w") as f:
        f.write("root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh\n")
    with open(os.path.join(root, "etc/hostname"), "w") as f:
        f.write("bench\n")
pad = os.path.join(root, "usr/share/bench-pad")
i = 0
while have < target:
    d = os.path.join(pad, "d%03d" % (i // 500))
    os.makedirs(d, exist_ok=True)
    size = min(rng.choice(sizes), target - have)
    with open(os.path.join(d, "f%06d" % i), "wb") as f:
        f.write(rng.randbytes(size))
    have += size
    i += 1
EOF
# The boot folder netboot serves by TFTP: the kernel and initrd in /boot, and a cmdline.txt beside them.
printf 'console=ttyS0 root=/dev/vda1 rw\n' > "$R/boot/cmdline.txt"
printf '[all]\narm_64bit=1\n' > "$R/boot/config.txt"
files=$(find "$R" -type f | wc -l)
bytes=$(du -sb "$R" | cut -f1)

{
  echo "name: bench"
  echo "base: {dir: $R}"
  echo "nodes:"
  for i in $(seq 1 "$NODES"); do
    printf '  - {name: node-%d, mac: "b8:27:eb:00:%02x:%02x", ip: 10.0.%d.%d/16}\n' "$i" $((i / 256)) $((i % 256)) $((i / 256)) $((i % 256 + 1))
  done
  echo "steps:"
  echo "  - hostname: \"{{node.name}}\""
  echo "outputs:"
  echo "  - netboot: {server: 10.0.255.254, subnet: 10.0.0.0/16}"
} > "$work/recipe.yaml"
sed 's/^  - netboot: {\(.*\)}$/  - netboot: {\1, share: export}/' "$work/recipe.yaml" > "$work/export.yaml"

# ---- measure --------------------------------------------------------------------------------------
# imgbuild before and after the copies (the better of the two counts: the machine may be shared), and
# nothing is deleted until the end: a filesystem is slower to create files right after mass deletes.
run_imgbuild() { # OUT [RECIPE]
  sync
  local t0 t1
  t0=$(now)
  "$IMGBUILD" -q --out "$1" "${2:-$work/recipe.yaml}" || { echo "bench-netboot: imgbuild failed" >&2; exit 1; }
  sync
  t1=$(now)
  secs "$t0" "$t1"
}
img1_s=$(run_imgbuild "$work/out1") || exit 1
img_du=$(du -s --block-size=1 "$work/out1" | cut -f1)
exp1_s=$(run_imgbuild "$work/exp1" "$work/export.yaml") || exit 1
exp_du=$(du -s --block-size=1 "$work/exp1" | cut -f1)

copy_per_node() { # DIR CP_OPTION: the root copied once per node into DIR; prints the seconds, sync included
  mkdir -p "$1"
  sync
  local t0 t1 i
  t0=$(now)
  for i in $(seq 1 "$NODES"); do
    cp "$2" "$R" "$1/node-$i" || { echo "bench-netboot: cp $2 failed" >&2; exit 1; }
  done
  sync
  t1=$(now)
  secs "$t0" "$t1"
}
cp_s=$(copy_per_node "$work/cp" -a) || exit 1
cp_du=$(du -s --block-size=1 "$work/cp" | cut -f1)
# The floor of any tree of names per node: `cp -al` links every file, writes no data.
links_s=$(copy_per_node "$work/links" -al) || exit 1

img2_s=$(run_imgbuild "$work/out2") || exit 1
again_s=$(run_imgbuild "$work/out2") || exit 1
exp2_s=$(run_imgbuild "$work/exp2" "$work/export.yaml") || exit 1
img_s=$(awk -v a="$img1_s" -v b="$img2_s" 'BEGIN { print (a < b ? a : b) }')
exp_s=$(awk -v a="$exp1_s" -v b="$exp2_s" 'BEGIN { print (a < b ? a : b) }')

t_ratio=$(ratio "$img_s" "$cp_s")
d_ratio=$(ratio "$img_du" "$cp_du")
echo "root: $origin + generated files: $files files, $((bytes >> 20)) MiB; $NODES nodes"
echo "cp -a x $NODES, sync:               ${cp_s} s   $((cp_du >> 20)) MiB"
echo "imgbuild netboot, sync:          ${img_s} s   $((img_du >> 20)) MiB   (runs: ${img1_s} s before the copies, ${img2_s} s after)"
echo "time ratio:                      $t_ratio ($(verdict "$t_ratio"))"
echo "  for scale: cp -al x $NODES (hardlinks only, no data; the floor of a tree of names per node): ${links_s} s, ratio $(ratio "$links_s" "$cp_s")"
echo "disk ratio:                      $d_ratio ($(verdict "$d_ratio"))"
echo "imgbuild again, nothing changed: ${again_s} s"
echo "share: export (one /usr export):  ${exp_s} s   $((exp_du >> 20)) MiB   (runs: ${exp1_s} s, ${exp2_s} s)"
echo "  time ratio $(ratio "$exp_s" "$cp_s") ($(verdict "$(ratio "$exp_s" "$cp_s")")), disk ratio $(ratio "$exp_du" "$cp_du") ($(verdict "$(ratio "$exp_du" "$cp_du")"))"
echo "(removing the copies now; that takes a while)"
