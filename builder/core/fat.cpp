#include "core/fat.hpp"

#include "core/error.hpp"
#include "core/validate.hpp"

#include <cstring>
#include <set>
#include <ctime>
#include <set>
#include <vector>

namespace ib {

namespace {

uint16_t le16(const uint8_t* b) { return static_cast<uint16_t>(b[0] | b[1] << 8); }
uint32_t le32(const uint8_t* b) { return static_cast<uint32_t>(le16(b)) | static_cast<uint32_t>(le16(b + 2)) << 16; }

std::string trim_right(std::string s) {
    while (!s.empty() && (s.back() == ' ' || s.back() == '\0')) s.pop_back();
    return s;
}

// What a FAT volume is made of, shared by every Content that reads from it.
struct Volume {
    std::shared_ptr<const ImageFile> image;
    uint64_t offset = 0;
    uint32_t bytes_per_sector = 0;
    uint32_t cluster_size = 0;
    uint64_t root_offset = 0; // FAT12/16: fixed root folder
    uint32_t root_entries = 0;
    uint32_t root_cluster = 0; // FAT32
    uint64_t data_offset = 0; // in the image file
    uint64_t clusters = 0;
    int bits = 0;
    std::vector<uint32_t> fat;
    std::string what; // for messages

    uint32_t next(uint32_t cluster) const { return cluster < fat.size() ? fat[cluster] : 0x0FFFFFFF; }
    bool is_end(uint32_t c) const {
        uint32_t eoc = bits == 12 ? 0xFF8 : bits == 16 ? 0xFFF8 : 0x0FFFFFF8;
        return c >= eoc || c < 2;
    }
    uint64_t cluster_offset(uint32_t c) const { return data_offset + static_cast<uint64_t>(c - 2) * cluster_size; }

    std::vector<uint32_t> chain(uint32_t first) const {
        std::vector<uint32_t> out;
        for (uint32_t c = first; !is_end(c); c = next(c)) {
            if (c - 2 >= clusters) throw Error(what + ": cluster " + std::to_string(c) + " is outside the volume");
            if (out.size() > clusters) throw Error(what + ": cluster chain from " + std::to_string(first) + " loops");
            out.push_back(c);
        }
        return out;
    }
};

class FatContent final : public Content {
public:
    FatContent(std::shared_ptr<const Volume> v, uint32_t first, uint64_t size, std::string name)
        : m_v(std::move(v)), m_first(first), m_size(size), m_name(std::move(name)) {}
    uint64_t size() const override { return m_size; }
    void read(uint64_t offset, char* buf, size_t len) const override {
        const auto& chain = clusters();
        while (len > 0) {
            uint64_t index = offset / m_v->cluster_size, within = offset % m_v->cluster_size;
            if (index >= chain.size()) throw Error(describe() + ": cluster chain is shorter than the file");
            size_t n = static_cast<size_t>(std::min<uint64_t>(len, m_v->cluster_size - within));
            m_v->image->read(m_v->cluster_offset(chain[index]) + within, buf, n);
            buf += n;
            len -= n;
            offset += n;
        }
    }
    std::string describe() const override { return m_v->what + ": '" + m_name + "'"; }

private:
    const std::vector<uint32_t>& clusters() const {
        if (!m_loaded) {
            m_chain = m_v->chain(m_first);
            m_loaded = true;
        }
        return m_chain;
    }
    std::shared_ptr<const Volume> m_v;
    uint32_t m_first;
    uint64_t m_size;
    std::string m_name;
    mutable bool m_loaded = false;
    mutable std::vector<uint32_t> m_chain;
};

Timestamp fat_time(uint16_t date, uint16_t time) {
    if (date == 0) return {315532800, 0}; // 1980-01-01, FAT's epoch
    struct tm tm {};
    tm.tm_year = 80 + (date >> 9);
    tm.tm_mon = ((date >> 5) & 0xF) - 1;
    tm.tm_mday = date & 0x1F;
    tm.tm_hour = time >> 11;
    tm.tm_min = (time >> 5) & 0x3F;
    tm.tm_sec = (time & 0x1F) * 2;
    return {static_cast<int64_t>(timegm(&tm)), 0};
}

void append_utf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) out += static_cast<char>(cp);
    else if (cp < 0x800) {
        out += static_cast<char>(0xC0 | cp >> 6);
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        out += static_cast<char>(0xE0 | cp >> 12);
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
        out += static_cast<char>(0xF0 | cp >> 18);
        out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    }
}

std::string short_name(const uint8_t* e) {
    std::string base(reinterpret_cast<const char*>(e), 8), ext(reinterpret_cast<const char*>(e + 8), 3);
    if (static_cast<uint8_t>(base[0]) == 0x05) base[0] = static_cast<char>(0xE5);
    base = trim_right(base);
    ext = trim_right(ext);
    // Windows NT's flags for all-lower-case base name or extension.
    auto lower = [](std::string s) {
        for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        return s;
    };
    if (e[12] & 0x08) base = lower(base);
    if (e[12] & 0x10) ext = lower(ext);
    return ext.empty() ? base : base + "." + ext;
}

