#!/usr/bin/env bash
# End-to-end: the `sdimage` output, read back only with tools imgbuild did not write.
# For the raspios, hypriotos and debian-raspi fixtures (tests/fixtures/make-image.sh; MBR) and for
# raspios once more with `table: gpt`, a recipe `base: {image: FIXTURE.img}` with the steps
# `hostname: node-a` and `cmdline: cgroups` and the output `sdimage: {path: out.img, boot_size: 64,
# align: 4, headroom: 16}` (headroom small to keep the files and the run short) is built, and:
#   - partition table (sfdisk --dump/--json/--verify): dos or gpt, two partitions, p1 at `align`,
#     p1 size = boot_size, both starts aligned, types c/83 (GPT: Microsoft basic data / Linux
#     filesystem), label-id = the disk id imgbuild logs (MBR: also the signature bytes at 440);
#   - filesystems, each partition cut out with dd: e2fsck -fn and fsck.fat -n clean; blkid -p TYPE and
#     LABEL (bootfs/rootfs; debian-raspi: RASPIFIRM/RASPIROOT taken over from its fstab's LABEL=);
#   - ext4 contents: `debugfs rdump` against the source tree by bsdtar's mtree writer (type, mode, uid,
#     gid, size, sha256, link), and every entry's type, permission bits, owner, group and hardlink
#     groups by `debugfs ls -p` against find(1) on the source; hostname, hosts, fstab as the steps and
#     the output make them; xattrs, device node, fifo, setuid, uid 1000 by debugfs stat/ea_list;
#   - FAT contents: mcopy -s of the whole partition against the boot tree (names incl. long ones,
#     sha256), cmdline.txt as expected; mdir shows the long names;
#   - PARTUUIDs: cmdline.txt's root= and fstab's PARTUUID= lines name p2/p1 of the new table; the
#     cgroup flags appear once; hypriotos keeps root=/dev/mmcblk0p2, debian-raspi root=LABEL=RASPIROOT;
#   - a second build into another folder: same bytes (.img and .bmap); bmaptool copy + cmp;
#   - SHA256SUMS lists out.img and out.img.bmap, and `sha256sum -c` agrees.
# On raspios: `path: out.img.zst` gives the plain build's image compressed (zstd -dc | cmp), the same
# .bmap, a SHA256SUMS of the .zst and .bmap, nothing else; disk_id "0x0badcafe" is honoured
# everywhere; the build as user nobody works, gives the same bytes as root's and keeps root/1000
# owners; errors: cmdline.txt naming root=PARTUUID=deadbeef-05 (exit 1, "names no partition", no
# output), boot files larger than boot_size (exit 1, names the sizes, no output), `path: x.raw` (exit 2).
#
# usage: bash tests/e2e/sdimage.sh path/to/imgbuild     (needs root: fixtures, setpriv; exit 77 otherwise)
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib/common.sh
. "$HERE/lib/common.sh"
e2e_args "$@"
MAKE_IMAGE=$HERE/../fixtures/make-image.sh
need_root "fixtures hold a device node and uid 1000 files; setpriv to nobody"
need_tools sfdisk jq e2fsck debugfs getfattr fsck.fat mcopy mdir mtype blkid bsdtar bmaptool setpriv mkfs.vfat mke2fs setfattr sha256sum cmp dd od

export LC_ALL=C.UTF-8
unset SOURCE_DATE_EPOCH
umask 022
W=$(mktemp -d /tmp/imgbuild-e2e-sdimage.XXXXXX)
trap 'rm -rf "$W"' EXIT
chmod 755 "$W" # user nobody reads the recipes and fixtures below
export IMGBUILD_CACHE=$W/cache
EPOCH=1700000000
T0=$(date +%s)

# shellcheck source=lib/report.sh
. "$HERE/lib/report.sh"
info() { echo "info - $*"; }
# same LABEL WANT_FILE GOT_FILE
same() {
  if diff -u "$2" "$3" > "$W/diff.txt"; then
    ok "$1"
  else
    fail "$1; diff (${2#"$W"/} vs ${3#"$W"/}):"
    head -n 60 "$W/diff.txt" | sed 's/^/       /'
  fi
}
# eq LABEL GOT WANT
sha_of() { sha256sum < "$1" | cut -d' ' -f1; }
lower() { tr '[:upper:]' '[:lower:]'; }
# P=PREFIX; run CMD...: stdout in $P.out, stderr in $P.err, exit code in RC.
run() {
  "$@" > "$P.out" 2> "$P.err"
  RC=$?
}
# build RECIPE OUTDIR [extra imgbuild args]: the build under the fixed epoch, -v (the log names the disk id).
build() {
  local r=$1 o=$2
  shift 2
  P=$o.build
  run env SOURCE_DATE_EPOCH=$EPOCH "$IMGBUILD" -v --out "$o" "$@" "$r"
}
no_crash() { # LABEL: RC a plain exit, no crash-like text on stderr
  if [ "$RC" -ge 128 ]; then
    fail "$1: exit code $RC (signal $((RC - 128)))"
  elif grep -qiE 'internal error|terminate called|Assertion .* failed|Sanitizer|runtime error|Segmentation|core dumped' "$P.err"; then
    fail "$1: crash-like stderr: $(head -c 400 "$P.err")"
  fi
}
no_files() { # LABEL DIR: the folder is absent or holds no file at all
  local left
  left=$(find "$2" -mindepth 1 2> /dev/null | head -n 5 | tr '\n' ' ')
  if [ -z "$left" ]; then ok "$1: no output left in the out folder"; else fail "$1: the out folder holds: $left"; fi
}

