#!/usr/bin/env bash
# Benchmark of SD image writing. Prints, never fails on speed:
#  1. writing the image from a ~650 MB, ~15,000-file root, as a ratio to `mke2fs -d` populating an ext4
#     of the same root in the same run (target: at most 1.0);
#  2. the whole build from a compressed base (.img.xz -> .img, empty cache) as a ratio to `xz -dc` of
#     that input alone (target: at most 1.5).
# Uses the 1 GiB image ci/bench-read.sh builds and keeps in build/bench/ (it runs that script first
# when the image is missing). Times are wall clock, the best of 3 runs, with the CPU time (user + sys,
# every thread) of that run beside them: on a shared machine the wall clock moves with the load (shown
# before and after), the CPU time much less. mke2fs syncs the file it wrote before it exits; imgbuild
# does not (its outputs are renamed into place like any build output).
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

# timed NAME CMD...: runs CMD, sets NAME_wall and NAME_cpu to the best wall time so far and its CPU time.
timed() {
  local name=$1 t
  shift
  /usr/bin/time -f '%e %U %S' -o "$work/time" "$@" || exit 1
  t=$(awk '{ printf "%.2f %.2f", $1, $2 + $3 }' "$work/time")
  local wall=${t% *} cpu=${t#* } best=${name}_wall
  if awk -v a="$wall" -v b="${!best:-999999}" 'BEGIN { exit !(a < b) }'; then
    printf -v "${name}_wall" '%s' "$wall"
    printf -v "${name}_cpu" '%s' "$cpu"
  fi
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
for run in 1 2 3; do
  rm -f "$work/ext.img" && truncate -s 1400M "$work/ext.img"
  timed mke2fs mke2fs -q -F -t ext4 -d "$work/root" "$work/ext.img"
  for bmap in false true; do
    printf 'base: {dir: %s}\noutputs: [{sdimage: {path: sd.img, bmap: %s}}]\n' "$work/root" "$bmap" > "$work/sd.yaml"
    rm -rf "$work/o"
    timed "img_$bmap" "$IMGBUILD" -q --out "$work/o" "$work/sd.yaml"
  done
done
echo "root: $files files, $((bytes / 1000000)) MB; load average before: $load_before, after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "mke2fs -d (ext4 only):                  ${mke2fs_wall} s (CPU ${mke2fs_cpu} s)"
echo "imgbuild sdimage, no bmap:              ${img_false_wall} s (CPU ${img_false_cpu} s)   ratio $(ratio "$img_false_wall" "$mke2fs_wall") (target <= 1.0; includes the FAT partition and SHA256SUMS)"
echo "imgbuild sdimage, with bmap:            ${img_true_wall} s (CPU ${img_true_cpu} s)   ratio $(ratio "$img_true_wall" "$mke2fs_wall")"

t0=$(now); xz -dc "$BENCH/raspios-1g.img.xz" > /dev/null; t1=$(now); xz_s=$(secs "$t0" "$t1")
printf 'base: {image: %s}\noutputs: [{sdimage: {path: sd.img}}]\n' "$BENCH/raspios-1g.img.xz" > "$work/xz.yaml"
rm -rf "$work/cache" "$work/o"
t0=$(now); "$IMGBUILD" -q --out "$work/o" "$work/xz.yaml" || exit 1; t1=$(now); build_s=$(secs "$t0" "$t1")
echo "xz -dc of the .img.xz:                  ${xz_s} s"
echo "imgbuild .img.xz -> .img (empty cache): ${build_s} s   ratio $(ratio "$build_s" "$xz_s") (target <= 1.5)"
