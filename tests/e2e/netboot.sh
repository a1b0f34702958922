#!/usr/bin/env bash
# End-to-end: the `netboot` output, for a cluster of 4 nodes (mac, serial, ip each) built from the
# raspios fixture (tests/fixtures/make-image.sh) with the steps `cmdline: cgroups`, a bootcode.bin and
# a dphys-swapfile.service added by `files`, and `hostname: "{{node.name}}"`. Checked with tools
# imgbuild did not write (stat, find, getfattr, dnsmasq --test):
#   - TFTP: one folder per node named by its MAC (b8-27-eb-..), bootcode.bin also in the TFTP root;
#     every boot file in every node folder is one inode with a file in tftp/.store; each node's
#     cmdline.txt is its own inode, one line, root=/dev/nfs with the node's nfsroot, the cgroup flags
#     once, no init=, no root=PARTUUID, the consoles kept;
#   - NFS: one root per node without the boot files (the mount point stays); /usr files are one inode
#     across nodes (with nfs/.store), the fixture's hardlink pair stays one inode; /etc and /var files
#     are separate inodes, and writing one node's copy changes no other node; owners, modes, setuid,
#     security.capability (byte for byte, and as getcap reads it), POSIX ACLs (getfacl), device node as
#     in the fixture; fstab without the PARTUUID lines;
#     dphys-swapfile.service masked; each node's /etc/hostname its name; one manifest per node in
#     nfs/.manifests;
#   - server files: `dnsmasq --test -C netboot/dnsmasq.conf` passes; exports has 4 well-formed lines
#     with distinct fsids, each the README's derivation computed here with sha256sum; nodes.txt lists the 4 nodes;
#   - the build logs one "wrote" line per node, naming that node's TFTP folder and NFS root;
#   - a second build into the same folder updates in place (tests/e2e/netboot_update.sh checks that in
#     depth): the recipe did not change, so what the nodes wrote stays, even in files imgbuild wrote;
#     no temporary is left;
#   - `imgbuild validate` of a recipe with a node lacking the MAC its TFTP folder is named by fails
#     (exit 2) naming the node's file:line:col, and so does a build, before writing anything;
#   - as user nobody the build fails (exit 1, says to run as root) and leaves nothing: no root full of
#     the builder's uid; prefix: none with 4 nodes fails (exit 1) and leaves nothing.
#
# usage: bash tests/e2e/netboot.sh path/to/imgbuild     (needs root; exit 77 otherwise)
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib/common.sh
. "$HERE/lib/common.sh"
e2e_args "$@"
MAKE_IMAGE=$HERE/../fixtures/make-image.sh
need_root "real owners in the NFS roots; setpriv to nobody; a private mount namespace"
need_tools dnsmasq setpriv getfattr setfattr getfacl getcap stat find sfdisk mkfs.vfat mcopy mke2fs unshare

export LC_ALL=C.UTF-8
unset SOURCE_DATE_EPOCH
umask 022
W=$(mktemp -d /tmp/imgbuild-e2e-netboot.XXXXXX)
trap 'rm -rf "$W"' EXIT
chmod 755 "$W" # user nobody reads the recipe and the fixture
export IMGBUILD_CACHE=$W/cache

# shellcheck source=lib/report.sh
. "$HERE/lib/report.sh"
ino() { stat -c %i "$1" 2> /dev/null || echo "missing:$1"; }
no_files() { # LABEL DIR
  local left
  left=$(find "$2" -mindepth 1 2> /dev/null | head -n 5 | tr '\n' ' ')
  if [ -z "$left" ]; then ok "$1: nothing left in the out folder"; else fail "$1: the out folder holds: $left"; fi
}

bash "$MAKE_IMAGE" raspios "$W/rpi.img" > "$W/fixture.log" 2>&1 || { fail "fixture: $(tail -5 "$W/fixture.log")"; exit 1; }
chmod 644 "$W/rpi.img"

