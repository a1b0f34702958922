#!/usr/bin/env bash
# End-to-end: the example recipes (recipes/common.yaml, worker.yaml, master.yaml) on the sample base,
# as the README's quick start runs them.
#
# Each recipe must validate and --dry-run cleanly. Then recipes/worker.yaml is built into a temporary
# folder and its outputs are checked with tools imgbuild did not write (bsdtar, grep, stat,
# ssh-keygen): in the shared tarball, the cgroup flags once in cmdline.txt, config.txt settings,
# containerd and runc installed and enabled, config.toml with SystemdCgroup = true, the Kubernetes
# modules and sysctl files, user pi with its authorized_keys (0600, owned by pi), sshd settings, no
# host keys, time zone and locale; in each NFS root, its own host name, networkd file with its
# address, SSH host key (a valid key pair, different per node) and cloud-init instance-id.
# Last, recipes/hypriot-worker.yaml is built on a HypriotOS-shaped SD image made from the sample base,
# and one of its per-node images is read back with sfdisk, debugfs and mtools: cmdline.txt flags,
# host name, the /boot seed, pirate and its key, the static address, config.toml.
#
# The sample base comes from ci/sample-base.sh, in build/sample/ (or $IMGBUILD_SAMPLE_DIR); when it is
# missing it is made first, which needs the Debian mirror apt uses (exit 77 when that fails).
#
# usage: bash tests/e2e/demo_recipes.sh path/to/imgbuild     (needs root for the dir outputs; exit 77 otherwise)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib/common.sh
. "$HERE/lib/common.sh"
e2e_args "$@"
need_root "the NFS roots are dir outputs with real owners"
need_tools bsdtar grep stat ssh-keygen sort sfdisk jq debugfs mtype

export LC_ALL=C.UTF-8
export SOURCE_DATE_EPOCH=1700000000
need_sample_base # REPO, SAMPLE
W=$(mktemp -d /tmp/imgbuild-e2e-demo.XXXXXX)
trap 'rm -rf "$W"' EXIT

# shellcheck source=lib/report.sh
. "$HERE/lib/report.sh"

# ---------------------------------------------------------------------------------------------
# The sample base's demo key, and the sample folder for the recipes.
PUBKEY=$(cat "$SAMPLE/demo_ed25519.pub")
SET=(--set "sample=$SAMPLE") # absolute: the recipes' default is ../build/sample

# ---------------------------------------------------------------------------------------------
# validate and --dry-run, every recipe.
for r in common worker master; do
  if "$IMGBUILD" validate "${SET[@]}" "$REPO/recipes/$r.yaml" > "$W/validate-$r.log" 2>&1; then
    ok "validate recipes/$r.yaml"
  else
    fail "validate recipes/$r.yaml failed:"
    sed 's/^/       /' "$W/validate-$r.log" >&2
  fi
  if "$IMGBUILD" --dry-run "${SET[@]}" --out "$W/dry" "$REPO/recipes/$r.yaml" > "$W/dry-$r.log" 2>&1 &&
    [ ! -e "$W/dry" ] && grep -q containerd "$W/dry-$r.log"; then
    ok "--dry-run recipes/$r.yaml ($(wc -l < "$W/dry-$r.log") lines, nothing written)"
  else
    fail "--dry-run recipes/$r.yaml failed, wrote $W/dry or does not mention containerd:"
    sed 's/^/       /' "$W/dry-$r.log" >&2
  fi
done
if grep -q 'worker-3' "$W/dry-worker.log" && grep -q 'netboot tftp/ nfs/' "$W/dry-worker.log" && grep -q '^  sdimage worker.img' "$W/dry-worker.log"; then
  ok "the worker plan names the nodes, the SD image and the netboot trees"
else
  fail "the worker plan does not name worker-3, the sdimage and the netboot output"
fi

# ---------------------------------------------------------------------------------------------
# Build the workers.
OUT=$W/out
start=$(date +%s)
if ! "$IMGBUILD" "${SET[@]}" --out "$OUT" "$REPO/recipes/worker.yaml" > "$W/build.log" 2>&1; then
  echo "FAIL - imgbuild recipes/worker.yaml failed:" >&2
  sed 's/^/       /' "$W/build.log" >&2
  exit 1
fi
ok "imgbuild recipes/worker.yaml ($(($(date +%s) - start)) s)"
if grep -qi 'warning' "$W/build.log"; then
  fail "the build warned:"
  grep -i warning "$W/build.log" | sed 's/^/       /' >&2
fi

