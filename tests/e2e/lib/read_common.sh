# Sourced by tests/e2e/read_images.sh and read_errors.sh: reporting, running imgbuild, and the
# independent views (bsdtar's mtree writer, getfattr) the two scripts judge imgbuild's output by.
# Expects: IMGBUILD (absolute path), W (work folder).

FAILS=0
ok() { echo "ok   - $*"; }
fail() {
  echo "FAIL - $*"
  FAILS=$((FAILS + 1))
}
info() { echo "info - $*"; }
# finish NAME: the summary line and the exit code.
finish() {
  echo
  if [ "$FAILS" -gt 0 ]; then
    echo "$1: $FAILS check(s) FAILED"
    exit 1
  fi
  echo "$1: all checks passed"
  exit 0
}
# same LABEL FILE_A FILE_B: ok when the files are equal, else a failure showing the diff.
same() {
  if diff -u "$2" "$3" > "$W/diff.txt"; then
    ok "$1"
  else
    fail "$1; diff (${2#"$W"/} vs ${3#"$W"/}):"
    sed 's/^/       /' "$W/diff.txt"
  fi
}
# eq LABEL GOT WANT
eq() {
  if [ "$2" = "$3" ]; then ok "$1"; else fail "$1: got '$2', want '$3'"; fi
}
# P=OUTPREFIX; run CMD...: runs CMD with stdout in $P.out, stderr in $P.err; sets RC.
run() {
  "$@" > "$P.out" 2> "$P.err"
  RC=$?
}
# recipe FILE IMAGE [SHA256]: a recipe reading IMAGE into a tar output out.tar.
recipe() {
  {
    if [ -n "${3:-}" ]; then
      printf 'base: {image: "%s", sha256: "%s"}\n' "$2" "$3"
    else
      printf 'base: {image: "%s"}\n' "$2"
    fi
    printf 'outputs:\n  - tar: {path: out.tar}\n'
  } > "$1"
}

MTREE_KEYS='!all,type,mode,uid,gid,size,sha256,link'
# mtree_dir DIR / mtree_tar TAR [KEYS]: one line per name, "path key=value...", sorted; '.' for the top.
mtree_dir() { bsdtar -cf - --format=mtree --options="${2:-$MTREE_KEYS}" -C "$1" . | mtree_norm; }
mtree_tar() { bsdtar -cf - --format=mtree --options="${2:-$MTREE_KEYS}" "@$1" | mtree_norm; }
mtree_norm() { grep -v '^#' | awk '$1 == "/." { $1 = "." } { print }' | LC_ALL=C sort; }
# Hardlinks of a tarball, one "name<TAB>target" line each, as bsdtar lists them.
links_of() { bsdtar -tvf "$1" | sed -n 's/^.* \(\.\/.*\) link to \(\.\/.*\)$/\1\t\2/p'; }
# Every xattr of every name below a folder, one "path<TAB>name=value" line each, symlinks not followed.
xattrs_of() {
  (cd "$1" && find . -print0 | LC_ALL=C sort -z | xargs -0 getfattr -h -d -m - -e hex --absolute-names 2> /dev/null) |
    awk '/^# file: / { f = substr($0, 9); next } NF { print f "\t" $0 }'
}
sha_of() { sha256sum < "$1" | cut -d' ' -f1; }
# no_crash LABEL: RC is a plain exit (< 128: no signal, no core dump) and the stderr in $P.err has no
# "internal error" / "terminate called" / sanitizer report.
no_crash() {
  if [ "$RC" -ge 128 ]; then
    fail "$1: exit code $RC (killed by signal $((RC - 128))); stderr: $(head -c 600 "$P.err")"
  elif grep -qiE 'internal error|terminate called|Assertion .* failed|AddressSanitizer|runtime error|Segmentation|core dumped' "$P.err"; then
    fail "$1: crash-like message on stderr: $(grep -iE 'internal error|terminate called|Assertion|Sanitizer|runtime error|Segmentation|core dumped' "$P.err" | head -n 3)"
  else
    ok "$1: exit code $RC, no crash"
  fi
}
ms() { date +%s%3N; }                            # now, in milliseconds
secs() { printf '%d.%03d' $(($1 / 1000)) $(($1 % 1000)); } # milliseconds as seconds
