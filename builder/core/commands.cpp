#include "core/commands.hpp"

#include "core/error.hpp"
#include "sources/source.hpp"

#include <algorithm>
#include <ctime>

namespace ib {

namespace {

std::string mode_string(const Entry& e) {
    const char* types = "-dlhcbps";
    std::string s(1, types[static_cast<int>(e.type)]);
    const char* rwx = "rwxrwxrwx";
    for (int i = 0; i < 9; ++i) s += (e.perm & (0400 >> i)) ? rwx[i] : '-';
    if (e.perm & 04000) s[3] = (e.perm & 0100) ? 's' : 'S';
    if (e.perm & 02000) s[6] = (e.perm & 0010) ? 's' : 'S';
    if (e.perm & 01000) s[9] = (e.perm & 0001) ? 't' : 'T';
    if (e.xattrs.count("system.posix_acl_access")) s += '+';
    return s;
}

void line(const Tree& tree, const std::string& p, const Entry& stored, std::ostream& out) {
    const Entry& e = stored.type == FileType::Hardlink && tree.get(stored.link) ? *tree.get(stored.link) : stored;
    char when[32];
    time_t t = static_cast<time_t>(e.mtime.sec);
    struct tm tm {};
    gmtime_r(&t, &tm);
    strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &tm);
    std::string size = e.type == FileType::CharDevice || e.type == FileType::BlockDevice
                           ? std::to_string(e.rdev_major) + "," + std::to_string(e.rdev_minor)
                           : std::to_string(e.size());
    out << mode_string(stored.type == FileType::Hardlink ? e : stored) << ' ' << e.uid << ' ' << e.gid << ' ' << size
        << ' ' << when << ' ' << p;
    if (stored.type == FileType::Symlink) out << " -> " << stored.link;
    if (stored.type == FileType::Hardlink) out << " => " << stored.link;
    out << '\n';
}

} // namespace

std::pair<std::string, std::string> split_image_spec(const std::string& spec) {
    size_t at = spec.find(":/");
    if (at == std::string::npos) return {spec, "/"};
    return {spec.substr(0, at), spec.substr(at + 1)};
}

void list_tree(const Tree& tree, const std::string& path, bool recursive, std::ostream& out) {
    std::string at = tree.resolve(path);
    const Entry* e = tree.get(at);
    if (!e) throw Error("'" + path + "' does not exist in the image");
    if (!e->is_dir()) {
        line(tree, at, *e, out);
        return;
    }
    tree.walk_under(at, [&](const std::string& p, const Entry& entry) {
        if (p == at) return;
        if (recursive || path::parent(p) == at) line(tree, p, entry, out);
    });
}

int cmd_inspect(const std::string& image, bool json, std::ostream& out) {
    DiskImage img = open_disk_image(image, "");
    if (!img.info().partitions.empty()) img.read(); // fills OS, family, boot mount and cmdline
    out << (json ? to_json(img.info()) : to_text(img.info()));
    return 0;
}

int cmd_ls(const std::string& spec, bool recursive, std::ostream& out) {
    auto [image, p] = split_image_spec(spec);
    DiskImage img = open_disk_image(image, "");
    list_tree(img.read(), p, recursive, out);
    return 0;
}

int cmd_cat(const std::string& spec, std::ostream& out) {
    auto [image, p] = split_image_spec(spec);
    if (p == "/") throw Error("cat needs IMAGE:PATH, such as disk.img:/etc/os-release", k_exit_usage);
    DiskImage img = open_disk_image(image, "");
    Tree tree = img.read();
    const Entry* e = tree.find(p);
    if (!e) throw Error("'" + p + "' does not exist in '" + image + "'");
    if (e->type != FileType::Regular) throw Error("'" + p + "' is a " + std::string(type_name(e->type)) + ", not a file");
    // Chunks come with their offsets; holes between them are zeros on the way out.
    uint64_t pos = 0;
    static const std::string k_zeros(1 << 16, '\0');
    auto zeros_to = [&](uint64_t end) {
        for (; pos < end; pos += std::min<uint64_t>(k_zeros.size(), end - pos))
            out.write(k_zeros.data(), static_cast<std::streamsize>(std::min<uint64_t>(k_zeros.size(), end - pos)));
    };
    if (e->content) {
        e->content->for_each_chunk([&](uint64_t offset, const char* data, size_t len) {
            zeros_to(offset);
            out.write(data, static_cast<std::streamsize>(len));
            pos += len;
        });
    }
    zeros_to(e->size());
    return 0;
}

} // namespace ib
