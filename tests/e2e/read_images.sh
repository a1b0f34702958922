#!/usr/bin/env bash
# End-to-end: imgbuild reads disk images it did not write. For each fixture layout (raspios,
# hypriotos, debian-raspi, armbian, gpt-debian; tests/fixtures/make-image.sh builds them with sfdisk,
# mkfs.vfat, mcopy and mke2fs -d) and each form (.img, .img.xz, .img.zst, .img.gz, .img.bz2, .zip):
#   - a recipe `base: {image: ...}` with a tar output gives a tarball whose root-filesystem members
#     equal the source tree by bsdtar's mtree writer (type, mode, uid, gid, size, sha256, symlink
#     target; lost+found and the boot mount left out), and whose ./BOOTMOUNT/ holds every file of the
#     boot tree, same names (long ones too) and content; hardlinks, xattrs (security.capability,
#     user.comment, checked on a bsdtar --xattrs extraction), the sparse file's content, the device
#     node and fifo, setuid ping and home/pi's owner as specific checks; POSIX ACLs (named user and
#     group entries, a default ACL on var/log/journal) by getfacl on the extraction;
#   - compressed forms: the first run decodes ("decoding" in the -v log), the second one does not
#     (cache hit) and gives the same tarball; `inspect --json` gives what it gives for the plain .img.
# Once per layout, on the plain .img: `inspect --json` against `sfdisk --json` (table, disk id, each
# partition's start, size, type, partuuid, name) and `blkid -p` (each filesystem's TYPE, LABEL, UUID),
# and against the layout's expected family, os (PRETTY_NAME), boot mount and cmdline; `ls -R` against
# the tarball's member list; `cat` of a boot file and of the sparse file against the source.
#
# usage: bash tests/e2e/read_images.sh path/to/imgbuild      (needs root; exit 77 otherwise)
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib/common.sh
. "$HERE/lib/common.sh"
e2e_args "$@"
MAKE_IMAGE=$HERE/../fixtures/make-image.sh
need_root "the fixtures hold a device node and files owned by 1000"
need_tools bsdtar sfdisk blkid jq xz zstd gzip bzip2 zip getfattr setfattr getfacl setfacl mkfs.vfat mcopy mke2fs mknod sha256sum

export LC_ALL=C.UTF-8
unset SOURCE_DATE_EPOCH
W=$(mktemp -d /tmp/imgbuild-e2e-read.XXXXXX)
trap 'rm -rf "$W"' EXIT
export IMGBUILD_CACHE=$W/cache
source "$HERE/lib/read_common.sh"

LAYOUTS=(raspios hypriotos debian-raspi armbian gpt-debian)
FORMS=(img img.xz img.zst img.gz img.bz2 zip)
# What each layout is, as the fixture script writes it: family, boot mount.
declare -A FAMILY=([raspios]=raspios [hypriotos]=hypriotos [debian-raspi]=debian-raspi [armbian]=armbian [gpt-debian]=debian)
declare -A BOOTMNT=([raspios]=/boot/firmware [hypriotos]=/boot [debian-raspi]=/boot/firmware [armbian]="" [gpt-debian]=/boot/efi)

