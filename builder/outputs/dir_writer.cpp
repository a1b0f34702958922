#include "outputs/dir_writer.hpp"

#include "core/error.hpp"
#include "core/writer_support.hpp"
#include "outputs/file_store.hpp"

#include <cerrno>
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>
#include <vector>

namespace ib {

namespace {

void check_call(int r, const std::string& what) {
    if (r != 0) throw Error(errno_message(what, errno));
}

bool needs_root(const Entry& e) {
    if (e.uid != ::geteuid() || e.gid != ::getegid()) return true;
    if (e.type == FileType::CharDevice || e.type == FileType::BlockDevice) return true;
    for (const auto& [k, v] : e.xattrs)
        if (k.rfind("user.", 0) != 0) return true;
    return false;
}

int create_new(const std::string& host) {
    int fd = ::open(host.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) throw Error(errno_message("create '" + host + "'", errno));
    return fd;
}

// The errors by which a filesystem (or a pair of them) says it cannot share extents at all.
bool clone_unsupported(int err) { return err == EOPNOTSUPP || err == EXDEV || err == EINVAL || err == ENOTTY; }

} // namespace

void write_file_content(const std::string& host, const Entry& e) {
    int fd = create_new(host);
    try {
        if (e.content) {
            e.content->for_each_chunk([&](uint64_t offset, const char* data, size_t len) {
                while (len > 0) {
                    ssize_t n = ::pwrite(fd, data, len, static_cast<off_t>(offset));
                    if (n < 0 && errno == EINTR) {
                        check_interrupted();
                        continue;
                    }
                    if (n < 0) throw Error(errno_message("write '" + host + "'", errno));
                    data += n;
                    len -= static_cast<size_t>(n);
                    offset += static_cast<uint64_t>(n);
                }
            });
        }
        // Holes at the end stay holes.
        check_call(::ftruncate(fd, static_cast<off_t>(e.size())), "truncate '" + host + "'");
    } catch (...) {
        ::close(fd);
        throw;
    }
    check_call(::close(fd), "close '" + host + "'");
}

// Owner, then mode (chown clears setuid), then xattrs (security.capability is cleared by chown too),
// then the mtime, which every change before would have moved.
void set_metadata(const std::string& host, const Entry& e) {
    if (::geteuid() == 0) check_call(::lchown(host.c_str(), e.uid, e.gid), "chown '" + host + "'");
    if (e.type != FileType::Symlink) check_call(::chmod(host.c_str(), e.perm), "chmod '" + host + "'");
    for (const auto& [k, v] : e.xattrs)
        check_call(::lsetxattr(host.c_str(), k.c_str(), v.data(), v.size(), 0), "set xattr " + k + " on '" + host + "'");
    struct timespec ts[2];
    ts[0].tv_sec = ts[1].tv_sec = e.mtime.sec;
    ts[0].tv_nsec = ts[1].tv_nsec = e.mtime.nsec;
    check_call(::utimensat(AT_FDCWD, host.c_str(), ts, AT_SYMLINK_NOFOLLOW), "set mtime of '" + host + "'");
}

void CopySources::write(const std::string& host, const Entry& e) {
    if (!e.content || e.size() == 0) return write_file_content(host, e);
    auto it = m_first.find(e.content.get());
    if (it == m_first.end()) {
        write_file_content(host, e);
        m_first.emplace(e.content.get(), std::make_pair(e.content, host));
        return;
    }
    if (m_clone_works) {
        int src = ::open(it->second.second.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (src >= 0) {
            int fd = create_new(host);
            int r = ::ioctl(fd, FICLONE, src);
            int err = errno;
            ::close(src);
            check_call(::close(fd), "close '" + host + "'");
            if (r == 0) {
                ++m_clones;
                return;
            }
            if (clone_unsupported(err)) m_clone_works = false;
            check_call(::unlink(host.c_str()), "remove '" + host + "'");
        }
    }
    write_file_content(host, e);
}

void check_root_needed(const Tree& tree, const std::string& what) {
    if (::geteuid() == 0) return;
    std::string example;
    tree.walk([&](const std::string& p, const Entry& e) {
        if (example.empty() && needs_root(e))
            example = "'" + p + "' (" + std::string(type_name(e.type)) + ", uid " + std::to_string(e.uid) + ")";
    });
    if (!example.empty())
        throw Error(what + ": the tree holds entries only root can write as they are, such as " + example +
                    "; run imgbuild as root, or use a 'tar' output, which keeps owners without root");
}

void write_folder(const Tree& tree, const std::string& dest, const FolderOptions& options) {
    HardlinkLeaders leaders(tree);
    std::vector<std::pair<std::string, const Entry*>> dirs; // metadata set last, deepest first
    tree.walk([&](const std::string& p, const Entry& stored) {
        check_interrupted();
        std::string host = p == "/" ? dest : dest + p;
        if (const std::string* leader = leaders.link_to(p, stored)) {
            check_call(::link((dest + *leader).c_str(), host.c_str()), "link '" + host + "'");
            return;
        }
        const Entry& e = leaders.object(p, stored);
        switch (e.type) {
        case FileType::Directory:
            check_call(::mkdir(host.c_str(), 0700), "mkdir '" + host + "'");
            dirs.emplace_back(host, &e);
            return;
        case FileType::Regular:
            if (options.store && options.shared && options.shared(p)) {
                options.store->link(e, host); // the stored inode carries the metadata already
                return;
            }
            if (options.copies) options.copies->write(host, e);
            else write_file_content(host, e);
            break;
        case FileType::Symlink: check_call(::symlink(e.link.c_str(), host.c_str()), "symlink '" + host + "'"); break;
        case FileType::CharDevice:
        case FileType::BlockDevice:
            check_call(::mknod(host.c_str(), (e.type == FileType::CharDevice ? S_IFCHR : S_IFBLK) | 0600,
                               makedev(e.rdev_major, e.rdev_minor)),
                       "mknod '" + host + "'");
            break;
        case FileType::Fifo: check_call(::mkfifo(host.c_str(), 0600), "mkfifo '" + host + "'"); break;
        case FileType::Socket: check_call(::mknod(host.c_str(), S_IFSOCK | 0600, 0), "mknod '" + host + "'"); break;
        case FileType::Hardlink: throw Error("'" + p + "': hardlink to missing '" + stored.link + "'");
        }
        set_metadata(host, e);
    });
    for (auto it = dirs.rbegin(); it != dirs.rend(); ++it) set_metadata(it->first, *it->second);
}

} // namespace ib
