mkdir -p base/etc base/boot/firmware base/var
echo node > base/etc/hostname
printf 'console=tty1 root=PARTUUID=6c586e13-02 rootwait\n' > base/boot/firmware/cmdline.txt
printf 'proc /proc proc defaults 0 0\nPARTUUID=6c586e13-01 /boot/firmware vfat defaults 0 2\n' > base/etc/fstab
truncate -s 1T base/var/huge
