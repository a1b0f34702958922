// Small builders for unit tests: trees in memory, recipes from text.
#pragma once

#include "core/tree.hpp"
#include "ext/sha256.hpp"

#include <string>

namespace ib::test {

inline Entry dir(uint32_t perm = 0755) { return Entry::directory(perm, {}); }
inline Entry file(const std::string& data, uint32_t perm = 0644) { return Entry::file(make_blob(data), perm, {}); }
inline Entry link(const std::string& target) { return Entry::symlink(target, {}); }

// "path type" lines of the whole tree, in walk order: a compact listing to compare against.
inline std::string listing(const Tree& tree) {
    std::string s;
    tree.walk([&](const std::string& p, const Entry& e) {
        s += p + " " + std::string(type_name(e.type));
        if (e.type == FileType::Symlink || e.type == FileType::Hardlink) s += " -> " + e.link;
        s += "\n";
    });
    return s;
}

// Everything an output must keep, one line per entry: type, mode, owner, mtime with nanoseconds, link
// target, device numbers, xattrs and content hash. Hardlink groups compare by membership: which name
// holds the content is a writer's choice. `skip` names a path left out (e.g. "/lost+found").
inline std::string detailed_listing(const Tree& t, const std::string& skip = "") {
    std::string s;
    t.walk([&](const std::string& p, const Entry& stored) {
        if (!skip.empty() && p == skip) return;
        const Entry& e = stored.type == FileType::Hardlink ? *t.get(stored.link) : stored;
        bool linked = stored.type == FileType::Hardlink || stored.hardlinked;
        s += p + (linked ? " (linked) " : " ") + std::string(type_name(e.type)) + " " + std::to_string(e.perm) + " " +
             std::to_string(e.uid) + ":" + std::to_string(e.gid) + " " + std::to_string(e.mtime.sec) + "." +
             std::to_string(e.mtime.nsec) + " " + e.link + " " + std::to_string(e.rdev_major) + "," +
             std::to_string(e.rdev_minor);
        for (const auto& [k, v] : e.xattrs) s += " " + k + "=" + sha256_hex(v).substr(0, 8);
        if (e.type == FileType::Regular) s += " " + std::to_string(e.size()) + " " + sha256_hex(read_all(e.content));
        s += "\n";
    });
    return s;
}

} // namespace ib::test

#include "core/log.hpp"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <unistd.h>
#include <vector>

namespace ib::test {

// A temporary folder removed at the end of the test; files are written into it by name.
class TempDir {
public:
    TempDir() {
        std::string tmpl = (std::filesystem::temp_directory_path() / "imgbuild-test-XXXXXX").string();
        m_path = ::mkdtemp(tmpl.data());
    }
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(m_path, ec);
    }
    const std::string& path() const { return m_path; }
    std::string write(const std::string& name, const std::string& text) const {
        std::string p = m_path + "/" + name;
        std::filesystem::create_directories(std::filesystem::path(p).parent_path());
        std::ofstream(p, std::ios::binary) << text;
        return p;
    }

private:
    std::string m_path;
};

// Points IMGBUILD_CACHE at a fresh folder (and quiets the log) for the life of the object.
class TempCache {
public:
    TempCache() {
        log::set_level(log::Level::Quiet);
        if (const char* old = std::getenv("IMGBUILD_CACHE")) m_old = old;
        ::setenv("IMGBUILD_CACHE", (m_dir.path() + "/cache").c_str(), 1);
    }
    ~TempCache() {
        log::set_level(log::Level::Normal);
        if (m_old) ::setenv("IMGBUILD_CACHE", m_old->c_str(), 1);
        else ::unsetenv("IMGBUILD_CACHE");
    }
    TempCache(const TempCache&) = delete;
    TempCache& operator=(const TempCache&) = delete;

    std::string path(const std::string& rel) const { return m_dir.path() + "/cache/" + rel; }
    // The names in one cache folder ("decoded", "downloads"), sorted, lock files left out (they stay
    // by design: cache.cpp).
    std::vector<std::string> names(const std::string& kind) const {
        std::vector<std::string> out;
        std::error_code ec;
        for (const auto& e : std::filesystem::directory_iterator(path(kind), ec)) {
            std::string n = e.path().filename().string();
            if (!n.ends_with(".lock")) out.push_back(n);
        }
        std::sort(out.begin(), out.end());
        return out;
    }

private:
    TempDir m_dir;
    std::optional<std::string> m_old;
};

} // namespace ib::test
