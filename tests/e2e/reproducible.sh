#!/usr/bin/env bash
# End-to-end: with SOURCE_DATE_EPOCH set, two builds of the same recipe give byte-identical tarballs
# (.tar, .tar.gz, .tar.zst, .tar.xz, .tar.bz2), even when the host files a `files` step copies were
# touched in between, the second run starts from another folder, with another umask, TMPDIR and
# --out. Things the steps create get SOURCE_DATE_EPOCH as mtime; base files keep theirs.
# As root, a third build sees another number of online CPUs (1, or 4 on a one-CPU machine: a bind
# mount over /sys/devices/system/cpu/online in a private mount namespace): a tarball must not depend
# on the builder machine's CPU count either.
#
# usage: bash tests/e2e/reproducible.sh path/to/imgbuild
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib/common.sh
. "$HERE/lib/common.sh"
e2e_args "$@"
need_tools tar bsdtar sha256sum touch

export LC_ALL=C.UTF-8
W=$(mktemp -d /tmp/imgbuild-e2e-repro.XXXXXX)
trap 'rm -rf "$W"' EXIT

# shellcheck source=lib/report.sh
. "$HERE/lib/report.sh"

EPOCH=1700000000
BASE_TIME=1600000000
OUTPUTS="rootfs.tar rootfs.tar.gz rootfs.tar.zst rootfs.tar.xz rootfs.tar.bz2"

# A small base tarball, with fixed mtimes.
P=$W/project
mkdir -p "$P/base/etc" "$P/base/usr/bin" "$P/overlay/etc/app" "$P/overlay/usr/local/bin"
echo "127.0.0.1	localhost" > "$P/base/etc/hosts"
echo old-name > "$P/base/etc/hostname"
echo "base file" > "$P/base/etc/untouched"
printf '#!/bin/sh\n' > "$P/base/usr/bin/tool" && chmod 755 "$P/base/usr/bin/tool"
find "$P/base" -exec touch -h -d "@$BASE_TIME" {} +
tar --format=posix --numeric-owner --owner=0 --group=0 --sort=name \
  --pax-option=delete=atime,delete=ctime -cf "$P/base.tar" -C "$P/base" .
# The host folder the files step copies.
echo "setting=1" > "$P/overlay/etc/app/app.conf"
printf '#!/bin/sh\necho hi\n' > "$P/overlay/usr/local/bin/hi" && chmod 755 "$P/overlay/usr/local/bin/hi"
ln -s hi "$P/overlay/usr/local/bin/hello"
cat > "$P/recipe.yaml" << 'EOF'
base: {tarball: base.tar}
nodes:
  - {name: worker-1, mac: "b8:27:eb:00:00:01"}
steps:
  - files: {src: overlay, dest: /}
  - files: {content: "generated\n", dest: /etc/generated}
  - hostname: {name: "{{node.name}}", domain: cluster.lan}
outputs:
  - tar: {path: "{{node.name}}/rootfs.tar"}
  - tar: {path: "{{node.name}}/rootfs.tar.gz"}
  - tar: {path: "{{node.name}}/rootfs.tar.zst"}
  - tar: {path: "{{node.name}}/rootfs.tar.xz"}
  - tar: {path: "{{node.name}}/rootfs.tar.bz2"}
EOF

sums() { (cd "$1/worker-1" && sha256sum $OUTPUTS); }
same_sums() { # LABEL DIR_A DIR_B
  if diff <(sums "$2") <(sums "$3") > "$W/diff.txt"; then
    ok "$1"
  else
    fail "$1:"
    sed 's/^/       /' "$W/diff.txt" >&2
  fi
}

# Run 1: from the project folder, relative recipe path and --out.
(cd "$P" && SOURCE_DATE_EPOCH=$EPOCH "$IMGBUILD" -q recipe.yaml --out out1) ||
  { echo "FAIL - run 1 failed" >&2; exit 1; }
for o in $OUTPUTS; do [ -s "$P/out1/worker-1/$o" ] || fail "run 1 did not write worker-1/$o"; done
ok "run 1 wrote $(echo $OUTPUTS | wc -w) tarballs"

