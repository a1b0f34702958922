#!/usr/bin/env bash
# End-to-end: symlinks in the image are resolved inside the image, never on the host.
#
# The base has /etc -> /tmp/outside (absolute), /usr/share/deep/link -> ../../../../tmp/outside2
# (relative, climbing above the image's root), and /etc2 -> lnk1 -> ../../tmp/outside (a chain).
# Steps write through them (`files` with content, `files` with a host folder as src, `delete`).
# The tar and dir outputs must hold the results under ./tmp/outside and ./tmp/outside2, with the links
# still links, and the host's /tmp/outside and /tmp/outside2 must not be created (phase A) nor, when
# they exist as decoys, changed (phase B). Both a tarball base and a folder base are tried.
#
# usage: bash tests/e2e/symlink_escape.sh path/to/imgbuild
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib/common.sh
. "$HERE/lib/common.sh"
e2e_args "$@"
need_tools tar bsdtar sha256sum

export LC_ALL=C.UTF-8
OUT1=/tmp/outside
OUT2=/tmp/outside2
W=$(mktemp -d /tmp/imgbuild-e2e-symlink.XXXXXX)
cleanup() { rm -rf "$W" "$OUT1" "$OUT2"; }
trap cleanup EXIT
# The host paths the image's links name: they must not exist before phase A.
rm -rf "$OUT1" "$OUT2"
if [ -e "$OUT1" ] || [ -e "$OUT2" ]; then
  echo "SKIP: cannot remove the host's $OUT1 / $OUT2 (owned by someone else?)"
  exit 77
fi

# shellcheck source=lib/report.sh
. "$HERE/lib/report.sh"

# The base tree. /tmp/outside exists in the tarball base; in the folder base it does not, so the
# steps must create it in the image.
B=$W/base
mkdir -p "$B/tmp/outside" "$B/usr/share/deep"
ln -s /tmp/outside "$B/etc"
ln -s ../../../../tmp/outside2 "$B/usr/share/deep/link"
ln -s ../../tmp/outside "$B/lnk1"
ln -s lnk1 "$B/etc2"
echo "image victim" > "$B/tmp/outside/victim"
tar --numeric-owner -cf "$W/base.tar" -C "$B" .
rm -rf "$B/tmp/outside" # the folder base lacks it
mkdir -p "$W/overlay/conf"
echo "a = 1" > "$W/overlay/conf/a.conf"

STEPS='steps:
  - files: {content: "x", dest: /etc/x}
  - files: {content: "y", dest: /usr/share/deep/link/y}
  - files: {content: "z", dest: /etc2/z}
  - files: {src: overlay, dest: /etc}
  - delete: /etc/victim
outputs:
  - tar: {path: out.tar}'
# The dir output writes real owners: root only. Without root, only the tarball is checked.
if [ "$(id -u)" = 0 ]; then
  HAVE_DIR=1
  WHAT="out.tar and the dir output"
  STEPS="$STEPS
  - dir: {path: rootfs}"
else
  HAVE_DIR=0
  WHAT="out.tar"
  echo "skip - not root: no 'dir' output, only the tarball is checked"
fi
printf 'base: {tarball: base.tar}\n%s\n' "$STEPS" > "$W/from-tarball.yaml"
printf 'base: {dir: base}\n%s\n' "$STEPS" > "$W/from-folder.yaml"

# A listing of the host paths: names, types, sizes, modes, mtimes, contents.
host_state() {
  for p in "$OUT1" "$OUT2"; do
    if [ -e "$p" ] || [ -L "$p" ]; then
      find "$p" -printf '%p %y %s %m %T@\n' | sort
      find "$p" -type f -exec sha256sum {} + | sort
    else
      echo "$p absent"
    fi
  done
}