# ---------------------------------------------------------------------------------------------
# The shared tarball, through bsdtar.
TAR=$OUT/worker-rootfs.tar.zst
bsdtar -tvf "$TAR" > "$W/listing.txt"
X=$W/x # the files the checks read
mkdir -p "$X" && bsdtar -xf "$TAR" -C "$X" ./boot ./etc ./home

member() { # member LABEL REGEX: some line of `bsdtar -tv` matches
  if grep -qE "$2" "$W/listing.txt"; then ok "$1"; else fail "$1: no member matches '$2'"; fi
}
no_member() { # no_member LABEL REGEX
  if grep -qE "$2" "$W/listing.txt"; then fail "$1: $(grep -E "$2" "$W/listing.txt" | head -n1)"; else ok "$1"; fi
}
# has LABEL FILE REGEX [COUNT]: COUNT (default: at least one) lines of FILE match
has() {
  local n
  n=$(grep -cE "$3" "$2" 2> /dev/null || true)
  if { [ $# -ge 4 ] && [ "$n" = "$4" ]; } || { [ $# -lt 4 ] && [ "$n" -gt 0 ]; }; then
    ok "$1"
  else
    fail "$1: ${2#"$W"/} has $n line(s) matching '$3'$([ $# -ge 4 ] && echo ", want $4")"
  fi
}
words() { tr ' ' '\n' < "$1" | grep -cxF "$2" || true; }

cmdline=$X/boot/firmware/cmdline.txt
bad=""
for flag in cgroup_enable=cpuset cgroup_enable=memory cgroup_memory=1 swapaccount=1 root=PARTUUID=00000000-02 rootwait; do
  [ "$(words "$cmdline" "$flag")" = 1 ] || bad="$bad $flag"
done
[ -z "$bad" ] && [ "$(wc -l < "$cmdline")" = 1 ] && ok "cmdline.txt: one line, each cgroup flag once: $(cat "$cmdline")" ||
  fail "cmdline.txt lacks or repeats:$bad: $(cat "$cmdline")"
has "config.txt: arm_64bit=1 once" "$X/boot/firmware/config.txt" '^arm_64bit=1$' 1
has "config.txt: gpu_mem=16" "$X/boot/firmware/config.txt" '^gpu_mem=16$' 1
has "config.txt: dtoverlay=disable-wifi" "$X/boot/firmware/config.txt" '^dtoverlay=disable-wifi$' 1
has "config.txt: the sample's [pi4] section kept" "$X/boot/firmware/config.txt" '^\[pi4\]$' 1

member "/usr/bin/containerd from the .deb" '^-rwxr-xr-x .* \./usr/bin/containerd$'
member "/usr/sbin/runc from the .deb" '^-rwxr-xr-x .* \./usr/sbin/runc$'
member "containerd.service enabled" \
  '^l.* \./etc/systemd/system/multi-user\.target\.wants/containerd\.service -> /(usr/)?lib/systemd/system/containerd\.service$'
has "config.toml: SystemdCgroup = true" "$X/etc/containerd/config.toml" '^ *SystemdCgroup = true$' 1
has "modules-load.d/k8s.conf: br_netfilter" "$X/etc/modules-load.d/k8s.conf" '^br_netfilter$' 1
has "modules-load.d/k8s.conf: overlay" "$X/etc/modules-load.d/k8s.conf" '^overlay$' 1
has "sysctl.d/k8s.conf: bridged traffic through iptables" "$X/etc/sysctl.d/k8s.conf" '^net\.bridge\.bridge-nf-call-iptables = 1$' 1
has "sysctl.d/k8s.conf: IP forwarding" "$X/etc/sysctl.d/k8s.conf" '^net\.ipv4\.ip_forward = 1$' 1

has "pi is uid 1000 with /bin/bash" "$X/etc/passwd" '^pi:x:1000:1000:.*:/home/pi:/bin/bash$' 1
has "pi's password is locked" "$X/etc/shadow" '^pi:!:' 1
has "pi is in group sudo" "$X/etc/group" '^sudo:x:27:(.*,)?pi(,.*)?$' 1
member "/home/pi/.ssh is 0700 pi's" '^drwx------ +[0-9]+ 1000 +1000 .* \./home/pi/\.ssh/$'
member "authorized_keys is 0600 pi's" '^-rw------- +[0-9]+ 1000 +1000 .* \./home/pi/\.ssh/authorized_keys$'
[ "$(grep -cxF "$PUBKEY" "$X/home/pi/.ssh/authorized_keys" || true)" = 1 ] &&
  ok "authorized_keys holds the demo key once" || fail "authorized_keys does not hold the demo key exactly once"
has "sudoers: pi without a password" "$X/etc/sudoers.d/010_pi-nopasswd" '^pi ALL=\(ALL\) NOPASSWD: ALL$' 1
member "sudoers.d file is 0440" '^-r--r----- .* \./etc/sudoers\.d/010_pi-nopasswd$'
has "sshd: no password logins" "$X/etc/ssh/sshd_config.d/10-imgbuild.conf" '^PasswordAuthentication no$' 1
member "ssh.service enabled" '^l.* \./etc/systemd/system/(multi-user|sshd)\.target\.wants/ssh\.service -> |^l.* \./etc/systemd/system/sshd\.service -> '
no_member "the shared tarball has no SSH host key" '\./etc/ssh/ssh_host_'
member "host keys are made at first boot" '\./etc/systemd/system/multi-user\.target\.wants/imgbuild-ssh-keygen\.service -> '
member "time zone Europe/London" '^l.* \./etc/localtime -> /usr/share/zoneinfo/Europe/London$'
has "LANG=en_GB.UTF-8" "$X/etc/default/locale" '^LANG=en_GB\.UTF-8$' 1
has "en_GB.UTF-8 in locale.gen" "$X/etc/locale.gen" '^en_GB\.UTF-8 UTF-8$' 1
member "default target multi-user" '^l.* \./etc/systemd/system/default\.target -> /(usr/)?lib/systemd/system/multi-user\.target$'
no_member "apt-daily.timer disabled" '\./etc/systemd/system/timers\.target\.wants/apt-daily\.timer'
no_member "no package changelogs" '\./usr/share/doc/[^/]+/changelog[^/]*\.gz$'
no_member "no .debs in apt's cache" '\./var/cache/apt/archives/[^/]+\.deb$'
no_member "no node identity in the shared tarball (networkd, seed)" '\./etc/systemd/network/10-eth0\.network$|\./var/lib/cloud/seed/'

# ---------------------------------------------------------------------------------------------
# The NFS roots: the same, plus each node's identity.
for n in 1 2 3; do
  R=$OUT/nfs/worker-$n
  [ -d "$R" ] || { fail "no NFS root nfs/worker-$n"; continue; }
  has "worker-$n: /etc/hostname" "$R/etc/hostname" "^worker-$n\$" 1
  has "worker-$n: /etc/hosts 127.0.1.1" "$R/etc/hosts" "^127\.0\.1\.1[[:space:]]+worker-$n\.cluster\.lan[[:space:]]+worker-$n\$" 1
  [ "$(stat -c '%a %u %g' "$R/home/pi/.ssh/authorized_keys")" = "600 1000 1000" ] &&
    ok "worker-$n: authorized_keys 0600 1000:1000" ||
    fail "worker-$n: authorized_keys is $(stat -c '%a %u %g' "$R/home/pi/.ssh/authorized_keys"), want 600 1000 1000"
  # The node boots from its TFTP folder: its cmdline.txt mounts the NFS root and keeps the cgroup flags.
  C=$OUT/tftp/dc-a6-32-00-00-0$n/cmdline.txt
  [ "$(tr ' ' '\n' < "$C" | grep -cx 'cgroup_enable=memory')" = 1 ] && grep -q "root=/dev/nfs nfsroot=10.0.0.1:/srv/nfs/worker-$n," "$C" &&
    ok "worker-$n: TFTP cmdline.txt: NFS root, cgroup_enable=memory once" || fail "worker-$n: TFTP cmdline.txt: $(cat "$C")"
  has "worker-$n: SystemdCgroup = true" "$R/etc/containerd/config.toml" '^ *SystemdCgroup = true$' 1
  NET=$R/etc/systemd/network/10-eth0.network
  has "worker-$n: networkd Address=10.0.0.1$n/24" "$NET" "^Address=10\.0\.0\.1$n/24\$" 1
  has "worker-$n: networkd Gateway and DNS" "$NET" '^(Gateway|DNS)=10\.0\.0\.1$' 2
  [ -L "$R/etc/systemd/system/multi-user.target.wants/systemd-networkd.service" ] &&
    ok "worker-$n: systemd-networkd enabled" || fail "worker-$n: systemd-networkd.service not enabled"
  [ "$(readlink "$R/etc/systemd/system/networking.service")" = /dev/null ] &&
    ok "worker-$n: ifupdown's networking.service masked" || fail "worker-$n: networking.service not masked"
  KEY=$R/etc/ssh/ssh_host_ed25519_key
  if [ "$(stat -c '%a %u' "$KEY" 2> /dev/null)" = "600 0" ] && ssh-keygen -y -f "$KEY" > "$W/derived-$n.pub" 2> /dev/null &&
    [ "$(cut -d' ' -f1-2 "$W/derived-$n.pub")" = "$(cut -d' ' -f1-2 "$KEY.pub")" ]; then
    ok "worker-$n: Ed25519 host key pair (0600 root), accepted by ssh-keygen"
  else
    fail "worker-$n: no valid host key pair in /etc/ssh (private key $(stat -c '%a %u' "$KEY" 2>&1))"
  fi
  cut -d' ' -f2 "$KEY.pub" >> "$W/hostkeys.txt" 2> /dev/null || true
  SEED=$R/var/lib/cloud/seed/nocloud
  has "worker-$n: cloud-init instance-id" "$SEED/meta-data" "^instance-id: \"?worker-$n-pi-lab\"?\$" 1
  grep -h '^instance-id:' "$SEED/meta-data" >> "$W/instance-ids.txt" 2> /dev/null || true
  [ "$(head -n1 "$SEED/user-data" 2> /dev/null)" = "#cloud-config" ] && [ "$(stat -c '%a' "$SEED/user-data")" = 600 ] &&
    ok "worker-$n: user-data is #cloud-config, 0600" || fail "worker-$n: user-data missing, not #cloud-config or not 0600"
done
[ "$(sort -u "$W/hostkeys.txt" | wc -l)" = 3 ] && ok "three different host keys" ||
  fail "host keys are not all different: $(sort "$W/hostkeys.txt" | uniq -c | tr '\n' ' ')"
[ "$(sort -u "$W/instance-ids.txt" | wc -l)" = 3 ] && ok "three different instance-ids" ||
  fail "instance-ids are not all different: $(tr '\n' ' ' < "$W/instance-ids.txt")"

# ---------------------------------------------------------------------------------------------
# recipes/hypriot-worker.yaml, on a HypriotOS-shaped SD image made here from the sample base (its
# os-release, /boot as the FAT partition with HypriotOS's cmdline.txt and cloud-init seed, fstab by
# device name), pinned by its sha256 as the recipe pins the real download.
HB=$W/hypriot-base.yaml
cat > "$HB" << EOF
base: {tarball: "$SAMPLE/debian-bookworm-arm64-v2.tar.zst"}
steps:
  - files:
      dest: /usr/lib/os-release
      content: "PRETTY_NAME=\\"Raspbian GNU/Linux 10 (buster)\\"\\nID=raspbian\\nID_LIKE=debian\\nHYPRIOT_OS=\\"HypriotOS/arm64\\"\\nHYPRIOT_OS_VERSION=\\"v1.12.3\\"\\n"
  - delete: /boot/firmware
  - files:
      dest: /boot/cmdline.txt
      content: "dwc_otg.lpm_enable=0 console=serial0,115200 console=tty1 root=/dev/mmcblk0p2 rootfstype=ext4 cgroup_enable=cpuset cgroup_enable=memory swapaccount=1 elevator=deadline fsck.repair=yes rootwait\\n"
  - files: {dest: /boot/config.txt, content: "hdmi_force_hotplug=1\\nenable_uart=0\\n"}
  - files: {dest: /boot/user-data, content: "#cloud-config\\nhostname: black-pearl\\nusers:\\n  - name: pirate\\n    plain_text_passwd: hypriot\\n"}
  - files: {dest: /boot/meta-data, content: "instance-id: black-pearl\\n"}
  - files: {dest: /etc/fstab, content: "proc /proc proc defaults 0 0\\n/dev/mmcblk0p1 /boot vfat defaults 0 0\\n"}
outputs:
  - sdimage: {path: hypriotos.img, boot_size: 64}
EOF
if ! "$IMGBUILD" --out "$W/hbase" "$HB" > "$W/hbase.log" 2>&1; then
  fail "could not make the HypriotOS-shaped base image:"
  sed 's/^/       /' "$W/hbase.log" >&2
else
  HIMG=$W/hbase/hypriotos.img
  HSET=(--set "hypriot_image=$HIMG" --set "hypriot_sha256=$(sha256sum < "$HIMG" | cut -d' ' -f1)"
    --set "containerd_deb=$SAMPLE/debs/containerd.deb" --set "runc=$SAMPLE/debs/runc.deb"
    --set "ssh_key=$SAMPLE/demo_ed25519.pub")
  start=$(date +%s)
  if ! "$IMGBUILD" "${HSET[@]}" --out "$W/hyp" "$REPO/recipes/hypriot-worker.yaml" > "$W/hyp.log" 2>&1; then
    fail "imgbuild recipes/hypriot-worker.yaml failed:"
    sed 's/^/       /' "$W/hyp.log" >&2
  else
    ok "imgbuild recipes/hypriot-worker.yaml: $(cd "$W/hyp" && ls *.img | tr '\n' ' ')($(($(date +%s) - start)) s)"
    if grep -qi 'warning' "$W/hyp.log"; then
      fail "the HypriotOS build warned:"
      grep -i warning "$W/hyp.log" | sed 's/^/       /' >&2
    fi
    H=$W/hyp/hypriot-2.img
    # Read back with e2fsprogs and mtools, at the partitions' offsets as sfdisk reports them.
    starts=($(sfdisk --json "$H" | jq -r '.partitiontable.partitions[].start'))
    hcat() { # hcat PATH: a file of the image, from the FAT partition for /boot/*, else from the ext4 root
      case $1 in
        /boot/*) mtype -i "$H@@$((starts[0] * 512))" "::${1#/boot/}" 2> /dev/null || true ;;
        *) debugfs -R "cat $1" "$H?offset=$((starts[1] * 512))" 2> /dev/null || true ;;
      esac
    }
    "$IMGBUILD" inspect "$H" | grep -q 'hypriotos' && ok "hypriot-2.img is read as HypriotOS" ||
      fail "imgbuild inspect does not call hypriot-2.img HypriotOS: $("$IMGBUILD" inspect "$H" 2>&1 | head -n 5)"
    hcat /boot/cmdline.txt > "$W/h-cmdline"
    bad=""
    for flag in cgroup_enable=cpuset cgroup_enable=memory cgroup_memory=1 swapaccount=1 root=/dev/mmcblk0p2 rootwait; do
      [ "$(words "$W/h-cmdline" "$flag")" = 1 ] || bad="$bad $flag"
    done
    [ -z "$bad" ] && [ "$(wc -l < "$W/h-cmdline")" = 1 ] && ok "HypriotOS cmdline.txt: one line, each flag once: $(cat "$W/h-cmdline")" ||
      fail "HypriotOS cmdline.txt lacks or repeats:$bad: $(cat "$W/h-cmdline")"
    [ "$(hcat /etc/hostname)" = hypriot-2 ] && ok "hostname hypriot-2" || fail "hostname is '$(hcat /etc/hostname)'"
    hcat /boot/meta-data | grep -q '^instance-id: "hypriot-2-hypriot-lab"$' &&
      hcat /boot/user-data | grep -q imgbuild-first-boot && ! hcat /boot/user-data | grep -q plain_text_passwd &&
      ok "/boot/user-data and meta-data: the recipe's seed, where HypriotOS's cloud-init reads it" ||
      fail "/boot seed: $(hcat /boot/meta-data) / $(hcat /boot/user-data | head -n 3)"
    hcat /etc/passwd | grep -q '^pirate:x:1000:1000:' && hcat /etc/shadow | grep -q '^pirate:!:' &&
      ok "pirate: uid 1000, password locked" || fail "pirate: $(hcat /etc/passwd | grep pirate) $(hcat /etc/shadow | grep pirate | cut -d: -f1-2)"
    [ "$(hcat /home/pirate/.ssh/authorized_keys)" = "$PUBKEY" ] && ok "pirate's authorized_keys holds the key" ||
      fail "pirate's authorized_keys: $(hcat /home/pirate/.ssh/authorized_keys)"
    debugfs -R "ls -l /etc/systemd/network" "$H?offset=$((starts[1] * 512))" > "$W/h-net.ls" 2> /dev/null || true
    net=$(grep -oE '[^ /]+\.network *$' "$W/h-net.ls" | head -n1 | tr -d ' ')
    hcat "/etc/systemd/network/$net" | grep -qx 'Address=192.168.1.22/24' && ok "$net: Address=192.168.1.22/24" ||
      fail "no static address 192.168.1.22/24 in /etc/systemd/network ($(tr '\n' ' ' < "$W/h-net.ls"))"
    hcat /etc/containerd/config.toml | grep -qE '^ *SystemdCgroup = true$' && ok "containerd config.toml: SystemdCgroup = true" ||
      fail "no SystemdCgroup = true in the HypriotOS image's config.toml"
    # hcat prints nothing when it cannot read: each name must be the node's own, not merely differ.
    h1=$(H=$W/hyp/hypriot-1.img hcat /etc/hostname) h2=$(hcat /etc/hostname)
    [ "$h1" = hypriot-1 ] && [ "$h2" = hypriot-2 ] &&
      ok "hypriot-1.img and hypriot-2.img carry their own host names" || fail "host names: hypriot-1.img '$h1', hypriot-2.img '$h2'"
  fi
fi

finish demo_recipes
