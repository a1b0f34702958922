#include "core/cache.hpp"

#include "core/error.hpp"
#include "core/log.hpp"
#include "core/staging.hpp"

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sys/file.h>
#include <sys/stat.h>
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

namespace {

// What an entry's record holds: its sha256 and what the file looked like when it was taken.
struct Record {
    std::string sha256;
    uint64_t size = 0, ino = 0;
    int64_t mtime_ns = 0, ctime_ns = 0;
    bool operator==(const Record&) const = default;
};

std::optional<Record> stat_record(const std::string& file) {
    struct stat st {};
    if (::stat(file.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return std::nullopt;
    Record r;
    r.size = static_cast<uint64_t>(st.st_size);
    r.ino = static_cast<uint64_t>(st.st_ino);
    r.mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
    r.ctime_ns = static_cast<int64_t>(st.st_ctim.tv_sec) * 1000000000 + st.st_ctim.tv_nsec;
    return r;
}

std::optional<Record> read_record(const std::string& sum) {
    std::ifstream in(sum);
    Record r;
    if (!(in >> r.sha256 >> r.size >> r.mtime_ns >> r.ctime_ns >> r.ino) || r.sha256.size() != 64)
        return std::nullopt;
    return r;
}

// Records `sha256` for `file` as it is now; by rename, so a reader sees a whole record or none.
void write_record(const std::string& file, const std::string& sha256) {
    auto r = stat_record(file);
    if (!r) throw Error(errno_message("cache entry '" + file + "'", errno ? errno : ENOENT));
    std::string sum = file + ".sum", temp = sum + ".tmp-" + std::to_string(::getpid());
    {
        std::ofstream out(temp, std::ios::trunc);
        out << sha256 << ' ' << r->size << ' ' << r->mtime_ns << ' ' << r->ctime_ns << ' ' << r->ino << '\n';
        if (!out.flush()) {
            std::error_code ec;
            fs::remove(temp, ec);
            throw Error("cache: cannot write '" + temp + "'");
        }
    }
    if (::rename(temp.c_str(), sum.c_str()) != 0) {
        int err = errno;
        ::unlink(temp.c_str());
        throw Error(errno_message("cache: rename '" + temp + "'", err));
    }
}

// The record matches the file as it is: it is what was recorded.
bool unchanged(const std::string& target, const std::string& expected) {
    auto rec = read_record(target + ".sum");
    auto now = stat_record(target);
    if (!rec || !now || (!expected.empty() && rec->sha256 != expected)) return false;
    now->sha256 = rec->sha256;
    return *now == *rec;
}

// Hashes `target`: true (and the record renewed) when it has the sha256 its record or `expected`
// says; false after removing it and its record.
bool verify(const std::string& target, const std::string& expected) {
    auto rec = read_record(target + ".sum");
    std::string want = !expected.empty() ? expected : rec ? rec->sha256 : "";
    std::error_code ec;
    if (want.empty()) {
        // Made by an imgbuild that kept no record: nothing says what it should be.
        log::info("cache: '" + target + "' has no recorded sha256; it is made again");
    } else {
        auto start = std::chrono::steady_clock::now();
        std::string actual = sha256_sparse(target);
        double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        char buf[64];
        snprintf(buf, sizeof buf, " (%.2f s)", secs);
        if (actual == want) {
            log::detail("cache: '" + target + "' changed on disk but still has its sha256" + buf);
            write_record(target, want);
            return true;
        }
        log::warn("cache: '" + target + "' is corrupt (sha256 " + actual + ", recorded " + want +
                  "): removed, and made again");
    }
    fs::remove(target, ec);
    fs::remove(target + ".sum", ec);
    return false;
}

// The lock that serialises the builds making `target`; dropped when the returned object goes.
struct Lock {
    int fd = -1;
    explicit Lock(const std::string& target) {
        std::string lock_path = target + ".lock";
        fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0) throw Error(errno_message("open lock '" + lock_path + "'", errno));
        while (::flock(fd, LOCK_EX) != 0) {
            if (errno != EINTR) {
                int err = errno;
                ::close(fd);
                throw Error(errno_message("lock '" + lock_path + "'", err));
            }
            try {
                check_interrupted();
            } catch (...) {
                ::close(fd);
                throw;
            }
        }
    }
    ~Lock() { ::close(fd); }
    Lock(const Lock&) = delete;
    Lock& operator=(const Lock&) = delete;
};

std::string entry_path(const std::string& kind, const std::string& key) {
    std::string folder = dir() + "/" + kind;
    std::error_code ec;
    fs::create_directories(folder, ec);
    if (ec) throw Error("cache folder '" + folder + "': " + ec.message());
    return folder + "/" + key;
}

} // namespace

std::string get_or_make_verified(const std::string& kind, const std::string& key,
                                 const std::function<std::string(const std::string& temp)>& make,
                                 const std::string& expected) {
    std::string target = entry_path(kind, key);
    if (fs::exists(target) && unchanged(target, expected)) return target;

    Lock lock(target);
    if (fs::exists(target) && (unchanged(target, expected) || verify(target, expected))) return target;

    std::string temp = target + ".tmp-" + std::to_string(::getpid());
    std::error_code ec;
    fs::remove(temp, ec);
    std::string sha256;
    try {
        sha256 = make(temp);
        if (sha256.empty()) sha256 = sha256_sparse(temp);
    } catch (...) {
        fs::remove(temp, ec);
        throw;
    }
    if (!expected.empty() && sha256 != expected) {
        fs::remove(temp, ec);
        throw Error("cache: '" + target + "' was made with sha256 " + sha256 + ", not " + expected);
    }
    if (::rename(temp.c_str(), target.c_str()) != 0) {
        int err = errno;
        fs::remove(temp, ec);
        throw Error(errno_message("move '" + temp + "' into the cache", err));
    }
    // After the rename, which changes the file's ctime.
    write_record(target, sha256);
    return target;
}

bool recheck(const std::string& kind, const std::string& key, const std::string& expected) {
    std::string target = entry_path(kind, key);
    Lock lock(target);
    return !fs::exists(target) || verify(target, expected);
}

} // namespace ib::cache
