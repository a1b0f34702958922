#!/usr/bin/env bash
# End-to-end: the `netboot` output updates existing TFTP folders and NFS roots in place. A cluster of
# 4 nodes from the raspios fixture (tests/fixtures/make-image.sh), each node's host name from a node
# var, is built, then the nodes "run": they write files of their own (a log in /var/log, a project in
# /home/pi) and append to a log imgbuild wrote. Checked with stat and find, comparing listings of
# inode, mtime and path of everything under tftp/ and nfs/:
#   - a second build with nothing changed touches nothing: the listing is the same, nothing is new;
#   - a new host name for node-2 rewrites only node-2's files (and its manifest): every other line of
#     the listing stays, and node-2's /etc/hostname has a new inode and the new name;
#   - the nodes' own files and their appended log lines survive every build;
#   - node-4 dropped from the recipe: the build succeeds, warns naming node-4 and both its folders,
#     keeps them as they were, and exports no longer lists it; with --prune they go, nothing else moves;
#   - a build that fails after writing some nodes (node-3's step fails) changes nothing and leaves no
#     temporary; builds stopped by SIGINT at several moments leave no temporary and every node either
#     as it was or as the recipe now says, and the next build then gives what a fresh build gives;
#   - TFTP folders named by serial instead of MAC: the MAC folders go, the NFS roots do not move.
#
# usage: bash tests/e2e/netboot_update.sh path/to/imgbuild     (needs root; exit 77 otherwise)
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib/common.sh
. "$HERE/lib/common.sh"
e2e_args "$@"
MAKE_IMAGE=$HERE/../fixtures/make-image.sh
need_root "real owners in the NFS roots"
need_tools stat find sha256sum sfdisk mkfs.vfat mcopy mke2fs

export LC_ALL=C.UTF-8
unset SOURCE_DATE_EPOCH
umask 022
W=$(mktemp -d /tmp/imgbuild-e2e-netboot-update.XXXXXX)
trap 'rm -rf "$W"' EXIT
export IMGBUILD_CACHE=$W/cache

# shellcheck source=lib/report.sh
. "$HERE/lib/report.sh"
ino() { stat -c %i "$1" 2> /dev/null || echo "missing:$1"; }
# Inode, mtime and path of everything under tftp/ and nfs/ of an output folder.
listing() { (cd "$1" && find tftp nfs -printf '%i %T@ %p\n' | LC_ALL=C sort -k3); }
# What a fresh build would give: path, type, mode, owner, size, content and link target of
# everything in the node folders, with the files the nodes made themselves left out.
contents() {
  (cd "$1" && find tftp nfs -path 'nfs/.manifests' -prune -o -path '*/.store' -prune -o -type d -printf '%p d %m %U:%G\n' -o \
    -printf '%p %y %m %U:%G %s %l\n' | grep -vE "$NODE_MADE" | LC_ALL=C sort)
  (cd "$1" && find tftp nfs -path 'nfs/.manifests' -prune -o -path '*/.store' -prune -o -type f -print0 | LC_ALL=C sort -z |
    xargs -0 sha256sum | grep -vE "$NODE_MADE")
}
# What the nodes make or append to below: left out when comparing with a fresh build.
NODE_MADE='node\.log|/project|/var/log/syslog'
no_temporaries() { eq "$1: no temporary left" "$(find "$2" -name '*imgbuild-tmp*' | wc -l)" 0; }

bash "$MAKE_IMAGE" raspios "$W/rpi.img" > "$W/fixture.log" 2>&1 || { fail "fixture: $(tail -5 "$W/fixture.log")"; exit 1; }

NODES=(node-1 node-2 node-3 node-4)
MACS=(b8:27:eb:00:00:01 b8:27:eb:00:00:02 b8:27:eb:00:00:03 b8:27:eb:00:00:04)
write_recipe() { # FILE HOSTNAME_OF_NODE_2 NODE_COUNT OWNER_OF_NODE_3 [big]
  local i host owner
  {
    echo "name: netboot-update"
    echo "epoch: 1700000000"
    echo "base: {image: rpi.img}"
    echo "nodes:"
    for i in $(seq 0 $(($3 - 1))); do
      host=${NODES[$i]} owner=root
      [ "$i" = 1 ] && host=$2
      [ "$i" = 2 ] && owner=$4
      echo "  - {name: ${NODES[$i]}, mac: \"${MACS[$i]}\", serial: a1b2c30$((i + 1)), vars: {host: $host, owner: $owner}}"
    done
    cat << 'EOF'
steps:
  - cmdline: cgroups
  - hostname: "{{node.host}}"
  - files: {dest: /etc/motd, content: "welcome to {{node.host}}\n", owner: "{{node.owner}}"}
EOF
    # A big file per node, named after its host name: renaming node-2 makes its build slow enough
    # to be interrupted in the middle.
    [ "${5:-}" = big ] && echo '  - files: {dest: "/var/lib/big-{{node.host}}", src: big.bin}'
    echo "outputs:"
    echo "  - netboot: {server: 10.0.0.1, prefix: ${PREFIX:-mac}}"
  } > "$1"
}
O=$W/out
build() { # LOG RECIPE [ARGS...]
  local log=$1 recipe=$2
  shift 2
  "$IMGBUILD" --out "$O" "$@" "$recipe" > "$W/$log.out" 2> "$W/$log.err"
}

