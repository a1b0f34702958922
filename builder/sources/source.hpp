// Where the base OS comes from: the recipe's `base:` map names one kind of source.
//
//   base: {image: 2024-11-19-raspios-bookworm-arm64-lite.img.xz, sha256: ...}  # a disk image, any compression
//   base: {tarball: ../build/sample/base.tar.zst, sha256: 5e8f...}   # a rootfs tarball, any compression
//   base: {dir: /srv/rootfs}                                         # a folder on the host
//
// A source fills the Tree's base layer. It reads the host, never writes it.
#pragma once

#include "core/diag.hpp"
#include "core/image.hpp"
#include "core/doc.hpp"
#include "core/tree.hpp"

#include <memory>
#include <string>

namespace ib {

class Source {
public:
    virtual ~Source() = default;
    virtual std::string describe() const = 0;
    // A tree whose only layer, "base", holds the source's files.
    virtual Tree read() const = 0;
};

// Reads the `base:` map; problems go into `diag` (a missing file is reported here, at validation).
std::unique_ptr<Source> parse_base(const Doc& base, Diagnostics& diag);

// The sources, for parse_base.
std::unique_ptr<Source> make_dir_source(std::string dir);
std::unique_ptr<Source> make_tarball_source(std::string file, std::string sha256);
std::unique_ptr<Source> make_image_source(std::string file, std::string sha256);

// Opens a disk image file, decoding a compressed one into the cache first (cache.hpp). A `sha256`
// that is not empty must match the file as given.
DiskImage open_disk_image(const std::string& file, const std::string& sha256);

} // namespace ib
