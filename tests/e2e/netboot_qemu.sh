#!/usr/bin/env bash
# End-to-end: a diskless node boots from what the `netboot` output writes. The Debian 12 amd64 root
# of boot_qemu.sh (debootstrap, cached; tests/e2e/lib/debian_root.sh) is built by
# tests/e2e/netboot_node/recipe.yaml into one node's TFTP folder (tftp/52-54-00-12-34-56/: the
# kernel, the initrd and the node's cmdline.txt) and NFS root (nfs/netnode/), and then:
#   - NFS: nfs-ganesha (FSAL VFS, NFSv3 and v4) serves nfs/netnode/ at the path the generated
#     `exports` line names (/srv/nfs/netnode), with that line's rw and no_root_squash; rpcbind answers
#     the portmapper queries of NFSv3's mount;
#   - TFTP and boot: qemu-system-x86_64 (TCG) boots from its NIC (SeaBIOS + iPXE) off QEMU's own TFTP
#     server, serving the generated tftp/ folder. The boot script plays a Pi 4's firmware with
#     TFTP_PREFIX=2: it loads vmlinuz and initrd.img from the folder named by the NIC's MAC
#     (${mac:hexhyp}) and boots with that folder's cmdline.txt. IMGBUILD_NETBOOT_LOADER=kernel gives
#     QEMU the folder's files as -kernel/-initrd/-append instead.
# QEMU's user network shows the host's loopback to the guest as 10.0.2.2, the recipe's server. The
# servers and QEMU run in a network and mount namespace of their own (unshare): only a loopback
# there, so nothing is reachable from outside, no port of the machine's is taken, and rpcbind's
# socket under /run is a private one.
# Passes when the console shows the node's login prompt (getty on ttyS0) and the node reports / as
# 10.0.2.2:/srv/nfs/netnode over NFSv3, its own host name, no failed unit, and a file it wrote
# appears, owned by root, in nfs/netnode/ on the host.
#
# share: the recipe's is auto (every /usr file a hardlink into nfs/.store); with
# IMGBUILD_NETBOOT_SHARE=export (ctest: e2e.netboot_qemu_export) /usr is nfs/.usr, served as a second,
# read-only export, and the node must show it mounted read-only at /usr from the initramfs on.
#
# NFS version: the recipe's nfs_version is 3 (override: IMGBUILD_NETBOOT_NFS_VERSION=4). Debian's
# initramfs mounts root=/dev/nfs with klibc's nfsmount, which knows NFSv2 and v3 only: with 4 it
# stops at "nfsmount: bad NFS version '4'".
#
# Exit 77 (skipped): not root; packages cannot be installed; the Debian root cannot be made
# (debian_root.sh's own 77); unshare cannot make the namespaces; rpcbind or ganesha cannot run here
# (their own error is shown). Anything else that goes wrong fails.
#
# usage: bash tests/e2e/netboot_qemu.sh path/to/imgbuild
set -euo pipefail

NODE=netnode
MAC=52:54:00:12:34:56
FOLDER=52-54-00-12-34-56 # tftp/<MAC with dashes> (prefix: mac)
EXPORT=/srv/nfs/$NODE    # export_base/NODE: the path the node's nfsroot= names
SERVER=10.0.2.2
ROOT_VERSION=bookworm-amd64-minbase-kernel-v1
BOOT_TIMEOUT=${IMGBUILD_BOOT_TIMEOUT:-600}
LOADER=${IMGBUILD_NETBOOT_LOADER:-pxe}
NFS_VERSION=${IMGBUILD_NETBOOT_NFS_VERSION:-3}
SHARE=${IMGBUILD_NETBOOT_SHARE:-auto}
USR_EXPORT=/srv/nfs/.usr # share: export: export_base/.usr

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SELF=$HERE/$(basename "${BASH_SOURCE[0]}")
# shellcheck source=lib/common.sh
. "$HERE/lib/common.sh"
# shellcheck source=lib/qemu.sh
. "$HERE/lib/qemu.sh"