# Between the runs: new mtimes (and atimes) on every host file and folder the files step reads,
# and make sure the clock moved on by a second or more.
sleep 1.1
find "$P/overlay" -exec touch -h -d "@$((EPOCH + 12345))" {} +
touch "$P/overlay/etc/app/app.conf" "$P/overlay/usr/local/bin/hi"
cat "$P/overlay/etc/app/app.conf" > /dev/null
ok "touched the host files of the files step"

# Run 2: from elsewhere, absolute paths, another umask and TMPDIR.
mkdir -p "$W/elsewhere/tmp"
(cd "$W/elsewhere" && umask 077 && TMPDIR=$W/elsewhere/tmp SOURCE_DATE_EPOCH=$EPOCH \
  "$IMGBUILD" -q "$P/recipe.yaml" --out "$W/out2") || { echo "FAIL - run 2 failed" >&2; exit 1; }
same_sums "run 1 and run 2 give byte-identical $(echo $OUTPUTS | tr ' ' ',')" "$P/out1" "$W/out2"

# The tarballs hold the same members whatever the compression.
for o in $OUTPUTS; do
  bsdtar -tvf "$P/out1/worker-1/$o" > "$W/list.$o"
  cmp -s "$W/list.rootfs.tar" "$W/list.$o" || fail "worker-1/$o does not list the same members as rootfs.tar"
done
ok "all five tarballs list the same members"

# Mtimes: SOURCE_DATE_EPOCH for what the steps made, the base's own for the rest.
mtree=$(bsdtar -cf - --format=mtree --options='!all,time' "@$P/out1/worker-1/rootfs.tar" | grep -v '^#')
mtime_of() { echo "$mtree" | awk -v n="$1" '$1 == n { sub(/^time=/, "", $2); sub(/\.0*$/, "", $2); print $2 }'; }
for n in ./etc/app ./etc/app/app.conf ./usr/local/bin/hi ./usr/local/bin/hello ./etc/generated ./etc/hostname ./etc/hosts; do
  got=$(mtime_of "$n")
  [ "$got" = "$EPOCH" ] || fail "$n has mtime '$got', want SOURCE_DATE_EPOCH $EPOCH"
done
ok "entries the steps made or changed have mtime $EPOCH"
for n in ./etc/untouched ./usr/bin/tool ./usr/bin; do
  got=$(mtime_of "$n")
  [ "$got" = "$BASE_TIME" ] || fail "$n has mtime '$got', want the base's $BASE_TIME"
done
ok "base entries the steps did not touch keep mtime $BASE_TIME"
if [ "$(bsdtar -xOf "$P/out1/worker-1/rootfs.tar" ./etc/hostname)" = worker-1 ]; then
  ok "etc/hostname is worker-1"
else
  fail "etc/hostname is '$(bsdtar -xOf "$P/out1/worker-1/rootfs.tar" ./etc/hostname)', want worker-1"
fi

# Run 3 (root only): the machine seems to have another number of CPUs.
if [ "$(id -u)" = 0 ] && command -v unshare > /dev/null && [ -r /sys/devices/system/cpu/online ]; then
  REAL_CPUS=$(getconf _NPROCESSORS_ONLN)
  if [ "$REAL_CPUS" = 1 ]; then FAKE_CPUS=4 && echo 0-3 > "$W/cpus"; else FAKE_CPUS=1 && echo 0 > "$W/cpus"; fi
  if unshare -m sh -c 'mount --bind "$1" /sys/devices/system/cpu/online && [ "$(getconf _NPROCESSORS_ONLN)" = "$2" ]' sh "$W/cpus" "$FAKE_CPUS" 2> /dev/null; then
    (cd "$P" && SOURCE_DATE_EPOCH=$EPOCH unshare -m sh -c \
      'mount --bind "$1" /sys/devices/system/cpu/online && exec "$2" -q recipe.yaml --out "$3"' \
      sh "$W/cpus" "$IMGBUILD" "$W/out3") || { echo "FAIL - run 3 ($FAKE_CPUS CPUs) failed" >&2; exit 1; }
    same_sums "a build that sees $FAKE_CPUS CPU(s) gives the same bytes as one that sees $REAL_CPUS" "$P/out1" "$W/out3"
  else
    echo "skip - cannot fake the CPU count here (bind mount over /sys/devices/system/cpu/online failed)"
  fi
else
  echo "skip - the other-CPU-count run needs root and unshare"
fi

finish reproducible
