#!/usr/bin/env bash
# End-to-end: what the cluster-node steps leave in a node's root, judged by the programs that will
# read it, and the same recipe applied twice.
#
# recipes/worker.yaml (through a small recipe extending it: one node, a `tar` output) is built on the
# sample base, and its root unpacked. Then:
# - `systemd-analyze verify --root` (the host's systemd) accepts every unit the steps wrote and every
#   unit they enabled, with nothing printed: no unknown key, no missing ExecStart binary, no missing
#   dependency (--man=no: the Documentation= man pages are not in a slim node's root, and are not
#   what the steps wrote);
# - `cloud-init schema` (the host's cloud-init) accepts the NoCloud seed's user-data;
# - the same recipe, with that root as its base, gives a byte-identical tarball: applying the steps to
#   their own output changes nothing (no file, owner, mode, time or xattr).
# Needs root (owners in the unpacked root), systemd-analyze and cloud-init (ci/deps.sh installs them);
# exit 77 without them or without the sample base.
#
# usage: bash tests/e2e/node_root.sh path/to/imgbuild
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib/common.sh
. "$HERE/lib/common.sh"
e2e_args "$@"
need_root "it unpacks a root with its owners"
need_tools systemd-analyze cloud-init tar bsdtar sha256sum

export LC_ALL=C.UTF-8
export SOURCE_DATE_EPOCH=1700000000
need_sample_base # REPO, SAMPLE
W=$(mktemp -d /tmp/imgbuild-e2e-node.XXXXXX)
trap 'rm -rf "$W"' EXIT

# shellcheck source=lib/report.sh
. "$HERE/lib/report.sh"

# ---------------------------------------------------------------------------------------------
# One worker, as a root filesystem tarball.
cat > "$W/first.yaml" << EOF
extends: $REPO/recipes/worker.yaml
name: worker-1-root
nodes:
  - {name: worker-1, mac: "dc:a6:32:00:00:01", serial: "a1b2c301", ip: 10.0.0.11/24}
outputs:
  - tar: {path: "{{node.name}}.tar"}
EOF
if ! "$IMGBUILD" --set "sample=$SAMPLE" --out "$W/out1" "$W/first.yaml" > "$W/build1.log" 2>&1; then
  fail "imgbuild (first build) failed:"
  sed 's/^/       /' "$W/build1.log" >&2
  exit 1
fi
ok "built worker-1's root from recipes/worker.yaml"
R=$W/root
mkdir "$R"
tar --numeric-owner --xattrs --xattrs-include='*' -xpf "$W/out1/worker-1.tar" -C "$R"

# ---------------------------------------------------------------------------------------------
# systemd-analyze verify: the units the steps wrote (files in /etc/systemd/system and
# /usr/local/lib/systemd/system) and every unit enabled in a .wants folder, plus the default target.
units=()
while IFS= read -r f; do units+=("$(basename "$f")"); done < <(
  find "$R/etc/systemd/system" "$R/usr/local/lib/systemd/system" -maxdepth 1 -type f \
    -regex '.*\.\(service\|socket\|timer\|target\|mount\|path\)' 2> /dev/null || true # a folder may be missing
  find "$R/etc/systemd/system" -mindepth 2 -maxdepth 2 -path '*.wants/*' -type l
)
units+=(default.target)
mapfile -t units < <(printf '%s\n' "${units[@]}" | sort -u)
for want in containerd.service systemd-networkd.service ssh.service imgbuild-ssh-keygen.service; do
  printf '%s\n' "${units[@]}" | grep -qxF "$want" || fail "$want is not among the units the steps enabled: ${units[*]}"
done
if systemd-analyze verify --man=no --root="$R" "${units[@]}" > "$W/verify.log" 2>&1 && [ ! -s "$W/verify.log" ]; then
  ok "systemd-analyze verify accepts ${#units[@]} units: ${units[*]}"
else
  fail "systemd-analyze verify --root (of ${units[*]}):"
  sed 's/^/       /' "$W/verify.log" >&2
fi
# The check can fail: a unit with an unknown key and a missing binary is refused on the same root.
printf '[Unit]\nDescription=broken\n[Service]\nExecStart=/usr/bin/imgbuild-nonexistent\nBogus=1\n' \
  > "$R/etc/systemd/system/imgbuild-broken.service"
if systemd-analyze verify --root="$R" imgbuild-broken.service > "$W/broken.log" 2>&1 || [ -s "$W/broken.log" ]; then
  ok "systemd-analyze verify complains about a broken unit: $(head -n1 "$W/broken.log")"
else
  fail "systemd-analyze verify accepted a broken unit: the check above proves nothing"
fi
rm "$R/etc/systemd/system/imgbuild-broken.service"