# --- In the private namespaces: serve and boot --------------------------------------------------
# Run as `bash netboot_qemu.sh --serve-and-boot WORKDIR` by the outer part below, under unshare.
# Writes WORKDIR/verdict ("pass" or what went wrong) and WORKDIR/milestones; exits 77 when a server
# cannot run here, 1 on a setup failure of its own.
if [ "${1:-}" = --serve-and-boot ]; then
  W=$2
  PIDS=()
  stop_all() {
    local i
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
      kill "${PIDS[$i]}" 2> /dev/null || true
      wait "${PIDS[$i]}" 2> /dev/null || true
    done
    PIDS=()
  }
  trap stop_all EXIT
  trap 'exit 143' TERM INT
  ip link set lo up
  # rpcbind's socket and state, ganesha's pid and D-Bus lookups: a /run of our own, so a host's
  # rpcbind (if any) is never touched.
  mount -t tmpfs -o mode=755 tmpfs /run

  # rpcbind: klibc's nfsmount asks the portmapper (port 111) for mountd's and nfsd's ports.
  rpcbind -f > "$W/rpcbind.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 50); do rpcinfo -p 127.0.0.1 > /dev/null 2>&1 && break; sleep 0.1; done
  if ! rpcinfo -p 127.0.0.1 > /dev/null 2>&1; then
    echo "SKIP: rpcbind does not answer on 127.0.0.1:111: $(head -c 500 "$W/rpcbind.log")"
    exit 77
  fi

  # ganesha, from the generated exports lines: each one's path as the NFS path clients mount (v3
  # MOUNT and v4 alike: Mount_Path_Pseudo), rw or ro and no_root_squash as the line says.
  ganesha_export() { # ID EXPORT_PATH FOLDER
    local line opts access=RO squash=Root_Squash
    line=$(awk -v p="$2" '$1 == p' "$W/out/netboot/exports")
    opts=$(sed -E 's/^[^ ]+ +[^(]*\(([^)]*)\).*/\1/' <<< "$line")
    [[ ",$opts," == *,rw,* ]] && access=RW
    [[ ",$opts," == *,no_root_squash,* ]] && squash=No_Root_Squash
    echo "nfs: $2 ($access, $squash) from out/nfs/$3" >&2
    cat << EOF
EXPORT {
    Export_Id = $1;
    Path = "$W/out/nfs/$3";
    Pseudo = "$2";
    Access_Type = $access;
    Squash = $squash;
    Protocols = 3, 4;
    Transports = TCP, UDP;
    SecType = sys;
    FSAL { Name = VFS; }
}
EOF
  }
  mkdir -p "$W/ganesha-recovery"
  cat > "$W/ganesha.conf" << EOF
