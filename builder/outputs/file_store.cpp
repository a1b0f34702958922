#include "outputs/file_store.hpp"

#include "core/error.hpp"
#include "ext/sha256.hpp"
#include "outputs/dir_writer.hpp"

#include <cerrno>
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

} // namespace

std::string FileStore::key(const Entry& e) {
    // The content's hash covers where its data runs start, so that a sparse file and its dense twin
    // (same bytes, different blocks) stay distinct files; both read the same either way.
    auto it = m_sums.find(e.content.get());
    if (it == m_sums.end()) {
        Sha256 h;
        add_number(h, e.size());
        if (e.content)
            e.content->for_each_chunk([&](uint64_t offset, const char* data, size_t len) {
                add_number(h, offset);
                h.update(data, len);
            });
        it = m_sums.emplace(e.content.get(), std::make_pair(e.content, h.hex())).first;
    }
    Sha256 h;
    add_string(h, it->second.second);
    for (uint64_t v : {uint64_t(e.perm), uint64_t(e.uid), uint64_t(e.gid), uint64_t(e.mtime.sec), uint64_t(e.mtime.nsec)})
        add_number(h, v);
    add_number(h, e.xattrs.size());
    for (const auto& [k, v] : e.xattrs) {
        add_string(h, k);
        add_string(h, v);
    }
    return h.hex();
}

std::string FileStore::put(const Entry& e) {
    if (!m_made) {
        if (::mkdir(m_dir.c_str(), 0700) != 0 && errno != EEXIST)
            throw Error(errno_message("create store '" + m_dir + "'", errno));
        m_made = true;
    }
    std::string k = key(e);
    std::string stored = m_dir + "/" + k;
    if (m_written.insert(k).second) {
        write_file_content(stored, e);
        set_metadata(stored, e);
    }
    return stored;
}

void FileStore::link(const Entry& e, const std::string& host) {
    std::string stored = put(e);
    if (::link(stored.c_str(), host.c_str()) != 0) throw Error(errno_message("link '" + host + "'", errno));
}

} // namespace ib