# mtree of a folder: one sorted line per name, '.' for the top. Without ACLs: bsdtar would report an
# ACL'd name with its group:: entry as group bits, where stat (and debugfs rdump's copy, which has no
# ACL) shows the mask; the ACLs are compared on their own.
MTREE_KEYS='!all,type,mode,uid,gid,size,sha256,link'
mtree_dir() {
  bsdtar --no-acls -cf - --format=mtree --options="$MTREE_KEYS" -C "$1" . | grep -v '^#' |
    awk '$1 == "/." { $1 = "." } { print }' | LC_ALL=C sort
}
# Leaves out of a "./path ..." listing: lost+found, what is under the boot mount ($1, e.g. /boot),
# and the names given after it.
drop() { # BOOTMNT [NAME...]
  local bm=$1
  shift
  awk -v bm=".$bm" -v names="$*" '
    BEGIN { n = split(names, a, " "); for (i = 1; i <= n; i++) D[a[i]] = 1 }
    $1 == "./lost+found" || index($1, "./lost+found/") == 1 { next }
    index($1, bm "/") == 1 { next }
    ($1 in D) { next }
    { print }'
}

# Every entry of an ext4 image by debugfs `ls -p`, walked breadth first from /:
# "./path type perm uid gid inode" (type d f l c b p s, perm 4 octal digits), sorted.
debugfs_list() { # EXT4 OUT
  local fs=$1 out=$2 level=("/") next cmds=$W/debugfs.cmds raw=$W/debugfs.raw
  : > "$out.tmp"
  while [ ${#level[@]} -gt 0 ]; do
    printf 'ls -p "%s"\n' "${level[@]}" > "$cmds"
    debugfs -f "$cmds" "$fs" > "$raw" 2> /dev/null
    awk -F/ '
      /^debugfs: ls -p / { d = substr($0, 16); gsub(/"/, "", d); if (d == "/") d = ""; next }
      NF >= 7 && $1 == "" {
        name = $6
        if (name == "..") next
        if (name == ".") { if (d != "") next; p = "." } else p = "." d "/" name
        m = $3; perm = substr(m, length(m) - 3); t = substr(m, 1, length(m) - 4); sub(/^0+/, "", t)
        ty = (t == "4") ? "d" : (t == "10") ? "f" : (t == "12") ? "l" : (t == "2") ? "c" : (t == "6") ? "b" : (t == "1") ? "p" : (t == "14") ? "s" : "?" t
        print p, ty, perm, $4, $5, $2
      }' "$raw" >> "$out.tmp"
    mapfile -t next < <(awk -F/ '/^debugfs: ls -p / { d = substr($0, 16); gsub(/"/, "", d); if (d == "/") d = ""; next }
      NF >= 7 && $1 == "" && $6 != "." && $6 != ".." && $3 ~ /^0?40/ { print d "/" $6 }' "$raw")
    level=("${next[@]}")
  done
  LC_ALL=C sort "$out.tmp" > "$out"
  rm -f "$out.tmp"
}
# The same view of a host folder by find(1).
find_list() { # DIR
  (cd "$1" && find . -printf '%p %y %m %U %G %i\n') | awk '{ $3 = sprintf("%04d", $3); print }' | LC_ALL=C sort
}
# Hardlink groups (names sharing an inode, regular files only) of such a listing, one sorted line each.
link_groups() {
  awk '$2 == "f" { n[$6]++; g[$6] = g[$6] " " $1 } END { for (i in n) if (n[i] > 1) print g[i] }' |
    while read -r line; do echo "$line" | tr ' ' '\n' | LC_ALL=C sort | tr '\n' ' ' | sed 's/ $//'; echo; done | LC_ALL=C sort
}
# Files and folders of a host folder: "./path/" for a folder, "./path sha256" for a file, sorted.
content_list() { # DIR
  (cd "$1" && find . -mindepth 1 \( -type d -printf '%p/\n' \) -o \( -type f -print \) | LC_ALL=C sort |
    while IFS= read -r p; do
      case $p in */) echo "$p" ;; *) echo "$p $(sha256sum < "$p" | cut -d' ' -f1)" ;; esac
    done)
}
# dstat EXT4 PATH: debugfs stat of one inode; dcat EXT4 PATH: a file's content.
dstat() { debugfs -R "stat \"$2\"" "$1" 2> /dev/null; }
dcat() { debugfs -R "cat \"$2\"" "$1" 2> /dev/null; }

CGROUP_ARGS=(cgroup_enable=cpuset cgroup_enable=memory cgroup_memory=1 swapaccount=1)
# The cmdline.txt an image should hold: the source's, root=PARTUUID= set to $2 (when given), the cgroup
# arguments not there yet added at the end, one line.
expected_cmdline() { # SRC_FILE [ROOT_PARTUUID]
  local line a
  line=$(tr -d '\n' < "$1")
  [ -n "${2:-}" ] && line=$(sed -E "s/(^| )root=PARTUUID=[^ ]*/\1root=PARTUUID=$2/" <<< "$line")
  for a in "${CGROUP_ARGS[@]}"; do
    case " $line " in *" $a "*) ;; *) line="$line $a" ;; esac
  done
  printf '%s\n' "$line"
}

# The identifiers an sdimage derives when the recipe sets no disk_id (README, "Derived identifiers"),
# computed with sha256sum: the MBR signature is the hash's first 4 bytes read little-endian (0 becomes
# 1); a GUID is its first 16 bytes with the version 4 and RFC 4122 variant bits set, in GPT's byte
# order (the first three fields little-endian), printed as sfdisk prints it.
derived_signature() { # TEXT
  local h
  h=$(printf '%s' "$1" | sha256sum | cut -c1-8)
  h=${h:6:2}${h:4:2}${h:2:2}${h:0:2}
  [ "$h" = 00000000 ] && h=00000001
  echo "0x$h"
}
derived_guid() { # TEXT
  local h b i
  h=$(printf '%s' "$1" | sha256sum | cut -c1-32)
  b=()
  for i in $(seq 0 15); do b+=("${h:$((i * 2)):2}"); done
  b[7]=$(printf '%02x' $(((0x${b[7]} & 0x0f) | 0x40)))
  b[8]=$(printf '%02x' $(((0x${b[8]} & 0x3f) | 0x80)))
  echo "${b[3]}${b[2]}${b[1]}${b[0]}-${b[5]}${b[4]}-${b[7]}${b[6]}-${b[8]}${b[9]}-${b[10]}${b[11]}${b[12]}${b[13]}${b[14]}${b[15]}"
}

# ---------------------------------------------------------------------------------------------
# table IMG D: reads the partition table with sfdisk into TBL LID P{1,2}{S,N,T,U} (sectors; type; uuid
# on GPT, lower case) and cuts the partitions out into D/p1.fat, D/p2.ext4.
table() {
  local img=$1 d=$2 j
  j=$(sfdisk --json "$img" 2> "$d/sfdisk.err") || { fail "sfdisk --json $img: $(head -c 300 "$d/sfdisk.err")"; return 1; }
  TBL=$(jq -r .partitiontable.label <<< "$j")
  LID=$(jq -r .partitiontable.id <<< "$j" | lower)
  NPARTS=$(jq -r '.partitiontable.partitions | length' <<< "$j")
  read -r P1S P1N P1T P1U < <(jq -r '.partitiontable.partitions[0] | "\(.start) \(.size) \(.type) \(.uuid // "-")"' <<< "$j")
  read -r P2S P2N P2T P2U < <(jq -r '.partitiontable.partitions[1] | "\(.start) \(.size) \(.type) \(.uuid // "-")"' <<< "$j")
  P1T=$(lower <<< "$P1T") P2T=$(lower <<< "$P2T") P1U=$(lower <<< "$P1U") P2U=$(lower <<< "$P2U")
  if [ "$TBL" = dos ]; then
    P1U=${LID#0x}-01 P2U=${LID#0x}-02
  fi
  rm -f "$d/p1.fat" "$d/p2.ext4"
  dd if="$img" of="$d/p1.fat" bs=1M iflag=skip_bytes,count_bytes skip=$((P1S * 512)) count=$((P1N * 512)) conv=sparse status=none &&
    dd if="$img" of="$d/p2.ext4" bs=1M iflag=skip_bytes,count_bytes skip=$((P2S * 512)) count=$((P2N * 512)) conv=sparse status=none ||
    { fail "dd could not cut the partitions out of $img"; return 1; }
}

# ---------------------------------------------------------------------------------------------
# The whole check of one built image.
check_image() { # NAME LAYOUT TABLE(mbr|gpt) OUTDIR SRC BOOTMNT BOOTLABEL ROOTLABEL
  local N=$1 L=$2 want_tbl=$3 o=$4 src=$5 bm=$6 blabel=$7 rlabel=$8
  local d=$W/$N img=$4/out.img align=$((4 * 2048)) logid x
  [ -f "$img" ] || { fail "$N: $img was not written"; return; }
  [ -f "$img.bmap" ] && ok "$N: out.img and out.img.bmap written" || fail "$N: no $img.bmap"
  table "$img" "$d" || return

  # ---- partition table ----
  sfdisk --dump "$img" > "$d/dump.txt" 2>&1
  local want_label=dos
  [ "$want_tbl" = gpt ] && want_label=gpt
  eq "$N: sfdisk --dump label" "$(sed -n 's/^label: //p' "$d/dump.txt")" "$want_label"
  eq "$N: sfdisk --dump label-id equals --json's" "$(sed -n 's/^label-id: //p' "$d/dump.txt" | lower)" "$LID"
  eq "$N: two partitions" "$NPARTS" 2
  eq "$N: p1 starts at align (4 MiB = 8192 sectors)" "$P1S" "$align"
  eq "$N: p1 size is boot_size (64 MiB = 131072 sectors)" "$P1N" $((64 * 2048))
  if [ $((P1S % align)) = 0 ] && [ $((P2S % align)) = 0 ]; then ok "$N: both starts ($P1S, $P2S) are multiples of 4 MiB"; else fail "$N: starts $P1S, $P2S not multiples of $align sectors"; fi
  if [ "$P2S" -ge $((P1S + P1N)) ]; then ok "$N: p2 starts after p1 ends"; else fail "$N: p2 start $P2S overlaps p1 (ends at $((P1S + P1N)))"; fi
  local size
  size=$(stat -c %s "$img")
  if [ $(((P2S + P2N) * 512)) -le "$size" ]; then ok "$N: p2 ends inside the file ($size bytes)"; else fail "$N: p2 ends at byte $(((P2S + P2N) * 512)), file has $size"; fi
  if [ "$want_tbl" = gpt ]; then
    eq "$N: p1 type is Microsoft basic data" "$P1T" ebd0a0a2-b9e5-4433-87c0-68b9b72699c7
    eq "$N: p2 type is Linux filesystem" "$P2T" 0fc63daf-8483-4772-8e79-3d69d8477de4
    # derive16 marks the GUIDs "version 4, RFC 4122 variant"; in a GUID's text form the version is
    # the first digit of the third group.
    local g bad=
    for g in "$LID" "$P1U" "$P2U"; do [ "${g:14:1}" = 4 ] || bad="$bad $g"; done
    if [ -z "$bad" ]; then ok "$N: disk and partition GUIDs read as version 4 GUIDs"; else fail "$N: GUIDs not version 4 in their text form (third group should start with 4):$bad"; fi
  else
    eq "$N: p1 type" "$P1T" c
    eq "$N: p2 type" "$P2T" 83
    eq "$N: MBR signature bytes 440-443 are the label-id" "0x$(od -An -tx4 -j440 -N4 --endian=little "$img" | tr -d ' ')" "$LID"
  fi
  logid=$(sed -n 's/.*disk id \([^,]*\),.*/\1/p' "$o.build.err" | head -n 1 | lower)
  eq "$N: label-id is the disk id imgbuild logs" "$LID" "$logid"
  # The README's derivation, computed here from the recipe's name ("recipe") and the output's path.
  if [ "$want_tbl" = gpt ]; then
    eq "$N: disk GUID is derived from sha256(\"recipe|out.img|disk guid\")" "$LID" "$(derived_guid 'recipe|out.img|disk guid')"
    eq "$N: p1 GUID is derived from sha256(\"recipe|out.img|boot guid\")" "$P1U" "$(derived_guid 'recipe|out.img|boot guid')"
    eq "$N: p2 GUID is derived from sha256(\"recipe|out.img|root guid\")" "$P2U" "$(derived_guid 'recipe|out.img|root guid')"
  else
    eq "$N: disk signature is derived from sha256(\"recipe|out.img|disk signature\")" "$LID" "$(derived_signature 'recipe|out.img|disk signature')"
  fi
  if sfdisk --verify "$img" > "$d/verify.txt" 2>&1 && grep -q 'No errors detected' "$d/verify.txt"; then ok "$N: sfdisk --verify: no errors"; else fail "$N: sfdisk --verify: $(tr '\n' ' ' < "$d/verify.txt" | head -c 400)"; fi

  # ---- filesystems ----
  if e2fsck -fn "$d/p2.ext4" > "$d/e2fsck.txt" 2>&1; then ok "$N: e2fsck -fn p2: clean"; else fail "$N: e2fsck -fn p2 exit $?: $(tail -n 8 "$d/e2fsck.txt" | tr '\n' ' ')"; fi
  fsck.fat -n "$d/p1.fat" > "$d/fsckfat.txt" 2>&1
  x=$?
  if [ "$x" = 0 ] && ! grep -qiE 'dirty|differences' "$d/fsckfat.txt"; then ok "$N: fsck.fat -n p1: clean"; else fail "$N: fsck.fat -n p1 exit $x: $(head -c 500 "$d/fsckfat.txt" | tr '\n' ' ')"; fi
  eq "$N: blkid -p p1 TYPE" "$(blkid -p -o value -s TYPE "$d/p1.fat")" vfat
  eq "$N: blkid -p p1 LABEL" "$(blkid -p -o value -s LABEL "$d/p1.fat")" "$blabel"
  eq "$N: blkid -p p2 TYPE" "$(blkid -p -o value -s TYPE "$d/p2.ext4")" ext4
  eq "$N: blkid -p p2 LABEL" "$(blkid -p -o value -s LABEL "$d/p2.ext4")" "$rlabel"

  # ---- ext4 contents ----
  local fs=$d/p2.ext4 changed="./etc/hostname ./etc/hosts ./etc/fstab"
  rm -rf "$d/rdump" && mkdir -p "$d/rdump"
  debugfs -R "rdump / $d/rdump" "$fs" > "$d/rdump.log" 2>&1
  # rdump writes no device node or fifo, and its chown after chmod clears setuid: those three are
  # checked by `ls -p` and stat below.
  mtree_dir "$src/root" | drop "$bm" $changed ./dev/null ./dev/initctl |
    awk '$1 == "./usr/bin/ping" { sub(/ mode=[0-7]+/, "") } { print }' > "$d/mtree.want"
  mtree_dir "$d/rdump" | drop "$bm" $changed ./dev/null ./dev/initctl |
    awk '$1 == "./usr/bin/ping" { sub(/ mode=[0-7]+/, "") } { print }' > "$d/mtree.got"
  same "$N: ext4 by debugfs rdump equals the source tree (bsdtar mtree: type, mode, uid, gid, size, sha256, link)" "$d/mtree.want" "$d/mtree.got"
  debugfs_list "$fs" "$d/ls.img"
  find_list "$src/root" > "$d/ls.src"
  drop "$bm" < "$d/ls.src" | cut -d' ' -f1-5 > "$d/ls.want"
  drop "$bm" < "$d/ls.img" | cut -d' ' -f1-5 > "$d/ls.got"
  same "$N: every ext4 entry's type, permission bits (setuid too), uid, gid by debugfs ls -p equal the source's" "$d/ls.want" "$d/ls.got"
  link_groups < "$d/ls.src" > "$d/links.want"
  link_groups < "$d/ls.img" > "$d/links.got"
  same "$N: ext4 hardlink groups equal the source's" "$d/links.want" "$d/links.got"
  local under
  under=$(awk -v bm=".$bm/" 'index($1, bm) == 1' "$d/ls.img" | head -n 5 | tr '\n' ' ')
  if grep -q "^\.$bm d 0755 0 0 " "$d/ls.img" && [ -z "$under" ]; then ok "$N: $bm is an empty folder in the ext4 (the mount point)"; else fail "$N: $bm in ext4: '$(grep "^\.$bm " "$d/ls.img")', under it: '$under'"; fi
  # Specific inodes.
  local h1 h2
  h1=$(dstat "$fs" /usr/bin/hello | sed -n 's/^Inode: \([0-9]*\) .*/\1/p')
  h2=$(dstat "$fs" /usr/bin/hello-again | sed -n 's/^Inode: \([0-9]*\) .*/\1/p')
  if [ -n "$h1" ] && [ "$h1" = "$h2" ] && dstat "$fs" /usr/bin/hello | grep -q '^Links: 2 '; then ok "$N: hello and hello-again are one inode ($h1) with 2 links"; else fail "$N: hello inode '$h1', hello-again inode '$h2' (want one inode, Links: 2)"; fi
  # make-image.sh fails when the host cannot store these: a source without them is a broken fixture.
  if [ "$(getfattr -h -e hex -n security.capability "$src/root/usr/bin/ping" 2> /dev/null | sed -n 's/^security.capability=//p')" != 0x0100000200200000000000000000000000000000 ] ||
    [ "$(getfattr -h --only-values -n user.comment "$src/root/usr/bin/hello" 2> /dev/null)" != kept ]; then
    fail "$N: the fixture's source tree lacks security.capability/user.comment: the xattrs cannot be checked"
  else
    debugfs -R 'ea_list /usr/bin/ping' "$fs" > "$d/ea.ping" 2> /dev/null
    if grep -q 'security.capability (20) = 01 00 00 02 00 20 00 00 00 00 00 00 00 00 00 00 00 00 00 00' "$d/ea.ping"; then ok "$N: usr/bin/ping keeps security.capability"; else fail "$N: ea_list /usr/bin/ping: $(tr '\n' ' ' < "$d/ea.ping")"; fi
    debugfs -R 'ea_list /usr/bin/hello' "$fs" > "$d/ea.hello" 2> /dev/null
    if grep -q 'user.comment (4) = "kept"' "$d/ea.hello"; then ok "$N: usr/bin/hello keeps user.comment=kept"; else fail "$N: ea_list /usr/bin/hello: $(tr '\n' ' ' < "$d/ea.hello")"; fi
  fi
  # POSIX ACLs: every xattr of the ACL'd names as debugfs lists them (ext4's own on-disk form), in the
  # image imgbuild wrote and in the fixture's root filesystem, which mke2fs -d made (at 68 MiB).
  local acl_path ea_want ea_got
  for acl_path in /var/log/journal /var/log/journal/system.journal /etc/acl.conf; do
    ea_want=$(debugfs -R "ea_list $acl_path" "$W/fx/$L.img?offset=$((68 * 1048576))" 2> /dev/null | grep -v '^Extended attributes:')
    ea_got=$(debugfs -R "ea_list $acl_path" "$fs" 2> /dev/null | grep -v '^Extended attributes:')
    if grep -q 'system.posix_acl_access' <<< "$ea_want" && [ "$ea_got" = "$ea_want" ]; then
      ok "$N: ${acl_path#/} keeps its POSIX ACLs, byte for byte as mke2fs -d stored them ($(grep -o 'system.posix_acl_[a-z]*' <<< "$ea_got" | tr '\n' ' '))"
    else
      fail "$N: ${acl_path#/} xattrs: got '$(tr '\n' ' ' <<< "$ea_got")', the fixture's: '$(tr '\n' ' ' <<< "$ea_want")'"
    fi
  done
  dstat "$fs" /dev/null > "$d/st.null"
  if grep -qE '^Inode: [0-9]+ +Type: character special +Mode: +0666 ' "$d/st.null" && grep -q '^Device major/minor number: 01:03 ' "$d/st.null"; then ok "$N: dev/null is a char device 1:3, mode 0666"; else fail "$N: dev/null: $(head -n 1 "$d/st.null"); $(grep -i 'device' "$d/st.null")"; fi
  dstat "$fs" /dev/initctl | grep -qE '^Inode: [0-9]+ +Type: FIFO ' && ok "$N: dev/initctl is a fifo" || fail "$N: dev/initctl: $(dstat "$fs" /dev/initctl | head -n 1)"
  dstat "$fs" /usr/bin/ping > "$d/st.ping"
  if grep -qE 'Type: regular +Mode: +04755 ' "$d/st.ping" && grep -qE '^User: +0 +Group: +0 ' "$d/st.ping"; then ok "$N: usr/bin/ping is setuid 04755, root:root"; else fail "$N: usr/bin/ping: $(head -n 3 "$d/st.ping" | tr '\n' ' ')"; fi
  if dstat "$fs" /home/pi | grep -qE '^User: +1000 +Group: +1000 ' && dstat "$fs" /home/pi/notes.txt | grep -qE '^User: +1000 +Group: +1000 '; then ok "$N: home/pi and notes.txt are owned by 1000:1000"; else fail "$N: home/pi: $(dstat "$fs" /home/pi | sed -n 3p)"; fi
  # The files the steps and the output changed.
  eq "$N: etc/hostname is node-a" "$(dcat "$fs" /etc/hostname)" node-a
  dcat "$fs" /etc/hosts > "$d/hosts"
  if grep -qP '^127\.0\.1\.1\tnode-a$' "$d/hosts" && grep -qP '^127\.0\.0\.1\tlocalhost$' "$d/hosts" && ! grep -q raspberrypi "$d/hosts"; then ok "$N: etc/hosts names node-a on 127.0.1.1"; else fail "$N: etc/hosts: $(tr '\n' '|' < "$d/hosts")"; fi
  dcat "$fs" /etc/fstab > "$d/fstab.got"
  sed -E "s#^PARTUUID=[^ ]* /boot/firmware #PARTUUID=$P1U /boot/firmware #; s#^PARTUUID=[^ ]* / #PARTUUID=$P2U / #" "$src/root/etc/fstab" > "$d/fstab.want"
  same "$N: etc/fstab is the base's with PARTUUID= of / and $bm set to p2/p1 of the new table" "$d/fstab.want" "$d/fstab.got"
  if grep -q PARTUUID= "$src/root/etc/fstab"; then
    eq "$N: fstab's PARTUUID for $bm is p1's" "$(awk -v bm="$bm" '$2 == bm { print $1 }' "$d/fstab.got" | lower)" "partuuid=$P1U"
    eq "$N: fstab's PARTUUID for / is p2's" "$(awk '$2 == "/" { print $1 }' "$d/fstab.got" | lower)" "partuuid=$P2U"
  fi

  # ---- FAT contents ----
  rm -rf "$d/fat" "$d/boot.want" && mkdir -p "$d/fat"
  if mcopy -s -n -i "$d/p1.fat" '::/*' "$d/fat/" > "$d/mcopy.txt" 2>&1; then ok "$N: mcopy -s copies the whole FAT out"; else fail "$N: mcopy -s: $(head -c 300 "$d/mcopy.txt")"; fi
  cp -a "$src/boot" "$d/boot.want"
  local want_root=
  [ "$L" = raspios ] && want_root=$P2U
  expected_cmdline "$src/boot/cmdline.txt" "$want_root" > "$d/boot.want/cmdline.txt"
  content_list "$d/boot.want" > "$d/fat.want"
  content_list "$d/fat" > "$d/fat.got"
  same "$N: FAT files (names, long ones too; sha256) equal the boot tree's, cmdline.txt as the steps and output make it" "$d/fat.want" "$d/fat.got"
  mdir -/ -i "$d/p1.fat" ::/ > "$d/mdir.txt" 2>&1
  if grep -q ' A Long File Name\.txt$' "$d/mdir.txt" && grep -q ' bcm2711-rpi-4-b\.dtb$' "$d/mdir.txt" && grep -q 'disable-bt\.dtbo$' "$d/mdir.txt"; then ok "$N: mdir lists the long names"; else fail "$N: mdir: $(head -c 600 "$d/mdir.txt")"; fi
  local cmd
  cmd=$(mtype -i "$d/p1.fat" ::/cmdline.txt 2> /dev/null)
  for x in "${CGROUP_ARGS[@]}"; do
    eq "$N: cmdline.txt holds $x once" "$(tr ' ' '\n' <<< "$cmd" | grep -cxF "$x")" 1
  done
  case $L in
    raspios) eq "$N: cmdline.txt root= is p2's PARTUUID" "$(tr ' ' '\n' <<< "$cmd" | grep '^root=' | lower)" "root=partuuid=$P2U" ;;
    hypriotos) eq "$N: cmdline.txt keeps root=/dev/mmcblk0p2" "$(tr ' ' '\n' <<< "$cmd" | grep '^root=')" root=/dev/mmcblk0p2 ;;
    debian-raspi) eq "$N: cmdline.txt keeps root=LABEL=RASPIROOT" "$(tr ' ' '\n' <<< "$cmd" | grep '^root=')" root=LABEL=RASPIROOT ;;
  esac

  # ---- bmaptool copy ----
  rm -f "$d/copy.img"
  if bmaptool copy --bmap "$img.bmap" "$img" "$d/copy.img" > "$d/bmaptool.txt" 2>&1; then
    if cmp -s "$img" "$d/copy.img"; then ok "$N: bmaptool copy --bmap out.img.bmap gives a copy equal to out.img"; else fail "$N: bmaptool copy differs from out.img: $(cmp "$img" "$d/copy.img" 2>&1 | head -n 1)"; fi
  else
    fail "$N: bmaptool copy failed: $(tail -n 5 "$d/bmaptool.txt" | tr '\n' ' ')"
  fi
  rm -f "$d/copy.img"

  # ---- SHA256SUMS ----
  local listed
  listed=$(awk '{ print $2 }' "$o/SHA256SUMS" 2> /dev/null | tr '\n' ' ')
  if [ "$listed" = "out.img out.img.bmap " ] && (cd "$o" && sha256sum --strict -c SHA256SUMS) > "$d/sums.txt" 2>&1; then
    ok "$N: SHA256SUMS lists out.img and out.img.bmap, and sha256sum -c agrees"
  else
    fail "$N: SHA256SUMS lists '$listed'; sha256sum -c: $(tr '\n' ' ' < "$d/sums.txt" | head -c 300)"
  fi
}

