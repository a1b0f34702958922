#include "core/fat_write.hpp"

#include "core/error.hpp"
#include "core/path.hpp"
#include "core/validate.hpp"

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fcntl.h>
#include <map>
#include <optional>
#include <set>
#include <string_view>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

namespace ib {

namespace {

constexpr uint32_t k_sector = 512;
// Cluster counts per FAT type. Linux takes 4085 and more clusters as FAT16, Windows only from 4087:
// mkfs.fat leaves out 4085 and 4086, and so do we. FAT32 with fewer than 65525 clusters is refused by
// mtools (and by our own reader, which tells the type by the count).
constexpr uint64_t k_max_clusters_12 = 4084;
constexpr uint64_t k_min_clusters_16 = 4087;
constexpr uint64_t k_max_clusters_16 = 65524;
constexpr uint64_t k_min_clusters_32 = 65525;
constexpr uint64_t k_max_clusters_32 = 0x0FFFFFF5; // cluster numbers 2 .. 0x0FFFFFF6; 0x0FFFFFF7 means bad
constexpr uint32_t k_max_folder_slots = 65536;     // a folder's entries are counted in 16 bits
constexpr uint64_t k_max_file_size = 0xFFFFFFFF;
constexpr uint8_t k_attr_volume = 0x08, k_attr_dir = 0x10, k_attr_archive = 0x20, k_attr_lfn = 0x0F;

void put16(uint8_t* b, uint32_t v) {
    b[0] = static_cast<uint8_t>(v);
    b[1] = static_cast<uint8_t>(v >> 8);
}
void put32(uint8_t* b, uint32_t v) {
    put16(b, v & 0xFFFF);
    put16(b + 2, v >> 16);
}
uint64_t div_up(uint64_t a, uint64_t b) { return (a + b - 1) / b; }

// --- Names ------------------------------------------------------------------------------------------

// UTF-8 to UTF-16, strictly (no overlong forms, no surrogates). False when `s` is not valid UTF-8.
bool to_utf16(std::string_view s, std::u16string& out) {
    out.clear();
    for (size_t i = 0; i < s.size();) {
        auto b = static_cast<unsigned char>(s[i]);
        uint32_t cp = 0;
        size_t n = 0;
        if (b < 0x80) cp = b;
        else if ((b & 0xE0) == 0xC0) cp = b & 0x1F, n = 1;
        else if ((b & 0xF0) == 0xE0) cp = b & 0x0F, n = 2;
        else if ((b & 0xF8) == 0xF0) cp = b & 0x07, n = 3;
        else return false;
        if (i + n >= s.size()) return false; // truncated sequence
        for (size_t k = 1; k <= n; ++k) {
            auto c = static_cast<unsigned char>(s[i + k]);
            if ((c & 0xC0) != 0x80) return false;
            cp = cp << 6 | (c & 0x3F);
        }
        static const uint32_t k_min[4] = {0, 0x80, 0x800, 0x10000};
        if (cp < k_min[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp < 0xE000)) return false;
        if (cp >= 0x10000) {
            out += static_cast<char16_t>(0xD800 + ((cp - 0x10000) >> 10));
            out += static_cast<char16_t>(0xDC00 + ((cp - 0x10000) & 0x3FF));
        } else {
            out += static_cast<char16_t>(cp);
        }
        i += n + 1;
    }
    return true;
}

// Why `name` cannot be a VFAT long name, or "" when it can; `utf16` gets the name in UTF-16.
std::string bad_name(std::string_view name, std::u16string& utf16) {
    if (!to_utf16(name, utf16)) return "its name is not valid UTF-8";
    for (char c : name) {
        if (static_cast<unsigned char>(c) < 0x20) return "its name contains a control character";
        if (std::string_view("\\:*?\"<>|").find(c) != std::string_view::npos)
            return std::string("its name contains '") + c + "', which FAT names cannot hold";
    }
    // Windows drops trailing dots and spaces, Linux trailing dots: the name would not come back.
    if (!name.empty() && (name.back() == '.' || name.back() == ' ')) return "its name ends with a dot or space, which FAT drops";
    if (utf16.size() > 255) return "its name is longer than FAT's 255 characters";
    return {};
}

// The 8.3 form of a long name before any numeric tail, as Windows and Linux's vfat derive it:
// upper case, spaces and dots (but the extension's) left out, characters short names cannot hold
// replaced by '_'. `lossy` when the long name cannot be recovered from it but for case.
struct ShortBasis {
    std::string base, ext;
    bool lossy = false;
    bool fits() const { return !lossy && base.size() <= 8 && ext.size() <= 3; }
};

void map_short_part(std::string_view src, std::string& out, bool& lossy) {
    for (char ch : src) {
        auto c = static_cast<unsigned char>(ch);
        if (c == ' ' || c == '.') {
            lossy = true;
        } else if (c >= 0x80) {
            if (c >= 0xC0) out += '_'; // one per code point: continuation bytes add nothing
            lossy = true;
        } else if (c >= 'a' && c <= 'z') {
            out += static_cast<char>(c - 'a' + 'A');
        } else if ((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                   std::string_view("!#$%&'()-@^_`{}~").find(ch) != std::string_view::npos) {
            out += ch;
        } else { // + , ; = [ ] and the like
            out += '_';
            lossy = true;
        }
    }
}

ShortBasis short_basis(std::string_view name) {
    ShortBasis b;
    size_t dot = name.rfind('.');
    // A last dot with only dots and spaces before it (".bashrc") starts no extension.
    bool has_ext = dot != std::string_view::npos && name.find_first_not_of(". ") < dot;
    map_short_part(has_ext ? name.substr(0, dot) : name, b.base, b.lossy);
    if (has_ext) map_short_part(name.substr(dot + 1), b.ext, b.lossy);
    if (b.base.empty()) {
        b.base = "_";
        b.lossy = true;
    }
    return b;
}

using ShortName = std::array<uint8_t, 11>;

ShortName pack_short(std::string_view base, std::string_view ext) {
    ShortName s;
    s.fill(' ');
    std::copy_n(base.begin(), std::min<size_t>(base.size(), 8), s.begin());
    std::copy_n(ext.begin(), std::min<size_t>(ext.size(), 3), s.begin() + 8);
    return s;
}

uint8_t short_checksum(const ShortName& s) {
    uint8_t sum = 0;
    for (uint8_t c : s) sum = static_cast<uint8_t>(((sum & 1) << 7) + (sum >> 1) + c);
    return sum;
}

std::string ascii_lower(std::string s) {
    for (auto& c : s)
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    return s;
}

// --- The plan: what goes where --------------------------------------------------------------------

struct Node {
    std::string path;             // as the walk reached it, for messages
    std::u16string lfn;           // empty when the short name is the whole name
    ShortName short_name{};
    const Entry* entry = nullptr; // the file or folder itself (a symlink's or hardlink's target)
    std::vector<Node> children;   // folders: sorted by name
    uint32_t slots = 0;           // folders: 32-byte entries, "." and ".." or the volume label included
    uint64_t first = 0;           // first cluster; 0 for an empty file and the FAT12/16 root
    uint64_t count = 0;           // clusters

    bool is_dir() const { return entry->is_dir(); }
    uint64_t size() const { return entry->size(); }
};

std::string cannot(const std::string& p) {
    return "cannot write '" + validate::shown(p) + "' to FAT: ";
}

// Gives every child of `folder` its short name, long name and entry count.
void name_children(Node& folder) {
    std::map<std::string, const Node*> by_lower;
    std::set<ShortName> taken;
    std::vector<ShortBasis> bases;
    for (Node& child : folder.children) {
        std::string name(path::name(child.path));
        std::u16string utf16;
        std::string why = bad_name(name, utf16);
        if (!why.empty()) throw Error(cannot(child.path) + why);
        auto [it, fresh] = by_lower.emplace(ascii_lower(name), &child);
        if (!fresh)
            throw Error(cannot(child.path) + "'" + it->second->path +
                        "' has the same name but for case, and FAT folders ignore case");
        ShortBasis b = short_basis(name);
        if (b.fits()) {
            // The 8.3 form itself, without a tail: reserved before any tail is chosen, so no
            // generated name can take it. Only a case twin could collide, and that was refused above.
            child.short_name = pack_short(b.base, b.ext);
            taken.insert(child.short_name);
            bool exact = name == (b.ext.empty() ? b.base : b.base + "." + b.ext);
            if (!exact) child.lfn = utf16;
        } else {
            child.lfn = utf16;
        }
        bases.push_back(std::move(b));
    }
    for (size_t i = 0; i < folder.children.size(); ++i) {
        Node& child = folder.children[i];
        const ShortBasis& b = bases[i];
        if (b.fits()) continue;
        for (uint32_t n = 1;; ++n) { // a folder holds at most 65536 entries: this ends
            std::string tail = "~" + std::to_string(n);
            ShortName s = pack_short(b.base.substr(0, 8 - tail.size()) + tail, b.ext);
            if (taken.insert(s).second) {
                child.short_name = s;
                break;
            }
        }
    }
    for (const Node& child : folder.children) folder.slots += 1 + static_cast<uint32_t>(div_up(child.lfn.size(), 13));
    if (folder.slots > k_max_folder_slots)
        throw Error(cannot(folder.path) + "it needs " + std::to_string(folder.slots) +
                    " directory entries, more than the 65536 a FAT folder holds");
}

// Adds the content of the folder stored at `stored` to `folder`, following symlinks in the tree.
// `chain` holds the stored paths of the folders being copied, to refuse a link to one of them.
void plan_folder(const Tree& tree, Node& folder, const std::string& stored, std::vector<std::string>& chain) {
    chain.push_back(stored);
    for (const std::string& name : tree.children(stored)) {
        Node child;
        child.path = folder.path == "/" ? "/" + name : folder.path + "/" + name;
        std::string real = stored == "/" ? "/" + name : stored + "/" + name;
        const Entry* e = tree.get(real);
        if (e && e->type == FileType::Symlink) {
            std::string target = e->link;
            real = tree.resolve(real);
            e = tree.get(real);
            if (!e) throw Error(cannot(child.path) + "it is a symlink to '" + target + "', which is not in the image");
        }
        if (e && e->type == FileType::Hardlink) e = tree.get(e->link);
        if (!e) throw Error(cannot(child.path) + "it is missing from the image");
        child.entry = e;
        if (e->is_dir()) {
            for (const std::string& outer : chain)
                if (path::is_within(outer, real))
                    throw Error(cannot(child.path) + "it links to '" + real +
                                "', a folder that contains it, and FAT cannot hold the loop");
            plan_folder(tree, child, real, chain);
        } else if (e->type != FileType::Regular) {
            throw Error(cannot(child.path) + "it is a " + std::string(type_name(e->type)) +
                        ", and FAT holds only files and folders");
        } else if (e->size() > k_max_file_size) {
            throw Error(cannot(child.path) + "it has " + std::to_string(e->size()) +
                        " bytes, and FAT files hold at most 4 GiB - 1");
        }
        folder.children.push_back(std::move(child));
    }
    chain.pop_back();
    folder.slots = 2; // "." and ".."; the root's are set by plan()
    name_children(folder);
}

Node plan(const Tree& tree, const std::string& dir, bool label_entry) {
    Node root;
    root.path = path::normalise(dir);
    std::string stored = tree.resolve(root.path);
    root.entry = tree.find(root.path);
    if (!root.entry || !root.entry->is_dir()) throw Error(cannot(root.path) + "it is not a folder in the image");
    std::vector<std::string> chain;
    plan_folder(tree, root, stored, chain);
    root.slots -= 2; // the root has no "." and ".."
    if (label_entry) ++root.slots;
    return root;
}

// Clusters for every folder and file, contiguous, in walk order; `next` is the first free cluster.
void allocate(Node& folder, uint32_t cluster_size, uint64_t& next) {
    for (Node& child : folder.children) {
        if (child.is_dir()) {
            child.count = std::max<uint64_t>(1, div_up(uint64_t{child.slots} * 32, cluster_size));
            child.first = next;
            next += child.count;
            allocate(child, cluster_size, next);
        } else {
            child.count = div_up(child.size(), cluster_size);
            child.first = child.count ? next : 0;
            next += child.count;
        }
    }
}

// --- Geometry ---------------------------------------------------------------------------------------

struct Geometry {
    int bits = 0;
    uint32_t spc = 0; // sectors per cluster
    uint32_t reserved = 0;
    uint32_t root_entries = 0; // FAT12/16
    uint32_t fat_sectors = 0;
    uint64_t total = 0; // sectors
    uint64_t clusters = 0;

    uint32_t cluster_size() const { return spc * k_sector; }
    uint64_t root_sectors() const { return div_up(uint64_t{root_entries} * 32, k_sector); }
    uint64_t fat_offset(int copy) const { return (reserved + uint64_t{fat_sectors} * static_cast<uint64_t>(copy)) * k_sector; }
    uint64_t root_offset() const { return fat_offset(2); }
    uint64_t data_offset() const { return root_offset() + root_sectors() * k_sector; }
    uint64_t cluster_offset(uint64_t c) const { return data_offset() + (c - 2) * cluster_size(); }
    std::string type() const { return "FAT" + std::to_string(bits); }
};

std::optional<Geometry> layout(int bits, uint32_t spc, uint64_t total, uint32_t root_entries) {
    Geometry g;
    g.bits = bits;
    g.spc = spc;
    g.total = total;
    g.reserved = bits == 32 ? 32 : 1;
    g.root_entries = bits == 32 ? 0 : root_entries;
    uint64_t fixed = g.reserved + g.root_sectors();
    if (total <= fixed) return std::nullopt;
    // FATs sized for the clusters there would be if they took no room: a bound that always holds, and
    // wastes at most a few sectors (fatgen103's formula does the same).
    uint64_t most = (total - fixed) / spc;
    g.fat_sectors = static_cast<uint32_t>(div_up((most + 2) * static_cast<uint64_t>(bits), k_sector * 8));
    if (bits == 32) {
        // Data area aligned to the cluster, as mkfs.fat does: with the partition aligned, every
        // cluster then is too, which flash media want.
        uint64_t data = g.reserved + 2 * uint64_t{g.fat_sectors};
        g.reserved += static_cast<uint32_t>((spc - data % spc) % spc);
    }
    uint64_t data = g.reserved + 2 * uint64_t{g.fat_sectors} + g.root_sectors();
    if (total <= data) return std::nullopt;
    g.clusters = (total - data) / spc;
    bool ok = bits == 12   ? g.clusters >= 1 && g.clusters <= k_max_clusters_12
              : bits == 16 ? g.clusters >= k_min_clusters_16 && g.clusters <= k_max_clusters_16
                           : g.clusters >= k_min_clusters_32 && g.clusters <= k_max_clusters_32;
    if (!ok) return std::nullopt;
    return g;
}

// Windows' default FAT32 cluster sizes (Microsoft KB 140365), in sectors.
uint32_t default_spc32(uint64_t bytes) {
    constexpr uint64_t mib = uint64_t{1} << 20, gib = uint64_t{1} << 30;
    if (bytes <= 64 * mib) return 1;
    if (bytes <= 128 * mib) return 2;
    if (bytes <= 256 * mib) return 4;
    if (bytes <= 8 * gib) return 8;
    if (bytes <= 16 * gib) return 16;
    if (bytes <= 32 * gib) return 32;
    return 64;
}

std::optional<Geometry> layout_for(int bits, uint64_t size, const FatOptions& o, uint32_t root_entries) {
    uint64_t total = size / k_sector;
    if (o.cluster_size) return layout(bits, o.cluster_size / k_sector, total, root_entries);
    if (bits == 32) {
        // Smaller clusters where the default leaves too few for FAT32 (a 65 MiB partition).
        for (uint32_t spc = default_spc32(size); spc >= 1; spc /= 2)
            if (auto g = layout(32, spc, total, root_entries)) return g;
        return std::nullopt;
    }
    // FAT12/16: the smallest clusters that keep the count within the type's maximum.
    for (uint32_t spc = 1; spc <= 128; spc *= 2)
        if (auto g = layout(bits, spc, total, root_entries)) return g;
    return std::nullopt;
}

Geometry choose_geometry(uint64_t size, const FatOptions& o, uint32_t root_entries) {
    std::string what = "a FAT filesystem of " + std::to_string(size) + " bytes";
    if (size / k_sector > 0xFFFFFFFF) throw Error(what + ": FAT holds at most 2^32 sectors (2 TiB)");
    std::string clusters = o.cluster_size ? " with " + std::to_string(o.cluster_size) + "-byte clusters" : "";
    const char* k_limits = "FAT12 holds at most 4084 clusters, FAT16 4087 to 65524, FAT32 65525 or more";
    if (o.fat_bits) {
        if (auto g = layout_for(o.fat_bits, size, o, root_entries)) return *g;
        throw Error(what + ": cannot be FAT" + std::to_string(o.fat_bits) + clusters + " (" + k_limits + ")");
    }
    for (int bits : {32, 16, 12})
        if (auto g = layout_for(bits, size, o, root_entries)) return *g;
    throw Error(what + ": no FAT type fits it" + clusters + " (" + k_limits + ")");
}

void check_options(const FatOptions& o) {
    if (o.fat_bits != 0 && o.fat_bits != 12 && o.fat_bits != 16 && o.fat_bits != 32)
        throw Error("FAT: type FAT" + std::to_string(o.fat_bits) + " does not exist (12, 16 or 32)");
    uint32_t cs = o.cluster_size;
    if (cs != 0 && (cs < 512 || cs > 65536 || (cs & (cs - 1)) != 0))
        throw Error("FAT: cluster size " + std::to_string(cs) + " is not a power of two from 512 to 65536");
    if (o.label.size() > 11) throw Error("FAT: volume label '" + o.label + "' is longer than 11 characters");
    for (char c : o.label)
        if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) > 0x7E ||
            std::string_view("*?.,;:/\\|+=<>[]\"").find(c) != std::string_view::npos)
            throw Error("FAT: volume label '" + o.label + "' holds '" + std::string(1, c) +
                        "'; labels are printable ASCII without * ? . , ; : / \\ | + = < > [ ] \"");
}

// --- Bytes ------------------------------------------------------------------------------------------

struct FatTime {
    uint16_t date = 0;
    uint16_t time = 0;
    uint8_t centis = 0; // creation time's extra 10 ms units (0-199)
};

FatTime fat_time(Timestamp t) {
    constexpr int64_t k_1980 = 315532800; // FAT's epoch, 1980-01-01T00:00:00Z
    if (t.sec < k_1980) return {(0 << 9) | (1 << 5) | 1, 0, 0};
    time_t sec = static_cast<time_t>(t.sec);
    struct tm tm {};
    gmtime_r(&sec, &tm);
    int year = tm.tm_year + 1900;
    if (year > 2107) return {(127 << 9) | (12 << 5) | 31, (23 << 11) | (59 << 5) | 29, 100};
    FatTime f;
    f.date = static_cast<uint16_t>((year - 1980) << 9 | (tm.tm_mon + 1) << 5 | tm.tm_mday);
    f.time = static_cast<uint16_t>(tm.tm_hour << 11 | tm.tm_min << 5 | tm.tm_sec / 2);
    f.centis = static_cast<uint8_t>((tm.tm_sec % 2) * 100 + t.nsec / 10000000);
    return f;
}

Timestamp mtime_of(const Entry& e, const FatOptions& o) { return e.mtime == Timestamp{} ? o.mtime : e.mtime; }

void put_entry(uint8_t* e, const ShortName& name, uint8_t attr, uint64_t cluster, uint64_t size, FatTime t) {
    std::copy(name.begin(), name.end(), e);
    e[11] = attr;
    e[13] = t.centis;
    put16(e + 14, t.time); // created
    put16(e + 16, t.date);
    put16(e + 18, t.date); // accessed
    put16(e + 20, static_cast<uint32_t>(cluster >> 16)); // 0 on FAT12/16: their clusters fit 16 bits
    put16(e + 22, t.time); // written
    put16(e + 24, t.date);
    put16(e + 26, static_cast<uint32_t>(cluster & 0xFFFF));
    put32(e + 28, static_cast<uint32_t>(size));
}

// The long-name entries for `lfn`, last piece first, each carrying the short name's checksum.
void put_lfn(std::string& out, const std::u16string& lfn, uint8_t checksum) {
    static const int k_pos[13] = {1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30};
    size_t pieces = div_up(lfn.size(), 13);
    for (size_t seq = pieces; seq >= 1; --seq) {
        uint8_t e[32] = {};
        e[0] = static_cast<uint8_t>(seq | (seq == pieces ? 0x40 : 0));
        e[11] = k_attr_lfn;
        e[13] = checksum;
        for (size_t i = 0; i < 13; ++i) {
            size_t at = (seq - 1) * 13 + i;
            // The name ends with one 0x0000 unless it fills the piece, then 0xFFFF pads.
            uint16_t ch = at < lfn.size() ? lfn[at] : at == lfn.size() ? 0x0000 : 0xFFFF;
            put16(e + k_pos[i], ch);
        }
        out.append(reinterpret_cast<const char*>(e), 32);
    }
}

ShortName label_name(const std::string& label) { return pack_short(label.substr(0, 8), label.size() > 8 ? label.substr(8) : ""); }

// A folder's entries: "." and ".." (or the volume label, for the root), then the children in order.
std::string folder_bytes(const Node& folder, bool is_root, uint64_t parent_cluster, const FatOptions& o) {
    std::string out;
    out.reserve(uint64_t{folder.slots} * 32);
    uint8_t e[32];
    if (is_root) {
        if (!o.label.empty()) {
            std::memset(e, 0, 32);
            put_entry(e, label_name(o.label), k_attr_volume, 0, 0, fat_time(o.mtime));
            out.append(reinterpret_cast<const char*>(e), 32);
        }
    } else {
        FatTime t = fat_time(mtime_of(*folder.entry, o));
        std::memset(e, 0, 32);
        put_entry(e, pack_short(".", ""), k_attr_dir, folder.first, 0, t);
        out.append(reinterpret_cast<const char*>(e), 32);
        std::memset(e, 0, 32);
        put_entry(e, pack_short("..", ""), k_attr_dir, parent_cluster, 0, t);
        out.append(reinterpret_cast<const char*>(e), 32);
    }
    for (const Node& child : folder.children) {
        if (!child.lfn.empty()) put_lfn(out, child.lfn, short_checksum(child.short_name));
        std::memset(e, 0, 32);
        put_entry(e, child.short_name, child.is_dir() ? k_attr_dir : k_attr_archive, child.first,
                  child.is_dir() ? 0 : child.size(), fat_time(mtime_of(*child.entry, o)));
        out.append(reinterpret_cast<const char*>(e), 32);
    }
    return out;
}

std::array<uint8_t, 512> boot_sector(const Geometry& g, const Node& root, const FatOptions& o) {
    std::array<uint8_t, 512> s{};
    uint8_t* b = s.data();
    b[0] = 0xEB; // jmp short over the BPB, nop
    b[1] = g.bits == 32 ? 0x58 : 0x3C;
    b[2] = 0x90;
    std::memcpy(b + 3, "IMGBUILD", 8);
    put16(b + 11, k_sector);
    b[13] = static_cast<uint8_t>(g.spc);
    put16(b + 14, g.reserved);
    b[16] = 2; // FATs
    put16(b + 17, g.root_entries);
    bool small = g.bits != 32 && g.total < 0x10000;
    put16(b + 19, small ? static_cast<uint32_t>(g.total) : 0);
    b[21] = 0xF8; // fixed disk
    put16(b + 22, g.bits == 32 ? 0 : g.fat_sectors); // 0 is what makes it FAT32 to Linux and Windows
    put16(b + 24, 63); // CHS geometry nobody uses any more: the usual LBA translation
    put16(b + 26, 255);
    put32(b + 28, o.hidden_sectors);
    put32(b + 32, small ? 0 : static_cast<uint32_t>(g.total));
    uint8_t* ext = b + 36;
    if (g.bits == 32) {
        put32(b + 36, g.fat_sectors);
        put16(b + 40, 0); // FATs mirrored
        put16(b + 42, 0); // version 0.0
        put32(b + 44, static_cast<uint32_t>(root.first));
        put16(b + 48, 1); // FSInfo sector
        put16(b + 50, 6); // backup boot sector
        ext = b + 64;
    }
    ext[0] = 0x80; // drive number: first hard disk
    ext[2] = 0x29; // serial, label and type follow
    put32(ext + 3, o.serial);
    ShortName label = o.label.empty() ? pack_short("NO NAME", "") : label_name(o.label);
    std::copy(label.begin(), label.end(), ext + 7);
    std::memcpy(ext + 18, g.bits == 32 ? "FAT32   " : g.bits == 16 ? "FAT16   " : "FAT12   ", 8);
    // Where the jump lands: ask the BIOS for the next boot device, else halt. This is a data partition.
    static const uint8_t k_code[] = {0xCD, 0x18, 0xF4, 0xEB, 0xFD};
    std::memcpy(ext + 26, k_code, sizeof k_code);
    b[510] = 0x55;
    b[511] = 0xAA;
    return s;
}

std::array<uint8_t, 512> fsinfo_sector(const Geometry& g, uint64_t next_free) {
    std::array<uint8_t, 512> s{};
    uint64_t used = next_free - 2;
    put32(s.data(), 0x41615252);
    put32(s.data() + 484, 0x61417272);
    put32(s.data() + 488, static_cast<uint32_t>(g.clusters - used));
    put32(s.data() + 492, used < g.clusters ? static_cast<uint32_t>(next_free) : 0xFFFFFFFF);
    put32(s.data() + 508, 0xAA550000);
    return s;
}

// The used part of a FAT (entries 0 to next_free - 1); the rest of it is zeros, meaning free.
std::string fat_bytes(const Geometry& g, const Node& root, uint64_t next_free) {
    uint32_t mask = g.bits == 12 ? 0xFFF : g.bits == 16 ? 0xFFFF : 0x0FFFFFFF;
    std::vector<uint32_t> fat(next_free, 0);
    fat[0] = 0x0FFFFFF8 & mask; // the media byte
    fat[1] = mask;              // end of chain, with the clean-shutdown and no-error bits set
    auto chain = [&](const Node& n) {
        for (uint64_t c = n.first; c + 1 < n.first + n.count; ++c) fat[c] = static_cast<uint32_t>(c + 1);
        if (n.count) fat[n.first + n.count - 1] = mask;
    };
    auto walk = [&](auto& self, const Node& folder) -> void {
        for (const Node& child : folder.children) {
            chain(child);
            if (child.is_dir()) self(self, child);
        }
    };
    chain(root);
    walk(walk, root);
    std::string out(div_up(next_free * static_cast<uint64_t>(g.bits), 8), '\0');
    auto* b = reinterpret_cast<uint8_t*>(out.data());
    for (uint64_t c = 0; c < next_free; ++c) {
        if (g.bits == 32) put32(b + c * 4, fat[c]);
        else if (g.bits == 16) put16(b + c * 2, fat[c]);
        else if (c % 2 == 0) { // two 12-bit entries share three bytes
            b[c * 3 / 2] = static_cast<uint8_t>(fat[c]);
            b[c * 3 / 2 + 1] = static_cast<uint8_t>((b[c * 3 / 2 + 1] & 0xF0) | fat[c] >> 8);
        } else {
            b[c * 3 / 2] = static_cast<uint8_t>((b[c * 3 / 2] & 0x0F) | (fat[c] & 0x0F) << 4);
            b[c * 3 / 2 + 1] = static_cast<uint8_t>(fat[c] >> 4);
        }
    }
    return out;
}

// --- Output -----------------------------------------------------------------------------------------

// Writes into the partition: offsets are from its start.
class Output {
public:
    Output(int fd, uint64_t base) : m_fd(fd), m_base(base) {}

