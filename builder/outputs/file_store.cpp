#include "outputs/file_store.hpp"

#include "core/error.hpp"
#include "ext/sha256.hpp"
#include "outputs/dir_writer.hpp"

#include <cerrno>
#include <dirent.h>
#include <fcntl.h>
#include <string_view>
#include <sys/stat.h>
#include <unistd.h>

namespace ib {

namespace {

void add_number(Sha256& h, uint64_t v) {
    std::string s = std::to_string(v) + '\0';
    h.update(s.data(), s.size());
}

void add_string(Sha256& h, const std::string& s) {
    add_number(h, s.size()); // length first: no two lists of strings hash alike
    h.update(s.data(), s.size());
}

// True when the stored file at `p` is still what its name says `e` is. Its bytes are not read: a
// write through a link moves the mtime (or the size), and that is what is looked for.
bool still_matches(const std::string& p, const Entry& e) {
    struct stat st {};
    if (::lstat(p.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return false;
    if ((st.st_mode & 07777) != e.perm || static_cast<uint64_t>(st.st_size) != e.size()) return false;
    if (st.st_mtim.tv_sec != e.mtime.sec || static_cast<uint32_t>(st.st_mtim.tv_nsec) != e.mtime.nsec) return false;
    return ::geteuid() != 0 || (st.st_uid == e.uid && st.st_gid == e.gid);
}

} // namespace

ContentSums::Facts& ContentSums::facts(const Entry& e) {
    auto [it, fresh] = m_facts.try_emplace(e.content.get());
    if (fresh) it->second.held = e.content;
    return it->second;
}

const std::string& ContentSums::of(const Entry& e) {
    {
        std::lock_guard lock(m_mutex);
        if (Facts& f = facts(e); !f.sum.empty()) return f.sum;
    }
    // Hashed outside the lock: two threads may both hash one content, and the first to finish wins.
    Sha256 h;
    add_number(h, e.size());
    if (e.content)
        e.content->for_each_chunk([&](uint64_t offset, const char* data, size_t len) {
            add_number(h, offset);
            h.update(data, len);
        });
    std::string sum = h.hex();
    std::lock_guard lock(m_mutex);
    Facts& f = facts(e);
    if (f.sum.empty()) f.sum = std::move(sum);
    return f.sum;
}

const std::string& ContentSums::derived(const Entry& e, char kind, const std::function<std::string()>& compute) {
    auto same = [&](const Derived& d) {
        return d.kind == kind && d.perm == e.perm && d.uid == e.uid && d.gid == e.gid && d.mtime == e.mtime && d.xattrs == e.xattrs;
    };
    {
        std::lock_guard lock(m_mutex);
        for (const Derived& d : facts(e).derived)
            if (same(d)) return d.value;
    }
    std::string value = compute(); // outside the lock, as of() hashes
    std::lock_guard lock(m_mutex);
    auto& list = facts(e).derived;
    for (const Derived& d : list)
        if (same(d)) return d.value;
    return list.emplace_back(Derived{kind, e.perm, e.uid, e.gid, e.mtime, e.xattrs, std::move(value)}).value;
}

FileStore::FileStore(std::string dir, ContentSums* sums) : m_dir(std::move(dir)), m_sums(sums ? sums : &m_own_sums) {}

std::string FileStore::key(const Entry& e) {
    return m_sums->derived(e, 'K', [&] { return key_of(e); });
}

std::string FileStore::key_of(const Entry& e) {
    // "ab/ab01...": 256 folders of a few hundred names each rather than one of tens of thousands,
    // which every new name and every link would lock (and search) in turn.
    Sha256 h;
    add_string(h, m_sums->of(e));
    for (uint64_t v : {uint64_t(e.perm), uint64_t(e.uid), uint64_t(e.gid), uint64_t(e.mtime.sec), uint64_t(e.mtime.nsec)})
        add_number(h, v);
    add_number(h, e.xattrs.size());
    for (const auto& [k, v] : e.xattrs) {
        add_string(h, k);
        add_string(h, v);
    }
    std::string hex = h.hex();
    return hex.substr(0, 2) + "/" + hex;
}

FileStore::~FileStore() {
    if (m_fd >= 0) ::close(m_fd);
}

std::string FileStore::put(const Entry& e) { return m_dir + "/" + put_key(e); }

std::string FileStore::put_key(const Entry& e) {
    std::string k = key(e);
    {
        // Most calls are for a file stored already (the nodes after the first): no promise made.
        std::unique_lock lock(m_mutex);
        if (auto it = m_known.find(k); it != m_known.end()) {
            std::shared_future<void> ready = it->second;
            lock.unlock();
            ready.get(); // written by another thread (its error, if it failed)
            return k;
        }
    }
    std::string stored = m_dir + "/" + k;
    std::promise<void> written;
    std::shared_future<void> ready;
    bool mine = false;
    {
        std::lock_guard lock(m_mutex);
        if (!m_made) {
            if (::mkdir(m_dir.c_str(), 0700) != 0) {
                if (errno != EEXIST) throw Error(errno_message("create store '" + m_dir + "'", errno));
                m_in_place = true;
            }
            m_fd = ::open(m_dir.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (m_fd < 0) throw Error(errno_message("open store '" + m_dir + "'", errno));
            m_made = true;
        }
        auto [it, fresh] = m_known.try_emplace(k);
        if (fresh) {
            it->second = written.get_future().share();
            mine = true;
        }
        ready = it->second;
    }
    if (!mine) {
        ready.get(); // written by another thread (its error, if it failed)
        return k;
    }
    try {
        store(k, stored, e);
        written.set_value();
    } catch (...) {
        written.set_exception(std::current_exception());
        throw;
    }
    return k;
}

void FileStore::store(const std::string& k, const std::string& stored, const Entry& e) {
    std::string sub = m_dir + "/" + k.substr(0, 2);
    {
        std::lock_guard lock(m_mutex);
        if (m_subdirs.insert(k.substr(0, 2)).second && ::mkdir(sub.c_str(), 0700) != 0 && errno != EEXIST)
            throw Error(errno_message("create store folder '" + sub + "'", errno));
    }
    if (!m_in_place) {
        try {
            write_file(stored, e);
        } catch (...) {
            ::unlink(stored.c_str()); // never a half-written file under the name of a whole one
            throw;
        }
    } else {
        if (still_matches(stored, e)) return;
        std::string temp = sub + "/." + k.substr(3) + ".imgbuild-tmp";
        ::unlink(temp.c_str()); // a leftover of a killed build
        try {
            write_file(temp, e);
            if (::rename(temp.c_str(), stored.c_str()) != 0) throw Error(errno_message("store '" + stored + "'", errno));
        } catch (...) {
            ::unlink(temp.c_str());
            throw;
        }
    }
    std::lock_guard lock(m_mutex);
    m_added.push_back(stored);
}

void FileStore::link(const Entry& e, const std::string& host) {
    std::string stored = put(e);
    if (::link(stored.c_str(), host.c_str()) != 0) throw Error(errno_message("link '" + host + "'", errno));
}

void FileStore::link_at(const Entry& e, int dirfd, const char* name, const std::string& host) {
    std::string k = put_key(e);
    if (::linkat(m_fd, k.c_str(), dirfd, name, 0) != 0) throw Error(errno_message("link '" + host + "'", errno));
}

void FileStore::discard_added() noexcept {
    std::lock_guard lock(m_mutex);
    for (const auto& p : m_added) ::unlink(p.c_str());
    m_added.clear();
}

size_t FileStore::collect_garbage() {
    std::vector<std::string> unused, folders;
    // Files in `dir` nothing links any more, and leftovers of a killed build; in the store itself,
    // also its "ab" folders, looked into after it (an older layout put files there directly).
    auto look_in = [&](const std::string& dir, bool top) {
        DIR* d = ::opendir(dir.c_str());
        if (!d) return;
        while (const dirent* de = ::readdir(d)) {
            std::string p = dir + "/" + de->d_name;
            std::string_view name = de->d_name;
            struct stat st {};
            if (name == "." || name == ".." || ::lstat(p.c_str(), &st) != 0) continue;
            if (top && S_ISDIR(st.st_mode) && name.size() == 2) folders.push_back(p);
            else if (S_ISREG(st.st_mode) && (st.st_nlink == 1 || name.ends_with(".imgbuild-tmp"))) unused.push_back(p);
        }
        ::closedir(d);
    };
    look_in(m_dir, true);
    for (const auto& f : folders) look_in(f, false);
    for (const auto& p : unused)
        if (::unlink(p.c_str()) != 0 && errno != ENOENT) throw Error(errno_message("remove '" + p + "'", errno));
    return unused.size();
}

} // namespace ib
