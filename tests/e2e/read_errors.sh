#!/usr/bin/env bash
# End-to-end: broken disk images fail cleanly. Each case is read three ways: a recipe with a tar output
# (must exit 1, or 2 for a recipe-level mistake, with ONE "imgbuild: error:"/FILE:LINE:COL message
# that names the file and has the case's key words, and leave no output folder), `imgbuild inspect`
# and `imgbuild ls` (exit 1, the same kind of message, no crash: exit code < 128, no "internal
# error"). The cases, all made from the raspios fixture (tests/fixtures/make-image.sh):
#   (a) a truncated .img.xz (the first half of it)
#   (b) a .zip holding a text file and no .img
#   (c) a garbage partition table: 510 pseudo-random bytes, 0x55AA kept; and an MBR whose second
#       entry ends past the end of the image
#   (d) an ext4 root whose superblock is zeroed (magic gone); and one whose magic is kept but whose
#       first 56 bytes are zeroed (e2fsck refuses it)
#   (e) a recipe pinning a valid sha256 of something else (exit 1, "sha256"), and a malformed sha256
#       (exit 2, "64 hex") — plus the control: the right pin builds
#   (f) an ext4 root with needs_recovery set (debugfs -w -R 'feature needs_recovery')
#   (g) a .img.xz that decodes to 3 bytes: the message names the .img.xz, not a cache file
# Control: the intact image reads (exit 0) all three ways.
#
# usage: bash tests/e2e/read_errors.sh path/to/imgbuild      (needs root; exit 77 otherwise)
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib/common.sh
. "$HERE/lib/common.sh"
e2e_args "$@"
need_root "the fixture holds a device node and files owned by 1000"
need_tools bsdtar sfdisk xz zip debugfs dumpe2fs e2fsck perl mkfs.vfat mcopy mke2fs sha256sum

export LC_ALL=C.UTF-8
W=$(mktemp -d /tmp/imgbuild-e2e-readerr.XXXXXX)
trap 'rm -rf "$W"' EXIT
export IMGBUILD_CACHE=$W/cache
source "$HERE/lib/read_common.sh"

cd "$W" || exit 1
if ! bash "$HERE/../fixtures/make-image.sh" raspios good.img src > make.log 2>&1; then
  echo "FAIL - make-image.sh raspios failed:"
  sed 's/^/       /' make.log
  exit 1
fi
ROOT_OFF=$((139264 * 512)) # the raspios fixture: p1 FAT at 8192 (64 MiB), p2 ext4 at 139264 (48 MiB)
ROOT_SIZE=$((98304 * 512))
sfdisk -d good.img | grep -q 'start= *139264, size= *98304, type=83' || { echo "FAIL - the raspios fixture's layout changed (test bug)"; exit 1; }

# check_fails LABEL IMAGE WANT_RC REGEX [SHA256] [modes]: build/inspect/ls on IMAGE (a name in $W)
# fail with WANT_RC (build) / 1 (inspect, ls), one error line naming what $NAMES (default: IMAGE) says,
# matching REGEX (extended, case-insensitive), and no output folder.
check_fails() {
  local label=$1 img=$2 want=$3 re=$4 pin=${5:-} modes=${6:-build inspect ls} mode n name=${NAMES:-$2}
  for mode in $modes; do
    P=$W/$label-$mode
    case $mode in
      build)
        recipe "$W/$label.yaml" "$img" "$pin"
        run "$IMGBUILD" --out "$W/out-$label" "$W/$label.yaml"
        ;;
      inspect) run "$IMGBUILD" inspect "$img" ;;
      ls) run "$IMGBUILD" ls -R "$img" ;;
    esac
    local t="$label: $mode" w=1
    [ "$mode" = build ] && w=$want
    no_crash "$t"
    [ "$RC" = "$w" ] && ok "$t exits $w" || fail "$t exits $RC, want $w; stderr: $(head -c 600 "$P.err")"
    # The error lines: "imgbuild: error: ..." or the recipe's "FILE:LINE:COL: ...".
    grep -E '^imgbuild: error:|^[^ :]+\.yaml:[0-9]+:[0-9]+: ' "$P.err" > "$P.errors"
    n=$(grep -c . "$P.errors")
    if [ "$n" = 1 ]; then ok "$t: one error message: $(cat "$P.errors")"; else fail "$t: $n error messages, want 1; stderr: $(head -c 800 "$P.err")"; fi
    if grep -qF "$name" "$P.errors"; then ok "$t: the message names '$name'"; else fail "$t: the message does not name '$name': $(head -c 600 "$P.errors")"; fi
    if grep -qiE "$re" "$P.errors"; then ok "$t: the message says /$re/"; else fail "$t: the message does not match /$re/: $(head -c 600 "$P.errors")"; fi
    if [ "$mode" = build ]; then
      [ ! -e "$W/out-$label" ] && ok "$t: no output folder" || fail "$t: left an output folder: $(cd "$W/out-$label" && find . | head | tr '\n' ' ')"
      [ -z "$(grep -v '^$' "$P.out")" ] || info "$t: stdout: $(head -c 300 "$P.out")"
    fi
  done
}
# check_reads LABEL IMAGE: the control, the intact image reads all three ways.
check_reads() {
  local label=$1 img=$2
  recipe "$W/$label.yaml" "$img" "${3:-}"
  P=$W/$label-build; run "$IMGBUILD" --out "$W/out-$label" "$W/$label.yaml"
  [ "$RC" = 0 ] && [ -f "$W/out-$label/out.tar" ] && ok "$label: build exits 0 and writes out.tar" || fail "$label: build exited $RC: $(head -c 600 "$P.err")"
  rm -rf "$W/out-$label"
  P=$W/$label-inspect; run "$IMGBUILD" inspect "$img"
  [ "$RC" = 0 ] && ok "$label: inspect exits 0" || fail "$label: inspect exited $RC: $(head -c 600 "$P.err")"
  P=$W/$label-ls; run "$IMGBUILD" ls -R "$img"
  [ "$RC" = 0 ] && grep -q '/etc/hostname$' "$P.out" && ok "$label: ls -R exits 0 and lists /etc/hostname" || fail "$label: ls -R exited $RC: $(head -c 600 "$P.err")"
}
part_out() { dd if="$1" of="$2" bs=1M skip=$((ROOT_OFF / 1048576)) count=$((ROOT_SIZE / 1048576)) status=none; }
part_in() { dd if="$2" of="$1" bs=1M seek=$((ROOT_OFF / 1048576)) conv=notrunc status=none; }

