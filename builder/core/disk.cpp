#include "core/disk.hpp"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace ib {

namespace {

uint16_t le16(const std::string& b, size_t at) {
    return static_cast<uint16_t>(static_cast<uint8_t>(b[at]) | static_cast<uint8_t>(b[at + 1]) << 8);
}
uint32_t le32(const std::string& b, size_t at) {
    return static_cast<uint32_t>(le16(b, at)) | static_cast<uint32_t>(le16(b, at + 2)) << 16;
}
uint64_t le64(const std::string& b, size_t at) {
    return static_cast<uint64_t>(le32(b, at)) | static_cast<uint64_t>(le32(b, at + 4)) << 32;
}

// GUIDs are stored with the first three fields little-endian.
std::string guid_at(const std::string& b, size_t at) {
    static const int k_order[16] = {3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15};
    std::string out;
    char hex[3];
    for (int i = 0; i < 16; ++i) {
        if (i == 4 || i == 6 || i == 8 || i == 10) out += '-';
        snprintf(hex, sizeof hex, "%02x", static_cast<uint8_t>(b[at + static_cast<size_t>(k_order[i])]));
        out += hex;
    }
    return out;
}

std::string hex8(uint32_t v) {
    char buf[16];
    snprintf(buf, sizeof buf, "%08x", v);
    return buf;
}

bool is_extended(uint8_t type) { return type == 0x05 || type == 0x0f || type == 0x85; }

void check_inside(const ImageFile& image, const Partition& p) {
    if (p.offset + p.size > image.size())
        throw Error("image '" + image.name() + "': partition " + std::to_string(p.number) + " ends at byte " +
                    std::to_string(p.offset + p.size) + ", past the end of the image (" + std::to_string(image.size()) +
                    " bytes): truncated image or garbage partition table");
}

PartitionTable read_gpt(const ImageFile& image, uint64_t sector) {
    PartitionTable t;
    t.scheme = PartitionTable::Scheme::Gpt;
    t.sector_size = sector;
    std::string hdr = image.read(sector, 92);
    if (hdr.compare(0, 8, "EFI PART") != 0)
        throw Error("image '" + image.name() + "': protective MBR but no GPT header at LBA 1");
    uint32_t hdr_size = le32(hdr, 12);
    if (hdr_size < 92 || hdr_size > sector) throw Error("image '" + image.name() + "': GPT header size is invalid");
    std::string full = image.read(sector, hdr_size);
    uint32_t want = le32(full, 16);
    std::memset(&full[16], 0, 4);
    if (crc32(full.data(), full.size()) != want) throw Error("image '" + image.name() + "': GPT header checksum mismatch");
    t.disk_guid = guid_at(hdr, 56);
    uint64_t entries_lba = le64(hdr, 72);
    uint32_t count = le32(hdr, 80), entry_size = le32(hdr, 84);
    if (entry_size < 128 || count > 1024) throw Error("image '" + image.name() + "': GPT entry table is invalid");
    std::string entries = image.read(entries_lba * sector, static_cast<size_t>(count) * entry_size);
    if (crc32(entries.data(), entries.size()) != le32(hdr, 88))
        throw Error("image '" + image.name() + "': GPT partition entries checksum mismatch");
    for (uint32_t i = 0; i < count; ++i) {
        size_t at = static_cast<size_t>(i) * entry_size;
        std::string type = guid_at(entries, at);
        if (type == "00000000-0000-0000-0000-000000000000") continue;
        Partition p;
        p.number = static_cast<int>(i + 1);
        p.type_guid = type;
        p.guid = guid_at(entries, at + 16);
        p.partuuid = p.guid;
        uint64_t first = le64(entries, at + 32), last = le64(entries, at + 40);
        if (last < first) throw Error("image '" + image.name() + "': GPT partition " + std::to_string(i + 1) + " ends before it starts");
        p.offset = first * sector;
        p.size = (last - first + 1) * sector;
        for (size_t c = 0; c < 36; ++c) { // UTF-16LE; names are ASCII in practice
            uint16_t ch = le16(entries, at + 56 + c * 2);
            if (ch == 0) break;
            p.name += ch < 0x80 ? static_cast<char>(ch) : '?';
        }
        check_inside(image, p);
        t.partitions.push_back(p);
    }
    return t;
}

} // namespace

