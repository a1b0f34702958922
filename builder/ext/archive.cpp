#include "ext/archive.hpp"

#include "core/acl.hpp"
#include "core/writer_support.hpp"

#include <archive.h>
#include <archive_entry.h>
#include <lzma.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <memory>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

namespace ib::archive {

namespace {

struct ReadDeleter {
    void operator()(struct archive* a) const { archive_read_free(a); }
};
struct WriteDeleter {
    void operator()(struct archive* a) const { archive_write_free(a); }
};
struct EntryDeleter {
    void operator()(archive_entry* e) const { archive_entry_free(e); }
};

std::string message(struct archive* a) {
    const char* s = archive_error_string(a);
    return s ? s : "unknown libarchive error";
}

FileType type_of(archive_entry* e) {
    switch (archive_entry_filetype(e)) {
    case AE_IFDIR: return FileType::Directory;
    case AE_IFLNK: return FileType::Symlink;
    case AE_IFCHR: return FileType::CharDevice;
    case AE_IFBLK: return FileType::BlockDevice;
    case AE_IFIFO: return FileType::Fifo;
    case AE_IFSOCK: return FileType::Socket;
    default: return FileType::Regular;
    }
}

unsigned int ae_type(FileType t) {
    switch (t) {
    case FileType::Directory: return AE_IFDIR;
    case FileType::Symlink: return AE_IFLNK;
    case FileType::CharDevice: return AE_IFCHR;
    case FileType::BlockDevice: return AE_IFBLK;
    case FileType::Fifo: return AE_IFIFO;
    case FileType::Socket: return AE_IFSOCK;
    default: return AE_IFREG;
    }
}

// libarchive's ACL tags and permission bits, mapped to the Linux xattr form the Tree keeps.
constexpr std::pair<int, uint16_t> k_tags[] = {
    {ARCHIVE_ENTRY_ACL_USER_OBJ, acl::UserObj}, {ARCHIVE_ENTRY_ACL_USER, acl::User},
    {ARCHIVE_ENTRY_ACL_GROUP_OBJ, acl::GroupObj}, {ARCHIVE_ENTRY_ACL_GROUP, acl::Group},
    {ARCHIVE_ENTRY_ACL_MASK, acl::Mask}, {ARCHIVE_ENTRY_ACL_OTHER, acl::Other}};

void read_acls(archive_entry* ae, Entry& e) {
    for (int type : {ARCHIVE_ENTRY_ACL_TYPE_ACCESS, ARCHIVE_ENTRY_ACL_TYPE_DEFAULT}) {
        if (archive_entry_acl_reset(ae, type) <= 0) continue;
        std::vector<acl::AclEntry> entries;
        int got_type = 0, permset = 0, tag = 0, qual = 0;
        const char* name = nullptr;
        while (archive_entry_acl_next(ae, type, &got_type, &permset, &tag, &qual, &name) == ARCHIVE_OK) {
            for (const auto& [la, ours] : k_tags)
                if (la == tag)
                    entries.push_back({ours, static_cast<uint16_t>(permset & 7),
                                       ours == acl::User || ours == acl::Group ? static_cast<uint32_t>(qual) : acl::k_no_id});
        }
        if (entries.empty()) continue;
        bool access = type == ARCHIVE_ENTRY_ACL_TYPE_ACCESS;
        e.xattrs[access ? acl::k_access : acl::k_default] =
            acl::encode(entries, access ? std::optional<uint32_t>(e.perm) : std::nullopt);
    }
}

// ACL xattrs go into the archive as ACLs, which every tar restores, rather than as raw xattrs.
bool write_acl(archive_entry* ae, const std::string& name, const std::string& value) {
    int type = name == acl::k_access ? ARCHIVE_ENTRY_ACL_TYPE_ACCESS
               : name == acl::k_default ? ARCHIVE_ENTRY_ACL_TYPE_DEFAULT : 0;
    if (!type) return false;
    auto entries = acl::decode(value);
    if (!entries) return false;
    for (const auto& x : *entries)
        for (const auto& [la, ours] : k_tags)
            if (ours == x.tag)
                archive_entry_acl_add_entry(ae, type, x.perm, la,
                                            x.tag == acl::User || x.tag == acl::Group ? static_cast<int>(x.id) : -1,
                                            nullptr);
    return true;
}

constexpr size_t k_path_max = 4096;

// After Ctrl-C: archive_write_free() would otherwise close the archive, and closing an xz stream
// compresses everything its threads still hold (tens of MiB; 17 s at xz's default level) before
// the interrupt could take effect. The temporary file is removed by the caller anyway.
void abandon(struct archive* a) { archive_write_fail(a); }

// xz through liblzma here rather than libarchive's xz filter. liblzma's multi-threaded encoder
// blocks in lzma_code() until a thread finishes a whole block (24 MiB at level 6): Ctrl-C waited
// for that, 17 s and more. With a timeout lzma_code() returns every 100 ms and the interrupt is
// seen. The stream is the one libarchive's filter made: level 6, CRC64, the multi-threaded
// encoder (whose bytes do not depend on the thread count).
class XzOutput {
public:
    explicit XzOutput(int threads) : m_threads(static_cast<uint32_t>(std::max(2, threads))) {}
    ~XzOutput() {
        lzma_end(&m_stream);
        if (m_fd >= 0) ::close(m_fd);
    }
    XzOutput(const XzOutput&) = delete;
    XzOutput& operator=(const XzOutput&) = delete;

