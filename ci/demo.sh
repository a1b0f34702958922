#!/usr/bin/env bash
# The main job of the README: installs what is missing, builds imgbuild, builds the sample base once
# (ci/sample-base.sh: Debian 12 arm64 from Debian's own packages, with containerd and runc packages and
# a demo SSH key beside it, in build/sample/), and runs
#   imgbuild recipes/worker.yaml
# which leaves the worker root filesystem tarball and one NFS root per node in ./out. Arguments go to
# imgbuild (--dry-run, --out DIR, --set NAME=VALUE, ...).
set -euo pipefail
cd "$(dirname "$0")/.."
source ci/deps.sh

imgbuild_install_deps "${IMGBUILD_BUILD_DEPS[@]}" debootstrap fakeroot zstd openssh-client
imgbuild_build
bash ci/sample-base.sh
./build/builder/imgbuild recipes/worker.yaml "$@"
echo
echo "outputs in ./out:"
find out -maxdepth 2 | sort | sed 's/^/  /'
