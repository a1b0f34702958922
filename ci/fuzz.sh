#!/usr/bin/env bash
# Fuzzing and the sanitizer build: a tool like the benchmarks, not part of ci/test.sh.
#
# Builds everything with clang, ASan and UBSan into build-fuzz/ (-DIMGBUILD_FUZZ=ON), runs the unit
# tests under the sanitizers (unless FUZZ_SKIP_UNIT=1), then each libFuzzer target of tests/fuzz/ for
# SECONDS_PER_TARGET (default 60) from seeds made here with tools imgbuild did not write (sfdisk,
# mkfs.vfat, mke2fs, tar, dpkg-deb) plus the repository's recipes, and prints per target the
# executions and crashes (crash, leak, timeout or out-of-memory artifacts), then the totals. The corpus
# grows in build-fuzz/corpus/ across runs; findings land in build-fuzz/findings/. A finding becomes a
# regression test in tests/unit/ (fuzz_regressions_test.cpp) once fixed.
#
# usage: ci/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]    (targets: disk fat ext4 archive recipe template
#                                                        text_files; default all)
#        FUZZ_SECONDS_<target>=N gives one target N seconds instead.
# Exit 0 when the unit tests pass and no target found anything.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
REPO=$(pwd)
SECONDS_PER_TARGET=${1:-60}
shift || true
TARGETS=("$@")
[ ${#TARGETS[@]} = 0 ] && TARGETS=(disk fat ext4 archive recipe template text_files)
for tool in clang++ sfdisk mkfs.vfat mcopy mke2fs tar dpkg-deb; do
  command -v "$tool" > /dev/null || { echo "fuzz: '$tool' is not installed" >&2; exit 2; }
done
B=$REPO/build-fuzz
export LC_ALL=C

echo "== building with clang, ASan, UBSan into $B"
cmake -S . -B "$B" -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo -DIMGBUILD_FUZZ=ON \
  ${CCACHE:+-DCMAKE_CXX_COMPILER_LAUNCHER=ccache} > "$B.configure.log" 2>&1 || {
  cat "$B.configure.log"
  exit 1
}
cmake --build "$B" -j"$(nproc)" || exit 1

status=0
# LeakSanitizer needs ptrace-like rights some containers lack; leaks are still reported where it runs.
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_stack_use_after_return=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
if [ "${FUZZ_SKIP_UNIT:-0}" != 1 ]; then
  echo "== unit tests under ASan+UBSan"
  start=$(date +%s)
  if (cd "$B/tests" && ./imgbuild_tests > "$B/unit-tests.log" 2>&1); then
    echo "unit tests: $(tail -n 2 "$B/unit-tests.log" | grep -E 'passed|assertions' | tr -s ' ') ($(($(date +%s) - start)) s)"
  else
    echo "unit tests FAILED under the sanitizers ($(($(date +%s) - start)) s); the end of $B/unit-tests.log:"
    tail -n 40 "$B/unit-tests.log"
    status=1
  fi
fi

# ---- seeds -----------------------------------------------------------------------------------------
S=$B/seeds
rm -rf "$S"
mkdir -p "$S"/{disk,fat,ext4,archive,recipe,template,text_files}
T=$(mktemp -d /tmp/imgbuild-fuzz-seeds.XXXXXX)
trap 'rm -rf "$T"' EXIT
mkdir -p "$T/root/etc" "$T/root/usr/bin" "$T/root/a-rather-long-folder-name"
printf 'root:x:0:0:root:/root:/bin/bash\n' > "$T/root/etc/passwd"
printf '#!/bin/sh\n' > "$T/root/usr/bin/x"
chmod 755 "$T/root/usr/bin/x"
ln -s ../etc/passwd "$T/root/usr/bin/link"
printf 'long file name here\n' > "$T/root/a-rather-long-folder-name/Mixed Case Name.txt"
# Partition tables: MBR (primary + extended/logical) and GPT on 64 KiB images.
truncate -s 64K "$T/mbr.img" "$T/gpt.img"
printf 'label: dos\nlabel-id: 0x1234abcd\nstart=2, size=40, type=c, bootable\nstart=42, size=40, type=5\nstart=44, size=20, type=83\n' |
  sfdisk -q "$T/mbr.img" > /dev/null 2>&1 && cp "$T/mbr.img" "$S/disk/mbr"
printf 'label: gpt\nfirst-lba: 34\nstart=34, size=30, type=linux, name=root\nstart=64, size=30, type=uefi\n' |
  sfdisk -q "$T/gpt.img" > /dev/null 2>&1 && cp "$T/gpt.img" "$S/disk/gpt"
# A FAT12 volume with long names, a folder, a file of several clusters (FAT16 and FAT32 need more
# clusters than a fuzz input should hold).
mkdir -p "$T/boot/overlays"
printf 'console=tty1 root=PARTUUID=6c586e13-02 rootwait\n' > "$T/boot/cmdline.txt"
seq 1 2000 > "$T/boot/overlays/A Long Overlay Name.dtbo"
printf '[all]\narm_64bit=1\n' > "$T/boot/config.txt"
mkfs.vfat -C -F 12 -n BOOT "$T/fat.img" 128 > /dev/null 2>&1 &&
  (cd "$T/boot" && mcopy -s -i "$T/fat.img" ./* ::/ > /dev/null 2>&1) && cp "$T/fat.img" "$S/fat/fat12"
# A disk image whose first partition is a FAT12 volume: the probe's way in.
[ -f "$S/fat/fat12" ] && [ -f "$S/disk/mbr" ] && cat "$S/disk/mbr" > "$S/disk/mbr-fat" &&
  dd if="$S/fat/fat12" of="$S/disk/mbr-fat" bs=512 seek=2 conv=notrunc status=none
# ext4 (and ext2) from the same folder.
mke2fs -q -t ext4 -b 1024 -N 32 -O ^has_journal -d "$T/root" "$T/e4.img" 200k > /dev/null 2>&1 && cp "$T/e4.img" "$S/ext4/ext4"
mke2fs -q -t ext2 -b 1024 -N 32 -d "$T/root" "$T/e2.img" 64k > /dev/null 2>&1 && cp "$T/e2.img" "$S/ext4/ext2"
# Archives: the selector byte first (0 tarball, 1 .deb, 2 release tarball).
tar -C "$T/root" -cf "$T/r.tar" . && { printf '\0'; cat "$T/r.tar"; } > "$S/archive/tar"
tar -C "$T/root" --format=pax -czf "$T/r.tgz" . && { printf '\0'; cat "$T/r.tgz"; } > "$S/archive/tgz"
{ printf '\2'; cat "$T/r.tgz"; } > "$S/archive/release"
mkdir -p "$T/deb/DEBIAN" "$T/deb/usr/bin"
printf 'Package: containerd\nVersion: 1.6.20~ds1-1\nArchitecture: arm64\nMaintainer: x <x@y>\nDescription: x\n' > "$T/deb/DEBIAN/control"
printf '#!/bin/sh\n' > "$T/deb/usr/bin/containerd"
dpkg-deb -Zgzip --root-owner-group -b "$T/deb" "$T/x.deb" > /dev/null 2>&1 && { printf '\1'; cat "$T/x.deb"; } > "$S/archive/deb"
# Recipes: the repository's own, and the bad-input corpus's.
n=0
for f in recipes/*.yaml tests/e2e/validate_errors.yaml tests/bad-inputs/*/recipe.yaml; do
  [ -f "$f" ] && [ "$(stat -c %s "$f")" -lt 65536 ] && cp "$f" "$S/recipe/$((n++))"
done
printf '%s' 'x{{domain}}y{{node.name}}{{ '"'"'{{'"'"' }}{{a}}' > "$S/template/1"
printf '%s\0%s' '{{node.ip}}' '{{ domain }}' > "$S/template/2"
i=0
for f in etc/passwd etc/group etc/shadow etc/gshadow cmdline config sshd fstab unit hosts locale.gen locale; do
  case $f in
    etc/passwd) t='root:x:0:0:root:/root:/bin/bash\npi:x:1000:1000:,,,:/home/pi:/bin/bash\n' ;;
    etc/group) t='root:x:0:\nsudo:x:27:pi,bob\nadm:x:4:\n' ;;
    etc/shadow) t='root:*:19000:0:99999:7:::\npi:!:19000:0:99999:7:::\n' ;;
    etc/gshadow) t='root:*::\nsudo:*::pi\n' ;;
    cmdline) t='console=serial0,115200 console=tty1 root=PARTUUID=6c586e13-02 rootfstype=ext4 quiet\n' ;;
    config) t='# comment\n[all]\narm_64bit=1\ndtoverlay=vc4-kms-v3d\n[pi4]\narm_boost=1\n[cm4]\notg_mode=1\n' ;;
    sshd) t='Include /etc/ssh/sshd_config.d/*.conf\n#PermitRootLogin prohibit-password\nMatch User x\n  PasswordAuthentication yes\n' ;;
    fstab) t='proc /proc proc defaults 0 0\nPARTUUID=6c586e13-01 /boot/firmware vfat defaults 0 2\n/swapfile none swap sw 0 0\n' ;;
    unit) t='[Unit]\nDescription=x\n[Install]\nWantedBy=multi-user.target\nAlso=y.service\nAlias=xx.service\n' ;;
    hosts) t='127.0.0.1\tlocalhost\n127.0.1.1\traspberrypi\n' ;;
    locale.gen) t='# en_GB.UTF-8 UTF-8\n# en_US.UTF-8 UTF-8\n' ;;
    locale) t='LANG=C.UTF-8\n' ;;
  esac
  { printf "\\$(printf '%03o' "$i")"; printf "$t"; } > "$S/text_files/$i"
  i=$((i + 1))
