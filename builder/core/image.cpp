#include "core/image.hpp"

#include "core/error.hpp"
#include "core/fat.hpp"
#include "core/log.hpp"
#include "ext/ext2fs.hpp"
#include "ext/guestfs.hpp"

#include <sstream>

namespace ib {

namespace {

bool is_ext(const std::string& fs) { return fs == "ext2" || fs == "ext3" || fs == "ext4"; }

// KEY=value or KEY="value" from an os-release file.
std::string os_release_field(const std::string& text, const std::string& key) {
    std::stringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind(key + "=", 0) != 0) continue;
        std::string v = line.substr(key.size() + 1);
        if (v.size() >= 2 && (v[0] == '"' || v[0] == '\'') && v.back() == v[0]) v = v.substr(1, v.size() - 2);
        return v;
    }
    return {};
}

std::string lower(std::string s) {
    for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

std::string file_or_empty(const Tree& tree, const std::string& p) {
    const Entry* e = tree.find(p);
    return e && e->type == FileType::Regular ? read_all(e->content) : std::string();
}

// Where the image's own fstab mounts partition `pi`: by PARTUUID=, UUID=, LABEL= or device name.
std::string fstab_mount(const std::string& fstab, const PartitionInfo& pi) {
    std::stringstream in(fstab);
    std::string line;
    while (std::getline(in, line)) {
        std::stringstream f(line);
        std::string spec, mount;
        if (!(f >> spec >> mount) || spec[0] == '#') continue;
        std::string n = std::to_string(pi.part.number);
        bool match = (spec == "PARTUUID=" + pi.part.partuuid) || (!pi.uuid.empty() && lower(spec) == lower("UUID=" + pi.uuid)) ||
                     (!pi.label.empty() && spec == "LABEL=" + pi.label) || spec == "/dev/mmcblk0p" + n ||
                     spec == "/dev/sda" + n || spec == "/dev/vda" + n;
        if (match) return mount;
    }
    return {};
}

std::string json_string(const std::string& s) {
    std::string out = "\"";
    for (unsigned char c : s) {
        if (c == '"' || c == '\\') out += '\\', out += static_cast<char>(c);
        else if (c < 0x20) {
            char buf[8];
            snprintf(buf, sizeof buf, "\\u%04x", c);
            out += buf;
        } else out += static_cast<char>(c);
    }
    return out + "\"";
}

std::string human(uint64_t bytes) {
    const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = static_cast<double>(bytes);
    int u = 0;
    while (v >= 1024 && u < 4) v /= 1024, ++u;
    char buf[32];
    snprintf(buf, sizeof buf, u ? "%.1f %s" : "%.0f %s", v, units[u]);
    return buf;
}

} // namespace

DiskImage DiskImage::open(const std::string& path, const std::string& display) {
    DiskImage img;
    img.m_file = ImageFile::open(path, display);
    img.m_info.path = img.m_file->name();
    img.m_info.size = img.m_file->size();
    if (img.m_file->size() >= 4 && img.m_file->read(0, 4) == "QFI\xfb") {
        img.m_guestfs_format = "qcow2"; // a container format: the disk inside is libguestfs's to read
        return img;
    }
    img.m_info.table = read_partition_table(*img.m_file);
    std::vector<Partition> parts = img.m_info.table.partitions;
    if (img.m_info.table.scheme == PartitionTable::Scheme::None) {
        // A bare filesystem: one "partition" covering the whole file.
        Partition whole;
        whole.number = 0;
        whole.size = img.m_file->size();
        parts.push_back(whole);
    }
    uint64_t best_root = 0;
    for (const auto& p : parts) {
        PartitionInfo pi;
        pi.part = p;
        if (p.mbr_type == 0x05 || p.mbr_type == 0x0f || p.mbr_type == 0x85) {
            pi.fs = "extended";
            img.m_info.partitions.push_back(pi);
            continue;
        }
        pi.fs = probe_filesystem(*img.m_file, p.offset, p.size);
        if (is_ext(pi.fs)) {
            std::string what = p.number ? "partition " + std::to_string(p.number) : "filesystem";
            auto fi = ext2::info(*img.m_file, p.offset).value_or_throw("image '" + img.m_info.path + "': " + what);
            pi.fs = fi.type;
            pi.label = fi.label;
            pi.uuid = fi.uuid;
            // The root is the largest ext filesystem: p2 on Raspberry Pi OS, the only one on Armbian.
            if (p.size > best_root) {
                best_root = p.size;
                img.m_root = static_cast<int>(img.m_info.partitions.size());
            }
        } else if (pi.fs == "vfat") {
            FatInfo fi = fat_info(*img.m_file, p.offset, p.size);
            pi.label = fi.label;
            pi.uuid = fi.uuid();
            if (img.m_boot < 0) img.m_boot = static_cast<int>(img.m_info.partitions.size());
        }
        img.m_info.partitions.push_back(pi);
    }
    if (img.m_root >= 0) {
        img.m_info.partitions[static_cast<size_t>(img.m_root)].use = "root";
        img.m_info.partitions[static_cast<size_t>(img.m_root)].mount = "/";
    }
    if (img.m_boot >= 0) img.m_info.partitions[static_cast<size_t>(img.m_boot)].use = "boot";
    return img;
}

