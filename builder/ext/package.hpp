// Software packages read with libarchive: release tarballs and Debian .deb files. Nothing is installed
// here and no maintainer script runs; the caller decides where the files go.
#pragma once

#include "core/content.hpp"
#include "core/error.hpp"
#include "core/tree.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace ib::package {

// One member of a package. Hardlink members come out as regular files holding their target's bytes.
struct PackageFile {
    std::string path;                  // normalised absolute: "bin/ctr" and "./bin/ctr" both give "/bin/ctr"
    FileType type = FileType::Regular; // Regular, Directory or Symlink only
    uint32_t perm = 0644;
    uint32_t uid = 0;
    uint32_t gid = 0;
    std::string link;   // symlink target as recorded
    ContentRef content; // regular files; the bytes are held in memory
};

// The fields of a .deb's `control` file that imgbuild uses.
struct DebControl {
    std::string package;
    std::string version;      // as written, epoch included: "1:1.7.24~ds1-1"
    std::string architecture; // "arm64", "all", ...
};

struct DebPackage {
    DebControl control;
    std::vector<PackageFile> files; // data.tar's members, in archive order
};

// Every member of a tarball (any format and compression libarchive reads), in archive order. Devices,
// fifos and sockets are a failure: release tarballs do not hold them.
Result<std::vector<PackageFile>> read_release_tarball(const std::string& file);

// The control fields of a .deb; reads only up to control.tar, so it is cheap even for a large package.
Result<DebControl> read_deb_control(const std::string& file);

// The control fields and data.tar members of a .deb (an `ar` archive holding debian-binary,
// control.tar[.gz|.xz|.zst] and data.tar[.gz|.xz|.zst|.bz2]).
Result<DebPackage> read_deb(const std::string& file);

} // namespace ib::package
