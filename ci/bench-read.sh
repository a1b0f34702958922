#!/usr/bin/env bash
# Benchmark of imgbuild's image reading: decode throughput (.img.xz, .img.zst) against the reference
# decompressors, a warm build from the decoded image with what checking the cache entry costs, time
# to read every inode of a ~15,000-file root, and peak memory of both.
# Prints figures and the targets (decode ratio >= 0.9, peak memory < 256 MiB); never fails on speed
# (exit 1 only when a command fails). Times are the best of 2 runs, wall clock.
#
# usage: ci/bench-read.sh [path/to/imgbuild]     (default: build/builder/imgbuild; run as root)
#
# The image is built once and kept in build/bench/ (delete that folder to rebuild it): 1 GiB, raspios
# layout like tests/fixtures/make-image.sh (dos table, disk id 0x1234abcd, p1 FAT32 "bootfs" of 120 MiB
# at sector 8192, p2 ext4 "rootfs" of 900 MiB to the end), the root made by mke2fs -d from a sample of
# the host's /usr/share and /usr/lib (about 15,000 files and 500 symlinks, about 600 MB), then xz -T0 and zstd -T0.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
REPO=$(pwd)
IMGBUILD=$(realpath "${1:-build/builder/imgbuild}")
[ -x "$IMGBUILD" ] || { echo "bench-read: '$IMGBUILD' is not an executable (build first, or pass its path)" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "bench-read: run as root (the root tree is copied with owners)" >&2; exit 2; }
for tool in sfdisk mkfs.vfat mcopy mke2fs xz zstd tar; do
  command -v "$tool" > /dev/null || { echo "bench-read: '$tool' is not installed" >&2; exit 2; }
done
[ -x /usr/bin/time ] || { echo "bench-read: /usr/bin/time is not installed (Debian package 'time')" >&2; exit 2; }

BENCH=$REPO/build/bench
VERSION=2 # bump when the image recipe below changes
IMG=$BENCH/raspios-1g.img
mkdir -p "$BENCH"
export LC_ALL=C