    // Creates `file` and makes `a` write through this; false with the reason in `a`.
    bool open(struct archive* a, const std::string& file) {
        m_file = file;
        m_fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (m_fd < 0) {
            archive_set_error(a, errno, "%s", std::strerror(errno));
            return false;
        }
        lzma_mt mt{};
        mt.threads = m_threads;
        mt.preset = LZMA_PRESET_DEFAULT;
        mt.check = LZMA_CHECK_CRC64;
        mt.timeout = 100;
        if (lzma_stream_encoder_mt(&m_stream, &mt) != LZMA_OK) {
            archive_set_error(a, ENOMEM, "cannot start the xz encoder");
            return false;
        }
        m_out.resize(1 << 20);
        return archive_write_open2(a, this, nullptr, &XzOutput::on_write, &XzOutput::on_close, nullptr) == ARCHIVE_OK;
    }

private:
    static la_ssize_t on_write(struct archive* a, void* me, const void* buf, size_t len) {
        auto* self = static_cast<XzOutput*>(me);
        self->m_stream.next_in = static_cast<const uint8_t*>(buf);
        self->m_stream.avail_in = len;
        while (self->m_stream.avail_in > 0)
            if (!self->step(a, LZMA_RUN)) return -1;
        return static_cast<la_ssize_t>(len);
    }

    static int on_close(struct archive* a, void* me) {
        auto* self = static_cast<XzOutput*>(me);
        while (!self->m_done)
            if (!self->step(a, LZMA_FINISH)) return ARCHIVE_FATAL;
        int fd = self->m_fd;
        self->m_fd = -1;
        if (::close(fd) != 0) {
            archive_set_error(a, errno, "%s", std::strerror(errno));
            return ARCHIVE_FATAL;
        }
        return ARCHIVE_OK;
    }

    // One lzma_code() call (at most 100 ms) and the write of what it made; false after an error
    // or an interrupt (an exception cannot cross libarchive: the caller sees the failure and checks).
    bool step(struct archive* a, lzma_action action) {
        m_stream.next_out = m_out.data();
        m_stream.avail_out = m_out.size();
        lzma_ret r = lzma_code(&m_stream, action);
        size_t n = m_out.size() - m_stream.avail_out;
        for (size_t done = 0; done < n;) {
            ssize_t w = ::write(m_fd, m_out.data() + done, n - done);
            if (w < 0 && errno == EINTR) continue;
            if (w <= 0) {
                archive_set_error(a, w < 0 ? errno : EIO, "%s", std::strerror(w < 0 ? errno : EIO));
                return false;
            }
            done += static_cast<size_t>(w);
        }
        if (r == LZMA_STREAM_END) m_done = true;
        else if (r != LZMA_OK) {
            archive_set_error(a, EIO, "xz encoder error %d", static_cast<int>(r));
            return false;
        }
        try {
            check_interrupted();
        } catch (const Error&) {
            archive_set_error(a, EINTR, "interrupted");
            return false;
        }
        return true;
    }

