#!/usr/bin/env bash
# End-to-end: the bad-input corpus. Every folder of tests/bad-inputs/ is one hostile input given to
# imgbuild as data; this script runs them all (or the case folders given after the binary):
#
#   tests/bad-inputs/NAME/recipe.yaml   plus whatever files it names (tiny; relative paths)
#   tests/bad-inputs/NAME/args          optional, one line: the arguments after the binary, split by
#                                       the shell (default: recipe.yaml --out out)
#   tests/bad-inputs/NAME/setup.sh      optional, run with bash in the working copy first: what git
#                                       cannot hold (FIFOs, sparse files, symlinks, old outputs)
#   tests/bad-inputs/NAME/expect        line 1 `exit N`; then `stderr: TEXT` lines (each TEXT must
#                                       appear in stderr) and optionally `changes: out` (files under
#                                       out/ may change; only for exit 0). Blank and # lines ignored.
#
# Each case runs in a copy of its folder under a temp dir (the working copy, also the cwd), with
# IMGBUILD_CACHE a fresh empty folder outside it, stdin from /dev/null, a 60 s timeout and an
# address-space cap (4 GiB; IMGBUILD_BAD_INPUTS_MEM=BYTES to change). Besides the exit code and the
# stderr texts it checks that the working copy after the run is identical to the one after setup.sh
# (every path's type, mode, size, sha256, link target, device number; out/ excepted with `changes:
# out`), that nothing appeared next to it, that no new *imgbuild-tmp* file is left anywhere in it, and
# that stderr has no "internal error" (an unexpected exception is a bug even when the exit code fits).
#
# Prints one line per case (`ok NAME` or `FAIL NAME: why`, with stderr on failure), then
# `N passed, N failed`; exits 1 when any case failed.
#
# usage: bash tests/e2e/bad_inputs.sh path/to/imgbuild [tests/bad-inputs/CASE ...]
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib/common.sh
. "$HERE/lib/common.sh"
e2e_args "$@"
shift
need_tools perl timeout prlimit

export LC_ALL=C.UTF-8
MEM=${IMGBUILD_BAD_INPUTS_MEM:-$((4 << 30))}
TIMEOUT=60
T=$(mktemp -d /tmp/imgbuild-bad-inputs.XXXXXX)
cleanup() {
  chmod -R u+rwx "$T" 2> /dev/null
  rm -rf "$T"
}
trap cleanup EXIT