# Keep the root filesystem's part of an mtree listing: not the boot mount subtree, not lost+found.
# For the names in $LINKED (a hardlink group, one per line) size and sha256 are dropped: a tarball's
# link member carries no data; the groups are compared on their own. Neither is the sha256 of
# var/sparse.img kept: libarchive's mtree writer hashes only the data blocks of a sparse tar member
# (it is checked on its own).
root_part() { # BOOTMNT
  awk -v bm=".$1" -v linked="$LINKED" '
    BEGIN { n = split(linked, a, "\n"); for (i = 1; i <= n; i++) L[a[i]] = 1 }
    bm != "." && ($1 == bm || index($1, bm "/") == 1) { next }
    $1 == "./lost+found" || index($1, "./lost+found/") == 1 { next }
    ($1 in L) { out = $1; for (i = 2; i <= NF; i++) if ($i !~ /^(size|sha256digest)=/) out = out " " $i; $0 = out " (hardlinked)" }
    $1 == "./var/sparse.img" { out = $1; for (i = 2; i <= NF; i++) if ($i !~ /^sha256digest=/) out = out " " $i; $0 = out }
    { print }'
}
# The boot mount subtree of a tarball's mtree listing, renamed to ./ (the top itself left out).
boot_part() { # BOOTMNT
  awk -v bm=".$1/" 'index($1, bm) == 1 { $1 = "./" substr($1, length(bm) + 1); print }' | LC_ALL=C sort
}
# Hardlink groups of a folder (by inode) or a tarball (by link member), one sorted line per group.
groups_dir() {
  (cd "$1" && find . -type f -links +1 -printf '%i %p\n') | LC_ALL=C sort -k1,1 -k2,2 |
    awk '$1 != g { if (NR > 1) print s; g = $1; s = $2; next } { s = s " " $2 } END { if (NR) print s }' | LC_ALL=C sort
}
groups_tar() {
  links_of "$1" | awk -F'\t' '{ print $2 "\t" $1; print $2 "\t" $2 }' | LC_ALL=C sort -u -t$'\t' -k1,1 -k2,2 |
    awk -F'\t' '$1 != g { if (NR > 1) print s; g = $1; s = $2; next } { s = s " " $2 } END { if (NR) print s }' | LC_ALL=C sort
}

# ---------------------------------------------------------------------------------------------
# inspect --json of the plain .img against sfdisk, blkid and the layout's expectations.
check_inspect() { # LAYOUT IMG SRC
  local L=$1 img=$2 src=$3 d=$W/$1 n start size fs label uuid bm
  bm=${BOOTMNT[$L]}
  P=$d/inspect; run "$IMGBUILD" inspect --json "$img"
  if [ "$RC" != 0 ] || ! jq -e . "$P.out" > /dev/null 2>&1; then
    fail "$L: inspect --json exited $RC or printed no JSON; stderr: $(head -c 600 "$P.err")"
    return
  fi
  local J=$P.out
  sfdisk --json "$img" > "$d/sfdisk.json" || { fail "$L: sfdisk --json failed (test bug?)"; return; }
  # Table, disk id, partitions: number, start, sectors, type, partuuid, name.
  jq -r '.partitiontable as $t | ($t.label == "gpt") as $gpt |
    "table=\($t.label) disk_id=\($t.id | ascii_downcase)",
    ($t.partitions[] | (.node | capture("(?<n>[0-9]+)$").n | tonumber) as $n |
      "p\($n) start=\(.start) sectors=\(.size) offset=\(.start * 512) size=\(.size * 512) type=\(.type | ascii_downcase)" +
      " partuuid=\(if $gpt then (.uuid | ascii_downcase) else "\($t.id[2:] | ascii_downcase)-\(if $n < 10 then "0" else "" end)\($n)" end)" +
      " name=\(.name // "")")' "$d/sfdisk.json" > "$d/table.want"
  jq -r '"table=\(.table) disk_id=\(.disk_id)",
    (.partitions[] | "p\(.number) start=\(.start) sectors=\(.sectors) offset=\(.offset) size=\(.size) type=\(.type) partuuid=\(.partuuid) name=\(.name)")' \
    "$J" > "$d/table.got"
  same "$L: inspect --json table, disk id, partitions (start, sectors, offset, size, type, partuuid, name) equal sfdisk --json's" "$d/table.want" "$d/table.got"
  # Each filesystem, by blkid -p on the partition's byte range.
  : > "$d/fs.want"
  while read -r n start size; do
    blkid -p -o export --offset $((start * 512)) --size $((size * 512)) "$img" > "$d/blkid.txt"
    fs=$(sed -n 's/^TYPE=//p' "$d/blkid.txt") label=$(sed -n 's/^LABEL=//p' "$d/blkid.txt") uuid=$(sed -n 's/^UUID=//p' "$d/blkid.txt")
    echo "p$n fs=$fs label=$label uuid=$uuid" >> "$d/fs.want"
  done < <(jq -r '.partitiontable.partitions[] | "\(.node | capture("(?<n>[0-9]+)$").n) \(.start) \(.size)"' "$d/sfdisk.json")
  jq -r '.partitions[] | "p\(.number) fs=\(.fs) label=\(.label) uuid=\(.uuid)"' "$J" > "$d/fs.got"
  same "$L: inspect --json fs, label, uuid of each partition equal blkid -p's TYPE, LABEL, UUID" "$d/fs.want" "$d/fs.got"
  # Which partition is what: the ext4 one is the root at /, the FAT one (if any) the boot at BOOTMNT.
  jq -r '.partitions[] | "p\(.number) \(.fs) use=\(.use) mount=\(.mount)"' "$J" > "$d/use.got"
  awk -v bm="$bm" '{ sub(/^fs=/, "", $2); if ($2 == "ext4") print $1, $2, "use=root mount=/"; else if ($2 == "vfat") print $1, $2, "use=boot mount=" bm; else print $1, $2, "use= mount=" }' \
    "$d/fs.want" > "$d/use.want"
  same "$L: inspect --json use/mount: ext4 is the root at /, FAT the boot at '${bm:-(none)}'" "$d/use.want" "$d/use.got"
  # The OS.
  local os cmdline=
  os=$(sed -n 's/^PRETTY_NAME="\(.*\)"$/\1/p' "$src/root/etc/os-release")
  [ -f "$src/boot/cmdline.txt" ] && cmdline=$(tr -d '\n' < "$src/boot/cmdline.txt")
  eq "$L: inspect --json family" "$(jq -r .family "$J")" "${FAMILY[$L]}"
  eq "$L: inspect --json os is /etc/os-release's PRETTY_NAME" "$(jq -r .os "$J")" "$os"
  eq "$L: inspect --json boot_mount" "$(jq -r .boot_mount "$J")" "$bm"
  eq "$L: inspect --json cmdline is the boot partition's cmdline.txt" "$(jq -r .cmdline "$J")" "$cmdline"
  # Plain-text inspect: exit 0, names the family.
  P=$d/inspect-text; run "$IMGBUILD" inspect "$img"
  if [ "$RC" = 0 ] && grep -q "${FAMILY[$L]}" "$P.out"; then ok "$L: inspect (text) exits 0 and names the family"; else fail "$L: inspect (text) exited $RC; stdout: $(head -c 400 "$P.out") stderr: $(head -c 400 "$P.err")"; fi
}

