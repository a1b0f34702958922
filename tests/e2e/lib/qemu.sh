# shellcheck shell=bash
# Sourced by the QEMU boot tests (boot_qemu.sh, boot_node.sh, netboot_qemu.sh), after lib/common.sh:
# what they share around a guest. Brings in lib/report.sh (ok, fail, die, finish) and
# lib/debian_root.sh. Expects IMGBUILD (absolute path); W is the work folder qemu_work_dir makes.
#
# now; secs T0 T1: a timestamp (seconds since the epoch); T1 - T0 with one decimal.
# apt_need COMMAND PACKAGE: PACKAGE goes into APT_NEED when COMMAND is not on the PATH (append to
# APT_NEED directly for other checks). apt_install_needed then installs APT_NEED with apt-get, or
# exits 77 ("SKIP: ...", as the Debian mirror cannot be reached) when that fails.
# qemu_work_dir NAME: W, a new folder ${TMPDIR:-/tmp}/imgbuild-e2e-NAME.XXXXXX, removed at exit, and
# QEMU_PID (empty): set it to the pid of what runs QEMU, which stop_qemu and the exit end (kill, wait).
# stop_qemu: kills and reaps QEMU_PID if it still runs, and empties it.
# boot_root KEY PACKAGE...: debian_root_tarball KEY PACKAGE... with its path in TARBALL, and in
# T_DEBOOT how long debootstrap took ("12.3s"), or "cached"; exits with its status when it fails.
# boot_files IMG: what a Pi's firmware reads out of the sdimage IMG, with `imgbuild cat`: cmdline.txt
# from /boot/firmware ($W/cmdline.txt; as one line in cmdline, printed) and the newest
# /boot/vmlinuz-* and /boot/initrd.img-* of its root ($W/vmlinuz and $W/initrd.img; their names in
# vmlinuz and initrd). Dies when one cannot be read.
# serial_text: $W/serial.log, QEMU's serial console, without carriage returns and terminal escapes.
# console_tail: its last 40 lines, on stderr.
# marker PREFIX KEY: the value of the guest's last "PREFIX KEY: VALUE" line in $W/serial.txt (written
# from serial_text), trailing blanks cut; it may stand anywhere in a line (after systemd's status
# line, which ends in a carriage return and no newline); empty when there is none.
# marker_units PREFIX: ok or fail on what every booted guest reports: "PREFIX ssh" active, "PREFIX
# failed" 0 (failed units), and no [FAILED] on the console.
# qemu_wait_console PID TIMEOUT VERDICT [EACH]: watches the boot of the QEMU running as PID (a child of
# this shell) until the command VERDICT, which reads $W/serial.log and prints "pass", what went wrong,
# or nothing while the boot goes on, prints something; EACH, if given, runs first in each round (once
# a second) and once more at the end, after what VERDICT saw. Sets CONSOLE_RESULT to VERDICT's output (read again 3 s later when it is not "pass": a
# failure's message may still be on its way), or, when PID ends first, to "qemu exited (STATUS): " and
# the start of $W/qemu.log, or after TIMEOUT seconds to "timeout after TIMEOUTs". Does not stop QEMU.
# boot_sdimage IMG MARKER: boots the SD image IMG as a Pi's firmware would (the kernel and initrd
# boot_files read out of it, its cmdline.txt appended; IMG the only disk, on virtio; the serial
# console in $W/serial.log) under qemu-system-x86_64 with TCG, and waits up to $BOOT_TIMEOUT seconds
# for the console to show MARKER or a boot failure. Sets BOOT_RESULT ("pass" or what went wrong) and
# T_BOOT (seconds), writes $W/serial.txt, and stops QEMU.
# Those that set variables or exit must run in the script's own shell, not in $(...).

_qemu_lib=$(dirname "${BASH_SOURCE[0]}")
# shellcheck source=lib/report.sh
. "$_qemu_lib/report.sh"
# shellcheck source=lib/debian_root.sh
. "$_qemu_lib/debian_root.sh"

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

