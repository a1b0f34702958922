// Output `dir`: the root filesystem as a host folder, with real owners, modes, xattrs, devices,
// hardlinks, holes and mtimes, as an NFS root needs it.
//
//   - dir: {path: rootfs}
//
// Owners other than the builder's own and device nodes need root. Without it the output stops before
// writing anything, saying so: a root filled with the builder's uid would boot into a broken system.
#include "core/error.hpp"
#include "core/writer_support.hpp"
#include "core/staging.hpp"
#include "outputs/output.hpp"

#include <cerrno>
#include <fcntl.h>
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

void set_times(const std::string& host, const Timestamp& t) {
    struct timespec ts[2];
    ts[0].tv_sec = ts[1].tv_sec = t.sec;
    ts[0].tv_nsec = ts[1].tv_nsec = t.nsec;
    check_call(::utimensat(AT_FDCWD, host.c_str(), ts, AT_SYMLINK_NOFOLLOW), "set mtime of '" + host + "'");
}

// Owner, then mode (chown clears setuid), then xattrs (security.capability is cleared by chown too).
void set_meta(const std::string& host, const Entry& e, bool is_root) {
    if (is_root) check_call(::lchown(host.c_str(), e.uid, e.gid), "chown '" + host + "'");
    if (e.type != FileType::Symlink) check_call(::chmod(host.c_str(), e.perm), "chmod '" + host + "'");
    for (const auto& [k, v] : e.xattrs)
        check_call(::lsetxattr(host.c_str(), k.c_str(), v.data(), v.size(), 0), "set xattr " + k + " on '" + host + "'");
}

void write_content(const std::string& host, const Entry& e) {
    int fd = ::open(host.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) throw Error(errno_message("create '" + host + "'", errno));
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

bool needs_root(const Entry& e) {
    if (e.uid != ::geteuid() || e.gid != ::getegid()) return true;
    if (e.type == FileType::CharDevice || e.type == FileType::BlockDevice) return true;
    for (const auto& [k, v] : e.xattrs)
        if (k.rfind("user.", 0) != 0) return true;
    return false;
}

class DirOutput final : public Output {
public:
    explicit DirOutput(std::string p) { m_path = std::move(p); }
    std::string describe() const override { return "dir " + m_path + "/"; }
    bool is_dir() const override { return true; }

    void check(const Tree& tree) const override {
        if (::geteuid() == 0) return;
        std::string example;
        tree.walk([&](const std::string& p, const Entry& e) {
            if (example.empty() && needs_root(e))
                example = "'" + p + "' (" + std::string(type_name(e.type)) + ", uid " + std::to_string(e.uid) + ")";
        });
        if (!example.empty())
            throw Error("output 'dir' " + m_path + ": the tree holds entries only root can write as they are, such as " +
                        example + "; run imgbuild as root, or use a 'tar' output, "
                        "which keeps owners without root");
    }

    void write(const Tree& tree, Staging& staging, const OutputWriteEnv&) const override {
        std::string temp = staging.temp_for(m_path);
        bool is_root = ::geteuid() == 0;
        HardlinkLeaders leaders(tree);
        std::vector<std::pair<std::string, const Entry*>> dirs; // metadata set last, deepest first
        tree.walk([&](const std::string& p, const Entry& stored) {
            check_interrupted();
            std::string host = p == "/" ? temp : temp + p;
            if (const std::string* leader = leaders.link_to(p, stored)) {
                check_call(::link((temp + *leader).c_str(), host.c_str()), "link '" + host + "'");
                return;
            }
            const Entry& e = leaders.object(p, stored);
            switch (e.type) {
            case FileType::Directory:
                check_call(::mkdir(host.c_str(), 0700), "mkdir '" + host + "'");
                dirs.emplace_back(host, &e);
                return;
            case FileType::Regular: write_content(host, e); break;
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
            set_meta(host, e, is_root);
            set_times(host, e.mtime);
        });
        for (auto it = dirs.rbegin(); it != dirs.rend(); ++it) {
            set_meta(it->first, *it->second, is_root);
            set_times(it->first, it->second->mtime);
        }
    }
};

} // namespace

std::unique_ptr<Output> parse_dir_output(const Doc& options, OutputParseEnv& env) {
    MapReader m(options, env.diag, env.what);
    if (!m.valid()) return nullptr;
    auto p = output_path(m, options, env);
    m.finish();
    if (!p) return nullptr;
    return std::make_unique<DirOutput>(*p);
}

} // namespace ib
