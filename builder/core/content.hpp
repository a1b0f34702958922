// Where a file's bytes live. The Tree holds references, never the bytes of base files: content is
// read when an output writes it (ARCHITECTURE.md: reading is lazy).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace ib {

// A run of data in a file; everything between extents is a hole that reads as zeros.
struct Extent {
    uint64_t offset = 0;
    uint64_t length = 0;
    bool operator==(const Extent&) const = default;
};

class Content {
public:
    virtual ~Content() = default;
    // Logical size in bytes, holes included.
    virtual uint64_t size() const = 0;
    // Data runs in ascending order; the default is one run over the whole file.
    virtual std::vector<Extent> extents() const;
    // Reads `len` bytes at `offset` (offset + len <= size()); holes read as zeros. Throws Error.
    virtual void read(uint64_t offset, char* buf, size_t len) const = 0;
    // Calls `sink` with the data of every extent, in order, in pieces of at most 1 MiB.
    virtual void for_each_chunk(const std::function<void(uint64_t offset, const char*, size_t)>& sink) const;
    // For messages: "host file 'overlays/x'", "text from the recipe".
    virtual std::string describe() const = 0;
    // The host file that holds exactly these bytes, for writers that copy it inside the kernel; ""
    // when there is none (content in memory, in an image, in a spool).
    virtual std::string host_path() const { return ""; }
};

using ContentRef = std::shared_ptr<const Content>;

// Bytes the recipe or a step produced.
ContentRef make_blob(std::string data);
// A file on the host, read when needed. `size` is what lstat said when the reference was made; a file
// that shrank by the time it is read is an error rather than a short file.
ContentRef make_host_file(std::string path, uint64_t size);

// The whole content as a string: for small files that steps edit (/etc/hosts, cmdline.txt).
std::string read_all(const Content& content);
std::string read_all(const ContentRef& content);

// Append-only temporary file for content that can only be read once, such as the members of a
// compressed tarball. Lives in $TMPDIR, unlinked from the start, so nothing is left after a crash.
class Spool : public std::enable_shared_from_this<Spool> {
public:
    static std::shared_ptr<Spool> create();
    ~Spool();
    Spool(const Spool&) = delete;
    Spool& operator=(const Spool&) = delete;

    // Starts a new member; data pieces are then added with add() at their logical offsets
    // (ascending, as a sparse-aware reader delivers them) and the member ends with finish().
    void begin();
    void add(uint64_t logical_offset, const char* data, size_t len);
    ContentRef finish(uint64_t logical_size);

    void pread_exact(uint64_t offset, char* buf, size_t len) const;

private:
    Spool() = default;
    int m_fd = -1;
    uint64_t m_end = 0;
    uint64_t m_member_start = 0;
    std::vector<Extent> m_member_extents;
};

} // namespace ib
