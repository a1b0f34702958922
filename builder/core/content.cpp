#include "core/content.hpp"

#include "core/error.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace ib {

namespace {
constexpr size_t k_chunk = 1 << 20;

// A buffer for reading `size` bytes in chunks: no bigger than needed, and not zeroed. A zeroed 1 MiB
// vector per file cost more than reading a root's small files themselves (a memset and page faults).
std::unique_ptr<char[]> chunk_buffer(uint64_t size) {
    return std::unique_ptr<char[]>(new char[static_cast<size_t>(std::min<uint64_t>(std::max<uint64_t>(size, 1), k_chunk))]);
}

class Blob final : public Content {
public:
    explicit Blob(std::string data) : m_data(std::move(data)) {}
    uint64_t size() const override { return m_data.size(); }
    void read(uint64_t offset, char* buf, size_t len) const override {
        std::memcpy(buf, m_data.data() + offset, len);
    }
    void for_each_chunk(const std::function<void(uint64_t, const char*, size_t)>& sink) const override {
        for (size_t off = 0; off < m_data.size(); off += k_chunk)
            sink(off, m_data.data() + off, std::min(k_chunk, m_data.size() - off));
    }
    std::string describe() const override { return "content made by the recipe"; }

private:
    std::string m_data;
};

class Fd {
public:
    explicit Fd(int fd) : m_fd(fd) {}
    ~Fd() {
        if (m_fd >= 0) ::close(m_fd);
    }
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    int get() const { return m_fd; }

private:
    int m_fd;
};

void pread_all(int fd, uint64_t offset, char* buf, size_t len, const std::string& what) {
    while (len > 0) {
        ssize_t n = ::pread(fd, buf, len, static_cast<off_t>(offset));
        if (n < 0 && errno == EINTR) {
            check_interrupted();
            continue;
        }
        if (n < 0) throw Error(errno_message("read " + what, errno));
        if (n == 0) throw Error("read " + what + ": file is shorter than when it was listed");
        buf += n;
        len -= static_cast<size_t>(n);
        offset += static_cast<uint64_t>(n);
    }
}

class HostFile final : public Content {
public:
    HostFile(std::string path, uint64_t size) : m_path(std::move(path)), m_size(size) {}
    uint64_t size() const override { return m_size; }

    std::vector<Extent> extents() const override {
        if (m_size == 0) return {};
        Fd fd(open_file());
        return runs(fd.get());
    }

    void read(uint64_t offset, char* buf, size_t len) const override {
        Fd fd(open_file());
        pread_all(fd.get(), offset, buf, len, describe());
    }

    void for_each_chunk(const std::function<void(uint64_t, const char*, size_t)>& sink) const override {
        if (m_size == 0) return;
        Fd fd(open_file());
        std::vector<Extent> data = runs(fd.get());
        auto buf = chunk_buffer(m_size);
        for (const auto& run : data) {
            for (uint64_t off = run.offset; off < run.offset + run.length;) {
                check_interrupted();
                size_t n = static_cast<size_t>(std::min<uint64_t>(k_chunk, run.offset + run.length - off));
                pread_all(fd.get(), off, buf.get(), n, describe());
                sink(off, buf.get(), n);
                off += n;
            }
        }
    }

    std::string describe() const override { return "host file '" + m_path + "'"; }
    std::string host_path() const override { return m_path; }

private:
    // The data runs of the open file. A file with as many blocks as bytes has no holes: that saves
    // the two lseeks per file that most files need not.
    std::vector<Extent> runs(int fd) const {
        struct stat st {};
        if (::fstat(fd, &st) == 0 && static_cast<uint64_t>(st.st_blocks) * 512 >= m_size) return {{0, m_size}};
        std::vector<Extent> out;
        off_t pos = 0;
        while (static_cast<uint64_t>(pos) < m_size) {
            off_t data = ::lseek(fd, pos, SEEK_DATA);
            if (data < 0) {
                if (errno == ENXIO) break; // only a hole is left
                return Content::extents(); // filesystem cannot tell: treat as dense
            }
            off_t hole = ::lseek(fd, data, SEEK_HOLE);
            if (hole < 0) hole = static_cast<off_t>(m_size);
            uint64_t end = std::min<uint64_t>(static_cast<uint64_t>(hole), m_size);
            if (end > static_cast<uint64_t>(data))
                out.push_back({static_cast<uint64_t>(data), end - static_cast<uint64_t>(data)});
            pos = hole;
        }
        return out;
    }

    int open_file() const {
        int fd = ::open(m_path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0) throw Error(errno_message("open " + describe(), errno));
        return fd;
    }
    std::string m_path;
    uint64_t m_size;
};

class SpoolContent final : public Content {
public:
    SpoolContent(std::shared_ptr<const Spool> spool, uint64_t start, uint64_t size, std::vector<Extent> extents)
        : m_spool(std::move(spool)), m_start(start), m_size(size), m_extents(std::move(extents)) {}
    uint64_t size() const override { return m_size; }
    std::vector<Extent> extents() const override { return m_extents; }

