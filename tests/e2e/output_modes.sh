#!/usr/bin/env bash
# End-to-end: output files that hold what the image keeps private are not readable by other users of
# the build host.
#
# A base with sshd and the `ssh` step's `host_keys: generate` gives an image with a 0600 private host
# key: its tar (plain and compressed) and sdimage (plain and compressed) files must be 0600 on the host,
# under the usual umask 022. The same base without the step (nothing private in it) gives 0644 files.
# The key inside the tarball keeps its own 0600, read by bsdtar.
#
# usage: bash tests/e2e/output_modes.sh path/to/imgbuild
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib/common.sh
. "$HERE/lib/common.sh"
# shellcheck source=lib/report.sh
. "$HERE/lib/report.sh"
e2e_args "$@"
need_tools bsdtar stat

export LC_ALL=C.UTF-8 SOURCE_DATE_EPOCH=1700000000
W=$(mktemp -d /tmp/imgbuild-e2e-modes.XXXXXX)
trap 'rm -rf "$W"' EXIT
umask 022

b=$W/base
mkdir -p "$b/etc/ssh" "$b/lib/systemd/system" "$b/boot/firmware"
printf '# sshd\n' > "$b/etc/ssh/sshd_config"
printf '[Service]\nExecStart=/usr/sbin/sshd -D\n[Install]\nWantedBy=multi-user.target\n' > "$b/lib/systemd/system/ssh.service"
printf 'console=tty1 root=PARTUUID=abcd-02 rootwait\n' > "$b/boot/firmware/cmdline.txt"
printf 'PARTUUID=abcd-01 /boot/firmware vfat defaults 0 2\nPARTUUID=abcd-02 / ext4 defaults 0 1\n' > "$b/etc/fstab"
chmod -R u+rwX,go+rX "$b"

outputs='outputs:
  - tar: {path: rootfs.tar}
  - tar: {path: rootfs.tar.zst}
  - sdimage: {path: node.img, boot_size: 32, root_size: 64, bmap: false}
  - sdimage: {path: node.img.gz, boot_size: 32, root_size: 64, bmap: false}'
printf 'base: {dir: base}\nsteps:\n  - ssh: {host_keys: generate}\n%s\n' "$outputs" > "$W/keys.yaml"
printf 'base: {dir: base}\n%s\n' "$outputs" > "$W/plain.yaml"

(cd "$W" && "$IMGBUILD" -q keys.yaml --out keys) || die "build with generated host keys failed"
(cd "$W" && "$IMGBUILD" -q plain.yaml --out plain) || die "build without secrets failed"

for f in rootfs.tar rootfs.tar.zst node.img node.img.gz; do
  eq "$f with a private host key" "$(stat -c %a "$W/keys/$f")" 600
  eq "$f with nothing private" "$(stat -c %a "$W/plain/$f")" 644
done
eq "SHA256SUMS holds no secret" "$(stat -c %a "$W/keys/SHA256SUMS")" 644
key=$(bsdtar -tvf "$W/keys/rootfs.tar" ./etc/ssh/ssh_host_ed25519_key | awk '{print $1}')
eq "the key inside the tarball" "$key" "-rw-------"

finish output_modes
