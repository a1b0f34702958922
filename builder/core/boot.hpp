// Where the boot partition's files sit inside the tree.
//
// Raspberry Pi OS Bookworm and later and Debian's raspi images mount the FAT boot partition at
// /boot/firmware; older Raspberry Pi OS and HypriotOS at /boot. The image's own /etc/fstab says which;
// without an fstab line, the folder that holds config.txt or cmdline.txt does.
#pragma once

#include "core/tree.hpp"

#include <optional>
#include <string>

namespace ib {

// "/boot/firmware", "/boot", or nullopt when the tree has no boot partition files at all.
std::optional<std::string> boot_dir(const Tree& tree);

// boot_dir(), or an Error saying that `what` needs a Raspberry Pi boot partition.
std::string require_boot_dir(const Tree& tree, const std::string& what);

} // namespace ib