NFS_CORE_PARAM {
    Protocols = 3, 4;
    Mount_Path_Pseudo = true;
    Enable_NLM = false;
    Enable_RQUOTA = false;
}
NFSV4 {
    Graceless = true;
    RecoveryRoot = "$W/ganesha-recovery";
}
NFS_KRB5 { Active_krb5 = false; }
LOG { Default_Log_Level = EVENT; }
EOF
  ganesha_export 1 "$EXPORT" "$NODE" >> "$W/ganesha.conf"
  if [ "$SHARE" = export ]; then ganesha_export 2 "$USR_EXPORT" .usr >> "$W/ganesha.conf"; fi
  ganesha.nfsd -F -f "$W/ganesha.conf" -L "$W/ganesha.log" -p "$W/ganesha.pid" > "$W/ganesha.out" 2>&1 &
  PIDS+=($!)
  ganesha_pid=$!
  for _ in $(seq 150); do
    rpcinfo -T tcp 127.0.0.1 mountd 3 > /dev/null 2>&1 && rpcinfo -T tcp 127.0.0.1 nfs 3 > /dev/null 2>&1 && break
    kill -0 "$ganesha_pid" 2> /dev/null || break
    sleep 0.2
  done
  if ! rpcinfo -T tcp 127.0.0.1 mountd 3 > /dev/null 2>&1 || ! rpcinfo -T tcp 127.0.0.1 nfs 3 > /dev/null 2>&1; then
    errors=$(grep -aE ':(CRIT|MAJ|FATAL) :' "$W/ganesha.log" | grep -avE 'dbus|DBUS' | sed -E 's/^.*\[main\] //' | tail -n 10)
    echo "ganesha's errors:"
    echo "${errors:-$(tail -n 10 "$W/ganesha.log" "$W/ganesha.out")}" | sed 's/^/  /'
    if grep -aq 'Config File' <<< "$errors"; then
      echo "FAIL - ganesha rejects the test's configuration ($W/ganesha.conf)"
      exit 1
    fi
    echo "SKIP: nfs-ganesha does not serve NFSv3 on 127.0.0.1 here (errors above)"
    exit 77
  fi
  echo "nfs: ganesha $(ganesha.nfsd -v 2> /dev/null | grep -oE "V[0-9][0-9.]*" | head -n1) serves them"

  # The boot.
  cmdline=$(tr '\n' ' ' < "$W/out/tftp/$FOLDER/cmdline.txt" | sed 's/ *$//')
  nic="user,model=virtio-net-pci,mac=$MAC"
  if [ "$LOADER" = pxe ]; then
    # QEMU's TFTP server serves a copy (hardlinks) of the generated tftp/ folder plus the boot script,
    # which stands in for the Pi firmware: files from the MAC's folder, that folder's cmdline.txt.
    cp -al "$W/out/tftp" "$W/tftp-served"
    {
      echo '#!ipxe'
      echo 'echo imgbuild netboot: TFTP folder ${mac:hexhyp}/'
      echo "kernel \${mac:hexhyp}/vmlinuz $cmdline"
      echo 'initrd ${mac:hexhyp}/initrd.img'
      echo 'boot'
    } > "$W/tftp-served/boot.ipxe"
    boot=(-boot n -nic "$nic,tftp=$W/tftp-served,bootfile=boot.ipxe")
  else
    boot=(-kernel "$W/out/tftp/$FOLDER/vmlinuz" -initrd "$W/out/tftp/$FOLDER/initrd.img" -append "$cmdline" -nic "$nic")
  fi
  : > "$W/serial.log"
  t0=$(now)
  qemu-system-x86_64 -accel tcg -m 1024 -smp 2 -nographic -nodefaults -no-reboot "${boot[@]}" \
    -serial "file:$W/serial.log" -monitor none -display none > "$W/qemu.log" 2>&1 &
  PIDS+=($!)
  qemu_pid=$!

  # What the console shows so far: a verdict, or nothing while the boot goes on. Failures win.
  # shellcheck disable=SC2317 # called by qemu_wait_console
  verdict() {
    local f=$W/serial.log
    if grep -qaE 'ipxe\.org/[0-9a-f]{8}|No more network devices|No bootable device' "$f"; then
      echo "the network boot failed: $(grep -aoE '[^[:cntrl:]]*(ipxe\.org/[0-9a-f]{8}|No more network devices|No bootable device)[^[:cntrl:]]*' "$f" | head -n1)"
    elif [ "$(grep -ac 'Retrying nfs mount' "$f")" -ge 5 ]; then
      echo "the initramfs cannot mount the NFS root: $(grep -aE 'nfsmount|mount call failed|NFS' "$f" | grep -avE 'Retrying|Running /scripts' | tail -n1 | tr -d '\r')"
    elif grep -qaE 'ALERT! |Failed to mount .* as root file system' "$f"; then echo "the initramfs could not mount the root file system"
    elif grep -qa 'Kernel panic' "$f"; then echo "kernel panic: $(grep -a 'Kernel panic' "$f" | head -n1 | tr -d '\r')"
    elif grep -qaE 'Give root password|emergency mode|Dropping to a shell|\(initramfs\)|Cannot open access to console' "$f"; then
      echo "emergency shell"
    elif grep -qa 'IMGBUILD-NETBOOT-OK' "$f" && grep -qa "$NODE login:" "$f"; then echo pass
    fi
  }
  # shellcheck disable=SC2317 # called by milestones
  milestone() { # NAME PATTERN: the first time PATTERN shows on the console
    grep -q "^$1 " "$W/milestones" 2> /dev/null && return
    if grep -qa "$2" "$W/serial.log"; then echo "$1 $(secs "$t0" "$(now)")" >> "$W/milestones"; fi
  }
  # shellcheck disable=SC2317 # called by qemu_wait_console
  milestones() {
    milestone kernel 'Linux version'
    milestone nfs-root 'Running /scripts/nfs-bottom'
    milestone marker 'IMGBUILD-NETBOOT-OK'
    milestone login "$NODE login:"
  }
  : > "$W/milestones"
  qemu_wait_console "$qemu_pid" "$BOOT_TIMEOUT" verdict milestones
  echo "$CONSOLE_RESULT" > "$W/verdict"
  echo "boot $(secs "$t0" "$(now)")" >> "$W/milestones"
  exit 0
fi

# --- 1. Tools -------------------------------------------------------------------------------------
e2e_args "$@"
need_root "debootstrap; real owners in the NFS root; namespaces"
case $LOADER in pxe | kernel) ;; *) echo "FAIL - IMGBUILD_NETBOOT_LOADER is '$LOADER', not pxe or kernel"; exit 1 ;; esac
case $SHARE in auto | export) ;; *) echo "FAIL - IMGBUILD_NETBOOT_SHARE is '$SHARE', not auto or export"; exit 1 ;; esac
export LC_ALL=C.UTF-8

