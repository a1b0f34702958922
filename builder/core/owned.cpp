#include "core/owned.hpp"

#include <fcntl.h>
#include <fstream>
#include <sstream>
#include <sys/stat.h>

namespace ib::owned {

namespace {

constexpr const char* k_header =
    "# What imgbuild wrote into this folder: output type, file or dir, identity (inode, birth time; for a\n"
    "# file also size, mtime), path. The next build replaces only these, while they are still the same;\n"
    "# edit nothing here.\n";

int64_t ns(const struct statx_timestamp& t) {
    return static_cast<int64_t>(t.tv_sec) * 1000000000 + t.tv_nsec;
}

} // namespace

std::vector<Entry> read(const std::string& out_dir, std::string* problem) {
    std::vector<Entry> out;
    std::ifstream in(out_dir + "/" + k_file, std::ios::binary);
    if (!in) return out;
    std::string line;
    size_t n = 0;
    while (std::getline(in, line)) {
        ++n;
        if (line.empty() || line[0] == '#') continue;
        std::istringstream ss(line);
        Entry e;
        std::string kind;
        ss >> e.type >> kind >> e.id;
        if (!ss || (kind != "file" && kind != "dir") || ss.get() != ' ') {
            if (problem)
                *problem = out_dir + "/" + k_file + ":" + std::to_string(n) + ": not a line imgbuild wrote";
            return {};
        }
        e.dir = kind == "dir";
        std::getline(ss, e.path);
        out.push_back(std::move(e));
    }
    return out;
}

std::string text(const std::vector<Entry>& entries) {
    std::string s = k_header;
    for (const auto& e : entries) {
        if (e.path.find('\n') != std::string::npos || e.type.find_first_of(" \n") != std::string::npos)
            continue;
        s += e.type + (e.dir ? " dir " : " file ") + e.id + " " + e.path + "\n";
    }
    return s;
}

std::optional<Entry> describe(const std::string& type, const std::string& path, const std::string& host) {
    struct statx st {};
    if (::statx(AT_FDCWD, host.c_str(), AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS | STATX_BTIME, &st) != 0 ||
        !(S_ISDIR(st.stx_mode) || S_ISREG(st.stx_mode)))
        return std::nullopt;
    bool dir = S_ISDIR(st.stx_mode);
    // Without a birth time (a filesystem that keeps none) the inode and, for a file, size and mtime remain.
    std::string id =
        std::to_string(st.stx_ino) + "." + std::to_string((st.stx_mask & STATX_BTIME) ? ns(st.stx_btime) : 0);
    if (!dir) id += "." + std::to_string(st.stx_size) + "." + std::to_string(ns(st.stx_mtime));
    return Entry{type, dir, id, path};
}

const Entry* find_match(const std::vector<Entry>& entries, const std::string& path, const std::string& type,
                        const std::string& host) {
    auto now = describe(type, path, host);
    if (!now) return nullptr;
    for (const auto& e : entries)
        if (e.path == path && e.type == type && e.dir == now->dir && e.id == now->id) return &e;
    return nullptr;
}

} // namespace ib::owned
