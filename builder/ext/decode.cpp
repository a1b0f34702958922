#include "ext/decode.hpp"

#include <archive.h>
#include <archive_entry.h>

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <memory>
#include <unistd.h>

namespace ib::decode {

namespace {

struct ReadDeleter {
    void operator()(struct archive* a) const { archive_read_free(a); }
};

constexpr size_t k_block = 4096;

std::string message(struct archive* a) {
    const char* s = archive_error_string(a);
    return s ? s : "unknown libarchive error";
}

bool all_zero(const char* p, size_t n) {
    // Word at a time; blocks are page sized and aligned to the stream, so this is the hot loop.
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        std::memcpy(&w, p + i, 8);
        if (w) return false;
    }
    for (; i < n; ++i)
        if (p[i]) return false;
    return true;
}

bool ends_with(const std::string& s, const char* suffix) {
    size_t n = std::strlen(suffix);
    return s.size() >= n && s.compare(s.size() - n, n, suffix) == 0;
}

} // namespace

std::string sniff(const std::string& file) {
    int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return "";
    unsigned char m[6] = {};
    ssize_t n = ::read(fd, m, sizeof m);
    ::close(fd);
    if (n >= 6 && std::memcmp(m, "\xFD" "7zXZ\0", 6) == 0) return "xz";
    if (n >= 4 && std::memcmp(m, "\x28\xB5\x2F\xFD", 4) == 0) return "zstd";
    if (n >= 2 && m[0] == 0x1F && m[1] == 0x8B) return "gzip";
    if (n >= 3 && std::memcmp(m, "BZh", 3) == 0) return "bzip2";
    if (n >= 4 && std::memcmp(m, "PK\x03\x04", 4) == 0) return "zip";
    return "";
}

Result<Decoded> to_sparse_file(const std::string& file, const std::string& out) {
    std::unique_ptr<struct archive, ReadDeleter> a(archive_read_new());
    bool zip = sniff(file) == "zip";
    if (zip) {
        archive_read_support_format_zip(a.get());
    } else {
        archive_read_support_filter_all(a.get());
        archive_read_support_format_raw(a.get());
    }
    if (archive_read_open_filename(a.get(), file.c_str(), 1 << 20) != ARCHIVE_OK)
        return fail("cannot open '" + file + "': " + message(a.get()));
    Decoded result;
    archive_entry* ae = nullptr;
    while (true) {
        int r = archive_read_next_header(a.get(), &ae);
        if (r == ARCHIVE_EOF) {
            return fail(zip ? "'" + file + "' is a zip with no disk image in it (looked for a *.img member)"
                            : "'" + file + "' holds no data");
        }
        if (r < ARCHIVE_WARN) return fail("'" + file + "': " + message(a.get()));
        if (!zip) break;
        std::string name = archive_entry_pathname(ae) ? archive_entry_pathname(ae) : "";
        if (archive_entry_filetype(ae) == AE_IFREG && (ends_with(name, ".img") || ends_with(name, ".raw"))) {
            result.member = name;
            break;
        }
    }

    int fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) return fail(errno_message("create '" + out + "'", errno));
    std::string failure;
    try {
        const void* buf = nullptr;
        size_t len = 0;
        la_int64_t offset = 0;
        int r;
        while ((r = archive_read_data_block(a.get(), &buf, &len, &offset)) == ARCHIVE_OK) {
            check_interrupted();
            const char* p = static_cast<const char*>(buf);
            uint64_t pos = static_cast<uint64_t>(offset);
            // Write only blocks that hold data; the rest stay holes.
            for (size_t i = 0; i < len;) {
                size_t n = std::min(k_block - (pos + i) % k_block, len - i);
                if (!all_zero(p + i, n)) {
                    size_t run = n;
                    while (i + run < len) {
                        size_t m = std::min(k_block, len - i - run);
                        if (all_zero(p + i + run, m)) break;
                        run += m;
                    }
                    for (size_t done = 0; done < run;) {
                        ssize_t w = ::pwrite(fd, p + i + done, run - done, static_cast<off_t>(pos + i + done));
                        if (w < 0 && errno == EINTR) continue;
                        if (w < 0) throw Error(errno_message("write '" + out + "'", errno));
                        done += static_cast<size_t>(w);
                    }
                    n = run;
                }
                i += n;
            }
            result.size = std::max<uint64_t>(result.size, pos + len);
        }
        if (r != ARCHIVE_EOF)
            failure = "'" + file + "': " + message(a.get()) +
                      " (after " + std::to_string(result.size) + " bytes: truncated or corrupt?)";
        else if (::ftruncate(fd, static_cast<off_t>(result.size)) != 0)
            failure = errno_message("truncate '" + out + "'", errno);
    } catch (const Error& e) {
        failure = e.what();
    }
    if (::close(fd) != 0 && failure.empty()) failure = errno_message("close '" + out + "'", errno);
    if (!failure.empty()) {
        ::unlink(out.c_str());
        return fail(failure);
    }
    return result;
}

} // namespace ib::decode
