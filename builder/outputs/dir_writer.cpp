#include "outputs/dir_writer.hpp"

#include "core/error.hpp"
#include "core/validate.hpp"
#include "core/writer_support.hpp"
#include "outputs/file_store.hpp"

#include <cerrno>
#include <cstdint>
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

bool keep_owner(const Entry& e, bool owner_is_mine) {
    return ::geteuid() != 0 || (owner_is_mine && e.uid == ::geteuid() && e.gid == ::getegid());
}

// `e`'s content into the open new file: holes kept, and at the end too.
void write_content(int fd, const std::string& host, const Entry& e) {
    uint64_t end = 0;
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
            end = offset;
        });
    }
    if (end != e.size()) check_call(::ftruncate(fd, static_cast<off_t>(e.size())), "truncate '" + host + "'");
}

// Owner, then mode (chown clears setuid), then xattrs (security.capability is cleared by chown too),
// then the mtime, which every change before would have moved: through the open file.
void set_fd_metadata(int fd, const std::string& host, const Entry& e, bool owner_is_mine) {
    if (!keep_owner(e, owner_is_mine)) check_call(::fchown(fd, e.uid, e.gid), "chown '" + host + "'");
    check_call(::fchmod(fd, e.perm), "chmod '" + host + "'");
    for (const auto& [k, v] : e.xattrs)
        check_call(::fsetxattr(fd, k.c_str(), v.data(), v.size(), 0), "set xattr " + k + " on '" + host + "'");
    struct timespec ts[2];
    ts[0].tv_sec = ts[1].tv_sec = e.mtime.sec;
    ts[0].tv_nsec = ts[1].tv_nsec = e.mtime.nsec;
    check_call(::futimens(fd, ts), "set mtime of '" + host + "'");
}

