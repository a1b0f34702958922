#!/usr/bin/env bash
# End-to-end: a cluster node imgbuild makes boots and is what its recipe says, seen from outside.
# A Debian 12 amd64 root (tests/e2e/lib/debian_root.sh: debootstrap with the kernel, cloud-init,
# systemd-resolved, sudo) gets the node steps of tests/e2e/node/recipe.yaml (hostname, users, ssh,
# networkd, kubernetes_prereqs, cmdline cgroups, cloud_init, containerd from Debian's own amd64 .debs
# fetched with `apt-get download containerd runc`) and becomes an SD card image. QEMU (TCG) boots it
# as a Pi's firmware would (kernel and initrd read out of the image, its cmdline.txt appended) on user
# networking with the node's SSH port forwarded to 127.0.0.1 only. Over SSH, as the recipe's user with
# a key this test makes, it checks:
#   - key login works; a password login is refused by sshd (it offers no password method); the host
#     key is the one built into the image;
#   - the hostname; the static address of the networkd unit (10.0.2.20, not the 10.0.2.15 QEMU's DHCP
#     would give), the default route and DNS from it, applied by networkd with no DHCP lease;
#   - sudo without a password; no failed units;
#   - containerd active and answering `ctr version`, with the systemd cgroup driver; runc on the PATH;
#   - the four cgroup flags in /proc/cmdline; overlay and br_netfilter loaded, the k8s sysctls, no swap;
#   - cloud-init done from the NoCloud seed, its runcmd run once; after a reboot, still once.
#
# Needs root (debootstrap): exit 77 (skipped) without it, and when the Debian mirror cannot be reached
# (debootstrap, apt-get download or the install of a missing tool fails); any other problem fails.
# IMGBUILD_BOOT_TIMEOUT (default 900) bounds each wait for the node to answer SSH.
#
# usage: bash tests/e2e/boot_node.sh path/to/imgbuild
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib/common.sh
. "$HERE/lib/common.sh"
e2e_args "$@"
need_root "debootstrap, chroot"
export LC_ALL=C.UTF-8
# shellcheck source=lib/qemu.sh
. "$HERE/lib/qemu.sh"

# Change ROOT_VERSION whenever ROOT_PACKAGES change: it names the cached root.
ROOT_VERSION=bookworm-amd64-node-v1
ROOT_PACKAGES=(linux-image-amd64 systemd-sysv openssh-server udev kmod initramfs-tools
  cloud-init python3-cffi-backend systemd-resolved dbus sudo iproute2 procps libseccomp2)
BOOT_TIMEOUT=${IMGBUILD_BOOT_TIMEOUT:-900}
MAC=52:54:00:12:34:56
NODE_IP=10.0.2.20
NODE_NAME=imgnode
NODE_USER=ops
CGROUP_FLAGS=(cgroup_enable=cpuset cgroup_enable=memory cgroup_memory=1 swapaccount=1)

# --- 1. Tools -------------------------------------------------------------------------------------
apt_need qemu-system-x86_64 qemu-system-x86
apt_need ssh openssh-client
apt_need ssh-keygen openssh-client
apt_install_needed
qemu_work_dir node

# --- 2. The Debian root (cached), the packages, the key ------------------------------------------
boot_root "$ROOT_VERSION" "${ROOT_PACKAGES[@]}"

# apt's _apt user writes the downloads.
mkdir -p "$W/debs" && chmod 777 "$W/debs"
if ! (cd "$W/debs" && apt-get download containerd runc) > "$W/apt.log" 2>&1; then
  echo "SKIP: apt-get download containerd runc failed: $(tail -n1 "$W/apt.log")"
  exit 77
fi
containerd_deb=$(ls "$W"/debs/containerd_*.deb)
runc_deb=$(ls "$W"/debs/runc_*.deb)
echo "packages: $(basename "$containerd_deb"), $(basename "$runc_deb")"

ssh-keygen -q -t ed25519 -N '' -C imgbuild-boot-node -f "$W/id_ed25519"