    void read(uint64_t offset, char* buf, size_t len) const override {
        std::memset(buf, 0, len);
        uint64_t stored = 0; // where the current extent's data starts in the spool, relative to m_start
        for (const auto& e : m_extents) {
            uint64_t lo = std::max(offset, e.offset);
            uint64_t hi = std::min(offset + len, e.offset + e.length);
            if (lo < hi) m_spool->pread_exact(m_start + stored + (lo - e.offset), buf + (lo - offset), hi - lo);
            stored += e.length;
        }
    }

    void for_each_chunk(const std::function<void(uint64_t, const char*, size_t)>& sink) const override {
        if (m_extents.empty()) return;
        auto buf = chunk_buffer(m_size);
        uint64_t stored = 0;
        for (const auto& e : m_extents) {
            for (uint64_t done = 0; done < e.length;) {
                check_interrupted();
                size_t n = static_cast<size_t>(std::min<uint64_t>(k_chunk, e.length - done));
                m_spool->pread_exact(m_start + stored + done, buf.get(), n);
                sink(e.offset + done, buf.get(), n);
                done += n;
            }
            stored += e.length;
        }
    }

    std::string describe() const override { return "archive member"; }

private:
    std::shared_ptr<const Spool> m_spool;
    uint64_t m_start;
    uint64_t m_size;
    std::vector<Extent> m_extents;
};

} // namespace

std::vector<Extent> Content::extents() const {
    if (size() == 0) return {};
    return {{0, size()}};
}

void Content::for_each_chunk(const std::function<void(uint64_t, const char*, size_t)>& sink) const {
    std::vector<Extent> runs = extents();
    if (runs.empty()) return;
    auto buf = chunk_buffer(size());
    for (const auto& e : runs) {
        for (uint64_t done = 0; done < e.length;) {
            check_interrupted();
            size_t n = static_cast<size_t>(std::min<uint64_t>(k_chunk, e.length - done));
            read(e.offset + done, buf.get(), n);
            sink(e.offset + done, buf.get(), n);
            done += n;
        }
    }
}

ContentRef make_blob(std::string data) { return std::make_shared<Blob>(std::move(data)); }

ContentRef make_host_file(std::string path, uint64_t size) {
    return std::make_shared<HostFile>(std::move(path), size);
}

std::string read_all(const Content& content) {
    std::string out(content.size(), '\0');
    content.for_each_chunk([&](uint64_t off, const char* data, size_t len) { std::memcpy(&out[off], data, len); });
    return out;
}

std::string read_all(const ContentRef& content) { return content ? read_all(*content) : std::string(); }

std::shared_ptr<Spool> Spool::create() {
    std::shared_ptr<Spool> spool(new Spool());
    const char* tmp = std::getenv("TMPDIR");
    std::string dir = tmp && *tmp ? tmp : "/tmp";
    spool->m_fd = ::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (spool->m_fd < 0) {
        // Filesystems without O_TMPFILE: a named file, unlinked at once.
        std::string name = dir + "/imgbuild-spool-XXXXXX";
        spool->m_fd = ::mkstemp(name.data());
        if (spool->m_fd < 0) throw Error(errno_message("create a spool file in '" + dir + "'", errno));
        ::unlink(name.c_str());
    }
    return spool;
}

Spool::~Spool() {
    if (m_fd >= 0) ::close(m_fd);
}

void Spool::begin() {
    m_member_start = m_end;
    m_member_extents.clear();
}

void Spool::add(uint64_t logical_offset, const char* data, size_t len) {
    if (len == 0) return;
    if (!m_member_extents.empty() &&
        m_member_extents.back().offset + m_member_extents.back().length == logical_offset)
        m_member_extents.back().length += len;
    else
        m_member_extents.push_back({logical_offset, len});
    while (len > 0) {
        ssize_t n = ::pwrite(m_fd, data, len, static_cast<off_t>(m_end));
        if (n < 0 && errno == EINTR) {
            check_interrupted();
            continue;
        }
        if (n < 0) throw Error(errno_message("write spool file in $TMPDIR", errno));
        data += n;
        len -= static_cast<size_t>(n);
        m_end += static_cast<uint64_t>(n);
    }
}

ContentRef Spool::finish(uint64_t logical_size) {
    return std::make_shared<SpoolContent>(shared_from_this(), m_member_start, logical_size,
                                          std::move(m_member_extents));
}

void Spool::pread_exact(uint64_t offset, char* buf, size_t len) const {
    pread_all(m_fd, offset, buf, len, "spool file");
}

} // namespace ib
