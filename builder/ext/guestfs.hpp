// libguestfs adapter (optional): the slow, universal reader for what the native readers do not handle
// (qcow2, LVM, btrfs, xfs). It starts a small VM appliance (with KVM when that works, else TCG: 15-25 s
// here), mounts what the image's own OS inspection says, and streams the tree out as a tarball. Only
// ext/guestfs.cpp includes guestfs.h; without libguestfs at build time, available() is false.
#pragma once

#include "core/error.hpp"
#include "core/tree.hpp"

#include <string>

namespace ib::guestfs {

bool available();

// Reads the OS in `image` (format: "raw", "qcow2", or "" to let libguestfs probe) into `tree`: every
// filesystem the image's fstab mounts, at its mount point. `boot_mount` gets "/boot/firmware" or
// "/boot" when a separate FAT partition is mounted there.
Result<void> read(const std::string& image, const std::string& format, Tree& tree, std::string& boot_mount);

} // namespace ib::guestfs
