#!/usr/bin/env bash
# `imgbuild --version` comes from git (cmake/version.cmake), not a constant: the binary under test
# reports its checkout's commit, and the script gives each documented form on a scratch repository
# (on a tag, between tags, no tag, uncommitted changes, no git, an override).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$HERE/lib/common.sh"
e2e_args "$@"
need_tools git cmake
REPO=$(cd "$HERE/../.." && pwd)
SCRIPT=$REPO/cmake/version.cmake
fail() { echo "FAIL - $*" >&2; exit 1; }

line=$("$IMGBUILD" --version)
[[ $line =~ ^imgbuild\ ([0-9]+\.[0-9]+\.[0-9]+)(\+([0-9]+\.)?g([0-9a-f]{12}))?(\.dirty)?$ ]] ||
  fail "--version printed '$line', not 'imgbuild X.Y.Z[+[N.]gHASH][.dirty]'"
# The binary may have been built from another checkout than this script's (a copied build folder):
# compare hashes only when it sits in this checkout's build tree.
if [[ $IMGBUILD == "$REPO"/* ]] && [ -n "${BASH_REMATCH[4]}" ] && git -C "$REPO" rev-parse HEAD > /dev/null 2>&1; then
  head=$(git -C "$REPO" rev-parse --short=12 HEAD)
  [ "${BASH_REMATCH[4]}" = "$head" ] || fail "--version says commit ${BASH_REMATCH[4]}, the checkout is at $head (stale build?)"
fi
echo "ok: $line"

w=$(mktemp -d)
trap 'rm -rf "$w"' EXIT
version_of() { # DIR [OVERRIDE]
  cmake -DSOURCE_DIR="$1" -DFALLBACK=0.1.0 -DOVERRIDE="${2:-}" -DOUT="$w/v.hpp" -DOUT_TXT="$w/v.txt" -P "$SCRIPT"
  cat "$w/v.txt"
}
expect() { # WHAT GOT WANTED (a regex)
  [[ $2 =~ ^$3$ ]] || fail "$1: version '$2', expected /$3/"
  echo "ok: $1: $2"
}
r=$w/repo
mkdir "$r"
git -C "$r" init -q
g() { git -C "$r" -c user.name=t -c user.email=t@t -c commit.gpgsign=false "$@"; }
echo a > "$r/f"
g add f
g commit -qm one
expect "no tag" "$(version_of "$r")" "0\.1\.0\+g$(g rev-parse --short=12 HEAD)"
g tag v0.2.0
expect "on tag v0.2.0" "$(version_of "$r")" "0\.2\.0"
grep -q '#define IMGBUILD_VERSION "0.2.0"' "$w/v.hpp" || fail "the header does not define IMGBUILD_VERSION \"0.2.0\": $(cat "$w/v.hpp")"
echo b > "$r/f"
expect "uncommitted change" "$(version_of "$r")" "0\.2\.0\.dirty"
g commit -qam two
g commit -q --allow-empty -m three
expect "two commits after v0.2.0" "$(version_of "$r")" "0\.2\.0\+2\.g$(g rev-parse --short=12 HEAD)"
echo x > "$r/untracked"
expect "untracked files do not count" "$(version_of "$r")" "0\.2\.0\+2\.g[0-9a-f]{12}"
g tag v0.10.0
expect "on tag v0.10.0" "$(version_of "$r")" "0\.10\.0"
expect "override" "$(version_of "$r" 1.2.3-1)" "1\.2\.3-1"
rm -rf "$r/.git"
expect "outside git" "$(version_of "$r")" "0\.1\.0"
# Unchanged content leaves the header alone, so main.cpp is not recompiled on every build.
before=$(stat -c %Y.%y "$w/v.hpp")
sleep 1
version_of "$r" > /dev/null
[ "$(stat -c %Y.%y "$w/v.hpp")" = "$before" ] || fail "the header was rewritten with the same version"
echo "ok: an unchanged version leaves the header untouched"