# ls -R and cat on the plain .img, against the tarball and the source.
check_ls_cat() { # LAYOUT IMG SRC TAR
  local L=$1 img=$2 src=$3 tar=$4 d=$W/$1 bm=${BOOTMNT[$1]}
  P=$d/ls; run "$IMGBUILD" ls -R "$img"
  if [ "$RC" != 0 ]; then
    fail "$L: ls -R exited $RC: $(head -c 600 "$P.err")"
  else
    # mode uid gid size date time path[ -> target][ => hardlink-target]
    sed -E 's/^([^ ]+) ([^ ]+) ([^ ]+) [^ ]+ [^ ]+ [^ ]+ (.*)$/\1 \2 \3 \4/; s/ (->|=>) .*$//' "$P.out" | LC_ALL=C sort > "$d/ls.got"
    # libarchive reports a member with an ACL with the group bits of its group:: entry; the file's mode
    # (what ls shows, and what stat shows after extracting) has its ACL mask there (POSIX.1e).
    acl_masks "$tar" > "$d/masks"
    bsdtar --numeric-owner -tvf "$tar" | awk '
      FILENAME == ARGV[1] { M[$1] = $2; next }
      { m = $1; sub(/^h/, "-", m); p = $0; sub(/^([^ ]+ +){8}/, "", p); sub(/ (->|link to) .*$/, "", p); sub(/\/$/, "", p); sub(/^\./, "", p)
        if (p in M) { x = substr(m, 7, 1); gx = (x == "s" || x == "S") ? (substr(M[p], 3, 1) == "x" ? "s" : "S") : substr(M[p], 3, 1)
          m = substr(m, 1, 4) substr(M[p], 1, 2) gx substr(m, 8) }
        if (p != "") print m, $3, $4, p }' "$d/masks" - |
      LC_ALL=C sort > "$d/ls.want"
    same "$L: ls -R lists the tarball's members (mode, uid, gid, path)" "$d/ls.want" "$d/ls.got"
  fi
  P=$d/cat-sparse; run "$IMGBUILD" cat "$img:/var/sparse.img"
  eq "$L: cat IMAGE:/var/sparse.img gives the sparse file's content (exit $RC, $(stat -c %s "$P.out") bytes)" "$(sha_of "$P.out")" "$(sha_of "$src/root/var/sparse.img")"
  P=$d/cat-hostname; run "$IMGBUILD" cat "$img:/etc/hostname"
  eq "$L: cat IMAGE:/etc/hostname" "$(sha_of "$P.out")" "$(sha_of "$src/root/etc/hostname")"
  if [ -n "$bm" ]; then
    P=$d/cat-boot; run "$IMGBUILD" cat "$img:$bm/A Long File Name.txt"
    eq "$L: cat IMAGE:$bm/A Long File Name.txt (from the FAT partition)" "$(sha_of "$P.out")" "$(sha_of "$src/boot/A Long File Name.txt")"
  fi
}

