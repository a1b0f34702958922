// Where the base OS comes from: the recipe's `base:` map names one kind of source.
//
//   base: {image: 2024-11-19-raspios-bookworm-arm64-lite.img.xz, sha256: ...}  # a disk image, any compression
//   base: {tarball: ../build/sample/base.tar.zst, sha256: 5e8f...}   # a rootfs tarball, any compression
//   base: {dir: /srv/rootfs}                                         # a folder on the host
//   base: {tarball: https://example.org/rootfs.tar.zst, sha256: ...}  # image or tarball by URL
//
// A source fills the Tree's base layer. It reads the host, never writes it, except that a URL
// (http, https, file) is downloaded into the cache at read() time (core/fetch.hpp).
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
    // A tree whose only layer, "base", holds the source's files. Folders the source implies but does
    // not list (a tarball without "./usr/" before "./usr/bin/x") get `implied_mtime`, the build's time.
    virtual Tree read(Timestamp implied_mtime) const = 0;
    // The host folder the source reads, for a `dir:` base ("" for the others).
    virtual std::string folder() const { return {}; }
};

struct SourceOptions {
    bool insecure = false; // --insecure: a URL may come without a sha256 pin
};

// Reads the `base:` map; problems go into `diag` (a missing file is reported here, at validation; a URL
// is only checked for its syntax and scheme, and for a sha256 pin unless options.insecure).
std::unique_ptr<Source> parse_base(const Doc& base, Diagnostics& diag, const SourceOptions& options = {});

// The sources, for parse_base.
std::unique_ptr<Source> make_dir_source(std::string dir);
std::unique_ptr<Source> make_tarball_source(std::string file, std::string sha256);
std::unique_ptr<Source> make_image_source(std::string file, std::string sha256);
// `kind` is "image" or "tarball"; an empty `sha256` means unpinned.
std::unique_ptr<Source> make_download_source(std::string kind, std::string url, std::string sha256);

// Opens a disk image file, decoding a compressed one into the cache first (cache.hpp). A `sha256`
// that is not empty must match the file as given.
DiskImage open_disk_image(const std::string& file, const std::string& sha256);

} // namespace ib
