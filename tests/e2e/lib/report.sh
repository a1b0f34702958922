# shellcheck shell=bash
# Sourced by the end-to-end scripts (the QEMU boot tests through lib/qemu.sh, netboot, netboot_update,
# sdimage, sdimage_guestfs, tar_roundtrip, reproducible, validate_errors, symlink_escape, download,
# containerd_debs, demo_recipes, node_root): how a check reports. ok and fail print one line each
# (failures to stderr) and fail counts into FAILS; eq LABEL GOT WANT is ok or fail by whether GOT is
# WANT; die reports a failure the test cannot go on after, and exits 1. finish NAME prints the
# summary line and exits: 1 when a check failed (the line on stderr), else 0.

FAILS=0
ok() { echo "ok   - $*"; }
fail() {
  echo "FAIL - $*" >&2
  FAILS=$((FAILS + 1))
}
eq() { # LABEL GOT WANT
  if [ "$2" = "$3" ]; then ok "$1"; else fail "$1: got '$2', want '$3'"; fi
}
die() {
  echo "FAIL - $*" >&2
  exit 1
}
finish() {
  echo
  if [ "$FAILS" -gt 0 ]; then
    echo "$1: $FAILS check(s) FAILED" >&2
    exit 1
  fi
  echo "$1: all checks passed"
  exit 0
}