Tree DiskImage::read_with_guestfs(const std::string& format) {
    if (!guestfs::available())
        throw Error("image '" + m_info.path + "' needs libguestfs, which this imgbuild was built without "
                    "(install libguestfs-dev and rebuild)");
    Tree tree("base");
    std::string boot;
    guestfs::read(m_file->path(), format, tree, boot).value_or_throw("image '" + m_info.path + "'");
    m_info.boot_mount = boot;
    m_info.family = "unknown";
    return tree;
}

Tree DiskImage::read() {
    if (!m_guestfs_format.empty()) return read_with_guestfs(m_guestfs_format);
    Tree tree("base");
    if (m_root < 0) {
        std::string kinds;
        for (const auto& p : m_info.partitions) {
            std::string fs = p.fs;
            // Filesystems the native readers do not know: the slow, universal path, chosen only now.
            if (fs == "btrfs" || fs == "xfs" || fs == "LVM2_member" || fs == "squashfs") {
                if (!guestfs::available())
                    throw Error("image '" + m_info.path + "': partition " + std::to_string(p.part.number) + " holds " + fs +
                                ", which imgbuild reads only through libguestfs (this build has none: install "
                                "libguestfs-dev and rebuild)");
                log::info("image '" + m_info.path + "': partition " + std::to_string(p.part.number) + " holds " + fs +
                          "; reading it through libguestfs");
                return read_with_guestfs("raw");
            }
            kinds += (kinds.empty() ? "" : ", ") + (fs.empty() ? std::string("unknown") : fs);
        }
        throw Error("image '" + m_info.path + "': no ext2/3/4 root filesystem found (partitions: " +
                    (kinds.empty() ? "none" : kinds) + ")");
    }
    PartitionInfo& root = m_info.partitions[static_cast<size_t>(m_root)];
    std::string root_what = root.part.number ? "partition " + std::to_string(root.part.number) : "filesystem";
    ext2::read_tree(m_file, root.part.offset, root_what, tree, "/").value_or_throw("image '" + m_info.path + "'");

    std::string fstab = file_or_empty(tree, "/etc/fstab");
    std::string os_release = file_or_empty(tree, "/etc/os-release");
    if (os_release.empty()) os_release = file_or_empty(tree, "/usr/lib/os-release");
    m_info.os = os_release_field(os_release, "PRETTY_NAME");

    if (m_boot >= 0) {
        PartitionInfo& boot = m_info.partitions[static_cast<size_t>(m_boot)];
        std::string mount = fstab_mount(fstab, boot);
        if (mount.empty()) {
            // No fstab line: Bookworm-style images have an empty /boot/firmware to mount it on.
            const Entry* fw = tree.find("/boot/firmware");
            mount = fw && fw->is_dir() ? "/boot/firmware" : "/boot";
        }
        boot.mount = mount;
        m_info.boot_mount = mount;
        read_fat(m_file, boot.part.offset, boot.part.size, tree, mount);
        std::string cmdline = file_or_empty(tree, mount + "/cmdline.txt");
        while (!cmdline.empty() && (cmdline.back() == '\n' || cmdline.back() == '\r')) cmdline.pop_back();
        m_info.cmdline = cmdline;
    }

    std::string id = lower(os_release_field(os_release, "ID"));
    if (lower(os_release).find("hypriot") != std::string::npos || tree.exists("/etc/hypriot_release"))
        m_info.family = "hypriotos";
    else if (tree.exists("/etc/armbian-release") || lower(os_release).find("armbian") != std::string::npos)
        m_info.family = "armbian";
    else if (id == "raspbian" || tree.exists("/etc/rpi-issue"))
        m_info.family = "raspios";
    else if (id == "debian" && (tree.exists("/etc/default/raspi-firmware") || tree.exists("/etc/default/raspi-extra-cmdline")))
        m_info.family = "debian-raspi";
    else
        m_info.family = id.empty() ? "unknown" : id;
    return tree;
}