    void write(uint64_t off, const void* data, size_t len) const {
        const char* p = static_cast<const char*>(data);
        while (len > 0) {
            ssize_t n = ::pwrite(m_fd, p, len, static_cast<off_t>(m_base + off));
            if (n < 0 && errno == EINTR) {
                check_interrupted();
                continue;
            }
            if (n <= 0) throw Error(errno_message(where(off), n < 0 ? errno : ENOSPC));
            p += n;
            len -= static_cast<size_t>(n);
            off += static_cast<uint64_t>(n);
        }
    }
    void write(uint64_t off, const std::string& data) const { write(off, data.data(), data.size()); }

    // Makes [off, off + len) read as zeros: a hole where the file allows one (a sparse image stays
    // sparse, and nothing is written for what already is one), else written zeros (a block device).
    void zero(uint64_t off, uint64_t len) const {
        if (len == 0) return;
        if (::fallocate(m_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(m_base + off),
                        static_cast<off_t>(len)) == 0)
            return;
        static const std::string k_zeros(1 << 16, '\0');
        while (len > 0) {
            size_t n = static_cast<size_t>(std::min<uint64_t>(len, k_zeros.size()));
            write(off, k_zeros.data(), n);
            off += n;
            len -= n;
        }
    }

private:
    std::string where(uint64_t off) const { return "write FAT filesystem at byte " + std::to_string(m_base + off); }
    int m_fd;
    uint64_t m_base;
};

void write_file(const Output& out, const Geometry& g, const Node& file) {
    if (!file.count) return;
    uint64_t start = g.cluster_offset(file.first), size = file.size(), pos = 0;
    file.entry->content->for_each_chunk([&](uint64_t off, const char* data, size_t len) {
        if (off < pos || off + len > size)
            throw Error(cannot(file.path) + file.entry->content->describe() + " gave data outside its " +
                        std::to_string(size) + " bytes");
        out.zero(start + pos, off - pos); // a hole in the content
        out.write(start + off, data, len);
        pos = off + len;
    });
    out.zero(start + pos, file.count * g.cluster_size() - pos);
}

void write_folder(const Output& out, const Geometry& g, const Node& folder, bool is_root, uint64_t parent_cluster,
                  const FatOptions& o) {
    std::string bytes = folder_bytes(folder, is_root, parent_cluster, o);
    if (is_root && g.bits != 32) {
        out.write(g.root_offset(), bytes); // the fixed root region, zeroed with the FATs
    } else {
        bytes.resize(folder.count * g.cluster_size(), '\0');
        out.write(g.cluster_offset(folder.first), bytes);
    }
    // ".." of a first-level folder names cluster 0, whatever the root's cluster.
    uint64_t here = is_root ? 0 : folder.first;
    for (const Node& child : folder.children) {
        check_interrupted();
        if (child.is_dir()) write_folder(out, g, child, false, here, o);
        else write_file(out, g, child);
    }
}

std::string mib(uint64_t bytes) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f MiB", static_cast<double>(bytes) / (1 << 20));
    return buf;
}

} // namespace