write_recipe "$W/r.yaml" node-2 4 root
build first "$W/r.yaml"
eq "first build exit code" "$?" 0
N=$O/nfs
for node in "${NODES[@]}"; do
  [ -s "$N/.manifests/$node" ] && ok "$node has a manifest" || fail "$node has no manifest in nfs/.manifests"
done
eq "'wrote' is logged once per node, naming its folders" \
  "$(grep -c '^wrote .*/tftp/b8-27-eb-00-00-0[1-4]/ and nfs/node-[1-4]/ ' "$W/first.err")" 4
# The nodes run: files of their own, and a line appended to a log imgbuild wrote.
for node in "${NODES[@]}"; do
  echo "$node was here" > "$N/$node/var/log/node.log"
  mkdir -p "$N/$node/home/pi/project" && echo "work of $node" > "$N/$node/home/pi/project/main.c"
  echo "appended by $node" >> "$N/$node/var/log/syslog"
done
node_files_survive() { # LABEL NODE...
  local label=$1 node
  shift
  for node in "$@"; do
    eq "$label: $node's own log" "$(cat "$N/$node/var/log/node.log" 2> /dev/null)" "$node was here"
    eq "$label: $node's own project" "$(cat "$N/$node/home/pi/project/main.c" 2> /dev/null)" "work of $node"
    eq "$label: $node's appended log line" "$(tail -n 1 "$N/$node/var/log/syslog" 2> /dev/null)" "appended by $node"
  done
}

# ---- nothing changed: nothing touched ----------------------------------------------------------------
listing "$O" > "$W/l0"
build same "$W/r.yaml"
eq "unchanged build exit code" "$?" 0
listing "$O" > "$W/l1"
if cmp -s "$W/l0" "$W/l1"; then ok "unchanged build: same inodes and mtimes under tftp/ and nfs/, nothing new"; else
  fail "unchanged build touched: $(diff "$W/l0" "$W/l1" | head -n 6 | tr '\n' ' ')"; fi
node_files_survive "unchanged build" "${NODES[@]}"

# ---- node-2's host name changes: only node-2's files are rewritten ------------------------------------
write_recipe "$W/r2.yaml" node-two 4 root
h1=$(ino "$N/node-1/etc/hostname") h2=$(ino "$N/node-2/etc/hostname")
build rename "$W/r2.yaml"
eq "host name change: exit code" "$?" 0
listing "$O" > "$W/l2"
outside=$(diff "$W/l1" "$W/l2" | grep '^[<>]' | grep -vE ' nfs/node-2/| nfs/\.manifests(/node-2)?$' | head -n 6 | tr '\n' ' ')
eq "host name change: nothing outside node-2's root (and its manifest) moved" "$outside" ""
inside=$(diff "$W/l1" "$W/l2" | grep '^>' | grep -c ' nfs/node-2/')
[ "$inside" -ge 1 ] && ok "host name change: node-2's root changed ($inside entries)" || fail "host name change: node-2 unchanged"
eq "host name change: node-2's /etc/hostname" "$(cat "$N/node-2/etc/hostname")" node-two
[ "$(ino "$N/node-2/etc/hostname")" != "$h2" ] && ok "host name change: node-2's /etc/hostname is a new file" || fail "node-2's /etc/hostname kept its inode"
eq "host name change: node-1's /etc/hostname untouched" "$(ino "$N/node-1/etc/hostname")" "$h1"
eq "host name change: node-2's motd" "$(cat "$N/node-2/etc/motd")" "welcome to node-two"
node_files_survive "host name change" "${NODES[@]}"
no_temporaries "host name change" "$O"