    uint32_t m_threads;
    std::string m_file;
    int m_fd = -1;
    lzma_stream m_stream = LZMA_STREAM_INIT;
    std::vector<uint8_t> m_out;
    bool m_done = false;
};

Result<void> add_filter(struct archive* a, TarOptions::Compression compression, int thread_count) {
    int r = ARCHIVE_OK;
    std::string threads = std::to_string(std::max(2, thread_count));
    switch (compression) {
    case TarOptions::Compression::None: break;
    case TarOptions::Compression::Gzip:
        r = archive_write_add_filter_gzip(a);
        // gzip stores the time of compression by default: never, for reproducible output.
        if (r == ARCHIVE_OK) r = archive_write_set_filter_option(a, "gzip", "timestamp", nullptr);
        break;
    case TarOptions::Compression::Xz:
        r = archive_write_add_filter_xz(a);
        // One thread selects liblzma's single-threaded encoder, whose stream differs from the
        // multi-threaded one's; the latter's bytes do not depend on the thread count. So never one.
        if (r == ARCHIVE_OK) archive_write_set_filter_option(a, "xz", "threads", threads.c_str());
        break;
    case TarOptions::Compression::Zstd: r = archive_write_add_filter_zstd(a); break;
    case TarOptions::Compression::Bzip2: r = archive_write_add_filter_bzip2(a); break;
    }
    if (r != ARCHIVE_OK) return fail("cannot set up compression: " + message(a));
    return {};
}

} // namespace

Result<void> compress_file(const std::string& in, const std::string& out, TarOptions::Compression compression, int threads) {
    XzOutput xz(threads); // outlives the archive that writes through it
    std::unique_ptr<struct archive, WriteDeleter> a(archive_write_new());
    archive_write_set_format_raw(a.get());
    bool own_xz = compression == TarOptions::Compression::Xz;
    if (!own_xz)
        if (auto r = add_filter(a.get(), compression, threads); !r) return r;
    archive_write_set_bytes_in_last_block(a.get(), 1); // no padding after the stream
    if (own_xz ? !xz.open(a.get(), out) : archive_write_open_filename(a.get(), out.c_str()) != ARCHIVE_OK)
        return fail("cannot create '" + out + "': " + message(a.get()));
    std::unique_ptr<archive_entry, EntryDeleter> ae(archive_entry_new());
    archive_entry_set_pathname(ae.get(), "image");
    archive_entry_set_filetype(ae.get(), AE_IFREG);
    if (archive_write_header(a.get(), ae.get()) != ARCHIVE_OK) return fail("'" + out + "': " + message(a.get()));
    try {
        struct stat st {};
        if (::stat(in.c_str(), &st) != 0) return fail(errno_message("stat '" + in + "'", errno));
        ContentRef content = make_host_file(in, static_cast<uint64_t>(st.st_size));
        static const std::vector<char> k_zeros(1 << 20, 0);
        uint64_t pos = 0;
        std::string failure;
        auto feed = [&](const char* data, size_t len) {
            while (len > 0 && failure.empty()) {
                check_interrupted();
                la_ssize_t n = archive_write_data(a.get(), data, len);
                if (n <= 0) {
                    failure = message(a.get());
                    return;
                }
                data += n;
                len -= static_cast<size_t>(n);
                pos += static_cast<uint64_t>(n);
            }
        };
        auto zeros_to = [&](uint64_t end) {
            while (pos < end && failure.empty()) feed(k_zeros.data(), static_cast<size_t>(std::min<uint64_t>(k_zeros.size(), end - pos)));
        };
        content->for_each_chunk([&](uint64_t offset, const char* data, size_t len) {
            zeros_to(offset);
            feed(data, len);
        });
        zeros_to(content->size());
        if (!failure.empty()) {
            check_interrupted(); // the failure may be the interrupt, seen inside libarchive
            return fail("compressing into '" + out + "': " + failure);
        }
    } catch (const Error& e) {
        if (e.exit_code() == k_exit_interrupted) {
            abandon(a.get());
            throw; // exit 130, not a failed build
        }
        return fail(e.what());
    }
    if (archive_write_close(a.get()) != ARCHIVE_OK) {
        check_interrupted();
        return fail("closing '" + out + "': " + message(a.get()));
    }
    return {};
}

Result<void> read_tarball(const std::string& file, Tree& tree) {
    std::unique_ptr<struct archive, ReadDeleter> a(archive_read_new());
    archive_read_support_filter_all(a.get());
    archive_read_support_format_all(a.get());
    if (archive_read_open_filename(a.get(), file.c_str(), 1 << 20) != ARCHIVE_OK)
        return fail("cannot open tarball '" + file + "': " + message(a.get()));
    std::shared_ptr<Spool> spool;
    try {
        spool = Spool::create();
        archive_entry* ae = nullptr;
        size_t count = 0;
        while (true) {
            check_interrupted();
            int r = archive_read_next_header(a.get(), &ae);
            if (r == ARCHIVE_EOF) break;
            if (r < ARCHIVE_WARN)
                return fail("tarball '" + file + "': " + message(a.get()) + " (after " + std::to_string(count) + " members)");
            ++count;
            const char* name = archive_entry_pathname(ae);
            if (!name) return fail("tarball '" + file + "': member " + std::to_string(count) + " has no usable name");
            // Longer than Linux takes (PATH_MAX), and the tree's cost grows with depth times length:
            // one member a megabyte long kept the reader busy for minutes.
            if (std::strlen(name) >= k_path_max)
                return fail("tarball '" + file + "': member " + std::to_string(count) + "'s path is longer than " +
                            std::to_string(k_path_max) + " bytes");
            std::string p = path::normalise(name);

            Entry e;
            e.type = type_of(ae);
            e.perm = archive_entry_perm(ae) & 07777;
            e.uid = static_cast<uint32_t>(archive_entry_uid(ae));
            e.gid = static_cast<uint32_t>(archive_entry_gid(ae));
            e.mtime = {archive_entry_mtime(ae), static_cast<uint32_t>(archive_entry_mtime_nsec(ae))};
            read_acls(ae, e);
            const char* xname = nullptr;
            const void* xvalue = nullptr;
            size_t xsize = 0;
            archive_entry_xattr_reset(ae);
            while (archive_entry_xattr_next(ae, &xname, &xvalue, &xsize) == ARCHIVE_OK)
                e.xattrs[xname] = std::string(static_cast<const char*>(xvalue), xsize);

            const char* hard = archive_entry_hardlink(ae);
            const char* soft = e.type == FileType::Symlink ? archive_entry_symlink(ae) : nullptr;
            for (const char* target : {hard, soft})
                if (target && std::strlen(target) >= k_path_max)
                    return fail("tarball '" + file + "': the link target of '" + p + "' is longer than " +
                                std::to_string(k_path_max) + " bytes");
            if (hard) {
                std::string target = path::normalise(hard);
                if (!tree.get(target))
                    return fail("tarball '" + file + "': '" + p + "' is a hardlink to '" + target +
                                "', which comes later or not at all");
                tree.link(p, target);
                continue;
            }
            switch (e.type) {
            case FileType::Symlink: {
                const char* target = archive_entry_symlink(ae);
                e.link = target ? target : "";
                break;
            }
            case FileType::CharDevice:
            case FileType::BlockDevice:
                e.rdev_major = static_cast<uint32_t>(archive_entry_rdevmajor(ae));
                e.rdev_minor = static_cast<uint32_t>(archive_entry_rdevminor(ae));
                break;
            case FileType::Regular: {
                spool->begin();
                const void* buf = nullptr;
                size_t len = 0;
                la_int64_t offset = 0;
                while ((r = archive_read_data_block(a.get(), &buf, &len, &offset)) == ARCHIVE_OK) {
                    check_interrupted();
                    spool->add(static_cast<uint64_t>(offset), static_cast<const char*>(buf), len);
                }
                if (r != ARCHIVE_EOF)
                    return fail("tarball '" + file + "': reading '" + p + "': " + message(a.get()));
                uint64_t size = archive_entry_size_is_set(ae) ? static_cast<uint64_t>(archive_entry_size(ae)) : 0;
                e.content = spool->finish(size);
                break;
            }
            default: break;
            }
            if (p == "/") {
                if (e.type == FileType::Directory) tree.put("/", std::move(e));
                continue;
            }
            tree.put(p, std::move(e));
        }
        if (count == 0) return fail("tarball '" + file + "' holds no members (is it a tarball?)");
    } catch (const Error& err) {
        return fail("tarball '" + file + "': " + err.what());
    }
    return {};
}

Result<TarOptions::Compression> compression_for(const std::string& f) {
    auto ends = [&f](const char* s) {
        size_t n = std::strlen(s);
        return f.size() > n && f.compare(f.size() - n, n, s) == 0;
    };
    using C = TarOptions::Compression;
    if (ends(".tar")) return C::None;
    if (ends(".tar.gz") || ends(".tgz")) return C::Gzip;
    if (ends(".tar.xz")) return C::Xz;
    if (ends(".tar.zst")) return C::Zstd;
    if (ends(".tar.bz2")) return C::Bzip2;
    return fail("'" + f + "' does not end in .tar, .tar.gz, .tgz, .tar.xz, .tar.zst or .tar.bz2");
}

Result<void> write_tarball(const Tree& tree, const std::string& file, const TarOptions& options) {
    XzOutput xz(options.threads); // outlives the archive that writes through it
    std::unique_ptr<struct archive, WriteDeleter> a(archive_write_new());
    // Full pax rather than "restricted": restricted drops sub-second mtimes from entries that need
    // no extended header for anything else, so precision would vary within one archive.
    archive_write_set_format_pax(a.get());
    bool own_xz = options.compression == TarOptions::Compression::Xz;
    if (!own_xz)
        if (auto r = add_filter(a.get(), options.compression, options.threads); !r) return r;
    if (own_xz ? !xz.open(a.get(), file) : archive_write_open_filename(a.get(), file.c_str()) != ARCHIVE_OK)
        return fail("cannot create '" + file + "': " + message(a.get()));

    HardlinkLeaders leaders(tree);
    std::unique_ptr<archive_entry, EntryDeleter> ae(archive_entry_new());
    static const std::vector<char> k_zeros(1 << 20, 0);
    try {
        std::string failure;
        tree.walk([&](const std::string& p, const Entry& stored) {
            if (!failure.empty()) return;
            check_interrupted();
            archive_entry_clear(ae.get());
            std::string name = p == "/" ? "./" : "." + p;
            archive_entry_set_pathname(ae.get(), name.c_str());
            const Entry& e = leaders.object(p, stored);
            archive_entry_set_perm(ae.get(), e.perm);
            archive_entry_set_uid(ae.get(), e.uid);
            archive_entry_set_gid(ae.get(), e.gid);
            archive_entry_set_mtime(ae.get(), e.mtime.sec, e.mtime.nsec);
            if (const std::string* leader = leaders.link_to(p, stored)) {
                std::string target = "." + *leader;
                archive_entry_set_filetype(ae.get(), ae_type(e.type));
                archive_entry_set_hardlink(ae.get(), target.c_str());
                archive_entry_set_size(ae.get(), 0);
                if (archive_write_header(a.get(), ae.get()) < ARCHIVE_WARN)
                    failure = "'" + p + "': " + message(a.get());
                return;
            }
            archive_entry_set_filetype(ae.get(), ae_type(e.type));
            for (const auto& [k, v] : e.xattrs)
                if (!write_acl(ae.get(), k, v)) archive_entry_xattr_add_entry(ae.get(), k.c_str(), v.data(), v.size());
            if (e.type == FileType::Symlink) archive_entry_set_symlink(ae.get(), e.link.c_str());
            if (e.type == FileType::CharDevice || e.type == FileType::BlockDevice) {
                archive_entry_set_rdevmajor(ae.get(), e.rdev_major);
                archive_entry_set_rdevminor(ae.get(), e.rdev_minor);
            }
            std::vector<Extent> extents;
            if (e.type == FileType::Regular) {
                archive_entry_set_size(ae.get(), static_cast<la_int64_t>(e.size()));
                if (e.content) extents = e.content->extents();
                bool dense = extents.size() == 1 && extents[0].offset == 0 && extents[0].length == e.size();
                if (!dense && e.size() > 0) {
                    for (const auto& x : extents)
                        archive_entry_sparse_add_entry(ae.get(), static_cast<la_int64_t>(x.offset),
                                                       static_cast<la_int64_t>(x.length));
                    if (extents.empty()) archive_entry_sparse_add_entry(ae.get(), static_cast<la_int64_t>(e.size()), 0);
                }
            }
            if (archive_write_header(a.get(), ae.get()) < ARCHIVE_WARN) {
                failure = "'" + p + "': " + message(a.get());
                return;
            }
            if (e.type != FileType::Regular || !e.content) return;
            // The pax writer takes the whole logical file and skips what its sparse map calls holes.
            uint64_t pos = 0;
            auto feed = [&](const char* data, size_t len) {
                while (len > 0 && failure.empty()) {
                    check_interrupted();
                    la_ssize_t n = archive_write_data(a.get(), data, len);
                    if (n < 0) {
                        failure = "'" + p + "': " + message(a.get());
                        return;
                    }
                    data += n;
                    len -= static_cast<size_t>(n);
                    pos += static_cast<uint64_t>(n);
                }
            };
            auto zeros_to = [&](uint64_t end) {
                while (pos < end && failure.empty())
                    feed(k_zeros.data(), static_cast<size_t>(std::min<uint64_t>(k_zeros.size(), end - pos)));
            };
            e.content->for_each_chunk([&](uint64_t offset, const char* data, size_t len) {
                zeros_to(offset);
                feed(data, len);
            });
            zeros_to(e.size());
        });
        if (!failure.empty()) {
            check_interrupted(); // the failure may be the interrupt, seen inside libarchive
            return fail("writing '" + file + "': " + failure);
        }
    } catch (const Error& err) {
        if (err.exit_code() == k_exit_interrupted) {
            abandon(a.get());
            throw; // exit 130, not a failed build
        }
        return fail("writing '" + file + "': " + err.what());
    }
    if (archive_write_close(a.get()) != ARCHIVE_OK) {
        check_interrupted();
        return fail("closing '" + file + "': " + message(a.get()));
    }
    return {};
}

} // namespace ib::archive
