#include "core/fetch.hpp"

#include "core/cache.hpp"
#include "core/log.hpp"
#include "ext/http.hpp"
#include "ext/sha256.hpp"

#include <cctype>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <unistd.h>

namespace ib::fetch {

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

std::string mib(uint64_t bytes) {
    char buf[32];
    snprintf(buf, sizeof buf, "%.1f", static_cast<double>(bytes) / (1 << 20));
    return buf;
}

// "  42%  12.3/29.1 MiB  3.4 MiB/s" on one line of stderr, redrawn at most 4 times a second. A pipe or
// a log file gets nothing: carriage returns would only clutter it.
class ProgressBar {
public:
    ProgressBar() : m_enabled(::isatty(STDERR_FILENO) == 1 && log::level() != log::Level::Quiet) {}
    ~ProgressBar() { finish(); }
    ProgressBar(const ProgressBar&) = delete;
    ProgressBar& operator=(const ProgressBar&) = delete;

    void update(uint64_t done, uint64_t total) {
        if (!m_enabled || (done == 0 && total == 0)) return; // nothing to show before the first answer
        auto now = Clock::now();
        if (!m_started) {
            m_started = true;
            m_start = now;
            m_first = done;
        }
        m_done = done;
        m_total = total;
        if (m_drawn && now - m_last < std::chrono::milliseconds(250)) return;
        m_last = now;
        draw(now);
    }

    // Draws the last state (the throttle may have skipped it) and ends the line.
    void finish() {
        if (!m_drawn) return;
        draw(Clock::now());
        std::cerr << '\n' << std::flush;
        m_drawn = false;
        m_enabled = false;
    }

private:
    void draw(Clock::time_point now) {
        double secs = std::chrono::duration<double>(now - m_start).count();
        double rate = secs > 0.05 ? static_cast<double>(m_done - m_first) / secs : 0;
        std::string line = "  ";
        if (m_total > 0) line += std::to_string(m_done * 100 / m_total) + "%  " + mib(m_done) + "/" + mib(m_total) + " MiB";
        else line += mib(m_done) + " MiB";
        line += "  " + mib(static_cast<uint64_t>(rate)) + " MiB/s";
        std::cerr << '\r' << line << "\033[K" << std::flush;
        m_drawn = true;
    }

    bool m_enabled;
    bool m_started = false;
    bool m_drawn = false;
    Clock::time_point m_start, m_last;
    uint64_t m_first = 0, m_done = 0, m_total = 0;
};

uint64_t size_of(const std::string& path) {
    std::error_code ec;
    auto n = fs::file_size(path, ec);
    return ec ? 0 : n;
}

// Transfers `url` into `path` with a progress bar; Ctrl-C stops it by unwinding.
Result<http::Got> transfer(const std::string& url, const std::string& path, bool resume) {
    ProgressBar bar;
    http::Request request;
    request.url = url;
    request.path = path;
    request.resume = resume;
    request.progress = [&](uint64_t done, uint64_t total) {
        check_interrupted();
        bar.update(done, total);
    };
    return http::get(request);
}

std::string download_pinned(const std::string& url, const std::string& pin) {
    // Checked before every use: a file changed in the cache is hashed again, and one that no longer
    // matches the pin is removed (with a warning) and downloaded again.
    return cache::get_or_make_verified("downloads", pin, [&](const std::string& temp) {
        // Beside the entry, under the cache's lock: only this build writes it now.
        std::string part = (fs::path(temp).parent_path() / (pin + ".part")).string();
        uint64_t have = size_of(part);
        log::info(have ? "resuming " + url + " at " + mib(have) + " MiB" : "downloading " + url);
        auto drop_if_empty = [&] {
            std::error_code ec;
            if (fs::exists(part, ec) && size_of(part) == 0) fs::remove(part, ec);
        };
        Result<http::Got> got = [&] {
            try {
                return transfer(url, part, true);
            } catch (...) { // Ctrl-C: what arrived stays for the next build
                drop_if_empty();
                throw;
            }
        }();
        if (!got) {
            drop_if_empty();
            uint64_t kept = size_of(part);
            throw Error(got.error() + (kept ? " (" + mib(kept) + " MiB kept in the cache; the next build resumes from there)" : ""));
        }
        if (got.value().restarted) log::info(url + ": the server could not continue the earlier download; it started over");
        std::string actual = sha256_file(part).value_or_throw(url);
        if (actual != pin) {
            std::error_code ec;
            fs::remove(part, ec);
            throw Error(url + ": sha256 is " + actual + ", but the recipe pins " + pin);
        }
        if (::rename(part.c_str(), temp.c_str()) != 0) throw Error(errno_message("rename '" + part + "'", errno));
        return pin;
    }, pin);
}

std::string download_unpinned(const std::string& url) {
    std::string folder = cache::dir() + "/downloads-unpinned";
    std::error_code ec;
    fs::create_directories(folder, ec);
    if (ec) throw Error("cache folder '" + folder + "': " + ec.message());
    std::string target = folder + "/" + sha256_hex(url);
    std::string temp = target + ".tmp-" + std::to_string(::getpid());
    log::info("downloading " + url + " (no sha256 pin: --insecure)");
    try {
        transfer(url, temp, false).value_or_throw();
        if (::rename(temp.c_str(), target.c_str()) != 0) throw Error(errno_message("rename '" + temp + "'", errno));
    } catch (...) {
        fs::remove(temp, ec);
        throw;
    }
    log::warn(url + " is not pinned; its sha256 is " + sha256_file(target).value_or_throw(url));
    return target;
}

} // namespace

bool is_url(const std::string& value) {
    // RFC 3986 scheme: a letter, then letters, digits, '+', '-', '.'; then "://".
    size_t colon = value.find("://");
    if (colon == std::string::npos || colon == 0 || !std::isalpha(static_cast<unsigned char>(value[0]))) return false;
    for (size_t i = 1; i < colon; ++i) {
        char c = value[i];
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '+' && c != '-' && c != '.') return false;
    }
    return true;
}

Result<void> check_url(const std::string& url) { return http::check_url(url); }

bool recheck(const std::string& sha256) { return sha256.empty() || cache::recheck("downloads", sha256, sha256); }

std::string download(const std::string& url, const std::string& sha256) {
    return sha256.empty() ? download_unpinned(url) : download_pinned(url, sha256);
}

} // namespace ib::fetch
