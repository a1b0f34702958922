// Writing FAT12/16/32 in-process: the boot partition of an SD image, formatted and filled in one pass
// straight into a byte range of the image file (no mkfs.fat, no mtools, no mount).
//
// What comes out is what core/fat.hpp reads back and what Linux, fsck.fat, mtools and blkid accept:
// 512-byte sectors, two identical FATs, media 0xF8, VFAT long names, and for FAT32 the FSInfo sector
// (exact free count) and the backup boot sector at 6. The output is a function of the tree and the
// options only: the same input gives the same bytes.
#pragma once

#include "core/tree.hpp"

#include <cstdint>
#include <string>

namespace ib {

struct FatOptions {
    // Volume label, at most 11 characters of printable ASCII without * ? . , ; : / \ | + = < > [ ] ".
    // Written as given, lower case kept, as mkfs.fat 4.2 does (Raspberry Pi OS's boot partition is
    // "bootfs"), in the boot sector and as the root folder's volume-label entry. Empty: "NO NAME".
    std::string label = "bootfs";
    uint32_t serial = 0;         // volume serial; blkid shows it as UUID "XXXX-XXXX"
    uint32_t hidden_sectors = 0; // sectors before the partition (its start LBA), as the boot sector records it
    // 12, 16 or 32; 0 chooses: FAT32 when the size allows at least 65,525 clusters (from about 33 MiB),
    // else FAT16 (at least 4,087 clusters, from about 2.1 MiB), else FAT12.
    int fat_bits = 0;
    // Bytes per cluster, a power of two from 512 to 65,536; 0 chooses as Windows' format does (FAT32:
    // 512 B up to 64 MiB, 1 KiB to 128 MiB, 2 KiB to 256 MiB, 4 KiB to 8 GiB, then 8, 16, 32 KiB),
    // smaller where that leaves too few clusters for the FAT type. pi-gen formats with 2 KiB.
    uint32_t cluster_size = 0;
    // Time of the volume label, and of every entry whose own mtime is unset (Timestamp{}).
    Timestamp mtime;
};

// Formats [offset, offset + size) of the open, writable `fd` as FAT and writes into it everything
// below the folder `dir` of `tree` (e.g. "/boot/firmware"; symlinks on the way are resolved in the
// tree).
//
// - Folders and regular files are written; hardlinks as copies of their file; symlinks are followed
//   inside the tree and stored as copies of the file or folder they name. A dangling symlink, a link to
//   a folder that contains it, a device, fifo or socket is an Error naming the path.
// - Names that are not already upper-case 8.3 get VFAT long-name entries (UTF-16, converted from UTF-8)
//   and a unique short name (CONFIG.TXT, or NAME~1.EXT when the name does not fit 8.3 losslessly), as
//   Linux's vfat does. An Error names the path of a name FAT cannot hold: invalid UTF-8, a control
//   character or one of \ : * ? " < > |, a trailing dot or space, more than 255 UTF-16 units, or two
//   names in one folder that differ only in ASCII case. Files must be smaller than 4 GiB.
// - Entries are sorted by name; clusters are allocated contiguously in walk order (a folder, then its
//   content), so every file is one run of clusters.
// - Times: an entry's mtime (FAT local time taken as UTC, 2-second resolution; before 1980 clamps to
//   1980-01-01, after 2107 to 2107-12-31) is written as its write, creation and access time.
// - Only what is needed is written: reserved sectors, FATs and the FAT12/16 root region are zeroed
//   (holes punched where the file allows, so a sparse image stays sparse), folder clusters are written
//   whole, file clusters with their data and zeros up to the cluster's end; free clusters are left
//   as they are. A regular file shorter than offset + size is extended first.
//
// Throws Error, before writing anything, when the options are invalid, the size is too small for the
// FAT type, or the content does not fit (saying how many bytes it needs and how many there are).
void write_fat(int fd, uint64_t offset, uint64_t size, const Tree& tree, const std::string& dir,
               const FatOptions& options);

// Bytes the content below `dir` takes as FAT with `cluster_size`-byte clusters: every file and folder
// (the root folder included) rounded up to whole clusters. The partition needs this plus the reserved
// sectors and the two FATs (4 bytes per cluster each for FAT32) plus headroom. Throws the Errors
// write_fat would throw for the tree.
uint64_t fat_content_bytes(const Tree& tree, const std::string& dir, uint32_t cluster_size);

} // namespace ib