NODES=(node-1 node-2 node-3 node-4)
MACS=(b8:27:eb:00:00:01 b8:27:eb:00:00:02 dc:a6:32:00:00:03 DC-A6-32-00-00-04)
write_recipe() { # FILE EXTRA_OUTPUT_OPTIONS
  {
    echo "name: netboot-e2e"
    echo "epoch: 1700000000"
    echo "base: {image: rpi.img}"
    echo "nodes:"
    for i in 0 1 2 3; do
      echo "  - {name: ${NODES[$i]}, mac: \"${MACS[$i]}\", serial: \"a1b2c30$((i + 1))\", ip: 10.0.0.1$((i + 1))/24}"
    done
    cat << 'EOF'
steps:
  - cmdline: cgroups
  - files: {dest: /boot/firmware/bootcode.bin, content: "fake bootcode\n"}
  - files:
      dest: /usr/lib/systemd/system/dphys-swapfile.service
      content: "[Unit]\nDescription=swap file\n[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n"
  - hostname: "{{node.name}}"
  # The base's identity, as a Debian image carries it: every node must get its own.
  - files: {dest: /etc/machine-id, content: "514aa383a0c14d8cb0bc3e8e2a3d5b7e\n", mode: 0444}
  - files: {dest: /var/lib/systemd/random-seed, content: "base seed\n", mode: 0600}
outputs:
EOF
    echo "  - netboot: {server: 10.0.0.1$2}"
  } > "$1"
}
write_recipe "$W/recipe.yaml" ""
write_recipe "$W/none.yaml" ", prefix: none"

O=$W/out
"$IMGBUILD" --out "$O" "$W/recipe.yaml" > "$W/build.out" 2> "$W/build.err"
RC=$?
eq "build exit code" "$RC" 0
[ "$RC" = 0 ] || { sed 's/^/       /' "$W/build.err" | head -20; exit 1; }
wrote=$(grep '^wrote ' "$W/build.err")
for i in 0 1 2 3; do
  mac=$(tr ':[:upper:]' '-[:lower:]' <<< "${MACS[$i]}")
  eq "'wrote' logged once for ${NODES[$i]}, naming its folders" \
    "$(grep -c "^wrote $O/tftp/$mac/ and nfs/${NODES[$i]}/ (" <<< "$wrote")" 1
done
eq "'wrote' logged once per node" "$(grep -c '/tftp/' <<< "$wrote")" 4

# ---- TFTP --------------------------------------------------------------------------------------
T=$O/tftp
want_dirs=$(printf '%s\n' .store b8-27-eb-00-00-01 b8-27-eb-00-00-02 bootcode.bin dc-a6-32-00-00-03 dc-a6-32-00-00-04)
eq "TFTP root holds the store, bootcode.bin and one folder per MAC" "$(ls -A "$T" | LC_ALL=C sort)" "$want_dirs"
BOOT_FILES=(bootcode.bin start4.elf config.txt bcm2711-rpi-4-b.dtb overlays/disable-bt.dtbo "A Long File Name.txt")
for i in 0 1 2 3; do
  mac=$(tr ':[:upper:]' '-[:lower:]' <<< "${MACS[$i]}")
  d=$T/$mac node=${NODES[$i]}
  c=$d/cmdline.txt
  eq "$node cmdline.txt is one line" "$(wc -l < "$c")" 1
  line=$(cat "$c")
  case " $line " in
    *" root=/dev/nfs nfsroot=10.0.0.1:/srv/nfs/$node,vers=3,tcp rw ip=dhcp rootwait "*) ok "$node cmdline boots from its NFS root" ;;
    *) fail "$node cmdline: '$line'" ;;
  esac
  for a in cgroup_enable=memory cgroup_memory=1 cgroup_enable=cpuset swapaccount=1 console=serial0,115200 console=tty1 root=/dev/nfs rootwait; do
    eq "$node cmdline has '$a' once" "$(tr ' ' '\n' <<< "$line" | grep -cxF -- "$a")" 1
  done
  if grep -qE '(^| )(init=|rootfstype=|fsck.repair=|root=PARTUUID)' "$c"; then fail "$node cmdline keeps SD-only arguments: '$line'"; else ok "$node cmdline: no init=, rootfstype=, fsck.repair=, PARTUUID"; fi
  eq "$node cmdline.txt is a file of its own" "$(stat -c %h "$c")" 1
  for f in "${BOOT_FILES[@]}"; do
    first=$T/b8-27-eb-00-00-01/$f
    if [ "$node" = node-1 ]; then
      [ -f "$d/$f" ] && [ ! -L "$d/$f" ] && ok "$node $f is a regular file" || fail "$node $f is missing or not a regular file"
    elif [ -f "$d/$f" ] && [ -f "$first" ]; then
      eq "$node $f: the same inode as node-1's" "$(ino "$d/$f")" "$(ino "$first")"
    else
      fail "$node $f or node-1's is missing"
    fi
  done