# ---------------------------------------------------------------------------------------------
# One tarball read from one form of the image, against the source trees.
check_tar() { # LABEL LAYOUT SRC TAR
  local T=$1 L=$2 src=$3 tar=$4 d=$W/$2 bm=${BOOTMNT[$2]} x
  # Root filesystem: mtree of the source tree vs the tarball's.
  LINKED=$({
    links_of "$tar" | tr '\t' '\n'
    groups_dir "$src/root" | tr ' ' '\n'
  } | sort -u)
  mtree_dir "$src/root" | root_part "$bm" > "$d/root.want"
  mtree_tar "$tar" | root_part "$bm" > "$d/root.got"
  same "$T: root filesystem members (type, mode, uid, gid, size, sha256, link) equal the source tree's" "$d/root.want" "$d/root.got"
  groups_dir "$src/root" > "$d/groups.want"
  groups_tar "$tar" > "$d/groups.got"
  same "$T: hardlink groups equal the source tree's" "$d/groups.want" "$d/groups.got"
  # Boot partition: names, types, sizes, contents.
  if [ -n "$bm" ]; then
    mtree_dir "$src/boot" '!all,type,size,sha256' | grep -v '^\. ' | grep -vx '\.' > "$d/boot.want"
    mtree_tar "$tar" '!all,type,size,sha256' | boot_part "$bm" > "$d/boot.got"
    same "$T: ./${bm#/}/ holds exactly the boot tree's files (names, type, size, sha256)" "$d/boot.want" "$d/boot.got"
    if bsdtar -tf "$tar" | grep -qxF ".$bm/"; then ok "$T: .$bm/ is a folder member"; else fail "$T: no folder member .$bm/"; fi
  fi
  # Specific members, by bsdtar -tv.
  bsdtar --numeric-owner -tvf "$tar" > "$d/tv.txt"
  local links
  links=$(links_of "$tar" | grep -E '^\./usr/bin/hello(-again)?'$'\t''\./usr/bin/hello(-again)?$')
  if [ "$(echo "$links" | grep -c .)" = 1 ]; then ok "$T: one of usr/bin/hello, hello-again is a hardlink to the other ($(echo "$links" | tr '\t' ' '))"; else fail "$T: usr/bin/hello/hello-again hardlink members: '$links' (want exactly one)"; fi
  grep -qE '^crw-rw-rw- +[0-9]+ +0 +0 +1,3 .* \./dev/null$' "$d/tv.txt" && ok "$T: dev/null is a char device 1,3 mode 666" || fail "$T: dev/null: '$(grep ' ./dev/null$' "$d/tv.txt")'"
  grep -qE '^p[rw-]{9} .* \./dev/initctl$' "$d/tv.txt" && ok "$T: dev/initctl is a fifo" || fail "$T: dev/initctl: '$(grep ' ./dev/initctl$' "$d/tv.txt")'"
  grep -qE '^-rwsr-xr-x +[0-9]+ +0 +0 .* \./usr/bin/ping$' "$d/tv.txt" && ok "$T: usr/bin/ping is 4755 root" || fail "$T: usr/bin/ping: '$(grep ' ./usr/bin/ping$' "$d/tv.txt")'"
  grep -qE '^drwx------ +[0-9]+ +1000 +1000 .* \./home/pi/$' "$d/tv.txt" && ok "$T: home/pi is 700 1000:1000" || fail "$T: home/pi: '$(grep ' ./home/pi/$' "$d/tv.txt")'"
  # Extracted as root: xattrs, hardlink inode, sparse content.
  x=$d/x
  rm -rf "$x" && mkdir -p "$x"
  if ! bsdtar --xattrs --numeric-owner -xpf "$tar" -C "$x" 2> "$d/extract.err"; then
    fail "$T: bsdtar --xattrs -xpf failed: $(head -c 400 "$d/extract.err")"
    return
  fi
  xattrs_of "$src/root" | awk -v bm=".$bm" 'bm == "." || (index($1, bm "\t") != 1 && index($1, bm "/") != 1)' > "$d/xattrs.want"
  xattrs_of "$x" | awk -v bm=".$bm" 'bm == "." || (index($1, bm "\t") != 1 && index($1, bm "/") != 1)' > "$d/xattrs.got"
  same "$T: xattrs of the extracted tarball (root filesystem) equal the source tree's" "$d/xattrs.want" "$d/xattrs.got"
  eq "$T: extracted usr/bin/ping has security.capability" "$(getfattr -h -e hex -n security.capability "$x/usr/bin/ping" 2> /dev/null | sed -n 's/^security.capability=//p')" 0x0100000200200000000000000000000000000000
  eq "$T: extracted usr/bin/hello has user.comment=kept" "$(getfattr -h --only-values -n user.comment "$x/usr/bin/hello" 2> /dev/null)" kept
  # POSIX ACLs from the ext4 image (mke2fs -d stored them in ext4's own form), by getfacl.
  local acl_src acl_got
  acl_src=$(acls_of "$src/root") acl_got=$(acls_of "$x")
  if grep -q '^default:group:4:r-x' <<< "$acl_src" && [ "$acl_got" = "$acl_src" ]; then
    ok "$T: POSIX ACLs (named user and group entries, a default ACL) equal the source's by getfacl"
  else
    fail "$T: POSIX ACLs differ from the source's: $(diff <(echo "$acl_src") <(echo "$acl_got") | head -n 10 | tr '\n' ' ')"
  fi
  local inodes
  inodes=$(stat -c '%i %h' "$x/usr/bin/hello" "$x/usr/bin/hello-again" 2> /dev/null | sort -u)
  if [ "$(echo "$inodes" | wc -l)" = 1 ] && [ "${inodes#* }" = 2 ] && [ "$(sha_of "$x/usr/bin/hello")" = "$(sha_of "$src/root/usr/bin/hello")" ]; then
    ok "$T: extracted hello and hello-again share one inode (2 links) with the source's content"
  else
    fail "$T: extracted hello/hello-again: inode/links '$(echo "$inodes" | tr '\n' ' ')', want one inode with 2 links and the source's content"
  fi
  local want_sparse
  want_sparse=$(sha_of "$src/root/var/sparse.img")
  eq "$T: extracted var/sparse.img content (sha256)" "$(sha_of "$x/var/sparse.img")" "$want_sparse"
  eq "$T: var/sparse.img content through bsdtar -xOf (sha256)" "$(bsdtar -xOf "$tar" ./var/sparse.img | sha256sum | cut -d' ' -f1)" "$want_sparse"
  rm -rf "$x"
}

