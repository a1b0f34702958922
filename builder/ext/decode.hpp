// Decoding compressed disk images, as a stream, into a sparse file.
//
// zstd and xz go through their own libraries (ext/zstd.hpp, ext/lzma.hpp: the fast paths, xz on
// several threads); gzip, bzip2 and .zip through libarchive. All of them read the compressed file
// front to back in large chunks (InputFile), optionally hashing it on the way, and hand the decoded
// bytes to a SparseWriter, which leaves all-zero blocks as holes.
#pragma once

#include "core/error.hpp"

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>

namespace ib {
class Sha256;
}

namespace ib::decode {

// What the first bytes of a file say it is: "xz", "zstd", "gzip", "bzip2", "zip", or "" (plain).
std::string sniff(const std::string& file);

struct Decoded {
    uint64_t size = 0;  // bytes written, holes included
    std::string member; // for .zip: the member that held the image
};

// The sha256 of the compressed input, computed while it is decoded.
struct InputDigest {
    bool complete = false; // false when part of the file could not be read: sha256 is then meaningless
    std::string sha256;    // lower-case hex
};

// Decodes `file` (xz, zstd, gzip, bzip2, or a .zip holding one image) into `out`, a new file, leaving
// all-zero 4 KiB blocks as holes. A truncated or corrupt stream, or a zip with no image in it, is a
// failure naming `file`; on failure `out` is removed.
// With `digest`, every byte of `file` is hashed as it is read, and after a failure the rest of the
// file too, so that a caller holding a pin can tell "corrupt" from "not the file pinned".
// With `final_bytes`, it is called with n each time bytes [0, n) of `out` are written for good (holes
// included): for a reader that follows the output as it is made (its checksum, on a thread of its own).
Result<Decoded> to_sparse_file(const std::string& file, const std::string& out, InputDigest* digest = nullptr,
                               const std::function<void(uint64_t)>& final_bytes = {});

// ---- The two ends the codec adapters work between -----------------------------------------------

// The compressed file: read front to back (read()), or where libarchive's zip reader seeks (seek()).
// With a hash, every byte is hashed once, in file order: bytes skipped over by a seek forward are read
// and hashed then, and hash_rest() hashes whatever was never read.
class InputFile {
public:
    InputFile(std::string path, Sha256* hash); // throws Error when the file cannot be opened
    ~InputFile();
    InputFile(const InputFile&) = delete;
    InputFile& operator=(const InputFile&) = delete;

    const std::string& path() const { return m_path; }
    uint64_t size() const { return m_size; }
    // Up to n bytes at the current position; 0 at the end. Throws Error on a read error.
    size_t read(char* buf, size_t n);
    // lseek's contract (SEEK_SET, SEEK_CUR, SEEK_END); -1 for a bad offset.
    int64_t seek(int64_t offset, int whence);
    // Hashes the bytes not hashed yet, to the end of the file; false if a read failed.
    bool hash_rest();

private:
    void hash_to(uint64_t end); // throws Error
    std::string m_path;
    Sha256* m_hash;
    int m_fd = -1;
    uint64_t m_size = 0;
    uint64_t m_pos = 0;
    uint64_t m_hashed = 0; // bytes [0, m_hashed) went into m_hash
};

// The decoded image, written sequentially: the decoder fills space() and calls advance(n). Each full
// buffer is written at once: all-zero 4 KiB blocks are skipped (holes), each run of data blocks is one
// pwrite. The buffer is small enough to stay in the CPU's cache between the decoder writing it and
// the checks and copies that follow (measured: 4 MiB buffers cost more time than 512 KiB ones).
// Writeback to disk is started as the data comes, so that finish() rarely waits long.
class SparseWriter {
public:
    static constexpr size_t k_buffer = 512 << 10;

    explicit SparseWriter(std::string path); // creates the file (O_EXCL); throws Error
    ~SparseWriter();                        // closes; a file not finish()ed is left for the caller to remove
    SparseWriter(const SparseWriter&) = delete;
    SparseWriter& operator=(const SparseWriter&) = delete;

    std::span<char> space();                 // room left in the buffer, never empty
    void advance(size_t n);                  // n bytes of space() are filled; throws Error
    void append(const char* data, size_t n); // copies through space()/advance()
    uint64_t size() const { return m_size; } // bytes handed over so far
    // Called with n whenever bytes [0, n) of the file are final (after each buffer, and at finish()).
    void on_final(std::function<void(uint64_t)> f) { m_on_final = std::move(f); }
    // Writes what is left, sets the file's size (a trailing hole included), waits until the data is
    // on disk (fdatasync), closes the file. Throws Error.
    uint64_t finish();

private:
    void flush();
    std::string m_path;
    int m_fd = -1;
    std::unique_ptr<char[]> m_buffer;
    size_t m_fill = 0;   // bytes of m_buffer filled
    uint64_t m_size = 0; // bytes handed over, m_buffer's included
    uint64_t m_written_back = 0; // [0, m_written_back) is being written back to disk
    std::function<void(uint64_t)> m_on_final;
};

} // namespace ib::decode