# ---- node-4 leaves the recipe: kept and named, then pruned ---------------------------------------------
write_recipe "$W/r3.yaml" node-two 3 root
listing "$O" > "$W/l3"
build drop "$W/r3.yaml"
eq "node-4 dropped: exit code" "$?" 0
grep -q "node 'node-4' is no longer in the recipe; its folders $O/tftp/b8-27-eb-00-00-04/, $O/nfs/node-4/ are kept" "$W/drop.err" &&
  ok "node-4 dropped: the warning names it and its folders" || fail "node-4 dropped: stderr: $(head -c 600 "$W/drop.err")"
listing "$O" > "$W/l4"
eq "node-4 dropped: node-4's folders as they were" "$(grep -E ' (nfs|tftp)/(node-4|b8-27-eb-00-00-04)' "$W/l4")" \
  "$(grep -E ' (nfs|tftp)/(node-4|b8-27-eb-00-00-04)' "$W/l3")"
node_files_survive "node-4 dropped" node-4
if [ ! -s "$O/netboot/exports" ]; then
  fail "node-4 dropped: netboot/exports is missing or empty"
elif grep -q '/srv/nfs/node-4 ' "$O/netboot/exports"; then
  fail "exports still lists node-4"
else
  eq "node-4 dropped: exports no longer lists it, and lists the 3 nodes left" "$(grep -oE '^/srv/nfs/node-[0-9]+ ' "$O/netboot/exports" | sort | tr -d ' ' | tr '\n' ' ')" \
    "/srv/nfs/node-1 /srv/nfs/node-2 /srv/nfs/node-3 "
fi
# Its kept folders stay imgbuild's (out/.imgbuild-outputs): node-4 back in the recipe needs no --force.
"$IMGBUILD" validate --out "$O" "$W/r2.yaml" > "$W/back.out" 2> "$W/back.err"
eq "node-4 back in the recipe: its kept folders are still taken for imgbuild's (validate exit code)" "$?" 0
# A `dir` output over the NFS roots is refused before anything is written: they are the netboot output's.
printf 'base: {image: rpi.img}\noutputs:\n  - dir: {path: nfs}\n' > "$W/over.yaml"
listing "$O" > "$W/l-over"
build over "$W/over.yaml"
eq "a dir output over the netboot NFS roots: exit code" "$?" 2
grep -q "output 'dir': '$O/nfs' exists (a folder) and was not written there by this output" "$W/over.err" &&
  ok "a dir output over the netboot NFS roots: the error names the folder" || fail "dir over nfs: stderr: $(head -c 400 "$W/over.err")"
listing "$O" > "$W/l-over2"
cmp -s "$W/l-over" "$W/l-over2" && ok "a dir output over the netboot NFS roots: nothing changed" || fail "dir over nfs changed the folders"
build prune "$W/r3.yaml" --prune
eq "--prune: exit code" "$?" 0
[ ! -e "$N/node-4" ] && [ ! -e "$O/tftp/b8-27-eb-00-00-04" ] && [ ! -e "$N/.manifests/node-4" ] &&
  ok "--prune: node-4's folders and manifest are gone" || fail "--prune left: $(ls -d "$N/node-4" "$O/tftp/b8-27-eb-00-00-04" "$N/.manifests/node-4" 2> /dev/null)"
grep -q "node 'node-4' is no longer in the recipe: removed" "$W/prune.err" && ok "--prune: says what it removed" || fail "--prune: stderr: $(head -c 400 "$W/prune.err")"
listing "$O" > "$W/l5"
pruned=' (nfs|tftp)/(node-4|b8-27-eb-00-00-04)|nfs/\.manifests(/node-4)?$| nfs$| tftp$|nfs/\.store'
eq "--prune: nothing else moved" "$(grep -vE "$pruned" "$W/l4")" "$(grep -vE "$pruned" "$W/l5")"
node_files_survive "--prune" node-1 node-2 node-3

# ---- a build that fails changes nothing -----------------------------------------------------------------
write_recipe "$W/bad.yaml" node-2-again 3 nosuchuser
build bad "$W/bad.yaml"
eq "failing build: exit code" "$?" 1
grep -q "node-3" "$W/bad.err" && ok "failing build: names node-3" || fail "failing build: $(head -c 400 "$W/bad.err")"
listing "$O" > "$W/l6"
if cmp -s "$W/l5" "$W/l6"; then ok "failing build: nothing under tftp/ and nfs/ changed"; else
  fail "failing build changed: $(diff "$W/l5" "$W/l6" | head -n 6 | tr '\n' ' ')"; fi
no_temporaries "failing build" "$O"