# ---------------------------------------------------------------------------------------------
# recipe FILE IMAGE TABLE_OPTS [STEPS_YAML]
DEFAULT_STEPS=$'  - hostname: node-a\n  - cmdline: cgroups\n'
recipe() {
  {
    printf 'base: {image: "%s"}\n' "$2"
    printf 'steps:\n%s' "${4:-$DEFAULT_STEPS}"
    printf 'outputs:\n  - sdimage: {path: out.img, boot_size: 64, align: 4, headroom: 16%s}\n' "$3"
  } > "$1"
}

declare -A BOOTMNT=([raspios]=/boot/firmware [hypriotos]=/boot [debian-raspi]=/boot/firmware)
declare -A BLABEL=([raspios]=bootfs [hypriotos]=bootfs [debian-raspi]=RASPIFIRM)
declare -A RLABEL=([raspios]=rootfs [hypriotos]=rootfs [debian-raspi]=RASPIROOT)
mkdir -p "$W/fx"
for L in raspios hypriotos debian-raspi; do
  if ! bash "$MAKE_IMAGE" "$L" "$W/fx/$L.img" "$W/fx/$L.src" > "$W/fx/$L.log" 2>&1; then
    die "fixture $L could not be made: $(tail -n 5 "$W/fx/$L.log")"
  fi
