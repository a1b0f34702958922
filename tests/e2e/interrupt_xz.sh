#!/usr/bin/env bash
# End-to-end: Ctrl-C during a .tar.xz output takes effect within a second (it took 17 s: liblzma's
# threaded encoder held the pipeline until a whole 24 MiB block was compressed), exits 130 and
# leaves nothing in the output folder.
#
# usage: bash tests/e2e/interrupt_xz.sh path/to/imgbuild
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib/common.sh
. "$HERE/lib/common.sh"
e2e_args "$@"

W=$(mktemp -d /tmp/imgbuild-e2e-interrupt.XXXXXX)
trap 'rm -rf "$W"' EXIT
export IMGBUILD_CACHE=$W/cache
mkdir -p "$W/base/etc"
echo base > "$W/base/etc/hostname"
head -c 200M /dev/urandom > "$W/base/big" # incompressible: xz works on it for a minute or more
printf 'base: {dir: base}\noutputs: [{tar: {path: root.tar.xz}}]\n' > "$W/r.yaml"
mkdir "$W/out"
"$IMGBUILD" "$W/r.yaml" --out "$W/out" > "$W/log" 2>&1 &
pid=$!
sleep 3
t0=$(date +%s%N)
kill -INT $pid
wait $pid
rc=$?
ms=$((($(date +%s%N) - t0) / 1000000))
fail=0
[ $rc = 130 ] || { echo "FAIL - exit $rc after SIGINT, want 130:"; sed 's/^/       /' "$W/log"; fail=1; }
[ $ms -le 1000 ] || { echo "FAIL - took $ms ms to stop after SIGINT (want <= 1000)"; fail=1; }
left=$(ls -A "$W/out")
[ -z "$left" ] || { echo "FAIL - left in the output folder: $left"; fail=1; }
[ $fail = 0 ] && echo "ok - stopped $ms ms after SIGINT, exit 130, output folder empty"
exit $fail