# ---- builds stopped by SIGINT: whole trees, old or new, and the next build finishes the job -------------
head -c 128M /dev/urandom > "$W/big.bin"
write_recipe "$W/big0.yaml" big-0 3 root big
build big0 "$W/big0.yaml"
eq "a build with big files: exit code" "$?" 0
write_recipe "$W/big1.yaml" big-1 3 root big
t0=$(date +%s%N)
build big1 "$W/big1.yaml"
eq "renaming node-2 with big files: exit code" "$?" 0
took_ms=$((($(date +%s%N) - t0) / 1000000))
echo "# renaming node-2 with big files took $took_ms ms"
i=1 interrupted=0
for percent in 25 40 55 70 85; do
  i=$((i + 1))
  write_recipe "$W/int$i.yaml" "renamed-$i" 3 root big
  before=$(cat "$N/node-2/etc/hostname")
  delay=$(awk -v ms="$took_ms" -v p="$percent" 'BEGIN { printf "%.3f", ms * p / 100000 }')
  "$IMGBUILD" --out "$O" "$W/int$i.yaml" > "$W/int$i.out" 2> "$W/int$i.err" &
  pid=$!
  sleep "$delay"
  kill -INT "$pid" 2> /dev/null
  wait "$pid"
  rc=$?
  case $rc in
    0 | 130) ok "SIGINT after ${delay}s ($percent%): exit code $rc" ;;
    *) fail "SIGINT after ${delay}s: exit code $rc: $(head -c 300 "$W/int$i.err")" ;;
  esac
  [ "$rc" = 130 ] && interrupted=$((interrupted + 1))
  no_temporaries "SIGINT after ${delay}s" "$O"
  now=$(cat "$N/node-2/etc/hostname")
  { [ "$now" = "$before" ] || [ "$now" = "renamed-$i" ]; } && ok "SIGINT after ${delay}s: node-2's host name is the old or the new one ($now)" ||
    fail "SIGINT after ${delay}s: node-2's host name is '$now'"
  eq "SIGINT after ${delay}s: node-2's motd goes with its host name" "$(cat "$N/node-2/etc/motd")" "welcome to $now"
  eq "SIGINT after ${delay}s: node-2 has one big file, named after its host name" "$(cd "$N/node-2/var/lib" && ls -d big-*)" "big-$now"
  node_files_survive "SIGINT after ${delay}s" node-1 node-2 node-3
done
[ "$interrupted" -ge 1 ] && ok "$interrupted of 5 builds were stopped by SIGINT before they ended" ||
  fail "no build was stopped by SIGINT before it ended (a build took $took_ms ms)"
build finish "$W/int$i.yaml"
eq "the build after the interrupted ones: exit code" "$?" 0
"$IMGBUILD" --out "$W/fresh" "$W/int$i.yaml" > "$W/fresh.out" 2> "$W/fresh.err"
eq "a fresh build of the same recipe: exit code" "$?" 0
contents "$O" > "$W/c-updated"
contents "$W/fresh" > "$W/c-fresh"
if cmp -s "$W/c-updated" "$W/c-fresh"; then ok "updated in place = built fresh (types, modes, owners, sizes, contents)"; else
  fail "updated in place differs from fresh: $(diff "$W/c-updated" "$W/c-fresh" | head -n 8 | tr '\n' ' ')"; fi
node_files_survive "after the interrupted builds" node-1 node-2 node-3

# ---- TFTP folders named by serial instead: the MAC folders go, the NFS roots stay -------------------------
listing "$O" > "$W/l7"
PREFIX=serial write_recipe "$W/serial.yaml" "renamed-$i" 3 root big
build serial "$W/serial.yaml"
eq "prefix serial: exit code" "$?" 0
ls "$O/tftp" | grep -q b8-27-eb && fail "prefix serial: MAC folders left: $(ls "$O/tftp" | tr '\n' ' ')" || ok "prefix serial: the MAC folders are gone"
for n in 1 2 3; do
  eq "prefix serial: tftp/a1b2c30$n/cmdline.txt boots node-$n" "$(grep -o "nfsroot=[^,]*" "$O/tftp/a1b2c30$n/cmdline.txt")" \
    "nfsroot=10.0.0.1:/srv/nfs/node-$n"
done
listing "$O" > "$W/l8"
eq "prefix serial: the NFS roots did not move" "$(grep ' nfs/node' "$W/l7")" "$(grep ' nfs/node' "$W/l8")"
no_temporaries "prefix serial" "$O"

finish netboot_update
