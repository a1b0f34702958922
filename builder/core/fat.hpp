// FAT12/16/32 read in-process (no Debian package ships a FAT library): the boot partition of a
// Raspberry Pi image, with long file names. Contents are read lazily, cluster chain by chain.
#pragma once

#include "core/disk.hpp"
#include "core/tree.hpp"

#include <cstdint>
#include <memory>
#include <string>

namespace ib {

struct FatInfo {
    std::string type; // "FAT12", "FAT16", "FAT32"
    std::string label;   // volume label from the boot sector, trailing spaces removed
    uint32_t serial = 0; // volume serial: blkid shows it as UUID "XXXX-XXXX"
    uint64_t clusters = 0;
    uint32_t cluster_size = 0;
    std::string uuid() const; // "1A2B-3C4D"
};

// Reads the boot sector of the FAT filesystem at [offset, offset + size). Throws Error when it is not one.
FatInfo fat_info(const ImageFile& image, uint64_t offset, uint64_t size);

// Adds every file and folder of the filesystem below `mount` (an existing or new folder of `tree`).
// FAT has no owners or modes: entries are root's, folders 0755 and files 0755, as Raspberry Pi OS
// mounts its boot partition (fmask 0022). Mtimes are the FAT's local times taken as UTC.
void read_fat(const std::shared_ptr<const ImageFile>& image, uint64_t offset, uint64_t size, Tree& tree,
              const std::string& mount);

} // namespace ib