done
for f in "${BOOT_FILES[@]}"; do
  n=$(find "$T/.store" -inum "$(ino "$T/b8-27-eb-00-00-01/$f")" | wc -l)
  eq "$f is stored once in tftp/.store" "$n" 1
done
eq "tftp/bootcode.bin is the stored one" "$(ino "$T/bootcode.bin")" "$(ino "$T/b8-27-eb-00-00-01/bootcode.bin")"
cmp -s "$T/b8-27-eb-00-00-01/start4.elf" "$W/rpi.img.src/boot/start4.elf" && ok "start4.elf content" || fail "start4.elf differs from the fixture's"
eq "boot files are world-readable" "$(stat -c %a "$T/b8-27-eb-00-00-01/start4.elf")" 644

# ---- NFS roots ---------------------------------------------------------------------------------
N=$O/nfs
S=$W/rpi.img.src/root # the fixture's source root
SRC_CAP=$(getfattr --absolute-names -e hex -n security.capability "$S/usr/bin/ping" 2> /dev/null | sed -n 's/^security.capability=//p')
SRC_GETCAP=$(getcap "$S/usr/bin/ping" | awk '{ print $2 }')
acls() { (cd "$1" && getfacl -n -p -R var/log/journal etc/acl.conf 2> /dev/null | grep -v '^# owner\|^# group'); }
SRC_ACLS=$(acls "$S")
[ -n "$SRC_CAP" ] && [ -n "$SRC_GETCAP" ] && grep -q '^user:1000:' <<< "$SRC_ACLS" && grep -q '^default:group:4:' <<< "$SRC_ACLS" ||
  die "the fixture's source root lacks the capability or the ACLs it is made with: '$SRC_CAP' '$SRC_GETCAP' '$SRC_ACLS'"
