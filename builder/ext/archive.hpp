// libarchive adapter: the only place that includes archive.h.
#pragma once

#include "core/error.hpp"
#include "core/tree.hpp"

#include <string>

namespace ib::archive {

// Reads a tarball (tar, pax, GNU, cpio; plain or .gz .xz .zst .bz2 .lz4 ...) into `tree`'s top layer.
// Owners, modes, mtimes, xattrs, symlinks, hardlinks, devices and sparse maps are kept as recorded, whoever
// runs the build. Member contents go into a spool file in $TMPDIR: a compressed stream is read once.
Result<void> read_tarball(const std::string& file, Tree& tree);

struct TarOptions {
    enum class Compression { None, Gzip, Xz, Zstd, Bzip2 } compression = Compression::None;
    int threads = 1; // xz and zstd
};

// The compression a file name asks for: ".tar", ".tar.gz"/".tgz", ".tar.xz", ".tar.zst", ".tar.bz2";
// a failure names the extensions that are understood.
Result<TarOptions::Compression> compression_for(const std::string& file_name);

// Writes `tree` as a pax tarball to `file` (members "./", "./etc", ...), in tree order, with no user or
// group names and no atime/ctime, so that the same tree always gives the same bytes.
Result<void> write_tarball(const Tree& tree, const std::string& file, const TarOptions& options);

// A plain file compressed as a single stream (no tar): `in` may be sparse, its holes are read as zeros.
// The output is the same bytes for the same input and options, whatever the thread count (xz always
// uses the multi-threaded encoder; see write_tarball).
Result<void> compress_file(const std::string& in, const std::string& out, TarOptions::Compression compression, int threads);

} // namespace ib::archive