std::string to_text(const ImageInfo& info) {
    std::string s = "image:     " + info.path + " (" + human(info.size) + ", " + std::to_string(info.size) + " bytes)\n";
    s += "table:     " + info.table.scheme_name();
    if (info.table.scheme != PartitionTable::Scheme::None) s += ", disk id " + info.table.disk_id();
    s += "\n";
    for (const auto& p : info.partitions) {
        char line[512];
        std::string type;
        if (info.table.scheme == PartitionTable::Scheme::Mbr) {
            char t[8];
            snprintf(t, sizeof t, "0x%02x", p.part.mbr_type);
            type = t;
        } else {
            type = p.part.type_guid;
        }
        snprintf(line, sizeof line, "  p%-2d %12llu +%-12llu %-10s %-6s %-8s label=%s uuid=%s partuuid=%s%s%s\n", p.part.number,
                 static_cast<unsigned long long>(p.part.offset / 512), static_cast<unsigned long long>(p.part.size / 512),
                 human(p.part.size).c_str(), p.fs.empty() ? "?" : p.fs.c_str(), type.c_str(), p.label.c_str(), p.uuid.c_str(),
                 p.part.partuuid.c_str(), p.use.empty() ? "" : (" use=" + p.use).c_str(),
                 p.mount.empty() ? "" : (" mount=" + p.mount).c_str());
        s += line;
    }
    s += "os:        " + (info.os.empty() ? std::string("?") : info.os) + "\n";
    s += "family:    " + info.family + "\n";
    s += "boot:      " + (info.boot_mount.empty() ? std::string("(no boot partition)") : info.boot_mount) + "\n";
    if (!info.cmdline.empty()) s += "cmdline:   " + info.cmdline + "\n";
    return s;
}

std::string to_json(const ImageInfo& info) {
    std::string s = "{\n  \"path\": " + json_string(info.path) + ",\n  \"size\": " + std::to_string(info.size) +
                    ",\n  \"table\": " + json_string(info.table.scheme_name()) + ",\n  \"disk_id\": " +
                    json_string(info.table.scheme == PartitionTable::Scheme::None ? "" : info.table.disk_id()) +
                    ",\n  \"partitions\": [";
    for (size_t i = 0; i < info.partitions.size(); ++i) {
        const auto& p = info.partitions[i];
        char type[8];
        snprintf(type, sizeof type, "%x", p.part.mbr_type);
        s += std::string(i ? "," : "") + "\n    {\"number\": " + std::to_string(p.part.number) +
             ", \"start\": " + std::to_string(p.part.offset / 512) + ", \"sectors\": " + std::to_string(p.part.size / 512) +
             ", \"offset\": " + std::to_string(p.part.offset) + ", \"size\": " + std::to_string(p.part.size) +
             ", \"type\": " + json_string(info.table.scheme == PartitionTable::Scheme::Gpt ? p.part.type_guid : type) +
             ", \"bootable\": " + (p.part.bootable ? "true" : "false") + ", \"fs\": " + json_string(p.fs) +
             ", \"label\": " + json_string(p.label) + ", \"uuid\": " + json_string(p.uuid) +
             ", \"partuuid\": " + json_string(p.part.partuuid) + ", \"name\": " + json_string(p.part.name) +
             ", \"use\": " + json_string(p.use) + ", \"mount\": " + json_string(p.mount) + "}";
    }
    s += "\n  ],\n  \"os\": " + json_string(info.os) + ",\n  \"family\": " + json_string(info.family) +
         ",\n  \"boot_mount\": " + json_string(info.boot_mount) + ",\n  \"cmdline\": " + json_string(info.cmdline) + "\n}\n";
    return s;
}

} // namespace ib