// Copies the earlier copy `src` into the empty new file `fd` inside the kernel (copy_file_range: no
// trip through this process's memory) when `src` has no holes, which that would fill. False when it
// did not: the caller writes the content itself.
bool copy_dense(int src, int fd, uint64_t size) {
    struct stat st {};
    if (::fstat(src, &st) != 0 || static_cast<uint64_t>(st.st_size) != size || static_cast<uint64_t>(st.st_blocks) * 512 < size)
        return false;
    loff_t in = 0, out = 0;
    while (static_cast<uint64_t>(out) < size) {
        ssize_t n = ::copy_file_range(src, &in, fd, &out, static_cast<size_t>(size - static_cast<uint64_t>(out)), 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false; // the content is dense too: writing it covers every byte again
    }
    return true;
}

// Runs `f(fd)` on the new file `host`, closing it whatever happens.
template <typename F>
void with_new_file(const std::string& host, F f) {
    int fd = create_new(host);
    try {
        f(fd);
    } catch (...) {
        ::close(fd);
        throw;
    }
    check_call(::close(fd), "close '" + host + "'");
}

// A content that is a host file (a folder base's) without holes is copied inside the kernel: its
// bytes never pass through this process. False when that cannot be done.
bool copy_host_file(int fd, const Entry& e) {
    std::string src_path = e.content ? e.content->host_path() : "";
    if (src_path.empty() || e.size() == 0) return false;
    int src = ::open(src_path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (src < 0) return false; // read the usual way, which says what is wrong
    bool copied = copy_dense(src, fd, e.size());
    ::close(src);
    if (!copied) check_call(::ftruncate(fd, 0), "truncate"); // a partial copy is written again
    return copied;
}

} // namespace

void write_file(const std::string& host, const Entry& e, bool owner_is_mine) {
    with_new_file(host, [&](int fd) {
        if (!copy_host_file(fd, e)) write_content(fd, host, e);
        set_fd_metadata(fd, host, e, owner_is_mine);
    });
}

void set_metadata(const std::string& host, const Entry& e, bool owner_is_mine) {
    if (!keep_owner(e, owner_is_mine)) check_call(::lchown(host.c_str(), e.uid, e.gid), "chown '" + host + "'");
    if (e.type != FileType::Symlink) check_call(::chmod(host.c_str(), e.perm), "chmod '" + host + "'");
    for (const auto& [k, v] : e.xattrs)
        check_call(::lsetxattr(host.c_str(), k.c_str(), v.data(), v.size(), 0), "set xattr " + k + " on '" + host + "'");
    struct timespec ts[2];
    ts[0].tv_sec = ts[1].tv_sec = e.mtime.sec;
    ts[0].tv_nsec = ts[1].tv_nsec = e.mtime.nsec;
    check_call(::utimensat(AT_FDCWD, host.c_str(), ts, AT_SYMLINK_NOFOLLOW), "set mtime of '" + host + "'");
}

void CopySources::write(const std::string& host, const Entry& e, bool owner_is_mine) {
    if (!e.content || e.size() == 0) return write_file(host, e, owner_is_mine);
    std::string first;
    {
        std::lock_guard lock(m_mutex);
        auto [it, fresh] = m_first.try_emplace(e.content.get(), First{e.content, host, false});
        // A first copy another thread is still writing is not cloned: this one is written too.
        if (!fresh && it->second.ready) first = it->second.path;
    }
    if (first.empty()) {
        write_file(host, e, owner_is_mine);
        std::lock_guard lock(m_mutex);
        if (auto it = m_first.find(e.content.get()); it != m_first.end() && it->second.path == host) it->second.ready = true;
        return;
    }
    int src = ::open(first.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (src < 0) return write_file(host, e, owner_is_mine);
    bool cloned = false;
    try {
        with_new_file(host, [&](int fd) {
            if (m_clone_works) {
                cloned = ::ioctl(fd, FICLONE, src) == 0;
                if (!cloned && clone_unsupported(errno)) m_clone_works = false;
            }
            if (!cloned && !copy_dense(src, fd, e.size())) write_content(fd, host, e);
            set_fd_metadata(fd, host, e, owner_is_mine);
        });
    } catch (...) {
        ::close(src);
        throw;
    }
    ::close(src);
    if (cloned) ++m_clones;
}

void create_entry(const std::string& host, const std::string& stored_path, const Entry& e, const FolderOptions& options,
                  bool owner_is_mine) {
    switch (e.type) {
    case FileType::Directory: check_call(::mkdir(host.c_str(), 0700), "mkdir '" + host + "'"); return;
    case FileType::Regular:
        if (options.store && options.shared && options.shared(stored_path)) {
            options.store->link(e, host); // the stored inode carries the metadata already
            return;
        }
        if (options.copies) options.copies->write(host, e, owner_is_mine);
        else write_file(host, e, owner_is_mine);
        return;
    case FileType::Symlink: check_call(::symlink(e.link.c_str(), host.c_str()), "symlink '" + host + "'"); break;
    case FileType::CharDevice:
    case FileType::BlockDevice:
        check_call(::mknod(host.c_str(), (e.type == FileType::CharDevice ? S_IFCHR : S_IFBLK) | 0600,
                           makedev(e.rdev_major, e.rdev_minor)),
                   "mknod '" + host + "'");
        break;
    case FileType::Fifo: check_call(::mkfifo(host.c_str(), 0600), "mkfifo '" + host + "'"); break;
    case FileType::Socket: check_call(::mknod(host.c_str(), S_IFSOCK | 0600, 0), "mknod '" + host + "'"); break;
    case FileType::Hardlink: throw Error("'" + stored_path + "': hardlink to missing '" + e.link + "'");
    }
    set_metadata(host, e, owner_is_mine);
}

void check_root_needed(const Tree& tree, const std::string& what) {
    bool root = ::geteuid() == 0;
    std::string example, no_change;
    tree.walk([&](const std::string& p, const Entry& e) {
        // chown(2) takes (uid_t)-1 as "leave it": the folder would keep the builder's owner.
        if (no_change.empty() && (e.uid == UINT32_MAX || e.gid == UINT32_MAX)) no_change = p;
        if (!root && example.empty() && needs_root(e))
            example = "'" + p + "' (" + std::string(type_name(e.type)) + ", uid " + std::to_string(e.uid) + ")";
    });
    if (!no_change.empty())
        throw Error(
            what + ": '" + validate::shown(no_change) +
            "' has uid or gid 4294967295, which a folder cannot hold (chown takes it for 'leave unchanged')");
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
        // Below `dest`, every folder is this writer's and 0700 (no setgid) while it is filled.
        create_entry(host, p, e, options, p != "/");
        if (e.type == FileType::Directory) dirs.emplace_back(host, &e);
    });
    for (auto it = dirs.rbegin(); it != dirs.rend(); ++it) set_metadata(it->first, *it->second, it->first != dest);
}

} // namespace ib