std::shared_ptr<ImageFile> ImageFile::open(const std::string& path, const std::string& display) {
    std::shared_ptr<ImageFile> f(new ImageFile());
    f->m_path = path;
    f->m_name = display.empty() ? path : display;
    // O_NONBLOCK: a FIFO is refused below instead of waiting for a writer.
    f->m_fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (f->m_fd < 0) throw Error(errno_message("open image '" + path + "'", errno));
    struct stat st {};
    if (::fstat(f->m_fd, &st) != 0) throw Error(errno_message("stat image '" + path + "'", errno));
    if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
        throw Error("image '" + f->m_name + "' is not a regular file or block device");
    if (S_ISBLK(st.st_mode)) {
        off_t end = ::lseek(f->m_fd, 0, SEEK_END);
        f->m_size = end > 0 ? static_cast<uint64_t>(end) : 0;
    } else {
        f->m_size = static_cast<uint64_t>(st.st_size);
    }
    return f;
}

ImageFile::~ImageFile() {
    if (m_fd >= 0) ::close(m_fd);
}

void ImageFile::read(uint64_t offset, void* buf, size_t len) const {
    if (offset + len > m_size)
        throw Error("image '" + m_name + "': read of " + std::to_string(len) + " bytes at " + std::to_string(offset) +
                    " is past its end (" + std::to_string(m_size) + " bytes): truncated image?");
    char* p = static_cast<char*>(buf);
    while (len > 0) {
        ssize_t n = ::pread(m_fd, p, len, static_cast<off_t>(offset));
        if (n < 0 && errno == EINTR) {
            check_interrupted();
            continue;
        }
        if (n <= 0) throw Error(errno_message("read image '" + m_name + "'", n < 0 ? errno : EIO));
        p += n;
        len -= static_cast<size_t>(n);
        offset += static_cast<uint64_t>(n);
    }
}

std::string ImageFile::read(uint64_t offset, size_t len) const {
    std::string out(len, '\0');
    read(offset, out.data(), len);
    return out;
}

std::string PartitionTable::scheme_name() const {
    switch (scheme) {
    case Scheme::Mbr: return "dos";
    case Scheme::Gpt: return "gpt";
    case Scheme::None: return "none";
    }
    return "none";
}

std::string PartitionTable::disk_id() const {
    if (scheme == Scheme::Mbr) return "0x" + hex8(disk_signature);
    return disk_guid;
}