uint8_t short_checksum(const uint8_t* e) {
    uint8_t sum = 0;
    for (int i = 0; i < 11; ++i) sum = static_cast<uint8_t>(((sum & 1) << 7) + (sum >> 1) + e[i]);
    return sum;
}

// Reads a folder's raw entries: the fixed root region, or a cluster chain.
std::string folder_bytes(const Volume& v, uint32_t first_cluster, bool fixed_root) {
    if (fixed_root) return v.image->read(v.offset + v.root_offset, static_cast<size_t>(v.root_entries) * 32);
    std::string out;
    for (uint32_t c : v.chain(first_cluster)) out += v.image->read(v.cluster_offset(c), v.cluster_size);
    return out;
}

std::string ascii_lower(std::string s) {
    for (char& c : s)
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    return s;
}

// `read`: the first clusters of the folders read so far. Each folder has one entry in one parent;
// a second entry for the same folder is a damaged volume, and following it anyway was exponential
// (a folder holding two entries for itself is read 2^64 times before the depth limit).
void read_folder(const std::shared_ptr<const Volume>& v, uint32_t cluster, bool fixed_root, Tree& tree,
                 const std::string& at, int depth, std::set<uint32_t>& read) {
    if (depth > 64) throw Error(v->what + ": folders nested too deep (a loop?)");
    if (!fixed_root && !read.insert(cluster).second)
        throw Error(v->what + ": folder '" + at + "' starts at cluster " + std::to_string(cluster) +
                    ", which another folder already uses (a damaged volume)");
    std::string raw = folder_bytes(*v, cluster, fixed_root);
    std::vector<uint16_t> lfn;
    int lfn_checksum = -1;
    std::set<std::string> seen; // names in this folder, ASCII lower case: FAT folders ignore case
    for (size_t off = 0; off + 32 <= raw.size(); off += 32) {
        const auto* e = reinterpret_cast<const uint8_t*>(raw.data() + off);
        if (e[0] == 0x00) break;
        if (e[0] == 0xE5) {
            lfn.clear();
            continue;
        }
        uint8_t attr = e[11];
        if ((attr & 0x3F) == 0x0F) { // a long-name piece, stored last piece first
            int seq = e[0] & 0x1F;
            if (e[0] & 0x40) {
                lfn.assign(static_cast<size_t>(seq) * 13, 0xFFFF);
                lfn_checksum = e[13];
            }
            if (seq < 1 || static_cast<size_t>(seq) * 13 > lfn.size() || e[13] != lfn_checksum) {
                lfn.clear();
                continue;
            }
            size_t base = static_cast<size_t>(seq - 1) * 13;
            static const int k_pos[13] = {1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30};
            for (int i = 0; i < 13; ++i) lfn[base + static_cast<size_t>(i)] = le16(e + k_pos[i]);
            continue;
        }
        if (attr & 0x08) { // volume label
            lfn.clear();
            continue;
        }
        std::string name;
        std::string bad; // why the long name cannot be a file name, "" when it can
        bool long_name = !lfn.empty() && lfn_checksum == short_checksum(e);
        if (long_name) {
            size_t end = 0;
            while (end < lfn.size() && lfn[end] != 0 && lfn[end] != 0xFFFF)
                ++end;
            for (size_t i = end; i < lfn.size(); ++i)
                if (lfn[i] != 0 && lfn[i] != 0xFFFF) bad = "a NUL inside its long name";
            for (size_t i = 0; i < end; ++i) {
                uint32_t cp = lfn[i];
                if (cp >= 0xD800 && cp < 0xDC00 && i + 1 < end && lfn[i + 1] >= 0xDC00 &&
                    lfn[i + 1] < 0xE000) {
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lfn[i + 1] - 0xDC00);
                    ++i;
                } else if (cp >= 0xD800 && cp < 0xE000) {
                    bad = "an unpaired UTF-16 surrogate in its long name";
                }
                append_utf8(name, cp);
            }
        } else {
            name = short_name(e);
        }
        lfn.clear();
        // The dot entries of a subfolder are short names only; anything else is a name Linux cannot
        // hold: an error naming it, never a file left out (which would hide what else went wrong).
        if (!long_name && (name == "." || name == "..")) continue;
        std::string where = v->what + ": folder '" + at + "' has an entry named '" + validate::shown(name) +
                            "' (short name '" + short_name(e) + "')";
        if (name.empty() || name == "." || name == "..")
            bad = "a name no file can have";
        else if (name.find('/') != std::string::npos)
            bad = "'/' in its name";
        if (!bad.empty()) throw Error(where + " with " + bad);
        if (!seen.insert(ascii_lower(name)).second)
            throw Error(where + ", a name that is already in that folder (FAT folders ignore case)");
        uint32_t first = static_cast<uint32_t>(le16(e + 26)) | (v->bits == 32 ? static_cast<uint32_t>(le16(e + 20)) << 16 : 0);
        Timestamp mtime = fat_time(le16(e + 24), le16(e + 22));
        std::string p = at == "/" ? "/" + name : at + "/" + name;
        if (attr & 0x10) {
            tree.put(p, Entry::directory(0755, mtime));
            if (first != 0) read_folder(v, first, false, tree, p, depth + 1, read);
        } else {
            uint64_t size = le32(e + 28);
            ContentRef content = size ? std::make_shared<FatContent>(v, first, size, p) : nullptr;
            tree.put(p, Entry::file(content, 0755, mtime));
        }
    }
}

