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
# (this checkout) and SAMPLE (${IMGBUILD_SAMPLE_DIR:-$REPO/build/sample}, the folder it is in).
# When it cannot be made: exit 77 if the mirror does not answer (a probe of its Release file, apart
# from the script), else exit 1 with the script's last lines: the script is the project's own.
# guestfs_probe: whether a libguestfs appliance can start on this machine at all, judged by
# libguestfs-test-tool with TCG forced (the slow, always-possible way): 0 if it can; else 1 with the
# tool's last lines in GUESTFS_PROBE. Call it only to tell a broken machine from a bug (it takes
# minutes under TCG).
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
  local log mirror
  if ! log=$(cd "$REPO" && bash ci/sample-base.sh "$SAMPLE/debian-bookworm-arm64-v2.tar.zst" 2>&1); then
    mirror=$(debian_mirror)
    if [ -z "$mirror" ] || ! curl -fsS --max-time 30 -o /dev/null "$mirror/dists/bookworm/Release" 2> /dev/null; then
      echo "SKIP: the Debian mirror '${mirror:-(none in /etc/apt)}' does not answer, so the sample base cannot be made: $(tail -n1 <<< "$log")"
      exit 77
    fi
    echo "FAIL - ci/sample-base.sh could not make the sample base, though the mirror $mirror answers:" >&2
    tail -n 15 <<< "$log" | sed 's/^/       /' >&2
    exit 1
  fi
}

# The first deb URI apt is configured with (deb822 .sources files, then sources.list), as
# ci/sample-base.sh finds it.
debian_mirror() {
  local m
  m=$(grep -hoE '^URIs:\s*\S+' /etc/apt/sources.list.d/*.sources 2> /dev/null | awk '{print $2}' | grep -v security | head -n1)
  [ -n "$m" ] || m=$(grep -hoE '^deb\s+(\[[^]]*\]\s+)?\S+' /etc/apt/sources.list 2> /dev/null | awk '{print $NF}' | grep -v security | head -n1)
  echo "${m%/}"
}

# shellcheck disable=SC2034 # GUESTFS_PROBE is read by the caller
guestfs_probe() {
  command -v libguestfs-test-tool > /dev/null || { GUESTFS_PROBE="libguestfs-test-tool is not installed (libguestfs-tools)"; return 1; }
  local log
  if log=$(LIBGUESTFS_BACKEND=${LIBGUESTFS_BACKEND:-direct} LIBGUESTFS_BACKEND_SETTINGS=force_tcg timeout 900 libguestfs-test-tool 2>&1); then
    GUESTFS_PROBE=
    return 0
  fi
  GUESTFS_PROBE=$(grep -v '^\s*$' <<< "$log" | tail -n 3 | tr '\n' ' ' | head -c 400)
  return 1
}
