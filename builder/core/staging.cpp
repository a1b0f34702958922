#include "core/staging.hpp"

#include "core/error.hpp"
#include "core/path.hpp"
#include "ext/sha256.hpp"

#include <algorithm>
#include <fcntl.h>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <memory>
#include <mutex>
#include <thread>
#include <sys/stat.h>
#include <unistd.h>

namespace ib {

namespace fs = std::filesystem;

void remove_tree(const std::string& p) {
    struct stat st {};
    if (::lstat(p.c_str(), &st) != 0) return;
    if (S_ISDIR(st.st_mode)) {
        ::chmod(p.c_str(), 0700);
        std::error_code ec;
        std::vector<std::string> names;
        for (const auto& de : fs::directory_iterator(p, ec)) names.push_back(de.path().string());
        for (const auto& n : names) remove_tree(n);
        ::rmdir(p.c_str());
    } else {
        ::unlink(p.c_str());
    }
}

Staging::Staging(std::string out_dir) : m_out(fs::path(out_dir).lexically_normal().string()) {
    if (m_out.size() > 1 && m_out.back() == '/') m_out.pop_back();
}

Staging::~Staging() {
    m_shared.clear(); // first: what they hold may still be writing into the temporaries
    for (const auto& s : m_scratch) remove_tree(s);
    if (m_committed) return;
    for (const auto& item : m_items) remove_tree(item.temp);
    for (auto it = m_created_dirs.rbegin(); it != m_created_dirs.rend(); ++it) ::rmdir(it->c_str());
}

void Staging::make_dir(const std::string& dir) {
    struct stat st {};
    if (::lstat(dir.c_str(), &st) == 0) {
        if (S_ISLNK(st.st_mode))
            throw Error("output folder '" + dir + "' is a symlink; refusing to write through it");
        if (!S_ISDIR(st.st_mode)) throw Error("output folder '" + dir + "' exists and is not a folder");
        return;
    }
    if (::mkdir(dir.c_str(), 0755) != 0) throw Error(errno_message("create output folder '" + dir + "'", errno));
    m_created_dirs.push_back(dir);
}

std::string Staging::temp_for(const std::string& rel) {
    // The output folder itself may be given through a symlink; below it, nothing is followed.
    struct stat st {};
    if (::stat(m_out.c_str(), &st) != 0) {
        fs::path parent = fs::path(m_out).parent_path();
        if (!parent.empty() && !fs::is_directory(parent))
            throw Error("output folder '" + m_out + "': its parent '" + parent.string() + "' does not exist");
        make_dir(m_out);
    } else if (!S_ISDIR(st.st_mode)) {
        throw Error("output folder '" + m_out + "' exists and is not a folder");
    }
    std::string dir = m_out;
    std::string parent_rel = path::parent("/" + rel);
    for (auto part : path::split(parent_rel)) {
        dir += "/";
        dir += part;
        make_dir(dir);
    }
    std::string target = m_out + "/" + rel;
    struct stat tst {};
    if (::lstat(target.c_str(), &tst) == 0 && S_ISLNK(tst.st_mode))
        throw Error("output '" + target + "' is a symlink; refusing to replace it");
    std::string temp = dir + "/." + std::string(path::name(rel)) + ".imgbuild-tmp-" + std::to_string(::getpid()) + "-" +
                       std::to_string(m_items.size());
    remove_tree(temp); // a leftover of a killed run with the same pid
    m_items.push_back({temp, target});
    return temp;
}

std::string Staging::shared_temp_for(const std::string& rel) {
    auto it = m_shared_temps.find(rel);
    if (it != m_shared_temps.end()) return it->second;
    std::string temp = temp_for(rel);
    m_items.back().optional = true;
    m_shared_temps.emplace(rel, temp);
    return temp;
}

std::string Staging::scratch_for(const std::string& rel) {
    std::string temp = temp_for(rel);
    m_items.pop_back(); // not an output: only removed, never renamed
    m_scratch.push_back(temp);
    return temp;
}

namespace {

constexpr size_t k_hash_buffer = 1 << 20;
constexpr uint64_t k_hash_batch = 16 << 20;

// Adds bytes [from, to) of the open file to `h`: what holds data is read, a hole is hashed as the
// zeros it reads as. Reading a hole would make the kernel zero a fresh page for every 4 KiB of it,
// and most of an SD image is holes. `stop` is looked at between pieces.
void hash_range(int fd, const std::string& p, uint64_t from, uint64_t to, Sha256& h, const std::atomic<bool>* stop = nullptr) {
    static const std::vector<char> k_zeros(k_hash_buffer);
    std::unique_ptr<char[]> buf(new char[k_hash_buffer]);
    auto zeros = [&](uint64_t n) {
        while (n > 0) {
            size_t piece = static_cast<size_t>(std::min<uint64_t>(n, k_hash_buffer));
            h.update(k_zeros.data(), piece);
            n -= piece;
        }
    };
    for (uint64_t pos = from; pos < to;) {
        check_interrupted();
        if (stop && *stop) return;
        off_t data = ::lseek(fd, static_cast<off_t>(pos), SEEK_DATA);
        uint64_t start = data < 0 ? (errno == ENXIO ? to : pos) : std::min<uint64_t>(static_cast<uint64_t>(data), to);
        off_t hole = data < 0 ? -1 : ::lseek(fd, data, SEEK_HOLE);
        uint64_t end = hole < 0 ? to : std::min<uint64_t>(static_cast<uint64_t>(hole), to);
        zeros(start - pos);
        for (pos = start; pos < end;) {
            if (stop && *stop) return;
            ssize_t n = ::pread(fd, buf.get(), static_cast<size_t>(std::min<uint64_t>(k_hash_buffer, end - pos)), static_cast<off_t>(pos));
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) throw Error(errno_message("checksums: read '" + p + "'", n < 0 ? errno : EIO));
            h.update(buf.get(), static_cast<size_t>(n));
            pos += static_cast<uint64_t>(n);
        }
    }
}

} // namespace