std::shared_ptr<Volume> open_volume(const std::shared_ptr<const ImageFile>& image, uint64_t offset, uint64_t size,
                                    FatInfo* info) {
    auto v = std::make_shared<Volume>();
    v->image = image;
    v->offset = offset;
    v->what = "FAT filesystem at byte " + std::to_string(offset) + " of '" + image->name() + "'";
    uint8_t bs[512];
    if (size < 512) throw Error(v->what + ": partition too small");
    image->read(offset, bs, 512);
    v->bytes_per_sector = le16(bs + 11);
    uint32_t spc = bs[13], reserved = le16(bs + 14), fats = bs[16];
    v->root_entries = le16(bs + 17);
    uint64_t total = le16(bs + 19) ? le16(bs + 19) : le32(bs + 32);
    uint64_t fat_size = le16(bs + 22) ? le16(bs + 22) : le32(bs + 36);
    uint32_t bps = v->bytes_per_sector;
    if (bs[510] != 0x55 || bs[511] != 0xAA || (bps != 512 && bps != 1024 && bps != 2048 && bps != 4096) || spc == 0 ||
        (spc & (spc - 1)) != 0 || fats == 0 || reserved == 0 || fat_size == 0 || total == 0)
        throw Error(v->what + ": not a FAT boot sector");
    v->cluster_size = bps * spc;
    uint64_t root_sectors = (static_cast<uint64_t>(v->root_entries) * 32 + bps - 1) / bps;
    uint64_t fat_start = reserved;
    v->root_offset = (fat_start + fats * fat_size) * bps;
    uint64_t data_start = fat_start + fats * fat_size + root_sectors;
    if (data_start >= total || total * bps > size) throw Error(v->what + ": boot sector sizes do not fit the partition");
    v->data_offset = offset + data_start * bps; // absolute, like every offset read from the image
    v->clusters = (total - data_start) / spc;
    v->bits = v->clusters < 4085 ? 12 : v->clusters < 65525 ? 16 : 32;
    if (v->bits == 32) v->root_cluster = le32(bs + 44);
    if (info) {
        info->type = "FAT" + std::to_string(v->bits);
        info->clusters = v->clusters;
        info->cluster_size = v->cluster_size;
        const uint8_t* ext = v->bits == 32 ? bs + 64 : bs + 36; // extended boot record
        if (ext[2] == 0x29) {
            info->serial = le32(ext + 3);
            info->label = trim_right(std::string(reinterpret_cast<const char*>(ext + 7), 11));
            if (info->label == "NO NAME") info->label.clear();
        }
    }
    // The whole first FAT, decoded to 32-bit entries.
    std::string raw = image->read(offset + fat_start * bps, static_cast<size_t>(fat_size * bps));
    const auto* f = reinterpret_cast<const uint8_t*>(raw.data());
    uint64_t n = std::min<uint64_t>(v->clusters + 2, v->bits == 12 ? raw.size() * 2 / 3 : raw.size() * 8 / v->bits);
    v->fat.resize(n);
    for (uint64_t c = 0; c < n; ++c) {
        if (v->bits == 32) v->fat[c] = le32(f + c * 4) & 0x0FFFFFFF;
        else if (v->bits == 16) v->fat[c] = le16(f + c * 2);
        else {
            uint16_t pair = le16(f + c * 3 / 2);
            v->fat[c] = c & 1 ? pair >> 4 : pair & 0xFFF;
        }
    }
    return v;
}

} // namespace

std::string FatInfo::uuid() const {
    char buf[16];
    snprintf(buf, sizeof buf, "%04X-%04X", serial >> 16, serial & 0xFFFF);
    return buf;
}

FatInfo fat_info(const ImageFile& image, uint64_t offset, uint64_t size) {
    FatInfo info;
    // A non-owning shared_ptr: the volume does not outlive this call.
    std::shared_ptr<const ImageFile> alias(std::shared_ptr<const ImageFile>{}, &image);
    open_volume(alias, offset, size, &info);
    return info;
}

void read_fat(const std::shared_ptr<const ImageFile>& image, uint64_t offset, uint64_t size, Tree& tree,
              const std::string& mount) {
    auto v = open_volume(image, offset, size, nullptr);
    tree.mkdirs(mount, Entry::directory(0755, tree.default_mtime()));
    std::string at = tree.resolve(mount);
    std::set<uint32_t> folders;
    read_folder(v, v->root_cluster, v->bits != 32, tree, at, 0, folders);
}

} // namespace ib