echo "=== control"
check_reads intact good.img

echo "=== (a) truncated .img.xz"
xz -T0 -k good.img
head -c $(($(stat -c %s good.img.xz) / 2)) good.img.xz > trunc.img.xz
rm good.img.xz
check_fails a-truncated-xz trunc.img.xz 1 'truncated|corrupt|unexpected end'
left=$(find "$IMGBUILD_CACHE" -type f ! -name '*.lock' 2> /dev/null)
[ -z "$left" ] && ok "(a): no decoded file left in the cache" || fail "(a): the cache holds a partial decode: $left"

echo "=== (b) .zip with no .img"
echo "just a readme" > readme.txt
zip -q noimg.zip readme.txt
check_fails b-zip-no-img noimg.zip 1 'no (disk )?image|\.img'

echo "=== (c) garbage partition table"
cp good.img garbage.img
perl -e 'srand(42); print pack("C*", map { int(rand(256)) } 1..510)' | dd of=garbage.img conv=notrunc status=none
[ "$(od -An -tx1 -j510 -N2 garbage.img | tr -d ' ')" = 55aa ] || fail "(c): garbage.img lost its 0x55AA (test bug)"
check_fails c-garbage-mbr garbage.img 1 'partition|table'
cp good.img pastend.img
printf '\x00\x00\x00\x10' | dd of=pastend.img bs=1 seek=$((446 + 16 + 12)) conv=notrunc status=none # p2: 2^28 sectors
sfdisk -d pastend.img 2> /dev/null | grep -q 'size= *268435456' || fail "(c): pastend.img's p2 is not 2^28 sectors (test bug)"
check_fails c-past-end pastend.img 1 'past the end|beyond|truncated|outside'

echo "=== (d) corrupt ext4 superblock"
cp good.img nosb.img
dd if=/dev/zero of=nosb.img bs=1024 seek=$(((ROOT_OFF + 1024) / 1024)) count=1 conv=notrunc status=none
check_fails d-zeroed-superblock nosb.img 1 'ext[234]|superblock|root file ?system'
cp good.img badsb.img
dd if=/dev/zero of=badsb.img bs=1 seek=$((ROOT_OFF + 1024)) count=56 conv=notrunc status=none # magic (0x38) kept
part_out badsb.img part.img
e2fsck -fn part.img > /dev/null 2>&1
rc=$?
[ $rc -ge 4 ] && ok "(d): e2fsck -fn refuses badsb.img's root ($rc)" || fail "(d): e2fsck -fn exits $rc on badsb.img's root (test bug: not corrupt enough)"
check_fails d-bad-superblock badsb.img 1 'superblock|corrupt|ext[234]'

echo "=== (e) sha256 pin"
other=$(echo "something else" | sha256sum | cut -d' ' -f1)
check_fails e-sha-mismatch good.img 1 "sha256" "$other" build
NAMES=e-sha-bad.yaml check_fails e-sha-bad good.img 2 "64 hex|sha256" "abc123" build
check_reads e-sha-right good.img "$(sha_of good.img)"

echo "=== (f) ext4 needing journal recovery"
cp good.img recovery.img
part_out recovery.img part.img
debugfs -w -R 'feature needs_recovery' part.img > /dev/null 2>&1
if dumpe2fs -h part.img 2> /dev/null | grep -q '^Filesystem features:.*needs_recovery'; then
  part_in recovery.img part.img
  check_fails f-needs-recovery recovery.img 1 'recover|journal|unclean|not cleanly'
else
  fail "(f): debugfs could not set needs_recovery (test bug)"
fi

echo "=== (g) .img.xz of a 3-byte file"
echo hi | xz > tiny.img.xz
check_fails g-tiny-xz tiny.img.xz 1 'too small|not a disk image|bytes'

finish read_errors