eq "NFS folder holds the manifests, the store and one root per node" "$(ls -A "$N" | LC_ALL=C sort | tr '\n' ' ')" ".manifests .store node-1 node-2 node-3 node-4 "
eq "one manifest per node" "$(ls -A "$N/.manifests" | LC_ALL=C sort | tr '\n' ' ')" "node-1 node-2 node-3 node-4 "
for node in "${NODES[@]}"; do
  r=$N/$node
  eq "$node /etc/hostname" "$(cat "$r/etc/hostname")" "$node"
  eq "$node /boot/firmware is an empty mount point" "$(find "$r/boot/firmware" -mindepth 1 | wc -l)" 0
  [ -d "$r/boot/firmware" ] && ok "$node /boot/firmware exists" || fail "$node /boot/firmware is missing"
  eq "$node fstab" "$(cat "$r/etc/fstab")" "proc /proc proc defaults 0 0"
  eq "$node dphys-swapfile masked" "$(readlink "$r/etc/systemd/system/dphys-swapfile.service")" /dev/null
  eq "$node /usr/bin/hello shared with node-1" "$(ino "$r/usr/bin/hello")" "$(ino "$N/node-1/usr/bin/hello")"
  eq "$node /usr/bin/hello-again is hello" "$(ino "$r/usr/bin/hello-again")" "$(ino "$r/usr/bin/hello")"
  eq "$node /usr/bin/ping owner and mode" "$(stat -c '%u:%g %a' "$r/usr/bin/ping")" "0:0 4755"
  eq "$node /usr/bin/ping security.capability is the source's, byte for byte" \
    "$(getfattr --absolute-names -e hex -n security.capability "$r/usr/bin/ping" 2> /dev/null | sed -n 's/^security.capability=//p')" "$SRC_CAP"
  eq "$node /usr/bin/ping: getcap reads what it reads on the source" "$(getcap "$r/usr/bin/ping" | awk '{ print $2 }')" "$SRC_GETCAP"
  eq "$node POSIX ACLs (named user/group entries, default ACL) are the source's" "$(acls "$r")" "$SRC_ACLS"
  eq "$node /home/pi owner and mode" "$(stat -c '%u:%g %a' "$r/home/pi")" "1000:1000 700"
  eq "$node /home/pi/notes.txt owner" "$(stat -c '%u:%g %a' "$r/home/pi/notes.txt")" "1000:1000 644"
  eq "$node /etc/ssh key mode" "$(stat -c '%u:%g %a' "$r/etc/ssh/ssh_host_ed25519_key")" "0:0 600"
  eq "$node /dev/null" "$(stat -c '%F %t,%T %a' "$r/dev/null")" "character special file 1,3 666"
  eq "$node /bin is the usrmerge link" "$(readlink "$r/bin")" usr/bin
  eq "$node var/sparse.img is sparse" "$(($(stat -c %b "$r/var/sparse.img") * 512 < 1048576))" 1
  id=$(cat "$r/etc/machine-id")
  [[ $id =~ ^[0-9a-f]{32}$ ]] && [ "$id" != 514aa383a0c14d8cb0bc3e8e2a3d5b7e ] && ok "$node has its own machine-id $id" ||
    fail "$node /etc/machine-id is '$id' (the base's, or not 32 hex digits)"
  echo "$id" >> "$W/machine-ids"
  [ ! -e "$r/var/lib/systemd/random-seed" ] && ok "$node carries no copy of the base's random-seed" ||
    fail "$node still has the base's /var/lib/systemd/random-seed"
  if [ "$node" != node-1 ]; then
    for f in etc/hostname etc/hosts etc/passwd var/log/syslog home/pi/notes.txt; do
      [ "$(ino "$r/$f")" != "$(ino "$N/node-1/$f")" ] && ok "$node $f is its own copy" || fail "$node $f shares node-1's inode"
    done
  fi
done
eq "/usr/bin/hello is in nfs/.store" "$(find "$N/.store" -inum "$(ino "$N/node-1/usr/bin/hello")" | wc -l)" 1
eq "/usr/bin/hello link count: store + 2 names x 4 nodes" "$(stat -c %h "$N/node-1/usr/bin/hello")" 9
eq "four different machine-ids" "$(sort -u "$W/machine-ids" | wc -l)" 4
echo changed > "$N/node-1/etc/hostname"
echo appended >> "$N/node-1/var/log/syslog"
eq "writing node-1's hostname leaves node-2's" "$(cat "$N/node-2/etc/hostname")" node-2
eq "appending to node-1's syslog leaves node-3's" "$(cat "$N/node-3/var/log/syslog")" "a log line"

# ---- server files --------------------------------------------------------------------------------
if dnsmasq --test -C "$O/netboot/dnsmasq.conf" > "$W/dnsmasq.out" 2>&1; then ok "dnsmasq --test accepts dnsmasq.conf"; else fail "dnsmasq --test: $(cat "$W/dnsmasq.out")"; fi
grep -qx 'tftp-unique-root=mac' "$O/netboot/dnsmasq.conf" && ok "dnsmasq.conf: tftp-unique-root=mac" || fail "dnsmasq.conf lacks tftp-unique-root=mac"
grep -qx 'dhcp-range=10.0.0.0,proxy,255.255.255.0' "$O/netboot/dnsmasq.conf" && ok "dnsmasq.conf: proxy range" || fail "dnsmasq.conf lacks the proxy range"
lines=$(grep -v '^#' "$O/netboot/exports")
eq "exports: 4 lines" "$(grep -c . <<< "$lines")" 4
eq "exports: every line well-formed" \
  "$(grep -cE '^/srv/nfs/node-[1-4]  \*\(rw,sync,no_subtree_check,no_root_squash,fsid=[1-9][0-9]*\)$' <<< "$lines")" 4