if [ $# -gt 0 ]; then
  CASES=("$@")
else
  CASES=()
  for d in "$HERE"/../bad-inputs/*/; do
    [ -d "$d" ] && CASES+=("${d%/}")
  done
  if [ ${#CASES[@]} = 0 ]; then
    echo "FAIL - no cases under $HERE/../bad-inputs"
    exit 1
  fi
fi

# snapshot DIR [SKIP]: one line per path below DIR (sorted; names escaped), never following links
# nor reading anything but regular files: type, permission bits, size and sha256 (files), link
# target, device number. Files over 64 MiB (huge sparse ones) are identified by size, allocated
# blocks and ctime instead of being read. SKIP: a path relative to DIR left out with all below it.
snapshot() {
  perl -MFile::Find -MDigest::SHA -MFcntl=:mode -e '
    my ($root, $skip) = @ARGV;
    my @lines;
    sub esc { my $s = shift; $s =~ s/([^\x21-\x7e])/sprintf("\\x%02x", ord $1)/ge; $s }
    find({ no_chdir => 1, wanted => sub {
      my $rel = substr($File::Find::name, length $root);
      $rel =~ s{^/}{};
      return if $rel eq "";
      if ($skip ne "" && ($rel eq $skip || index($rel, "$skip/") == 0)) {
        $File::Find::prune = 1 if -d $File::Find::name;
        return;
      }
      my @st = lstat $File::Find::name or do { push @lines, esc($rel) . " vanished"; return };
      my $m = $st[2];
      my $line = esc($rel) . sprintf(" %04o ", S_IMODE($m));
      if (S_ISREG($m)) {
        $line .= "file $st[7] ";
        if ($st[7] > (64 << 20)) {
          $line .= "blocks=$st[12] ctime=$st[10]";
        } elsif (open(my $fh, "<:raw", $File::Find::name)) {
          $line .= Digest::SHA->new(256)->addfile($fh)->hexdigest;
        } else {
          $line .= "unreadable";
        }
      } elsif (S_ISDIR($m)) { $line .= "dir" }
      elsif (S_ISLNK($m)) { $line .= "link -> " . esc(readlink($File::Find::name) // "?") }
      elsif (S_ISFIFO($m)) { $line .= "fifo" }
      elsif (S_ISSOCK($m)) { $line .= "socket" }
      elsif (S_ISCHR($m)) { $line .= "chardev $st[6]" }
      elsif (S_ISBLK($m)) { $line .= "blockdev $st[6]" }
      else { $line .= "other" }
      push @lines, $line;
    }}, $root);
    print "$_\n" for sort @lines;
  ' "$1" "${2:-}"
}

# run_case DIR: sets WHY (empty when the case passed) and CASE_LOG (what to show on failure).
run_case() {
  local src=$1 name work wc cache want_rc="" want_out=0 line n=0 rc args t0 t1
  local -a want_err=()
  name=$(basename "$src")
  work=$T/$name
  wc=$work/wc
  cache=$T/cache-$name
  WHY=""
  CASE_LOG=""
  ELAPSED=""
  if [ ! -f "$src/expect" ]; then
    WHY="no expect file"
    return
  fi
  while IFS= read -r line || [ -n "$line" ]; do
    n=$((n + 1))
    line=${line%$'\r'}
    if [ $n = 1 ]; then
      if [[ $line =~ ^exit\ ([0-9]+)$ ]]; then
        want_rc=${BASH_REMATCH[1]}
        continue
      fi
      WHY="expect: line 1 must be 'exit N', not '$line'"
      return
    fi
    case $line in
      '' | '#'*) ;;
      'stderr: '*) want_err+=("${line#stderr: }") ;;
      'changes: out') want_out=1 ;;
      *)
        WHY="expect: line $n not understood: '$line'"
        return
        ;;
    esac
  done < "$src/expect"
  if [ -z "$want_rc" ]; then
    WHY="expect is empty"
    return
  fi
  if [ $want_out = 1 ] && [ "$want_rc" != 0 ]; then
    WHY="expect: 'changes: out' is only for exit 0 (a failed build must change nothing)"
    return
  fi

  mkdir -p "$work" "$cache"
  cp -a "$src" "$wc" || {
    WHY="cannot copy the case"
    return
  }
  if [ -f "$wc/setup.sh" ]; then
    if ! (cd "$wc" && bash setup.sh) > "$work/setup.log" 2>&1 < /dev/null; then
      WHY="setup.sh failed"
      CASE_LOG=$(cat "$work/setup.log")
      return
    fi
  fi
  args="recipe.yaml --out out"
  if [ -f "$wc/args" ]; then
    IFS= read -r args < "$wc/args" || true
  fi
  # out/ may change only where the case says so (and then only when the build succeeds: exit 0).
  local skip=""
  [ $want_out = 1 ] && skip=wc/out
  snapshot "$work" "$skip" > "$T/$name.before"
  find "$work" -name '*imgbuild-tmp*' -printf '%P\n' 2> /dev/null | sort > "$T/$name.tmp-before"

  t0=$(date +%s%N)
  (
    cd "$wc" || exit 99
    eval "set -- $args" || exit 98
    export IMGBUILD_CACHE=$cache
    exec timeout -k 5 "$TIMEOUT" prlimit --as="$MEM" -- "$IMGBUILD" "$@"
  ) < /dev/null > "$T/$name.stdout" 2> "$T/$name.stderr"
  rc=$?
  t1=$(date +%s%N)
  ELAPSED=$(((t1 - t0) / 1000000))
  CASE_LOG=$(head -c 4000 "$T/$name.stderr")

  local -a why=()
  if [ $rc = 124 ] || [ $rc = 137 ]; then
    why+=("timed out after ${TIMEOUT}s (exit $rc)")
  elif [ "$rc" != "$want_rc" ]; then
    why+=("exit $rc, want $want_rc")
  fi
  local text
  for text in "${want_err[@]}"; do
    grep -qF -- "$text" "$T/$name.stderr" || why+=("stderr lacks '$text'")
  done
  if grep -q 'internal error' "$T/$name.stderr"; then
    why+=("stderr says 'internal error'")
  fi
  snapshot "$work" "$skip" > "$T/$name.after"
  if ! diff -q "$T/$name.before" "$T/$name.after" > /dev/null; then
    why+=("the working copy changed: $(diff "$T/$name.before" "$T/$name.after" | grep '^[<>]' | head -n 6 | tr '\n' ' ')")
  fi
  local left
  left=$(find "$work" -name '*imgbuild-tmp*' -printf '%P\n' 2> /dev/null | sort |
    comm -13 "$T/$name.tmp-before" - | tr '\n' ' ' | head -c 300)
  if [ -n "$left" ]; then
    why+=("leftovers: $left")
  fi
  WHY=$(
    IFS=';'
    echo "${why[*]:-}"
  )
  WHY=${WHY//;/; }
}

pass=0
fail=0
for c in "${CASES[@]}"; do
  c=${c%/}
  name=$(basename "$c")
  run_case "$c"
  if [ -z "$WHY" ]; then
    pass=$((pass + 1))
    echo "ok   $name (${ELAPSED} ms)"
  else
    fail=$((fail + 1))
    echo "FAIL $name: $WHY"
    [ -n "$CASE_LOG" ] && sed 's/^/       | /' <<< "$CASE_LOG"
  fi
  chmod -R u+rwx "$T/$name" 2> /dev/null
  rm -rf "${T:?}/$name" "${T:?}/cache-$name"
done
echo "$pass passed, $fail failed"
[ $fail = 0 ]
