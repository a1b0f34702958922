# The boot folder of the issue: valid start4.elf and overlays/ beside a member named A/B\C.ELF.
python3 - <<'PY'
import io, tarfile
members = [
    ("etc/fstab", b"PARTUUID=abcd-01 /boot/firmware vfat defaults 0 2\nPARTUUID=abcd-02 / ext4 defaults 0 1\n"),
    ("boot/firmware/cmdline.txt", b"console=tty1 root=PARTUUID=abcd-02 rootwait\n"),
    ("boot/firmware/start4.elf", b"elf\n"),
    ("boot/firmware/overlays/a.dtbo", b"dtbo\n"),
    ("boot/firmware/A/B\\C.ELF", b"x\n"),
]
with tarfile.open("base.tar", "w", format=tarfile.PAX_FORMAT) as t:
    for name, data in members:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))
PY
