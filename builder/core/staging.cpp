#include "core/staging.hpp"

#include "core/error.hpp"
#include "core/path.hpp"
#include "ext/sha256.hpp"

#include <algorithm>
#include <fcntl.h>

#include <cerrno>
#include <filesystem>
#include <sys/stat.h>
#include <unistd.h>

namespace ib {

namespace fs = std::filesystem;

void remove_tree(const std::string& p) {
    struct stat st {};
    if (::lstat(p.c_str(), &st) != 0) return;
    if (S_ISDIR(st.st_mode)) {
        ::chmod(p.c_str(), 0700);
        std::error_code ec;
        std::vector<std::string> names;
        for (const auto& de : fs::directory_iterator(p, ec)) names.push_back(de.path().string());
        for (const auto& n : names) remove_tree(n);
        ::rmdir(p.c_str());
    } else {
        ::unlink(p.c_str());
    }
}

Staging::Staging(std::string out_dir) : m_out(fs::path(out_dir).lexically_normal().string()) {
    if (m_out.size() > 1 && m_out.back() == '/') m_out.pop_back();
}

Staging::~Staging() {
    for (const auto& s : m_scratch) remove_tree(s);
    if (m_committed) return;
    for (const auto& item : m_items) remove_tree(item.temp);
    for (auto it = m_created_dirs.rbegin(); it != m_created_dirs.rend(); ++it) ::rmdir(it->c_str());
}

void Staging::make_dir(const std::string& dir) {
    struct stat st {};
    if (::lstat(dir.c_str(), &st) == 0) {
        if (S_ISLNK(st.st_mode))
            throw Error("output folder '" + dir + "' is a symlink; refusing to write through it");
        if (!S_ISDIR(st.st_mode)) throw Error("output folder '" + dir + "' exists and is not a folder");
        return;
    }
    if (::mkdir(dir.c_str(), 0755) != 0) throw Error(errno_message("create output folder '" + dir + "'", errno));
    m_created_dirs.push_back(dir);
}

std::string Staging::temp_for(const std::string& rel) {
    // The output folder itself may be given through a symlink; below it, nothing is followed.
    struct stat st {};
    if (::stat(m_out.c_str(), &st) != 0) {
        fs::path parent = fs::path(m_out).parent_path();
        if (!parent.empty() && !fs::is_directory(parent))
            throw Error("output folder '" + m_out + "': its parent '" + parent.string() + "' does not exist");
        make_dir(m_out);
    } else if (!S_ISDIR(st.st_mode)) {
        throw Error("output folder '" + m_out + "' exists and is not a folder");
    }
    std::string dir = m_out;
    std::string parent_rel = path::parent("/" + rel);
    for (auto part : path::split(parent_rel)) {
        dir += "/";
        dir += part;
        make_dir(dir);
    }
    std::string target = m_out + "/" + rel;
    struct stat tst {};
    if (::lstat(target.c_str(), &tst) == 0 && S_ISLNK(tst.st_mode))
        throw Error("output '" + target + "' is a symlink; refusing to replace it");
    std::string temp = dir + "/." + std::string(path::name(rel)) + ".imgbuild-tmp-" + std::to_string(::getpid()) + "-" +
                       std::to_string(m_items.size());
    remove_tree(temp); // a leftover of a killed run with the same pid
    m_items.push_back({temp, target});
    return temp;
}

std::string Staging::shared_temp_for(const std::string& rel) {
    auto it = m_shared_temps.find(rel);
    if (it != m_shared_temps.end()) return it->second;
    std::string temp = temp_for(rel);
    m_shared_temps.emplace(rel, temp);
    return temp;
}

std::string Staging::scratch_for(const std::string& rel) {
    std::string temp = temp_for(rel);
    m_items.pop_back(); // not an output: only removed, never renamed
    m_scratch.push_back(temp);
    return temp;
}

void Staging::add_checksums(const std::string& name) {
    std::vector<std::pair<std::string, std::string>> sums; // relative target, sha256
    for (const auto& item : m_items) {
        struct stat st {};
        if (::lstat(item.temp.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
        sums.emplace_back(item.target.substr(m_out.size() + 1), sha256_file(item.temp).value_or_throw("checksums"));
    }
    std::sort(sums.begin(), sums.end());
    std::string text;
    for (const auto& [rel, sum] : sums) text += sum + "  " + rel + "\n";
    std::string temp = temp_for(name);
    int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) throw Error(errno_message("create '" + temp + "'", errno));
    bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
    ::close(fd);
    if (!ok) throw Error(errno_message("write '" + temp + "'", errno));
}

void Staging::commit() {
    for (const auto& item : m_items) {
        struct stat st {};
        std::string old;
        if (::lstat(item.target.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
            // rename() cannot replace a non-empty folder: move it aside first, delete it after.
            old = item.temp + ".old";
            if (::rename(item.target.c_str(), old.c_str()) != 0)
                throw Error(errno_message("replace '" + item.target + "'", errno));
        }
        if (::rename(item.temp.c_str(), item.target.c_str()) != 0)
            throw Error(errno_message("move '" + item.temp + "' to '" + item.target + "'", errno));
        if (!old.empty()) remove_tree(old);
    }
    m_committed = true;
}

} // namespace ib
