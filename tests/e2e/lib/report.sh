# shellcheck shell=bash
# Sourced by the QEMU boot tests: how a check reports. ok and fail print one line each (failures to
# stderr) and fail counts into FAILS; die reports a failure the test cannot go on after, and exits 1.

FAILS=0
ok() { echo "ok   - $*"; }
fail() {
  echo "FAIL - $*" >&2
  FAILS=$((FAILS + 1))
}
die() {
  echo "FAIL - $*" >&2
  exit 1
}
