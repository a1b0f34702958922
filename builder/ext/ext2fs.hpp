// libext2fs adapter: the only place that includes ext2fs headers. Reads ext2/3/4 filesystems
// in-process, straight from a byte range of an image file.
#pragma once

#include "core/disk.hpp"
#include "core/error.hpp"
#include "core/tree.hpp"

#include <memory>
#include <string>

namespace ib::ext2 {

struct FsInfo {
    std::string type;  // "ext2", "ext3", "ext4"
    std::string label; // volume name
    std::string uuid;
    uint64_t blocks = 0;
    uint32_t block_size = 0;
    uint64_t free_blocks = 0;
    uint32_t inodes = 0;
    std::string features; // as `dumpe2fs -h` lists them
};

// Opens the filesystem at [offset, offset + size) of `image` and reads the superblock.
Result<FsInfo> info(const ImageFile& image, uint64_t offset);

// Adds every entry of the filesystem to `tree` below `mount` ("/" for a root filesystem): owners,
// modes, mtimes, xattrs (POSIX ACLs in their xattr form), symlinks, hardlinks, devices; file contents
// are read from the image when an output asks for them, holes included. A journal that needs
// recovery or a damaged superblock is a failure naming `what` ("partition 2"), never a partial tree.
Result<void> read_tree(const std::shared_ptr<const ImageFile>& image, uint64_t offset, const std::string& what,
                       Tree& tree, const std::string& mount);

} // namespace ib::ext2
