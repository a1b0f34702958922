// A root filesystem in a host folder, listed with lstat: links are recorded, never followed; files
// are referenced, and read only when an output writes them.
#include "core/error.hpp"
#include "sources/source.hpp"

#include <algorithm>
#include <cerrno>
#include <dirent.h>
#include <map>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>
#include <vector>

namespace ib {

namespace {

std::map<std::string, std::string> read_xattrs(const std::string& host) {
    std::map<std::string, std::string> out;
    ssize_t n = ::llistxattr(host.c_str(), nullptr, 0);
    if (n <= 0) return out;
    std::string names(static_cast<size_t>(n), '\0');
    n = ::llistxattr(host.c_str(), names.data(), names.size());
    if (n <= 0) return out;
    names.resize(static_cast<size_t>(n));
    for (size_t i = 0; i < names.size();) {
        std::string name = names.c_str() + i;
        i += name.size() + 1;
        ssize_t len = ::lgetxattr(host.c_str(), name.c_str(), nullptr, 0);
        if (len < 0) continue; // trusted.* as non-root, and the like: not ours to read
        std::string value(static_cast<size_t>(len), '\0');
        len = ::lgetxattr(host.c_str(), name.c_str(), value.data(), value.size());
        if (len < 0) continue;
        value.resize(static_cast<size_t>(len));
        out[name] = value;
    }
    return out;
}

class DirSource final : public Source {
public:
    explicit DirSource(std::string dir) : m_dir(std::move(dir)) {}
    std::string describe() const override { return "folder " + m_dir; }
    std::string folder() const override { return m_dir; }

    Tree read(Timestamp) const override { // a folder lists every folder
        Tree tree("base");
        std::map<std::pair<dev_t, ino_t>, std::string> seen; // hardlink groups
        add(tree, m_dir, "/", seen);
        return tree;
    }

private:
    void add(Tree& tree, const std::string& host, const std::string& at,
             std::map<std::pair<dev_t, ino_t>, std::string>& seen) const {
        check_interrupted();
        struct stat st {};
        if (::lstat(host.c_str(), &st) != 0) throw Error(errno_message("base: cannot stat '" + host + "'", errno));
        if (!S_ISDIR(st.st_mode) && st.st_nlink > 1) {
            auto [it, fresh] = seen.emplace(std::make_pair(st.st_dev, st.st_ino), at);
            if (!fresh) {
                tree.link(at, it->second);
                return;
            }
        }
        Entry e;
        e.perm = st.st_mode & 07777;
        e.uid = st.st_uid;
        e.gid = st.st_gid;
        e.mtime = {st.st_mtim.tv_sec, static_cast<uint32_t>(st.st_mtim.tv_nsec)};
        e.xattrs = read_xattrs(host);
        if (S_ISDIR(st.st_mode)) e.type = FileType::Directory;
        else if (S_ISLNK(st.st_mode)) {
            e.type = FileType::Symlink;
            std::string target(static_cast<size_t>(st.st_size) + 1, '\0');
            ssize_t n = ::readlink(host.c_str(), target.data(), target.size());
            if (n < 0) throw Error(errno_message("base: cannot read link '" + host + "'", errno));
            target.resize(static_cast<size_t>(n));
            e.link = target;
        } else if (S_ISREG(st.st_mode)) {
            e.content = make_host_file(host, static_cast<uint64_t>(st.st_size));
        } else if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) {
            e.type = S_ISCHR(st.st_mode) ? FileType::CharDevice : FileType::BlockDevice;
            e.rdev_major = major(st.st_rdev);
            e.rdev_minor = minor(st.st_rdev);
        } else if (S_ISFIFO(st.st_mode)) e.type = FileType::Fifo;
        else e.type = FileType::Socket;
        tree.put(at, std::move(e));
        if (!S_ISDIR(st.st_mode)) return;

        DIR* d = ::opendir(host.c_str());
        if (!d) throw Error(errno_message("base: cannot list '" + host + "'", errno));
        std::vector<std::string> names;
        while (dirent* de = ::readdir(d)) {
            std::string n = de->d_name;
            if (n != "." && n != "..") names.push_back(n);
        }
        ::closedir(d);
        std::sort(names.begin(), names.end());
        for (const auto& n : names) add(tree, host + "/" + n, at == "/" ? "/" + n : at + "/" + n, seen);
    }

    std::string m_dir;
};

} // namespace

std::unique_ptr<Source> make_dir_source(std::string dir) { return std::make_unique<DirSource>(std::move(dir)); }

} // namespace ib