APT_NEED=()
apt_need() {
  command -v "$1" > /dev/null || APT_NEED+=("$2")
}
apt_install_needed() {
  [ ${#APT_NEED[@]} -gt 0 ] || return 0
  echo "installing: ${APT_NEED[*]}"
  if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${APT_NEED[@]}" > /dev/null; }; then
    echo "SKIP: could not install ${APT_NEED[*]} (no network to the Debian mirror?)"
    exit 77
  fi
}

qemu_work_dir() {
  W=$(mktemp -d "${TMPDIR:-/tmp}/imgbuild-e2e-$1.XXXXXX")
  QEMU_PID=
  trap 'stop_qemu; rm -rf "$W"' EXIT
}
stop_qemu() {
  if [ -n "$QEMU_PID" ] && kill -0 "$QEMU_PID" 2> /dev/null; then
    kill "$QEMU_PID" 2> /dev/null || true
    wait "$QEMU_PID" 2> /dev/null || true
  fi
  QEMU_PID=
}

# shellcheck disable=SC2034 # TARBALL and T_DEBOOT are for the caller
boot_root() {
  local t0=
  T_DEBOOT=cached
  [ -s "$(debian_root_path "$1")" ] || t0=$(now)
  TARBALL=$(debian_root_tarball "$@") || exit $?
  [ -z "$t0" ] || T_DEBOOT=$(secs "$t0" "$(now)")s
}

boot_files() {
  local img=$1
  "$IMGBUILD" cat "$img:/boot/firmware/cmdline.txt" > "$W/cmdline.txt" || die "imgbuild cat IMG:/boot/firmware/cmdline.txt failed"
  cmdline=$(tr '\n' ' ' < "$W/cmdline.txt" | sed 's/ *$//')
  echo "cmdline.txt: $cmdline"
  "$IMGBUILD" ls "$img:/boot" > "$W/boot.ls" 2>&1 || { cat "$W/boot.ls" >&2; die "imgbuild ls IMG:/boot failed"; }
  vmlinuz=$(grep -oE 'vmlinuz-[^ ]+' "$W/boot.ls" | sort -V | tail -n1)
  initrd=$(grep -oE 'initrd\.img-[^ ]+' "$W/boot.ls" | sort -V | tail -n1)
  [ -n "$vmlinuz" ] && [ -n "$initrd" ] || { cat "$W/boot.ls" >&2; die "no vmlinuz-*/initrd.img-* in IMG:/boot"; }
  "$IMGBUILD" cat "$img:/boot/$vmlinuz" > "$W/vmlinuz" || die "imgbuild cat IMG:/boot/$vmlinuz failed"
  "$IMGBUILD" cat "$img:/boot/$initrd" > "$W/initrd.img" || die "imgbuild cat IMG:/boot/$initrd failed"
}

serial_text() { tr -d '\r' < "$W/serial.log" | sed -E 's/\x1b\[[0-9;?]*[A-Za-z]//g'; }
console_tail() {
  {
    echo "--- last 40 lines of the serial console ---"
    serial_text | tail -n 40
    echo "---"
  } >&2
}

marker() { grep -ao "$1 $2: .*" "$W/serial.txt" | tail -n1 | sed "s/^$1 $2: //; s/ *\$//" || true; }
marker_units() {
  local ssh failed
  ssh=$(marker "$1" ssh)
  failed=$(marker "$1" failed)
  [ "$ssh" = active ] && ok "ssh.service is active" || fail "ssh.service is '$ssh'"
  [ "$failed" = 0 ] && ok "no failed units" || fail "$failed failed unit(s)"
  if grep -aqE '\[FAILED\]' "$W/serial.txt"; then
    grep -aE '\[FAILED\]' "$W/serial.txt" >&2
    fail "the console shows failed units"
  fi
}

qemu_wait_console() {
  local pid=$1 timeout=$2 verdict=$3 each=${4:-:} deadline=$((SECONDS + $2)) rc
  while :; do
    "$each"
    CONSOLE_RESULT=$("$verdict")
    if [ -n "$CONSOLE_RESULT" ]; then
      if [ "$CONSOLE_RESULT" != pass ]; then
        sleep 3
        CONSOLE_RESULT=$("$verdict")
      fi
      break
    fi
    if ! kill -0 "$pid" 2> /dev/null; then
      wait "$pid" && rc=0 || rc=$?
      CONSOLE_RESULT=$("$verdict")
      [ -n "$CONSOLE_RESULT" ] || CONSOLE_RESULT="qemu exited ($rc): $(head -c 2000 "$W/qemu.log")"
      break
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      CONSOLE_RESULT="timeout after ${timeout}s"
      break
    fi
    sleep 1
  done
  "$each"
}

boot_sdimage() {
  local img=$1 marker=$2 t0
  echo "boot: qemu-system-x86_64 -accel tcg, -kernel $vmlinuz -initrd $initrd -append \"$cmdline\""
  : > "$W/serial.log"
  t0=$(now)
  # -nodefaults: no floppy, CD-ROM, VGA or NIC; the image is the only disk, the serial port the console.
  qemu-system-x86_64 -accel tcg -m 1024 -smp 2 -nographic -nodefaults -no-reboot \
    -kernel "$W/vmlinuz" -initrd "$W/initrd.img" -append "$cmdline" \
    -drive "file=$img,format=raw,if=virtio" \
    -serial "file:$W/serial.log" -monitor none -display none -net none > "$W/qemu.log" 2>&1 &
  QEMU_PID=$!
  _boot_marker=$marker
  qemu_wait_console "$QEMU_PID" "$BOOT_TIMEOUT" _boot_verdict
  BOOT_RESULT=$CONSOLE_RESULT
  T_BOOT=$(secs "$t0" "$(now)")
  stop_qemu
  serial_text > "$W/serial.txt"
}

# What the console shows so far: a verdict, or nothing while the boot goes on. Failures win.
# shellcheck disable=SC2317 # called by qemu_wait_console
_boot_verdict() {
  local f=$W/serial.log
  if grep -qaE 'Failed to mount .* as root file system|ALERT! .* does not exist' "$f"; then
    echo "the initramfs could not mount the root file system"
  elif grep -qa 'Kernel panic' "$f"; then echo "kernel panic"
  elif grep -qaE 'Give root password|emergency mode|Dropping to a shell|\(initramfs\)|Cannot open access to console' "$f"; then
    echo "emergency shell"
  elif grep -qaE 'Failed to mount|Dependency failed' "$f"; then echo "a mount (or what it depends on) failed"
  elif grep -qa "$_boot_marker" "$f"; then echo pass
  fi
}
