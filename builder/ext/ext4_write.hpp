// Writing ext4 in-process with libext2fs, straight into a byte range of an image file: format, then
// populate from the Tree. No staging copy on the host, no mount, no root needed: owners, modes, xattrs
// and devices are written as the Tree says. libext2fs keeps the metadata (bitmaps, inodes, group
// descriptors, journal); file data and folder blocks are laid out and written here, each file in as
// few contiguous runs as the free space allows, in walk order (see ext4_write.cpp for why).
#pragma once

#include "core/error.hpp"
#include "core/tree.hpp"

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace ib::ext4 {

struct Options {
    std::string label = "rootfs";
    std::array<uint8_t, 16> uuid{};      // filesystem UUID (the recipe's seed decides it)
    std::array<uint8_t, 16> hash_seed{}; // directory hash seed
    Timestamp time;                      // mkfs, write and check times; the times of lost+found
    uint64_t inodes = 0;                 // 0: enough for the tree with room to grow
    // Folders written empty: their contents live elsewhere (the boot partition's mount point).
    std::vector<std::string> exclude;
};

// The feature set: what Raspberry Pi OS and Debian 12 kernels mount and e2fsck 1.46 and 1.47 accept
// (pi-gen's choice: no 64bit, no huge_file; and none of 1.47's orphan_file or metadata_csum_seed).
inline constexpr const char* k_features =
    "has_journal ext_attr resize_inode dir_index filetype extent flex_bg sparse_super large_file dir_nlink "
    "extra_isize metadata_csum";

// Bytes the tree's content needs as ext4 with 4 KiB blocks: data, folders, inodes, journal, metadata.
uint64_t needed_bytes(const Tree& tree, const std::vector<std::string>& exclude);

// Formats [offset, offset + size) of the image file at `image` and writes `tree` into it. Nothing
// outside that range is touched. The result is a function of the tree and the options only. The file
// is not synced to disk: it is an output like any other, renamed into place when the build succeeds.
Result<void> write(const Tree& tree, const std::string& image, uint64_t offset, uint64_t size, const Options& options);

} // namespace ib::ext4
