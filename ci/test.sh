#!/usr/bin/env bash
# The test command of the README and of CI: installs what is missing, builds with warnings as errors
# (under CI=true), and runs every test (Catch2 unit tests and the end-to-end scripts) through ctest.
# Run it as root: the end-to-end tests make device nodes and check real owners.
set -euo pipefail
cd "$(dirname "$0")/.."
source ci/deps.sh

imgbuild_install_deps "${IMGBUILD_BUILD_DEPS[@]}" "${IMGBUILD_TEST_DEPS[@]}"
imgbuild_install_optional "${IMGBUILD_OPTIONAL_DEPS[@]}"
imgbuild_build
cd build
ctest --output-on-failure -j "$(nproc)" --timeout 900