done

for N in raspios hypriotos debian-raspi raspios-gpt; do
  L=${N%-gpt} tbl=mbr opts=
  [ "$N" = raspios-gpt ] && tbl=gpt opts=', table: gpt'
  d=$W/$N
  mkdir -p "$d"
  recipe "$d/recipe.yaml" "$W/fx/$L.img" "$opts"
  build "$d/recipe.yaml" "$d/o1"
  no_crash "$N: build"
  if [ "$RC" != 0 ]; then
    fail "$N: build exited $RC: $(head -c 600 "$d/o1.build.err")"
    continue
  fi
  ok "$N: build exit 0"
  check_image "$N" "$L" "$tbl" "$d/o1" "$W/fx/$L.src" "${BOOTMNT[$L]}" "${BLABEL[$L]}" "${RLABEL[$L]}"
  IMG_SHA=$(sha_of "$d/o1/out.img")
  # Reproducible: another out folder, another cache.
  IMGBUILD_CACHE=$W/cache2 build "$d/recipe.yaml" "$d/o2"
  if [ "$RC" = 0 ]; then
    eq "$N: second build (other out folder, fresh cache): same sha256 of out.img" "$(sha_of "$d/o2/out.img")" "$IMG_SHA"
    eq "$N: second build: same sha256 of out.img.bmap" "$(sha_of "$d/o2/out.img.bmap")" "$(sha_of "$d/o1/out.img.bmap")"
  else
    fail "$N: second build exited $RC: $(head -c 400 "$d/o2.build.err")"
  fi
  rm -rf "$d/o2"