# --- 3. Build the image, read what the firmware would out of it ---------------------------------
t0=$(now)
"$IMGBUILD" --out "$W/out" --set "base_tarball=$TARBALL" --set "pubkey=$W/id_ed25519.pub" \
  --set "containerd_deb=$containerd_deb" --set "runc_deb=$runc_deb" --set "mac=$MAC" \
  --set "ip=$NODE_IP/24" --set "hostname=$NODE_NAME" "$HERE/node/recipe.yaml" > "$W/build.log" 2>&1 ||
  { cat "$W/build.log" >&2; die "imgbuild could not build tests/e2e/node/recipe.yaml"; }
t_build=$(secs "$t0" "$(now)")
# A warning here is a node that boots wrong (cloud_init warns of a first boot that would fail).
if grep -q '^warning:' "$W/build.log"; then fail "imgbuild warned: $(grep '^warning:' "$W/build.log")"; else
  ok "imgbuild built the node without warnings"
fi
IMG=$W/out/node.img
[ -s "$IMG" ] || die "no node.img in the output folder: $(ls "$W/out")"
echo "image: $(du -h --apparent-size "$IMG" | cut -f1) ($(du -h "$IMG" | cut -f1) on disk) in ${t_build}s"

boot_files "$IMG"
"$IMGBUILD" cat "$IMG:/etc/ssh/ssh_host_ed25519_key.pub" > "$W/host_key.pub" ||
  die "imgbuild cat IMG:/etc/ssh/ssh_host_ed25519_key.pub failed"

# --- 4. Boot it, with SSH forwarded from the loopback address only --------------------------------
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2> /dev/null && return
  local p
  for _ in $(seq 100); do
    p=$((20000 + RANDOM % 20000))
    ss -Htln "sport = :$p" | grep -q . || { echo "$p"; return; }
  done
  return 1
}
PORT=$(free_port) || die "no free TCP port on 127.0.0.1"
SSH_OPTS=(-p "$PORT" -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null
  -o LogLevel=ERROR -o ConnectTimeout=10 -o ServerAliveInterval=10 -o ServerAliveCountMax=6)
# on_node CMD...: runs CMD on the node as NODE_USER with the test's key; its stdout, and its status.
on_node() { timeout 300 ssh "${SSH_OPTS[@]}" -o IdentitiesOnly=yes -i "$W/id_ed25519" "$NODE_USER@127.0.0.1" "$@"; }

echo "boot: qemu-system-x86_64 -accel tcg, -kernel $vmlinuz -initrd $initrd -append \"$cmdline\", ssh on 127.0.0.1:$PORT"
: > "$W/serial.log"
# -nodefaults: no floppy, CD-ROM, VGA or default NIC; the image is the only disk, the serial port the
# console, one virtio NIC with the recipe's MAC. The guest side of the forward is the static address:
# SSH only answers once the networkd unit applied it.
qemu-system-x86_64 -accel tcg -m 1024 -smp 2 -nographic -nodefaults \
  -kernel "$W/vmlinuz" -initrd "$W/initrd.img" -append "$cmdline" \
  -drive "file=$IMG,format=raw,if=virtio" \
  -netdev "user,id=n,net=10.0.2.0/24,hostfwd=tcp:127.0.0.1:$PORT-$NODE_IP:22" \
  -device "virtio-net-pci,netdev=n,mac=$MAC" \
  -serial "file:$W/serial.log" -monitor none -display none > "$W/qemu.log" 2>&1 &
QEMU_PID=$!