eq "exports: distinct fsids" "$(grep -oE 'fsid=[0-9]+' <<< "$lines" | sort -u | wc -l)" 4
# The README's derivation, computed here: the first 31 bits of sha256("imgbuild netboot NAME").
for node in "${NODES[@]}"; do
  h=$(printf 'imgbuild netboot %s' "$node" | sha256sum | cut -c1-8)
  eq "exports: $node's fsid is sha256(\"imgbuild netboot $node\")'s first 31 bits" \
    "$(sed -n "s|^/srv/nfs/$node  .*fsid=\([0-9]*\))\$|\1|p" <<< "$lines")" "$((0x$h & 0x7fffffff))"
done
eq "nodes.txt: header and 4 nodes" "$(wc -l < "$O/netboot/nodes.txt")" 5
grep -qE '^node-3 +dc:a6:32:00:00:03 +a1b2c303 +10\.0\.0\.13/24 +tftp/dc-a6-32-00-00-03/ +10\.0\.0\.1:/srv/nfs/node-3$' "$O/netboot/nodes.txt" &&
  ok "nodes.txt row of node-3" || fail "nodes.txt: $(cat "$O/netboot/nodes.txt")"

# ---- a second build updates in place ------------------------------------------------------------------
"$IMGBUILD" --out "$O" "$W/recipe.yaml" > "$W/build2.out" 2> "$W/build2.err"
eq "second build exit code" "$?" 0
eq "second build, recipe unchanged: node-1's own /etc/hostname stays" "$(cat "$N/node-1/etc/hostname")" changed
eq "second build, recipe unchanged: node-1's appended syslog line stays" "$(tail -n 1 "$N/node-1/var/log/syslog")" appended
eq "second build: node-2's hostname" "$(cat "$N/node-2/etc/hostname")" node-2
grep -q "4 nodes' folders already up to date" "$W/build2.err" && ok "second build: says the folders were up to date" ||
  fail "second build: $(grep netboot "$W/build2.err" | head -c 300)"
eq "second build: no temporary left" "$(find "$O" -name '*imgbuild-tmp*' | wc -l)" 0
eq "second build: /usr/bin/hello link count" "$(stat -c %h "$N/node-1/usr/bin/hello")" 9
eq "second build: tftp/bootcode.bin is still the stored one" "$(ino "$T/bootcode.bin")" "$(ino "$T/b8-27-eb-00-00-01/bootcode.bin")"

# ---- share: export: one read-only /usr that every node mounts ------------------------------------------
write_recipe "$W/export.yaml" ", share: export"
E=$W/export-out
"$IMGBUILD" --out "$E" "$W/export.yaml" > "$W/export.out" 2> "$W/export.err"
eq "share: export build exit code" "$?" 0
eq "share: export: nfs/.usr holds /usr" "$(cat "$E/nfs/.usr/bin/hello" 2> /dev/null | head -c 40)" "$(head -c 40 "$N/node-2/usr/bin/hello")"
for node in "${NODES[@]}"; do
  eq "share: export: $node /usr is an empty mount point" "$(find "$E/nfs/$node/usr" -mindepth 1 | wc -l)" 0
  eq "share: export: $node fstab mounts /usr" "$(cat "$E/nfs/$node/etc/fstab")" \
    "proc /proc proc defaults 0 0
10.0.0.1:/srv/nfs/.usr /usr nfs ro,vers=3,tcp 0 0"
done
eq "share: export: exports serve /usr read-only" "$(grep -cE '^/srv/nfs/\.usr  \*\(ro,sync,no_subtree_check,no_root_squash,fsid=[1-9][0-9]*\)$' "$E/netboot/exports")" 1
eq "share: export: the nodes' exports as with share: auto" "$(grep '^/srv/nfs/node' "$E/netboot/exports")" "$(grep '^/srv/nfs/node' "$O/netboot/exports")"
fewer=$(find "$E/nfs/node-2" | wc -l) all=$(find "$N/node-2" | wc -l)
[ "$fewer" -lt "$all" ] && ok "share: export: node-2's root has $fewer names (share: auto: $all)" ||
  fail "share: export: node-2's root has $fewer names, share: auto's $all"