check_outputs() { # LABEL OUTDIR
  local label=$1 out=$2 tarball=$2/out.tar rootfs=$2/rootfs
  local -A want=([./tmp/outside/x]=x [./tmp/outside2/y]=y [./tmp/outside/z]=z [./tmp/outside/conf/a.conf]="a = 1")
  for name in "${!want[@]}"; do
    got=$(bsdtar -xOf "$tarball" "$name" 2> /dev/null) || got="<missing>"
    [ "$got" = "${want[$name]}" ] || fail "$label: out.tar $name holds '$got', want '${want[$name]}'"
    [ "$HAVE_DIR" = 1 ] || continue
    got=$(cat "$rootfs/${name#./}" 2> /dev/null) || got="<missing>"
    [ "$got" = "${want[$name]}" ] || fail "$label: dir output ${name#./} holds '$got', want '${want[$name]}'"
  done
  ok "$label: $WHAT have ./tmp/outside/{x,z,conf/a.conf} and ./tmp/outside2/y with the right content"
  list=$(bsdtar -tvf "$tarball")
  for l in './etc -> /tmp/outside' './usr/share/deep/link -> ../../../../tmp/outside2' './etc2 -> lnk1' './lnk1 -> ../../tmp/outside'; do
    echo "$list" | grep -q "^l.* $l\$" || fail "$label: out.tar lacks the symlink '$l'"
  done
  for l in 'etc:/tmp/outside' 'usr/share/deep/link:../../../../tmp/outside2' 'etc2:lnk1' 'lnk1:../../tmp/outside'; do
    [ "$HAVE_DIR" = 1 ] || continue
    [ -L "$rootfs/${l%%:*}" ] && [ "$(readlink "$rootfs/${l%%:*}")" = "${l#*:}" ] ||
      fail "$label: dir output ${l%%:*} is not a symlink to ${l#*:}"
  done
  ok "$label: the links are still links, with their targets as written ($WHAT)"
  if echo "$list" | grep -q '/victim$' || [ -e "$rootfs/tmp/outside/victim" ]; then
    fail "$label: delete /etc/victim did not remove ./tmp/outside/victim from the image"
  else
    ok "$label: delete /etc/victim removed ./tmp/outside/victim from the image"
  fi
  if echo "$list" | grep -qE ' \./(etc|etc2|usr/share/deep/link)/'; then
    fail "$label: out.tar has members below a symlink: $(echo "$list" | grep -E ' \./(etc|etc2|usr/share/deep/link)/' | tr '\n' ' ')"
  fi
}

build() { # LABEL RECIPE OUTDIR
  local rc=0
  (cd "$W" && "$IMGBUILD" -q "$2" --out "$3") > "$W/log" 2>&1 || rc=$?
  if [ "$rc" = 0 ]; then
    ok "$1: build succeeded"
    return 0
  fi
  fail "$1: build failed (exit $rc):"
  sed 's/^/       /' "$W/log" >&2
  return 1
}

echo "--- phase A: $OUT1 and $OUT2 do not exist on the host"
for src in tarball folder; do
  label="A/$src base"
  if build "$label" "from-$src.yaml" "$W/out-a-$src"; then check_outputs "$label" "$W/out-a-$src"; fi
  if [ -e "$OUT1" ] || [ -L "$OUT1" ] || [ -e "$OUT2" ] || [ -L "$OUT2" ]; then
    fail "$label: the build created on the host: $(find "$OUT1" "$OUT2" 2> /dev/null | tr '\n' ' ')"
    rm -rf "$OUT1" "$OUT2"
  else
    ok "$label: host $OUT1 and $OUT2 still do not exist"
  fi
done

echo "--- phase B: $OUT1 and $OUT2 exist on the host as decoys"
mkdir -p "$OUT1" "$OUT2"
echo "host victim" > "$OUT1/victim"
echo "host sentinel" > "$OUT2/sentinel"
chmod 700 "$OUT1" "$OUT2"
touch -d @1500000000 "$OUT1/victim" "$OUT2/sentinel" "$OUT1" "$OUT2"
before=$(host_state)
for src in tarball folder; do
  label="B/$src base"
  if build "$label" "from-$src.yaml" "$W/out-b-$src"; then check_outputs "$label" "$W/out-b-$src"; fi
  after=$(host_state)
  if [ "$before" = "$after" ]; then
    ok "$label: host $OUT1 and $OUT2 are unchanged (names, sizes, modes, mtimes, contents)"
  else
    fail "$label: the build changed the host's $OUT1 / $OUT2:"
    diff <(echo "$before") <(echo "$after") | sed 's/^/       /' >&2 || true
  fi
done

finish symlink_escape
