#!/usr/bin/env bash
# For the release jobs: imports IMGBUILD_GPG_PRIVATE_KEY (an armored secret key without a passphrase,
# from the CI's secret store) into gpg's keyring, so that ci/release.sh can sign with IMGBUILD_GPG_KEY.
# Does nothing when it is not set: the release is then unsigned.
set -euo pipefail
if [ -z "${IMGBUILD_GPG_PRIVATE_KEY:-}" ]; then
  echo "gpg-import: no IMGBUILD_GPG_PRIVATE_KEY: the release will not be signed"
  exit 0
fi
source "$(dirname "$0")/deps.sh"
imgbuild_install_deps gpg
gpg --batch --import <<< "$IMGBUILD_GPG_PRIVATE_KEY"
