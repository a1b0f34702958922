#include "ext/decode.hpp"

#include "ext/lzma.hpp"
#include "ext/sha256.hpp"
#include "ext/zstd.hpp"

#include <archive.h>
#include <archive_entry.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

namespace ib::decode {

namespace {

constexpr size_t k_block = 4096;   // the hole granularity: a filesystem block
constexpr size_t k_read = 1 << 20; // libarchive's read size, and the chunk for hashing gaps
constexpr uint64_t k_write_back = 16 << 20; // SparseWriter starts writeback every this many bytes

bool all_zero(const char* p, size_t n) {
    // Or-ing 64 bytes at a time lets the compiler use vector registers; most data blocks fail on the
    // first 64 bytes, zero blocks are read once.
    size_t i = 0;
    for (; i + 64 <= n; i += 64) {
        uint64_t acc = 0;
        for (size_t j = 0; j < 64; j += 8) {
            uint64_t w;
            std::memcpy(&w, p + i + j, 8);
            acc |= w;
        }
        if (acc) return false;
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
    int fd = ::open(file.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
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

// ---- InputFile ------------------------------------------------------------------------------------

InputFile::InputFile(std::string path, Sha256* hash) : m_path(std::move(path)), m_hash(hash) {
    m_fd = ::open(m_path.c_str(), O_RDONLY | O_CLOEXEC);
    if (m_fd < 0) throw Error(errno_message("open '" + m_path + "'", errno));
    struct stat st {};
    if (::fstat(m_fd, &st) != 0) {
        int err = errno;
        ::close(m_fd);
        throw Error(errno_message("stat '" + m_path + "'", err));
    }
    m_size = static_cast<uint64_t>(st.st_size);
    // We read it once, front to back: let the kernel read ahead further.
    ::posix_fadvise(m_fd, 0, 0, POSIX_FADV_SEQUENTIAL);
}

InputFile::~InputFile() {
    if (m_fd >= 0) ::close(m_fd);
}

size_t InputFile::read(char* buf, size_t n) {
    if (m_hash && m_pos > m_hashed) hash_to(m_pos); // a seek skipped these
    while (true) {
        ssize_t got = ::pread(m_fd, buf, n, static_cast<off_t>(m_pos));
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) throw Error(errno_message("read '" + m_path + "'", errno));
        uint64_t end = m_pos + static_cast<uint64_t>(got);
        if (m_hash && end > m_hashed) {
            m_hash->update(buf + (m_hashed - m_pos), static_cast<size_t>(end - m_hashed));
            m_hashed = end;
        }
        m_pos = end;
        return static_cast<size_t>(got);
    }
}

int64_t InputFile::seek(int64_t offset, int whence) {
    int64_t base = whence == SEEK_SET   ? 0
                   : whence == SEEK_CUR ? static_cast<int64_t>(m_pos)
                                        : static_cast<int64_t>(m_size);
    if (base + offset < 0) return -1;
    m_pos = static_cast<uint64_t>(base + offset);
    return static_cast<int64_t>(m_pos);
}

void InputFile::hash_to(uint64_t end) {
    std::vector<char> buf(k_read);
    while (m_hashed < end) {
        size_t want = static_cast<size_t>(std::min<uint64_t>(buf.size(), end - m_hashed));
        ssize_t got = ::pread(m_fd, buf.data(), want, static_cast<off_t>(m_hashed));
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) throw Error(errno_message("read '" + m_path + "'", errno));
        if (got == 0) break; // the file shrank: what is there is hashed
        m_hash->update(buf.data(), static_cast<size_t>(got));
        m_hashed += static_cast<uint64_t>(got);
    }
}

bool InputFile::hash_rest() {
    if (!m_hash) return false;
    try {
        // Past the size seen at open too: a file that grew is hashed as it is now.
        hash_to(UINT64_MAX);
        return true;
    } catch (const Error&) {
        return false;
    }
}

// ---- SparseWriter ---------------------------------------------------------------------------------

SparseWriter::SparseWriter(std::string path) : m_path(std::move(path)), m_buffer(new char[k_buffer]) {
    m_fd = ::open(m_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (m_fd < 0) throw Error(errno_message("create '" + m_path + "'", errno));
}

SparseWriter::~SparseWriter() {
    if (m_fd >= 0) ::close(m_fd);
}

std::span<char> SparseWriter::space() { return {m_buffer.get() + m_fill, k_buffer - m_fill}; }

void SparseWriter::advance(size_t n) {
    m_fill += n;
    m_size += n;
    if (m_fill == k_buffer) flush();
}

void SparseWriter::append(const char* data, size_t n) {
    while (n > 0) {
        std::span<char> room = space();
        size_t m = std::min(n, room.size());
        std::memcpy(room.data(), data, m);
        advance(m);
        data += m;
        n -= m;
    }
}

void SparseWriter::flush() {
    // The buffer starts at a multiple of k_buffer in the output, so its blocks are the file's blocks.
    // It is checked and written while the decoder's output is still in the CPU's cache.
    const char* p = m_buffer.get();
    uint64_t offset = m_size - m_fill;
    for (size_t i = 0; i < m_fill;) {
        size_t n = std::min(k_block, m_fill - i);
        if (all_zero(p + i, n)) {
            i += n;
            continue;
        }
        size_t run = n;
        while (i + run < m_fill) {
            size_t m = std::min(k_block, m_fill - i - run);
            if (all_zero(p + i + run, m)) break;
            run += m;
        }
        for (size_t done = 0; done < run;) {
            ssize_t w = ::pwrite(m_fd, p + i + done, run - done, static_cast<off_t>(offset + i + done));
            if (w < 0 && errno == EINTR) continue;
            if (w < 0) throw Error(errno_message("write '" + m_path + "'", errno));
            done += static_cast<size_t>(w);
        }
        i += run;
    }
    m_fill = 0;
    // Start writing back what is done, without waiting: the disk works while we decode, and the
    // fdatasync in finish() (and libext2fs's fsync when it opens the image) find little left to do.
    if (m_size - m_written_back >= k_write_back) {
        ::sync_file_range(m_fd, static_cast<off_t>(m_written_back), static_cast<off_t>(m_size - m_written_back),
                          SYNC_FILE_RANGE_WRITE);
        m_written_back = m_size;
    }
    if (m_on_final) m_on_final(m_size);
}

uint64_t SparseWriter::finish() {
    flush();
    if (::ftruncate(m_fd, static_cast<off_t>(m_size)) != 0)
        throw Error(errno_message("truncate '" + m_path + "'", errno));
    if (m_on_final) m_on_final(m_size);
    // On disk before the cache renames it into place: after a crash, an entry is whole or absent.
    if (::fdatasync(m_fd) != 0) throw Error(errno_message("write '" + m_path + "'", errno));
    int fd = m_fd;
    m_fd = -1;
    if (::close(fd) != 0) throw Error(errno_message("close '" + m_path + "'", errno));
    return m_size;
}

// ---- libarchive: gzip, bzip2, zip -----------------------------------------------------------------

namespace {

struct ReadDeleter {
    void operator()(struct archive* a) const { archive_read_free(a); }
};

std::string message(struct archive* a) {
    const char* s = archive_error_string(a);
    return s ? s : "unknown libarchive error";
}

// libarchive reads through InputFile, so that the input is hashed as it is read. Errors cannot be
// thrown through libarchive's C frames: they become archive errors.
struct Callbacks {
    InputFile* in;
    std::vector<char> buf = std::vector<char>(k_read);

    static la_ssize_t read(struct archive* a, void* data, const void** block) {
        auto* self = static_cast<Callbacks*>(data);
        try {
            *block = self->buf.data();
            return static_cast<la_ssize_t>(self->in->read(self->buf.data(), self->buf.size()));
        } catch (const Error& e) {
            archive_set_error(a, EIO, "%s", e.what());
            return -1;
        }
    }
    static la_int64_t seek(struct archive*, void* data, la_int64_t offset, int whence) {
        auto* self = static_cast<Callbacks*>(data);
        int64_t pos = self->in->seek(offset, whence);
        return pos < 0 ? ARCHIVE_FATAL : pos;
    }
};

// Returns a failure message, or "" when the image went into `out`.
std::string archive_decode(InputFile& in, SparseWriter& out, bool zip, Decoded& result) {
    const std::string& file = in.path();
    std::unique_ptr<struct archive, ReadDeleter> a(archive_read_new());
    if (zip) {
        archive_read_support_format_zip(a.get());
    } else {
        archive_read_support_filter_all(a.get());
        archive_read_support_format_raw(a.get());
    }
    Callbacks cb{&in};
    archive_read_set_callback_data(a.get(), &cb);
    archive_read_set_read_callback(a.get(), &Callbacks::read);
    if (zip) archive_read_set_seek_callback(a.get(), &Callbacks::seek); // the central directory is at the end
    if (archive_read_open1(a.get()) != ARCHIVE_OK) return "cannot open '" + file + "': " + message(a.get());
    archive_entry* ae = nullptr;
    while (true) {
        int r = archive_read_next_header(a.get(), &ae);
        if (r == ARCHIVE_EOF) {
            return zip ? "'" + file + "' is a zip with no disk image in it (looked for a *.img member)"
                       : "'" + file + "' holds no data";
        }
        if (r < ARCHIVE_WARN) return "'" + file + "': " + message(a.get());
        if (!zip) break;
        std::string name = archive_entry_pathname(ae) ? archive_entry_pathname(ae) : "";
        if (archive_entry_filetype(ae) == AE_IFREG && (ends_with(name, ".img") || ends_with(name, ".raw"))) {
            result.member = name;
            break;
        }
    }
    const void* buf = nullptr;
    size_t len = 0;
    la_int64_t offset = 0;
    int r;
    while ((r = archive_read_data_block(a.get(), &buf, &len, &offset)) == ARCHIVE_OK) {
        check_interrupted();
        // The raw format and zip members come in order; a gap would be a hole.
        uint64_t at = static_cast<uint64_t>(offset);
        if (at > out.size()) {
            std::vector<char> zeros(std::min<uint64_t>(at - out.size(), k_read));
            while (out.size() < at) out.append(zeros.data(), std::min<uint64_t>(zeros.size(), at - out.size()));
        }
        out.append(static_cast<const char*>(buf), len);
    }
    if (r != ARCHIVE_EOF)
        return "'" + file + "': " + message(a.get()) + " (after " + std::to_string(out.size()) +
               " bytes: truncated or corrupt?)";
    return "";
}

} // namespace

// ---- to_sparse_file -------------------------------------------------------------------------------

Result<Decoded> to_sparse_file(const std::string& file, const std::string& out, InputDigest* digest,
                               const std::function<void(uint64_t)>& final_bytes) {
    std::string kind = sniff(file);
    std::unique_ptr<Sha256> hash = digest ? std::make_unique<Sha256>() : nullptr;
    Decoded result;
    std::string failure;
    std::unique_ptr<InputFile> in;
    bool created = false;
    try {
        in = std::make_unique<InputFile>(file, hash.get());
        SparseWriter writer(out);
        created = true;
        if (final_bytes) writer.on_final(final_bytes);
        if (kind == "zstd" || kind == "xz") {
            Result<void> r = kind == "zstd" ? zstd::decode(*in, writer) : lzma::decode(*in, writer);
            if (!r)
                failure = "'" + file + "': " + r.error() + " (after " + std::to_string(writer.size()) + " bytes)";
        } else {
            failure = archive_decode(*in, writer, kind == "zip", result);
        }
        if (failure.empty()) result.size = writer.finish();
    } catch (const Error& e) {
        if (e.exit_code() == k_exit_interrupted) {
            if (created) ::unlink(out.c_str());
            throw;
        }
        failure = e.what();
    }
    if (digest) {
        digest->complete = in && in->hash_rest();
        digest->sha256 = hash->hex();
    }
    if (!failure.empty()) {
        if (created) ::unlink(out.c_str());
        return fail(failure);
    }
    return result;
}

} // namespace ib::decode