# A boot that went wrong, from the console (from line FROM on), or nothing while it goes on.
console_trouble() {
  local text
  text=$(serial_text | tail -n +"$1")
  if grep -qaE 'Failed to mount .* as root file system|ALERT! .* does not exist' <<< "$text"; then
    echo "the initramfs could not mount the root file system"
  elif grep -qa 'Kernel panic' <<< "$text"; then echo "kernel panic"
  elif grep -qaE 'Give root password|emergency mode|Dropping to a shell|\(initramfs\)' <<< "$text"; then
    echo "emergency shell"
  fi
}
# wait_ssh FROM_LINE [NOT_BOOT_ID]: until a key login works (on a boot other than NOT_BOOT_ID);
# prints the boot id, or fails with the reason.
wait_ssh() {
  local from=$1 not=${2:-} deadline=$(($(date +%s) + BOOT_TIMEOUT)) id trouble
  while :; do
    if id=$(on_node cat /proc/sys/kernel/random/boot_id 2> /dev/null) && [ -n "$id" ] && [ "$id" != "$not" ]; then
      echo "$id"
      return 0
    fi
    trouble=$(console_trouble "$from")
    [ -z "$trouble" ] || { echo "$trouble"; return 1; }
    kill -0 "$QEMU_PID" 2> /dev/null || { echo "qemu exited: $(head -c 2000 "$W/qemu.log")"; return 1; }
    [ "$(date +%s)" -lt "$deadline" ] || { echo "no SSH login within ${BOOT_TIMEOUT}s"; return 1; }
    sleep 3
  done
}

t0=$(now)
boot_id=$(wait_ssh 1) || { console_tail; die "boot: $boot_id"; }
t_boot=$(secs "$t0" "$(now)")
ok "boot: key login as $NODE_USER after ${t_boot}s"

# --- 5. The node, from outside --------------------------------------------------------------------
t0=$(now)
# cloud-init's last stage may still run: wait for it before judging anything it touches.
status=$(on_node cloud-init status --wait 2> "$W/ci.err" | tail -n1) || true
[ "$status" = "status: done" ] && ok "cloud-init: $status" || fail "cloud-init: '$status' $(cat "$W/ci.err")"

# SSH: a password is refused before it is asked: sshd offers publickey only.
if ssh "${SSH_OPTS[@]}" -o PubkeyAuthentication=no -o PreferredAuthentications=password,keyboard-interactive \
  "$NODE_USER@127.0.0.1" true > "$W/pw.log" 2>&1; then
  fail "ssh: a login without the key succeeded"
elif grep -q 'Permission denied (publickey)' "$W/pw.log"; then
  ok "ssh: a password login is refused: $(grep -o 'Permission denied.*' "$W/pw.log")"
else
  fail "ssh: a password login failed, but not as refused by sshd: $(cat "$W/pw.log")"
fi
# The host key is the one the ssh step wrote into the image (host_keys: generate).
host_key_is_built() {
  local want got
  want=$(awk '{print $1, $2}' "$W/host_key.pub")
  got=$(ssh-keyscan -p "$PORT" -t ed25519 127.0.0.1 2> /dev/null | awk '{print $2, $3}' || true)
  if [ -n "$got" ] && [ "$got" = "$want" ]; then ok "$1: sshd presents the host key built into the image"; else
    fail "$1: sshd presents '$got', not the image's '$want'"
  fi
  # ssh-keyscan prints nothing on a refused connection too: the same scan must first have found the
  # ed25519 key, on the same connection attempt, for silence about the others to mean anything.
  local all
  all=$(ssh-keyscan -p "$PORT" -t ed25519,rsa,ecdsa 127.0.0.1 2> /dev/null | awk '{print $2, $3}' || true)
  if [ "$all" = "$want" ]; then
    ok "$1: and no other host key (one scan for ed25519, rsa, ecdsa found only the image's)"
  elif [ -z "$all" ]; then
    fail "$1: the scan for ed25519, rsa and ecdsa keys got no answer from sshd"
  else
    fail "$1: sshd has other host keys too: $(awk '{print $1}' <<< "$all" | tr '\n' ' ')"
  fi
}
host_key_is_built boot
pwauth=$(on_node sudo -n sshd -T 2> /dev/null | grep -i '^passwordauthentication ' || true)
[ "$pwauth" = "passwordauthentication no" ] && ok "sshd -T: $pwauth" || fail "sshd -T says '$pwauth'"

