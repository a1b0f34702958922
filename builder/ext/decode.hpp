// Decoding compressed disk images with libarchive, as a stream, into a sparse file.
#pragma once

#include "core/error.hpp"

#include <cstdint>
#include <string>

namespace ib::decode {

// What the first bytes of a file say it is: "xz", "zstd", "gzip", "bzip2", "zip", or "" (plain).
std::string sniff(const std::string& file);

struct Decoded {
    uint64_t size = 0;       // bytes written, holes included
    std::string member;      // for .zip: the member that held the image
};

// Decodes `file` (xz, zstd, gzip, bzip2, or a .zip holding one image) into `out`, a new file, skipping
// runs of zeros so that the output is sparse. A truncated or corrupt stream, or a zip with no image
// in it, is a failure naming `file`.
Result<Decoded> to_sparse_file(const std::string& file, const std::string& out);

} // namespace ib::decode
