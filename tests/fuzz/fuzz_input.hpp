// The fuzz input as a host file: most parsers here read files (images, tarballs, recipes), so each
// target writes its input into one memfd and hands them /proc/self/fd/N. No disk I/O, no cleanup.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <sys/mman.h>
#include <unistd.h>

namespace ib::fuzz {

inline std::string as_file(const uint8_t* data, size_t size) {
    static int fd = [] {
        int f = ::memfd_create("imgbuild-fuzz", MFD_CLOEXEC);
        if (f < 0) {
            std::perror("memfd_create");
            std::abort();
        }
        return f;
    }();
    if (::ftruncate(fd, 0) != 0 || (size > 0 && ::pwrite(fd, data, size, 0) != static_cast<ssize_t>(size))) {
        std::perror("memfd write");
        std::abort();
    }
    return "/proc/self/fd/" + std::to_string(fd);
}

} // namespace ib::fuzz