# acl_masks TAR: "/path rwx" for each member whose access ACL has a mask (pax SCHILY.acl.access), read
# with Python's tarfile.
acl_masks() {
  python3 - "$1" << 'EOF'
import re, sys, tarfile
for m in tarfile.open(sys.argv[1]):
    acl = m.pax_headers.get("SCHILY.acl.access", "")
    mask = re.search(r"(?:^|[,\n])mask::([r-][w-][x-])", acl)
    if mask:
        print("/" + m.name.lstrip(".").strip("/"), mask.group(1))
EOF
}
# The ACL'd names of the fixture (make-image.sh), by getfacl: numeric, relative, owner lines left out.
acls_of() { (cd "$1" && getfacl -n -p -R var/log/journal etc/acl.conf 2> /dev/null | grep -v '^# owner\|^# group'); }

# ---------------------------------------------------------------------------------------------
for L in "${LAYOUTS[@]}"; do
  echo "=== $L"
  d=$W/$L
  mkdir -p "$d"
  src=$d/src
  if ! bash "$MAKE_IMAGE" "$L" "$d/$L.img" "$src" > "$d/make.log" 2>&1; then
    fail "$L: make-image.sh failed:"
    sed 's/^/       /' "$d/make.log"
    continue
  fi
  getfattr -n user.comment "$src/root/usr/bin/hello" > /dev/null 2>&1 || { fail "$L: the fixture's source lacks user.comment (make-image.sh should have failed)"; continue; }
  img=$d/$L.img
  xz -T0 -k "$img" && zstd -q -T0 -k "$img" && gzip -k "$img" && bzip2 -k "$img" && (cd "$d" && zip -q "$L.zip" "$L.img") ||
    { fail "$L: compressing the fixture failed"; continue; }

  check_inspect "$L" "$img" "$src"
  jq -S 'del(.path)' "$d/inspect.out" > "$d/inspect.plain" 2> /dev/null

  for form in "${FORMS[@]}"; do
    f=$d/$L.$form
    T="$L/.$form"
    recipe "$d/recipe-$form.yaml" "$f"
    t0=$(ms)
    P=$d/build-$form-1; run "$IMGBUILD" -v --out "$d/out-$form-1" "$d/recipe-$form.yaml"
    t1=$(ms)
    if [ "$RC" != 0 ] || [ ! -f "$d/out-$form-1/out.tar" ]; then
      fail "$T: build exited $RC (or wrote no out.tar); stderr:"
      sed 's/^/       /' "$P.err"
      continue
    fi
    ok "$T: build with a tar output ($(secs $((t1 - t0))) s)"
    check_tar "$T" "$L" "$src" "$d/out-$form-1/out.tar"
    [ "$form" = img ] && check_ls_cat "$L" "$img" "$src" "$d/out-$form-1/out.tar"
    if [ "$form" != img ]; then
      # Decoded forms: the second run is a cache hit.
      grep -q 'decoding' "$d/build-$form-1.err" && ok "$T: first run decodes (log: $(grep -m1 decoding "$d/build-$form-1.err"))" ||
        fail "$T: first run printed no 'decoding' line; log: $(head -c 400 "$d/build-$form-1.err")"
      t2=$(ms)
      P=$d/build-$form-2; run "$IMGBUILD" -v --out "$d/out-$form-2" "$d/recipe-$form.yaml"
      t3=$(ms)
      if [ "$RC" != 0 ]; then
        fail "$T: second build exited $RC: $(head -c 400 "$P.err")"
      else
        if grep -q 'decoding' "$P.err"; then fail "$T: second run decoded again (no cache hit): $(grep -m1 decoding "$P.err")"; else ok "$T: second run does not decode (cache hit)"; fi
        info "$T: first run $(secs $((t1 - t0))) s, second run $(secs $((t3 - t2))) s"
        if cmp -s "$d/out-$form-1/out.tar" "$d/out-$form-2/out.tar"; then ok "$T: second run gives the same tarball, byte for byte"; else fail "$T: second run's tarball differs from the first's"; fi
      fi
      P=$d/inspect-$form; run "$IMGBUILD" inspect --json "$f"
      if [ "$RC" = 0 ] && jq -S 'del(.path)' "$P.out" > "$d/inspect.$form" 2> /dev/null; then
        same "$T: inspect --json (but path) equals the plain .img's" "$d/inspect.plain" "$d/inspect.$form"
      else
        fail "$T: inspect --json exited $RC: $(head -c 400 "$P.err")"
      fi
    fi
    rm -rf "$d/out-$form-1" "$d/out-$form-2"
  done
  rm -rf "$d" "$IMGBUILD_CACHE" # keep the disk use of the run small
done

finish read_images