done

# ---- fuzzing ---------------------------------------------------------------------------------------
export IMGBUILD_CLOUD_INIT= # the targets set it too: never start the host's cloud-init per input
F=$B/findings
mkdir -p "$F"
total_execs=0
total_crashes=0
printf '%-12s %14s %8s\n' target executions crashes
for t in "${TARGETS[@]}"; do
  exe=$B/tests/fuzz/fuzz_$t
  [ -x "$exe" ] || { echo "fuzz: no target '$t'" >&2; status=1; continue; }
  C=$B/corpus/$t
  mkdir -p "$C"
  log=$B/fuzz-$t.log
  before=$(find "$F" -name "$t-*" | wc -l)
  # -fork keeps going after a finding (each one saved), so that one run reports them all.
  secs_var=FUZZ_SECONDS_$t # e.g. FUZZ_SECONDS_disk=300: more time for one target
  "$exe" -fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1 -max_total_time="${!secs_var:-$SECONDS_PER_TARGET}" \
    -timeout=10 -rss_limit_mb=2048 -max_len=262144 -print_final_stats=1 -artifact_prefix="$F/$t-" \
    "$C" "$S/$t" > "$log" 2>&1
  # Fork mode reports execs in its status lines ("#N: cov: ... exec/s: ... oom/timeout/crash: a/b/c").
  execs=$(grep -oE '^#[0-9]+' "$log" | tail -n 1 | tr -d '#')
  execs=${execs:-0}
  crashes=$(($(find "$F" -name "$t-*" | wc -l) - before))
  printf '%-12s %14s %8s\n' "$t" "$execs" "$crashes"
  total_execs=$((total_execs + execs))
  total_crashes=$((total_crashes + crashes))
  [ "$crashes" = 0 ] || status=1
done
printf '%-12s %14s %8s\n' total "$total_execs" "$total_crashes"
[ $total_crashes = 0 ] || echo "findings in $F (reproduce: $B/tests/fuzz/fuzz_TARGET FILE)"
exit $status
