# shellcheck shell=bash
# Sourced first by the end-to-end scripts: the checks they all start with. ctest runs each script as
# `bash SCRIPT path/to/imgbuild` (tests/CMakeLists.txt) and counts exit 77 as "skipped".
#
#   HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
#   . "$HERE/lib/common.sh"
#   e2e_args "$@"
#   need_root "what needs it"
#   need_tools bsdtar sfdisk ...
#
# e2e_args ARG...: IMGBUILD is set to the absolute path of the first ARG. Exit 2 with a usage line
# when there is none, exit 1 ("FAIL - ...") when it is not an executable.
# need_root WHY: exit 77 with "SKIP: SCRIPT needs root (WHY)" unless run as root.
# need_tools TOOL...: exit 77 with "SKIP: 'TOOL' is not installed" for the first TOOL not on the PATH.
# need_sample_base: the sample base of ci/sample-base.sh (a Debian arm64 root tarball, debs/ and
# demo_ed25519*), made first when it is missing, which needs the Debian mirror apt uses. Sets REPO
# (this checkout) and SAMPLE (${IMGBUILD_SAMPLE_DIR:-$REPO/build/sample}, the folder it is in);
# exit 77 with the script's last line when it cannot be made.
# All of them exit the calling script: call them in its own shell, not in $(...).

e2e_args() {
  if [ $# -lt 1 ]; then
    echo "usage: $0 path/to/imgbuild" >&2
    exit 2
  fi
  IMGBUILD=$(realpath "$1")
  [ -x "$IMGBUILD" ] || { echo "FAIL - '$1' is not an executable" >&2; exit 1; }
}

need_root() {
  [ "$(id -u)" = 0 ] || { echo "SKIP: $(basename "$0" .sh) needs root ($1)"; exit 77; }
}

need_tools() {
  local tool
  for tool in "$@"; do
    command -v "$tool" > /dev/null || { echo "SKIP: '$tool' is not installed"; exit 77; }
  done
}

need_sample_base() {
  REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
  SAMPLE=${IMGBUILD_SAMPLE_DIR:-$REPO/build/sample}
  local log
  if ! log=$(cd "$REPO" && bash ci/sample-base.sh "$SAMPLE/debian-bookworm-arm64-v2.tar.zst" 2>&1); then
    echo "SKIP: ci/sample-base.sh could not make the sample base: $(tail -n1 <<< "$log")"
    exit 77
  fi
}