# ---- the image, once ------------------------------------------------------------------------------
build_image() {
  local work=$BENCH/src mib=$((1024 * 1024))
  rm -rf "$work" "$IMG" "$IMG.xz" "$IMG.zst" "$BENCH/stamp"
  mkdir -p "$work/root" "$work/boot"
  local root=$work/root boot=$work/boot
  echo "bench-read: building $IMG (once)"
  # A sample of the host's /usr/share and /usr/lib: every Nth regular file (N so that ~14,950 come out),
  # then some of the larger remaining files until 600 MB, and every Nth symlink (~500).
  find /usr/share /usr/lib -xdev -type f -size -16M -printf '%s\t%p\n' 2> /dev/null | sort -t$'\t' -k2 > "$work/files.txt"
  find /usr/share /usr/lib -xdev -type l -printf '%p\n' 2> /dev/null | sort > "$work/links.txt"
  local nf nl
  nf=$(wc -l < "$work/files.txt") nl=$(wc -l < "$work/links.txt")
  awk -F'\t' -v s=$(((nf + 14949) / 14950)) 'NR % s == 0 && n < 14950 { n++; b += $1; print $2; next }
    $1 >= 1048576 { big[++m] = $1 "\t" $2 }
    END { for (i = 1; i <= m && b < 600 * 1000 * 1000; i += 3) { split(big[i], f, "\t"); if (b + f[1] <= 600 * 1000 * 1000) { b += f[1]; print f[2] } } }' \
    "$work/files.txt" > "$work/list.txt"
  awk -v s=$(((nl + 499) / 500)) 'NR % s == 0' "$work/links.txt" >> "$work/list.txt"
  tar -cf - --no-recursion -T "$work/list.txt" 2> /dev/null | tar -xpf - -C "$root"
  mkdir -p "$root"/{etc,boot/firmware,dev,proc,sys,tmp,home/pi,var/log}
  printf 'PRETTY_NAME="Raspbian GNU/Linux 12 (bookworm)"\nID=raspbian\nID_LIKE=debian\nVERSION_ID="12"\n' > "$root/etc/os-release"
  echo "Raspberry Pi reference 2024-11-19" > "$root/etc/rpi-issue"
  printf 'proc /proc proc defaults 0 0\nPARTUUID=1234abcd-01 /boot/firmware vfat defaults 0 2\nPARTUUID=1234abcd-02 / ext4 defaults,noatime 0 1\n' > "$root/etc/fstab"
  echo raspberrypi > "$root/etc/hostname"
  chown -R 1000:1000 "$root/home/pi"
  printf 'console=serial0,115200 console=tty1 root=PARTUUID=1234abcd-02 rootfstype=ext4 fsck.repair=yes rootwait\n' > "$boot/cmdline.txt"
  printf '[all]\narm_64bit=1\n' > "$boot/config.txt"
  mkdir -p "$boot/overlays"
  head -c 2900000 /dev/urandom > "$boot/start4.elf"
  head -c 8000000 /dev/urandom > "$boot/kernel8.img"
  for i in $(seq 1 40); do head -c 3000 /dev/urandom > "$boot/overlays/o$i.dtbo"; done

  local bootsize=120 rootsize=900
  truncate -s $(((4 + bootsize + rootsize) * mib)) "$IMG"
  printf 'label: dos\nlabel-id: 0x1234abcd\nunit: sectors\n\nstart=8192, size=%d, type=c\nstart=%d, type=83\n' \
    $((bootsize * 2048)) $(((4 + bootsize) * 2048)) | sfdisk -q "$IMG" || return 1
  truncate -s "${bootsize}M" "$work/boot.fat"
  mkfs.vfat -F 32 -S 512 -s 1 -n bootfs -i 5E3F0A1B "$work/boot.fat" > /dev/null 2>&1 || return 1
  (cd "$boot" && mcopy -s -p -m -i "$work/boot.fat" ./* ::/) || return 1
  mke2fs -q -F -t ext4 -O ^orphan_file,^metadata_csum_seed -L rootfs -U 0b0e7d5c-2f1a-4b55-9a5e-4c7f7b0c0001 \
    -E root_owner=0:0 -d "$root" "$work/root.ext4" "${rootsize}M" > /dev/null || return 1
  dd if="$work/boot.fat" of="$IMG" bs=1M seek=4 conv=notrunc,sparse status=none
  dd if="$work/root.ext4" of="$IMG" bs=1M seek=$((4 + bootsize)) conv=notrunc,sparse status=none
  echo "bench-read: root tree: $(find "$root" | wc -l) names, $(find "$root" -type f | wc -l) files, $(du -sm "$root" | cut -f1) MB"
  echo "bench-read: compressing (xz -T0, zstd -T0)"
  xz -T0 -k "$IMG" && zstd -q -T0 -k "$IMG" || return 1
  rm -rf "$work"
  echo "$VERSION" > "$BENCH/stamp"
}
if [ "$(cat "$BENCH/stamp" 2> /dev/null)" != "$VERSION" ] || [ ! -f "$IMG" ] || [ ! -f "$IMG.xz" ] || [ ! -f "$IMG.zst" ]; then
  t0=$(date +%s)
  build_image || { echo "bench-read: building the image failed" >&2; exit 1; }
  echo "bench-read: image built in $(($(date +%s) - t0)) s"
fi

# ---- measurements ---------------------------------------------------------------------------------
TMP=$(mktemp -d "$BENCH/tmp.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
ms() { date +%s%3N; }
# measure NAME CMD...: runs CMD (stdout to /dev/null) under /usr/bin/time, $REPS times (before each
# run, $BEFORE is eval'ed: emptying the cache); sets WALL_MS (the best run) and RSS_KB (the highest peak).
REPS=2
BEFORE=:
measure() {
  local name=$1 t0 t1 i rc rss
  shift
  WALL_MS= RSS_KB=0
  for ((i = 0; i < REPS; i++)); do
    eval "$BEFORE"
    t0=$(ms)
    /usr/bin/time -f '%M' -o "$TMP/$name.time" "$@" > /dev/null 2> "$TMP/$name.err"
    rc=$?
    t1=$(ms)
    [ "$rc" = 0 ] || { echo "bench-read: '$*' failed (exit $rc): $(head -c 400 "$TMP/$name.err")" >&2; FAILED=1; }
    [ -z "$WALL_MS" ] || [ $((t1 - t0)) -lt "$WALL_MS" ] && WALL_MS=$((t1 - t0))
    rss=$(tail -n1 "$TMP/$name.time")
    [ "$rss" -gt "$RSS_KB" ] && RSS_KB=$rss
  done
}
FAILED=0
secs() { awk -v m="$1" 'BEGIN { printf "%.2f s", m / 1000 }'; }
mibs() { awk -v b="$1" -v m="$2" 'BEGIN { printf "%.0f MiB/s", m ? b / 1048576 / (m / 1000) : 0 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b ? a / b : 0 }'; }
rss() { awk -v k="$1" 'BEGIN { printf "%.1f MiB", k / 1024 }'; }

SIZE=$(stat -c %s "$IMG")
cat "$IMG.xz" "$IMG.zst" > /dev/null # into the page cache, for both sides alike
echo
echo "image: $IMG ($((SIZE / 1048576)) MiB; .xz $(($(stat -c %s "$IMG.xz") / 1048576)) MiB, .zst $(($(stat -c %s "$IMG.zst") / 1048576)) MiB), $(nproc) CPUs"
echo "imgbuild: $IMGBUILD"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg) (figures are wall-clock times: a busy machine skews them)"
echo

declare -A REF=([xz]="xz -dc" [zst]="zstd -dc")
MAXDEC=0
for fmt in xz zst; do
  read -ra ref <<< "${REF[$fmt]}"
  measure "ref-$fmt" "${ref[@]}" "$IMG.$fmt"
  ref_ms=$WALL_MS ref_rss=$RSS_KB
  BEFORE='rm -rf "$TMP/cache"' IMGBUILD_CACHE=$TMP/cache measure "ib-$fmt" "$IMGBUILD" inspect "$IMG.$fmt"
  ib_ms=$WALL_MS ib_rss=$RSS_KB
  IMGBUILD_CACHE=$TMP/cache measure "ib-$fmt-hit" "$IMGBUILD" inspect "$IMG.$fmt"
  hit_ms=$WALL_MS
  rm -rf "$TMP/cache"
  [ "$ib_rss" -gt "$MAXDEC" ] && MAXDEC=$ib_rss
  printf '%-4s decode: %-10s %s (%s, peak %s) | imgbuild inspect, empty cache: %s (%s, peak %s) | ratio %s (target >= 0.9) | cached: %s\n' \
    "$fmt" "${REF[$fmt]}" "$(secs "$ref_ms")" "$(mibs "$SIZE" "$ref_ms")" "$(rss "$ref_rss")" \
    "$(secs "$ib_ms")" "$(mibs "$SIZE" "$ib_ms")" "$(rss "$ib_rss")" "$(ratio "$ref_ms" "$ib_ms")" "$(secs "$hit_ms")"
done
# A warm build (the .zst image decoded in the cache already, one tar output), and what checking the
# cache entry before use costs: a stat against its record while it is unchanged, a hash of the whole
# decoded image once it changed (here: touched before each run).
printf 'base: {image: "%s"}\noutputs:\n  - tar: {path: warm.tar}\n' "$IMG.zst" > "$TMP/warm.yaml"
IMGBUILD_CACHE=$TMP/cache "$IMGBUILD" inspect "$IMG.zst" > /dev/null 2>&1
BEFORE='rm -rf "$TMP/out"' IMGBUILD_CACHE=$TMP/cache measure warm "$IMGBUILD" -q "$TMP/warm.yaml" --out "$TMP/out"
warm_ms=$WALL_MS
BEFORE='rm -rf "$TMP/out"; touch "$TMP"/cache/decoded/*.img' IMGBUILD_CACHE=$TMP/cache measure warm-changed "$IMGBUILD" -q "$TMP/warm.yaml" --out "$TMP/out"
changed_ms=$WALL_MS
touch "$TMP"/cache/decoded/*.img
verify=$(IMGBUILD_CACHE=$TMP/cache "$IMGBUILD" -v inspect "$IMG.zst" 2>&1 > /dev/null | sed -n 's/.*still has its sha256 (\([0-9.]*\) s).*/\1/p')
rm -rf "$TMP/cache" "$TMP/out"
printf 'warm build from the decoded .zst (one tar output): %s, its cache entry checked by a stat (target: the check < 0.2 of the build) | after the entry changed: %s (one full check of %s, %s of the warm build, then a stat again)\n' \
  "$(secs "$warm_ms")" "$(secs "$changed_ms")" "${verify:-?} s" "$(ratio "$(awk -v v="${verify:-0}" 'BEGIN { print v * 1000 }')" "$warm_ms")"
measure ref-xz-mt xz -T0 -dc "$IMG.xz"
echo "     (for reference: xz -T0 -dc $(secs "$WALL_MS"), $(mibs "$SIZE" "$WALL_MS"))"

IMGBUILD_CACHE=$TMP/cache measure tree "$IMGBUILD" ls -R "$IMG"
tree_ms=$WALL_MS tree_rss=$RSS_KB
IMGBUILD_CACHE=$TMP/cache "$IMGBUILD" ls -R "$IMG" 2> /dev/null > "$TMP/ls.txt"
echo "tree read: imgbuild ls -R (every inode, $(wc -l < "$TMP/ls.txt") names): $(secs "$tree_ms"), peak $(rss "$tree_rss")"
echo
echo "peak memory: decode $(rss "$MAXDEC"), tree read $(rss "$tree_rss") (target < 256 MiB)"
exit "$FAILED"