[ "$(on_node sudo -n id -un 2>&1)" = root ] && ok "sudo without a password" || fail "sudo -n does not work for $NODE_USER"

host=$(on_node hostname 2>&1 || true)
[ "$host" = "$NODE_NAME" ] && ok "hostname is $host" || fail "hostname is '$host', not $NODE_NAME"

# Network: the static address on the NIC with the recipe's MAC, nothing from DHCP.
on_node ip -4 -o addr show > "$W/addr.txt" 2>&1 || true
iface=$(on_node ip -o link show 2> /dev/null | awk -v m="$MAC" '$0 ~ "link/ether " m {sub(/:$/, "", $2); print $2}' || true)
if grep -qE "^[0-9]+: $iface +inet $NODE_IP/24 " "$W/addr.txt"; then ok "ip -4 addr: $iface has $NODE_IP/24"; else
  fail "$NODE_IP/24 is not on the NIC with MAC $MAC ('$iface'): $(cat "$W/addr.txt")"
fi
if grep -E "^[0-9]+: $iface " "$W/addr.txt" | grep -v " $NODE_IP/24 " | grep -q . || grep -q dynamic "$W/addr.txt"; then
  fail "other or DHCP addresses besides the static one: $(cat "$W/addr.txt")"
else
  ok "$iface has no other IPv4 address and none from DHCP"
fi
route=$(on_node ip -4 route show default 2>&1 || true)
[[ "$route" == "default via 10.0.2.2 dev $iface "* ]] && ok "ip route: $route" || fail "default route: '$route'"
netfile=$(on_node networkctl status --no-pager "$iface" 2> /dev/null | sed -nE 's/^ *Network File: //p' || true)
[[ "$netfile" == /etc/systemd/network/*.network ]] && ok "networkd applied $netfile" || fail "networkd's network file for $iface: '$netfile'"
on_node cat "$netfile" > "$W/netfile.txt" 2>&1 || true
grep -qx "MACAddress=$MAC" "$W/netfile.txt" && grep -qx "Address=$NODE_IP/24" "$W/netfile.txt" &&
  ok "$netfile matches MAC $MAC and sets $NODE_IP/24" || fail "$netfile: $(cat "$W/netfile.txt")"
echo "  network files: $(on_node ls /etc/systemd/network /run/systemd/network /etc/network/interfaces.d 2>&1 | tr '\n' ' ')"
resolv=$(on_node readlink /etc/resolv.conf 2>&1 || true)
dns=$(on_node resolvectl dns "$iface" 2>&1 || true)
[[ "$resolv" == */run/systemd/resolve/stub-resolv.conf && "$dns" == *10.0.2.3* ]] &&
  ok "resolved: /etc/resolv.conf -> $resolv; $dns" || fail "resolver: /etc/resolv.conf -> '$resolv'; '$dns'"

# containerd and runc.
active=$(on_node systemctl is-active containerd 2>&1 || true)
[ "$active" = active ] && ok "containerd is active" || fail "containerd is '$active'"
server=$(on_node sudo -n ctr version 2>&1 | awk '/^Server:/ {s = 1} s && /Version:/ {print $2; exit}' || true)
[ -n "$server" ] && ok "ctr version: containerd $server answers" || fail "ctr version: no server version"
on_node sudo -n containerd config dump 2> /dev/null | grep -qE '^ *SystemdCgroup = true' &&
  ok "containerd runs runc with SystemdCgroup = true" || fail "containerd's config has no SystemdCgroup = true"
