// A disk image opened for reading: its partition table, what each partition holds, which one is the
// root and which the boot partition (and where the OS mounts it), and the OS family. Reading the
// files goes into a Tree: the root filesystem at "/", the boot partition at its mount point.
#pragma once

#include "core/disk.hpp"
#include "core/tree.hpp"

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace ib {

struct PartitionInfo {
    Partition part;
    std::string fs;     // "ext4", "vfat", ... or "" when unknown
    std::string label;
    std::string uuid;   // filesystem UUID as blkid shows it
    std::string use;    // "root", "boot", or ""
    std::string mount;  // where the OS mounts it ("/", "/boot/firmware"), when known
};

struct ImageInfo {
    std::string path;
    uint64_t size = 0;
    PartitionTable table;
    std::vector<PartitionInfo> partitions;
    std::string os;         // PRETTY_NAME from /etc/os-release
    std::string family;     // "raspios", "hypriotos", "debian-raspi", "armbian", "debian", ... or "unknown"
    std::string boot_mount; // "/boot/firmware", "/boot", or "" (no separate boot partition)
    std::string cmdline;    // cmdline.txt of the boot partition, without the newline
};

class DiskImage {
public:
    // Opens a plain (decoded) image file and reads its partition table and filesystem headers.
    // `display` names the image in messages when `path` is a decoded copy in the cache.
    static DiskImage open(const std::string& path, const std::string& display = "");

    // Reads the root filesystem and the boot partition into a new tree (layer "base"). Also fills
    // os, family, boot mount and cmdline of info(), which need the root's own files.
    Tree read();
    const ImageInfo& info() const { return m_info; }

private:
    std::shared_ptr<ImageFile> m_file;
    ImageInfo m_info;
    Tree read_with_guestfs(const std::string& format);
    int m_root = -1; // index into m_info.partitions
    int m_boot = -1;
    std::string m_guestfs_format; // "qcow2": only libguestfs can read it
};

// The inspect report as text (`imgbuild inspect`) and as JSON (`--json`).
std::string to_text(const ImageInfo& info);
std::string to_json(const ImageInfo& info);

} // namespace ib