apt_need qemu-system-x86_64 qemu-system-x86
[ -e /usr/lib/ipxe/qemu/efi-virtio.rom ] || [ -e /usr/share/qemu/efi-virtio.rom ] || APT_NEED+=(ipxe-qemu)
apt_need ganesha.nfsd nfs-ganesha
ls /usr/lib/*/ganesha/libfsalvfs.so > /dev/null 2>&1 || APT_NEED+=(nfs-ganesha-vfs)
apt_need rpcbind rpcbind
apt_need unshare util-linux
apt_need ip iproute2
# Should apt start rpcbind or ganesha, they run in the machine's namespaces: the test runs its own.
apt_install_needed
# QEMU_PID: the inner part below (the servers and QEMU, in their namespaces).
qemu_work_dir netboot-qemu
trap 'exit 143' TERM INT

# --- 2. The Debian root, as a tarball (cached; the same as boot_qemu.sh's) ------------------------
boot_root "$ROOT_VERSION" linux-image-amd64 systemd-sysv openssh-server udev kmod initramfs-tools

# --- 3. Build the node's TFTP folder and NFS root, and look at them --------------------------------
t0=$(now)
"$IMGBUILD" --out "$W/out" --set "base_tarball=$TARBALL" --set "nfs_version=$NFS_VERSION" --set "share=$SHARE" \
  "$HERE/netboot_node/recipe.yaml" > "$W/build.log" 2>&1 ||
  { cat "$W/build.log" >&2; die "imgbuild could not build tests/e2e/netboot_node/recipe.yaml"; }
t_build=$(secs "$t0" "$(now)")
echo "build: $(du -sh "$W/out" | cut -f1) in ${t_build}s"
T=$W/out/tftp/$FOLDER
N=$W/out/nfs/$NODE
[ -d "$T" ] || die "no TFTP folder tftp/$FOLDER: $(ls "$W/out/tftp" 2> /dev/null | tr '\n' ' ')"
[ -d "$N" ] || die "no NFS root nfs/$NODE: $(ls "$W/out/nfs" 2> /dev/null | tr '\n' ' ')"

# The kernel and initrd the TFTP folder carries are the root's own (the recipe's boot folder links).
mkdir -p "$W/ref"
tar -xf "$TARBALL" -C "$W/ref" --wildcards './boot/vmlinuz-*' './boot/initrd.img-*' ||
  die "no /boot/vmlinuz-* or /boot/initrd.img-* in $TARBALL"
vmlinuz=$(cd "$W/ref/boot" && ls vmlinuz-* | sort -V | tail -n1)
initrd=$(cd "$W/ref/boot" && ls initrd.img-* | sort -V | tail -n1)
cmp -s "$T/vmlinuz" "$W/ref/boot/$vmlinuz" && ok "tftp/$FOLDER/vmlinuz is the root's $vmlinuz" ||
  fail "tftp/$FOLDER/vmlinuz is not the root's /boot/$vmlinuz"
cmp -s "$T/initrd.img" "$W/ref/boot/$initrd" && ok "tftp/$FOLDER/initrd.img is the root's $initrd" ||
  fail "tftp/$FOLDER/initrd.img is not the root's /boot/$initrd"
rm -rf "$W/ref"

cmdline=$(tr '\n' ' ' < "$T/cmdline.txt" | sed 's/ *$//')
echo "cmdline.txt: $cmdline"
[ "$(wc -l < "$T/cmdline.txt")" = 1 ] && ok "cmdline.txt is one line" || fail "cmdline.txt has $(wc -l < "$T/cmdline.txt") lines"
grep -qE " root=/dev/nfs nfsroot=$SERVER:$EXPORT,vers=$NFS_VERSION(,| |\$)" <<< " $cmdline" &&
  ok "cmdline.txt boots from NFS: root=/dev/nfs nfsroot=$SERVER:$EXPORT,vers=$NFS_VERSION" ||
  fail "cmdline.txt has no root=/dev/nfs nfsroot=$SERVER:$EXPORT,vers=$NFS_VERSION"
for gone in root=PARTUUID rootfstype= init= fsck.repair=; do
  [[ " $cmdline " != *" $gone"* ]] || fail "cmdline.txt still has $gone"
done
grep -qE "^$EXPORT\s" "$W/out/netboot/exports" && ok "exports serves $EXPORT" ||
  fail "exports has no line for $EXPORT: $(cat "$W/out/netboot/exports")"
[ "$(cat "$N/etc/hostname")" = "$NODE" ] && ok "nfs/$NODE/etc/hostname is $NODE" || fail "nfs/$NODE/etc/hostname is '$(cat "$N/etc/hostname")'"
if grep -q PARTUUID "$N/etc/fstab"; then fail "nfs/$NODE/etc/fstab still mounts SD partitions: $(grep PARTUUID "$N/etc/fstab")"; else
  ok "nfs/$NODE/etc/fstab mounts no SD partition"
fi
[ -d "$N/boot/firmware" ] && [ -z "$(ls -A "$N/boot/firmware")" ] && ok "nfs/$NODE/boot/firmware is an empty mount point" ||
  fail "nfs/$NODE/boot/firmware is missing or not empty"
if [ "$SHARE" = export ]; then
  [ -d "$N/usr" ] && [ -z "$(ls -A "$N/usr")" ] && ok "share: export: nfs/$NODE/usr is an empty mount point" ||
    fail "share: export: nfs/$NODE/usr is missing or not empty"
  [ -x "$W/out/nfs/.usr/lib/systemd/systemd" ] && ok "share: export: nfs/.usr holds /usr" || fail "share: export: nfs/.usr/lib/systemd/systemd is missing"
  grep -qE "^$USR_EXPORT\s+\*\(ro," "$W/out/netboot/exports" && ok "exports serves $USR_EXPORT read-only" ||
    fail "exports has no read-only line for $USR_EXPORT: $(cat "$W/out/netboot/exports")"
fi

# --- 4. Serve and boot, in namespaces of our own ------------------------------------------------
echo "boot: $LOADER (qemu-system-x86_64 -accel tcg), NFS from nfs-ganesha over loopback as $SERVER"
unshare --net --mount -- bash "$SELF" --serve-and-boot "$W" > "$W/inner.out" 2>&1 &
QEMU_PID=$!
inner_rc=0
wait "$QEMU_PID" || inner_rc=$?
QEMU_PID=
cat "$W/inner.out"
if [ "$inner_rc" != 0 ]; then
  if grep -q '^unshare: ' "$W/inner.out"; then
    echo "SKIP: cannot make a private network and mount namespace: $(grep '^unshare: ' "$W/inner.out" | head -n1)"
    exit 77
  fi
  [ "$inner_rc" = 77 ] && exit 77
  die "the servers or QEMU could not be started (exit $inner_rc)"
fi
result=$(cat "$W/verdict")
# handle_probe FILE: name_to_handle_at and open_by_handle_at on FILE, as ganesha's FSAL VFS calls them;
# exit 1 with the failing call and its error when either fails.
handle_probe() {
  /usr/bin/python3 - "$1" << 'EOF'
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
class FileHandle(ctypes.Structure):
    _fields_ = [("handle_bytes", ctypes.c_uint), ("handle_type", ctypes.c_int), ("f_handle", ctypes.c_ubyte * 128)]
fh, mount_id = FileHandle(128), ctypes.c_int()
if libc.name_to_handle_at(-100, sys.argv[1].encode(), ctypes.byref(fh), ctypes.byref(mount_id), 0) != 0:
    sys.exit("name_to_handle_at: " + os.strerror(ctypes.get_errno()))
fd = libc.open_by_handle_at(os.open(sys.argv[1], os.O_RDONLY), ctypes.byref(fh), os.O_RDONLY)
if fd < 0:
    sys.exit("open_by_handle_at: " + os.strerror(ctypes.get_errno()))
EOF
}
ms() { awk -v k="$1" '$1 == k { print $2 "s" }' "$W/milestones"; }
serial_text > "$W/serial.txt"

if [ "$result" != pass ]; then
  console_tail
  errors=$(grep -aE ':(CRIT|MAJ|FATAL) :' "$W/ganesha.log" 2> /dev/null | grep -avE 'dbus|DBUS|krb5|keytab|principal|RADOS' | sed -E 's/^.*\[[a-z_0-9]+\] //' | tail -n 10 || true)
  [ -z "$errors" ] || { echo "ganesha's errors:" >&2; sed 's/^/  /' <<< "$errors" >&2; }
  # FSAL VFS needs open_by_handle_at (CAP_DAC_READ_SEARCH): where the machine forbids it, the server
  # starts but cannot serve a file; that is this machine's limit, not the output's. Only a probe of
  # that call on the node's folder, apart from ganesha, says so: an "Operation not permitted" in
  # ganesha's log alone may as well be a file the output wrote wrong.
  if ! probe=$(handle_probe "$N/etc/hostname" 2>&1); then
    echo "SKIP: this machine does not let root open files by handle (as ganesha's FSAL VFS must): $probe"
    exit 77
  fi
  fail "boot: $result (after $(ms boot))"
else
  ok "boot: '$NODE login:' on ttyS0 after $(ms login)"
  get() { marker IMGBUILD-NETBOOT "$1"; }
  grep -aoE 'IMGBUILD-NETBOOT [a-z-]+: .*' "$W/serial.txt" | sed 's/^/  console: /'
  [ "$(get host)" = "$NODE" ] && ok "hostname is $NODE" || fail "hostname is '$(get host)', not $NODE"
  [ "$(get root)" = "$SERVER:$EXPORT nfs" ] && ok "/ is $SERVER:$EXPORT over nfs" || fail "/ is '$(get root)', not $SERVER:$EXPORT nfs"
  [[ ",$(get root-options)," == *,vers=$NFS_VERSION,* ]] && ok "/ is mounted with vers=$NFS_VERSION" ||
    fail "/ is mounted with '$(get root-options)', not vers=$NFS_VERSION"
  if [ "$SHARE" = export ]; then
    [ "$(get usr)" = "$SERVER:$USR_EXPORT nfs" ] && ok "/usr is $SERVER:$USR_EXPORT over nfs" || fail "/usr is '$(get usr)', not $SERVER:$USR_EXPORT nfs"
    [[ ",$(get usr-options)," == *,ro,* ]] && ok "/usr is mounted read-only" || fail "/usr is mounted with '$(get usr-options)', not ro"
  else
    [ "$(get usr)" = "in the root" ] && ok "/usr is part of the root" || fail "/usr is '$(get usr)', not part of the root"
  fi
  # The test hands cmdline.txt's line to the loader itself, so /proc/cmdline equal to it only shows
  # the loader passed it on. What the kernel did with it shows the line worked: the panic timeout
  # from its panic=, the console from its last console=, and PID 1 not the SD card's init= (which the
  # output removes), each as the kernel reports it, against values read from the file here.
  [ "$(get cmdline)" = "$cmdline" ] && ok "the loader passed tftp/$FOLDER/cmdline.txt on: /proc/cmdline is its line" ||
    fail "/proc/cmdline is '$(get cmdline)', not cmdline.txt's"
  file=$W/out/tftp/$FOLDER/cmdline.txt
  want_panic=$(tr ' ' '\n' < "$file" | sed -n 's/^panic=\([0-9-]*\)$/\1/p' | tail -n1)
  want_console=$(tr ' ' '\n' < "$file" | sed -n 's/^console=\([^,]*\).*$/\1/p' | tail -n1)
  [ -n "$want_panic" ] && [ -n "$want_console" ] || fail "tftp/$FOLDER/cmdline.txt has no panic= or console= (the recipe's cmdline.txt sets both)"
  eq "the kernel's panic timeout (/proc/sys/kernel/panic) is cmdline.txt's panic=" "$(get panic)" "${want_panic:-unset}"
  eq "the kernel's console (/sys/class/tty/console/active) is cmdline.txt's console=" "$(get console)" "${want_console:-unset}"
  if grep -q '\binit=' "$file"; then
    fail "tftp/$FOLDER/cmdline.txt keeps init=: $(tr ' ' '\n' < "$file" | grep '^init=')"
  else
    eq "PID 1 is systemd (the SD card's init= is gone)" "$(get init)" /usr/lib/systemd/systemd
  fi
  marker_units IMGBUILD-NETBOOT
  # Written by the node over NFS, as root (no_root_squash), seen in its folder on the host.
  f=$N/var/tmp/imgbuild-netboot-write
  if [ "$(cat "$f" 2> /dev/null)" = "written by $NODE" ] && [ "$(stat -c %u:%g "$f")" = 0:0 ]; then
    ok "the node's write over NFS is in nfs/$NODE/var/tmp, owned by 0:0"
  else
    fail "nfs/$NODE/var/tmp/imgbuild-netboot-write is missing, wrong or not root's: $(ls -ln "$f" 2>&1)"
  fi
fi

echo "timings: debootstrap ${T_DEBOOT}, imgbuild build ${t_build}s, kernel running $(ms kernel)," \
  "NFS root mounted $(ms nfs-root), login prompt $(ms login), marker $(ms marker) (from QEMU's start)"
finish netboot_qemu
