#include "core/host_file.hpp"

#include <cerrno>
#include <cstdio>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace ib::host_file {

namespace {

const char* type_name(mode_t mode) {
    if (S_ISDIR(mode)) return "a folder";
    if (S_ISCHR(mode)) return "a character device";
    if (S_ISBLK(mode)) return "a block device";
    if (S_ISFIFO(mode)) return "a FIFO";
    if (S_ISSOCK(mode)) return "a socket";
    return "not a regular file";
}

std::optional<std::string> refuse_mode(const std::string& path, mode_t mode, bool allow_device) {
    if (S_ISREG(mode) || (allow_device && S_ISBLK(mode))) return std::nullopt;
    return "'" + path + "' is " + type_name(mode) + ", not a regular file";
}

} // namespace

std::string human_size(uint64_t bytes) {
    static const char* units[] = {"bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    if (bytes < 1024) return std::to_string(bytes) + " bytes";
    double v = static_cast<double>(bytes);
    int u = 0;
    while (v >= 1024 && u < 6) {
        v /= 1024;
        ++u;
    }
    char buf[32];
    std::snprintf(buf, sizeof buf, v == static_cast<double>(static_cast<uint64_t>(v)) ? "%.0f %s" : "%.1f %s", v,
                  units[u]);
    return buf;
}

std::optional<std::string> refuse(const std::string& path, bool allow_device) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return errno_message("'" + path + "'", errno);
    return refuse_mode(path, st.st_mode, allow_device);
}

Result<std::string> read(const std::string& path, uint64_t max, const std::string& kind) {
    // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer, forever.
    int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return fail(errno_message("cannot read " + kind + " '" + path + "'", errno));
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
        int err = errno;
        ::close(fd);
        return fail(errno_message("cannot read " + kind + " '" + path + "'", err));
    }
    if (auto why = refuse_mode(path, st.st_mode, false)) {
        ::close(fd);
        return fail("cannot read " + kind + ": " + *why);
    }
    auto too_big = [&] {
        return fail(kind + " '" + path + "' is larger than the " + human_size(max) + " a " + kind + " may be");
    };
    if (static_cast<uint64_t>(st.st_size) > max) {
        ::close(fd);
        return too_big();
    }
    std::string text;
    text.resize(static_cast<size_t>(st.st_size));
    size_t done = 0;
    // The size may change under us: read to the end, but never past `max`.
    while (true) {
        if (done == text.size()) {
            if (text.size() > max) break;
            text.resize(std::min<uint64_t>(max + 1, text.size() + 65536));
        }
        ssize_t n = ::read(fd, text.data() + done, text.size() - done);
        if (n < 0 && errno == EINTR) {
            check_interrupted();
            continue;
        }
        if (n < 0) {
            int err = errno;
            ::close(fd);
            return fail(errno_message("cannot read " + kind + " '" + path + "'", err));
        }
        if (n == 0) break;
        done += static_cast<size_t>(n);
    }
    ::close(fd);
    if (done > max) return too_big();
    text.resize(done);
    return text;
}

} // namespace ib::host_file
