mkdir -p base/boot/firmware/overlays base/etc
printf 'console=tty1 root=PARTUUID=abcd-02 rootwait\n' > base/boot/firmware/cmdline.txt
printf 'elf\n' > base/boot/firmware/start4.elf
printf 'dtbo\n' > base/boot/firmware/overlays/a.dtbo
printf 'PARTUUID=abcd-01 /boot/firmware vfat defaults 0 2\nPARTUUID=abcd-02 / ext4 defaults 0 1\n' > base/etc/fstab
mkdir -p base/home/$'d\xff'
printf 'x\n' > base/home/$'caf\xe9'
printf 'y\n' > base/home/$'d\xff'/f