# root's PATH (sudo's secure_path, as systemd's for containerd): Debian puts runc in /usr/sbin.
runc=$(on_node "sudo -n sh -c 'command -v runc && runc --version | head -n1'" 2>&1 | tr '\n' ' ' || true)
[[ "$runc" == /*runc\ runc\ version\ * ]] && ok "runc on root's PATH: $runc" || fail "runc: '$runc'"

# Kernel: the command line, modules, sysctls, swap.
proc_cmdline=$(on_node cat /proc/cmdline 2>&1 || true)
for flag in "${CGROUP_FLAGS[@]}"; do
  [[ " $proc_cmdline " == *" $flag "* ]] || fail "/proc/cmdline has no $flag: $proc_cmdline"
done
[[ " $proc_cmdline " == *" ${CGROUP_FLAGS[*]} "* ]] && ok "/proc/cmdline has ${CGROUP_FLAGS[*]}"
on_node sudo -n lsmod > "$W/lsmod.txt" 2>&1 || true
for m in overlay br_netfilter; do
  grep -q "^$m " "$W/lsmod.txt" && on_node test -d "/sys/module/$m" && ok "module $m is loaded" || fail "module $m is not loaded"
done
for kv in net.ipv4.ip_forward net.bridge.bridge-nf-call-iptables net.bridge.bridge-nf-call-ip6tables; do
  v=$(on_node sudo -n sysctl -n "$kv" 2>&1 || true)
  [ "$v" = 1 ] && ok "sysctl $kv = 1" || fail "sysctl $kv = '$v'"
done
swaps=$(on_node tail -n +2 /proc/swaps 2>&1 || true)
[ -z "$swaps" ] && ok "no swap" || fail "swap is on: $swaps"

# cloud-init: the seed the step wrote, its runcmd run once.
ds=$(on_node cat /run/cloud-init/result.json 2>&1 | grep -o '"datasource": *"[^"]*"' || true)
[[ "$ds" == *NoCloud* ]] && ok "cloud-init: $ds" || fail "cloud-init's datasource: '$ds'"
runs=$(on_node cat /var/lib/imgbuild-runcmd.log 2>&1 || true)
[ "$(grep -c '^runcmd ran at boot ' <<< "$runs")" = 1 ] && [ "$(wc -l <<< "$runs")" = 1 ] &&
  ok "runcmd ran once: $runs" || fail "runcmd log: '$runs'"

failed_units() {
  local failed
  failed=$(on_node systemctl list-units --failed --plain --no-legend 2>&1 || true)
  if [ -z "$failed" ]; then ok "$1: no failed units"; else
    fail "$1: failed units: $failed"
    for u in $(awk '{print $1}' <<< "$failed"); do
      on_node sudo -n journalctl -b --no-pager -n 20 -u "$u" 2>&1 | sed 's/^/  journal: /' >&2 || true
    done
  fi
}
failed_units boot
t_checks=$(secs "$t0" "$(now)")

# --- 6. Reboot: cloud-init must not run the runcmd again ------------------------------------------
t0=$(now)
lines=$(serial_text | wc -l)
on_node sudo -n systemctl reboot > /dev/null 2>&1 || true
t_reboot=-
if boot_id2=$(wait_ssh "$lines" "$boot_id"); then
  t_reboot=$(secs "$t0" "$(now)")
  ok "reboot: key login again after ${t_reboot}s (boot $boot_id2)"
  status=$(on_node cloud-init status --wait 2> /dev/null | tail -n1) || true
  [ "$status" = "status: done" ] && ok "cloud-init after the reboot: $status" || fail "cloud-init after the reboot: '$status'"
  runs=$(on_node cat /var/lib/imgbuild-runcmd.log 2>&1 || true)
  [ "$(wc -l <<< "$runs")" = 1 ] && [[ "$runs" == *"$boot_id" ]] &&
    ok "runcmd still ran once, at the first boot" || fail "runcmd log after the reboot: '$runs'"
  host_key_is_built reboot
  active=$(on_node systemctl is-active containerd 2>&1 || true)
  [ "$active" = active ] && ok "containerd is active after the reboot" || fail "containerd after the reboot: '$active'"
  failed_units reboot
else
  console_tail
  fail "reboot: $boot_id2"
fi
stop_qemu

echo "timings: debootstrap ${T_DEBOOT}, imgbuild build ${t_build}s, boot to SSH ${t_boot}s," \
  "checks ${t_checks}s, reboot to SSH ${t_reboot}s"
[ "$FAILS" = 0 ] || console_tail
finish boot_node