void write_fat(int fd, uint64_t offset, uint64_t size, const Tree& tree, const std::string& dir,
               const FatOptions& options) {
    // Plan everything first: nothing is written when the content does not fit.
    check_options(options);
    Node root = plan(tree, dir, !options.label.empty());
    uint32_t root_entries = std::max<uint32_t>(512, static_cast<uint32_t>(div_up(root.slots, 16) * 16));
    if (root_entries > 0xFFF0) throw Error(cannot(root.path) + "its root folder holds too many entries");
    Geometry g = choose_geometry(size, options, root_entries);
    uint64_t next = 2;
    if (g.bits == 32) {
        root.count = std::max<uint64_t>(1, div_up(uint64_t{root.slots} * 32, g.cluster_size()));
        root.first = next;
        next += root.count;
    }
    allocate(root, g.cluster_size(), next);
    uint64_t needed = next - 2;
    if (needed > g.clusters)
        throw Error("the content of '" + root.path + "' needs " + std::to_string(needed * g.cluster_size()) +
                    " bytes (" + mib(needed * g.cluster_size()) + ", " + std::to_string(needed) + " clusters of " +
                    std::to_string(g.cluster_size()) + " bytes) as " + g.type() + ", but a " + std::to_string(size) +
                    "-byte partition holds " + std::to_string(g.clusters * g.cluster_size()) + " (" +
                    std::to_string(g.clusters) + " clusters)");

    struct stat st {};
    if (::fstat(fd, &st) != 0) throw Error(errno_message("write FAT filesystem: fstat", errno));
    if (S_ISREG(st.st_mode) && static_cast<uint64_t>(st.st_size) < offset + size &&
        ::ftruncate(fd, static_cast<off_t>(offset + size)) != 0)
        throw Error(errno_message("write FAT filesystem: extend the image to " + std::to_string(offset + size) + " bytes", errno));

    Output out(fd, offset);
    out.zero(0, g.data_offset()); // reserved sectors, both FATs, the FAT12/16 root region
    auto boot = boot_sector(g, root, options);
    out.write(0, boot.data(), boot.size());
    if (g.bits == 32) {
        auto info = fsinfo_sector(g, next);
        out.write(1 * k_sector, info.data(), info.size());
        out.write(6 * k_sector, boot.data(), boot.size());
        out.write(7 * k_sector, info.data(), info.size());
    }
    std::string fat = fat_bytes(g, root, next);
    out.write(g.fat_offset(0), fat);
    out.write(g.fat_offset(1), fat);
    write_folder(out, g, root, true, 0, options);
}

uint64_t fat_content_bytes(const Tree& tree, const std::string& dir, uint32_t cluster_size) {
    if (cluster_size < 512 || cluster_size > 65536 || (cluster_size & (cluster_size - 1)) != 0)
        throw Error("FAT: cluster size " + std::to_string(cluster_size) + " is not a power of two from 512 to 65536");
    Node root = plan(tree, dir, true);
    uint64_t next = 2 + std::max<uint64_t>(1, div_up(uint64_t{root.slots} * 32, cluster_size));
    allocate(root, cluster_size, next);
    return (next - 2) * cluster_size;
}

} // namespace ib
