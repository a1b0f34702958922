#!/usr/bin/env bash
# The main job of the README: installs what is missing, builds imgbuild, builds the sample base
# (ci/sample-base.sh: Debian 12 arm64 from Debian's own packages), and runs
#   imgbuild recipes/worker.yaml
# which leaves the worker root filesystem tarball and one NFS root per node in ./out.
set -euo pipefail
cd "$(dirname "$0")/.."
source ci/deps.sh

imgbuild_install_deps "${IMGBUILD_BUILD_DEPS[@]}" debootstrap fakeroot zstd
imgbuild_build
bash ci/sample-base.sh
./build/builder/imgbuild recipes/worker.yaml "$@"
echo
echo "outputs in ./out:"
find out -maxdepth 2 | sort | sed 's/^/  /'