# What node-2 sees once /usr is mounted (a read-only bind mount here, as NFS would serve it) is the
# root share: auto wrote for it: every name, type, mode, owner, size, link target and content.
view() { # ROOT
  (cd "$1" && find . -path ./etc/fstab -prune -o -printf '%p %y %m %U:%G %l\n' | LC_ALL=C sort &&
    find . -type f ! -path ./etc/fstab -print0 | LC_ALL=C sort -z | xargs -0 sha256sum)
}
view "$N/node-2" > "$W/view-auto"
export -f view
unshare --mount --propagation private bash -c 'mount --bind -o ro "$1/nfs/.usr" "$1/nfs/node-2/usr" && view "$1/nfs/node-2"' \
  _ "$E" > "$W/view-export" 2> "$W/view-export.err"
if [ -s "$W/view-export" ] && cmp -s "$W/view-auto" "$W/view-export"; then
  ok "share: export: node-2 with /usr mounted is node-2 of share: auto ($(wc -l < "$W/view-auto") lines compared)"
else
  fail "share: export: node-2 with /usr mounted differs: $(diff "$W/view-auto" "$W/view-export" | head -5 | tr '\n' ' ') $(head -c 200 "$W/view-export.err")"
fi

# ---- a node without the MAC its folder is named by: a recipe error, at the node ------------------------
sed 's/^  - {name: node-3, mac: "[^"]*", /  - {name: node-3, /' "$W/recipe.yaml" > "$W/nomac.yaml"
line=$(grep -n 'name: node-3' "$W/nomac.yaml" | cut -d: -f1)
"$IMGBUILD" validate "$W/nomac.yaml" > "$W/nomac.out" 2> "$W/nomac.err"
eq "validate, node without a MAC: exit code" "$?" 2
eq "validate, node without a MAC: the message" "$(cat "$W/nomac.err")" \
  "$W/nomac.yaml:$line:5: output 'netboot': node 'node-3' has no mac: its TFTP folder is named by it (prefix: mac); give the node a mac, or choose prefix: serial"
"$IMGBUILD" --out "$W/nomac-out" "$W/nomac.yaml" > "$W/nomac-build.out" 2> "$W/nomac-build.err"
eq "build, node without a MAC: exit code" "$?" 2
no_files "build, node without a MAC" "$W/nomac-out"

# ---- failures leave nothing ---------------------------------------------------------------------------
mkdir -p "$W/nobody/home" "$W/nobody/tmp" && chown -R 65534:65534 "$W/nobody"
setpriv --reuid=65534 --regid=65534 --clear-groups env HOME="$W/nobody/home" TMPDIR="$W/nobody/tmp" \
  IMGBUILD_CACHE="$W/nobody/cache" "$IMGBUILD" --out "$W/nobody/out" "$W/recipe.yaml" > "$W/nobody.out" 2> "$W/nobody.err"
eq "as nobody: exit code" "$?" 1
grep -q "run imgbuild as root" "$W/nobody.err" && ok "as nobody: says to run as root" || fail "as nobody: $(head -c 400 "$W/nobody.err")"
no_files "as nobody" "$W/nobody/out"
# Into the folder a root build filled, which nobody may read but not write: stopped before it.
setpriv --reuid=65534 --regid=65534 --clear-groups env HOME="$W/nobody/home" TMPDIR="$W/nobody/tmp" \
  IMGBUILD_CACHE="$W/nobody/cache" "$IMGBUILD" --out "$O" "$W/recipe.yaml" > "$W/nobody2.out" 2> "$W/nobody2.err"
eq "as nobody, over a root build: exit code" "$?" 1
grep -q "run imgbuild as root" "$W/nobody2.err" && ok "as nobody, over a root build: says to run as root" || fail "as nobody: $(head -c 400 "$W/nobody2.err")"
eq "as nobody, over a root build: node-2's root as it was" "$(cat "$N/node-2/etc/hostname") $(stat -c %U "$N/node-2/etc/hostname")" "node-2 root"

"$IMGBUILD" --out "$W/none-out" "$W/none.yaml" > "$W/none.out" 2> "$W/none.err"
eq "prefix none with 4 nodes: exit code" "$?" 1
grep -q "prefix: none serves one node" "$W/none.err" && ok "prefix none: says why" || fail "prefix none: $(head -c 400 "$W/none.err")"
no_files "prefix none" "$W/none-out"

finish netboot