PartitionTable read_partition_table(const ImageFile& image) {
    PartitionTable t;
    if (image.size() < 512) throw Error("image '" + image.name() + "' is " + std::to_string(image.size()) + " bytes: too small to be a disk image");
    std::string mbr = image.read(0, 512);
    if (static_cast<uint8_t>(mbr[510]) != 0x55 || static_cast<uint8_t>(mbr[511]) != 0xAA) return t;
    // A filesystem without a table (a FAT "superfloppy") also ends its first sector in 55 AA.
    if (probe_filesystem(image, 0, image.size()) == "vfat") return t;
    for (int i = 0; i < 4; ++i) {
        uint8_t type = static_cast<uint8_t>(mbr[446 + i * 16 + 4]);
        if (type == 0xEE) return read_gpt(image, 512);
    }
    t.scheme = PartitionTable::Scheme::Mbr;
    t.disk_signature = le32(mbr, 440);
    auto add = [&](const std::string& sector, size_t entry, uint64_t base, int number) {
        size_t at = 446 + entry * 16;
        Partition p;
        p.number = number;
        p.bootable = static_cast<uint8_t>(sector[at]) == 0x80;
        uint8_t status = static_cast<uint8_t>(sector[at]);
        if (status != 0 && status != 0x80)
            throw Error("image '" + image.name() + "': partition entry " + std::to_string(number) +
                        " has status byte " + std::to_string(status) + ": not a partition table");
        p.mbr_type = static_cast<uint8_t>(sector[at + 4]);
        p.offset = (base + le32(sector, at + 8)) * 512;
        p.size = static_cast<uint64_t>(le32(sector, at + 12)) * 512;
        p.partuuid = hex8(t.disk_signature) + "-" + (number < 10 ? "0" : "") + std::to_string(number);
        return p;
    };
    std::optional<Partition> extended;
    for (int i = 0; i < 4; ++i) {
        Partition p = add(mbr, static_cast<size_t>(i), 0, i + 1);
        if (p.mbr_type == 0 || p.size == 0) continue;
        check_inside(image, p);
        if (is_extended(p.mbr_type)) extended = p;
        t.partitions.push_back(p);
    }
    if (extended) {
        // Logical partitions: a chain of EBRs, each relative to the extended partition's start.
        uint64_t ext_start = extended->offset / 512, next = 0;
        int number = 5;
        for (int hops = 0; hops < 128; ++hops) {
            std::string ebr = image.read((ext_start + next) * 512, 512);
            if (static_cast<uint8_t>(ebr[510]) != 0x55 || static_cast<uint8_t>(ebr[511]) != 0xAA)
                throw Error("image '" + image.name() + "': broken extended partition chain");
            Partition p = add(ebr, 0, ext_start + next, number++);
            if (p.mbr_type != 0 && p.size != 0) {
                check_inside(image, p);
                t.partitions.push_back(p);
            }
            uint64_t link = le32(ebr, 446 + 16 + 8);
            if (link == 0) break;
            next = link;
        }
    }
    for (size_t i = 0; i < t.partitions.size(); ++i)
        for (size_t j = i + 1; j < t.partitions.size(); ++j) {
            const Partition &a = t.partitions[i], &b = t.partitions[j];
            if (is_extended(a.mbr_type) || is_extended(b.mbr_type)) continue;
            if (a.offset < b.offset + b.size && b.offset < a.offset + a.size)
                throw Error("image '" + image.name() + "': partitions " + std::to_string(a.number) + " and " +
                            std::to_string(b.number) + " overlap: garbage partition table");
        }
    return t;
}

std::string probe_filesystem(const ImageFile& image, uint64_t offset, uint64_t size) {
    auto at = [&](uint64_t off, size_t len) -> std::string {
        if (off + len > size || offset + off + len > image.size()) return {};
        return image.read(offset + off, len);
    };
    std::string sb = at(1024, 1024);
    if (sb.size() == 1024 && le16(sb, 0x38) == 0xEF53) {
        uint32_t compat = le32(sb, 0x5C), incompat = le32(sb, 0x60);
        if (incompat & 0x2C0) return "ext4"; // extents, 64bit, flex_bg
        if (compat & 0x4) return "ext3";       // has_journal
        return "ext2";
    }
    std::string boot = at(0, 512);
    if (boot.size() == 512 && static_cast<uint8_t>(boot[510]) == 0x55 && static_cast<uint8_t>(boot[511]) == 0xAA &&
        (boot.compare(0x36, 3, "FAT") == 0 || boot.compare(0x52, 5, "FAT32") == 0))
        return "vfat";
    if (at(0x10040, 8) == "_BHRfS_M") return "btrfs";
    if (at(0, 4) == "XFSB") return "xfs";
    if (at(4086, 10) == "SWAPSPACE2") return "swap";
    if (at(512, 8) == "LABELONE") return "LVM2_member";
    if (at(0, 4) == "hsqs") return "squashfs";
    return "";
}

uint32_t crc32(const void* data, size_t len, uint32_t crc) {
    static uint32_t table[256];
    static bool ready = false;
    if (!ready) {
        for (uint32_t i = 0; i < 256; ++i) {
            uint32_t c = i;
            for (int k = 0; k < 8; ++k) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            table[i] = c;
        }
        ready = true;
    }
    crc = ~crc;
    const auto* p = static_cast<const uint8_t*>(data);
    for (size_t i = 0; i < len; ++i) crc = table[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
    return ~crc;
}

} // namespace ib