std::string sha256_sparse(const std::string& p) {
    int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw Error(errno_message("checksums: open '" + p + "'", errno));
    struct stat st {};
    Sha256 h;
    try {
        if (::fstat(fd, &st) != 0) throw Error(errno_message("checksums: stat '" + p + "'", errno));
        hash_range(fd, p, 0, static_cast<uint64_t>(st.st_size), h);
    } catch (...) {
        ::close(fd);
        throw;
    }
    ::close(fd);
    return h.hex();
}

struct BackgroundChecksum::State {
    std::string path;
    int fd = -1;
    Sha256 hash;
    std::mutex mutex;
    std::condition_variable changed;
    uint64_t ready = 0, done = 0, size = 0;
    bool final = false;
    std::atomic<bool> stop{false};
    std::exception_ptr error;
    std::thread thread;

    void run() {
        try {
            std::unique_lock lock(mutex);
            while (true) {
                // In pieces of some MiB: hashing each small step on its own would cost more than it
                // hashes (a fresh buffer and its page faults each time).
                changed.wait(lock, [&] { return stop || final || ready >= done + k_hash_batch; });
                if (stop) return;
                if (ready > done) {
                    uint64_t from = done, to = ready;
                    lock.unlock();
                    hash_range(fd, path, from, to, hash, &stop);
                    lock.lock();
                    done = to;
                } else if (final) {
                    return;
                }
            }
        } catch (...) {
            error = std::current_exception();
        }
    }
};

BackgroundChecksum::BackgroundChecksum(const std::string& path) : m_state(std::make_unique<State>()) {
    m_state->path = path;
    m_state->fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (m_state->fd < 0) throw Error(errno_message("checksums: open '" + path + "'", errno));
    m_state->thread = std::thread([s = m_state.get()] { s->run(); });
}

BackgroundChecksum::~BackgroundChecksum() {
    {
        std::lock_guard lock(m_state->mutex);
        m_state->stop = true;
    }
    m_state->changed.notify_all();
    if (m_state->thread.joinable()) m_state->thread.join();
    ::close(m_state->fd);
}

void BackgroundChecksum::ready(uint64_t n) {
    {
        std::lock_guard lock(m_state->mutex);
        m_state->ready = std::max(m_state->ready, n);
    }
    m_state->changed.notify_all();
}

