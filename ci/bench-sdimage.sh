#!/usr/bin/env bash
# Benchmark of SD image writing. Prints, never fails on speed:
#  1. writing the image from a ~650 MB, ~15,000-file root, as a ratio to `mke2fs -d` populating an ext4
#     of the same root in the same run (target: at most 1.0);
#  2. the whole build from a compressed base (.img.xz -> .img, empty cache) as a ratio to `xz -dc` of
#     that input alone (target: at most 1.5).
# Uses the 1 GiB image ci/bench-read.sh builds and keeps in build/bench/ (it runs that script first
# when the image is missing).
#
# usage: ci/bench-sdimage.sh [path/to/imgbuild]     (run as root: the root tree keeps its owners)
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
IMGBUILD=$(realpath "${1:-build/builder/imgbuild}")
BENCH=$(pwd)/build/bench
[ -f "$BENCH/raspios-1g.img.xz" ] || bash ci/bench-read.sh "$IMGBUILD" > /dev/null || exit 1
work=$(mktemp -d "${TMPDIR:-/tmp}/imgbuild-bench-sd.XXXXXX")
trap 'rm -rf "$work"' EXIT
export IMGBUILD_CACHE=$work/cache SOURCE_DATE_EPOCH=1700000000 LC_ALL=C
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

# The root as a folder: what mke2fs -d reads, and what imgbuild reads as a `dir` base.
printf 'base: {image: %s}\noutputs: [{tar: {path: root.tar}}]\n' "$BENCH/raspios-1g.img" > "$work/extract.yaml"
"$IMGBUILD" -q --out "$work/x" "$work/extract.yaml" || exit 1
mkdir -p "$work/root" && bsdtar -xpf "$work/x/root.tar" -C "$work/root" || exit 1
rm -rf "$work/x"
files=$(find "$work/root" -type f | wc -l) bytes=$(du -sb "$work/root" | cut -f1)

best_mke2fs=999999 best_img=999999 best_img_bmap=999999
for run in 1 2; do
  rm -f "$work/ext.img"
  t0=$(now); mke2fs -q -F -t ext4 -d "$work/root" "$work/ext.img" 1400M || exit 1; t1=$(now)
  best_mke2fs=$(awk -v a="$best_mke2fs" -v b="$(secs "$t0" "$t1")" 'BEGIN { print (b < a ? b : a) }')
  for bmap in false true; do
    printf 'base: {dir: %s}\noutputs: [{sdimage: {path: sd.img, bmap: %s}}]\n' "$work/root" "$bmap" > "$work/sd.yaml"
    rm -rf "$work/o"
    t0=$(now); "$IMGBUILD" -q --out "$work/o" "$work/sd.yaml" || exit 1; t1=$(now)
    s=$(secs "$t0" "$t1")
    if [ $bmap = false ]; then best_img=$(awk -v a="$best_img" -v b="$s" 'BEGIN { print (b < a ? b : a) }')
    else best_img_bmap=$(awk -v a="$best_img_bmap" -v b="$s" 'BEGIN { print (b < a ? b : a) }'); fi
  done
done
echo "root: $files files, $((bytes / 1000000)) MB"
echo "mke2fs -d (ext4 only):                  ${best_mke2fs} s"
echo "imgbuild sdimage, no bmap:              ${best_img} s   ratio $(awk -v a="$best_img" -v b="$best_mke2fs" 'BEGIN { printf "%.2f", a / b }') (target <= 1.0; includes the FAT partition and SHA256SUMS)"
echo "imgbuild sdimage, with bmap:            ${best_img_bmap} s   ratio $(awk -v a="$best_img_bmap" -v b="$best_mke2fs" 'BEGIN { printf "%.2f", a / b }')"

t0=$(now); xz -dc "$BENCH/raspios-1g.img.xz" > /dev/null; t1=$(now); xz_s=$(secs "$t0" "$t1")
printf 'base: {image: %s}\noutputs: [{sdimage: {path: sd.img}}]\n' "$BENCH/raspios-1g.img.xz" > "$work/xz.yaml"
rm -rf "$work/cache" "$work/o"
t0=$(now); "$IMGBUILD" -q --out "$work/o" "$work/xz.yaml" || exit 1; t1=$(now); build_s=$(secs "$t0" "$t1")
echo "xz -dc of the .img.xz:                  ${xz_s} s"
echo "imgbuild .img.xz -> .img (empty cache): ${build_s} s   ratio $(awk -v a="$build_s" -v b="$xz_s" 'BEGIN { printf "%.2f", a / b }') (target <= 1.5)"