# The containerd step's own unit (/usr/local/lib/systemd/system/containerd.service), written when
# containerd comes from a release tarball: one shaped as upstream's, made of the sample's Debian
# binaries (bin/containerd, bin/ctr, ...), and runc's binary on its own.
mkdir -p "$W/rel/pkg" "$W/rel/runc"
bsdtar -xOf "$SAMPLE/debs/containerd.deb" 'data.tar.*' | bsdtar -xf - -C "$W/rel/pkg" ./usr/bin
mv "$W/rel/pkg/usr/bin" "$W/rel/bin"
tar -C "$W/rel" --owner=0 --group=0 -czf "$W/containerd-1.6.20-linux-arm64.tar.gz" bin
bsdtar -xOf "$SAMPLE/debs/runc.deb" 'data.tar.*' | bsdtar -xf - -C "$W/rel/runc" ./usr/sbin/runc
cp "$W/rel/runc/usr/sbin/runc" "$W/runc.arm64"
cat > "$W/release.yaml" << EOF
base: {tarball: "$SAMPLE/debian-bookworm-arm64-v2.tar.zst"}
steps:
  - containerd:
      containerd: containerd-1.6.20-linux-arm64.tar.gz
      runc: runc.arm64
outputs:
  - tar: {path: release.tar}
EOF
if ! "$IMGBUILD" --out "$W/out-rel" "$W/release.yaml" > "$W/build-rel.log" 2>&1; then
  fail "imgbuild (containerd from a release tarball) failed:"
  sed 's/^/       /' "$W/build-rel.log" >&2
else
  RR=$W/root-rel
  mkdir "$RR"
  tar --numeric-owner -xpf "$W/out-rel/release.tar" -C "$RR"
  if [ -f "$RR/usr/local/lib/systemd/system/containerd.service" ] &&
    [ -L "$RR/etc/systemd/system/multi-user.target.wants/containerd.service" ] &&
    systemd-analyze verify --man=no --root="$RR" containerd.service > "$W/verify-rel.log" 2>&1 && [ ! -s "$W/verify-rel.log" ]; then
    ok "systemd-analyze verify accepts the step's own containerd.service (release tarball: ExecStart=$(grep -o '^ExecStart=.*' "$RR/usr/local/lib/systemd/system/containerd.service" | cut -d= -f2-))"
  else
    fail "the containerd.service written for a release tarball is missing, not enabled or refused:"
    sed 's/^/       /' "$W/verify-rel.log" >&2
  fi
  rm -rf "$RR"
fi

# ---------------------------------------------------------------------------------------------
# cloud-init schema, on the seed the cloud_init step wrote.
seed=$R/var/lib/cloud/seed/nocloud
[ -f "$seed/user-data" ] || seed=$R/boot/firmware
if [ -f "$seed/user-data" ]; then
  if cloud-init schema --config-file "$seed/user-data" > "$W/schema.log" 2>&1; then
    ok "cloud-init schema accepts ${seed#"$R"}/user-data ($(cloud-init --version 2>&1 | awk '{print $NF}'))"
  else
    fail "cloud-init schema rejects ${seed#"$R"}/user-data:"
    sed 's/^/       /' "$W/schema.log" >&2
  fi
  grep -q '^instance-id: "worker-1-pi-lab"$' "$seed/meta-data" && ok "meta-data names the node's instance" ||
    fail "meta-data: $(cat "$seed/meta-data")"
else
  fail "no NoCloud seed in the root (looked in /var/lib/cloud/seed/nocloud and /boot/firmware)"
fi

# ---------------------------------------------------------------------------------------------
# Twice: the same recipe on its own output.
cat > "$W/second.yaml" << EOF
extends: first.yaml
base: {tarball: out1/worker-1.tar}
EOF
if ! "$IMGBUILD" --set "sample=$SAMPLE" --out "$W/out2" "$W/second.yaml" > "$W/build2.log" 2>&1; then
  fail "imgbuild (second build, on the first one's output) failed:"
  sed 's/^/       /' "$W/build2.log" >&2
else
  a=$(sha256sum < "$W/out1/worker-1.tar" | cut -d' ' -f1)
  b=$(sha256sum < "$W/out2/worker-1.tar" | cut -d' ' -f1)
  if [ "$a" = "$b" ]; then
    ok "the recipe applied to its own output changes nothing: the tarballs are byte-identical (sha256 ${a:0:16}…)"
  else
    fail "the recipe applied to its own output changed it; what differs (bsdtar mtree, first vs second):"
    for n in 1 2; do
      bsdtar -cf - --format=mtree --options='!all,type,mode,uid,gid,size,time,link,sha256' "@$W/out$n/worker-1.tar" |
        sort > "$W/mtree$n"
    done
    diff "$W/mtree1" "$W/mtree2" | head -n 40 | sed 's/^/       /' >&2
  fi
fi

finish node_root