std::string BackgroundChecksum::result(uint64_t size) {
    {
        std::lock_guard lock(m_state->mutex);
        m_state->ready = std::max(m_state->ready, size);
        m_state->final = true;
    }
    m_state->changed.notify_all();
    m_state->thread.join();
    if (m_state->error) std::rethrow_exception(m_state->error);
    return m_state->hash.hex();
}

void Staging::set_checksum(const std::string& temp, std::string sha256) { m_checksums[temp] = std::move(sha256); }

void Staging::add_checksums(const std::string& name) {
    std::vector<std::pair<std::string, std::string>> sums; // relative target, sha256
    for (const auto& item : m_items) {
        struct stat st {};
        if (::lstat(item.temp.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
        auto known = m_checksums.find(item.temp);
        sums.emplace_back(item.target.substr(m_out.size() + 1), known != m_checksums.end() ? known->second : sha256_sparse(item.temp));
    }
    std::sort(sums.begin(), sums.end());
    std::string text;
    for (const auto& [rel, sum] : sums) text += sum + "  " + rel + "\n";
    add_file(name, text);
}

void Staging::add_file(const std::string& name, const std::string& text) {
    std::string temp = temp_for(name);
    int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) throw Error(errno_message("create '" + temp + "'", errno));
    bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
    int err = errno;
    ok = ::close(fd) == 0 && ok;
    if (!ok) throw Error(errno_message("write '" + temp + "'", err ? err : errno));
}

std::string Staging::current(const std::string& rel) const {
    std::string target = m_out + "/" + rel;
    for (const auto& item : m_items)
        if (item.target == target) return item.temp;
    return target;
}

void Staging::commit() {
    check_interrupted(); // the last moment Ctrl-C stops the build with nothing changed
    struct Step {
        const Item* item;
        std::string aside; // where what was at the target went
        bool placed = false;
    };
    std::vector<Step> steps;
    auto undo = [&]() {
        std::string problems;
        for (auto it = steps.rbegin(); it != steps.rend(); ++it) {
            const std::string& target = it->item->target;
            // The new one goes back to its temporary name, where the destructor removes it.
            if (it->placed && m_rename(target.c_str(), it->item->temp.c_str()) != 0) {
                problems += "; could not move the new '" + target + "' away again: " + std::strerror(errno);
                if (!it->aside.empty()) problems += " (what was there before is at '" + it->aside + "')";
                continue;
            }
            if (!it->aside.empty() && m_rename(it->aside.c_str(), target.c_str()) != 0)
                problems += "; could not put back '" + target + "' (it is at '" + it->aside + "'): " + std::strerror(errno);
        }
        if (!problems.empty()) return problems;
        std::string kept;
        for (const auto& w : m_in_place) kept += (kept.empty() ? "" : ", ") + w;
        return kept.empty() ? std::string("; the output folder is as it was")
                            : "; every output moved into place is back as it was (" + kept + " stay as updated in place)";
    };
    try {
        // 1. What is in the way goes aside, beside it (a rename cannot replace a non-empty folder,
        // nor a file by a folder).
        for (const auto& item : m_items) {
            struct stat st {};
            if (item.optional && ::lstat(item.temp.c_str(), &st) != 0 && errno == ENOENT) continue;
            Step step{&item, "", false};
            if (::lstat(item.target.c_str(), &st) == 0) {
                std::string aside = item.temp + ".old";
                remove_tree(aside); // a leftover of a killed run with the same pid
                if (m_rename(item.target.c_str(), aside.c_str()) != 0)
                    throw Error(errno_message("move '" + item.target + "' aside", errno));
                step.aside = aside;
            } else if (errno != ENOENT) {
                throw Error(errno_message("'" + item.target + "'", errno));
            }
            steps.push_back(std::move(step));
        }
        // 2. Everything new into place.
        for (auto& step : steps) {
            if (m_rename(step.item->temp.c_str(), step.item->target.c_str()) != 0)
                throw Error(errno_message("move '" + step.item->temp + "' to '" + step.item->target + "'", errno));
            step.placed = true;
        }
    } catch (const Error& e) {
        throw Error(std::string(e.what()) + undo(), e.exit_code());
    }
    m_committed = true;
    for (const auto& step : steps)
        if (!step.aside.empty()) remove_tree(step.aside);
}

} // namespace ib