done

# ---------------------------------------------------------------------------------------------
# Compressed: out.img.zst is the plain build's out.img (the same identity: compressing does not change
# which disk it is), its bmap describes the plain image, SHA256SUMS lists the compressed file.
if command -v zstd > /dev/null; then
  N=raspios-zst d=$W/$N
  mkdir -p "$d"
  recipe "$d/recipe.yaml" "$W/fx/raspios.img" ''
  sed -i 's/path: out.img,/path: out.img.zst,/' "$d/recipe.yaml"
  build "$d/recipe.yaml" "$d/o1"
  no_crash "$N: build"
  if [ "$RC" = 0 ]; then
    if zstd -dc "$d/o1/out.img.zst" 2> /dev/null | cmp -s - "$W/raspios/o1/out.img"; then ok "$N: zstd -dc out.img.zst equals the plain build's out.img"; else fail "$N: zstd -dc out.img.zst differs from the plain build's out.img"; fi
    if cmp -s "$d/o1/out.img.bmap" "$W/raspios/o1/out.img.bmap"; then ok "$N: out.img.bmap equals the plain build's"; else fail "$N: out.img.bmap differs from the plain build's"; fi
    listed=$(awk '{ print $2 }' "$d/o1/SHA256SUMS" 2> /dev/null | tr '\n' ' ')
    if [ "$listed" = "out.img.bmap out.img.zst " ] && (cd "$d/o1" && sha256sum --strict -c SHA256SUMS) > "$d/sums.txt" 2>&1; then
      ok "$N: SHA256SUMS lists out.img.bmap and out.img.zst, and sha256sum -c agrees"
    else
      fail "$N: SHA256SUMS lists '$listed'; sha256sum -c: $(tr '\n' ' ' < "$d/sums.txt" | head -c 300)"
    fi
    left=$(find "$d/o1" -mindepth 1 ! -name out.img.zst ! -name out.img.bmap ! -name SHA256SUMS ! -name .imgbuild-outputs | head -n 3 | tr '\n' ' ')
    if [ -z "$left" ]; then ok "$N: no plain image or temporary file left beside it"; else fail "$N: left in the out folder: $left"; fi
  else
    fail "$N: build exited $RC: $(head -c 600 "$d/o1.build.err")"
  fi
