#!/usr/bin/env bash
# The slow, universal path: images the native readers do not handle (a btrfs root, a qcow2 disk) are
# read through libguestfs, the Linux kernel in a small appliance, and must list the same files as
# their source. Skipped (77) when imgbuild was built without libguestfs, or when it fails to start the
# appliance and so does libguestfs-test-tool with TCG forced (the machine cannot run one at all); a
# launch failure of imgbuild's alone is a failure. Where /dev/kvm exists but KVM does not work,
# imgbuild must fall back to TCG by itself, saying so once per appliance it starts.
# The raspios fixture carries POSIX ACLs (named user and group entries, a default ACL on a folder):
# they must come out of the qcow2 read as getfacl shows them on the source.
set -uo pipefail
imgbuild=$(realpath "$1")
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib/common.sh
. "$here/lib/common.sh" # guestfs_probe
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
# says_fallback LABEL OUTPUT: imgbuild's TCG fallback, if it happened, was said once.
says_fallback() {
  local n
  n=$(grep -c 'retrying with software emulation' <<< "$2")
  case $n in
    0) ok "$1: the appliance started at the first try" ;;
    1) ok "$1: fell back to TCG, saying so once: $(grep -m1 'retrying with software emulation' <<< "$2" | head -c 300)" ;;
    *) bad "$1: the TCG fallback was announced $n times" ;;
  esac
}
out=$("$imgbuild" --out out btrfs.yaml 2>&1); rc=$?
if [ $rc -ne 0 ]; then
  case $out in
    *"built without libguestfs"*) echo "skip: $out"; exit 77 ;;
    *"launch the appliance"*)
      if ! guestfs_probe; then echo "skip: no libguestfs appliance can start here, even with TCG: $GUESTFS_PROBE"; exit 77; fi ;;
  esac
  bad "btrfs image: exit $rc, though libguestfs-test-tool can start an appliance here: $out"
else
  ok "btrfs image read through libguestfs"
  says_fallback "btrfs image" "$out"
  diff <(mtree -C root .) <(mtree @out/btrfs.tar) >/dev/null && ok "btrfs: same listing as the source (bsdtar mtree)" \
    || { bad "btrfs: listing differs"; diff <(mtree -C root .) <(mtree @out/btrfs.tar) | head; }
fi

# A qcow2 disk: the raspios fixture converted; the native reader refuses qcow2, libguestfs reads it.
if command -v qemu-img >/dev/null; then
  bash "$here/../fixtures/make-image.sh" raspios rpi.img fx > fx.log 2>&1 || bad "the raspios fixture could not be made: $(tail -n 3 fx.log)"
  qemu-img convert -O qcow2 rpi.img rpi.qcow2
  printf 'base: {image: rpi.qcow2}\noutputs: [{tar: {path: q.tar}}]\n' > q.yaml
  printf 'base: {image: rpi.img}\noutputs: [{tar: {path: n.tar}}]\n' > n.yaml
  if out=$("$imgbuild" -q --out out q.yaml 2>&1) && "$imgbuild" -q --out out n.yaml; then
    ok "qcow2 image read through libguestfs"
    says_fallback "qcow2 image" "$out"
    # The kernel's view (libguestfs) and the native readers' view of the same disk agree.
    # bsdtar's mtree hashes only the data runs of a sparse member, so sparse.img is compared by content.
    skip='^\./(lost\+found|boot/firmware|var/sparse\.img)'
    if diff <(mtree @out/q.tar | grep -Ev "$skip") <(mtree @out/n.tar | grep -Ev "$skip") >/dev/null; then
      ok "qcow2: libguestfs and the native reader list the same root filesystem"
      # Against the source file, so that a member missing from both tarballs cannot pass.
      want=$(sha256sum < fx/root/var/sparse.img)
      q=$(bsdtar -xOf out/q.tar ./var/sparse.img 2> /dev/null | sha256sum) n=$(bsdtar -xOf out/n.tar ./var/sparse.img 2> /dev/null | sha256sum)
      [ -s fx/root/var/sparse.img ] && [ "$q" = "$want" ] && [ "$n" = "$want" ] \
        && ok "qcow2: the sparse file's content is the source's through both readers" \
        || bad "qcow2: var/sparse.img sha256: libguestfs '$q', native '$n', source '$want'"
    else
      bad "qcow2: listings differ"; diff <(mtree @out/q.tar | grep -Ev "$skip") <(mtree @out/n.tar | grep -Ev "$skip") | head
    fi
    # POSIX ACLs, as getfacl reads them from an extraction (bsdtar restores ACLs as root) and from the
    # source folder.
    acls() { (cd "$1" && getfacl -n -p -R var/log/journal etc/acl.conf 2> /dev/null | grep -v '^# owner\|^# group'); }
    mkdir -p xq && bsdtar -xpf out/q.tar -C xq ./var/log/journal ./etc/acl.conf 2> xq.err
    if [ -n "$(acls fx/root)" ] && [ "$(acls xq)" = "$(acls fx/root)" ]; then
      ok "qcow2: POSIX ACLs (named user and group, default ACL) read through libguestfs equal the source's"
    else
      bad "qcow2: POSIX ACLs differ from the source's: $(diff <(acls fx/root) <(acls xq) | head -n 8 | tr '\n' ' ') $(head -c 200 xq.err)"
    fi
  else
    bad "qcow2 build failed: $out"
  fi
else
  bad "qemu-img is not installed (qemu-utils): the qcow2 case cannot run"
fi
[ $failed -eq 0 ] && echo "read_guestfs: all checks passed"
exit $failed
