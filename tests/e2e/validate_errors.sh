#!/usr/bin/env bash
# End-to-end: `imgbuild validate` on a recipe with seven different mistakes (validate_errors.yaml:
# misspelt top-level key, bad node MAC, unknown step type, undefined template variable, files step
# without dest, wrong type for mode, outputs as a map) exits 2 and reports every one of them on stderr,
# each as FILE:LINE:COL: MESSAGE with FILE exactly as given on the command line, in file order —
# exactly validate_errors.expected (lines and columns checked by hand against the YAML).
# Building (and --dry-run) on the same recipe also exits 2 with the same report. None of them writes
# anything: not ./out, not an --out folder, not next to the recipe.
# Control: the recipe with the mistakes fixed validates with exit 0, also writing nothing.
#
# usage: bash tests/e2e/validate_errors.sh path/to/imgbuild
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib/common.sh
. "$HERE/lib/common.sh"
e2e_args "$@"
need_tools tar

export LC_ALL=C.UTF-8
W=$(mktemp -d /tmp/imgbuild-e2e-validate.XXXXXX)
trap 'rm -rf "$W"' EXIT

# shellcheck source=lib/report.sh
. "$HERE/lib/report.sh"

# Layout: $W/recipes/{broken,fixed}.yaml, base.tar beside them, $W/overlay (the files step's src),
# and the empty folder $W/run that imgbuild runs in.
mkdir -p "$W/recipes" "$W/overlay/etc" "$W/run" "$W/base/etc" "$W/t" # t: this script's own scratch files
echo "hello" > "$W/overlay/etc/motd"
echo "127.0.0.1	localhost" > "$W/base/etc/hosts"
tar --numeric-owner -cf "$W/recipes/base.tar" -C "$W/base" .
cp "$HERE/validate_errors.yaml" "$W/recipes/broken.yaml"
# The same recipe with every mistake fixed.
sed -e 's/^stesp:/# stesp:/; s/^  - hostname: x$/#  - hostname: x/' \
  -e 's/b8:27:eb:zz:00:01/b8:27:eb:00:00:02/' \
  -e 's/hostnam: /hostname: /' \
  -e 's/{{domian}}/{{domain}}/' \
  -e 's|{src: ../overlay}|{src: ../overlay, dest: /}|' \
  -e 's/mode: \[1\]/mode: 0644/' \
  -e 's|^outputs: {}|outputs:\n  - tar: {path: "{{node.name}}.tar"}|' \
  "$W/recipes/broken.yaml" > "$W/recipes/fixed.yaml"

snapshot() { (cd "$W" && find . -path ./t -prune -o -printf '%p %y %s %T@\n' | sort); }
snapshot > "$W/t/snap.before"
nothing_written() { # LABEL
  if [ -e "$W/run/out" ]; then
    fail "$1: created ./out ($(cd "$W/run" && find out | tr '\n' ' '))"
  elif [ -n "$(ls -A "$W/run")" ]; then
    fail "$1: wrote into the folder it ran in: $(ls -A "$W/run" | tr '\n' ' ')"
  elif ! diff <(snapshot) "$W/t/snap.before" > "$W/t/snap.diff"; then
    fail "$1: changed files:"
    sed 's/^/       /' "$W/t/snap.diff" >&2
  else
    ok "$1: wrote nothing (no ./out, no --out folder, nothing beside the recipe)"
  fi
}
run() { # EXPECTED_EXIT LABEL ARGS...: runs in $W/run, stderr to $W/err, stdout to $W/stdout
  local want=$1 label=$2 rc=0
  shift 2
  (cd "$W/run" && "$IMGBUILD" "$@") > "$W/t/stdout" 2> "$W/t/err" || rc=$?
  if [ "$rc" = "$want" ]; then ok "$label: exit $rc"; else fail "$label: exit $rc, want $want; stderr:" && sed 's/^/       /' "$W/t/err" >&2; fi
}
report_is_expected() { # LABEL
  if diff -u "$HERE/validate_errors.expected" "$W/t/err" > "$W/t/diff.txt"; then
    ok "$1: stderr is exactly validate_errors.expected ($(wc -l < "$W/t/err") errors, FILE:LINE:COL each)"
  else
    fail "$1: stderr differs from validate_errors.expected:"
    sed 's/^/       /' "$W/t/diff.txt" >&2
  fi
}

run 2 "validate ../recipes/broken.yaml" validate ../recipes/broken.yaml
report_is_expected "validate"
# Each mistake on its own (anywhere in a line), so that a failure names the one that went unreported
# or misplaced, apart from formatting around it.
n=0
while IFS= read -r line; do
  if grep -qF -- "$line" "$W/t/err"; then n=$((n + 1)); else fail "validate: not reported, or at another place: $line"; fi
done < "$HERE/validate_errors.expected"
ok "validate: $n of $(wc -l < "$HERE/validate_errors.expected") expected FILE:LINE:COL: MESSAGE reports found in stderr"
bad=$(grep -vE '^\.\./recipes/broken\.yaml:[0-9]+:[0-9]+: ' "$W/t/err" || true)
[ -z "$bad" ] && ok "validate: every stderr line starts with ../recipes/broken.yaml:LINE:COL:" ||
  fail "validate: stderr lines not of the form ../recipes/broken.yaml:LINE:COL: ...: $bad"
[ ! -s "$W/t/stdout" ] || fail "validate: printed on stdout: $(cat "$W/t/stdout")"
nothing_written "validate"

run 2 "build ../recipes/broken.yaml" ../recipes/broken.yaml
report_is_expected "build"
nothing_written "build"

run 2 "build ../recipes/broken.yaml --out newout" ../recipes/broken.yaml --out newout
nothing_written "build --out newout"

run 2 "build ../recipes/broken.yaml --dry-run" ../recipes/broken.yaml --dry-run
report_is_expected "dry run"
nothing_written "dry run"

run 0 "control: validate ../recipes/fixed.yaml" validate ../recipes/fixed.yaml
nothing_written "control: validate"

finish validate_errors