fi

# ---------------------------------------------------------------------------------------------
# disk_id on raspios: the label-id, the PARTUUIDs in cmdline.txt and fstab.
N=raspios-diskid d=$W/$N
mkdir -p "$d"
recipe "$d/recipe.yaml" "$W/fx/raspios.img" ', disk_id: "0x0badcafe"'
build "$d/recipe.yaml" "$d/o1"
no_crash "$N: build"
if [ "$RC" = 0 ] && table "$d/o1/out.img" "$d"; then
  eq "$N: sfdisk label-id" "$LID" 0x0badcafe
  eq "$N: sfdisk --dump label-id" "$(sfdisk --dump "$d/o1/out.img" 2> /dev/null | sed -n 's/^label-id: //p')" 0x0badcafe
  eq "$N: cmdline.txt root=" "$(mtype -i "$d/p1.fat" ::/cmdline.txt 2> /dev/null | tr ' ' '\n' | grep '^root=')" root=PARTUUID=0badcafe-02
  eq "$N: fstab PARTUUID lines" "$(dcat "$d/p2.ext4" /etc/fstab | awk '/^PARTUUID=/ { print $1, $2 }' | tr '\n' ',')" "PARTUUID=0badcafe-01 /boot/firmware,PARTUUID=0badcafe-02 /,"
  e2fsck -fn "$d/p2.ext4" > /dev/null 2>&1 && ok "$N: e2fsck -fn clean" || fail "$N: e2fsck -fn p2 not clean"
