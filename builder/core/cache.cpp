#include "core/cache.hpp"

#include "core/error.hpp"

#include <cerrno>
#include <cstdlib>
#include <fcntl.h>
#include <filesystem>
#include <sys/file.h>
#include <unistd.h>

namespace ib::cache {

namespace fs = std::filesystem;

std::string dir() {
    if (const char* d = std::getenv("IMGBUILD_CACHE"); d && *d) return d;
    if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) return std::string(x) + "/imgbuild";
    if (const char* h = std::getenv("HOME"); h && *h) return std::string(h) + "/.cache/imgbuild";
    return "/var/tmp/imgbuild-cache";
}

std::string get_or_make(const std::string& kind, const std::string& key,
                        const std::function<void(const std::string& temp)>& make) {
    std::string folder = dir() + "/" + kind;
    std::error_code ec;
    fs::create_directories(folder, ec);
    if (ec) throw Error("cache folder '" + folder + "': " + ec.message());
    std::string target = folder + "/" + key;
    if (fs::exists(target)) return target;

    std::string lock_path = target + ".lock";
    int lock = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (lock < 0) throw Error(errno_message("open lock '" + lock_path + "'", errno));
    while (::flock(lock, LOCK_EX) != 0) {
        if (errno != EINTR) {
            ::close(lock);
            throw Error(errno_message("lock '" + lock_path + "'", errno));
        }
        check_interrupted();
    }
    struct Unlock {
        int fd;
        ~Unlock() { ::close(fd); } // closing drops the lock
    } unlock{lock};
    if (fs::exists(target)) return target; // made by the build we waited for

    std::string temp = target + ".tmp-" + std::to_string(::getpid());
    fs::remove(temp, ec);
    try {
        make(temp);
    } catch (...) {
        fs::remove(temp, ec);
        throw;
    }
    if (::rename(temp.c_str(), target.c_str()) != 0) {
        int err = errno;
        fs::remove(temp, ec);
        throw Error(errno_message("move '" + temp + "' into the cache", err));
    }
    return target;
}

} // namespace ib::cache
