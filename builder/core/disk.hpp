// Disk images: a host file read at offsets, and the partition table at its start (MBR or GPT),
// parsed in-process. Partitions are byte ranges of the one file: nothing is mounted, no loop device.
#pragma once

#include "core/error.hpp"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace ib {

// A read-only host file, read with pread. Shared by everything that reads one image.
class ImageFile {
public:
    // `display` names the image in messages (the file the user gave, when `path` is a decoded copy).
    static std::shared_ptr<ImageFile> open(const std::string& path, const std::string& display = "");
    ~ImageFile();
    ImageFile(const ImageFile&) = delete;
    ImageFile& operator=(const ImageFile&) = delete;

    const std::string& path() const { return m_path; }
    const std::string& name() const { return m_name; }
    uint64_t size() const { return m_size; }
    int fd() const { return m_fd; }
    // Reads exactly `len` bytes at `offset`; reading past the end is an Error naming the file.
    void read(uint64_t offset, void* buf, size_t len) const;
    std::string read(uint64_t offset, size_t len) const;

private:
    ImageFile() = default;
    std::string m_path;
    std::string m_name;
    uint64_t m_size = 0;
    int m_fd = -1;
};

struct Partition {
    int number = 0;       // 1-based, as Linux names them (p1, p2; logical MBR partitions from 5)
    uint64_t offset = 0;  // bytes from the start of the image
    uint64_t size = 0;    // bytes
    uint8_t mbr_type = 0; // MBR: 0x0c FAT32 LBA, 0x83 Linux, ...; 0 on GPT
    bool bootable = false;
    std::string type_guid; // GPT only, lower-case canonical form
    std::string guid;      // GPT only: the PARTUUID
    std::string name;      // GPT only
    std::string partuuid;  // what PARTUUID= names: GPT guid, or MBR "<disk signature>-<NN>"
};

struct PartitionTable {
    enum class Scheme { None, Mbr, Gpt } scheme = Scheme::None;
    uint32_t disk_signature = 0; // MBR: the 4 bytes at offset 440
    std::string disk_guid;       // GPT
    uint64_t sector_size = 512;
    std::vector<Partition> partitions;

    std::string scheme_name() const; // "dos", "gpt" (as sfdisk calls them), or "none"
    std::string disk_id() const;     // "0x1234abcd" for MBR (as sfdisk --dump), the GUID for GPT
};

// Parses the table at the start of `image`. An image that holds a filesystem with no table at all
// has Scheme::None and no partitions. A table that points outside the image, overlaps itself or fails
// its checksums is an Error naming the image and the fault.
PartitionTable read_partition_table(const ImageFile& image);

// The kind of filesystem at a partition, from its magic numbers: "ext4", "ext3", "ext2", "vfat",
// "btrfs", "xfs", "swap", "LVM2_member", "squashfs", or "" when unknown.
std::string probe_filesystem(const ImageFile& image, uint64_t offset, uint64_t size);

// CRC-32 as GPT uses it (IEEE 802.3, reflected).
uint32_t crc32(const void* data, size_t len, uint32_t crc = 0);

} // namespace ib