else
  fail "$N: build exited $RC: $(head -c 600 "$d/o1.build.err")"
fi

# ---------------------------------------------------------------------------------------------
# As user nobody: same bytes as root's build, owners inside the image kept.
for N in raspios raspios-gpt; do
  d=$W/$N nb=$W/nobody-$N
  mkdir -p "$nb/home" "$nb/tmp" "$nb/cache"
  chown -R 65534:65534 "$nb"
  P=$nb/build
  run setpriv --reuid=65534 --regid=65534 --clear-groups env HOME="$nb/home" TMPDIR="$nb/tmp" IMGBUILD_CACHE="$nb/cache" \
    SOURCE_DATE_EPOCH=$EPOCH "$IMGBUILD" --out "$nb/out" "$d/recipe.yaml"
  no_crash "$N as nobody: build"
  if [ "$RC" != 0 ]; then
    fail "$N as nobody: build exited $RC: $(head -c 600 "$P.err")"
    continue
  fi
  ok "$N as nobody: build exit 0"
  if cmp -s "$nb/out/out.img" "$d/o1/out.img"; then ok "$N as nobody: out.img identical to root's"; else fail "$N as nobody: out.img differs from root's: $(cmp "$nb/out/out.img" "$d/o1/out.img" 2>&1 | head -n 1)"; fi
  if cmp -s "$nb/out/out.img.bmap" "$d/o1/out.img.bmap"; then ok "$N as nobody: out.img.bmap identical to root's"; else fail "$N as nobody: out.img.bmap differs from root's"; fi
  mkdir -p "$nb/t"
  if table "$nb/out/out.img" "$nb/t"; then
    fs=$nb/t/p2.ext4
    bad=
    for p in / /etc/hostname /etc/fstab /usr/bin/ping /dev/null; do
      dstat "$fs" "$p" | grep -qE '^User: +0 +Group: +0 ' || bad="$bad $p($(dstat "$fs" "$p" | grep -oE '^User: +[0-9]+ +Group: +[0-9]+' | tr -s ' '))"
    done
    if [ -z "$bad" ]; then ok "$N as nobody: /, etc/hostname, etc/fstab, usr/bin/ping, dev/null are User: 0 Group: 0"; else fail "$N as nobody: not root-owned:$bad"; fi
    dstat "$fs" /home/pi | grep -qE '^User: +1000 +Group: +1000 ' && ok "$N as nobody: home/pi stays 1000:1000" || fail "$N as nobody: home/pi: $(dstat "$fs" /home/pi | sed -n 3p)"
  fi
