#!/usr/bin/env bash
# The slow, universal path: images the native readers do not handle (a btrfs root, a qcow2 disk) are
# read through libguestfs, the Linux kernel in a small appliance, and must list the same files as
# their source. Skipped (77) when imgbuild was built without libguestfs or its appliance cannot start.
set -uo pipefail
imgbuild=$(realpath "$1")
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
export IMGBUILD_CACHE=$work/cache LIBGUESTFS_BACKEND=direct
failed=0
ok() { echo "ok - $*"; }
bad() { echo "FAIL - $*"; failed=1; }
# The root folder's own line is left out: bsdtar names it "." or "/." depending on the member name.
mtree() { bsdtar -cf - --format=mtree --options='!all,type,mode,uid,gid,size,sha256,link' "$@" | grep -v '^#' | grep -Ev '^/?\. ' | sort; }

command -v mkfs.btrfs >/dev/null || { echo "skip: mkfs.btrfs missing (btrfs-progs)"; exit 77; }

# A btrfs root filesystem with no partition table.
mkdir -p root/etc root/usr/bin root/home/pi
printf 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\n' > root/etc/os-release
echo "/dev/sda / btrfs defaults 0 0" > root/etc/fstab
cp /bin/true root/usr/bin/true; chmod 4755 root/usr/bin/true
ln -s true root/usr/bin/alias
echo notes > root/home/pi/notes; chown -R 1000:1000 root/home/pi
truncate -s 200M btrfs.img
mkfs.btrfs -q -r root btrfs.img 2>/dev/null || { echo "skip: mkfs.btrfs --rootdir failed"; exit 77; }
printf 'base: {image: btrfs.img}\noutputs: [{tar: {path: btrfs.tar}}]\n' > btrfs.yaml
out=$("$imgbuild" --out out btrfs.yaml 2>&1); rc=$?
if [ $rc -ne 0 ]; then
  case $out in
    *"built without libguestfs"*|*"launch the appliance"*) echo "skip: $out"; exit 77 ;;
  esac
  bad "btrfs image: exit $rc: $out"
else
  ok "btrfs image read through libguestfs"
  diff <(mtree -C root .) <(mtree @out/btrfs.tar) >/dev/null && ok "btrfs: same listing as the source (bsdtar mtree)" \
    || { bad "btrfs: listing differs"; diff <(mtree -C root .) <(mtree @out/btrfs.tar) | head; }
fi

# A qcow2 disk: the raspios fixture converted; the native reader refuses qcow2, libguestfs reads it.
if command -v qemu-img >/dev/null; then
  bash "$here/../fixtures/make-image.sh" raspios rpi.img fx >/dev/null 2>&1
  qemu-img convert -O qcow2 rpi.img rpi.qcow2
  printf 'base: {image: rpi.qcow2}\noutputs: [{tar: {path: q.tar}}]\n' > q.yaml
  printf 'base: {image: rpi.img}\noutputs: [{tar: {path: n.tar}}]\n' > n.yaml
  if "$imgbuild" -q --out out q.yaml && "$imgbuild" -q --out out n.yaml; then
    ok "qcow2 image read through libguestfs"
    # The kernel's view (libguestfs) and the native readers' view of the same disk agree.
    # bsdtar's mtree hashes only the data runs of a sparse member, so sparse.img is compared by content.
    skip='^\./(lost\+found|boot/firmware|var/sparse\.img)'
    if diff <(mtree @out/q.tar | grep -Ev "$skip") <(mtree @out/n.tar | grep -Ev "$skip") >/dev/null; then
      ok "qcow2: libguestfs and the native reader list the same root filesystem"
      [ "$(bsdtar -xOf out/q.tar ./var/sparse.img | sha256sum)" = "$(bsdtar -xOf out/n.tar ./var/sparse.img | sha256sum)" ] \
        && ok "qcow2: the sparse file's content agrees" || bad "qcow2: sparse file content differs"
    else
      bad "qcow2: listings differ"; diff <(mtree @out/q.tar | grep -Ev "$skip") <(mtree @out/n.tar | grep -Ev "$skip") | head
    fi
  else
    bad "qcow2 build failed"
  fi
fi
[ $failed -eq 0 ] && echo "read_guestfs: all checks passed"
exit $failed