done

# ---------------------------------------------------------------------------------------------
# Errors.
d=$W/errors
mkdir -p "$d"
# cmdline.txt naming a partition the new image does not have.
recipe "$d/badroot.yaml" "$W/fx/raspios.img" '' \
  $'  - files: {content: "console=serial0,115200 console=tty1 root=PARTUUID=deadbeef-05 rootfstype=ext4 rootwait\\n", dest: /boot/firmware/cmdline.txt}\n'
build "$d/badroot.yaml" "$d/o-badroot"
no_crash "root=PARTUUID=deadbeef-05"
if [ "$RC" = 1 ] && grep -q 'names no partition' "$P.err"; then
  ok "root=PARTUUID=deadbeef-05 in cmdline.txt: exit 1, 'names no partition' ($(grep -m1 'names no partition' "$P.err" | head -c 200))"
else
  fail "root=PARTUUID=deadbeef-05 in cmdline.txt: exit $RC (want 1), stderr: $(tail -n 3 "$P.err" | tr '\n' ' ' | head -c 300); cmdline.txt in the image: $([ -f "$d/o-badroot/out.img" ] && mtype -i "$d/o-badroot/out.img@@$((4 * 1048576))" ::/cmdline.txt 2>&1)"
fi
no_files "root=PARTUUID=deadbeef-05" "$d/o-badroot"
# Boot files larger than boot_size.
head -c 40000000 /dev/urandom > "$d/big.bin"
{
  printf 'base: {image: "%s"}\nsteps:\n  - files: {src: "%s", dest: /boot/firmware/big.bin}\n' "$W/fx/raspios.img" "$d/big.bin"
  printf 'outputs:\n  - sdimage: {path: out.img, boot_size: 32, align: 4}\n'
} > "$d/toobig.yaml"
build "$d/toobig.yaml" "$d/o-toobig"
no_crash "boot files > boot_size"
sizes=$(grep -oE '[0-9]+ ?MiB' "$P.err" | grep -oE '^[0-9]+' | tr '\n' ' ')
big=no
for s in $sizes; do [ "$s" -ge 40 ] && big=yes; done
if [ "$RC" = 1 ] && [[ " $sizes" == *" 32 "* ]] && [ "$big" = yes ]; then
  ok "40 MB file in /boot/firmware with boot_size 32: exit 1 naming the sizes ($(grep -m1 MiB "$P.err" | head -c 200))"
else
  fail "40 MB file in /boot/firmware with boot_size 32: exit $RC (want 1, a message naming 32 MiB and >= 40 MiB), stderr: $(head -c 300 "$P.err")"
fi
no_files "boot files > boot_size" "$d/o-toobig"
rm -f "$d/big.bin"
# A path that is not an image name.
printf 'base: {image: "%s"}\noutputs:\n  - sdimage: {path: x.raw}\n' "$W/fx/raspios.img" > "$d/raw.yaml"
build "$d/raw.yaml" "$d/o-raw"
no_crash "path: x.raw"
if [ "$RC" = 2 ] && grep -q 'x.raw' "$P.err"; then ok "path: x.raw: exit 2, the message names it ($(head -n 1 "$P.err" | head -c 200))"; else fail "path: x.raw: exit $RC (want 2), stderr: $(head -c 300 "$P.err")"; fi
no_files "path: x.raw" "$d/o-raw"

echo
info "took $(($(date +%s) - T0)) s"
finish sdimage
exit 0
